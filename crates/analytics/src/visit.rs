//! One car's (or one plate-less customer's) stay, while it lasts: its reads and sales.

use std::collections::BTreeMap;

use forecourt_events::{FpNumber, UnixMillis};
use wire::{VisitRecord, VisitSale};

#[derive(Debug, Clone)]
pub(crate) struct Read {
    pub(crate) t: UnixMillis,
    pub(crate) text: String,
    pub(crate) confidence: f32,
    pub(crate) well_formed: bool,
    pub(crate) camera: String,
    pub(crate) fp: Option<FpNumber>,
}

#[derive(Debug, Clone)]
pub(crate) struct Visit {
    pub(crate) key: String,
    pub(crate) plate: Option<String>,
    pub(crate) arrival_t: Option<UnixMillis>,
    pub(crate) last_seen: Option<UnixMillis>,
    /// Reads per FP (the car's FP is the most read one); `None`: entrance.
    pub(crate) fp_reads: BTreeMap<Option<FpNumber>, u32>,
    pub(crate) sales: Vec<VisitSale>,
    /// Counted in an hour's `vehicles` already.
    pub(crate) counted: bool,
}

impl Visit {
    /// A visit made from a sale, with no read of its car (yet).
    pub(crate) fn unread(key: String, plate: Option<String>) -> Self {
        Visit {
            key,
            plate,
            arrival_t: None,
            last_seen: None,
            fp_reads: BTreeMap::new(),
            sales: Vec::new(),
            counted: false,
        }
    }

    pub(crate) fn fp(&self) -> Option<FpNumber> {
        if let Some(s) = self.sales.first() {
            return Some(s.fp);
        }
        self.fp_reads
            .iter()
            .filter(|(fp, _)| fp.is_some())
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
            .and_then(|(fp, _)| *fp)
    }

    pub(crate) fn last_activity(&self) -> UnixMillis {
        let sold = self.sales.iter().map(|s| s.nozzle_in_t.max(s.completed_t));
        self.last_seen.into_iter().chain(sold).max().unwrap_or(0)
    }

    pub(crate) fn last_fill_end_at(&self, fp: FpNumber) -> Option<UnixMillis> {
        self.sales
            .iter()
            .filter(|s| s.fp == fp)
            .map(|s| s.nozzle_in_t)
            .max()
    }

    pub(crate) fn first_out(&self) -> Option<UnixMillis> {
        self.sales.iter().filter_map(|s| s.nozzle_out_t).min()
    }

    pub(crate) fn waiting_ms(&self) -> Option<i64> {
        Some((self.first_out()? - self.arrival_t?).max(0))
    }

    pub(crate) fn record(&self) -> VisitRecord {
        let nozzle_out_t = self.first_out();
        let nozzle_in_t = self.sales.iter().map(|s| s.nozzle_in_t).max();
        VisitRecord {
            visit: self.key.clone(),
            plate: self.plate.clone(),
            fp: self.fp(),
            arrival_t: self.arrival_t,
            nozzle_out_t,
            nozzle_in_t,
            departure_t: self.last_seen.or(nozzle_in_t).unwrap_or(0),
            waiting_ms: self.waiting_ms(),
            service_ms: nozzle_out_t.zip(nozzle_in_t).map(|(o, i)| (i - o).max(0)),
            sales: self.sales.clone(),
        }
    }
}
