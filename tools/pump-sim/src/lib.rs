//! Pump simulator: one or more fuelling points answering as DART slaves on a serial port or pty
//! ([`Simulator`] is the I/O-free core, bytes in and out; [`run`] drives it on a port), or a
//! station system on a TCP port: an IFSF over TCP/IP dispenser node ([`ifsf_device::IfsfDevice`])
//! or an IFSF POS-FDC controller ([`fdc_device::FdcDevice`]), both faces of one simulated
//! [`forecourt::Forecourt`], served by [`lan_server::run_lan_device`].

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod faults;
pub mod fdc_device;
pub mod forecourt;
pub mod ifsf_device;
pub mod lan_server;
pub mod pump;
pub mod scenario;
pub mod schedule;
pub mod slave;

use std::path::PathBuf;
use std::time::Duration;

use dart_protocol::{
    encode, parse_pump_transactions, Frame, FrameDecoder, FrameKind, PumpTransaction,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio_serial::SerialPortBuilderExt;

pub use faults::{FaultInjector, FaultOptions, FaultStats};
pub use pump::{SimPump, SimRecord, SimRecordKind};
pub use scenario::{CarSpec, DecimalsSpec, FillSpec, PumpSpec, Scenario};
pub use schedule::{CustomerProfile, Lift, RandomCustomers, Rng, Schedule};
pub use slave::SlaveLink;

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("scenario: {0}")]
    Scenario(String),
    #[error("cannot open {port}: {source}")]
    Open {
        port: String,
        source: tokio_serial::Error,
    },
    #[error("port closed")]
    PortClosed,
    #[error("port i/o: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Debug, Clone)]
pub struct SimOptions {
    pub port: PathBuf,
    pub baud: u32,
    pub scenario: Scenario,
    /// Add random customers on every pump, besides the scripted ones.
    pub random: bool,
    pub seed: u64,
    pub faults: FaultOptions,
    /// How random customers behave (with `random`).
    pub customers: CustomerProfile,
    /// Make sure FPs 1..=fps exist (default pumps for those the scenario lacks).
    pub fps: u8,
    /// Append every sale (and fill lost to a restart) as a JSON line: the ground truth.
    pub sales_log: Option<PathBuf>,
}

impl SimOptions {
    pub fn new(port: impl Into<PathBuf>, scenario: Scenario) -> Self {
        SimOptions {
            port: port.into(),
            baud: 9600,
            scenario,
            random: false,
            seed: 1,
            faults: FaultOptions::default(),
            customers: CustomerProfile::default(),
            fps: 0,
            sales_log: None,
        }
    }
}

/// The simulated pumps and their line state, without I/O. Time is seconds since sim start.
#[derive(Debug)]
pub struct Simulator {
    pumps: Vec<(SimPump, SlaveLink)>,
    /// When the master last addressed each pump (index as `pumps`), seconds since start.
    last_addressed: Vec<f64>,
    forget_unpolled_s: Option<f64>,
    schedule: Schedule,
    random: Option<RandomCustomers>,
    faults: FaultInjector,
    decoder: FrameDecoder,
    records: Vec<SimRecord>,
}

impl Simulator {
    pub fn new(opts: &SimOptions) -> Self {
        let mut scenario = opts.scenario.clone();
        scenario.ensure_fps(opts.fps);
        let pumps: Vec<_> = scenario
            .pumps
            .iter()
            .map(|p| (SimPump::new(p), SlaveLink::new()))
            .collect();
        let fps: Vec<u8> = pumps.iter().map(|(p, _)| p.fp).collect();
        Simulator {
            schedule: Schedule::from_scenario(&scenario),
            random: opts
                .random
                .then(|| RandomCustomers::with_profile(opts.seed, &fps, opts.customers.clone())),
            faults: FaultInjector::new(opts.faults.clone(), opts.seed),
            decoder: FrameDecoder::new(),
            records: Vec::new(),
            last_addressed: vec![0.0; pumps.len()],
            forget_unpolled_s: opts.faults.forget_unpolled_s,
            pumps,
        }
    }

    pub fn pumps(&self) -> impl Iterator<Item = &SimPump> {
        self.pumps.iter().map(|(p, _)| p)
    }

    /// What was injected so far.
    pub fn fault_stats(&self) -> FaultStats {
        self.faults.stats()
    }

    /// Ground-truth sales (and fills lost to restarts) since the last call.
    pub fn take_records(&mut self) -> Vec<SimRecord> {
        std::mem::take(&mut self.records)
    }

    /// How long to hold back the answer about to be written (fault injection), if at all.
    pub fn answer_delay(&mut self, now_s: f64) -> Option<Duration> {
        self.faults.answer_delay(now_s)
    }

    /// Starts due customers and advances filling progress.
    pub fn tick(&mut self, now_s: f64) {
        let dt = self.faults.tick(now_s);
        for (pump, link) in &mut self.pumps {
            if pump.is_flowing() && self.faults.restart_now(now_s, dt) && pump.restart(now_s) {
                link.restart();
            }
        }
        let mut lifts = self.schedule.due(now_s);
        if let Some(random) = self.random.as_mut() {
            for (p, _) in &self.pumps {
                let d = p.decimals();
                if let Some(l) = random.due(now_s, p.fp, p.is_free(), p.nozzle_count(), d.volume) {
                    lifts.push(l);
                }
            }
        }
        for lift in lifts {
            if let Some((pump, _)) = self.pumps.iter_mut().find(|(p, _)| p.fp == lift.fp) {
                if pump.lift(now_s, lift.nozzle, lift.end_s, lift.volume) {
                    tracing::debug!(fp = lift.fp, nozzle = lift.nozzle, "nozzle out");
                } else {
                    tracing::warn!(fp = lift.fp, "pump busy, scripted fill skipped");
                }
            }
        }
        for (pump, _) in &mut self.pumps {
            pump.set_late_final_dc2(self.faults.late_final_dc2(now_s));
            pump.tick(now_s);
            self.records.extend(pump.take_records());
        }
        if let Some(after) = self.forget_unpolled_s {
            for ((pump, link), &last) in self.pumps.iter_mut().zip(&self.last_addressed) {
                if now_s - last > after && pump.has_output() {
                    tracing::debug!(fp = pump.fp, "not polled: queued data dropped");
                    pump.take_outbox();
                    link.forget_unacked();
                }
            }
        }
    }

    /// Feeds bytes from the line; returns the bytes to send back.
    pub fn on_bytes(&mut self, bytes: &[u8], now_s: f64) -> Vec<u8> {
        self.tick(now_s);
        if self.faults.silent(now_s) {
            // Powered off as far as the line is concerned: hears nothing, says nothing.
            self.decoder.clear();
            return Vec::new();
        }
        let bytes = self.faults.mangle(bytes, now_s);
        self.decoder.push(&bytes);
        let mut out = Vec::new();
        while let Some(result) = self.decoder.next_frame() {
            // A slave never answers a frame with a CRC error: silence.
            let Ok(frame) = result else { continue };
            let Some(i) = self.pumps.iter().position(|(p, _)| p.address == frame.addr) else {
                continue;
            };
            self.last_addressed[i] = now_s;
            let (pump, link) = &mut self.pumps[i];
            if let Some(answer) = link.on_frame(&frame, pump, now_s) {
                self.records.extend(pump.take_records());
                if self.faults.drop_frame(now_s) {
                    tracing::debug!(?answer, "fault injection: frame dropped");
                    continue;
                }
                let mut bytes = encode(&answer);
                if carries_final_filling_info(&answer, pump) && self.faults.corrupt_final_dc2(now_s)
                {
                    tracing::debug!(fp = pump.fp, "fault injection: final DC2 block corrupted");
                    let middle = bytes.len() / 2;
                    bytes[middle] ^= 0x5A;
                }
                out.extend(bytes);
            }
        }
        self.faults.mangle(&out, now_s)
    }
}

/// Whether `answer` is a data block with filling information sent after the flow stopped: the
/// final volume and amount of a sale.
fn carries_final_filling_info(answer: &Frame, pump: &SimPump) -> bool {
    let FrameKind::Data { payload, .. } = &answer.kind else {
        return false;
    };
    !pump.is_flowing()
        && parse_pump_transactions(payload).is_ok_and(|txs| {
            txs.iter()
                .any(|t| matches!(t, PumpTransaction::FillingInfo { .. }))
        })
}

/// The ground-truth log, appended to, if asked for.
pub fn open_sales_log(path: Option<&std::path::Path>) -> std::io::Result<Option<std::fs::File>> {
    path.map(|path| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
    })
    .transpose()
}

/// Runs the simulator on `opts.port` until `shutdown` turns true (or its sender is dropped);
/// returns what faults it injected.
pub async fn run(
    opts: SimOptions,
    mut shutdown: watch::Receiver<bool>,
) -> Result<FaultStats, SimError> {
    let port_name = opts.port.to_string_lossy().into_owned();
    let mut port = tokio_serial::new(&port_name, opts.baud)
        .data_bits(tokio_serial::DataBits::Eight)
        .parity(tokio_serial::Parity::Odd)
        .stop_bits(tokio_serial::StopBits::One)
        .open_native_async()
        .map_err(|source| SimError::Open {
            port: port_name.clone(),
            source,
        })?;
    opts.faults.validate().map_err(SimError::Scenario)?;
    let mut sales_log = open_sales_log(opts.sales_log.as_deref())?;
    let mut sim = Simulator::new(&opts);
    let addrs: Vec<String> = sim
        .pumps()
        .map(|p| format!("fp {} @0x{:02X}", p.fp, p.address))
        .collect();
    tracing::info!(port = %port_name, pumps = ?addrs, "pump simulator running");
    let started = tokio::time::Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    let mut buf = [0u8; 256];
    loop {
        if *shutdown.borrow() {
            break;
        }
        tokio::select! {
            changed = shutdown.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            n = port.read(&mut buf) => {
                let n = n?;
                if n == 0 {
                    return Err(SimError::PortClosed);
                }
                let now_s = started.elapsed().as_secs_f64();
                let answer = sim.on_bytes(&buf[..n], now_s);
                if !answer.is_empty() {
                    if let Some(d) = sim.answer_delay(now_s) {
                        tokio::time::sleep(d).await;
                    }
                    port.write_all(&answer).await?;
                }
            }
            _ = ticker.tick() => sim.tick(started.elapsed().as_secs_f64()),
        }
        // Drained even without a log, so a long run does not accumulate them.
        let records = sim.take_records();
        if let Some(log) = sales_log.as_mut() {
            for r in records {
                use std::io::Write;
                writeln!(log, "{}", r.to_json())?;
            }
        }
    }
    let stats = sim.fault_stats();
    tracing::info!(?stats, "pump simulator stopped");
    Ok(stats)
}
