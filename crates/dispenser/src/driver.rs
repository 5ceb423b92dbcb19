//! The driver abstraction: anything that turns a dispenser line into events.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use forecourt_events::{DispenserEvent, Heartbeat};
use tokio::sync::{mpsc, watch};
use tokio_serial::SerialStream;

use crate::config::DartConfig;

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

    fn run(
        self,
        events: mpsc::Sender<DispenserEvent>,
        shutdown: watch::Receiver<bool>,
    ) -> impl Future<Output = Result<(), DispenserError>> + Send;
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

/// Why a session on an open port ended.
pub(crate) enum SessionEnd {
    Shutdown,
    PortLost(io::Error),
}

/// A driver that works its serial line in sessions, one per time the port is open; see
/// [`run_reconnecting`].
pub(crate) trait LineDriver {
    /// Logged when the port opens.
    const OPENED: &'static str;

    fn line_config(&self) -> &DartConfig;

    fn line_heartbeat(&self) -> &Heartbeat;

    /// Fuelling points on the line (for the log).
    fn fuelling_points(&self) -> usize;

    /// Works the open port until shutdown or a port error.
    fn session(
        &mut self,
        port: SerialStream,
        events: &mpsc::Sender<DispenserEvent>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> impl Future<Output = Result<SessionEnd, DispenserError>> + Send;

    /// The port failed: every pump on the line is offline until it answers again.
    fn line_lost(
        &mut self,
        events: &mpsc::Sender<DispenserEvent>,
    ) -> impl Future<Output = Result<(), DispenserError>> + Send;
}

/// Opens the port and runs sessions until shutdown: after a port error, or a port that cannot
/// be opened, it waits out a backoff (1 s doubling to 30 s, beating the heartbeat) and opens
/// the port again, forever.
pub(crate) async fn run_reconnecting<D: LineDriver + Send>(
    driver: &mut D,
    events: mpsc::Sender<DispenserEvent>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), DispenserError> {
    let mut backoff = BACKOFF_MIN;
    let port_name = driver.line_config().port.display().to_string();
    loop {
        driver.line_heartbeat().beat();
        if is_shutdown(&shutdown) {
            return Ok(());
        }
        match driver.line_config().open_port() {
            Ok(port) => {
                tracing::info!(port = %port_name, fps = driver.fuelling_points(), "{}", D::OPENED);
                backoff = BACKOFF_MIN;
                match driver.session(port, &events, &mut shutdown).await? {
                    SessionEnd::Shutdown => return Ok(()),
                    SessionEnd::PortLost(e) => {
                        tracing::warn!(port = %port_name, error = %e, "DART line lost");
                        driver.line_lost(&events).await?;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(port = %port_name, error = %e, retry_s = backoff.as_secs(), "cannot open DART line");
            }
        }
        if sleep_or_shutdown(backoff, &mut shutdown, driver.line_heartbeat()).await {
            return Ok(());
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}
