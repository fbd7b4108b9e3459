//! The `simulated` driver: the seed's sensor.
//!
//! Each read waits a latency drawn uniformly from `latency`, then answers with the current value,
//! which moves by a uniform step in `[-step, +step]` on every successful read (a random walk that
//! starts at a base drawn uniformly from `base`). A read fails with probability `error_rate`
//! (counted `failed`). The device goes offline with probability `offline_rate` per read and comes
//! back with probability `online_rate` per read; while offline it answers `offline` (counted
//! `unavailable`). Every draw comes from the driver's own seeded generator, in a fixed order per
//! read (latency, offline state, faults, failure, step), so a run is reproducible from its seed.
//!
//! Fault injection, for studying supervision: `fatal_rate`, `panic_rate` and `hang_rate` per
//! read, and scripted [`Fault`]s at given rounds (`panic`, `crash`, `hang`, `fatal`, `error` once;
//! `flap`, `stuck`, `drift` for a stretch of rounds; `spike` once). A hung driver never answers
//! again; only a restart (a fresh driver) cures it.

use std::sync::Arc;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use serde::Deserialize;

use super::{Driver, DriverBuild, DriverContext, DriverFactory, DriverKeys, DriverSpec, ReadError, ReadFuture, Sample};
use crate::parse::{check_probability, check_range, parse_duration_range, quoted, ConfigError};

/// `driver = "simulated"` (also an entry that names no driver).
#[derive(Debug, Clone, Copy, Default)]
pub struct Factory;

impl DriverFactory for Factory {
    fn parse(&self, keys: &DriverKeys<'_>) -> Result<Arc<dyn DriverSpec>, ConfigError> {
        Ok(Arc::new(Spec::new(Settings::parse(keys)?)))
    }
}

/// The spec of a simulated entry: its settings, shared by the drivers of its sensors (each
/// driver keeps the `Arc`, not a copy).
#[derive(Debug, Clone)]
pub struct Spec {
    settings: Arc<Settings>,
}

impl Spec {
    /// The spec of `settings`.
    pub fn new(settings: Settings) -> Self {
        Spec {
            settings: Arc::new(settings),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &Arc<Settings> {
        &self.settings
    }
}

impl DriverSpec for Spec {
    fn build(&self, ctx: &DriverContext) -> DriverBuild {
        DriverBuild::driver(Simulated::new(self.settings.clone(), ctx))
    }

    fn default_kind(&self) -> Option<&str> {
        Some("temperature")
    }
}

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
    /// Probability that a read fails fatally (the sensor must be restarted).
    pub fatal_rate: f64,
    /// Probability that a read panics.
    pub panic_rate: f64,
    /// Probability that a read hangs, and the sensor with it, until restarted.
    pub hang_rate: f64,
    /// Scripted faults.
    pub faults: Vec<Fault>,
}

/// What a scripted fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FaultKind {
    /// The read of that round panics.
    Panic,
    /// The sensor's actor stops in that round without answering (a closed mailbox).
    Crash,
    /// The sensor stops normally in that round, as a source with no more data does
    /// (`exhausted`): a normal exit, which restarts a permanent sensor but not a transient one.
    Exit,
    /// From that round the sensor never answers, until restarted.
    Hang,
    /// The read of that round fails fatally.
    Fatal,
    /// The read of that round fails (transient).
    Error,
    /// Every `every`-th round's read fails (transient) while active.
    Flap,
    /// The value stops changing while active.
    Stuck,
    /// The read of that round is off by `magnitude`.
    Spike,
    /// The value gains `rate` per read while active.
    Drift,
}

/// A scripted fault.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Fault {
    /// First round it applies to.
    pub round: u64,
    /// What it does.
    pub kind: FaultKind,
    /// The one sensor of the entry it applies to; `None` for all of them.
    pub sensor: Option<Arc<str>>,
    /// How many rounds `flap`, `stuck` and `drift` last; `None` for the rest of the run.
    pub rounds: Option<u64>,
    /// `flap`: every how many rounds a read fails.
    pub every: u64,
    /// `spike`: offset of the value.
    pub magnitude: f64,
    /// `drift`: change of the value per read.
    pub rate: f64,
}

impl Fault {
    /// Whether the fault holds in `round`.
    fn active(&self, round: u64) -> bool {
        match self.kind {
            FaultKind::Flap | FaultKind::Stuck | FaultKind::Drift => {
                round >= self.round && self.rounds.is_none_or(|n| round < self.round.saturating_add(n))
            }
            _ => round == self.round,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFault {
    round: u64,
    fault: FaultKind,
    sensor: Option<String>,
    rounds: Option<u64>,
    every: Option<u64>,
    magnitude: Option<f64>,
    rate: Option<f64>,
}

/// The largest magnitude of a simulated value's settings (`base`, `step`, a fault's `magnitude`
/// or `rate`): far beyond any sensor, and far enough below what an `f64` holds that no walk,
/// spike or drift of a run, nor the statistics of its values, can overflow.
pub const VALUE_LIMIT: f64 = 1e12;

fn out_of_limit(origin: &str, field: &str, value: f64) -> ConfigError {
    ConfigError::new(
        origin,
        field,
        format!("expected a number from -1e12 to 1e12, got {value:e}"),
    )
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
            fatal_rate: 0.0,
            panic_rate: 0.0,
            hang_rate: 0.0,
            faults: Vec::new(),
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
    fatal_rate: Option<f64>,
    panic_rate: Option<f64>,
    hang_rate: Option<f64>,
    faults: Option<Vec<RawFault>>,
}

impl Settings {
    /// Parses the simulated keys of an entry.
    pub fn parse(keys: &DriverKeys<'_>) -> Result<Settings, ConfigError> {
        let raw: RawSettings = keys.deserialize()?;
        let (origin, at) = (keys.origin(), keys.at());
        let d = Settings::default();
        let field = |name: &str| format!("{at}.{name}");
        let step = raw.step.unwrap_or(d.step);
        let rate = |name: &str, v: Option<f64>| check_probability(origin, &field(name), v.unwrap_or(0.0));
        let mut faults = Vec::new();
        for (i, f) in raw.faults.into_iter().flatten().enumerate() {
            let at = format!("faults[{i}]");
            if f.round == 0 {
                return Err(ConfigError::new(
                    origin,
                    field(&format!("{at}.round")),
                    "expected a round from 1",
                ));
            }
            if f.every == Some(0) {
                return Err(ConfigError::new(
                    origin,
                    field(&format!("{at}.every")),
                    "expected at least 1",
                ));
            }
            for (name, v) in [("magnitude", f.magnitude), ("rate", f.rate)] {
                if v.is_some_and(|v| !v.is_finite()) {
                    return Err(ConfigError::new(
                        origin,
                        field(&format!("{at}.{name}")),
                        "expected a finite number",
                    ));
                }
                if let Some(v) = v.filter(|v| v.abs() > VALUE_LIMIT) {
                    return Err(out_of_limit(origin, &field(&format!("{at}.{name}")), v));
                }
            }
            faults.push(Fault {
                round: f.round,
                kind: f.fault,
                sensor: f.sensor.map(Arc::from),
                rounds: f.rounds,
                every: f.every.unwrap_or(2),
                magnitude: f.magnitude.unwrap_or(10.0),
                rate: f.rate.unwrap_or(0.1),
            });
        }
        if !(step.is_finite() && step >= 0.0) {
            return Err(ConfigError::new(
                origin,
                field("step"),
                format!("expected a number >= 0, got {step}"),
            ));
        }
        if step > VALUE_LIMIT {
            return Err(out_of_limit(origin, &field("step"), step));
        }
        if let Some(v) = raw
            .base
            .into_iter()
            .flatten()
            .find(|v| v.is_finite() && v.abs() > VALUE_LIMIT)
        {
            return Err(out_of_limit(origin, &field("base"), v));
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
            fatal_rate: rate("fatal_rate", raw.fatal_rate)?,
            panic_rate: rate("panic_rate", raw.panic_rate)?,
            hang_rate: rate("hang_rate", raw.hang_rate)?,
            faults,
        })
    }
}

impl Settings {
    /// Checks that every fault aimed at one sensor names a sensor of the entry (`is_id` tells
    /// the entry's ids, made one at a time: an entry may have a million); `at` is the entry's path.
    pub(crate) fn check_fault_sensors(
        &self,
        origin: &str,
        at: &str,
        is_id: impl Fn(&str) -> bool,
    ) -> Result<(), ConfigError> {
        for (i, fault) in self.faults.iter().enumerate() {
            if let Some(sensor) = fault.sensor.as_deref().filter(|s| !is_id(s)) {
                return Err(ConfigError::new(
                    origin,
                    format!("{at}.faults[{i}].sensor"),
                    format!("expected the id of a sensor of this entry, got {}", quoted(sensor)),
                ));
            }
        }
        Ok(())
    }
}

/// A simulated sensor's state.
#[derive(Debug)]
pub struct Simulated {
    /// The entry's settings, shared by its sensors.
    settings: Arc<Settings>,
    /// The scripted faults aimed at this sensor: usually none, and then neither an allocation
    /// nor more than a pointer's room (a million sensors hold a million of these).
    faults: Option<Box<Faults>>,
    rng: Pcg64Mcg,
    value: f64,
    offline: bool,
    /// Set by a hang: from then on no read answers.
    hung: bool,
}

/// A sensor's scripted faults, behind one thin pointer.
#[derive(Debug)]
struct Faults(Box<[Fault]>);

/// How one read ends.
#[derive(Debug, PartialEq)]
enum Behaviour {
    Answer(Result<Sample, ReadError>),
    Hang,
    Panic(String),
}

impl Simulated {
    /// Builds the driver for the sensor of `ctx`, keeping only the faults aimed at it; the
    /// starting value is the first draw of its generator.
    pub fn new(settings: Arc<Settings>, ctx: &DriverContext) -> Self {
        let faults: Box<[Fault]> = settings
            .faults
            .iter()
            .filter(|f| f.sensor.as_ref().is_none_or(|s| *s == ctx.id))
            .cloned()
            .collect();
        let faults = (!faults.is_empty()).then(|| Box::new(Faults(faults)));
        let mut rng = Pcg64Mcg::seed_from_u64(ctx.seed);
        let value = uniform(&mut rng, settings.base.0, settings.base.1);
        Simulated {
            settings,
            faults,
            rng,
            value,
            offline: false,
            hung: false,
        }
    }

    fn draw(&mut self, p: f64) -> bool {
        p > 0.0 && self.rng.random_bool(p)
    }

    fn scripted(&self, round: u64, kind: FaultKind) -> Option<&Fault> {
        let faults = self.faults.as_deref().map_or(&[][..], |f| &f.0);
        faults.iter().find(|f| f.kind == kind && f.active(round))
    }

    /// Makes the draws of one read: its latency and how it ends.
    fn next(&mut self, round: u64) -> (Duration, Behaviour) {
        if self.hung {
            return (Duration::ZERO, Behaviour::Hang);
        }
        let (min, max) = self.settings.latency;
        let latency = if min == max {
            min
        } else {
            self.rng.random_range(min..=max)
        };
        let (online_rate, offline_rate) = (self.settings.online_rate, self.settings.offline_rate);
        if self.offline {
            if self.draw(online_rate) {
                self.offline = false;
            }
        } else if self.draw(offline_rate) {
            self.offline = true;
        }
        if self.offline {
            return (latency, Behaviour::Answer(Err(ReadError::Offline)));
        }
        let s = &self.settings;
        let (hang_rate, panic_rate, fatal_rate, error_rate) = (s.hang_rate, s.panic_rate, s.fatal_rate, s.error_rate);
        if self.scripted(round, FaultKind::Hang).is_some() || self.draw(hang_rate) {
            self.hung = true;
            return (latency, Behaviour::Hang);
        }
        if self.scripted(round, FaultKind::Panic).is_some() || self.draw(panic_rate) {
            return (latency, Behaviour::Panic(format!("injected panic in round {round}")));
        }
        if self.scripted(round, FaultKind::Crash).is_some() {
            let error = ReadError::Crash(format!("injected crash in round {round}"));
            return (latency, Behaviour::Answer(Err(error)));
        }
        if self.scripted(round, FaultKind::Exit).is_some() {
            return (latency, Behaviour::Answer(Err(ReadError::Exhausted)));
        }
        if self.scripted(round, FaultKind::Fatal).is_some() || self.draw(fatal_rate) {
            let error = ReadError::Fatal(format!("injected fatal error in round {round}"));
            return (latency, Behaviour::Answer(Err(error)));
        }
        let flapping = self
            .scripted(round, FaultKind::Flap)
            .is_some_and(|f| (round - f.round + 1).is_multiple_of(f.every));
        if self.scripted(round, FaultKind::Error).is_some() || flapping || self.draw(error_rate) {
            let error = ReadError::Failed("simulated read failure".into());
            return (latency, Behaviour::Answer(Err(error)));
        }
        let step = uniform(&mut self.rng, -self.settings.step, self.settings.step);
        if self.scripted(round, FaultKind::Stuck).is_none() {
            self.value += step;
        }
        if let Some(drift) = self.scripted(round, FaultKind::Drift) {
            self.value += drift.rate;
        }
        let spike = self.scripted(round, FaultKind::Spike).map_or(0.0, |f| f.magnitude);
        (latency, Behaviour::Answer(Ok(Sample::value(self.value + spike))))
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
    fn read(&mut self, round: u64) -> ReadFuture {
        let (latency, behaviour) = self.next(round);
        let result = match behaviour {
            Behaviour::Answer(result) => result,
            Behaviour::Hang => return ReadFuture::new(std::future::pending()),
            Behaviour::Panic(message) => panic!("{message}"),
        };
        ReadFuture::after(latency, result)
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

    /// What a simulated sensor's state costs at a million sensors (docs/performance.md): 48
    /// bytes, a size class of the allocator (64 with the faults' slice inline).
    #[test]
    fn a_simulated_sensor_is_48_bytes() {
        assert_eq!(std::mem::size_of::<Simulated>(), 48);
    }

    fn answer(d: &mut Simulated, round: u64) -> Result<Sample, ReadError> {
        match d.next(round).1 {
            Behaviour::Answer(r) => r,
            other => panic!("round {round}: {other:?}"),
        }
    }

    #[test]
    fn same_seed_same_draws() {
        let mut a = Simulated::new(Arc::new(Settings::default()), &ctx(7));
        let mut b = Simulated::new(Arc::new(Settings::default()), &ctx(7));
        for round in 1..200 {
            assert_eq!(a.next(round), b.next(round));
        }
    }

    #[test]
    fn walk_steps_and_latency_stay_in_bounds() {
        let settings = Settings {
            error_rate: 0.0,
            ..Settings::default()
        };
        let mut d = Simulated::new(Arc::new(settings), &ctx(1));
        assert!((20.0..=30.0).contains(&d.value));
        let mut last = d.value;
        for round in 1..1000 {
            let (latency, behaviour) = d.next(round);
            assert!((Duration::from_millis(100)..=Duration::from_millis(500)).contains(&latency));
            let Behaviour::Answer(Ok(sample)) = behaviour else {
                panic!("round {round}: {behaviour:?}")
            };
            let v = sample.value;
            assert!((v - last).abs() <= 0.5 + 1e-12);
            last = v;
        }
    }

    #[test]
    fn error_rate_is_honoured() {
        let mut d = Simulated::new(Arc::new(Settings::default()), &ctx(3));
        let failed = (1..=10_000).filter(|r| answer(&mut d, *r).is_err()).count();
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
        let mut d = Simulated::new(Arc::new(settings), &ctx(3));
        for round in 1..10 {
            assert_eq!(answer(&mut d, round), Err(ReadError::Offline));
        }
    }

    fn scripted(faults: &str) -> Simulated {
        let table: toml::Table = toml::from_str(&format!("error_rate = 0.0\nstep = 0.0\nfaults = {faults}")).unwrap();
        let keys = DriverKeys::new(table, "c.toml", "sensors[0]", std::path::Path::new(""));
        let settings = Settings::parse(&keys).unwrap();
        Simulated::new(Arc::new(settings), &ctx(1))
    }

    #[test]
    fn scripted_faults_fire_in_their_rounds() {
        let mut d = scripted(
            r#"[{ round = 2, fault = "panic" }, { round = 3, fault = "fatal" }, { round = 4, fault = "error" },
                { round = 5, fault = "spike", magnitude = 7.0 }, { round = 6, fault = "hang" }]"#,
        );
        let base = answer(&mut d, 1).unwrap().value;
        assert_eq!(d.next(2).1, Behaviour::Panic("injected panic in round 2".into()));
        assert_eq!(
            answer(&mut d, 3),
            Err(ReadError::Fatal("injected fatal error in round 3".into()))
        );
        assert!(matches!(answer(&mut d, 4), Err(ReadError::Failed(_))));
        assert_eq!(answer(&mut d, 5).unwrap().value, base + 7.0);
        assert_eq!(d.next(6).1, Behaviour::Hang);
        assert_eq!(d.next(7).1, Behaviour::Hang, "a hung driver stays hung");
    }

    #[test]
    fn flap_stuck_and_drift_last_their_rounds() {
        let mut d = scripted(r#"[{ round = 3, fault = "flap", every = 2, rounds = 4 }]"#);
        let failed: Vec<u64> = (1..=10).filter(|r| answer(&mut d, *r).is_err()).collect();
        assert_eq!(failed, [4, 6]);
        let mut d = scripted(r#"[{ round = 2, fault = "drift", rate = 0.5, rounds = 2 }]"#);
        let values: Vec<f64> = (1..=4).map(|r| answer(&mut d, r).unwrap().value).collect();
        assert_eq!(
            [values[1] - values[0], values[2] - values[1], values[3] - values[2]],
            [0.5, 0.5, 0.0]
        );
    }

    #[test]
    fn faults_aimed_at_another_sensor_are_ignored() {
        let mut d = scripted(r#"[{ round = 1, fault = "fatal", sensor = "t-2" }]"#);
        assert!(answer(&mut d, 1).is_ok());
    }

    /// Values whose arithmetic could overflow are refused with the limit (exactly 1e12 is fine).
    #[test]
    fn values_are_bounded() {
        let parse = |t: &str| {
            crate::Config::from_toml_str(&format!("[[sensors]]\ncount = 1\n{t}\n"), "c.toml")
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        assert_eq!(parse("step = 1e12"), Ok(()));
        assert_eq!(
            parse("step = 1.79e308"),
            Err("c.toml: sensors[0].step: expected a number from -1e12 to 1e12, got 1.79e308".into())
        );
        assert_eq!(
            parse("base = [-1.7e308, 1.7e308]"),
            Err("c.toml: sensors[0].base: expected a number from -1e12 to 1e12, got -1.7e308".into())
        );
        assert_eq!(
            parse("faults = [{ round = 1, fault = \"spike\", magnitude = 1e13 }]"),
            Err("c.toml: sensors[0].faults[0].magnitude: expected a number from -1e12 to 1e12, got 1e13".into())
        );
    }
}
