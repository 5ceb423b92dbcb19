//! A fuelling point's own database: its state, which nozzles are out, the fill in progress and
//! its transaction counter. The database is addressed by one byte, 0x21..=0x24 (fuelling points
//! 1..=4 of the node); its fields are data items (ids below).
//!
//! A dispenser announces a change of state with an unsolicited FP status message (marker item
//! 100, then `FP_State`, `Log_Noz_State`, ...) and, while fuelling, running transaction messages
//! (marker item 102, then the current nozzle, amount and volume). Ids and layouts were read from a
//! public forecourt controller's source, not from the standard: *unverified* against a device.
//! `Log_Noz_State` is taken as a bit per logical nozzle, set while that nozzle is out of its holster.

use forecourt_events::Decimal;

use crate::message::DataItem;
use crate::number::{decode_number, encode_number, NumberError};

/// The database of fuelling point 1; points 2..=4 follow.
const FIRST_FP_DB: u8 = 0x21;
const LAST_FP_DB: u8 = 0x24;

/// Data item ids of a fuelling point's database.
pub mod ids {
    pub const FP_STATE: u8 = 20;
    pub const LOG_NOZ_STATE: u8 = 21;
    pub const CURRENT_AMOUNT: u8 = 34;
    pub const CURRENT_VOLUME: u8 = 35;
    pub const CURRENT_LOG_NOZ: u8 = 37;
    /// The sequence number of the point's latest transaction.
    pub const TRANSACTION_SEQUENCE_NB: u8 = 41;
    /// Marks an unsolicited FP status message (empty value).
    pub const FP_STATUS_MESSAGE: u8 = 100;
    /// Marks an unsolicited running transaction message (empty value).
    pub const RUNNING_TRANSACTION_MESSAGE: u8 = 102;
}

/// Bytes this crate writes each number in (sign and point byte included); readers accept any.
const AMOUNT_LEN: usize = 5;
const VOLUME_LEN: usize = 5;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FuellingPointError {
    #[error("fuelling point {0}: only 1 to 4 have a database")]
    BadFuellingPoint(u8),
    #[error("data item {id}: {len} bytes, expected {expected}")]
    BadLength { id: u8, len: usize, expected: usize },
    #[error("data item {id}: {source}")]
    BadNumber { id: u8, source: NumberError },
    #[error("transaction sequence number {0:02X?} is not two BCD bytes")]
    BadSequence(Vec<u8>),
}

/// The fuelling point (1..=4) whose database `bytes` address, if they address one.
pub fn fp_of_db_address(bytes: &[u8]) -> Option<u8> {
    match *bytes {
        [db @ FIRST_FP_DB..=LAST_FP_DB] => Some(db - FIRST_FP_DB + 1),
        _ => None,
    }
}

/// The database address of fuelling point `fp` (1..=4).
pub fn fp_db_address(fp: u8) -> Result<[u8; 1], FuellingPointError> {
    if (1..=4).contains(&fp) {
        Ok([FIRST_FP_DB + fp - 1])
    } else {
        Err(FuellingPointError::BadFuellingPoint(fp))
    }
}

/// `FP_State`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FpState {
    Inoperative,
    Closed,
    Idle,
    /// A nozzle is out, waiting to be authorised.
    Calling,
    Authorised,
    Started,
    SuspendedStarted,
    Fuelling,
    SuspendedFuelling,
    /// A state this crate has no name for, kept as sent.
    Other(u8),
}

impl FpState {
    pub fn from_byte(byte: u8) -> Self {
        match byte {
            1 => FpState::Inoperative,
            2 => FpState::Closed,
            3 => FpState::Idle,
            4 => FpState::Calling,
            5 => FpState::Authorised,
            6 => FpState::Started,
            7 => FpState::SuspendedStarted,
            8 => FpState::Fuelling,
            9 => FpState::SuspendedFuelling,
            other => FpState::Other(other),
        }
    }

    pub fn to_byte(self) -> u8 {
        match self {
            FpState::Inoperative => 1,
            FpState::Closed => 2,
            FpState::Idle => 3,
            FpState::Calling => 4,
            FpState::Authorised => 5,
            FpState::Started => 6,
            FpState::SuspendedStarted => 7,
            FpState::Fuelling => 8,
            FpState::SuspendedFuelling => 9,
            FpState::Other(byte) => byte,
        }
    }

    /// Whether a customer is at the point with a nozzle out (from calling to the end of a fill).
    pub fn nozzle_out(self) -> bool {
        matches!(
            self,
            FpState::Calling
                | FpState::Authorised
                | FpState::Started
                | FpState::SuspendedStarted
                | FpState::Fuelling
                | FpState::SuspendedFuelling
        )
    }
}

/// The fields of a fuelling point's database that a message carried (any subset). Items with
/// other ids are passed over.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FpStatus {
    pub state: Option<FpState>,
    /// `Log_Noz_State`: bit 0 = logical nozzle 1 out of its holster.
    pub nozzles_out: Option<u8>,
    pub current_amount: Option<Decimal>,
    pub current_volume: Option<Decimal>,
    pub current_nozzle: Option<u8>,
    /// `Transaction_Sequence_Nb`: the latest transaction's number.
    pub transaction_seq: Option<u16>,
}

impl FpStatus {
    pub fn from_items(items: &[DataItem<'_>]) -> Result<Self, FuellingPointError> {
        let mut status = FpStatus::default();
        for item in items {
            let number = || {
                decode_number(item.value).map_err(|source| FuellingPointError::BadNumber {
                    id: item.id,
                    source,
                })
            };
            let one_byte = || match *item.value {
                [byte] => Ok(byte),
                _ => Err(FuellingPointError::BadLength {
                    id: item.id,
                    len: item.value.len(),
                    expected: 1,
                }),
            };
            match item.id {
                ids::FP_STATE => status.state = Some(FpState::from_byte(one_byte()?)),
                ids::LOG_NOZ_STATE => status.nozzles_out = Some(one_byte()?),
                ids::CURRENT_AMOUNT => status.current_amount = Some(number()?),
                ids::CURRENT_VOLUME => status.current_volume = Some(number()?),
                ids::CURRENT_LOG_NOZ => status.current_nozzle = Some(one_byte()?),
                ids::TRANSACTION_SEQUENCE_NB => {
                    status.transaction_seq = Some(
                        crate::transaction::decode_sequence(item.value)
                            .map_err(|_| FuellingPointError::BadSequence(item.value.to_vec()))?,
                    );
                }
                _ => {}
            }
        }
        Ok(status)
    }

    /// The fields as data items, in the order of the ids: what a dispenser sends, for the
    /// simulator and the tests.
    pub fn to_items(&self) -> Result<Vec<(u8, Vec<u8>)>, FuellingPointError> {
        let number = |id: u8, value: Decimal, len: usize| {
            encode_number(value, len)
                .map(|bytes| (id, bytes))
                .map_err(|source| FuellingPointError::BadNumber { id, source })
        };
        let mut items = Vec::new();
        if let Some(state) = self.state {
            items.push((ids::FP_STATE, vec![state.to_byte()]));
        }
        if let Some(mask) = self.nozzles_out {
            items.push((ids::LOG_NOZ_STATE, vec![mask]));
        }
        if let Some(amount) = self.current_amount {
            items.push(number(ids::CURRENT_AMOUNT, amount, AMOUNT_LEN)?);
        }
        if let Some(volume) = self.current_volume {
            items.push(number(ids::CURRENT_VOLUME, volume, VOLUME_LEN)?);
        }
        if let Some(nozzle) = self.current_nozzle {
            items.push((ids::CURRENT_LOG_NOZ, vec![nozzle]));
        }
        if let Some(seq) = self.transaction_seq {
            let bytes = crate::transaction::encode_sequence(seq)
                .map_err(|_| FuellingPointError::BadSequence(seq.to_be_bytes().to_vec()))?;
            items.push((ids::TRANSACTION_SEQUENCE_NB, bytes.to_vec()));
        }
        Ok(items)
    }

    /// The lowest logical nozzle out of its holster (1-based), if any.
    pub fn first_nozzle_out(&self) -> Option<u8> {
        let mask = self.nozzles_out?;
        (mask != 0).then(|| mask.trailing_zeros() as u8 + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn items(pairs: &[(u8, Vec<u8>)]) -> Vec<DataItem<'_>> {
        pairs
            .iter()
            .map(|(id, value)| DataItem { id: *id, value })
            .collect()
    }

    #[test]
    fn fp_databases_are_0x21_to_0x24() {
        assert_eq!(fp_of_db_address(&[0x21]), Some(1));
        assert_eq!(fp_of_db_address(&[0x24]), Some(4));
        assert_eq!(fp_of_db_address(&[0x25]), None);
        assert_eq!(fp_of_db_address(&[0x21, 0x21]), None);
        assert_eq!(fp_db_address(3), Ok([0x23]));
        assert_eq!(
            fp_db_address(5),
            Err(FuellingPointError::BadFuellingPoint(5))
        );
    }

    #[test]
    fn a_status_message_as_the_public_controller_builds_it() {
        // Marker 100 (empty), FP_State 8 (fuelling), Log_Noz_State nozzle 2 out, and
        // Assign_Contr_Id (22), which is passed over.
        let pairs = [
            (100, vec![]),
            (20, vec![8]),
            (21, vec![0b10]),
            (22, vec![0x02, 0x01]),
        ];
        let status = FpStatus::from_items(&items(&pairs)).unwrap();
        assert_eq!(status.state, Some(FpState::Fuelling));
        assert!(status.state.unwrap().nozzle_out());
        assert_eq!(status.first_nozzle_out(), Some(2));
    }

    #[test]
    fn a_running_transaction_message() {
        let pairs = [
            (102, vec![]),
            (37, vec![1]),
            (34, vec![0x06, 0x00, 0x01, 0x23, 0x45]),
            (35, vec![0x06, 0x00, 0x00, 0x15, 0x43]),
        ];
        let status = FpStatus::from_items(&items(&pairs)).unwrap();
        assert_eq!(status.current_nozzle, Some(1));
        assert_eq!(status.current_amount.unwrap().to_string(), "123.45");
        assert_eq!(status.current_volume.unwrap().to_string(), "15.43");
    }

    #[test]
    fn a_state_with_two_bytes_is_an_error() {
        let pairs = [(20, vec![3, 3])];
        assert_eq!(
            FpStatus::from_items(&items(&pairs)),
            Err(FuellingPointError::BadLength {
                id: 20,
                len: 2,
                expected: 1
            })
        );
    }

    proptest! {
        #[test]
        fn status_round_trips(
            state in proptest::option::of(any::<u8>()),
            mask in proptest::option::of(any::<u8>()),
            amount in proptest::option::of(0i64..=99_999_999),
            volume in proptest::option::of(0i64..=99_999_999),
            nozzle in proptest::option::of(any::<u8>()),
            seq in proptest::option::of(0u16..=9999),
        ) {
            let status = FpStatus {
                state: state.map(FpState::from_byte),
                nozzles_out: mask,
                current_amount: amount.map(|a| Decimal::new(a, 2)),
                current_volume: volume.map(|v| Decimal::new(v, 2)),
                current_nozzle: nozzle,
                transaction_seq: seq,
            };
            let pairs = status.to_items().unwrap();
            let back = FpStatus::from_items(&items(&pairs)).unwrap();
            prop_assert_eq!(back.state, status.state);
            prop_assert_eq!(back.nozzles_out, status.nozzles_out);
            prop_assert_eq!(back.current_nozzle, status.current_nozzle);
            prop_assert_eq!(back.transaction_seq, status.transaction_seq);
            prop_assert!(back.current_amount.zip(status.current_amount).is_none_or(|(a, b)| a.same_value(b)));
            prop_assert!(back.current_volume.zip(status.current_volume).is_none_or(|(a, b)| a.same_value(b)));
            prop_assert_eq!(back.current_amount.is_some(), status.current_amount.is_some());
        }

        #[test]
        fn any_items_decode_without_panic(pairs in proptest::collection::vec((any::<u8>(), proptest::collection::vec(any::<u8>(), 0..8)), 0..8)) {
            let _ = FpStatus::from_items(&items(&pairs));
        }
    }
}
