//! Memory of decoding N cameras through OpenCV's FFmpeg capture, without the agent around it:
//! `cargo run --release -p camera --example decode_memory -- VIDEO N [bgr]`
//! N threads each open VIDEO and decode it at 50 frames a second (`grab()`); with `bgr`, every
//! other frame is also converted to BGR (`retrieve()`), as the agent does at `max_fps` 5 of a
//! 10 fps stream. Prints the process's RSS before opening and after 5 s of decoding. Asserts
//! nothing (docs/performance.md, where the memory goes).

use std::time::Duration;

use opencv::core::Mat;
use opencv::prelude::*;
use opencv::videoio;

fn rss_mb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    kb / 1024
}

fn decode(video: &str, bgr: bool) -> Result<(), opencv::Error> {
    let mut capture = videoio::VideoCapture::from_file(video, videoio::CAP_FFMPEG)?;
    let mut image = Mat::default();
    for frame in 0..400 {
        if !capture.grab()? {
            break;
        }
        if bgr && frame % 2 == 0 {
            capture.retrieve(&mut image, 0)?;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: decode_memory VIDEO N [bgr]";
    let video = args.next().ok_or(usage)?;
    let cameras: usize = args.next().ok_or(usage)?.parse()?;
    let bgr = args.next().as_deref() == Some("bgr");
    println!("before opening: RSS {} MB", rss_mb());
    let threads: Vec<_> = (0..cameras)
        .map(|_| {
            let video = video.clone();
            std::thread::spawn(move || decode(&video, bgr))
        })
        .collect();
    std::thread::sleep(Duration::from_secs(5));
    let tasks = std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count());
    println!(
        "{cameras} camera(s) decoding{}: RSS {} MB, {tasks} threads",
        if bgr {
            ", every other frame to BGR"
        } else {
            ""
        },
        rss_mb()
    );
    for thread in threads {
        thread.join().map_err(|_| "a decoding thread panicked")??;
    }
    Ok(())
}
