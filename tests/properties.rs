//! Property tests of the accounting and the journal, on tokio's paused clock (issue 11).
//!
//! Each case generates a configuration: simulated sensors with random fault rates (transient
//! and fatal errors, panics, hangs, offline devices), scripted faults (panic, crash, hang,
//! fatal, error, flap) and latency ranges around the read timeout (reads landing exactly on the
//! deadline included), sometimes `flaky` ones whose builds fail or panic, at once or slowly
//! (`tests/common/flaky.rs`); restart types, intensities, backoffs, `hung_after`,
//! `max_in_flight`, sometimes `[[groups]]` with their strategies; a random number of rounds,
//! interval and seed; sometimes a slow lossless subscriber that holds the rounds back, sometimes
//! a shutdown at a random moment. A recorder subscribed losslessly to every stream sees the run,
//! and whatever the mix:
//!
//! - every round asks each sensor once and counts its read exactly once
//!   (`requested = sensors = ok + failed + timed_out + unavailable`), its readings are its `ok`,
//!   one per sensor at most, none slower than the read timeout, and the rounds add up to the
//!   run's summary (skipped ticks included);
//! - the journal is well formed per sensor: `started` first and once; `failed` only while
//!   running; `restart_scheduled` only after a `failed` (never a temporary sensor's) or a
//!   strategy's `stopped`, with a delay within the backoff and the restarts so far;
//!   `restarted` only after its `restart_scheduled`; nothing after a final `stopped` or
//!   `gave_up` (or its group's `escalated`, which the root's `gave_up` follows); no failure left
//!   undecided;
//! - the journal agrees with each round as it goes (the summary so far is not published; the
//!   round summaries and the journal received up to each are): a sensor down for a whole round
//!   (restarting, stopped or given up, by the journal so far) has no reading in it and is
//!   counted unavailable; the round's fatal read failures, hangs and closed mailboxes are within
//!   its failed, timed-out and unavailable counts; once every sensor is down for good the run
//!   ends;
//! - the summary equals the journal: event counts kind by kind, `restarts` (in total and per
//!   sensor) equal to the `restarted` events, each sensor's final state the one its journal ends
//!   in; the readings are `ok`, per sensor and in total; the subscribers missed nothing.
//!
//! Two properties check this: one on runs of up to 20 rounds, one on runs of up to 3 rounds
//! whose end waits for a slow subscriber (restarts fall due as the run ends). 64 cases each;
//! `PROPTEST_CASES=1000 cargo test --test properties` runs more. A failing case is saved in
//! `proptest-regressions/<test>.txt` (committed: every run replays those first) and printed with
//! its configuration as TOML.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use sensor_actors::data::{EventKind, RestartType, SupervisionEvent};
use sensor_actors::streams::{Delivery, Journal, Readings, RoundSummary, RunSummary};
use sensor_actors::Summary;

// ---------------------------------------------------------------------------------------------
// What a case is made of.

/// A point of a latency range, relative to the read timeout `t`.
#[derive(Debug, Clone, Copy)]
enum At {
    Zero,
    Half,
    JustBefore,
    /// Exactly the read timeout: the answer and the deadline timer meet.
    Deadline,
    JustAfter,
    Double,
}

impl At {
    fn ms(self, t: u64) -> u64 {
        match self {
            At::Zero => 0,
            At::Half => t / 2,
            At::JustBefore => t - 1,
            At::Deadline => t,
            At::JustAfter => t + 1,
            At::Double => 2 * t,
        }
    }
}

/// A restart policy's keys.
#[derive(Debug, Clone)]
struct Policy {
    restart: &'static str,
    max_restarts: u32,
    within_ms: u64,
    backoff_ms: (u64, u64),
    hung_after: u32,
}

/// The keys of a `driver = "flaky"` entry (`tests/common/flaky.rs`): builds that fail or panic,
/// at once or after a latency, and reads that always answer.
#[derive(Debug, Clone)]
struct Flaky {
    failing_builds: u32,
    panics: bool,
    build_latency: Option<At>,
    read_latency: Option<At>,
}

/// One `[[sensors]]` entry: of the simulated driver, or of the flaky one.
#[derive(Debug, Clone)]
struct Entry {
    /// `Some`: a flaky entry (the simulated keys below are then unused).
    flaky: Option<Flaky>,
    count: usize,
    /// Index into the scenario's groups (modulo their number); `None`: ungrouped.
    group: Option<usize>,
    latency: (At, At),
    /// error, offline, online, fatal, panic, hang.
    rates: [f64; 6],
    /// `(round, fault, member)`: `member` picks one sensor of the entry (modulo its count), or
    /// `None` for all of them.
    faults: Vec<(u64, &'static str, Option<usize>)>,
    /// Overrides of the `[supervision]` defaults, when set.
    policy: Option<Policy>,
}

/// One `[[groups]]` entry.
#[derive(Debug, Clone)]
struct Group {
    strategy: &'static str,
    max_restarts: u32,
    within_ms: u64,
}

/// One case: the configuration, and what drives the run besides it.
#[derive(Debug, Clone)]
struct Scenario {
    seed: u64,
    rounds: u64,
    interval_ms: u64,
    read_timeout_ms: u64,
    max_in_flight: usize,
    supervision: Policy,
    entries: Vec<Entry>,
    groups: Vec<Group>,
    /// A lossless readings subscriber taking this long per message (virtual time).
    slow_subscriber_ms: Option<u64>,
    /// A shutdown this long after the run starts (virtual time).
    shutdown_ms: Option<u64>,
}

fn duration(ms: u64) -> String {
    format!("\"{ms}ms\"")
}

impl Policy {
    fn toml(&self) -> String {
        format!(
            "restart = \"{}\"\nmax_restarts = {}\nwithin = {}\nbackoff_min = {}\nbackoff_max = {}\nhung_after = {}\n",
            self.restart,
            self.max_restarts,
            duration(self.within_ms),
            duration(self.backoff_ms.0),
            duration(self.backoff_ms.1),
            self.hung_after
        )
    }
}

impl Scenario {
    /// The configuration, as a user would write it.
    fn toml(&self) -> String {
        let t = self.read_timeout_ms;
        let mut text = format!(
            "[collection]\nseed = {}\nrounds = {}\ninterval = {}\nread_timeout = {}\nmax_in_flight = {}\njournal = \"{}\"\n\n[supervision]\n{}\n",
            self.seed,
            self.rounds,
            duration(self.interval_ms),
            duration(t),
            self.max_in_flight,
            // Half the cases journal every timeout (by the seed, so saved cases stay the same).
            if self.seed.is_multiple_of(2) { "verbose" } else { "normal" },
            self.supervision.toml()
        );
        for (k, g) in self.groups.iter().enumerate() {
            text += &format!(
                "[[groups]]\nname = \"g{k}\"\nstrategy = \"{}\"\nmax_restarts = {}\nwithin = {}\n\n",
                g.strategy,
                g.max_restarts,
                duration(g.within_ms)
            );
        }
        for (k, e) in self.entries.iter().enumerate() {
            text += &format!("[[sensors]]\nname = \"s{k}\"\ncount = {}\n", e.count);
            if let (Some(g), false) = (e.group, self.groups.is_empty()) {
                text += &format!("group = \"g{}\"\n", g % self.groups.len());
            }
            if let Some(policy) = &e.policy {
                text += &policy.toml();
            }
            if let Some(f) = &e.flaky {
                text += &format!(
                    "driver = \"flaky\"\nfailing_builds = {}\npanics = {}\n",
                    f.failing_builds, f.panics
                );
                if let Some(at) = f.build_latency {
                    text += &format!("build_latency = {}\n", duration(at.ms(t)));
                }
                if let Some(at) = f.read_latency {
                    text += &format!("read_latency = {}\n", duration(at.ms(t)));
                }
                text += "\n";
                continue;
            }
            let (a, b) = (e.latency.0.ms(t), e.latency.1.ms(t));
            let [error, offline, online, fatal, panic, hang] = e.rates;
            text += &format!(
                "latency = [{}, {}]\nerror_rate = {error}\noffline_rate = {offline}\nonline_rate = {online}\nfatal_rate = {fatal}\npanic_rate = {panic}\nhang_rate = {hang}\n",
                duration(a.min(b)),
                duration(a.max(b)),
            );
            let faults: Vec<String> = e
                .faults
                .iter()
                .map(|(round, fault, member)| match member {
                    Some(m) => format!(
                        "{{ round = {round}, fault = \"{fault}\", sensor = \"{}\" }}",
                        sensor_actors::config::sensor_id(&format!("s{k}"), m % e.count + 1, e.count)
                    ),
                    None => format!("{{ round = {round}, fault = \"{fault}\" }}"),
                })
                .collect();
            text += &format!("faults = [{}]\n\n", faults.join(", "));
        }
        text
    }
}

// ---------------------------------------------------------------------------------------------
// Strategies.

fn at() -> impl Strategy<Value = At> {
    prop_oneof![
        Just(At::Zero),
        Just(At::Half),
        Just(At::JustBefore),
        Just(At::Deadline),
        Just(At::JustAfter),
        Just(At::Double),
    ]
}

/// Mostly no fault, sometimes a few percent, rarely always.
fn rate() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => Just(0.0),
        3 => prop_oneof![Just(0.02), Just(0.05), Just(0.1), Just(0.3)],
        1 => Just(1.0),
    ]
}

fn ms_of(values: &'static [u64]) -> impl Strategy<Value = u64> {
    proptest::sample::select(values)
}

fn policy() -> impl Strategy<Value = Policy> {
    (
        proptest::sample::select(&["permanent", "transient", "temporary"][..]),
        0u32..=4,
        ms_of(&[100, 1_000, 10_000, 60_000]),
        (ms_of(&[0, 10, 100, 500, 2_000]), ms_of(&[0, 10, 100, 500, 2_000])),
        1u32..=3,
    )
        .prop_map(|(restart, max_restarts, within_ms, (a, b), hung_after)| Policy {
            restart,
            max_restarts,
            within_ms,
            backoff_ms: (a.min(b), a.max(b)),
            hung_after,
        })
}

fn fault() -> impl Strategy<Value = (u64, &'static str, Option<usize>)> {
    (
        1u64..=20,
        proptest::sample::select(&["panic", "crash", "hang", "fatal", "error", "flap"][..]),
        proptest::option::of(0usize..4),
    )
}

fn flaky() -> impl Strategy<Value = Flaky> {
    (
        0u32..=3,
        any::<bool>(),
        proptest::option::of(at()),
        proptest::option::of(at()),
    )
        .prop_map(|(failing_builds, panics, build_latency, read_latency)| Flaky {
            failing_builds,
            panics,
            build_latency,
            read_latency,
        })
}

fn entry() -> impl Strategy<Value = Entry> {
    (
        proptest::option::weighted(0.2, flaky()),
        1usize..=4,
        proptest::option::weighted(0.5, 0usize..3),
        (at(), at()),
        [rate(), rate(), rate(), rate(), rate(), rate()],
        proptest::collection::vec(fault(), 0..=3),
        proptest::option::weighted(0.5, policy()),
    )
        .prop_map(|(flaky, count, group, latency, rates, faults, policy)| Entry {
            flaky,
            count,
            group,
            latency,
            rates,
            faults,
            policy,
        })
}

fn group() -> impl Strategy<Value = Group> {
    (
        proptest::sample::select(&["one_for_one", "one_for_all", "rest_for_one"][..]),
        0u32..=4,
        ms_of(&[100, 1_000, 10_000]),
    )
        .prop_map(|(strategy, max_restarts, within_ms)| Group {
            strategy,
            max_restarts,
            within_ms,
        })
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        // A TOML integer is an i64.
        0..=i64::MAX as u64,
        1u64..=20,
        ms_of(&[0, 20, 100, 250, 1_000]),
        ms_of(&[10, 50, 100, 300]),
        proptest::sample::select(&[0usize, 0, 1, 2][..]),
        policy(),
        proptest::collection::vec(entry(), 1..=5),
        proptest::collection::vec(group(), 0..=3),
        proptest::option::weighted(0.2, 10u64..=3_000),
        proptest::option::weighted(0.2, 0u64..=20_000),
    )
        .prop_map(
            |(
                seed,
                rounds,
                interval_ms,
                read_timeout_ms,
                max_in_flight,
                supervision,
                entries,
                groups,
                slow_subscriber_ms,
                shutdown_ms,
            )| Scenario {
                seed,
                rounds,
                interval_ms,
                read_timeout_ms,
                max_in_flight,
                supervision,
                entries,
                groups,
                slow_subscriber_ms,
                shutdown_ms,
            },
        )
}

// ---------------------------------------------------------------------------------------------
// Running a case.

/// What the recorder received, message by message.
#[derive(Debug, Default)]
struct Received {
    /// Every journal event, in order.
    events: Vec<SupervisionEvent>,
    /// Every round summary, with the number of events received before it.
    rounds: Vec<(RoundSummary, usize)>,
    /// Every readings message: its round and its sensors' positions.
    readings: Vec<(u64, Vec<usize>)>,
    /// The longest latency of a reading.
    latency_max: Duration,
    /// Every run summary.
    ends: Vec<Summary>,
}

/// Records every stream into a shared [`Received`].
struct Recorder(Arc<Mutex<Received>>);

impl Actor for Recorder {
    type Context = Context<Self>;
}

impl Handler<Journal> for Recorder {
    type Result = ();
    fn handle(&mut self, msg: Journal, _: &mut Context<Self>) {
        self.0.lock().unwrap().events.extend(msg.iter());
    }
}

impl Handler<RoundSummary> for Recorder {
    type Result = ();
    fn handle(&mut self, msg: RoundSummary, _: &mut Context<Self>) {
        let mut received = self.0.lock().unwrap();
        let seen = received.events.len();
        received.rounds.push((msg, seen));
    }
}

impl Handler<Readings> for Recorder {
    type Result = ();
    fn handle(&mut self, msg: Readings, _: &mut Context<Self>) {
        let sensors = msg.iter().map(|r| r.index).collect();
        let latency = msg.iter().map(|r| r.reading.latency).max().unwrap_or_default();
        let mut received = self.0.lock().unwrap();
        received.readings.push((msg.round(), sensors));
        received.latency_max = received.latency_max.max(latency);
    }
}

impl Handler<RunSummary> for Recorder {
    type Result = ();
    fn handle(&mut self, msg: RunSummary, _: &mut Context<Self>) {
        self.0.lock().unwrap().ends.push((*msg.summary).clone());
    }
}

/// A lossless readings subscriber slower than the schedule: it holds the rounds back, and the
/// end of the run waits for it.
struct Slow(Duration);

impl Actor for Slow {
    type Context = Context<Self>;
}

impl Handler<Readings> for Slow {
    type Result = ResponseActFuture<Self, ()>;
    fn handle(&mut self, _: Readings, _: &mut Context<Self>) -> Self::Result {
        Box::pin(tokio::time::sleep(self.0).into_actor(self))
    }
}

/// The run's sensors as the configuration made them.
struct Layout {
    ids: Vec<String>,
    /// Each configured group's members.
    groups: HashMap<String, Vec<usize>>,
    /// Per sensor, the bounds of a `restart_scheduled` delay: its own backoff, or in a group
    /// the widest of its members' (a strategy restarts siblings after the failed member's).
    backoff: Vec<(Duration, Duration)>,
    /// Per sensor, its restart type.
    restart: Vec<RestartType>,
    /// Per sensor, its configured group.
    group_of: Vec<Option<String>>,
    /// Per sensor, the restarts its intensity window allows: its own, or its group's.
    max_restarts: Vec<u32>,
}

/// A finished case.
struct Outcome {
    layout: Layout,
    received: Received,
    summary: Summary,
}

/// Runs `scenario` on the paused clock in a system of its own.
fn run(scenario: &Scenario) -> Result<Outcome, String> {
    let toml = scenario.toml();
    actix_rt::System::new().block_on(async move {
        tokio::time::pause();
        let received = Arc::new(Mutex::new(Received::default()));
        let recorder = Recorder(received.clone()).start();
        let lossless = |name: &str| Delivery::lossless().named(name);
        let mut collector = common::flaky::collector()
            .subscribe_with(recorder.clone().recipient::<Readings>(), lossless("readings-recorder"))
            .subscribe_with(recorder.clone().recipient::<Journal>(), lossless("journal-recorder"))
            .subscribe_with(
                recorder.clone().recipient::<RoundSummary>(),
                lossless("rounds-recorder"),
            )
            .subscribe_with(recorder.recipient::<RunSummary>(), lossless("end-recorder"));
        if let Some(ms) = scenario.slow_subscriber_ms {
            let slow = Slow(Duration::from_millis(ms)).start();
            collector = collector.subscribe_with(slow.recipient::<Readings>(), lossless("slow"));
        }
        let config = collector.parse(&toml, "prop.toml").map_err(|e| e.to_string())?;
        let layout = layout(&config);
        let shutdown = scenario.shutdown_ms;
        let shutdown = async move {
            match shutdown {
                Some(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                None => std::future::pending().await,
            }
        };
        let summary = collector
            .run(config, shutdown)
            .await
            .map_err(|e| format!("the run failed: {e:#}"))?;
        let received = std::mem::take(&mut *received.lock().unwrap());
        Ok(Outcome {
            layout,
            received,
            summary,
        })
    })
}

fn layout(config: &sensor_actors::Config) -> Layout {
    let ids = config.sensors.iter().map(|s| s.id.to_string()).collect();
    let mut groups: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, s) in config.sensors.iter().enumerate() {
        if let Some(g) = &s.group {
            groups.entry(g.to_string()).or_default().push(i);
        }
    }
    let own = |i: usize| {
        let p = &config.sensors[i].policy;
        (p.backoff_min, p.backoff_max)
    };
    let backoff = (0..config.sensors.len())
        .map(|i| match &config.sensors[i].group {
            None => own(i),
            Some(g) => groups[&**g]
                .iter()
                .map(|&m| own(m))
                .fold(own(i), |(lo, hi), (a, b)| (lo.min(a), hi.max(b))),
        })
        .collect();
    let restart = config.sensors.iter().map(|s| s.policy.restart).collect();
    let group_of = config
        .sensors
        .iter()
        .map(|s| s.group.as_ref().map(|g| g.to_string()))
        .collect();
    let max_restarts = config
        .sensors
        .iter()
        .map(|s| match &s.group {
            None => s.policy.max_restarts,
            Some(g) => config
                .groups
                .iter()
                .find(|spec| *spec.name == **g)
                .map_or(0, |spec| spec.max_restarts),
        })
        .collect();
    Layout {
        ids,
        groups,
        backoff,
        restart,
        group_of,
        max_restarts,
    }
}

// ---------------------------------------------------------------------------------------------
// The journal's grammar.

/// Where a sensor stands by its journal so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Life {
    /// `started` or `restarted`: its actor runs.
    Up,
    /// `failed`: a decision follows at once (restart, stop, give up or escalate).
    Failed,
    /// `stopped` by a sibling's restart (or a normal exit): a restart or a give-up follows.
    Stopping,
    /// `restart_scheduled`: waiting for its backoff.
    Scheduled,
    /// `stopped` for good (a temporary sensor's failure).
    Stopped,
    /// `gave_up`, or its group escalated.
    GivenUp,
}

impl Life {
    fn is_final(self) -> bool {
        matches!(self, Life::Stopped | Life::GivenUp)
    }

    /// The summary's state of a sensor whose journal ends here; `None` if it cannot end here.
    fn state(self) -> Option<&'static str> {
        match self {
            Life::Up => Some("running"),
            Life::Scheduled => Some("restarting"),
            Life::Stopped => Some("stopped"),
            Life::GivenUp => Some("given_up"),
            Life::Failed | Life::Stopping => None,
        }
    }
}

/// Where a configured group stands: running, escalated, given up by the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GroupLife {
    Running,
    Escalated,
    GivenUp,
}

/// The journal read event by event.
struct Model<'a> {
    layout: &'a Layout,
    index: HashMap<&'a str, usize>,
    /// `None` before the sensor's `started`.
    life: Vec<Option<Life>>,
    restarts: Vec<u32>,
    /// Per sensor, the round of its last event.
    rounds: Vec<u64>,
    groups: HashMap<&'a str, GroupLife>,
    /// Events read so far, kind by kind.
    counts: BTreeMap<&'static str, u64>,
}

impl<'a> Model<'a> {
    fn new(layout: &'a Layout) -> Self {
        Model {
            layout,
            index: layout.ids.iter().enumerate().map(|(i, id)| (id.as_str(), i)).collect(),
            life: vec![None; layout.ids.len()],
            restarts: vec![0; layout.ids.len()],
            rounds: vec![0; layout.ids.len()],
            groups: layout.groups.keys().map(|g| (g.as_str(), GroupLife::Running)).collect(),
            counts: BTreeMap::new(),
        }
    }

    /// Reads event `k`; for a sensor's event, gives the sensor.
    fn apply(&mut self, k: usize, e: &SupervisionEvent) -> Result<Option<usize>, String> {
        *self.counts.entry(e.event.as_str()).or_default() += 1;
        let cause = e.cause.as_deref().unwrap_or("");
        let what = format!("event {k} ({} {} {cause:?})", e.subject(), e.event.as_str());
        let Some(sensor) = e.sensor.as_deref() else {
            let name = e
                .group
                .as_deref()
                .ok_or_else(|| format!("{what}: neither a sensor nor a group"))?;
            let Some(group) = self.groups.get_mut(name) else {
                return Err(format!("{what}: no such group"));
            };
            // A group's own events: it escalates, then the root gives it up.
            *group = match (*group, e.event) {
                (GroupLife::Running, EventKind::Escalated) => GroupLife::Escalated,
                (GroupLife::Escalated, EventKind::GaveUp) => GroupLife::GivenUp,
                (state, _) => return Err(format!("{what}: unexpected for a group that is {state:?}")),
            };
            // Every member has ended before its group's escalation: given up with it (journaled
            // just before), or stopped earlier.
            if e.event == EventKind::Escalated {
                for &m in &self.layout.groups[name] {
                    match self.life[m] {
                        Some(life) if life.is_final() => {}
                        other => {
                            return Err(format!(
                                "{what}: member {} is {other:?}, not given up",
                                self.layout.ids[m]
                            ))
                        }
                    }
                }
            }
            return Ok(None);
        };
        let Some(&i) = self.index.get(sensor) else {
            return Err(format!("{what}: no such sensor"));
        };
        // The journal says where and when: the sensor's group, and a round that never goes back.
        if e.group.as_deref() != self.layout.group_of[i].as_deref() {
            return Err(format!(
                "{what}: group {:?}, configured {:?}",
                e.group, self.layout.group_of[i]
            ));
        }
        if e.round < self.rounds[i] {
            return Err(format!("{what}: round {} after round {}", e.round, self.rounds[i]));
        }
        self.rounds[i] = e.round;
        let restarts = self.restarts[i];
        let life = match (self.life[i], e.event) {
            (None, EventKind::Started) => Life::Up,
            (None, _) => return Err(format!("{what}: before the sensor's `started`")),
            (Some(life), _) if life.is_final() => {
                return Err(format!("{what}: after the sensor's final state ({life:?})"))
            }
            (Some(Life::Up), EventKind::Failed) => Life::Failed,
            // The run-up to a hang, with `journal = "verbose"`: the sensor keeps running.
            (Some(Life::Up), EventKind::TimedOut) if cause.ends_with(" consecutive read timeouts make a hang") => {
                Life::Up
            }
            (Some(Life::Up), EventKind::Stopped) if cause.contains(": restarting with ") || cause == "exhausted" => {
                Life::Stopping
            }
            (Some(Life::Failed), EventKind::Stopped) if cause.starts_with("temporary") => Life::Stopped,
            // A temporary sibling of a strategy's restart is stopped for good (OTP's rule).
            (Some(Life::Up), EventKind::Stopped)
                if cause.contains(": stopped with ") && cause.ends_with("; temporary: not restarted") =>
            {
                if self.layout.restart[i] != RestartType::Temporary {
                    return Err(format!("{what}: only a temporary sibling is stopped for good"));
                }
                Life::Stopped
            }
            (Some(Life::Failed), EventKind::RestartScheduled) if self.layout.restart[i] == RestartType::Temporary => {
                return Err(format!("{what}: a temporary sensor restarted after its own failure"))
            }
            (Some(Life::Stopping), EventKind::RestartScheduled)
                if self.layout.restart[i] == RestartType::Temporary && !cause.contains("exhausted") =>
            {
                return Err(format!("{what}: a temporary sensor restarted with a sibling"))
            }
            (Some(Life::Failed | Life::Stopping), EventKind::RestartScheduled) => {
                // Which delay, and how full the intensity window (the sensor's or its group's).
                let max = self.layout.max_restarts[i];
                match e.backoff {
                    Some(b) if b.attempt >= 1 && b.window >= 1 && b.window <= max && b.max_restarts == max => {}
                    other => return Err(format!("{what}: backoff {other:?} with a window of {max} restarts")),
                }
                let (lo, hi) = self.layout.backoff[i];
                match e.delay {
                    Some(d) if d >= lo && d <= hi => {}
                    other => return Err(format!("{what}: delay {other:?} outside the backoff {lo:?}..={hi:?}")),
                }
                if e.restarts != Some(restarts) {
                    return Err(format!(
                        "{what}: says {:?} restarts so far, the journal {restarts}",
                        e.restarts
                    ));
                }
                Life::Scheduled
            }
            (Some(Life::Scheduled), EventKind::Restarted) => {
                self.restarts[i] += 1;
                if e.restarts != Some(self.restarts[i]) {
                    return Err(format!(
                        "{what}: says restart {:?}, the journal's is {}",
                        e.restarts, self.restarts[i]
                    ));
                }
                Life::Up
            }
            // Given up past its intensity, or with its escalating group whatever it was doing.
            (Some(life), EventKind::GaveUp)
                if matches!(life, Life::Failed | Life::Stopping)
                    || (cause.starts_with("group ") && cause.contains(" escalated: ")) =>
            {
                if e.restarts != Some(restarts) {
                    return Err(format!(
                        "{what}: says {:?} restarts, the journal {restarts}",
                        e.restarts
                    ));
                }
                Life::GivenUp
            }
            (Some(life), _) => return Err(format!("{what}: unexpected while the sensor is {life:?}")),
        };
        self.life[i] = Some(life);
        Ok(Some(i))
    }
}

// ---------------------------------------------------------------------------------------------
// The properties.

/// The round's counts as `(requested, ok, failed, timed_out, unavailable)`.
fn counts(r: &sensor_actors::report::ReadCounts) -> (u64, u64, u64, u64, u64) {
    (r.requested, r.ok, r.failed, r.timed_out, r.unavailable)
}

/// Checks every property of a finished case.
fn check(scenario: &Scenario, outcome: &Outcome) -> Result<(), String> {
    let Outcome {
        layout,
        received,
        summary,
    } = outcome;
    let n = layout.ids.len() as u64;

    // The rounds: numbered 1..=k, as many as the summary says, no more than configured.
    let k = received.rounds.len() as u64;
    let numbers: Vec<u64> = received.rounds.iter().map(|(r, _)| r.round).collect();
    if numbers != (1..=k).collect::<Vec<_>>() {
        return Err(format!("round summaries numbered {numbers:?}"));
    }
    if summary.rounds != k || k > scenario.rounds {
        return Err(format!(
            "{k} round summaries, summary.rounds {}, {} configured",
            summary.rounds, scenario.rounds
        ));
    }
    let reading_rounds: Vec<u64> = received.readings.iter().map(|(r, _)| *r).collect();
    if reading_rounds != numbers {
        return Err(format!("readings messages for rounds {reading_rounds:?}"));
    }

    // Every round: each sensor's read counted once, the readings its ok, one per sensor.
    let mut per_sensor = vec![0u64; layout.ids.len()];
    let mut total = sensor_actors::report::ReadCounts::default();
    for ((r, _), (_, sensors)) in received.rounds.iter().zip(&received.readings) {
        let (requested, ok, failed, timed_out, unavailable) = counts(&r.reads);
        if requested != n || ok + failed + timed_out + unavailable != requested {
            return Err(format!(
                "round {}: {n} sensors, (requested, ok, failed, timed_out, unavailable) = {:?}",
                r.round,
                counts(&r.reads)
            ));
        }
        if sensors.len() as u64 != ok || sensors.windows(2).any(|w| w[0] >= w[1]) {
            return Err(format!("round {}: ok {ok}, readings of sensors {sensors:?}", r.round));
        }
        for &i in sensors {
            per_sensor[i] += 1;
        }
        total.requested += requested;
        total.ok += ok;
        total.failed += failed;
        total.timed_out += timed_out;
        total.unavailable += unavailable;
    }
    if counts(&total) != counts(&summary.reads) || summary.reads.requested != k * n {
        return Err(format!(
            "the rounds add up to {:?}, the summary says {:?} ({k} rounds of {n})",
            counts(&total),
            counts(&summary.reads)
        ));
    }

    // Ticks skipped are reported with the round after them: a shutdown between two rounds
    // leaves the last ones in the summary only.
    let skipped: u64 = received.rounds.iter().map(|(r, _)| r.skipped_before).sum();
    if skipped > summary.skipped_rounds || (scenario.shutdown_ms.is_none() && skipped != summary.skipped_rounds) {
        return Err(format!(
            "the rounds skipped {skipped} ticks, the summary says {}",
            summary.skipped_rounds
        ));
    }
    let timeout = Duration::from_millis(scenario.read_timeout_ms);
    if received.latency_max > timeout {
        return Err(format!(
            "a reading took {:?}, past the read timeout",
            received.latency_max
        ));
    }

    // The journal, round by round: well formed, and in agreement with each round's counts.
    let mut model = Model::new(layout);
    let events = &received.events;
    let mut from = 0;
    for ((r, seen), (_, sensors)) in received.rounds.iter().zip(&received.readings) {
        let before = model.life.clone();
        let mut came_up = vec![false; layout.ids.len()];
        let (mut fatal, mut hung, mut closed) = (0, 0, 0);
        for (k, e) in events.iter().enumerate().take(*seen).skip(from) {
            let Some(i) = model.apply(k, e)? else { continue };
            match e.event {
                EventKind::Started | EventKind::Restarted => came_up[i] = true,
                EventKind::Failed => {
                    let cause = e.cause.as_deref().unwrap_or("");
                    // A read's fatal error or panic (a build's failure is not a read's).
                    if cause.starts_with("fatal:") || cause.starts_with("panic: injected") {
                        fatal += 1;
                    } else if cause.starts_with("hung:") {
                        hung += 1;
                    } else if cause == "stopped: mailbox closed" {
                        closed += 1;
                    }
                }
                _ => {}
            }
        }
        from = *seen;
        // Down for the whole round: not running when it began, not (re)started during it.
        let down: Vec<usize> = (0..layout.ids.len())
            .filter(|&i| matches!(before[i], Some(life) if life != Life::Up) && !came_up[i])
            .collect();
        if let Some(i) = down.iter().find(|i| sensors.contains(i)) {
            return Err(format!(
                "round {}: {} has a reading while {:?} all round",
                r.round,
                layout.ids[*i],
                before[*i].unwrap()
            ));
        }
        let reads = &r.reads;
        if down.len() as u64 + closed > reads.unavailable || fatal > reads.failed || hung > reads.timed_out {
            return Err(format!(
                "round {}: {} sensors down all round and {closed} closed mailboxes, {fatal} fatal failures, \
                 {hung} hangs journaled; (requested, ok, failed, timed_out, unavailable) = {:?}",
                r.round,
                down.len(),
                counts(reads)
            ));
        }
        // Every sensor stopped or given up: the run ends with the next round at the latest
        // (with this one, unless the last of them went down between the round's end and its
        // report, after its group had answered).
        if r.round + 1 < k && model.life.iter().all(|l| l.is_some_and(Life::is_final)) {
            return Err(format!(
                "every sensor is down for good after round {}, yet {k} rounds ran",
                r.round
            ));
        }
    }
    for (k, e) in events.iter().enumerate().skip(from) {
        model.apply(k, e)?;
    }

    // One final state per sensor, the journal's; restarts as the journal counts them.
    for (i, s) in summary.sensors.iter().enumerate() {
        let journal = match model.life[i] {
            None => return Err(format!("{} never started", s.id)),
            Some(life) => life
                .state()
                .ok_or_else(|| format!("{}'s journal ends {life:?}", s.id))?,
        };
        if s.state != journal || s.restarts != model.restarts[i] {
            return Err(format!(
                "{}: the summary says {} with {} restarts, the journal {journal} with {}",
                s.id, s.state, s.restarts, model.restarts[i]
            ));
        }
        if s.count != per_sensor[i] {
            return Err(format!(
                "{}: count {}, {} readings received",
                s.id, s.count, per_sensor[i]
            ));
        }
    }
    if k < scenario.rounds && scenario.shutdown_ms.is_none() {
        if let Some(s) = summary
            .sensors
            .iter()
            .find(|s| s.state == "running" || s.state == "restarting")
        {
            return Err(format!(
                "the run ended after {k} of {} rounds, but {} is {}",
                scenario.rounds, s.id, s.state
            ));
        }
    }
    for (name, life) in &model.groups {
        if *life == GroupLife::Escalated {
            return Err(format!("group {name} escalated and was never given up"));
        }
    }

    // The summary counts what the journal holds.
    let journal: BTreeMap<String, u64> = model.counts.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    if summary.events != journal {
        return Err(format!("summary events {:?}, journal {journal:?}", summary.events));
    }
    let restarted = model.restarts.iter().map(|&r| u64::from(r)).sum::<u64>();
    if summary.restarts != restarted || journal.get("restarted").copied().unwrap_or(0) != restarted {
        return Err(format!(
            "summary restarts {}, sensors' restarted events {restarted}, all restarted events {:?}",
            summary.restarts,
            journal.get("restarted")
        ));
    }
    if received.ends.len() != 1 || received.ends[0] != *summary {
        return Err(format!(
            "{} run summaries received, equal to run's: {}",
            received.ends.len(),
            received.ends.first() == Some(summary)
        ));
    }
    for s in &summary.subscribers {
        let expected = match s.name.as_str() {
            "journal-recorder" => events.len() as u64,
            "readings-recorder" | "slow" => summary.reads.ok,
            "rounds-recorder" => k,
            _ => continue,
        };
        if (s.delivered_items, s.missed) != (expected, 0) {
            return Err(format!("subscriber {s:?}: expected {expected} items, none missed"));
        }
    }
    Ok(())
}

/// 64 cases (or `PROPTEST_CASES`); failures are saved in `file` and replayed first on every run.
fn config(file: &'static str) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(file))),
        ..ProptestConfig::default()
    }
}

/// The regressions file of test `name`, beside `Cargo.toml`.
macro_rules! regressions {
    ($name:literal) => {
        concat!(env!("CARGO_MANIFEST_DIR"), "/proptest-regressions/", $name, ".txt")
    };
}

/// Runs `scenario` and checks it, with its configuration in the failure's message.
fn run_and_check(scenario: &Scenario) -> Result<(), TestCaseError> {
    let outcome = run(scenario).map_err(TestCaseError::fail)?;
    check(scenario, &outcome).map_err(|e| TestCaseError::fail(format!("{e}\n--- prop.toml ---\n{}", scenario.toml())))
}

/// Short runs whose end waits for a slow subscriber: restarts due while the run ends.
fn ending() -> impl Strategy<Value = Scenario> {
    (scenario(), 1u64..=3, 10u64..=3_000).prop_map(|(mut scenario, rounds, slow)| {
        scenario.rounds = rounds;
        scenario.slow_subscriber_ms = Some(slow);
        scenario
    })
}

proptest! {
    #![proptest_config(config(regressions!("accounting_and_journal_hold_under_chaos")))]

    /// Random mixes of faults, latencies around the deadline, restart policies, groups, slow
    /// subscribers and shutdowns keep every round's accounting exact, the journal well formed
    /// and in agreement with the rounds, and the summary equal to the journal.
    #[test]
    fn accounting_and_journal_hold_under_chaos(scenario in scenario()) {
        run_and_check(&scenario)?;
    }
}

proptest! {
    #![proptest_config(config(regressions!("the_end_of_a_run_is_one_final_state")))]

    /// The same properties at the end of short runs whose last round's failures are due to
    /// restart while a slow lossless subscriber holds the run's end back: the final states,
    /// taken when the last round is done, are what the journal and the summary say.
    #[test]
    fn the_end_of_a_run_is_one_final_state(scenario in ending()) {
        run_and_check(&scenario)?;
    }
}
