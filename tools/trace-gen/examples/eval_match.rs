//! Generates scenarios and scores the matcher on them:
//! `cargo run --release -p trace-gen --example eval_match -- [SALES [FIRST_SEED [SALES_PER_TRACE]]]`
//! (defaults: 20000 sales, seed 1, 500 sales per trace).

use matcher::{eval_match, EvalReport, MatcherConfig};
use trace_gen::{generate, is_valid_plate, ScenarioConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let sales = args.first().copied().unwrap_or(20_000) as usize;
    let first_seed = args.get(1).copied().unwrap_or(1);
    let per_trace = args.get(2).copied().unwrap_or(500).max(1) as usize;
    let mut config = MatcherConfig::default();
    // For calibration work: see every verdict the matcher would give at a lower threshold.
    if let Ok(value) = std::env::var("MIN_CONFIDENCE") {
        config.min_confidence = value.parse()?;
    }
    let mut report = EvalReport::default();
    let mut seed = first_seed;
    let started = std::time::Instant::now();
    let mut trace_bytes = 0;
    while report.all.sales < sales {
        let (mut trace, mut truth) = (Vec::new(), Vec::new());
        generate(
            &ScenarioConfig::new(seed, per_trace),
            &mut trace,
            &mut truth,
        )?;
        trace_bytes += trace.len();
        let one = eval_match(trace.as_slice(), truth.as_slice(), &config, is_valid_plate)?;
        report.merge(&one);
        seed += 1;
    }
    println!(
        "seeds {first_seed}..{}  trace {:.0} MB  {:.1} s",
        seed - 1,
        trace_bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    print!("{report}");
    println!(
        "worst calibration gap (deciles with >= 50 plates): {:.2} points",
        report.worst_calibration_gap(50) * 100.0
    );
    Ok(())
}
