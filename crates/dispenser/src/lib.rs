//! Sale sources: talk to pumps or to the station's own systems, emit
//! [`forecourt_events::DispenserEvent`]s. One driver per protocol behind [`DispenserDriver`]: Wayne
//! DART as bus master ([`DartMaster`]) or as a read-only listener on a bus another controller
//! polls ([`DartListener`]), [`DartDriver`] picking one by the config's `mode`; and IFSF over
//! TCP/IP, watch-only ([`IfsfTcpDriver`], its protocol state in [`IfsfWatch`]); and IFSF POS-FDC,
//! watch-only ([`IfsfFdcDriver`], its state in [`FdcWatch`]).

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod config;
pub mod dart_driver;
pub mod dart_listener;
pub mod dart_master;
pub mod driver;
pub mod fdc_config;
pub mod fdc_tcp;
pub mod fdc_watch;
pub mod ifsf_config;
pub mod ifsf_mirror;
pub mod ifsf_tcp;
pub mod ifsf_watch;
mod line;
mod point_memory;
mod tcp_link;
pub mod wire_observer;

pub use config::{DartConfig, DartMode, DecimalsConfig, FpConfig};
pub use dart_driver::DartDriver;
pub use dart_listener::DartListener;
pub use dart_master::DartMaster;
pub use driver::{DispenserDriver, DispenserError, EitherDriver};
pub use fdc_config::{FdcFpConfig, FdcHeader, IfsfFdcConfig};
pub use fdc_tcp::IfsfFdcDriver;
pub use fdc_watch::{FdcStats, FdcStep, FdcWatch};
pub use forecourt_events::{LinkSnapshot, LinkStats};
pub use ifsf_config::{IfsfFpConfig, IfsfMode, IfsfTcpConfig};
pub use ifsf_mirror::{IfsfMirrorDriver, IfsfSource};
pub use ifsf_tcp::{IfsfTcpDriver, Tapped};
pub use ifsf_watch::{IfsfWatch, WatchStats, WatchStep};
pub use wire_observer::{ObserverStats, WireObserver};
