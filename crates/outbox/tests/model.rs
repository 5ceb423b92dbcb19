//! Random append/ack/reopen sequences checked against an in-memory model.

use std::collections::{HashMap, VecDeque};

use outbox::Outbox;
use seeded_rng::Rng;
use serde_json::json;

#[derive(Debug, Clone, PartialEq)]
struct Expected {
    rowid: i64,
    stream: String,
    seq: u64,
    topic: String,
    body: serde_json::Value,
}

fn run_model(seed: u64, steps: usize) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");
    let mut rng = Rng::new(seed);
    let mut outbox = Outbox::open(&path).unwrap();
    let mut model: VecDeque<Expected> = VecDeque::new();
    let mut next_seq: HashMap<String, u64> = HashMap::new();

    for step in 0..steps {
        match rng.below(100) {
            0..=54 => {
                let stream = rng.pick(&["sale", "plate", "status"]).to_string();
                let body = json!({"step": step});
                let topic = format!("forecourt/ST/{stream}");
                let rec = outbox.append(&stream, &topic, &body).unwrap();
                let seq = next_seq.entry(stream.clone()).or_insert(0);
                *seq += 1;
                assert_eq!(rec.seq, *seq, "seed {seed} step {step}");
                model.push_back(Expected {
                    rowid: rec.rowid,
                    stream,
                    seq: *seq,
                    topic,
                    body,
                });
            }
            55..=84 if !model.is_empty() => {
                let i = rng.below(model.len());
                let gone = model.remove(i).unwrap();
                assert!(outbox.ack(gone.rowid).unwrap(), "seed {seed} step {step}");
            }
            85..=89 => {
                // Acking something already gone (a duplicate PUBACK) changes nothing.
                let rowid = rng.below(steps + 2) as i64;
                let present = model.iter().any(|e| e.rowid == rowid);
                assert_eq!(outbox.ack(rowid).unwrap(), present);
                model.retain(|e| e.rowid != rowid);
            }
            90..=94 => {
                drop(outbox);
                outbox = Outbox::open(&path).unwrap();
            }
            _ => {
                // Paging from a random position sees exactly the model's tail.
                let after = model.get(rng.below(model.len() + 1)).map(|e| e.rowid);
                let limit = rng.below(8);
                let got: Vec<i64> = outbox
                    .pending(after, limit)
                    .unwrap()
                    .iter()
                    .map(|r| r.rowid)
                    .collect();
                let want: Vec<i64> = model
                    .iter()
                    .filter(|e| after.is_none_or(|a| e.rowid > a))
                    .take(limit)
                    .map(|e| e.rowid)
                    .collect();
                assert_eq!(got, want, "seed {seed} step {step}");
            }
        }
        let stored: Vec<Expected> = outbox
            .pending(None, usize::MAX)
            .unwrap()
            .into_iter()
            .map(|r| {
                let payload: serde_json::Value = serde_json::from_slice(&r.payload).unwrap();
                assert_eq!(payload["id"], r.id.to_string());
                assert_eq!(payload["seq"], r.seq);
                Expected {
                    rowid: r.rowid,
                    stream: r.stream,
                    seq: r.seq,
                    topic: r.topic,
                    body: payload["body"].clone(),
                }
            })
            .collect();
        assert_eq!(stored, Vec::from(model.clone()), "seed {seed} step {step}");
        assert_eq!(outbox.depth().unwrap(), model.len() as u64);
        assert_eq!(
            outbox.oldest_created().unwrap().is_some(),
            !model.is_empty()
        );
    }
}

#[test]
fn random_operations_match_the_model() {
    for seed in [1, 0x5EED, 0xDEAD_BEEF] {
        run_model(seed, 400);
    }
}
