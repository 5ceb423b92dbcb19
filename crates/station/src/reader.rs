//! The plate-reader thread: cameras' frames in, [`FramePlates`] events out. One thread serves
//! every camera in turn, taking only each camera's newest frame, so N cameras on a small box
//! share the CPU at a lower frame rate instead of queueing without bound.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use camera::{Frame, FrameSlot};
use forecourt_events::{FramePlates, Heartbeat};
use opencv::prelude::*;
use plates::PlatePipeline;
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// How long the thread rests when no camera had a frame for it.
const IDLE: Duration = Duration::from_millis(5);

#[derive(Default)]
pub struct ReaderStats {
    pub frames_read: AtomicU64,
    pub read_errors: AtomicU64,
    /// Mean over the last frames, in microseconds (exponential average).
    pub read_us: AtomicU64,
}

impl ReaderStats {
    fn read_took(&self, took: Duration) {
        let us = took.as_micros() as u64;
        let old = self.read_us.load(Ordering::Relaxed);
        let avg = if old == 0 { us } else { (old * 7 + us) / 8 };
        self.read_us.store(avg, Ordering::Relaxed);
        self.frames_read.fetch_add(1, Ordering::Relaxed);
    }
}

/// One camera as the reader serves it.
pub struct ReaderCamera {
    pub slot: Arc<FrameSlot>,
    /// At most this often (the camera's `max_fps`).
    pub min_gap: Duration,
}

/// The station loop is gone: the reader stops.
struct Closed;

struct Reader {
    pipeline: PlatePipeline,
    cameras: Vec<ReaderCamera>,
    /// When each camera's last frame was taken.
    last: Vec<Option<Instant>>,
    stats: Arc<ReaderStats>,
    out: mpsc::Sender<FramePlates>,
    heartbeat: Arc<Heartbeat>,
}

/// Starts the reader thread; it runs until `stop` is set or the receiver of `out` is gone.
pub fn spawn(
    pipeline: PlatePipeline,
    cameras: Vec<ReaderCamera>,
    out: mpsc::Sender<FramePlates>,
    heartbeat: Arc<Heartbeat>,
    stats: Arc<ReaderStats>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    let reader = Reader {
        pipeline,
        last: vec![None; cameras.len()],
        cameras,
        stats,
        out,
        heartbeat,
    };
    std::thread::Builder::new()
        .name("plate-reader".into())
        .spawn(move || reader.run(&stop))
}

impl Reader {
    fn run(mut self, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            self.heartbeat.beat();
            match self.serve_each_camera() {
                Ok(true) => {}
                Ok(false) => std::thread::sleep(IDLE),
                Err(Closed) => return,
            }
        }
    }

    /// Reads the newest frame of each camera that is due; whether any was.
    fn serve_each_camera(&mut self) -> Result<bool, Closed> {
        let mut worked = false;
        for i in 0..self.cameras.len() {
            if let Some(frame) = self.take_due(i) {
                worked = true;
                self.read(frame)?;
            }
        }
        Ok(worked)
    }

    fn take_due(&mut self, i: usize) -> Option<Frame> {
        let camera = &self.cameras[i];
        if self.last[i].is_some_and(|t| t.elapsed() < camera.min_gap) {
            return None;
        }
        let frame = camera.slot.take(Duration::ZERO)?;
        self.last[i] = Some(Instant::now());
        Some(frame)
    }

    fn read(&mut self, frame: Frame) -> Result<(), Closed> {
        let started = Instant::now();
        let readings = match self.pipeline.read(&frame.image) {
            Ok(readings) => readings,
            Err(e) => {
                if self
                    .stats
                    .read_errors
                    .fetch_add(1, Ordering::Relaxed)
                    .is_multiple_of(100)
                {
                    warn!(camera = %frame.camera, error = %e, "plate reading failed");
                }
                return Ok(());
            }
        };
        self.stats.read_took(started.elapsed());
        let (w, h) = (frame.image.cols(), frame.image.rows());
        let plates: Vec<_> = readings
            .iter()
            .filter(|r| !r.text.is_empty())
            .map(|r| r.to_event(w, h))
            .collect();
        if !plates.is_empty() {
            debug!(camera = %frame.camera, plates = ?plates.iter().map(|p| &p.text).collect::<Vec<_>>(), "plates read");
        }
        let event = FramePlates {
            t: frame.t,
            camera: frame.camera,
            plates,
        };
        self.out.blocking_send(event).map_err(|_| Closed)
    }
}
