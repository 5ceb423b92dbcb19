//! A simulated station system on a TCP port (an IFSF dispenser node, an FDC controller): one
//! client at a time, and a new connection closes the old one (as a public controller does).
//! Faults: the link dropped by the device at random, the device down for a while (a restart:
//! every connection closed at once until it is back; its sale buffers survive), and runs of
//! garbage bytes between messages (a stream out of step).

use std::net::SocketAddr;
use std::time::Duration;

use ifsf_protocol::{Message, MessageDecoder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::fdc_device::{FdcDevice, FdcDeviceOptions};
use crate::ifsf_device::{IfsfDevice, IfsfDeviceOptions};
use crate::pump::SimRecord;
use crate::schedule::{CustomerProfile, Rng};
use crate::{Scenario, SimError};

/// Faults of the link and the device.
#[derive(Debug, Clone, Default)]
pub struct LanFaults {
    /// Expected link drops per minute (the device closes the connection).
    pub drops_per_min: f64,
    /// Expected restarts per minute: the link dropped and every connection closed at once for
    /// `restart_s`.
    pub restarts_per_min: f64,
    pub restart_s: f64,
    /// Restarts at these times (seconds since start), besides the random ones.
    pub restart_at_s: Vec<f64>,
    /// Probability (0..1) per message sent that a run of garbage bytes goes out before it.
    pub garbage_rate: f64,
    /// No faults after this time (seconds since start), so tests can settle.
    pub until_s: Option<f64>,
}

/// Which system the simulator plays.
#[derive(Debug, Clone)]
pub enum LanDeviceOptions {
    IfsfTcp(IfsfDeviceOptions),
    IfsfFdc(FdcDeviceOptions),
}

#[derive(Debug, Clone)]
pub struct LanSimOptions {
    pub listen: SocketAddr,
    pub scenario: Scenario,
    pub device: LanDeviceOptions,
    /// Random customers (seed and profile), besides the scripted ones.
    pub random: Option<(u64, CustomerProfile)>,
    pub faults: LanFaults,
    pub seed: u64,
}

/// What a run did, for the tests.
#[derive(Debug, Clone, Default)]
pub struct LanSimReport {
    pub records: Vec<SimRecord>,
    /// Every message received that a watch-only client must never send (a write, a lock, a
    /// clear), as the device saw it.
    pub forbidden: Vec<String>,
    pub connections: u64,
    pub drops: u64,
    pub restarts: u64,
    pub garbage_runs: u64,
}

/// A station system's wire face, for [`run_lan_device`].
trait LanDevice {
    fn points(&self) -> Vec<u8>;
    /// A new client: the stream starts afresh.
    fn connected(&mut self);
    fn disconnected(&mut self);
    /// Bytes from the client; an error drops it (the stream cannot be framed any more).
    fn on_bytes(&mut self, bytes: &[u8]) -> Result<(), String>;
    fn tick(&mut self, now_s: f64);
    /// Whole messages to send, encoded.
    fn take_frames(&mut self) -> Vec<Vec<u8>>;
    fn take_records(&mut self) -> Vec<SimRecord>;
    fn forbidden(&self) -> Vec<String>;
}

struct IfsfFace {
    device: IfsfDevice,
    decoder: MessageDecoder,
}

impl LanDevice for IfsfFace {
    fn points(&self) -> Vec<u8> {
        self.device.points()
    }
    fn connected(&mut self) {
        self.device.disconnected();
        self.decoder = MessageDecoder::new();
    }
    fn disconnected(&mut self) {
        self.device.disconnected();
    }
    fn on_bytes(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.decoder.push(bytes);
        while let Some(decoded) = self.decoder.next_message() {
            if let Ok(message) = decoded {
                self.device.on_message(&message);
            }
        }
        Ok(())
    }
    fn tick(&mut self, now_s: f64) {
        self.device.tick(now_s);
    }
    fn take_frames(&mut self) -> Vec<Vec<u8>> {
        self.device
            .take_output()
            .iter()
            .filter_map(|m: &Message| m.encode().ok())
            .collect()
    }
    fn take_records(&mut self) -> Vec<SimRecord> {
        self.device.take_records()
    }
    fn forbidden(&self) -> Vec<String> {
        self.device
            .writes()
            .iter()
            .map(|m| format!("{m:?}"))
            .collect()
    }
}

impl LanDevice for FdcDevice {
    fn points(&self) -> Vec<u8> {
        FdcDevice::points(self)
    }
    fn connected(&mut self) {
        FdcDevice::connected(self);
    }
    fn disconnected(&mut self) {
        FdcDevice::disconnected(self);
    }
    fn on_bytes(&mut self, bytes: &[u8]) -> Result<(), String> {
        FdcDevice::on_bytes(self, bytes)
    }
    fn tick(&mut self, now_s: f64) {
        FdcDevice::tick(self, now_s);
    }
    fn take_frames(&mut self) -> Vec<Vec<u8>> {
        FdcDevice::take_frames(self)
    }
    fn take_records(&mut self) -> Vec<SimRecord> {
        FdcDevice::take_records(self)
    }
    fn forbidden(&self) -> Vec<String> {
        FdcDevice::forbidden(self).to_vec()
    }
}

/// Runs the simulated system until `shutdown`; `bound` receives the address it listens on.
/// Sales are passed to `on_record` as they complete (the ground truth).
pub async fn run_lan_device(
    options: LanSimOptions,
    bound: tokio::sync::oneshot::Sender<SocketAddr>,
    on_record: impl FnMut(&SimRecord),
    shutdown: watch::Receiver<bool>,
) -> Result<LanSimReport, SimError> {
    match &options.device {
        LanDeviceOptions::IfsfTcp(device) => {
            let face = IfsfFace {
                device: IfsfDevice::new(&options.scenario, device, options.random.clone()),
                decoder: MessageDecoder::new(),
            };
            serve(face, &options, bound, on_record, shutdown).await
        }
        LanDeviceOptions::IfsfFdc(device) => {
            let face = FdcDevice::new(&options.scenario, device, options.random.clone());
            serve(face, &options, bound, on_record, shutdown).await
        }
    }
}

async fn serve(
    mut device: impl LanDevice,
    options: &LanSimOptions,
    bound: tokio::sync::oneshot::Sender<SocketAddr>,
    mut on_record: impl FnMut(&SimRecord),
    mut shutdown: watch::Receiver<bool>,
) -> Result<LanSimReport, SimError> {
    let listener = TcpListener::bind(options.listen).await?;
    let _ = bound.send(listener.local_addr()?);
    let mut rng = Rng::new(options.seed ^ 0x1F5F);
    let mut report = LanSimReport::default();
    let started = tokio::time::Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    let mut client: Option<TcpStream> = None;
    let mut down_until = 0.0f64;
    let mut last_tick_s = 0.0f64;
    let mut buf = vec![0u8; 16 * 1024];
    tracing::info!(listen = %listener.local_addr()?, points = ?device.points(), "station system simulator running");
    loop {
        let now_s = started.elapsed().as_secs_f64();
        let faults_on = options.faults.until_s.is_none_or(|u| now_s < u);
        tokio::select! {
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    break;
                }
            }
            accepted = listener.accept() => {
                let (stream, _) = accepted?;
                if now_s < down_until {
                    drop(stream);
                    continue;
                }
                // A new connection closes the old one.
                device.connected();
                report.connections += 1;
                let _ = stream.set_nodelay(true);
                client = Some(stream);
            }
            read = read_client(&mut client, &mut buf) => {
                let taken = match read {
                    Some(n) if n > 0 => device.on_bytes(&buf[..n]),
                    _ => Err("closed".into()),
                };
                if let Err(why) = taken {
                    tracing::debug!(why, "client dropped");
                    client = None;
                    device.disconnected();
                }
            }
            _ = ticker.tick() => {
                device.tick(now_s);
                let scheduled = options.faults.restart_at_s.iter().any(|&at| at <= now_s && at > last_tick_s);
                last_tick_s = now_s;
                if scheduled || (faults_on && client.is_some()) {
                    let per_tick = 0.1 / 60.0;
                    if scheduled || rng.unit() < options.faults.restarts_per_min * per_tick {
                        report.restarts += 1;
                        down_until = now_s + options.faults.restart_s;
                        client = None;
                        device.disconnected();
                        tracing::debug!("fault injection: device restart");
                    } else if rng.unit() < options.faults.drops_per_min * per_tick {
                        report.drops += 1;
                        client = None;
                        device.disconnected();
                        tracing::debug!("fault injection: link dropped");
                    }
                }
            }
        }
        for record in device.take_records() {
            on_record(&record);
            report.records.push(record);
        }
        let frames = device.take_frames();
        if let Some(stream) = client.as_mut() {
            let mut bytes = Vec::new();
            for frame in frames {
                if faults_on && rng.unit() < options.faults.garbage_rate {
                    report.garbage_runs += 1;
                    let len = 1 + (rng.next_u64() % 40) as usize;
                    bytes.extend((0..len).map(|_| rng.next_u64() as u8));
                }
                bytes.extend(frame);
            }
            if !bytes.is_empty() && stream.write_all(&bytes).await.is_err() {
                client = None;
                device.disconnected();
            }
        }
    }
    report.forbidden = device.forbidden();
    Ok(report)
}

/// Bytes from the client; pending forever without one. `None` or `Some(0)`: the link is gone.
async fn read_client(client: &mut Option<TcpStream>, buf: &mut [u8]) -> Option<usize> {
    match client.as_mut() {
        Some(stream) => stream.read(buf).await.ok(),
        None => std::future::pending().await,
    }
}
