use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use forecourt_events::now_millis;
use opencv::prelude::*;
use opencv::videoio::{self, VideoCapture};
use tracing::{info, warn};

use crate::file_clock::FileClock;
use crate::rate::RateCap;
use crate::redact::redact_credentials;
use crate::{ffmpeg_log, CameraError, Frame, FrameSlot};

/// Debug prints a stream URL with its credentials redacted (see [`redact_credentials`]): a
/// source is logged on every open and in errors.
#[derive(Clone, PartialEq)]
pub enum SourceKind {
    /// `rtsp://...` (or any URL FFmpeg opens).
    Stream(String),
    /// A video file, paced at its own frame rate as if it were live (see `FileClock`).
    File(std::path::PathBuf),
    /// `/dev/videoN` or `usb:N`.
    Usb(i32),
}

impl std::fmt::Debug for SourceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceKind::Stream(url) => f
                .debug_tuple("Stream")
                .field(&redact_credentials(url))
                .finish(),
            SourceKind::File(path) => f.debug_tuple("File").field(path).finish(),
            SourceKind::Usb(n) => f.debug_tuple("Usb").field(n).finish(),
        }
    }
}

impl SourceKind {
    pub fn parse(url: &str) -> Result<Self, String> {
        if url.contains("://") {
            return Ok(SourceKind::Stream(url.to_string()));
        }
        for prefix in ["usb:", "/dev/video"] {
            if let Some(n) = url.strip_prefix(prefix) {
                return n
                    .parse()
                    .map(SourceKind::Usb)
                    .map_err(|_| format!("{url:?}: expected a device number after {prefix}"));
            }
        }
        if url.is_empty() {
            return Err("empty camera url".into());
        }
        Ok(SourceKind::File(url.into()))
    }
}

#[derive(Debug, Clone)]
pub struct CameraConfig {
    pub name: String,
    pub source: SourceKind,
    /// Play a file in a loop (demo), in step with the wall clock (see `FileClock`), instead of
    /// treating its end as a failure.
    pub loop_file: bool,
    pub max_backoff: Duration,
    /// At most this many frames a second are converted to BGR and handed to the reader (the
    /// rest are decoded, since later frames depend on them, and dropped before conversion); 0
    /// hands over every frame.
    pub max_fps: f32,
}

impl CameraConfig {
    /// The least average time between two frames handed to the reader (`max_fps`); zero:
    /// every frame.
    pub fn handover_period(&self) -> Duration {
        if self.max_fps.is_finite() && self.max_fps > 0.0 {
            Duration::from_secs_f32(1.0 / self.max_fps)
        } else {
            Duration::ZERO
        }
    }
}

/// Restarts a capture that stops making progress. A blocked OpenCV `read()` or `open()` cannot be
/// interrupted, so the stuck thread is abandoned (it exits on its own if it ever returns, without
/// delivering frames) and a fresh one takes over.
#[derive(Debug, Clone)]
pub struct WatchdogConfig {
    /// No frame, open attempt or backoff tick for this long means the capture is hung. Streams
    /// also get OpenCV's FFmpeg open and read timeouts of three quarters of it, so a stream
    /// that stops sending usually ends its own `read()` and reconnects before the watchdog acts.
    pub stall_timeout: Duration,
    /// Most abandoned threads left blocked at once; beyond this no new capture is started until
    /// one of them returns, so a source that always hangs cannot pile up threads.
    pub max_abandoned: usize,
}

/// OpenCV's FFmpeg open and read timeout for a stream under a watchdog of `stall_timeout`: three
/// quarters of it, so a stalled `read()` (a server that keeps the connection open but sends
/// nothing) or a hanging RTSP handshake returns `false` in time for the capture thread to count the
/// stall and reconnect itself, and the thread is not abandoned. Without it FFmpeg waits 30 s.
/// It also bounds how long one camera's hanging handshake holds up the others: OpenCV opens one
/// FFmpeg capture at a time per process.
fn stream_timeout(stall_timeout: Duration) -> Duration {
    (stall_timeout * 3 / 4).max(Duration::from_millis(200))
}

impl Default for WatchdogConfig {
    fn default() -> Self {
        WatchdogConfig {
            // Longer than an RTSP open (~3 s) plus a few frame periods of a slow camera.
            stall_timeout: Duration::from_secs(10),
            max_abandoned: 4,
        }
    }
}

pub struct CameraHandle {
    pub name: String,
    pub slot: Arc<FrameSlot>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl CameraHandle {
    /// Stops the camera. Returns within about a second even when a capture thread is stuck in
    /// OpenCV (that thread is left to exit on its own).
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// State shared by the supervisor and the capture threads of one camera.
struct Shared {
    slot: Arc<FrameSlot>,
    stop: Arc<AtomicBool>,
    /// Milliseconds since `started` when the current capture thread last made progress.
    heartbeat_ms: AtomicU64,
    /// Frame counter kept across capture threads so `seq` never repeats.
    seq: AtomicU64,
    started: Instant,
}

impl Shared {
    fn beat(&self) {
        self.heartbeat_ms
            .store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn since_beat(&self) -> Duration {
        let last = Duration::from_millis(self.heartbeat_ms.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }
}

/// One capture thread and the flag that tells it it has been replaced.
struct Capture {
    thread: JoinHandle<()>,
    abandoned: Arc<AtomicBool>,
}

/// Starts the camera with the default watchdog. It runs until [`CameraHandle::stop`],
/// reconnecting forever.
pub fn spawn_camera(config: CameraConfig) -> Result<CameraHandle, CameraError> {
    spawn_camera_watched(config, WatchdogConfig::default())
}

/// Starts the camera: a supervisor thread that runs the capture thread and restarts it when it
/// hangs for longer than `watchdog.stall_timeout`.
pub fn spawn_camera_watched(
    config: CameraConfig,
    watchdog: WatchdogConfig,
) -> Result<CameraHandle, CameraError> {
    let name = config.name.clone();
    let slot = Arc::new(FrameSlot::default());
    let stop = Arc::new(AtomicBool::new(false));
    let shared = Arc::new(Shared {
        slot: slot.clone(),
        stop: stop.clone(),
        heartbeat_ms: AtomicU64::new(0),
        seq: AtomicU64::new(0),
        started: Instant::now(),
    });
    let thread = std::thread::Builder::new()
        .name(format!("camera-{}", config.name))
        .spawn(move || supervise(config, watchdog, shared))
        .map_err(|e| CameraError::BadSource {
            camera: name.clone(),
            url: String::new(),
            reason: format!("cannot start thread: {e}"),
        })?;
    Ok(CameraHandle {
        name,
        slot,
        stop,
        thread: Some(thread),
    })
}

fn start_capture(
    config: &CameraConfig,
    stall_timeout: Duration,
    shared: &Arc<Shared>,
) -> Option<Capture> {
    let abandoned = Arc::new(AtomicBool::new(false));
    shared.beat();
    let spawned = std::thread::Builder::new()
        .name(format!("capture-{}", config.name))
        .spawn({
            let (config, shared, abandoned) = (config.clone(), shared.clone(), abandoned.clone());
            move || {
                let name = config.name.clone();
                ffmpeg_log::this_thread_serves(&name);
                capture_loop(config, stream_timeout(stall_timeout), &shared, &abandoned)
                    .unwrap_or_else(|e| warn!(camera = %name, error = %e, "capture thread ended"))
            }
        });
    match spawned {
        Ok(thread) => Some(Capture { thread, abandoned }),
        Err(e) => {
            warn!(camera = %config.name, error = %e, "cannot start capture thread");
            None
        }
    }
}

fn supervise(config: CameraConfig, watchdog: WatchdogConfig, shared: Arc<Shared>) {
    let stats = &shared.slot.stats;
    let tick =
        (watchdog.stall_timeout / 4).clamp(Duration::from_millis(20), Duration::from_millis(500));
    let mut current = start_capture(&config, watchdog.stall_timeout, &shared);
    let mut abandoned: Vec<Capture> = Vec::new();
    while !shared.stop.load(Ordering::Relaxed) {
        std::thread::sleep(tick);
        abandoned.retain(|c| !c.thread.is_finished());
        stats
            .abandoned_alive
            .store(abandoned.len() as u64, Ordering::Relaxed);
        let hung = shared.since_beat() > watchdog.stall_timeout;
        let ended = current.as_ref().is_none_or(|c| c.thread.is_finished());
        if !hung && !ended {
            continue;
        }
        if let Some(c) = current.take() {
            if hung && !c.thread.is_finished() {
                warn!(camera = %config.name, stalled_s = shared.since_beat().as_secs(), "capture hung; abandoning it and starting another");
                c.abandoned.store(true, Ordering::Relaxed);
                stats.stalls.fetch_add(1, Ordering::Relaxed);
                stats.connected.store(false, Ordering::Relaxed);
                abandoned.push(c);
            }
        }
        if abandoned.len() >= watchdog.max_abandoned.max(1) {
            // Wait for a stuck thread to return before adding another; check again later.
            shared.beat();
            continue;
        }
        stats.reconnects.fetch_add(1, Ordering::Relaxed);
        current = start_capture(&config, watchdog.stall_timeout, &shared);
    }
    // Give a healthy capture thread a moment to notice the stop; a stuck one is left behind.
    if let Some(c) = current {
        let deadline = Instant::now() + Duration::from_secs(1);
        while !c.thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if c.thread.is_finished() {
            let _ = c.thread.join();
        }
    }
}

/// One camera opens at a time. OpenCV opens FFmpeg captures one at a time per process anyway
/// (an RTSP open takes about 3 s), so eight cameras starting together queue inside OpenCV,
/// where a queued capture cannot stamp its heartbeat: the watchdog took the later ones for hung
/// (10 s), abandoned and restarted them, and they queued again, so some never opened. Queued
/// here instead, each one beats while it waits its turn.
static OPENING: Mutex<()> = Mutex::new(());

/// A capture's place in the queue to open its source.
enum Turn {
    /// Its turn: no other camera opens until this is dropped.
    Mine(#[allow(dead_code)] MutexGuard<'static, ()>),
    /// Waited longer than its patience (a capture stuck inside an open holds the turn): it
    /// opens anyway, beside it.
    WaitedTooLong,
    /// Told to quit while waiting.
    Quit,
}

/// Waits for this capture's turn to open its source, beating meanwhile.
fn wait_for_turn(shared: &Shared, quit: impl Fn() -> bool, patience: Duration) -> Turn {
    let waiting = Instant::now();
    loop {
        match OPENING.try_lock() {
            Ok(turn) => return Turn::Mine(turn),
            Err(TryLockError::Poisoned(p)) => return Turn::Mine(p.into_inner()),
            Err(TryLockError::WouldBlock) => {}
        }
        if quit() {
            return Turn::Quit;
        }
        if waiting.elapsed() > patience {
            return Turn::WaitedTooLong;
        }
        shared.beat();
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn open(config: &CameraConfig, timeout: Duration) -> Result<VideoCapture, CameraError> {
    let ocv = |source| CameraError::OpenCv {
        camera: config.name.clone(),
        source,
    };
    // FFmpeg's own log through tracing: hooked before the first FFmpeg open and once after it.
    let ffmpeg = !matches!(config.source, SourceKind::Usb(_));
    if ffmpeg {
        ffmpeg_log::install();
    }
    let cap = match &config.source {
        SourceKind::Stream(url) => {
            let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
            let params = opencv::core::Vector::<i32>::from_slice(&[
                videoio::CAP_PROP_OPEN_TIMEOUT_MSEC,
                ms,
                videoio::CAP_PROP_READ_TIMEOUT_MSEC,
                ms,
            ]);
            VideoCapture::from_file_with_params(url, videoio::CAP_FFMPEG, &params)
        }
        SourceKind::File(path) => VideoCapture::from_file(path.as_os_str(), videoio::CAP_FFMPEG),
        SourceKind::Usb(n) => VideoCapture::new(*n, videoio::CAP_V4L2),
    };
    if ffmpeg {
        ffmpeg_log::after_first_open();
    }
    let cap = cap.map_err(ocv)?;
    if !cap.is_opened().map_err(ocv)? {
        return Err(CameraError::Open {
            camera: config.name.clone(),
            url: format!("{:?}", config.source),
        });
    }
    Ok(cap)
}

/// A file just opened: its clock and the frame it starts at (a looping file seeks to where the
/// clock says it is); `None` when the file gives no usable frame rate (then it is read as
/// fast as it decodes, stamped at grab).
fn start_file(cap: &mut VideoCapture, config: &CameraConfig) -> Option<(FileClock, u64)> {
    let fps = cap
        .get(videoio::CAP_PROP_FPS)
        .ok()
        .filter(|f| f.is_finite() && *f > 0.0 && *f < 1000.0)?;
    let frames = cap
        .get(videoio::CAP_PROP_FRAME_COUNT)
        .ok()
        .filter(|n| n.is_finite() && *n >= 1.0)
        .map(|n| n as u64);
    match frames {
        Some(frames) if config.loop_file => {
            let (clock, frame) = FileClock::looping(now_millis(), fps, frames);
            if frame > 0
                && !cap
                    .set(videoio::CAP_PROP_POS_FRAMES, frame as f64)
                    .unwrap_or(false)
            {
                warn!(camera = %config.name, frame, "cannot seek in the looping file; it plays from its start");
                return Some((FileClock::from_now(now_millis(), fps), 0));
            }
            Some((clock, frame))
        }
        _ => Some((FileClock::from_now(now_millis(), fps), 0)),
    }
}

/// Runs one capture thread until stop or until the supervisor replaces it (`abandoned`).
/// `stream_timeout` bounds a stream's open and each of its reads (see `fn stream_timeout`).
fn capture_loop(
    config: CameraConfig,
    stream_timeout: Duration,
    shared: &Shared,
    abandoned: &AtomicBool,
) -> Result<(), CameraError> {
    let slot = &shared.slot;
    let quit = || shared.stop.load(Ordering::Relaxed) || abandoned.load(Ordering::Relaxed);
    let mut backoff = Duration::from_millis(250);
    while !quit() {
        shared.beat();
        let turn = wait_for_turn(shared, quit, stream_timeout * 4);
        if matches!(turn, Turn::Quit) {
            return Ok(());
        }
        shared.beat();
        let opening = Instant::now();
        let opened = open(&config, stream_timeout);
        drop(turn);
        let mut cap = match opened {
            Ok(cap) => cap,
            Err(e) => {
                if quit() {
                    return Ok(());
                }
                warn!(camera = %config.name, error = %e, backoff_ms = backoff.as_millis() as u64, "camera open failed");
                slot.stats.open_failures.fetch_add(1, Ordering::Relaxed);
                sleep_unless_stopped(backoff, shared, abandoned);
                backoff = (backoff * 2).min(config.max_backoff);
                slot.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        if quit() {
            return Ok(());
        }
        let is_stream = matches!(config.source, SourceKind::Stream(_));
        info!(camera = %config.name, source = ?config.source, open_ms = opening.elapsed().as_millis() as u64, "camera opened");
        slot.stats.connected.store(true, Ordering::Relaxed);
        // Files are paced at their own frame rate so they behave like a live camera, and each
        // frame is stamped with its own time (see `FileClock`).
        let mut file_clock = match config.source {
            SourceKind::File(_) => start_file(&mut cap, &config),
            _ => None,
        };
        let mut in_run = 0u32;
        let mut handover = RateCap::new(config.handover_period());
        // When a stream read last hit FFmpeg's read timeout, and how long it waited. That read
        // itself may still return a frame (the decoder is drained of what it holds), so the read
        // that fails, a moment later, can be quick.
        let mut timed_out: Option<(Instant, Duration)> = None;
        loop {
            if quit() {
                return Ok(());
            }
            if let Some((clock, k)) = file_clock {
                let wait_ms = clock.frame_t(k) - now_millis();
                if wait_ms > 0 {
                    std::thread::sleep(Duration::from_millis(wait_ms as u64));
                }
            }
            shared.beat();
            let reading = Instant::now();
            let ok = cap.grab().unwrap_or(false);
            let t = match &mut file_clock {
                Some((clock, k)) => {
                    *k += 1;
                    clock.frame_t(*k - 1)
                }
                None => now_millis(),
            };
            if quit() {
                // Replaced while blocked in read(): the new capture owns the slot now.
                return Ok(());
            }
            let waited = reading.elapsed();
            if is_stream && waited >= stream_timeout.mul_f32(0.9) {
                timed_out = Some((Instant::now(), waited));
            }
            if !ok {
                break;
            }
            in_run += 1;
            if !handover.take_if_due(shared.started.elapsed()) {
                slot.stats.not_converted.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let mut image = opencv::core::Mat::default();
            if !cap.retrieve(&mut image, 0).unwrap_or(false) || image.empty() {
                break;
            }
            shared.beat();
            backoff = Duration::from_millis(250);
            slot.put(Frame {
                camera: config.name.clone(),
                t,
                seq: shared.seq.fetch_add(1, Ordering::Relaxed) + 1,
                image,
            });
        }
        slot.stats.connected.store(false, Ordering::Relaxed);
        if matches!(config.source, SourceKind::File(_)) && config.loop_file && in_run > 0 {
            continue; // end of the demo video: start it again
        }
        match timed_out {
            Some((at, waited)) if at.elapsed() < Duration::from_secs(1) => {
                // FFmpeg gave up waiting: the stream is open but sends nothing.
                warn!(camera = %config.name, frames = in_run, waited_ms = waited.as_millis() as u64, "camera stream stalled (read timed out); reconnecting");
                slot.stats.stalls.fetch_add(1, Ordering::Relaxed);
            }
            _ => warn!(camera = %config.name, frames = in_run, "camera stream ended; reconnecting"),
        }
        slot.stats.reconnects.fetch_add(1, Ordering::Relaxed);
        sleep_unless_stopped(backoff, shared, abandoned);
        backoff = (backoff * 2).min(config.max_backoff);
    }
    Ok(())
}

/// Sleeps `d` in short steps, stamping the heartbeat (waiting out a backoff is not a hang).
fn sleep_unless_stopped(d: Duration, shared: &Shared, abandoned: &AtomicBool) {
    let until = Instant::now() + d;
    while !shared.stop.load(Ordering::Relaxed) && !abandoned.load(Ordering::Relaxed) {
        shared.beat();
        let now = Instant::now();
        if now >= until {
            return;
        }
        std::thread::sleep((until - now).min(Duration::from_millis(100)));
    }
}

#[cfg(test)]
mod tests {
    use super::{redact_credentials, SourceKind};

    #[test]
    fn credentials_never_reach_a_log() {
        let cases = [
            (
                "rtsp://admin:s3cr@t@10.0.0.5:554/live",
                "rtsp://***@10.0.0.5:554/live",
            ),
            (
                "rtsp://admin@10.0.0.5/live?a=b@c",
                "rtsp://***@10.0.0.5/live?a=b@c",
            ),
            ("rtsp://10.0.0.5/live@2", "rtsp://10.0.0.5/live@2"),
            ("http://u:p@cam", "http://***@cam"),
            ("demo.mp4", "demo.mp4"),
        ];
        for (url, shown) in cases {
            assert_eq!(redact_credentials(url), shown, "{url}");
        }
        let source = SourceKind::parse("rtsp://admin:hunter2@10.0.0.5/live").unwrap();
        let printed = format!("{source:?}");
        assert!(
            !printed.contains("hunter2") && !printed.contains("admin"),
            "{printed}"
        );
        assert_eq!(printed, r#"Stream("rtsp://***@10.0.0.5/live")"#);
    }

    #[test]
    fn parses_source_urls() {
        assert_eq!(
            SourceKind::parse("rtsp://10.0.0.5/live").unwrap(),
            SourceKind::Stream("rtsp://10.0.0.5/live".into())
        );
        assert_eq!(SourceKind::parse("usb:0").unwrap(), SourceKind::Usb(0));
        assert_eq!(
            SourceKind::parse("/dev/video2").unwrap(),
            SourceKind::Usb(2)
        );
        assert_eq!(
            SourceKind::parse("demo.mp4").unwrap(),
            SourceKind::File("demo.mp4".into())
        );
        assert!(SourceKind::parse("usb:x").is_err());
        assert!(SourceKind::parse("").is_err());
    }
}
