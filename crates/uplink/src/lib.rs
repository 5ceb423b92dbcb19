//! MQTT uplink to HQ: publishes the outbox in order at QoS 1 and deletes each record only
//! once the broker acknowledged it. Reconnects with backoff and re-sends whatever was not
//! acknowledged; HQ deduplicates on the record id.
//!
//! It also takes commands from HQ (see [`commands`]), answers `ping` and `resend` itself and
//! hands the others to the agent, publishes a periodic health message, and applies the
//! outbox's caps and archive retention.
//!
//! ```ignore
//! let wake = Arc::new(Notify::new());
//! let mut uplink = Uplink::new(config, outbox.clone(), wake.clone())?;
//! let health = uplink.health();
//! let mut commands = uplink.commands(16, command_set);   // CommandRequest { command, reply }
//! let health_publisher = uplink.health_publisher();
//! tokio::spawn(uplink.run(shutdown_rx));
//! // after each outbox.append(..): wake.notify_one();
//! // health_publisher.set(json!({...}));   // the agent's part of the health message
//! ```

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod commands;
mod config;
mod health;
mod inflight;
mod session;
mod status;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use forecourt_events::{now_millis, Heartbeat};
use outbox::Outbox;
use tokio::sync::{mpsc, watch, Notify};

pub use commands::{
    Command, CommandAction, CommandError, CommandReply, CommandRequest, CommandSet, StationCommand,
};
pub use config::{TlsFiles, UplinkConfig};
pub use health::{HealthPublisher, HealthSnapshot, UplinkHealth};

use session::{run_session, SessionEnd, SessionIo, Shared};
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
    replies: mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    agent_health: watch::Sender<serde_json::Value>,
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
        let (replies_tx, replies) = mpsc::unbounded_channel();
        let (agent_health, agent_health_rx) = watch::channel(serde_json::Value::Null);
        Ok(Uplink {
            shared: Shared {
                config,
                mqtt_options,
                outbox,
                wake,
                health: Arc::new(UplinkHealth::new()),
                status,
                commands: None,
                command_set: Arc::new(commands::NoStationCommands),
                replies_tx,
                agent_health: agent_health_rx,
                heartbeat: Arc::new(Heartbeat::new()),
                resend_running: Arc::default(),
            },
            replies,
            agent_health,
        })
    }

    /// The station's commands, as `set` checks them, at most `capacity` waiting; more are
    /// refused with a "busy" reply. Answer each on its `reply` within `command_timeout_s`.
    /// Without this call only `ping` and `resend` are known; they are answered by the uplink
    /// and never show here. Calling it again replaces the earlier receiver and set.
    pub fn commands(
        &mut self,
        capacity: usize,
        set: Arc<dyn CommandSet>,
    ) -> mpsc::Receiver<CommandRequest> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        self.shared.commands = Some(tx);
        self.shared.command_set = set;
        rx
    }

    /// Where the agent puts its part (cameras, plate reader, ...) of the periodic health
    /// message; the uplink adds its own figures and the outbox's.
    pub fn health_publisher(&self) -> HealthPublisher {
        HealthPublisher {
            agent: self.agent_health.clone(),
        }
    }

    /// Beaten while [`Uplink::run`] goes round (each turn of a session, and at least every
    /// second while it waits to reconnect); stops when `run` ends or hangs. The agent withholds
    /// its systemd watchdog pings when it stops.
    pub fn heartbeat(&self) -> Arc<Heartbeat> {
        self.shared.heartbeat.clone()
    }

    /// Counters for the agent's health report; stays valid after `run` returns.
    pub fn health(&self) -> Arc<UplinkHealth> {
        self.shared.health.clone()
    }

    /// Publishes until `shutdown` becomes true (or its sender is dropped), reconnecting as
    /// needed. On shutdown, says offline on the status topic if connected, then returns.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Result<(), UplinkError> {
        let _limits = AbortOnDrop(tokio::spawn(enforce_limits_periodically(
            self.shared.outbox.clone(),
            Duration::from_secs(self.shared.config.limits_interval_s.max(1)),
        )));
        let config = &self.shared.config;
        let min = Duration::from_millis(config.backoff_min_ms);
        let max = Duration::from_millis(config.backoff_max_ms);
        let mut backoff = min;
        // Seeded from the OS: every station draws its own delays.
        let mut jitter = fastrand::Rng::new();
        let mut ever_connected = false;
        let mut clean_start = false;
        tracing::info!(host = %config.host, port = config.port, client_id = %config.client_id(), "uplink starting");
        if config.credentials_in_clear() {
            tracing::warn!(
                host = %config.host,
                "MQTT username and password go to HQ over plain TCP: anyone on the path can read \
                 them; configure [uplink.tls]"
            );
        }
        loop {
            let io = SessionIo {
                shutdown: &mut shutdown,
                replies: &mut self.replies,
                ever_connected: &mut ever_connected,
            };
            let session = run_session(&self.shared, io, clean_start).await;
            clean_start = false;
            match session {
                SessionEnd::Shutdown => return Ok(()),
                SessionEnd::Lost { connected_for, why } => {
                    // A packet over our incoming limit kills the connection, and a persistent
                    // session would get it delivered again at every reconnect, for ever. Start
                    // the next session clean: the broker drops what it stored for us (our
                    // outbox keeps everything of ours). A retained one comes again with every
                    // subscription; the backoff below keeps that from becoming a storm.
                    if why.oversized_incoming() {
                        tracing::error!("uplink: the broker sent a packet over the incoming limit; reconnecting with a clean session to drop it");
                        clean_start = true;
                    }
                    if let Some(up_for) = connected_for {
                        // Only a connection that held resets the backoff: one that dies at
                        // once (a poisoned session, a broker that drops us) must not reconnect
                        // in a tight loop.
                        if up_for >= STABLE_CONNECTION {
                            backoff = min;
                        }
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
            let delay = with_jitter(backoff, &mut jitter);
            tracing::debug!(?delay, "uplink reconnecting after backoff");
            if self.wait_or_shutdown(delay, &mut shutdown).await {
                return Ok(());
            }
            backoff = (backoff * 2).min(max);
        }
    }
}

impl Uplink {
    /// Sleeps `delay`, beating the heartbeat at least every second; true if shutdown came.
    async fn wait_or_shutdown(
        &self,
        delay: Duration,
        shutdown: &mut watch::Receiver<bool>,
    ) -> bool {
        let until = tokio::time::Instant::now() + delay;
        loop {
            self.shared.heartbeat.beat();
            let now = tokio::time::Instant::now();
            if now >= until {
                return false;
            }
            tokio::select! {
                () = tokio::time::sleep((until - now).min(Duration::from_secs(1))) => {}
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        return true;
                    }
                }
            }
        }
    }
}

/// A connection that lasted this long was a good one: the reconnect backoff starts over.
const STABLE_CONNECTION: Duration = Duration::from_secs(10);

/// A delay drawn uniformly from 50 % to 150 % of the backoff step, afresh for every attempt,
/// so a fleet of stations that lost the broker at the same instant comes back spread over the
/// whole window instead of in lock-step.
fn with_jitter(step: Duration, rng: &mut fastrand::Rng) -> Duration {
    step.mul_f64(0.5 + rng.f64())
}

/// Applies the outbox caps and archive retention every `every`, connected or not (offline is
/// when the outbox grows). Errors are logged; the next round tries again.
async fn enforce_limits_periodically(outbox: Outbox, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let outbox = outbox.clone();
        match tokio::task::spawn_blocking(move || outbox.enforce_limits()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!("cannot apply the outbox limits: {e}"),
            Err(e) => tracing::error!("outbox limits task failed: {e}"),
        }
    }
}

/// Stops a background task when the uplink stops.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2,000 agents, each with its own generator as in `Uplink::run`, losing the broker at the
    /// same instant: their first reconnect delays cover the whole window [0.5, 1.5) x step,
    /// every tenth of it holding about a tenth of the agents (a clock-derived jitter put them
    /// all in one spot).
    #[test]
    fn reconnect_delays_of_many_agents_spread_over_the_whole_window() {
        let step = Duration::from_millis(2_000);
        let agents = 2_000;
        let mut buckets = [0u32; 10];
        for _ in 0..agents {
            let mut rng = fastrand::Rng::new();
            let delay = with_jitter(step, &mut rng);
            assert!(delay >= step / 2 && delay < step * 3 / 2, "{delay:?}");
            let at = (delay - step / 2).as_secs_f64() / step.as_secs_f64();
            buckets[((at * 10.0) as usize).min(9)] += 1;
        }
        // Expected 200 each, standard deviation about 13: 120..280 fails once in ~1e9 runs.
        for (i, n) in buckets.iter().enumerate() {
            assert!(
                (120..=280).contains(n),
                "tenth {i} of the window got {n} of {agents}: {buckets:?}"
            );
        }
        // Successive attempts of one agent draw afresh too.
        let mut rng = fastrand::Rng::new();
        let draws: std::collections::BTreeSet<_> =
            (0..100).map(|_| with_jitter(step, &mut rng)).collect();
        assert!(draws.len() > 90);
    }
}
