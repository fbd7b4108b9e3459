//! `SensorSupervisor`: starts the sensors, runs the collection rounds, restarts what fails.
//!
//! The supervisor owns every sensor's [`SensorSpec`] and builds each actor from it, on first start
//! and on every restart; it never relies on an old actor's state. It schedules rounds on a
//! drift-free grid (`t0 + k * interval`): a round that overruns makes the ticks it covered skip
//! (counted), never a burst of catch-up rounds. After each round it sends the [`RoundReport`] to
//! the aggregator and then applies the supervision rules of `docs/supervision.md` to the outcomes:
//! fatal errors, caught panics, hangs (`hung_after` consecutive timeouts) and stopped actors are
//! failures; a failed sensor is restarted after an exponential, jittered backoff unless its
//! restart type or intensity limit says otherwise. Every decision is journaled as a
//! [`SupervisionEvent`] (log, `events.jsonl`, summary counts).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use actix_rt::time::Instant;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use tokio::sync::oneshot;

use crate::aggregator::Aggregator;
use crate::config::{CollectionConfig, RestartType, SensorSpec};
use crate::driver::{driver_seed, DriverContext};
use crate::messages::{Absence, EventKind, Finish, Outcome, RoundReport, Shutdown, StopSensor, SupervisionEvent};
use crate::report::{OutputError, Summary};
use crate::round;
use crate::sensor::SensorActor;

/// Largest extra fraction of a backoff delay added as random jitter (as Akka's `randomFactor`).
pub const BACKOFF_JITTER: f64 = 0.2;

/// A sensor's supervision state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SensorState {
    /// Its actor runs and is read every round.
    Running,
    /// It failed and waits for its restart (unavailable meanwhile).
    Restarting,
    /// It stopped and is not restarted (normal end, or a temporary sensor's failure).
    Stopped,
    /// Its restart intensity was exceeded: unavailable for the rest of the run.
    GivenUp,
}

impl SensorState {
    /// The name used in `summary.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            SensorState::Running => "running",
            SensorState::Restarting => "restarting",
            SensorState::Stopped => "stopped",
            SensorState::GivenUp => "given_up",
        }
    }
}

/// The drift-free round grid: tick `k` is at `t0 + k * interval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    interval: Duration,
}

impl Schedule {
    /// A grid of `interval`; zero runs rounds back to back.
    pub fn new(interval: Duration) -> Self {
        Schedule { interval }
    }

    /// Offset of tick `k` from `t0`.
    pub fn offset(&self, k: u64) -> Duration {
        Duration::from_nanos((self.interval.as_nanos() as u64).saturating_mul(k))
    }

    /// After the round of tick `k` ended `elapsed` after `t0`: the tick of the next round and
    /// how many ticks were skipped because the round overran them.
    pub fn next_after(&self, k: u64, elapsed: Duration) -> (u64, u64) {
        if self.interval.is_zero() {
            return (k + 1, 0);
        }
        let interval = self.interval.as_nanos();
        let first_not_past = elapsed.as_nanos().div_ceil(interval) as u64;
        let next = first_not_past.max(k + 1);
        (next, next - (k + 1))
    }
}

/// The backoff before restart number `step` (0-based): `min * 2^step`, capped at `max`, plus up
/// to [`BACKOFF_JITTER`] of itself scaled by `jitter` (in `0..1`), still capped at `max`.
pub fn backoff_delay(min: Duration, max: Duration, step: u32, jitter: f64) -> Duration {
    let base = min.saturating_mul(2u32.saturating_pow(step.min(31))).min(max);
    base.mul_f64(1.0 + BACKOFF_JITTER * jitter.clamp(0.0, 1.0)).min(max)
}

/// What the supervisor keeps per sensor.
#[derive(Debug)]
struct Child {
    /// The running actor; `None` while restarting, stopped or given up. Dropping it (with a
    /// [`StopSensor`]) ends the actor.
    addr: Option<Addr<SensorActor>>,
    state: SensorState,
    /// Starts so far minus one; part of the driver seed, and guards against acting on outcomes
    /// of an actor that was replaced meanwhile.
    incarnation: u32,
    /// Restarts over the run.
    restarts: u32,
    /// When the restarts inside the intensity window were scheduled.
    recent: VecDeque<Instant>,
    /// Exponent of the next backoff delay.
    backoff_step: u32,
    /// When the current actor started; the backoff resets once it has been healthy `within`.
    running_since: Instant,
    /// Consecutive read timeouts.
    timeouts: u32,
}

/// What a round's outcome asks the supervisor to do.
enum Action {
    Fail(String),
    Exit(&'static str),
}

/// The supervisor actor.
pub struct SensorSupervisor {
    specs: Arc<[SensorSpec]>,
    collection: CollectionConfig,
    seed: u64,
    children: Vec<Child>,
    /// Receives round reports, journal events and the final `Finish`.
    aggregator: Addr<Aggregator>,
    /// Arbiters the sensor actors are spread over; empty means the supervisor's own.
    arbiters: Vec<ArbiterHandle>,
    /// Draws backoff jitter; seeded from the run's seed.
    rng: Pcg64Mcg,
    schedule: Schedule,
    /// When tick 0 was; set when the first round starts.
    t0: Option<Instant>,
    /// Rounds started so far (the number of the current or last round).
    round: u64,
    /// Tick of the current or last round.
    tick: u64,
    skipped: u64,
    /// The pending next-round timer; cancelled on shutdown.
    next_round: Option<SpawnHandle>,
    in_flight: bool,
    stopping: bool,
    /// Where the summary goes when the run ends; taken once.
    done: Option<oneshot::Sender<Result<Summary, OutputError>>>,
}

impl SensorSupervisor {
    /// A supervisor for `specs`; it starts them when it starts and reports the summary on `done`.
    pub fn new(
        specs: Arc<[SensorSpec]>,
        collection: CollectionConfig,
        seed: u64,
        aggregator: Addr<Aggregator>,
        arbiters: Vec<ArbiterHandle>,
        done: oneshot::Sender<Result<Summary, OutputError>>,
    ) -> Self {
        let now = Instant::now();
        let children = specs
            .iter()
            .map(|_| Child {
                addr: None,
                state: SensorState::Stopped,
                incarnation: 0,
                restarts: 0,
                recent: VecDeque::new(),
                backoff_step: 0,
                running_since: now,
                timeouts: 0,
            })
            .collect();
        SensorSupervisor {
            schedule: Schedule::new(collection.interval),
            rng: Pcg64Mcg::seed_from_u64(driver_seed(seed, usize::MAX, 0)),
            specs,
            collection,
            seed,
            children,
            aggregator,
            arbiters,
            t0: None,
            round: 0,
            tick: 0,
            skipped: 0,
            next_round: None,
            in_flight: false,
            stopping: false,
            done: Some(done),
        }
    }

    fn journal(
        &self,
        index: usize,
        event: EventKind,
        cause: Option<String>,
        delay: Option<Duration>,
        restarts: Option<u32>,
    ) {
        let sensor = self.specs[index].id.clone();
        // The first starts are summarised in one line by `started()`; every later event is logged.
        let level = if event == EventKind::Started && self.round == 0 {
            log::Level::Debug
        } else {
            log::Level::Info
        };
        match (&cause, delay) {
            (Some(cause), _) => log::log!(level, "{sensor}: {} ({cause})", event.as_str()),
            (None, Some(d)) => log::log!(level, "{sensor}: {} in {} ms", event.as_str(), d.as_millis()),
            (None, None) => log::log!(level, "{sensor}: {}", event.as_str()),
        }
        self.aggregator.do_send(SupervisionEvent {
            timestamp: chrono::Utc::now(),
            sensor,
            event,
            cause,
            delay,
            restarts,
        });
    }

    /// Builds the sensor's driver and actor from its spec.
    fn spawn(&mut self, index: usize) {
        let spec = &self.specs[index];
        let child = &mut self.children[index];
        let ctx = DriverContext {
            id: spec.id.clone(),
            kind: spec.kind.clone(),
            index,
            incarnation: child.incarnation,
            seed: driver_seed(self.seed, index, child.incarnation),
        };
        let driver_spec = spec.driver.clone();
        let id = spec.id.clone();
        let addr = if self.arbiters.is_empty() {
            SensorActor::new(id, driver_spec.build(&ctx)).start()
        } else {
            let arbiter = &self.arbiters[index % self.arbiters.len()];
            SensorActor::start_in_arbiter(arbiter, move |_| SensorActor::new(id, driver_spec.build(&ctx)))
        };
        child.addr = Some(addr);
        child.state = SensorState::Running;
        child.running_since = Instant::now();
        child.timeouts = 0;
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
        let targets: Vec<_> = self.children.iter().map(|c| c.addr.clone()).collect();
        let incarnations: Vec<u32> = self.children.iter().map(|c| c.incarnation).collect();
        let read = round::collect(
            targets,
            round,
            self.collection.read_timeout,
            self.collection.max_in_flight,
        );
        ctx.spawn(read.into_actor(self).map(move |outcomes, act, ctx| {
            act.finish_round(round, now, t0, incarnations, outcomes, ctx);
        }));
    }

    fn finish_round(
        &mut self,
        round: u64,
        started: Instant,
        t0: Instant,
        incarnations: Vec<u32>,
        outcomes: Vec<Outcome>,
        ctx: &mut Context<Self>,
    ) {
        self.in_flight = false;
        let now = Instant::now();
        let mut actions = Vec::new();
        for (index, outcome) in outcomes.iter().enumerate() {
            let child = &mut self.children[index];
            if child.incarnation != incarnations[index] || child.state != SensorState::Running {
                continue;
            }
            match outcome {
                Outcome::TimedOut => {
                    child.timeouts += 1;
                    let hung_after = self.specs[index].policy.hung_after;
                    if child.timeouts >= hung_after {
                        actions.push((
                            index,
                            Action::Fail(format!("hung: {} consecutive read timeouts", child.timeouts)),
                        ));
                    }
                }
                Outcome::Failed { cause, fatal: true } => actions.push((index, Action::Fail(cause.clone()))),
                Outcome::Unavailable(Absence::Closed) => {
                    actions.push((index, Action::Fail("stopped: mailbox closed".into())))
                }
                Outcome::Unavailable(Absence::Exhausted) => actions.push((index, Action::Exit("exhausted"))),
                _ => child.timeouts = 0,
            }
        }
        let (next, skipped) = self.schedule.next_after(self.tick, now - t0);
        self.aggregator.do_send(RoundReport {
            round,
            wall: now - started,
            skipped_before: 0,
            outcomes,
        });
        for (index, action) in actions {
            match action {
                Action::Fail(cause) => self.fail(index, cause, ctx),
                Action::Exit(why) => self.exit(index, why, ctx),
            }
        }
        let all_done = self
            .children
            .iter()
            .all(|c| matches!(c.state, SensorState::Stopped | SensorState::GivenUp));
        let rounds_done = self.collection.rounds.is_some_and(|n| round >= n);
        let next_at = self.schedule.offset(next).max(now - t0);
        let time_done = self.collection.duration.is_some_and(|d| next_at >= d);
        if self.stopping || rounds_done || time_done || all_done {
            if all_done {
                log::info!("every sensor has stopped; ending the run");
            }
            self.finish(ctx);
            return;
        }
        self.skipped += skipped;
        if skipped > 0 {
            log::warn!("round {round} overran the interval: {skipped} tick(s) skipped");
        }
        self.tick = next;
        let delay = (t0 + self.schedule.offset(next)).saturating_duration_since(now);
        // A zero delay must not go through a timer: it would wait for the next 1 ms timer tick.
        self.next_round = Some(if delay.is_zero() {
            ctx.spawn(fut::ready(()).map(|(), act: &mut Self, ctx| act.start_round(ctx)))
        } else {
            ctx.run_later(delay, |act, ctx| act.start_round(ctx))
        });
    }

    /// Stops the sensor's actor, if it has one.
    fn stop_actor(&mut self, index: usize) {
        if let Some(addr) = self.children[index].addr.take() {
            addr.do_send(StopSensor);
        }
    }

    /// A failure: restart, or not, as the sensor's policy says.
    fn fail(&mut self, index: usize, cause: String, ctx: &mut Context<Self>) {
        self.journal(index, EventKind::Failed, Some(cause), None, None);
        self.stop_actor(index);
        match self.specs[index].policy.restart {
            RestartType::Permanent | RestartType::Transient => self.schedule_restart(index, ctx),
            RestartType::Temporary => {
                self.children[index].state = SensorState::Stopped;
                self.journal(
                    index,
                    EventKind::Stopped,
                    Some("temporary: not restarted".into()),
                    None,
                    None,
                );
            }
        }
    }

    /// A normal exit: only a permanent sensor is restarted.
    fn exit(&mut self, index: usize, why: &'static str, ctx: &mut Context<Self>) {
        self.stop_actor(index);
        self.journal(index, EventKind::Stopped, Some(why.into()), None, None);
        match self.specs[index].policy.restart {
            RestartType::Permanent => self.schedule_restart(index, ctx),
            RestartType::Transient | RestartType::Temporary => self.children[index].state = SensorState::Stopped,
        }
    }

    fn schedule_restart(&mut self, index: usize, ctx: &mut Context<Self>) {
        let policy = self.specs[index].policy.clone();
        let now = Instant::now();
        let child = &mut self.children[index];
        while child
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= policy.within)
        {
            child.recent.pop_front();
        }
        if child.recent.len() >= policy.max_restarts as usize {
            child.state = SensorState::GivenUp;
            let cause = format!(
                "more than {} restarts within {}",
                policy.max_restarts,
                humantime::format_duration(policy.within)
            );
            let restarts = child.restarts;
            self.journal(index, EventKind::GaveUp, Some(cause), None, Some(restarts));
            return;
        }
        if now.duration_since(child.running_since) >= policy.within {
            child.backoff_step = 0;
        }
        let jitter: f64 = self.rng.random();
        let delay = backoff_delay(policy.backoff_min, policy.backoff_max, child.backoff_step, jitter);
        child.backoff_step = child.backoff_step.saturating_add(1);
        child.recent.push_back(now);
        child.state = SensorState::Restarting;
        let restarts = child.restarts;
        self.journal(index, EventKind::RestartScheduled, None, Some(delay), Some(restarts));
        ctx.run_later(delay, move |act, _ctx| act.restart(index));
    }

    fn restart(&mut self, index: usize) {
        if self.stopping || self.children[index].state != SensorState::Restarting {
            return;
        }
        let child = &mut self.children[index];
        child.incarnation += 1;
        child.restarts += 1;
        let restarts = child.restarts;
        self.spawn(index);
        self.journal(index, EventKind::Restarted, None, None, Some(restarts));
    }

    /// Ends the run: asks the aggregator for the summary and passes it on.
    fn finish(&mut self, ctx: &mut Context<Self>) {
        self.stopping = true;
        if let Some(timer) = self.next_round.take() {
            ctx.cancel_future(timer);
        }
        let finish = Finish {
            seed: self.seed,
            skipped_rounds: self.skipped,
            sensors: self.children.iter().map(|c| (c.state, c.restarts)).collect(),
        };
        for index in 0..self.children.len() {
            self.stop_actor(index);
        }
        ctx.spawn(self.aggregator.send(finish).into_actor(self).map(|reply, act, ctx| {
            let result = reply.unwrap_or_else(|e| {
                Err(OutputError {
                    path: "aggregator".into(),
                    source: std::io::Error::other(e.to_string()),
                })
            });
            if let Some(done) = act.done.take() {
                let _ = done.send(result);
            }
            ctx.stop();
        }));
    }
}

impl Actor for SensorSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        for index in 0..self.children.len() {
            self.spawn(index);
            self.journal(index, EventKind::Started, None, None, None);
        }
        log::info!("started {} sensor actors", self.children.len());
        self.start_round(ctx);
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
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn schedule_skips_overrun_ticks() {
        let s = Schedule::new(Duration::from_secs(1));
        assert_eq!(s.next_after(0, 500 * MS), (1, 0));
        assert_eq!(s.next_after(0, 1000 * MS), (1, 0));
        assert_eq!(s.next_after(0, 1500 * MS), (2, 1));
        assert_eq!(s.next_after(3, 6200 * MS), (7, 3));
        assert_eq!(s.offset(7), Duration::from_secs(7));
    }

    #[test]
    fn zero_interval_runs_back_to_back() {
        let s = Schedule::new(Duration::ZERO);
        assert_eq!(s.next_after(4, Duration::from_secs(9)), (5, 0));
        assert_eq!(s.offset(5), Duration::ZERO);
    }

    #[test]
    fn backoff_doubles_within_bounds() {
        let (min, max) = (100 * MS, 5000 * MS);
        let delays: Vec<_> = (0..10).map(|k| backoff_delay(min, max, k, 0.0)).collect();
        assert_eq!(&delays[..4], [100 * MS, 200 * MS, 400 * MS, 800 * MS]);
        assert_eq!(delays[9], max);
        for k in 0..40 {
            for j in [0.0, 0.5, 0.999] {
                let d = backoff_delay(min, max, k, j);
                assert!(d >= min.min(max) && d <= max, "{d:?}");
            }
        }
        assert_eq!(backoff_delay(min, max, 1, 1.0), 240 * MS);
    }
}
