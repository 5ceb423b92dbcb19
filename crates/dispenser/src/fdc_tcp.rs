//! IFSF POS-FDC, watch-only: the agent logs on to the forecourt controller as one more POS
//! application, takes the sales it notifies, asks for the sales it holds after each logon and
//! every `reconcile_interval_s`, and sends `POS_Ready` every `heartbeat_interval_s`. It never
//! locks, unlocks or clears a sale: those requests cannot be built ([`crate::fdc_watch`]).
//!
//! A bad frame header loses the stream's framing: the link is dropped and made again (then the
//! held sales are asked for again), like any other loss ([`crate::tcp_link`]).

use std::sync::Arc;
use std::time::Duration;

use forecourt_events::{now_millis, DispenserEvent, Heartbeat};
use ifsf_fdc::{encode_frame, FrameDecoder};
use tokio::io::AsyncReadExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use crate::driver::{DispenserDriver, DispenserError};
use crate::fdc_config::IfsfFdcConfig;
use crate::fdc_watch::FdcWatch;
use crate::tcp_link::{forward, keep_connected, write, LinkSession, SessionEnd};

pub struct IfsfFdcDriver {
    config: IfsfFdcConfig,
    heartbeat: Arc<Heartbeat>,
    stats: Arc<crate::LinkStats>,
}

impl IfsfFdcDriver {
    pub fn new(config: IfsfFdcConfig) -> Result<Self, DispenserError> {
        config.validate()?;
        Ok(IfsfFdcDriver {
            config,
            heartbeat: Arc::new(Heartbeat::new()),
            stats: Arc::default(),
        })
    }
}

impl DispenserDriver for IfsfFdcDriver {
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
        let mut link = FdcLink {
            driver: &self,
            watch: FdcWatch::new(&self.config),
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

/// One connection to the controller: the watch's state lives across connections.
struct FdcLink<'a> {
    driver: &'a IfsfFdcDriver,
    watch: FdcWatch,
    events: &'a mpsc::Sender<DispenserEvent>,
}

impl FdcLink<'_> {
    async fn send(&self, writer: &mut OwnedWriteHalf, xml: &[String]) -> Result<(), String> {
        let config = &self.driver.config;
        for message in xml {
            let frame = encode_frame(
                config.header.variant(),
                message.as_bytes(),
                config.passphrase.as_bytes(),
            )
            .map_err(|e| format!("framing a request: {e}"))?;
            write(writer, &frame).await?;
            self.driver.stats.sent();
        }
        Ok(())
    }
}

impl LinkSession for FdcLink<'_> {
    fn protocol(&self) -> &'static str {
        "ifsf-fdc"
    }

    async fn ended(&mut self, _why: &str) -> Result<(), DispenserError> {
        forward(self.events, self.watch.disconnected(now_millis()).events).await
    }

    async fn session(
        &mut self,
        stream: TcpStream,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<SessionEnd, DispenserError> {
        let config = &self.driver.config;
        let (mut reader, mut writer) = stream.into_split();
        let hello = self.watch.connected(now_millis()).send;
        if let Err(why) = self.send(&mut writer, &hello).await {
            return Ok(SessionEnd::Lost(why));
        }
        let silence = Duration::from_secs(config.silence_timeout_s);
        let beat_every = Duration::from_secs(config.heartbeat_interval_s);
        let reconcile_every = Duration::from_secs(config.reconcile_interval_s);
        let mut decoder = FrameDecoder::new(config.header.variant(), config.passphrase.as_bytes());
        let mut buf = vec![0u8; 16 * 1024];
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let now = tokio::time::Instant::now;
        let (mut last_message, mut last_beat, mut last_reconcile) = (now(), now(), now());
        loop {
            tokio::select! {
                read = reader.read(&mut buf) => {
                    let n = match read {
                        Ok(0) => return Ok(SessionEnd::Lost("the controller closed the link".into())),
                        Ok(n) => n,
                        Err(e) => return Ok(SessionEnd::Lost(format!("read: {e}"))),
                    };
                    decoder.push(&buf[..n]);
                    while let Some(frame) = decoder.next_xml() {
                        let xml = match frame {
                            Ok(xml) => xml,
                            Err(e) => {
                                self.driver.stats.error(&format!("bad frame: {e}"));
                                return Ok(SessionEnd::Lost(format!("bad frame: {e}")));
                            }
                        };
                        self.driver.stats.received();
                        last_message = now();
                        let step = self.watch.on_xml(&xml, now_millis());
                        forward(self.events, step.events).await?;
                        if let Some(result) = step.refused {
                            return Ok(SessionEnd::Lost(format!("logon refused: {result}")));
                        }
                        if let Err(why) = self.send(&mut writer, &step.send).await {
                            return Ok(SessionEnd::Lost(why));
                        }
                    }
                }
                _ = tick.tick() => {
                    self.driver.heartbeat.beat();
                    if last_message.elapsed() >= silence {
                        return Ok(SessionEnd::Lost(format!("no message for {} s", silence.as_secs())));
                    }
                    let mut due = Vec::new();
                    if last_beat.elapsed() >= beat_every {
                        last_beat = now();
                        due.extend(self.watch.heartbeat());
                    }
                    if last_reconcile.elapsed() >= reconcile_every {
                        last_reconcile = now();
                        due.extend(self.watch.reconcile(now_millis()));
                    }
                    if let Err(why) = self.send(&mut writer, &due).await {
                        return Ok(SessionEnd::Lost(why));
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
