//! What a restart takes over from the outbox: sales held when the agent stopped (back to the
//! matcher), the last sale sent per fuelling point (a pump may report it again), and closed
//! hours (for HQ's `hourly` command).

use std::collections::BTreeMap;

use forecourt_events::{Decimal, DispenserEvent, Sale};
use serde_json::Value;
use tracing::{info, warn};
use wire::{NozzleBody, NozzleState, SaleBody};

use crate::{Station, StationError};

/// How far back the outbox is read for sales and nozzle events already sent (a busy station's
/// day or two; an idle fuelling point's last sale older than that is not recognised).
const RELEASED_LOOKBACK: usize = 5_000;

/// What identifies a sale the pump may report again: nozzle, volume and amount.
#[derive(Debug, Clone)]
pub struct ReleasedSale {
    pub nozzle: u8,
    pub volume: Decimal,
    pub amount: Decimal,
}

/// What [`Station::restore`] took over.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Restored {
    /// Closed hours, for HQ's `hourly` command.
    pub hours: usize,
    /// Fuelling points whose last sent sale the pump may still show.
    pub released: usize,
    /// Sales held when the agent stopped, back with the matcher.
    pub held: usize,
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
}

impl EarlierRun {
    /// A recovered sale (found completed when the driver started) that this station already
    /// held or sent before the restart: the same fill, reported again because a crash came
    /// between the report and the pump's reset. Not a second sale.
    pub fn reports_again(&mut self, sale: &Sale) -> bool {
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

/// From sent `sale` and `nozzle` bodies: per fuelling point, its last sale if no nozzle was lifted
/// there after it. A body that is not of its stream's type is passed over.
pub fn last_released_per_fp(sales: &[Value], nozzles: &[Value]) -> BTreeMap<u8, ReleasedSale> {
    let mut last: BTreeMap<u8, (i64, ReleasedSale)> = BTreeMap::new();
    for body in sales {
        let Ok(sale) = serde_json::from_value::<SaleBody>(body.clone()) else {
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
        let Ok(nozzle) = serde_json::from_value::<NozzleBody>(body.clone()) else {
            continue;
        };
        let lifted_after = |(sale_t, _): &(i64, ReleasedSale)| nozzle.t > *sale_t;
        if nozzle.state == NozzleState::Out && last.get(&nozzle.fp).is_some_and(lifted_after) {
            last.remove(&nozzle.fp);
        }
    }
    last.into_iter().map(|(fp, (_, s))| (fp, s)).collect()
}

impl Station {
    /// Takes over what the outbox holds from before this start. Call once, before [`Station::run`].
    pub async fn restore(&mut self) -> Result<Restored, StationError> {
        let restored = Restored {
            hours: self.restore_hourly().await?,
            released: self.restore_released_sales().await?,
            held: self.restore_held_sales().await?,
        };
        if restored.hours > 0 {
            info!(
                hours = restored.hours,
                "hourly summaries from before the last stop available on demand"
            );
        }
        if restored.held > 0 {
            info!(
                restored = restored.held,
                "sales held from before the last stop go to the matcher again"
            );
        }
        Ok(restored)
    }

    /// Per fuelling point, the last sale sent before this start that the pump may still show.
    async fn restore_released_sales(&mut self) -> Result<usize, StationError> {
        let outbox = self.writer.outbox().clone();
        let (sales, nozzles) = tokio::task::spawn_blocking(move || {
            Ok::<_, outbox::OutboxError>((
                outbox.recent_bodies(wire::Stream::Sale.name(), RELEASED_LOOKBACK)?,
                outbox.recent_bodies(wire::Stream::Nozzle.name(), 4 * RELEASED_LOOKBACK)?,
            ))
        })
        .await?
        .map_err(crate::StationError::outbox("reading sales already sent"))?;
        self.earlier_run.released_last = last_released_per_fp(&sales, &nozzles);
        Ok(self.earlier_run.released_last.len())
    }

    /// Sales that were held when the agent last stopped (a crash or power cut during their grace
    /// period) go back to the matcher, so each still leaves the station exactly once.
    async fn restore_held_sales(&mut self) -> Result<usize, StationError> {
        let outbox = self.writer.outbox().clone();
        let held = tokio::task::spawn_blocking(move || outbox.held())
            .await?
            .map_err(crate::StationError::outbox("reading held sales"))?;
        let mut restored = 0;
        for (key, body) in held {
            match serde_json::from_value::<Sale>(body) {
                Ok(sale) if key.starts_with("sale:") => {
                    self.matcher
                        .observe_dispenser(&DispenserEvent::SaleCompleted(sale.clone()));
                    self.earlier_run.held_sales.push(sale);
                    restored += 1;
                }
                Ok(_) => {}
                Err(e) => warn!(key, error = %e, "held item is not a sale; left in place"),
            }
        }
        Ok(restored)
    }

    /// Puts the hourly summaries the outbox still holds back into the analytics, so HQ's
    /// `hourly` command answers for hours closed before a restart. Returns how many.
    async fn restore_hourly(&mut self) -> Result<usize, StationError> {
        let outbox = self.writer.outbox().clone();
        let keep = self.analytics.config().keep_hours;
        let bodies = tokio::task::spawn_blocking(move || {
            outbox.recent_bodies(wire::Stream::Hourly.name(), keep)
        })
        .await?
        .map_err(crate::StationError::outbox("reading hourly summaries"))?;
        let mut restored = 0;
        for body in bodies {
            match serde_json::from_value::<wire::HourSummary>(body) {
                Ok(summary) => {
                    self.analytics.restore_hour(summary);
                    restored += 1;
                }
                Err(e) => warn!(error = %e, "stored hourly summary not understood; skipped"),
            }
        }
        Ok(restored)
    }
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
