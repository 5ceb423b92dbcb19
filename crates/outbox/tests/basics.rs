//! Behaviour of one outbox file: numbering, acking, reopening, bad files.

use outbox::{Outbox, OutboxError};
use serde_json::json;

fn temp_outbox() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");
    (dir, path)
}

#[test]
fn payload_is_the_envelope_with_id_seq_stream_time_and_body() {
    let (_dir, path) = temp_outbox();
    let outbox = Outbox::open(&path).unwrap();
    let rec = outbox
        .append("sale", "forecourt/ST1/events/sale", &json!({"fp": 3}))
        .unwrap();
    let payload: serde_json::Value = serde_json::from_slice(&rec.payload).unwrap();
    assert_eq!(
        payload,
        json!({"id": rec.id.to_string(), "seq": 1, "stream": "sale", "t": rec.created, "body": {"fp": 3}})
    );
    assert_eq!(rec.id.get_version_num(), 4);
    let stored = outbox.pending(None, 10).unwrap();
    assert_eq!(stored, vec![rec]);
}

#[test]
fn sequences_are_gap_free_per_stream_across_acks_and_reopen() {
    let (_dir, path) = temp_outbox();
    {
        let outbox = Outbox::open(&path).unwrap();
        for _ in 0..3 {
            outbox.append("sale", "t/sale", &json!({})).unwrap();
        }
        outbox.append("plate", "t/plate", &json!({})).unwrap();
        // Acking everything must not make numbers come back.
        let all: Vec<i64> = outbox
            .pending(None, 100)
            .unwrap()
            .iter()
            .map(|r| r.rowid)
            .collect();
        assert_eq!(outbox.ack_many(&all).unwrap(), 4);
        assert_eq!(outbox.depth().unwrap(), 0);
    }
    let outbox = Outbox::open(&path).unwrap();
    let sale = outbox.append("sale", "t/sale", &json!({})).unwrap();
    let plate = outbox.append("plate", "t/plate", &json!({})).unwrap();
    let new_stream = outbox.append("status", "t/status", &json!({})).unwrap();
    assert_eq!((sale.seq, plate.seq, new_stream.seq), (4, 2, 1));
}

#[test]
fn positions_are_never_reused_after_the_outbox_was_emptied() {
    // The uplink reads "after position N"; a reused N would be skipped.
    let (_dir, path) = temp_outbox();
    let outbox = Outbox::open(&path).unwrap();
    let first = outbox.append("s", "t", &json!(1)).unwrap();
    outbox.ack(first.rowid).unwrap();
    drop(outbox);
    let outbox = Outbox::open(&path).unwrap();
    let second = outbox.append("s", "t", &json!(2)).unwrap();
    assert!(second.rowid > first.rowid);
    assert_eq!(outbox.pending(Some(first.rowid), 10).unwrap(), vec![second]);
}

#[test]
fn ack_deletes_only_that_record() {
    let (_dir, path) = temp_outbox();
    let outbox = Outbox::open(&path).unwrap();
    let recs: Vec<_> = (0..5)
        .map(|n| outbox.append("s", "t", &json!(n)).unwrap())
        .collect();
    assert!(outbox.ack(recs[2].rowid).unwrap());
    assert!(
        !outbox.ack(recs[2].rowid).unwrap(),
        "second ack finds nothing"
    );
    assert!(!outbox.ack(9999).unwrap());
    let left: Vec<u64> = outbox
        .pending(None, 10)
        .unwrap()
        .iter()
        .map(|r| r.seq)
        .collect();
    assert_eq!(left, vec![1, 2, 4, 5]);
    assert_eq!(outbox.depth().unwrap(), 4);
    assert_eq!(outbox.oldest_created().unwrap(), Some(recs[0].created));
}

#[test]
fn pending_pages_in_insertion_order() {
    let (_dir, path) = temp_outbox();
    let outbox = Outbox::open(&path).unwrap();
    for n in 0..10 {
        outbox
            .append(if n % 2 == 0 { "a" } else { "b" }, "t", &json!(n))
            .unwrap();
    }
    let first = outbox.pending(None, 4).unwrap();
    let rest = outbox
        .pending(Some(first.last().unwrap().rowid), 100)
        .unwrap();
    assert_eq!((first.len(), rest.len()), (4, 6));
    let bodies: Vec<i64> = first
        .iter()
        .chain(&rest)
        .map(|r| {
            serde_json::from_slice::<serde_json::Value>(&r.payload).unwrap()["body"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(bodies, (0..10).collect::<Vec<_>>());
    assert!(outbox.pending(None, 0).unwrap().is_empty());
}

#[test]
fn records_survive_drop_without_close() {
    let (_dir, path) = temp_outbox();
    let written = {
        let outbox = Outbox::open(&path).unwrap();
        let recs: Vec<_> = (0..20)
            .map(|n| outbox.append("s", "topic/x", &json!({"n": n})).unwrap())
            .collect();
        // Leak a clone so the connection is never closed (no checkpoint on close).
        std::mem::forget(outbox.clone());
        recs
    };
    let reopened = Outbox::open(&path).unwrap();
    assert_eq!(reopened.pending(None, 100).unwrap(), written);
}

#[test]
fn clones_share_the_outbox_across_threads() {
    let (_dir, path) = temp_outbox();
    let outbox = Outbox::open(&path).unwrap();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let outbox = outbox.clone();
            std::thread::spawn(move || {
                for n in 0..25 {
                    outbox.append(&format!("w{w}"), "t", &json!(n)).unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let recs = outbox.pending(None, 1000).unwrap();
    assert_eq!(recs.len(), 100);
    for w in 0..4 {
        let seqs: Vec<u64> = recs
            .iter()
            .filter(|r| r.stream == format!("w{w}"))
            .map(|r| r.seq)
            .collect();
        assert_eq!(seqs, (1..=25).collect::<Vec<_>>());
    }
}

#[test]
fn a_garbage_file_is_an_error_naming_the_file() {
    let (_dir, path) = temp_outbox();
    std::fs::write(&path, vec![0x42u8; 8192]).unwrap();
    let err = Outbox::open(&path).unwrap_err();
    assert!(matches!(err, OutboxError::Corrupt { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()) && msg.contains("corrupt"),
        "{msg}"
    );
}

#[test]
fn a_directory_in_place_of_the_file_is_an_error_naming_it() {
    let (dir, _) = temp_outbox();
    let err = Outbox::open(dir.path()).unwrap_err();
    assert!(
        err.to_string().contains(&dir.path().display().to_string()),
        "{err}"
    );
}

#[test]
fn an_unwritable_directory_is_an_error_naming_the_file() {
    let (dir, _) = temp_outbox();
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, b"x").unwrap();
    let path = blocker.join("outbox.db");
    let err = Outbox::open(&path).unwrap_err();
    assert!(matches!(err, OutboxError::CreateDir { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

#[test]
fn a_newer_schema_is_refused() {
    let (_dir, path) = temp_outbox();
    drop(Outbox::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("PRAGMA user_version = 99").unwrap();
    drop(conn);
    let err = Outbox::open(&path).unwrap_err();
    assert!(
        matches!(err, OutboxError::SchemaTooNew { found: 99, .. }),
        "{err:?}"
    );
}

#[test]
fn opening_sets_wal_and_full_sync() {
    let (_dir, path) = temp_outbox();
    drop(Outbox::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    // Schema 9: records, sequences, held items, archive, kept totalizers, dropped counts,
    // dead letters, command ids seen, kept state, records by stream.
    assert_eq!((mode.as_str(), version), ("wal", 9));
}

/// A corrupt file at start is moved aside, byte for byte, never deleted, and a fresh outbox
/// takes its place; a sound file is opened as it is; an error a fresh file would hit too
/// (the path is a directory) is returned, and nothing is moved.
#[test]
fn a_corrupt_file_is_quarantined_and_a_fresh_outbox_starts() {
    use outbox::OutboxLimits;
    let (dir, path) = temp_outbox();
    {
        let outbox = Outbox::open(&path).unwrap();
        outbox.append("sale", "t", &json!({"n": 1})).unwrap();
    }
    let (sound, moved) = Outbox::open_or_quarantine(&path, OutboxLimits::default()).unwrap();
    assert_eq!((moved, sound.depth().unwrap()), (None, 1));
    drop(sound);

    let garbage = vec![0x42u8; 8192];
    std::fs::write(&path, &garbage).unwrap();
    let (fresh, moved) = Outbox::open_or_quarantine(&path, OutboxLimits::default()).unwrap();
    let moved = moved.expect("the corrupt file was moved aside");
    assert!(moved.why.contains("corrupt"), "{}", moved.why);
    assert_eq!(std::fs::read(&moved.moved_to).unwrap(), garbage);
    assert!(moved
        .moved_to
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with("outbox.db.corrupt-"));
    assert_eq!(fresh.depth().unwrap(), 0);
    assert_eq!(fresh.append("sale", "t", &json!({})).unwrap().seq, 1);

    let not_a_file = dir.path().join("sub");
    std::fs::create_dir_all(not_a_file.join("x")).unwrap();
    assert!(Outbox::open_or_quarantine(&not_a_file, OutboxLimits::default()).is_err());
    assert!(not_a_file.is_dir(), "a directory is never moved");
}

/// A file with a damaged index (quick_check fails) whose tables still read: it is quarantined
/// byte for byte, and the fresh outbox takes over the records still waiting for HQ (same id and
/// seq, same order), the held items and the kept totalizers, and numbers each stream on after
/// the old file's last seq. A file of garbage hands over nothing, and its streams start at 1.
#[test]
fn a_quarantined_file_hands_over_what_can_still_be_read() {
    use outbox::{OutboxLimits, Salvaged, Totalizer};
    let (dir, path) = temp_outbox();
    let waiting: Vec<(String, String, u64)> = {
        let outbox = Outbox::open(&path).unwrap();
        let mut sales = Vec::new();
        for n in 0..6 {
            sales.push(outbox.append("sale", "t", &json!({ "n": n })).unwrap());
        }
        let plate = outbox.append("plate", "t", &json!({})).unwrap();
        // HQ acknowledged the first two sales: archived, not waiting.
        assert_eq!(
            outbox.ack_many(&[sales[0].rowid, sales[1].rowid]).unwrap(),
            2
        );
        outbox.hold("sale-fp1", &json!({ "fp": 1 })).unwrap();
        outbox
            .keep_totalizer(&Totalizer {
                fp: 2,
                nozzle: 1,
                total: 12345,
            })
            .unwrap();
        sales[2..]
            .iter()
            .chain([&plate])
            .map(|r| (r.id.to_string(), r.stream.clone(), r.seq))
            .collect()
    };
    // Overwrite the root page of the (stream, seq) index of `records` with garbage.
    let (page_size, root): (i64, i64) = {
        let conn = rusqlite::Connection::open(&path).unwrap();
        (
            conn.query_row("PRAGMA page_size", [], |r| r.get(0))
                .unwrap(),
            conn.query_row(
                "SELECT rootpage FROM sqlite_master WHERE name = 'sqlite_autoindex_records_1'",
                [],
                |r| r.get(0),
            )
            .unwrap(),
        )
    };
    {
        use std::os::unix::fs::FileExt;
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        let garbage = vec![0xA5u8; page_size as usize];
        file.write_all_at(&garbage, ((root - 1) * page_size) as u64)
            .unwrap();
    }
    let damaged = std::fs::read(&path).unwrap();

    let (fresh, moved) = Outbox::open_or_quarantine(&path, OutboxLimits::default()).unwrap();
    let moved = moved.expect("a damaged index is quarantined");
    assert_eq!(
        std::fs::read(&moved.moved_to).unwrap(),
        damaged,
        "the quarantined file is kept as it was"
    );
    assert_eq!(
        moved.salvaged,
        Salvaged {
            records: 5,
            held: 1,
            totalizers: 1,
            streams: 2
        }
    );
    let now_waiting: Vec<(String, String, u64)> = fresh
        .pending(None, 100)
        .unwrap()
        .into_iter()
        .map(|r| (r.id.to_string(), r.stream, r.seq))
        .collect();
    assert_eq!(now_waiting, waiting);
    assert_eq!(fresh.held().unwrap()[0].0, "sale-fp1");
    assert_eq!(
        fresh.totalizers().unwrap(),
        vec![Totalizer {
            fp: 2,
            nozzle: 1,
            total: 12345
        }]
    );
    assert_eq!(fresh.append("sale", "t", &json!({})).unwrap().seq, 7);
    assert_eq!(fresh.append("plate", "t", &json!({})).unwrap().seq, 2);
    fresh.quick_check().unwrap();
    let leftovers: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("salvage"))
        .collect();
    assert!(leftovers.is_empty(), "scratch copies left: {leftovers:?}");
    drop(fresh);

    std::fs::write(&path, vec![0x42u8; 8192]).unwrap();
    let (fresh, moved) = Outbox::open_or_quarantine(&path, OutboxLimits::default()).unwrap();
    assert_eq!(moved.unwrap().salvaged, Salvaged::default());
    assert_eq!(fresh.append("sale", "t", &json!({})).unwrap().seq, 1);
}

/// Each connection's own durability, as SQLite reports it: appends sync every commit (FULL: a
/// committed sale survives a power cut), the drain's deletes ride on the next sync (NORMAL: a
/// delete undone by a power cut only sends a record again). kill -9 cannot show a missing
/// fsync, so it is asserted here.
#[test]
fn appends_sync_every_commit_and_deletes_the_next_sync() {
    let (_dir, path) = temp_outbox();
    let outbox = Outbox::open(&path).unwrap();
    assert_eq!(outbox.synchronous_levels().unwrap(), (2, 1));
}

/// State a restart takes over: kept under a key, replaced as a whole, there after a reopen; a
/// key never kept has none; a body that is not JSON is a typed error, not a panic.
#[test]
fn state_is_kept_replaced_and_read_back_after_a_reopen() {
    let (_dir, path) = temp_outbox();
    {
        let outbox = Outbox::open(&path).unwrap();
        assert_eq!(outbox.state("running_hours").unwrap(), None);
        outbox
            .keep_state("running_hours", &json!({"taken_t": 1}))
            .unwrap();
        outbox
            .keep_state("running_hours", &json!({"taken_t": 2}))
            .unwrap();
    }
    let outbox = Outbox::open(&path).unwrap();
    assert_eq!(
        outbox.state("running_hours").unwrap(),
        Some(json!({"taken_t": 2}))
    );
    assert_eq!(
        outbox.depth().unwrap(),
        0,
        "state is no record: nothing is sent"
    );
    drop(outbox);
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute("UPDATE state SET body = x'7b7b'", [])
        .unwrap();
    let outbox = Outbox::open(&path).unwrap();
    assert!(matches!(
        outbox.state("running_hours"),
        Err(outbox::OutboxError::MalformedState { .. })
    ));
}

/// The uplink's two lanes: the real-time streams' records in queue order (each stream's own
/// order), bounded, from their own cursor; every other stream's without them.
#[test]
fn real_time_streams_are_read_apart_from_the_rest_in_queue_order() {
    let (_dir, path) = temp_outbox();
    let outbox = Outbox::open(&path).unwrap();
    // sale 1, nozzle 1, sale 2, arrival 1, sale 3, nozzle 2, arrival 2, sale 4
    for stream in [
        "sale", "nozzle", "sale", "arrival", "sale", "nozzle", "arrival", "sale",
    ] {
        outbox
            .append(stream, &format!("t/{stream}"), &json!({}))
            .unwrap();
    }
    let real_time = ["arrival", "nozzle", "pump"];
    let names = |read: &outbox::PendingRead| -> Vec<(String, u64)> {
        read.records
            .iter()
            .map(|r| (r.stream.clone(), r.seq))
            .collect()
    };
    let first = outbox.read_pending_of(&real_time, None, 3).unwrap();
    assert_eq!(
        names(&first),
        [
            ("nozzle".to_string(), 1),
            ("arrival".to_string(), 1),
            ("nozzle".to_string(), 2)
        ]
    );
    let cursor = first.records.last().map(|r| r.rowid);
    let next = outbox.read_pending_of(&real_time, cursor, 3).unwrap();
    assert_eq!(names(&next), [("arrival".to_string(), 2)]);
    let rest = outbox.read_pending_except(&real_time, None, 10).unwrap();
    assert_eq!(
        names(&rest),
        (1..=4).map(|n| ("sale".to_string(), n)).collect::<Vec<_>>()
    );
    // The plain read is every stream, in queue order.
    assert_eq!(outbox.read_pending(None, 100).unwrap().records.len(), 8);
}
