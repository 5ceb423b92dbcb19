//! A serial line worked in sessions: open the port, work it until shutdown or a port error,
//! wait out a backoff, open it again. Both DART drivers run this one loop.

use std::future::Future;
use std::io;
use std::sync::Arc;

use forecourt_events::{DispenserEvent, Heartbeat};
use tokio::sync::{mpsc, watch};
use tokio_serial::SerialStream;

use crate::config::DartConfig;
use crate::driver::{
    is_shutdown, sleep_or_shutdown, DispenserDriver, DispenserError, BACKOFF_MAX, BACKOFF_MIN,
};

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

    fn line_heartbeat(&self) -> &Arc<Heartbeat>;

    fn line_stats(&self) -> &Arc<crate::LinkStats>;

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
                driver.line_stats().opened();
                backoff = BACKOFF_MIN;
                match driver.session(port, &events, &mut shutdown).await? {
                    SessionEnd::Shutdown => return Ok(()),
                    SessionEnd::PortLost(e) => {
                        tracing::warn!(port = %port_name, error = %e, "DART line lost");
                        driver.line_stats().lost(&format!("line lost: {e}"));
                        driver.line_lost(&events).await?;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(port = %port_name, error = %e, retry_s = backoff.as_secs(), "cannot open DART line");
                driver
                    .line_stats()
                    .open_failed(&format!("cannot open {port_name}: {e}"));
            }
        }
        if sleep_or_shutdown(backoff, &mut shutdown, driver.line_heartbeat()).await {
            return Ok(());
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// A line driver is a dispenser driver: its heartbeat, and its sessions with reconnects.
impl<D: LineDriver + Send + 'static> DispenserDriver for D {
    fn heartbeat(&self) -> Arc<Heartbeat> {
        self.line_heartbeat().clone()
    }

    fn link_stats(&self) -> Arc<crate::LinkStats> {
        self.line_stats().clone()
    }

    async fn run(
        mut self,
        events: mpsc::Sender<DispenserEvent>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<(), DispenserError> {
        run_reconnecting(&mut self, events, shutdown).await
    }
}
