//! Pure core of listen mode: follows a conversation between another master and the pumps, frame
//! by frame, and produces the same events a master would. No I/O; the caller passes `now`.
//!
//! Who sent a frame is told by its shape and its place in the conversation:
//! - POLL and ACKPOLL come from the master, EOT from a pump;
//! - DATA right after a POLL/ACKPOLL to the same address is the pump's answer (DC transactions),
//!   any other DATA is the master's (CD transactions);
//! - ACK/NAK after pump DATA is the master's verdict on it, after master DATA the pump's.
//!
//! A pump block counts only once the master ACKs it (ACK or ACKPOLL with its TX#): the pump
//! repeats unacknowledged blocks, and a block the master rejected was not received. A block whose
//! TX# equals the last one applied is a repeat (the master's ACK was lost) and is not applied
//! twice, the same receiver rule the master follows.

use dart_protocol::{parse_pump_transactions, Frame, FrameKind, FuellingPoint};
use forecourt_events::{DispenserEvent, FpNumber, UnixMillis};

use crate::config::DartConfig;

/// Whose turn it is, from the master's last frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Turn {
    /// Nothing known (start, or the last exchange is over).
    Idle,
    /// The master polled `addr`: the pump answers with EOT or DATA.
    Polled(u8),
    /// The pump at `addr` sent DATA: the master answers ACK/NAK (or ACKPOLL).
    PumpData(u8),
    /// The master sent DATA to `addr`: the pump answers ACK/NAK.
    MasterData(u8),
}

/// Counters for diagnostics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ObserverStats {
    pub pump_blocks_applied: u64,
    pub pump_blocks_repeated: u64,
    pub pump_blocks_rejected: u64,
    pub master_blocks: u64,
    pub polls_unanswered: u64,
    pub frames_for_unknown_addresses: u64,
}

struct ObservedFp {
    address: u8,
    fp: FuellingPoint,
    /// Pump DATA seen, waiting for the master's verdict: (TX#, payload).
    pending: Option<(u8, Vec<u8>)>,
    last_applied_tx: Option<u8>,
    online: Option<bool>,
    unanswered_polls: u32,
}

/// Follows one bus. Feed it every decoded frame in wire order.
pub struct WireObserver {
    fps: Vec<ObservedFp>,
    offline_after: u32,
    turn: Turn,
    stats: ObserverStats,
}

impl WireObserver {
    pub fn new(cfg: &DartConfig) -> Self {
        let totals_ms = i64::try_from(cfg.totals_interval_s.saturating_mul(1000)).unwrap_or(0);
        WireObserver {
            fps: cfg
                .fps
                .iter()
                .map(|f| ObservedFp {
                    address: f.address,
                    fp: FuellingPoint::new(
                        f.fuelling_point_config(cfg.nozzle_debounce_ms, totals_ms),
                    ),
                    pending: None,
                    last_applied_tx: None,
                    online: None,
                    unanswered_polls: 0,
                })
                .collect(),
            offline_after: cfg.offline_after_timeouts.max(1),
            turn: Turn::Idle,
            stats: ObserverStats::default(),
        }
    }

    /// Starts `fp`'s totalizer bookkeeping for `nozzle` from a reading the station kept across
    /// a restart (see `FuellingPoint::restore_totals`). False if `fp` is not on this line.
    pub fn restore_totals(&mut self, fp: FpNumber, nozzle: u8, total: u64) -> bool {
        let Some(f) = self.fps.iter_mut().find(|f| f.fp.fp() == fp) else {
            return false;
        };
        f.fp.restore_totals(nozzle, total);
        true
    }

    pub fn stats(&self) -> ObserverStats {
        self.stats
    }

    /// Debounce deadlines: call regularly (every ~100 ms) even when the wire is quiet.
    pub fn tick(&mut self, now: UnixMillis) -> Vec<DispenserEvent> {
        self.fps.iter_mut().flat_map(|f| f.fp.tick(now)).collect()
    }

    /// The wire went quiet or carried garbage: whatever exchange was in progress is over.
    pub fn line_break(&mut self) {
        self.turn = Turn::Idle;
    }

    /// The port was lost: every FP is offline until heard again.
    pub fn all_offline(&mut self, now: UnixMillis) -> Vec<DispenserEvent> {
        let mut events = Vec::new();
        self.turn = Turn::Idle;
        for f in &mut self.fps {
            f.pending = None;
            f.unanswered_polls = 0;
            if f.online != Some(false) {
                f.online = Some(false);
                f.fp.line_fault();
                events.push(DispenserEvent::PumpOffline {
                    t: now,
                    fp: f.fp.fp(),
                });
            }
        }
        events
    }

    pub fn on_frame(&mut self, now: UnixMillis, frame: &Frame) -> Vec<DispenserEvent> {
        let mut events = Vec::new();
        let addr = frame.addr;
        let turn = self.turn;
        let Some(i) = self.fps.iter().position(|f| f.address == addr) else {
            // Another FP on a shared bus that we do not track; keep following the conversation.
            self.stats.frames_for_unknown_addresses += 1;
            match frame.kind {
                FrameKind::Poll | FrameKind::AckPoll { .. } => {
                    self.master_polls(now, addr, &mut events)
                }
                _ => self.turn = Turn::Idle,
            }
            return events;
        };
        match &frame.kind {
            FrameKind::Poll => {
                self.master_polls(now, addr, &mut events);
            }
            FrameKind::AckPoll { tx } => {
                self.master_verdict(now, i, *tx, true, &mut events);
                self.master_polls(now, addr, &mut events);
            }
            FrameKind::Eot { .. } => {
                self.pump_spoke(now, i, &mut events);
                self.turn = Turn::Idle;
            }
            FrameKind::Data { tx, payload } => {
                if turn == Turn::Polled(addr) {
                    self.pump_spoke(now, i, &mut events);
                    self.fps[i].pending = Some((*tx, payload.clone()));
                    self.turn = Turn::PumpData(addr);
                } else {
                    self.close_turn(now, &mut events);
                    self.stats.master_blocks += 1;
                    self.turn = Turn::MasterData(addr);
                }
            }
            FrameKind::Ack { tx } | FrameKind::Nak { tx } => {
                let ack = matches!(frame.kind, FrameKind::Ack { .. });
                match turn {
                    Turn::MasterData(a) if a == addr => {
                        self.pump_spoke(now, i, &mut events);
                        self.turn = Turn::Idle;
                    }
                    // The master's verdict; also when we missed the turn but hold a block with
                    // this TX#: the pump never ACKs its own blocks.
                    _ if turn == Turn::PumpData(addr)
                        || self.fps[i].pending.as_ref().is_some_and(|(t, _)| t == tx) =>
                    {
                        self.master_verdict(now, i, *tx, ack, &mut events);
                        self.turn = Turn::Idle;
                    }
                    _ => self.turn = Turn::Idle,
                }
            }
        }
        events
    }

    /// A master frame while a poll to another (or the same) FP is unanswered: that poll got
    /// silence.
    fn close_turn(&mut self, now: UnixMillis, events: &mut Vec<DispenserEvent>) {
        if let Turn::Polled(a) = self.turn {
            self.stats.polls_unanswered += 1;
            if let Some(f) = self.fps.iter_mut().find(|f| f.address == a) {
                f.unanswered_polls = f.unanswered_polls.saturating_add(1);
                if f.unanswered_polls >= self.offline_after && f.online != Some(false) {
                    f.online = Some(false);
                    f.pending = None;
                    f.fp.line_fault();
                    events.push(DispenserEvent::PumpOffline {
                        t: now,
                        fp: f.fp.fp(),
                    });
                }
            }
        }
        self.turn = Turn::Idle;
    }

    fn master_polls(&mut self, now: UnixMillis, addr: u8, events: &mut Vec<DispenserEvent>) {
        self.close_turn(now, events);
        self.turn = Turn::Polled(addr);
    }

    fn pump_spoke(&mut self, now: UnixMillis, i: usize, events: &mut Vec<DispenserEvent>) {
        let f = &mut self.fps[i];
        f.unanswered_polls = 0;
        if f.online != Some(true) {
            f.online = Some(true);
            f.fp.line_fault();
            events.push(DispenserEvent::PumpOnline {
                t: now,
                fp: f.fp.fp(),
            });
        }
    }

    /// The master ACKed (or NAKed) pump block `tx` of FP `i`.
    fn master_verdict(
        &mut self,
        now: UnixMillis,
        i: usize,
        tx: u8,
        ack: bool,
        events: &mut Vec<DispenserEvent>,
    ) {
        let f = &mut self.fps[i];
        let Some((ptx, payload)) = f.pending.take() else {
            return;
        };
        if !ack || ptx != tx {
            self.stats.pump_blocks_rejected += 1;
            return;
        }
        if f.last_applied_tx == Some(ptx) {
            self.stats.pump_blocks_repeated += 1;
            return;
        }
        f.last_applied_tx = Some(ptx);
        self.stats.pump_blocks_applied += 1;
        match parse_pump_transactions(&payload) {
            Ok(txs) => {
                f.fp.begin_block();
                for t in &txs {
                    events.extend(f.fp.apply(now, t));
                }
            }
            Err(e) => tracing::warn!(fp = f.fp.fp(), error = %e, "malformed pump block"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DecimalsConfig, FpConfig};
    use dart_protocol::{
        encode_master_transactions, encode_pump_transactions, Command, MasterTransaction,
        PumpStatus, PumpTransaction,
    };
    use forecourt_events::{Decimal, Sale};

    const A: u8 = 0x50;

    fn observer() -> WireObserver {
        let mut cfg = DartConfig::new(
            "x",
            vec![
                FpConfig {
                    fp: 1,
                    address: A,
                    decimals: DecimalsConfig::default(),
                    grades: vec!["95".into()],
                    nozzles: None,
                },
                FpConfig {
                    fp: 2,
                    address: 0x51,
                    decimals: DecimalsConfig::default(),
                    grades: vec![],
                    nozzles: None,
                },
            ],
        );
        cfg.nozzle_debounce_ms = 0;
        WireObserver::new(&cfg)
    }

    fn poll(a: u8) -> Frame {
        Frame::new(a, FrameKind::Poll)
    }
    fn ack(a: u8, tx: u8) -> Frame {
        Frame::new(a, FrameKind::Ack { tx })
    }
    fn pump_data(a: u8, tx: u8, txs: &[PumpTransaction]) -> Frame {
        Frame::new(
            a,
            FrameKind::Data {
                tx,
                payload: encode_pump_transactions(txs),
            },
        )
    }
    fn master_cmd(a: u8, tx: u8, c: Command) -> Frame {
        Frame::new(
            a,
            FrameKind::Data {
                tx,
                payload: encode_master_transactions(&[MasterTransaction::Command(c)]),
            },
        )
    }
    fn st(code: u8) -> PumpTransaction {
        PumpTransaction::Status(PumpStatus::from_code(code))
    }
    fn noz(out: bool) -> PumpTransaction {
        PumpTransaction::PriceNozzle {
            price: 785,
            nozzle: 1,
            nozzle_out: out,
        }
    }

    fn run(o: &mut WireObserver, frames: &[Frame]) -> Vec<DispenserEvent> {
        frames
            .iter()
            .enumerate()
            .flat_map(|(k, f)| o.on_frame(1_000 + k as i64 * 10, f))
            .collect()
    }

    fn sales(ev: &[DispenserEvent]) -> Vec<&Sale> {
        ev.iter()
            .filter_map(|e| match e {
                DispenserEvent::SaleCompleted(s) => Some(s),
                _ => None,
            })
            .collect()
    }

    /// A master's conversation as it is on the wire; `01 01 xx` is both CD1 and DC1, so only
    /// the turn tells them apart.
    #[test]
    fn follows_a_sale() {
        let mut o = observer();
        let fin = [
            PumpTransaction::FillingInfo {
                volume: 1000,
                amount: 7850,
            },
            noz(false),
            st(5),
        ];
        let ev = run(
            &mut o,
            &[
                master_cmd(A, 0, Command::ReturnStatus),
                ack(A, 0),
                poll(A),
                pump_data(A, 0, &[st(1)]),
                ack(A, 0),
                poll(0x51), // silent FP 2
                poll(A),
                pump_data(A, 1, &[noz(true), st(1)]),
                ack(A, 1),
                master_cmd(A, 1, Command::Authorize),
                ack(A, 1), // the pump's ACK of the command
                poll(A),
                pump_data(A, 2, &[st(2), st(4)]),
                // The master's ACK was lost: the pump repeats, the master ACKs the repeat.
                poll(A),
                pump_data(A, 2, &[st(2), st(4)]),
                Frame::new(A, FrameKind::AckPoll { tx: 2 }),
                pump_data(A, 3, &fin),
                // Rejected (NAK): not applied; the repeat is.
                Frame::new(A, FrameKind::Nak { tx: 3 }),
                poll(A),
                pump_data(A, 3, &fin),
                ack(A, 3),
                // A repeat after the ACK is not a second sale.
                poll(A),
                pump_data(A, 3, &fin),
                ack(A, 3),
                master_cmd(A, 2, Command::Reset),
                ack(A, 2),
                poll(A),
                Frame::new(A, FrameKind::Eot { tx: 3 }),
            ],
        );
        let s = sales(&ev);
        assert_eq!(s.len(), 1, "{ev:#?}");
        assert_eq!(s[0].volume, Decimal::new(1000, 2));
        assert_eq!(s[0].amount, Decimal::new(7850, 2));
        assert_eq!(s[0].grade.as_deref(), Some("95"));
        assert!(matches!(ev[0], DispenserEvent::PumpOnline { fp: 1, .. }));
        assert!(ev.iter().any(|e| matches!(
            e,
            DispenserEvent::NozzleOut {
                fp: 1,
                nozzle: 1,
                ..
            }
        )));
        let stats = o.stats();
        assert_eq!(stats.pump_blocks_applied, 4);
        assert_eq!(stats.pump_blocks_repeated, 1);
        assert_eq!(stats.pump_blocks_rejected, 1);
        assert_eq!(stats.master_blocks, 3);
        assert_eq!(stats.polls_unanswered, 1);
    }

    #[test]
    fn master_data_is_never_taken_for_pump_data() {
        let mut o = observer();
        // CD1 05 (RESET) looks exactly like DC1 status 5 (filling completed).
        let ev = run(
            &mut o,
            &[
                poll(A),
                pump_data(A, 0, &[st(4)]),
                ack(A, 0),
                master_cmd(A, 0, Command::Reset),
                ack(A, 0),
            ],
        );
        assert!(sales(&ev).is_empty());
        assert_eq!(o.stats().pump_blocks_applied, 1);
        assert_eq!(o.stats().master_blocks, 1);
    }

    #[test]
    fn silent_fp_goes_offline_and_back() {
        let mut o = observer();
        let mut ev = Vec::new();
        for _ in 0..3 {
            ev.extend(run(
                &mut o,
                &[poll(0x51), poll(A), Frame::new(A, FrameKind::Eot { tx: 0 })],
            ));
        }
        assert!(ev
            .iter()
            .any(|e| matches!(e, DispenserEvent::PumpOffline { fp: 2, .. })));
        assert!(!ev
            .iter()
            .any(|e| matches!(e, DispenserEvent::PumpOffline { fp: 1, .. })));
        let ev = run(
            &mut o,
            &[poll(0x51), Frame::new(0x51, FrameKind::Eot { tx: 0 })],
        );
        assert!(matches!(ev[0], DispenserEvent::PumpOnline { fp: 2, .. }));
    }

    #[test]
    fn unknown_addresses_are_followed_not_tracked() {
        let mut o = observer();
        let ev = run(
            &mut o,
            &[poll(0x60), pump_data(0x60, 0, &[st(5)]), ack(0x60, 0)],
        );
        assert!(ev.is_empty());
        assert_eq!(o.stats().frames_for_unknown_addresses, 3);
    }
}
