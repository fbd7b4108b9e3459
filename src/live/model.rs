//! What the live view knows, built from the public streams and the configuration only: the
//! supervision tree (the configured groups nested by `parent`, the ungrouped sensors), each
//! sensor's state and restarts (derived from the journal, as `sensor-actors story` does), its
//! recent anomalies and, for the sensors watched, their readings as the live view polled them;
//! the run's counts and a bounded ring of recent supervision events. A sensor's statistics are
//! not followed here (that would cost the run a pass over every reading): they are asked for
//! with [`Control::status`](crate::Control::status) when someone looks, and taken from the
//! run's summary once it has ended. Plain data with unit tests; the actor around it is in
//! `mod.rs`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use serde::Serialize;

use crate::config::{Config, GroupSpec, RestartPolicy};
use crate::data::{EventKind, ReadCounts, SupervisionEvent};
use crate::streams::{Anomaly, RoundSummary};
use crate::{SensorStatus, Summary};

/// Readings kept per sensor for `/api/sensors/{id}` (the newest).
pub const LAST_READINGS: usize = 5;

/// Anomalies kept per sensor for `/api/sensors/{id}` (the newest).
pub const RECENT_ANOMALIES: usize = 5;

/// Sensors followed closely at once: each sensor asked for by `/api/sensors/{id}` keeps a longer
/// history of its readings from then on, for the dashboard's plot; beyond this many, the one
/// asked for least recently stops.
pub const WATCHED: usize = 16;

/// Readings kept per watched sensor (the newest).
pub const HISTORY: usize = 600;

/// Supervision events kept for `/api/events` (the newest).
pub const EVENT_RING: usize = 1_024;

/// Rounds kept for `/api/rounds` (the newest): ten minutes of 1 s rounds.
pub const ROUND_RING: usize = 600;

/// Anomalies kept for `/api/anomalies` (the newest, of every sensor).
pub const ANOMALY_RING: usize = 256;

/// A group with more sensors than this is summarised in `/api/tree` (counts by state);
/// `/api/groups/{name}` lists its members.
pub const TREE_MEMBERS: usize = 100;

/// Where a sensor stands, from its journal (its own events and its group's), as in
/// `summary.json`'s `state` (plus `not_started` before its first `started`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum Phase {
    NotStarted,
    Running,
    /// Failed, no decision journaled yet: reported as `restarting`.
    Down,
    Restarting,
    /// Its group's actor stopped; running again once the new actor starts it.
    GroupDown,
    Stopped,
    GivenUp,
    /// Removed while the run goes on: nothing happens to it any more.
    Removed,
}

/// Every state name a sensor can be reported in, in this order.
pub const SENSOR_STATES: [&str; 6] = ["not_started", "running", "restarting", "stopped", "given_up", "removed"];

impl Phase {
    /// The phase after `event`, one of the sensor's or of its group's (whose name is `group`);
    /// an ancestor's own events leave it as it is: their effect on it comes in its own events.
    pub(super) fn after(self, event: &SupervisionEvent, group: Option<&str>) -> Phase {
        let own = event.sensor.is_some();
        if !own && event.group.as_deref() != group {
            return self;
        }
        match (own, event.event) {
            (true, EventKind::Started | EventKind::Restarted | EventKind::Resumed | EventKind::Added) => Phase::Running,
            (true, EventKind::Removed) => Phase::Removed,
            (false, _) if self == Phase::Removed => self,
            (true, EventKind::Failed) => Phase::Down,
            (true, EventKind::RestartScheduled) => Phase::Restarting,
            (true, EventKind::Stopped) => Phase::Stopped,
            (_, EventKind::GaveUp) => Phase::GivenUp,
            (false, EventKind::Failed | EventKind::RestartScheduled | EventKind::Restarted) => match self {
                Phase::Stopped | Phase::GivenUp => self,
                _ => Phase::GroupDown,
            },
            _ => self,
        }
    }

    /// The state's name, as in `summary.json`.
    pub(super) fn state(self) -> &'static str {
        match self {
            Phase::NotStarted => "not_started",
            Phase::Running => "running",
            Phase::Down | Phase::Restarting | Phase::GroupDown => "restarting",
            Phase::Stopped => "stopped",
            Phase::GivenUp => "given_up",
            Phase::Removed => "removed",
        }
    }
}

/// A configured group's state from its own events, as in `summary.json`'s `groups[].state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum GroupPhase {
    Running,
    Restarting,
    /// It or a group it is nested in escalated; no decision yet.
    Stopped,
    /// Given up after it or a group it is nested in escalated.
    Escalated,
    /// Given up: its actor stopped too often.
    GivenUp,
}

impl GroupPhase {
    fn after(self, event: EventKind) -> GroupPhase {
        match event {
            EventKind::Started | EventKind::Restarted => GroupPhase::Running,
            EventKind::Failed | EventKind::RestartScheduled => GroupPhase::Restarting,
            EventKind::Escalated => GroupPhase::Stopped,
            EventKind::GaveUp if self == GroupPhase::Stopped => GroupPhase::Escalated,
            EventKind::GaveUp => GroupPhase::GivenUp,
            _ => self,
        }
    }

    fn state(self) -> &'static str {
        match self {
            GroupPhase::Running => "running",
            GroupPhase::Restarting => "restarting",
            GroupPhase::Stopped => "stopped",
            GroupPhase::Escalated => "escalated",
            GroupPhase::GivenUp => "given_up",
        }
    }
}

/// One reading as `/api/sensors/{id}` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReadingView {
    /// The round.
    pub round: u64,
    /// The value.
    pub value: f64,
    /// When it was read (RFC 3339).
    pub timestamp: String,
    /// How long the read took, in milliseconds.
    pub latency_ms: f64,
}

/// One anomaly as the API and the event stream show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnomalyView {
    /// The round.
    pub round: u64,
    /// The sensor.
    pub sensor: String,
    /// The detector's name.
    pub detector: String,
    /// What it found.
    pub detail: String,
    /// The value judged (none when the round got no reading).
    pub value: Option<f64>,
    /// The reading's or observation's time (RFC 3339).
    pub timestamp: String,
}

impl From<&Anomaly> for AnomalyView {
    fn from(a: &Anomaly) -> Self {
        AnomalyView {
            round: a.round,
            sensor: a.sensor.to_string(),
            detector: a.detector.to_string(),
            detail: a.detail.clone(),
            value: a.value,
            timestamp: crate::sinks::rfc3339(&a.timestamp),
        }
    }
}

/// One round as `/api/rounds` lists it and the event stream sends it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoundView {
    /// The round, from 1.
    pub round: u64,
    /// Its wall time, in milliseconds.
    pub wall_ms: f64,
    /// Ticks skipped just before it.
    pub skipped_before: u64,
    /// Its reads by outcome.
    pub reads: ReadCounts,
    /// Anomalies found in it.
    pub anomalies: u64,
}

impl From<&RoundSummary> for RoundView {
    fn from(s: &RoundSummary) -> Self {
        RoundView {
            round: s.round,
            wall_ms: ms(s.wall),
            skipped_before: s.skipped_before,
            reads: s.reads,
            anomalies: s.anomalies,
        }
    }
}

/// The recent rounds, `/api/rounds`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoundsView {
    /// The newest rounds, oldest first (at most [`ROUND_RING`]).
    pub rounds: Vec<RoundView>,
}

/// The recent anomalies of every sensor, `/api/anomalies`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnomaliesView {
    /// Anomalies found so far.
    pub total: u64,
    /// The newest, oldest first (at most [`ANOMALY_RING`]).
    pub anomalies: Vec<AnomalyView>,
}

/// One supervision event as `/api/events` and the event stream show it, with its place in the
/// run's journal (`seq`, from 1).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventView {
    /// Its position in the journal, from 1.
    pub seq: u64,
    /// When (RFC 3339).
    pub timestamp: String,
    /// The round in flight.
    pub round: u64,
    /// The sensor, for a sensor's event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sensor: Option<String>,
    /// The configured group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The output, for an output's own events (its connection).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// `started`, `failed`, `restart_scheduled`, ...
    pub event: &'static str,
    /// Why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// The backoff delay of a `restart_scheduled`, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<f64>,
    /// Restarts so far, where it applies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restarts: Option<u32>,
}

impl EventView {
    pub(super) fn new(seq: u64, e: &SupervisionEvent) -> Self {
        EventView {
            seq,
            timestamp: crate::sinks::rfc3339(&e.timestamp),
            round: e.round,
            sensor: e.sensor.as_deref().map(str::to_string),
            group: e.group.as_deref().map(str::to_string),
            output: e.output.as_deref().map(str::to_string),
            event: e.event.as_str(),
            cause: e.cause.clone(),
            delay_ms: e.delay.map(|d| d.as_secs_f64() * 1000.0),
            restarts: e.restarts,
        }
    }
}

/// A reading as kept: 32 bytes (its view is made when asked for).
#[derive(Debug, Clone, Copy, Default)]
struct LastReading {
    round: u64,
    value: f64,
    /// Microseconds since the Unix epoch.
    timestamp_us: i64,
    latency_us: u64,
}

impl From<&crate::LastReading> for LastReading {
    fn from(r: &crate::LastReading) -> Self {
        LastReading {
            round: r.round,
            value: r.value,
            timestamp_us: r.timestamp.timestamp_micros(),
            latency_us: r.latency.as_micros() as u64,
        }
    }
}

impl LastReading {
    fn view(&self) -> ReadingView {
        ReadingView {
            round: self.round,
            value: self.value,
            timestamp: chrono::DateTime::from_timestamp_micros(self.timestamp_us)
                .map(|t| crate::sinks::rfc3339(&t))
                .unwrap_or_default(),
            latency_ms: self.latency_us as f64 / 1000.0,
        }
    }
}

/// What a sensor is, from the configuration: its id and entry's settings, shared (`Arc`) with
/// the other sensors of its entry; the policy as an index into the distinct policies.
#[derive(Debug)]
struct SensorInfo {
    id: Arc<str>,
    kind: Arc<str>,
    unit: Arc<str>,
    group: Option<Arc<str>>,
    policy: u32,
}

/// A sensor as the live view follows it.
#[derive(Debug, Default)]
struct SensorLive {
    phase: Option<Phase>,
    restarts: u32,
    /// Its configured group's index, [`NO_GROUP`] for none (kept here, with what a reading
    /// touches anyway).
    group: u32,
    /// The newest anomalies, at most [`RECENT_ANOMALIES`].
    anomalies: VecDeque<AnomalyView>,
    anomaly_count: u64,
}

/// [`SensorLive::group`] of a sensor in no configured group.
const NO_GROUP: u32 = u32::MAX;

/// A sensor followed closely since it was asked for: its readings as polled, at most
/// [`HISTORY`], and when it was last asked for (the order of requests).
#[derive(Debug)]
struct Watch {
    at: usize,
    history: VecDeque<LastReading>,
    asked: u64,
    /// A poll of it is under way (one at a time).
    polling: bool,
}

impl SensorLive {
    fn phase(&self) -> Phase {
        self.phase.unwrap_or(Phase::NotStarted)
    }
}

/// A configured group as the live view follows it.
#[derive(Debug)]
struct GroupLive {
    spec: GroupSpec,
    phase: GroupPhase,
    restarts: u32,
    /// Its own sensors (indices), in configuration order.
    members: Vec<usize>,
    /// The groups nested in it (indices into the groups).
    children: Vec<usize>,
}

/// The run so far, as `/api/summary` shows it (names as in `summary.json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunView {
    /// Rounds reported.
    pub rounds: u64,
    /// Ticks skipped because a round overran the interval.
    pub skipped_rounds: u64,
    /// Reads by outcome.
    pub reads: ReadCounts,
    /// Sensor restarts (the journal's `restarted` events of sensors).
    pub restarts: u64,
    /// Anomalies per detector.
    pub anomalies: BTreeMap<String, u64>,
    /// Supervision events per kind.
    pub events: BTreeMap<String, u64>,
    /// Sensors per state.
    pub sensors: BTreeMap<&'static str, u64>,
    /// Configured groups per state.
    pub groups: BTreeMap<&'static str, u64>,
    /// The last round's wall time, in milliseconds.
    pub last_round_ms: Option<f64>,
    /// Messages the run's subscribers missed so far.
    pub subscribers_missed: u64,
    /// Whether the run has ended (its summary arrived).
    pub finished: bool,
    /// The run's seed, once it ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// A sensor in the tree.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SensorNode {
    /// Its id.
    pub id: String,
    /// `running`, `restarting`, `stopped`, `given_up` (or `not_started`).
    pub state: &'static str,
    /// Its restarts so far.
    pub restarts: u32,
    /// Its restart policy (none for a sensor added while the run goes on: its entry is in no
    /// stream).
    pub policy: Option<PolicyView>,
}

/// A sensor's restart policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyView {
    /// `permanent`, `transient` or `temporary`.
    pub restart: String,
    /// Restarts allowed within `within_ms`.
    pub max_restarts: u32,
    /// The intensity window, in milliseconds.
    pub within_ms: f64,
    /// The backoff's first delay, in milliseconds.
    pub backoff_min_ms: f64,
    /// The backoff's longest delay, in milliseconds.
    pub backoff_max_ms: f64,
    /// Consecutive timeouts that count as a failure.
    pub hung_after: u32,
}

impl From<&RestartPolicy> for PolicyView {
    fn from(p: &RestartPolicy) -> Self {
        PolicyView {
            restart: p.restart.to_string(),
            max_restarts: p.max_restarts,
            within_ms: ms(p.within),
            backoff_min_ms: ms(p.backoff_min),
            backoff_max_ms: ms(p.backoff_max),
            hung_after: p.hung_after,
        }
    }
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A group of the tree (a configured group, or `ungrouped`: the sensors that name no group,
/// which the run splits into shards by thread).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupNode {
    /// The `[[groups]]` name, or `ungrouped`.
    pub name: String,
    /// `group`, or `ungrouped`.
    pub kind: &'static str,
    /// `one_for_one`, `one_for_all` or `rest_for_one` (`ungrouped`: one for one, each sensor
    /// with its own intensity).
    pub strategy: &'static str,
    /// Group restarts allowed within `within_ms` (none for `ungrouped`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_restarts: Option<u32>,
    /// The group's intensity window, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub within_ms: Option<f64>,
    /// The group it is nested in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// The group's own state (`running` for `ungrouped`).
    pub state: &'static str,
    /// Restarts of the group as a whole.
    pub restarts: u32,
    /// Its own sensors.
    pub sensors: usize,
    /// Its own sensors by state.
    pub states: BTreeMap<&'static str, u64>,
    /// Its sensors, when listed: always in `/api/groups/{name}` (a page of them), in
    /// `/api/tree` when it has at most [`TREE_MEMBERS`]; else absent (`summarised`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<SensorNode>>,
    /// Whether `members` was left out (a large group: see `/api/groups/{name}`).
    pub summarised: bool,
    /// The groups nested in it.
    pub children: Vec<GroupNode>,
}

/// The whole tree, `/api/tree`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TreeView {
    /// The root's intensity for groups: restarts allowed within `within_ms`.
    pub root: RootView,
    /// The top-level groups, then `ungrouped` (when there are such sensors).
    pub groups: Vec<GroupNode>,
    /// Every sensor by state.
    pub states: BTreeMap<&'static str, u64>,
    /// At the end of the run: the shards the ungrouped sensors ran in, from the summary.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<crate::report::GroupSummary>,
}

/// The root supervisor.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RootView {
    /// Restarts of a stopped group actor allowed within `within_ms`.
    pub max_restarts: u32,
    /// The window, in milliseconds.
    pub within_ms: f64,
    /// Restarts of an escalated group allowed within `escalated_within_ms`.
    pub escalated_max_restarts: u32,
    /// That window, in milliseconds.
    pub escalated_within_ms: f64,
}

/// One sensor, `/api/sensors/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SensorView {
    /// Its id.
    pub id: String,
    /// Its kind.
    pub kind: String,
    /// Its unit.
    pub unit: String,
    /// Its configured group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Its state.
    pub state: &'static str,
    /// Its restarts so far.
    pub restarts: u32,
    /// Its restart policy (none for a sensor added while the run goes on).
    pub policy: Option<PolicyView>,
    /// Successful readings so far.
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
    /// Its newest readings, oldest first (at most [`LAST_READINGS`]): the newest one, and the
    /// ones before it that the live view polled while it was watched.
    pub last_readings: Vec<ReadingView>,
    /// Its newest anomalies, oldest first (at most [`RECENT_ANOMALIES`]).
    pub recent_anomalies: Vec<AnomalyView>,
    /// Its readings since it was first asked for, oldest first, at most [`HISTORY`]: every
    /// sensor asked for is watched, up to [`WATCHED`] at once, and polled once a round (a fast
    /// run's rounds can pass between two polls: then its history skips them).
    pub history: Vec<ReadingView>,
}

/// Recent supervision events, `/api/events?since=N`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventsView {
    /// The `seq` of the newest event so far (pass it as `since` next time).
    pub last: u64,
    /// The `seq` of the oldest event still kept; events before it are gone from the ring.
    pub oldest: u64,
    /// The events after `since`, oldest first.
    pub events: Vec<EventView>,
}

/// Everything the live view knows.
#[derive(Debug)]
pub(super) struct Model {
    sensors: Vec<SensorInfo>,
    /// The distinct restart policies (a few, whatever the number of sensors).
    policies: Vec<PolicyView>,
    live: Vec<SensorLive>,
    /// Sensor index by id (for an id added again after a removal, the newest).
    by_id: HashMap<Arc<str>, usize>,
    /// The sensors of the configuration; the ones added while the run goes on come after them,
    /// in the order of their `added` events, their run index learnt from their first reading.
    configured: usize,
    /// An added sensor's place here by its index in the run.
    added_at: HashMap<usize, usize>,
    groups: Vec<GroupLive>,
    /// Group index by name.
    group_by_name: HashMap<String, usize>,
    /// The sensors that name no group.
    ungrouped: Vec<usize>,
    root: RootView,
    pub(super) run: RunView,
    /// The newest events with their `seq` (their views are made when asked for).
    events: VecDeque<(u64, SupervisionEvent)>,
    seq: u64,
    shards: Vec<crate::report::GroupSummary>,
    /// The newest rounds.
    rounds: VecDeque<RoundView>,
    /// The newest anomalies of every sensor, and how many there were.
    anomalies: VecDeque<AnomalyView>,
    anomaly_total: u64,
    /// The sensors watched, at most [`WATCHED`].
    watches: Vec<Watch>,
    /// Requests for a sensor so far (the watches' clock).
    asked: u64,
    /// The run's summary, once it has ended.
    summary: Option<Arc<Summary>>,
}

impl Model {
    pub(super) fn new(config: &Config) -> Model {
        let groups: Vec<GroupLive> = config
            .groups
            .iter()
            .map(|g| GroupLive {
                spec: g.clone(),
                phase: GroupPhase::Running,
                restarts: 0,
                members: Vec::new(),
                children: Vec::new(),
            })
            .collect();
        let group_by_name: HashMap<String, usize> = groups
            .iter()
            .enumerate()
            .map(|(k, g)| (g.spec.name.clone(), k))
            .collect();
        let mut model = Model {
            live: Vec::with_capacity(config.sensors.len()),
            by_id: config
                .sensors
                .iter()
                .enumerate()
                .map(|(i, s)| (s.id.clone(), i))
                .collect(),
            configured: config.sensors.len(),
            added_at: HashMap::new(),
            ungrouped: Vec::new(),
            root: RootView {
                max_restarts: config.supervision.max_restarts,
                within_ms: ms(config.supervision.within),
                escalated_max_restarts: config.root.max_restarts,
                escalated_within_ms: ms(config.root.within),
            },
            run: RunView::default(),
            events: VecDeque::new(),
            seq: 0,
            shards: Vec::new(),
            rounds: VecDeque::new(),
            anomalies: VecDeque::new(),
            anomaly_total: 0,
            watches: Vec::new(),
            asked: 0,
            summary: None,
            sensors: Vec::with_capacity(config.sensors.len()),
            policies: Vec::new(),
            groups,
            group_by_name,
        };
        for k in 0..model.groups.len() {
            if let Some(&p) = model.groups[k]
                .spec
                .parent
                .as_ref()
                .and_then(|p| model.group_by_name.get(p))
            {
                model.groups[p].children.push(k);
            }
        }
        let mut distinct: Vec<&RestartPolicy> = Vec::new();
        for s in &config.sensors {
            // Consecutive sensors of an entry share their policy: look back at the last first.
            let policy = match distinct.iter().rposition(|&p| *p == s.policy) {
                Some(k) => k,
                None => {
                    distinct.push(&s.policy);
                    model.policies.push(PolicyView::from(&s.policy));
                    distinct.len() - 1
                }
            };
            model.sensors.push(SensorInfo {
                id: s.id.clone(),
                kind: s.kind.clone(),
                unit: s.unit.clone(),
                group: s.group.clone(),
                policy: policy as u32,
            });
        }
        for (i, s) in config.sensors.iter().enumerate() {
            let g = s.group.as_deref().and_then(|g| model.group_by_name.get(g).copied());
            match g {
                Some(g) => model.groups[g].members.push(i),
                None => model.ungrouped.push(i),
            }
            model.live.push(SensorLive {
                group: g.map_or(NO_GROUP, |g| g as u32),
                ..SensorLive::default()
            });
        }
        model.count_states();
        model
    }

    /// The configured groups (name, index), for the metrics' labels.
    pub(super) fn group_names(&self) -> impl Iterator<Item = &str> {
        self.groups.iter().map(|g| g.spec.name.as_str())
    }

    /// The sensors (id, configured group index) in configuration order.
    pub(super) fn sensor_ids(&self) -> impl Iterator<Item = &Arc<str>> {
        self.sensors.iter().map(|s| &s.id)
    }

    /// The index of sensor `id`.
    pub(super) fn index_of(&self, id: &str) -> Option<usize> {
        self.by_id.get(id).copied()
    }

    /// The place here of the run's sensor `index`: itself for a configured sensor; for an added
    /// one, the place its `added` event made for its id (`id` tells it),
    /// `None` if that event has not arrived (it was dropped, or is still queued).
    fn place(&mut self, index: usize, id: impl FnOnce() -> Arc<str>) -> Option<usize> {
        if index < self.configured {
            return Some(index);
        }
        if let Some(&at) = self.added_at.get(&index) {
            return Some(at);
        }
        let at = *self.by_id.get(&id()).filter(|&&at| at >= self.configured)?;
        if self.added_at.values().any(|&taken| taken == at) {
            return None;
        }
        self.added_at.insert(index, at);
        Some(at)
    }

    /// A sensor added while the run goes on (its `added` event): a place of its own, in its
    /// group (or among the ungrouped), its kind and unit unknown until its first reading.
    fn add(&mut self, id: &Arc<str>, group: Option<&Arc<str>>) -> usize {
        let at = self.sensors.len();
        let g = group.and_then(|g| self.group_by_name.get(&**g).copied());
        self.sensors.push(SensorInfo {
            id: id.clone(),
            kind: Arc::from(""),
            unit: Arc::from(""),
            group: group.cloned(),
            policy: u32::MAX,
        });
        self.live.push(SensorLive {
            group: g.map_or(NO_GROUP, |g| g as u32),
            ..SensorLive::default()
        });
        match g {
            Some(g) => self.groups[g].members.push(at),
            None => self.ungrouped.push(at),
        }
        self.by_id.insert(id.clone(), at);
        at
    }

    /// The configured group (index) of the sensor at `at`.
    fn group_index(&self, at: usize) -> Option<usize> {
        let group = self.live[at].group;
        (group != NO_GROUP).then_some(group as usize)
    }

    /// An anomaly arrived.
    pub(super) fn anomaly(&mut self, a: &Anomaly) -> AnomalyView {
        *self.run.anomalies.entry(a.detector.to_string()).or_default() += 1;
        let view = AnomalyView::from(a);
        let at = self.place(a.index, || a.sensor.clone());
        if let Some(live) = at.and_then(|at| self.live.get_mut(at)) {
            live.anomaly_count += 1;
            if live.anomalies.len() == RECENT_ANOMALIES {
                live.anomalies.pop_front();
            }
            live.anomalies.push_back(view.clone());
        }
        self.anomaly_total += 1;
        if self.anomalies.len() == ANOMALY_RING {
            self.anomalies.pop_front();
        }
        self.anomalies.push_back(view.clone());
        view
    }

    /// A journal event arrived: the states move, the ring keeps it; returns its `seq`.
    pub(super) fn event(&mut self, e: &SupervisionEvent) -> u64 {
        self.seq += 1;
        *self.run.events.entry(e.event.as_str().to_string()).or_default() += 1;
        if let (Some(id), EventKind::Added) = (&e.sensor, e.event) {
            self.add(id, e.group.as_ref());
        }
        match &e.sensor {
            Some(id) => {
                if let Some(&i) = self.by_id.get(id) {
                    let group = self.group_index(i).map(|g| self.groups[g].spec.name.as_str());
                    let live = &mut self.live[i];
                    live.phase = Some(live.phase().after(e, group));
                    if e.event == EventKind::Restarted {
                        live.restarts += 1;
                        self.run.restarts += 1;
                    }
                }
            }
            None => {
                if let Some(&g) = e.group.as_deref().and_then(|g| self.group_by_name.get(g)) {
                    let group = &mut self.groups[g];
                    group.phase = group.phase.after(e.event);
                    if e.event == EventKind::Restarted {
                        group.restarts += 1;
                    }
                    // A group that escalates stops with every group nested in it.
                    if e.event == EventKind::Escalated {
                        let mut below = self.groups[g].children.clone();
                        while let Some(k) = below.pop() {
                            let nested = &mut self.groups[k];
                            if !matches!(nested.phase, GroupPhase::GivenUp | GroupPhase::Escalated) {
                                nested.phase = GroupPhase::Stopped;
                            }
                            below.extend_from_slice(&nested.children);
                        }
                    }
                    // The group's members move with it.
                    for k in 0..self.groups[g].members.len() {
                        let i = self.groups[g].members[k];
                        let name = self.groups[g].spec.name.as_str();
                        let live = &mut self.live[i];
                        live.phase = Some(live.phase().after(e, Some(name)));
                    }
                }
            }
        }
        if self.events.len() == EVENT_RING {
            self.events.pop_front();
        }
        self.events.push_back((self.seq, e.clone()));
        self.seq
    }

    /// After a batch of events: the counts by state again.
    pub(super) fn count_states(&mut self) {
        let mut sensors: BTreeMap<&'static str, u64> = SENSOR_STATES.iter().map(|&s| (s, 0)).collect();
        for live in &self.live {
            *sensors.entry(live.phase().state()).or_default() += 1;
        }
        let mut groups = BTreeMap::new();
        for g in &self.groups {
            *groups.entry(g.phase.state()).or_default() += 1;
        }
        self.run.sensors = sensors;
        self.run.groups = groups;
    }

    /// A round's summary arrived; returns its view.
    pub(super) fn round(&mut self, s: &RoundSummary) -> RoundView {
        self.run.rounds += 1;
        self.run.skipped_rounds += s.skipped_before;
        let r = &mut self.run.reads;
        r.requested += s.reads.requested;
        r.ok += s.reads.ok;
        r.failed += s.reads.failed;
        r.timed_out += s.reads.timed_out;
        r.unavailable += s.reads.unavailable;
        self.run.last_round_ms = Some(ms(s.wall));
        self.run.subscribers_missed = s.subscribers_missed;
        let view = RoundView::from(s);
        if self.rounds.len() == ROUND_RING {
            self.rounds.pop_front();
        }
        self.rounds.push_back(view.clone());
        view
    }

    /// The rounds kept.
    pub(super) fn rounds(&self) -> RoundsView {
        RoundsView {
            rounds: self.rounds.iter().cloned().collect(),
        }
    }

    /// The anomalies kept.
    pub(super) fn anomalies(&self) -> AnomaliesView {
        AnomaliesView {
            total: self.anomaly_total,
            anomalies: self.anomalies.iter().cloned().collect(),
        }
    }

    /// The run's summary arrived: it ended.
    pub(super) fn finish(&mut self, summary: &Arc<Summary>) {
        self.summary = Some(summary.clone());
        self.run.finished = true;
        self.run.seed = Some(summary.seed);
        self.run.subscribers_missed = summary.subscribers.iter().map(|s| s.missed).sum();
        self.shards = summary.groups.iter().filter(|g| g.shard).cloned().collect();
    }

    fn sensor_node(&self, i: usize) -> SensorNode {
        SensorNode {
            id: self.sensors[i].id.to_string(),
            state: self.live[i].phase().state(),
            restarts: self.live[i].restarts,
            policy: self.policies.get(self.sensors[i].policy as usize).cloned(),
        }
    }

    fn states_of(&self, members: &[usize]) -> BTreeMap<&'static str, u64> {
        let mut states = BTreeMap::new();
        for &i in members {
            *states.entry(self.live[i].phase().state()).or_default() += 1;
        }
        states
    }

    /// Members `offset..offset + limit` of a group as nodes; `None` with `summarise` when the
    /// group has more than [`TREE_MEMBERS`].
    fn members(&self, members: &[usize], page: Option<(usize, usize)>) -> (Option<Vec<SensorNode>>, bool) {
        match page {
            Some((offset, limit)) => (
                Some(
                    members
                        .iter()
                        .skip(offset)
                        .take(limit)
                        .map(|&i| self.sensor_node(i))
                        .collect(),
                ),
                offset > 0 || members.len() > offset.saturating_add(limit),
            ),
            None if members.len() <= TREE_MEMBERS => {
                (Some(members.iter().map(|&i| self.sensor_node(i)).collect()), false)
            }
            None => (None, true),
        }
    }

    fn group_node(&self, k: usize, page: Option<(usize, usize)>, nested: bool) -> GroupNode {
        let g = &self.groups[k];
        let (members, summarised) = self.members(&g.members, page);
        GroupNode {
            name: g.spec.name.clone(),
            kind: "group",
            strategy: g.spec.strategy.as_str(),
            max_restarts: Some(g.spec.max_restarts),
            within_ms: Some(ms(g.spec.within)),
            parent: g.spec.parent.clone(),
            state: g.phase.state(),
            restarts: g.restarts,
            sensors: g.members.len(),
            states: self.states_of(&g.members),
            members,
            summarised,
            children: if nested {
                g.children.iter().map(|&c| self.group_node(c, None, true)).collect()
            } else {
                Vec::new()
            },
        }
    }

    fn ungrouped_node(&self, page: Option<(usize, usize)>) -> GroupNode {
        let (members, summarised) = self.members(&self.ungrouped, page);
        GroupNode {
            name: UNGROUPED.to_string(),
            kind: UNGROUPED,
            strategy: "one_for_one",
            max_restarts: None,
            within_ms: None,
            parent: None,
            state: "running",
            restarts: 0,
            sensors: self.ungrouped.len(),
            states: self.states_of(&self.ungrouped),
            members,
            summarised,
            children: Vec::new(),
        }
    }

    /// The tree: every top-level group with the groups nested in it, then `ungrouped`.
    pub(super) fn tree(&self) -> TreeView {
        let mut groups: Vec<GroupNode> = (0..self.groups.len())
            .filter(|&k| {
                let parent = self.groups[k].spec.parent.as_ref();
                parent.is_none_or(|p| !self.group_by_name.contains_key(p))
            })
            .map(|k| self.group_node(k, None, true))
            .collect();
        if !self.ungrouped.is_empty() {
            groups.push(self.ungrouped_node(None));
        }
        TreeView {
            root: self.root.clone(),
            groups,
            states: self.run.sensors.clone(),
            shards: self.shards.clone(),
        }
    }

    /// One group (or `ungrouped`) with a page of its members and without its children's
    /// members (their names are in `children`); `None` for an unknown name.
    pub(super) fn group(&self, name: &str, offset: usize, limit: usize) -> Option<GroupNode> {
        match self.group_by_name.get(name) {
            Some(&k) => {
                let mut node = self.group_node(k, Some((offset, limit)), false);
                node.children = self.groups[k]
                    .children
                    .iter()
                    .map(|&c| GroupNode {
                        members: None,
                        summarised: true,
                        ..self.group_node(c, None, false)
                    })
                    .collect();
                Some(node)
            }
            None if name == UNGROUPED && !self.ungrouped.is_empty() => Some(self.ungrouped_node(Some((offset, limit)))),
            None => None,
        }
    }

    /// Watches sensor `id` from now on (see [`WATCHED`]); whether it is one.
    pub(super) fn watch(&mut self, id: &str) -> bool {
        let Some(&at) = self.by_id.get(id) else { return false };
        self.asked += 1;
        if let Some(watch) = self.watches.iter_mut().find(|w| w.at == at) {
            watch.asked = self.asked;
            return true;
        }
        if self.watches.len() == WATCHED {
            let oldest = (0..self.watches.len())
                .min_by_key(|&k| self.watches[k].asked)
                .unwrap_or(0);
            self.watches.swap_remove(oldest);
        }
        self.watches.push(Watch {
            at,
            history: VecDeque::new(),
            asked: self.asked,
            polling: false,
        });
        true
    }

    /// The watched sensors not being polled, marked as being polled now (none once the run has
    /// ended).
    pub(super) fn poll_watches(&mut self) -> Vec<Arc<str>> {
        if self.run.finished {
            return Vec::new();
        }
        let mut due = Vec::new();
        for w in self.watches.iter_mut().filter(|w| !w.polling) {
            w.polling = true;
            due.push(self.sensors[w.at].id.clone());
        }
        due
    }

    /// A poll of watched sensor `id` ended, with its status if it was found.
    pub(super) fn polled(&mut self, id: &str, status: Option<&SensorStatus>) {
        let Some(&at) = self.by_id.get(id) else { return };
        if let Some(w) = self.watches.iter_mut().find(|w| w.at == at) {
            w.polling = false;
        }
        if let Some(status) = status {
            self.status(at, status);
        }
    }

    /// What a status of the sensor at `at` tells: its kind and unit (unknown here for a sensor
    /// added while the run goes on), and its newest reading, added to its history if it is
    /// watched and the reading is newer than the history's.
    fn status(&mut self, at: usize, status: &SensorStatus) {
        let info = &mut self.sensors[at];
        if info.kind.is_empty() {
            info.kind = status.kind.clone();
            info.unit = status.unit.clone();
        }
        let Some(newest) = status.analysis.last.as_ref().map(LastReading::from) else {
            return;
        };
        if let Some(w) = self.watches.iter_mut().find(|w| w.at == at) {
            if w.history.back().is_none_or(|r| r.round < newest.round) {
                if w.history.len() == HISTORY {
                    w.history.pop_front();
                }
                w.history.push_back(newest);
            }
        }
    }

    /// One sensor, with its statistics from `status` (asked of the run just now), else from the
    /// run's summary once it has ended; `None` for an unknown id.
    pub(super) fn sensor(&mut self, id: &str, status: Option<&SensorStatus>) -> Option<SensorView> {
        let &i = self.by_id.get(id)?;
        if let Some(status) = status {
            self.status(i, status);
        }
        let (spec, live) = (&self.sensors[i], &self.live[i]);
        let history: Vec<LastReading> = self
            .watches
            .iter()
            .find(|w| w.at == i)
            .map(|w| w.history.iter().copied().collect())
            .unwrap_or_default();
        let mut last: Vec<LastReading> = history[history.len().saturating_sub(LAST_READINGS)..].to_vec();
        let newest = status.and_then(|s| s.analysis.last.as_ref()).map(LastReading::from);
        if let Some(newest) = newest.filter(|n| last.last().is_none_or(|r| r.round < n.round)) {
            if last.len() == LAST_READINGS {
                last.remove(0);
            }
            last.push(newest);
        }
        let mut view = SensorView {
            id: spec.id.to_string(),
            kind: spec.kind.to_string(),
            unit: spec.unit.to_string(),
            group: spec.group.as_deref().map(str::to_string),
            state: live.phase().state(),
            restarts: live.restarts,
            policy: self.policies.get(spec.policy as usize).cloned(),
            count: 0,
            min: None,
            max: None,
            mean: None,
            stddev: None,
            ewma: None,
            anomalies: live.anomaly_count,
            last_readings: last.iter().map(LastReading::view).collect(),
            history: history.iter().map(LastReading::view).collect(),
            recent_anomalies: live.anomalies.iter().cloned().collect(),
        };
        if let Some(a) = status.map(|s| &s.analysis) {
            (view.count, view.min, view.max, view.mean) = (a.count, a.min, a.max, a.mean);
            (view.stddev, view.ewma, view.anomalies) = (a.stddev, a.ewma, a.anomalies);
        } else if let Some(s) = self.final_summary(i) {
            (view.count, view.min, view.max, view.mean) = (s.count, s.min, s.max, s.mean);
            (view.stddev, view.ewma, view.anomalies) = (s.stddev, s.ewma, s.anomalies);
        }
        Some(view)
    }

    /// The run's summary of sensor `id`, once the run has ended.
    pub(super) fn final_sensor(&self, id: &str) -> Option<crate::report::SensorSummary> {
        self.final_summary(*self.by_id.get(id)?)
    }

    /// The run's summary of the sensor at `i`, once the run has ended.
    fn final_summary(&self, i: usize) -> Option<crate::report::SensorSummary> {
        let sensors = &self.summary.as_ref()?.sensors;
        let id = &*self.sensors[i].id;
        // A configured sensor is at its index (removed ones included); an added one after them.
        match sensors.get(i).filter(|s| s.id == id) {
            Some(s) => Some(s),
            None => sensors.iter().rev().find(|s| s.id == id),
        }
    }

    /// The events kept after `since`.
    pub(super) fn events(&self, since: u64) -> EventsView {
        EventsView {
            last: self.seq,
            oldest: self.events.front().map_or(self.seq + 1, |(seq, _)| *seq),
            events: self
                .events
                .iter()
                .filter(|(seq, _)| *seq > since)
                .map(|(seq, e)| EventView::new(*seq, e))
                .collect(),
        }
    }
}

/// The name of the tree's node for the sensors that name no group.
pub const UNGROUPED: &str = "ungrouped";

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn event(sensor: Option<&str>, group: Option<&str>, kind: EventKind) -> SupervisionEvent {
        SupervisionEvent {
            timestamp: Utc.timestamp_opt(0, 0).unwrap(),
            round: 1,
            sensor: sensor.map(Into::into),
            group: group.map(Into::into),
            output: None,
            event: kind,
            cause: None,
            delay: None,
            restarts: None,
            backoff: None,
        }
    }
    use chrono::Utc;

    fn config() -> Config {
        crate::Collector::new()
            .parse(
                "[[groups]]\nname = \"bus\"\nstrategy = \"one_for_all\"\n[[groups]]\nname = \"sub\"\nparent = \"bus\"\n\
                 [[sensors]]\ncount = 3\n[[sensors]]\nname = \"b\"\ncount = 2\ngroup = \"bus\"\n\
                 [[sensors]]\nname = \"s\"\ncount = 1\ngroup = \"sub\"\n",
                "t.toml",
            )
            .unwrap()
    }

    /// A sensor's own events and its group's move it; an ancestor's do not.
    #[test]
    fn states_follow_the_journal() {
        let mut m = Model::new(&config());
        assert_eq!(m.run.sensors["not_started"], 6);
        for id in ["temperature-1", "temperature-2", "temperature-3", "b-1", "b-2", "s-1"] {
            m.event(&event(Some(id), None, EventKind::Started));
        }
        m.event(&event(Some("temperature-2"), None, EventKind::Failed));
        m.event(&event(Some("temperature-2"), None, EventKind::RestartScheduled));
        m.event(&event(Some("temperature-3"), None, EventKind::GaveUp));
        m.event(&event(None, Some("bus"), EventKind::RestartScheduled));
        m.count_states();
        let state = |m: &mut Model, id: &str| m.sensor(id, None).unwrap().state;
        assert_eq!(state(&mut m, "temperature-1"), "running");
        assert_eq!(state(&mut m, "temperature-2"), "restarting");
        assert_eq!(state(&mut m, "temperature-3"), "given_up");
        assert_eq!(state(&mut m, "b-1"), "restarting");
        assert_eq!(state(&mut m, "s-1"), "running", "an ancestor's event leaves it");
        m.event(&event(Some("temperature-2"), None, EventKind::Restarted));
        m.event(&event(None, Some("bus"), EventKind::Restarted));
        m.event(&event(Some("b-1"), Some("bus"), EventKind::Started));
        m.count_states();
        assert_eq!(m.sensor("temperature-2", None).unwrap().restarts, 1);
        assert_eq!(m.run.restarts, 1);
        assert_eq!(
            m.run
                .sensors
                .iter()
                .filter(|(_, &n)| n > 0)
                .map(|(&s, &n)| (s, n))
                .collect::<Vec<_>>(),
            [("given_up", 1), ("restarting", 1), ("running", 4)]
        );
        let tree = m.tree();
        assert_eq!(tree.groups.len(), 2, "bus, then ungrouped");
        assert_eq!(tree.groups[0].children[0].name, "sub");
        assert_eq!(tree.groups[0].restarts, 1);
        assert_eq!(tree.groups[1].sensors, 3);
        assert_eq!(m.events(9).events.len(), m.events(0).events.len() - 9);
    }

    /// Large groups are summarised in the tree and paged in the drill-down.
    #[test]
    fn large_groups_are_summarised() {
        let text = format!("[[sensors]]\ncount = {}\n", TREE_MEMBERS + 1);
        let m = Model::new(&crate::Collector::new().parse(&text, "t.toml").unwrap());
        let tree = m.tree();
        assert!(tree.groups[0].summarised && tree.groups[0].members.is_none());
        assert_eq!(tree.groups[0].states["not_started"], TREE_MEMBERS as u64 + 1);
        let page = m.group(UNGROUPED, 100, 50).unwrap();
        assert_eq!(page.members.unwrap().len(), 1);
        assert!(m.group("nope", 0, 10).is_none());
    }

    /// A status with the newest reading of round `round`.
    fn status(m: &Model, id: &str, round: u64) -> SensorStatus {
        let at = m.index_of(id).unwrap();
        let analysis = crate::SensorAnalysis {
            count: round,
            last: Some(crate::LastReading {
                round,
                value: round as f64 / 2.0,
                timestamp: chrono::DateTime::from_timestamp(round as i64, 0).unwrap(),
                latency: std::time::Duration::from_micros(1_500),
            }),
            ..Default::default()
        };
        crate::control::testing::status(id, at, analysis)
    }

    /// A watched sensor's history holds each newer reading polled once, the oldest going past
    /// [`HISTORY`]; its last readings are the history's newest, the status's own newest last.
    #[test]
    fn the_history_holds_each_newer_reading_once() {
        let mut m = Model::new(&config());
        let rounds = |v: &[ReadingView]| v.iter().map(|r| r.round).collect::<Vec<_>>();
        // Not watched: the newest only, no history.
        let v = m.sensor("b-1", Some(&status(&m, "b-1", 3))).unwrap();
        assert_eq!((rounds(&v.last_readings), rounds(&v.history)), (vec![3], vec![]));
        assert_eq!((v.count, v.last_readings[0].latency_ms), (3, 1.5));
        assert!(m.watch("b-1"));
        assert_eq!(m.poll_watches().len(), 1);
        assert!(m.poll_watches().is_empty(), "one poll at a time");
        let s = status(&m, "b-1", 4);
        m.polled("b-1", Some(&s));
        m.polled("b-1", Some(&s));
        for round in [4, 6, 5, 7] {
            let s = status(&m, "b-1", round);
            m.polled("b-1", Some(&s));
        }
        let v = m.sensor("b-1", None).unwrap();
        assert_eq!(rounds(&v.history), [4, 6, 7], "each round once, older ones left out");
        assert_eq!(v.count, 0, "no statistics without a status or the summary");
        let v = m.sensor("b-1", Some(&status(&m, "b-1", 9))).unwrap();
        assert_eq!(rounds(&v.last_readings), [4, 6, 7, 9]);
        assert_eq!(v.history.len(), 4);
        for round in 10..(10 + HISTORY as u64 + 3) {
            let s = status(&m, "b-1", round);
            m.polled("b-1", Some(&s));
        }
        let v = m.sensor("b-1", None).unwrap();
        assert_eq!(v.history.len(), HISTORY);
        assert_eq!(v.history.last().unwrap().round, 9 + HISTORY as u64 + 3);
        assert_eq!(rounds(&v.last_readings), rounds(&v.history[HISTORY - LAST_READINGS..]));
        assert_eq!(m.poll_watches().len(), 1, "polled again once answered");
    }

    /// At most [`WATCHED`] sensors are watched; a new one ends the watch asked for least
    /// recently.
    #[test]
    fn the_watch_asked_for_least_recently_ends_first() {
        let config = crate::Collector::new()
            .parse(&format!("[[sensors]]\ncount = {}\n", WATCHED + 2), "t.toml")
            .unwrap();
        let mut model = Model::new(&config);
        let id = |k: usize| format!("temperature-{k:02}");
        for k in 1..=WATCHED {
            assert!(model.watch(&id(k)));
        }
        assert!(model.watch(&id(1)), "asked for again: now the most recent");
        assert!(model.watch(&id(WATCHED + 1)));
        let watched: Vec<bool> = (0..model.live.len())
            .map(|at| model.watches.iter().any(|w| w.at == at))
            .collect();
        let mut expected = vec![true; WATCHED + 1];
        expected[1] = false;
        expected.push(false);
        assert_eq!(watched, expected);
        assert_eq!(model.watches.len(), WATCHED);
        assert!(!model.watch("nope"));
    }

    /// The ring keeps the newest events only.
    #[test]
    fn the_event_ring_is_bounded() {
        let mut m = Model::new(&config());
        for _ in 0..EVENT_RING + 10 {
            m.event(&event(Some("b-1"), Some("bus"), EventKind::TimedOut));
        }
        let all = m.events(0);
        assert_eq!(
            (all.events.len(), all.oldest, all.last),
            (EVENT_RING, 11, EVENT_RING as u64 + 10)
        );
    }
}
