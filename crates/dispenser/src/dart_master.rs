//! DART bus master: polls every configured FP round robin, ACKs pump data per the TX# rules,
//! sends the commands the fuelling-point state machines ask for, and emits events.
//!
//! Policies:
//! - One silent FP costs one `response_timeout_ms` per round and never stalls the others; after
//!   `offline_after_timeouts` consecutive silences it is reported offline, on the next answer
//!   online again, and its status is re-requested (CD1 RETURN STATUS) after connect and faults.
//! - After a sale is reported the master sends CD1 RESET as soon as the sale is durable (with
//!   [`DartMaster::reset_after_kept`]; at once without): the agent does not gate payment, it
//!   records sales, and a pump left in "filling completed" blocks the next customer. Until the
//!   sale is kept the pump holds it, so a crash in between loses nothing.
//! - With `auto_authorize` a lifted nozzle on an idle pump is answered with CD1 AUTHORIZE.
//! - Volume totals (CD101) are requested for each nozzle when the FP state machine asks (idle
//!   pump: at start, after faults and sales, periodically); a totalizer that advanced more than
//!   the reported sales becomes a `SaleGap` event.
//! - If the port cannot be opened or fails, retry with backoff (1 s doubling to 30 s) forever.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use dart_protocol::{
    encode, encode_master_transactions, parse_pump_transactions, Frame, FrameDecoder, FrameKind,
    FuellingPoint, MasterTransaction, RxVerdict, TxReceiver, TxSender,
};
use forecourt_events::{now_millis, DispenserEvent, FpNumber, Heartbeat, KeptSales};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_serial::SerialStream;

use crate::config::{DartConfig, DartMode};
use crate::driver::{is_shutdown, sleep_or_shutdown, DispenserError};
use crate::line::{LineDriver, SessionEnd};

/// After this many NAKs for one of our blocks, restart the line (TX# 0) per the spec.
const MAX_NAKS: u8 = 3;

pub struct DartMaster {
    cfg: DartConfig,
    links: Vec<FpLink>,
    heartbeat: Arc<Heartbeat>,
    kept_sales: Option<Arc<KeptSales>>,
    stats: Arc<crate::LinkStats>,
    /// Fuelling points already warned of a lift nobody authorises (no `auto_authorize`).
    warned_unauthorised: std::collections::BTreeSet<FpNumber>,
}

/// Line state of one FP, kept across port reconnects so a fill in progress is not lost.
struct FpLink {
    address: u8,
    fp: FuellingPoint,
    tx: TxSender,
    rx: TxReceiver,
    /// None until the first answer or the first offline verdict.
    online: Option<bool>,
    timeouts: u32,
    outgoing: Option<OutgoingBlock>,
}

struct OutgoingBlock {
    tx: u8,
    payload: Vec<u8>,
    naks: u8,
}

impl DartMaster {
    pub fn new(cfg: DartConfig) -> Result<Self, DispenserError> {
        cfg.validate()?;
        if cfg.mode != DartMode::Master {
            // A second master breaks a bus that another controller already polls.
            return Err(DispenserError::Config(
                "mode = \"listen\": use DartListener (or DartDriver), never a polling master"
                    .into(),
            ));
        }
        let totals_ms = i64::try_from(cfg.totals_interval_s.saturating_mul(1000)).unwrap_or(0);
        let links = cfg
            .fps
            .iter()
            .map(|f| FpLink {
                address: f.address,
                fp: FuellingPoint::new(f.fuelling_point_config(cfg.nozzle_debounce_ms, totals_ms)),
                tx: TxSender::new(),
                rx: TxReceiver::new(),
                online: None,
                timeouts: 0,
                outgoing: None,
            })
            .collect();
        Ok(DartMaster {
            cfg,
            links,
            heartbeat: Arc::new(Heartbeat::new()),
            kept_sales: None,
            stats: Arc::default(),
            warned_unauthorised: std::collections::BTreeSet::new(),
        })
    }

    /// Resets a pump only once the station counted the sale it reported as kept.
    pub fn reset_after_kept(&mut self, kept: Arc<KeptSales>) {
        self.kept_sales = Some(kept);
    }

    /// Starts `fp`'s totalizer bookkeeping for `nozzle` from a reading the station kept across
    /// a restart (see [`FuellingPoint::restore_totals`]). False if `fp` is not on this line.
    pub fn restore_totals(&mut self, fp: FpNumber, nozzle: u8, total: u64) -> bool {
        let Some(link) = self.links.iter_mut().find(|l| l.fp.fp() == fp) else {
            return false;
        };
        link.fp.restore_totals(nozzle, total);
        true
    }

    /// As the bus master without `auto_authorize`, a lifted nozzle waits for an authorisation
    /// only the agent could send: said once per fuelling point, in words, at the first lift.
    fn warn_unauthorised(&mut self, events: &[DispenserEvent]) {
        if self.cfg.auto_authorize {
            return;
        }
        for e in events {
            if let DispenserEvent::NozzleOut { fp, nozzle, .. } = e {
                if self.warned_unauthorised.insert(*fp) {
                    tracing::warn!(
                        fp,
                        nozzle,
                        "nozzle lifted, but as the bus master with auto_authorize = false the \
                         agent authorises no pump and nobody else polls this line: no fuel \
                         flows, no sale is made (set auto_authorize = true, or mode = \
                         \"listen\" beside the controller that authorises)"
                    );
                }
            }
        }
    }

    async fn all_offline(
        &mut self,
        events: &mpsc::Sender<DispenserEvent>,
    ) -> Result<(), DispenserError> {
        for link in &mut self.links {
            link.fp.line_fault();
            link.timeouts = 0;
            if link.online != Some(false) {
                link.online = Some(false);
                let ev = DispenserEvent::PumpOffline {
                    t: now_millis(),
                    fp: link.fp.fp(),
                };
                events
                    .send(ev)
                    .await
                    .map_err(|_| DispenserError::EventsClosed)?;
            }
        }
        Ok(())
    }

    /// Polls round robin until shutdown or a port error.
    async fn poll_line(
        &mut self,
        port: SerialStream,
        events: &mpsc::Sender<DispenserEvent>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<SessionEnd, DispenserError> {
        let mut line = Line {
            port,
            decoder: FrameDecoder::new(),
            timeout: Duration::from_millis(self.cfg.response_timeout_ms),
            stats: self.stats.clone(),
        };
        // New connection: both sides' numbering starts over and every status is re-read.
        for link in &mut self.links {
            link.tx.restart();
            link.rx.reset();
            link.outgoing = None;
            link.fp.line_fault();
        }
        let round = Duration::from_millis(self.cfg.poll_interval_ms);
        loop {
            // Once per round: a poll stuck in a serial write stops the beats.
            self.heartbeat.beat();
            let round_start = Instant::now();
            for i in 0..self.links.len() {
                if is_shutdown(shutdown) {
                    return Ok(SessionEnd::Shutdown);
                }
                if let Some(kept) = &self.kept_sales {
                    let fp = &mut self.links[i].fp;
                    fp.note_sales_kept(kept.count(fp.fp()));
                }
                let mut evs = Vec::new();
                let out = serve(&mut self.links[i], &mut line, &self.cfg, &mut evs).await;
                self.warn_unauthorised(&evs);
                // What the pump said before a port error still happened (a sale among it).
                for ev in evs {
                    events
                        .send(ev)
                        .await
                        .map_err(|_| DispenserError::EventsClosed)?;
                }
                if let Err(e) = out {
                    return Ok(SessionEnd::PortLost(e));
                }
            }
            let rest = round.saturating_sub(round_start.elapsed());
            if sleep_or_shutdown(rest, shutdown, &self.heartbeat).await {
                return Ok(SessionEnd::Shutdown);
            }
        }
    }
}

impl LineDriver for DartMaster {
    const OPENED: &'static str = "DART line open";

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
        self.links.len()
    }

    fn session(
        &mut self,
        port: SerialStream,
        events: &mpsc::Sender<DispenserEvent>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> impl std::future::Future<Output = Result<SessionEnd, DispenserError>> + Send {
        self.poll_line(port, events, shutdown)
    }

    fn line_lost(
        &mut self,
        events: &mpsc::Sender<DispenserEvent>,
    ) -> impl std::future::Future<Output = Result<(), DispenserError>> + Send {
        self.all_offline(events)
    }
}

/// The open port plus its decoder.
struct Line {
    port: SerialStream,
    decoder: FrameDecoder,
    timeout: Duration,
    stats: Arc<crate::LinkStats>,
}

impl Line {
    async fn send(&mut self, frame: &Frame) -> io::Result<()> {
        self.port.write_all(&encode(frame)).await?;
        self.stats.sent();
        Ok(())
    }

    /// The next valid frame from `addr` within the response timeout. Frames from other
    /// addresses (late answers) and bad-CRC frames are dropped: a bad frame is no answer.
    async fn reply_from(&mut self, addr: u8) -> io::Result<Option<Frame>> {
        let deadline = Instant::now() + self.timeout;
        let mut buf = [0u8; 256];
        loop {
            while let Some(r) = self.decoder.next_frame() {
                match r {
                    Ok(f) if f.addr == addr => {
                        self.stats.received();
                        return Ok(Some(f));
                    }
                    Ok(f) => tracing::trace!(?f, "ignoring frame for another address"),
                    Err(e) => {
                        tracing::debug!(error = %e, "bad frame");
                        self.stats.error(&format!("bad frame: {e}"));
                    }
                }
            }
            match tokio::time::timeout_at(deadline, self.port.read(&mut buf)).await {
                Err(_) => {
                    self.stats
                        .error(&format!("no answer from address {addr:#04x}"));
                    return Ok(None);
                }
                Ok(Ok(0)) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(Ok(n)) => self.decoder.push(&buf[..n]),
                Ok(Err(e)) => return Err(e),
            }
        }
    }
}

/// One turn for one FP: send a pending command block if any, then POLL and handle the answer.
/// Events go to `events` as they arise, so a port error loses none of them.
async fn serve(
    link: &mut FpLink,
    line: &mut Line,
    cfg: &DartConfig,
    events: &mut Vec<DispenserEvent>,
) -> io::Result<()> {
    let fp_no = link.fp.fp();
    events.extend(link.fp.tick(now_millis()));

    if link.outgoing.is_none() {
        let now = now_millis();
        if let Some(cmd) = link.fp.wanted_command(now, cfg.auto_authorize) {
            tracing::debug!(fp = fp_no, ?cmd, "command");
            link.fp.note_command_sent(cmd, now);
            link.outgoing = Some(OutgoingBlock {
                tx: link.tx.next_block(),
                payload: encode_master_transactions(&[MasterTransaction::Command(cmd)]),
                naks: 0,
            });
        } else if let Some(nozzle) = link.fp.wanted_totals_request(now) {
            tracing::debug!(fp = fp_no, nozzle, "request totals");
            link.fp.note_totals_requested(nozzle, now);
            link.outgoing = Some(OutgoingBlock {
                tx: link.tx.next_block(),
                payload: encode_master_transactions(&[MasterTransaction::RequestTotals { nozzle }]),
                naks: 0,
            });
        }
    }
    if let Some(mut out) = link.outgoing.take() {
        let frame = Frame::new(
            link.address,
            FrameKind::Data {
                tx: out.tx,
                payload: out.payload.clone(),
            },
        );
        line.send(&frame).await?;
        let Some(reply) = line.reply_from(link.address).await? else {
            // Retried next round with the same TX#.
            link.outgoing = Some(out);
            on_silence(link, fp_no, cfg, events);
            return Ok(());
        };
        on_answer(link, fp_no, events);
        match reply.kind {
            FrameKind::Ack { .. } => {}
            FrameKind::Nak { .. } => {
                out.naks += 1;
                if out.naks >= MAX_NAKS {
                    tracing::warn!(fp = fp_no, "3 NAKs: restarting line numbering");
                    link.tx.restart();
                    out.tx = link.tx.next_block();
                    out.naks = 0;
                }
                link.outgoing = Some(out);
            }
            other => {
                tracing::debug!(fp = fp_no, ?other, "unexpected answer to DATA");
                link.outgoing = Some(out);
            }
        }
    }

    line.send(&Frame::new(link.address, FrameKind::Poll))
        .await?;
    let Some(reply) = line.reply_from(link.address).await? else {
        on_silence(link, fp_no, cfg, events);
        return Ok(());
    };
    on_answer(link, fp_no, events);
    if let FrameKind::Data { tx, payload } = reply.kind {
        let verdict = link.rx.check(tx);
        let ack = match verdict {
            RxVerdict::Accept | RxVerdict::Duplicate => FrameKind::Ack { tx },
            RxVerdict::Reject => FrameKind::Nak { tx },
        };
        line.send(&Frame::new(link.address, ack)).await?;
        if verdict == RxVerdict::Accept {
            match parse_pump_transactions(&payload) {
                Ok(txs) => {
                    let now = now_millis();
                    link.fp.begin_block();
                    for t in &txs {
                        tracing::trace!(fp = fp_no, ?t, "pump transaction");
                        events.extend(link.fp.apply(now, t));
                    }
                }
                Err(e) => tracing::warn!(fp = fp_no, error = %e, "malformed pump block"),
            }
        }
    }
    Ok(())
}

fn on_answer(link: &mut FpLink, fp: FpNumber, events: &mut Vec<DispenserEvent>) {
    link.timeouts = 0;
    if link.online != Some(true) {
        tracing::info!(fp, address = %format_args!("{:#04x}", link.address), "pump online");
        link.online = Some(true);
        link.fp.line_fault();
        events.push(DispenserEvent::PumpOnline {
            t: now_millis(),
            fp,
        });
    }
}

fn on_silence(link: &mut FpLink, fp: FpNumber, cfg: &DartConfig, events: &mut Vec<DispenserEvent>) {
    link.timeouts = link.timeouts.saturating_add(1);
    if link.timeouts >= cfg.offline_after_timeouts && link.online != Some(false) {
        tracing::warn!(fp, address = %format_args!("{:#04x}", link.address), "pump offline");
        link.online = Some(false);
        link.fp.line_fault();
        // The pump will number from 0 after a restart; we accept whatever comes first.
        link.rx.reset();
        events.push(DispenserEvent::PumpOffline {
            t: now_millis(),
            fp,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DecimalsConfig, FpConfig};

    fn master(auto_authorize: bool) -> DartMaster {
        let fp = |fp, address| FpConfig {
            fp,
            address,
            decimals: DecimalsConfig::default(),
            grades: vec!["92#".into()],
            nozzles: None,
        };
        let mut cfg = DartConfig::new("/dev/null", vec![fp(1, 0x50), fp(2, 0x51)]);
        cfg.auto_authorize = auto_authorize;
        DartMaster::new(cfg).unwrap()
    }

    #[test]
    fn a_lift_nobody_authorises_is_said_once_per_fuelling_point() {
        let lift = |fp| DispenserEvent::NozzleOut {
            t: 1,
            fp,
            nozzle: 1,
        };
        let mut unauthorised = master(false);
        unauthorised.warn_unauthorised(&[lift(1), lift(1)]);
        unauthorised.warn_unauthorised(&[lift(1), DispenserEvent::PumpOnline { t: 2, fp: 2 }]);
        assert_eq!(unauthorised.warned_unauthorised, [1].into());
        unauthorised.warn_unauthorised(&[lift(2)]);
        assert_eq!(unauthorised.warned_unauthorised, [1, 2].into());
        let mut authorising = master(true);
        authorising.warn_unauthorised(&[lift(1)]);
        assert!(authorising.warned_unauthorised.is_empty());
    }
}
