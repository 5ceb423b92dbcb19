//! The uplink's heartbeat: it beats while the uplink runs, connected or waiting to reconnect,
//! and stops once `run` has ended, so the agent's watchdog notices an uplink that died.

use std::sync::Arc;
use std::time::Duration;

use forecourt_events::now_millis;
use outbox::Outbox;
use tokio::sync::{watch, Notify};
use uplink::{Uplink, UplinkConfig};

#[tokio::test]
async fn beats_while_waiting_to_reconnect_and_stops_when_run_ends() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(dir.path().join("outbox.sqlite")).unwrap();
    // Nothing listens on this port: the uplink keeps failing to connect and backs off.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = UplinkConfig::new("127.0.0.1", "ST1");
    config.port = port;
    config.backoff_min_ms = 3_000;
    config.backoff_max_ms = 3_000;
    config.connect_timeout_s = 1;
    let uplink = Uplink::new(config, outbox, Arc::new(Notify::new())).unwrap();
    let heartbeat = uplink.heartbeat();
    let (stop, shutdown) = watch::channel(false);
    let task = tokio::spawn(uplink.run(shutdown));

    // A 3 s backoff after a failed connect: the beats go on during it.
    let mut max_age = 0;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        max_age = max_age.max(now_millis() - heartbeat.last());
    }
    assert!(
        max_age < 2_500,
        "heartbeat {max_age} ms old while the uplink ran"
    );

    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("uplink stops on shutdown")
        .unwrap()
        .unwrap();
    let last = heartbeat.last();
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(heartbeat.last(), last, "no beat after run ended");
}
