//! Arrival-path cost and latency on a trace:
//! `cargo run --release -p analytics --example arrival_latency -- [SEED] [SALES]` (trace-gen's
//! scenario, with its truth), `-- --family NAME [SEED] [SALES]` (a randomised family, held-out
//! ones included) or `-- --trace FILE` (any trace file, `-` for standard input: e.g. the
//! independent simulator's, through `zcat`).
//!
//! Prints (1) the in-process cost of `observe_frame` + `poll` per frame (what a frame adds to the
//! station loop before its arrival event can be appended), (2) the event-time latency of the
//! arrivals: the first word on a car (its provisional arrival, or the confirmed one when none was
//! said) after its first confident read in a zone (the first read of the car's arrival that the
//! analytics use at all: `min_read_confidence`, inside a fuelling point's zone), the confirmation
//! after that read, and with truth the first word after the car stopped, (3) the provisional
//! arrivals taken back, per confirmed one, and (4) the floor: when the confirmed plate was first
//! read exactly after the car's first confident read, with the provisional confidence and with
//! any (no rule that says the right plate can be sooner). The `PROVISIONAL_MIN_READS`,
//! `PROVISIONAL_MIN_CONFIDENCE` and `PROVISIONAL_HOLD_MS` variables override the defaults;
//! `DIAG` (with `--family`) lists the retracted arrivals by kind.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use analytics::{Analytics, AnalyticsConfig, AnalyticsEvent};
use matcher::TraceReader;
use trace_gen::{generate_with_visits, is_valid_plate, ScenarioConfig, TruthVisit};
use wire::ArrivalState;

fn pct(v: &mut [i64], p: usize) -> i64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    v[(v.len() * p).div_ceil(100).max(1) - 1]
}

fn env_override<T: std::str::FromStr>(name: &str, value: &mut T) {
    if let Some(v) = std::env::var(name).ok().and_then(|v| v.parse().ok()) {
        *value = v;
    }
}

/// A trace to read, what it is called in the report, the truth's visits when it has them, and
/// the plates of its sales when the generator said them.
struct Source {
    trace: Vec<u8>,
    name: String,
    visits: Option<Vec<TruthVisit>>,
    sold_plates: Option<BTreeSet<String>>,
}

fn source(args: &[String]) -> Source {
    let number =
        |i: usize, default: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    match args.first().map(String::as_str) {
        Some("--trace") => {
            let path = args.get(1).expect("--trace FILE (or -)");
            let bytes = if path == "-" {
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes).unwrap();
                bytes
            } else {
                std::fs::read(path).unwrap()
            };
            Source {
                trace: bytes,
                name: format!("trace {path}"),
                visits: None,
                sold_plates: None,
            }
        }
        Some("--family") => {
            let name = args.get(1).expect("--family NAME [SEED] [SALES]");
            let family = trace_gen::family(name).expect("a family trace-gen knows");
            let (seed, sales) = (number(2, 1), number(3, 1000));
            let mut trace = Vec::new();
            let sc = trace_gen::generate_randomised(
                family,
                seed,
                sales as usize,
                &mut trace,
                std::io::sink(),
            )
            .unwrap();
            let plates = sc.sales.iter().filter_map(|s| s.plate.clone()).collect();
            let kind = if family.held_out {
                "held-out"
            } else {
                "tuning"
            };
            Source {
                trace,
                name: format!("family {name} ({kind}), seed {seed}, {sales} sales"),
                visits: None,
                sold_plates: Some(plates),
            }
        }
        _ => {
            let (seed, sales) = (number(0, 21), number(1, 2000));
            let mut trace = Vec::new();
            let (_, visits) = generate_with_visits(
                &ScenarioConfig::new(seed, sales as usize),
                &mut trace,
                std::io::sink(),
            )
            .unwrap();
            Source {
                trace,
                name: format!("seed {seed}, {sales} sales"),
                visits: Some(visits),
                sold_plates: None,
            }
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Source {
        trace,
        name,
        visits: truth,
        sold_plates,
    } = source(&args);
    let (layout, mut reader) = TraceReader::open(trace.as_slice()).unwrap();
    let mut config = AnalyticsConfig::default();
    env_override(
        "PROVISIONAL_MIN_CONFIDENCE",
        &mut config.provisional_min_confidence,
    );
    env_override("PROVISIONAL_MIN_READS", &mut config.provisional_min_reads);
    env_override("PROVISIONAL_HOLD_MS", &mut config.provisional_hold_ms);
    let sure = config.provisional_min_confidence;
    let mut a = Analytics::new(layout, config, is_valid_plate);
    let (mut cost_ns, mut arrival_cost_ns) = (Vec::new(), Vec::new());
    let mut arrivals = Vec::new();
    // Per plate text, when it was read exactly so with `provisional_min_confidence`, and with
    // any confidence: what no rule that says the right plate can come before.
    let (mut sure_reads, mut any_reads) = (
        BTreeMap::<String, Vec<i64>>::new(),
        BTreeMap::<String, Vec<i64>>::new(),
    );
    while let Some(record) = reader.next_record().unwrap() {
        if let Some(frame) = record.to_frame() {
            for p in &frame.plates {
                any_reads.entry(p.text.clone()).or_default().push(frame.t);
                if p.confidence >= sure {
                    sure_reads.entry(p.text.clone()).or_default().push(frame.t);
                }
            }
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
    let within_1s = since_first.iter().filter(|&&ms| ms <= 1000).count();
    let mut confirmed_after: Vec<i64> = confirmed.iter().map(|x| x.t - x.first_seen_t).collect();
    if let Some(truep) = sold_plates.filter(|_| std::env::var("DIAG").is_ok()) {
        let (mut real, mut later, mut fake) = (0, 0, 0);
        for r in arrivals
            .iter()
            .filter(|x| x.state == ArrivalState::Retracted)
        {
            let conf_later = confirmed
                .iter()
                .any(|c| c.plate == r.plate && (c.t - r.t).abs() < 300_000);
            if !truep.contains(&r.plate) {
                fake += 1;
                println!("FAKE {} conf {} reads {}", r.plate, r.confidence, r.reads);
            } else if conf_later {
                later += 1
            } else {
                real += 1;
                println!(
                    "REAL {} conf {} reads {} held {}",
                    r.plate,
                    r.confidence,
                    r.reads,
                    r.t - r.first_seen_t
                )
            }
        }
        println!("DIAG retracted: misread {fake}, right and confirmed later {later}, right never confirmed {real}");
    }
    let (provisional, retracted) = a.provisional_counts();
    println!(
        "{name}: {} frames, {} confirmed arrivals, {provisional} provisional ({} confirmed as \
         said), {retracted} taken back ({:.2} % of the confirmed arrivals)",
        cost_ns.len(),
        confirmed.len(),
        confirmed
            .iter()
            .filter(|x| said.contains_key(x.visit.as_str()))
            .count(),
        100.0 * retracted as f64 / confirmed.len().max(1) as f64
    );
    println!(
        "observe_frame+poll per frame: p50 {} ns, p99 {} ns",
        pct(&mut cost_ns, 50),
        pct(&mut cost_ns, 99),
    );
    println!(
        "frames that produced an arrival (incl. JSON body): p50 {} ns, p99 {} ns",
        pct(&mut arrival_cost_ns, 50),
        pct(&mut arrival_cost_ns, 99)
    );
    println!(
        "arrival said (provisional or confirmed) - first confident read in a zone: {:.2} % \
         within 1 s, p50 {} ms, p90 {} ms, p99 {} ms",
        100.0 * within_1s as f64 / since_first.len().max(1) as f64,
        pct(&mut since_first, 50),
        pct(&mut since_first, 90),
        pct(&mut since_first, 99)
    );
    for (what, reads) in [
        ("with the provisional confidence", &sure_reads),
        ("with any confidence", &any_reads),
    ] {
        // The first exact read of the plate at or after the car's first confident read.
        let mut floor: Vec<i64> = confirmed
            .iter()
            .filter_map(|x| {
                let times = reads.get(&x.plate)?;
                let at = times.partition_point(|t| *t < x.first_seen_t);
                times.get(at).map(|t| t - x.first_seen_t)
            })
            .collect();
        let within = floor.iter().filter(|&&ms| ms <= 1000).count();
        println!(
            "floor: first read of the confirmed plate exactly, {what} - first confident read in \
             a zone: {:.2} % within 1 s, p50 {} ms, p99 {} ms",
            100.0 * within as f64 / floor.len().max(1) as f64,
            pct(&mut floor, 50),
            pct(&mut floor, 99)
        );
    }
    println!(
        "arrival confirmed - first confident read in a zone: p50 {} ms, p99 {} ms",
        pct(&mut confirmed_after, 50),
        pct(&mut confirmed_after, 99)
    );
    if let Some(visits) = truth {
        let mut since_stop: Vec<i64> = confirmed
            .iter()
            .filter_map(|x| {
                visits
                    .iter()
                    .find(|v| {
                        v.plate.as_ref() == Some(&x.plate) && x.t >= v.queue_t && x.t <= v.gone_t
                    })
                    .map(|v| first_word(x) - v.stop_t)
            })
            .collect();
        println!(
            "arrival said - car stopped (truth): p50 {} ms, p99 {} ms",
            pct(&mut since_stop, 50),
            pct(&mut since_stop, 99)
        );
    }
}
