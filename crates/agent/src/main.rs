//! forecourt-agent: reads the forecourt cameras, polls the dispensers, ties each sale to the plate
//! of the car being fuelled, keeps everything in SQLite until HQ has it, and syncs to HQ over MQTT.
//! This binary only wires the crates together; each noun lives in its own crate.

mod config;
mod health;
mod station;
mod vision;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use tokio::sync::{mpsc, watch, Notify};
use tracing::{info, warn};

use crate::config::{AgentConfig, DispenserSection};
use crate::station::Station;
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

fn run(config_path: &std::path::Path, seconds: Option<u64>) -> Result<()> {
    let config = AgentConfig::load(config_path)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run_agent(config, seconds))
}

async fn run_agent(config: AgentConfig, seconds: Option<u64>) -> Result<()> {
    info!(station = %config.station_id, "forecourt-agent {} starting", env!("CARGO_PKG_VERSION"));
    let (shutdown_tx, shutdown) = watch::channel(false);

    let data_dir = config.resolve(&config.data_dir);
    let outbox = outbox::Outbox::open(data_dir.join("outbox.sqlite"))?;
    let wake_uplink = Arc::new(Notify::new());
    let uplink_config = config.uplink_config()?;
    let topic_root = format!("{}/{}", uplink_config.prefix, uplink_config.station_id);
    let uplink = uplink::Uplink::new(uplink_config, outbox.clone(), wake_uplink.clone())?;
    let uplink_health = uplink.health();
    let uplink_task = tokio::spawn(uplink.run(shutdown.clone()));

    let (pump_tx, pump_rx) = mpsc::channel(256);
    let mut dispenser_tasks = Vec::new();
    for d in &config.dispensers {
        match d {
            DispenserSection::Dart(dart) => {
                let mut dart = dart.clone();
                dart.port = config.resolve(&dart.port);
                let master = dispenser::DartMaster::new(dart)?;
                dispenser_tasks.push(tokio::spawn(dispenser::DispenserDriver::run(
                    master,
                    pump_tx.clone(),
                    shutdown.clone(),
                )));
            }
        }
    }
    drop(pump_tx);

    let (frame_tx, frame_rx) = mpsc::channel(64);
    let vision = Vision::start(&config, frame_tx)?;

    let health_task = tokio::spawn(health::log_health(
        Duration::from_secs(60),
        vision.camera_slots(),
        vision.stats.clone(),
        uplink_health,
        outbox.clone(),
        shutdown.clone(),
    ));
    let mut station = Station {
        matcher: matcher::Matcher::new(
            config.layout(),
            config.matcher_config(),
            plates::is_valid_plate,
        ),
        outbox,
        wake_uplink,
        topic_root,
    };
    let restored = station.restore_held_sales().await?;
    if restored > 0 {
        info!(
            restored,
            "sales held from before the last stop go to the matcher again"
        );
    }
    let watchdog = systemd_watchdog();
    let station_task = tokio::spawn(station.run(frame_rx, pump_rx, shutdown.clone(), move || {
        if watchdog {
            let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
        }
    }));
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    info!("agent running");

    let stop_after = async {
        match seconds {
            Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = shutdown_signal() => info!("signal received; stopping"),
        _ = stop_after => info!("--seconds elapsed; stopping"),
    }
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    shutdown_tx.send(true).ok();
    // Station first (it flushes matched sales into the outbox), then the uplink gets a moment
    // to publish them before it says offline.
    station_task.await.context("station task")??;
    vision.stop();
    let _ = health_task.await;
    for t in dispenser_tasks {
        if let Ok(Err(e)) = t.await {
            warn!("dispenser driver: {e}");
        }
    }
    match tokio::time::timeout(Duration::from_secs(5), uplink_task).await {
        Ok(Ok(Err(e))) => warn!("uplink: {e}"),
        Err(_) => warn!("uplink did not stop within 5 s"),
        _ => {}
    }
    info!("stopped");
    Ok(())
}

fn systemd_watchdog() -> bool {
    let mut usec = 0;
    sd_notify::watchdog_enabled(false, &mut usec)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
