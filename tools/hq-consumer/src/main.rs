//! `hq-consumer`: watch what stations deliver, as HQ would. Prints a JSON summary on stdout when
//! it stops (SIGINT, `--timeout-s`, or `--expect N` met).
//!
//! Exit status: 0 when `--expect` was met (or, without it, nothing was missing); 1 on timeout
//! or gaps; 2 on an error.

use std::time::Duration;

use clap::Parser;
use hq_consumer::{consume, ConsumerOptions, StopReason};
use tokio::sync::watch;

#[derive(Parser)]
#[command(
    name = "hq-consumer",
    about = "Dedupe by id and watch seq gaps, as HQ would"
)]
struct Cli {
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long, default_value_t = 1883)]
    port: u16,
    #[arg(long, default_value = "forecourt")]
    prefix: String,
    /// Persistent session name: messages are queued for it while it is away.
    #[arg(long, default_value = "hq-consumer")]
    client_id: String,
    /// Exit 0 once every stream has seqs 1..=N without gaps.
    #[arg(long)]
    expect: Option<u64>,
    /// With --expect: how many (station, stream) pairs must be complete.
    #[arg(long, default_value_t = 1)]
    min_streams: usize,
    /// Give up (exit 1) after this many seconds.
    #[arg(long)]
    timeout_s: Option<u64>,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> std::process::ExitCode {
    let options = ConsumerOptions {
        host: cli.host,
        port: cli.port,
        prefix: cli.prefix,
        client_id: cli.client_id,
        expect: cli.expect,
        min_streams: cli.min_streams,
        timeout: cli.timeout_s.map(Duration::from_secs),
    };
    let (stop_tx, stop) = watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = stop_tx.send(true);
        }
    });
    let result = consume(&options, stop, || eprintln!("subscribed")).await;
    let (summary, reason) = match result {
        Ok(done) => done,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    println!(
        "{}",
        serde_json::to_string_pretty(&summary).unwrap_or_default()
    );
    for (stream, s) in &summary.streams {
        eprintln!(
            "{stream}: {} unique, {} duplicates, 1..={} complete, max seq {}, {} missing, {} out of order, {} conflicts",
            s.unique, s.duplicates, s.contiguous, s.max_seq, s.missing, s.out_of_order, s.conflicts
        );
    }
    let ok = match (reason, options.expect) {
        (StopReason::Complete, _) => true,
        (StopReason::TimedOut, Some(_)) => false,
        _ => summary.is_clean(),
    };
    eprintln!("stopped: {reason:?}, {}", if ok { "ok" } else { "NOT ok" });
    if ok {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(1)
    }
}
