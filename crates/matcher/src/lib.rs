//! Which car was at the pump: fuelling-point zones, plate tracks, and the sale-to-plate matcher.
//! The tracker and the matcher are pure logic: time comes in with the events, so the same events
//! always give the same verdicts. `trace` and `replay` read and write a caller's streams.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod assign;
mod frame_log;
mod layout;
mod line_scan;
mod matcher;
pub mod replay;
mod stop_model;
pub mod trace;
mod trace_fields;
pub mod tracker;
pub mod vote;

pub use layout::{FpLayout, Layout, LayoutError, Zone};
pub use matcher::{MatchedSale, Matcher, MatcherConfig, ScoredPlate};
pub use replay::{
    eval_match, replay, replay_with, replay_zoned, EvalReport, ReplayError, ReplayedSale, TruthLine,
};
pub use trace::{
    FrameRef, NozzleRecord, NozzleState, PlateRef, SaleRecord, TraceError, TracePlate, TraceReader,
    TraceRecord, TraceRecordRef, TraceWriter,
};
pub use tracker::{Track, TrackRead, Tracker, TrackerConfig};
