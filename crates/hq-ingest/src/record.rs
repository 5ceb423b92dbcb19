//! What a message on the stations' topic tree is (pure: topic and payload bytes in, typed
//! result out). Anything that is not a well-formed record is kept as rejected, never dropped.

use uuid::Uuid;

/// One station record as HQ stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    pub id: Uuid,
    pub station: String,
    pub stream: String,
    pub seq: i64,
    /// When the station committed it (Unix ms).
    pub t: i64,
    pub body: serde_json::Value,
}

/// Which of the subscribed topics a message came on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicKind<'a> {
    /// `<prefix>/<station>/events/<stream>`
    Event {
        station: &'a str,
        stream: &'a str,
    },
    /// `<prefix>/<station>/status` (retained; the last will)
    Status {
        station: &'a str,
    },
    /// `<prefix>/<station>/cmd/resend/reply`
    ResendReply {
        station: &'a str,
    },
    /// `<prefix>/<station>/health` (QoS 0, periodic)
    Health {
        station: &'a str,
    },
    Other,
}

pub fn classify<'a>(prefix: &str, topic: &'a str) -> TopicKind<'a> {
    let mut levels = topic.split('/');
    if levels.next() != Some(prefix) {
        return TopicKind::Other;
    }
    let rest: Vec<&str> = levels.collect();
    match rest.as_slice() {
        [station, "events", stream] if !station.is_empty() && !stream.is_empty() => {
            TopicKind::Event { station, stream }
        }
        [station, "status"] if !station.is_empty() => TopicKind::Status { station },
        [station, "health"] if !station.is_empty() => TopicKind::Health { station },
        [station, "cmd", "resend", "reply"] if !station.is_empty() => {
            TopicKind::ResendReply { station }
        }
        _ => TopicKind::Other,
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RecordError {
    #[error("payload is not an event envelope: {0}")]
    NotAnEnvelope(String),
    #[error("envelope stream {envelope:?} is not the topic's {topic:?}")]
    StreamMismatch { topic: String, envelope: String },
    #[error("seq {0} is out of range (1 ..= 2^63-1)")]
    SeqOutOfRange(u64),
}

/// Reads the envelope of a message that came on `<prefix>/<station>/events/<stream>`.
pub fn parse_event(
    station: &str,
    stream: &str,
    payload: &[u8],
) -> Result<EventRecord, RecordError> {
    let envelope: wire::Envelope =
        serde_json::from_slice(payload).map_err(|e| RecordError::NotAnEnvelope(e.to_string()))?;
    if envelope.stream != stream {
        return Err(RecordError::StreamMismatch {
            topic: stream.to_string(),
            envelope: envelope.stream,
        });
    }
    let seq = i64::try_from(envelope.seq)
        .ok()
        .filter(|s| *s >= 1)
        .ok_or(RecordError::SeqOutOfRange(envelope.seq))?;
    Ok(EventRecord {
        id: envelope.id,
        station: station.to_string(),
        stream: envelope.stream,
        seq,
        t: envelope.t,
        body: envelope.body,
    })
}

/// From a station's health report: per stream, the seq up to which everything left its queue
/// (`outbox.acked_through`), so HQ knows of records it never saw even at a stream's tail.
/// `None` when the report has no such figure (an older station, an unreadable outbox).
pub fn parse_acked_through(payload: &[u8]) -> Option<Vec<(String, i64)>> {
    #[derive(serde::Deserialize)]
    struct Report {
        outbox: Outbox,
    }
    #[derive(serde::Deserialize)]
    struct Outbox {
        #[serde(default)]
        acked_through: Option<std::collections::BTreeMap<String, u64>>,
    }
    let report: Report = serde_json::from_slice(payload).ok()?;
    Some(
        report
            .outbox
            .acked_through?
            .into_iter()
            .filter_map(|(stream, seq)| {
                Some((stream, i64::try_from(seq).ok().filter(|s| *s >= 1)?))
            })
            .collect(),
    )
}

/// A resend reply the gap sweeper acts on: the command `id` it chose, and what the station
/// says it no longer holds.
#[derive(Debug, Clone, PartialEq)]
pub struct ResendReply {
    pub id: String,
    pub outcome: Result<wire::ResendResult, String>,
}

pub fn parse_resend_reply(payload: &[u8]) -> Option<ResendReply> {
    let reply: wire::Reply = serde_json::from_slice(payload).ok()?;
    let id = reply.id?;
    let outcome = if reply.ok {
        serde_json::from_value(reply.result?).map_err(|e| e.to_string())
    } else {
        Err(reply.error.unwrap_or_default())
    };
    Some(ResendReply { id, outcome })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_are_told_apart() {
        assert_eq!(
            classify("forecourt", "forecourt/ST1/events/sale"),
            TopicKind::Event {
                station: "ST1",
                stream: "sale"
            }
        );
        assert_eq!(
            classify("forecourt", "forecourt/ST1/status"),
            TopicKind::Status { station: "ST1" }
        );
        assert_eq!(
            classify("forecourt", "forecourt/ST1/cmd/resend/reply"),
            TopicKind::ResendReply { station: "ST1" }
        );
        for other in [
            "other/ST1/events/sale",
            "forecourt/ST1/events",
            "forecourt//events/sale",
            "forecourt/ST1/events/sale/x",
            "forecourt/ST1/cmd/ping/reply",
            "",
        ] {
            assert_eq!(classify("forecourt", other), TopicKind::Other, "{other}");
        }
    }

    #[test]
    fn an_envelope_becomes_a_record() {
        let payload = br#"{"id":"0b6f3c1e-8d2a-4f57-9a51-3f0c2e7d9b10","seq":7,"stream":"sale","t":1718000000123,"body":{"fp":2}}"#;
        let r = parse_event("ST1", "sale", payload).unwrap();
        assert_eq!(
            (r.station.as_str(), r.stream.as_str(), r.seq),
            ("ST1", "sale", 7)
        );
        assert_eq!(r.body["fp"], 2);
    }

    #[test]
    fn bad_envelopes_say_why() {
        let on = |p: &[u8]| parse_event("ST1", "sale", p);
        assert!(matches!(
            on(b"not json"),
            Err(RecordError::NotAnEnvelope(_))
        ));
        assert!(matches!(on(b"{}"), Err(RecordError::NotAnEnvelope(_))));
        let other_stream = br#"{"id":"0b6f3c1e-8d2a-4f57-9a51-3f0c2e7d9b10","seq":7,"stream":"nozzle","t":1,"body":{}}"#;
        assert!(matches!(
            on(other_stream),
            Err(RecordError::StreamMismatch { .. })
        ));
        let zero = br#"{"id":"0b6f3c1e-8d2a-4f57-9a51-3f0c2e7d9b10","seq":0,"stream":"sale","t":1,"body":{}}"#;
        assert_eq!(on(zero), Err(RecordError::SeqOutOfRange(0)));
        let huge = br#"{"id":"0b6f3c1e-8d2a-4f57-9a51-3f0c2e7d9b10","seq":18446744073709551615,"stream":"sale","t":1,"body":{}}"#;
        assert!(matches!(on(huge), Err(RecordError::SeqOutOfRange(_))));
    }

    #[test]
    fn health_reports_say_how_far_each_stream_left_the_station() {
        let report = br#"{"station":"ST1","outbox":{"depth":0,"acked_through":{"sale":12,"nozzle":0}},"agent":null}"#;
        assert_eq!(parse_acked_through(report), Some(vec![("sale".into(), 12)]));
        assert_eq!(parse_acked_through(br#"{"outbox":{"depth":0}}"#), None);
        assert_eq!(
            parse_acked_through(br#"{"outbox":{"acked_through":null}}"#),
            None
        );
        assert_eq!(parse_acked_through(b"[]"), None);
        assert_eq!(
            classify("forecourt", "forecourt/ST1/health"),
            TopicKind::Health { station: "ST1" }
        );
    }

    #[test]
    fn resend_replies_carry_what_is_gone() {
        let ok = parse_resend_reply(
            br#"{"id":"g1","ok":true,"result":{"requeued":0,"next_from_seq":null,"gone":[[3,9]]}}"#,
        )
        .unwrap();
        assert_eq!(ok.id, "g1");
        assert_eq!(ok.outcome.unwrap().gone, vec![[3, 9]]);
        let busy = parse_resend_reply(br#"{"id":"g2","ok":false,"error":"busy"}"#).unwrap();
        assert_eq!(busy.outcome, Err("busy".into()));
        assert!(parse_resend_reply(br#"{"id":null,"ok":false,"error":"x"}"#).is_none());
        assert!(parse_resend_reply(b"\xff").is_none());
    }
}
