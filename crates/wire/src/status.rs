//! `status`: retained, and the broker's last will.

use forecourt_events::UnixMillis;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub state: StatusState,
    /// Why offline: `"connection lost"` (the will) or `"shutdown"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub station: String,
    pub version: String,
    /// When the agent started: changes at every restart.
    pub started: UnixMillis,
    /// When this was published (in the will: when the will was set).
    pub t: UnixMillis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusState {
    Online,
    Offline,
}
