//! A sale source's link as the health report shows it: up or down since when, how often it was
//! opened or failed to open, what went over it, its errors and the last problem in words. The
//! driver counts; the agent reads a snapshot. A wrong serial path, a pump address nobody answers
//! or a controller that refuses the agent shows here, not only in the log.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

use crate::{now_millis, UnixMillis};

#[derive(Debug, Default)]
pub struct LinkStats {
    up: AtomicBool,
    /// When `up` last changed (0: never since start).
    since_t: AtomicI64,
    opens: AtomicU64,
    open_failures: AtomicU64,
    sent: AtomicU64,
    received: AtomicU64,
    errors: AtomicU64,
    last_problem: Mutex<Option<String>>,
}

/// What [`LinkStats`] held at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSnapshot {
    pub up: bool,
    pub since_t: Option<UnixMillis>,
    pub opens: u64,
    pub open_failures: u64,
    /// Frames or messages written (DART polls and commands; IFSF requests and heartbeats).
    pub sent: u64,
    /// Frames or messages read and understood.
    pub received: u64,
    /// Unanswered polls, frames or messages that could not be read.
    pub errors: u64,
    pub last_problem: Option<String>,
}

impl LinkStats {
    /// The line or connection opened.
    pub fn opened(&self) {
        self.opens.fetch_add(1, Ordering::Relaxed);
        self.set_up(true);
    }

    /// It could not be opened (`why`).
    pub fn open_failed(&self, why: &str) {
        self.open_failures.fetch_add(1, Ordering::Relaxed);
        self.set_up(false);
        self.problem(why);
    }

    /// It was lost (`why`).
    pub fn lost(&self, why: &str) {
        self.set_up(false);
        self.problem(why);
    }

    pub fn sent(&self) {
        self.sent.fetch_add(1, Ordering::Relaxed);
    }

    pub fn received(&self) {
        self.received.fetch_add(1, Ordering::Relaxed);
    }

    /// A poll unanswered, a frame or message not understood (`what`, kept as the last problem).
    pub fn error(&self, what: &str) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.problem(what);
    }

    pub fn snapshot(&self) -> LinkSnapshot {
        let since = self.since_t.load(Ordering::Relaxed);
        LinkSnapshot {
            up: self.up.load(Ordering::Relaxed),
            since_t: (since != 0).then_some(since),
            opens: self.opens.load(Ordering::Relaxed),
            open_failures: self.open_failures.load(Ordering::Relaxed),
            sent: self.sent.load(Ordering::Relaxed),
            received: self.received.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            last_problem: self
                .last_problem
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }

    fn set_up(&self, up: bool) {
        let was = self.up.swap(up, Ordering::Relaxed);
        if was != up || self.since_t.load(Ordering::Relaxed) == 0 {
            self.since_t.store(now_millis(), Ordering::Relaxed);
        }
    }

    fn problem(&self, why: &str) {
        let mut last = self.last_problem.lock().unwrap_or_else(|p| p.into_inner());
        if last.as_deref() != Some(why) {
            *last = Some(why.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_tells_its_state_counts_and_last_problem() {
        let stats = LinkStats::default();
        let fresh = stats.snapshot();
        assert_eq!(
            (fresh.up, fresh.since_t, fresh.last_problem),
            (false, None, None)
        );
        stats.open_failed("No such file or directory");
        let failed = stats.snapshot();
        assert!(!failed.up && failed.since_t.is_some());
        assert_eq!(failed.open_failures, 1);
        stats.opened();
        stats.sent();
        stats.sent();
        stats.received();
        stats.error("no answer from 0x51");
        let s = stats.snapshot();
        assert!(s.up);
        assert_eq!((s.opens, s.sent, s.received, s.errors), (1, 2, 1, 1));
        assert_eq!(s.last_problem.as_deref(), Some("no answer from 0x51"));
        stats.lost("read: broken pipe");
        assert!(!stats.snapshot().up);
    }
}
