//! HQ commands to a running agent over a real mosquitto: a plate correction becomes a
//! `sale_correction` event, a reload applies matcher changes live and names what needs a restart,
//! and bad commands get an error reply and change nothing.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

fn config_text(dir: &std::path::Path, port: u16, grace: &str, prefix: &str) -> String {
    format!(
        "station_id = \"cmd\"\ndata_dir = \"{}\"\n[plates]\nmodels_dir = \"{}\"\n[matcher]\ngrace_s = {grace}\n[uplink]\nhost = \"127.0.0.1\"\nport = {port}\nprefix = \"{prefix}\"\n",
        dir.join("data").display(),
        repo_root().join("models").display(),
    )
}

/// Publishes one command and waits for its reply. The command goes out only once the reply's
/// subscription is acknowledged (mosquitto_sub -d prints the SUBACK), so a slow start of the
/// subscriber cannot lose the reply.
fn command(port: u16, name: &str, payload: &str) -> Value {
    let port = port.to_string();
    // Line-buffered: mosquitto_sub's debug lines would otherwise sit in its stdio buffer.
    let mut sub = Proc::spawn(
        "mosquitto_sub",
        Command::new("stdbuf")
            .args(["-oL", "mosquitto_sub"])
            .args(["-d", "-h", "127.0.0.1", "-p", &port, "-C", "1", "-W", "40"])
            .args(["-t", &format!("forecourt/cmd/cmd/{name}/reply")])
            .stdout(Stdio::piped()),
    );
    let lines = lines_of(sub.child.stdout.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(20);
    let next_line = |what: &str| {
        lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("mosquitto_sub: no {what} within 20 s"))
    };
    while !next_line("SUBACK").contains("SUBACK") {}
    let status = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port, "-q", "1"])
        .args(["-t", &format!("forecourt/cmd/cmd/{name}"), "-m", payload])
        .status()
        .unwrap();
    assert!(status.success());
    // Debug lines, then the reply itself: the one line that is a JSON object.
    let reply = loop {
        let line = next_line(&format!("reply to {name}"));
        if line.trim_start().starts_with('{') {
            break line;
        }
    };
    let _ = sub.wait_for_exit(Duration::from_secs(5));
    serde_json::from_str(reply.trim()).unwrap_or_else(|e| panic!("{e}: {reply}"))
}

/// The lines `out` gives, as they come.
fn lines_of(out: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Starts the agent on `config`, logging to `dir/agent.log`, and waits until it runs.
fn start_agent(dir: &std::path::Path, config: &std::path::Path) -> Proc {
    let agent = Proc::spawn(
        "forecourt-agent",
        Command::new(binary("forecourt-agent"))
            .args(["run", "--config"])
            .arg(config)
            .stderr(std::fs::File::create(dir.join("agent.log")).unwrap()),
    );
    wait_until(Duration::from_secs(20), "agent online", || {
        std::fs::read_to_string(dir.join("agent.log")).is_ok_and(|l| l.contains("agent running"))
    });
    agent
}

#[test]
fn commands_do_what_they_say_and_bad_ones_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, port) = start_mosquitto(dir.path());
    let config = dir.path().join("agent.toml");
    std::fs::write(&config, config_text(dir.path(), port, "3.0", "forecourt")).unwrap();
    // A sale this station sent before (its record is in the outbox), for the correction.
    let sale_id = {
        let outbox = outbox::Outbox::open(dir.path().join("data/outbox.sqlite")).unwrap();
        let body = serde_json::json!({"fp": 1, "nozzle": 1, "volume": "10.00"});
        outbox
            .append("sale", "forecourt/cmd/events/sale", &body)
            .unwrap()
            .id
            .hyphenated()
            .to_string()
    };
    let mut hq = Proc::spawn(
        "mosquitto_sub",
        Command::new("mosquitto_sub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-q",
                "1",
                "-C",
                "1",
                "-W",
                "60",
            ])
            .args(["-t", "forecourt/cmd/events/sale_correction"])
            .stdout(Stdio::piped()),
    );
    let _agent = start_agent(dir.path(), &config);
    let log = || std::fs::read_to_string(dir.path().join("agent.log")).unwrap_or_default();

    let ping = command(port, "ping", r#"{"id":"p1"}"#);
    assert_eq!(ping["ok"], true, "{ping}");

    // Bad commands: an error reply each.
    for (name, payload) in [
        (
            "plate_correction",
            r#"{"id":"b1","sale_id":"not-a-uuid","plate":"苏E05EV8"}"#,
        ),
        (
            "plate_correction",
            r#"{"id":"b2","sale_id":"6f1c1d3e-0000-4000-8000-000000000001","plate":"NOTAPLATE"}"#,
        ),
        // Well-formed, but no sale of this station has that id.
        (
            "plate_correction",
            r#"{"id":"b6","sale_id":"6f1c1d3e-0000-4000-8000-000000000001","plate":"苏E05EV8"}"#,
        ),
        ("record_trace", r#"{"id":"b3","minutes":0}"#),
        ("reload_config", "not json"),
        ("hourly", r#"{"id":"b4","hour":"now"}"#),
        // A well-formed request for an hour the station does not hold.
        ("hourly", r#"{"id":"b5","hour":0}"#),
    ] {
        let reply = command(port, name, payload);
        assert_eq!(reply["ok"], false, "{name} {payload} -> {reply}");
        assert!(
            reply["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{reply}"
        );
    }

    let fixed = command(
        port,
        "plate_correction",
        &format!(r#"{{"id":"c1","sale_id":"{sale_id}","plate":"苏E05EV8","by":"hq-desk"}}"#),
    );
    assert_eq!(fixed["ok"], true, "{fixed}\n{}", log());
    assert!(
        hq.wait_for_exit(Duration::from_secs(20)).is_some(),
        "no sale_correction event"
    );
    let event: Value = serde_json::from_str(
        std::io::read_to_string(hq.child.stdout.take().unwrap())
            .unwrap()
            .trim(),
    )
    .unwrap();
    assert_eq!(event["body"]["plate"], "苏E05EV8");
    assert_eq!(event["body"]["sale_id"], sale_id.as_str());
    assert_eq!(event["seq"], 1);

    // An invalid config file is refused and changes nothing.
    std::fs::write(&config, "station_id = [").unwrap();
    let refused = command(port, "reload_config", r#"{"id":"r0"}"#);
    assert_eq!(refused["ok"], false, "{refused}");

    // A valid one: the matcher change applies live, the prefix change needs a restart.
    std::fs::write(&config, config_text(dir.path(), port, "5.0", "elsewhere")).unwrap();
    let reloaded = command(port, "reload_config", r#"{"id":"r1"}"#);
    assert_eq!(reloaded["ok"], true, "{reloaded}");
    assert_eq!(
        reloaded["result"]["applied"],
        serde_json::json!(["matcher"]),
        "{reloaded}"
    );
    assert_eq!(
        reloaded["result"]["needs_restart"],
        serde_json::json!(["uplink"]),
        "{reloaded}"
    );

    // HQ's notes on plates: set (the reply says what is held), and a bad entry refuses the
    // whole command.
    let until = unix_ms() + 86_400_000;
    let noted = command(
        port,
        "plate_notes",
        &format!(
            r#"{{"id":"n1","notes":[{{"plate":"苏E05EV8","note":"member, prefers 95#","until":{until}}}]}}"#
        ),
    );
    assert_eq!(noted["ok"], true, "{noted}");
    assert_eq!(
        noted["result"],
        serde_json::json!({"set": 1, "removed": 0, "held": 1}),
        "{noted}"
    );
    let refused = command(
        port,
        "plate_notes",
        &format!(
            r#"{{"id":"n2","notes":[{{"plate":"京A12345","note":"x","until":{until}}},{{"plate":"NOTAPLATE","note":"y","until":{until}}}]}}"#
        ),
    );
    assert_eq!(refused["ok"], false, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .is_some_and(|e| e.contains("plate")),
        "{refused}"
    );
    let removed = command(port, "plate_notes", r#"{"id":"n3","remove":["苏E05EV8"]}"#);
    assert_eq!(
        removed["result"],
        serde_json::json!({"set": 0, "removed": 1, "held": 0}),
        "{removed}"
    );

    let trace = command(port, "record_trace", r#"{"id":"t1","minutes":1}"#);
    assert_eq!(trace["ok"], true, "{trace}");
    assert!(
        trace["result"]["file"]
            .as_str()
            .is_some_and(|f| std::path::Path::new(f).exists()),
        "{trace}"
    );
}

/// Hourly summaries published before a restart (waiting in the outbox or archived after HQ's
/// ack) are still answered on demand by the restarted agent.
#[test]
fn hourly_summaries_from_before_a_restart_are_answered() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, port) = start_mosquitto(dir.path());
    let config = dir.path().join("agent.toml");
    std::fs::write(&config, config_text(dir.path(), port, "3.0", "forecourt")).unwrap();
    // What an earlier run left: one summary acknowledged (archived), one still waiting.
    const H: i64 = 1_795_417_200_000; // a whole UTC hour
    let summary = |hour: i64, arrivals: u32| serde_json::json!({"hour": hour, "entrance_arrivals": arrivals, "late_events": 0, "fps": []});
    {
        let outbox = outbox::Outbox::open(dir.path().join("data/outbox.sqlite")).unwrap();
        let first = outbox
            .append("hourly", "forecourt/cmd/events/hourly", &summary(H, 7))
            .unwrap();
        outbox.ack_many(&[first.rowid]).unwrap();
        outbox
            .append(
                "hourly",
                "forecourt/cmd/events/hourly",
                &summary(H + 3_600_000, 9),
            )
            .unwrap();
    }
    let _agent = start_agent(dir.path(), &config);
    let log = || std::fs::read_to_string(dir.path().join("agent.log")).unwrap_or_default();
    for (hour, arrivals) in [(H + 1_000, 7), (H + 3_600_000 + 59_000, 9)] {
        let reply = command(
            port,
            "hourly",
            &format!(r#"{{"id":"h{arrivals}","hour":{hour}}}"#),
        );
        assert_eq!(reply["ok"], true, "{reply}\n{}", log());
        assert_eq!(reply["result"]["entrance_arrivals"], arrivals, "{reply}");
    }
    let missing = command(
        port,
        "hourly",
        &format!(r#"{{"id":"h0","hour":{}}}"#, H - 1),
    );
    assert_eq!(missing["ok"], false, "{missing}");
}
