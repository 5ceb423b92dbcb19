//! The whole chain with real parts: a generated video with two cars read by the real ONNX models,
//! simulated pumps the agent takes the sales from (a DART pump on a socat pty polled by the agent,
//! or an IFSF dispenser node over TCP watched by it), a real mosquitto. Each sale must reach the
//! broker with the plate of the car that stood at its fuelling point, and leave the outbox.

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;
use support::*;

const SCENARIO: &str = r#"
loop_s = 40.0
[video]
width = 1280
height = 720
fps = 10
[[pump]]
fp = 1
address = 0x50
decimals = { volume = 2, amount = 2, price = 2 }
prices = ["7.85", "8.32"]
[[pump]]
fp = 2
address = 0x51
decimals = { volume = 2, amount = 2, price = 2 }
prices = ["7.85", "8.32"]
[[car]]
plate = "苏E05EV8"
fp = 1
arrive_s = 0.5
depart_s = 21.0
fill = { nozzle = 1, start_s = 5.0, end_s = 13.0, volume = "35.21" }
[[car]]
plate = "京A12345"
fp = 2
arrive_s = 1.5
depart_s = 23.0
fill = { nozzle = 2, start_s = 6.0, end_s = 15.0, volume = "20.00" }
"#;

/// Where the agent takes its sales from, and the simulator that plays it.
enum Source {
    /// A DART line: the simulator's end and the agent's end of a pty pair.
    Dart {
        sim_end: std::path::PathBuf,
        agent_end: std::path::PathBuf,
    },
    /// An IFSF dispenser node on a TCP port.
    IfsfTcp,
    /// A forecourt controller with the IFSF POS-FDC interface on a TCP port.
    IfsfFdc,
}

impl Source {
    /// The `[[dispenser]]` section for a simulator at `lan` (the LAN sources' address).
    fn dispenser_section(&self, lan: Option<std::net::SocketAddr>) -> String {
        let lan = lan.map(|a| a.to_string()).unwrap_or_default();
        match self {
            Source::Dart { agent_end, .. } => format!(
                r#"
[[dispenser]]
protocol = "dart"
port = "{pty}"
auto_authorize = true
response_timeout_ms = 150
fps = [
  {{ fp = 1, address = 0x50, decimals = {{ volume = 2, amount = 2, price = 2 }}, grades = ["92#", "95#"] }},
  {{ fp = 2, address = 0x51, decimals = {{ volume = 2, amount = 2, price = 2 }}, grades = ["92#", "95#"] }},
]
"#,
                pty = agent_end.display()
            ),
            Source::IfsfTcp => format!(
                r#"
[[dispenser]]
protocol = "ifsf_tcp"
address = "{lan}"
node = 1
own_node = 9
poll_interval_s = 1
silence_timeout_s = 5
fps = [
  {{ fp = 1, point = 1, grades = ["92#", "95#"] }},
  {{ fp = 2, point = 2, grades = ["92#", "95#"] }},
]
"#
            ),
            Source::IfsfFdc => format!(
                r#"
[[dispenser]]
protocol = "ifsf_fdc"
address = "{lan}"
passphrase = "forecourt"
fps = [
  {{ fp = 1, pump = 1, grades = ["92#", "95#"] }},
  {{ fp = 2, pump = 2, grades = ["92#", "95#"] }},
]
"#
            ),
        }
    }

    /// The simulator, started; the address it listens on for the LAN sources.
    fn start_simulator(
        &self,
        dir: &std::path::Path,
        scenario: &std::path::Path,
    ) -> (Proc, Option<std::net::SocketAddr>) {
        let scenario = scenario.to_str().unwrap();
        let lan = |protocol: &str| {
            let args = [
                "--protocol",
                protocol,
                "--passphrase",
                "forecourt",
                "--scenario",
                scenario,
            ];
            let (sim, address) = start_lan_simulator(dir, &args, Stdio::null());
            (sim, Some(address))
        };
        match self {
            Source::Dart { sim_end, .. } => {
                let sim = Proc::spawn(
                    "dart-pump-sim",
                    Command::new(binary("dart-pump-sim"))
                        .arg("--port")
                        .arg(sim_end)
                        .args(["--scenario", scenario])
                        .stderr(Stdio::null()),
                );
                (sim, None)
            }
            Source::IfsfTcp => lan("ifsf-tcp"),
            Source::IfsfFdc => lan("ifsf-fdc"),
        }
    }
}

fn agent_config(
    dir: &std::path::Path,
    video: &std::path::Path,
    dispenser: &str,
    port: u16,
) -> String {
    let root = repo_root();
    format!(
        r#"
station_id = "e2e"
data_dir = "{data}"
trace_file = "{trace}"
[plates]
models_dir = "{models}"
[[camera]]
name = "cam1"
url = "{video}"
max_fps = 4.0
{dispenser}
[[fp]]
fp = 1
zones = [{{ camera = "cam1", polygon = [[0.0, 0.2], [0.5, 0.2], [0.5, 1.0], [0.0, 1.0]] }}]
[[fp]]
fp = 2
zones = [{{ camera = "cam1", polygon = [[0.5, 0.2], [1.0, 0.2], [1.0, 1.0], [0.5, 1.0]] }}]
[matcher]
grace_s = 2.0
[uplink]
host = "127.0.0.1"
port = {port}
"#,
        data = dir.join("data").display(),
        trace = dir.join("trace.jsonl").display(),
        models = root.join("models").display(),
        video = video.display(),
        dispenser = dispenser,
    )
}

/// One chain at a time: two agents reading video at once on a small machine would starve each
/// other's plate reader.
static ONE_CHAIN: Mutex<()> = Mutex::new(());

#[test]
fn sale_reaches_the_broker_with_the_plate_of_the_car_at_the_pump() {
    let _one = ONE_CHAIN.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let (_socat, sim_end, agent_end) = pty_pair(dir.path());
    chain(dir.path(), Source::Dart { sim_end, agent_end });
}

#[test]
fn sale_from_an_ifsf_dispenser_reaches_the_broker_with_the_plate() {
    let _one = ONE_CHAIN.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    chain(dir.path(), Source::IfsfTcp);
}

#[test]
fn sale_from_an_ifsf_fdc_controller_reaches_the_broker_with_the_plate() {
    let _one = ONE_CHAIN.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    chain(dir.path(), Source::IfsfFdc);
}

fn chain(dir: &std::path::Path, source: Source) {
    let scenario = dir.join("scenario.toml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let video = cached_video(SCENARIO);

    let (_broker, port) = start_mosquitto(dir);

    // HQ: wait for both sales (or give up after 120 s).
    let mut hq = Proc::spawn(
        "mosquitto_sub",
        Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args([
                "-t",
                "forecourt/e2e/events/sale",
                "-q",
                "1",
                "-C",
                "2",
                "-W",
                "120",
            ])
            .stdout(Stdio::piped()),
    );
    std::thread::sleep(Duration::from_millis(300));
    let (_sim, lan) = source.start_simulator(dir, &scenario);
    let config = dir.join("agent.toml");
    let dispenser = source.dispenser_section(lan);
    std::fs::write(&config, agent_config(dir, &video, &dispenser, port)).unwrap();
    let mut agent = Proc::spawn(
        "forecourt-agent",
        Command::new(binary("forecourt-agent"))
            .args(["run", "--config"])
            .arg(&config)
            .stderr(std::fs::File::create(dir.join("agent.log")).unwrap()),
    );

    let status = hq.wait_for_exit(Duration::from_secs(130));
    let out = BufReader::new(hq.child.stdout.take().unwrap());
    let sales: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).expect("sale message is JSON"))
        .collect();
    let log = || std::fs::read_to_string(dir.join("agent.log")).unwrap_or_default();
    assert!(
        status.is_some_and(|s| s.success()) && sales.len() == 2,
        "expected 2 sales at the broker, got {sales:?}\nagent log:\n{}",
        log()
    );

    let mut by_fp: Vec<&Value> = sales.iter().collect();
    by_fp.sort_by_key(|m| m["body"]["fp"].as_u64());
    for (m, (fp, plate, volume, amount)) in by_fp.iter().zip([
        (1, "苏E05EV8", "35.21", "276.40"),
        (2, "京A12345", "20.00", "166.40"),
    ]) {
        let body = &m["body"];
        assert_eq!(body["fp"], fp, "{m}");
        assert_eq!(
            body["plate"],
            plate,
            "wrong plate for fp {fp}: {m}\nagent log:\n{}",
            log()
        );
        assert_eq!(body["volume"], volume, "{m}");
        assert_eq!(body["amount"], amount, "{m}");
        assert!(body["plate_confidence"].as_f64().unwrap() >= 0.6, "{m}");
        assert!(m["id"].as_str().is_some_and(|id| id.len() == 36), "{m}");
        assert_eq!(m["stream"], "sale");
    }
    // Sequence numbers of the sale stream: 1 and 2, no gap.
    let mut seqs: Vec<u64> = sales.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    seqs.sort();
    assert_eq!(seqs, vec![1, 2]);

    // Everything the agent committed reaches the broker (bounded wait: visits and arrivals may
    // still be on their way when the sales are), then it stops cleanly with nothing left
    // unacknowledged in the outbox.
    let db = dir.join("data/outbox.sqlite");
    wait_until(Duration::from_secs(15), "the outbox to drain", || {
        Command::new("sqlite3")
            .arg("-readonly")
            .arg(&db)
            .arg("SELECT COUNT(*) FROM records;")
            .output()
            .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "0")
    });
    assert!(
        agent
            .terminate(Duration::from_secs(15))
            .is_some_and(|s| s.success()),
        "agent did not stop cleanly:\n{}",
        log()
    );
    let outbox = outbox::Outbox::open(dir.join("data/outbox.sqlite")).unwrap();
    let left = outbox.pending(None, 100).unwrap();
    assert!(
        left.is_empty(),
        "records left in the outbox after a clean stop: {left:?}"
    );

    // The trace the agent recorded, replayed, gives the same verdicts as live.
    let replayed = Command::new(binary("forecourt-agent"))
        .arg("replay")
        .arg(dir.join("trace.jsonl"))
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        replayed.status.success(),
        "{}",
        String::from_utf8_lossy(&replayed.stderr)
    );
    // The last line per sale is replay's verdict (a later line is the revisit's correction).
    let mut replayed_by_sale: BTreeMap<(u64, i64), Value> = BTreeMap::new();
    for line in String::from_utf8_lossy(&replayed.stdout).lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let key = (v["fp"].as_u64().unwrap(), v["t"].as_i64().unwrap());
        replayed_by_sale.insert(key, v["plate"].clone());
    }
    let replayed: Vec<(u64, Value)> = replayed_by_sale
        .into_iter()
        .map(|((fp, _), plate)| (fp, plate))
        .collect();
    // Live: each sale's plate, unless the matcher corrected it later (kept in the archive).
    let corrections = Command::new("sqlite3")
        .arg("-readonly")
        .arg(&db)
        .arg("SELECT CAST(payload AS TEXT) FROM archive WHERE stream = 'sale_correction' ORDER BY seq;")
        .output()
        .unwrap();
    assert!(corrections.status.success());
    let mut corrected: BTreeMap<String, Value> = BTreeMap::new();
    for line in String::from_utf8_lossy(&corrections.stdout).lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["body"]["source"], "matcher", "{v}");
        corrected.insert(
            v["body"]["sale_id"].as_str().unwrap().to_string(),
            v["body"]["plate"].clone(),
        );
    }
    let live: Vec<(u64, Value)> = by_fp
        .iter()
        .map(|m| {
            let id = m["id"].as_str().unwrap();
            let plate = corrected
                .get(id)
                .cloned()
                .unwrap_or_else(|| m["body"]["plate"].clone());
            (m["body"]["fp"].as_u64().unwrap(), plate)
        })
        .collect();
    assert_eq!(
        replayed, live,
        "replay of the recorded trace differs from live"
    );
}
