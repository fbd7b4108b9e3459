//! `rate`: a change over a few reads far outside the sensor's usual changes.
//!
//! The detector watches the change over `span` reads, `value - value[span reads ago]`, and keeps
//! a robust running location and scale of it: an exponentially weighted mean and mean absolute
//! deviation, updated with residuals clipped (Huber-style) to [`CLIP`] scales, so an anomaly
//! moves them only slowly (robust exponential smoothing, Gelper, Fried and Croux, *Journal of
//! Forecasting* 2010). The score of a reading is `|change - mean| / scale`.
//!
//! It catches what a window of recent values misses: a ramp or a shift spread over a few reads
//! (a machine heating or cooling much faster than it ever does), where no single step stands
//! out. A steady trend is quiet (its changes are its mean), and so is a random walk (its changes
//! set the scale). Fires once per episode, on the read whose score first exceeds `threshold`; the
//! episode ends when the score falls below [`REARM`] of the threshold. It judges only after
//! `min_samples` changes have set the scale; missed rounds are skipped, not counted as changes.

use super::{above_zero, fraction};
use super::{Detector, DetectorFactory, Observation, SettingsTable};
use crate::parse::ConfigError;

/// Residuals are clipped to this many scales before they update the running mean and scale.
pub const CLIP: f64 = 3.0;
/// An episode ends when the score falls below this fraction of the threshold.
pub const REARM: f64 = 0.5;

/// Rate settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Robust standard deviations of the change that make an anomaly.
    pub threshold: f64,
    /// Reads the change is measured over.
    pub span: usize,
    /// Weight of the newest change in the running mean and scale.
    pub alpha: f64,
    /// Changes seen before the detector judges.
    pub min_samples: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            threshold: 8.0,
            span: 3,
            alpha: 0.02,
            min_samples: 60,
        }
    }
}

/// The detector's per-sensor state. The value `span` reads ago comes from the sensor's window
/// (which holds the successful reads, as this detector counts them).
#[derive(Debug)]
pub struct Rate {
    /// Running mean of the change.
    mean: f64,
    /// Running mean absolute deviation of the change; NaN before the first change (a NaN, not
    /// an `Option`: 8 bytes less per sensor).
    scale: f64,
    /// Changes seen (saturating).
    changes: u32,
    /// Whether a new episode may fire.
    armed: bool,
}

impl Default for Rate {
    fn default() -> Self {
        Rate {
            mean: 0.0,
            scale: f64::NAN,
            changes: 0,
            armed: true,
        }
    }
}

impl Detector for Rate {
    type Settings = Settings;

    fn observe(&mut self, s: &Settings, obs: &mut Observation<'_>) -> Option<String> {
        let value = obs.value?;
        let mut detail = None;
        if let Some(before) = obs.window.nth_newest(s.span - 1) {
            let change = value - before;
            let residual = change - self.mean;
            match self.scale {
                scale if scale.is_nan() => self.scale = residual.abs(),
                scale => {
                    let judged = self.changes as usize >= s.min_samples;
                    if judged {
                        let score = if residual == 0.0 {
                            0.0
                        } else if scale > 0.0 {
                            residual.abs() / scale
                        } else {
                            f64::INFINITY
                        };
                        if self.armed && score > s.threshold {
                            self.armed = false;
                            let mean = self.mean;
                            detail = Some(obs.detail(|| {
                                format!(
                                    "change {change:+.3} over {} reads is {score:.1} robust sd from the usual {mean:+.3} (threshold {})",
                                    s.span, s.threshold
                                )
                            }));
                        } else if !self.armed && score < s.threshold * REARM {
                            self.armed = true;
                        }
                    }
                    let limit = if judged { CLIP * scale } else { f64::INFINITY };
                    let clipped = residual.clamp(-limit, limit);
                    self.mean += s.alpha * clipped;
                    self.scale = scale + s.alpha * (clipped.abs() - scale);
                }
            }
            self.changes = self.changes.saturating_add(1);
        }
        detail
    }
}

/// Raw `[analysis.rate]`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Raw {
    threshold: Option<f64>,
    span: Option<usize>,
    alpha: Option<f64>,
    min_samples: Option<usize>,
}

impl Settings {
    /// Validates `[analysis.rate]` against the window size (the window holds the reads the
    /// change is measured over).
    pub(crate) fn from_raw(raw: Raw, origin: &str, window: usize) -> Result<Settings, ConfigError> {
        let d = Settings::default();
        let s = Settings {
            threshold: above_zero(origin, "analysis.rate.threshold", raw.threshold.unwrap_or(d.threshold))?,
            span: raw.span.unwrap_or(d.span),
            alpha: fraction(origin, "analysis.rate.alpha", raw.alpha.unwrap_or(d.alpha))?,
            min_samples: raw.min_samples.unwrap_or(d.min_samples),
        };
        if s.span < 1 || s.span > window {
            return Err(ConfigError::new(
                origin,
                "analysis.rate.span",
                format!("expected 1 to analysis.window ({window}) reads, got {}", s.span),
            ));
        }
        Ok(s)
    }
}

/// Registers `rate` ([`DetectorRegistry::builtin`](super::DetectorRegistry::builtin)).
#[derive(Debug, Clone, Copy, Default)]
pub struct Factory;

impl DetectorFactory for Factory {
    type Detector = Rate;

    fn defaults(&self) -> Settings {
        Settings::default()
    }

    fn settings(&self, table: SettingsTable<'_>) -> Result<Settings, ConfigError> {
        let (origin, window) = (table.origin(), table.window());
        Settings::from_raw(table.parse()?, origin, window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::detector::{clean_walk, fired};

    #[test]
    fn fires_once_on_a_fast_ramp() {
        let mut series = clean_walk(300, 9);
        let base = series[199].unwrap();
        for (i, v) in series.iter_mut().enumerate().skip(200).take(10) {
            *v = Some(base + 2.0 * (i - 199) as f64);
        }
        for v in series.iter_mut().skip(210) {
            *v = v.map(|x| x + 20.0);
        }
        let hits = fired::<Rate>(&Settings::default(), &series, 30, None);
        assert_eq!(hits, [202]);
    }

    #[test]
    fn quiet_on_clean_walks_gaps_and_trends() {
        for seed in 0..20 {
            let mut series = clean_walk(2000, seed);
            for i in (0..2000).step_by(7) {
                series[i] = None;
            }
            let hits = fired::<Rate>(&Settings::default(), &series, 30, None);
            assert!(hits.is_empty(), "seed {seed}: {hits:?}");
        }
        let trend: Vec<Option<f64>> = (0..500).map(|i| Some(20.0 + 0.3 * i as f64)).collect();
        assert!(fired::<Rate>(&Settings::default(), &trend, 30, None).is_empty());
    }

    #[test]
    fn span_must_fit_the_window() {
        let raw = |span| Raw {
            threshold: None,
            span: Some(span),
            alpha: None,
            min_samples: None,
        };
        assert_eq!(Settings::from_raw(raw(30), "c.toml", 30).unwrap().span, 30);
        assert_eq!(
            Settings::from_raw(raw(31), "c.toml", 30).unwrap_err().to_string(),
            "c.toml: analysis.rate.span: expected 1 to analysis.window (30) reads, got 31"
        );
        assert_eq!(
            Settings::from_raw(raw(0), "c.toml", 30).unwrap_err().to_string(),
            "c.toml: analysis.rate.span: expected 1 to analysis.window (30) reads, got 0"
        );
    }

    #[test]
    fn waits_for_min_samples() {
        let mut series = vec![Some(1.0), Some(1.1), Some(1.0), Some(1.1)];
        series.push(Some(100.0));
        assert!(fired::<Rate>(&Settings::default(), &series, 30, None).is_empty());
    }
}
