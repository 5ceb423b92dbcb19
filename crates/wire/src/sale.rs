//! `events/sale`: one completed fill with the plate the matcher tied it to, or none.

use forecourt_events::{Decimal, FpNumber, UnixMillis};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SaleBody {
    pub fp: FpNumber,
    pub nozzle: u8,
    /// Product grade as the dispenser names it.
    pub grade: Option<String>,
    /// Litres, money and money per litre, exactly as the pump reported.
    pub volume: Decimal,
    pub amount: Decimal,
    pub price: Decimal,
    /// The fill window the matcher used (the nozzle-out may not have been seen).
    pub nozzle_out_t: Option<UnixMillis>,
    pub nozzle_in_t: UnixMillis,
    /// When the pump reported the sale complete.
    pub completed_t: UnixMillis,
    /// `None` when the matcher abstained.
    pub plate: Option<String>,
    /// Calibrated: a plate given at 0.95 is right about 95 times in 100 (0 when abstained).
    pub plate_confidence: f32,
    /// Free text for people.
    pub match_reason: String,
    /// The sale source's own key for the sale (e.g. `ifsf-tcp:1.1:2:0042`); absent when the
    /// source has none (DART).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_key: Option<String>,
}
