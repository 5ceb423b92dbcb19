//! The DART driver the config asks for: the polling master or the listener, by `mode`.

use std::sync::Arc;

use forecourt_events::{DispenserEvent, FpNumber, Heartbeat};
use tokio::sync::{mpsc, watch};

use crate::config::{DartConfig, DartMode};
use crate::driver::{DispenserDriver, DispenserError};
use crate::{DartListener, DartMaster};

/// The DART driver the config asks for: [`DartMaster`] or [`DartListener`] by `mode`.
pub enum DartDriver {
    Master(DartMaster),
    Listener(DartListener),
}

impl DartDriver {
    pub fn new(cfg: DartConfig) -> Result<Self, DispenserError> {
        Ok(match cfg.mode {
            DartMode::Master => DartDriver::Master(DartMaster::new(cfg)?),
            DartMode::Listen => DartDriver::Listener(DartListener::new(cfg)?),
        })
    }

    /// Starts `fp`'s totalizer bookkeeping for `nozzle` from a reading the station kept across
    /// a restart (see `FuellingPoint::restore_totals`). False if `fp` is not on this line.
    pub fn restore_totals(&mut self, fp: FpNumber, nozzle: u8, total: u64) -> bool {
        match self {
            DartDriver::Master(m) => m.restore_totals(fp, nozzle, total),
            DartDriver::Listener(l) => l.restore_totals(fp, nozzle, total),
        }
    }

    /// A master resets a pump only once its sale is kept; a listener sends nothing anyway.
    pub fn reset_after_kept(&mut self, kept: Arc<forecourt_events::KeptSales>) {
        if let DartDriver::Master(m) = self {
            m.reset_after_kept(kept);
        }
    }
}

impl DispenserDriver for DartDriver {
    fn heartbeat(&self) -> Arc<Heartbeat> {
        match self {
            DartDriver::Master(m) => m.heartbeat(),
            DartDriver::Listener(l) => l.heartbeat(),
        }
    }

    async fn run(
        self,
        events: mpsc::Sender<DispenserEvent>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<(), DispenserError> {
        match self {
            DartDriver::Master(m) => m.run(events, shutdown).await,
            DartDriver::Listener(l) => l.run(events, shutdown).await,
        }
    }
}
