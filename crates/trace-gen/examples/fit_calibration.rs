//! Fits the matcher's calibration (raw evidence score -> probability the plate is right) on the
//! tuning families of the randomised generator only, and prints the knots for
//! `matcher::matcher::calibrated`:
//! `cargo run --release -p trace-gen --example fit_calibration -- [SALES_PER_FAMILY [FIRST_SEED]]`
//! (defaults: 3000 sales per tuning family, seed 100001, so the seeds differ from eval_families').
//! Check the fit where it was not made: eval_families' held-out families and the independent
//! simulator's traces (`../shared/scenarios`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use matcher::{replay_with, MatcherConfig};
use trace_gen::{generate_randomised, is_valid_plate, FAMILIES};

const SALES_PER_TRACE: usize = 250;
/// Score bins: fine near the top, where the decisions are.
const EDGES: [f32; 15] = [
    0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98, 0.995, 1.0001,
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let per_family = (args.first().copied().unwrap_or(3000) as usize).max(1);
    let first_seed = args.get(1).copied().unwrap_or(100_001);
    let traces = per_family.div_ceil(SALES_PER_TRACE);
    let jobs: Vec<(usize, u64)> = FAMILIES
        .iter()
        .enumerate()
        .filter(|(_, f)| !f.held_out)
        .flat_map(|(f, _)| (0..traces).map(move |n| (f, first_seed + n as u64)))
        .collect();
    let next = AtomicUsize::new(0);
    // (score, right) for every sale with a candidate plate.
    let pairs: Mutex<Vec<(f32, bool)>> = Mutex::new(Vec::new());
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                while let Some(&(family, seed)) = jobs.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let (mut trace, mut truth) = (Vec::new(), Vec::new());
                    let scenario = generate_randomised(
                        &FAMILIES[family],
                        seed,
                        SALES_PER_TRACE,
                        &mut trace,
                        &mut truth,
                    )
                    .expect("writing to memory");
                    let truth: std::collections::BTreeMap<String, Option<String>> = scenario
                        .sales
                        .iter()
                        .map(|s| (s.sale_ref.clone(), s.plate.clone()))
                        .collect();
                    let mut found = Vec::new();
                    replay_with(
                        trace.as_slice(),
                        &MatcherConfig::default(),
                        is_valid_plate,
                        |line, matched| {
                            if let (Some(c), Some(r)) = (&matched.candidate, &line.sale_ref) {
                                let right = truth.get(r).cloned().flatten().as_deref()
                                    == Some(c.plate.as_str());
                                found.push((c.score, right));
                            }
                            Ok(())
                        },
                    )
                    .expect("a generated trace replays");
                    pairs.lock().expect("no worker panicked").extend(found);
                }
            });
        }
    });
    let pairs = pairs.into_inner()?;
    println!(
        "{} candidate plates from {} traces of the tuning families",
        pairs.len(),
        jobs.len()
    );
    println!("score bin        count  right   accuracy  isotonic");
    let mut bins: Vec<(f32, f32, usize, usize)> = EDGES
        .windows(2)
        .map(|w| {
            let inside = pairs.iter().filter(|(s, _)| *s >= w[0] && *s < w[1]);
            let (n, right) = inside.fold((0, 0), |(n, r), (_, ok)| (n + 1, r + usize::from(*ok)));
            (w[0], w[1], n, right)
        })
        .collect();
    bins.retain(|b| b.2 > 0);
    // Pool adjacent violators: accuracy must not fall as the score rises.
    let mut pools: Vec<(usize, usize, usize)> = Vec::new(); // (first bin, count, right)
    for (i, b) in bins.iter().enumerate() {
        pools.push((i, b.2, b.3));
        while pools.len() > 1 {
            let (a, b) = (pools[pools.len() - 2], pools[pools.len() - 1]);
            if (a.2 as f64 / a.1 as f64) > (b.2 as f64 / b.1 as f64) {
                pools.pop();
                pools.pop();
                pools.push((a.0, a.1 + b.1, a.2 + b.2));
            } else {
                break;
            }
        }
    }
    let isotonic = |i: usize| {
        let p = pools
            .iter()
            .rev()
            .find(|p| p.0 <= i)
            .expect("bin 0 starts a pool");
        // Laplace: an empty error count is not a certainty.
        (p.2 as f64 + 1.0) / (p.1 as f64 + 2.0)
    };
    for (i, (lo, hi, n, right)) in bins.iter().enumerate() {
        println!(
            "[{lo:.3},{hi:.3})  {n:>6} {right:>6}   {:>7.3}%  {:>7.3}%",
            100.0 * *right as f64 / *n as f64,
            100.0 * isotonic(i)
        );
    }
    println!("knots (bin lower edge, isotonic accuracy):");
    for (i, (lo, ..)) in bins.iter().enumerate() {
        println!("    ({lo:.3}, {:.4}),", isotonic(i));
    }
    Ok(())
}
