//! Watch-only IFSF POS-FDC as pure state: the controller's XML messages in, dispenser events out,
//! with the only requests a watch-only client makes: log on, ask for the sales the controller
//! holds, and the `POS_Ready` heartbeat. A lock, unlock or clear cannot even be built
//! (`ifsf_fdc::RequestKind` has none). No sockets, no clocks: the driver
//! ([`crate::IfsfFdcDriver`]) passes the time in.
//!
//! A sale is a `FuelSaleTrx` (notified, or in the answer to `GetFuelSaleTrxDetails`) that is
//! payable, locked or cleared. After each logon, and every `reconcile_interval_s`, the client asks
//! for the details of every sale the controller holds, so a notification missed (a link drop,
//! a controller that notifies only the POS that locked the sale) is made up for. A sale already
//! reported in this run is not reported again (by pump, sequence number, volume and amount); the
//! station recognises one reported before a restart by its source key.
//!
//! Nozzle out / in come from `FPStateChange` notifications (see `ifsf_fdc::FpStateChange` for
//! what is unverified); a sale seen live carries the start of the fill it ends.

use std::collections::BTreeMap;

use forecourt_events::{DispenserEvent, UnixMillis};
use ifsf_fdc::{
    pos_ready, service_request, Client, FpStateChange, FuelSaleTrx, Inbound, RequestKind, TrxState,
};

use crate::fdc_config::IfsfFdcConfig;
use crate::point_memory::{FoundSale, PointMemory};

/// Requests waiting for their response, at most (the oldest are forgotten).
const PENDING_MAX: usize = 64;

/// What one input produced: events for the station, XML messages for the controller.
#[derive(Debug, Default, PartialEq)]
pub struct FdcStep {
    pub events: Vec<DispenserEvent>,
    pub send: Vec<String>,
    /// The controller refused the logon: the link is of no use.
    pub refused: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FdcStats {
    pub messages: u64,
    pub unreadable: u64,
    /// Sales of pumps not configured.
    pub passed_over: u64,
    pub sales: u64,
    pub repeats: u64,
}

#[derive(Debug)]
struct PumpWatch {
    pump: u32,
    memory: PointMemory,
}

#[derive(Debug)]
pub struct FdcWatch {
    client: Client,
    pumps: Vec<PumpWatch>,
    next_request: u32,
    /// Requests sent, by id: what they asked, and whether the answer is the first look after a
    /// logon (its sales were not seen live).
    pending: BTreeMap<u32, (RequestKind, bool)>,
    stats: FdcStats,
}

impl FdcWatch {
    pub fn new(config: &IfsfFdcConfig) -> Self {
        FdcWatch {
            client: Client {
                application_sender: config.application_sender.clone(),
                workstation_id: config.workstation_id.clone(),
            },
            pumps: config
                .fps
                .iter()
                .map(|f| PumpWatch {
                    pump: f.pump,
                    memory: PointMemory::new(f.fp, f.grades.clone()),
                })
                .collect(),
            next_request: 0,
            pending: BTreeMap::new(),
            stats: FdcStats::default(),
        }
    }

    pub fn stats(&self) -> FdcStats {
        self.stats
    }

    /// A new link: log on.
    pub fn connected(&mut self, now: UnixMillis) -> FdcStep {
        self.pending.clear();
        let mut step = FdcStep::default();
        step.send
            .extend(self.request(RequestKind::LogOn, false, now));
        step
    }

    /// The link is gone: every pump is offline until the controller answers again.
    pub fn disconnected(&mut self, now: UnixMillis) -> FdcStep {
        self.pending.clear();
        FdcStep {
            events: self
                .pumps
                .iter()
                .map(|p| DispenserEvent::PumpOffline {
                    t: now,
                    fp: p.memory.fp(),
                })
                .collect(),
            ..FdcStep::default()
        }
    }

    /// The heartbeat, due every `heartbeat_interval_s`.
    pub fn heartbeat(&self) -> Option<String> {
        pos_ready(&self.client).ok()
    }

    /// Asks for every sale the controller holds, due every `reconcile_interval_s`.
    pub fn reconcile(&mut self, now: UnixMillis) -> Vec<String> {
        self.details(false, now)
    }

    pub fn on_xml(&mut self, xml: &[u8], now: UnixMillis) -> FdcStep {
        let mut step = FdcStep::default();
        self.stats.messages += 1;
        match Inbound::from_bytes(xml) {
            Ok(Inbound::FuelSale { sales, .. }) => {
                for sale in &sales {
                    self.consider(sale, false, now, &mut step);
                }
            }
            Ok(Inbound::FpState { points, .. }) => {
                for point in &points {
                    self.on_state(point, now, &mut step);
                }
            }
            Ok(Inbound::Notice { .. }) => {}
            Ok(Inbound::Response(response)) => {
                let asked = response
                    .request_id
                    .trim()
                    .parse::<u32>()
                    .ok()
                    .and_then(|id| self.pending.remove(&id));
                match asked {
                    Some((RequestKind::LogOn, _)) if response.success => {
                        step.events
                            .extend(self.pumps.iter().map(|p| DispenserEvent::PumpOnline {
                                t: now,
                                fp: p.memory.fp(),
                            }));
                        step.send.extend(self.details(true, now));
                    }
                    Some((RequestKind::LogOn, _)) => {
                        step.refused = Some(response.overall_result.clone());
                    }
                    Some((_, first_look)) => {
                        for sale in &response.sales {
                            self.consider(sale, first_look, now, &mut step);
                        }
                    }
                    // An answer to nothing asked (or forgotten): its sales still count.
                    None => {
                        for sale in &response.sales {
                            self.consider(sale, false, now, &mut step);
                        }
                    }
                }
            }
            Err(_) => self.stats.unreadable += 1,
        }
        step
    }

    fn on_state(&mut self, change: &FpStateChange, now: UnixMillis, step: &mut FdcStep) {
        let Some(p) = self.pumps.iter_mut().find(|p| p.pump == change.pump) else {
            return;
        };
        let nozzle = change.nozzle.and_then(|n| u8::try_from(n).ok());
        step.events
            .extend(p.memory.nozzle(change.nozzle_out(), nozzle, now));
    }

    fn consider(
        &mut self,
        sale: &FuelSaleTrx,
        first_look: bool,
        now: UnixMillis,
        step: &mut FdcStep,
    ) {
        if !matches!(
            sale.state,
            TrxState::Payable | TrxState::Locked | TrxState::Cleared
        ) {
            return;
        }
        let Some(p) = self.pumps.iter_mut().find(|p| p.pump == sale.pump) else {
            self.stats.passed_over += 1;
            return;
        };
        let found = FoundSale {
            seq: sale.seq,
            nozzle: u8::try_from(sale.nozzle).ok(),
            product: sale.product,
            volume: sale.volume,
            amount: sale.amount,
            price: sale.unit_price,
            seen_live: !first_look,
            source_key: format!("ifsf-fdc:{}:{}", sale.pump, sale.seq),
        };
        match p.memory.sale(found, now) {
            Some(sale) => {
                self.stats.sales += 1;
                step.events.push(DispenserEvent::SaleCompleted(sale));
            }
            None => self.stats.repeats += 1,
        }
    }

    fn details(&mut self, first_look: bool, now: UnixMillis) -> Vec<String> {
        let all = RequestKind::GetFuelSaleTrxDetails {
            pump: None,
            seq: None,
        };
        self.request(all, first_look, now).into_iter().collect()
    }

    fn request(&mut self, kind: RequestKind, first_look: bool, now: UnixMillis) -> Option<String> {
        self.next_request = self.next_request % 999_999 + 1;
        let id = self.next_request;
        if self.pending.len() >= PENDING_MAX {
            self.pending.pop_first();
        }
        self.pending.insert(id, (kind, first_look));
        service_request(&self.client, kind, id, &pos_time(now)).ok()
    }
}

/// `YYYY-MM-DDTHH:MM:SS` in UTC. *Unverified:* whether a controller wants its local time.
pub fn pos_time(t: UnixMillis) -> String {
    let secs = t.div_euclid(1000);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days to a civil date (proleptic Gregorian), after Howard Hinnant's algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use forecourt_events::Sale;

    fn watch() -> FdcWatch {
        let config: IfsfFdcConfig = toml::from_str(
            r#"
address = "127.0.0.1:4710"
header = "length_zero"
fps = [{ fp = 7, pump = 4, grades = ["92#", "95#"] }]
"#,
        )
        .unwrap();
        FdcWatch::new(&config)
    }

    fn sale_xml(root: &str, attrs: &str, seq: u32, state: &str, volume: &str) -> String {
        format!(
            r#"<{root} {attrs}><FDCdata><DeviceClass Type="FP" DeviceID="4" PumpNo="4" NozzleNo="2" TransactionSeqNo="{seq}"><State>{state}</State><ProductNo>2</ProductNo><Amount>10.00</Amount><Volume>{volume}</Volume><UnitPrice>7.99</UnitPrice></DeviceClass></FDCdata></{root}>"#
        )
    }

    fn sales(step: &FdcStep) -> Vec<&Sale> {
        step.events
            .iter()
            .filter_map(|e| match e {
                DispenserEvent::SaleCompleted(s) => Some(s),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn logon_then_the_held_sales_then_live_ones_once() {
        let mut w = watch();
        let hello = w.connected(0);
        assert!(hello.send[0].contains(r#"RequestType="LogOn""#));
        assert!(hello.send[0].contains(r#"RequestID="1""#));
        let logged_on = w.on_xml(
            br#"<ServiceResponse RequestType="LogOn" RequestID="1" OverallResult="Success"/>"#,
            1,
        );
        assert_eq!(
            logged_on.events,
            [DispenserEvent::PumpOnline { t: 1, fp: 7 }]
        );
        assert!(logged_on.send[0].contains("GetFuelSaleTrxDetails"));
        let held = sale_xml(
            "ServiceResponse",
            r#"RequestType="GetFuelSaleTrxDetails" RequestID="2" OverallResult="Success""#,
            3257,
            "Cleared",
            "1.25",
        );
        let step = w.on_xml(held.as_bytes(), 2);
        let sale = sales(&step)[0];
        assert!(sale.recovered, "held at logon: not seen live");
        assert_eq!(sale.source_key.as_deref(), Some("ifsf-fdc:4:3257"));
        assert_eq!(
            (sale.fp, sale.nozzle, sale.grade.as_deref()),
            (7, 2, Some("95#"))
        );
        let live = sale_xml(
            "FDCMessage",
            r#"MessageType="FuelSaleTrx" ApplicationSender="POS024""#,
            3258,
            "Payable",
            "0.345",
        );
        let step = w.on_xml(live.as_bytes(), 3);
        assert_eq!(sales(&step)[0].volume.to_string(), "0.345");
        assert!(!sales(&step)[0].recovered);
        // Locked by a POS, then read again by a reconcile: the same sale.
        let locked = live.replace("Payable", "Locked");
        assert!(sales(&w.on_xml(locked.as_bytes(), 4)).is_empty());
        assert_eq!(w.stats().repeats, 1);
    }

    #[test]
    fn state_changes_give_nozzle_events_and_the_fill_start() {
        let mut w = watch();
        let state = |s: &str| {
            format!(
                r#"<FDCMessage MessageType="FPStateChange" ApplicationSender="FDC"><FDCdata><DeviceClass Type="FP" DeviceID="4" PumpNo="4" NozzleNo="2"><DeviceState>{s}</DeviceState></DeviceClass></FDCdata></FDCMessage>"#
            )
        };
        let out = w.on_xml(state("FDC_CALLING").as_bytes(), 10);
        assert_eq!(
            out.events,
            [DispenserEvent::NozzleOut {
                t: 10,
                fp: 7,
                nozzle: 2
            }]
        );
        assert!(w
            .on_xml(state("FDC_FUELLING").as_bytes(), 11)
            .events
            .is_empty());
        let back = w.on_xml(state("FDC_READY").as_bytes(), 50);
        assert_eq!(
            back.events,
            [DispenserEvent::NozzleIn {
                t: 50,
                fp: 7,
                nozzle: 2
            }]
        );
        let live = sale_xml(
            "FDCMessage",
            r#"MessageType="FuelSaleTrx" ApplicationSender="FDC""#,
            9,
            "Payable",
            "5.00",
        );
        let step = w.on_xml(live.as_bytes(), 51);
        assert_eq!(sales(&step)[0].nozzle_out_t, Some(10));
    }

    #[test]
    fn a_refused_logon_and_garbage_are_told() {
        let mut w = watch();
        w.connected(0);
        let refused = w.on_xml(
            br#"<ServiceResponse RequestType="LogOn" RequestID="1" OverallResult="AuthentificationError"/>"#,
            1,
        );
        assert_eq!(refused.refused.as_deref(), Some("AuthentificationError"));
        assert!(w.on_xml(b"<<<", 2).events.is_empty());
        assert_eq!(w.stats().unreadable, 1);
    }

    #[test]
    fn the_watch_only_ever_logs_on_asks_and_beats() {
        let mut w = watch();
        let mut sent = w.connected(0).send;
        sent.extend(w.reconcile(1));
        sent.extend(w.heartbeat());
        for xml in &sent {
            assert!(
                !["Lock", "Unlock", "Clear", "Authori"]
                    .iter()
                    .any(|verb| xml.contains(verb)),
                "{xml}"
            );
        }
        assert_eq!(sent.len(), 3);
    }

    #[test]
    fn pos_time_is_utc_civil_time() {
        assert_eq!(pos_time(0), "1970-01-01T00:00:00");
        assert_eq!(pos_time(1_796_556_852_999), "2026-12-06T11:34:12");
        assert_eq!(pos_time(951_782_400_000), "2000-02-29T00:00:00");
    }
}
