//! `hq-ingest.toml`: one file per worker; the workers of one deployment differ only in
//! `[mqtt] client_id`.

use std::path::Path;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    pub mqtt: MqttSettings,
    pub postgres: PostgresSettings,
    #[serde(default)]
    pub batch: BatchSettings,
    #[serde(default)]
    pub repair: RepairSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttSettings {
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    /// This worker's MQTT client id: stable across restarts (the broker keeps the worker's
    /// session, and the share of messages queued for it, under this id), unique per worker.
    pub client_id: String,
    /// The shared-subscription group all workers of one deployment join.
    #[serde(default = "default_group")]
    pub group: String,
    /// The stations' `[uplink] prefix`.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// Unacknowledged messages the broker may send this worker at once (MQTT 5 Receive
    /// Maximum): the work in flight, and what a crashed worker has the broker send again.
    #[serde(default = "default_receive_maximum")]
    pub receive_maximum: u16,
    /// How long the broker keeps this worker's session (and queues its share) while it is
    /// away: a restart within it loses nothing.
    #[serde(default = "default_session_expiry_s")]
    pub session_expiry_s: u32,
    #[serde(default = "default_keep_alive_s")]
    pub keep_alive_s: u64,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// TLS to the broker: `ca_file`, and `client_cert_file` with `client_key_file` for mutual
    /// TLS (PEM), as in the station's `[uplink.tls]`. Without it, plain TCP.
    #[serde(default)]
    pub tls: Option<uplink::TlsFiles>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSettings {
    /// A libpq-style connection string, e.g. `host=/run/postgresql dbname=forecourt user=hq`.
    pub url: String,
    /// Connections in this worker's pool (the writer and the gap sweeper's queries).
    #[serde(default = "default_pool")]
    pub pool: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchSettings {
    /// Most records written in one transaction.
    #[serde(default = "default_batch_max")]
    pub max: usize,
    /// Longest a record waits for its batch to fill.
    #[serde(default = "default_batch_ms")]
    pub ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepairSettings {
    /// How often the gap sweeper (one worker at a time) looks for holes.
    #[serde(default = "default_sweep_ms")]
    pub sweep_ms: u64,
    /// A hole younger than this is left alone: its records may still be on their way.
    #[serde(default = "default_gap_grace_ms")]
    pub gap_grace_ms: u64,
    /// First wait before asking again for a hole a `resend` did not close; doubles per ask.
    #[serde(default = "default_resend_retry_ms")]
    pub resend_retry_ms: u64,
    /// Longest wait between two asks for one hole.
    #[serde(default = "default_resend_retry_max_ms")]
    pub resend_retry_max_ms: u64,
    /// Most `resend` commands one sweep publishes (one per station at most: a station runs one
    /// resend at a time).
    #[serde(default = "default_max_resends_per_sweep")]
    pub max_resends_per_sweep: usize,
}

impl Default for BatchSettings {
    fn default() -> Self {
        BatchSettings {
            max: default_batch_max(),
            ms: default_batch_ms(),
        }
    }
}

impl Default for RepairSettings {
    fn default() -> Self {
        RepairSettings {
            sweep_ms: default_sweep_ms(),
            gap_grace_ms: default_gap_grace_ms(),
            resend_retry_ms: default_resend_retry_ms(),
            resend_retry_max_ms: default_resend_retry_max_ms(),
            max_resends_per_sweep: default_max_resends_per_sweep(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {why}")]
    Read { path: String, why: std::io::Error },
    #[error("{path}: {why}")]
    Parse {
        path: String,
        why: Box<toml::de::Error>,
    },
    #[error("{path}: {field} {why}")]
    Invalid {
        path: String,
        field: &'static str,
        why: &'static str,
    },
}

impl IngestConfig {
    pub fn load(path: &Path) -> Result<IngestConfig, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|why| ConfigError::Read {
            path: shown.clone(),
            why,
        })?;
        IngestConfig::parse(&text, &shown)
    }

    /// Parses and checks `text`; `path` names it in errors.
    pub fn parse(text: &str, path: &str) -> Result<IngestConfig, ConfigError> {
        let config: IngestConfig = toml::from_str(text).map_err(|why| ConfigError::Parse {
            path: path.to_string(),
            why: Box::new(why),
        })?;
        let invalid = |field, why| ConfigError::Invalid {
            path: path.to_string(),
            field,
            why,
        };
        let topic_level_ok =
            |s: &str| !s.is_empty() && !s.contains(['/', '+', '#']) && !s.contains('\0');
        if !topic_level_ok(&config.mqtt.group) {
            return Err(invalid("mqtt.group", "must be one topic level (no / + #)"));
        }
        if !topic_level_ok(&config.mqtt.prefix) {
            return Err(invalid("mqtt.prefix", "must be one topic level (no / + #)"));
        }
        if config.mqtt.client_id.is_empty() {
            return Err(invalid("mqtt.client_id", "must not be empty"));
        }
        if config.mqtt.receive_maximum == 0 {
            return Err(invalid("mqtt.receive_maximum", "must be at least 1"));
        }
        if config.postgres.pool < 2 {
            return Err(invalid(
                "postgres.pool",
                "must be at least 2 (the writer and the sweeper)",
            ));
        }
        if config.batch.max == 0 {
            return Err(invalid("batch.max", "must be at least 1"));
        }
        if config.repair.sweep_ms == 0 || config.repair.resend_retry_ms == 0 {
            return Err(invalid(
                "repair",
                "sweep_ms and resend_retry_ms must be at least 1",
            ));
        }
        Ok(config)
    }
}

fn default_port() -> u16 {
    1883
}
fn default_group() -> String {
    "hq-ingest".into()
}
fn default_prefix() -> String {
    "forecourt".into()
}
fn default_receive_maximum() -> u16 {
    512
}
fn default_session_expiry_s() -> u32 {
    3600
}
fn default_keep_alive_s() -> u64 {
    30
}
fn default_pool() -> usize {
    4
}
fn default_batch_max() -> usize {
    256
}
fn default_batch_ms() -> u64 {
    50
}
fn default_sweep_ms() -> u64 {
    2_000
}
fn default_gap_grace_ms() -> u64 {
    5_000
}
fn default_resend_retry_ms() -> u64 {
    10_000
}
fn default_resend_retry_max_ms() -> u64 {
    120_000
}
fn default_max_resends_per_sweep() -> usize {
    500
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[mqtt]
host = "localhost"
client_id = "hq-ingest-1"
[postgres]
url = "host=/run/postgresql dbname=forecourt"
"#;

    #[test]
    fn a_minimal_file_takes_the_defaults() {
        let c = IngestConfig::parse(MINIMAL, "t.toml").unwrap();
        assert_eq!(c.mqtt.group, "hq-ingest");
        assert_eq!(c.mqtt.receive_maximum, 512);
        assert_eq!(c.batch.max, 256);
        assert_eq!(c.repair.gap_grace_ms, 5_000);
    }

    #[test]
    fn the_shipped_example_is_valid_and_says_the_defaults() {
        let text = include_str!("../../../config/hq-ingest.toml");
        let example = IngestConfig::parse(text, "config/hq-ingest.toml").unwrap();
        let minimal = IngestConfig::parse(MINIMAL, "t.toml").unwrap();
        assert_eq!(example.mqtt.receive_maximum, minimal.mqtt.receive_maximum);
        assert_eq!(example.mqtt.session_expiry_s, minimal.mqtt.session_expiry_s);
        assert_eq!(example.postgres.pool, minimal.postgres.pool);
        assert_eq!(
            (example.batch.max, example.batch.ms),
            (minimal.batch.max, minimal.batch.ms)
        );
        let (e, m) = (&example.repair, &minimal.repair);
        assert_eq!(
            (
                e.sweep_ms,
                e.gap_grace_ms,
                e.resend_retry_ms,
                e.resend_retry_max_ms,
                e.max_resends_per_sweep
            ),
            (
                m.sweep_ms,
                m.gap_grace_ms,
                m.resend_retry_ms,
                m.resend_retry_max_ms,
                m.max_resends_per_sweep
            )
        );
    }

    #[test]
    fn bad_values_are_named() {
        let bad = MINIMAL.replace("[postgres]", "group = \"a/b\"\n[postgres]");
        match IngestConfig::parse(&bad, "t.toml") {
            Err(ConfigError::Invalid { field, .. }) => assert_eq!(field, "mqtt.group"),
            other => panic!("{other:?}"),
        }
        let unknown = MINIMAL.replace("[postgres]", "colour = 1\n[postgres]");
        assert!(matches!(
            IngestConfig::parse(&unknown, "t.toml"),
            Err(ConfigError::Parse { .. })
        ));
        let tiny_pool = format!("{MINIMAL}pool = 1\n");
        assert!(matches!(
            IngestConfig::parse(&tiny_pool, "t.toml"),
            Err(ConfigError::Invalid {
                field: "postgres.pool",
                ..
            })
        ));
    }
}
