//! Which outbox record a PUBACK acknowledges.
//!
//! rumqttc assigns packet ids itself. It reports `Outgoing::Publish(pkid)` for each publish in
//! the order the publishes were handed to it, and `Incoming::PubAck` carries the pkid back. So:
//! remember what was handed over, in order; pair it with the next `Outgoing::Publish`; pair the
//! PUBACK with that.

use std::collections::{HashMap, VecDeque};

/// What a publish carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sent {
    /// An outbox record, by rowid: delete it when acknowledged. `created` gives the delivery
    /// lag for the health report.
    Record { rowid: i64, created: i64 },
    /// A status message: nothing to delete.
    Status,
    /// A command reply or a health report: nothing to delete.
    Notice,
}

#[derive(Debug, Default)]
pub(crate) struct InflightTracker {
    /// Handed to the client, no packet id seen yet.
    queued: VecDeque<Sent>,
    /// Sent with this packet id, waiting for its PUBACK.
    awaiting_ack: HashMap<u16, Sent>,
}

impl InflightTracker {
    /// A publish was handed to the MQTT client.
    pub fn handed_over(&mut self, sent: Sent) {
        self.queued.push_back(sent);
    }

    /// The client reports it wrote the next publish with `pkid` (0 means QoS 0: no ack coming).
    pub fn written(&mut self, pkid: u16) {
        let Some(sent) = self.queued.pop_front() else {
            tracing::warn!(pkid, "publish written that we did not hand over");
            return;
        };
        if pkid == 0 {
            return;
        }
        if let Some(replaced) = self.awaiting_ack.insert(pkid, sent) {
            // rumqttc does not reuse an unacknowledged id; if it ever did, the replaced record
            // stays in the outbox and is sent again after the next reconnect: not lost.
            tracing::warn!(pkid, ?replaced, "packet id reused while awaiting its ack");
        }
    }

    /// A PUBACK arrived: what it acknowledges, if we know.
    pub fn acked(&mut self, pkid: u16) -> Option<Sent> {
        self.awaiting_ack.remove(&pkid)
    }

    /// Publishes handed over and not yet acknowledged.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.queued.len() + self.awaiting_ack.len()
    }

    /// Records (not status messages) handed over and not yet acknowledged.
    pub fn records(&self) -> usize {
        self.queued
            .iter()
            .chain(self.awaiting_ack.values())
            .filter(|s| matches!(s, Sent::Record { .. }))
            .count()
    }

    pub fn awaiting(&self, what: Sent) -> bool {
        self.queued.contains(&what) || self.awaiting_ack.values().any(|s| *s == what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(rowid: i64) -> Sent {
        Sent::Record { rowid, created: 0 }
    }

    #[test]
    fn acks_map_to_what_was_handed_over_in_order() {
        let mut t = InflightTracker::default();
        t.handed_over(Sent::Status);
        t.handed_over(rec(10));
        t.handed_over(rec(11));
        t.written(1);
        t.written(2);
        assert_eq!(t.len(), 3);
        assert_eq!(t.records(), 2);
        assert_eq!(t.acked(2), Some(rec(10)));
        assert_eq!(t.acked(2), None, "a duplicate ack finds nothing");
        t.written(1); // id 1 still awaiting its ack: replaced, warned
        assert_eq!(t.acked(1), Some(rec(11)));
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn qos0_publishes_expect_no_ack() {
        let mut t = InflightTracker::default();
        t.handed_over(Sent::Status);
        t.written(0);
        assert_eq!(t.len(), 0);
        t.written(5); // nothing handed over: ignored
        assert_eq!(t.len(), 0);
    }
}
