//! The IFSF POS-FDC driver against the simulated controller, over real TCP sockets on loopback:
//! every sale the controller made is reported once with its exact volume, amount and price,
//! through link drops, controller restarts and broken frames; a sale completed while the link
//! was down is found at logon; a controller that notifies nothing is followed by asking; and the
//! driver never asks to lock, unlock or clear (the controller keeps any such request).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dispenser::{DispenserDriver, IfsfFdcConfig, IfsfFdcDriver};
use forecourt_events::{DispenserEvent, Sale};
use ifsf_fdc::HeaderVariant;
use pump_sim::fdc_device::FdcDeviceOptions;
use pump_sim::lan_server::{
    run_lan_device, LanDeviceOptions, LanFaults, LanSimOptions, LanSimReport,
};
use pump_sim::{CustomerProfile, Scenario, SimRecord};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

const PASSPHRASE: &str = "station-secret";

struct Controller {
    address: std::net::SocketAddr,
    records: Arc<Mutex<Vec<SimRecord>>>,
    stop: watch::Sender<bool>,
    task: JoinHandle<LanSimReport>,
}

async fn start_controller(
    scenario: &str,
    random: Option<CustomerProfile>,
    faults: LanFaults,
    quiet: bool,
) -> Controller {
    let records = Arc::new(Mutex::new(Vec::new()));
    let (bound_tx, bound_rx) = oneshot::channel();
    let (stop, stop_rx) = watch::channel(false);
    let options = LanSimOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        scenario: Scenario::from_toml(scenario).unwrap(),
        device: LanDeviceOptions::IfsfFdc(FdcDeviceOptions {
            header: HeaderVariant::LengthHashMd5,
            passphrase: PASSPHRASE.into(),
            clear_after_s: 3.0,
            quiet,
        }),
        random: random.map(|profile| (5, profile)),
        faults,
        seed: 5,
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
    Controller {
        address: bound_rx.await.unwrap(),
        records,
        stop,
        task,
    }
}

struct Driver {
    events: mpsc::Receiver<DispenserEvent>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// Pumps 1..=4 are station fuelling points 21..=24.
fn start_driver(address: std::net::SocketAddr, reconcile_interval_s: u64) -> Driver {
    let config: IfsfFdcConfig = toml::from_str(&format!(
        r#"
address = "{address}"
passphrase = "{PASSPHRASE}"
heartbeat_interval_s = 2
reconcile_interval_s = {reconcile_interval_s}
silence_timeout_s = 6
fps = [
  {{ fp = 21, pump = 1, grades = ["92#", "95#"] }},
  {{ fp = 22, pump = 2, grades = ["92#", "95#"] }},
  {{ fp = 23, pump = 3, grades = ["92#", "95#"] }},
  {{ fp = 24, pump = 4, grades = ["92#", "95#"] }},
]
"#
    ))
    .unwrap();
    let driver = IfsfFdcDriver::new(config).unwrap();
    let (events_tx, events) = mpsc::channel(1024);
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(async move { driver.run(events_tx, stop_rx).await.unwrap() });
    Driver { events, stop, task }
}

impl Driver {
    /// Sales until `done` holds of them (asked at least every 200 ms) or the deadline.
    async fn sales_until(
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

    async fn stop(self) {
        self.stop.send(true).unwrap();
        self.task.await.unwrap();
    }
}

fn assert_exactly_once(sales: &[Sale], records: &[SimRecord]) {
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
                20 + r.fp,
                r.volume.to_string(),
                r.amount.to_string(),
                r.price.to_string(),
            )
        })
        .collect();
    reported.sort();
    truth.sort();
    assert_eq!(reported, truth, "sales reported vs sold");
}

const FOUR_PUMPS: &str = r#"
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

fn customers(until_s: f64) -> CustomerProfile {
    CustomerProfile {
        litres: (2.0, 15.0),
        flow_lps: 4.0,
        pause_s: (0.5, 2.0),
        first_lift_s: (0.2, 1.0),
        until_s: Some(until_s),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sale_once_through_drops_restarts_and_broken_frames() {
    let until = 30.0;
    let controller = start_controller(
        FOUR_PUMPS,
        Some(customers(until)),
        LanFaults {
            drops_per_min: 6.0,
            restart_s: 2.0,
            restart_at_s: vec![10.0, 20.0],
            garbage_rate: 0.08,
            until_s: Some(until),
            ..LanFaults::default()
        },
        false,
    )
    .await;
    let mut driver = start_driver(controller.address, 30);
    let settled = tokio::time::Instant::now() + Duration::from_secs_f64(until + 6.0);
    let records = controller.records.clone();
    let mut sales = driver
        .sales_until(Duration::from_secs(120), |sales| {
            tokio::time::Instant::now() >= settled && sales.len() >= records.lock().unwrap().len()
        })
        .await;
    sales.extend(driver.sales_until(Duration::from_secs(4), |_| false).await);
    driver.stop().await;
    controller.stop.send(true).unwrap();
    let report = controller.task.await.unwrap();
    eprintln!(
        "{} sales; {} connections, {} drops, {} restarts, {} garbage runs",
        report.records.len(),
        report.connections,
        report.drops,
        report.restarts,
        report.garbage_runs
    );
    assert!(
        report.records.len() >= 25,
        "only {} sales",
        report.records.len()
    );
    assert!(
        report.restarts >= 2 && report.garbage_runs >= 1,
        "{report:?}"
    );
    assert_exactly_once(&sales, &report.records);
    assert!(report.forbidden.is_empty(), "{:?}", report.forbidden);
}

/// The link goes down during a fill (the driver stops once the nozzle is out); the sale that
/// completes meanwhile is found at the next logon, and a later one is seen live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sale_completed_while_the_link_was_down_is_found_at_logon() {
    let scenario = format!(
        "{FOUR_PUMPS}\n[[car]]\nfp = 2\n[car.fill]\nnozzle = 2\nstart_s = 1.0\nend_s = 5.0\nvolume = \"12.345\"\n\
         [[car]]\nfp = 2\n[car.fill]\nnozzle = 1\nstart_s = 9.0\nend_s = 11.0\nvolume = \"3.000\"\n"
    );
    let controller = start_controller(&scenario, None, LanFaults::default(), false).await;
    let mut driver = start_driver(controller.address, 30);
    let until = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match tokio::time::timeout_at(until, driver.events.recv()).await {
            Ok(Some(DispenserEvent::NozzleOut { fp: 22, nozzle, .. })) => {
                assert_eq!(nozzle, 2);
                break;
            }
            Ok(Some(_)) => {}
            other => panic!("no nozzle out: {other:?}"),
        }
    }
    driver.stop().await;
    let records = controller.records.clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while records.lock().unwrap().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the fill never completed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut driver = start_driver(controller.address, 30);
    let sales = driver
        .sales_until(Duration::from_secs(30), |sales| sales.len() >= 2)
        .await;
    driver.stop().await;
    controller.stop.send(true).unwrap();
    let report = controller.task.await.unwrap();
    assert_exactly_once(&sales, &report.records);
    assert!(sales[0].recovered, "found at logon, not seen live");
    assert_eq!(sales[0].source_key.as_deref(), Some("ifsf-fdc:2:1"));
    assert_eq!(
        (sales[0].nozzle, sales[0].grade.as_deref()),
        (2, Some("95#"))
    );
    assert!(
        !sales[1].recovered && sales[1].nozzle_out_t.is_some(),
        "{:?}",
        sales[1]
    );
    assert!(report.forbidden.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_that_notifies_nothing_is_followed_by_asking() {
    let until = 10.0;
    let controller = start_controller(
        FOUR_PUMPS,
        Some(customers(until)),
        LanFaults::default(),
        true,
    )
    .await;
    let mut driver = start_driver(controller.address, 2);
    let settled = tokio::time::Instant::now() + Duration::from_secs_f64(until + 6.0);
    let records = controller.records.clone();
    let sales = driver
        .sales_until(Duration::from_secs(60), |sales| {
            tokio::time::Instant::now() >= settled && sales.len() >= records.lock().unwrap().len()
        })
        .await;
    driver.stop().await;
    controller.stop.send(true).unwrap();
    let report = controller.task.await.unwrap();
    assert!(
        report.records.len() >= 8,
        "only {} sales",
        report.records.len()
    );
    assert_exactly_once(&sales, &report.records);
    assert!(report.forbidden.is_empty());
}

/// The controller keeps a lock or clear request: the checks above can fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulated_controller_reports_a_clear() {
    use tokio::io::AsyncWriteExt;
    let controller = start_controller(FOUR_PUMPS, None, LanFaults::default(), false).await;
    let mut stream = tokio::net::TcpStream::connect(controller.address)
        .await
        .unwrap();
    let clear = r#"<ServiceRequest RequestType="ClearFuelSaleTrx" ApplicationSender="X" WorkstationID="X" RequestID="9"><POSdata/></ServiceRequest>"#;
    let frame = ifsf_fdc::encode_frame(
        HeaderVariant::LengthHashMd5,
        clear.as_bytes(),
        PASSPHRASE.as_bytes(),
    )
    .unwrap();
    stream.write_all(&frame).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    controller.stop.send(true).unwrap();
    let report = controller.task.await.unwrap();
    assert_eq!(report.forbidden, [clear.to_owned()]);
}
