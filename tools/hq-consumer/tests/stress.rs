//! Many records published while the broker is stopped and restarted several times: the
//! `hq-consumer` binary must see every seq of every stream, duplicates only by id, and the
//! outbox must end empty.
//!
//! Default (the bar, run in CI): 100,000 records, 10 broker restarts, once over a plain
//! connection and once over TLS with client certificates made by the test (the broker then
//! requires a certificate on the station's listener; HQ's consumer uses a plain one).
//! `FORECOURT_LONG=1`: 500,000 records, 30 restarts.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use outbox::Outbox;
use serde_json::json;
use tokio::sync::{watch, Notify};
use uplink::{TlsFiles, Uplink, UplinkConfig};

#[path = "../../../crates/uplink/tests/support/pki.rs"]
#[allow(dead_code)]
mod pki;

const STREAMS: [&str; 2] = ["sale", "nozzle"];

struct Broker {
    /// Plain listener (HQ's consumer; the station too unless TLS).
    port: u16,
    /// The listener that requires a client certificate, when started with TLS.
    tls_port: Option<u16>,
    config: std::path::PathBuf,
    child: Option<Child>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Broker {
    /// With `tls`, `dir` must hold the test PKI (see `pki::make_pki`).
    fn start(dir: &std::path::Path, tls: bool) -> Broker {
        let port = free_port();
        let tls_port = tls.then(free_port);
        let config = dir.join("mosquitto.conf");
        allow_broker_to_save(dir);
        // Persistence, so queued messages for HQ's session survive a restart; no queue limit,
        // so none are dropped while HQ's consumer is reconnecting.
        let mut text = format!(
            "per_listener_settings false\nallow_anonymous true\npersistence true\n\
             persistence_location {d}/\nmax_queued_messages 0\nlistener {port} 127.0.0.1\n",
            d = dir.display()
        );
        if let Some(tls_port) = tls_port {
            text += &format!(
                "listener {tls_port} 127.0.0.1\ncafile {d}/ca.pem\ncertfile {d}/server.pem\n\
                 keyfile {d}/server.key\nrequire_certificate true\n",
                d = dir.display()
            );
        }
        std::fs::write(&config, text).unwrap();
        let mut broker = Broker {
            port,
            tls_port,
            config,
            child: None,
        };
        broker.spawn();
        broker
    }

    fn spawn(&mut self) {
        let child = Command::new("/usr/sbin/mosquitto")
            .arg("-c")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        for port in std::iter::once(self.port).chain(self.tls_port) {
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(Instant::now() < deadline, "mosquitto did not listen");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// SIGTERM: mosquitto saves its persistence file before exiting.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().unwrap().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// mosquitto started as root drops to its own user before saving its persistence file; in a
/// private (0700) temp dir that save fails, the broker forgets every session on restart, and
/// messages it acknowledged for HQ are lost. Let it write.
fn allow_broker_to_save(dir: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
}

/// Kills the consumer if the test fails before it exits.
struct Reaped(Option<Child>);

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_seq_arrives_across_broker_restarts() {
    stress(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_seq_arrives_across_broker_restarts_over_tls_with_client_certificates() {
    stress(true).await;
}

/// Waits for `condition`, polling; fails the test after 30 s.
async fn wait_for(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn stress(tls: bool) {
    let long = std::env::var("FORECOURT_LONG").is_ok_and(|v| v == "1");
    let (total, restarts): (u64, usize) = if long { (500_000, 30) } else { (100_000, 10) };
    let per_stream = total / STREAMS.len() as u64;
    let limit = Duration::from_secs(if long { 1200 } else { 300 });
    let started = Instant::now();

    let dir = tempfile::tempdir().unwrap();
    if tls {
        pki::make_pki(dir.path());
        pki::share_with_broker(dir.path());
    }
    let mut broker = Broker::start(dir.path(), tls);
    let port = broker.port;

    // HQ: the consumer binary, subscribed before anything is published.
    let mut consumer = Command::new(env!("CARGO_BIN_EXE_hq-consumer"))
        .args([
            "--port",
            &port.to_string(),
            "--client-id",
            "hq-stress",
            "--expect",
            &per_stream.to_string(),
            "--min-streams",
            &STREAMS.len().to_string(),
            "--timeout-s",
            &limit.as_secs().to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("hq-consumer starts");
    let stderr = consumer.stderr.take().unwrap();
    let mut consumer = Reaped(Some(consumer));
    let (subscribed_tx, subscribed) = std::sync::mpsc::channel();
    let stderr_lines = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line == "subscribed" {
                let _ = subscribed_tx.send(());
            }
            lines.push(line);
        }
        lines
    });
    subscribed
        .recv_timeout(Duration::from_secs(10))
        .expect("consumer subscribed within 10 s");

    let outbox = Outbox::open(dir.path().join("outbox.db")).unwrap();
    let wake = Arc::new(Notify::new());
    let mut config = UplinkConfig::new(if tls { "localhost" } else { "127.0.0.1" }, "ST1");
    config.port = broker.tls_port.unwrap_or(port);
    if tls {
        let d = dir.path();
        config.tls = Some(TlsFiles {
            ca_file: d.join("ca.pem"),
            client_cert_file: Some(d.join("client.pem")),
            client_key_file: Some(d.join("client.key")),
        });
    }
    config.backoff_min_ms = 50;
    config.backoff_max_ms = 400;
    config.poll_interval_ms = 100;
    config.connect_timeout_s = 2;
    let uplink = Uplink::new(config, outbox.clone(), wake.clone()).unwrap();
    let health = uplink.health();
    let (stop, stop_rx) = watch::channel(false);
    let uplink_task = tokio::spawn(uplink.run(stop_rx));

    // Appends in batches, spread over the restarts.
    let appender = {
        let (outbox, wake) = (outbox.clone(), wake.clone());
        tokio::task::spawn_blocking(move || {
            let batch = 250u64;
            let mut n = 0u64;
            while n < total {
                let messages: Vec<(&str, String, serde_json::Value)> = (n..(n + batch).min(total))
                    .map(|i| {
                        let stream = STREAMS[(i % STREAMS.len() as u64) as usize];
                        (
                            stream,
                            format!("forecourt/ST1/events/{stream}"),
                            json!({"n": i}),
                        )
                    })
                    .collect();
                let refs: Vec<(&str, &str, serde_json::Value)> = messages
                    .iter()
                    .map(|(s, t, b)| (*s, t.as_str(), b.clone()))
                    .collect();
                outbox.append_batch(&refs).unwrap();
                wake.notify_one();
                n += batch;
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };

    // Each restart must interrupt a live session, so the reconnect count is exact whatever the
    // machine's speed: wait for the first connection, then for each reconnect.
    wait_for("the first connection", || health.snapshot().connected).await;
    for round in 0..restarts {
        tokio::time::sleep(Duration::from_millis(600)).await;
        tokio::task::block_in_place(|| broker.stop());
        let depth = outbox.depth().unwrap();
        eprintln!(
            "restart {}: acked {} so far, depth {depth}",
            round + 1,
            health.snapshot().acked
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        tokio::task::block_in_place(|| broker.spawn());
        let want = round as u64 + 1;
        wait_for("the reconnect after a broker restart", || {
            health.snapshot().reconnects >= want
        })
        .await;
    }
    appender.await.unwrap();

    // The consumer exits 0 once every stream is complete.
    let status = tokio::task::block_in_place(|| {
        let child = consumer.0.as_mut().unwrap();
        let deadline = started + limit + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "consumer did not finish");
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let mut stdout = String::new();
    use std::io::Read;
    consumer
        .0
        .as_mut()
        .unwrap()
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    consumer.0 = None;
    let log = stderr_lines.join().unwrap();
    eprintln!("{}", log.join("\n"));
    assert!(status.success(), "consumer: {status}\n{stdout}");
    let summary: hq_consumer::Summary = serde_json::from_str(&stdout).unwrap();
    assert!(summary.is_clean(), "{stdout}");
    for stream in STREAMS {
        let s = &summary.streams[&format!("ST1/{stream}")];
        assert_eq!(
            (s.unique, s.contiguous, s.missing),
            (per_stream, per_stream, 0)
        );
        assert_eq!(s.conflicts, 0);
        // In order: a new record never overtakes an older one of its stream.
        assert_eq!(s.out_of_order, 0, "{stream}: {s:?}");
    }

    let deadline = Instant::now() + Duration::from_secs(30);
    while outbox.depth().unwrap() != 0 {
        assert!(Instant::now() < deadline, "outbox not empty");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let h = health.snapshot();
    eprintln!(
        "{total} records in {:.1} s; published {}, acked {}, reconnects {}, duplicates at HQ {}",
        started.elapsed().as_secs_f64(),
        h.published,
        h.acked,
        h.reconnects,
        summary.streams.values().map(|s| s.duplicates).sum::<u64>()
    );
    assert!(
        h.reconnects >= restarts as u64,
        "a reconnect per broker restart: {h:?}"
    );
    stop.send(true).unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(5), uplink_task).await;
}
