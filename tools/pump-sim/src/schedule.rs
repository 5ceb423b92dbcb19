//! When customers lift and hang up: scripted fills from the scenario (optionally looping) and
//! random customers.

use crate::scenario::{to_raw, Scenario};

/// A lift to perform now: the FP's nozzle comes out, hangs up at `end_s` having sold `volume`.
#[derive(Debug, Clone, PartialEq)]
pub struct Lift {
    pub fp: u8,
    pub nozzle: u8,
    pub end_s: f64,
    /// Raw volume units in the pump's volume decimals.
    pub volume: u64,
}

#[derive(Debug, Clone)]
struct ScriptedFill {
    fp: u8,
    nozzle: u8,
    start_s: f64,
    end_s: f64,
    volume: u64,
    /// Loop cycle of the next occurrence; None once done (no loop).
    next_cycle: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct Schedule {
    loop_s: Option<f64>,
    /// Added to sim time to get schedule time (`Scenario::loop_phase_s`).
    phase_s: f64,
    fills: Vec<ScriptedFill>,
}

impl Schedule {
    pub fn from_scenario(s: &Scenario) -> Self {
        let fills = s
            .cars
            .iter()
            .filter_map(|car| {
                let f = car.fill.as_ref()?;
                let dec = s
                    .pumps
                    .iter()
                    .find(|p| p.fp == car.fp)
                    .map_or(2, |p| p.decimals.volume);
                Some(ScriptedFill {
                    fp: car.fp,
                    nozzle: f.nozzle,
                    start_s: f.start_s,
                    end_s: f.end_s,
                    volume: to_raw(f.volume, dec)?,
                    next_cycle: Some(0),
                })
            })
            .collect();
        Schedule {
            loop_s: s.loop_s,
            phase_s: s.loop_phase_s,
            fills,
        }
    }

    /// Lifts due at `now_s` (seconds since sim start). Each occurrence fires once; one whose end
    /// has already passed (e.g. the sim was stalled) is skipped.
    pub fn due(&mut self, now_s: f64) -> Vec<Lift> {
        let mut lifts = Vec::new();
        for f in &mut self.fills {
            let Some(cycle) = f.next_cycle else { continue };
            // In sim time: the schedule's time less its phase.
            let offset = self.loop_s.map_or(0.0, |l| l * cycle as f64) - self.phase_s;
            if now_s < f.start_s + offset {
                continue;
            }
            if now_s < f.end_s + offset {
                lifts.push(Lift {
                    fp: f.fp,
                    nozzle: f.nozzle,
                    end_s: f.end_s + offset,
                    volume: f.volume,
                });
            }
            f.next_cycle = self.loop_s.map(|_| cycle + 1);
        }
        lifts
    }
}

/// The customers' and faults' random stream: the workspace's one seeded PRNG, so a scenario
/// reproduces from its seed.
pub use seeded_rng::Rng;

/// How random customers behave. The default is a real forecourt; tests speed it up.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerProfile {
    /// Litres bought, uniform in this range.
    pub litres: (f64, f64),
    /// Flow rate in litres per second.
    pub flow_lps: f64,
    /// Pause after a customer before the next one lifts, seconds, uniform in this range.
    pub pause_s: (f64, f64),
    /// The first customer at each FP lifts at a time uniform in this range (seconds).
    pub first_lift_s: (f64, f64),
    /// No new customer lifts after this time (seconds since start).
    pub until_s: Option<f64>,
}

impl Default for CustomerProfile {
    fn default() -> Self {
        CustomerProfile {
            litres: (5.0, 60.0),
            flow_lps: 0.6,
            pause_s: (5.0, 20.0),
            first_lift_s: (1.0, 5.0),
            until_s: None,
        }
    }
}

/// Random customers: when a pump is free, one arrives after a pause and buys some litres
/// (by default 5..60 litres at about 0.6 l/s, see [`CustomerProfile`]).
#[derive(Debug, Clone)]
pub struct RandomCustomers {
    rng: Rng,
    profile: CustomerProfile,
    /// Per FP: earliest time the next customer may lift.
    next_s: Vec<(u8, f64)>,
}

impl RandomCustomers {
    pub fn new(seed: u64, fps: &[u8]) -> Self {
        Self::with_profile(seed, fps, CustomerProfile::default())
    }

    pub fn with_profile(seed: u64, fps: &[u8], profile: CustomerProfile) -> Self {
        let mut rng = Rng::new(seed);
        let (lo, hi) = profile.first_lift_s;
        let next_s = fps.iter().map(|fp| (*fp, rng.range(lo, hi))).collect();
        RandomCustomers {
            rng,
            profile,
            next_s,
        }
    }

    /// A lift for `fp` if it is free and its customer is due.
    pub fn due(
        &mut self,
        now_s: f64,
        fp: u8,
        free: bool,
        nozzles: u8,
        volume_decimals: u8,
    ) -> Option<Lift> {
        let slot = self.next_s.iter_mut().find(|(f, _)| *f == fp)?;
        if !free || now_s < slot.1 || self.profile.until_s.is_some_and(|u| now_s >= u) {
            return None;
        }
        let p = &self.profile;
        let litres = self.rng.range(p.litres.0, p.litres.1);
        let duration = litres / p.flow_lps.max(1e-3);
        slot.1 = now_s + duration + self.rng.range(p.pause_s.0, p.pause_s.1);
        let nozzle = 1 + (self.rng.next_u64() % u64::from(nozzles.max(1))) as u8;
        Some(Lift {
            fp,
            nozzle,
            end_s: now_s + duration,
            volume: (litres * 10f64.powi(i32::from(volume_decimals))) as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(loop_s: Option<f64>) -> Scenario {
        let mut text = String::new();
        if let Some(l) = loop_s {
            text.push_str(&format!("loop_s = {l}\n"));
        }
        text.push_str("[[car]]\nfp = 1\n[car.fill]\nnozzle = 2\nstart_s = 5.0\nend_s = 15.0\nvolume = \"30.00\"\n");
        Scenario::from_toml(&text).unwrap()
    }

    #[test]
    fn fires_once_without_loop() {
        let mut s = Schedule::from_scenario(&scenario(None));
        assert!(s.due(4.9).is_empty());
        assert_eq!(
            s.due(5.0),
            vec![Lift {
                fp: 1,
                nozzle: 2,
                end_s: 15.0,
                volume: 3000
            }]
        );
        assert!(s.due(5.1).is_empty());
        assert!(s.due(65.0).is_empty());
    }

    #[test]
    fn repeats_with_loop() {
        let mut s = Schedule::from_scenario(&scenario(Some(60.0)));
        assert_eq!(s.due(5.0).len(), 1);
        assert!(s.due(64.0).is_empty());
        assert_eq!(s.due(65.0)[0].end_s, 75.0);
    }

    #[test]
    fn a_loop_on_the_clock_starts_where_the_clock_is() {
        let clocked = |unix_ms: i64| {
            let mut s = scenario(Some(60.0));
            s.loop_on_clock = true;
            s.anchor_loop(unix_ms);
            Schedule::from_scenario(&s)
        };
        // Started 37 s into a minute: this loop's fill (5 to 15 s) is over, the next one is
        // 28 s away.
        let mut s = clocked(1_800_000_000_000 / 60_000 * 60_000 + 37_000);
        assert!(s.due(0.0).is_empty());
        assert!(s.due(27.9).is_empty());
        let lifts = s.due(28.0);
        assert_eq!(lifts.len(), 1);
        assert!((lifts[0].end_s - 38.0).abs() < 1e-6, "{lifts:?}");
        // Started 10 s into a minute: in the middle of the fill, which lifts now.
        let mut s = clocked(1_800_000_000_000 / 60_000 * 60_000 + 10_000);
        let lifts = s.due(0.0);
        assert_eq!(lifts.len(), 1);
        assert!((lifts[0].end_s - 5.0).abs() < 1e-6, "{lifts:?}");
        // Without loop_s there is no clock to loop on.
        assert!(Scenario::from_toml("loop_on_clock = true\n").is_err());
    }

    #[test]
    fn random_customer_when_free() {
        let mut r = RandomCustomers::new(7, &[1]);
        assert!(r.due(100.0, 1, false, 2, 2).is_none());
        let lift = r.due(100.0, 1, true, 2, 2).unwrap();
        assert!((1..=2).contains(&lift.nozzle));
        assert!(lift.volume >= 500 && lift.volume <= 6000);
        assert!(r.due(100.0, 1, true, 2, 2).is_none());
    }
}
