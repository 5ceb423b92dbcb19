//! Camera sources against real files made by ffmpeg (skipped, with a note, where ffmpeg is absent).

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use camera::{spawn_camera, spawn_camera_watched, CameraConfig, SourceKind, WatchdogConfig};
use support::{has_ffmpeg, stop_quickly, wait_for, TempDir};

/// A 3 s, 10 fps test pattern.
fn make_video(path: &Path) {
    let status = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc=size=320x240:rate=10")
        .args(["-t", "3", "-pix_fmt", "yuv420p"])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success(), "ffmpeg failed");
}

fn config(name: &str, path: &Path, max_backoff: Duration) -> CameraConfig {
    CameraConfig {
        name: name.into(),
        source: SourceKind::File(path.to_path_buf()),
        loop_file: false,
        max_backoff,
        max_fps: 0.0,
    }
}

#[test]
fn file_frames_arrive_with_increasing_capture_times() {
    if !has_ffmpeg() {
        return;
    }
    let dir = TempDir::new("frames");
    let video = dir.0.join("x.mp4");
    make_video(&video);
    let camera = spawn_camera(config("frames", &video, Duration::from_secs(1))).unwrap();
    let mut frames = Vec::new();
    // A bound, not a pace: opening the file may take a while on a busy machine.
    let until = Instant::now() + Duration::from_secs(15);
    while Instant::now() < until && frames.len() < 12 {
        if let Some(f) = camera.slot.take(Duration::from_millis(500)) {
            assert_eq!((f.image.cols(), f.image.rows()), (320, 240));
            frames.push((f.t, f.seq));
        }
    }
    assert!(frames.len() >= 8, "only {} frames", frames.len());
    for pair in frames.windows(2) {
        assert!(pair[1].0 >= pair[0].0, "capture time went back: {pair:?}");
        assert!(pair[1].1 > pair[0].1, "seq did not increase: {pair:?}");
    }
    // Paced at 10 fps: about 100 ms apart, so 8 frames span most of a second.
    let span = frames.last().unwrap().0 - frames[0].0;
    assert!(
        span >= 500,
        "frames not paced: {span} ms for {}",
        frames.len()
    );
    assert!(camera.slot.stats.connected.load(Ordering::Relaxed));
    assert_eq!(camera.slot.stats.stalls.load(Ordering::Relaxed), 0);
    stop_quickly(camera);
}

/// A looping file plays in step with the wall clock: its 3 s passes start on whole multiples of
/// 3 s since the epoch, so every frame (10 fps) is stamped on a whole 100 ms, across the loop's
/// end too, and near the time it is handed over.
#[test]
fn a_looping_file_is_stamped_in_step_with_the_clock() {
    if !has_ffmpeg() {
        return;
    }
    let dir = TempDir::new("looping");
    let video = dir.0.join("x.mp4");
    make_video(&video);
    let camera = spawn_camera(CameraConfig {
        loop_file: true,
        ..config("looping", &video, Duration::from_secs(1))
    })
    .unwrap();
    let mut stamps = Vec::new();
    let until = Instant::now() + Duration::from_secs(30);
    // Past at least one end of the file (3 s).
    while Instant::now() < until && stamps.last().is_none_or(|&t| t < stamps[0] + 4_000) {
        if let Some(f) = camera.slot.take(Duration::from_millis(500)) {
            let now = forecourt_events::now_millis();
            assert!(
                (f.t - now).abs() < 2_000,
                "stamped {} ms from now",
                f.t - now
            );
            stamps.push(f.t);
        }
    }
    assert!(
        stamps.last().is_some_and(|&t| t >= stamps[0] + 4_000),
        "not past the end of the file: {stamps:?}"
    );
    for t in &stamps {
        assert_eq!(t % 100, 0, "a frame off the clock: {stamps:?}");
    }
    for pair in stamps.windows(2) {
        assert!(pair[1] > pair[0], "time went back: {stamps:?}");
    }
    stop_quickly(camera);
}

use opencv::prelude::MatTraitConst;

#[test]
fn missing_file_reconnects_with_backoff_then_recovers() {
    if !has_ffmpeg() {
        return;
    }
    let dir = TempDir::new("missing");
    let video = dir.0.join("later.mp4");
    let camera = spawn_camera(config("missing", &video, Duration::from_millis(400))).unwrap();
    let stats = &camera.slot.stats;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(15);
    while stats.reconnects.load(Ordering::Relaxed) < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let reconnects = stats.reconnects.load(Ordering::Relaxed);
    let elapsed_ms = started.elapsed().as_millis() as u64;
    assert!(
        reconnects >= 3,
        "{reconnects} reconnects in {elapsed_ms} ms"
    );
    // Backoff 250 ms then 400 ms: never more than one attempt per 200 ms, not a busy loop.
    assert!(
        reconnects <= elapsed_ms / 200 + 1,
        "{reconnects} reconnects in {elapsed_ms} ms"
    );
    assert!(stats.open_failures.load(Ordering::Relaxed) >= 2);
    assert_eq!(stats.frames.load(Ordering::Relaxed), 0);
    assert!(!stats.connected.load(Ordering::Relaxed));
    // The file appears: the next attempt opens it.
    make_video(&video);
    assert!(
        camera.slot.take(Duration::from_secs(3)).is_some(),
        "no frame after the file appeared"
    );
    stop_quickly(camera);
}

#[test]
fn empty_and_garbage_files_are_errors_not_panics() {
    let dir = TempDir::new("garbage");
    let empty = dir.0.join("empty.mp4");
    std::fs::write(&empty, b"").unwrap();
    let garbage = dir.0.join("garbage.mp4");
    let noise: Vec<u8> = (0..64 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&garbage, noise).unwrap();
    let cameras: Vec<_> = [("empty", &empty), ("garbage", &garbage)]
        .into_iter()
        .map(|(name, path)| spawn_camera(config(name, path, Duration::from_millis(300))).unwrap())
        .collect();
    for camera in &cameras {
        let stats = &camera.slot.stats;
        assert!(
            wait_for(Duration::from_secs(3), || stats
                .open_failures
                .load(Ordering::Relaxed)
                + stats.reconnects.load(Ordering::Relaxed)
                >= 2),
            "{}: no failed attempts counted",
            camera.name
        );
        assert!(camera.slot.take(Duration::from_millis(100)).is_none());
        assert_eq!(stats.frames.load(Ordering::Relaxed), 0);
    }
    for camera in cameras {
        stop_quickly(camera);
    }
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // SIGKILL works on a stopped process too; its readers then see end of file.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A live stream through a named pipe whose writer is then frozen (SIGSTOP): the capture thread
/// blocks in `read()` for good, and the watchdog must notice and start another.
#[test]
fn watchdog_replaces_a_capture_hung_in_read() {
    if !has_ffmpeg() {
        return;
    }
    let dir = TempDir::new("hung");
    let fifo = dir.0.join("live.mkv");
    let made = Command::new("mkfifo").arg(&fifo).status();
    if !made.is_ok_and(|s| s.success()) {
        eprintln!("skipped: mkfifo failed");
        return;
    }
    let writer = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-re", "-f", "lavfi", "-i"])
        .arg("testsrc=size=320x240:rate=10")
        .args(["-t", "60", "-c:v", "mjpeg", "-f", "matroska", "-y"])
        .arg(&fifo)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let writer = KillOnDrop(writer);
    let watchdog = WatchdogConfig {
        stall_timeout: Duration::from_millis(1500),
        max_abandoned: 2,
    };
    let camera =
        spawn_camera_watched(config("hung", &fifo, Duration::from_millis(300)), watchdog).unwrap();
    let stats = &camera.slot.stats;
    assert!(
        wait_for(Duration::from_secs(8), || stats
            .frames
            .load(Ordering::Relaxed)
            >= 5),
        "no frames from the live pipe"
    );
    // A slow start (ffmpeg and OpenCV probing the pipe) may already count as a stall: what
    // matters is the stall the freeze causes.
    let stalls_before = stats.stalls.load(Ordering::Relaxed);
    let frozen = Command::new("kill")
        .args(["-STOP", &writer.0.id().to_string()])
        .status()
        .unwrap();
    assert!(frozen.success());
    assert!(
        wait_for(Duration::from_secs(6), || stats
            .stalls
            .load(Ordering::Relaxed)
            > stalls_before),
        "watchdog did not notice the hung read"
    );
    assert!(!stats.connected.load(Ordering::Relaxed));
    // Stopping must not wait for the thread stuck in OpenCV.
    stop_quickly(camera);
    drop(writer);
}
