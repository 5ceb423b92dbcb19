//! Where a car being fuelled stands in each camera's image, learned from the station's own fills.
//! A car queued behind the one at the pump stands inside the drawn zone too, but further from the
//! camera: its plate reads smaller and elsewhere. Nothing about the geometry is configured; each
//! (camera, fuelling point) learns the box of cars that stood alone at the pump through a fill.

use std::collections::{BTreeMap, VecDeque};

use forecourt_events::FpNumber;

/// The median box of one car standing through one fill.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StopSample {
    pub x: f32,
    pub y: f32,
    pub w: f32,
}

impl StopSample {
    /// The box whose centre and width are each the median of `boxes` (`None` for none).
    pub fn median<'a>(boxes: impl Iterator<Item = &'a StopSample> + Clone) -> Option<StopSample> {
        let median = |f: fn(&StopSample) -> f32| {
            let mut v: Vec<f32> = boxes.clone().map(f).collect();
            v.sort_by(f32::total_cmp);
            v.get(v.len() / 2).copied()
        };
        Some(StopSample {
            x: median(|s| s.x)?,
            y: median(|s| s.y)?,
            w: median(|s| s.w)?,
        })
    }

    /// Whether a read box (centre `x`, `y`, width `w`) is one car standing at this box: the
    /// size and place of a full [`likeness_to`].
    pub fn fits(&self, x: f32, y: f32, w: f32) -> bool {
        likeness_to(*self, x, y, w) >= 1.0
    }

    /// Distance from this box's centre to the point `x`, `y` (normalised units).
    pub fn distance_to(&self, x: f32, y: f32) -> f32 {
        ((x - self.x).powi(2) + (y - self.y).powi(2)).sqrt()
    }
}

/// Samples kept per camera and fuelling point (the newest win: cameras get moved).
const KEPT: usize = 41;
/// Samples that must agree before the model is used; until then every car in the zone may be at
/// the pump.
const NEEDED: usize = 5;
/// Queued cars that must have stood at one place before it is taken for where the queue waits.
const QUEUE_NEEDED: usize = 3;
/// A car at the pump reads within this size ratio of the learned box (stopping a metre earlier or
/// later changes it by about 15%)...
const SIZE_RATIO_FULL: f32 = 1.3;
/// ...and not at all beyond this one (a car a length further back reads about 0.6x).
const SIZE_RATIO_NONE: f32 = 1.6;
/// Box centre distance from the learned one, in learned plate widths: full / none.
const DISTANCE_FULL: f32 = 2.5;
const DISTANCE_NONE: f32 = 5.0;

#[derive(Debug, Default)]
struct Stop {
    samples: VecDeque<StopSample>,
    /// Boxes of cars that stood through a fill and then moved up to stand elsewhere: queued.
    queued: VecDeque<StopSample>,
    /// Where most queued cars stood, once enough did.
    queue: Option<StopSample>,
    /// The box most samples agree on, once enough do.
    learned: Option<StopSample>,
}

impl Stop {
    fn refresh(&mut self) {
        self.queue = queue_place(&self.queued, &self.samples);
        self.learned = mode(&self.samples, self.queue);
    }
}

#[derive(Debug, Default)]
pub struct StopModel {
    stops: BTreeMap<(String, FpNumber), Stop>,
}

impl StopModel {
    /// One car that stood in the bay through a fill. Cars queued inside the zone are samples too,
    /// but every fill has a car at the pump and only some have a queue, so the pump's box is
    /// where most samples agree.
    /// Forgets what was learned of `fp` on every camera (its zones were drawn anew: the samples
    /// were taken through the old ones).
    pub fn forget_fp(&mut self, fp: FpNumber) {
        self.stops.retain(|(_, stop_fp), _| *stop_fp != fp);
    }

    pub fn learn(&mut self, camera: &str, fp: FpNumber, sample: StopSample) {
        self.keep(camera, fp, sample, |stop| &mut stop.samples);
    }

    /// A car that stood in the bay through a fill and then moved up: where the queue waits. Where
    /// the car at the pump is often hidden (a camera behind the lane sees the queued car's plate
    /// in front of it), queued cars are most of the samples whose car was not seen to move up;
    /// samples where cars are known to queue are left out of the stop.
    pub fn learn_queued(&mut self, camera: &str, fp: FpNumber, sample: StopSample) {
        self.keep(camera, fp, sample, |stop| &mut stop.queued);
    }

    /// Adds a well-formed `sample` to the list `which` picks (the newest [`KEPT`]) and works out
    /// the stop and the queue place again.
    fn keep(
        &mut self,
        camera: &str,
        fp: FpNumber,
        sample: StopSample,
        which: fn(&mut Stop) -> &mut VecDeque<StopSample>,
    ) {
        if !(sample.w.is_finite() && sample.w > 0.0 && sample.x.is_finite() && sample.y.is_finite())
        {
            return;
        }
        let stop = self.stops.entry((camera.to_string(), fp)).or_default();
        let kept = which(stop);
        if kept.len() == KEPT {
            kept.pop_front();
        }
        kept.push_back(sample);
        stop.refresh();
    }

    /// Where cars queue for `fp` on `camera`, once enough were seen to move up from there.
    pub fn queue(&self, camera: &str, fp: FpNumber) -> Option<StopSample> {
        self.stops.get(&(camera.to_string(), fp))?.queue
    }

    /// The learned stop box of `fp` on `camera`, once enough fills taught it.
    pub fn stop(&self, camera: &str, fp: FpNumber) -> Option<StopSample> {
        self.stops.get(&(camera.to_string(), fp))?.learned
    }

    /// How much a read box (centre `x`, `y`, width `w`) looks like a car at the pump: `None` with
    /// no model yet, else 1 for a close fit down to 0 for a box of another size or far away.
    #[cfg(test)]
    pub fn likeness(&self, camera: &str, fp: FpNumber, x: f32, y: f32, w: f32) -> Option<f32> {
        self.stop(camera, fp).map(|stop| likeness_to(stop, x, y, w))
    }
}

/// The median of the largest group of samples that fit each other, when it holds at least
/// [`NEEDED`] samples and more than half of them all. Samples at the `queue` place are left out
/// first (no car at the pump stands where the queue waits).
fn mode(samples: &VecDeque<StopSample>, queue: Option<StopSample>) -> Option<StopSample> {
    let samples: Vec<&StopSample> = samples
        .iter()
        .filter(|s| queue.is_none_or(|q| !q.fits(s.x, s.y, s.w)))
        .collect();
    let group = largest_group(&samples)?;
    if group.len() < NEEDED || group.len() * 2 <= samples.len() {
        return None;
    }
    StopSample::median(group.into_iter())
}

/// Where queued cars wait: the median of the largest group of queued samples that fit each
/// other, once it holds [`QUEUE_NEEDED`] and at least half as many as the other `samples` there.
/// Where the queue and the stop look alike (a long lens down the lane), most cars standing
/// there drove off after their fill: that place is the stop, not the queue.
fn queue_place(
    queued: &VecDeque<StopSample>,
    samples: &VecDeque<StopSample>,
) -> Option<StopSample> {
    let queued: Vec<&StopSample> = queued.iter().collect();
    let group = largest_group(&queued)?;
    let place = StopSample::median(group.iter().copied())?;
    let others = samples.iter().filter(|s| place.fits(s.x, s.y, s.w)).count();
    (group.len() >= QUEUE_NEEDED && group.len() * 2 >= others).then_some(place)
}

/// The largest set of samples that fit one of them (the first such on a tie).
fn largest_group<'a>(samples: &[&'a StopSample]) -> Option<Vec<&'a StopSample>> {
    let mut best: Option<Vec<&StopSample>> = None;
    for s in samples {
        let group: Vec<&StopSample> = samples
            .iter()
            .copied()
            .filter(|o| s.fits(o.x, o.y, o.w))
            .collect();
        if best.as_ref().is_none_or(|b| group.len() > b.len()) {
            best = Some(group);
        }
    }
    best
}

/// How much a read box (centre `x`, `y`, width `w`) looks like a car at `stop`: 1 for a close
/// fit down to 0 for a box of another size or far away.
pub fn likeness_to(stop: StopSample, x: f32, y: f32, w: f32) -> f32 {
    if w.is_nan() || w <= 0.0 {
        return 0.0;
    }
    let distance = stop.distance_to(x, y) / stop.w;
    let place = falloff(distance, DISTANCE_FULL, DISTANCE_NONE);
    if place <= 0.0 {
        // Most reads of a camera are nowhere near the stop: no need to weigh their size.
        return 0.0;
    }
    size_likeness(stop, w).min(place)
}

/// How much a box `w` wide has the size of a car at `stop`, wherever it stands.
pub fn size_likeness(stop: StopSample, w: f32) -> f32 {
    if w.is_nan() || w <= 0.0 {
        return 0.0;
    }
    let ratio = w / stop.w;
    // Well inside the full range or well past the none one, the logarithm is not needed (the
    // margins keep rounding at the edges out of it).
    if ratio <= SIZE_RATIO_FULL * 0.99 && ratio * SIZE_RATIO_FULL * 0.99 >= 1.0 {
        return 1.0;
    }
    if ratio >= SIZE_RATIO_NONE * 1.01 || ratio * SIZE_RATIO_NONE * 1.01 <= 1.0 {
        return 0.0;
    }
    falloff(ratio.ln().abs(), SIZE_RATIO_FULL.ln(), SIZE_RATIO_NONE.ln())
}

/// 1 up to `full`, 0 from `none` on, linear between.
fn falloff(value: f32, full: f32, none: f32) -> f32 {
    if value <= full {
        1.0
    } else if value >= none {
        0.0
    } else {
        (none - value) / (none - full)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_likeness_is_the_falloff_of_the_log_ratio_everywhere() {
        let stop = StopSample {
            x: 0.5,
            y: 0.5,
            w: 0.037,
        };
        // Ratios from 0.3 to 3 in steps far finer than the margins of the shortcuts, and the
        // range edges themselves.
        let edges = [
            SIZE_RATIO_FULL,
            SIZE_RATIO_NONE,
            1.0 / SIZE_RATIO_FULL,
            1.0 / SIZE_RATIO_NONE,
        ];
        let ratios = (0..27_000)
            .map(|k| 0.3 + k as f32 * 1e-4)
            .chain(edges.iter().flat_map(|e| [e * 0.999, *e, e * 1.001]));
        for ratio in ratios {
            let w = ratio * stop.w;
            let by_log = falloff(
                (w / stop.w).ln().abs(),
                SIZE_RATIO_FULL.ln(),
                SIZE_RATIO_NONE.ln(),
            );
            assert_eq!(
                size_likeness(stop, w).to_bits(),
                by_log.to_bits(),
                "ratio {ratio}"
            );
        }
    }

    #[test]
    fn learns_the_stop_and_tells_a_queued_car_from_it() {
        let mut model = StopModel::default();
        assert_eq!(model.likeness("cam1", 1, 0.5, 0.3, 0.01), None);
        for i in 0..6 {
            let d = i as f32 * 0.002;
            model.learn(
                "cam1",
                1,
                StopSample {
                    x: 0.5 + d,
                    y: 0.7,
                    w: 0.08 + d,
                },
            );
            // Some fills also had a car queued inside the zone.
            if i % 2 == 0 {
                model.learn(
                    "cam1",
                    1,
                    StopSample {
                        x: 0.5,
                        y: 0.55,
                        w: 0.05,
                    },
                );
            }
        }
        // At the stop, a little early or late.
        assert_eq!(model.likeness("cam1", 1, 0.51, 0.72, 0.085), Some(1.0));
        assert!(model.likeness("cam1", 1, 0.5, 0.75, 0.1).unwrap() > 0.9);
        // Queued behind: about 0.6x as wide and higher in the image.
        assert_eq!(model.likeness("cam1", 1, 0.5, 0.55, 0.05), Some(0.0));
        // Another fuelling point or camera has its own model.
        assert_eq!(model.likeness("cam1", 2, 0.5, 0.55, 0.05), None);
        assert_eq!(model.likeness("cam2", 1, 0.5, 0.55, 0.05), None);
    }

    #[test]
    fn no_model_while_the_samples_disagree() {
        let mut model = StopModel::default();
        for _ in 0..5 {
            model.learn(
                "cam1",
                1,
                StopSample {
                    x: 0.5,
                    y: 0.7,
                    w: 0.08,
                },
            );
            model.learn(
                "cam1",
                1,
                StopSample {
                    x: 0.5,
                    y: 0.55,
                    w: 0.05,
                },
            );
        }
        assert_eq!(model.stop("cam1", 1), None);
        model.learn(
            "cam1",
            1,
            StopSample {
                x: 0.5,
                y: 0.7,
                w: 0.08,
            },
        );
        assert_eq!(model.stop("cam1", 1).map(|s| s.w), Some(0.08));
    }

    #[test]
    fn where_cars_were_seen_to_queue_is_not_the_stop() {
        // A camera behind the lane: the car at the pump is often hidden by the one queued behind
        // it, so half the cars seen standing through a fill were queued (and then moved up
        // unseen), as many as were at the pump.
        let (pump, queue) = (
            StopSample {
                x: 0.4,
                y: 0.56,
                w: 0.02,
            },
            StopSample {
                x: 0.33,
                y: 0.71,
                w: 0.03,
            },
        );
        let mut model = StopModel::default();
        for _ in 0..6 {
            model.learn("cam1", 1, pump);
            model.learn("cam1", 1, queue);
        }
        assert_eq!(model.stop("cam1", 1), None);
        // Two queued cars seen moving up are not enough to rule the place out...
        model.learn_queued("cam1", 1, queue);
        model.learn_queued("cam1", 1, queue);
        assert_eq!(model.stop("cam1", 1), None);
        // ...a third is.
        model.learn_queued("cam1", 1, queue);
        assert_eq!(model.queue("cam1", 1), Some(queue));
        assert_eq!(model.stop("cam1", 1), Some(pump));
        assert_eq!(
            model.likeness("cam1", 1, queue.x, queue.y, queue.w),
            Some(0.0)
        );
    }
}
