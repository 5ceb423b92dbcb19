//! Packed BCD, most significant byte first, two digits per byte (DART numbers).

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BcdError {
    #[error("invalid BCD byte 0x{0:02X}")]
    BadDigit(u8),
}

/// Decodes packed BCD. At most 9 bytes (18 digits) fit a u64 without overflow checks.
pub fn bcd_decode(bytes: &[u8]) -> Result<u64, BcdError> {
    let mut value: u64 = 0;
    for &b in bytes {
        let (hi, lo) = (b >> 4, b & 0x0F);
        if hi > 9 || lo > 9 {
            return Err(BcdError::BadDigit(b));
        }
        value = value.wrapping_mul(100) + u64::from(hi) * 10 + u64::from(lo);
    }
    Ok(value)
}

/// Encodes `value` into `len` bytes. Digits that do not fit are dropped (the value wraps like a
/// pump counter): callers that care check the range first.
pub fn bcd_encode(value: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    let mut v = value;
    for byte in out.iter_mut().rev() {
        let lo = (v % 10) as u8;
        v /= 10;
        let hi = (v % 10) as u8;
        v /= 10;
        *byte = (hi << 4) | lo;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        assert_eq!(bcd_encode(1211, 4), vec![0x00, 0x00, 0x12, 0x11]);
        assert_eq!(bcd_decode(&[0x00, 0x15, 0x39]).unwrap(), 1539);
        for v in [0u64, 1, 9, 10, 99, 12345678, 99999999] {
            assert_eq!(bcd_decode(&bcd_encode(v, 4)).unwrap(), v);
        }
    }

    #[test]
    fn rejects_hex_digits() {
        assert_eq!(bcd_decode(&[0x1A]), Err(BcdError::BadDigit(0x1A)));
    }

    #[test]
    fn overflow_wraps() {
        assert_eq!(bcd_encode(123456, 2), vec![0x34, 0x56]);
    }
}
