//! The domain-randomised generator: a station drawn from a [`Family`] (see [`crate::station`]),
//! customers with behaviour drawn from the family's ranges, and a plate reader whose misreads
//! follow each plate's size in the image. Everything a matcher could latch onto (where a queued
//! car appears, how big a plate is, how zones are drawn, how often a camera goes dark) is drawn,
//! so a matcher that does well on the held-out families has learnt the problem, not a station.
//!
//! Output: the trace as `matcher::TraceReader` reads it (layout first, then frames, nozzle
//! changes and sales sorted by `t`, sales with `ref` s1, s2, ...) and one `matcher::TruthLine`
//! per sale, tagged with [`CASES`].

use std::collections::BTreeSet;
use std::io::{self, Write};

use forecourt_events::{text_distance, Decimal, FpNumber, UnixMillis};
use matcher::{NozzleRecord, NozzleState, SaleRecord, TracePlate, TraceRecord, TruthLine};

use crate::families::Family;
use crate::plate_text::{confusable_character, random_plate, ALNUM, PROVINCES};
use crate::station::{
    draw, draw_station, Camera, Facing, Station, CAR_PLATE_M, MIN_PLATE_PX, MOTORBIKE_PLATE_M,
};
use crate::Clock;
use seeded_rng::Rng;

/// Case tags, in the order that decides a sale's primary case (its first tag in this order).
/// A sale carries every tag that applies (`normal` only when none does):
/// - `no_car`: motorbike or jerry cans; the right answer is no plate.
/// - `unreadable`: a car whose plate was not read exactly 3 times, while it stood at the pump,
///   on a camera with a zone of the sale's FP, before the sale's grace ran out (`readable: false`).
/// - `cross_side`: the car stood in the other bay of the island; the hose reached across.
/// - `outage`: a camera with a zone of the FP was dark during the fill.
/// - `occluded`: the car's plate was in view but hidden (a person, another car) for 10 s or more
///   of the fill on one of the FP's cameras.
/// - `queue_in_zone` / `leaving_in_zone`: another car was read inside one of the FP's zones while
///   queueing (fill and grace) / while pulling out (from this car's approach to nozzle-in).
/// - `lookalike`: a plate one character away was at the station within ten minutes.
/// - `double_sale`: one car, two sales. `early_nozzle`: nozzle out before the car stopped.
/// - `off_zone`: where it stopped, the plate is in none of the FP's zones on any camera.
/// - `overlap`: a fill at another FP that shares a camera with this one overlapped this fill.
/// - `queue`: a car waited behind in the same lane during the fill.
pub const CASES: [&str; 14] = [
    "no_car",
    "unreadable",
    "cross_side",
    "outage",
    "occluded",
    "queue_in_zone",
    "leaving_in_zone",
    "lookalike",
    "double_sale",
    "early_nozzle",
    "off_zone",
    "overlap",
    "queue",
    "normal",
];

/// Behaviour drawn once per station from the family.
#[derive(Debug, Clone)]
struct Behaviour {
    arrival_gap_s: f64,
    rush_share: f64,
    motorbike: f64,
    jerry_can: f64,
    double_sale: f64,
    early_nozzle: f64,
    cross_side: f64,
    off_zone: f64,
    fleet: f64,
    occlusion: f64,
    stop_spread_m: f64,
    smear: f64,
    unreadable: f64,
    dirty: f64,
}

impl Behaviour {
    fn draw(family: &Family, rng: &mut Rng) -> Self {
        Behaviour {
            arrival_gap_s: draw(rng, family.arrival_gap_s),
            rush_share: draw(rng, family.rush_share),
            motorbike: draw(rng, family.motorbike),
            jerry_can: draw(rng, family.jerry_can),
            double_sale: draw(rng, family.double_sale),
            early_nozzle: draw(rng, family.early_nozzle),
            cross_side: draw(rng, family.cross_side),
            off_zone: draw(rng, family.off_zone),
            fleet: draw(rng, family.fleet),
            occlusion: draw(rng, family.occlusion),
            stop_spread_m: draw(rng, family.stop_spread_m),
            smear: draw(rng, family.smear),
            unreadable: draw(rng, family.unreadable),
            dirty: draw(rng, family.dirty),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Vehicle {
    Car,
    Motorbike,
    /// A customer with jerry cans: nobody drives up, nothing to read.
    OnFoot,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Driving from the entrance to its place in the queue.
    Arriving,
    Waiting,
    Approaching,
    Stopped,
    Leaving,
}

#[derive(Debug, Clone)]
struct Fill {
    nozzle: u8,
    out_s: f64,
    in_s: f64,
    sale_s: f64,
    volume_cl: i64,
}

/// A character that reads three ways (dirt, a bolt, a bent plate).
#[derive(Debug, Clone)]
struct Smear {
    position: usize,
    readings: [char; 3],
    weights: [f64; 3],
}

/// Cars enter the lane this far behind the stop line.
const ENTRY_M: f64 = 20.0;
/// And leave this far past it.
const EXIT_M: f64 = 16.0;
const ARRIVE_S: f64 = 3.0;
/// Time for a queued car to move up one place.
const MOVE_UP_S: f64 = 3.0;
/// The matcher decides this long after a sale (its default grace).
const GRACE_S: f64 = 5.0;
/// Most cars that wait in one lane; one more drives on.
const MAX_WAITING: usize = 3;

/// One customer.
#[derive(Debug, Clone)]
struct Visit {
    /// The lane it stands in.
    bay: usize,
    /// The bay whose FP sells (the opposite one for a cross-side fill).
    sale_bay: usize,
    vehicle: Vehicle,
    plate: Option<String>,
    smear: Option<Smear>,
    /// Misread multiplier of this plate.
    dirt: f64,
    arrival_s: f64,
    approach_s: f64,
    stop_s: f64,
    leave_s: f64,
    gone_s: f64,
    /// When the cars that were waiting ahead of it at its arrival started for the pump.
    ahead: Vec<f64>,
    lateral_m: f64,
    stop_shift_m: f64,
    exit_drift_m: f64,
    body_height_m: f64,
    /// Per camera: chance per frame that its plate is detected when large and still.
    detect: Vec<f64>,
    /// (camera, from, to): something stands between the camera and the plate.
    occlusions: Vec<(usize, f64, f64)>,
    fills: Vec<Fill>,
    lookalike: bool,
    /// Filled while rendering: exact reads while stopped on a camera of `sale_bay` (time), and
    /// frames in which the plate was in view but hidden (camera, time).
    exact_reads: Vec<f64>,
    hidden: Vec<(usize, f64)>,
}

fn smooth(k: f64) -> f64 {
    let k = k.clamp(0.0, 1.0);
    k * k * (3.0 - 2.0 * k)
}

fn lerp(a: f64, b: f64, k: f64) -> f64 {
    a + (b - a) * k
}

impl Visit {
    fn waited(&self) -> bool {
        self.approach_s - self.arrival_s > 0.5
    }

    /// Front of the vehicle `(x, y)` at `t` and what it is doing.
    fn front(&self, station: &Station, t: f64) -> Option<(f64, f64, Phase)> {
        if t < self.arrival_s || t >= self.gone_s {
            return None;
        }
        let bay = &station.bays[self.bay];
        let x = bay.x + self.lateral_m;
        let stop_y = bay.stop_y + self.stop_shift_m;
        let entry_y = bay.stop_y - ENTRY_M;
        let wait_y = |t: f64| {
            let places = 1.0
                + self
                    .ahead
                    .iter()
                    .map(|&a| 1.0 - smooth((t - a) / MOVE_UP_S))
                    .sum::<f64>();
            bay.stop_y - station.queue_gap_m * places
        };
        Some(if t < self.approach_s {
            let k = (t - self.arrival_s) / ARRIVE_S;
            if k < 1.0 {
                (x, lerp(entry_y, wait_y(t), smooth(k)), Phase::Arriving)
            } else {
                (x, wait_y(t), Phase::Waiting)
            }
        } else if t < self.stop_s {
            let from = if self.waited() {
                wait_y(self.approach_s)
            } else {
                entry_y
            };
            let k = (t - self.approach_s) / (self.stop_s - self.approach_s);
            (x, lerp(from, stop_y, smooth(k)), Phase::Approaching)
        } else if t < self.leave_s {
            (x, stop_y, Phase::Stopped)
        } else {
            let k = (t - self.leave_s) / (self.gone_s - self.leave_s);
            (
                x + self.exit_drift_m * smooth(k),
                stop_y + EXIT_M * k * k,
                Phase::Leaving,
            )
        })
    }

    fn moving(&self, phase: Phase, t: f64) -> bool {
        match phase {
            Phase::Arriving | Phase::Approaching | Phase::Leaving => true,
            Phase::Stopped => false,
            Phase::Waiting => self.ahead.iter().any(|&a| (t - a).abs() < MOVE_UP_S),
        }
    }

    fn length_m(&self, station: &Station) -> f64 {
        match self.vehicle {
            Vehicle::Motorbike => 2.0,
            _ => station.car_length_m,
        }
    }
}

/// Rush spells: (from, to) in seconds.
fn draw_rushes(behaviour: &Behaviour, rng: &mut Rng) -> Vec<(f64, f64)> {
    let mut rushes = Vec::new();
    let mut t = 0.0;
    while t < 400_000.0 {
        let spell = rng.exponential(1800.0).max(300.0);
        if rng.chance(behaviour.rush_share) {
            rushes.push((t, t + spell));
        }
        t += spell;
    }
    rushes
}

/// Plans the customers of one lane until `target` sales.
fn plan_lane(
    station: &Station,
    bay: usize,
    target: usize,
    gap_s: f64,
    rushes: &[(f64, f64)],
    behaviour: &Behaviour,
    rng: &mut Rng,
) -> Vec<Visit> {
    let cameras = station.cameras.len();
    let mut visits: Vec<Visit> = Vec::new();
    let mut t = rng.range(0.0, 60.0);
    let mut sales = 0;
    while sales < target {
        let arrival = t;
        let in_rush = rushes.iter().any(|&(a, b)| arrival >= a && arrival < b);
        t += rng
            .exponential(if in_rush { gap_s / 4.0 } else { gap_s })
            .max(4.0);
        let waiting: Vec<f64> = visits
            .iter()
            .filter(|v| v.approach_s > arrival)
            .map(|v| v.approach_s)
            .collect();
        if waiting.len() >= MAX_WAITING {
            continue; // the queue is too long: this one drives on
        }
        let (prev_leave, prev_last_sale) = visits.last().map_or((f64::MIN, f64::MIN), |v| {
            (v.leave_s, v.fills.last().map_or(f64::MIN, |f| f.sale_s))
        });
        // The next car may start in while the previous one is still pulling out.
        let approach_s = arrival.max(prev_leave + rng.range(-1.5, 2.5));
        let waited = approach_s - arrival > 0.5;
        let stop_s = approach_s
            + if waited {
                rng.range(3.0, 5.0)
            } else {
                rng.range(5.0, 8.0)
            };
        let vehicle = draw_vehicle(behaviour, rng);
        let two_fills = vehicle == Vehicle::Car && rng.chance(behaviour.double_sale);
        // An attendant or the driver lifts the nozzle while the car is still rolling in.
        let early = rng.chance(behaviour.early_nozzle);
        let first_out = if early {
            (stop_s - rng.range(0.5, 8.0))
                .max(approach_s - 1.0)
                .max(prev_last_sale + 1.0)
        } else {
            stop_s + rng.range(2.0, 25.0)
        };
        let fills = draw_fills(vehicle, two_fills, first_out, rng);
        let last_in = fills.last().map_or(stop_s, |f| f.in_s);
        let leave_s = last_in.max(stop_s) + rng.range(5.0, 60.0);
        let gone_s = leave_s + rng.range(3.5, 6.0);
        let (stop_shift_m, lateral_m) = draw_stop_offset(vehicle, behaviour, rng);
        let cross_side = vehicle != Vehicle::OnFoot && rng.chance(behaviour.cross_side);
        let plate = (vehicle == Vehicle::Car).then(|| random_plate(rng));
        let smear = plate.as_ref().and_then(|p| draw_smear(p, behaviour, rng));
        let dirt = if rng.chance(behaviour.dirty) {
            rng.range(2.0, 5.0)
        } else {
            rng.range(0.6, 1.3)
        };
        let car_detect = rng.range(0.7, 1.05);
        let detect = station
            .cameras
            .iter()
            .map(|c| (c.detect_rate * car_detect).min(0.98))
            .collect();
        let occlusions = draw_occlusions(cameras, stop_s, leave_s, behaviour, rng);
        sales += fills.len();
        visits.push(Visit {
            bay,
            sale_bay: if cross_side {
                Station::island_neighbour(bay)
            } else {
                bay
            },
            vehicle,
            plate,
            smear,
            dirt,
            arrival_s: arrival,
            approach_s,
            stop_s,
            leave_s,
            gone_s,
            ahead: waiting,
            lateral_m,
            stop_shift_m,
            exit_drift_m: rng.normal() * 1.5,
            body_height_m: rng.range(1.4, 1.9),
            detect,
            occlusions,
            fills,
            lookalike: false,
            exact_reads: Vec::new(),
            hidden: Vec::new(),
        });
    }
    visits
}

fn draw_vehicle(behaviour: &Behaviour, rng: &mut Rng) -> Vehicle {
    let roll = rng.unit();
    if roll < behaviour.motorbike {
        Vehicle::Motorbike
    } else if roll < behaviour.motorbike + behaviour.jerry_can {
        Vehicle::OnFoot
    } else {
        Vehicle::Car
    }
}

/// One fill, or two (a second nozzle or a can after the tank), from the first nozzle-out on.
fn draw_fills(vehicle: Vehicle, two_fills: bool, first_out: f64, rng: &mut Rng) -> Vec<Fill> {
    let flow = rng.range(0.35, 0.7); // litres per second
    let first_nozzle = 1 + rng.below(4) as u8;
    let mut fills = Vec::new();
    let mut out_s = first_out;
    for n in 0..if two_fills { 2 } else { 1 } {
        let fill_s = match (vehicle, n) {
            (Vehicle::Car, 0) => rng.range(25.0, 150.0),
            _ => rng.range(15.0, 60.0),
        };
        let nozzle = if n == 0 || rng.chance(0.3) {
            first_nozzle
        } else {
            1 + (first_nozzle % 4)
        };
        let in_s = out_s + fill_s;
        let sale_s = in_s + rng.range(0.3, 2.0);
        fills.push(Fill {
            nozzle,
            out_s,
            in_s,
            sale_s,
            volume_cl: (fill_s * flow * 100.0).round() as i64,
        });
        out_s = sale_s + rng.range(3.0, 20.0);
    }
    fills
}

/// Where the vehicle stops against the bay's stop line: (along the lane, sideways), in metres.
/// Now and then well off, past or short of the zone or beside it.
fn draw_stop_offset(vehicle: Vehicle, behaviour: &Behaviour, rng: &mut Rng) -> (f64, f64) {
    let off_zone_stop = vehicle != Vehicle::OnFoot && rng.chance(behaviour.off_zone);
    if !off_zone_stop {
        return (rng.normal() * behaviour.stop_spread_m, rng.normal() * 0.25);
    }
    if rng.chance(0.6) {
        let along = rng.range(1.5, 3.5);
        (
            if rng.chance(0.5) { along } else { -along },
            rng.normal() * 0.25,
        )
    } else {
        let side = rng.range(0.9, 1.6);
        (
            rng.normal() * behaviour.stop_spread_m,
            if rng.chance(0.5) { side } else { -side },
        )
    }
}

/// (camera, from, to): something stands between a camera and the plate for a while.
fn draw_occlusions(
    cameras: usize,
    stop_s: f64,
    leave_s: f64,
    behaviour: &Behaviour,
    rng: &mut Rng,
) -> Vec<(usize, f64, f64)> {
    let mut occlusions = Vec::new();
    for camera in 0..cameras {
        if rng.chance(behaviour.occlusion) {
            let from = rng.range(stop_s - 5.0, leave_s);
            occlusions.push((camera, from, from + rng.range(15.0, 120.0)));
        }
    }
    occlusions
}

/// Most plates read cleanly; some have one character that reads three ways, and an unreadable
/// plate's character never reads right.
fn draw_smear(plate: &str, behaviour: &Behaviour, rng: &mut Rng) -> Option<Smear> {
    let chars: Vec<char> = plate.chars().collect();
    let unreadable = rng.chance(behaviour.unreadable);
    if !unreadable && !rng.chance(behaviour.smear) {
        return None;
    }
    let position = 2 + rng.below(chars.len() - 2);
    let truth = chars[position];
    let mut wrong = Vec::new();
    while wrong.len() < 3 {
        let c = if wrong.is_empty() {
            confusable_character(truth, rng)
        } else {
            char::from(*rng.pick(ALNUM))
        };
        if c != truth && !wrong.contains(&c) {
            wrong.push(c);
        }
    }
    Some(if unreadable {
        Smear {
            position,
            readings: [wrong[0], wrong[1], wrong[2]],
            weights: [0.4, 0.3, 0.3],
        }
    } else {
        let true_share = rng.range(0.34, 0.6);
        let rest = (1.0 - true_share) / 2.0;
        Smear {
            position,
            readings: [truth, wrong[0], wrong[1]],
            weights: [true_share, rest, rest],
        }
    })
}

/// A plate one character away from `plate`, same region (a fleet registered together).
fn lookalike_of(plate: &str, rng: &mut Rng) -> String {
    let chars: Vec<char> = plate.chars().collect();
    loop {
        let mut next = chars.clone();
        let i = 2 + rng.below(chars.len() - 2);
        next[i] = if rng.chance(0.5) {
            confusable_character(chars[i], rng)
        } else {
            char::from(*rng.pick(ALNUM))
        };
        let text: String = next.into_iter().collect();
        if text != plate && crate::is_valid_plate(&text) {
            return text;
        }
    }
}

/// One read of `plate`: character confusions at rate `p`, the plate's smear, a dropped
/// character now and then; and the number of characters that came out wrong.
fn read_plate(plate: &str, smear: Option<&Smear>, p: f64, rng: &mut Rng) -> (String, usize) {
    let mut chars: Vec<char> = plate.chars().collect();
    let truth = chars.clone();
    for (i, c) in chars.iter_mut().enumerate() {
        if let Some(s) = smear.filter(|s| s.position == i) {
            let roll = rng.unit();
            *c = if roll < s.weights[0] {
                s.readings[0]
            } else if roll < s.weights[0] + s.weights[1] {
                s.readings[1]
            } else {
                s.readings[2]
            };
        } else if rng.chance(if i == 0 { p * 0.6 } else { p }) {
            *c = confusable_character(*c, rng);
        }
    }
    let mut errors = chars.iter().zip(&truth).filter(|(a, b)| a != b).count();
    if rng.chance(p * 0.3) {
        chars.remove(1 + rng.below(chars.len() - 1));
        errors += 1;
    }
    (chars.into_iter().collect(), errors)
}

/// Text that is not a plate (a sign, a van's lettering) or a motorbike's plate read badly.
fn garbage_text(rng: &mut Rng) -> String {
    let roll = rng.unit();
    if roll < 0.25 {
        // Plate-shaped: the worst kind, though it never repeats.
        random_plate(rng)
    } else if roll < 0.45 {
        let provinces: Vec<char> = PROVINCES.chars().collect();
        (0..2 + rng.below(4))
            .map(|_| *rng.pick(&provinces))
            .collect()
    } else {
        (0..3 + rng.below(6))
            .map(|_| char::from(*rng.pick(ALNUM)))
            .collect()
    }
}

/// Confidence of one read: high when right, lower per wrong character and for small plates,
/// shifted by the camera's bias and noisy; now and then a wrong read comes out sure of itself.
fn confidence(errors: usize, p: f64, bias: f64, noise: f64, rng: &mut Rng) -> f32 {
    let conf = if errors > 0 && rng.chance(0.04) {
        rng.range(0.85, 0.99)
    } else {
        0.93 + bias - 0.13 * errors as f64 - 0.6 * p.min(0.3) + rng.normal() * noise
    };
    conf.clamp(0.05, 0.995) as f32
}

/// Ground truth of one sale, as `write_families` and the tests use it.
#[derive(Debug, Clone, PartialEq)]
pub struct SaleTruth {
    pub sale_ref: String,
    pub fp: FpNumber,
    pub plate: Option<String>,
    pub readable: bool,
    /// In the order of [`CASES`].
    pub cases: Vec<&'static str>,
}

impl SaleTruth {
    /// The first tag in [`CASES`] order.
    pub fn primary_case(&self) -> &'static str {
        self.cases.first().copied().unwrap_or("normal")
    }

    pub fn truth_line(&self) -> TruthLine {
        TruthLine {
            sale_ref: self.sale_ref.clone(),
            plate: self.plate.clone(),
            readable: self.readable,
            cases: self.cases.iter().map(|c| c.to_string()).collect(),
        }
    }
}

/// What came out of one randomised scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct RandomisedScenario {
    pub family: &'static str,
    pub seed: u64,
    pub station: Station,
    pub sales: Vec<SaleTruth>,
    pub frames: usize,
    pub plate_reads: usize,
}

/// FNV-1a, so that seed 1 of two families draws two different stations.
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A plate read or a hidden plate in one frame, before it is written.
struct Seen {
    visit: usize,
    phase: Phase,
    bbox: [f64; 4],
    depth: f64,
    px: f64,
}

/// A read of another car inside some bay's zone, kept for tagging.
#[derive(Debug, Clone, Copy)]
struct ZoneRead {
    bay: usize,
    t: f64,
    visit: usize,
    phase: Phase,
}

/// Generates one scenario of about `sales` sales (a few more may come out) for `family` and
/// `seed`: the trace to `trace`, one `TruthLine` JSON line per sale to `truth`. Same family and
/// seed, same bytes.
pub fn generate_randomised(
    family: &Family,
    seed: u64,
    sales: usize,
    trace: impl Write,
    truth: impl Write,
) -> io::Result<RandomisedScenario> {
    let mut rng = Rng::new(seed ^ name_hash(family.name));
    let station = draw_station(family, &mut rng);
    let behaviour = Behaviour::draw(family, &mut rng);
    let rushes = draw_rushes(&behaviour, &mut rng);
    let clock = Clock {
        start_ms: 1_700_000_000_000 + (seed % 1000) as i64 * 86_400_000,
    };
    let mut visits = plan_visits(&station, &behaviour, &rushes, sales, &mut rng);
    let bay_cameras: Vec<Vec<usize>> = (0..station.bays.len())
        .map(|b| station.cameras_of(b))
        .collect();
    let end_s = visits.iter().map(|v| v.gone_s).fold(0.0, f64::max) + 30.0;
    let outages = draw_outages(&station, end_s, &mut rng);

    let filming = Filming {
        station: &station,
        bay_cameras: &bay_cameras,
        outages: &outages,
        clock,
        end_s,
    };
    let mut footage = Footage::default();
    let mut frame_rng = Rng::new(rng.next_u64());
    for (c, camera) in station.cameras.iter().enumerate() {
        filming.film(c, camera, &mut visits, &mut frame_rng, &mut footage);
    }
    footage.zone_reads.sort_by(|a, b| a.t.total_cmp(&b.t));

    let tagger = Tagger {
        station: &station,
        visits: &visits,
        bay_cameras: &bay_cameras,
        outages: &outages,
        zone_reads: &footage.zone_reads,
    };
    let mut records = footage.records;
    let sales_out = sales_and_pump_events(&tagger, clock, &mut records);
    let truths = number_sales(sales_out, &mut records, truth)?;
    // At equal times frames come first (camera order), then pump events.
    crate::write_trace(trace, &station.layout(), records)?;
    Ok(RandomisedScenario {
        family: family.name,
        seed,
        station,
        sales: truths,
        frames: footage.frames,
        plate_reads: footage.plate_reads,
    })
}

/// Customers, lane by lane (busier lanes get more of the sales), in arrival order.
fn plan_visits(
    station: &Station,
    behaviour: &Behaviour,
    rushes: &[(f64, f64)],
    sales: usize,
    rng: &mut Rng,
) -> Vec<Visit> {
    let gaps: Vec<f64> = (0..station.bays.len())
        .map(|_| behaviour.arrival_gap_s * rng.range(0.6, 1.6))
        .collect();
    let rate_sum: f64 = gaps.iter().map(|g| 1.0 / g).sum();
    let mut visits: Vec<Visit> = Vec::new();
    for (bay, gap) in gaps.iter().enumerate() {
        let target = ((sales as f64 / gap / rate_sum).ceil() as usize).max(1);
        let mut lane_rng = Rng::new(rng.next_u64());
        visits.extend(plan_lane(
            station,
            bay,
            target,
            *gap,
            rushes,
            behaviour,
            &mut lane_rng,
        ));
    }
    visits.sort_by(|a, b| a.arrival_s.total_cmp(&b.arrival_s).then(a.bay.cmp(&b.bay)));
    settle_cross_side(&mut visits);
    assign_fleet_plates(&mut visits, behaviour, rng);
    visits
}

/// Outages: (camera, from, to), no frames at all from that camera for a while.
fn draw_outages(station: &Station, end_s: f64, rng: &mut Rng) -> Vec<(usize, f64, f64)> {
    let mut outages = Vec::new();
    for (c, camera) in station.cameras.iter().enumerate() {
        if camera.outages_per_hour <= 0.0 {
            continue;
        }
        let mut t = rng.exponential(3600.0 / camera.outages_per_hour);
        while t < end_s {
            let length = rng.range(10.0, 120.0);
            outages.push((c, t, t + length));
            t += length + rng.exponential(3600.0 / camera.outages_per_hour);
        }
    }
    outages
}

/// What every camera films: the station, its dark spells and the time span.
struct Filming<'a> {
    station: &'a Station,
    bay_cameras: &'a [Vec<usize>],
    outages: &'a [(usize, f64, f64)],
    clock: Clock,
    end_s: f64,
}

/// The frames filmed so far, and the reads of cars in zones they hold (for tagging).
#[derive(Default)]
struct Footage {
    records: Vec<(UnixMillis, TraceRecord)>,
    zone_reads: Vec<ZoneRead>,
    frames: usize,
    plate_reads: usize,
}

/// A vehicle body as a camera sees it: (visit, image box, nearest depth).
type Body = (usize, [f64; 4], f64);

/// One frame being filmed: camera `c` at `t`, and the bodies in its view.
struct Shot<'a> {
    c: usize,
    camera: &'a Camera,
    t: f64,
    bodies: &'a [Body],
}

impl Filming<'_> {
    /// Every frame of camera `c`, with the plates its reader gets. Notes exact and hidden plates
    /// in `visits`.
    fn film(
        &self,
        c: usize,
        camera: &Camera,
        visits: &mut [Visit],
        rng: &mut Rng,
        footage: &mut Footage,
    ) {
        let period = 1.0 / camera.fps;
        let mut nominal = rng.range(0.0, period);
        let mut last_ms = UnixMillis::MIN;
        let mut next_visit = 0;
        let mut active: Vec<usize> = Vec::new();
        while nominal < self.end_s {
            let t = nominal + camera.frame_jitter * period * rng.range(-0.5, 0.5);
            nominal += period;
            let t_ms = self.clock.ms(t).max(last_ms + 1);
            let t = (t_ms - self.clock.start_ms) as f64 / 1000.0;
            if self
                .outages
                .iter()
                .any(|&(oc, a, b)| oc == c && t >= a && t < b)
            {
                continue;
            }
            if rng.chance(camera.frame_drop) {
                continue;
            }
            last_ms = t_ms;
            while next_visit < visits.len() && visits[next_visit].arrival_s <= t {
                active.push(next_visit);
                next_visit += 1;
            }
            active.retain(|&i| visits[i].gone_s > t);

            let (bodies, seen) = self.in_view(camera, visits, &active, t);
            let shot = Shot {
                c,
                camera,
                t,
                bodies: &bodies,
            };
            let mut plates = Vec::new();
            for s in &seen {
                if let Some(plate) = self.read(&shot, s, visits, rng, footage) {
                    plates.push(plate);
                }
            }
            if let Some(plate) = garbage_read(camera, period, rng) {
                plates.push(plate);
            }
            footage.frames += 1;
            footage.plate_reads += plates.len();
            footage.records.push((
                t_ms,
                TraceRecord::Frame {
                    t: t_ms,
                    camera: camera.name.clone(),
                    plates,
                },
            ));
        }
    }

    /// Where every vehicle is at `t`: the bodies this camera sees (they hide plates behind
    /// them) and the plates in view, large enough to read.
    fn in_view(
        &self,
        camera: &Camera,
        visits: &[Visit],
        active: &[usize],
        t: f64,
    ) -> (Vec<Body>, Vec<Seen>) {
        let station = self.station;
        let mut bodies: Vec<Body> = Vec::new();
        let mut seen: Vec<Seen> = Vec::new();
        for &i in active {
            let visit = &visits[i];
            if visit.vehicle == Vehicle::OnFoot {
                continue;
            }
            let Some((x, y, phase)) = visit.front(station, t) else {
                continue;
            };
            let length = visit.length_m(station);
            let half_width = if visit.vehicle == Vehicle::Motorbike {
                0.4
            } else {
                0.9
            };
            if let Some((rect, nearest)) = camera.body_rect(
                [x - half_width, y - length, 0.0],
                [x + half_width, y, visit.body_height_m],
            ) {
                // Bounding boxes overstate a body seen at an angle: shrink them a little.
                let (dw, dh) = ((rect[2] - rect[0]) * 0.1, (rect[3] - rect[1]) * 0.1);
                bodies.push((
                    i,
                    [rect[0] + dw, rect[1] + dh, rect[2] - dw, rect[3] - dh],
                    nearest,
                ));
            }
            let (plate_y, front, size) = match (visit.vehicle, camera.facing) {
                (Vehicle::Car, Facing::Front) => (y, true, CAR_PLATE_M),
                (Vehicle::Car, Facing::Rear) => (y - length, false, CAR_PLATE_M),
                (Vehicle::Motorbike, Facing::Rear) => (y - length, false, MOTORBIKE_PLATE_M),
                _ => continue, // a motorbike has no front plate
            };
            let plate = [x, plate_y, station.plate_z];
            if !camera.faces(plate, front) {
                continue;
            }
            let Some((bbox, depth)) = camera.plate_box(plate, size) else {
                continue;
            };
            let (cx, cy) = ((bbox[0] + bbox[2]) / 2.0, (bbox[1] + bbox[3]) / 2.0);
            let px = (bbox[2] - bbox[0]) * camera.image_width_px;
            if !(0.01..=0.99).contains(&cx) || !(0.01..=0.99).contains(&cy) || px < MIN_PLATE_PX {
                continue;
            }
            seen.push(Seen {
                visit: i,
                phase,
                bbox,
                depth,
                px,
            });
        }
        (bodies, seen)
    }

    /// What the reader makes of a plate in view: nothing when it is hidden or missed, else a
    /// read with its misreads and confidence. Notes hidden and exact plates in `visits` and reads
    /// of moving cars inside zones in `footage`.
    fn read(
        &self,
        shot: &Shot,
        s: &Seen,
        visits: &mut [Visit],
        rng: &mut Rng,
        footage: &mut Footage,
    ) -> Option<TracePlate> {
        let Shot {
            c,
            camera,
            t,
            bodies,
        } = *shot;
        let visit = &visits[s.visit];
        let (cx, cy) = ((s.bbox[0] + s.bbox[2]) / 2.0, (s.bbox[1] + s.bbox[3]) / 2.0);
        let blocked = visit
            .occlusions
            .iter()
            .any(|&(oc, a, b)| oc == c && t >= a && t < b)
            || bodies.iter().any(|&(j, r, nearest)| {
                j != s.visit
                    && nearest < s.depth - 0.3
                    && (r[0]..=r[2]).contains(&cx)
                    && (r[1]..=r[3]).contains(&cy)
            });
        if blocked {
            visits[s.visit].hidden.push((c, t));
            return None;
        }
        let moving = visit.moving(s.phase, t);
        let size_factor = ((s.px - MIN_PLATE_PX) / 26.0).clamp(0.0, 1.0);
        let rate = visit.detect[c] * size_factor * if moving { 0.6 } else { 1.0 };
        if !rng.chance(rate) {
            return None;
        }
        // Detector jitter: a few percent of the box.
        let (w, h) = (s.bbox[2] - s.bbox[0], s.bbox[3] - s.bbox[1]);
        let (jx, jy) = (rng.normal() * 0.04 * w, rng.normal() * 0.04 * h);
        let grow = 1.0 + rng.normal() * 0.04;
        let (bx, by) = (cx + jx, cy + jy);
        let bbox = [
            (bx - w * grow / 2.0).clamp(0.0, 1.0) as f32,
            (by - h * grow / 2.0).clamp(0.0, 1.0) as f32,
            (bx + w * grow / 2.0).clamp(0.0, 1.0) as f32,
            (by + h * grow / 2.0).clamp(0.0, 1.0) as f32,
        ];
        let mut exact = false;
        let (text, conf) = match &visit.plate {
            Some(plate) => {
                let small = (60.0 / s.px).powi(2);
                let p = (camera.char_error
                    * visit.dirt
                    * (1.0 + small)
                    * if moving { 2.0 } else { 1.0 })
                .min(0.4);
                let (text, errors) = read_plate(plate, visit.smear.as_ref(), p, rng);
                let conf = confidence(errors, p, camera.conf_bias, camera.conf_noise, rng);
                exact = errors == 0
                    && text == *plate
                    && s.phase == Phase::Stopped
                    && self.bay_cameras[visit.sale_bay].contains(&c);
                (text, conf)
            }
            None => {
                // A motorbike's small plate: the reader gets something different every time,
                // and knows it.
                if !rng.chance(0.5) {
                    return None;
                }
                (garbage_text(rng), rng.range(0.15, 0.7) as f32)
            }
        };
        if exact {
            visits[s.visit].exact_reads.push(t);
        }
        if s.phase != Phase::Stopped {
            let (fx, fy) = ((bbox[0] + bbox[2]) / 2.0, (bbox[1] + bbox[3]) / 2.0);
            for bay in 0..self.station.bays.len() {
                if self
                    .station
                    .in_zone_of(c, bay, f64::from(fx), f64::from(fy))
                {
                    footage.zone_reads.push(ZoneRead {
                        bay,
                        t,
                        visit: s.visit,
                        phase: s.phase,
                    });
                }
            }
        }
        Some(TracePlate { text, conf, bbox })
    }
}

/// Garbage: a read anywhere in the image, now and then.
fn garbage_read(camera: &Camera, period: f64, rng: &mut Rng) -> Option<TracePlate> {
    if !rng.chance(camera.garbage_per_min / 60.0 * period) {
        return None;
    }
    let (x, y) = (rng.range(0.05, 0.95), rng.range(0.05, 0.95));
    let w = rng.range(0.015, 0.1);
    let h = w * rng.range(0.25, 0.5);
    Some(TracePlate {
        text: garbage_text(rng),
        conf: rng.range(0.1, 0.8) as f32,
        bbox: [
            (x - w / 2.0) as f32,
            (y - h / 2.0) as f32,
            (x + w / 2.0) as f32,
            (y + h / 2.0) as f32,
        ],
    })
}

/// A sale before it is numbered: (time, FP, truth, record).
type UnnumberedSale = (UnixMillis, FpNumber, SaleTruth, TraceRecord);

/// Every fill's nozzle events (into `records`) and its sale with its truth, unnumbered.
fn sales_and_pump_events(
    tagger: &Tagger,
    clock: Clock,
    records: &mut Vec<(UnixMillis, TraceRecord)>,
) -> Vec<UnnumberedSale> {
    let to_ms = |s: f64| clock.ms(s);
    let mut sales_out: Vec<UnnumberedSale> = Vec::new();
    for (vi, v) in tagger.visits.iter().enumerate() {
        let fp = tagger.station.bays[v.sale_bay].fp;
        for (fi, f) in v.fills.iter().enumerate() {
            for (t, state) in [(f.out_s, NozzleState::Out), (f.in_s, NozzleState::In)] {
                records.push((
                    to_ms(t),
                    TraceRecord::Nozzle(NozzleRecord {
                        t: to_ms(t),
                        fp,
                        nozzle: f.nozzle,
                        state,
                    }),
                ));
            }
            let readable = v.plate.is_some()
                && v.exact_reads
                    .iter()
                    .filter(|&&t| t <= f.sale_s + GRACE_S)
                    .count()
                    >= 3;
            let cases = tagger.cases(vi, fi, readable);
            let amount = (f.volume_cl * 785 + 50) / 100;
            sales_out.push((
                to_ms(f.sale_s),
                fp,
                SaleTruth {
                    sale_ref: String::new(),
                    fp,
                    plate: v.plate.clone(),
                    readable,
                    cases,
                },
                TraceRecord::Sale(SaleRecord {
                    t: to_ms(f.sale_s),
                    fp,
                    nozzle: f.nozzle,
                    volume: Decimal::new(f.volume_cl, 2),
                    amount: Decimal::new(amount, 2),
                    price: Decimal::new(785, 2),
                    sale_ref: None,
                }),
            ));
        }
    }
    sales_out
}

/// Numbers the sales s1, s2, ... in time order, writes their truth lines and adds their records.
fn number_sales(
    mut sales_out: Vec<UnnumberedSale>,
    records: &mut Vec<(UnixMillis, TraceRecord)>,
    mut truth: impl Write,
) -> io::Result<Vec<SaleTruth>> {
    sales_out.sort_by_key(|(t, fp, _, _)| (*t, *fp));
    let mut truths = Vec::new();
    for (n, (t, _, mut sale_truth, mut record)) in sales_out.into_iter().enumerate() {
        let sale_ref = format!("s{}", n + 1);
        if let TraceRecord::Sale(sale) = &mut record {
            sale.sale_ref = Some(sale_ref.clone());
        }
        sale_truth.sale_ref = sale_ref;
        let line = serde_json::to_string(&sale_truth.truth_line()).map_err(io::Error::other)?;
        writeln!(truth, "{line}")?;
        records.push((t, record));
        truths.push(sale_truth);
    }
    truth.flush()?;
    Ok(truths)
}

/// A cross-side fill takes the opposite FP's hose: only where that FP is free then (with a few
/// seconds to spare); otherwise the customer uses their own side after all.
fn settle_cross_side(visits: &mut [Visit]) {
    let span = |v: &Visit| {
        let from = v.fills.iter().map(|f| f.out_s).fold(f64::MAX, f64::min);
        let to = v.fills.iter().map(|f| f.sale_s).fold(f64::MIN, f64::max);
        (from - 3.0, to + 3.0)
    };
    let mut busy: Vec<(usize, f64, f64)> = visits
        .iter()
        .filter(|v| v.sale_bay == v.bay)
        .map(|v| {
            let (a, b) = span(v);
            (v.bay, a, b)
        })
        .collect();
    for v in visits.iter_mut().filter(|v| v.sale_bay != v.bay) {
        let (a, b) = span(v);
        if busy
            .iter()
            .any(|&(bay, x, y)| bay == v.sale_bay && x < b && a < y)
        {
            v.sale_bay = v.bay;
        }
        busy.push((v.sale_bay, a, b));
    }
}

/// Fleet cars: a plate one character away from a car seen in the last quarter of an hour.
fn assign_fleet_plates(visits: &mut [Visit], behaviour: &Behaviour, rng: &mut Rng) {
    for i in 0..visits.len() {
        if visits[i].plate.is_none() || !rng.chance(behaviour.fleet) {
            continue;
        }
        let arrival = visits[i].arrival_s;
        let recent: Vec<usize> = (0..i)
            .filter(|&j| visits[j].plate.is_some() && visits[j].gone_s > arrival - 900.0)
            .collect();
        if recent.is_empty() {
            continue;
        }
        let source = recent[rng.below(recent.len())];
        let plate = lookalike_of(visits[source].plate.as_deref().unwrap_or_default(), rng);
        if let Some(s) = &visits[i].smear {
            // The smear was drawn for the old text (perhaps of another length): keep it only
            // where it still means the same for this one.
            let still_fits = plate.chars().nth(s.position).is_some_and(|c| {
                if s.weights[0] > 0.0 {
                    s.readings[0] == c
                } else {
                    !s.readings.contains(&c)
                }
            });
            if !still_fits {
                visits[i].smear = None;
            }
        }
        visits[i].plate = Some(plate);
    }
    // Lookalikes: any two plates one character apart at the station within ten minutes.
    for i in 0..visits.len() {
        let Some(a) = visits[i].plate.clone() else {
            continue;
        };
        for j in i + 1..visits.len() {
            if visits[j].arrival_s > visits[i].gone_s + 600.0 {
                break;
            }
            if visits[j]
                .plate
                .as_deref()
                .is_some_and(|b| text_distance(&a, b) == 1)
            {
                visits[i].lookalike = true;
                visits[j].lookalike = true;
            }
        }
    }
}

/// Decides the case tags of each sale.
struct Tagger<'a> {
    station: &'a Station,
    visits: &'a [Visit],
    bay_cameras: &'a [Vec<usize>],
    outages: &'a [(usize, f64, f64)],
    zone_reads: &'a [ZoneRead],
}

impl Tagger<'_> {
    /// Reads of other vehicles in `bay`'s zones between `from` and `to`.
    fn others_in_zone(
        &self,
        vi: usize,
        bay: usize,
        from: f64,
        to: f64,
    ) -> impl Iterator<Item = &ZoneRead> {
        let start = self.zone_reads.partition_point(|r| r.t < from);
        self.zone_reads[start..]
            .iter()
            .take_while(move |r| r.t <= to)
            .filter(move |r| r.bay == bay && r.visit != vi)
    }

    fn cases(&self, vi: usize, fi: usize, readable: bool) -> Vec<&'static str> {
        let v = &self.visits[vi];
        let f = &v.fills[fi];
        let (from, to) = (f.out_s, f.in_s);
        let cameras = &self.bay_cameras[v.sale_bay];
        let mut tags: BTreeSet<&'static str> = BTreeSet::new();
        if v.plate.is_none() {
            tags.insert("no_car");
        } else if !readable {
            tags.insert("unreadable");
        }
        if v.sale_bay != v.bay {
            tags.insert("cross_side");
        }
        if self
            .outages
            .iter()
            .any(|&(c, a, b)| cameras.contains(&c) && a < to && b > from)
        {
            tags.insert("outage");
        }
        // Hidden for 10 s or more of the fill on one of the FP's cameras.
        for &c in cameras {
            let period = 1.0 / self.station.cameras[c].fps;
            let hidden = v
                .hidden
                .iter()
                .filter(|&&(hc, t)| hc == c && t >= from && t <= to)
                .count() as f64
                * period;
            if hidden >= 10.0 {
                tags.insert("occluded");
            }
        }
        let phases = |from: f64, to: f64| -> Vec<Phase> {
            self.others_in_zone(vi, v.sale_bay, from, to)
                .map(|r| r.phase)
                .collect()
        };
        if phases(from, to + GRACE_S)
            .iter()
            .any(|p| matches!(p, Phase::Arriving | Phase::Waiting))
        {
            tags.insert("queue_in_zone");
        }
        if phases(from.min(v.approach_s), to).contains(&Phase::Leaving) {
            tags.insert("leaving_in_zone");
        }
        if v.lookalike {
            tags.insert("lookalike");
        }
        if v.fills.len() > 1 {
            tags.insert("double_sale");
        }
        if f.out_s < v.stop_s {
            tags.insert("early_nozzle");
        }
        if v.vehicle != Vehicle::OnFoot && !self.stops_in_zone(v) {
            tags.insert("off_zone");
        }
        let shares_camera = |bay: usize| {
            bay != v.sale_bay && self.bay_cameras[bay].iter().any(|c| cameras.contains(c))
        };
        if self.visits.iter().any(|o| {
            shares_camera(o.sale_bay) && o.fills.iter().any(|g| g.out_s < to && g.in_s > from)
        }) {
            tags.insert("overlap");
        }
        if self.visits.iter().enumerate().any(|(oi, o)| {
            oi != vi && o.bay == v.bay && o.waited() && o.arrival_s < to && o.approach_s > from
        }) {
            tags.insert("queue");
        }
        let mut cases: Vec<&'static str> =
            CASES.iter().copied().filter(|c| tags.contains(c)).collect();
        if cases.is_empty() {
            cases.push("normal");
        }
        cases
    }

    /// Whether the vehicle, where it stopped, stands in one of its sale FP's zones on some
    /// camera that sees its plate.
    fn stops_in_zone(&self, v: &Visit) -> bool {
        let Some((x, y, _)) = v.front(self.station, (v.stop_s + v.leave_s) / 2.0) else {
            return false;
        };
        self.bay_cameras[v.sale_bay].iter().any(|&c| {
            let camera = &self.station.cameras[c];
            let (plate_y, front) = match camera.facing {
                Facing::Front if v.vehicle == Vehicle::Car => (y, true),
                Facing::Front => return false,
                Facing::Rear => (y - v.length_m(self.station), false),
            };
            let plate = [x, plate_y, self.station.plate_z];
            camera.faces(plate, front)
                && camera
                    .project(plate)
                    .is_some_and(|(px, py, _)| self.station.in_zone_of(c, v.sale_bay, px, py))
        })
    }
}
