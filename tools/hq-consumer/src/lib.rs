//! HQ's side of the uplink, as a test and demo tool (not a product): subscribes to
//! `<prefix>/+/events/#` with a persistent session, dedupes by record id, and tracks per
//! (station, stream) which sequence numbers arrived, to report gaps, duplicates and counts.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod tracker;

use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::watch;

pub use tracker::{Observation, SeqTracker, StreamSummary, Summary};

#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    #[error("MQTT client: {0}")]
    Client(#[from] rumqttc::ClientError),
}

/// Where to listen and when to stop.
#[derive(Debug, Clone)]
pub struct ConsumerOptions {
    pub host: String,
    pub port: u16,
    pub prefix: String,
    /// Stable, so the broker keeps the session (and queues messages) while we are away.
    pub client_id: String,
    /// Stop once every stream has seqs 1..=N (and at least `min_streams` streams exist).
    pub expect: Option<u64>,
    pub min_streams: usize,
    /// Stop after this long regardless.
    pub timeout: Option<Duration>,
}

/// Why the consumer stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// `expect` was met.
    Complete,
    TimedOut,
    /// `stop` was set (SIGINT in the binary).
    Stopped,
}

/// Consumes until `expect` is met, the timeout passes or `stop` becomes true; reconnects on its
/// own. `on_subscribed` runs at each SUBACK (the binary prints a line tests wait for).
pub async fn consume(
    options: &ConsumerOptions,
    mut stop: watch::Receiver<bool>,
    mut on_subscribed: impl FnMut(),
) -> Result<(Summary, StopReason), ConsumerError> {
    let mut mqtt = MqttOptions::new(&options.client_id, &options.host, options.port);
    mqtt.set_clean_session(false);
    mqtt.set_keep_alive(Duration::from_secs(10));
    mqtt.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(mqtt, 100);
    let filter = format!("{}/+/events/#", options.prefix);
    let mut tracker = SeqTracker::new();
    let deadline = options.timeout.map(|t| tokio::time::Instant::now() + t);
    let timeout = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(timeout);
    let mut new_since_check = 0u64;
    let mut check = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            () = &mut timeout => return Ok((tracker.summary(), StopReason::TimedOut)),
            _ = stop.changed() => return Ok((tracker.summary(), StopReason::Stopped)),
            _ = check.tick() => {
                if let Some(done) = complete(&tracker, options) {
                    return Ok(done);
                }
            }
            event = eventloop.poll() => match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    client.subscribe(&filter, QoS::AtLeastOnce).await?;
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => on_subscribed(),
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if let Observation::Malformed(why) = tracker.observe(&p.topic, &p.payload) {
                        tracing::warn!(topic = %p.topic, "{why}");
                    } else {
                        new_since_check += 1;
                    }
                    // The summary walks every stream: check it now and then, not per message.
                    if new_since_check >= 500 {
                        new_since_check = 0;
                        if let Some(done) = complete(&tracker, options) {
                            return Ok(done);
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!("connection: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
}

/// The summary and `Complete` if `expect` is met.
fn complete(tracker: &SeqTracker, options: &ConsumerOptions) -> Option<(Summary, StopReason)> {
    let n = options.expect?;
    let summary = tracker.summary();
    summary
        .has_complete(n, options.min_streams.max(1))
        .then_some((summary, StopReason::Complete))
}
