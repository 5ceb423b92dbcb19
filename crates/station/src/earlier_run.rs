//! What the station remembers of the run before this one, so that a sale the pump reports again
//! after a restart (its reset had not reached the pump) is counted once.

use std::collections::{BTreeMap, HashMap};

use forecourt_events::{Decimal, Sale};
use serde::Deserialize;
use serde_json::Value;
use tracing::info;
use wire::{NozzleBody, NozzleState, SaleBody};

/// What identifies a sale the pump may report again: nozzle, volume and amount.
#[derive(Debug, Clone)]
pub struct ReleasedSale {
    pub nozzle: u8,
    pub volume: Decimal,
    pub amount: Decimal,
}

/// What the station remembers of the run before this one, to count a sale the pump reports
/// again once.
#[derive(Debug, Default)]
pub(crate) struct EarlierRun {
    /// Sales held from before the last stop, to recognise a pump reporting one of them again.
    held_sales: Vec<Sale>,
    /// Per fuelling point, the last sale an earlier run already sent (its record is waiting or
    /// archived) with no nozzle lifted at that point since: a pump still showing that fill as
    /// completed at start reports it again (the reset had not reached the pump before the stop).
    released_last: BTreeMap<u8, ReleasedSale>,
    /// Sales an earlier run sent that their source keyed (see `Sale::source_key`): volume and
    /// amount by key.
    released_keys: HashMap<String, (Decimal, Decimal)>,
}

impl EarlierRun {
    /// The sales held when the last run stopped, given back to the matcher.
    pub fn held(&mut self, sale: Sale) {
        self.held_sales.push(sale);
    }

    /// The last sale sent per fuelling point, read back from the outbox.
    pub fn released(&mut self, last: BTreeMap<u8, ReleasedSale>) -> usize {
        self.released_last = last;
        self.released_last.len()
    }

    /// The keys of sales an earlier run sent, read back from the outbox.
    pub fn released_keys(&mut self, keys: HashMap<String, (Decimal, Decimal)>) {
        self.released_keys = keys;
    }

    /// A sale this station already held or sent before the restart, reported again: for a
    /// source that keys its sales, any sale with a key and fill seen before; otherwise a
    /// recovered sale (found completed when the driver started) with the same fill, reported
    /// again because a crash came between the report and the pump's reset. Not a second sale.
    pub fn reports_again(&mut self, sale: &Sale) -> bool {
        if let Some(key) = &sale.source_key {
            return self.keyed_again(key, sale);
        }
        if !sale.recovered {
            return false;
        }
        // A recovered sale may not know its nozzle (0: the pump's answer had no DC3).
        let same_fill = |nozzle: u8, volume: Decimal, amount: Decimal| {
            (sale.nozzle == 0 || nozzle == sale.nozzle)
                && volume.same_value(sale.volume)
                && amount.same_value(sale.amount)
        };
        let same =
            |held: &Sale| held.fp == sale.fp && same_fill(held.nozzle, held.volume, held.amount);
        let sent_before = |r: &ReleasedSale| same_fill(r.nozzle, r.volume, r.amount);
        match self.held_sales.iter().position(same) {
            Some(i) => {
                self.held_sales.remove(i);
                info!(fp = sale.fp, nozzle = sale.nozzle, volume = %sale.volume, "pump reported a sale held from before the restart; counted once");
                true
            }
            None if self.released_last.get(&sale.fp).is_some_and(sent_before) => {
                self.released_last.remove(&sale.fp);
                info!(fp = sale.fp, nozzle = sale.nozzle, volume = %sale.volume, "pump still shows a sale sent before the restart; counted once");
                true
            }
            None => {
                info!(fp = sale.fp, nozzle = sale.nozzle, volume = %sale.volume, "recovered a sale completed while the agent was down");
                false
            }
        }
    }
}

impl EarlierRun {
    /// A sale its source keyed: the same key with the same volume and amount is the same sale
    /// (a source's numbering may start again after a device reset, so the key alone is not).
    fn keyed_again(&mut self, key: &str, sale: &Sale) -> bool {
        let same = |volume: Decimal, amount: Decimal| {
            volume.same_value(sale.volume) && amount.same_value(sale.amount)
        };
        let held_before =
            |held: &Sale| held.source_key.as_deref() == Some(key) && same(held.volume, held.amount);
        if let Some(i) = self.held_sales.iter().position(held_before) {
            self.held_sales.remove(i);
            info!(
                fp = sale.fp,
                key, "source reported a sale held from before the restart; counted once"
            );
            return true;
        }
        if self
            .released_keys
            .get(key)
            .is_some_and(|(volume, amount)| same(*volume, *amount))
        {
            info!(
                fp = sale.fp,
                key, "source reported a sale sent before the restart; counted once"
            );
            return true;
        }
        false
    }
}

/// From sent `sale` bodies: volume and amount of each sale its source keyed, by key.
pub fn released_keys(sales: &[Value]) -> HashMap<String, (Decimal, Decimal)> {
    sales
        .iter()
        .filter_map(|body| SaleBody::deserialize(body).ok())
        .filter_map(|sale| Some((sale.source_key?, (sale.volume, sale.amount))))
        .collect()
}

/// From sent `sale` and `nozzle` bodies: per fuelling point, its last sale if no nozzle was lifted
/// there after it. A body that is not of its stream's type is passed over.
pub fn last_released_per_fp(sales: &[Value], nozzles: &[Value]) -> BTreeMap<u8, ReleasedSale> {
    let mut last: BTreeMap<u8, (i64, ReleasedSale)> = BTreeMap::new();
    for body in sales {
        let Ok(sale) = SaleBody::deserialize(body) else {
            continue;
        };
        if last
            .get(&sale.fp)
            .is_none_or(|(seen, _)| sale.completed_t >= *seen)
        {
            let released = ReleasedSale {
                nozzle: sale.nozzle,
                volume: sale.volume,
                amount: sale.amount,
            };
            last.insert(sale.fp, (sale.completed_t, released));
        }
    }
    for body in nozzles {
        let Ok(nozzle) = NozzleBody::deserialize(body) else {
            continue;
        };
        let lifted_after = |(sale_t, _): &(i64, ReleasedSale)| nozzle.t > *sale_t;
        if nozzle.state == NozzleState::Out && last.get(&nozzle.fp).is_some_and(lifted_after) {
            last.remove(&nozzle.fp);
        }
    }
    last.into_iter().map(|(fp, (_, s))| (fp, s)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use wire::Event;

    fn sale(fp: u8, t: i64, volume: &str) -> Value {
        let body = SaleBody {
            fp,
            nozzle: 1,
            grade: None,
            volume: volume.parse().unwrap(),
            amount: "80.00".parse().unwrap(),
            price: "8.00".parse().unwrap(),
            nozzle_out_t: None,
            nozzle_in_t: t - 1_000,
            completed_t: t,
            plate: None,
            plate_confidence: 0.0,
            match_reason: String::new(),
            source_key: None,
        };
        Event::Sale(body).to_body().unwrap()
    }

    fn out(fp: u8, t: i64) -> Value {
        json!({"t": t, "fp": fp, "nozzle": 1, "state": "out"})
    }

    #[test]
    fn the_last_sale_per_fp_counts_until_a_nozzle_is_lifted_there() {
        let sales = [
            sale(1, 100, "10.00"),
            sale(1, 300, "11.00"),
            sale(2, 200, "12.00"),
            sale(3, 250, "13.00"),
        ];
        // FP 2: a nozzle lifted after its last sale (a new fill began: the pump was reset).
        // FP 3: only before.
        let nozzles = [
            out(2, 210),
            out(3, 240),
            json!({"t": 400, "fp": 1, "state": "in"}),
        ];
        let last = last_released_per_fp(&sales, &nozzles);
        assert_eq!(last.keys().copied().collect::<Vec<_>>(), vec![1, 3]);
        assert_eq!(last[&1].volume.to_string(), "11.00");
        assert_eq!(last[&3].volume.to_string(), "13.00");
    }
}
