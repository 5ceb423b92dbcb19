//! The station at scale: N cameras streaming 1080p H.264 over RTSP (GStreamer's RTSP server
//! sending rendered videos as they are, so the servers cost next to no CPU beside the agent),
//! two fuelling points in view of each, all on one simulated DART line with customers whose
//! cars are in the videos, the real agent reading them all and a real mosquitto.
//!
//! - `every_car_that_enters_a_zone_is_read_with_motion_gating_and_focus`: one camera, cars with
//!   empty spells between them (so the motion gate skips frames), two reader threads: every car
//!   is read in its own zone, the gate did skip frames, and the camera's frames reached the
//!   station in order. Counts, not timings.
//! - `station_bench` (ignored): the table of docs/performance.md for N = 1, 4 and 8 cameras:
//!   `cargo test --release --test station_scale -- --ignored --nocapture station_bench`
//!   (`STATION_BENCH_CAMERAS=8` for one N, `STATION_BENCH_SECONDS` for the measured time,
//!   `STATION_BENCH_READERS=2` for `[plates] readers` (else the agent's default: one per 4
//!   cameras, at most one per core), `STATION_BENCH_KEEP=1` to keep the run's
//!   folder: agent log, trace, config).

mod support;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

const WIDTH: u32 = 1920;
const HEIGHT: u32 = 1080;
const VIDEO_FPS: u32 = 10;
/// The agent's `max_fps` per camera: a 10 fps stream capped at 5 is every other frame.
const READ_FPS: f32 = 5.0;
/// Where a car stands, as scripts/make_video.py draws it: its top at this fraction of the
/// height, its plate 228..276 px below that, centred on its lane.
const STOP_Y: f64 = 0.45;
const LANE_X: [f64; 2] = [0.25, 0.75];

struct Car {
    plate: String,
    fp: u8,
    arrive_s: f64,
    depart_s: f64,
    fill_start_s: f64,
    fill_end_s: f64,
    nozzle: u8,
    volume: String,
}

/// Each fuelling point's customers over one loop of `loop_s`: a car drives in, its nozzle is
/// lifted 4-7 s later, fills for 8-14 s, drives off 3-6 s after the hang-up; the next one
/// arrives `gap_s` (a range) after that. Every plate is its own, every fill's volume too.
fn plan_cars(fps: u8, loop_s: f64, gap_s: (f64, f64), seed: u64) -> Vec<Car> {
    const PROVINCES: [&str; 8] = ["京", "沪", "苏", "浙", "粤", "鲁", "川", "鄂"];
    const ALNUM: &[u8] = b"0123456789ABCDEFGHJKLMNPQRSTUVWXYZ";
    let mut rng = seeded_rng::Rng::new(seed);
    let mut cars = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for fp in 1..=fps {
        let mut t = rng.range(0.5, 6.0);
        let mut k = 0;
        loop {
            let fill_start_s = t + rng.range(4.0, 7.0);
            let fill_end_s = fill_start_s + rng.range(8.0, 14.0);
            let depart_s = fill_end_s + rng.range(3.0, 6.0);
            if depart_s > loop_s - 1.0 {
                break;
            }
            let plate = loop {
                let mut p = String::from(*rng.pick(&PROVINCES));
                p.push((b'A' + rng.below(8) as u8) as char);
                for _ in 0..5 {
                    p.push(*rng.pick(ALNUM) as char);
                }
                if seen.insert(p.clone()) {
                    break p;
                }
            };
            cars.push(Car {
                plate,
                fp,
                arrive_s: t,
                depart_s,
                fill_start_s,
                fill_end_s,
                nozzle: 1 + rng.below(2) as u8,
                volume: format!("{}.{:02}", 20 + k * 7 + fp as usize % 7, rng.below(100)),
            });
            k += 1;
            t = depart_s + rng.range(gap_s.0, gap_s.1);
        }
    }
    cars
}

fn pump_section(fp: u8) -> String {
    format!(
        "[[pump]]\nfp = {fp}\naddress = {:#04x}\ndecimals = {{ volume = 2, amount = 2, price = 2 }}\n\
         prices = [\"7.85\", \"8.32\"]\n\n",
        0x50 + fp - 1
    )
}

fn car_section(c: &Car) -> String {
    format!(
        "[[car]]\nplate = \"{}\"\nfp = {}\narrive_s = {:.2}\ndepart_s = {:.2}\n\
         fill = {{ nozzle = {}, start_s = {:.2}, end_s = {:.2}, volume = \"{}\" }}\n\n",
        c.plate, c.fp, c.arrive_s, c.depart_s, c.nozzle, c.fill_start_s, c.fill_end_s, c.volume
    )
}

/// The fuelling points camera `k` (1-based) sees: 2k-1 on its left lane, 2k on its right.
fn camera_fps(k: usize) -> [u8; 2] {
    [(2 * k - 1) as u8, (2 * k) as u8]
}

/// The scenario scripts/make_video.py renders camera `k`'s video from.
fn camera_scenario(k: usize, cars: &[Car], loop_s: f64) -> String {
    let [left, right] = camera_fps(k);
    let mut s = format!(
        "loop_s = {loop_s:.1}\n\n[video]\nwidth = {WIDTH}\nheight = {HEIGHT}\nfps = {VIDEO_FPS}\n\
         lanes = {{ \"{left}\" = {}, \"{right}\" = {} }}\nstop_y = {STOP_Y}\n\n",
        LANE_X[0], LANE_X[1]
    );
    for c in cars.iter().filter(|c| c.fp == left || c.fp == right) {
        s += &car_section(c);
    }
    s
}

/// The pump simulator's scenario: every fuelling point and every car.
fn pump_scenario(fps: u8, cars: &[Car], loop_s: f64) -> String {
    let mut s = format!("loop_s = {loop_s:.1}\n\n");
    for fp in 1..=fps {
        s += &pump_section(fp);
    }
    for c in cars {
        s += &car_section(c);
    }
    s
}

/// A fuelling point's zone: around where its car's plate is while the car stands, reaching
/// down the lane it drives in by.
fn zone(lane_x: f64) -> [[f64; 2]; 4] {
    let (x0, x1) = (lane_x - 0.16, lane_x + 0.16);
    [[x0, 0.5], [x1, 0.5], [x1, 0.95], [x0, 0.95]]
}

fn agent_config(
    dir: &Path,
    urls: &[String],
    pty: &Path,
    port: u16,
    readers: Option<usize>,
) -> String {
    let q = |p: &Path| format!("{:?}", p.display().to_string());
    let mut s = format!(
        "station_id = \"scale-001\"\ndata_dir = {}\ntrace_file = {}\n\n[plates]\nmodels_dir = {}\n",
        q(&dir.join("data")),
        q(&dir.join("trace.jsonl")),
        q(&repo_root().join("models"))
    );
    if let Some(readers) = readers {
        s += &format!("readers = {readers}\n");
    }
    s += "\n";
    for (i, url) in urls.iter().enumerate() {
        s += &format!(
            "[[camera]]\nname = \"cam{}\"\nurl = \"{url}\"\nmax_fps = {READ_FPS}\n\n",
            i + 1
        );
    }
    let fps = 2 * urls.len() as u8;
    s += &format!(
        "[[dispenser]]\nprotocol = \"dart\"\nport = {}\nauto_authorize = true\nresponse_timeout_ms = 150\nfps = [\n",
        q(pty)
    );
    for fp in 1..=fps {
        s += &format!(
            "  {{ fp = {fp}, address = {:#04x}, decimals = {{ volume = 2, amount = 2, price = 2 }}, grades = [\"92#\", \"95#\"] }},\n",
            0x50 + fp - 1
        );
    }
    s += "]\n\n";
    for k in 1..=urls.len() {
        for (fp, lane) in camera_fps(k).into_iter().zip(LANE_X) {
            let p = zone(lane);
            s += &format!(
                "[[fp]]\nfp = {fp}\nzones = [{{ camera = \"cam{k}\", polygon = {p:?} }}]\n\n"
            );
        }
    }
    s += &format!(
        "[matcher]\ngrace_s = 3.0\n\n[uplink]\nhost = \"127.0.0.1\"\nport = {port}\nprefix = \"forecourt\"\nhealth_interval_s = 5\n"
    );
    s
}

const PYTHON: &str = "/usr/bin/python3";

/// An RTSP server sending `video` as it is, in a loop; its URL.
fn start_rtsp(video: &Path) -> (Proc, String) {
    let script = repo_root().join("crates/camera/tests/rtsp_server.py");
    for _ in 0..5 {
        let port = free_port();
        let mut server = Proc::spawn(
            "rtsp_server.py",
            Command::new(PYTHON)
                .arg(&script)
                .arg(port.to_string())
                .arg("--file")
                .arg(video)
                .arg("--passthrough")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null()),
        );
        let mut line = String::new();
        BufReader::new(server.child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        if line.starts_with("listening ") {
            return (server, format!("rtsp://127.0.0.1:{port}/test"));
        }
        // The port was taken between free_port and the bind: another one.
        let _ = server.wait_for_exit(Duration::from_secs(5));
    }
    panic!("the RTSP server did not start on any of 5 ports");
}

/// User + system CPU seconds of a process so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (in parentheses, which may hold spaces): utime is the
    // 12th and stime the 13th of them.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / clock_ticks()
}

/// Clock ticks a second, the unit of /proc's CPU times.
fn clock_ticks() -> f64 {
    let out = Command::new("getconf").arg("CLK_TCK").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn now_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        * 1000.0
}

/// (busy, total) jiffies of the whole machine.
fn machine_jiffies() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let cpu: Vec<f64> = stat
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap())
        .collect();
    let total: f64 = cpu.iter().take(8).sum();
    let idle = cpu[3] + cpu[4];
    (total - idle, total)
}

/// Lines `mosquitto_sub -F '%U|%t|%p'` wrote: (receive time ms, topic, payload).
fn received(log: &Path) -> Vec<(f64, String, Value)> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, '|');
            let t: f64 = parts.next()?.parse().ok()?;
            let topic = parts.next()?.to_string();
            let payload = serde_json::from_str(parts.next()?).ok()?;
            Some((t * 1000.0, topic, payload))
        })
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// What one camera did over the measured time.
#[derive(Default, Debug)]
struct CameraFigures {
    decoded_fps: f64,
    read_fps: f64,
    still_fps: f64,
    dropped: u64,
    /// Frames with a plate read in one of the camera's zones, per second of the time a car
    /// stood there (from the trace).
    plate_fps_while_standing: f64,
}

#[derive(Debug)]
struct StationReport {
    cameras: usize,
    measured_s: f64,
    per_camera: Vec<CameraFigures>,
    agent_cpu_cores: f64,
    machine_busy_cores: f64,
    cores: usize,
    rss_peak_mb: f64,
    rss_end_mb: f64,
    arrivals: usize,
    arrival_p50_ms: f64,
    arrival_p99_ms: f64,
    sales_expected: usize,
    sales: usize,
    sales_right: usize,
    sales_wrong: usize,
    sale_delay_p99_ms: f64,
    /// Cars that stood in a zone and were never read there (from the trace).
    cars_unread: Vec<String>,
    cars_standing: usize,
    /// Frames the trace holds before an earlier frame of the same camera.
    frames_out_of_order: usize,
}

/// Runs the station with `cameras` cameras for one warm-up and `seconds` measured, and says
/// what it did. `gap_s`: the empty spell between one car and the next at a pump.
/// `readers`: `[plates] readers`, or the agent's default.
fn run_station(
    cameras: usize,
    readers: Option<usize>,
    seconds: u64,
    gap_s: (f64, f64),
) -> StationReport {
    let mut dir = tempfile::tempdir().unwrap();
    if std::env::var_os("STATION_BENCH_KEEP").is_some() {
        dir.disable_cleanup(true);
        eprintln!("keeping {}", dir.path().display());
    }
    let fps = 2 * cameras as u8;
    let loop_s = 120.0;
    let cars = plan_cars(fps, loop_s, gap_s, 19);
    let videos: Vec<PathBuf> = (1..=cameras)
        .map(|k| cached_video(&camera_scenario(k, &cars, loop_s)))
        .collect();
    let pumps = dir.path().join("pumps.toml");
    std::fs::write(&pumps, pump_scenario(fps, &cars, loop_s)).unwrap();

    let (_broker, port) = start_mosquitto(dir.path());
    let (_pty, sim_end, agent_end) = pty_pair(dir.path());
    let hq_log = dir.path().join("hq.log");
    let _hq = Proc::spawn(
        "mosquitto_sub",
        Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
            .args(["-F", "%U|%t|%p"])
            .args(["-t", "forecourt/+/events/#", "-t", "forecourt/+/health"])
            .stdout(std::fs::File::create(&hq_log).unwrap()),
    );
    // The videos and the pumps start together: the scenario's second 0 is now, for both.
    let mut servers = Vec::new();
    let mut urls = Vec::new();
    for v in &videos {
        let (server, url) = start_rtsp(v);
        servers.push(server);
        urls.push(url);
    }
    let epoch_ms = now_ms();
    let _sim = Proc::spawn(
        "dart-pump-sim",
        Command::new(binary("dart-pump-sim"))
            .arg("--port")
            .arg(&sim_end)
            .arg("--scenario")
            .arg(&pumps)
            .stderr(Stdio::null()),
    );
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        agent_config(dir.path(), &urls, &agent_end, port, readers),
    )
    .unwrap();
    let agent_log = dir.path().join("agent.log");
    let mut agent = Proc::spawn(
        "forecourt-agent",
        Command::new(binary("forecourt-agent"))
            .args(["run", "--config"])
            .arg(&config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&agent_log).unwrap()),
    );
    let pid = agent.child.id();
    // OpenCV opens one FFmpeg capture at a time, a few seconds each.
    let opened = Instant::now();
    while std::fs::read_to_string(&agent_log)
        .unwrap_or_default()
        .matches("camera opened")
        .count()
        < cameras
    {
        if opened.elapsed() > Duration::from_secs(240) {
            let log = std::fs::read_to_string(&agent_log).unwrap_or_default();
            let camera_lines: Vec<&str> = log.lines().filter(|l| l.contains("camera")).collect();
            panic!(
                "not every camera opened in 240 s:\n{}",
                camera_lines.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // A few seconds for the streams' first key frames and the models' first runs.
    std::thread::sleep(Duration::from_secs(5));
    let (from_ms, cpu0, machine0) = (now_ms(), cpu_seconds(pid), machine_jiffies());
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    let measured_s = started.elapsed().as_secs_f64();
    let (to_ms, cpu1, machine1) = (now_ms(), cpu_seconds(pid), machine_jiffies());
    let rss_peak_mb = proc_status_kb(pid, "VmHWM").unwrap_or(0) as f64 / 1024.0;
    let rss_end_mb = proc_status_kb(pid, "VmRSS").unwrap_or(0) as f64 / 1024.0;
    // Sales of fills that ended in the window get their grace period and revisit to arrive.
    std::thread::sleep(Duration::from_secs(12));
    assert!(
        agent.terminate(Duration::from_secs(30)).is_some(),
        "the agent did not stop"
    );
    drop(servers);

    let window = Window {
        epoch_ms,
        from_ms,
        to_ms,
        loop_s,
    };
    let messages = received(&hq_log);
    let latencies = arrival_latencies(&messages, &window);
    let sales = sale_figures(&messages, &cars, &window);
    let mut per_camera = camera_figures(&messages, cameras, &window);
    let frames = trace_frames(&dir.path().join("trace.jsonl"));
    let (cars_standing, cars_unread) = standing_reads(&frames, &cars, &window, &mut per_camera);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    StationReport {
        cameras,
        measured_s,
        per_camera,
        agent_cpu_cores: (cpu1 - cpu0) / measured_s,
        machine_busy_cores: (machine1.0 - machine0.0) / (machine1.1 - machine0.1) * cores as f64,
        cores,
        rss_peak_mb,
        rss_end_mb,
        arrivals: latencies.len(),
        arrival_p50_ms: percentile(&latencies, 0.5),
        arrival_p99_ms: percentile(&latencies, 0.99),
        sales_expected: sales.expected,
        sales: sales.sales,
        sales_right: sales.right,
        sales_wrong: sales.wrong,
        sale_delay_p99_ms: percentile(&sales.delays, 0.99),
        cars_unread,
        cars_standing,
        frames_out_of_order: frames
            .values()
            .map(|f| f.windows(2).filter(|w| w[1].t < w[0].t).count())
            .sum(),
    }
}

/// The measured time, and where the scenario's loops started.
struct Window {
    /// Wall-clock time of the scenario's second 0 (videos and pumps started).
    epoch_ms: f64,
    from_ms: f64,
    to_ms: f64,
    loop_s: f64,
}

impl Window {
    fn contains(&self, t_ms: f64) -> bool {
        t_ms >= self.from_ms && t_ms <= self.to_ms
    }

    /// Whether the span `from_ms..to_ms` lies wholly in the window.
    fn holds(&self, from_ms: f64, to_ms: f64) -> bool {
        self.contains(from_ms) && self.contains(to_ms)
    }

    /// Wall-clock time of second `s` of each scenario loop that began by the window's end.
    fn times_of(&self, s: f64) -> impl Iterator<Item = f64> + '_ {
        let loops = ((self.to_ms - self.epoch_ms) / 1000.0 / self.loop_s) as i64;
        (0..=loops).map(move |n| self.epoch_ms + (n as f64 * self.loop_s + s) * 1000.0)
    }
}

/// Arrivals confirmed in the window: capture of the deciding frame -> broker, sorted.
fn arrival_latencies(messages: &[(f64, String, Value)], window: &Window) -> Vec<f64> {
    let mut latencies: Vec<f64> = messages
        .iter()
        .filter(|(_, topic, m)| {
            topic.ends_with("/events/arrival") && m["body"].get("state").is_none()
        })
        .filter_map(|(recv, _, m)| {
            let t = m["body"]["t"].as_f64()?;
            window.contains(t).then(|| recv - t)
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    latencies
}

struct SaleFigures {
    sales: usize,
    right: usize,
    wrong: usize,
    /// Broker receipt - hang-up, sorted.
    delays: Vec<f64>,
    /// Fills the simulator began and ended in the window.
    expected: usize,
}

/// Sales of fills lifted and hung up in the window; which car bought each fill is known by its
/// fuelling point and volume.
fn sale_figures(messages: &[(f64, String, Value)], cars: &[Car], window: &Window) -> SaleFigures {
    let car_of_fill: HashMap<(u8, &str), &Car> = cars
        .iter()
        .map(|c| ((c.fp, c.volume.as_str()), c))
        .collect();
    let mut figures = SaleFigures {
        sales: 0,
        right: 0,
        wrong: 0,
        delays: Vec::new(),
        expected: cars
            .iter()
            .flat_map(|c| {
                window
                    .times_of(c.fill_start_s)
                    .zip(window.times_of(c.fill_end_s))
            })
            .filter(|&(lifted, hung_up)| window.holds(lifted, hung_up))
            .count(),
    };
    for (recv, topic, m) in messages {
        let body = &m["body"];
        let (Some(lifted), Some(hung_up)) =
            (body["nozzle_out_t"].as_f64(), body["nozzle_in_t"].as_f64())
        else {
            continue;
        };
        // Whole fills only: one lifted before the window may have begun before the last
        // camera opened (they open one at a time, in no set order), and its car was then
        // rightly not vouched for.
        if !topic.ends_with("/events/sale") || !window.holds(lifted, hung_up) {
            continue;
        }
        figures.sales += 1;
        figures.delays.push(recv - hung_up);
        let fp = body["fp"].as_u64().unwrap_or(0) as u8;
        let volume = body["volume"].as_str().unwrap_or_default();
        match (body["plate"].as_str(), car_of_fill.get(&(fp, volume))) {
            (Some(plate), Some(car)) if plate == car.plate => figures.right += 1,
            (Some(_), _) => figures.wrong += 1,
            (None, car) => eprintln!(
                "sale without a plate: fp {fp}, volume {volume}, bought by {:?}: {body}",
                car.map(|c| &c.plate)
            ),
        }
    }
    figures.delays.sort_by(f64::total_cmp);
    figures
}

/// Each camera's rates from the health reports in the window, averaged; drops counted over it.
fn camera_figures(
    messages: &[(f64, String, Value)],
    cameras: usize,
    window: &Window,
) -> Vec<CameraFigures> {
    let mut per_camera: Vec<CameraFigures> =
        (0..cameras).map(|_| CameraFigures::default()).collect();
    let mut reports = vec![0usize; cameras];
    let mut dropped_first: Vec<Option<u64>> = vec![None; cameras];
    for (recv, topic, m) in messages {
        if !topic.ends_with("/health") || !window.contains(*recv) {
            continue;
        }
        for c in m["agent"]["cameras"].as_array().into_iter().flatten() {
            let Some(k) = camera_number(&c["name"]).filter(|k| *k <= cameras) else {
                continue;
            };
            let f = &mut per_camera[k - 1];
            f.decoded_fps += c["fps"].as_f64().unwrap_or(0.0);
            f.read_fps += c["read_fps"].as_f64().unwrap_or(0.0);
            f.still_fps += c["still_fps"].as_f64().unwrap_or(0.0);
            let dropped = c["dropped"].as_u64().unwrap_or(0);
            let first = *dropped_first[k - 1].get_or_insert(dropped);
            f.dropped = dropped - first;
            reports[k - 1] += 1;
        }
    }
    for (f, n) in per_camera.iter_mut().zip(&reports) {
        let n = (*n).max(1) as f64;
        f.decoded_fps /= n;
        f.read_fps /= n;
        f.still_fps /= n;
    }
    per_camera
}

/// `"cam3"` -> 3.
fn camera_number(name: &Value) -> Option<usize> {
    name.as_str()?.strip_prefix("cam")?.parse().ok()
}

/// A frame of the trace: its time and each plate's text and box centre.
struct TraceFrame {
    t: f64,
    plates: Vec<(String, f64, f64)>,
}

/// The trace's frames, by camera number.
fn trace_frames(path: &Path) -> BTreeMap<usize, Vec<TraceFrame>> {
    let trace = std::fs::read_to_string(path).unwrap_or_default();
    let mut by_camera: BTreeMap<usize, Vec<TraceFrame>> = BTreeMap::new();
    for line in trace.lines() {
        let Ok(r) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let Some(k) = camera_number(&r["camera"]).filter(|_| r["type"] == "frame") else {
            continue;
        };
        let plates = r["plates"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| {
                let b = p["box"].as_array()?;
                let x = (b[0].as_f64()? + b[2].as_f64()?) / 2.0;
                let y = (b[1].as_f64()? + b[3].as_f64()?) / 2.0;
                Some((p["text"].as_str()?.to_string(), x, y))
            })
            .collect();
        by_camera.entry(k).or_default().push(TraceFrame {
            t: r["t"].as_f64().unwrap_or(0.0),
            plates,
        });
    }
    by_camera
}

/// Every spell in the window (over 3 s) in which a car stood at its pump (from arrive+2 to
/// depart-2, as the video draws it): how many, and those in which the trace never has its
/// plate in its own zone. Sets each camera's frames with a standing car's plate per second.
fn standing_reads(
    frames: &BTreeMap<usize, Vec<TraceFrame>>,
    cars: &[Car],
    window: &Window,
    per_camera: &mut [CameraFigures],
) -> (usize, Vec<String>) {
    let in_zone = |lane: f64, x: f64, y: f64| {
        let z = zone(lane);
        x >= z[0][0] && x <= z[1][0] && y >= z[0][1] && y <= z[2][1]
    };
    let mut unread = Vec::new();
    let mut standing_count = 0;
    for (i, figures) in per_camera.iter_mut().enumerate() {
        let k = i + 1;
        let frames = frames.get(&k).map(Vec::as_slice).unwrap_or(&[]);
        let (mut standing_ms, mut frames_with_plate) = (0.0, 0usize);
        for (fp, lane) in camera_fps(k).into_iter().zip(LANE_X) {
            for car in cars.iter().filter(|c| c.fp == fp) {
                let stands = window
                    .times_of(car.arrive_s + 2.0)
                    .zip(window.times_of(car.depart_s - 2.0));
                for (a, d) in stands {
                    let (a, d) = (a.max(window.from_ms), d.min(window.to_ms));
                    if d - a <= 3000.0 {
                        continue;
                    }
                    standing_count += 1;
                    standing_ms += d - a;
                    let read_here = frames
                        .iter()
                        .filter(|f| f.t >= a && f.t <= d)
                        .filter(|f| {
                            f.plates
                                .iter()
                                .any(|(text, x, y)| text == &car.plate && in_zone(lane, *x, *y))
                        })
                        .count();
                    frames_with_plate += read_here;
                    if read_here == 0 {
                        unread.push(format!("cam{k} FP {} {}", car.fp, car.plate));
                    }
                }
            }
        }
        if standing_ms > 0.0 {
            figures.plate_fps_while_standing = frames_with_plate as f64 / (standing_ms / 1000.0);
        }
    }
    (standing_count, unread)
}

fn print_report(r: &StationReport) {
    println!(
        "\n{} camera(s), {} FPs, {:.0} s measured, {} cores",
        r.cameras,
        2 * r.cameras,
        r.measured_s,
        r.cores
    );
    println!("camera  decoded/s  read/s  still/s  dropped  plate-frames/s while a car stands");
    for (i, c) in r.per_camera.iter().enumerate() {
        println!(
            "cam{:<4} {:>9.1} {:>7.2} {:>8.2} {:>8} {:>10.2}",
            i + 1,
            c.decoded_fps,
            c.read_fps,
            c.still_fps,
            c.dropped,
            c.plate_fps_while_standing
        );
    }
    println!(
        "agent CPU {:.2} cores (user+sys), machine busy {:.2} of {} cores; RSS peak {:.0} MB, end {:.0} MB",
        r.agent_cpu_cores, r.machine_busy_cores, r.cores, r.rss_peak_mb, r.rss_end_mb
    );
    println!(
        "arrivals {} (capture -> broker p50 {:.0} ms, p99 {:.0} ms); sales {} of {} whole fills in the window, {} right plate, {} wrong, sale at broker p99 {:.0} ms after the hang-up; cars standing {}, never read in their zone {}",
        r.arrivals,
        r.arrival_p50_ms,
        r.arrival_p99_ms,
        r.sales,
        r.sales_expected,
        r.sales_right,
        r.sales_wrong,
        r.sale_delay_p99_ms,
        r.cars_standing,
        r.cars_unread.len()
    );
}

#[test]
fn every_car_that_enters_a_zone_is_read_with_motion_gating_and_focus() {
    // Empty spells of 6-12 s between cars: the gate has still frames to skip. Two reader
    // threads for the one camera: it must be read by one at a time, its frames in order.
    let r = run_station(1, Some(2), 50, (6.0, 12.0));
    print_report(&r);
    assert!(
        r.cars_standing >= 4,
        "too few cars stood in the window: {r:?}"
    );
    assert!(
        r.cars_unread.is_empty(),
        "cars that stood in their zone and were never read there: {:?}\n{r:?}",
        r.cars_unread
    );
    let cam = &r.per_camera[0];
    assert!(
        cam.still_fps > 0.0,
        "the motion gate never skipped a frame, so this test did not test it: {r:?}"
    );
    assert!(cam.read_fps > 0.0, "{r:?}");
    assert_eq!(r.sales_wrong, 0, "wrong plates: {r:?}");
    assert_eq!(
        r.frames_out_of_order, 0,
        "a camera's frames reached the station out of order: {r:?}"
    );
}

#[test]
#[ignore = "benchmark: prints the station table for docs/performance.md"]
fn station_bench() {
    let seconds: u64 = std::env::var("STATION_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    let readers: Option<usize> = std::env::var("STATION_BENCH_READERS")
        .ok()
        .map(|s| s.trim().parse().unwrap());
    let counts: Vec<usize> = match std::env::var("STATION_BENCH_CAMERAS") {
        Ok(n) => n.split(',').map(|n| n.trim().parse().unwrap()).collect(),
        Err(_) => vec![1, 4, 8],
    };
    let reports: Vec<StationReport> = counts
        .iter()
        .map(|&n| {
            let r = run_station(n, readers, seconds, (2.0, 5.0));
            print_report(&r);
            r
        })
        .collect();
    println!("\n| cameras | FPs | read/s per camera (min) | plate frames/s while standing (min) | still/s (mean) | dropped | agent CPU (cores) | machine busy (of {}) | RSS peak / end (MB) | arrival p50 / p99 (ms) | sales right / wrong / fills | sale p99 after hang-up (ms) |", reports.first().map_or(0, |r| r.cores));
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &reports {
        let min =
            |f: fn(&CameraFigures) -> f64| r.per_camera.iter().map(f).fold(f64::INFINITY, f64::min);
        let mean_still = r.per_camera.iter().map(|c| c.still_fps).sum::<f64>() / r.cameras as f64;
        println!(
            "| {} | {} | {:.2} | {:.2} | {:.2} | {} | {:.2} | {:.2} | {:.0} / {:.0} | {:.0} / {:.0} | {} / {} / {} | {:.0} |",
            r.cameras,
            2 * r.cameras,
            min(|c| c.read_fps),
            min(|c| c.plate_fps_while_standing),
            mean_still,
            r.per_camera.iter().map(|c| c.dropped).sum::<u64>(),
            r.agent_cpu_cores,
            r.machine_busy_cores,
            r.rss_peak_mb,
            r.rss_end_mb,
            r.arrival_p50_ms,
            r.arrival_p99_ms,
            r.sales_right,
            r.sales_wrong,
            r.sales_expected,
            r.sale_delay_p99_ms
        );
    }
}
