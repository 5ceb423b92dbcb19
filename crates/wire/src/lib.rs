//! The HQ contract as types: every payload the station publishes on MQTT, one struct per stream,
//! matching `docs/mqtt.md` one to one (`tests/docs.rs` holds the document to these types, so
//! neither can drift). Writers build these and serialise them; readers (the station at restart,
//! HQ tools) deserialise them. Pure data: no I/O.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod analytics;
mod commands;
mod correction;
mod dead_letter;
mod dispenser;
mod envelope;
mod health;
mod sale;
mod status;
mod stream;

pub use analytics::{
    Arrival, ArrivalState, FpHourJson, HourSummary, MetricsJson, NozzleHourJson, VisitRecord,
    VisitSale, ZoneHourJson,
};
pub use commands::{
    PingResult, PlateCorrectionResult, PlateNotesResult, RecordTraceResult, ReloadResult, Reply,
    ResendCommand, ResendResult,
};
pub use correction::{HqCorrection, MatcherCorrection, SaleCorrection, StaffCorrection};
pub use dead_letter::{DeadLetter, DeadLetterRecord};
pub use dispenser::{NozzleBody, NozzleState, PumpBody, PumpState, SaleGapBody};
pub use envelope::Envelope;
pub use health::{
    AgentHealth, CameraHealth, FpHealth, FpZoneCheck, Health, OutboxFigures, PlateReaderHealth,
    SourceHealth, UplinkFigures,
};
pub use sale::SaleBody;
pub use status::{Status, StatusState};
pub use stream::{Event, Stream, UnknownStream, WireError};
