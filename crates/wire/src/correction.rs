//! `events/sale_correction`: a later word on a sale already sent, from HQ, from the station's
//! staff or from the matcher.

use forecourt_events::UnixMillis;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Told apart on the wire by `source`: `"hq"`, `"staff"` or `"matcher"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum SaleCorrection {
    Hq(HqCorrection),
    Staff(StaffCorrection),
    Matcher(MatcherCorrection),
}

/// A person at the station (logged in to the station console) says which car bought the sale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaffCorrection {
    pub t: UnixMillis,
    /// The `id` of the sale record's envelope.
    pub sale_id: Uuid,
    /// `None`: no plate (the plate the sale carried was not the car's, and nobody knows it).
    pub plate: Option<String>,
    /// The console user who made it.
    pub by: String,
}

/// HQ's `plate_correction` command: the sale was really `plate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HqCorrection {
    pub t: UnixMillis,
    /// The `id` of the sale record's envelope.
    pub sale_id: Uuid,
    pub plate: String,
    /// Who made it, as the command said.
    pub by: Option<String>,
}

/// The matcher's second look disagreed with the verdict the sale carried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatcherCorrection {
    pub t: UnixMillis,
    pub sale_id: Uuid,
    /// `None`: the matcher withdraws the plate it gave.
    pub plate: Option<String>,
    pub plate_confidence: f32,
    pub match_reason: String,
    /// Always `"matcher"`.
    pub by: String,
}

impl MatcherCorrection {
    /// What `by` says for the matcher's own corrections.
    pub const BY: &'static str = "matcher";
}
