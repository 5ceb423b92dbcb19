//! Line level (level 2): frames, control bytes, byte stuffing and encoding.

use crate::crc::crc16_arc;

/// Stop flag: ends every frame.
pub const SF: u8 = 0xFA;
/// Inserted before any 0xFA inside DATA or CRC bytes.
pub const DLE: u8 = 0x10;
/// Precedes SF in DATA frames.
pub const ETX: u8 = 0x03;

const KIND_POLL: u8 = 0x2;
const KIND_DATA: u8 = 0x3;
const KIND_NAK: u8 = 0x5;
const KIND_EOT: u8 = 0x7;
const KIND_ACK: u8 = 0xC;
const KIND_ACKPOLL: u8 = 0xE;

/// Device addresses on a DART bus: 0x50..=0x6F (32 fuelling points).
pub const fn is_valid_address(addr: u8) -> bool {
    addr >= 0x50 && addr <= 0x6F
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub addr: u8,
    pub kind: FrameKind,
}

/// `tx` is the 4-bit block sequence number (TX#) in the low nibble of the control byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameKind {
    Poll,
    Data { tx: u8, payload: Vec<u8> },
    Ack { tx: u8 },
    Nak { tx: u8 },
    Eot { tx: u8 },
    AckPoll { tx: u8 },
}

impl Frame {
    pub fn new(addr: u8, kind: FrameKind) -> Self {
        Frame { addr, kind }
    }

    pub fn control_byte(&self) -> u8 {
        let (kind, tx) = match &self.kind {
            FrameKind::Poll => (KIND_POLL, 0),
            FrameKind::Data { tx, .. } => (KIND_DATA, *tx),
            FrameKind::Ack { tx } => (KIND_ACK, *tx),
            FrameKind::Nak { tx } => (KIND_NAK, *tx),
            FrameKind::Eot { tx } => (KIND_EOT, *tx),
            FrameKind::AckPoll { tx } => (KIND_ACKPOLL, *tx),
        };
        (kind << 4) | (tx & 0x0F)
    }
}

/// Builds a control frame (no data) from its control byte, or None for DATA / unknown kinds.
pub(crate) fn control_kind(ctrl: u8) -> Option<FrameKind> {
    let tx = ctrl & 0x0F;
    match ctrl >> 4 {
        KIND_POLL => Some(FrameKind::Poll),
        KIND_ACK => Some(FrameKind::Ack { tx }),
        KIND_NAK => Some(FrameKind::Nak { tx }),
        KIND_EOT => Some(FrameKind::Eot { tx }),
        KIND_ACKPOLL => Some(FrameKind::AckPoll { tx }),
        _ => None,
    }
}

pub(crate) fn is_data_control(ctrl: u8) -> bool {
    ctrl >> 4 == KIND_DATA
}

/// Encodes a frame to wire bytes, stuffing and CRC included.
pub fn encode(frame: &Frame) -> Vec<u8> {
    let ctrl = frame.control_byte();
    match &frame.kind {
        FrameKind::Data { payload, .. } => {
            let mut body = Vec::with_capacity(payload.len() + 4);
            body.push(frame.addr);
            body.push(ctrl);
            body.extend_from_slice(payload);
            let crc = crc16_arc(&body);
            let mut out = Vec::with_capacity(body.len() + 8);
            out.push(frame.addr);
            out.push(ctrl);
            // Stuffing covers data and CRC only; the DLEs are not part of the CRC.
            for &b in payload.iter().chain(&crc.to_le_bytes()) {
                if b == SF {
                    out.push(DLE);
                }
                out.push(b);
            }
            out.push(ETX);
            out.push(SF);
            out
        }
        _ => vec![frame.addr, ctrl, SF],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worked_cd1_return_status() {
        let f = Frame::new(
            0x50,
            FrameKind::Data {
                tx: 0,
                payload: vec![0x01, 0x01, 0x00],
            },
        );
        assert_eq!(
            encode(&f),
            vec![0x50, 0x30, 0x01, 0x01, 0x00, 0x9F, 0x5C, 0x03, 0xFA]
        );
    }

    #[test]
    fn worked_control_frames() {
        assert_eq!(
            encode(&Frame::new(0x50, FrameKind::Poll)),
            [0x50, 0x20, 0xFA]
        );
        assert_eq!(
            encode(&Frame::new(0x50, FrameKind::Eot { tx: 0 })),
            [0x50, 0x70, 0xFA]
        );
        assert_eq!(
            encode(&Frame::new(0x50, FrameKind::Ack { tx: 0 })),
            [0x50, 0xC0, 0xFA]
        );
        assert_eq!(
            encode(&Frame::new(0x51, FrameKind::Nak { tx: 3 })),
            [0x51, 0x53, 0xFA]
        );
        assert_eq!(
            encode(&Frame::new(0x6F, FrameKind::AckPoll { tx: 0xF })),
            [0x6F, 0xEF, 0xFA]
        );
    }

    #[test]
    fn stuffs_fa_in_data() {
        let f = Frame::new(
            0x50,
            FrameKind::Data {
                tx: 1,
                payload: vec![0xFA, 0x10],
            },
        );
        let wire = encode(&f);
        let crc = crc16_arc(&[0x50, 0x31, 0xFA, 0x10]).to_le_bytes();
        let mut expected = vec![0x50, 0x31, 0x10, 0xFA, 0x10];
        for b in crc {
            if b == 0xFA {
                expected.push(0x10);
            }
            expected.push(b);
        }
        expected.extend([0x03, 0xFA]);
        assert_eq!(wire, expected);
    }
}
