//! The plate-reader threads: cameras' frames in, [`FramePlates`] events out. One thread (or a
//! few, `[plates] readers`, each with its own copy of the models) serves every camera, taking
//! only each camera's newest frame, so N cameras on a small box share the CPU at a lower frame
//! rate instead of queueing without bound. A camera is read by one thread at a time, so its
//! events leave in the order of its frames. Whose frame is read next: the
//! camera longest past its due time (its `max_fps` schedule), so under overload every camera
//! gets its share and none starves. Of each frame only the part around the camera's zones is
//! read (`crate::focus`). When nothing moved there since the last read and the last full read
//! is recent, only the surroundings of the plates the last read found are read (the cars
//! standing at the pumps, without a detector pass over the whole focus), and when it found none
//! the frame is not read at all: it is reported with no plates, which is what reading it would
//! have found.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use camera::{Frame, FrameSlot, RateCap};
use forecourt_events::{FramePlates, Heartbeat};
use opencv::core::{Mat, Rect, Size, ToInputArray};
use opencv::imgproc;
use opencv::prelude::*;
use plates::{PlateError, PlatePipeline, PlateReading};

use crate::crops::{PlateCrop, PlateCrops};
use crate::focus::{
    pixel_rect, FocusAreas, Gate, MotionGate, MotionGateConfig, THUMB_HEIGHT, THUMB_WIDTH,
};
use crate::snapshots::{CameraSnapshot, Snapshots, SNAPSHOT_WIDTH};
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// Widest plate crop kept, in pixels (a plate and a little of its car).
const CROP_WIDTH: i32 = 320;

/// How long the thread rests when no camera had a frame for it.
const IDLE: Duration = Duration::from_millis(5);

/// The readers' nice value: reading takes the CPU that the decoders, the sales path (dispensers,
/// matcher, outbox, uplink) and the station PC's other software leave. Under contention a
/// reader reads less often (its cameras' frames are replaced in their slots, counted as
/// `dropped`); nothing else waits for it.
const READER_NICE: i32 = 10;

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
        let average = |old: u64| Some(if old == 0 { us } else { (old * 7 + us) / 8 });
        // Never fails: the closure always gives a value.
        let _ = self
            .read_us
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, average);
        self.frames_read.fetch_add(1, Ordering::Relaxed);
    }
}

/// One camera as the reader serves it.
pub struct ReaderCamera {
    pub slot: Arc<FrameSlot>,
    /// At most one frame per this on average (the camera's `max_fps`).
    pub period: Duration,
}

/// A camera's turn-taking state, shared by the reader threads.
struct Served {
    slot: Arc<FrameSlot>,
    rate: RateCap,
    /// What reading this camera's frames remembers; `None` while a reader thread has it, so
    /// that one camera is served by one thread at a time and its events stay in order.
    memory: Option<CameraMemory>,
}

/// What a camera's next read depends on.
struct CameraMemory {
    gate: MotionGate,
    /// Where the last read found plates (frame pixels): what a read near them looks at.
    plates_at: Vec<[f32; 4]>,
}

/// The station loop is gone: the reader stops.
struct Closed;

/// What every reader thread shares.
struct Shared {
    cameras: Mutex<Vec<Served>>,
    focus: FocusAreas,
    snapshots: Snapshots,
    crops: PlateCrops,
    started: Instant,
    stats: Arc<ReaderStats>,
    out: mpsc::Sender<FramePlates>,
}

/// What the readers keep of the frames they read, for the station console (each off unless
/// the console is on).
#[derive(Debug, Clone, Default)]
pub struct Pictures {
    /// Each camera's latest picture.
    pub snapshots: Snapshots,
    /// The best crop of each plate read lately.
    pub crops: PlateCrops,
}

/// One reader thread: its own copy of the models, and a heartbeat of its own so that one
/// stuck thread is seen even while the others go round.
pub struct ReaderThread {
    pub pipeline: PlatePipeline,
    pub heartbeat: Arc<Heartbeat>,
}

/// Starts one reader thread per entry of `threads`, all serving `cameras`; they run until
/// `stop` is set or the receiver of `out` is gone. `focus` says which part of each camera's
/// frames to read (the whole frame for a camera it does not name); `pictures` says what to
/// keep for the console (each camera's picture every few seconds, the plates' best crops).
pub fn spawn(
    threads: Vec<ReaderThread>,
    cameras: Vec<ReaderCamera>,
    focus: FocusAreas,
    pictures: Pictures,
    out: mpsc::Sender<FramePlates>,
    stats: Arc<ReaderStats>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<Vec<JoinHandle<()>>> {
    let shared = Arc::new(Shared {
        cameras: Mutex::new(
            cameras
                .into_iter()
                .map(|c| Served {
                    slot: c.slot,
                    rate: RateCap::new(c.period),
                    memory: Some(CameraMemory {
                        gate: MotionGate::new(MotionGateConfig::default()),
                        plates_at: Vec::new(),
                    }),
                })
                .collect(),
        ),
        focus,
        snapshots: pictures.snapshots,
        crops: pictures.crops,
        started: Instant::now(),
        stats,
        out,
    });
    let mut handles = Vec::new();
    for (n, thread) in threads.into_iter().enumerate() {
        let reader = Reader {
            pipeline: thread.pipeline,
            heartbeat: thread.heartbeat,
            shared: shared.clone(),
        };
        let thread_stop = stop.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("plate-reader-{n}"))
            .spawn(move || reader.run(&thread_stop));
        match spawned {
            Ok(handle) => handles.push(handle),
            Err(e) => {
                stop.store(true, Ordering::Relaxed);
                handles.into_iter().for_each(|h| {
                    let _ = h.join();
                });
                return Err(e);
            }
        }
    }
    Ok(handles)
}

/// A camera's frame taken for reading, with the camera's memory.
struct Turn {
    camera: usize,
    slot: Arc<FrameSlot>,
    frame: Frame,
    memory: CameraMemory,
    now: Duration,
}

struct Reader {
    pipeline: PlatePipeline,
    heartbeat: Arc<Heartbeat>,
    shared: Arc<Shared>,
}

impl Reader {
    fn run(mut self, stop: &AtomicBool) {
        // On Linux the nice value belongs to the calling thread.
        if let Err(e) = rustix::process::nice(READER_NICE) {
            warn!(error = %e, "cannot lower the plate reader's priority; it competes with sales and decoding as an equal");
        }
        while !stop.load(Ordering::Relaxed) {
            self.heartbeat.beat();
            let Some(mut turn) = self.next_turn() else {
                std::thread::sleep(IDLE);
                continue;
            };
            let served = self.serve(&mut turn);
            self.end_turn(turn);
            if served.is_err() {
                return;
            }
        }
    }

    /// Takes the frame of the camera to serve next: of those due with a frame waiting and
    /// not being read by another thread, the longest overdue.
    fn next_turn(&self) -> Option<Turn> {
        let mut cameras = lock(&self.shared.cameras);
        let now = self.shared.started.elapsed();
        let i = cameras
            .iter()
            .enumerate()
            .filter(|(_, c)| c.memory.is_some() && c.rate.is_due(now) && c.slot.has_frame())
            .max_by_key(|(i, c)| (c.rate.overdue(now), std::cmp::Reverse(*i)))
            .map(|(i, _)| i)?;
        let camera = &mut cameras[i];
        let frame = camera.slot.take(Duration::ZERO)?;
        camera.rate.took(now);
        let memory = camera.memory.take()?;
        Some(Turn {
            camera: i,
            slot: camera.slot.clone(),
            frame,
            memory,
            now,
        })
    }

    /// Gives the camera's memory back: another thread may serve it now.
    fn end_turn(&self, turn: Turn) {
        lock(&self.shared.cameras)[turn.camera].memory = Some(turn.memory);
    }

    /// Reads the focus of the turn's frame unless the motion gate says nothing there changed,
    /// and sends what was found.
    fn serve(&mut self, turn: &mut Turn) -> Result<(), Closed> {
        let frame = &turn.frame;
        let (w, h) = (frame.image.cols(), frame.image.rows());
        let focus = self.shared.focus.of(&frame.camera);
        let (x, y, fw, fh) = focus.map_or((0, 0, w, h), |r| pixel_rect(r, w, h));
        let area = Rect::new(x, y, fw, fh);
        let plates: Vec<_> = match self.read_focus(turn, area) {
            Ok(Some(readings)) => {
                self.keep_crops(&turn.frame, &readings);
                readings
                    .iter()
                    .filter(|r| !r.text.is_empty())
                    .map(|r| r.to_event(w, h))
                    .collect()
            }
            Ok(None) => Vec::new(),
            Err(e) => {
                if self
                    .shared
                    .stats
                    .read_errors
                    .fetch_add(1, Ordering::Relaxed)
                    .is_multiple_of(100)
                {
                    warn!(camera = %turn.frame.camera, error = %e, "plate reading failed");
                }
                return Ok(());
            }
        };
        let frame = &turn.frame;
        self.keep_snapshot(frame);
        if !plates.is_empty() {
            debug!(camera = %frame.camera, plates = ?plates.iter().map(|p| &p.text).collect::<Vec<_>>(), "plates read");
        }
        let event = FramePlates {
            t: frame.t,
            camera: frame.camera.clone(),
            plates,
        };
        self.shared.out.blocking_send(event).map_err(|_| Closed)
    }

    /// Keeps `frame` as its camera's picture when one is wanted and the last is old enough.
    fn keep_snapshot(&self, frame: &Frame) {
        let snapshots = &self.shared.snapshots;
        if !snapshots.due(&frame.camera, frame.t) {
            return;
        }
        match jpeg_snapshot(&frame.image) {
            Ok(jpeg) => snapshots.put(
                &frame.camera,
                CameraSnapshot {
                    t: frame.t,
                    jpeg: Arc::new(jpeg),
                },
            ),
            Err(e) => debug!(camera = %frame.camera, error = %e, "no snapshot"),
        }
    }

    /// Keeps a crop of each well-formed plate read in `frame` that is better than the one kept
    /// (see [`PlateCrops`]); cut and encoded only then.
    fn keep_crops(&self, frame: &Frame, readings: &[PlateReading]) {
        let crops = &self.shared.crops;
        for r in readings.iter().filter(|r| r.valid) {
            if !crops.wants(&frame.camera, &r.text, r.confidence, frame.t) {
                continue;
            }
            match jpeg_crop(&frame.image, r.bbox) {
                Ok(jpeg) => crops.offer(PlateCrop {
                    camera: frame.camera.clone(),
                    text: r.text.clone(),
                    t: frame.t,
                    confidence: r.confidence,
                    jpeg: Arc::new(jpeg),
                }),
                Err(e) => debug!(camera = %frame.camera, error = %e, "no plate crop"),
            }
        }
    }

    /// The readings in `area` of the turn's frame, or `None` when the gate skipped it as still.
    fn read_focus(
        &mut self,
        turn: &mut Turn,
        area: Rect,
    ) -> Result<Option<Vec<PlateReading>>, PlateError> {
        let (frame, memory, now) = (&turn.frame, &mut turn.memory, turn.now);
        let thumb = grey_thumbnail(&Mat::roi(&frame.image, area)?)?;
        let gate = memory.gate.check(&thumb, now);
        if gate == Gate::Still {
            turn.slot.stats.still.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        }
        let started = Instant::now();
        let readings = match gate {
            Gate::NearPlates => self.pipeline.read_near(&frame.image, &memory.plates_at)?,
            _ => self.pipeline.read_in(&frame.image, area)?,
        };
        self.shared.stats.read_took(started.elapsed());
        turn.slot.stats.read.fetch_add(1, Ordering::Relaxed);
        memory.plates_at = readings
            .iter()
            .filter(|r| !r.text.is_empty())
            .map(|r| r.bbox)
            .collect();
        let full = gate != Gate::NearPlates;
        memory
            .gate
            .read(thumb, now, full, !memory.plates_at.is_empty());
        Ok(Some(readings))
    }
}

/// The cameras' state, also after a reader thread panicked holding it (each field is whole
/// between statements).
fn lock(cameras: &Mutex<Vec<Served>>) -> MutexGuard<'_, Vec<Served>> {
    cameras.lock().unwrap_or_else(|p| p.into_inner())
}

/// `image` (BGR) scaled to [`SNAPSHOT_WIDTH`] and encoded as a JPEG.
fn jpeg_snapshot(image: &Mat) -> Result<Vec<u8>, opencv::Error> {
    let (w, h) = (image.cols().max(1), image.rows().max(1));
    let height = (SNAPSHOT_WIDTH * h / w).max(1);
    let small = scaled(
        image,
        Size::new(SNAPSHOT_WIDTH, height),
        imgproc::INTER_LINEAR,
    )?;
    jpeg(&small, 80)
}

/// `image` resized to `size`.
fn scaled(image: &impl ToInputArray, size: Size, interpolation: i32) -> Result<Mat, opencv::Error> {
    let mut out = Mat::default();
    imgproc::resize(image, &mut out, size, 0.0, 0.0, interpolation)?;
    Ok(out)
}

/// `image` (BGR) as a JPEG of `quality` (0-100).
fn jpeg(image: &impl ToInputArray, quality: i32) -> Result<Vec<u8>, opencv::Error> {
    let mut jpeg = opencv::core::Vector::<u8>::new();
    let params =
        opencv::core::Vector::from_slice(&[opencv::imgcodecs::IMWRITE_JPEG_QUALITY, quality]);
    opencv::imgcodecs::imencode(".jpg", image, &mut jpeg, &params)?;
    Ok(jpeg.to_vec())
}

/// The plate at `bbox` (frame pixels) with some of the car around it, at most [`CROP_WIDTH`]
/// wide, as a JPEG.
fn jpeg_crop(image: &Mat, bbox: [f32; 4]) -> Result<Vec<u8>, opencv::Error> {
    let [x0, y0, x1, y1] = bbox;
    let (bw, bh) = ((x1 - x0).max(1.0), (y1 - y0).max(1.0));
    let (w, h) = (image.cols() as f32, image.rows() as f32);
    // min/max, not clamp: a box the detector got wrong (NaN, outside the frame) gives a small
    // crop or an OpenCV error, never a panic.
    let left = (x0 - bw * 0.2).max(0.0).min(w - 1.0);
    let top = (y0 - bh * 0.6).max(0.0).min(h - 1.0);
    let right = (x1 + bw * 0.2).min(w).max(left + 1.0);
    let bottom = (y1 + bh * 0.4).min(h).max(top + 1.0);
    let area = Rect::new(
        left as i32,
        top as i32,
        ((right - left) as i32).max(1),
        ((bottom - top) as i32).max(1),
    );
    let cut = Mat::roi(image, area)?;
    if area.width > CROP_WIDTH {
        let height = (CROP_WIDTH * area.height / area.width).max(1);
        jpeg(
            &scaled(&cut, Size::new(CROP_WIDTH, height), imgproc::INTER_AREA)?,
            85,
        )
    } else {
        jpeg(&cut, 85)
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

#[cfg(test)]
mod tests {
    use super::*;
    use opencv::core::{Scalar, CV_8UC3};

    fn frame(width: i32, height: i32) -> Mat {
        Mat::new_rows_cols_with_default(height, width, CV_8UC3, Scalar::all(90.0)).unwrap()
    }

    fn decoded(jpeg: &[u8]) -> (i32, i32) {
        let image = opencv::imgcodecs::imdecode(
            &opencv::core::Vector::from_slice(jpeg),
            opencv::imgcodecs::IMREAD_COLOR,
        )
        .unwrap();
        (image.cols(), image.rows())
    }

    #[test]
    fn a_crop_is_the_plate_with_a_margin_and_at_most_its_width() {
        let image = frame(1920, 1080);
        // A 150x50 plate: 20 % more each side, 60 % above, 40 % below.
        let jpeg = jpeg_crop(&image, [900.0, 600.0, 1050.0, 650.0]).unwrap();
        assert_eq!(decoded(&jpeg), (210, 100));
        // A wide one is scaled down to CROP_WIDTH.
        let (w, h) = decoded(&jpeg_crop(&image, [100.0, 100.0, 700.0, 300.0]).unwrap());
        // (left and top stop at the frame's edge: 820x380 before scaling)
        assert_eq!((w, h), (CROP_WIDTH, 320 * 380 / 820));
    }

    #[test]
    fn a_box_outside_the_frame_or_not_a_number_never_panics() {
        let image = frame(640, 360);
        for bbox in [
            [600.0, 340.0, 900.0, 500.0],
            [-50.0, -20.0, -10.0, -5.0],
            [f32::NAN, 10.0, 20.0, f32::NAN],
            [f32::INFINITY, f32::NEG_INFINITY, 0.0, 0.0],
        ] {
            if let Ok(jpeg) = jpeg_crop(&image, bbox) {
                let (w, h) = decoded(&jpeg);
                assert!(w >= 1 && h >= 1 && w <= CROP_WIDTH, "{bbox:?}: {w}x{h}");
            }
        }
    }
}
