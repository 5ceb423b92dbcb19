//! Packed BCD, two digits a byte, most significant first: the digits of numbers, sequence
//! numbers and product numbers.

/// The value of `bytes` (at most 9 of them: 18 digits fit a u64), or the first byte that is not
/// two decimal digits.
pub(crate) fn decode(bytes: &[u8]) -> Result<u64, u8> {
    debug_assert!(bytes.len() <= 9);
    bytes.iter().try_fold(0u64, |value, &b| {
        let (hi, lo) = (b >> 4, b & 0x0F);
        if hi > 9 || lo > 9 {
            return Err(b);
        }
        Ok(value * 100 + u64::from(hi) * 10 + u64::from(lo))
    })
}

/// `value` in `len` bytes, or `None` when it has more digits than fit.
pub(crate) fn encode(value: u64, len: usize) -> Option<Vec<u8>> {
    let mut out = vec![0u8; len];
    let mut rest = value;
    for byte in out.iter_mut().rev() {
        *byte = ((rest / 10 % 10) as u8) << 4 | (rest % 10) as u8;
        rest /= 100;
    }
    (rest == 0).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_digits_a_byte_most_significant_first() {
        assert_eq!(decode(&[0x12, 0x34]), Ok(1234));
        assert_eq!(decode(&[0x1A]), Err(0x1A));
        assert_eq!(encode(1234, 3), Some(vec![0x00, 0x12, 0x34]));
        assert_eq!(encode(12345, 2), None);
    }
}
