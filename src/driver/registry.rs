//! The drivers a configuration can name: the built-in ones and those registered from outside
//! the crate, each a [`DriverFactory`] under its name, and [`DriverKeys`], what a factory is
//! handed to parse one `[[sensors]]` entry.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::{mqtt, replay, simulated, system, DriverFactory, DriverSpec, RunStart};
use crate::parse::{from_table, quoted, ConfigError};

/// Driver factories by name, as `driver = "<name>"` refers to them, in registration order.
#[derive(Clone)]
pub struct DriverRegistry {
    factories: Vec<(Arc<str>, Arc<dyn DriverFactory>)>,
}

impl DriverRegistry {
    /// The built-in drivers: one line per kind.
    pub fn builtin() -> Self {
        let mut registry = DriverRegistry { factories: Vec::new() };
        registry.register("simulated", simulated::Factory);
        registry.register("replay", replay::Factory);
        registry.register("system", system::Factory);
        registry.register("mqtt", mqtt::Factory::default());
        registry
    }

    /// Registers `factory` as `driver = "<name>"`.
    ///
    /// # Panics
    ///
    /// When `name` is empty or already registered (a built-in name included): a mistake in the
    /// program, not in its input.
    pub fn register(&mut self, name: &str, factory: impl DriverFactory) {
        assert!(!name.is_empty(), "driver name: expected a non-empty name");
        assert!(
            self.get(name).is_none(),
            "driver name {name:?}: a driver of that name is already registered"
        );
        self.factories.push((name.into(), Arc::new(factory)));
    }

    /// Tells every factory that a run starts ([`DriverFactory::run_started`]).
    pub(crate) fn run_started(&self, run: &RunStart) {
        for (_, factory) in &self.factories {
            factory.run_started(run);
        }
    }

    /// Tells every factory that the run has ended ([`DriverFactory::run_ended`]).
    pub(crate) fn run_ended(&self) {
        for (_, factory) in &self.factories {
            factory.run_ended();
        }
    }

    /// Every factory's own counts ([`DriverFactory::counts`]) by driver name, leaving out those
    /// that count nothing.
    pub(crate) fn counts(&self) -> BTreeMap<String, BTreeMap<String, u64>> {
        self.factories
            .iter()
            .map(|(name, factory)| {
                (
                    name.to_string(),
                    factory.counts().into_iter().collect::<BTreeMap<_, _>>(),
                )
            })
            .filter(|(_, counts)| !counts.is_empty())
            .collect()
    }

    /// The registered names, in registration order (the built-in ones first).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.factories.iter().map(|(name, _)| &**name)
    }

    /// The factory registered as `name`.
    pub fn get(&self, name: &str) -> Option<&dyn DriverFactory> {
        self.factories
            .iter()
            .find(|(known, _)| **known == *name)
            .map(|(_, factory)| &**factory)
    }

    /// Parses the driver's own keys of a `[[sensors]]` entry naming driver `name` (`at` is the
    /// entry's path); relative file paths resolve against `base`. A name nobody registered is
    /// an error listing every known name; a key the factory never read is an unknown field.
    pub(crate) fn parse(
        &self,
        name: &str,
        table: toml::Table,
        origin: &str,
        at: &str,
        base: &Path,
    ) -> Result<Arc<dyn DriverSpec>, ConfigError> {
        let factory = self.get(name).ok_or_else(|| {
            let names: Vec<&str> = self.names().collect();
            ConfigError::new(
                origin,
                format!("{at}.driver"),
                format!("expected one of {}, got {}", names.join(", "), quoted(name)),
            )
        })?;
        let keys = DriverKeys::new(table, origin, at, base);
        let spec = factory.parse(&keys)?;
        if !keys.read.get() {
            if let Some(key) = keys.table.keys().next() {
                return Err(keys.error(key, format!("unknown field `{key}`, there are no fields")));
            }
        }
        Ok(spec)
    }
}

impl Default for DriverRegistry {
    /// The built-in drivers.
    fn default() -> Self {
        DriverRegistry::builtin()
    }
}

impl fmt::Debug for DriverRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

/// The keys of one `[[sensors]]` entry that belong to its driver (every key but the ones common
/// to all entries: `driver`, `kind`, `id`, `count`, the restart policy...), with what a factory
/// needs to validate them and to word its errors like every other configuration error:
/// `origin: sensors[i].field: expectation`.
///
/// ```
/// # use sensor_actors::driver::DriverKeys;
/// # use sensor_actors::ConfigError;
/// #[derive(serde::Deserialize)]
/// #[serde(deny_unknown_fields)] // an unknown key is an error naming it
/// struct Raw {
///     port: u16,
/// }
///
/// fn port(keys: &DriverKeys<'_>) -> Result<u16, ConfigError> {
///     let raw: Raw = keys.deserialize()?;
///     if raw.port == 0 {
///         // "config.toml: sensors[0].port: expected a port above 0"
///         return Err(keys.error("port", "expected a port above 0"));
///     }
///     Ok(raw.port)
/// }
/// ```
#[derive(Debug)]
pub struct DriverKeys<'a> {
    table: toml::Table,
    origin: &'a str,
    at: &'a str,
    base: &'a Path,
    /// Whether the factory deserialized the keys; if not, any key is an unknown field.
    read: Cell<bool>,
}

impl<'a> DriverKeys<'a> {
    /// The keys `table` of the entry at `at` of `origin`, whose files resolve against `base`.
    pub(crate) fn new(table: toml::Table, origin: &'a str, at: &'a str, base: &'a Path) -> Self {
        DriverKeys {
            table,
            origin,
            at,
            base,
            read: Cell::new(false),
        }
    }

    /// Deserializes the keys into `T` (`serde` with `#[serde(deny_unknown_fields)]`, so that an
    /// unknown key is an error). An error names the key's path: `origin: sensors[0].port:
    /// invalid type: string "x", expected u16`.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        self.read.set(true);
        from_table(self.table.clone(), self.origin, self.at)
    }

    /// Where the configuration came from (its file name), the first part of every error.
    pub fn origin(&self) -> &'a str {
        self.origin
    }

    /// The entry's path, such as `sensors[2]`.
    pub fn at(&self) -> &'a str {
        self.at
    }

    /// The configuration file's folder, against which relative file paths resolve (empty for a
    /// configuration parsed from text: the current directory).
    pub fn base(&self) -> &'a Path {
        self.base
    }

    /// The error `origin: <at>.<field>: <message>`, for a key that is present but wrong.
    pub fn error(&self, field: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::new(self.origin, format!("{}.{field}", self.at), message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A factory that reads no keys.
    struct Keyless;

    #[derive(Debug)]
    struct Nothing;

    impl DriverSpec for Nothing {
        fn build(&self, _ctx: &crate::driver::DriverContext) -> crate::driver::DriverBuild {
            crate::driver::DriverBuild::failed(crate::driver::BuildError::new("nothing to build"))
        }
    }

    impl DriverFactory for Keyless {
        fn parse(&self, _keys: &DriverKeys<'_>) -> Result<Arc<dyn DriverSpec>, ConfigError> {
            Ok(Arc::new(Nothing))
        }
    }

    fn table(text: &str) -> toml::Table {
        text.parse().unwrap()
    }

    /// Registered names follow the built-in ones in the unknown-name error; a key a factory
    /// never reads is an unknown field.
    #[test]
    fn names_and_unread_keys() {
        let mut registry = DriverRegistry::builtin();
        registry.register("keyless", Keyless);
        let parse = |name: &str, keys: &str| registry.parse(name, table(keys), "c.toml", "sensors[1]", Path::new(""));
        assert_eq!(
            parse("laser", "").unwrap_err().to_string(),
            "c.toml: sensors[1].driver: expected one of simulated, replay, system, mqtt, keyless, got \"laser\""
        );
        assert!(parse("keyless", "").is_ok());
        assert_eq!(
            parse("keyless", "port = 1").unwrap_err().to_string(),
            "c.toml: sensors[1].port: unknown field `port`, there are no fields"
        );
        assert_eq!(
            format!("{registry:?}"),
            "[\"simulated\", \"replay\", \"system\", \"mqtt\", \"keyless\"]"
        );
    }

    /// A name is registered once: registering it again is a bug of the program.
    #[test]
    #[should_panic(expected = "driver name \"replay\": a driver of that name is already registered")]
    fn a_name_is_registered_once() {
        DriverRegistry::builtin().register("replay", Keyless);
    }
}
