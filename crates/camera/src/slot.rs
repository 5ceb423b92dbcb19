//! A one-frame mailbox: the producer overwrites, the consumer takes the newest.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use crate::Frame;

/// Counters for health reporting.
#[derive(Debug, Default)]
pub struct CameraStats {
    /// Frames converted and handed to the reader's slot.
    pub frames: AtomicU64,
    /// Frames decoded but dropped before conversion: over the camera's `max_fps`.
    pub not_converted: AtomicU64,
    /// Frames overwritten before anyone took them.
    pub dropped: AtomicU64,
    /// Frames taken (by the plate reader): the rate it reads this camera at.
    pub taken: AtomicU64,
    /// Of the frames taken, those the plate pipeline read.
    pub read: AtomicU64,
    /// Of the frames taken, those not read because nothing had moved in the camera's zones
    /// since its last read (and no car was seen standing there).
    pub still: AtomicU64,
    pub reconnects: AtomicU64,
    /// Failed attempts to open the source (missing file, unreachable stream, garbage data).
    pub open_failures: AtomicU64,
    /// Times a capture stopped making progress and was restarted: a stream read that hit its
    /// timeout (open, but nothing sent), or a capture thread the watchdog gave up on because it
    /// hung (in `read()` or `open()`).
    pub stalls: AtomicU64,
    /// Of those, how many are still blocked.
    pub abandoned_alive: AtomicU64,
    pub connected: AtomicBool,
    /// Capture time of the last frame grabbed (ms since the epoch), 0 before the first.
    pub last_frame_t: AtomicU64,
}

#[derive(Default)]
pub struct FrameSlot {
    latest: Mutex<Option<Frame>>,
    ready: Condvar,
    pub stats: CameraStats,
}

impl FrameSlot {
    pub fn put(&self, frame: Frame) {
        self.stats.frames.fetch_add(1, Ordering::Relaxed);
        self.stats
            .last_frame_t
            .store(frame.t.max(0) as u64, Ordering::Relaxed);
        let mut latest = self.latest.lock().unwrap_or_else(|p| p.into_inner());
        if latest.replace(frame).is_some() {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
        self.ready.notify_one();
    }

    /// Whether a frame waits to be taken.
    pub fn has_frame(&self) -> bool {
        self.latest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// Waits up to `timeout` for a frame and takes it.
    pub fn take(&self, timeout: Duration) -> Option<Frame> {
        let latest = self.latest.lock().unwrap_or_else(|p| p.into_inner());
        let (mut latest, _) = self
            .ready
            .wait_timeout_while(latest, timeout, |f| f.is_none())
            .unwrap_or_else(|p| p.into_inner());
        let frame = latest.take();
        if frame.is_some() {
            self.stats.taken.fetch_add(1, Ordering::Relaxed);
        }
        frame
    }
}
