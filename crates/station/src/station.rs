//! The station loop: dispenser events and plate reads in, matched sales out to the outbox.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use analytics::zone_check::FillEvidence;
use forecourt_events::{now_millis, DispenserEvent, FramePlates, KeptSales, UnixMillis};
use matcher::{Layout, MatchedSale, Matcher, MatcherConfig};
use outbox::{Outbox, Totalizer};
use tokio::sync::{mpsc, watch, Notify};
use tracing::{info, warn};
use wire::{
    Event, MatcherCorrection, NozzleBody, NozzleState, PumpBody, PumpState, SaleBody,
    SaleCorrection, SaleGapBody, Stream,
};

use crate::crops::{PlateCrop, PlateCrops};
use crate::earlier_run::EarlierRun;
use crate::evidence::{CropRole, EvidenceStore};
use crate::plate_notes::{NotesApplied, NotesChange, PlateNotes};
use crate::pump_board::PumpBoard;
use crate::recording::Recording;
pub use crate::recording::TRACE_REORDER_MS;
use crate::writer::{held_key, sale_totalizer, OutboxWrite, OutboxWriter};
use crate::{ConfigSource, StationError};

/// A sale as the matcher's verdicts name it: fuelling point, nozzle, when the pump reported it.
type SaleKey = (u8, u8, UnixMillis);

/// How long before a fill a crop of its car may have been taken (it queued, then moved up).
const EVIDENCE_LOOKBACK_MS: i64 = 10 * 60_000;

/// How long past a sale's revisit its record id is kept in case the correction comes late.
const REVISIT_SLACK_MS: i64 = 60_000;

/// How often the hours the analytics are counting are saved for a restart to take over (and at
/// a stop): a crash loses at most this much of an hour's figures, never its summary.
const SAVE_RUNNING_HOURS: Duration = Duration::from_secs(10);

/// The outbox state key of the analytics' running hours.
pub(crate) const RUNNING_HOURS_KEY: &str = "analytics.running_hours";

/// The outbox state key of HQ's notes on plates.
pub(crate) const PLATE_NOTES_KEY: &str = "station.plate_notes";

/// How often the station decides sales whose grace period is over, retries refused writes and
/// says it is alive.
const TICK: Duration = Duration::from_millis(250);

/// What a station is built from.
pub struct StationParts {
    pub layout: Layout,
    pub matcher: MatcherConfig,
    pub outbox: Outbox,
    /// Woken after every durable write.
    pub wake_uplink: Arc<Notify>,
    /// `<prefix>/<station_id>`: events go to `<topic_root>/events/<stream>`.
    pub topic_root: String,
    /// Sales made durable, per fuelling point: the DART master resets a pump only after.
    pub kept_sales: Arc<KeptSales>,
    /// The totalizers the outbox keeps (`Outbox::totalizers`).
    pub kept_totalizers: Vec<Totalizer>,
    /// Where HQ's trace recordings go.
    pub trace_dir: PathBuf,
    /// Record a trace of the whole run here (the config's `trace_file`).
    pub trace_file: Option<PathBuf>,
    /// The configuration, for reloads; `None`: nothing to reload.
    pub config: Option<Box<dyn ConfigSource>>,
    /// Each sale's zone evidence as it is judged (for `commission`); `None`: not wanted.
    pub fill_evidence: Option<mpsc::Sender<FillEvidence>>,
    /// Every record as it is decided, for the station console; `None`: not wanted.
    pub live: Option<tokio::sync::broadcast::Sender<crate::live::LiveRecord>>,
    /// Every frame with plate reads as the station takes it, for the installer's page;
    /// `None`: not wanted.
    pub live_reads: Option<tokio::sync::broadcast::Sender<Arc<FramePlates>>>,
    /// The plate pictures the reader keeps (off without a console).
    pub crops: PlateCrops,
    /// Where each sale's crops are kept for the console; `None`: not wanted.
    pub evidence: Option<EvidenceStore>,
}

pub struct Station {
    pub(crate) matcher: Matcher,
    /// Arrivals, visits and hourly figures, from the same events as the matcher.
    pub(crate) analytics: analytics::Analytics,
    pub(crate) writer: OutboxWriter,
    pub(crate) earlier_run: EarlierRun,
    /// Sales sent with their first verdict and still waiting for the matcher's revisit: their
    /// record ids, to name in a correction. Forgotten after the revisit.
    awaiting_revisit: BTreeMap<SaleKey, uuid::Uuid>,
    pub(crate) recording: Recording,
    pub(crate) config: Option<Box<dyn ConfigSource>>,
    topic_root: String,
    pumps: Arc<PumpBoard>,
    /// Where each sale's zone evidence goes as it is judged (`commission`); `None`: nowhere.
    fill_evidence: Option<mpsc::Sender<FillEvidence>>,
    /// Where on each camera's frames the plate reader looks (the zones' surroundings).
    pub(crate) focus: crate::focus::FocusAreas,
    /// HQ's notes on plates, and where the console reads them.
    pub(crate) plate_notes: watch::Sender<Arc<PlateNotes>>,
    /// Where frames with reads go for the installer's page (`StationParts::live_reads`).
    live_reads: Option<tokio::sync::broadcast::Sender<Arc<FramePlates>>>,
    /// The closed hours' summaries, for the console's analytics page.
    pub(crate) closed_hours: watch::Sender<Arc<Vec<wire::HourSummary>>>,
    crops: PlateCrops,
    evidence: Option<EvidenceStore>,
}

impl Station {
    pub fn new(parts: StationParts) -> Result<Station, StationError> {
        let focus = crate::focus::FocusAreas::from_layout(&parts.layout);
        let mut analytics = analytics::Analytics::new(
            parts.layout.clone(),
            analytics::AnalyticsConfig::default(),
            forecourt_events::is_valid_plate,
        );
        analytics.counting_since(now_millis());
        Ok(Station {
            matcher: Matcher::new(
                parts.layout.clone(),
                parts.matcher,
                forecourt_events::is_valid_plate,
            ),
            analytics,
            writer: OutboxWriter::new(
                parts.outbox,
                parts.wake_uplink,
                parts.kept_sales,
                &parts.kept_totalizers,
            )
            .with_live(parts.live),
            earlier_run: EarlierRun::default(),
            awaiting_revisit: BTreeMap::new(),
            recording: Recording::new(parts.trace_dir, parts.layout, parts.trace_file.as_deref())?,
            config: parts.config,
            topic_root: parts.topic_root,
            pumps: Arc::new(PumpBoard::default()),
            fill_evidence: parts.fill_evidence,
            focus,
            plate_notes: watch::Sender::new(Arc::default()),
            live_reads: parts.live_reads,
            closed_hours: watch::Sender::new(Arc::default()),
            crops: parts.crops,
            evidence: parts.evidence,
        })
    }

    /// The closed hours' summaries the station holds (7 days), as they close, for the console.
    pub fn closed_hours(&self) -> watch::Receiver<Arc<Vec<wire::HourSummary>>> {
        self.closed_hours.subscribe()
    }

    /// Passes the closed hours on to whoever watches them.
    pub(crate) fn show_closed_hours(&self) {
        let hours = self.analytics.closed_hours().cloned().collect();
        self.closed_hours.send_replace(Arc::new(hours));
    }

    /// HQ's notes on plates as they change, for the console.
    pub fn plate_notes(&self) -> watch::Receiver<Arc<PlateNotes>> {
        self.plate_notes.subscribe()
    }

    /// Applies HQ's `plate_notes` command: kept in the outbox's state before anyone sees it, so
    /// a failed save changes nothing (HQ may send it again).
    pub(crate) async fn change_plate_notes(
        &mut self,
        change: NotesChange,
        now: UnixMillis,
    ) -> Result<NotesApplied, crate::CommandFailed> {
        let mut notes = PlateNotes::clone(&self.plate_notes.borrow());
        let applied = notes.apply(change, now)?;
        let body = serde_json::to_value(&notes)?;
        let outbox = self.writer.outbox().clone();
        tokio::task::spawn_blocking(move || outbox.keep_state(PLATE_NOTES_KEY, &body))
            .await
            .map_err(StationError::from)?
            .map_err(StationError::outbox("keeping the plate notes"))?;
        info!(
            set = applied.set,
            removed = applied.removed,
            held = applied.held,
            "HQ's plate notes changed"
        );
        self.plate_notes.send_replace(Arc::new(notes));
        Ok(applied)
    }

    /// Which part of each camera's frames the plate reader reads: around the zones, kept up to
    /// date when the zones are drawn anew.
    pub fn focus_areas(&self) -> crate::focus::FocusAreas {
        self.focus.clone()
    }

    /// Outbox writes the disk refused, waiting in memory, for the health report.
    pub fn unwritten_count(&self) -> Arc<AtomicUsize> {
        self.writer.unwritten_count()
    }

    /// Each fuelling point as its source last told it, for the health report.
    pub fn pump_board(&self) -> Arc<PumpBoard> {
        self.pumps.clone()
    }

    /// Runs until `shutdown`, then decides every sale still in its grace period with what was
    /// seen and flushes it to the outbox. `alive` is called on every tick.
    pub async fn run(
        mut self,
        mut frames: mpsc::Receiver<FramePlates>,
        mut pumps: mpsc::Receiver<DispenserEvent>,
        mut commands: mpsc::Receiver<uplink::CommandRequest>,
        mut shutdown: watch::Receiver<bool>,
        mut alive: impl FnMut(),
    ) -> Result<(), StationError> {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut save_hours = tokio::time::interval(SAVE_RUNNING_HOURS);
        save_hours.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                Some(f) = frames.recv() => self.on_frame(&f).await?,
                Some(e) = pumps.recv() => self.on_dispenser(e).await?,
                Some(request) = commands.recv() => self.handle_command(request).await,
                _ = tick.tick() => {
                    let now = now_millis();
                    self.writer.retry().await?;
                    self.decide(now).await?;
                    self.recording.tick(now);
                    alive();
                }
                _ = save_hours.tick() => self.save_running_hours().await,
                _ = shutdown.changed() => break,
            }
        }
        // Decide what is still in its grace period now, with what was seen: a sale must not be
        // lost because the agent was asked to stop.
        self.decide(UnixMillis::MAX).await?;
        self.save_running_hours().await;
        self.writer.retry().await?;
        if self.writer.unwritten() > 0 {
            tracing::error!(
                writes = self.writer.unwritten(),
                "stopping with outbox writes the disk would not take: they are lost"
            );
        }
        self.recording.stop();
        Ok(())
    }

    async fn on_frame(&mut self, f: &FramePlates) -> Result<(), StationError> {
        if let Some(reads) = self.live_reads.as_ref().filter(|_| !f.plates.is_empty()) {
            // Nobody watching, or a page behind: its loss, never the station's.
            let _ = reads.send(Arc::new(f.clone()));
        }
        self.recording.record(|t| t.write_frame(f));
        self.matcher.observe_frame(f);
        self.analytics.observe_frame(f);
        // At once: HQ wants to know a car arrived while it is still at the pump.
        self.publish_analytics(now_millis()).await
    }

    async fn on_dispenser(&mut self, e: DispenserEvent) -> Result<(), StationError> {
        if let DispenserEvent::TotalizerRead {
            fp, nozzle, total, ..
        } = e
        {
            return self
                .writer
                .keep_totalizer(Totalizer { fp, nozzle, total })
                .await;
        }
        if let DispenserEvent::SaleCompleted(sale) = &e {
            if self.earlier_run.reports_again(sale) {
                if let Some(t) = sale_totalizer(sale) {
                    self.writer.keep_totalizer(t).await?;
                }
                // Kept before the restart: the pump may be reset.
                self.writer.kept_sales().keep(sale.fp);
                return Ok(());
            }
            // Durable before anything else happens to it.
            self.writer.hold(sale).await?;
            self.recording
                .record(|t| t.write_sale(sale, &held_key(sale)));
        } else {
            self.recording.record(|t| t.write_dispenser(&e));
        }
        self.pumps.observe(&e);
        self.matcher.observe_dispenser(&e);
        self.analytics.observe_dispenser(&e);
        self.publish_dispenser_event(&e).await
    }

    async fn decide(&mut self, now: UnixMillis) -> Result<(), StationError> {
        for m in self.matcher.poll(now) {
            if m.correction {
                self.correct(&m).await?;
                continue;
            }
            if let Some(evidence) = self.analytics.observe_matched(&m) {
                self.pumps.set_zone_check(self.analytics.zone_report());
                if let Some(tx) = &self.fill_evidence {
                    // A watcher that went away (or lags) does not hold up the station.
                    let _ = tx.try_send(evidence);
                }
            }
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
            let body = Event::Sale(sale_body(&m)).to_body()?;
            self.writer
                .write(OutboxWrite::Release {
                    key: held_key(&m.sale),
                    id,
                    stream: Stream::Sale,
                    topic: self.topic(Stream::Sale),
                    body,
                })
                .await?;
            self.awaiting_revisit
                .insert((m.sale.fp, m.sale.nozzle, m.sale.t), id);
            self.keep_evidence(&m, id, now.min(now_millis()));
        }
        // A sale is revisited once, `revisit_ms` after it ended: older entries can only be sales
        // whose revisit agreed (or a matcher reconfigured since).
        let config = self.matcher.config();
        let horizon = now.saturating_sub(config.revisit_ms.max(config.grace_ms) + REVISIT_SLACK_MS);
        self.awaiting_revisit.retain(|(_, _, t), _| *t >= horizon);
        // Not `now`: at shutdown it is the end of time, which would close the unfinished hour.
        self.publish_analytics(now.min(now_millis())).await
    }

    /// Keeps the crops behind `m`'s verdict (its plate, or the best-supported one when it gave
    /// none, and the runner-up) as sale `id`'s evidence, read on the fuelling point's cameras
    /// from [`EVIDENCE_LOOKBACK_MS`] before the fill to `now`. Written off the station loop: a
    /// slow or full disk costs crops, never a sale's time.
    fn keep_evidence(&self, m: &MatchedSale, id: uuid::Uuid, now: UnixMillis) {
        let Some(store) = self.evidence.clone() else {
            return;
        };
        let plate = m
            .verdict
            .plate
            .clone()
            .or_else(|| m.candidate.as_ref().map(|c| c.plate.clone()));
        let cameras: Vec<&str> = self.matcher.cameras_of(m.sale.fp).collect();
        let from = m.fill_start.unwrap_or(m.fill_end) - EVIDENCE_LOOKBACK_MS;
        let crops: Vec<(CropRole, PlateCrop)> = [
            (CropRole::Plate, plate),
            (CropRole::RunnerUp, m.runner_up.clone()),
        ]
        .into_iter()
        .filter_map(|(role, text)| {
            let crop = self
                .crops
                .best(&text?, |c| cameras.contains(&c), from, now)?;
            Some((role, crop))
        })
        .collect();
        if crops.is_empty() {
            return;
        }
        tokio::task::spawn_blocking(move || {
            for (role, crop) in crops {
                if let Err(e) = store.keep(id, role, &crop.jpeg, now) {
                    warn!(sale = %id, error = %e, "a sale's plate crop was not kept");
                }
            }
        });
    }

    /// Publishes the matcher's later verdict on a sale already sent, as a `sale_correction` that
    /// names the sale's record.
    async fn correct(&mut self, m: &MatchedSale) -> Result<(), StationError> {
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
        let correction = matcher_correction(m, id, now_millis());
        self.append(Event::SaleCorrection(correction)).await
    }

    async fn publish_analytics(&mut self, now: UnixMillis) -> Result<(), StationError> {
        for e in self.analytics.poll(now) {
            if let analytics::AnalyticsEvent::Hourly(h) = &e {
                // Held by the analytics by now.
                self.show_closed_hours();
                let (sales, lifts) = h.fps.iter().fold((0, 0), |(s, l), f| {
                    (s + f.metrics.sales, l + f.metrics.lifts)
                });
                info!(
                    hour = h.hour,
                    sales,
                    lifts,
                    counted_from = h.counted_from,
                    "hourly summary queued for HQ"
                );
            }
            self.append(e.into_event()).await?;
        }
        Ok(())
    }

    /// Saves the hours the analytics are counting (see [`SAVE_RUNNING_HOURS`]). A failed save
    /// is logged, not fatal: the next one may work, and only figures are at stake.
    async fn save_running_hours(&mut self) {
        let body = match serde_json::to_value(self.analytics.running_hours()) {
            Ok(body) => body,
            Err(e) => return warn!(error = %e, "the running hours could not be encoded"),
        };
        let outbox = self.writer.outbox().clone();
        match tokio::task::spawn_blocking(move || outbox.keep_state(RUNNING_HOURS_KEY, &body)).await
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!(error = %e, "the running hours could not be saved; retried"),
            Err(e) => warn!(error = %e, "saving the running hours failed"),
        }
    }

    pub(crate) fn topic(&self, stream: Stream) -> String {
        format!("{}/events/{stream}", self.topic_root)
    }

    async fn publish_dispenser_event(&mut self, e: &DispenserEvent) -> Result<(), StationError> {
        let nozzle = |t: UnixMillis, fp: u8, nozzle: u8, state| {
            Event::Nozzle(NozzleBody {
                t,
                fp,
                nozzle,
                state,
            })
        };
        let pump = |t: UnixMillis, fp: u8, state| Event::Pump(PumpBody { t, fp, state });
        let event = match *e {
            DispenserEvent::NozzleOut { t, fp, nozzle: n } => nozzle(t, fp, n, NozzleState::Out),
            DispenserEvent::NozzleIn { t, fp, nozzle: n } => nozzle(t, fp, n, NozzleState::In),
            DispenserEvent::PumpOnline { t, fp } => {
                info!(fp, "pump online");
                pump(t, fp, PumpState::Online)
            }
            DispenserEvent::PumpOffline { t, fp } => {
                warn!(fp, "pump offline");
                pump(t, fp, PumpState::Offline)
            }
            DispenserEvent::SaleGap {
                t,
                fp,
                nozzle,
                missing_volume,
                totalizer,
            } => {
                warn!(fp, nozzle, %missing_volume, "totalizer shows fuel sold without a reported sale");
                let gap = Event::SaleGap(SaleGapBody {
                    t,
                    fp,
                    nozzle,
                    missing_volume,
                });
                let totalizer = Totalizer {
                    fp,
                    nozzle,
                    total: totalizer,
                };
                let topic = self.topic(Stream::SaleGap);
                return self
                    .writer
                    .append_counted(Stream::SaleGap, topic, gap.to_body()?, totalizer)
                    .await;
            }
            // Sales leave the station with their match, in `decide`; readings without a gap
            // are kept, never sent.
            DispenserEvent::SaleCompleted(_) | DispenserEvent::TotalizerRead { .. } => {
                return Ok(())
            }
        };
        self.append(event).await
    }

    async fn append(&mut self, event: Event) -> Result<(), StationError> {
        let stream = event.stream();
        let write = OutboxWrite::Append {
            stream,
            topic: self.topic(stream),
            body: event.to_body()?,
            totalizer: None,
        };
        self.writer.write(write).await
    }
}

/// The matcher's revisit of the sale recorded as `sale_id`, as a `sale_correction`.
pub fn matcher_correction(m: &MatchedSale, sale_id: uuid::Uuid, t: UnixMillis) -> SaleCorrection {
    SaleCorrection::Matcher(MatcherCorrection {
        t,
        sale_id,
        plate: m.verdict.plate.clone(),
        plate_confidence: m.verdict.confidence,
        match_reason: m.verdict.reason.clone(),
        by: MatcherCorrection::BY.to_owned(),
    })
}

/// The `sale` message HQ receives.
pub fn sale_body(m: &MatchedSale) -> SaleBody {
    SaleBody {
        fp: m.sale.fp,
        nozzle: m.sale.nozzle,
        grade: m.sale.grade.clone(),
        volume: m.sale.volume,
        amount: m.sale.amount,
        price: m.sale.price,
        nozzle_out_t: m.fill_start,
        nozzle_in_t: m.fill_end,
        completed_t: m.sale.t,
        plate: m.verdict.plate.clone(),
        plate_confidence: m.verdict.confidence,
        match_reason: m.verdict.reason.clone(),
        source_key: m.sale.source_key.clone(),
    }
}
