//! A periodic health line in the log: cameras, plate reader, outbox and uplink at a glance.
//! (The MQTT health topic for HQ builds on the same counters.)

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use camera::FrameSlot;
use outbox::Outbox;
use tokio::sync::watch;
use tracing::{info, warn};
use uplink::{HealthPublisher, HealthSnapshot, UplinkHealth};
use wire::{AgentHealth, CameraHealth, PlateReaderHealth, SourceHealth};

use crate::reader::ReaderStats;

/// What the health report reads.
pub struct HealthSources {
    /// Conditions an operator must act on, repeated in every report.
    pub alarms: Vec<String>,
    pub cameras: Vec<(String, Arc<FrameSlot>)>,
    pub vision: Arc<ReaderStats>,
    pub uplink: Arc<UplinkHealth>,
    pub publisher: HealthPublisher,
    pub outbox: Outbox,
    /// Outbox writes the disk refused, waiting in memory (see `station::Station::unwritten_count`).
    pub unwritten: Arc<std::sync::atomic::AtomicUsize>,
    /// The fuelling points as their sources told them (`station::Station::pump_board`), and the
    /// ones the config's sources list.
    pub pumps: Arc<crate::PumpBoard>,
    pub configured_fps: Vec<forecourt_events::FpNumber>,
    /// Each sale source: its name, its fuelling points, its link as the driver counts it.
    pub sources: Vec<SaleSource>,
    /// Where each report also goes for the station console; `None`: nowhere.
    pub local: Option<watch::Sender<Option<LocalHealth>>>,
    /// The folder whose file system's free space the local report gives (the outbox's).
    pub data_dir: std::path::PathBuf,
}

/// A health report as the station's own console shows it: the agent's part of HQ's report,
/// with the outbox, the uplink and the disk beside it.
#[derive(Debug, Clone)]
pub struct LocalHealth {
    pub t: forecourt_events::UnixMillis,
    pub agent: AgentHealth,
    pub outbox_depth: Option<u64>,
    pub outbox_oldest_age_s: Option<i64>,
    pub uplink: HealthSnapshot,
    /// Free space on the data folder's file system, bytes; `None` when it cannot be read.
    pub disk_free_bytes: Option<u64>,
}

/// Free bytes (for an unprivileged user) on the file system that holds `path`.
fn disk_free_bytes(path: &std::path::Path) -> Option<u64> {
    let stat = rustix::fs::statvfs(path).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// A sale source as the health report shows it.
pub struct SaleSource {
    pub name: String,
    pub fps: Vec<forecourt_events::FpNumber>,
    pub link: Arc<forecourt_events::LinkStats>,
}

pub async fn log_health(
    every: Duration,
    sources: HealthSources,
    mut shutdown: watch::Receiver<bool>,
) {
    let HealthSources {
        alarms,
        cameras,
        vision,
        uplink,
        publisher,
        outbox,
        unwritten,
        pumps,
        configured_fps,
        sources,
        local,
        data_dir,
    } = sources;
    // The first report at once: alarms raised at start (a quarantined outbox) reach HQ with
    // the first health message, not a period later.
    let mut tick = tokio::time::interval(every);
    // Per camera, its frames decoded, read and passed over as still at the last report.
    let mut last_counts: Vec<[u64; 3]> = vec![[0; 3]; cameras.len()];
    let mut last_report = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let since_last = last_report.elapsed().as_secs_f64().max(1e-3);
        last_report = tokio::time::Instant::now();
        let mut camera_reports = Vec::new();
        for (i, (name, slot)) in cameras.iter().enumerate() {
            let s = &slot.stats;
            let counts = [
                s.frames.load(Ordering::Relaxed) + s.not_converted.load(Ordering::Relaxed),
                s.read.load(Ordering::Relaxed),
                s.still.load(Ordering::Relaxed),
            ];
            let rate = |k: usize| counts[k].saturating_sub(last_counts[i][k]) as f64 / since_last;
            let (fps, read_fps, still_fps) = (rate(0), rate(1), rate(2));
            let (dropped, reconnects, connected) = (
                s.dropped.load(Ordering::Relaxed),
                s.reconnects.load(Ordering::Relaxed),
                s.connected.load(Ordering::Relaxed),
            );
            info!(camera = %name, fps, read_fps, still_fps, dropped, reconnects, connected, "health: camera");
            camera_reports.push(CameraHealth {
                name: name.clone(),
                fps,
                read_fps,
                still_fps,
                dropped,
                reconnects,
                connected,
            });
            last_counts[i] = counts;
        }
        let read_ms = vision.read_us.load(Ordering::Relaxed) as f64 / 1000.0;
        let in_memory = unwritten.load(Ordering::Relaxed);
        let mut alarms_now = alarms.clone();
        if in_memory > 0 {
            alarms_now.push(format!(
                "{in_memory} outbox writes wait in memory: the disk refuses them (a power cut \
                 loses them; pumps keep their sales until written)"
            ));
        }
        let fps = pumps.snapshot(&configured_fps);
        for p in &fps {
            if let Some(alarm) = &p.zones.alarm {
                warn!(fp = p.fp, "health: zones: {alarm}");
                alarms_now.push(alarm.clone());
            }
        }
        let offline: Vec<u8> = fps.iter().filter(|p| !p.online).map(|p| p.fp).collect();
        info!(
            online = fps.len() - offline.len(),
            of = fps.len(),
            ?offline,
            "health: fuelling points"
        );
        let source_reports: Vec<SourceHealth> = sources
            .iter()
            .map(|s| {
                let link = s.link.snapshot();
                let last_sale_t = fps
                    .iter()
                    .filter(|p| s.fps.contains(&p.fp))
                    .filter_map(|p| p.last_sale_t)
                    .max();
                info!(
                    source = %s.name,
                    up = link.up,
                    sent = link.sent,
                    received = link.received,
                    errors = link.errors,
                    last_problem = link.last_problem.as_deref().unwrap_or("-"),
                    "health: sale source"
                );
                SourceHealth {
                    name: s.name.clone(),
                    fps: s.fps.clone(),
                    up: link.up,
                    since_t: link.since_t,
                    opens: link.opens,
                    open_failures: link.open_failures,
                    sent: link.sent,
                    received: link.received,
                    errors: link.errors,
                    last_problem: link.last_problem,
                    last_sale_t,
                }
            })
            .collect();
        let agent = AgentHealth {
            sources: source_reports,
            fps,
            alarms: alarms_now,
            outbox_writes_in_memory: in_memory,
            cameras: camera_reports,
            plates: PlateReaderHealth {
                frames_read: vision.frames_read.load(Ordering::Relaxed),
                read_errors: vision.read_errors.load(Ordering::Relaxed),
                model_latency_ms: read_ms,
            },
        };
        // Numbers and strings only (a non-finite fps would be written as null).
        publisher.set(serde_json::to_value(&agent).unwrap_or_default());
        let outbox = outbox.clone();
        let (depth, oldest) = tokio::task::spawn_blocking(move || {
            (outbox.depth().ok(), outbox.oldest_created().ok().flatten())
        })
        .await
        .unwrap_or((None, None));
        let up = uplink.snapshot();
        if let Some(local) = &local {
            local.send_replace(Some(LocalHealth {
                t: forecourt_events::now_millis(),
                agent,
                outbox_depth: depth,
                outbox_oldest_age_s: oldest.map(|t| (forecourt_events::now_millis() - t) / 1000),
                uplink: up,
                disk_free_bytes: disk_free_bytes(&data_dir),
            }));
        }
        info!(
            frames_read = vision.frames_read.load(Ordering::Relaxed),
            read_errors = vision.read_errors.load(Ordering::Relaxed),
            read_ms,
            outbox_depth = depth,
            outbox_oldest_age_s = oldest.map(|t| (forecourt_events::now_millis() - t) / 1000),
            outbox_writes_in_memory = in_memory,
            uplink_connected = up.connected,
            published = up.published,
            acked = up.acked,
            reconnects = up.reconnects,
            "health"
        );
    }
}
