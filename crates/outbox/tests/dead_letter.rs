//! Rows that can never be sent: a read goes past them, and `dead_letter` moves one out of the
//! queue, kept as it was, with a notice for HQ, in one transaction.

use outbox::{Outbox, DEAD_LETTER_STREAM};
use serde_json::json;

#[test]
fn a_malformed_row_is_reported_and_the_rows_behind_it_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");
    let outbox = Outbox::open(&path).unwrap();
    outbox.append("sale", "t/sale", &json!({"n": 1})).unwrap();
    outbox.append("sale", "t/sale", &json!({"n": 2})).unwrap();
    outbox.append("sale", "t/sale", &json!({"n": 3})).unwrap();
    // Damage two rows as a bad disk or a hand edit would.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "UPDATE records SET id = 'not-a-uuid' WHERE seq = 1;
         UPDATE records SET seq = -5 WHERE seq = 2;",
    )
    .unwrap();
    drop(conn);

    // The plain read stops at the first bad row; read_pending goes past both.
    assert!(outbox.pending(None, 10).is_err());
    let read = outbox.read_pending(None, 10).unwrap();
    assert_eq!(read.records.len(), 1);
    assert_eq!(read.records[0].seq, 3);
    assert_eq!(read.malformed.len(), 2);
    assert!(
        read.malformed[0].1.contains("not a UUID"),
        "{:?}",
        read.malformed
    );
    assert!(
        read.malformed[1].1.contains("negative"),
        "{:?}",
        read.malformed
    );

    for (rowid, why) in &read.malformed {
        assert!(outbox.dead_letter(*rowid, why, "t/dead_letter").unwrap());
        assert!(
            !outbox.dead_letter(*rowid, why, "t/dead_letter").unwrap(),
            "moved once"
        );
    }
    assert_eq!(outbox.dead_letters().unwrap(), 2);
    // The queue now reads cleanly: the good sale, then one notice per dead letter.
    let left = outbox.pending(None, 10).unwrap();
    let streams: Vec<&str> = left.iter().map(|r| r.stream.as_str()).collect();
    assert_eq!(streams, ["sale", DEAD_LETTER_STREAM, DEAD_LETTER_STREAM]);
    let notice: serde_json::Value = serde_json::from_slice(&left[1].payload).unwrap();
    assert_eq!(notice["body"]["record"]["id"], "'not-a-uuid'");
    assert!(notice["body"]["why"]
        .as_str()
        .unwrap()
        .contains("not a UUID"));
    assert_eq!(left[1].topic, "t/dead_letter");

    // Kept for forensics, as it was.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let kept: (String, i64) = conn
        .query_row(
            "SELECT id, seq FROM dead_letter ORDER BY pos LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(kept, ("not-a-uuid".to_string(), 1));
}
