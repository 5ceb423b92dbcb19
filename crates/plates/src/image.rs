//! Image plumbing between OpenCV mats and model tensors.

use opencv::core::{
    Mat, Point2f, Scalar, Size, Vector, BORDER_CONSTANT, BORDER_REPLICATE, DECOMP_LU,
};
use opencv::imgproc;
use opencv::prelude::*;

use crate::PlateError;

/// Packs a BGR u8 image into a planar f32 CHW buffer, `(pixel - mean[c]) * scale[c]`.
pub fn bgr_to_chw(bgr: &Mat, mean: [f32; 3], scale: [f32; 3]) -> Result<Vec<f32>, PlateError> {
    let mut out = Vec::new();
    bgr_to_chw_into(bgr, mean, scale, &mut out)?;
    Ok(out)
}

/// [`bgr_to_chw`] into `out` (replacing its contents), reusing its allocation.
pub fn bgr_to_chw_into(
    bgr: &Mat,
    mean: [f32; 3],
    scale: [f32; 3],
    out: &mut Vec<f32>,
) -> Result<(), PlateError> {
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
    out.clear();
    out.resize(3 * plane, 0.0);
    // Three output planes walked in step with the pixels: no index arithmetic or bounds checks in
    // the loop, which the compiler then vectorises (this runs on every detector input).
    let (p0, rest) = out.split_at_mut(plane);
    let (p1, p2) = rest.split_at_mut(plane);
    for (((px, a), b), c) in bytes
        .chunks_exact(3)
        .zip(p0.iter_mut())
        .zip(p1.iter_mut())
        .zip(p2.iter_mut())
    {
        *a = (f32::from(px[0]) - mean[0]) * scale[0];
        *b = (f32::from(px[1]) - mean[1]) * scale[1];
        *c = (f32::from(px[2]) - mean[2]) * scale[2];
    }
    Ok(())
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

/// Width / height of the quadrilateral (top-left, top-right, bottom-right, bottom-left), from the
/// mean lengths of opposite edges, so a plate seen at an angle keeps roughly its true shape.
pub fn quad_aspect(corners: &[[f32; 2]; 4]) -> f32 {
    let dist = |a: [f32; 2], b: [f32; 2]| ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt();
    let width = (dist(corners[0], corners[1]) + dist(corners[3], corners[2])) / 2.0;
    let height = (dist(corners[0], corners[3]) + dist(corners[1], corners[2])) / 2.0;
    if height > 0.0 && width.is_finite() {
        width / height
    } else {
        0.0
    }
}

/// Pads `image` on the right to `width` with mid-grey (0 after the recogniser's normalisation, as
/// the PaddleOCR recogniser was trained with).
pub fn pad_right(image: &Mat, width: i32) -> Result<Mat, PlateError> {
    let extra = width - image.cols();
    if extra <= 0 {
        return Ok(image.clone());
    }
    let mut out = Mat::default();
    opencv::core::copy_make_border(
        image,
        &mut out,
        0,
        0,
        0,
        extra,
        BORDER_CONSTANT,
        Scalar::new(128.0, 128.0, 128.0, 0.0),
    )?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opencv::core::CV_8UC3;

    #[test]
    fn chw_is_planar_and_normalised() {
        let m = Mat::new_rows_cols_with_default(1, 2, CV_8UC3, Scalar::new(10.0, 20.0, 30.0, 0.0))
            .unwrap();
        let chw = bgr_to_chw(&m, [10.0, 0.0, 30.0], [1.0, 0.5, 2.0]).unwrap();
        assert_eq!(chw, vec![0.0, 0.0, 10.0, 10.0, 0.0, 0.0]);
        assert!(bgr_to_chw(&Mat::default(), [0.0; 3], [1.0; 3]).is_err());
    }

    #[test]
    fn aspect_of_a_plate_quad() {
        let q = [[0.0, 0.0], [440.0, 0.0], [440.0, 140.0], [0.0, 140.0]];
        assert!((quad_aspect(&q) - 440.0 / 140.0).abs() < 1e-5);
        assert_eq!(quad_aspect(&[[0.0; 2]; 4]), 0.0);
    }
}
