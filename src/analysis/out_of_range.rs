//! `out_of_range`: a value outside the valid range of its sensor.
//!
//! The range is the sensor's own `range` key when set, else the bounds of its kind in
//! `[analysis.out_of_range] bounds`. Every reading outside fires; a sensor with no known range is
//! never checked.

use std::collections::BTreeMap;

use super::{Detector, DetectorFactory, Observation, SettingsTable};
use crate::parse::{check_range, ConfigError};

/// Bounds per kind.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Valid `[min, max]` per sensor kind.
    pub bounds: BTreeMap<String, (f64, f64)>,
}

impl Default for Settings {
    /// Operating ranges of common industrial parts: temperature -40..85 C, relative humidity
    /// 0..100 %, barometric pressure 300..1100 hPa.
    fn default() -> Self {
        let bounds = [
            ("temperature", (-40.0, 85.0)),
            ("humidity", (0.0, 100.0)),
            ("pressure", (300.0, 1100.0)),
        ]
        .into_iter()
        .map(|(k, r)| (k.to_string(), r))
        .collect();
        Settings { bounds }
    }
}

/// The detector; it keeps no state (the range arrives with each observation).
#[derive(Debug, Default)]
pub struct OutOfRange;

impl Detector for OutOfRange {
    type Settings = Settings;

    fn observe(&mut self, _settings: &Settings, obs: &mut Observation<'_>) -> Option<String> {
        let (value, (lo, hi)) = (obs.value?, obs.range?);
        (value < lo || value > hi).then(|| obs.detail(|| format!("value {value} outside the valid range [{lo}, {hi}]")))
    }
}

/// Raw `[analysis.out_of_range]`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Raw {
    bounds: Option<BTreeMap<String, [f64; 2]>>,
}

impl Settings {
    /// Validates `[analysis.out_of_range]`: its bounds are merged into the defaults.
    pub(crate) fn from_raw(raw: Raw, origin: &str) -> Result<Settings, ConfigError> {
        let mut settings = Settings::default();
        for (kind, pair) in raw.bounds.unwrap_or_default() {
            let range = check_range(origin, &format!("analysis.out_of_range.bounds.{kind}"), pair)?;
            settings.bounds.insert(kind, range);
        }
        Ok(settings)
    }
}

/// Registers `out_of_range` ([`DetectorRegistry::builtin`](super::DetectorRegistry::builtin)).
#[derive(Debug, Clone, Copy, Default)]
pub struct Factory;

impl DetectorFactory for Factory {
    type Detector = OutOfRange;

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
    fn fires_outside_and_only_there() {
        let series = [Some(20.0), Some(90.0), Some(-41.0), Some(85.0), Some(-40.0), None];
        assert_eq!(
            fired::<OutOfRange>(&Settings::default(), &series, 30, Some((-40.0, 85.0))),
            [2, 3]
        );
    }

    #[test]
    fn quiet_on_clean_data_and_without_range() {
        assert!(fired::<OutOfRange>(&Settings::default(), &clean_walk(2000, 1), 30, Some((-40.0, 85.0))).is_empty());
        assert!(fired::<OutOfRange>(&Settings::default(), &[Some(1e9)], 30, None).is_empty());
    }
}
