//! Pure bookkeeping of what HQ received: dedupe by id, sequence numbers per (station, stream).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};

/// What one message was, to HQ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// A record not seen before.
    New {
        station: String,
        stream: String,
        seq: u64,
    },
    /// The same id again (at-least-once delivery): ignored.
    Duplicate,
    /// Not an event envelope, or on a topic that is not `<prefix>/<station>/events/<stream>`.
    Malformed(String),
}

/// Per (station, stream) figures.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamSummary {
    /// Distinct records (by id).
    pub unique: u64,
    /// Deliveries of an id already seen.
    pub duplicates: u64,
    /// Every seq in 1..=contiguous has arrived.
    pub contiguous: u64,
    /// Highest seq seen.
    pub max_seq: u64,
    /// New records whose seq was not `contiguous + 1` when they arrived.
    pub out_of_order: u64,
    /// The same seq with two different ids: a station bug, never expected.
    pub conflicts: u64,
    /// Missing seqs below `max_seq`, as inclusive ranges (at most 20 listed).
    pub gaps: Vec<(u64, u64)>,
    /// How many seqs are missing below `max_seq`.
    pub missing: u64,
}

/// Everything received, by `"<station>/<stream>"`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub messages: u64,
    pub malformed: u64,
    pub streams: BTreeMap<String, StreamSummary>,
}

impl Summary {
    /// No gaps, no conflicts, nothing malformed.
    pub fn is_clean(&self) -> bool {
        self.malformed == 0
            && self
                .streams
                .values()
                .all(|s| s.missing == 0 && s.conflicts == 0)
    }

    /// At least `min_streams` streams, each with seqs 1..=`n` all present and no conflicts.
    pub fn has_complete(&self, n: u64, min_streams: usize) -> bool {
        self.streams.len() >= min_streams
            && self
                .streams
                .values()
                .all(|s| s.contiguous >= n && s.conflicts == 0)
    }
}

#[derive(Debug, Default)]
struct StreamState {
    summary: StreamSummary,
    /// Seqs above `contiguous` that have arrived.
    ahead: BTreeSet<u64>,
    /// Which id each seq came with (to spot conflicts).
    ids_by_seq: HashMap<u64, String>,
}

/// The consumer's memory. Holds every id seen: a test tool, not for months of traffic.
#[derive(Debug, Default)]
pub struct SeqTracker {
    messages: u64,
    malformed: u64,
    ids: HashSet<String>,
    streams: BTreeMap<(String, String), StreamState>,
}

#[derive(Deserialize)]
struct Envelope {
    id: String,
    seq: u64,
    stream: String,
}

impl SeqTracker {
    pub fn new() -> SeqTracker {
        SeqTracker::default()
    }

    /// Takes one message from `<prefix>/<station>/events/<stream>`.
    pub fn observe(&mut self, topic: &str, payload: &[u8]) -> Observation {
        self.messages += 1;
        let malformed = |this: &mut SeqTracker, why: String| {
            this.malformed += 1;
            Observation::Malformed(why)
        };
        let levels: Vec<&str> = topic.split('/').collect();
        let [_prefix, station, "events", topic_stream] = levels.as_slice() else {
            return malformed(self, format!("unexpected topic {topic:?}"));
        };
        let envelope: Envelope = match serde_json::from_slice(payload) {
            Ok(e) => e,
            Err(e) => return malformed(self, format!("not an event envelope: {e}")),
        };
        if envelope.stream != *topic_stream {
            return malformed(
                self,
                format!("stream {:?} on topic {topic:?}", envelope.stream),
            );
        }
        if envelope.seq == 0 {
            return malformed(self, "seq 0 (seq counts from 1)".into());
        }
        let state = self
            .streams
            .entry((station.to_string(), envelope.stream.clone()))
            .or_default();
        if !self.ids.insert(envelope.id.clone()) {
            state.summary.duplicates += 1;
            return Observation::Duplicate;
        }
        let s = &mut state.summary;
        if let Some(other) = state.ids_by_seq.insert(envelope.seq, envelope.id.clone()) {
            if other != envelope.id {
                s.conflicts += 1;
            }
        }
        s.unique += 1;
        s.max_seq = s.max_seq.max(envelope.seq);
        if envelope.seq != s.contiguous + 1 {
            s.out_of_order += 1;
        }
        if envelope.seq > s.contiguous {
            state.ahead.insert(envelope.seq);
            while state.ahead.remove(&(s.contiguous + 1)) {
                s.contiguous += 1;
            }
        }
        Observation::New {
            station: station.to_string(),
            stream: envelope.stream,
            seq: envelope.seq,
        }
    }

    pub fn summary(&self) -> Summary {
        let streams = self
            .streams
            .iter()
            .map(|((station, stream), state)| {
                let mut s = state.summary.clone();
                let mut gaps = Vec::new();
                let mut missing = 0;
                let mut expected = s.contiguous + 1;
                for &seq in &state.ahead {
                    if seq > expected {
                        missing += seq - expected;
                        if gaps.len() < 20 {
                            gaps.push((expected, seq - 1));
                        }
                    }
                    expected = seq + 1;
                }
                s.gaps = gaps;
                s.missing = missing;
                (format!("{station}/{stream}"), s)
            })
            .collect();
        Summary {
            messages: self.messages,
            malformed: self.malformed,
            streams,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(id: &str, seq: u64, stream: &str) -> Vec<u8> {
        format!(r#"{{"id":"{id}","seq":{seq},"stream":"{stream}","t":0,"body":{{}}}}"#).into_bytes()
    }

    #[test]
    fn dedupes_by_id_and_reports_gaps_and_order() {
        let mut t = SeqTracker::new();
        let topic = "forecourt/S1/events/sale";
        assert!(matches!(
            t.observe(topic, &msg("a", 1, "sale")),
            Observation::New { seq: 1, .. }
        ));
        assert_eq!(
            t.observe(topic, &msg("a", 1, "sale")),
            Observation::Duplicate
        );
        t.observe(topic, &msg("c", 3, "sale"));
        t.observe(topic, &msg("f", 6, "sale"));
        t.observe("forecourt/S2/events/sale", &msg("x", 1, "sale"));
        let s = t.summary();
        let sale = &s.streams["S1/sale"];
        assert_eq!(
            (
                sale.unique,
                sale.duplicates,
                sale.contiguous,
                sale.max_seq,
                sale.out_of_order
            ),
            (3, 1, 1, 6, 2)
        );
        assert_eq!((sale.gaps.clone(), sale.missing), (vec![(2, 2), (4, 5)], 3));
        assert!(!s.is_clean());
        t.observe(topic, &msg("b", 2, "sale"));
        t.observe(topic, &msg("d", 4, "sale"));
        t.observe(topic, &msg("e", 5, "sale"));
        let s = t.summary();
        assert_eq!(s.streams["S1/sale"].contiguous, 6);
        assert!(s.is_clean());
        // Every stream must be complete: S2/sale has only seq 1.
        assert!(!s.has_complete(6, 1));
        assert!(s.has_complete(1, 2) && !s.has_complete(1, 3));
    }

    #[test]
    fn conflicts_and_malformed_messages_are_counted() {
        let mut t = SeqTracker::new();
        let topic = "forecourt/S1/events/nozzle";
        t.observe(topic, &msg("a", 1, "nozzle"));
        t.observe(topic, &msg("b", 1, "nozzle"));
        assert!(matches!(t.observe(topic, b"{"), Observation::Malformed(_)));
        assert!(matches!(
            t.observe(topic, &msg("z", 1, "sale")),
            Observation::Malformed(_)
        ));
        assert!(matches!(
            t.observe("x/y", &msg("q", 1, "sale")),
            Observation::Malformed(_)
        ));
        assert!(matches!(
            t.observe(topic, &msg("q", 0, "nozzle")),
            Observation::Malformed(_)
        ));
        let s = t.summary();
        assert_eq!((s.messages, s.malformed), (6, 4));
        assert_eq!(s.streams["S1/nozzle"].conflicts, 1);
        assert!(!s.is_clean());
    }
}
