//! Application messages over TCP: an 8-byte header (recipient, originator, message code, message
//! status, length), then the database address the message is about and its data.
//!
//! ```text
//! LNAR(2) LNAO(2) IFSF_MC(1) M_St(1) M_Lg(2, big-endian) | DB_Ad_Lg(1) DB_Ad(n) data...
//! ```
//! `M_Lg` counts what follows the header. In answers, writes and unsolicited messages the data is
//! a run of data items: `Data_Id(1) Data_Lg(1) value(Data_Lg)`.
//!
//! A message that is not understood (an unknown code or type) still says how long it is, so a
//! reader skips it whole and stays in step with the stream.
//!
//! *Unverified* against a device: the layout of a read request's data (a public controller's
//! source parses it as a list of wanted data ids, one byte each; [`Message::read`] builds that)
//! and of an acknowledge's data (taken as raw bytes; the acknowledge this module builds carries
//! one status byte, 0).

use crate::address::NodeAddress;

/// LNAR, LNAO, IFSF_MC, M_St and M_Lg.
pub const HEADER_LEN: usize = 8;

/// IFSF_MC: what kind of traffic the message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageCode {
    Application,
    Heartbeat,
}

impl MessageCode {
    pub fn from_byte(byte: u8) -> Result<Self, MessageError> {
        match byte {
            0 => Ok(MessageCode::Application),
            1 => Ok(MessageCode::Heartbeat),
            other => Err(MessageError::UnknownCode(other)),
        }
    }

    pub fn to_byte(self) -> u8 {
        match self {
            MessageCode::Application => 0,
            MessageCode::Heartbeat => 1,
        }
    }
}

/// The message type: the top three bits of M_St.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Read,
    Answer,
    Write,
    /// Unsolicited, and the recipient must acknowledge it.
    UnsolicitedWithAck,
    UnsolicitedNoAck,
    Ack,
}

impl MessageKind {
    fn from_bits(bits: u8) -> Result<Self, MessageError> {
        Ok(match bits {
            0 => MessageKind::Read,
            1 => MessageKind::Answer,
            2 => MessageKind::Write,
            3 => MessageKind::UnsolicitedWithAck,
            4 => MessageKind::UnsolicitedNoAck,
            7 => MessageKind::Ack,
            other => return Err(MessageError::UnknownKind(other)),
        })
    }

    fn to_bits(self) -> u8 {
        match self {
            MessageKind::Read => 0,
            MessageKind::Answer => 1,
            MessageKind::Write => 2,
            MessageKind::UnsolicitedWithAck => 3,
            MessageKind::UnsolicitedNoAck => 4,
            MessageKind::Ack => 7,
        }
    }

    /// Whether the data is a run of data items.
    pub fn carries_items(self) -> bool {
        matches!(
            self,
            MessageKind::Answer
                | MessageKind::Write
                | MessageKind::UnsolicitedWithAck
                | MessageKind::UnsolicitedNoAck
        )
    }
}

/// The largest token: five bits.
pub const MAX_TOKEN: u8 = 0x1F;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("unknown message code {0}")]
    UnknownCode(u8),
    #[error("unknown message type {0}")]
    UnknownKind(u8),
    #[error("message length {0}: no room for the database address length")]
    EmptyBody(usize),
    #[error("database address of {address} bytes in a body of {body}")]
    AddressOverrun { address: usize, body: usize },
    #[error("data item {id}: {wanted} bytes, {left} left")]
    TruncatedItem { id: u8, wanted: usize, left: usize },
    #[error("data item {id} has a lone id byte and no length")]
    ItemWithoutLength { id: u8 },
    #[error("{what} of {len} bytes: more than {max}")]
    TooLong {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error("token {0}: more than five bits")]
    BadToken(u8),
}

/// One data item, borrowed from a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataItem<'a> {
    pub id: u8,
    pub value: &'a [u8],
}

/// One application message (or a heartbeat sent over TCP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub recipient: NodeAddress,
    pub originator: NodeAddress,
    pub code: MessageCode,
    pub kind: MessageKind,
    /// Pairs an answer or an acknowledge with its request (five bits).
    pub token: u8,
    pub db_address: Vec<u8>,
    /// What follows the database address: data items, or a read's or acknowledge's data.
    pub data: Vec<u8>,
}

impl Message {
    /// A message whose data is `items`, in order.
    pub fn with_items(
        recipient: NodeAddress,
        originator: NodeAddress,
        kind: MessageKind,
        token: u8,
        db_address: &[u8],
        items: &[DataItem<'_>],
    ) -> Result<Message, MessageError> {
        let mut data = Vec::new();
        for item in items {
            let len = u8::try_from(item.value.len()).map_err(|_| MessageError::TooLong {
                what: "data item",
                len: item.value.len(),
                max: usize::from(u8::MAX),
            })?;
            data.extend([item.id, len]);
            data.extend_from_slice(item.value);
        }
        let message = Message {
            recipient,
            originator,
            code: MessageCode::Application,
            kind,
            token,
            db_address: db_address.to_vec(),
            data,
        };
        message.check()?;
        Ok(message)
    }

    /// A read of the fields `ids` of the database at `db_address`. The data of a read is the
    /// list of the wanted data ids, one byte each (as a public controller parses it).
    pub fn read(
        recipient: NodeAddress,
        originator: NodeAddress,
        token: u8,
        db_address: &[u8],
        ids: &[u8],
    ) -> Result<Message, MessageError> {
        let message = Message {
            recipient,
            originator,
            code: MessageCode::Application,
            kind: MessageKind::Read,
            token,
            db_address: db_address.to_vec(),
            data: ids.to_vec(),
        };
        message.check()?;
        Ok(message)
    }

    /// The data items, in order (for kinds that carry them; see [`MessageKind::carries_items`]).
    pub fn items(&self) -> Result<Vec<DataItem<'_>>, MessageError> {
        let mut items = Vec::new();
        let mut rest = self.data.as_slice();
        while let Some((&id, after_id)) = rest.split_first() {
            let (&len, after_len) = after_id
                .split_first()
                .ok_or(MessageError::ItemWithoutLength { id })?;
            let wanted = usize::from(len);
            if after_len.len() < wanted {
                return Err(MessageError::TruncatedItem {
                    id,
                    wanted,
                    left: after_len.len(),
                });
            }
            let (value, next) = after_len.split_at(wanted);
            items.push(DataItem { id, value });
            rest = next;
        }
        Ok(items)
    }

    /// The acknowledge the recipient of an unsolicited-with-acknowledge message owes, sent from
    /// `from`; `None` for any other message. Its data is one status byte, 0 (accepted):
    /// *unverified*, see the module notes.
    pub fn acknowledge(&self, from: NodeAddress) -> Option<Message> {
        (self.code == MessageCode::Application && self.kind == MessageKind::UnsolicitedWithAck)
            .then(|| Message {
                recipient: self.originator,
                originator: from,
                code: MessageCode::Application,
                kind: MessageKind::Ack,
                token: self.token,
                db_address: self.db_address.clone(),
                data: vec![0],
            })
    }

    /// Whether a watch-only source may send this: reads, acknowledges and heartbeats only. A
    /// write is how a device is told to lock, clear or authorise, so a watch-only source never
    /// writes, whatever the data.
    pub fn is_watch_only(&self) -> bool {
        self.code == MessageCode::Heartbeat
            || matches!(self.kind, MessageKind::Read | MessageKind::Ack)
    }

    /// The bytes on the wire.
    pub fn encode(&self) -> Result<Vec<u8>, MessageError> {
        let body_len = self.check()?;
        let mut out = Vec::with_capacity(HEADER_LEN + body_len);
        out.extend(self.recipient.to_bytes());
        out.extend(self.originator.to_bytes());
        out.push(self.code.to_byte());
        out.push(self.kind.to_bits() << 5 | self.token);
        // check() bounds both lengths.
        out.extend((body_len as u16).to_be_bytes());
        out.push(self.db_address.len() as u8);
        out.extend_from_slice(&self.db_address);
        out.extend_from_slice(&self.data);
        Ok(out)
    }

    /// The body's length (M_Lg) if every field fits its place on the wire.
    fn check(&self) -> Result<usize, MessageError> {
        if self.token > MAX_TOKEN {
            return Err(MessageError::BadToken(self.token));
        }
        if self.db_address.len() > usize::from(u8::MAX) {
            return Err(MessageError::TooLong {
                what: "database address",
                len: self.db_address.len(),
                max: usize::from(u8::MAX),
            });
        }
        let body_len = 1 + self.db_address.len() + self.data.len();
        if body_len > usize::from(u16::MAX) {
            return Err(MessageError::TooLong {
                what: "message body",
                len: body_len,
                max: usize::from(u16::MAX),
            });
        }
        Ok(body_len)
    }

    /// Reads one message from the start of `bytes`: `None` while `bytes` does not hold all of
    /// it (its length is in the header), else the message, or why it is not one, and the bytes
    /// it took. A message that is not understood still has a length, so the stream stays framed.
    pub fn decode(bytes: &[u8]) -> Option<(Result<Message, MessageError>, usize)> {
        let header = bytes.first_chunk::<HEADER_LEN>()?;
        let body_len = usize::from(u16::from_be_bytes([header[6], header[7]]));
        let body = bytes.get(HEADER_LEN..HEADER_LEN + body_len)?;
        Some((Self::parse(header, body), HEADER_LEN + body_len))
    }

    fn parse(header: &[u8; HEADER_LEN], body: &[u8]) -> Result<Message, MessageError> {
        let code = MessageCode::from_byte(header[4])?;
        let kind = MessageKind::from_bits(header[5] >> 5)?;
        let (&address_len, rest) = body
            .split_first()
            .ok_or(MessageError::EmptyBody(body.len()))?;
        let address_len = usize::from(address_len);
        if address_len > rest.len() {
            return Err(MessageError::AddressOverrun {
                address: address_len,
                body: body.len(),
            });
        }
        let (db_address, data) = rest.split_at(address_len);
        Ok(Message {
            recipient: NodeAddress::from_bytes([header[0], header[1]]),
            originator: NodeAddress::from_bytes([header[2], header[3]]),
            code,
            kind,
            token: header[5] & MAX_TOKEN,
            db_address: db_address.to_vec(),
            data: data.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DISPENSER: NodeAddress = NodeAddress::new(1, 1);
    const AGENT: NodeAddress = NodeAddress::new(2, 9);

    fn sale_notice() -> Message {
        Message::with_items(
            AGENT,
            DISPENSER,
            MessageKind::UnsolicitedWithAck,
            5,
            &[0x21, 0x21, 0x00, 0x17],
            &[
                DataItem {
                    id: 1,
                    value: &[0x00, 0x17],
                },
                DataItem {
                    id: 21,
                    value: &[2],
                },
            ],
        )
        .unwrap()
    }

    #[test]
    fn encodes_header_address_and_items_byte_for_byte() {
        let bytes = sale_notice().encode().unwrap();
        assert_eq!(
            bytes,
            [
                2, 9, 1, 1,    // recipient, originator
                0,    // application message
                0x65, // unsolicited with acknowledge (3 << 5), token 5
                0, 12, // length of what follows
                4, 0x21, 0x21, 0x00, 0x17, // database address
                1, 2, 0x00, 0x17, // TR_Seq_Nb
                21, 1, 2, // Trans_State payable
            ]
        );
        let (decoded, used) = Message::decode(&bytes).unwrap();
        assert_eq!((decoded, used), (Ok(sale_notice()), bytes.len()));
    }

    #[test]
    fn a_partial_message_waits_for_more() {
        let bytes = sale_notice().encode().unwrap();
        for cut in 0..bytes.len() {
            assert_eq!(Message::decode(&bytes[..cut]), None, "cut at {cut}");
        }
    }

    #[test]
    fn items_come_back_in_order_and_a_cut_item_is_named() {
        let notice = sale_notice();
        let items = notice.items().unwrap();
        assert_eq!(items.iter().map(|i| i.id).collect::<Vec<_>>(), [1, 21]);
        let mut cut = notice.clone();
        cut.data.pop();
        assert_eq!(
            cut.items(),
            Err(MessageError::TruncatedItem {
                id: 21,
                wanted: 1,
                left: 0
            })
        );
        cut.data.pop();
        assert_eq!(cut.items(), Err(MessageError::ItemWithoutLength { id: 21 }));
    }

    #[test]
    fn bad_messages_are_refused_with_their_reason_and_their_length() {
        let mut bytes = sale_notice().encode().unwrap();
        let whole = bytes.len();
        bytes[4] = 2;
        assert_eq!(
            Message::decode(&bytes),
            Some((Err(MessageError::UnknownCode(2)), whole))
        );
        bytes[4] = 0;
        bytes[5] = 5 << 5;
        assert_eq!(
            Message::decode(&bytes),
            Some((Err(MessageError::UnknownKind(5)), whole))
        );
        assert_eq!(
            Message::decode(&[2, 9, 1, 1, 0, 0x20, 0, 0]),
            Some((Err(MessageError::EmptyBody(0)), 8))
        );
        assert_eq!(
            Message::decode(&[2, 9, 1, 1, 0, 0x20, 0, 2, 4, 0x21]),
            Some((
                Err(MessageError::AddressOverrun {
                    address: 4,
                    body: 2
                }),
                10
            ))
        );
    }

    #[test]
    fn only_unsolicited_with_ack_is_acknowledged_and_the_ack_goes_back() {
        let ack = sale_notice().acknowledge(AGENT).unwrap();
        assert_eq!(
            (ack.recipient, ack.originator, ack.kind, ack.token),
            (DISPENSER, AGENT, MessageKind::Ack, 5)
        );
        assert_eq!(ack.db_address, sale_notice().db_address);
        assert!(ack.is_watch_only());
        let mut answer = sale_notice();
        answer.kind = MessageKind::Answer;
        assert_eq!(answer.acknowledge(AGENT), None);
    }

    #[test]
    fn a_watch_only_source_may_read_and_acknowledge_but_never_write() {
        let mut message = sale_notice();
        for (kind, allowed) in [
            (MessageKind::Read, true),
            (MessageKind::Ack, true),
            (MessageKind::Write, false),
            (MessageKind::Answer, false),
            (MessageKind::UnsolicitedWithAck, false),
            (MessageKind::UnsolicitedNoAck, false),
        ] {
            message.kind = kind;
            assert_eq!(message.is_watch_only(), allowed, "{kind:?}");
        }
    }

    #[test]
    fn fields_that_do_not_fit_are_refused() {
        let mut message = sale_notice();
        message.token = 32;
        assert_eq!(message.encode(), Err(MessageError::BadToken(32)));
        let long = [0u8; 256];
        let too_long = Message::with_items(
            AGENT,
            DISPENSER,
            MessageKind::Write,
            0,
            &[0x21],
            &[DataItem {
                id: 1,
                value: &long,
            }],
        );
        assert!(matches!(too_long, Err(MessageError::TooLong { .. })));
    }
}
