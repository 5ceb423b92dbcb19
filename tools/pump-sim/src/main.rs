//! `dart-pump-sim`: DART pump simulator on a serial port or pty.

use std::path::PathBuf;

use clap::Parser;
use pump_sim::{CustomerProfile, FaultOptions, Scenario, SimOptions};
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
    /// Make sure FPs 1..=N exist (default pumps at 0x50.. for those the scenario lacks).
    #[arg(long, default_value_t = 0)]
    fps: u8,
    /// Random customers' flow rate, litres per second (speed it up for soak tests).
    #[arg(long, default_value_t = 0.6)]
    flow_lps: f64,
    /// Random customers' pause between customers, seconds: "MIN,MAX".
    #[arg(long, default_value = "5,20")]
    pause_s: String,
    /// Append each sale (and fill lost to a restart) as a JSON line: the ground truth.
    #[arg(long)]
    sales_log: Option<PathBuf>,
    /// Probability (0..1) to drop each outgoing frame.
    #[arg(long, default_value_t = 0.0)]
    drop_rate: f64,
    /// Probability (0..1) per byte, both directions, to corrupt it.
    #[arg(long, default_value_t = 0.0)]
    corrupt_rate: f64,
    /// Probability (0..1) per byte, both directions, to lose it.
    #[arg(long, default_value_t = 0.0)]
    byte_drop_rate: f64,
    /// Delay answers by this many milliseconds.
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Probability (0..1) that an answer is delayed (0 = every answer, when --delay-ms is set).
    #[arg(long, default_value_t = 0.0)]
    delay_rate: f64,
    /// Expected silent periods per minute (the whole line answers nothing).
    #[arg(long, default_value_t = 0.0)]
    silences_per_min: f64,
    /// Length of a silent period, seconds.
    #[arg(long, default_value_t = 5.0)]
    silence_s: f64,
    /// Expected restarts per minute of a filling pump (TX# back to 0, the fill lost).
    #[arg(long, default_value_t = 0.0)]
    restarts_per_min: f64,
    /// Probability per sale that the final DC2 comes in a later block than the completion.
    #[arg(long, default_value_t = 0.0)]
    late_final_dc2_rate: f64,
    /// Probability, each time the block carrying a sale's final DC2 goes out, that it is
    /// corrupted on the line (the pump sends it again).
    #[arg(long, default_value_t = 0.0)]
    corrupt_final_dc2_rate: f64,
    /// A pump not addressed by the master for this many seconds drops the data it queued.
    #[arg(long)]
    forget_unpolled_s: Option<f64>,
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
    let faults = FaultOptions {
        drop_rate: args.drop_rate,
        corrupt_rate: args.corrupt_rate,
        byte_drop_rate: args.byte_drop_rate,
        delay_ms: args.delay_ms,
        delay_rate: args.delay_rate,
        silences_per_min: args.silences_per_min,
        silence_s: args.silence_s,
        restarts_per_min: args.restarts_per_min,
        forget_unpolled_s: args.forget_unpolled_s,
        late_final_dc2_rate: args.late_final_dc2_rate,
        corrupt_final_dc2_rate: args.corrupt_final_dc2_rate,
        until_s: None,
    };
    faults
        .validate()
        .map_err(|e| anyhow::anyhow!("fault options: {e}"))?;
    let pause: Vec<f64> = args
        .pause_s
        .split(',')
        .map(|v| v.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("--pause-s {:?}: {e}", args.pause_s))?;
    anyhow::ensure!(
        pause.len() == 2 && 0.0 <= pause[0] && pause[0] <= pause[1],
        "--pause-s must be MIN,MAX with 0 <= MIN <= MAX"
    );
    anyhow::ensure!(args.flow_lps > 0.0, "--flow-lps must be > 0");
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
        faults,
        customers: CustomerProfile {
            flow_lps: args.flow_lps,
            pause_s: (pause[0], pause[1]),
            ..CustomerProfile::default()
        },
        fps: args.fps,
        sales_log: args.sales_log,
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        let _ = stop_tx.send(true);
    });
    pump_sim::run(opts, stop_rx).await?;
    Ok(())
}
