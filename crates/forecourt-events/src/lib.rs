//! The events that flow through the agent: sources (dispensers, cameras) produce them, the matcher
//! consumes them, and the outbox stores what leaves the station. No I/O here.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod decimal;
mod heartbeat;
pub mod hex_capture;
mod kept_sales;
mod link_stats;
pub mod plate_text;

pub use decimal::{Decimal, DecimalError};
pub use heartbeat::Heartbeat;
pub use kept_sales::KeptSales;
pub use link_stats::{LinkSnapshot, LinkStats};
pub use plate_text::{is_valid_plate, text_distance, text_distance_at_most};
use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch (UTC). Every event carries the time it happened at its source.
pub type UnixMillis = i64;

/// Wall-clock now in [`UnixMillis`].
pub fn now_millis() -> UnixMillis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as UnixMillis)
        .unwrap_or(0)
}

/// A fuelling point (one dispenser side) as the station numbers it: 1..=32.
pub type FpNumber = u8;

/// What a dispenser driver reports. Money and volume are exact decimals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DispenserEvent {
    NozzleOut {
        t: UnixMillis,
        fp: FpNumber,
        nozzle: u8,
    },
    NozzleIn {
        t: UnixMillis,
        fp: FpNumber,
        nozzle: u8,
    },
    SaleCompleted(Sale),
    PumpOnline {
        t: UnixMillis,
        fp: FpNumber,
    },
    PumpOffline {
        t: UnixMillis,
        fp: FpNumber,
    },
    /// The nozzle's volume totalizer advanced more than the sales reported since the previous
    /// reading: `missing_volume` was sold without the driver seeing the sale (line faults, pump
    /// restart mid-fill). One event may cover several missed sales.
    SaleGap {
        t: UnixMillis,
        fp: FpNumber,
        nozzle: u8,
        missing_volume: Decimal,
        /// The reading that showed the gap (raw volume units): every litre up to it is now
        /// accounted for. Kept with the gap, so a restart compares against it.
        totalizer: u64,
    },
    /// A totalizer reading that showed no missed sale (raw volume units). The station keeps the
    /// latest per nozzle across restarts: fuel sold while no agent ran then shows as a gap, and
    /// a fill found completed at start can be told apart by nozzle.
    TotalizerRead {
        t: UnixMillis,
        fp: FpNumber,
        nozzle: u8,
        total: u64,
    },
}

impl DispenserEvent {
    pub fn time(&self) -> UnixMillis {
        match self {
            DispenserEvent::NozzleOut { t, .. }
            | DispenserEvent::NozzleIn { t, .. }
            | DispenserEvent::PumpOnline { t, .. }
            | DispenserEvent::PumpOffline { t, .. }
            | DispenserEvent::SaleGap { t, .. }
            | DispenserEvent::TotalizerRead { t, .. } => *t,
            DispenserEvent::SaleCompleted(sale) => sale.t,
        }
    }
}

/// One completed fill as the pump reported it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sale {
    /// When the pump reported the sale complete.
    pub t: UnixMillis,
    pub fp: FpNumber,
    pub nozzle: u8,
    /// When the nozzle was lifted for this fill, if the driver saw it.
    pub nozzle_out_t: Option<UnixMillis>,
    pub grade: Option<String>,
    pub volume: Decimal,
    pub amount: Decimal,
    pub price: Decimal,
    /// How the fill ended, when the pump said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<FillEnd>,
    /// Found completed (never reset) when the driver started: it completed while no agent ran,
    /// or a crash cut its report short, in which case the agent may still hold it from before.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recovered: bool,
    /// The nozzle's volume totalizer with this sale counted (raw volume units), when the driver
    /// knows a reading to count from. Kept with the sale in one write, so a restart compares
    /// the pump's totalizer against exactly the sales that were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totalizer: Option<u64>,
    /// The source's own key for this sale, when it has one (an IFSF transaction's node,
    /// fuelling point and sequence number): a sale a source reports again after a restart is
    /// recognised by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_key: Option<String>,
}

/// How a fill ended, as the pump said: DART status 5 (FILLING COMPLETED: the nozzle stopped by
/// itself or was hung up) or 6 (MAX AMOUNT/VOLUME REACHED: a preset was reached).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FillEnd {
    Auto,
    Preset,
}

/// One plate read on one frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlateRead {
    pub text: String,
    /// Recogniser confidence for the whole text, 0..1.
    pub confidence: f32,
    /// Box in normalised image coordinates: x1, y1, x2, y2 in 0..1.
    pub bbox: [f32; 4],
}

impl PlateRead {
    /// The middle of its box (where zones place a read).
    pub fn centre(&self) -> (f32, f32) {
        (
            (self.bbox[0] + self.bbox[2]) / 2.0,
            (self.bbox[1] + self.bbox[3]) / 2.0,
        )
    }
}

/// All plates read on one frame of one camera (possibly none).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FramePlates {
    /// Capture time of the frame, stamped at grab.
    pub t: UnixMillis,
    pub camera: String,
    pub plates: Vec<PlateRead>,
}

/// The matcher's verdict for one sale: a plate with a confidence, or none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SaleMatch {
    pub plate: Option<String>,
    /// 0..1; 0 when no plate is given.
    pub confidence: f32,
    /// Why this verdict, in a few words (for HQ engineers reading the data).
    pub reason: String,
}
