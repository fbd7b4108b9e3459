//! sensor-actors: collect IoT sensor data with actors.
//!
//! Data moves one way:
//!
//! ```text
//! SensorActor --answers--> GroupSupervisor --outcomes--> LocalAggregator --digests--> Aggregator --streams--> subscribers
//!  (a driver)              (reads, supervises)           (analyses, per arbiter)      (counts, publishes)      (files, log, yours)
//! ```
//!
//! The root `SensorSupervisor` schedules the rounds and supervises the groups. Everything starts
//! from a [`Collector`]: register drivers and detectors by name, subscribe actors to the streams,
//! load a [`Config`], run it, get the [`Summary`]. The binary is built on it.
//!
//! What an extender uses (public):
//! - [`Collector`] (`collector.rs`) and the [`Registry`] of names it parses configurations with;
//!   [`Control`] (`control.rs`), taken from it, adds and removes sensors while the run goes on;
//! - [`config`]: the TOML configuration, read in two stages (raw serde structs, then a validated
//!   [`Config`]); every error ([`ConfigError`]) names file, field and expectation;
//! - [`driver`]: the [`Driver`](driver::Driver) trait and drivers by name, a
//!   [`DriverFactory`](driver::DriverFactory) per name (`simulated`, `replay` from CSV, `system`
//!   from `/proc`, and any registered on a [`Collector`]);
//! - [`analysis`]: the [`Detector`](analysis::Detector) trait and detectors by name
//!   (`out_of_range`, `spike`, `rate`, `stuck`, `stale`, and any registered);
//! - [`streams`]: what subscribers receive (readings, anomalies, the journal, round and run
//!   summaries) and how ([`Delivery`](streams::Delivery)); [`sinks`]: the built-in subscribers
//!   (the JSONL files, the round log);
//! - [`data`]: the plain data at the bottom (samples, outcomes, readings, journal events);
//!   [`report`]: the [`Summary`]; [`stats`]: streaming statistics and the rolling window;
//! - [`mqtt`]: broker addresses, topic templates and the `[outputs.mqtt]` settings that the MQTT
//!   output ([`sinks::MqttOutput`]) and the `mqtt` driver share;
//! - [`live`]: the live view (`run --http ADDR`): an actor subscribed to the streams like any
//!   user's, and an actix-web server of Prometheus metrics (`/metrics`) and a JSON API;
//! - [`shard`]: a collector's share of the sensors (`run --shard I/N`) by a stable hash of the id;
//! - [`testing`]: the driver conformance checks and detector helpers, for code outside the crate;
//! - [`story`]: one sensor's story read back from an `--out` folder (`sensor-actors story`):
//!   its readings, gaps, journal events and anomalies in round order, streamed from the files.
//!
//! Inside (crate-private): `sensor` (the sensor actor and its messages), `supervisor` (the root
//! and group supervisors, the schedule, the restart rules, and the sensors added or removed
//! while running), `aggregator` (the arbiters' aggregators that analyse, the root aggregator
//! that counts and publishes), `registry`, `parse` (at the bottom beside `data`: [`ConfigError`]
//! and the checks that the configuration, the drivers and the detectors share), `panic` (keeps
//! caught panics out of stderr).
//!
//! The binary (`src/bin/sensor-actors/`: `main.rs`, and `bench.rs`, the `bench` command's
//! harness) uses the public API only. [`run`] is the binary's run (built-in names, round log, `--out` files) as one call.

#![warn(missing_docs, unreachable_pub)]

mod aggregator;
pub mod analysis;
mod clock;
mod collector;
pub mod config;
mod control;
pub mod data;
pub mod driver;
pub mod live;
pub mod mqtt;
mod panic;
mod parse;
mod registry;
pub mod report;
mod sensor;
pub mod shard;
pub mod sinks;
pub mod stats;
pub mod story;
pub mod streams;
mod supervisor;
pub mod testing;

use std::future::Future;
use std::path::PathBuf;

pub use clock::Clock;
pub use collector::Collector;
pub use config::{Config, ConfigError};
pub use control::{Added, Control, ControlError, LastReading, Removed, SensorAnalysis, SensorStatus};
pub use registry::Registry;
pub use report::Summary;
pub use shard::Shard;
pub use sinks::OutputError;

/// A run that could not complete.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The configuration cannot run as asked (a sensor that reads the real world, on a virtual
    /// clock): nothing was collected.
    #[error(transparent)]
    Config(ConfigError),
    /// The output folder or files could not be created (or another run is writing the folder,
    /// or a file there is a symbolic link): nothing was collected, no file was touched.
    #[error(transparent)]
    Setup(OutputError),
    /// An output file could not be written during the run. Collection went on and the summary
    /// is complete; the files hold whole lines only, without the ones counted in
    /// [`OutputError::lost`].
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
/// and, with `options.out`, the JSONL files ([`sinks::JsonlFiles`]; the readings in the format
/// of `config.outputs.files`, `[outputs.files] readings_format`); returns the summary, or
/// [`RunError::Output`] (with the summary) when a file could not be written.
///
/// A shorthand for a [`Collector`] with those sinks attached. Must be called inside an actix
/// system (the binary's `System`, or `#[actix_rt::test]`).
pub async fn run(config: Config, options: RunOptions, shutdown: impl Future<Output = ()>) -> Result<Summary, RunError> {
    let mut collector = Collector::new().log_rounds();
    if let Some(dir) = &options.out {
        collector = collector.out_as(dir, config.outputs.files.readings_format)?;
    }
    collector.run(config, shutdown).await
}
