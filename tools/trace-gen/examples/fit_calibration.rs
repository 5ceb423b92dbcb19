//! Fits the matcher's calibration (raw evidence score -> probability the plate is right) on the
//! tuning families of the randomised generator only, and prints the knots for
//! `matcher::matcher::calibrated`. Each family gets its own isotonic curve, each pooled bin its
//! one-sided 95% lower bound (a bin with few plates vouches for little), and the knots take the
//! lowest of them at every score: a calibration that holds for the hardest family seen, not for
//! their average (an unseen station may be as hard as the hardest):
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
    // (family, score, right) for every sale with a candidate plate.
    let pairs: Mutex<Vec<(usize, f32, bool)>> = Mutex::new(Vec::new());
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
                    // Per sale, its last verdict (a correction replaces the first).
                    let mut found = std::collections::BTreeMap::new();
                    replay_with(
                        trace.as_slice(),
                        &MatcherConfig::default(),
                        is_valid_plate,
                        |line, matched| {
                            let Some(r) = line.sale_ref else {
                                return Ok(());
                            };
                            let scored = matched.candidate.as_ref().map(|c| {
                                let right = truth.get(&r).cloned().flatten().as_deref()
                                    == Some(c.plate.as_str());
                                (family, c.score, right)
                            });
                            found.insert(r, scored);
                            Ok(())
                        },
                    )
                    .expect("a generated trace replays");
                    pairs
                        .lock()
                        .expect("no worker panicked")
                        .extend(found.into_values().flatten());
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
    let tuning: Vec<usize> = (0..FAMILIES.len())
        .filter(|&f| !FAMILIES[f].held_out)
        .collect();
    let curves: Vec<(usize, Vec<f64>)> = tuning
        .iter()
        .map(|&f| {
            let scored: Vec<(f32, bool)> = pairs
                .iter()
                .filter(|p| p.0 == f)
                .map(|p| (p.1, p.2))
                .collect();
            (f, isotonic(&scored))
        })
        .collect();
    let all: Vec<(f32, bool)> = pairs.iter().map(|p| (p.1, p.2)).collect();
    print!("score bin        count  right   all (isotonic)");
    for (f, _) in &curves {
        print!("  {:>9}", FAMILIES[*f].name);
    }
    println!("  lowest");
    let pooled = isotonic(&all);
    let mut lowest = Vec::new();
    for (b, w) in EDGES.windows(2).enumerate() {
        let (n, right) = all
            .iter()
            .filter(|(s, _)| *s >= w[0] && *s < w[1])
            .fold((0, 0), |(n, r), (_, ok)| (n + 1, r + usize::from(*ok)));
        let low = curves.iter().map(|(_, c)| c[b]).fold(1.0, f64::min);
        lowest.push(low);
        print!(
            "[{:.3},{:.3})  {n:>6} {right:>6}   {:>7.3}%",
            w[0],
            w[1],
            100.0 * pooled[b]
        );
        for (_, c) in &curves {
            print!("  {:>8.3}%", 100.0 * c[b]);
        }
        println!("  {:>7.3}%", 100.0 * low);
    }
    println!("knots (bin lower edge, lowest family's lower bound):");
    for (w, low) in EDGES.windows(2).zip(&lowest) {
        println!("    ({:.3}, {low:.4}),", w[0]);
    }
    Ok(())
}

/// Per score bin of [`EDGES`], the share of right plates, made non-decreasing in the score by
/// pooling adjacent violators (Laplace-smoothed while pooling), then the one-sided 95% lower bound
/// of each bin's pool.
fn isotonic(scored: &[(f32, bool)]) -> Vec<f64> {
    let bins: Vec<(usize, usize)> = EDGES
        .windows(2)
        .map(|w| {
            scored
                .iter()
                .filter(|(s, _)| *s >= w[0] && *s < w[1])
                .fold((0, 0), |(n, r), (_, ok)| (n + 1, r + usize::from(*ok)))
        })
        .collect();
    let rate = |n: usize, r: usize| (r as f64 + 1.0) / (n as f64 + 2.0);
    // Wilson score interval, one-sided 95%.
    let lower_bound = |n: usize, r: usize| {
        if n == 0 {
            return 0.0;
        }
        let (n, p, z) = (n as f64, r as f64 / n as f64, 1.645f64);
        let centre = p + z * z / (2.0 * n);
        let spread = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt();
        (centre - spread) / (1.0 + z * z / n)
    };
    // (first bin, count, right)
    let mut pools: Vec<(usize, usize, usize)> = Vec::new();
    for (i, &(n, r)) in bins.iter().enumerate() {
        pools.push((i, n, r));
        while pools.len() > 1 {
            let (a, b) = (pools[pools.len() - 2], pools[pools.len() - 1]);
            if rate(a.1, a.2) > rate(b.1, b.2) {
                pools.pop();
                pools.pop();
                pools.push((a.0, a.1 + b.1, a.2 + b.2));
            } else {
                break;
            }
        }
    }
    let mut curve: Vec<f64> = (0..bins.len())
        .map(|i| {
            let p = pools
                .iter()
                .rev()
                .find(|p| p.0 <= i)
                .expect("bin 0 starts a pool");
            lower_bound(p.1, p.2)
        })
        .collect();
    // Never above a higher score's value: the bound can dip where a pool is small.
    for i in (0..curve.len().saturating_sub(1)).rev() {
        curve[i] = curve[i].min(curve[i + 1]);
    }
    curve
}
