//! IFSF over TCP/IP (the binary dispenser protocol of IFSF Parts 2-02 and 3-01, spoken by
//! PetroChina's "DIT" dispenser boards and by forecourt controllers that translate native pump
//! protocols into it): application messages and their data items, the UDP heartbeat, signed
//! BCD numbers, the transaction records a sale is read from, a fuelling point's state, and the
//! field decoder (hex lines or a pcap capture to JSON lines). Pure logic: no sockets, no clocks.
//! A watch-only source builds on it; see [`Message::is_watch_only`] for what such a source may
//! ever send.
//!
//! The facts come from `../shared/specs/ifsf.md`. Where that file marks a fact unverified, the
//! module that relies on it says so.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod address;
mod bcd;
pub mod capture;
pub mod decode_tool;
pub mod decoder;
pub mod fuelling_point;
pub mod heartbeat;
pub mod message;
pub mod number;
pub mod transaction;

pub use address::NodeAddress;
pub use decoder::{DecoderStats, MessageDecoder};
pub use fuelling_point::{FpState, FpStatus, FuellingPointError};
pub use heartbeat::{Heartbeat, HeartbeatError, HEARTBEAT_LEN};
pub use message::{DataItem, Message, MessageCode, MessageError, MessageKind, HEADER_LEN};
pub use number::{decode_number, encode_number, NumberError};
pub use transaction::{TransactionAddress, TransactionError, TransactionRecord, TransactionState};
