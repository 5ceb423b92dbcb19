//! A simulated IFSF over TCP/IP dispenser node, without I/O: the wire face of a simulated
//! [`Forecourt`] (up to four fuelling points). It sends what a device sends unsolicited (FP
//! status, running transaction, transaction buffer state) and answers reads. Any write it
//! receives (the way to lock, clear or authorise) is kept in [`IfsfDevice::writes`]: a watch-only
//! client must never send one. Time is seconds since sim start.

use ifsf_protocol::fuelling_point::{fp_db_address, fp_of_db_address, ids as fp_ids, FpState};
use ifsf_protocol::transaction::ids as tr_ids;
use ifsf_protocol::{
    DataItem, FpStatus, Message, MessageKind, NodeAddress, TransactionAddress, TransactionRecord,
};

use crate::forecourt::{Change, Forecourt, Transaction};
use crate::pump::SimRecord;
use crate::schedule::CustomerProfile;
use crate::Scenario;

pub use crate::forecourt::BUFFER_LEN;

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
    quiet: bool,
    forecourt: Forecourt,
    /// The controlling device unsolicited messages go to: the last one that spoke to it.
    client: Option<NodeAddress>,
    output: Vec<Message>,
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
        IfsfDevice {
            address: NodeAddress::new(NodeAddress::DISPENSER_SUBNET, options.node),
            quiet: options.quiet,
            forecourt: Forecourt::new(scenario, 4, options.clear_after_s, random),
            client: None,
            output: Vec::new(),
            writes: Vec::new(),
            token: 0,
        }
    }

    pub fn address(&self) -> NodeAddress {
        self.address
    }

    /// The points' numbers on the node.
    pub fn points(&self) -> Vec<u8> {
        self.forecourt.points()
    }

    /// Ground-truth sales since the last call.
    pub fn take_records(&mut self) -> Vec<SimRecord> {
        self.forecourt.take_records()
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

    /// Moves the forecourt on and announces what changed.
    pub fn tick(&mut self, now_s: f64) {
        for change in self.forecourt.tick(now_s) {
            match change {
                Change::State { point } => {
                    if let Some(status) = self.status(point) {
                        self.announce(point, fp_ids::FP_STATUS_MESSAGE, &status);
                    }
                }
                Change::Running {
                    point,
                    nozzle,
                    amount,
                    volume,
                } => {
                    let running = FpStatus {
                        current_nozzle: Some(nozzle),
                        current_amount: Some(amount),
                        current_volume: Some(volume),
                        ..FpStatus::default()
                    };
                    self.announce(point, fp_ids::RUNNING_TRANSACTION_MESSAGE, &running);
                }
                Change::Transaction { point, seq } => {
                    if let Some(record) = self.forecourt.transaction(point, seq).map(record) {
                        self.announce_transaction(point, seq, &record);
                    }
                }
            }
        }
    }

    fn status(&self, point: u8) -> Option<FpStatus> {
        let (nozzle_out, seq) = self.forecourt.status(point)?;
        let (state, mask) = match nozzle_out {
            Some(nozzle) => (FpState::Fuelling, 1u8 << (nozzle.clamp(1, 8) - 1)),
            None => (FpState::Idle, 0),
        };
        Some(FpStatus {
            state: Some(state),
            nozzles_out: Some(mask),
            transaction_seq: (seq > 0).then_some(seq),
            ..FpStatus::default()
        })
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
            let Some(status) = self.status(point) else {
                return;
            };
            status.to_items().unwrap_or_default()
        } else if let Ok(address) = TransactionAddress::from_db_address(&read.db_address) {
            if !self.forecourt.points().contains(&address.fp) {
                return;
            }
            // A transaction no longer held: an answer without items.
            self.forecourt
                .transaction(address.fp, address.seq)
                .and_then(|t| record(t).to_items().ok())
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

/// A held sale as an IFSF transaction record.
fn record(t: &Transaction) -> TransactionRecord {
    TransactionRecord {
        seq: Some(t.seq),
        amount: Some(t.amount),
        volume: Some(t.volume),
        unit_price: Some(t.price),
        logical_nozzle: Some(t.nozzle),
        product: Some(t.product),
        state: Some(t.state),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ifsf_protocol::TransactionState;

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
