//! Seeded forecourt scenarios written as match traces (the format `matcher::trace` reads) plus
//! ground truth, with the hard cases of the "Matching" issue: both sides of an island busy, queues
//! visible behind the car at the pump, a car arriving while the previous one leaves, the nozzle
//! lifted before the car stops, long occlusions, per-frame misreads, sales without a readable
//! plate, one car at two nozzles, camera frame drops, and two FPs seen by one camera at a steep
//! angle. Same seed, same bytes.
//!
//! # Domain-randomised scenarios
//!
//! [`generate`] draws everything on one fixed station, so a matcher tuned on it learns that
//! station. [`generate_randomised`] draws the station too: 1-4 islands with a bay on each side,
//! pinhole cameras per island or per pair of facing lanes (some reading rear plates) at drawn
//! positions, heights and lenses, and hand-drawn zones (jittered 4-6 point polygons that often
//! reach back over the queue and are sometimes too small). Plate boxes follow from projecting
//! the plate, so size and image position follow from distance. Behaviour (arrival rates and
//! rushes, queues, early nozzle lifts, double sales, motorbikes and jerry cans, cross-side fills,
//! off-zone stops, lookalike fleet plates, occlusions by people and by other cars, camera
//! outages and frame drops) and the reader (per-character confusions that grow as plates get
//! small, smeared characters, unreadable plates, garbage, biased and noisy confidence) are drawn
//! from the ranges of a named [`Family`] ([`FAMILIES`]). Families marked `held_out` are never to
//! be used for tuning. Each sale's truth carries the [`CASES`] that apply. Same family and seed,
//! same bytes. `examples/eval_families.rs` scores the matcher per family; `write_families.rs`
//! writes the traces and truth to folders for other scorers.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod families;
mod plate_text;
mod randomised;
mod rng;
pub mod station;

use std::collections::BTreeSet;
use std::io::{self, Write};

use forecourt_events::{Decimal, FpNumber, UnixMillis};
use matcher::{FpLayout, Layout, TracePlate, TraceRecord, TraceWriter, TruthLine, Zone};

pub use families::{family, Family, Span, FAMILIES};
pub use plate_text::{is_valid_plate, random_plate, MisreadProfile};
pub use randomised::{generate_randomised, RandomisedScenario, SaleTruth, CASES};
pub use rng::Rng;

#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioConfig {
    pub seed: u64,
    /// Sales to generate (spread over the four fuelling points; a few more may come out).
    pub sales: usize,
    /// Frame period of every camera, ms (the plate reader's rate).
    pub frame_ms: i64,
    pub motorbike_share: f64,
    pub jerry_can_share: f64,
    pub two_nozzle_share: f64,
    pub early_lift_share: f64,
    /// Mean time between arrivals at one fuelling point, s (lower: more queues).
    pub mean_arrival_gap_s: f64,
    pub camera: CameraModel,
}

/// How the cameras and the plate reader behave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CameraModel {
    /// Dropped frames and outages, detector jitter, motion blur, occlusions, misreads, dirty
    /// plates, garbage reads of motorbike plates: what the matcher is measured on.
    #[default]
    Realistic,
    /// Every frame of every camera arrives, and every plate in view is read right (confidence
    /// 0.95, no jitter); customers without a plate give no reads. With it, the camera-derived
    /// analytics have an exact ground truth: a car is first and last read in a zone exactly when
    /// [`TruthVisit::zone_reads`] says.
    Ideal,
}

impl ScenarioConfig {
    pub fn new(seed: u64, sales: usize) -> Self {
        ScenarioConfig {
            seed,
            sales,
            frame_ms: 500,
            motorbike_share: 0.04,
            jerry_can_share: 0.03,
            two_nozzle_share: 0.06,
            early_lift_share: 0.15,
            mean_arrival_gap_s: 150.0,
            camera: CameraModel::Realistic,
        }
    }
}

/// What came out of one scenario.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScenarioSummary {
    pub sales: usize,
    pub frames: usize,
    pub plate_reads: usize,
}

/// One camera's view of one fuelling point's lane (normalised image coordinates).
struct View {
    camera: &'static str,
    fp: FpNumber,
    zone: Vec<[f32; 2]>,
    stop: (f64, f64),
    /// Where along the lane cars stop varies by this much either way.
    stop_spread: (f64, f64),
    /// Where the next car waits, visible behind (or in front of) the one at the pump.
    queue: (f64, f64),
    exit: (f64, f64),
    /// Box size at the pump.
    box_size: (f64, f64),
    /// Box centre noise (px jitter of the detector), normalised.
    jitter: f64,
    /// Misread multiplier (steep angles and small plates read worse).
    quality: f64,
}

fn quad(points: [[f32; 2]; 4]) -> Vec<[f32; 2]> {
    points.to_vec()
}

/// Island A (FP1, FP2) is seen from the front by cam1 and from behind by cam2; island B (FP3,
/// FP4) by cam3 at a steep angle (both lanes in one image, sharing a zone edge) and FP4 also
/// from the front by cam4.
fn views() -> Vec<View> {
    vec![
        View {
            camera: "cam1",
            fp: 1,
            zone: quad([[0.02, 0.55], [0.48, 0.55], [0.48, 0.98], [0.02, 0.98]]),
            stop: (0.25, 0.75),
            stop_spread: (0.02, 0.08),
            queue: (0.27, 0.43),
            exit: (0.22, 1.15),
            box_size: (0.12, 0.05),
            jitter: 0.004,
            quality: 1.0,
        },
        View {
            camera: "cam1",
            fp: 2,
            zone: quad([[0.52, 0.55], [0.98, 0.55], [0.98, 0.98], [0.52, 0.98]]),
            stop: (0.75, 0.75),
            stop_spread: (0.02, 0.08),
            queue: (0.73, 0.43),
            exit: (0.78, 1.15),
            box_size: (0.12, 0.05),
            jitter: 0.004,
            quality: 1.0,
        },
        View {
            camera: "cam2",
            fp: 1,
            zone: quad([[0.52, 0.35], [0.98, 0.35], [0.98, 0.85], [0.52, 0.85]]),
            stop: (0.74, 0.58),
            stop_spread: (0.02, 0.07),
            queue: (0.72, 0.94),
            exit: (0.76, -0.15),
            box_size: (0.11, 0.045),
            jitter: 0.005,
            quality: 1.2,
        },
        View {
            camera: "cam2",
            fp: 2,
            zone: quad([[0.02, 0.35], [0.48, 0.35], [0.48, 0.85], [0.02, 0.85]]),
            stop: (0.26, 0.58),
            stop_spread: (0.02, 0.07),
            queue: (0.28, 0.94),
            exit: (0.24, -0.15),
            box_size: (0.11, 0.045),
            jitter: 0.005,
            quality: 1.2,
        },
        View {
            camera: "cam3",
            fp: 3,
            zone: quad([[0.05, 0.56], [0.62, 0.43], [0.68, 0.64], [0.10, 0.80]]),
            stop: (0.38, 0.57),
            stop_spread: (0.09, -0.02),
            queue: (0.80, 0.52),
            exit: (-0.15, 0.70),
            box_size: (0.06, 0.025),
            jitter: 0.01,
            quality: 1.8,
        },
        View {
            camera: "cam3",
            fp: 4,
            zone: quad([[0.08, 0.33], [0.58, 0.22], [0.62, 0.43], [0.05, 0.56]]),
            stop: (0.34, 0.43),
            stop_spread: (0.08, -0.02),
            queue: (0.76, 0.30),
            exit: (-0.15, 0.45),
            box_size: (0.05, 0.02),
            jitter: 0.01,
            quality: 1.8,
        },
        View {
            camera: "cam4",
            fp: 4,
            zone: quad([[0.2, 0.45], [0.8, 0.45], [0.8, 0.97], [0.2, 0.97]]),
            stop: (0.5, 0.7),
            stop_spread: (0.02, 0.07),
            queue: (0.5, 0.33),
            exit: (0.5, 1.15),
            box_size: (0.12, 0.05),
            jitter: 0.004,
            quality: 1.0,
        },
    ]
}

const CAMERAS: [&str; 4] = ["cam1", "cam2", "cam3", "cam4"];
const FPS: [FpNumber; 4] = [1, 2, 3, 4];

/// The other side of the same island.
fn island_neighbour(fp: FpNumber) -> FpNumber {
    match fp {
        1 => 2,
        2 => 1,
        3 => 4,
        _ => 3,
    }
}

/// The station layout the scenarios use.
pub fn station_layout() -> Layout {
    let views = views();
    Layout {
        fps: FPS
            .iter()
            .map(|&fp| FpLayout {
                fp,
                zones: views
                    .iter()
                    .filter(|v| v.fp == fp)
                    .map(|v| Zone {
                        camera: v.camera.into(),
                        polygon: v.zone.clone(),
                    })
                    .collect(),
            })
            .collect(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Customer {
    Car,
    TwoNozzleCar,
    Motorbike,
    JerryCan,
}

#[derive(Debug, Clone)]
struct SaleSpec {
    nozzle: u8,
    out_s: f64,
    in_s: f64,
    sale_s: f64,
    volume_centilitres: i64,
    cases: BTreeSet<&'static str>,
}

/// One customer at one fuelling point, times in seconds from the scenario start.
struct Visit {
    fp: FpNumber,
    customer: Customer,
    plate: Option<String>,
    misreads: Option<MisreadProfile>,
    /// Appears at the queue position (equals `approach_s` when nobody was ahead).
    queue_s: f64,
    approach_s: f64,
    stop_s: f64,
    leave_s: f64,
    gone_s: f64,
    /// -1..1 along the lane: where exactly this car stopped.
    stop_offset: f64,
    /// Per camera (index in CAMERAS): read probability and an occlusion (person, hose, car).
    read_rate: [f64; 4],
    occlusion: [Option<(f64, f64)>; 4],
    sales: Vec<SaleSpec>,
    /// When the plate was read right, in the zone, while the car stood at the pump (decides
    /// `readable`).
    correct_reads: Vec<f64>,
    /// First and last read of the plate (any text) inside any fuelling point's zone.
    zone_reads: Option<(UnixMillis, UnixMillis)>,
}

impl Visit {
    /// Where the plate is in `view` at `t`, and whether the car is standing still.
    fn position(&self, view: &View, t: f64) -> Option<((f64, f64), bool)> {
        if t < self.queue_s || t >= self.gone_s {
            return None;
        }
        let stop = (
            view.stop.0 + self.stop_offset * view.stop_spread.0,
            view.stop.1 + self.stop_offset * view.stop_spread.1,
        );
        let lerp = |a: (f64, f64), b: (f64, f64), k: f64| {
            let k = k.clamp(0.0, 1.0);
            let k = k * k * (3.0 - 2.0 * k); // smooth start and stop
            (a.0 + (b.0 - a.0) * k, a.1 + (b.1 - a.1) * k)
        };
        Some(if t < self.approach_s {
            (view.queue, true)
        } else if t < self.stop_s {
            let k = (t - self.approach_s) / (self.stop_s - self.approach_s);
            (lerp(view.queue, stop, k), false)
        } else if t < self.leave_s {
            (stop, true)
        } else {
            let k = (t - self.leave_s) / (self.gone_s - self.leave_s);
            (lerp(stop, view.exit, k), false)
        })
    }
}

/// Plans the customers of one fuelling point.
fn plan_lane(fp: FpNumber, sales: usize, config: &ScenarioConfig, rng: &mut Rng) -> Vec<Visit> {
    let mut visits: Vec<Visit> = Vec::new();
    let mut arrival = rng.range(0.0, 60.0);
    let mut planned = 0;
    while planned < sales {
        let (prev_approach, prev_leave, prev_gone) =
            visits.last().map_or((f64::MIN, f64::MIN, f64::MIN), |v| {
                (v.approach_s, v.leave_s, v.gone_s)
            });
        // At most one car waits: a later one stays out of sight.
        let queue_s = arrival.max(prev_approach + 1.0);
        // The next car may start in while the previous one is still pulling out.
        let approach_s = queue_s.max(prev_leave + rng.range(-0.5, 2.5));
        let stop_s = approach_s + rng.range(3.0, 6.0);
        let roll = rng.unit();
        let customer = if roll < config.motorbike_share {
            Customer::Motorbike
        } else if roll < config.motorbike_share + config.jerry_can_share {
            Customer::JerryCan
        } else if roll < config.motorbike_share + config.jerry_can_share + config.two_nozzle_share {
            Customer::TwoNozzleCar
        } else {
            Customer::Car
        };
        let mut cases = BTreeSet::new();
        let early = rng.chance(config.early_lift_share);
        let out_s = if early {
            cases.insert("early_lift");
            stop_s - rng.range(0.5, 2.5)
        } else {
            stop_s + rng.range(3.0, 20.0)
        };
        if approach_s < prev_gone {
            cases.insert("arrive_while_leaving");
        }
        match customer {
            Customer::Motorbike => {
                cases.insert("no_plate_motorbike");
            }
            Customer::JerryCan => {
                cases.insert("no_plate_jerry_can");
            }
            Customer::TwoNozzleCar => {
                cases.insert("two_nozzles");
            }
            Customer::Car => {}
        }
        let flow = rng.range(0.35, 0.7); // litres per second
        let first_nozzle = 1 + rng.below(3) as u8;
        let mut sale_specs = Vec::new();
        let fill_s = match customer {
            Customer::JerryCan | Customer::Motorbike => rng.range(15.0, 45.0),
            _ => rng.range(25.0, 150.0),
        };
        let in_s = out_s + fill_s;
        sale_specs.push(SaleSpec {
            nozzle: first_nozzle,
            out_s,
            in_s,
            sale_s: in_s + rng.range(0.3, 1.5),
            volume_centilitres: (fill_s * flow * 100.0).round() as i64,
            cases: cases.clone(),
        });
        if customer == Customer::TwoNozzleCar {
            let out2 = in_s + rng.range(4.0, 15.0);
            let fill2 = rng.range(15.0, 60.0);
            let mut cases2 = cases.clone();
            cases2.remove("early_lift");
            sale_specs.push(SaleSpec {
                nozzle: 1 + (first_nozzle % 3),
                out_s: out2,
                in_s: out2 + fill2,
                sale_s: out2 + fill2 + rng.range(0.3, 1.5),
                volume_centilitres: (fill2 * flow * 100.0).round() as i64,
                cases: cases2,
            });
        }
        let last_in = sale_specs.last().map_or(in_s, |s| s.in_s);
        let leave_s = last_in + rng.range(4.0, 40.0);
        let gone_s = leave_s + rng.range(3.0, 5.0);
        let has_plate = matches!(customer, Customer::Car | Customer::TwoNozzleCar);
        let plate = has_plate.then(|| random_plate(rng));
        let misreads = plate.as_ref().map(|p| MisreadProfile::random(p, rng));
        // A dirty or bent plate now and then reads badly on every camera.
        let dirty = rng.chance(0.06);
        let mut read_rate = [0.0; 4];
        let mut occlusion = [None; 4];
        for camera in 0..CAMERAS.len() {
            read_rate[camera] = if dirty {
                rng.range(0.02, 0.25)
            } else {
                rng.range(0.35, 0.95)
            };
            if rng.chance(0.3) {
                let from = rng.range(stop_s, leave_s);
                occlusion[camera] = Some((from, from + rng.range(15.0, 120.0)));
            }
        }
        planned += sale_specs.len();
        visits.push(Visit {
            fp,
            customer,
            plate,
            misreads,
            queue_s,
            approach_s,
            stop_s,
            leave_s,
            gone_s,
            stop_offset: rng.range(-1.0, 1.0),
            read_rate,
            occlusion,
            sales: sale_specs,
            correct_reads: Vec::new(),
            zone_reads: None,
        });
        arrival += rng.exponential(config.mean_arrival_gap_s).max(5.0);
    }
    visits
}

/// Tags the cases that depend on other visits: queue behind, both sides busy, occlusions.
fn tag_cross_cases(visits: &mut [Visit]) {
    let fills: Vec<(FpNumber, f64, f64)> = visits
        .iter()
        .flat_map(|v| v.sales.iter().map(|s| (v.fp, s.out_s, s.in_s)))
        .collect();
    let queues: Vec<(FpNumber, f64, f64)> = visits
        .iter()
        .filter(|v| v.approach_s - v.queue_s > 1.0)
        .map(|v| (v.fp, v.queue_s, v.approach_s))
        .collect();
    for v in visits.iter_mut() {
        let fp = v.fp;
        let occluded: Vec<(f64, f64)> = v.occlusion.iter().flatten().copied().collect();
        for s in &mut v.sales {
            let overlaps = |a: f64, b: f64| a < s.in_s && b > s.out_s;
            if fills
                .iter()
                .any(|&(f, a, b)| f == island_neighbour(fp) && overlaps(a, b))
            {
                s.cases.insert("both_sides_busy");
            }
            if queues.iter().any(|&(f, a, b)| f == fp && overlaps(a, b)) {
                s.cases.insert("queue_behind");
            }
            if occluded
                .iter()
                .any(|&(a, b)| b.min(s.in_s) - a.max(s.out_s) > 10.0)
            {
                s.cases.insert("occluded");
            }
            if fp >= 3 {
                s.cases.insert("steep_two_fps");
            }
        }
    }
}

/// Writes `records` as a trace after `layout`, sorted by time; the sort is stable, so records of
/// equal time keep the order they were made in.
fn write_trace(
    trace: impl Write,
    layout: &Layout,
    mut records: Vec<(UnixMillis, TraceRecord)>,
) -> io::Result<()> {
    records.sort_by_key(|(t, _)| *t);
    let trace_error = |e: matcher::TraceError| io::Error::other(e.to_string());
    let mut writer = TraceWriter::new(trace, layout, 0).map_err(trace_error)?;
    for (_, record) in records {
        writer.push(record).map_err(trace_error)?;
    }
    writer.finish().map_err(trace_error)?;
    Ok(())
}

/// One fill of a [`TruthVisit`], exactly as the trace's nozzle and sale records give it.
#[derive(Debug, Clone, PartialEq)]
pub struct TruthFill {
    pub nozzle: u8,
    pub nozzle_out_t: UnixMillis,
    pub nozzle_in_t: UnixMillis,
    pub sale_t: UnixMillis,
    pub volume: Decimal,
    pub amount: Decimal,
}

/// Ground truth for one customer at one fuelling point (for edge analytics): when it came, was
/// served and left, in trace time.
#[derive(Debug, Clone, PartialEq)]
pub struct TruthVisit {
    pub fp: FpNumber,
    /// `None` for motorbikes and jerry cans.
    pub plate: Option<String>,
    /// First visible at the queue position (equals `approach_t` when nobody was ahead).
    pub queue_t: UnixMillis,
    /// Starts driving up to the pump.
    pub approach_t: UnixMillis,
    /// Stands at the pump.
    pub stop_t: UnixMillis,
    /// Starts pulling out.
    pub leave_t: UnixMillis,
    /// Out of every camera's view.
    pub gone_t: UnixMillis,
    /// The first and the last frame in which its plate was read (right or not) with the box
    /// centre inside a fuelling point's zone; `None`: never. With [`CameraModel::Ideal`], when the
    /// car entered and left the zones as the cameras sampled it.
    pub zone_reads: Option<(UnixMillis, UnixMillis)>,
    /// In time order.
    pub fills: Vec<TruthFill>,
}

/// Writes one scenario: the trace (layout first, records sorted by time) and one ground-truth
/// line per sale (`matcher::TruthLine`, `ref` s1, s2, ... in sale order).
pub fn generate(
    config: &ScenarioConfig,
    trace: impl Write,
    truth: impl Write,
) -> io::Result<ScenarioSummary> {
    generate_with_visits(config, trace, truth).map(|(summary, _)| summary)
}

/// [`generate`], also giving every visit (customer) of the scenario, sorted by `queue_t` then FP.
pub fn generate_with_visits(
    config: &ScenarioConfig,
    trace: impl Write,
    mut truth: impl Write,
) -> io::Result<(ScenarioSummary, Vec<TruthVisit>)> {
    let mut rng = Rng::new(config.seed);
    let views = views();
    let layout = station_layout();
    let start_ms: UnixMillis = 1_700_000_000_000 + (config.seed % 1000) as i64 * 86_400_000;
    let per_lane = config.sales.div_ceil(FPS.len());
    let mut visits: Vec<Visit> = Vec::new();
    for fp in FPS {
        let mut lane_rng = Rng::new(rng.next_u64());
        visits.extend(plan_lane(fp, per_lane, config, &mut lane_rng));
    }
    tag_cross_cases(&mut visits);
    visits.sort_by(|a, b| a.queue_s.total_cmp(&b.queue_s).then(a.fp.cmp(&b.fp)));
    let end_s = visits.iter().map(|v| v.gone_s).fold(0.0, f64::max) + 30.0;
    let to_ms = |s: f64| start_ms + (s * 1000.0).round() as i64;

    let mut records: Vec<(UnixMillis, TraceRecord)> = Vec::new();
    let mut summary = ScenarioSummary::default();
    // Frames: each camera on its own clock, with single drops and longer outages.
    let mut frame_rng = Rng::new(rng.next_u64());
    let mut drops: Vec<(usize, f64, f64)> = Vec::new();
    let ideal = config.camera == CameraModel::Ideal;
    for (camera_idx, camera) in CAMERAS.iter().enumerate() {
        let camera_views: Vec<&View> = views.iter().filter(|v| v.camera == *camera).collect();
        let mut t_ms = start_ms + 37 * camera_idx as i64;
        let mut outage_until = f64::MIN;
        let mut first_active = 0;
        while t_ms < to_ms(end_s) {
            let t = (t_ms - start_ms) as f64 / 1000.0;
            t_ms += config.frame_ms + frame_rng.below(20) as i64;
            if t < outage_until {
                continue;
            }
            if !ideal && frame_rng.chance(config.frame_ms as f64 / 600_000.0) {
                outage_until = t + frame_rng.range(2.0, 25.0);
                drops.push((camera_idx, t, outage_until));
                continue;
            }
            if !ideal && frame_rng.chance(0.03) {
                continue;
            }
            while first_active < visits.len() && visits[first_active].gone_s + 600.0 < t {
                first_active += 1;
            }
            let mut plates = Vec::new();
            // Which lanes have a car standing at the pump now (for occlusion between cars).
            let stopped_at = |fp: FpNumber, visits: &[Visit]| {
                visits[first_active..]
                    .iter()
                    .take_while(|v| v.queue_s <= t)
                    .any(|v| v.fp == fp && t >= v.stop_s && t < v.leave_s)
            };
            let queued_at = |fp: FpNumber, visits: &[Visit]| {
                visits[first_active..]
                    .iter()
                    .take_while(|v| v.queue_s <= t)
                    .any(|v| v.fp == fp && t >= v.queue_s && t < v.approach_s)
            };
            for vi in first_active..visits.len() {
                if visits[vi].queue_s > t {
                    break;
                }
                for view in &camera_views {
                    let visit = &visits[vi];
                    if view.fp != visit.fp {
                        continue;
                    }
                    let Some(((x, y), still)) = visit.position(view, t) else {
                        continue;
                    };
                    let jitter = if ideal { 0.0 } else { view.jitter };
                    let x = x + frame_rng.normal() * jitter;
                    let y = y + frame_rng.normal() * jitter;
                    if !(0.01..=0.99).contains(&x) || !(0.01..=0.99).contains(&y) {
                        continue;
                    }
                    let waiting = t < visit.approach_s;
                    let scale = if waiting { 0.6 } else { 1.0 };
                    let (w, h) = (view.box_size.0 * scale, view.box_size.1 * scale);
                    let bbox = [
                        (x - w / 2.0) as f32,
                        (y - h / 2.0) as f32,
                        (x + w / 2.0) as f32,
                        (y + h / 2.0) as f32,
                    ];
                    let Some(plate) = &visit.plate else {
                        // A motorbike's small plate now and then gives a garbage read.
                        if !ideal && visit.customer == Customer::Motorbike && frame_rng.chance(0.15)
                        {
                            let garbage: String = (0..3 + frame_rng.below(3))
                                .map(|_| char::from(b'A' + frame_rng.below(26) as u8))
                                .collect();
                            plates.push(TracePlate {
                                text: garbage,
                                conf: frame_rng.range(0.2, 0.5) as f32,
                                bbox,
                            });
                        }
                        continue;
                    };
                    let mut rate = visit.read_rate[camera_idx];
                    if !still {
                        rate *= 0.6; // motion blur
                    }
                    if waiting {
                        rate *= 0.7; // far, small
                    }
                    if visit.occlusion[camera_idx].is_some_and(|(a, b)| t >= a && t < b) {
                        rate = 0.0;
                    }
                    // From behind, a waiting car hides the rear plate of the one at the pump;
                    // at the steep angle, a car at FP3 hides most of the one at FP4.
                    if *camera == "cam2" && !waiting && queued_at(visit.fp, &visits) {
                        rate *= 0.2;
                    }
                    if *camera == "cam3" && visit.fp == 4 && stopped_at(3, &visits) {
                        rate *= 0.3;
                    }
                    let (text, conf) = if ideal {
                        (plate.clone(), 0.95)
                    } else {
                        if !frame_rng.chance(rate) {
                            continue;
                        }
                        let quality = view.quality * if still { 1.0 } else { 1.5 };
                        let profile = visit.misreads.as_ref().expect("plated visits have one");
                        let text = profile.read(plate, quality, &mut frame_rng);
                        let conf = if text == *plate {
                            0.75 + 0.24 * frame_rng.unit().sqrt()
                        } else {
                            0.5 + 0.45 * frame_rng.unit()
                        };
                        (text, conf)
                    };
                    let correct = text == *plate;
                    let in_zone = matcher::Zone {
                        camera: String::new(),
                        polygon: view.zone.clone(),
                    }
                    .contains(x as f32, y as f32);
                    if correct && in_zone && t >= visit.stop_s && t < visit.leave_s {
                        visits[vi].correct_reads.push(t);
                    }
                    // In any zone, as the agent maps the box centre (from the f32 box, as it does).
                    let (cx, cy) = ((bbox[0] + bbox[2]) / 2.0, (bbox[1] + bbox[3]) / 2.0);
                    if layout.fps_at(camera, cx, cy).next().is_some() {
                        let read_t = to_ms(t);
                        let span = visits[vi].zone_reads.get_or_insert((read_t, read_t));
                        span.0 = span.0.min(read_t);
                        span.1 = span.1.max(read_t);
                    }
                    plates.push(TracePlate {
                        text,
                        conf: conf as f32,
                        bbox,
                    });
                }
            }
            summary.frames += 1;
            summary.plate_reads += plates.len();
            records.push((
                to_ms(t),
                TraceRecord::Frame {
                    t: to_ms(t),
                    camera: (*camera).to_string(),
                    plates,
                },
            ));
        }
    }
    // Pump events and sales.
    let mut sales: Vec<(UnixMillis, FpNumber, TruthLine, TraceRecord)> = Vec::new();
    for v in &visits {
        for s in &v.sales {
            records.push((
                to_ms(s.out_s),
                TraceRecord::Nozzle {
                    t: to_ms(s.out_s),
                    fp: v.fp,
                    nozzle: s.nozzle,
                    state: matcher::NozzleState::Out,
                },
            ));
            records.push((
                to_ms(s.in_s),
                TraceRecord::Nozzle {
                    t: to_ms(s.in_s),
                    fp: v.fp,
                    nozzle: s.nozzle,
                    state: matcher::NozzleState::In,
                },
            ));
            let mut cases: BTreeSet<&str> = s.cases.clone();
            if drops.iter().any(|&(camera, a, b)| {
                views
                    .iter()
                    .any(|view| view.fp == v.fp && view.camera == CAMERAS[camera])
                    && a < s.in_s
                    && b > s.out_s
            }) {
                cases.insert("frame_drop");
            }
            let price = Decimal::new(785, 2);
            let amount = (s.volume_centilitres * 785 + 50) / 100;
            sales.push((
                to_ms(s.sale_s),
                v.fp,
                TruthLine {
                    sale_ref: String::new(),
                    plate: v.plate.clone(),
                    // Readable: the plate was read right at least 3 times while the car stood
                    // at the pump before the matcher can decide (sale + its 5 s grace).
                    readable: v.plate.is_some()
                        && v.correct_reads
                            .iter()
                            .filter(|&&t| t <= s.sale_s + 5.0)
                            .count()
                            >= 3,
                    cases: cases.iter().map(|c| c.to_string()).collect(),
                },
                TraceRecord::Sale {
                    t: to_ms(s.sale_s),
                    fp: v.fp,
                    nozzle: s.nozzle,
                    volume: Decimal::new(s.volume_centilitres, 2),
                    amount: Decimal::new(amount, 2),
                    price,
                    sale_ref: None,
                },
            ));
        }
    }
    sales.sort_by_key(|(t, fp, _, _)| (*t, *fp));
    for (n, (t, _, mut truth_line, mut record)) in sales.into_iter().enumerate() {
        let sale_ref = format!("s{}", n + 1);
        if let TraceRecord::Sale { sale_ref: r, .. } = &mut record {
            *r = Some(sale_ref.clone());
        }
        truth_line.sale_ref = sale_ref;
        let line = serde_json::to_string(&truth_line).map_err(io::Error::other)?;
        writeln!(truth, "{line}")?;
        records.push((t, record));
        summary.sales += 1;
    }
    // Equal times keep the order above (frames, then pump events).
    write_trace(trace, &layout, records)?;
    truth.flush()?;
    let truth_visits = visits
        .iter()
        .map(|v| TruthVisit {
            fp: v.fp,
            plate: v.plate.clone(),
            queue_t: to_ms(v.queue_s),
            approach_t: to_ms(v.approach_s),
            stop_t: to_ms(v.stop_s),
            leave_t: to_ms(v.leave_s),
            gone_t: to_ms(v.gone_s),
            zone_reads: v.zone_reads,
            fills: v
                .sales
                .iter()
                .map(|s| TruthFill {
                    nozzle: s.nozzle,
                    nozzle_out_t: to_ms(s.out_s),
                    nozzle_in_t: to_ms(s.in_s),
                    sale_t: to_ms(s.sale_s),
                    volume: Decimal::new(s.volume_centilitres, 2),
                    amount: Decimal::new((s.volume_centilitres * 785 + 50) / 100, 2),
                })
                .collect(),
        })
        .collect();
    Ok((summary, truth_visits))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_valid() {
        station_layout().validate().unwrap();
    }

    #[test]
    fn same_seed_same_bytes() {
        let run = |seed| {
            let (mut trace, mut truth) = (Vec::new(), Vec::new());
            generate(&ScenarioConfig::new(seed, 40), &mut trace, &mut truth).unwrap();
            (trace, truth)
        };
        let a = run(5);
        assert_eq!(a, run(5));
        assert_ne!(a.0, run(6).0);
        let truth_lines = a.1.split(|b| *b == b'\n').filter(|l| !l.is_empty()).count();
        assert!(truth_lines >= 40);
    }
}
