//! The cameras and the plate-reader threads that read them, started and stopped together (the
//! reader itself is `crate::reader`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use camera::{spawn_camera, CameraConfig, CameraError, CameraHandle};
use forecourt_events::FramePlates;
use tokio::sync::mpsc;

use crate::focus::FocusAreas;
use crate::reader::{ReaderCamera, ReaderStats, ReaderThread};

/// Why the cameras and reader could not start.
#[derive(Debug, thiserror::Error)]
pub enum VisionError {
    #[error("camera {name}")]
    Camera { name: String, source: CameraError },
    #[error("cannot start a plate-reader thread")]
    ReaderThread(#[source] std::io::Error),
}

pub struct Vision {
    cameras: Vec<CameraHandle>,
    readers: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    pub stats: Arc<ReaderStats>,
}

impl Vision {
    /// Starts every camera's capture thread and one reader thread per entry of `readers`; they
    /// read each frame where `focus` says, send its plates to `out` and beat their heartbeats
    /// as they go round.
    pub fn start(
        readers: Vec<ReaderThread>,
        cameras: Vec<CameraConfig>,
        focus: FocusAreas,
        pictures: crate::reader::Pictures,
        out: mpsc::Sender<FramePlates>,
    ) -> Result<Vision, VisionError> {
        let mut handles = Vec::new();
        let mut served = Vec::new();
        for capture in cameras {
            let name = capture.name.clone();
            // The reader takes frames on the same schedule as the camera hands them over.
            let period = capture.handover_period();
            let camera = match spawn_camera(capture) {
                Ok(camera) => camera,
                Err(source) => {
                    handles.into_iter().for_each(CameraHandle::stop);
                    return Err(VisionError::Camera { name, source });
                }
            };
            served.push(ReaderCamera {
                slot: camera.slot.clone(),
                period,
            });
            handles.push(camera);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(ReaderStats::default());
        let readers = match crate::reader::spawn(
            readers,
            served,
            focus,
            pictures,
            out,
            stats.clone(),
            stop.clone(),
        ) {
            Ok(readers) => readers,
            Err(e) => {
                handles.into_iter().for_each(CameraHandle::stop);
                return Err(VisionError::ReaderThread(e));
            }
        };
        Ok(Vision {
            cameras: handles,
            readers,
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

    /// Stops the readers, then the cameras, and waits for the reader threads.
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for r in self.readers {
            let _ = r.join();
        }
        for c in self.cameras {
            c.stop();
        }
    }
}
