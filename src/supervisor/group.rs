//! `GroupSupervisor`: the nested supervisor of a set of sensors (a gateway, a bus, or a shard).
//!
//! The root [`SensorSupervisor`](super::SensorSupervisor) owns the schedule; each round it sends
//! one [`ReadGroup`] to every group, and the group reads its own sensors, applies supervision to
//! their outcomes, hands the outcomes to its arbiter's aggregator for analysis
//! ([`LocalAggregator`](crate::aggregator::local::LocalAggregator)) and answers with one [`GroupRound`]:
//! the round's digest, and the outcomes themselves only when someone subscribed to the readings.
//! It reads and supervises; it does not analyse.
//!
//! The group reads with [`StartRead`] and collects the [`SensorAnswer`]s on one channel that all
//! its sensors share (an [`Inbox`] on the group's thread), so a read costs no reply channel and no timer of its own. Deadlines follow
//! the round's rules: each read's deadline is `read_timeout` after its `StartRead` was sent; as
//! reads are sent in order with the same timeout, the deadlines form a queue and one timer (for
//! the earliest) serves them all. An answer for another round, for a read already settled, or
//! from a replaced actor is discarded. With `max_in_flight`, at most that many reads of the group
//! are outstanding; the next is sent as one settles. A large round goes out in slices of
//! `FAN_OUT_SLICE` (1,024) reads, the group yielding to its sensors between slices.
//!
//! A sensor whose read is known when it starts (a simulation's) answers at once with the
//! instant the read completes; the group keeps such answers ([`DueAnswers`]) and settles each as
//! of its instant, before anything that happens after it. It wakes for them only when something
//! depends on their instants (the round's end, a full analysis batch), so simulated latencies
//! cost no timer per read, no task and no wake-up of the sensor, and on a virtual clock no turn
//! of the runtime per millisecond. (Supervision looks at a round's outcomes when the round ends,
//! so settling them late decides nothing later.) A group
//! with `max_in_flight` has its sensors wait for such reads instead: there, whether a read ending
//! exactly at its deadline is timed out depends on the order in which tokio fires the two
//! timers, which keeping answers until due cannot reproduce.
//!
//! Two kinds of group exist:
//! - a configured group (`[[groups]]`) restarts its children by its strategy (`one_for_one`,
//!   `one_for_all`, `rest_for_one`): its members, and through the root its child groups, which
//!   come after them; it counts its own restart intensity, and when that is exceeded it
//!   escalates: the root hands the failure to its parent group ([`ChildEscalated`]) or decides
//!   itself, and tells the group its [`Fate`] (stop, start again as a fresh supervisor, give up);
//! - a shard holds the sensors that name no group; it restarts one for one and applies each
//!   sensor's own intensity, giving up just that sensor when exceeded.
//!
//! Failures are the ones of `docs/supervision.md`: a fatal read error, a caught panic, a hang
//! (`hung_after` consecutive timeouts) and a stopped actor; each member's directive for the
//! kind decides whether it is restarted, stopped, resumed or escalated. A transient read error
//! is only counted. Every decision is journaled as a [`SupervisionEvent`]. The decisions themselves
//! (restart or not, after which delay, which siblings with it) are the plain rules of
//! [`restart`](super::restart); the group applies them to its actors and journals them.

use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use actix_rt::time::Instant;
use tokio::sync::oneshot;

use self::due::DueAnswers;
use self::inbox::{Doorbell, Inbox};
use super::restart::{on_exit, restart_set, Exit, Intensity, NoRestart, RestartTracker, StoppedWith, Window};
use super::SensorState;
use super::{Escalation, RestartSubgroups};
use crate::aggregator::local::{Analyse, Analysed};
use crate::aggregator::SensorsStarted;
use crate::analysis::tracks::RoundDigest;
use crate::config::{Directive, FailureKind, GroupStrategy, RestartPolicy, SensorEntry, SensorTable};
use crate::data::{Absence, Backoff, EventKind, Outcome, ReadError, Reading, RestartType, SupervisionEvent};
use crate::driver::{driver_seed, DriverContext};
use crate::sensor::{self, Answer, GroupLink, Latency, ReadResult, SensorActor, SensorAnswer, StartRead, StopSensor};

mod due;
pub(crate) mod inbox;
mod membership;
mod operator;
pub(crate) use membership::{AdoptSubgroups, RemoveMember, StartMembers};
pub(crate) use operator::{InspectMember, OperateMember, Operation};

/// Asks a group supervisor to read its sensors for one round.
#[derive(Debug, Clone, Message)]
#[rtype(result = "GroupRound")]
pub(crate) struct ReadGroup {
    /// The round.
    pub(crate) round: u64,
    /// An earlier round's outcome vector, for this round's outcomes to overwrite (any length;
    /// empty for none).
    pub(crate) reuse: Vec<Outcome>,
}

/// A group's answer to [`ReadGroup`].
#[derive(Debug, Clone, actix::MessageResponse)]
pub(crate) struct GroupRound {
    /// What the group's analysis of its members' outcomes found.
    pub(crate) digest: RoundDigest,
    /// One outcome per member, in the group's member order, when the group keeps them (readings
    /// are written); else empty.
    pub(crate) outcomes: Vec<Outcome>,
    /// Whether any member is still running or waiting for a restart.
    pub(crate) live: bool,
}

impl GroupRound {
    /// The round of a group none of whose `members` could be read (the group did not answer):
    /// every member counted unavailable, but the `removed` ones, which are not requested.
    pub(crate) fn down(members: usize, removed: usize, keep_outcomes: bool, live: bool) -> Self {
        let mut digest = RoundDigest::default();
        let requested = members.saturating_sub(removed) as u64;
        digest.reads.requested = requested;
        digest.reads.unavailable = requested;
        let outcomes = if keep_outcomes {
            vec![Outcome::Unavailable(Absence::Down); members]
        } else {
            Vec::new()
        };
        GroupRound { digest, outcomes, live }
    }
}

/// Asks a group for its members' supervision states and restart counts, in member order, and
/// where the group itself stands.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "(Vec<(crate::data::SensorState, u32)>, Standing)")]
pub(crate) struct ReportStates {
    /// The run is ending (no round follows): the group frees its round buffers first, so the
    /// summary is built in the memory they took.
    pub(crate) ending: bool,
}

/// The run is ending: the group decides nothing more (no restart, no escalation, no decision
/// of its supervisor's but a give-up). It answers once it has stopped deciding, so an
/// escalation it sent before is in the root's mailbox by then.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub(crate) struct EndDecisions;

/// Where a group stands as a whole, by what it knows: the root's view may lag behind when the
/// group escalated just as the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Standing {
    /// Running (or restarting by its supervisor's decision).
    Running,
    /// It escalated, or its supervisor stopped it, and no decision came yet.
    Waiting,
    /// Given up: it escalated and was sure to be given up, or its supervisor gave it up.
    GivenUp,
}

/// Asks a group supervisor to stop its sensors and itself.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub(crate) struct StopGroup;

/// One of the group's child groups escalated: sent by the root to the group, which supervises
/// it as one of its children (its intensity counts the restart, its strategy picks who restarts
/// with it), or escalates in turn.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub(crate) struct ChildEscalated {
    /// The child's position among the group's child groups.
    pub(crate) position: usize,
    /// The child's name, for the siblings' `stopped` cause.
    pub(crate) name: Arc<str>,
}

/// What the root tells a group whose supervisor (the root, or a parent group) decided about it
/// as a whole.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub(crate) enum Fate {
    /// Stop every member (`stopped` with `cause`) and restart nothing; with `restart`, every
    /// member waits for the group's restart (`restart_scheduled` after `delay`), else for
    /// another fate.
    Stop {
        /// Why, as the members' `stopped` cause.
        cause: String,
        /// The group's restart delay and how it was chosen, if it restarts.
        restart: Option<(Duration, Backoff)>,
    },
    /// Start again as a fresh supervisor: every member restarts, the intensity window and the
    /// backoffs start over.
    Start,
    /// Give every member up (`gave_up` with `cause`).
    GiveUp {
        /// Why, as the members' `gave_up` cause.
        cause: String,
    },
}

/// How a group restarts and when it gives up.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum GroupKind {
    /// A `[[groups]]` entry: its strategy, and its own intensity (more than `max_restarts`
    /// restarts within `within` escalates).
    Configured {
        /// Which members restart with a failed one.
        strategy: GroupStrategy,
        /// Restarts allowed within `within`.
        max_restarts: u32,
        /// The intensity window.
        within: Duration,
    },
    /// Ungrouped sensors: one for one, each sensor with its own intensity.
    Shard,
}

/// What the group keeps per member.
#[derive(Debug)]
struct Child {
    /// The running actor; `None` while restarting, stopped or given up. Taken (with a
    /// [`StopSensor`]) to end the actor.
    addr: Option<Addr<SensorActor>>,
    state: SensorState,
    /// Starts so far minus one: part of the driver seed, and a guard against acting on outcomes
    /// of an actor that was replaced meanwhile.
    incarnation: u32,
    /// Restarts over the run.
    restarts: u32,
    /// Its intensity window (shards only), backoff step and since when its actor runs.
    tracker: RestartTracker,
    /// Consecutive read timeouts.
    timeouts: u32,
    /// Stopped with the whole group (it escalated, or its supervisor stopped it), waiting for
    /// the supervisor's decision: given up with the group, or restarted with it.
    held: bool,
}

/// What an outcome asks of the group.
enum Action {
    Fail(String, FailureKind),
    Exit(&'static str),
}

/// The kind of failure of a fatal outcome or a failed build, by its cause: a caught panic's
/// says `panic: ` first (`ReadError::Panic`'s and a panicking build's), every other is fatal.
fn kind_of(cause: &str) -> FailureKind {
    if cause.starts_with("panic: ") {
        FailureKind::Panic
    } else {
        FailureKind::Fatal
    }
}

/// An outcome that supervision must look at when the round ends (every other outcome only
/// resets the member's count of consecutive timeouts, as it settles).
#[derive(Debug)]
enum Note {
    TimedOut,
    /// A fatal error, a caught panic or a failed build, with its cause.
    Fatal(String),
    Closed,
    Exhausted,
}

/// Everything a group is built from: its spec, kept by the root to start it again.
#[derive(Clone)]
pub(crate) struct GroupSetup {
    /// The group's position among the root's groups.
    pub slot: usize,
    /// Its name (the id used in the journal for group events).
    pub name: Arc<str>,
    /// Configured group or shard.
    pub kind: GroupKind,
    /// Every sensor of the run.
    pub sensors: Arc<SensorTable>,
    /// The sensors of this group (indices into `sensors`), in configuration order; sensors
    /// added while the run goes on come last.
    pub members: Arc<[usize]>,
    /// Members removed while the run went on (positions in `members`, ascending): a group
    /// started again does not start them.
    pub removed: Arc<[u32]>,
    /// The run's seed.
    pub seed: u64,
    /// The aggregator of the group's arbiter, which analyses each round's outcomes.
    pub(crate) analysis: Recipient<Analyse>,
    /// Whether the round's outcomes go on to the root aggregator too (someone subscribed to the
    /// readings).
    pub keep_outcomes: bool,
    /// Deadline of each read.
    pub read_timeout: Duration,
    /// Cap on concurrent reads; 0 for none.
    pub max_in_flight: usize,
    /// Whether each read timeout is journaled (`journal = "verbose"`).
    pub journal_timeouts: bool,
    /// Where journal events go (the aggregator).
    pub journal: Recipient<SupervisionEvent>,
    /// Where the first start of the members is journaled (the aggregator).
    pub started: Recipient<SensorsStarted>,
    /// Where an escalation goes (the root).
    pub root: Recipient<Escalation>,
    /// Where the restarts of child groups go (the root, which holds them).
    pub subgroup_restarts: Recipient<RestartSubgroups>,
    /// The root's slots of the group's child groups (`parent = "<this group>"`), in
    /// configuration order: its children after its sensors.
    pub subgroups: Arc<[usize]>,
    /// The `[supervision]` defaults: the backoff of a child group's restart.
    pub group_policy: RestartPolicy,
    /// Where the jitter draws of child groups' restarts are keyed (after every other draw).
    pub jitter_base: usize,
    /// Whether an escalation of this group is given up for sure (a top-level group and a root
    /// that restarts no escalated group): its members are then journaled `gave_up` at once.
    pub final_escalation: bool,
}

/// The round a group is reading.
struct RoundInFlight {
    round: u64,
    /// Settled outcomes not yet handed to the analysis, as `(member, outcome)`: handed over
    /// every [`ANALYSIS_BATCH`] and when the round ends, so the round is analysed while its
    /// slower reads are still awaited.
    batch: Vec<(u32, Outcome)>,
    /// An outcome vector from the root for this round's outcomes, passed on with the first
    /// hand-over (when outcomes go on to the root).
    reuse: Option<Vec<Outcome>>,
    /// The outcomes supervision looks at when the round ends, as `(member, note)`.
    notes: Vec<(u32, Note)>,
    /// The round's bookkeeping, handed back to the group (for the next round) when it ends.
    books: Books,
    /// Reads sent so far: `books.order[..sent]`.
    sent: usize,
    /// Reads whose deadline has been handled: `books.order[..expired]`.
    expired: usize,
    /// Reads sent and not settled.
    in_flight: usize,
    /// Reads not settled, sent or not.
    left: usize,
    /// Deadlines of the sent reads in send order, one entry per burst of sends: `(deadline,
    /// end)` covers `books.order[previous end..end]`, all sent at the same instant.
    deadlines: VecDeque<(Instant, usize)>,
    /// The round's one timer: for the earliest deadline, or the instant kept answers must
    /// settle at (see `arm`); re-armed when that changes, cancelled when the round completes.
    timer: Option<SpawnHandle>,
    /// When `timer` fires.
    timer_at: Option<Instant>,
    /// Where the batch goes when every read is settled.
    done: oneshot::Sender<GroupRound>,
    /// Whether a continuation of the fan-out is scheduled (see [`FAN_OUT_SLICE`]).
    resuming: bool,
}

impl RoundInFlight {
    /// The deadline of member `member`'s read while it is ahead: that of the burst its read
    /// went out in. `None` if it was not sent, or its deadline was handled already. (Only a
    /// group without `max_in_flight` takes answers ahead: its reads go out in member order.)
    fn deadline_of(&self, member: u32) -> Option<Instant> {
        let k = self.books.order[..self.sent].binary_search(&member).ok()?;
        if k < self.expired {
            return None;
        }
        let burst = self.deadlines.partition_point(|&(_, end)| end <= k);
        self.deadlines.get(burst).map(|&(at, _)| at)
    }
}

/// Per-member vectors of a round that do not leave the group, reused from round to round so a
/// round allocates only the outcome vector it hands on.
#[derive(Default)]
struct Books {
    /// Whether the member's read was sent and is not settled yet.
    awaiting: Vec<bool>,
    /// Members' incarnations when the round began.
    incarnations: Vec<u32>,
    /// The members read this round (those with an actor when it began), in send order.
    order: Vec<u32>,
    /// Outcomes of reads answered ahead of time, kept until they are due: exactly the awaited
    /// reads with such an answer.
    due: DueAnswers<(ReadResult, Latency)>,
}

/// Reads a group sends before it yields to its sensors: they answer (and their envelopes are
/// freed, still in cache) while the rest of the round goes out, instead of every envelope of a
/// large group being allocated before the first is handled.
const FAN_OUT_SLICE: usize = 1024;

/// A nested supervisor of some sensors.
pub(crate) struct GroupSupervisor {
    setup: GroupSetup,
    children: Vec<Child>,
    /// The answer channel (its inbox), cloned into each sensor's [`GroupLink`]; set in
    /// `started`, closed when the group's stream of doorbells is dropped with the group.
    answers: Option<Inbox>,
    /// The round being read, if any.
    current: Option<RoundInFlight>,
    /// The last round's bookkeeping vectors, kept for the next one.
    spare: Books,
    /// The group's restarts inside its intensity window (configured groups).
    recent: Window,
    /// Set once the group has escalated or was stopped by its supervisor: nothing is restarted
    /// until a [`Fate::Start`].
    escalated: bool,
    /// The group escalated or was stopped and waits for its supervisor's decision: its members
    /// count as live meanwhile.
    pending: bool,
    /// Given up as a whole (see [`Standing::GivenUp`]).
    given_up: bool,
    /// While the group is down as a whole: why its members stopped, and when its supervisor's
    /// restart of it is due (with that restart's backoff), once decided. A member added then
    /// is journaled as its other members were.
    down: Option<(String, Option<(Instant, Backoff)>)>,
    /// Bumped whenever the group as a whole is stopped or started again: a member restart
    /// scheduled before is then not carried out.
    generation: u32,
    /// The backoff memory of each child group's restarts.
    subgroup_trackers: Vec<RestartTracker>,
    /// Whether the first starts are done (they are logged at debug level).
    started: bool,
    /// Set when the root took the final states (the run is ending): from then on nothing
    /// changes and nothing is journaled, so the summary and the journal tell the same end.
    ending: bool,
    /// The round in flight, or the last one started (0 before the first): the journal's round.
    round: u64,
}

impl GroupSupervisor {
    /// A group that starts its members when it starts.
    pub(crate) fn new(setup: GroupSetup) -> Self {
        let now = Instant::now();
        let mut children = setup
            .members
            .iter()
            .map(|_| Child {
                addr: None,
                state: SensorState::Stopped,
                incarnation: 0,
                restarts: 0,
                tracker: RestartTracker::new(now),
                timeouts: 0,
                held: false,
            })
            .collect::<Vec<_>>();
        for &local in setup.removed.iter() {
            children[local as usize].state = SensorState::Removed;
        }
        let subgroup_trackers = setup.subgroups.iter().map(|_| RestartTracker::new(now)).collect();
        GroupSupervisor {
            children,
            answers: None,
            current: None,
            spare: Books::default(),
            recent: Window::default(),
            escalated: false,
            pending: false,
            given_up: false,
            down: None,
            generation: 0,
            subgroup_trackers,
            started: false,
            ending: false,
            round: 0,
            setup,
        }
    }

    fn spec(&self, local: usize) -> &SensorEntry {
        self.setup.sensors.entry(self.setup.members[local])
    }

    fn id(&self, local: usize) -> Arc<str> {
        self.setup.sensors.id(self.setup.members[local])
    }

    /// An event of this group's journal: about `sensor`, or the group itself when `None`.
    fn event(&self, sensor: Option<Arc<str>>, event: EventKind, cause: Option<String>) -> SupervisionEvent {
        let group = match self.setup.kind {
            GroupKind::Configured { .. } => Some(self.setup.name.clone()),
            GroupKind::Shard => None,
        };
        SupervisionEvent {
            timestamp: crate::clock::now(),
            round: self.round,
            sensor,
            group,
            output: None,
            event,
            cause,
            delay: None,
            restarts: None,
            backoff: None,
        }
    }

    /// Logs `event` and sends it to the journal.
    fn send(&self, event: SupervisionEvent) {
        let level = if self.started {
            log::Level::Info
        } else {
            log::Level::Debug
        };
        super::log_event(level, &event);
        self.setup.journal.do_send(event);
    }

    /// Journals `event` of member `local`.
    fn journal(&self, local: usize, event: EventKind, cause: Option<String>, restarts: Option<u32>) {
        let event = SupervisionEvent {
            restarts,
            ..self.event(Some(self.id(local)), event, cause)
        };
        self.send(event);
    }

    /// Journals member `local`'s `restart_scheduled` after `delay`, chosen by `backoff`.
    fn journal_scheduled(&self, local: usize, delay: Duration, backoff: Backoff) {
        let event = SupervisionEvent {
            delay: Some(delay),
            restarts: Some(self.children[local].restarts),
            backoff: Some(backoff),
            ..self.event(Some(self.id(local)), EventKind::RestartScheduled, None)
        };
        self.send(event);
    }

    /// Builds the member's driver and actor from its spec, on this group's arbiter. A build that
    /// fails at once leaves the member running without an actor and gives the cause, for the
    /// caller to fail it once its other members are started.
    fn spawn(&mut self, local: usize) -> Option<String> {
        let index = self.setup.members[local];
        let (id, spec) = (self.setup.sensors.id(index), self.setup.sensors.entry(index));
        let child = &mut self.children[local];
        let ctx = DriverContext {
            id,
            kind: spec.kind.clone(),
            index,
            incarnation: child.incarnation,
            seed: driver_seed(self.setup.seed, index, child.incarnation),
        };
        child.state = SensorState::Running;
        child.tracker.started(Instant::now());
        child.timeouts = 0;
        let built = match sensor::build(&*spec.driver, &ctx) {
            Ok(built) => built,
            Err(cause) => return Some(cause),
        };
        let link = GroupLink {
            answers: self
                .answers
                .clone()
                .expect("the answer channel is set before any sensor starts"),
            member: local as u32,
            incarnation: child.incarnation,
        };
        child.addr = Some(SensorActor::start_linked(built, link));
        None
    }

    /// Member `local`'s driver (of `incarnation`) could not be built, after the build's future
    /// ran: a failure like a fatal read error. If the member is part of the round in flight, its
    /// read (never made) is settled `unavailable` at once and the failure is acted on when the
    /// round ends, as every failure found in a round is; otherwise at once.
    fn build_failed(&mut self, local: usize, incarnation: u32, cause: String, ctx: &mut Context<Self>) {
        let child = &self.children[local];
        if child.incarnation != incarnation || child.state != SensorState::Running {
            return;
        }
        let Some(cur) = self
            .current
            .as_mut()
            .filter(|cur| cur.books.incarnations.get(local) == Some(&incarnation))
        else {
            return self.fail(local, cause, ctx);
        };
        if std::mem::take(&mut cur.books.awaiting[local]) {
            cur.in_flight -= 1;
            cur.left -= 1;
            settle(
                cur,
                &mut self.children,
                &self.setup,
                local,
                Outcome::Unavailable(Absence::Down),
            );
        }
        cur.notes.push((local as u32, Note::Fatal(cause)));
        if cur.sent < cur.books.order.len() && !cur.resuming {
            self.pump(ctx);
        }
        self.complete_if_settled(ctx);
    }

    /// Stops member `local`'s actor; whether it had one.
    fn stop_actor(&mut self, local: usize) -> bool {
        let addr = self.children[local].addr.take();
        if let Some(addr) = &addr {
            addr.do_send(StopSensor);
        }
        addr.is_some()
    }

    fn live(&self) -> bool {
        self.pending
            || self
                .children
                .iter()
                .any(|c| matches!(c.state, SensorState::Running | SensorState::Restarting))
    }

    /// Applies supervision to one round's notes, in member order (`incarnations` as they were
    /// when the round started).
    fn supervise(&mut self, incarnations: &[u32], notes: &mut [(u32, Note)], ctx: &mut Context<Self>) {
        // A member may have two notes: a read that timed out, then a build that failed (the
        // cause of the timeout). Its explicit failure comes first, and is its one failure.
        notes.sort_by_key(|(local, note)| (*local, matches!(note, Note::TimedOut)));
        // Turn every note into a failure or an exit first, then act on them together: a
        // strategy restart may take in members whose notes come later.
        let mut actions: Vec<(usize, Action)> = Vec::new();
        for (local, note) in notes.iter_mut() {
            let local = *local as usize;
            let child = &mut self.children[local];
            if child.incarnation != incarnations[local]
                || child.state != SensorState::Running
                || actions.last().is_some_and(|&(last, _)| last == local)
            {
                continue;
            }
            match note {
                Note::TimedOut => {
                    child.timeouts += 1;
                    let timeouts = child.timeouts;
                    let hung_after = self.setup.sensors.entry(self.setup.members[local]).policy.hung_after;
                    if self.setup.journal_timeouts {
                        let cause = format!("{timeouts} of {hung_after} consecutive read timeouts make a hang");
                        self.journal(local, EventKind::TimedOut, Some(cause), None);
                    }
                    if timeouts >= hung_after {
                        let cause = format!("hung: {timeouts} consecutive read timeouts");
                        actions.push((local, Action::Fail(cause, FailureKind::Hung)));
                    }
                }
                Note::Fatal(cause) => {
                    let kind = kind_of(cause);
                    actions.push((local, Action::Fail(std::mem::take(cause), kind)));
                }
                Note::Closed => actions.push((
                    local,
                    Action::Fail("stopped: mailbox closed".into(), FailureKind::Stopped),
                )),
                Note::Exhausted => actions.push((local, Action::Exit("exhausted"))),
            }
        }
        self.end_members(actions, ctx);
    }

    /// A failure of one member (a build that failed outside a round).
    fn fail(&mut self, local: usize, cause: String, ctx: &mut Context<Self>) {
        let kind = kind_of(&cause);
        self.end_members(vec![(local, Action::Fail(cause, kind))], ctx);
    }

    /// Acts on the members that failed or exited together (in one round, or when a restarted
    /// set's builds failed), in member order, in three steps:
    /// 1. each one's `failed` or `stopped` is journaled; a failure whose directive is `resume`
    ///    is journaled `resumed` and keeps its actor, the others' actors are stopped, and a
    ///    failure whose directive is `stop` is journaled `stopped` and stays down;
    /// 2. those that stay down by their restart type (a temporary sensor's failure, a transient
    ///    or temporary sensor's normal exit) are settled: they are not restarted with a sibling;
    /// 3. if a failure's directive is `escalate`, the group escalates; else the others are
    ///    restarted by the strategy, each unless a sibling's restart has taken it in meanwhile
    ///    (it restarts with that set) or the group has escalated.
    ///
    /// So a member's failure is never journaled after the restart, or the escalation, that it
    /// is part of.
    fn end_members(&mut self, ended: Vec<(usize, Action)>, ctx: &mut Context<Self>) {
        let mut exits = Vec::with_capacity(ended.len());
        let mut escalation = None;
        for (local, action) in ended {
            if self.children[local].state != SensorState::Running {
                continue;
            }
            let (cause, kind) = match action {
                Action::Fail(cause, kind) => (cause, kind),
                Action::Exit(why) => {
                    self.stop_actor(local);
                    self.journal(local, EventKind::Stopped, Some(why.to_string()), None);
                    exits.push((local, Exit::Normal));
                    continue;
                }
            };
            let directive = self.spec(local).policy.directives.get(kind);
            let by = || format!("{} on {}", directive.as_str(), kind.as_str());
            if directive == Directive::Resume {
                self.journal(local, EventKind::Failed, Some(cause), None);
                self.children[local].timeouts = 0;
                self.journal(local, EventKind::Resumed, Some(by()), None);
                continue;
            }
            self.stop_actor(local);
            match directive {
                Directive::Stop => {
                    self.journal(local, EventKind::Failed, Some(cause), None);
                    self.children[local].state = SensorState::Stopped;
                    self.journal(local, EventKind::Stopped, Some(by()), None);
                }
                Directive::Escalate => {
                    let why = format!("{} failed ({cause}): {}", self.id(local), by());
                    self.journal(local, EventKind::Failed, Some(cause), None);
                    escalation.get_or_insert(why);
                }
                _ => {
                    self.journal(local, EventKind::Failed, Some(cause), None);
                    exits.push((local, Exit::Failure));
                }
            }
        }
        let mut restarts = Vec::with_capacity(exits.len());
        for (local, exit) in exits {
            match on_exit(self.spec(local).policy.restart, exit) {
                ControlFlow::Continue(()) => restarts.push(local),
                ControlFlow::Break(reason) => {
                    self.children[local].state = SensorState::Stopped;
                    // A failure says why it is not restarted; a normal exit said it already.
                    if exit == Exit::Failure {
                        self.journal(local, EventKind::Stopped, Some(reason.to_string()), None);
                    }
                }
            }
        }
        if let Some(cause) = escalation {
            return self.escalate(cause);
        }
        for local in restarts {
            if self.children[local].state == SensorState::Running {
                self.restart_by_strategy(local, ctx);
            }
        }
    }

    /// Restarts `local` and, by the group's strategy, its siblings, after `local`'s backoff;
    /// or gives up when the intensity is exceeded.
    fn restart_by_strategy(&mut self, local: usize, ctx: &mut Context<Self>) {
        let now = Instant::now();
        // A configured group counts this restart against its own intensity (one count for the
        // whole set), a shard against the failed sensor's; either way the delay is the failed
        // sensor's backoff. Decided before any sibling stops: a group past its intensity
        // escalates, and its members are given up, not told they restart.
        let (seed, index) = (self.setup.seed, self.setup.members[local]);
        let policy = &self.setup.sensors.entry(index).policy;
        let child = &mut self.children[local];
        let decision = match &self.setup.kind {
            GroupKind::Configured {
                max_restarts, within, ..
            } => {
                let limit = Intensity {
                    max_restarts: *max_restarts,
                    within: *within,
                };
                child
                    .tracker
                    .record_restart_in(&mut self.recent, limit, now, policy, seed, index)
            }
            GroupKind::Shard => child.tracker.record_restart(now, policy, seed, index),
        };
        match decision {
            ControlFlow::Continue((delay, backoff)) => {
                let failed = self.id(local);
                self.apply_strategy(local, &failed, delay, backoff, ctx);
            }
            // Too many restarts: a configured group escalates to the root, a shard gives up
            // just this sensor.
            ControlFlow::Break(reason) => {
                if let GroupKind::Configured { .. } = self.setup.kind {
                    return self.escalate(reason.to_string());
                }
                child.state = SensorState::GivenUp;
                let restarts = child.restarts;
                self.journal(local, EventKind::GaveUp, Some(reason.to_string()), Some(restarts));
            }
        }
    }

    /// Restarts child `failed` (a member, or with a position past the members a child group)
    /// named `failed_id`, and by the strategy its siblings, all after `delay`: the members here,
    /// the child groups through the root, which holds them.
    fn apply_strategy(
        &mut self,
        failed: usize,
        failed_id: &str,
        delay: Duration,
        backoff: Backoff,
        ctx: &mut Context<Self>,
    ) {
        let strategy = match &self.setup.kind {
            GroupKind::Configured { strategy, .. } => *strategy,
            GroupKind::Shard => GroupStrategy::OneForOne,
        };
        // A group's children are its sensors, then its child groups (each taken as running:
        // the root leaves out those that are not).
        let m = self.children.len();
        let everyone = restart_set(strategy, failed, m + self.setup.subgroups.len(), |s| {
            s >= m || self.children[s].state == SensorState::Running
        });
        let (mut set, subgroups): (Vec<usize>, Vec<usize>) = everyone.into_iter().partition(|&s| s < m);
        // The siblings stop, then wait for the failed child's backoff with it. A sibling that
        // failed or exited with it (its actor already gone, its end journaled) restarts with
        // the set without being `stopped` again. A temporary sibling is stopped and not
        // restarted, as OTP does with temporary children.
        let cause = StoppedWith {
            strategy,
            failed: failed_id,
        };
        let mut temporary = Vec::new();
        for &s in set.iter().filter(|&&s| s != failed) {
            if self.spec(s).policy.restart == RestartType::Temporary {
                self.children[s].state = SensorState::Stopped;
                temporary.push(s);
                if self.stop_actor(s) {
                    let cause = format!("{}; {}", cause.stopping(), NoRestart::Temporary);
                    self.journal(s, EventKind::Stopped, Some(cause), None);
                }
                continue;
            }
            self.children[s].state = SensorState::Restarting;
            if self.stop_actor(s) {
                self.journal(s, EventKind::Stopped, Some(cause.to_string()), None);
            }
        }
        set.retain(|s| !temporary.contains(s));
        // The whole set waits for the one delay and restarts together.
        for &s in &set {
            self.children[s].state = SensorState::Restarting;
            self.journal_scheduled(s, delay, backoff);
        }
        if !subgroups.is_empty() {
            self.setup.subgroup_restarts.do_send(RestartSubgroups {
                group: self.setup.slot,
                positions: subgroups.iter().map(|s| s - m).collect(),
                failed: failed.checked_sub(m),
                delay,
                backoff,
                cause: cause.to_string(),
            });
        }
        if !set.is_empty() {
            let generation = self.generation;
            ctx.run_later(delay, move |act, ctx| {
                if act.generation == generation {
                    act.restart(&set, ctx);
                }
            });
        }
    }

    /// The backoff of `set`'s restart ran out: each member still waiting for it starts a fresh
    /// actor from its spec, with the next incarnation.
    fn restart(&mut self, set: &[usize], ctx: &mut Context<Self>) {
        // An escalated group restarts nothing (its members are given up), nor does a group whose
        // final states were taken (a restart due after the last round stays undone).
        if self.escalated || self.ending {
            return;
        }
        let mut failed = Vec::new();
        for &local in set {
            // Only members still waiting for this restart (not given up or stopped meanwhile).
            if self.children[local].state != SensorState::Restarting {
                continue;
            }
            let child = &mut self.children[local];
            child.incarnation += 1;
            child.restarts += 1;
            let restarts = child.restarts;
            failed.extend(self.spawn(local).map(|cause| (local, cause)));
            self.journal(local, EventKind::Restarted, None, Some(restarts));
        }
        // Builds that failed at once fail their members once the whole set is started, so that
        // a strategy's restart sees the set as it is.
        let failed = failed.into_iter().map(|(local, cause)| {
            let kind = kind_of(&cause);
            (local, Action::Fail(cause, kind))
        });
        self.end_members(failed.collect(), ctx);
    }

    /// The group exceeded its intensity (or a member's directive asked for it): stop every
    /// member and pass the failure to the root, which hands it to the group's supervisor.
    fn escalate(&mut self, cause: String) {
        self.escalated = true;
        self.generation += 1;
        // Each member still in the game stops with the group and says so: given up when the
        // group is sure to be given up, else stopped until its supervisor decides.
        let ended = format!("group {} escalated: {cause}", self.setup.name);
        self.down = Some((ended.clone(), None));
        let (event, state) = if self.setup.final_escalation {
            self.given_up = true;
            (EventKind::GaveUp, SensorState::GivenUp)
        } else {
            self.pending = true;
            (EventKind::Stopped, SensorState::Stopped)
        };
        for local in 0..self.children.len() {
            self.stop_actor(local);
            let child = &mut self.children[local];
            if matches!(
                child.state,
                SensorState::Stopped | SensorState::GivenUp | SensorState::Removed
            ) {
                continue;
            }
            child.state = state;
            child.held = event == EventKind::Stopped;
            let restarts = (event == EventKind::GaveUp).then_some(child.restarts);
            self.journal(local, event, Some(ended.clone()), restarts);
        }
        // The root journals the group's `escalated`, where the group's fate is known.
        let event = self.event(None, EventKind::Escalated, Some(cause.clone()));
        self.setup.root.do_send(Escalation {
            group: self.setup.slot,
            cause,
            event,
        });
    }

    /// Child group `position` escalated: count its restart against this group's intensity and
    /// restart it (with its siblings, by the strategy) after its backoff, or escalate in turn.
    fn child_escalated(&mut self, position: usize, name: &str, ctx: &mut Context<Self>) {
        // A group that is down itself leaves its children to its own supervisor's decision.
        if self.escalated || self.ending {
            return;
        }
        let GroupKind::Configured {
            max_restarts, within, ..
        } = self.setup.kind
        else {
            return;
        };
        let now = Instant::now();
        let limit = Intensity { max_restarts, within };
        let index = self.setup.jitter_base + self.setup.subgroups[position];
        let decision = self.subgroup_trackers[position].record_restart_in(
            &mut self.recent,
            limit,
            now,
            &self.setup.group_policy,
            self.setup.seed,
            index,
        );
        match decision {
            ControlFlow::Continue((delay, backoff)) => {
                // Its backoff starts over once it ran `within` from its restart on.
                self.subgroup_trackers[position].started(now + delay);
                let failed = self.children.len() + position;
                self.apply_strategy(failed, &format!("group {name}"), delay, backoff, ctx);
            }
            ControlFlow::Break(reason) => self.escalate(reason.to_string()),
        }
    }

    /// The group's supervisor decided about the group as a whole. As the run ends, only a
    /// give-up is taken: the root records a decision that was sure for an escalation that
    /// reached it then, and the groups nested in the given-up group are given up with it.
    fn fate(&mut self, fate: Fate, ctx: &mut Context<Self>) {
        if self.ending && !matches!(fate, Fate::GiveUp { .. }) {
            return;
        }
        match fate {
            Fate::Stop { cause, restart } => {
                self.escalated = true;
                self.generation += 1;
                self.pending = restart.is_none();
                let due = restart.map(|(delay, backoff)| (Instant::now() + delay, backoff));
                self.down = Some((cause.clone(), due));
                for local in 0..self.children.len() {
                    // A removed member is out of the group's fate.
                    if self.children[local].state == SensorState::Removed {
                        continue;
                    }
                    // Every member still in the game says it stopped, one waiting for its
                    // own restart too: that restart is called off with the group.
                    let in_game = matches!(
                        self.children[local].state,
                        SensorState::Running | SensorState::Restarting
                    );
                    if self.stop_actor(local) || in_game {
                        self.journal(local, EventKind::Stopped, Some(cause.clone()), None);
                    }
                    let child = &mut self.children[local];
                    if restart.is_none() {
                        if matches!(child.state, SensorState::Running | SensorState::Restarting) {
                            child.state = SensorState::Stopped;
                            child.held = true;
                        }
                        continue;
                    }
                    // A fresh supervisor starts every child of its spec again.
                    child.state = SensorState::Restarting;
                    child.held = false;
                }
                if let Some((delay, backoff)) = restart {
                    for local in 0..self.children.len() {
                        if self.children[local].state == SensorState::Removed {
                            continue;
                        }
                        self.journal_scheduled(local, delay, backoff);
                    }
                }
            }
            Fate::Start => {
                let now = Instant::now();
                self.escalated = false;
                self.pending = false;
                self.down = None;
                self.generation += 1;
                self.recent = Window::default();
                for tracker in &mut self.subgroup_trackers {
                    *tracker = RestartTracker::new(now);
                }
                for child in &mut self.children {
                    child.tracker = RestartTracker::new(now);
                }
                let all: Vec<usize> = (0..self.children.len()).collect();
                self.restart(&all, ctx);
            }
            Fate::GiveUp { cause } => {
                self.escalated = true;
                self.pending = false;
                self.given_up = true;
                self.generation += 1;
                for local in 0..self.children.len() {
                    self.stop_actor(local);
                    let child = &mut self.children[local];
                    // Members that had stopped for good before stay as they are.
                    if !(child.held || matches!(child.state, SensorState::Running | SensorState::Restarting)) {
                        continue;
                    }
                    child.held = false;
                    child.state = SensorState::GivenUp;
                    let restarts = child.restarts;
                    self.journal(local, EventKind::GaveUp, Some(cause.clone()), Some(restarts));
                }
            }
        }
    }
}

impl GroupSupervisor {
    /// Sends the next reads while the cap allows (at most a slice before yielding), and arms
    /// the timer of the earliest deadline.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        let Some(cur) = self.current.as_mut() else { return };
        let cap = match self.setup.max_in_flight {
            0 => usize::MAX,
            cap => cap,
        };
        // Every read sent in this call shares one deadline: `now + read_timeout`.
        let now = Instant::now();
        let first = cur.sent;
        let mut resume = false;
        while cur.in_flight < cap && cur.sent < cur.books.order.len() {
            // A full slice went out: yield to the sensors, unless a continuation is already
            // scheduled (then it sends the rest).
            if cur.sent - first == FAN_OUT_SLICE {
                resume = !std::mem::replace(&mut cur.resuming, true);
                break;
            }
            let local = cur.books.order[cur.sent] as usize;
            cur.sent += 1;
            // An actor that stopped since the round began cannot be asked: its read settles
            // `Closed` at once, which supervision then treats as a failure.
            let sent = match &self.children[local].addr {
                Some(addr) if addr.connected() => {
                    addr.do_send(StartRead {
                        round: cur.round,
                        ahead: self.setup.max_in_flight == 0,
                    });
                    true
                }
                _ => false,
            };
            if sent {
                cur.books.awaiting[local] = true;
                cur.in_flight += 1;
            } else {
                cur.left -= 1;
                let closed = Outcome::Unavailable(Absence::Closed);
                settle(cur, &mut self.children, &self.setup, local, closed);
            }
        }
        if cur.sent > first {
            cur.deadlines.push_back((now + self.setup.read_timeout, cur.sent));
        }
        self.arm(ctx);
        if resume {
            ctx.spawn(tokio::task::yield_now().into_actor(self).map(|(), act, ctx| {
                if let Some(cur) = act.current.as_mut() {
                    cur.resuming = false;
                }
                act.pump(ctx);
            }));
        }
    }

    /// Arms the round's one timer for the next instant the group must act at by itself: the
    /// earliest deadline, and for the answers it keeps, the earliest of them while reads wait
    /// for room to be sent or while settling them could fill an analysis batch (either must
    /// happen at that answer's instant), else the latest once every read left has answered
    /// ahead (the round ends then). Kept answers due before settle when the group next acts
    /// (`settle_due`): nothing depends on their instants until then.
    fn arm(&mut self, ctx: &mut Context<Self>) {
        let Some(cur) = self.current.as_mut() else { return };
        let due = &cur.books.due;
        let kept = if due.is_empty() {
            None
        } else if (cur.sent < cur.books.order.len() && !cur.resuming) || cur.batch.len() + due.len() >= ANALYSIS_BATCH {
            due.earliest()
        } else if cur.left == due.len() {
            due.latest()
        } else {
            None
        };
        let target = match (cur.deadlines.front().map(|&(at, _)| at), kept) {
            (Some(deadline), Some(kept)) => Some(deadline.min(kept)),
            (deadline, kept) => deadline.or(kept),
        };
        if target == cur.timer_at {
            return;
        }
        if let Some(timer) = cur.timer.take() {
            ctx.cancel_future(timer);
        }
        cur.timer_at = target;
        if let Some(at) = target {
            let wait = at.saturating_duration_since(Instant::now());
            cur.timer = Some(ctx.run_later(wait, |act, ctx| act.deadline(ctx)));
        }
    }

    /// Settles the kept answers due by now, in the order of their instants: called first
    /// whenever the group acts, so each settles before anything that happens after it. Once the
    /// run is ending, they are dropped unsettled, as answers arriving then are.
    fn settle_due(&mut self) {
        let Some(cur) = self.current.as_mut().filter(|cur| !cur.books.due.is_empty()) else {
            return;
        };
        if self.ending {
            return cur.books.due.clear();
        }
        let by = cur.books.due.due_by(Instant::now());
        while let Some((member, at, (result, latency))) = cur.books.due.pop_by(by) {
            // Made now, in the order of the instants (the clock converts them fastest in order).
            let outcome = outcome(
                result.into_result(),
                latency.get(),
                crate::clock::at(at),
                self.setup.read_timeout,
            );
            let local = member as usize;
            cur.books.awaiting[local] = false;
            cur.in_flight -= 1;
            cur.left -= 1;
            settle(cur, &mut self.children, &self.setup, local, outcome);
        }
    }

    /// The round's timer fired: kept answers due by now settle, then every read due by now and
    /// not settled is timed out.
    fn deadline(&mut self, ctx: &mut Context<Self>) {
        let Some(cur) = self.current.as_mut() else { return };
        (cur.timer, cur.timer_at) = (None, None);
        // Each kept answer is due before its read's deadline (see the answer handler): it
        // settles first.
        self.settle_due();
        let Some(cur) = self.current.as_mut() else { return };
        let now = Instant::now();
        // Bursts are queued in send order, so their deadlines are in order too: stop at the
        // first one still ahead.
        while let Some(&(at, end)) = cur.deadlines.front() {
            if at > now {
                break;
            }
            cur.deadlines.pop_front();
            for k in cur.expired..end {
                let local = cur.books.order[k] as usize;
                // Reads already answered (or settled otherwise) are skipped.
                if std::mem::take(&mut cur.books.awaiting[local]) {
                    cur.in_flight -= 1;
                    cur.left -= 1;
                    settle(cur, &mut self.children, &self.setup, local, Outcome::TimedOut);
                }
            }
            cur.expired = end;
        }
        // Timed-out reads freed room under `max_in_flight`: send more, arming the next timer,
        // then hand the round back if that was its last read.
        self.pump(ctx);
        self.complete_if_settled(ctx);
    }

    /// Hands the round's batch back once every read is settled, after supervising its outcomes.
    fn complete_if_settled(&mut self, ctx: &mut Context<Self>) {
        if self.current.as_ref().is_none_or(|cur| cur.left > 0) {
            return;
        }
        let Some(mut cur) = self.current.take() else { return };
        if let Some(timer) = cur.timer {
            ctx.cancel_future(timer);
        }
        // Supervision first (in member order), then the last hand-over to the arbiter's
        // aggregator, which answers with the round's digest (and its outcomes, when they go on).
        let mut notes = std::mem::take(&mut cur.notes);
        self.supervise(&cur.books.incarnations, &mut notes, ctx);
        self.spare = cur.books;
        let live = self.live();
        let (round, done) = (cur.round, cur.done);
        let analysis = self.setup.analysis.send(Analyse {
            group: self.setup.slot,
            round,
            outcomes: cur.batch,
            reuse: cur.reuse,
            last: true,
        });
        ctx.spawn(analysis.into_actor(self).map(move |analysed, act, _ctx| {
            let Analysed { digest, outcomes } = analysed.unwrap_or_else(|e| {
                // Only if the aggregator stopped: the round is counted, nothing analysed.
                log::error!("{}: round {round} was not analysed: {e}", act.setup.name);
                let n = act.active() as u64;
                let mut digest = crate::analysis::tracks::RoundDigest::default();
                (digest.reads.requested, digest.reads.unavailable) = (n, n);
                Analysed {
                    digest,
                    outcomes: Vec::new(),
                }
            });
            let _ = done.send(GroupRound { digest, outcomes, live });
        }));
    }
}

/// Outcomes handed to the analysis at a time while a round is read: large enough that the
/// hand-overs cost nothing next to the reads, small enough that the analysis keeps pace with a
/// round's answers instead of running after the last one.
const ANALYSIS_BATCH: usize = 1024;

/// Settles member `local`'s outcome of the round in flight `cur`: supervision notes what it must
/// look at when the round ends (a member still running the incarnation the round asked), and the
/// outcome goes to the round's analysis (the group's aggregator, in batches).
fn settle(cur: &mut RoundInFlight, children: &mut [Child], setup: &GroupSetup, local: usize, outcome: Outcome) {
    let child = &mut children[local];
    if child.incarnation == cur.books.incarnations[local] && child.state == SensorState::Running {
        let note = match &outcome {
            Outcome::TimedOut => Some(Note::TimedOut),
            Outcome::Failed { cause, fatal: true } => Some(Note::Fatal(cause.clone())),
            Outcome::Unavailable(Absence::Closed) => Some(Note::Closed),
            Outcome::Unavailable(Absence::Exhausted) => Some(Note::Exhausted),
            _ => {
                child.timeouts = 0;
                None
            }
        };
        if let Some(note) = note {
            cur.notes.push((local as u32, note));
        }
    }
    cur.batch.push((local as u32, outcome));
    if cur.batch.len() == ANALYSIS_BATCH {
        let outcomes = std::mem::replace(&mut cur.batch, Vec::with_capacity(ANALYSIS_BATCH));
        setup.analysis.do_send(Analyse {
            group: setup.slot,
            round: cur.round,
            outcomes,
            reuse: cur.reuse.take(),
            last: false,
        });
    }
}

/// What a sensor's answer makes of its read in the round. A read that took longer than
/// `read_timeout` is `TimedOut` whatever it answered: the deadline timer ticks by the
/// millisecond, so an answer can reach the group just after its deadline and before the timer
/// has settled it; it is not counted ok.
fn outcome(
    result: Result<crate::data::Sample, ReadError>,
    latency: Duration,
    timestamp: chrono::DateTime<chrono::Utc>,
    read_timeout: Duration,
) -> Outcome {
    if latency > read_timeout {
        return Outcome::TimedOut;
    }
    match result {
        Ok(sample) => Outcome::Ok(Reading::new(sample, timestamp, latency)),
        Err(ReadError::Failed(cause)) => Outcome::Failed { cause, fatal: false },
        Err(ReadError::Offline) => Outcome::Unavailable(Absence::Offline),
        Err(ReadError::Exhausted) => Outcome::Unavailable(Absence::Exhausted),
        // A sensor never answers a crash (it stops first); should one arrive, it is the same.
        Err(ReadError::Crash(_)) => Outcome::Unavailable(Absence::Closed),
        Err(fatal @ (ReadError::Fatal(_) | ReadError::Panic(_))) => Outcome::Failed {
            cause: fatal.to_string(),
            fatal: true,
        },
    }
}

impl Actor for GroupSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let inbox = Inbox::default();
        ctx.add_stream(inbox.doorbells());
        self.answers = Some(inbox);
        let mut failed: Vec<(usize, String)> = Vec::new();
        for local in 0..self.children.len() {
            // Members removed while the run went on stay stopped when a group starts again.
            if self.children[local].state != SensorState::Removed {
                failed.extend(self.spawn(local).map(|cause| (local, cause)));
            }
        }
        log::debug!("{}: {} sensors started", self.setup.name, self.active());
        self.setup.started.do_send(SensorsStarted {
            timestamp: crate::clock::now(),
            sensors: self.active_members(),
        });
        self.started = true;
        let failed = failed.into_iter().map(|(local, cause)| {
            let kind = kind_of(&cause);
            (local, Action::Fail(cause, kind))
        });
        self.end_members(failed.collect(), ctx);
    }
}

impl StreamHandler<Doorbell> for GroupSupervisor {
    /// Answers are queued: handles them in order, up to a burst (then the group yields to the
    /// other tasks of its arbiter before the rest, as a stream of them did).
    fn handle(&mut self, _msg: Doorbell, ctx: &mut Context<Self>) {
        let Some(inbox) = self.answers.clone() else { return };
        let mut handled = 0;
        while let Some(answer) = inbox.take(handled) {
            handled += 1;
            self.answer(answer, ctx);
        }
    }

    fn finished(&mut self, _ctx: &mut Context<Self>) {
        // The group holds its inbox itself, so the stream only ends with the group.
    }
}

impl GroupSupervisor {
    /// Handles one sensor's answer.
    fn answer(&mut self, msg: SensorAnswer, ctx: &mut Context<Self>) {
        if self.ending {
            return;
        }
        // Kept answers due by now completed before this one arrived. (Another answer ahead is
        // only kept too: nothing it does depends on them, and a round's reads answer at once.)
        if !matches!(msg.answer, Answer::Ahead { .. }) {
            self.settle_due();
        }
        if let Answer::BuildFailed { cause } = msg.answer {
            self.build_failed(msg.member as usize, msg.incarnation, cause, ctx);
            return self.arm(ctx);
        }
        let Some(cur) = self.current.as_mut() else { return };
        let local = msg.member as usize;
        let current =
            cur.books.awaiting.get(local).copied().unwrap_or(false) && cur.books.incarnations[local] == msg.incarnation;
        let outcome = match msg.answer {
            Answer::Read {
                round,
                result,
                latency,
                timestamp,
            } if current && round == cur.round => {
                outcome(result.into_result(), latency.get(), timestamp, self.setup.read_timeout)
            }
            Answer::Ahead {
                round,
                result,
                started,
                latency,
            } if current && round == cur.round => {
                // Kept until it is due. One due at or after its read's deadline is left to the
                // deadline, which times it out: at the same instant the deadline comes first, as
                // it does for an answer that waited on its own timer.
                let at = started + latency.get();
                if cur.deadline_of(msg.member).is_some_and(|deadline| at < deadline) {
                    cur.books.due.push(at, msg.member, (result, latency));
                }
                return self.arm(ctx);
            }
            Answer::Stopped if current => {
                // Its read, answered ahead or not, ends here: it was not due yet.
                if !cur.books.due.is_empty() {
                    cur.books.due.remove(msg.member);
                }
                Outcome::Unavailable(Absence::Closed)
            }
            // Late: another round's answer, a settled read, or a replaced actor.
            _ => return,
        };
        cur.books.awaiting[local] = false;
        cur.in_flight -= 1;
        cur.left -= 1;
        settle(cur, &mut self.children, &self.setup, local, outcome);
        if cur.sent < cur.books.order.len() && !cur.resuming {
            self.pump(ctx);
        }
        self.complete_if_settled(ctx);
        // What the timer waits for may have changed (the last reads left answered ahead).
        self.arm(ctx);
    }
}

impl Handler<ReadGroup> for GroupSupervisor {
    type Result = ResponseActFuture<Self, GroupRound>;

    fn handle(&mut self, msg: ReadGroup, ctx: &mut Context<Self>) -> Self::Result {
        #[cfg(test)]
        crash_if_scripted(&self.setup.name, msg.round);
        let (done, result) = oneshot::channel();
        let n = self.children.len();
        if let Some(stale) = self.current.take() {
            log::error!(
                "{}: round {} was still open when round {} began",
                self.setup.name,
                stale.round,
                msg.round
            );
        }
        let mut books = std::mem::take(&mut self.spare);
        books.awaiting.clear();
        books.awaiting.resize(n, false);
        books.incarnations.clear();
        books.incarnations.extend(self.children.iter().map(|c| c.incarnation));
        books.order.clear();
        books
            .order
            .extend((0..n as u32).filter(|&local| self.children[local as usize].addr.is_some()));
        books.due.clear();
        let read = books.order.len();
        self.round = msg.round;
        let cur = self.current.insert(RoundInFlight {
            round: msg.round,
            batch: Vec::with_capacity(ANALYSIS_BATCH.min(n)),
            reuse: self.setup.keep_outcomes.then_some(msg.reuse),
            notes: Vec::new(),
            left: books.order.len(),
            books,
            sent: 0,
            expired: 0,
            in_flight: 0,
            deadlines: VecDeque::new(),
            timer: None,
            timer_at: None,
            done,
            resuming: false,
        });
        // The members not read this round (restarting, stopped, given up) settle at once; a
        // removed member is not requested at all.
        if read < n {
            for local in 0..n {
                let child = &self.children[local];
                if child.addr.is_none() && child.state != SensorState::Removed {
                    let down = Outcome::Unavailable(Absence::Down);
                    settle(cur, &mut self.children, &self.setup, local, down);
                }
            }
        }
        self.pump(ctx);
        self.complete_if_settled(ctx);
        Box::pin(result.into_actor(self).map(move |result, act, _ctx| {
            // Only when the round was dropped unfinished (a newer round began): every member is
            // counted unavailable.
            result.unwrap_or_else(|_| {
                let (members, removed) = (act.children.len(), act.children.len() - act.active());
                GroupRound::down(members, removed, act.setup.keep_outcomes, act.live())
            })
        }))
    }
}

/// Groups (by name) whose actor panics when asked to read a round, for the root's tests: each
/// entry `(group, round)` crashes once.
#[cfg(test)]
pub(crate) static CRASH_AT: std::sync::Mutex<Vec<(&'static str, u64)>> = std::sync::Mutex::new(Vec::new());

#[cfg(test)]
fn crash_if_scripted(name: &str, round: u64) {
    let mut crashes = CRASH_AT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(k) = crashes.iter().position(|&(group, at)| group == name && at == round) {
        crashes.swap_remove(k);
        drop(crashes);
        panic!("scripted crash of group {name} in round {round}");
    }
}

impl Handler<EndDecisions> for GroupSupervisor {
    type Result = ();

    fn handle(&mut self, _msg: EndDecisions, _ctx: &mut Context<Self>) {
        // Kept answers due by now settled before the run ends (none is kept between rounds).
        self.settle_due();
        self.ending = true;
    }
}

impl Handler<ReportStates> for GroupSupervisor {
    type Result = MessageResult<ReportStates>;

    fn handle(&mut self, msg: ReportStates, _ctx: &mut Context<Self>) -> Self::Result {
        // Kept answers due by now settled before the run ends (none is kept between rounds).
        self.settle_due();
        if msg.ending {
            self.ending = true;
            if self.current.is_none() {
                self.spare = Books::default();
            }
        }
        let states = self.children.iter().map(|c| (c.state, c.restarts)).collect();
        let standing = match (self.given_up, self.pending) {
            (true, _) => Standing::GivenUp,
            (false, true) => Standing::Waiting,
            (false, false) => Standing::Running,
        };
        MessageResult((states, standing))
    }
}

impl Handler<ChildEscalated> for GroupSupervisor {
    type Result = ();

    fn handle(&mut self, msg: ChildEscalated, ctx: &mut Context<Self>) {
        self.child_escalated(msg.position, &msg.name, ctx);
    }
}

impl Handler<Fate> for GroupSupervisor {
    type Result = ();

    fn handle(&mut self, msg: Fate, ctx: &mut Context<Self>) {
        self.fate(msg, ctx);
    }
}

impl Handler<StopGroup> for GroupSupervisor {
    type Result = ();

    fn handle(&mut self, _msg: StopGroup, ctx: &mut Context<Self>) {
        for local in 0..self.children.len() {
            self.stop_actor(local);
        }
        ctx.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Sample;

    /// What a sensor's record costs its group at a million sensors (docs/performance.md).
    #[test]
    fn a_child_record_is_64_bytes() {
        assert_eq!(size_of::<Child>(), 64);
    }

    /// An answer is ok exactly up to the read timeout; a microsecond later it is timed out,
    /// whatever it says.
    #[test]
    fn an_answer_later_than_the_read_timeout_is_timed_out() {
        let timeout = Duration::from_millis(120);
        let now = crate::clock::now();
        let ok = |latency| outcome(Ok(Sample::value(1.0)), latency, now, timeout);
        assert!(matches!(ok(timeout), Outcome::Ok(_)));
        assert_eq!(ok(timeout + Duration::from_micros(1)), Outcome::TimedOut);
        let failed = outcome(Err(ReadError::Failed("x".into())), timeout * 2, now, timeout);
        assert_eq!(failed, Outcome::TimedOut);
        let failed = outcome(Err(ReadError::Failed("x".into())), timeout, now, timeout);
        assert!(matches!(failed, Outcome::Failed { fatal: false, .. }));
    }
}
