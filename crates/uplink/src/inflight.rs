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

/// Records and packet ids can no longer be paired.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PairingError {
    #[error("publish {pkid} written that was not handed over")]
    NotHandedOver { pkid: u16 },
    #[error("packet id {pkid} reused while {replaced:?} still awaits its ack")]
    Reused { pkid: u16, replaced: Sent },
}

impl InflightTracker {
    /// A publish was handed to the MQTT client.
    pub fn handed_over(&mut self, sent: Sent) {
        self.queued.push_back(sent);
    }

    /// The client reports it wrote the next publish with `pkid` (0 means QoS 0: no ack coming).
    ///
    /// Errs when the pairing can no longer be trusted (a publish we did not hand over, or an id
    /// reused before its ack): an ack could then delete a record the broker does not have, so
    /// the caller must end the session; everything not deleted is sent again in the next one.
    pub fn written(&mut self, pkid: u16) -> Result<(), PairingError> {
        let Some(sent) = self.queued.pop_front() else {
            return Err(PairingError::NotHandedOver { pkid });
        };
        if pkid == 0 {
            return Ok(());
        }
        match self.awaiting_ack.insert(pkid, sent) {
            None => Ok(()),
            Some(replaced) => Err(PairingError::Reused { pkid, replaced }),
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
        t.written(1).unwrap();
        t.written(2).unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(t.records(), 2);
        t.written(3).unwrap();
        assert_eq!(t.acked(2), Some(rec(10)));
        assert_eq!(t.acked(2), None, "a duplicate ack finds nothing");
        t.handed_over(rec(12));
        t.written(2).unwrap(); // acknowledged above: free again
        assert_eq!(t.acked(2), Some(rec(12)));
        assert_eq!(t.acked(3), Some(rec(11)));
        assert_eq!(t.acked(1), Some(Sent::Status));
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn a_pairing_that_cannot_be_trusted_is_reported() {
        let mut t = InflightTracker::default();
        t.handed_over(rec(10));
        t.handed_over(rec(11));
        t.written(1).unwrap();
        assert_eq!(
            t.written(1),
            Err(PairingError::Reused {
                pkid: 1,
                replaced: rec(10)
            })
        );
        assert_eq!(t.written(2), Err(PairingError::NotHandedOver { pkid: 2 }));
    }

    #[test]
    fn qos0_publishes_expect_no_ack() {
        let mut t = InflightTracker::default();
        t.handed_over(Sent::Status);
        t.written(0).unwrap();
        assert_eq!(t.len(), 0);
    }
}
