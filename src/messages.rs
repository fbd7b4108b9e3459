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
pub use crate::data::{Absence, EventKind, Outcome, Reading, Source, SupervisionEvent};
use crate::data::{ReadError, Sample};

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
