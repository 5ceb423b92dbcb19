//! DART listen mode: another controller polls the pumps; we open the port and never write a
//! byte. Frames are cut from the shared wire by their shapes (see [`dart_protocol::FrameDecoder`])
//! and by timing: a silence of `frame_gap_ms` ends any partial frame, so a frame cut by noise
//! does not swallow the next one. [`WireObserver`] tells who sent what and produces the events.
//!
//! If the port cannot be opened or fails, retry with backoff (1 s doubling to 30 s) forever
//! (`line::run_reconnecting`).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use dart_protocol::FrameDecoder;
use forecourt_events::{now_millis, DispenserEvent, FpNumber, Heartbeat};
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, watch};
use tokio_serial::SerialStream;

use crate::config::{DartConfig, DartMode};
use crate::driver::DispenserError;
use crate::line::{LineDriver, SessionEnd};
use crate::wire_observer::WireObserver;

/// Debounce deadlines are checked at least this often on a quiet wire.
const TICK: Duration = Duration::from_millis(100);

pub struct DartListener {
    cfg: DartConfig,
    observer: WireObserver,
    heartbeat: Arc<Heartbeat>,
    stats: Arc<crate::LinkStats>,
}

impl DartListener {
    pub fn new(cfg: DartConfig) -> Result<Self, DispenserError> {
        cfg.validate()?;
        if cfg.mode != DartMode::Listen {
            return Err(DispenserError::Config(
                "DartListener needs mode = \"listen\"".into(),
            ));
        }
        Ok(DartListener {
            observer: WireObserver::new(&cfg),
            cfg,
            heartbeat: Arc::new(Heartbeat::new()),
            stats: Arc::default(),
        })
    }

    /// Starts `fp`'s totalizer bookkeeping for `nozzle` from a reading the station kept across
    /// a restart (see `FuellingPoint::restore_totals`). False if `fp` is not on this line.
    pub fn restore_totals(&mut self, fp: FpNumber, nozzle: u8, total: u64) -> bool {
        self.observer.restore_totals(fp, nozzle, total)
    }

    /// Reads until shutdown or a port error.
    async fn read_line(
        &mut self,
        mut port: SerialStream,
        events: &mpsc::Sender<DispenserEvent>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<SessionEnd, DispenserError> {
        let mut decoder = FrameDecoder::new();
        let gap = Duration::from_millis(self.cfg.frame_gap_ms.max(1));
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut buf = [0u8; 512];
        loop {
            // At least every TICK, even on a silent wire.
            self.heartbeat.beat();
            if *shutdown.borrow() {
                return Ok(SessionEnd::Shutdown);
            }
            let mut out = Vec::new();
            tokio::select! {
                changed = shutdown.changed() => {
                    if changed.is_err() {
                        return Ok(SessionEnd::Shutdown);
                    }
                }
                _ = ticker.tick() => out.extend(self.observer.tick(now_millis())),
                read = tokio::time::timeout(gap, port.read(&mut buf)) => match read {
                    Err(_) => {
                        // Quiet wire: a partial frame will never complete.
                        if decoder.buffered() > 0 {
                            decoder.clear();
                            self.observer.line_break();
                        }
                    }
                    Ok(Ok(0)) => return Ok(SessionEnd::PortLost(io::ErrorKind::UnexpectedEof.into())),
                    Ok(Err(e)) => return Ok(SessionEnd::PortLost(e)),
                    Ok(Ok(n)) => {
                        decoder.push(&buf[..n]);
                        let now = now_millis();
                        while let Some(r) = decoder.next_frame() {
                            match r {
                                Ok(frame) => {
                                    self.stats.received();
                                    out.extend(self.observer.on_frame(now, &frame));
                                }
                                Err(e) => {
                                    // Neither side accepts it; nor do we.
                                    tracing::debug!(error = %e, "bad frame on the wire");
                                    self.stats.error(&format!("bad frame on the wire: {e}"));
                                }
                            }
                        }
                    }
                },
            }
            send_all(events, out).await?;
        }
    }
}

async fn send_all(
    events: &mpsc::Sender<DispenserEvent>,
    out: Vec<DispenserEvent>,
) -> Result<(), DispenserError> {
    for ev in out {
        events
            .send(ev)
            .await
            .map_err(|_| DispenserError::EventsClosed)?;
    }
    Ok(())
}

impl LineDriver for DartListener {
    const OPENED: &'static str = "DART listener open (read only)";

    fn line_config(&self) -> &DartConfig {
        &self.cfg
    }

    fn line_heartbeat(&self) -> &Arc<Heartbeat> {
        &self.heartbeat
    }

    fn line_stats(&self) -> &Arc<crate::LinkStats> {
        &self.stats
    }

    fn fuelling_points(&self) -> usize {
        self.cfg.fps.len()
    }

    fn session(
        &mut self,
        port: SerialStream,
        events: &mpsc::Sender<DispenserEvent>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> impl std::future::Future<Output = Result<SessionEnd, DispenserError>> + Send {
        self.read_line(port, events, shutdown)
    }

    async fn line_lost(
        &mut self,
        events: &mpsc::Sender<DispenserEvent>,
    ) -> Result<(), DispenserError> {
        send_all(events, self.observer.all_offline(now_millis())).await
    }
}
