//! The `simulated` driver: the seed's sensor.
//!
//! Each read waits a latency drawn uniformly from `latency`, then answers with the current value,
//! which moves by a uniform step in `[-step, +step]` on every successful read (a random walk that
//! starts at a base drawn uniformly from `base`). A read fails with probability `error_rate`
//! (counted `failed`). The device goes offline with probability `offline_rate` per read and comes
//! back with probability `online_rate` per read; while offline it answers `offline` (counted
//! `unavailable`). Every draw comes from the driver's own seeded generator, in a fixed order per
//! read (latency, offline state, failure, step), so a run is reproducible from its seed.

use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use serde::Deserialize;

use super::{Driver, DriverContext, ReadError, ReadFuture, Sample};
use crate::config::{check_probability, check_range, from_table, parse_duration_range, ConfigError};

/// Validated settings of a simulated entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Read latency range, drawn uniformly per read.
    pub latency: (Duration, Duration),
    /// Range the starting value is drawn from.
    pub base: (f64, f64),
    /// Largest change of the value per read.
    pub step: f64,
    /// Probability that a read fails (transient).
    pub error_rate: f64,
    /// Probability per read that an online device goes offline.
    pub offline_rate: f64,
    /// Probability per read that an offline device comes back.
    pub online_rate: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            latency: (Duration::from_millis(100), Duration::from_millis(500)),
            base: (20.0, 30.0),
            step: 0.5,
            error_rate: 0.1,
            offline_rate: 0.0,
            online_rate: 0.5,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    latency: Option<[String; 2]>,
    base: Option<[f64; 2]>,
    step: Option<f64>,
    error_rate: Option<f64>,
    offline_rate: Option<f64>,
    online_rate: Option<f64>,
}

impl Settings {
    /// Parses the simulated keys of the entry at `at`.
    pub fn parse(table: toml::Table, origin: &str, at: &str) -> Result<Settings, ConfigError> {
        let raw: RawSettings = from_table(table, origin, at)?;
        let d = Settings::default();
        let field = |name: &str| format!("{at}.{name}");
        let step = raw.step.unwrap_or(d.step);
        if !(step.is_finite() && step >= 0.0) {
            return Err(ConfigError::new(
                origin,
                field("step"),
                format!("expected a number >= 0, got {step}"),
            ));
        }
        Ok(Settings {
            latency: match &raw.latency {
                Some(pair) => parse_duration_range(origin, &field("latency"), pair)?,
                None => d.latency,
            },
            base: match raw.base {
                Some(pair) => check_range(origin, &field("base"), pair)?,
                None => d.base,
            },
            step,
            error_rate: check_probability(origin, &field("error_rate"), raw.error_rate.unwrap_or(d.error_rate))?,
            offline_rate: check_probability(
                origin,
                &field("offline_rate"),
                raw.offline_rate.unwrap_or(d.offline_rate),
            )?,
            online_rate: check_probability(origin, &field("online_rate"), raw.online_rate.unwrap_or(d.online_rate))?,
        })
    }
}

/// A simulated sensor's state.
#[derive(Debug)]
pub struct Simulated {
    settings: Settings,
    rng: Pcg64Mcg,
    value: f64,
    offline: bool,
}

impl Simulated {
    /// Builds the driver; the starting value is the first draw of its generator.
    pub fn new(settings: Settings, ctx: &DriverContext) -> Self {
        let mut rng = Pcg64Mcg::seed_from_u64(ctx.seed);
        let value = uniform(&mut rng, settings.base.0, settings.base.1);
        Simulated {
            settings,
            rng,
            value,
            offline: false,
        }
    }

    /// Makes the draws of one read: its latency and its result.
    fn next(&mut self) -> (Duration, Result<Sample, ReadError>) {
        let s = &self.settings;
        let latency = if s.latency.0 == s.latency.1 {
            s.latency.0
        } else {
            self.rng.random_range(s.latency.0..=s.latency.1)
        };
        if self.offline {
            if self.rng.random_bool(s.online_rate) {
                self.offline = false;
            }
        } else if s.offline_rate > 0.0 && self.rng.random_bool(s.offline_rate) {
            self.offline = true;
        }
        if self.offline {
            return (latency, Err(ReadError::Offline));
        }
        if s.error_rate > 0.0 && self.rng.random_bool(s.error_rate) {
            return (latency, Err(ReadError::Failed("simulated read failure".into())));
        }
        self.value += uniform(&mut self.rng, -s.step, s.step);
        (latency, Ok(Sample::value(self.value)))
    }
}

fn uniform(rng: &mut Pcg64Mcg, lo: f64, hi: f64) -> f64 {
    if lo == hi {
        lo
    } else {
        rng.random_range(lo..=hi)
    }
}

impl Driver for Simulated {
    fn read(&mut self, _round: u64) -> ReadFuture {
        let (latency, result) = self.next();
        Box::pin(async move {
            if !latency.is_zero() {
                actix_rt::time::sleep(latency).await;
            }
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(seed: u64) -> DriverContext {
        DriverContext {
            id: "t-1".into(),
            kind: "temperature".into(),
            index: 0,
            incarnation: 0,
            seed,
        }
    }

    #[test]
    fn same_seed_same_draws() {
        let mut a = Simulated::new(Settings::default(), &ctx(7));
        let mut b = Simulated::new(Settings::default(), &ctx(7));
        for _ in 0..200 {
            assert_eq!(a.next(), b.next());
        }
    }

    #[test]
    fn walk_steps_and_latency_stay_in_bounds() {
        let settings = Settings {
            error_rate: 0.0,
            ..Settings::default()
        };
        let mut d = Simulated::new(settings, &ctx(1));
        assert!((20.0..=30.0).contains(&d.value));
        let mut last = d.value;
        for _ in 0..1000 {
            let (latency, result) = d.next();
            assert!((Duration::from_millis(100)..=Duration::from_millis(500)).contains(&latency));
            let v = result.unwrap().value;
            assert!((v - last).abs() <= 0.5 + 1e-12);
            last = v;
        }
    }

    #[test]
    fn error_rate_is_honoured() {
        let mut d = Simulated::new(Settings::default(), &ctx(3));
        let failed = (0..10_000).filter(|_| d.next().1.is_err()).count();
        assert!(
            (800..1200).contains(&failed),
            "{failed} failures in 10000 reads at rate 0.1"
        );
    }

    #[test]
    fn offline_device_answers_offline_until_back() {
        let settings = Settings {
            offline_rate: 1.0,
            online_rate: 0.0,
            error_rate: 0.0,
            ..Settings::default()
        };
        let mut d = Simulated::new(settings, &ctx(3));
        for _ in 0..10 {
            assert_eq!(d.next().1, Err(ReadError::Offline));
        }
    }
}
