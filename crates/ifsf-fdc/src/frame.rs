//! The binary header in front of every XML message. Three variants were seen in public clients
//! (the controller's configuration decides; the spec file asks for it to be configurable):
//!
//! ```text
//! LengthHashMd5: length(4, big-endian) 00 01 MD5(XML + passphrase)(16) XML
//! LengthZero:    length(4, big-endian) 00 00 XML
//! LengthMd5:     length(4, big-endian) MD5(XML + passphrase)(16) XML
//! ```
//! The length counts the XML only.

use md5::{Digest, Md5};

/// The longest XML message taken; a longer length in a header is a broken stream, not a
/// message to wait for.
pub const MAX_XML_BYTES: usize = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderVariant {
    LengthHashMd5,
    LengthZero,
    LengthMd5,
}

impl HeaderVariant {
    pub fn header_len(self) -> usize {
        match self {
            HeaderVariant::LengthHashMd5 => 4 + 2 + 16,
            HeaderVariant::LengthZero => 4 + 2,
            HeaderVariant::LengthMd5 => 4 + 16,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("XML of {0} bytes: more than {MAX_XML_BYTES}")]
    TooLong(usize),
    #[error("header bytes {found:02X?} where {expected:02X?} belong")]
    BadMarker { found: [u8; 2], expected: [u8; 2] },
    #[error("MD5 does not match the message and the passphrase")]
    BadDigest,
}

fn digest(xml: &[u8], passphrase: &[u8]) -> [u8; 16] {
    let mut md5 = Md5::new();
    md5.update(xml);
    md5.update(passphrase);
    md5.finalize().into()
}

/// `xml` with its header in front.
pub fn encode(
    variant: HeaderVariant,
    xml: &[u8],
    passphrase: &[u8],
) -> Result<Vec<u8>, FrameError> {
    if xml.len() > MAX_XML_BYTES {
        return Err(FrameError::TooLong(xml.len()));
    }
    let mut out = Vec::with_capacity(variant.header_len() + xml.len());
    // At most MAX_XML_BYTES: fits four bytes.
    out.extend((xml.len() as u32).to_be_bytes());
    match variant {
        HeaderVariant::LengthHashMd5 => {
            out.extend([0x00, 0x01]);
            out.extend(digest(xml, passphrase));
        }
        HeaderVariant::LengthZero => out.extend([0x00, 0x00]),
        HeaderVariant::LengthMd5 => out.extend(digest(xml, passphrase)),
    }
    out.extend_from_slice(xml);
    Ok(out)
}

/// Bytes of the TCP stream in any chunking, XML messages out. A bad header is an error for the
/// link (where the next message starts is lost): the decoder drops what it holds, and the caller
/// drops the connection.
#[derive(Debug)]
pub struct FrameDecoder {
    variant: HeaderVariant,
    passphrase: Vec<u8>,
    buf: Vec<u8>,
}

impl FrameDecoder {
    pub fn new(variant: HeaderVariant, passphrase: &[u8]) -> Self {
        FrameDecoder {
            variant,
            passphrase: passphrase.to_vec(),
            buf: Vec::new(),
        }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes held that do not form a whole message yet.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next message's XML, an error for a bad header, or `None` when more bytes are needed.
    pub fn next_xml(&mut self) -> Option<Result<Vec<u8>, FrameError>> {
        let header_len = self.variant.header_len();
        let header = self.buf.get(..header_len)?;
        let length = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        if length > MAX_XML_BYTES {
            self.buf.clear();
            return Some(Err(FrameError::TooLong(length)));
        }
        let expected_marker = match self.variant {
            HeaderVariant::LengthHashMd5 => Some([0x00, 0x01]),
            HeaderVariant::LengthZero => Some([0x00, 0x00]),
            HeaderVariant::LengthMd5 => None,
        };
        if let Some(expected) = expected_marker {
            let found = [header[4], header[5]];
            if found != expected {
                self.buf.clear();
                return Some(Err(FrameError::BadMarker { found, expected }));
            }
        }
        let xml = self.buf.get(header_len..header_len + length)?.to_vec();
        let sent_digest = match self.variant {
            HeaderVariant::LengthHashMd5 => Some(&header[6..22]),
            HeaderVariant::LengthMd5 => Some(&header[4..20]),
            HeaderVariant::LengthZero => None,
        };
        let result = match sent_digest {
            Some(sent) if sent != digest(&xml, &self.passphrase) => Err(FrameError::BadDigest),
            _ => Ok(xml),
        };
        // A message with a wrong digest is whole: the stream stays framed past it.
        self.buf.drain(..header_len + length);
        Some(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const XML: &[u8] = b"<POSMessage MessageType=\"POS_Ready\"/>";

    #[test]
    fn each_variant_frames_its_own_way() {
        let zero = encode(HeaderVariant::LengthZero, XML, b"").unwrap();
        assert_eq!(&zero[..6], &[0, 0, 0, XML.len() as u8, 0, 0]);
        assert_eq!(&zero[6..], XML);
        let hashed = encode(HeaderVariant::LengthHashMd5, XML, b"secret").unwrap();
        assert_eq!(&hashed[4..6], &[0, 1]);
        assert_eq!(&hashed[6..22], &digest(XML, b"secret"));
        let md5_only = encode(HeaderVariant::LengthMd5, XML, b"secret").unwrap();
        assert_eq!(&md5_only[4..20], &digest(XML, b"secret"));
        assert_eq!(&md5_only[20..], XML);
    }

    #[test]
    fn md5_is_of_the_xml_then_the_passphrase() {
        // MD5("abc") is the RFC 1321 test vector: the digest is MD5 itself, nothing else.
        assert_eq!(
            digest(b"ab", b"c"),
            [
                0x90, 0x01, 0x50, 0x98, 0x3c, 0xd2, 0x4f, 0xb0, 0xd6, 0x96, 0x3f, 0x7d, 0x28, 0xe1,
                0x7f, 0x72
            ]
        );
    }

    #[test]
    fn messages_come_out_whatever_the_chunking() {
        for variant in [
            HeaderVariant::LengthHashMd5,
            HeaderVariant::LengthZero,
            HeaderVariant::LengthMd5,
        ] {
            let mut stream = encode(variant, XML, b"pw").unwrap();
            stream.extend(encode(variant, b"<a/>", b"pw").unwrap());
            for chunk in [1, 5, stream.len()] {
                let mut decoder = FrameDecoder::new(variant, b"pw");
                let mut got = Vec::new();
                for piece in stream.chunks(chunk) {
                    decoder.push(piece);
                    while let Some(xml) = decoder.next_xml() {
                        got.push(xml.unwrap());
                    }
                }
                assert_eq!(got, [XML.to_vec(), b"<a/>".to_vec()], "{variant:?}");
                assert_eq!(decoder.buffered(), 0);
            }
        }
    }

    #[test]
    fn a_wrong_passphrase_a_wrong_marker_and_a_huge_length_are_refused() {
        let framed = encode(HeaderVariant::LengthHashMd5, XML, b"right").unwrap();
        let mut decoder = FrameDecoder::new(HeaderVariant::LengthHashMd5, b"wrong");
        decoder.push(&framed);
        assert_eq!(decoder.next_xml(), Some(Err(FrameError::BadDigest)));
        assert_eq!(decoder.buffered(), 0);

        let mut decoder = FrameDecoder::new(HeaderVariant::LengthZero, b"");
        decoder.push(&framed);
        assert_eq!(
            decoder.next_xml(),
            Some(Err(FrameError::BadMarker {
                found: [0, 1],
                expected: [0, 0]
            }))
        );
        assert_eq!((decoder.next_xml(), decoder.buffered()), (None, 0));

        let mut decoder = FrameDecoder::new(HeaderVariant::LengthZero, b"");
        decoder.push(&[0xFF, 0xFF, 0xFF, 0xFF, 0, 0]);
        assert_eq!(
            decoder.next_xml(),
            Some(Err(FrameError::TooLong(0xFFFF_FFFF)))
        );
    }
}
