//! What of a camera's frames the plate reader reads: only the part around its zones, and only
//! frames in which something there has changed since its last read, or in which a car may be
//! standing. Pure: thumbnails and times are passed in; the reader makes them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use matcher::Layout;

/// Room kept around a camera's zones, as a fraction of the frame on each side: the matcher also
/// weighs plates just outside a zone (a car stopped past its edge, the queue behind it).
pub const FOCUS_MARGIN: f32 = 0.12;

/// The part of the frame the reader reads, `[x0, y0, x1, y1]` in 0..1 of the frame.
pub type FocusRect = [f32; 4];

/// The bounding box of `polygons` (points in 0..1) grown by `margin` on each side and clipped
/// to the frame; `None` when there are no points (then the whole frame is read).
pub fn focus_rect<'a>(
    polygons: impl IntoIterator<Item = &'a [[f32; 2]]>,
    margin: f32,
) -> Option<FocusRect> {
    let mut rect: Option<FocusRect> = None;
    for p in polygons.into_iter().flatten() {
        if !(p[0].is_finite() && p[1].is_finite()) {
            continue;
        }
        let r = rect.get_or_insert([p[0], p[1], p[0], p[1]]);
        *r = [
            r[0].min(p[0]),
            r[1].min(p[1]),
            r[2].max(p[0]),
            r[3].max(p[1]),
        ];
    }
    let [x0, y0, x1, y1] = rect?;
    Some([
        (x0 - margin).clamp(0.0, 1.0),
        (y0 - margin).clamp(0.0, 1.0),
        (x1 + margin).clamp(0.0, 1.0),
        (y1 + margin).clamp(0.0, 1.0),
    ])
}

/// `rect` in whole pixels of a `width` x `height` frame: (x, y, w, h), at least 1x1 and inside.
pub fn pixel_rect(rect: FocusRect, width: i32, height: i32) -> (i32, i32, i32, i32) {
    let (w, h) = (width.max(1) as f32, height.max(1) as f32);
    let x0 = ((rect[0] * w).floor() as i32).clamp(0, width.max(1) - 1);
    let y0 = ((rect[1] * h).floor() as i32).clamp(0, height.max(1) - 1);
    let x1 = ((rect[2] * w).ceil() as i32).clamp(x0 + 1, width.max(1));
    let y1 = ((rect[3] * h).ceil() as i32).clamp(y0 + 1, height.max(1));
    (x0, y0, x1 - x0, y1 - y0)
}

/// Each camera's focus, shared by the reader (which reads it for every frame) and the station
/// (which sets it when the zones are drawn anew).
#[derive(Clone, Default)]
pub struct FocusAreas {
    by_camera: Arc<Mutex<BTreeMap<String, FocusRect>>>,
}

impl FocusAreas {
    /// The focus of each camera that has zones in `layout`.
    pub fn from_layout(layout: &Layout) -> Self {
        let areas = FocusAreas::default();
        areas.set_layout(layout);
        areas
    }

    /// Replaces every camera's focus with the one `layout`'s zones give.
    pub fn set_layout(&self, layout: &Layout) {
        let mut polygons: BTreeMap<&str, Vec<&[[f32; 2]]>> = BTreeMap::new();
        for fp in &layout.fps {
            for zone in &fp.zones {
                polygons
                    .entry(zone.camera.as_str())
                    .or_default()
                    .push(&zone.polygon);
            }
        }
        let fresh: BTreeMap<String, FocusRect> = polygons
            .into_iter()
            .filter_map(|(camera, p)| Some((camera.to_string(), focus_rect(p, FOCUS_MARGIN)?)))
            .collect();
        *self.by_camera.lock().unwrap_or_else(|p| p.into_inner()) = fresh;
    }

    /// `camera`'s focus; `None`: read the whole frame (a camera with no zones).
    pub fn of(&self, camera: &str) -> Option<FocusRect> {
        self.by_camera
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(camera)
            .copied()
    }
}

/// Side of the grey thumbnail of the focus a motion check compares, in pixels.
pub const THUMB_WIDTH: i32 = 64;
pub const THUMB_HEIGHT: i32 = 36;

/// When the reader must read a camera's frame, or may skip it.
#[derive(Debug, Clone)]
pub struct MotionGateConfig {
    /// A thumbnail pixel changed by more than this (grey levels) has changed.
    pub pixel_delta: u8,
    /// Read when at least this fraction of the thumbnail's pixels changed since the last read.
    pub changed_fraction: f32,
    /// Read at least this often whatever the thumbnail says (lighting drifts slowly, a car may
    /// stand with its plate hidden).
    pub refresh: Duration,
}

impl Default for MotionGateConfig {
    fn default() -> Self {
        MotionGateConfig {
            // Above sensor noise, which the area-averaged thumbnail mostly removes.
            pixel_delta: 16,
            // Nine of the 2,304 thumbnail pixels. A car entering covers far more: a 420 px car
            // in a 1920 px focus is a few percent of it even while only its bonnet is inside.
            changed_fraction: 0.0035,
            refresh: Duration::from_secs(1),
        }
    }
}

/// Why a frame is read in full (its whole focus).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadWhy {
    /// The camera's first frame, or one of another size than the last read.
    First,
    /// Something changed in the focus since the last read.
    Motion,
    /// The last full read is older than the refresh period.
    Refresh,
}

/// What to read of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// The whole focus.
    Read(ReadWhy),
    /// Nothing moved since the last read, which found plates: only around those plates (the
    /// cars standing there), without a pass of the detector over the whole focus.
    NearPlates,
    /// Nothing moved since the last read, which found no plate, and the last full read is
    /// recent: nothing.
    Still,
}

/// One camera's motion gate. A frame is read in full when its thumbnail differs from the last
/// read frame's (so a car that drives in is read as soon as it has moved into the focus) or
/// when the last full read is older than the refresh period; otherwise around the plates the
/// last read found, or not at all when it found none.
#[derive(Debug, Clone, Default)]
pub struct MotionGate {
    config: MotionGateConfig,
    /// The thumbnail of the last frame read, in full or near its plates.
    last_read: Option<Vec<u8>>,
    last_full_read: Duration,
    plate_seen: bool,
}

impl MotionGate {
    pub fn new(config: MotionGateConfig) -> Self {
        MotionGate {
            config,
            ..MotionGate::default()
        }
    }

    /// What to read of the frame whose grey thumbnail is `thumb` (row-major, any fixed size),
    /// seen at `now`.
    pub fn check(&self, thumb: &[u8], now: Duration) -> Gate {
        let Some(last) = &self.last_read else {
            return Gate::Read(ReadWhy::First);
        };
        if last.len() != thumb.len() {
            return Gate::Read(ReadWhy::First);
        }
        if changed_fraction(last, thumb, self.config.pixel_delta) >= self.config.changed_fraction {
            return Gate::Read(ReadWhy::Motion);
        }
        if now.saturating_sub(self.last_full_read) >= self.config.refresh {
            return Gate::Read(ReadWhy::Refresh);
        }
        if self.plate_seen {
            Gate::NearPlates
        } else {
            Gate::Still
        }
    }

    /// The frame with `thumb` was read at `now` (`full`: its whole focus, else near the last
    /// plates); `plate_seen`: a plate was found.
    pub fn read(&mut self, thumb: Vec<u8>, now: Duration, full: bool, plate_seen: bool) {
        self.last_read = Some(thumb);
        if full {
            self.last_full_read = now;
        }
        self.plate_seen = plate_seen;
    }
}

/// The fraction of pixels that differ by more than `delta`.
fn changed_fraction(a: &[u8], b: &[u8], delta: u8) -> f32 {
    if a.is_empty() {
        return 0.0;
    }
    let changed = a
        .iter()
        .zip(b)
        .filter(|(x, y)| x.abs_diff(**y) > delta)
        .count();
    changed as f32 / a.len() as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    const N: usize = (THUMB_WIDTH * THUMB_HEIGHT) as usize;

    fn s(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    /// A grey thumbnail with a `side` x `side` bright square at (x, y).
    fn thumb_with_square(x: usize, y: usize, side: usize) -> Vec<u8> {
        let mut t = vec![90u8; N];
        for row in y..(y + side).min(THUMB_HEIGHT as usize) {
            for col in x..(x + side).min(THUMB_WIDTH as usize) {
                t[row * THUMB_WIDTH as usize + col] = 200;
            }
        }
        t
    }

    #[test]
    fn focus_is_the_zones_box_with_a_margin_clipped_to_the_frame() {
        let a: &[[f32; 2]] = &[[0.2, 0.3], [0.4, 0.3], [0.4, 0.9]];
        let b: &[[f32; 2]] = &[[0.6, 0.5], [0.95, 0.5], [0.95, 0.6]];
        let r = focus_rect([a, b], 0.1).unwrap();
        let want = [0.1, 0.2, 1.0, 1.0];
        for (got, want) in r.iter().zip(want) {
            assert!((got - want).abs() < 1e-6, "{r:?}");
        }
        assert_eq!(focus_rect(std::iter::empty::<&[[f32; 2]]>(), 0.1), None);
        assert_eq!(pixel_rect(r, 1920, 1080), (192, 216, 1728, 864));
        // Degenerate and out-of-range rectangles still give at least one pixel inside.
        assert_eq!(pixel_rect([1.0, 1.0, 1.0, 1.0], 100, 50), (99, 49, 1, 1));
        assert_eq!(pixel_rect([0.5, 0.5, 0.2, 0.2], 100, 50), (50, 25, 1, 1));
    }

    #[test]
    fn an_empty_still_focus_is_skipped_until_the_refresh() {
        let gate_config = MotionGateConfig::default();
        let mut gate = MotionGate::new(gate_config.clone());
        let empty = vec![90u8; N];
        assert_eq!(gate.check(&empty, s(0)), Gate::Read(ReadWhy::First));
        gate.read(empty.clone(), s(0), true, false);
        assert_eq!(gate.check(&empty, s(250)), Gate::Still);
        // Noise below the pixel threshold everywhere is no motion.
        let noisy: Vec<u8> = empty
            .iter()
            .enumerate()
            .map(|(i, v)| v + (i % 9) as u8)
            .collect();
        assert_eq!(gate.check(&noisy, s(500)), Gate::Still);
        assert_eq!(
            gate.check(&empty, gate_config.refresh),
            Gate::Read(ReadWhy::Refresh)
        );
    }

    #[test]
    fn a_car_moving_into_the_focus_is_read_at_once() {
        let mut gate = MotionGate::new(MotionGateConfig::default());
        gate.read(vec![90u8; N], s(0), true, false);
        // A car's first few thumbnail pixels at the edge: 3x3 of 2,304 is 0.4 %.
        assert_eq!(
            gate.check(&thumb_with_square(0, 33, 3), s(100)),
            Gate::Read(ReadWhy::Motion)
        );
        // Two pixels are not enough (a speck of noise that survived the averaging).
        assert_eq!(
            gate.check(&thumb_with_square(0, 34, 2), s(100)),
            Gate::Still
        );
    }

    #[test]
    fn a_standing_car_is_read_near_its_plate_and_in_full_each_refresh() {
        let mut gate = MotionGate::new(MotionGateConfig::default());
        let car = thumb_with_square(20, 10, 15);
        gate.read(car.clone(), s(0), true, true);
        assert_eq!(gate.check(&car, s(200)), Gate::NearPlates);
        gate.read(car.clone(), s(200), false, true);
        assert_eq!(gate.check(&car, s(400)), Gate::NearPlates);
        // The refresh counts from the last full read, not from the reads near the plate.
        assert_eq!(gate.check(&car, s(1000)), Gate::Read(ReadWhy::Refresh));
        // Another car moving in is read in full at once.
        let two = thumb_with_square(45, 20, 8)
            .iter()
            .zip(&car)
            .map(|(a, b)| *a.max(b))
            .collect::<Vec<u8>>();
        assert_eq!(gate.check(&two, s(600)), Gate::Read(ReadWhy::Motion));
        // Once its plate is no longer found (it left, or is hidden) nothing is read until
        // something moves or the refresh.
        gate.read(car.clone(), s(600), false, false);
        assert_eq!(gate.check(&car, s(800)), Gate::Still);
    }

    #[test]
    fn a_thumbnail_of_another_size_is_read() {
        let mut gate = MotionGate::new(MotionGateConfig::default());
        gate.read(vec![0; 10], s(0), true, false);
        assert_eq!(gate.check(&[0; 12], s(1)), Gate::Read(ReadWhy::First));
    }
}
