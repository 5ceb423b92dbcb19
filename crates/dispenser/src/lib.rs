//! Dispenser drivers: talk to pumps, emit [`forecourt_events::DispenserEvent`]s. One driver per
//! protocol behind [`DispenserDriver`]; today Wayne DART as bus master ([`DartMaster`]).

pub mod config;
pub mod dart_master;
pub mod driver;

pub use config::{DartConfig, DecimalsConfig, FpConfig};
pub use dart_master::DartMaster;
pub use driver::{DispenserDriver, DispenserError};
