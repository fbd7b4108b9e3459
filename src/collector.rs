//! [`Collector`]: the public entry point. Register drivers and detectors by name, attach
//! subscribers and sinks, load a configuration, run it.
//!
//! The binary is built on it like any user's program: everything it attaches (the JSONL files,
//! the per-round log line) goes through the same methods.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use actix::{Actor, Addr, Arbiter, ArbiterHandle, Recipient};
use tokio::sync::oneshot;

use crate::aggregator::publish::Outlets;
use crate::aggregator::Aggregator;
use crate::analysis::DetectorFactory;
use crate::clock::{self, Clock};
use crate::config::{Config, ConfigError, ReadingsFormat, SensorTable};
use crate::control::Control;
use crate::driver::{DriverFactory, RunStart};
use crate::registry::Registry;
use crate::report::Summary;
use crate::sinks::{JsonlFiles, RoundLog, TakeOutputError};
use crate::streams::{Anomalies, Delivery, Journal, Readings, RoundSummary, RunSummary, Settle, Stream};
use crate::supervisor::Shutdown;
use crate::supervisor::{RootSetup, SensorSupervisor};
use crate::{RunError, Shard};

/// A collection run to be: the names its configuration may use and where its streams go.
///
/// ```no_run
/// use actix::prelude::*;
/// use sensor_actors::streams::Anomalies;
/// use sensor_actors::Collector;
///
/// struct Alerts;
/// impl Actor for Alerts {
///     type Context = Context<Self>;
/// }
/// impl Handler<Anomalies> for Alerts {
///     type Result = ();
///     fn handle(&mut self, round: Anomalies, _: &mut Context<Self>) {
///         for a in round.list.iter() {
///             println!("{} {}: {}", a.sensor, a.detector, a.detail);
///         }
///     }
/// }
///
/// # async fn demo() -> anyhow::Result<()> {
/// let alerts = Alerts.start();
/// let collector = Collector::new().subscribe(alerts.recipient::<Anomalies>());
/// let config = collector.load("sensors.toml")?;
/// let summary = collector.run(config, std::future::pending()).await?;
/// println!("{} readings", summary.reads.ok);
/// # Ok(())
/// # }
/// ```
#[derive(Default)]
pub struct Collector {
    registry: Registry,
    /// The subscribers, handed to the aggregator when the run starts.
    outlets: Outlets,
    /// The `--out DIR` files, when attached with [`Collector::out`]: asked for their first
    /// write error when the run ends.
    files: Option<Addr<JsonlFiles>>,
    /// The run's clock.
    clock: Clock,
    /// The handle that adds and removes sensors while the run goes on ([`Collector::control`]).
    control: Control,
    /// The run's share of the configured sensors ([`Collector::shard`]).
    shard: Option<Shard>,
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collector")
            .field("registry", &self.registry)
            .field("subscribers", &self.outlets.stats().len())
            .finish()
    }
}

impl Collector {
    /// A collector with the built-in drivers and detectors, and nothing attached.
    pub fn new() -> Self {
        Collector {
            registry: Registry::builtin(),
            outlets: Outlets::default(),
            files: None,
            clock: Clock::Wall,
            control: Control::default(),
            shard: None,
        }
    }

    /// Registers `factory` as `driver = "<name>"` for the configurations this collector loads
    /// and parses. See [`DriverFactory`] for an example.
    ///
    /// # Panics
    ///
    /// When `name` is empty or taken, a built-in name included
    /// ([`DriverRegistry::register`](crate::driver::DriverRegistry::register)).
    pub fn driver(mut self, name: &str, factory: impl DriverFactory) -> Self {
        self.registry.drivers.register(name, factory);
        self
    }

    /// Writes the JSONL files (`readings.jsonl`, `anomalies.jsonl`, `events.jsonl`,
    /// `summary.json`) into `dir`, creating it: the [`JsonlFiles`] sink, attached losslessly.
    /// [`Collector::run`] then returns [`RunError::Output`] (with the summary) if a file could
    /// not be written. Must be called inside an actix system.
    pub fn out(self, dir: impl AsRef<Path>) -> Result<Self, RunError> {
        self.out_as(dir, ReadingsFormat::Jsonl)
    }

    /// As [`out`](Collector::out), with the readings written in `format`: with
    /// [`ReadingsFormat::Csv`], `readings.csv` instead of `readings.jsonl`, the other files
    /// unchanged (what `run --readings-format csv --out DIR` does; see
    /// [`JsonlFiles::create_as`]). The summary's subscriber of the readings is named after the
    /// file.
    ///
    /// ```no_run
    /// use sensor_actors::config::ReadingsFormat;
    /// use sensor_actors::Collector;
    ///
    /// # async fn demo(config: sensor_actors::Config) -> anyhow::Result<()> {
    /// let collector = Collector::new().out_as("out", ReadingsFormat::Csv)?;
    /// let summary = collector.run(config, std::future::pending()).await?;
    /// println!("{} rows in out/readings.csv", summary.reads.ok);
    /// # Ok(())
    /// # }
    /// ```
    pub fn out_as(self, dir: impl AsRef<Path>, format: ReadingsFormat) -> Result<Self, RunError> {
        let files = JsonlFiles::create_as(dir.as_ref(), format)
            .map_err(RunError::Setup)?
            .start();
        let lossless = |name: &str| Delivery::lossless().named(name);
        let mut collector = self
            .subscribe_with(files.clone().recipient::<Readings>(), lossless(format.file_name()))
            .subscribe_with(files.clone().recipient::<Anomalies>(), lossless("anomalies.jsonl"))
            .subscribe_with(files.clone().recipient::<Journal>(), lossless("events.jsonl"))
            .subscribe_with(files.clone().recipient::<RunSummary>(), lossless("summary.json"));
        collector.files = Some(files);
        Ok(collector)
    }

    /// Logs one line per round at info level (the [`RoundLog`] sink, attached losslessly).
    /// Must be called inside an actix system.
    pub fn log_rounds(self) -> Self {
        let log = RoundLog.start().recipient::<RoundSummary>();
        self.subscribe_with(log, Delivery::lossless().named("log"))
    }

    /// Registers `factory` as detector `name`: configurations loaded by this collector may
    /// set it up in `[analysis.<name>]` (validated by the factory; `enabled = false` switches it
    /// off), and it runs on every sensor with its defaults when they don't. It runs after the
    /// detectors registered before it (the built-in ones first), and its findings carry `name`
    /// in `anomalies.jsonl` and the summary's counts.
    ///
    /// ```
    /// use sensor_actors::analysis::{stale, Detector, DetectorFactory, SettingsTable};
    ///
    /// /// `stale` again, under another name and with its own default.
    /// struct Gap;
    /// impl DetectorFactory for Gap {
    ///     type Detector = stale::Stale;
    ///     fn defaults(&self) -> stale::Settings {
    ///         stale::Settings { rounds: 2 }
    ///     }
    ///     fn settings(&self, table: SettingsTable<'_>) -> Result<stale::Settings, sensor_actors::ConfigError> {
    ///         stale::Factory.settings(table)
    ///     }
    /// }
    ///
    /// let collector = sensor_actors::Collector::new().detector("gap", Gap);
    /// let config = collector.parse("[analysis.gap]\nrounds = 3\n[[sensors]]\ncount = 2\n", "sensors.toml")?;
    /// let names: Vec<&str> = config.analysis.detectors().collect();
    /// assert_eq!(names, ["out_of_range", "spike", "rate", "stuck", "stale", "gap"]);
    /// # Ok::<(), sensor_actors::ConfigError>(())
    /// ```
    ///
    /// # Panics
    ///
    /// When `name` is taken or not a bare TOML key ([`DetectorRegistry::register`](crate::analysis::DetectorRegistry::register)).
    pub fn detector(mut self, name: &str, factory: impl DetectorFactory) -> Self {
        self.registry.detectors.register(name, factory);
        self
    }

    /// A handle that adds sensors to this collector's run and removes them while it goes on
    /// (a live view, an HTTP handler, a driver that discovers devices): usable once
    /// [`run`](Collector::run) has started, until the run ends. See [`Control`].
    pub fn control(&self) -> Control {
        self.control.clone()
    }

    /// Runs only `shard`'s share of the configured sensors (`run --shard I/N`): N collectors
    /// with the same configuration and shards 1 to N read every sensor exactly once. Drivers
    /// that discover sensors while running add only the ids of the shard
    /// ([`RunStart::shard`](crate::driver::RunStart::shard)).
    pub fn shard(mut self, shard: Shard) -> Self {
        self.shard = Some(shard);
        self
    }

    /// The drivers and detectors a configuration loaded by this collector may name.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Attaches `subscriber` to the stream it handles ([`Readings`],
    /// [`Anomalies`], [`Journal`],
    /// [`RoundSummary`] or [`RunSummary`]),
    /// with the default bounded delivery ([`Delivery::default`]).
    pub fn subscribe<M: Stream>(self, subscriber: Recipient<M>) -> Self {
        self.subscribe_with(subscriber, Delivery::default())
    }

    /// Attaches `subscriber` with the given delivery policy (bounded with a capacity, or
    /// lossless for a sink that must miss nothing).
    pub fn subscribe_with<M: Stream>(mut self, subscriber: Recipient<M>, delivery: Delivery) -> Self {
        self.outlets.add(subscriber, delivery);
        self
    }

    /// Has `output` settle when the run's streams end, before the summary is made: the run's
    /// end sends it [`Settle`] once everything else was delivered to the subscribers, waits for
    /// its [`OutputReport`](crate::report::OutputReport), and puts that in the summary's
    /// `outputs` (`summary.json`, the summary [`run`](Collector::run) returns, the
    /// [`RunSummary`] that follows). The run's end waits for the answer: answer within a bound
    /// of your own. An output whose actor has stopped is left out.
    /// [`MqttOutput::attach`](crate::sinks::MqttOutput::attach) uses it.
    pub fn settle(mut self, output: Recipient<Settle>) -> Self {
        self.outlets.settle.push(output);
        self
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

    /// Runs on `clock`. On [`Clock::Virtual`] every timestamp is the clock's start plus tokio's
    /// time since the run began, the run uses one thread (whatever `[runtime] arbiters` says),
    /// the summary records no machine figures, and sensors whose driver reads the real world
    /// ([`DriverSpec::real_world`](crate::driver::DriverSpec::real_world)) make
    /// [`run`](Collector::run) fail with [`RunError::Config`]. Pause tokio's clock before the
    /// run (`sensor-actors run --clock virtual` does; in a test, `tokio::time::pause()`), and
    /// the same configuration and seed give the same streams and files, byte for byte.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Runs `config` until its rounds or duration are done, every sensor has stopped, or
    /// `shutdown` completes; then settles the round in flight, delivers everything to the
    /// subscribers, has the outputs attached with [`settle`](Collector::settle) settle and
    /// report, delivers the summary (with their reports in `outputs`) last, and returns it.
    ///
    /// Must be called inside an actix system (the binary's `System`, or `#[actix_rt::test]`).
    pub async fn run(mut self, mut config: Config, shutdown: impl Future<Output = ()>) -> Result<Summary, RunError> {
        // However the run ends (or is dropped), its `Control` says so from then on.
        let _ended = EndsControl(self.control.clone());
        if self.clock != Clock::Wall {
            config
                .check_clock(self.clock, "configuration")
                .map_err(RunError::Config)?;
        }
        if let Some(shard) = self.shard {
            let before = shard.apply(&mut config);
            log::info!(
                "shard {shard}: {} of the {before} configured sensors",
                config.sensors.len()
            );
        }
        let _clock = clock::enter(self.clock);
        // A drawn seed fits in TOML's integers (i64), so `seed = <it>` in a file repeats the run.
        let seed = config.collection.seed.unwrap_or_else(|| rand::random::<u64>() >> 1);
        log::info!(
            "starting {} sensors, interval {}, read timeout {}, seed {seed}",
            config.sensors.len(),
            humantime::format_duration(config.collection.interval),
            humantime::format_duration(config.collection.read_timeout)
        );
        // One thread: everything here. More: the sensors are split into one shard per arbiter,
        // each read and analysed on its own thread; the aggregator (counts and publication) gets
        // an arbiter of its own (its shard goes first), and this one, where subscribers started
        // with `start()` live, gets the last shard (a smaller one when readings are published).
        // A virtual clock is this thread's: the whole run stays on it.
        let threads = match self.clock {
            Clock::Wall => config.runtime.threads(config.sensors.len()).max(1),
            _ => 1,
        };
        let sensors = Arc::new(SensorTable::new(config.sensors));
        let keep_outcomes = !self.outlets.readings.is_empty();
        let list_anomalies = !self.outlets.anomalies.is_empty();
        let aggregator_arbiter = (threads > 1).then(Arbiter::new);
        let outlets = std::mem::take(&mut self.outlets);
        let aggregator = match &aggregator_arbiter {
            // Built on its own thread, while the sensors are spawned on this one.
            Some(arbiter) => {
                let sensors = sensors.clone();
                Aggregator::start_in_arbiter(&arbiter.handle(), move |_| Aggregator::new(sensors, outlets))
            }
            None => Aggregator::new(sensors.clone(), outlets).start(),
        };
        let arbiters: Vec<Arbiter> = (2..threads).map(|_| Arbiter::new()).collect();
        let sensor_arbiters: Vec<ArbiterHandle> = if threads > 1 {
            aggregator_arbiter
                .iter()
                .chain(&arbiters)
                .map(Arbiter::handle)
                .chain(std::iter::once(Arbiter::current()))
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
            policy: config.supervision,
            root_policy: config.root,
            seed,
            analysis: Arc::new(config.analysis),
            keep_outcomes,
            list_anomalies,
            arbiters: sensor_arbiters,
            drivers: self.registry.drivers.clone(),
        };
        // The root on a thread of its own: it starts every round on its tick, never behind a
        // long handler of the calling thread's (a subscriber formatting a round of readings)
        // or of a shard's; it does little else.
        let root_arbiter = (threads > 1).then(Arbiter::new);
        let supervisor = match &root_arbiter {
            Some(arbiter) => SensorSupervisor::start_in_arbiter(&arbiter.handle(), move |_| {
                SensorSupervisor::new(setup, aggregator, done_tx)
            }),
            None => SensorSupervisor::new(setup, aggregator, done_tx).start(),
        };
        self.control.attach(supervisor.clone());
        // Drivers that discover sensors start listening (the control is usable from here on).
        self.registry.drivers.run_started(&RunStart {
            control: self.control.clone(),
            shard: self.shard,
        });
        let shutdown = std::pin::pin!(shutdown);
        let mut done_rx = std::pin::pin!(done_rx);
        let result = match futures::future::select(shutdown, done_rx.as_mut()).await {
            futures::future::Either::Left(((), _)) => {
                supervisor.do_send(Shutdown);
                done_rx.await
            }
            futures::future::Either::Right((result, _)) => result,
        };
        for arbiter in arbiters.iter().chain(&aggregator_arbiter).chain(&root_arbiter) {
            arbiter.stop();
        }
        self.registry.drivers.run_ended();
        let finished = result.map_err(|_| RunError::Interrupted)?;
        let summary = finished.summary;
        let error = match self.files {
            Some(files) => files.send(TakeOutputError).await.map_err(|_| RunError::Interrupted)?,
            None => None,
        };
        match (finished.failure, error) {
            (Some(reason), _) => Err(RunError::Failed {
                reason,
                summary: Box::new(summary),
            }),
            (None, Some(source)) => Err(RunError::Output {
                source,
                summary: Box::new(summary),
            }),
            (None, None) => Ok(summary),
        }
    }
}

/// Ends a run's [`Control`] when dropped.
struct EndsControl(Control);

impl Drop for EndsControl {
    fn drop(&mut self) {
        self.0.detach();
    }
}
