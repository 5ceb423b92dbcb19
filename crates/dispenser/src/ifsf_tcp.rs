//! IFSF over TCP/IP, watch-only: the agent joins the dispenser node's network as an additional
//! controlling device (its own node number), reads what the device announces and answers only
//! what the protocol requires (acknowledges). It never writes: every message goes through
//! [`watch_only_bytes`], which refuses anything but a read, an acknowledge or a heartbeat.
//!
//! The link is made again after any loss, from 1 s doubling to 30 s; after each connection the
//! transaction buffer is read back (see [`crate::ifsf_watch`]). A stream that stops making
//! sense (a run of messages not from the device, or not readable) is dropped and made again:
//! IFSF over TCP has no checksum or start flag to find the next message by. One doubtful message
//! may have swallowed others, so the buffer is read back once the stream is in step again.

use std::sync::Arc;
use std::time::Duration;

use forecourt_events::{now_millis, DispenserEvent, Heartbeat};
use ifsf_protocol::{Message, MessageDecoder};
use tokio::io::AsyncReadExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use crate::driver::{DispenserDriver, DispenserError};
use crate::ifsf_config::IfsfTcpConfig;
use crate::ifsf_watch::IfsfWatch;
use crate::tcp_link::{forward, keep_connected, write, LinkSession, SessionEnd};

/// This many messages in a row that are not the device's, or not readable: the stream is out of
/// step.
const OUT_OF_STEP_AFTER: u32 = 3;

pub struct IfsfTcpDriver {
    config: IfsfTcpConfig,
    heartbeat: Arc<Heartbeat>,
    stats: Arc<crate::LinkStats>,
    tap: Option<mpsc::UnboundedSender<Tapped>>,
}

/// A message on the link, for a field tool that shows the traffic (`forecourt-agent ifsf watch`).
#[derive(Debug, Clone, PartialEq)]
pub enum Tapped {
    Received(Message),
    Sent(Message),
    /// The link came up or went down, and why.
    Link(String),
}

impl IfsfTcpDriver {
    pub fn new(config: IfsfTcpConfig) -> Result<Self, DispenserError> {
        config.validate()?;
        Ok(IfsfTcpDriver {
            config,
            heartbeat: Arc::new(Heartbeat::new()),
            stats: Arc::default(),
            tap: None,
        })
    }

    /// Every message received and sent from now on, and the link's ups and downs.
    pub fn tap(&mut self) -> mpsc::UnboundedReceiver<Tapped> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.tap = Some(tx);
        rx
    }

    fn tapped(&self, what: impl FnOnce() -> Tapped) {
        if let Some(tap) = &self.tap {
            let _ = tap.send(what());
        }
    }

    async fn send(&self, writer: &mut OwnedWriteHalf, messages: &[Message]) -> Result<(), String> {
        for message in messages {
            self.tapped(|| Tapped::Sent(message.clone()));
        }
        send_messages(writer, messages).await?;
        for _ in messages {
            self.stats.sent();
        }
        Ok(())
    }
}

/// The bytes of `message` if a watch-only source may send it; `None` (and an error logged) for
/// anything else: a write is how a device is told to lock, clear or authorise.
pub fn watch_only_bytes(message: &Message) -> Option<Vec<u8>> {
    if !message.is_watch_only() {
        tracing::error!(
            ?message,
            "refused to send a message a watch-only source must never send"
        );
        return None;
    }
    message.encode().ok()
}

impl DispenserDriver for IfsfTcpDriver {
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
        let mut link = IfsfLink {
            driver: &self,
            watch: IfsfWatch::new(&self.config),
            events: &events,
        };
        keep_connected(
            &self.config.address,
            &self.heartbeat,
            &self.stats,
            &mut shutdown,
            &mut link,
        )
        .await
    }
}

/// One connection to the node: the watch's state lives across connections.
struct IfsfLink<'a> {
    driver: &'a IfsfTcpDriver,
    watch: IfsfWatch,
    events: &'a mpsc::Sender<DispenserEvent>,
}

impl LinkSession for IfsfLink<'_> {
    fn protocol(&self) -> &'static str {
        "ifsf-tcp"
    }

    async fn ended(&mut self, why: &str) -> Result<(), DispenserError> {
        self.driver.tapped(|| Tapped::Link(format!("down: {why}")));
        forward(self.events, self.watch.disconnected(now_millis()).events).await
    }

    async fn session(
        &mut self,
        stream: TcpStream,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<SessionEnd, DispenserError> {
        let (driver, watch, events) = (self.driver, &mut self.watch, self.events);
        driver.tapped(|| Tapped::Link("up".into()));
        let local_ip = match stream.local_addr() {
            Ok(std::net::SocketAddr::V4(local)) => Some(*local.ip()),
            _ => None,
        };
        let udp_heartbeat = match (&driver.config.heartbeat_to, local_ip) {
            (Some(to), Some(ip)) => UdpHeartbeat::open(to, ip, driver.config.own()).await,
            _ => None,
        };
        let beat_every = Duration::from_secs(driver.config.heartbeat_interval_s.max(1));
        let mut last_beat: Option<tokio::time::Instant> = None;
        let (mut reader, mut writer) = stream.into_split();
        if let Err(why) = driver.send(&mut writer, &watch.connected().send).await {
            return Ok(SessionEnd::Lost(why));
        }
        let silence = Duration::from_secs(driver.config.silence_timeout_s);
        let poll_every = Duration::from_secs(driver.config.poll_interval_s);
        let mut decoder = MessageDecoder::new();
        let mut buf = vec![0u8; 8192];
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut last_message = tokio::time::Instant::now();
        let mut last_poll = tokio::time::Instant::now();
        let mut out_of_step = 0u32;
        // A doubtful message may have swallowed a sale's: the buffer is read back once the
        // stream is in step again.
        let mut read_back_due = false;
        loop {
            tokio::select! {
                read = reader.read(&mut buf) => {
                    let n = match read {
                        Ok(0) => return Ok(SessionEnd::Lost("the device closed the link".into())),
                        Ok(n) => n,
                        Err(e) => return Ok(SessionEnd::Lost(format!("read: {e}"))),
                    };
                    decoder.push(&buf[..n]);
                    while let Some(decoded) = decoder.next_message() {
                        let before = watch.stats();
                        let step = match decoded {
                            Ok(message) => {
                                driver.tapped(|| Tapped::Received(message.clone()));
                                watch.on_message(&message, now_millis())
                            }
                            Err(_) => Default::default(),
                        };
                        let after = watch.stats();
                        let made_sense = after.messages > before.messages
                            && after.foreign == before.foreign
                            && after.unreadable == before.unreadable;
                        if made_sense {
                            driver.stats.received();
                            out_of_step = 0;
                            last_message = tokio::time::Instant::now();
                        } else {
                            driver.stats.error("a message not from the node, or not readable");
                            read_back_due = true;
                            out_of_step += 1;
                            if out_of_step >= OUT_OF_STEP_AFTER {
                                return Ok(SessionEnd::Lost("the stream is out of step".into()));
                            }
                        }
                        forward(events, step.events).await?;
                        if let Err(why) = driver.send(&mut writer, &step.send).await {
                            return Ok(SessionEnd::Lost(why));
                        }
                    }
                }
                _ = tick.tick() => {
                    driver.heartbeat.beat();
                    if let Some(udp) = &udp_heartbeat {
                        if last_beat.is_none_or(|t| t.elapsed() >= beat_every) {
                            last_beat = Some(tokio::time::Instant::now());
                            udp.send().await;
                        }
                    }
                    if last_message.elapsed() >= silence {
                        return Ok(SessionEnd::Lost(format!("no message for {} s", silence.as_secs())));
                    }
                    if read_back_due && out_of_step == 0 {
                        read_back_due = false;
                        if let Err(why) = driver.send(&mut writer, &watch.connected().send).await {
                            return Ok(SessionEnd::Lost(why));
                        }
                    }
                    if last_poll.elapsed() >= poll_every {
                        last_poll = tokio::time::Instant::now();
                        if let Err(why) = driver.send(&mut writer, &watch.poll()).await {
                            return Ok(SessionEnd::Lost(why));
                        }
                    }
                }
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        return Ok(SessionEnd::Shutdown);
                    }
                }
            }
        }
    }
}

async fn send_messages(writer: &mut OwnedWriteHalf, messages: &[Message]) -> Result<(), String> {
    for message in messages {
        if let Some(bytes) = watch_only_bytes(message) {
            write(writer, &bytes).await?;
        }
    }
    Ok(())
}

/// The agent's UDP heartbeat as a controlling device: its IP, no TCP port of its own (0: it
/// listens on none), its logical address, status 0.
struct UdpHeartbeat {
    socket: tokio::net::UdpSocket,
    to: std::net::SocketAddr,
    bytes: [u8; ifsf_protocol::HEARTBEAT_LEN],
}

impl UdpHeartbeat {
    async fn open(
        to: &str,
        ip: std::net::Ipv4Addr,
        own: ifsf_protocol::NodeAddress,
    ) -> Option<UdpHeartbeat> {
        let to: std::net::SocketAddr = to.parse().ok()?;
        let socket = tokio::net::UdpSocket::bind((ip, 0)).await.ok()?;
        let _ = socket.set_broadcast(true);
        let beat = ifsf_protocol::Heartbeat {
            ip,
            port: 0,
            address: own,
            status: 0,
        };
        Some(UdpHeartbeat {
            socket,
            to,
            bytes: beat.encode(),
        })
    }

    async fn send(&self) {
        if let Err(e) = self.socket.send_to(&self.bytes, self.to).await {
            tracing::debug!(error = %e, "heartbeat not sent");
        }
    }
}
