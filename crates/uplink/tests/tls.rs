//! The uplink over TLS with client certificates: mosquitto with `require_certificate true`, a
//! CA, a server and a client certificate made here with the openssl command line.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use outbox::Outbox;
use serde_json::json;
use support::pki::{make_pki, share_with_broker};
use support::{free_port, wait_until, Broker, Subscriber};
use tokio::sync::{watch, Notify};
use uplink::{TlsFiles, Uplink, UplinkConfig};

const SALE_TOPIC: &str = "forecourt/ST1/events/sale";

fn tls_config(dir: &Path, port: u16, client: &str) -> UplinkConfig {
    let mut config = UplinkConfig::new("localhost", "ST1");
    config.port = port;
    config.backoff_min_ms = 100;
    config.backoff_max_ms = 300;
    config.poll_interval_ms = 200;
    config.connect_timeout_s = 2;
    config.tls = Some(TlsFiles {
        ca_file: dir.join("ca.pem"),
        client_cert_file: Some(dir.join(format!("{client}.pem"))),
        client_key_file: Some(dir.join(format!("{client}.key"))),
    });
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_arrive_over_tls_with_client_certificates() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        make_pki(d);
        share_with_broker(d);
        let (tls_port, plain_port) = (free_port(), free_port());
        // A plain listener too, for the test's own subscriber.
        let broker_config = format!(
            "per_listener_settings false\nallow_anonymous true\npersistence false\n\
             listener {tls_port} 127.0.0.1\ncafile {d}/ca.pem\ncertfile {d}/server.pem\n\
             keyfile {d}/server.key\nrequire_certificate true\n\
             listener {plain_port} 127.0.0.1\n",
            d = d.display()
        );
        let broker = Broker::start_with_config(d, tls_port, broker_config);
        let mut hq = Subscriber::start(plain_port, "forecourt/ST1/events/#", None).await;

        let outbox = Outbox::open(d.join("outbox.db")).unwrap();
        for n in 0..20 {
            outbox.append("sale", SALE_TOPIC, &json!({"n": n})).unwrap();
        }

        // A client certificate from another CA is refused: nothing leaves the outbox.
        let rogue = Uplink::new(
            tls_config(d, broker.port, "rogue"),
            outbox.clone(),
            Arc::new(Notify::new()),
        )
        .unwrap();
        let rogue_health = rogue.health();
        let (stop_rogue, stop_rx) = watch::channel(false);
        let rogue_task = tokio::spawn(rogue.run(stop_rx));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(!rogue_health.snapshot().connected);
        assert_eq!(rogue_health.snapshot().published, 0);
        assert_eq!(outbox.depth().unwrap(), 20);
        stop_rogue.send(true).unwrap();
        rogue_task.await.unwrap().unwrap();

        // The right one connects and delivers everything, in order.
        let uplink = Uplink::new(
            tls_config(d, broker.port, "client"),
            outbox.clone(),
            Arc::new(Notify::new()),
        )
        .unwrap();
        let health = uplink.health();
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(uplink.run(stop_rx));
        for n in 0..20u64 {
            let msg = hq.next(Duration::from_secs(10)).await;
            assert_eq!(msg.json["body"]["n"].as_u64(), Some(n));
            assert_eq!(msg.json["seq"].as_u64(), Some(n + 1));
        }
        wait_until("the outbox is empty", Duration::from_secs(10), || {
            outbox.depth().unwrap() == 0
        })
        .await;
        assert!(health.snapshot().connected);
        stop.send(true).unwrap();
        task.await.unwrap().unwrap();
    })
    .await
    .expect("TLS test did not finish within 60 s");
}
