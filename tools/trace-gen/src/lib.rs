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
pub mod station;

use std::collections::BTreeSet;
use std::io::{self, Write};

use forecourt_events::{Decimal, FpNumber, UnixMillis};
use matcher::{
    FpLayout, Layout, NozzleRecord, SaleRecord, TracePlate, TraceRecord, TraceWriter, TruthLine,
    Zone,
};

pub use families::{family, Family, Span, FAMILIES};
pub use plate_text::{is_valid_plate, random_plate, MisreadProfile};
pub use randomised::{generate_randomised, RandomisedScenario, SaleTruth, CASES};
pub use seeded_rng::Rng;

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

/// Scenario seconds to trace milliseconds (the fixed station's and the randomised ones').
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    pub(crate) start_ms: UnixMillis,
}

impl Clock {
    pub(crate) fn ms(self, s: f64) -> UnixMillis {
        self.start_ms + (s * 1000.0).round() as i64
    }
}

/// What every frame of a scenario is drawn from.
struct Scene<'a> {
    config: &'a ScenarioConfig,
    views: &'a [View],
    layout: &'a Layout,
    clock: Clock,
    /// No drops, no jitter, every plate read right.
    ideal: bool,
}

/// A camera outage: camera index, from, until (scenario seconds).
type Outage = (usize, f64, f64);

/// [`generate`], also giving every visit (customer) of the scenario, sorted by `queue_t` then FP.
pub fn generate_with_visits(
    config: &ScenarioConfig,
    trace: impl Write,
    mut truth: impl Write,
) -> io::Result<(ScenarioSummary, Vec<TruthVisit>)> {
    let mut rng = Rng::new(config.seed);
    let views = views();
    let layout = station_layout();
    let clock = Clock {
        start_ms: 1_700_000_000_000 + (config.seed % 1000) as i64 * 86_400_000,
    };
    let mut visits = plan_visits(config, &mut rng);
    let end_s = visits.iter().map(|v| v.gone_s).fold(0.0, f64::max) + 30.0;
    let scene = Scene {
        config,
        views: &views,
        layout: &layout,
        clock,
        ideal: config.camera == CameraModel::Ideal,
    };
    let mut records: Vec<(UnixMillis, TraceRecord)> = Vec::new();
    let mut summary = ScenarioSummary::default();
    // Frames: each camera on its own clock, with single drops and longer outages.
    let mut frame_rng = Rng::new(rng.next_u64());
    let mut outages: Vec<Outage> = Vec::new();
    for camera_idx in 0..CAMERAS.len() {
        camera_frames(
            &scene,
            camera_idx,
            end_s,
            &mut visits,
            &mut frame_rng,
            &mut outages,
            &mut records,
            &mut summary,
        );
    }
    let sales = pump_records(&scene, &visits, &outages, &mut records);
    number_sales(sales, &mut truth, &mut records, &mut summary)?;
    // Equal times keep the order above (frames, then pump events).
    write_trace(trace, &layout, records)?;
    truth.flush()?;
    Ok((summary, truth_visits(&visits, clock)))
}

/// Every fuelling point's customers, in the order they queue.
fn plan_visits(config: &ScenarioConfig, rng: &mut Rng) -> Vec<Visit> {
    let per_lane = config.sales.div_ceil(FPS.len());
    let mut visits: Vec<Visit> = Vec::new();
    for fp in FPS {
        let mut lane_rng = Rng::new(rng.next_u64());
        visits.extend(plan_lane(fp, per_lane, config, &mut lane_rng));
    }
    tag_cross_cases(&mut visits);
    visits.sort_by(|a, b| a.queue_s.total_cmp(&b.queue_s).then(a.fp.cmp(&b.fp)));
    visits
}

/// One camera's frames, on its own clock, with single drops and longer outages (recorded in
/// `outages`).
#[allow(clippy::too_many_arguments)]
fn camera_frames(
    scene: &Scene<'_>,
    camera_idx: usize,
    end_s: f64,
    visits: &mut [Visit],
    rng: &mut Rng,
    outages: &mut Vec<Outage>,
    records: &mut Vec<(UnixMillis, TraceRecord)>,
    summary: &mut ScenarioSummary,
) {
    let camera = CAMERAS[camera_idx];
    let start_ms = scene.clock.start_ms;
    let mut t_ms = start_ms + 37 * camera_idx as i64;
    let mut outage_until = f64::MIN;
    let mut first_active = 0;
    while t_ms < scene.clock.ms(end_s) {
        let t = (t_ms - start_ms) as f64 / 1000.0;
        t_ms += scene.config.frame_ms + rng.below(20) as i64;
        if t < outage_until {
            continue;
        }
        if !scene.ideal && rng.chance(scene.config.frame_ms as f64 / 600_000.0) {
            outage_until = t + rng.range(2.0, 25.0);
            outages.push((camera_idx, t, outage_until));
            continue;
        }
        if !scene.ideal && rng.chance(0.03) {
            continue;
        }
        while first_active < visits.len() && visits[first_active].gone_s + 600.0 < t {
            first_active += 1;
        }
        let plates = frame_plates(scene, camera_idx, t, &mut visits[first_active..], rng);
        summary.frames += 1;
        summary.plate_reads += plates.len();
        let t_ms = scene.clock.ms(t);
        let frame = TraceRecord::Frame {
            t: t_ms,
            camera: camera.to_string(),
            plates,
        };
        records.push((t_ms, frame));
    }
}

/// What one frame of `camera_idx` at `t` reads of the visits around (`active`: those not long
/// gone, in queue order).
fn frame_plates(
    scene: &Scene<'_>,
    camera_idx: usize,
    t: f64,
    active: &mut [Visit],
    rng: &mut Rng,
) -> Vec<TracePlate> {
    let camera = CAMERAS[camera_idx];
    let mut plates = Vec::new();
    for vi in 0..active.len() {
        if active[vi].queue_s > t {
            break;
        }
        for view in scene.views.iter().filter(|v| v.camera == camera) {
            if view.fp != active[vi].fp {
                continue;
            }
            if let Some(plate) = read_in_view(scene, camera_idx, view, t, vi, active, rng) {
                plates.push(plate);
            }
        }
    }
    plates
}

/// Whether a car stands at the pump of `fp` at `t`.
fn stopped_at(active: &[Visit], fp: FpNumber, t: f64) -> bool {
    active
        .iter()
        .take_while(|v| v.queue_s <= t)
        .any(|v| v.fp == fp && t >= v.stop_s && t < v.leave_s)
}

/// Whether a car waits in the queue of `fp` at `t`.
fn queued_at(active: &[Visit], fp: FpNumber, t: f64) -> bool {
    active
        .iter()
        .take_while(|v| v.queue_s <= t)
        .any(|v| v.fp == fp && t >= v.queue_s && t < v.approach_s)
}

/// The read of visit `vi` in `view` at `t`, if the camera reads anything of it: its plate
/// (right or misread), or garbage from a motorbike. Notes the visit's right reads at the pump
/// and its reads in any zone.
fn read_in_view(
    scene: &Scene<'_>,
    camera_idx: usize,
    view: &View,
    t: f64,
    vi: usize,
    active: &mut [Visit],
    rng: &mut Rng,
) -> Option<TracePlate> {
    let camera = CAMERAS[camera_idx];
    let ideal = scene.ideal;
    let visit = &active[vi];
    let ((x, y), still) = visit.position(view, t)?;
    let jitter = if ideal { 0.0 } else { view.jitter };
    let x = x + rng.normal() * jitter;
    let y = y + rng.normal() * jitter;
    if !(0.01..=0.99).contains(&x) || !(0.01..=0.99).contains(&y) {
        return None;
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
        if !ideal && visit.customer == Customer::Motorbike && rng.chance(0.15) {
            let garbage: String = (0..3 + rng.below(3))
                .map(|_| char::from(b'A' + rng.below(26) as u8))
                .collect();
            return Some(TracePlate {
                text: garbage,
                conf: rng.range(0.2, 0.5) as f32,
                bbox,
            });
        }
        return None;
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
    if camera == "cam2" && !waiting && queued_at(active, visit.fp, t) {
        rate *= 0.2;
    }
    if camera == "cam3" && visit.fp == 4 && stopped_at(active, 3, t) {
        rate *= 0.3;
    }
    let (text, conf) = if ideal {
        (plate.clone(), 0.95)
    } else {
        if !rng.chance(rate) {
            return None;
        }
        let quality = view.quality * if still { 1.0 } else { 1.5 };
        let profile = visit.misreads.as_ref()?;
        let text = profile.read(plate, quality, rng);
        let conf = if text == *plate {
            0.75 + 0.24 * rng.unit().sqrt()
        } else {
            0.5 + 0.45 * rng.unit()
        };
        (text, conf)
    };
    let correct = text == *plate;
    let in_zone = matcher::Zone {
        camera: String::new(),
        polygon: view.zone.clone(),
    }
    .contains(x as f32, y as f32);
    let at_pump = t >= visit.stop_s && t < visit.leave_s;
    if correct && in_zone && at_pump {
        active[vi].correct_reads.push(t);
    }
    // In any zone, as the agent maps the box centre (from the f32 box, as it does).
    let (cx, cy) = ((bbox[0] + bbox[2]) / 2.0, (bbox[1] + bbox[3]) / 2.0);
    if scene.layout.fps_at(camera, cx, cy).next().is_some() {
        let read_t = scene.clock.ms(t);
        let span = active[vi].zone_reads.get_or_insert((read_t, read_t));
        span.0 = span.0.min(read_t);
        span.1 = span.1.max(read_t);
    }
    Some(TracePlate {
        text,
        conf: conf as f32,
        bbox,
    })
}

/// A sale waiting for its number: when, where, its truth and its record.
type PlannedSale = (UnixMillis, FpNumber, TruthLine, TraceRecord);

/// The nozzle events of every fill (into `records`) and its sale with its truth (returned).
fn pump_records(
    scene: &Scene<'_>,
    visits: &[Visit],
    outages: &[Outage],
    records: &mut Vec<(UnixMillis, TraceRecord)>,
) -> Vec<PlannedSale> {
    let clock = scene.clock;
    let mut sales = Vec::new();
    for v in visits {
        for s in &v.sales {
            for (at, state) in [
                (s.out_s, matcher::NozzleState::Out),
                (s.in_s, matcher::NozzleState::In),
            ] {
                let nozzle = TraceRecord::Nozzle(NozzleRecord {
                    t: clock.ms(at),
                    fp: v.fp,
                    nozzle: s.nozzle,
                    state,
                });
                records.push((clock.ms(at), nozzle));
            }
            let mut cases: BTreeSet<&str> = s.cases.clone();
            let camera_out = outages.iter().any(|&(camera, a, b)| {
                scene
                    .views
                    .iter()
                    .any(|view| view.fp == v.fp && view.camera == CAMERAS[camera])
                    && a < s.in_s
                    && b > s.out_s
            });
            if camera_out {
                cases.insert("frame_drop");
            }
            let price = Decimal::new(785, 2);
            let amount = (s.volume_centilitres * 785 + 50) / 100;
            // Readable: the plate was read right at least 3 times while the car stood at the
            // pump before the matcher can decide (sale + its 5 s grace).
            let right_reads = v
                .correct_reads
                .iter()
                .filter(|&&t| t <= s.sale_s + 5.0)
                .count();
            let truth = TruthLine {
                sale_ref: String::new(),
                plate: v.plate.clone(),
                readable: v.plate.is_some() && right_reads >= 3,
                cases: cases.iter().map(|c| c.to_string()).collect(),
            };
            let sale = TraceRecord::Sale(SaleRecord {
                t: clock.ms(s.sale_s),
                fp: v.fp,
                nozzle: s.nozzle,
                volume: Decimal::new(s.volume_centilitres, 2),
                amount: Decimal::new(amount, 2),
                price,
                sale_ref: None,
            });
            sales.push((clock.ms(s.sale_s), v.fp, truth, sale));
        }
    }
    sales
}

/// Numbers the sales `s1`, `s2`, ... in time order, writes their truth and adds their records.
fn number_sales(
    mut sales: Vec<PlannedSale>,
    truth: &mut impl Write,
    records: &mut Vec<(UnixMillis, TraceRecord)>,
    summary: &mut ScenarioSummary,
) -> io::Result<()> {
    sales.sort_by_key(|(t, fp, _, _)| (*t, *fp));
    for (n, (t, _, mut truth_line, mut record)) in sales.into_iter().enumerate() {
        let sale_ref = format!("s{}", n + 1);
        if let TraceRecord::Sale(sale) = &mut record {
            sale.sale_ref = Some(sale_ref.clone());
        }
        truth_line.sale_ref = sale_ref;
        let line = serde_json::to_string(&truth_line).map_err(io::Error::other)?;
        writeln!(truth, "{line}")?;
        records.push((t, record));
        summary.sales += 1;
    }
    Ok(())
}

/// Each visit as the truth tells it: its times, its reads in the zones and its fills.
fn truth_visits(visits: &[Visit], clock: Clock) -> Vec<TruthVisit> {
    visits
        .iter()
        .map(|v| TruthVisit {
            fp: v.fp,
            plate: v.plate.clone(),
            queue_t: clock.ms(v.queue_s),
            approach_t: clock.ms(v.approach_s),
            stop_t: clock.ms(v.stop_s),
            leave_t: clock.ms(v.leave_s),
            gone_t: clock.ms(v.gone_s),
            zone_reads: v.zone_reads,
            fills: v
                .sales
                .iter()
                .map(|s| TruthFill {
                    nozzle: s.nozzle,
                    nozzle_out_t: clock.ms(s.out_s),
                    nozzle_in_t: clock.ms(s.in_s),
                    sale_t: clock.ms(s.sale_s),
                    volume: Decimal::new(s.volume_centilitres, 2),
                    amount: Decimal::new((s.volume_centilitres * 785 + 50) / 100, 2),
                })
                .collect(),
        })
        .collect()
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
