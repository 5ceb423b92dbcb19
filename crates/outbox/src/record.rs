//! A stored message, and the JSON envelope HQ receives.

use forecourt_events::UnixMillis;
use uuid::Uuid;

/// One message waiting for HQ's acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Position in the outbox: increases with every append and is never reused.
    pub rowid: i64,
    /// Stable id HQ deduplicates on (a record may be delivered more than once).
    pub id: Uuid,
    pub stream: String,
    /// 1, 2, 3… per stream, without gaps, so HQ can see what it is missing.
    pub seq: u64,
    /// MQTT topic to publish on.
    pub topic: String,
    /// The bytes to publish: the JSON [`Envelope`].
    pub payload: Vec<u8>,
    /// When it was appended.
    pub created: UnixMillis,
}

/// A nozzle's volume totalizer (raw pump units) as the kept sales account for it: never sent
/// to HQ, kept so a restart can tell fuel sold while no agent ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Totalizer {
    pub fp: u8,
    pub nozzle: u8,
    pub total: u64,
}
