//! Writes to the outbox. When the outbox refuses one (disk full, I/O error) it is kept in memory
//! and retried in order on every tick: the station goes on polling pumps and matching, and
//! nothing is dropped. A held sale's pump may be reset only once its write is durable.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use forecourt_events::{FpNumber, KeptSales, Sale};
use outbox::{Outbox, OutboxError, Totalizer};
use serde_json::Value;
use tokio::sync::{broadcast, Notify};
use tracing::info;
use wire::Stream;

use crate::live::LiveRecord;
use crate::StationError;

/// How many failed outbox writes the station keeps in memory while the disk is full.
const MAX_UNWRITTEN: usize = 100_000;

/// A write to the outbox, kept to retry when the outbox refused it.
#[derive(Debug, Clone)]
pub(crate) enum OutboxWrite {
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
        stream: Stream,
        topic: String,
        body: Value,
    },
    Append {
        stream: Stream,
        topic: String,
        body: Value,
        totalizer: Option<Totalizer>,
    },
    KeepTotalizer(Totalizer),
}

impl OutboxWrite {
    fn apply(&self, outbox: &Outbox) -> Result<(), OutboxError> {
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
            } => outbox
                .release_as(key, *id, stream.name(), topic, body)
                .map(|_| ()),
            OutboxWrite::Append {
                stream,
                topic,
                body,
                totalizer,
            } => outbox
                .append_counted(stream.name(), topic, body, totalizer.as_ref())
                .map(|_| ()),
            OutboxWrite::KeepTotalizer(totalizer) => outbox.keep_totalizer(totalizer),
        }
    }
}

/// The outbox key under which a sale is held while it waits for its match. A fuelling point
/// completes at most one sale per millisecond, so this is unique.
pub(crate) fn held_key(sale: &Sale) -> String {
    format!("sale:{}:{}:{}", sale.fp, sale.t, sale.nozzle)
}

/// The totalizer a sale counts in, to keep with it.
pub(crate) fn sale_totalizer(sale: &Sale) -> Option<Totalizer> {
    Some(Totalizer {
        fp: sale.fp,
        nozzle: sale.nozzle,
        total: sale.totalizer?,
    })
}

pub(crate) struct OutboxWriter {
    outbox: Outbox,
    wake_uplink: Arc<Notify>,
    /// Sales made durable, per fuelling point: the DART master resets a pump only after.
    kept_sales: Arc<KeptSales>,
    /// Per (fuelling point, nozzle), the totalizer last kept in the outbox: a reading that
    /// only repeats it is not written again.
    kept_totalizers: BTreeMap<(u8, u8), u64>,
    /// Writes that failed, retried in order on every tick. Kept in memory up to
    /// `MAX_UNWRITTEN`; past that the station gives up and the agent exits.
    unwritten: VecDeque<OutboxWrite>,
    /// `unwritten.len()`, for the health report.
    unwritten_count: Arc<AtomicUsize>,
    /// Where every record also goes as it is decided (the station console); `None`: nowhere.
    live: Option<broadcast::Sender<LiveRecord>>,
}

impl OutboxWriter {
    pub fn new(
        outbox: Outbox,
        wake_uplink: Arc<Notify>,
        kept_sales: Arc<KeptSales>,
        kept_totalizers: &[Totalizer],
    ) -> OutboxWriter {
        OutboxWriter {
            outbox,
            wake_uplink,
            kept_sales,
            kept_totalizers: kept_totalizers
                .iter()
                .map(|t| ((t.fp, t.nozzle), t.total))
                .collect(),
            unwritten: VecDeque::new(),
            unwritten_count: Arc::new(AtomicUsize::new(0)),
            live: None,
        }
    }

    /// Also hands every record to `live` as it is decided, whether or not the disk takes it at
    /// once: the station's own screens need not wait for the disk or the uplink.
    pub fn with_live(mut self, live: Option<broadcast::Sender<LiveRecord>>) -> OutboxWriter {
        self.live = live;
        self
    }

    /// Hands a record to the live feed, if anyone listens (a full or absent feed loses
    /// nothing: the outbox has the record).
    fn tell_live(&self, stream: Stream, body: &Value, id: Option<uuid::Uuid>) {
        if let Some(live) = &self.live {
            let _ = live.send(LiveRecord {
                stream,
                body: body.clone(),
                decided_t: forecourt_events::now_millis(),
                id,
            });
        }
    }

    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    pub fn unwritten_count(&self) -> Arc<AtomicUsize> {
        self.unwritten_count.clone()
    }

    pub fn kept_sales(&self) -> &KeptSales {
        &self.kept_sales
    }

    pub fn unwritten(&self) -> usize {
        self.unwritten.len()
    }

    /// Holds a sale until its match is sent: durable before anything else happens to it.
    pub async fn hold(&mut self, sale: &Sale) -> Result<(), StationError> {
        let body = serde_json::to_value(sale).map_err(StationError::HeldSale)?;
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
    pub async fn keep_totalizer(&mut self, t: Totalizer) -> Result<(), StationError> {
        if self.kept_totalizers.get(&(t.fp, t.nozzle)) == Some(&t.total) {
            return Ok(());
        }
        self.write(OutboxWrite::KeepTotalizer(t)).await?;
        self.note_kept(Some(t));
        Ok(())
    }

    /// A record that accounts for fuel up to `totalizer` (a sale gap).
    pub async fn append_counted(
        &mut self,
        stream: Stream,
        topic: String,
        body: Value,
        totalizer: Totalizer,
    ) -> Result<(), StationError> {
        self.write(OutboxWrite::Append {
            stream,
            topic,
            body,
            totalizer: Some(totalizer),
        })
        .await?;
        self.note_kept(Some(totalizer));
        Ok(())
    }

    fn note_kept(&mut self, t: Option<Totalizer>) {
        if let Some(t) = t {
            self.kept_totalizers.insert((t.fp, t.nozzle), t.total);
        }
    }

    /// Writes to the outbox, or, when it refuses (disk full), keeps the write in memory to retry
    /// in order.
    pub async fn write(&mut self, write: OutboxWrite) -> Result<(), StationError> {
        match &write {
            OutboxWrite::Release {
                stream, body, id, ..
            } => self.tell_live(*stream, body, Some(*id)),
            OutboxWrite::Append { stream, body, .. } => self.tell_live(*stream, body, None),
            OutboxWrite::Hold { .. } | OutboxWrite::KeepTotalizer(_) => {}
        }
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

    fn keep_unwritten(&mut self, write: OutboxWrite) -> Result<(), StationError> {
        if self.unwritten.len() >= MAX_UNWRITTEN {
            return Err(StationError::OutboxRefusing {
                writes: self.unwritten.len(),
            });
        }
        self.unwritten.push_back(write);
        self.unwritten_count
            .store(self.unwritten.len(), Ordering::Relaxed);
        Ok(())
    }

    /// Retries the writes the outbox refused, oldest first, until one fails again.
    pub async fn retry(&mut self) -> Result<(), StationError> {
        while let Some(write) = self.unwritten.front().cloned() {
            match self.apply(write.clone()).await? {
                Ok(()) => {
                    self.unwritten.pop_front();
                    self.unwritten_count
                        .store(self.unwritten.len(), Ordering::Relaxed);
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
    async fn apply(
        &self,
        write: OutboxWrite,
    ) -> Result<Result<(), OutboxError>, tokio::task::JoinError> {
        let outbox = self.outbox.clone();
        tokio::task::spawn_blocking(move || write.apply(&outbox)).await
    }

    /// Appends at once, bypassing the retry queue (a command's record, whose id HQ gets in the
    /// reply): fails rather than waits when the outbox refuses.
    pub async fn append_now(
        &self,
        stream: Stream,
        topic: String,
        body: Value,
    ) -> Result<outbox::Record, StationError> {
        self.tell_live(stream, &body, None);
        let outbox = self.outbox.clone();
        let record =
            tokio::task::spawn_blocking(move || outbox.append(stream.name(), &topic, &body))
                .await?
                .map_err(crate::StationError::outbox("writing to the outbox"))?;
        self.wake_uplink.notify_one();
        Ok(record)
    }
}
