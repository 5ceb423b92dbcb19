//! Prints the sales the matcher got wrong or missed, with its reasons, for one scenario:
//! `cargo run --release -p trace-gen --example misses -- SEED SALES [FAMILY]` (with a family, the
//! scenario is one station drawn from that family of the randomised generator). With
//! `MISSES_DUMP=PATH` it also writes the trace to PATH and its truth to PATH.truth.

use std::collections::BTreeMap;

use matcher::{replay_with, MatcherConfig, TruthLine};
use trace_gen::{family, generate, generate_randomised, is_valid_plate, ScenarioConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let seed = args.first().map_or(Ok(1), |a| a.parse())?;
    let sales = args.get(1).map_or(Ok(500), |a| a.parse())?;
    let (mut trace, mut truth) = (Vec::new(), Vec::new());
    match args.get(2) {
        Some(name) => {
            let family = family(name).ok_or_else(|| format!("no family called {name}"))?;
            generate_randomised(family, seed, sales, &mut trace, &mut truth)?;
        }
        None => {
            generate(&ScenarioConfig::new(seed, sales), &mut trace, &mut truth)?;
        }
    }
    if let Ok(path) = std::env::var("MISSES_DUMP") {
        std::fs::write(&path, &trace)?;
        std::fs::write(format!("{path}.truth"), &truth)?;
    }
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
