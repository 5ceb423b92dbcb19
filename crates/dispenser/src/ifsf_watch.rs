//! Watch-only IFSF over TCP/IP as pure state: the messages of one dispenser node in, dispenser
//! events out, with the only messages a watch-only controlling device ever sends: reads and
//! acknowledges (never a write: no lock, clear or authorise). No sockets, no clocks: the driver
//! ([`crate::IfsfTcpDriver`]) passes the time in.
//!
//! A sale is a transaction in the node's buffer that is payable, locked or cleared, with its
//! amount, volume and unit price. The device announces it unsolicited; fields it leaves out are
//! read. After every (re)connection the newest `history` transactions of each point are read
//! back, so a sale completed while the link was down is reported; one already reported in this
//! run is not reported again (by fuelling point, sequence number, volume and amount), and the
//! station recognises one reported before a restart by its source key.
//!
//! *Unverified* against a device (see `docs/sources.md`): how a device answers a read of a
//! transaction it no longer holds (taken: an answer without a state, which is passed over).

use std::collections::{BTreeMap, BTreeSet};

use forecourt_events::{Decimal, DispenserEvent, UnixMillis};
use ifsf_protocol::fuelling_point::{fp_db_address, fp_of_db_address, ids as fp_ids};
use ifsf_protocol::transaction::ids as tr_ids;
use ifsf_protocol::{
    FpStatus, Message, MessageCode, MessageKind, NodeAddress, TransactionAddress,
    TransactionRecord, TransactionState,
};

use crate::ifsf_config::IfsfTcpConfig;
use crate::point_memory::{FoundSale, PointMemory};

/// Transactions waiting for their missing fields, at most.
const PARTIAL_MAX: usize = 256;
/// Sequence numbers run 1..=9999, then start again at 1.
const MAX_SEQ: u16 = 9999;

/// What one input produced: events for the station and messages for the device.
#[derive(Debug, Default, PartialEq)]
pub struct WatchStep {
    pub events: Vec<DispenserEvent>,
    pub send: Vec<Message>,
}

/// Counters for the health report and the tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WatchStats {
    pub messages: u64,
    /// Messages not from the configured device to this node: another node's traffic, or a
    /// stream out of step.
    pub foreign: u64,
    /// Messages about nothing watched (another fuelling point or database, a write).
    pub passed_over: u64,
    /// Messages whose data items or fields could not be read.
    pub unreadable: u64,
    pub sales: u64,
    /// Reports of a sale already reported in this run.
    pub repeats: u64,
    /// Transactions found numbered between two reads but no longer in the device's buffer.
    pub beyond_buffer: u64,
}

#[derive(Debug)]
struct PointWatch {
    point: u8,
    memory: PointMemory,
    online: bool,
    /// Waiting for the latest sequence number to read the buffer back.
    reconciling: bool,
    /// The latest transaction number the device showed (0: none yet): a newer one in a state
    /// read means transactions to read (a device that announces nothing to this node is still
    /// followed).
    latest_seq: Option<u16>,
}

#[derive(Debug)]
pub struct IfsfWatch {
    device: NodeAddress,
    own: NodeAddress,
    history: u16,
    points: Vec<PointWatch>,
    /// Transactions seen without all their fields, by (point, sequence number).
    partial: BTreeMap<(u8, u16), TransactionRecord>,
    /// Transactions read back after a (re)connection: a sale found so is marked recovered.
    read_back: BTreeSet<(u8, u16)>,
    token: u8,
    stats: WatchStats,
    /// Reading a mirrored copy of another controlling device's traffic: the device's messages to
    /// anyone count, and nothing is ever to be sent.
    mirror: bool,
}

impl IfsfWatch {
    pub fn new(config: &IfsfTcpConfig) -> Self {
        IfsfWatch {
            device: config.device(),
            own: config.own(),
            history: config.history,
            points: config
                .fps
                .iter()
                .map(|f| PointWatch {
                    point: f.point,
                    memory: PointMemory::new(f.fp, f.grades.clone()),
                    online: false,
                    reconciling: false,
                    latest_seq: None,
                })
                .collect(),
            partial: BTreeMap::new(),
            read_back: BTreeSet::new(),
            token: 0,
            stats: WatchStats::default(),
            mirror: false,
        }
    }

    /// For a mirrored copy of the traffic between the device and the station's own controlling
    /// devices: what the device says to any of them counts; the steps never ask to send.
    pub fn mirror(config: &IfsfTcpConfig) -> Self {
        IfsfWatch {
            mirror: true,
            ..IfsfWatch::new(config)
        }
    }

    pub fn stats(&self) -> WatchStats {
        self.stats
    }

    /// A new link: read each point's state and latest transaction number; the answers start the
    /// read-back of the buffer.
    pub fn connected(&mut self) -> WatchStep {
        let mut step = WatchStep::default();
        for i in 0..self.points.len() {
            self.points[i].reconciling = true;
            step.send.extend(self.read_status(self.points[i].point));
        }
        step
    }

    /// The link is gone: every point is offline until the device answers again. A nozzle out
    /// now is still out as far as anyone knows; the next state tells.
    pub fn disconnected(&mut self, now: UnixMillis) -> WatchStep {
        let mut step = WatchStep::default();
        for p in &mut self.points {
            p.reconciling = false;
            if std::mem::take(&mut p.online) {
                step.events.push(DispenserEvent::PumpOffline {
                    t: now,
                    fp: p.memory.fp(),
                });
            }
        }
        step
    }

    /// The periodic state reads that keep the link alive.
    pub fn poll(&mut self) -> Vec<Message> {
        let points: Vec<u8> = self.points.iter().map(|p| p.point).collect();
        points
            .into_iter()
            .flat_map(|point| self.read_status(point))
            .collect()
    }

    pub fn on_message(&mut self, message: &Message, now: UnixMillis) -> WatchStep {
        let mut step = self.take_message(message, now);
        if self.mirror {
            step.send.clear();
        }
        step
    }

    fn take_message(&mut self, message: &Message, now: UnixMillis) -> WatchStep {
        let mut step = WatchStep::default();
        self.stats.messages += 1;
        if message.originator != self.device || (message.recipient != self.own && !self.mirror) {
            self.stats.foreign += 1;
            return step;
        }
        if message.code != MessageCode::Application {
            self.stats.passed_over += 1;
            return step;
        }
        step.send.extend(message.acknowledge(self.own));
        if !message.kind.carries_items() || message.kind == MessageKind::Write {
            self.stats.passed_over += 1;
            return step;
        }
        let Ok(items) = message.items() else {
            self.stats.unreadable += 1;
            return step;
        };
        if let Some(point) = fp_of_db_address(&message.db_address) {
            match FpStatus::from_items(&items) {
                Ok(status) => self.on_status((point, message.kind), &status, now, &mut step),
                Err(_) => self.stats.unreadable += 1,
            }
        } else if let Ok(address) = TransactionAddress::from_db_address(&message.db_address) {
            match TransactionRecord::from_items(&items) {
                Ok(record) => self.on_transaction(address, record, now, &mut step),
                Err(_) => self.stats.unreadable += 1,
            }
        } else {
            self.stats.passed_over += 1;
        }
        step
    }

    fn on_status(
        &mut self,
        (point, kind): (u8, MessageKind),
        status: &FpStatus,
        now: UnixMillis,
        step: &mut WatchStep,
    ) {
        let Some(i) = self.points.iter().position(|p| p.point == point) else {
            self.stats.passed_over += 1;
            return;
        };
        let history = self.history;
        let p = &mut self.points[i];
        if !std::mem::replace(&mut p.online, true) {
            step.events.push(DispenserEvent::PumpOnline {
                t: now,
                fp: p.memory.fp(),
            });
        }
        let running = status.current_volume.is_some() || status.current_amount.is_some();
        let out = match (status.state, status.nozzles_out) {
            (Some(state), mask) => Some(state.nozzle_out() || mask.is_some_and(|m| m != 0)),
            (None, Some(mask)) => Some(mask != 0),
            (None, None) => running.then_some(true),
        };
        let nozzle = status.first_nozzle_out().or(status.current_nozzle);
        if let Some(out) = out {
            step.events.extend(p.memory.nozzle(out, nozzle, now));
        }
        // A device with no transaction yet answers without a number: none to read back.
        let latest = status
            .transaction_seq
            .or((kind == MessageKind::Answer && p.reconciling).then_some(0));
        if let Some(latest) = latest {
            let reconciling = std::mem::take(&mut p.reconciling);
            let to_read = if reconciling {
                history
            } else {
                let new = p.latest_seq.map_or(0, |seen| seq_distance(seen, latest));
                if new > history {
                    // The device keeps at most `history`: the older ones are gone.
                    self.stats.beyond_buffer += u64::from(new - history);
                    tracing::warn!(fp = p.memory.fp(), missed = new - history, "more transactions than the device keeps completed between two state reads; the oldest cannot be read");
                }
                new.min(history)
            };
            p.latest_seq = Some(latest);
            for seq in newest(latest, to_read) {
                // Read back after a connection: not seen live. Found by a state read: the
                // fill was followed through the state reads.
                if reconciling {
                    self.read_back.insert((point, seq));
                }
                step.send.extend(self.read_transaction(point, seq));
            }
        }
    }

    fn on_transaction(
        &mut self,
        address: TransactionAddress,
        record: TransactionRecord,
        now: UnixMillis,
        step: &mut WatchStep,
    ) {
        let key = (address.fp, address.seq);
        if !self.points.iter().any(|p| p.point == address.fp) {
            self.stats.passed_over += 1;
            return;
        }
        let merged = match self.partial.remove(&key) {
            Some(mut known) => {
                merge(&mut known, record);
                known
            }
            None => record,
        };
        let completed = matches!(
            merged.state,
            Some(TransactionState::Payable | TransactionState::Locked | TransactionState::Cleared)
        );
        match (completed, merged.amount, merged.volume, merged.unit_price) {
            (true, Some(amount), Some(volume), Some(price)) => {
                self.report(address, &merged, (amount, volume, price), now, step);
            }
            (true, ..) => {
                // Announced without its figures: read them.
                step.send
                    .extend(self.read_transaction(address.fp, address.seq));
                self.keep_partial(key, merged);
            }
            // An answer for a transaction the device does not hold (no state at all).
            (false, ..) if merged.state.is_none() && self.read_back.remove(&key) => {}
            (false, ..) => self.keep_partial(key, merged),
        }
    }

    fn keep_partial(&mut self, key: (u8, u16), record: TransactionRecord) {
        if self.partial.len() >= PARTIAL_MAX {
            self.partial.pop_first();
        }
        self.partial.insert(key, record);
    }

    fn report(
        &mut self,
        address: TransactionAddress,
        record: &TransactionRecord,
        (amount, volume, price): (Decimal, Decimal, Decimal),
        now: UnixMillis,
        step: &mut WatchStep,
    ) {
        let read_back = self.read_back.remove(&(address.fp, address.seq));
        let device = self.device;
        let Some(p) = self.points.iter_mut().find(|p| p.point == address.fp) else {
            return;
        };
        let found = FoundSale {
            seq: u32::from(address.seq),
            nozzle: record.logical_nozzle,
            product: record.product,
            volume,
            amount,
            price,
            seen_live: !read_back,
            source_key: source_key(device, address),
        };
        match p.memory.sale(found, now) {
            Some(sale) => {
                self.stats.sales += 1;
                step.events.push(DispenserEvent::SaleCompleted(sale));
            }
            None => self.stats.repeats += 1,
        }
    }

    fn next_token(&mut self) -> u8 {
        self.token = (self.token + 1) & ifsf_protocol::message::MAX_TOKEN;
        self.token
    }

    fn read_status(&mut self, point: u8) -> Option<Message> {
        let db = fp_db_address(point).ok()?;
        let token = self.next_token();
        Message::read(
            self.device,
            self.own,
            token,
            &db,
            &[
                fp_ids::FP_STATE,
                fp_ids::LOG_NOZ_STATE,
                fp_ids::TRANSACTION_SEQUENCE_NB,
            ],
        )
        .ok()
    }

    fn read_transaction(&mut self, point: u8, seq: u16) -> Option<Message> {
        let db = TransactionAddress { fp: point, seq }.to_db_address().ok()?;
        let token = self.next_token();
        Message::read(self.device, self.own, token, &db, &tr_ids::SALE_FIELDS).ok()
    }
}

/// `ifsf-tcp:<node>:<point>:<TR_Seq_Nb>`, as `docs/mqtt.md` documents it.
pub fn source_key(device: NodeAddress, address: TransactionAddress) -> String {
    format!("ifsf-tcp:{device}:{}:{:04}", address.fp, address.seq)
}

/// The `count` newest sequence numbers up to `latest`, newest first (1..=9999, wrapping).
fn newest(latest: u16, count: u16) -> Vec<u16> {
    if !(1..=MAX_SEQ).contains(&latest) {
        return Vec::new();
    }
    (0..count.min(MAX_SEQ))
        .map(|back| (latest + MAX_SEQ - 1 - back) % MAX_SEQ + 1)
        .collect()
}

/// How many sequence numbers after `from` `to` is (1..=9999, wrapping; `from` 0: none before).
fn seq_distance(from: u16, to: u16) -> u16 {
    if from > MAX_SEQ || !(1..=MAX_SEQ).contains(&to) {
        return 0;
    }
    if from == 0 {
        return to;
    }
    (to + MAX_SEQ - from) % MAX_SEQ
}

fn merge(known: &mut TransactionRecord, new: TransactionRecord) {
    known.seq = new.seq.or(known.seq);
    known.amount = new.amount.or(known.amount);
    known.volume = new.volume.or(known.volume);
    known.unit_price = new.unit_price.or(known.unit_price);
    known.logical_nozzle = new.logical_nozzle.or(known.logical_nozzle);
    known.product = new.product.or(known.product);
    known.state = new.state.or(known.state);
}

#[cfg(test)]
mod tests {
    use super::*;
    use forecourt_events::Sale;
    use ifsf_protocol::fuelling_point::FpState;
    use ifsf_protocol::DataItem;

    const DEVICE: NodeAddress = NodeAddress::new(1, 1);
    const OWN: NodeAddress = NodeAddress::new(2, 9);

    fn watch() -> IfsfWatch {
        let config: IfsfTcpConfig = toml::from_str(
            r#"
address = "127.0.0.1:3486"
node = 1
own_node = 9
history = 3
fps = [{ fp = 5, point = 1, grades = ["92#", "95#"] }]
"#,
        )
        .unwrap();
        IfsfWatch::new(&config)
    }

    fn message(kind: MessageKind, db: &[u8], pairs: &[(u8, Vec<u8>)]) -> Message {
        let items: Vec<DataItem<'_>> = pairs
            .iter()
            .map(|(id, value)| DataItem { id: *id, value })
            .collect();
        Message::with_items(OWN, DEVICE, kind, 3, db, &items).unwrap()
    }

    fn status(kind: MessageKind, state: FpState, mask: u8, seq: Option<u16>) -> Message {
        let items = FpStatus {
            state: Some(state),
            nozzles_out: Some(mask),
            transaction_seq: seq,
            ..FpStatus::default()
        }
        .to_items()
        .unwrap();
        message(kind, &[0x21], &items)
    }

    fn transaction(kind: MessageKind, seq: u16, record: TransactionRecord) -> Message {
        let db = TransactionAddress { fp: 1, seq }.to_db_address().unwrap();
        message(kind, &db, &record.to_items().unwrap())
    }

    fn payable(seq: u16, volume: &str, amount: &str) -> TransactionRecord {
        TransactionRecord {
            seq: Some(seq),
            amount: Some(amount.parse().unwrap()),
            volume: Some(volume.parse().unwrap()),
            unit_price: Some("7.99".parse().unwrap()),
            logical_nozzle: Some(2),
            product: Some(95),
            state: Some(TransactionState::Payable),
        }
    }

    fn sales(step: &WatchStep) -> Vec<&Sale> {
        step.events
            .iter()
            .filter_map(|e| match e {
                DispenserEvent::SaleCompleted(s) => Some(s),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_live_fill_gives_nozzle_events_and_one_sale() {
        let mut w = watch();
        let out = w.on_message(
            &status(MessageKind::UnsolicitedNoAck, FpState::Calling, 0b10, None),
            1_000,
        );
        assert_eq!(
            out.events,
            [
                DispenserEvent::PumpOnline { t: 1_000, fp: 5 },
                DispenserEvent::NozzleOut {
                    t: 1_000,
                    fp: 5,
                    nozzle: 2
                }
            ]
        );
        let hung_up = w.on_message(
            &status(MessageKind::UnsolicitedNoAck, FpState::Idle, 0, None),
            60_000,
        );
        assert_eq!(
            hung_up.events,
            [DispenserEvent::NozzleIn {
                t: 60_000,
                fp: 5,
                nozzle: 2
            }]
        );
        let sale_msg = transaction(
            MessageKind::UnsolicitedWithAck,
            42,
            payable(42, "41.27", "329.75"),
        );
        let step = w.on_message(&sale_msg, 61_000);
        let sale = sales(&step)[0];
        assert_eq!(
            (
                sale.fp,
                sale.nozzle,
                sale.nozzle_out_t,
                sale.grade.as_deref()
            ),
            (5, 2, Some(1_000), Some("95#"))
        );
        assert_eq!(sale.volume.to_string(), "41.27");
        assert_eq!(sale.amount.to_string(), "329.75");
        assert_eq!(sale.price.to_string(), "7.99");
        assert_eq!(sale.source_key.as_deref(), Some("ifsf-tcp:1.1:1:0042"));
        assert!(!sale.recovered);
        // The acknowledge the unsolicited-with-ack message asks for; nothing else.
        assert_eq!(step.send.len(), 1);
        assert_eq!(step.send[0].kind, MessageKind::Ack);
        // The device announces it again (cleared by the POS): not a second sale.
        let mut cleared = payable(42, "41.27", "329.75");
        cleared.state = Some(TransactionState::Cleared);
        let again = w.on_message(
            &transaction(MessageKind::UnsolicitedNoAck, 42, cleared),
            70_000,
        );
        assert!(sales(&again).is_empty());
        assert_eq!(w.stats().repeats, 1);
    }

    #[test]
    fn a_state_change_without_figures_makes_the_watch_read_them() {
        let mut w = watch();
        let bare = TransactionRecord {
            seq: Some(7),
            state: Some(TransactionState::Payable),
            ..TransactionRecord::default()
        };
        let step = w.on_message(&transaction(MessageKind::UnsolicitedNoAck, 7, bare), 1);
        assert!(step.events.is_empty());
        assert_eq!(step.send.len(), 1);
        let read = &step.send[0];
        assert_eq!(read.kind, MessageKind::Read);
        assert_eq!(read.db_address, [0x21, 0x21, 0x00, 0x07]);
        assert_eq!(read.data, tr_ids::SALE_FIELDS);
        let answer = w.on_message(
            &transaction(MessageKind::Answer, 7, payable(7, "10.00", "79.90")),
            2,
        );
        assert_eq!(sales(&answer).len(), 1);
    }

    #[test]
    fn after_a_connection_the_buffer_is_read_back_and_only_new_sales_reported() {
        let mut w = watch();
        let live = w.on_message(
            &transaction(
                MessageKind::UnsolicitedNoAck,
                9998,
                payable(9998, "5.00", "39.95"),
            ),
            1,
        );
        assert_eq!(sales(&live).len(), 1);
        w.disconnected(2);
        let hello = w.connected();
        assert_eq!(hello.send.len(), 1);
        assert!(hello.send.iter().all(Message::is_watch_only));
        // The latest transaction is 0001: the read-back wraps past 9999.
        let answer = w.on_message(&status(MessageKind::Answer, FpState::Idle, 0, Some(1)), 3);
        let reads: Vec<&[u8]> = answer.send.iter().map(|m| &m.db_address[2..]).collect();
        assert_eq!(reads, [&[0x00, 0x01][..], &[0x99, 0x99], &[0x99, 0x98]]);
        let mut found = Vec::new();
        for (seq, volume) in [(1, "12.00"), (9999, "30.00"), (9998, "5.00")] {
            let step = w.on_message(
                &transaction(MessageKind::Answer, seq, payable(seq, volume, "39.95")),
                4,
            );
            found.extend(sales(&step).into_iter().cloned());
        }
        let found: Vec<(String, bool)> = found
            .iter()
            .map(|s| (s.volume.to_string(), s.recovered))
            .collect();
        assert_eq!(found, [("12.00".into(), true), ("30.00".into(), true)]);
    }

    #[test]
    fn other_nodes_writes_and_garbage_are_passed_over() {
        let mut w = watch();
        let mut foreign = status(MessageKind::UnsolicitedNoAck, FpState::Calling, 1, None);
        foreign.originator = NodeAddress::new(1, 2);
        assert_eq!(w.on_message(&foreign, 1), WatchStep::default());
        let write = transaction(MessageKind::Write, 3, payable(3, "1.00", "7.99"));
        assert!(w.on_message(&write, 1).events.is_empty());
        let mut garbage = transaction(MessageKind::UnsolicitedNoAck, 3, payable(3, "1.00", "7.99"));
        garbage.data = vec![5, 9, 1];
        assert!(w.on_message(&garbage, 1).events.is_empty());
        assert_eq!(
            (
                w.stats().foreign,
                w.stats().passed_over,
                w.stats().unreadable
            ),
            (1, 1, 1)
        );
    }

    #[test]
    fn the_watch_only_ever_sends_reads_and_acknowledges() {
        let mut w = watch();
        let mut sent = w.connected().send;
        sent.extend(w.poll());
        for m in [
            status(
                MessageKind::UnsolicitedWithAck,
                FpState::Fuelling,
                1,
                Some(5),
            ),
            transaction(
                MessageKind::UnsolicitedWithAck,
                5,
                TransactionRecord {
                    state: Some(TransactionState::Payable),
                    ..TransactionRecord::default()
                },
            ),
        ] {
            sent.extend(w.on_message(&m, 1).send);
        }
        assert!(sent.len() > 4);
        assert!(sent
            .iter()
            .all(|m| matches!(m.kind, MessageKind::Read | MessageKind::Ack)));
    }

    #[test]
    fn a_state_read_showing_new_transactions_reads_them() {
        let mut w = watch();
        w.connected();
        let first = w.on_message(&status(MessageKind::Answer, FpState::Idle, 0, Some(40)), 1);
        assert_eq!(first.send.len(), 3, "read back on connection");
        let same = w.on_message(&status(MessageKind::Answer, FpState::Idle, 0, Some(40)), 2);
        assert!(same.send.is_empty());
        // Two sales since, never announced to this node: both read, and not taken for
        // sales completed while the link was down.
        let newer = w.on_message(&status(MessageKind::Answer, FpState::Idle, 0, Some(42)), 3);
        let reads: Vec<&[u8]> = newer.send.iter().map(|m| &m.db_address[2..]).collect();
        assert_eq!(reads, [&[0x00, 0x42][..], &[0x00, 0x41]]);
        let answer = w.on_message(
            &transaction(MessageKind::Answer, 42, payable(42, "9.00", "71.91")),
            3,
        );
        assert!(!sales(&answer)[0].recovered);
        // Five more than the device keeps (3 here): two cannot be read, and say so.
        let far = w.on_message(&status(MessageKind::Answer, FpState::Idle, 0, Some(47)), 4);
        assert_eq!(far.send.len(), 3);
        assert_eq!(w.stats().beyond_buffer, 2);
    }

    #[test]
    fn a_mirror_takes_the_device_s_messages_to_anyone_and_sends_nothing() {
        let config: IfsfTcpConfig = toml::from_str(
            "address = \"127.0.0.1:3486\"\nnode = 1\nmode = \"mirror\"\nfps = [{ fp = 5, point = 1 }]\n",
        )
        .unwrap();
        let mut w = IfsfWatch::mirror(&config);
        // The device answers the station's own POS (node 2.3).
        let mut answer = transaction(
            MessageKind::UnsolicitedWithAck,
            8,
            payable(8, "3.00", "23.97"),
        );
        answer.recipient = NodeAddress::new(2, 3);
        let step = w.on_message(&answer, 1);
        assert_eq!(sales(&step).len(), 1);
        assert!(
            step.send.is_empty(),
            "a mirror sends nothing, not even the acknowledge"
        );
        let state = w.on_message(&status(MessageKind::Answer, FpState::Idle, 0, Some(12)), 2);
        assert!(state.send.is_empty());
    }

    #[test]
    fn newest_sequence_numbers_wrap() {
        assert_eq!(seq_distance(9998, 2), 3);
        assert_eq!(seq_distance(5, 5), 0);
        assert_eq!(seq_distance(0, 2), 2);
        assert_eq!(newest(3, 4), [3, 2, 1, 9999]);
        assert_eq!(newest(9999, 2), [9999, 9998]);
        assert!(newest(0, 5).is_empty());
    }
}
