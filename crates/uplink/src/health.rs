//! Counters the agent reports in its health check.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

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
}

/// A copy of [`UplinkHealth`] at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HealthSnapshot {
    pub published: u64,
    pub acked: u64,
    pub reconnects: u64,
    pub connected: bool,
    pub outbox_errors: u64,
}

impl UplinkHealth {
    pub fn snapshot(&self) -> HealthSnapshot {
        HealthSnapshot {
            published: self.published.load(Ordering::Relaxed),
            acked: self.acked.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            connected: self.connected.load(Ordering::Relaxed),
            outbox_errors: self.outbox_errors.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::Relaxed);
    }
}
