//! The retained `<prefix>/<station>/status` messages: who HQ thinks is online.

use forecourt_events::{now_millis, UnixMillis};
use serde_json::json;

/// What the station says about itself; `started` tells HQ about restarts.
#[derive(Debug, Clone)]
pub(crate) struct StationStatus {
    pub station_id: String,
    pub version: String,
    pub started: UnixMillis,
}

impl StationStatus {
    pub fn online(&self) -> Vec<u8> {
        self.encode("online", None)
    }

    /// Published by the broker for us when the connection dies without a DISCONNECT.
    pub fn offline_will(&self) -> Vec<u8> {
        self.encode("offline", Some("connection lost"))
    }

    /// Published by us on a clean shutdown (a clean DISCONNECT discards the will).
    pub fn offline_shutdown(&self) -> Vec<u8> {
        self.encode("offline", Some("shutdown"))
    }

    fn encode(&self, state: &str, reason: Option<&str>) -> Vec<u8> {
        let mut msg = json!({
            "state": state,
            "station": self.station_id,
            "version": self.version,
            "started": self.started,
            // In the will this is when the uplink was built, not when the connection died.
            "t": now_millis(),
        });
        if let Some(reason) = reason {
            msg["reason"] = reason.into();
        }
        msg.to_string().into_bytes()
    }
}
