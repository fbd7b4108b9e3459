//! Plain data that crosses the pipeline, at the bottom of the crate: what a driver reads
//! ([`Sample`], [`ReadError`]), what a round makes of it ([`Outcome`], [`Reading`]), the
//! supervision journal ([`SupervisionEvent`]) and the restart types. It imports nothing of
//! the crate's; everything else builds on it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use actix::Message;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A value read from a source ([`Sample::value`], plus its source for recorded data).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Sample {
    /// The measured value.
    pub value: f64,
    /// For replayed data: the 1-based data row of the source file.
    pub source_row: Option<u64>,
    /// For replayed data: the time recorded with the value, as written in the source.
    pub source_time: Option<Arc<str>>,
}

impl Sample {
    /// A sample with a value only.
    pub fn value(value: f64) -> Self {
        Sample {
            value,
            source_row: None,
            source_time: None,
        }
    }

    /// A recorded value: `row` is its 1-based data row in the source, `time` the time recorded
    /// with it, as written there.
    pub fn recorded(value: f64, row: Option<u64>, time: Option<Arc<str>>) -> Self {
        Sample {
            value,
            source_row: row,
            source_time: time,
        }
    }
}

/// Why a read gave no value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// A transient failure: counted `failed`, the sensor keeps running.
    #[error("{0}")]
    Failed(String),
    /// A failure the sensor cannot recover from by itself: it must be restarted.
    #[error("fatal: {0}")]
    Fatal(String),
    /// The device reports itself offline: counted `unavailable`.
    #[error("offline")]
    Offline,
    /// The source has no more data: the sensor stops normally.
    #[error("exhausted")]
    Exhausted,
    /// The driver panicked; the panic was caught at the sensor.
    #[error("panic: {0}")]
    Panic(String),
    /// The sensor's actor must stop without answering, as an actor that dies outside its driver
    /// would (its mailbox closes; the supervisor sees a stopped actor).
    #[error("crash: {0}")]
    Crash(String),
}

/// The outcome of one sensor in one round: exactly one of four.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Outcome {
    /// A reading arrived within the deadline.
    Ok(Reading),
    /// The sensor answered with an error within the deadline.
    Failed {
        /// What went wrong, such as `panic: boom` or `simulated read failure`.
        cause: String,
        /// Whether the failure needs a restart (fatal error or panic).
        fatal: bool,
    },
    /// No answer within the deadline.
    TimedOut,
    /// No read was possible: the sensor is offline, stopped, restarting or given up.
    Unavailable(Absence),
}

/// Why a sensor was `unavailable` in a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Absence {
    /// The supervisor had no running actor for it (restarting, given up, or its group given up).
    Down,
    /// The device answered that it is offline.
    Offline,
    /// Its actor had stopped (mailbox closed) when the round asked.
    Closed,
    /// Its source has no more data: it stops normally.
    Exhausted,
}

/// A successful reading.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Reading {
    /// The value.
    pub value: f64,
    /// When the value was read.
    pub timestamp: DateTime<Utc>,
    /// How long the read took.
    pub latency: Duration,
    /// Where a replayed value came from; `None` for live sensors. Boxed: a round holds one
    /// outcome per sensor, and most sensors have no source (docs/performance.md has the sizes).
    pub source: Option<Box<Source>>,
}

/// Where a replayed value came from.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Source {
    /// The 1-based data row of the source file.
    pub row: Option<u64>,
    /// The recorded time of the value, as written in the source.
    pub time: Option<Arc<str>>,
}

impl Reading {
    /// Builds a reading from a driver sample and the reply's timing.
    pub fn new(sample: Sample, timestamp: DateTime<Utc>, latency: Duration) -> Self {
        let source = (sample.source_row.is_some() || sample.source_time.is_some()).then(|| {
            Box::new(Source {
                row: sample.source_row,
                time: sample.source_time,
            })
        });
        Reading {
            value: sample.value,
            timestamp,
            latency,
            source,
        }
    }

    /// The source row, for replayed data.
    pub fn source_row(&self) -> Option<u64> {
        self.source.as_ref().and_then(|s| s.row)
    }

    /// The source's recorded time, for replayed data.
    pub fn source_time(&self) -> Option<&str> {
        self.source.as_ref().and_then(|s| s.time.as_deref())
    }
}

/// The kinds of supervision event, as written to `events.jsonl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum EventKind {
    /// The sensor's actor was started.
    Started,
    /// The sensor failed (cause given).
    Failed,
    /// A restart is scheduled after a delay.
    RestartScheduled,
    /// The sensor was restarted.
    Restarted,
    /// The sensor (or group) was given up.
    GaveUp,
    /// A group passed a failure to its parent.
    Escalated,
    /// The sensor stopped normally.
    Stopped,
    /// A read of a running sensor timed out (journaled with `[collection] journal =
    /// "verbose"`): `cause` says how many in a row, of `hung_after`.
    TimedOut,
    /// A failed sensor keeps its actor and its state and goes on being read (its directive
    /// for that kind of failure is `resume`).
    Resumed,
    /// The sensor was added while the run went on (`cause`: who asked), and its first actor
    /// started: for it, this stands for `started`.
    Added,
    /// The sensor was removed while the run went on (`cause`: who asked): its actor stopped,
    /// it is read no more.
    Removed,
}

impl EventKind {
    /// The name used in `events.jsonl` and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Started => "started",
            EventKind::Failed => "failed",
            EventKind::RestartScheduled => "restart_scheduled",
            EventKind::Restarted => "restarted",
            EventKind::GaveUp => "gave_up",
            EventKind::Escalated => "escalated",
            EventKind::Stopped => "stopped",
            EventKind::TimedOut => "timed_out",
            EventKind::Resumed => "resumed",
            EventKind::Added => "added",
            EventKind::Removed => "removed",
        }
    }
}

/// One entry of the supervision journal.
#[derive(Debug, Clone, PartialEq, Message)]
#[rtype(result = "()")]
#[non_exhaustive]
pub struct SupervisionEvent {
    /// Time of the event (the run's clock).
    pub timestamp: DateTime<Utc>,
    /// The round in flight when it happened, or the last one started (0 before the first).
    pub round: u64,
    /// The sensor; `None` for an event of a group itself (its `escalated`, its actor's
    /// `failed`, `restart_scheduled`, `restarted`, its `gave_up`).
    pub sensor: Option<Arc<str>>,
    /// The `[[groups]]` entry the sensor belongs to, or the group the event is about; `None`
    /// for an ungrouped sensor.
    pub group: Option<Arc<str>>,
    /// The output the event is about (its connection failing, retried, back), journaled by the
    /// output through [`Control::journal`](crate::Control::journal); `None` for the supervision
    /// tree's own events.
    pub output: Option<Arc<str>>,
    /// What happened.
    pub event: EventKind,
    /// Why, for failures and give-ups.
    pub cause: Option<String>,
    /// The backoff delay, for `restart_scheduled`.
    pub delay: Option<Duration>,
    /// Restarts so far, where it applies.
    pub restarts: Option<u32>,
    /// For `restart_scheduled`: how the delay was chosen and how full the intensity window is.
    pub backoff: Option<Backoff>,
}

impl SupervisionEvent {
    /// Who the event is about: the sensor, else the group, else the output.
    pub fn subject(&self) -> &str {
        let group = || self.group.as_deref();
        let output = || self.output.as_deref();
        self.sensor
            .as_deref()
            .or_else(group)
            .or_else(output)
            .unwrap_or_default()
    }
}

/// How a restart was scheduled: the backoff step and the intensity window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Backoff {
    /// Which delay of the backoff this is: 1 for `backoff_min`, each next one doubling (up to
    /// `backoff_max`), before jitter.
    pub attempt: u32,
    /// The backoff started over at `backoff_min` for this restart, because the sensor had run
    /// `within` without failing.
    pub reset: bool,
    /// Restarts inside the intensity window, this one included: the sensor's own window for an
    /// ungrouped sensor, the group's for a member (and the root's for a group actor).
    pub window: u32,
    /// Restarts the window allows; one more within `within` gives up (or escalates).
    pub max_restarts: u32,
}

/// Restart type, as in Erlang/OTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestartType {
    /// Always restarted.
    Permanent,
    /// Restarted only after a failure, not after a normal stop.
    Transient,
    /// Never restarted.
    Temporary,
}

impl fmt::Display for RestartType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RestartType::Permanent => "permanent",
            RestartType::Transient => "transient",
            RestartType::Temporary => "temporary",
        })
    }
}

/// Read accounting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ReadCounts {
    /// Reads the rounds asked for (one per sensor per round).
    pub requested: u64,
    /// Readings received in time.
    pub ok: u64,
    /// Errors received in time.
    pub failed: u64,
    /// No answer in time.
    pub timed_out: u64,
    /// Sensor offline, stopped, restarting or given up.
    pub unavailable: u64,
}

impl ReadCounts {
    /// Adds `other`'s counts to these.
    pub(crate) fn add(&mut self, other: &ReadCounts) {
        self.requested += other.requested;
        self.ok += other.ok;
        self.failed += other.failed;
        self.timed_out += other.timed_out;
        self.unavailable += other.unavailable;
    }
}

/// A sensor's supervision state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SensorState {
    /// Its actor runs and is read every round.
    Running,
    /// It failed and waits for its restart (unavailable meanwhile).
    Restarting,
    /// It stopped and is not restarted (normal end, or a temporary sensor's failure).
    Stopped,
    /// Its restart intensity was exceeded: unavailable for the rest of the run.
    GivenUp,
    /// It was removed while the run went on: never read again (nor counted).
    Removed,
}

impl SensorState {
    /// The name used in `summary.json`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SensorState::Running => "running",
            SensorState::Restarting => "restarting",
            SensorState::Stopped => "stopped",
            SensorState::GivenUp => "given_up",
            SensorState::Removed => "removed",
        }
    }
}
