//! Field captures written as hex text, the input of the protocol decode tools: one frame or
//! message per line, bytes as hex separated by spaces, commas, colons or nothing (`50 20 FA`,
//! `5020FA`, `0x50,0x20`); empty lines and lines starting with `#` are skipped. A line that is
//! not hex is reported, never a reason to stop or panic.

use std::io::{self, BufRead};

/// One line of a capture that holds something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaptureLine {
    Bytes(Vec<u8>),
    /// Not hex bytes (or not UTF-8), and why.
    Unreadable(String),
}

/// The lines of `input` that hold something, each with its 1-based line number. Only read
/// errors of `input` end it with an error.
pub fn capture_lines(
    input: impl BufRead,
) -> impl Iterator<Item = io::Result<(usize, CaptureLine)>> {
    input
        .split(b'\n')
        .enumerate()
        .filter_map(|(i, line)| match line {
            Err(e) => Some(Err(e)),
            Ok(bytes) => {
                let line = match String::from_utf8(bytes) {
                    Ok(text) => {
                        let text = text.trim();
                        if text.is_empty() || text.starts_with('#') {
                            return None;
                        }
                        match parse_hex(text) {
                            Ok(bytes) => CaptureLine::Bytes(bytes),
                            Err(why) => CaptureLine::Unreadable(why),
                        }
                    }
                    Err(_) => CaptureLine::Unreadable("line is not UTF-8".into()),
                };
                Some(Ok((i + 1, line)))
            }
        })
}

/// Hex text to bytes.
pub fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let mut digits = String::with_capacity(text.len());
    for token in text.split(|c: char| c.is_whitespace() || c == ',' || c == ':') {
        let t = token
            .strip_prefix("0x")
            .or_else(|| token.strip_prefix("0X"))
            .unwrap_or(token);
        if t.len() % 2 == 1 {
            return Err(format!("odd number of hex digits in {token:?}"));
        }
        digits.push_str(t);
    }
    // ASCII only from here on, so two bytes are always two whole characters.
    if let Some(c) = digits.chars().find(|c| !c.is_ascii_hexdigit()) {
        return Err(format!("not a hex digit: {c:?}"));
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).map_err(|e| e.to_string()))
        .collect()
}

/// Bytes as the decode tools print them and read them back: `50 20 FA`.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_written_as_hex_read_back_as_themselves() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(parse_hex(&to_hex(&bytes)), Ok(bytes));
        assert_eq!(to_hex(&[0x50, 0x0a]), "50 0A");
    }

    #[test]
    fn every_written_form_reads_as_the_same_bytes() {
        for text in [
            "50 20 FA",
            "5020fa",
            "0x50,0x20,0xFA",
            "50:20:FA",
            "  50\t20 FA  ",
        ] {
            assert_eq!(parse_hex(text), Ok(vec![0x50, 0x20, 0xFA]), "{text:?}");
        }
    }

    #[test]
    fn text_that_is_not_hex_is_an_error_not_a_panic() {
        // Multi-byte characters whose bytes an odd split would cut in two.
        for text in ["aé0", "éé", "5G", "502", "人民币"] {
            assert!(parse_hex(text).is_err(), "{text:?}");
        }
        assert_eq!(parse_hex("0x"), Ok(vec![]));
    }

    #[test]
    fn lines_are_numbered_and_comments_skipped() {
        let input: &[u8] = b"# a capture\n\n50 FA\nzz\n\xff\xfe\n  01 02 \n";
        let lines: Vec<_> = capture_lines(input).map(Result::unwrap).collect();
        assert_eq!(
            lines,
            vec![
                (3, CaptureLine::Bytes(vec![0x50, 0xFA])),
                (4, CaptureLine::Unreadable("not a hex digit: 'z'".into())),
                (5, CaptureLine::Unreadable("line is not UTF-8".into())),
                (6, CaptureLine::Bytes(vec![1, 2])),
            ]
        );
    }
}
