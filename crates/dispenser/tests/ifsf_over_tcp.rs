//! The IFSF over TCP/IP driver against the simulated dispenser node, over real TCP sockets on
//! loopback: every sale the device completed is reported once with its exact volume, amount and
//! price, through link drops, device restarts and garbage on the stream; a sale completed while
//! no driver ran is read back; and the driver never sends a write (the device keeps any it gets).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dispenser::{DispenserDriver, IfsfTcpConfig, IfsfTcpDriver};
use forecourt_events::{DispenserEvent, Sale};
use pump_sim::ifsf_device::IfsfDeviceOptions;
use pump_sim::lan_server::{
    run_lan_device, LanDeviceOptions, LanFaults, LanSimOptions, LanSimReport,
};
use pump_sim::{CustomerProfile, Scenario, SimRecord};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// Station fuelling point numbers of the node's points 1..=4.
const FP_OF_POINT: [u8; 4] = [11, 12, 13, 14];

struct Device {
    address: std::net::SocketAddr,
    records: Arc<Mutex<Vec<SimRecord>>>,
    stop: watch::Sender<bool>,
    task: JoinHandle<LanSimReport>,
}

async fn start_device(
    scenario: &str,
    random: Option<CustomerProfile>,
    faults: LanFaults,
) -> Device {
    start_device_with(scenario, random, faults, false).await
}

async fn start_device_with(
    scenario: &str,
    random: Option<CustomerProfile>,
    faults: LanFaults,
    quiet: bool,
) -> Device {
    let records = Arc::new(Mutex::new(Vec::new()));
    let (bound_tx, bound_rx) = oneshot::channel();
    let (stop, stop_rx) = watch::channel(false);
    let options = LanSimOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        scenario: Scenario::from_toml(scenario).unwrap(),
        device: LanDeviceOptions::IfsfTcp(IfsfDeviceOptions {
            node: 1,
            clear_after_s: 3.0,
            quiet,
        }),
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
    let address = bound_rx.await.unwrap();
    Device {
        address,
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

fn start_driver(address: std::net::SocketAddr, points: u8) -> Driver {
    let fps: Vec<String> = (1..=points)
        .map(|p| {
            format!(
                "{{ fp = {}, point = {p}, grades = [\"92#\", \"95#\"] }}",
                FP_OF_POINT[usize::from(p - 1)]
            )
        })
        .collect();
    let config: IfsfTcpConfig = toml::from_str(&format!(
        "address = \"{address}\"\nnode = 1\nown_node = 9\npoll_interval_s = 1\nsilence_timeout_s = 3\nfps = [{}]\n",
        fps.join(", ")
    ))
    .unwrap();
    let driver = IfsfTcpDriver::new(config).unwrap();
    let (events_tx, events) = mpsc::channel(1024);
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(async move { driver.run(events_tx, stop_rx).await.unwrap() });
    Driver { events, stop, task }
}

impl Driver {
    /// Events until `done` holds of the sales so far, or the deadline.
    async fn sales_until(
        &mut self,
        deadline: Duration,
        mut done: impl FnMut(&[Sale]) -> bool,
    ) -> Vec<Sale> {
        let mut sales = Vec::new();
        let until = tokio::time::Instant::now() + deadline;
        // `done` may turn true with time alone: it is asked at least every 200 ms.
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

/// Each sale matches one record of the device's (fuelling point, exact volume, amount and
/// price), and the other way round.
fn assert_exactly_once(sales: &[Sale], records: &[SimRecord]) {
    let key = |fp: u8, volume: String, amount: String, price: String| (fp, volume, amount, price);
    let mut reported: Vec<_> = sales
        .iter()
        .map(|s| {
            key(
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
            key(
                FP_OF_POINT[usize::from(r.fp - 1)],
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

const FOUR_POINTS: &str = r#"
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sale_once_through_drops_restarts_and_garbage() {
    let customers_until = 30.0;
    let device = start_device(
        FOUR_POINTS,
        Some(CustomerProfile {
            litres: (2.0, 15.0),
            flow_lps: 4.0,
            pause_s: (0.5, 2.0),
            first_lift_s: (0.2, 1.0),
            until_s: Some(customers_until),
        }),
        LanFaults {
            drops_per_min: 6.0,
            restarts_per_min: 2.0,
            restart_s: 2.0,
            restart_at_s: vec![10.0, 20.0],
            garbage_rate: 0.03,
            until_s: Some(customers_until),
        },
    )
    .await;
    let mut driver = start_driver(device.address, 4);
    // All customers are gone after `customers_until` plus their last fill (at most 4 s):
    // then every sale the device made must have come through.
    let settled = tokio::time::Instant::now() + Duration::from_secs_f64(customers_until + 6.0);
    let records = device.records.clone();
    let sales = driver
        .sales_until(Duration::from_secs(120), |sales| {
            tokio::time::Instant::now() >= settled && sales.len() >= records.lock().unwrap().len()
        })
        .await;
    // Anything more the driver would report (a second report of a sale) comes now.
    let late = driver.sales_until(Duration::from_secs(4), |_| false).await;
    driver.stop().await;
    device.stop.send(true).unwrap();
    let report = device.task.await.unwrap();
    let records = report.records.clone();
    eprintln!(
        "{} sales; {} connections, {} drops, {} restarts, {} garbage runs",
        records.len(),
        report.connections,
        report.drops,
        report.restarts,
        report.garbage_runs
    );
    assert!(records.len() >= 25, "only {} sales made", records.len());
    assert!(
        report.restarts >= 2 && report.garbage_runs >= 1,
        "faults not injected: {report:?}"
    );
    assert!(report.connections > report.drops, "{report:?}");
    let all: Vec<Sale> = sales.into_iter().chain(late).collect();
    assert_exactly_once(&all, &records);
    assert!(
        report.forbidden.is_empty(),
        "the driver sent writes: {:?}",
        report.forbidden
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sale_completed_while_no_driver_ran_is_read_back() {
    // One long fill on point 1 from 1 s to 6 s, and a later one from 9 s to 11 s.
    let scenario = format!(
        "{FOUR_POINTS}\n[[car]]\nfp = 1\n[car.fill]\nnozzle = 2\nstart_s = 1.0\nend_s = 6.0\nvolume = \"31.40\"\n\
         [[car]]\nfp = 1\n[car.fill]\nnozzle = 1\nstart_s = 9.0\nend_s = 11.0\nvolume = \"8.00\"\n"
    );
    let device = start_device(&scenario, None, LanFaults::default()).await;
    let mut driver = start_driver(device.address, 4);
    // The link goes down during the fill (the driver is stopped once the nozzle is out).
    let until = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match tokio::time::timeout_at(until, driver.events.recv()).await {
            Ok(Some(DispenserEvent::NozzleOut { fp: 11, nozzle, .. })) => {
                assert_eq!(nozzle, 2);
                break;
            }
            Ok(Some(_)) => {}
            other => panic!("no nozzle out: {other:?}"),
        }
    }
    driver.stop().await;
    let records = device.records.clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while records.lock().unwrap().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the fill never completed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A new driver (a new link, or an agent started again) reads the buffer back.
    let mut driver = start_driver(device.address, 4);
    let sales = driver
        .sales_until(Duration::from_secs(30), |sales| sales.len() >= 2)
        .await;
    driver.stop().await;
    device.stop.send(true).unwrap();
    let report = device.task.await.unwrap();
    assert_exactly_once(&sales, &report.records);
    let first = &sales[0];
    assert_eq!(first.volume.to_string(), "31.40");
    assert!(first.recovered, "read back, not seen live");
    assert_eq!(first.source_key.as_deref(), Some("ifsf-tcp:1.1:1:0001"));
    assert_eq!((first.nozzle, first.grade.as_deref()), (2, Some("95#")));
    let second = &sales[1];
    assert!(!second.recovered, "seen live");
    assert!(second.nozzle_out_t.is_some());
    assert!(report.forbidden.is_empty());
}

/// A device that announces nothing to the agent's node is followed by the state reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_announces_nothing_is_followed_by_reading() {
    let customers_until = 12.0;
    let device = start_device_with(
        FOUR_POINTS,
        Some(CustomerProfile {
            litres: (2.0, 10.0),
            flow_lps: 4.0,
            pause_s: (0.5, 2.0),
            first_lift_s: (0.2, 1.0),
            until_s: Some(customers_until),
        }),
        LanFaults::default(),
        true,
    )
    .await;
    let mut driver = start_driver(device.address, 4);
    let settled = tokio::time::Instant::now() + Duration::from_secs_f64(customers_until + 5.0);
    let records = device.records.clone();
    let sales = driver
        .sales_until(Duration::from_secs(60), |sales| {
            tokio::time::Instant::now() >= settled && sales.len() >= records.lock().unwrap().len()
        })
        .await;
    driver.stop().await;
    device.stop.send(true).unwrap();
    let report = device.task.await.unwrap();
    assert!(
        report.records.len() >= 8,
        "only {} sales made",
        report.records.len()
    );
    assert_exactly_once(&sales, &report.records);
    assert!(sales.iter().all(|s| !s.recovered), "{sales:?}");
    assert!(report.forbidden.is_empty());
}

/// The station's own controlling device talks to the node; the mirror driver reads a copy of
/// that traffic off the wire (here: the loopback device) and reports the same sales, exactly
/// once, with no connection of its own. Needs CAP_NET_RAW (root): skipped, and says so, without.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_of_the_station_s_own_traffic_gives_every_sale_sending_nothing() {
    if let Err(e) = dispenser::ifsf_mirror::open_capture() {
        eprintln!("mirror test: SKIPPED (no raw packet socket: {e}; needs CAP_NET_RAW)");
        return;
    }
    let until = 12.0;
    let device = start_device(
        FOUR_POINTS,
        Some(CustomerProfile {
            litres: (2.0, 10.0),
            flow_lps: 4.0,
            pause_s: (0.5, 2.0),
            first_lift_s: (1.0, 2.0),
            until_s: Some(until),
        }),
        LanFaults::default(),
    )
    .await;
    let fps: Vec<String> = (1..=4u8)
        .map(|p| {
            format!(
                "{{ fp = {}, point = {p} }}",
                FP_OF_POINT[usize::from(p - 1)]
            )
        })
        .collect();
    let mirror_config: IfsfTcpConfig = toml::from_str(&format!(
        "address = \"{}\"\nnode = 1\nmode = \"mirror\"\nfps = [{}]\n",
        device.address,
        fps.join(", ")
    ))
    .unwrap();
    let mirror = dispenser::IfsfSource::new(mirror_config).unwrap();
    let (mirror_tx, mirror_events) = mpsc::channel(1024);
    let (mirror_stop, mirror_stop_rx) = watch::channel(false);
    let mirror_task =
        tokio::spawn(async move { mirror.run(mirror_tx, mirror_stop_rx).await.unwrap() });
    let mut mirror = Driver {
        events: mirror_events,
        stop: mirror_stop,
        task: mirror_task,
    };
    // The station's own controlling device (the mirror never connects).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let station = start_driver(device.address, 4);
    let settled = tokio::time::Instant::now() + Duration::from_secs_f64(until + 5.0);
    let records = device.records.clone();
    let sales = mirror
        .sales_until(Duration::from_secs(60), |sales| {
            tokio::time::Instant::now() >= settled && sales.len() >= records.lock().unwrap().len()
        })
        .await;
    mirror.stop().await;
    station.stop().await;
    device.stop.send(true).unwrap();
    let report = device.task.await.unwrap();
    assert!(
        report.records.len() >= 8,
        "only {} sales made",
        report.records.len()
    );
    assert_eq!(report.connections, 1, "the mirror must not connect");
    assert_exactly_once(&sales, &report.records);
    assert!(report.forbidden.is_empty());
}

/// With `heartbeat_to`, the agent announces itself over UDP as controlling device 2.9, from the
/// address it reaches the node from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_beats_its_heartbeat_as_a_controlling_device() {
    let device = start_device(FOUR_POINTS, None, LanFaults::default()).await;
    let listener = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let config: IfsfTcpConfig = toml::from_str(&format!(
        "address = \"{}\"\nnode = 1\nown_node = 9\nheartbeat_to = \"{}\"\nheartbeat_interval_s = 1\nfps = [{{ fp = 11, point = 1 }}]\n",
        device.address,
        listener.local_addr().unwrap()
    ))
    .unwrap();
    let driver = IfsfTcpDriver::new(config).unwrap();
    let (events_tx, events) = mpsc::channel(64);
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(async move { driver.run(events_tx, stop_rx).await.unwrap() });
    let mut buf = [0u8; 64];
    for _ in 0..2 {
        let (n, _) = tokio::time::timeout(Duration::from_secs(10), listener.recv_from(&mut buf))
            .await
            .expect("no heartbeat within 10 s")
            .unwrap();
        let beat = ifsf_protocol::Heartbeat::decode(&buf[..n]).unwrap();
        assert_eq!(beat.address, ifsf_protocol::NodeAddress::new(2, 9));
        assert_eq!(beat.ip, std::net::Ipv4Addr::LOCALHOST);
    }
    Driver { events, stop, task }.stop().await;
    device.stop.send(true).unwrap();
    assert!(device.task.await.unwrap().forbidden.is_empty());
}

/// The simulated device, like a public controller, closes its old client when a new one
/// connects: the behaviour that makes joining a risk for the station's own system.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_connection_closes_the_old_one() {
    use tokio::io::AsyncReadExt;
    let device = start_device(FOUR_POINTS, None, LanFaults::default()).await;
    let mut first = tokio::net::TcpStream::connect(device.address)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _second = tokio::net::TcpStream::connect(device.address)
        .await
        .unwrap();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(5), first.read(&mut buf))
        .await
        .expect("the old connection stayed open");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    device.stop.send(true).unwrap();
    assert_eq!(device.task.await.unwrap().connections, 2);
}

/// The device keeps any write; this proves the check above can fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulated_device_reports_a_write() {
    use ifsf_protocol::{DataItem, Message, MessageKind, NodeAddress};
    use tokio::io::AsyncWriteExt;
    let device = start_device(FOUR_POINTS, None, LanFaults::default()).await;
    let mut stream = tokio::net::TcpStream::connect(device.address)
        .await
        .unwrap();
    let clear = Message::with_items(
        NodeAddress::new(1, 1),
        NodeAddress::new(2, 9),
        MessageKind::Write,
        1,
        &[0x21, 0x21, 0x00, 0x01],
        &[DataItem { id: 30, value: &[] }],
    )
    .unwrap();
    stream.write_all(&clear.encode().unwrap()).await.unwrap();
    stream.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    device.stop.send(true).unwrap();
    let report = device.task.await.unwrap();
    assert_eq!(report.forbidden, [format!("{clear:?}")]);
}
