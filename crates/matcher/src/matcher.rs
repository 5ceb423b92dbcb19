//! Ties each completed sale to the plate of the car that stood at its fuelling point during the fill,
//! with a confidence, or to no plate. A wrong plate can charge the wrong customer, so every doubt
//! lowers the confidence and below `min_confidence` the matcher abstains.
//!
//! How: plate reads become per-camera tracks (one per car, see [`crate::tracker`]). For a sale, each
//! car (a voted plate text) scores by how much of the fill it stood still inside the fuelling
//! point's zones and how much of its time it spent inside them rather than elsewhere. Sales whose
//! fills overlap compete for the same cars, so they are assigned jointly (Hungarian). The verdict
//! is decided after a grace period, using only what happened up to that moment, so a live run and
//! the replay of its trace decide alike.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use forecourt_events::{DispenserEvent, FpNumber, FramePlates, Sale, SaleMatch, UnixMillis};

use crate::assign::assign_max;
use crate::frame_log::FrameLog;
use crate::layout::{Layout, Zone};
use crate::stop_model::{likeness_to, size_likeness, StopModel, StopSample};
use crate::tracker::{smoothed_at, Track, TrackRead, Tracker, TrackerConfig, ZoneBits};
use crate::vote::{vote, Ballot, VoteTally, VotedText};
use forecourt_events::text_distance_at_most;

#[derive(Debug, Clone, PartialEq)]
pub struct MatcherConfig {
    /// How long after a sale to wait for late frames before deciding.
    pub grace_ms: i64,
    /// How long after the hang-up to judge the sale again, with what was seen since (the car read
    /// standing at the pump after an occlusion or a camera outage that hid the whole fill). A
    /// different verdict then is published as a correction. 0 (or not above `grace_ms`): never.
    pub revisit_ms: i64,
    /// Below this confidence the matcher gives no plate. Confidences are calibrated (a plate
    /// given at 0.95 is right about 95 times in 100), so this is the accepted error rate.
    pub min_confidence: f32,
    /// A plate needs at least this many reads inside the fuelling point's zones.
    pub min_reads: usize,
    /// Share of the fill a car must be seen standing in the zone to count as fully present.
    pub full_coverage: f32,
    /// Below this share of the fill a car is not considered at all.
    pub min_coverage: f32,
    /// Sightings older than this are forgotten (unless a pending sale still needs them).
    pub retention_ms: i64,
    /// A car read standing in the zone and then hidden is assumed to stay this long at most,
    /// unless another car is read there first.
    pub hidden_stay_ms: i64,
    /// Two reads of a track this close (normalised units) mean the car stood still between them.
    pub stationary_distance: f32,
    /// A camera with no frame for this long is dark (an outage): nothing is known of that time,
    /// unlike frames that arrive with nothing read.
    pub outage_after_ms: i64,
    /// A car last read standing at the pump while frames kept coming is assumed to stay this long
    /// (a person walking past its plate); dark time is added to it. One read standing there with
    /// the nozzle out is assumed to stay till the hang-up (the nozzle is in it), unless another
    /// car is read there first.
    pub visible_hold_ms: i64,
    /// Reads this long before the nozzle lift and after the hang-up still show the car standing
    /// there (it arrived before and left after).
    pub presence_margin_ms: i64,
    /// A plate box this many of its own widths outside a zone, nearer to it than to any other
    /// fuelling point's zone, is a car that stopped partly outside the drawn zone.
    pub near_zone_widths: f32,
    pub tracker: TrackerConfig,
}

impl Default for MatcherConfig {
    fn default() -> Self {
        MatcherConfig {
            grace_ms: 5_000,
            revisit_ms: 60_000,
            min_confidence: 0.95,
            min_reads: 3,
            full_coverage: 0.8,
            min_coverage: 0.05,
            retention_ms: 30 * 60_000,
            stationary_distance: 0.03,
            hidden_stay_ms: 60_000,
            outage_after_ms: 2_000,
            visible_hold_ms: 10_000,
            presence_margin_ms: 60_000,
            near_zone_widths: 1.5,
            tracker: TrackerConfig::default(),
        }
    }
}

/// A sale with the matcher's verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct MatchedSale {
    pub sale: Sale,
    pub fill_start: Option<UnixMillis>,
    pub fill_end: UnixMillis,
    pub verdict: SaleMatch,
    /// The best-supported plate and its evidence score before calibration, also when the matcher
    /// abstained as unsure (`None` when no well-formed plate had enough reads): what calibration
    /// is fitted on.
    pub candidate: Option<ScoredPlate>,
    /// The second best-supported car seen at the fuelling point during the fill (by its voted
    /// text), when there was one: what a person checking the verdict compares it with.
    pub runner_up: Option<String>,
    /// `true` when this verdict corrects the one the sale was first given (a later look found
    /// another plate, or found the first one no longer sure); the first verdict is `false`.
    pub correction: bool,
}

/// A plate with its raw evidence score (0..1, not a probability).
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredPlate {
    pub plate: String,
    pub score: f32,
}

#[derive(Debug, Clone)]
struct PendingSale {
    sale: Sale,
    start: Option<UnixMillis>,
    end: UnixMillis,
    decide_at: UnixMillis,
    /// `None` until the first verdict; then the plate it gave, while the sale waits for its
    /// revisit.
    first_plate: Option<Option<String>>,
}

/// A track's text vote as far as it was counted.
#[derive(Debug, Clone, Default)]
struct TrackVote {
    /// Reads counted: the first N of the track.
    counted: usize,
    tally: VoteTally,
    /// The vote of those reads (`None` until worked out).
    voted: Option<VotedText>,
}

/// One nozzle-out..nozzle-in at one fuelling point, sold or still running.
#[derive(Debug, Clone, Copy)]
struct Fill {
    fp: FpNumber,
    start: UnixMillis,
    /// `None` while the nozzle is still out.
    end: Option<UnixMillis>,
}

/// What the reads say about one car (one track) for one fill.
#[derive(Debug, Clone, Default)]
struct Evidence {
    /// Seen standing at the pump, clipped to the fill.
    intervals: Vec<(UnixMillis, UnixMillis)>,
    /// Time assumed, not seen: the car stood at the pump, then was hidden or the camera went dark.
    hidden: Vec<(UnixMillis, UnixMillis)>,
    /// Read weight at the pump / elsewhere during the fill.
    inside: f32,
    outside: f32,
    /// Reads at the pump around the fill (from a margin before the lift to one after the hang-up).
    reads_at_pump: usize,
    /// Another car was the next one read at the pump after this one's last read there: it left at
    /// some unseen moment, so dark time in the fill is not its to leave out of the fill's length.
    replaced: bool,
}

/// A car's standing for one fill, ready to score.
#[derive(Debug, Clone)]
struct Candidate<'a> {
    /// Share of the fill it was seen at the pump (not assumed across a hidden spell's end).
    seen: f32,
    coverage: f32,
    containment: f32,
    reads_at_pump: usize,
    /// How sure the text vote over all the car's reads is.
    certainty: f32,
    /// The camera and id of the track that saw it most at the pump.
    lead: (&'a str, u64),
}

impl Candidate<'_> {
    fn score(&self) -> f64 {
        f64::from(self.coverage * self.containment)
    }

    /// This car's score as a rival of `chosen`: time it was only assumed at the pump (hidden, or
    /// the camera dark) counts only where `chosen` was not seen there, as one pump holds one car.
    fn strength_beside(&self, chosen: &Candidate<'_>) -> f32 {
        let unseen_by_chosen = (1.0 - chosen.seen).max(0.0);
        self.coverage.min(self.seen + unseen_by_chosen) * self.containment
    }
}

/// One camera's view of one fuelling point, as the evidence for a fill needs it.
#[derive(Debug, Clone)]
struct PumpView {
    camera: String,
    /// The fuelling point's bit in every read's [`ZoneBits`] (none past the 64th fuelling point:
    /// then the zones are looked at for each read).
    bit: Option<u64>,
    zones: Vec<Zone>,
    /// Every other fuelling point's zones on the same camera (a read near several zones belongs to
    /// the nearest).
    others: Vec<Zone>,
    /// Bounding box of `zones`: x0, y0, x1, y1.
    bounds: [f32; 4],
}

impl PumpView {
    fn in_zone(&self, x: f32, y: f32) -> bool {
        self.zones.iter().any(|z| z.contains(x, y))
    }

    /// Whether a plate box centred at `x`, `y` and `w` wide is near this fuelling point's zone:
    /// a little outside it, and nearer to it than to any other zone.
    fn near_zone(&self, x: f32, y: f32, w: f32, near_widths: f32) -> bool {
        let margin = near_widths * w;
        let [x0, y0, x1, y1] = self.bounds;
        if x < x0 - margin || x > x1 + margin || y < y0 - margin || y > y1 + margin {
            return false;
        }
        let own = self
            .zones
            .iter()
            .map(|z| z.distance(x, y))
            .fold(f32::INFINITY, f32::min);
        own <= near_widths * w
            && self
                .others
                .iter()
                .all(|z| !z.contains(x, y) && z.distance(x, y) > own)
    }

    /// [`PumpView::in_zone`] for a read of this camera, from its zone bits.
    fn holds(&self, r: &TrackRead) -> bool {
        match self.bit {
            Some(bit) => r.zones.inside & bit != 0,
            None => self.in_zone(r.x, r.y),
        }
    }

    /// [`PumpView::near_zone`] (at the matcher's `near_zone_widths`) for a read of this camera,
    /// from its zone bits.
    fn is_near(&self, r: &TrackRead, near_widths: f32) -> bool {
        match self.bit {
            Some(bit) => r.zones.near & bit != 0,
            None => self.near_zone(r.x, r.y, r.w, near_widths),
        }
    }
}

/// Per fuelling point of `layout` (the first entry of each), its views, one per camera that
/// sees it, cameras in name order.
/// A fuelling point's own zones on every camera, to tell whether a new layout changed them.
fn zone_shapes(views: &[PumpView]) -> Vec<&Zone> {
    views.iter().flat_map(|v| v.zones.iter()).collect()
}

fn pump_views(layout: &Layout) -> BTreeMap<FpNumber, Vec<PumpView>> {
    let mut views = BTreeMap::new();
    for (index, fp_layout) in layout.fps.iter().enumerate() {
        if views.contains_key(&fp_layout.fp) {
            continue;
        }
        let bit = u32::try_from(index).ok().and_then(|i| 1u64.checked_shl(i));
        let cameras: BTreeSet<&str> = fp_layout.zones.iter().map(|z| z.camera.as_str()).collect();
        let fp_views = cameras
            .into_iter()
            .map(|camera| {
                let zones: Vec<Zone> = fp_layout
                    .zones
                    .iter()
                    .filter(|z| z.camera == camera)
                    .cloned()
                    .collect();
                let mut bounds = [
                    f32::INFINITY,
                    f32::INFINITY,
                    f32::NEG_INFINITY,
                    f32::NEG_INFINITY,
                ];
                for [x, y] in zones.iter().flat_map(|z| z.polygon.iter()) {
                    bounds = [
                        bounds[0].min(*x),
                        bounds[1].min(*y),
                        bounds[2].max(*x),
                        bounds[3].max(*y),
                    ];
                }
                PumpView {
                    camera: camera.to_string(),
                    bit,
                    zones,
                    bounds,
                    others: layout
                        .fps
                        .iter()
                        .filter(|f| f.fp != fp_layout.fp)
                        .flat_map(|f| f.zones.iter())
                        .filter(|z| z.camera == camera)
                        .cloned()
                        .collect(),
                }
            })
            .collect();
        views.insert(fp_layout.fp, fp_views);
    }
    views
}

/// Per camera, the views on it that have a zone bit.
fn zone_views(views: &BTreeMap<FpNumber, Vec<PumpView>>) -> BTreeMap<String, Vec<PumpView>> {
    let mut by_camera: BTreeMap<String, Vec<PumpView>> = BTreeMap::new();
    for view in views.values().flatten().filter(|v| v.bit.is_some()) {
        by_camera
            .entry(view.camera.clone())
            .or_default()
            .push(view.clone());
    }
    by_camera
}

pub struct Matcher {
    config: MatcherConfig,
    tracker: Tracker,
    frames: FrameLog,
    stops: StopModel,
    /// Per FP, its views (one per camera that sees it).
    views: BTreeMap<FpNumber, Vec<PumpView>>,
    /// Per camera, the views on it that have a zone bit: what its reads' bits are worked out
    /// from (a read is looked at once, against its own camera's zones only).
    zone_views: BTreeMap<String, Vec<PumpView>>,
    /// Per FP, the fuelling points across its island (cars stand in one bay, hoses reach across).
    island: BTreeMap<FpNumber, Vec<FpNumber>>,
    /// Per FP: the nozzle-out and nozzle-in of the fill in progress or just ended.
    nozzle_out: BTreeMap<FpNumber, UnixMillis>,
    nozzle_in: BTreeMap<FpNumber, UnixMillis>,
    fills: Vec<Fill>,
    pending: Vec<PendingSale>,
    /// Cars that stood in a zone through a fill, waiting to show whether they were at the pump.
    stop_candidates: Vec<StopCandidate>,
    /// Per track: N, the tally of its first N reads and their vote (a long stay is voted on
    /// for every sale it could belong to; only new reads are counted in).
    /// (A mutex, not a cell: the agent holds the matcher across awaits on a multi-thread runtime.)
    track_votes: Mutex<HashMap<u64, TrackVote>>,
    next_forget: UnixMillis,
    is_well_formed: fn(&str) -> bool,
}

impl Matcher {
    /// `is_well_formed` is the plate grammar (reads that break it count for little).
    pub fn new(layout: Layout, config: MatcherConfig, is_well_formed: fn(&str) -> bool) -> Self {
        let views = pump_views(&layout);
        Matcher {
            tracker: Tracker::new(config.tracker.clone(), is_well_formed),
            frames: FrameLog::new(config.outage_after_ms),
            stops: StopModel::default(),
            island: island_neighbours(&layout),
            zone_views: zone_views(&views),
            views,
            config,
            nozzle_out: BTreeMap::new(),
            nozzle_in: BTreeMap::new(),
            fills: Vec::new(),
            pending: Vec::new(),
            stop_candidates: Vec::new(),
            track_votes: Mutex::new(HashMap::new()),
            next_forget: UnixMillis::MIN,
            is_well_formed,
        }
    }

    pub fn observe_frame(&mut self, frame: &FramePlates) {
        self.frames.observe(&frame.camera, frame.t);
        // Every track that gets a read of this frame is on its camera.
        let views = self
            .zone_views
            .get(&frame.camera)
            .map_or(&[][..], Vec::as_slice);
        let near_widths = self.config.near_zone_widths;
        self.tracker.observe_with(frame, |track| {
            let last = track.reads.len().saturating_sub(1);
            Self::mark_zones(views, near_widths, track, last);
        });
    }

    pub fn observe_dispenser(&mut self, event: &DispenserEvent) {
        match event {
            DispenserEvent::NozzleOut { t, fp, .. } => {
                self.nozzle_out.insert(*fp, *t);
                self.nozzle_in.remove(fp);
                self.fills.push(Fill {
                    fp: *fp,
                    start: *t,
                    end: None,
                });
            }
            DispenserEvent::NozzleIn { t, fp, .. } => {
                self.nozzle_in.insert(*fp, *t);
                if let Some(fill) = self
                    .fills
                    .iter_mut()
                    .rev()
                    .find(|f| f.fp == *fp && f.end.is_none())
                {
                    fill.end = Some(*t);
                }
            }
            DispenserEvent::SaleCompleted(sale) => {
                let start = sale
                    .nozzle_out_t
                    .or_else(|| self.nozzle_out.get(&sale.fp).copied());
                let end = self
                    .nozzle_in
                    .get(&sale.fp)
                    .copied()
                    .filter(|t| start.is_none_or(|s| *t >= s))
                    .unwrap_or(sale.t)
                    .min(sale.t);
                // The fill this sale closes, in case its nozzle-in was never seen.
                if let Some(fill) = self
                    .fills
                    .iter_mut()
                    .rev()
                    .find(|f| f.fp == sale.fp && f.end.is_none())
                {
                    fill.end = Some(end);
                }
                self.pending.push(PendingSale {
                    sale: sale.clone(),
                    start,
                    end,
                    decide_at: sale.t.max(end) + self.config.grace_ms,
                    first_plate: None,
                });
            }
            // Pump status and the like say nothing about which car was there.
            _ => {}
        }
    }

    /// Decides every sale whose grace period is over at `now`, and revisits every sale whose
    /// revisit is due, in the order of those times: first verdicts, then corrections where the
    /// revisit changed the plate.
    pub fn poll(&mut self, now: UnixMillis) -> Vec<MatchedSale> {
        let mut decided = Vec::new();
        // A sale decided here may come due for its revisit within the same call (the end of a
        // replay): take the earliest due one each time.
        while let Some(i) = self.next_due(now) {
            let p = self.pending.swap_remove(i);
            // What the stop model knows at a sale's decision depends on the sale alone, not on
            // when the caller polls: a live run and the replay of its trace decide alike.
            self.learn_stops(p.decide_at);
            let (verdict, candidate, runner_up) = self.judge(&p);
            let correction = match &p.first_plate {
                None => {
                    if let Some(start) = p.start {
                        self.note_standing_cars(
                            p.sale.fp,
                            start,
                            p.end.max(start + 1),
                            p.decide_at,
                        );
                    }
                    let revisit_at = p.end.max(p.sale.t) + self.config.revisit_ms;
                    if revisit_at > p.decide_at && self.config.revisit_ms > self.config.grace_ms {
                        self.pending.push(PendingSale {
                            decide_at: revisit_at,
                            first_plate: Some(verdict.plate.clone()),
                            ..p.clone()
                        });
                    }
                    false
                }
                Some(first) if *first == verdict.plate => continue,
                Some(_) => true,
            };
            decided.push(MatchedSale {
                verdict,
                candidate,
                runner_up,
                fill_start: p.start,
                fill_end: p.end,
                sale: p.sale,
                correction,
            });
        }
        self.learn_stops(now);
        // Forgetting walks every track: once in a while is enough, and what is kept a little
        // longer changes no verdict (every look-back is bounded by the horizon).
        if now >= self.next_forget {
            self.forget_before(now.saturating_sub(self.config.retention_ms));
            self.next_forget = now.saturating_add(FORGET_EVERY_MS);
        }
        decided
    }

    /// New thresholds from a config reload. The tracker keeps the settings it started with
    /// (its tracks were built with them); those need a restart.
    pub fn set_config(&mut self, config: MatcherConfig) {
        let near_changed = config.near_zone_widths != self.config.near_zone_widths;
        self.config = MatcherConfig {
            tracker: self.config.tracker.clone(),
            ..config
        };
        if near_changed {
            self.mark_every_read();
        }
    }

    /// The fuelling points' zones drawn anew (a reload): every sale judged from now on, those
    /// already waiting for their verdict too, looks at the new zones. Each kept read's place
    /// among the zones is worked out again, and what was learned of a fuelling point whose
    /// zones changed (where its cars stop) is forgotten: it was learned through the old zones.
    /// The cameras that see fuelling point `fp` (one of its zones is drawn on each).
    pub fn cameras_of(&self, fp: FpNumber) -> impl Iterator<Item = &str> {
        self.views
            .get(&fp)
            .into_iter()
            .flatten()
            .map(|v| v.camera.as_str())
    }

    pub fn set_layout(&mut self, layout: Layout) {
        let views = pump_views(&layout);
        let old_zones = |fp: &FpNumber| self.views.get(fp).map(|v| zone_shapes(v));
        let changed: Vec<FpNumber> = views
            .keys()
            .chain(self.views.keys())
            .filter(|fp| views.get(*fp).map(|v| zone_shapes(v)) != old_zones(fp))
            .copied()
            .collect();
        for fp in &changed {
            self.stops.forget_fp(*fp);
        }
        self.stop_candidates.retain(|c| !changed.contains(&c.fp));
        self.island = island_neighbours(&layout);
        self.zone_views = zone_views(&views);
        self.views = views;
        self.mark_every_read();
    }

    /// Works out every kept read's place among the zones again (the zones or the near band
    /// changed).
    fn mark_every_read(&mut self) {
        for track in self.tracker.tracks_mut() {
            let views = self
                .zone_views
                .get(&track.camera)
                .map_or(&[][..], Vec::as_slice);
            Self::mark_zones(views, self.config.near_zone_widths, track, 0);
        }
    }

    pub fn config(&self) -> &MatcherConfig {
        &self.config
    }

    /// Sales waiting for their grace period (not those decided and waiting for their revisit).
    pub fn pending(&self) -> usize {
        self.pending
            .iter()
            .filter(|p| p.first_plate.is_none())
            .count()
    }

    /// The pending sale that comes due first at `now`, if any.
    fn next_due(&self, now: UnixMillis) -> Option<usize> {
        self.pending
            .iter()
            .enumerate()
            .filter(|(_, p)| p.decide_at <= now)
            .min_by_key(|(_, p)| {
                (
                    p.decide_at,
                    p.sale.t,
                    p.sale.fp,
                    p.sale.nozzle,
                    p.first_plate.is_some(),
                )
            })
            .map(|(i, _)| i)
    }

    fn forget_before(&mut self, horizon: UnixMillis) {
        let needed = self
            .pending
            .iter()
            .filter_map(|p| p.start)
            .min()
            .unwrap_or(horizon)
            .min(horizon);
        // Tracks are needed a while before a fill starts (the car arrived earlier).
        let keep_from = needed.saturating_sub(self.config.tracker.max_gap_ms);
        self.tracker.forget_before(keep_from);
        self.frames.forget_before(keep_from);
        let oldest = self.tracker.oldest_kept();
        self.track_votes
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .retain(|id, _| *id >= oldest);
        self.fills.retain(|f| f.end.is_none_or(|e| e >= needed));
    }

    /// `track`'s vote over its reads up to `as_of`: the cached tally, with the reads that came
    /// since counted in (a long stay is judged for many sales; each read is counted once).
    fn track_vote(&self, track: &Track, as_of: UnixMillis) -> VotedText {
        let counted = track.reads.partition_point(|r| r.t <= as_of);
        // A poisoned cache (a panic elsewhere while holding it) is still a valid cache.
        let mut votes = self
            .track_votes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let cached = votes.entry(track.id).or_default();
        if cached.counted == counted {
            if let Some(voted) = &cached.voted {
                return voted.clone();
            }
        }
        if cached.counted > counted {
            // An earlier time than the cache counted up to: count again from the start.
            *cached = TrackVote::default();
        }
        for read in &track.reads[cached.counted..counted] {
            cached.tally.add(ballot(read));
        }
        cached.counted = counted;
        let voted = cached.tally.result().unwrap_or_else(no_vote);
        cached.voted = Some(voted.clone());
        voted
    }

    /// The views of `fp`'s bay, one per camera that sees it.
    fn views(&self, fp: FpNumber) -> &[PumpView] {
        self.views.get(&fp).map_or(&[], Vec::as_slice)
    }

    /// Sets the zone bits of `track`'s reads from `first` on; `views` are the zone views of
    /// its camera.
    fn mark_zones(views: &[PumpView], near_widths: f32, track: &mut Track, first: usize) {
        if first == 0 {
            track.zones_seen = ZoneBits::default();
        }
        for read in track.reads.iter_mut().skip(first) {
            let mut zones = ZoneBits::default();
            for view in views {
                let Some(bit) = view.bit else {
                    continue;
                };
                if view.in_zone(read.x, read.y) {
                    zones.inside |= bit;
                }
                if view.near_zone(read.x, read.y, read.w, near_widths) {
                    zones.near |= bit;
                }
            }
            read.zones = zones;
            track.zones_seen.inside |= zones.inside;
            track.zones_seen.near |= zones.near;
        }
    }

    /// After a fill: each car that stood in the zone through it is the car at the pump or one
    /// queued behind it. Which one shows later (see [`Matcher::learn_stops`]).
    fn note_standing_cars(
        &mut self,
        fp: FpNumber,
        from: UnixMillis,
        to: UnixMillis,
        as_of: UnixMillis,
    ) {
        let mut found = Vec::new();
        for view in self.views(fp) {
            for track in self.tracker.tracks_between(&view.camera, from, to) {
                let in_zone: Vec<&TrackRead> = track
                    .reads
                    .iter()
                    .filter(|r| r.t >= from && r.t <= to.min(as_of) && view.holds(r))
                    .collect();
                if let Some(sample) = standing_box(&in_zone, from, to) {
                    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
                    for r in &in_zone {
                        *counts.entry(r.text.as_str()).or_default() += 1;
                    }
                    let text = counts
                        .iter()
                        .max_by_key(|(text, n)| (**n, std::cmp::Reverse(**text)))
                        .map_or(String::new(), |(text, _)| text.to_string());
                    found.push(StopCandidate {
                        text,
                        camera: view.camera.to_string(),
                        fp,
                        track: track.id,
                        sample,
                        fill_end: to,
                    });
                }
            }
        }
        self.stop_candidates.extend(found);
    }

    /// Teaches the stop model the cars noted after their fills, once enough time has passed to see
    /// what each did next: a queued car moves up and stands again for its own fill; the car at the
    /// pump drives off.
    fn learn_stops(&mut self, now: UnixMillis) {
        // Called at every poll (a replay polls at nearly every record): most find none ready.
        let is_ready = |c: &StopCandidate| now >= c.fill_end + LEARN_AFTER_MS;
        if !self.stop_candidates.iter().any(is_ready) {
            return;
        }
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.stop_candidates)
            .into_iter()
            .partition(is_ready);
        self.stop_candidates = waiting;
        for c in ready {
            // The same car after the fill, on any track (moving up may start a new one).
            let (after, until) = (c.fill_end, c.fill_end + LEARN_AFTER_MS);
            let mut elsewhere: Vec<UnixMillis> = self
                .tracker
                .tracks_between(&c.camera, after, until)
                .filter(|t| {
                    t.id == c.track
                        || t.reads.iter().rev().take(3).any(|r| {
                            text_distance_at_most(
                                &r.text,
                                &c.text,
                                self.config.tracker.max_text_distance,
                            )
                            .is_some()
                        })
                })
                .flat_map(|t| t.reads.iter())
                .filter(|r| r.t > after && r.t <= until)
                .filter(|r| c.sample.distance_to(r.x, r.y) > c.sample.w)
                .map(|r| r.t)
                .collect();
            elsewhere.sort_unstable();
            // Standing somewhere else for a while: it moved up to the pump, it was queued.
            let moved_up = elsewhere
                .first()
                .zip(elsewhere.last())
                .is_some_and(|(a, b)| b - a >= 20_000);
            // And still read there once this pump's next fill began: it moved up to be served
            // (not a customer who drove forward to park).
            let next_fill = self.first_fill_begun(c.fp, after, until).map(|f| f.start);
            let served_next = next_fill.is_some_and(|s| elsewhere.last().is_some_and(|t| *t >= s));
            if moved_up && served_next {
                self.stops.learn_queued(&c.camera, c.fp, c.sample);
            } else if !moved_up {
                self.stops.learn(&c.camera, c.fp, c.sample);
            }
        }
    }

    /// The verdict on `p`, the best-supported plate with its raw score (also when unsure) and
    /// the runner-up's text.
    fn judge(&self, p: &PendingSale) -> (SaleMatch, Option<ScoredPlate>, Option<String>) {
        let abstain = |reason: String| {
            let verdict = SaleMatch {
                plate: None,
                confidence: 0.0,
                reason,
            };
            (verdict, None, None)
        };
        let Some(start) = p.start else {
            return abstain("fill start unknown (no nozzle-out seen)".into());
        };
        let as_of = p.decide_at;
        let end = p.end.max(start + 1);
        let mut texts: BTreeMap<u64, VotedText> = BTreeMap::new();
        let (row_candidates, across) =
            self.fill_candidates(p.sale.fp, (start, end, as_of), &mut texts);
        let (columns, scores) = score_table(&row_candidates);
        let assignment = assign_max(&scores);
        let Some(column) = assignment[0] else {
            return abstain(if row_candidates[0].is_empty() {
                "no car seen standing at the fuelling point during the fill".into()
            } else {
                "every car seen there is better explained by another fill".into()
            });
        };
        let text = columns[column].clone();
        let chosen = &row_candidates[0][&text];
        let runner_up = runner_up(&row_candidates[0], &text, self.is_well_formed);
        if !(self.is_well_formed)(&text) {
            return abstain(format!("best reading {text} is not a well-formed plate"));
        }
        if chosen.seen <= 0.0 {
            // Only assumed: read standing there before a hidden spell or outage that ran past
            // the fill, never seen during it. A car that left unseen looks the same.
            return abstain(format!(
                "{text} was never seen at the fuelling point during the fill, only assumed there"
            ));
        }
        if chosen.reads_at_pump < self.config.min_reads {
            return abstain(format!(
                "too few reads of {text} at the fuelling point ({})",
                chosen.reads_at_pump
            ));
        }
        let (mut free_rival, explained_rival) =
            assignment_rivals(&row_candidates, &columns, &scores, &assignment, column);
        if !across {
            let near = self.near_rival(p.sale.fp, (start, end, as_of), chosen, &mut texts);
            let explains = |other: &str| {
                let max_distance = self.config.tracker.max_text_distance;
                columns.iter().enumerate().any(|(col, t)| {
                    text_distance_at_most(t, other, max_distance).is_some()
                        && (col == column || assignment[1..].contains(&Some(col)))
                })
            };
            for (other, strength) in near {
                if !explains(&other) {
                    free_rival = free_rival.max(strength);
                }
            }
        }
        let rival = free_rival.max(explained_rival);
        let certainty = chosen.certainty;
        let raw = self.raw_score(chosen, free_rival, explained_rival, across);
        let confidence = calibrated(raw);
        let detail = format!(
            "score {raw:.3}: {} reads, text {certainty:.3}, coverage {:.2}, containment {:.2}, rival {rival:.2}{}",
            chosen.reads_at_pump,
            chosen.coverage,
            chosen.containment,
            if across { ", across the island" } else { "" }
        );
        let candidate = Some(ScoredPlate {
            plate: text.clone(),
            score: raw,
        });
        if confidence < self.config.min_confidence {
            let (verdict, ..) =
                abstain(format!("unsure: {text} scored {confidence:.2} ({detail})"));
            return (verdict, candidate, runner_up);
        }
        let verdict = SaleMatch {
            plate: Some(text),
            confidence,
            reason: detail,
        };
        (verdict, candidate, runner_up)
    }

    /// Per fill competing for the cars (the sale's own first, see [`Matcher::competing_fills`]),
    /// its candidates by text; and whether the sale's candidates stand across the island (nobody
    /// in its own bay: the hose may reach across to a car in the other bay, when that bay's own
    /// pump was idle the whole time).
    fn fill_candidates(
        &self,
        fp: FpNumber,
        (start, end, as_of): (UnixMillis, UnixMillis, UnixMillis),
        texts: &mut BTreeMap<u64, VotedText>,
    ) -> (Vec<BTreeMap<String, Candidate<'_>>>, bool) {
        let rows = self.competing_fills(fp, start, end, as_of);
        let mut row_candidates: Vec<BTreeMap<String, Candidate<'_>>> = rows
            .iter()
            .map(|&(fp, from, to)| self.candidates(fp, from, to, as_of, Reach::Bay, texts))
            .collect();
        let mut across = false;
        if row_candidates[0].is_empty() {
            for &bay in self.island.get(&fp).into_iter().flatten() {
                let found = self.candidates(bay, start, end, as_of, Reach::AcrossIsland, texts);
                row_candidates[0].extend(found);
                across = !row_candidates[0].is_empty();
            }
        }
        (row_candidates, across)
    }

    /// The fill of `fp` (`start..end`) and every fill of another fuelling point that overlaps it
    /// (as known at `as_of`): they compete for the same cars.
    fn competing_fills(
        &self,
        fp: FpNumber,
        start: UnixMillis,
        end: UnixMillis,
        as_of: UnixMillis,
    ) -> Vec<(FpNumber, UnixMillis, UnixMillis)> {
        let mut rows = vec![(fp, start, end)];
        for fill in &self.fills {
            let fill_end = fill.end.unwrap_or(as_of).min(as_of);
            if fill.fp != fp && fill.start < end && fill_end > start && fill.start < as_of {
                rows.push((fill.fp, fill.start, fill_end.max(fill.start + 1)));
            }
        }
        rows
    }

    /// Cars standing just outside `fp`'s zone through the fill `(start, end, as_of)`, by text,
    /// with their strength beside `chosen`: one may be the customer that stopped short or
    /// overshot. Never chosen on that alone (a queued car waits there too), but a doubt, unless
    /// another fill explains it.
    fn near_rival(
        &self,
        fp: FpNumber,
        (start, end, as_of): (UnixMillis, UnixMillis, UnixMillis),
        chosen: &Candidate<'_>,
        texts: &mut BTreeMap<u64, VotedText>,
    ) -> Vec<(String, f32)> {
        let (camera, track) = chosen.lead;
        let beside = self
            .standing_in(camera, track, start, end.min(as_of))
            .map(|standing| (camera, standing));
        self.candidates(fp, start, end, as_of, Reach::BayAndNear(beside), texts)
            .into_iter()
            .map(|(text, c)| {
                let strength = c.strength_beside(chosen);
                (text, strength)
            })
            .collect()
    }

    /// The evidence score of `chosen` (0..1, before calibration): how sure its text is, how much
    /// of the fill it stood at the pump, how much of its reading was there, how far the
    /// strongest rival (free, or explained by another fill) leaves it alone, and whether it
    /// stood across the island.
    fn raw_score(
        &self,
        chosen: &Candidate<'_>,
        free_rival: f32,
        explained_rival: f32,
        across: bool,
    ) -> f32 {
        let presence = ramp(
            chosen.coverage,
            self.config.min_coverage.max(0.3),
            self.config.full_coverage,
        );
        let containment = ramp(chosen.containment, 0.5, 0.9);
        let score = chosen.coverage * chosen.containment;
        // A free rival three quarters as strong as the chosen car leaves it a guess; one
        // explained by another fill, as strong as the chosen car.
        let score_or_least = score.max(f32::EPSILON);
        let exclusivity = ramp(1.0 - free_rival / score_or_least, 0.25, 0.75).min(ramp(
            1.0 - explained_rival / score_or_least,
            0.0,
            0.5,
        ));
        // A car across the island is a weaker sign than one in the fuelling point's own bay.
        let bay = if across { ACROSS_ISLAND } else { 1.0 };
        (chosen.certainty * presence * containment * exclusivity * bay).clamp(0.0, 1.0)
    }

    /// The cars seen standing in `bay`'s part of the forecourt during `from..to`, by voted text;
    /// see [`Reach`] for which.
    fn candidates<'a>(
        &'a self,
        bay: FpNumber,
        from: UnixMillis,
        to: UnixMillis,
        as_of: UnixMillis,
        reach: Reach<'_>,
        texts: &mut BTreeMap<u64, VotedText>,
    ) -> BTreeMap<String, Candidate<'a>> {
        let mut seen: Vec<(&'a Track, Evidence)> = Vec::new();
        // What a car in this bay paid for is not known when a pump across the island filled at
        // the same time (its hose reaches this bay).
        let across_filling = self.island.get(&bay).into_iter().flatten().any(|&other| {
            self.fills
                .iter()
                .any(|f| f.fp == other && f.start < to && f.end.unwrap_or(as_of) > from)
        });
        let near = self.config.near_zone_widths;
        for view in self.views(bay) {
            // Per read: how much it looks like a car at the pump.
            let stop = self.stops.stop(&view.camera, bay);
            let queue = self.stops.queue(&view.camera, bay);
            let at_pump = |r: &TrackRead| pump_likeness(view, reach, stop, queue, near, r);
            let (likenesses, at_pump_tracks) = self.view_likenesses(view, at_pump, from, as_of);
            let pump = self.pump_reads(at_pump_tracks, &likenesses, as_of);
            let scan = ViewScan {
                view,
                bay,
                from,
                to,
                as_of,
                reach,
                stop,
                queue,
                near,
                across_filling,
                pump,
            };
            for (track, since_lookback, all_likeness) in &likenesses {
                if let Some(e) = self.track_evidence(&scan, track, *since_lookback, all_likeness) {
                    texts
                        .entry(track.id)
                        .or_insert_with(|| self.track_vote(track, as_of));
                    seen.push((*track, e));
                }
            }
        }
        let dark = self.least_dark(bay, from, to, as_of);
        let mut candidates: BTreeMap<String, Candidate<'a>> = BTreeMap::new();
        for members in self.same_cars(&mut seen, texts) {
            let fill = (bay, from, to, as_of);
            let Some((text, candidate)) =
                self.car_candidate(&seen, &members, texts, &dark, fill, reach)
            else {
                continue;
            };
            // Two groups voting the same text: keep the stronger.
            match candidates.get(&text) {
                Some(c) if c.score() >= candidate.score() => {}
                _ => {
                    candidates.insert(text, candidate);
                }
            }
        }
        candidates
    }

    /// The dark spells of the fill `from..to` (as known at `as_of`) on the camera of `bay` that
    /// saw most of it: dark time no camera of the bay saw.
    fn least_dark(
        &self,
        bay: FpNumber,
        from: UnixMillis,
        to: UnixMillis,
        as_of: UnixMillis,
    ) -> Vec<(UnixMillis, UnixMillis)> {
        let mut dark: Option<(i64, Vec<(UnixMillis, UnixMillis)>)> = None;
        for view in self.views(bay) {
            let spells: Vec<_> = self
                .frames
                .dark_spells(&view.camera, from, to, as_of)
                .collect();
            let dark_ms = union_length(spells.clone());
            if dark.as_ref().is_none_or(|(least, _)| *least > dark_ms) {
                dark = Some((dark_ms, spells));
            }
        }
        dark.map(|(_, spells)| spells).unwrap_or_default()
    }

    /// The tracks of `view` read since the look-back before `from`, each with where the reads
    /// the evidence asks about start and how much each of those looks like a car at the pump
    /// (`at_pump`); and the tracks ever read at the pump since the look-back (who was read there
    /// when: a car hidden since its last read is not assumed to stay once another car is read
    /// there).
    fn view_likenesses<'a>(
        &'a self,
        view: &PumpView,
        at_pump: impl Fn(&TrackRead) -> f32,
        from: UnixMillis,
        as_of: UnixMillis,
    ) -> (Vec<TrackLikeness<'a>>, Vec<&'a Track>) {
        let lookback = self.config.tracker.max_gap_ms;
        let margin = self.config.presence_margin_ms;
        let tracks: Vec<&Track> = self
            .tracker
            .tracks_between(&view.camera, from - lookback, as_of)
            // Never in or near this zone: no read of it is at this pump.
            .filter(|t| {
                view.bit
                    .is_none_or(|bit| (t.zones_seen.inside | t.zones_seen.near) & bit != 0)
            })
            .collect();
        // The earliest read the evidence looks at: who was read at the pump before it is never
        // asked, only which tracks were ever read there since the look-back.
        let earliest = tracks
            .iter()
            .filter(|t| t.first_t() <= as_of)
            .filter_map(|t| {
                let (lo, hi) = reads_range(t, from - margin, as_of);
                (lo < hi).then(|| t.reads[lo].t)
            })
            .min()
            .unwrap_or(from - margin);
        let mut likenesses: Vec<TrackLikeness<'a>> = Vec::new();
        let mut at_pump_tracks: Vec<&Track> = Vec::new();
        for t in tracks {
            let (lo, hi) = reads_range(t, from - lookback, as_of);
            let start = lo + t.reads[lo..hi].partition_point(|r| r.t < earliest);
            let likeness: Vec<f32> = t.reads[start..hi].iter().map(&at_pump).collect();
            if likeness.iter().any(|l| *l >= 0.5)
                || t.reads[lo..start].iter().any(|r| at_pump(r) >= 0.5)
            {
                at_pump_tracks.push(t);
            }
            likenesses.push((t, start, likeness));
        }
        (likenesses, at_pump_tracks)
    }

    /// `seen`'s tracks grouped into cars (indices into `seen`, which is sorted here strongest
    /// first): tracks whose texts differ by a misread or two are one car seen by several cameras
    /// (or one camera after a long occlusion), and the strongest track leads each group.
    fn same_cars(
        &self,
        seen: &mut [(&Track, Evidence)],
        texts: &BTreeMap<u64, VotedText>,
    ) -> Vec<Vec<usize>> {
        seen.sort_by(|a, b| b.1.inside.total_cmp(&a.1.inside).then(a.0.id.cmp(&b.0.id)));
        let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
        for (i, (track, _)) in seen.iter().enumerate() {
            let text = &texts[&track.id].text;
            if text.is_empty() {
                continue;
            }
            match groups.iter_mut().find(|(lead, _)| {
                text_distance_at_most(lead, text, self.config.tracker.max_text_distance).is_some()
            }) {
                Some((_, members)) => members.push(i),
                None => groups.push((text.clone(), vec![i])),
            }
        }
        groups.into_iter().map(|(_, members)| members).collect()
    }

    /// One car (`members` of `seen`) as a candidate for the fill `(bay, from, to, as_of)`, by its
    /// voted text: how much of the fill it was seen or assumed at the pump (`dark`: the fill's
    /// dark spells), how much of its reading was there. `None` when it was there too little, its
    /// text cannot be voted, or it waited through the fill and moved up to be served next.
    fn car_candidate<'a>(
        &self,
        seen: &[(&'a Track, Evidence)],
        members: &[usize],
        texts: &BTreeMap<u64, VotedText>,
        dark: &[(UnixMillis, UnixMillis)],
        (bay, from, to, as_of): (FpNumber, UnixMillis, UnixMillis, UnixMillis),
        reach: Reach<'_>,
    ) -> Option<(String, Candidate<'a>)> {
        let fill_ms = (to - from).max(1);
        let voted = if let [only] = members[..] {
            Some(texts[&seen[only].0.id].clone())
        } else {
            vote(members.iter().flat_map(|&i| {
                seen[i]
                    .0
                    .reads
                    .iter()
                    .take_while(|r| r.t <= as_of)
                    .map(ballot)
            }))
        }?;
        let mut intervals = Vec::new();
        let mut hidden = Vec::new();
        let (mut inside, mut outside, mut reads_at_pump) = (0.0f32, 0.0f32, 0);
        let mut replaced = false;
        for &i in members {
            let e = &seen[i].1;
            intervals.extend_from_slice(&e.intervals);
            hidden.extend_from_slice(&e.hidden);
            inside += e.inside;
            outside += e.outside;
            reads_at_pump += e.reads_at_pump;
            replaced |= e.replaced;
        }
        // Assumed time counts half.
        let seen_ms = union_length(intervals.clone());
        hidden.extend(intervals);
        let covered_ms = union_length(hidden.clone());
        let assumed_ms = covered_ms - seen_ms;
        // Dark time the car is not known for says nothing either way: leave it out of the
        // fill's length, but never below a quarter of it. Unless another car was found in its
        // place: then it left unseen, and the dark time counts as time it was not there.
        let dark_unexplained = if replaced {
            0
        } else {
            let mut both = hidden;
            both.extend_from_slice(dark);
            union_length(both) - covered_ms
        };
        let observable = (fill_ms - dark_unexplained).max(fill_ms / 4).max(1) as f32;
        let coverage = ((seen_ms as f32 + 0.5 * assumed_ms as f32) / observable).clamp(0.0, 1.0);
        let containment = if inside + outside > 0.0 {
            inside / (inside + outside)
        } else {
            // Only bridged (occluded) time inside the fill: it stood in the bay.
            1.0
        };
        if coverage < self.config.min_coverage {
            return None;
        }
        let tracks: Vec<&Track> = members.iter().map(|&i| seen[i].0).collect();
        if !matches!(reach, Reach::BayAndNear(_))
            && self.moved_up_for_next_fill(bay, &voted.text, &tracks, from, to, as_of)
        {
            return None;
        }
        let lead = seen[members[0]].0;
        let candidate = Candidate {
            seen: seen_ms as f32 / fill_ms as f32,
            coverage,
            containment,
            reads_at_pump,
            certainty: voted.certainty,
            lead: (lead.camera.as_str(), lead.id),
        };
        Some((voted.text, candidate))
    }
}

impl Matcher {
    /// Who was read at the pump of one view when: `at_pump_tracks` (those ever read there since
    /// the look-back) make the cars, `likenesses` (per track, from the earliest read the
    /// evidence looks at) the reads.
    fn pump_reads(
        &self,
        at_pump_tracks: Vec<&Track>,
        likenesses: &[TrackLikeness<'_>],
        as_of: UnixMillis,
    ) -> PumpReads {
        // Tracks whose texts differ by a misread or two, where one starts by the other, are
        // one car (the tracker can start a second track on a car that stands still): per
        // track, the first such track. Lookalike plates elsewhere in the image stay apart.
        let mut car_of: HashMap<u64, u64> = HashMap::new();
        let mut cars: Vec<(String, &Track)> = Vec::new();
        for t in at_pump_tracks {
            let text = self.track_vote(t, as_of).text;
            let max_distance = self.config.tracker.max_text_distance;
            let same = cars.iter().find(|(lead, lead_track)| {
                !text.is_empty()
                    && text_distance_at_most(lead, &text, max_distance).is_some()
                    && starts_by(t, lead_track)
            });
            let car = same.map_or(t.id, |(_, lead)| lead.id);
            if same.is_none() && !text.is_empty() {
                cars.push((text, t));
            }
            car_of.insert(t.id, car);
        }
        let mut pump_reads: Vec<(UnixMillis, u64)> = Vec::new();
        for (t, lo, likeness) in likenesses {
            let car = car_of.get(&t.id).copied().unwrap_or(t.id);
            pump_reads.extend(
                t.reads[*lo..]
                    .iter()
                    .zip(likeness)
                    .filter(|(_, l)| **l >= 0.5)
                    .map(|(r, _)| (r.t, car)),
            );
        }
        // Each track's reads come in time order: a stable sort merges those runs (and equal
        // pairs are alike, so the order is the unstable one's).
        pump_reads.sort();
        PumpReads {
            car_of,
            reads: pump_reads,
        }
    }

    /// What `track`'s reads say about it standing at the pump of `scan`'s view during the fill
    /// (`None` when it was never there). `all_likeness` is the likeness of its reads from
    /// `since_lookback` on.
    fn track_evidence(
        &self,
        scan: &ViewScan<'_>,
        track: &Track,
        since_lookback: usize,
        all_likeness: &[f32],
    ) -> Option<Evidence> {
        if track.first_t() > scan.as_of {
            return None;
        }
        let margin = self.config.presence_margin_ms;
        let (lo, hi) = reads_range(track, scan.from - margin, scan.as_of);
        let reads = &track.reads[lo..hi];
        if reads.is_empty() {
            return None;
        }
        // Within the look-back (the margin is shorter), these reads' likeness is known.
        let fresh: Vec<f32>;
        let likeness: &[f32] = match lo.checked_sub(since_lookback) {
            Some(skip) => &all_likeness[skip..],
            None => {
                fresh = reads.iter().map(|r| scan.likeness(r)).collect();
                &fresh
            }
        };
        if scan.reach == Reach::AcrossIsland && self.served_in_its_bay(scan, track) {
            return None;
        }
        let at = TrackAtPump {
            track,
            lo,
            hi,
            likeness,
            own: scan.pump.car(track.id),
        };
        let first_at_pump = (0..reads.len()).find(|&i| at.pumped(i) && reads[i].t >= scan.from);
        let paid_after = self.paid_after(scan, &at, first_at_pump);
        let mut e = Evidence {
            intervals: self.seen_standing(scan, &at, paid_after),
            ..Evidence::default()
        };
        self.hidden_after_last_read(scan, &at, &mut e);
        if let Some(first_i) = first_at_pump {
            self.unseen_before_first_read(scan, &at, first_i, paid_after, &mut e);
        }
        let covered = !e.intervals.is_empty() || !e.hidden.is_empty();
        for (i, r) in reads.iter().enumerate() {
            let during = r.t >= scan.from && r.t <= scan.to;
            let w = r.confidence * if r.well_formed { 1.0 } else { 0.2 };
            if during && at.pumped(i) {
                e.inside += w * likeness[i];
            } else if during {
                e.outside += w;
            }
            if at.pumped(i) && r.t >= scan.from - margin && r.t <= scan.to + margin {
                e.reads_at_pump += 1;
            }
        }
        (covered || e.inside > 0.0).then_some(e)
    }

    /// For a car in the bay across the island: whether its whole stay there, however long, saw
    /// a fill of that bay's own pump (then it was that pump's customer).
    fn served_in_its_bay(&self, scan: &ViewScan<'_>, track: &Track) -> bool {
        let (first_read, last_read) = reads_range(track, UnixMillis::MIN, scan.as_of);
        let stay = track.reads[first_read..last_read]
            .iter()
            .filter(|r| scan.likeness(r) >= 0.5)
            .map(|r| r.t);
        let (Some(first), Some(last)) = (stay.clone().min(), stay.max()) else {
            return false;
        };
        self.fills
            .iter()
            .any(|f| f.fp == scan.bay && f.start <= last && f.end.unwrap_or(scan.as_of) >= first)
    }

    /// Whether the car, first read at the pump from the lift on at `first_at_pump`, then stood
    /// there unbroken a while past the hang-up and was gone before the pump's next fill began:
    /// the fill's customer, paying, not the next one (whose nozzle would be out by then). Gone
    /// by its last read there, not the end of that run: a box jittering over the zone's edge may
    /// break a run, and a car served next is still there when the nozzle comes out.
    fn paid_after(
        &self,
        scan: &ViewScan<'_>,
        at: &TrackAtPump<'_>,
        first_at_pump: Option<usize>,
    ) -> bool {
        let reads = at.reads();
        first_at_pump.is_some_and(|first_i| {
            let run_end = (first_i..reads.len())
                .take_while(|&k| at.pumped(k))
                .last()
                .map_or(reads[first_i].t, |k| reads[k].t);
            let last_there = (first_i..reads.len())
                .rev()
                .find(|&k| at.pumped(k))
                .map_or(reads[first_i].t, |k| reads[k].t);
            run_end - scan.to >= STAYED_AFTER_MS
                && self
                    .first_fill_begun(scan.bay, scan.to, last_there)
                    .is_none()
        })
    }

    /// The spells of the fill between two reads of the car at the pump, standing (or both at the
    /// learned stop, or arriving for the customer that then paid), with no other car read there
    /// between them.
    fn seen_standing(
        &self,
        scan: &ViewScan<'_>,
        at: &TrackAtPump<'_>,
        paid_after: bool,
    ) -> Vec<(UnixMillis, UnixMillis)> {
        let reads = at.reads();
        // Where the stop is learned, two reads both at it show the car at the pump even when it
        // crept forward between them.
        let at_stop = |i: usize| scan.stop.is_some() && at.likeness[i] >= 0.9;
        // Moving at the pump between two reads, nobody else read there: creeping in or pulling
        // up to the stop, for the customer that then paid.
        let arriving = paid_after && scan.reach == Reach::Bay && !scan.across_filling;
        // `other_car_between` for this track's consecutive reads, the start of the search
        // carried forward from pair to pair (the reads are in time order).
        let pump = &scan.pump;
        let mut after_a: Option<usize> = None;
        let mut other_car_in = |a: UnixMillis, b: UnixMillis| {
            let first = after_a.get_or_insert_with(|| pump.reads.partition_point(|&(t, _)| t <= a));
            while pump.reads.get(*first).is_some_and(|&(t, _)| t <= a) {
                *first += 1;
            }
            pump.other_car_from(*first, b, at.own)
        };
        let mut intervals = Vec::new();
        for i in 0..reads.len().saturating_sub(1) {
            let (a, b) = (&reads[i], &reads[i + 1]);
            if at.pumped(i)
                && at.pumped(i + 1)
                && (self.still(at.smoothed(i), at.smoothed(i + 1))
                    || (at_stop(i) && at_stop(i + 1))
                    || arriving)
                && !other_car_in(a.t, b.t)
            {
                let (s, t) = (a.t.max(scan.from), b.t.min(scan.to));
                if s < t {
                    intervals.push((s, t));
                }
            }
        }
        intervals
    }

    /// Hidden after its last read at the pump: assumed there a short while if frames kept coming
    /// (someone walked past), through any time the camera was dark, till the hang-up if read
    /// there with the nozzle out; never past another car read there. Adds to `e.hidden` and
    /// sets `e.replaced`.
    fn hidden_after_last_read(&self, scan: &ViewScan<'_>, at: &TrackAtPump<'_>, e: &mut Evidence) {
        let reads = at.reads();
        let Some(last_i) = (0..reads.len()).rev().find(|&i| at.pumped(i)) else {
            return;
        };
        let last = &reads[last_i];
        let standing = last_i == 0
            || self.still(at.smoothed(last_i - 1), at.smoothed(last_i))
            || last_i + 1 == reads.len();
        let bound = scan.to.min(scan.as_of);
        // Dark time says nothing of who stood there: the car is assumed through it only while
        // no other car is the next one read at the pump (a car found there when the camera came
        // back took the place at some unseen moment).
        let pump = &scan.pump;
        let next_read = pump.reads.partition_point(|&(t, _)| t <= last.t);
        let replaced = last.t < bound
            && pump
                .reads
                .get(next_read)
                .is_some_and(|&(_, next)| next != at.own);
        e.replaced = replaced;
        let dark_after = if replaced {
            0
        } else {
            self.frames
                .dark_ms(&scan.view.camera, last.t, bound, scan.as_of)
        };
        let until = if last.t >= scan.from && !replaced {
            // Read standing at the pump with the nozzle out: the nozzle is in the car till the
            // hang-up, unless another car is read there first.
            pump.reads[next_read..]
                .iter()
                .find(|&&(_, other)| other != at.own)
                .map_or(bound, |&(t, _)| t.min(bound))
        } else {
            (last.t + self.config.visible_hold_ms + dark_after)
                .min(last.t + self.config.hidden_stay_ms.max(dark_after))
                .min(bound)
        };
        if standing
            && last.t.max(scan.from) < until
            && !pump.other_car_between(at.track.id, last.t, until)
        {
            e.hidden.push((last.t.max(scan.from), until));
        }
    }

    /// Before its first read at the pump in the fill (`first_i`): came in unseen earlier in the
    /// fill and then paid, or stood there through dark time before it (the camera came back to
    /// find it standing). Adds to `e.intervals` and `e.hidden`.
    fn unseen_before_first_read(
        &self,
        scan: &ViewScan<'_>,
        at: &TrackAtPump<'_>,
        first_i: usize,
        paid_after: bool,
        e: &mut Evidence,
    ) {
        let (from, to) = (scan.from, scan.to);
        let first = &at.reads()[first_i];
        let was_before = first_i > 0 && at.pumped(first_i - 1);
        // Found there after the hang-up and paying: the fill's customer.
        let stayed_unserved = first.t >= to && paid_after;
        // First read at the pump during the fill, standing there through the hang-up and paying
        // after it, with no other car read at the pump since the lift: it came in unseen earlier
        // in the fill (hidden, or the nozzle was lifted before it stopped), and it is the fill's
        // customer.
        if scan.reach == Reach::Bay
            && !was_before
            && paid_after
            && !scan.across_filling
            && first.t > from
            && first.t < to
            && !scan.pump.other_car_between(at.track.id, from, first.t)
        {
            e.intervals.push((from, first.t));
        }
        if was_before {
            return;
        }
        for (a, b) in self
            .frames
            .dark_spells(&scan.view.camera, from, first.t, scan.as_of)
        {
            if first.t - b <= self.config.outage_after_ms * 2
                && !scan.pump.other_car_between(at.track.id, a, first.t)
            {
                if stayed_unserved {
                    e.intervals.push((a.max(from), first.t.min(to)));
                } else {
                    e.hidden.push((a, first.t));
                }
            }
        }
    }

    /// Whether two box centres are close enough for the car to have stood still between them.
    fn still(&self, a: (f32, f32), b: (f32, f32)) -> bool {
        ((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)).sqrt() <= self.config.stationary_distance
    }

    /// The median box of track `id` of `camera` over its reads from `from` to `to` (`None` with
    /// fewer than [`MIN_STANDING_READS`]).
    fn standing_in(
        &self,
        camera: &str,
        id: u64,
        from: UnixMillis,
        to: UnixMillis,
    ) -> Option<StopSample> {
        let track = self
            .tracker
            .tracks_between(camera, from, to)
            .find(|t| t.id == id)?;
        let boxes: Vec<StopSample> = track
            .reads
            .iter()
            .filter(|r| r.t >= from && r.t <= to)
            .map(read_box)
            .collect();
        if boxes.len() < MIN_STANDING_READS {
            return None;
        }
        StopSample::median(boxes.iter())
    }

    /// The first fill of `fp` whose nozzle was lifted after `after`, up to `until`.
    fn first_fill_begun(
        &self,
        fp: FpNumber,
        after: UnixMillis,
        until: UnixMillis,
    ) -> Option<&Fill> {
        self.fills
            .iter()
            .filter(|f| f.fp == fp && f.start > after && f.start <= until)
            .min_by_key(|f| f.start)
    }

    /// Whether the car `text` (seen on `tracks` during the fill `from..to` of `bay`) was read
    /// standing in that bay at another place while the bay's next fill ran, up to `as_of`: it
    /// waited through this fill and moved up to be served next. A car fuelled twice (a double
    /// sale) stays where it was.
    fn moved_up_for_next_fill(
        &self,
        bay: FpNumber,
        text: &str,
        tracks: &[&Track],
        from: UnixMillis,
        to: UnixMillis,
        as_of: UnixMillis,
    ) -> bool {
        // Begun before `as_of`, so that it ran for a while.
        let Some(next) = self.first_fill_begun(bay, to, as_of.saturating_sub(1)) else {
            return false;
        };
        let (next_from, next_to) = (next.start, next.end.unwrap_or(as_of).min(as_of));
        let max_distance = self.config.tracker.max_text_distance;
        for view in self.views(bay) {
            let during: Vec<StopSample> = tracks
                .iter()
                .filter(|t| t.camera == view.camera)
                .flat_map(|t| t.reads.iter())
                .filter(|r| r.t >= from && r.t <= to && view.holds(r))
                .map(|r| StopSample {
                    x: r.x,
                    y: r.y,
                    w: r.w,
                })
                .collect();
            let Some(place) = StopSample::median(during.iter()) else {
                continue;
            };
            let elsewhere = self
                .tracker
                .tracks_between(&view.camera, next_from, next_to)
                .flat_map(|t| t.reads.iter())
                .filter(|r| r.t >= next_from && r.t <= next_to && view.holds(r))
                .filter(|r| place.distance_to(r.x, r.y) > MOVED_UP_WIDTHS * place.w)
                .filter(|r| text_distance_at_most(&r.text, text, max_distance).is_some())
                .count();
            if elsewhere >= MOVED_UP_READS {
                return true;
            }
        }
        false
    }
}

/// The strongest well-formed car of the sale's own candidates other than `chosen` (ties: the
/// first text), by text.
fn runner_up(
    candidates: &BTreeMap<String, Candidate<'_>>,
    chosen: &str,
    is_well_formed: fn(&str) -> bool,
) -> Option<String> {
    candidates
        .iter()
        .filter(|(text, _)| text.as_str() != chosen && is_well_formed(text))
        .fold(None, |best: Option<(&String, f64)>, (text, c)| match best {
            Some((_, score)) if score >= c.score() => best,
            _ => Some((text, c.score())),
        })
        .map(|(text, _)| text.clone())
}

/// Every text any fill's candidates vote (the columns, in order) and each fill's score per
/// column (0 where it has no such candidate): the table the assignment is made on.
fn score_table<'r>(
    row_candidates: &'r [BTreeMap<String, Candidate<'_>>],
) -> (Vec<&'r String>, Vec<Vec<f64>>) {
    let columns: Vec<&String> = row_candidates
        .iter()
        .flat_map(|c| c.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let scores: Vec<Vec<f64>> = row_candidates
        .iter()
        .map(|c| {
            columns
                .iter()
                .map(|text| c.get(*text).map_or(0.0, Candidate::score))
                .collect()
        })
        .collect();
    (columns, scores)
}

/// The strongest other car of the fill (row 0 of `rows`, whose car is `column`) as a rival of
/// it: (free, explained). A car the joint `assignment` gave to another fill it suits at least as
/// well is mostly explained there (half its strength, as a doubt of its own); any other is a free
/// rival.
fn assignment_rivals(
    rows: &[BTreeMap<String, Candidate<'_>>],
    columns: &[&String],
    scores: &[Vec<f64>],
    assignment: &[Option<usize>],
    column: usize,
) -> (f32, f32) {
    let chosen = &rows[0][columns[column]];
    let assigned_elsewhere = |c: usize, own: f64| {
        assignment[1..]
            .iter()
            .enumerate()
            .any(|(r, a)| *a == Some(c) && scores[r + 1][c] >= own)
    };
    let (mut free_rival, mut explained_rival) = (0.0f32, 0.0f32);
    for (c, t) in columns.iter().enumerate().filter(|(c, _)| *c != column) {
        let Some(other) = rows[0].get(*t) else {
            continue;
        };
        let strength = other.strength_beside(chosen);
        if assigned_elsewhere(c, other.score()) {
            explained_rival = explained_rival.max(0.5 * strength);
        } else {
            free_rival = free_rival.max(strength);
        }
    }
    (free_rival, explained_rival)
}

/// How much read `r` of `view`'s camera looks like a car at the pump of `view`'s bay, for the
/// cars [`Reach`] looks at: in the bay, and the size and place of a car stopped there (`stop`,
/// once learned; `queue`, where cars were seen to queue). Until the stop is learned, any car in
/// the zone may be at the pump; a car a little outside the zone (`near` widths) counts only once
/// it is known to stand where cars at the pump do.
fn pump_likeness(
    view: &PumpView,
    reach: Reach<'_>,
    stop: Option<StopSample>,
    queue: Option<StopSample>,
    near: f32,
    r: &TrackRead,
) -> f32 {
    let inside = view.holds(r);
    // Just outside the zone with the size of a car at the pump: where it stands
    // along the lane may differ (it stopped short or overshot), its distance from
    // the camera may not (a queued car reads smaller, or larger).
    // Before the stop is learned, any car standing there is a doubt: it may be the
    // customer, stopped a little past the drawn line.
    if let Reach::BayAndNear(beside) = reach {
        if !inside && view.is_near(r, near) {
            let chosen = beside
                .filter(|(camera, _)| *camera == view.camera)
                .map(|(_, standing)| standing);
            return match (stop, chosen) {
                (Some(stop), _) => size_likeness(stop, r.w),
                (None, Some(chosen)) if r.w < chosen.w => size_likeness(chosen, r.w),
                (None, _) => 1.0,
            };
        }
    }
    match stop {
        // Before the stop is learned: where cars were seen to queue is not the pump.
        None if inside => {
            if queue.is_some_and(|q| q.fits(r.x, r.y, r.w)) {
                0.0
            } else {
                1.0
            }
        }
        None => 0.0,
        // At least the size of a car at the pump: at least as near the camera, so
        // not queued behind it (a queued car reads smaller); it stopped further
        // along the lane than most.
        Some(stop) if inside && r.w >= stop.w => size_likeness(stop, r.w),
        Some(stop) if inside => likeness_to(stop, r.x, r.y, r.w),
        Some(stop) if view.is_near(r, near) => likeness_to(stop, r.x, r.y, r.w),
        Some(_) => 0.0,
    }
}

/// Where `track`'s reads from `since` up to `as_of` lie (and two before, for the smoothing and
/// for a hidden spell that began earlier).
fn reads_range(track: &Track, since: UnixMillis, as_of: UnixMillis) -> (usize, usize) {
    let lo = track
        .reads
        .partition_point(|r| r.t < since)
        .saturating_sub(2);
    let hi = track.reads.partition_point(|r| r.t <= as_of);
    (lo, hi.max(lo))
}

/// A car read this many of its plate widths from where it stood during a fill has moved...
const MOVED_UP_WIDTHS: f32 = 2.0;
/// ...when read there this many times.
const MOVED_UP_READS: usize = 3;

/// Reads a car needs in a fill for its box there to be known.
const MIN_STANDING_READS: usize = 3;

/// A track, where the reads a decision looks at start, and how much each of those looks like a
/// car at the pump.
type TrackLikeness<'a> = (&'a Track, usize, Vec<f32>);

/// One camera's view of a bay, asked about one fill: what [`Matcher::track_evidence`] needs.
struct ViewScan<'v> {
    view: &'v PumpView,
    bay: FpNumber,
    from: UnixMillis,
    to: UnixMillis,
    as_of: UnixMillis,
    reach: Reach<'v>,
    stop: Option<StopSample>,
    queue: Option<StopSample>,
    near: f32,
    /// A pump across the island filled at the same time (its hose reaches this bay).
    across_filling: bool,
    pump: PumpReads,
}

impl ViewScan<'_> {
    /// How much read `r` looks like a car at this pump.
    fn likeness(&self, r: &TrackRead) -> f32 {
        pump_likeness(self.view, self.reach, self.stop, self.queue, self.near, r)
    }
}

/// Who was read at the pump of one view when: a car hidden since its last read is not assumed to
/// stay once another car is read there.
struct PumpReads {
    /// Per track read at the pump, the car it is: the first track of that car.
    car_of: HashMap<u64, u64>,
    /// Time and car of each read at the pump, in time order.
    reads: Vec<(UnixMillis, u64)>,
}

impl PumpReads {
    /// The car track `id` is.
    fn car(&self, id: u64) -> u64 {
        self.car_of.get(&id).copied().unwrap_or(id)
    }

    /// Whether a car other than `own` was read at the pump from `reads[first]` on, before `b`.
    fn other_car_from(&self, first: usize, b: UnixMillis, own: u64) -> bool {
        self.reads[first..]
            .iter()
            .take_while(|&&(t, _)| t < b)
            .any(|&(_, other)| other != own)
    }

    /// Whether a car other than track `id`'s was read at the pump after `a`, before `b`.
    fn other_car_between(&self, id: u64, a: UnixMillis, b: UnixMillis) -> bool {
        self.other_car_from(
            self.reads.partition_point(|&(t, _)| t <= a),
            b,
            self.car(id),
        )
    }
}

/// One track's reads around a fill (`lo..hi` of its reads) with how much each looks like a car
/// at the pump, as [`Matcher::track_evidence`] weighs them.
struct TrackAtPump<'t> {
    track: &'t Track,
    lo: usize,
    hi: usize,
    likeness: &'t [f32],
    /// The car it is (see [`PumpReads::car`]).
    own: u64,
}

impl TrackAtPump<'_> {
    fn reads(&self) -> &[TrackRead] {
        &self.track.reads[self.lo..self.hi]
    }

    /// Whether read `i` (of [`TrackAtPump::reads`]) is at the pump.
    fn pumped(&self, i: usize) -> bool {
        self.likeness[i] >= 0.5
    }

    /// Read `i`'s centre, the median over its neighbouring reads: box centres jitter from frame
    /// to frame, and the median tells a standing car from a moving one more surely.
    fn smoothed(&self, i: usize) -> (f32, f32) {
        smoothed_at(&self.track.reads[..self.hi], self.lo + i)
    }
}

/// Which cars [`Matcher::candidates`] looks at.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Reach<'r> {
    /// The fill's own bay: in its zone, or just outside where the learned stop is.
    Bay,
    /// The bay across the island, for a fill with nobody in its own: a car whose stay there saw
    /// a fill of that bay's own pump was its customer, not this fill's.
    AcrossIsland,
    /// The own bay and anywhere just outside its zone: rivals only. With the camera and standing
    /// box of the car chosen in the zone: before the stop is learned, a car just outside that
    /// reads smaller than the chosen one stands further from the camera, queued behind it (a
    /// camera looks at the cars coming in). One that reads larger stays a doubt: it may be the
    /// customer, stopped past a sloppy zone, and the chosen car the one queued behind.
    BayAndNear(Option<(&'r str, StopSample)>),
}

/// A car first read at the pump after a fill's hang-up (the camera was dark until then) and still
/// standing there this long after it, with no new fill of that pump, was the fill's customer.
const STAYED_AFTER_MS: i64 = 30_000;

/// How often the matcher drops what it no longer needs.
const FORGET_EVERY_MS: i64 = 10_000;

/// A car that stood in a zone through a fill, noted for the stop model.
#[derive(Debug, Clone)]
struct StopCandidate {
    camera: String,
    fp: FpNumber,
    track: u64,
    /// What the car read most often during the fill.
    text: String,
    sample: StopSample,
    fill_end: UnixMillis,
}

/// How long after a fill the stop model waits to see whether a car that stood through it moved up
/// to the pump (it was queued) or drove off (it was at the pump).
const LEARN_AFTER_MS: i64 = 180_000;

/// A read's box as the stop model keeps boxes.
fn read_box(r: &TrackRead) -> StopSample {
    StopSample {
        x: r.x,
        y: r.y,
        w: r.w,
    }
}

/// The median box of reads in a zone, when they show one car standing through most of the fill.
fn standing_box(in_zone: &[&TrackRead], from: UnixMillis, to: UnixMillis) -> Option<StopSample> {
    let (first, last) = (in_zone.first()?, in_zone.last()?);
    if in_zone.len() < 5 || ((last.t - first.t) as f32) < 0.8 * (to - from) as f32 {
        return None;
    }
    let boxes: Vec<StopSample> = in_zone.iter().map(|r| read_box(r)).collect();
    let sample = StopSample::median(boxes.iter())?;
    // A car that drove about during the fill is not a standing one.
    let wandered = in_zone
        .iter()
        .any(|r| sample.distance_to(r.x, r.y) > 2.0 * sample.w);
    (!wandered).then_some(sample)
}

/// How much a car standing in the bay across the island counts against one in the fill's own bay.
const ACROSS_ISLAND: f32 = 0.85;

/// Per fuelling point, the others on its island. Without islands in the layout, two fuelling
/// points whose zones share a camera are taken to face each other across one island.
fn island_neighbours(layout: &Layout) -> BTreeMap<FpNumber, Vec<FpNumber>> {
    let mut neighbours: BTreeMap<FpNumber, Vec<FpNumber>> = BTreeMap::new();
    for a in &layout.fps {
        for b in &layout.fps {
            let shared = a
                .zones
                .iter()
                .any(|za| b.zones.iter().any(|zb| za.camera == zb.camera));
            if a.fp != b.fp && shared {
                neighbours.entry(a.fp).or_default().push(b.fp);
            }
        }
    }
    neighbours
}

/// Whether `track` starts where `other` stood when it started (the read of `other` nearest in
/// time is within a few plate widths).
fn starts_by(track: &Track, other: &Track) -> bool {
    let Some(first) = track.reads.first() else {
        return false;
    };
    let i = other.reads.partition_point(|r| r.t < first.t);
    let near = |r: &TrackRead| {
        let d = ((r.x - first.x).powi(2) + (r.y - first.y).powi(2)).sqrt();
        d <= SAME_PLACE_WIDTHS * r.w.max(first.w)
    };
    other.reads[i.saturating_sub(1)..(i + 1).min(other.reads.len())]
        .iter()
        .any(near)
}

/// Two reads this many plate widths apart or less are of one place.
const SAME_PLACE_WIDTHS: f32 = 3.0;

/// A read as the text vote sees it.
fn ballot(r: &TrackRead) -> Ballot<'_> {
    Ballot {
        text: &r.text,
        confidence: r.confidence,
        well_formed: r.well_formed,
    }
}

/// The vote of a track with no read to count.
fn no_vote() -> VotedText {
    VotedText {
        text: String::new(),
        certainty: 0.0,
        exact_reads: 0,
        reads: 0,
    }
}

/// The raw score (a product of doubts) mapped to the share of plates that were right at that
/// score, as a step per score bin: `cargo run --release -p trace-gen --example fit_calibration --
/// 3000` (the six tuning families of trace-gen's randomised stations only, seeds 100001..,
/// 15,464 plates), per family isotonic, one-sided 95% lower bound per bin, lowest family at each
/// score: what the hardest station seen vouches for, so it stays honest on stations unlike them
/// (checked on the held-out families and on the independent simulator's traces). Refit it with
/// recorded traces and ground truth from real stations.
fn calibrated(raw: f32) -> f32 {
    // (lower edge of the score bin, confidence)
    const STEPS: [(f32, f32); 9] = [
        (0.0, 0.389),
        (0.1, 0.703),
        (0.2, 0.859),
        (0.3, 0.912),
        (0.4, 0.933),
        (0.5, 0.940),
        (0.7, 0.966),
        (0.995, 0.987),
        (1.0, 0.987),
    ];
    let raw = raw.clamp(0.0, 1.0);
    STEPS
        .iter()
        .rev()
        .find(|(edge, _)| raw >= *edge)
        .map_or(STEPS[0].1, |(_, confidence)| *confidence)
}

/// 0 at or below `low`, 1 at or above `high`, linear between.
fn ramp(value: f32, low: f32, high: f32) -> f32 {
    if high <= low {
        return if value >= high { 1.0 } else { 0.0 };
    }
    ((value - low) / (high - low)).clamp(0.0, 1.0)
}

/// Total length of the union of intervals.
fn union_length(mut intervals: Vec<(UnixMillis, UnixMillis)>) -> i64 {
    intervals.sort();
    let mut total = 0;
    let mut current: Option<(UnixMillis, UnixMillis)> = None;
    for (s, e) in intervals {
        match current {
            Some((cs, ce)) if s <= ce => current = Some((cs, ce.max(e))),
            Some((cs, ce)) => {
                total += ce - cs;
                current = Some((s, e));
            }
            None => current = Some((s, e)),
        }
    }
    total + current.map_or(0, |(s, e)| e - s)
}

#[cfg(test)]
mod tests {
    use forecourt_events::{Decimal, PlateRead};

    use super::*;
    use crate::layout::{FpLayout, Zone};

    fn layout() -> Layout {
        layout_split_at(0.5, 0.5)
    }

    /// Fp 1's zone is cam1's image left of `end_1`, fp 2's right of `start_2`.
    fn layout_split_at(end_1: f32, start_2: f32) -> Layout {
        let zone = |x0: f32, x1: f32| Zone {
            camera: "cam1".into(),
            polygon: vec![[x0, 0.0], [x1, 0.0], [x1, 1.0], [x0, 1.0]],
        };
        Layout {
            fps: vec![
                FpLayout {
                    fp: 1,
                    zones: vec![zone(0.0, end_1)],
                },
                FpLayout {
                    fp: 2,
                    zones: vec![zone(start_2, 1.0)],
                },
            ],
        }
    }

    fn plate_ok(text: &str) -> bool {
        text.chars().count() == 7
    }

    /// A frame of cam1 with reads `(text, x, y, width)` at confidence 0.95.
    fn sized_frame(t: i64, plates: &[(&str, f32, f32, f32)]) -> FramePlates {
        FramePlates {
            t,
            camera: "cam1".into(),
            plates: plates
                .iter()
                .map(|(text, x, y, w)| PlateRead {
                    text: text.to_string(),
                    confidence: 0.95,
                    bbox: [x - w / 2.0, y - 0.02, x + w / 2.0, y + 0.02],
                })
                .collect(),
        }
    }

    fn frame(t: i64, plates: &[(&str, f32, f32)]) -> FramePlates {
        FramePlates {
            t,
            camera: "cam1".into(),
            plates: plates
                .iter()
                .map(|(text, x, conf)| PlateRead {
                    text: text.to_string(),
                    confidence: *conf,
                    bbox: [x - 0.05, 0.5, x + 0.05, 0.55],
                })
                .collect(),
        }
    }

    fn sale(fp: u8, t: i64, out: Option<i64>) -> DispenserEvent {
        DispenserEvent::SaleCompleted(Sale {
            t,
            fp,
            nozzle: 1,
            nozzle_out_t: out,
            grade: None,
            volume: Decimal::new(3000, 2),
            amount: Decimal::new(23550, 2),
            price: Decimal::new(785, 2),
            end: None,
            recovered: false,
            totalizer: None,
            source_key: None,
        })
    }

    fn run(frames: &[FramePlates], events: &[DispenserEvent], now: i64) -> Vec<MatchedSale> {
        let mut m = Matcher::new(layout(), MatcherConfig::default(), plate_ok);
        for f in frames {
            m.observe_frame(f);
        }
        for e in events {
            m.observe_dispenser(e);
        }
        m.poll(now)
    }

    #[test]
    fn each_fp_gets_the_car_in_its_zone() {
        let frames: Vec<_> = (0..20)
            .map(|i| {
                frame(
                    i * 500,
                    &[("苏E05EV8", 0.25, 0.95), ("京A12345", 0.75, 0.9)],
                )
            })
            .collect();
        let events = [
            DispenserEvent::NozzleOut {
                t: 0,
                fp: 2,
                nozzle: 1,
            },
            sale(1, 9_000, Some(1_000)),
            sale(2, 9_500, None),
        ];
        let out = run(&frames, &events, 20_000);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].verdict.plate.as_deref(), Some("苏E05EV8"));
        assert_eq!(out[1].verdict.plate.as_deref(), Some("京A12345"));
        assert!(out[0].verdict.confidence > 0.8, "{:?}", out[0].verdict);
        // Each stood alone in its zone: no runner-up.
        assert_eq!((&out[0].runner_up, &out[1].runner_up), (&None, &None));
    }

    #[test]
    fn waits_for_the_grace_period() {
        let frames: Vec<_> = (0..20)
            .map(|i| frame(i * 500, &[("苏E05EV8", 0.25, 0.95)]))
            .collect();
        let mut m = Matcher::new(layout(), MatcherConfig::default(), plate_ok);
        frames.iter().for_each(|f| m.observe_frame(f));
        m.observe_dispenser(&sale(1, 9_000, Some(1_000)));
        assert!(m.poll(13_999).is_empty());
        assert_eq!(m.pending(), 1);
        assert_eq!(m.poll(14_000).len(), 1);
        assert_eq!(m.pending(), 0);
    }

    /// Cam1 frames every 500 ms over `0..until_ms`: `car` read at x 0.25 except while hidden
    /// (`hidden` ms), when `instead` (if any) is read there, or nothing.
    fn hidden_spell(
        car: &str,
        hidden: std::ops::Range<i64>,
        instead: Option<&str>,
        until_ms: i64,
    ) -> Vec<FramePlates> {
        (0..until_ms / 500)
            .map(|i| i * 500)
            .map(|t| match (hidden.contains(&t), instead) {
                (false, _) => frame(t, &[(car, 0.25, 0.95)]),
                (true, Some(other)) => frame(t, &[(other, 0.25, 0.95)]),
                (true, None) => frame(t, &[]),
            })
            .collect()
    }

    /// Feeds `frames` and `events` in time order, polling as it goes; every verdict returned.
    fn run_live(
        frames: &[FramePlates],
        events: &[(i64, DispenserEvent)],
        end: i64,
    ) -> Vec<MatchedSale> {
        run_live_on(layout(), frames, events, end)
    }

    /// The last verdict a live run gives for one fill of fp 1 from 10 s to `fill_end`.
    fn last_verdict(frames: &[FramePlates], fill_end: i64) -> SaleMatch {
        let out = run_live(frames, &fill(1, 10_000, fill_end), 200_000);
        out.last().expect("a verdict").verdict.clone()
    }

    /// `verdict` gives `plate` at a confidence the matcher publishes.
    fn assert_gives(verdict: &SaleMatch, plate: &str) {
        assert_eq!(verdict.plate.as_deref(), Some(plate), "{verdict:?}");
        assert!(verdict.confidence >= MatcherConfig::default().min_confidence);
    }

    /// [`run_live`] on `layout`.
    fn run_live_on(
        layout: Layout,
        frames: &[FramePlates],
        events: &[(i64, DispenserEvent)],
        end: i64,
    ) -> Vec<MatchedSale> {
        let mut m = Matcher::new(layout, MatcherConfig::default(), plate_ok);
        let mut out = Vec::new();
        let mut events = events.iter().peekable();
        for f in frames {
            while let Some((_, e)) = events.next_if(|(t, _)| *t <= f.t) {
                m.observe_dispenser(e);
            }
            out.extend(m.poll(f.t));
            m.observe_frame(f);
        }
        events.for_each(|(_, e)| m.observe_dispenser(e));
        out.extend(m.poll(end));
        out
    }

    fn fill(fp: u8, out: i64, done: i64) -> [(i64, DispenserEvent); 3] {
        [
            (
                out,
                DispenserEvent::NozzleOut {
                    t: out,
                    fp,
                    nozzle: 1,
                },
            ),
            (
                done,
                DispenserEvent::NozzleIn {
                    t: done,
                    fp,
                    nozzle: 1,
                },
            ),
            (done, sale(fp, done, Some(out))),
        ]
    }

    #[test]
    fn a_car_hidden_through_the_whole_fill_and_seen_after_it_comes_as_a_correction() {
        // Read standing at the pump before the lift and again well after the hang-up, hidden the
        // whole fill: at the grace period nothing shows it stayed; the revisit does.
        let frames = hidden_spell("苏E05EV8", 10_000..55_000, None, 120_000);
        let out = run_live(&frames, &fill(1, 12_000, 40_000), 200_000);
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[0].verdict.plate, None, "{:?}", out[0].verdict);
        assert!(!out[0].correction);
        assert_eq!(
            out[1].verdict.plate.as_deref(),
            Some("苏E05EV8"),
            "{:?}",
            out[1].verdict
        );
        assert!(out[1].correction);
        assert!(out[1].verdict.confidence >= MatcherConfig::default().min_confidence);
    }

    #[test]
    fn no_correction_when_the_revisit_agrees_or_another_car_stood_there() {
        // Seen all along: the first verdict stands, nothing more is said.
        let frames = hidden_spell("苏E05EV8", 0..0, None, 120_000);
        let out = run_live(&frames, &fill(1, 12_000, 40_000), 200_000);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].verdict.plate.as_deref(), Some("苏E05EV8"));
        // Another car read at the pump in the hidden spell: the one seen before and after did not
        // stand there through the fill.
        let frames = hidden_spell("苏E05EV8", 10_000..55_000, Some("京A12345"), 120_000);
        let out = run_live(&frames, &fill(1, 12_000, 40_000), 200_000);
        assert!(
            out.iter()
                .all(|m| m.verdict.plate.as_deref() != Some("苏E05EV8")),
            "{out:?}"
        );
    }

    #[test]
    fn a_car_gone_when_the_camera_came_back_is_not_assumed_through_the_dark() {
        // One car stands at the pump, the camera goes dark over the whole fill, and comes back
        // to find another car standing there, which stays on paying with no new fill: the
        // first car may have left at any unseen moment, so the dark time is not its.
        let frames: Vec<FramePlates> = (0..240)
            .map(|i| i * 500)
            .filter_map(|t| match t {
                0..=9_500 => Some(frame(t, &[("京A12345", 0.25, 0.95)])),
                10_000..=49_500 => None,
                _ => Some(frame(t, &[("苏E05EV8", 0.25, 0.95)])),
            })
            .collect();
        let out = run_live(&frames, &fill(1, 12_000, 40_000), 200_000);
        assert_gives(&out.last().expect("a verdict").verdict, "苏E05EV8");
    }

    #[test]
    fn a_car_first_read_late_in_the_fill_that_stays_paying_was_there_from_the_lift() {
        // Frames come with nothing read until 30 s into a fill that began at 10 s (the car was
        // hidden, or came in after the lift); then it is read at the pump through the hang-up
        // and stays 50 s more with no new fill: the fill's customer. Another car read at the
        // pump before it in the fill leaves the start of the fill to that car.
        let frames = |other: Option<&'static str>| -> Vec<FramePlates> {
            (0..240)
                .map(|i| i * 500)
                .map(|t| match (t, other) {
                    (15_000..=19_500, Some(other)) => frame(t, &[(other, 0.25, 0.95)]),
                    (0..=29_500, _) => frame(t, &[]),
                    _ => frame(t, &[("苏E05EV8", 0.25, 0.95)]),
                })
                .collect()
        };
        let fill_end = 40_000;
        let alone = last_verdict(&frames(None), fill_end);
        assert_gives(&alone, "苏E05EV8");
        let after_another = last_verdict(&frames(Some("京A12345")), fill_end);
        assert_eq!(after_another.plate, None, "{after_another:?}");
        // With the pump across the island (fp 2, same camera) filling meanwhile, the car may
        // have been that fill's, its hose reaching across: the first 20 s are not known.
        let mut both: Vec<(i64, DispenserEvent)> = fill(1, 10_000, 40_000).into();
        both.extend(fill(2, 12_000, 38_000));
        both.sort_by_key(|(t, _)| *t);
        let out = run_live(&frames(None), &both, 200_000);
        let across = &out
            .iter()
            .rev()
            .find(|m| m.sale.fp == 1)
            .expect("a verdict")
            .verdict;
        assert_eq!(across.plate, None, "{out:?}");
    }

    #[test]
    fn a_car_only_assumed_at_the_pump_is_no_rival_where_another_was_seen_there() {
        // Two cameras see fp 1. On cam1 one car stands at the pump all along. Cam2 is dark over
        // the fill and comes back to find another car there for a moment: that one is only
        // assumed to have stood there in the dark, which the first car, seen, rules out.
        let layout = Layout {
            fps: vec![FpLayout {
                fp: 1,
                zones: ["cam1", "cam2"]
                    .into_iter()
                    .map(|camera| Zone {
                        camera: camera.into(),
                        polygon: vec![[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]],
                    })
                    .collect(),
            }],
        };
        let on = |camera: &str, mut frame: FramePlates| {
            frame.camera = camera.into();
            frame
        };
        let mut frames = Vec::new();
        for t in (0..240).map(|i| i * 500) {
            frames.push(on("cam1", frame(t, &[("苏E05EV8", 0.25, 0.95)])));
            match t {
                0..=4_500 | 60_000.. => frames.push(on("cam2", frame(t + 1, &[]))),
                45_000..=55_000 => {
                    frames.push(on("cam2", frame(t + 1, &[("京A12345", 0.25, 0.95)])))
                }
                _ => {}
            }
        }
        let out = run_live_on(layout, &frames, &fill(1, 10_000, 40_000), 300_000);
        assert_gives(&out.last().expect("a verdict").verdict, "苏E05EV8");
    }

    #[test]
    fn a_car_read_standing_at_the_pump_with_the_nozzle_out_is_assumed_there_till_the_hang_up() {
        // Read at the pump from before the lift to 20 s into a 60 s fill, then hidden (frames
        // keep coming, nothing read) and never read again. Another car read at the pump in the
        // hidden spell ends the assumption there.
        let frames = |other: Option<&'static str>| -> Vec<FramePlates> {
            (0..200)
                .map(|i| i * 500)
                .map(|t| match (t, other) {
                    (0..=29_500, _) => frame(t, &[("苏E05EV8", 0.25, 0.95)]),
                    (40_000..=44_500, Some(other)) => frame(t, &[(other, 0.25, 0.95)]),
                    _ => frame(t, &[]),
                })
                .collect()
        };
        let fill_end = 70_000;
        let hidden = last_verdict(&frames(None), fill_end);
        assert_gives(&hidden, "苏E05EV8");
        let another = last_verdict(&frames(Some("京A12345")), fill_end);
        assert_eq!(another.plate, None, "{another:?}");
    }

    #[test]
    fn a_car_found_after_an_outage_and_still_there_when_the_next_fill_begins_is_not_the_customer() {
        // The camera is dark over the whole fill and comes back to find a car at the pump. It
        // stands there more than 30 s past the hang-up, one read of it jittering just outside
        // the zone, and is still there when the pump's next fill begins: it waited to be
        // served next, it did not pay for this fill.
        let frames: Vec<FramePlates> = (0..240)
            .map(|i| i * 500)
            .filter_map(|t| match t {
                5_000..=44_500 => None,
                80_000 => Some(frame(t, &[("苏E05EV8", 0.42, 0.95)])),
                45_000.. => Some(frame(t, &[("苏E05EV8", 0.37, 0.95)])),
                _ => Some(frame(t, &[])),
            })
            .collect();
        let mut events: Vec<(i64, DispenserEvent)> = fill(1, 10_000, 40_000).into();
        events.extend(fill(1, 95_000, 110_000));
        let out = run_live_on(layout_split_at(0.4, 0.6), &frames, &events, 300_000);
        let first_sale = out
            .iter()
            .rev()
            .find(|m| m.sale.t == 40_000)
            .expect("a verdict");
        assert_eq!(first_sale.verdict.plate, None, "{out:?}");
    }

    #[test]
    fn a_car_that_pulled_up_unseen_during_the_fill_and_then_paid_covers_the_fill() {
        // Read in the zone at the lift, hidden while it pulls up to the pump (read again 20 s
        // later, elsewhere in the zone), standing there through the hang-up and 60 s more with
        // no new fill: the customer, there all along. Another car read at the pump while it
        // was hidden leaves that time to the other car.
        let frames = |other: Option<&'static str>| -> Vec<FramePlates> {
            (0..240)
                .map(|i| i * 500)
                .map(|t| match (t, other) {
                    (0..=11_500, _) => frame(t, &[("苏E05EV8", 0.1, 0.95)]),
                    (15_000..=19_500, Some(other)) => frame(t, &[(other, 0.3, 0.95)]),
                    (12_000..=29_500, _) => frame(t, &[]),
                    _ => frame(t, &[("苏E05EV8", 0.3, 0.95)]),
                })
                .collect()
        };
        let fill_end = 40_000;
        let pulled_up = last_verdict(&frames(None), fill_end);
        assert_gives(&pulled_up, "苏E05EV8");
        let another = last_verdict(&frames(Some("京A12345")), fill_end);
        assert_eq!(another.plate, None, "{another:?}");
    }

    #[test]
    fn a_car_that_moved_up_to_be_served_next_was_not_the_customer() {
        // The customer at the pump is never read (hidden behind the queued car, as a camera
        // behind the lane sees it). The queued car stands in the zone through the fill, then
        // moves up and stands at the pump for the next fill.
        let frames: Vec<FramePlates> = (0..400)
            .map(|i| i * 500)
            .map(|t| match t {
                0..=50_000 => frame(t, &[("苏E05EV8", 0.1, 0.95)]),
                55_000..=150_000 => frame(t, &[("苏E05EV8", 0.35, 0.95)]),
                _ => frame(t, &[]),
            })
            .collect();
        let mut events: Vec<(i64, DispenserEvent)> = fill(1, 5_000, 40_000).into();
        events.extend(fill(1, 60_000, 100_000));
        let out = run_live(&frames, &events, 300_000);
        let last_for = |t: i64| out.iter().rev().find(|m| m.sale.t == t).unwrap();
        assert_eq!(last_for(40_000).verdict.plate, None, "{out:?}");
        assert_eq!(
            last_for(100_000).verdict.plate.as_deref(),
            Some("苏E05EV8"),
            "{out:?}"
        );
    }

    #[test]
    fn two_tracks_on_one_standing_car_are_not_two_cars() {
        // A duplicate box starts a second track on the car; the reads then alternate between
        // the two tracks by a hair's breadth of jitter. Neither is another car at the pump.
        let frames: Vec<FramePlates> = (0..80)
            .map(|k| {
                let t = k * 500;
                match k % 3 {
                    _ if k == 0 => frame(t, &[("苏E05EV8", 0.25, 0.95), ("苏E05EV8", 0.26, 0.95)]),
                    0 => frame(t, &[("苏E05EV8", 0.25, 0.95)]),
                    _ => frame(t, &[("苏E05EV8", 0.26, 0.95)]),
                }
            })
            .collect();
        let out = run(&frames, &[sale(1, 38_000, Some(2_000))], 44_000);
        assert_eq!(
            out[0].verdict.plate.as_deref(),
            Some("苏E05EV8"),
            "{:?}",
            out[0].verdict
        );
        // A lookalike plate elsewhere in the zone at the same time is another car.
        let frames: Vec<FramePlates> = (0..80)
            .map(|k| {
                frame(
                    k * 500,
                    &[("苏E05EV8", 0.25, 0.95), ("苏E05EV9", 0.1, 0.95)],
                )
            })
            .collect();
        let out = run(&frames, &[sale(1, 38_000, Some(2_000))], 44_000);
        assert_eq!(out[0].verdict.plate, None, "{:?}", out[0].verdict);
    }

    #[test]
    fn a_car_found_standing_after_an_outage_over_the_fill_and_not_served_next_was_its_customer() {
        // Cam1 dark from 8 s to 45 s; the fill runs 12..40 s. The car was queued outside the zone
        // before (x 0.6 is fp 2's zone, which has no fill), is found at the pump when the camera
        // comes back and stands there until 100 s.
        let frames: Vec<FramePlates> = (0..400)
            .map(|i| i * 500)
            .filter(|t| !(8_000..45_000).contains(t))
            .map(|t| match t {
                0..=8_000 => frame(t, &[("苏E05EV8", 0.6, 0.95)]),
                45_000..=100_000 => frame(t, &[("苏E05EV8", 0.25, 0.95)]),
                _ => frame(t, &[]),
            })
            .collect();
        let out = run_live(&frames, &fill(1, 12_000, 40_000), 300_000);
        let last = out.last().unwrap();
        assert_eq!(last.verdict.plate.as_deref(), Some("苏E05EV8"), "{out:?}");
        // The same, but the pump's next fill begins while it stands there: it arrived in the dark
        // after the customer left, and is served next.
        let mut events: Vec<(i64, DispenserEvent)> = fill(1, 12_000, 40_000).into();
        events.extend(fill(1, 55_000, 90_000));
        let out = run_live(&frames, &events, 300_000);
        let first_sale = out.iter().rev().find(|m| m.sale.t == 40_000).unwrap();
        assert_eq!(first_sale.verdict.plate, None, "{out:?}");
    }

    #[test]
    fn before_the_stop_is_learned_a_car_just_outside_the_zone_is_a_doubt() {
        // Zones with a gap between them: a car at x 0.45 stands just outside fp 1's zone, nearer
        // to it than to fp 2's. Nothing learned yet: it may be the customer who drove a little
        // past the drawn line, and the car inside the zone the one queued behind.
        let layout = layout_split_at(0.4, 0.6);
        let judge = |plates: &[(&str, f32, f32)]| {
            let mut m = Matcher::new(layout.clone(), MatcherConfig::default(), plate_ok);
            for i in 0..80 {
                m.observe_frame(&frame(i * 500, plates));
            }
            m.observe_dispenser(&sale(1, 38_000, Some(2_000)));
            m.poll(44_000).remove(0)
        };
        let alone = judge(&[("苏E05EV8", 0.2, 0.95)]);
        assert_eq!(
            alone.verdict.plate.as_deref(),
            Some("苏E05EV8"),
            "{:?}",
            alone.verdict
        );
        let doubted = judge(&[("苏E05EV8", 0.2, 0.95), ("京A12345", 0.45, 0.95)]);
        assert_eq!(doubted.verdict.plate, None, "{:?}", doubted.verdict);
    }

    #[test]
    fn before_the_stop_is_learned_a_smaller_car_just_outside_the_zone_is_queued_behind() {
        // As above, but the car just outside reads 0.6x the width of the one in the zone: it
        // stands further from the camera, queued behind, not beside it. One that reads larger
        // stays a doubt (it may be the customer, and the car in the zone the queued one).
        let layout = layout_split_at(0.4, 0.6);
        let judge = |outside_width: f32| {
            let mut m = Matcher::new(layout.clone(), MatcherConfig::default(), plate_ok);
            for i in 0..80 {
                m.observe_frame(&sized_frame(
                    i * 500,
                    &[
                        ("苏E05EV8", 0.2, 0.525, 0.1),
                        ("京A12345", 0.45, 0.525, outside_width),
                    ],
                ));
            }
            m.observe_dispenser(&sale(1, 38_000, Some(2_000)));
            m.poll(44_000).remove(0).verdict
        };
        let queued = judge(0.06);
        assert_gives(&queued, "苏E05EV8");
        let larger = judge(0.12);
        assert_eq!(larger.plate, None, "{larger:?}");
    }

    #[test]
    fn abstains_without_sightings_or_fill_start() {
        let out = run(&[], &[sale(1, 9_000, Some(1_000))], 20_000);
        assert_eq!(out[0].verdict.plate, None);
        let frames: Vec<_> = (0..20)
            .map(|i| frame(i * 500, &[("苏E05EV8", 0.25, 0.95)]))
            .collect();
        let out = run(&frames, &[sale(1, 9_000, None)], 20_000);
        assert_eq!(out[0].verdict.plate, None);
        assert!(out[0].verdict.reason.contains("fill start"));
    }

    #[test]
    fn abstains_when_two_cars_compete_in_one_zone() {
        let frames: Vec<_> = (0..20)
            .map(|i| frame(i * 500, &[("苏E05EV8", 0.2, 0.95), ("京A12345", 0.3, 0.95)]))
            .collect();
        let out = run(&frames, &[sale(1, 9_000, Some(1_000))], 20_000);
        assert_eq!(out[0].verdict.plate, None, "{:?}", out[0].verdict);
        // What a person checking it is shown: the two cars.
        let best = out[0].candidate.as_ref().map(|c| c.plate.as_str());
        let mut both = [best, out[0].runner_up.as_deref()];
        both.sort();
        assert_eq!(both, [Some("京A12345"), Some("苏E05EV8")], "{:?}", out[0]);
    }

    #[test]
    fn a_car_seen_only_before_the_fill_is_not_matched() {
        // The camera keeps sending frames; the car is gone from them.
        let frames: Vec<_> = (0..10)
            .map(|i| frame(i * 500, &[("苏E05EV8", 0.25, 0.95)]))
            .chain((10..50).map(|i| frame(i * 500, &[])))
            .collect();
        let out = run(&frames, &[sale(1, 20_000, Some(10_000))], 30_000);
        assert_eq!(out[0].verdict.plate, None, "{:?}", out[0].verdict);
    }

    #[test]
    fn a_camera_outage_is_not_a_car_leaving() {
        // Read standing before and after, the camera dark in between: the car stood there. With
        // the same gap filled by frames in which it is never read, the bridge still holds (same
        // track, same place) but a car read elsewhere meanwhile would break it.
        let before = (0..10).map(|i| frame(i * 500, &[("苏E05EV8", 0.25, 0.95)]));
        let after = (0..10).map(|i| frame(40_000 + i * 500, &[("苏E05EV8", 0.25, 0.95)]));
        let frames: Vec<_> = before.chain(after).collect();
        let out = run(&frames, &[sale(1, 38_000, Some(8_000))], 60_000);
        assert_eq!(
            out[0].verdict.plate.as_deref(),
            Some("苏E05EV8"),
            "{:?}",
            out[0].verdict
        );
    }

    #[test]
    fn a_queued_car_smaller_than_the_learned_stop_is_not_the_customer() {
        // Five customers alone at FP 1 teach where a car at the pump stands and how big it reads
        // (each is learned once it has driven off, a few minutes after its fill).
        let (mut m, t, mut out) = taught_stop(layout());
        // Then a motorbike fills while a car waits further back, inside the drawn zone.
        for i in 0..40 {
            m.observe_frame(&sized_frame(t + i * 500, &[("京A12345", 0.25, 0.5, 0.06)]));
        }
        m.observe_dispenser(&sale(1, t + 18_000, Some(t + 1_000)));
        out.extend(m.poll(t + 60_000));
        assert_eq!(out.len(), 6);
        for (verdict, plate) in out.iter().zip(STOP_TEACHERS) {
            assert_eq!(verdict.verdict.plate.as_deref(), Some(plate));
        }
        assert_eq!(out[5].verdict.plate, None, "{:?}", out[5].verdict);
    }

    /// A matcher on `layout` taught fp 1's stop (cam1, centre 0.25, 0.8, width 0.1) by five
    /// customers alone at the pump, the time after them, and the verdicts of their fills.
    fn taught_stop(layout: Layout) -> (Matcher, i64, Vec<MatchedSale>) {
        let mut m = Matcher::new(layout, MatcherConfig::default(), plate_ok);
        let mut t = 0;
        let mut verdicts = Vec::new();
        for plate in STOP_TEACHERS {
            for i in 0..40 {
                m.observe_frame(&sized_frame(t + i * 500, &[(plate, 0.25, 0.8, 0.1)]));
            }
            m.observe_dispenser(&sale(1, t + 18_000, Some(t + 1_000)));
            verdicts.extend(m.poll(t + 30_000));
            t += 200_000;
        }
        verdicts.extend(m.poll(t));
        (m, t, verdicts)
    }

    /// The customers [`taught_stop`] teaches fp 1's stop with, one fill each.
    const STOP_TEACHERS: [&str; 5] = ["苏E05EV1", "京B77K12", "沪C3M456", "粤D98765", "浙F1234Q"];

    /// With fp 1's stop taught, the verdict of a fill during which one car stands at `x`, `y`,
    /// `w` wide.
    fn verdict_once_taught(layout: Layout, x: f32, y: f32, w: f32) -> SaleMatch {
        let (mut m, t, _) = taught_stop(layout);
        for i in 0..40 {
            m.observe_frame(&sized_frame(t + i * 500, &[("京A12345", x, y, w)]));
        }
        m.observe_dispenser(&sale(1, t + 18_000, Some(t + 1_000)));
        m.poll(t + 24_000).remove(0).verdict
    }

    #[test]
    fn once_the_stop_is_learned_a_car_in_the_zone_at_least_its_size_is_at_the_pump() {
        // In the zone, far along the lane from the learned stop: reading larger than a car at
        // the stop it is nearer the camera, not queued behind, and it stopped further along.
        // Reading smaller at that place it is a car further back.
        let further_along = verdict_once_taught(layout(), 0.25, 0.2, 0.12);
        assert_eq!(
            further_along.plate.as_deref(),
            Some("京A12345"),
            "{further_along:?}"
        );
        let further_back = verdict_once_taught(layout(), 0.25, 0.2, 0.085);
        assert_eq!(further_back.plate, None, "{further_back:?}");
    }

    #[test]
    fn a_few_misreads_do_not_change_the_plate() {
        let frames: Vec<_> = (0..20)
            .map(|i| {
                let text = if i % 7 == 0 { "苏E05FV8" } else { "苏E05EV8" };
                frame(i * 500, &[(text, 0.25, 0.9)])
            })
            .collect();
        let out = run(&frames, &[sale(1, 9_000, Some(1_000))], 20_000);
        assert_eq!(out[0].verdict.plate.as_deref(), Some("苏E05EV8"));
    }

    #[test]
    fn malformed_best_reading_abstains() {
        let frames: Vec<_> = (0..20)
            .map(|i| frame(i * 500, &[("苏E05EV", 0.25, 0.99)]))
            .collect();
        let out = run(&frames, &[sale(1, 9_000, Some(1_000))], 20_000);
        assert_eq!(out[0].verdict.plate, None);
    }

    #[test]
    fn an_occluded_car_that_never_moved_still_covers_the_fill() {
        // Read before and after a long occlusion, at the same place.
        let frames: Vec<_> = (0..6)
            .map(|i| frame(i * 500, &[("苏E05EV8", 0.25, 0.95)]))
            .chain((0..6).map(|i| frame(60_000 + i * 500, &[("苏E05EV8", 0.25, 0.95)])))
            .collect();
        let out = run(&frames, &[sale(1, 64_000, Some(5_000))], 100_000);
        assert_eq!(
            out[0].verdict.plate.as_deref(),
            Some("苏E05EV8"),
            "{:?}",
            out[0].verdict
        );
    }

    #[test]
    fn the_matcher_can_be_held_across_awaits_on_a_multi_thread_runtime() {
        fn send_and_sync<T: Send + Sync>() {}
        send_and_sync::<Matcher>();
    }

    #[test]
    fn each_reads_zone_bits_say_what_the_zones_do_also_after_a_reload() {
        // A gap between the two zones, so that reads lie inside, just outside and far outside.
        let mut m = Matcher::new(
            layout_split_at(0.4, 0.6),
            MatcherConfig::default(),
            plate_ok,
        );
        let xs = [0.05, 0.3, 0.42, 0.47, 0.5, 0.53, 0.58, 0.7, 0.95];
        for (k, x) in xs.iter().enumerate() {
            // A new car each time (another text far from the last), so each read is looked at.
            let text = format!("苏E{:05}", k * 11_111);
            m.observe_frame(&frame(k as i64 * 1_000, &[(text.as_str(), *x, 0.9)]));
        }
        let check = |m: &Matcher| {
            let near = m.config.near_zone_widths;
            let mut reads = 0;
            for track in m.tracker.tracks_between("cam1", i64::MIN, i64::MAX) {
                for r in &track.reads {
                    reads += 1;
                    for fp in [1, 2] {
                        let view = &m.views(fp)[0];
                        let geometry =
                            (view.in_zone(r.x, r.y), view.near_zone(r.x, r.y, r.w, near));
                        assert_eq!(
                            (view.holds(r), view.is_near(r, near)),
                            geometry,
                            "fp {fp} x {}",
                            r.x
                        );
                    }
                }
            }
            assert_eq!(reads, xs.len());
        };
        check(&m);
        let near_reads = |m: &Matcher| {
            m.tracker
                .tracks_between("cam1", i64::MIN, i64::MAX)
                .flat_map(|t| t.reads.iter())
                .filter(|r| r.zones.near != 0)
                .count()
        };
        let before = near_reads(&m);
        m.set_config(MatcherConfig {
            near_zone_widths: 0.1,
            ..MatcherConfig::default()
        });
        check(&m);
        assert!(
            near_reads(&m) < before,
            "a narrower margin leaves fewer reads near a zone"
        );
    }

    #[test]
    fn union_of_intervals() {
        assert_eq!(union_length(vec![(0, 10), (5, 20), (30, 40)]), 30);
        assert_eq!(union_length(vec![]), 0);
    }
}
