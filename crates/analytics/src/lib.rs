//! Edge analytics, computed from the event stream alone (pure: time comes in with the events and
//! with `poll(now)`, so replaying a trace gives the same output):
//!
//! - `arrival`: a car's plate read with enough confidence in a fuelling point's zone (or by an
//!   entrance camera), once per visit, as soon as the reads allow;
//! - `visit`: when a visit ends, its arrival, nozzle-out, nozzle-in, departure, waiting and
//!   service time, and its sales;
//! - `hourly`: per fuelling point and per nozzle, lifts, sales, volume, amount, vehicles served,
//!   waiting time, utilisation, a volume histogram and the fill-up rate; the last
//!   `keep_hours` summaries stay available on demand ([`Analytics::hour_json`]).
//!
//! Feed it what the station loop sees: [`Analytics::observe_frame`],
//! [`Analytics::observe_dispenser`], and the matcher's decided sales
//! ([`Analytics::observe_matched`], which ties sales to cars); then [`Analytics::poll`].

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod config;
mod event;
mod hourly;
pub mod replay;
mod visit;
pub mod zone_check;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use forecourt_events::{DispenserEvent, FpNumber, FramePlates, PlateRead, Sale, UnixMillis};
use matcher::vote::{text_distance, vote, Ballot};
use matcher::{Layout, MatchedSale};

pub use config::AnalyticsConfig;
pub use event::AnalyticsEvent;
use hourly::HourAcc;
pub use hourly::{hour_of, DecimalSum, FillEnd, HOUR_MS, VOLUME_BIN_NAMES};
use visit::{Read, Visit};
pub use wire::{
    Arrival, ArrivalState, FpHourJson, HourSummary, MetricsJson, NozzleHourJson, VisitRecord,
    VisitSale,
};
use zone_check::{FillEvidence, ZoneCheck};

/// Where a read that the analytics count lies: its box's centre, for a read with a text, a
/// finite box and a confidence of at least `min`; `None` for any other.
fn confident_centre(p: &PlateRead, min: f32) -> Option<(f32, f32)> {
    let usable = !p.text.is_empty()
        && p.confidence.is_finite()
        && p.confidence >= min
        && p.bbox.iter().all(|v| v.is_finite());
    usable.then(|| p.centre())
}

/// A car that was read this long after another nozzle was lifted at its FP (or until that
/// nozzle hung up) was still there for that fill; a car pulling out is gone from the zones within
/// a few seconds.
const STILL_THERE_AFTER_LIFT_MS: i64 = 10_000;

/// A candidate said provisionally keeps this many of its newest reads for its vote.
const MAX_HELD_READS: usize = 32;

/// A nozzle or an FP with a nozzle out, since when.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct OpenSince {
    nozzles: BTreeMap<u8, UnixMillis>,
    /// When the FP last went from no nozzle out to one out.
    fp: Option<UnixMillis>,
}

/// The hours still being counted, as [`Analytics::running_hours`] saves them: what a restart
/// takes over ([`Analytics::restore_running_hours`]) so that no hour's summary is lost.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunningHours {
    /// When it was taken (the newest event time then).
    pub taken_t: UnixMillis,
    next_hour: Option<UnixMillis>,
    hours: BTreeMap<UnixMillis, HourAcc>,
    late_events: u32,
    known: BTreeMap<FpNumber, BTreeSet<u8>>,
    counting_since: Option<UnixMillis>,
}

impl RunningHours {
    /// Hours with counters in it.
    pub fn hours_counting(&self) -> usize {
        self.hours.len()
    }
}

/// A car read, not yet sure enough for its arrival: its reads, and the provisional arrival said
/// for it, if any.
struct Candidate {
    /// Its first read: the pruned `reads` may have lost it.
    first_seen_t: UnixMillis,
    reads: Vec<Read>,
    provisional: Option<Arrival>,
}

pub struct Analytics {
    config: AnalyticsConfig,
    layout: Layout,
    is_well_formed: fn(&str) -> bool,
    /// Confident reads not yet tied to a visit, grouped by car (similar texts).
    candidates: Vec<Candidate>,
    visits: Vec<Visit>,
    out: VecDeque<AnalyticsEvent>,
    open: BTreeMap<FpNumber, OpenSince>,
    hours: BTreeMap<UnixMillis, HourAcc>,
    /// The oldest hour not yet closed (None before the first event).
    next_hour: Option<UnixMillis>,
    newest_t: UnixMillis,
    late_events: u32,
    known: BTreeMap<FpNumber, BTreeSet<u8>>,
    /// Closed hours, newest last, at most `keep_hours`.
    history: VecDeque<HourSummary>,
    /// When this instance began counting (see [`Self::counting_since`]).
    counting_since: Option<UnixMillis>,
    /// Whether each fuelling point's zones sit where its customers stand.
    zone_check: ZoneCheck,
    /// Provisional arrivals said, and taken back, since start.
    provisional_said: u64,
    retracted: u64,
}

impl Analytics {
    /// `is_well_formed` is the plate grammar (as for the matcher).
    pub fn new(layout: Layout, config: AnalyticsConfig, is_well_formed: fn(&str) -> bool) -> Self {
        let known = layout.fps.iter().map(|f| (f.fp, BTreeSet::new())).collect();
        let zone_check = ZoneCheck::new(layout.clone(), config.min_read_confidence);
        Analytics {
            config,
            layout,
            is_well_formed,
            candidates: Vec::new(),
            visits: Vec::new(),
            out: VecDeque::new(),
            open: BTreeMap::new(),
            hours: BTreeMap::new(),
            next_hour: None,
            newest_t: UnixMillis::MIN,
            late_events: 0,
            known,
            history: VecDeque::new(),
            counting_since: None,
            zone_check,
            provisional_said: 0,
            retracted: 0,
        }
    }

    /// The fuelling points' zones drawn anew (a reload): reads from now on are placed by them.
    /// A fuelling point new to the layout starts with no nozzles known.
    pub fn set_layout(&mut self, layout: Layout) {
        for f in &layout.fps {
            self.known.entry(f.fp).or_default();
        }
        self.zone_check.set_layout(layout.clone());
        self.layout = layout;
    }

    /// The live agent calls this at start: what happened earlier in the current hour (before a
    /// restart) is not in these counters, so that hour's summary says from when it counts
    /// (`counted_from`). A replay of a whole trace does not call it.
    pub fn counting_since(&mut self, t: UnixMillis) {
        self.counting_since = Some(t);
    }

    pub fn config(&self) -> &AnalyticsConfig {
        &self.config
    }

    /// Plate reads: may decide an arrival (handed out by the next [`Self::poll`]; call it right
    /// after this for the lowest latency).
    pub fn observe_frame(&mut self, frame: &FramePlates) {
        self.seen(frame.t);
        for fp in self.zone_check.observe_frame(frame) {
            if let Some(acc) = self.acc(frame.t) {
                acc.fp(fp).zones.reads += 1;
            }
        }
        let entrance = self.config.entrance_cameras.contains(&frame.camera);
        for p in &frame.plates {
            let Some((x, y)) = confident_centre(p, self.config.min_read_confidence) else {
                continue;
            };
            let fp = if entrance {
                None
            } else {
                match self.layout.fps_at(&frame.camera, x, y).next() {
                    Some(fp) => Some(fp),
                    None => continue, // neither in a zone nor at the entrance
                }
            };
            self.on_read(Read {
                t: frame.t,
                text: p.text.clone(),
                confidence: p.confidence,
                well_formed: (self.is_well_formed)(&p.text),
                camera: frame.camera.clone(),
                fp,
            });
        }
    }

    /// Dispenser events: nozzle lifts and utilisation, sales, volumes, totalizer gaps. The fill
    /// end (DART status 5 or 6) is not in [`Sale`] yet: see [`Self::observe_sale_end`].
    pub fn observe_dispenser(&mut self, event: &DispenserEvent) {
        let end = match event {
            DispenserEvent::SaleCompleted(sale) => sale.end,
            _ => None,
        };
        self.observe_dispenser_with_end(event, end);
    }

    /// [`Self::observe_dispenser`] with how a sale's fill ended (ignored for other events).
    pub fn observe_dispenser_with_end(&mut self, event: &DispenserEvent, end: Option<FillEnd>) {
        let t = event.time();
        self.seen(t);
        match event {
            DispenserEvent::NozzleOut { t, fp, nozzle } => {
                self.know(*fp, *nozzle);
                if let Some(acc) = self.acc(*t) {
                    let fpa = acc.fp(*fp);
                    fpa.all.lifts += 1;
                    fpa.nozzles.entry(*nozzle).or_default().lifts += 1;
                }
                // A lift without the previous hang-up: that fill ended now.
                self.close_nozzle(*fp, *nozzle, *t);
                let open = self.open.entry(*fp).or_default();
                if open.nozzles.is_empty() {
                    open.fp = Some(*t);
                }
                open.nozzles.insert(*nozzle, *t);
            }
            DispenserEvent::NozzleIn { t, fp, nozzle } => self.close_nozzle(*fp, *nozzle, *t),
            DispenserEvent::SaleCompleted(sale) => self.on_sale(sale, end),
            DispenserEvent::PumpOffline { t, fp } => {
                let nozzles: Vec<u8> = self
                    .open
                    .get(fp)
                    .map(|o| o.nozzles.keys().copied().collect())
                    .unwrap_or_default();
                for n in nozzles {
                    self.close_nozzle(*fp, n, *t);
                }
            }
            DispenserEvent::PumpOnline { .. } | DispenserEvent::TotalizerRead { .. } => {}
            DispenserEvent::SaleGap {
                t,
                fp,
                nozzle,
                missing_volume,
                ..
            } => {
                self.know(*fp, *nozzle);
                if let Some(acc) = self.acc(*t) {
                    let fpa = acc.fp(*fp);
                    for c in [&mut fpa.all, fpa.nozzles.entry(*nozzle).or_default()] {
                        c.sale_gaps += 1;
                        c.missing_volume.add(*missing_volume);
                    }
                }
            }
        }
    }

    /// A sale as [`Self::observe_dispenser`] takes it, with its fill end.
    pub fn observe_sale_end(&mut self, sale: &Sale, end: Option<FillEnd>) {
        self.observe_dispenser_with_end(&DispenserEvent::SaleCompleted(sale.clone()), end);
    }

    /// The matcher's decided sale: ties the sale to a car's visit (by plate), or to a plate-less
    /// visit at its fuelling point, and judges whether the fuelling point's zones fit its fill
    /// (the evidence is returned; `None` for a fill whose start is unknown). A correction (the
    /// matcher's second look at a sale already observed) is not another sale; visits keep the
    /// first verdict.
    pub fn observe_matched(&mut self, m: &MatchedSale) -> Option<FillEvidence> {
        if m.correction {
            return None;
        }
        let evidence = self.zone_check.observe_matched(m);
        if let Some(e) = &evidence {
            if let Some(acc) = self.acc(m.sale.t) {
                acc.fp(e.fp).zones.judged(&zone_check::Judged::of(e));
            }
        }
        self.tie_to_visit(m);
        evidence
    }

    /// Per fuelling point, how its zones fitted its latest sales, with an alarm when they look
    /// misplaced (for the health report).
    pub fn zone_report(&self) -> BTreeMap<FpNumber, wire::FpZoneCheck> {
        self.zone_check.report()
    }

    fn tie_to_visit(&mut self, m: &MatchedSale) {
        let sale = VisitSale {
            fp: m.sale.fp,
            nozzle: m.sale.nozzle,
            volume: m.sale.volume,
            amount: m.sale.amount,
            nozzle_out_t: m.fill_start,
            nozzle_in_t: m.fill_end,
            completed_t: m.sale.t,
            plate: m.verdict.plate.clone(),
        };
        let fp = sale.fp;
        let start = sale.nozzle_out_t.unwrap_or(sale.nozzle_in_t);
        let gap = self.config.same_vehicle_gap_ms;
        // A visit at this FP whose previous fill ended just before this one started, and whose
        // car, if the cameras saw it, was still read a while into this fill (else it was
        // pulling out and this is the next customer).
        let still_there = (start + STILL_THERE_AFTER_LIFT_MS).min(sale.nozzle_in_t);
        let follows = |v: &Visit| {
            v.last_fill_end_at(fp).is_some_and(|e| start - e <= gap)
                && v.last_seen.is_none_or(|seen| seen >= still_there)
        };
        let target = match &m.verdict.plate {
            Some(plate) => {
                let found = self.find_visit(plate, Some(fp));
                let i = found.unwrap_or_else(|| {
                    self.visits.push(Visit::unread(
                        format!("{start}:{plate}"),
                        Some(plate.clone()),
                    ));
                    self.visits.len() - 1
                });
                // A plate-less visit just before at this FP was this car's other nozzle, unless
                // that fill was over before the car was first read here.
                let arrived = self.visits[i].arrival_t;
                let was_here = |v: &Visit| {
                    arrived.is_none_or(|a| v.last_fill_end_at(fp).is_some_and(|e| e >= a))
                };
                if let Some(j) = self
                    .visits
                    .iter()
                    .position(|v| v.plate.is_none() && !v.counted && follows(v) && was_here(v))
                {
                    if j != i {
                        let anon = self.visits.remove(j);
                        let i = if j < i { i - 1 } else { i };
                        self.visits[i].sales.extend(anon.sales);
                        self.visits[i].sales.sort_by_key(|s| s.completed_t);
                        self.visits[i].sales.push(sale);
                        return;
                    }
                }
                i
            }
            None => {
                let by_gap = (0..self.visits.len())
                    .rev()
                    .find(|&i| follows(&self.visits[i]));
                // Else the one car read in this FP's zones during the fill that bought nothing.
                let by_zone = || {
                    let mut standing = (0..self.visits.len()).filter(|&i| {
                        let v = &self.visits[i];
                        v.plate.is_some()
                            && v.sales.is_empty()
                            && v.fp() == Some(fp)
                            && v.arrival_t.is_some_and(|a| a <= sale.nozzle_in_t)
                            && v.last_seen.is_some_and(|l| l >= start)
                    });
                    match (standing.next(), standing.next()) {
                        (Some(i), None) => Some(i),
                        _ => None,
                    }
                };
                match by_gap.or_else(by_zone) {
                    Some(i) => i,
                    None => {
                        self.visits
                            .push(Visit::unread(format!("{start}:fp{fp}"), None));
                        self.visits.len() - 1
                    }
                }
            }
        };
        self.visits[target].sales.push(sale);
    }

    /// Everything due at `now`: arrivals already decided, visits that ended, hours closed.
    pub fn poll(&mut self, now: UnixMillis) -> Vec<AnalyticsEvent> {
        // Reads too old to make an arrival.
        let horizon = now.saturating_sub(self.config.window_ms);
        // One said provisionally waits longer for the reads that confirm it: a car at the pump
        // may be hidden for a while, and its arrival was already said.
        let held = now.saturating_sub(self.config.provisional_hold_ms);
        let (kept, gone): (Vec<_>, Vec<_>) = std::mem::take(&mut self.candidates)
            .into_iter()
            .partition(|c| {
                let since = if c.provisional.is_some() {
                    held
                } else {
                    horizon
                };
                c.reads.last().is_some_and(|r| r.t >= since)
            });
        self.candidates = kept;
        // A provisional arrival its reads never confirmed: taken back.
        for said in gone.into_iter().filter_map(|c| c.provisional) {
            self.retract(said, now);
        }
        // Visits that ended; those whose first sale falls in an hour not closed yet wait for it.
        let depart = self.config.depart_after_ms;
        let mut i = 0;
        while i < self.visits.len() {
            if self.visits[i].last_activity().saturating_add(depart) <= now {
                let v = self.visits.remove(i);
                self.out.push_back(AnalyticsEvent::Visit(v.record()));
                self.count_vehicle(&v);
            } else {
                i += 1;
            }
        }
        self.close_hours(now);
        self.out.drain(..).collect()
    }

    /// The closed hours held (at most `keep_hours`), oldest first.
    pub fn closed_hours(&self) -> impl Iterator<Item = &HourSummary> {
        self.history.iter()
    }

    /// The summary of a closed hour still held (`hour` is any time within it).
    pub fn hour(&self, hour: UnixMillis) -> Option<&HourSummary> {
        let hour = hour_of(hour);
        self.history.iter().find(|h| h.hour == hour)
    }

    /// The summary of `hour` (any time within it): a closed one as published, or one still
    /// being counted as it stands at `now` (`counted_until` set; nozzles still out counted up
    /// to `now`, vehicles as counted so far). `None` for an hour neither held nor counting.
    pub fn hour_or_so_far(&self, hour: UnixMillis, now: UnixMillis) -> Option<HourSummary> {
        if let Some(closed) = self.hour(hour) {
            return Some(closed.clone());
        }
        let h = hour_of(hour);
        let open = self.next_hour.is_some_and(|next| h >= next) && h <= hour_of(now);
        if !open {
            return None;
        }
        let until = now.min(h + HOUR_MS);
        let mut acc = self.hours.get(&h).cloned().unwrap_or_default();
        self.credit_open_nozzles(&mut acc, h, until);
        let counted_from = self.counting_since.filter(|&t| t > h && t < h + HOUR_MS);
        let mut summary = acc.summary(h, &self.known, self.late_events, counted_from);
        summary.counted_until = Some(until);
        Some(summary)
    }

    /// The hours still being counted, with the time of nozzles still out credited up to the
    /// newest event: saved by the station now and then, taken over after a restart.
    pub fn running_hours(&self) -> RunningHours {
        let taken_t = self.newest_t;
        let mut hours = self.hours.clone();
        for (&h, acc) in &mut hours {
            self.credit_open_nozzles(acc, h, taken_t.min(h + HOUR_MS));
        }
        RunningHours {
            taken_t,
            next_hour: self.next_hour,
            hours,
            late_events: self.late_events,
            known: self.known.clone(),
            counting_since: self.counting_since,
        }
    }

    /// Takes over the hours an earlier run was counting (see [`Self::running_hours`]): an hour
    /// that ended while the agent was down is published by the next [`Self::poll`] like any
    /// other, and the current one counts on. Events between `taken_t` and this start are not
    /// counted; the earlier run's start of counting stays the hour's `counted_from`. Call
    /// before any event, after [`Self::counting_since`].
    pub fn restore_running_hours(&mut self, running: RunningHours) {
        // Hours it counted that closed since (published by it before it stopped) are skipped.
        let closed: BTreeSet<UnixMillis> = self.history.iter().map(|h| h.hour).collect();
        for (h, acc) in running.hours {
            if !closed.contains(&h) {
                self.hours.insert(h, acc);
            }
        }
        self.next_hour = self
            .hours
            .keys()
            .next()
            .copied()
            .or(running.next_hour)
            .filter(|next| !closed.contains(next))
            .or(self.next_hour);
        self.late_events = running.late_events;
        for (fp, nozzles) in running.known {
            self.known.entry(fp).or_default().extend(nozzles);
        }
        // Counted across the restart from the earlier run's start (minus the time it was down).
        self.counting_since = running.counting_since;
        self.newest_t = self.newest_t.max(running.taken_t);
    }

    /// [`Analytics::hour`] as the `hourly` body.
    pub fn hour_json(&self, hour: UnixMillis) -> Option<serde_json::Value> {
        self.hour(hour).and_then(|h| serde_json::to_value(h).ok())
    }

    /// Closed hours held, oldest first.
    pub fn hours_held(&self) -> impl Iterator<Item = UnixMillis> + '_ {
        self.history.iter().map(|h| h.hour)
    }

    /// Puts a summary back (e.g. from the outbox archive after a restart), keeping the bound.
    pub fn restore_hour(&mut self, summary: HourSummary) {
        if self.history.iter().any(|h| h.hour == summary.hour) {
            return;
        }
        let at = self.history.partition_point(|h| h.hour < summary.hour);
        self.history.insert(at, summary);
        while self.history.len() > self.config.keep_hours {
            self.history.pop_front();
        }
    }

    /// Open visits and pending candidates (for health reporting and the bound tests).
    pub fn open_visits(&self) -> usize {
        self.visits.len()
    }

    fn seen(&mut self, t: UnixMillis) {
        self.newest_t = self.newest_t.max(t);
        if self.next_hour.is_none() {
            self.next_hour = Some(hour_of(t));
        }
    }

    fn know(&mut self, fp: FpNumber, nozzle: u8) {
        self.known.entry(fp).or_default().insert(nozzle);
    }

    /// The counters of `t`'s hour; `None` (counted late) when that hour is closed.
    fn acc(&mut self, t: UnixMillis) -> Option<&mut HourAcc> {
        let hour = hour_of(t);
        if self.next_hour.is_some_and(|next| hour < next) {
            self.late_events += 1;
            return None;
        }
        Some(self.hours.entry(hour).or_default())
    }

    fn on_sale(&mut self, sale: &Sale, end: Option<FillEnd>) {
        self.know(sale.fp, sale.nozzle);
        // A sale closes its fill even when the hang-up was not seen.
        self.close_nozzle(sale.fp, sale.nozzle, sale.t);
        if let Some(acc) = self.acc(sale.t) {
            let fpa = acc.fp(sale.fp);
            fpa.all.add_sale(sale.volume, sale.amount, end);
            fpa.nozzles
                .entry(sale.nozzle)
                .or_default()
                .add_sale(sale.volume, sale.amount, end);
        }
    }

    fn close_nozzle(&mut self, fp: FpNumber, nozzle: u8, t: UnixMillis) {
        let Some(open) = self.open.get_mut(&fp) else {
            return;
        };
        let Some(since) = open.nozzles.remove(&nozzle) else {
            return;
        };
        let fp_since = if open.nozzles.is_empty() {
            open.fp.take()
        } else {
            None
        };
        self.credit(fp, Some(nozzle), since, t);
        if let Some(s) = fp_since {
            self.credit(fp, None, s, t);
        }
    }

    /// Adds `from..to` to the nozzle-out time of the open hours it overlaps (closed hours were
    /// credited up to their end when they closed).
    fn credit(&mut self, fp: FpNumber, nozzle: Option<u8>, from: UnixMillis, to: UnixMillis) {
        let first_open = self.next_hour.unwrap_or(UnixMillis::MIN);
        let mut h = hour_of(from).max(first_open);
        while h < to {
            let (s, e) = (from.max(h), to.min(h + HOUR_MS));
            if e > s {
                self.hours
                    .entry(h)
                    .or_default()
                    .fp(fp)
                    .add_nozzle_out(nozzle, e - s);
            }
            h += HOUR_MS;
        }
    }

    fn on_read(&mut self, read: Read) {
        let max = self.config.max_text_distance;
        // A car already arrived: its visit goes on. A read that is not its exact text is a
        // misread of it only where and while that car is being read: a car with a similar
        // plate at another pump, or the next one at this pump, is another car.
        let recent = read.t - self.config.window_ms;
        let visit = self
            .visits
            .iter_mut()
            .filter_map(|v| {
                let d = text_distance(v.plate.as_deref()?, &read.text);
                let misread = d <= max
                    && v.fp_reads.contains_key(&read.fp)
                    && v.last_seen.is_some_and(|l| l >= recent);
                (d == 0 || misread).then_some((d == 0, v))
            })
            .max_by_key(|(exact, v)| (*exact, v.last_seen))
            .map(|(_, v)| v);
        if let Some(v) = visit {
            v.last_seen = Some(v.last_seen.map_or(read.t, |l| l.max(read.t)));
            if v.arrival_t.is_none() {
                // Created by a matched sale before its car was read well enough.
                v.arrival_t = Some(read.t);
            }
            *v.fp_reads.entry(read.fp).or_default() += 1;
            return;
        }
        let horizon = read.t - self.config.window_ms;
        let group = self.candidates.iter().position(|c| {
            c.reads
                .iter()
                .rev()
                .take(6)
                .any(|r| text_distance(&r.text, &read.text) <= max)
        });
        let gi = match group {
            Some(gi) => {
                let candidate = &mut self.candidates[gi];
                if candidate.provisional.is_none() {
                    candidate.reads.retain(|r| r.t >= horizon);
                } else if candidate.reads.len() >= MAX_HELD_READS {
                    // Said already: its reads are voted however sparse, the newest kept.
                    candidate.reads.remove(0);
                }
                candidate.reads.push(read.clone());
                gi
            }
            None => {
                self.candidates.push(Candidate {
                    first_seen_t: read.t,
                    reads: vec![read.clone()],
                    provisional: None,
                });
                self.candidates.len() - 1
            }
        };
        self.say_provisional(gi, &read);
        let reads = &self.candidates[gi].reads;
        if reads.len() < self.config.min_reads {
            return;
        }
        let Some(voted) = vote(reads.iter().map(|r| Ballot {
            text: &r.text,
            confidence: r.confidence,
            well_formed: r.well_formed,
        })) else {
            return;
        };
        if !(self.is_well_formed)(&voted.text) || voted.certainty < self.config.min_certainty {
            return;
        }
        let Candidate {
            first_seen_t,
            reads,
            provisional,
        } = self.candidates.remove(gi);
        let last = reads.last().cloned().expect("at least min_reads reads");
        let mut fp_reads: BTreeMap<Option<FpNumber>, u32> = BTreeMap::new();
        for r in &reads {
            *fp_reads.entry(r.fp).or_default() += 1;
        }
        // The provisional arrival said for this car: confirmed under its own key when the vote
        // reads the same plate, taken back otherwise.
        let confirmed_key = match provisional {
            Some(said) if said.plate == voted.text => Some(said.visit),
            Some(said) => {
                self.retract(said, last.t);
                None
            }
            None => None,
        };
        let mut visit = Visit {
            key: confirmed_key.unwrap_or_else(|| format!("{first_seen_t}:{}", voted.text)),
            plate: Some(voted.text.clone()),
            arrival_t: Some(first_seen_t),
            last_seen: Some(last.t),
            fp_reads,
            sales: Vec::new(),
            counted: false,
        };
        let fp = visit.fp();
        // The matcher may have tied a sale to this plate before it was read well enough here:
        // that visit, made from the sale, was never read.
        let made_by_a_sale = self.find_visit(&voted.text, fp).filter(|&i| {
            let v = &self.visits[i];
            v.arrival_t.is_none() && (fp.is_none() || v.fp() == fp)
        });
        if let Some(i) = made_by_a_sale {
            let earlier = self.visits.remove(i);
            visit.sales = earlier.sales;
        }
        let arrival = Arrival {
            visit: visit.key.clone(),
            t: last.t,
            plate: voted.text,
            confidence: (f64::from(voted.certainty) * 1000.0).round() / 1000.0,
            camera: last.camera,
            fp,
            first_seen_t,
            reads: reads.len(),
            state: ArrivalState::Confirmed,
        };
        match fp.and_then(|fp| self.acc(last.t).map(|acc| (fp, acc))) {
            Some((fp, acc)) => acc.fp(fp).arrivals += 1,
            None if fp.is_none() => {
                if let Some(acc) = self.acc(last.t) {
                    acc.entrance_arrivals += 1;
                }
            }
            None => {}
        }
        self.visits.push(visit);
        self.out.push_back(AnalyticsEvent::Arrival(arrival));
    }

    /// A provisional arrival for candidate `gi` at `read`, if it has none yet and `read` is a
    /// well-formed read in a zone that `provisional_min_reads` of the car's reads there read
    /// exactly, each with at least `provisional_min_confidence`, and that more of its reads
    /// read than read a text near it. Entrance cameras wait for the vote.
    fn say_provisional(&mut self, gi: usize, read: &Read) {
        let candidate = &self.candidates[gi];
        if candidate.provisional.is_some() || read.fp.is_none() || !read.well_formed {
            return;
        }
        let sure = candidate
            .reads
            .iter()
            .filter(|r| {
                r.text == read.text && r.confidence >= self.config.provisional_min_confidence
            })
            .count();
        let backing = candidate
            .reads
            .iter()
            .filter(|r| r.text == read.text)
            .count();
        if sure < self.config.provisional_min_reads || backing * 2 <= candidate.reads.len() {
            return;
        }
        let candidate = &mut self.candidates[gi];
        // The key the confirmed arrival will have if the vote reads the same plate.
        let first_seen_t = candidate.first_seen_t;
        let arrival = Arrival {
            visit: format!("{first_seen_t}:{}", read.text),
            t: read.t,
            plate: read.text.clone(),
            confidence: (f64::from(read.confidence) * 1000.0).round() / 1000.0,
            camera: read.camera.clone(),
            fp: read.fp,
            first_seen_t,
            reads: candidate.reads.len(),
            state: ArrivalState::Provisional,
        };
        candidate.provisional = Some(arrival.clone());
        self.provisional_said += 1;
        self.out.push_back(AnalyticsEvent::Arrival(arrival));
    }

    /// Takes back the provisional arrival `said` at `t`.
    fn retract(&mut self, said: Arrival, t: UnixMillis) {
        self.retracted += 1;
        self.out.push_back(AnalyticsEvent::Arrival(Arrival {
            t,
            state: ArrivalState::Retracted,
            ..said
        }));
    }

    /// Provisional arrivals said and taken back since start: how often the first read was
    /// wrong (a misread, a sign, a passing car).
    pub fn provisional_counts(&self) -> (u64, u64) {
        (self.provisional_said, self.retracted)
    }

    /// The open visit of `plate` (within the text distance), preferring `fp`, most recent first.
    fn find_visit(&self, plate: &str, fp: Option<FpNumber>) -> Option<usize> {
        let max = self.config.max_text_distance;
        (0..self.visits.len())
            .filter(|&i| {
                self.visits[i]
                    .plate
                    .as_deref()
                    .is_some_and(|p| text_distance(p, plate) <= max)
            })
            .max_by_key(|&i| {
                let v = &self.visits[i];
                (
                    fp.is_some() && v.fp() == fp,
                    text_distance(v.plate.as_deref().unwrap_or(""), plate) == 0,
                    v.last_activity(),
                )
            })
    }

    /// Counts a visit with sales as a vehicle served in the hour of its first sale.
    fn count_vehicle(&mut self, v: &Visit) {
        if v.counted {
            return;
        }
        let Some(first) = v.sales.iter().min_by_key(|s| s.completed_t).cloned() else {
            return;
        };
        let wait = v.waiting_ms();
        if let Some(acc) = self.acc(first.completed_t) {
            let fpa = acc.fp(first.fp);
            for c in [&mut fpa.all, fpa.nozzles.entry(first.nozzle).or_default()] {
                c.vehicles += 1;
                c.waits.extend(wait);
            }
        }
    }

    /// Adds to hour `h`'s counters the time nozzles still out were out in it, up to `until`.
    fn credit_open_nozzles(&self, acc: &mut HourAcc, h: UnixMillis, until: UnixMillis) {
        for (&fp, o) in &self.open {
            let open = o
                .nozzles
                .iter()
                .map(|(&n, &s)| (Some(n), s))
                .chain(o.fp.map(|s| (None, s)));
            for (nozzle, since) in open {
                let s = since.max(h);
                if until > s {
                    acc.fp(fp).add_nozzle_out(nozzle, until - s);
                }
            }
        }
    }

    fn close_hours(&mut self, now: UnixMillis) {
        let Some(mut h) = self.next_hour else {
            return;
        };
        let last = hour_of(self.newest_t);
        // After a long silence, publish no more empty hours than the history keeps.
        let skip_to =
            hour_of(now.min(self.newest_t)).saturating_sub(HOUR_MS * self.config.keep_hours as i64);
        if h < skip_to && self.hours.range(..skip_to).next().is_none() {
            h = skip_to;
            self.next_hour = Some(h);
        }
        while h <= last && h.saturating_add(HOUR_MS + self.config.close_delay_ms) <= now {
            // Vehicles whose first sale was in this hour and who are still here count now.
            let end = h + HOUR_MS;
            let mut due = Vec::new();
            for v in &mut self.visits {
                if !v.counted
                    && v.sales
                        .iter()
                        .map(|s| s.completed_t)
                        .min()
                        .is_some_and(|t| t < end)
                {
                    due.push(v.clone());
                    v.counted = true;
                }
            }
            for v in due {
                self.count_vehicle(&v);
            }
            // Nozzles still out: their time so far in this hour.
            let mut acc = self.hours.remove(&h).unwrap_or_default();
            self.credit_open_nozzles(&mut acc, h, end);
            let counted_from = self.counting_since.filter(|&t| t > h && t < end);
            let summary = acc.summary(
                h,
                &self.known,
                std::mem::take(&mut self.late_events),
                counted_from,
            );
            self.out.push_back(AnalyticsEvent::Hourly(summary.clone()));
            self.history.push_back(summary);
            while self.history.len() > self.config.keep_hours {
                self.history.pop_front();
            }
            h = end;
            self.next_hour = Some(h);
        }
    }
}
