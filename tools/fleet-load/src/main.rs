//! `fleet-load`: N simulated stations in one process, each with its own SQLite outbox and
//! archive and its own `uplink` (the station daemon's crates, unchanged), against one broker.
//!
//! Phases: pre-fill every outbox with a backlog (stations marked capped drop the oldest of
//! theirs over a small cap, as a station offline for long does); start every uplink at once
//! (the reconnect storm); append at a steady rate for `--seconds`; then write the last seq of
//! every (station, stream) to `--seqs` and keep the stations up (answering HQ's `resend`)
//! until SIGTERM or SIGINT. SIGUSR1 ends the steady phase early. Then it prints the report, with the PostgreSQL figures when
//! `--pg` is given.

mod report;
mod stations;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use tokio::signal::unix::{signal, SignalKind};

#[derive(Parser, Debug, Clone)]
#[command(
    name = "fleet-load",
    about = "Many stations' outbox + uplink against one broker"
)]
pub struct Cli {
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    #[arg(long, default_value_t = 1883)]
    pub port: u16,
    #[arg(long, default_value = "forecourt")]
    pub prefix: String,
    #[arg(long, default_value_t = 1000)]
    pub stations: usize,
    /// Where the stations' outbox files go (one per station).
    #[arg(long)]
    pub dir: PathBuf,
    /// Records waiting in every outbox before the uplinks start.
    #[arg(long, default_value_t = 30)]
    pub prefill: usize,
    /// Records appended per second over the whole fleet in the steady phase.
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    /// Length of the steady phase.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// Every Nth station has a small outbox cap (0: none): its pre-filled `nozzle` records
    /// over the cap are dropped before it connects, so HQ sees holes it cannot fill.
    #[arg(long, default_value_t = 0)]
    pub capped_every: usize,
    /// The cap (records) of those stations.
    #[arg(long, default_value_t = 10)]
    pub cap: u64,
    /// Station uplinks' first reconnect step (the jitter spreads 50-150 % of it).
    #[arg(long, default_value_t = 1000)]
    pub backoff_min_ms: u64,
    #[arg(long, default_value_t = 8000)]
    pub backoff_max_ms: u64,
    /// Stations' health report interval (it tells HQ how far each stream was acknowledged).
    #[arg(long, default_value_t = 60)]
    pub health_s: u64,
    /// Where the last seq of every (station, stream) goes when the steady phase ends.
    #[arg(long)]
    pub seqs: Option<PathBuf>,
    /// Progress, one JSON line per second: depth of all outboxes, acked so far, phase.
    #[arg(long)]
    pub progress: Option<PathBuf>,
    /// HQ's database (hq-ingest's), for the ingest figures of the report.
    #[arg(long)]
    pub pg: Option<String>,
    /// Stop by itself this many seconds after the steady phase (default: wait for a signal).
    #[arg(long)]
    pub linger_s: Option<u64>,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,fleet_load=info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    // Each station holds a socket and its SQLite files open.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("start the runtime")?;
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let mut fleet = stations::Fleet::prefill(&cli).context("pre-fill the outboxes")?;
    let prefilled = fleet.depth();
    tracing::info!(
        stations = cli.stations,
        records = prefilled,
        "outboxes pre-filled; starting every uplink at once"
    );
    let queue_depth = report::watch_broker_queue(&cli);
    let started = Instant::now();
    fleet.start_uplinks(&cli)?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut usr1 = signal(SignalKind::user_defined1())?;
    let mut progress = report::Progress::new(&cli, started);
    let steady = fleet.append_steadily(&cli);
    let steady_start_ms = forecourt_events::now_millis();
    tokio::pin!(steady);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut appended = None;
    let mut linger_until = None;
    let mut steady_end_ms = None;
    loop {
        tokio::select! {
            done = &mut steady, if appended.is_none() => {
                let n = done.context("the append task")??;
                appended = Some(n);
                steady_end_ms = Some(forecourt_events::now_millis());
                fleet.write_seqs(cli.seqs.as_deref())?;
                tracing::info!(appended = n, "steady phase over; stations stay up for HQ's resends");
                linger_until = cli.linger_s.map(|s| Instant::now() + Duration::from_secs(s));
            }
            _ = tick.tick() => {
                progress.record(&fleet, appended.is_some(), &queue_depth)?;
                if linger_until.is_some_and(|until| Instant::now() >= until) {
                    break;
                }
            }
            _ = usr1.recv(), if appended.is_none() => fleet.end_steady_phase(),
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    let steady_end_ms = steady_end_ms.unwrap_or_else(forecourt_events::now_millis);
    fleet.stop().await;
    let report = report::Report {
        stations: cli.stations,
        prefilled,
        appended: appended.unwrap_or(0),
        backlog_drained_s: progress.backlog_drained_s(),
        peak_ack_rate: progress.peak_ack_rate(),
        acked: fleet.acked(),
        reconnects: fleet.reconnects(),
        broker_queue_max: queue_depth.max(),
        ran_s: t0.elapsed().as_secs_f64(),
    };
    let ingest = match &cli.pg {
        Some(url) => {
            Some(report::ingest_figures(url, prefilled, steady_start_ms, steady_end_ms).await?)
        }
        None => None,
    };
    report.print(ingest.as_ref());
    Ok(())
}
