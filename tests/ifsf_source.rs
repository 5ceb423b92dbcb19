//! The agent with an IFSF source, as processes: a simulated station system (an IFSF over TCP/IP
//! dispenser node, or a forecourt controller with the IFSF POS-FDC interface) with four fuelling
//! points and random customers (link drops included), the real agent watching it, a real
//! mosquitto. The agent is killed with SIGKILL twice, once staying down while sales complete.
//! Every sale the system made reaches HQ exactly once, with its exact volume, amount and price;
//! the system never received a write, lock or clear (it exits non-zero if it did).

mod support;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::*;

/// No new customer after this many seconds of the simulator's run.
const CUSTOMERS_UNTIL_S: f64 = 24.0;

#[derive(Clone, Copy)]
enum Protocol {
    IfsfTcp,
    IfsfFdc,
}

impl Protocol {
    fn sim_name(self) -> &'static str {
        match self {
            Protocol::IfsfTcp => "ifsf-tcp",
            Protocol::IfsfFdc => "ifsf-fdc",
        }
    }

    fn dispenser_section(self, sim: std::net::SocketAddr) -> String {
        let (head, point) = match self {
            Protocol::IfsfTcp => (
                "protocol = \"ifsf_tcp\"\nnode = 1\nown_node = 9\npoll_interval_s = 1\nsilence_timeout_s = 5",
                "point",
            ),
            Protocol::IfsfFdc => (
                "protocol = \"ifsf_fdc\"\npassphrase = \"forecourt\"\nheartbeat_interval_s = 2\nreconcile_interval_s = 5\nsilence_timeout_s = 8",
                "pump",
            ),
        };
        let fps: Vec<String> = (1..=4)
            .map(|n| format!("  {{ fp = {n}, {point} = {n}, grades = [\"92#\", \"95#\"] }},"))
            .collect();
        format!(
            "[[dispenser]]\n{head}\naddress = \"{sim}\"\nfps = [\n{}\n]\n",
            fps.join("\n")
        )
    }
}

fn agent_config(
    dir: &std::path::Path,
    protocol: Protocol,
    sim: std::net::SocketAddr,
    broker_port: u16,
) -> String {
    format!(
        r#"
station_id = "ifsf"
data_dir = "{data}"
[plates]
models_dir = "{models}"
{dispenser}
[matcher]
grace_s = 1.0
[uplink]
host = "127.0.0.1"
port = {broker_port}
"#,
        data = dir.join("data").display(),
        models = repo_root().join("models").display(),
        dispenser = protocol.dispenser_section(sim),
    )
}

fn start_agent(dir: &std::path::Path, config: &std::path::Path, run: u32) -> Proc {
    Proc::spawn(
        "forecourt-agent",
        Command::new(binary("forecourt-agent"))
            .args(["run", "--config"])
            .arg(config)
            .stderr(std::fs::File::create(dir.join(format!("agent-{run}.log"))).unwrap()),
    )
}

fn lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// (fp, volume, amount, price) of a sale.
type Fill = (u64, String, String, String);

fn fill(v: &Value) -> Fill {
    (
        v["fp"].as_u64().unwrap(),
        v["volume"].as_str().unwrap().to_owned(),
        v["amount"].as_str().unwrap().to_owned(),
        v["price"].as_str().unwrap().to_owned(),
    )
}

/// The distinct sales at HQ (a record published again after a kill keeps its id).
fn sales_at_hq(path: &std::path::Path) -> BTreeMap<String, Value> {
    lines(path)
        .into_iter()
        .map(|m| (m["id"].as_str().unwrap().to_owned(), m["body"].clone()))
        .collect()
}

#[test]
fn every_ifsf_tcp_sale_reaches_hq_once_through_agent_kills() {
    every_sale_once_through_agent_kills(Protocol::IfsfTcp);
}

#[test]
fn every_ifsf_fdc_sale_reaches_hq_once_through_agent_kills() {
    every_sale_once_through_agent_kills(Protocol::IfsfFdc);
}

fn every_sale_once_through_agent_kills(protocol: Protocol) {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let (_broker, broker_port) = start_mosquitto(dir);
    let hq_log = dir.join("hq.jsonl");
    let _hq = Proc::spawn(
        "mosquitto_sub",
        Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &broker_port.to_string()])
            .args(["-t", "forecourt/ifsf/events/sale", "-q", "1"])
            .stdout(std::fs::File::create(&hq_log).unwrap()),
    );
    // HQ subscribed before the first sale can come (the first customer needs seconds).
    std::thread::sleep(Duration::from_millis(300));
    let truth = dir.join("truth.jsonl");
    let until = CUSTOMERS_UNTIL_S.to_string();
    let (mut sim, sim_address) = start_lan_simulator(
        dir,
        &[
            "--protocol",
            protocol.sim_name(),
            "--fps",
            "4",
            "--random",
            "--seed",
            "11",
            "--flow-lps",
            "15",
            "--pause-s",
            "0.5,2",
            "--customers-until-s",
            &until,
            "--clear-after-s",
            "4",
            "--link-drops-per-min",
            "3",
            "--sales-log",
            truth.to_str().unwrap(),
        ],
        std::fs::File::create(dir.join("sim.log")).unwrap().into(),
    );
    let started = std::time::Instant::now();
    let config = dir.join("agent.toml");
    std::fs::write(
        &config,
        agent_config(dir, protocol, sim_address, broker_port),
    )
    .unwrap();

    let mut agent = start_agent(dir, &config, 1);
    std::thread::sleep(Duration::from_secs(6));
    assert!(send_signal(agent.child.id(), "KILL"));
    agent.wait_for_exit(Duration::from_secs(5));
    let mut agent = start_agent(dir, &config, 2);
    std::thread::sleep(Duration::from_secs(6));
    assert!(send_signal(agent.child.id(), "KILL"));
    agent.wait_for_exit(Duration::from_secs(5));
    // Down while customers keep buying: their sales wait in the node's buffer.
    std::thread::sleep(Duration::from_secs(4));
    let mut agent = start_agent(dir, &config, 3);

    // The last customer is done within a few seconds of CUSTOMERS_UNTIL_S (at most 60 litres
    // at 15 l/s); then every sale must come through.
    let settled = Duration::from_secs_f64(CUSTOMERS_UNTIL_S + 5.0);
    let logs = || {
        (1..=3)
            .map(|run| {
                std::fs::read_to_string(dir.join(format!("agent-{run}.log"))).unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\n----\n")
    };
    wait_until(Duration::from_secs(120), "every sale at HQ", || {
        started.elapsed() >= settled && sales_at_hq(&hq_log).len() >= lines(&truth).len()
    });
    // A second report of a sale would come now.
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        agent
            .terminate(Duration::from_secs(15))
            .is_some_and(|s| s.success()),
        "agent did not stop cleanly:\n{}",
        logs()
    );
    assert!(send_signal(sim.child.id(), "INT"));
    let sim_status = sim.wait_for_exit(Duration::from_secs(10));
    assert!(
        sim_status.is_some_and(|s| s.success()),
        "the node received a write or failed:\n{}",
        std::fs::read_to_string(dir.join("sim.log")).unwrap_or_default()
    );

    let truth = lines(&truth);
    assert!(truth.len() >= 16, "only {} sales made", truth.len());
    let at_hq = sales_at_hq(&hq_log);
    let mut sold: Vec<Fill> = truth.iter().map(fill).collect();
    let mut reported: Vec<Fill> = at_hq.values().map(fill).collect();
    sold.sort();
    reported.sort();
    assert_eq!(reported, sold, "sales at HQ vs sold\n{}", logs());
    let keyed = at_hq
        .values()
        .filter(|b| {
            b["source_key"]
                .as_str()
                .is_some_and(|k| k.starts_with(protocol.sim_name()))
        })
        .count();
    assert_eq!(keyed, at_hq.len(), "every sale carries its source key");
    let log = logs();
    let counted_once = log.matches("counted once").count();
    eprintln!(
        "{} sales, {} reported again after a kill and counted once",
        truth.len(),
        counted_once
    );
    assert!(
        counted_once > 0,
        "no sale was reported again after a kill: the kills tested nothing?\n{log}"
    );
}
