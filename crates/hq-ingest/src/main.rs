//! `hq-ingest --config hq-ingest.toml`: one worker. Run several, each with its own
//! `[mqtt] client_id`; SIGTERM or SIGINT stops one cleanly (it leaves the shared subscription,
//! commits and acknowledges what it holds, disconnects).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

#[derive(Parser)]
#[command(
    name = "hq-ingest",
    version,
    about = "Write every station's events into PostgreSQL"
)]
struct Cli {
    #[arg(long)]
    config: PathBuf,
    /// Check the config file and exit.
    #[arg(long)]
    check: bool,
}

/// Longest a stop waits for the batch in hand (PostgreSQL down: it is redelivered later).
const DRAIN_LIMIT: Duration = Duration::from_secs(15);

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, not in the journal or a log file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let config = hq_ingest::IngestConfig::load(&cli.config)?;
    if cli.check {
        // The TLS files too: read and checked as a run would.
        hq_ingest::ingest::mqtt_options(&config)?;
        println!("{}: ok", cli.config.display());
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("start the runtime")?;
    runtime.block_on(async move {
        let (stop_tx, stop) = watch::channel(false);
        let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
        let worker = tokio::spawn(hq_ingest::run(config, stop));
        tokio::pin!(worker);
        tokio::select! {
            done = &mut worker => return done.context("worker task")?.map_err(Into::into),
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("stop requested");
        let _ = stop_tx.send(true);
        match tokio::time::timeout(DRAIN_LIMIT, &mut worker).await {
            Ok(done) => done.context("worker task")?.map_err(Into::into),
            Err(_) => {
                tracing::warn!("the batch in hand was not committed within {DRAIN_LIMIT:?}; the broker sends it again");
                Ok(())
            }
        }
    })
}
