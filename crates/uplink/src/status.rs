//! The retained `<prefix>/<station>/status` messages: who HQ thinks is online.

use forecourt_events::{now_millis, UnixMillis};
use wire::{Status, StatusState};

/// What the station says about itself; `started` tells HQ about restarts.
#[derive(Debug, Clone)]
pub(crate) struct StationStatus {
    pub station_id: String,
    pub version: String,
    pub started: UnixMillis,
}

impl StationStatus {
    pub fn online(&self) -> Vec<u8> {
        self.encode(StatusState::Online, None)
    }

    /// Published by the broker for us when the connection dies without a DISCONNECT.
    pub fn offline_will(&self) -> Vec<u8> {
        self.encode(StatusState::Offline, Some("connection lost"))
    }

    /// Published by us on a clean shutdown (a clean DISCONNECT discards the will).
    pub fn offline_shutdown(&self) -> Vec<u8> {
        self.encode(StatusState::Offline, Some("shutdown"))
    }

    fn encode(&self, state: StatusState, reason: Option<&str>) -> Vec<u8> {
        let status = Status {
            state,
            reason: reason.map(str::to_owned),
            station: self.station_id.clone(),
            version: self.version.clone(),
            started: self.started,
            // In the will this is when the uplink was built, not when the connection died.
            t: now_millis(),
        };
        // Strings and integers only: this cannot fail.
        serde_json::to_vec(&status).unwrap_or_default()
    }
}
