//! Do a fuelling point's zones sit where its customers stand? Zones drawn on the wrong lane (two
//! fuelling points' zones swapped) or on the wrong camera give confident wrong plates, and the
//! matcher alone cannot tell: it only looks inside the zones it is given. The physics can: a car
//! being fuelled stood at its pump from before the nozzle was lifted until after it was hung up.
//!
//! For every decided sale this looks at every fuelling point's zones during the fill: which cars
//! were read there, from when to when. A sale whose own zones saw only cars that came or went
//! while the nozzle was out, while a car in another fuelling point's zones stood through the whole
//! fill, is evidence that the zones are misplaced. Per fuelling point, over its latest sales, it
//! keeps those counts with the share of sales given no plate and the matcher's mean confidence,
//! and raises an alarm when they say the zones are wrong (see [`ZoneCheck::report`]).

use std::collections::{BTreeMap, VecDeque};

use forecourt_events::{FpNumber, FramePlates, UnixMillis};
use matcher::vote::text_distance;
use matcher::{Layout, MatchedSale};
use serde::{Deserialize, Serialize};
use wire::{FpZoneCheck, ZoneHourJson};

/// Reads older than this are dropped: a fill and its grace period end well within it.
const KEEP_READS_MS: i64 = 15 * 60_000;
/// At most this many reads are kept (a bound on memory whatever the station's size).
const MAX_READS: usize = 200_000;
/// Reads from this long before the nozzle-out count: a car that stood there before the fill was
/// read in it. Short, so that a car that left before and came back (or another with its plate)
/// does not count as standing there all along; a car's reads within the window are one stay,
/// however long it was hidden during the fill.
const LOOK_BEFORE_MS: i64 = 20_000;
/// Reads from this long after the hang-up count.
const LOOK_AFTER_MS: i64 = 30_000;
/// A car read this close to the nozzle-out (after it) or the hang-up (before it) was there: the
/// camera reads a few frames a second, and a plate is not read in every frame.
const PRESENT_SLACK_MS: i64 = 1000;
/// Reads this close in characters are one car (a misread of one plate). Not 2: two cars in a row
/// may have plates two characters apart (京A12345, 浙AD12345).
const SAME_CAR_DISTANCE: usize = 1;
/// The latest sales per fuelling point the report and alarm look at.
pub const JUDGED_SALES: usize = 10;
/// An alarm on other-zone fits needs at least this many such sales...
const MIN_OTHER_ZONE: u32 = 3;
/// ...making at least this share of the sales judged.
const OTHER_ZONE_SHARE: f64 = 0.6;
/// An alarm on unseen sales (no car read in the zones during the fill) needs this many sales.
const MIN_UNSEEN: u32 = 5;
/// An alarm on the no-plate share needs this many sales at the fuelling point...
const MIN_SALES_NO_PLATE: u32 = 6;
/// ...a share of at least this...
const NO_PLATE_SHARE: f64 = 0.6;
/// ...and this much above the median of the other fuelling points (each with as many sales).
const NO_PLATE_ABOVE_OTHERS: f64 = 0.4;

/// A plate read placed in a fuelling point's zone.
#[derive(Debug, Clone)]
struct ZoneRead {
    t: UnixMillis,
    fp: FpNumber,
    text: String,
}

/// One car (reads of one plate, misreads included) in one fuelling point's zones around a fill.
#[derive(Debug, Clone, PartialEq)]
pub struct CarSpan {
    /// The text it was read as most often.
    pub text: String,
    pub first_t: UnixMillis,
    pub last_t: UnixMillis,
    pub reads: u32,
    /// Share of the fill (nozzle-out to hang-up) between its first and last read, 0..1.
    pub coverage: f64,
    /// Read there by the nozzle-out and still at the hang-up: the car that was fuelled, if it
    /// stood at this pump.
    pub stood_through: bool,
}

/// What stood where during one sale's fill, and what that says about the zones.
#[derive(Debug, Clone, PartialEq)]
pub struct FillEvidence {
    pub fp: FpNumber,
    pub nozzle: u8,
    pub fill_start: UnixMillis,
    pub fill_end: UnixMillis,
    pub plate: Option<String>,
    pub confidence: f32,
    /// Per fuelling point of the layout, the cars read in its zones around the fill, the one
    /// that covers most of the fill first.
    pub zones: BTreeMap<FpNumber, Vec<CarSpan>>,
    pub fit: Fit,
}

/// Whose zones a fill's car stood in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// A car in the sale's own zones stood through the fill, and none elsewhere did.
    Own,
    /// A car stood through it both in the own zones and in another fuelling point's.
    OwnAndOther(FpNumber),
    /// Only a car in another fuelling point's zones stood through it: the zones look misplaced.
    Other(FpNumber),
    /// The own zones saw cars, but none stood through the fill, nor anywhere else.
    NoneStood,
    /// Nothing was read in the own zones around the fill.
    Unseen,
}

impl FillEvidence {
    /// The car whose reads cover most of the fill in `fp`'s zones.
    pub fn best_in(&self, fp: FpNumber) -> Option<&CarSpan> {
        self.zones.get(&fp).and_then(|cars| cars.first())
    }

    /// Nothing was read in the sale's own zones around the fill.
    pub fn unseen(&self) -> bool {
        self.best_in(self.fp).is_none()
    }
}

/// A sale's outcome as the report and the hourly figures count it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Judged {
    pub plated: bool,
    pub confidence: f32,
    pub fit: Fit,
    /// Nothing was read in the own zones around the fill.
    pub unseen: bool,
}

impl Judged {
    pub fn of(evidence: &FillEvidence) -> Judged {
        Judged {
            plated: evidence.plate.is_some(),
            confidence: evidence.confidence,
            fit: evidence.fit,
            unseen: evidence.unseen(),
        }
    }
}

/// How a fuelling point's zones fitted its fills in one hour.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ZoneCounters {
    pub reads: u32,
    pub sales_judged: u32,
    pub plated: u32,
    pub confidence_sum: f64,
    pub other_zone: u32,
    pub unseen: u32,
}

impl ZoneCounters {
    pub(crate) fn judged(&mut self, j: &Judged) {
        self.sales_judged += 1;
        if j.plated {
            self.plated += 1;
            self.confidence_sum += f64::from(j.confidence);
        }
        if matches!(j.fit, Fit::Other(_)) {
            self.other_zone += 1;
        }
        if j.unseen {
            self.unseen += 1;
        }
    }

    /// The matcher's mean confidence over the plated sales, to 3 places (`None`: none).
    pub fn mean_confidence(&self) -> Option<f64> {
        (self.plated > 0)
            .then(|| (self.confidence_sum / f64::from(self.plated) * 1000.0).round() / 1000.0)
    }

    pub(crate) fn summary(&self) -> ZoneHourJson {
        ZoneHourJson {
            reads: self.reads,
            sales_judged: self.sales_judged,
            plated: self.plated,
            mean_confidence: self.mean_confidence(),
            other_zone: self.other_zone,
            unseen: self.unseen,
        }
    }
}

/// Per fuelling point: reads in its zones, its latest sales judged.
#[derive(Debug, Clone, Default)]
struct FpRecord {
    reads: u64,
    latest: VecDeque<Judged>,
}

#[derive(Debug, Clone)]
pub struct ZoneCheck {
    layout: Layout,
    reads: VecDeque<ZoneRead>,
    fps: BTreeMap<FpNumber, FpRecord>,
    min_read_confidence: f32,
}

impl ZoneCheck {
    pub fn new(layout: Layout, min_read_confidence: f32) -> Self {
        let mut check = ZoneCheck {
            layout: Layout { fps: Vec::new() },
            reads: VecDeque::new(),
            fps: BTreeMap::new(),
            min_read_confidence,
        };
        check.set_layout(layout);
        check
    }

    /// Zones drawn anew: reads from now on are placed by them; what was judged stays.
    pub fn set_layout(&mut self, layout: Layout) {
        for f in &layout.fps {
            self.fps.entry(f.fp).or_default();
        }
        self.layout = layout;
    }

    /// Places the frame's confident reads in the zones they fall in; returns the fuelling point
    /// of each placement.
    pub fn observe_frame(&mut self, frame: &FramePlates) -> Vec<FpNumber> {
        let mut placed = Vec::new();
        for p in &frame.plates {
            let Some((x, y)) = crate::confident_centre(p, self.min_read_confidence) else {
                continue;
            };
            for fp in self.layout.fps_at(&frame.camera, x, y) {
                self.fps.entry(fp).or_default().reads += 1;
                placed.push(fp);
                self.reads.push_back(ZoneRead {
                    t: frame.t,
                    fp,
                    text: p.text.clone(),
                });
            }
        }
        let horizon = frame.t.saturating_sub(KEEP_READS_MS);
        while self
            .reads
            .front()
            .is_some_and(|r| r.t < horizon || self.reads.len() > MAX_READS)
        {
            self.reads.pop_front();
        }
        placed
    }

    /// Judges a decided sale (corrections are not another sale). `None` when the fill's start is
    /// not known (no nozzle-out seen) or it is a correction.
    pub fn observe_matched(&mut self, m: &MatchedSale) -> Option<FillEvidence> {
        if m.correction {
            return None;
        }
        let evidence = self.evidence(m)?;
        let record = self.fps.entry(m.sale.fp).or_default();
        record.latest.push_back(Judged::of(&evidence));
        if record.latest.len() > JUDGED_SALES {
            record.latest.pop_front();
        }
        Some(evidence)
    }

    fn evidence(&self, m: &MatchedSale) -> Option<FillEvidence> {
        let start = m.fill_start?;
        let end = m.fill_end.max(start);
        let (from, to) = (start - LOOK_BEFORE_MS, end + LOOK_AFTER_MS);
        let mut zones: BTreeMap<FpNumber, Vec<CarSpan>> =
            self.layout.fps.iter().map(|f| (f.fp, Vec::new())).collect();
        let mut groups: BTreeMap<FpNumber, Vec<Vec<&ZoneRead>>> = BTreeMap::new();
        for r in self.reads.iter().filter(|r| r.t >= from && r.t <= to) {
            let cars = groups.entry(r.fp).or_default();
            match cars.iter_mut().find(|c| {
                c.iter()
                    .rev()
                    .take(6)
                    .any(|o| text_distance(&o.text, &r.text) <= SAME_CAR_DISTANCE)
            }) {
                Some(car) => car.push(r),
                None => cars.push(vec![r]),
            }
        }
        for (fp, cars) in groups {
            let mut spans: Vec<CarSpan> = cars.iter().map(|c| span(c, start, end)).collect();
            spans.sort_by(|a, b| {
                b.coverage
                    .total_cmp(&a.coverage)
                    .then(b.reads.cmp(&a.reads))
                    .then(a.text.cmp(&b.text))
            });
            zones.insert(fp, spans);
        }
        let fp = m.sale.fp;
        let stood = |f: FpNumber| {
            zones
                .get(&f)
                .is_some_and(|cars| cars.iter().any(|c| c.stood_through))
        };
        let other = zones.keys().copied().find(|&f| f != fp && stood(f));
        let own_seen = zones.get(&fp).is_some_and(|cars| !cars.is_empty());
        let fit = match (stood(fp), other) {
            (true, None) => Fit::Own,
            (true, Some(o)) => Fit::OwnAndOther(o),
            (false, Some(o)) => Fit::Other(o),
            (false, None) if own_seen => Fit::NoneStood,
            (false, None) => Fit::Unseen,
        };
        Some(FillEvidence {
            fp,
            nozzle: m.sale.nozzle,
            fill_start: start,
            fill_end: end,
            plate: m.verdict.plate.clone(),
            confidence: m.verdict.confidence,
            zones,
            fit,
        })
    }

    /// Per fuelling point of the layout (and any other judged): its figures over its latest
    /// sales, with an alarm when they say its zones are misplaced.
    pub fn report(&self) -> BTreeMap<FpNumber, FpZoneCheck> {
        let no_plate_share = |r: &FpRecord| {
            let n = r.latest.len();
            (n as u32 >= MIN_SALES_NO_PLATE)
                .then(|| r.latest.iter().filter(|j| !j.plated).count() as f64 / n as f64)
        };
        self.fps
            .iter()
            .map(|(&fp, r)| {
                let mut tally = ZoneCounters::default();
                r.latest.iter().for_each(|j| tally.judged(j));
                let (sales, other_zone, unseen) =
                    (tally.sales_judged, tally.other_zone, tally.unseen);
                let mut others: Vec<f64> = self
                    .fps
                    .iter()
                    .filter(|(&o, _)| o != fp)
                    .filter_map(|(_, o)| no_plate_share(o))
                    .collect();
                others.sort_by(f64::total_cmp);
                let others_median = (!others.is_empty()).then(|| others[others.len() / 2]);
                let alarm = alarm(
                    fp,
                    r,
                    sales,
                    other_zone,
                    unseen,
                    no_plate_share(r),
                    others_median,
                );
                (
                    fp,
                    FpZoneCheck {
                        reads: r.reads,
                        sales,
                        no_plate: sales - tally.plated,
                        mean_confidence: tally.mean_confidence(),
                        other_zone,
                        unseen,
                        alarm,
                    },
                )
            })
            .collect()
    }
}

/// What an installer's commissioning fills (`forecourt-agent commission`) say of one fuelling
/// point's zones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commissioned {
    /// A car stood through its fills in its own zones, never only in another's.
    Fits,
    /// More of its fills were stood through only by a car in another fuelling point's zones
    /// (most often `other`'s) than only in its own.
    Mismatch { other: FpNumber },
    /// Nothing decisive: cars hidden, standing in both zones, or none standing through.
    Unclear,
}

/// The verdict of a fuelling point's commissioning fills.
pub fn commissioned(fits: &[Fit]) -> Commissioned {
    let own = fits.iter().filter(|f| **f == Fit::Own).count();
    let mut others: BTreeMap<FpNumber, usize> = BTreeMap::new();
    for f in fits {
        if let Fit::Other(o) = f {
            *others.entry(*o).or_default() += 1;
        }
    }
    let other: usize = others.values().sum();
    match others.iter().max_by_key(|(_, n)| **n) {
        Some((&o, _)) if other > own => Commissioned::Mismatch { other: o },
        _ if own > 0 && other == 0 => Commissioned::Fits,
        _ => Commissioned::Unclear,
    }
}

/// The alarm for a fuelling point's latest sales, in words an installer acts on.
fn alarm(
    fp: FpNumber,
    r: &FpRecord,
    sales: u32,
    other_zone: u32,
    unseen: u32,
    no_plate_share: Option<f64>,
    others_median: Option<f64>,
) -> Option<String> {
    if sales >= MIN_UNSEEN && unseen == sales {
        return Some(format!(
            "FP {fp}'s zones read no plate during any of its last {sales} sales: are they drawn \
             where its customers stop, on the camera that sees them?"
        ));
    }
    if other_zone >= MIN_OTHER_ZONE && f64::from(other_zone) >= OTHER_ZONE_SHARE * f64::from(sales)
    {
        // The fuelling point whose zones explained the fills most often.
        let mut by: BTreeMap<FpNumber, u32> = BTreeMap::new();
        for j in &r.latest {
            if let Fit::Other(o) = j.fit {
                *by.entry(o).or_default() += 1;
            }
        }
        let (other, _) = by.iter().max_by_key(|(_, n)| **n)?;
        return Some(format!(
            "FP {fp}'s zones look misplaced: in {other_zone} of its last {sales} sales a car in FP \
             {other}'s zones stood through the fill while none in FP {fp}'s own zones did (zones of \
             FP {fp} and FP {other} swapped, or drawn on the wrong lane or camera?)"
        ));
    }
    if let (Some(share), Some(median)) = (no_plate_share, others_median) {
        if share >= NO_PLATE_SHARE && share - median >= NO_PLATE_ABOVE_OTHERS {
            return Some(format!(
                "FP {fp} gave no plate to {:.0}% of its last {sales} sales, the other fuelling \
                 points to {:.0}%: are its zones where its customers stop?",
                share * 100.0,
                median * 100.0
            ));
        }
    }
    None
}

/// `reads` (one car in one zone) as a span against the fill `start..end`.
fn span(reads: &[&ZoneRead], start: UnixMillis, end: UnixMillis) -> CarSpan {
    let first_t = reads.iter().map(|r| r.t).min().unwrap_or(start);
    let last_t = reads.iter().map(|r| r.t).max().unwrap_or(start);
    let mut texts: BTreeMap<&str, u32> = BTreeMap::new();
    for r in reads {
        *texts.entry(r.text.as_str()).or_default() += 1;
    }
    let text = texts
        .iter()
        .max_by_key(|(t, n)| (**n, std::cmp::Reverse(**t)))
        .map(|(t, _)| (*t).to_owned())
        .unwrap_or_default();
    let length = (end - start).max(1);
    let covered = (last_t.min(end) - first_t.max(start)).max(0);
    CarSpan {
        text,
        first_t,
        last_t,
        reads: reads.len() as u32,
        coverage: round3((covered as f64 / length as f64).min(1.0)),
        stood_through: first_t <= start + PRESENT_SLACK_MS && last_t >= end - PRESENT_SLACK_MS,
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use forecourt_events::{PlateRead, Sale, SaleMatch};
    use matcher::{FpLayout, Zone};

    use super::*;

    /// Two lanes side by side on one camera: FP 1 left, FP 2 right (or swapped).
    fn lanes(swapped: bool) -> Layout {
        let left = vec![[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]];
        let right = vec![[0.5, 0.0], [1.0, 0.0], [1.0, 1.0], [0.5, 1.0]];
        let (one, two) = if swapped {
            (right, left)
        } else {
            (left, right)
        };
        let zone = |polygon| {
            vec![Zone {
                camera: "cam".into(),
                polygon,
            }]
        };
        Layout {
            fps: vec![
                FpLayout {
                    fp: 1,
                    zones: zone(one),
                },
                FpLayout {
                    fp: 2,
                    zones: zone(two),
                },
            ],
        }
    }

    /// A car in the left (x 0.25) or right (x 0.75) lane, read every 250 ms from `from` to `to`
    /// (seconds).
    struct Car {
        text: &'static str,
        x: f32,
        from: f64,
        to: f64,
    }

    fn frames(cars: &[Car], until: f64) -> Vec<FramePlates> {
        (0..=(until * 4.0) as i64)
            .map(|i| {
                let s = i as f64 / 4.0;
                FramePlates {
                    t: (s * 1000.0) as i64,
                    camera: "cam".into(),
                    plates: cars
                        .iter()
                        .filter(|c| s >= c.from && s <= c.to)
                        .map(|c| PlateRead {
                            text: c.text.into(),
                            confidence: 0.97,
                            bbox: [c.x - 0.05, 0.5, c.x + 0.05, 0.55],
                        })
                        .collect(),
                }
            })
            .collect()
    }

    fn sold(fp: FpNumber, start: f64, end: f64, plate: Option<&str>) -> MatchedSale {
        let ms = |s: f64| (s * 1000.0) as i64;
        MatchedSale {
            sale: Sale {
                t: ms(end),
                fp,
                nozzle: 1,
                nozzle_out_t: Some(ms(start)),
                grade: None,
                volume: "30.00".parse().unwrap(),
                amount: "235.50".parse().unwrap(),
                price: "7.85".parse().unwrap(),
                end: None,
                recovered: false,
                totalizer: None,
                source_key: None,
            },
            fill_start: Some(ms(start)),
            fill_end: ms(end),
            verdict: SaleMatch {
                plate: plate.map(str::to_owned),
                confidence: if plate.is_some() { 0.99 } else { 0.0 },
                reason: String::new(),
            },
            candidate: None,
            runner_up: None,
            correction: false,
        }
    }

    /// The demo station's minute, repeated: each lane's car arrives a few seconds after the other
    /// lane's nozzle was lifted, so a swapped zone's car is there for most of the wrong fill.
    /// Plates repeat each minute with the loop, as in the demo video.
    fn station(swapped: bool, minutes: usize) -> (ZoneCheck, Vec<FillEvidence>) {
        let mut cars = Vec::new();
        let mut fills = Vec::new();
        for m in 0..minutes {
            let o = 60.0 * m as f64;
            // Read last 1.5 s before FP 2's hang-up, as in a recorded demo trace.
            cars.push(Car {
                text: "苏E05EV8",
                x: 0.25,
                from: o + 2.7,
                to: o + 24.9,
            });
            cars.push(Car {
                text: "京A12345",
                x: 0.75,
                from: o + 9.8,
                to: o + 33.3,
            });
            cars.push(Car {
                text: "粤B3C9D7",
                x: 0.25,
                from: o + 31.8,
                to: o + 55.3,
            });
            cars.push(Car {
                text: "浙AD12345",
                x: 0.75,
                from: o + 38.6,
                to: o + 58.3,
            });
            fills.push((1, o + 6.5, o + 18.4));
            fills.push((2, o + 13.4, o + 26.4));
            fills.push((1, o + 35.4, o + 48.5));
            fills.push((2, o + 41.5, o + 52.4));
        }
        let mut check = ZoneCheck::new(lanes(swapped), 0.85);
        let mut evidence = Vec::new();
        let all = frames(&cars, 60.0 * minutes as f64);
        // Each sale is judged 3 s after its hang-up (the matcher's grace), with the frames seen.
        let mut pending: Vec<(FpNumber, f64, f64)> = fills.clone();
        pending.sort_by(|a, b| a.2.total_cmp(&b.2));
        let mut next = 0;
        for f in &all {
            check.observe_frame(f);
            while next < pending.len() && ((pending[next].2 + 3.0) * 1000.0) as i64 <= f.t {
                let (fp, start, end) = pending[next];
                evidence.extend(check.observe_matched(&sold(fp, start, end, Some("京A12345"))));
                next += 1;
            }
        }
        (check, evidence)
    }

    #[test]
    fn zones_where_the_cars_stand_fit_every_fill_and_raise_no_alarm() {
        let (check, evidence) = station(false, 3);
        assert_eq!(evidence.len(), 12);
        assert!(
            evidence
                .iter()
                .all(|e| matches!(e.fit, Fit::Own | Fit::OwnAndOther(_))),
            "{evidence:#?}"
        );
        let first = &evidence[0];
        assert_eq!(first.fp, 1);
        let car = first.best_in(1).unwrap();
        assert_eq!((car.text.as_str(), car.stood_through), ("苏E05EV8", true));
        assert!(check.report().values().all(|r| r.alarm.is_none()));
    }

    #[test]
    fn swapped_zones_show_the_other_lanes_car_standing_through_and_raise_the_alarm() {
        let (check, evidence) = station(true, 3);
        // FP 1's zone (the right lane) only sees cars that arrive after its nozzle-out.
        let fp1: Vec<Fit> = evidence
            .iter()
            .filter(|e| e.fp == 1)
            .map(|e| e.fit)
            .collect();
        assert!(fp1.iter().all(|f| *f == Fit::Other(2)), "{fp1:?}");
        let report = check.report();
        let alarm = report[&1].alarm.as_deref().expect("FP 1's alarm");
        assert!(alarm.contains("FP 1") && alarm.contains("FP 2"), "{alarm}");
        assert_eq!(report[&1].other_zone, report[&1].sales);
        // FP 2's zone (the left lane) loses its car a second before half of FP 2's hang-ups.
        assert!(report[&2].other_zone >= 3, "{:?}", report[&2]);
    }

    #[test]
    fn the_alarm_needs_several_sales_not_one() {
        let (check, evidence) = station(true, 1);
        assert_eq!(evidence.iter().filter(|e| e.fp == 1).count(), 2);
        assert!(check.report().values().all(|r| r.alarm.is_none()));
    }

    #[test]
    fn zones_that_read_nothing_during_the_fills_raise_their_own_alarm() {
        let mut check = ZoneCheck::new(lanes(false), 0.85);
        // Cars only ever in the left lane; FP 2 sells five times.
        let cars: Vec<Car> = (0..5)
            .map(|i| Car {
                text: "苏E05EV8",
                x: 0.25,
                from: 60.0 * i as f64,
                to: 60.0 * i as f64 + 40.0,
            })
            .collect();
        for f in frames(&cars, 300.0) {
            check.observe_frame(&f);
        }
        for i in 0..5 {
            let o = 60.0 * i as f64;
            // Judged late: every read is in by then (the reads are kept for 15 minutes).
            let e = check
                .observe_matched(&sold(2, o + 10.0, o + 20.0, None))
                .unwrap();
            // The left lane's car stood through it: FP 1's zones explain the fill.
            assert_eq!(e.fit, Fit::Other(1));
            assert!(e.zones[&2].is_empty());
        }
        let report = check.report();
        assert!(report[&2]
            .alarm
            .as_deref()
            .unwrap()
            .contains("read no plate"));
        assert_eq!(
            (report[&2].sales, report[&2].no_plate, report[&2].unseen),
            (5, 5, 5)
        );
        assert_eq!(report[&2].reads, 0);
        assert!(report[&1].reads > 0);
    }

    #[test]
    fn commissioning_fills_say_fits_mismatch_or_unclear() {
        use Fit::*;
        assert_eq!(commissioned(&[Own, OwnAndOther(2)]), Commissioned::Fits);
        assert_eq!(
            commissioned(&[Other(2), OwnAndOther(2)]),
            Commissioned::Mismatch { other: 2 }
        );
        assert_eq!(
            commissioned(&[Other(3), Other(2), Other(3), Own]),
            Commissioned::Mismatch { other: 3 }
        );
        assert_eq!(commissioned(&[Own, Other(2)]), Commissioned::Unclear);
        assert_eq!(
            commissioned(&[OwnAndOther(2), NoneStood, Unseen]),
            Commissioned::Unclear
        );
        assert_eq!(commissioned(&[]), Commissioned::Unclear);
    }

    #[test]
    fn a_fill_without_a_nozzle_out_and_a_correction_are_not_judged() {
        let mut check = ZoneCheck::new(lanes(false), 0.85);
        let mut m = sold(1, 0.0, 10.0, None);
        m.fill_start = None;
        assert!(check.observe_matched(&m).is_none());
        let mut m = sold(1, 0.0, 10.0, None);
        m.correction = true;
        assert!(check.observe_matched(&m).is_none());
        assert_eq!(check.report()[&1].sales, 0);
    }
}
