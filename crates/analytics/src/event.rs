//! What the analytics hand out: the `arrival`, `visit` and `hourly` events of the HQ contract.

use wire::{Arrival, HourSummary, VisitRecord};

/// What [`Analytics::poll`] hands out, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum AnalyticsEvent {
    Arrival(Arrival),
    Visit(VisitRecord),
    Hourly(HourSummary),
}

impl AnalyticsEvent {
    /// Its stream on the wire.
    pub fn wire_stream(&self) -> wire::Stream {
        match self {
            AnalyticsEvent::Arrival(_) => wire::Stream::Arrival,
            AnalyticsEvent::Visit(_) => wire::Stream::Visit,
            AnalyticsEvent::Hourly(_) => wire::Stream::Hourly,
        }
    }

    /// The outbox stream: `arrival`, `visit` or `hourly`.
    pub fn stream(&self) -> &'static str {
        self.wire_stream().name()
    }

    /// What the station sends.
    pub fn into_event(self) -> wire::Event {
        match self {
            AnalyticsEvent::Arrival(a) => wire::Event::Arrival(a),
            AnalyticsEvent::Visit(v) => wire::Event::Visit(v),
            AnalyticsEvent::Hourly(h) => wire::Event::Hourly(h),
        }
    }

    /// The outbox body.
    pub fn body(&self) -> serde_json::Value {
        // Plain data with string keys and finite numbers always serialises.
        self.clone()
            .into_event()
            .to_body()
            .unwrap_or(serde_json::Value::Null)
    }
}
