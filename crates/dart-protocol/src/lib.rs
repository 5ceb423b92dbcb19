//! Wayne DART (Europump "S4") dispenser protocol: wire codec, application transactions, TX#
//! bookkeeping and a fuelling-point state machine. Pure logic: no I/O, no clocks (callers pass
//! `now`), so both the master (dispenser crate) and the simulator (pump-sim) share it.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod bcd;
pub mod crc;
pub mod decode_tool;
pub mod decoder;
pub mod fuelling_point;
pub mod line;
pub mod totals;
pub mod transaction;
pub mod txnum;

pub use bcd::{bcd_decode, bcd_encode, BcdError};
pub use crc::crc16_arc;
pub use decoder::{DecodeError, DecoderStats, FrameDecoder};
pub use fuelling_point::{
    amount_for, Decimals, FuellingPoint, FuellingPointConfig, NOZZLE_DEBOUNCE_MS,
    TOTALS_INTERVAL_MS, TOTALS_MAX_TRIES,
};
pub use line::{encode, is_valid_address, Frame, FrameKind};
pub use totals::{TotalsTracker, TotalsVerdict};
pub use transaction::{
    encode_master_transactions, encode_pump_transactions, parse_master_transactions,
    parse_pump_transactions, Command, MasterTransaction, PumpStatus, PumpTransaction,
    TransactionError,
};
pub use txnum::{next_tx, RxVerdict, TxReceiver, TxSender};
