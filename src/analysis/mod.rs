//! Anomaly detection: the detectors run on every sensor's observations, and a group's analysis
//! of its members ([`shard`]).
//!
//! Each round, every sensor yields one [`Observation`]: its value, or none when the round got no
//! reading from it. The sensor's group passes the observation, with the sensor's recent history, to
//! each enabled [`Detector`] ([`AnalysisConfig::observe`]); a detector that finds an anomaly
//! returns its detail, which becomes one line of `anomalies.jsonl`.
//!
//! A detector's settings are kept once per run (in [`AnalysisConfig`]); per sensor only its
//! state is kept, as a plain field of [`Detectors`] (nothing for a detector that needs no state):
//! at 100,000 sensors that is the difference between a few dozen bytes and five boxed objects
//! per sensor. The detectors are the closed list [`DetectorKind`]; adding one is a new file in
//! this folder plus a line in [`DetectorKind::ALL`], a field in [`Detectors`] and one in
//! [`AnalysisConfig`], and a line in [`AnalysisConfig::observe`]. Settings live in `[analysis]`
//! (see `docs/configuration.md`).

pub mod out_of_range;
pub mod rate;
pub mod registry;
pub mod shard;
pub mod spike;
pub mod stale;
pub mod stuck;

use serde::Deserialize;

pub use registry::DetectorRegistry;

use crate::config::{from_table, ConfigError};
use crate::stats::{RollingWindow, MAX_WINDOW};
use serde::de::DeserializeOwned;

/// What a detector sees of one sensor in one round.
#[derive(Debug)]
pub struct Observation<'a> {
    /// The round.
    pub round: u64,
    /// The value read this round, or `None` when the round got no reading.
    pub value: Option<f64>,
    /// The sensor's most recent values before this one.
    pub window: &'a RollingWindow,
    /// The sensor's valid range, if one is known.
    pub range: Option<(f64, f64)>,
    /// Scratch space for order statistics, reused across calls.
    pub scratch: &'a mut Vec<f64>,
}

/// Looks at one sensor's observations, one at a time, and reports anomalies. The implementing
/// type is the detector's per-sensor state (a unit struct when it needs none); its settings are
/// shared by every sensor.
pub trait Detector: Default + Send {
    /// The detector's validated settings.
    type Settings;
    /// Examines one observation; returns a human-readable detail when it is anomalous.
    fn observe(&mut self, settings: &Self::Settings, obs: &mut Observation<'_>) -> Option<String>;
}

/// Every detector's state for one sensor, in [`DetectorKind::ALL`] order.
#[derive(Debug, Default)]
pub struct Detectors {
    /// `out_of_range` (stateless).
    pub out_of_range: out_of_range::OutOfRange,
    /// `spike` (stateless: it judges from the window).
    pub spike: spike::Spike,
    /// `rate`.
    pub rate: rate::Rate,
    /// `stuck`.
    pub stuck: stuck::Stuck,
    /// `stale`.
    pub stale: stale::Stale,
}

/// Runs one detector if it is enabled (`settings` is `Some`), reporting what it finds.
fn run<D: Detector>(
    kind: DetectorKind,
    settings: &Option<D::Settings>,
    state: &mut D,
    obs: &mut Observation<'_>,
    found: &mut impl FnMut(DetectorKind, String),
) {
    if let Some(settings) = settings {
        if let Some(detail) = state.observe(settings, obs) {
            found(kind, detail);
        }
    }
}

/// The detectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DetectorKind {
    /// A value outside its kind's valid range.
    OutOfRange,
    /// A value far from its recent window, in robust standard deviations.
    Spike,
    /// A change over a few reads far outside the sensor's usual changes.
    Rate,
    /// The same value read too many times in a row.
    Stuck,
    /// No successful reading for too many rounds.
    Stale,
}

impl DetectorKind {
    /// Every detector, in the order they run.
    pub const ALL: [DetectorKind; 5] = [
        DetectorKind::OutOfRange,
        DetectorKind::Spike,
        DetectorKind::Rate,
        DetectorKind::Stuck,
        DetectorKind::Stale,
    ];

    /// The name used in `anomalies.jsonl`.
    pub fn as_str(self) -> &'static str {
        match self {
            DetectorKind::OutOfRange => "out_of_range",
            DetectorKind::Spike => "spike",
            DetectorKind::Rate => "rate",
            DetectorKind::Stuck => "stuck",
            DetectorKind::Stale => "stale",
        }
    }
}

/// Size of the rolling window kept per sensor (reads).
pub const DEFAULT_WINDOW: usize = 30;
/// Weight of the newest value in the EWMA.
pub const DEFAULT_EWMA_ALPHA: f64 = 0.1;

/// Validated `[analysis]` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalysisConfig {
    /// Rolling window size per sensor.
    pub window: usize,
    /// EWMA weight of the newest value.
    pub ewma_alpha: f64,
    /// `out_of_range`: valid bounds per kind; `None` when disabled.
    pub out_of_range: Option<out_of_range::Settings>,
    /// `spike` settings; `None` when disabled.
    pub spike: Option<spike::Settings>,
    /// `rate` settings; `None` when disabled.
    pub rate: Option<rate::Settings>,
    /// `stuck` settings; `None` when disabled.
    pub stuck: Option<stuck::Settings>,
    /// `stale` settings; `None` when disabled.
    pub stale: Option<stale::Settings>,
}

impl Default for AnalysisConfig {
    fn default() -> Self {
        AnalysisConfig {
            window: DEFAULT_WINDOW,
            ewma_alpha: DEFAULT_EWMA_ALPHA,
            out_of_range: Some(out_of_range::Settings::default()),
            spike: Some(spike::Settings::default()),
            rate: Some(rate::Settings::default()),
            stuck: Some(stuck::Settings::default()),
            stale: Some(stale::Settings::default()),
        }
    }
}

impl AnalysisConfig {
    /// Passes one observation to every enabled detector of a sensor, in [`DetectorKind::ALL`]
    /// order, calling `found` with each anomaly.
    pub fn observe(
        &self,
        detectors: &mut Detectors,
        obs: &mut Observation<'_>,
        mut found: impl FnMut(DetectorKind, String),
    ) {
        let found = &mut found;
        run(
            DetectorKind::OutOfRange,
            &self.out_of_range,
            &mut detectors.out_of_range,
            obs,
            found,
        );
        run(DetectorKind::Spike, &self.spike, &mut detectors.spike, obs, found);
        run(DetectorKind::Rate, &self.rate, &mut detectors.rate, obs, found);
        run(DetectorKind::Stuck, &self.stuck, &mut detectors.stuck, obs, found);
        run(DetectorKind::Stale, &self.stale, &mut detectors.stale, obs, found);
    }

    /// The valid range of a sensor: its own `range`, else its kind's bounds.
    pub fn range_for(&self, kind: &str, own: Option<(f64, f64)>) -> Option<(f64, f64)> {
        let bounds = self.out_of_range.as_ref()?;
        own.or_else(|| bounds.bounds.get(kind).copied())
    }
}

/// Raw `[analysis]` section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAnalysis {
    window: Option<usize>,
    ewma_alpha: Option<f64>,
    out_of_range: Option<toml::Table>,
    spike: Option<toml::Table>,
    rate: Option<toml::Table>,
    stuck: Option<toml::Table>,
    stale: Option<toml::Table>,
}

/// Resolves the table of detector `name`: absent gives the defaults; otherwise `enabled`
/// (default true) is taken out, the rest is parsed into the detector's raw settings (unknown keys
/// rejected) and validated by `validate`, and `enabled = false` gives `None`.
fn resolve<R: DeserializeOwned, S: Default>(
    table: Option<toml::Table>,
    origin: &str,
    name: &str,
    validate: impl FnOnce(R) -> Result<S, ConfigError>,
) -> Result<Option<S>, ConfigError> {
    let Some(mut table) = table else {
        return Ok(Some(S::default()));
    };
    let enabled = match table.remove("enabled") {
        None => true,
        Some(toml::Value::Boolean(enabled)) => enabled,
        Some(other) => {
            return Err(ConfigError::new(
                origin,
                format!("analysis.{name}.enabled"),
                format!("expected true or false, got {other}"),
            ))
        }
    };
    let raw = from_table(table, origin, &format!("analysis.{name}")).map_err(|mut e| {
        if e.message.starts_with("unknown field") {
            e.message.push_str(", or `enabled`");
        }
        e
    })?;
    let settings = validate(raw)?;
    Ok(enabled.then_some(settings))
}

/// Checks a finite number above zero.
fn above_zero(origin: &str, field: &str, value: f64) -> Result<f64, ConfigError> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(ConfigError::new(
            origin,
            field,
            format!("expected a number above 0, got {value}"),
        ))
    }
}

/// Checks a number in (0, 1].
fn fraction(origin: &str, field: &str, value: f64) -> Result<f64, ConfigError> {
    if value > 0.0 && value <= 1.0 {
        Ok(value)
    } else {
        Err(ConfigError::new(
            origin,
            field,
            format!("expected a number in (0, 1], got {value}"),
        ))
    }
}

impl RawAnalysis {
    pub(crate) fn validate(self, origin: &str, _detectors: &DetectorRegistry) -> Result<AnalysisConfig, ConfigError> {
        let d = AnalysisConfig::default();
        let window = self.window.unwrap_or(d.window);
        if !(3..=MAX_WINDOW).contains(&window) {
            return Err(ConfigError::new(
                origin,
                "analysis.window",
                format!("expected 3 to {MAX_WINDOW} reads, got {window}"),
            ));
        }
        Ok(AnalysisConfig {
            window,
            ewma_alpha: fraction(origin, "analysis.ewma_alpha", self.ewma_alpha.unwrap_or(d.ewma_alpha))?,
            out_of_range: resolve(self.out_of_range, origin, "out_of_range", |raw| {
                out_of_range::Settings::from_raw(raw, origin)
            })?,
            spike: resolve(self.spike, origin, "spike", |raw| {
                spike::Settings::from_raw(raw, origin, window)
            })?,
            rate: resolve(self.rate, origin, "rate", |raw| {
                rate::Settings::from_raw(raw, origin, window)
            })?,
            stuck: resolve(self.stuck, origin, "stuck", |raw| {
                stuck::Settings::from_raw(raw, origin)
            })?,
            stale: resolve(self.stale, origin, "stale", |raw| {
                stale::Settings::from_raw(raw, origin)
            })?,
        })
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// Feeds `series` (None = missed round) to a fresh detector `D` with `settings` the way the
    /// groups' analysis does and returns the 1-based positions that fired.
    pub fn fired<D: Detector>(
        settings: &D::Settings,
        series: &[Option<f64>],
        window: usize,
        range: Option<(f64, f64)>,
    ) -> Vec<usize> {
        let mut detector = D::default();
        let mut w = RollingWindow::new(window);
        let mut scratch = Vec::new();
        let mut hits = Vec::new();
        for (i, value) in series.iter().enumerate() {
            let mut obs = Observation {
                round: i as u64 + 1,
                value: *value,
                window: &w,
                range,
                scratch: &mut scratch,
            };
            if detector.observe(settings, &mut obs).is_some() {
                hits.push(i + 1);
            }
            if let Some(v) = value {
                w.push(*v);
            }
        }
        hits
    }

    /// A clean random walk like the simulated sensor's: steps uniform in +-0.5.
    pub fn clean_walk(n: usize, seed: u64) -> Vec<Option<f64>> {
        let mut state = seed;
        let mut v = 25.0;
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                v += ((state >> 11) as f64 / (1u64 << 53) as f64) - 0.5;
                Some(v)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `config` over 15 reads of 20.0, one of 500.0 and 5 missed rounds.
    fn fired_over_a_script(config: &AnalysisConfig) -> Vec<(u64, DetectorKind)> {
        let mut detectors = Detectors::default();
        let mut window = RollingWindow::new(config.window);
        let (mut scratch, mut fired) = (Vec::new(), Vec::new());
        for round in 1..=21u64 {
            let value = match round {
                1..=15 => Some(20.0),
                16 => Some(500.0),
                _ => None,
            };
            let mut obs = Observation {
                round,
                value,
                window: &window,
                range: config.range_for("temperature", None),
                scratch: &mut scratch,
            };
            config.observe(&mut detectors, &mut obs, |kind, _| fired.push((round, kind)));
            if let Some(v) = value {
                window.push(v);
            }
        }
        fired
    }

    /// The defaults enable every detector, run in `DetectorKind::ALL` order; a disabled one
    /// keeps quiet.
    #[test]
    fn observe_runs_the_enabled_detectors_in_order() {
        use DetectorKind::*;
        let all = fired_over_a_script(&AnalysisConfig::default());
        assert_eq!(all, [(10, Stuck), (16, OutOfRange), (16, Spike), (21, Stale)]);
        let no_stuck = AnalysisConfig {
            stuck: None,
            ..AnalysisConfig::default()
        };
        assert_eq!(fired_over_a_script(&no_stuck), all[1..]);
    }

    #[test]
    fn unknown_and_mistyped_keys_name_the_detector() {
        let parse = |t: &str| {
            raw(t)
                .validate("c.toml", &DetectorRegistry::builtin())
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            parse("spike = { enabld = false }"),
            "c.toml: analysis.spike.enabld: unknown field `enabld`, expected one of `threshold`, `min_samples`, `min_deviation`, or `enabled`"
        );
        assert_eq!(
            parse("stale = { enabled = 1 }"),
            "c.toml: analysis.stale.enabled: expected true or false, got 1"
        );
    }

    fn raw(text: &str) -> RawAnalysis {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn settings_are_validated() {
        let parse = |t: &str| -> Result<AnalysisConfig, ConfigError> {
            let raw: RawAnalysis = toml::from_str(t).unwrap();
            raw.validate("c.toml", &DetectorRegistry::builtin())
        };
        assert_eq!(
            parse("spike = { threshold = -1.0 }").unwrap_err().to_string(),
            "c.toml: analysis.spike.threshold: expected a number above 0, got -1"
        );
        assert_eq!(parse("stuck = { enabled = false }").unwrap().stuck, None);
        assert_eq!(
            parse("window = 70000").unwrap_err().to_string(),
            "c.toml: analysis.window: expected 3 to 65535 reads, got 70000"
        );
        let c = parse("out_of_range = { bounds = { pressure = [900.0, 1100.0] } }").unwrap();
        assert_eq!(c.range_for("pressure", None), Some((900.0, 1100.0)));
        assert_eq!(c.range_for("temperature", None), Some((-40.0, 85.0)));
        assert_eq!(c.range_for("temperature", Some((0.0, 1.0))), Some((0.0, 1.0)));
    }
}
