//! Shared by the LAN source tests (IFSF over TCP/IP, IFSF POS-FDC): the simulated station system
//! on a loopback port, a driver harness, and the exactly-once check against the ground truth.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dispenser::DispenserDriver;
use forecourt_events::{DispenserEvent, Sale};
use pump_sim::lan_server::{
    run_lan_device, LanDeviceOptions, LanFaults, LanSimOptions, LanSimReport,
};
use pump_sim::{CustomerProfile, Scenario, SimRecord};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// Four pumps with different prices and decimals.
pub const FOUR_PUMPS: &str = r#"
[[pump]]
fp = 1
prices = ["7.49", "7.99"]
[[pump]]
fp = 2
prices = ["7.49", "7.99"]
decimals = { volume = 3, amount = 2, price = 3 }
[[pump]]
fp = 3
prices = ["6.95"]
[[pump]]
fp = 4
prices = ["8.12", "7.01"]
"#;

/// Quick customers who stop coming at `until_s`.
pub fn customers(until_s: f64, max_litres: f64) -> CustomerProfile {
    CustomerProfile {
        litres: (2.0, max_litres),
        flow_lps: 4.0,
        pause_s: (0.5, 2.0),
        first_lift_s: (0.2, 1.0),
        until_s: Some(until_s),
    }
}

/// The simulated station system, running.
pub struct System {
    pub address: std::net::SocketAddr,
    /// Sales as they complete: the ground truth so far.
    pub records: Arc<Mutex<Vec<SimRecord>>>,
    pub stop: watch::Sender<bool>,
    pub task: JoinHandle<LanSimReport>,
}

impl System {
    pub async fn start(
        device: LanDeviceOptions,
        scenario: &str,
        random: Option<CustomerProfile>,
        faults: LanFaults,
    ) -> System {
        let records = Arc::new(Mutex::new(Vec::new()));
        let (bound_tx, bound_rx) = oneshot::channel();
        let (stop, stop_rx) = watch::channel(false);
        let options = LanSimOptions {
            listen: "127.0.0.1:0".parse().unwrap(),
            scenario: Scenario::from_toml(scenario).unwrap(),
            device,
            random: random.map(|profile| (7, profile)),
            faults,
            seed: 7,
        };
        let sink = records.clone();
        let task = tokio::spawn(async move {
            run_lan_device(
                options,
                bound_tx,
                move |r| sink.lock().unwrap().push(r.clone()),
                stop_rx,
            )
            .await
            .unwrap()
        });
        System {
            address: bound_rx.await.unwrap(),
            records,
            stop,
            task,
        }
    }

    /// Waits until the first sale is complete (bounded).
    pub async fn first_sale(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while self.records.lock().unwrap().is_empty() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the fill never completed"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn stop(self) -> LanSimReport {
        self.stop.send(true).unwrap();
        self.task.await.unwrap()
    }
}

/// A driver running, and its events.
pub struct Driver {
    pub events: mpsc::Receiver<DispenserEvent>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Driver {
    pub fn start(driver: impl DispenserDriver) -> Driver {
        let (events_tx, events) = mpsc::channel(1024);
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(async move { driver.run(events_tx, stop_rx).await.unwrap() });
        Driver { events, stop, task }
    }

    /// Sales until `done` holds of them, or the deadline. `done` may turn true with time alone:
    /// it is asked at least every 200 ms.
    pub async fn sales_until(
        &mut self,
        deadline: Duration,
        mut done: impl FnMut(&[Sale]) -> bool,
    ) -> Vec<Sale> {
        let mut sales = Vec::new();
        let until = tokio::time::Instant::now() + deadline;
        while !done(&sales) && tokio::time::Instant::now() < until {
            match tokio::time::timeout(Duration::from_millis(200), self.events.recv()).await {
                Ok(Some(DispenserEvent::SaleCompleted(sale))) => sales.push(sale),
                Ok(Some(_)) | Err(_) => {}
                Ok(None) => break,
            }
        }
        sales
    }

    /// Every sale the system makes until its customers stop (`until_s` from now) and a few
    /// seconds more, then whatever comes in 4 s more (a second report of a sale would).
    pub async fn every_sale(&mut self, system: &System, until_s: f64) -> Vec<Sale> {
        let settled = tokio::time::Instant::now() + Duration::from_secs_f64(until_s + 6.0);
        let records = system.records.clone();
        let mut sales = self
            .sales_until(Duration::from_secs(120), |sales| {
                tokio::time::Instant::now() >= settled
                    && sales.len() >= records.lock().unwrap().len()
            })
            .await;
        sales.extend(self.sales_until(Duration::from_secs(4), |_| false).await);
        sales
    }

    /// Waits for a nozzle out at `fp` (bounded); returns its nozzle.
    pub async fn nozzle_out(&mut self, fp: u8) -> u8 {
        let until = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            match tokio::time::timeout_at(until, self.events.recv()).await {
                Ok(Some(DispenserEvent::NozzleOut { fp: at, nozzle, .. })) if at == fp => {
                    return nozzle
                }
                Ok(Some(_)) => {}
                other => panic!("no nozzle out at fp {fp}: {other:?}"),
            }
        }
    }

    pub async fn stop(self) {
        self.stop.send(true).unwrap();
        self.task.await.unwrap();
    }
}

/// Each sale matches one record of the system's (station fuelling point by `fp_of` the
/// system's point, exact volume, amount and price), and the other way round; no two sales share
/// a source key.
pub fn assert_exactly_once(sales: &[Sale], records: &[SimRecord], fp_of: impl Fn(u8) -> u8) {
    let mut reported: Vec<_> = sales
        .iter()
        .map(|s| {
            (
                s.fp,
                s.volume.to_string(),
                s.amount.to_string(),
                s.price.to_string(),
            )
        })
        .collect();
    let mut truth: Vec<_> = records
        .iter()
        .map(|r| {
            (
                fp_of(r.fp),
                r.volume.to_string(),
                r.amount.to_string(),
                r.price.to_string(),
            )
        })
        .collect();
    reported.sort();
    truth.sort();
    assert_eq!(reported, truth, "sales reported vs sold");
    let mut keys: Vec<&str> = sales
        .iter()
        .filter_map(|s| s.source_key.as_deref())
        .collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), sales.len(), "one source key per sale");
}
