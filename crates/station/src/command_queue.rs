//! HQ's commands and the operator's SIGHUP (a `reload_config`) in one queue for the station loop.

use serde::Deserialize;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::StationCommands;

/// Forwards HQ's commands from `hq`, and a `reload_config` for each SIGHUP, into the returned
/// queue until shutdown; the task ends then (await it when draining). The returned sender puts
/// the station's own commands (its console's) into the same queue.
pub fn forward_commands(
    mut hq: mpsc::Receiver<uplink::CommandRequest>,
    mut shutdown: watch::Receiver<bool>,
) -> (
    mpsc::Receiver<uplink::CommandRequest>,
    mpsc::Sender<uplink::CommandRequest>,
    JoinHandle<()>,
) {
    let (tx, rx) = mpsc::channel(16);
    let local = tx.clone();
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
    (rx, local, task)
}

/// A SIGHUP as a local `reload_config` request whose answer goes to the log.
fn sighup_reload() -> Option<uplink::CommandRequest> {
    let (reply, answer) = oneshot::channel();
    tokio::spawn(async move {
        match answer.await {
            Ok(uplink::CommandReply::Done(result)) => info!("SIGHUP: {}", reload_in_words(&result)),
            Ok(uplink::CommandReply::Failed(why)) => {
                warn!("SIGHUP: config not reloaded, the running one stays: {why}")
            }
            Err(_) => {}
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

/// What a reload did, for the operator's log: `config reloaded: applied matcher; needs a restart:
/// camera, fp`.
fn reload_in_words(result: &serde_json::Value) -> String {
    let Ok(reload) = wire::ReloadResult::deserialize(result) else {
        return format!("config reloaded: {result}");
    };
    let list = |sections: &[String]| sections.join(", ");
    match (reload.applied.is_empty(), reload.needs_restart.is_empty()) {
        (true, true) => "config reloaded: nothing changed".into(),
        (false, true) => format!("config reloaded: applied {}", list(&reload.applied)),
        (true, false) => format!(
            "config reloaded: nothing applied; needs a restart: {}",
            list(&reload.needs_restart)
        ),
        (false, false) => format!(
            "config reloaded: applied {}; needs a restart: {}",
            list(&reload.applied),
            list(&reload.needs_restart)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reload_is_logged_in_words() {
        let said = |applied: &[&str], needs_restart: &[&str]| {
            reload_in_words(&serde_json::json!({
                "applied": applied,
                "needs_restart": needs_restart,
            }))
        };
        assert_eq!(said(&[], &[]), "config reloaded: nothing changed");
        assert_eq!(said(&["matcher"], &[]), "config reloaded: applied matcher");
        assert_eq!(
            said(&[], &["camera", "fp"]),
            "config reloaded: nothing applied; needs a restart: camera, fp"
        );
        assert_eq!(
            said(&["matcher"], &["fp"]),
            "config reloaded: applied matcher; needs a restart: fp"
        );
    }
}
