//! Arrival-path cost and latency on a generated scenario:
//! `cargo run --release -p analytics --example arrival_latency -- [SEED] [SALES]`
//! Prints (1) the in-process cost of `observe_frame` + `poll` per frame (what a frame adds to the
//! station loop before its arrival event can be appended), (2) the event-time latency of the
//! arrivals: the first word on a car (its provisional arrival, or the confirmed one when none was
//! said) - its first confident read, the confirmation - the first confident read, and the first
//! word - car stopped (truth), and (3) the provisional arrivals taken back, per confirmed one.

use std::time::Instant;

use std::collections::BTreeMap;

use analytics::{Analytics, AnalyticsConfig, AnalyticsEvent};
use matcher::TraceReader;
use trace_gen::{generate_with_visits, is_valid_plate, ScenarioConfig};
use wire::ArrivalState;

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
    let mut config = AnalyticsConfig::default();
    if let Some(c) = std::env::var("PROVISIONAL_MIN_CONFIDENCE")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        config.provisional_min_confidence = c;
    }
    if let Some(n) = std::env::var("PROVISIONAL_MIN_READS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        config.provisional_min_reads = n;
    }
    let mut a = Analytics::new(layout, config, is_valid_plate);
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
    // Per confirmed visit, when it was first said (its provisional arrival, by visit key).
    let said: BTreeMap<&str, i64> = arrivals
        .iter()
        .filter(|x| x.state == ArrivalState::Provisional)
        .map(|x| (x.visit.as_str(), x.t))
        .collect();
    let confirmed: Vec<_> = arrivals
        .iter()
        .filter(|x| x.state == ArrivalState::Confirmed)
        .collect();
    let first_word = |x: &wire::Arrival| said.get(x.visit.as_str()).copied().unwrap_or(x.t);
    let mut since_first: Vec<i64> = confirmed
        .iter()
        .map(|x| first_word(x) - x.first_seen_t)
        .collect();
    let mut confirmed_after: Vec<i64> = confirmed.iter().map(|x| x.t - x.first_seen_t).collect();
    let mut since_stop: Vec<i64> = confirmed
        .iter()
        .filter_map(|x| {
            visits
                .iter()
                .find(|v| v.plate.as_ref() == Some(&x.plate) && x.t >= v.queue_t && x.t <= v.gone_t)
                .map(|v| first_word(x) - v.stop_t)
        })
        .collect();
    let (provisional, retracted) = a.provisional_counts();
    println!(
        "seed {seed}, {sales} sales: {} frames, {} confirmed arrivals, {provisional} provisional \
         ({} confirmed as said), {retracted} taken back ({:.2} % of the confirmed arrivals)",
        cost_ns.len(),
        confirmed.len(),
        confirmed
            .iter()
            .filter(|x| said.contains_key(x.visit.as_str()))
            .count(),
        100.0 * retracted as f64 / confirmed.len().max(1) as f64
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
        "arrival said (provisional or confirmed) - first confident read: p50 {} ms, p99 {} ms",
        pct(&mut since_first, 50),
        pct(&mut since_first, 99)
    );
    println!(
        "arrival confirmed - first confident read: p50 {} ms, p99 {} ms",
        pct(&mut confirmed_after, 50),
        pct(&mut confirmed_after, 99)
    );
    println!(
        "arrival said - car stopped (truth): p50 {} ms, p99 {} ms",
        pct(&mut since_stop, 50),
        pct(&mut since_stop, 99)
    );
}
