//! Replays a trace and prints each verdict with the matcher's reason (for looking into failures):
//! `cargo run --release -p trace-gen --example why -- TRACE`.

use std::io::BufReader;

use matcher::{replay_with, MatcherConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: why TRACE")?;
    let trace = BufReader::new(std::fs::File::open(path)?);
    let mut config = MatcherConfig::default();
    if let Ok(value) = std::env::var("MIN_CONFIDENCE") {
        config.min_confidence = value.parse()?;
    }
    if let Ok(value) = std::env::var("GRACE_MS") {
        config.grace_ms = value.parse()?;
    }
    replay_with(
        trace,
        &config,
        trace_gen::is_valid_plate,
        |line, matched| {
            println!(
                "{}\t{}\t{}\t{:.3}\t{}",
                line.sale_ref.unwrap_or_default(),
                line.fp,
                line.plate.unwrap_or_default(),
                line.confidence,
                matched.verdict.reason
            );
            Ok(())
        },
    )?;
    Ok(())
}
