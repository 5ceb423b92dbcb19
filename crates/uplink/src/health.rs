//! Counters the agent reports in its health check, and the periodic health message on
//! `<prefix>/<station_id>/health` (QoS 0, not retained, not through the outbox: a report that
//! cannot be sent now is worthless later).

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use forecourt_events::{now_millis, UnixMillis};
use outbox::{CapState, OutboxUsage};
use serde_json::Value;
use tokio::sync::watch;

#[derive(Debug, Default)]
pub struct UplinkHealth {
    /// Records handed to the MQTT client (re-sends after a reconnect count again).
    pub published: AtomicU64,
    /// Records acknowledged by the broker and deleted from the outbox.
    pub acked: AtomicU64,
    /// Successful connections after the first one.
    pub reconnects: AtomicU64,
    /// Connected to the broker right now (CONNACK received, no error since).
    pub connected: AtomicBool,
    /// Outbox reads or deletes that failed (each is logged).
    pub outbox_errors: AtomicU64,
    /// Records that could never be sent, moved to the outbox's dead letters since start.
    pub dead_letters: AtomicU64,
    /// Valid commands received from HQ.
    pub commands: AtomicU64,
    /// Commands refused (bad payload, unknown, busy): each got an error reply.
    pub commands_refused: AtomicU64,
    /// Health messages published.
    pub health_reports: AtomicU64,
    /// Append-to-PUBACK time of the last acknowledged record, in ms (-1: none yet).
    pub last_ack_lag_ms: AtomicI64,
}

/// A copy of [`UplinkHealth`] at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HealthSnapshot {
    pub published: u64,
    pub acked: u64,
    pub reconnects: u64,
    pub connected: bool,
    pub outbox_errors: u64,
    pub dead_letters: u64,
    pub commands: u64,
    pub commands_refused: u64,
    pub health_reports: u64,
    /// `None` until a record was acknowledged.
    pub last_ack_lag_ms: Option<i64>,
}

impl UplinkHealth {
    pub(crate) fn new() -> UplinkHealth {
        UplinkHealth {
            last_ack_lag_ms: AtomicI64::new(-1),
            ..UplinkHealth::default()
        }
    }

    pub fn snapshot(&self) -> HealthSnapshot {
        let lag = self.last_ack_lag_ms.load(Ordering::Relaxed);
        HealthSnapshot {
            published: self.published.load(Ordering::Relaxed),
            acked: self.acked.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            connected: self.connected.load(Ordering::Relaxed),
            outbox_errors: self.outbox_errors.load(Ordering::Relaxed),
            dead_letters: self.dead_letters.load(Ordering::Relaxed),
            commands: self.commands.load(Ordering::Relaxed),
            commands_refused: self.commands_refused.load(Ordering::Relaxed),
            health_reports: self.health_reports.load(Ordering::Relaxed),
            last_ack_lag_ms: (lag >= 0).then_some(lag),
        }
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::Relaxed);
    }
}

/// The agent's side of the health message: whatever it sets is sent as the `agent` field of
/// the next report (cameras, plate reader, dispensers...). Cheap to clone.
#[derive(Debug, Clone)]
pub struct HealthPublisher {
    pub(crate) agent: watch::Sender<Value>,
}

impl HealthPublisher {
    /// Replaces the agent's part of the next health reports.
    pub fn set(&self, agent: Value) {
        self.agent.send_replace(agent);
    }
}

/// The outbox's figures for a health report.
#[derive(Debug, Clone, Default)]
pub(crate) struct OutboxFigures {
    pub usage: Option<OutboxUsage>,
    pub acked_through: Option<std::collections::BTreeMap<String, u64>>,
    pub cap: CapState,
    pub dropped: u64,
}

/// The health message (see docs/mqtt.md).
pub(crate) fn health_payload(
    station: &str,
    started: UnixMillis,
    up: &HealthSnapshot,
    outbox: &OutboxFigures,
    agent: &Value,
) -> Vec<u8> {
    let now = now_millis();
    let age_s = |t: UnixMillis| (now - t).max(0) / 1000;
    let usage = outbox.usage.as_ref();
    let oldest_age_s = usage.and_then(|u| u.oldest_created).map(age_s);
    let health = wire::Health {
        station: station.to_owned(),
        t: now,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        uptime_s: age_s(started),
        // How far behind HQ is: age of the oldest record it has not acknowledged (0: none).
        sync_lag_s: usage.map(|_| oldest_age_s.unwrap_or(0)),
        uplink: wire::UplinkFigures {
            connected: up.connected,
            published: up.published,
            acked: up.acked,
            reconnects: up.reconnects,
            outbox_errors: up.outbox_errors,
            dead_letters: up.dead_letters,
            commands: up.commands,
            commands_refused: up.commands_refused,
            last_ack_lag_ms: up.last_ack_lag_ms,
        },
        outbox: wire::OutboxFigures {
            depth: usage.map(|u| u.records),
            bytes: usage.map(|u| u.bytes),
            oldest_age_s,
            cap: outbox.cap.as_str().to_owned(),
            alarm: outbox.cap != CapState::Ok,
            dropped: outbox.dropped,
            archive_records: usage.map(|u| u.archive_records),
            archive_bytes: usage.map(|u| u.archive_bytes),
            acked_through: outbox.acked_through.clone(),
        },
        agent: agent.clone(),
    };
    // Numbers, strings and a JSON value: this cannot fail.
    serde_json::to_vec(&health).unwrap_or_default()
}
