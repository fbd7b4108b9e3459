//! The drivers a configuration can name: the built-in ones and those registered from outside
//! the crate.

use std::path::Path;

use super::DriverSpec;
use crate::config::ConfigError;

/// Drivers by name.
#[derive(Debug, Clone, Default)]
pub struct DriverRegistry {}

impl DriverRegistry {
    /// The built-in drivers.
    pub fn builtin() -> Self {
        DriverRegistry {}
    }

    /// Parses the driver-specific keys of a `[[sensors]]` entry naming driver `name` (`at` is
    /// the entry's path); relative file paths resolve against `base`.
    pub fn parse(
        &self,
        name: &str,
        table: toml::Table,
        origin: &str,
        at: &str,
        base: &Path,
    ) -> Result<DriverSpec, ConfigError> {
        DriverSpec::parse(name, table, origin, at, base)
    }
}
