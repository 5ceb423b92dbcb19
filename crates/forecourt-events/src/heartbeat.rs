//! A loop's sign of life: the loop beats it as it goes round; a supervisor (the agent's systemd
//! watchdog) reads how long ago that was. Shared by reference between the two.

use std::sync::atomic::{AtomicI64, Ordering};

use crate::{now_millis, UnixMillis};

#[derive(Debug)]
pub struct Heartbeat(AtomicI64);

impl Heartbeat {
    /// A heartbeat that counts as having beaten now.
    pub fn new() -> Heartbeat {
        Heartbeat(AtomicI64::new(now_millis()))
    }

    pub fn beat(&self) {
        self.0.store(now_millis(), Ordering::Relaxed);
    }

    /// When it last beat.
    pub fn last(&self) -> UnixMillis {
        self.0.load(Ordering::Relaxed)
    }

    /// Sets the last beat (tests of supervisors).
    pub fn set_last(&self, t: UnixMillis) {
        self.0.store(t, Ordering::Relaxed);
    }
}

impl Default for Heartbeat {
    fn default() -> Self {
        Heartbeat::new()
    }
}
