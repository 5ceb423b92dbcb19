//! `forecourt-agent zones --snapshot DIR`: for each camera, a PNG of what it sees with every
//! fuelling point's zones drawn in the fuelling point's colour and the plate boxes read in the
//! last seconds coloured by the zone they fall in (grey: in none), and a text legend with the
//! full plate texts (the picture's labels are ASCII only). The picture an installer needs to see
//! that a camera points where it should and the zones sit where the cars stand.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use agent_config::AgentConfig;
use anyhow::{Context, Result};
use camera::{Marked, Shape};
use forecourt_events::{FpNumber, PlateRead};
use matcher::Layout;

/// Zone and box colours per fuelling point (BGR), in turn.
const PALETTE: [[u8; 3]; 8] = [
    [60, 60, 255],  // red
    [255, 160, 40], // blue
    [60, 220, 60],  // green
    [0, 200, 255],  // yellow
    [255, 60, 220], // magenta
    [220, 220, 40], // cyan
    [40, 140, 255], // orange
    [200, 120, 160],
];
/// A plate box in no zone.
const GREY: [u8; 3] = [170, 170, 170];

/// Writes `DIR/<camera>.png` and `DIR/<camera>.txt` for every camera of the config, reading
/// plates for `seconds`; `width` scales the pictures. Fails when a camera sent no frame.
pub fn snapshot(config_path: &Path, dir: &Path, seconds: u64, width: Option<i32>) -> Result<()> {
    let config = AgentConfig::load(config_path)?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut pipeline = crate::run::open_plate_pipeline(&config)?;
    let layout = config.layout();
    let mut silent = Vec::new();
    for mut camera in config.cameras()? {
        let name = camera.name.clone();
        // A file is read from its start (a looping demo file would otherwise start where the
        // wall clock is in its loop): `seconds` of it, whatever the time.
        camera.loop_file = false;
        let handle = camera::spawn_camera(camera)?;
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let mut last = None;
        let mut reads: Vec<PlateRead> = Vec::new();
        while Instant::now() < deadline {
            let Some(frame) = handle.slot.take(Duration::from_millis(500)) else {
                continue;
            };
            let (w, h) = frame.size();
            let readings = pipeline
                .read(&frame.image)
                .with_context(|| format!("reading plates on camera {name}"))?;
            reads.extend(readings.iter().map(|r| r.to_event(w, h)));
            last = Some(frame);
        }
        handle.stop();
        let Some(frame) = last else {
            silent.push(name);
            continue;
        };
        let (marks, legend) = overlay(&layout, &name, &reads);
        let png = dir.join(format!("{name}.png"));
        camera::write_snapshot(&frame.image, &marks, width, &png)?;
        let text = dir.join(format!("{name}.txt"));
        std::fs::write(&text, legend)
            .with_context(|| format!("cannot write {}", text.display()))?;
        println!(
            "{}: {} plate reads ({})",
            png.display(),
            reads.len(),
            text.display()
        );
    }
    if !silent.is_empty() {
        anyhow::bail!(
            "no frame within {seconds} s from camera(s) {}: check their url (check-config --probe)",
            silent.join(", ")
        );
    }
    Ok(())
}

/// A plate's reads in one zone (or in none): how many, and its latest box.
type Seen = (usize, [f32; 4]);

/// What to draw for `camera` and its legend: each fuelling point's zones on it, each read's box
/// in the colour of the first zone holding its centre.
fn overlay(layout: &Layout, camera: &str, reads: &[PlateRead]) -> (Vec<Marked>, String) {
    let colour_of = |fp: FpNumber| {
        let i = layout.fps.iter().position(|f| f.fp == fp).unwrap_or(0);
        PALETTE[i % PALETTE.len()]
    };
    let mut marks = Vec::new();
    let mut legend = format!("camera {camera}\n\nzones:\n");
    for f in &layout.fps {
        for z in f.zones.iter().filter(|z| z.camera == camera) {
            marks.push(Marked {
                shape: Shape::Polygon(z.polygon.clone()),
                bgr: colour_of(f.fp),
                label: format!("FP {}", f.fp),
            });
            let _ = writeln!(legend, "  FP {}: {:?}", f.fp, z.polygon);
        }
    }
    // Per plate text and zone: how often it was read there, and its latest box.
    let mut seen: BTreeMap<(&str, Option<FpNumber>), Seen> = BTreeMap::new();
    for r in reads {
        let (x, y) = r.centre();
        let fp = layout.fps_at(camera, x, y).next();
        let entry = seen.entry((r.text.as_str(), fp)).or_insert((0, r.bbox));
        *entry = (entry.0 + 1, r.bbox);
        marks.push(Marked {
            shape: Shape::Box(r.bbox),
            bgr: fp.map_or(GREY, colour_of),
            label: String::new(),
        });
    }
    // One label per plate and zone, on its latest box.
    for ((text, fp), (_, latest)) in &seen {
        marks.push(Marked {
            shape: Shape::Box(*latest),
            bgr: fp.map_or(GREY, colour_of),
            label: match fp {
                Some(fp) => format!("{text} FP {fp}"),
                None => format!("{text} -"),
            },
        });
    }
    let _ = writeln!(legend, "\nplates read (text, zone, reads):");
    if seen.is_empty() {
        let _ = writeln!(legend, "  none");
    }
    for ((text, fp), (n, _)) in &seen {
        let zone = fp.map_or("no zone".to_owned(), |fp| format!("FP {fp}"));
        let _ = writeln!(legend, "  {text}  {zone}  {n}");
    }
    (marks, legend)
}

#[cfg(test)]
mod tests {
    use matcher::{FpLayout, Zone};

    use super::*;

    #[test]
    fn boxes_take_their_zones_colour_and_the_legend_names_every_plate_and_zone() {
        let zone = |camera: &str, x0: f32, x1: f32| Zone {
            camera: camera.into(),
            polygon: vec![[x0, 0.0], [x1, 0.0], [x1, 1.0], [x0, 1.0]],
        };
        let layout = Layout {
            fps: vec![
                FpLayout {
                    fp: 1,
                    zones: vec![zone("cam1", 0.0, 0.4)],
                },
                FpLayout {
                    fp: 2,
                    zones: vec![zone("cam1", 0.6, 1.0), zone("cam2", 0.0, 1.0)],
                },
            ],
        };
        let read = |text: &str, x: f32| PlateRead {
            text: text.into(),
            confidence: 0.95,
            bbox: [x - 0.05, 0.5, x + 0.05, 0.55],
        };
        let reads = [
            read("苏E05EV8", 0.2),
            read("苏E05EV8", 0.25),
            read("京A12345", 0.5),
        ];
        let (marks, legend) = overlay(&layout, "cam1", &reads);
        // Two zones on cam1 (FP 2's cam2 zone is not drawn), three boxes, a label per plate.
        let zones: Vec<&Marked> = marks
            .iter()
            .filter(|m| matches!(m.shape, Shape::Polygon(_)))
            .collect();
        assert_eq!(zones.len(), 2);
        assert_eq!((zones[0].bgr, zones[1].bgr), (PALETTE[0], PALETTE[1]));
        let boxes: Vec<&Marked> = marks
            .iter()
            .filter(|m| matches!(m.shape, Shape::Box(_)))
            .collect();
        assert_eq!(boxes.len(), 5);
        assert_eq!(boxes[0].bgr, PALETTE[0], "in FP 1's zone");
        assert_eq!(boxes[2].bgr, GREY, "in no zone");
        assert!(boxes.iter().any(|m| m.label == "苏E05EV8 FP 1"));
        assert!(boxes.iter().any(|m| m.label == "京A12345 -"));
        assert!(legend.contains("苏E05EV8  FP 1  2"), "{legend}");
        assert!(legend.contains("京A12345  no zone  1"), "{legend}");
        assert!(!legend.contains("cam2"), "{legend}");
    }
}
