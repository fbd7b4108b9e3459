//! sensor-actors: collect IoT sensor data with actors.
//!
//! Data moves one way: sensor -> group (round, supervision, analysis) -> root -> aggregator ->
//! outputs.
//!
//! - [`config`]: the TOML configuration, read in two stages (raw serde structs, then a validated
//!   [`Config`]); every error names file, field and expectation.
//! - [`driver`]: the [`Driver`](driver::Driver) trait and the closed list of drivers
//!   (`simulated`, `replay` from CSV, `system` from `/proc`, plus drivers from outside the crate through [`DriverFactory`](driver::DriverFactory)).
//! - [`sensor`]: [`SensorActor`](sensor::SensorActor), one actor per sensor, answering
//!   [`Read`](messages::Read); a panicking driver fails that sensor only.
//! - [`round`]: one collection round: fan `Read` out, one deadline per read, exactly one
//!   [`Outcome`](messages::Outcome) per sensor.
//! - [`supervisor`]: [`SensorSupervisor`] starts sensors from their
//!   specs, schedules drift-free rounds and restarts failed sensors (policies, backoff, journal).
//! - [`analysis`]: the detectors, and a group's analysis of its members
//!   ([`AnalysisShard`](analysis::shard::AnalysisShard): streaming statistics, window, EWMA).
//! - [`aggregator`]: [`Aggregator`] adds up the groups' round digests, counts every read,
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
pub mod driver;
pub mod messages;
pub mod panic;
mod registry;
pub mod report;
pub mod round;
pub mod sensor;
pub mod stats;
pub mod supervisor;
pub mod testing;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use actix::{Actor, Arbiter, ArbiterHandle};
use tokio::sync::oneshot;

pub use collector::Collector;
pub use config::{Config, ConfigError};
pub use registry::Registry;
pub use report::{OutputError, Summary};

use aggregator::Aggregator;
use messages::Shutdown;
use report::Outputs;
use supervisor::{RootSetup, SensorSupervisor};

/// A run that could not complete.
#[derive(Debug, thiserror::Error)]
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
    /// The actor system stopped before the run could report.
    #[error("the actor system stopped before the run finished")]
    Interrupted,
}

/// Where a run writes, besides the log.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The `--out DIR` folder; no files are written without it.
    pub out: Option<PathBuf>,
}

/// Runs `config` until its rounds or duration are done, every sensor has stopped, or `shutdown`
/// completes; then settles the round in flight, flushes the outputs and returns the summary.
///
/// Must be called inside an actix system (the binary's `System`, or `#[actix_rt::test]`).
pub async fn run(config: Config, options: RunOptions, shutdown: impl Future<Output = ()>) -> Result<Summary, RunError> {
    let seed = config.collection.seed.unwrap_or_else(rand::random);
    log::info!(
        "starting {} sensors, interval {}, read timeout {}, seed {seed}",
        config.sensors.len(),
        humantime::format_duration(config.collection.interval),
        humantime::format_duration(config.collection.read_timeout)
    );
    let outputs = match &options.out {
        Some(dir) => Some(Outputs::create(dir).map_err(RunError::Setup)?),
        None => None,
    };
    // One thread: everything here. More: the sensors are split into one shard per arbiter, this
    // one included, each read and analysed on its own thread; the aggregator (counts and outputs)
    // gets the last arbiter, where it handles a round's report while the next is read.
    let threads = config.runtime.threads(config.sensors.len()).max(1);
    let sensors = Arc::new(config::SensorTable::new(config.sensors));
    let analysis_arbiter = (threads > 1).then(Arbiter::new);
    let keep_outcomes = outputs.is_some();
    let aggregator = match &analysis_arbiter {
        // Built on its own thread, while the sensors are spawned on this one.
        Some(arbiter) => {
            let sensors = sensors.clone();
            Aggregator::start_in_arbiter(&arbiter.handle(), move |_| Aggregator::new(sensors, outputs))
        }
        None => Aggregator::new(sensors.clone(), outputs).start(),
    };
    let arbiters: Vec<Arbiter> = (2..threads).map(|_| Arbiter::new()).collect();
    let sensor_arbiters: Vec<ArbiterHandle> = if threads > 1 {
        std::iter::once(Arbiter::current())
            .chain(arbiters.iter().map(Arbiter::handle))
            .chain(analysis_arbiter.as_ref().map(Arbiter::handle))
            .collect()
    } else {
        Vec::new()
    };
    log::info!("{threads} thread(s): {} for sensors", sensor_arbiters.len().max(1));
    let (done_tx, done_rx) = oneshot::channel();
    let setup = RootSetup {
        sensors,
        groups: config.groups,
        collection: config.collection,
        seed,
        analysis: Arc::new(config.analysis),
        keep_outcomes,
        arbiters: sensor_arbiters,
    };
    let supervisor = SensorSupervisor::new(setup, aggregator, done_tx).start();
    let shutdown = std::pin::pin!(shutdown);
    let mut done_rx = std::pin::pin!(done_rx);
    let result = match futures::future::select(shutdown, done_rx.as_mut()).await {
        futures::future::Either::Left(((), _)) => {
            supervisor.do_send(Shutdown);
            done_rx.await
        }
        futures::future::Either::Right((result, _)) => result,
    };
    for arbiter in arbiters.iter().chain(analysis_arbiter.as_ref()) {
        arbiter.stop();
    }
    let finished = result.map_err(|_| RunError::Interrupted)?;
    match finished.output_error {
        None => Ok(finished.summary),
        Some(source) => Err(RunError::Output {
            source,
            summary: Box::new(finished.summary),
        }),
    }
}
