//! Missed-sale detection from volume totalizers (DC101). Between two readings of one nozzle's
//! totalizer, `total_after - total_before` must equal the volume of the sales reported in between;
//! any excess was sold without us seeing the sale. Pure bookkeeping in raw volume units (the
//! pump's volume decimals); the caller decides when a reading is trustworthy (pump idle).

use std::collections::BTreeMap;

/// DC101 totalizers are 10 BCD digits: they wrap to 0 after 9 999 999 999.
pub const TOTALIZER_MODULUS: u64 = 10_000_000_000;

/// A decrease this large or larger is a counter reset (pump replaced, memory cleared), not a
/// wrap: a wrap only happens when the previous reading was close to the modulus.
const WRAP_WINDOW: u64 = TOTALIZER_MODULUS / 10;

/// What one totalizer reading tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TotalsVerdict {
    /// First reading for this nozzle (or after a reset): it becomes the baseline.
    Baseline,
    /// The totalizer moved exactly by the reported sales.
    Consistent,
    /// `missing` raw volume units were sold without a reported sale.
    Gap { missing: u64 },
    /// Reported sales exceed the totalizer's advance by `excess`: the baseline was read while a
    /// sale was not yet counted in it. Not a missed sale; the new reading is the new baseline.
    Excess { excess: u64 },
    /// The totalizer went backwards beyond a plausible wrap: counter reset, new baseline.
    CounterReset,
}

#[derive(Debug, Clone, Copy, Default)]
struct NozzleTotals {
    baseline: Option<u64>,
    /// Raw volume of sales reported since `baseline` was read.
    sold_since: u64,
}

/// Totalizer bookkeeping for the nozzles of one fuelling point.
#[derive(Debug, Clone, Default)]
pub struct TotalsTracker {
    nozzles: BTreeMap<u8, NozzleTotals>,
}

impl TotalsTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// A sale of `volume` (raw) was reported on `nozzle`.
    pub fn on_sale(&mut self, nozzle: u8, volume: u64) {
        let n = self.nozzles.entry(nozzle).or_default();
        n.sold_since = n.sold_since.saturating_add(volume);
    }

    /// A totalizer reading for `nozzle`. Always becomes the new baseline.
    pub fn on_reading(&mut self, nozzle: u8, total: u64) -> TotalsVerdict {
        let n = self.nozzles.entry(nozzle).or_default();
        let sold = std::mem::take(&mut n.sold_since);
        let Some(before) = n.baseline.replace(total) else {
            return TotalsVerdict::Baseline;
        };
        let advance = if total >= before {
            total - before
        } else if before >= TOTALIZER_MODULUS - WRAP_WINDOW && total < WRAP_WINDOW {
            total + TOTALIZER_MODULUS - before
        } else {
            return TotalsVerdict::CounterReset;
        };
        match advance.cmp(&sold) {
            std::cmp::Ordering::Equal => TotalsVerdict::Consistent,
            std::cmp::Ordering::Greater => TotalsVerdict::Gap {
                missing: advance - sold,
            },
            std::cmp::Ordering::Less => TotalsVerdict::Excess {
                excess: sold - advance,
            },
        }
    }

    /// Starts from a reading kept across a restart (`total` already counts every sale reported
    /// before it), as if it had just been read.
    pub fn restore(&mut self, nozzle: u8, total: u64) {
        self.nozzles.insert(
            nozzle,
            NozzleTotals {
                baseline: Some(total),
                sold_since: 0,
            },
        );
    }

    /// The totalizer value that the reported sales account for: the last reading plus the
    /// sales reported since. None before the first reading.
    pub fn accounted(&self, nozzle: u8) -> Option<u64> {
        let n = self.nozzles.get(&nozzle)?;
        Some((n.baseline? + n.sold_since) % TOTALIZER_MODULUS)
    }

    /// How far `total` is past [`Self::accounted`] (across a wrap): fuel no reported sale
    /// explains. None without a baseline, or when `total` is behind it (counter reset).
    pub fn unaccounted(&self, nozzle: u8, total: u64) -> Option<u64> {
        let accounted = self.accounted(nozzle)?;
        if total >= accounted {
            Some(total - accounted)
        } else if accounted >= TOTALIZER_MODULUS - WRAP_WINDOW && total < WRAP_WINDOW {
            Some(total + TOTALIZER_MODULUS - accounted)
        } else {
            None
        }
    }

    /// Forget a nozzle's baseline (e.g. its reading cannot be trusted any more).
    pub fn forget(&mut self, nozzle: u8) {
        self.nozzles.remove(&nozzle);
    }

    /// The last totalizer reading of `nozzle`, if any.
    pub fn baseline(&self, nozzle: u8) -> Option<u64> {
        self.nozzles.get(&nozzle).and_then(|n| n.baseline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restored_reading_is_a_baseline_and_counts_sales_after_it() {
        let mut t = TotalsTracker::new();
        assert_eq!(t.accounted(2), None);
        assert_eq!(t.unaccounted(2, 5_000), None);
        t.restore(2, 4_000);
        assert_eq!(t.unaccounted(2, 4_677), Some(677));
        t.on_sale(2, 677);
        assert_eq!(t.accounted(2), Some(4_677));
        assert_eq!(t.unaccounted(2, 4_677), Some(0));
        assert_eq!(t.unaccounted(2, 4_000), None, "behind: a counter reset");
        assert_eq!(t.on_reading(2, 4_700), TotalsVerdict::Gap { missing: 23 });
        t.restore(3, TOTALIZER_MODULUS - 10);
        assert_eq!(t.unaccounted(3, 5), Some(15), "across the wrap");
    }

    #[test]
    fn first_reading_is_baseline_then_consistent() {
        let mut t = TotalsTracker::new();
        assert_eq!(t.on_reading(1, 1_000), TotalsVerdict::Baseline);
        t.on_sale(1, 300);
        t.on_sale(1, 200);
        assert_eq!(t.on_reading(1, 1_500), TotalsVerdict::Consistent);
        assert_eq!(t.on_reading(1, 1_500), TotalsVerdict::Consistent);
    }

    #[test]
    fn missed_sale_is_a_gap_once() {
        let mut t = TotalsTracker::new();
        t.on_reading(2, 50);
        t.on_sale(2, 100);
        assert_eq!(
            t.on_reading(2, 50 + 100 + 777),
            TotalsVerdict::Gap { missing: 777 }
        );
        // Reported once: the next reading starts from the new baseline.
        assert_eq!(t.on_reading(2, 927), TotalsVerdict::Consistent);
    }

    #[test]
    fn nozzles_are_independent() {
        let mut t = TotalsTracker::new();
        t.on_reading(1, 0);
        t.on_reading(2, 0);
        t.on_sale(1, 10);
        assert_eq!(t.on_reading(2, 10), TotalsVerdict::Gap { missing: 10 });
        assert_eq!(t.on_reading(1, 10), TotalsVerdict::Consistent);
    }

    #[test]
    fn sales_before_a_baseline_do_not_count() {
        let mut t = TotalsTracker::new();
        t.on_sale(1, 999);
        assert_eq!(t.on_reading(1, 5_000), TotalsVerdict::Baseline);
        assert_eq!(t.on_reading(1, 5_000), TotalsVerdict::Consistent);
    }

    #[test]
    fn wrap_and_reset() {
        let mut t = TotalsTracker::new();
        t.on_reading(1, TOTALIZER_MODULUS - 10);
        t.on_sale(1, 25);
        assert_eq!(t.on_reading(1, 15), TotalsVerdict::Consistent);
        assert_eq!(t.on_reading(1, 3), TotalsVerdict::CounterReset);
        t.on_sale(1, 5);
        assert_eq!(t.on_reading(1, 8), TotalsVerdict::Consistent);
    }

    #[test]
    fn excess_is_not_a_gap() {
        let mut t = TotalsTracker::new();
        t.on_reading(1, 100);
        t.on_sale(1, 60);
        assert_eq!(t.on_reading(1, 150), TotalsVerdict::Excess { excess: 10 });
        assert_eq!(t.baseline(1), Some(150));
    }
}
