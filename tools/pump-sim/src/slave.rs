//! Line level of one simulated FP as a DART slave: answers POLL with EOT or a DATA block, keeps
//! TX# both ways, retransmits an unacknowledged block, ACKs/NAKs the master's DATA.

use dart_protocol::{
    encode_pump_transactions, parse_master_transactions, Frame, FrameKind, RxVerdict, TxReceiver,
    TxSender,
};

use crate::pump::SimPump;

/// After this many NAKs for one block the sender restarts the line (TX# 0).
const MAX_NAKS: u8 = 3;

#[derive(Debug, Default)]
pub struct SlaveLink {
    tx: TxSender,
    rx: TxReceiver,
    /// Block sent and not yet acknowledged: (TX#, payload).
    unacked: Option<(u8, Vec<u8>)>,
    naks: u8,
}

impl SlaveLink {
    pub fn new() -> Self {
        Self::default()
    }

    /// Handles one frame addressed to this FP; returns the answer, if any.
    pub fn on_frame(&mut self, frame: &Frame, pump: &mut SimPump, now_s: f64) -> Option<Frame> {
        let addr = pump.address;
        match &frame.kind {
            FrameKind::Poll => Some(self.answer_poll(pump)),
            FrameKind::AckPoll { .. } => {
                self.acknowledged();
                Some(self.answer_poll(pump))
            }
            FrameKind::Ack { .. } => {
                self.acknowledged();
                None
            }
            FrameKind::Nak { .. } => {
                self.naks += 1;
                if self.naks >= MAX_NAKS {
                    // Restart the line: renumber the pending block as 0.
                    self.tx.restart();
                    if let Some((tx, _)) = self.unacked.as_mut() {
                        *tx = self.tx.next_block();
                    }
                    self.naks = 0;
                }
                None
            }
            FrameKind::Data { tx, payload } => {
                let verdict = self.rx.check(*tx);
                if verdict == RxVerdict::Accept {
                    match parse_master_transactions(payload) {
                        Ok(txs) => {
                            for t in &txs {
                                pump.handle(now_s, t);
                            }
                        }
                        Err(e) => tracing::warn!(fp = pump.fp, error = %e, "bad master block"),
                    }
                }
                let kind = match verdict {
                    RxVerdict::Accept | RxVerdict::Duplicate => FrameKind::Ack { tx: *tx },
                    RxVerdict::Reject => FrameKind::Nak { tx: *tx },
                };
                Some(Frame::new(addr, kind))
            }
            FrameKind::Eot { .. } => None,
        }
    }

    /// The pump restarted: both numberings start over, the unacknowledged block is gone.
    pub fn restart(&mut self) {
        *self = Self::default();
    }

    /// Drops the block waiting for the master's ACK (see `FaultOptions::forget_unpolled_s`).
    pub fn forget_unacked(&mut self) {
        self.unacked = None;
        self.naks = 0;
    }

    fn acknowledged(&mut self) {
        self.unacked = None;
        self.naks = 0;
    }

    fn answer_poll(&mut self, pump: &mut SimPump) -> Frame {
        let addr = pump.address;
        if self.unacked.is_none() && pump.has_output() {
            let payload = encode_pump_transactions(&pump.take_outbox());
            self.unacked = Some((self.tx.next_block(), payload));
        }
        match &self.unacked {
            Some((tx, payload)) => Frame::new(
                addr,
                FrameKind::Data {
                    tx: *tx,
                    payload: payload.clone(),
                },
            ),
            None => Frame::new(
                addr,
                FrameKind::Eot {
                    tx: self.tx.current().unwrap_or(0),
                },
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::PumpSpec;
    use dart_protocol::{
        encode_master_transactions, parse_pump_transactions, Command, MasterTransaction,
        PumpStatus, PumpTransaction,
    };

    fn data(tx: u8, cmd: Command) -> Frame {
        Frame::new(
            0x50,
            FrameKind::Data {
                tx,
                payload: encode_master_transactions(&[MasterTransaction::Command(cmd)]),
            },
        )
    }

    #[test]
    fn poll_ack_and_retransmit() {
        let mut pump = SimPump::new(&PumpSpec::default_for(1));
        let mut link = SlaveLink::new();
        let poll = Frame::new(0x50, FrameKind::Poll);
        assert_eq!(
            link.on_frame(&poll, &mut pump, 0.0),
            Some(Frame::new(0x50, FrameKind::Eot { tx: 0 }))
        );
        assert_eq!(
            link.on_frame(&data(0, Command::ReturnStatus), &mut pump, 0.0),
            Some(Frame::new(0x50, FrameKind::Ack { tx: 0 }))
        );
        let answer = link.on_frame(&poll, &mut pump, 0.0).unwrap();
        let FrameKind::Data { tx: 0, payload } = &answer.kind else {
            panic!("{answer:?}")
        };
        assert_eq!(
            parse_pump_transactions(payload).unwrap(),
            vec![PumpTransaction::Status(PumpStatus::Reset)]
        );
        // No ACK: the same block again, same TX#.
        assert_eq!(link.on_frame(&poll, &mut pump, 0.0), Some(answer));
        link.on_frame(&Frame::new(0x50, FrameKind::Ack { tx: 0 }), &mut pump, 0.0);
        assert!(matches!(
            link.on_frame(&poll, &mut pump, 0.0).unwrap().kind,
            FrameKind::Eot { .. }
        ));
        // Duplicate master block: ACKed, not applied twice.
        link.on_frame(&data(1, Command::ReturnStatus), &mut pump, 0.0);
        link.on_frame(&data(1, Command::ReturnStatus), &mut pump, 0.0);
        assert_eq!(pump.take_outbox().len(), 1);
        // Out of sequence: NAK.
        assert_eq!(
            link.on_frame(&data(5, Command::ReturnStatus), &mut pump, 0.0),
            Some(Frame::new(0x50, FrameKind::Nak { tx: 5 }))
        );
    }
}
