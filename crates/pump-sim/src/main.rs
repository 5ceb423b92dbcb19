//! `dart-pump-sim`: DART pump simulator on a serial port or pty.

use std::path::PathBuf;

use clap::Parser;
use pump_sim::{FaultOptions, Scenario, SimOptions};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(
    name = "dart-pump-sim",
    about = "Simulates DART fuelling points (slave side) on a serial port or pty"
)]
struct Args {
    /// Serial port or pty path, e.g. /tmp/dart/pumps.
    #[arg(long)]
    port: PathBuf,
    #[arg(long, default_value_t = 9600)]
    baud: u32,
    /// Scenario file (TOML) with [[pump]] and [[car]] entries.
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// Random customers on every pump.
    #[arg(long)]
    random: bool,
    /// Probability (0..1) to drop each outgoing frame.
    #[arg(long, default_value_t = 0.0)]
    drop_rate: f64,
    /// Seed for random customers and fault injection.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let args = Args::parse();
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.drop_rate),
        "--drop-rate must be within 0..1"
    );
    let scenario = match &args.scenario {
        Some(path) => Scenario::load(path)?,
        None => Scenario::default(),
    };
    let opts = SimOptions {
        port: args.port,
        baud: args.baud,
        scenario,
        random: args.random,
        seed: args.seed,
        faults: FaultOptions {
            drop_rate: args.drop_rate,
        },
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        let _ = stop_tx.send(true);
    });
    pump_sim::run(opts, stop_rx).await?;
    Ok(())
}
