//! A private PostgreSQL server (Debian's packages) in a temp dir, on a Unix socket only, that a
//! test can stop and start again. As root it runs as the `postgres` user (the server refuses
//! root).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{wait_until, Proc};

pub struct Postgres {
    pub proc: Option<Proc>,
    bin: PathBuf,
    data: PathBuf,
    pub socket_dir: PathBuf,
    pub port: u16,
    log: PathBuf,
}

/// Where Debian puts the server binaries (`/usr/lib/postgresql/<version>/bin`), newest first.
fn server_bin_dir() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server is missing: run scripts/setup.sh")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("postgres").is_file())
        .collect();
    dirs.sort();
    dirs.pop()
        .expect("no PostgreSQL server under /usr/lib/postgresql")
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// `program` as a command, run as `postgres` when we are root.
fn as_server_user(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=postgres", "--regid=postgres", "--init-groups"])
            .arg(program);
        c
    } else {
        Command::new(program)
    }
}

impl Postgres {
    /// Initialises a cluster in `dir/pg` (user `hq`, trust on the socket) and starts it.
    pub fn start(dir: &Path) -> Postgres {
        let bin = server_bin_dir();
        let root = dir.join("pg");
        std::fs::create_dir_all(&root).unwrap();
        // The server user must reach its files through the test's temp dir.
        for d in [dir, root.as_path()] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o777)).unwrap();
        }
        let data = root.join("data");
        let status = as_server_user(&bin.join("initdb"))
            .args(["-A", "trust", "-U", "hq", "--no-sync", "-D"])
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run initdb");
        assert!(status.success(), "initdb failed");
        let mut pg = Postgres {
            proc: None,
            bin,
            data,
            socket_dir: root.clone(),
            port: super::free_port(),
            log: root.join("server.log"),
        };
        pg.start_again();
        pg
    }

    pub fn start_again(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = as_server_user(&self.bin.join("postgres"));
        cmd.arg("-D")
            .arg(&self.data)
            .arg("-k")
            .arg(&self.socket_dir)
            .args(["-p", &self.port.to_string(), "-c", "listen_addresses="])
            .stdout(Stdio::null())
            .stderr(log);
        self.proc = Some(Proc::spawn("postgres", &mut cmd));
        wait_until(Duration::from_secs(30), "PostgreSQL to accept", || {
            self.psql("SELECT 1").is_some()
        });
    }

    /// Fast shutdown (SIGINT: sessions are cut, like a crash from the clients' side).
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            super::send_signal(p.child.id(), "INT");
            assert!(
                p.wait_for_exit(Duration::from_secs(30)).is_some(),
                "PostgreSQL did not stop"
            );
        }
    }

    /// A libpq connection string for hq-ingest and fleet-load.
    pub fn url(&self) -> String {
        format!(
            "host={} port={} user=hq dbname=postgres",
            self.socket_dir.display(),
            self.port
        )
    }

    /// Runs `sql` with psql; its unaligned output, or None if psql failed.
    pub fn psql(&self, sql: &str) -> Option<String> {
        let out = Command::new("psql")
            .args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.socket_dir)
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "hq",
                "-d",
                "postgres",
                "-c",
                sql,
            ])
            .stderr(Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// `psql`, and a number out of its output (panics with the query if there is none).
    pub fn number(&self, sql: &str) -> i64 {
        let out = self
            .psql(sql)
            .unwrap_or_else(|| panic!("query failed: {sql}"));
        out.parse()
            .unwrap_or_else(|_| panic!("not a number from {sql}: {out:?}"))
    }
}
