//! Incremental message decoder: bytes of a TCP stream (or of a captured copy) in any chunking,
//! messages out. A message that is not understood is reported and skipped whole (its header says
//! how long it is), so one odd message does not lose the ones after it. The stream must be read
//! from its start: with no checksum and no start flag, a reader that joins mid-message cannot
//! tell where the next one begins (a capture is decoded from the connection's first byte). What
//! is held is bounded by one largest message (8 + 65,535 bytes).

use crate::message::{Message, MessageError};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecoderStats {
    pub messages: u64,
    pub errors: u64,
    /// Bytes of messages that were not understood.
    pub skipped_bytes: u64,
}

#[derive(Debug, Default)]
pub struct MessageDecoder {
    buf: Vec<u8>,
    /// Where the undecoded bytes start in `buf` (consumed bytes are dropped in batches).
    start: usize,
    stats: DecoderStats,
}

impl MessageDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn stats(&self) -> DecoderStats {
        self.stats
    }

    /// Bytes held that do not form a whole message yet.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start * 2 >= self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next message, an error for a message that is not understood (it is skipped), or
    /// `None` when more bytes are needed.
    pub fn next_message(&mut self) -> Option<Result<Message, MessageError>> {
        let (result, used) = Message::decode(&self.buf[self.start..])?;
        self.start += used;
        match result {
            Ok(_) => self.stats.messages += 1,
            Err(_) => {
                self.stats.errors += 1;
                self.stats.skipped_bytes += used as u64;
            }
        }
        Some(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{DataItem, MessageKind};
    use crate::NodeAddress;

    fn message(token: u8) -> Message {
        Message::with_items(
            NodeAddress::new(2, 9),
            NodeAddress::new(1, 1),
            MessageKind::UnsolicitedNoAck,
            token,
            &[0x21],
            &[DataItem {
                id: 2,
                value: &[token],
            }],
        )
        .unwrap()
    }

    #[test]
    fn messages_come_out_whatever_the_chunking() {
        let mut stream = Vec::new();
        for token in 0..5 {
            stream.extend(message(token).encode().unwrap());
        }
        for chunk in [1, 2, 3, 7, stream.len()] {
            let mut decoder = MessageDecoder::new();
            let mut got = Vec::new();
            for piece in stream.chunks(chunk) {
                decoder.push(piece);
                while let Some(m) = decoder.next_message() {
                    got.push(m.unwrap().token);
                }
            }
            assert_eq!(got, [0, 1, 2, 3, 4], "chunks of {chunk}");
            assert_eq!(decoder.buffered(), 0);
            assert_eq!(decoder.stats().messages, 5);
        }
    }

    #[test]
    fn a_message_not_understood_is_skipped_whole_and_the_next_one_read() {
        let mut odd = message(1).encode().unwrap();
        odd[4] = 7; // an IFSF_MC this crate does not know
        let mut stream = odd.clone();
        stream.extend(message(2).encode().unwrap());
        let mut decoder = MessageDecoder::new();
        decoder.push(&stream);
        assert_eq!(
            decoder.next_message(),
            Some(Err(MessageError::UnknownCode(7)))
        );
        assert_eq!(
            decoder.next_message().map(|m| m.map(|m| m.token)),
            Some(Ok(2))
        );
        assert_eq!(decoder.next_message(), None);
        assert_eq!(
            decoder.stats(),
            DecoderStats {
                messages: 1,
                errors: 1,
                skipped_bytes: odd.len() as u64
            }
        );
    }
}
