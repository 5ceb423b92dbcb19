//! The overflow policy: alarm first, then drop the oldest low-value records, never sales.

use outbox::{CapState, Outbox, OutboxLimits};
use serde_json::json;

fn temp_outbox(limits: OutboxLimits) -> (tempfile::TempDir, Outbox) {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open_with_limits(dir.path().join("outbox.db"), limits).unwrap();
    (dir, outbox)
}

fn streams_and_seqs(outbox: &Outbox) -> Vec<(String, u64)> {
    outbox
        .pending(None, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|r| (r.stream, r.seq))
        .collect()
}

#[test]
fn alarm_first_then_oldest_low_value_records_go_never_sales() {
    let limits = OutboxLimits {
        max_records: 10,
        max_bytes: 0,
        alarm_percent: 80,
        ..OutboxLimits::default()
    };
    let (_dir, outbox) = temp_outbox(limits);
    for n in 0..7 {
        let stream = if n % 2 == 0 { "sale" } else { "nozzle" };
        outbox.append(stream, "t", &json!({"n": n})).unwrap();
    }
    assert_eq!(outbox.enforce_limits().unwrap().state, CapState::Ok);
    outbox.append("pump", "t", &json!({})).unwrap();
    // 8 of 10: the alarm, nothing dropped.
    let report = outbox.enforce_limits().unwrap();
    assert_eq!((report.state, report.dropped), (CapState::NearFull, 0));
    assert_eq!(outbox.cap_state(), CapState::NearFull);

    for _ in 0..5 {
        outbox.append("nozzle", "t", &json!({})).unwrap();
    }
    // 13 of 10: the three oldest non-sales go (nozzle 1, 2, 3), sales stay.
    let report = outbox.enforce_limits().unwrap();
    assert_eq!((report.state, report.dropped), (CapState::Dropping, 3));
    assert_eq!(report.usage.records, 10);
    let left = streams_and_seqs(&outbox);
    assert_eq!(left.iter().filter(|(s, _)| s == "sale").count(), 4);
    assert!(!left.contains(&("nozzle".into(), 1)));
    assert!(!left.contains(&("nozzle".into(), 3)));
    assert!(left.contains(&("nozzle".into(), 4)));
    assert_eq!(outbox.dropped_total(), 3);

    // Only sales over the cap: nothing more can go, and nothing does.
    let (_dir2, sales_only) = temp_outbox(OutboxLimits {
        max_records: 3,
        max_bytes: 0,
        ..OutboxLimits::default()
    });
    for _ in 0..5 {
        sales_only.append("sale", "t", &json!({})).unwrap();
    }
    let report = sales_only.enforce_limits().unwrap();
    assert_eq!(
        (report.state, report.dropped, report.usage.records),
        (CapState::OverCapProtected, 0, 5)
    );
    assert_eq!(sales_only.cap_state(), CapState::OverCapProtected);
}

#[test]
fn the_byte_cap_drops_until_under_it() {
    let limits = OutboxLimits {
        max_records: 0,
        max_bytes: 5_000,
        protected_streams: vec!["sale".into(), "pump".into()],
        ..OutboxLimits::default()
    };
    let (_dir, outbox) = temp_outbox(limits);
    let pad = "y".repeat(400);
    outbox.append("pump", "t", &json!({"pad": pad})).unwrap();
    for _ in 0..20 {
        outbox.append("nozzle", "t", &json!({"pad": pad})).unwrap();
    }
    outbox.append("sale", "t", &json!({"pad": pad})).unwrap();
    let report = outbox.enforce_limits().unwrap();
    assert_eq!(report.state, CapState::Dropping);
    assert!(report.usage.bytes <= 5_000, "{report:?}");
    let left = streams_and_seqs(&outbox);
    assert_eq!(left.first(), Some(&("pump".to_string(), 1)), "protected");
    assert_eq!(left.last(), Some(&("sale".to_string(), 1)), "protected");
    // The newest nozzle records stay.
    assert!(left.contains(&("nozzle".into(), 20)));
    // Back under: the next check is calm again (under the alarm level needs more room).
    let again = outbox.enforce_limits().unwrap();
    assert_eq!(again.dropped, 0);
    assert_ne!(again.state, CapState::Dropping);
}

#[test]
fn no_caps_means_no_alarm() {
    let limits = OutboxLimits {
        max_records: 0,
        max_bytes: 0,
        ..OutboxLimits::default()
    };
    let (_dir, outbox) = temp_outbox(limits);
    for _ in 0..50 {
        outbox.append("nozzle", "t", &json!({})).unwrap();
    }
    let report = outbox.enforce_limits().unwrap();
    assert_eq!((report.state, report.dropped), (CapState::Ok, 0));
}

#[test]
fn limits_parse_from_toml_with_defaults_and_reject_unknown_keys() {
    let limits: OutboxLimits = serde_json::from_value(json!({"max_records": 5})).unwrap();
    assert_eq!(limits.max_records, 5);
    assert_eq!(limits.protected_streams, vec!["sale".to_string()]);
    assert_eq!(limits.archive_max_age_s, 7 * 24 * 3600);
    assert!(serde_json::from_value::<OutboxLimits>(json!({"max_record": 5})).is_err());
}

/// Money streams are never dropped, even when the config protects nothing, and the dropped
/// count survives a reopen.
#[test]
fn money_is_never_dropped_and_the_dropped_count_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");
    let limits = OutboxLimits {
        max_records: 3,
        max_bytes: 0,
        protected_streams: Vec::new(),
        ..OutboxLimits::default()
    };
    {
        let outbox = Outbox::open_with_limits(&path, limits.clone()).unwrap();
        for stream in [
            "sale_gap",
            "nozzle",
            "sale_correction",
            "nozzle",
            "sale",
            "pump",
        ] {
            outbox.append(stream, "t", &json!({})).unwrap();
        }
        let report = outbox.enforce_limits().unwrap();
        assert_eq!((report.state, report.dropped), (CapState::Dropping, 3));
        let left: Vec<String> = streams_and_seqs(&outbox)
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        assert_eq!(left, ["sale_gap", "sale_correction", "sale"]);
        assert_eq!(outbox.dropped_total(), 3);
    }
    let outbox = Outbox::open_with_limits(&path, limits).unwrap();
    assert_eq!(outbox.dropped_total(), 3, "kept across a restart");
}
