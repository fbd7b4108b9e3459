//! The live view: a [`LiveView`] actor that follows a run through the public streams, and an
//! actix-web server ([`LiveServer`]) that shows it: `/metrics` for Prometheus and a JSON API
//! (the supervision tree, a sensor, recent events, the run so far, and a server-sent event
//! stream). `sensor-actors run --http ADDR` (or `[http]`) starts both; docs/live-view.md has
//! the metrics and the endpoints.
//!
//! The live view is attached like any user's subscriber, with [`LiveView::attach`]: it uses the
//! crate's public API only (the streams, [`Config`], [`Summary`](crate::Summary)), with a
//! bounded, lossy [`Delivery`] on every stream, so a slow scraper or browser never holds the run
//! back: what it misses is counted in the run's `subscribers` and in
//! `sensor_actors_subscriber_dropped_messages_total`. Each request of the server is a message
//! to the actor ([`RenderMetrics`], [`DescribeTree`], ...), answered from its state on its own
//! thread; the server's worker only encodes the answer.
//!
//! What it knows is bounded whatever the run's length: per sensor its statistics, its last
//! [`LAST_READINGS`] readings and [`RECENT_ANOMALIES`] anomalies; [`EVENT_RING`] journal events;
//! per client of `/api/stream` a queue of [`STREAM_QUEUE`] messages.

mod metrics;
mod model;
mod outputs;
mod server;

pub use outputs::OutputCounts;

use actix::{Actor, Addr, Context, Handler, Message, MessageResult};
use actix_web::web::Bytes;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::config::{Config, HttpConfig};
use crate::streams::{Anomalies, Delivery, Journal, Readings, RoundSummary, RunSummary};
use crate::Collector;
use metrics::Metrics;
use model::Model;

pub use metrics::CONTENT_TYPE;
pub use model::{
    AnomaliesView, AnomalyView, EventView, EventsView, GroupNode, PolicyView, ReadingView, RootView, RoundView,
    RoundsView, RunView, SensorNode, SensorView, TreeView, ANOMALY_RING, EVENT_RING, HISTORY, LAST_READINGS,
    RECENT_ANOMALIES, ROUND_RING, SENSOR_STATES, TREE_MEMBERS, UNGROUPED, WATCHED,
};
pub use server::{configure, LiveServer, DASHBOARD, DEFAULT_PAGE, MAX_PAGE, REQUESTER};

/// Messages waiting for one client of `/api/stream`; more are dropped (and counted) while it
/// lags.
pub const STREAM_QUEUE: usize = 256;

/// The live view's queues, in messages, per stream. Readings are the big ones (one message
/// holds a whole round's outcomes): two rounds at most are held for it. The journal's queue is
/// the longest: a state is only as right as the journal it was built from.
const READINGS_QUEUE: usize = 2;
const JOURNAL_QUEUE: usize = 1_024;
const OTHER_QUEUE: usize = 64;

/// Follows a run through the public streams; answers the server's requests.
pub struct LiveView {
    model: Model,
    metrics: Metrics,
    /// The clients of `/api/stream`: each a bounded queue, read by its response on the server's
    /// worker. A closed one (the client went away) is removed at the next message; all are
    /// dropped, ending their responses, after the run's summary.
    followers: Vec<Follower>,
}

struct Follower {
    queue: mpsc::Sender<Bytes>,
}

impl std::fmt::Debug for LiveView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveView")
            .field("rounds", &self.model.run.rounds)
            .field("followers", &self.followers.len())
            .finish()
    }
}

impl LiveView {
    /// A live view of a run of `config` (before it is run), with `http`'s per-sensor series
    /// settings.
    pub fn new(config: &Config, http: &HttpConfig) -> LiveView {
        let model = Model::new(config);
        let per_sensor = if http.sensor_series { http.max_sensor_series } else { 0 };
        let metrics = Metrics::new(&model, per_sensor);
        LiveView {
            model,
            metrics,
            followers: Vec::new(),
        }
    }

    /// Subscribes `live` to every stream of `collector`, bounded and lossy (named
    /// `live-view/<stream>` in the summary's `subscribers`).
    pub fn attach(live: &Addr<LiveView>, collector: Collector) -> Collector {
        let bounded = |n: usize, stream: &str| Delivery::bounded(n).named(format!("live-view/{stream}"));
        collector
            .subscribe_with(
                live.clone().recipient::<Readings>(),
                bounded(READINGS_QUEUE, "readings"),
            )
            .subscribe_with(live.clone().recipient::<Anomalies>(), bounded(OTHER_QUEUE, "anomalies"))
            .subscribe_with(live.clone().recipient::<Journal>(), bounded(JOURNAL_QUEUE, "journal"))
            .subscribe_with(live.clone().recipient::<RoundSummary>(), bounded(OTHER_QUEUE, "rounds"))
            .subscribe_with(live.clone().recipient::<RunSummary>(), bounded(OTHER_QUEUE, "end"))
    }

    /// Sends one server-sent event to every client, dropping it for those that lag.
    fn broadcast(&mut self, event: &str, data: &impl Serialize) {
        if self.followers.is_empty() {
            return;
        }
        let Ok(json) = serde_json::to_string(data) else {
            return;
        };
        let frame = Bytes::from(format!("event: {event}\ndata: {json}\n\n"));
        let mut dropped = 0;
        self.followers.retain(|f| match f.queue.try_send(frame.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                dropped += 1;
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
        if dropped > 0 {
            self.metrics.stream_dropped(dropped);
        }
    }
}

impl Actor for LiveView {
    type Context = Context<Self>;
}

impl Handler<Readings> for LiveView {
    type Result = ();

    fn handle(&mut self, readings: Readings, _ctx: &mut Context<Self>) {
        let round = readings.round();
        let mut latencies = metrics::LatencyCounts::default();
        // Counted here, added to the shared counters once a round.
        let mut groups = vec![0u64; self.model.group_count()];
        let per_sensor = self.metrics.per_sensor();
        for r in readings.iter() {
            if let Some(g) = self.model.reading(round, &r) {
                groups[g] += 1;
            }
            latencies.observe(r.reading.latency.as_micros() as u64);
            if per_sensor {
                self.metrics.sensor_reading(r.index, r.reading.value);
            }
        }
        self.metrics.group_readings(&groups);
        self.metrics.latencies(&latencies);
    }
}

impl Handler<Anomalies> for LiveView {
    type Result = ();

    fn handle(&mut self, anomalies: Anomalies, _ctx: &mut Context<Self>) {
        for a in anomalies.list.iter() {
            self.metrics.anomaly(&a.detector);
            let view = self.model.anomaly(a);
            self.broadcast("anomaly", &view);
        }
    }
}

impl Handler<Journal> for LiveView {
    type Result = ();

    fn handle(&mut self, journal: Journal, _ctx: &mut Context<Self>) {
        for e in journal.iter() {
            let seq = self.model.event(&e);
            let restarted = match (&e.sensor, e.event) {
                (Some(id), crate::data::EventKind::Restarted) => self.model.index_of(id),
                _ => None,
            };
            self.metrics.event(e.event.as_str(), restarted);
            if !self.followers.is_empty() {
                self.broadcast("supervision", &EventView::new(seq, &e));
            }
        }
        self.model.count_states();
    }
}

impl Handler<RoundSummary> for LiveView {
    type Result = ();

    fn handle(&mut self, s: RoundSummary, _ctx: &mut Context<Self>) {
        let view = self.model.round(&s);
        self.metrics.round(&s);
        self.broadcast("round", &view);
    }
}

impl Handler<RunSummary> for LiveView {
    type Result = ();

    fn handle(&mut self, end: RunSummary, _ctx: &mut Context<Self>) {
        self.model.finish(&end.summary);
        self.metrics.dropped_so_far(self.model.run.subscribers_missed);
        let run = self.model.run.clone();
        self.broadcast("end", &run);
        // The run is over: every event stream ends here.
        self.followers.clear();
    }
}

/// Renders `/metrics` (OpenMetrics text).
#[derive(Debug, Message)]
#[rtype(result = "String")]
pub struct RenderMetrics;

impl Handler<RenderMetrics> for LiveView {
    type Result = String;

    fn handle(&mut self, _: RenderMetrics, _ctx: &mut Context<Self>) -> String {
        self.metrics.render(&self.model)
    }
}

/// Describes the supervision tree (`/api/tree`).
#[derive(Debug, Message)]
#[rtype(result = "TreeView")]
pub struct DescribeTree;

impl Handler<DescribeTree> for LiveView {
    type Result = MessageResult<DescribeTree>;

    fn handle(&mut self, _: DescribeTree, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(self.model.tree())
    }
}

/// Describes one group with a page of its sensors (`/api/groups/{name}`).
#[derive(Debug, Message)]
#[rtype(result = "Option<GroupNode>")]
pub struct DescribeGroup {
    /// The group's name, or [`UNGROUPED`].
    pub name: String,
    /// The first member listed.
    pub offset: usize,
    /// How many members at most.
    pub limit: usize,
}

impl Handler<DescribeGroup> for LiveView {
    type Result = Option<GroupNode>;

    fn handle(&mut self, q: DescribeGroup, _ctx: &mut Context<Self>) -> Self::Result {
        self.model.group(&q.name, q.offset, q.limit)
    }
}

/// Describes one sensor (`/api/sensors/{id}`).
#[derive(Debug, Message)]
#[rtype(result = "Option<SensorView>")]
pub struct DescribeSensor {
    /// The sensor's id.
    pub id: String,
}

impl Handler<DescribeSensor> for LiveView {
    type Result = Option<SensorView>;

    fn handle(&mut self, q: DescribeSensor, _ctx: &mut Context<Self>) -> Self::Result {
        self.model.watch(&q.id);
        self.model.sensor(&q.id)
    }
}

/// Lists the recent journal events after `since` (`/api/events?since=N`).
#[derive(Debug, Message)]
#[rtype(result = "EventsView")]
pub struct ListEvents {
    /// The `seq` of the last event already seen (0: from the oldest kept).
    pub since: u64,
}

impl Handler<ListEvents> for LiveView {
    type Result = MessageResult<ListEvents>;

    fn handle(&mut self, q: ListEvents, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(self.model.events(q.since))
    }
}

/// Summarises the run so far (`/api/summary`).
#[derive(Debug, Message)]
#[rtype(result = "RunView")]
pub struct Summarise;

impl Handler<Summarise> for LiveView {
    type Result = MessageResult<Summarise>;

    fn handle(&mut self, _: Summarise, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(self.model.run.clone())
    }
}

/// Lists the recent rounds (`/api/rounds`).
#[derive(Debug, Message)]
#[rtype(result = "RoundsView")]
pub struct ListRounds;

impl Handler<ListRounds> for LiveView {
    type Result = MessageResult<ListRounds>;

    fn handle(&mut self, _: ListRounds, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(self.model.rounds())
    }
}

/// Lists the recent anomalies of every sensor (`/api/anomalies`).
#[derive(Debug, Message)]
#[rtype(result = "AnomaliesView")]
pub struct ListAnomalies;

impl Handler<ListAnomalies> for LiveView {
    type Result = MessageResult<ListAnomalies>;

    fn handle(&mut self, _: ListAnomalies, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(self.model.anomalies())
    }
}

/// Follows the events from now on (`/api/stream`): a queue of server-sent event frames
/// (`supervision`, `anomaly`, `round`, then `end`), closed after the run's end; `None` once the
/// run has ended.
#[derive(Debug, Message)]
#[rtype(result = "Option<mpsc::Receiver<Bytes>>")]
pub struct Follow;

impl Handler<Follow> for LiveView {
    type Result = Option<mpsc::Receiver<Bytes>>;

    fn handle(&mut self, _: Follow, _ctx: &mut Context<Self>) -> Self::Result {
        if self.model.run.finished {
            return None;
        }
        let (queue, receiver) = mpsc::channel(STREAM_QUEUE);
        self.followers.push(Follower { queue });
        Some(receiver)
    }
}
