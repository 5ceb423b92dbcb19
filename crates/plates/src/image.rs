//! Image plumbing between OpenCV mats and model tensors.

use opencv::core::{Mat, Point2f, Scalar, Size, Vector, BORDER_REPLICATE, DECOMP_LU};
use opencv::imgproc;
use opencv::prelude::*;

use crate::PlateError;

/// Packs a BGR u8 image into a planar f32 CHW buffer, `(pixel - mean[c]) * scale[c]`.
pub fn bgr_to_chw(bgr: &Mat, mean: [f32; 3], scale: [f32; 3]) -> Result<Vec<f32>, PlateError> {
    if bgr.typ() != opencv::core::CV_8UC3 {
        return Err(PlateError::Image(format!(
            "expected 8-bit BGR, got type {}",
            bgr.typ()
        )));
    }
    let owned;
    let bgr = if bgr.is_continuous() {
        bgr
    } else {
        owned = bgr.try_clone()?;
        &owned
    };
    let (h, w) = (bgr.rows() as usize, bgr.cols() as usize);
    let bytes = bgr.data_bytes()?;
    let plane = h * w;
    let mut out = vec![0f32; 3 * plane];
    for (i, px) in bytes.chunks_exact(3).enumerate() {
        for c in 0..3 {
            out[c * plane + i] = (f32::from(px[c]) - mean[c]) * scale[c];
        }
    }
    Ok(out)
}

/// Warps the plate quadrilateral to an upright `width x height` image, first trimming the plate's
/// frame (`trim_x`, `trim_y` as fractions of its size) so the recogniser sees only characters.
/// Corners are top-left, top-right, bottom-right, bottom-left, in pixels of `frame`.
pub fn rectify_plate(
    frame: &Mat,
    corners: &[[f32; 2]; 4],
    width: i32,
    height: i32,
    trim_x: f32,
    trim_y: f32,
) -> Result<Mat, PlateError> {
    let src: Vector<Point2f> = corners.iter().map(|p| Point2f::new(p[0], p[1])).collect();
    let (w, h) = (width as f32, height as f32);
    // Map the trimmed inner rectangle onto the output: the plate corners land outside it.
    let (dx, dy) = (
        w * trim_x / (1.0 - 2.0 * trim_x),
        h * trim_y / (1.0 - 2.0 * trim_y),
    );
    let dst: Vector<Point2f> = [
        Point2f::new(-dx, -dy),
        Point2f::new(w + dx, -dy),
        Point2f::new(w + dx, h + dy),
        Point2f::new(-dx, h + dy),
    ]
    .into_iter()
    .collect();
    let m = imgproc::get_perspective_transform(&src, &dst, DECOMP_LU)?;
    let mut out = Mat::default();
    imgproc::warp_perspective(
        frame,
        &mut out,
        &m,
        Size::new(width, height),
        imgproc::INTER_LINEAR,
        BORDER_REPLICATE,
        Scalar::default(),
    )?;
    Ok(out)
}
