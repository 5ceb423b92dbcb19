//! `events/nozzle`, `events/pump` and `events/sale_gap`: what the dispensers said, as it happened.

use forecourt_events::{Decimal, FpNumber, UnixMillis};
use serde::{Deserialize, Serialize};

/// A nozzle lifted or hung up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NozzleBody {
    /// When the dispenser driver saw it.
    pub t: UnixMillis,
    pub fp: FpNumber,
    pub nozzle: u8,
    pub state: NozzleState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NozzleState {
    /// Lifted.
    Out,
    /// Hung up.
    In,
}

/// A fuelling point started or stopped answering on its bus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PumpBody {
    pub t: UnixMillis,
    pub fp: FpNumber,
    pub state: PumpState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PumpState {
    Online,
    Offline,
}

/// The nozzle's totalizer advanced `missing_volume` litres more than the sales seen since its
/// previous reading.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaleGapBody {
    pub t: UnixMillis,
    pub fp: FpNumber,
    pub nozzle: u8,
    pub missing_volume: Decimal,
}
