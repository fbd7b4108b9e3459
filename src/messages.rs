//! Every message that crosses between actors, in one place.
//!
//! Requests are verbs ([`Read`], [`Shutdown`], [`Finish`]); events are nouns ([`RoundReport`],
//! [`SupervisionEvent`]). The flow of one run:
//! `SensorSupervisor --ReadGroup--> GroupSupervisor --StartRead--> SensorActor --SensorAnswer-->
//! GroupSupervisor --GroupRound--> SensorSupervisor --RoundReport--> Aggregator`.

use std::sync::Arc;
use std::time::Duration;

use actix::Message;
use chrono::{DateTime, Utc};

use crate::analysis::tracks::{RoundDigest, TrackSummary};
use crate::driver::{ReadError, Sample};

/// Asks a sensor for one reading, on behalf of round `round`.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "ReadReply")]
pub struct Read {
    /// The round asking; echoed in the reply so a reply can never be counted in another round.
    pub round: u64,
}

/// A sensor's answer to [`Read`].
#[derive(Debug, Clone)]
pub struct ReadReply {
    /// The round of the `Read` this answers.
    pub round: u64,
    /// The sample, or why there is none.
    pub result: Result<Sample, ReadError>,
    /// Time from receiving `Read` to the result.
    pub latency: Duration,
    /// Wall-clock time of the result.
    pub timestamp: DateTime<Utc>,
}

/// The outcome of one sensor in one round: exactly one of four.
#[derive(Debug, Clone, PartialEq)]
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
pub struct Reading {
    /// The value.
    pub value: f64,
    /// When the value was read.
    pub timestamp: DateTime<Utc>,
    /// How long the read took.
    pub latency: Duration,
    /// Where a replayed value came from; `None` for live sensors. Boxed: a round holds one
    /// outcome per sensor, and most sensors have no source (48 bytes per outcome, not 72).
    pub source: Option<Box<Source>>,
}

/// Where a replayed value came from.
#[derive(Debug, Clone, PartialEq)]
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

/// One finished round, sent by the supervisor to the aggregator.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RoundReport {
    /// The round number, from 1.
    pub round: u64,
    /// Wall time of the round, from the first `Read` sent to the last outcome known.
    pub wall: Duration,
    /// Ticks skipped since the previous round because a round overran the interval.
    pub skipped_before: u64,
    /// What each group's analysis of the round found (counts, latencies, anomalies), in the
    /// root's group order.
    pub digests: Vec<RoundDigest>,
    /// Only when readings are written (`readings.jsonl`), else empty: one outcome per sensor in
    /// configuration order, as consecutive batches: one per group when the groups hold
    /// consecutive sensors in order (the shards of the ungrouped sensors), so that no round's
    /// outcomes are copied into one vector; else a single batch.
    pub outcomes: Vec<Vec<Outcome>>,
    /// Answered once the aggregator has processed the report, with `outcomes` emptied (their
    /// capacity kept), or dropped. The supervisor waits for it before sending the next report,
    /// so at most one report waits in the aggregator's mailbox however far analysis falls behind
    /// collection, and hands the empty batches back to the groups to fill in a later round: a
    /// run allocates its outcome vectors in its first two rounds only.
    pub processed: Option<tokio::sync::oneshot::Sender<Vec<Vec<Outcome>>>>,
}

/// The kinds of supervision event, as written to `events.jsonl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
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
        }
    }
}

/// One entry of the supervision journal.
#[derive(Debug, Clone, PartialEq, Message)]
#[rtype(result = "()")]
pub struct SupervisionEvent {
    /// Wall-clock time of the event.
    pub timestamp: DateTime<Utc>,
    /// The sensor (or group) id.
    pub sensor: Arc<str>,
    /// What happened.
    pub event: EventKind,
    /// Why, for failures and give-ups.
    pub cause: Option<String>,
    /// The backoff delay, for `restart_scheduled`.
    pub delay: Option<Duration>,
    /// Restarts so far, where it applies.
    pub restarts: Option<u32>,
}

/// A group's sensors all started (the journal's `started` events, one per sensor, sent as one
/// message: at start-up a group of N sensors would otherwise queue N events).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct SensorsStarted {
    /// Wall-clock time the group started them.
    pub timestamp: DateTime<Utc>,
    /// The sensors, as indices into the configuration's sensors.
    pub sensors: Arc<[usize]>,
}

/// Asks the supervisor to stop: no new rounds, settle the one in flight, flush, report.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Shutdown;

/// Asks a supervised sensor to read for round `round` and report on its group's answer channel
/// (the batched counterpart of [`Read`]).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct StartRead {
    /// The round asking.
    pub round: u64,
}

/// What a supervised sensor reports to its group.
#[derive(Debug)]
pub struct SensorAnswer {
    /// The sensor's position in its group.
    pub member: u32,
    /// Which start of the sensor answered; answers of a replaced actor are ignored.
    pub incarnation: u32,
    /// The answer.
    pub answer: Answer,
}

/// The content of a [`SensorAnswer`].
#[derive(Debug)]
pub enum Answer {
    /// A finished read (its round inside).
    Reply(ReadReply),
    /// The actor ended (stopped, crashed or unwound): any read it had is lost.
    Stopped,
    /// The sensor's driver could not be built (its actor waits to be stopped; its reads never
    /// answer).
    BuildFailed {
        /// `build: <message>`, or `panic: <message>` for a build that panicked.
        cause: String,
    },
}

/// Asks a group supervisor to read its sensors for one round.
#[derive(Debug, Clone, Message)]
#[rtype(result = "GroupRound")]
pub struct ReadGroup {
    /// The round.
    pub round: u64,
    /// An earlier round's outcome vector, emptied, for this round's outcomes (any capacity;
    /// empty for none).
    pub reuse: Vec<Outcome>,
}

/// A group's answer to [`ReadGroup`].
#[derive(Debug, Clone, actix::MessageResponse)]
pub struct GroupRound {
    /// What the group's analysis of its members' outcomes found.
    pub digest: RoundDigest,
    /// One outcome per member, in the group's member order, when the group keeps them (readings
    /// are written); else empty.
    pub outcomes: Vec<Outcome>,
    /// Whether any member is still running or waiting for a restart.
    pub live: bool,
}

impl GroupRound {
    /// The round of a group none of whose `members` could be read (the group did not answer):
    /// every member counted unavailable.
    pub fn down(members: usize, keep_outcomes: bool, live: bool) -> Self {
        let mut digest = RoundDigest::default();
        digest.reads.requested = members as u64;
        digest.reads.unavailable = members as u64;
        let outcomes = if keep_outcomes {
            vec![Outcome::Unavailable(Absence::Down); members]
        } else {
            Vec::new()
        };
        GroupRound { digest, outcomes, live }
    }
}

/// A group exceeded its restart intensity and gives up: sent by the group to the root.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Escalation {
    /// The group's position among the root's groups.
    pub group: usize,
    /// Why it escalated.
    pub cause: String,
}

/// Asks a group for its members' supervision states and restart counts, in member order.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Vec<(crate::supervisor::SensorState, u32)>")]
pub struct ReportStates;

/// Asks a group supervisor to stop its sensors and itself.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct StopGroup;

/// Asks a sensor actor to stop; the supervisor sends it before dropping the actor's address.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct StopSensor;

/// Asks the aggregator for the final summary and to flush every output.
#[derive(Debug, Clone, Message)]
#[rtype(result = "crate::report::Finished")]
pub struct Finish {
    /// The run's seed.
    pub seed: u64,
    /// Ticks skipped over the run.
    pub skipped_rounds: u64,
    /// Per sensor: final supervision state and restart count.
    pub sensors: Vec<(crate::supervisor::SensorState, u32)>,
    /// Per sensor: its analysis results (from its group).
    pub tracks: Vec<TrackSummary>,
}
