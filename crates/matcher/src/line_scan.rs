//! A fast scanner for trace lines exactly as the writer lays them out: its field order, no
//! whitespace, no escapes in strings, numbers without exponents and with few digits. It never
//! decides that a line is bad: anything else (escapes, another field order, whitespace,
//! exponents, long numbers, a layout, a bad line) comes back as `None`, and serde reads the line
//! instead, which keeps serde's results and error messages exactly.
//!
//! Frames and nozzle changes cost no allocation: strings come back as byte ranges of the line and
//! plates are pushed into a buffer the caller reuses (a sale's decimals go through `Decimal`'s own
//! parser, which allocates; sales are rare).

use forecourt_events::{Decimal, UnixMillis};

use crate::trace_fields::{NozzleRecord, NozzleState, SaleRecord};

/// A byte range of the scanned line (the quotes of a string excluded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    /// The text of this span in `line`; spans always come from the same line at quote positions,
    /// so the lookup cannot miss (an empty string if it ever did, rather than a panic).
    pub fn text(self, line: &str) -> &str {
        line.get(self.start..self.end).unwrap_or_default()
    }
}

/// One plate of a scanned frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ScannedPlate {
    pub text: Span,
    pub conf: f32,
    pub bbox: [f32; 4],
}

/// A record read by the scanner; a frame's plates are in the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum ScannedRecord {
    Frame { t: UnixMillis, camera: Span },
    Nozzle(NozzleRecord),
    Sale(SaleRecord<Span>),
}

/// Scans one trimmed line. `plates` is cleared and, for a frame, holds its plates afterwards.
/// `None`: not a line of the writer's plain layout; let serde read it.
pub(crate) fn scan_record(line: &str, plates: &mut Vec<ScannedPlate>) -> Option<ScannedRecord> {
    plates.clear();
    let mut cursor = Cursor {
        line,
        bytes: line.as_bytes(),
        pos: 0,
    };
    cursor.literal(br#"{"type":""#)?;
    let record = match cursor.bytes.get(cursor.pos)? {
        b'f' => cursor.frame(plates)?,
        b'n' => cursor.nozzle()?,
        b's' => cursor.sale()?,
        _ => return None,
    };
    (cursor.pos == cursor.bytes.len()).then_some(record)
}

/// 10^0 ..= 10^15: as f64 all exact, so one division by them rounds correctly.
const POWERS_OF_TEN: [u64; 16] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
    1_000_000_000,
    10_000_000_000,
    100_000_000_000,
    1_000_000_000_000,
    10_000_000_000_000,
    100_000_000_000_000,
    1_000_000_000_000_000,
];

/// At most this many digits in a number: the value fits an i64, and as a float significand
/// it is below 2^53 (exact in an f64).
const MAX_DIGITS: usize = 15;

struct Cursor<'a> {
    line: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn literal(&mut self, text: &[u8]) -> Option<()> {
        if self.bytes.get(self.pos..)?.starts_with(text) {
            self.pos += text.len();
            Some(())
        } else {
            None
        }
    }

    /// Takes `byte` if it is next.
    fn take(&mut self, byte: u8) -> bool {
        let next = self.bytes.get(self.pos) == Some(&byte);
        self.pos += usize::from(next);
        next
    }

    /// The rest of a string whose opening quote is taken: no escapes or control characters
    /// (serde handles those).
    fn string_rest(&mut self) -> Option<Span> {
        let start = self.pos;
        loop {
            match *self.bytes.get(self.pos)? {
                b'"' => break,
                b'\\' | 0x00..=0x1f => return None,
                _ => self.pos += 1,
            }
        }
        let span = Span {
            start,
            end: self.pos,
        };
        self.pos += 1;
        Some(span)
    }

    fn string(&mut self) -> Option<Span> {
        self.literal(b"\"")?;
        self.string_rest()
    }

    /// Digits, at most [`MAX_DIGITS`] of them: (count, value).
    fn digits(&mut self) -> (usize, u64) {
        let start = self.pos;
        let mut value = 0u64;
        while let Some(&byte @ b'0'..=b'9') = self.bytes.get(self.pos) {
            // Wrapping: a number too long is refused below, after the loop.
            value = value.wrapping_mul(10).wrapping_add(u64::from(byte - b'0'));
            self.pos += 1;
        }
        (self.pos - start, value)
    }

    /// `-?(0|[1-9][0-9]*)` with at most [`MAX_DIGITS`] digits: (negative, digits, value).
    fn integer_part(&mut self) -> Option<(bool, usize, u64)> {
        let negative = self.take(b'-');
        let start = self.pos;
        let (count, value) = self.digits();
        // No digits, a leading zero before more digits (not JSON), or too long for this scanner.
        if count == 0 || count > MAX_DIGITS || (count > 1 && self.bytes.get(start) == Some(&b'0')) {
            return None;
        }
        Some((negative, count, value))
    }

    /// A JSON integer as serde reads it into an i64 (`-0` is a float to serde: not taken).
    fn int(&mut self) -> Option<i64> {
        let (negative, _, value) = self.integer_part()?;
        if self.bytes.get(self.pos) == Some(&b'.') {
            return None;
        }
        let value = i64::try_from(value).ok()?;
        match (negative, value) {
            (false, _) => Some(value),
            (true, 0) => None,
            (true, _) => Some(-value),
        }
    }

    /// A small unsigned integer (fuelling point, nozzle).
    fn byte(&mut self) -> Option<u8> {
        u8::try_from(self.int()?).ok()
    }

    /// A number read into an f32 exactly as serde_json does: the decimal to the nearest f64,
    /// then to f32 (integers go straight to f32). Exponents are left to serde.
    fn float(&mut self) -> Option<f32> {
        let (negative, int_digits, int_value) = self.integer_part()?;
        if !self.take(b'.') {
            if negative && int_value == 0 {
                return Some(-0.0); // serde_json reads `-0` as the float -0.0
            }
            // Below 2^53, so the i64 is exact and `as f32` rounds as serde's visit does.
            let value = int_value as i64;
            return Some(if negative { -value } else { value } as f32);
        }
        let (fraction_digits, fraction) = self.digits();
        if fraction_digits == 0 || int_digits + fraction_digits > MAX_DIGITS {
            return None;
        }
        let scale = *POWERS_OF_TEN.get(fraction_digits)?;
        // Below 10^15 < 2^53: exact as i64 and as f64.
        let significand = (int_value * scale + fraction) as i64;
        // Both operands are exact, so the one division is correctly rounded: the same f64 as
        // serde_json's (which divides the same way, or rounds correctly with float_roundtrip).
        let magnitude = significand as f64 / scale as i64 as f64;
        Some(if negative { -magnitude } else { magnitude } as f32)
    }

    /// A decimal in a string, as `Decimal`'s serde impl reads it.
    fn decimal(&mut self) -> Option<Decimal> {
        let span = self.string()?;
        span.text(self.line).parse().ok()
    }

    /// `{"type":"` taken: the rest of a frame. Plates go to `plates`.
    fn frame(&mut self, plates: &mut Vec<ScannedPlate>) -> Option<ScannedRecord> {
        self.literal(br#"frame","t":"#)?;
        let t = self.int()?;
        self.literal(br#","camera":""#)?;
        let camera = self.string_rest()?;
        self.literal(br#","plates":["#)?;
        if !self.take(b']') {
            loop {
                plates.push(self.plate()?);
                if !self.take(b',') {
                    break;
                }
            }
            self.literal(b"]")?;
        }
        self.literal(b"}")?;
        Some(ScannedRecord::Frame { t, camera })
    }

    fn plate(&mut self) -> Option<ScannedPlate> {
        self.literal(br#"{"text":""#)?;
        let text = self.string_rest()?;
        self.literal(br#","conf":"#)?;
        let conf = self.float()?;
        self.literal(br#","box":["#)?;
        let mut bbox = [0.0; 4];
        for (i, value) in bbox.iter_mut().enumerate() {
            if i > 0 {
                self.literal(b",")?;
            }
            *value = self.float()?;
        }
        self.literal(b"]}")?;
        Some(ScannedPlate { text, conf, bbox })
    }

    fn nozzle(&mut self) -> Option<ScannedRecord> {
        self.literal(br#"nozzle","t":"#)?;
        let t = self.int()?;
        self.literal(br#","fp":"#)?;
        let fp = self.byte()?;
        self.literal(br#","nozzle":"#)?;
        let nozzle = self.byte()?;
        self.literal(br#","state":""#)?;
        let state = if self.literal(br#"out"}"#).is_some() {
            NozzleState::Out
        } else {
            self.literal(br#"in"}"#)?;
            NozzleState::In
        };
        Some(ScannedRecord::Nozzle(NozzleRecord {
            t,
            fp,
            nozzle,
            state,
        }))
    }

    fn sale(&mut self) -> Option<ScannedRecord> {
        self.literal(br#"sale","t":"#)?;
        let t = self.int()?;
        self.literal(br#","fp":"#)?;
        let fp = self.byte()?;
        self.literal(br#","nozzle":"#)?;
        let nozzle = self.byte()?;
        self.literal(br#","volume":"#)?;
        let volume = self.decimal()?;
        self.literal(br#","amount":"#)?;
        let amount = self.decimal()?;
        self.literal(br#","price":"#)?;
        let price = self.decimal()?;
        // No `ref` is `None`; a `"ref":null` is left to serde.
        let sale_ref = if self.take(b'}') {
            None
        } else {
            self.literal(br#","ref":"#)?;
            let sale_ref = self.string()?;
            self.literal(b"}")?;
            Some(sale_ref)
        };
        Some(ScannedRecord::Sale(SaleRecord {
            t,
            fp,
            nozzle,
            volume,
            amount,
            price,
            sale_ref,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_writers_layout_takes_the_fast_path() {
        let mut plates = Vec::new();
        let line = r#"{"type":"frame","t":1788751418975,"camera":"cam3","plates":[{"text":"粤E15446","conf":0.93,"box":[0.1,0.2,0.3,0.4]},{"text":"A","conf":1,"box":[0,0,1,1]}]}"#;
        let Some(ScannedRecord::Frame { t, camera }) = scan_record(line, &mut plates) else {
            panic!("not scanned");
        };
        assert_eq!((t, camera.text(line)), (1788751418975, "cam3"));
        assert_eq!(plates.len(), 2);
        assert_eq!(plates[0].text.text(line), "粤E15446");
        assert_eq!(
            (plates[0].conf, plates[0].bbox),
            (0.93, [0.1, 0.2, 0.3, 0.4])
        );
        for line in [
            r#"{"type":"frame","t":1,"camera":"cam1","plates":[]}"#,
            r#"{"type":"nozzle","t":1300,"fp":1,"nozzle":2,"state":"out"}"#,
            r#"{"type":"sale","t":9000,"fp":1,"nozzle":2,"volume":"35.21","amount":"276.40","price":"7.85","ref":"s17"}"#,
            r#"{"type":"sale","t":9000,"fp":1,"nozzle":2,"volume":"35.21","amount":"276.40","price":"7.85"}"#,
        ] {
            assert!(scan_record(line, &mut plates).is_some(), "{line}");
        }
    }

    #[test]
    fn anything_else_is_left_to_serde() {
        let mut plates = Vec::new();
        for line in [
            r#"{"type":"layout","fps":[]}"#,
            r#"{"t":1,"type":"frame","camera":"cam1","plates":[]}"#,
            r#"{"type":"frame", "t":1,"camera":"cam1","plates":[]}"#,
            r#"{"type":"frame","t":1,"camera":"cam\"1","plates":[]}"#,
            r#"{"type":"frame","t":1,"camera":"cam1","plates":[{"text":"A","conf":9e-1,"box":[0,0,1,1]}]}"#,
            r#"{"type":"frame","t":1,"camera":"cam1","plates":[{"text":"A","conf":0.1234567890123456,"box":[0,0,1,1]}]}"#,
            r#"{"type":"frame","t":1234567890123456,"camera":"cam1","plates":[]}"#,
            r#"{"type":"frame","t":-0,"camera":"cam1","plates":[]}"#,
            r#"{"type":"frame","t":1,"camera":"cam1","plates":[]} x"#,
            r#"{"type":"nozzle","t":1300,"fp":256,"nozzle":2,"state":"out"}"#,
            r#"{"type":"sale","t":9000,"fp":1,"nozzle":2,"volume":"35.21","amount":"276.40","price":"7.85","ref":null}"#,
        ] {
            assert!(scan_record(line, &mut plates).is_none(), "{line}");
        }
    }
}
