//! The station loop: dispenser events and plate reads in, matched sales out to the outbox.
//! Everything that leaves the station is committed to the outbox before the uplink may publish it.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use forecourt_events::{
    now_millis, Decimal, DispenserEvent, FpNumber, FramePlates, KeptSales, Sale, UnixMillis,
};
use matcher::{MatchedSale, Matcher};
use outbox::{Outbox, Totalizer};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch, Notify};
use tracing::{info, warn};

use crate::trace_files;

/// How many failed outbox writes the station keeps in memory while the disk is full.
const MAX_UNWRITTEN: usize = 100_000;

/// A write to the outbox, kept to retry when the outbox refused it.
#[derive(Debug, Clone)]
pub enum OutboxWrite {
    /// A sale of `fp` waiting for its match, with the totalizer that counts it.
    Hold {
        fp: FpNumber,
        key: String,
        body: Value,
        totalizer: Option<Totalizer>,
    },
    Release {
        key: String,
        /// Chosen before the write, so a later correction can name the record.
        id: uuid::Uuid,
        stream: &'static str,
        topic: String,
        body: Value,
    },
    Append {
        stream: &'static str,
        topic: String,
        body: Value,
        totalizer: Option<Totalizer>,
    },
    KeepTotalizer(Totalizer),
}

impl OutboxWrite {
    fn apply(&self, outbox: &Outbox) -> Result<(), outbox::OutboxError> {
        match self {
            OutboxWrite::Hold {
                key,
                body,
                totalizer,
                ..
            } => outbox.hold_counted(key, body, totalizer.as_ref()),
            OutboxWrite::Release {
                key,
                id,
                stream,
                topic,
                body,
            } => outbox.release_as(key, *id, stream, topic, body).map(|_| ()),
            OutboxWrite::Append {
                stream,
                topic,
                body,
                totalizer,
            } => outbox
                .append_counted(stream, topic, body, totalizer.as_ref())
                .map(|_| ()),
            OutboxWrite::KeepTotalizer(totalizer) => outbox.keep_totalizer(totalizer),
        }
    }
}

/// A sale as the matcher's verdicts name it: fuelling point, nozzle, when the pump reported it.
pub type SaleKey = (u8, u8, UnixMillis);

/// Plate reads arrive after the pump events of the same moment: 2 s puts a trace in time order.
pub const TRACE_REORDER_MS: i64 = 2_000;

pub type TraceFile = matcher::TraceWriter<std::io::BufWriter<std::fs::File>>;

pub struct Station {
    pub matcher: Matcher,
    /// Sales held from before the last stop, to recognise a pump reporting one of them again.
    pub restored_sales: Vec<Sale>,
    /// Per fuelling point, the last sale an earlier run already sent (its record is waiting or
    /// archived) with no nozzle lifted at that point since: a pump still showing that fill as
    /// completed at start reports it again (the reset had not reached the pump before the stop).
    pub released_last: std::collections::BTreeMap<u8, ReleasedSale>,
    /// Sales sent with their first verdict and still waiting for the matcher's revisit: their
    /// record ids, to name in a correction. Forgotten after the revisit.
    pub awaiting_revisit: std::collections::BTreeMap<SaleKey, uuid::Uuid>,
    /// Per (fuelling point, nozzle), the totalizer last kept in the outbox: a reading that
    /// only repeats it is not written again.
    pub kept_totalizers: std::collections::BTreeMap<(u8, u8), u64>,
    /// Sales made durable, per fuelling point: the DART master resets a pump only after.
    pub kept_sales: Arc<KeptSales>,
    /// Outbox writes that failed (disk full, I/O error), retried in order on every tick. Kept in
    /// memory up to `MAX_UNWRITTEN`; past that the station gives up and the agent exits.
    pub unwritten: std::collections::VecDeque<OutboxWrite>,
    /// `unwritten.len()`, for the health report.
    pub unwritten_count: Arc<std::sync::atomic::AtomicUsize>,
    /// Arrivals, visits and hourly figures, from the same events as the matcher.
    pub analytics: analytics::Analytics,
    /// When recording: everything the matcher sees, for `forecourt-agent replay`.
    pub trace: Option<TraceFile>,
    /// When a recording asked for by HQ ends.
    pub trace_until: Option<UnixMillis>,
    /// Where `record_trace` writes its files.
    pub trace_dir: std::path::PathBuf,
    /// The file of the recording HQ asked for, while it runs.
    pub trace_path: Option<std::path::PathBuf>,
    /// When old trace files were last looked for.
    pub traces_pruned_at: Option<UnixMillis>,
    /// The config file as loaded, for reloads.
    pub config: Option<crate::commands::LoadedConfig>,
    pub outbox: Outbox,
    pub wake_uplink: Arc<Notify>,
    pub layout: matcher::Layout,
    /// `<prefix>/<station_id>`
    pub topic_root: String,
}

/// The outbox key under which a sale is held while it waits for its match. A fuelling point
/// completes at most one sale per millisecond, so this is unique.
fn held_key(sale: &Sale) -> String {
    format!("sale:{}:{}:{}", sale.fp, sale.t, sale.nozzle)
}

/// The totalizer a sale counts in, to keep with it.
fn sale_totalizer(sale: &Sale) -> Option<Totalizer> {
    Some(Totalizer {
        fp: sale.fp,
        nozzle: sale.nozzle,
        total: sale.totalizer?,
    })
}

/// What identifies a sale the pump may report again: nozzle, volume and amount.
#[derive(Debug, Clone)]
pub struct ReleasedSale {
    pub nozzle: u8,
    pub volume: Decimal,
    pub amount: Decimal,
}

/// How far back the outbox is read for sales and nozzle events already sent (a busy station's
/// day or two; an idle fuelling point's last sale older than that is not recognised).
const RELEASED_LOOKBACK: usize = 5_000;

/// From sent `sale` and `nozzle` bodies: per fuelling point, its last sale if no nozzle was lifted
/// there after it.
pub fn last_released_per_fp(
    sales: &[Value],
    nozzles: &[Value],
) -> std::collections::BTreeMap<u8, ReleasedSale> {
    let fp_of = |b: &Value| b["fp"].as_u64().and_then(|v| u8::try_from(v).ok());
    let mut last: std::collections::BTreeMap<u8, (i64, ReleasedSale)> = Default::default();
    for body in sales {
        let (Some(fp), Some(t)) = (fp_of(body), body["completed_t"].as_i64()) else {
            continue;
        };
        let parsed = (
            body["nozzle"].as_u64().and_then(|n| u8::try_from(n).ok()),
            serde_json::from_value(body["volume"].clone()).ok(),
            serde_json::from_value(body["amount"].clone()).ok(),
        );
        let (Some(nozzle), Some(volume), Some(amount)) = parsed else {
            continue;
        };
        if last.get(&fp).is_none_or(|(seen, _)| t >= *seen) {
            last.insert(
                fp,
                (
                    t,
                    ReleasedSale {
                        nozzle,
                        volume,
                        amount,
                    },
                ),
            );
        }
    }
    for body in nozzles {
        let (Some(fp), Some(t)) = (fp_of(body), body["t"].as_i64()) else {
            continue;
        };
        if body["state"] == "out" && last.get(&fp).is_some_and(|(sale_t, _)| t > *sale_t) {
            last.remove(&fp);
        }
    }
    last.into_iter().map(|(fp, (_, s))| (fp, s)).collect()
}

impl Station {
    /// Per fuelling point, the last sale sent before this start that the pump may still show
    /// (see [`Station::released_last`]).
    pub async fn restore_released_sales(&mut self) -> Result<usize> {
        let outbox = self.outbox.clone();
        let (sales, nozzles) = tokio::task::spawn_blocking(move || {
            Ok::<_, outbox::OutboxError>((
                outbox.recent_bodies("sale", RELEASED_LOOKBACK)?,
                outbox.recent_bodies("nozzle", 4 * RELEASED_LOOKBACK)?,
            ))
        })
        .await
        .context("outbox task")?
        .context("reading sales already sent")?;
        self.released_last = last_released_per_fp(&sales, &nozzles);
        Ok(self.released_last.len())
    }

    /// Sales that were held when the agent last stopped (a crash or power cut during their grace
    /// period) go back to the matcher, so each still leaves the station exactly once.
    pub async fn restore_held_sales(&mut self) -> Result<usize> {
        let outbox = self.outbox.clone();
        let held = tokio::task::spawn_blocking(move || outbox.held())
            .await
            .context("outbox task")?
            .context("reading held sales")?;
        let mut restored = 0;
        for (key, body) in held {
            match serde_json::from_value::<Sale>(body) {
                Ok(sale) if key.starts_with("sale:") => {
                    self.matcher
                        .observe_dispenser(&DispenserEvent::SaleCompleted(sale.clone()));
                    self.restored_sales.push(sale);
                    restored += 1;
                }
                Ok(_) => {}
                Err(e) => warn!(key, error = %e, "held item is not a sale; left in place"),
            }
        }
        Ok(restored)
    }

    /// Puts the hourly summaries the outbox still holds back into the analytics, so HQ's
    /// `hourly` command answers for hours closed before a restart. Returns how many.
    pub async fn restore_hourly(&mut self) -> Result<usize> {
        let outbox = self.outbox.clone();
        let keep = self.analytics.config().keep_hours;
        let bodies = tokio::task::spawn_blocking(move || outbox.recent_bodies("hourly", keep))
            .await
            .context("outbox task")?
            .context("reading hourly summaries")?;
        let mut restored = 0;
        for body in bodies {
            match serde_json::from_value::<analytics::HourSummary>(body) {
                Ok(summary) => {
                    self.analytics.restore_hour(summary);
                    restored += 1;
                }
                Err(e) => warn!(error = %e, "stored hourly summary not understood; skipped"),
            }
        }
        Ok(restored)
    }

    pub async fn run(
        mut self,
        mut frames: mpsc::Receiver<FramePlates>,
        mut pumps: mpsc::Receiver<DispenserEvent>,
        mut commands: mpsc::Receiver<uplink::CommandRequest>,
        mut shutdown: watch::Receiver<bool>,
        mut alive: impl FnMut(),
    ) -> Result<()> {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                Some(f) = frames.recv() => {
                    self.record(|t| t.write_frame(&f));
                    self.matcher.observe_frame(&f);
                    self.analytics.observe_frame(&f);
                    // At once: HQ wants to know a car arrived while it is still at the pump.
                    self.publish_analytics(now_millis()).await?;
                }
                Some(e) = pumps.recv() => {
                    if let DispenserEvent::TotalizerRead { fp, nozzle, total, .. } = e {
                        self.keep_totalizer(Totalizer { fp, nozzle, total }).await?;
                        continue;
                    }
                    if let DispenserEvent::SaleCompleted(sale) = &e {
                        if self.already_held(sale) {
                            if let Some(t) = sale_totalizer(sale) {
                                self.keep_totalizer(t).await?;
                            }
                            // Kept before the restart: the pump may be reset.
                            self.kept_sales.keep(sale.fp);
                            continue;
                        }
                        // Durable before anything else happens to it.
                        self.hold(sale).await?;
                        self.record(|t| t.write_sale(sale, &held_key(sale)));
                    } else {
                        self.record(|t| t.write_dispenser(&e));
                    }
                    self.matcher.observe_dispenser(&e);
                    self.analytics.observe_dispenser(&e);
                    self.publish_dispenser_event(&e).await?;
                }
                Some(request) = commands.recv() => self.handle_command(request).await,
                _ = tick.tick() => {
                    let now = now_millis();
                    self.retry_unwritten().await?;
                    self.decide(now).await?;
                    if self.trace_until.is_some_and(|until| now >= until) {
                        self.stop_trace_recording();
                    }
                    self.bound_trace_files(now);
                    alive();
                }
                _ = shutdown.changed() => break,
            }
        }
        // Decide what is still in its grace period now, with what was seen: a sale must not be
        // lost because the agent was asked to stop.
        self.decide(UnixMillis::MAX).await?;
        self.retry_unwritten().await?;
        if !self.unwritten.is_empty() {
            tracing::error!(
                writes = self.unwritten.len(),
                "stopping with outbox writes the disk would not take: they are lost"
            );
        }
        self.stop_trace_recording();
        Ok(())
    }

    /// Starts recording a trace for `minutes` (HQ's record_trace); returns the file.
    pub fn start_trace_recording(&mut self, minutes: u16) -> Result<std::path::PathBuf> {
        if self.trace.is_some() && self.trace_until.is_none() {
            anyhow::bail!("already recording to the configured trace_file");
        }
        self.stop_trace_recording();
        std::fs::create_dir_all(&self.trace_dir)
            .with_context(|| format!("cannot create {}", self.trace_dir.display()))?;
        self.prune_trace_files();
        let path = self.trace_dir.join(format!("trace-{}.jsonl", now_millis()));
        let file = std::fs::File::create(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        self.trace = Some(matcher::TraceWriter::new(
            std::io::BufWriter::new(file),
            &self.layout,
            TRACE_REORDER_MS,
        )?);
        self.trace_until = Some(now_millis() + i64::from(minutes) * 60_000);
        self.trace_path = Some(path.clone());
        info!(file = %path.display(), minutes, "recording a trace for HQ");
        Ok(path)
    }

    /// Trace files hold plate numbers: a recording stops at `MAX_FILE_BYTES`, and once an hour
    /// files past their age or over the total size go.
    fn bound_trace_files(&mut self, now: UnixMillis) {
        let too_big = self.trace_path.as_ref().is_some_and(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.len() >= trace_files::MAX_FILE_BYTES)
        });
        if too_big {
            warn!(
                max_bytes = trace_files::MAX_FILE_BYTES,
                "trace recording stopped early: the file reached its size limit"
            );
            self.stop_trace_recording();
        }
        if self.traces_pruned_at.is_none_or(|t| now - t >= 3_600_000) {
            self.traces_pruned_at = Some(now);
            self.prune_trace_files();
        }
    }

    fn prune_trace_files(&self) {
        match trace_files::prune(
            &self.trace_dir,
            std::time::SystemTime::now(),
            trace_files::MAX_AGE,
            trace_files::MAX_TOTAL_BYTES,
            self.trace_path.as_deref(),
        ) {
            Ok(deleted) if !deleted.is_empty() => {
                info!(
                    files = deleted.len(),
                    "old trace files deleted (they hold plate numbers)"
                )
            }
            Ok(_) => {}
            Err(e) => {
                warn!(dir = %self.trace_dir.display(), error = %e, "cannot prune trace files")
            }
        }
    }

    fn stop_trace_recording(&mut self) {
        self.trace_until = None;
        self.trace_path = None;
        if let Some(trace) = self.trace.take() {
            if let Err(e) = trace.finish() {
                warn!(error = %e, "could not finish the trace file");
            }
        }
    }

    /// Writes to the trace when recording; a failing trace stops recording, never the station.
    fn record(&mut self, write: impl FnOnce(&mut TraceFile) -> Result<(), matcher::TraceError>) {
        if let Some(trace) = self.trace.as_mut() {
            if let Err(e) = write(trace) {
                warn!(error = %e, "trace recording failed; recording stopped");
                self.trace = None;
            }
        }
    }

    async fn decide(&mut self, now: UnixMillis) -> Result<()> {
        for m in self.matcher.poll(now) {
            if m.correction {
                self.correct(&m).await?;
                continue;
            }
            self.analytics.observe_matched(&m);
            info!(
                fp = m.sale.fp,
                nozzle = m.sale.nozzle,
                volume = %m.sale.volume,
                amount = %m.sale.amount,
                plate = m.verdict.plate.as_deref().unwrap_or("-"),
                confidence = m.verdict.confidence,
                reason = %m.verdict.reason,
                "sale matched"
            );
            let id = uuid::Uuid::new_v4();
            self.write(OutboxWrite::Release {
                key: held_key(&m.sale),
                id,
                stream: "sale",
                topic: self.topic("sale"),
                body: sale_body(&m),
            })
            .await?;
            self.awaiting_revisit
                .insert((m.sale.fp, m.sale.nozzle, m.sale.t), id);
        }
        // A sale is revisited once, `revisit_ms` after it ended: older entries can only be sales
        // whose revisit agreed (or a matcher reconfigured since).
        let horizon = now.saturating_sub(
            self.matcher
                .config()
                .revisit_ms
                .max(self.matcher.config().grace_ms)
                + REVISIT_SLACK_MS,
        );
        self.awaiting_revisit.retain(|(_, _, t), _| *t >= horizon);
        // Not `now`: at shutdown it is the end of time, which would close the unfinished hour.
        self.publish_analytics(now.min(now_millis())).await
    }

    /// Publishes the matcher's later verdict on a sale already sent, as a `sale_correction` that
    /// names the sale's record.
    async fn correct(&mut self, m: &MatchedSale) -> Result<()> {
        let Some(id) = self
            .awaiting_revisit
            .remove(&(m.sale.fp, m.sale.nozzle, m.sale.t))
        else {
            // Sent by an earlier run (restored after a restart): its record id is not known here.
            warn!(
                fp = m.sale.fp,
                nozzle = m.sale.nozzle,
                "a correction for a sale this run did not send; not published"
            );
            return Ok(());
        };
        info!(
            fp = m.sale.fp,
            nozzle = m.sale.nozzle,
            plate = m.verdict.plate.as_deref().unwrap_or("-"),
            confidence = m.verdict.confidence,
            reason = %m.verdict.reason,
            "sale match corrected"
        );
        let topic = self.topic("sale_correction");
        self.write(OutboxWrite::Append {
            stream: "sale_correction",
            topic,
            body: matcher_correction_body(m, id, now_millis()),
            totalizer: None,
        })
        .await
    }

    async fn publish_analytics(&mut self, now: UnixMillis) -> Result<()> {
        for e in self.analytics.poll(now) {
            self.append(e.stream(), e.body()).await?;
        }
        Ok(())
    }

    /// A recovered sale (found completed when the driver started) that this station already
    /// held before the restart: the same fill, reported again because a crash came between the
    /// report and the pump's reset. Not a second sale.
    fn already_held(&mut self, sale: &Sale) -> bool {
        if !sale.recovered {
            return false;
        }
        // A recovered sale may not know its nozzle (0: the pump's answer had no DC3).
        let same_fill = |nozzle: u8, volume: Decimal, amount: Decimal| {
            (sale.nozzle == 0 || nozzle == sale.nozzle)
                && volume.same_value(sale.volume)
                && amount.same_value(sale.amount)
        };
        let same =
            |held: &Sale| held.fp == sale.fp && same_fill(held.nozzle, held.volume, held.amount);
        let sent_before = |r: &ReleasedSale| same_fill(r.nozzle, r.volume, r.amount);
        match self.restored_sales.iter().position(same) {
            Some(i) => {
                self.restored_sales.remove(i);
                info!(fp = sale.fp, nozzle = sale.nozzle, volume = %sale.volume, "pump reported a sale held from before the restart; counted once");
                true
            }
            None if self.released_last.get(&sale.fp).is_some_and(sent_before) => {
                self.released_last.remove(&sale.fp);
                info!(fp = sale.fp, nozzle = sale.nozzle, volume = %sale.volume, "pump still shows a sale sent before the restart; counted once");
                true
            }
            None => {
                info!(fp = sale.fp, nozzle = sale.nozzle, volume = %sale.volume, "recovered a sale completed while the agent was down");
                false
            }
        }
    }

    async fn hold(&mut self, sale: &Sale) -> Result<()> {
        let body = serde_json::to_value(sale)?;
        let totalizer = sale_totalizer(sale);
        self.write(OutboxWrite::Hold {
            fp: sale.fp,
            key: held_key(sale),
            body,
            totalizer,
        })
        .await?;
        self.note_kept(totalizer);
        Ok(())
    }

    /// Keeps a totalizer reading unless it only repeats the one kept.
    async fn keep_totalizer(&mut self, t: Totalizer) -> Result<()> {
        if self.kept_totalizers.get(&(t.fp, t.nozzle)) == Some(&t.total) {
            return Ok(());
        }
        self.write(OutboxWrite::KeepTotalizer(t)).await?;
        self.note_kept(Some(t));
        Ok(())
    }

    fn note_kept(&mut self, t: Option<Totalizer>) {
        if let Some(t) = t {
            self.kept_totalizers.insert((t.fp, t.nozzle), t.total);
        }
    }

    /// Writes to the outbox, or, when it refuses (disk full), keeps the write in memory to retry
    /// in order: the station goes on polling pumps and matching; nothing is dropped.
    async fn write(&mut self, write: OutboxWrite) -> Result<()> {
        if !self.unwritten.is_empty() {
            return self.keep_unwritten(write);
        }
        match self.apply(write.clone()).await? {
            Ok(()) => {
                self.written(&write);
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "outbox refused a write; keeping it in memory and retrying");
                self.keep_unwritten(write)
            }
        }
    }

    /// A write is durable: the uplink may send it; a held sale's pump may be reset.
    fn written(&self, write: &OutboxWrite) {
        if let OutboxWrite::Hold { fp, .. } = write {
            self.kept_sales.keep(*fp);
        }
        self.wake_uplink.notify_one();
    }

    fn keep_unwritten(&mut self, write: OutboxWrite) -> Result<()> {
        if self.unwritten.len() >= MAX_UNWRITTEN {
            anyhow::bail!(
                "{} outbox writes waiting in memory and the outbox still refuses them",
                self.unwritten.len()
            );
        }
        self.unwritten.push_back(write);
        self.unwritten_count
            .store(self.unwritten.len(), std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Retries the writes the outbox refused, oldest first, until one fails again.
    async fn retry_unwritten(&mut self) -> Result<()> {
        while let Some(write) = self.unwritten.front().cloned() {
            match self.apply(write.clone()).await? {
                Ok(()) => {
                    self.unwritten.pop_front();
                    self.unwritten_count
                        .store(self.unwritten.len(), std::sync::atomic::Ordering::Relaxed);
                    if self.unwritten.is_empty() {
                        info!("outbox accepts writes again; nothing was lost");
                    }
                    self.written(&write);
                }
                Err(_) => break,
            }
        }
        Ok(())
    }

    /// SQLite fsyncs: keep it off the async workers. The outer error is a failed task.
    async fn apply(&self, write: OutboxWrite) -> Result<Result<(), outbox::OutboxError>> {
        let outbox = self.outbox.clone();
        tokio::task::spawn_blocking(move || write.apply(&outbox))
            .await
            .context("outbox task")
    }

    fn topic(&self, stream: &str) -> String {
        format!("{}/events/{stream}", self.topic_root)
    }

    async fn publish_dispenser_event(&mut self, e: &DispenserEvent) -> Result<()> {
        let (stream, body) = match e {
            DispenserEvent::NozzleOut { t, fp, nozzle } => (
                "nozzle",
                json!({"t": t, "fp": fp, "nozzle": nozzle, "state": "out"}),
            ),
            DispenserEvent::NozzleIn { t, fp, nozzle } => (
                "nozzle",
                json!({"t": t, "fp": fp, "nozzle": nozzle, "state": "in"}),
            ),
            DispenserEvent::PumpOnline { t, fp } => {
                info!(fp, "pump online");
                ("pump", json!({"t": t, "fp": fp, "state": "online"}))
            }
            DispenserEvent::PumpOffline { t, fp } => {
                warn!(fp, "pump offline");
                ("pump", json!({"t": t, "fp": fp, "state": "offline"}))
            }
            DispenserEvent::SaleGap {
                t,
                fp,
                nozzle,
                missing_volume,
                totalizer,
            } => {
                warn!(fp, nozzle, %missing_volume, "totalizer shows fuel sold without a reported sale");
                let totalizer = Totalizer {
                    fp: *fp,
                    nozzle: *nozzle,
                    total: *totalizer,
                };
                let topic = self.topic("sale_gap");
                self.write(OutboxWrite::Append {
                    stream: "sale_gap",
                    topic,
                    body: json!({"t": t, "fp": fp, "nozzle": nozzle, "missing_volume": missing_volume}),
                    totalizer: Some(totalizer),
                })
                .await?;
                self.note_kept(Some(totalizer));
                return Ok(());
            }
            // Sales leave the station with their match, in `decide`; readings without a gap
            // are kept, never sent.
            DispenserEvent::SaleCompleted(_) | DispenserEvent::TotalizerRead { .. } => {
                return Ok(())
            }
        };
        self.append(stream, body).await
    }

    async fn append(&mut self, stream: &'static str, body: Value) -> Result<()> {
        let topic = self.topic(stream);
        self.write(OutboxWrite::Append {
            stream,
            topic,
            body,
            totalizer: None,
        })
        .await
    }

    pub async fn append_record(&self, stream: &'static str, body: Value) -> Result<outbox::Record> {
        let outbox = self.outbox.clone();
        let topic = self.topic(stream);
        // SQLite fsyncs: keep it off the async workers.
        let record = tokio::task::spawn_blocking(move || outbox.append(stream, &topic, &body))
            .await
            .context("outbox task")?
            .context("writing to the outbox")?;
        self.wake_uplink.notify_one();
        Ok(record)
    }
}

/// How long past a sale's revisit its record id is kept in case the correction comes late.
const REVISIT_SLACK_MS: i64 = 60_000;

/// The `sale_correction` body for the matcher's revisit of the sale recorded as `sale_id` (see
/// docs/mqtt.md).
pub fn matcher_correction_body(m: &MatchedSale, sale_id: uuid::Uuid, t: UnixMillis) -> Value {
    json!({
        "t": t,
        "sale_id": sale_id,
        "plate": m.verdict.plate,
        "plate_confidence": m.verdict.confidence,
        "match_reason": m.verdict.reason,
        "by": "matcher",
        "source": "matcher",
    })
}

/// The `sale` message body HQ receives (see docs/mqtt.md).
pub fn sale_body(m: &MatchedSale) -> Value {
    json!({
        "fp": m.sale.fp,
        "nozzle": m.sale.nozzle,
        "grade": m.sale.grade,
        "volume": m.sale.volume,
        "amount": m.sale.amount,
        "price": m.sale.price,
        "nozzle_out_t": m.fill_start,
        "nozzle_in_t": m.fill_end,
        "completed_t": m.sale.t,
        "plate": m.verdict.plate,
        "plate_confidence": m.verdict.confidence,
        "match_reason": m.verdict.reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sale(fp: u8, t: i64, volume: &str) -> Value {
        json!({"fp": fp, "nozzle": 1, "volume": volume, "amount": "80.00", "completed_t": t})
    }

    fn out(fp: u8, t: i64) -> Value {
        json!({"t": t, "fp": fp, "nozzle": 1, "state": "out"})
    }

    #[test]
    fn the_last_sale_per_fp_counts_until_a_nozzle_is_lifted_there() {
        let sales = [
            sale(1, 100, "10.00"),
            sale(1, 300, "11.00"),
            sale(2, 200, "12.00"),
            sale(3, 250, "13.00"),
        ];
        // FP 2: a nozzle lifted after its last sale (a new fill began: the pump was reset).
        // FP 3: only before.
        let nozzles = [
            out(2, 210),
            out(3, 240),
            json!({"t": 400, "fp": 1, "state": "in"}),
        ];
        let last = last_released_per_fp(&sales, &nozzles);
        assert_eq!(last.keys().copied().collect::<Vec<_>>(), vec![1, 3]);
        assert_eq!(last[&1].volume.to_string(), "11.00");
        assert_eq!(last[&3].volume.to_string(), "13.00");
    }
}
