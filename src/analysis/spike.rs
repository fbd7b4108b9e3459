//! `spike`: a value far from its sensor's recent values.
//!
//! The distance is measured in robust standard deviations from the rolling window's median:
//! `|value - median| / (1.4826 * MAD)`. Median and MAD (median absolute deviation) ignore the
//! outliers already in the window, so one spike neither hides the next nor inflates the scale.
//! When the MAD is zero (more than half the window identical), the scale falls back to
//! `1.2533 * mean absolute deviation` from the median. A reading fires when the distance exceeds
//! `threshold`, its absolute deviation exceeds `min_deviation`, and the window holds at least
//! `min_samples` values.

use super::{Detector, Observation};

/// Consistency constant: 1.4826 * MAD estimates the standard deviation of normal data.
const MAD_TO_SD: f64 = 1.4826;
/// Consistency constant for the mean absolute deviation of normal data (sqrt(pi / 2)).
const MEAN_AD_TO_SD: f64 = 1.2533;

/// Spike settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Robust standard deviations from the median that make a spike.
    pub threshold: f64,
    /// Values the window must hold before the detector judges.
    pub min_samples: usize,
    /// Absolute deviations at or below this never fire (sensor resolution, in the sensor's unit).
    pub min_deviation: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { threshold: 6.0, min_samples: 10, min_deviation: 0.0 }
    }
}

/// The detector.
#[derive(Debug)]
pub struct Spike {
    settings: Settings,
}

impl Spike {
    /// A boxed detector.
    pub fn boxed(settings: Settings) -> Box<dyn Detector> {
        Box::new(Spike { settings })
    }
}

impl Detector for Spike {
    fn observe(&mut self, obs: &mut Observation<'_>) -> Option<String> {
        let value = obs.value?;
        if obs.window.len() < self.settings.min_samples {
            return None;
        }
        let (median, mad) = obs.window.median_mad(obs.scratch)?;
        let deviation = (value - median).abs();
        if deviation <= self.settings.min_deviation {
            return None;
        }
        let mut scale = MAD_TO_SD * mad;
        if scale == 0.0 {
            let values = obs.window.values();
            scale = MEAN_AD_TO_SD * values.iter().map(|v| (v - median).abs()).sum::<f64>() / values.len() as f64;
        }
        let score = if scale > 0.0 { deviation / scale } else { f64::INFINITY };
        (score > self.settings.threshold).then(|| {
            format!(
                "value {value:.3} is {score:.1} robust sd from the window median {median:.3} (threshold {})",
                self.settings.threshold
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{clean_walk, fired};
    use super::*;

    #[test]
    fn fires_on_a_spike_even_after_an_earlier_one() {
        let mut series = clean_walk(200, 5);
        series[100] = Some(series[99].unwrap() + 15.0);
        series[105] = Some(series[104].unwrap() - 15.0);
        let hits = fired(&mut *Spike::boxed(Settings::default()), &series, 30, None);
        assert_eq!(hits, [101, 106]);
    }

    #[test]
    fn quiet_on_a_clean_walk() {
        for seed in 0..20 {
            let hits = fired(&mut *Spike::boxed(Settings::default()), &clean_walk(2000, seed), 30, None);
            assert!(hits.is_empty(), "seed {seed}: {hits:?}");
        }
    }

    #[test]
    fn waits_for_min_samples() {
        let series = [Some(1.0), Some(1.0), Some(100.0)];
        assert!(fired(&mut *Spike::boxed(Settings::default()), &series, 30, None).is_empty());
    }

    #[test]
    fn flat_window_uses_mean_deviation_and_min_deviation() {
        let mut series = vec![Some(5.0); 20];
        series.push(Some(5.5));
        assert_eq!(fired(&mut *Spike::boxed(Settings::default()), &series, 30, None), [21]);
        let tolerant = Settings { min_deviation: 1.0, ..Settings::default() };
        assert!(fired(&mut *Spike::boxed(tolerant), &series, 30, None).is_empty());
    }
}
