//! IFSF over TCP/IP from a mirrored copy of the traffic: the station's own controlling device
//! talks to the dispenser node; a switch mirrors that traffic to the agent's network port; the
//! agent reads the frames with a raw packet socket (`AF_PACKET`, which needs `CAP_NET_RAW`) and
//! decodes what the node says. It has no connection to the node and sends nothing at all.
//!
//! Only the node's side of each connection is decoded (frames from the configured address and
//! port). What the mirror misses is missed: there is no way to ask again (see
//! `docs/sources.md`); a hole in a stream is logged and the stream read on from the next
//! message the decoder can frame.

use std::collections::HashMap;
use std::io::Read;
use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use forecourt_events::{now_millis, DispenserEvent, Heartbeat};
use ifsf_protocol::capture::{tcp_segment, CaptureEvent, Flow, LinkType, StreamAssembler};
use ifsf_protocol::MessageDecoder;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::driver::{
    sleep_or_shutdown, DispenserDriver, DispenserError, EitherDriver, BACKOFF_MAX,
};
use crate::ifsf_config::IfsfTcpConfig;
use crate::ifsf_watch::IfsfWatch;
use crate::tcp_link::forward;

/// `ETH_P_ALL`: every protocol, as a raw packet socket's protocol (network byte order).
const ETH_P_ALL_BE: i32 = 0x0300;
/// How long a read on the raw socket waits before the capture thread looks at the stop flag.
const READ_WAIT: Duration = Duration::from_millis(500);

pub struct IfsfMirrorDriver {
    config: IfsfTcpConfig,
    device: SocketAddrV4,
    heartbeat: Arc<Heartbeat>,
    stats: Arc<crate::LinkStats>,
}

impl IfsfMirrorDriver {
    pub fn new(config: IfsfTcpConfig) -> Result<Self, DispenserError> {
        config.validate()?;
        let device = config.address.parse().map_err(|_| {
            DispenserError::Config(format!("{}: not an IPv4 address and port", config.address))
        })?;
        Ok(IfsfMirrorDriver {
            config,
            device,
            heartbeat: Arc::new(Heartbeat::new()),
            stats: Arc::default(),
        })
    }
}

/// A raw packet socket on every interface, or why not (most often: no `CAP_NET_RAW`).
pub fn open_capture() -> std::io::Result<socket2::Socket> {
    let socket = socket2::Socket::new(
        socket2::Domain::PACKET,
        socket2::Type::RAW,
        Some(socket2::Protocol::from(ETH_P_ALL_BE)),
    )?;
    socket.set_read_timeout(Some(READ_WAIT))?;
    Ok(socket)
}

impl DispenserDriver for IfsfMirrorDriver {
    fn heartbeat(&self) -> Arc<Heartbeat> {
        self.heartbeat.clone()
    }

    fn link_stats(&self) -> Arc<crate::LinkStats> {
        self.stats.clone()
    }

    async fn run(
        self,
        events: mpsc::Sender<DispenserEvent>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), DispenserError> {
        // The watch outlives a capture that fails and is opened again: the sales it reported
        // are not reported twice.
        let mut watch = IfsfWatch::mirror(&self.config);
        loop {
            let problem = match open_capture() {
                Ok(socket) => {
                    self.stats.opened();
                    match self
                        .capture(socket, &mut watch, &events, &mut shutdown)
                        .await?
                    {
                        Capture::Shutdown => return Ok(()),
                        Capture::Failed => {
                            let why = "the capture stopped".to_owned();
                            self.stats.lost(&why);
                            why
                        }
                    }
                }
                Err(e) => {
                    let why = format!("cannot read the mirror port: {e}; the agent needs CAP_NET_RAW and AF_PACKET (docs/sources.md has the systemd drop-in)");
                    self.stats.open_failed(&why);
                    why
                }
            };
            warn!(problem, "IFSF mirror down; trying again");
            if sleep_or_shutdown(BACKOFF_MAX, &mut shutdown, &self.heartbeat).await {
                return Ok(());
            }
        }
    }
}

/// How a capture ended.
enum Capture {
    Shutdown,
    Failed,
}

impl IfsfMirrorDriver {
    async fn capture(
        &self,
        socket: socket2::Socket,
        watch: &mut IfsfWatch,
        events: &mpsc::Sender<DispenserEvent>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Capture, DispenserError> {
        info!(node = %self.config.address, "IFSF mirror: reading the node's traffic");
        let (frames_tx, mut frames) = mpsc::channel::<(i64, Vec<u8>)>(1024);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (stop, device) = (stop.clone(), self.device);
            std::thread::Builder::new()
                .name("ifsf-mirror".into())
                .spawn(move || capture_frames(&socket, device, &frames_tx, &stop))
        };
        let Ok(thread) = thread else {
            return Ok(Capture::Failed);
        };
        let result = self.follow(watch, &mut frames, events, shutdown).await;
        stop.store(true, Ordering::Release);
        drop(frames);
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        result
    }
}

impl IfsfMirrorDriver {
    async fn follow(
        &self,
        watch: &mut IfsfWatch,
        frames: &mut mpsc::Receiver<(i64, Vec<u8>)>,
        events: &mpsc::Sender<DispenserEvent>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Capture, DispenserError> {
        let mut streams = StreamAssembler::default();
        let mut decoders: HashMap<Flow, MessageDecoder> = HashMap::new();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                frame = frames.recv() => {
                    let Some((t_ms, frame)) = frame else {
                        return Ok(Capture::Failed);
                    };
                    let Ok(segment) = tcp_segment(&frame, LinkType::Ethernet) else { continue };
                    if segment.flow.from != self.device {
                        continue;
                    }
                    for event in streams.take(&segment, t_ms) {
                        match event {
                            CaptureEvent::Bytes { flow, bytes, .. } => {
                                let decoder = decoders.entry(flow).or_default();
                                decoder.push(&bytes);
                                while let Some(decoded) = decoder.next_message() {
                                    match decoded {
                                        Ok(message) => {
                                            self.stats.received();
                                            let step = watch.on_message(&message, now_millis());
                                            forward(events, step.events).await?;
                                        }
                                        Err(e) => self.stats.error(&format!("unreadable message: {e}")),
                                    }
                                }
                            }
                            CaptureEvent::Hole { flow, missing, .. } => {
                                warn!(%flow, missing, "the mirror missed part of the node's traffic; what it held is lost");
                                self.stats.error(&format!("the mirror missed {missing} bytes of the node's traffic"));
                                decoders.insert(flow, MessageDecoder::new());
                            }
                            CaptureEvent::Skipped { .. } => {}
                        }
                    }
                }
                _ = tick.tick() => self.heartbeat.beat(),
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        return Ok(Capture::Shutdown);
                    }
                }
            }
        }
    }
}

/// Reads frames until `stop` (or the receiver is gone) and passes on those `device` sent over
/// TCP, stamped with their arrival time. The rest of the host's traffic (camera streams...) is
/// dropped here, on the capture thread.
fn capture_frames(
    socket: &socket2::Socket,
    device: SocketAddrV4,
    frames: &mpsc::Sender<(i64, Vec<u8>)>,
    stop: &AtomicBool,
) {
    let mut buf = vec![0u8; 65_536];
    let mut reader = socket;
    while !stop.load(Ordering::Acquire) {
        match reader.read(&mut buf) {
            Ok(n) => {
                let frame = &buf[..n];
                let from_device = tcp_segment(frame, LinkType::Ethernet)
                    .is_ok_and(|segment| segment.flow.from == device);
                if from_device
                    && frames
                        .blocking_send((now_millis(), frame.to_vec()))
                        .is_err()
                {
                    return;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => {
                warn!(error = %e, "reading the mirror port failed");
                return;
            }
        }
    }
}

/// The IFSF over TCP/IP source the config asks for: joining the node, or reading a mirror.
pub type IfsfSource = EitherDriver<crate::IfsfTcpDriver, IfsfMirrorDriver>;

impl EitherDriver<crate::IfsfTcpDriver, IfsfMirrorDriver> {
    pub fn new(config: IfsfTcpConfig) -> Result<Self, DispenserError> {
        Ok(match config.mode {
            crate::IfsfMode::Join => EitherDriver::First(crate::IfsfTcpDriver::new(config)?),
            crate::IfsfMode::Mirror => EitherDriver::Second(IfsfMirrorDriver::new(config)?),
        })
    }
}
