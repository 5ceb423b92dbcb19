//! Configuration of an IFSF POS-FDC source, deserialisable so the agent can embed it in its
//! TOML config:
//!
//! ```toml
//! address = "192.168.1.10:4710"   # the forecourt controller's FDC port
//! header = "length_hash_md5"      # or "length_zero", "length_md5": as the controller is set up
//! passphrase = "..."              # for the MD5 variants
//! [[fps]]
//! fp = 1        # the fuelling point's number at the station
//! pump = 1      # the controller's PumpNo for it
//! grades = ["92#", "95#"]
//! ```

use forecourt_events::FpNumber;
use ifsf_fdc::HeaderVariant;
use serde::Deserialize;

use crate::driver::DispenserError;

/// Which binary header the controller puts in front of each XML message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FdcHeader {
    /// Length, `00 01`, MD5 of the XML and the passphrase.
    #[default]
    LengthHashMd5,
    /// Length, `00 00`.
    LengthZero,
    /// Length, MD5 of the XML and the passphrase.
    LengthMd5,
}

impl FdcHeader {
    /// As the config writes it.
    pub fn name(self) -> &'static str {
        match self {
            FdcHeader::LengthHashMd5 => "length_hash_md5",
            FdcHeader::LengthZero => "length_zero",
            FdcHeader::LengthMd5 => "length_md5",
        }
    }

    pub fn variant(self) -> HeaderVariant {
        match self {
            FdcHeader::LengthHashMd5 => HeaderVariant::LengthHashMd5,
            FdcHeader::LengthZero => HeaderVariant::LengthZero,
            FdcHeader::LengthMd5 => HeaderVariant::LengthMd5,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IfsfFdcConfig {
    /// `host:port` of the controller's FDC interface (4710 on the controllers seen).
    pub address: String,
    #[serde(default)]
    pub header: FdcHeader,
    /// Shared with the controller, for the MD5 header variants.
    #[serde(default)]
    pub passphrase: String,
    /// The `ApplicationSender` the agent logs on as: one the station's POS does not use.
    #[serde(default = "default_sender")]
    pub application_sender: String,
    #[serde(default = "default_workstation")]
    pub workstation_id: String,
    pub fps: Vec<FdcFpConfig>,
    /// `POS_Ready` this often (controllers drop a client after 30-45 s of silence).
    #[serde(default = "default_heartbeat_interval_s")]
    pub heartbeat_interval_s: u64,
    /// The sales the controller holds are asked for this often (and after each logon): a sale
    /// whose notification was missed is found then.
    #[serde(default = "default_reconcile_interval_s")]
    pub reconcile_interval_s: u64,
    /// No message from the controller for this long: the link is dropped and made again.
    #[serde(default = "default_silence_timeout_s")]
    pub silence_timeout_s: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FdcFpConfig {
    /// The fuelling point's number at the station (as the zones and HQ know it).
    pub fp: FpNumber,
    /// The controller's `PumpNo` for it.
    pub pump: u32,
    /// Grade name per nozzle: index 0 = nozzle 1. A sale on a nozzle with no name here carries
    /// the controller's product number instead.
    #[serde(default)]
    pub grades: Vec<String>,
}

fn default_sender() -> String {
    "FCAGENT".into()
}
fn default_workstation() -> String {
    "FCAGENT".into()
}
fn default_heartbeat_interval_s() -> u64 {
    12
}
fn default_reconcile_interval_s() -> u64 {
    30
}
fn default_silence_timeout_s() -> u64 {
    45
}

impl IfsfFdcConfig {
    pub fn validate(&self) -> Result<(), DispenserError> {
        let err = |m: String| Err(DispenserError::Config(m));
        crate::tcp_link::check_host_port(&self.address, "192.168.1.10:4710")?;
        if self.header != FdcHeader::LengthZero && self.passphrase.is_empty() {
            return err(format!(
                "header \"{}\" signs every message with the passphrase: set passphrase, or header = \"length_zero\"",
                self.header.name()
            ));
        }
        for (what, value) in [
            ("application_sender", &self.application_sender),
            ("workstation_id", &self.workstation_id),
        ] {
            if value.trim().is_empty() {
                return err(format!("{what} is empty"));
            }
        }
        if self.fps.is_empty() {
            return err("no fuelling points configured".into());
        }
        for (i, f) in self.fps.iter().enumerate() {
            if self.fps[..i]
                .iter()
                .any(|o| o.pump == f.pump || o.fp == f.fp)
            {
                return err(format!("fp {} / pump {} configured twice", f.fp, f.pump));
            }
        }
        if self.heartbeat_interval_s == 0
            || self.silence_timeout_s <= self.heartbeat_interval_s
            || self.reconcile_interval_s == 0
        {
            return err(format!(
                "heartbeat_interval_s ({}) and reconcile_interval_s ({}) must be above 0, and silence_timeout_s ({}) above the heartbeat",
                self.heartbeat_interval_s, self.reconcile_interval_s, self.silence_timeout_s
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
address = "127.0.0.1:4710"
passphrase = "secret"
fps = [{ fp = 1, pump = 3, grades = ["92#"] }, { fp = 2, pump = 4 }]
"#;

    #[test]
    fn a_good_config_validates_with_defaults() {
        let c: IfsfFdcConfig = toml::from_str(GOOD).unwrap();
        c.validate().unwrap();
        assert_eq!(c.header, FdcHeader::LengthHashMd5);
        assert_eq!(
            (
                c.heartbeat_interval_s,
                c.reconcile_interval_s,
                c.silence_timeout_s
            ),
            (12, 30, 45)
        );
    }

    #[test]
    fn mistakes_are_explained() {
        for (from, to, says) in [
            ("127.0.0.1:4710", "127.0.0.1", "is not host:port"),
            ("passphrase = \"secret\"", "", "set passphrase"),
            ("pump = 4", "pump = 3", "configured twice"),
        ] {
            let c: IfsfFdcConfig = toml::from_str(&GOOD.replace(from, to)).unwrap();
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(says), "{to}: {e}");
        }
        let zero: IfsfFdcConfig =
            toml::from_str(&GOOD.replace("passphrase = \"secret\"", "header = \"length_zero\""))
                .unwrap();
        zero.validate().unwrap();
    }
}
