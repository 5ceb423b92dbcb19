//! Exact decimals for money, volume and prices: an integer of minor units plus a scale. Never floats.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `minor / 10^scale`, e.g. 35.21 litres is `Decimal { minor: 3521, scale: 2 }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Decimal {
    minor: i64,
    scale: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecimalError {
    #[error("not a decimal number: {0:?}")]
    Syntax(String),
    #[error("decimal out of range: {0:?}")]
    Range(String),
}

impl Decimal {
    pub const MAX_SCALE: u8 = 9;

    /// Panics only on a programming error (scale over [`Self::MAX_SCALE`]).
    pub const fn new(minor: i64, scale: u8) -> Self {
        assert!(scale <= Self::MAX_SCALE);
        Decimal { minor, scale }
    }

    pub fn minor(self) -> i64 {
        self.minor
    }

    pub fn scale(self) -> u8 {
        self.scale
    }

    /// Numerically equal decimals compare equal whatever their scale.
    pub fn same_value(self, other: Decimal) -> bool {
        let s = self.scale.max(other.scale);
        self.rescaled(s) == other.rescaled(s)
    }

    fn rescaled(self, scale: u8) -> Option<i64> {
        self.minor
            .checked_mul(10i64.checked_pow(u32::from(scale - self.scale))?)
    }

    /// Lossy, for statistics only.
    pub fn to_f64(self) -> f64 {
        self.minor as f64 / 10f64.powi(i32::from(self.scale))
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.minor < 0 { "-" } else { "" };
        let abs = self.minor.unsigned_abs();
        if self.scale == 0 {
            return write!(f, "{sign}{abs}");
        }
        let div = 10u64.pow(u32::from(self.scale));
        write!(
            f,
            "{sign}{}.{:0width$}",
            abs / div,
            abs % div,
            width = usize::from(self.scale)
        )
    }
}

impl FromStr for Decimal {
    type Err = DecimalError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let syntax = || DecimalError::Syntax(s.to_string());
        let (neg, body) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let (int, frac) = body.split_once('.').unwrap_or((body, ""));
        if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
            return Err(syntax());
        }
        if !frac.bytes().all(|b| b.is_ascii_digit()) || (body.contains('.') && frac.is_empty()) {
            return Err(syntax());
        }
        let scale = u8::try_from(frac.len()).map_err(|_| syntax())?;
        if scale > Self::MAX_SCALE {
            return Err(DecimalError::Range(s.to_string()));
        }
        let digits = format!("{int}{frac}");
        let minor: i64 = digits
            .parse()
            .map_err(|_| DecimalError::Range(s.to_string()))?;
        Ok(Decimal {
            minor: if neg { -minor } else { minor },
            scale,
        })
    }
}

impl Serialize for Decimal {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Decimal {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_pads_fraction() {
        assert_eq!(Decimal::new(3521, 2).to_string(), "35.21");
        assert_eq!(Decimal::new(5, 3).to_string(), "0.005");
        assert_eq!(Decimal::new(-150, 2).to_string(), "-1.50");
        assert_eq!(Decimal::new(42, 0).to_string(), "42");
    }

    #[test]
    fn parse_round_trips() {
        for s in ["35.21", "0.005", "-1.50", "42", "276.40"] {
            assert_eq!(s.parse::<Decimal>().unwrap().to_string(), s);
        }
    }

    #[test]
    fn parse_rejects_garbage() {
        for s in [
            "",
            "1.",
            ".5",
            "1.2.3",
            "abc",
            "1e5",
            "- 1",
            "99999999999999999999",
        ] {
            assert!(s.parse::<Decimal>().is_err(), "{s:?} accepted");
        }
    }

    #[test]
    fn same_value_across_scales() {
        assert!(Decimal::new(150, 2).same_value(Decimal::new(15, 1)));
        assert!(!Decimal::new(151, 2).same_value(Decimal::new(15, 1)));
    }

    #[test]
    fn serde_as_string() {
        let d = Decimal::new(27640, 2);
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"276.40\"");
        let back: Decimal = serde_json::from_str("\"276.40\"").unwrap();
        assert_eq!(back, d);
    }
}
