//! Held items: a sale waiting for its plate match survives a restart, and leaves the held table
//! only by becoming a record, in one transaction.

use outbox::Outbox;
use serde_json::json;

#[test]
fn held_items_survive_reopen_until_released() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");
    {
        let outbox = Outbox::open(&path).unwrap();
        outbox.hold("sale:1:1000", &json!({"fp": 1})).unwrap();
        outbox.hold("sale:2:2000", &json!({"fp": 2})).unwrap();
        // Holding again replaces the body, not a second item.
        outbox
            .hold("sale:1:1000", &json!({"fp": 1, "v": 2}))
            .unwrap();
    }
    let outbox = Outbox::open(&path).unwrap();
    let held = outbox.held().unwrap();
    assert_eq!(
        held,
        vec![
            ("sale:1:1000".to_string(), json!({"fp": 1, "v": 2})),
            ("sale:2:2000".to_string(), json!({"fp": 2})),
        ]
    );
    assert_eq!(outbox.depth().unwrap(), 0, "held items are not records");

    let rec = outbox
        .release(
            "sale:1:1000",
            "sale",
            "t/sale",
            &json!({"fp": 1, "plate": null}),
        )
        .unwrap();
    assert_eq!(rec.seq, 1);
    assert_eq!(outbox.held().unwrap().len(), 1);
    assert_eq!(outbox.depth().unwrap(), 1);

    // Releasing an unknown key still appends: the record is what matters.
    outbox
        .release("nope", "sale", "t/sale", &json!({}))
        .unwrap();
    assert_eq!(outbox.depth().unwrap(), 2);
    assert_eq!(outbox.held().unwrap().len(), 1);

    // Under an id chosen beforehand (a correction may name it before the write is done).
    let id = uuid::Uuid::new_v4();
    let rec = outbox
        .release_as("sale:2:2000", id, "sale", "t/sale", &json!({"fp": 2}))
        .unwrap();
    assert_eq!(rec.id, id);
    let sent = outbox.pending(None, 10).unwrap();
    assert_eq!(sent.last().map(|r| r.id), Some(id));
    assert!(outbox.held().unwrap().is_empty());
}

#[test]
fn schema_upgrade_from_version_1_keeps_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");
    {
        let outbox = Outbox::open(&path).unwrap();
        outbox.append("sale", "t/sale", &json!({"n": 1})).unwrap();
    }
    // Wind the file back to schema 1, as an older agent left it.
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "DROP INDEX records_by_stream; DROP TABLE state; DROP TABLE commands_seen; DROP TABLE dead_letter; DROP TABLE dropped; DROP TABLE totalizers; DROP TABLE archive; DROP TABLE held; \
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let outbox = Outbox::open(&path).unwrap();
    assert_eq!(outbox.depth().unwrap(), 1);
    outbox.hold("k", &json!({})).unwrap();
    assert_eq!(outbox.held().unwrap().len(), 1);
}

/// A sale and the totalizer that counts it are kept in one transaction, and both survive a
/// reopen; a gap and its reading likewise; a plain reading replaces the kept value.
#[test]
fn totalizers_are_kept_with_the_sale_that_counts_them() {
    use outbox::Totalizer;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");
    let t = |fp, nozzle, total| Totalizer { fp, nozzle, total };
    {
        let outbox = Outbox::open(&path).unwrap();
        assert!(outbox.totalizers().unwrap().is_empty());
        outbox.keep_totalizer(&t(4, 2, 8_000)).unwrap();
        outbox
            .hold_counted("sale:4:1", &json!({"fp": 4}), Some(&t(4, 2, 8_677)))
            .unwrap();
        outbox
            .append_counted("sale_gap", "t/gap", &json!({"fp": 1}), Some(&t(1, 1, 500)))
            .unwrap();
        outbox
            .hold_counted("sale:3:1", &json!({"fp": 3}), None)
            .unwrap();
    }
    let outbox = Outbox::open(&path).unwrap();
    assert_eq!(
        outbox.totalizers().unwrap(),
        vec![t(1, 1, 500), t(4, 2, 8_677)]
    );
    assert_eq!(outbox.held().unwrap().len(), 2);
    assert_eq!(outbox.depth().unwrap(), 1);

    // A value no DC101 can carry is refused, and nothing of that write is kept.
    let too_big = t(4, 2, u64::MAX);
    assert!(matches!(
        outbox.hold_counted("sale:4:2", &json!({}), Some(&too_big)),
        Err(outbox::OutboxError::TotalizerOutOfRange { .. })
    ));
    assert_eq!(outbox.held().unwrap().len(), 2);
    assert_eq!(outbox.totalizers().unwrap()[1], t(4, 2, 8_677));
}

/// A command id is new once within the window, across a reopen; after the window it is
/// forgotten.
#[test]
fn command_ids_are_remembered_for_a_window() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");
    let hour = 3_600_000;
    {
        let outbox = Outbox::open(&path).unwrap();
        assert!(outbox.note_command("c1", 1_000, hour).unwrap());
        assert!(!outbox.note_command("c1", 2_000, hour).unwrap());
        assert!(outbox.note_command("c2", 2_000, hour).unwrap());
    }
    let outbox = Outbox::open(&path).unwrap();
    assert!(
        !outbox.note_command("c1", 3_000, hour).unwrap(),
        "kept across a restart"
    );
    assert!(
        outbox.note_command("c1", 1_000 + hour + 1, hour).unwrap(),
        "forgotten"
    );
}
