//! Per camera, joins the plate reads of successive frames into tracks, one per car: a read joins
//! the track whose last box is near enough for the time that passed and whose recent texts are
//! close to its own. Pure: frames come in, tracks are read out.

use std::collections::{BTreeMap, VecDeque};

use forecourt_events::{FramePlates, PlateRead, UnixMillis};

use forecourt_events::text_distance_at_most;

#[derive(Debug, Clone, PartialEq)]
pub struct TrackerConfig {
    /// A car unseen this long starts a new track when it is read again (long occlusions).
    pub max_gap_ms: i64,
    /// How far a box centre may move between frames at once (normalised units)...
    pub base_gate: f32,
    /// ...plus this much per second of gap (moving cars)...
    pub gate_per_second: f32,
    /// ...but never more than this.
    pub max_gate: f32,
    /// Reads further than this (in characters) from all of a track's recent texts start a new one.
    pub max_text_distance: usize,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            max_gap_ms: 5 * 60_000,
            base_gate: 0.04,
            gate_per_second: 0.3,
            max_gate: 0.25,
            max_text_distance: 2,
        }
    }
}

/// One read as a track keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackRead {
    pub t: UnixMillis,
    /// Box centre, normalised.
    pub x: f32,
    pub y: f32,
    /// Box width and height, normalised: a car nearer the camera reads larger, so the size tells
    /// a car at the pump from one queued behind it.
    pub w: f32,
    pub h: f32,
    pub text: String,
    pub confidence: f32,
    pub well_formed: bool,
    /// Which characters the text holds, as bits of a 64-bit hash: texts that differ in more
    /// characters than this can tell apart cannot be a misread of each other (a cheap test
    /// before the edit distance).
    pub chars: u64,
    /// The median centre of this read and two on each side (box centres jitter from frame to
    /// frame), kept once the two after it came; NaN until then. See [`smoothed_at`].
    pub smoothed: [f32; 2],
    /// Where the read lies among the fuelling points' zones, set by the tracker's owner once the
    /// read joined a track (the tracker knows no zones and leaves it empty).
    pub zones: ZoneBits,
}

/// Which fuelling points' zones hold a read (`inside`) and which it stands just outside of
/// (`near`): bit `i` for the owner's `i`-th fuelling point. Worked out once per read, not
/// again for every fill that looks at it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ZoneBits {
    pub inside: u64,
    pub near: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Track {
    /// Unique per tracker, increasing in creation order.
    pub id: u64,
    pub camera: String,
    /// In time order.
    pub reads: Vec<TrackRead>,
    /// The union of its reads' zone bits: a track that never came near a fuelling point's zones
    /// is passed over without looking at its reads.
    pub zones_seen: ZoneBits,
}

impl Track {
    pub fn first_t(&self) -> UnixMillis {
        self.reads.first().map_or(0, |r| r.t)
    }

    pub fn last_t(&self) -> UnixMillis {
        self.reads.last().map_or(0, |r| r.t)
    }
}

/// The median centre of read `i` of `reads` and its two neighbours on each side, as far as `reads`
/// goes: kept in the read once it has both neighbours after it, worked out otherwise (a decision
/// sees only the reads up to its time, so `reads` may end before the track does).
pub(crate) fn smoothed_at(reads: &[TrackRead], i: usize) -> (f32, f32) {
    let [x, y] = reads[i].smoothed;
    if i + 2 < reads.len() && !x.is_nan() {
        return (x, y);
    }
    let [x, y] = median_centre(&reads[i.saturating_sub(2)..(i + 3).min(reads.len())]);
    (x, y)
}

/// The median x and y of up to five reads.
fn median_centre(window: &[TrackRead]) -> [f32; 2] {
    let window = &window[..window.len().min(5)];
    if let [a, b, c, d, e] = window {
        return [
            median_of_five([a.x, b.x, c.x, d.x, e.x]),
            median_of_five([a.y, b.y, c.y, d.y, e.y]),
        ];
    }
    let (mut xs, mut ys) = ([0.0f32; 5], [0.0f32; 5]);
    for (k, r) in window.iter().enumerate() {
        xs[k] = r.x;
        ys[k] = r.y;
    }
    let n = window.len();
    let median = |v: &mut [f32]| {
        v.sort_unstable_by(f32::total_cmp);
        v[v.len() / 2]
    };
    [median(&mut xs[..n]), median(&mut ys[..n])]
}

/// The middle of five values in `f32::total_cmp` order, by a sorting network on their order
/// keys (one per read, so it is worth being branch-free).
fn median_of_five(values: [f32; 5]) -> f32 {
    // The integer whose order is total_cmp's (as the standard library defines it).
    let key = |v: f32| {
        let bits = v.to_bits() as i32;
        bits ^ (((bits >> 31) as u32) >> 1) as i32
    };
    let mut k = values.map(key);
    for (i, j) in [
        (0, 3),
        (1, 4),
        (0, 2),
        (1, 3),
        (0, 1),
        (2, 4),
        (1, 2),
        (3, 4),
        (2, 3),
    ] {
        let (low, high) = (k[i].min(k[j]), k[i].max(k[j]));
        k[i] = low;
        k[j] = high;
    }
    // The key transform is its own inverse.
    f32::from_bits(key(f32::from_bits(k[2] as u32)) as u32)
}

/// How many of a track's latest texts a new read is compared with (one misread must not split it).
const RECENT_TEXTS: usize = 6;

#[derive(Debug)]
struct CameraTracks {
    /// In creation order; old ones are dropped by [`Tracker::forget_before`].
    tracks: VecDeque<Track>,
    /// The tracks a read of the newest frame may still join (last read at most `max_gap_ms`
    /// before it), ids ascending, with their last read's time and centre: a busy camera keeps
    /// hundreds of tracks for the matcher, and a frame needs to look at the few open near it.
    open: Vec<OpenTrack>,
    /// Time of the newest frame with reads.
    newest: UnixMillis,
}

/// A track's id and last read, as a new read is compared with it.
#[derive(Debug, Clone, Copy)]
struct OpenTrack {
    id: u64,
    /// Its place in the deque (tracks are only added at the back; kept right when old ones go).
    index: usize,
    t: UnixMillis,
    x: f32,
    y: f32,
}

impl OpenTrack {
    fn of(track: &Track, index: usize) -> Option<OpenTrack> {
        let last = track.reads.last()?;
        Some(OpenTrack {
            id: track.id,
            index,
            t: last.t,
            x: last.x,
            y: last.y,
        })
    }
}

impl Default for CameraTracks {
    fn default() -> Self {
        CameraTracks {
            tracks: VecDeque::new(),
            open: Vec::new(),
            newest: UnixMillis::MIN,
        }
    }
}

impl CameraTracks {
    /// Whether a frame at `t` is in time order (not older than the newest); if so, closes the
    /// tracks it can no longer join (last read more than `max_gap_ms` before it).
    fn close_before(&mut self, t: UnixMillis, max_gap_ms: i64) -> bool {
        if t < self.newest {
            return false;
        }
        self.newest = t;
        self.open.retain(|o| t - o.t <= max_gap_ms);
        true
    }

    /// Every track as [`OpenTrack`]s, ids ascending: what a frame older than the newest may join
    /// (some closed tracks may be open again for it).
    fn every_track(&self) -> Vec<OpenTrack> {
        self.tracks
            .iter()
            .enumerate()
            .filter_map(|(i, track)| OpenTrack::of(track, i))
            .collect()
    }

    /// Track `ti` just got a read: open it, or move its last read.
    fn reopen(&mut self, ti: usize) {
        let Some(open) = OpenTrack::of(&self.tracks[ti], ti) else {
            return;
        };
        match self.open.binary_search_by_key(&open.id, |o| o.id) {
            Ok(at) => self.open[at] = open,
            Err(at) => self.open.insert(at, open),
        }
    }
}

#[derive(Debug)]
pub struct Tracker {
    config: TrackerConfig,
    cameras: BTreeMap<String, CameraTracks>,
    next_id: u64,
    is_well_formed: fn(&str) -> bool,
    /// Per-frame working space, kept between frames so a frame allocates nothing for it.
    scratch: FrameScratch,
}

/// What joining one frame's reads needs for a moment: the reads, the admissible (cost, read,
/// track) pairs, and the track each read joined.
#[derive(Debug, Default)]
struct FrameScratch {
    reads: Vec<TrackRead>,
    pairs: Vec<(f32, usize, usize)>,
    joined: Vec<Option<usize>>,
}

impl Tracker {
    pub fn new(config: TrackerConfig, is_well_formed: fn(&str) -> bool) -> Self {
        Tracker {
            config,
            cameras: BTreeMap::new(),
            next_id: 1,
            is_well_formed,
            scratch: FrameScratch::default(),
        }
    }

    /// Joins the frame's reads to tracks; returns the ids of the tracks that got one (each its
    /// last read now), in the order the reads were added.
    pub fn observe(&mut self, frame: &FramePlates) -> Vec<u64> {
        let mut added = Vec::new();
        self.observe_with(frame, |track| added.push(track.id));
        added
    }

    /// [`Tracker::observe`], handing each track that got a read to `on_read` instead (in the
    /// order the reads were added), for its owner to work out what it keeps per read.
    pub fn observe_with(&mut self, frame: &FramePlates, mut on_read: impl FnMut(&mut Track)) {
        if frame.plates.is_empty() {
            // Most frames: nothing read, nothing to join.
            return;
        }
        let config = &self.config;
        let is_well_formed = self.is_well_formed;
        // The camera's name is copied only for its first frame.
        let camera = match self.cameras.get_mut(&frame.camera) {
            Some(camera) => camera,
            None => self.cameras.entry(frame.camera.clone()).or_default(),
        };
        let FrameScratch {
            reads,
            pairs,
            joined,
        } = &mut self.scratch;
        reads.clear();
        reads.extend(
            frame
                .plates
                .iter()
                .filter_map(|p| track_read(frame.t, p, is_well_formed)),
        );
        let every;
        let joinable: &[OpenTrack] = if camera.close_before(frame.t, config.max_gap_ms) {
            &camera.open
        } else {
            every = camera.every_track();
            &every
        };
        admissible_pairs(config, &camera.tracks, joinable, reads, pairs);
        cheapest_first(pairs, reads.len(), joined);
        for (read, &track) in reads.drain(..).zip(joined.iter()) {
            let ti = match track {
                Some(ti) => {
                    let reads = &mut camera.tracks[ti].reads;
                    reads.push(read);
                    // The read two back now has both neighbours on each side.
                    if let Some(i) = reads.len().checked_sub(3) {
                        reads[i].smoothed = median_centre(&reads[i.saturating_sub(2)..]);
                    }
                    ti
                }
                None => {
                    camera.tracks.push_back(Track {
                        id: self.next_id,
                        camera: frame.camera.clone(),
                        reads: vec![read],
                        zones_seen: ZoneBits::default(),
                    });
                    self.next_id += 1;
                    camera.tracks.len() - 1
                }
            };
            camera.reopen(ti);
            on_read(&mut camera.tracks[ti]);
        }
    }

    /// Every kept track, to work out again what its owner keeps per read.
    pub fn tracks_mut(&mut self) -> impl Iterator<Item = &mut Track> {
        self.cameras.values_mut().flat_map(|c| c.tracks.iter_mut())
    }

    /// Tracks of `camera` with a read in `from..=to`.
    pub fn tracks_between<'a>(
        &'a self,
        camera: &str,
        from: UnixMillis,
        to: UnixMillis,
    ) -> impl Iterator<Item = &'a Track> + 'a {
        self.cameras
            .get(camera)
            .into_iter()
            .flat_map(|c| c.tracks.iter())
            .filter(move |t| t.first_t() <= to && t.last_t() >= from)
    }

    /// Drops tracks last seen before `horizon`.
    pub fn forget_before(&mut self, horizon: UnixMillis) {
        for camera in self.cameras.values_mut() {
            camera.tracks.retain(|t| t.last_t() >= horizon);
            let tracks = &camera.tracks;
            camera.open.retain_mut(|open| {
                // In creation order, so in id order.
                match tracks.binary_search_by_key(&open.id, |t| t.id) {
                    Ok(index) => {
                        open.index = index;
                        true
                    }
                    Err(_) => false,
                }
            });
        }
    }

    /// The smallest id of a kept track (ids of forgotten tracks may be larger, never smaller).
    pub fn oldest_kept(&self) -> u64 {
        self.cameras
            .values()
            .filter_map(|c| c.tracks.front().map(|t| t.id))
            .min()
            .unwrap_or(self.next_id)
    }

    pub fn track_count(&self) -> usize {
        self.cameras.values().map(|c| c.tracks.len()).sum()
    }
}

/// A plate read as a track keeps it; `None` for a read with no text or a box that is not finite.
fn track_read(t: UnixMillis, p: &PlateRead, is_well_formed: fn(&str) -> bool) -> Option<TrackRead> {
    if p.text.is_empty() || !p.bbox.iter().all(|v| v.is_finite()) {
        return None;
    }
    let (x, y) = p.centre();
    Some(TrackRead {
        t,
        x,
        y,
        w: (p.bbox[2] - p.bbox[0]).abs(),
        h: (p.bbox[3] - p.bbox[1]).abs(),
        text: p.text.clone(),
        confidence: if p.confidence.is_finite() {
            p.confidence.clamp(0.0, 1.0)
        } else {
            0.0
        },
        well_formed: is_well_formed(&p.text),
        chars: char_mask(&p.text),
        smoothed: [f32::NAN; 2],
        zones: ZoneBits::default(),
    })
}

/// Every admissible (cost, read, track) pair of this frame's `reads` and the `joinable` tracks
/// into `pairs`: the track's last box near enough for the time that passed, and its recent
/// texts close enough to the read's. The cost grows with both distances.
fn admissible_pairs(
    config: &TrackerConfig,
    tracks: &VecDeque<Track>,
    joinable: &[OpenTrack],
    reads: &[TrackRead],
    pairs: &mut Vec<(f32, usize, usize)>,
) {
    pairs.clear();
    // Beyond the largest gate a track is out of reach whatever its gap (a little margin for
    // rounding: the exact test follows).
    let beyond = (config.max_gate * 1.001).powi(2);
    for (ri, read) in reads.iter().enumerate() {
        for last in joinable {
            let gap = read.t - last.t;
            if gap <= 0 || gap > config.max_gap_ms {
                continue;
            }
            let squared = (read.x - last.x).powi(2) + (read.y - last.y).powi(2);
            if squared > beyond {
                continue;
            }
            let mut gate = (config.base_gate + config.gate_per_second * gap as f32 / 1000.0)
                .min(config.max_gate);
            let distance = squared.sqrt();
            let ti = last.index;
            if distance > gate {
                // A car driving off moves further between two reads than the gate allows; its
                // plate, read exactly as the track reads it, still says which car it is.
                if !reads_exactly_as(&tracks[ti], read) {
                    continue;
                }
                gate = config.max_gate;
            }
            let text = text_distance_to_track(&tracks[ti], read, config.max_text_distance);
            if text > config.max_text_distance {
                continue;
            }
            pairs.push((distance / gate + text as f32 * 0.5, ri, ti));
        }
    }
}

/// Whether `read`'s text is the one text the track's latest reads all read: that car, surely
/// (two cars in one image never carry one plate; a misread is seldom the same twice in a row).
fn reads_exactly_as(track: &Track, read: &TrackRead) -> bool {
    let recent = &track.reads[track.reads.len().saturating_sub(RECENT_TEXTS)..];
    !recent.is_empty() && recent.iter().all(|r| r.text == read.text)
}

/// The least edit distance from `read`'s text to the track's latest texts, if it is at most
/// `max` (else something larger).
fn text_distance_to_track(track: &Track, read: &TrackRead, max: usize) -> usize {
    let mut text = usize::MAX;
    let recent = &track.reads[track.reads.len().saturating_sub(RECENT_TEXTS)..];
    for (k, r) in recent.iter().enumerate().rev() {
        let bound = max.min(text.saturating_sub(1));
        // Each character one text has and the other lacks is at least one edit.
        if (r.chars & !read.chars).count_ones() as usize > bound
            || (read.chars & !r.chars).count_ones() as usize > bound
        {
            continue;
        }
        // A standing car reads the same text again and again: compare each once.
        if recent[k + 1..].iter().any(|later| later.text == r.text) {
            continue;
        }
        if let Some(d) = text_distance_at_most(&r.text, &read.text, bound) {
            text = d;
        }
        if text == 0 {
            break;
        }
    }
    text
}

/// Joins reads to tracks cheapest pair first, each read and each track at most once: into
/// `joined`, per read its track (`None`: it starts a new one).
fn cheapest_first(
    pairs: &mut [(f32, usize, usize)],
    read_count: usize,
    joined: &mut Vec<Option<usize>>,
) {
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    joined.clear();
    joined.resize(read_count, None);
    // A frame holds a few reads: the tracks taken are few too.
    for &(_, ri, ti) in pairs.iter() {
        if joined[ri].is_none() && !joined.contains(&Some(ti)) {
            joined[ri] = Some(ti);
        }
    }
}

/// One bit per character the text holds (Fibonacci hash of the code point).
fn char_mask(text: &str) -> u64 {
    text.chars().fold(0, |mask, c| {
        mask | 1 << ((u64::from(c as u32).wrapping_mul(0x9E37_79B9_7F4A_7C15)) >> 58)
    })
}

#[cfg(test)]
mod tests {
    use forecourt_events::PlateRead;

    use super::*;

    #[test]
    fn median_of_five_is_the_middle_of_a_total_cmp_sort() {
        let pool = [
            0.0f32,
            -0.0,
            1.0,
            -1.0,
            0.5,
            f32::NAN,
            -f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            1e-40,
            0.25,
        ];
        let mut rng = seeded_rng::Rng::new(7);
        for _ in 0..20_000 {
            let values = [(); 5].map(|_| *rng.pick(&pool));
            let mut sorted = values;
            sorted.sort_by(f32::total_cmp);
            assert_eq!(
                median_of_five(values).to_bits(),
                sorted[2].to_bits(),
                "{values:?}"
            );
        }
    }

    fn frame(t: i64, plates: &[(&str, f32, f32)]) -> FramePlates {
        FramePlates {
            t,
            camera: "cam1".into(),
            plates: plates
                .iter()
                .map(|(text, x, y)| PlateRead {
                    text: text.to_string(),
                    confidence: 0.9,
                    bbox: [x - 0.05, y - 0.02, x + 0.05, y + 0.02],
                })
                .collect(),
        }
    }

    fn tracker() -> Tracker {
        Tracker::new(TrackerConfig::default(), |t| t.chars().count() == 7)
    }

    #[test]
    fn kept_smoothed_centres_match_those_worked_out_from_the_reads_up_to_any_time() {
        let mut tracker = tracker();
        for k in 0..12 {
            // Jitter of a standing car: a median over five reads is not any one read.
            let jitter = [0.0, 0.004, -0.003, 0.006, -0.001, 0.002][k % 6];
            tracker.observe(&frame(
                k as i64 * 250,
                &[("苏E05EV8", 0.3 + jitter, 0.7 - jitter)],
            ));
        }
        let track = tracker.tracks_between("cam1", 0, 10_000).next().unwrap();
        assert_eq!(track.reads.len(), 12);
        for hi in 1..=12usize {
            for i in 0..hi {
                let window = &track.reads[i.saturating_sub(2)..(i + 3).min(hi)];
                let [x, y] = median_centre(window);
                assert_eq!(
                    smoothed_at(&track.reads[..hi], i),
                    (x, y),
                    "read {i} of {hi}"
                );
            }
        }
        assert!(track.reads[9].smoothed[0].is_finite() && track.reads[10].smoothed[0].is_nan());
    }

    #[test]
    fn misreads_and_occlusions_stay_on_one_track() {
        let mut tracker = tracker();
        tracker.observe(&frame(0, &[("苏E05EV8", 0.3, 0.7)]));
        tracker.observe(&frame(500, &[("苏ED5EVB", 0.3, 0.7)]));
        tracker.observe(&frame(1000, &[]));
        // Two minutes hidden, then read again where it stood.
        tracker.observe(&frame(121_000, &[("苏E05EV8", 0.31, 0.71)]));
        assert_eq!(tracker.track_count(), 1);
        let track = tracker.tracks_between("cam1", 0, 200_000).next().unwrap();
        assert_eq!(track.reads.len(), 3);
    }

    #[test]
    fn a_frame_older_than_the_newest_joins_tracks_the_newest_had_left_behind() {
        let mut tracker = tracker();
        let gap = TrackerConfig::default().max_gap_ms;
        tracker.observe(&frame(0, &[("苏E05EV8", 0.3, 0.7)]));
        // Another car, after the first one's track is closed for frames this new.
        tracker.observe(&frame(gap + 10_000, &[("京A12345", 0.8, 0.2)]));
        // A late frame of the first camera: within the gap of the first read, it joins it.
        tracker.observe(&frame(5_000, &[("苏E05EV8", 0.3, 0.7)]));
        assert_eq!(tracker.track_count(), 2);
        let first = tracker.tracks_between("cam1", 0, 0).next().unwrap();
        assert_eq!(first.reads.len(), 2);
        // And in time order again, a read far past the gap starts a new track.
        tracker.observe(&frame(2 * gap + 20_000, &[("苏E05EV8", 0.3, 0.7)]));
        assert_eq!(tracker.track_count(), 3);
    }

    #[test]
    fn a_car_driving_off_fast_keeps_its_track_and_the_next_car_gets_its_own() {
        // Read 4 times a second, a car leaves its stop (y 0.8) up the image at 0.56 heights a
        // second: 0.14 between reads, more than a standing car's reads may jump. The next car,
        // its plate two edits from the first one's, comes up from the bottom 5 s later and
        // stops in the same place.
        let mut tracker = tracker();
        let mut t = 0;
        for _ in 0..8 {
            tracker.observe(&frame(t, &[("京A12345", 0.75, 0.8)]));
            t += 250;
        }
        for k in 1..=5 {
            tracker.observe(&frame(t, &[("京A12345", 0.75, 0.8 - 0.14 * k as f32)]));
            t += 250;
        }
        t += 5_000;
        for y in [0.98, 0.86, 0.8, 0.8, 0.8] {
            tracker.observe(&frame(t, &[("浙AD12345", 0.75, y)]));
            t += 250;
        }
        let tracks: Vec<_> = tracker.tracks_between("cam1", 0, t).collect();
        assert_eq!(tracks.len(), 2, "{tracks:#?}");
        let texts = |track: &Track| {
            let mut texts: Vec<String> = track.reads.iter().map(|r| r.text.clone()).collect();
            texts.dedup();
            texts
        };
        assert_eq!(texts(tracks[0]), ["京A12345"]);
        assert_eq!(tracks[0].reads.len(), 13);
        assert_eq!(texts(tracks[1]), ["浙AD12345"]);
        // A read as far off with any other text is not taken for that car.
        let mut other = super::tests::tracker();
        other.observe(&frame(0, &[("京A12345", 0.75, 0.8)]));
        other.observe(&frame(250, &[("京A12346", 0.75, 0.66)]));
        assert_eq!(other.track_count(), 2);
    }

    #[test]
    fn two_cars_side_by_side_get_two_tracks() {
        let mut tracker = tracker();
        for i in 0..10 {
            let y = 0.3 + 0.04 * i as f32; // the second car drives up next to the first
            tracker.observe(&frame(
                i * 500,
                &[("苏E05EV8", 0.3, 0.7), ("京A12345", 0.35, y)],
            ));
        }
        assert_eq!(tracker.track_count(), 2);
        for track in tracker.tracks_between("cam1", 0, 10_000) {
            assert_eq!(track.reads.len(), 10);
            let first = &track.reads[0].text;
            assert!(track.reads.iter().all(|r| &r.text == first));
        }
    }

    #[test]
    fn a_different_plate_in_the_same_place_is_a_new_car() {
        let mut tracker = tracker();
        tracker.observe(&frame(0, &[("苏E05EV8", 0.3, 0.7)]));
        tracker.observe(&frame(5_000, &[("京A12345", 0.3, 0.7)]));
        assert_eq!(tracker.track_count(), 2);
        tracker.forget_before(1_000);
        assert_eq!(tracker.track_count(), 1);
    }
}
