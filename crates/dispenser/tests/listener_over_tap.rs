//! Listen mode against a real conversation: DartMaster <-> relay <-> pump simulator over socat
//! ptys, the relay copying both directions into a third pty where DartListener reads. The
//! listener must report the same sales as the master, and never write a byte.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dispenser::{DartConfig, DartDriver, DartMode, DecimalsConfig, DispenserDriver, FpConfig};
use forecourt_events::DispenserEvent;
use pump_sim::{CustomerProfile, Scenario, SimOptions};
use support::{sales, PtyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio_serial::SerialPortBuilderExt;

const SCENARIO: &str = r#"
[[pump]]
fp = 1
address = 0x50
prices = ["7.85", "8.32"]
[[pump]]
fp = 2
address = 0x51
decimals = { volume = 3, amount = 2, price = 3 }
prices = ["1.659"]
"#;

fn fps() -> Vec<FpConfig> {
    vec![
        FpConfig {
            fp: 1,
            address: 0x50,
            decimals: DecimalsConfig::default(),
            grades: vec!["95".into(), "Diesel".into()],
            nozzles: None,
        },
        FpConfig {
            fp: 2,
            address: 0x51,
            decimals: DecimalsConfig {
                volume: 3,
                amount: 2,
                price: 3,
            },
            grades: vec!["98".into()],
            nozzles: None,
        },
    ]
}

fn open(path: &std::path::Path) -> tokio_serial::SerialStream {
    tokio_serial::new(path.to_string_lossy(), 9600)
        .open_native_async()
        .expect("open pty")
}

/// Forwards master <-> pumps and copies every byte, in wire order, to the tap. Counts bytes
/// that come back from the tap side (the listener must send none).
async fn relay(
    master_side: std::path::PathBuf,
    pump_side: std::path::PathBuf,
    tap: std::path::PathBuf,
    from_listener: Arc<AtomicU64>,
    mut stop: watch::Receiver<bool>,
) {
    let (mut m_rd, mut m_wr) = tokio::io::split(open(&master_side));
    let (mut p_rd, mut p_wr) = tokio::io::split(open(&pump_side));
    let (mut t_rd, mut t_wr) = tokio::io::split(open(&tap));
    let (tap_tx, mut tap_rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let tap_m = tap_tx.clone();
    let down = tokio::spawn(async move {
        let mut buf = [0u8; 256];
        while let Ok(n) = m_rd.read(&mut buf).await {
            if n == 0 || tap_m.send(buf[..n].to_vec()).is_err() {
                break;
            }
            if p_wr.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    });
    let up = tokio::spawn(async move {
        let mut buf = [0u8; 256];
        while let Ok(n) = p_rd.read(&mut buf).await {
            if n == 0 || tap_tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
            if m_wr.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    });
    let mut buf = [0u8; 64];
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            chunk = tap_rx.recv() => match chunk {
                Some(c) => { let _ = t_wr.write_all(&c).await; }
                None => break,
            },
            n = t_rd.read(&mut buf) => {
                if let Ok(n) = n {
                    from_listener.fetch_add(n as u64, Ordering::Relaxed);
                }
            }
        }
    }
    down.abort();
    up.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_reports_the_same_sales_as_the_master() {
    let master_link = PtyPair::new();
    let pump_link = PtyPair::new();
    let tap = PtyPair::new();
    let (stop_tx, stop_rx) = watch::channel(false);
    let from_listener = Arc::new(AtomicU64::new(0));
    let relay = tokio::spawn(relay(
        master_link.b.clone(),
        pump_link.a.clone(),
        tap.a.clone(),
        from_listener.clone(),
        stop_rx.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut opts = SimOptions::new(&pump_link.b, Scenario::from_toml(SCENARIO).unwrap());
    opts.random = true;
    opts.seed = 11;
    opts.customers = CustomerProfile {
        litres: (2.0, 20.0),
        flow_lps: 10.0,
        pause_s: (0.3, 1.0),
        first_lift_s: (1.0, 1.5),
        until_s: None,
    };
    let sim = tokio::spawn(pump_sim::run(opts, stop_rx.clone()));

    let mut listen_cfg = DartConfig::new(&tap.b, fps());
    listen_cfg.mode = DartMode::Listen;
    let (l_tx, mut l_rx) = mpsc::channel(1024);
    let listener = tokio::spawn(
        DartDriver::new(listen_cfg)
            .unwrap()
            .run(l_tx, stop_rx.clone()),
    );
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut master_cfg = DartConfig::new(&master_link.a, fps());
    master_cfg.auto_authorize = true;
    master_cfg.response_timeout_ms = 150;
    master_cfg.poll_interval_ms = 30;
    let (m_tx, mut m_rx) = mpsc::channel(1024);
    let master = tokio::spawn(
        DartDriver::new(master_cfg)
            .unwrap()
            .run(m_tx, stop_rx.clone()),
    );

    let wanted = 8;
    let mut master_events = Vec::new();
    let mut listener_events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while sales(&master_events).len() < wanted {
        tokio::select! {
            ev = m_rx.recv() => master_events.push(ev.expect("master running")),
            ev = l_rx.recv() => listener_events.push(ev.expect("listener running")),
            _ = tokio::time::sleep_until(deadline) => panic!(
                "timed out: master {} sales, listener {}",
                sales(&master_events).len(),
                sales(&listener_events).len()
            ),
        }
    }
    // The master's ACK of the final block reaches the tap right after the master decides.
    let settle = tokio::time::Instant::now() + Duration::from_millis(800);
    loop {
        tokio::select! {
            ev = m_rx.recv() => master_events.push(ev.expect("master running")),
            ev = l_rx.recv() => listener_events.push(ev.expect("listener running")),
            _ = tokio::time::sleep_until(settle) => break,
        }
    }
    stop_tx.send(true).unwrap();
    master.await.unwrap().unwrap();
    listener.await.unwrap().unwrap();
    sim.await.unwrap().unwrap();
    relay.await.unwrap();

    let key = |events: &[DispenserEvent]| -> Vec<String> {
        sales(events)
            .iter()
            .map(|s| {
                format!(
                    "fp{} n{} {} {} {} {:?}",
                    s.fp, s.nozzle, s.volume, s.amount, s.price, s.grade
                )
            })
            .collect()
    };
    let m = key(&master_events);
    let l = key(&listener_events);
    assert!(m.len() >= wanted);
    // A sale the master reported during the last instants may still be in flight to the tap.
    assert!(
        l.len() == m.len() || l.len() + 1 == m.len(),
        "{m:#?}\n{l:#?}"
    );
    assert_eq!(m[..l.len()], l[..], "master vs listener");
    assert!(
        m.iter().any(|s| s.starts_with("fp2")),
        "both FPs sold: {m:#?}"
    );
    let nozzle_events = |events: &[DispenserEvent]| {
        events
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    DispenserEvent::NozzleOut { .. } | DispenserEvent::NozzleIn { .. }
                )
            })
            .count()
    };
    assert!(nozzle_events(&listener_events) >= 2 * l.len());
    assert!(listener_events
        .iter()
        .any(|e| matches!(e, DispenserEvent::PumpOnline { fp: 2, .. })));
    assert_eq!(
        from_listener.load(Ordering::Relaxed),
        0,
        "the listener wrote to the bus"
    );
}
