//! MQTT uplink to HQ: publishes the outbox in order at QoS 1 and deletes each record only
//! once the broker acknowledged it. Reconnects with backoff and re-sends whatever was not
//! acknowledged; HQ deduplicates on the record id.
//!
//! ```ignore
//! let wake = Arc::new(Notify::new());
//! let uplink = Uplink::new(config, outbox.clone(), wake.clone())?;
//! let health = uplink.health();
//! tokio::spawn(uplink.run(shutdown_rx));
//! // after each outbox.append(..): wake.notify_one();
//! ```

mod config;
mod health;
mod inflight;
mod session;
mod status;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use forecourt_events::now_millis;
use outbox::Outbox;
use tokio::sync::{watch, Notify};

pub use config::{TlsFiles, UplinkConfig};
pub use health::{HealthSnapshot, UplinkHealth};

use session::{run_session, SessionEnd, Shared};
use status::StationStatus;

#[derive(Debug, thiserror::Error)]
pub enum UplinkError {
    #[error("uplink config: {0}")]
    InvalidConfig(String),
    #[error("uplink TLS file {path}: {why}")]
    TlsFile { path: PathBuf, why: String },
}

pub struct Uplink {
    shared: Shared,
}

impl Uplink {
    /// Checks the config and reads the TLS files; connects only in [`Uplink::run`].
    /// `wake` is notified (`notify_one`) by the agent after each append.
    pub fn new(
        config: UplinkConfig,
        outbox: Outbox,
        wake: Arc<Notify>,
    ) -> Result<Uplink, UplinkError> {
        let status = StationStatus {
            station_id: config.station_id.clone(),
            // The workspace shares one version, so this is the agent's version.
            version: env!("CARGO_PKG_VERSION").to_string(),
            started: now_millis(),
        };
        let mqtt_options = config.mqtt_options(status.offline_will())?;
        Ok(Uplink {
            shared: Shared {
                config,
                mqtt_options,
                outbox,
                wake,
                health: Arc::new(UplinkHealth::default()),
                status,
            },
        })
    }

    /// Counters for the agent's health report; stays valid after `run` returns.
    pub fn health(&self) -> Arc<UplinkHealth> {
        self.shared.health.clone()
    }

    /// Publishes until `shutdown` becomes true (or its sender is dropped), reconnecting as
    /// needed. On shutdown, says offline on the status topic if connected, then returns.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> Result<(), UplinkError> {
        let config = &self.shared.config;
        let min = Duration::from_millis(config.backoff_min_ms);
        let max = Duration::from_millis(config.backoff_max_ms);
        let mut backoff = min;
        let mut ever_connected = false;
        tracing::info!(host = %config.host, port = config.port, client_id = %config.client_id(), "uplink starting");
        loop {
            match run_session(&self.shared, &mut shutdown, &mut ever_connected).await {
                SessionEnd::Shutdown => return Ok(()),
                SessionEnd::Lost { was_connected, why } => {
                    if was_connected {
                        backoff = min;
                        tracing::warn!("uplink connection lost: {why}");
                    } else {
                        tracing::warn!(
                            "uplink cannot connect to {}:{}: {why}",
                            config.host,
                            config.port
                        );
                    }
                }
            }
            let delay = with_jitter(backoff);
            tracing::debug!(?delay, "uplink reconnecting after backoff");
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        return Ok(());
                    }
                }
            }
            backoff = (backoff * 2).min(max);
        }
    }
}

/// Adds up to 25 % so a fleet of stations does not reconnect in lock-step after an HQ outage.
fn with_jitter(delay: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    delay + delay.mul_f64(f64::from(nanos % 1000) / 4000.0)
}
