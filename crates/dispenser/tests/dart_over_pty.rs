//! End to end over a real pty pair (socat): the pump simulator as slave on one end, DartMaster
//! on the other. Checks events, exact decimals, auto-authorize, RESET between sales, and that a
//! silent FP is reported offline without stalling the live one.

mod support;

use std::time::Duration;

use dispenser::{DartConfig, DartMaster, DecimalsConfig, DispenserDriver, FpConfig};
use forecourt_events::{Decimal, DispenserEvent};
use pump_sim::{Scenario, SimOptions};
use support::{sales, PtyPair};
use tokio::sync::{mpsc, watch};

const SCENARIO: &str = r#"
[[pump]]
fp = 1
address = 0x50
decimals = { volume = 2, amount = 2, price = 2 }
prices = ["7.85", "8.32"]

[[car]]
plate = "苏E05EV8"
fp = 1
[car.fill]
nozzle = 2
start_s = 1.0
end_s = 3.0
volume = "10.00"

[[car]]
plate = "B"
fp = 1
[car.fill]
nozzle = 1
start_s = 4.5
end_s = 6.0
volume = "5.00"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn master_and_simulator_over_pty() {
    let pty = PtyPair::new();
    let (stop_tx, stop_rx) = watch::channel(false);

    let mut cfg = DartConfig::new(
        &pty.a,
        vec![
            FpConfig {
                fp: 1,
                address: 0x50,
                decimals: DecimalsConfig::default(),
                grades: vec!["95".into(), "Diesel".into()],
                nozzles: None,
            },
            // Nobody answers at 0x51: must go offline without stalling FP 1.
            FpConfig {
                fp: 2,
                address: 0x51,
                decimals: DecimalsConfig::default(),
                grades: vec![],
                nozzles: None,
            },
        ],
    );
    cfg.auto_authorize = true;
    cfg.response_timeout_ms = 150;
    let (ev_tx, mut ev_rx) = mpsc::channel(256);
    let master = tokio::spawn(DartMaster::new(cfg).unwrap().run(ev_tx, stop_rx.clone()));

    let scenario = Scenario::from_toml(SCENARIO).unwrap();
    let sim = tokio::spawn(pump_sim::run(SimOptions::new(&pty.b, scenario), stop_rx));

    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while sales(&events).len() < 2 {
        match tokio::time::timeout_at(deadline, ev_rx.recv()).await {
            Ok(Some(ev)) => events.push(ev),
            Ok(None) => panic!("master stopped: {:?}", master.await),
            Err(_) => panic!("timed out; events so far: {events:#?}"),
        }
    }
    stop_tx.send(true).unwrap();
    master.await.unwrap().unwrap();
    sim.await.unwrap().unwrap();

    let fp1: Vec<&DispenserEvent> = events
        .iter()
        .filter(|e| !matches!(e, DispenserEvent::PumpOnline { fp: 1, .. }))
        .filter(|e| match e {
            DispenserEvent::NozzleOut { fp, .. } | DispenserEvent::NozzleIn { fp, .. } => *fp == 1,
            DispenserEvent::SaleCompleted(s) => s.fp == 1,
            _ => false,
        })
        .collect();
    let kinds: Vec<String> = fp1
        .iter()
        .map(|e| match e {
            DispenserEvent::NozzleOut { nozzle, .. } => format!("out{nozzle}"),
            DispenserEvent::NozzleIn { nozzle, .. } => format!("in{nozzle}"),
            DispenserEvent::SaleCompleted(s) => format!("sale{}", s.nozzle),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(
        kinds,
        ["out2", "in2", "sale2", "out1", "in1", "sale1"],
        "{events:#?}"
    );

    let s = sales(&events);
    assert_eq!(s[0].volume, Decimal::new(1000, 2));
    assert_eq!(s[0].amount, Decimal::new(8320, 2));
    assert_eq!(s[0].price, Decimal::new(832, 2));
    assert_eq!(s[0].grade.as_deref(), Some("Diesel"));
    let DispenserEvent::NozzleOut { t: out_t, .. } = fp1[0] else {
        unreachable!()
    };
    assert_eq!(s[0].nozzle_out_t, Some(*out_t));
    // The second fill needs the pump back at idle: proves RESET after the first sale.
    assert_eq!(s[1].volume, Decimal::new(500, 2));
    assert_eq!(s[1].amount, Decimal::new(3925, 2));
    assert_eq!(s[1].price, Decimal::new(785, 2));
    assert_eq!(s[1].grade.as_deref(), Some("95"));

    assert!(events
        .iter()
        .any(|e| matches!(e, DispenserEvent::PumpOnline { fp: 1, .. })));
    assert!(events
        .iter()
        .any(|e| matches!(e, DispenserEvent::PumpOffline { fp: 2, .. })));
    assert!(!events
        .iter()
        .any(|e| matches!(e, DispenserEvent::PumpOffline { fp: 1, .. })));
}

/// The master keeps retrying a port that does not exist yet and connects once it appears.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn master_waits_for_missing_port() {
    let dir = tempfile::tempdir().unwrap();
    let (stop_tx, stop_rx) = watch::channel(false);
    let cfg = DartConfig::new(
        dir.path().join("nope"),
        vec![FpConfig {
            fp: 1,
            address: 0x50,
            decimals: DecimalsConfig::default(),
            grades: vec![],
            nozzles: None,
        }],
    );
    let (ev_tx, _ev_rx) = mpsc::channel(16);
    let master = tokio::spawn(DartMaster::new(cfg).unwrap().run(ev_tx, stop_rx));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !master.is_finished(),
        "master must not exit when the port is missing"
    );
    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(2), master)
        .await
        .expect("stops promptly on shutdown")
        .unwrap()
        .unwrap();
}
