//! `events/arrival`, `events/visit` and `events/hourly`: the edge analytics HQ receives
//! (computed by the `analytics` crate).

use std::collections::BTreeMap;

use forecourt_events::{Decimal, FpNumber, UnixMillis};
use serde::{Deserialize, Serialize};

/// The `arrival` stream body: a car was read with enough confidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Arrival {
    /// Visit key, shared with the `visit` record that closes it.
    pub visit: String,
    /// When the read that made it sure was taken (the event's time).
    pub t: UnixMillis,
    pub plate: String,
    /// Vote certainty over the reads so far, 0..1, 3 decimals.
    pub confidence: f64,
    /// Camera of the deciding read.
    pub camera: String,
    /// Fuelling point whose zone the car was read in; null at an entrance camera.
    pub fp: Option<FpNumber>,
    /// First of the reads it was decided on.
    pub first_seen_t: UnixMillis,
    pub reads: usize,
    /// `provisional`: said at the first confident, well-formed read in a zone, before the
    /// reads that confirm it; `retracted`: a provisional arrival whose reads did not confirm
    /// it (`visit` names it); absent: confirmed (the visit's arrival HQ counts).
    #[serde(default, skip_serializing_if = "ArrivalState::is_confirmed")]
    pub state: ArrivalState,
}

/// How sure an arrival is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArrivalState {
    #[default]
    Confirmed,
    Provisional,
    Retracted,
}

impl ArrivalState {
    pub fn is_confirmed(&self) -> bool {
        *self == ArrivalState::Confirmed
    }
}

/// One sale of a visit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VisitSale {
    pub fp: FpNumber,
    pub nozzle: u8,
    pub volume: Decimal,
    pub amount: Decimal,
    pub nozzle_out_t: Option<UnixMillis>,
    pub nozzle_in_t: UnixMillis,
    pub completed_t: UnixMillis,
    /// The matcher's verdict for it (null: abstained).
    pub plate: Option<String>,
}

/// The `visit` stream body: one car's (or one plate-less customer's) stay, when it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VisitRecord {
    pub visit: String,
    /// null: no plate (the matcher abstained on every sale and no arrival was read).
    pub plate: Option<String>,
    pub fp: Option<FpNumber>,
    /// First confident read (null: never read well enough for an arrival).
    pub arrival_t: Option<UnixMillis>,
    /// First nozzle-out and last nozzle-in of its sales (null: none known / no sale).
    pub nozzle_out_t: Option<UnixMillis>,
    pub nozzle_in_t: Option<UnixMillis>,
    /// Last read (or, without reads, the last nozzle-in).
    pub departure_t: UnixMillis,
    /// `nozzle_out_t - arrival_t` (0 when the nozzle was lifted before the car was read).
    pub waiting_ms: Option<i64>,
    /// `nozzle_in_t - nozzle_out_t`.
    pub service_ms: Option<i64>,
    pub sales: Vec<VisitSale>,
}

/// The metrics of one fuelling point or one nozzle for one hour, as HQ receives them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsJson {
    /// Nozzle-out events in the hour.
    pub lifts: u32,
    /// Sales completed in the hour.
    pub sales: u32,
    /// Sum of their volumes / amounts, exact decimal strings.
    pub volume: Decimal,
    pub amount: Decimal,
    /// Vehicles whose first sale completed in the hour (per nozzle: whose first sale was there).
    pub vehicles: u32,
    /// Waiting time (arrival -> first nozzle out) of those vehicles with a known arrival.
    pub waiting_n: u32,
    pub waiting_mean_ms: Option<i64>,
    pub waiting_p90_ms: Option<i64>,
    /// Time within the hour with a nozzle out (per FP: any nozzle).
    pub nozzle_out_ms: i64,
    /// `nozzle_out_ms / 3_600_000`, 4 decimals.
    pub utilisation: f64,
    /// Sales by volume: litres in `[0,10)`, `[10,20)`, ... `[60,∞)`.
    pub volume_histogram: BTreeMap<String, u32>,
    /// Sales that ended with DART status 5 / status 6 / not reported.
    pub fill_auto: u32,
    pub fill_preset: u32,
    pub fill_unknown: u32,
    /// `fill_auto / (fill_auto + fill_preset)`, null when neither is known.
    pub fill_up_rate: Option<f64>,
    /// Totalizer gaps (`sale_gap` events) and the volume they missed.
    pub sale_gaps: u32,
    pub missing_volume: Decimal,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NozzleHourJson {
    pub nozzle: u8,
    #[serde(flatten)]
    pub metrics: MetricsJson,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FpHourJson {
    pub fp: FpNumber,
    /// Arrival events (cars read in this FP's zones) in the hour.
    pub arrivals: u32,
    #[serde(flatten)]
    pub metrics: MetricsJson,
    pub nozzles: Vec<NozzleHourJson>,
    /// How its zones fit its fills in the hour (see the `health` message's `zones`).
    pub zones: ZoneHourJson,
}

/// A fuelling point's zones over the sales completed in the hour, and the reads in them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ZoneHourJson {
    /// Plate reads placed in its zones.
    pub reads: u32,
    /// Its sales the matcher judged, and of them those given a plate.
    pub sales_judged: u32,
    pub plated: u32,
    /// The matcher's mean confidence over the plated ones (null: none).
    pub mean_confidence: Option<f64>,
    /// Sales where a car in another fuelling point's zones stood through the fill while none in
    /// this one's did.
    pub other_zone: u32,
    /// Sales during which nothing was read in its zones.
    pub unseen: u32,
}

/// The `hourly` stream body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HourSummary {
    /// Start of the hour (UTC), Unix ms; the hour is `hour .. hour + 3_600_000`.
    pub hour: UnixMillis,
    /// Arrivals at entrance cameras (no fuelling point).
    pub entrance_arrivals: u32,
    /// Events that arrived after their hour had closed (counted nowhere).
    pub late_events: u32,
    /// Set when counting began inside this hour (the agent started or restarted then): the
    /// figures cover `counted_from .. hour + 3_600_000` only. Null for a whole hour.
    #[serde(default)]
    pub counted_from: Option<UnixMillis>,
    /// Set only in a reply to the `hourly` command for the hour still being counted: the figures
    /// so far, up to this time. Null in every published summary.
    #[serde(default)]
    pub counted_until: Option<UnixMillis>,
    pub fps: Vec<FpHourJson>,
}
