//! The fields of the trace's `nozzle` and `sale` records, shared by the three readings of a line:
//! the owned serde record, the borrowed view and the fast scanner. Only a sale's reference is held
//! differently by each (a `String`, a `&str`, a byte range of the line), so it is the one type
//! parameter.

use forecourt_events::{Decimal, DispenserEvent, FpNumber, Sale, UnixMillis};
use serde::{Deserialize, Serialize};

/// A nozzle change as the trace records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NozzleState {
    Out,
    In,
}

/// A `nozzle` record: a nozzle taken out or hung up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NozzleRecord {
    pub t: UnixMillis,
    pub fp: FpNumber,
    pub nozzle: u8,
    pub state: NozzleState,
}

impl NozzleRecord {
    pub fn to_dispenser(self) -> DispenserEvent {
        let NozzleRecord {
            t,
            fp,
            nozzle,
            state,
        } = self;
        match state {
            NozzleState::Out => DispenserEvent::NozzleOut { t, fp, nozzle },
            NozzleState::In => DispenserEvent::NozzleIn { t, fp, nozzle },
        }
    }
}

/// A `sale` record; `R` holds the sale's reference, which replay prints back with its verdict.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaleRecord<R> {
    pub t: UnixMillis,
    pub fp: FpNumber,
    pub nozzle: u8,
    pub volume: Decimal,
    pub amount: Decimal,
    pub price: Decimal,
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub sale_ref: Option<R>,
}

impl<R> SaleRecord<R> {
    /// The same sale with its reference held another way.
    pub fn map_ref<'a, S>(&'a self, hold: impl FnOnce(&'a R) -> S) -> SaleRecord<S> {
        SaleRecord {
            t: self.t,
            fp: self.fp,
            nozzle: self.nozzle,
            volume: self.volume,
            amount: self.amount,
            price: self.price,
            sale_ref: self.sale_ref.as_ref().map(hold),
        }
    }

    /// The completed sale as the dispenser reports it (the trace keeps only what matching uses).
    pub fn to_dispenser(&self) -> DispenserEvent {
        DispenserEvent::SaleCompleted(Sale {
            t: self.t,
            fp: self.fp,
            nozzle: self.nozzle,
            nozzle_out_t: None,
            grade: None,
            volume: self.volume,
            amount: self.amount,
            price: self.price,
            end: None,
            recovered: false,
            totalizer: None,
            source_key: None,
        })
    }
}

impl SaleRecord<String> {
    pub fn from_sale(sale: &Sale, sale_ref: Option<&str>) -> Self {
        SaleRecord {
            t: sale.t,
            fp: sale.fp,
            nozzle: sale.nozzle,
            volume: sale.volume,
            amount: sale.amount,
            price: sale.price,
            sale_ref: sale_ref.map(str::to_string),
        }
    }
}
