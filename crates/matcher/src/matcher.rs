//! Ties each completed sale to the plate of the car that stood at its fuelling point during the fill,
//! with a confidence, or to no plate. A wrong plate can charge the wrong customer, so every doubt
//! lowers the confidence and below `min_confidence` the matcher abstains.

use std::collections::{BTreeMap, HashMap, VecDeque};

use forecourt_events::{DispenserEvent, FpNumber, FramePlates, Sale, SaleMatch, UnixMillis};

use crate::layout::Layout;

#[derive(Debug, Clone, PartialEq)]
pub struct MatcherConfig {
    /// How long after a sale to wait for late frames before deciding.
    pub grace_ms: i64,
    /// Below this confidence the matcher gives no plate.
    pub min_confidence: f32,
    /// A plate needs at least this many reads during the fill.
    pub min_reads: usize,
    /// The share of the fill (in 1 s buckets) in which the plate was read that counts as full presence.
    pub full_presence: f32,
    /// Sightings older than this are forgotten (unless a pending sale still needs them).
    pub retention_ms: i64,
}

impl Default for MatcherConfig {
    fn default() -> Self {
        MatcherConfig {
            grace_ms: 5_000,
            min_confidence: 0.6,
            min_reads: 3,
            full_presence: 0.3,
            retention_ms: 30 * 60_000,
        }
    }
}

/// A sale with the matcher's verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct MatchedSale {
    pub sale: Sale,
    pub fill_start: Option<UnixMillis>,
    pub fill_end: UnixMillis,
    pub verdict: SaleMatch,
}

#[derive(Debug, Clone)]
struct Sighting {
    t: UnixMillis,
    fp: FpNumber,
    text: String,
    confidence: f32,
    well_formed: bool,
}

#[derive(Debug, Clone)]
struct PendingSale {
    sale: Sale,
    start: Option<UnixMillis>,
    end: UnixMillis,
    decide_at: UnixMillis,
}

pub struct Matcher {
    layout: Layout,
    config: MatcherConfig,
    sightings: VecDeque<Sighting>,
    /// Per FP: when the nozzle came out and when it went back, for the fill in progress or just ended.
    nozzle_out: HashMap<FpNumber, UnixMillis>,
    nozzle_in: HashMap<FpNumber, UnixMillis>,
    pending: Vec<PendingSale>,
    is_well_formed: fn(&str) -> bool,
}

impl Matcher {
    /// `is_well_formed` is the plate grammar (reads that break it count for little).
    pub fn new(layout: Layout, config: MatcherConfig, is_well_formed: fn(&str) -> bool) -> Self {
        Matcher {
            layout,
            config,
            sightings: VecDeque::new(),
            nozzle_out: HashMap::new(),
            nozzle_in: HashMap::new(),
            pending: Vec::new(),
            is_well_formed,
        }
    }

    pub fn observe_frame(&mut self, frame: &FramePlates) {
        for plate in &frame.plates {
            if plate.text.is_empty() {
                continue;
            }
            // The plate's centre decides the zone: the box may straddle a zone's edge.
            let cx = (plate.bbox[0] + plate.bbox[2]) / 2.0;
            let cy = (plate.bbox[1] + plate.bbox[3]) / 2.0;
            let well_formed = (self.is_well_formed)(&plate.text);
            let fps: Vec<FpNumber> = self.layout.fps_at(&frame.camera, cx, cy).collect();
            for fp in fps {
                self.sightings.push_back(Sighting {
                    t: frame.t,
                    fp,
                    text: plate.text.clone(),
                    confidence: plate.confidence.clamp(0.0, 1.0),
                    well_formed,
                });
            }
        }
    }

    pub fn observe_dispenser(&mut self, event: &DispenserEvent) {
        match event {
            DispenserEvent::NozzleOut { t, fp, .. } => {
                self.nozzle_out.insert(*fp, *t);
                self.nozzle_in.remove(fp);
            }
            DispenserEvent::NozzleIn { t, fp, .. } => {
                self.nozzle_in.insert(*fp, *t);
            }
            DispenserEvent::SaleCompleted(sale) => {
                let start = sale
                    .nozzle_out_t
                    .or_else(|| self.nozzle_out.get(&sale.fp).copied());
                let end = self
                    .nozzle_in
                    .get(&sale.fp)
                    .copied()
                    .filter(|t| start.is_none_or(|s| *t >= s))
                    .unwrap_or(sale.t)
                    .min(sale.t);
                self.pending.push(PendingSale {
                    sale: sale.clone(),
                    start,
                    end,
                    decide_at: sale.t.max(end) + self.config.grace_ms,
                });
            }
            DispenserEvent::PumpOnline { .. } | DispenserEvent::PumpOffline { .. } => {}
        }
    }

    /// Decides every sale whose grace period is over at `now`, oldest first.
    pub fn poll(&mut self, now: UnixMillis) -> Vec<MatchedSale> {
        let (due, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| p.decide_at <= now);
        self.pending = waiting;
        let decided = due
            .into_iter()
            .map(|p| MatchedSale {
                verdict: self.judge(&p),
                fill_start: p.start,
                fill_end: p.end,
                sale: p.sale,
            })
            .collect();
        self.forget_before(now - self.config.retention_ms);
        decided
    }

    /// Sales waiting for their grace period.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    fn forget_before(&mut self, horizon: UnixMillis) {
        let needed = self
            .pending
            .iter()
            .filter_map(|p| p.start)
            .min()
            .unwrap_or(horizon)
            .min(horizon);
        while self.sightings.front().is_some_and(|s| s.t < needed) {
            self.sightings.pop_front();
        }
    }

    fn judge(&self, p: &PendingSale) -> SaleMatch {
        let abstain = |reason: &str| SaleMatch {
            plate: None,
            confidence: 0.0,
            reason: reason.to_string(),
        };
        let Some(start) = p.start else {
            return abstain("fill start unknown (no nozzle-out seen)");
        };
        let in_fill = |s: &&Sighting| s.t >= start && s.t <= p.end;
        // Weighted votes per text at this FP; malformed reads count a quarter.
        let weight = |s: &Sighting| s.confidence * if s.well_formed { 1.0 } else { 0.25 };
        let mut votes: BTreeMap<&str, (f32, usize)> = BTreeMap::new();
        let mut total = 0.0f32;
        for s in self
            .sightings
            .iter()
            .filter(in_fill)
            .filter(|s| s.fp == p.sale.fp)
        {
            let v = votes.entry(&s.text).or_default();
            v.0 += weight(s);
            v.1 += 1;
            total += weight(s);
        }
        let Some((text, (best, reads))) = votes
            .iter()
            .max_by(|a, b| a.1 .0.total_cmp(&b.1 .0).then(b.0.cmp(a.0)))
            .map(|(t, v)| (*t, *v))
        else {
            return abstain("no plate seen at the fuelling point during the fill");
        };
        if !(self.is_well_formed)(text) {
            return abstain("best reading is not a well-formed plate");
        }
        if reads < self.config.min_reads {
            return abstain("too few reads during the fill");
        }
        let share = best / total.max(f32::EPSILON);
        // Presence: in how many 1 s buckets of the fill the plate was read.
        let buckets = ((p.end - start) / 1000).max(1) as usize;
        let mut seen = vec![false; buckets];
        let mut conf_sum = 0.0;
        for s in self
            .sightings
            .iter()
            .filter(in_fill)
            .filter(|s| s.fp == p.sale.fp && s.text == text)
        {
            seen[(((s.t - start) / 1000) as usize).min(buckets - 1)] = true;
            conf_sum += s.confidence;
        }
        let presence = seen.iter().filter(|b| **b).count() as f32 / buckets as f32;
        let presence_factor = (presence / self.config.full_presence).min(1.0);
        // The same car also read at another FP during the fill makes the lane ambiguous.
        let elsewhere: f32 = self
            .sightings
            .iter()
            .filter(in_fill)
            .filter(|s| s.fp != p.sale.fp && s.text == text)
            .map(weight)
            .sum();
        let exclusivity = best / (best + elsewhere);
        let mean_conf = conf_sum / reads as f32;
        let confidence = (share * presence_factor * exclusivity * mean_conf).clamp(0.0, 1.0);
        if confidence < self.config.min_confidence {
            return SaleMatch {
                plate: None,
                confidence: 0.0,
                reason: format!(
                    "unsure: best {text} scored {confidence:.2} (share {share:.2}, presence {presence:.2}, exclusivity {exclusivity:.2})"
                ),
            };
        }
        SaleMatch {
            plate: Some(text.to_string()),
            confidence,
            reason: format!(
                "{reads} reads, share {share:.2}, presence {presence:.2}, exclusivity {exclusivity:.2}"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use forecourt_events::{Decimal, PlateRead};

    use super::*;
    use crate::layout::{FpLayout, Zone};

    fn layout() -> Layout {
        let zone = |x0: f32, x1: f32| Zone {
            camera: "cam1".into(),
            polygon: vec![[x0, 0.0], [x1, 0.0], [x1, 1.0], [x0, 1.0]],
        };
        Layout {
            fps: vec![
                FpLayout {
                    fp: 1,
                    zones: vec![zone(0.0, 0.5)],
                },
                FpLayout {
                    fp: 2,
                    zones: vec![zone(0.5, 1.0)],
                },
            ],
        }
    }

    fn plate_ok(text: &str) -> bool {
        text.chars().count() == 7
    }

    fn frame(t: i64, plates: &[(&str, f32, f32)]) -> FramePlates {
        FramePlates {
            t,
            camera: "cam1".into(),
            plates: plates
                .iter()
                .map(|(text, x, conf)| PlateRead {
                    text: text.to_string(),
                    confidence: *conf,
                    bbox: [x - 0.05, 0.5, x + 0.05, 0.55],
                })
                .collect(),
        }
    }

    fn sale(fp: u8, t: i64, out: Option<i64>) -> DispenserEvent {
        DispenserEvent::SaleCompleted(Sale {
            t,
            fp,
            nozzle: 1,
            nozzle_out_t: out,
            grade: None,
            volume: Decimal::new(3000, 2),
            amount: Decimal::new(23550, 2),
            price: Decimal::new(785, 2),
        })
    }

    fn run(frames: &[FramePlates], events: &[DispenserEvent], now: i64) -> Vec<MatchedSale> {
        let mut m = Matcher::new(layout(), MatcherConfig::default(), plate_ok);
        for f in frames {
            m.observe_frame(f);
        }
        for e in events {
            m.observe_dispenser(e);
        }
        m.poll(now)
    }

    #[test]
    fn each_fp_gets_the_car_in_its_zone() {
        let frames: Vec<_> = (0..20)
            .map(|i| {
                frame(
                    i * 500,
                    &[("苏E05EV8", 0.25, 0.95), ("京A12345", 0.75, 0.9)],
                )
            })
            .collect();
        let events = [
            DispenserEvent::NozzleOut {
                t: 0,
                fp: 2,
                nozzle: 1,
            },
            sale(1, 9_000, Some(1_000)),
            sale(2, 9_500, None),
        ];
        let out = run(&frames, &events, 20_000);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].verdict.plate.as_deref(), Some("苏E05EV8"));
        assert_eq!(out[1].verdict.plate.as_deref(), Some("京A12345"));
        assert!(out[0].verdict.confidence > 0.8, "{:?}", out[0].verdict);
    }

    #[test]
    fn waits_for_the_grace_period() {
        let frames: Vec<_> = (0..20)
            .map(|i| frame(i * 500, &[("苏E05EV8", 0.25, 0.95)]))
            .collect();
        let mut m = Matcher::new(layout(), MatcherConfig::default(), plate_ok);
        frames.iter().for_each(|f| m.observe_frame(f));
        m.observe_dispenser(&sale(1, 9_000, Some(1_000)));
        assert!(m.poll(13_999).is_empty());
        assert_eq!(m.pending(), 1);
        assert_eq!(m.poll(14_000).len(), 1);
        assert_eq!(m.pending(), 0);
    }

    #[test]
    fn abstains_without_sightings_or_fill_start() {
        let out = run(&[], &[sale(1, 9_000, Some(1_000))], 20_000);
        assert_eq!(out[0].verdict.plate, None);
        let frames: Vec<_> = (0..20)
            .map(|i| frame(i * 500, &[("苏E05EV8", 0.25, 0.95)]))
            .collect();
        let out = run(&frames, &[sale(1, 9_000, None)], 20_000);
        assert_eq!(out[0].verdict.plate, None);
        assert!(out[0].verdict.reason.contains("fill start"));
    }

    #[test]
    fn abstains_when_two_cars_compete_in_one_zone() {
        let frames: Vec<_> = (0..20)
            .map(|i| frame(i * 500, &[("苏E05EV8", 0.2, 0.95), ("京A12345", 0.3, 0.95)]))
            .collect();
        let out = run(&frames, &[sale(1, 9_000, Some(1_000))], 20_000);
        assert_eq!(out[0].verdict.plate, None, "{:?}", out[0].verdict);
    }

    #[test]
    fn a_car_seen_only_before_the_fill_is_not_matched() {
        let frames: Vec<_> = (0..10)
            .map(|i| frame(i * 500, &[("苏E05EV8", 0.25, 0.95)]))
            .collect();
        let out = run(&frames, &[sale(1, 20_000, Some(10_000))], 30_000);
        assert_eq!(out[0].verdict.plate, None);
    }

    #[test]
    fn a_few_misreads_do_not_change_the_plate() {
        let frames: Vec<_> = (0..20)
            .map(|i| {
                let text = if i % 7 == 0 { "苏E05FV8" } else { "苏E05EV8" };
                frame(i * 500, &[(text, 0.25, 0.9)])
            })
            .collect();
        let out = run(&frames, &[sale(1, 9_000, Some(1_000))], 20_000);
        assert_eq!(out[0].verdict.plate.as_deref(), Some("苏E05EV8"));
        assert!(out[0].verdict.confidence < 0.9);
    }

    #[test]
    fn malformed_best_reading_abstains() {
        let frames: Vec<_> = (0..20)
            .map(|i| frame(i * 500, &[("苏E05EV", 0.25, 0.99)]))
            .collect();
        let out = run(&frames, &[sale(1, 9_000, Some(1_000))], 20_000);
        assert_eq!(out[0].verdict.plate, None);
    }
}
