//! Replays a recorded trace through the matcher, and scores a replay against ground truth.
//! Same trace, same output, byte for byte: the matcher is deterministic and so is the printing.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{BufRead, Write};

use forecourt_events::{FpNumber, FramePlates, PlateRead, UnixMillis};
use serde::{Deserialize, Serialize};

use crate::layout::Layout;
use crate::matcher::{MatchedSale, Matcher, MatcherConfig};
use crate::trace::{FrameRef, TraceError, TraceReader, TraceRecordRef};

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Trace(#[from] TraceError),
    #[error("trace line {line}: a layout record after the first needs the time it took effect")]
    UntimedLayout { line: usize },
    #[error("writing the replay output: {0}")]
    Output(std::io::Error),
    #[error("ground truth line {line}: {message}")]
    BadTruth { line: usize, message: String },
    #[error("ground truth i/o: {0}")]
    TruthIo(std::io::Error),
}

/// One line of replay output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayedSale {
    #[serde(rename = "ref")]
    pub sale_ref: Option<String>,
    pub fp: FpNumber,
    pub nozzle: u8,
    pub plate: Option<String>,
    /// Rounded to 3 decimals.
    pub confidence: f64,
    /// When the pump reported the sale (identifies it when the trace gave no `ref`).
    pub t: UnixMillis,
    /// A later line for a sale already printed: the matcher's revisit changed the verdict, and
    /// this one replaces it (the live agent publishes it as a `sale_correction`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub correction: bool,
}

/// Feeds every record of `trace` to a matcher, in file order, and hands each decided sale to
/// `on_sale` in the order the matcher decides them, and each correction after it. The clock is the
/// newest `t` seen; at the end every sale still waiting is decided and revisited.
pub fn replay_with(
    trace: impl BufRead,
    config: &MatcherConfig,
    is_well_formed: fn(&str) -> bool,
    on_sale: impl FnMut(ReplayedSale, &MatchedSale) -> Result<(), ReplayError>,
) -> Result<usize, ReplayError> {
    replay_zoned(trace, None, config, is_well_formed, on_sale)
}

/// [`replay_with`], with the fuelling points' zones taken from `zones` instead of the trace's
/// layout record when given: a new zone drawing tried on what a station recorded.
pub fn replay_zoned(
    trace: impl BufRead,
    zones: Option<Layout>,
    config: &MatcherConfig,
    is_well_formed: fn(&str) -> bool,
    mut on_sale: impl FnMut(ReplayedSale, &MatchedSale) -> Result<(), ReplayError>,
) -> Result<usize, ReplayError> {
    let (recorded, mut reader) = TraceReader::open(trace)?;
    // Zones given by the caller hold throughout: the trace's own reloads are passed over.
    let zones_given = zones.is_some();
    let layout = zones.unwrap_or(recorded);
    let mut matcher = Matcher::new(layout, config.clone(), is_well_formed);
    let mut refs: BTreeMap<(FpNumber, u8, UnixMillis), Option<String>> = BTreeMap::new();
    let mut clock = UnixMillis::MIN;
    let mut decided = 0;
    let mut emit = |sales: Vec<MatchedSale>,
                    refs: &mut BTreeMap<(FpNumber, u8, UnixMillis), Option<String>>|
     -> Result<(), ReplayError> {
        for m in sales {
            let key = (m.sale.fp, m.sale.nozzle, m.sale.t);
            // Kept for the correction that may follow (a replay holds one entry per sale).
            let line = ReplayedSale {
                sale_ref: refs.get(&key).cloned().flatten(),
                fp: m.sale.fp,
                nozzle: m.sale.nozzle,
                plate: m.verdict.plate.clone(),
                confidence: (f64::from(m.verdict.confidence) * 1000.0).round() / 1000.0,
                t: m.sale.t,
                correction: m.correction,
            };
            decided += usize::from(!m.correction);
            on_sale(line, &m)?;
        }
        Ok(())
    };
    let mut frame_buffer = FrameBuffer::new();
    while let Some(record) = reader.next_record_ref()? {
        let Some(t) = record.time() else {
            return Err(ReplayError::UntimedLayout {
                line: reader.line_number(),
            });
        };
        if t > clock {
            clock = t;
            emit(matcher.poll(clock), &mut refs)?;
        }
        if let TraceRecordRef::Sale(sale) = record {
            refs.insert(
                (sale.fp, sale.nozzle, sale.t),
                sale.sale_ref.map(str::to_string),
            );
        }
        if let TraceRecordRef::Frame(frame_ref) = record {
            matcher.observe_frame(frame_buffer.refill(&frame_ref));
        } else if let TraceRecordRef::Layout { fps, .. } = record {
            // Checked by the reader.
            if !zones_given {
                matcher.set_layout(Layout { fps: fps.to_vec() });
            }
        } else if let Some(event) = record.to_dispenser() {
            matcher.observe_dispenser(&event);
        }
    }
    emit(matcher.poll(UnixMillis::MAX), &mut refs)?;
    Ok(decided)
}

/// One [`FramePlates`] refilled for every frame of a replay. Plate reads a shorter frame does not
/// need wait in `spare`, so their texts keep their capacity: in steady state a frame costs no
/// allocation.
struct FrameBuffer {
    frame: FramePlates,
    spare: Vec<PlateRead>,
}

impl FrameBuffer {
    fn new() -> Self {
        FrameBuffer {
            frame: FramePlates {
                t: 0,
                camera: String::new(),
                plates: Vec::new(),
            },
            spare: Vec::new(),
        }
    }

    /// The frame holding `source`.
    fn refill(&mut self, source: &FrameRef<'_>) -> &FramePlates {
        let frame = &mut self.frame;
        frame.t = source.t;
        frame.camera.clear();
        frame.camera.push_str(source.camera);
        let count = source.plate_count();
        if frame.plates.len() > count {
            self.spare.extend(frame.plates.drain(count..));
        }
        for (i, plate) in source.plates().enumerate() {
            if i == frame.plates.len() {
                let read = self.spare.pop().unwrap_or(PlateRead {
                    text: String::new(),
                    confidence: 0.0,
                    bbox: [0.0; 4],
                });
                frame.plates.push(read);
            }
            if let Some(read) = frame.plates.get_mut(i) {
                read.text.clear();
                read.text.push_str(plate.text);
                read.confidence = plate.conf;
                read.bbox = plate.bbox;
            }
        }
        frame
    }
}

/// Replays `trace` and prints one JSON line per sale:
/// `{"ref":"s17","fp":1,"nozzle":2,"plate":"苏E05EV8","confidence":0.93,"t":...}`
/// (`plate` null when the matcher abstains). With `zones`, the fuelling points' zones are those
/// instead of the trace's own. Returns the number of sales.
pub fn replay(
    trace: impl BufRead,
    mut out: impl Write,
    zones: Option<Layout>,
    config: &MatcherConfig,
    is_well_formed: fn(&str) -> bool,
) -> Result<usize, ReplayError> {
    let decided = replay_zoned(trace, zones, config, is_well_formed, |line, _| {
        let text = serde_json::to_string(&line).unwrap_or_default();
        writeln!(out, "{text}").map_err(ReplayError::Output)
    })?;
    out.flush().map_err(ReplayError::Output)?;
    Ok(decided)
}

/// One line of ground truth, as the scenario generator writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TruthLine {
    #[serde(rename = "ref")]
    pub sale_ref: String,
    /// The plate of the car that bought, `null` when it had none (motorbike, jerry can).
    pub plate: Option<String>,
    /// Whether the car showed its plate readably (counts toward recall).
    pub readable: bool,
    /// The hard cases this sale belongs to.
    #[serde(default)]
    pub cases: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CaseStats {
    pub sales: usize,
    pub readable: usize,
    pub emitted: usize,
    pub correct: usize,
    pub correct_readable: usize,
}

impl CaseStats {
    fn add(&mut self, other: &CaseStats) {
        self.sales += other.sales;
        self.readable += other.readable;
        self.emitted += other.emitted;
        self.correct += other.correct;
        self.correct_readable += other.correct_readable;
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ReliabilityBin {
    pub emitted: usize,
    pub correct: usize,
    pub confidence_sum: f64,
}

/// Precision, recall and calibration of a replay against ground truth. Reports add up.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EvalReport {
    pub all: CaseStats,
    /// Sales in the trace with no ground-truth line, and the reverse.
    pub without_truth: usize,
    pub without_verdict: usize,
    /// Emitted plates by confidence decile (0.0-0.1 .. 0.9-1.0).
    pub deciles: [ReliabilityBin; 10],
    pub cases: BTreeMap<String, CaseStats>,
}

impl EvalReport {
    /// Correct plates / plates emitted (1 when nothing was emitted).
    pub fn precision(&self) -> f64 {
        ratio(self.all.correct, self.all.emitted)
    }

    /// Correct plates / sales whose car showed a readable plate.
    pub fn recall(&self) -> f64 {
        ratio(self.all.correct_readable, self.all.readable)
    }

    /// The largest gap between a decile's mean confidence and its observed accuracy, over deciles
    /// with at least `min_emitted` plates.
    pub fn worst_calibration_gap(&self, min_emitted: usize) -> f64 {
        self.deciles
            .iter()
            .filter(|b| b.emitted >= min_emitted.max(1))
            .map(|b| (b.confidence_sum / b.emitted as f64 - ratio(b.correct, b.emitted)).abs())
            .fold(0.0, f64::max)
    }

    pub fn merge(&mut self, other: &EvalReport) {
        self.all.add(&other.all);
        self.without_truth += other.without_truth;
        self.without_verdict += other.without_verdict;
        for (mine, theirs) in self.deciles.iter_mut().zip(&other.deciles) {
            mine.emitted += theirs.emitted;
            mine.correct += theirs.correct;
            mine.confidence_sum += theirs.confidence_sum;
        }
        for (case, stats) in &other.cases {
            self.cases.entry(case.clone()).or_default().add(stats);
        }
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        1.0
    } else {
        a as f64 / b as f64
    }
}

impl fmt::Display for EvalReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = &self.all;
        writeln!(
            f,
            "sales {}  readable {}  plates emitted {}  correct {}  wrong {}",
            a.sales,
            a.readable,
            a.emitted,
            a.correct,
            a.emitted - a.correct
        )?;
        writeln!(
            f,
            "precision {:.4}%  recall {:.4}%",
            self.precision() * 100.0,
            self.recall() * 100.0
        )?;
        if self.without_truth + self.without_verdict > 0 {
            writeln!(
                f,
                "sales without ground truth {}, ground truth without a sale {}",
                self.without_truth, self.without_verdict
            )?;
        }
        writeln!(f, "confidence   emitted  mean conf  accuracy")?;
        for (i, bin) in self.deciles.iter().enumerate() {
            if bin.emitted == 0 {
                continue;
            }
            writeln!(
                f,
                "{:.1}-{:.1}    {:>8}  {:>9.4}  {:>8.4}",
                i as f64 / 10.0,
                (i + 1) as f64 / 10.0,
                bin.emitted,
                bin.confidence_sum / bin.emitted as f64,
                ratio(bin.correct, bin.emitted)
            )?;
        }
        writeln!(
            f,
            "case                    sales  readable  emitted  wrong  recall"
        )?;
        for (case, s) in &self.cases {
            writeln!(
                f,
                "{case:<22} {:>6}  {:>8}  {:>7}  {:>5}  {:>6.2}%",
                s.sales,
                s.readable,
                s.emitted,
                s.emitted - s.correct,
                ratio(s.correct_readable, s.readable) * 100.0
            )?;
        }
        Ok(())
    }
}

/// Replays `trace` and scores it against `truth` (JSON Lines of [`TruthLine`], matched by `ref`).
pub fn eval_match(
    trace: impl BufRead,
    truth: impl BufRead,
    config: &MatcherConfig,
    is_well_formed: fn(&str) -> bool,
) -> Result<EvalReport, ReplayError> {
    let mut expected: BTreeMap<String, TruthLine> = BTreeMap::new();
    for (index, line) in truth.lines().enumerate() {
        let line = line.map_err(ReplayError::TruthIo)?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed: TruthLine = serde_json::from_str(&line).map_err(|e| ReplayError::BadTruth {
            line: index + 1,
            message: e.to_string(),
        })?;
        expected.insert(parsed.sale_ref.clone(), parsed);
    }
    let mut report = EvalReport::default();
    // The last verdict for each sale counts (a correction replaces the first).
    let mut verdicts: BTreeMap<String, ReplayedSale> = BTreeMap::new();
    replay_with(trace, config, is_well_formed, |sale, _| {
        match sale.sale_ref.clone() {
            Some(sale_ref) if expected.contains_key(&sale_ref) => {
                verdicts.insert(sale_ref, sale);
            }
            _ => report.without_truth += usize::from(!sale.correction),
        }
        Ok(())
    })?;
    for (sale_ref, sale) in verdicts {
        let Some(truth) = expected.remove(&sale_ref) else {
            continue;
        };
        let emitted = sale.plate.is_some();
        let correct = emitted && sale.plate == truth.plate;
        let stats = CaseStats {
            sales: 1,
            readable: usize::from(truth.readable),
            emitted: usize::from(emitted),
            correct: usize::from(correct),
            correct_readable: usize::from(correct && truth.readable),
        };
        report.all.add(&stats);
        for case in &truth.cases {
            report.cases.entry(case.clone()).or_default().add(&stats);
        }
        if emitted {
            let bin = &mut report.deciles[((sale.confidence * 10.0) as usize).min(9)];
            bin.emitted += 1;
            bin.correct += usize::from(correct);
            bin.confidence_sum += sale.confidence;
        }
    }
    report.without_verdict = expected.len();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `fps` of a layout: fp 1's zone on cam1 from `x0` to `x1`, the image's full height
    /// (and fp 2's from `x1` to the right edge, when `with_fp2`).
    fn zones_json(x0: f32, x1: f32, with_fp2: bool) -> String {
        let zone = |fp: u8, x0: f32, x1: f32| {
            format!(
                r#"{{"fp":{fp},"zones":[{{"camera":"cam1","polygon":[[{x0},0],[{x1},0],[{x1},1],[{x0},1]]}}]}}"#
            )
        };
        let mut fps = vec![zone(1, x0, x1)];
        if with_fp2 {
            fps.push(zone(2, x1, 1.0));
        }
        format!(r#""fps":[{}]"#, fps.join(","))
    }

    /// One car read at `car_x` every 500 ms for 30 s; fp 1 fills from 2 s to 15 s (sale `s1`).
    /// The layout line has `zones`; `reload` adds a layout line with its time.
    fn one_car_trace(zones: &str, car_x: f32, reload: Option<(i64, &str)>) -> String {
        let mut lines = vec![format!(r#"{{"type":"layout",{zones}}}"#)];
        for k in 0..60 {
            let t = k * 500;
            if let Some((at, zones)) = reload.filter(|(at, _)| *at == t) {
                lines.push(format!(r#"{{"type":"layout","t":{at},{zones}}}"#));
            }
            let (x0, x1) = (car_x - 0.05, car_x + 0.05);
            lines.push(format!(
                r#"{{"type":"frame","t":{t},"camera":"cam1","plates":[{{"text":"苏E05EV8","conf":0.95,"box":[{x0},0.5,{x1},0.55]}}]}}"#
            ));
            if t == 2_000 {
                lines.push(r#"{"type":"nozzle","t":2000,"fp":1,"nozzle":1,"state":"out"}"#.into());
            }
            if t == 15_000 {
                lines.push(r#"{"type":"nozzle","t":15000,"fp":1,"nozzle":1,"state":"in"}"#.into());
                lines.push(r#"{"type":"sale","t":15000,"fp":1,"nozzle":1,"volume":"30.00","amount":"235.50","price":"7.85","ref":"s1"}"#.into());
            }
        }
        lines.join("\n")
    }

    /// Each sale's plate, replaying `trace` (with `zones` instead of the trace's, if given).
    fn plates(trace: &str, zones: Option<Layout>) -> Result<Vec<Option<String>>, ReplayError> {
        let mut plates = Vec::new();
        replay_zoned(
            trace.as_bytes(),
            zones,
            &MatcherConfig::default(),
            |text| text.chars().count() == 7,
            |sale, _| {
                plates.push(sale.plate);
                Ok(())
            },
        )
        .map(|_| plates)
    }

    #[test]
    fn zones_given_to_the_replay_replace_the_recorded_ones() {
        // One car on the left half of the image all along; fp 1 sells.
        let trace = one_car_trace(&zones_json(0.0, 0.5, true), 0.25, None);
        assert_eq!(
            plates(&trace, None).unwrap(),
            [Some("苏E05EV8".to_string())]
        );
        // Fp 1's zone drawn on the far right of the image instead: the car is not at its pump.
        let moved: Layout =
            serde_json::from_str(&format!("{{{}}}", zones_json(0.7, 1.0, false))).unwrap();
        assert_eq!(plates(&trace, Some(moved)).unwrap(), [None]);
    }

    #[test]
    fn zones_a_reload_drew_anew_judge_the_sales_after_it() {
        // The car stands on the right half; fp 1's zone is the left half until a reload at 1 s.
        let (left, right) = (zones_json(0.0, 0.5, false), zones_json(0.5, 1.0, false));
        let trace = |reload_at: Option<i64>| {
            one_car_trace(&left, 0.75, reload_at.map(|t| (t, right.as_str())))
        };
        assert_eq!(plates(&trace(None), None).unwrap(), [None]);
        assert_eq!(
            plates(&trace(Some(1_000)), None).unwrap(),
            [Some("苏E05EV8".to_string())]
        );
        // A second layout without the time it took effect cannot be placed.
        let untimed =
            trace(None).replacen("\n", &format!("\n{{\"type\":\"layout\",{right}}}\n"), 1);
        assert!(matches!(
            plates(&untimed, None),
            Err(ReplayError::UntimedLayout { line: 2 })
        ));
        // A reload's zones are checked like the header's: a polygon needs three points.
        let two_points =
            trace(Some(1_000)).replace("[[0.5,0],[1,0],[1,1],[0.5,1]]", "[[0.5,0],[1,0]]");
        assert!(matches!(
            plates(&two_points, None),
            Err(ReplayError::Trace(TraceError::BadLayout { line: 4, .. }))
        ));
    }

    #[test]
    fn the_frame_buffer_holds_exactly_each_frame_as_plates_come_and_go() {
        let plate =
            |text: &str| format!(r#"{{"text":"{text}","conf":0.5,"box":[0.1,0.2,0.3,0.4]}}"#);
        let frame = |t: i64, texts: &[&str]| {
            let plates: Vec<String> = texts.iter().map(|text| plate(text)).collect();
            format!(
                r#"{{"type":"frame","t":{t},"camera":"cam{t}","plates":[{}]}}"#,
                plates.join(",")
            )
        };
        let trace = [
            r#"{"type":"layout","fps":[]}"#.to_string(),
            frame(1, &["苏E05EV8", "A1"]),
            frame(2, &[]),
            frame(3, &["B", "京C12345", "D"]),
            // An escape sends this one through serde: the view borrows an owned record.
            frame(4, &["\\u4eacE"]),
            frame(5, &["A1", "B2"]),
        ]
        .join("\n");
        let (_, mut reader) = TraceReader::open(trace.as_bytes()).unwrap();
        let mut buffer = FrameBuffer::new();
        let mut frames = 0;
        while let Some(record) = reader.next_record_ref().unwrap() {
            let TraceRecordRef::Frame(frame_ref) = record else {
                panic!("not a frame");
            };
            assert_eq!(buffer.refill(&frame_ref), &frame_ref.to_frame());
            frames += 1;
        }
        assert_eq!(frames, 5);
    }
}
