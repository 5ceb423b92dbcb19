//! The sd_notify protocol as systemd sees it, on a socket the test provides (NOTIFY_SOCKET):
//! READY=1 after start-up, WATCHDOG=1 while the main loops run, STOPPING=1 on SIGTERM; and a
//! camera whose stream blocks forever in open() is restarted inside the agent (its capture
//! thread abandoned), so the pings go on.

mod support;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

fn config(dir: &std::path::Path, video: &std::path::Path) -> std::path::PathBuf {
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

    let first = collect(&socket, Duration::from_secs(15));
    let log = || std::fs::read_to_string(dir.path().join("agent.log")).unwrap_or_default();
    assert!(
        count(&first, "READY=1") == 1,
        "no READY=1 in {first:?}\n{}",
        log()
    );
    // 0.5 s period: at least 10 pings in the 15 s after start (start-up takes a few seconds).
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
    let first = collect(&socket, Duration::from_secs(8));
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
