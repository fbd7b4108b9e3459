//! Anomaly detection: the detectors run on every sensor's observations, the registry of
//! detectors by name ([`registry`]), and the analysis of a set of sensors (`tracks.rs`, kept by the arbiters' aggregators).
//!
//! Each round, every sensor yields one [`Observation`]: its value, or none when the round got no
//! reading from it. The analysis passes the observation, with the sensor's recent history, to
//! each enabled [`Detector`], in registration order; a detector that finds an anomaly returns its
//! detail, which becomes one finding (a line of `anomalies.jsonl`) named
//! after the detector.
//!
//! Detectors are registered by name ([`DetectorRegistry`], or
//! [`Collector::detector`](crate::Collector::detector) from outside the crate) with a
//! [`DetectorFactory`] that validates their `[analysis.<name>]` table. A detector's settings are
//! kept once per run (in [`AnalysisConfig`]); per sensor only its state is kept, in one `Vec`
//! per detector and group (nothing for a detector that needs no state): at 100,000 sensors that
//! is the difference between a few dozen bytes and a boxed object per detector and sensor. A
//! built-in detector is one file in this folder plus one line in
//! [`DetectorRegistry::builtin`]. Settings live in `[analysis]` (see `docs/configuration.md`).

pub mod out_of_range;
pub mod rate;
pub mod registry;
pub mod spike;
pub mod stale;
pub mod stuck;
pub(crate) mod tracks;

use std::fmt;
use std::sync::Arc;

pub use registry::{DetectorFactory, DetectorRegistry, Field, SettingsTable};

use crate::parse::ConfigError;
use crate::stats::{RollingWindow, MAX_WINDOW};
use registry::{DetectorColumn, EnabledDetector, ANALYSIS_KEYS};

/// What a detector sees of one sensor in one round.
#[derive(Debug)]
#[non_exhaustive]
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
    /// Whether anyone reads the detail of an anomaly found ([`Observation::detail`]).
    detail: bool,
}

impl<'a> Observation<'a> {
    /// An observation of `value` in `round`, after the values of `window`, with valid range
    /// `range`; `scratch` is reused across observations. For testing a detector outside the
    /// analysis (see [`testing::detector`](crate::testing::detector)).
    pub fn new(
        round: u64,
        value: Option<f64>,
        window: &'a RollingWindow,
        range: Option<(f64, f64)>,
        scratch: &'a mut Vec<f64>,
    ) -> Self {
        Observation {
            round,
            value,
            window,
            range,
            scratch,
            detail: true,
        }
    }

    /// The same observation, but nobody reads the detail of an anomaly found: the analysis
    /// then only counts it (no subscriber to the anomalies and no debug log of them).
    pub fn without_detail(mut self) -> Self {
        self.detail = false;
        self
    }

    /// Whether anyone reads the detail of an anomaly found in this observation. A detector may
    /// skip building its text when not ([`Observation::detail`] does that); whatever it returns
    /// is then dropped, and only the anomaly is counted.
    pub fn wants_detail(&self) -> bool {
        self.detail
    }

    /// The detail `text()` makes, when anyone reads it ([`Observation::wants_detail`]); else an
    /// empty string (no allocation, no formatting). For a detector's verdict:
    /// `anomalous.then(|| obs.detail(|| format!(...)))`.
    pub fn detail(&self, text: impl FnOnce() -> String) -> String {
        if self.detail {
            text()
        } else {
            String::new()
        }
    }
}

/// Looks at one sensor's observations, one at a time, and reports anomalies. The implementing
/// type is the detector's per-sensor state (a unit struct when it needs none, which then costs
/// nothing per sensor); its settings are shared by every sensor. Register it by name with a
/// [`DetectorFactory`].
///
/// ```
/// use sensor_actors::analysis::{Detector, Observation};
///
/// /// Fires when a sensor reads the same value `rounds` times in a row.
/// #[derive(Default)]
/// struct Repeats {
///     run: u32,
/// }
///
/// impl Detector for Repeats {
///     type Settings = u32;
///     fn observe(&mut self, rounds: &u32, obs: &mut Observation<'_>) -> Option<String> {
///         let value = obs.value?;
///         self.run = if obs.window.last() == Some(value) { self.run + 1 } else { 1 };
///         (self.run == *rounds).then(|| format!("{value} read {rounds} times in a row"))
///     }
/// }
/// ```
pub trait Detector: Default + Send + 'static {
    /// The detector's validated settings.
    type Settings: fmt::Debug + PartialEq + Send + Sync + 'static;
    /// Examines one observation; returns a human-readable detail when it is anomalous. When
    /// nobody reads the detail ([`Observation::wants_detail`] is false) it is dropped unread,
    /// and the detector may return an empty one ([`Observation::detail`]).
    fn observe(&mut self, settings: &Self::Settings, obs: &mut Observation<'_>) -> Option<String>;
}

/// Size of the rolling window kept per sensor (reads).
pub const DEFAULT_WINDOW: usize = 30;
/// Weight of the newest value in the EWMA.
pub const DEFAULT_EWMA_ALPHA: f64 = 0.1;

/// Validated `[analysis]` settings: the window, the EWMA and the enabled detectors with their
/// settings, in the order they run.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalysisConfig {
    /// Rolling window size per sensor.
    pub window: usize,
    /// EWMA weight of the newest value.
    pub ewma_alpha: f64,
    /// The enabled detectors, in registration order.
    detectors: Vec<EnabledDetector>,
}

impl Default for AnalysisConfig {
    /// The built-in detectors with their default settings.
    fn default() -> Self {
        let detectors = DetectorRegistry::builtin()
            .configure("defaults", DEFAULT_WINDOW, |_| None)
            .expect("the built-in defaults are valid");
        AnalysisConfig {
            window: DEFAULT_WINDOW,
            ewma_alpha: DEFAULT_EWMA_ALPHA,
            detectors,
        }
    }
}

impl AnalysisConfig {
    /// The names of the enabled detectors, in the order they run.
    pub fn detectors(&self) -> impl Iterator<Item = &str> {
        self.detectors.iter().map(|d| &*d.name)
    }

    /// The settings of detector `name`, when it is enabled and its settings are an `S`.
    ///
    /// ```
    /// use sensor_actors::analysis::stale;
    ///
    /// let config = sensor_actors::Collector::new().parse("[analysis.stale]\nrounds = 3\n[[sensors]]\ncount = 2\n", "c.toml")?;
    /// assert_eq!(config.analysis.settings::<stale::Settings>("stale"), Some(&stale::Settings { rounds: 3 }));
    /// # Ok::<(), sensor_actors::ConfigError>(())
    /// ```
    pub fn settings<S: 'static>(&self, name: &str) -> Option<&S> {
        let detector = self.detectors.iter().find(|d| &*d.name == name)?;
        detector.configured.settings().downcast_ref()
    }

    /// Leaves detector `name` out, as `enabled = false` does.
    pub fn disable(&mut self, name: &str) {
        self.detectors.retain(|d| &*d.name != name);
    }

    /// The enabled detectors' states for `members` sensors, one column per detector.
    pub(crate) fn columns(&self, members: usize) -> Vec<Box<dyn DetectorColumn>> {
        self.detectors.iter().map(|d| d.configured.column(members)).collect()
    }

    /// Passes one observation of member `member` to every enabled detector, in registration
    /// order, calling `found` with the detector's name and the detail of each anomaly, and
    /// `panicked` with its name and the message when a detector panics (caught: the other
    /// detectors still run). `columns` are this configuration's [`columns`](Self::columns).
    pub(crate) fn observe(
        &self,
        columns: &mut [Box<dyn DetectorColumn>],
        member: usize,
        obs: &mut Observation<'_>,
        mut found: impl FnMut(&Arc<str>, String),
        mut panicked: impl FnMut(&Arc<str>, String),
    ) {
        for (detector, column) in self.detectors.iter().zip(columns) {
            // A detector's panic (a bug in a registered one) costs that detector's verdict on
            // this observation, nothing else.
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| column.observe(member, obs))) {
                Ok(Some(detail)) => found(&detector.name, detail),
                Ok(None) => {}
                Err(payload) => panicked(&detector.name, crate::panic::panic_message(&*payload)),
            }
        }
    }

    /// The valid range of a sensor: its own `range`, else its kind's bounds; none when
    /// `out_of_range` is disabled.
    pub fn range_for(&self, kind: &str, own: Option<(f64, f64)>) -> Option<(f64, f64)> {
        let bounds = self.settings::<out_of_range::Settings>("out_of_range")?;
        own.or_else(|| bounds.bounds.get(kind).copied())
    }
}

/// Raw `[analysis]` section: its own keys and one table per configured detector, resolved
/// against the registry by [`RawAnalysis::validate`].
#[derive(Debug, Default, serde::Deserialize)]
#[serde(transparent)]
pub(crate) struct RawAnalysis(toml::Table);

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
    /// Takes key `key` of `[analysis]` out, typed.
    fn take<T: serde::de::DeserializeOwned>(&mut self, origin: &str, key: &str) -> Result<Option<T>, ConfigError> {
        self.0
            .remove(key)
            .map(|value| {
                T::deserialize(value)
                    .map_err(|e| ConfigError::new(origin, format!("analysis.{key}"), e.message().to_string()))
            })
            .transpose()
    }

    /// Validates `[analysis]`: the window and EWMA, then every registered detector from its
    /// table (or its defaults); a key naming no registered detector is an error.
    pub(crate) fn validate(
        mut self,
        origin: &str,
        detectors: &DetectorRegistry,
    ) -> Result<AnalysisConfig, ConfigError> {
        let window = self.take::<usize>(origin, "window")?.unwrap_or(DEFAULT_WINDOW);
        if !(3..=MAX_WINDOW).contains(&window) {
            return Err(ConfigError::new(
                origin,
                "analysis.window",
                format!("expected 3 to {MAX_WINDOW} reads, got {window}"),
            ));
        }
        let alpha = self.take::<f64>(origin, "ewma_alpha")?.unwrap_or(DEFAULT_EWMA_ALPHA);
        let ewma_alpha = fraction(origin, "analysis.ewma_alpha", alpha)?;
        debug_assert!(ANALYSIS_KEYS.iter().all(|k| !self.0.contains_key(*k)));
        if let Some((key, value)) = self.0.iter().find(|(key, _)| detectors.names().all(|n| n != *key)) {
            return Err(detectors.unknown(origin, key, value));
        }
        let detectors = detectors.configure(origin, window, |name| self.0.remove(name))?;
        Ok(AnalysisConfig {
            window,
            ewma_alpha,
            detectors,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `config` over 15 reads of 20.0, one of 500.0 and 5 missed rounds.
    fn fired_over_a_script(config: &AnalysisConfig) -> Vec<(u64, String)> {
        let mut columns = config.columns(1);
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
                detail: true,
            };
            config.observe(
                &mut columns,
                0,
                &mut obs,
                |name, _| fired.push((round, name.to_string())),
                |name, message| panic!("{name} panicked: {message}"),
            );
            if let Some(v) = value {
                window.push(v);
            }
        }
        fired
    }

    /// The defaults enable every built-in detector, run in registration order; a disabled one
    /// keeps quiet.
    #[test]
    fn observe_runs_the_enabled_detectors_in_order() {
        let all = fired_over_a_script(&AnalysisConfig::default());
        let expected = [(10, "stuck"), (16, "out_of_range"), (16, "spike"), (21, "stale")];
        assert_eq!(all, expected.map(|(r, n)| (r, n.to_string())));
        let mut no_stuck = AnalysisConfig::default();
        no_stuck.disable("stuck");
        assert_eq!(fired_over_a_script(&no_stuck), all[1..]);
    }

    /// An observation whose details nobody reads gets an anomaly's verdict without its text.
    #[test]
    fn a_detail_nobody_reads_is_not_made() {
        let window = RollingWindow::new(30);
        let mut scratch = Vec::new();
        let settings = out_of_range::Settings::default();
        let mut obs = Observation::new(1, Some(500.0), &window, Some((-40.0, 85.0)), &mut scratch);
        assert!(obs.wants_detail());
        assert_eq!(
            out_of_range::OutOfRange.observe(&settings, &mut obs).as_deref(),
            Some("value 500 outside the valid range [-40, 85]")
        );
        let mut obs = obs.without_detail();
        assert!(!obs.wants_detail());
        assert_eq!(
            out_of_range::OutOfRange.observe(&settings, &mut obs),
            Some(String::new())
        );
        assert_eq!(obs.detail(|| unreachable!("not made")), "");
    }

    #[test]
    fn builtins_are_registered_in_their_running_order() {
        let registry = DetectorRegistry::builtin();
        let names: Vec<&str> = registry.names().collect();
        assert_eq!(names, ["out_of_range", "spike", "rate", "stuck", "stale"]);
        assert_eq!(AnalysisConfig::default().detectors().collect::<Vec<_>>(), names);
    }

    #[test]
    fn unknown_detectors_and_keys_list_the_registered_names() {
        let parse = |t: &str| {
            raw(t)
                .validate("c.toml", &DetectorRegistry::builtin())
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            parse("[flatline]\nrounds = 3"),
            "c.toml: analysis.flatline: unknown detector, expected one of out_of_range, spike, rate, stuck, stale"
        );
        assert_eq!(
            parse("windw = 3"),
            "c.toml: analysis.windw: unknown field, expected window, ewma_alpha or a detector's table (one of out_of_range, spike, rate, stuck, stale)"
        );
        assert_eq!(
            parse("spike = 3"),
            "c.toml: analysis.spike: expected a table of the detector's settings, got 3"
        );
        assert_eq!(
            parse("window = -3"),
            "c.toml: analysis.window: invalid value: integer `-3`, expected usize"
        );
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
        let no_stuck = parse("stuck = { enabled = false }").unwrap();
        assert_eq!(no_stuck.settings::<stuck::Settings>("stuck"), None);
        assert_eq!(no_stuck.detectors().count(), 4);
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
