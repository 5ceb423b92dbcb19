//! What a watch-only source remembers of each fuelling point, whatever its protocol: the nozzle
//! out now, the start of the last fill (for the sale that ends it), and the sales it reported
//! lately, so one the station's system announces again (cleared, locked, read back) is reported
//! once in a run. Pure.

use std::collections::VecDeque;

use forecourt_events::{Decimal, DispenserEvent, FpNumber, Sale, UnixMillis};

/// Sales remembered per fuelling point.
const REPORTED_PER_POINT: usize = 64;

/// A sale as a source found it, before it is told to the station.
pub(crate) struct FoundSale {
    /// The source's number for it (TR_Seq_Nb, TransactionSeqNo).
    pub seq: u32,
    pub nozzle: Option<u8>,
    /// The source's product number, for a nozzle the config names no grade for.
    pub product: Option<u32>,
    pub volume: Decimal,
    pub amount: Decimal,
    pub price: Decimal,
    /// Seen as it completed (not read back or asked for after a connection).
    pub seen_live: bool,
    pub source_key: String,
}

#[derive(Debug)]
pub(crate) struct PointMemory {
    fp: FpNumber,
    /// Grade name per nozzle: index 0 = nozzle 1.
    grades: Vec<String>,
    nozzle_out: Option<(u8, UnixMillis)>,
    last_fill: Option<(u8, UnixMillis)>,
    reported: VecDeque<(u32, Decimal, Decimal)>,
}

impl PointMemory {
    pub fn new(fp: FpNumber, grades: Vec<String>) -> Self {
        PointMemory {
            fp,
            grades,
            nozzle_out: None,
            last_fill: None,
            reported: VecDeque::new(),
        }
    }

    pub fn fp(&self) -> FpNumber {
        self.fp
    }

    /// The point shows a nozzle `out` (which, if the source says) or none: the nozzle event of a
    /// change. A nozzle out whose number is not known counts as nozzle 1.
    pub fn nozzle(
        &mut self,
        out: bool,
        nozzle: Option<u8>,
        now: UnixMillis,
    ) -> Option<DispenserEvent> {
        let fp = self.fp;
        match (out, self.nozzle_out) {
            (true, None) => {
                let nozzle = nozzle.unwrap_or(1);
                self.nozzle_out = Some((nozzle, now));
                self.last_fill = Some((nozzle, now));
                Some(DispenserEvent::NozzleOut { t: now, fp, nozzle })
            }
            (false, Some((nozzle, _))) => {
                self.nozzle_out = None;
                Some(DispenserEvent::NozzleIn { t: now, fp, nozzle })
            }
            _ => None,
        }
    }

    /// The sale to tell the station, or `None` if it was told already in this run (same
    /// number, volume and amount). A sale seen live ends the fill whose start was seen.
    pub fn sale(&mut self, found: FoundSale, now: UnixMillis) -> Option<Sale> {
        let seen = |(seq, v, a): &(u32, Decimal, Decimal)| {
            *seq == found.seq && v.same_value(found.volume) && a.same_value(found.amount)
        };
        if self.reported.iter().any(seen) {
            return None;
        }
        if self.reported.len() >= REPORTED_PER_POINT {
            self.reported.pop_front();
        }
        self.reported
            .push_back((found.seq, found.volume, found.amount));
        let fill = if found.seen_live {
            self.last_fill.take()
        } else {
            None
        };
        let nozzle = found.nozzle.or(fill.map(|(n, _)| n)).unwrap_or(0);
        let grade = nozzle
            .checked_sub(1)
            .and_then(|i| self.grades.get(usize::from(i)).cloned())
            .or_else(|| found.product.map(|product| product.to_string()));
        Some(Sale {
            t: now,
            fp: self.fp,
            nozzle,
            nozzle_out_t: fill.map(|(_, t)| t),
            grade,
            volume: found.volume,
            amount: found.amount,
            price: found.price,
            end: None,
            recovered: !found.seen_live,
            totalizer: None,
            source_key: Some(found.source_key),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(seq: u32, volume: &str, seen_live: bool) -> FoundSale {
        FoundSale {
            seq,
            nozzle: None,
            product: Some(95),
            volume: volume.parse().unwrap(),
            amount: "10.00".parse().unwrap(),
            price: "7.99".parse().unwrap(),
            seen_live,
            source_key: format!("k:{seq}"),
        }
    }

    #[test]
    fn a_live_sale_ends_the_fill_seen_and_is_told_once() {
        let mut p = PointMemory::new(3, vec!["92#".into(), "95#".into()]);
        assert!(p.nozzle(false, None, 1).is_none());
        assert_eq!(
            p.nozzle(true, Some(2), 5),
            Some(DispenserEvent::NozzleOut {
                t: 5,
                fp: 3,
                nozzle: 2
            })
        );
        assert!(p.nozzle(true, Some(2), 6).is_none());
        assert!(matches!(
            p.nozzle(false, None, 9),
            Some(DispenserEvent::NozzleIn { nozzle: 2, .. })
        ));
        let sale = p.sale(found(7, "1.25", true), 10).unwrap();
        assert_eq!(
            (sale.nozzle, sale.nozzle_out_t, sale.grade.as_deref()),
            (2, Some(5), Some("95#"))
        );
        assert!(!sale.recovered);
        assert!(p.sale(found(7, "1.25", false), 11).is_none());
        // The same number with another fill: the source numbers again.
        let again = p.sale(found(7, "3.00", false), 12).unwrap();
        assert!(again.recovered);
        assert_eq!((again.nozzle, again.grade.as_deref()), (0, Some("95")));
    }
}
