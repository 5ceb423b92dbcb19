//! A camera frame with an installer's overlay drawn on it (zones, plate boxes, labels), written
//! as a PNG: the picture that shows a camera points where it should and the zones sit where the
//! cars stand. Coordinates are normalised (0..1 of the frame), as zones and plate boxes are.

use std::path::{Path, PathBuf};

use opencv::core::{Mat, Point, Scalar, Size, Vector};
use opencv::prelude::*;
use opencv::{imgcodecs, imgproc};

/// What to draw.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// A zone: outlined, lightly filled, labelled at its top-left corner.
    Polygon(Vec<[f32; 2]>),
    /// A plate box `x1, y1, x2, y2`, outlined.
    Box([f32; 4]),
}

/// A shape in a colour with an ASCII label (OpenCV's fonts draw no CJK: other characters are
/// left out of the picture).
#[derive(Debug, Clone, PartialEq)]
pub struct Marked {
    pub shape: Shape,
    /// Blue, green, red.
    pub bgr: [u8; 3],
    pub label: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("drawing the snapshot {path}: {source}")]
    Draw {
        path: PathBuf,
        #[source]
        source: opencv::Error,
    },
    #[error("cannot write the snapshot {path} (is its folder there and writable?)")]
    Write { path: PathBuf },
    #[error("the frame for {path} is empty")]
    EmptyFrame { path: PathBuf },
}

/// Draws `marks` on a copy of `image` (BGR), scaled to `width` pixels wide when given, and
/// writes it to `path` as PNG.
pub fn write_snapshot(
    image: &Mat,
    marks: &[Marked],
    width: Option<i32>,
    path: &Path,
) -> Result<(), SnapshotError> {
    let draw = |source| SnapshotError::Draw {
        path: path.to_path_buf(),
        source,
    };
    if image.empty() {
        return Err(SnapshotError::EmptyFrame {
            path: path.to_path_buf(),
        });
    }
    let mut canvas = Mat::default();
    match width {
        Some(w) if w > 0 && w != image.cols() => {
            let h = (f64::from(image.rows()) * f64::from(w) / f64::from(image.cols())).round();
            imgproc::resize(
                image,
                &mut canvas,
                Size::new(w, h.max(1.0) as i32),
                0.0,
                0.0,
                imgproc::INTER_AREA,
            )
            .map_err(draw)?;
        }
        _ => image.copy_to(&mut canvas).map_err(draw)?,
    }
    let (w, h) = (canvas.cols() as f32, canvas.rows() as f32);
    let px = |p: [f32; 2]| Point::new((p[0] * w).round() as i32, (p[1] * h).round() as i32);
    let thick = (canvas.cols() / 640).max(1) + 1;
    // Zones first, lightly filled on a copy blended back, so boxes stay on top and sharp.
    let mut fill = canvas.clone();
    for m in marks {
        if let Shape::Polygon(points) = &m.shape {
            let polygon: Vector<Point> = points.iter().map(|p| px(*p)).collect();
            let polygons: Vector<Vector<Point>> = std::iter::once(polygon).collect();
            imgproc::fill_poly(
                &mut fill,
                &polygons,
                colour(m.bgr),
                imgproc::LINE_AA,
                0,
                Point::default(),
            )
            .map_err(draw)?;
        }
    }
    let mut blended = Mat::default();
    opencv::core::add_weighted(&fill, 0.18, &canvas, 0.82, 0.0, &mut blended, -1).map_err(draw)?;
    let mut canvas = blended;
    for m in marks {
        let (corner, thickness) = match &m.shape {
            Shape::Polygon(points) => {
                let polygon: Vector<Point> = points.iter().map(|p| px(*p)).collect();
                let polygons: Vector<Vector<Point>> = std::iter::once(polygon.clone()).collect();
                imgproc::polylines(
                    &mut canvas,
                    &polygons,
                    true,
                    colour(m.bgr),
                    thick + 1,
                    imgproc::LINE_AA,
                    0,
                )
                .map_err(draw)?;
                let corner = polygon
                    .iter()
                    .min_by_key(|p| (p.y, p.x))
                    .unwrap_or_default();
                (Point::new(corner.x + 6, corner.y + 6), 2)
            }
            Shape::Box(b) => {
                let (a, z) = (px([b[0], b[1]]), px([b[2], b[3]]));
                imgproc::rectangle_points(
                    &mut canvas,
                    a,
                    z,
                    colour(m.bgr),
                    thick,
                    imgproc::LINE_8,
                    0,
                )
                .map_err(draw)?;
                (Point::new(a.x, (a.y - 4).max(0) - 16), 1)
            }
        };
        label(&mut canvas, &ascii(&m.label), corner, m.bgr, thickness).map_err(draw)?;
    }
    let written = imgcodecs::imwrite(path.to_str().unwrap_or_default(), &canvas, &Vector::new())
        .map_err(draw)?;
    if !written {
        return Err(SnapshotError::Write {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

fn colour(bgr: [u8; 3]) -> Scalar {
    Scalar::new(f64::from(bgr[0]), f64::from(bgr[1]), f64::from(bgr[2]), 0.0)
}

/// The printable ASCII characters of `text` (the rest cannot be drawn).
fn ascii(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .collect()
}

/// `text` on a dark band at `top_left`, in the mark's colour.
fn label(
    canvas: &mut Mat,
    text: &str,
    top_left: Point,
    bgr: [u8; 3],
    weight: i32,
) -> opencv::Result<()> {
    if text.is_empty() {
        return Ok(());
    }
    let scale = if weight > 1 { 0.8 } else { 0.5 };
    let mut baseline = 0;
    let size = imgproc::get_text_size(
        text,
        imgproc::FONT_HERSHEY_SIMPLEX,
        scale,
        weight,
        &mut baseline,
    )?;
    let origin = Point::new(top_left.x.max(0), top_left.y.max(0));
    imgproc::rectangle_points(
        canvas,
        origin,
        Point::new(
            origin.x + size.width + 6,
            origin.y + size.height + baseline + 6,
        ),
        Scalar::new(20.0, 20.0, 20.0, 0.0),
        imgproc::FILLED,
        imgproc::LINE_8,
        0,
    )?;
    imgproc::put_text(
        canvas,
        text,
        Point::new(origin.x + 3, origin.y + size.height + 3),
        imgproc::FONT_HERSHEY_SIMPLEX,
        scale,
        colour(bgr),
        weight,
        imgproc::LINE_AA,
        false,
    )
}

#[cfg(test)]
mod tests {
    use opencv::core::{Vec3b, CV_8UC3};

    use super::*;

    #[test]
    fn zones_and_boxes_are_drawn_in_their_colours_and_the_png_reads_back() {
        let dir = std::env::temp_dir().join(format!("snapshot-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("cam.png");
        let image = Mat::new_rows_cols_with_default(200, 400, CV_8UC3, Scalar::all(90.0)).unwrap();
        let marks = [
            Marked {
                shape: Shape::Polygon(vec![[0.0, 0.5], [0.5, 0.5], [0.5, 1.0], [0.0, 1.0]]),
                bgr: [0, 0, 255],
                label: "FP 1".into(),
            },
            Marked {
                shape: Shape::Box([0.7, 0.2, 0.9, 0.3]),
                bgr: [0, 255, 0],
                label: "苏E05EV8".into(),
            },
        ];
        write_snapshot(&image, &marks, Some(200), &path).unwrap();
        let back = imgcodecs::imread(path.to_str().unwrap(), imgcodecs::IMREAD_COLOR).unwrap();
        assert_eq!((back.cols(), back.rows()), (200, 100), "scaled to 200 wide");
        // The zone's outline is red, its inside tinted red; the box's edge green; the rest grey.
        let at = |x, y| *back.at_2d::<Vec3b>(y, x).unwrap();
        let outline = at(50, 99);
        assert!(outline[2] > 200 && outline[1] < 60, "{outline:?}");
        let inside = at(85, 92);
        assert!(inside[2] > inside[1] + 20, "tinted: {inside:?}");
        let edge = at(140, 26);
        assert!(edge[1] > 200 && edge[2] < 60, "{edge:?}");
        assert_eq!(at(190, 90), Vec3b::from([90, 90, 90]));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_unwritable_path_and_an_empty_frame_are_errors() {
        let image = Mat::new_rows_cols_with_default(10, 10, CV_8UC3, Scalar::all(0.0)).unwrap();
        let nowhere = Path::new("/nonexistent-folder/cam.png");
        assert!(matches!(
            write_snapshot(&image, &[], None, nowhere),
            Err(SnapshotError::Write { .. } | SnapshotError::Draw { .. })
        ));
        assert!(matches!(
            write_snapshot(&Mat::default(), &[], None, Path::new("x.png")),
            Err(SnapshotError::EmptyFrame { .. })
        ));
    }
}
