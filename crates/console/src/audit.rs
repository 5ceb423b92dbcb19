//! The console's audit log: who logged in, failed to, logged out, corrected which sale to what,
//! and saved which zones, one JSON line each, appended and synced to a file beside the outbox
//! (`<data_dir>/console-audit.jsonl`). Kept by the station (rotate it with logrotate's
//! `copytruncate`); a line that cannot be written is logged as an error, and the action it
//! records still happens (the correction itself is in the outbox and at HQ).

use std::io::Write;
use std::path::PathBuf;

use forecourt_events::UnixMillis;
use serde::Serialize;
use uuid::Uuid;

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    pub t: UnixMillis,
    /// The user name given (a failed login's too).
    pub user: String,
    /// The client's address.
    pub address: String,
    #[serde(flatten)]
    pub action: AuditAction,
    /// `ok`, or why it was refused or failed.
    pub outcome: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum AuditAction {
    Login,
    Logout,
    /// A staff correction of the sale record `sale_id`: `plate`, or none.
    Correction {
        sale_id: Uuid,
        plate: Option<String>,
    },
    /// An installer saved these zones into the config file.
    Zones {
        layout: matcher::Layout,
    },
}

/// Where the audit log goes.
#[derive(Debug, Clone)]
pub struct AuditLog {
    path: PathBuf,
}

impl AuditLog {
    pub fn new(path: PathBuf) -> AuditLog {
        AuditLog { path }
    }

    /// Appends `entry` and syncs it (off the async workers).
    pub async fn record(&self, entry: AuditEntry) {
        let path = self.path.clone();
        let written = tokio::task::spawn_blocking(move || append_line(&path, &entry)).await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(path = %self.path.display(), error = %e, "console audit log: cannot write")
            }
            Err(e) => tracing::error!(error = %e, "console audit log: the writer failed"),
        }
    }
}

fn append_line(path: &std::path::Path, entry: &AuditEntry) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(entry)?;
    line.push(b'\n');
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    // One write call per line: lines from concurrent requests never interleave.
    file.write_all(&line)?;
    file.sync_data()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn entries_are_appended_as_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::new(dir.path().join("audit.jsonl"));
        log.record(AuditEntry {
            t: 1,
            user: "anna".into(),
            address: "127.0.0.1".into(),
            action: AuditAction::Login,
            outcome: "ok".into(),
        })
        .await;
        log.record(AuditEntry {
            t: 2,
            user: "anna".into(),
            address: "127.0.0.1".into(),
            action: AuditAction::Correction {
                sale_id: Uuid::nil(),
                plate: None,
            },
            outcome: "ok".into(),
        })
        .await;
        let text = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["action"], "login");
        assert_eq!(lines[1]["action"], "correction");
        assert_eq!(lines[1]["plate"], serde_json::Value::Null);
        assert_eq!(lines[1]["sale_id"], Uuid::nil().to_string());
    }

    #[tokio::test]
    async fn an_unwritable_log_loses_the_line_but_nothing_else() {
        let log = AuditLog::new("/nonexistent/dir/audit.jsonl".into());
        log.record(AuditEntry {
            t: 1,
            user: "x".into(),
            address: "y".into(),
            action: AuditAction::Logout,
            outcome: "ok".into(),
        })
        .await;
    }
}
