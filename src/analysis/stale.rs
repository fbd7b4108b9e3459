//! `stale`: no successful reading for `rounds` rounds in a row.
//!
//! A round without a reading is one where the sensor failed, timed out or was unavailable. Fires
//! once per episode, in the round that completes it; the next reading ends the episode.

use super::{Detector, DetectorFactory, Observation, SettingsTable};
use crate::parse::ConfigError;

/// Stale settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Consecutive rounds without a reading that make a sensor stale.
    pub rounds: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { rounds: 5 }
    }
}

/// The detector's per-sensor state.
#[derive(Debug, Default)]
pub struct Stale {
    missed: u32,
}

impl Detector for Stale {
    type Settings = Settings;

    fn observe(&mut self, settings: &Settings, obs: &mut Observation<'_>) -> Option<String> {
        if obs.value.is_some() {
            self.missed = 0;
            return None;
        }
        self.missed = self.missed.saturating_add(1);
        (self.missed == settings.rounds).then(|| obs.detail(|| format!("no reading for {} rounds", self.missed)))
    }
}

/// Raw `[analysis.stale]`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Raw {
    rounds: Option<u32>,
}

impl Settings {
    /// Validates `[analysis.stale]`.
    pub(crate) fn from_raw(raw: Raw, origin: &str) -> Result<Settings, ConfigError> {
        let rounds = raw.rounds.unwrap_or(Settings::default().rounds);
        if rounds < 1 {
            return Err(ConfigError::new(
                origin,
                "analysis.stale.rounds",
                "expected at least 1 round, got 0",
            ));
        }
        Ok(Settings { rounds })
    }
}

/// Registers `stale` ([`DetectorRegistry::builtin`](super::DetectorRegistry::builtin)).
#[derive(Debug, Clone, Copy, Default)]
pub struct Factory;

impl DetectorFactory for Factory {
    type Detector = Stale;

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
    fn fires_once_per_gap() {
        let mut series = vec![Some(1.0); 3];
        series.extend([None; 7]);
        series.push(Some(1.0));
        series.extend([None; 5]);
        series.extend([None; 1]);
        let hits = fired::<Stale>(&Settings::default(), &series, 30, None);
        assert_eq!(hits, [8, 16]);
    }

    #[test]
    fn quiet_with_short_gaps() {
        let mut series = clean_walk(100, 3);
        for i in (0..100).step_by(5) {
            series[i] = None;
        }
        assert!(fired::<Stale>(&Settings::default(), &series, 30, None).is_empty());
    }
}
