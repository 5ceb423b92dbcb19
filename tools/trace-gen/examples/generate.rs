//! Writes one scenario to files, for replaying through the agent:
//! `cargo run -p trace-gen --example generate -- SEED SALES TRACE.jsonl TRUTH.jsonl`

use std::fs::File;
use std::io::BufWriter;

use trace_gen::{generate, ScenarioConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [seed, sales, trace, truth] = args.as_slice() else {
        return Err("usage: generate SEED SALES TRACE.jsonl TRUTH.jsonl".into());
    };
    let summary = generate(
        &ScenarioConfig::new(seed.parse()?, sales.parse()?),
        BufWriter::new(File::create(trace)?),
        BufWriter::new(File::create(truth)?),
    )?;
    eprintln!("{summary:?}");
    Ok(())
}
