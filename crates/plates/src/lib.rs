//! Licence plate reading with ONNX models through `ort` (ONNX Runtime loaded at run time):
//! detector (box + 4 corners) -> perspective rectification -> CTC recogniser -> text + confidence.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod detection;
mod detector;
mod detector_y5fu;
pub mod eval;
mod image;
mod pipeline;
mod recogniser;
mod runtime;

pub use detection::Detection;
pub use detector::{DetectorKind, PlateDetector};
/// The plate grammar lives with the shared vocabulary (the matcher needs it without OpenCV).
pub use forecourt_events::is_valid_plate;
pub use image::{bgr_to_chw, pad_right, quad_aspect, rectify_plate};
pub use pipeline::{PipelineConfig, PlatePipeline, PlateReading};
pub use recogniser::{PlateRecogniser, Recognition};
pub use runtime::{load_onnx_runtime, open_session, open_session_on, Device};

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum PlateError {
    #[error("cannot load ONNX Runtime from {path}: {reason}")]
    Runtime { path: PathBuf, reason: String },
    #[error("cannot load model {path}: {reason}")]
    Model { path: PathBuf, reason: String },
    #[error("cannot read dictionary {path}: {reason}")]
    Dictionary { path: PathBuf, reason: String },
    #[error("model {model} output is not what was expected: {reason}")]
    Output { model: &'static str, reason: String },
    #[error("inference failed in {model}: {source}")]
    Inference {
        model: &'static str,
        #[source]
        source: ort::Error,
    },
    #[error("cannot use manifest {path}: {reason}")]
    Manifest { path: PathBuf, reason: String },
    #[error("bad image: {0}")]
    Image(String),
}

impl From<opencv::Error> for PlateError {
    fn from(e: opencv::Error) -> Self {
        PlateError::Image(e.to_string())
    }
}
