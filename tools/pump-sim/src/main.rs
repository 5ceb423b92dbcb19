//! `dart-pump-sim`: a pump simulator: DART fuelling points on a serial port or pty, or an IFSF
//! over TCP/IP dispenser node (`--protocol ifsf-tcp`) or an IFSF POS-FDC controller
//! (`--protocol ifsf-fdc`) on a TCP port.

use std::path::PathBuf;

use clap::Parser;
use pump_sim::fdc_device::FdcDeviceOptions;
use pump_sim::ifsf_device::IfsfDeviceOptions;
use pump_sim::lan_server::{run_lan_device, LanDeviceOptions, LanFaults, LanSimOptions};
use pump_sim::{CustomerProfile, FaultOptions, Scenario, SimOptions};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(
    name = "dart-pump-sim",
    about = "Simulates DART fuelling points (slave side) on a serial port or pty, or an IFSF over TCP/IP dispenser node on a TCP port"
)]
struct Args {
    /// Which protocol the simulated pumps speak.
    #[arg(long, value_enum, default_value_t = Protocol::Dart)]
    protocol: Protocol,
    /// DART: serial port or pty path, e.g. /tmp/dart/pumps.
    #[arg(long)]
    port: Option<PathBuf>,
    /// IFSF POS-FDC: the frame header the controller uses.
    #[arg(long, value_enum, default_value_t = FdcHeaderArg::LengthHashMd5)]
    fdc_header: FdcHeaderArg,
    /// IFSF POS-FDC: the passphrase of the MD5 headers.
    #[arg(long, default_value = "forecourt")]
    passphrase: String,
    /// IFSF (both): the address to listen on, e.g. 127.0.0.1:3486.
    #[arg(long, default_value = "127.0.0.1:3486")]
    listen: std::net::SocketAddr,
    /// IFSF (both): write the address actually listened on to this file once bound (with
    /// --listen on port 0, the port the system picked).
    #[arg(long)]
    bound_file: Option<PathBuf>,
    /// IFSF over TCP/IP: the dispenser's node number (subnet 1); its points 1..4 are FPs 1..4.
    #[arg(long, default_value_t = 1)]
    node: u8,
    /// IFSF (both): the station's POS clears a payable sale this many seconds after it completed.
    #[arg(long, default_value_t = 20.0)]
    clear_after_s: f64,
    /// IFSF (both): announce nothing unasked (a device that announces only to the controlling
    /// devices it was configured with, a controller that notifies only the POS that owns a
    /// sale); a client learns everything by asking.
    #[arg(long)]
    quiet: bool,
    /// IFSF (both): expected link drops per minute (the device closes the connection).
    #[arg(long, default_value_t = 0.0)]
    link_drops_per_min: f64,
    /// IFSF (both): probability (0..1) per message of a run of garbage bytes before it.
    #[arg(long, default_value_t = 0.0)]
    garbage_rate: f64,
    /// IFSF (both): how long a restarted device stays away (with --restarts-per-min), seconds.
    #[arg(long, default_value_t = 5.0)]
    restart_s: f64,
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
    /// Random customers: no new customer lifts after this many seconds (a run that ends).
    #[arg(long)]
    customers_until_s: Option<f64>,
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
    /// DART: expected restarts per minute of a filling pump (TX# back to 0, the fill lost).
    /// IFSF (both): expected restarts per minute of the device (every connection closed for
    /// --restart-s; its transaction buffers survive).
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Protocol {
    Dart,
    IfsfTcp,
    IfsfFdc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum FdcHeaderArg {
    LengthHashMd5,
    LengthZero,
    LengthMd5,
}

impl FdcHeaderArg {
    fn variant(self) -> ifsf_fdc::HeaderVariant {
        match self {
            FdcHeaderArg::LengthHashMd5 => ifsf_fdc::HeaderVariant::LengthHashMd5,
            FdcHeaderArg::LengthZero => ifsf_fdc::HeaderVariant::LengthZero,
            FdcHeaderArg::LengthMd5 => ifsf_fdc::HeaderVariant::LengthMd5,
        }
    }
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
    let mut scenario = match &args.scenario {
        Some(path) => Scenario::load(path)?,
        None => Scenario::default(),
    };
    let customers = CustomerProfile {
        flow_lps: args.flow_lps,
        pause_s: (pause[0], pause[1]),
        until_s: args.customers_until_s,
        ..CustomerProfile::default()
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        let _ = stop_tx.send(true);
    });
    if args.protocol != Protocol::Dart {
        scenario.ensure_fps(args.fps);
        return run_lan_simulator(&args, scenario, customers, stop_rx).await;
    }
    let port = args
        .port
        .clone()
        .ok_or_else(|| anyhow::anyhow!("--port is required with --protocol dart"))?;
    let opts = SimOptions {
        port,
        baud: args.baud,
        scenario,
        random: args.random,
        seed: args.seed,
        faults,
        customers,
        fps: args.fps,
        sales_log: args.sales_log,
    };
    pump_sim::run(opts, stop_rx).await?;
    Ok(())
}

async fn run_lan_simulator(
    args: &Args,
    scenario: Scenario,
    customers: CustomerProfile,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.garbage_rate),
        "--garbage-rate must be within 0..1"
    );
    anyhow::ensure!((1..=127).contains(&args.node), "--node must be 1..127");
    let mut sales_log = pump_sim::open_sales_log(args.sales_log.as_deref())?;
    let device = match args.protocol {
        Protocol::IfsfFdc => LanDeviceOptions::IfsfFdc(FdcDeviceOptions {
            header: args.fdc_header.variant(),
            passphrase: args.passphrase.clone(),
            clear_after_s: args.clear_after_s,
            quiet: args.quiet,
        }),
        _ => LanDeviceOptions::IfsfTcp(IfsfDeviceOptions {
            node: args.node,
            clear_after_s: args.clear_after_s,
            quiet: args.quiet,
        }),
    };
    let options = LanSimOptions {
        listen: args.listen,
        scenario,
        device,
        random: args.random.then_some((args.seed, customers)),
        faults: LanFaults {
            drops_per_min: args.link_drops_per_min,
            restarts_per_min: args.restarts_per_min,
            restart_s: args.restart_s,
            restart_at_s: Vec::new(),
            garbage_rate: args.garbage_rate,
            until_s: None,
        },
        seed: args.seed,
    };
    let (bound, bound_rx) = tokio::sync::oneshot::channel::<std::net::SocketAddr>();
    if let Some(path) = args.bound_file.clone() {
        tokio::spawn(async move {
            if let Ok(address) = bound_rx.await {
                // Written whole, then renamed: a reader never sees half an address.
                let partial = path.with_extension("partial");
                let written = std::fs::write(&partial, address.to_string())
                    .and_then(|()| std::fs::rename(&partial, &path));
                if let Err(e) = written {
                    tracing::error!(error = %e, path = %path.display(), "cannot write the bound address");
                }
            }
        });
    }
    let mut log_error = None;
    let report = run_lan_device(
        options,
        bound,
        |record| {
            use std::io::Write;
            if let Some(log) = sales_log.as_mut() {
                if let Err(e) = writeln!(log, "{}", record.to_json()) {
                    log_error.get_or_insert(e);
                }
            }
        },
        stop,
    )
    .await?;
    if let Some(e) = log_error {
        anyhow::bail!("writing the sales log: {e}");
    }
    tracing::info!(
        sales = report.records.len(),
        connections = report.connections,
        forbidden = report.forbidden.len(),
        "station system simulator stopped"
    );
    anyhow::ensure!(
        report.forbidden.is_empty(),
        "received {} message(s) a watch-only client must never send (a write, lock or clear): {:?}",
        report.forbidden.len(),
        report.forbidden
    );
    Ok(())
}
