//! Supervision: the root [`SensorSupervisor`] and the nested [`GroupSupervisor`]s.
//!
//! The root owns the run's [`SensorTable`] (every sensor's id and settings), starts one group
//! supervisor per `[[groups]]` entry and one shard per arbiter for the sensors that name no group
//! ([`layout`]), and schedules rounds on a drift-free grid ([`schedule`]): a round that overruns
//! makes the ticks it covered skip (counted), never a burst of catch-up rounds. Each round it
//! sends one [`ReadGroup`] to every group, passes their digests (and, when someone subscribed to
//! the readings, their outcomes in configuration order) to the aggregator in the
//! [`RoundReport`], and decides whether to go on. Groups build their sensors from the specs, read
//! them and restart them ([`group`]). Groups nest (`parent`): the root holds the tree and
//! passes each escalation to the escalated group's supervisor, a parent group
//! ([`ChildEscalated`]) or itself (the `[root]` intensity: restart the group, or give it up with
//! everything nested in it), and carries out the group restarts a parent decides
//! ([`RestartSubgroups`], [`Fate`]). A group actor that stops is started again by the root after
//! a backoff, or given up past the `[supervision]` intensity. The restart rules, shared by every
//! level, are plain values in [`restart`]; their semantics are in `docs/supervision.md`.
//! Sensors added and removed while the run goes on are the root's too ([`dynamic`]).

mod dynamic;
pub(crate) mod group;
mod layout;
mod restart;
mod schedule;

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use actix_rt::time::Instant;
use tokio::sync::oneshot;

pub(crate) use dynamic::{AddSensors, InspectSensor, JournalOutput, OperateSensor, RemoveSensor};
use group::{ChildEscalated, Fate, Standing};
pub(crate) use group::{GroupKind, GroupSetup, GroupSupervisor, Operation};
pub(crate) use layout::describe;
use restart::{GroupRestarts, RestartTracker};

use crate::aggregator::local::{LocalAggregator, ReportTracks};
use crate::aggregator::Aggregator;
use crate::aggregator::{Finish, RoundReport, SensorsStarted};
use crate::analysis::AnalysisConfig;
use crate::config::{CollectionConfig, GroupSpec, RestartPolicy, RootPolicy, SensorTable};
use crate::data::{Absence, Backoff, EventKind, Outcome, SupervisionEvent};
use crate::report::GroupSummary;
use crate::report::{Finished, SensorRow};
use group::{EndDecisions, GroupRound, ReadGroup, ReportStates, StopGroup};

/// Asks the supervisor to stop: no new rounds, settle the one in flight, flush, report.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub(crate) struct Shutdown;

/// A group exceeded its restart intensity and gives up: sent by the group to the root.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub(crate) struct Escalation {
    /// The group's position among the root's groups.
    pub(crate) group: usize,
    /// Why it escalated.
    pub(crate) cause: String,
    /// The group's `escalated` event, made when and in the round it escalated.
    pub(crate) event: SupervisionEvent,
}

/// A group restarts some of its child groups (by its strategy, after one of them escalated or
/// one of its sensors failed): sent by the group to the root, which holds the child groups.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub(crate) struct RestartSubgroups {
    /// The group's slot.
    pub(crate) group: usize,
    /// The child groups that restart: positions among the group's child groups, in order.
    pub(crate) positions: Vec<usize>,
    /// The position of the child group that failed, if it was one (not a sensor).
    pub(crate) failed: Option<usize>,
    /// The restart's delay, and how it was chosen.
    pub(crate) delay: Duration,
    /// The backoff behind `delay`.
    pub(crate) backoff: Backoff,
    /// Why the others stop (`one_for_all: restarting with group bus-a`).
    pub(crate) cause: String,
}

pub(crate) use crate::data::SensorState;

/// Logs a journal event at `level`: `<sensor>: <event> (<cause>)`, or `... in <delay> ms`.
fn log_event(level: log::Level, e: &SupervisionEvent) {
    let (sensor, event) = (e.subject(), e.event.as_str());
    match (&e.cause, e.delay) {
        (Some(cause), _) => log::log!(level, "{sensor}: {event} ({cause})"),
        (None, Some(d)) => log::log!(level, "{sensor}: {event} in {} ms", d.as_millis()),
        (None, None) => log::log!(level, "{sensor}: {event}"),
    }
}
use schedule::Schedule;

/// What the root keeps per group: its spec (to start it again) and its supervision state.
struct GroupSlot {
    name: Arc<str>,
    /// Sensor indices of the group's members, in the group's order.
    members: Arc<[usize]>,
    /// Its arbiter's aggregator, in `locals`: it keeps the group's analysis.
    local: usize,
    /// How to build the group: kept to start it again after it stopped.
    setup: GroupSetup,
    /// The arbiter it runs on; `None`: the root's own.
    arbiter: Option<ArbiterHandle>,
    /// The group actor; asked every round, told to stop at the end, replaced on a restart.
    addr: Addr<GroupSupervisor>,
    /// Whether any member was running or restarting after the last round.
    live: bool,
    state: GroupState,
    /// Restarts of the group actor by the root, and of the group as a whole by its supervisor.
    restarts: u32,
    /// Those restarts within the intensity window, and the backoff's jitter draws.
    tracker: GroupRestarts,
    /// The group it is nested in (a slot); `None`: the root supervises it.
    parent: Option<usize>,
    /// The groups nested in it (slots), in configuration order.
    subgroups: Vec<usize>,
    /// Bumped with every decision about the group as a whole: a restart scheduled before a
    /// later decision is not carried out.
    epoch: u64,
    /// The root's restarts of the group after it escalated (top-level groups): the `[root]`
    /// intensity and backoff.
    escalations: RestartTracker,
}

/// The root's view of a group actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GroupState {
    Running,
    /// Its actor stopped; a new one starts after a backoff.
    Restarting,
    /// It escalated, or an ancestor did: stopped until its supervisor decides.
    Down,
    /// It escalated (its own intensity exceeded, or an ancestor's) and was given up: its
    /// sensors are unavailable to the end.
    Escalated,
    /// Its actor stopped more often than the root's intensity allows: given up.
    Failed,
}

/// The root supervisor actor.
pub(crate) struct SensorSupervisor {
    sensors: Arc<SensorTable>,
    groups_config: Vec<GroupSpec>,
    collection: CollectionConfig,
    seed: u64,
    /// The detectors' settings, handed to every group.
    analysis: Arc<AnalysisConfig>,
    /// Whether the groups send their outcomes too (see [`RootSetup::keep_outcomes`]).
    keep_outcomes: bool,
    /// Whether anyone reads the anomalies (see [`RootSetup::list_anomalies`]).
    list_anomalies: bool,
    groups: Vec<GroupSlot>,
    /// The aggregators of the arbiters, one per arbiter used, with their groups' analysis;
    /// they live as long as the run (they hold no address but their groups').
    locals: Vec<Addr<LocalAggregator>>,
    /// Receives round reports, journal events and the final `Finish`.
    aggregator: Addr<Aggregator>,
    /// Arbiters the groups (and so their sensors) are spread over; empty means the root's own.
    /// With two or more, the first one also runs the root aggregator and the last one is the
    /// calling thread, where subscribers run: its shard is the smaller one when the readings are
    /// published (`layout::WRITER_ARBITER_SHARE`).
    arbiters: Vec<ArbiterHandle>,
    schedule: Schedule,
    /// When tick 0 was; set when the first round starts.
    t0: Option<Instant>,
    /// Rounds started so far (the number of the current or last round).
    round: u64,
    /// Tick of the current or last round.
    tick: u64,
    skipped: u64,
    /// Ticks skipped just before the round in flight (reported with it).
    skipped_before: u64,
    /// Whether the groups' members, group after group, are the sensors in configuration order
    /// (no `[[groups]]`: the shards): the groups' batches are then the round's outcomes as they
    /// are, with no copy into one vector.
    in_order: bool,
    /// Completes when the aggregator has processed the last report (with its batches back);
    /// the next report waits for it.
    report_processed: Option<oneshot::Receiver<Vec<Vec<Outcome>>>>,
    /// Outcome vectors of an analysed round, for the next round to overwrite: one per group
    /// when `in_order`, else the one merged vector.
    spare: Vec<Vec<Outcome>>,
    /// The pending next-round timer; cancelled on shutdown.
    next_round: Option<SpawnHandle>,
    in_flight: bool,
    stopping: bool,
    /// The `[supervision]` defaults, for restarting group actors.
    policy: RestartPolicy,
    /// The `[root]` intensity, for restarting escalated groups.
    root_policy: RootPolicy,
    /// Why groups were given up after their actor stopped too often: the run then ends with
    /// this failure, after collecting what it could.
    lost: Vec<String>,
    /// Where the summary goes when the run ends; taken once.
    done: Option<oneshot::Sender<Finished>>,
    /// What adding and removing sensors while the run goes on needs (`dynamic.rs`).
    roster: dynamic::Roster,
}

/// Everything the root supervisor is built from, besides its peers.
pub(crate) struct RootSetup {
    /// Every sensor of the run.
    pub sensors: Arc<SensorTable>,
    /// The `[[groups]]` entries.
    pub groups: Vec<GroupSpec>,
    /// Rounds, deadlines and caps.
    pub collection: CollectionConfig,
    /// The `[supervision]` defaults: the root's intensity and backoff for restarting a group
    /// actor that stopped.
    pub policy: RestartPolicy,
    /// The `[root]` intensity and backoff for a top-level group that escalated.
    pub root_policy: RootPolicy,
    /// The run's seed.
    pub seed: u64,
    /// The detectors' settings, for the groups' analysis.
    pub analysis: Arc<AnalysisConfig>,
    /// Whether every round's outcomes go to the aggregator besides the groups' digests (it
    /// writes `readings.jsonl`).
    pub keep_outcomes: bool,
    /// Whether someone subscribed to the anomalies: else the analysis only counts them (no
    /// detail is made), unless their debug log is on.
    pub list_anomalies: bool,
    /// Arbiters the groups (and so their sensors) are spread over; empty means the root's own.
    pub arbiters: Vec<ArbiterHandle>,
    /// The drivers a sensor added while the run goes on may name (the collector's).
    pub drivers: crate::driver::DriverRegistry,
}

impl SensorSupervisor {
    /// A supervisor for `setup`'s sensors; it starts them when it starts, sends round reports
    /// and journal events to `aggregator`, and reports the summary on `done`.
    pub(crate) fn new(setup: RootSetup, aggregator: Addr<Aggregator>, done: oneshot::Sender<Finished>) -> Self {
        SensorSupervisor {
            schedule: Schedule::new(setup.collection.interval),
            sensors: setup.sensors,
            groups_config: setup.groups,
            collection: setup.collection,
            seed: setup.seed,
            analysis: setup.analysis,
            keep_outcomes: setup.keep_outcomes,
            list_anomalies: setup.list_anomalies,
            groups: Vec::new(),
            locals: Vec::new(),
            aggregator,
            arbiters: setup.arbiters,
            t0: None,
            round: 0,
            tick: 0,
            skipped: 0,
            skipped_before: 0,
            report_processed: None,
            spare: Vec::new(),
            in_order: false,
            next_round: None,
            in_flight: false,
            stopping: false,
            policy: setup.policy,
            root_policy: setup.root_policy,
            lost: Vec::new(),
            done: Some(done),
            roster: dynamic::Roster::new(setup.drivers),
        }
    }

    /// Starts a group actor from its spec, on its arbiter.
    fn start_group(setup: GroupSetup, arbiter: Option<&ArbiterHandle>) -> Addr<GroupSupervisor> {
        match arbiter {
            None => GroupSupervisor::new(setup).start(),
            Some(arbiter) => GroupSupervisor::start_in_arbiter(arbiter, move |_| GroupSupervisor::new(setup)),
        }
    }

    fn start_groups(&mut self, ctx: &mut Context<Self>) {
        let journal = self.aggregator.clone().recipient::<SupervisionEvent>();
        let started = self.aggregator.clone().recipient::<SensorsStarted>();
        let root = ctx.address().recipient::<Escalation>();
        let subgroup_restarts = ctx.address().recipient::<RestartSubgroups>();
        let plan = layout::plan(
            &self.sensors,
            &self.groups_config,
            self.arbiters.len(),
            self.keep_outcomes,
        );
        let subgroups_of: Vec<Vec<usize>> = (0..plan.len())
            .map(|k| (0..plan.len()).filter(|&c| plan[c].parent == Some(k)).collect())
            .collect();
        let plan: Vec<_> = plan
            .into_iter()
            .map(|p| (p.name, p.kind, Arc::<[usize]>::from(p.members), p.arbiter, p.parent))
            .collect();
        // One aggregator per arbiter used, beside its groups, with their analysis.
        let mut on_arbiter: Vec<Vec<(usize, Arc<[usize]>)>> = Vec::new();
        for (slot, (_, _, members, arbiter, _)) in plan.iter().enumerate() {
            if on_arbiter.len() <= *arbiter {
                on_arbiter.resize_with(arbiter + 1, Vec::new);
            }
            on_arbiter[*arbiter].push((slot, members.clone()));
        }
        self.locals = on_arbiter
            .into_iter()
            .enumerate()
            .map(|(k, groups)| {
                let (sensors, analysis) = (self.sensors.clone(), self.analysis.clone());
                let (keep, list) = (self.keep_outcomes, self.list_anomalies);
                let build = move || LocalAggregator::new(sensors, analysis, keep, list, groups);
                match self.arbiters.get(k) {
                    None => build().start(),
                    Some(arbiter) => LocalAggregator::start_in_arbiter(arbiter, move |_| build()),
                }
            })
            .collect();
        // Jitter draws: the sensors' first, then the group actors' stops (`n + k`), the root's
        // restarts of escalated groups (`n + groups + k`), then child groups' restarts.
        let (n, count) = (self.sensors.len(), plan.len());
        let now = Instant::now();
        for (slot, ((name, kind, members, arbiter, parent), subgroups)) in
            plan.into_iter().zip(subgroups_of).enumerate()
        {
            let setup = GroupSetup {
                slot,
                name: name.clone(),
                kind,
                sensors: self.sensors.clone(),
                members: members.clone(),
                removed: Arc::from([]),
                seed: self.seed,
                analysis: self.locals[arbiter].clone().recipient(),
                keep_outcomes: self.keep_outcomes,
                read_timeout: self.collection.read_timeout,
                max_in_flight: self.collection.max_in_flight,
                journal_timeouts: self.collection.journal == crate::config::JournalDetail::Verbose,
                journal: journal.clone(),
                started: started.clone(),
                root: root.clone(),
                subgroup_restarts: subgroup_restarts.clone(),
                subgroups: subgroups.clone().into(),
                group_policy: self.policy.clone(),
                jitter_base: n + 2 * count,
                final_escalation: parent.is_none() && self.root_policy.max_restarts == 0,
            };
            let addr = Self::start_group(setup.clone(), self.arbiters.get(arbiter));
            self.groups.push(GroupSlot {
                name,
                members,
                local: arbiter,
                setup,
                arbiter: self.arbiters.get(arbiter).cloned(),
                addr,
                live: true,
                state: GroupState::Running,
                restarts: 0,
                tracker: GroupRestarts::default(),
                parent,
                subgroups,
                epoch: 0,
                escalations: RestartTracker::new(now),
            });
        }
        self.in_order = self.members_in_order();
    }

    fn start_round(&mut self, ctx: &mut Context<Self>) {
        self.next_round = None;
        if self.stopping {
            return;
        }
        let now = Instant::now();
        let t0 = *self.t0.get_or_insert(now);
        self.round += 1;
        self.in_flight = true;
        let round = self.round;
        // Every group is asked first, then the answers are awaited in order: each group bounds
        // its own round by the per-read deadlines, so no extra timeout is needed here.
        let mut spare = if self.in_order {
            std::mem::take(&mut self.spare).into_iter()
        } else {
            Vec::new().into_iter()
        };
        let requests: Vec<_> = self
            .groups
            .iter()
            .map(|g| {
                let reuse = spare.next().unwrap_or_default();
                g.addr.send(ReadGroup { round, reuse })
            })
            .collect();
        let previous_report = self.report_processed.take();
        let gather = async move {
            let mut replies = Vec::with_capacity(requests.len());
            for request in requests {
                replies.push(request.await);
            }
            // The aggregator handles the previous round's report meanwhile; wait for it before
            // reporting this round, so reports never pile up.
            let mut emptied = Vec::new();
            if let Some(processed) = previous_report {
                emptied = processed.await.unwrap_or_default();
            }
            (replies, emptied)
        };
        ctx.spawn(gather.into_actor(self).map(move |(replies, emptied), act, ctx| {
            act.spare = emptied;
            act.finish_round(round, now, t0, replies, ctx);
        }));
    }

    fn finish_round(
        &mut self,
        round: u64,
        started: Instant,
        t0: Instant,
        replies: Vec<Result<GroupRound, MailboxError>>,
        ctx: &mut Context<Self>,
    ) {
        self.in_flight = false;
        let now = Instant::now();
        let n = self.sensors.len();
        let mut batches = Vec::with_capacity(self.groups.len());
        let mut digests = Vec::with_capacity(self.groups.len());
        let mut names = Vec::with_capacity(self.groups.len());
        let mut stopped = Vec::new();
        for (k, (group, reply)) in self.groups.iter_mut().zip(replies).enumerate() {
            let reply = reply.unwrap_or_else(|e| {
                // Its members are counted unavailable; a group that was running is restarted.
                if group.state == GroupState::Running {
                    log::error!("group {} did not answer round {round}: {e}", group.name);
                    stopped.push((k, e.to_string()));
                }
                let live = matches!(
                    group.state,
                    GroupState::Running | GroupState::Restarting | GroupState::Down
                );
                GroupRound::down(group.members.len(), group.setup.removed.len(), self.keep_outcomes, live)
            });
            group.live = reply.live
                && matches!(
                    group.state,
                    GroupState::Running | GroupState::Restarting | GroupState::Down
                );
            batches.push(reply.outcomes);
            digests.push(reply.digest);
            names.push((group.name.clone(), matches!(group.setup.kind, GroupKind::Shard)));
        }
        for (k, cause) in stopped {
            self.group_stopped(k, cause, ctx);
        }
        let outcomes = if !self.keep_outcomes {
            Vec::new()
        } else if self.in_order {
            batches
        } else {
            let mut merged = std::mem::take(&mut self.spare).pop().unwrap_or_default();
            merged.clear();
            merged.resize(n, Outcome::Unavailable(Absence::Down));
            for (group, theirs) in self.groups.iter().zip(batches) {
                for (&index, outcome) in group.members.iter().zip(theirs) {
                    merged[index] = outcome;
                }
            }
            vec![merged]
        };
        let (next, skipped) = self.schedule.next_after(self.tick, now - t0);
        let (processed, report_processed) = oneshot::channel();
        self.report_processed = Some(report_processed);
        self.aggregator.do_send(RoundReport {
            round,
            wall: now - started,
            skipped_before: self.skipped_before,
            processed: Some(processed),
            digests,
            groups: names,
            outcomes,
        });
        // A run that has no sensor yet (its sensors are to be discovered, or its shard is
        // empty) waits for some; one whose every sensor has stopped ends.
        let all_done = n > 0 && self.groups.iter().all(|g| !g.live);
        let rounds_done = self.collection.rounds.is_some_and(|n| round >= n);
        let next_at = self.schedule.offset(next).max(now - t0);
        let time_done = self.collection.duration.is_some_and(|d| next_at >= d);
        if self.stopping || rounds_done || time_done || all_done {
            if all_done {
                log::info!("every sensor has stopped or was given up; ending the run");
            }
            self.finish(ctx);
            return;
        }
        self.skipped += skipped;
        self.skipped_before = skipped;
        if skipped > 0 {
            log::warn!("round {round} overran the interval: {skipped} tick(s) skipped");
        }
        self.tick = next;
        let delay = (t0 + self.schedule.offset(next)).saturating_duration_since(now);
        // A zero delay (`--interval 0s`, or a round that ended right on a tick) starts the next
        // round at once: a timer would round it up to the timer wheel's 1 ms resolution.
        self.next_round = Some(if delay.is_zero() {
            ctx.spawn(actix::fut::ready(()).map(|(), act: &mut Self, ctx| act.start_round(ctx)))
        } else {
            ctx.run_later(delay, |act, ctx| act.start_round(ctx))
        });
    }

    /// Group `k`'s actor stopped (a bug or a panic in it): journal it, then start it again from
    /// its spec after a backoff, or give it up when it stopped more than `max_restarts` times
    /// within `within` (the `[supervision]` defaults).
    fn group_stopped(&mut self, k: usize, cause: String, ctx: &mut Context<Self>) {
        let now = Instant::now();
        let n = self.sensors.len();
        let name = self.groups[k].name.clone();
        let cause = format!("group stopped: {cause}");
        self.journal(name.clone(), EventKind::Failed, Some(cause), None, None, None);
        let group = &mut self.groups[k];
        // The jitter is drawn per group, after the sensors' draws (indices `n` and up).
        match group.tracker.record_stop(now, &self.policy, self.seed, n + k) {
            ControlFlow::Continue((delay, backoff)) => {
                group.state = GroupState::Restarting;
                let restarts = group.restarts;
                self.journal(
                    name,
                    EventKind::RestartScheduled,
                    None,
                    Some(delay),
                    Some(restarts),
                    Some(backoff),
                );
                ctx.run_later(delay, move |act, _ctx| act.restart_group(k));
            }
            // Stopped too often: the group is lost, and the run will end saying so.
            ControlFlow::Break(reason) => {
                group.state = GroupState::Failed;
                group.live = false;
                let (restarts, cause) = (group.restarts, reason.to_string());
                self.lost.push(format!("group {name} {cause}"));
                self.journal(name, EventKind::GaveUp, Some(cause), None, Some(restarts), None);
            }
        }
    }

    fn restart_group(&mut self, k: usize) {
        let group = &mut self.groups[k];
        if self.stopping || group.state != GroupState::Restarting {
            return;
        }
        group.addr = Self::start_group(group.setup.clone(), group.arbiter.as_ref());
        group.state = GroupState::Running;
        group.restarts += 1;
        let (name, restarts) = (group.name.clone(), group.restarts);
        self.journal(name, EventKind::Restarted, None, None, Some(restarts), None);
    }

    /// Journals a group's event (and logs it).
    fn journal(
        &self,
        group: Arc<str>,
        event: EventKind,
        cause: Option<String>,
        delay: Option<Duration>,
        restarts: Option<u32>,
        backoff: Option<Backoff>,
    ) {
        let event = SupervisionEvent {
            timestamp: crate::clock::now(),
            round: self.round,
            sensor: None,
            group: Some(group),
            output: None,
            event,
            cause,
            delay,
            restarts,
            backoff,
        };
        log_event(log::Level::Warn, &event);
        self.aggregator.do_send(event);
    }

    /// Ends the run: every group stops deciding, then the sensors' final states are collected,
    /// the aggregator asked for the summary, which is passed on, and every group stopped.
    fn finish(&mut self, ctx: &mut Context<Self>) {
        self.stopping = true;
        if let Some(timer) = self.next_round.take() {
            ctx.cancel_future(timer);
        }
        // No round follows: the outcome vectors kept for the next one go before the summary
        // is built (the groups free theirs when asked for their states).
        self.spare = Vec::new();
        // An escalation on its way as the run ends reaches the root before the states are
        // taken: each group answers once it decides nothing more, after any escalation it sent,
        // and the root reads its mailbox before it goes on with this. A give-up the root then
        // records for it reaches the groups nested in it before they are asked for their states.
        let quiet: Vec<_> = self.groups.iter().map(|g| g.addr.send(EndDecisions)).collect();
        let all_quiet = async move {
            for group in quiet {
                let _ = group.await;
            }
        };
        ctx.spawn(all_quiet.into_actor(self).map(|(), act, ctx| act.report(ctx)));
    }

    /// Collects the sensors' final states once no group decides any more, asks the aggregator
    /// for the summary, passes it on and stops every group.
    fn report(&mut self, ctx: &mut Context<Self>) {
        let requests: Vec<_> = self
            .groups
            .iter()
            .map(|g| {
                let states = g.addr.send(ReportStates { ending: true });
                (g.members.clone(), g.addr.clone(), states, self.locals[g.local].clone())
            })
            .collect();
        let mut groups: Vec<GroupSummary> = self
            .groups
            .iter()
            .map(|g| {
                let (strategy, shard) = match &g.setup.kind {
                    GroupKind::Configured { strategy, .. } => (*strategy, false),
                    GroupKind::Shard => (crate::config::GroupStrategy::OneForOne, true),
                };
                GroupSummary {
                    name: g.name.to_string(),
                    strategy: strategy.as_str().to_string(),
                    shard,
                    parent: g.parent.map(|p| self.groups[p].name.to_string()),
                    state: match g.state {
                        GroupState::Running => "running",
                        GroupState::Restarting => "restarting",
                        GroupState::Down => "stopped",
                        GroupState::Escalated => "escalated",
                        GroupState::Failed => "given_up",
                    }
                    .to_string(),
                    restarts: g.restarts,
                    sensors: g.members.len() as u64,
                }
            })
            .collect();
        let aggregator = self.aggregator.clone();
        let (seed, skipped_rounds, n) = (self.seed, self.skipped, self.sensors.len());
        let removed = self.roster.removed();
        let drivers = self.roster.drivers.clone();
        let report = async move {
            // A row per sensor, in place: a million sensors' results are gathered once.
            let mut sensors = vec![SensorRow::default(); n];
            // Removed sensors say so, even in a group whose actor was lost.
            for index in removed {
                sensors[index].state = SensorState::Removed;
            }
            let mut answers = Vec::with_capacity(requests.len());
            for (k, (members, group, states, local)) in requests.into_iter().enumerate() {
                let states = states.await;
                // Its states are taken: the group and its sensors stop now, so that their
                // memory is free before the per-sensor results are gathered and the summary (a
                // record per sensor) is made.
                group.do_send(StopGroup);
                if let Ok((states, standing)) = states {
                    for (&index, (state, restarts)) in members.iter().zip(states) {
                        (sensors[index].state, sensors[index].restarts) = (state, restarts);
                    }
                    // It escalated as the run ended, after the root took its view.
                    if groups[k].state == "running" {
                        match standing {
                            Standing::Waiting => groups[k].state = "stopped".to_string(),
                            Standing::GivenUp => groups[k].state = "escalated".to_string(),
                            Standing::Running => {}
                        }
                    }
                }
                answers.push((members, local, k));
            }
            // One group's results at a time (asked for after its sensors were told to stop, so
            // that its arbiter drops them first), each moved into place and freed.
            for (members, local, k) in answers {
                match local.send(ReportTracks { group: k }).await {
                    Ok(summaries) => {
                        for (&index, summary) in members.iter().zip(summaries) {
                            sensors[index].track = summary;
                        }
                    }
                    Err(e) => log::error!("a group did not report its analysis: {e}"),
                }
            }
            aggregator
                .send(Finish {
                    seed,
                    skipped_rounds,
                    sensors,
                    groups,
                    // After the last round: what the drivers counted over the run.
                    drivers: drivers.counts(),
                })
                .await
        };
        ctx.spawn(report.into_actor(self).map(|reply, act, ctx| {
            match (reply, act.done.take()) {
                (Ok(mut finished), Some(done)) => {
                    finished.failure = (!act.lost.is_empty()).then(|| act.lost.join("; "));
                    let _ = done.send(finished);
                }
                // Dropping `done` tells `run` the summary is lost.
                (Err(e), _) => log::error!("the aggregator did not report: {e}"),
                (Ok(_), None) => {}
            }
            ctx.stop();
        }));
    }
}

impl Actor for SensorSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.start_groups(ctx);
        // Round 1 waits until every group has started its sensors (a group answers after its
        // own start): with groups on several arbiters, one must not be read while another is
        // still spawning, which would make round 1 as long as the slowest start.
        let ready: Vec<_> = self
            .groups
            .iter()
            .map(|g| g.addr.send(ReportStates { ending: false }))
            .collect();
        let all_ready = async move {
            for group in ready {
                let _ = group.await;
            }
        };
        ctx.spawn(all_ready.into_actor(self).map(|(), act, ctx| {
            log::info!(
                "started {} sensor actors in {} group(s)",
                act.sensors.len(),
                act.groups.len()
            );
            act.start_round(ctx);
        }));
    }
}

impl Handler<Escalation> for SensorSupervisor {
    type Result = ();

    fn handle(&mut self, msg: Escalation, ctx: &mut Context<Self>) {
        let x = msg.group;
        // An escalation that crossed a decision about the group (an ancestor's escalation
        // stopped it, or the root gave it up, before the group heard of it) is moot: it is not
        // journaled, so the group's own journal ends on that decision.
        if self.groups.get(x).is_none_or(|g| g.state != GroupState::Running) {
            return;
        }
        log_event(log::Level::Info, &msg.event);
        self.aggregator.do_send(msg.event);
        let top = self.groups[x].parent.is_none();
        // As the run ends nothing is decided any more, but a decision that was sure is
        // recorded: a top-level group that the root gives up at once (its members said so),
        // with every group nested in it (their states are taken after this; see `finish`).
        if self.stopping {
            if top && self.root_policy.max_restarts == 0 {
                self.give_up(x, format!("escalated: {}", msg.cause));
            }
            return;
        }
        // The groups nested in it stop with it, until its supervisor decides.
        let stopped = format!("group {} escalated: {}", self.groups[x].name, msg.cause);
        for d in self.subtree(x) {
            let group = &mut self.groups[d];
            let was = std::mem::replace(&mut group.state, GroupState::Down);
            group.epoch += 1;
            if d != x {
                let (name, addr) = (group.name.clone(), group.addr.clone());
                if was != GroupState::Down {
                    self.journal(name, EventKind::Stopped, Some(stopped.clone()), None, None, None);
                }
                let cause = stopped.clone();
                addr.do_send(Fate::Stop { cause, restart: None });
            }
        }
        // A nested group is its parent's child: the parent decides.
        if let Some(p) = self.groups[x].parent {
            let position = self.groups[p].subgroups.iter().position(|&c| c == x).unwrap_or(0);
            let name = self.groups[x].name.clone();
            self.groups[p].addr.do_send(ChildEscalated { position, name });
            return;
        }
        // A top-level group: the root's own intensity.
        let cause = format!("escalated: {}", msg.cause);
        if self.root_policy.max_restarts == 0 {
            return self.give_up(x, cause);
        }
        let (n, count) = (self.sensors.len(), self.groups.len());
        let policy = self.root_policy.as_restart_policy();
        let decision = self.groups[x]
            .escalations
            .record_restart(Instant::now(), &policy, self.seed, n + count + x);
        match decision {
            ControlFlow::Continue((delay, backoff)) => {
                self.groups[x].escalations.started(Instant::now() + delay);
                self.restart_subgroups(&[x], Some(x), delay, backoff, String::new(), ctx);
            }
            ControlFlow::Break(reason) => self.give_up(x, format!("{cause} (root: {reason})")),
        }
    }
}

impl Handler<RestartSubgroups> for SensorSupervisor {
    type Result = ();

    fn handle(&mut self, msg: RestartSubgroups, ctx: &mut Context<Self>) {
        let Some(parent) = self.groups.get(msg.group) else {
            return;
        };
        let slots: Vec<usize> = msg
            .positions
            .iter()
            .filter_map(|&p| parent.subgroups.get(p).copied())
            .collect();
        let failed = msg.failed.and_then(|p| parent.subgroups.get(p).copied());
        self.restart_subgroups(&slots, failed, msg.delay, msg.backoff, msg.cause, ctx);
    }
}

impl SensorSupervisor {
    /// Group `x` and every group nested in it, at any depth, `x` first, parents before their
    /// children.
    fn subtree(&self, x: usize) -> Vec<usize> {
        let mut all = vec![x];
        let mut k = 0;
        while k < all.len() {
            all.extend(self.groups[all[k]].subgroups.iter().copied());
            k += 1;
        }
        all
    }

    /// Restarts the groups `slots` (with everything nested in them) after `delay`: each is
    /// journaled `restart_scheduled`, those that were running but `failed` `stopped` first
    /// (with `cause`, or `group X restarting` for a nested one), and each group stops its
    /// members until then. A group given up or lost is left as it is.
    fn restart_subgroups(
        &mut self,
        slots: &[usize],
        failed: Option<usize>,
        delay: Duration,
        backoff: Backoff,
        cause: String,
        ctx: &mut Context<Self>,
    ) {
        if self.stopping {
            return;
        }
        let mut due = Vec::new();
        for &g in slots {
            if matches!(self.groups[g].state, GroupState::Escalated | GroupState::Failed) {
                continue;
            }
            let name = self.groups[g].name.clone();
            // The group and everything nested in it: each journaled `stopped` if it ran (a
            // group that escalated said so already), then `restart_scheduled`; then each
            // group stops its members until the delay has passed.
            for d in self.subtree(g) {
                let (own, was, restarts) = {
                    let group = &self.groups[d];
                    (group.name.clone(), group.state, group.restarts)
                };
                let cause = if d == g {
                    cause.clone()
                } else {
                    format!("group {name} restarting")
                };
                if Some(d) != failed && was == GroupState::Running {
                    self.journal(own.clone(), EventKind::Stopped, Some(cause.clone()), None, None, None);
                }
                self.journal(
                    own,
                    EventKind::RestartScheduled,
                    None,
                    Some(delay),
                    Some(restarts),
                    Some(backoff),
                );
                let group = &mut self.groups[d];
                group.state = GroupState::Restarting;
                group.epoch += 1;
                let restart = Some((delay, backoff));
                group.addr.do_send(Fate::Stop { cause, restart });
                due.push((d, group.epoch));
            }
        }
        ctx.run_later(delay, move |act, _ctx| {
            for (d, epoch) in due {
                let group = &mut act.groups[d];
                if act.stopping || group.epoch != epoch || group.state != GroupState::Restarting {
                    continue;
                }
                group.state = GroupState::Running;
                group.restarts += 1;
                let (name, restarts, addr) = (group.name.clone(), group.restarts, group.addr.clone());
                act.journal(name, EventKind::Restarted, None, None, Some(restarts), None);
                addr.do_send(Fate::Start);
            }
        });
    }

    /// Gives group `x` up, with everything nested in it: `gave_up` for each (`cause` for `x`),
    /// and their members given up.
    fn give_up(&mut self, x: usize, cause: String) {
        let name = self.groups[x].name.clone();
        for d in self.subtree(x) {
            let group = &mut self.groups[d];
            group.state = GroupState::Escalated;
            group.live = false;
            group.epoch += 1;
            let (own, restarts) = (group.name.clone(), group.restarts);
            let why = if d == x {
                cause.clone()
            } else {
                format!("group {name} given up")
            };
            let addr = group.addr.clone();
            self.journal(
                own.clone(),
                EventKind::GaveUp,
                Some(why.clone()),
                None,
                Some(restarts),
                None,
            );
            addr.do_send(Fate::GiveUp {
                cause: format!("group {own} given up: {why}"),
            });
        }
    }
}

impl Handler<Shutdown> for SensorSupervisor {
    type Result = ();

    fn handle(&mut self, _msg: Shutdown, ctx: &mut Context<Self>) {
        if self.stopping {
            return;
        }
        log::info!(
            "shutting down: {}",
            if self.in_flight {
                "settling the round in flight"
            } else {
                "no round in flight"
            }
        );
        if self.in_flight {
            self.stopping = true;
            if let Some(timer) = self.next_round.take() {
                ctx.cancel_future(timer);
            }
        } else {
            self.finish(ctx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::group::CRASH_AT;
    use super::*;

    /// An event as `(event, cause, delay, restarts)`.
    type Entry = (EventKind, Option<String>, Option<Duration>, Option<u32>);

    /// The events of `group` in `journal`.
    fn group_events(journal: &[crate::data::SupervisionEvent], group: &str) -> Vec<Entry> {
        journal
            .iter()
            .filter(|e| e.sensor.is_none() && e.group.as_deref() == Some(group))
            .map(|e| (e.event, e.cause.clone(), e.delay, e.restarts))
            .collect()
    }

    /// Collects the journal of a run.
    struct JournalLog(Arc<std::sync::Mutex<Vec<crate::data::SupervisionEvent>>>);
    impl Actor for JournalLog {
        type Context = Context<Self>;
    }
    impl Handler<crate::streams::Journal> for JournalLog {
        type Result = ();
        fn handle(&mut self, j: crate::streams::Journal, _: &mut Context<Self>) {
            self.0.lock().unwrap().extend(j.iter());
        }
    }

    const GROUPED: &str = r#"
[collection]
interval = "1s"
read_timeout = "500ms"
rounds = 10
seed = 1
[supervision]
max_restarts = 1
within = "10s"
backoff_min = "1500ms"
backoff_max = "1500ms"
[[groups]]
name = "NAME"
strategy = "one_for_all"
[[sensors]]
count = 4
latency = ["10ms", "10ms"]
error_rate = 0.0
[[sensors]]
name = "bus"
group = "NAME"
count = 2
latency = ["10ms", "10ms"]
error_rate = 0.0
"#;

    /// Runs the grouped configuration with group `name` crashing in `rounds`; returns the run's
    /// result and its journal.
    async fn crash_group(
        name: &'static str,
        rounds: &[u64],
    ) -> (
        Result<crate::Summary, crate::RunError>,
        Vec<crate::data::SupervisionEvent>,
    ) {
        CRASH_AT.lock().unwrap().extend(rounds.iter().map(|&r| (name, r)));
        let journal = Arc::new(std::sync::Mutex::new(Vec::new()));
        let collector = crate::Collector::new().subscribe_with(
            JournalLog(journal.clone()).start().recipient(),
            crate::streams::Delivery::lossless(),
        );
        let config = collector.parse(&GROUPED.replace("NAME", name), "grouped.toml").unwrap();
        let result = collector.run(config, std::future::pending()).await;
        let journal = journal.lock().unwrap().clone();
        (result, journal)
    }

    /// A group actor that panics in round 3 is restarted by the root after its backoff
    /// (1.5 s): its two sensors are unavailable in rounds 3 and 4 (the restart lands at 3.5 s)
    /// and read again from round 5, their statistics carried over; the journal says `failed`,
    /// `restart_scheduled` and `restarted` for the group, and the run ends normally with every
    /// read accounted for.
    #[actix_rt::test]
    async fn a_group_that_stops_is_restarted_by_the_root() {
        tokio::time::pause();
        let (result, journal) = crash_group("bus-once", &[3]).await;
        let summary = result.unwrap();
        assert_eq!(summary.reads.requested, 60);
        assert_eq!((summary.reads.ok, summary.reads.unavailable), (56, 4));
        let events = group_events(&journal, "bus-once");
        assert_eq!(events.len(), 3, "{events:?}");
        assert_eq!(events[0].0, EventKind::Failed);
        assert!(
            events[0].1.as_deref().unwrap().starts_with("group stopped: "),
            "{events:?}"
        );
        assert_eq!(
            events[1],
            (
                EventKind::RestartScheduled,
                None,
                Some(Duration::from_millis(1500)),
                Some(0)
            )
        );
        assert_eq!(events[2], (EventKind::Restarted, None, None, Some(1)));
        let bus = summary
            .sensors
            .iter()
            .filter(|s| s.id.starts_with("bus"))
            .collect::<Vec<_>>();
        assert!(bus.iter().all(|s| s.state == "running"), "{bus:?}");
    }

    /// A group actor that stops again within the root's intensity (max_restarts = 1 within
    /// 10 s) is given up: its sensors are unavailable from round 6 to the end, the other
    /// sensors are read every round, the journal ends the group with `gave_up`, and the run
    /// ends with `RunError::Failed` naming the group, with the complete summary.
    #[actix_rt::test]
    async fn a_group_that_stops_too_often_is_given_up_and_the_run_fails() {
        tokio::time::pause();
        let (result, journal) = crash_group("bus-twice", &[3, 6]).await;
        let (reason, summary) = match result {
            Err(crate::RunError::Failed { reason, summary }) => (reason, summary),
            other => panic!("expected a failed run, got {other:?}"),
        };
        assert_eq!(reason, "group bus-twice stopped more than 1 times within 10s");
        assert_eq!(summary.rounds, 10);
        assert_eq!(summary.reads.requested, 60);
        // Rounds 3 and 4 (restarting), then 6 to 10 (given up): 2 sensors each.
        assert_eq!((summary.reads.ok, summary.reads.unavailable), (46, 14));
        let events: Vec<EventKind> = group_events(&journal, "bus-twice").iter().map(|e| e.0).collect();
        use EventKind::*;
        assert_eq!(events, [Failed, RestartScheduled, Restarted, Failed, GaveUp]);
        let bus = summary
            .sensors
            .iter()
            .filter(|s| s.id.starts_with("bus"))
            .collect::<Vec<_>>();
        assert!(bus.iter().all(|s| s.state == "given_up"), "{bus:?}");
        let others = summary.sensors.iter().filter(|s| !s.id.starts_with("bus"));
        assert!(
            others.clone().all(|s| s.count == 10),
            "{:?}",
            others.collect::<Vec<_>>()
        );
    }
}
