//! Drain-rate benchmark: N records buffered in the outbox, then drained by the uplink to a
//! local mosquitto; and, in the same run, a raw rumqttc QoS1 publish loop of the same payloads
//! with the same in-flight window. Prints figures; asserts nothing.
//!
//! `cargo run --release -p uplink --example drain_bench` (100,000 records),
//! `FORECOURT_LONG=1 ...` (1,000,000), or `BENCH_RECORDS=N`. `BENCH_INFLIGHT` (default 100).

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use outbox::Outbox;
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use serde_json::json;
use tokio::sync::{watch, Notify};
use uplink::{Uplink, UplinkConfig};

struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_broker(dir: &std::path::Path) -> (Broker, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
    )
    .unwrap();
    let child = Command::new("/usr/sbin/mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto starts");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "mosquitto did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    (Broker(child), port)
}

/// A sale-sized body (~330 bytes of JSON in the envelope).
fn sale_like(n: u64) -> serde_json::Value {
    json!({
        "fp": n % 8 + 1, "nozzle": 1, "grade": 95, "volume": "41.27", "amount": "329.74",
        "price": "7.99", "nozzle_out_t": 1_700_000_000_000u64 + n, "nozzle_in_t": 1_700_000_090_000u64 + n,
        "completed_t": 1_700_000_091_000u64 + n, "plate": "京A12345", "plate_confidence": 0.93,
        "match_reason": "clear_majority",
    })
}

fn main() {
    // Uplink warnings and errors on stderr (RUST_LOG overrides).
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let long = std::env::var("FORECOURT_LONG").is_ok_and(|v| v == "1");
    let records: u64 = std::env::var("BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if long { 1_000_000 } else { 100_000 });
    let inflight: u16 = std::env::var("BENCH_INFLIGHT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(bench(records, inflight));
}

async fn bench(records: u64, inflight: u16) {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, port) = start_broker(dir.path());
    let topic = "forecourt/BENCH/events/sale";

    // Fill: batches of 10,000 per transaction.
    let outbox = Outbox::open(dir.path().join("outbox.db")).unwrap();
    let t0 = Instant::now();
    let mut n = 0;
    while n < records {
        let batch: Vec<(&str, &str, serde_json::Value)> = (n..(n + 10_000).min(records))
            .map(|i| ("sale", topic, sale_like(i)))
            .collect();
        outbox.append_batch(&batch).unwrap();
        n += batch.len() as u64;
    }
    let fill_s = t0.elapsed().as_secs_f64();
    let payloads: Vec<Vec<u8>> = outbox
        .pending(None, 3)
        .unwrap()
        .into_iter()
        .map(|r| r.payload)
        .collect();
    let payload_bytes = payloads[0].len();
    println!(
        "fill: {records} records ({payload_bytes} B payload) in {fill_s:.2} s = {:.0} rec/s (batched appends)",
        records as f64 / fill_s
    );

    // Uplink drain.
    let wake = Arc::new(Notify::new());
    let mut config = UplinkConfig::new("127.0.0.1", "BENCH");
    config.port = port;
    config.max_inflight = inflight;
    config.health_interval_s = 0;
    let uplink = Uplink::new(config, outbox.clone(), wake).unwrap();
    let health = uplink.health();
    let (stop, stop_rx) = watch::channel(false);
    let t0 = Instant::now();
    let task = tokio::spawn(uplink.run(stop_rx));
    // A drain that stops making progress is reported, not waited for for ever.
    let (mut last_acked, mut last_progress) = (0, Instant::now());
    loop {
        let now = health.snapshot();
        if now.acked >= records {
            break;
        }
        if now.acked != last_acked {
            (last_acked, last_progress) = (now.acked, Instant::now());
        } else if last_progress.elapsed() > Duration::from_secs(30) {
            eprintln!("uplink drain stalled for 30 s: {now:?}");
            std::process::exit(1);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let drain_s = t0.elapsed().as_secs_f64();
    let drain_rate = records as f64 / drain_s;
    assert_eq!(outbox.depth().unwrap(), 0);
    stop.send(true).unwrap();
    let _ = task.await;
    println!(
        "uplink drain: {records} records in {drain_s:.2} s = {drain_rate:.0} msg/s (max_inflight {inflight}, deletes + archive copy in SQLite)"
    );

    // Raw rumqttc: the same payloads, QoS1, the same window, no storage.
    let mut opts = MqttOptions::new("bench-raw", "127.0.0.1", port);
    opts.set_inflight(inflight);
    opts.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(opts, usize::from(inflight) * 2);
    let payload = payloads[0].clone();
    let t0 = Instant::now();
    let publisher = tokio::spawn(async move {
        for _ in 0..records {
            client
                .publish(topic, QoS::AtLeastOnce, false, payload.clone())
                .await
                .unwrap();
        }
        client
    });
    let mut acked = 0u64;
    while acked < records {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::PubAck(_))) => acked += 1,
            Ok(Event::Outgoing(Outgoing::Publish(_))) | Ok(_) => {}
            Err(e) => panic!("raw loop: {e}"),
        }
    }
    let raw_s = t0.elapsed().as_secs_f64();
    let raw_rate = records as f64 / raw_s;
    let _client = publisher.await.unwrap();
    println!("raw rumqttc: {records} publishes in {raw_s:.2} s = {raw_rate:.0} msg/s");
    println!(
        "ratio uplink/raw: {:.2} (target >= 0.5); uplink {:.0} msg/s (target >= 20000)",
        drain_rate / raw_rate,
        drain_rate
    );
}
