//! Real processes for system tests: each is killed when its guard drops, so a failing test leaves
//! nothing running.
#![allow(dead_code)]

pub mod postgres;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The release binaries built by scripts/setup.sh (or `FORECOURT_BIN_DIR`).
pub fn binary(name: &str) -> PathBuf {
    let dir = std::env::var_os("FORECOURT_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/release"));
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: run scripts/setup.sh (or cargo build --release --bins) first",
        path.display()
    );
    path
}

pub struct Proc {
    pub name: &'static str,
    pub child: Child,
}

impl Proc {
    pub fn spawn(name: &'static str, cmd: &mut Command) -> Proc {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc { name, child }
    }

    /// Waits up to `timeout` for the process to exit by itself.
    pub fn wait_for_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let until = Instant::now() + timeout;
        while Instant::now() < until {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// SIGTERM, then SIGKILL if it does not stop within `grace`.
    pub fn terminate(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let status = self.wait_for_exit(grace);
        if status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        status
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A free loopback port below the kernel's ephemeral range (`ip_local_port_range`), for a server
/// a test stops and starts again on the same port: while it is down, no outgoing connection or
/// `bind(0)` of a test running beside it can be given that port, as a port from
/// [`free_port`] could be.
pub fn restartable_port() -> u16 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static PICKS: AtomicU64 = AtomicU64::new(0);
    const LOWEST: u16 = 10_000;
    let ephemeral_from = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    let span = u64::from(ephemeral_from.saturating_sub(LOWEST).max(1_000));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut rng = seeded_rng::Rng::new(
        u64::from(std::process::id()) << 32
            ^ u64::from(nanos)
            ^ PICKS.fetch_add(1, Ordering::Relaxed),
    );
    for _ in 0..1_000 {
        let port = LOWEST + (rng.next_u64() % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between {LOWEST} and {ephemeral_from}");
}

pub fn wait_until(timeout: Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let until = Instant::now() + timeout;
    while !ready() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A private mosquitto on a free loopback port. A port another test took between our pick and
/// the broker's bind ("Address already in use") is not ours: pick another.
pub fn start_mosquitto(dir: &Path) -> (Proc, u16) {
    let conf = dir.join("mosquitto.conf");
    let mut last = String::new();
    for _ in 0..5 {
        let port = free_port();
        let config =
            format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n");
        match try_spawn_mosquitto(&conf, &config, port, Duration::from_secs(10)) {
            Ok(proc) => return (proc, port),
            Err(log) if log.contains("Address already in use") => last = log,
            Err(log) => panic!("mosquitto did not start on {port}:\n{log}"),
        }
    }
    panic!("no free port for mosquitto after 5 tries:\n{last}");
}

/// Writes `config` to `conf`, starts mosquitto with it and waits (up to `wait`) until it says
/// it is running and `port` accepts. Panics with its log if it stops instead (a port someone
/// else holds: connecting alone would have found the other one's broker).
pub fn spawn_mosquitto(conf: &Path, config: &str, port: u16, wait: Duration) -> Proc {
    try_spawn_mosquitto(conf, config, port, wait)
        .unwrap_or_else(|log| panic!("mosquitto did not start on {port}:\n{log}"))
}

/// [`spawn_mosquitto`], or the broker's log if it stopped before running.
fn try_spawn_mosquitto(
    conf: &Path,
    config: &str,
    port: u16,
    wait: Duration,
) -> Result<Proc, String> {
    std::fs::write(conf, config).unwrap();
    let log = conf.with_extension("log");
    let mut proc = Proc::spawn(
        "mosquitto",
        Command::new("mosquitto")
            .arg("-c")
            .arg(conf)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap()),
    );
    let until = Instant::now() + wait;
    loop {
        let said = std::fs::read_to_string(&log).unwrap_or_default();
        if said.contains(" running") && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(proc);
        }
        if proc.child.try_wait().ok().flatten().is_some() {
            return Err(std::fs::read_to_string(&log).unwrap_or_default());
        }
        assert!(
            Instant::now() < until,
            "timed out waiting for mosquitto on {port}:\n{said}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A socat pty pair: (guard, end a, end b).
pub fn pty_pair(dir: &Path) -> (Proc, PathBuf, PathBuf) {
    let (a, b) = (dir.join("pty-a"), dir.join("pty-b"));
    let proc = pty_pair_at(&a, &b);
    (proc, a, b)
}

/// Renders a scenario's video with the project's own video maker.
pub fn make_video(scenario: &Path, out: &Path) {
    let status = Command::new("python3")
        .arg(repo_root().join("scripts/make_video.py"))
        .arg(scenario)
        .arg(out)
        .status()
        .expect("python3");
    assert!(status.success(), "make_video.py failed");
}

// ---- Added for the reliability suite (tests/reliability*.rs). Only additions below. ----

/// `FORECOURT_LONG=1`: the long profile of soak-style tests.
pub fn long_profile() -> bool {
    std::env::var_os("FORECOURT_LONG").is_some_and(|v| v == "1")
}

/// A mosquitto on `port` that keeps sessions and queued messages across its own restart
/// (persistence in `dir`), so it can be stopped and started again on the same port.
pub fn start_mosquitto_persistent(dir: &Path, port: u16) -> Proc {
    // mosquitto started as root drops to its own user before saving its persistence file; in a
    // private (0700) temp dir that save fails and the broker forgets every session on restart.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let conf = dir.join("mosquitto-persistent.conf");
    let config = format!(
        "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n\
             persistence_location {}/\nautosave_interval 1\nmax_queued_messages 0\n",
        dir.display()
    );
    spawn_mosquitto(&conf, &config, port, Duration::from_secs(15))
}

/// A socat pty pair with the given link names (stale links from an earlier socat are removed
/// first, so a pair can be "plugged in again" under the same names).
pub fn pty_pair_at(a: &Path, b: &Path) -> Proc {
    let _ = std::fs::remove_file(a);
    let _ = std::fs::remove_file(b);
    let proc = Proc::spawn(
        "socat",
        Command::new("socat")
            .arg(format!("pty,raw,echo=0,link={}", a.display()))
            .arg(format!("pty,raw,echo=0,link={}", b.display()))
            .stderr(Stdio::null()),
    );
    wait_until(Duration::from_secs(10), "socat ptys", || {
        a.exists() && b.exists()
    });
    proc
}

/// A `/proc/<pid>/status` figure in kB (`VmHWM`, `VmRSS`, ...), if the process still exists.
pub fn proc_status_kb(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// Sends `signal` (a name such as "KILL", "STOP", "INT") to `pid`.
pub fn send_signal(pid: u32, signal: &str) -> bool {
    Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .is_ok_and(|s| s.success())
}

/// Renders a scenario's video once and keeps it under `target/test-videos/` (keyed by the
/// scenario text), so several tests and runs share it. Tests of one binary run on several threads
/// and test binaries may run side by side: each render has its own scenario file and temporary
/// video (process and call), and the finished video takes its place whole (a rename), so two
/// renders of one scenario at once never see each other's half-written files.
pub fn cached_video(scenario_text: &str) -> PathBuf {
    use std::hash::{Hash, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static RENDERS: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::DefaultHasher::new();
    scenario_text.hash(&mut h);
    let dir = repo_root().join("target/test-videos");
    std::fs::create_dir_all(&dir).unwrap();
    let video = dir.join(format!("{:016x}.mp4", h.finish()));
    if !video.is_file() {
        let render = format!(
            "{:016x}.{}.{}",
            h.finish(),
            std::process::id(),
            RENDERS.fetch_add(1, Ordering::Relaxed)
        );
        let scenario = dir.join(format!("{render}.toml"));
        std::fs::write(&scenario, scenario_text).unwrap();
        let tmp = dir.join(format!("{render}.tmp.mp4"));
        make_video(&scenario, &tmp);
        std::fs::rename(&tmp, &video).unwrap();
        let _ = std::fs::remove_file(&scenario);
    }
    video
}

/// The pump simulator as a station system on a TCP port (`--protocol ifsf-tcp|ifsf-fdc` among
/// `args`), on a port the system picks: no race with other tests for a free port. Returns it and
/// the address it listens on.
pub fn start_lan_simulator(
    dir: &Path,
    args: &[&str],
    stderr: Stdio,
) -> (Proc, std::net::SocketAddr) {
    let bound = dir.join("simulator.addr");
    let _ = std::fs::remove_file(&bound);
    let proc = Proc::spawn(
        "dart-pump-sim",
        Command::new(binary("dart-pump-sim"))
            .args(args)
            .args(["--listen", "127.0.0.1:0", "--bound-file"])
            .arg(&bound)
            .stderr(stderr),
    );
    wait_until(Duration::from_secs(20), "the simulator's address", || {
        bound.exists()
    });
    let address = std::fs::read_to_string(&bound)
        .unwrap()
        .trim()
        .parse()
        .expect("an address in the bound file");
    (proc, address)
}

/// The demo video `scripts/setup.sh` made, or one rendered for the tests from the same scenario.
pub fn demo_video() -> PathBuf {
    let made = repo_root().join("var/demo/demo.mp4");
    if made.is_file() {
        return made;
    }
    let scenario = std::fs::read_to_string(repo_root().join("config/demo-scenario.toml")).unwrap();
    cached_video(&scenario)
}

/// `config/demo.toml` for a test: its data in `dir`, its camera the demo video and its models
/// the repository's, by absolute paths, its console on a free port (tests run side by side; see
/// [`console_port`]); the serial port and broker stay the demo's.
pub fn demo_config(dir: &Path) -> String {
    let demo = std::fs::read_to_string(repo_root().join("config/demo.toml")).unwrap();
    let quoted = |p: &Path| format!("{:?}", p.display().to_string());
    let replaced = [
        (
            "data_dir = \"../var/demo/data\"",
            format!("data_dir = {}", quoted(&dir.join("data"))),
        ),
        (
            "url = \"../var/demo/demo.mp4\"",
            format!("url = {}", quoted(&demo_video())),
        ),
        (
            "models_dir = \"../models\"",
            format!("models_dir = {}", quoted(&repo_root().join("models"))),
        ),
        (
            "listen = \"127.0.0.1:8080\"",
            format!("listen = \"127.0.0.1:{}\"", free_port()),
        ),
    ];
    replaced.iter().fold(demo, |text, (from, to)| {
        assert!(text.contains(from), "config/demo.toml no longer has {from}");
        text.replace(from, to)
    })
}

/// The console's port in a config made by [`demo_config`].
pub fn console_port(config: &str) -> u16 {
    config
        .lines()
        .find_map(|l| l.strip_prefix("listen = \"127.0.0.1:"))
        .and_then(|rest| rest.trim_end_matches('"').parse().ok())
        .expect("a console listen address in the config")
}

/// Now, in Unix ms (as the agent stamps its records).
pub fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is past 1970")
        .as_millis() as i64
}
