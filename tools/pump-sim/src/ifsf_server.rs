//! The simulated IFSF dispenser node on a TCP port: one client at a time, and a new connection
//! closes the old one (as a public controller does). Faults: the link dropped by the device at
//! random, the device down for a while (a controller restart: every connection closed at once
//! until it is back; its transaction buffers survive), and runs of garbage bytes between
//! messages (a stream out of step).

use std::net::SocketAddr;
use std::time::Duration;

use ifsf_protocol::{Message, MessageDecoder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::ifsf_device::{IfsfDevice, IfsfDeviceOptions};
use crate::pump::SimRecord;
use crate::schedule::{CustomerProfile, Rng};
use crate::{Scenario, SimError};

/// Faults of the link and the device.
#[derive(Debug, Clone, Default)]
pub struct IfsfFaults {
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

#[derive(Debug, Clone)]
pub struct IfsfSimOptions {
    pub listen: SocketAddr,
    pub scenario: Scenario,
    pub device: IfsfDeviceOptions,
    /// Random customers (seed and profile), besides the scripted ones.
    pub random: Option<(u64, CustomerProfile)>,
    pub faults: IfsfFaults,
    pub seed: u64,
}

/// What a run did, for the tests.
#[derive(Debug, Clone, Default)]
pub struct IfsfSimReport {
    pub records: Vec<SimRecord>,
    /// Every write received: a watch-only client must never send one.
    pub writes: Vec<Message>,
    pub connections: u64,
    pub drops: u64,
    pub restarts: u64,
    pub garbage_runs: u64,
}

/// Runs the device until `shutdown`; `bound` receives the address it listens on. Sales are
/// passed to `on_record` as they complete (the ground truth).
pub async fn run_ifsf(
    options: IfsfSimOptions,
    bound: tokio::sync::oneshot::Sender<SocketAddr>,
    mut on_record: impl FnMut(&SimRecord),
    mut shutdown: watch::Receiver<bool>,
) -> Result<IfsfSimReport, SimError> {
    let listener = TcpListener::bind(options.listen).await?;
    let _ = bound.send(listener.local_addr()?);
    let mut device = IfsfDevice::new(&options.scenario, &options.device, options.random.clone());
    let mut rng = Rng::new(options.seed ^ 0x1F5F);
    let mut report = IfsfSimReport::default();
    let started = tokio::time::Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    let mut client: Option<(TcpStream, MessageDecoder)> = None;
    let mut down_until = 0.0f64;
    let mut last_tick_s = 0.0f64;
    let mut buf = vec![0u8; 4096];
    tracing::info!(listen = %listener.local_addr()?, points = ?device.points(), "IFSF device simulator running");
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
                device.disconnected();
                report.connections += 1;
                let _ = stream.set_nodelay(true);
                client = Some((stream, MessageDecoder::new()));
            }
            read = read_client(&mut client, &mut buf) => {
                match read {
                    Some(n) if n > 0 => {
                        if let Some((_, decoder)) = client.as_mut() {
                            decoder.push(&buf[..n]);
                            while let Some(decoded) = decoder.next_message() {
                                if let Ok(message) = decoded {
                                    device.on_message(&message);
                                }
                            }
                        }
                    }
                    _ => {
                        client = None;
                        device.disconnected();
                    }
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
        let output = device.take_output();
        if let Some((stream, _)) = client.as_mut() {
            let mut bytes = Vec::new();
            for message in output {
                if faults_on && rng.unit() < options.faults.garbage_rate {
                    report.garbage_runs += 1;
                    let len = 1 + (rng.next_u64() % 40) as usize;
                    bytes.extend((0..len).map(|_| rng.next_u64() as u8));
                }
                if let Ok(encoded) = message.encode() {
                    bytes.extend(encoded);
                }
            }
            if !bytes.is_empty() && stream.write_all(&bytes).await.is_err() {
                client = None;
                device.disconnected();
            }
        }
    }
    report.writes = device.writes().to_vec();
    Ok(report)
}

/// Bytes from the client; pending forever without one. `None` or `Some(0)`: the link is gone.
async fn read_client(
    client: &mut Option<(TcpStream, MessageDecoder)>,
    buf: &mut [u8],
) -> Option<usize> {
    match client.as_mut() {
        Some((stream, _)) => stream.read(buf).await.ok(),
        None => std::future::pending().await,
    }
}
