//! `forecourt-agent run`: config -> build the parts -> spawn them -> wait for a stop -> drain.
//! Each part lives in its own crate; this file only connects them.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use agent_config::{AgentConfig, DispenserSection, LoadedConfig};
use anyhow::{Context, Result};
use dispenser::DispenserDriver;
use forecourt_events::{DispenserEvent, KeptSales};
use outbox::Totalizer;
use station::liveness::Liveness;
use station::vision::Vision;
use tokio::sync::{mpsc, watch, Notify};
use tracing::{error, info, warn};

pub fn run(config_path: &Path, seconds: Option<u64>) -> Result<()> {
    let (config, loaded) = LoadedConfig::read(config_path.to_path_buf())?;
    let stop: Stop = Box::pin(async move {
        after(seconds).await;
        "--seconds elapsed"
    });
    runtime()?.block_on(run_agent(config, loaded, stop, None))
}

/// The agent's runtime: two worker threads (station PCs have few cores).
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// Resolves after `seconds` (`--seconds`), or never when not given.
pub async fn after(seconds: Option<u64>) {
    match seconds {
        Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
        None => std::future::pending().await,
    }
}

/// Besides a signal, what stops the agent; it says why, for the log.
pub type Stop = Pin<Box<dyn Future<Output = &'static str> + Send>>;

/// The agent until a signal or `stop`. Each sale's zone evidence goes to `fill_evidence` as it
/// is judged, when given (`commission`).
pub async fn run_agent(
    config: AgentConfig,
    loaded: LoadedConfig,
    stop: Stop,
    fill_evidence: Option<mpsc::Sender<analytics::zone_check::FillEvidence>>,
) -> Result<()> {
    info!(station = %config.station_id, "forecourt-agent {} starting", env!("CARGO_PKG_VERSION"));
    let (shutdown_tx, shutdown) = watch::channel(false);

    // Build.
    let data_dir = config.resolve(&config.data_dir);
    let (outbox, mut alarms) = open_outbox(&config, &data_dir)?;
    let wake_uplink = Arc::new(Notify::new());
    let uplink_config = config.uplink_config()?;
    // The agent's part of the health message is refreshed as often as the uplink publishes it
    // (the log line every minute when HQ gets none).
    let health_every = Duration::from_secs(match uplink_config.health_interval_s {
        0 => 60,
        s => s,
    });
    let topic_root = format!("{}/{}", uplink_config.prefix, uplink_config.station_id);
    let mut uplink = uplink::Uplink::new(uplink_config, outbox.clone(), wake_uplink.clone())?;
    let uplink_health = uplink.health();
    let health_publisher = uplink.health_publisher();
    let hq_commands = uplink.commands(16, Arc::new(station::StationCommands));
    let liveness = Arc::new(Liveness::default());
    liveness.watch("uplink", uplink.heartbeat());
    // What the kept sales add up to per nozzle: the drivers count on from there, so fuel sold
    // while no agent ran is reported, and a fill found completed tells its nozzle.
    let kept_totalizers = outbox.totalizers().context("reading the kept totalizers")?;
    let kept_sales = Arc::new(KeptSales::new());
    let (pump_tx, pump_rx) = mpsc::channel(256);
    let (dispensers, sale_sources) = build_dispensers(
        &config,
        &kept_totalizers,
        &kept_sales,
        &liveness,
        &pump_tx,
        &shutdown,
    )?;
    // The drivers hold their own senders.
    drop(pump_tx);
    let config_path = loaded.path.clone();
    // Sales come first: a console that cannot start (its port taken) is an alarm to HQ and a
    // log line, not a station that stops recording sales.
    let console = match &config.console {
        Some(settings) => match console::Console::bind(settings.clone()).await {
            Ok(console) => Some(console),
            Err(e) => {
                error!("console not started: {e}; the agent runs without it");
                alarms.push(format!("console not started: {e}"));
                None
            }
        },
        None => None,
    };
    // The installer's page shows each camera's latest picture, the sales page the plate crops
    // behind each verdict: kept only with a console.
    let (pictures, evidence) = match &config.console {
        Some(settings) if console.is_some() => (
            station::reader::Pictures {
                snapshots: station::snapshots::Snapshots::enabled(),
                crops: station::crops::PlateCrops::enabled(),
            },
            open_evidence(&data_dir, settings, &mut alarms),
        ),
        _ => (station::reader::Pictures::default(), None),
    };
    let (live_tx, live_rx) = tokio::sync::broadcast::channel(station::live::LIVE_BACKLOG);
    let (reads_tx, _) = tokio::sync::broadcast::channel(station::live::LIVE_BACKLOG);
    let (local_health_tx, local_health_rx) = watch::channel(None);
    let mut station = station::Station::new(station::StationParts {
        layout: config.layout(),
        matcher: config.matcher_config(),
        outbox: outbox.clone(),
        wake_uplink,
        topic_root,
        kept_sales,
        kept_totalizers,
        trace_dir: data_dir.join("traces"),
        trace_file: config.trace_file.as_ref().map(|p| config.resolve(p)),
        config: Some(Box::new(loaded)),
        fill_evidence,
        live: console.is_some().then_some(live_tx),
        live_reads: console.is_some().then(|| reads_tx.clone()),
        crops: pictures.crops.clone(),
        evidence: evidence.clone(),
    })
    .context("starting the station")?;

    // Spawn.
    let mut uplink_task = tokio::spawn(uplink.run(shutdown.clone()));
    let (station_commands, local_commands, forwarder_task) =
        station::command_queue::forward_commands(hq_commands, shutdown.clone());
    let dispenser_tasks: Vec<_> = dispensers.into_iter().map(tokio::spawn).collect();
    let (frame_tx, frame_rx) = mpsc::channel(64);
    let vision = start_vision(
        &config,
        station.focus_areas(),
        pictures.clone(),
        frame_tx,
        &liveness,
    )?;
    let health_task = tokio::spawn(station::health::log_health(
        health_every,
        station::health::HealthSources {
            alarms,
            cameras: vision.camera_slots(),
            vision: vision.stats.clone(),
            uplink: uplink_health,
            publisher: health_publisher,
            outbox,
            unwritten: station.unwritten_count(),
            pumps: station.pump_board(),
            configured_fps: config.source_fps().concat(),
            sources: sale_sources,
            local: console.is_some().then_some(local_health_tx),
            data_dir: data_dir.clone(),
        },
        shutdown.clone(),
    ));
    // The console is for people at the station: if it fails, sales go on, and it says so.
    let plate_notes = station.plate_notes();
    let closed_hours = station.closed_hours();
    let console_task = console.map(|console| {
        let feeds = console::ConsoleFeeds {
            records: live_rx,
            health: local_health_rx,
            fps: config.source_fps().concat(),
            station_id: config.station_id.clone(),
            commands: local_commands,
            audit: console::audit::AuditLog::new(data_dir.join("console-audit.jsonl")),
            cameras: config.cameras.iter().map(|c| c.name.clone()).collect(),
            snapshots: pictures.snapshots,
            crops: pictures.crops,
            evidence,
            zones: Arc::new(agent_config::zone_file::ConfigFileZones::new(config_path)),
            plate_notes,
            reads: reads_tx,
            closed_hours,
        };
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            if let Err(e) = console.run(feeds, shutdown).await {
                error!("console stopped: {e}");
            }
        })
    });
    station.restore().await.context("restoring the station")?;
    let station_heartbeat = liveness.register("station");
    let mut station_task = tokio::spawn(station.run(
        frame_rx,
        pump_rx,
        station_commands,
        shutdown.clone(),
        move || station_heartbeat.beat(),
    ));
    let watchdog_task = tokio::spawn(station::liveness::run_watchdog(
        liveness.clone(),
        Duration::from_secs_f64(config.watchdog_stall_s),
        shutdown.clone(),
    ));
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    info!("agent running");

    // Wait. The station loop or the uplink ending by itself is a fault: stop everything and
    // exit non-zero, so systemd restarts the agent rather than leaving pumps unpolled, or sales
    // unsent, behind a live process.
    let (station_ended, uplink_ended) = tokio::select! {
        _ = shutdown_signal() => { info!("signal received; stopping"); (None, None) }
        why = stop => { info!("{why}; stopping"); (None, None) }
        ended = &mut station_task => (Some(ended), None),
        ended = &mut uplink_task => (None, Some(ended)),
    };

    // Drain: the station first (it flushes matched sales into the outbox), then the uplink
    // gets a moment to publish them before it says offline.
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    shutdown_tx.send(true).ok();
    let station_result = match station_ended {
        Some(ended) => ended,
        None => station_task.await,
    };
    let station_result = station_result
        .context("station task")?
        .context("station loop failed")
        .and_then(|()| match &uplink_ended {
            Some(ended) => Err(anyhow::anyhow!("the uplink stopped by itself: {ended:?}")),
            None => Ok(()),
        });
    if let Err(e) = &station_result {
        error!("{e:#}");
    }
    vision.stop();
    let _ = health_task.await;
    if let Some(task) = console_task {
        let _ = task.await;
    }
    let _ = watchdog_task.await;
    let _ = forwarder_task.await;
    for t in dispenser_tasks {
        if let Ok(Err(e)) = t.await {
            warn!("dispenser driver: {e}");
        }
    }
    if uplink_ended.is_none() {
        match tokio::time::timeout(Duration::from_secs(5), uplink_task).await {
            Ok(Ok(Err(e))) => warn!("uplink: {e}"),
            Err(_) => warn!("uplink did not stop within 5 s"),
            _ => {}
        }
    }
    info!("stopped");
    station_result
}

/// The outbox, and the alarms to repeat in every health report (an unusable outbox file kept
/// aside for forensics).
fn open_outbox(config: &AgentConfig, data_dir: &Path) -> Result<(outbox::Outbox, Vec<String>)> {
    let (outbox, quarantined) =
        outbox::Outbox::open_or_quarantine(data_dir.join("outbox.sqlite"), config.outbox.clone())?;
    let mut alarms = Vec::new();
    if let Some(q) = quarantined {
        let s = q.salvaged;
        error!(
            moved_to = %q.moved_to.display(),
            why = %q.why,
            records_taken_over = s.records,
            held_taken_over = s.held,
            totalizers_taken_over = s.totalizers,
            streams_numbered_on = s.streams,
            "the outbox file was unusable: kept aside for forensics, started a fresh one with \
             what could still be read of it (records it held beyond these are lost; streams \
             not numbered on start again at seq 1)"
        );
        alarms.push(format!(
            "outbox quarantined to {}: {} (taken over: {} records, {} held sales, {} \
             totalizers; {} streams numbered on)",
            q.moved_to.display(),
            q.why,
            s.records,
            s.held,
            s.totalizers,
            s.streams
        ));
    }
    Ok((outbox, alarms))
}

/// A dispenser driver's run, ready to spawn.
type DriverRun = Pin<Box<dyn Future<Output = Result<(), dispenser::DispenserError>> + Send>>;

/// One driver per `[[dispenser]]`, each watched by the liveness check, ready to send its events
/// to `events` until `shutdown`, and each one's link for the health report. DART drivers count
/// on from the kept totalizers (IFSF sources report none).
fn build_dispensers(
    config: &AgentConfig,
    kept_totalizers: &[Totalizer],
    kept_sales: &Arc<KeptSales>,
    liveness: &Liveness,
    events: &mpsc::Sender<DispenserEvent>,
    shutdown: &watch::Receiver<bool>,
) -> Result<(Vec<DriverRun>, Vec<station::health::SaleSource>)> {
    let mut runs: Vec<DriverRun> = Vec::new();
    let mut sources = Vec::new();
    for (d, fps) in config.dispensers.iter().zip(config.source_fps()) {
        let (run, source) = match d {
            DispenserSection::Dart(dart) => {
                let mut dart = dart.clone();
                dart.port = config.resolve(&dart.port);
                let name = format!("dart {}", dart.port.display());
                let mut driver = dispenser::DartDriver::new(dart)?;
                for t in kept_totalizers {
                    driver.restore_totals(t.fp, t.nozzle, t.total);
                }
                driver.reset_after_kept(kept_sales.clone());
                watched(name, fps, driver, liveness, events, shutdown)
            }
            DispenserSection::IfsfFdc(fdc) => watched(
                format!("ifsf-fdc {}", fdc.address),
                fps,
                dispenser::IfsfFdcDriver::new(fdc.clone())?,
                liveness,
                events,
                shutdown,
            ),
            DispenserSection::IfsfTcp(ifsf) => watched(
                format!("ifsf-tcp {}", ifsf.address),
                fps,
                dispenser::IfsfSource::new(ifsf.clone())?,
                liveness,
                events,
                shutdown,
            ),
        };
        runs.push(run);
        sources.push(source);
    }
    Ok((runs, sources))
}

/// `driver`'s run, its heartbeat watched as `dispenser <name>`, and its link for the health
/// report.
fn watched<D: DispenserDriver>(
    name: String,
    fps: Vec<u8>,
    driver: D,
    liveness: &Liveness,
    events: &mpsc::Sender<DispenserEvent>,
    shutdown: &watch::Receiver<bool>,
) -> (DriverRun, station::health::SaleSource) {
    liveness.watch(format!("dispenser {name}"), driver.heartbeat());
    let source = station::health::SaleSource {
        name,
        fps,
        link: driver.link_stats(),
    };
    (
        Box::pin(driver.run(events.clone(), shutdown.clone())),
        source,
    )
}

/// The plate models (checked against models/MANIFEST) with ONNX Runtime.
pub fn open_plate_pipeline(config: &AgentConfig) -> Result<plates::PlatePipeline> {
    // An explicitly configured detector is the operator's choice; the rest must be ours.
    let skip: &[&str] = if config.plates.detector.is_some() {
        &["clp_det.onnx"]
    } else {
        &[]
    };
    agent_config::model_files::verify(&config.resolve(&config.plates.models_dir), skip)?;
    plates::load_onnx_runtime(&config.find_onnxruntime()?)?;
    plates::PlatePipeline::open(&config.pipeline_config()).context("opening the plate models")
}

/// The plate pipelines, the cameras and the readers.
fn start_vision(
    config: &AgentConfig,
    focus: station::focus::FocusAreas,
    pictures: station::reader::Pictures,
    frames: mpsc::Sender<forecourt_events::FramePlates>,
    liveness: &Liveness,
) -> Result<Vision> {
    // The first opening checks the model files and loads ONNX Runtime; each further reader
    // thread gets its own sessions on the same files.
    let mut pipelines = vec![open_plate_pipeline(config)?];
    for _ in 1..config.plate_readers() {
        pipelines.push(
            plates::PlatePipeline::open(&config.pipeline_config())
                .context("opening the plate models")?,
        );
    }
    let readers = pipelines
        .into_iter()
        .enumerate()
        .map(|(n, pipeline)| station::reader::ReaderThread {
            pipeline,
            heartbeat: liveness.register(format!("plate-reader-{n}")),
        })
        .collect();
    Ok(Vision::start(
        readers,
        config.cameras()?,
        focus,
        pictures,
        frames,
    )?)
}

/// The folder of the plate crops behind the sales' verdicts (`<data_dir>/crops`). One that
/// cannot be opened is an alarm and a log line: the console runs without crops.
fn open_evidence(
    data_dir: &std::path::Path,
    settings: &console::settings::ConsoleSettings,
    alarms: &mut Vec<String>,
) -> Option<station::evidence::EvidenceStore> {
    let opened =
        station::evidence::EvidenceStore::open(&data_dir.join("crops"), settings.crop_limits())
            // What aged past the limit while no agent ran goes now, not at the next sale.
            .and_then(|store| store.prune(forecourt_events::now_millis()).map(|()| store));
    match opened {
        Ok(store) => Some(store),
        Err(e) => {
            error!("plate crops not kept: {e}");
            alarms.push(format!("plate crops not kept: {e}"));
            None
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
