//! IFSF signed decimals: one byte that holds the sign and where the decimal point goes, then
//! packed BCD digits, most significant first.
//!
//! The point's position counts the digits before it: `06 12 34 56 78` is 123456.78 (the one
//! reading in the spec file). *Unverified:* that the sign is the top bit of that byte (`0x80` =
//! negative) and the position its low seven bits. Sales are never negative, so a wrong guess
//! there shows as a refused number, not as a wrong amount.

use forecourt_events::Decimal;

/// The sign bit of the first byte (unverified, see the module notes).
const NEGATIVE: u8 = 0x80;
/// The digits before the point.
const POSITION: u8 = 0x7F;
/// At most this many digits: the value fits an `i64`.
pub const MAX_DIGITS: usize = 18;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    #[error("empty number")]
    Empty,
    #[error("invalid BCD byte 0x{0:02X}")]
    BadDigit(u8),
    #[error("{digits} digits: more than {MAX_DIGITS}")]
    TooLong { digits: usize },
    #[error("decimal point after digit {position} of {digits}")]
    PointOutOfRange { position: usize, digits: usize },
    #[error("{decimals} digits after the point: more than {}", Decimal::MAX_SCALE)]
    TooManyDecimals { decimals: usize },
    #[error("{value} does not fit {digits} digits")]
    DoesNotFit { value: Decimal, digits: usize },
}

/// Reads a number: the sign and point byte, then the BCD digits.
pub fn decode_number(bytes: &[u8]) -> Result<Decimal, NumberError> {
    let (&head, digit_bytes) = bytes.split_first().ok_or(NumberError::Empty)?;
    let digits = digit_bytes.len() * 2;
    if digits > MAX_DIGITS {
        return Err(NumberError::TooLong { digits });
    }
    let position = usize::from(head & POSITION);
    if position > digits {
        return Err(NumberError::PointOutOfRange { position, digits });
    }
    let decimals = digits - position;
    let scale = u8::try_from(decimals)
        .ok()
        .filter(|&s| s <= Decimal::MAX_SCALE)
        .ok_or(NumberError::TooManyDecimals { decimals })?;
    // At most 18 digits: below 10^18, it fits an i64.
    let magnitude = crate::bcd::decode(digit_bytes).map_err(NumberError::BadDigit)? as i64;
    let minor = if head & NEGATIVE != 0 {
        -magnitude
    } else {
        magnitude
    };
    Ok(Decimal::new(minor, scale))
}

/// Writes `value` as a number of `len` bytes (the sign and point byte included), keeping its
/// scale: the point goes after `2 * (len - 1) - scale` digits.
pub fn encode_number(value: Decimal, len: usize) -> Result<Vec<u8>, NumberError> {
    if len == 0 {
        return Err(NumberError::Empty);
    }
    let digits = (len - 1) * 2;
    if digits > MAX_DIGITS {
        return Err(NumberError::TooLong { digits });
    }
    let decimals = usize::from(value.scale());
    let does_not_fit = NumberError::DoesNotFit { value, digits };
    let position = digits.checked_sub(decimals).ok_or(does_not_fit.clone())?;
    let mut out = vec![0u8];
    out.extend(crate::bcd::encode(value.minor().unsigned_abs(), len - 1).ok_or(does_not_fit)?);
    // The position is at most 18: it fits the low seven bits.
    out[0] = position as u8 | if value.minor() < 0 { NEGATIVE } else { 0 };
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_files_reading() {
        assert_eq!(
            decode_number(&[0x06, 0x12, 0x34, 0x56, 0x78]),
            Ok(Decimal::new(12_345_678, 2))
        );
        assert_eq!(
            encode_number(Decimal::new(12_345_678, 2), 5),
            Ok(vec![0x06, 0x12, 0x34, 0x56, 0x78])
        );
    }

    #[test]
    fn a_price_a_volume_and_a_sign() {
        // 7.85 in four bytes: six digits, four before the point.
        assert_eq!(
            encode_number(Decimal::new(785, 2), 4),
            Ok(vec![0x04, 0x00, 0x07, 0x85])
        );
        assert_eq!(
            decode_number(&[0x03, 0x03, 0x52, 0x10]),
            Ok(Decimal::new(35_210, 3))
        );
        assert_eq!(
            decode_number(&[0x82, 0x01, 0x50]),
            Ok(Decimal::new(-150, 2))
        );
        assert_eq!(decode_number(&[0x00]), Ok(Decimal::new(0, 0)));
    }

    #[test]
    fn bad_numbers_are_refused_with_their_reason() {
        assert_eq!(decode_number(&[]), Err(NumberError::Empty));
        assert_eq!(
            decode_number(&[0x02, 0x1A]),
            Err(NumberError::BadDigit(0x1A))
        );
        assert_eq!(
            decode_number(&[0x03, 0x12]),
            Err(NumberError::PointOutOfRange {
                position: 3,
                digits: 2
            })
        );
        assert_eq!(
            decode_number(&[0x00; 11]),
            Err(NumberError::TooLong { digits: 20 })
        );
        assert_eq!(
            decode_number(&[0x00; 10]),
            Err(NumberError::TooManyDecimals { decimals: 18 })
        );
        assert_eq!(
            decode_number(&[0x12; 10]),
            Ok(Decimal::new(121_212_121_212_121_212, 0))
        );
        assert_eq!(
            encode_number(Decimal::new(0, 0), 0),
            Err(NumberError::Empty)
        );
        assert!(matches!(
            encode_number(Decimal::new(1_000, 0), 2),
            Err(NumberError::DoesNotFit { .. })
        ));
        assert!(matches!(
            encode_number(Decimal::new(1, 3), 2),
            Err(NumberError::DoesNotFit { .. })
        ));
    }
}
