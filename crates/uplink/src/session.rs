//! One connection to the broker, from CONNECT until it fails or the agent shuts down.
//!
//! Each session starts a fresh rumqttc event loop and reads the outbox from its start, so
//! everything not acknowledged in an earlier session is published again (HQ dedupes by id).
//! The event loop runs in its own task and forwards events over a channel: rumqttc's `poll`
//! must not be cancelled mid-write, and this task also waits on wake-ups and the shutdown flag.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use forecourt_events::Heartbeat;
use outbox::{Outbox, OutboxError, PendingRead, Record};
use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, NetworkOptions, Outgoing, Packet,
    QoS, StateError,
};
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio::task::{JoinError, JoinHandle};

use crate::commands::{
    command_name, correlation_id, parse_command, reply_payload, Command, CommandAction,
    CommandReply, CommandRequest, CommandSet,
};
use crate::health::{health_payload, OutboxFigures, UplinkHealth};
use crate::inflight::{InflightTracker, PairingError, Sent};
use crate::status::StationStatus;
use crate::UplinkConfig;

/// Events handled before acknowledged records are deleted in one transaction.
const ACK_BATCH: usize = 256;
/// Request-channel slots beyond `max_inflight` (see `run_session`).
const REQUEST_HEADROOM: usize = 64;
/// How long a clean shutdown waits for the broker to acknowledge the offline status.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// How long a command id is remembered: a redelivery within it is not carried out again.
const COMMAND_ID_WINDOW_MS: i64 = 7 * 24 * 3_600_000;
/// Most archived records one `resend` puts back in the queue (the reply says where to go on).
const RESEND_MAX_RECORDS: u64 = 5_000;

/// What a session needs and keeps across sessions.
pub(crate) struct Shared {
    pub config: UplinkConfig,
    pub mqtt_options: MqttOptions,
    pub outbox: Outbox,
    pub wake: Arc<Notify>,
    pub health: Arc<UplinkHealth>,
    pub status: StationStatus,
    /// Where valid agent commands go; `None` if the agent did not ask for them.
    pub commands: Option<mpsc::Sender<CommandRequest>>,
    /// Checks the station's commands (none until the agent asks for commands).
    pub command_set: Arc<dyn CommandSet>,
    /// Replies finished off the session task (agent answers, resends): `(topic, payload)`.
    pub replies_tx: mpsc::UnboundedSender<(String, Vec<u8>)>,
    /// The agent's part of the health message.
    pub agent_health: watch::Receiver<serde_json::Value>,
    /// Beaten as the session loop goes round and while waiting to reconnect.
    pub heartbeat: Arc<Heartbeat>,
    /// A `resend` is running: another waits for its answer.
    pub resend_running: Arc<std::sync::atomic::AtomicBool>,
}

/// What a session borrows mutably from the uplink for its lifetime.
pub(crate) struct SessionIo<'a> {
    pub shutdown: &'a mut watch::Receiver<bool>,
    pub replies: &'a mut mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    pub ever_connected: &'a mut bool,
}

pub(crate) enum SessionEnd {
    Shutdown,
    Lost {
        /// How long the connection had been up (None: it never came up).
        connected_for: Option<Duration>,
        why: SessionLost,
    },
}

/// Why a valid command does not run; the text goes back to HQ.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NotAdmitted {
    #[error("stale command: {0}")]
    Stale(String),
    #[error("busy: a resend is running; ask again when it has answered")]
    ResendRunning,
    #[error("duplicate command id {0:?}: already carried out (a redelivery)")]
    Duplicate(String),
}

/// Why a session ended other than by shutdown.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SessionLost {
    #[error(transparent)]
    Connection(Box<rumqttc::ConnectionError>),
    #[error("MQTT event loop stopped")]
    EventLoopStopped,
    #[error("MQTT client refused a publish: {0}")]
    PublishRefused(rumqttc::ClientError),
    #[error("MQTT client refused the status publish: {0}")]
    StatusRefused(rumqttc::ClientError),
    #[error("MQTT client refused the command subscription: {0}")]
    SubscribeRefused(rumqttc::ClientError),
    /// Records are paired with packet ids by order; an ack we cannot place means that pairing
    /// is off, so no later ack can be trusted to delete the right record.
    #[error("PUBACK for packet id {0} that awaits none")]
    UnplacedAck(u16),
    #[error(transparent)]
    Pairing(#[from] PairingError),
}

impl SessionLost {
    /// The broker sent a packet over our incoming limit (a retained oversized command).
    pub fn oversized_incoming(&self) -> bool {
        let SessionLost::Connection(e) = self else {
            return false;
        };
        matches!(
            **e,
            ConnectionError::MqttState(StateError::Deserialization(
                rumqttc::Error::PayloadSizeLimitExceeded(_)
            ))
        )
    }
}

/// Runs one session to its end.
/// `clean_start`: ask the broker to drop our stored session (see [`Uplink::run`]).
pub(crate) async fn run_session(
    shared: &Shared,
    io: SessionIo<'_>,
    clean_start: bool,
) -> SessionEnd {
    let max_inflight = usize::from(shared.config.max_inflight);
    let mut options = shared.mqtt_options.clone();
    if clean_start {
        options.set_clean_session(true);
    }
    // Room for every record in flight plus status messages, the subscription, replies, health
    // and the DISCONNECT, so `try_publish` of a record never finds the request channel full.
    let (client, mut eventloop) = AsyncClient::new(options, max_inflight + REQUEST_HEADROOM);
    let mut network = NetworkOptions::new();
    network.set_connection_timeout(shared.config.connect_timeout_s.max(1));
    eventloop.set_network_options(network);
    let (events_tx, events) = mpsc::channel(1024);
    let _driver = AbortOnDrop(tokio::spawn(drive(eventloop, events_tx)));

    let mut session = Session {
        shared,
        client,
        events,
        tracker: InflightTracker::default(),
        connected: false,
        connected_at: None,
        health_lacked_agent: false,
        cursors: Lanes::default(),
        caught_up: false,
        ready: Lanes::default(),
        reading: None,
        poison: Vec::new(),
        read_limit: 0,
        woken_while_reading: false,
        acked: Vec::new(),
        deleting: None,
    };
    let end = session.run(io).await;
    shared.health.set_connected(false);
    end
}

/// An outbox call running on a blocking thread.
type OutboxCall<T> = JoinHandle<Result<T, OutboxError>>;

/// The real-time streams' names (`wire::Stream::REAL_TIME`).
const REAL_TIME: [&str; 3] = [
    wire::Stream::REAL_TIME[0].name(),
    wire::Stream::REAL_TIME[1].name(),
    wire::Stream::REAL_TIME[2].name(),
];

/// The two lanes records leave the outbox by: the real-time streams, sent ahead of a backlog
/// of the rest. Each stream is in one lane, so its records still leave in `seq` order.
#[derive(Debug, Default, Clone, Copy)]
struct Lanes<T> {
    real_time: T,
    rest: T,
}

#[derive(Debug, Clone, Copy)]
enum Lane {
    RealTime,
    Rest,
}

impl<T> Lanes<T> {
    fn get_mut(&mut self, lane: Lane) -> &mut T {
        match lane {
            Lane::RealTime => &mut self.real_time,
            Lane::Rest => &mut self.rest,
        }
    }
}

struct Session<'a> {
    shared: &'a Shared,
    client: AsyncClient,
    events: mpsc::Receiver<Result<Event, ConnectionError>>,
    tracker: InflightTracker,
    /// CONNACK received.
    connected: bool,
    /// When the CONNACK came.
    connected_at: Option<std::time::Instant>,
    /// The last health report went out before the agent had given its part: the next one goes
    /// as soon as it has, not a whole interval later.
    health_lacked_agent: bool,
    /// Last outbox position read in this session, per lane.
    cursors: Lanes<Option<i64>>,
    /// The last outbox read returned everything there was: wait for a wake-up or the tick.
    caught_up: bool,
    /// Records read ahead, not yet handed to the client (at most `max_inflight` in all): when
    /// acks free room, the next records go out at once instead of after a read of the outbox.
    /// The real-time lane's go first.
    ready: Lanes<VecDeque<Record>>,
    /// The outbox read in progress, if any.
    reading: Option<OutboxCall<Lanes<PendingRead>>>,
    /// Records that can never be sent (malformed row, too big), by position with why: moved
    /// to the dead letters before anything else happens.
    poison: Vec<(i64, String)>,
    /// How many records the read in progress asked for.
    read_limit: usize,
    /// A wake-up came while the read in progress ran: it may have missed new records.
    woken_while_reading: bool,
    /// Acknowledged records not yet deleted.
    acked: Vec<i64>,
    /// The delete in progress, if any, with the positions it deletes: publishing goes on
    /// while it commits.
    deleting: Option<(Vec<i64>, OutboxCall<usize>)>,
}

impl Session<'_> {
    async fn run(&mut self, io: SessionIo<'_>) -> SessionEnd {
        let SessionIo {
            shutdown,
            replies,
            ever_connected,
        } = io;
        let mut tick = tokio::time::interval(self.shared.config.poll_interval());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let health_every = self.shared.config.health_interval_s;
        let mut health_tick = tokio::time::interval(Duration::from_secs(health_every.max(1)));
        health_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut agent_health = self.shared.agent_health.clone();
        loop {
            self.shared.heartbeat.beat();
            self.bury_poison().await;
            if let Err(why) = self.publish_ready() {
                self.finish_deletes().await;
                return self.lost(why);
            }
            self.start_read();
            self.start_delete();
            tokio::select! {
                biased;
                () = shutdown_requested(shutdown) => return self.shut_down().await,
                read = wait_for(self.reading.as_mut()) => {
                    self.reading = None;
                    self.read_done(read);
                }
                deleted = wait_for(self.deleting.as_mut().map(|(_, task)| task)) => {
                    let (rowids, _) = self.deleting.take().expect("a delete was running");
                    self.delete_done(rowids, deleted);
                }
                event = self.events.recv() => {
                    let mut next = event;
                    // Take what is already queued too, so one delete covers many acks. Only
                    // what is handled is taken off the channel: a lost event would shift the
                    // pairing of records with packet ids.
                    for taken in 1.. {
                        match next {
                            Some(Ok(event)) => {
                                if let Err(why) = self.handle(event, ever_connected) {
                                    self.finish_deletes().await;
                                    return self.lost(why);
                                }
                            }
                            Some(Err(e)) => {
                                self.finish_deletes().await;
                                return self.lost(SessionLost::Connection(Box::new(e)));
                            }
                            None => {
                                self.finish_deletes().await;
                                return self.lost(SessionLost::EventLoopStopped);
                            }
                        }
                        if taken == ACK_BATCH {
                            break;
                        }
                        match self.events.try_recv() {
                            Ok(more) => next = Some(more),
                            Err(_) => break,
                        }
                    }
                }
                () = self.shared.wake.notified() => self.more_may_wait(),
                Some((topic, payload)) = replies.recv(), if self.connected => {
                    self.publish_notice(topic, QoS::AtLeastOnce, payload);
                }
                _ = health_tick.tick(), if self.connected && health_every > 0 => {
                    self.publish_health().await;
                }
                Ok(()) = agent_health.changed(), if self.connected && self.health_lacked_agent => {
                    self.publish_health().await;
                }
                _ = tick.tick() => self.more_may_wait(),
            }
        }
    }

    fn handle(&mut self, event: Event, ever_connected: &mut bool) -> Result<(), SessionLost> {
        match event {
            Event::Incoming(Packet::ConnAck(ack)) => {
                tracing::info!(
                    session_present = ack.session_present,
                    "connected to HQ broker"
                );
                let health = &self.shared.health;
                if *ever_connected {
                    UplinkHealth::add(&health.reconnects, 1);
                }
                *ever_connected = true;
                self.connected = true;
                self.connected_at = Some(std::time::Instant::now());
                health.set_connected(true);
                let online = self.shared.status.online();
                self.publish_status(online)?;
                // Also on a resumed session: subscribing again is harmless, and a broker that
                // lost our session would otherwise leave us deaf to HQ.
                let filter = format!("{}/+", self.shared.config.command_root());
                self.client
                    .try_subscribe(filter, QoS::AtLeastOnce)
                    .map_err(SessionLost::SubscribeRefused)?;
            }
            Event::Incoming(Packet::Publish(publish)) => {
                self.on_command(&publish.topic, publish.retain, &publish.payload);
            }
            Event::Outgoing(Outgoing::Publish(pkid)) => self.tracker.written(pkid)?,
            Event::Incoming(Packet::PubAck(ack)) => match self.tracker.acked(ack.pkid) {
                Some(Sent::Record { rowid, created }) => {
                    self.acked.push(rowid);
                    self.shared.health.last_ack_lag_ms.store(
                        (forecourt_events::now_millis() - created).max(0),
                        std::sync::atomic::Ordering::Relaxed,
                    );
                }
                Some(Sent::Status | Sent::Notice) => {}
                // Records are paired with packet ids by order; an ack we cannot place means
                // that pairing is off, so no later ack can be trusted to delete the right one.
                None => return Err(SessionLost::UnplacedAck(ack.pkid)),
            },
            _ => {}
        }
        Ok(())
    }

    /// Hands read-ahead records to the client until `max_inflight` are unacknowledged or none
    /// are ready.
    fn publish_ready(&mut self) -> Result<(), SessionLost> {
        if !self.connected {
            return Ok(());
        }
        let max_inflight = usize::from(self.shared.config.max_inflight);
        let mut in_flight = self.tracker.records();
        while in_flight < max_inflight {
            let Some(record) = self
                .ready
                .real_time
                .pop_front()
                .or_else(|| self.ready.rest.pop_front())
            else {
                return Ok(());
            };
            if let Some(why) = unsendable(&record, self.shared.config.max_packet_bytes) {
                // One bad record must not stop everything behind it.
                tracing::error!(rowid = record.rowid, id = %record.id, "record not sent: {why}");
                self.poison.push((record.rowid, why));
                continue;
            }
            let sent = Sent::Record {
                rowid: record.rowid,
                created: record.created,
            };
            self.client
                .try_publish(record.topic, QoS::AtLeastOnce, false, record.payload)
                .map_err(SessionLost::PublishRefused)?;
            self.tracker.handed_over(sent);
            in_flight += 1;
            UplinkHealth::add(&self.shared.health.published, 1);
        }
        Ok(())
    }

    /// Starts reading the next records from the outbox if the read-ahead runs low and there
    /// may be more.
    fn start_read(&mut self) {
        let max_inflight = usize::from(self.shared.config.max_inflight);
        let ready = self.ready.real_time.len() + self.ready.rest.len();
        if !self.connected || self.caught_up || self.reading.is_some() || ready > max_inflight / 2 {
            return;
        }
        let limit = max_inflight - ready;
        let (outbox, after) = (self.shared.outbox.clone(), self.cursors);
        self.reading = Some(tokio::task::spawn_blocking(move || {
            // The real-time streams first, then the others in what room is left.
            let real_time = outbox.read_pending_of(&REAL_TIME, after.real_time, limit)?;
            let taken = real_time.records.len() + real_time.malformed.len();
            let rest = outbox.read_pending_except(&REAL_TIME, after.rest, limit - taken)?;
            Ok(Lanes { real_time, rest })
        }));
        // Remembered with the read so `read_done` knows whether it got everything.
        self.read_limit = limit;
        self.woken_while_reading = false;
    }

    /// New records may have been appended (a wake-up from the agent, or the periodic tick).
    fn more_may_wait(&mut self) {
        self.caught_up = false;
        self.woken_while_reading |= self.reading.is_some();
    }

    fn read_done(&mut self, read: Result<Result<Lanes<PendingRead>, OutboxError>, JoinError>) {
        match read {
            Ok(Ok(Lanes { real_time, rest })) => {
                let rows = [&real_time, &rest]
                    .iter()
                    .map(|r| r.records.len() + r.malformed.len())
                    .sum::<usize>();
                self.caught_up = rows < self.read_limit && !self.woken_while_reading;
                self.take_read(real_time, Lane::RealTime);
                self.take_read(rest, Lane::Rest);
            }
            Ok(Err(e)) => self.read_failed(e.to_string()),
            Err(e) => self.read_failed(format!("outbox read panicked: {e}")),
        }
    }

    /// One lane's part of a read: its cursor moves past it, its records wait to be sent.
    fn take_read(&mut self, read: PendingRead, lane: Lane) {
        let PendingRead { records, malformed } = read;
        let last_record = records.last().map(|r| r.rowid);
        let last_malformed = malformed.iter().map(|(rowid, _)| *rowid).max();
        if let Some(last) = last_record.max(last_malformed) {
            *self.cursors.get_mut(lane) = Some(last);
        }
        for (rowid, why) in &malformed {
            tracing::error!(rowid, "outbox row is not a record: {why}");
        }
        self.poison.extend(malformed);
        self.ready.get_mut(lane).extend(records);
    }

    /// Moves the records that can never be sent to the outbox's dead letters, each with a
    /// `dead_letter` notice for HQ. One that cannot be moved now is tried again next turn.
    async fn bury_poison(&mut self) {
        if self.poison.is_empty() {
            return;
        }
        let poison = std::mem::take(&mut self.poison);
        let outbox = self.shared.outbox.clone();
        let topic = self.shared.config.event_topic(outbox::DEAD_LETTER_STREAM);
        let moved = tokio::task::spawn_blocking(move || {
            let mut failed = Vec::new();
            let mut moved = 0;
            for (rowid, why) in poison {
                match outbox.dead_letter(rowid, &why, &topic) {
                    Ok(true) => moved += 1,
                    Ok(false) => {}
                    Err(e) => {
                        tracing::error!(rowid, "cannot move a record to the dead letters: {e}");
                        failed.push((rowid, why));
                    }
                }
            }
            (moved, failed)
        })
        .await;
        match moved {
            Ok((moved, failed)) => {
                UplinkHealth::add(&self.shared.health.dead_letters, moved);
                UplinkHealth::add(&self.shared.health.outbox_errors, failed.len() as u64);
                self.poison = failed;
                // The notices are new records.
                self.more_may_wait();
            }
            Err(e) => tracing::error!("moving records to the dead letters panicked: {e}"),
        }
    }

    fn read_failed(&mut self, why: String) {
        // Retried on the next tick; records stay where they are.
        tracing::error!("uplink cannot read the outbox: {why}");
        UplinkHealth::add(&self.shared.health.outbox_errors, 1);
        self.caught_up = true;
    }

    fn publish_status(&mut self, payload: Vec<u8>) -> Result<(), SessionLost> {
        self.client
            .try_publish(
                self.shared.config.status_topic(),
                QoS::AtLeastOnce,
                true,
                payload,
            )
            .map_err(SessionLost::StatusRefused)?;
        self.tracker.handed_over(Sent::Status);
        Ok(())
    }

    /// A command reply or health report. Not worth a reconnect if it cannot be queued: HQ
    /// asks again, and the next report comes anyway.
    fn publish_notice(&mut self, topic: String, qos: QoS, payload: Vec<u8>) {
        match self.client.try_publish(topic, qos, false, payload) {
            Ok(()) => self.tracker.handed_over(Sent::Notice),
            Err(e) => tracing::warn!("reply or health message dropped: {e}"),
        }
    }

    async fn publish_health(&mut self) {
        let outbox = self.shared.outbox.clone();
        let (usage, acked_through) =
            blocking(move || Ok((outbox.usage().ok(), outbox.acked_through().ok())))
                .await
                .unwrap_or((None, None));
        let figures = OutboxFigures {
            usage,
            acked_through,
            cap: self.shared.outbox.cap_state(),
            dropped: self.shared.outbox.dropped_total(),
        };
        let agent = self.shared.agent_health.borrow().clone();
        self.health_lacked_agent = agent.is_null();
        let payload = health_payload(
            &self.shared.config.station_id,
            self.shared.status.started,
            &self.shared.health.snapshot(),
            &figures,
            &agent,
        );
        self.publish_notice(self.shared.config.health_topic(), QoS::AtMostOnce, payload);
        UplinkHealth::add(&self.shared.health.health_reports, 1);
    }

    /// A message on the command topics: checked here; a bad one is answered here and goes
    /// no further. Answers that take time come back through `replies_tx`.
    fn on_command(&mut self, topic: &str, retain: bool, payload: &[u8]) {
        let cmd_root = self.shared.config.command_root();
        let Some(name) = command_name(&cmd_root, topic) else {
            tracing::warn!(topic, "message on a topic we did not subscribe to; ignored");
            return;
        };
        let reply_topic = format!("{topic}/reply");
        let health = &self.shared.health;
        if retain {
            // A retained command would run again at every reconnect.
            tracing::warn!(
                topic,
                "retained command ignored (HQ must not retain commands)"
            );
            UplinkHealth::add(&health.commands_refused, 1);
            return;
        }
        let command = match parse_command(name, payload, &*self.shared.command_set) {
            Ok(command) => command,
            Err(e) => {
                tracing::warn!(topic, "command refused: {e}");
                UplinkHealth::add(&health.commands_refused, 1);
                let id = correlation_id(payload);
                let reply = CommandReply::Failed(e.to_string());
                self.publish_notice(
                    reply_topic,
                    QoS::AtLeastOnce,
                    reply_payload(id.as_deref(), &reply),
                );
                return;
            }
        };
        tracing::info!(id = %command.id, command = command.action.name(), "command from HQ");
        if let Err(why) = self.admit(&command) {
            tracing::warn!(id = %command.id, "command refused: {why}");
            UplinkHealth::add(&health.commands_refused, 1);
            let reply = CommandReply::Failed(why.to_string());
            self.publish_notice(
                reply_topic,
                QoS::AtLeastOnce,
                reply_payload(Some(&command.id), &reply),
            );
            return;
        }
        UplinkHealth::add(&health.commands, 1);
        let id = command.id.clone();
        let replies = self.shared.replies_tx.clone();
        let send_reply = move |reply: CommandReply| {
            let _ = replies.send((reply_topic, reply_payload(Some(&id), &reply)));
        };
        match &command.action {
            CommandAction::Ping => send_reply(CommandReply::done(&wire::PingResult {
                station: self.shared.config.station_id.clone(),
                version: self.shared.status.version.clone(),
                started: self.shared.status.started,
                t: forecourt_events::now_millis(),
            })),
            CommandAction::Resend {
                stream,
                from_seq,
                to_seq,
            } => {
                let (outbox, wake) = (self.shared.outbox.clone(), self.shared.wake.clone());
                let (stream, from_seq, to_seq) = (stream.clone(), *from_seq, *to_seq);
                let running = self.shared.resend_running.clone();
                tokio::spawn(async move {
                    let resent = blocking(move || {
                        outbox.resend_batch(&stream, from_seq, to_seq, RESEND_MAX_RECORDS)
                    })
                    .await;
                    running.store(false, std::sync::atomic::Ordering::Release);
                    let reply = match resent {
                        Ok(resent) => {
                            wake.notify_one();
                            CommandReply::done(&wire::ResendResult {
                                requeued: resent.requeued,
                                next_from_seq: resent.next_from_seq,
                                gone: resent.gone.iter().map(|&(a, b)| [a, b]).collect(),
                            })
                        }
                        Err(e) => CommandReply::Failed(format!("cannot re-queue: {e}")),
                    };
                    send_reply(reply);
                });
            }
            _ => {
                let Some(commands) = &self.shared.commands else {
                    UplinkHealth::add(&health.commands_refused, 1);
                    send_reply(CommandReply::Failed(
                        "command not supported by this station".into(),
                    ));
                    return;
                };
                let (reply_tx, reply_rx) = oneshot::channel();
                let request = CommandRequest {
                    command,
                    reply: reply_tx,
                };
                if let Err(e) = commands.try_send(request) {
                    UplinkHealth::add(&health.commands_refused, 1);
                    let why = match e {
                        mpsc::error::TrySendError::Full(_) => "station busy; try again later",
                        mpsc::error::TrySendError::Closed(_) => "station is not taking commands",
                    };
                    send_reply(CommandReply::Failed(why.into()));
                    return;
                }
                let timeout = Duration::from_secs(self.shared.config.command_timeout_s);
                tokio::spawn(async move {
                    let reply = match tokio::time::timeout(timeout, reply_rx).await {
                        Ok(Ok(reply)) => reply,
                        Ok(Err(_)) => {
                            CommandReply::Failed("the station dropped the command".into())
                        }
                        Err(_) => CommandReply::Failed(format!(
                            "no answer from the station within {} s",
                            timeout.as_secs()
                        )),
                    };
                    send_reply(reply);
                });
            }
        }
    }

    /// Whether a valid command may run: not stale, not a redelivery of one already carried out
    /// (ids are kept in the outbox for `COMMAND_ID_WINDOW_MS`), and for `resend`, none running.
    /// `ping` changes nothing and is always answered.
    fn admit(&self, command: &Command) -> Result<(), NotAdmitted> {
        if matches!(command.action, CommandAction::Ping) {
            return Ok(());
        }
        let now = forecourt_events::now_millis();
        // 0: no age limit (an `expires` still counts).
        let max_age_ms = match self.shared.config.command_max_age_s {
            0 => i64::MAX,
            s => i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX),
        };
        if let Some(why) = command.stale(now, max_age_ms) {
            return Err(NotAdmitted::Stale(why));
        }
        let resend = matches!(command.action, CommandAction::Resend { .. });
        if resend
            && self
                .shared
                .resend_running
                .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            return Err(NotAdmitted::ResendRunning);
        }
        // A short SQLite write; commands are rare.
        match self
            .shared
            .outbox
            .note_command(&command.id, now, COMMAND_ID_WINDOW_MS)
        {
            Ok(true) => Ok(()),
            Ok(false) => {
                if resend {
                    self.shared
                        .resend_running
                        .store(false, std::sync::atomic::Ordering::Release);
                }
                Err(NotAdmitted::Duplicate(command.id.clone()))
            }
            Err(e) => {
                // Better run it than refuse everything while the disk is full.
                tracing::warn!(id = %command.id, "cannot note the command id: {e}");
                Ok(())
            }
        }
    }

    /// Starts deleting the acknowledged records if no delete is running (the next one then
    /// takes everything acknowledged meanwhile).
    fn start_delete(&mut self) {
        if self.deleting.is_some() || self.acked.is_empty() {
            return;
        }
        let rowids = std::mem::take(&mut self.acked);
        let (outbox, to_delete) = (self.shared.outbox.clone(), rowids.clone());
        let task = tokio::task::spawn_blocking(move || outbox.ack_many(&to_delete));
        self.deleting = Some((rowids, task));
    }

    /// On failure (e.g. the write lock held past the busy timeout) the records are kept and
    /// tried again with the next acks; if the session ends first, they stay in the outbox and
    /// are sent again next session (HQ dedupes by id).
    fn delete_done(
        &mut self,
        rowids: Vec<i64>,
        deleted: Result<Result<usize, OutboxError>, JoinError>,
    ) {
        let why = match deleted {
            Ok(Ok(_)) => {
                UplinkHealth::add(&self.shared.health.acked, rowids.len() as u64);
                return;
            }
            Ok(Err(e)) => e.to_string(),
            Err(e) => format!("outbox delete panicked: {e}"),
        };
        tracing::error!("uplink cannot delete acknowledged records (will retry): {why}");
        UplinkHealth::add(&self.shared.health.outbox_errors, 1);
        self.acked.extend(rowids);
    }

    /// Waits for the delete in progress, then deletes what else was acknowledged (or failed):
    /// at the end of a session, so the next one does not publish acknowledged records again.
    /// What still fails stays in the outbox and is sent again next session.
    async fn finish_deletes(&mut self) {
        for _ in 0..2 {
            self.start_delete();
            if let Some((rowids, task)) = self.deleting.take() {
                let deleted = task.await;
                self.delete_done(rowids, deleted);
            }
        }
    }

    /// Says offline (a clean DISCONNECT discards the will), waits briefly for the broker to
    /// take it, then disconnects.
    async fn shut_down(&mut self) -> SessionEnd {
        if self.connected
            && self
                .publish_status(self.shared.status.offline_shutdown())
                .is_ok()
        {
            let grace = tokio::time::sleep(SHUTDOWN_GRACE);
            tokio::pin!(grace);
            let mut disconnecting = false;
            loop {
                tokio::select! {
                    _ = &mut grace => break,
                    event = self.events.recv() => match event {
                        Some(Ok(Event::Outgoing(Outgoing::Disconnect))) => break,
                        Some(Ok(event)) => {
                            let mut ever_connected = true;
                            if let Err(why) = self.handle(event, &mut ever_connected) {
                                tracing::warn!("uplink stopping without waiting further: {why}");
                                break;
                            }
                        }
                        _ => break,
                    },
                }
                if !disconnecting && !self.tracker.awaiting(Sent::Status) {
                    self.finish_deletes().await;
                    disconnecting = self.client.try_disconnect().is_ok();
                    if !disconnecting {
                        break;
                    }
                }
            }
            self.finish_deletes().await;
        }
        tracing::info!("uplink stopped");
        SessionEnd::Shutdown
    }

    fn lost(&mut self, why: SessionLost) -> SessionEnd {
        SessionEnd::Lost {
            connected_for: self.connected_at.map(|t| t.elapsed()),
            why,
        }
    }
}

/// Why a record cannot be published at all, if it cannot.
fn unsendable(record: &Record, max_packet_bytes: usize) -> Option<String> {
    let topic = &record.topic;
    if topic.is_empty() || topic.contains(['+', '#', '\0']) {
        return Some(format!("invalid topic {topic:?}"));
    }
    let size = publish_packet_bytes(topic.len(), record.payload.len());
    (size > max_packet_bytes)
        .then(|| format!("{size} bytes exceed max_packet_bytes {max_packet_bytes}"))
}

/// The whole PUBLISH packet at QoS 1: fixed header (1 byte, then the remaining length in 1 to
/// 4 bytes), 2-byte topic length, topic, 2-byte packet id, payload. Counting less lets a
/// record a few bytes under the limit pass here and kill the connection in the client.
fn publish_packet_bytes(topic_len: usize, payload_len: usize) -> usize {
    let remaining = 2 + topic_len + 2 + payload_len;
    let length_bytes = match remaining {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    };
    1 + length_bytes + remaining
}

/// Resolves once shutdown is requested (or the agent dropped the sender).
async fn shutdown_requested(shutdown: &mut watch::Receiver<bool>) {
    loop {
        if *shutdown.borrow_and_update() {
            return;
        }
        if shutdown.changed().await.is_err() {
            return;
        }
    }
}

/// Polls the event loop, forwarding every event, until the connection fails.
async fn drive(mut eventloop: EventLoop, events: mpsc::Sender<Result<Event, ConnectionError>>) {
    loop {
        let event = eventloop.poll().await;
        let failed = event.is_err();
        if events.send(event).await.is_err() || failed {
            return; // Dropping the event loop closes the socket.
        }
    }
}

/// Waits for `task` if there is one; never resolves otherwise (a disabled `select!` branch).
async fn wait_for<F: Future + Unpin>(task: Option<&mut F>) -> F::Output {
    match task {
        Some(task) => task.await,
        None => std::future::pending().await,
    }
}

/// Runs a short outbox call off the async threads.
async fn blocking<T: Send + 'static>(
    call: impl FnOnce() -> Result<T, OutboxError> + Send + 'static,
) -> Result<T, String> {
    match tokio::task::spawn_blocking(call).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(e) => Err(format!("outbox call panicked: {e}")),
    }
}

/// Stops the event-loop task when the session ends, however it ends.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::publish_packet_bytes;

    /// The whole packet, fixed header included: rumqttc refuses anything over the limit.
    #[test]
    fn publish_size_counts_the_fixed_header() {
        // "t" and 1 byte of payload: 2 + 1 + 2 + 1 = 6 remaining, 1 length byte, 1 type byte.
        assert_eq!(publish_packet_bytes(1, 1), 8);
        // 127 remaining still fits one length byte, 128 needs two.
        assert_eq!(publish_packet_bytes(1, 122), 1 + 1 + 127);
        assert_eq!(publish_packet_bytes(1, 123), 1 + 2 + 128);
        assert_eq!(publish_packet_bytes(10, 16_365), 1 + 2 + 16_379);
        assert_eq!(publish_packet_bytes(10, 2_100_000), 1 + 4 + 2_100_014);
    }
}
