//! The station loop: dispenser events and plate reads in, matched sales out to the outbox.
//! Everything that leaves the station is committed to the outbox before the uplink may publish it.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use forecourt_events::{now_millis, DispenserEvent, FramePlates, Sale, UnixMillis};
use matcher::{MatchedSale, Matcher};
use outbox::Outbox;
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch, Notify};
use tracing::{info, warn};

pub struct Station {
    pub matcher: Matcher,
    pub outbox: Outbox,
    pub wake_uplink: Arc<Notify>,
    /// `<prefix>/<station_id>`
    pub topic_root: String,
}

/// The outbox key under which a sale is held while it waits for its match. A fuelling point
/// completes at most one sale per millisecond, so this is unique.
fn held_key(sale: &Sale) -> String {
    format!("sale:{}:{}:{}", sale.fp, sale.t, sale.nozzle)
}

impl Station {
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
                        .observe_dispenser(&DispenserEvent::SaleCompleted(sale));
                    restored += 1;
                }
                Ok(_) => {}
                Err(e) => warn!(key, error = %e, "held item is not a sale; left in place"),
            }
        }
        Ok(restored)
    }

    pub async fn run(
        mut self,
        mut frames: mpsc::Receiver<FramePlates>,
        mut pumps: mpsc::Receiver<DispenserEvent>,
        mut shutdown: watch::Receiver<bool>,
        mut alive: impl FnMut(),
    ) -> Result<()> {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                Some(f) = frames.recv() => self.matcher.observe_frame(&f),
                Some(e) = pumps.recv() => {
                    if let DispenserEvent::SaleCompleted(sale) = &e {
                        // Durable before anything else happens to it.
                        self.hold(sale).await?;
                    }
                    self.matcher.observe_dispenser(&e);
                    self.publish_dispenser_event(&e).await?;
                }
                _ = tick.tick() => {
                    self.decide(now_millis()).await?;
                    alive();
                }
                _ = shutdown.changed() => break,
            }
        }
        // Decide what is still in its grace period now, with what was seen: a sale must not be
        // lost because the agent was asked to stop.
        self.decide(UnixMillis::MAX).await
    }

    async fn decide(&mut self, now: UnixMillis) -> Result<()> {
        for m in self.matcher.poll(now) {
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
            let (outbox, key) = (self.outbox.clone(), held_key(&m.sale));
            let topic = self.topic("sale");
            let body = sale_body(&m);
            tokio::task::spawn_blocking(move || outbox.release(&key, "sale", &topic, &body))
                .await
                .context("outbox task")?
                .context("writing a sale to the outbox")?;
            self.wake_uplink.notify_one();
        }
        Ok(())
    }

    async fn hold(&self, sale: &Sale) -> Result<()> {
        let (outbox, key) = (self.outbox.clone(), held_key(sale));
        let body = serde_json::to_value(sale)?;
        tokio::task::spawn_blocking(move || outbox.hold(&key, &body))
            .await
            .context("outbox task")?
            .context("holding a sale in the outbox")
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
            } => {
                warn!(fp, nozzle, %missing_volume, "totalizer shows fuel sold without a reported sale");
                (
                    "sale_gap",
                    json!({"t": t, "fp": fp, "nozzle": nozzle, "missing_volume": missing_volume}),
                )
            }
            // Sales leave the station with their match, in `decide`.
            DispenserEvent::SaleCompleted(_) => return Ok(()),
        };
        self.append(stream, body).await
    }

    async fn append(&self, stream: &'static str, body: Value) -> Result<()> {
        let outbox = self.outbox.clone();
        let topic = self.topic(stream);
        // SQLite fsyncs: keep it off the async workers.
        tokio::task::spawn_blocking(move || outbox.append(stream, &topic, &body))
            .await
            .context("outbox task")?
            .context("writing to the outbox")?;
        self.wake_uplink.notify_one();
        Ok(())
    }
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
