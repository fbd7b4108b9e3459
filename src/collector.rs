//! [`Collector`]: the public entry point. Register drivers and detectors by name, attach
//! subscribers and sinks, load a configuration, run it.
//!
//! The binary is built on it like any user's program: everything it attaches (the JSONL files,
//! the per-round log line) goes through the same methods.

use std::future::Future;
use std::path::Path;

use crate::config::{Config, ConfigError};
use crate::registry::Registry;
use crate::report::Summary;
use crate::{RunError, RunOptions};

/// A collection run to be: the names its configuration may use and where its streams go.
///
/// ```no_run
/// use sensor_actors::Collector;
///
/// # async fn demo() -> anyhow::Result<()> {
/// let collector = Collector::new();
/// let config = collector.load("sensors.toml")?;
/// let summary = collector.run(config, std::future::pending()).await?;
/// println!("{} readings", summary.reads.ok);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Default)]
pub struct Collector {
    registry: Registry,
}

impl Collector {
    /// A collector with the built-in drivers and detectors, and nothing attached.
    pub fn new() -> Self {
        Collector {
            registry: Registry::builtin(),
        }
    }

    /// The drivers and detectors a configuration loaded by this collector may name.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Reads and validates the configuration file at `path` (`check` does the same).
    pub fn load(&self, path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        Config::load_with(path.as_ref(), &self.registry)
    }

    /// Parses and validates configuration `text`; `origin` names it in errors. Relative file
    /// paths in it resolve against the current directory.
    pub fn parse(&self, text: &str, origin: &str) -> Result<Config, ConfigError> {
        Config::parse(text, origin, Path::new(""), &self.registry)
    }

    /// Runs `config` until its rounds or duration are done, every sensor has stopped, or
    /// `shutdown` completes; then settles the round in flight, delivers everything to the
    /// subscribers and sinks, and returns the summary.
    ///
    /// Must be called inside an actix system (the binary's `System`, or `#[actix_rt::test]`).
    pub async fn run(self, config: Config, shutdown: impl Future<Output = ()>) -> Result<Summary, RunError> {
        crate::run(config, RunOptions::default(), shutdown).await
    }
}
