//! What the analytics count and how long they keep it.

/// The thresholds and windows of the analytics; `Default` is what the agent runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalyticsConfig {
    /// Cameras whose every read counts as an arrival (no zone; the event has no FP).
    pub entrance_cameras: Vec<String>,
    /// Reads below this recogniser confidence are ignored.
    pub min_read_confidence: f32,
    /// An arrival needs this many such reads of one car within `window_ms`...
    pub min_reads: usize,
    pub window_ms: i64,
    /// ...whose voted text is a well-formed plate with at least this vote certainty.
    pub min_certainty: f32,
    /// A well-formed plate read in a zone is said at once as a provisional arrival (confirmed
    /// or taken back when the car's reads are voted) when this many of the car's reads there
    /// read it exactly, each with at least `provisional_min_confidence`, and most of its reads
    /// there read it.
    pub provisional_min_reads: usize,
    pub provisional_min_confidence: f32,
    /// A car said provisionally and not read again for this long is taken back.
    pub provisional_hold_ms: i64,
    /// Reads this close (characters) to a car's text are that car.
    pub max_text_distance: usize,
    /// A visit ends when its car was not read (nor sold to) for this long; its departure is the
    /// last read. Covers occlusions.
    pub depart_after_ms: i64,
    /// A sale whose nozzle-out follows the previous fill at the same FP this closely is the same
    /// vehicle (a second nozzle) unless the matcher says another plate.
    pub same_vehicle_gap_ms: i64,
    /// An hour is closed and published this long after it ends. Must exceed the matcher's
    /// `grace_ms` (sales are tied to cars after it).
    pub close_delay_ms: i64,
    /// Hourly summaries kept for [`Analytics::hour_json`] (168 = 7 days).
    pub keep_hours: usize,
}

impl Default for AnalyticsConfig {
    fn default() -> Self {
        AnalyticsConfig {
            entrance_cameras: Vec::new(),
            min_read_confidence: 0.85,
            min_reads: 3,
            window_ms: 10_000,
            min_certainty: 0.9,
            provisional_min_reads: 2,
            provisional_min_confidence: 0.95,
            provisional_hold_ms: 60_000,
            max_text_distance: 2,
            depart_after_ms: 180_000,
            same_vehicle_gap_ms: 20_000,
            close_delay_ms: 60_000,
            keep_hours: 168,
        }
    }
}
