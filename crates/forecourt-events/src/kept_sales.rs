//! How many of the sales a driver reported the station has made durable, per fuelling point.
//! The station counts; a DART master reads it and resets a pump only once the sale it reported
//! is kept, so a crash in between leaves the fill on the pump for the next start to recover.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::FpNumber;

#[derive(Debug)]
pub struct KeptSales([AtomicU64; 256]);

impl Default for KeptSales {
    fn default() -> Self {
        KeptSales(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

impl KeptSales {
    pub fn new() -> KeptSales {
        KeptSales::default()
    }

    /// One more sale of `fp` is durable (or was already, from before a restart).
    pub fn keep(&self, fp: FpNumber) {
        self.0[usize::from(fp)].fetch_add(1, Ordering::Release);
    }

    /// Sales of `fp` kept since this process started.
    pub fn count(&self, fp: FpNumber) -> u64 {
        self.0[usize::from(fp)].load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_fuelling_point() {
        let kept = KeptSales::new();
        kept.keep(3);
        kept.keep(3);
        kept.keep(255);
        assert_eq!((kept.count(3), kept.count(255), kept.count(0)), (2, 1, 0));
    }
}
