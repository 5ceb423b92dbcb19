//! `cmd/<name>/reply`: what each command answers when it is done (`result`), and the reply
//! around it.

use forecourt_events::UnixMillis;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The reply to every command: `{"id", "ok": true, "result"}` or `{"id", "ok": false, "error"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// HQ's correlation id; null only when the payload had no usable one.
    pub id: Option<String>,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `ping`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PingResult {
    pub station: String,
    pub version: String,
    pub started: UnixMillis,
    pub t: UnixMillis,
}

/// `reload_config`: the config sections that changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadResult {
    pub applied: Vec<String>,
    pub needs_restart: Vec<String>,
}

/// `plate_correction`: the `sale_correction` record written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlateCorrectionResult {
    pub stream: crate::Stream,
    pub seq: u64,
    pub id: Uuid,
}

/// The `resend` command as HQ sends it on `cmd/resend` (the station checks it field by field).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResendCommand {
    pub id: String,
    pub stream: String,
    pub from_seq: u64,
    /// Last seq wanted; absent: everything archived from `from_seq` on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_seq: Option<u64>,
    /// When HQ issued it (Unix ms): the station refuses stale commands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t: Option<UnixMillis>,
}

/// `resend`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResendResult {
    pub requeued: u64,
    /// Where to ask again; `None`: nothing left.
    pub next_from_seq: Option<u64>,
    /// `[from, to]` seq ranges (inclusive) of the range answered that the station no longer
    /// holds (dropped over its outbox cap, moved to the dead letters, past the archive's
    /// retention): no resend will bring them.
    #[serde(default)]
    pub gone: Vec<[u64; 2]>,
}

/// `plate_notes`: what the command did to the notes the station holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlateNotesResult {
    /// Notes set or replaced.
    pub set: usize,
    /// Notes taken away: removed, replaced away, or expired.
    pub removed: usize,
    /// Notes held now.
    pub held: usize,
}

/// `record_trace`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordTraceResult {
    pub file: std::path::PathBuf,
    pub minutes: u16,
}
