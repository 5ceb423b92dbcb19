//! Keeping a TCP link to a station system up, for the sources that speak over the LAN: connect,
//! work the link until it is lost, tell the station, wait (from 1 s doubling to 30 s), connect
//! again; until shutdown. Each source says what one connection's work is ([`LinkSession`]).

use std::time::Duration;

use forecourt_events::{DispenserEvent, Heartbeat};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::driver::{is_shutdown, sleep_or_shutdown, DispenserError, BACKOFF_MAX, BACKOFF_MIN};

/// Connecting, and writing one message, may take this long.
pub(crate) const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a connection ended.
pub(crate) enum SessionEnd {
    Shutdown,
    Lost(String),
}

/// One source's work on one connection.
pub(crate) trait LinkSession {
    /// For the log: which protocol.
    fn protocol(&self) -> &'static str;

    /// Works the connection until it is lost or shutdown is asked.
    async fn session(
        &mut self,
        stream: TcpStream,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<SessionEnd, DispenserError>;

    /// The connection was lost (`why`): what the station must hear (the points offline).
    async fn ended(&mut self, why: &str) -> Result<(), DispenserError>;
}

pub(crate) async fn keep_connected(
    address: &str,
    heartbeat: &Heartbeat,
    stats: &crate::LinkStats,
    shutdown: &mut watch::Receiver<bool>,
    link: &mut impl LinkSession,
) -> Result<(), DispenserError> {
    let mut backoff = BACKOFF_MIN;
    let mut last_problem = String::new();
    loop {
        heartbeat.beat();
        if is_shutdown(shutdown) {
            return Ok(());
        }
        let problem = match tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(address)).await {
            Ok(Ok(stream)) => {
                info!(address, protocol = link.protocol(), "link up");
                stats.opened();
                backoff = BACKOFF_MIN;
                last_problem.clear();
                let _ = stream.set_nodelay(true);
                match link.session(stream, shutdown).await? {
                    // The agent is stopping, not the pumps: nothing to tell the station.
                    SessionEnd::Shutdown => return Ok(()),
                    SessionEnd::Lost(why) => {
                        stats.lost(&why);
                        link.ended(&why).await?;
                        why
                    }
                }
            }
            Ok(Err(e)) => {
                let why = format!("cannot connect: {e}");
                stats.open_failed(&why);
                why
            }
            Err(_) => {
                let why = "cannot connect: timed out".to_owned();
                stats.open_failed(&why);
                why
            }
        };
        // A system that stays away is logged once, not on every attempt.
        if problem != last_problem {
            warn!(
                address,
                protocol = link.protocol(),
                problem,
                "link down; trying again"
            );
            last_problem = problem;
        }
        if sleep_or_shutdown(backoff, shutdown, heartbeat).await {
            return Ok(());
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Checks a config's `address` is `host:port`; `example` shows the form.
pub(crate) fn check_host_port(address: &str, example: &str) -> Result<(), DispenserError> {
    match address.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {
            Ok(())
        }
        _ => Err(DispenserError::Config(format!(
            "address {address:?} is not host:port (e.g. \"{example}\")"
        ))),
    }
}

/// Passes `events` to the station.
pub(crate) async fn forward(
    events: &mpsc::Sender<DispenserEvent>,
    batch: Vec<DispenserEvent>,
) -> Result<(), DispenserError> {
    for event in batch {
        events
            .send(event)
            .await
            .map_err(|_| DispenserError::EventsClosed)?;
    }
    Ok(())
}

/// Writes `bytes`, or says why it could not.
pub(crate) async fn write(writer: &mut OwnedWriteHalf, bytes: &[u8]) -> Result<(), String> {
    match tokio::time::timeout(IO_TIMEOUT, writer.write_all(bytes)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("write: {e}")),
        Err(_) => Err("write: timed out".into()),
    }
}
