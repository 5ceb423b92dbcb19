//! A TCP proxy between an MQTT client and its broker that misbehaves the way a broker or a
//! network may: it holds the broker's PUBACKs and hands them over last first, each round keeping
//! the oldest back for the next, and drops the connection at set points with PUBACKs still held
//! (they never arrive). Everything else passes
//! through as it comes. It logs which PUBACKs reached the client, by the `id` of the envelope
//! each acknowledged publish carried, so a test can check that the client deleted nothing it
//! was not told had arrived.
//!
//! [`packet`] is the pure part (MQTT framing, bytes in and out); the proxy's threads do the I/O.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod packet;

use std::collections::{HashMap, HashSet};
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use packet::{is_puback, publish_ids, take_packet};

/// How the proxy treats the broker's PUBACKs.
#[derive(Debug, Clone)]
pub struct AckShuffle {
    /// PUBACKs held before they are handed over, last first (the oldest of them kept back for
    /// the next round).
    pub hold: usize,
    /// Fewer held are handed over once the first of them waited this long.
    pub flush_after: Duration,
    /// The connection is dropped, and the PUBACKs then held thrown away, once the PUBACKs handed
    /// over (over all connections) would reach each of these counts; each drop happens once.
    pub drop_after: Vec<usize>,
}

/// What the proxy saw and did.
#[derive(Debug, Clone, Default)]
pub struct ProxyLog {
    /// Envelope ids of the publishes whose PUBACK was handed to the client.
    pub acks_delivered: HashSet<String>,
    pub acks_handed_over: usize,
    /// PUBACKs handed over before one the broker had sent earlier.
    pub acks_reordered: usize,
    /// PUBACKs thrown away with a dropped connection.
    pub acks_discarded: usize,
    pub drops: usize,
    pub connections: usize,
}

/// A running proxy; it stops accepting when dropped (connections then open run out by
/// themselves when either side closes).
pub struct FaultProxy {
    pub port: u16,
    log: Arc<Mutex<ProxyLog>>,
    stop: Arc<AtomicBool>,
}

impl FaultProxy {
    /// Listens on a free localhost port and proxies each connection to the broker on
    /// `127.0.0.1:broker_port`.
    pub fn start(broker_port: u16, shuffle: AckShuffle) -> io::Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        listener.set_nonblocking(true)?;
        let log = Arc::new(Mutex::new(ProxyLog::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (accept_log, accept_stop) = (log.clone(), stop.clone());
        std::thread::spawn(move || {
            while !accept_stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        lock(&accept_log).connections += 1;
                        let (log, shuffle) = (accept_log.clone(), shuffle.clone());
                        std::thread::spawn(move || {
                            // A connection that fails ends; the client reconnects.
                            let _ = serve(client, broker_port, &shuffle, &log);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Ok(FaultProxy { port, log, stop })
    }

    /// What the proxy saw and did so far.
    pub fn log(&self) -> ProxyLog {
        lock(&self.log).clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A poisoned lock (a panic on another proxy thread) still guards valid data.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Proxies one client connection until either side closes or the proxy drops it.
fn serve(
    client: TcpStream,
    broker_port: u16,
    shuffle: &AckShuffle,
    log: &Mutex<ProxyLog>,
) -> io::Result<()> {
    client.set_nonblocking(false)?;
    let broker = TcpStream::connect(("127.0.0.1", broker_port))?;
    let in_flight: Arc<Mutex<HashMap<u16, String>>> = Arc::default();
    // Client -> broker: passed on as it comes, each QoS 1 publish's packet id noted first (the
    // broker can only acknowledge what it was sent).
    let (mut from_client, mut to_broker) = (client.try_clone()?, broker.try_clone()?);
    let noted = in_flight.clone();
    std::thread::spawn(move || {
        let (mut buf, mut chunk) = (Vec::new(), [0u8; 16 * 1024]);
        while let Ok(n) = from_client.read(&mut chunk) {
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            // Not MQTT: the connection ends (rather than bytes piling up unsent).
            while let Some(packet) = take_packet(&mut buf).unwrap_or_else(|_| {
                let _ = from_client.shutdown(Shutdown::Both);
                None
            }) {
                if let Some((pkid, id)) = publish_ids(&packet) {
                    lock(&noted).insert(pkid, id);
                }
                if to_broker.write_all(&packet).is_err() {
                    return;
                }
            }
        }
        let _ = to_broker.shutdown(Shutdown::Both);
    });
    // Broker -> client: PUBACKs held and handed over last first, everything else at once.
    let (mut from_broker, mut to_client) = (broker, client);
    from_broker.set_read_timeout(Some(Duration::from_millis(10)))?;
    let (mut buf, mut chunk) = (Vec::new(), [0u8; 16 * 1024]);
    let mut held: Vec<(u16, Vec<u8>)> = Vec::new();
    let mut held_since = Instant::now();
    // `held[0]` was kept back in the last round.
    let mut straggling = false;
    loop {
        match from_broker.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => return Err(e),
        }
        while let Some(packet) =
            take_packet(&mut buf).map_err(|e| io::Error::new(ErrorKind::InvalidData, e))?
        {
            match is_puback(&packet) {
                Some(pkid) => {
                    if held.is_empty() {
                        held_since = Instant::now();
                    }
                    held.push((pkid, packet));
                }
                None => to_client.write_all(&packet)?,
            }
        }
        if held.is_empty()
            || (held.len() < shuffle.hold && held_since.elapsed() < shuffle.flush_after)
        {
            continue;
        }
        let mut log = lock(log);
        let drop_due = shuffle
            .drop_after
            .get(log.drops)
            .is_some_and(|&at| log.acks_handed_over + held.len() >= at);
        if drop_due {
            // Gone with the connection: the client was never told these arrived.
            log.drops += 1;
            log.acks_discarded += held.len();
            let _ = to_client.shutdown(Shutdown::Both);
            let _ = from_broker.shutdown(Shutdown::Both);
            return Ok(());
        }
        // The oldest held that was not kept back before waits for the next round (a client that
        // deletes in publish order instead of by packet id deletes it too early).
        let fresh = usize::from(straggling);
        let straggler = (held.len() > fresh + 1).then(|| held.remove(fresh));
        straggling = straggler.is_some();
        // Each handed over before an older one: all but the oldest of this round, and that one
        // too when an older one stays.
        log.acks_reordered += held.len() - usize::from(!straggling);
        for (pkid, packet) in held.drain(..).rev() {
            // Logged before the client can read it: whatever the client deleted at any moment
            // is in the log by then.
            if let Some(id) = lock(&in_flight).remove(&pkid) {
                log.acks_delivered.insert(id);
            }
            log.acks_handed_over += 1;
            to_client.write_all(&packet)?;
        }
        if let Some(straggler) = straggler {
            held.push(straggler);
            held_since = Instant::now();
        }
    }
}
