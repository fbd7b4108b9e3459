//! Helpers to exercise an anomaly detector on a series of values, and its configuration on a
//! piece of `[analysis]`: the ones the built-in detectors are tested with.
//!
//! ```
//! use sensor_actors::analysis::stale::{Settings, Stale};
//! use sensor_actors::testing::detector::fired;
//!
//! // Five missed rounds make a sensor stale, once per gap.
//! let series = [Some(1.0), None, None, None, None, None, None, Some(1.0)];
//! assert_eq!(fired::<Stale>(&Settings { rounds: 5 }, &series, 30, None), [6]);
//! ```

use crate::analysis::{AnalysisConfig, Detector, DetectorFactory, DetectorRegistry, Observation, RawAnalysis};
use crate::parse::ConfigError;
use crate::stats::RollingWindow;

/// Feeds `series` (`None` = a round without a reading) to a fresh detector `D` with `settings`,
/// the way the analysis does (a rolling window of `window` values, each sensor's valid range
/// `range`), and returns each anomaly: its 1-based position in `series` and its detail.
pub fn findings<D: Detector>(
    settings: &D::Settings,
    series: &[Option<f64>],
    window: usize,
    range: Option<(f64, f64)>,
) -> Vec<(usize, String)> {
    let mut detector = D::default();
    let mut w = RollingWindow::new(window);
    let mut scratch = Vec::new();
    let mut found = Vec::new();
    for (i, value) in series.iter().enumerate() {
        let mut obs = Observation::new(i as u64 + 1, *value, &w, range, &mut scratch);
        if let Some(detail) = detector.observe(settings, &mut obs) {
            found.push((i + 1, detail));
        }
        if let Some(v) = value {
            w.push(*v);
        }
    }
    found
}

/// The 1-based positions in `series` where detector `D` fires (see [`findings`]).
pub fn fired<D: Detector>(
    settings: &D::Settings,
    series: &[Option<f64>],
    window: usize,
    range: Option<(f64, f64)>,
) -> Vec<usize> {
    findings::<D>(settings, series, window, range)
        .into_iter()
        .map(|(position, _)| position)
        .collect()
}

/// A clean random walk like the simulated sensor's: from 25, steps uniform in +-0.5, the same
/// for the same `seed`. A detector should keep quiet on it.
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

/// The settings `factory` makes as detector `name` from `analysis`, the body of an `[analysis]`
/// section in TOML (such as `"window = 10\n[name]\nlimit = 3"`), validated as a configuration
/// file `test.toml` would be, beside the built-in detectors: `Ok(None)` when it is disabled, or
/// the one-line error a user would see. (The settings are cloned out of the configuration.)
///
/// ```
/// use sensor_actors::analysis::stale;
/// use sensor_actors::testing::detector::settings;
///
/// #[derive(Debug, Clone, Copy)]
/// struct Wrapped;
/// impl sensor_actors::analysis::DetectorFactory for Wrapped {
///     type Detector = stale::Stale;
///     fn defaults(&self) -> stale::Settings {
///         stale::Settings { rounds: 2 }
///     }
///     fn settings(&self, table: sensor_actors::analysis::SettingsTable<'_>) -> Result<stale::Settings, sensor_actors::ConfigError> {
///         stale::Factory.settings(table)
///     }
/// }
/// assert_eq!(settings("gap", Wrapped, "").unwrap(), Some(stale::Settings { rounds: 2 }));
/// assert_eq!(settings("gap", Wrapped, "gap = { enabled = false }").unwrap(), None);
/// assert_eq!(
///     settings("gap", Wrapped, "gap = { round = 2 }").unwrap_err().to_string(),
///     "test.toml: analysis.gap.round: unknown field `round`, expected `rounds`, or `enabled`"
/// );
/// ```
///
/// # Panics
///
/// When `analysis` is not valid TOML, or `name` could not be registered
/// ([`DetectorRegistry::register`]).
pub fn settings<F: DetectorFactory>(
    name: &str,
    factory: F,
    analysis: &str,
) -> Result<Option<<F::Detector as Detector>::Settings>, ConfigError>
where
    <F::Detector as Detector>::Settings: Clone,
{
    let mut registry = DetectorRegistry::builtin();
    registry.register(name, factory);
    let raw: RawAnalysis = toml::from_str(analysis).expect("the [analysis] text is TOML");
    let config: AnalysisConfig = raw.validate("test.toml", &registry)?;
    Ok(config.settings::<<F::Detector as Detector>::Settings>(name).cloned())
}
