//! The agent's plate reading on one camera, as the agent does it: the config's camera and zones,
//! the real capture thread (a file paced at its own frame rate, as if live) and one reader thread
//! (focus on the zones, motion gate, reads near standing plates):
//! `cargo run --release -p agent --example reader_bench -- CONFIG VIDEO [SECONDS [MAX_FPS]]`
//! (defaults 60 s, the config camera's `max_fps`). CONFIG's first camera reads VIDEO instead of
//! its own URL. Prints what the camera handed over and what the reader did with it, the reader
//! thread's CPU time and frames per CPU-second, and, with `PLATES=A,B,...` (the video's cars),
//! how many frames read one of them and how many reads were of no car; with `WHOLE_FRAME=1`, the
//! reader reads whole frames instead of the part around the zones. The last line is the
//! machine-readable summary for `scripts/plate_bench.sh`, which puts it beside the Python
//! reference on the same frames. Asserts nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use agent_config::AgentConfig;
use plates::eval::cpu_ms_of_stat;
use station::focus::FocusAreas;
use station::reader::ReaderThread;
use station::vision::Vision;

/// CPU seconds (user + system) of this process's threads whose name starts with `prefix`
/// (the kernel keeps 15 characters of a thread's name).
fn threads_cpu_s(prefix: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    tasks
        .flatten()
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm"))
                .is_ok_and(|name| name.trim_end().starts_with(prefix))
        })
        .filter_map(|task| std::fs::read_to_string(task.path().join("stat")).ok())
        .map(|stat| cpu_ms_of_stat(&stat) / 1000.0)
        .sum()
}

fn process_cpu_s() -> f64 {
    std::fs::read_to_string("/proc/self/stat").map_or(0.0, |s| cpu_ms_of_stat(&s) / 1000.0)
}

/// `VmRSS` and `VmHWM` (peak) of this process, in MB.
fn rss_mb() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb / 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: reader_bench CONFIG VIDEO [SECONDS [MAX_FPS]]";
    let config_path: PathBuf = args.first().ok_or(usage)?.into();
    let video: PathBuf = std::fs::canonicalize(args.get(1).ok_or(usage)?)?;
    let seconds: f64 = args.get(2).map_or(Ok(60.0), |s| s.parse())?;
    let mut config = AgentConfig::load(&config_path)?;
    let camera = config
        .cameras
        .first_mut()
        .ok_or("the config has no camera")?;
    camera.url = video.display().to_string();
    if let Some(max_fps) = args.get(3) {
        camera.max_fps = max_fps.parse()?;
    }
    let camera_name = camera.name.clone();
    config.cameras.truncate(1);
    let plates: BTreeSet<String> = std::env::var("PLATES")
        .unwrap_or_default()
        .split(',')
        .filter(|p| !p.is_empty())
        .map(String::from)
        .collect();

    plates::load_onnx_runtime(&config.find_onnxruntime()?)?;
    let reader = ReaderThread {
        pipeline: plates::PlatePipeline::open(&config.pipeline_config())?,
        heartbeat: std::sync::Arc::new(forecourt_events::Heartbeat::new()),
    };
    // `WHOLE_FRAME=1`: every frame read whole (still behind the motion gate), to tell what
    // reading only the zones saves.
    let focus = if std::env::var("WHOLE_FRAME").is_ok_and(|v| v == "1") {
        FocusAreas::default()
    } else {
        FocusAreas::from_layout(&config.layout())
    };
    let (out, mut plates_out) = tokio::sync::mpsc::channel(1024);
    let (rss_models, _) = rss_mb();
    let cpu_before = (threads_cpu_s("plate-reader"), process_cpu_s());
    let started = Instant::now();
    let vision = Vision::start(
        vec![reader],
        config.cameras()?,
        focus,
        station::reader::Pictures::default(),
        out,
    )?;
    let slot = vision
        .camera_slots()
        .into_iter()
        .find(|(name, _)| *name == camera_name)
        .map(|(_, slot)| slot)
        .ok_or("the camera did not start")?;

    let mut frames_with_car = 0u64;
    let mut reads_of_car: BTreeMap<String, u64> = BTreeMap::new();
    let mut reads_of_no_car = 0u64;
    let until = started + Duration::from_secs_f64(seconds);
    while Instant::now() < until {
        match plates_out.try_recv() {
            Ok(frame) => {
                let mut any = false;
                for plate in &frame.plates {
                    if plates.contains(&plate.text) {
                        *reads_of_car.entry(plate.text.clone()).or_default() += 1;
                        any = true;
                    } else {
                        reads_of_no_car += 1;
                    }
                }
                frames_with_car += u64::from(any);
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    let reader_cpu_s = threads_cpu_s("plate-reader") - cpu_before.0;
    let process_cpu = process_cpu_s() - cpu_before.1;
    let wall = started.elapsed().as_secs_f64();
    let (rss_end, rss_peak) = rss_mb();
    let stats = &slot.stats;
    let (taken, read, still) = (
        stats.taken.load(Ordering::Relaxed),
        stats.read.load(Ordering::Relaxed),
        stats.still.load(Ordering::Relaxed),
    );
    vision.stop();

    println!(
        "camera {camera_name}: {} frames converted, {} decoded but over max_fps, {} overwritten \
         before the reader took them; the reader took {taken}: read {read}, skipped as still {still}",
        stats.frames.load(Ordering::Relaxed),
        stats.not_converted.load(Ordering::Relaxed),
        stats.dropped.load(Ordering::Relaxed),
    );
    println!(
        "reader thread CPU {reader_cpu_s:.2} s, whole process (decoding too) {process_cpu:.2} s, \
         over {wall:.1} s"
    );
    println!(
        "RSS {rss_models} MB with the models loaded, {rss_end} MB at the end, {rss_peak} MB at \
         the most"
    );
    if !plates.is_empty() {
        println!(
            "frames with a car's plate read: {frames_with_car}; cars read: {}/{}; reads of no car: \
             {reads_of_no_car}",
            reads_of_car.len(),
            plates.len()
        );
    }
    let per_frame_ms = 1000.0 * reader_cpu_s / taken.max(1) as f64;
    println!(
        "frames={taken} read={read} still={still} reader_cpu_s={reader_cpu_s:.2} \
         cpu_ms_per_frame={per_frame_ms:.2} frames_per_cpu_s={:.1} frames_with_car={frames_with_car} \
         cars_read={} reads_of_no_car={reads_of_no_car}",
        taken as f64 / reader_cpu_s.max(f64::EPSILON),
        reads_of_car.len()
    );
    Ok(())
}
