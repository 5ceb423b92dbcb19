//! The DART driver the config asks for: the polling master or the listener, by `mode`.

use std::sync::Arc;

use forecourt_events::FpNumber;

use crate::config::{DartConfig, DartMode};
use crate::driver::{DispenserError, EitherDriver};
use crate::{DartListener, DartMaster};

/// The DART driver the config asks for: [`DartMaster`] or [`DartListener`] by `mode`.
pub type DartDriver = EitherDriver<DartMaster, DartListener>;

impl EitherDriver<DartMaster, DartListener> {
    pub fn new(cfg: DartConfig) -> Result<Self, DispenserError> {
        Ok(match cfg.mode {
            DartMode::Master => EitherDriver::First(DartMaster::new(cfg)?),
            DartMode::Listen => EitherDriver::Second(DartListener::new(cfg)?),
        })
    }

    /// Starts `fp`'s totalizer bookkeeping for `nozzle` from a reading the station kept across
    /// a restart (see `FuellingPoint::restore_totals`). False if `fp` is not on this line.
    pub fn restore_totals(&mut self, fp: FpNumber, nozzle: u8, total: u64) -> bool {
        match self {
            EitherDriver::First(master) => master.restore_totals(fp, nozzle, total),
            EitherDriver::Second(listener) => listener.restore_totals(fp, nozzle, total),
        }
    }

    /// A master resets a pump only once its sale is kept; a listener sends nothing anyway.
    pub fn reset_after_kept(&mut self, kept: Arc<forecourt_events::KeptSales>) {
        if let EitherDriver::First(master) = self {
            master.reset_after_kept(kept);
        }
    }
}
