//! `spike`: a value that jumps away from its sensor's recent values.
//!
//! Two robust z-scores must both exceed `threshold`:
//! - the *level* score, `|value - median| / scale` over the rolling window, and
//! - the *step* score, `|step - median step| / scale` of the step from the previous value,
//!   measured against the steps between consecutive values in the window.
//!
//! The scale is `1.4826 * MAD` (or `1.2533 * mean absolute deviation` when the MAD is zero), so
//! outliers already in the window neither hide the next spike nor inflate the scale. The step
//! score keeps a slowly trending series (a random walk, a warming machine) quiet; the level score
//! keeps the return from a spike (a big step back to normal) quiet. A reading fires only when the
//! window holds `min_samples` values and its deviation from the median exceeds `min_deviation`.

use super::above_zero;
use super::{Detector, DetectorFactory, Observation, SettingsTable};
use crate::parse::ConfigError;

use crate::stats::{robust_location_scale, MAD_TO_SD};

/// Spike settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Robust standard deviations (of level and of step) that make a spike.
    pub threshold: f64,
    /// Values the window must hold before the detector judges.
    pub min_samples: usize,
    /// Absolute deviations at or below this never fire (sensor resolution, in the sensor's unit).
    pub min_deviation: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            threshold: 6.0,
            min_samples: 10,
            min_deviation: 0.0,
        }
    }
}

/// The detector; it keeps no state of its own (it judges from the window).
#[derive(Debug, Default)]
pub struct Spike;

/// Relative margin of the quick rejection in [`Spike::observe`], far above rounding error, so
/// that a read it rejects is one the exact computation rejects too.
const QUICK_REJECT_MARGIN: f64 = 1e-9;

/// `deviation / scale`; infinite for a nonzero deviation on a zero scale.
fn score(deviation: f64, scale: f64) -> f64 {
    if deviation == 0.0 {
        0.0
    } else if scale > 0.0 {
        deviation / scale
    } else {
        f64::INFINITY
    }
}

impl Detector for Spike {
    type Settings = Settings;

    fn observe(&mut self, settings: &Settings, obs: &mut Observation<'_>) -> Option<String> {
        let value = obs.value?;
        let window = obs.window;
        if window.len() < settings.min_samples.max(3) {
            return None;
        }
        let median = window.median()?;
        let deviation = (value - median).abs();
        if deviation <= settings.min_deviation {
            return None;
        }
        // Most reads are far from spikes: when the MAD is certainly large enough that the level
        // score stays under the threshold, the exact MAD is not needed.
        let enough = deviation / (MAD_TO_SD * settings.threshold) * (1.0 + QUICK_REJECT_MARGIN);
        if window.mad_at_least(median, enough) {
            return None;
        }
        let (median, level_scale) = window.robust()?;
        let level = score(deviation, level_scale);
        if level <= settings.threshold {
            return None;
        }
        let last = window.last()?;
        let scratch = &mut *obs.scratch;
        scratch.clear();
        let mut previous = None;
        for v in window.iter() {
            if let Some(p) = previous {
                scratch.push(v - p);
            }
            previous = Some(v);
        }
        let (median_step, step_scale) = robust_location_scale(scratch)?;
        let step = score((value - last - median_step).abs(), step_scale);
        (step > settings.threshold).then(|| {
            obs.detail(|| {
                format!(
                    "value {value:.3} is {level:.1} robust sd from the window median {median:.3} and a step of {step:.1} robust sd (threshold {})",
                    settings.threshold
                )
            })
        })
    }
}

/// Raw `[analysis.spike]`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Raw {
    threshold: Option<f64>,
    min_samples: Option<usize>,
    min_deviation: Option<f64>,
}

impl Settings {
    /// Validates `[analysis.spike]` against the window size.
    pub(crate) fn from_raw(raw: Raw, origin: &str, window: usize) -> Result<Settings, ConfigError> {
        let d = Settings::default();
        let s = Settings {
            threshold: above_zero(origin, "analysis.spike.threshold", raw.threshold.unwrap_or(d.threshold))?,
            min_samples: raw.min_samples.unwrap_or(d.min_samples),
            min_deviation: raw.min_deviation.unwrap_or(d.min_deviation),
        };
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
        Ok(s)
    }
}

/// Registers `spike` ([`DetectorRegistry::builtin`](super::DetectorRegistry::builtin)).
#[derive(Debug, Clone, Copy, Default)]
pub struct Factory;

impl DetectorFactory for Factory {
    type Detector = Spike;

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
    fn fires_on_a_spike_even_after_an_earlier_one() {
        let mut series = clean_walk(200, 5);
        series[100] = Some(series[99].unwrap() + 15.0);
        series[105] = Some(series[104].unwrap() - 15.0);
        let hits = fired::<Spike>(&Settings::default(), &series, 30, None);
        assert_eq!(hits, [101, 106]);
    }

    #[test]
    fn quiet_on_a_clean_walk_and_a_steady_trend() {
        for seed in 0..20 {
            let hits = fired::<Spike>(&Settings::default(), &clean_walk(2000, seed), 30, None);
            assert!(hits.is_empty(), "seed {seed}: {hits:?}");
        }
        let trend: Vec<Option<f64>> = (0..500).map(|i| Some(20.0 + 0.3 * i as f64)).collect();
        assert!(fired::<Spike>(&Settings::default(), &trend, 30, None).is_empty());
    }

    /// The detector (sorted window, quick rejection) against a naive reference that computes
    /// the median and MAD of every window from scratch: the same reads fire, over series with
    /// many ties, flat stretches, plateaus and jumps, odd and even window lengths.
    #[test]
    fn quick_rejection_matches_the_naive_computation() {
        fn naive(settings: &Settings, series: &[Option<f64>], window: usize) -> Vec<usize> {
            let mut held: Vec<f64> = Vec::new();
            let mut hits = Vec::new();
            for (i, value) in series.iter().enumerate() {
                if let Some(value) = *value {
                    if held.len() >= settings.min_samples.max(3) {
                        let (median, scale) = robust_location_scale(&mut held.clone()).unwrap();
                        let deviation = (value - median).abs();
                        if deviation > settings.min_deviation && score(deviation, scale) > settings.threshold {
                            let mut steps: Vec<f64> = held.windows(2).map(|w| w[1] - w[0]).collect();
                            let (median_step, step_scale) = robust_location_scale(&mut steps).unwrap();
                            let last = *held.last().unwrap();
                            if score((value - last - median_step).abs(), step_scale) > settings.threshold {
                                hits.push(i + 1);
                            }
                        }
                    }
                    held.push(f64::from(value as f32));
                    if held.len() > window {
                        held.remove(0);
                    }
                }
            }
            hits
        }
        let mut state = 7u64;
        let mut next = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            state >> 33
        };
        let mut total_hits = 0;
        for case in 0..300 {
            let window = [10, 11, 30, 31][case % 4];
            let coarse = case % 3 == 0;
            let mut level = 20.0;
            let series: Vec<Option<f64>> = (0..400)
                .map(|_| {
                    let r = next();
                    match r % 100 {
                        0..=4 => None,
                        5..=7 => Some(level + ((r % 7) as f64 - 3.0) * 10.0),
                        8 => {
                            level += ((r % 5) as f64 - 2.0) * 3.0;
                            Some(level)
                        }
                        _ if coarse => Some(level + ((r >> 8) % 3) as f64 * 0.5),
                        _ => Some(level + ((r >> 8) % 1000) as f64 / 1000.0),
                    }
                })
                .collect();
            for settings in [
                Settings::default(),
                Settings {
                    threshold: 2.0,
                    min_samples: 5,
                    min_deviation: 0.25,
                },
            ] {
                let expected = naive(&settings, &series, window);
                assert_eq!(
                    fired::<Spike>(&settings, &series, window, None),
                    expected,
                    "case {case}"
                );
                total_hits += expected.len();
            }
        }
        assert!(
            total_hits > 1000,
            "the series must exercise firing reads too: {total_hits}"
        );
    }

    #[test]
    fn waits_for_min_samples() {
        let series = [Some(1.0), Some(1.0), Some(100.0)];
        assert!(fired::<Spike>(&Settings::default(), &series, 30, None).is_empty());
    }

    #[test]
    fn flat_window_fires_on_any_jump_unless_within_min_deviation() {
        let mut series = vec![Some(5.0); 20];
        series.push(Some(5.5));
        assert_eq!(fired::<Spike>(&Settings::default(), &series, 30, None), [21]);
        let tolerant = Settings {
            min_deviation: 1.0,
            ..Settings::default()
        };
        assert!(fired::<Spike>(&tolerant, &series, 30, None).is_empty());
    }
}
