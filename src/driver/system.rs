//! The `system` driver: real metrics of the machine it runs on, read from `/proc` (Linux).
//!
//! `metric` picks one value per read:
//!
//! | metric | source | unit |
//! |---|---|---|
//! | `load1`, `load5`, `load15` | `/proc/loadavg`: run-queue load average over 1, 5, 15 min | |
//! | `memory_available` | `/proc/meminfo` `MemAvailable` | MiB |
//! | `cpu_pressure`, `memory_pressure`, `io_pressure` | `/proc/pressure/{cpu,memory,io}`: PSI `some avg10`, the share of the last 10 s in which some task waited for the resource | % |
//!
//! `root` (default `/proc`) points at another mount of procfs, as for a collector running in a
//! container with the host's `/proc` mounted elsewhere. The source file is checked when the
//! configuration is loaded: an absent file (no procfs, or a kernel without PSI) is a
//! configuration error naming it. A read that cannot open or parse the file later is a failed
//! read naming the file. Reads are synchronous and take microseconds.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use std::sync::Arc;

use super::{Driver, DriverBuild, DriverContext, DriverFactory, DriverKeys, DriverSpec, ReadError, ReadFuture, Sample};
use crate::parse::{quoted, ConfigError};

/// `driver = "system"`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Factory;

impl DriverFactory for Factory {
    fn parse(&self, keys: &DriverKeys<'_>) -> Result<Arc<dyn DriverSpec>, ConfigError> {
        Ok(Arc::new(Settings::parse(keys)?))
    }
}

impl DriverSpec for Settings {
    fn build(&self, ctx: &DriverContext) -> DriverBuild {
        DriverBuild::driver(System::new(self.clone(), ctx))
    }

    /// This machine's metrics now: no virtual clock.
    fn real_world(&self) -> bool {
        true
    }

    /// The metric's name.
    fn default_kind(&self) -> Option<&str> {
        Some(self.metric.as_str())
    }

    /// The metric's unit.
    fn default_unit(&self) -> Option<&str> {
        Some(self.metric.unit())
    }
}

/// Where procfs is mounted unless `root` says otherwise.
pub const DEFAULT_ROOT: &str = "/proc";

/// The metrics, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Metric {
    /// Load average over 1 minute.
    Load1,
    /// Load average over 5 minutes.
    Load5,
    /// Load average over 15 minutes.
    Load15,
    /// Memory available for new work without swapping, in MiB.
    MemoryAvailable,
    /// CPU pressure (PSI `some avg10`), in %.
    CpuPressure,
    /// Memory pressure (PSI `some avg10`), in %.
    MemoryPressure,
    /// I/O pressure (PSI `some avg10`), in %.
    IoPressure,
}

impl Metric {
    /// Every metric, in documentation order.
    pub const ALL: [Metric; 7] = [
        Metric::Load1,
        Metric::Load5,
        Metric::Load15,
        Metric::MemoryAvailable,
        Metric::CpuPressure,
        Metric::MemoryPressure,
        Metric::IoPressure,
    ];

    /// The name used by `metric = "..."`, and the default sensor kind.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Load1 => "load1",
            Metric::Load5 => "load5",
            Metric::Load15 => "load15",
            Metric::MemoryAvailable => "memory_available",
            Metric::CpuPressure => "cpu_pressure",
            Metric::MemoryPressure => "memory_pressure",
            Metric::IoPressure => "io_pressure",
        }
    }

    /// The unit of its values.
    pub fn unit(self) -> &'static str {
        match self {
            Metric::Load1 | Metric::Load5 | Metric::Load15 => "",
            Metric::MemoryAvailable => "MiB",
            Metric::CpuPressure | Metric::MemoryPressure | Metric::IoPressure => "%",
        }
    }

    /// The file under the procfs root it is read from.
    fn file(self) -> &'static str {
        match self {
            Metric::Load1 | Metric::Load5 | Metric::Load15 => "loadavg",
            Metric::MemoryAvailable => "meminfo",
            Metric::CpuPressure => "pressure/cpu",
            Metric::MemoryPressure => "pressure/memory",
            Metric::IoPressure => "pressure/io",
        }
    }

    /// Extracts the value from the file's text.
    fn parse(self, text: &str) -> Option<f64> {
        match self {
            Metric::Load1 | Metric::Load5 | Metric::Load15 => {
                let field = match self {
                    Metric::Load1 => 0,
                    Metric::Load5 => 1,
                    _ => 2,
                };
                text.split_whitespace().nth(field)?.parse().ok()
            }
            Metric::MemoryAvailable => {
                let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
                let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
                Some(kib / 1024.0)
            }
            Metric::CpuPressure | Metric::MemoryPressure | Metric::IoPressure => {
                let line = text.lines().find(|l| l.starts_with("some "))?;
                line.split_whitespace()
                    .find_map(|f| f.strip_prefix("avg10="))?
                    .parse()
                    .ok()
            }
        }
    }
}

/// Validated settings of a system entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// What is read.
    pub metric: Metric,
    /// The file it is read from (under `root`).
    pub path: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    metric: String,
    root: Option<String>,
}

impl Settings {
    /// Parses the system keys of an entry and checks that the source can be read.
    pub fn parse(keys: &DriverKeys<'_>) -> Result<Settings, ConfigError> {
        let raw: RawSettings = keys.deserialize()?;
        let (origin, at) = (keys.origin(), keys.at());
        let metric = Metric::ALL
            .into_iter()
            .find(|m| m.as_str() == raw.metric)
            .ok_or_else(|| {
                let names: Vec<&str> = Metric::ALL.iter().map(|m| m.as_str()).collect();
                ConfigError::new(
                    origin,
                    format!("{at}.metric"),
                    format!("expected one of {}, got {}", names.join(", "), quoted(&raw.metric)),
                )
            })?;
        let field = if raw.root.is_some() { "root" } else { "metric" };
        let path = Path::new(raw.root.as_deref().unwrap_or(DEFAULT_ROOT)).join(metric.file());
        read(metric, &path).map_err(|e| ConfigError::new(origin, format!("{at}.{field}"), e))?;
        Ok(Settings { metric, path })
    }
}

/// Reads `metric` from `path`; the error names the file.
fn read(metric: Metric, path: &Path) -> Result<f64, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        let reason = match e.kind() {
            std::io::ErrorKind::NotFound => "no such file".to_string(),
            _ => e.to_string(),
        };
        let hint = if metric.file().starts_with("pressure/") {
            " (pressure stall information needs Linux 4.20+ with PSI enabled)"
        } else {
            ""
        };
        format!("cannot read {}: {reason}{hint}", path.display())
    })?;
    metric
        .parse(&text)
        .ok_or_else(|| format!("{}: no {} value in it", path.display(), metric.as_str()))
}

/// A sensor reading one metric.
#[derive(Debug)]
pub struct System {
    settings: Settings,
}

impl System {
    /// The driver.
    pub fn new(settings: Settings, _ctx: &DriverContext) -> Self {
        System { settings }
    }
}

impl Driver for System {
    fn read(&mut self, _round: u64) -> ReadFuture {
        let result = read(self.settings.metric, &self.settings.path)
            .map(Sample::value)
            .map_err(ReadError::Failed);
        ReadFuture::ready(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_source_format() {
        assert_eq!(Metric::Load5.parse("4.54 1.88 0.82 5/125 14877\n"), Some(1.88));
        assert_eq!(
            Metric::MemoryAvailable.parse("MemTotal: 100 kB\nMemAvailable:   2048 kB\n"),
            Some(2.0)
        );
        assert_eq!(
            Metric::CpuPressure.parse("some avg10=93.83 avg60=78.21 avg300=29.14 total=1\nfull avg10=0.00\n"),
            Some(93.83)
        );
        assert_eq!(Metric::CpuPressure.parse("garbage"), None);
    }

    #[test]
    fn absent_source_is_a_config_error_naming_the_file() {
        let table: toml::Table = toml::from_str("metric = \"load1\"\nroot = \"/nonexistent\"").unwrap();
        assert_eq!(
            Settings::parse(&DriverKeys::new(table, "c.toml", "sensors[0]", Path::new("")))
                .unwrap_err()
                .to_string(),
            "c.toml: sensors[0].root: cannot read /nonexistent/loadavg: no such file"
        );
        let table: toml::Table = toml::from_str("metric = \"load2\"").unwrap();
        assert!(
            Settings::parse(&DriverKeys::new(table, "c.toml", "sensors[0]", Path::new("")))
                .unwrap_err()
                .to_string()
                .starts_with("c.toml: sensors[0].metric: expected one of load1, load5, load15, memory_available")
        );
    }
}
