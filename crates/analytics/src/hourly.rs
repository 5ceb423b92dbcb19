//! Hourly counters per fuelling point and per nozzle, and their JSON summary.

use std::collections::BTreeMap;

use forecourt_events::{Decimal, FpNumber, UnixMillis};
use serde::{Deserialize, Serialize};

pub const HOUR_MS: i64 = 3_600_000;

/// Start of the hour (UTC) holding `t`.
pub fn hour_of(t: UnixMillis) -> UnixMillis {
    t.div_euclid(HOUR_MS) * HOUR_MS
}

pub use forecourt_events::FillEnd;
use wire::{FpHourJson, HourSummary, MetricsJson, NozzleHourJson};

use crate::zone_check::ZoneCounters;

/// Upper bounds (litres, exclusive) of the single-sale volume histogram bins; the last bin is open.
pub const VOLUME_BINS_L: [i64; 5] = [10, 20, 30, 40, 60];
pub const VOLUME_BIN_NAMES: [&str; 6] = ["0-10", "10-20", "20-30", "30-40", "40-60", "60+"];

/// An exact running sum of decimals of any scale.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecimalSum {
    minor: i128,
    scale: u8,
}

impl DecimalSum {
    pub fn add(&mut self, d: Decimal) {
        let scale = self.scale.max(d.scale());
        let up = |minor: i128, from: u8| minor * 10i128.pow(u32::from(scale - from));
        self.minor = up(self.minor, self.scale) + up(i128::from(d.minor()), d.scale());
        self.scale = scale;
    }

    pub fn value(&self) -> Decimal {
        Decimal::new(
            i64::try_from(self.minor).unwrap_or(if self.minor < 0 { i64::MIN } else { i64::MAX }),
            self.scale,
        )
    }
}

/// Histogram bin of a sale volume (litres).
pub fn volume_bin(volume: Decimal) -> usize {
    // Compare minor units with the bound scaled to the same scale: exact.
    let scale = 10i128.pow(u32::from(volume.scale()));
    let minor = i128::from(volume.minor());
    VOLUME_BINS_L
        .iter()
        .position(|&bound| minor < i128::from(bound) * scale)
        .unwrap_or(VOLUME_BINS_L.len())
}

/// Counters of one hour for one fuelling point or one nozzle.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    pub lifts: u32,
    pub sales: u32,
    pub volume: DecimalSum,
    pub amount: DecimalSum,
    pub histogram: [u32; 6],
    pub fill_auto: u32,
    pub fill_preset: u32,
    pub fill_unknown: u32,
    pub nozzle_out_ms: i64,
    pub vehicles: u32,
    /// Waiting times (arrival -> first nozzle out) of the vehicles counted, ms.
    pub waits: Vec<i64>,
    pub sale_gaps: u32,
    pub missing_volume: DecimalSum,
}

impl Counters {
    pub fn add_sale(&mut self, volume: Decimal, amount: Decimal, end: Option<FillEnd>) {
        self.sales += 1;
        self.volume.add(volume);
        self.amount.add(amount);
        self.histogram[volume_bin(volume)] += 1;
        match end {
            Some(FillEnd::Auto) => self.fill_auto += 1,
            Some(FillEnd::Preset) => self.fill_preset += 1,
            None => self.fill_unknown += 1,
        }
    }

    pub fn summary(&self) -> MetricsJson {
        let mut waits = self.waits.clone();
        waits.sort_unstable();
        let n = waits.len();
        let mean = (n > 0).then(|| {
            let sum: i128 = waits.iter().map(|&w| i128::from(w)).sum();
            ((sum + n as i128 / 2) / n as i128) as i64
        });
        // Nearest rank.
        let p90 = (n > 0).then(|| waits[(n * 9).div_ceil(10).max(1) - 1]);
        let decided = self.fill_auto + self.fill_preset;
        MetricsJson {
            lifts: self.lifts,
            sales: self.sales,
            volume: self.volume.value(),
            amount: self.amount.value(),
            vehicles: self.vehicles,
            waiting_n: n as u32,
            waiting_mean_ms: mean,
            waiting_p90_ms: p90,
            nozzle_out_ms: self.nozzle_out_ms,
            utilisation: round4(self.nozzle_out_ms as f64 / HOUR_MS as f64),
            volume_histogram: VOLUME_BIN_NAMES
                .iter()
                .zip(self.histogram)
                .map(|(name, count)| (name.to_string(), count))
                .collect(),
            fill_auto: self.fill_auto,
            fill_preset: self.fill_preset,
            fill_unknown: self.fill_unknown,
            fill_up_rate: (decided > 0)
                .then(|| round4(f64::from(self.fill_auto) / f64::from(decided))),
            sale_gaps: self.sale_gaps,
            missing_volume: self.missing_volume.value(),
        }
    }
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// One hour being counted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HourAcc {
    pub fps: BTreeMap<FpNumber, FpAcc>,
    pub entrance_arrivals: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FpAcc {
    pub arrivals: u32,
    pub all: Counters,
    pub nozzles: BTreeMap<u8, Counters>,
    pub zones: ZoneCounters,
}

impl FpAcc {
    /// `ms` of nozzle-out time: of one nozzle, or (`None`) of the fuelling point with any out.
    pub fn add_nozzle_out(&mut self, nozzle: Option<u8>, ms: i64) {
        match nozzle {
            Some(n) => self.nozzles.entry(n).or_default().nozzle_out_ms += ms,
            None => self.all.nozzle_out_ms += ms,
        }
    }
}

impl HourAcc {
    pub fn fp(&mut self, fp: FpNumber) -> &mut FpAcc {
        self.fps.entry(fp).or_default()
    }

    /// The summary, listing every known FP and nozzle (zeros where nothing happened).
    pub fn summary(
        &self,
        hour: UnixMillis,
        known: &BTreeMap<FpNumber, std::collections::BTreeSet<u8>>,
        late_events: u32,
        counted_from: Option<UnixMillis>,
    ) -> HourSummary {
        let empty = FpAcc::default();
        let zero = Counters::default();
        let mut fps: std::collections::BTreeSet<FpNumber> = known.keys().copied().collect();
        fps.extend(self.fps.keys().copied());
        HourSummary {
            hour,
            entrance_arrivals: self.entrance_arrivals,
            late_events,
            counted_from,
            counted_until: None,
            fps: fps
                .into_iter()
                .map(|fp| {
                    let acc = self.fps.get(&fp).unwrap_or(&empty);
                    let mut nozzles: std::collections::BTreeSet<u8> =
                        known.get(&fp).cloned().unwrap_or_default();
                    nozzles.extend(acc.nozzles.keys().copied());
                    FpHourJson {
                        fp,
                        arrivals: acc.arrivals,
                        metrics: acc.all.summary(),
                        nozzles: nozzles
                            .into_iter()
                            .map(|n| NozzleHourJson {
                                nozzle: n,
                                metrics: acc.nozzles.get(&n).unwrap_or(&zero).summary(),
                            })
                            .collect(),
                        zones: acc.zones.summary(),
                    }
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_are_exact_at_the_edges() {
        assert_eq!(volume_bin(Decimal::new(999, 2)), 0);
        assert_eq!(volume_bin(Decimal::new(1000, 2)), 1);
        assert_eq!(volume_bin(Decimal::new(39_999, 3)), 3);
        assert_eq!(volume_bin(Decimal::new(40, 0)), 4);
        assert_eq!(volume_bin(Decimal::new(5999, 2)), 4);
        assert_eq!(volume_bin(Decimal::new(60, 0)), 5);
        assert_eq!(volume_bin(Decimal::new(0, 2)), 0);
    }

    #[test]
    fn decimal_sums_mix_scales() {
        let mut s = DecimalSum::default();
        s.add(Decimal::new(1050, 2));
        s.add(Decimal::new(1, 3));
        assert_eq!(s.value().to_string(), "10.501");
        assert_eq!(DecimalSum::default().value().to_string(), "0");
    }

    #[test]
    fn hour_of_floors() {
        assert_eq!(hour_of(HOUR_MS * 5 + 1), HOUR_MS * 5);
        assert_eq!(hour_of(HOUR_MS * 5), HOUR_MS * 5);
        assert_eq!(hour_of(-1), -HOUR_MS);
    }
}
