//! DART master configuration, deserialisable so the agent can embed it in its TOML config:
//!
//! ```toml
//! port = "/dev/ttyUSB0"
//! auto_authorize = true
//! [[fps]]
//! fp = 1
//! address = 0x50
//! decimals = { volume = 2, amount = 2, price = 3 }
//! grades = ["95", "Diesel"]
//! ```

use std::path::PathBuf;

use dart_protocol::{is_valid_address, Decimals, FuellingPointConfig};
use forecourt_events::FpNumber;
use serde::Deserialize;

use crate::driver::DispenserError;

#[derive(Debug, Clone, Deserialize)]
pub struct DartConfig {
    pub port: PathBuf,
    #[serde(default = "default_baud")]
    pub baud: u32,
    pub fps: Vec<FpConfig>,
    /// Authorize a pump as soon as a nozzle is lifted (unattended / no payment gate).
    #[serde(default)]
    pub auto_authorize: bool,
    /// Minimum time of one round over all FPs.
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// How long to wait for a pump's answer (spec: 25 ms; ptys and USB adapters need more).
    #[serde(default = "default_response_timeout_ms")]
    pub response_timeout_ms: u64,
    /// Consecutive unanswered frames after which an FP is reported offline.
    #[serde(default = "default_offline_after_timeouts")]
    pub offline_after_timeouts: u32,
    /// A nozzle change must persist this long to be reported (see dart_protocol::fuelling_point).
    #[serde(default = "default_nozzle_debounce_ms")]
    pub nozzle_debounce_ms: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FpConfig {
    pub fp: FpNumber,
    /// Bus address, 0x50..=0x6F.
    pub address: u8,
    #[serde(default)]
    pub decimals: DecimalsConfig,
    /// Grade name per logical nozzle: index 0 = nozzle 1.
    #[serde(default)]
    pub grades: Vec<String>,
}

/// Decimal places used on the wire by a pump; they differ between pumps on one site.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct DecimalsConfig {
    #[serde(default = "two")]
    pub volume: u8,
    #[serde(default = "two")]
    pub amount: u8,
    #[serde(default = "two")]
    pub price: u8,
}

impl Default for DecimalsConfig {
    fn default() -> Self {
        DecimalsConfig {
            volume: 2,
            amount: 2,
            price: 2,
        }
    }
}

fn default_baud() -> u32 {
    9600
}
fn default_poll_interval_ms() -> u64 {
    100
}
fn default_response_timeout_ms() -> u64 {
    40
}
fn default_offline_after_timeouts() -> u32 {
    3
}
fn default_nozzle_debounce_ms() -> i64 {
    dart_protocol::NOZZLE_DEBOUNCE_MS
}
fn two() -> u8 {
    2
}

impl DartConfig {
    /// A config with defaults for everything but the port and the FPs.
    pub fn new(port: impl Into<PathBuf>, fps: Vec<FpConfig>) -> Self {
        DartConfig {
            port: port.into(),
            baud: default_baud(),
            fps,
            auto_authorize: false,
            poll_interval_ms: default_poll_interval_ms(),
            response_timeout_ms: default_response_timeout_ms(),
            offline_after_timeouts: default_offline_after_timeouts(),
            nozzle_debounce_ms: default_nozzle_debounce_ms(),
        }
    }

    pub fn validate(&self) -> Result<(), DispenserError> {
        let err = |m: String| Err(DispenserError::Config(m));
        if self.fps.is_empty() {
            return err("no fuelling points configured".into());
        }
        for (i, f) in self.fps.iter().enumerate() {
            if !is_valid_address(f.address) {
                return err(format!(
                    "fp {}: address 0x{:02X} outside 0x50..0x6F",
                    f.fp, f.address
                ));
            }
            let d = f.decimals;
            if d.volume > 9 || d.amount > 9 || d.price > 9 {
                return err(format!("fp {}: more than 9 decimals", f.fp));
            }
            if self.fps[..i]
                .iter()
                .any(|o| o.address == f.address || o.fp == f.fp)
            {
                return err(format!(
                    "fp {} / address 0x{:02X} configured twice",
                    f.fp, f.address
                ));
            }
        }
        if self.response_timeout_ms == 0 {
            return err("response_timeout_ms must be > 0".into());
        }
        Ok(())
    }
}

impl FpConfig {
    pub fn fuelling_point_config(&self, debounce_ms: i64) -> FuellingPointConfig {
        let d = self.decimals;
        let mut c = FuellingPointConfig::new(
            self.fp,
            Decimals {
                volume: d.volume,
                amount: d.amount,
                price: d.price,
            },
            self.grades.clone(),
        );
        c.nozzle_debounce_ms = debounce_ms;
        c
    }
}
