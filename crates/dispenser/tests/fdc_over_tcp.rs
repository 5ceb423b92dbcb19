//! The IFSF POS-FDC driver against the simulated controller, over real TCP sockets on loopback:
//! every sale the controller made is reported once with its exact volume, amount and price,
//! through link drops, controller restarts and broken frames; a sale completed while the link
//! was down is found at logon; a controller that notifies nothing is followed by asking; and the
//! driver never asks to lock, unlock or clear (the controller keeps any such request).

mod lan;

use std::time::Duration;

use dispenser::{IfsfFdcConfig, IfsfFdcDriver};
use ifsf_fdc::HeaderVariant;
use lan::{assert_exactly_once, customers, Driver, System, FOUR_PUMPS};
use pump_sim::fdc_device::FdcDeviceOptions;
use pump_sim::lan_server::{LanDeviceOptions, LanFaults};
use pump_sim::CustomerProfile;

const PASSPHRASE: &str = "station-secret";

/// The controller's pumps 1..=4 are station fuelling points 21..=24.
fn fp_of(pump: u8) -> u8 {
    20 + pump
}

async fn start_controller(
    scenario: &str,
    random: Option<CustomerProfile>,
    faults: LanFaults,
    quiet: bool,
) -> System {
    let controller = LanDeviceOptions::IfsfFdc(FdcDeviceOptions {
        header: HeaderVariant::LengthHashMd5,
        passphrase: PASSPHRASE.into(),
        clear_after_s: 3.0,
        quiet,
    });
    System::start(controller, scenario, random, faults).await
}

fn log_on(address: std::net::SocketAddr, reconcile_interval_s: u64) -> Driver {
    let fps: Vec<String> = (1..=4)
        .map(|p| {
            format!(
                "{{ fp = {}, pump = {p}, grades = [\"92#\", \"95#\"] }}",
                fp_of(p)
            )
        })
        .collect();
    let config: IfsfFdcConfig = toml::from_str(&format!(
        "address = \"{address}\"\npassphrase = \"{PASSPHRASE}\"\nheartbeat_interval_s = 2\n\
         reconcile_interval_s = {reconcile_interval_s}\nsilence_timeout_s = 6\nfps = [{}]\n",
        fps.join(", ")
    ))
    .unwrap();
    Driver::start(IfsfFdcDriver::new(config).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sale_once_through_drops_restarts_and_broken_frames() {
    let until = 30.0;
    let faults = LanFaults {
        drops_per_min: 6.0,
        restart_s: 2.0,
        restart_at_s: vec![10.0, 20.0],
        garbage_rate: 0.08,
        until_s: Some(until),
        ..LanFaults::default()
    };
    let controller =
        start_controller(FOUR_PUMPS, Some(customers(until, 15.0)), faults, false).await;
    let mut driver = log_on(controller.address, 30);
    let sales = driver.every_sale(&controller, until).await;
    driver.stop().await;
    let report = controller.stop().await;
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
    assert_exactly_once(&sales, &report.records, fp_of);
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
    let mut driver = log_on(controller.address, 30);
    assert_eq!(driver.nozzle_out(fp_of(2)).await, 2);
    driver.stop().await;
    controller.first_sale().await;
    let mut driver = log_on(controller.address, 30);
    let sales = driver
        .sales_until(Duration::from_secs(30), |sales| sales.len() >= 2)
        .await;
    driver.stop().await;
    let report = controller.stop().await;
    assert_exactly_once(&sales, &report.records, fp_of);
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
        Some(customers(until, 15.0)),
        LanFaults::default(),
        true,
    )
    .await;
    let mut driver = log_on(controller.address, 2);
    let sales = driver.every_sale(&controller, until).await;
    driver.stop().await;
    let report = controller.stop().await;
    assert!(
        report.records.len() >= 8,
        "only {} sales",
        report.records.len()
    );
    assert_exactly_once(&sales, &report.records, fp_of);
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
    let report = controller.stop().await;
    assert_eq!(report.forbidden, [clear.to_owned()]);
}
