//! The plate-reader thread: cameras' frames in, [`FramePlates`] events out. One thread serves
//! every camera, taking only each camera's newest frame, so N cameras on a small box share the
//! CPU at a lower frame rate instead of queueing without bound. Whose frame is read next: the
//! camera longest past its due time (its `max_fps` schedule), so under overload every camera
//! gets its share and none starves. Of each frame only the part around the camera's zones is
//! read (`crate::focus`). When nothing moved there since the last read and the last full read
//! is recent, only the surroundings of the plates the last read found are read (the cars
//! standing at the pumps, without a detector pass over the whole focus), and when it found none
//! the frame is not read at all: it is reported with no plates, which is what reading it would
//! have found.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use camera::{Frame, FrameSlot, RateCap};
use forecourt_events::{FramePlates, Heartbeat};
use opencv::core::{Mat, Rect, Size, ToInputArray};
use opencv::imgproc;
use opencv::prelude::*;
use plates::{PlateError, PlatePipeline, PlateReading};

use crate::focus::{
    pixel_rect, FocusAreas, Gate, MotionGate, MotionGateConfig, THUMB_HEIGHT, THUMB_WIDTH,
};
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
    /// At most one frame per this on average (the camera's `max_fps`).
    pub period: Duration,
}

/// A camera's turn-taking state in the reader.
struct Served {
    slot: Arc<FrameSlot>,
    rate: RateCap,
    gate: MotionGate,
    /// Where the last read found plates (frame pixels): what a read near them looks at.
    plates_at: Vec<[f32; 4]>,
}

/// The station loop is gone: the reader stops.
struct Closed;

struct Reader {
    pipeline: PlatePipeline,
    cameras: Vec<Served>,
    focus: FocusAreas,
    started: Instant,
    stats: Arc<ReaderStats>,
    out: mpsc::Sender<FramePlates>,
    heartbeat: Arc<Heartbeat>,
}

/// Starts the reader thread; it runs until `stop` is set or the receiver of `out` is gone.
/// `focus` says which part of each camera's frames to read (the whole frame for a camera it
/// does not name).
pub fn spawn(
    pipeline: PlatePipeline,
    cameras: Vec<ReaderCamera>,
    focus: FocusAreas,
    out: mpsc::Sender<FramePlates>,
    heartbeat: Arc<Heartbeat>,
    stats: Arc<ReaderStats>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    let reader = Reader {
        pipeline,
        cameras: cameras
            .into_iter()
            .map(|c| Served {
                slot: c.slot,
                rate: RateCap::new(c.period),
                gate: MotionGate::new(MotionGateConfig::default()),
                plates_at: Vec::new(),
            })
            .collect(),
        focus,
        started: Instant::now(),
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
            let Some(i) = self.next_camera() else {
                std::thread::sleep(IDLE);
                continue;
            };
            let now = self.started.elapsed();
            let camera = &mut self.cameras[i];
            let Some(frame) = camera.slot.take(Duration::ZERO) else {
                continue;
            };
            camera.rate.took(now);
            if self.serve(i, frame, now).is_err() {
                return;
            }
        }
    }

    /// The camera to serve next: of those due with a frame waiting, the longest overdue.
    fn next_camera(&self) -> Option<usize> {
        let now = self.started.elapsed();
        self.cameras
            .iter()
            .enumerate()
            .filter(|(_, c)| c.rate.is_due(now) && c.slot.has_frame())
            .max_by_key(|(i, c)| (c.rate.overdue(now), std::cmp::Reverse(*i)))
            .map(|(i, _)| i)
    }

    /// Reads the focus of camera `i`'s `frame` unless the motion gate says nothing there
    /// changed, and sends what was found.
    fn serve(&mut self, i: usize, frame: Frame, now: Duration) -> Result<(), Closed> {
        let (w, h) = (frame.image.cols(), frame.image.rows());
        let focus = self.focus.of(&frame.camera);
        let (x, y, fw, fh) = focus.map_or((0, 0, w, h), |r| pixel_rect(r, w, h));
        let area = Rect::new(x, y, fw, fh);
        let plates: Vec<_> = match self.read_focus(i, &frame, area, now) {
            Ok(Some(readings)) => readings
                .iter()
                .filter(|r| !r.text.is_empty())
                .map(|r| r.to_event(w, h))
                .collect(),
            Ok(None) => Vec::new(),
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

    /// The readings in `area` of the frame, or `None` when the gate skipped it as still.
    fn read_focus(
        &mut self,
        i: usize,
        frame: &Frame,
        area: Rect,
        now: Duration,
    ) -> Result<Option<Vec<PlateReading>>, PlateError> {
        let thumb = grey_thumbnail(&Mat::roi(&frame.image, area)?)?;
        let camera = &mut self.cameras[i];
        let gate = camera.gate.check(&thumb, now);
        if gate == Gate::Still {
            camera.slot.stats.still.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        }
        let started = Instant::now();
        let readings = match gate {
            Gate::NearPlates => self.pipeline.read_near(&frame.image, &camera.plates_at)?,
            _ => self.pipeline.read_in(&frame.image, area)?,
        };
        self.stats.read_took(started.elapsed());
        camera.slot.stats.read.fetch_add(1, Ordering::Relaxed);
        camera.plates_at = readings
            .iter()
            .filter(|r| !r.text.is_empty())
            .map(|r| r.bbox)
            .collect();
        let full = gate != Gate::NearPlates;
        camera
            .gate
            .read(thumb, now, full, !camera.plates_at.is_empty());
        Ok(Some(readings))
    }
}

/// `image` (BGR) averaged down to the motion gate's grey thumbnail: sampled to four times its
/// size, then averaged 4x4 (area averaging by a fractional factor straight from 1080p costs
/// about 10 ms; this keeps most of its smoothing of pixel noise at a fraction of that).
fn grey_thumbnail(image: &impl ToInputArray) -> Result<Vec<u8>, opencv::Error> {
    let mut sampled = Mat::default();
    imgproc::resize(
        image,
        &mut sampled,
        Size::new(THUMB_WIDTH * 4, THUMB_HEIGHT * 4),
        0.0,
        0.0,
        imgproc::INTER_NEAREST,
    )?;
    let mut small = Mat::default();
    imgproc::resize(
        &sampled,
        &mut small,
        Size::new(THUMB_WIDTH, THUMB_HEIGHT),
        0.0,
        0.0,
        imgproc::INTER_AREA,
    )?;
    let mut grey = Mat::default();
    imgproc::cvt_color_def(&small, &mut grey, imgproc::COLOR_BGR2GRAY)?;
    Ok(grey.data_bytes()?.to_vec())
}
