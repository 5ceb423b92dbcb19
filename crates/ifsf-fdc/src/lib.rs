//! The IFSF POS-FDC interface ("FDC POS Standard Interface", IFSF Part 3-27) as a watch-only
//! client needs it: the binary header in front of each XML message, the service requests such a
//! client may send (log on, ask for the sales the controller holds), its heartbeat, and the
//! controller's sale and fuelling-point notifications read into types. Pure logic: no sockets,
//! no clocks (times come in as text the caller formats).
//!
//! A watch-only client never locks, unlocks or clears a sale: those requests cannot be built
//! with this crate (see [`RequestKind`]).
//!
//! The facts come from `../shared/specs/ifsf.md`; where that file marks something unverified,
//! the module that relies on it says so.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod frame;
pub mod inbound;
pub mod request;

pub use frame::{encode as encode_frame, FrameDecoder, FrameError, HeaderVariant, MAX_XML_BYTES};
pub use inbound::{
    read as read_inbound, FpStateChange, FuelSaleTrx, Inbound, InboundError, ServiceResponse,
    TrxState, FP_STATE_CHANGE, FUEL_SALE_TRX,
};
pub use request::{pos_ready, service_request, Client, RequestError, RequestKind};
