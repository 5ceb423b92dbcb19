//! The `[uplink]` section of the agent's TOML, and turning it into rumqttc options.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rumqttc::{LastWill, MqttOptions, QoS, TlsConfiguration, Transport};
use serde::Deserialize;

use crate::UplinkError;

/// In-flight slots beyond `max_inflight`: status, command replies.
pub(crate) const EXTRA_INFLIGHT: u16 = 16;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UplinkConfig {
    /// HQ broker host name or address.
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    pub station_id: String,
    /// MQTT client id; `forecourt-<station_id>` if not given. Must be stable across restarts
    /// (the broker keeps our session under it).
    #[serde(default)]
    pub client_id: Option<String>,
    /// First topic level of the status topic `<prefix>/<station_id>/status`.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    #[serde(default = "default_keep_alive_s")]
    pub keep_alive_s: u64,
    #[serde(default)]
    pub tls: Option<TlsFiles>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// Records published but not yet acknowledged, at most.
    #[serde(default = "default_max_inflight")]
    pub max_inflight: u16,
    /// How often to look at the outbox without being woken.
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// Reconnect delay: starts here, doubles per failed attempt, up to `backoff_max_ms`.
    #[serde(default = "default_backoff_min_ms")]
    pub backoff_min_ms: u64,
    #[serde(default = "default_backoff_max_ms")]
    pub backoff_max_ms: u64,
    #[serde(default = "default_connect_timeout_s")]
    pub connect_timeout_s: u64,
    /// Largest MQTT packet we send (a record that does not fit goes to the dead letters); we
    /// accept up to [`MAX_INCOMING_PACKET_BYTES`] or this, whichever is larger.
    #[serde(default = "default_max_packet_bytes")]
    pub max_packet_bytes: usize,
    /// How often the health message goes to `<prefix>/<station_id>/health`; 0: never.
    #[serde(default = "default_health_interval_s")]
    pub health_interval_s: u64,
    /// How often the outbox caps and archive retention are applied (online or not).
    #[serde(default = "default_limits_interval_s")]
    pub limits_interval_s: u64,
    /// How long the agent has to answer a command before HQ gets a timeout error.
    #[serde(default = "default_command_timeout_s")]
    pub command_timeout_s: u64,
    /// A command HQ stamped (`t`, Unix ms) longer ago than this is refused as stale: a command
    /// queued for an offline station must not run hours later. 0: no limit.
    #[serde(default = "default_command_max_age_s")]
    pub command_max_age_s: u64,
}

/// PEM files for a TLS connection. Client cert and key go together (mutual TLS) or not at all.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    pub ca_file: PathBuf,
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
}

fn default_port() -> u16 {
    1883
}
fn default_prefix() -> String {
    "forecourt".into()
}
fn default_keep_alive_s() -> u64 {
    30
}
fn default_max_inflight() -> u16 {
    100
}
fn default_poll_interval_ms() -> u64 {
    1000
}
fn default_backoff_min_ms() -> u64 {
    500
}
fn default_backoff_max_ms() -> u64 {
    30_000
}
fn default_connect_timeout_s() -> u64 {
    10
}
/// The largest packet accepted from the broker (at least `max_packet_bytes`). Bigger ones still
/// end the connection; the reconnect backoff then keeps them from causing a storm.
pub const MAX_INCOMING_PACKET_BYTES: usize = 32 * 1024 * 1024;

fn default_max_packet_bytes() -> usize {
    1024 * 1024
}
fn default_health_interval_s() -> u64 {
    60
}
fn default_limits_interval_s() -> u64 {
    30
}
fn default_command_timeout_s() -> u64 {
    30
}
fn default_command_max_age_s() -> u64 {
    600
}

impl UplinkConfig {
    /// A username or password is configured and the connection is not TLS.
    pub fn credentials_in_clear(&self) -> bool {
        (self.username.is_some() || self.password.is_some()) && self.tls.is_none()
    }

    /// A config with every default, for `host` and `station_id`.
    pub fn new(host: impl Into<String>, station_id: impl Into<String>) -> Self {
        UplinkConfig {
            host: host.into(),
            port: default_port(),
            station_id: station_id.into(),
            client_id: None,
            prefix: default_prefix(),
            keep_alive_s: default_keep_alive_s(),
            tls: None,
            username: None,
            password: None,
            max_inflight: default_max_inflight(),
            poll_interval_ms: default_poll_interval_ms(),
            backoff_min_ms: default_backoff_min_ms(),
            backoff_max_ms: default_backoff_max_ms(),
            connect_timeout_s: default_connect_timeout_s(),
            max_packet_bytes: default_max_packet_bytes(),
            health_interval_s: default_health_interval_s(),
            limits_interval_s: default_limits_interval_s(),
            command_timeout_s: default_command_timeout_s(),
            command_max_age_s: default_command_max_age_s(),
        }
    }

    pub fn client_id(&self) -> String {
        self.client_id
            .clone()
            .unwrap_or_else(|| format!("forecourt-{}", self.station_id))
    }

    /// `<prefix>/<station_id>/status`, retained: online/offline.
    pub fn status_topic(&self) -> String {
        format!("{}/{}/status", self.prefix, self.station_id)
    }

    /// `<prefix>/<station_id>/health`: the periodic health message.
    pub fn health_topic(&self) -> String {
        format!("{}/{}/health", self.prefix, self.station_id)
    }

    /// `<prefix>/<station_id>/events/<stream>`: where the records of `stream` go.
    pub fn event_topic(&self, stream: &str) -> String {
        format!("{}/{}/events/{stream}", self.prefix, self.station_id)
    }

    /// `<prefix>/<station_id>/cmd`: commands arrive on `<cmd root>/<name>`, replies go to
    /// `<cmd root>/<name>/reply`.
    pub fn command_root(&self) -> String {
        format!("{}/{}/cmd", self.prefix, self.station_id)
    }

    pub(crate) fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms.max(10))
    }

    /// Checks the values and builds the connection options, reading the TLS files now so a
    /// missing or wrong file stops the agent at startup, not at the first connection.
    pub(crate) fn mqtt_options(&self, last_will: Vec<u8>) -> Result<MqttOptions, UplinkError> {
        let invalid = |why: String| Err(UplinkError::InvalidConfig(why));
        if self.host.is_empty() {
            return invalid("host is empty".into());
        }
        if self.station_id.is_empty() || self.station_id.contains(['/', '+', '#']) {
            return invalid(format!(
                "station_id {:?} must be non-empty and contain no '/', '+' or '#'",
                self.station_id
            ));
        }
        if self.max_inflight == 0 || self.max_inflight > u16::MAX - EXTRA_INFLIGHT {
            return invalid(format!(
                "max_inflight must be between 1 and {}",
                u16::MAX - EXTRA_INFLIGHT
            ));
        }
        if self.prefix.is_empty() || self.prefix.contains(['+', '#']) {
            return invalid(format!(
                "prefix {:?} must be non-empty and contain no '+' or '#'",
                self.prefix
            ));
        }
        if self.limits_interval_s == 0 || self.command_timeout_s == 0 {
            return invalid("limits_interval_s and command_timeout_s must be > 0".into());
        }
        if self.backoff_min_ms == 0 || self.backoff_max_ms < self.backoff_min_ms {
            return invalid("backoff_min_ms must be > 0 and <= backoff_max_ms".into());
        }
        let mut opts = MqttOptions::new(self.client_id(), &self.host, self.port);
        // rumqttc refuses keep-alives below one second (0 disables them).
        opts.set_keep_alive(Duration::from_secs(self.keep_alive_s));
        // Persistent session: the broker keeps our session across reconnects.
        opts.set_clean_session(false);
        // Room for status messages and command replies in flight next to the records.
        opts.set_inflight(self.max_inflight.saturating_add(EXTRA_INFLIGHT));
        // Incoming: far above the command cap, so an oversized command (a retained one comes
        // with every subscription) reaches our parser, which refuses it, instead of killing
        // the connection in the client.
        opts.set_max_packet_size(
            self.max_packet_bytes.max(MAX_INCOMING_PACKET_BYTES),
            self.max_packet_bytes,
        );
        opts.set_last_will(LastWill::new(
            self.status_topic(),
            last_will,
            QoS::AtLeastOnce,
            true,
        ));
        match (&self.username, &self.password) {
            (Some(user), password) => {
                opts.set_credentials(user, password.clone().unwrap_or_default());
            }
            (None, Some(_)) => return invalid("password given without username".into()),
            (None, None) => {}
        }
        if let Some(tls) = &self.tls {
            opts.set_transport(Transport::tls_with_config(tls.load()?));
        }
        Ok(opts)
    }
}

impl TlsFiles {
    /// Reads and checks the PEM files into rumqttc's TLS settings (for an MQTT 3.1.1 or 5
    /// client alike), and makes sure rustls has its crypto provider.
    pub fn load(&self) -> Result<TlsConfiguration, UplinkError> {
        // rumqttc is built without a crypto provider (ring instead of aws-lc: smaller and
        // cross-compiles cleanly); rustls needs one installed for the process. An earlier
        // install, by us or anyone, is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let ca = read_pem(&self.ca_file, "CERTIFICATE")?;
        let client_auth = match (&self.client_cert_file, &self.client_key_file) {
            (Some(cert), Some(key)) => Some((
                read_pem(cert, "CERTIFICATE")?,
                read_pem(key, "PRIVATE KEY")?,
            )),
            (None, None) => None,
            _ => {
                return Err(UplinkError::InvalidConfig(
                    "tls: client_cert_file and client_key_file go together".into(),
                ))
            }
        };
        Ok(TlsConfiguration::Simple {
            ca,
            alpn: None,
            client_auth,
        })
    }
}

/// Reads a PEM file and checks it holds a block whose label ends with `label`
/// ("CERTIFICATE", or "PRIVATE KEY" which also matches "RSA/EC PRIVATE KEY").
fn read_pem(path: &Path, label: &str) -> Result<Vec<u8>, UplinkError> {
    let bytes = std::fs::read(path).map_err(|source| UplinkError::TlsFile {
        path: path.to_path_buf(),
        why: source.to_string(),
    })?;
    let text = String::from_utf8_lossy(&bytes);
    let has_block = text
        .lines()
        .any(|l| l.starts_with("-----BEGIN ") && l.trim_end().ends_with(&format!("{label}-----")));
    if !has_block {
        return Err(UplinkError::TlsFile {
            path: path.to_path_buf(),
            why: format!("no PEM \"{label}\" block in it"),
        });
    }
    Ok(bytes)
}
