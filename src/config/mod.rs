//! Configuration: the TOML file of `docs/configuration.md`, read in two stages.
//!
//! Stage one deserializes into raw serde structs that reject unknown keys; stage two validates
//! them into a [`Config`] whose fields are typed (durations, ranges, driver settings). Every error
//! is one line naming the origin (file name), the field path and what was expected, e.g.
//! `config.toml: sensors[2].latency: min 500ms is greater than max 100ms`.
//!
//! Parsers take `&str` ([`Config::from_toml_str`]) so tests need no files; [`Config::load`] reads
//! a file and [`Config::default_scenario`] is the embedded default run (the seed scenario).

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::analysis::AnalysisConfig;
pub use crate::data::RestartType;
use crate::driver::{self, simulated, DriverRegistry, DriverSpec};
use crate::registry::Registry;

/// Defaults of the `[collection]` section.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
/// Default per-read deadline.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(2);
/// Number of simulated sensors in the default scenario.
pub const DEFAULT_SENSOR_COUNT: usize = 20;

/// A configuration error: where, which field, what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: {field}: {message}")]
pub struct ConfigError {
    /// The file name, or `command line` for flags.
    pub origin: String,
    /// The field path, such as `sensors[2].latency`.
    pub field: String,
    /// What was wrong and what was expected.
    pub message: String,
}

impl ConfigError {
    /// Builds an error for `field` of `origin`.
    pub fn new(origin: &str, field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            origin: origin.to_string(),
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A validated configuration, ready to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// How rounds are scheduled and read.
    pub collection: CollectionConfig,
    /// Restart policy defaults (`[supervision]`); each sensor carries its resolved copy.
    pub supervision: RestartPolicy,
    /// Every sensor, in configuration order; the index is the sensor's index everywhere.
    pub sensors: Vec<SensorSpec>,
    /// Groups (`[[groups]]`): nested supervisors for the sensors that name them.
    pub groups: Vec<GroupSpec>,
    /// Detector settings (`[analysis]`).
    pub analysis: AnalysisConfig,
    /// Actor layout (`[runtime]`).
    pub runtime: RuntimeConfig,
}

/// The `[collection]` section.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionConfig {
    /// Time between round starts; zero runs rounds back to back.
    pub interval: Duration,
    /// Deadline of each read, counted from the moment its `Read` is sent.
    pub read_timeout: Duration,
    /// Stop after this many rounds.
    pub rounds: Option<u64>,
    /// Stop scheduling rounds this long after the first one started.
    pub duration: Option<Duration>,
    /// Seed of every random draw; `None` picks one at start (logged and written to the summary).
    pub seed: Option<u64>,
    /// Cap on concurrent reads in a round; 0 means no cap.
    pub max_in_flight: usize,
}

/// Restart policy of one sensor (or the defaults of `[supervision]`).
#[derive(Debug, Clone, PartialEq)]
pub struct RestartPolicy {
    /// Which exits lead to a restart.
    pub restart: RestartType,
    /// More than this many restarts within `within` gives the sensor up.
    pub max_restarts: u32,
    /// The intensity window.
    pub within: Duration,
    /// First backoff delay.
    pub backoff_min: Duration,
    /// Largest backoff delay.
    pub backoff_max: Duration,
    /// Consecutive read timeouts that count as a hang (a failure).
    pub hung_after: u32,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            restart: RestartType::Permanent,
            max_restarts: 5,
            within: Duration::from_secs(10),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            hung_after: 3,
        }
    }
}

/// Strategy of a group, as in Erlang/OTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupStrategy {
    /// Only the failed sensor is restarted.
    OneForOne,
    /// Every sensor of the group is restarted.
    OneForAll,
    /// The failed sensor and those after it (in configuration order) are restarted.
    RestForOne,
}

/// A `[[groups]]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupSpec {
    /// The name sensors refer to with `group = "..."`.
    pub name: String,
    /// How a failure of one member affects the others.
    pub strategy: GroupStrategy,
    /// More than this many group restarts within `within` escalates to the root.
    pub max_restarts: u32,
    /// The group's intensity window.
    pub within: Duration,
}

/// The `[runtime]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// Threads (arbiters) the run uses; `None` picks by the number of sensors (see
    /// [`RuntimeConfig::threads`]).
    pub arbiters: Option<usize>,
}

/// From this many sensors on, a run without `[runtime] arbiters` uses one arbiter per core.
/// Below it, one thread is as fast or faster: a round's cross-thread hand-offs cost about what
/// the second core gives back (measured in docs/performance.md: with each group analysing its
/// own members, two arbiters read 1,000 to 40,000 zero-latency sensors 1.3-1.9 times as fast as
/// one, and 100 to 500 about as fast).
pub const PARALLEL_FROM_SENSORS: usize = 1_000;

impl RuntimeConfig {
    /// The number of arbiters for a run of `sensors` sensors: the configured number, or one per
    /// core from [`PARALLEL_FROM_SENSORS`] sensors on, else 1. With one, everything runs on the
    /// calling thread; with N >= 2, the sensors are split into N shards, one per arbiter (the
    /// calling thread's included), and the aggregator shares the last one.
    pub fn threads(&self, sensors: usize) -> usize {
        self.arbiters.unwrap_or_else(|| {
            if sensors >= PARALLEL_FROM_SENSORS {
                std::thread::available_parallelism().map_or(1, |n| n.get())
            } else {
                1
            }
        })
    }
}

/// One sensor: everything needed to build (and rebuild) it.
#[derive(Debug, Clone)]
pub struct SensorSpec {
    /// Unique id, such as `temperature-03`.
    pub id: Arc<str>,
    /// What it measures, such as `temperature`.
    pub kind: Arc<str>,
    /// Unit of its values, such as `C`.
    pub unit: Arc<str>,
    /// How its reads are made: the spec its drivers are built from, shared by the sensors of
    /// its entry.
    pub driver: Arc<dyn DriverSpec>,
    /// Resolved restart policy.
    pub policy: RestartPolicy,
    /// Group it sits behind, if any.
    pub group: Option<Arc<str>>,
    /// Valid value range for the out-of-range detector; overrides the per-kind bounds.
    pub range: Option<(f64, f64)>,
}

impl Default for CollectionConfig {
    fn default() -> Self {
        CollectionConfig {
            interval: DEFAULT_INTERVAL,
            read_timeout: DEFAULT_READ_TIMEOUT,
            rounds: None,
            duration: None,
            seed: None,
            max_in_flight: 0,
        }
    }
}

/// What the sensors of one configuration entry share: everything of a [`SensorSpec`] but its id.
#[derive(Debug, Clone)]
pub struct SensorEntry {
    /// What they measure.
    pub kind: Arc<str>,
    /// Unit of their values.
    pub unit: Arc<str>,
    /// How their reads are made.
    pub driver: Arc<dyn DriverSpec>,
    /// Resolved restart policy.
    pub policy: RestartPolicy,
    /// Group they sit behind, if any.
    pub group: Option<Arc<str>>,
    /// Valid value range; overrides the per-kind bounds.
    pub range: Option<(f64, f64)>,
}

impl SensorEntry {
    /// Whether `spec` has exactly these settings (the same driver instance included).
    fn holds(&self, spec: &SensorSpec) -> bool {
        self.kind == spec.kind
            && self.unit == spec.unit
            && driver::same_spec(&self.driver, &spec.driver)
            && self.policy == spec.policy
            && self.group == spec.group
            && self.range == spec.range
    }
}

/// The sensors of a run as the actors keep them for the whole run: each sensor's id and the
/// entry of settings it shares with its neighbours. A `count` entry of 100,000 sensors keeps one
/// copy of its settings instead of 100,000 (about 25 bytes per sensor instead of 180), and its
/// `<name>-<i>` ids as one numbered run, made when asked for (about 60 bytes per sensor less than
/// a string each).
#[derive(Debug)]
pub struct SensorTable {
    /// The ids, as runs of consecutive sensors, in sensor order.
    ids: Vec<IdRun>,
    /// Each sensor's index into `entries`.
    entry_of: Box<[u32]>,
    entries: Vec<SensorEntry>,
}

/// The ids of consecutive sensors from `start` on.
#[derive(Debug)]
enum IdRun {
    /// Sensor `start + k` is `<prefix>-<first + k>`, the number zero-padded to `width` digits.
    Numbered {
        start: usize,
        prefix: Arc<str>,
        first: u64,
        width: usize,
    },
    /// Sensor `start` has an id of its own.
    Own { start: usize, id: Arc<str> },
}

impl IdRun {
    fn start(&self) -> usize {
        match self {
            IdRun::Numbered { start, .. } | IdRun::Own { start, .. } => *start,
        }
    }
}

/// `(prefix, number, width)` of an id that reads `<prefix>-<digits>`: the number zero-padded to
/// `width` digits gives the id back (as a `count` entry makes them; "t-07", not "t-+7").
fn numbered(id: &str) -> Option<(&str, u64, usize)> {
    let (prefix, digits) = id.rsplit_once('-')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((prefix, digits.parse().ok()?, digits.len()))
}

impl SensorTable {
    /// The table of `specs`, in order; consecutive specs with the same settings share an entry.
    pub fn new(specs: Vec<SensorSpec>) -> Self {
        let mut ids: Vec<IdRun> = Vec::new();
        let mut entry_of = Vec::with_capacity(specs.len());
        let mut entries: Vec<SensorEntry> = Vec::new();
        for (index, spec) in specs.into_iter().enumerate() {
            if !entries.last().is_some_and(|e| e.holds(&spec)) {
                entries.push(SensorEntry {
                    kind: spec.kind,
                    unit: spec.unit,
                    driver: spec.driver,
                    policy: spec.policy,
                    group: spec.group,
                    range: spec.range,
                });
            }
            entry_of.push((entries.len() - 1) as u32);
            let parts = numbered(&spec.id);
            let next_in_run = match (ids.last(), parts) {
                (
                    Some(IdRun::Numbered {
                        start,
                        prefix,
                        first,
                        width,
                    }),
                    Some((p, number, w)),
                ) => **prefix == *p && *width == w && number == first + (index - start) as u64,
                _ => false,
            };
            if !next_in_run {
                ids.push(match parts {
                    Some((prefix, first, width)) => IdRun::Numbered {
                        start: index,
                        prefix: prefix.into(),
                        first,
                        width,
                    },
                    None => IdRun::Own {
                        start: index,
                        id: spec.id,
                    },
                });
            }
        }
        SensorTable {
            ids,
            entry_of: entry_of.into(),
            entries,
        }
    }

    /// Number of sensors.
    pub fn len(&self) -> usize {
        self.entry_of.len()
    }

    /// Whether the table has no sensor.
    pub fn is_empty(&self) -> bool {
        self.entry_of.is_empty()
    }

    /// The id of sensor `index` (made anew for a numbered id: logs, journal events and output
    /// lines ask for it, not the read path).
    pub fn id(&self, index: usize) -> Arc<str> {
        let run = &self.ids[self.ids.partition_point(|r| r.start() <= index) - 1];
        match run {
            IdRun::Numbered {
                start,
                prefix,
                first,
                width,
            } => format!("{prefix}-{:0width$}", first + (index - start) as u64).into(),
            IdRun::Own { id, .. } => id.clone(),
        }
    }

    /// The settings of sensor `index`.
    pub fn entry(&self, index: usize) -> &SensorEntry {
        &self.entries[self.entry_index(index)]
    }

    /// The position of sensor `index`'s entry in [`SensorTable::entries`].
    pub fn entry_index(&self, index: usize) -> usize {
        self.entry_of[index] as usize
    }

    /// The distinct entries, in order.
    pub fn entries(&self) -> &[SensorEntry] {
        &self.entries
    }
}

impl SensorSpec {
    /// A sensor of `kind` reading through `driver`, with the default restart policy, the kind's
    /// default unit, no group and no own range: the starting point for sensors built in code.
    pub fn new(id: &str, kind: &str, driver: Arc<dyn DriverSpec>) -> Self {
        SensorSpec {
            id: id.into(),
            kind: kind.into(),
            unit: default_unit(kind).into(),
            driver,
            policy: RestartPolicy::default(),
            group: None,
            range: None,
        }
    }
}

impl Config {
    /// A configuration of `sensors` with every other setting at its default (built in code,
    /// e.g. for drivers defined outside the crate).
    pub fn with_sensors(sensors: Vec<SensorSpec>) -> Config {
        Config {
            collection: CollectionConfig::default(),
            supervision: RestartPolicy::default(),
            sensors,
            groups: Vec::new(),
            analysis: AnalysisConfig::default(),
            runtime: RuntimeConfig { arbiters: None },
        }
    }

    /// The default run: the seed scenario of [`DEFAULT_SENSOR_COUNT`] simulated temperature sensors.
    pub fn default_scenario() -> Config {
        let text =
            format!("[[sensors]]\ndriver = \"simulated\"\nkind = \"temperature\"\ncount = {DEFAULT_SENSOR_COUNT}\n");
        Config::from_toml_str(&text, "default configuration").expect("the default configuration is valid")
    }

    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::load_with(path, &Registry::builtin())
    }

    /// Parses and validates `text`; `origin` names it in errors (usually the file name).
    /// Relative file paths in it resolve against the current directory.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Config, ConfigError> {
        Config::from_toml_str_in(text, origin, Path::new(""))
    }

    /// Parses and validates `text`, resolving relative file paths in it (a replay's `path`)
    /// against the folder `base`, as [`Config::load`] does with the file's folder.
    pub fn from_toml_str_in(text: &str, origin: &str, base: &Path) -> Result<Config, ConfigError> {
        Config::parse(text, origin, base, &Registry::builtin())
    }

    /// Parses and validates `text` with the drivers and detectors of `registry` (the built-in
    /// ones and those registered on a [`Collector`](crate::Collector)); relative file paths
    /// resolve against `base`.
    pub fn parse(text: &str, origin: &str, base: &Path, registry: &Registry) -> Result<Config, ConfigError> {
        let raw: RawConfig = parse_toml(text, origin)?;
        raw.validate(origin, base, registry)
    }

    /// Reads and validates the file at `path` with the drivers and detectors of `registry`.
    pub fn load_with(path: &Path, registry: &Registry) -> Result<Config, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            origin: origin.clone(),
            field: "file".into(),
            message: format!("cannot read: {}", io_reason(&e)),
        })?;
        let base = path.parent().unwrap_or(Path::new(""));
        Config::parse(&text, &origin, base, registry)
    }

    /// Sets the number of simulated sensors (the `--sensors` flag): the count of the only entry
    /// that has one.
    pub fn set_sensor_count(&mut self, count: usize) -> Result<(), ConfigError> {
        let err = |m: &str| ConfigError::new("command line", "--sensors", m);
        if count == 0 {
            return Err(err("expected at least 1 sensor"));
        }
        let first = self.sensors.first().ok_or_else(|| err("no sensors configured"))?;
        let prefix = match first.id.rsplit_once('-') {
            Some((prefix, _)) => format!("{prefix}-"),
            None => return Err(err("applies to a configuration with one simulated `count` entry")),
        };
        let one_entry = self
            .sensors
            .iter()
            .all(|s| s.id.starts_with(&prefix) && driver::downcast::<simulated::Spec>(&*s.driver).is_some());
        if !one_entry {
            return Err(err("applies to a configuration with one simulated `count` entry"));
        }
        let prefix = prefix.trim_end_matches('-').to_string();
        let template = first.clone();
        self.sensors = (1..=count)
            .map(|i| SensorSpec {
                id: sensor_id(&prefix, i, count).into(),
                ..template.clone()
            })
            .collect();
        Ok(())
    }

    /// Checks the rules of `[collection]` again after flags were applied; errors name the flag.
    pub fn check_collection(&self, origin: &str) -> Result<(), ConfigError> {
        self.collection
            .check(origin, |key| format!("--{}", key.replace('_', "-")))
    }
}

impl CollectionConfig {
    /// The rules no single key's parser checks; `field` spells a key the way the input does
    /// (`collection.rounds` in a file, `--rounds` on the command line).
    fn check(&self, origin: &str, field: impl Fn(&str) -> String) -> Result<(), ConfigError> {
        if self.read_timeout.is_zero() {
            return Err(ConfigError::new(
                origin,
                field("read_timeout"),
                "expected a duration above 0s",
            ));
        }
        if self.rounds == Some(0) {
            return Err(ConfigError::new(origin, field("rounds"), "expected at least 1 round"));
        }
        if self.duration.is_some_and(|d| d.is_zero()) {
            return Err(ConfigError::new(
                origin,
                field("duration"),
                "expected a duration above 0s",
            ));
        }
        Ok(())
    }
}

/// Makes the id of the `i`-th (1-based) of `count` sensors: `<name>-<i>`, zero-padded to the
/// width of `count`.
pub fn sensor_id(name: &str, i: usize, count: usize) -> String {
    let width = count.to_string().len();
    format!("{name}-{i:0width$}")
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// Deserializes TOML text, naming the field path and the line of any error.
fn parse_toml<T: DeserializeOwned>(text: &str, origin: &str) -> Result<T, ConfigError> {
    let de = toml::Deserializer::new(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let mut message = inner.message().to_string();
        if let Some(span) = inner.span() {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            message = format!("{message} (line {line})");
        }
        let field = if path == "." { "toml".to_string() } else { path };
        ConfigError::new(origin, field, message)
    })
}

/// Deserializes one already-parsed TOML table (a `[[sensors]]` entry's driver settings).
pub(crate) fn from_table<T: DeserializeOwned>(table: toml::Table, origin: &str, at: &str) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            at.to_string()
        } else {
            format!("{at}.{path}")
        };
        ConfigError::new(origin, field, e.into_inner().message().to_string())
    })
}

/// Parses a duration string such as `"250ms"` or `"1s"`.
pub(crate) fn parse_duration(origin: &str, field: &str, text: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(text.trim()).map_err(|_| {
        ConfigError::new(
            origin,
            field,
            format!("expected a duration like \"250ms\" or \"1s\", got \"{text}\""),
        )
    })
}

/// Checks that `value` is a probability.
pub(crate) fn check_probability(origin: &str, field: &str, value: f64) -> Result<f64, ConfigError> {
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(ConfigError::new(
            origin,
            field,
            format!("expected a probability in 0..=1, got {value}"),
        ))
    }
}

/// Parses a `["min", "max"]` duration pair with min <= max.
pub(crate) fn parse_duration_range(
    origin: &str,
    field: &str,
    pair: &[String; 2],
) -> Result<(Duration, Duration), ConfigError> {
    let min = parse_duration(origin, field, &pair[0])?;
    let max = parse_duration(origin, field, &pair[1])?;
    if min > max {
        return Err(ConfigError::new(
            origin,
            field,
            format!("min {} is greater than max {}", pair[0].trim(), pair[1].trim()),
        ));
    }
    Ok((min, max))
}

/// Checks a `[min, max]` number pair: both finite, min <= max.
pub(crate) fn check_range(origin: &str, field: &str, pair: [f64; 2]) -> Result<(f64, f64), ConfigError> {
    let [min, max] = pair;
    if !min.is_finite() || !max.is_finite() {
        return Err(ConfigError::new(origin, field, "expected finite numbers"));
    }
    if min > max {
        return Err(ConfigError::new(
            origin,
            field,
            format!("min {min} is greater than max {max}"),
        ));
    }
    Ok((min, max))
}

// ---- stage one: raw serde structs -------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    collection: RawCollection,
    #[serde(default)]
    supervision: RawPolicy,
    #[serde(default)]
    sensors: Vec<toml::Table>,
    #[serde(default)]
    groups: Vec<RawGroup>,
    #[serde(default)]
    analysis: crate::analysis::RawAnalysis,
    #[serde(default)]
    runtime: RawRuntime,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCollection {
    interval: Option<String>,
    read_timeout: Option<String>,
    rounds: Option<u64>,
    duration: Option<String>,
    seed: Option<u64>,
    max_in_flight: Option<usize>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    restart: Option<RestartType>,
    max_restarts: Option<u32>,
    within: Option<String>,
    backoff_min: Option<String>,
    backoff_max: Option<String>,
    hung_after: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    name: String,
    strategy: Option<GroupStrategy>,
    max_restarts: Option<u32>,
    within: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRuntime {
    arbiters: Option<usize>,
}

/// The keys of a `[[sensors]]` entry that every driver shares; the rest go to the driver.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSensorCommon {
    driver: Option<String>,
    kind: Option<String>,
    name: Option<String>,
    id: Option<String>,
    count: Option<i64>,
    unit: Option<String>,
    group: Option<String>,
    range: Option<[f64; 2]>,
    restart: Option<RestartType>,
    max_restarts: Option<u32>,
    within: Option<String>,
    backoff_min: Option<String>,
    backoff_max: Option<String>,
    hung_after: Option<u32>,
}

impl RawSensorCommon {
    const KEYS: &'static [&'static str] = &[
        "driver",
        "kind",
        "name",
        "id",
        "count",
        "unit",
        "group",
        "range",
        "restart",
        "max_restarts",
        "within",
        "backoff_min",
        "backoff_max",
        "hung_after",
    ];

    fn policy(&self) -> RawPolicy {
        RawPolicy {
            restart: self.restart,
            max_restarts: self.max_restarts,
            within: self.within.clone(),
            backoff_min: self.backoff_min.clone(),
            backoff_max: self.backoff_max.clone(),
            hung_after: self.hung_after,
        }
    }
}

// ---- stage two: validation --------------------------------------------------------------------

impl RawConfig {
    fn validate(self, origin: &str, base: &Path, registry: &Registry) -> Result<Config, ConfigError> {
        let collection = self.collection.validate(origin)?;
        let supervision = self
            .supervision
            .validate(origin, "supervision", &RestartPolicy::default())?;
        let groups = validate_groups(self.groups, origin)?;
        let analysis = self.analysis.validate(origin, &registry.detectors)?;
        if self.runtime.arbiters == Some(0) {
            return Err(ConfigError::new(
                origin,
                "runtime.arbiters",
                "expected at least 1 arbiter",
            ));
        }
        if self.sensors.is_empty() {
            return Err(ConfigError::new(
                origin,
                "sensors",
                "expected at least one [[sensors]] entry",
            ));
        }
        let mut sensors = Vec::new();
        for (i, table) in self.sensors.into_iter().enumerate() {
            expand_entry(
                table,
                origin,
                base,
                i,
                &supervision,
                &groups,
                &registry.drivers,
                &mut sensors,
            )?;
        }
        let mut seen = HashSet::new();
        for s in &sensors {
            if !seen.insert(s.id.clone()) {
                return Err(ConfigError::new(
                    origin,
                    "sensors",
                    format!("duplicate sensor id \"{}\"", s.id),
                ));
            }
        }
        Ok(Config {
            collection,
            supervision,
            sensors,
            groups,
            analysis,
            runtime: RuntimeConfig {
                arbiters: self.runtime.arbiters,
            },
        })
    }
}

impl RawCollection {
    fn validate(self, origin: &str) -> Result<CollectionConfig, ConfigError> {
        let dur = |field: &str, v: &Option<String>, default: Duration| match v {
            Some(s) => parse_duration(origin, &format!("collection.{field}"), s),
            None => Ok(default),
        };
        let d = CollectionConfig::default();
        let collection = CollectionConfig {
            interval: dur("interval", &self.interval, d.interval)?,
            read_timeout: dur("read_timeout", &self.read_timeout, d.read_timeout)?,
            rounds: self.rounds,
            duration: match &self.duration {
                Some(s) => Some(parse_duration(origin, "collection.duration", s)?),
                None => None,
            },
            seed: self.seed,
            max_in_flight: self.max_in_flight.unwrap_or(0),
        };
        collection.check(origin, |key| format!("collection.{key}"))?;
        Ok(collection)
    }
}

impl RawPolicy {
    fn validate(&self, origin: &str, at: &str, base: &RestartPolicy) -> Result<RestartPolicy, ConfigError> {
        let dur = |field: &str, v: &Option<String>, default: Duration| match v {
            Some(s) => parse_duration(origin, &format!("{at}.{field}"), s),
            None => Ok(default),
        };
        let policy = RestartPolicy {
            restart: self.restart.unwrap_or(base.restart),
            max_restarts: self.max_restarts.unwrap_or(base.max_restarts),
            within: dur("within", &self.within, base.within)?,
            backoff_min: dur("backoff_min", &self.backoff_min, base.backoff_min)?,
            backoff_max: dur("backoff_max", &self.backoff_max, base.backoff_max)?,
            hung_after: self.hung_after.unwrap_or(base.hung_after),
        };
        if policy.within.is_zero() {
            return Err(ConfigError::new(
                origin,
                format!("{at}.within"),
                "expected a duration above 0s",
            ));
        }
        if policy.backoff_min > policy.backoff_max {
            return Err(ConfigError::new(
                origin,
                format!("{at}.backoff_min"),
                format!(
                    "{} is greater than backoff_max {}",
                    humantime::format_duration(policy.backoff_min),
                    humantime::format_duration(policy.backoff_max)
                ),
            ));
        }
        if policy.hung_after == 0 {
            return Err(ConfigError::new(
                origin,
                format!("{at}.hung_after"),
                "expected at least 1 timeout",
            ));
        }
        Ok(policy)
    }
}

fn validate_groups(raw: Vec<RawGroup>, origin: &str) -> Result<Vec<GroupSpec>, ConfigError> {
    let mut groups: Vec<GroupSpec> = Vec::with_capacity(raw.len());
    for (i, g) in raw.into_iter().enumerate() {
        let at = format!("groups[{i}]");
        if g.name.trim().is_empty() {
            return Err(ConfigError::new(
                origin,
                format!("{at}.name"),
                "expected a non-empty name",
            ));
        }
        if groups.iter().any(|other| other.name == g.name) {
            return Err(ConfigError::new(
                origin,
                format!("{at}.name"),
                format!("duplicate group \"{}\"", g.name),
            ));
        }
        let within = match &g.within {
            Some(s) => parse_duration(origin, &format!("{at}.within"), s)?,
            None => Duration::from_secs(10),
        };
        if within.is_zero() {
            return Err(ConfigError::new(
                origin,
                format!("{at}.within"),
                "expected a duration above 0s",
            ));
        }
        groups.push(GroupSpec {
            name: g.name,
            strategy: g.strategy.unwrap_or(GroupStrategy::OneForOne),
            max_restarts: g.max_restarts.unwrap_or(3),
            within,
        });
    }
    Ok(groups)
}

/// Validates one `[[sensors]]` entry and appends the sensors it makes.
#[allow(clippy::too_many_arguments)]
fn expand_entry(
    mut table: toml::Table,
    origin: &str,
    base: &Path,
    index: usize,
    defaults: &RestartPolicy,
    groups: &[GroupSpec],
    drivers: &DriverRegistry,
    out: &mut Vec<SensorSpec>,
) -> Result<(), ConfigError> {
    let at = format!("sensors[{index}]");
    let mut common_table = toml::Table::new();
    for key in RawSensorCommon::KEYS {
        if let Some(v) = table.remove(*key) {
            common_table.insert((*key).to_string(), v);
        }
    }
    let common: RawSensorCommon = from_table(common_table, origin, &at)?;
    let driver_name = common.driver.as_deref().unwrap_or("simulated");
    let factory_restart = drivers.get(driver_name).and_then(|f| f.default_restart());
    let driver = drivers.parse(driver_name, table, origin, &at, base).map_err(|mut e| {
        if e.message.starts_with("unknown field") {
            e.message = format!(
                "{}, or a key of every sensor: {}",
                e.message,
                RawSensorCommon::KEYS.join(", ")
            );
        }
        e
    })?;
    let mut raw_policy = common.policy();
    raw_policy.restart = raw_policy.restart.or(factory_restart);
    let policy = raw_policy.validate(origin, &at, defaults)?;
    let kind: Arc<str> = common
        .kind
        .clone()
        .unwrap_or_else(|| driver.default_kind().unwrap_or(driver_name).to_string())
        .into();
    if kind.is_empty() {
        return Err(ConfigError::new(
            origin,
            format!("{at}.kind"),
            "expected a non-empty kind",
        ));
    }
    let unit: Arc<str> = common
        .unit
        .clone()
        .unwrap_or_else(|| driver.default_unit().unwrap_or(default_unit(&kind)).to_string())
        .into();
    let group = match &common.group {
        Some(g) if !groups.iter().any(|spec| &spec.name == g) => {
            return Err(ConfigError::new(
                origin,
                format!("{at}.group"),
                format!("no [[groups]] entry is named \"{g}\""),
            ))
        }
        Some(g) => Some(Arc::<str>::from(g.as_str())),
        None => None,
    };
    let range = match common.range {
        Some(pair) => Some(check_range(origin, &format!("{at}.range"), pair)?),
        None => None,
    };
    if let Some(keyed) = driver.sensor_keys() {
        if common.id.is_some() || common.count.is_some() {
            return Err(ConfigError::new(
                origin,
                format!("{at}.id"),
                "expected no `id` or `count` with `id_column`: ids come from the column",
            ));
        }
        for (key, driver) in keyed {
            let id = match &common.name {
                Some(name) => format!("{name}-{key}"),
                None => key,
            };
            out.push(SensorSpec {
                id: id.into(),
                kind: kind.clone(),
                unit: unit.clone(),
                driver,
                policy: policy.clone(),
                group: group.clone(),
                range,
            });
        }
        return Ok(());
    }
    // The ids are made one at a time as the specs are pushed: at a million sensors a list of
    // them first would be tens of megabytes of garbage left in the allocator.
    let (single, count, name) = match (&common.id, common.count) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                origin,
                format!("{at}.id"),
                "expected either `id` or `count`, not both",
            ))
        }
        (Some(id), None) if id.trim().is_empty() => {
            return Err(ConfigError::new(origin, format!("{at}.id"), "expected a non-empty id"))
        }
        (Some(id), None) => (Some(id.clone()), 1, String::new()),
        (None, Some(count)) if count < 1 => {
            return Err(ConfigError::new(
                origin,
                format!("{at}.count"),
                format!("expected at least 1 sensor, got {count}"),
            ))
        }
        (None, count) => {
            let name = common.name.clone().unwrap_or_else(|| kind.to_string());
            (None, count.unwrap_or(1) as usize, name)
        }
    };
    let id = |i: usize| match &single {
        Some(id) => id.clone(),
        None => sensor_id(&name, i, count),
    };
    if let Some(simulated) = driver::downcast::<simulated::Spec>(&*driver) {
        simulated
            .settings()
            .check_fault_sensors(origin, &at, |s| (1..=count).any(|k| id(k) == s))?;
    }
    out.reserve(count);
    for i in 1..=count {
        out.push(SensorSpec {
            id: id(i).into(),
            kind: kind.clone(),
            unit: unit.clone(),
            driver: driver.clone(),
            policy: policy.clone(),
            group: group.clone(),
            range,
        });
    }
    Ok(())
}

/// The unit of a kind when the entry names none.
pub fn default_unit(kind: &str) -> &'static str {
    match kind {
        "temperature" => "C",
        "humidity" => "%",
        "pressure" => "hPa",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        Config::from_toml_str(text, "c.toml").unwrap_err().to_string()
    }

    #[test]
    fn sensor_table_shares_the_settings_of_an_entry() {
        let config = Config::from_toml_str(
            "[[sensors]]\nkind = \"temperature\"\ncount = 3\n\
             [[sensors]]\nkind = \"humidity\"\ncount = 2\nmax_restarts = 9\n\
             [[sensors]]\nid = \"solo\"\nkind = \"humidity\"\n",
            "c.toml",
        )
        .unwrap();
        let specs = config.sensors.clone();
        let table = SensorTable::new(config.sensors);
        assert_eq!(table.len(), 6);
        assert_eq!(table.entries.len(), 3);
        assert_eq!(&*table.entry_of, [0, 0, 0, 1, 1, 2]);
        for (i, spec) in specs.iter().enumerate() {
            let entry = table.entry(i);
            assert_eq!(table.id(i), spec.id);
            assert!(entry.holds(spec), "sensor {i}");
            assert_eq!(
                (&entry.kind, entry.policy.max_restarts),
                (&spec.kind, spec.policy.max_restarts)
            );
        }
        // Equal settings but separate driver instances are separate entries.
        let driver = |_| -> Arc<dyn DriverSpec> { Arc::new(simulated::Spec::new(simulated::Settings::default())) };
        let table = SensorTable::new(vec![
            SensorSpec::new("a", "t", driver(0)),
            SensorSpec::new("b", "t", driver(1)),
        ]);
        assert_eq!(&*table.entry_of, [0, 1]);
    }

    #[test]
    fn default_scenario_is_the_seed() {
        let c = Config::default_scenario();
        assert_eq!(c.sensors.len(), 20);
        assert_eq!(&*c.sensors[0].id, "temperature-01");
        assert_eq!(&*c.sensors[19].id, "temperature-20");
        assert_eq!(&*c.sensors[0].unit, "C");
        assert_eq!(c.collection.interval, Duration::from_secs(1));
        assert_eq!(c.collection.read_timeout, Duration::from_secs(2));
        assert_eq!(c.collection.rounds, None);
    }

    #[test]
    fn ids_follow_name_and_width() {
        let c = Config::from_toml_str(
            "[[sensors]]\nname = \"t\"\ncount = 100\n[[sensors]]\nid = \"solo\"\nkind = \"humidity\"\n",
            "c.toml",
        )
        .unwrap();
        assert_eq!(&*c.sensors[0].id, "t-001");
        assert_eq!(&*c.sensors[99].id, "t-100");
        assert_eq!(&*c.sensors[100].id, "solo");
        assert_eq!(&*c.sensors[100].unit, "%");
    }

    /// The table gives back every id the configuration made, numbered runs and ids of their own
    /// alike, including ids that only look numbered and numbered runs that break off.
    #[test]
    fn the_table_gives_back_every_id() {
        let text = "[[sensors]]\nname = \"t\"\ncount = 120\n\
            [[sensors]]\nid = \"solo\"\n\
            [[sensors]]\nid = \"t-121\"\n\
            [[sensors]]\nid = \"t-0123\"\n\
            [[sensors]]\nid = \"bus-7\"\n\
            [[sensors]]\nid = \"bus-8\"\nkind = \"humidity\"\n\
            [[sensors]]\nid = \"bus-10\"\n\
            [[sensors]]\nid = \"x-+1\"\n\
            [[sensors]]\nid = \"x-\"\n\
            [[sensors]]\nid = \"-5\"\n\
            [[sensors]]\nname = \"t\"\ncount = 3\nkind = \"pressure\"\n";
        let c = Config::from_toml_str(text, "c.toml").unwrap();
        let expected: Vec<String> = c.sensors.iter().map(|s| s.id.to_string()).collect();
        assert_eq!(expected.len(), 132);
        let table = SensorTable::new(c.sensors);
        let got: Vec<String> = (0..table.len()).map(|i| table.id(i).to_string()).collect();
        assert_eq!(got, expected);
        assert_eq!(table.entry(121).kind.as_ref(), "temperature");
        assert_eq!(table.entry(124).kind.as_ref(), "humidity");
        assert_eq!(table.entry(131).kind.as_ref(), "pressure");
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_path() {
        let e = err("[collection]\nintervall = \"1s\"\n[[sensors]]\ncount=1\n");
        assert!(
            e.starts_with("c.toml: collection.intervall: unknown field `intervall`, expected one of `interval`"),
            "{e}"
        );
        assert!(e.ends_with("(line 2)"), "{e}");
        let e = err("[[sensors]]\ncount = 1\nlatncy = [\"1ms\", \"2ms\"]\n");
        assert!(
            e.starts_with("c.toml: sensors[0].latncy: unknown field `latncy`, expected one of `latency`"),
            "{e}"
        );
        assert!(e.ends_with("or a key of every sensor: driver, kind, name, id, count, unit, group, range, restart, max_restarts, within, backoff_min, backoff_max, hung_after"), "{e}");
        assert!(err("[bogus]\n[[sensors]]\ncount=1\n").starts_with("c.toml: bogus: unknown field `bogus`"));
    }

    #[test]
    fn bad_values_name_field_and_expectation() {
        assert_eq!(
            err("[[sensors]]\ncount = 1\nlatency = [\"500ms\", \"100ms\"]\n"),
            "c.toml: sensors[0].latency: min 500ms is greater than max 100ms"
        );
        assert_eq!(
            err("[[sensors]]\ncount = 1\nerror_rate = 1.5\n"),
            "c.toml: sensors[0].error_rate: expected a probability in 0..=1, got 1.5"
        );
        assert_eq!(
            err("[collection]\n"),
            "c.toml: sensors: expected at least one [[sensors]] entry"
        );
        assert_eq!(
            err("[[sensors]]\ncount = 0\n"),
            "c.toml: sensors[0].count: expected at least 1 sensor, got 0"
        );
        assert_eq!(
            err("[collection]\ninterval = \"-1s\"\n[[sensors]]\ncount = 1\n"),
            "c.toml: collection.interval: expected a duration like \"250ms\" or \"1s\", got \"-1s\""
        );
        assert_eq!(
            err("[collection]\nread_timeout = \"soon\"\n[[sensors]]\ncount = 1\n"),
            "c.toml: collection.read_timeout: expected a duration like \"250ms\" or \"1s\", got \"soon\""
        );
        assert_eq!(
            err("[[sensors]]\nid = \"a\"\n[[sensors]]\nid = \"a\"\n"),
            "c.toml: sensors: duplicate sensor id \"a\""
        );
        assert_eq!(
            err("[[sensors]]\ndriver = \"laser\"\ncount = 1\n"),
            "c.toml: sensors[0].driver: expected one of simulated, replay, system, got \"laser\""
        );
        assert!(err("[collection]\ninterval = 5\n[[sensors]]\ncount=1\n")
            .starts_with("c.toml: collection.interval: invalid type: integer `5`, expected a string"));
        assert_eq!(
            err("[[sensors]]\ncount = 2\nfaults = [{ round = 1, fault = \"hang\", sensor = \"temperature-3\" }]\n"),
            "c.toml: sensors[0].faults[0].sensor: expected the id of a sensor of this entry, got \"temperature-3\""
        );
        assert_eq!(
            err("[[sensors]]\ncount = 1\nfaults = [{ round = 1, fault = \"melt\" }]\n"),
            "c.toml: sensors[0].faults[0].fault: unknown variant `melt`, expected one of `panic`, `crash`, `hang`, `fatal`, `error`, `flap`, `stuck`, `spike`, `drift`"
        );
        assert_eq!(
            err("[supervision]\nbackoff_min = \"2s\"\nbackoff_max = \"1s\"\n[[sensors]]\ncount = 1\n"),
            "c.toml: supervision.backoff_min: 2s is greater than backoff_max 1s"
        );
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let e = err("[[sensors]]\ncount = = 1\n");
        assert!(e.starts_with("c.toml: toml: "), "{e}");
        assert!(e.ends_with("(line 2)"), "{e}");
    }

    #[test]
    fn missing_file_is_named() {
        let e = Config::load(Path::new("/nonexistent/x.toml")).unwrap_err();
        assert_eq!(e.to_string(), "/nonexistent/x.toml: file: cannot read: no such file");
    }

    #[test]
    fn sensor_count_flag_resizes_the_entry() {
        let mut c = Config::default_scenario();
        c.set_sensor_count(3).unwrap();
        let ids: Vec<&str> = c.sensors.iter().map(|s| &*s.id).collect();
        assert_eq!(ids, ["temperature-1", "temperature-2", "temperature-3"]);
        assert!(c.set_sensor_count(0).is_err());
    }

    #[test]
    fn overrides_per_sensor_policy() {
        let c = Config::from_toml_str(
            "[supervision]\nmax_restarts = 2\n[[sensors]]\ncount = 1\nrestart = \"transient\"\nhung_after = 7\n",
            "c.toml",
        )
        .unwrap();
        let p = &c.sensors[0].policy;
        assert_eq!(p.restart, RestartType::Transient);
        assert_eq!(p.max_restarts, 2);
        assert_eq!(p.hung_after, 7);
    }
}
