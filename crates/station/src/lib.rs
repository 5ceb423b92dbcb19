//! The station: dispenser events and plate reads in, matched sales out to the outbox, and HQ's
//! commands carried out. Everything that leaves the station is committed to the outbox before
//! the uplink may publish it; a sale is held durably from the moment the pump reports it until
//! its match is sent, so it leaves exactly once, across restarts too.
//!
//! - [`Station`]: the loop ([`Station::run`]), built from [`StationParts`];
//! - `writer`: outbox writes, kept in memory and retried in order while the disk refuses them;
//! - `restore`: what a restart takes over from the outbox (held sales, sales already sent, closed
//!   hours), and `earlier_run`: how a sale the pump reports again after a restart is counted once;
//! - `cmd`: one file per HQ command the station carries out;
//! - `recording`: trace files for `forecourt-agent replay`;
//! - [`live`]: every record as it is decided, for the station console;
//! - [`plate_notes`]: HQ's notes on plates, shown at the station when the car arrives;
//! - [`crops`] and [`evidence`]: the plate pictures behind each verdict, for the console;
//! - [`reader`]: the plate-reader thread that turns camera frames into [`FramePlates`], reading
//!   only what [`focus`] says can matter.
//!
//! [`FramePlates`]: forecourt_events::FramePlates

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod cmd;
pub mod command_queue;
mod config_source;
pub mod crops;
mod earlier_run;
mod error;
pub mod evidence;
pub mod focus;
#[cfg(feature = "reader")]
pub mod health;
pub mod live;
pub mod liveness;
pub mod plate_notes;
mod pump_board;
#[cfg(feature = "reader")]
pub mod reader;
mod recording;
mod restore;
#[cfg(feature = "reader")]
pub mod snapshots;
mod station;
mod trace_files;
#[cfg(feature = "reader")]
pub mod vision;
mod writer;

pub use cmd::StationCommands;
pub use config_source::{ConfigSource, Reload, ReloadError};
pub use earlier_run::{last_released_per_fp, ReleasedSale};
pub use error::{CommandFailed, RecordingError, StationError};
pub use pump_board::PumpBoard;
pub use restore::Restored;
pub use station::{matcher_correction, sale_body, Station, StationParts, TRACE_REORDER_MS};
