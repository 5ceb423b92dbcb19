//! Accuracy evaluation over a labelled manifest (CSV: `file,kind,plate_text,...,label_flag`).
//!
//! A scene counts as read when its highest-confidence plate equals the label; a crop is read
//! directly with [`PlatePipeline::read_crop`]. Rows with a non-empty `label_flag` are skipped.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use opencv::imgcodecs;
use opencv::prelude::*;

use crate::{PlateError, PlatePipeline, PlateReading};

/// What a manifest image shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleKind {
    /// A camera picture; the pipeline must find the plate.
    Scene,
    /// An image already cropped to the plate.
    Crop,
}

impl SampleKind {
    pub fn name(self) -> &'static str {
        match self {
            SampleKind::Scene => "scene",
            SampleKind::Crop => "crop",
        }
    }
}

/// One usable (unflagged) manifest row.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Absolute, or relative to the current directory (the manifest's folder joined to its `file`).
    pub file: PathBuf,
    pub kind: SampleKind,
    pub label: String,
}

/// Totals for one kind of sample.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KindScore {
    pub images: usize,
    pub exact: usize,
    /// Sum over images of `max(0, label length - edit distance)`.
    pub chars_correct: usize,
    /// Sum of label lengths, in characters.
    pub chars_total: usize,
    /// Sum of pipeline wall time, file decoding excluded.
    pub total_ms: f64,
    /// Sum of the process's CPU time (all threads) over the same spans.
    pub total_cpu_ms: f64,
}

/// What reading one image cost.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Cost {
    pub wall_ms: f64,
    /// CPU time of the whole process (ONNX Runtime's and OpenCV's threads included), so that
    /// images per CPU-second compare pipelines whatever threads they use.
    pub cpu_ms: f64,
}

impl KindScore {
    pub fn add(&mut self, label: &str, read: &str, cost: Cost) {
        self.images += 1;
        self.exact += usize::from(label == read);
        self.chars_correct += chars_correct(label, read);
        self.chars_total += label.chars().count();
        self.total_ms += cost.wall_ms;
        self.total_cpu_ms += cost.cpu_ms;
    }

    /// Percentage of images read exactly (0 when there are none).
    pub fn exact_percent(&self) -> f64 {
        percent(self.exact, self.images)
    }

    /// Percentage of label characters read (0 when there are none).
    pub fn char_percent(&self) -> f64 {
        percent(self.chars_correct, self.chars_total)
    }

    pub fn mean_ms(&self) -> f64 {
        per_image(self.total_ms, self.images)
    }

    /// Mean process CPU milliseconds per image (0 when there are none).
    pub fn mean_cpu_ms(&self) -> f64 {
        per_image(self.total_cpu_ms, self.images)
    }
}

/// An image whose reading differs from its label.
#[derive(Debug, Clone, PartialEq)]
pub struct Misread {
    pub file: PathBuf,
    pub kind: SampleKind,
    pub label: String,
    /// What the pipeline read ("" when nothing was found).
    pub read: String,
    pub confidence: f32,
    /// Set when the image could not be decoded or the pipeline failed on it.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct EvalSummary {
    pub scene: KindScore,
    pub crop: KindScore,
    pub misreads: Vec<Misread>,
    /// Flagged rows left out.
    pub skipped: usize,
}

impl EvalSummary {
    /// Mean pipeline milliseconds per image over both kinds.
    pub fn mean_ms(&self) -> f64 {
        per_image(
            self.scene.total_ms + self.crop.total_ms,
            self.scene.images + self.crop.images,
        )
    }

    /// The one-line machine-readable result, e.g.
    /// `scene_exact=97.42 scene_char=99.10 crop_exact=98.00 crop_char=99.70 ms=41.2`.
    pub fn summary_line(&self) -> String {
        format!(
            "scene_exact={:.2} scene_char={:.2} crop_exact={:.2} crop_char={:.2} ms={:.1}",
            self.scene.exact_percent(),
            self.scene.char_percent(),
            self.crop.exact_percent(),
            self.crop.char_percent(),
            self.mean_ms()
        )
    }
}

/// Runs `pipeline` over every unflagged row of `manifest`, writes a table, the misreads and, as the
/// last line, [`EvalSummary::summary_line`]. An image that cannot be decoded or read counts as a
/// misread rather than stopping the run; an unreadable manifest is an error.
pub fn run(
    manifest: &Path,
    pipeline: &mut PlatePipeline,
    out: &mut impl Write,
) -> Result<EvalSummary, PlateError> {
    let (samples, skipped) = read_manifest(manifest)?;
    let mut summary = EvalSummary {
        skipped,
        ..EvalSummary::default()
    };
    for sample in &samples {
        let (read, confidence, cost, error) = match evaluate_one(sample, pipeline) {
            Ok((reading, cost)) => (
                reading.as_ref().map(|r| r.text.clone()).unwrap_or_default(),
                reading.map(|r| r.confidence).unwrap_or(0.0),
                cost,
                None,
            ),
            Err(e) => (String::new(), 0.0, Cost::default(), Some(e.to_string())),
        };
        let score = match sample.kind {
            SampleKind::Scene => &mut summary.scene,
            SampleKind::Crop => &mut summary.crop,
        };
        score.add(&sample.label, &read, cost);
        if read != sample.label {
            summary.misreads.push(Misread {
                file: sample.file.clone(),
                kind: sample.kind,
                label: sample.label.clone(),
                read,
                confidence,
                error,
            });
        }
    }
    write_report(&summary, out).map_err(|e| PlateError::Manifest {
        path: manifest.to_path_buf(),
        reason: format!("cannot write the report: {e}"),
    })?;
    Ok(summary)
}

/// Decodes and reads one sample; the time covers the pipeline only.
fn evaluate_one(
    sample: &Sample,
    pipeline: &mut PlatePipeline,
) -> Result<(Option<PlateReading>, Cost), PlateError> {
    let path = sample.file.to_string_lossy();
    let image = imgcodecs::imread(&*path, imgcodecs::IMREAD_COLOR)?;
    if image.empty() {
        return Err(PlateError::Image(format!("cannot decode {path}")));
    }
    let started = Instant::now();
    let cpu_before = process_cpu_ms();
    let reading = match sample.kind {
        SampleKind::Crop => Some(pipeline.read_crop(&image)?),
        SampleKind::Scene => pipeline
            .read(&image)?
            .into_iter()
            .max_by(|a, b| a.confidence.total_cmp(&b.confidence)),
    };
    let cost = Cost {
        wall_ms: started.elapsed().as_secs_f64() * 1000.0,
        cpu_ms: process_cpu_ms() - cpu_before,
    };
    Ok((reading, cost))
}

/// User plus system CPU time of this process, all threads, in milliseconds, from
/// `/proc/self/stat` (0 where it cannot be read).
fn process_cpu_ms() -> f64 {
    std::fs::read_to_string("/proc/self/stat").map_or(0.0, |stat| cpu_ms_of_stat(&stat))
}

/// User plus system CPU time in one `/proc/.../stat` line (a process's or a thread's), in
/// milliseconds. The kernel counts it in ticks of 10 ms (USER_HZ 100), so one image's figure is
/// coarse, but a sum over many images is not.
pub fn cpu_ms_of_stat(stat: &str) -> f64 {
    // Fields after the command name, which is in parentheses and may hold spaces: the 12th
    // and 13th of them are utime and stime.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: u64 = after_name
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|t| t.parse::<u64>().ok())
        .sum();
    ticks as f64 * 10.0
}

fn write_report(summary: &EvalSummary, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<6} {:>5} {:>6} {:>8} {:>8} {:>8} {:>8}",
        "kind", "n", "exact", "exact%", "char%", "mean_ms", "cpu_ms"
    )?;
    for (kind, s) in [
        (SampleKind::Scene, &summary.scene),
        (SampleKind::Crop, &summary.crop),
    ] {
        writeln!(
            out,
            "{:<6} {:>5} {:>6} {:>8.2} {:>8.2} {:>8.1} {:>8.1}",
            kind.name(),
            s.images,
            s.exact,
            s.exact_percent(),
            s.char_percent(),
            s.mean_ms(),
            s.mean_cpu_ms()
        )?;
    }
    writeln!(out, "skipped (flagged labels): {}", summary.skipped)?;
    writeln!(out, "misreads: {}", summary.misreads.len())?;
    for m in &summary.misreads {
        let read = if m.read.is_empty() { "-" } else { &m.read };
        write!(
            out,
            "  {:<5} {}  label={} read={} conf={:.2}",
            m.kind.name(),
            m.file.display(),
            m.label,
            read,
            m.confidence
        )?;
        match &m.error {
            Some(e) => writeln!(out, " error={e}")?,
            None => writeln!(out)?,
        }
    }
    writeln!(out, "{}", summary.summary_line())
}

/// Reads the manifest's unflagged rows (`file` joined to the manifest's folder) and the number of
/// flagged rows skipped.
pub fn read_manifest(path: &Path) -> Result<(Vec<Sample>, usize), PlateError> {
    let err = |reason: String| PlateError::Manifest {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut rows = parse_csv(&text).into_iter();
    let header = rows.next().ok_or_else(|| err("empty manifest".into()))?;
    let column = |name: &str| {
        header
            .iter()
            .position(|h| h.trim() == name)
            .ok_or_else(|| err(format!("no column {name:?}")))
    };
    let (file_col, kind_col, text_col) = (column("file")?, column("kind")?, column("plate_text")?);
    let flag_col = header.iter().position(|h| h.trim() == "label_flag");
    let mut samples = Vec::new();
    let mut skipped = 0;
    for (i, row) in rows.enumerate() {
        if row.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        let cell = |c: usize| row.get(c).map(|s| s.trim()).unwrap_or("");
        if flag_col.is_some_and(|c| !cell(c).is_empty()) {
            skipped += 1;
            continue;
        }
        let kind = match cell(kind_col) {
            "scene" => SampleKind::Scene,
            "crop" => SampleKind::Crop,
            other => return Err(err(format!("row {}: unknown kind {other:?}", i + 2))),
        };
        if cell(file_col).is_empty() {
            return Err(err(format!("row {}: empty file", i + 2)));
        }
        samples.push(Sample {
            file: base.join(cell(file_col)),
            kind,
            label: cell(text_col).to_string(),
        });
    }
    Ok((samples, skipped))
}

/// Minimal RFC 4180 CSV: quoted fields may hold commas, newlines and doubled quotes.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    field.push('"');
                    chars.next();
                }
                '"' => quoted = false,
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' => quoted = true,
            ',' => row.push(std::mem::take(&mut field)),
            '\r' => {}
            '\n' => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            _ => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

pub use forecourt_events::text_distance as edit_distance;

/// Characters of `label` counted as read: `max(0, len(label) - edit_distance(label, read))`.
pub fn chars_correct(label: &str, read: &str) -> usize {
    label
        .chars()
        .count()
        .saturating_sub(edit_distance(label, read))
}

/// `total` shared out over `images` (0 when there are none).
fn per_image(total: f64, images: usize) -> f64 {
    if images == 0 {
        0.0
    } else {
        total / images as f64
    }
}

fn percent(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wall(ms: f64) -> Cost {
        Cost {
            wall_ms: ms,
            cpu_ms: 0.0,
        }
    }

    #[test]
    fn cpu_time_is_utime_plus_stime_counted_after_the_name() {
        // A thread name with spaces and a ')' of its own; utime 250 and stime 7 ticks.
        let stat =
            "4242 (plate reader) 1) S 1 4242 4242 0 -1 4194368 1234 0 0 0 250 7 0 0 20 0 3 0";
        assert_eq!(cpu_ms_of_stat(stat), 2570.0);
        assert_eq!(cpu_ms_of_stat("garbage"), 0.0);
    }

    #[test]
    fn edit_distance_counts_characters() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("京A12345", "京A12345"), 0);
        assert_eq!(edit_distance("京A12345", "沪A12345"), 1); // substitution of a 3-byte char
        assert_eq!(edit_distance("京A12345", "京A1234"), 1); // deletion
        assert_eq!(edit_distance("京A12345", "京AA12345"), 1); // insertion
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "京A1"), 3);
    }

    #[test]
    fn process_cpu_time_advances_while_working() {
        let start = process_cpu_ms();
        // Spin until the kernel has charged at least one more tick (10 ms), within a deadline.
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        let mut spins = 0u64;
        while process_cpu_ms() <= start && Instant::now() < deadline {
            spins = spins.wrapping_add(std::hint::black_box(1));
        }
        assert!(
            process_cpu_ms() > start,
            "no CPU time counted after {spins} spins"
        );
    }

    #[test]
    fn chars_correct_never_negative() {
        assert_eq!(chars_correct("京A12345", "京A12345"), 7);
        assert_eq!(chars_correct("京A12345", "京A12346"), 6);
        assert_eq!(chars_correct("京A12345", ""), 0);
        // Distance 10 > length 7: clamps at 0.
        assert_eq!(chars_correct("京A12345", "XXXXXXXXXX"), 0);
    }

    #[test]
    fn per_char_accuracy_sums_over_images() {
        let mut s = KindScore::default();
        s.add("京A12345", "京A12345", wall(10.0)); // 7 of 7
        s.add("浙AD12345", "浙AD1234", wall(20.0)); // 7 of 8
        s.add("苏E05EV8", "", wall(30.0)); // 0 of 7
        assert_eq!((s.images, s.exact), (3, 1));
        assert_eq!((s.chars_correct, s.chars_total), (14, 22));
        assert!((s.char_percent() - 100.0 * 14.0 / 22.0).abs() < 1e-9);
        assert!((s.exact_percent() - 100.0 / 3.0).abs() < 1e-9);
        assert!((s.mean_ms() - 20.0).abs() < 1e-9);
    }

    #[test]
    fn summary_line_format() {
        let mut summary = EvalSummary::default();
        summary.scene.add("京A12345", "京A12345", wall(40.0));
        summary.scene.add("京A12345", "京A12346", wall(50.0));
        summary.crop.add("京A12345", "京A12345", wall(6.0));
        assert_eq!(
            summary.summary_line(),
            "scene_exact=50.00 scene_char=92.86 crop_exact=100.00 crop_char=100.00 ms=32.0"
        );
        assert_eq!(
            EvalSummary::default().summary_line(),
            "scene_exact=0.00 scene_char=0.00 crop_exact=0.00 crop_char=0.00 ms=0.0"
        );
    }

    #[test]
    fn csv_handles_quotes_and_crlf() {
        let rows = parse_csv("a,b,c\r\n1,\"x,y\",\"say \"\"hi\"\"\"\r\n2,,\n");
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[1], vec!["1", "x,y", "say \"hi\""]);
        assert_eq!(rows[2], vec!["2", "", ""]);
    }

    #[test]
    fn manifest_skips_flagged_rows() {
        let dir = std::env::temp_dir().join(format!("plates-eval-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("manifest.csv");
        std::fs::write(
            &path,
            "file,kind,plate_text,bbox_or_corners,label_flag\n\
             images/a.jpg,scene,京A12345,\"bbox=1,2,3,4\",\n\
             images/b.jpg,crop,沪B12345,,\"SUSPECT: read '沪B1234', mislabelled\"\n\
             images/c.jpg,crop,粤C12345,,\n",
        )
        .unwrap();
        let (samples, skipped) = read_manifest(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(skipped, 1);
        assert_eq!(samples.len(), 2);
        assert_eq!(samples[0].kind, SampleKind::Scene);
        assert_eq!(samples[0].file, dir.join("images/a.jpg"));
        assert_eq!(samples[1].label, "粤C12345");
        assert!(read_manifest(&dir.join("missing.csv")).is_err());
    }
}
