//! Configuration: the TOML file of `docs/configuration.md`, read in two stages, and the
//! validated types every other part of a run is built from.
//!
//! Stage one (`raw.rs`) deserializes into raw serde structs that reject unknown keys; stage two
//! (`validate.rs`) validates them into a [`Config`] whose fields are typed (durations, ranges,
//! driver settings). Every error is one line naming the origin (file name), the field path and
//! what was expected, e.g. `config.toml: sensors[2].latency: min 500ms is greater than max 100ms`
//! (a [`ConfigError`], defined at the bottom of the crate with the checks drivers and detectors
//! share). `SensorTable` (`table.rs`, crate-private) is the compact layout the actors keep a run's sensors in.
//!
//! Parsers take `&str` ([`Config::from_toml_str`]) so tests need no files; [`Config::load`] reads
//! a file and [`Config::default_scenario`] is the embedded default run (the seed scenario). The
//! binary and [`Collector`](crate::Collector) load configurations here; the supervisors,
//! aggregators and streams read the validated types.

mod raw;
mod table;
mod validate;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::analysis::AnalysisConfig;
use crate::driver::{self, simulated, DriverSpec};
use crate::registry::Registry;
use crate::report::MachineMemory;
use raw::{parse_toml, RawConfig};

pub use crate::data::RestartType;
pub use crate::parse::ConfigError;
pub(crate) use table::{IdIndex, SensorEntry, SensorTable};
pub(crate) use validate::{validate_entry, ADDED_ENTRY};

/// Defaults of the `[collection]` section.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
/// Default per-read deadline.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(2);
/// Number of simulated sensors in the default scenario.
pub const DEFAULT_SENSOR_COUNT: usize = 20;

/// A validated configuration, ready to run.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// How rounds are scheduled and read.
    pub collection: CollectionConfig,
    /// Restart policy defaults (`[supervision]`); each sensor carries its resolved copy.
    pub supervision: RestartPolicy,
    /// The root's own intensity for escalated groups (`[root]`).
    pub root: RootPolicy,
    /// Every sensor, in configuration order; the index is the sensor's index everywhere.
    pub sensors: Vec<SensorSpec>,
    /// Groups (`[[groups]]`): nested supervisors for the sensors that name them.
    pub groups: Vec<GroupSpec>,
    /// Detector settings (`[analysis]`).
    pub analysis: AnalysisConfig,
    /// Actor layout (`[runtime]`).
    pub runtime: RuntimeConfig,
    /// The live view's HTTP server (`[http]`, or `--http ADDR`); `None`: no server (the default).
    pub http: Option<HttpConfig>,
    /// Outputs configured in the file (`[outputs]`).
    pub outputs: Outputs,
}

/// The `[outputs]` section: outputs set up in the file rather than in code.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Outputs {
    /// `[outputs.mqtt]`: publish every stream to an MQTT broker (docs/outputs.md).
    pub mqtt: Option<crate::mqtt::MqttOutputConfig>,
    /// `[outputs.files]`: how the `--out DIR` files are written (when a folder is given).
    pub files: FilesConfig,
}

/// The `[outputs.files]` section: settings of the `--out DIR` files
/// ([`JsonlFiles`](crate::sinks::JsonlFiles)); they apply when a run writes a folder.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FilesConfig {
    /// The format of the readings file (`readings_format`, or `run --readings-format`).
    pub readings_format: ReadingsFormat,
}

/// The format of the readings file of an `--out` folder (docs/outputs.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ReadingsFormat {
    /// `readings.jsonl`: one JSON object per reading (the default).
    #[default]
    Jsonl,
    /// `readings.csv`: a header line, then one row per reading with the same fields in the same
    /// order; about half the bytes of JSON Lines.
    Csv,
}

impl ReadingsFormat {
    /// Every format, in the order they are listed to users.
    pub const ALL: [ReadingsFormat; 2] = [ReadingsFormat::Jsonl, ReadingsFormat::Csv];

    /// The name used on the command line and in the configuration: `jsonl` or `csv`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReadingsFormat::Jsonl => "jsonl",
            ReadingsFormat::Csv => "csv",
        }
    }

    /// The readings file's name in the folder: `readings.jsonl` or `readings.csv`.
    pub fn file_name(self) -> &'static str {
        match self {
            ReadingsFormat::Jsonl => "readings.jsonl",
            ReadingsFormat::Csv => "readings.csv",
        }
    }

    /// Parses `jsonl` or `csv` (the command line's spelling); the error says what was expected.
    pub fn parse(text: &str) -> Result<ReadingsFormat, String> {
        ReadingsFormat::ALL
            .into_iter()
            .find(|f| f.as_str() == text)
            .ok_or_else(|| format!("expected jsonl or csv, got {}", crate::parse::quoted(text)))
    }
}

impl std::fmt::Display for ReadingsFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[outputs.files]`, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFilesOutput {
    readings_format: Option<ReadingsFormat>,
}

impl RawFilesOutput {
    fn validate(self) -> FilesConfig {
        FilesConfig {
            readings_format: self.readings_format.unwrap_or_default(),
        }
    }
}

/// The `[collection]` section.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
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
    /// How much the journal says (`journal`): the default, or also each read timeout that
    /// counts toward a hang.
    pub journal: JournalDetail,
}

/// How much the supervision journal says (`[collection] journal`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum JournalDetail {
    /// Failures, restarts, stops, give-ups, escalations.
    #[default]
    Normal,
    /// Also a `timed_out` event for each read timeout of a running sensor that counts toward
    /// `hung_after` (the run-up to a `hung` failure).
    Verbose,
}

/// Restart policy of one sensor (or the defaults of `[supervision]`).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
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
    /// What the sensor's supervisor does with each kind of failure (default: restart).
    pub directives: Directives,
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
            directives: Directives::default(),
        }
    }
}

/// What a supervisor does with one kind of failure of a sensor, as Akka's supervisor
/// directives (`docs/supervision.md`, "Directives").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Directive {
    /// Restart it by its restart type, its group's strategy, the intensity and the backoff.
    #[default]
    Restart,
    /// Stop it for good (`stopped`), counting no restart; its siblings are untouched.
    Stop,
    /// Fail its group at once, as if the group's intensity were exceeded: the group escalates
    /// to its parent (only for members of a `[[groups]]` entry).
    Escalate,
    /// Keep its actor and its state, and go on reading it (`resumed`); counts no restart. Not
    /// for a stopped actor, which has nothing to resume.
    Resume,
}

impl Directive {
    /// The name used in the configuration and the journal.
    pub fn as_str(self) -> &'static str {
        match self {
            Directive::Restart => "restart",
            Directive::Stop => "stop",
            Directive::Escalate => "escalate",
            Directive::Resume => "resume",
        }
    }
}

/// The kinds of failure a [`Directive`] is chosen for (the rows of `docs/supervision.md`'s
/// failure table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureKind {
    /// A panic in a read or a build, caught.
    Panic,
    /// A fatal read error, or a build that failed.
    Fatal,
    /// `hung_after` consecutive read timeouts.
    Hung,
    /// The sensor's actor stopped (its mailbox closed).
    Stopped,
}

impl FailureKind {
    /// The name used in the configuration (`directives = { hung = "stop" }`).
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Panic => "panic",
            FailureKind::Fatal => "fatal",
            FailureKind::Hung => "hung",
            FailureKind::Stopped => "stopped",
        }
    }
}

/// A [`Directive`] per kind of failure: `directives = { panic = "restart", hung = "stop" }` in
/// `[supervision]`, a `[[groups]]` entry (for its members) or a `[[sensors]]` entry; the most
/// specific one that names a kind wins, and a kind no one names is restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Directives {
    /// For a caught panic.
    pub panic: Directive,
    /// For a fatal error or a failed build.
    pub fatal: Directive,
    /// For a hang.
    pub hung: Directive,
    /// For a stopped actor.
    pub stopped: Directive,
}

impl Directives {
    /// The directive for `kind`.
    pub fn get(&self, kind: FailureKind) -> Directive {
        match kind {
            FailureKind::Panic => self.panic,
            FailureKind::Fatal => self.fatal,
            FailureKind::Hung => self.hung,
            FailureKind::Stopped => self.stopped,
        }
    }

    /// The kinds whose directive is not `restart`, with it, for display (`hung: stop`).
    pub(crate) fn overrides(&self) -> Vec<(FailureKind, Directive)> {
        [
            FailureKind::Panic,
            FailureKind::Fatal,
            FailureKind::Hung,
            FailureKind::Stopped,
        ]
        .into_iter()
        .map(|k| (k, self.get(k)))
        .filter(|(_, d)| *d != Directive::Restart)
        .collect()
    }
}

/// The root's own intensity (`[root]`): how it treats a top-level group that escalated.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RootPolicy {
    /// Restarts of one escalated group allowed within `within`; more gives the group up. 0 (the
    /// default) gives an escalated group up at once.
    pub max_restarts: u32,
    /// The intensity window (default: `[supervision]`'s).
    pub within: Duration,
    /// First backoff delay of a group's restart (default: `[supervision]`'s).
    pub backoff_min: Duration,
    /// Largest backoff delay (default: `[supervision]`'s).
    pub backoff_max: Duration,
}

impl RootPolicy {
    /// The root's policy when `[root]` is absent: escalated groups are given up at once, the
    /// rest taken from `supervision`.
    pub(crate) fn from_supervision(supervision: &RestartPolicy) -> Self {
        RootPolicy {
            max_restarts: 0,
            within: supervision.within,
            backoff_min: supervision.backoff_min,
            backoff_max: supervision.backoff_max,
        }
    }

    /// As a restart policy (for the restart rules, which take one).
    pub(crate) fn as_restart_policy(&self) -> RestartPolicy {
        RestartPolicy {
            max_restarts: self.max_restarts,
            within: self.within,
            backoff_min: self.backoff_min,
            backoff_max: self.backoff_max,
            ..RestartPolicy::default()
        }
    }
}

/// Strategy of a group, as in Erlang/OTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum GroupStrategy {
    /// Only the failed sensor is restarted.
    OneForOne,
    /// Every sensor of the group is restarted.
    OneForAll,
    /// The failed sensor and those after it (in configuration order) are restarted.
    RestForOne,
}

impl GroupStrategy {
    /// The name used in the configuration, the journal and the summary.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupStrategy::OneForOne => "one_for_one",
            GroupStrategy::OneForAll => "one_for_all",
            GroupStrategy::RestForOne => "rest_for_one",
        }
    }
}

/// A `[[groups]]` entry.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct GroupSpec {
    /// The name sensors refer to with `group = "..."`.
    pub name: String,
    /// How a failure of one member affects the others.
    pub strategy: GroupStrategy,
    /// More than this many group restarts within `within` escalates to the root.
    pub max_restarts: u32,
    /// The group's intensity window.
    pub within: Duration,
    /// The group it is nested in (`parent = "..."`), which supervises it as one of its
    /// children; `None`: the root.
    pub parent: Option<String>,
    /// Its members' directives where its `directives` table gives them (between
    /// `[supervision]`'s and a sensor entry's own), for the sensors added to it while running.
    pub(crate) directives: Option<raw::RawDirectives>,
}

/// The `[runtime]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
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

/// The most sensors one run takes (about 15 GB at the measured 1.5 KB per sensor); a count above
/// it is refused before anything is allocated.
pub const MAX_SENSORS: usize = 10_000_000;

/// The most arbiters (threads) a run takes (`[runtime] arbiters`).
pub const MAX_ARBITERS: usize = 256;

pub use crate::parse::{check_duration, MAX_DURATION};
pub use validate::parse_http_address;

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

/// The live view's default address: loopback only, port 9184. Another interface is used only
/// when the user names it (`--http 0.0.0.0:9184`, or `[http] address`).
pub const DEFAULT_HTTP_ADDRESS: std::net::SocketAddr =
    std::net::SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9184);

/// Default cap on the sensors that get their own series in `/metrics` when `sensor_series` is on.
pub const DEFAULT_MAX_SENSOR_SERIES: usize = 1_000;

/// The largest `max_sensor_series` accepted: a scrape of more series than this is a
/// time-series database's problem, not a collector's.
pub const MAX_SENSOR_SERIES: usize = 100_000;

/// The `[http]` section: the live view (`/metrics`, the JSON API; docs/live-view.md).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpConfig {
    /// Where the server listens ([`DEFAULT_HTTP_ADDRESS`] unless named).
    pub address: std::net::SocketAddr,
    /// Per-sensor series in `/metrics` (readings, last value, restarts, state), off by default:
    /// one series per sensor is a label explosion at 100,000 sensors.
    pub sensor_series: bool,
    /// With `sensor_series`: at most this many sensors (the first in configuration order) get
    /// series; the others are counted in `sensor_actors_sensor_series_omitted`.
    pub max_sensor_series: usize,
    /// The control endpoints (restart, stop, add, remove sensors), off by default; the binary
    /// takes their token from [`HTTP_TOKEN_VARIABLE`].
    pub control: bool,
}

/// The environment variable the binary takes the control endpoints' token from (never from
/// the command line, where other users of the machine can see it, nor from the configuration).
pub const HTTP_TOKEN_VARIABLE: &str = "SENSOR_ACTORS_HTTP_TOKEN";

/// The shortest control token accepted.
pub const MIN_TOKEN_LENGTH: usize = 16;

impl HttpConfig {
    /// A server at `address` without per-sensor series.
    pub fn new(address: std::net::SocketAddr) -> Self {
        HttpConfig {
            address,
            sensor_series: false,
            max_sensor_series: DEFAULT_MAX_SENSOR_SERIES,
            control: false,
        }
    }
}

/// One sensor: everything needed to build (and rebuild) it.
#[derive(Debug, Clone)]
#[non_exhaustive]
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
            journal: JournalDetail::Normal,
        }
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
            root: RootPolicy::from_supervision(&RestartPolicy::default()),
            sensors,
            groups: Vec::new(),
            analysis: AnalysisConfig::default(),
            runtime: RuntimeConfig { arbiters: None },
            http: None,
            outputs: Outputs::default(),
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
        use std::io::Read as _;
        let origin = path.display().to_string();
        let error = |message: String| ConfigError {
            origin: origin.clone(),
            field: "file".into(),
            message,
        };
        // Bounded: `/dev/zero` or an endless pipe is refused, not read until memory runs out.
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|file| file.take(MAX_CONFIG_BYTES + 1).read_to_end(&mut bytes))
            .map_err(|e| error(format!("cannot read: {}", io_reason(&e))))?;
        if bytes.len() as u64 > MAX_CONFIG_BYTES {
            return Err(error(format!(
                "expected a file of at most {} MiB (for larger fleets use `count` entries or a replay `id_column`)",
                MAX_CONFIG_BYTES >> 20
            )));
        }
        let text = String::from_utf8(bytes).map_err(|e| {
            error(format!(
                "expected UTF-8 text (an invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ))
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
        if count > MAX_SENSORS {
            return Err(err(&format!("expected at most {MAX_SENSORS} sensors, got {count}")));
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

    /// The memory a run of this configuration is expected to hold at its peak, in bytes:
    /// [`SENSOR_BYTES`] per sensor plus 6 bytes per value of its analysis window (allocated when
    /// the sensor is first analysed), and [`GROUP_BYTES`] per `[[groups]]` entry. An estimate from the measured figures of
    /// docs/performance.md, for refusing what cannot fit before anything is allocated.
    pub fn memory_estimate(&self) -> u64 {
        let window = self.analysis.window as u64;
        let sensors = self.sensors.len() as u64 * (SENSOR_BYTES + WINDOW_VALUE_BYTES * window);
        sensors + self.groups.len() as u64 * GROUP_BYTES
    }

    /// Refuses a configuration whose [`memory_estimate`](Config::memory_estimate) exceeds what
    /// the process may hold (`memory.limit_bytes`), naming the estimate. A run over what is
    /// available now, but within the limit, is allowed: the warning returned says so.
    pub fn check_memory(&self, origin: &str, memory: MachineMemory) -> Result<Option<String>, ConfigError> {
        let estimate = self.memory_estimate();
        let n = self.sensors.len();
        let window = self.analysis.window;
        let groups = match self.groups.len() {
            0 => String::new(),
            g => format!(" and {g} groups"),
        };
        let per_group = if groups.is_empty() {
            String::new()
        } else {
            format!(", {GROUP_BYTES} B per group")
        };
        let need = format!(
            "{n} sensors with a {window}-value window{groups} need about {} ({SENSOR_BYTES} B per sensor and {WINDOW_VALUE_BYTES} B per window value{per_group})",
            gigabytes(estimate)
        );
        if estimate > memory.limit_bytes {
            let field = if window > crate::analysis::DEFAULT_WINDOW {
                "analysis.window"
            } else {
                "sensors"
            };
            return Err(ConfigError::new(
                origin,
                field,
                format!(
                    "{need}, more than the {} this process may use; lower the window or the sensor count",
                    gigabytes(memory.limit_bytes)
                ),
            ));
        }
        Ok((estimate > memory.available_bytes).then(|| {
            format!(
                "{origin}: {need}, more than the {} available now (of {}): the machine may swap",
                gigabytes(memory.available_bytes),
                gigabytes(memory.limit_bytes)
            )
        }))
    }

    /// Checks that every sensor can run on `clock`: on a virtual clock, none whose driver reads
    /// the real world ([`DriverSpec::real_world`]).
    pub fn check_clock(&self, clock: crate::Clock, origin: &str) -> Result<(), ConfigError> {
        if clock == crate::Clock::Wall {
            return Ok(());
        }
        match self.sensors.iter().position(|s| s.driver.real_world()) {
            Some(i) => Err(ConfigError::new(
                origin,
                "sensors",
                format!(
                    "sensor {} (kind {}) reads the real world, which a virtual clock cannot simulate; run it with --clock wall",
                    crate::parse::quoted(&self.sensors[i].id),
                    crate::parse::quoted(&self.sensors[i].kind)
                ),
            )),
            None => Ok(()),
        }
    }

    /// The supervision tree a run of this configuration starts, as text (`sensor-actors tree`):
    /// the root, the groups and shards with their strategy, intensity and thread, and at most
    /// `per_group` sensors of each with their restart type, intensity, backoff and `hung_after`.
    pub fn supervision_tree(&self, per_group: usize) -> String {
        crate::supervisor::describe(self, per_group)
    }

    /// Checks the rules of `[collection]` again after flags were applied; errors name the flag.
    pub fn check_collection(&self, origin: &str) -> Result<(), ConfigError> {
        self.collection
            .check(origin, |key| format!("--{}", key.replace('_', "-")))
    }
}

/// The largest configuration file, in bytes (parsing takes about 27 times its size in memory).
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// Memory per sensor at a run's peak, outputs on, besides its analysis window (measured at
/// 1.4-1.6 KB without outputs and about 0.9 KB more with them; docs/performance.md).
pub const SENSOR_BYTES: u64 = 2048;

/// Memory per `[[groups]]` entry: its supervisor actor, its round buffers and its slot at the
/// root (measured: 100,000 groups of one sensor peak at 952 MiB, 2 KB of it per sensor).
pub const GROUP_BYTES: u64 = 8192;

/// Memory per value of a sensor's analysis window (an `f32` and a `u16` position).
const WINDOW_VALUE_BYTES: u64 = 6;

/// Bytes as GB with one decimal (at least 0.1).
fn gigabytes(bytes: u64) -> String {
    format!("{:.1} GB", (bytes as f64 / 1e9).max(0.1))
}

/// Makes the id of the `i`-th (1-based) of `count` sensors: `<name>-<i>`, zero-padded to the
/// width of `count`.
pub fn sensor_id(name: &str, i: usize, count: usize) -> String {
    let width = count.to_string().len();
    format!("{name}-{i:0width$}")
}

/// Whether `candidate` is the id [`sensor_id`] gives one of the `count` sensors named `name`:
/// computed from its digits, so that checking an id against a large entry enumerates nothing.
pub(crate) fn is_sensor_id(candidate: &str, name: &str, count: usize) -> bool {
    let Some(digits) = candidate.strip_prefix(name).and_then(|rest| rest.strip_prefix('-')) else {
        return false;
    };
    digits.len() == count.to_string().len()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && digits.parse::<usize>().is_ok_and(|i| (1..=count).contains(&i))
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
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

    /// `[outputs.files] readings_format`: JSON Lines by default, `csv` on request, anything
    /// else refused naming the key and the two values; the flag's parser says the same.
    #[test]
    fn readings_format_is_jsonl_unless_csv_is_asked() {
        let parse = |text: &str| Config::from_toml_str(&format!("{text}[[sensors]]\ncount = 1\n"), "f.toml");
        assert_eq!(parse("").unwrap().outputs.files.readings_format, ReadingsFormat::Jsonl);
        let csv = parse("[outputs.files]\nreadings_format = \"csv\"\n").unwrap();
        assert_eq!(csv.outputs.files.readings_format, ReadingsFormat::Csv);
        assert_eq!(ReadingsFormat::Csv.file_name(), "readings.csv");
        let e = parse("[outputs.files]\nreadings_format = \"parquet\"\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "f.toml: outputs.files.readings_format: unknown variant `parquet`, expected `jsonl` or `csv` (line 2)"
        );
        assert_eq!(ReadingsFormat::parse("csv"), Ok(ReadingsFormat::Csv));
        assert_eq!(
            ReadingsFormat::parse("CSV").unwrap_err(),
            "expected jsonl or csv, got \"CSV\""
        );
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

    /// The estimate is sensors × (2,048 + 6 × window) bytes; exactly at the limit is allowed, one
    /// byte more is refused with the estimate, and over what is available only warns.
    #[test]
    fn memory_over_the_limit_is_refused_before_allocating() {
        let mut config =
            Config::from_toml_str("[analysis]\nwindow = 1000\n[[sensors]]\ncount = 4\n", "m.toml").unwrap();
        let estimate = 4 * (2048 + 6 * 1000);
        assert_eq!(config.memory_estimate(), estimate);
        let fits = MachineMemory::new(estimate, estimate);
        assert_eq!(config.check_memory("m.toml", fits).unwrap(), None);
        let e = config
            .check_memory("m.toml", MachineMemory::new(estimate - 1, estimate - 1))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "m.toml: analysis.window: 4 sensors with a 1000-value window need about 0.1 GB (2048 B per sensor and 6 B per window value), more than the 0.1 GB this process may use; lower the window or the sensor count"
        );
        let warning = config
            .check_memory("m.toml", MachineMemory::new(estimate, estimate - 1))
            .unwrap()
            .unwrap();
        assert!(warning.contains("more than the 0.1 GB available now"), "{warning}");
        // Groups count too, 8 KB each.
        let grouped = Config::from_toml_str(
            "[[groups]]\nname = \"g\"\n[[sensors]]\ncount = 4\ngroup = \"g\"\n",
            "m.toml",
        )
        .unwrap();
        assert_eq!(grouped.memory_estimate(), 4 * (2048 + 6 * 30) + 8192);
        let e = grouped
            .check_memory("m.toml", MachineMemory::new(1, 1))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("4 sensors with a 30-value window and 1 groups need about"),
            "{e}"
        );
        // With the default window, the sensors are the field to change.
        config.analysis.window = crate::analysis::DEFAULT_WINDOW;
        let e = config.check_memory("m.toml", MachineMemory::new(1, 1)).unwrap_err();
        assert!(e.to_string().starts_with("m.toml: sensors: 4 sensors"), "{e}");
    }

    #[test]
    fn missing_file_is_named() {
        let e = Config::load(Path::new("/nonexistent/x.toml")).unwrap_err();
        assert_eq!(e.to_string(), "/nonexistent/x.toml: file: cannot read: no such file");
    }

    /// `is_sensor_id` says yes exactly to the ids `sensor_id` makes.
    #[test]
    fn sensor_ids_are_recognised_without_enumerating_them() {
        for count in [1, 9, 10, 11, 100, 101] {
            let ids: Vec<String> = (1..=count).map(|i| sensor_id("t-1", i, count)).collect();
            for i in 0..=count + 2 {
                for width in 1..=4 {
                    let candidate = format!("t-1-{i:0width$}");
                    assert_eq!(
                        is_sensor_id(&candidate, "t-1", count),
                        ids.contains(&candidate),
                        "{candidate} of {count}"
                    );
                }
            }
        }
        for odd in ["t-1", "t-1-", "t-1-+1", "t-1- 1", "t-10", "u-1-1", "t-1-1x", ""] {
            assert!(!is_sensor_id(odd, "t-1", 9), "{odd}");
        }
        assert!(is_sensor_id("temperature-10000000", "temperature", MAX_SENSORS));
        assert!(!is_sensor_id("temperature-10000001", "temperature", MAX_SENSORS));
    }

    #[test]
    fn sensor_count_flag_resizes_the_entry() {
        let mut c = Config::default_scenario();
        c.set_sensor_count(3).unwrap();
        let ids: Vec<&str> = c.sensors.iter().map(|s| &*s.id).collect();
        assert_eq!(ids, ["temperature-1", "temperature-2", "temperature-3"]);
        assert!(c.set_sensor_count(0).is_err());
    }
}
