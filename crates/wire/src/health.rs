//! `health`: the periodic report of the uplink, the outbox and the agent.

use forecourt_events::UnixMillis;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    pub station: String,
    pub t: UnixMillis,
    pub version: String,
    pub uptime_s: i64,
    /// Age of the oldest record HQ has not acknowledged (0: none); null when the outbox could
    /// not be read.
    pub sync_lag_s: Option<i64>,
    pub uplink: UplinkFigures,
    pub outbox: OutboxFigures,
    /// The agent's part ([`AgentHealth`] from the forecourt-agent); null when it set none.
    pub agent: serde_json::Value,
}

/// Since start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UplinkFigures {
    pub connected: bool,
    /// Records handed to MQTT (re-sends count again).
    pub published: u64,
    /// Acknowledged and moved out of the queue.
    pub acked: u64,
    /// Successful connections after the first.
    pub reconnects: u64,
    pub outbox_errors: u64,
    pub dead_letters: u64,
    /// Valid commands taken / commands the uplink itself answered with an error.
    pub commands: u64,
    pub commands_refused: u64,
    /// Append-to-PUBACK time of the last acknowledged record (null before the first).
    pub last_ack_lag_ms: Option<i64>,
}

/// The queue and the archive; the counts are null when the outbox could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxFigures {
    pub depth: Option<u64>,
    pub bytes: Option<u64>,
    pub oldest_age_s: Option<i64>,
    /// `ok`, `near_full`, `dropping` or `over_cap_protected`.
    pub cap: String,
    /// `cap != "ok"`.
    pub alarm: bool,
    /// Records dropped over the cap since the outbox file was created.
    pub dropped: u64,
    pub archive_records: Option<u64>,
    pub archive_bytes: Option<u64>,
    /// Per stream: every seq up to this one has left the queue (acknowledged by the broker,
    /// or dropped over the cap): HQ should hold them all, so a hole at the tail of a stream
    /// shows even when no later record came. Null when the outbox could not be read.
    #[serde(default)]
    pub acked_through: Option<std::collections::BTreeMap<String, u64>>,
}

/// What the forecourt-agent puts in `agent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentHealth {
    /// Conditions an operator must act on, repeated in every report while they hold.
    pub alarms: Vec<String>,
    /// Outbox writes the disk refused, held in memory and retried.
    pub outbox_writes_in_memory: usize,
    pub cameras: Vec<CameraHealth>,
    pub plates: PlateReaderHealth,
    /// Each sale source (`[[dispenser]]`, in the config's order): its line or connection.
    pub sources: Vec<SourceHealth>,
    /// Each fuelling point as its sale source last told it, by number: every one the config's
    /// sources list, and any other a source reported.
    pub fps: Vec<FpHealth>,
}

/// One sale source's line (DART) or connection (IFSF), since start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceHealth {
    /// What it is and where: `dart /dev/ttyUSB0`, `ifsf-tcp 192.168.1.20:3486`, ...
    pub name: String,
    /// Its fuelling points, as configured.
    pub fps: Vec<u8>,
    /// The line is open / the connection is up.
    pub up: bool,
    /// Since when `up` holds; null before the first try.
    pub since_t: Option<i64>,
    pub opens: u64,
    pub open_failures: u64,
    /// Frames or messages written (DART polls and commands; IFSF requests and heartbeats).
    pub sent: u64,
    /// Frames or messages read and understood.
    pub received: u64,
    /// Unanswered polls, frames or messages not understood.
    pub errors: u64,
    /// The last problem in words (a failed open, a lost line, no answer from an address).
    pub last_problem: Option<String>,
    /// Its newest sale (null: none since start).
    pub last_sale_t: Option<i64>,
}

/// One fuelling point as its sale source last told it, and how its zones fit its fills.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FpHealth {
    pub fp: u8,
    /// Its source reports it answering.
    pub online: bool,
    /// Since when `online` holds; null when the source never told of the point since start.
    pub since_t: Option<i64>,
    /// Sales completed since start.
    pub sales: u64,
    pub last_sale_t: Option<i64>,
    pub zones: FpZoneCheck,
}

/// Whether a fuelling point's zones sit where its customers stand, from its latest sales (at
/// most 10): zones on the wrong lane or camera give confident wrong plates, which nothing else
/// shows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FpZoneCheck {
    /// Plate reads placed in its zones since start.
    pub reads: u64,
    /// Its latest sales judged (at most 10).
    pub sales: u32,
    /// Of those, sales given no plate.
    pub no_plate: u32,
    /// The matcher's mean confidence over those given a plate (null: none).
    pub mean_confidence: Option<f64>,
    /// Of those, sales where a car in another fuelling point's zones stood through the fill
    /// (read there from the nozzle-out to the hang-up) while none in this one's zones did.
    pub other_zone: u32,
    /// Of those, sales during which nothing was read in its zones.
    pub unseen: u32,
    /// Set when these figures say its zones are misplaced; also in `alarms`.
    pub alarm: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CameraHealth {
    pub name: String,
    /// Frames per second decoded from the camera since the last report.
    pub fps: f64,
    /// Frames per second the plate reader read of them (at most the camera's `max_fps`).
    pub read_fps: f64,
    /// Frames per second the plate reader passed over because nothing had moved in the
    /// camera's zones since its last read, which found no plate there (reported as read with
    /// no plates).
    pub still_fps: f64,
    /// Frames replaced in the camera's slot before the reader took them, since start (the
    /// reader is behind).
    pub dropped: u64,
    pub reconnects: u64,
    pub connected: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlateReaderHealth {
    pub frames_read: u64,
    pub read_errors: u64,
    /// Mean time to read one frame, over the last frames.
    pub model_latency_ms: f64,
}
