//! The forecourt behind a simulated station system (an IFSF dispenser node, an FDC controller),
//! without a wire: fuelling points driven by the scenario's fills and random customers, a buffer
//! of completed sales per point numbered 1..=9999 (the newest [`BUFFER_LEN`] kept), and the
//! station's own POS clearing each sale a while after it completed. The wire faces
//! ([`crate::ifsf_device`], [`crate::fdc_device`]) turn its [`Change`]s into messages. Time is
//! seconds since sim start.

use std::collections::VecDeque;

use dart_protocol::Decimals;
use forecourt_events::Decimal;
use ifsf_protocol::TransactionState;

use crate::pump::{SimRecord, SimRecordKind};
use crate::scenario::PumpSpec;
use crate::schedule::{CustomerProfile, RandomCustomers, Schedule};
use crate::Scenario;

/// Sales a point keeps (IFSF allows 1..=15 historic transactions).
pub const BUFFER_LEN: usize = 15;
/// Fill progress is told this often while fuelling.
const RUNNING_EVERY_S: f64 = 1.0;

/// What changed on the forecourt, for the wire face to tell its client.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A point's nozzle came out or went back.
    State { point: u8 },
    /// Fill in progress.
    Running {
        point: u8,
        nozzle: u8,
        amount: Decimal,
        volume: Decimal,
    },
    /// A sale completed, or its state changed (cleared by the POS).
    Transaction { point: u8, seq: u16 },
}

/// A completed sale as the point's buffer holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Transaction {
    pub seq: u16,
    pub nozzle: u8,
    /// The nozzle's product number (the simulator numbers products by nozzle).
    pub product: u32,
    pub amount: Decimal,
    pub volume: Decimal,
    pub price: Decimal,
    pub state: TransactionState,
    /// When the POS clears it, seconds since start.
    clear_at_s: f64,
}

#[derive(Debug, Clone)]
struct Fill {
    nozzle: u8,
    start_s: f64,
    end_s: f64,
    /// Raw volume units at the end.
    volume: u64,
    last_running_s: f64,
}

#[derive(Debug, Clone)]
struct Point {
    point: u8,
    decimals: Decimals,
    /// Raw price per nozzle (index 0 = nozzle 1).
    prices: Vec<u64>,
    fill: Option<Fill>,
    /// The latest sale's sequence number (0: none yet).
    seq: u16,
    buffer: VecDeque<Transaction>,
    totals: Vec<u64>,
}

impl Point {
    fn new(spec: &PumpSpec) -> Self {
        let d = spec.decimals;
        let prices = spec.raw_prices();
        Point {
            point: spec.fp,
            decimals: Decimals {
                volume: d.volume,
                amount: d.amount,
                price: d.price,
            },
            totals: vec![0; prices.len()],
            prices,
            fill: None,
            seq: 0,
            buffer: VecDeque::new(),
        }
    }

    fn price(&self, nozzle: u8) -> u64 {
        let i = usize::from(nozzle.max(1) - 1).min(self.prices.len() - 1);
        self.prices[i]
    }

    fn amount(&self, volume: u64, nozzle: u8) -> Decimal {
        let raw = dart_protocol::amount_for(volume, self.price(nozzle), self.decimals).unwrap_or(0);
        decimal(raw, self.decimals.amount)
    }
}

#[derive(Debug)]
pub struct Forecourt {
    points: Vec<Point>,
    schedule: Schedule,
    random: Option<RandomCustomers>,
    clear_after_s: f64,
    records: Vec<SimRecord>,
}

impl Forecourt {
    /// `scenario`'s pumps numbered 1..=`max_point` are the points (others are left out).
    pub fn new(
        scenario: &Scenario,
        max_point: u8,
        clear_after_s: f64,
        random: Option<(u64, CustomerProfile)>,
    ) -> Self {
        let points: Vec<Point> = scenario
            .pumps
            .iter()
            .filter(|p| (1..=max_point).contains(&p.fp))
            .map(Point::new)
            .collect();
        let numbers: Vec<u8> = points.iter().map(|p| p.point).collect();
        Forecourt {
            schedule: Schedule::from_scenario(scenario),
            random: random
                .map(|(seed, profile)| RandomCustomers::with_profile(seed, &numbers, profile)),
            points,
            clear_after_s,
            records: Vec::new(),
        }
    }

    pub fn points(&self) -> Vec<u8> {
        self.points.iter().map(|p| p.point).collect()
    }

    /// Ground-truth sales since the last call.
    pub fn take_records(&mut self) -> Vec<SimRecord> {
        std::mem::take(&mut self.records)
    }

    /// `point`'s nozzle out now (if any) and its latest sale's number (0: none), if it exists.
    pub fn status(&self, point: u8) -> Option<(Option<u8>, u16)> {
        let p = self.points.iter().find(|p| p.point == point)?;
        Some((p.fill.as_ref().map(|f| f.nozzle), p.seq))
    }

    pub fn transaction(&self, point: u8, seq: u16) -> Option<&Transaction> {
        let p = self.points.iter().find(|p| p.point == point)?;
        p.buffer.iter().find(|t| t.seq == seq)
    }

    /// Every sale held, by point.
    pub fn transactions(&self) -> impl Iterator<Item = (u8, &Transaction)> {
        self.points
            .iter()
            .flat_map(|p| p.buffer.iter().map(move |t| (p.point, t)))
    }

    /// Starts due customers, advances fills, completes sales and lets the POS clear them.
    pub fn tick(&mut self, now_s: f64) -> Vec<Change> {
        let mut changes = Vec::new();
        let mut lifts = self.schedule.due(now_s);
        if let Some(random) = self.random.as_mut() {
            for p in &self.points {
                let nozzles = p.prices.len() as u8;
                if let Some(l) =
                    random.due(now_s, p.point, p.fill.is_none(), nozzles, p.decimals.volume)
                {
                    lifts.push(l);
                }
            }
        }
        for lift in lifts {
            let Some(p) = self.points.iter_mut().find(|p| p.point == lift.fp) else {
                continue;
            };
            if p.fill.is_none() {
                p.fill = Some(Fill {
                    nozzle: lift.nozzle,
                    start_s: now_s,
                    end_s: lift.end_s,
                    volume: lift.volume,
                    last_running_s: now_s,
                });
                changes.push(Change::State { point: p.point });
            }
        }
        for i in 0..self.points.len() {
            self.advance(i, now_s, &mut changes);
            self.clear_due(i, now_s, &mut changes);
        }
        changes
    }

    fn advance(&mut self, i: usize, now_s: f64, changes: &mut Vec<Change>) {
        let p = &mut self.points[i];
        let Some(fill) = p.fill.clone() else {
            return;
        };
        if now_s >= fill.end_s {
            p.fill = None;
            changes.push(Change::State { point: p.point });
            self.complete(i, &fill, now_s, changes);
        } else if now_s - fill.last_running_s >= RUNNING_EVERY_S {
            if let Some(f) = p.fill.as_mut() {
                f.last_running_s = now_s;
            }
            let span = (fill.end_s - fill.start_s).max(1e-3);
            let share = ((now_s - fill.start_s) / span).clamp(0.0, 1.0);
            let volume = (fill.volume as f64 * share) as u64;
            changes.push(Change::Running {
                point: p.point,
                nozzle: fill.nozzle,
                amount: p.amount(volume, fill.nozzle),
                volume: decimal(volume, p.decimals.volume),
            });
        }
    }

    fn complete(&mut self, i: usize, fill: &Fill, now_s: f64, changes: &mut Vec<Change>) {
        let p = &mut self.points[i];
        p.seq = p.seq % 9999 + 1;
        let nozzle_index = usize::from(fill.nozzle.max(1) - 1).min(p.totals.len() - 1);
        p.totals[nozzle_index] += fill.volume;
        let sale = Transaction {
            seq: p.seq,
            nozzle: fill.nozzle,
            product: u32::from(fill.nozzle),
            amount: p.amount(fill.volume, fill.nozzle),
            volume: decimal(fill.volume, p.decimals.volume),
            price: decimal(p.price(fill.nozzle), p.decimals.price),
            state: TransactionState::Payable,
            clear_at_s: now_s + self.clear_after_s,
        };
        self.records.push(SimRecord {
            t_s: now_s,
            fp: p.point,
            nozzle: fill.nozzle,
            kind: SimRecordKind::Sale,
            volume: sale.volume,
            amount: sale.amount,
            price: sale.price,
            total: decimal(p.totals[nozzle_index], p.decimals.volume),
        });
        if p.buffer.len() >= BUFFER_LEN {
            p.buffer.pop_front();
        }
        p.buffer.push_back(sale);
        changes.push(Change::Transaction {
            point: p.point,
            seq: p.seq,
        });
    }

    fn clear_due(&mut self, i: usize, now_s: f64, changes: &mut Vec<Change>) {
        let p = &mut self.points[i];
        for t in &mut p.buffer {
            if t.state == TransactionState::Payable && now_s >= t.clear_at_s {
                t.state = TransactionState::Cleared;
                changes.push(Change::Transaction {
                    point: p.point,
                    seq: t.seq,
                });
            }
        }
    }
}

pub(crate) fn decimal(raw: u64, scale: u8) -> Decimal {
    Decimal::new(i64::try_from(raw).unwrap_or(i64::MAX), scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fill_becomes_a_held_sale_then_the_pos_clears_it() {
        let scenario = Scenario::from_toml(
            "[[pump]]\nfp = 1\nprices = [\"7.99\"]\n[[car]]\nfp = 1\n[car.fill]\nnozzle = 1\nstart_s = 1.0\nend_s = 11.0\nvolume = \"20.00\"\n",
        )
        .unwrap();
        let mut forecourt = Forecourt::new(&scenario, 4, 5.0, None);
        let mut changes = Vec::new();
        for s in 1..=20 {
            changes.extend(forecourt.tick(f64::from(s)));
        }
        assert_eq!(changes.first(), Some(&Change::State { point: 1 }));
        let sales: Vec<&Change> = changes
            .iter()
            .filter(|c| matches!(c, Change::Transaction { .. }))
            .collect();
        assert_eq!(sales.len(), 2, "completed, then cleared: {changes:?}");
        let held = forecourt.transaction(1, 1).unwrap();
        assert_eq!(held.amount.to_string(), "159.80");
        assert_eq!(held.state, TransactionState::Cleared);
        assert_eq!(forecourt.status(1), Some((None, 1)));
        assert_eq!(forecourt.take_records().len(), 1);
    }
}
