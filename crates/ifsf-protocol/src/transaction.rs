//! Transaction records: a sale as the dispenser's transaction buffer holds it. A record is
//! addressed `[FP, 0x21, TR_Seq_Nb as two BCD bytes]`, FP databases being 0x21..=0x24 (fuelling
//! points 1..=4 of the node), and its fields are data items (ids below).
//!
//! *Unverified:* whether `TR_Log_Noz` is the nozzle's number or a bit per nozzle, and how
//! `TR_Prod_Nb` is coded; both are kept as the device sent them (the product as BCD) for the
//! source to map through its configuration.

use forecourt_events::Decimal;

use crate::message::DataItem;
use crate::number::{decode_number, encode_number, NumberError};

/// The database of fuelling point 1; points 2..=4 follow.
const FIRST_FP_DB: u8 = 0x21;
const LAST_FP_DB: u8 = 0x24;
/// The transaction buffer inside a fuelling point's database.
const TRANSACTION_BUFFER: u8 = 0x21;

/// Data item ids of a transaction record.
pub mod ids {
    pub const TR_SEQ_NB: u8 = 1;
    pub const TR_AMOUNT: u8 = 5;
    pub const TR_VOLUME: u8 = 6;
    pub const TR_UNIT_PRICE: u8 = 7;
    pub const TR_LOG_NOZ: u8 = 8;
    pub const TR_PROD_NB: u8 = 10;
    pub const TRANS_STATE: u8 = 21;
    /// Marks an unsolicited transaction buffer state message (empty value).
    pub const TR_BUFF_STATES_MESSAGE: u8 = 100;

    /// Every field a sale is read from, for a read request.
    pub const SALE_FIELDS: [u8; 7] = [
        TR_SEQ_NB,
        TR_AMOUNT,
        TR_VOLUME,
        TR_UNIT_PRICE,
        TR_LOG_NOZ,
        TR_PROD_NB,
        TRANS_STATE,
    ];
}

/// Bytes this crate writes each number in (sign and point byte included); readers accept any.
const AMOUNT_LEN: usize = 5;
const VOLUME_LEN: usize = 5;
const PRICE_LEN: usize = 4;
const PRODUCT_LEN: usize = 4;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransactionError {
    #[error("database address {0:02X?} is not a transaction record's")]
    NotATransaction(Vec<u8>),
    #[error("transaction sequence number {0:02X?} is not two BCD bytes")]
    BadSequence(Vec<u8>),
    #[error("data item {id}: {source}")]
    BadNumber { id: u8, source: NumberError },
    #[error("data item {id}: {len} bytes, expected {expected}")]
    BadLength { id: u8, len: usize, expected: usize },
    #[error("product number {0:02X?} is not BCD")]
    BadProduct(Vec<u8>),
    #[error("fuelling point {0}: only 1 to 4 have a database")]
    BadFuellingPoint(u8),
    #[error("sequence number {0}: more than four digits")]
    SequenceTooLarge(u16),
    #[error("product number {0}: more than eight digits")]
    ProductTooLarge(u32),
}

/// Where a transaction record lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransactionAddress {
    /// The node's fuelling point, 1..=4.
    pub fp: u8,
    /// TR_Seq_Nb, 0..=9999.
    pub seq: u16,
}

impl TransactionAddress {
    pub fn from_db_address(bytes: &[u8]) -> Result<Self, TransactionError> {
        match *bytes {
            [fp_db @ FIRST_FP_DB..=LAST_FP_DB, TRANSACTION_BUFFER, hi, lo] => Ok(Self {
                fp: fp_db - FIRST_FP_DB + 1,
                seq: decode_sequence(&[hi, lo])?,
            }),
            _ => Err(TransactionError::NotATransaction(bytes.to_vec())),
        }
    }

    pub fn to_db_address(self) -> Result<[u8; 4], TransactionError> {
        if !(1..=4).contains(&self.fp) {
            return Err(TransactionError::BadFuellingPoint(self.fp));
        }
        let [hi, lo] = encode_sequence(self.seq)?;
        Ok([FIRST_FP_DB + self.fp - 1, TRANSACTION_BUFFER, hi, lo])
    }
}

pub(crate) fn decode_sequence(bytes: &[u8]) -> Result<u16, TransactionError> {
    let bad = || TransactionError::BadSequence(bytes.to_vec());
    if bytes.len() != 2 {
        return Err(bad());
    }
    // Four digits fit a u16.
    crate::bcd::decode(bytes)
        .map(|seq| seq as u16)
        .map_err(|_| bad())
}

pub(crate) fn encode_sequence(seq: u16) -> Result<[u8; 2], TransactionError> {
    match crate::bcd::encode(u64::from(seq), 2).as_deref() {
        Some(&[hi, lo]) => Ok([hi, lo]),
        _ => Err(TransactionError::SequenceTooLarge(seq)),
    }
}

/// A transaction's state in the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionState {
    Cleared,
    /// Complete and not yet paid: the moment a sale exists.
    Payable,
    /// Taken by a controlling device to settle it.
    Locked,
    /// A state this crate has no name for, kept as sent.
    Other(u8),
}

impl TransactionState {
    pub fn from_byte(byte: u8) -> Self {
        match byte {
            1 => TransactionState::Cleared,
            2 => TransactionState::Payable,
            3 => TransactionState::Locked,
            other => TransactionState::Other(other),
        }
    }

    pub fn to_byte(self) -> u8 {
        match self {
            TransactionState::Cleared => 1,
            TransactionState::Payable => 2,
            TransactionState::Locked => 3,
            TransactionState::Other(byte) => byte,
        }
    }
}

/// The fields of a transaction record that a message carried; a message may carry any subset
/// (a state change carries the state alone). Items with other ids are passed over.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransactionRecord {
    pub seq: Option<u16>,
    pub amount: Option<Decimal>,
    pub volume: Option<Decimal>,
    pub unit_price: Option<Decimal>,
    /// TR_Log_Noz as sent (see the module notes).
    pub logical_nozzle: Option<u8>,
    /// TR_Prod_Nb, read as BCD (see the module notes).
    pub product: Option<u32>,
    pub state: Option<TransactionState>,
}

impl TransactionRecord {
    pub fn from_items(items: &[DataItem<'_>]) -> Result<Self, TransactionError> {
        let mut record = TransactionRecord::default();
        for item in items {
            let number = || {
                decode_number(item.value).map_err(|source| TransactionError::BadNumber {
                    id: item.id,
                    source,
                })
            };
            let one_byte = || match *item.value {
                [byte] => Ok(byte),
                _ => Err(TransactionError::BadLength {
                    id: item.id,
                    len: item.value.len(),
                    expected: 1,
                }),
            };
            match item.id {
                ids::TR_SEQ_NB => record.seq = Some(decode_sequence(item.value)?),
                ids::TR_AMOUNT => record.amount = Some(number()?),
                ids::TR_VOLUME => record.volume = Some(number()?),
                ids::TR_UNIT_PRICE => record.unit_price = Some(number()?),
                ids::TR_LOG_NOZ => record.logical_nozzle = Some(one_byte()?),
                ids::TR_PROD_NB => record.product = Some(decode_product(item.value)?),
                ids::TRANS_STATE => {
                    record.state = Some(TransactionState::from_byte(one_byte()?));
                }
                _ => {}
            }
        }
        Ok(record)
    }

    /// The record's fields as data items (ids ascending): what a dispenser sends, for the
    /// simulator and the tests.
    pub fn to_items(&self) -> Result<Vec<(u8, Vec<u8>)>, TransactionError> {
        let number = |id: u8, value: Decimal, len: usize| {
            encode_number(value, len)
                .map(|bytes| (id, bytes))
                .map_err(|source| TransactionError::BadNumber { id, source })
        };
        let mut items = Vec::new();
        if let Some(seq) = self.seq {
            items.push((ids::TR_SEQ_NB, encode_sequence(seq)?.to_vec()));
        }
        if let Some(amount) = self.amount {
            items.push(number(ids::TR_AMOUNT, amount, AMOUNT_LEN)?);
        }
        if let Some(volume) = self.volume {
            items.push(number(ids::TR_VOLUME, volume, VOLUME_LEN)?);
        }
        if let Some(price) = self.unit_price {
            items.push(number(ids::TR_UNIT_PRICE, price, PRICE_LEN)?);
        }
        if let Some(nozzle) = self.logical_nozzle {
            items.push((ids::TR_LOG_NOZ, vec![nozzle]));
        }
        if let Some(product) = self.product {
            items.push((ids::TR_PROD_NB, encode_product(product)?));
        }
        if let Some(state) = self.state {
            items.push((ids::TRANS_STATE, vec![state.to_byte()]));
        }
        Ok(items)
    }
}

fn decode_product(bytes: &[u8]) -> Result<u32, TransactionError> {
    let bad = || TransactionError::BadProduct(bytes.to_vec());
    if bytes.len() > PRODUCT_LEN {
        return Err(bad());
    }
    // Eight digits fit a u32.
    crate::bcd::decode(bytes)
        .map(|product| product as u32)
        .map_err(|_| bad())
}

fn encode_product(product: u32) -> Result<Vec<u8>, TransactionError> {
    crate::bcd::encode(u64::from(product), PRODUCT_LEN)
        .ok_or(TransactionError::ProductTooLarge(product))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_of_fp_two_transaction_1234() {
        let address = TransactionAddress { fp: 2, seq: 1234 };
        assert_eq!(address.to_db_address(), Ok([0x22, 0x21, 0x12, 0x34]));
        assert_eq!(
            TransactionAddress::from_db_address(&[0x22, 0x21, 0x12, 0x34]),
            Ok(address)
        );
    }

    #[test]
    fn other_databases_are_not_transactions() {
        for bytes in [
            &[0x25, 0x21, 0x00, 0x01][..],
            &[0x21, 0x22, 0x00, 0x01],
            &[0x21, 0x21, 0x00],
            &[0x21],
        ] {
            assert_eq!(
                TransactionAddress::from_db_address(bytes),
                Err(TransactionError::NotATransaction(bytes.to_vec()))
            );
        }
        assert_eq!(
            TransactionAddress::from_db_address(&[0x21, 0x21, 0x0A, 0x00]),
            Err(TransactionError::BadSequence(vec![0x0A, 0x00]))
        );
        assert_eq!(
            TransactionAddress { fp: 5, seq: 1 }.to_db_address(),
            Err(TransactionError::BadFuellingPoint(5))
        );
    }

    #[test]
    fn a_payable_sale_reads_from_its_items() {
        let items = [
            DataItem {
                id: ids::TR_SEQ_NB,
                value: &[0x03, 0x58],
            },
            DataItem {
                id: ids::TR_AMOUNT,
                value: &[0x06, 0x00, 0x02, 0x76, 0x40],
            },
            DataItem {
                id: ids::TR_VOLUME,
                value: &[0x06, 0x00, 0x00, 0x35, 0x21],
            },
            DataItem {
                id: ids::TR_UNIT_PRICE,
                value: &[0x04, 0x00, 0x07, 0x85],
            },
            DataItem {
                id: ids::TR_LOG_NOZ,
                value: &[2],
            },
            DataItem {
                id: ids::TR_PROD_NB,
                value: &[0x00, 0x00, 0x00, 0x92],
            },
            DataItem {
                id: ids::TRANS_STATE,
                value: &[2],
            },
            DataItem {
                id: 99,
                value: &[1, 2, 3],
            },
        ];
        let record = TransactionRecord::from_items(&items).unwrap();
        assert_eq!(
            record,
            TransactionRecord {
                seq: Some(358),
                amount: Some(Decimal::new(27_640, 2)),
                volume: Some(Decimal::new(3_521, 2)),
                unit_price: Some(Decimal::new(785, 2)),
                logical_nozzle: Some(2),
                product: Some(92),
                state: Some(TransactionState::Payable),
            }
        );
        let encoded = record.to_items().unwrap();
        let again: Vec<DataItem<'_>> = encoded
            .iter()
            .map(|(id, value)| DataItem { id: *id, value })
            .collect();
        assert_eq!(TransactionRecord::from_items(&again), Ok(record));
    }

    #[test]
    fn numbers_too_long_for_their_field_are_refused_on_writing() {
        let seq = TransactionRecord {
            seq: Some(10_000),
            ..TransactionRecord::default()
        };
        assert_eq!(
            seq.to_items(),
            Err(TransactionError::SequenceTooLarge(10_000))
        );
        let product = TransactionRecord {
            product: Some(100_000_000),
            ..TransactionRecord::default()
        };
        assert_eq!(
            product.to_items(),
            Err(TransactionError::ProductTooLarge(100_000_000))
        );
    }

    #[test]
    fn a_bad_field_names_its_item() {
        let bad_amount = [DataItem {
            id: ids::TR_AMOUNT,
            value: &[0x02, 0xAB],
        }];
        assert_eq!(
            TransactionRecord::from_items(&bad_amount),
            Err(TransactionError::BadNumber {
                id: ids::TR_AMOUNT,
                source: NumberError::BadDigit(0xAB)
            })
        );
        let long_state = [DataItem {
            id: ids::TRANS_STATE,
            value: &[2, 2],
        }];
        assert_eq!(
            TransactionRecord::from_items(&long_state),
            Err(TransactionError::BadLength {
                id: ids::TRANS_STATE,
                len: 2,
                expected: 1
            })
        );
    }
}
