//! Cameras and the plate-reader thread, built from the config (the reader itself lives in
//! `station::reader`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};
use camera::{spawn_camera, CameraConfig, CameraHandle, SourceKind};
use forecourt_events::FramePlates;
use plates::PlatePipeline;
use station::reader::{ReaderCamera, ReaderStats};
use tokio::sync::mpsc;

use crate::config::AgentConfig;
use crate::liveness::Liveness;

pub struct Vision {
    cameras: Vec<CameraHandle>,
    reader: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    pub stats: Arc<ReaderStats>,
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
        let pipeline =
            PlatePipeline::open(&config.pipeline_config()).context("opening the plate models")?;
        let mut cameras = Vec::new();
        let mut served = Vec::new();
        for c in &config.cameras {
            let mut source = SourceKind::parse(&c.url).map_err(anyhow::Error::msg)?;
            if let SourceKind::File(p) = &source {
                source = SourceKind::File(config.resolve(p));
            }
            let camera = spawn_camera(CameraConfig {
                name: c.name.clone(),
                source,
                loop_file: c.loop_file,
                max_backoff: Duration::from_secs_f64(c.reconnect_max_s),
            })?;
            served.push(ReaderCamera {
                slot: camera.slot.clone(),
                min_gap: Duration::from_secs_f32(1.0 / c.max_fps),
            });
            cameras.push(camera);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(ReaderStats::default());
        let reader = station::reader::spawn(
            pipeline,
            served,
            out,
            liveness.register("plate-reader"),
            stats.clone(),
            stop.clone(),
        )?;
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
