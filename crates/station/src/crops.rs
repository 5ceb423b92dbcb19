//! The best picture of each plate read lately, per camera, for the console: the evidence a person
//! looks at beside a verdict. The plate reader (which has the frame anyway) offers each read;
//! a crop is cut and encoded only when it would be kept ([`PlateCrops::wants`]): a better read
//! of that plate on that camera, or a newer one once the kept one is [`REFRESH_MS`] old, so
//! a car that stands a minute costs a handful of encodings, not one per frame. Off unless asked
//! for ([`PlateCrops::enabled`]): a station without a console spends nothing on it.
//!
//! Pure bookkeeping: time is passed in, the pictures are bytes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use forecourt_events::{text_distance_at_most, UnixMillis};

/// A kept crop this old gives way to any newer read of its plate: the kept picture is at most
/// this much older than the plate's latest read, so a fill's verdict finds one of its own time.
pub const REFRESH_MS: i64 = 5 * 60_000;
/// Crops older than this are forgotten (a verdict comes within minutes of its fill).
pub const KEEP_MS: i64 = 30 * 60_000;
/// At most this many plates kept at once (a few KB each); beyond it the oldest go first.
pub const MAX_CROPS: usize = 4096;

/// One plate's picture: a JPEG of the plate and a little around it, as the camera saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct PlateCrop {
    pub camera: String,
    pub text: String,
    /// Capture time of the frame.
    pub t: UnixMillis,
    /// The recogniser's confidence in `text`.
    pub confidence: f32,
    pub jpeg: Arc<Vec<u8>>,
}

/// The kept crops by text, one per camera that read it (a plate is seen by a camera or two):
/// looked up by the read's text without building a key, on the reader's path for every read.
#[derive(Debug, Default)]
struct CropTable {
    by_text: HashMap<String, Vec<PlateCrop>>,
    /// Crops in `by_text`.
    count: usize,
}

impl CropTable {
    fn kept(&self, camera: &str, text: &str) -> Option<&PlateCrop> {
        self.by_text.get(text)?.iter().find(|c| c.camera == camera)
    }

    fn crops(&self) -> impl Iterator<Item = &PlateCrop> {
        self.by_text.values().flatten()
    }

    /// Keeps only the crops `keep` accepts.
    fn retain(&mut self, keep: impl Fn(&PlateCrop) -> bool) {
        self.by_text.retain(|_, crops| {
            crops.retain(&keep);
            !crops.is_empty()
        });
        self.count = self.by_text.values().map(Vec::len).sum();
    }
}

/// The kept crops, by camera and text, shared by the reader threads, the station and the
/// console.
#[derive(Debug, Clone, Default)]
pub struct PlateCrops {
    /// `None`: off.
    kept: Option<Arc<Mutex<CropTable>>>,
}

impl PlateCrops {
    /// Kept from now on.
    pub fn enabled() -> PlateCrops {
        PlateCrops {
            kept: Some(Arc::default()),
        }
    }

    fn table(&self) -> Option<MutexGuard<'_, CropTable>> {
        // Each entry is whole between statements: a panic elsewhere leaves nothing torn.
        self.kept
            .as_ref()
            .map(|m| m.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Whether a read of `text` on `camera` at `t` with `confidence` would be kept (so is worth
    /// cutting and encoding).
    pub fn wants(&self, camera: &str, text: &str, confidence: f32, t: UnixMillis) -> bool {
        if text.is_empty() {
            return false;
        }
        self.table().is_some_and(|table| {
            table
                .kept(camera, text)
                .is_none_or(|kept| replaces(kept, confidence, t))
        })
    }

    /// Keeps `crop` when it is wanted (see [`PlateCrops::wants`]).
    pub fn offer(&self, crop: PlateCrop) {
        let Some(mut table) = self.table() else {
            return;
        };
        if table
            .kept(&crop.camera, &crop.text)
            .is_some_and(|kept| !replaces(kept, crop.confidence, crop.t))
        {
            return;
        }
        let now = crop.t;
        let crops = table.by_text.entry(crop.text.clone()).or_default();
        match crops.iter_mut().find(|c| c.camera == crop.camera) {
            Some(kept) => *kept = crop,
            None => {
                crops.push(crop);
                table.count += 1;
            }
        }
        if table.count > MAX_CROPS {
            forget_old(&mut table, now);
        }
    }

    /// The best crop of `text` (or, when it was never read exactly so, of a text one misread
    /// from it) read on a camera `on_camera` accepts between `from` and `to`.
    pub fn best(
        &self,
        text: &str,
        on_camera: impl Fn(&str) -> bool,
        from: UnixMillis,
        to: UnixMillis,
    ) -> Option<PlateCrop> {
        let table = self.table()?;
        let in_reach = |c: &&PlateCrop| on_camera(&c.camera) && c.t >= from && c.t <= to;
        let best_of = |candidates: &mut dyn Iterator<Item = &PlateCrop>| {
            candidates
                .filter(in_reach)
                .max_by(|a, b| {
                    a.confidence
                        .total_cmp(&b.confidence)
                        .then(a.t.cmp(&b.t))
                        .then(b.camera.cmp(&a.camera))
                })
                .cloned()
        };
        best_of(&mut table.by_text.get(text).into_iter().flatten()).or_else(|| {
            best_of(
                &mut table
                    .by_text
                    .iter()
                    .filter(|(read, _)| text_distance_at_most(read, text, 1).is_some())
                    .flat_map(|(_, crops)| crops),
            )
        })
    }

    /// The newest crop of `text` on any camera read at `since` or later.
    pub fn latest(&self, text: &str, since: UnixMillis) -> Option<PlateCrop> {
        let table = self.table()?;
        table
            .by_text
            .get(text)?
            .iter()
            .filter(|c| c.t >= since)
            .max_by(|a, b| a.t.cmp(&b.t).then(b.camera.cmp(&a.camera)))
            .cloned()
    }
}

/// Whether a read at `t` with `confidence` replaces `kept`: a surer read, or any later one
/// once `kept` is [`REFRESH_MS`] old.
fn replaces(kept: &PlateCrop, confidence: f32, t: UnixMillis) -> bool {
    confidence > kept.confidence || t - kept.t >= REFRESH_MS
}

/// Forgets crops older than [`KEEP_MS`] before `now`, then the oldest until a quarter of the
/// room is free (so this runs once in many offers).
fn forget_old(table: &mut CropTable, now: UnixMillis) {
    table.retain(|c| now - c.t < KEEP_MS);
    let room = MAX_CROPS * 3 / 4;
    if table.count > room {
        let mut times: Vec<UnixMillis> = table.crops().map(|c| c.t).collect();
        times.sort_unstable();
        let cut = times[table.count - room];
        table.retain(|c| c.t >= cut);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crop(camera: &str, text: &str, t: UnixMillis, confidence: f32) -> PlateCrop {
        PlateCrop {
            camera: camera.into(),
            text: text.into(),
            t,
            confidence,
            jpeg: Arc::new(vec![0xff, 0xd8, t as u8]),
        }
    }

    #[test]
    fn off_by_default() {
        let off = PlateCrops::default();
        assert!(!off.wants("cam1", "苏E05EV8", 0.9, 0));
        off.offer(crop("cam1", "苏E05EV8", 0, 0.9));
        assert!(off.best("苏E05EV8", |_| true, 0, 10).is_none());
    }

    #[test]
    fn keeps_the_surest_read_until_it_is_old_then_a_newer_one() {
        let on = PlateCrops::enabled();
        assert!(on.wants("cam1", "苏E05EV8", 0.5, 1_000));
        assert!(!on.wants("cam1", "", 0.99, 1_000));
        on.offer(crop("cam1", "苏E05EV8", 1_000, 0.90));
        assert!(!on.wants("cam1", "苏E05EV8", 0.80, 2_000));
        assert!(on.wants("cam1", "苏E05EV8", 0.95, 2_000));
        on.offer(crop("cam1", "苏E05EV8", 2_000, 0.80)); // not kept
        on.offer(crop("cam1", "苏E05EV8", 3_000, 0.97));
        let best = on.best("苏E05EV8", |_| true, 0, 10_000).unwrap();
        assert_eq!((best.t, best.confidence), (3_000, 0.97));
        // Old now: a worse but newer read takes its place.
        let later = 3_000 + REFRESH_MS;
        assert!(!on.wants("cam1", "苏E05EV8", 0.6, later - 1));
        on.offer(crop("cam1", "苏E05EV8", later, 0.6));
        assert_eq!(on.best("苏E05EV8", |_| true, 0, i64::MAX).unwrap().t, later);
        // Another camera keeps its own.
        assert!(on.wants("cam2", "苏E05EV8", 0.1, later));
    }

    #[test]
    fn finds_the_best_crop_in_time_and_on_the_cameras_asked() {
        let on = PlateCrops::enabled();
        on.offer(crop("cam1", "苏E05EV8", 10_000, 0.90));
        on.offer(crop("cam2", "苏E05EV8", 11_000, 0.95));
        on.offer(crop("cam1", "京A12345", 12_000, 0.99));
        let cam1 = |c: &str| c == "cam1";
        assert_eq!(on.best("苏E05EV8", cam1, 0, 20_000).unwrap().camera, "cam1");
        assert_eq!(
            on.best("苏E05EV8", |_| true, 0, 20_000).unwrap().camera,
            "cam2"
        );
        assert!(on.best("苏E05EV8", |_| true, 11_001, 20_000).is_none());
        assert!(on.best("苏E05EV8", |_| true, 0, 9_999).is_none());
        // A voted text never read exactly so: the read one misread away.
        assert_eq!(
            on.best("京A12346", |_| true, 0, 20_000).unwrap().text,
            "京A12345"
        );
        assert!(on.best("京A12366", |_| true, 0, 20_000).is_none());
        assert_eq!(on.latest("苏E05EV8", 0).unwrap().camera, "cam2");
        assert!(on.latest("苏E05EV8", 11_001).is_none());
    }

    #[test]
    fn memory_is_bounded_oldest_first() {
        let on = PlateCrops::enabled();
        for i in 0..(MAX_CROPS as i64 + 10) {
            on.offer(crop("cam1", &format!("苏E{i:05}"), i, 0.9));
        }
        let kept = on.table().unwrap().count;
        assert!(kept <= MAX_CROPS, "{kept}");
        let newest = MAX_CROPS as i64 + 9;
        assert!(on.latest(&format!("苏E{newest:05}"), 0).is_some());
        assert!(on.latest("苏E00000", 0).is_none());
        // Age alone also forgets.
        on.offer(crop("cam1", "京A12345", newest + KEEP_MS, 0.9));
        for i in 0..MAX_CROPS as i64 {
            on.offer(crop(
                "cam2",
                &format!("京B{i:05}"),
                newest + KEEP_MS + i,
                0.9,
            ));
        }
        assert!(on.latest(&format!("苏E{newest:05}"), 0).is_none());
    }
}
