//! The names a configuration can use: drivers and detectors, the built-in ones and those
//! registered on a [`Collector`](crate::Collector).

use crate::analysis::DetectorRegistry;
use crate::driver::DriverRegistry;

/// Drivers and detectors by name, as `driver = "..."` and `[analysis.<name>]` refer to them.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    /// `driver = "<name>"` of a `[[sensors]]` entry.
    pub(crate) drivers: DriverRegistry,
    /// `[analysis.<name>]` tables.
    pub(crate) detectors: DetectorRegistry,
}

impl Registry {
    /// The built-in drivers and detectors only.
    pub fn builtin() -> Self {
        Registry {
            drivers: DriverRegistry::builtin(),
            detectors: DetectorRegistry::builtin(),
        }
    }
}
