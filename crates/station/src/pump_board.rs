//! Each fuelling point as its sale source last told it, for the health report: online or not
//! since when, and its sales since start. A fuelling point the config lists that never came
//! online shows so (a serial path or an address that is wrong looks like this to HQ).

use std::collections::BTreeMap;
use std::sync::Mutex;

use forecourt_events::{DispenserEvent, FpNumber, UnixMillis};
use wire::FpHealth;

#[derive(Debug, Default)]
pub struct PumpBoard {
    points: Mutex<BTreeMap<FpNumber, FpHealth>>,
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

    /// Every fuelling point in `configured` (never heard of: offline, no time) and every other
    /// one a source told of, by number.
    pub fn snapshot(&self, configured: &[FpNumber]) -> Vec<FpHealth> {
        let points = self.points.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: BTreeMap<FpNumber, FpHealth> =
            configured.iter().map(|&fp| (fp, unheard(fp))).collect();
        out.extend(points.iter().map(|(fp, p)| (*fp, p.clone())));
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
    fn each_point_shows_its_link_and_sales_and_an_unheard_one_shows_offline() {
        let board = PumpBoard::default();
        board.observe(&DispenserEvent::PumpOnline { t: 10, fp: 1 });
        board.observe(&sale(1, 50));
        board.observe(&sale(1, 40)); // late: the newest stays
        board.observe(&DispenserEvent::PumpOnline { t: 20, fp: 2 });
        board.observe(&DispenserEvent::PumpOnline { t: 25, fp: 2 }); // no change: since stays
        board.observe(&DispenserEvent::PumpOffline { t: 60, fp: 2 });
        let got = board.snapshot(&[1, 2, 3]);
        let row = |fp, online, since_t, sales, last_sale_t| FpHealth {
            fp,
            online,
            since_t,
            sales,
            last_sale_t,
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
