//! Replay throughput on one core, in MB of trace per second, for the parse alone and for the
//! whole replay (parse, tracker, matcher): `cargo run --release -p trace-gen --example
//! replay_speed -- TRACE...` (plain JSON Lines; each file is read into memory first, so the disk
//! is not measured). With no file it replays a generated 2,000-sale trace.

use std::time::Instant;

use matcher::{replay_with, MatcherConfig, TraceReader};
use trace_gen::{generate, is_valid_plate, ScenarioConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut traces: Vec<(String, Vec<u8>)> = Vec::new();
    for path in std::env::args().skip(1) {
        traces.push((path.clone(), std::fs::read(&path)?));
    }
    if traces.is_empty() {
        let mut trace = Vec::new();
        generate(&ScenarioConfig::new(1, 2000), &mut trace, std::io::sink())?;
        traces.push(("generated seed 1, 2000 sales".into(), trace));
    }
    let (mut bytes, mut parse_s, mut replay_s) = (0usize, 0.0, 0.0);
    for (name, trace) in &traces {
        let started = Instant::now();
        let (_, mut reader) = TraceReader::open(trace.as_slice())?;
        let mut records = 0usize;
        while reader.next_record()?.is_some() {
            records += 1;
        }
        let parse = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let sales = replay_with(
            trace.as_slice(),
            &MatcherConfig::default(),
            is_valid_plate,
            |_, _| Ok(()),
        )?;
        let replay = started.elapsed().as_secs_f64();
        let mb = trace.len() as f64 / 1e6;
        println!(
            "{name}: {mb:.1} MB, {records} records, {sales} sales: parse {:.1} MB/s, replay {:.1} MB/s",
            mb / parse,
            mb / replay
        );
        bytes += trace.len();
        parse_s += parse;
        replay_s += replay;
    }
    let mb = bytes as f64 / 1e6;
    println!(
        "all: {mb:.1} MB: parse {:.1} MB/s, replay {:.1} MB/s (one core)",
        mb / parse_s,
        mb / replay_s
    );
    Ok(())
}
