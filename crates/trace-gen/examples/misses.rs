//! Prints the sales the matcher got wrong or missed, with its reasons, for one scenario:
//! `cargo run --release -p trace-gen --example misses -- SEED SALES`

use std::collections::BTreeMap;

use matcher::{replay_with, MatcherConfig, TruthLine};
use trace_gen::{generate, is_valid_plate, ScenarioConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let seed = args.first().copied().unwrap_or(1);
    let sales = args.get(1).copied().unwrap_or(500) as usize;
    let (mut trace, mut truth) = (Vec::new(), Vec::new());
    generate(&ScenarioConfig::new(seed, sales), &mut trace, &mut truth)?;
    let truth: BTreeMap<String, TruthLine> = String::from_utf8(truth)?
        .lines()
        .map(|l| serde_json::from_str::<TruthLine>(l).map(|t| (t.sale_ref.clone(), t)))
        .collect::<Result<_, _>>()?;
    replay_with(
        trace.as_slice(),
        &MatcherConfig::default(),
        is_valid_plate,
        |sale, matched| {
            let Some(expected) = sale.sale_ref.as_ref().and_then(|r| truth.get(r)) else {
                return Ok(());
            };
            let wrong = sale.plate.is_some() && sale.plate != expected.plate;
            let missed = sale.plate.is_none() && expected.readable;
            if wrong || missed {
                println!(
                    "{} {} fp{} t={} fill {}s truth {:?} got {:?} {:.3} [{}] {}",
                    if wrong { "WRONG " } else { "missed" },
                    expected.sale_ref,
                    sale.fp,
                    sale.t,
                    (matched.fill_end - matched.fill_start.unwrap_or(matched.fill_end)) / 1000,
                    expected.plate,
                    sale.plate,
                    sale.confidence,
                    expected.cases.join(","),
                    matched.verdict.reason
                );
            }
            Ok(())
        },
    )?;
    Ok(())
}
