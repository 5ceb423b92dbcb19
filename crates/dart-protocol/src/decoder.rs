//! Incremental frame decoder: bytes in any chunking, frames out. Garbage and bad-CRC frames are
//! skipped and counted; the buffer is bounded so a noisy line cannot grow memory.

use std::collections::VecDeque;

use crate::crc::crc16_arc;
use crate::line::{
    control_kind, is_data_control, is_valid_address, Frame, FrameKind, DLE, ETX, SF,
};

/// Longest raw (stuffed) frame we keep waiting for. DART blocks are far shorter; anything longer
/// without a stop flag is noise.
pub const MAX_RAW_FRAME: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A DATA frame whose CRC does not match. A slave stays silent on these; a master retries.
    #[error("bad CRC in DATA frame from 0x{addr:02X}")]
    BadCrc { addr: u8 },
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecoderStats {
    pub frames_ok: u64,
    pub crc_errors: u64,
    /// Bytes that belonged to no valid frame (noise, truncated frames, overflow).
    pub garbage_bytes: u64,
}

#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: VecDeque<u8>,
    /// Bytes of `buf` already scanned for a stop flag (so each byte is scanned once).
    scanned: usize,
    stats: DecoderStats,
}

impl FrameDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn stats(&self) -> DecoderStats {
        self.stats
    }

    /// Drops any partial frame (e.g. after a line fault); the dropped bytes count as garbage.
    pub fn clear(&mut self) {
        self.stats.garbage_bytes += self.buf.len() as u64;
        self.buf.clear();
        self.scanned = 0;
    }

    /// Bytes held that do not form a complete frame yet.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend(bytes);
    }

    /// Next decoded frame, an error for a frame with a bad CRC, or None when more bytes are needed.
    pub fn next_frame(&mut self) -> Option<Result<Frame, DecodeError>> {
        loop {
            let end = self.find_stop_flag()?;
            let raw: Vec<u8> = self.buf.drain(..=end).collect();
            self.scanned = 0;
            match self.parse_chunk(&raw) {
                Some(result) => return Some(result),
                None => continue,
            }
        }
    }

    /// Index of the first unstuffed SF in the buffer. Trims the buffer if it grows past the bound.
    fn find_stop_flag(&mut self) -> Option<usize> {
        while self.scanned < self.buf.len() {
            let i = self.scanned;
            self.scanned += 1;
            // An SF preceded by DLE is stuffed data. A real stop flag is never preceded by DLE:
            // it follows ETX (DATA) or a control byte (kind 1 is not defined).
            if self.buf[i] == SF && (i == 0 || self.buf[i - 1] != DLE) {
                return Some(i);
            }
        }
        if self.buf.len() > MAX_RAW_FRAME {
            let excess = self.buf.len() - MAX_RAW_FRAME;
            self.buf.drain(..excess);
            self.scanned -= excess;
            self.stats.garbage_bytes += excess as u64;
        }
        None
    }

    /// Interprets the bytes up to and including a stop flag. Finds the first offset where a valid
    /// frame starts (skipping leading noise or a truncated earlier frame) and counts the rest.
    fn parse_chunk(&mut self, raw: &[u8]) -> Option<Result<Frame, DecodeError>> {
        let mut bad_crc_at: Option<usize> = None;
        for start in 0..raw.len().saturating_sub(2) {
            let (addr, ctrl) = (raw[start], raw[start + 1]);
            if !is_valid_address(addr) {
                continue;
            }
            let frame = if is_data_control(ctrl) {
                match decode_data(&raw[start..]) {
                    DataParse::Ok(payload) => Frame::new(
                        addr,
                        FrameKind::Data {
                            tx: ctrl & 0x0F,
                            payload,
                        },
                    ),
                    DataParse::BadCrc => {
                        bad_crc_at.get_or_insert(start);
                        continue;
                    }
                    DataParse::NotData => continue,
                }
            } else {
                match control_kind(ctrl) {
                    Some(kind) if start + 3 == raw.len() => Frame::new(addr, kind),
                    _ => continue,
                }
            };
            self.stats.garbage_bytes += start as u64;
            self.stats.frames_ok += 1;
            return Some(Ok(frame));
        }
        if let Some(start) = bad_crc_at {
            self.stats.garbage_bytes += start as u64;
            self.stats.crc_errors += 1;
            return Some(Err(DecodeError::BadCrc { addr: raw[start] }));
        }
        self.stats.garbage_bytes += raw.len() as u64;
        None
    }
}

enum DataParse {
    Ok(Vec<u8>),
    BadCrc,
    NotData,
}

/// `raw` = ADR CTRL stuffed(DATA CRC-L CRC-H) ETX SF.
fn decode_data(raw: &[u8]) -> DataParse {
    let n = raw.len();
    if n < 6 || raw[n - 2] != ETX || raw[n - 1] != SF {
        return DataParse::NotData;
    }
    let mut body = Vec::with_capacity(n);
    body.extend_from_slice(&raw[..2]);
    let stuffed = &raw[2..n - 2];
    let mut i = 0;
    while i < stuffed.len() {
        if stuffed[i] == DLE && stuffed.get(i + 1) == Some(&SF) {
            i += 1;
        }
        body.push(stuffed[i]);
        i += 1;
    }
    if body.len() < 4 {
        return DataParse::NotData;
    }
    let (covered, crc) = body.split_at(body.len() - 2);
    if crc16_arc(covered) != u16::from_le_bytes([crc[0], crc[1]]) {
        return DataParse::BadCrc;
    }
    DataParse::Ok(covered[2..].to_vec())
}

impl Iterator for FrameDecoder {
    type Item = Result<Frame, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_frame()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::line::encode;

    const WORKED_DC: [u8; 25] = [
        0x53, 0x30, 0x02, 0x08, 0x00, 0x00, 0x12, 0x11, 0x00, 0x00, 0x01, 0x86, 0x03, 0x04, 0x00,
        0x15, 0x39, 0x00, 0x01, 0x01, 0x05, 0xAA, 0xCF, 0x03, 0xFA,
    ];

    fn decode_all(chunks: &[&[u8]]) -> (Vec<Result<Frame, DecodeError>>, DecoderStats) {
        let mut d = FrameDecoder::new();
        let mut out = Vec::new();
        for c in chunks {
            d.push(c);
            out.extend(d.by_ref());
        }
        (out, d.stats())
    }

    fn data(addr: u8, tx: u8, payload: &[u8]) -> Frame {
        Frame::new(
            addr,
            FrameKind::Data {
                tx,
                payload: payload.to_vec(),
            },
        )
    }

    /// A payload whose CRC contains 0xFA, found by search so the stuffing of CRC bytes is tested.
    fn payload_with_fa_in_crc() -> Vec<u8> {
        (0u16..=0xFFFF)
            .map(|v| vec![0x01, 0x01, (v >> 8) as u8, v as u8])
            .find(|p| {
                let mut body = vec![0x50, 0x30];
                body.extend(p);
                crc16_arc(&body).to_le_bytes().contains(&SF)
            })
            .expect("some payload has 0xFA in its CRC")
    }

    #[test]
    fn worked_dc_frame_decodes() {
        let (frames, stats) = decode_all(&[&WORKED_DC]);
        let expected = data(0x53, 0, &WORKED_DC[2..21]);
        assert_eq!(frames, vec![Ok(expected.clone())]);
        assert_eq!(stats.frames_ok, 1);
        assert_eq!(encode(&expected), WORKED_DC.to_vec());
    }

    #[test]
    fn every_split_point() {
        let frames = vec![
            Frame::new(0x50, FrameKind::Poll),
            data(0x50, 0, &[0x01, 0x01, 0x00]),
            data(0x51, 2, &[0xFA, 0x10, 0xFA, 0x10, 0x10]),
            data(0x50, 5, &payload_with_fa_in_crc()),
            Frame::new(0x50, FrameKind::Eot { tx: 0 }),
            Frame::new(0x53, FrameKind::AckPoll { tx: 7 }),
        ];
        let mut stream: Vec<u8> = frames.iter().flat_map(encode).collect();
        stream.extend_from_slice(&WORKED_DC);
        let mut expected: Vec<_> = frames.into_iter().map(Ok).collect();
        expected.push(Ok(data(0x53, 0, &WORKED_DC[2..21])));
        for a in 0..=stream.len() {
            for b in a..=stream.len() {
                let (got, stats) = decode_all(&[&stream[..a], &stream[a..b], &stream[b..]]);
                assert_eq!(got, expected, "split at {a},{b}");
                assert_eq!(stats.garbage_bytes, 0);
                assert_eq!(stats.crc_errors, 0);
            }
        }
    }

    #[test]
    fn crc_with_fa_is_stuffed() {
        let f = data(0x50, 0, &payload_with_fa_in_crc());
        let wire = encode(&f);
        // One DLE per 0xFA in the CRC; nothing else needs stuffing in this payload.
        assert_eq!(wire.len(), 2 + 4 + 2 + 1 + 2);
        let (got, _) = decode_all(&[&wire]);
        assert_eq!(got, vec![Ok(f)]);
    }

    #[test]
    fn garbage_is_skipped_and_counted() {
        let poll = encode(&Frame::new(0x50, FrameKind::Poll));
        let dc = encode(&data(0x50, 1, &[0x01, 0x01, 0x01]));
        let mut stream = vec![0x00, 0xFF, 0x13];
        stream.extend(&poll);
        stream.extend([0xFA, 0xFA]); // stray stop flags
        stream.extend([0x50, 0x30, 0x99]); // truncated DATA frame, runs into the next one
        stream.extend(&dc);
        let (got, stats) = decode_all(&[&stream]);
        assert_eq!(
            got,
            vec![
                Ok(Frame::new(0x50, FrameKind::Poll)),
                Ok(data(0x50, 1, &[0x01, 0x01, 0x01]))
            ]
        );
        assert_eq!(stats.garbage_bytes, 3 + 2 + 3);
        assert_eq!(stats.frames_ok, 2);
    }

    #[test]
    fn bad_crc_is_reported_and_counted() {
        let mut bad = encode(&data(0x50, 1, &[0x01, 0x01, 0x05]));
        bad[4] ^= 0x01;
        let good = encode(&Frame::new(0x50, FrameKind::Ack { tx: 1 }));
        let (got, stats) = decode_all(&[&bad, &good]);
        assert_eq!(
            got,
            vec![
                Err(DecodeError::BadCrc { addr: 0x50 }),
                Ok(Frame::new(0x50, FrameKind::Ack { tx: 1 }))
            ]
        );
        assert_eq!(stats.crc_errors, 1);
        assert_eq!(stats.frames_ok, 1);
    }

    #[test]
    fn buffer_is_bounded() {
        let mut d = FrameDecoder::new();
        for _ in 0..100 {
            d.push(&[0x55; 1000]);
            assert!(d.next_frame().is_none());
        }
        assert!(d.buf.len() <= MAX_RAW_FRAME);
        d.push(&encode(&Frame::new(0x50, FrameKind::Poll)));
        assert_eq!(d.next_frame(), Some(Ok(Frame::new(0x50, FrameKind::Poll))));
        assert_eq!(d.stats().garbage_bytes, 100_000);
    }

    #[test]
    fn random_noise_never_panics() {
        let mut d = FrameDecoder::new();
        let mut x: u32 = 0x1234_5678;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            d.push(&x.to_le_bytes());
            for _ in d.by_ref() {}
        }
    }
}
