//! docs/mqtt.md and the wire types say the same: every stream the document describes is a
//! `Stream` and the other way round, and every JSON example in the document reads into its type
//! and writes back unchanged (a field the document shows that a struct lacks, or the other way
//! round, changes the example). Field tables name exactly the example's fields.

use std::collections::BTreeSet;

use serde_json::Value;
use wire::{AgentHealth, Envelope, Event, Health, Status, Stream};

fn doc() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/mqtt.md");
    std::fs::read_to_string(path).expect("docs/mqtt.md")
}

/// The text under the heading `heading` (a whole line), up to the next heading of its level or
/// above.
fn section<'a>(doc: &'a str, heading: &str) -> &'a str {
    let level = heading.chars().take_while(|c| *c == '#').count();
    let start = doc
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("docs/mqtt.md has no heading {heading:?}"))
        + heading.len()
        + 2;
    let rest = &doc[start..];
    let end = rest
        .match_indices("\n#")
        .find(|(i, _)| {
            let hashes = rest[i + 1..].chars().take_while(|c| *c == '#').count();
            hashes <= level && rest[i + 1 + hashes..].starts_with(' ')
        })
        .map_or(rest.len(), |(i, _)| i);
    &rest[..end]
}

/// Every JSON value in the ```json blocks of `text` (a block may hold several, one per line).
fn examples(text: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for block in text.split("```json\n").skip(1) {
        let block = &block[..block.find("```").expect("unclosed code block")];
        for value in serde_json::Deserializer::from_str(block).into_iter::<Value>() {
            out.push(value.unwrap_or_else(|e| panic!("bad JSON in docs/mqtt.md: {e}\n{block}")));
        }
    }
    out
}

/// The backticked names in the first column of the `| field | type | meaning |` table of `text`.
fn table_fields(text: &str) -> Option<BTreeSet<String>> {
    let table = text.split("| field |").nth(1)?;
    let mut fields = BTreeSet::new();
    for row in table.lines().skip(2) {
        let Some(cell) = row.strip_prefix('|').and_then(|r| r.split('|').next()) else {
            break;
        };
        fields.extend(backticked(cell));
    }
    Some(fields)
}

fn backticked(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

fn keys(value: &Value) -> BTreeSet<String> {
    value
        .as_object()
        .expect("an example is a JSON object")
        .keys()
        .cloned()
        .collect()
}

/// Equal as JSON, with numbers equal to 7 significant digits (`f32` fields widen on the way).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => {
                let (x, y) = (
                    x.as_f64().unwrap_or(f64::NAN),
                    y.as_f64().unwrap_or(f64::NAN),
                );
                (x - y).abs() <= 1e-7 * x.abs().max(1.0)
            }
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

fn assert_round_trip(what: &str, example: &Value, back: &Value) {
    assert!(
        same(example, back),
        "{what}: docs/mqtt.md shows\n{example}\nbut the wire type writes\n{back}\n\
         (fields only in the document: {:?}; only in the type: {:?})",
        keys(example).difference(&keys(back)).collect::<Vec<_>>(),
        keys(back).difference(&keys(example)).collect::<Vec<_>>(),
    );
}

#[test]
fn the_document_describes_every_stream_and_no_other() {
    let doc = doc();
    let ours: BTreeSet<String> = Stream::ALL.iter().map(|s| s.name().to_owned()).collect();
    let headings: BTreeSet<String> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("### `events/")?.strip_suffix('`'))
        .map(str::to_owned)
        .collect();
    assert_eq!(headings, ours, "the `### events/<stream>` sections");
    let topics: BTreeSet<String> = doc
        .lines()
        .filter_map(|l| {
            l.strip_prefix("| `<prefix>/<station>/events/")?
                .split('`')
                .next()
        })
        .map(str::to_owned)
        .collect();
    assert_eq!(topics, ours, "the topic table");
    let envelope = section(&doc, "## Events: the envelope");
    let stream_row = envelope
        .lines()
        .find(|l| l.starts_with("| `stream` |"))
        .expect("the envelope table has a `stream` row");
    let listed: BTreeSet<String> = backticked(stream_row).into_iter().skip(1).collect();
    assert_eq!(listed, ours, "the envelope's `stream` row");
}

#[test]
fn every_stream_example_is_its_type() {
    let doc = doc();
    for stream in Stream::ALL {
        let text = section(&doc, &format!("### `events/{}`", stream.name()));
        let examples = examples(text);
        assert!(!examples.is_empty(), "events/{stream} has no JSON example");
        for example in &examples {
            let event = Event::from_body(stream, example.clone())
                .unwrap_or_else(|e| panic!("events/{stream} example {example}: {e}"));
            let back = event.to_body().unwrap();
            assert_round_trip(&format!("events/{stream}"), example, &back);
        }
        if let Some(fields) = table_fields(text) {
            assert_eq!(fields, keys(&examples[0]), "events/{stream}: field table");
        }
    }
}

#[test]
fn the_envelope_example_is_the_envelope() {
    let doc = doc();
    let text = section(&doc, "## Events: the envelope");
    let example = &examples(text)[0];
    let envelope: Envelope = serde_json::from_value(example.clone()).unwrap();
    assert_round_trip(
        "envelope",
        example,
        &serde_json::to_value(&envelope).unwrap(),
    );
    assert_eq!(table_fields(text).unwrap(), keys(example), "envelope table");
}

#[test]
fn the_status_examples_are_the_status() {
    let doc = doc();
    let text = section(&doc, "## `status` (retained) and the last will");
    let examples = examples(text);
    assert_eq!(examples.len(), 3, "online, connection lost, shutdown");
    for example in &examples {
        let status: Status = serde_json::from_value(example.clone()).unwrap();
        assert_round_trip("status", example, &serde_json::to_value(&status).unwrap());
    }
}

#[test]
fn the_health_example_is_the_health_report() {
    let doc = doc();
    let text = section(&doc, "## `health`");
    let example = &examples(text)[0];
    let health: Health = serde_json::from_value(example.clone()).unwrap();
    assert_round_trip("health", example, &serde_json::to_value(&health).unwrap());
    let agent: AgentHealth = serde_json::from_value(health.agent.clone()).unwrap();
    assert_round_trip(
        "health.agent",
        &health.agent,
        &serde_json::to_value(&agent).unwrap(),
    );
    // Every field the table names by its path (`outbox.cap`) is in the example.
    for name in table_fields(text).unwrap() {
        if !name.contains('.') || name.contains('*') {
            continue;
        }
        let found = name.split('.').try_fold(example, |at, key| at.get(key));
        assert!(
            found.is_some(),
            "the health table explains {name}, which the example lacks"
        );
    }
}

/// The checks above can fail: a field the document shows that the type drops is caught.
#[test]
fn a_field_missing_from_a_type_is_caught() {
    let doc = doc();
    let sale = &examples(section(&doc, "### `events/sale`"))[0];
    let mut with_extra = sale.clone();
    with_extra["pump_serial"] = Value::from("X1");
    let back = Event::from_body(Stream::Sale, with_extra.clone())
        .unwrap()
        .to_body()
        .unwrap();
    assert!(!same(&with_extra, &back));
    assert!(same(sale, &back));
}
