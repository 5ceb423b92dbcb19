//! Dispenser drivers: talk to pumps, emit [`forecourt_events::DispenserEvent`]s. One driver per
//! protocol behind [`DispenserDriver`]; today Wayne DART as bus master ([`DartMaster`]) or as a
//! read-only listener on a bus another controller polls ([`DartListener`]); [`DartDriver`] picks
//! one by the config's `mode`.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod config;
pub mod dart_driver;
pub mod dart_listener;
pub mod dart_master;
pub mod driver;
mod line;
pub mod wire_observer;

pub use config::{DartConfig, DartMode, DecimalsConfig, FpConfig};
pub use dart_driver::DartDriver;
pub use dart_listener::DartListener;
pub use dart_master::DartMaster;
pub use driver::{DispenserDriver, DispenserError};
pub use wire_observer::{ObserverStats, WireObserver};
