//! Cameras -> plate reader -> `FramePlates` events. One reader thread serves every camera in turn,
//! taking only each camera's newest frame, so N cameras on a small box share the CPU at a lower
//! frame rate instead of queueing without bound.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use camera::{spawn_camera, CameraConfig, CameraHandle, SourceKind};
use forecourt_events::FramePlates;
use opencv::prelude::*;
use plates::PlatePipeline;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::config::AgentConfig;
use crate::liveness::Liveness;

#[derive(Default)]
pub struct VisionStats {
    pub frames_read: AtomicU64,
    pub read_errors: AtomicU64,
    /// Mean over the last frames, in microseconds (exponential average).
    pub read_us: AtomicU64,
}

pub struct Vision {
    cameras: Vec<CameraHandle>,
    reader: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    pub stats: Arc<VisionStats>,
}

impl Vision {
    pub fn start(
        config: &AgentConfig,
        out: mpsc::Sender<FramePlates>,
        liveness: &Liveness,
    ) -> Result<Vision> {
        // An explicitly configured detector is the operator's choice; the rest must be ours.
        let skip: &[&str] = if config.plates.detector.is_some() {
            &["clp_det.onnx"]
        } else {
            &[]
        };
        crate::model_files::verify(&config.resolve(&config.plates.models_dir), skip)?;
        let lib = config.find_onnxruntime()?;
        plates::load_onnx_runtime(&lib)?;
        let mut pipeline =
            PlatePipeline::open(&config.pipeline_config()).context("opening the plate models")?;
        let mut cameras = Vec::new();
        let mut min_gap = Vec::new();
        for c in &config.cameras {
            let mut source = SourceKind::parse(&c.url).map_err(anyhow::Error::msg)?;
            if let SourceKind::File(p) = &source {
                source = SourceKind::File(config.resolve(p));
            }
            cameras.push(spawn_camera(CameraConfig {
                name: c.name.clone(),
                source,
                loop_file: c.loop_file,
                max_backoff: Duration::from_secs_f64(c.reconnect_max_s),
            })?);
            min_gap.push(Duration::from_secs_f32(1.0 / c.max_fps));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(VisionStats::default());
        let slots: Vec<_> = cameras.iter().map(|c| c.slot.clone()).collect();
        let heartbeat = liveness.register("plate-reader");
        let reader = std::thread::Builder::new().name("plate-reader".into()).spawn({
            let (stop, stats) = (stop.clone(), stats.clone());
            move || {
                let mut last: Vec<Option<Instant>> = vec![None; slots.len()];
                while !stop.load(Ordering::Relaxed) {
                    heartbeat.beat();
                    let mut worked = false;
                    for (i, slot) in slots.iter().enumerate() {
                        if last[i].is_some_and(|t| t.elapsed() < min_gap[i]) {
                            continue;
                        }
                        let Some(frame) = slot.take(Duration::ZERO) else {
                            continue;
                        };
                        last[i] = Some(Instant::now());
                        worked = true;
                        let started = Instant::now();
                        match pipeline.read(&frame.image) {
                            Ok(readings) => {
                                let us = started.elapsed().as_micros() as u64;
                                let old = stats.read_us.load(Ordering::Relaxed);
                                let avg = if old == 0 { us } else { (old * 7 + us) / 8 };
                                stats.read_us.store(avg, Ordering::Relaxed);
                                stats.frames_read.fetch_add(1, Ordering::Relaxed);
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
                                if out.blocking_send(event).is_err() {
                                    return; // the station loop is gone: shutting down
                                }
                            }
                            Err(e) => {
                                if stats.read_errors.fetch_add(1, Ordering::Relaxed) % 100 == 0 {
                                    warn!(camera = %frame.camera, error = %e, "plate reading failed");
                                }
                            }
                        }
                    }
                    if !worked {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            }
        })?;
        Ok(Vision {
            cameras,
            reader: Some(reader),
            stop,
            stats,
        })
    }

    /// Each camera's name and frame slot (whose stats count frames, drops and reconnects).
    pub fn camera_slots(&self) -> Vec<(String, Arc<camera::FrameSlot>)> {
        self.cameras
            .iter()
            .map(|c| (c.name.clone(), c.slot.clone()))
            .collect()
    }

    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        for c in self.cameras {
            c.stop();
        }
    }
}
