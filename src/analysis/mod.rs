//! Anomaly detection: the detectors the aggregator runs on every sensor's observations.
//!
//! Each round, every sensor yields one [`Observation`]: its value, or none when the round got no
//! reading from it. The aggregator passes the observation, with the sensor's recent history, to
//! each enabled [`Detector`] of that sensor; a detector that finds an anomaly returns its detail,
//! which becomes one line of `anomalies.jsonl`.
//!
//! The detectors are the closed list [`DetectorKind`]; adding one is a new file in this folder
//! plus one line in [`DetectorKind::ALL`] and in the `match` of [`AnalysisConfig::build`].
//! Settings live in `[analysis]` (see `docs/configuration.md`).

pub mod out_of_range;
pub mod rate;
pub mod spike;
pub mod stale;
pub mod stuck;

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::config::{check_range, ConfigError};
use crate::stats::RollingWindow;

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

/// Looks at one sensor's observations, one at a time, and reports anomalies.
pub trait Detector: Send {
    /// Examines one observation; returns a human-readable detail when it is anomalous.
    fn observe(&mut self, obs: &mut Observation<'_>) -> Option<String>;
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
    /// Builds the detectors of one sensor, in [`DetectorKind::ALL`] order.
    pub fn build(&self) -> Vec<(DetectorKind, Box<dyn Detector>)> {
        let mut detectors: Vec<(DetectorKind, Box<dyn Detector>)> = Vec::new();
        for kind in DetectorKind::ALL {
            let detector: Option<Box<dyn Detector>> = match kind {
                DetectorKind::OutOfRange => self.out_of_range.as_ref().map(|_| out_of_range::OutOfRange::boxed()),
                DetectorKind::Spike => self.spike.as_ref().map(|s| spike::Spike::boxed(s.clone())),
                DetectorKind::Rate => self.rate.as_ref().map(|s| rate::Rate::boxed(s.clone())),
                DetectorKind::Stuck => self.stuck.as_ref().map(|s| stuck::Stuck::boxed(s.clone())),
                DetectorKind::Stale => self.stale.as_ref().map(|s| stale::Stale::boxed(s.clone())),
            };
            if let Some(d) = detector {
                detectors.push((kind, d));
            }
        }
        detectors
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
    out_of_range: Option<RawOutOfRange>,
    spike: Option<RawSpike>,
    rate: Option<RawRate>,
    stuck: Option<RawStuck>,
    stale: Option<RawStale>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutOfRange {
    enabled: Option<bool>,
    bounds: Option<BTreeMap<String, [f64; 2]>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpike {
    enabled: Option<bool>,
    threshold: Option<f64>,
    min_samples: Option<usize>,
    min_deviation: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRate {
    enabled: Option<bool>,
    threshold: Option<f64>,
    span: Option<usize>,
    alpha: Option<f64>,
    min_samples: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStuck {
    enabled: Option<bool>,
    reads: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStale {
    enabled: Option<bool>,
    rounds: Option<u32>,
}

impl RawAnalysis {
    pub(crate) fn validate(self, origin: &str) -> Result<AnalysisConfig, ConfigError> {
        let d = AnalysisConfig::default();
        let window = self.window.unwrap_or(d.window);
        if window < 3 {
            return Err(ConfigError::new(
                origin,
                "analysis.window",
                format!("expected at least 3 reads, got {window}"),
            ));
        }
        let ewma_alpha = self.ewma_alpha.unwrap_or(d.ewma_alpha);
        if !(ewma_alpha > 0.0 && ewma_alpha <= 1.0) {
            return Err(ConfigError::new(
                origin,
                "analysis.ewma_alpha",
                format!("expected a number in (0, 1], got {ewma_alpha}"),
            ));
        }
        let out_of_range = match self.out_of_range {
            Some(RawOutOfRange {
                enabled: Some(false), ..
            }) => None,
            Some(RawOutOfRange { bounds: Some(raw), .. }) => {
                let mut bounds = out_of_range::Settings::default().bounds;
                for (kind, pair) in raw {
                    let range = check_range(origin, &format!("analysis.out_of_range.bounds.{kind}"), pair)?;
                    bounds.insert(kind, range);
                }
                Some(out_of_range::Settings { bounds })
            }
            _ => d.out_of_range,
        };
        let spike = match self.spike {
            Some(RawSpike {
                enabled: Some(false), ..
            }) => None,
            Some(raw) => {
                let base = spike::Settings::default();
                let s = spike::Settings {
                    threshold: raw.threshold.unwrap_or(base.threshold),
                    min_samples: raw.min_samples.unwrap_or(base.min_samples),
                    min_deviation: raw.min_deviation.unwrap_or(base.min_deviation),
                };
                if !(s.threshold.is_finite() && s.threshold > 0.0) {
                    return Err(ConfigError::new(
                        origin,
                        "analysis.spike.threshold",
                        format!("expected a number above 0, got {}", s.threshold),
                    ));
                }
                if s.min_samples < 3 || s.min_samples > window {
                    return Err(ConfigError::new(
                        origin,
                        "analysis.spike.min_samples",
                        format!("expected 3 to analysis.window ({window}), got {}", s.min_samples),
                    ));
                }
                if !(s.min_deviation.is_finite() && s.min_deviation >= 0.0) {
                    return Err(ConfigError::new(
                        origin,
                        "analysis.spike.min_deviation",
                        format!("expected a number >= 0, got {}", s.min_deviation),
                    ));
                }
                Some(s)
            }
            None => d.spike,
        };
        let rate = match self.rate {
            Some(RawRate {
                enabled: Some(false), ..
            }) => None,
            Some(raw) => {
                let base = rate::Settings::default();
                let s = rate::Settings {
                    threshold: raw.threshold.unwrap_or(base.threshold),
                    span: raw.span.unwrap_or(base.span),
                    alpha: raw.alpha.unwrap_or(base.alpha),
                    min_samples: raw.min_samples.unwrap_or(base.min_samples),
                };
                if !(s.threshold.is_finite() && s.threshold > 0.0) {
                    return Err(ConfigError::new(
                        origin,
                        "analysis.rate.threshold",
                        format!("expected a number above 0, got {}", s.threshold),
                    ));
                }
                if s.span < 1 {
                    return Err(ConfigError::new(
                        origin,
                        "analysis.rate.span",
                        "expected at least 1 read, got 0",
                    ));
                }
                if !(s.alpha > 0.0 && s.alpha <= 1.0) {
                    return Err(ConfigError::new(
                        origin,
                        "analysis.rate.alpha",
                        format!("expected a number in (0, 1], got {}", s.alpha),
                    ));
                }
                Some(s)
            }
            None => d.rate,
        };
        let stuck = match self.stuck {
            Some(RawStuck {
                enabled: Some(false), ..
            }) => None,
            Some(RawStuck { reads, .. }) => {
                let reads = reads.unwrap_or(stuck::Settings::default().reads);
                if reads < 2 {
                    return Err(ConfigError::new(
                        origin,
                        "analysis.stuck.reads",
                        format!("expected at least 2 reads, got {reads}"),
                    ));
                }
                Some(stuck::Settings { reads })
            }
            None => d.stuck,
        };
        let stale = match self.stale {
            Some(RawStale {
                enabled: Some(false), ..
            }) => None,
            Some(RawStale { rounds, .. }) => {
                let rounds = rounds.unwrap_or(stale::Settings::default().rounds);
                if rounds < 1 {
                    return Err(ConfigError::new(
                        origin,
                        "analysis.stale.rounds",
                        "expected at least 1 round, got 0",
                    ));
                }
                Some(stale::Settings { rounds })
            }
            None => d.stale,
        };
        Ok(AnalysisConfig {
            window,
            ewma_alpha,
            out_of_range,
            spike,
            rate,
            stuck,
            stale,
        })
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// Feeds `series` (None = missed round) to `detector` the way the aggregator does and
    /// returns the 1-based positions that fired.
    pub fn fired(
        detector: &mut dyn Detector,
        series: &[Option<f64>],
        window: usize,
        range: Option<(f64, f64)>,
    ) -> Vec<usize> {
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
            if detector.observe(&mut obs).is_some() {
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

    #[test]
    fn defaults_enable_every_detector() {
        let built = AnalysisConfig::default().build();
        let kinds: Vec<_> = built.iter().map(|(k, _)| *k).collect();
        assert_eq!(kinds, DetectorKind::ALL);
    }

    #[test]
    fn settings_are_validated() {
        let parse = |t: &str| -> Result<AnalysisConfig, ConfigError> {
            let raw: RawAnalysis = toml::from_str(t).unwrap();
            raw.validate("c.toml")
        };
        assert_eq!(
            parse("spike = { threshold = -1.0 }").unwrap_err().to_string(),
            "c.toml: analysis.spike.threshold: expected a number above 0, got -1"
        );
        assert_eq!(parse("stuck = { enabled = false }").unwrap().stuck, None);
        let c = parse("out_of_range = { bounds = { pressure = [900.0, 1100.0] } }").unwrap();
        assert_eq!(c.range_for("pressure", None), Some((900.0, 1100.0)));
        assert_eq!(c.range_for("temperature", None), Some((-40.0, 85.0)));
        assert_eq!(c.range_for("temperature", Some((0.0, 1.0))), Some((0.0, 1.0)));
    }
}
