//! A simulated IFSF over TCP/IP dispenser node, without I/O: up to four fuelling points driven by
//! the scenario's fills and random customers, a transaction buffer per point (the newest 15
//! kept), the unsolicited messages a device sends (FP status, running transaction, transaction
//! buffer state) and answers to reads. The station's own POS is played too: it clears each
//! payable sale after a while, so the device announces it again. Any write it receives (the
//! way to lock, clear or authorise) is kept in [`IfsfDevice::writes`]: a watch-only client must
//! never send one. Time is seconds since sim start.

use std::collections::VecDeque;

use dart_protocol::Decimals;
use forecourt_events::Decimal;
use ifsf_protocol::fuelling_point::{fp_db_address, fp_of_db_address, ids as fp_ids, FpState};
use ifsf_protocol::transaction::ids as tr_ids;
use ifsf_protocol::{
    DataItem, FpStatus, Message, MessageKind, NodeAddress, TransactionAddress, TransactionRecord,
    TransactionState,
};

use crate::pump::{SimRecord, SimRecordKind};
use crate::scenario::{to_raw, PumpSpec};
use crate::schedule::{CustomerProfile, RandomCustomers, Schedule};
use crate::Scenario;

/// Transactions a point keeps (IFSF allows 1..=15 historic transactions).
pub const BUFFER_LEN: usize = 15;
/// A running transaction message goes out this often while fuelling.
const RUNNING_EVERY_S: f64 = 1.0;
/// Price for a nozzle the scenario gives none: 1.00 per litre.
const DEFAULT_PRICE: Decimal = Decimal::new(100, 2);

#[derive(Debug, Clone)]
struct Fill {
    nozzle: u8,
    start_s: f64,
    end_s: f64,
    /// Raw volume units at the end.
    volume: u64,
    last_running_s: f64,
}

#[derive(Debug, Clone)]
struct Held {
    seq: u16,
    record: TransactionRecord,
    /// When the simulated POS clears it.
    clear_at_s: f64,
}

#[derive(Debug, Clone)]
struct Point {
    point: u8,
    decimals: Decimals,
    /// Raw price per nozzle (index 0 = nozzle 1).
    prices: Vec<u64>,
    fill: Option<Fill>,
    /// The latest transaction's sequence number (0: none yet).
    seq: u16,
    buffer: VecDeque<Held>,
    totals: Vec<u64>,
}

impl Point {
    fn new(spec: &PumpSpec) -> Self {
        let d = spec.decimals;
        let prices: Vec<u64> = if spec.prices.is_empty() {
            vec![DEFAULT_PRICE]
        } else {
            spec.prices.clone()
        }
        .into_iter()
        .map(|p| to_raw(p, d.price).unwrap_or(0))
        .collect();
        Point {
            point: spec.fp,
            decimals: Decimals {
                volume: d.volume,
                amount: d.amount,
                price: d.price,
            },
            totals: vec![0; prices.len()],
            prices,
            fill: None,
            seq: 0,
            buffer: VecDeque::new(),
        }
    }

    fn price(&self, nozzle: u8) -> u64 {
        let i = usize::from(nozzle.max(1) - 1).min(self.prices.len() - 1);
        self.prices[i]
    }

    fn status(&self) -> FpStatus {
        let (state, mask) = match &self.fill {
            Some(f) => (FpState::Fuelling, 1u8 << (f.nozzle.clamp(1, 8) - 1)),
            None => (FpState::Idle, 0),
        };
        FpStatus {
            state: Some(state),
            nozzles_out: Some(mask),
            transaction_seq: (self.seq > 0).then_some(self.seq),
            ..FpStatus::default()
        }
    }

    fn held(&self, seq: u16) -> Option<&Held> {
        self.buffer.iter().find(|h| h.seq == seq)
    }
}

/// How the simulated device behaves beyond its customers.
#[derive(Debug, Clone)]
pub struct IfsfDeviceOptions {
    pub node: u8,
    /// The simulated POS clears a payable sale this long after it completed.
    pub clear_after_s: f64,
    /// Sends no unsolicited message (a device that announces only to the controlling devices
    /// it was configured with): a client learns everything by reading.
    pub quiet: bool,
}

impl Default for IfsfDeviceOptions {
    fn default() -> Self {
        IfsfDeviceOptions {
            node: 1,
            clear_after_s: 20.0,
            quiet: false,
        }
    }
}

#[derive(Debug)]
pub struct IfsfDevice {
    address: NodeAddress,
    clear_after_s: f64,
    quiet: bool,
    points: Vec<Point>,
    schedule: Schedule,
    random: Option<RandomCustomers>,
    /// The controlling device unsolicited messages go to: the last one that spoke to it.
    client: Option<NodeAddress>,
    output: Vec<Message>,
    records: Vec<SimRecord>,
    writes: Vec<Message>,
    token: u8,
}

impl IfsfDevice {
    /// `scenario`'s pumps 1..=4 are the node's points 1..=4 (others are left out).
    pub fn new(
        scenario: &Scenario,
        options: &IfsfDeviceOptions,
        random: Option<(u64, CustomerProfile)>,
    ) -> Self {
        let points: Vec<Point> = scenario
            .pumps
            .iter()
            .filter(|p| (1..=4).contains(&p.fp))
            .map(Point::new)
            .collect();
        let fps: Vec<u8> = points.iter().map(|p| p.point).collect();
        IfsfDevice {
            address: NodeAddress::new(NodeAddress::DISPENSER_SUBNET, options.node),
            clear_after_s: options.clear_after_s,
            quiet: options.quiet,
            schedule: Schedule::from_scenario(scenario),
            random: random
                .map(|(seed, profile)| RandomCustomers::with_profile(seed, &fps, profile)),
            points,
            client: None,
            output: Vec::new(),
            records: Vec::new(),
            writes: Vec::new(),
            token: 0,
        }
    }

    pub fn address(&self) -> NodeAddress {
        self.address
    }

    /// The points' numbers on the node.
    pub fn points(&self) -> Vec<u8> {
        self.points.iter().map(|p| p.point).collect()
    }

    /// Ground-truth sales since the last call.
    pub fn take_records(&mut self) -> Vec<SimRecord> {
        std::mem::take(&mut self.records)
    }

    /// Messages to send to the client since the last call.
    pub fn take_output(&mut self) -> Vec<Message> {
        std::mem::take(&mut self.output)
    }

    /// Every write received: a watch-only client must never send one.
    pub fn writes(&self) -> &[Message] {
        &self.writes
    }

    /// The link to the client is gone: what the device announces meanwhile is lost to it (the
    /// buffer keeps the sales).
    pub fn disconnected(&mut self) {
        self.client = None;
        self.output.clear();
    }

    /// Starts due customers, advances fills, completes sales and lets the POS clear them.
    pub fn tick(&mut self, now_s: f64) {
        let mut lifts = self.schedule.due(now_s);
        if let Some(random) = self.random.as_mut() {
            for p in &self.points {
                let nozzles = p.prices.len() as u8;
                if let Some(l) =
                    random.due(now_s, p.point, p.fill.is_none(), nozzles, p.decimals.volume)
                {
                    lifts.push(l);
                }
            }
        }
        for lift in lifts {
            let Some(i) = self.points.iter().position(|p| p.point == lift.fp) else {
                continue;
            };
            if self.points[i].fill.is_some() {
                continue;
            }
            self.points[i].fill = Some(Fill {
                nozzle: lift.nozzle,
                start_s: now_s,
                end_s: lift.end_s,
                volume: lift.volume,
                last_running_s: now_s,
            });
            self.announce_status(i);
        }
        for i in 0..self.points.len() {
            self.advance(i, now_s);
            self.clear_due(i, now_s);
        }
    }

    fn advance(&mut self, i: usize, now_s: f64) {
        let Some(fill) = self.points[i].fill.clone() else {
            return;
        };
        if now_s >= fill.end_s {
            self.points[i].fill = None;
            self.announce_status(i);
            self.complete(i, &fill, now_s);
        } else if now_s - fill.last_running_s >= RUNNING_EVERY_S {
            if let Some(f) = self.points[i].fill.as_mut() {
                f.last_running_s = now_s;
            }
            let p = &self.points[i];
            let span = (fill.end_s - fill.start_s).max(1e-3);
            let volume =
                (fill.volume as f64 * ((now_s - fill.start_s) / span).clamp(0.0, 1.0)) as u64;
            let running = FpStatus {
                current_nozzle: Some(fill.nozzle),
                current_amount: Some(self.amount(p, volume, fill.nozzle)),
                current_volume: Some(decimal(volume, p.decimals.volume)),
                ..FpStatus::default()
            };
            let point = p.point;
            self.announce(point, fp_ids::RUNNING_TRANSACTION_MESSAGE, &running);
        }
    }

    fn amount(&self, p: &Point, volume: u64, nozzle: u8) -> Decimal {
        let raw = dart_protocol::amount_for(volume, p.price(nozzle), p.decimals).unwrap_or(0);
        decimal(raw, p.decimals.amount)
    }

    fn complete(&mut self, i: usize, fill: &Fill, now_s: f64) {
        let amount = self.amount(&self.points[i], fill.volume, fill.nozzle);
        let p = &mut self.points[i];
        p.seq = p.seq % 9999 + 1;
        let nozzle_index = usize::from(fill.nozzle.max(1) - 1).min(p.totals.len() - 1);
        p.totals[nozzle_index] += fill.volume;
        let record = TransactionRecord {
            seq: Some(p.seq),
            amount: Some(amount),
            volume: Some(decimal(fill.volume, p.decimals.volume)),
            unit_price: Some(decimal(p.price(fill.nozzle), p.decimals.price)),
            logical_nozzle: Some(fill.nozzle),
            product: Some(u32::from(fill.nozzle)),
            state: Some(TransactionState::Payable),
        };
        self.records.push(SimRecord {
            t_s: now_s,
            fp: p.point,
            nozzle: fill.nozzle,
            kind: SimRecordKind::Sale,
            volume: decimal(fill.volume, p.decimals.volume),
            amount,
            price: decimal(p.price(fill.nozzle), p.decimals.price),
            total: decimal(p.totals[nozzle_index], p.decimals.volume),
        });
        if p.buffer.len() >= BUFFER_LEN {
            p.buffer.pop_front();
        }
        p.buffer.push_back(Held {
            seq: p.seq,
            record: record.clone(),
            clear_at_s: now_s + self.clear_after_s,
        });
        let (point, seq) = (p.point, p.seq);
        self.announce_transaction(point, seq, &record);
    }

    fn clear_due(&mut self, i: usize, now_s: f64) {
        let due: Vec<(u16, TransactionRecord)> = self.points[i]
            .buffer
            .iter_mut()
            .filter(|h| h.record.state == Some(TransactionState::Payable) && now_s >= h.clear_at_s)
            .map(|h| {
                h.record.state = Some(TransactionState::Cleared);
                (h.seq, h.record.clone())
            })
            .collect();
        let point = self.points[i].point;
        for (seq, record) in due {
            self.announce_transaction(point, seq, &record);
        }
    }

    /// A message from the client: reads are answered, writes kept (and not obeyed).
    pub fn on_message(&mut self, message: &Message) {
        if message.recipient != self.address {
            return;
        }
        self.client = Some(message.originator);
        match message.kind {
            MessageKind::Read => self.answer(message),
            MessageKind::Write => self.writes.push(message.clone()),
            _ => {}
        }
    }

    fn answer(&mut self, read: &Message) {
        let wanted = &read.data;
        let items: Vec<(u8, Vec<u8>)> = if let Some(point) = fp_of_db_address(&read.db_address) {
            let Some(p) = self.points.iter().find(|p| p.point == point) else {
                return;
            };
            p.status().to_items().unwrap_or_default()
        } else if let Ok(address) = TransactionAddress::from_db_address(&read.db_address) {
            let Some(p) = self.points.iter().find(|p| p.point == address.fp) else {
                return;
            };
            // A transaction no longer held: an answer without items.
            p.held(address.seq)
                .and_then(|h| h.record.to_items().ok())
                .unwrap_or_default()
        } else {
            return;
        };
        let items: Vec<DataItem<'_>> = items
            .iter()
            .filter(|(id, _)| wanted.contains(id))
            .map(|(id, value)| DataItem { id: *id, value })
            .collect();
        if let Ok(answer) = Message::with_items(
            read.originator,
            self.address,
            MessageKind::Answer,
            read.token,
            &read.db_address,
            &items,
        ) {
            self.output.push(answer);
        }
    }

    fn announce_status(&mut self, i: usize) {
        let status = self.points[i].status();
        let point = self.points[i].point;
        self.announce(point, fp_ids::FP_STATUS_MESSAGE, &status);
    }

    fn announce(&mut self, point: u8, marker: u8, status: &FpStatus) {
        let Ok(db) = fp_db_address(point) else { return };
        let Ok(items) = status.to_items() else { return };
        self.unsolicited(&db, marker, &items);
    }

    fn announce_transaction(&mut self, point: u8, seq: u16, record: &TransactionRecord) {
        let Ok(db) = (TransactionAddress { fp: point, seq }).to_db_address() else {
            return;
        };
        let Ok(items) = record.to_items() else { return };
        self.unsolicited(&db, tr_ids::TR_BUFF_STATES_MESSAGE, &items);
    }

    /// As the public controller sends them: without acknowledge, a marker item first.
    fn unsolicited(&mut self, db: &[u8], marker: u8, items: &[(u8, Vec<u8>)]) {
        let Some(client) = self.client.filter(|_| !self.quiet) else {
            return;
        };
        self.token = (self.token + 1) & ifsf_protocol::message::MAX_TOKEN;
        let mut all = vec![DataItem {
            id: marker,
            value: &[],
        }];
        all.extend(items.iter().map(|(id, value)| DataItem { id: *id, value }));
        if let Ok(message) = Message::with_items(
            client,
            self.address,
            MessageKind::UnsolicitedNoAck,
            self.token,
            db,
            &all,
        ) {
            self.output.push(message);
        }
    }
}

fn decimal(raw: u64, scale: u8) -> Decimal {
    Decimal::new(i64::try_from(raw).unwrap_or(i64::MAX), scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: NodeAddress = NodeAddress::new(2, 9);

    fn device() -> IfsfDevice {
        let scenario = Scenario::from_toml(
            "[[pump]]\nfp = 1\nprices = [\"7.99\"]\n[[car]]\nfp = 1\n[car.fill]\nnozzle = 1\nstart_s = 1.0\nend_s = 11.0\nvolume = \"20.00\"\n",
        )
        .unwrap();
        IfsfDevice::new(&scenario, &IfsfDeviceOptions::default(), None)
    }

    fn read(db: &[u8], ids: &[u8]) -> Message {
        Message::read(NodeAddress::new(1, 1), CLIENT, 4, db, ids).unwrap()
    }

    #[test]
    fn a_fill_is_announced_kept_and_answered() {
        let mut d = device();
        d.on_message(&read(&[0x21], &[20, 21, 41]));
        let answer = d.take_output().remove(0);
        assert_eq!(
            (answer.kind, answer.token, answer.recipient),
            (MessageKind::Answer, 4, CLIENT)
        );
        for s in 1..=12 {
            d.tick(f64::from(s));
        }
        let out = d.take_output();
        // Status (out), running transactions, status (in), the transaction.
        assert!(out.len() >= 4, "{out:?}");
        let last = out.last().unwrap();
        assert_eq!(last.db_address, [0x21, 0x21, 0x00, 0x01]);
        let records = d.take_records();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].amount.to_string(), "159.80");
        d.on_message(&read(&[0x21, 0x21, 0x00, 0x01], &tr_ids::SALE_FIELDS));
        let answer = d.take_output().remove(0);
        let record = TransactionRecord::from_items(&answer.items().unwrap()).unwrap();
        assert_eq!(record.volume.unwrap().to_string(), "20.00");
        assert_eq!(record.state, Some(TransactionState::Payable));
        // A transaction it does not hold: an answer without items.
        d.on_message(&read(&[0x21, 0x21, 0x00, 0x02], &tr_ids::SALE_FIELDS));
        assert!(d.take_output()[0].data.is_empty());
    }

    #[test]
    fn writes_are_kept_not_obeyed() {
        let mut d = device();
        let clear = Message::with_items(
            NodeAddress::new(1, 1),
            CLIENT,
            MessageKind::Write,
            1,
            &[0x21, 0x21, 0x00, 0x01],
            &[DataItem { id: 32, value: &[] }],
        )
        .unwrap();
        d.on_message(&clear);
        assert_eq!(d.writes().len(), 1);
        assert!(d.take_output().is_empty());
    }
}
