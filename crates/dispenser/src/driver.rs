//! The driver abstraction: anything that turns a dispenser line into events.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use forecourt_events::{DispenserEvent, Heartbeat};
use tokio::sync::{mpsc, watch};

#[derive(Debug, thiserror::Error)]
pub enum DispenserError {
    #[error("invalid dispenser configuration: {0}")]
    Config(String),
    /// The consumer dropped the event channel: nobody listens any more.
    #[error("event channel closed")]
    EventsClosed,
}

/// A dispenser protocol driver. `run` owns the line until `shutdown` turns true (or its sender is
/// dropped); device faults are retried inside, never returned.
pub trait DispenserDriver: Send + 'static {
    /// Beaten by the driver's loop as it goes round, including while it waits to reopen a
    /// lost line. It stops only when the loop is stuck (e.g. a serial write that never
    /// completes): the agent then withholds its systemd watchdog pings.
    fn heartbeat(&self) -> Arc<Heartbeat>;

    /// The link's state and counts, for the health report.
    fn link_stats(&self) -> Arc<crate::LinkStats>;

    fn run(
        self,
        events: mpsc::Sender<DispenserEvent>,
        shutdown: watch::Receiver<bool>,
    ) -> impl Future<Output = Result<(), DispenserError>> + Send;
}

/// A source that is one of two drivers, picked by the config (the DART master or listener; the
/// IFSF node joined or mirrored): it beats and runs as the one it is.
pub enum EitherDriver<A, B> {
    First(A),
    Second(B),
}

impl<A: DispenserDriver, B: DispenserDriver> DispenserDriver for EitherDriver<A, B> {
    fn heartbeat(&self) -> Arc<Heartbeat> {
        match self {
            EitherDriver::First(a) => a.heartbeat(),
            EitherDriver::Second(b) => b.heartbeat(),
        }
    }

    fn link_stats(&self) -> Arc<crate::LinkStats> {
        match self {
            EitherDriver::First(a) => a.link_stats(),
            EitherDriver::Second(b) => b.link_stats(),
        }
    }

    async fn run(
        self,
        events: mpsc::Sender<DispenserEvent>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<(), DispenserError> {
        match self {
            EitherDriver::First(a) => a.run(events, shutdown).await,
            EitherDriver::Second(b) => b.run(events, shutdown).await,
        }
    }
}

/// Reopening a lost or missing serial line: from 1 s, doubling, up to 30 s.
pub(crate) const BACKOFF_MIN: Duration = Duration::from_secs(1);
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(30);

pub(crate) fn is_shutdown(shutdown: &watch::Receiver<bool>) -> bool {
    *shutdown.borrow()
}

/// Sleeps, beating `heartbeat` at least every second (waiting out a backoff is being alive);
/// true if shutdown was requested (or its sender dropped) meanwhile.
pub(crate) async fn sleep_or_shutdown(
    d: Duration,
    shutdown: &mut watch::Receiver<bool>,
    heartbeat: &Heartbeat,
) -> bool {
    let until = tokio::time::Instant::now() + d;
    loop {
        heartbeat.beat();
        if is_shutdown(shutdown) {
            return true;
        }
        let now = tokio::time::Instant::now();
        if now >= until {
            return false;
        }
        let slice = (until - now).min(Duration::from_secs(1));
        tokio::select! {
            _ = tokio::time::sleep(slice) => {}
            changed = shutdown.changed() => if changed.is_err() { return true; },
        }
    }
}
