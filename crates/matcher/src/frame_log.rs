//! When each camera delivered frames. A frame with no plate read says "nothing readable was
//! there"; no frame at all says nothing. Telling the two apart keeps a camera outage from looking
//! like a car that left, and a car that left from looking like an outage.

use std::collections::{BTreeMap, VecDeque};

use forecourt_events::UnixMillis;

#[derive(Debug, Default)]
struct CameraFrames {
    last: Option<UnixMillis>,
    /// Spells without frames, in time order, each longer than the log's `dark_after_ms`.
    dark: VecDeque<(UnixMillis, UnixMillis)>,
}

#[derive(Debug)]
pub struct FrameLog {
    dark_after_ms: i64,
    cameras: BTreeMap<String, CameraFrames>,
}

impl FrameLog {
    /// A gap between two frames of one camera longer than `dark_after_ms` is an outage.
    pub fn new(dark_after_ms: i64) -> Self {
        FrameLog {
            dark_after_ms: dark_after_ms.max(1),
            cameras: BTreeMap::new(),
        }
    }

    pub fn observe(&mut self, camera: &str, t: UnixMillis) {
        let frames = match self.cameras.get_mut(camera) {
            Some(frames) => frames,
            None => self.cameras.entry(camera.to_string()).or_default(),
        };
        if let Some(last) = frames.last {
            if t - last > self.dark_after_ms {
                frames.dark.push_back((last, t));
            }
        }
        frames.last = Some(frames.last.map_or(t, |l| l.max(t)));
    }

    /// How long `camera` was dark within `from..to`, as known at `as_of` (a camera silent since its
    /// last frame is dark up to `as_of`; one never seen is dark throughout).
    pub fn dark_ms(
        &self,
        camera: &str,
        from: UnixMillis,
        to: UnixMillis,
        as_of: UnixMillis,
    ) -> i64 {
        self.dark_spells(camera, from, to, as_of)
            .map(|(a, b)| b - a)
            .sum()
    }

    /// The dark spells of `camera` clipped to `from..to`, as known at `as_of`.
    pub fn dark_spells<'a>(
        &'a self,
        camera: &str,
        from: UnixMillis,
        to: UnixMillis,
        as_of: UnixMillis,
    ) -> impl Iterator<Item = (UnixMillis, UnixMillis)> + 'a {
        let frames = self.cameras.get(camera);
        let recorded = frames.into_iter().flat_map(|f| f.dark.iter().copied());
        // Silent since its last frame (up to `as_of`), or never seen at all.
        let trailing = match frames.and_then(|f| f.last) {
            Some(last) if as_of - last > self.dark_after_ms => Some((last, as_of)),
            Some(_) => None,
            None => Some((UnixMillis::MIN, as_of)),
        };
        recorded
            .chain(trailing)
            .map(move |(a, b)| (a.max(from), b.min(to)))
            .filter(|(a, b)| a < b)
    }

    /// Forgets outages that ended before `horizon`.
    pub fn forget_before(&mut self, horizon: UnixMillis) {
        for frames in self.cameras.values_mut() {
            while frames.dark.front().is_some_and(|&(_, end)| end < horizon) {
                frames.dark.pop_front();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_longer_than_the_limit_are_dark() {
        let mut log = FrameLog::new(1_000);
        for t in [0, 500, 1_000, 6_000, 6_500] {
            log.observe("cam1", t);
        }
        assert_eq!(log.dark_ms("cam1", 0, 6_500, 6_500), 5_000);
        assert_eq!(log.dark_ms("cam1", 2_000, 3_000, 6_500), 1_000);
        // Silent since 6,500: dark up to as_of.
        assert_eq!(log.dark_ms("cam1", 6_500, 10_000, 10_000), 3_500);
        assert_eq!(log.dark_ms("cam1", 6_500, 7_000, 7_000), 0);
        assert_eq!(log.dark_ms("cam2", 0, 100, 100), 100);
        log.forget_before(7_000);
        assert_eq!(log.dark_ms("cam1", 0, 6_500, 6_500), 0);
    }
}
