//! HyperLPR3 `y5fu` detector (YOLOv5-face style): a fixed square RGB input in 0..1, letterboxed
//! with black; output `[1, N, 15]` rows of `cx, cy, w, h, objectness, 4 landmarks (x, y),
//! single-row score, double-row score`, already decoded to input pixels.

use opencv::core::{Mat, Scalar, Size, BORDER_CONSTANT};
use opencv::imgproc;
use opencv::prelude::*;
use ort::session::Session;
use ort::value::Tensor;

use crate::detection::{non_max_suppression, Detection};
use crate::image::bgr_to_chw;
use crate::PlateError;

const ROW: usize = 15;

fn inference(source: ort::Error) -> PlateError {
    PlateError::Inference {
        model: "detector",
        source,
    }
}

/// The model's square input side, from its declared input shape.
fn input_side(session: &Session) -> Result<i32, PlateError> {
    let shape = session
        .inputs()
        .first()
        .and_then(|i| i.dtype().tensor_shape().map(|s| s.to_vec()))
        .unwrap_or_default();
    match shape.as_slice() {
        [_, 3, h, w] if h == w && *h >= 32 => Ok(*h as i32),
        _ => Err(PlateError::Output {
            model: "detector",
            reason: format!("y5fu input should be [1, 3, S, S], got {shape:?}"),
        }),
    }
}

pub(crate) fn detect(
    session: &mut Session,
    frame: &Mat,
    min_score: f32,
    nms_iou: f32,
) -> Result<Vec<Detection>, PlateError> {
    let side = input_side(session)?;
    let (fw, fh) = (frame.cols(), frame.rows());
    let r = (side as f32 / fw as f32).min(side as f32 / fh as f32);
    let (nw, nh) = (
        ((fw as f32 * r) as i32).clamp(1, side),
        ((fh as f32 * r) as i32).clamp(1, side),
    );
    let (left, top) = ((side - nw) / 2, (side - nh) / 2);
    let mut resized = Mat::default();
    imgproc::resize(
        frame,
        &mut resized,
        Size::new(nw, nh),
        0.0,
        0.0,
        imgproc::INTER_LINEAR,
    )?;
    let mut boxed = Mat::default();
    opencv::core::copy_make_border(
        &resized,
        &mut boxed,
        top,
        side - nh - top,
        left,
        side - nw - left,
        BORDER_CONSTANT,
        Scalar::all(0.0),
    )?;
    let mut rgb = Mat::default();
    imgproc::cvt_color_def(&boxed, &mut rgb, imgproc::COLOR_BGR2RGB)?;
    let chw = bgr_to_chw(&rgb, [0.0; 3], [1.0 / 255.0; 3])?;
    let s = side as usize;
    let tensor = Tensor::from_array(([1usize, 3, s, s], chw)).map_err(inference)?;
    let outputs = session.run(ort::inputs![tensor]).map_err(inference)?;
    let (_, data) = outputs[0].try_extract_tensor::<f32>().map_err(inference)?;
    if data.is_empty() || data.len() % ROW != 0 {
        return Err(PlateError::Output {
            model: "detector",
            reason: format!("y5fu output of {} values is not rows of {ROW}", data.len()),
        });
    }
    let unbox = |x: f32, y: f32| [(x - left as f32) / r, (y - top as f32) / r];
    let found = data
        .chunks_exact(ROW)
        .filter_map(|row| {
            let objectness = row[4];
            // NaN scores fail both tests and are dropped.
            if objectness.is_nan() || objectness <= min_score {
                return None;
            }
            let (single, double) = (row[13] * objectness, row[14] * objectness);
            let score = single.max(double);
            if score.is_nan() || score <= min_score {
                return None;
            }
            let (cx, cy, w, h) = (row[0], row[1], row[2], row[3]);
            let tl = unbox(cx - w / 2.0, cy - h / 2.0);
            let br = unbox(cx + w / 2.0, cy + h / 2.0);
            let points = [
                unbox(row[5], row[6]),
                unbox(row[7], row[8]),
                unbox(row[9], row[10]),
                unbox(row[11], row[12]),
            ];
            Some(Detection {
                score,
                bbox: [tl[0], tl[1], br[0], br[1]],
                corners: order_corners(points),
                two_rows: Some(double > single),
            })
        })
        .collect();
    Ok(non_max_suppression(found, nms_iou))
}

/// Orders 4 points as top-left, top-right, bottom-right, bottom-left by their position, so the
/// result does not depend on the order the model was trained to emit.
pub(crate) fn order_corners(points: [[f32; 2]; 4]) -> [[f32; 2]; 4] {
    let pick = |key: &dyn Fn(&[f32; 2]) -> f32, largest: bool| {
        let mut best = points[0];
        for p in &points[1..] {
            let better = if largest {
                key(p) > key(&best)
            } else {
                key(p) < key(&best)
            };
            if better {
                best = *p;
            }
        }
        best
    };
    let sum = |p: &[f32; 2]| p[0] + p[1];
    let diff = |p: &[f32; 2]| p[1] - p[0];
    [
        pick(&sum, false),
        pick(&diff, false),
        pick(&sum, true),
        pick(&diff, true),
    ]
}

#[cfg(test)]
mod tests {
    use super::order_corners;

    #[test]
    fn orders_corners_by_position() {
        let (tl, tr, br, bl) = ([10.0, 20.0], [110.0, 25.0], [112.0, 60.0], [8.0, 55.0]);
        assert_eq!(order_corners([br, bl, tl, tr]), [tl, tr, br, bl]);
        assert_eq!(order_corners([tl, tr, br, bl]), [tl, tr, br, bl]);
    }
}
