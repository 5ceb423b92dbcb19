//! When a video file's frames are shown: a file plays as if it were a live camera, each frame at
//! its own time, and is stamped with that time rather than when it was decoded (a decoder that
//! falls behind on a busy machine must not stamp old pictures as new: a car that left would be
//! seen at the pump). A looping file (the demo) plays in step with the wall clock, as if it had
//! been looping since the Unix epoch, so that a pump simulator whose schedule loops on the clock
//! too (`loop_on_clock`) agrees with it whichever of the two started first. Pure: time passed in.

use forecourt_events::UnixMillis;

/// The wall-clock time of each frame of one pass through a file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FileClock {
    /// Wall-clock time of frame 0 of this pass, Unix ms.
    start_ms: f64,
    period_ms: f64,
}

impl FileClock {
    /// A pass of a file of `fps` frames a second that starts now with its first frame.
    pub fn from_now(now: UnixMillis, fps: f64) -> FileClock {
        FileClock {
            start_ms: now as f64,
            period_ms: 1000.0 / fps,
        }
    }

    /// A pass of a looping file of `frames` frames, in step with the clock: the pass holding
    /// `now`, and the frame to start it at.
    pub fn looping(now: UnixMillis, fps: f64, frames: u64) -> (FileClock, u64) {
        let period_ms = 1000.0 / fps;
        // Not `period_ms * frames`: 900 frames at 15 fps must be 60 s exactly.
        let pass_ms = frames as f64 * 1000.0 / fps;
        let into = (now as f64).rem_euclid(pass_ms);
        let frame = ((into / period_ms) as u64).min(frames.saturating_sub(1));
        let clock = FileClock {
            start_ms: now as f64 - into,
            period_ms,
        };
        (clock, frame)
    }

    /// When frame `k` of this pass is shown, Unix ms.
    pub fn frame_t(&self, k: u64) -> UnixMillis {
        (self.start_ms + self.period_ms * k as f64).round() as UnixMillis
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_played_once_starts_now() {
        let clock = FileClock::from_now(1_000, 10.0);
        assert_eq!(clock.frame_t(0), 1_000);
        assert_eq!(clock.frame_t(15), 2_500);
    }

    #[test]
    fn a_looping_file_is_where_the_clock_says_whenever_it_opens() {
        // 600 frames at 10 fps: a 60 s loop, passes starting on whole minutes since the epoch.
        let minute = 1_800_000_000_000 / 60_000 * 60_000;
        let (clock, frame) = FileClock::looping(minute + 37_050, 10.0, 600);
        assert_eq!(frame, 370);
        assert_eq!(clock.frame_t(0), minute);
        assert_eq!(clock.frame_t(frame), minute + 37_000);
        // Opened again a pass later (the file ended): the same place in the loop.
        let (later, again) = FileClock::looping(minute + 60_000 + 37_050, 10.0, 600);
        assert_eq!(again, frame);
        assert_eq!(later.frame_t(0), minute + 60_000);
        // At the very end of a pass: its last frame, never one past it.
        let (_, last) = FileClock::looping(minute + 59_999, 10.0, 600);
        assert_eq!(last, 599);
    }

    #[test]
    fn a_fractional_period_does_not_drift() {
        // 15 fps: 66.67 ms a frame; 900 frames are exactly 60 s.
        let (clock, frame) = FileClock::looping(60_000 * 1000, 15.0, 900);
        assert_eq!(frame, 0);
        assert_eq!(clock.frame_t(900), 60_000 * 1000 + 60_000);
    }
}
