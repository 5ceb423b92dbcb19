//! The event streams (`<prefix>/<station>/events/<stream>`) and their bodies.

use serde::{Deserialize, Serialize};

use crate::{
    Arrival, DeadLetter, HourSummary, NozzleBody, PumpBody, SaleBody, SaleCorrection, SaleGapBody,
    VisitRecord,
};

/// An event stream: the last level of its topic and the `stream` of its envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    Sale,
    Nozzle,
    Pump,
    SaleGap,
    SaleCorrection,
    DeadLetter,
    Arrival,
    Visit,
    Hourly,
}

impl Stream {
    /// Every stream, in the order `docs/mqtt.md` describes them.
    pub const ALL: [Stream; 9] = [
        Stream::Sale,
        Stream::Nozzle,
        Stream::Pump,
        Stream::SaleGap,
        Stream::SaleCorrection,
        Stream::DeadLetter,
        Stream::Arrival,
        Stream::Visit,
        Stream::Hourly,
    ];

    /// What people at the station and HQ act on as it happens (a car arriving, a pump's
    /// nozzle and state): the uplink sends these ahead of a backlog of the others. Each
    /// stream's own order (its `seq`) is kept; between streams it is not.
    pub const REAL_TIME: [Stream; 3] = [Stream::Arrival, Stream::Nozzle, Stream::Pump];

    /// The name on the wire.
    pub const fn name(self) -> &'static str {
        match self {
            Stream::Sale => "sale",
            Stream::Nozzle => "nozzle",
            Stream::Pump => "pump",
            Stream::SaleGap => "sale_gap",
            Stream::SaleCorrection => "sale_correction",
            Stream::DeadLetter => "dead_letter",
            Stream::Arrival => "arrival",
            Stream::Visit => "visit",
            Stream::Hourly => "hourly",
        }
    }
}

impl std::fmt::Display for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A stream name this contract does not define.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no stream is called {0:?}")]
pub struct UnknownStream(pub String);

impl std::str::FromStr for Stream {
    type Err = UnknownStream;

    fn from_str(name: &str) -> Result<Stream, UnknownStream> {
        Stream::ALL
            .into_iter()
            .find(|s| s.name() == name)
            .ok_or_else(|| UnknownStream(name.to_owned()))
    }
}

/// A body that is not what its stream carries.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("cannot write a {stream} body: {source}")]
    Encode {
        stream: Stream,
        source: serde_json::Error,
    },
    #[error("not a {stream} body: {source}")]
    Decode {
        stream: Stream,
        source: serde_json::Error,
    },
}

/// One event body, typed by its stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Sale(SaleBody),
    Nozzle(NozzleBody),
    Pump(PumpBody),
    SaleGap(SaleGapBody),
    SaleCorrection(SaleCorrection),
    DeadLetter(DeadLetter),
    Arrival(Arrival),
    Visit(VisitRecord),
    Hourly(HourSummary),
}

impl Event {
    pub fn stream(&self) -> Stream {
        match self {
            Event::Sale(_) => Stream::Sale,
            Event::Nozzle(_) => Stream::Nozzle,
            Event::Pump(_) => Stream::Pump,
            Event::SaleGap(_) => Stream::SaleGap,
            Event::SaleCorrection(_) => Stream::SaleCorrection,
            Event::DeadLetter(_) => Stream::DeadLetter,
            Event::Arrival(_) => Stream::Arrival,
            Event::Visit(_) => Stream::Visit,
            Event::Hourly(_) => Stream::Hourly,
        }
    }

    /// The body as the envelope carries it.
    pub fn to_body(&self) -> Result<serde_json::Value, WireError> {
        let value = match self {
            Event::Sale(b) => serde_json::to_value(b),
            Event::Nozzle(b) => serde_json::to_value(b),
            Event::Pump(b) => serde_json::to_value(b),
            Event::SaleGap(b) => serde_json::to_value(b),
            Event::SaleCorrection(b) => serde_json::to_value(b),
            Event::DeadLetter(b) => serde_json::to_value(b),
            Event::Arrival(b) => serde_json::to_value(b),
            Event::Visit(b) => serde_json::to_value(b),
            Event::Hourly(b) => serde_json::to_value(b),
        };
        value.map_err(|source| WireError::Encode {
            stream: self.stream(),
            source,
        })
    }

    /// Reads a body of `stream` back (a record the station sent, a message HQ received).
    pub fn from_body(stream: Stream, body: serde_json::Value) -> Result<Event, WireError> {
        use serde_json::from_value;
        let event = match stream {
            Stream::Sale => from_value(body).map(Event::Sale),
            Stream::Nozzle => from_value(body).map(Event::Nozzle),
            Stream::Pump => from_value(body).map(Event::Pump),
            Stream::SaleGap => from_value(body).map(Event::SaleGap),
            Stream::SaleCorrection => from_value(body).map(Event::SaleCorrection),
            Stream::DeadLetter => from_value(body).map(Event::DeadLetter),
            Stream::Arrival => from_value(body).map(Event::Arrival),
            Stream::Visit => from_value(body).map(Event::Visit),
            Stream::Hourly => from_value(body).map(Event::Hourly),
        };
        event.map_err(|source| WireError::Decode { stream, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_match_serde() {
        for s in Stream::ALL {
            assert_eq!(s.name().parse::<Stream>(), Ok(s));
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::Value::from(s.name())
            );
        }
        assert_eq!(
            "sales".parse::<Stream>(),
            Err(UnknownStream("sales".into()))
        );
    }

    #[test]
    fn a_body_of_another_stream_is_refused() {
        let nozzle = serde_json::json!({"t": 1, "fp": 2, "nozzle": 1, "state": "out"});
        assert!(Event::from_body(Stream::Nozzle, nozzle.clone()).is_ok());
        assert!(matches!(
            Event::from_body(Stream::Pump, nozzle),
            Err(WireError::Decode {
                stream: Stream::Pump,
                ..
            })
        ));
    }
}
