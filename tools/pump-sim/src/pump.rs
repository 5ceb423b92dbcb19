//! One simulated fuelling point at the application level: status, nozzles, filling progress and
//! totalizers. Driven by the schedule (lift/hang-up) and by the master's CD transactions; what it
//! has to say queues up as DC transactions for the next POLL. Time is seconds since sim start.

use dart_protocol::{Command, Decimals, MasterTransaction, PumpStatus, PumpTransaction};
use forecourt_events::Decimal;

use crate::scenario::PumpSpec;

/// DC2 progress is reported this often while filling.
const PROGRESS_EVERY_S: f64 = 0.5;

/// Ground truth of what a pump sold, for tests and field checks to compare a master's report with.
#[derive(Debug, Clone, PartialEq)]
pub struct SimRecord {
    pub t_s: f64,
    pub fp: u8,
    pub nozzle: u8,
    pub kind: SimRecordKind,
    pub volume: Decimal,
    pub amount: Decimal,
    pub price: Decimal,
    /// The nozzle's volume totalizer after this record.
    pub total: Decimal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimRecordKind {
    /// A completed fill, reported to the master as a sale.
    Sale,
    /// Fuel that flowed before the pump restarted mid-fill: counted by the totalizer, never
    /// reported as a sale.
    LostFill,
}

impl SimRecord {
    /// One JSON object, no newline.
    pub fn to_json(&self) -> String {
        let kind = match self.kind {
            SimRecordKind::Sale => "sale",
            SimRecordKind::LostFill => "lost_fill",
        };
        format!(
            r#"{{"kind":"{kind}","t_s":{:.3},"fp":{},"nozzle":{},"volume":"{}","amount":"{}","price":"{}","total":"{}"}}"#,
            self.t_s, self.fp, self.nozzle, self.volume, self.amount, self.price, self.total
        )
    }
}

#[derive(Debug, Clone)]
struct ActiveFill {
    nozzle: u8,
    end_s: f64,
    target_volume: u64,
    /// When fuel started flowing (after authorization).
    flow_start_s: Option<f64>,
    /// Fuel no longer flows (completed by STOP); the nozzle is still out until `end_s`.
    finished: bool,
}

#[derive(Debug, Clone)]
pub struct SimPump {
    pub fp: u8,
    pub address: u8,
    decimals: Decimals,
    prices: Vec<u64>,
    self_authorize: bool,
    status: PumpStatus,
    nozzle_out: Option<u8>,
    fill: Option<ActiveFill>,
    volume: u64,
    amount: u64,
    last_progress_s: f64,
    /// Volume totalizer per logical nozzle (index 0 = nozzle 1), raw volume units.
    totals: Vec<u64>,
    outbox: Vec<PumpTransaction>,
    /// Sent in the block after the next one (a final DC2 the pump sends after the completion).
    later: Vec<PumpTransaction>,
    /// The next sale's final DC2 goes to `later`.
    late_final_dc2: bool,
    records: Vec<SimRecord>,
}

impl SimPump {
    pub fn new(spec: &PumpSpec) -> Self {
        let d = spec.decimals;
        let prices = spec.raw_prices();
        SimPump {
            fp: spec.fp,
            address: spec.address(),
            decimals: Decimals {
                volume: d.volume,
                amount: d.amount,
                price: d.price,
            },
            totals: vec![0; prices.len().max(1)],
            prices,
            self_authorize: spec.self_authorize,
            status: PumpStatus::Reset,
            nozzle_out: None,
            fill: None,
            volume: 0,
            amount: 0,
            last_progress_s: 0.0,
            later: Vec::new(),
            late_final_dc2: false,
            outbox: Vec::new(),
            records: Vec::new(),
        }
    }

    pub fn status(&self) -> PumpStatus {
        self.status
    }

    pub fn nozzle_count(&self) -> u8 {
        self.prices.len() as u8
    }

    pub fn decimals(&self) -> Decimals {
        self.decimals
    }

    /// Idle and nobody at the pump: a new customer may lift a nozzle.
    pub fn is_free(&self) -> bool {
        self.fill.is_none() && self.status == PumpStatus::Reset
    }

    /// Ground-truth records since the last call.
    pub fn take_records(&mut self) -> Vec<SimRecord> {
        std::mem::take(&mut self.records)
    }

    /// Fuel is flowing (a restart now loses a fill).
    pub fn is_flowing(&self) -> bool {
        self.fill
            .as_ref()
            .is_some_and(|f| f.flow_start_s.is_some() && !f.finished)
    }

    /// Power blip: the pump forgets the fill in progress and comes back idle, nozzle in. The
    /// fuel that flowed stays counted in the totalizer (the meter turned) but is never reported
    /// as a sale. Returns false (and does nothing) if no fuel is flowing.
    pub fn restart(&mut self, now_s: f64) -> bool {
        if !self.is_flowing() {
            return false;
        }
        let Some(fill) = self.fill.take() else {
            return false;
        };
        let start = fill.flow_start_s.unwrap_or(now_s);
        let frac = ((now_s - start) / (fill.end_s - start).max(1e-3)).clamp(0.0, 1.0);
        let flowed = ((fill.target_volume as f64 * frac) as u64).max(self.volume);
        self.volume = flowed;
        self.amount = self.amount_for(flowed, fill.nozzle);
        self.record(now_s, fill.nozzle, SimRecordKind::LostFill);
        self.volume = 0;
        self.amount = 0;
        self.nozzle_out = None;
        self.status = PumpStatus::Reset;
        // State lost: what was queued for the master is gone; a restarted pump reports itself.
        self.outbox.clear();
        self.outbox.push(self.dc3(fill.nozzle, false));
        self.outbox.push(PumpTransaction::Status(PumpStatus::Reset));
        tracing::info!(
            fp = self.fp,
            nozzle = fill.nozzle,
            "pump restarted mid-fill"
        );
        true
    }

    fn record(&mut self, now_s: f64, nozzle: u8, kind: SimRecordKind) {
        let i = usize::from(nozzle.max(1) - 1);
        if let Some(t) = self.totals.get_mut(i) {
            *t += self.volume;
        }
        let d = self.decimals;
        let dec = |v: u64, scale: u8| Decimal::new(i64::try_from(v).unwrap_or(i64::MAX), scale);
        self.records.push(SimRecord {
            t_s: now_s,
            fp: self.fp,
            nozzle,
            kind,
            volume: dec(self.volume, d.volume),
            amount: dec(self.amount, d.amount),
            price: dec(self.price(nozzle), d.price),
            total: dec(self.totals.get(i).copied().unwrap_or(0), d.volume),
        });
    }

    /// DC transactions waiting for the next POLL; what was held for later waits for the one
    /// after.
    pub fn take_outbox(&mut self) -> Vec<PumpTransaction> {
        let out = std::mem::take(&mut self.outbox);
        self.outbox.append(&mut self.later);
        out
    }

    /// Whether the next sale's final DC2 comes one block after its completion.
    pub fn set_late_final_dc2(&mut self, late: bool) {
        self.late_final_dc2 = late;
    }

    pub fn has_output(&self) -> bool {
        !self.outbox.is_empty()
    }

    fn price(&self, nozzle: u8) -> u64 {
        let i = usize::from(nozzle.max(1) - 1);
        self.prices.get(i).copied().unwrap_or(0)
    }

    fn dc3(&self, nozzle: u8, out: bool) -> PumpTransaction {
        PumpTransaction::PriceNozzle {
            price: self.price(nozzle),
            nozzle,
            nozzle_out: out,
        }
    }

    fn set_status(&mut self, st: PumpStatus) {
        self.status = st;
        self.outbox.push(PumpTransaction::Status(st));
    }

    /// Amount for a volume at the nozzle's price, rounded half up to the amount decimals.
    pub fn amount_for(&self, volume: u64, nozzle: u8) -> u64 {
        dart_protocol::amount_for(volume, self.price(nozzle), self.decimals).unwrap_or(u64::MAX)
    }

    /// A customer lifts `nozzle`; the fill delivers `volume` (raw) by `end_s` if authorized.
    /// Returns false if the pump is busy with another customer.
    pub fn lift(&mut self, now_s: f64, nozzle: u8, end_s: f64, volume: u64) -> bool {
        if self.fill.is_some() {
            return false;
        }
        self.fill = Some(ActiveFill {
            nozzle,
            end_s,
            target_volume: volume,
            flow_start_s: None,
            finished: false,
        });
        self.nozzle_out = Some(nozzle);
        self.outbox.push(self.dc3(nozzle, true));
        self.outbox.push(PumpTransaction::Status(self.status));
        if self.status == PumpStatus::Authorized {
            self.start_flow(now_s);
        } else if self.self_authorize && self.status == PumpStatus::Reset {
            self.set_status(PumpStatus::Authorized);
            self.start_flow(now_s);
        }
        true
    }

    fn start_flow(&mut self, now_s: f64) {
        let Some(fill) = self.fill.as_mut() else {
            return;
        };
        fill.flow_start_s = Some(now_s);
        self.volume = 0;
        self.amount = 0;
        self.last_progress_s = now_s;
        self.set_status(PumpStatus::Filling);
        self.outbox.push(PumpTransaction::FillingInfo {
            volume: 0,
            amount: 0,
        });
    }

    /// Advances filling progress and hangs up at the fill's end time.
    pub fn tick(&mut self, now_s: f64) {
        let Some(fill) = self.fill.clone() else {
            return;
        };
        if now_s >= fill.end_s {
            self.hang_up(now_s);
            return;
        }
        if let (Some(start), false) = (fill.flow_start_s, fill.finished) {
            if now_s - self.last_progress_s >= PROGRESS_EVERY_S {
                self.last_progress_s = now_s;
                let span = (fill.end_s - start).max(1e-3);
                let frac = ((now_s - start) / span).clamp(0.0, 1.0);
                self.volume = (fill.target_volume as f64 * frac) as u64;
                self.amount = self.amount_for(self.volume, fill.nozzle);
                // Only the latest progress matters if the master has not polled meanwhile.
                self.outbox
                    .retain(|t| !matches!(t, PumpTransaction::FillingInfo { .. }));
                self.outbox.push(PumpTransaction::FillingInfo {
                    volume: self.volume,
                    amount: self.amount,
                });
            }
        }
    }

    fn hang_up(&mut self, now_s: f64) {
        let Some(fill) = self.fill.take() else {
            return;
        };
        self.nozzle_out = None;
        if fill.flow_start_s.is_some() && !fill.finished {
            self.volume = fill.target_volume;
            self.amount = self.amount_for(self.volume, fill.nozzle);
            let final_dc2 = PumpTransaction::FillingInfo {
                volume: self.volume,
                amount: self.amount,
            };
            if self.late_final_dc2 {
                // The final DC2 replaces any progress not yet polled, as it does in the
                // outbox: a DC2 in the completion's block would count as final.
                self.outbox
                    .retain(|t| !matches!(t, PumpTransaction::FillingInfo { .. }));
                self.later.push(final_dc2);
            } else {
                self.outbox.push(final_dc2);
            }
            self.outbox.push(self.dc3(fill.nozzle, false));
            self.finish_sale(now_s, fill.nozzle);
        } else {
            self.outbox.push(self.dc3(fill.nozzle, false));
        }
    }

    fn finish_sale(&mut self, now_s: f64, nozzle: u8) {
        self.record(now_s, nozzle, SimRecordKind::Sale);
        self.set_status(PumpStatus::FillingCompleted);
        let d = self.decimals;
        tracing::info!(
            fp = self.fp,
            nozzle,
            volume = %Decimal::new(self.volume as i64, d.volume),
            amount = %Decimal::new(self.amount as i64, d.amount),
            price = %Decimal::new(self.price(nozzle) as i64, d.price),
            "sale"
        );
    }

    /// Applies one master transaction.
    pub fn handle(&mut self, now_s: f64, tx: &MasterTransaction) {
        match tx {
            MasterTransaction::Command(c) => self.command(now_s, *c),
            MasterTransaction::Prices(p) if !p.is_empty() => {
                self.prices = p.clone();
                self.totals.resize(self.prices.len(), 0);
            }
            MasterTransaction::RequestTotals { nozzle } => {
                let total = self
                    .totals
                    .get(usize::from(nozzle.max(&1) - 1))
                    .copied()
                    .unwrap_or(0);
                self.outbox.push(PumpTransaction::VolumeTotals {
                    nozzle: *nozzle,
                    total,
                    total1: total,
                    total2: 0,
                });
            }
            other => tracing::debug!(fp = self.fp, ?other, "ignored master transaction"),
        }
    }

    fn command(&mut self, now_s: f64, c: Command) {
        match c {
            Command::ReturnStatus => {
                if let Some(n) = self.nozzle_out {
                    self.outbox.push(self.dc3(n, true));
                }
                self.outbox.push(PumpTransaction::Status(self.status));
            }
            Command::ReturnFillingInfo => self.outbox.push(PumpTransaction::FillingInfo {
                volume: self.volume,
                amount: self.amount,
            }),
            Command::ReturnIdentity => self.outbox.push(PumpTransaction::Identity(
                1_000_000_000 + u64::from(self.fp),
            )),
            Command::Authorize => {
                if self.status == PumpStatus::Reset {
                    self.set_status(PumpStatus::Authorized);
                    if self.fill.as_ref().is_some_and(|f| f.flow_start_s.is_none()) {
                        self.start_flow(now_s);
                    }
                }
            }
            Command::Reset => {
                // A real pump refuses RESET while fuel flows.
                if self.status != PumpStatus::Filling && self.status != PumpStatus::Reset {
                    self.set_status(PumpStatus::Reset);
                }
            }
            Command::Stop => {
                if self.status == PumpStatus::Filling {
                    let nozzle = self.fill.as_ref().map_or(1, |f| f.nozzle);
                    if let Some(f) = self.fill.as_mut() {
                        f.finished = true;
                    }
                    self.outbox.push(PumpTransaction::FillingInfo {
                        volume: self.volume,
                        amount: self.amount,
                    });
                    self.finish_sale(now_s, nozzle);
                }
            }
            Command::SwitchOff => self.set_status(PumpStatus::SwitchedOff),
            other => tracing::debug!(fp = self.fp, ?other, "ignored command"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{DecimalsSpec, PumpSpec};

    fn pump(self_authorize: bool) -> SimPump {
        SimPump::new(&PumpSpec {
            fp: 1,
            address: Some(0x50),
            decimals: DecimalsSpec::default(),
            prices: vec![Decimal::new(785, 2), Decimal::new(832, 2)],
            self_authorize,
        })
    }

    #[test]
    fn amount_rounds_half_up() {
        let p = pump(false);
        assert_eq!(p.amount_for(3000, 1), 23550);
        // 0.01 l * 7.85 = 0.0785 -> 0.08
        assert_eq!(p.amount_for(1, 1), 8);
        assert_eq!(p.amount_for(2, 1), 16); // 0.157 -> 0.16
    }

    #[test]
    fn authorized_fill_ends_completed_with_exact_totals() {
        let mut p = pump(false);
        assert!(p.lift(0.0, 1, 10.0, 3000));
        p.handle(0.1, &MasterTransaction::Command(Command::Authorize));
        assert_eq!(p.status(), PumpStatus::Filling);
        p.tick(5.0);
        p.take_outbox();
        p.tick(10.0);
        assert_eq!(
            p.take_outbox(),
            vec![
                PumpTransaction::FillingInfo {
                    volume: 3000,
                    amount: 23550
                },
                PumpTransaction::PriceNozzle {
                    price: 785,
                    nozzle: 1,
                    nozzle_out: false
                },
                PumpTransaction::Status(PumpStatus::FillingCompleted),
            ]
        );
        p.handle(10.1, &MasterTransaction::Command(Command::Reset));
        assert_eq!(p.status(), PumpStatus::Reset);
        p.handle(10.2, &MasterTransaction::RequestTotals { nozzle: 1 });
        assert!(p.take_outbox().contains(&PumpTransaction::VolumeTotals {
            nozzle: 1,
            total: 3000,
            total1: 3000,
            total2: 0
        }));
    }

    #[test]
    fn a_late_final_dc2_comes_one_block_after_the_completion() {
        let mut p = pump(false);
        p.set_late_final_dc2(true);
        assert!(p.lift(0.0, 1, 10.0, 3000));
        p.handle(0.1, &MasterTransaction::Command(Command::Authorize));
        p.tick(5.0);
        p.take_outbox();
        // Progress the master has not polled yet when the nozzle is hung up.
        p.tick(9.5);
        p.tick(10.0);
        assert_eq!(
            p.take_outbox(),
            vec![
                PumpTransaction::PriceNozzle {
                    price: 785,
                    nozzle: 1,
                    nozzle_out: false
                },
                PumpTransaction::Status(PumpStatus::FillingCompleted),
            ]
        );
        assert_eq!(
            p.take_outbox(),
            vec![PumpTransaction::FillingInfo {
                volume: 3000,
                amount: 23550
            }]
        );
    }

    #[test]
    fn unauthorized_lift_sells_nothing() {
        let mut p = pump(false);
        p.lift(0.0, 2, 3.0, 1000);
        p.tick(3.0);
        assert_eq!(p.status(), PumpStatus::Reset);
        assert!(p.is_free());
    }

    #[test]
    fn self_authorize_fills() {
        let mut p = pump(true);
        p.lift(0.0, 2, 3.0, 1000);
        p.tick(3.0);
        assert_eq!(p.status(), PumpStatus::FillingCompleted);
    }

    #[test]
    fn restart_mid_fill_counts_fuel_but_reports_no_sale() {
        let mut p = pump(true);
        p.lift(0.0, 1, 10.0, 3000);
        p.tick(4.0);
        p.take_outbox();
        assert!(p.restart(5.0));
        assert_eq!(
            p.take_outbox(),
            vec![
                PumpTransaction::PriceNozzle {
                    price: 785,
                    nozzle: 1,
                    nozzle_out: false
                },
                PumpTransaction::Status(PumpStatus::Reset),
            ]
        );
        assert!(p.is_free());
        let rec = p.take_records();
        assert_eq!(rec.len(), 1);
        assert_eq!(rec[0].kind, SimRecordKind::LostFill);
        assert_eq!(rec[0].volume, Decimal::new(1500, 2));
        assert_eq!(rec[0].total, Decimal::new(1500, 2));
        assert!(!p.restart(6.0), "nothing flows any more");
        p.handle(6.0, &MasterTransaction::RequestTotals { nozzle: 1 });
        assert!(p.take_outbox().contains(&PumpTransaction::VolumeTotals {
            nozzle: 1,
            total: 1500,
            total1: 1500,
            total2: 0
        }));
        assert!(rec[0]
            .to_json()
            .starts_with(r#"{"kind":"lost_fill","t_s":5.000,"fp":1"#));
    }

    #[test]
    fn sales_are_recorded() {
        let mut p = pump(true);
        p.lift(0.0, 2, 3.0, 1000);
        p.tick(3.0);
        let rec = p.take_records();
        assert_eq!(rec.len(), 1);
        assert_eq!(rec[0].kind, SimRecordKind::Sale);
        assert_eq!(
            (rec[0].volume, rec[0].amount, rec[0].price),
            (
                Decimal::new(1000, 2),
                Decimal::new(8320, 2),
                Decimal::new(832, 2)
            )
        );
    }
}
