//! Soak over a socat pty: DartMaster against the simulator with 4 FPs, random customers and
//! injected faults (corrupted and lost bytes at ~1e-3, delayed answers, silent periods, pumps
//! restarting mid-fill). Compared with the simulator's ground truth:
//! - every reported sale is a real sale with exactly its values, reported once (in order);
//! - per nozzle, the sales not reported plus the fuel of fills lost to restarts equal the
//!   volume the sale_gap events report.
//!
//! Default profile: about a minute, >= 60 sales. FORECOURT_LONG=1: >= 500 sales.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use dispenser::{DartConfig, DartMaster, DecimalsConfig, DispenserDriver, FpConfig};
use forecourt_events::{Decimal, DispenserEvent};
use pump_sim::{CustomerProfile, FaultOptions, Scenario, SimOptions};
use support::{long_profile, sales, PtyPair};
use tokio::sync::{mpsc, watch};

const SCENARIO: &str = r#"
[[pump]]
fp = 1
prices = ["7.85", "8.32"]
[[pump]]
fp = 2
prices = ["7.85", "8.32"]
[[pump]]
fp = 3
prices = ["1.99"]
[[pump]]
fp = 4
prices = ["7.85", "8.32", "9.10"]
"#;

#[derive(Debug, Clone, PartialEq)]
struct Truth {
    kind: String,
    fp: u8,
    nozzle: u8,
    volume: Decimal,
    amount: Decimal,
    price: Decimal,
}

fn read_truth(path: &std::path::Path) -> Vec<Truth> {
    let text = std::fs::read_to_string(path).expect("sales log");
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json line");
            let dec = |k: &str| v[k].as_str().unwrap().parse::<Decimal>().unwrap();
            Truth {
                kind: v["kind"].as_str().unwrap().to_string(),
                fp: v["fp"].as_u64().unwrap() as u8,
                nozzle: v["nozzle"].as_u64().unwrap() as u8,
                volume: dec("volume"),
                amount: dec("amount"),
                price: dec("price"),
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sales_survive_a_faulty_line() {
    let long = long_profile();
    let (customers_s, min_sales) = if long { (200.0, 500) } else { (30.0, 60) };

    let pty = PtyPair::new();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("sales.jsonl");
    let (stop_tx, stop_rx) = watch::channel(false);

    let mut opts = SimOptions::new(&pty.b, Scenario::from_toml(SCENARIO).unwrap());
    opts.random = true;
    opts.seed = 2024;
    opts.sales_log = Some(log.clone());
    opts.customers = CustomerProfile {
        litres: (2.0, 40.0),
        flow_lps: 40.0,
        pause_s: (0.2, 0.6),
        // After the master's first totalizer readings: a sale missed before any baseline
        // could not be detected.
        first_lift_s: (2.0, 3.0),
        until_s: Some(customers_s),
    };
    opts.faults = FaultOptions {
        corrupt_rate: 1e-3,
        byte_drop_rate: 2e-4,
        delay_ms: 120,
        delay_rate: 2e-3,
        silences_per_min: 1.0,
        silence_s: 1.5,
        restarts_per_min: 2.0,
        // The final DC2 after the completion's block, and blocks with it corrupted: the sale
        // must still carry its final volume.
        late_final_dc2_rate: 0.3,
        corrupt_final_dc2_rate: 0.3,
        until_s: Some(customers_s),
        ..FaultOptions::default()
    };
    let sim = tokio::spawn(pump_sim::run(opts, stop_rx.clone()));

    let fps = (1..=4)
        .map(|fp| FpConfig {
            fp,
            address: 0x4F + fp,
            decimals: DecimalsConfig::default(),
            grades: vec![],
            nozzles: Some(if fp == 4 {
                3
            } else if fp == 3 {
                1
            } else {
                2
            }),
        })
        .collect();
    let mut cfg = DartConfig::new(&pty.a, fps);
    cfg.auto_authorize = true;
    cfg.response_timeout_ms = 60;
    cfg.poll_interval_ms = 20;
    cfg.totals_interval_s = 2;
    let (ev_tx, mut ev_rx) = mpsc::channel(4096);
    let master = tokio::spawn(DartMaster::new(cfg).unwrap().run(ev_tx, stop_rx));

    // Customers stop at `customers_s`; then every fill ends, is reset, and every nozzle's
    // totalizer is read again (after sales and every 2 s).
    let end = tokio::time::Instant::now() + Duration::from_secs_f64(customers_s + 8.0);
    let mut events = Vec::new();
    loop {
        tokio::select! {
            ev = ev_rx.recv() => events.push(ev.expect("master running")),
            _ = tokio::time::sleep_until(end) => break,
        }
    }
    stop_tx.send(true).unwrap();
    master.await.unwrap().unwrap();
    let injected = sim.await.unwrap().unwrap();
    assert!(
        injected.final_dc2_corrupted > 0 && injected.bytes_corrupted > 0,
        "faults not injected: {injected:?}"
    );
    while let Ok(ev) = ev_rx.try_recv() {
        events.push(ev);
    }

    let truth = read_truth(&log);
    let true_sales: Vec<&Truth> = truth.iter().filter(|t| t.kind == "sale").collect();
    let reported = sales(&events);
    println!(
        "ground truth: {} sales, {} lost fills; reported: {} sales, {} gaps, {} offline periods",
        true_sales.len(),
        truth.len() - true_sales.len(),
        reported.len(),
        events
            .iter()
            .filter(|e| matches!(e, DispenserEvent::SaleGap { .. }))
            .count(),
        events
            .iter()
            .filter(|e| matches!(e, DispenserEvent::PumpOffline { .. }))
            .count()
    );
    assert!(
        true_sales.len() >= min_sales,
        "only {} sales in the ground truth",
        true_sales.len()
    );

    // Each FP's reports must be an in-order subsequence of its true sales, values exact.
    let mut missed: BTreeMap<(u8, u8), i64> = BTreeMap::new();
    for fp in 1..=4u8 {
        let truth_fp: Vec<&&Truth> = true_sales.iter().filter(|t| t.fp == fp).collect();
        let mut next = 0;
        for s in reported.iter().filter(|s| s.fp == fp) {
            let found = truth_fp[next..].iter().position(|t| {
                t.nozzle == s.nozzle
                    && t.volume == s.volume
                    && t.amount == s.amount
                    && t.price == s.price
            });
            let Some(k) = found else {
                panic!("fp {fp}: reported sale {s:?} is not a true sale (or reported twice)");
            };
            for t in &truth_fp[next..next + k] {
                *missed.entry((fp, t.nozzle)).or_default() += t.volume.minor();
            }
            next += k + 1;
        }
        for t in &truth_fp[next..] {
            *missed.entry((fp, t.nozzle)).or_default() += t.volume.minor();
        }
    }
    for t in truth.iter().filter(|t| t.kind == "lost_fill") {
        *missed.entry((t.fp, t.nozzle)).or_default() += t.volume.minor();
    }
    missed.retain(|_, v| *v != 0);

    let mut gaps: BTreeMap<(u8, u8), i64> = BTreeMap::new();
    for e in &events {
        if let DispenserEvent::SaleGap {
            fp,
            nozzle,
            missing_volume,
            ..
        } = e
        {
            assert_eq!(missing_volume.scale(), 2);
            *gaps.entry((*fp, *nozzle)).or_default() += missing_volume.minor();
        }
    }
    assert_eq!(
        gaps, missed,
        "sale_gap volume per (fp, nozzle) vs sales not reported + fills lost (0.01 l units)"
    );
    assert!(
        reported.len() * 10 >= true_sales.len() * 9,
        "most sales are reported directly: {} of {}",
        reported.len(),
        true_sales.len()
    );
}
