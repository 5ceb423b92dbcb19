//! HQ commands and the health message, against a real mosquitto, with HQ played by
//! `mosquitto_pub` and a subscriber.

mod support;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use outbox::Outbox;
use serde_json::json;
use support::{mosquitto_pub, wait_until, Broker, Subscriber};
use tokio::sync::{mpsc, watch, Notify};
use uplink::commands::{fields, IdOnly};
use uplink::{
    CommandAction, CommandError, CommandReply, CommandRequest, CommandSet, StationCommand, Uplink,
    UplinkConfig,
};

const CMD: &str = "forecourt/ST1/cmd";
const SALE_TOPIC: &str = "forecourt/ST1/events/sale";

async fn bounded<F: Future<Output = ()>>(limit: Duration, test: F) {
    tokio::time::timeout(limit, test)
        .await
        .unwrap_or_else(|_| panic!("test did not finish within {limit:?}"));
}

/// Asks the uplink to stop; it must within 5 s, without an error.
async fn stopped_cleanly(
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), uplink::UplinkError>>,
) {
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the uplink did not stop within 5 s")
        .unwrap()
        .unwrap();
}

/// The agent's side, played by the test: three commands with strict fields, as a station's
/// command set checks them (the station's own are tested in the station crate).
struct TestStation;

#[derive(Debug, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Correction {
    id: String,
    sale_id: String,
    plate: String,
    by: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Trace {
    #[allow(dead_code)]
    id: String,
    minutes: u16,
}

impl CommandSet for TestStation {
    fn check(&self, name: &str, payload: &str) -> Option<Result<StationCommand, CommandError>> {
        let checked = match name {
            "reload_config" => {
                fields::<IdOnly>(payload).map(|_| StationCommand::new("reload_config", ()))
            }
            "plate_correction" => {
                fields::<Correction>(payload).map(|c| StationCommand::new("plate_correction", c))
            }
            "record_trace" => fields::<Trace>(payload).and_then(|t| match t.minutes {
                1..=120 => Ok(StationCommand::new("record_trace", t.minutes)),
                _ => Err(CommandError::BadValue {
                    field: "minutes",
                    why: "must be 1 to 120".into(),
                }),
            }),
            _ => return None,
        };
        Some(checked)
    }
}

fn config(port: u16) -> UplinkConfig {
    let mut config = UplinkConfig::new("127.0.0.1", "ST1");
    config.port = port;
    config.backoff_min_ms = 100;
    config.backoff_max_ms = 500;
    config.poll_interval_ms = 200;
    config.connect_timeout_s = 2;
    config.health_interval_s = 1;
    config.command_timeout_s = 2;
    config
}

async fn hq_sends(port: u16, name: &str, payload: &str) {
    let (topic, payload) = (format!("{CMD}/{name}"), payload.as_bytes().to_vec());
    tokio::task::spawn_blocking(move || mosquitto_pub(port, &topic, &payload))
        .await
        .unwrap();
}

/// The next reply, with its topic. Late answers to the probing pings (ids `p0`, `p1`, ...) are
/// passed over: a pong slower than the probe's wait arrives after the next probe went out.
async fn reply(replies: &mut Subscriber) -> (String, serde_json::Value) {
    loop {
        let msg = replies.next(Duration::from_secs(10)).await;
        assert!(!msg.retain);
        let probe = msg.topic == format!("{CMD}/ping/reply")
            && msg.json["id"]
                .as_str()
                .is_some_and(|id| id.starts_with('p'));
        if !probe {
            return (msg.topic, msg.json);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_are_checked_answered_and_handed_to_the_agent() {
    bounded(Duration::from_secs(60), async {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::start(dir.path(), false);
        let outbox = Outbox::open(dir.path().join("outbox.db")).unwrap();
        let mut replies = Subscriber::start(broker.port, &format!("{CMD}/+/reply"), None).await;
        let mut health_sub = Subscriber::start(broker.port, "forecourt/ST1/health", None).await;

        let wake = Arc::new(Notify::new());
        let mut uplink = Uplink::new(config(broker.port), outbox.clone(), wake.clone()).unwrap();
        let mut commands: mpsc::Receiver<CommandRequest> =
            uplink.commands(4, Arc::new(TestStation));
        let health_publisher = uplink.health_publisher();
        health_publisher.set(json!({"cameras": {"cam1": {"fps": 5.0}}}));
        let health = uplink.health();
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(uplink.run(stop_rx));
        wait_until("connected", Duration::from_secs(10), || {
            health.snapshot().connected
        })
        .await;

        // The subscription follows the CONNACK: ping until it is in place.
        let mut pong = None;
        for attempt in 0..20 {
            hq_sends(broker.port, "ping", &format!(r#"{{"id":"p{attempt}"}}"#)).await;
            if let Ok(msg) =
                tokio::time::timeout(Duration::from_millis(500), replies.messages.recv()).await
            {
                pong = msg;
                break;
            }
        }
        let pong = pong.expect("no reply to ping");
        assert_eq!(pong.topic, format!("{CMD}/ping/reply"));
        assert_eq!(pong.json["ok"], true);
        assert_eq!(pong.json["result"]["station"], "ST1");
        assert!(pong.json["id"].as_str().unwrap().starts_with('p'));

        // Bad payloads: an error reply straight from the uplink, nothing reaches the agent.
        hq_sends(broker.port, "ping", r#"{"id":"b1","bogus":1}"#).await;
        let (topic, msg) = reply(&mut replies).await;
        assert_eq!(topic, format!("{CMD}/ping/reply"));
        assert_eq!(
            (msg["id"].as_str(), msg["ok"].as_bool()),
            (Some("b1"), Some(false))
        );
        assert!(msg["error"].as_str().unwrap().contains("bogus"), "{msg}");
        hq_sends(broker.port, "plate_correction", "not json at all").await;
        let (topic, msg) = reply(&mut replies).await;
        assert_eq!(topic, format!("{CMD}/plate_correction/reply"));
        assert_eq!(msg, json!({"id": null, "ok": false, "error": msg["error"]}));
        hq_sends(broker.port, "self_destruct", r#"{"id":"x"}"#).await;
        let (_, msg) = reply(&mut replies).await;
        assert_eq!(
            (msg["id"].as_str(), msg["ok"].as_bool()),
            (Some("x"), Some(false))
        );
        hq_sends(broker.port, "record_trace", r#"{"id":"t0","minutes":121}"#).await;
        let (_, msg) = reply(&mut replies).await;
        assert_eq!(
            (msg["id"].as_str(), msg["ok"].as_bool()),
            (Some("t0"), Some(false))
        );
        assert!(
            commands.try_recv().is_err(),
            "nothing bad reached the agent"
        );

        // A good one goes to the agent, and the agent's answer goes back to HQ.
        let sale_id = "6f1c2d3e-4a5b-4c6d-8e7f-9a0b1c2d3e4f";
        hq_sends(
            broker.port,
            "plate_correction",
            &format!(r#"{{"id":"c1","sale_id":"{sale_id}","plate":"京A12345","by":"ops"}}"#),
        )
        .await;
        let request = tokio::time::timeout(Duration::from_secs(10), commands.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(request.command.id, "c1");
        let CommandAction::Station(checked) = request.command.action else {
            panic!("not a station command");
        };
        assert_eq!(
            checked.downcast::<Correction>().unwrap(),
            Correction {
                id: "c1".into(),
                sale_id: sale_id.into(),
                plate: "京A12345".into(),
                by: Some("ops".into()),
            }
        );
        request
            .reply
            .send(CommandReply::Done(json!({"corrected": true})))
            .unwrap();
        let (topic, msg) = reply(&mut replies).await;
        assert_eq!(topic, format!("{CMD}/plate_correction/reply"));
        assert_eq!(
            msg,
            json!({"id": "c1", "ok": true, "result": {"corrected": true}})
        );

        // An agent that does not answer: HQ gets a timeout error, not silence.
        hq_sends(broker.port, "reload_config", r#"{"id":"r1"}"#).await;
        let unanswered = commands.recv().await.unwrap();
        let (_, msg) = reply(&mut replies).await;
        assert_eq!(
            (msg["id"].as_str(), msg["ok"].as_bool()),
            (Some("r1"), Some(false))
        );
        drop(unanswered);

        // Health: periodic, not retained, the uplink's figures and the agent's part.
        // Reports queued since the start show older counters: take the first recent one.
        let report = loop {
            let report = health_sub.next(Duration::from_secs(5)).await;
            assert!(!report.retain);
            if report.json["uplink"]["commands"].as_u64() >= Some(3) {
                break report;
            }
        };
        let h = &report.json;
        assert_eq!(h["station"], "ST1");
        assert_eq!(h["uplink"]["connected"], true);
        assert!(h["uplink"]["commands"].as_u64().unwrap() >= 3, "{h}");
        assert!(
            h["uplink"]["commands_refused"].as_u64().unwrap() >= 4,
            "{h}"
        );
        assert_eq!(h["outbox"]["depth"], 0);
        assert_eq!(h["outbox"]["cap"], "ok");
        assert_eq!(h["sync_lag_s"], 0);
        assert_eq!(h["agent"]["cameras"]["cam1"]["fps"], 5.0);
        let snapshot = health.snapshot();
        assert!(snapshot.health_reports >= 1);

        stopped_cleanly(stop, task).await;
    })
    .await;
}

/// The agent gives its part of the health report a moment after the uplink connects; HQ gets it
/// then, not a whole `health_interval_s` later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_part_of_health_goes_out_as_soon_as_it_is_given() {
    bounded(Duration::from_secs(60), async {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::start(dir.path(), false);
        let outbox = Outbox::open(dir.path().join("outbox.db")).unwrap();
        let mut health_sub = Subscriber::start(broker.port, "forecourt/ST1/health", None).await;
        let mut config = config(broker.port);
        config.health_interval_s = 3600;
        let uplink = Uplink::new(config, outbox.clone(), Arc::new(Notify::new())).unwrap();
        let health_publisher = uplink.health_publisher();
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(uplink.run(stop_rx));
        // The report sent on connecting, before the agent had anything to say.
        let first = health_sub.next(Duration::from_secs(10)).await;
        assert!(first.json["agent"].is_null(), "{}", first.json);
        health_publisher.set(json!({"cameras": {"cam1": {"fps": 5.0}}}));
        let second = health_sub.next(Duration::from_secs(10)).await;
        assert_eq!(second.json["agent"]["cameras"]["cam1"]["fps"], 5.0);
        // Given once, it waits for the interval again: no report per change.
        health_publisher.set(json!({"cameras": {"cam1": {"fps": 4.0}}}));
        assert!(
            tokio::time::timeout(Duration::from_secs(2), health_sub.messages.recv())
                .await
                .is_err(),
            "a report per change of the agent's part"
        );
        stopped_cleanly(stop, task).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resend_sends_acknowledged_records_again_with_their_ids() {
    bounded(Duration::from_secs(60), async {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::start(dir.path(), false);
        let outbox = Outbox::open(dir.path().join("outbox.db")).unwrap();
        let mut events = Subscriber::start(broker.port, "forecourt/ST1/events/#", None).await;
        let mut replies = Subscriber::start(broker.port, &format!("{CMD}/+/reply"), None).await;
        let wake = Arc::new(Notify::new());
        // No `commands()` receiver: resend and ping still work, agent commands are refused.
        let uplink = Uplink::new(config(broker.port), outbox.clone(), wake.clone()).unwrap();
        let health = uplink.health();
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(uplink.run(stop_rx));

        let mut first = Vec::new();
        for n in 0..5 {
            outbox.append("sale", SALE_TOPIC, &json!({"n": n})).unwrap();
        }
        wake.notify_one();
        for _ in 0..5 {
            first.push(events.next(Duration::from_secs(10)).await.json);
        }
        wait_until("all acknowledged", Duration::from_secs(10), || {
            outbox.depth().unwrap() == 0 && health.snapshot().acked == 5
        })
        .await;
        assert!(health.snapshot().last_ack_lag_ms.is_some());

        hq_sends(broker.port, "reload_config", r#"{"id":"r"}"#).await;
        let (_, msg) = reply(&mut replies).await;
        assert_eq!(
            (msg["id"].as_str(), msg["ok"].as_bool()),
            (Some("r"), Some(false))
        );

        hq_sends(
            broker.port,
            "resend",
            r#"{"id":"rs1","stream":"sale","from_seq":3}"#,
        )
        .await;
        let (topic, msg) = reply(&mut replies).await;
        assert_eq!(topic, format!("{CMD}/resend/reply"));
        assert_eq!(
            msg,
            json!({"id": "rs1", "ok": true, "result": {"requeued": 3, "next_from_seq": null, "gone": []}})
        );
        for want in &first[2..] {
            let again = events.next(Duration::from_secs(10)).await.json;
            assert_eq!(&again, want, "same id, seq, time and body");
        }
        wait_until("acknowledged again", Duration::from_secs(10), || {
            outbox.depth().unwrap() == 0
        })
        .await;

        // The broker delivers the same command again (a redelivery): refused, nothing re-queued.
        hq_sends(
            broker.port,
            "resend",
            r#"{"id":"rs1","stream":"sale","from_seq":3}"#,
        )
        .await;
        let (_, msg) = reply(&mut replies).await;
        assert_eq!(
            (msg["id"].as_str(), msg["ok"].as_bool()),
            (Some("rs1"), Some(false))
        );
        assert!(
            msg["error"].as_str().unwrap().contains("duplicate"),
            "{msg}"
        );
        // Issued an hour ago, or past its expiry: stale, refused.
        let now = forecourt_events::now_millis();
        for payload in [
            format!(
                r#"{{"id":"old","stream":"sale","from_seq":1,"t":{}}}"#,
                now - 3_600_000
            ),
            format!(
                r#"{{"id":"exp","stream":"sale","from_seq":1,"expires":{}}}"#,
                now - 1
            ),
        ] {
            hq_sends(broker.port, "resend", &payload).await;
            let (_, msg) = reply(&mut replies).await;
            assert_eq!(msg["ok"], false, "{payload} -> {msg}");
            assert!(msg["error"].as_str().unwrap().contains("stale"), "{msg}");
        }
        assert_eq!(
            outbox.depth().unwrap(),
            0,
            "nothing re-queued by a refused command"
        );
        stopped_cleanly(stop, task).await;
    })
    .await;
}

/// A retained 2.7 MB message on a command topic (over `max_packet_bytes`, far over the
/// command cap) reaches the uplink with every subscription. It is refused in our code, not by
/// the client: the connection stays up, and every record is published once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retained_oversized_command_neither_drops_the_connection_nor_repeats_records() {
    bounded(Duration::from_secs(60), async {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::start(dir.path(), false);
        let big = dir.path().join("big.bin");
        std::fs::write(&big, vec![b'x'; 2_700_000]).unwrap();
        let port = broker.port.to_string();
        let published = std::process::Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &port, "-q", "1", "-r"])
            .args(["-t", &format!("{CMD}/ping")])
            .arg("-f")
            .arg(&big)
            .status()
            .unwrap();
        assert!(published.success());

        let outbox = Outbox::open(dir.path().join("outbox.db")).unwrap();
        let mut hq = Subscriber::start(broker.port, SALE_TOPIC, None).await;
        let mut replies = Subscriber::start(broker.port, &format!("{CMD}/+/reply"), None).await;
        let wake = Arc::new(Notify::new());
        let mut uplink = Uplink::new(config(broker.port), outbox.clone(), wake.clone()).unwrap();
        let _commands = uplink.commands(4, Arc::new(TestStation));
        let health = uplink.health();
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(uplink.run(stop_rx));
        for n in 0..20u64 {
            outbox.append("sale", SALE_TOPIC, &json!({"n": n})).unwrap();
            wake.notify_one();
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        for n in 0..20u64 {
            let msg = hq.next(Duration::from_secs(10)).await;
            assert_eq!(msg.json["body"]["n"].as_u64(), Some(n));
        }
        wait_until("every record acknowledged", Duration::from_secs(10), || {
            health.snapshot().acked == 20
        })
        .await;
        let h = health.snapshot();
        assert_eq!(
            (h.reconnects, h.published, h.connected),
            (0, 20, true),
            "{h:?}"
        );
        // Retained: ignored, not answered (it would come back with every subscription).
        assert!(
            tokio::time::timeout(Duration::from_millis(500), replies.messages.recv())
                .await
                .is_err(),
            "the retained command got a reply"
        );
        assert_eq!(h.commands_refused, 1, "counted as refused");
        stop.send(true).unwrap();
        let _ = task.await;
    })
    .await;
}
