//! The fleet path end to end, with the faults a fleet meets: 1,000 simulated stations (the real
//! outbox and uplink crates, in `fleet-load`), mosquitto 2 with MQTT 5, three `hq-ingest`
//! workers and PostgreSQL, all real processes.
//!
//! Faults: three broker restarts; one broker SIGKILL with persistence on and a long autosave
//! interval while every worker is down (so messages the broker acknowledged to stations and
//! queued for the workers are really lost, and come back only through `resend`); one worker
//! SIGKILLed under load and restarted under its id; one worker stopped for good; one
//! PostgreSQL restart.
//!
//! Pass: for every (station, stream) the stored rows are exactly seq 1..N (N: the station's own
//! last seq), with no conflicts; duplicates were absorbed and resends sent (the faults landed);
//! no gap is left 120 s after the last fault; the streams of the capped stations end with
//! their dropped records declared unrecoverable, and the sweeper stops asking for them.

#[path = "../crates/uplink/tests/support/pki.rs"]
mod pki;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::postgres::Postgres;
use support::{binary, free_port, send_signal, spawn_mosquitto, wait_until, Proc};

const STATIONS: usize = 1000;
const CAPPED_EVERY: usize = 100;

fn mosquitto_config(dir: &Path, port: u16) -> String {
    // Persistence on, saved only at a clean exit or after an hour: a SIGKILL loses everything
    // since the last clean exit, as a power cut would. No per-client queue limit (the default
    // 1000 would drop a stalled worker's share).
    format!(
        "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n\
         persistence_location {}/\nautosave_interval 3600\nmax_queued_messages 0\n\
         sys_interval 1\n",
        dir.display()
    )
}

struct Broker {
    dir: std::path::PathBuf,
    port: u16,
    proc: Option<Proc>,
}

impl Broker {
    fn start(dir: &Path) -> Broker {
        let dir = dir.join("broker");
        std::fs::create_dir_all(&dir).unwrap();
        {
            // mosquitto as root saves its file as its own user.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        }
        let mut broker = Broker {
            dir,
            port: free_port(),
            proc: None,
        };
        broker.up();
        broker
    }

    fn up(&mut self) {
        let conf = self.dir.join("mosquitto.conf");
        let config = mosquitto_config(&self.dir, self.port);
        self.proc = Some(spawn_mosquitto(
            &conf,
            &config,
            self.port,
            Duration::from_secs(30),
        ));
    }

    /// A clean restart: mosquitto saves its state at exit and loads it again.
    fn restart(&mut self) {
        if let Some(mut p) = self.proc.take() {
            assert!(
                p.terminate(Duration::from_secs(30)).is_some(),
                "mosquitto did not stop on SIGTERM"
            );
        }
        self.up();
    }

    fn kill(&mut self) {
        if let Some(mut p) = self.proc.take() {
            send_signal(p.child.id(), "KILL");
            p.wait_for_exit(Duration::from_secs(10));
        }
    }
}

struct Worker {
    id: &'static str,
    config: std::path::PathBuf,
    log: std::path::PathBuf,
    proc: Option<Proc>,
}

impl Worker {
    fn new(dir: &Path, id: &'static str, port: u16, pg_url: &str) -> Worker {
        Worker::with_config(
            dir,
            id,
            &format!(
                "[mqtt]\nhost = \"127.0.0.1\"\nport = {port}\nclient_id = \"{id}\"\n\
                 [postgres]\nurl = \"{pg_url}\"\n\
                 [repair]\nsweep_ms = 1000\ngap_grace_ms = 3000\nresend_retry_ms = 4000\n\
                 resend_retry_max_ms = 15000\n"
            ),
        )
    }

    /// A worker started with `config` as its file.
    fn with_config(dir: &Path, id: &'static str, config_text: &str) -> Worker {
        let config = dir.join(format!("{id}.toml"));
        std::fs::write(&config, config_text).unwrap();
        let mut w = Worker {
            id,
            config,
            log: dir.join(format!("{id}.log")),
            proc: None,
        };
        w.start();
        w
    }

    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        self.proc = Some(Proc::spawn(
            "hq-ingest",
            Command::new(binary("hq-ingest"))
                .arg("--config")
                .arg(&self.config)
                .env("RUST_LOG", "info")
                .stdout(Stdio::null())
                .stderr(log),
        ));
    }

    fn pid(&self) -> u32 {
        self.proc.as_ref().expect("worker running").child.id()
    }
}

/// The load generator's last line per second: `{"t", "depth", "acked", "connected", ...}`.
fn last_progress(path: &Path) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
}

/// The workers' warnings, errors and panics, for a failure message.
fn worker_trouble(dir: &Path) -> String {
    let mut trouble = String::new();
    for id in ["w1", "w2", "w3"] {
        let log = std::fs::read_to_string(dir.join(format!("{id}.log"))).unwrap_or_default();
        for line in log
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR") || l.contains("panicked"))
            .take(20)
        {
            trouble.push_str(&format!("{id}: {line}\n"));
        }
    }
    trouble
}

/// `fleet-load` with STATIONS stations against `port`, reporting from `pg_url`, with `args`
/// besides; its report goes to `dir/fleet-load.out`.
fn spawn_load(dir: &Path, port: u16, pg_url: &str, args: &[&str]) -> Proc {
    Proc::spawn(
        "fleet-load",
        Command::new(binary("fleet-load"))
            .args(["--port", &port.to_string()])
            .args(["--stations", &STATIONS.to_string()])
            .args(args)
            .arg("--dir")
            .arg(dir.join("stations"))
            .args(["--pg", pg_url])
            .stdout(std::fs::File::create(dir.join("fleet-load.out")).unwrap())
            .stderr(std::fs::File::create(dir.join("fleet-load.log")).unwrap()),
    )
}

/// HQ for a test: PostgreSQL, the broker and three workers, each subscribed.
fn start_hq(dir: &Path) -> (Postgres, Broker, Vec<Worker>) {
    let pg_dir = dir.join("pg-root");
    std::fs::create_dir_all(&pg_dir).unwrap();
    let pg = Postgres::start(&pg_dir);
    let broker = Broker::start(dir);
    let url = pg.url();
    let workers: Vec<Worker> = ["w1", "w2", "w3"]
        .into_iter()
        .map(|id| Worker::new(dir, id, broker.port, &url))
        .collect();
    // Subscribed, not only started: a record published before any worker's shared
    // subscription exists has nobody to be queued for, and the broker drops it.
    wait_until(Duration::from_secs(30), "every worker subscribed", || {
        workers.iter().all(|w| {
            std::fs::read_to_string(&w.log).is_ok_and(|l| l.contains("subscribed: taking"))
        })
    });
    (pg, broker, workers)
}

#[test]
fn a_thousand_stations_reach_postgres_exactly_once_through_broker_worker_and_database_faults() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let (mut pg, mut broker, mut workers) = start_hq(dir.path());
    let url = pg.url();

    let seqs_path = dir.path().join("seqs.json");
    let progress_path = dir.path().join("progress.jsonl");
    let report_path = dir.path().join("fleet-load.out");
    let capped_every = CAPPED_EVERY.to_string();
    let mut load = spawn_load(
        dir.path(),
        broker.port,
        &url,
        &[
            "--prefill",
            "20",
            "--rate",
            "100",
            "--seconds",
            "600",
            "--capped-every",
            &capped_every,
            "--cap",
            "5",
            "--backoff-min-ms",
            "500",
            "--backoff-max-ms",
            "4000",
            "--health-s",
            "5",
            "--seqs",
            &seqs_path.display().to_string(),
            "--progress",
            &progress_path.display().to_string(),
        ],
    );

    // The reconnect storm: every station connected and its backlog sent.
    wait_until(
        Duration::from_secs(120),
        "1000 stations connected and drained",
        || {
            last_progress(&progress_path).is_some_and(|p| {
                p["connected"].as_u64() == Some(STATIONS as u64) && p["depth"].as_u64() < Some(200)
            })
        },
    );
    let pause = |s: u64| std::thread::sleep(Duration::from_secs(s));

    // 1. Broker restart.
    broker.restart();
    pause(6);
    // 2. A worker SIGKILLed under load (a batch in hand), back under its id.
    send_signal(workers[0].pid(), "KILL");
    workers[0]
        .proc
        .take()
        .map(|mut p| p.wait_for_exit(Duration::from_secs(5)));
    pause(3);
    workers[0].start();
    pause(6);
    // Back under its id, it found its session (and the share queued for it) kept.
    let w1_log = std::fs::read_to_string(&workers[0].log).unwrap_or_default();
    assert!(
        w1_log.contains("session_present=true"),
        "w1 came back without its session:\n{w1_log}"
    );
    // 3. Broker restart.
    broker.restart();
    pause(6);
    // 4. PostgreSQL restart: the workers hold their batches (unacknowledged) and retry.
    pg.stop();
    pause(3);
    pg.start_again();
    pause(6);
    // 5. HQ's workers all die; the broker keeps acknowledging stations and queues their
    //    messages for the workers' sessions; then it dies too, without saving: those
    //    messages are gone from it, and only the stations' archives still have them.
    let loss_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    for w in workers.iter_mut() {
        send_signal(w.pid(), "KILL");
        w.proc
            .take()
            .map(|mut p| p.wait_for_exit(Duration::from_secs(5)));
    }
    pause(3);
    broker.kill();
    pause(1);
    broker.up();
    for w in workers.iter_mut() {
        w.start();
    }
    pause(6);
    // 6. A worker leaves for good (SIGTERM: it leaves the shared subscription first).
    let leaving = workers.pop().unwrap();
    let mut leaving_proc = leaving.proc.unwrap();
    assert!(
        leaving_proc
            .terminate(Duration::from_secs(20))
            .is_some_and(|s| s.success()),
        "{} did not stop cleanly on SIGTERM",
        leaving.id
    );
    pause(4);
    // 7. Broker restart: the last fault.
    broker.restart();
    let last_fault = Instant::now();
    // Records keep coming after the faults, so a hole at the tail of a stream shows.
    pause(10);
    send_signal(load.child.id(), "USR1");
    wait_until(
        Duration::from_secs(30),
        "the load generator's last seqs",
        || seqs_path.exists(),
    );
    let seqs: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&seqs_path).unwrap()).unwrap();
    let capped: BTreeSet<String> = seqs["capped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    let expected: BTreeMap<String, i64> = seqs["last_seq"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_i64().unwrap()))
        .collect();
    assert_eq!(capped.len(), STATIONS / CAPPED_EVERY);
    assert!(expected.len() >= STATIONS, "{} streams", expected.len());

    // The stations' view against HQ's: per (station, stream), stored rows and declared
    // unrecoverable seqs, all within 1..N.
    let hq_view = || -> BTreeMap<String, (i64, i64, i64, i64)> {
        let rows = pg
            .psql(
                "SELECT e.station || '/' || e.stream, count(*), min(e.seq), max(e.seq),
                        coalesce((SELECT sum(u.to_seq - u.from_seq + 1) FROM unrecoverable u
                                  WHERE u.station = e.station AND u.stream = e.stream), 0)
                 FROM events e GROUP BY e.station, e.stream",
            )
            .unwrap_or_default();
        rows.lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split('|').collect();
                Some((
                    f.first()?.to_string(),
                    (
                        f.get(1)?.parse().ok()?,
                        f.get(2)?.parse().ok()?,
                        f.get(3)?.parse().ok()?,
                        f.get(4)?.parse().ok()?,
                    ),
                ))
            })
            .collect()
    };
    let incomplete = |view: &BTreeMap<String, (i64, i64, i64, i64)>| -> Vec<String> {
        expected
            .iter()
            .filter(|(key, &n)| match view.get(*key) {
                Some(&(count, min, max, gone)) => !(count + gone == n && min >= 1 && max <= n),
                None => true,
            })
            .map(|(k, n)| format!("{k} (N={n}): {:?}", view.get(k)))
            .collect()
    };
    let deadline = last_fault + Duration::from_secs(120);
    let mut missing = incomplete(&hq_view());
    while !missing.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(2));
        missing = incomplete(&hq_view());
    }
    assert!(
        missing.is_empty(),
        "{} streams still incomplete 120 s after the last fault, e.g. {:?}\n{}",
        missing.len(),
        &missing[..missing.len().min(5)],
        worker_trouble(dir.path())
    );
    let complete_after_s = last_fault.elapsed().as_secs_f64();

    // Exactly once: no row twice (the unique key), none that disagrees, none rejected, and
    // stored rows never inside a range declared unrecoverable.
    assert_eq!(pg.number("SELECT count(*) FROM conflicts"), 0, "conflicts");
    assert_eq!(pg.number("SELECT count(*) FROM rejected"), 0, "rejected");
    assert_eq!(
        pg.number(
            "SELECT count(*) FROM events e JOIN unrecoverable u USING (station, stream)
             WHERE e.seq BETWEEN u.from_seq AND u.to_seq"
        ),
        0,
        "stored seqs inside unrecoverable ranges"
    );
    // Only what the capped stations dropped is unrecoverable; each of them lost some.
    let unrecoverable_stations: BTreeSet<String> = pg
        .psql("SELECT DISTINCT station || '/' || stream FROM unrecoverable")
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    for key in &unrecoverable_stations {
        let (station, stream) = key.split_once('/').unwrap();
        assert!(
            capped.contains(station) && stream == "nozzle",
            "{key} declared unrecoverable"
        );
    }
    assert_eq!(
        unrecoverable_stations.len(),
        capped.len(),
        "every capped station's dropped nozzle records end as unrecoverable"
    );
    // The faults landed: redeliveries absorbed, resends asked for beyond the capped streams'.
    let duplicates = pg.number("SELECT coalesce(sum(duplicates), 0) FROM worker_stats");
    let resends = pg.number("SELECT coalesce(sum(resends_sent), 0) FROM worker_stats");
    assert!(
        duplicates > 0,
        "no duplicate was absorbed: the faults did not land"
    );
    let loss_asked_for = pg.number(&format!(
        "SELECT count(*) FROM resends
         WHERE asked_ms > {loss_ms} AND (stream = 'sale' OR station NOT IN ({}))",
        capped
            .iter()
            .map(|s| format!("'{s}'"))
            .collect::<Vec<_>>()
            .join(",")
    ));
    assert!(
        loss_asked_for > 0,
        "no resend for a stream that dropped nothing: the broker's loss did not land"
    );
    // No resend loop: once complete, nothing more is asked for and no gap is open.
    std::thread::sleep(Duration::from_secs(2));
    let settled = pg.number("SELECT coalesce(sum(resends_sent), 0) FROM worker_stats");
    std::thread::sleep(Duration::from_secs(12));
    assert_eq!(
        pg.number("SELECT coalesce(sum(resends_sent), 0) FROM worker_stats"),
        settled,
        "resends go on after every stream is complete"
    );
    assert_eq!(pg.number("SELECT count(*) FROM gaps"), 0, "gaps left open");
    assert_eq!(
        pg.number("SELECT count(*) FROM station_status"),
        STATIONS as i64,
        "every station's status kept"
    );

    // The load generator's report (for docs/fleet.md).
    send_signal(load.child.id(), "TERM");
    assert!(load.wait_for_exit(Duration::from_secs(60)).is_some());
    let report = std::fs::read_to_string(&report_path).unwrap();
    println!("{report}");
    println!(
        "every stream complete {complete_after_s:.0} s after the last fault; duplicates absorbed \
         {duplicates}, resends {resends}, test ran {:.0} s",
        started.elapsed().as_secs_f64()
    );
    drop(workers);
}

/// The fleet table of docs/fleet.md, without faults: 1,000 stations with a backlog of 100
/// records each connect at once, then append 200 records/s for a minute; three workers.
/// `cargo test --release --test fleet -- --ignored --nocapture fleet_benchmark`
#[test]
#[ignore = "benchmark: prints the fleet table for docs/fleet.md"]
fn fleet_benchmark() {
    let dir = tempfile::tempdir().unwrap();
    let (pg, broker, workers) = start_hq(dir.path());
    let url = pg.url();
    let report_path = dir.path().join("fleet-load.out");
    let mut load = spawn_load(
        dir.path(),
        broker.port,
        &url,
        &[
            "--prefill",
            "100",
            "--rate",
            "200",
            "--seconds",
            "60",
            "--health-s",
            "10",
            "--linger-s",
            "15",
        ],
    );
    assert!(
        load.wait_for_exit(Duration::from_secs(600))
            .is_some_and(|s| s.success()),
        "fleet-load failed"
    );
    println!("{}", std::fs::read_to_string(&report_path).unwrap());
    println!(
        "stored {} of the records, conflicts {}",
        pg.number("SELECT count(*) FROM events"),
        pg.number("SELECT count(*) FROM conflicts")
    );
    drop(workers);
}

/// Messages that are not records (not JSON, a topic and envelope that disagree, a body
/// PostgreSQL cannot store, a status that is not one) are kept in `rejected` with the reason,
/// a record that reuses another's seq under a new id lands in `conflicts`, and none of it
/// stalls the workers: the good records around them are stored.
#[test]
fn bad_messages_are_kept_as_rejected_and_never_stall_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let (pg, broker, _workers) = start_hq(dir.path());
    let publish = |topic: &str, payload: &str| {
        let status = Command::new("mosquitto_pub")
            .args(["-p", &broker.port.to_string(), "-q", "1", "-V", "mqttv5"])
            .args(["-t", topic, "-m", payload])
            .status()
            .unwrap();
        assert!(status.success(), "mosquitto_pub {topic}");
    };
    let envelope = |id: &str, seq: u64, stream: &str, body: &str| {
        format!(r#"{{"id":"{id}","seq":{seq},"stream":"{stream}","t":1,"body":{body}}}"#)
    };
    let sale = "forecourt/ST1/events/sale";
    publish(
        sale,
        &envelope("11111111-1111-4111-8111-111111111111", 1, "sale", "{}"),
    );
    publish(sale, "not json");
    publish(
        sale,
        &envelope("22222222-2222-4222-8222-222222222222", 2, "nozzle", "{}"),
    );
    publish(
        sale,
        &envelope(
            "33333333-3333-4333-8333-333333333333",
            2,
            "sale",
            r#"{"note":"a\u0000b"}"#,
        ),
    );
    publish("forecourt/ST1/status", r#"{"state":"sideways"}"#);
    // Seq 1 again under another id: a station bug or a forgery, not a duplicate.
    publish(
        sale,
        &envelope("44444444-4444-4444-8444-444444444444", 1, "sale", "{}"),
    );
    publish(
        sale,
        &envelope("55555555-5555-4555-8555-555555555555", 3, "sale", "{}"),
    );

    wait_until(Duration::from_secs(30), "the good records stored", || {
        pg.psql("SELECT string_agg(seq::text, ',' ORDER BY seq) FROM events WHERE station = 'ST1'")
            .as_deref()
            == Some("1,3")
    });
    let kept = || {
        (
            pg.psql("SELECT why FROM rejected ORDER BY n")
                .unwrap_or_default(),
            pg.number("SELECT count(*) FROM conflicts"),
        )
    };
    let until = Instant::now() + Duration::from_secs(30);
    while (kept().0.lines().count(), kept().1) != (4, 1) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
    let (reasons, conflicts) = kept();
    assert_eq!(
        (reasons.lines().count(), conflicts),
        (4, 1),
        "rejected: {reasons}\nevents: {:?}\nworkers: {:?}\n{}",
        pg.psql("SELECT id, seq, worker FROM events"),
        pg.psql("SELECT * FROM worker_stats"),
        worker_trouble(dir.path())
    );
    for expected in [
        "not an event envelope",
        "is not the topic's",
        "PostgreSQL refused it",
        "not a station status",
    ] {
        assert!(
            reasons.contains(expected),
            "{expected:?} missing in {reasons}"
        );
    }
    // Whichever of the two the workers committed first is stored; the other is the conflict.
    let pair = pg
        .psql("SELECT least(id, stored_id) || ' ' || greatest(id, stored_id) FROM conflicts")
        .unwrap_or_default();
    assert_eq!(
        pair,
        "11111111-1111-4111-8111-111111111111 44444444-4444-4444-8444-444444444444"
    );
}

/// A worker reaches the broker over TLS with its client certificate (`[mqtt.tls]`, the
/// station's file settings); one whose certificate another CA signed never gets in.
#[test]
fn a_worker_connects_over_tls_with_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pki_dir = d.join("pki");
    std::fs::create_dir_all(&pki_dir).unwrap();
    pki::make_pki(&pki_dir);
    pki::share_with_broker(&pki_dir);
    let pg_dir = d.join("pg-root");
    std::fs::create_dir_all(&pg_dir).unwrap();
    let pg = Postgres::start(&pg_dir);
    let (tls_port, plain_port) = (free_port(), free_port());
    let p = pki_dir.display();
    let _broker = spawn_mosquitto(
        &d.join("mosquitto.conf"),
        &format!(
            "per_listener_settings false\nallow_anonymous true\npersistence false\n\
             listener {tls_port} 127.0.0.1\ncafile {p}/ca.pem\ncertfile {p}/server.pem\n\
             keyfile {p}/server.key\nrequire_certificate true\n\
             listener {plain_port} 127.0.0.1\n"
        ),
        tls_port,
        Duration::from_secs(15),
    );
    let worker_config = |id: &str, cert: &str| {
        format!(
            "[mqtt]\nhost = \"localhost\"\nport = {tls_port}\nclient_id = \"{id}\"\n\
             [mqtt.tls]\nca_file = \"{p}/ca.pem\"\nclient_cert_file = \"{p}/{cert}.pem\"\n\
             client_key_file = \"{p}/{cert}.key\"\n[postgres]\nurl = \"{}\"\n",
            pg.url()
        )
    };
    let _worker = Worker::with_config(d, "w1", &worker_config("w1", "client"));
    let rogue = Worker::with_config(d, "w2", &worker_config("w2", "rogue"));
    wait_until(Duration::from_secs(30), "the worker's tables", || {
        pg.psql("SELECT count(*) FROM worker_stats").is_some()
    });
    // The station side of this test publishes on the plain listener.
    let record =
        r#"{"id":"66666666-6666-4666-8666-666666666666","seq":1,"stream":"sale","t":1,"body":{}}"#;
    let publish = || {
        Command::new("mosquitto_pub")
            .args(["-p", &plain_port.to_string(), "-q", "1"])
            .args(["-t", "forecourt/ST1/events/sale", "-m", record])
            .status()
            .is_ok_and(|s| s.success())
    };
    // Published once the worker's shared subscription is there (it then holds it).
    wait_until(
        Duration::from_secs(30),
        "the record stored over TLS",
        || {
            let _ = publish();
            pg.psql("SELECT count(*) FROM events").as_deref() == Some("1")
        },
    );
    // The rogue tried (and was turned away) at least once.
    wait_until(
        Duration::from_secs(30),
        "the rogue worker's refused connection",
        || std::fs::read_to_string(&rogue.log).is_ok_and(|l| l.contains("broker connection")),
    );
    let rogue_log = std::fs::read_to_string(&rogue.log).unwrap_or_default();
    assert!(
        !rogue_log.contains("connected to the broker"),
        "a certificate from another CA got in: {rogue_log}"
    );
    assert_eq!(
        pg.number("SELECT count(*) FROM worker_stats WHERE worker = 'w2'"),
        0
    );
}
