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
#[derive(Debug, Default)]
pub struct Stuck {
    last: Option<f64>,
    run: u32,
}

impl Detector for Stuck {
    type Settings = Settings;

    fn observe(&mut self, settings: &Settings, obs: &mut Observation<'_>) -> Option<String> {
        let value = obs.value?;
        if self.last == Some(value) {
            self.run = self.run.saturating_add(1);
        } else {
            self.last = Some(value);
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
    fn quiet_on_a_clean_walk() {
        assert!(fired::<Stuck>(&Settings::default(), &clean_walk(5000, 2), 30, None).is_empty());
    }
}
