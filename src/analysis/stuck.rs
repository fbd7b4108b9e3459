//! `stuck`: the same value read `reads` times in a row.
//!
//! Fires once per episode, on the read that completes the run of identical values; a different
//! value ends the episode. Missed rounds neither extend nor end a run.

use super::{Detector, DetectorFactory, Observation, SettingsTable};
use crate::parse::ConfigError;

/// Stuck settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Identical consecutive reads that make a stuck sensor.
    pub reads: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { reads: 10 }
    }
}

/// The detector's per-sensor state.
#[derive(Debug)]
pub struct Stuck {
    /// The last value, NaN before the first: equal to no value, as `None` would be (nor is a
    /// NaN reading equal to the next), in 8 bytes instead of 16.
    last: f64,
    run: u32,
}

impl Default for Stuck {
    fn default() -> Self {
        Stuck { last: f64::NAN, run: 0 }
    }
}

impl Detector for Stuck {
    type Settings = Settings;

    fn observe(&mut self, settings: &Settings, obs: &mut Observation<'_>) -> Option<String> {
        let value = obs.value?;
        if self.last == value {
            self.run = self.run.saturating_add(1);
        } else {
            self.last = value;
            self.run = 1;
        }
        (self.run == settings.reads).then(|| obs.detail(|| format!("value {value} unchanged for {} reads", self.run)))
    }
}

/// Raw `[analysis.stuck]`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Raw {
    reads: Option<u32>,
}

impl Settings {
    /// Validates `[analysis.stuck]`.
    pub(crate) fn from_raw(raw: Raw, origin: &str) -> Result<Settings, ConfigError> {
        let reads = raw.reads.unwrap_or(Settings::default().reads);
        if reads < 2 {
            return Err(ConfigError::new(
                origin,
                "analysis.stuck.reads",
                format!("expected at least 2 reads, got {reads}"),
            ));
        }
        Ok(Settings { reads })
    }
}

/// Registers `stuck` ([`DetectorRegistry::builtin`](super::DetectorRegistry::builtin)).
#[derive(Debug, Clone, Copy, Default)]
pub struct Factory;

impl DetectorFactory for Factory {
    type Detector = Stuck;

    fn defaults(&self) -> Settings {
        Settings::default()
    }

    fn settings(&self, table: SettingsTable<'_>) -> Result<Settings, ConfigError> {
        let origin = table.origin();
        Settings::from_raw(table.parse()?, origin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::detector::{clean_walk, fired};

    #[test]
    fn fires_once_per_episode() {
        let mut series = vec![Some(1.0), Some(2.0)];
        series.extend(std::iter::repeat_n(Some(3.0), 25));
        series.push(None);
        series.push(Some(4.0));
        series.extend(std::iter::repeat_n(Some(4.0), 9));
        let hits = fired::<Stuck>(&Settings::default(), &series, 30, None);
        assert_eq!(hits, [12, 38]);
    }

    #[test]
    fn the_first_value_starts_the_run_even_a_zero_and_nan_never_repeats() {
        // Zeros from the first read: the 10th read is the 10th unchanged one.
        let zeros = vec![Some(0.0); 12];
        assert_eq!(fired::<Stuck>(&Settings::default(), &zeros, 30, None), [10]);
        let nans = vec![Some(f64::NAN); 30];
        assert!(fired::<Stuck>(&Settings::default(), &nans, 30, None).is_empty());
    }

    #[test]
    fn quiet_on_a_clean_walk() {
        assert!(fired::<Stuck>(&Settings::default(), &clean_walk(5000, 2), 30, None).is_empty());
    }
}
