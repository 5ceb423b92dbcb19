//! A broker that acknowledges out of order: a proxy between the uplink and a real mosquitto holds
//! the broker's PUBACKs and hands them to the uplink in reverse order, and now and then drops the
//! connection with PUBACKs still held. The uplink must delete a record only once the PUBACK for
//! that very record reached it (checked throughout, not only at the end), send again whatever
//! was not acknowledged, and lose nothing.

mod support;

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mqtt_fault_proxy::{AckShuffle, FaultProxy};
use outbox::Outbox;
use serde_json::json;
use support::{Broker, Subscriber};
use tokio::sync::{watch, Notify};
use uplink::{Uplink, UplinkConfig};

const STATION: &str = "ST1";
const SALE_TOPIC: &str = "forecourt/ST1/events/sale";
const RECORDS: u64 = 400;
/// The connection is dropped, with the PUBACKs then held thrown away, after this many handed over.
const DROP_AFTER: [usize; 2] = [120, 260];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_order_pubacks_delete_only_what_they_acknowledge_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), false);
    let proxy = FaultProxy::start(
        broker.port,
        AckShuffle {
            hold: 5,
            flush_after: Duration::from_millis(50),
            drop_after: DROP_AFTER.to_vec(),
        },
    )
    .unwrap();
    let mut hq = Subscriber::start(broker.port, "forecourt/ST1/events/#", None).await;

    let outbox = Outbox::open(dir.path().join("outbox.db")).unwrap();
    let mut appended: BTreeSet<String> = BTreeSet::new();
    for n in 0..RECORDS / 2 {
        let record = outbox.append("sale", SALE_TOPIC, &json!({"n": n})).unwrap();
        appended.insert(record.id.to_string());
    }
    let mut config = UplinkConfig::new("127.0.0.1", STATION);
    config.port = proxy.port;
    config.backoff_min_ms = 100;
    config.backoff_max_ms = 300;
    config.poll_interval_ms = 100;
    config.connect_timeout_s = 2;
    config.max_inflight = 16;
    let wake = Arc::new(Notify::new());
    let uplink = Uplink::new(config, outbox.clone(), wake.clone()).unwrap();
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(uplink.run(stop_rx));

    let mut at_hq: BTreeSet<String> = BTreeSet::new();
    let mut seqs: BTreeSet<u64> = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut checks = 0;
    loop {
        if appended.len() < RECORDS as usize {
            let record = outbox
                .append("sale", SALE_TOPIC, &json!({"n": appended.len()}))
                .unwrap();
            appended.insert(record.id.to_string());
            wake.notify_one();
        }
        while let Ok(msg) = hq.messages.try_recv() {
            at_hq.insert(msg.json["id"].as_str().unwrap().to_string());
            seqs.insert(msg.json["seq"].as_u64().unwrap());
        }
        // What the outbox no longer holds was deleted; each deletion needs its own PUBACK
        // delivered (the proxy's log read after the outbox, so that it is never behind it).
        let waiting: HashSet<String> = outbox
            .pending(None, 100_000)
            .unwrap()
            .into_iter()
            .map(|r| r.id.to_string())
            .collect();
        let delivered = proxy.log().acks_delivered;
        let wrongly_deleted: Vec<&String> = appended
            .iter()
            .filter(|id| !waiting.contains(*id) && !delivered.contains(*id))
            .collect();
        assert!(
            wrongly_deleted.is_empty(),
            "deleted without their PUBACK: {wrongly_deleted:?}"
        );
        checks += 1;
        if appended.len() == RECORDS as usize && waiting.is_empty() && at_hq.len() == appended.len()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not drained within 90 s: {} waiting, {} of {} at HQ",
            waiting.len(),
            at_hq.len(),
            appended.len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    assert_eq!(at_hq, appended, "every record at HQ");
    assert_eq!(
        seqs,
        (1..=RECORDS).collect::<BTreeSet<u64>>(),
        "every seq once"
    );
    {
        let log = proxy.log();
        eprintln!(
            "{checks} checks; PUBACKs handed over {}, {} of them before an earlier one; {} thrown \
             away with {} dropped connections ({} connections in all)",
            log.acks_handed_over,
            log.acks_reordered,
            log.acks_discarded,
            log.drops,
            log.connections
        );
        // The test proved something only if acks came out of order and some never came.
        assert!(log.acks_reordered >= 40, "{} reordered", log.acks_reordered);
        assert_eq!(log.drops, DROP_AFTER.len());
        assert!(log.acks_discarded > 0 && log.connections > DROP_AFTER.len());
    }

    stop.send(true).unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
}
