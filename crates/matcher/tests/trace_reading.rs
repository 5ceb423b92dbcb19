//! The trace reader's fast path against serde: the same records, the same errors with the same
//! line numbers, and no panic on any mutation of a valid line.

use forecourt_events::{FramePlates, PlateRead};
use matcher::{FpLayout, Layout, TraceError, TraceReader, TraceRecord, TraceWriter, Zone};

const LAYOUT_LINE: &str = r#"{"type":"layout","fps":[]}"#;

/// Lines the reader must read exactly as serde does: the writer's plain layout (the fast path)
/// and escapes, whitespace, other field orders, odd numbers (left to serde).
const CORPUS: &[&str] = &[
    r#"{"type":"frame","t":1788751418975,"camera":"cam3","plates":[{"text":"粤E15446","conf":0.93,"box":[0.1,0.2,0.3,0.4]}]}"#,
    r#"{"type":"frame","t":1769667099259,"camera":"cam3","plates":[{"text":"苏E80B83","conf":0.88,"box":[0.3076,0.6770,0.3489,0.7004]},{"text":"苏E7441S","conf":0.57,"box":[0.3526,0.4052,0.3764,0.4186]}]}"#,
    r#"{"type":"frame","t":1200,"camera":"cam1","plates":[]}"#,
    r#"{"type":"frame","t":0,"camera":"","plates":[{"text":"","conf":0,"box":[0,1,0.0,1.0]}]}"#,
    r#"{"type":"frame","t":-5,"camera":"cam1","plates":[{"text":"A","conf":-0.5,"box":[-0.0,-0,-1,-123456789012345]}]}"#,
    r#"{"type":"frame","t":123456789012345,"camera":"c","plates":[{"text":"B","conf":0.12345678901234,"box":[1.5,12345678.9,0.000000000000001,99999999999999.9]}]}"#,
    r#"{"type":"frame","t":1,"camera":"c","plates":[{"text":"B","conf":0.1234567890123456789,"box":[1e0,9.3e-1,1E2,2.5e+1]}]}"#,
    r#"{"type":"frame","t":9223372036854775807,"camera":"c","plates":[]}"#,
    r#"{"type":"frame","t":-9223372036854775808,"camera":"c","plates":[]}"#,
    r#"{"type":"frame","t":1,"camera":"c","plates":[{"text":"B","conf":16777217,"box":[9007199254740993,0.30000000000000004,3.4028235e38,1e-50]}]}"#,
    r#"{"type":"frame","t":1,"camera":"c","plates":[{"text":"B","conf":0.1,"box":[0.7,0.2,0.3,0.4]},{"text":"C","conf":0.1,"box":[0.1,0.2,0.3,0.4]},{"text":"D","conf":0.9,"box":[0.1,0.2,0.3,0.4]}]}"#,
    r#"{"type":"frame","t":1000,"camera":"cam\/1","plates":[{"text":"京\"A\u4eac\n","conf":0.9,"box":[0.1,0.2,0.3,0.4]}]}"#,
    r#"{"type":"frame","t":1000,"camera":"cam1","plates":[{"text":"\u4eacA12345","conf":0.9,"box":[0.1,0.2,0.3,0.4]}]}"#,
    " { \"type\" : \"frame\" ,\t\"t\":1000, \"camera\":\"cam1\",\"plates\":[ { \"text\":\"A1\", \"conf\":0.5 ,\"box\":[0.1, 0.2,0.3 ,0.4] } ] }  ",
    "\u{3000}{\"type\":\"frame\",\"t\":1,\"camera\":\"c\",\"plates\":[]}\u{a0}",
    r#"{"t":1000,"type":"frame","plates":[],"camera":"cam1"}"#,
    r#"{"type":"frame","camera":"cam1","t":1000,"plates":[{"box":[0.1,0.2,0.3,0.4],"conf":0.7,"text":"A1"}]}"#,
    r#"{"type":"nozzle","t":1300,"fp":1,"nozzle":2,"state":"out"}"#,
    r#"{"type":"nozzle","t":1300,"fp":255,"nozzle":0,"state":"in"}"#,
    r#"{"state":"in","nozzle":2,"fp":1,"t":1300,"type":"nozzle"}"#,
    r#"{"type":"sale","t":9000,"fp":1,"nozzle":2,"volume":"35.21","amount":"276.40","price":"7.85","ref":"s17"}"#,
    r#"{"type":"sale","t":9500,"fp":1,"nozzle":2,"volume":"1.00","amount":"7.85","price":"7.85"}"#,
    r#"{"type":"sale","t":9500,"fp":1,"nozzle":2,"volume":"-1","amount":"0035.2","price":"7.123456789","ref":null}"#,
    r#"{"type":"sale","t":9500,"fp":1,"nozzle":2,"volume":"1","amount":"2","price":"3","ref":"s\u0031"}"#,
    r#"{"ref":"s9","type":"sale","price":"7.85","t":9500,"fp":1,"nozzle":2,"volume":"1.00","amount":"7.85"}"#,
];

/// Lines serde refuses; the reader must refuse them with serde's message.
const BAD_LINES: &[&str] = &[
    r#"{"type":"frame","t":1200,"camera":"cam1","plates":[]"#,
    r#"{"type":"frame","t":1200,"camera":"cam1","plates":[{"text":"A","conf":0.9,"box":[0.1,0.2"#,
    r#"{"type":"frame","t":1200,"camera":"cam1","plates":[]}}"#,
    r#"{"type":"frame","t":1200,"camera":"cam1","plates":[]},"#,
    r#"{"type":"frame","t":"1200","camera":"cam1","plates":[]}"#,
    r#"{"type":"frame","t":1200.0,"camera":"cam1","plates":[]}"#,
    r#"{"type":"frame","t":-0,"camera":"cam1","plates":[]}"#,
    r#"{"type":"frame","t":01200,"camera":"cam1","plates":[]}"#,
    r#"{"type":"frame","t":9223372036854775808,"camera":"cam1","plates":[]}"#,
    r#"{"type":"frame","t":1e400,"camera":"cam1","plates":[]}"#,
    r#"{"type":"frame","t":1200,"camera":"cam1","plates":{}}"#,
    r#"{"type":"frame","t":1200,"camera":"cam1","plates":null}"#,
    r#"{"type":"frame","t":1200,"camera":7,"plates":[]}"#,
    r#"{"type":"frame","t":1200,"plates":[]}"#,
    r#"{"type":"frame","t":1200,"camera":"cam1"}"#,
    r#"{"type":"frame","t":1200,"t":1300,"camera":"cam1","plates":[]}"#,
    r#"{"type":"frame","t":1200,"camera":"cam1","plates":[],"extra":1}"#,
    r#"{"type":"frame","t":1200,"camera":"cam1","plates":[{"text":"A","conf":NaN,"box":[0.1,0.2,0.3,0.4]}]}"#,
    r#"{"type":"frame","t":1200,"camera":"cam1","plates":[{"text":"A","conf":1e400,"box":[0.1,0.2,0.3,0.4]}]}"#,
    r#"{"type":"frame","t":1200,"camera":"cam1","plates":[{"text":"A","conf":"0.9","box":[0.1,0.2,0.3,0.4]}]}"#,
    r#"{"type":"frame","t":1200,"camera":"cam1","plates":[{"text":"A","conf":.9,"box":[0.1,0.2,0.3,0.4]}]}"#,
    r#"{"type":"frame","t":1200,"camera":"cam1","plates":[{"text":"A","conf":1.,"box":[0.1,0.2,0.3,0.4]}]}"#,
    r#"{"type":"frame","t":1200,"camera":"cam1","plates":[{"text":"A","conf":0.9,"box":[0.1,0.2,0.3]}]}"#,
    r#"{"type":"frame","t":1200,"camera":"cam1","plates":[{"text":"A","conf":0.9,"box":[0.1,0.2,0.3,0.4,0.5]}]}"#,
    r#"{"type":"frame","t":1200,"camera":"cam1","plates":[{"text":"A","box":[0.1,0.2,0.3,0.4]}]}"#,
    r#"{"type":"frame","t":1200,"camera":"cam1","plates":[{"text":"A","conf":0.9,"box":[0.1,0.2,0.3,0.4],"x":1}]}"#,
    r#"{"type":"frame","t":1200,"camera":"cam1","plates":[{"text":"A\x","conf":0.9,"box":[0.1,0.2,0.3,0.4]}]}"#,
    "{\"type\":\"frame\",\"t\":1200,\"camera\":\"cam\t1\",\"plates\":[]}",
    r#"{"type":"frame","t":1200,"camera":"cam1","plates":[{}]}"#,
    r#"{"type":"frame","t":1200,"camera":"cam1","plates":[,]}"#,
    r#"{"type":"photo","t":1200}"#,
    r#"{"t":1200}"#,
    r#"[1,2]"#,
    r#"{"type":"nozzle","t":1300,"fp":256,"nozzle":2,"state":"out"}"#,
    r#"{"type":"nozzle","t":1300,"fp":1,"nozzle":-1,"state":"out"}"#,
    r#"{"type":"nozzle","t":1300,"fp":1,"nozzle":2,"state":"up"}"#,
    r#"{"type":"nozzle","t":1300,"fp":1,"nozzle":2}"#,
    r#"{"type":"sale","t":9000,"fp":1,"nozzle":2,"volume":"35.2.1","amount":"276.40","price":"7.85"}"#,
    r#"{"type":"sale","t":9000,"fp":1,"nozzle":2,"volume":35.21,"amount":"276.40","price":"7.85"}"#,
    r#"{"type":"sale","t":9000,"fp":1,"nozzle":2,"volume":"99999999999999999999","amount":"1","price":"1"}"#,
    r#"{"type":"sale","t":9000,"fp":1,"nozzle":2,"amount":"276.40","price":"7.85"}"#,
    r#"{"type":"sale","t":9000,"fp":1,"nozzle":2,"volume":"1","amount":"1","price":"1","ref":5}"#,
];

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

/// A reading of one line: the record rendered with `{:?}` (so floats compare bit for bit, -0.0
/// too; `None` for a blank line), or the line number and message of a `BadLine`.
type Reading = Result<Option<String>, (usize, String)>;

/// What serde makes of `line` as the second line of a trace: the reading before the fast path.
fn serde_reading(line: &[u8]) -> Reading {
    let Ok(text) = std::str::from_utf8(line) else {
        return Err((2, "not UTF-8".into()));
    };
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    serde_json::from_str::<TraceRecord>(text)
        .map(|record| Some(format!("{record:?}")))
        .map_err(|e| (2, e.to_string()))
}

/// What the reader makes of `line` as the second line of a trace, read owned and borrowed (the
/// two must agree).
fn reader_reading(line: &[u8]) -> Reading {
    let mut trace = format!("{LAYOUT_LINE}\n").into_bytes();
    trace.extend_from_slice(line);
    trace.push(b'\n');
    let reading = |result: Result<Option<TraceRecord>, TraceError>| match result {
        Ok(record) => Ok(record.map(|r| format!("{r:?}"))),
        Err(TraceError::BadLine { line, message }) => Err((line, message)),
        Err(other) => panic!("not a BadLine: {other}"),
    };
    let (_, mut reader) = TraceReader::open(trace.as_slice()).unwrap();
    let owned = reading(reader.next_record());
    let (_, mut reader) = TraceReader::open(trace.as_slice()).unwrap();
    let borrowed = reading(reader.next_record_ref().map(|r| r.map(|r| r.to_record())));
    assert_eq!(owned, borrowed, "owned and borrowed readings differ");
    owned
}

#[test]
fn every_corpus_line_reads_as_serde_reads_it() {
    for line in CORPUS {
        let expected = serde_reading(line.as_bytes());
        assert!(expected.is_ok(), "a corpus line serde refuses: {line}");
        assert_eq!(reader_reading(line.as_bytes()), expected, "{line}");
    }
}

#[test]
fn written_frames_read_back_exactly() {
    let confs = [
        0.0f32,
        1.0,
        0.93,
        0.1 + 0.2,
        1e-7,
        0.999_999_9,
        123.456,
        -0.0,
    ];
    let mut writer = TraceWriter::new(Vec::new(), &layout(), 0).unwrap();
    let mut written = Vec::new();
    for (i, conf) in confs.iter().enumerate() {
        let frame = FramePlates {
            t: 1000 + i as i64,
            camera: format!("cam{i}"),
            plates: (0..i)
                .map(|k| PlateRead {
                    text: format!("苏E{k}5EV8"),
                    confidence: *conf,
                    bbox: [0.1 * k as f32, *conf, 0.333_333_34, 1.0],
                })
                .collect(),
        };
        writer.write_frame(&frame).unwrap();
        written.push(TraceRecord::from_frame(&frame));
    }
    let bytes = writer.finish().unwrap();
    let (_, mut reader) = TraceReader::open(bytes.as_slice()).unwrap();
    for record in &written {
        let read = reader.next_record().unwrap().unwrap();
        assert_eq!(format!("{read:?}"), format!("{record:?}"));
    }
    assert!(reader.next_record().unwrap().is_none());
}

#[test]
fn bad_lines_give_serdes_message_and_their_line_number() {
    for line in BAD_LINES {
        let expected = serde_reading(line.as_bytes());
        assert!(expected.is_err(), "serde reads this line: {line}");
        assert_eq!(reader_reading(line.as_bytes()), expected, "{line}");
    }
    assert_eq!(
        reader_reading(b"{\"type\":\"frame\",\"t\":1,\"camera\":\"\xffcam\",\"plates\":[]}"),
        Err((2, "not UTF-8".into()))
    );
    // Blank lines count: the truncated last line is line 4.
    let mut trace = format!("{LAYOUT_LINE}\n{}\n\n", CORPUS[0]);
    trace.push_str(r#"{"type":"frame","t":1200,"camera":"cam1","plates":[{"text":"A""#);
    let (_, mut reader) = TraceReader::open(trace.as_bytes()).unwrap();
    assert!(reader.next_record_ref().unwrap().is_some());
    match reader.next_record_ref() {
        Err(TraceError::BadLine { line: 4, message }) => assert!(message.contains("EOF")),
        other => panic!("{other:?}"),
    }
}

/// Random byte mutations of valid lines: the reader never panics, and reads or refuses each line
/// exactly as serde does.
#[test]
fn mutated_lines_never_panic_and_read_as_serde_reads_them() {
    const ALPHABET: &[u8] = b"{}[]\":,.-+eE0123456789 \t\\unxabtf\x00\x1f\x7f\xe4\xba\xac\xff";
    // Seeded, so a failure reproduces.
    let mut rng = seeded_rng::Rng::new(0x9e37_79b9_7f4a_7c15);
    let mut random = move |below: usize| rng.below(below.max(1));
    let mut still_valid = 0;
    for round in 0..60_000 {
        let mut line = CORPUS[round % CORPUS.len()].as_bytes().to_vec();
        for _ in 0..1 + random(3) {
            let at = random(line.len() + 1);
            match random(4) {
                0 if at < line.len() => line[at] = ALPHABET[random(ALPHABET.len())],
                1 if at < line.len() => {
                    line.remove(at);
                }
                2 => line.insert(at, ALPHABET[random(ALPHABET.len())]),
                _ => line.truncate(at),
            }
        }
        let expected = serde_reading(&line);
        still_valid += usize::from(expected.is_ok());
        assert_eq!(
            reader_reading(&line),
            expected,
            "{}",
            String::from_utf8_lossy(&line)
        );
    }
    assert!(still_valid > 1000, "too few mutations stayed valid");
}
