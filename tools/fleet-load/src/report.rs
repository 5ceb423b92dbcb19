//! What the run measured: per second progress, the broker's queue, and the final table.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::stations::Fleet;
use crate::Cli;

pub struct Progress {
    file: Option<std::fs::File>,
    started: Instant,
    prefilled_threshold: u64,
    last_acked: u64,
    peak_ack_rate: u64,
    backlog_drained_s: Option<f64>,
}

impl Progress {
    pub fn new(cli: &Cli, started: Instant) -> Progress {
        let file = cli
            .progress
            .as_ref()
            .and_then(|p| std::fs::File::create(p).ok());
        Progress {
            file,
            started,
            // The backlog counts as drained when what waits is no more than about a second
            // of the steady rate (new records keep arriving meanwhile).
            prefilled_threshold: cli.rate.ceil() as u64,
            last_acked: 0,
            peak_ack_rate: 0,
            backlog_drained_s: None,
        }
    }

    pub fn record(
        &mut self,
        fleet: &Fleet,
        appends_done: bool,
        queue: &BrokerQueue,
    ) -> anyhow::Result<()> {
        let (depth, acked) = (fleet.depth(), fleet.acked());
        let elapsed = self.started.elapsed().as_secs_f64();
        self.peak_ack_rate = self.peak_ack_rate.max(acked - self.last_acked.min(acked));
        self.last_acked = acked;
        if self.backlog_drained_s.is_none() && depth <= self.prefilled_threshold {
            self.backlog_drained_s = Some(elapsed);
        }
        if let Some(f) = &mut self.file {
            let line = serde_json::to_string(&ProgressLine {
                t: elapsed,
                depth,
                acked,
                connected: fleet.connected(),
                appends_done,
                broker_queue: queue.now.load(Ordering::Relaxed),
            })?;
            writeln!(f, "{line}")?;
        }
        Ok(())
    }

    pub fn backlog_drained_s(&self) -> Option<f64> {
        self.backlog_drained_s
    }

    pub fn peak_ack_rate(&self) -> u64 {
        self.peak_ack_rate
    }
}

#[derive(serde::Serialize)]
struct ProgressLine {
    t: f64,
    depth: u64,
    acked: u64,
    connected: usize,
    appends_done: bool,
    broker_queue: u64,
}

/// The broker's count of stored messages (mosquitto's `$SYS/broker/store/messages/count`),
/// latest and highest seen.
#[derive(Default)]
pub struct BrokerQueue {
    now: AtomicU64,
    max: AtomicU64,
}

impl BrokerQueue {
    pub fn max(&self) -> Option<u64> {
        Some(self.max.load(Ordering::Relaxed)).filter(|m| *m > 0)
    }
}

pub fn watch_broker_queue(cli: &Cli) -> Arc<BrokerQueue> {
    let queue = Arc::new(BrokerQueue::default());
    let mut options = rumqttc::MqttOptions::new(
        format!("fleet-load-sys-{}", std::process::id()),
        cli.host.clone(),
        cli.port,
    );
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 16);
    let seen = queue.clone();
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => {
                    let _ = client
                        .subscribe("$SYS/broker/store/messages/count", rumqttc::QoS::AtMostOnce)
                        .await;
                }
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                    if let Some(n) = std::str::from_utf8(&p.payload)
                        .ok()
                        .and_then(|s| s.trim().parse::<u64>().ok())
                    {
                        seen.now.store(n, Ordering::Relaxed);
                        seen.max.fetch_max(n, Ordering::Relaxed);
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
            }
        }
    });
    queue
}

pub struct Report {
    pub stations: usize,
    pub prefilled: u64,
    pub appended: u64,
    pub backlog_drained_s: Option<f64>,
    pub peak_ack_rate: u64,
    pub acked: u64,
    pub reconnects: u64,
    pub broker_queue_max: Option<u64>,
    pub ran_s: f64,
}

pub struct WorkerFigures {
    pub worker: String,
    pub inserted: i64,
    pub mean_rate: f64,
    pub peak_rate: i64,
    pub duplicates: i64,
}

pub struct IngestFigures {
    pub workers: Vec<WorkerFigures>,
    /// From HQ's first stored record to the one that made as many as the backlog: (s, records/s).
    pub backlog_stored: Option<(f64, f64)>,
    /// Station commit -> HQ commit for records committed after HQ caught up with the backlog
    /// and before the steady phase ended: p50, p99 (ms), and how many records.
    pub lag_ms: (f64, f64, i64),
    pub resends_sent: i64,
    pub unrecoverable_ranges: i64,
}

pub async fn ingest_figures(
    url: &str,
    backlog: u64,
    steady_from_ms: i64,
    steady_to_ms: i64,
) -> anyhow::Result<IngestFigures> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut workers = Vec::new();
    for row in client
        .query(
            "SELECT e.worker, count(*)::bigint, min(e.received_ms), max(e.received_ms),
                    (SELECT max(n) FROM (SELECT count(*) AS n FROM events x WHERE x.worker = e.worker
                                         GROUP BY x.received_ms / 1000) s)::bigint,
                    coalesce((SELECT duplicates FROM worker_stats w WHERE w.worker = e.worker), 0)
             FROM events e GROUP BY e.worker ORDER BY e.worker",
            &[],
        )
        .await?
    {
        let (n, first, last): (i64, i64, i64) = (row.get(1), row.get(2), row.get(3));
        workers.push(WorkerFigures {
            worker: row.get(0),
            inserted: n,
            mean_rate: n as f64 / ((last - first).max(1000) as f64 / 1000.0),
            peak_rate: row.get(4),
            duplicates: row.get(5),
        });
    }
    let first: Option<i64> = client
        .query_one("SELECT min(received_ms) FROM events", &[])
        .await?
        .get(0);
    let caught_up: Option<i64> = client
        .query_opt(
            "SELECT received_ms FROM events ORDER BY received_ms OFFSET $1 LIMIT 1",
            &[&(i64::try_from(backlog).unwrap_or(i64::MAX) - 1).max(0)],
        )
        .await?
        .map(|row| row.get(0));
    let backlog_stored = match (first, caught_up) {
        (Some(first), Some(done)) if backlog > 0 => {
            let s = (done - first).max(1) as f64 / 1000.0;
            Some((s, backlog as f64 / s))
        }
        _ => None,
    };
    let lag_from = caught_up.unwrap_or(steady_from_ms).max(steady_from_ms);
    let lag = client
        .query_one(
            "SELECT coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY received_ms - t), 0),
                    coalesce(percentile_cont(0.99) WITHIN GROUP (ORDER BY received_ms - t), 0),
                    count(*)
             FROM events WHERE t > $1 AND t <= $2",
            &[&lag_from, &steady_to_ms],
        )
        .await?;
    let totals = client
        .query_one(
            "SELECT coalesce(sum(resends_sent), 0)::bigint,
                    (SELECT count(*) FROM unrecoverable)::bigint FROM worker_stats",
            &[],
        )
        .await?;
    Ok(IngestFigures {
        workers,
        backlog_stored,
        lag_ms: (lag.get(0), lag.get(1), lag.get(2)),
        resends_sent: totals.get(0),
        unrecoverable_ranges: totals.get(1),
    })
}

impl Report {
    pub fn print(&self, ingest: Option<&IngestFigures>) {
        let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
        println!("| stations | records (backlog + steady) | backlog acknowledged by the broker in (s) | peak acks (records/s) | acked | reconnects | broker queue max | run (s) |");
        println!("|---|---|---|---|---|---|---|---|");
        println!(
            "| {} | {} ({} + {}) | {} | {} | {} | {} | {} | {:.0} |",
            self.stations,
            self.prefilled + self.appended,
            self.prefilled,
            self.appended,
            opt(self.backlog_drained_s),
            self.peak_ack_rate,
            self.acked,
            self.reconnects,
            self.broker_queue_max
                .map_or("-".to_string(), |m| m.to_string()),
            self.ran_s
        );
        let Some(ingest) = ingest else { return };
        println!();
        println!("| worker | records stored | mean (records/s) | peak (records/s) | duplicates absorbed |");
        println!("|---|---|---|---|---|");
        for w in &ingest.workers {
            println!(
                "| {} | {} | {:.0} | {} | {} |",
                w.worker, w.inserted, w.mean_rate, w.peak_rate, w.duplicates
            );
        }
        println!();
        if let Some((s, rate)) = ingest.backlog_stored {
            println!(
                "backlog of {} stored at HQ in {s:.1} s: {rate:.0} records/s over all workers",
                self.prefilled
            );
        }
        println!(
            "lag (station commit -> HQ commit, steady records after HQ caught up, n={}): p50 {:.0} ms, p99 {:.0} ms; resends sent {}; unrecoverable ranges {}",
            ingest.lag_ms.2, ingest.lag_ms.0, ingest.lag_ms.1, ingest.resends_sent, ingest.unrecoverable_ranges
        );
    }
}
