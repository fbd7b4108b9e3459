//! [`Control`]: add and remove sensors while a run goes on, from outside the pipeline (a live
//! view, an HTTP handler, a driver that discovers devices).
//!
//! A `Control` is taken from the [`Collector`](crate::Collector) before the run
//! ([`Collector::control`](crate::Collector::control)) and cloned freely; it works from the
//! moment [`Collector::run`](crate::Collector::run) starts until the run ends. Each call is one
//! message to the root supervisor, which validates the request against the run, changes the
//! supervision tree and answers: as Erlang/OTP's `supervisor:start_child` and
//! `terminate_child` + `delete_child`, or Akka's device groups registering devices on request.
//! The semantics (when an added sensor is first read, how a removed one is accounted, what the
//! journal says) are in `docs/supervision.md`, section "Dynamic children".

use std::sync::{Arc, Mutex};

use actix::Addr;

use crate::data::EventKind;
use crate::parse::{quoted, ConfigError};
use crate::supervisor::{
    AddSensors, InspectSensor, JournalOutput, OperateSensor, Operation, RemoveSensor, SensorSupervisor,
};

/// A handle on a run's sensors: adds sensors to it and removes them while it runs.
///
/// Cheap to clone; every clone controls the same run (that of the collector it came from).
/// Before the run starts every call fails with [`ControlError::NotStarted`], after it ends with
/// [`ControlError::Ended`].
///
/// ```no_run
/// use sensor_actors::Collector;
///
/// # async fn demo() -> anyhow::Result<()> {
/// let collector = Collector::new();
/// let control = collector.control();
/// let config = collector.parse("[[sensors]]\ncount = 3\n", "sensors.toml")?;
/// let discovery = async {
///     // A device announced itself: one `[[sensors]]` entry, as in a configuration file.
///     let added = control
///         .add_toml("discovery", "id = \"boiler-7\"\nkind = \"temperature\"\nlatency = [\"20ms\", \"40ms\"]")
///         .await?;
///     println!("{:?} read from round {}", added.sensors, added.first_round);
///     control.remove("discovery", "temperature-2").await?;
///     Ok::<_, sensor_actors::ControlError>(())
/// };
/// let (summary, discovered) = futures::join!(collector.run(config, std::future::pending()), discovery);
/// discovered?;
/// println!("{} reads", summary?.reads.requested);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Default)]
pub struct Control {
    link: Arc<Mutex<Link>>,
}

/// Where a [`Control`]'s requests go.
#[derive(Default)]
enum Link {
    /// The run has not started.
    #[default]
    Waiting,
    /// The run's root supervisor.
    Running(Addr<SensorSupervisor>),
    /// The run is over.
    Ended,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &*self.lock() {
            Link::Waiting => "not started",
            Link::Running(_) => "running",
            Link::Ended => "ended",
        };
        f.debug_struct("Control").field("run", &state).finish()
    }
}

impl Control {
    fn lock(&self) -> std::sync::MutexGuard<'_, Link> {
        self.link.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The run started: requests go to its root supervisor.
    pub(crate) fn attach(&self, root: Addr<SensorSupervisor>) {
        *self.lock() = Link::Running(root);
    }

    /// The run is over: requests fail with [`ControlError::Ended`] (and the root's address is
    /// dropped).
    pub(crate) fn detach(&self) {
        *self.lock() = Link::Ended;
    }

    fn root(&self, requester: &str) -> Result<Addr<SensorSupervisor>, ControlError> {
        match &*self.lock() {
            Link::Waiting => Err(ControlError::NotStarted {
                requester: requester.to_string(),
            }),
            Link::Running(root) => Ok(root.clone()),
            Link::Ended => Err(ControlError::Ended {
                requester: requester.to_string(),
            }),
        }
    }

    /// Adds the sensors of one `[[sensors]]` entry (the same keys as in a configuration file,
    /// `group` included) to the running collection. `requester` says who asks: the journal's
    /// `added` events say `requested by <requester>`, and errors start with it.
    ///
    /// The entry is validated as the configuration loader validates one (its driver is looked
    /// up in the collector's registry, its `group` must be a `[[groups]]` entry of the run),
    /// and its ids must be new to the run (a removed sensor's id may be used again). On a
    /// virtual clock, a driver that reads the real world is refused. Nothing is added unless
    /// every sensor of the entry can be. The sensors are started at once, supervised like the
    /// others (their restart policy, their group's strategy and intensity), and read from the
    /// round [`Added::first_round`] on.
    pub async fn add(&self, requester: &str, entry: toml::Table) -> Result<Added, ControlError> {
        let root = self.root(requester)?;
        let request = AddSensors {
            requester: requester.to_string(),
            entry,
        };
        root.send(request).await.unwrap_or_else(|_| {
            Err(ControlError::Ended {
                requester: requester.to_string(),
            })
        })
    }

    /// [`Control::add`] with the entry as TOML text: the body of one `[[sensors]]` entry, such
    /// as `id = "boiler-7"\nlatency = ["20ms", "40ms"]`.
    pub async fn add_toml(&self, requester: &str, entry: &str) -> Result<Added, ControlError> {
        let table = entry.parse::<toml::Table>().map_err(|e| {
            // toml's messages span lines: one line, its parts joined.
            let message: Vec<&str> = e.message().lines().map(str::trim).filter(|l| !l.is_empty()).collect();
            let line = e
                .span()
                .map(|span| entry[..span.start.min(entry.len())].matches('\n').count() + 1);
            let message = match line {
                Some(line) => format!("{} (line {line})", message.join(": ")),
                None => message.join(": "),
            };
            ControlError::Invalid(ConfigError::new(requester, crate::config::ADDED_ENTRY, message))
        })?;
        self.add(requester, table).await
    }

    /// Removes sensor `id` from the running collection: its actor is stopped and it is not read
    /// from the round after [`Removed::last_round`] on (a read of it still awaited in the round
    /// in flight is counted once, `unavailable`). Its statistics stay in the summary, with the
    /// state `removed`. `requester` says who asks, as for [`Control::add`].
    pub async fn remove(&self, requester: &str, id: &str) -> Result<Removed, ControlError> {
        let root = self.root(requester)?;
        let request = RemoveSensor {
            requester: requester.to_string(),
            id: id.to_string(),
        };
        root.send(request).await.unwrap_or_else(|_| {
            Err(ControlError::Ended {
                requester: requester.to_string(),
            })
        })
    }
}

impl Control {
    /// Stops sensor `id` (as Erlang/OTP's `supervisor:terminate_child`): its actor is stopped
    /// and it stays stopped, whatever its restart type, until [`Control::restart`]; its group's
    /// strategy does not start it with the others. A read of it still awaited in the round in
    /// flight is counted `unavailable`, as are its later rounds. Journaled `stopped`, with
    /// `requested by <requester>` as the cause. Refused for a sensor that is not running or
    /// waiting for a restart, or whose group is down.
    pub async fn stop(&self, requester: &str, id: &str) -> Result<(), ControlError> {
        self.operate(requester, id, Operation::Stop).await
    }

    /// Restarts sensor `id` at once, without backoff, whatever its state (running, waiting for
    /// a restart, stopped, given up): a fresh actor, as Erlang/OTP's `supervisor:restart_child`.
    /// A read of it in flight is counted `unavailable`; a stopped or given-up sensor starts
    /// with a fresh intensity window. Journaled `restarted`, with `requested by <requester>`
    /// as the cause, and counted in its restarts. Refused when its group is down.
    pub async fn restart(&self, requester: &str, id: &str) -> Result<(), ControlError> {
        self.operate(requester, id, Operation::Restart).await
    }

    /// Journals an event of output `output` (its connection failing, a retry scheduled after
    /// `delay`, the connection back: `failed`, `restart_scheduled`, `restarted`, ...), as the
    /// supervision tree journals its own: in `events.jsonl` (with `output` instead of `sensor`
    /// or `group`), the journal stream and the summary's counts. Sent without waiting; refused
    /// before the run starts and once it has ended (an output's events after the run's summary
    /// stay in its own log).
    pub fn journal(
        &self,
        output: &str,
        event: EventKind,
        cause: Option<String>,
        delay: Option<std::time::Duration>,
    ) -> Result<(), ControlError> {
        let root = self.root(output)?;
        let request = JournalOutput {
            output: output.to_string(),
            event,
            cause,
            delay,
        };
        root.try_send(request).map_err(|_| ControlError::Ended {
            requester: output.to_string(),
        })
    }

    /// Sensor `id` as it is now (as Erlang/OTP's `sys:get_status` of a child): its supervision
    /// state and restarts, and its analysis so far (the statistics `summary.json` gives at the
    /// end) with its newest reading. Asked of its group and of the analysis beside it; nothing
    /// is read from the sensor, and the run is not held back. Refused with
    /// [`ControlError::UnknownSensor`] for an id not (or no longer) in the run, and
    /// [`ControlError::Refused`] while its group's actor is being replaced.
    pub async fn status(&self, requester: &str, id: &str) -> Result<SensorStatus, ControlError> {
        let root = self.root(requester)?;
        let request = InspectSensor {
            requester: requester.to_string(),
            id: id.to_string(),
        };
        root.send(request).await.unwrap_or_else(|_| {
            Err(ControlError::Ended {
                requester: requester.to_string(),
            })
        })
    }

    async fn operate(&self, requester: &str, id: &str, operation: Operation) -> Result<(), ControlError> {
        let root = self.root(requester)?;
        let request = OperateSensor {
            requester: requester.to_string(),
            id: id.to_string(),
            operation,
        };
        root.send(request).await.unwrap_or_else(|_| {
            Err(ControlError::Ended {
                requester: requester.to_string(),
            })
        })
    }
}

/// A sensor as [`Control::status`] found it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SensorStatus {
    /// Its id.
    pub id: Arc<str>,
    /// Its position in the run: configuration order, then the sensors added, as
    /// [`ReadingRecord::index`](crate::streams::ReadingRecord::index) counts.
    pub index: usize,
    /// What it measures.
    pub kind: Arc<str>,
    /// The unit of its values.
    pub unit: Arc<str>,
    /// The `[[groups]]` entry it belongs to; `None` for an ungrouped sensor.
    pub group: Option<Arc<str>>,
    /// Its supervision state, as `summary.json` names it: `running`, `restarting`, `stopped`,
    /// `given_up` (`removed` never: a removed sensor is unknown).
    pub state: &'static str,
    /// Its restarts so far.
    pub restarts: u32,
    /// Its analysis so far.
    pub analysis: SensorAnalysis,
}

/// A sensor's analysis so far: the statistics of its successful readings, as `summary.json`
/// gives them at the end, and its newest reading.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct SensorAnalysis {
    /// Successful readings.
    pub count: u64,
    /// Smallest value.
    pub min: Option<f64>,
    /// Largest value.
    pub max: Option<f64>,
    /// Mean value.
    pub mean: Option<f64>,
    /// Sample standard deviation.
    pub stddev: Option<f64>,
    /// Exponentially weighted moving average.
    pub ewma: Option<f64>,
    /// Anomalies found on it.
    pub anomalies: u64,
    /// Its newest reading.
    pub last: Option<LastReading>,
}

/// A sensor's newest reading ([`SensorAnalysis::last`]).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct LastReading {
    /// The round it was read in.
    pub round: u64,
    /// The value.
    pub value: f64,
    /// When it was taken (microsecond precision).
    pub timestamp: chrono::DateTime<chrono::Utc>,
    /// How long the read took (microsecond precision).
    pub latency: std::time::Duration,
}

/// What [`Control::add`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Added {
    /// The ids of the sensors added, in order (one for an `id` entry, `count` for a `count`
    /// entry).
    pub sensors: Vec<Arc<str>>,
    /// The first round that reads them: the one after the round in flight, or the next one.
    pub first_round: u64,
}

/// What [`Control::remove`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Removed {
    /// The sensor's id.
    pub sensor: Arc<str>,
    /// The last round that asked for its read (the round in flight, or the last one; 0 before
    /// the first).
    pub last_round: u64,
}

/// Why [`Control::add`] or [`Control::remove`] changed nothing. Each displays as one line that
/// starts with the requester: `mqtt: sensor.latency: min 500ms is greater than max 100ms`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// The entry is not one the run can take: a bad or unknown key, an unknown driver, a
    /// `group` that is not a `[[groups]]` entry of the run (or was given up), a driver that
    /// reads the real world on a virtual clock, more sensors than a run may hold. As a
    /// configuration file's error, with `sensor.<field>` for the field.
    #[error(transparent)]
    Invalid(ConfigError),
    /// A sensor of the run (not removed) has this id already.
    #[error("{}", ConfigError::new(requester, "sensor.id", format!("duplicate sensor id {}", quoted(id))))]
    Duplicate {
        /// Who asked.
        requester: String,
        /// The id.
        id: String,
    },
    /// No sensor of the run has this id, or it was removed already.
    #[error("{}", unknown(requester, id, *removed_in))]
    UnknownSensor {
        /// Who asked.
        requester: String,
        /// The id.
        id: String,
        /// The round the sensor was removed in, when it was.
        removed_in: Option<u64>,
    },
    /// The sensor cannot be stopped or restarted now: `why` says why (it is stopped already,
    /// its group is down).
    #[error("{}", ConfigError::new(requester, "id", format!("sensor {} {why}", quoted(id))))]
    Refused {
        /// Who asked.
        requester: String,
        /// The id.
        id: String,
        /// Why, in words.
        why: String,
    },
    /// The run has not started ([`Collector::run`](crate::Collector::run) has not been called).
    #[error("{}", ConfigError::new(requester, "run", "not started yet"))]
    NotStarted {
        /// Who asked.
        requester: String,
    },
    /// The run has ended, or is ending (its last round settles): no sensor changes any more.
    #[error(
        "{}",
        ConfigError::new(requester, "run", "ended; sensors can no longer be added or removed")
    )]
    Ended {
        /// Who asked.
        requester: String,
    },
}

/// The line of [`ControlError::UnknownSensor`].
fn unknown(requester: &str, id: &str, removed_in: Option<u64>) -> ConfigError {
    let message = match removed_in {
        Some(round) => format!("sensor {} was removed in round {round}", quoted(id)),
        None => format!("no sensor {} in the run", quoted(id)),
    };
    ConfigError::new(requester, "id", message)
}

/// Statuses made for the crate's own unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::{SensorAnalysis, SensorStatus};

    /// A running, ungrouped temperature sensor `id` at `index` with `analysis`.
    pub(crate) fn status(id: &str, index: usize, analysis: SensorAnalysis) -> SensorStatus {
        SensorStatus {
            id: id.into(),
            index,
            kind: "temperature".into(),
            unit: "C".into(),
            group: None,
            state: "running",
            restarts: 0,
            analysis,
        }
    }
}
