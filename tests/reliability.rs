//! Reliability: a fault-injection suite that proves nothing is lost.
//!
//! Real processes: `forecourt-agent` (restarted by a small supervisor, as systemd would), a
//! persistent mosquitto, `dart-pump-sim` on a socat pty pair with 4 fuelling points and a
//! generated rush-hour schedule, a generated video, and two HQ subscribers (the `hq-consumer`
//! binary for its seq/dedupe summary, and a raw `mosquitto_sub` whose messages the test checks
//! against the simulator's `--sales-log` ground truth).
//!
//! Invariants after every scenario:
//! - every sale the pump completed is at HQ exactly once after dedupe by id, or is accounted for
//!   by `sale_gap` events (per fuelling point and nozzle, the unreported volume equals the gap
//!   volume);
//! - no sequence gaps and no seq conflicts per stream;
//! - no "panicked" in the agent's logs;
//! - the agent's peak RSS (VmHWM) stays under a bound.
//!
//! A summary table is printed after each scenario (run with `-- --nocapture` to see it) and
//! appended to `target/reliability-report.txt`.
//!
//! Short profile by default; `FORECOURT_LONG=1` for the long one. At most two scenarios run at a
//! time (each is mostly waiting on real time: rush hours, kills and restarts, about 15 % of a core
//! with its agent's plate reader), whatever the number of test threads.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use faultfs::{power_cut, Faults};
use mqtt_fault_proxy::{AckShuffle, FaultProxy};
use seeded_rng::Rng;
use serde_json::Value;
use support::*;

const STATION: &str = "rel";
/// Peak RSS bound for the agent (ONNX Runtime with both models loaded is most of it).
const MAX_RSS_KB: u64 = 1_000_000;

/// Scenarios running now, at most [`SCENARIOS_AT_ONCE`].
static RUNNING: Mutex<usize> = Mutex::new(0);
static SLOT_FREED: Condvar = Condvar::new();
const SCENARIOS_AT_ONCE: usize = 2;

/// What the agent logs for each sale it finds completed on a pump when it starts.
const RECOVERED_SALE: &str = "recovered a sale completed while the agent was down";

/// A scenario's turn to run: held for the scenario's length, given back when dropped (a failed
/// scenario's too).
struct ScenarioSlot;

fn scenario_slot() -> ScenarioSlot {
    let mut running = RUNNING.lock().unwrap_or_else(|p| p.into_inner());
    while *running >= SCENARIOS_AT_ONCE {
        running = SLOT_FREED.wait(running).unwrap_or_else(|p| p.into_inner());
    }
    *running += 1;
    ScenarioSlot
}

impl Drop for ScenarioSlot {
    fn drop(&mut self) {
        let mut running = RUNNING.lock().unwrap_or_else(|p| p.into_inner());
        *running -= 1;
        SLOT_FREED.notify_one();
    }
}

// ------------------------------------------------------------------------------------------
// Scenario (ground truth) generation

/// Prices per fp (index = nozzle - 1); all pumps use 2 decimals everywhere.
const PRICES: [&[&str]; 4] = [
    &["7.85", "8.32"],
    &["7.85", "8.32"],
    &["1.99"],
    &["7.85", "8.32", "9.10"],
];

/// One scripted fill (fuelling point, nozzle, start, end, volume in 0.01 l).
#[derive(Clone, Debug)]
struct Fill {
    fp: u8,
    nozzle: u8,
    start_s: f64,
    end_s: f64,
    centilitres: u64,
}

/// A rush hour: every fuelling point busy from `from_s` to `until_s` with customers that fill
/// for 1.5..4 s and leave 1..2.5 s between them. Volumes are unique per fuelling point.
fn rush(seed: u64, from_s: f64, until_s: f64) -> Vec<Fill> {
    let mut rng = Rng::new(seed);
    let mut fills = Vec::new();
    let mut used = std::collections::HashSet::new();
    for fp in 1..=4u8 {
        let mut t = from_s + rng.range(0.0, 1.5);
        while t < until_s {
            let dur = rng.range(1.5, 4.0);
            let nozzle = 1 + (rng.next_u64() % PRICES[usize::from(fp - 1)].len() as u64) as u8;
            let mut cl = 500 + rng.next_u64() % 5500;
            while !used.insert((fp, cl)) {
                cl += 1;
            }
            fills.push(Fill {
                fp,
                nozzle,
                start_s: t,
                end_s: t + dur,
                centilitres: cl,
            });
            t += dur + rng.range(1.0, 2.5);
        }
    }
    fills
}

fn scenario_toml(fills: &[Fill]) -> String {
    let mut s = String::new();
    for (i, prices) in PRICES.iter().enumerate() {
        let p: Vec<String> = prices.iter().map(|p| format!("\"{p}\"")).collect();
        s += &format!("[[pump]]\nfp = {}\nprices = [{}]\n", i + 1, p.join(", "));
    }
    for f in fills {
        s += &format!(
            "[[car]]\nfp = {}\nfill = {{ nozzle = {}, start_s = {:.3}, end_s = {:.3}, volume = \"{}.{:02}\" }}\n",
            f.fp,
            f.nozzle,
            f.start_s,
            f.end_s,
            f.centilitres / 100,
            f.centilitres % 100
        );
    }
    s
}

fn last_end(fills: &[Fill]) -> f64 {
    fills.iter().map(|f| f.end_s).fold(0.0, f64::max)
}

/// A small video with two cars: the camera and the plate reader run during every scenario.
const VIDEO_SCENARIO: &str = r#"
loop_s = 12.0
[video]
width = 640
height = 360
fps = 5
[[pump]]
fp = 1
[[pump]]
fp = 2
[[car]]
plate = "苏E05EV8"
fp = 1
arrive_s = 0.5
depart_s = 10.0
[[car]]
plate = "京A12345"
fp = 2
arrive_s = 1.0
depart_s = 11.0
"#;

// ------------------------------------------------------------------------------------------
// The agent, supervised

struct Agent {
    config: PathBuf,
    log: PathBuf,
    proc: Option<Proc>,
    starts: u32,
    /// Exits the test did not cause (status and when).
    unexpected_exits: Vec<String>,
    max_hwm_kb: u64,
    /// Runs under the `faultfs` shim with these faults on its data dir.
    faults: Option<Faults>,
}

impl Agent {
    fn new(config: PathBuf, log: PathBuf, faults: Option<Faults>) -> Agent {
        Agent {
            config,
            log,
            proc: None,
            starts: 0,
            unexpected_exits: Vec::new(),
            max_hwm_kb: 0,
            faults,
        }
    }

    fn start(&mut self) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut command = Command::new(binary("forecourt-agent"));
        command
            .args(["run", "--config"])
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(log);
        if let Some(faults) = &self.faults {
            faults.apply(&mut command);
        }
        let proc = Proc::spawn("forecourt-agent", &mut command);
        self.starts += 1;
        self.proc = Some(proc);
    }

    fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(|p| p.child.id())
    }

    fn sample_memory(&mut self) {
        if let Some(pid) = self.pid() {
            if let Some(kb) = proc_status_kb(pid, "VmHWM") {
                self.max_hwm_kb = self.max_hwm_kb.max(kb);
            }
        }
    }

    fn kill9(&mut self) {
        self.sample_memory();
        if let Some(mut p) = self.proc.take() {
            send_signal(p.child.id(), "KILL");
            let _ = p.child.wait();
        }
    }

    /// Restarts the agent if it exited by itself (systemd's Restart=on-failure, without the
    /// 5 s pause). Returns whether it had exited.
    fn supervise(&mut self, t0: Instant) -> bool {
        self.sample_memory();
        let exited = match self.proc.as_mut() {
            Some(p) => p.child.try_wait().ok().flatten(),
            None => return false,
        };
        if let Some(status) = exited {
            self.unexpected_exits
                .push(format!("{status} at {:.1} s", t0.elapsed().as_secs_f64()));
            self.proc = None;
            std::thread::sleep(Duration::from_millis(500));
            self.start();
            return true;
        }
        false
    }

    /// SIGTERM; returns the exit status if it stopped within 20 s.
    fn stop(&mut self) -> Option<std::process::ExitStatus> {
        self.sample_memory();
        self.proc
            .take()
            .and_then(|mut p| p.terminate(Duration::from_secs(20)))
    }

    /// Sales the agent's logs say it recovered from a pump after a start.
    fn recovered_sales(&self) -> usize {
        self.log_text().matches(RECOVERED_SALE).count()
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn log_tail(&self) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }
}

// ------------------------------------------------------------------------------------------
// HQ: hq-consumer (summary) and a raw persistent mosquitto_sub (every message)

struct Hq {
    raw: Proc,
    consumer: Proc,
    raw_path: PathBuf,
    consumer_out: PathBuf,
}

impl Hq {
    fn start(dir: &Path, port: u16) -> Hq {
        let raw_path = dir.join("hq-raw.txt");
        let consumer_out = dir.join("hq-consumer.json");
        let consumer_err = dir.join("hq-consumer.err");
        let consumer = Proc::spawn(
            "hq-consumer",
            Command::new(binary("hq-consumer"))
                .args([
                    "--port",
                    &port.to_string(),
                    "--client-id",
                    "rel-hq-consumer",
                ])
                .stdout(std::fs::File::create(&consumer_out).unwrap())
                .stderr(std::fs::File::create(&consumer_err).unwrap()),
        );
        let raw = Proc::spawn(
            "mosquitto_sub",
            Command::new("mosquitto_sub")
                .args(["-h", "127.0.0.1", "-p", &port.to_string()])
                .args(["-c", "-i", "rel-hq-raw", "-q", "1", "-v"])
                .args(["-t", "forecourt/+/events/#", "-t", "hqtest/ready"])
                .stdout(std::fs::File::create(&raw_path).unwrap())
                .stderr(Stdio::null()),
        );
        wait_until(Duration::from_secs(20), "hq-consumer to subscribe", || {
            std::fs::read_to_string(&consumer_err).is_ok_and(|s| s.contains("subscribed"))
        });
        wait_until(
            Duration::from_secs(20),
            "mosquitto_sub to subscribe",
            || {
                let _ = Command::new("mosquitto_pub")
                    .args(["-h", "127.0.0.1", "-p", &port.to_string()])
                    .args(["-q", "1", "-t", "hqtest/ready", "-m", "ready"])
                    .status();
                std::thread::sleep(Duration::from_millis(200));
                std::fs::read_to_string(&raw_path).is_ok_and(|s| s.contains("hqtest/ready"))
            },
        );
        Hq {
            raw,
            consumer,
            raw_path,
            consumer_out,
        }
    }

    fn raw_lines(&self) -> usize {
        std::fs::read_to_string(&self.raw_path)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }

    /// Stops both; returns the raw messages (topic, payload) and the consumer's summary.
    fn finish(mut self) -> (Vec<(String, String)>, Value) {
        send_signal(self.consumer.child.id(), "INT");
        self.consumer.wait_for_exit(Duration::from_secs(10));
        send_signal(self.raw.child.id(), "TERM");
        self.raw.wait_for_exit(Duration::from_secs(5));
        let summary = std::fs::read_to_string(&self.consumer_out)
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or(Value::Null);
        let raw = std::fs::read_to_string(&self.raw_path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once(' '))
            .filter(|(t, _)| t.starts_with("forecourt/"))
            .map(|(t, p)| (t.to_string(), p.to_string()))
            .collect();
        (raw, summary)
    }
}

// ------------------------------------------------------------------------------------------
// The rig

struct RigOptions {
    /// Mount a tmpfs of this many MiB on the data dir (disk-full scenario).
    data_dir: Option<PathBuf>,
    camera: bool,
    /// Extra lines for the agent config's [uplink] section.
    uplink_extra: &'static str,
    /// The agent reaches the broker through a proxy that treats PUBACKs so.
    ack_shuffle: Option<AckShuffle>,
    /// The agent runs under the `faultfs` shim on its data dir (full disk, stalled sync).
    faults: bool,
    /// ... and the shim keeps an undo log for power cuts (implies `faults`).
    undo_log: bool,
}

impl Default for RigOptions {
    fn default() -> Self {
        RigOptions {
            data_dir: None,
            camera: true,
            uplink_extra: "",
            ack_shuffle: None,
            faults: false,
            undo_log: false,
        }
    }
}

struct Rig {
    dir: tempfile::TempDir,
    port: u16,
    broker: Option<Proc>,
    socat: Option<Proc>,
    sim: Option<Proc>,
    sim_started: Instant,
    sims: u32,
    agent: Agent,
    hq: Option<Hq>,
    /// Between the agent and the broker, with `RigOptions::ack_shuffle`.
    proxy: Option<FaultProxy>,
    pty_sim: PathBuf,
    pty_agent: PathBuf,
    truth: PathBuf,
    data_dir: PathBuf,
    video: Option<PathBuf>,
    t0: Instant,
}

fn agent_config(
    data_dir: &Path,
    video: Option<&Path>,
    pty: &Path,
    port: u16,
    uplink_extra: &str,
) -> String {
    let mut grades = Vec::new();
    for prices in PRICES {
        let g: Vec<String> = (1..=prices.len()).map(|n| format!("\"G{n}\"")).collect();
        grades.push(g.join(", "));
    }
    let camera = match video {
        Some(v) => format!(
            "[[camera]]\nname = \"cam1\"\nurl = \"{}\"\nloop_file = true\nmax_fps = 2.0\n",
            v.display()
        ),
        None => String::new(),
    };
    let mut zones = String::new();
    if video.is_some() {
        for fp in 1..=4 {
            let x0 = (fp - 1) as f64 * 0.25;
            let x1 = x0 + 0.25;
            zones += &format!(
                "[[fp]]\nfp = {fp}\nzones = [{{ camera = \"cam1\", polygon = [[{x0}, 0.2], [{x1}, 0.2], [{x1}, 1.0], [{x0}, 1.0]] }}]\n"
            );
        }
    }
    format!(
        r#"
station_id = "{STATION}"
data_dir = "{data}"
[plates]
models_dir = "{models}"
{camera}
[[dispenser]]
protocol = "dart"
port = "{pty}"
auto_authorize = true
response_timeout_ms = 150
totals_interval_s = 2
fps = [
  {{ fp = 1, address = 0x50, grades = [{g1}] }},
  {{ fp = 2, address = 0x51, grades = [{g2}] }},
  {{ fp = 3, address = 0x52, grades = [{g3}] }},
  {{ fp = 4, address = 0x53, grades = [{g4}] }},
]
{zones}
[matcher]
grace_s = 1.0
[uplink]
host = "127.0.0.1"
port = {port}
backoff_max_ms = 2000
{uplink_extra}
"#,
        data = data_dir.display(),
        models = repo_root().join("models").display(),
        pty = pty.display(),
        g1 = grades[0],
        g2 = grades[1],
        g3 = grades[2],
        g4 = grades[3],
    )
}

impl Rig {
    fn new(opts: RigOptions) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        // The broker is stopped and started again on this port (outages).
        let port = restartable_port();
        let broker = start_mosquitto_persistent(dir.path(), port);
        let hq = Hq::start(dir.path(), port);
        let proxy = opts
            .ack_shuffle
            .map(|shuffle| FaultProxy::start(port, shuffle).unwrap());
        let (pty_sim, pty_agent) = (dir.path().join("pty-sim"), dir.path().join("pty-agent"));
        let socat = pty_pair_at(&pty_sim, &pty_agent);
        let data_dir = opts.data_dir.unwrap_or_else(|| dir.path().join("data"));
        let video = opts.camera.then(|| {
            let v = dir.path().join("video.mp4");
            std::fs::copy(cached_video(VIDEO_SCENARIO), &v).unwrap();
            v
        });
        let config = dir.path().join("agent.toml");
        std::fs::write(
            &config,
            agent_config(
                &data_dir,
                video.as_deref(),
                &pty_agent,
                proxy.as_ref().map_or(port, |p| p.port),
                opts.uplink_extra,
            ),
        )
        .unwrap();
        let faults = (opts.faults || opts.undo_log).then(|| {
            let faults = Faults::new(&data_dir, dir.path().join("faultfs")).unwrap();
            match opts.undo_log {
                true => faults.with_undo_log(dir.path().join("undo.log")),
                false => faults,
            }
        });
        let agent = Agent::new(config, dir.path().join("agent.log"), faults);
        Rig {
            truth: dir.path().join("sales.jsonl"),
            dir,
            port,
            broker: Some(broker),
            socat: Some(socat),
            sim: None,
            sim_started: Instant::now(),
            sims: 0,
            agent,
            hq: Some(hq),
            proxy,
            pty_sim,
            pty_agent,
            data_dir,
            video,
            t0: Instant::now(),
        }
    }

    /// Starts a simulator with this schedule (time 0 = now), appending to the ground truth.
    fn start_sim(&mut self, fills: &[Fill], extra: &[&str]) {
        self.sims += 1;
        let scenario = self.dir.path().join(format!("scenario-{}.toml", self.sims));
        std::fs::write(&scenario, scenario_toml(fills)).unwrap();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("sim.log"))
            .unwrap();
        self.sim = Some(Proc::spawn(
            "dart-pump-sim",
            Command::new(binary("dart-pump-sim"))
                .arg("--port")
                .arg(&self.pty_sim)
                .arg("--scenario")
                .arg(&scenario)
                .arg("--sales-log")
                .arg(&self.truth)
                .args(["--seed", &(1000 + self.sims).to_string()])
                .args(extra)
                .stderr(log),
        ));
        self.sim_started = Instant::now();
    }

    fn kill_sim(&mut self) {
        if let Some(mut s) = self.sim.take() {
            send_signal(s.child.id(), "KILL");
            let _ = s.child.wait();
        }
    }

    fn sim_time(&self) -> f64 {
        self.sim_started.elapsed().as_secs_f64()
    }

    fn outbox_path(&self) -> PathBuf {
        self.data_dir.join("outbox.sqlite")
    }

    /// (records waiting for a PUBACK, held sales), read with the sqlite3 CLI.
    fn outbox_counts(&self) -> Option<(u64, u64)> {
        let out = Command::new("sqlite3")
            .arg("-readonly")
            .arg(self.outbox_path())
            .arg("SELECT (SELECT COUNT(*) FROM records) || ' ' || (SELECT COUNT(*) FROM held);")
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut it = text.split_whitespace().map(|v| v.parse::<u64>().ok());
        Some((it.next()??, it.next()??))
    }

    /// One column of a query on the outbox, read with the sqlite3 CLI (`None` if it failed).
    fn outbox_column(&self, sql: &str) -> Option<Vec<String>> {
        let out = Command::new("sqlite3")
            .arg("-readonly")
            .arg(self.outbox_path())
            .arg(sql)
            .output()
            .ok()?;
        out.status.success().then(|| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_owned)
                .collect()
        })
    }

    /// What the outbox committed: the last seq of each stream, and the records still waiting.
    fn outbox_tail(&self) -> OutboxTail {
        let pairs = |sql: &str| -> Vec<(String, u64)> {
            self.outbox_column(sql)
                .unwrap_or_default()
                .iter()
                .filter_map(|l| l.split_once(' '))
                .filter_map(|(s, q)| Some((s.to_string(), q.parse().ok()?)))
                .collect()
        };
        OutboxTail {
            last: pairs("SELECT stream || ' ' || last_seq FROM sequences")
                .into_iter()
                .collect(),
            waiting: pairs("SELECT stream || ' ' || seq FROM records")
                .into_iter()
                .collect(),
        }
    }

    /// Every envelope HQ's raw subscriber has received so far.
    fn envelopes_at_hq(&self) -> Vec<Value> {
        let raw = self.hq.as_ref().map(|hq| hq.raw_path.clone());
        raw.and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once(' '))
            .filter_map(|(_, payload)| serde_json::from_str::<Value>(payload).ok())
            .collect()
    }

    /// Ids of every message HQ's raw subscriber has received so far.
    fn ids_at_hq(&self) -> BTreeSet<String> {
        self.envelopes_at_hq()
            .iter()
            .filter_map(|v| v["id"].as_str().map(str::to_owned))
            .collect()
    }

    /// Bodies of the messages on `stream` HQ's raw subscriber has received so far.
    fn bodies_at_hq(&self, stream: &str) -> Vec<Value> {
        self.envelopes_at_hq()
            .into_iter()
            .filter(|v| v["stream"] == stream)
            .map(|v| v["body"].clone())
            .collect()
    }

    /// Sleeps `d` while supervising the agent.
    fn run_for(&mut self, d: Duration) {
        let until = Instant::now() + d;
        while Instant::now() < until {
            self.agent.supervise(self.t0);
            std::thread::sleep(Duration::from_millis(100).min(until - Instant::now().min(until)));
        }
    }

    /// Waits (bounded, 60 s) until every sale the simulator logged so far is accounted for at
    /// HQ: there with its exact volume, amount and price, or (per fuelling point and nozzle)
    /// covered by `sale_gap` volume. A simulator killed before the agent accounted a completed
    /// fill loses it with its totalizer (a new one starts at 0, which no pump does): a test that
    /// kills it must first let every sale be taken, however slow this machine is. If the wait
    /// runs out, the scenario's analysis reports what is missing.
    fn wait_sales_at_hq(&mut self) {
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            self.agent.supervise(self.t0);
            let mut missing: BTreeMap<_, i64> = BTreeMap::new();
            let truth = std::fs::read_to_string(&self.truth).unwrap_or_default();
            for v in truth
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .filter(|v| v["kind"] == "sale")
            {
                *missing.entry(sale_key(&v)).or_default() += 1;
            }
            let mut seen = BTreeSet::new();
            let mut gap_cl: BTreeMap<(u64, u64), i64> = BTreeMap::new();
            for env in self.envelopes_at_hq() {
                if !seen.insert(env["id"].to_string()) {
                    continue;
                }
                let body = &env["body"];
                if env["stream"] == "sale" {
                    if let Some(n) = missing.get_mut(&sale_key(body)) {
                        *n -= 1;
                    }
                } else if env["stream"] == "sale_gap" {
                    let nozzle = (
                        body["fp"].as_u64().unwrap_or(0),
                        body["nozzle"].as_u64().unwrap_or(0),
                    );
                    *gap_cl.entry(nozzle).or_default() += centi(&body["missing_volume"]);
                }
            }
            let mut unaccounted_cl: BTreeMap<(u64, u64), i64> = BTreeMap::new();
            for (k, n) in missing.iter().filter(|(_, &n)| n > 0) {
                *unaccounted_cl.entry((k.0, k.1)).or_default() += k.2 * n;
            }
            let left = unaccounted_cl
                .iter()
                .filter(|(nozzle, &cl)| cl > gap_cl.get(*nozzle).copied().unwrap_or(0))
                .count();
            if left == 0 {
                return;
            }
            if Instant::now() >= until {
                eprintln!(
                    "wait_sales_at_hq: sales on {left} nozzle(s) still unaccounted after 60 s"
                );
                return;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Runs until the sim's schedule ended (`sim_end_s` in sim time, plus 2 s), then waits for
    /// every sale logged to reach HQ ([`Rig::wait_sales_at_hq`]).
    fn settle_sales(&mut self, sim_end_s: f64) {
        let wait = sim_end_s + 2.0 - self.sim_time();
        if wait > 0.0 {
            self.run_for(Duration::from_secs_f64(wait));
        }
        self.wait_sales_at_hq();
    }

    /// Runs until the sim's schedule ended (`sim_end_s` in sim time) and everything settled:
    /// outbox empty, nothing held, HQ's message count and the ground truth stable for 3 s.
    fn drain(&mut self, sim_end_s: f64) {
        self.settle_sales(sim_end_s);
        let until = Instant::now() + Duration::from_secs(60);
        let mut last = (usize::MAX, u64::MAX);
        let mut stable_since = Instant::now();
        while Instant::now() < until {
            self.agent.supervise(self.t0);
            let now = (
                self.hq.as_ref().unwrap().raw_lines(),
                std::fs::metadata(&self.truth).map(|m| m.len()).unwrap_or(0),
            );
            if now != last {
                last = now;
                stable_since = Instant::now();
            }
            if self.outbox_counts() == Some((0, 0))
                && stable_since.elapsed() > Duration::from_secs(3)
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        eprintln!(
            "drain: did not settle within 60 s: outbox {:?}",
            self.outbox_counts()
        );
    }

    /// Stops everything, checks the invariants' inputs and returns the outcome.
    fn finish(mut self, scenario: &str, faults: String) -> (Outcome, Rig) {
        let stop = self.agent.stop();
        if stop.is_none_or(|s| !s.success()) {
            self.agent
                .unexpected_exits
                .push(format!("clean stop failed: {stop:?}"));
        }
        self.kill_sim();
        std::thread::sleep(Duration::from_millis(500));
        let (raw, summary) = self.hq.take().unwrap().finish();
        let truth = std::fs::read_to_string(&self.truth).unwrap_or_default();
        let mut o = analyse(&truth, &raw, &summary, &self.outbox_tail());
        o.scenario = scenario.to_string();
        o.faults = faults;
        o.max_rss_kb = self.agent.max_hwm_kb;
        o.panics = self.agent.log_text().matches("panicked").count();
        o.agent_starts = self.agent.starts;
        o.unexpected_exits = self.agent.unexpected_exits.clone();
        if std::env::var_os("FORECOURT_KEEP").is_some() {
            // Keep the logs, ground truth and outbox for a post-mortem.
            let kept = self.dir.path().to_path_buf();
            let _ = std::fs::write(kept.join("KEEP"), "");
            std::mem::forget(std::mem::replace(
                &mut self.dir,
                tempfile::tempdir().unwrap(),
            ));
            o.notes.push(format!("files kept in {}", kept.display()));
        }
        (o, self)
    }
}

// ------------------------------------------------------------------------------------------
// Checking

#[derive(Debug, Default, Clone)]
struct Outcome {
    scenario: String,
    faults: String,
    /// Sales the pumps completed (ground truth).
    true_sales: usize,
    /// Sales at HQ (unique ids).
    hq_sales: usize,
    /// True sales not at HQ and not covered by sale_gap volume.
    lost: usize,
    /// True sales not at HQ but covered exactly by sale_gap volume.
    gap_reported: usize,
    /// HQ sales beyond one per true sale (after dedupe by id), or matching no true sale.
    duplicated: usize,
    /// Missing seqs below the highest per stream (own check + hq-consumer's).
    seq_gaps: u64,
    /// The same seq with two ids (hq-consumer).
    conflicts: u64,
    /// sale_gap volume with no unreported sale behind it (0.01 l).
    excess_gap_cl: i64,
    /// Redeliveries of an id already seen (at-least-once: allowed).
    redeliveries: u64,
    max_rss_kb: u64,
    panics: usize,
    agent_starts: u32,
    unexpected_exits: Vec<String>,
    notes: Vec<String>,
    lost_detail: Vec<String>,
}

/// A sale as the ground truth and HQ both name it: fuelling point, nozzle, and volume, amount
/// and price in hundredths.
type SaleKey = (u64, u64, i64, i64, i64);

fn sale_key(v: &Value) -> SaleKey {
    (
        v["fp"].as_u64().unwrap_or(0),
        v["nozzle"].as_u64().unwrap_or(0),
        centi(&v["volume"]),
        centi(&v["amount"]),
        centi(&v["price"]),
    )
}

fn centi(v: &Value) -> i64 {
    let s = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let (neg, s) = s
        .strip_prefix('-')
        .map_or((false, s.as_str()), |r| (true, r));
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let mut frac = frac.to_string();
    while frac.len() < 2 {
        frac.push('0');
    }
    let v = int.parse::<i64>().unwrap_or(0) * 100 + frac[..2].parse::<i64>().unwrap_or(0);
    if neg {
        -v
    } else {
        v
    }
}

/// Per stream, the last seq the outbox handed out, and the records still waiting in it.
#[derive(Default)]
struct OutboxTail {
    last: BTreeMap<String, u64>,
    waiting: BTreeSet<(String, u64)>,
}

fn analyse(truth: &str, raw: &[(String, String)], summary: &Value, tail: &OutboxTail) -> Outcome {
    let mut o = Outcome::default();
    let mut want: BTreeMap<SaleKey, usize> = BTreeMap::new();
    let mut lost_fill_cl: BTreeMap<(u64, u64), i64> = BTreeMap::new();
    for line in truth.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).expect("sales log line is JSON");
        match v["kind"].as_str() {
            Some("sale") => {
                o.true_sales += 1;
                *want.entry(sale_key(&v)).or_default() += 1;
            }
            _ => {
                *lost_fill_cl
                    .entry((v["fp"].as_u64().unwrap(), v["nozzle"].as_u64().unwrap()))
                    .or_default() += centi(&v["volume"])
            }
        }
    }
    // HQ: dedupe by id; seqs per stream.
    let mut seen: HashMap<String, Value> = HashMap::new();
    let mut seqs: BTreeMap<String, std::collections::BTreeSet<u64>> = BTreeMap::new();
    let mut got: BTreeMap<SaleKey, usize> = BTreeMap::new();
    let mut gap_cl: BTreeMap<(u64, u64), i64> = BTreeMap::new();
    for (topic, payload) in raw {
        let Ok(env) = serde_json::from_str::<Value>(payload) else {
            o.notes.push(format!("malformed message on {topic}"));
            continue;
        };
        let id = env["id"].as_str().unwrap_or_default().to_string();
        if seen.contains_key(&id) {
            o.redeliveries += 1;
            continue;
        }
        let stream = env["stream"].as_str().unwrap_or_default().to_string();
        seqs.entry(stream.clone())
            .or_default()
            .insert(env["seq"].as_u64().unwrap_or(0));
        let body = &env["body"];
        match stream.as_str() {
            "sale" => {
                o.hq_sales += 1;
                *got.entry(sale_key(body)).or_default() += 1;
            }
            "sale_gap" => {
                *gap_cl
                    .entry((
                        body["fp"].as_u64().unwrap(),
                        body["nozzle"].as_u64().unwrap(),
                    ))
                    .or_default() += centi(&body["missing_volume"])
            }
            _ => {}
        }
        seen.insert(id, env);
    }
    for (stream, s) in &seqs {
        let max = s.iter().max().copied().unwrap_or(0);
        let missing = max - s.len() as u64;
        if missing > 0 {
            let holes: Vec<u64> = (1..=max).filter(|q| !s.contains(q)).take(10).collect();
            o.notes.push(format!(
                "stream {stream}: {missing} seqs missing, e.g. {holes:?}"
            ));
        }
        o.seq_gaps += missing;
    }
    // The tail: a record committed after the last one HQ got, and not waiting in the outbox
    // for the next start, is lost (the hole check above cannot see it).
    for (stream, &last) in &tail.last {
        let at_hq = seqs.get(stream);
        let max = at_hq.and_then(|s| s.iter().max().copied()).unwrap_or(0);
        let lost: Vec<u64> = (max + 1..=last)
            .filter(|q| !tail.waiting.contains(&(stream.clone(), *q)))
            .collect();
        if !lost.is_empty() {
            o.notes.push(format!(
                "stream {stream}: committed up to seq {last}, HQ has up to {max}, lost {lost:?}"
            ));
            o.seq_gaps += lost.len() as u64;
        }
    }
    // hq-consumer's own view.
    if let Some(streams) = summary["streams"].as_object() {
        let mut consumer_missing = 0;
        for (name, s) in streams {
            consumer_missing += s["missing"].as_u64().unwrap_or(0);
            o.conflicts += s["conflicts"].as_u64().unwrap_or(0);
            if s["missing"].as_u64().unwrap_or(0) > 0 {
                o.notes
                    .push(format!("hq-consumer: {name} gaps {}", s["gaps"]));
            }
        }
        o.seq_gaps = o.seq_gaps.max(consumer_missing);
    } else {
        o.notes.push("no summary from hq-consumer".into());
    }
    // Sales: exactly once, or covered by sale_gap volume on their (fp, nozzle).
    let mut unreported: BTreeMap<(u64, u64), (i64, usize, Vec<String>)> = BTreeMap::new();
    for (k, &n) in &want {
        let g = got.get(k).copied().unwrap_or(0);
        if g < n {
            let e = unreported.entry((k.0, k.1)).or_default();
            e.0 += k.2 * (n - g) as i64;
            e.1 += n - g;
            e.2.push(format!(
                "fp {} nozzle {} {}.{:02} l",
                k.0,
                k.1,
                k.2 / 100,
                k.2 % 100
            ));
        }
    }
    for (k, &g) in &got {
        let n = want.get(k).copied().unwrap_or(0);
        if g > n {
            o.duplicated += g - n;
            o.notes.push(format!(
                "HQ has {g} sale(s) fp {} nozzle {} volume {} for {n} true one(s)",
                k.0, k.1, k.2
            ));
        }
    }
    let mut nozzles: Vec<(u64, u64)> = unreported.keys().copied().collect();
    nozzles.extend(gap_cl.keys().copied());
    nozzles.extend(lost_fill_cl.keys().copied());
    nozzles.sort();
    nozzles.dedup();
    for nz in nozzles {
        let (sales_cl, count, detail) = unreported.get(&nz).cloned().unwrap_or_default();
        let expected = sales_cl + lost_fill_cl.get(&nz).copied().unwrap_or(0);
        let gap = gap_cl.get(&nz).copied().unwrap_or(0);
        if gap == expected {
            o.gap_reported += count;
        } else if gap < expected {
            o.lost += count;
            o.lost_detail.push(format!(
                "fp {} nozzle {}: unreported {} cl (sales {:?}), sale_gap only {} cl",
                nz.0, nz.1, expected, detail, gap
            ));
            if count == 0 {
                o.notes.push(format!(
                    "fp {} nozzle {}: lost fills of {expected} cl not covered by sale_gap ({gap} cl)",
                    nz.0, nz.1
                ));
            }
        } else {
            o.excess_gap_cl += gap - expected;
            o.gap_reported += count;
            o.notes.push(format!(
                "fp {} nozzle {}: sale_gap {} cl > unreported {} cl",
                nz.0, nz.1, gap, expected
            ));
        }
    }
    o
}

static REPORT: Mutex<Vec<Outcome>> = Mutex::new(Vec::new());

fn table(rows: &[Outcome]) -> String {
    let mut s = format!(
        "{:<22} {:<58} {:>6} {:>6} {:>5} {:>8} {:>5} {:>5} {:>9} {:>7} {:>6}\n",
        "scenario",
        "faults injected",
        "sales",
        "at HQ",
        "lost",
        "gap-rep",
        "dup",
        "gaps",
        "maxRSS MB",
        "panics",
        "starts"
    );
    for o in rows {
        s += &format!(
            "{:<22} {:<58} {:>6} {:>6} {:>5} {:>8} {:>5} {:>5} {:>9.1} {:>7} {:>6}\n",
            o.scenario,
            o.faults,
            o.true_sales,
            o.hq_sales,
            o.lost,
            o.gap_reported,
            o.duplicated,
            o.seq_gaps + o.conflicts,
            o.max_rss_kb as f64 / 1024.0,
            o.panics,
            o.agent_starts
        );
    }
    s
}

/// For scenarios whose pumps see no fault: every fill arrives as a sale, none as a sale_gap.
fn no_sale_gaps(o: &Outcome) -> (bool, String) {
    (
        o.gap_reported == 0 && o.excess_gap_cl == 0,
        format!(
            "{} sale(s) reached HQ only as a sale_gap (excess {} cl) though no pump fault was \
             injected",
            o.gap_reported, o.excess_gap_cl
        ),
    )
}

/// Prints the table (this scenario and all before it in this run), appends it to the report
/// file, then asserts the invariants.
fn report_and_check(o: Outcome, rig: &Rig, min_sales: usize, extra: &[(bool, String)]) {
    let mut all = REPORT.lock().unwrap_or_else(|p| p.into_inner());
    all.push(o.clone());
    let mut text = table(&all);
    for n in o.notes.iter().chain(&o.lost_detail) {
        text += &format!("  [{}] {n}\n", o.scenario);
    }
    for e in &o.unexpected_exits {
        text += &format!("  [{}] agent exit: {e}\n", o.scenario);
    }
    eprintln!("\n{text}");
    println!("\n{text}");
    if let Ok(mut f) = OpenOptions::new()
        .create(true)
        .append(true)
        .open(repo_root().join("target/reliability-report.txt"))
    {
        let _ = writeln!(f, "--- {} (long={})\n{text}", o.scenario, long_profile());
    }
    let log = rig.agent.log_tail();
    for (ok, why) in extra {
        assert!(*ok, "[{}] {why}", o.scenario);
    }
    assert!(
        o.true_sales >= min_sales,
        "[{}] only {} true sales (want >= {min_sales})",
        o.scenario,
        o.true_sales
    );
    assert_eq!(o.panics, 0, "[{}] agent panicked:\n{log}", o.scenario);
    assert_eq!(
        o.lost, 0,
        "[{}] sales lost: {:?}\n{log}",
        o.scenario, o.lost_detail
    );
    assert_eq!(
        o.duplicated, 0,
        "[{}] sales duplicated: {:?}",
        o.scenario, o.notes
    );
    assert_eq!(o.seq_gaps, 0, "[{}] seq gaps: {:?}", o.scenario, o.notes);
    assert_eq!(o.conflicts, 0, "[{}] seq conflicts", o.scenario);
    assert_eq!(
        o.excess_gap_cl, 0,
        "[{}] sale_gap over-reports: {:?}",
        o.scenario, o.notes
    );
    assert!(
        o.max_rss_kb < MAX_RSS_KB,
        "[{}] agent peak RSS {} kB",
        o.scenario,
        o.max_rss_kb
    );
}

fn sched_end(fills: &[Fill]) -> f64 {
    last_end(fills)
}

/// The agent's health messages as HQ gets them (give the rig a short `health_interval_s`).
struct HealthWatch {
    proc: Proc,
    path: PathBuf,
}

impl HealthWatch {
    fn start(rig: &Rig) -> HealthWatch {
        let path = rig.dir.path().join("health.jsonl");
        let proc = Proc::spawn(
            "mosquitto_sub",
            Command::new("mosquitto_sub")
                .args(["-h", "127.0.0.1", "-p", &rig.port.to_string()])
                .args(["-t", &format!("forecourt/{STATION}/health")])
                .stdout(std::fs::File::create(&path).unwrap()),
        );
        HealthWatch { proc, path }
    }

    fn reports(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Whether a report so far raised an alarm containing `what`.
    fn alarmed(&self, what: &str) -> bool {
        self.reports().iter().any(|h| {
            h["agent"]["alarms"].as_array().is_some_and(|a| {
                a.iter()
                    .any(|s| s.as_str().is_some_and(|s| s.contains(what)))
            })
        })
    }

    /// Stops listening; returns the last report (for messages).
    fn stop(mut self) -> String {
        self.proc.terminate(Duration::from_secs(2));
        self.reports()
            .last()
            .map_or_else(|| "none".to_string(), Value::to_string)
    }
}

// ------------------------------------------------------------------------------------------
// Scenarios

/// kill -9 of the agent every few seconds during a rush hour on 4 fuelling points.
#[test]
fn kill9_during_rush_hour() {
    let _slot = scenario_slot();
    let long = long_profile();
    let (until, min_sales) = if long { (480.0, 300) } else { (40.0, 20) };
    let mut rig = Rig::new(RigOptions::default());
    let fills = rush(7, 4.0, until);
    rig.agent.start();
    rig.start_sim(&fills, &[]);
    let mut rng = Rng::new(99);
    let (mut kills, mut kills_pending, mut kills_held) = (0, 0, 0);
    rig.run_for(Duration::from_secs(5));
    while rig.sim_time() < until {
        rig.run_for(Duration::from_secs_f64(rng.range(2.0, 5.0)));
        rig.agent.kill9();
        kills += 1;
        if let Some((pending, held)) = rig.outbox_counts() {
            kills_pending += usize::from(pending > 0);
            kills_held += usize::from(held > 0);
        }
        std::thread::sleep(Duration::from_secs_f64(rng.range(0.2, 1.0)));
        rig.agent.start();
    }
    rig.drain(sched_end(&fills));
    let faults =
        format!("{kills} kill -9 ({kills_pending} w/ unacked records, {kills_held} w/ held sales)");
    let (o, rig) = rig.finish("kill9_rush_hour", faults);
    report_and_check(o, &rig, min_sales, &[]);
}

/// kill -9 while a customer fills, and the fill ends while no agent runs. After the restart the
/// pump shows a completed fill without naming its nozzle (no DC3 with the status, and the block
/// that named it is gone); the totalizers kept before the kill tell it. The sale reaches HQ
/// once, with its nozzle and volume, and no `sale_gap` counts it again.
#[test]
fn fill_completed_while_the_agent_was_down() {
    let _slot = scenario_slot();
    let mut rig = Rig::new(RigOptions::default());
    let fill = |fp, nozzle, start_s, end_s, centilitres| Fill {
        fp,
        nozzle,
        start_s,
        end_s,
        centilitres,
    };
    let fills = vec![
        fill(4, 1, 3.0, 5.0, 1234),
        fill(4, 2, 12.0, 20.0, 677),
        fill(2, 1, 12.5, 15.0, 4321),
    ];
    rig.agent.start();
    // The completion block queued while no master polled is dropped, as if the agent had taken
    // it and died before acting on it: after the restart the pump answers status 5 and the
    // volume only.
    rig.start_sim(&fills, &["--forget-unpolled-s", "2"]);
    let lifted = |rig: &Rig| {
        rig.bodies_at_hq("nozzle")
            .iter()
            .any(|b| b["fp"] == 4 && b["nozzle"] == 2 && b["state"] == "out")
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !lifted(&rig) && Instant::now() < deadline {
        rig.run_for(Duration::from_millis(200));
    }
    // Filling now (authorized at the lift); the kill comes while the fuel flows.
    rig.run_for(Duration::from_secs(1));
    let kept_before_kill = rig
        .outbox_column("SELECT total FROM totalizers WHERE fp = 4 AND nozzle = 2")
        .unwrap_or_default();
    rig.agent.kill9();
    let down_at = rig.sim_time();
    while rig.sim_time() < 21.0 {
        std::thread::sleep(Duration::from_millis(100));
    }
    rig.agent.start();
    rig.drain(sched_end(&fills));
    let recovered = rig
        .agent
        .log_text()
        .lines()
        .any(|l| l.contains(RECOVERED_SALE) && l.contains("fp=4 nozzle=2 volume=6.77"));
    let faults = format!("kill -9 mid-fill at {down_at:.1} s, back after it ended");
    let (o, rig) = rig.finish("completed_while_down", faults);
    let gaps = no_sale_gaps(&o);
    report_and_check(
        o,
        &rig,
        3,
        &[
            gaps,
            (
                !kept_before_kill.is_empty(),
                "no totalizer was kept for FP 4 nozzle 2 before the kill".into(),
            ),
            (
                down_at < 20.0,
                format!("the kill came after the fill ended (sim {down_at:.1} s)"),
            ),
            (
                recovered,
                "the fill was not reported as recovered on nozzle 2 after the restart".into(),
            ),
        ],
    );
}

/// The outbox file is unusable when the agent starts (a damaged disk, a bad copy): the agent
/// moves it aside for forensics, never deleting it, says so in its log, and serves on a fresh
/// outbox instead of exiting in a loop with the pumps unpolled: every sale arrives.
#[test]
fn corrupt_outbox_at_start() {
    let _slot = scenario_slot();
    let mut rig = Rig::new(RigOptions {
        uplink_extra: "health_interval_s = 2",
        ..RigOptions::default()
    });
    std::fs::create_dir_all(&rig.data_dir).unwrap();
    let garbage = vec![0x5au8; 64 * 1024];
    std::fs::write(rig.outbox_path(), &garbage).unwrap();
    let fills = rush(31, 3.0, 20.0);
    let health = HealthWatch::start(&rig);
    rig.agent.start();
    rig.start_sim(&fills, &[]);
    rig.drain(sched_end(&fills));
    let alarmed = health.alarmed("outbox quarantined");
    // Each camera's grab and read rates: the reader reads the camera (at most what it grabbed,
    // give or take the frame taken just after a report).
    let cameras: Vec<(f64, f64)> = health
        .reports()
        .iter()
        .filter_map(|h| {
            let camera = h["agent"]["cameras"].get(0)?;
            Some((camera["fps"].as_f64()?, camera["read_fps"].as_f64()?))
        })
        .collect();
    let rates_hold = cameras.iter().any(|&(_, read)| read > 0.0)
        && cameras.iter().all(|&(fps, read)| read <= fps + 1.0);
    // Every fuelling point on the line answers, as its source tells HQ.
    let points_online = health.reports().iter().any(|h| {
        h["agent"]["fps"].as_array().is_some_and(|fps| {
            !fps.is_empty()
                && fps
                    .iter()
                    .all(|p| p["online"] == true && p["since_t"].is_i64())
        })
    });
    // The DART line itself: open, polls written and answered, its sales' newest time.
    let line_up = health.reports().iter().any(|h| {
        h["agent"]["sources"].as_array().is_some_and(|sources| {
            sources.len() == 1
                && sources[0]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("dart "))
                && sources[0]["up"] == true
                && sources[0]["sent"].as_u64() > Some(0)
                && sources[0]["received"].as_u64() > Some(0)
                && sources[0]["last_sale_t"].is_i64()
        })
    });
    let last_health = health.stop();
    let kept: Vec<PathBuf> = std::fs::read_dir(&rig.data_dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("outbox.sqlite.corrupt-"))
        })
        .collect();
    let kept_intact = kept.len() == 1 && std::fs::read(&kept[0]).ok() == Some(garbage);
    let logged = rig
        .agent
        .log_text()
        .contains("the outbox file was unusable");
    let (o, rig) = rig.finish("corrupt_outbox", "outbox file garbage at start".into());
    let gaps = no_sale_gaps(&o);
    report_and_check(
        o,
        &rig,
        10,
        &[
            gaps,
            (
                kept_intact,
                format!("the corrupt file was not kept intact: {kept:?}"),
            ),
            (
                logged,
                "no error in the log about the unusable outbox".into(),
            ),
            (
                alarmed,
                format!("no quarantine alarm in the health messages; last: {last_health}"),
            ),
            (
                rates_hold,
                format!("camera (fps, read_fps) per health message: {cameras:?}"),
            ),
            (
                points_online,
                format!("no health message with every fuelling point online; last: {last_health}"),
            ),
            (
                line_up,
                format!("no health message with the DART line up, polling, answered and selling; last: {last_health}"),
            ),
        ],
    );
}

/// SIGTERM (a systemd stop) every few seconds during a rush hour: each stop exits 0 within the
/// grace, and every sale record committed before the signal is, after the stop, either at HQ
/// (received, or acknowledged into the archive) or still in the outbox for the next start.
#[test]
fn sigterm_during_rush_hour() {
    let _slot = scenario_slot();
    let long = long_profile();
    let (until, min_sales) = if long { (480.0, 300) } else { (40.0, 20) };
    let mut rig = Rig::new(RigOptions::default());
    let fills = rush(13, 4.0, until);
    rig.agent.start();
    rig.start_sim(&fills, &[]);
    let mut rng = Rng::new(131);
    let (mut stops, mut committed, mut unacked_at_signal) = (0, 0, 0);
    let mut problems = Vec::new();
    rig.run_for(Duration::from_secs(5));
    while rig.sim_time() < until {
        rig.run_for(Duration::from_secs_f64(rng.range(2.0, 5.0)));
        // Every other stop with the broker frozen for the last 1.5 s: sales then wait for
        // their PUBACK when the signal comes, and the stop must leave them in the outbox.
        let broker_pid = rig.broker.as_ref().unwrap().child.id();
        let freeze = stops % 2 == 1;
        let sales_waiting = |rig: &Rig| {
            rig.outbox_column("SELECT id FROM records WHERE stream = 'sale';")
                .unwrap_or_default()
        };
        if freeze {
            send_signal(broker_pid, "STOP");
            rig.run_for(Duration::from_millis(1500));
            // Until a sale waits for its PUBACK (bounded): the stop must come while one does,
            // however fast this machine acknowledged the earlier ones.
            let deadline = Instant::now() + Duration::from_secs(20);
            while sales_waiting(&rig).is_empty() && Instant::now() < deadline {
                rig.run_for(Duration::from_millis(250));
            }
        }
        let waiting = sales_waiting(&rig);
        let before: BTreeSet<String> = rig
            .outbox_column("SELECT id FROM archive WHERE stream = 'sale';")
            .unwrap_or_default()
            .into_iter()
            .chain(waiting.iter().cloned())
            .collect();
        let status = rig.agent.stop();
        stops += 1;
        if status.is_none_or(|s| !s.success()) {
            problems.push(format!("stop {stops}: exit {status:?}, want 0 within 20 s"));
        }
        if freeze {
            send_signal(broker_pid, "CONT");
        }
        std::thread::sleep(Duration::from_millis(300)); // HQ's subscriber writes out
        let kept: BTreeSet<String> = rig
            .outbox_column("SELECT id FROM records UNION SELECT id FROM archive;")
            .unwrap_or_default()
            .into_iter()
            .chain(rig.ids_at_hq())
            .collect();
        committed += before.len();
        unacked_at_signal += waiting.len();
        for id in before.difference(&kept) {
            problems.push(format!(
                "stop {stops}: sale record {id} neither at HQ nor kept"
            ));
        }
        std::thread::sleep(Duration::from_secs_f64(rng.range(0.2, 1.0)));
        rig.agent.start();
    }
    rig.drain(sched_end(&fills));
    let faults = format!(
        "{stops} SIGTERM ({unacked_at_signal} sale records unacked at the signal, \
         {committed} committed checked)"
    );
    let (o, rig) = rig.finish("sigterm_rush", faults);
    let extra = [
        (problems.is_empty(), format!("{problems:?}")),
        (
            unacked_at_signal > 0,
            "no stop came while a sale waited for its PUBACK: the test proved nothing".into(),
        ),
    ];
    report_and_check(o, &rig, min_sales, &extra);
}

/// The broker is down for a long time while sales continue, then comes back.
#[test]
fn broker_outage_while_selling() {
    let _slot = scenario_slot();
    let long = long_profile();
    let (until, down_at, up_at, min_sales) = if long {
        (200.0, 10.0, 150.0, 100)
    } else {
        (36.0, 8.0, 30.0, 20)
    };
    let mut rig = Rig::new(RigOptions::default());
    let fills = rush(11, 4.0, until);
    rig.agent.start();
    rig.start_sim(&fills, &[]);
    rig.run_for(Duration::from_secs_f64(down_at));
    let mut broker = rig.broker.take().unwrap();
    broker.terminate(Duration::from_secs(10));
    rig.run_for(Duration::from_secs_f64(up_at - down_at));
    let depth = rig.outbox_counts().map_or(0, |c| c.0);
    rig.broker = Some(start_mosquitto_persistent(rig.dir.path(), rig.port));
    rig.drain(sched_end(&fills));
    let faults = format!(
        "broker down {:.0} s ({depth} records queued at the end)",
        up_at - down_at
    );
    let (mut o, rig) = rig.finish("broker_outage", faults);
    if depth == 0 {
        o.notes.push("nothing queued during the outage?".into());
    }
    let extra = [
        (
            depth > 0,
            "the outbox should have queued records while the broker was down".to_string(),
        ),
        no_sale_gaps(&o),
    ];
    report_and_check(o, &rig, min_sales, &extra);
}

/// kill -9 at random times while the broker is frozen now and then (SIGSTOP), so kills land
/// between the outbox commit and the PUBACK; then a torn-WAL check on copies of the outbox.
#[test]
fn kills_between_write_and_publish_and_torn_wal() {
    let _slot = scenario_slot();
    let long = long_profile();
    let (until, min_sales) = if long { (240.0, 150) } else { (32.0, 15) };
    let mut rig = Rig::new(RigOptions::default());
    let fills = rush(23, 4.0, until);
    rig.agent.start();
    rig.start_sim(&fills, &[]);
    let mut rng = Rng::new(5);
    let (mut kills, mut kills_pending, mut kills_held, mut frozen) = (0, 0, 0, 0);
    let mut copies = Vec::new();
    rig.run_for(Duration::from_secs(5));
    while rig.sim_time() < until {
        let freeze = rng.unit() < 0.6;
        let broker_pid = rig.broker.as_ref().unwrap().child.id();
        if freeze {
            send_signal(broker_pid, "STOP");
            frozen += 1;
        }
        rig.run_for(Duration::from_secs_f64(rng.range(1.5, 4.0)));
        rig.agent.kill9();
        kills += 1;
        if let Some((pending, held)) = rig.outbox_counts() {
            kills_pending += usize::from(pending > 0);
            kills_held += usize::from(held > 0);
            // Keep a copy of the outbox as the kill left it (db + WAL) for the torn-WAL check.
            if pending > 0 && copies.len() < 4 {
                let c = rig.dir.path().join(format!("copy-{kills}"));
                std::fs::create_dir_all(&c).unwrap();
                for suffix in ["", "-wal"] {
                    let from = PathBuf::from(format!("{}{suffix}", rig.outbox_path().display()));
                    if from.exists() {
                        std::fs::copy(&from, c.join(format!("outbox.sqlite{suffix}"))).unwrap();
                    }
                }
                copies.push(c);
            }
        }
        if freeze {
            send_signal(broker_pid, "CONT");
        }
        std::thread::sleep(Duration::from_secs_f64(rng.range(0.1, 0.6)));
        rig.agent.start();
    }
    rig.drain(sched_end(&fills));
    let torn = torn_wal_checks(&copies, &mut rng);
    let faults = format!(
        "{kills} kill -9, {frozen} broker freezes; {kills_pending} kills w/ unacked, {kills_held} w/ held; {torn} torn WALs"
    );
    let (o, rig) = rig.finish("kill_write_publish", faults);
    let extra = [
        (
            kills_pending > 0,
            "no kill landed between the outbox commit and the PUBACK".to_string(),
        ),
        (torn > 0, "no torn-WAL case was checked".to_string()),
    ];
    report_and_check(o, &rig, min_sales, &extra);
}

/// Truncates / corrupts the WAL of outbox copies at several points; each must open, read, and
/// hold a gap-free prefix of every stream (records + archive = 1..=max), and the next append
/// must take max + 1.
fn torn_wal_checks(copies: &[PathBuf], rng: &mut Rng) -> usize {
    let mut checked = 0;
    for c in copies {
        let wal = c.join("outbox.sqlite-wal");
        let Ok(len) = std::fs::metadata(&wal).map(|m| m.len()) else {
            continue;
        };
        if len == 0 {
            continue;
        }
        let mut cuts: Vec<(String, u64, bool)> = vec![
            (
                "truncate mid-last-frame".into(),
                len.saturating_sub(100),
                false,
            ),
            (
                "corrupt tail 100 bytes".into(),
                len.saturating_sub(100),
                true,
            ),
            ("truncate to header".into(), 32.min(len), false),
        ];
        for _ in 0..3 {
            cuts.push(("truncate random".into(), rng.next_u64() % len, false));
            cuts.push(("corrupt random".into(), rng.next_u64() % len, true));
        }
        for (what, at, corrupt) in cuts {
            let t = c.join(format!("torn-{checked}"));
            std::fs::create_dir_all(&t).unwrap();
            std::fs::copy(c.join("outbox.sqlite"), t.join("outbox.sqlite")).unwrap();
            let mut bytes = std::fs::read(&wal).unwrap();
            if corrupt {
                let end = (at as usize + 100).min(bytes.len());
                for b in &mut bytes[at as usize..end] {
                    *b ^= 0x5A;
                }
            } else {
                bytes.truncate(at as usize);
            }
            std::fs::write(t.join("outbox.sqlite-wal"), &bytes).unwrap();
            check_outbox_prefix(
                &t.join("outbox.sqlite"),
                &format!("{what} at {at} of {len}"),
            );
            checked += 1;
        }
    }
    checked
}

fn check_outbox_prefix(db: &Path, what: &str) {
    let ob = outbox::Outbox::open(db).unwrap_or_else(|e| panic!("{what}: cannot open: {e}"));
    ob.held().unwrap_or_else(|e| panic!("{what}: held: {e}"));
    // Archive back into the queue, then everything per stream: every stream the file numbered
    // (arrivals too: they leave ahead of the sales, so theirs are often acknowledged first).
    let streams = ob
        .acked_through()
        .unwrap_or_else(|e| panic!("{what}: streams: {e}"));
    for stream in streams.keys() {
        ob.resend(stream, 1)
            .unwrap_or_else(|e| panic!("{what}: resend: {e}"));
    }
    let all = ob
        .pending(None, 1_000_000)
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let mut by_stream: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for r in &all {
        by_stream.entry(r.stream.clone()).or_default().push(r.seq);
    }
    for (stream, mut seqs) in by_stream {
        seqs.sort();
        let expect: Vec<u64> = (1..=seqs.len() as u64).collect();
        assert_eq!(
            seqs, expect,
            "{what}: stream {stream} is not a gap-free prefix"
        );
        let next = ob
            .append(&stream, "t", &serde_json::json!({}))
            .unwrap_or_else(|e| panic!("{what}: append: {e}"));
        assert_eq!(
            next.seq,
            seqs.len() as u64 + 1,
            "{what}: next seq of {stream}"
        );
    }
    assert_eq!(integrity_check(db), "ok", "{what}: integrity");
}

/// Serial faults: corrupted bytes at 1e-3 and 1e-2, final DC2s after the completion and in
/// corrupted blocks, the simulator restarted mid-fill, the pty pair disappearing and coming back
/// under the same names.
#[test]
fn serial_line_faults() {
    let _slot = scenario_slot();
    let long = long_profile();
    let phase_s = if long { 90.0 } else { 12.0 };
    let mut rig = Rig::new(RigOptions::default());
    rig.agent.start();
    let mut faults = Vec::new();

    for (i, rate) in ["1e-3", "1e-2"].into_iter().enumerate() {
        let fills = rush(31 + i as u64, 3.0, 3.0 + phase_s);
        // Half the sales also send their final DC2 one block after the completion, and each
        // sending of a block with a final DC2 is corrupted with probability 0.3.
        rig.start_sim(
            &fills,
            &[
                "--corrupt-rate",
                rate,
                "--late-final-dc2-rate",
                "0.5",
                "--corrupt-final-dc2-rate",
                "0.3",
            ],
        );
        // This phase's sales all taken before the next simulator takes the line.
        rig.settle_sales(sched_end(&fills));
        rig.kill_sim();
        faults.push(format!("corrupt {rate}, late DC2, bad final DC2"));
    }

    // Simulator restarted mid-fill: a long fill on fp 1, killed in its middle once every other
    // sale was taken (it ends a minute after the others, longer than that wait can take).
    let mut fills = rush(41, 3.0, 3.0 + phase_s / 2.0);
    fills.retain(|f| f.fp != 1);
    let long_fill_end = sched_end(&fills) + 62.0;
    fills.push(Fill {
        fp: 1,
        nozzle: 1,
        start_s: sched_end(&fills) - 1.0,
        end_s: long_fill_end,
        centilitres: 4242,
    });
    rig.start_sim(&fills, &[]);
    rig.settle_sales(sched_end(&fills[..fills.len() - 1]));
    let killed_mid_fill = rig.sim_time() < long_fill_end;
    rig.kill_sim();
    faults.push("sim killed mid-fill".into());
    std::thread::sleep(Duration::from_secs(1));
    let fills = rush(43, 3.0, 3.0 + phase_s / 2.0);
    rig.start_sim(&fills, &[]);
    rig.settle_sales(sched_end(&fills));

    // The pty pair disappears (socat killed: the simulator loses its end too) and comes back
    // under the same names; the simulator is started again.
    let mut socat = rig.socat.take().unwrap();
    send_signal(socat.child.id(), "KILL");
    let _ = socat.child.wait();
    rig.kill_sim();
    rig.run_for(Duration::from_secs(3));
    rig.socat = Some(pty_pair_at(&rig.pty_sim, &rig.pty_agent));
    faults.push("pty gone 3 s".into());
    let fills = rush(47, 3.0, 3.0 + phase_s / 2.0);
    rig.start_sim(&fills, &[]);
    rig.drain(sched_end(&fills));
    let (o, rig) = rig.finish("serial_faults", faults.join(", "));
    let extra = [(
        killed_mid_fill,
        "the long fill had ended before the simulator was killed: no mid-fill kill".to_string(),
    )];
    report_and_check(o, &rig, 20, &extra);
}

/// A broker that acknowledges out of order, on a line that drops: the agent reaches mosquitto
/// through a proxy that holds the PUBACKs (four, or a second), hands them over last first
/// (keeping the oldest back a round), and drops the connection three times with PUBACKs held.
/// Every record the outbox archived (deleted as acknowledged) must have had its own PUBACK
/// handed over, and every sale arrives.
#[test]
fn out_of_order_pubacks() {
    let _slot = scenario_slot();
    let until = if long_profile() { 120.0 } else { 25.0 };
    // Records come a few a second: held up to a second, most PUBACKs wait for later ones.
    let drop_after = vec![10, 30, 50];
    let mut rig = Rig::new(RigOptions {
        ack_shuffle: Some(AckShuffle {
            hold: 4,
            flush_after: Duration::from_secs(1),
            drop_after: drop_after.clone(),
        }),
        ..RigOptions::default()
    });
    let fills = rush(61, 3.0, until);
    rig.agent.start();
    rig.start_sim(&fills, &[]);
    rig.drain(sched_end(&fills));
    let archived = rig
        .outbox_column("SELECT id FROM archive;")
        .unwrap_or_default();
    let log = rig.proxy.as_ref().unwrap().log();
    let unacknowledged: Vec<&String> = archived
        .iter()
        .filter(|id| !log.acks_delivered.contains(*id))
        .collect();
    let faults = format!(
        "PUBACKs last first ({} of {}), {} drops with {} held",
        log.acks_reordered, log.acks_handed_over, log.drops, log.acks_discarded
    );
    let (o, rig) = rig.finish("ooo_pubacks", faults);
    let extra = [
        (
            unacknowledged.is_empty(),
            format!(
                "{} of {} archived records deleted without their PUBACK: {unacknowledged:?}",
                unacknowledged.len(),
                archived.len()
            ),
        ),
        (
            log.acks_reordered > 0 && log.drops == drop_after.len() && log.acks_discarded > 0,
            format!(
                "the proxy reordered or dropped too little to prove anything: {faults_log:?}",
                faults_log = (log.acks_reordered, log.drops, log.acks_discarded)
            ),
        ),
        no_sale_gaps(&o),
    ];
    report_and_check(o, &rig, 20, &extra);
}

/// The camera's video replaced by garbage, then by an empty file, then restored: the agent keeps
/// running and every sale still arrives.
#[test]
fn camera_faults() {
    let _slot = scenario_slot();
    let until = if long_profile() { 90.0 } else { 22.0 };
    let mut rig = Rig::new(RigOptions::default());
    let video = rig.video.clone().unwrap();
    let good = std::fs::read(&video).unwrap();
    let fills = rush(53, 3.0, until);
    rig.agent.start();
    rig.start_sim(&fills, &[]);
    rig.run_for(Duration::from_secs(6));
    let mut rng = Rng::new(3);
    let garbage: Vec<u8> = (0..good.len()).map(|_| rng.next_u64() as u8).collect();
    // In place: the camera's open file becomes garbage too.
    std::fs::write(&video, &garbage).unwrap();
    rig.run_for(Duration::from_secs_f64(until / 4.0));
    std::fs::write(&video, b"").unwrap();
    rig.run_for(Duration::from_secs_f64(until / 4.0));
    std::fs::write(&video, &good).unwrap();
    rig.drain(sched_end(&fills));
    let exits = rig.agent.unexpected_exits.len();
    let (o, rig) = rig.finish(
        "camera_faults",
        "video -> garbage -> empty file -> restored".into(),
    );
    let extra = [
        (
            exits == 0,
            format!(
                "the agent stopped on camera faults: {:?}",
                o.unexpected_exits
            ),
        ),
        no_sale_gaps(&o),
    ];
    report_and_check(o, &rig, 10, &extra);
}

/// How a disk-full scenario fills the disk.
enum FullDisk {
    /// A small tmpfs on the data dir (needs root), filled by a file.
    Tmpfs { filler: PathBuf },
    /// The `faultfs` shim: the agent's writes to its data dir fail with ENOSPC (any user).
    Shim(Faults),
}

impl FullDisk {
    fn fill(&self) {
        match self {
            FullDisk::Tmpfs { filler } => {
                let mut f = std::fs::File::create(filler).unwrap();
                let block = vec![0u8; 64 * 1024];
                while f.write_all(&block).is_ok() {}
                let _ = f.sync_all();
            }
            FullDisk::Shim(faults) => faults.set_disk_full(true).unwrap(),
        }
    }

    fn free(&self) {
        match self {
            FullDisk::Tmpfs { filler } => std::fs::remove_file(filler).unwrap(),
            FullDisk::Shim(faults) => faults.set_disk_full(false).unwrap(),
        }
    }

    fn what(&self) -> &'static str {
        match self {
            FullDisk::Tmpfs { .. } => "tmpfs full",
            FullDisk::Shim(_) => "ENOSPC (shim)",
        }
    }
}

/// The data dir on a small tmpfs that fills up while sales go on; the agent is killed while
/// sales wait in memory, then space returns. The outbox must stay intact, the agent must resume,
/// and the sales that were only in memory must come back from the pumps, which were not reset.
/// Needs root for the mount; `disk_full_without_root` runs the same scenario for any user.
#[test]
fn disk_full() {
    let _slot = scenario_slot();
    let mnt = tempfile::tempdir().unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=16m", "tmpfs"])
        .arg(mnt.path())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!(
            "disk_full: SKIPPED (cannot mount a tmpfs: not root; disk_full_without_root runs)"
        );
        return;
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mnt.path().to_path_buf());
    let rig = Rig::new(RigOptions {
        data_dir: Some(mnt.path().join("data")),
        uplink_extra: "health_interval_s = 2",
        ..RigOptions::default()
    });
    let filler = mnt.path().join("filler");
    run_disk_full(rig, FullDisk::Tmpfs { filler }, "disk_full");
}

/// `disk_full` where the full disk is the `faultfs` shim's ENOSPC on every write to the data
/// dir (SQLite sees SQLITE_FULL as from a full file system), so it runs without root.
#[test]
fn disk_full_without_root() {
    let _slot = scenario_slot();
    let rig = Rig::new(RigOptions {
        faults: true,
        uplink_extra: "health_interval_s = 2",
        ..RigOptions::default()
    });
    let faults = rig.agent.faults.clone().unwrap();
    run_disk_full(rig, FullDisk::Shim(faults), "disk_full_shim");
}

fn run_disk_full(mut rig: Rig, disk: FullDisk, scenario: &str) {
    let until = if long_profile() { 120.0 } else { 34.0 };
    let fills = rush(61, 3.0, until);
    let health = HealthWatch::start(&rig);
    rig.agent.start();
    rig.start_sim(&fills, &[]);
    rig.run_for(Duration::from_secs(8));
    disk.fill();
    let full_s = until / 3.0;
    rig.run_for(Duration::from_secs_f64(full_s));
    let exits_while_full = rig.agent.unexpected_exits.len();
    // While writes wait in memory, health says how many, with an alarm.
    let most_in_memory = health
        .reports()
        .iter()
        .filter_map(|h| h["agent"]["outbox_writes_in_memory"].as_u64())
        .max();
    let alarmed = health.alarmed("in memory");
    // A crash while sales wait in memory: their pumps were not reset, so the next start finds
    // them completed and reports them (a reset pump would leave only a sale_gap).
    rig.agent.kill9();
    disk.free();
    rig.agent.start();
    rig.drain(sched_end(&fills));
    let last_health = health.stop();
    let recovered = rig.agent.recovered_sales();
    let (mut o, rig) = rig.finish(
        scenario,
        format!(
            "{} {full_s:.0} s ({exits_while_full} agent exits, up to {} writes in memory), \
             kill -9 before freeing",
            disk.what(),
            most_in_memory.unwrap_or(0)
        ),
    );
    let integrity = integrity_check(&rig.outbox_path());
    if integrity != "ok" {
        o.notes.push(format!("integrity_check: {integrity}"));
    }
    let extra = [
        (
            integrity == "ok",
            format!("outbox corrupted by a full disk: {integrity}"),
        ),
        (
            most_in_memory.is_some_and(|n| n > 0) && alarmed,
            format!(
                "health while the disk was full: at most {most_in_memory:?} writes in memory, \
                 alarm {alarmed} (want > 0 and an alarm); last report: {last_health}"
            ),
        ),
        (
            o.gap_reported == 0 && recovered > 0,
            format!(
                "{} sale(s) only in a sale_gap, {recovered} recovered from the pumps: a pump \
                 was reset before its sale was kept",
                o.gap_reported
            ),
        ),
    ];
    report_and_check(o, &rig, 15, &extra);
}

/// `PRAGMA integrity_check` of an outbox file, by the sqlite3 CLI.
fn integrity_check(db: &Path) -> String {
    let check = Command::new("sqlite3")
        .arg(db)
        .arg("PRAGMA integrity_check;")
        .output()
        .unwrap();
    String::from_utf8_lossy(&check.stdout).trim().to_string()
}

/// The outbox's disk sync hangs (a failing disk) while fills complete, and the agent is killed
/// before any of those sales is committed: the crash lands between the pump's completion and
/// the commit. The pumps were not reset, so after the restart each of those sales comes back
/// from its pump: at HQ once, with its volume, and never as a sale_gap.
#[test]
fn crash_between_pump_completion_and_commit() {
    let _slot = scenario_slot();
    let mut rig = Rig::new(RigOptions {
        faults: true,
        ..RigOptions::default()
    });
    let faults = rig.agent.faults.clone().unwrap();
    let fills = rush(83, 3.0, 30.0);
    rig.agent.start();
    rig.start_sim(&fills, &[]);
    rig.run_for(Duration::from_secs(8));
    faults.set_sync_stall(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !faults.sync_stalled() {
        assert!(Instant::now() < deadline, "the outbox did not sync in 60 s");
        rig.run_for(Duration::from_millis(100));
    }
    let stalled_at = rig.sim_time();
    // Two fills complete on their pumps while the commit hangs; 3 s for the agent to take them.
    let mut ends: Vec<f64> = fills
        .iter()
        .map(|f| f.end_s)
        .filter(|&e| e > stalled_at + 0.5)
        .collect();
    ends.sort_by(f64::total_cmp);
    let kill_at = ends.get(1).copied().unwrap_or(stalled_at) + 3.0;
    while rig.sim_time() < kill_at {
        rig.run_for(Duration::from_millis(100));
    }
    let completed = fills
        .iter()
        .filter(|f| f.end_s > stalled_at && f.end_s < kill_at)
        .count();
    let stalled_s = rig.sim_time() - stalled_at;
    rig.agent.kill9();
    faults.set_sync_stall(false).unwrap();
    rig.agent.start();
    rig.drain(sched_end(&fills));
    let recovered = rig.agent.recovered_sales();
    let (o, rig) = rig.finish(
        "crash_before_commit",
        format!(
            "outbox sync hung {stalled_s:.0} s, {completed} fills completed, kill -9; \
             {recovered} recovered"
        ),
    );
    let extra = [
        (
            completed >= 2 && recovered >= 1,
            format!(
                "{completed} fills completed during the hung sync, {recovered} recovered from \
                 the pumps after the restart (want >= 2 and >= 1)"
            ),
        ),
        no_sale_gaps(&o),
    ];
    report_and_check(o, &rig, 10, &extra);
}

/// Power cuts during a rush hour: kill -9, then every write to the data dir that no sync
/// covered is undone from a random point of the `faultfs` undo log on (what a disk that lost
/// power there could hold), then the agent starts again. A sale whose pump was reset must
/// never be lost (it would show as a sale_gap); a sale not yet kept comes back from its pump.
#[test]
fn power_cuts_during_rush_hour() {
    let _slot = scenario_slot();
    let long = long_profile();
    let (until, cuts_wanted, min_sales) = if long {
        (560.0, 200, 300)
    } else {
        (30.0, 200, 12)
    };
    let mut rig = Rig::new(RigOptions {
        undo_log: true,
        ..RigOptions::default()
    });
    let log = rig
        .agent
        .faults
        .as_ref()
        .unwrap()
        .undo_log()
        .unwrap()
        .to_path_buf();
    let fills = rush(89, 3.0, until);
    rig.agent.start();
    rig.start_sim(&fills, &[]);
    let mut rng = Rng::new(89);
    let (mut cuts, mut undone, mut cuts_losing) = (0, 0, 0);
    rig.run_for(Duration::from_secs(5));
    while rig.sim_time() < until && cuts < cuts_wanted {
        rig.run_for(Duration::from_secs_f64(rng.range(1.0, 3.0)));
        rig.agent.kill9();
        let report = power_cut(&log, |records| {
            (rng.next_u64() % (records as u64 + 1)) as usize
        })
        .unwrap();
        undone += report.undone;
        cuts_losing += usize::from(report.undone > 0);
        cuts += 1;
        std::thread::sleep(Duration::from_secs_f64(rng.range(0.2, 0.6)));
        rig.agent.start();
    }
    rig.drain(sched_end(&fills));
    let (mut o, rig) = rig.finish(
        "power_cuts",
        format!("{cuts} power cuts ({cuts_losing} lost unsynced writes, {undone} undone)"),
    );
    let integrity = integrity_check(&rig.outbox_path());
    if integrity != "ok" {
        o.notes.push(format!("integrity_check: {integrity}"));
    }
    let extra = [
        (integrity == "ok", format!("outbox damaged: {integrity}")),
        (
            cuts_losing * 2 >= cuts,
            format!("only {cuts_losing} of {cuts} cuts lost any write: is the shim in the way?"),
        ),
        no_sale_gaps(&o),
    ];
    report_and_check(o, &rig, min_sales, &extra);
}

/// Two records that can never be sent appear in the outbox's queue while sales go on (a row
/// whose id is not a UUID, and one larger than the broker takes, which would drop the
/// connection): each is moved to the dead letters and reported once, the connection stays up,
/// and every sale behind them arrives.
#[test]
fn poison_records() {
    let _slot = scenario_slot();
    let mut rig = Rig::new(RigOptions::default());
    let fills = rush(87, 3.0, 24.0);
    rig.agent.start();
    rig.start_sim(&fills, &[]);
    rig.run_for(Duration::from_secs(6));
    let topic = format!("forecourt/{STATION}/events/sale");
    let insert = format!(
        ".timeout 10000\n\
         INSERT INTO records (id, stream, seq, topic, payload, created) VALUES \
         ('not-a-uuid', 'sale', 1000000, '{topic}', CAST('{{}}' AS BLOB), 0), \
         ('0b6f3c1e-8d2a-4f57-9a51-3f0c2e7d9b10', 'sale', 1000001, '{topic}', \
          CAST('{{\"pad\":\"' || replace(hex(zeroblob(1000000)), '0', 'x') || '\"}}' AS BLOB), 0);\n"
    );
    let out = Command::new("sqlite3")
        .arg(rig.outbox_path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child.stdin.take().unwrap().write_all(insert.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    assert!(
        out.status.success(),
        "inserting the poison: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log_at_poison = rig.agent.log_text().len();
    rig.drain(sched_end(&fills));
    let dead = rig
        .outbox_column("SELECT COUNT(*) FROM dead_letter")
        .and_then(|v| v.first().and_then(|n| n.parse::<u64>().ok()));
    let notices = rig.bodies_at_hq("dead_letter");
    let lost_connections = rig.agent.log_text()[log_at_poison..]
        .matches("uplink connection lost")
        .count();
    let (o, rig) = rig.finish(
        "poison_records",
        format!(
            "bad id + 2 MB record queued: {} dead letters, {} notices, {lost_connections} \
             reconnects",
            dead.unwrap_or(0),
            notices.len()
        ),
    );
    let extra = [
        (
            dead == Some(2) && notices.len() == 2,
            format!("dead letters in the outbox {dead:?}, notices at HQ {notices:?} (want 2, 2)"),
        ),
        (
            lost_connections == 0,
            format!("the uplink lost its connection {lost_connections} times over the poison"),
        ),
        no_sale_gaps(&o),
    ];
    report_and_check(o, &rig, 10, &extra);
}

/// Malformed MQTT commands and oversized payloads while sales go on: each is refused (or
/// ignored), the agent keeps running, answers a ping afterwards, and every sale arrives.
#[test]
fn bad_mqtt_commands() {
    let _slot = scenario_slot();
    let mut rig = Rig::new(RigOptions::default());
    let fills = rush(71, 3.0, 24.0);
    rig.agent.start();
    rig.start_sim(&fills, &[]);
    rig.run_for(Duration::from_secs(5));
    let port = rig.port.to_string();
    let replies_path = rig.dir.path().join("replies.txt");
    let mut replies = Proc::spawn(
        "mosquitto_sub",
        Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &port, "-q", "1", "-v"])
            .args(["-t", &format!("forecourt/{STATION}/cmd/+/reply")])
            .stdout(std::fs::File::create(&replies_path).unwrap()),
    );
    std::thread::sleep(Duration::from_millis(500));
    let big = |n: usize| format!("{{\"id\":\"big\",\"pad\":\"{}\"}}", "x".repeat(n));
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let payloads: Vec<(&str, String, bool)> = vec![
        ("ping", "not json".into(), false),
        ("ping", "".into(), false),
        ("ping", "[1,2,3]".into(), false),
        ("ping", "{\"id\": 5}".into(), false),
        ("ping", "{\"id\": \"\"}".into(), false),
        ("ping", format!("{{\"id\": \"{}\"}}", "i".repeat(5000)), false),
        ("ping", "{\"id\":\"a\",\"id\":\"b\"}".into(), false),
        ("resend", "{\"id\":\"r\",\"stream\":\"sale\",\"from_seq\":0}".into(), false),
        ("resend", "{\"id\":\"r\",\"stream\":\"../x\",\"from_seq\":1}".into(), false),
        ("resend", "{\"id\":\"r\",\"stream\":\"sale\",\"from_seq\":-1}".into(), false),
        ("resend", "{\"id\":\"r\",\"stream\":\"sale\",\"from_seq\":1e300}".into(), false),
        ("plate_correction", "{\"id\":\"c\",\"sale_id\":\"nope\",\"plate\":\"A\"}".into(), false),
        ("plate_correction", format!("{{\"id\":\"c\",\"sale_id\":\"0b6f3c1e-8d2a-4f57-9a51-3f0c2e7d9b10\",\"plate\":\"{}\"}}", "京".repeat(40)), false),
        ("record_trace", "{\"id\":\"t\",\"minutes\":100000}".into(), false),
        ("reload_config", "{\"id\":\"x\",\"extra\":1}".into(), false),
        ("no_such_command", "{\"id\":\"u\"}".into(), false),
        ("ping", deep, false),
        ("ping", big(70 * 1024), false),
        ("ping", big(3 * 1024 * 1024), false),
        ("ping", "{\"id\":\"retained\"}".into(), true),
    ];
    let mut sent = 0;
    for (name, payload, retain) in &payloads {
        let file = rig.dir.path().join("payload.bin");
        std::fs::write(&file, payload).unwrap();
        let mut cmd = Command::new("mosquitto_pub");
        cmd.args(["-h", "127.0.0.1", "-p", &port, "-q", "1"])
            .args(["-t", &format!("forecourt/{STATION}/cmd/{name}")])
            .arg("-f")
            .arg(&file);
        if *retain {
            cmd.arg("-r");
        }
        if cmd.status().is_ok_and(|s| s.success()) {
            sent += 1;
        }
        rig.agent.supervise(rig.t0);
    }
    // Binary garbage and a command one level too deep.
    let file = rig.dir.path().join("payload.bin");
    std::fs::write(&file, [0xff, 0xfe, 0x00, 0x80, 0xc3]).unwrap();
    for topic in ["ping", "ping/extra"] {
        let _ = Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &port, "-q", "1"])
            .args(["-t", &format!("forecourt/{STATION}/cmd/{topic}")])
            .arg("-f")
            .arg(&file)
            .status();
        sent += 1;
    }
    // Clear the retained command again.
    let _ = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port, "-q", "1", "-r", "-n"])
        .args(["-t", &format!("forecourt/{STATION}/cmd/ping")])
        .status();
    // Command replay: the same command id again, live and after a restart, runs once (every
    // command but `ping`, which changes nothing).
    let replay = || {
        let _ = Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &port, "-q", "1"])
            .args(["-t", &format!("forecourt/{STATION}/cmd/reload_config")])
            .args(["-m", "{\"id\":\"replayed\"}"])
            .status();
    };
    let replies_to = |id: &str, ok: bool| {
        std::fs::read_to_string(&replies_path)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(&format!("\"{id}\"")) && l.contains(&format!("\"ok\":{ok}")))
            .count()
    };
    let wait_for = |rig: &mut Rig, what: &dyn Fn() -> bool| {
        let until = Instant::now() + Duration::from_secs(30);
        while Instant::now() < until && !what() {
            rig.run_for(Duration::from_millis(250));
        }
    };
    replay();
    wait_for(&mut rig, &|| replies_to("replayed", true) == 1);
    replay();
    wait_for(&mut rig, &|| replies_to("replayed", false) == 1);
    // A retained 2.7 MB command waits at the broker when the agent comes back: each
    // subscription brings it again, so it must be refused without dropping the connection
    // (it once caused a reconnect storm).
    let retain_big = |payload: Option<&Path>| {
        let mut pub_ = Command::new("mosquitto_pub");
        pub_.args(["-h", "127.0.0.1", "-p", &port, "-q", "1", "-r"])
            .args(["-t", &format!("forecourt/{STATION}/cmd/ping")]);
        match payload {
            Some(file) => pub_.arg("-f").arg(file),
            None => pub_.arg("-n"), // clears the retained message
        };
        assert!(pub_.status().is_ok_and(|s| s.success()), "mosquitto_pub -r");
    };
    let big_file = rig.dir.path().join("retained-big.bin");
    std::fs::write(&big_file, big(2_700_000)).unwrap();
    let _ = rig.agent.stop();
    retain_big(Some(&big_file));
    let log_at_restart = rig.agent.log_text().len();
    rig.agent.start();
    // Sent until the restarted agent is subscribed and answers (each answer a refusal).
    let until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < until && replies_to("replayed", false) < 2 {
        replay();
        rig.run_for(Duration::from_secs(1));
    }
    let replayed = (replies_to("replayed", true), replies_to("replayed", false));
    // Still answering?
    let mut answered = false;
    let until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < until && !answered {
        let _ = Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &port, "-q", "1"])
            .args([
                "-t",
                &format!("forecourt/{STATION}/cmd/ping"),
                "-m",
                "{\"id\":\"alive\"}",
            ])
            .status();
        rig.run_for(Duration::from_secs(1));
        answered = std::fs::read_to_string(&replies_path)
            .is_ok_and(|s| s.contains("\"alive\"") && s.contains("\"ok\":true"));
    }
    let lost_connections = rig.agent.log_text()[log_at_restart..]
        .matches("uplink connection lost")
        .count();
    retain_big(None);
    replies.terminate(Duration::from_secs(2));
    let reply_text = std::fs::read_to_string(&replies_path).unwrap_or_default();
    let refused = reply_text.matches("\"ok\":false").count();
    rig.drain(sched_end(&fills));
    let exits = rig.agent.unexpected_exits.clone();
    let (mut o, rig) = rig.finish(
        "bad_mqtt_commands",
        format!(
            "{sent} bad commands, 1 replayed x{}, 2.7 MB retained ({refused} refused, \
             {lost_connections} reconnects)",
            replayed.0 + replayed.1
        ),
    );
    if !answered {
        o.notes.push("no ping reply after the bad commands".into());
    }
    let extra = [
        (
            answered,
            format!("the agent no longer answers commands:\n{reply_text}"),
        ),
        (
            exits.is_empty(),
            format!("the agent exited on bad commands: {exits:?}"),
        ),
        (
            lost_connections == 0,
            format!(
                "a retained 2.7 MB command dropped the uplink's connection {lost_connections} \
                 times after the restart"
            ),
        ),
        // Published with retain while the agent is subscribed, the broker delivers it live (no
        // retain flag), like any command: answered once. It must never run again when a new
        // subscription brings it back retained.
        (
            reply_text.matches("\"retained\"").count() <= 1,
            "a retained command was answered more than once".to_string(),
        ),
        (
            replayed.0 == 1 && replayed.1 >= 2,
            format!(
                "a command id sent again, live and after a restart: {} ran, {} refused (want 1 \
                 and at least 2)",
                replayed.0, replayed.1
            ),
        ),
        no_sale_gaps(&o),
    ];
    report_and_check(o, &rig, 10, &extra);
}
