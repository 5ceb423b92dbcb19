//! What a detector finds, whichever model found it, and the non-maximum suppression every
//! detector backend applies to its raw boxes.

/// One detected plate, in pixels of the frame given to [`crate::PlateDetector::detect`].
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub score: f32,
    /// x1, y1, x2, y2.
    pub bbox: [f32; 4],
    /// Top-left, top-right, bottom-right, bottom-left.
    pub corners: [[f32; 2]; 4],
    /// Whether the detector classed it a two-row plate; `None` when the model does not say.
    pub two_rows: Option<bool>,
}

impl Detection {
    /// The same detection moved by (`dx`, `dy`) pixels: from a crop's pixels to the frame's.
    pub fn shifted(self, dx: f32, dy: f32) -> Detection {
        let b = self.bbox;
        Detection {
            bbox: [b[0] + dx, b[1] + dy, b[2] + dx, b[3] + dy],
            corners: self.corners.map(|[x, y]| [x + dx, y + dy]),
            ..self
        }
    }
}

fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let ix = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let iy = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = ix * iy;
    let area = |r: &[f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let union = area(a) + area(b) - inter;
    if union <= 0.0 {
        0.0
    } else {
        inter / union
    }
}

/// Keeps the best-scoring box of each group overlapping more than `threshold` (IoU).
pub(crate) fn non_max_suppression(mut found: Vec<Detection>, threshold: f32) -> Vec<Detection> {
    found.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Detection> = Vec::new();
    for d in found {
        if kept.iter().all(|k| iou(&k.bbox, &d.bbox) <= threshold) {
            kept.push(d);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nms_keeps_best_of_overlapping() {
        let d = |score, x| Detection {
            score,
            bbox: [x, 0.0, x + 10.0, 10.0],
            corners: [[0.0; 2]; 4],
            two_rows: None,
        };
        let kept = non_max_suppression(vec![d(0.8, 0.0), d(0.9, 1.0), d(0.95, 50.0)], 0.4);
        let scores: Vec<f32> = kept.iter().map(|k| k.score).collect();
        assert_eq!(scores, vec![0.95, 0.9]);
    }
}
