//! Writes domain-randomised scenarios of every family to folders, for scorers outside Rust:
//! `cargo run --release -p trace-gen --example write_families -- DIR [SALES_PER_FAMILY [FIRST_SEED]]`
//! (defaults: 1000 sales per family, seed 1). One folder per family and seed,
//! `DIR/<family>-<seed>/`, with `trace.jsonl.gz` (the trace `matcher::TraceReader` reads,
//! gzipped) and `truth.json`: `{ref: {"plate": str|null, "readable": bool, "case": primary case,
//! "cases": [...], "fp": N}}`. `DIR/families.json` lists the families and which are held out.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use flate2::write::GzEncoder;
use flate2::Compression;
use serde_json::{json, Map, Value};
use trace_gen::{generate_randomised, FAMILIES};

/// Sales per trace (per seed): each seed is a new station.
const SALES_PER_TRACE: usize = 250;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(dir) = args.first().map(PathBuf::from) else {
        return Err("usage: write_families DIR [SALES_PER_FAMILY [FIRST_SEED]]".into());
    };
    let sales_per_family: usize = args.get(1).map_or(Ok(1000), |a| a.parse())?;
    let first_seed: u64 = args.get(2).map_or(Ok(1), |a| a.parse())?;
    fs::create_dir_all(&dir)?;
    let mut index = Vec::new();
    for family in &FAMILIES {
        let mut written = 0;
        let mut seed = first_seed;
        let mut folders = Vec::new();
        while written < sales_per_family {
            let name = format!("{}-{seed}", family.name);
            let folder = dir.join(&name);
            fs::create_dir_all(&folder)?;
            let trace = GzEncoder::new(
                BufWriter::new(File::create(folder.join("trace.jsonl.gz"))?),
                Compression::default(),
            );
            let mut trace = BufWriter::new(trace);
            let per_trace = SALES_PER_TRACE.min(sales_per_family - written);
            let scenario =
                generate_randomised(family, seed, per_trace, &mut trace, std::io::sink())?;
            trace
                .into_inner()
                .map_err(|e| e.into_error())?
                .finish()?
                .flush()?;
            let mut truth = Map::new();
            for sale in &scenario.sales {
                truth.insert(
                    sale.sale_ref.clone(),
                    json!({
                        "plate": sale.plate,
                        "readable": sale.readable,
                        "case": sale.primary_case(),
                        "cases": sale.cases,
                        "fp": sale.fp,
                    }),
                );
            }
            let mut out = BufWriter::new(File::create(folder.join("truth.json"))?);
            serde_json::to_writer(&mut out, &Value::Object(truth))?;
            out.flush()?;
            eprintln!(
                "{name}: {} sales, {} frames",
                scenario.sales.len(),
                scenario.frames
            );
            written += scenario.sales.len();
            folders.push(name);
            seed += 1;
        }
        index.push(json!({
            "family": family.name,
            "held_out": family.held_out,
            "about": family.about,
            "folders": folders,
        }));
    }
    let mut out = BufWriter::new(File::create(dir.join("families.json"))?);
    serde_json::to_writer_pretty(&mut out, &index)?;
    out.flush()?;
    Ok(())
}
