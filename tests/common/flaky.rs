//! `driver = "flaky"`: a driver registered from outside the crate whose builds fail (or panic)
//! as its entry says, at once or after a latency, and whose reads answer `value + round`.
//!
//! Keys: `failing_builds` (the first N builds of each sensor fail; default 0), `panics` (they
//! panic instead of returning an error), `build_latency` (the build is async and takes this
//! long; default: done at once), `read_latency` (default: answered at once), `value`.

use std::sync::Arc;
use std::time::Duration;

use sensor_actors::driver::{BuildError, BuildResult, Driver, DriverBuild, DriverContext, DriverFactory};
use sensor_actors::driver::{DriverKeys, DriverSpec, ReadFuture, Sample};
use sensor_actors::{Collector, ConfigError};
use serde::Deserialize;

/// The factory of `driver = "flaky"`.
pub struct FlakyFactory;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    failing_builds: u32,
    #[serde(default)]
    panics: bool,
    build_latency: Option<String>,
    read_latency: Option<String>,
    #[serde(default)]
    value: f64,
}

/// A flaky entry's settings.
#[derive(Debug)]
pub struct Flaky {
    failing_builds: u32,
    panics: bool,
    build_latency: Option<Duration>,
    read_latency: Option<Duration>,
    value: f64,
}

fn duration(keys: &DriverKeys<'_>, field: &str, text: &Option<String>) -> Result<Option<Duration>, ConfigError> {
    text.as_deref()
        .map(|t| {
            humantime::parse_duration(t).map_err(|_| keys.error(field, format!("expected a duration, got \"{t}\"")))
        })
        .transpose()
}

impl DriverFactory for FlakyFactory {
    fn parse(&self, keys: &DriverKeys<'_>) -> Result<Arc<dyn DriverSpec>, ConfigError> {
        let raw: Raw = keys.deserialize()?;
        Ok(Arc::new(Flaky {
            failing_builds: raw.failing_builds,
            panics: raw.panics,
            build_latency: duration(keys, "build_latency", &raw.build_latency)?,
            read_latency: duration(keys, "read_latency", &raw.read_latency)?,
            value: raw.value,
        }))
    }
}

impl DriverSpec for Flaky {
    fn build(&self, ctx: &DriverContext) -> DriverBuild {
        let fails = ctx.incarnation < self.failing_builds;
        let (panics, incarnation) = (self.panics, ctx.incarnation);
        let driver = FlakyDriver {
            value: self.value,
            latency: self.read_latency,
        };
        let result = move || -> BuildResult {
            match (fails, panics) {
                (true, true) => panic!("build {incarnation} panicked"),
                (true, false) => Err(BuildError::new(format!("build {incarnation} refused"))),
                (false, _) => Ok(Box::new(driver)),
            }
        };
        match self.build_latency {
            None => DriverBuild::ready(result()),
            Some(latency) => DriverBuild::new(async move {
                tokio::time::sleep(latency).await;
                result()
            }),
        }
    }
}

struct FlakyDriver {
    value: f64,
    latency: Option<Duration>,
}

impl Driver for FlakyDriver {
    fn read(&mut self, round: u64) -> ReadFuture {
        let sample = Ok(Sample::value(self.value + round as f64));
        match self.latency {
            None => ReadFuture::ready(sample),
            Some(latency) => ReadFuture::new(async move {
                tokio::time::sleep(latency).await;
                sample
            }),
        }
    }
}

/// A collector that knows `driver = "flaky"`.
pub fn collector() -> Collector {
    Collector::new().driver("flaky", FlakyFactory)
}
