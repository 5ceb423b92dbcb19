//! The MQTT side of a worker: subscribes, hands every message to the writer, and acknowledges
//! it only once the writer committed it. The writer batches and retries until PostgreSQL takes
//! the batch; meanwhile the broker sends at most Receive Maximum messages, so nothing piles up
//! in memory and nothing acknowledged can be lost by this worker.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use rumqttc::v5::mqttbytes::v5::{Filter, Packet, Publish, SubscribeReasonCode};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use tokio::sync::{mpsc, watch};

use crate::config::{BatchSettings, IngestConfig};
use crate::db::{self, Batch, ProgressRow, RejectedRow, StatusRow};
use crate::record::{self, TopicKind};

/// A message waiting for its commit, with the connection it came on: an acknowledgement for
/// an older connection is not sent (the broker sends the message again on the new one).
pub struct Pending {
    publish: Publish,
    connection: u64,
    item: Item,
}

enum Item {
    Event(record::EventRecord),
    Status(StatusRow),
    Progress(ProgressRow),
    Rejected(RejectedRow),
}

pub struct Subscriptions {
    pub events: String,
    pub health: String,
    pub status: String,
    pub resend_replies: String,
}

impl Subscriptions {
    pub fn new(config: &IngestConfig) -> Subscriptions {
        let (group, prefix) = (&config.mqtt.group, &config.mqtt.prefix);
        Subscriptions {
            // Shared: each record goes to one worker of the group.
            events: format!("$share/{group}/{prefix}/+/events/#"),
            health: format!("$share/{group}/{prefix}/+/health"),
            // Not shared: every worker keeps every station's status; the sweeper (whichever
            // worker runs it) sees every resend reply.
            status: format!("{prefix}/+/status"),
            resend_replies: format!("{prefix}/+/cmd/resend/reply"),
        }
    }
}

pub fn mqtt_options(config: &IngestConfig) -> Result<MqttOptions, uplink::UplinkError> {
    let m = &config.mqtt;
    let mut options = MqttOptions::new(m.client_id.clone(), m.host.clone(), m.port);
    options
        .set_clean_start(false)
        .set_session_expiry_interval(Some(m.session_expiry_s))
        .set_receive_maximum(Some(m.receive_maximum))
        .set_manual_acks(true)
        .set_keep_alive(Duration::from_secs(m.keep_alive_s.max(5)));
    if let (Some(user), Some(password)) = (&m.username, &m.password) {
        options.set_credentials(user.clone(), password.clone());
    }
    if let Some(tls) = &m.tls {
        options.set_transport(rumqttc::Transport::tls_with_config(tls.load()?));
    }
    Ok(options)
}

/// Counts connections, so the writer can tell whether an acknowledgement is still wanted.
#[derive(Default)]
pub struct ConnectionCount(AtomicU64);

impl ConnectionCount {
    pub fn current(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
}

/// Polls the event loop until `stop`; then unsubscribes from the shared topic (the broker
/// stops sending this worker its share), lets the writer commit and acknowledge what it has,
/// and disconnects.
#[allow(clippy::too_many_arguments)]
pub async fn run_mqtt(
    config: &IngestConfig,
    client: AsyncClient,
    mut eventloop: EventLoop,
    connections: Arc<ConnectionCount>,
    to_writer: mpsc::UnboundedSender<Pending>,
    replies: mpsc::UnboundedSender<(String, record::ResendReply)>,
    mut writer_done: tokio::task::JoinHandle<()>,
    mut stop: watch::Receiver<bool>,
) {
    let subscriptions = Subscriptions::new(config);
    let prefix = config.mqtt.prefix.clone();
    let mut to_writer = Some(to_writer);
    let mut stopping = false;
    let mut backoff = Duration::from_millis(200);
    loop {
        let event = tokio::select! {
            event = eventloop.poll() => event,
            changed = stop.changed(), if !stopping => {
                if changed.is_err() || *stop.borrow() {
                    stopping = true;
                    tracing::info!("stopping: leaving the shared subscription, finishing the batch in hand");
                    // Events first: its UNSUBACK (the first to come, below) ends the forwarding;
                    // until then, what arrives is committed and acknowledged as usual. From a
                    // task, so this loop goes on polling.
                    let unsubscriber = client.clone();
                    let topics = [subscriptions.events.clone(), subscriptions.health.clone()];
                    tokio::spawn(async move {
                        for topic in topics {
                            let _ = unsubscriber.unsubscribe(topic).await;
                        }
                    });
                }
                continue;
            }
            _ = &mut writer_done, if to_writer.is_none() => {
                let _ = client.disconnect().await;
                // Let the event loop send the acknowledgements and the DISCONNECT.
                let _ = tokio::time::timeout(Duration::from_secs(2), async {
                    while eventloop.poll().await.is_ok() {}
                })
                .await;
                return;
            }
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                connections.0.fetch_add(1, Ordering::AcqRel);
                backoff = Duration::from_millis(200);
                tracing::info!(
                    session_present = ack.session_present,
                    "connected to the broker"
                );
                // Subscribing again is harmless with a kept session and needed without one
                // (expired, or a broker that lost its state). One SUBSCRIBE for all, so its
                // one SUBACK (logged below) says the worker takes its share. From a task: this
                // loop must keep polling, or the client's request queue could fill and stall it.
                let mut topics = vec![
                    subscriptions.status.clone(),
                    subscriptions.resend_replies.clone(),
                ];
                if !stopping {
                    topics.push(subscriptions.events.clone());
                    topics.push(subscriptions.health.clone());
                }
                let filters: Vec<Filter> = topics
                    .into_iter()
                    .map(|t| Filter::new(t, QoS::AtLeastOnce))
                    .collect();
                let subscriber = client.clone();
                tokio::spawn(async move {
                    let _ = subscriber.subscribe_many(filters).await;
                });
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                let refused = ack
                    .return_codes
                    .iter()
                    .filter(|c| !matches!(c, SubscribeReasonCode::Success(_)))
                    .count();
                if refused == 0 {
                    tracing::info!("subscribed: taking the stations' events, health, status and resend replies");
                } else {
                    tracing::error!(?ack.return_codes, "the broker refused {refused} of our subscriptions");
                }
            }
            Ok(Event::Incoming(Packet::UnsubAck(_))) if stopping => {
                // Everything of our share the broker sent before the UNSUBACK is in hand:
                // the writer finishes it and ends.
                to_writer = None;
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                let connection = connections.current();
                match route(&prefix, publish, connection, &replies) {
                    // Unbounded, so this loop never waits on the writer; the broker's flow
                    // control (Receive Maximum) bounds what can be in hand. Once stopping
                    // and unsubscribed, a late message is not acknowledged: the broker sends
                    // it again (to this id after a restart, or to another member).
                    Routed::Write(pending) => {
                        if let Some(tx) = &to_writer {
                            let _ = tx.send(pending);
                        }
                    }
                    Routed::Ack(publish) => {
                        let acker = client.clone();
                        tokio::spawn(async move {
                            let _ = acker.ack(&publish).await;
                        });
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!("broker connection: {e}; reconnecting in {backoff:?}");
                let delay = backoff.mul_f64(0.5 + fastrand::f64());
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    _ = stop.changed(), if !stopping => {
                        // The writer ends; nothing it holds gets acknowledged over a dead
                        // connection; the broker sends it again to this id later.
                        return;
                    }
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}

enum Routed {
    Write(Pending),
    /// Needs no commit: acknowledge at once.
    Ack(Publish),
}

fn route(
    prefix: &str,
    publish: Publish,
    connection: u64,
    replies: &mpsc::UnboundedSender<(String, record::ResendReply)>,
) -> Routed {
    let topic = String::from_utf8_lossy(&publish.topic).into_owned();
    let item = match record::classify(prefix, &topic) {
        TopicKind::Event { station, stream } => {
            match record::parse_event(station, stream, &publish.payload) {
                Ok(event) => Item::Event(event),
                Err(e) => Item::Rejected(RejectedRow {
                    topic: topic.clone(),
                    payload: publish.payload.to_vec(),
                    why: e.to_string(),
                }),
            }
        }
        TopicKind::Status { station } => {
            let parsed = serde_json::from_slice::<serde_json::Value>(&publish.payload)
                .map_err(|e| e.to_string())
                .and_then(|payload| {
                    serde_json::from_value::<wire::Status>(payload.clone())
                        .map(|status| (payload, status))
                        .map_err(|e| e.to_string())
                });
            match parsed {
                Ok((payload, status)) => Item::Status(StatusRow {
                    station: station.to_string(),
                    status,
                    payload,
                }),
                // An empty retained message clears a status; nothing to keep.
                Err(_) if publish.payload.is_empty() => return Routed::Ack(publish),
                Err(why) => Item::Rejected(RejectedRow {
                    topic: topic.clone(),
                    payload: publish.payload.to_vec(),
                    why: format!("not a station status: {why}"),
                }),
            }
        }
        TopicKind::Health { station } => match record::parse_acked_through(&publish.payload) {
            Some(acked) if !acked.is_empty() => Item::Progress(ProgressRow {
                station: station.to_string(),
                acked_through: acked,
            }),
            // Nothing HQ keeps from this report (QoS 0: no acknowledgement either way).
            _ => return Routed::Ack(publish),
        },
        TopicKind::ResendReply { station } => {
            if let Some(reply) = record::parse_resend_reply(&publish.payload) {
                let _ = replies.send((station.to_string(), reply));
            }
            return Routed::Ack(publish);
        }
        TopicKind::Other => Item::Rejected(RejectedRow {
            topic: topic.clone(),
            payload: publish.payload.to_vec(),
            why: "topic is not a station event or status".into(),
        }),
    };
    Routed::Write(Pending {
        publish,
        connection,
        item,
    })
}

/// Batches what the MQTT side hands over, writes each batch until PostgreSQL takes it, then
/// acknowledges its messages (those that came on the connection still up).
pub async fn run_writer(
    pool: Pool,
    worker: String,
    settings: BatchSettings,
    receive_maximum: u16,
    client: AsyncClient,
    connections: Arc<ConnectionCount>,
    mut from_mqtt: mpsc::UnboundedReceiver<Pending>,
) {
    let mut in_hand: Vec<Pending> = Vec::with_capacity(settings.max);
    let mut warned_over_receive_maximum = false;
    loop {
        // Wait for the first message of a batch, then at most `ms` for the rest.
        match from_mqtt.recv().await {
            Some(first) => in_hand.push(first),
            None => return,
        }
        let deadline = tokio::time::Instant::now() + Duration::from_millis(settings.ms);
        while in_hand.len() < settings.max {
            match tokio::time::timeout_at(deadline, from_mqtt.recv()).await {
                Ok(Some(next)) => in_hand.push(next),
                Ok(None) | Err(_) => break,
            }
        }
        write_until_taken(&pool, &worker, &in_hand).await;
        let connection = connections.current();
        let (mut acked, mut stale) = (0, 0);
        for p in in_hand.drain(..) {
            if p.connection == connection {
                let _ = client.ack(&p.publish).await;
                acked += 1;
            } else {
                stale += 1;
            }
        }
        let waiting = from_mqtt.len();
        tracing::debug!(acked, stale, waiting, "acknowledged");
        if waiting > usize::from(receive_maximum) && !warned_over_receive_maximum {
            // Seen with mosquitto 2.0.11 releasing queued messages to a shared subscriber:
            // memory, not correctness, is what it costs (nothing is acknowledged early).
            warned_over_receive_maximum = true;
            tracing::warn!(
                waiting,
                receive_maximum,
                "the broker sent more unacknowledged messages than our Receive Maximum"
            );
        }
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Writes `items` as one batch, retrying until PostgreSQL takes it. A batch the database
/// refuses for its data (a JSON body PostgreSQL cannot store, a NUL in a text) would be
/// refused for ever and stall the worker: its items are then written one by one, and the
/// one refused is kept in `rejected` with the database's reason.
async fn write_until_taken(pool: &Pool, worker: &str, items: &[Pending]) {
    let mut batch = batch_of(items.iter());
    match write_retrying(pool, worker, &mut batch).await {
        Ok(()) => {}
        Err(refused) if items.len() == 1 => {
            let p = &items[0];
            let mut rejected = Batch {
                rejected: vec![RejectedRow {
                    topic: String::from_utf8_lossy(&p.publish.topic).replace('\0', "\u{fffd}"),
                    payload: p.publish.payload.to_vec(),
                    why: format!("PostgreSQL refused it: {refused}"),
                }],
                ..Batch::default()
            };
            if let Err(e) = write_retrying(pool, worker, &mut rejected).await {
                // Not even as bytes: acknowledged anyway, or it would stall every worker.
                tracing::error!("dropping a message PostgreSQL refuses even as rejected: {e}");
            }
        }
        Err(_) => {
            for item in items {
                Box::pin(write_until_taken(pool, worker, std::slice::from_ref(item))).await;
            }
        }
    }
}

/// Retries transient failures (server down, connection lost, deadlock) until the batch is
/// taken; returns the error when the database refuses the data itself.
async fn write_retrying(pool: &Pool, worker: &str, batch: &mut Batch) -> Result<(), db::DbError> {
    let mut retry = Duration::from_millis(100);
    loop {
        match db::write_batch(pool, worker, batch, now_ms()).await {
            Ok(outcome) => {
                tracing::debug!(?outcome, "batch committed");
                return Ok(());
            }
            Err(e) if e.is_refused_data() => {
                tracing::warn!("PostgreSQL refuses a batch for its data: {e}");
                return Err(e);
            }
            Err(e) => {
                tracing::warn!("cannot write a batch: {e}; retrying in {retry:?}");
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(Duration::from_secs(5));
            }
        }
    }
}

fn batch_of<'a>(items: impl Iterator<Item = &'a Pending>) -> Batch {
    let mut batch = Batch::default();
    for p in items {
        match &p.item {
            Item::Event(e) => batch.events.push(e.clone()),
            Item::Status(s) => batch.statuses.push(s.clone()),
            Item::Progress(p) => batch.progress.push(p.clone()),
            Item::Rejected(r) => batch.rejected.push(r.clone()),
        }
    }
    batch
}
