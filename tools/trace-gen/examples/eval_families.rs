//! Scores the matcher (default config) on domain-randomised scenarios of every family:
//! `cargo run --release -p trace-gen --example eval_families -- [SALES_PER_FAMILY [FIRST_SEED]]`
//! (defaults: 5000 sales per family, seed 1; the four held-out families then total 20,000 sales).
//! Each seed is a new station drawn from the family, with `SALES_PER_TRACE` (250) sales.
//! Prints each family's report, then the totals of the tuning and of the held-out families.
//! Traces are scored on every core; the default run is about 450 CPU-seconds with the matcher of
//! f39a699 (most of it the replay), and writes nothing to disk.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use matcher::{eval_match, EvalReport, MatcherConfig};
use trace_gen::{generate_randomised, is_valid_plate, FAMILIES};

const SALES_PER_TRACE: usize = 250;

fn summary(label: &str, report: &EvalReport) {
    let a = &report.all;
    println!(
        "{label:<26} sales {:>6}  readable {:>6}  emitted {:>6}  wrong {:>4}  precision {:.4}%  \
         recall {:.4}%  worst calibration gap {:.2} points (deciles >= 50 plates)",
        a.sales,
        a.readable,
        a.emitted,
        a.emitted - a.correct,
        report.precision() * 100.0,
        report.recall() * 100.0,
        report.worst_calibration_gap(50) * 100.0
    );
}

/// One trace to generate and score.
struct Job {
    family: usize,
    seed: u64,
    sales: usize,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let sales_per_family = (args.first().copied().unwrap_or(5000) as usize).max(1);
    let first_seed = args.get(1).copied().unwrap_or(1);
    let config = MatcherConfig::default();
    let started = std::time::Instant::now();
    let traces = sales_per_family.div_ceil(SALES_PER_TRACE);
    let jobs: Vec<Job> = (0..FAMILIES.len())
        .flat_map(|family| {
            (0..traces).map(move |n| Job {
                family,
                seed: first_seed + n as u64,
                sales: SALES_PER_TRACE.min(sales_per_family - n * SALES_PER_TRACE),
            })
        })
        .collect();
    // Traces are independent: score them on every core, merge in job order (same output).
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<(EvalReport, usize, f64)>>> =
        Mutex::new((0..jobs.len()).map(|_| None).collect());
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(job) = jobs.get(index) else {
                    break;
                };
                let job_started = std::time::Instant::now();
                let (mut trace, mut truth) = (Vec::new(), Vec::new());
                generate_randomised(
                    &FAMILIES[job.family],
                    job.seed,
                    job.sales,
                    &mut trace,
                    &mut truth,
                )
                .expect("writing to memory");
                let report =
                    eval_match(trace.as_slice(), truth.as_slice(), &config, is_valid_plate)
                        .expect("a generated trace replays");
                let elapsed = job_started.elapsed().as_secs_f64();
                results.lock().expect("no worker panicked")[index] =
                    Some((report, trace.len(), elapsed));
            });
        }
    });
    let results = results.into_inner()?;
    let (mut tuning, mut held_out) = (EvalReport::default(), EvalReport::default());
    let mut rows = Vec::new();
    for (f, family) in FAMILIES.iter().enumerate() {
        let mut report = EvalReport::default();
        let (mut trace_bytes, mut seconds) = (0, 0.0);
        for (job, result) in jobs.iter().zip(&results) {
            if job.family == f {
                let (one, bytes, elapsed) = result.as_ref().expect("every job ran");
                report.merge(one);
                trace_bytes += bytes;
                seconds += elapsed;
            }
        }
        println!(
            "== {}{}: {}\nseeds {first_seed}..{}  trace {:.0} MB  {:.1} s on one core",
            family.name,
            if family.held_out { " (held out)" } else { "" },
            family.about,
            first_seed + traces as u64 - 1,
            trace_bytes as f64 / 1e6,
            seconds
        );
        print!("{report}");
        println!(
            "worst calibration gap (deciles with >= 50 plates): {:.2} points\n",
            report.worst_calibration_gap(50) * 100.0
        );
        if family.held_out {
            held_out.merge(&report);
        } else {
            tuning.merge(&report);
        }
        rows.push((family.name, family.held_out, report));
    }
    println!("== per family");
    for (name, held, report) in &rows {
        summary(
            &format!("{name}{}", if *held { " (held out)" } else { "" }),
            report,
        );
    }
    println!(
        "== totals ({:.0} s, {workers} threads)",
        started.elapsed().as_secs_f64()
    );
    summary("tuning families", &tuning);
    summary("held-out families", &held_out);
    Ok(())
}
