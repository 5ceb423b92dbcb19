//! Camera sources against a real RTSP server: GStreamer's RTSP server serving a live H.264 test
//! pattern, or a video file in a loop (`tests/rtsp_server.py`, run by Debian's /usr/bin/python3).
//! Skipped, with a note, only where the GStreamer packages (or, for the file, ffmpeg) are missing
//! (scripts/setup.sh installs them, so CI runs these).

mod support;

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use camera::{spawn_camera_watched, CameraConfig, CameraHandle, SourceKind, WatchdogConfig};
use opencv::prelude::MatTraitConst;
use support::{has_ffmpeg, stop_quickly, wait_for, TempDir};

const PYTHON: &str = "/usr/bin/python3";

/// OpenCV's FFmpeg backend opens one capture at a time per process (a global lock held for the
/// whole RTSP handshake), so these tests, run side by side, would hold up each other's reconnects
/// and the timings would measure that. They take turns.
static TURN: Mutex<()> = Mutex::new(());

fn my_turn() -> MutexGuard<'static, ()> {
    TURN.lock().unwrap_or_else(|p| p.into_inner())
}

/// The RTSP server process; killed (SIGKILL, which also ends a stopped process) on drop.
struct Server {
    child: Child,
    stderr: Arc<Mutex<String>>,
}

impl Server {
    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    fn signal(&self, sig: &str) {
        let sent = Command::new("kill")
            .args([sig, &self.pid()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill {sig} failed");
    }

    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

enum Start {
    Ready(Server),
    /// Python's GObject bindings or the GStreamer RTSP server or plugins are not installed.
    Missing(String),
}

/// Starts the server (the test pattern) on `port` and waits until it says it is listening.
fn start_server(port: u16) -> Start {
    start_server_with(port, &[])
}

/// Starts the server on `port` with more arguments (`--file PATH`) and waits until it says it is
/// listening.
fn start_server_with(port: u16, args: &[&std::ffi::OsStr]) -> Start {
    if !Path::new(PYTHON).exists() {
        return Start::Missing(format!("{PYTHON} not found"));
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rtsp_server.py");
    let mut child = Command::new(PYTHON)
        .arg(&script)
        .arg(port.to_string())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = Arc::new(Mutex::new(String::new()));
    std::thread::spawn({
        let (mut err, stderr) = (child.stderr.take().unwrap(), stderr.clone());
        move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                stderr
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        }
    });
    let (tx, rx) = mpsc::channel();
    std::thread::spawn({
        let out = child.stdout.take().unwrap();
        move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if line.starts_with("listening ") {
                    let _ = tx.send(());
                }
            }
        }
    });
    // The first GStreamer start on a machine builds its plugin registry: allow for it.
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(()) => Start::Ready(Server { child, stderr }),
        Err(_) => {
            let _ = child.kill();
            let status = child.wait().unwrap();
            let err = stderr.lock().unwrap().clone();
            if status.code() == Some(2) {
                Start::Missing(err.trim().to_string())
            } else {
                panic!("RTSP server on port {port} did not start ({status}): {err}");
            }
        }
    }
}

/// The camera's log (reconnects, stalls) in each test's captured output, shown when it fails.
fn init_log() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "camera=info".into()),
        )
        .with_test_writer()
        .with_ansi(false)
        .try_init();
}

/// Starts the server, or prints why the test is skipped.
fn server_or_skip(port: u16) -> Option<Server> {
    server_or_skip_with(port, &[])
}

fn server_or_skip_with(port: u16, args: &[&std::ffi::OsStr]) -> Option<Server> {
    init_log();
    match start_server_with(port, args) {
        Start::Ready(s) => Some(s),
        Start::Missing(why) => {
            eprintln!("skipped: cannot start the GStreamer RTSP server: {why}");
            None
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn camera(name: &str, port: u16, max_backoff: Duration, stall_timeout: Duration) -> CameraHandle {
    let source = SourceKind::parse(&format!("rtsp://127.0.0.1:{port}/test")).unwrap();
    assert!(matches!(source, SourceKind::Stream(_)));
    let config = CameraConfig {
        name: name.into(),
        source,
        loop_file: false,
        max_backoff,
        max_fps: 0.0,
    };
    let watchdog = WatchdogConfig {
        stall_timeout,
        max_abandoned: 2,
    };
    spawn_camera_watched(config, watchdog).unwrap()
}

fn frames(camera: &CameraHandle) -> u64 {
    camera.slot.stats.frames.load(Ordering::Relaxed)
}

#[test]
fn rtsp_frames_arrive() {
    let _turn = my_turn();
    let port = free_port();
    let Some(server) = server_or_skip(port) else {
        return;
    };
    let camera = camera("rtsp", port, Duration::from_secs(1), Duration::from_secs(5));
    let mut got = Vec::new();
    let until = Instant::now() + Duration::from_secs(15);
    while Instant::now() < until && got.len() < 10 {
        if let Some(f) = camera.slot.take(Duration::from_millis(500)) {
            assert_eq!((f.image.cols(), f.image.rows()), (320, 240));
            got.push((f.t, f.seq));
        }
    }
    assert!(
        got.len() >= 10,
        "only {} frames in 15 s; server: {}",
        got.len(),
        server.stderr.lock().unwrap()
    );
    for pair in got.windows(2) {
        assert!(pair[1].0 >= pair[0].0, "capture time went back: {pair:?}");
        assert!(pair[1].1 > pair[0].1, "seq did not increase: {pair:?}");
    }
    let stats = &camera.slot.stats;
    assert!(stats.connected.load(Ordering::Relaxed));
    assert_eq!(stats.stalls.load(Ordering::Relaxed), 0);
    stop_quickly(camera);
    server.kill();
}

/// kill -9 the server mid-stream, start it again on the same port: frames must come back within
/// 5 s of the new server listening. The camera's `max_backoff` is 1 s, so while the server is down
/// the reconnect attempts settle at one a second, and the first one after the restart is at most
/// about a second away; the rest is the RTSP handshake and the first key frame.
#[test]
fn rtsp_server_killed_and_restarted_gives_frames_within_5s() {
    let _turn = my_turn();
    let port = free_port();
    let Some(server) = server_or_skip(port) else {
        return;
    };
    let camera = camera(
        "restart",
        port,
        Duration::from_secs(1),
        Duration::from_secs(5),
    );
    let stats = &camera.slot.stats;
    assert!(
        wait_for(Duration::from_secs(15), || frames(&camera) >= 10),
        "no frames before the kill"
    );
    server.signal("-KILL");
    server.kill();
    assert!(
        wait_for(Duration::from_secs(5), || !stats
            .connected
            .load(Ordering::Relaxed)),
        "the camera did not notice the server died"
    );
    let reconnects = stats.reconnects.load(Ordering::Relaxed);
    // Down long enough for the backoff to reach its 1 s cap (250, 500, 1000 ms).
    std::thread::sleep(Duration::from_millis(2000));
    assert!(stats.reconnects.load(Ordering::Relaxed) > reconnects);
    let before = frames(&camera);
    let server = match start_server(port) {
        Start::Ready(s) => s,
        Start::Missing(why) => panic!("the server started once but not again: {why}"),
    };
    let ready = Instant::now();
    let back = wait_for(Duration::from_secs(10), || frames(&camera) > before);
    let took = ready.elapsed();
    eprintln!(
        "rtsp reconnect: first frame {} ms after the restarted server was listening \
         (max_backoff 1 s, {} reconnect attempts in all)",
        took.as_millis(),
        stats.reconnects.load(Ordering::Relaxed)
    );
    assert!(
        back,
        "no frame 10 s after the restart; server: {}",
        server.stderr.lock().unwrap()
    );
    assert!(took <= Duration::from_secs(5), "frames back after {took:?}");
    let f = camera.slot.take(Duration::from_secs(2)).expect("a frame");
    assert_eq!((f.image.cols(), f.image.rows()), (320, 240));
    assert!(stats.connected.load(Ordering::Relaxed));
    stop_quickly(camera);
    server.kill();
}

/// A server that keeps the connection open but stops sending (SIGSTOP): the stall is detected,
/// counted and the capture restarted; after SIGCONT frames flow again. The detection is OpenCV's
/// FFmpeg read timeout (three quarters of the watchdog's `stall_timeout`), which ends the blocked
/// `read()` so that no thread is abandoned; the watchdog itself would step in a second later.
#[test]
fn rtsp_stream_that_stops_sending_is_detected_and_restarted() {
    let _turn = my_turn();
    let port = free_port();
    let Some(server) = server_or_skip(port) else {
        return;
    };
    let stall_timeout = Duration::from_secs(4);
    let camera = camera("stall", port, Duration::from_millis(500), stall_timeout);
    let stats = &camera.slot.stats;
    assert!(
        wait_for(Duration::from_secs(15), || frames(&camera) >= 10),
        "no frames before the stall"
    );
    assert_eq!(stats.stalls.load(Ordering::Relaxed), 0);
    let reconnects = stats.reconnects.load(Ordering::Relaxed);
    server.signal("-STOP");
    let frozen = Instant::now();
    assert!(
        wait_for(Duration::from_secs(8), || stats
            .stalls
            .load(Ordering::Relaxed)
            >= 1),
        "the stalled stream was not detected"
    );
    let detected = frozen.elapsed();
    assert!(!stats.connected.load(Ordering::Relaxed));
    // The capture is restarted and keeps trying: the frozen server accepts the connection (the
    // kernel does that) but never answers, so the open times out too, and is tried again.
    assert!(stats.reconnects.load(Ordering::Relaxed) > reconnects);
    assert!(
        wait_for(Duration::from_secs(8), || stats
            .open_failures
            .load(Ordering::Relaxed)
            >= 1),
        "no failed open against the frozen server"
    );
    assert!(!stats.connected.load(Ordering::Relaxed));
    let before = frames(&camera);
    server.signal("-CONT");
    let resumed = Instant::now();
    let back = wait_for(Duration::from_secs(12), || frames(&camera) > before);
    eprintln!(
        "rtsp stall: detected {} ms after SIGSTOP (stall_timeout {} ms), frames back {} ms after \
         SIGCONT; stalls {}, reconnects {}, open failures {}, abandoned threads alive {}",
        detected.as_millis(),
        stall_timeout.as_millis(),
        resumed.elapsed().as_millis(),
        stats.stalls.load(Ordering::Relaxed),
        stats.reconnects.load(Ordering::Relaxed),
        stats.open_failures.load(Ordering::Relaxed),
        stats.abandoned_alive.load(Ordering::Relaxed),
    );
    assert!(
        back,
        "no frames after SIGCONT; server: {}",
        server.stderr.lock().unwrap()
    );
    assert!(stats.connected.load(Ordering::Relaxed));
    stop_quickly(camera);
    server.kill();
}

/// `rtsp_server.py --file`: a 3 s, 10 fps H.264 mp4 (30 frames) made by ffmpeg, at 352x288 (not
/// the test pattern's 320x240, so a frame of that size is the file's). The camera gets the file's
/// frames and keeps getting them, on the one connection, well past the file's 30: the server
/// plays it in a loop.
#[test]
fn rtsp_video_file_is_served_in_a_loop() {
    let _turn = my_turn();
    if !has_ffmpeg() {
        return;
    }
    let dir = TempDir::new("rtsp-file");
    let video = dir.0.join("loop.mp4");
    let made = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc=size=352x288:rate=10")
        .args(["-t", "3", "-c:v", "libx264", "-pix_fmt", "yuv420p"])
        .arg(&video)
        .status()
        .unwrap();
    assert!(made.success(), "ffmpeg failed");
    const FILE_FRAMES: u64 = 30;
    let port = free_port();
    let Some(server) = server_or_skip_with(port, &["--file".as_ref(), video.as_os_str()]) else {
        return;
    };
    let camera = camera("file", port, Duration::from_secs(1), Duration::from_secs(5));
    let stats = &camera.slot.stats;
    let first = camera.slot.take(Duration::from_secs(15));
    let Some(first) = first else {
        panic!(
            "no frame in 15 s; server: {}",
            server.stderr.lock().unwrap()
        );
    };
    assert_eq!((first.image.cols(), first.image.rows()), (352, 288));
    // From here on one connection: a reconnect would mean the stream ended (or stalled).
    let reconnects = stats.reconnects.load(Ordering::Relaxed);
    let start = frames(&camera);
    // Twice the file's frames after the first; a bound, not a pace (at 10 fps it takes 6 s).
    let mut seen = 0;
    let until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < until && frames(&camera) < start + 2 * FILE_FRAMES {
        if let Some(f) = camera.slot.take(Duration::from_millis(500)) {
            assert_eq!((f.image.cols(), f.image.rows()), (352, 288));
            seen += 1;
        }
    }
    let got = frames(&camera) - start;
    assert!(
        got >= 2 * FILE_FRAMES,
        "only {got} frames after the first in 30 s (the file has {FILE_FRAMES}); server: {}",
        server.stderr.lock().unwrap()
    );
    assert!(seen > 0);
    assert_eq!(
        stats.reconnects.load(Ordering::Relaxed),
        reconnects,
        "the camera reconnected: the stream ended or stalled instead of looping"
    );
    assert_eq!(stats.stalls.load(Ordering::Relaxed), 0);
    assert!(stats.connected.load(Ordering::Relaxed));
    stop_quickly(camera);
    server.kill();
}
