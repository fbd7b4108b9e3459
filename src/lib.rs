//! sensor-actors: collect IoT sensor data with actors.
//!
//! Data moves one way: sensor -> group (round, supervision, analysis) -> root -> aggregator ->
//! outputs.
//!
//! - [`config`]: the TOML configuration, read in two stages (raw serde structs, then a validated
//!   [`Config`]); every error names file, field and expectation.
//! - [`driver`]: the [`Driver`](driver::Driver) trait and the drivers by name: a
//!   [`DriverFactory`](driver::DriverFactory) per name (`simulated`, `replay` from CSV, `system`
//!   from `/proc`, and any registered on a [`Collector`]), parsing entries into specs that build drivers.
//! - [`sensor`]: [`SensorActor`](sensor::SensorActor), one actor per sensor, answering
//!   [`Read`](messages::Read); a panicking driver fails that sensor only.
//! - [`round`]: one collection round: fan `Read` out, one deadline per read, exactly one
//!   [`Outcome`](messages::Outcome) per sensor.
//! - [`supervisor`]: [`SensorSupervisor`](supervisor::SensorSupervisor) starts sensors from their
//!   specs, schedules drift-free rounds and restarts failed sensors (policies, backoff, journal).
//! - [`analysis`]: the detectors, and a group's analysis of its members
//!   ([`Tracks`](analysis::tracks::Tracks): streaming statistics, window, EWMA).
//! - [`aggregator`]: [`Aggregator`](aggregator::Aggregator) adds up the groups' round digests, counts every read,
//!   keeps the latency histograms and writes the outputs of [`report`].
//! - [`messages`]: every cross-actor message. [`stats`]: streaming statistics.
//!   [`panic`](mod@panic): keeps caught sensor panics out of stderr.
//! - [`bench`](mod@bench): the `sensor-actors bench` measurements (spawn, round overhead, throughput, memory).
//!
//! [`run`] wires them together for one run and returns its [`Summary`].

pub mod aggregator;
pub mod analysis;
pub mod bench;
mod collector;
pub mod config;
pub mod data;
pub mod driver;
pub mod messages;
pub mod panic;
mod registry;
pub mod report;
pub mod round;
pub mod sensor;
pub mod sinks;
pub mod stats;
pub mod streams;
pub mod supervisor;
pub mod testing;

use std::future::Future;
use std::path::PathBuf;

pub use collector::Collector;
pub use config::{Config, ConfigError};
pub use registry::Registry;
pub use report::Summary;
pub use sinks::OutputError;

/// A run that could not complete.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The output folder or files could not be created: nothing was collected.
    #[error(transparent)]
    Setup(OutputError),
    /// An output file could not be written during the run. Collection went on; the summary is
    /// complete, but the files stop at the failed write.
    #[error("an output file could not be written")]
    Output {
        /// The first write error.
        #[source]
        source: OutputError,
        /// The run's summary.
        summary: Box<Summary>,
    },
    /// Groups of sensors were lost: their supervisor actor stopped more often than the root's
    /// intensity allows and was given up. The run went on with the others to its end; the
    /// summary (and the files) hold what was collected.
    #[error("the run could not go on as configured: {reason}")]
    Failed {
        /// Which groups were given up, and why.
        reason: String,
        /// The run's summary.
        summary: Box<Summary>,
    },
    /// The actor system stopped before the run could report.
    #[error("the actor system stopped before the run finished")]
    Interrupted,
}

/// Where [`run`] writes, besides the log.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The `--out DIR` folder; no files are written without it.
    pub out: Option<PathBuf>,
}

/// Runs `config` as the binary does: the built-in drivers and detectors, the per-round log line
/// and, with `options.out`, the JSONL files ([`sinks::JsonlFiles`]); returns the summary, or
/// [`RunError::Output`] (with the summary) when a file could not be written.
///
/// A shorthand for a [`Collector`] with those sinks attached. Must be called inside an actix
/// system (the binary's `System`, or `#[actix_rt::test]`).
pub async fn run(config: Config, options: RunOptions, shutdown: impl Future<Output = ()>) -> Result<Summary, RunError> {
    let mut collector = Collector::new().log_rounds();
    if let Some(dir) = &options.out {
        collector = collector.out(dir)?;
    }
    collector.run(config, shutdown).await
}
