//! Acknowledged records move to a bounded archive, and `resend` puts them back in the queue with
//! their original id and seq.

use outbox::{Outbox, OutboxLimits, Record};
use serde_json::json;

fn temp_outbox(limits: OutboxLimits) -> (tempfile::TempDir, Outbox) {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open_with_limits(dir.path().join("outbox.db"), limits).unwrap();
    (dir, outbox)
}

fn ack_all(outbox: &Outbox) {
    let rowids: Vec<i64> = outbox
        .pending(None, usize::MAX)
        .unwrap()
        .iter()
        .map(|r| r.rowid)
        .collect();
    outbox.ack_many(&rowids).unwrap();
}

#[test]
fn resend_requeues_acknowledged_records_with_their_original_id_and_seq() {
    let (_dir, outbox) = temp_outbox(OutboxLimits::default());
    let sales: Vec<Record> = (0..5)
        .map(|n| outbox.append("sale", "t/sale", &json!({"n": n})).unwrap())
        .collect();
    outbox.append("nozzle", "t/nozzle", &json!({})).unwrap();
    ack_all(&outbox);
    assert_eq!(outbox.depth().unwrap(), 0);
    let usage = outbox.usage().unwrap();
    assert_eq!((usage.records, usage.archive_records), (0, 6));

    // The uplink has read everything up to here; re-queued records must come after it.
    let cursor = sales.last().unwrap().rowid + 1;
    assert_eq!(outbox.resend("sale", 3).unwrap(), 3);
    let again = outbox.pending(Some(cursor), 100).unwrap();
    assert_eq!(again.len(), 3);
    for (got, want) in again.iter().zip(&sales[2..]) {
        assert_eq!(
            (
                got.id,
                got.seq,
                &got.stream,
                &got.topic,
                &got.payload,
                got.created
            ),
            (
                want.id,
                want.seq,
                &want.stream,
                &want.topic,
                &want.payload,
                want.created
            )
        );
        assert!(got.rowid > cursor, "a new position, after the cursor");
    }
    // A record lives in one place at a time.
    let usage = outbox.usage().unwrap();
    assert_eq!((usage.records, usage.archive_records), (3, 3));
    // Asking again finds nothing more to re-queue; another stream is untouched.
    assert_eq!(outbox.resend("sale", 1).unwrap(), 2);
    assert_eq!(outbox.resend("sale", 1).unwrap(), 0);
    assert_eq!(outbox.resend("nope", 1).unwrap(), 0);
    assert_eq!(outbox.depth().unwrap(), 5);

    // Acknowledged again: back in the archive, once.
    ack_all(&outbox);
    let usage = outbox.usage().unwrap();
    assert_eq!((usage.records, usage.archive_records), (0, 6));
    // Numbering goes on where it was.
    assert_eq!(outbox.append("sale", "t", &json!({})).unwrap().seq, 6);
}

#[test]
fn resend_never_duplicates_a_record_still_waiting() {
    let (_dir, outbox) = temp_outbox(OutboxLimits::default());
    let a = outbox.append("sale", "t", &json!(1)).unwrap();
    outbox.append("sale", "t", &json!(2)).unwrap();
    outbox.ack(a.rowid).unwrap();
    assert_eq!(outbox.resend("sale", 1).unwrap(), 1);
    let seqs: Vec<u64> = outbox
        .pending(None, 10)
        .unwrap()
        .iter()
        .map(|r| r.seq)
        .collect();
    assert_eq!(seqs, vec![2, 1]);
}

#[test]
fn the_archive_is_pruned_by_age_and_by_size() {
    let limits = OutboxLimits {
        archive_max_age_s: 60,
        archive_max_bytes: 2_000,
        ..OutboxLimits::default()
    };
    let (_dir, outbox) = temp_outbox(limits);
    let pad = "x".repeat(100);
    for n in 0..30 {
        outbox
            .append("nozzle", "t", &json!({"n": n, "pad": pad}))
            .unwrap();
    }
    ack_all(&outbox);
    let before = outbox.usage().unwrap();
    assert_eq!(before.archive_records, 30);
    assert!(before.archive_bytes > 2_000);

    // Size: the oldest acknowledged go first, until under the cap.
    let report = outbox.enforce_limits().unwrap();
    assert!(report.usage.archive_bytes <= 2_000, "{report:?}");
    assert!(report.archive_pruned > 0);
    let kept = report.usage.archive_records;
    assert_eq!(kept + report.archive_pruned, 30);
    // What is left is the newest: resend from 1 brings back only the tail.
    assert_eq!(outbox.resend("nozzle", 1).unwrap(), kept);
    let seqs: Vec<u64> = outbox
        .pending(None, 100)
        .unwrap()
        .iter()
        .map(|r| r.seq)
        .collect();
    assert_eq!(seqs, ((30 - kept + 1)..=30).collect::<Vec<_>>());
    ack_all(&outbox);

    // Age: a minute later, everything is gone.
    let later = forecourt_now() + 61_000;
    let report = outbox.enforce_limits_at(later).unwrap();
    assert_eq!(report.usage.archive_records, 0);
    assert_eq!(outbox.resend("nozzle", 1).unwrap(), 0);
}

#[test]
fn no_archive_when_retention_is_zero() {
    let limits = OutboxLimits {
        archive_max_age_s: 0,
        ..OutboxLimits::default()
    };
    let (_dir, outbox) = temp_outbox(limits);
    outbox.append("sale", "t", &json!({})).unwrap();
    ack_all(&outbox);
    assert_eq!(outbox.usage().unwrap().archive_records, 0);
    assert_eq!(outbox.resend("sale", 1).unwrap(), 0);
}

#[test]
fn the_archive_survives_reopen_and_upgrade_from_schema_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");
    {
        let outbox = Outbox::open(&path).unwrap();
        outbox.append("sale", "t", &json!({"n": 1})).unwrap();
        outbox.hold("k", &json!({})).unwrap();
    }
    // Wind the file back to schema 2, as the previous agent left it.
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "DROP INDEX records_by_stream; DROP TABLE state; DROP TABLE commands_seen; DROP TABLE dead_letter; DROP TABLE dropped; DROP TABLE totalizers; DROP TABLE archive; PRAGMA user_version = 2;",
        )
            .unwrap();
    }
    let outbox = Outbox::open(&path).unwrap();
    assert_eq!(outbox.depth().unwrap(), 1);
    assert_eq!(outbox.held().unwrap().len(), 1);
    ack_all(&outbox);
    drop(outbox);
    let outbox = Outbox::open(&path).unwrap();
    assert_eq!(outbox.resend("sale", 1).unwrap(), 1);
}

fn forecourt_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn recent_bodies_come_from_the_queue_and_the_archive_oldest_first() {
    let (_dir, outbox) = temp_outbox(OutboxLimits::default());
    for n in 0..4 {
        outbox
            .append("hourly", "t/hourly", &json!({"n": n}))
            .unwrap();
    }
    outbox.append("sale", "t/sale", &json!({"n": 99})).unwrap();
    ack_all(&outbox); // 0..4 archived
    outbox
        .append("hourly", "t/hourly", &json!({"n": 4}))
        .unwrap(); // still waiting
    let ns = |bodies: Vec<serde_json::Value>| -> Vec<u64> {
        bodies.iter().map(|b| b["n"].as_u64().unwrap()).collect()
    };
    assert_eq!(
        ns(outbox.recent_bodies("hourly", 3).unwrap()),
        vec![2, 3, 4]
    );
    assert_eq!(
        ns(outbox.recent_bodies("hourly", 100).unwrap()),
        vec![0, 1, 2, 3, 4]
    );
    assert!(outbox.recent_bodies("visit", 10).unwrap().is_empty());
}

/// A resend moves at most its cap and says where to go on.
#[test]
fn a_resend_batch_stops_at_its_cap_and_says_where_to_go_on() {
    let (_dir, outbox) = temp_outbox(OutboxLimits::default());
    for n in 0..5 {
        outbox.append("sale", "t", &json!({"n": n})).unwrap();
    }
    ack_all(&outbox);
    let first = outbox.resend_batch("sale", 1, None, 2).unwrap();
    assert_eq!((first.requeued, first.next_from_seq), (2, Some(3)));
    let rest = outbox.resend_batch("sale", 3, None, 10).unwrap();
    assert_eq!((rest.requeued, rest.next_from_seq), (3, None));
    assert!(first.gone.is_empty() && rest.gone.is_empty());
    let seqs: Vec<u64> = outbox
        .pending(None, 10)
        .unwrap()
        .iter()
        .map(|r| r.seq)
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
}

/// `to_seq` bounds a resend: one hole is answered with its own records, not all after it.
#[test]
fn a_resend_stops_at_to_seq() {
    let (_dir, outbox) = temp_outbox(OutboxLimits::default());
    for n in 0..10 {
        outbox.append("sale", "t", &json!({"n": n})).unwrap();
    }
    ack_all(&outbox);
    let resent = outbox.resend_batch("sale", 4, Some(6), 100).unwrap();
    assert_eq!((resent.requeued, resent.next_from_seq), (3, None));
    assert!(resent.gone.is_empty());
    let seqs: Vec<u64> = outbox
        .pending(None, 20)
        .unwrap()
        .iter()
        .map(|r| r.seq)
        .collect();
    assert_eq!(seqs, [4, 5, 6]);
    // The cap still applies inside the bound.
    let capped = outbox.resend_batch("sale", 7, Some(10), 2).unwrap();
    assert_eq!((capped.requeued, capped.next_from_seq), (2, Some(9)));
}

/// Seqs the station handed out but holds nowhere (dropped over the cap, or past the archive)
/// come back as `gone`, so HQ stops asking for them; waiting and archived ones are not gone,
/// and seqs never handed out are not either.
#[test]
fn a_resend_names_the_seqs_it_no_longer_holds() {
    let (_dir, outbox) = temp_outbox(OutboxLimits {
        max_records: 4,
        ..OutboxLimits::default()
    });
    for n in 0..10 {
        outbox.append("nozzle", "t", &json!({"n": n})).unwrap();
    }
    // Over the cap of 4: the oldest six are dropped unsent.
    outbox.enforce_limits().unwrap();
    let pending: Vec<u64> = outbox
        .pending(None, 20)
        .unwrap()
        .iter()
        .map(|r| r.seq)
        .collect();
    assert_eq!(pending, [7, 8, 9, 10]);
    let resent = outbox.resend_batch("nozzle", 2, None, 100).unwrap();
    assert_eq!(resent.requeued, 0);
    assert_eq!(resent.gone, [(2, 6)]);
    let bounded = outbox.resend_batch("nozzle", 5, Some(20), 100).unwrap();
    assert_eq!(
        bounded.gone,
        [(5, 6)],
        "seqs after the last handed out are not gone"
    );
    assert!(outbox
        .resend_batch("other", 1, None, 10)
        .unwrap()
        .gone
        .is_empty());
}

/// How far each stream left the queue: what the health report tells HQ, so it can see a
/// hole at a stream's tail. Waiting and re-queued records hold it back; dropped ones do not.
#[test]
fn acked_through_is_where_the_oldest_waiting_record_of_a_stream_begins() {
    let (_dir, outbox) = temp_outbox(OutboxLimits::default());
    assert!(outbox.acked_through().unwrap().is_empty());
    for n in 0..5 {
        outbox.append("sale", "t", &json!({"n": n})).unwrap();
    }
    outbox.append("nozzle", "t", &json!({})).unwrap();
    let sales: Vec<i64> = outbox
        .pending(None, 10)
        .unwrap()
        .iter()
        .filter(|r| r.stream == "sale")
        .map(|r| r.rowid)
        .collect();
    outbox.ack_many(&sales[..3]).unwrap();
    let through = outbox.acked_through().unwrap();
    assert_eq!((through["sale"], through["nozzle"]), (3, 0));
    ack_all(&outbox);
    assert_eq!(outbox.acked_through().unwrap()["sale"], 5);
    outbox.resend_batch("sale", 2, Some(2), 10).unwrap();
    assert_eq!(
        outbox.acked_through().unwrap()["sale"],
        1,
        "a re-queued record holds it back"
    );
}
