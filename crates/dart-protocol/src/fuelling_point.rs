//! Fuelling-point state machine: turns the pump's DC transactions into [`DispenserEvent`]s and
//! tells the master which command the pump needs next. Pure: the caller passes `now`.
//!
//! Nozzle debounce rule: a nozzle change seen in DC3 is reported only once it has persisted for
//! `nozzle_debounce_ms` (checked on every `apply` and `tick`), or at once when the pump confirms
//! it (status FILLING confirms a nozzle out; a completed fill confirms whatever is pending). A
//! nozzle that comes out and goes back within the debounce window produces no events at all.
//! Events carry the time the change was first seen, not the time it was confirmed.
//!
//! Totalizers: the FP asks for each nozzle's volume totals (CD101) at start, after every line
//! fault, after every sale and every `totals_interval_ms`, only while the pump is idle (a reading
//! taken mid-fill cannot be compared). A totalizer that advanced more than the reported sales
//! yields [`DispenserEvent::SaleGap`]. A pump that never answers CD101 is asked
//! [`TOTALS_MAX_TRIES`] times per round, then left alone until the next round.

use std::collections::BTreeMap;

use forecourt_events::{Decimal, DispenserEvent, FillEnd, FpNumber, Sale, UnixMillis};

use crate::totals::{TotalsTracker, TotalsVerdict};
use crate::transaction::{Command, PumpStatus, PumpTransaction};

/// Default debounce: longer than one poll round of a busy bus, short enough not to delay the
/// authorization noticeably.
pub const NOZZLE_DEBOUNCE_MS: i64 = 300;

/// A command the pump still needs is re-requested after this long without effect.
const COMMAND_RETRY_MS: i64 = 1_000;

/// Default period of totalizer readings: short enough to report a missed sale within minutes.
pub const TOTALS_INTERVAL_MS: i64 = 300_000;

/// Unanswered CD101 requests per nozzle and round before giving up until the next round
/// (totalizer support differs between firmware variants).
pub const TOTALS_MAX_TRIES: u8 = 3;

/// How long a completed fill waits for the answer to RETURN FILLING INFO before it is reported
/// with the last DC2 seen: long enough for many retries over a noisy line (a progress volume is
/// a wrong sale), short enough that a pump without the command does not block its customers
/// for long.
const FILLING_INFO_WAIT_MS: i64 = 30_000;

/// How long a fill found completed at start waits (pump not reset) for the totalizers that tell
/// its nozzle; then it is reported with the nozzle unknown. A customer lifting a nozzle meanwhile
/// waits too: the pump cannot start before RESET.
const IDENTIFY_NOZZLE_MS: i64 = 10_000;

/// The amount a pump charges for `volume` at `price` (raw units): the product rounded half up to
/// the amount's decimals. None on overflow.
pub fn amount_for(volume: u64, price: u64, dec: Decimals) -> Option<u64> {
    let product = u128::from(volume) * u128::from(price);
    let shift = i32::from(dec.volume) + i32::from(dec.price) - i32::from(dec.amount);
    let amount = if shift >= 0 {
        let div = 10u128.checked_pow(u32::try_from(shift).ok()?)?;
        (product + div / 2) / div
    } else {
        product.checked_mul(10u128.checked_pow(u32::try_from(-shift).ok()?)?)?
    };
    u64::try_from(amount).ok()
}

/// Decimal places used on the wire by one pump (DPVOL, DPAMO, DPUNP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decimals {
    pub volume: u8,
    pub amount: u8,
    pub price: u8,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FuellingPointConfig {
    pub fp: FpNumber,
    pub decimals: Decimals,
    /// Grade name per logical nozzle: index 0 = nozzle 1.
    pub grades: Vec<String>,
    pub nozzle_debounce_ms: i64,
    /// Logical nozzles 1..=nozzles whose totalizers are read (nozzles seen on the wire are added).
    pub nozzles: u8,
    /// Period of totalizer readings; 0 = only at start, after faults and after sales.
    pub totals_interval_ms: i64,
}

impl FuellingPointConfig {
    pub fn new(fp: FpNumber, decimals: Decimals, grades: Vec<String>) -> Self {
        FuellingPointConfig {
            fp,
            decimals,
            nozzles: u8::try_from(grades.len()).unwrap_or(u8::MAX).max(1),
            grades,
            nozzle_debounce_ms: NOZZLE_DEBOUNCE_MS,
            totals_interval_ms: TOTALS_INTERVAL_MS,
        }
    }
}

/// A nozzle state seen on the wire but not yet reported. `out` = the lifted nozzle, None = all in.
#[derive(Debug, Clone, Copy)]
struct PendingNozzle {
    out: Option<u8>,
    since: UnixMillis,
}

/// What we know about the fill in progress.
#[derive(Debug, Clone, Default)]
struct Fill {
    /// A fill started (nozzle out confirmed or pump authorized/filling): a completion is a sale.
    armed: bool,
    nozzle: Option<u8>,
    nozzle_out_t: Option<UnixMillis>,
    volume: Option<u64>,
    amount: Option<u64>,
    /// Completed but no final DC2 seen: the sale waits for RETURN FILLING INFO.
    awaiting_filling_info: bool,
    /// Since when (the completion), to give up on a pump that never answers it.
    filling_info_since: Option<UnixMillis>,
    /// The pump block the last DC2 came in (see [`FuellingPoint::begin_block`]).
    volume_block: Option<u64>,
    /// Found completed at the first status after start (see [`Sale::recovered`]).
    recovered: bool,
    /// Recovered with no nozzle named: the totalizers, read before RESET, will tell it.
    awaiting_nozzle: bool,
    identify_until: Option<UnixMillis>,
    nozzle_readings: BTreeMap<u8, u64>,
}

#[derive(Debug, Clone)]
pub struct FuellingPoint {
    cfg: FuellingPointConfig,
    status: Option<PumpStatus>,
    /// Our status may be out of date (after connect or a line fault): ask RETURN STATUS.
    status_stale: bool,
    /// Debounced nozzle state, as reported in events.
    reported_out: Option<u8>,
    /// Latest nozzle state on the wire.
    raw_out: Option<u8>,
    pending: Option<PendingNozzle>,
    price: Option<u64>,
    /// Unit price last seen per nozzle (DC3).
    nozzle_prices: BTreeMap<u8, u64>,
    last_dc3_nozzle: Option<u8>,
    /// The nozzle the last DC3 saying "nozzle in" named: the one a completed fill most likely
    /// used (a DC3 saying "out" is the next customer's).
    last_hung_up: Option<u8>,
    fill: Fill,
    last_command: Option<(Command, UnixMillis)>,
    totals: TotalsTracker,
    /// Nozzles whose totalizer we want to read, with the requests sent so far this round.
    totals_due: BTreeMap<u8, u8>,
    last_totals_request: Option<(u8, UnixMillis)>,
    next_periodic_totals: Option<UnixMillis>,
    /// Nozzles known to exist: configured plus seen on the wire.
    known_nozzles: std::collections::BTreeSet<u8>,
    /// Counts pump blocks (see [`FuellingPoint::begin_block`]).
    block: u64,
    /// Sales reported since start, and (when the caller keeps count) how many of them are
    /// durable: a pump is reset only once its last sale is kept.
    sales_reported: u64,
    sales_kept: Option<u64>,
}

impl FuellingPoint {
    pub fn new(cfg: FuellingPointConfig) -> Self {
        FuellingPoint {
            status: None,
            status_stale: true,
            reported_out: None,
            raw_out: None,
            pending: None,
            price: None,
            nozzle_prices: BTreeMap::new(),
            last_dc3_nozzle: None,
            last_hung_up: None,
            fill: Fill::default(),
            last_command: None,
            totals: TotalsTracker::new(),
            totals_due: (1..=cfg.nozzles).map(|n| (n, 0)).collect(),
            last_totals_request: None,
            next_periodic_totals: None,
            known_nozzles: (1..=cfg.nozzles).collect(),
            sales_reported: 0,
            sales_kept: None,
            block: 0,
            cfg,
        }
    }

    pub fn fp(&self) -> FpNumber {
        self.cfg.fp
    }

    pub fn config(&self) -> &FuellingPointConfig {
        &self.cfg
    }

    /// Last status the pump reported (None before the first DC1).
    pub fn status(&self) -> Option<PumpStatus> {
        self.status
    }

    /// The (debounced) nozzle that is out, if any.
    pub fn nozzle_out(&self) -> Option<u8> {
        self.reported_out
    }

    /// A nozzle is lifted (raw, not debounced: authorizing on a flap is harmless, delaying a
    /// customer is not) and the pump is idle.
    pub fn needs_authorize(&self) -> bool {
        self.raw_out.is_some() && self.status == Some(PumpStatus::Reset)
    }

    /// The fill is over and recorded: the pump waits for RESET to go back to idle.
    pub fn needs_reset(&self) -> bool {
        self.status.is_some_and(PumpStatus::is_completed)
            && !self.fill.awaiting_filling_info
            && !self.fill.awaiting_nozzle
            && self
                .sales_kept
                .is_none_or(|kept| kept >= self.sales_reported)
    }

    /// How many of the sales this FP reported are durable (see `KeptSales`). Once called, the
    /// pump is reset only after its last sale is kept: until then the pump itself holds it.
    pub fn note_sales_kept(&mut self, kept: u64) {
        self.sales_kept = Some(kept);
    }

    /// A completed fill's totals were not seen: ask RETURN FILLING INFO.
    pub fn needs_filling_info(&self) -> bool {
        self.fill.awaiting_filling_info
    }

    /// The line failed (timeouts, port lost): state may be stale, ask for status again.
    pub fn line_fault(&mut self) {
        self.status_stale = true;
        // Sales may have passed unseen: compare the totalizers again.
        self.all_totals_due();
    }

    fn all_totals_due(&mut self) {
        for &n in &self.known_nozzles {
            self.totals_due.insert(n, 0);
        }
    }

    /// Idle with nothing in flight: a totalizer read now covers exactly the reported sales.
    fn totals_readable(&self) -> bool {
        if self.fill.awaiting_nozzle {
            // Completed and not reset: the totalizers already count the fill.
            return !self.status_stale && self.status.is_some_and(PumpStatus::is_completed);
        }
        !self.status_stale
            && self.status == Some(PumpStatus::Reset)
            && !self.fill.armed
            && !self.fill.awaiting_filling_info
            && self.raw_out.is_none()
            && self.pending.is_none()
    }

    /// The nozzle whose totalizer (CD101) the master should request now, if any. Throttled
    /// like commands; ask only when [`Self::wanted_command`] has nothing to send.
    pub fn wanted_totals_request(&self, now: UnixMillis) -> Option<u8> {
        if !self.totals_readable() {
            return None;
        }
        let (&nozzle, _) = self
            .totals_due
            .iter()
            .find(|(_, &tries)| tries < TOTALS_MAX_TRIES)?;
        match self.last_totals_request {
            Some((n, t)) if n == nozzle && now - t < COMMAND_RETRY_MS => None,
            _ => Some(nozzle),
        }
    }

    pub fn note_totals_requested(&mut self, nozzle: u8, now: UnixMillis) {
        self.last_totals_request = Some((nozzle, now));
        if let Some(tries) = self.totals_due.get_mut(&nozzle) {
            *tries = tries.saturating_add(1);
        }
    }

    /// Starts a nozzle's totalizer bookkeeping from a reading kept across a restart, so fuel
    /// sold while no agent ran shows as a gap and a fill found completed tells its nozzle.
    pub fn restore_totals(&mut self, nozzle: u8, total: u64) {
        if nozzle == 0 {
            return;
        }
        self.totals.restore(nozzle, total);
        self.known_nozzles.insert(nozzle);
        self.totals_due.insert(nozzle, 0);
    }

    /// The unit price of a recovered fill: the nozzle's last DC3 price if volume x price gives
    /// the amount, else the one price (fewest digits among the few candidates) that does; None
    /// if nothing does.
    fn recovered_price(&self, nozzle: u8, volume: u64, amount: u64) -> Option<u64> {
        let dec = self.cfg.decimals;
        let gives_amount = |price: u64| amount_for(volume, price, dec) == Some(amount);
        if let Some(&known) = self.nozzle_prices.get(&nozzle) {
            if gives_amount(known) {
                return Some(known);
            }
        }
        if volume == 0 {
            return None;
        }
        // amount ~ volume * price / 10^shift, so price ~ amount * 10^shift / volume.
        let shift = i32::from(dec.volume) + i32::from(dec.price) - i32::from(dec.amount);
        let scaled = u128::from(amount) * 10u128.checked_pow(u32::try_from(shift).ok()?)?;
        let estimate = u64::try_from(scaled / u128::from(volume)).ok()?;
        let trailing_zeros = |mut p: u64| {
            let mut n = 0;
            while p > 0 && p.is_multiple_of(10) {
                p /= 10;
                n += 1;
            }
            n
        };
        (estimate.saturating_sub(2)..=estimate.saturating_add(2))
            .filter(|&p| p > 0 && gives_amount(p))
            .max_by_key(|&p| (trailing_zeros(p), std::cmp::Reverse(p)))
    }

    /// Last totalizer reading per nozzle (raw volume units), for diagnostics.
    pub fn totals_baseline(&self, nozzle: u8) -> Option<u64> {
        self.totals.baseline(nozzle)
    }

    /// The command the master should send next, if any, throttled so one that has not taken
    /// effect yet is repeated at most every second.
    pub fn wanted_command(&self, now: UnixMillis, auto_authorize: bool) -> Option<Command> {
        let wanted = if self.status_stale {
            Command::ReturnStatus
        } else if self.needs_filling_info() {
            Command::ReturnFillingInfo
        } else if self.needs_reset() {
            Command::Reset
        } else if auto_authorize && self.needs_authorize() {
            Command::Authorize
        } else {
            return None;
        };
        match self.last_command {
            Some((c, t)) if c == wanted && now - t < COMMAND_RETRY_MS => None,
            _ => Some(wanted),
        }
    }

    pub fn note_command_sent(&mut self, cmd: Command, now: UnixMillis) {
        self.last_command = Some((cmd, now));
    }

    /// Confirms a pending nozzle change once it is old enough. Call once per poll cycle.
    pub fn tick(&mut self, now: UnixMillis) -> Vec<DispenserEvent> {
        let mut events = Vec::new();
        self.confirm_if_due(now, &mut events);
        self.give_up_filling_info(now, &mut events);
        self.identify_recovered_nozzle(now, &mut events);
        if self.cfg.totals_interval_ms > 0 {
            match self.next_periodic_totals {
                None => self.next_periodic_totals = Some(now + self.cfg.totals_interval_ms),
                Some(due) if now >= due => {
                    self.next_periodic_totals = Some(now + self.cfg.totals_interval_ms);
                    self.all_totals_due();
                }
                Some(_) => {}
            }
        }
        events
    }

    /// The transactions that follow come in one new DATA block. A DC2 is final only in the
    /// block that reports the completion (the pump sends "DC1 5 with final DC2"); one from an
    /// earlier block is progress, and the sale waits for RETURN FILLING INFO. Callers that never
    /// call this get every transaction treated as one block.
    pub fn begin_block(&mut self) {
        self.block += 1;
    }

    /// Feeds one transaction from the pump.
    pub fn apply(&mut self, now: UnixMillis, tx: &PumpTransaction) -> Vec<DispenserEvent> {
        let mut events = Vec::new();
        self.confirm_if_due(now, &mut events);
        match tx {
            PumpTransaction::Status(st) => self.on_status(now, *st, &mut events),
            PumpTransaction::FillingInfo { volume, amount } => {
                self.fill.volume = Some(*volume);
                self.fill.amount = Some(*amount);
                self.fill.volume_block = Some(self.block);
                if self.fill.awaiting_filling_info {
                    self.fill.awaiting_filling_info = false;
                    self.fill_ended(now, &mut events);
                }
            }
            PumpTransaction::PriceNozzle {
                price,
                nozzle,
                nozzle_out,
            } => {
                self.price = Some(*price);
                if *nozzle > 0 {
                    self.nozzle_prices.insert(*nozzle, *price);
                }
                self.last_dc3_nozzle = Some(*nozzle);
                if *nozzle > 0 && !*nozzle_out {
                    self.last_hung_up = Some(*nozzle);
                }
                if *nozzle > 0 && self.known_nozzles.insert(*nozzle) {
                    self.totals_due.insert(*nozzle, 0);
                }
                self.on_nozzle(now, nozzle_out.then_some(*nozzle));
                self.confirm_if_due(now, &mut events);
            }
            PumpTransaction::VolumeTotals { nozzle, total, .. } => {
                self.on_totals(now, *nozzle, *total, &mut events)
            }
            _ => {}
        }
        events
    }

    fn on_totals(
        &mut self,
        now: UnixMillis,
        nozzle: u8,
        total: u64,
        events: &mut Vec<DispenserEvent>,
    ) {
        if !self.totals_readable() {
            // A fill started since the request: read again when idle.
            self.totals_due.insert(nozzle, 0);
            return;
        }
        self.totals_due.remove(&nozzle);
        self.known_nozzles.insert(nozzle);
        if self.fill.awaiting_nozzle {
            self.fill.nozzle_readings.insert(nozzle, total);
            self.identify_recovered_nozzle(now, events);
        } else {
            self.account_reading(now, nozzle, total, events);
        }
    }

    fn account_reading(
        &mut self,
        now: UnixMillis,
        nozzle: u8,
        total: u64,
        events: &mut Vec<DispenserEvent>,
    ) {
        let fp = self.cfg.fp;
        events.push(match self.totals.on_reading(nozzle, total) {
            TotalsVerdict::Gap { missing } => DispenserEvent::SaleGap {
                t: now,
                fp,
                nozzle,
                missing_volume: Decimal::new(
                    i64::try_from(missing).unwrap_or(i64::MAX),
                    self.cfg.decimals.volume,
                ),
                totalizer: total,
            },
            // Nothing was missed (an excess or a counter reset only moves the baseline).
            TotalsVerdict::Baseline
            | TotalsVerdict::Consistent
            | TotalsVerdict::Excess { .. }
            | TotalsVerdict::CounterReset => DispenserEvent::TotalizerRead {
                t: now,
                fp,
                nozzle,
                total,
            },
        });
    }

    /// The pump says the fill is over: a sale with the final DC2 if this block brought one,
    /// else once RETURN FILLING INFO answers (a DC2 from an earlier block may be progress).
    fn fill_completed(&mut self, now: UnixMillis, events: &mut Vec<DispenserEvent>) {
        if self.fill.volume.is_some() && self.fill.volume_block == Some(self.block) {
            self.fill_ended(now, events);
        } else {
            self.fill.awaiting_filling_info = true;
            self.fill.filling_info_since = Some(now);
        }
    }

    /// A pump that never answers RETURN FILLING INFO: after `FILLING_INFO_WAIT_MS` the sale
    /// goes with the last DC2 seen (better than none; the totalizers then tell any difference).
    /// With no DC2 at all there is no volume to report: the fill is dropped so the pump can be
    /// reset and serve again (held for ever, it could sell nothing), and the totalizers, read
    /// again once it is idle, show the fuel as a `sale_gap`.
    fn give_up_filling_info(&mut self, now: UnixMillis, events: &mut Vec<DispenserEvent>) {
        let waited_out = self
            .fill
            .filling_info_since
            .is_some_and(|since| now - since >= FILLING_INFO_WAIT_MS);
        if !(self.fill.awaiting_filling_info && waited_out) {
            return;
        }
        self.fill.awaiting_filling_info = false;
        if self.fill.volume.is_some() {
            self.fill_ended(now, events);
        } else {
            self.fill = Fill::default();
            self.all_totals_due();
        }
    }

    /// The end of a fill whose volume is known: a sale, once a recovered fill knows its nozzle.
    /// A recovered fill's nozzle comes from the totalizers when kept readings allow (a DC3 seen
    /// since the start may be the next customer's), else from the last "nozzle in".
    fn fill_ended(&mut self, now: UnixMillis, events: &mut Vec<DispenserEvent>) {
        if self.fill.recovered && self.fill.nozzle.is_none() {
            if self.known_nozzles.len() == 1 {
                self.fill.nozzle = self.known_nozzles.first().copied();
            } else if self
                .known_nozzles
                .iter()
                .any(|&n| self.totals.accounted(n).is_some())
            {
                // Which nozzle sold it: the one whose totalizer moved past what the kept
                // readings account for. Read them before RESET.
                self.fill.awaiting_nozzle = true;
                self.fill.identify_until = Some(now + IDENTIFY_NOZZLE_MS);
                self.all_totals_due();
                return;
            } else {
                self.fill.nozzle = self.last_hung_up;
            }
        }
        self.complete_sale(now, events);
    }

    /// Decides a recovered fill's nozzle once every known nozzle's totalizer was read (or the
    /// wait is over): the only nozzle that moved by exactly the fill's volume, else the only
    /// one that moved at least that much, else unknown (0; most likely a sale already kept
    /// before the restart, which the station recognises).
    fn identify_recovered_nozzle(&mut self, now: UnixMillis, events: &mut Vec<DispenserEvent>) {
        if !self.fill.awaiting_nozzle {
            return;
        }
        let all_read = self
            .known_nozzles
            .iter()
            .all(|n| self.fill.nozzle_readings.contains_key(n));
        let wait_over = self.fill.identify_until.is_none_or(|until| now >= until);
        if !all_read && !wait_over {
            return;
        }
        let volume = self.fill.volume.unwrap_or(0);
        let readings = std::mem::take(&mut self.fill.nozzle_readings);
        let advances: Vec<(u8, u64)> = readings
            .iter()
            .filter_map(|(&n, &total)| Some((n, self.totals.unaccounted(n, total)?)))
            .collect();
        let only = |fits: &dyn Fn(u64) -> bool| {
            let mut fitting = advances.iter().filter(|(_, a)| fits(*a)).map(|(n, _)| *n);
            match (fitting.next(), fitting.next()) {
                (Some(n), None) => Some(n),
                _ => None,
            }
        };
        self.fill.nozzle = only(&|a| a == volume).or_else(|| only(&|a| a >= volume));
        self.fill.awaiting_nozzle = false;
        self.complete_sale(now, events);
        // The readings include the fill: with the sale counted they are ordinary readings.
        for (nozzle, total) in readings {
            self.account_reading(now, nozzle, total, events);
        }
    }

    fn on_nozzle(&mut self, now: UnixMillis, out: Option<u8>) {
        self.raw_out = out;
        if out == self.reported_out {
            // Flipped back before it was confirmed: a flap, forget it.
            self.pending = None;
        } else if self.pending.map(|p| p.out) != Some(out) {
            self.pending = Some(PendingNozzle { out, since: now });
        }
    }

    fn confirm_if_due(&mut self, now: UnixMillis, events: &mut Vec<DispenserEvent>) {
        if let Some(p) = self.pending {
            if now - p.since >= self.cfg.nozzle_debounce_ms {
                self.confirm_pending(events);
            }
        }
    }

    fn confirm_pending(&mut self, events: &mut Vec<DispenserEvent>) {
        if self.fill.awaiting_nozzle || self.fill.awaiting_filling_info {
            // The next customer's lift waits (the pump cannot start before RESET anyway) until
            // the completed fill is reported: confirming it now would replace that fill.
            return;
        }
        let Some(p) = self.pending.take() else {
            return;
        };
        let fp = self.cfg.fp;
        if let Some(old) = self.reported_out {
            events.push(DispenserEvent::NozzleIn {
                t: p.since,
                fp,
                nozzle: old,
            });
            // Lifted and hung up without the pump starting: nothing was sold.
            if matches!(
                self.status,
                Some(PumpStatus::Reset | PumpStatus::Authorized)
            ) {
                self.fill = Fill::default();
            }
        }
        if let Some(new) = p.out {
            events.push(DispenserEvent::NozzleOut {
                t: p.since,
                fp,
                nozzle: new,
            });
            self.fill = Fill {
                armed: true,
                nozzle: Some(new),
                nozzle_out_t: Some(p.since),
                ..Fill::default()
            };
        }
        self.reported_out = p.out;
    }

    fn on_status(&mut self, now: UnixMillis, st: PumpStatus, events: &mut Vec<DispenserEvent>) {
        let prev = self.status;
        self.status_stale = false;
        match st {
            PumpStatus::Filling => {
                if self.pending.is_some_and(|p| p.out.is_some()) {
                    self.confirm_pending(events);
                }
                self.fill.armed = true;
            }
            s if s.is_completed() => {
                let newly = !prev.is_some_and(PumpStatus::is_completed);
                let recovered = newly && prev.is_none();
                if !recovered {
                    self.confirm_pending(events);
                }
                // The end of a fill we followed is a sale.
                if newly && self.fill.armed && prev.is_some() {
                    self.status = Some(st);
                    self.fill_completed(now, events);
                } else if newly && prev.is_none() {
                    // The first status since the driver started, and the pump holds a completed,
                    // never reset fill: it completed while no agent ran (or a crash cut its
                    // report short). Report it, marked recovered: the station drops it if it
                    // still holds that very sale from before the restart. Losing it is worse.
                    // A nozzle seen lifted since the start is the next customer's (or this fill's,
                    // still in hand): the totalizers tell, and the lift is confirmed after.
                    self.fill.recovered = true;
                    self.fill.nozzle = None;
                    self.fill.nozzle_out_t = None;
                    self.status = Some(st);
                    self.fill_completed(now, events);
                    self.confirm_pending(events);
                } else if newly {
                    // A fill we did not follow: let the totalizers tell what it sold.
                    self.all_totals_due();
                }
            }
            PumpStatus::Reset
                if self.fill.armed
                    && matches!(prev, Some(PumpStatus::Filling | PumpStatus::Authorized)) =>
            {
                // Back to idle without completing (pump restarted mid-fill): whatever flowed is
                // only visible in the totalizers.
                let keep_nozzle = self.fill.nozzle.is_some() && self.reported_out.is_some();
                self.fill = Fill {
                    nozzle: self.fill.nozzle.filter(|_| keep_nozzle),
                    ..Fill::default()
                };
                self.all_totals_due();
            }
            _ => {}
        }
        self.status = Some(st);
    }

    fn complete_sale(&mut self, now: UnixMillis, events: &mut Vec<DispenserEvent>) {
        let fill = std::mem::take(&mut self.fill);
        let dec = self.cfg.decimals;
        let nozzle = fill
            .nozzle
            .or(self.last_dc3_nozzle.filter(|_| !fill.recovered))
            .unwrap_or(0);
        let grade = usize::from(nozzle)
            .checked_sub(1)
            .and_then(|i| self.cfg.grades.get(i))
            .cloned();
        let raw = |v: Option<u64>| i64::try_from(v.unwrap_or(0)).unwrap_or(i64::MAX);
        let price = if fill.recovered {
            // The DC3 that named the price may be gone with the crash.
            fill.volume
                .zip(fill.amount)
                .and_then(|(v, a)| self.recovered_price(nozzle, v, a))
        } else {
            // The newest DC3 may be the next customer's, lifting another nozzle before this
            // sale was reported: this nozzle's own price, as its last DC3 gave it.
            self.nozzle_prices.get(&nozzle).copied().or(self.price)
        };
        let mut totalizer = None;
        if nozzle > 0 {
            self.totals.on_sale(nozzle, fill.volume.unwrap_or(0));
            self.totals_due.insert(nozzle, 0);
            totalizer = self.totals.accounted(nozzle);
        }
        self.sales_reported += 1;
        events.push(DispenserEvent::SaleCompleted(Sale {
            t: now,
            fp: self.cfg.fp,
            nozzle,
            nozzle_out_t: fill.nozzle_out_t,
            grade,
            volume: Decimal::new(raw(fill.volume), dec.volume),
            amount: Decimal::new(raw(fill.amount), dec.amount),
            price: Decimal::new(raw(price), dec.price),
            end: match self.status {
                Some(PumpStatus::FillingCompleted) => Some(FillEnd::Auto),
                Some(PumpStatus::MaxReached) => Some(FillEnd::Preset),
                _ => None,
            },
            recovered: fill.recovered,
            totalizer,
            source_key: None,
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transaction::parse_pump_transactions;

    fn fp() -> FuellingPoint {
        FuellingPoint::new(FuellingPointConfig::new(
            3,
            Decimals {
                volume: 2,
                amount: 2,
                price: 3,
            },
            vec!["95".into(), "Diesel".into()],
        ))
    }

    fn feed(
        fp: &mut FuellingPoint,
        now: UnixMillis,
        txs: &[PumpTransaction],
    ) -> Vec<DispenserEvent> {
        txs.iter().flat_map(|t| fp.apply(now, t)).collect()
    }

    fn nozzle(n: u8, out: bool) -> PumpTransaction {
        PumpTransaction::PriceNozzle {
            price: 1539,
            nozzle: n,
            nozzle_out: out,
        }
    }

    fn status(code: u8) -> PumpTransaction {
        PumpTransaction::Status(PumpStatus::from_code(code))
    }

    fn sale(t: UnixMillis, nozzle_out_t: Option<UnixMillis>) -> DispenserEvent {
        DispenserEvent::SaleCompleted(Sale {
            t,
            fp: 3,
            nozzle: 2,
            nozzle_out_t,
            grade: Some("Diesel".into()),
            volume: Decimal::new(1211, 2),
            amount: Decimal::new(18637, 2),
            price: Decimal::new(1539, 3),
            end: Some(FillEnd::Auto),
            recovered: false,
            totalizer: None,
            source_key: None,
        })
    }

    /// Lift, authorize, fill, hang up: events and the commands a master would send.
    #[test]
    fn scripted_sale() {
        let mut p = fp();
        assert_eq!(p.wanted_command(0, true), Some(Command::ReturnStatus));
        assert!(feed(&mut p, 0, &[status(1)]).is_empty());
        assert_eq!(p.wanted_command(10, true), None);

        assert!(feed(&mut p, 1_000, &[nozzle(2, true)]).is_empty());
        assert!(p.needs_authorize());
        assert_eq!(p.wanted_command(1_000, true), Some(Command::Authorize));
        assert_eq!(p.wanted_command(1_000, false), None);
        p.note_command_sent(Command::Authorize, 1_000);
        assert_eq!(p.wanted_command(1_100, true), None);

        let ev = feed(&mut p, 1_100, &[status(2)]);
        assert!(ev.is_empty(), "still debouncing: {ev:?}");
        assert_eq!(
            p.tick(1_400),
            vec![DispenserEvent::NozzleOut {
                t: 1_000,
                fp: 3,
                nozzle: 2
            }]
        );
        assert!(feed(&mut p, 1_500, &[status(4)]).is_empty());
        for (i, v) in [100u64, 500, 1000].iter().enumerate() {
            let ev = feed(
                &mut p,
                2_000 + i as i64 * 500,
                &[PumpTransaction::FillingInfo {
                    volume: *v,
                    amount: v * 15,
                }],
            );
            assert!(ev.is_empty());
        }
        // Final block as a pump sends it: DC2, DC3 nozzle in, DC1 5.
        let ev = feed(
            &mut p,
            9_000,
            &[
                PumpTransaction::FillingInfo {
                    volume: 1211,
                    amount: 18637,
                },
                nozzle(2, false),
                status(5),
            ],
        );
        assert_eq!(
            ev,
            vec![
                DispenserEvent::NozzleIn {
                    t: 9_000,
                    fp: 3,
                    nozzle: 2
                },
                sale(9_000, Some(1_000)),
            ]
        );
        assert!(p.needs_reset());
        assert_eq!(p.wanted_command(9_010, true), Some(Command::Reset));
        // A repeated status 5 (e.g. answer to RETURN STATUS) is not a second sale.
        assert!(feed(&mut p, 9_050, &[status(5)]).is_empty());
        assert!(feed(&mut p, 9_100, &[status(1)]).is_empty());
        assert!(!p.needs_reset());
        assert!(p.tick(20_000).is_empty());
    }

    #[test]
    fn two_identical_sales_are_two_sales() {
        let mut p = fp();
        feed(&mut p, 0, &[status(1)]);
        let mut sales = 0;
        for k in 0..2 {
            let t0 = 10_000 * k;
            let mut ev = feed(&mut p, t0, &[nozzle(2, true), status(2), status(4)]);
            ev.extend(feed(
                &mut p,
                t0 + 5_000,
                &[
                    PumpTransaction::FillingInfo {
                        volume: 1211,
                        amount: 18637,
                    },
                    nozzle(2, false),
                    status(5),
                ],
            ));
            ev.extend(feed(&mut p, t0 + 6_000, &[status(1)]));
            assert_eq!(
                ev,
                vec![
                    DispenserEvent::NozzleOut {
                        t: t0,
                        fp: 3,
                        nozzle: 2
                    },
                    DispenserEvent::NozzleIn {
                        t: t0 + 5_000,
                        fp: 3,
                        nozzle: 2
                    },
                    sale(t0 + 5_000, Some(t0)),
                ]
            );
            sales += 1;
        }
        assert_eq!(sales, 2);
    }

    #[test]
    fn nozzle_flap_produces_nothing() {
        let mut p = fp();
        feed(&mut p, 0, &[status(1)]);
        assert!(feed(&mut p, 1_000, &[nozzle(1, true)]).is_empty());
        assert!(feed(&mut p, 1_100, &[nozzle(1, false)]).is_empty());
        assert!(p.tick(5_000).is_empty());
        assert_eq!(p.nozzle_out(), None);
    }

    #[test]
    fn lift_without_fill_is_out_and_in_without_sale() {
        let mut p = fp();
        feed(&mut p, 0, &[status(1)]);
        feed(&mut p, 1_000, &[nozzle(1, true)]);
        assert_eq!(p.tick(1_300).len(), 1);
        feed(&mut p, 3_000, &[nozzle(1, false)]);
        assert_eq!(
            p.tick(3_300),
            vec![DispenserEvent::NozzleIn {
                t: 3_000,
                fp: 3,
                nozzle: 1
            }]
        );
        // A later completion without a fill armed is not a sale.
        assert!(feed(&mut p, 4_000, &[status(5)])
            .iter()
            .all(|e| !matches!(e, DispenserEvent::SaleCompleted(_))));
    }

    #[test]
    fn missing_dc2_asks_for_filling_info() {
        let mut p = fp();
        feed(&mut p, 0, &[status(1)]);
        assert_eq!(
            feed(&mut p, 1_000, &[nozzle(2, true), status(2), status(4)]).len(),
            1
        );
        let ev = feed(&mut p, 5_000, &[nozzle(2, false), status(5)]);
        assert_eq!(
            ev,
            vec![DispenserEvent::NozzleIn {
                t: 5_000,
                fp: 3,
                nozzle: 2
            }]
        );
        assert_eq!(
            p.wanted_command(5_000, false),
            Some(Command::ReturnFillingInfo)
        );
        assert!(!p.needs_reset());
        let ev = feed(
            &mut p,
            5_100,
            &[PumpTransaction::FillingInfo {
                volume: 1211,
                amount: 18637,
            }],
        );
        assert_eq!(ev, vec![sale(5_100, Some(1_000))]);
        assert_eq!(p.wanted_command(5_100, false), Some(Command::Reset));
    }

    #[test]
    fn worked_frame_through_state_machine() {
        // The fact sheet's frame: DC2 12.11 / 1.86 (amount with 2 dp), price 15.39, status 5.
        let block = [
            0x02, 0x08, 0x00, 0x00, 0x12, 0x11, 0x00, 0x00, 0x01, 0x86, 0x03, 0x04, 0x00, 0x15,
            0x39, 0x00, 0x01, 0x01, 0x05,
        ];
        let mut p = FuellingPoint::new(FuellingPointConfig::new(
            1,
            Decimals {
                volume: 2,
                amount: 2,
                price: 2,
            },
            vec![],
        ));
        feed(&mut p, 0, &[status(4)]);
        let ev = feed(&mut p, 100, &parse_pump_transactions(&block).unwrap());
        let DispenserEvent::SaleCompleted(s) = &ev[0] else {
            panic!("{ev:?}")
        };
        assert_eq!(s.volume, Decimal::new(1211, 2));
        assert_eq!(s.amount, Decimal::new(186, 2));
        assert_eq!(s.price, Decimal::new(1539, 2));
        assert_eq!(s.nozzle_out_t, None);
    }

    #[test]
    fn line_fault_asks_status_again() {
        let mut p = fp();
        feed(&mut p, 0, &[status(1)]);
        p.line_fault();
        assert_eq!(p.wanted_command(10, false), Some(Command::ReturnStatus));
        p.note_command_sent(Command::ReturnStatus, 10);
        assert_eq!(p.wanted_command(500, false), None);
        assert_eq!(p.wanted_command(1_010, false), Some(Command::ReturnStatus));
    }

    fn totals(nozzle: u8, total: u64) -> PumpTransaction {
        PumpTransaction::VolumeTotals {
            nozzle,
            total,
            total1: total,
            total2: 0,
        }
    }

    fn full_sale(p: &mut FuellingPoint, t0: UnixMillis, volume: u64) -> Vec<DispenserEvent> {
        let mut ev = full_sale_without_reset(p, t0, volume);
        ev.extend(feed(p, t0 + 6_000, &[status(1)]));
        ev
    }

    /// Lift, fill, hang up: the pump waits in "filling completed".
    fn full_sale_without_reset(
        p: &mut FuellingPoint,
        t0: UnixMillis,
        volume: u64,
    ) -> Vec<DispenserEvent> {
        let mut ev = feed(p, t0, &[nozzle(2, true), status(2), status(4)]);
        ev.extend(feed(
            p,
            t0 + 5_000,
            &[
                PumpTransaction::FillingInfo {
                    volume,
                    amount: volume * 15,
                },
                nozzle(2, false),
                status(5),
            ],
        ));
        ev
    }

    fn gaps(ev: &[DispenserEvent]) -> Vec<(u8, Decimal)> {
        ev.iter()
            .filter_map(|e| match e {
                DispenserEvent::SaleGap {
                    nozzle,
                    missing_volume,
                    ..
                } => Some((*nozzle, *missing_volume)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn totals_asked_at_start_after_sale_and_periodically() {
        let mut p = fp();
        // Not before the status is known.
        assert_eq!(p.wanted_totals_request(0), None);
        feed(&mut p, 0, &[status(1)]);
        assert_eq!(p.wanted_totals_request(10), Some(1));
        p.note_totals_requested(1, 10);
        assert_eq!(p.wanted_totals_request(20), None, "throttled");
        assert_eq!(
            feed(&mut p, 30, &[totals(1, 1_000)]),
            vec![DispenserEvent::TotalizerRead {
                t: 30,
                fp: 3,
                nozzle: 1,
                total: 1_000
            }]
        );
        assert_eq!(p.wanted_totals_request(40), Some(2));
        assert!(gaps(&feed(&mut p, 50, &[totals(2, 7_000)])).is_empty());
        assert_eq!(p.wanted_totals_request(60), None);

        let ev = full_sale(&mut p, 1_000, 1211);
        assert_eq!(sales_in(&ev), 1);
        // Not while filling; after the sale, nozzle 2 again.
        assert_eq!(p.wanted_totals_request(7_100), Some(2));
        assert!(gaps(&feed(&mut p, 7_200, &[totals(2, 8_211)])).is_empty());
        assert_eq!(p.totals_baseline(2), Some(8_211));

        p.tick(7_300);
        assert_eq!(p.wanted_totals_request(7_300), None);
        p.tick(7_300 + TOTALS_INTERVAL_MS);
        assert_eq!(p.wanted_totals_request(7_300 + TOTALS_INTERVAL_MS), Some(1));
    }

    fn sales_in(ev: &[DispenserEvent]) -> usize {
        ev.iter()
            .filter(|e| matches!(e, DispenserEvent::SaleCompleted(_)))
            .count()
    }

    #[test]
    fn unseen_fill_is_a_sale_gap() {
        let mut p = fp();
        feed(&mut p, 0, &[status(1), totals(2, 5_000)]);
        p.line_fault();
        // After the fault the pump reports a completion we never saw start.
        let ev = feed(&mut p, 10_000, &[status(5)]);
        assert_eq!(sales_in(&ev), 0);
        assert_eq!(p.wanted_command(10_000, false), Some(Command::Reset));
        feed(&mut p, 10_100, &[status(1)]);
        assert_eq!(p.wanted_totals_request(10_200), Some(1));
        let ev = feed(&mut p, 10_300, &[totals(2, 5_000 + 2_345)]);
        assert_eq!(gaps(&ev), vec![(2, Decimal::new(2_345, 2))]);
        let DispenserEvent::SaleGap { fp, t, .. } = ev[0] else {
            unreachable!()
        };
        assert_eq!((fp, t), (3, 10_300));
    }

    #[test]
    fn reported_sales_leave_no_gap_and_identical_sales_count_twice() {
        let mut p = fp();
        feed(&mut p, 0, &[status(1), totals(2, 0)]);
        let mut ev = full_sale(&mut p, 1_000, 1211);
        ev.extend(full_sale(&mut p, 10_000, 1211));
        assert_eq!(sales_in(&ev), 2);
        assert!(gaps(&feed(&mut p, 20_000, &[totals(2, 2_422)])).is_empty());
    }

    #[test]
    fn restart_mid_fill_disarms_and_reads_totals() {
        let mut p = fp();
        feed(&mut p, 0, &[status(1), totals(1, 0), totals(2, 100)]);
        feed(&mut p, 1_000, &[nozzle(2, true), status(2), status(4)]);
        feed(
            &mut p,
            2_000,
            &[PumpTransaction::FillingInfo {
                volume: 300,
                amount: 4500,
            }],
        );
        assert_eq!(p.wanted_totals_request(2_000), None);
        // The pump restarts: idle, nozzle in, no completion.
        let ev = feed(&mut p, 3_000, &[nozzle(2, false), status(1)]);
        assert_eq!(sales_in(&ev), 0);
        // A later completion is not a sale of the aborted fill.
        p.tick(3_500);
        assert_eq!(p.wanted_totals_request(3_500), Some(1));
        feed(&mut p, 3_600, &[totals(1, 0)]);
        let ev = feed(&mut p, 3_700, &[totals(2, 400)]);
        assert_eq!(gaps(&ev), vec![(2, Decimal::new(300, 2))]);
    }

    #[test]
    fn reading_during_a_fill_is_not_compared() {
        let mut p = fp();
        feed(&mut p, 0, &[status(1), totals(2, 0)]);
        feed(&mut p, 1_000, &[nozzle(2, true), status(2), status(4)]);
        // An answer to a request sent before the lift, carrying part of the fill.
        assert!(gaps(&feed(&mut p, 2_000, &[totals(2, 50)])).is_empty());
        let ev = full_sale(&mut p, 1_000, 1211);
        assert_eq!(sales_in(&ev), 1);
        assert!(gaps(&feed(&mut p, 9_000, &[totals(2, 1211)])).is_empty());
    }

    #[test]
    fn silent_firmware_is_asked_a_bounded_number_of_times() {
        let mut p = fp();
        feed(&mut p, 0, &[status(1), totals(2, 0)]);
        let mut asked = 0;
        for k in 0..20 {
            let now = 1_000 + k * COMMAND_RETRY_MS;
            if let Some(n) = p.wanted_totals_request(now) {
                assert_eq!(n, 1);
                p.note_totals_requested(n, now);
                asked += 1;
            }
        }
        assert_eq!(asked, usize::from(TOTALS_MAX_TRIES));
    }

    fn recovered_sales(ev: &[DispenserEvent]) -> Vec<&Sale> {
        ev.iter()
            .filter_map(|e| match e {
                DispenserEvent::SaleCompleted(s) if s.recovered => Some(s),
                _ => None,
            })
            .collect()
    }

    /// Answers every totalizer request at `now` from `totals` (nozzle 1 first), as a pump would,
    /// until the FP asks for none; returns the events.
    fn answer_totals(
        p: &mut FuellingPoint,
        now: &mut UnixMillis,
        totals: &[u64],
    ) -> Vec<DispenserEvent> {
        let mut ev = Vec::new();
        while let Some(n) = p.wanted_totals_request(*now) {
            p.note_totals_requested(n, *now);
            *now += 50;
            ev.extend(feed(
                p,
                *now,
                &[self::totals(n, totals[usize::from(n) - 1])],
            ));
        }
        ev
    }

    /// The agent was killed during a fill on nozzle 2 and the pump completed it while no agent
    /// ran; after the restart the pump answers RETURN STATUS with status 5 alone (no DC3) and
    /// RETURN FILLING INFO with the volume. The kept totalizer readings tell the nozzle, before
    /// RESET, and the sale carries the totalizer that counts it.
    #[test]
    fn a_recovered_fill_without_dc3_gets_its_nozzle_from_the_kept_totalizers() {
        let mut p = fp();
        p.restore_totals(1, 50_000);
        p.restore_totals(2, 8_000);
        assert!(feed(&mut p, 0, &[status(5)]).is_empty());
        assert_eq!(p.wanted_command(0, true), Some(Command::ReturnFillingInfo));
        p.note_command_sent(Command::ReturnFillingInfo, 0);
        let info = PumpTransaction::FillingInfo {
            volume: 677,
            amount: 1042,
        };
        assert!(
            feed(&mut p, 100, &[info]).is_empty(),
            "waits for the nozzle"
        );
        assert_eq!(
            p.wanted_command(100, true),
            None,
            "no RESET before the nozzle is known"
        );
        let mut now = 100;
        let ev = answer_totals(&mut p, &mut now, &[50_000, 8_677]);
        let sales = recovered_sales(&ev);
        assert_eq!(sales.len(), 1, "{ev:?}");
        assert_eq!(
            (sales[0].nozzle, sales[0].grade.as_deref()),
            (2, Some("Diesel"))
        );
        assert_eq!(sales[0].totalizer, Some(8_677));
        // No DC3 since the start: the price is the one that gives the amount.
        assert_eq!(sales[0].price, Decimal::new(1539, 3));
        assert!(gaps(&ev).is_empty(), "{ev:?}");
        assert_eq!(p.wanted_command(now, true), Some(Command::Reset));
    }

    /// The pump answers RETURN STATUS with the next customer's lift (DC3 nozzle 1 out) before
    /// status 5: that lift does not name the completed fill, the totalizers do.
    #[test]
    fn a_lift_seen_with_the_first_status_does_not_name_the_recovered_fill() {
        let mut p = fp();
        p.restore_totals(1, 50_000);
        p.restore_totals(2, 8_000);
        assert!(feed(&mut p, 0, &[nozzle(1, true), status(5)]).is_empty());
        let info = PumpTransaction::FillingInfo {
            volume: 677,
            amount: 1042,
        };
        assert!(feed(&mut p, 100, &[info]).is_empty());
        let mut now = 100;
        let mut ev = answer_totals(&mut p, &mut now, &[50_000, 8_677]);
        ev.extend(p.tick(now + 1_000));
        let sales = recovered_sales(&ev);
        assert_eq!((sales.len(), sales[0].nozzle), (1, 2), "{ev:?}");
        assert_eq!(sales[0].nozzle_out_t, None);
        assert!(ev.iter().any(|e| matches!(
            e,
            DispenserEvent::NozzleOut {
                t: 0,
                nozzle: 1,
                ..
            }
        )));
    }

    /// A recovered fill the kept totalizers already count (kept before the crash, pump never
    /// reset): no nozzle moved, so the nozzle stays unknown and nothing counts it twice.
    #[test]
    fn a_recovered_fill_already_counted_keeps_the_nozzle_unknown() {
        let mut p = fp();
        p.restore_totals(1, 50_000);
        p.restore_totals(2, 8_677);
        let info = PumpTransaction::FillingInfo {
            volume: 677,
            amount: 1042,
        };
        assert!(feed(&mut p, 0, &[info, status(5)]).is_empty());
        let mut now = 0;
        let ev = answer_totals(&mut p, &mut now, &[50_000, 8_677]);
        let sales = recovered_sales(&ev);
        assert_eq!(
            (sales.len(), sales[0].nozzle, sales[0].totalizer),
            (1, 0, None)
        );
        assert!(gaps(&ev).is_empty());
    }

    /// A pump that never answers CD101 ends the wait: the sale is reported with the nozzle
    /// unknown, never held back for good.
    #[test]
    fn a_recovered_fill_is_reported_when_the_totalizers_stay_silent() {
        let info = PumpTransaction::FillingInfo {
            volume: 677,
            amount: 1042,
        };
        let mut p = fp();
        p.restore_totals(1, 50_000);
        assert!(feed(&mut p, 0, &[info.clone(), status(5)]).is_empty());
        assert!(recovered_sales(&p.tick(IDENTIFY_NOZZLE_MS - 1)).is_empty());
        let ev = p.tick(IDENTIFY_NOZZLE_MS);
        assert_eq!(recovered_sales(&ev)[0].nozzle, 0);
        assert_eq!(
            p.wanted_command(IDENTIFY_NOZZLE_MS, true),
            Some(Command::Reset)
        );

        // The next customer lifts nozzle 1 meanwhile: the lift is reported after the sale,
        // with the time it happened, and the sale keeps its own nozzle.
        let mut p = fp();
        p.restore_totals(1, 50_000);
        p.restore_totals(2, 8_000);
        assert!(feed(&mut p, 0, &[info, status(5)]).is_empty());
        assert!(feed(&mut p, 500, &[nozzle(1, true)]).is_empty());
        assert!(
            p.tick(1_000).is_empty(),
            "the lift waits for the recovered sale"
        );
        let mut now = 1_000;
        let mut ev = answer_totals(&mut p, &mut now, &[50_000, 8_677]);
        ev.extend(p.tick(now));
        let sales = recovered_sales(&ev);
        assert_eq!((sales.len(), sales[0].nozzle), (1, 2), "{ev:?}");
        let sale_at = ev
            .iter()
            .position(|e| matches!(e, DispenserEvent::SaleCompleted(_)));
        let lift_at = ev.iter().position(|e| {
            matches!(
                e,
                DispenserEvent::NozzleOut {
                    t: 500,
                    nozzle: 1,
                    ..
                }
            )
        });
        assert!(sale_at < lift_at && lift_at.is_some(), "{ev:?}");
    }

    /// Without kept readings (first start, or a pump without totalizers) nothing can be
    /// compared: the recovered fill is reported at once, as before; one nozzle needs no reading.
    #[test]
    fn a_recovered_fill_without_kept_totalizers_is_reported_at_once() {
        let info = PumpTransaction::FillingInfo {
            volume: 677,
            amount: 1042,
        };
        let mut p = fp();
        let ev = feed(&mut p, 0, &[info.clone(), status(5)]);
        assert_eq!(recovered_sales(&ev)[0].nozzle, 0);
        let mut single = FuellingPoint::new(FuellingPointConfig::new(
            1,
            Decimals {
                volume: 2,
                amount: 2,
                price: 3,
            },
            vec!["95".into()],
        ));
        single.restore_totals(1, 10);
        let ev = feed(&mut single, 0, &[info, status(5)]);
        assert_eq!(recovered_sales(&ev)[0].nozzle, 1);
    }

    /// Feeds one DATA block (see `begin_block`).
    fn block(
        p: &mut FuellingPoint,
        now: UnixMillis,
        txs: &[PumpTransaction],
    ) -> Vec<DispenserEvent> {
        p.begin_block();
        feed(p, now, txs)
    }

    fn info(volume: u64) -> PumpTransaction {
        PumpTransaction::FillingInfo {
            volume,
            amount: volume * 15,
        }
    }

    fn sale_volumes(ev: &[DispenserEvent]) -> Vec<i64> {
        ev.iter()
            .filter_map(|e| match e {
                DispenserEvent::SaleCompleted(s) => Some(s.volume.minor()),
                _ => None,
            })
            .collect()
    }

    /// The completion comes in a block of its own, after a progress DC2 (the block with the
    /// final DC2 was lost, or the pump orders them so): the sale waits for RETURN FILLING INFO
    /// and carries its answer, never the progress volume.
    #[test]
    fn a_sale_waits_for_the_final_filling_info_when_the_completion_brings_none() {
        let mut p = fp();
        block(&mut p, 0, &[status(1)]);
        block(&mut p, 100, &[nozzle(2, true), status(2), status(4)]);
        block(&mut p, 2_000, &[info(2_461)]);
        let ev = block(&mut p, 4_000, &[nozzle(2, false), status(5)]);
        assert!(
            sale_volumes(&ev).is_empty(),
            "not with the progress volume: {ev:?}"
        );
        assert_eq!(
            p.wanted_command(4_000, true),
            Some(Command::ReturnFillingInfo)
        );
        let ev = block(&mut p, 4_100, &[info(3_307)]);
        assert_eq!(sale_volumes(&ev), vec![3_307]);
        assert_eq!(p.wanted_command(4_100, true), Some(Command::Reset));

        // Reordered within the completion block: DC1 5 first, the final DC2 after it.
        block(&mut p, 5_000, &[status(1)]);
        block(&mut p, 6_000, &[nozzle(2, true), status(2), status(4)]);
        block(&mut p, 7_000, &[info(100)]);
        let ev = block(&mut p, 8_000, &[nozzle(2, false), status(5), info(1_234)]);
        assert_eq!(sale_volumes(&ev), vec![1_234]);

        // The usual block, "DC1 5 with final DC2": the sale at once.
        block(&mut p, 9_000, &[status(1)]);
        block(&mut p, 10_000, &[nozzle(2, true), status(2), status(4)]);
        let ev = block(&mut p, 12_000, &[info(777), nozzle(2, false), status(5)]);
        assert_eq!(sale_volumes(&ev), vec![777]);
    }

    /// The next customer lifts another nozzle (another grade, another price) before the last
    /// sale is reported, here while it waits for its final DC2: the sale keeps its own
    /// nozzle's price, not the one the newest DC3 announced.
    #[test]
    fn a_sale_keeps_its_nozzles_price_when_the_next_lift_comes_first() {
        let mut p = fp();
        let dc3 = |n: u8, out: bool, price: u64| PumpTransaction::PriceNozzle {
            price,
            nozzle: n,
            nozzle_out: out,
        };
        block(&mut p, 0, &[status(1)]);
        block(&mut p, 100, &[dc3(2, true, 7_890), status(2), status(4)]);
        let ev = block(&mut p, 4_000, &[dc3(2, false, 7_890), status(5)]);
        assert!(sale_volumes(&ev).is_empty(), "waits for the final DC2");
        block(&mut p, 4_200, &[dc3(1, true, 6_540), status(5)]);
        let ev = block(&mut p, 4_400, &[info(1_373)]);
        let sales: Vec<(u8, i64, i64)> = ev
            .iter()
            .filter_map(|e| match e {
                DispenserEvent::SaleCompleted(s) => {
                    Some((s.nozzle, s.volume.minor(), s.price.minor()))
                }
                _ => None,
            })
            .collect();
        assert_eq!(sales, vec![(2, 1_373, 7_890)]);
    }

    /// A pump that never answers RETURN FILLING INFO: the sale goes with the last DC2 after
    /// the wait, never held back for good.
    #[test]
    fn a_pump_silent_on_filling_info_gets_its_sale_after_the_wait() {
        let mut p = fp();
        block(&mut p, 0, &[status(1)]);
        block(&mut p, 100, &[nozzle(2, true), status(2), status(4)]);
        block(&mut p, 2_000, &[info(2_461)]);
        let ev = block(&mut p, 4_000, &[nozzle(2, false), status(5)]);
        assert!(sale_volumes(&ev).is_empty());
        assert!(sale_volumes(&p.tick(4_000 + FILLING_INFO_WAIT_MS - 1)).is_empty());
        assert_eq!(
            sale_volumes(&p.tick(4_000 + FILLING_INFO_WAIT_MS)),
            vec![2_461]
        );
    }

    /// A completion without any DC2, on a pump that never answers RETURN FILLING INFO: no sale
    /// can be made, but the pump is not held for ever: after the wait it is reset, and the
    /// totalizers read once it is idle show the fuel as a gap on its nozzle.
    #[test]
    fn a_completion_without_any_filling_info_frees_the_pump_and_shows_as_a_gap() {
        let mut p = fp();
        feed(&mut p, 0, &[status(1), totals(2, 50_000)]);
        let ev = feed(&mut p, 100, &[nozzle(2, true), status(2), status(4)]);
        assert!(sale_volumes(&ev).is_empty());
        let ev = feed(&mut p, 4_000, &[nozzle(2, false), status(5)]);
        assert!(sale_volumes(&ev).is_empty());
        assert!(!p.needs_reset(), "waits for RETURN FILLING INFO first");
        assert!(sale_volumes(&p.tick(4_000 + FILLING_INFO_WAIT_MS)).is_empty());
        assert!(p.needs_reset(), "the pump is held after the wait");
        assert_eq!(
            p.wanted_command(4_000 + FILLING_INFO_WAIT_MS, true),
            Some(Command::Reset)
        );
        let t = 5_000 + FILLING_INFO_WAIT_MS;
        feed(&mut p, t, &[status(1)]);
        let ev = feed(&mut p, t + 100, &[totals(2, 53_307)]);
        assert_eq!(gaps(&ev), vec![(2, Decimal::new(3_307, 2))]);
    }

    /// With a count of kept sales, RESET waits until the sale is durable.
    #[test]
    fn reset_waits_until_the_sale_is_kept() {
        let mut p = fp();
        p.note_sales_kept(0);
        let ev = full_sale_without_reset(&mut p, 1_000, 1211);
        assert_eq!(sales_in(&ev), 1);
        assert_eq!(p.wanted_command(9_000, true), None, "sale not kept yet");
        p.note_sales_kept(1);
        assert_eq!(p.wanted_command(9_000, true), Some(Command::Reset));
    }

    /// A recovered fill's price: the nozzle's last DC3 price when it gives the amount, else the
    /// price with the fewest digits that does, else unknown (0).
    #[test]
    fn a_recovered_fill_is_priced_from_what_gives_its_amount() {
        let mut p = fp();
        // 12.00 l for 94.20: 7.850 is the only 3-decimal price that rounds to it.
        assert_eq!(p.recovered_price(1, 1200, 9420), Some(7850));
        // 1.00 l for 7.85: 7.845..7.854 all give it; the rounder one wins.
        assert_eq!(p.recovered_price(1, 100, 785), Some(7850));
        feed(
            &mut p,
            0,
            &[PumpTransaction::PriceNozzle {
                price: 7_849,
                nozzle: 1,
                nozzle_out: false,
            }],
        );
        assert_eq!(p.recovered_price(1, 100, 785), Some(7849), "the price seen");
        assert_eq!(
            p.recovered_price(1, 1200, 9420),
            Some(7850),
            "seen, but gives another amount"
        );
        assert_eq!(p.recovered_price(1, 0, 785), None);
    }

    #[test]
    fn a_fill_completed_before_start_is_reported_as_recovered() {
        let mut fp = FuellingPoint::new(FuellingPointConfig::new(
            3,
            Decimals {
                volume: 2,
                amount: 2,
                price: 3,
            },
            vec!["95".into(), "Diesel".into()],
        ));
        // The answer to RETURN STATUS right after start: filling info, price/nozzle, status 5.
        let mut events = Vec::new();
        for tx in [
            PumpTransaction::FillingInfo {
                volume: 1211,
                amount: 18637,
            },
            PumpTransaction::PriceNozzle {
                price: 1539,
                nozzle: 2,
                nozzle_out: false,
            },
            PumpTransaction::Status(PumpStatus::FillingCompleted),
        ] {
            events.extend(fp.apply(1_000, &tx));
        }
        let sales: Vec<&Sale> = events
            .iter()
            .filter_map(|e| match e {
                DispenserEvent::SaleCompleted(s) => Some(s),
                _ => None,
            })
            .collect();
        assert_eq!(sales.len(), 1, "{events:?}");
        assert!(sales[0].recovered);
        assert_eq!(sales[0].volume, Decimal::new(1211, 2));
        assert_eq!(sales[0].nozzle, 2);
        // Seen again (the status repeats until RESET): not a second sale.
        let again = fp.apply(
            1_100,
            &PumpTransaction::Status(PumpStatus::FillingCompleted),
        );
        assert!(!again
            .iter()
            .any(|e| matches!(e, DispenserEvent::SaleCompleted(_))));
    }
}
