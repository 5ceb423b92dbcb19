//! DART listen mode: another controller polls the pumps; we open the port and never write a
//! byte. Frames are cut from the shared wire by their shapes (see [`dart_protocol::FrameDecoder`])
//! and by timing: a silence of `frame_gap_ms` ends any partial frame, so a frame cut by noise
//! does not swallow the next one. [`WireObserver`] tells who sent what and produces the events.
//!
//! If the port cannot be opened or fails, retry with backoff (1 s doubling to 30 s) forever.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use dart_protocol::FrameDecoder;
use forecourt_events::{now_millis, DispenserEvent, FpNumber, Heartbeat};
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, watch};
use tokio_serial::SerialStream;

use crate::config::{DartConfig, DartMode};
use crate::driver::{
    is_shutdown, sleep_or_shutdown, DispenserDriver, DispenserError, BACKOFF_MAX, BACKOFF_MIN,
};
use crate::wire_observer::WireObserver;

/// Debounce deadlines are checked at least this often on a quiet wire.
const TICK: Duration = Duration::from_millis(100);

pub struct DartListener {
    cfg: DartConfig,
    observer: WireObserver,
    heartbeat: Arc<Heartbeat>,
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
        })
    }

    /// Starts `fp`'s totalizer bookkeeping for `nozzle` from a reading the station kept across
    /// a restart (see `FuellingPoint::restore_totals`). False if `fp` is not on this line.
    pub fn restore_totals(&mut self, fp: FpNumber, nozzle: u8, total: u64) -> bool {
        self.observer.restore_totals(fp, nozzle, total)
    }

    async fn run_inner(
        mut self,
        events: mpsc::Sender<DispenserEvent>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), DispenserError> {
        let mut backoff = BACKOFF_MIN;
        let port_name = self.cfg.port.display().to_string();
        loop {
            self.heartbeat.beat();
            if is_shutdown(&shutdown) {
                return Ok(());
            }
            match self.cfg.open_port() {
                Ok(port) => {
                    tracing::info!(port = %port_name, fps = self.cfg.fps.len(), "DART listener open (read only)");
                    backoff = BACKOFF_MIN;
                    match self.session(port, &events, &mut shutdown).await? {
                        None => return Ok(()),
                        Some(e) => {
                            tracing::warn!(port = %port_name, error = %e, "DART line lost");
                            send_all(&events, self.observer.all_offline(now_millis())).await?;
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(port = %port_name, error = %e, retry_s = backoff.as_secs(), "cannot open DART line");
                }
            }
            if sleep_or_shutdown(backoff, &mut shutdown, &self.heartbeat).await {
                return Ok(());
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// Reads until shutdown (None) or a port error (Some).
    async fn session(
        &mut self,
        mut port: SerialStream,
        events: &mpsc::Sender<DispenserEvent>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Option<io::Error>, DispenserError> {
        let mut decoder = FrameDecoder::new();
        let gap = Duration::from_millis(self.cfg.frame_gap_ms.max(1));
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut buf = [0u8; 512];
        loop {
            // At least every TICK, even on a silent wire.
            self.heartbeat.beat();
            if *shutdown.borrow() {
                return Ok(None);
            }
            let mut out = Vec::new();
            tokio::select! {
                changed = shutdown.changed() => {
                    if changed.is_err() {
                        return Ok(None);
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
                    Ok(Ok(0)) => return Ok(Some(io::ErrorKind::UnexpectedEof.into())),
                    Ok(Err(e)) => return Ok(Some(e)),
                    Ok(Ok(n)) => {
                        decoder.push(&buf[..n]);
                        let now = now_millis();
                        while let Some(r) = decoder.next_frame() {
                            match r {
                                Ok(frame) => out.extend(self.observer.on_frame(now, &frame)),
                                Err(e) => {
                                    // Neither side accepts it; nor do we.
                                    tracing::debug!(error = %e, "bad frame on the wire");
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

impl DispenserDriver for DartListener {
    fn heartbeat(&self) -> Arc<Heartbeat> {
        self.heartbeat.clone()
    }

    fn run(
        self,
        events: mpsc::Sender<DispenserEvent>,
        shutdown: watch::Receiver<bool>,
    ) -> impl std::future::Future<Output = Result<(), DispenserError>> + Send {
        self.run_inner(events, shutdown)
    }
}

/// The DART driver the config asks for: [`crate::DartMaster`] or [`DartListener`] by `mode`.
pub enum DartDriver {
    Master(crate::DartMaster),
    Listener(DartListener),
}

impl DartDriver {
    pub fn new(cfg: DartConfig) -> Result<Self, DispenserError> {
        Ok(match cfg.mode {
            DartMode::Master => DartDriver::Master(crate::DartMaster::new(cfg)?),
            DartMode::Listen => DartDriver::Listener(DartListener::new(cfg)?),
        })
    }

    /// Starts `fp`'s totalizer bookkeeping for `nozzle` from a reading the station kept across
    /// a restart (see `FuellingPoint::restore_totals`). False if `fp` is not on this line.
    pub fn restore_totals(&mut self, fp: FpNumber, nozzle: u8, total: u64) -> bool {
        match self {
            DartDriver::Master(m) => m.restore_totals(fp, nozzle, total),
            DartDriver::Listener(l) => l.restore_totals(fp, nozzle, total),
        }
    }

    /// A master resets a pump only once its sale is kept; a listener sends nothing anyway.
    pub fn reset_after_kept(&mut self, kept: Arc<forecourt_events::KeptSales>) {
        if let DartDriver::Master(m) = self {
            m.reset_after_kept(kept);
        }
    }
}

impl DispenserDriver for DartDriver {
    fn heartbeat(&self) -> Arc<Heartbeat> {
        match self {
            DartDriver::Master(m) => m.heartbeat(),
            DartDriver::Listener(l) => l.heartbeat(),
        }
    }

    async fn run(
        self,
        events: mpsc::Sender<DispenserEvent>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<(), DispenserError> {
        match self {
            DartDriver::Master(m) => m.run(events, shutdown).await,
            DartDriver::Listener(l) => l.run(events, shutdown).await,
        }
    }
}
