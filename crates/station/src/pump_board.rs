//! Each fuelling point as its sale source last told it, for the health report: online or not
//! since when, and its sales since start. A fuelling point the config lists that never came
//! online shows so (a serial path or an address that is wrong looks like this to HQ). With it,
//! how its zones fitted its latest sales (the analytics' zone check, set by the station).

use std::collections::BTreeMap;
use std::sync::Mutex;

use forecourt_events::{DispenserEvent, FpNumber, UnixMillis};
use wire::{FpHealth, FpZoneCheck};

#[derive(Debug, Default)]
pub struct PumpBoard {
    points: Mutex<BTreeMap<FpNumber, FpHealth>>,
    zones: Mutex<BTreeMap<FpNumber, FpZoneCheck>>,
}

impl PumpBoard {
    /// Notes what `event` says of its fuelling point.
    pub fn observe(&self, event: &DispenserEvent) {
        let mut points = self.points.lock().unwrap_or_else(|p| p.into_inner());
        match *event {
            DispenserEvent::PumpOnline { t, fp } => set_online(point(&mut points, fp), true, t),
            DispenserEvent::PumpOffline { t, fp } => set_online(point(&mut points, fp), false, t),
            DispenserEvent::SaleCompleted(ref sale) => {
                let p = point(&mut points, sale.fp);
                p.sales += 1;
                p.last_sale_t = Some(p.last_sale_t.map_or(sale.t, |t| t.max(sale.t)));
            }
            _ => {}
        }
    }

    /// The zone check's latest report, per fuelling point.
    pub fn set_zone_check(&self, report: BTreeMap<FpNumber, FpZoneCheck>) {
        *self.zones.lock().unwrap_or_else(|p| p.into_inner()) = report;
    }

    /// Every fuelling point in `configured` (never heard of: offline, no time) and every other
    /// one a source told of, by number, with its zone check.
    pub fn snapshot(&self, configured: &[FpNumber]) -> Vec<FpHealth> {
        let points = self.points.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: BTreeMap<FpNumber, FpHealth> =
            configured.iter().map(|&fp| (fp, unheard(fp))).collect();
        out.extend(points.iter().map(|(fp, p)| (*fp, p.clone())));
        let zones = self.zones.lock().unwrap_or_else(|p| p.into_inner());
        for (fp, point) in &mut out {
            point.zones = zones.get(fp).cloned().unwrap_or_default();
        }
        out.into_values().collect()
    }
}

/// A fuelling point no source has told of.
fn unheard(fp: FpNumber) -> FpHealth {
    FpHealth {
        fp,
        online: false,
        since_t: None,
        sales: 0,
        last_sale_t: None,
        zones: FpZoneCheck::default(),
    }
}

fn point(points: &mut BTreeMap<FpNumber, FpHealth>, fp: FpNumber) -> &mut FpHealth {
    points.entry(fp).or_insert_with(|| unheard(fp))
}

fn set_online(point: &mut FpHealth, online: bool, t: UnixMillis) {
    if point.online != online || point.since_t.is_none() {
        point.online = online;
        point.since_t = Some(t);
    }
}

#[cfg(test)]
mod tests {
    use forecourt_events::Sale;

    use super::*;

    fn sale(fp: FpNumber, t: UnixMillis) -> DispenserEvent {
        DispenserEvent::SaleCompleted(Sale {
            t,
            fp,
            nozzle: 1,
            nozzle_out_t: None,
            grade: None,
            volume: "10.00".parse().unwrap(),
            amount: "78.50".parse().unwrap(),
            price: "7.85".parse().unwrap(),
            end: None,
            recovered: false,
            totalizer: None,
            source_key: None,
        })
    }

    #[test]
    fn each_point_shows_its_link_sales_and_zone_check_and_an_unheard_one_shows_offline() {
        let board = PumpBoard::default();
        board.observe(&DispenserEvent::PumpOnline { t: 10, fp: 1 });
        board.observe(&sale(1, 50));
        board.observe(&sale(1, 40)); // late: the newest stays
        board.observe(&DispenserEvent::PumpOnline { t: 20, fp: 2 });
        board.observe(&DispenserEvent::PumpOnline { t: 25, fp: 2 }); // no change: since stays
        board.observe(&DispenserEvent::PumpOffline { t: 60, fp: 2 });
        let alarmed = FpZoneCheck {
            sales: 4,
            other_zone: 3,
            alarm: Some("FP 1's zones look misplaced".into()),
            ..FpZoneCheck::default()
        };
        board.set_zone_check([(1, alarmed.clone())].into());
        let got = board.snapshot(&[1, 2, 3]);
        let row = |fp, online, since_t, sales, last_sale_t| FpHealth {
            fp,
            online,
            since_t,
            sales,
            last_sale_t,
            zones: if fp == 1 {
                alarmed.clone()
            } else {
                FpZoneCheck::default()
            },
        };
        assert_eq!(
            got,
            vec![
                row(1, true, Some(10), 2, Some(50)),
                row(2, false, Some(60), 0, None),
                row(3, false, None, 0, None),
            ]
        );
    }
}
