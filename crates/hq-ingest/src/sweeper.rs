//! The gap sweeper: one worker at a time (whoever holds a PostgreSQL advisory lock on its own
//! connection; the lock goes with the connection when the worker dies) advances every
//! stream's contiguous prefix, keeps the `gaps` table, and asks stations for their holes with
//! `resend` until each closes or the station says the records are gone.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use deadpool_postgres::Pool;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::AsyncClient;
use tokio::sync::{mpsc, watch};

use crate::config::IngestConfig;
use crate::db::{self, DbError, SweepResult, SWEEPER_LOCK};
use crate::gaps::{self, Gap, SeqRange};
use crate::ingest::now_ms;
use crate::record::ResendReply;

/// What the sweeper asked a station for, by command id.
struct Asked {
    station: String,
    stream: String,
    range: SeqRange,
    at_ms: i64,
}

pub struct Sweeper {
    config: IngestConfig,
    pool: Pool,
    client: AsyncClient,
    /// The connection holding the advisory lock, while this worker is the sweeper.
    lock: Option<tokio_postgres::Client>,
    asked: HashMap<String, Asked>,
    next_command: u64,
}

impl Sweeper {
    pub fn new(config: IngestConfig, pool: Pool, client: AsyncClient) -> Sweeper {
        Sweeper {
            config,
            pool,
            client,
            lock: None,
            asked: HashMap::new(),
            next_command: 0,
        }
    }

    pub async fn run(
        mut self,
        mut replies: mpsc::UnboundedReceiver<(String, ResendReply)>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(Duration::from_millis(self.config.repair.sweep_ms));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if let Err(e) = self.sweep_if_holder().await {
                        tracing::warn!("gap sweep: {e}; giving up the sweeper's lock until the next try");
                        self.lock = None;
                    }
                }
                Some((station, reply)) = replies.recv() => {
                    if let Err(e) = self.on_reply(&station, reply).await {
                        tracing::warn!("resend reply from {station}: {e}");
                    }
                }
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        return;
                    }
                }
            }
        }
    }

    async fn sweep_if_holder(&mut self) -> Result<(), DbError> {
        if self.lock.as_ref().is_some_and(|c| c.is_closed()) {
            tracing::warn!("lost the sweeper's lock connection");
            self.lock = None;
        }
        if self.lock.is_none() {
            let (client, connection) =
                tokio_postgres::connect(&self.config.postgres.url, tokio_postgres::NoTls).await?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            let got: bool = client
                .query_one("SELECT pg_try_advisory_lock($1)", &[&SWEEPER_LOCK])
                .await?
                .get(0);
            if !got {
                return Ok(());
            }
            tracing::info!("this worker now runs the gap sweeper");
            self.asked.clear();
            self.lock = Some(client);
        }
        self.sweep().await
    }

    async fn sweep(&mut self) -> Result<(), DbError> {
        let now = now_ms();
        let client = self.pool.get().await?;
        let lagging = db::lagging_streams(&**client).await?;
        let earlier = db::open_gaps(&**client).await?;
        drop(client);
        let mut prefixes = Vec::new();
        let mut open: Vec<((String, String), Gap)> = Vec::new();
        for (key, view) in &lagging {
            let plan = gaps::plan(view);
            if plan.contiguous_to > view.contiguous_to {
                prefixes.push((key, plan.contiguous_to));
            }
            let before = earlier.get(key).map_or(&[][..], Vec::as_slice);
            for gap in gaps::carry_over(before, &plan.holes, now) {
                open.push((key.clone(), gap));
            }
        }
        // Ask: the lowest due hole per station (a station runs one resend at a time), up to
        // the per-sweep limit.
        let mut asked_stations = BTreeSet::new();
        let mut to_ask = Vec::new();
        for (key, gap) in open.iter_mut() {
            if to_ask.len() >= self.config.repair.max_resends_per_sweep
                || asked_stations.contains(&key.0)
                || !gaps::due(gap, now, &self.config.repair)
            {
                continue;
            }
            asked_stations.insert(key.0.clone());
            gap.asked += 1;
            gap.last_asked_ms = Some(now);
            to_ask.push((key.clone(), (gap.from_seq, gap.to_seq)));
        }
        let result = SweepResult {
            prefixes,
            gaps: open.iter().map(|(k, g)| (k, g)).collect(),
        };
        db::save_sweep(&self.pool, &result, now).await?;
        let mut sent = Vec::new();
        for ((station, stream), range) in to_ask {
            if self.ask(&station, &stream, range, now).await {
                sent.push(((station, stream), range));
            }
        }
        if !sent.is_empty() {
            db::log_resends(&self.pool, &self.config.mqtt.client_id, &sent, now).await?;
            tracing::info!(
                resends = sent.len(),
                open_gaps = open.len(),
                "asked stations for missing records"
            );
        }
        // Forget asks nobody answered (the station was offline, or the reply was lost).
        let forget_before =
            now - i64::try_from(self.config.repair.resend_retry_max_ms).unwrap_or(i64::MAX) * 2;
        self.asked.retain(|_, a| a.at_ms >= forget_before);
        Ok(())
    }

    /// Publishes `resend` for one hole; true if the client took it.
    async fn ask(&mut self, station: &str, stream: &str, range: SeqRange, now: i64) -> bool {
        self.next_command += 1;
        // A fresh id per ask: the station runs each command id once.
        let id = format!(
            "gap-{}-{now}-{}",
            self.config.mqtt.client_id, self.next_command
        );
        let (Ok(from_seq), Ok(to_seq)) = (u64::try_from(range.0), u64::try_from(range.1)) else {
            return false;
        };
        let command = wire::ResendCommand {
            id: id.clone(),
            stream: stream.to_string(),
            from_seq,
            to_seq: Some(to_seq),
            t: Some(now),
        };
        let Ok(payload) = serde_json::to_vec(&command) else {
            return false;
        };
        let topic = format!("{}/{station}/cmd/resend", self.config.mqtt.prefix);
        if self
            .client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .is_err()
        {
            return false;
        }
        self.asked.insert(
            id,
            Asked {
                station: station.to_string(),
                stream: stream.to_string(),
                range,
                at_ms: now,
            },
        );
        true
    }

    async fn on_reply(&mut self, station: &str, reply: ResendReply) -> Result<(), DbError> {
        let Some(asked) = self.asked.remove(&reply.id) else {
            return Ok(()); // another worker's ask, or one forgotten
        };
        if asked.station != station {
            return Ok(());
        }
        match reply.outcome {
            Ok(result) => {
                let gone: Vec<SeqRange> = result
                    .gone
                    .iter()
                    .filter_map(|&[a, b]| Some((i64::try_from(a).ok()?, i64::try_from(b).ok()?)))
                    .filter_map(|range| gaps::clip(range, asked.range))
                    .collect();
                for range in &gone {
                    tracing::warn!(
                        station,
                        stream = %asked.stream,
                        from_seq = range.0,
                        to_seq = range.1,
                        "the station no longer holds these records: unrecoverable"
                    );
                }
                if !gone.is_empty() {
                    db::add_unrecoverable(
                        &self.pool,
                        &self.config.mqtt.client_id,
                        station,
                        &asked.stream,
                        &gone,
                        now_ms(),
                    )
                    .await?;
                }
            }
            Err(why) => {
                tracing::debug!(station, "resend refused: {why}; asking again later");
            }
        }
        Ok(())
    }
}
