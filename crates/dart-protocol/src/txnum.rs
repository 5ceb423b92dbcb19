//! TX# (block sequence number) bookkeeping, one sender and one receiver per FP and direction.

/// The TX# after `tx`: +1, wrapping F -> 1 (0 only ever means "just (re)started").
pub fn next_tx(tx: u8) -> u8 {
    if tx >= 0x0F {
        1
    } else {
        tx + 1
    }
}

/// Numbers our outgoing DATA blocks: 0 for the first block after a (re)start, then 1..F, 1..
#[derive(Debug, Clone, Default)]
pub struct TxSender {
    last: Option<u8>,
}

impl TxSender {
    pub fn new() -> Self {
        Self::default()
    }

    /// TX# for a new block. Retransmissions reuse [`Self::current`] instead.
    pub fn next_block(&mut self) -> u8 {
        let tx = match self.last {
            None => 0,
            Some(t) => next_tx(t),
        };
        self.last = Some(tx);
        tx
    }

    /// TX# of the last block numbered, if any.
    pub fn current(&self) -> Option<u8> {
        self.last
    }

    /// Line restart (e.g. after 3 NAKs for one block): the next block is numbered 0 again.
    pub fn restart(&mut self) {
        self.last = None;
    }
}

/// What to do with a received DATA block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RxVerdict {
    /// New block: ACK and process.
    Accept,
    /// Same TX# as the last accepted block (our ACK was lost): ACK again, do not process.
    Duplicate,
    /// Out of sequence: NAK, do not process.
    Reject,
}

/// Applies the receiver rules to the peer's TX#.
#[derive(Debug, Clone, Default)]
pub struct TxReceiver {
    last: Option<u8>,
}

impl TxReceiver {
    pub fn new() -> Self {
        Self::default()
    }

    /// Rules, in order: equal to the last received -> duplicate; 0 -> peer restarted, accept;
    /// other mismatch -> reject, unless we expect 0 (we just started), then resync and accept.
    pub fn check(&mut self, tx: u8) -> RxVerdict {
        let tx = tx & 0x0F;
        let verdict = match self.last {
            Some(last) if last == tx => RxVerdict::Duplicate,
            _ if tx == 0 => RxVerdict::Accept,
            None => RxVerdict::Accept,
            Some(last) if tx == next_tx(last) => RxVerdict::Accept,
            // Not remembered: the sender retransmits the same TX#, which must not look like a
            // duplicate of something we never accepted.
            Some(_) => RxVerdict::Reject,
        };
        if verdict == RxVerdict::Accept {
            self.last = Some(tx);
        }
        verdict
    }

    /// Forget the sequence (after a line fault or our own restart): the next TX# is accepted.
    pub fn reset(&mut self) {
        self.last = None;
    }

    /// The TX# we expect next (0 when we have no sequence yet).
    pub fn expected(&self) -> u8 {
        self.last.map(next_tx).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sender_numbering() {
        let mut s = TxSender::new();
        let got: Vec<u8> = (0..18).map(|_| s.next_block()).collect();
        assert_eq!(
            got,
            vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 1, 2]
        );
        s.restart();
        assert_eq!(s.next_block(), 0);
    }

    #[test]
    fn receiver_accepts_sequence_and_wrap() {
        let mut r = TxReceiver::new();
        for tx in [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 1, 2] {
            assert_eq!(r.check(tx), RxVerdict::Accept, "tx {tx}");
        }
    }

    #[test]
    fn receiver_duplicate_is_acked_and_discarded() {
        let mut r = TxReceiver::new();
        assert_eq!(r.check(0), RxVerdict::Accept);
        assert_eq!(r.check(1), RxVerdict::Accept);
        assert_eq!(r.check(1), RxVerdict::Duplicate);
        assert_eq!(r.check(2), RxVerdict::Accept);
    }

    #[test]
    fn receiver_zero_means_peer_restarted() {
        let mut r = TxReceiver::new();
        for tx in 0..6 {
            r.check(tx);
        }
        assert_eq!(r.check(0), RxVerdict::Accept);
        assert_eq!(r.check(1), RxVerdict::Accept);
    }

    #[test]
    fn receiver_rejects_gap_unless_expecting_zero() {
        let mut r = TxReceiver::new();
        // We just started: expect 0, so any number resyncs.
        assert_eq!(r.expected(), 0);
        assert_eq!(r.check(7), RxVerdict::Accept);
        assert_eq!(r.check(9), RxVerdict::Reject);
        assert_eq!(r.check(9), RxVerdict::Reject);
        assert_eq!(r.check(8), RxVerdict::Accept);
        r.reset();
        assert_eq!(r.check(9), RxVerdict::Accept);
        assert_eq!(r.check(10), RxVerdict::Accept);
    }

    #[test]
    fn receiver_tolerates_f_to_0_wrap() {
        let mut r = TxReceiver::new();
        r.check(14);
        assert_eq!(r.check(15), RxVerdict::Accept);
        assert_eq!(r.check(0), RxVerdict::Accept);
        assert_eq!(r.check(1), RxVerdict::Accept);
    }
}
