//! The station's records as they are decided, for screens at the station (the console): the
//! same typed payloads that go to HQ (`wire`), handed over before the disk and the uplink, so
//! that what the attendant sees never waits behind a backlog to HQ. Best effort by design: a
//! listener that falls behind misses records (the outbox still has every one).

use forecourt_events::UnixMillis;
use serde_json::Value;
use wire::Stream;

/// One record as the station decided it: its stream, its payload (a `wire` body), when it was
/// decided (ms since the epoch: what a screen's delay is measured from) and, for a sale, its
/// envelope `id` (what a correction names).
#[derive(Debug, Clone, PartialEq)]
pub struct LiveRecord {
    pub stream: Stream,
    pub body: Value,
    pub decided_t: UnixMillis,
    pub id: Option<uuid::Uuid>,
}

/// Records a listener may fall behind by before it misses some.
pub const LIVE_BACKLOG: usize = 1024;
