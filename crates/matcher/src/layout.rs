use forecourt_events::FpNumber;
use serde::{Deserialize, Serialize};

/// A region of one camera's image, as a polygon in normalised coordinates (0..1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Zone {
    pub camera: String,
    pub polygon: Vec<[f32; 2]>,
}

impl Zone {
    /// Even-odd ray casting.
    pub fn contains(&self, x: f32, y: f32) -> bool {
        let p = &self.polygon;
        let mut inside = false;
        let mut j = p.len().wrapping_sub(1);
        for i in 0..p.len() {
            let ([xi, yi], [xj, yj]) = (p[i], p[j]);
            if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
                inside = !inside;
            }
            j = i;
        }
        inside
    }

    /// Distance from a point to the polygon's outline (normalised units).
    pub fn distance(&self, x: f32, y: f32) -> f32 {
        let p = &self.polygon;
        let mut best = f32::INFINITY;
        let mut j = p.len().wrapping_sub(1);
        for i in 0..p.len() {
            let ([ax, ay], [bx, by]) = (p[j], p[i]);
            let (dx, dy) = (bx - ax, by - ay);
            let len2 = dx * dx + dy * dy;
            let s = if len2 > 0.0 {
                (((x - ax) * dx + (y - ay) * dy) / len2).clamp(0.0, 1.0)
            } else {
                0.0
            };
            let (cx, cy) = (ax + s * dx, ay + s * dy);
            best = best.min(((x - cx).powi(2) + (y - cy).powi(2)).sqrt());
            j = i;
        }
        best
    }
}

/// The zones in which a car being fuelled at one fuelling point is seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FpLayout {
    pub fp: FpNumber,
    pub zones: Vec<Zone>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Layout {
    pub fps: Vec<FpLayout>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LayoutError {
    #[error("fuelling point {fp}: zone {index} has {points} points; a polygon needs at least 3")]
    TooFewPoints {
        fp: FpNumber,
        index: usize,
        points: usize,
    },
    #[error("fuelling point {fp}: zone {index} has a point outside 0..1: {point:?}")]
    OutOfRange {
        fp: FpNumber,
        index: usize,
        point: [f32; 2],
    },
    #[error("fuelling point {0} is listed twice")]
    DuplicateFp(FpNumber),
}

impl Layout {
    pub fn validate(&self) -> Result<(), LayoutError> {
        Self::validate_fps(&self.fps)
    }

    /// [`Layout::validate`] on the fuelling points alone (a trace's layout record holds them).
    pub fn validate_fps(fps: &[FpLayout]) -> Result<(), LayoutError> {
        let mut seen = std::collections::HashSet::new();
        for fp in fps {
            if !seen.insert(fp.fp) {
                return Err(LayoutError::DuplicateFp(fp.fp));
            }
            for (index, zone) in fp.zones.iter().enumerate() {
                if zone.polygon.len() < 3 {
                    return Err(LayoutError::TooFewPoints {
                        fp: fp.fp,
                        index,
                        points: zone.polygon.len(),
                    });
                }
                if let Some(point) = zone
                    .polygon
                    .iter()
                    .find(|p| !(0.0..=1.0).contains(&p[0]) || !(0.0..=1.0).contains(&p[1]))
                {
                    return Err(LayoutError::OutOfRange {
                        fp: fp.fp,
                        index,
                        point: *point,
                    });
                }
            }
        }
        Ok(())
    }

    /// Fuelling points whose zones on `camera` contain the point.
    pub fn fps_at(&self, camera: &str, x: f32, y: f32) -> impl Iterator<Item = FpNumber> + '_ {
        let camera = camera.to_string();
        self.fps
            .iter()
            .filter(move |fp| {
                fp.zones
                    .iter()
                    .any(|z| z.camera == camera && z.contains(x, y))
            })
            .map(|fp| fp.fp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square(camera: &str, x0: f32, x1: f32) -> Zone {
        Zone {
            camera: camera.into(),
            polygon: vec![[x0, 0.0], [x1, 0.0], [x1, 1.0], [x0, 1.0]],
        }
    }

    #[test]
    fn polygon_contains() {
        let z = square("c", 0.0, 0.5);
        assert!(z.contains(0.25, 0.5));
        assert!(!z.contains(0.75, 0.5));
        let tri = Zone {
            camera: "c".into(),
            polygon: vec![[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]],
        };
        assert!(tri.contains(0.2, 0.2));
        assert!(!tri.contains(0.8, 0.8));
        assert!((z.distance(0.6, 0.5) - 0.1).abs() < 1e-6);
        assert!((z.distance(0.25, 0.5) - 0.25).abs() < 1e-6);
    }

    #[test]
    fn fps_at_respects_camera() {
        let layout = Layout {
            fps: vec![
                FpLayout {
                    fp: 1,
                    zones: vec![square("a", 0.0, 0.5)],
                },
                FpLayout {
                    fp: 2,
                    zones: vec![square("a", 0.5, 1.0), square("b", 0.0, 1.0)],
                },
            ],
        };
        assert_eq!(layout.fps_at("a", 0.2, 0.5).collect::<Vec<_>>(), vec![1]);
        assert_eq!(layout.fps_at("a", 0.7, 0.5).collect::<Vec<_>>(), vec![2]);
        assert_eq!(layout.fps_at("b", 0.2, 0.5).collect::<Vec<_>>(), vec![2]);
        assert_eq!(layout.fps_at("c", 0.2, 0.5).count(), 0);
    }

    #[test]
    fn validate_catches_bad_zones() {
        let mut layout = Layout {
            fps: vec![FpLayout {
                fp: 1,
                zones: vec![Zone {
                    camera: "a".into(),
                    polygon: vec![[0.0, 0.0], [1.0, 0.0]],
                }],
            }],
        };
        assert!(matches!(
            layout.validate(),
            Err(LayoutError::TooFewPoints { .. })
        ));
        layout.fps[0].zones[0].polygon.push([1.5, 1.0]);
        assert!(matches!(
            layout.validate(),
            Err(LayoutError::OutOfRange { .. })
        ));
    }
}
