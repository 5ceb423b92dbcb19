//! The scenario file (TOML), shared with the demo video maker: pumps, and cars with their fills.
//! Unknown keys are ignored on purpose so both tools can extend it.

use std::path::Path;

use forecourt_events::Decimal;
use serde::Deserialize;

use crate::SimError;

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Scenario {
    /// The schedule repeats every `loop_s` seconds from sim start...
    pub loop_s: Option<f64>,
    /// ...or, with this, on the wall clock: loops start at whole multiples of `loop_s` since
    /// the Unix epoch, as the agent plays a looping demo video, so the pumps and the video
    /// agree whichever started first.
    #[serde(default)]
    pub loop_on_clock: bool,
    /// Where in its loop the schedule starts (seconds): set by [`Scenario::anchor_loop`].
    #[serde(skip)]
    pub loop_phase_s: f64,
    #[serde(default, rename = "pump")]
    pub pumps: Vec<PumpSpec>,
    #[serde(default, rename = "car")]
    pub cars: Vec<CarSpec>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PumpSpec {
    #[serde(default = "one")]
    pub fp: u8,
    /// Defaults to 0x50 + fp - 1.
    pub address: Option<u8>,
    #[serde(default)]
    pub decimals: DecimalsSpec,
    /// Unit price per logical nozzle (index 0 = nozzle 1).
    #[serde(default)]
    pub prices: Vec<Decimal>,
    /// Start filling on nozzle out without waiting for the master's AUTHORIZE.
    #[serde(default)]
    pub self_authorize: bool,
}

#[derive(Debug, Clone, Copy, Deserialize)]
pub struct DecimalsSpec {
    #[serde(default = "two")]
    pub volume: u8,
    #[serde(default = "two")]
    pub amount: u8,
    #[serde(default = "two")]
    pub price: u8,
}

impl Default for DecimalsSpec {
    fn default() -> Self {
        DecimalsSpec {
            volume: 2,
            amount: 2,
            price: 2,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct CarSpec {
    /// Used by the video maker only.
    pub plate: Option<String>,
    #[serde(default = "one")]
    pub fp: u8,
    pub fill: Option<FillSpec>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FillSpec {
    #[serde(default = "one")]
    pub nozzle: u8,
    /// Nozzle out, seconds from loop start.
    pub start_s: f64,
    /// Nozzle in.
    pub end_s: f64,
    /// Litres delivered by `end_s`.
    pub volume: Decimal,
}

fn one() -> u8 {
    1
}

fn two() -> u8 {
    2
}

/// Price for a nozzle the scenario gives none: 1.00 per litre.
const DEFAULT_PRICE: Decimal = Decimal::new(100, 2);

impl PumpSpec {
    /// Unit price per nozzle in the pump's price decimals (1.00 when the scenario gives none;
    /// 0 for a price with more decimals than the pump shows).
    pub fn raw_prices(&self) -> Vec<u64> {
        let prices = if self.prices.is_empty() {
            vec![DEFAULT_PRICE]
        } else {
            self.prices.clone()
        };
        prices
            .into_iter()
            .map(|p| to_raw(p, self.decimals.price).unwrap_or(0))
            .collect()
    }

    pub fn default_for(fp: u8) -> Self {
        PumpSpec {
            fp,
            address: None,
            decimals: DecimalsSpec::default(),
            prices: Vec::new(),
            self_authorize: false,
        }
    }

    pub fn address(&self) -> u8 {
        self.address.unwrap_or(0x50 + self.fp.saturating_sub(1))
    }
}

impl Scenario {
    pub fn from_toml(text: &str) -> Result<Self, SimError> {
        let mut s: Scenario =
            toml::from_str(text).map_err(|e| SimError::Scenario(e.to_string()))?;
        s.complete();
        s.validate()?;
        Ok(s)
    }

    /// Reads the file; a `loop_on_clock` scenario starts where the clock says now.
    pub fn load(path: &Path) -> Result<Self, SimError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| SimError::Scenario(format!("{}: {e}", path.display())))?;
        let mut scenario = Self::from_toml(&text)?;
        scenario.anchor_loop(forecourt_events::now_millis());
        Ok(scenario)
    }

    /// With `loop_on_clock`, the schedule starts at the point of its loop that the wall clock
    /// `unix_ms` is in.
    pub fn anchor_loop(&mut self, unix_ms: i64) {
        if let (true, Some(loop_s)) = (self.loop_on_clock, self.loop_s) {
            self.loop_phase_s = (unix_ms as f64 / 1000.0).rem_euclid(loop_s);
        }
    }

    /// Makes sure FPs 1..=`fps` exist (default pumps for those it lacks), then [`Self::complete`].
    pub fn ensure_fps(&mut self, fps: u8) {
        for fp in 1..=fps {
            if !self.pumps.iter().any(|p| p.fp == fp) {
                self.pumps.push(PumpSpec::default_for(fp));
            }
        }
        self.complete();
    }

    /// Adds a default pump for every FP a car uses but no `[[pump]]` declares (fp 1 / 0x50 when
    /// there is nothing at all).
    pub fn complete(&mut self) {
        let mut fps: Vec<u8> = self.cars.iter().map(|c| c.fp).collect();
        if self.pumps.is_empty() && fps.is_empty() {
            fps.push(1);
        }
        for fp in fps {
            if !self.pumps.iter().any(|p| p.fp == fp) {
                self.pumps.push(PumpSpec::default_for(fp));
            }
        }
    }

    fn validate(&self) -> Result<(), SimError> {
        let bad = |m: String| Err(SimError::Scenario(m));
        if let Some(l) = self.loop_s {
            if l.is_nan() || l <= 0.0 {
                return bad(format!("loop_s must be > 0, got {l}"));
            }
        }
        if self.loop_on_clock && self.loop_s.is_none() {
            return bad("loop_on_clock needs loop_s".into());
        }
        for p in &self.pumps {
            if !dart_protocol::is_valid_address(p.address()) {
                return bad(format!(
                    "fp {}: address 0x{:02X} outside 0x50..0x6F",
                    p.fp,
                    p.address()
                ));
            }
            for price in &p.prices {
                if to_raw(*price, p.decimals.price).is_none() {
                    return bad(format!(
                        "fp {}: price {price} does not fit {} decimals",
                        p.fp, p.decimals.price
                    ));
                }
            }
        }
        for c in &self.cars {
            if let Some(f) = &c.fill {
                if f.end_s < f.start_s {
                    return bad(format!("car {:?}: fill ends before it starts", c.plate));
                }
                let pump = self.pumps.iter().find(|p| p.fp == c.fp);
                let dec = pump.map(|p| p.decimals.volume).unwrap_or(2);
                if to_raw(f.volume, dec).is_none() {
                    return bad(format!(
                        "car {:?}: volume {} does not fit {dec} decimals",
                        c.plate, f.volume
                    ));
                }
            }
        }
        Ok(())
    }
}

/// `d` as an unsigned integer of `scale` decimals, if exact and non-negative.
pub fn to_raw(d: Decimal, scale: u8) -> Option<u64> {
    let minor = u64::try_from(d.minor()).ok()?;
    if d.scale() <= scale {
        minor.checked_mul(10u64.checked_pow(u32::from(scale - d.scale()))?)
    } else {
        let div = 10u64.checked_pow(u32::from(d.scale() - scale))?;
        (minor % div == 0).then_some(minor / div)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
loop_s = 60.0
unknown_top = "ignored"
[[pump]]
fp = 1
address = 0x50
decimals = { volume = 2, amount = 2, price = 2 }
prices = ["7.85", "8.32"]
[[car]]
plate = "苏E05EV8"
fp = 1
arrive_s = 2.0
depart_s = 20.0
colour = "red"
[car.fill]
nozzle = 1
start_s = 5.0
end_s = 15.0
volume = "30.00"
"#;

    #[test]
    fn parses_shared_schema() {
        let s = Scenario::from_toml(EXAMPLE).unwrap();
        assert_eq!(s.loop_s, Some(60.0));
        assert_eq!(s.pumps.len(), 1);
        assert_eq!(s.pumps[0].address(), 0x50);
        assert_eq!(s.pumps[0].prices[1], Decimal::new(832, 2));
        let fill = s.cars[0].fill.as_ref().unwrap();
        assert_eq!(fill.volume, Decimal::new(3000, 2));
        assert_eq!(fill.start_s, 5.0);
    }

    #[test]
    fn defaults_a_pump() {
        let s = Scenario::from_toml("").unwrap();
        assert_eq!(s.pumps.len(), 1);
        assert_eq!((s.pumps[0].fp, s.pumps[0].address()), (1, 0x50));
    }

    #[test]
    fn raw_conversion() {
        assert_eq!(to_raw(Decimal::new(785, 2), 3), Some(7850));
        assert_eq!(to_raw(Decimal::new(7850, 3), 2), Some(785));
        assert_eq!(to_raw(Decimal::new(7851, 3), 2), None);
    }
}
