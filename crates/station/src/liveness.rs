//! Which main loops are alive. Each loop beats its heartbeat as it goes round; the systemd
//! watchdog is pinged only while every heartbeat is fresh, so a loop stuck in a blocking call
//! (a camera `read()`, a serial write, a wedged SQLite) gets the agent restarted by systemd.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use forecourt_events::{now_millis, Heartbeat, UnixMillis};
use tokio::sync::watch;
use tracing::{error, info};

#[derive(Default)]
pub struct Liveness {
    loops: Mutex<Vec<(String, Arc<Heartbeat>)>>,
}

impl Liveness {
    /// A heartbeat for the loop `name`, counted as beating now.
    pub fn register(&self, name: impl Into<String>) -> Arc<Heartbeat> {
        let hb = Arc::new(Heartbeat::new());
        self.watch(name, hb.clone());
        hb
    }

    /// Watches a heartbeat that a loop elsewhere (a dispenser driver) beats.
    pub fn watch(&self, name: impl Into<String>, heartbeat: Arc<Heartbeat>) {
        self.loops
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((name.into(), heartbeat));
    }

    /// Loops whose last beat is older than `max_age_ms` at `now`.
    pub fn stalled(&self, now: UnixMillis, max_age_ms: i64) -> Vec<String> {
        self.loops
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(_, hb)| now - hb.last() > max_age_ms)
            .map(|(name, _)| name.clone())
            .collect()
    }
}

/// Pings systemd's watchdog (`WATCHDOG=1`) at half its interval while no loop is stalled.
/// Does nothing when systemd did not ask for a watchdog.
pub async fn run_watchdog(
    liveness: Arc<Liveness>,
    stall_after: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let Some(usec) = watchdog_usec() else {
        return;
    };
    let period = Duration::from_micros(usec / 2).max(Duration::from_millis(50));
    info!(
        period_ms = period.as_millis() as u64,
        "systemd watchdog enabled"
    );
    let mut tick = tokio::time::interval(period);
    let mut reported = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let stalled = liveness.stalled(now_millis(), stall_after.as_millis() as i64);
        if stalled.is_empty() {
            let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
            reported = false;
        } else if !reported {
            error!(
                ?stalled,
                "main loop stalled: withholding watchdog pings so systemd restarts the agent"
            );
            reported = true;
        }
    }
}

/// systemd's watchdog interval for this process, as `sd_watchdog_enabled(3)` reads it: a missing
/// WATCHDOG_PID means the interval is ours (the sd-notify crate insists on the PID).
fn watchdog_usec() -> Option<u64> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    match std::env::var("WATCHDOG_PID") {
        Ok(pid) if pid.parse::<u32>().ok() != Some(std::process::id()) => None,
        _ => (usec > 0).then_some(usec),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loop_that_stops_beating_is_stalled() {
        let l = Liveness::default();
        let a = l.register("a");
        let _b = l.register("b");
        let now = now_millis();
        assert!(l.stalled(now, 1000).is_empty());
        a.beat();
        assert_eq!(
            l.stalled(now + 5000, 1000),
            vec!["a".to_string(), "b".to_string()]
        );
        a.set_last(now + 4500);
        assert_eq!(l.stalled(now + 5000, 1000), vec!["b".to_string()]);
    }
}
