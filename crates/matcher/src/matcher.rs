//! Ties each completed sale to the plate of the car that stood at its fuelling point during the fill,
//! with a confidence, or to no plate. A wrong plate can charge the wrong customer, so every doubt
//! lowers the confidence and below `min_confidence` the matcher abstains.
//!
//! How: plate reads become per-camera tracks (one per car, see [`crate::tracker`]). For a sale, each
//! car (a voted plate text) scores by how much of the fill it stood still inside the fuelling
//! point's zones and how much of its time it spent inside them rather than elsewhere. Sales whose
//! fills overlap compete for the same cars, so they are assigned jointly (Hungarian). The verdict
//! is decided after a grace period, using only what happened up to that moment, so a live run and
//! the replay of its trace decide alike.

use std::collections::{BTreeMap, BTreeSet};

use forecourt_events::{DispenserEvent, FpNumber, FramePlates, Sale, SaleMatch, UnixMillis};

use crate::assign::assign_max;
use crate::layout::{Layout, Zone};
use crate::tracker::{Track, TrackRead, Tracker, TrackerConfig};
use crate::vote::{text_distance, vote, Ballot, VotedText};

#[derive(Debug, Clone, PartialEq)]
pub struct MatcherConfig {
    /// How long after a sale to wait for late frames before deciding.
    pub grace_ms: i64,
    /// Below this confidence the matcher gives no plate. Confidences are calibrated (a plate
    /// given at 0.95 is right about 95 times in 100), so this is the accepted error rate.
    pub min_confidence: f32,
    /// A plate needs at least this many reads inside the fuelling point's zones.
    pub min_reads: usize,
    /// Share of the fill a car must be seen standing in the zone to count as fully present.
    pub full_coverage: f32,
    /// Below this share of the fill a car is not considered at all.
    pub min_coverage: f32,
    /// Sightings older than this are forgotten (unless a pending sale still needs them).
    pub retention_ms: i64,
    /// A car read standing in the zone and then hidden is assumed to stay this long at most,
    /// unless another car is read there first.
    pub hidden_stay_ms: i64,
    /// Two reads of a track this close (normalised units) mean the car stood still between them.
    pub stationary_distance: f32,
    pub tracker: TrackerConfig,
}

impl Default for MatcherConfig {
    fn default() -> Self {
        MatcherConfig {
            grace_ms: 5_000,
            min_confidence: 0.95,
            min_reads: 3,
            full_coverage: 0.8,
            min_coverage: 0.05,
            retention_ms: 30 * 60_000,
            stationary_distance: 0.03,
            hidden_stay_ms: 60_000,
            tracker: TrackerConfig::default(),
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
struct PendingSale {
    sale: Sale,
    start: Option<UnixMillis>,
    end: UnixMillis,
    decide_at: UnixMillis,
}

/// One nozzle-out..nozzle-in at one fuelling point, sold or still running.
#[derive(Debug, Clone, Copy)]
struct Fill {
    fp: FpNumber,
    start: UnixMillis,
    /// `None` while the nozzle is still out.
    end: Option<UnixMillis>,
}

/// What the reads say about one car (one voted text) for one fill.
#[derive(Debug, Clone, Default)]
struct Evidence {
    /// Stationary in-zone intervals, clipped to the fill.
    intervals: Vec<(UnixMillis, UnixMillis)>,
    /// Read weight inside / outside the fuelling point's zones during the fill.
    inside: f32,
    outside: f32,
    reads_inside: usize,
    /// Time assumed, not seen: the car stood still, then was hidden.
    hidden: Vec<(UnixMillis, UnixMillis)>,
}

/// A car's standing for one fill, ready to score.
#[derive(Debug, Clone)]
struct Candidate {
    coverage: f32,
    containment: f32,
    reads_inside: usize,
    /// How sure the text vote over all the car's reads is.
    certainty: f32,
}

impl Candidate {
    fn score(&self) -> f64 {
        f64::from(self.coverage * self.containment)
    }
}

pub struct Matcher {
    layout: Layout,
    config: MatcherConfig,
    tracker: Tracker,
    /// Per FP: the nozzle-out and nozzle-in of the fill in progress or just ended.
    nozzle_out: BTreeMap<FpNumber, UnixMillis>,
    nozzle_in: BTreeMap<FpNumber, UnixMillis>,
    fills: Vec<Fill>,
    pending: Vec<PendingSale>,
    is_well_formed: fn(&str) -> bool,
}

impl Matcher {
    /// `is_well_formed` is the plate grammar (reads that break it count for little).
    pub fn new(layout: Layout, config: MatcherConfig, is_well_formed: fn(&str) -> bool) -> Self {
        Matcher {
            tracker: Tracker::new(config.tracker.clone(), is_well_formed),
            layout,
            config,
            nozzle_out: BTreeMap::new(),
            nozzle_in: BTreeMap::new(),
            fills: Vec::new(),
            pending: Vec::new(),
            is_well_formed,
        }
    }

    pub fn observe_frame(&mut self, frame: &FramePlates) {
        self.tracker.observe(frame);
    }

    pub fn observe_dispenser(&mut self, event: &DispenserEvent) {
        match event {
            DispenserEvent::NozzleOut { t, fp, .. } => {
                self.nozzle_out.insert(*fp, *t);
                self.nozzle_in.remove(fp);
                self.fills.push(Fill {
                    fp: *fp,
                    start: *t,
                    end: None,
                });
            }
            DispenserEvent::NozzleIn { t, fp, .. } => {
                self.nozzle_in.insert(*fp, *t);
                if let Some(fill) = self
                    .fills
                    .iter_mut()
                    .rev()
                    .find(|f| f.fp == *fp && f.end.is_none())
                {
                    fill.end = Some(*t);
                }
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
                // The fill this sale closes, in case its nozzle-in was never seen.
                if let Some(fill) = self
                    .fills
                    .iter_mut()
                    .rev()
                    .find(|f| f.fp == sale.fp && f.end.is_none())
                {
                    fill.end = Some(end);
                }
                self.pending.push(PendingSale {
                    sale: sale.clone(),
                    start,
                    end,
                    decide_at: sale.t.max(end) + self.config.grace_ms,
                });
            }
            // Pump status and the like say nothing about which car was there.
            _ => {}
        }
    }

    /// Decides every sale whose grace period is over at `now`, oldest first.
    pub fn poll(&mut self, now: UnixMillis) -> Vec<MatchedSale> {
        let (mut due, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| p.decide_at <= now);
        self.pending = waiting;
        due.sort_by_key(|p| (p.decide_at, p.sale.t, p.sale.fp, p.sale.nozzle));
        let decided = due
            .into_iter()
            .map(|p| MatchedSale {
                verdict: self.judge(&p),
                fill_start: p.start,
                fill_end: p.end,
                sale: p.sale,
            })
            .collect();
        self.forget_before(now.saturating_sub(self.config.retention_ms));
        decided
    }

    /// New thresholds from a config reload. The tracker keeps the settings it started with
    /// (its tracks were built with them); those need a restart.
    pub fn set_config(&mut self, config: MatcherConfig) {
        self.config = MatcherConfig {
            tracker: self.config.tracker.clone(),
            ..config
        };
    }

    pub fn config(&self) -> &MatcherConfig {
        &self.config
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
        // Tracks are needed a while before a fill starts (the car arrived earlier).
        self.tracker
            .forget_before(needed.saturating_sub(self.config.tracker.max_gap_ms));
        self.fills.retain(|f| f.end.is_none_or(|e| e >= needed));
    }

    fn judge(&self, p: &PendingSale) -> SaleMatch {
        let abstain = |reason: String| SaleMatch {
            plate: None,
            confidence: 0.0,
            reason,
        };
        let Some(start) = p.start else {
            return abstain("fill start unknown (no nozzle-out seen)".into());
        };
        let as_of = p.decide_at;
        let end = p.end.max(start + 1);
        // The fills of other fuelling points that overlap this one compete for the same cars.
        let mut rows: Vec<(FpNumber, UnixMillis, UnixMillis)> = vec![(p.sale.fp, start, end)];
        for fill in &self.fills {
            let fill_end = fill.end.unwrap_or(as_of).min(as_of);
            if fill.fp != p.sale.fp && fill.start < end && fill_end > start && fill.start < as_of {
                rows.push((fill.fp, fill.start, fill_end.max(fill.start + 1)));
            }
        }
        let mut texts: BTreeMap<u64, VotedText> = BTreeMap::new();
        let row_candidates: Vec<BTreeMap<String, Candidate>> = rows
            .iter()
            .map(|&(fp, from, to)| self.candidates(fp, from, to, as_of, &mut texts))
            .collect();
        let columns: Vec<&String> = row_candidates
            .iter()
            .flat_map(|c| c.keys())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let scores: Vec<Vec<f64>> = row_candidates
            .iter()
            .map(|c| {
                columns
                    .iter()
                    .map(|text| c.get(*text).map_or(0.0, Candidate::score))
                    .collect()
            })
            .collect();
        let assignment = assign_max(&scores);
        let Some(column) = assignment[0] else {
            return abstain(if row_candidates[0].is_empty() {
                "no car seen standing at the fuelling point during the fill".into()
            } else {
                "every car seen there is better explained by another fill".into()
            });
        };
        let text = columns[column].clone();
        let chosen = &row_candidates[0][&text];
        if !(self.is_well_formed)(&text) {
            return abstain(format!("best reading {text} is not a well-formed plate"));
        }
        if chosen.reads_inside < self.config.min_reads {
            return abstain(format!(
                "too few reads of {text} at the fuelling point ({})",
                chosen.reads_inside
            ));
        }
        // The strongest other car for this fill; one that the joint assignment gave to another
        // fill it suits better still counts, but half.
        let rival = columns
            .iter()
            .enumerate()
            .filter(|(c, _)| *c != column)
            .map(|(c, t)| {
                let own = row_candidates[0].get(*t).map_or(0.0, Candidate::score);
                let elsewhere = assignment[1..]
                    .iter()
                    .enumerate()
                    .any(|(r, a)| *a == Some(c) && scores[r + 1][c] >= own);
                if elsewhere {
                    own * 0.5
                } else {
                    own
                }
            })
            .fold(0.0f64, f64::max) as f32;
        let certainty = chosen.certainty;
        let presence = ramp(
            chosen.coverage,
            self.config.min_coverage.max(0.3),
            self.config.full_coverage,
        );
        let containment = ramp(chosen.containment, 0.5, 0.9);
        let score = chosen.coverage * chosen.containment;
        let exclusivity = ramp(1.0 - rival / score.max(f32::EPSILON), 0.0, 0.5);
        let raw = (certainty * presence * containment * exclusivity).clamp(0.0, 1.0);
        let confidence = calibrated(raw);
        let detail = format!(
            "score {raw:.3}: {} reads, text {certainty:.3}, coverage {:.2}, containment {:.2}, rival {rival:.2}",
            chosen.reads_inside, chosen.coverage, chosen.containment
        );
        if confidence < self.config.min_confidence {
            return abstain(format!("unsure: {text} scored {confidence:.2} ({detail})"));
        }
        SaleMatch {
            plate: Some(text),
            confidence,
            reason: detail,
        }
    }

    /// The cars seen standing in `fp`'s zones during `from..to`, by voted text.
    fn candidates(
        &self,
        fp: FpNumber,
        from: UnixMillis,
        to: UnixMillis,
        as_of: UnixMillis,
        texts: &mut BTreeMap<u64, VotedText>,
    ) -> BTreeMap<String, Candidate> {
        let Some(fp_layout) = self.layout.fps.iter().find(|f| f.fp == fp) else {
            return BTreeMap::new();
        };
        let cameras: BTreeSet<&str> = fp_layout.zones.iter().map(|z| z.camera.as_str()).collect();
        let mut seen: Vec<(&Track, Evidence)> = Vec::new();
        let lookback = self.config.tracker.max_gap_ms;
        for camera in cameras {
            let zones: Vec<&Zone> = fp_layout
                .zones
                .iter()
                .filter(|z| z.camera == camera)
                .collect();
            let inside = |x: f32, y: f32| zones.iter().any(|z| z.contains(x, y));
            // When each car was read inside the zone: a car that stood still until it was hidden
            // is assumed to stay until another car is read there (bounded by `hidden_stay_ms`).
            let zone_reads: Vec<(UnixMillis, u64)> = self
                .tracker
                .tracks_between(camera, from - lookback, to)
                .flat_map(|t| t.reads.iter().map(move |r| (r, t.id)))
                .filter(|(r, _)| r.t <= as_of && inside(r.x, r.y))
                .map(|(r, id)| (r.t, id))
                .collect();
            let other_car_between = |id: u64, a: UnixMillis, b: UnixMillis| {
                zone_reads
                    .iter()
                    .any(|&(t, other)| other != id && t > a && t <= b)
            };
            for track in self.tracker.tracks_between(camera, from - lookback, to) {
                if track.first_t() > as_of {
                    continue;
                }
                let mut e = Evidence::default();
                let reads: Vec<_> = track.reads.iter().take_while(|r| r.t <= as_of).collect();
                // Reads that show the car standing in the zone during the fill: those inside it
                // during the fill, and the ends of a still stretch that spans part of the fill
                // (an occluded car that never moved).
                let mut counted = vec![false; reads.len()];
                // Box centres jitter from frame to frame; a median over neighbouring reads tells
                // a standing car from a moving one more surely than raw positions.
                let smoothed = smoothed_positions(&reads);
                for (i, pair) in smoothed.windows(2).enumerate() {
                    let (a, b) = (pair[0], pair[1]);
                    let still = ((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)).sqrt()
                        <= self.config.stationary_distance;
                    let (a, b) = (reads[i], reads[i + 1]);
                    if still && inside(a.x, a.y) && inside(b.x, b.y) {
                        let (s, t) = (a.t.max(from), b.t.min(to));
                        if s < t {
                            e.intervals.push((s, t));
                            counted[i] = true;
                            counted[i + 1] = true;
                        }
                    }
                }
                if let (Some(last), Some(&(lx, ly))) = (reads.last(), smoothed.last()) {
                    let before = reads.len().checked_sub(2).map(|i| smoothed[i]);
                    let still = before.is_some_and(|(px, py)| {
                        ((px - lx).powi(2) + (py - ly).powi(2)).sqrt()
                            <= self.config.stationary_distance
                    });
                    let until = (last.t + self.config.hidden_stay_ms).min(as_of).min(to);
                    if still
                        && inside(last.x, last.y)
                        && last.t.max(from) < until
                        && !other_car_between(track.id, last.t, until)
                    {
                        e.hidden.push((last.t.max(from), until));
                        counted[reads.len() - 1] = true;
                    }
                }
                for (i, r) in reads.iter().enumerate() {
                    let during = r.t >= from && r.t <= to;
                    let w = r.confidence * if r.well_formed { 1.0 } else { 0.2 };
                    if during && inside(r.x, r.y) {
                        e.inside += w;
                        counted[i] = true;
                    } else if during {
                        e.outside += w;
                    }
                }
                e.reads_inside = counted.iter().filter(|c| **c).count();
                if e.reads_inside > 0 {
                    texts
                        .entry(track.id)
                        .or_insert_with(|| vote_track(track, as_of));
                    seen.push((track, e));
                }
            }
        }
        // Tracks whose texts differ by a misread or two are one car seen by several cameras (or
        // one camera after a long occlusion): the strongest track leads each group.
        seen.sort_by(|a, b| b.1.inside.total_cmp(&a.1.inside).then(a.0.id.cmp(&b.0.id)));
        let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
        for (i, (track, _)) in seen.iter().enumerate() {
            let text = &texts[&track.id].text;
            if text.is_empty() {
                continue;
            }
            match groups.iter_mut().find(|(lead, _)| {
                text_distance(lead, text) <= self.config.tracker.max_text_distance
            }) {
                Some((_, members)) => members.push(i),
                None => groups.push((text.clone(), vec![i])),
            }
        }
        let fill_ms = (to - from).max(1) as f32;
        let mut candidates: BTreeMap<String, Candidate> = BTreeMap::new();
        for (_, members) in groups {
            let voted = vote(members.iter().flat_map(|&i| {
                seen[i]
                    .0
                    .reads
                    .iter()
                    .take_while(|r| r.t <= as_of)
                    .map(|r| Ballot {
                        text: &r.text,
                        confidence: r.confidence,
                        well_formed: r.well_formed,
                    })
            }));
            let Some(voted) = voted else { continue };
            let mut intervals = Vec::new();
            let mut hidden = Vec::new();
            let (mut inside, mut outside, mut reads_inside) = (0.0f32, 0.0f32, 0);
            for &i in &members {
                let e = &seen[i].1;
                intervals.extend_from_slice(&e.intervals);
                hidden.extend_from_slice(&e.hidden);
                inside += e.inside;
                outside += e.outside;
                reads_inside += e.reads_inside;
            }
            // Assumed time counts half.
            let seen_ms = union_length(intervals.clone());
            hidden.extend(intervals);
            let assumed_ms = union_length(hidden) - seen_ms;
            let coverage = (seen_ms as f32 + 0.5 * assumed_ms as f32) / fill_ms;
            let containment = if inside + outside > 0.0 {
                inside / (inside + outside)
            } else {
                // Only bridged (occluded) time inside the fill: it stood in the zone.
                1.0
            };
            if coverage < self.config.min_coverage {
                continue;
            }
            let candidate = Candidate {
                coverage,
                containment,
                reads_inside,
                certainty: voted.certainty,
            };
            // Two groups voting the same text: keep the stronger.
            match candidates.get(&voted.text) {
                Some(c) if c.score() >= candidate.score() => {}
                _ => {
                    candidates.insert(voted.text, candidate);
                }
            }
        }
        candidates
    }
}

/// Per read, the median position of it and its two neighbours on each side.
fn smoothed_positions(reads: &[&TrackRead]) -> Vec<(f32, f32)> {
    (0..reads.len())
        .map(|i| {
            let window = &reads[i.saturating_sub(2)..(i + 3).min(reads.len())];
            let median = |mut v: Vec<f32>| {
                v.sort_by(f32::total_cmp);
                v[v.len() / 2]
            };
            (
                median(window.iter().map(|r| r.x).collect()),
                median(window.iter().map(|r| r.y).collect()),
            )
        })
        .collect()
}

fn vote_track(track: &Track, as_of: UnixMillis) -> VotedText {
    vote(
        track
            .reads
            .iter()
            .take_while(|r| r.t <= as_of)
            .map(|r| Ballot {
                text: &r.text,
                confidence: r.confidence,
                well_formed: r.well_formed,
            }),
    )
    .unwrap_or(VotedText {
        text: String::new(),
        certainty: 0.0,
        exact_reads: 0,
        reads: 0,
    })
}

/// The raw score (a product of doubts) is far more pessimistic than the plates it picks are
/// wrong. This maps it to the observed accuracy: knots fitted on generated scenarios (trace-gen,
/// seeds 1..20, 10,000 sales, accuracy per raw-score decile); refit them with `eval_match` on
/// recorded traces with ground truth from a real station.
fn calibrated(raw: f32) -> f32 {
    const KNOTS: [(f32, f32); 5] = [
        (0.0, 0.6),
        (0.2, 0.85),
        (0.3, 0.97),
        (0.9, 0.99),
        (1.0, 1.0),
    ];
    let raw = raw.clamp(0.0, 1.0);
    for pair in KNOTS.windows(2) {
        let ((x0, y0), (x1, y1)) = (pair[0], pair[1]);
        if raw <= x1 {
            return y0 + (y1 - y0) * (raw - x0) / (x1 - x0);
        }
    }
    1.0
}

/// 0 at or below `low`, 1 at or above `high`, linear between.
fn ramp(value: f32, low: f32, high: f32) -> f32 {
    if high <= low {
        return if value >= high { 1.0 } else { 0.0 };
    }
    ((value - low) / (high - low)).clamp(0.0, 1.0)
}

/// Total length of the union of intervals.
fn union_length(mut intervals: Vec<(UnixMillis, UnixMillis)>) -> i64 {
    intervals.sort_unstable();
    let mut total = 0;
    let mut current: Option<(UnixMillis, UnixMillis)> = None;
    for (s, e) in intervals {
        match current {
            Some((cs, ce)) if s <= ce => current = Some((cs, ce.max(e))),
            Some((cs, ce)) => {
                total += ce - cs;
                current = Some((s, e));
            }
            None => current = Some((s, e)),
        }
    }
    total + current.map_or(0, |(s, e)| e - s)
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
            end: None,
            recovered: false,
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
    }

    #[test]
    fn malformed_best_reading_abstains() {
        let frames: Vec<_> = (0..20)
            .map(|i| frame(i * 500, &[("苏E05EV", 0.25, 0.99)]))
            .collect();
        let out = run(&frames, &[sale(1, 9_000, Some(1_000))], 20_000);
        assert_eq!(out[0].verdict.plate, None);
    }

    #[test]
    fn an_occluded_car_that_never_moved_still_covers_the_fill() {
        // Read before and after a long occlusion, at the same place.
        let frames: Vec<_> = (0..6)
            .map(|i| frame(i * 500, &[("苏E05EV8", 0.25, 0.95)]))
            .chain((0..6).map(|i| frame(60_000 + i * 500, &[("苏E05EV8", 0.25, 0.95)])))
            .collect();
        let out = run(&frames, &[sale(1, 64_000, Some(5_000))], 100_000);
        assert_eq!(
            out[0].verdict.plate.as_deref(),
            Some("苏E05EV8"),
            "{:?}",
            out[0].verdict
        );
    }

    #[test]
    fn union_of_intervals() {
        assert_eq!(union_length(vec![(0, 10), (5, 20), (30, 40)]), 30);
        assert_eq!(union_length(vec![]), 0);
    }
}
