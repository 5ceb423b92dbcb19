//! DART master configuration, deserialisable so the agent can embed it in its TOML config:
//!
//! ```toml
//! port = "/dev/ttyUSB0"
//! mode = "master"          # or "listen": another controller polls, we only read the wire
//! auto_authorize = true
//! totals_interval_s = 300  # volume totalizer (CD101) readings for missed-sale detection
//! [[fps]]
//! fp = 1
//! address = 0x50
//! decimals = { volume = 2, amount = 2, price = 3 }
//! grades = ["95", "Diesel"]
//! nozzles = 2              # optional; defaults to the number of grades
//! ```

use std::path::PathBuf;

use dart_protocol::{is_valid_address, Decimals, FuellingPointConfig};
use forecourt_events::FpNumber;
use serde::Deserialize;

use crate::driver::DispenserError;

/// Whether the agent polls the bus or only listens to another master.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DartMode {
    /// The agent is the bus master ([`crate::DartMaster`]).
    #[default]
    Master,
    /// Another controller polls the pumps; the agent never writes a byte
    /// ([`crate::DartListener`]). Only ONE master may poll a bus.
    Listen,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DartConfig {
    pub port: PathBuf,
    #[serde(default)]
    pub mode: DartMode,
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
    /// Period of volume totalizer readings (master mode); 0 = only at start, after line faults
    /// and after each sale. In listen mode totals are used whenever the other master asks.
    #[serde(default = "default_totals_interval_s")]
    pub totals_interval_s: u64,
    /// Listen mode: a silence this long on the wire ends a partial frame (the next byte starts
    /// a new one). A pump answers within 25 ms, so a gap that long is between frames.
    #[serde(default = "default_frame_gap_ms")]
    pub frame_gap_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FpConfig {
    pub fp: FpNumber,
    /// Bus address, 0x50..=0x6F.
    pub address: u8,
    #[serde(default)]
    pub decimals: DecimalsConfig,
    /// Grade name per logical nozzle: index 0 = nozzle 1.
    #[serde(default)]
    pub grades: Vec<String>,
    /// Logical nozzles whose totalizers are read; defaults to the number of grades (at least 1).
    #[serde(default)]
    pub nozzles: Option<u8>,
}

/// Decimal places used on the wire by a pump; they differ between pumps on one site.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
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
fn default_totals_interval_s() -> u64 {
    (dart_protocol::TOTALS_INTERVAL_MS / 1000) as u64
}
fn default_frame_gap_ms() -> u64 {
    50
}
fn two() -> u8 {
    2
}

impl DartConfig {
    /// The line as DART wants it: 8 data bits, odd parity, 1 stop bit (master and listener alike).
    /// Opens `port` as a DART line is opened and closes it again: whether the driver could
    /// open it now (the device exists, this user may open it, nothing else holds it).
    pub fn probe_port(port: &std::path::Path, baud: u32) -> Result<(), tokio_serial::Error> {
        Self::line_settings(port, baud).open().map(drop)
    }

    fn line_settings(port: &std::path::Path, baud: u32) -> tokio_serial::SerialPortBuilder {
        tokio_serial::new(port.to_string_lossy(), baud)
            .data_bits(tokio_serial::DataBits::Eight)
            .parity(tokio_serial::Parity::Odd)
            .stop_bits(tokio_serial::StopBits::One)
    }

    pub(crate) fn open_port(&self) -> Result<tokio_serial::SerialStream, tokio_serial::Error> {
        use tokio_serial::SerialPortBuilderExt;
        Self::line_settings(&self.port, self.baud).open_native_async()
    }

    /// A config with defaults for everything but the port and the FPs.
    pub fn new(port: impl Into<PathBuf>, fps: Vec<FpConfig>) -> Self {
        DartConfig {
            port: port.into(),
            mode: DartMode::Master,
            baud: default_baud(),
            fps,
            auto_authorize: false,
            poll_interval_ms: default_poll_interval_ms(),
            response_timeout_ms: default_response_timeout_ms(),
            offline_after_timeouts: default_offline_after_timeouts(),
            nozzle_debounce_ms: default_nozzle_debounce_ms(),
            totals_interval_s: default_totals_interval_s(),
            frame_gap_ms: default_frame_gap_ms(),
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
        if self
            .fps
            .iter()
            .any(|f| f.nozzles == Some(0) || f.nozzles > Some(15))
        {
            return err("nozzles must be within 1..=15".into());
        }
        if self.response_timeout_ms == 0 {
            return err("response_timeout_ms must be > 0".into());
        }
        Ok(())
    }
}

impl FpConfig {
    /// The state machine's config; `totals_interval_ms` 0 = no periodic totalizer readings.
    pub fn fuelling_point_config(
        &self,
        debounce_ms: i64,
        totals_interval_ms: i64,
    ) -> FuellingPointConfig {
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
        c.totals_interval_ms = totals_interval_ms;
        if let Some(n) = self.nozzles {
            c.nozzles = n;
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The agent embeds this struct in its TOML; configs written before `mode` existed still
    /// load, as bus masters.
    #[derive(Deserialize)]
    struct Wrapper {
        dispenser: Vec<DartConfig>,
    }

    #[test]
    fn old_config_is_master_with_defaults() {
        let w: Wrapper = toml::from_str(
            "[[dispenser]]\nport = \"/dev/ttyUSB0\"\n[[dispenser.fps]]\nfp = 1\naddress = 0x50\n",
        )
        .unwrap();
        let c = &w.dispenser[0];
        assert_eq!(c.mode, DartMode::Master);
        assert_eq!(c.totals_interval_s, 300);
        assert_eq!(c.fps[0].nozzles, None);
        c.validate().unwrap();
        let fpc = c.fps[0].fuelling_point_config(300, 1_000);
        assert_eq!((fpc.nozzles, fpc.totals_interval_ms), (1, 1_000));
    }

    #[test]
    fn listen_mode_and_nozzles() {
        let w: Wrapper = toml::from_str(
            "[[dispenser]]\nport = \"p\"\nmode = \"listen\"\n[[dispenser.fps]]\nfp = 1\naddress = 0x50\nnozzles = 4\ngrades = [\"95\"]\n",
        )
        .unwrap();
        let c = &w.dispenser[0];
        assert_eq!(c.mode, DartMode::Listen);
        assert_eq!(c.fps[0].fuelling_point_config(300, 0).nozzles, 4);
        assert!(toml::from_str::<Wrapper>(
            "[[dispenser]]\nport = \"p\"\nmode = \"slave\"\nfps = []\n"
        )
        .is_err());
    }
}
