//! The heartbeat every node broadcasts over UDP: who it is and where to reach it. A node that
//! misses several is taken as gone.
//!
//! ```text
//! IP(4) TCP port(2, big-endian) LNA(2) IFSF_MC(1) = 1 status(1)
//! ```

use std::net::Ipv4Addr;

use crate::address::NodeAddress;
use crate::message::MessageCode;

pub const HEARTBEAT_LEN: usize = 10;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeartbeatError {
    #[error("heartbeat of {0} bytes, not {HEARTBEAT_LEN}")]
    Length(usize),
    #[error("message code {0} in a heartbeat, not 1")]
    NotAHeartbeat(u8),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    pub ip: Ipv4Addr,
    pub port: u16,
    pub address: NodeAddress,
    pub status: u8,
}

impl Heartbeat {
    pub fn decode(bytes: &[u8]) -> Result<Heartbeat, HeartbeatError> {
        let bytes: &[u8; HEARTBEAT_LEN] = bytes
            .try_into()
            .map_err(|_| HeartbeatError::Length(bytes.len()))?;
        if bytes[8] != MessageCode::Heartbeat.to_byte() {
            return Err(HeartbeatError::NotAHeartbeat(bytes[8]));
        }
        Ok(Heartbeat {
            ip: Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]),
            port: u16::from_be_bytes([bytes[4], bytes[5]]),
            address: NodeAddress::from_bytes([bytes[6], bytes[7]]),
            status: bytes[9],
        })
    }

    pub fn encode(&self) -> [u8; HEARTBEAT_LEN] {
        let [a, b, c, d] = self.ip.octets();
        let [port_hi, port_lo] = self.port.to_be_bytes();
        let [subnet, node] = self.address.to_bytes();
        [
            a,
            b,
            c,
            d,
            port_hi,
            port_lo,
            subnet,
            node,
            MessageCode::Heartbeat.to_byte(),
            self.status,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dispenser_board_heartbeat_round_trips() {
        let bytes = [192, 168, 1, 31, 0x0D, 0x9D, 1, 3, 1, 0];
        let beat = Heartbeat::decode(&bytes).unwrap();
        assert_eq!(beat.ip, Ipv4Addr::new(192, 168, 1, 31));
        assert_eq!(beat.port, 3485);
        assert_eq!(beat.address, NodeAddress::new(1, 3));
        assert_eq!(beat.encode(), bytes);
    }

    #[test]
    fn anything_else_is_refused() {
        assert_eq!(Heartbeat::decode(&[0; 9]), Err(HeartbeatError::Length(9)));
        assert_eq!(
            Heartbeat::decode(&[0; 10]),
            Err(HeartbeatError::NotAHeartbeat(0))
        );
    }
}
