//! The record-and-replay trace: JSON Lines, UTF-8, one record per line, `t` in integer ms since
//! the epoch. The first line is the layout; then frames, nozzle changes, sales and zones drawn
//! anew by a reload (a layout with a `t`), sorted by `t`.
//! Reading and writing go through `BufRead`/`Write` given by the caller, so this module opens no
//! files itself.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};

use forecourt_events::{DispenserEvent, FramePlates, PlateRead, Sale, UnixMillis};
use serde::{Deserialize, Serialize};

use crate::layout::{FpLayout, Layout, LayoutError};
use crate::line_scan::{scan_record, ScannedPlate, ScannedRecord, Span};
pub use crate::trace_fields::{NozzleRecord, NozzleState, SaleRecord};

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("trace line {line}: {message}")]
    BadLine { line: usize, message: String },
    #[error("trace line {line}: the first record must be the layout")]
    LayoutFirst { line: usize },
    #[error("trace line {line}: {source}")]
    BadLayout { line: usize, source: LayoutError },
    #[error("trace i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// One plate read in a trace `frame` record (field names as the trace spells them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracePlate {
    pub text: String,
    pub conf: f32,
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
}

/// One line of a trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum TraceRecord {
    /// The fuelling points' zones: the first line, without `t`; later, with the `t` a reload
    /// drew them anew at (sales judged from then on look at them).
    Layout {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        t: Option<UnixMillis>,
        fps: Vec<FpLayout>,
    },
    Frame {
        t: UnixMillis,
        camera: String,
        plates: Vec<TracePlate>,
    },
    Nozzle(NozzleRecord),
    Sale(SaleRecord<String>),
}

impl TraceRecord {
    pub fn time(&self) -> Option<UnixMillis> {
        match self {
            TraceRecord::Layout { t, .. } => *t,
            TraceRecord::Frame { t, .. } => Some(*t),
            TraceRecord::Nozzle(nozzle) => Some(nozzle.t),
            TraceRecord::Sale(sale) => Some(sale.t),
        }
    }

    pub fn from_frame(frame: &FramePlates) -> Self {
        TraceRecord::Frame {
            t: frame.t,
            camera: frame.camera.clone(),
            plates: frame
                .plates
                .iter()
                .map(|p| TracePlate {
                    text: p.text.clone(),
                    conf: p.confidence,
                    bbox: p.bbox,
                })
                .collect(),
        }
    }

    /// `None` for events the matcher does not use (pump online/offline, ...).
    pub fn from_dispenser(event: &DispenserEvent, sale_ref: Option<&str>) -> Option<Self> {
        let nozzle = |t, fp, nozzle, state| {
            TraceRecord::Nozzle(NozzleRecord {
                t,
                fp,
                nozzle,
                state,
            })
        };
        Some(match *event {
            DispenserEvent::NozzleOut { t, fp, nozzle: n } => nozzle(t, fp, n, NozzleState::Out),
            DispenserEvent::NozzleIn { t, fp, nozzle: n } => nozzle(t, fp, n, NozzleState::In),
            DispenserEvent::SaleCompleted(ref sale) => {
                TraceRecord::Sale(SaleRecord::from_sale(sale, sale_ref))
            }
            // Pump status and the like play no part in matching.
            _ => return None,
        })
    }

    /// The frame for a `frame` record.
    pub fn to_frame(&self) -> Option<FramePlates> {
        match self.as_record_ref() {
            TraceRecordRef::Frame(frame) => Some(frame.to_frame()),
            _ => None,
        }
    }

    /// The dispenser event for a `nozzle` or `sale` record.
    pub fn to_dispenser(&self) -> Option<DispenserEvent> {
        self.as_record_ref().to_dispenser()
    }

    /// This record as a borrowed view.
    pub fn as_record_ref(&self) -> TraceRecordRef<'_> {
        match self {
            TraceRecord::Layout { t, fps } => TraceRecordRef::Layout { t: *t, fps },
            TraceRecord::Frame { t, camera, plates } => TraceRecordRef::Frame(FrameRef {
                t: *t,
                camera,
                plates: PlateSource::Owned(plates),
            }),
            TraceRecord::Nozzle(nozzle) => TraceRecordRef::Nozzle(*nozzle),
            TraceRecord::Sale(sale) => TraceRecordRef::Sale(sale.map_ref(String::as_str)),
        }
    }
}

/// One line of a trace, borrowed from the reader (see [`TraceReader::next_record_ref`]): reading
/// it allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TraceRecordRef<'a> {
    Layout {
        t: Option<UnixMillis>,
        fps: &'a [FpLayout],
    },
    Frame(FrameRef<'a>),
    Nozzle(NozzleRecord),
    Sale(SaleRecord<&'a str>),
}

impl TraceRecordRef<'_> {
    pub fn time(&self) -> Option<UnixMillis> {
        match self {
            TraceRecordRef::Layout { t, .. } => *t,
            TraceRecordRef::Frame(frame) => Some(frame.t),
            TraceRecordRef::Nozzle(nozzle) => Some(nozzle.t),
            TraceRecordRef::Sale(sale) => Some(sale.t),
        }
    }

    pub fn to_record(&self) -> TraceRecord {
        match *self {
            TraceRecordRef::Layout { t, fps } => TraceRecord::Layout {
                t,
                fps: fps.to_vec(),
            },
            TraceRecordRef::Frame(frame) => TraceRecord::Frame {
                t: frame.t,
                camera: frame.camera.to_string(),
                plates: frame
                    .plates()
                    .map(|p| TracePlate {
                        text: p.text.to_string(),
                        conf: p.conf,
                        bbox: p.bbox,
                    })
                    .collect(),
            },
            TraceRecordRef::Nozzle(nozzle) => TraceRecord::Nozzle(nozzle),
            TraceRecordRef::Sale(sale) => TraceRecord::Sale(sale.map_ref(|r| r.to_string())),
        }
    }

    /// The dispenser event for a `nozzle` or `sale` record.
    pub fn to_dispenser(&self) -> Option<DispenserEvent> {
        match self {
            TraceRecordRef::Nozzle(nozzle) => Some(nozzle.to_dispenser()),
            TraceRecordRef::Sale(sale) => Some(sale.to_dispenser()),
            TraceRecordRef::Layout { .. } | TraceRecordRef::Frame(_) => None,
        }
    }
}

/// A `frame` record, borrowed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameRef<'a> {
    pub t: UnixMillis,
    pub camera: &'a str,
    plates: PlateSource<'a>,
}

/// Where a borrowed frame's plates are: scanned spans of the line, or an owned record's.
#[derive(Debug, Clone, Copy, PartialEq)]
enum PlateSource<'a> {
    Scanned {
        line: &'a str,
        plates: &'a [ScannedPlate],
    },
    Owned(&'a [TracePlate]),
}

/// One plate read of a borrowed frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlateRef<'a> {
    pub text: &'a str,
    pub conf: f32,
    pub bbox: [f32; 4],
}

/// The plate reads of a [`FrameRef`].
#[derive(Debug, Clone)]
pub struct PlateRefs<'a> {
    source: PlateSource<'a>,
    next: usize,
}

impl<'a> Iterator for PlateRefs<'a> {
    type Item = PlateRef<'a>;

    fn next(&mut self) -> Option<PlateRef<'a>> {
        let plate = match self.source {
            PlateSource::Scanned { line, plates } => {
                let p = plates.get(self.next)?;
                PlateRef {
                    text: p.text.text(line),
                    conf: p.conf,
                    bbox: p.bbox,
                }
            }
            PlateSource::Owned(plates) => {
                let p = plates.get(self.next)?;
                PlateRef {
                    text: &p.text,
                    conf: p.conf,
                    bbox: p.bbox,
                }
            }
        };
        self.next += 1;
        Some(plate)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let total = match self.source {
            PlateSource::Scanned { plates, .. } => plates.len(),
            PlateSource::Owned(plates) => plates.len(),
        };
        let left = total.saturating_sub(self.next);
        (left, Some(left))
    }
}

impl ExactSizeIterator for PlateRefs<'_> {}

impl<'a> FrameRef<'a> {
    pub fn plate_count(&self) -> usize {
        match self.plates {
            PlateSource::Scanned { plates, .. } => plates.len(),
            PlateSource::Owned(plates) => plates.len(),
        }
    }

    /// The plate reads, in trace order.
    pub fn plates(&self) -> PlateRefs<'a> {
        PlateRefs {
            source: self.plates,
            next: 0,
        }
    }

    pub fn to_frame(&self) -> FramePlates {
        FramePlates {
            t: self.t,
            camera: self.camera.to_string(),
            plates: self
                .plates()
                .map(|p| PlateRead {
                    text: p.text.to_string(),
                    confidence: p.conf,
                    bbox: p.bbox,
                })
                .collect(),
        }
    }
}

/// Reads a trace line by line: the layout first, then the records, each error naming its line.
/// Lines of the plain shape the writer produces are scanned without allocating; any other line
/// (escapes, other field order, exponents, a bad line) is read by serde, so results and error
/// messages are serde's either way.
pub struct TraceReader<R> {
    input: R,
    line_number: usize,
    /// The current line, reused for every line.
    buffer: String,
    /// Where the current line's text (whitespace trimmed) lies in `buffer`.
    text_span: Span,
    /// The current frame's plates when scanned, reused for every frame.
    scanned_plates: Vec<ScannedPlate>,
    /// The current record when serde read it (the borrowed view points into it).
    serde_record: Option<TraceRecord>,
}

/// What the current line parsed to.
enum ParsedLine {
    Scanned(ScannedRecord),
    Serde(TraceRecord),
}

impl<R: BufRead> TraceReader<R> {
    /// Reads and checks the layout line.
    pub fn open(input: R) -> Result<(Layout, Self), TraceError> {
        let mut reader = TraceReader {
            input,
            line_number: 0,
            buffer: String::new(),
            text_span: Span { start: 0, end: 0 },
            scanned_plates: Vec::new(),
            serde_record: None,
        };
        let line = reader.line_number + 1;
        match reader.next_record()? {
            // Checked as it was read (see `next_line`).
            Some(TraceRecord::Layout { t: None, fps }) => Ok((Layout { fps }, reader)),
            _ => Err(TraceError::LayoutFirst { line }),
        }
    }

    /// The line number of the record last returned (1-based).
    pub fn line_number(&self) -> usize {
        self.line_number
    }

    /// The next record, skipping blank lines; `None` at the end.
    pub fn next_record(&mut self) -> Result<Option<TraceRecord>, TraceError> {
        Ok(match self.next_line()? {
            None => None,
            Some(ParsedLine::Serde(record)) => Some(record),
            Some(ParsedLine::Scanned(record)) => Some(self.scanned_view(record).to_record()),
        })
    }

    /// The next record as a view into the reader, skipping blank lines; `None` at the end.
    /// A line of the writer's plain shape is read without allocating.
    pub fn next_record_ref(&mut self) -> Result<Option<TraceRecordRef<'_>>, TraceError> {
        Ok(match self.next_line()? {
            None => None,
            Some(ParsedLine::Serde(record)) => {
                Some(self.serde_record.insert(record).as_record_ref())
            }
            Some(ParsedLine::Scanned(record)) => Some(self.scanned_view(record)),
        })
    }

    /// Reads the next non-blank line into `buffer` and parses it.
    fn next_line(&mut self) -> Result<Option<ParsedLine>, TraceError> {
        loop {
            self.buffer.clear();
            self.line_number += 1;
            let read = self.input.read_line(&mut self.buffer).map_err(|e| {
                if e.kind() == std::io::ErrorKind::InvalidData {
                    TraceError::BadLine {
                        line: self.line_number,
                        message: "not UTF-8".into(),
                    }
                } else {
                    TraceError::Io(e)
                }
            })?;
            if read == 0 {
                return Ok(None);
            }
            let text = self.buffer.trim();
            if text.is_empty() {
                continue;
            }
            let start = self.buffer.len() - self.buffer.trim_start().len();
            self.text_span = Span {
                start,
                end: start + text.len(),
            };
            if let Some(record) = scan_record(text, &mut self.scanned_plates) {
                return Ok(Some(ParsedLine::Scanned(record)));
            }
            let record: TraceRecord =
                serde_json::from_str(text).map_err(|e| TraceError::BadLine {
                    line: self.line_number,
                    message: e.to_string(),
                })?;
            // Zones a matcher can use, the header's and a reload's alike.
            if let TraceRecord::Layout { fps, .. } = &record {
                Layout::validate_fps(fps).map_err(|source| TraceError::BadLayout {
                    line: self.line_number,
                    source,
                })?;
            }
            return Ok(Some(ParsedLine::Serde(record)));
        }
    }

    /// The borrowed view of a record the scanner read from the current line.
    fn scanned_view(&self, record: ScannedRecord) -> TraceRecordRef<'_> {
        let line = self.text_span.text(&self.buffer);
        match record {
            ScannedRecord::Frame { t, camera } => TraceRecordRef::Frame(FrameRef {
                t,
                camera: camera.text(line),
                plates: PlateSource::Scanned {
                    line,
                    plates: &self.scanned_plates,
                },
            }),
            ScannedRecord::Nozzle(nozzle) => TraceRecordRef::Nozzle(nozzle),
            ScannedRecord::Sale(sale) => TraceRecordRef::Sale(sale.map_ref(|span| span.text(line))),
        }
    }
}

/// Writes the trace the live agent records. Sources arrive slightly out of time order (plate
/// reading lags the camera), so records wait up to `reorder_ms` and leave sorted by `t`.
/// A record older than one already written is written anyway (replay tolerates it).
pub struct TraceWriter<W: Write> {
    out: W,
    reorder_ms: i64,
    /// (t, arrival number) -> line: sorted by time, ties in arrival order.
    waiting: BTreeMap<(UnixMillis, u64), String>,
    arrivals: u64,
    newest_t: UnixMillis,
}

impl<W: Write> TraceWriter<W> {
    /// Writes the layout line at once. A `reorder_ms` of 2000 covers plate-reader lag.
    pub fn new(mut out: W, layout: &Layout, reorder_ms: i64) -> Result<Self, TraceError> {
        let record = TraceRecord::Layout {
            t: None,
            fps: layout.fps.clone(),
        };
        writeln!(out, "{}", to_line(&record))?;
        Ok(TraceWriter {
            out,
            reorder_ms: reorder_ms.max(0),
            waiting: BTreeMap::new(),
            arrivals: 0,
            newest_t: UnixMillis::MIN,
        })
    }

    pub fn write_frame(&mut self, frame: &FramePlates) -> Result<(), TraceError> {
        self.push(TraceRecord::from_frame(frame))
    }

    /// Pump online/offline are not recorded.
    pub fn write_dispenser(&mut self, event: &DispenserEvent) -> Result<(), TraceError> {
        match TraceRecord::from_dispenser(event, None) {
            Some(record) => self.push(record),
            None => Ok(()),
        }
    }

    /// A sale with the reference replay prints back (e.g. the outbox key).
    pub fn write_sale(&mut self, sale: &Sale, sale_ref: &str) -> Result<(), TraceError> {
        let event = DispenserEvent::SaleCompleted(sale.clone());
        match TraceRecord::from_dispenser(&event, Some(sale_ref)) {
            Some(record) => self.push(record),
            None => Ok(()),
        }
    }

    /// The zones as a reload drew them anew at `t`: replay judges the sales after it by them.
    pub fn write_layout(&mut self, t: UnixMillis, layout: &Layout) -> Result<(), TraceError> {
        self.push(TraceRecord::Layout {
            t: Some(t),
            fps: layout.fps.clone(),
        })
    }

    pub fn push(&mut self, record: TraceRecord) -> Result<(), TraceError> {
        let Some(t) = record.time() else {
            return Ok(()); // a layout without a time is the header, written once
        };
        self.arrivals += 1;
        self.waiting.insert((t, self.arrivals), to_line(&record));
        self.newest_t = self.newest_t.max(t);
        let horizon = self.newest_t.saturating_sub(self.reorder_ms);
        while let Some(entry) = self.waiting.first_entry() {
            if entry.key().0 > horizon {
                break;
            }
            writeln!(self.out, "{}", entry.remove())?;
        }
        Ok(())
    }

    /// Writes everything still waiting and flushes.
    pub fn flush(&mut self) -> Result<(), TraceError> {
        for (_, line) in std::mem::take(&mut self.waiting) {
            writeln!(self.out, "{line}")?;
        }
        self.out.flush()?;
        Ok(())
    }

    /// Flushes and gives the output back.
    pub fn finish(mut self) -> Result<W, TraceError> {
        self.flush()?;
        Ok(self.out)
    }
}

fn to_line(record: &TraceRecord) -> String {
    // Serialising plain data to a String cannot fail.
    serde_json::to_string(record).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::Zone;

    fn layout() -> Layout {
        Layout {
            fps: vec![FpLayout {
                fp: 1,
                zones: vec![Zone {
                    camera: "cam1".into(),
                    polygon: vec![[0.0, 0.0], [0.5, 0.0], [0.5, 1.0]],
                }],
            }],
        }
    }

    #[test]
    fn spec_lines_parse() {
        let text = r#"{"type":"layout","fps":[{"fp":1,"zones":[{"camera":"cam1","polygon":[[0,0],[1,0],[1,1]]}]}]}
{"type":"frame","t":1000,"camera":"cam1","plates":[{"text":"苏E05EV8","conf":0.97,"box":[0.1,0.2,0.2,0.25]}]}
{"type":"frame","t":1200,"camera":"cam1","plates":[]}
{"type":"nozzle","t":1300,"fp":1,"nozzle":2,"state":"out"}

{"type":"sale","t":9000,"fp":1,"nozzle":2,"volume":"35.21","amount":"276.40","price":"7.85","ref":"s17"}
{"type":"sale","t":9500,"fp":1,"nozzle":2,"volume":"1.00","amount":"7.85","price":"7.85"}
"#;
        let (layout, mut reader) = TraceReader::open(text.as_bytes()).unwrap();
        assert_eq!(layout.fps[0].fp, 1);
        let mut records = Vec::new();
        while let Some(r) = reader.next_record().unwrap() {
            records.push(r);
        }
        assert_eq!(records.len(), 5);
        assert!(
            matches!(&records[3], TraceRecord::Sale(SaleRecord { sale_ref: Some(r), .. }) if r == "s17")
        );
        assert!(matches!(
            &records[4],
            TraceRecord::Sale(SaleRecord { sale_ref: None, .. })
        ));
        let frame = records[0].to_frame().unwrap();
        assert_eq!(frame.plates[0].text, "苏E05EV8");
    }

    #[test]
    fn bad_lines_name_their_line() {
        let text = "{\"type\":\"layout\",\"fps\":[]}\n{\"type\":\"frame\",\"t\":1}\n";
        let (_, mut reader) = TraceReader::open(text.as_bytes()).unwrap();
        let err = reader.next_record().unwrap_err().to_string();
        assert!(err.starts_with("trace line 2:"), "{err}");
        let err = TraceReader::open("{\"type\":\"nozzle\"}".as_bytes())
            .err()
            .unwrap();
        assert!(err.to_string().contains("line 1"), "{err}");
        let bad_utf8: &[u8] = b"{\"type\":\"layout\",\"fps\":[]}\n\xff\xfe\n";
        let (_, mut reader) = TraceReader::open(bad_utf8).unwrap();
        assert!(reader
            .next_record()
            .unwrap_err()
            .to_string()
            .contains("line 2"));
    }

    #[test]
    fn writer_sorts_within_the_reorder_window_and_round_trips() {
        let mut writer = TraceWriter::new(Vec::new(), &layout(), 1000).unwrap();
        let frame = |t| FramePlates {
            t,
            camera: "cam1".into(),
            plates: vec![PlateRead {
                text: "苏E05EV8".into(),
                confidence: 0.9,
                bbox: [0.1, 0.1, 0.2, 0.15],
            }],
        };
        writer.write_frame(&frame(1500)).unwrap();
        writer
            .write_dispenser(&DispenserEvent::NozzleOut {
                t: 1000,
                fp: 1,
                nozzle: 1,
            })
            .unwrap();
        writer.write_frame(&frame(3000)).unwrap();
        writer
            .write_dispenser(&DispenserEvent::PumpOnline { t: 3100, fp: 1 })
            .unwrap();
        let bytes = writer.finish().unwrap();
        let (read_layout, mut reader) = TraceReader::open(bytes.as_slice()).unwrap();
        assert_eq!(read_layout, layout());
        let mut times = Vec::new();
        while let Some(r) = reader.next_record().unwrap() {
            times.push(r.time().unwrap());
        }
        assert_eq!(times, vec![1000, 1500, 3000]);
    }
}
