//! HQ's commands and the operator's SIGHUP (a `reload_config`) in one queue for the station loop.

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::StationCommands;

/// Forwards HQ's commands from `hq`, and a `reload_config` for each SIGHUP, into the returned
/// queue until shutdown; the task ends then (await it when draining).
pub fn forward_commands(
    mut hq: mpsc::Receiver<uplink::CommandRequest>,
    mut shutdown: watch::Receiver<bool>,
) -> (mpsc::Receiver<uplink::CommandRequest>, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(16);
    let task = tokio::spawn(async move {
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                warn!("no SIGHUP handler: {e}");
                None
            }
        };
        loop {
            let request = tokio::select! {
                Some(r) = hq.recv() => r,
                Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => {
                    match sighup_reload() {
                        Some(request) => request,
                        None => continue,
                    }
                }
                _ = shutdown.changed() => return,
                else => return,
            };
            if tx.send(request).await.is_err() {
                return;
            }
        }
    });
    (rx, task)
}

/// A SIGHUP as a local `reload_config` request whose answer goes to the log.
fn sighup_reload() -> Option<uplink::CommandRequest> {
    let (reply, answer) = oneshot::channel();
    tokio::spawn(async move {
        if let Ok(r) = answer.await {
            info!("SIGHUP reload: {r:?}");
        }
    });
    match StationCommands::local("reload_config", r#"{"id":"sighup"}"#) {
        Ok(action) => Some(uplink::CommandRequest {
            command: uplink::Command::local("sighup", action),
            reply,
        }),
        Err(e) => {
            warn!("SIGHUP: {e}");
            None
        }
    }
}
