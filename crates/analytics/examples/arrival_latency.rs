//! Arrival-path cost and latency on a generated scenario:
//! `cargo run --release -p analytics --example arrival_latency -- [SEED] [SALES]`
//! Prints (1) the in-process cost of `observe_frame` + `poll` per frame (what a frame adds to the
//! station loop before its arrival event can be appended), and (2) the event-time latency of
//! arrival events: deciding read - first confident read, and deciding read - car stopped (truth).

use std::time::Instant;

use analytics::{Analytics, AnalyticsConfig, AnalyticsEvent};
use matcher::TraceReader;
use trace_gen::{generate_with_visits, is_valid_plate, ScenarioConfig};

fn pct(v: &mut [i64], p: usize) -> i64 {
    v.sort_unstable();
    v[(v.len() * p).div_ceil(100).max(1) - 1]
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (seed, sales) = (
        args.first().copied().unwrap_or(21),
        args.get(1).copied().unwrap_or(2000),
    );
    let (mut trace, mut truth) = (Vec::new(), Vec::new());
    let (_, visits) = generate_with_visits(
        &ScenarioConfig::new(seed, sales as usize),
        &mut trace,
        &mut truth,
    )
    .unwrap();
    let (layout, mut reader) = TraceReader::open(trace.as_slice()).unwrap();
    let mut a = Analytics::new(layout, AnalyticsConfig::default(), is_valid_plate);
    let (mut cost_ns, mut arrival_cost_ns) = (Vec::new(), Vec::new());
    let mut arrivals = Vec::new();
    while let Some(record) = reader.next_record().unwrap() {
        if let Some(frame) = record.to_frame() {
            let start = Instant::now();
            a.observe_frame(&frame);
            let out = a.poll(frame.t);
            let ns = start.elapsed().as_nanos() as i64;
            cost_ns.push(ns);
            for e in out {
                if let AnalyticsEvent::Arrival(arr) = e {
                    // Serialising the outbox body is part of the path.
                    let _ = AnalyticsEvent::Arrival(arr.clone()).body();
                    arrival_cost_ns.push(start.elapsed().as_nanos() as i64);
                    arrivals.push(arr);
                }
            }
        } else if let Some(event) = record.to_dispenser() {
            a.observe_dispenser(&event);
        }
    }
    let mut since_first: Vec<i64> = arrivals.iter().map(|x| x.t - x.first_seen_t).collect();
    let mut since_stop: Vec<i64> = arrivals
        .iter()
        .filter_map(|x| {
            visits
                .iter()
                .find(|v| v.plate.as_ref() == Some(&x.plate) && x.t >= v.queue_t && x.t <= v.gone_t)
                .map(|v| x.t - v.stop_t)
        })
        .collect();
    println!(
        "seed {seed}, {sales} sales: {} frames, {} arrivals",
        cost_ns.len(),
        arrivals.len()
    );
    println!(
        "observe_frame+poll per frame: p50 {} ns, p99 {} ns, max {} ns",
        pct(&mut cost_ns, 50),
        pct(&mut cost_ns, 99),
        cost_ns.last().unwrap()
    );
    println!(
        "frames that produced an arrival (incl. JSON body): p50 {} ns, p99 {} ns",
        pct(&mut arrival_cost_ns, 50),
        pct(&mut arrival_cost_ns, 99)
    );
    println!(
        "arrival t - first confident read: p50 {} ms, p99 {} ms",
        pct(&mut since_first, 50),
        pct(&mut since_first, 99)
    );
    println!(
        "arrival t - car stopped (truth): p50 {} ms, p99 {} ms",
        pct(&mut since_stop, 50),
        pct(&mut since_stop, 99)
    );
}
