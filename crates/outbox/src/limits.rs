//! How big the outbox may grow, how long acknowledged records are archived, and what happens
//! when the station has been offline so long that the cap is reached.
//!
//! Overflow policy, in order:
//! 1. at `alarm_percent` of either cap, [`CapState::NearFull`]: an alarm in the health report,
//!    nothing is dropped;
//! 2. over a cap, the oldest records of streams that are neither money ([`MONEY_STREAMS`]) nor in
//!    `protected_streams` are deleted, oldest first, until the outbox is under both caps again
//!    ([`CapState::Dropping`]); HQ sees those as seq gaps in that stream, and the health report
//!    counts them (kept in the file, so the count survives restarts);
//! 3. if only protected records are left and the outbox is still over a cap, nothing is
//!    dropped: [`CapState::OverCapProtected`], logged as an error each check. Money is never
//!    dropped, whatever the config says; the disk is the last limit.

use serde::{Deserialize, Serialize};

/// Streams that carry money or customer data: never dropped to stay under a cap.
pub const MONEY_STREAMS: &[&str] = &[
    wire::Stream::Sale.name(),
    wire::Stream::SaleGap.name(),
    wire::Stream::SaleCorrection.name(),
];

/// The `[outbox]` section of the agent's config. Every field has a default.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxLimits {
    /// Most records waiting for HQ before low-value ones are dropped; 0: no limit.
    pub max_records: u64,
    /// Most payload bytes waiting for HQ before low-value ones are dropped; 0: no limit.
    pub max_bytes: u64,
    /// Percentage of either cap at which the alarm is raised (before anything is dropped).
    pub alarm_percent: u8,
    /// Streams whose records are never dropped to stay under the caps, besides
    /// [`MONEY_STREAMS`], which always are.
    pub protected_streams: Vec<String>,
    /// How long acknowledged records stay in the archive for `resend`; 0: no archive.
    pub archive_max_age_s: u64,
    /// Most payload bytes in the archive; the oldest acknowledged go first. 0: no archive.
    pub archive_max_bytes: u64,
}

impl Default for OutboxLimits {
    fn default() -> Self {
        OutboxLimits {
            // About a month offline at a busy station (see docs/fleet.md); ~256 MB of disk.
            max_records: 500_000,
            max_bytes: 256 * 1024 * 1024,
            alarm_percent: 80,
            protected_streams: vec!["sale".into()],
            archive_max_age_s: 7 * 24 * 3600,
            archive_max_bytes: 64 * 1024 * 1024,
        }
    }
}

impl OutboxLimits {
    /// Whether acknowledged records are archived at all.
    pub fn archive_enabled(&self) -> bool {
        self.archive_max_age_s > 0 && self.archive_max_bytes > 0
    }

    pub(crate) fn is_protected(&self, stream: &str) -> bool {
        MONEY_STREAMS.contains(&stream) || self.protected_streams.iter().any(|s| s == stream)
    }

    /// Whether `records`/`bytes` are over a cap.
    pub(crate) fn over(&self, records: u64, bytes: u64) -> bool {
        (self.max_records > 0 && records > self.max_records)
            || (self.max_bytes > 0 && bytes > self.max_bytes)
    }

    /// Whether `records`/`bytes` reached the alarm level of a cap.
    pub(crate) fn near(&self, records: u64, bytes: u64) -> bool {
        let level = |cap: u64| cap.saturating_mul(u64::from(self.alarm_percent.min(100))) / 100;
        (self.max_records > 0 && records >= level(self.max_records))
            || (self.max_bytes > 0 && bytes >= level(self.max_bytes))
    }
}

/// Where the outbox stands against its caps, as of the last [`crate::Outbox::enforce_limits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CapState {
    /// Under the alarm level.
    #[default]
    Ok,
    /// At or over the alarm level, under the cap: nothing dropped.
    NearFull,
    /// Was over the cap: low-value records were dropped to get back under it.
    Dropping,
    /// Over the cap with only protected records left: nothing more can be dropped.
    OverCapProtected,
}

impl CapState {
    pub fn as_str(self) -> &'static str {
        match self {
            CapState::Ok => "ok",
            CapState::NearFull => "near_full",
            CapState::Dropping => "dropping",
            CapState::OverCapProtected => "over_cap_protected",
        }
    }

    pub(crate) fn from_u8(n: u8) -> CapState {
        match n {
            1 => CapState::NearFull,
            2 => CapState::Dropping,
            3 => CapState::OverCapProtected,
            _ => CapState::Ok,
        }
    }

    pub(crate) fn to_u8(self) -> u8 {
        self as u8
    }
}

/// Sizes of the outbox at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct OutboxUsage {
    /// Records waiting for HQ.
    pub records: u64,
    /// Their payload bytes.
    pub bytes: u64,
    /// When the oldest waiting record was appended.
    pub oldest_created: Option<forecourt_events::UnixMillis>,
    /// Acknowledged records kept for `resend`.
    pub archive_records: u64,
    pub archive_bytes: u64,
}

/// What one [`crate::Outbox::enforce_limits`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct LimitReport {
    pub state: CapState,
    /// Low-value records dropped by this call (never sent to HQ).
    pub dropped: u64,
    /// Archived records pruned by this call (age or size).
    pub archive_pruned: u64,
    /// Sizes after this call.
    pub usage: OutboxUsage,
}
