//! Line and pump faults the simulator can inject, so masters and listeners are tested against a
//! bad bus: bytes dropped or corrupted (both directions), answer frames dropped or delayed, the
//! whole line going silent for a while, pumps restarting mid-fill. Pure and seeded: the same
//! seed gives the same faults for the same traffic.

use std::time::Duration;

use crate::schedule::Rng;

/// Faults to inject on the line. All rates default to 0 (no faults).
#[derive(Debug, Clone, Default)]
pub struct FaultOptions {
    /// Probability (0..1) to drop each outgoing frame.
    pub drop_rate: f64,
    /// Probability (0..1) per byte, each direction, to flip some of its bits.
    pub corrupt_rate: f64,
    /// Probability (0..1) per byte, each direction, to lose it.
    pub byte_drop_rate: f64,
    /// Delay added before an answer is written.
    pub delay_ms: u64,
    /// Probability (0..1) that an answer gets `delay_ms`; 0 with `delay_ms` > 0 means always.
    pub delay_rate: f64,
    /// Expected silent periods per minute: the line answers nothing for `silence_s`.
    pub silences_per_min: f64,
    pub silence_s: f64,
    /// Expected restarts per minute of a filling pump: TX# back to 0, the fill lost.
    pub restarts_per_min: f64,
    /// Probability (0..1) per sale that the pump sends the final filling information (DC2) in
    /// a later block than the completion (DC1 5), as some pumps order them.
    pub late_final_dc2_rate: f64,
    /// Probability (0..1), each time a block carrying a sale's final filling information (a DC2
    /// sent after the flow stopped) goes out, that it is corrupted on the line; the pump sends
    /// it again when the master polls, as it was not acknowledged.
    pub corrupt_final_dc2_rate: f64,
    /// A pump the master has not addressed for this many seconds drops the data it queued for
    /// it (status changes, filling info, nozzle): after a dead line, or a master that died
    /// after taking a block it never acted on, the master learns only what RETURN STATUS and
    /// RETURN FILLING INFO answer. None: the pump keeps its backlog until polled.
    pub forget_unpolled_s: Option<f64>,
    /// No faults after this time (seconds since start), so tests can settle.
    pub until_s: Option<f64>,
}

impl FaultOptions {
    pub fn validate(&self) -> Result<(), String> {
        for (name, p) in [
            ("drop_rate", self.drop_rate),
            ("corrupt_rate", self.corrupt_rate),
            ("byte_drop_rate", self.byte_drop_rate),
            ("delay_rate", self.delay_rate),
            ("late_final_dc2_rate", self.late_final_dc2_rate),
            ("corrupt_final_dc2_rate", self.corrupt_final_dc2_rate),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("{name} must be within 0..1, got {p}"));
            }
        }
        for (name, v) in [
            ("silences_per_min", self.silences_per_min),
            ("silence_s", self.silence_s),
            ("restarts_per_min", self.restarts_per_min),
            ("forget_unpolled_s", self.forget_unpolled_s.unwrap_or(0.0)),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(format!("{name} must be >= 0, got {v}"));
            }
        }
        Ok(())
    }
}

/// Counts of what was injected, for logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultStats {
    pub frames_dropped: u64,
    pub bytes_corrupted: u64,
    pub bytes_dropped: u64,
    pub answers_delayed: u64,
    pub silences: u64,
    pub restarts: u64,
    pub final_dc2_corrupted: u64,
}

#[derive(Debug, Clone)]
pub struct FaultInjector {
    opts: FaultOptions,
    rng: Rng,
    silent_until_s: f64,
    last_tick_s: Option<f64>,
    stats: FaultStats,
}

impl FaultInjector {
    pub fn new(opts: FaultOptions, seed: u64) -> Self {
        FaultInjector {
            opts,
            rng: Rng::new(seed ^ 0x9E37_79B9_7F4A_7C15),
            silent_until_s: f64::NEG_INFINITY,
            last_tick_s: None,
            stats: FaultStats::default(),
        }
    }

    pub fn stats(&self) -> FaultStats {
        self.stats
    }

    fn active(&self, now_s: f64) -> bool {
        self.opts.until_s.is_none_or(|u| now_s < u)
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.rng.unit() < p
    }

    /// Advances time: may start a silent period. Returns the seconds elapsed since the last
    /// tick, for per-minute rates of other faults.
    pub fn tick(&mut self, now_s: f64) -> f64 {
        let dt = self.last_tick_s.map_or(0.0, |t| (now_s - t).max(0.0));
        self.last_tick_s = Some(now_s);
        if self.active(now_s)
            && now_s >= self.silent_until_s
            && self.chance(self.opts.silences_per_min * dt / 60.0)
        {
            self.silent_until_s = now_s + self.opts.silence_s;
            self.stats.silences += 1;
            tracing::info!(
                until_s = self.silent_until_s,
                "fault injection: line silent"
            );
        }
        dt
    }

    /// Whether the next sale's final DC2 comes in a later block than its completion.
    pub fn late_final_dc2(&mut self, now_s: f64) -> bool {
        self.active(now_s) && self.chance(self.opts.late_final_dc2_rate)
    }

    /// Whether to corrupt this block, which carries a sale's final filling information.
    pub fn corrupt_final_dc2(&mut self, now_s: f64) -> bool {
        let hit = self.active(now_s) && self.chance(self.opts.corrupt_final_dc2_rate);
        if hit {
            self.stats.final_dc2_corrupted += 1;
        }
        hit
    }

    /// The line answers nothing now.
    pub fn silent(&self, now_s: f64) -> bool {
        now_s < self.silent_until_s
    }

    /// Whether a filling pump restarts now, given `dt` seconds since the last tick.
    pub fn restart_now(&mut self, now_s: f64, dt: f64) -> bool {
        let hit = self.active(now_s) && self.chance(self.opts.restarts_per_min * dt / 60.0);
        if hit {
            self.stats.restarts += 1;
        }
        hit
    }

    /// Whether to drop one whole answer frame.
    pub fn drop_frame(&mut self, now_s: f64) -> bool {
        let hit = self.active(now_s) && self.chance(self.opts.drop_rate);
        if hit {
            self.stats.frames_dropped += 1;
        }
        hit
    }

    /// Bytes as they arrive after crossing a noisy line: some lost, some corrupted.
    pub fn mangle(&mut self, bytes: &[u8], now_s: f64) -> Vec<u8> {
        if !self.active(now_s) || (self.opts.corrupt_rate <= 0.0 && self.opts.byte_drop_rate <= 0.0)
        {
            return bytes.to_vec();
        }
        let mut out = Vec::with_capacity(bytes.len());
        for &b in bytes {
            if self.chance(self.opts.byte_drop_rate) {
                self.stats.bytes_dropped += 1;
                continue;
            }
            if self.chance(self.opts.corrupt_rate) {
                self.stats.bytes_corrupted += 1;
                let flip = (self.rng.next_u64() as u8).max(1);
                out.push(b ^ flip);
            } else {
                out.push(b);
            }
        }
        out
    }

    /// How long to hold an answer back, if at all.
    pub fn answer_delay(&mut self, now_s: f64) -> Option<Duration> {
        if self.opts.delay_ms == 0 || !self.active(now_s) {
            return None;
        }
        let rate = if self.opts.delay_rate > 0.0 {
            self.opts.delay_rate
        } else {
            1.0
        };
        if self.chance(rate) {
            self.stats.answers_delayed += 1;
            Some(Duration::from_millis(self.opts.delay_ms))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_faults_by_default() {
        let mut f = FaultInjector::new(FaultOptions::default(), 1);
        let bytes: Vec<u8> = (0..=255).collect();
        for k in 0..100 {
            let now = k as f64;
            f.tick(now);
            assert!(!f.silent(now));
            assert_eq!(f.mangle(&bytes, now), bytes);
            assert!(!f.drop_frame(now));
            assert!(!f.restart_now(now, 1.0));
            assert_eq!(f.answer_delay(now), None);
        }
        assert_eq!(f.stats(), FaultStats::default());
    }

    #[test]
    fn byte_rates_are_roughly_honoured_and_stop_at_until() {
        let opts = FaultOptions {
            corrupt_rate: 0.01,
            byte_drop_rate: 0.01,
            until_s: Some(10.0),
            ..FaultOptions::default()
        };
        let mut f = FaultInjector::new(opts, 42);
        let bytes = vec![0x55u8; 100_000];
        let out = f.mangle(&bytes, 0.0);
        let s = f.stats();
        assert!((800..1200).contains(&s.bytes_dropped), "{s:?}");
        assert!((800..1200).contains(&s.bytes_corrupted), "{s:?}");
        assert_eq!(out.len() as u64, 100_000 - s.bytes_dropped);
        assert_eq!(
            out.iter().filter(|&&b| b != 0x55).count() as u64,
            s.bytes_corrupted
        );
        assert_eq!(f.mangle(&bytes, 10.0), bytes);
    }

    #[test]
    fn silences_come_and_go() {
        let opts = FaultOptions {
            silences_per_min: 6.0,
            silence_s: 2.0,
            ..FaultOptions::default()
        };
        let mut f = FaultInjector::new(opts, 3);
        let mut silent_ticks = 0;
        for k in 0..6000 {
            let now = k as f64 * 0.1;
            f.tick(now);
            if f.silent(now) {
                silent_ticks += 1;
            }
        }
        let s = f.stats();
        assert!((30..=90).contains(&s.silences), "{s:?}");
        // About 2 s each, never overlapping.
        assert!(silent_ticks <= s.silences * 20 + 1 && silent_ticks >= s.silences * 19);
    }

    #[test]
    fn rejects_bad_rates() {
        let bad = FaultOptions {
            corrupt_rate: 1.5,
            ..FaultOptions::default()
        };
        assert!(bad.validate().is_err());
        assert!(FaultOptions::default().validate().is_ok());
    }
}
