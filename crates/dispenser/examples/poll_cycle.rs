//! Benchmark (figures, no assertions): DartMaster polling 8 FPs of the pump simulator over
//! socat ptys, with a relay in between that counts the bytes and POLLs on the wire. Prints the
//! poll-cycle time, bytes per cycle and the ratio to the line-rate limit at the configured baud
//! (bytes on the wire / (baud / 11): 8 data bits, parity, start and stop bit per byte).
//!
//! A pty has no baud rate: the measured cycle shows what the software costs; on a real line
//! the cycle can be no shorter than the line-rate limit.
//!
//! Run: `cargo run --release -p dispenser --example poll_cycle [baud] [seconds per phase]`

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dart_protocol::{FrameDecoder, FrameKind};
use dispenser::{DartConfig, DartMaster, DecimalsConfig, DispenserDriver, FpConfig};
use forecourt_events::DispenserEvent;
use pump_sim::{CustomerProfile, Scenario, SimOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio_serial::SerialPortBuilderExt;

const FPS: u8 = 8;

struct Pty {
    socat: Child,
    _dir: tempfile::TempDir,
    a: PathBuf,
    b: PathBuf,
}

impl Pty {
    fn new() -> Pty {
        let dir = tempfile::tempdir().expect("temp dir");
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let socat = Command::new("socat")
            .arg(format!("pty,raw,echo=0,link={}", a.display()))
            .arg(format!("pty,raw,echo=0,link={}", b.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("socat is installed");
        for _ in 0..100 {
            if a.exists() && b.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Pty {
            socat,
            _dir: dir,
            a,
            b,
        }
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        let _ = self.socat.kill();
        let _ = self.socat.wait();
    }
}

#[derive(Default)]
struct WireCounters {
    bytes: AtomicU64,
    /// POLLs (and ACKPOLLs) to the first FP: one per cycle.
    cycles: AtomicU64,
}

fn open(p: &Path) -> tokio_serial::SerialStream {
    tokio_serial::new(p.to_string_lossy(), 9600)
        .open_native_async()
        .expect("open pty")
}

async fn relay(master_side: PathBuf, pump_side: PathBuf, counters: Arc<WireCounters>) {
    let (mut m_rd, mut m_wr) = tokio::io::split(open(&master_side));
    let (mut p_rd, mut p_wr) = tokio::io::split(open(&pump_side));
    let c_down = counters.clone();
    tokio::spawn(async move {
        let mut buf = [0u8; 256];
        let mut decoder = FrameDecoder::new();
        while let Ok(n) = m_rd.read(&mut buf).await {
            if n == 0 {
                break;
            }
            c_down.bytes.fetch_add(n as u64, Ordering::Relaxed);
            decoder.push(&buf[..n]);
            for f in decoder.by_ref().flatten() {
                if f.addr == 0x50 && matches!(f.kind, FrameKind::Poll | FrameKind::AckPoll { .. }) {
                    c_down.cycles.fetch_add(1, Ordering::Relaxed);
                }
            }
            if p_wr.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    });
    let mut buf = [0u8; 256];
    while let Ok(n) = p_rd.read(&mut buf).await {
        if n == 0 {
            break;
        }
        counters.bytes.fetch_add(n as u64, Ordering::Relaxed);
        if m_wr.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
}

async fn phase(name: &str, busy: bool, baud: u32, seconds: f64) {
    let master_link = Pty::new();
    let pump_link = Pty::new();
    let counters = Arc::new(WireCounters::default());
    let relay = tokio::spawn(relay(
        master_link.b.clone(),
        pump_link.a.clone(),
        counters.clone(),
    ));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut scenario = String::new();
    for fp in 1..=FPS {
        scenario.push_str(&format!(
            "[[pump]]\nfp = {fp}\nprices = [\"7.85\", \"8.32\"]\n"
        ));
    }
    let mut opts = SimOptions::new(&pump_link.b, Scenario::from_toml(&scenario).unwrap());
    opts.random = busy;
    opts.customers = CustomerProfile {
        litres: (5.0, 40.0),
        flow_lps: 5.0,
        pause_s: (0.5, 1.5),
        first_lift_s: (0.5, 1.0),
        until_s: None,
    };
    let sim = tokio::spawn(pump_sim::run(opts, stop_rx.clone()));
    let fps = (1..=FPS)
        .map(|fp| FpConfig {
            fp,
            address: 0x4F + fp,
            decimals: DecimalsConfig::default(),
            grades: vec![],
            nozzles: Some(2),
        })
        .collect();
    let mut cfg = DartConfig::new(&master_link.a, fps);
    cfg.baud = baud;
    cfg.auto_authorize = true;
    cfg.poll_interval_ms = 0;
    cfg.response_timeout_ms = 100;
    let (ev_tx, mut ev_rx) = mpsc::channel(4096);
    let master = tokio::spawn(DartMaster::new(cfg).unwrap().run(ev_tx, stop_rx));
    let sales = tokio::spawn(async move {
        let mut n = 0u64;
        while let Some(ev) = ev_rx.recv().await {
            if matches!(ev, DispenserEvent::SaleCompleted(_)) {
                n += 1;
            }
        }
        n
    });

    // Warm-up: let the master read statuses and totals first.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (b0, c0) = (
        counters.bytes.load(Ordering::Relaxed),
        counters.cycles.load(Ordering::Relaxed),
    );
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    let elapsed = t0.elapsed().as_secs_f64();
    let bytes = counters.bytes.load(Ordering::Relaxed) - b0;
    let cycles = (counters.cycles.load(Ordering::Relaxed) - c0).max(1);
    stop_tx.send(true).unwrap();
    let _ = master.await;
    let _ = sim.await;
    relay.abort();
    let sales = sales.await.unwrap_or(0);

    let cycle_ms = elapsed * 1000.0 / cycles as f64;
    let bytes_per_cycle = bytes as f64 / cycles as f64;
    let line_bytes_per_s = f64::from(baud) / 11.0;
    let line_limit_ms = bytes_per_cycle / line_bytes_per_s * 1000.0;
    println!(
        "{name:<5} {FPS} FPs: {cycles} cycles in {elapsed:.1} s, cycle {cycle_ms:.2} ms, \
         {bytes_per_cycle:.1} bytes/cycle, line-rate limit at {baud} baud {line_limit_ms:.1} ms \
         -> measured/limit {:.3}; {sales} sales",
        cycle_ms / line_limit_ms
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let baud: u32 = args.next().and_then(|v| v.parse().ok()).unwrap_or(9600);
    let seconds: f64 = args.next().and_then(|v| v.parse().ok()).unwrap_or(10.0);
    phase("idle", false, baud, seconds).await;
    phase("busy", true, baud, seconds).await;
}
