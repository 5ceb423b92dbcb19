//! The sd_notify protocol as systemd sees it, on a socket the test provides (NOTIFY_SOCKET):
//! READY=1 after start-up, WATCHDOG=1 while the main loops run, STOPPING=1 on SIGTERM; a
//! camera whose stream blocks forever in open() is restarted inside the agent (its capture
//! thread abandoned), so the pings go on; a dispenser loop stuck in a serial write stops them.

mod support;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

fn config(dir: &std::path::Path, video: &std::path::Path) -> std::path::PathBuf {
    config_with(dir, video, "")
}

/// The base config with `extra` TOML appended.
fn config_with(dir: &std::path::Path, video: &std::path::Path, extra: &str) -> std::path::PathBuf {
    let path = dir.join("agent.toml");
    std::fs::write(
        &path,
        format!(
            r#"
station_id = "notify"
data_dir = "{data}"
watchdog_stall_s = 3
[plates]
models_dir = "{models}"
[[camera]]
name = "cam1"
url = "{video}"
loop_file = true
max_fps = 2
[uplink]
host = "127.0.0.1"
port = {port}
{extra}
"#,
            data = dir.join("data").display(),
            models = repo_root().join("models").display(),
            video = video.display(),
            port = free_port(),
        ),
    )
    .unwrap();
    path
}

/// Starts the agent with a watchdog of 1 s (pings every 0.5 s) and collects its notifications.
fn start(dir: &std::path::Path, config: &std::path::Path) -> (Proc, UnixDatagram) {
    let socket_path = dir.join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let agent = Proc::spawn(
        "forecourt-agent",
        Command::new(binary("forecourt-agent"))
            .args(["run", "--config"])
            .arg(config)
            .env("NOTIFY_SOCKET", &socket_path)
            .env("WATCHDOG_USEC", "1000000")
            .stderr(std::fs::File::create(dir.join("agent.log")).unwrap())
            .stdout(Stdio::null()),
    );
    (agent, socket)
}

/// Messages up to and including READY=1, waiting at most `limit` (start-up loads the models,
/// slower with other agents starting beside it).
fn collect_until_ready(socket: &UnixDatagram, limit: Duration) -> Vec<String> {
    let until = Instant::now() + limit;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < until && count(&out, "READY=1") == 0 {
        if let Ok(n) = socket.recv(&mut buf) {
            out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    out
}

/// Messages received within `d`.
fn collect(socket: &UnixDatagram, d: Duration) -> Vec<String> {
    let until = Instant::now() + d;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < until {
        if let Ok(n) = socket.recv(&mut buf) {
            out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    out
}

fn count(msgs: &[String], what: &str) -> usize {
    msgs.iter().filter(|m| m.lines().any(|l| l == what)).count()
}

#[test]
fn ready_then_watchdog_pings_then_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("v.mp4");
    let status = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=10",
            "-t",
            "2",
        ])
        .arg(&video)
        .status()
        .unwrap();
    assert!(status.success());
    let config = config(dir.path(), &video);
    let (mut agent, socket) = start(dir.path(), &config);

    let log = || std::fs::read_to_string(dir.path().join("agent.log")).unwrap_or_default();
    let mut first = collect_until_ready(&socket, Duration::from_secs(60));
    assert!(
        count(&first, "READY=1") == 1,
        "no READY=1 in {first:?}\n{}",
        log()
    );
    // 0.5 s period: at least 10 pings in the 10 s after READY, however long start-up took.
    first.extend(collect(&socket, Duration::from_secs(10)));
    assert!(
        count(&first, "WATCHDOG=1") >= 10,
        "too few pings: {first:?}\n{}",
        log()
    );

    agent.terminate(Duration::from_secs(15));
    let last = collect(&socket, Duration::from_millis(500));
    assert!(
        count(&first, "STOPPING=1") + count(&last, "STOPPING=1") == 1,
        "no STOPPING=1: {first:?} {last:?}"
    );
}

#[test]
fn a_stuck_camera_is_restarted_inside_and_pings_go_on() {
    let dir = tempfile::tempdir().unwrap();
    // Opening a FIFO with no writer blocks forever: a camera stream that hangs in open().
    let fifo = dir.path().join("stuck.mp4");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let config = config(dir.path(), &fifo);
    let (_agent, socket) = start(dir.path(), &config);

    let log = || std::fs::read_to_string(dir.path().join("agent.log")).unwrap_or_default();
    let first = collect_until_ready(&socket, Duration::from_secs(60));
    assert_eq!(count(&first, "READY=1"), 1, "{first:?}\n{}", log());
    // The camera watchdog notices the stall after 10 s and abandons the thread; the agent as a
    // whole stays healthy: pings all along.
    let later = collect(&socket, Duration::from_secs(10));
    assert!(
        count(&later, "WATCHDOG=1") >= 15,
        "pings stopped: {later:?}\n{}",
        log()
    );
    wait_until(
        Duration::from_secs(10),
        "the camera watchdog to act",
        || log().to_lowercase().contains("stall"),
    );
    assert!(!log().contains("panicked"), "{}", log());
}

/// Test video: 2 s of test pattern.
fn pattern_video(dir: &std::path::Path) -> std::path::PathBuf {
    let video = dir.join("v.mp4");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-f", "lavfi", "-i"])
        .args(["testsrc=size=320x240:rate=10", "-t", "2"])
        .arg(&video)
        .status()
        .unwrap();
    assert!(status.success());
    video
}

/// Suspends (`TCOOFF`) or resumes (`TCOON`) output on the terminal behind `tty`: a write by
/// anyone to a suspended pty blocks until it is resumed, like a serial line held by flow control.
fn set_output_flow(tty: &std::fs::File, action: libc::c_int) {
    use std::os::fd::AsRawFd;
    // SAFETY: tcflow on a file descriptor we own; no memory is passed.
    let rc = unsafe { libc::tcflow(tty.as_raw_fd(), action) };
    assert_eq!(rc, 0, "tcflow: {}", std::io::Error::last_os_error());
}

#[test]
fn a_dispenser_loop_stuck_in_a_serial_write_stops_the_pings_until_it_moves() {
    use std::os::unix::fs::OpenOptionsExt;

    let dir = tempfile::tempdir().unwrap();
    let video = pattern_video(dir.path());
    let (_socat, agent_end, _pump_end) = pty_pair(dir.path());
    // Opened before the agent opens it exclusively (TIOCEXCL): our handle on the same line.
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(&agent_end)
        .unwrap();
    let dispenser = format!(
        r#"
[[dispenser]]
protocol = "dart"
port = "{port}"
response_timeout_ms = 50
fps = [{{ fp = 1, address = 0x50, decimals = {{ volume = 2, amount = 2, price = 2 }}, grades = ["95#"] }}]
[[fp]]
fp = 1
zones = [{{ camera = "cam1", polygon = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]] }}]
"#,
        port = agent_end.display()
    );
    let config = config_with(dir.path(), &video, &dispenser);
    let (_agent, socket) = start(dir.path(), &config);
    let log = || std::fs::read_to_string(dir.path().join("agent.log")).unwrap_or_default();

    // Polling an FP that never answers is a loop that goes round: pings come.
    let first = collect_until_ready(&socket, Duration::from_secs(60));
    assert_eq!(count(&first, "READY=1"), 1, "{first:?}\n{}", log());
    let before = collect(&socket, Duration::from_secs(3));
    assert!(count(&before, "WATCHDOG=1") >= 4, "{before:?}\n{}", log());

    // The next poll's write blocks: after watchdog_stall_s (3 s) the pings stop.
    set_output_flow(&tty, libc::TCOOFF);
    let _settling = collect(&socket, Duration::from_secs(5));
    let stuck = collect(&socket, Duration::from_secs(4));
    assert_eq!(
        count(&stuck, "WATCHDOG=1"),
        0,
        "pings went on with the dispenser loop stuck: {stuck:?}\n{}",
        log()
    );
    assert!(
        log().contains("main loop stalled") && log().contains("dispenser"),
        "{}",
        log()
    );

    // The write completes, the loop goes round again, and so do the pings.
    set_output_flow(&tty, libc::TCOON);
    let after = collect(&socket, Duration::from_secs(4));
    assert!(
        count(&after, "WATCHDOG=1") >= 3,
        "pings did not come back: {after:?}\n{}",
        log()
    );
    assert!(!log().contains("panicked"), "{}", log());
}
