use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use forecourt_events::now_millis;
use opencv::prelude::*;
use opencv::videoio::{self, VideoCapture};
use tracing::{info, warn};

use crate::{CameraError, Frame, FrameSlot};

#[derive(Debug, Clone, PartialEq)]
pub enum SourceKind {
    /// `rtsp://...` (or any URL FFmpeg opens).
    Stream(String),
    /// A video file, paced at its own frame rate as if it were live.
    File(std::path::PathBuf),
    /// `/dev/videoN` or `usb:N`.
    Usb(i32),
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
    /// Restart a file from the beginning when it ends (demo), instead of treating the end as a failure.
    pub loop_file: bool,
    pub max_backoff: Duration,
}

pub struct CameraHandle {
    pub name: String,
    pub slot: Arc<FrameSlot>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl CameraHandle {
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts the camera's capture thread. It runs until [`CameraHandle::stop`], reconnecting forever.
pub fn spawn_camera(config: CameraConfig) -> Result<CameraHandle, CameraError> {
    let name = config.name.clone();
    let slot = Arc::new(FrameSlot::default());
    let stop = Arc::new(AtomicBool::new(false));
    let thread = std::thread::Builder::new()
        .name(format!("camera-{}", config.name))
        .spawn({
            let (slot, stop, name) = (slot.clone(), stop.clone(), config.name.clone());
            move || {
                capture_loop(config, &slot, &stop)
                    .unwrap_or_else(|e| warn!(camera = %name, error = %e, "camera thread ended"))
            }
        })
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

fn open(config: &CameraConfig) -> Result<VideoCapture, CameraError> {
    let ocv = |source| CameraError::OpenCv {
        camera: config.name.clone(),
        source,
    };
    let cap = match &config.source {
        SourceKind::Stream(url) => {
            VideoCapture::from_file(url, videoio::CAP_FFMPEG).map_err(ocv)?
        }
        SourceKind::File(path) => {
            VideoCapture::from_file(path.as_os_str(), videoio::CAP_FFMPEG).map_err(ocv)?
        }
        SourceKind::Usb(n) => VideoCapture::new(*n, videoio::CAP_V4L2).map_err(ocv)?,
    };
    if !cap.is_opened().map_err(ocv)? {
        return Err(CameraError::Open {
            camera: config.name.clone(),
            url: format!("{:?}", config.source),
        });
    }
    Ok(cap)
}

fn capture_loop(
    config: CameraConfig,
    slot: &FrameSlot,
    stop: &AtomicBool,
) -> Result<(), CameraError> {
    let mut backoff = Duration::from_millis(250);
    let mut seq = 0u64;
    // Paced files count frames from one fixed start across loops, so a looping demo video keeps
    // step with wall-clock time (the pump simulator's schedule) instead of drifting each loop.
    let mut epoch = Instant::now();
    let mut paced = 0u32;
    while !stop.load(Ordering::Relaxed) {
        let mut cap = match open(&config) {
            Ok(cap) => cap,
            Err(e) => {
                warn!(camera = %config.name, error = %e, backoff_ms = backoff.as_millis() as u64, "camera open failed");
                sleep_unless_stopped(backoff, stop);
                backoff = (backoff * 2).min(config.max_backoff);
                slot.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        info!(camera = %config.name, source = ?config.source, "camera opened");
        slot.stats.connected.store(true, Ordering::Relaxed);
        // Files are paced at their own frame rate so they behave like a live camera.
        let pace = match config.source {
            SourceKind::File(_) => cap
                .get(videoio::CAP_PROP_FPS)
                .ok()
                .filter(|f| f.is_finite() && *f > 0.0 && *f < 1000.0)
                .map(|fps| Duration::from_secs_f64(1.0 / fps)),
            _ => None,
        };
        let mut in_run = 0u32;
        loop {
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            if let Some(period) = pace {
                let due = epoch + period * paced;
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            let mut image = opencv::core::Mat::default();
            let ok = cap.read(&mut image).unwrap_or(false);
            let t = now_millis();
            if !ok || image.empty() {
                break;
            }
            in_run += 1;
            paced += 1;
            seq += 1;
            backoff = Duration::from_millis(250);
            slot.put(Frame {
                camera: config.name.clone(),
                t,
                seq,
                image,
            });
        }
        slot.stats.connected.store(false, Ordering::Relaxed);
        if matches!(config.source, SourceKind::File(_)) && config.loop_file && in_run > 0 {
            continue; // end of the demo video: start it again
        }
        warn!(camera = %config.name, frames = in_run, "camera stream ended; reconnecting");
        (epoch, paced) = (Instant::now(), 0);
        slot.stats.reconnects.fetch_add(1, Ordering::Relaxed);
        sleep_unless_stopped(backoff, stop);
        backoff = (backoff * 2).min(config.max_backoff);
    }
    Ok(())
}

fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) {
    let until = Instant::now() + d;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now >= until {
            return;
        }
        std::thread::sleep((until - now).min(Duration::from_millis(100)));
    }
}

#[cfg(test)]
mod tests {
    use super::SourceKind;

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
