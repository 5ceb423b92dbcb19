//! The uplink against a real mosquitto. Every test is bounded by a timeout that fails it.

mod support;

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use outbox::Outbox;
use serde_json::json;
use support::{wait_until, Broker, Subscriber};
use tokio::sync::{watch, Notify};
use uplink::{Uplink, UplinkConfig};

const STATION: &str = "ST1";
const SALE_TOPIC: &str = "forecourt/ST1/events/sale";
const STATUS_TOPIC: &str = "forecourt/ST1/status";

async fn bounded<F: Future<Output = ()>>(limit: Duration, test: F) {
    tokio::time::timeout(limit, test)
        .await
        .unwrap_or_else(|_| panic!("test did not finish within {limit:?}"));
}

fn config(port: u16) -> UplinkConfig {
    let mut config = UplinkConfig::new("127.0.0.1", STATION);
    config.port = port;
    config.backoff_min_ms = 100;
    config.backoff_max_ms = 500;
    config.poll_interval_ms = 200;
    config.connect_timeout_s = 2;
    config
}

/// A running uplink and what the test needs to drive it.
struct Running {
    outbox: Outbox,
    wake: Arc<Notify>,
    health: Arc<uplink::UplinkHealth>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), uplink::UplinkError>>,
}

fn start_uplink(config: UplinkConfig, outbox: &Outbox) -> Running {
    let wake = Arc::new(Notify::new());
    let uplink = Uplink::new(config, outbox.clone(), wake.clone()).unwrap();
    let health = uplink.health();
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(uplink.run(stop_rx));
    Running {
        outbox: outbox.clone(),
        wake,
        health,
        stop,
        task,
    }
}

impl Running {
    fn append(&self, n: u64) {
        self.outbox
            .append("sale", SALE_TOPIC, &json!({"n": n}))
            .unwrap();
        self.wake.notify_one();
    }
}

fn body_n(msg: &support::Received) -> u64 {
    msg.json["body"]["n"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_arrive_in_order_and_the_outbox_drains() {
    bounded(Duration::from_secs(30), async {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::start(dir.path(), false);
        let outbox = Outbox::open(dir.path().join("outbox.db")).unwrap();
        let mut hq = Subscriber::start(broker.port, "forecourt/ST1/events/#", None).await;

        // Half waiting before the uplink starts, half appended while it runs.
        for n in 0..100 {
            outbox.append("sale", SALE_TOPIC, &json!({"n": n})).unwrap();
        }
        let up = start_uplink(config(broker.port), &outbox);
        for n in 100..200 {
            up.append(n);
        }

        for n in 0..200u64 {
            let msg = hq.next(Duration::from_secs(10)).await;
            assert_eq!(msg.topic, SALE_TOPIC);
            assert_eq!((msg.json["seq"].as_u64(), body_n(&msg)), (Some(n + 1), n));
            assert_eq!(msg.json["stream"], "sale");
        }
        // The counter moves just after the delete commits: wait for both.
        wait_until("the outbox is empty", Duration::from_secs(10), || {
            outbox.depth().unwrap() == 0 && up.health.snapshot().acked == 200
        })
        .await;
        let health = up.health.snapshot();
        assert_eq!(
            (health.published, health.acked, health.reconnects),
            (200, 200, 0)
        );
        assert!(health.connected);

        // Clean shutdown: returns, and the retained status says why it went offline.
        up.stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), up.task)
            .await
            .expect("run did not return after shutdown")
            .unwrap()
            .unwrap();
        assert!(!up.health.snapshot().connected);
        let mut status = Subscriber::start(broker.port, STATUS_TOPIC, None).await;
        let retained = status.next(Duration::from_secs(5)).await;
        assert!(retained.retain);
        assert_eq!(
            (
                retained.json["state"].as_str(),
                retained.json["reason"].as_str()
            ),
            (Some("offline"), Some("shutdown"))
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_arrives_across_a_broker_restart() {
    bounded(Duration::from_secs(60), async {
        let dir = tempfile::tempdir().unwrap();
        // Persistent, so HQ's subscriber session and its queued messages survive the restart.
        let mut broker = Broker::start(dir.path(), true);
        let outbox = Outbox::open(dir.path().join("outbox.db")).unwrap();
        let mut hq =
            Subscriber::start(broker.port, "forecourt/ST1/events/#", Some("hq-collector")).await;
        let mut config = config(broker.port);
        config.max_inflight = 10; // packet ids wrap many times
        let up = start_uplink(config, &outbox);

        // Appends keep coming while the broker goes away and comes back.
        let appender = {
            let (outbox, wake) = (outbox.clone(), up.wake.clone());
            tokio::task::spawn_blocking(move || {
                for n in 0..250u64 {
                    outbox.append("sale", SALE_TOPIC, &json!({"n": n})).unwrap();
                    wake.notify_one();
                    std::thread::sleep(Duration::from_millis(4));
                }
            })
        };
        wait_until(
            "some records are acknowledged",
            Duration::from_secs(10),
            || up.health.snapshot().acked >= 20,
        )
        .await;
        tokio::task::block_in_place(|| broker.stop());
        let at_stop = up.health.snapshot();
        wait_until(
            "the uplink sees the broker gone",
            Duration::from_secs(10),
            || !up.health.snapshot().connected,
        )
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await; // a few failed reconnects
        let depth_while_down = outbox.depth().unwrap();
        assert!(depth_while_down > 0, "records appended while down are kept");
        tokio::task::block_in_place(|| broker.restart());
        eprintln!(
            "acked at stop: {}, depth while down: {depth_while_down}",
            at_stop.acked
        );
        assert!(at_stop.acked < 250, "the broker went away mid-stream");

        let mut seen = BTreeSet::new();
        let mut ids = BTreeSet::new();
        while seen.len() < 250 {
            let msg = hq.next(Duration::from_secs(20)).await;
            seen.insert(body_n(&msg));
            ids.insert(msg.json["id"].as_str().unwrap().to_string());
        }
        assert_eq!(seen, (0..250).collect());
        assert_eq!(ids.len(), 250, "one id per record, however often delivered");
        appender.await.unwrap();
        wait_until("the outbox is empty", Duration::from_secs(10), || {
            outbox.depth().unwrap() == 0 && up.health.snapshot().acked >= 250
        })
        .await;
        let health = up.health.snapshot();
        assert!(health.reconnects >= 1, "{health:?}");
        assert!(health.published >= 250 && health.acked >= 250, "{health:?}");
        up.stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), up.task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_is_online_while_connected_and_the_will_says_offline_when_killed() {
    bounded(Duration::from_secs(30), async {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::start(dir.path(), false);
        let outbox = Outbox::open(dir.path().join("outbox.db")).unwrap();
        let up = start_uplink(config(broker.port), &outbox);
        wait_until("connected", Duration::from_secs(10), || {
            up.health.snapshot().connected
        })
        .await;

        // Subscribing after the fact: the broker hands over the retained status.
        let mut late = Subscriber::start(broker.port, STATUS_TOPIC, None).await;
        let online = late.next(Duration::from_secs(5)).await;
        assert!(online.retain);
        assert_eq!(online.json["state"], "online");
        assert_eq!(online.json["station"], STATION);
        assert!(online.json["version"].is_string() && online.json["started"].is_i64());

        // Gone without a DISCONNECT, as if killed: the broker publishes the last will.
        up.task.abort();
        let offline = late.next(Duration::from_secs(10)).await;
        assert_eq!(
            (
                offline.json["state"].as_str(),
                offline.json["reason"].as_str()
            ),
            (Some("offline"), Some("connection lost"))
        );
        let mut later = Subscriber::start(broker.port, STATUS_TOPIC, None).await;
        let retained = later.next(Duration::from_secs(5)).await;
        assert!(retained.retain);
        assert_eq!(retained.json["state"], "offline");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_wait_while_no_broker_is_reachable() {
    bounded(Duration::from_secs(30), async {
        let dir = tempfile::tempdir().unwrap();
        let mut broker = Broker::start(dir.path(), false);
        tokio::task::block_in_place(|| broker.stop());
        let outbox = Outbox::open(dir.path().join("outbox.db")).unwrap();
        let up = start_uplink(config(broker.port), &outbox);
        for n in 0..20 {
            up.append(n);
        }
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(outbox.depth().unwrap(), 20);
        assert!(!up.health.snapshot().connected);

        tokio::task::block_in_place(|| broker.restart());
        wait_until("the outbox is empty", Duration::from_secs(15), || {
            outbox.depth().unwrap() == 0
        })
        .await;
        assert_eq!(
            up.health.snapshot().reconnects,
            0,
            "the first connection is not a reconnect"
        );

        // Shutdown while in backoff returns promptly too.
        tokio::task::block_in_place(|| broker.stop());
        wait_until("disconnected", Duration::from_secs(10), || {
            !up.health.snapshot().connected
        })
        .await;
        up.stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(3), up.task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    })
    .await;
}

/// A window wider than one batch of events (`max_inflight` 1000): every record is acknowledged
/// and deleted in one session. (An event lost between batches once shifted the pairing of
/// records with packet ids, and this drain stalled with records never deleted.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wide_window_drains_a_large_backlog_in_one_session() {
    bounded(Duration::from_secs(90), async {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::start(dir.path(), false);
        let outbox = Outbox::open(dir.path().join("outbox.db")).unwrap();
        const RECORDS: u64 = 30_000;
        for chunk in (0..RECORDS).collect::<Vec<_>>().chunks(5_000) {
            let batch: Vec<_> = chunk
                .iter()
                .map(|n| ("sale", SALE_TOPIC, json!({"n": n})))
                .collect();
            outbox.append_batch(&batch).unwrap();
        }
        let mut config = config(broker.port);
        config.max_inflight = 1000;
        let up = start_uplink(config, &outbox);
        wait_until("the backlog is drained", Duration::from_secs(80), || {
            up.health.snapshot().acked == RECORDS
        })
        .await;
        let health = up.health.snapshot();
        assert_eq!(
            (
                health.published,
                health.acked,
                health.reconnects,
                health.outbox_errors
            ),
            (RECORDS, RECORDS, 0, 0)
        );
        assert_eq!(outbox.depth().unwrap(), 0);
        up.stop.send(true).unwrap();
        let _ = up.task.await;
    })
    .await;
}

/// Records that can never be sent, a malformed row and one just over `max_packet_bytes` once
/// MQTT's fixed header is counted, go to the outbox's dead letters, each with a `dead_letter`
/// notice for HQ; every record behind them arrives, and no connection is lost over them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_records_go_to_the_dead_letters_and_the_rest_arrives() {
    bounded(Duration::from_secs(30), async {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::start(dir.path(), false);
        let path = dir.path().join("outbox.db");
        let outbox = Outbox::open(&path).unwrap();
        let mut hq = Subscriber::start(broker.port, "forecourt/ST1/events/#", None).await;

        outbox.append("sale", SALE_TOPIC, &json!({"n": 0})).unwrap();
        let big = outbox
            .append("sale", SALE_TOPIC, &json!({"n": 1, "pad": "x".repeat(900)}))
            .unwrap();
        for n in 2..6 {
            outbox.append("sale", SALE_TOPIC, &json!({"n": n})).unwrap();
        }
        // The limit lets the big record's variable header and payload through, not its
        // fixed header.
        let remaining = 2 + SALE_TOPIC.len() + 2 + big.payload.len();
        let mut config = config(broker.port);
        config.max_packet_bytes = remaining + 1;
        // A row no reader can turn into a record (n = 3).
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute("UPDATE records SET id = 'garbage' WHERE seq = 4", [])
            .unwrap();
        drop(conn);

        let up = start_uplink(config, &outbox);
        let (mut sales, mut notices) = (Vec::new(), Vec::new());
        while sales.len() < 4 || notices.len() < 2 {
            let msg = hq.next(Duration::from_secs(10)).await;
            match msg.json["stream"].as_str() {
                Some("sale") => sales.push(body_n(&msg)),
                Some("dead_letter") => notices.push(msg.json["body"].clone()),
                other => panic!("unexpected stream {other:?}"),
            }
        }
        assert_eq!(sales, [0, 2, 4, 5]);
        let whys: Vec<&str> = notices.iter().filter_map(|b| b["why"].as_str()).collect();
        assert!(
            whys.iter().any(|w| w.contains("max_packet_bytes")),
            "{whys:?}"
        );
        assert!(whys.iter().any(|w| w.contains("not a UUID")), "{whys:?}");
        wait_until("the queue is empty", Duration::from_secs(10), || {
            outbox.depth().unwrap() == 0
        })
        .await;
        let health = up.health.snapshot();
        assert_eq!((health.dead_letters, health.reconnects), (2, 0));
        assert_eq!(outbox.dead_letters().unwrap(), 2);
        up.stop.send(true).unwrap();
        let _ = up.task.await;
    })
    .await;
}

/// The real-time streams (arrival, nozzle, pump) go ahead of a backlog of the others: waiting
/// when the uplink starts, they leave before the first sale; appended while 2,000 sales drain,
/// they overtake what is left. Every stream's seq stays contiguous in the order HQ gets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_time_streams_overtake_a_backlog_and_every_seq_stays_contiguous() {
    bounded(Duration::from_secs(60), async {
        const SALES: u64 = 2000;
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::start(dir.path(), false);
        let outbox = Outbox::open(dir.path().join("outbox.db")).unwrap();
        let mut hq = Subscriber::start(broker.port, "forecourt/ST1/events/#", None).await;
        for n in 0..SALES {
            outbox.append("sale", SALE_TOPIC, &json!({"n": n})).unwrap();
        }
        let real_time = |outbox: &Outbox, stream: &str, n: u64| {
            let topic = format!("forecourt/ST1/events/{stream}");
            outbox.append(stream, &topic, &json!({"n": n})).unwrap();
        };
        for (stream, n) in [("nozzle", 0), ("arrival", 0), ("nozzle", 1), ("pump", 0)] {
            real_time(&outbox, stream, n);
        }
        let mut config = config(broker.port);
        config.max_inflight = 10;
        let up = start_uplink(config, &outbox);

        let mut got: Vec<(String, u64)> = Vec::new();
        let receive = |msg: support::Received, got: &mut Vec<(String, u64)>| {
            let stream = msg.json["stream"].as_str().unwrap().to_string();
            got.push((stream, msg.json["seq"].as_u64().unwrap()));
        };
        // Waiting at the start: before any sale.
        for _ in 0..4 {
            receive(hq.next(Duration::from_secs(10)).await, &mut got);
        }
        assert!(got.iter().all(|(s, _)| s != "sale"), "{got:?}");
        // Appended while the backlog drains (100 sales in): ahead of what is left of it.
        while got.len() < 104 {
            receive(hq.next(Duration::from_secs(10)).await, &mut got);
        }
        for (stream, n) in [("arrival", 1), ("nozzle", 2), ("arrival", 2)] {
            real_time(&up.outbox, stream, n);
        }
        up.wake.notify_one();
        while got.len() < SALES as usize + 7 {
            receive(hq.next(Duration::from_secs(10)).await, &mut got);
        }
        let last_real_time = got.iter().rposition(|(s, _)| s != "sale").unwrap();
        let sales_after = got[last_real_time..]
            .iter()
            .filter(|(s, _)| s == "sale")
            .count();
        // At most a read-ahead and a window of sales were ahead of them; without the lanes
        // they would come after all 2,000.
        assert!(
            sales_after > 1000,
            "only {sales_after} sales after the last real-time record"
        );
        for stream in ["sale", "nozzle", "arrival", "pump"] {
            let seqs: Vec<u64> = got
                .iter()
                .filter(|(s, _)| s == stream)
                .map(|(_, seq)| *seq)
                .collect();
            let want: Vec<u64> = (1..=seqs.len() as u64).collect();
            assert_eq!(seqs, want, "{stream}'s seq as HQ got it");
        }
        wait_until("the outbox is empty", Duration::from_secs(10), || {
            outbox.depth().unwrap() == 0
        })
        .await;
    })
    .await;
}
