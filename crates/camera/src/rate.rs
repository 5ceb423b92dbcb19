//! A frame-rate cap as a schedule: the first frame at or after each due time is taken, and the
//! next due time is one period after the previous one (not after the take), so a 10 fps stream
//! capped at 4 fps gives 4 frames a second, not the 3.3 that "at least a period since the last
//! take" would. Pure: time is passed in.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct RateCap {
    period: Duration,
    /// When the next frame may be taken, as time since the cap's own origin; `None` before the
    /// first take.
    next_due: Option<Duration>,
}

impl RateCap {
    /// At most one frame per `period` on average (a zero period takes every frame).
    pub fn new(period: Duration) -> Self {
        RateCap {
            period,
            next_due: None,
        }
    }

    /// Whether a frame at `now` may be taken.
    pub fn is_due(&self, now: Duration) -> bool {
        self.next_due.is_none_or(|due| now >= due)
    }

    /// How long past its due time the cap is at `now` (zero when not due): how long this source
    /// has waited for its turn.
    pub fn overdue(&self, now: Duration) -> Duration {
        match self.next_due {
            None => Duration::MAX,
            Some(due) => now.saturating_sub(due),
        }
    }

    /// A frame was taken at `now`. After a pause (no frame for longer than a period) the
    /// schedule restarts from `now` instead of allowing a burst to catch up.
    pub fn took(&mut self, now: Duration) {
        let next = match self.next_due {
            Some(due) if now < due + self.period => due + self.period,
            _ => now + self.period,
        };
        self.next_due = Some(next);
    }

    /// Takes a frame at `now` if one is due; whether it did.
    pub fn take_if_due(&mut self, now: Duration) -> bool {
        let due = self.is_due(now);
        if due {
            self.took(now);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Frames every `frame_ms` for `seconds`; how many the cap takes.
    fn taken(frame_ms: u64, cap_ms: u64, seconds: u64) -> usize {
        let mut cap = RateCap::new(ms(cap_ms));
        (0..seconds * 1000 / frame_ms)
            .filter(|i| cap.take_if_due(ms(i * frame_ms)))
            .count()
    }

    #[test]
    fn a_ten_fps_stream_capped_at_four_gives_four_a_second() {
        assert_eq!(taken(100, 250, 10), 40);
        // 15 fps (66.67 ms frames, here 67) at 4: 40 in 10 s, not 3.75 a second.
        assert_eq!(taken(67, 250, 10), 40);
        // A cap above the stream's rate takes every frame.
        assert_eq!(taken(100, 50, 10), 100);
        assert_eq!(taken(100, 0, 10), 100);
    }

    #[test]
    fn a_pause_does_not_allow_a_burst() {
        let mut cap = RateCap::new(ms(250));
        assert!(cap.take_if_due(ms(0)));
        // Nothing for 5 s, then frames every 10 ms: one now, the next a period later.
        assert!(cap.take_if_due(ms(5000)));
        assert!(!cap.take_if_due(ms(5010)));
        assert!(!cap.take_if_due(ms(5240)));
        assert!(cap.take_if_due(ms(5250)));
    }

    #[test]
    fn overdue_says_how_long_a_source_has_waited() {
        let mut cap = RateCap::new(ms(250));
        assert_eq!(cap.overdue(ms(0)), Duration::MAX);
        cap.took(ms(0));
        assert_eq!(cap.overdue(ms(100)), Duration::ZERO);
        assert_eq!(cap.overdue(ms(400)), ms(150));
    }
}
