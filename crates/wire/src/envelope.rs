//! What every event record is wrapped in.

use forecourt_events::UnixMillis;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The payload of every `events/<stream>` message. Field order is the order written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<Body = serde_json::Value> {
    /// Unique per record; HQ dedupes on it.
    pub id: Uuid,
    /// Per (station, stream): 1, 2, 3… without gaps, never reused.
    pub seq: u64,
    /// The last topic level (a [`crate::Stream`] name).
    pub stream: String,
    /// When the record was committed at the station.
    pub t: UnixMillis,
    pub body: Body,
}
