//! The live view: a [`LiveView`] actor that follows a run through the public streams, and an
//! actix-web server ([`LiveServer`]) that shows it: `/metrics` for Prometheus and a JSON API
//! (the supervision tree, a sensor, recent events, the run so far, and a server-sent event
//! stream). `sensor-actors run --http ADDR` (or `[http]`) starts both; docs/live-view.md has
//! the metrics and the endpoints.
//!
//! The live view is attached like any user's subscriber, with [`LiveView::attach`]: it uses the
//! crate's public API only (the streams, [`Control`], [`Config`], [`Summary`](crate::Summary)),
//! with a bounded, lossy [`Delivery`] on every stream, so a slow scraper or browser never holds
//! the run back: what it misses is counted in the run's `subscribers` and in
//! `sensor_actors_subscriber_dropped_messages_total`. Each request of the server is a message
//! to the actor ([`RenderMetrics`], [`DescribeTree`], ...), answered from its state on its own
//! thread; the server's worker only encodes the answer.
//!
//! It does not take the readings: a round's summary carries what the metrics need of them
//! (read latencies, reads by group), and a sensor's statistics and newest reading are asked of
//! the run ([`Control::status`]) when someone looks at it, and once a round for the sensors
//! watched. So its cost does not grow with the readings: a few messages a round.
//!
//! What it knows is bounded whatever the run's length: per sensor its state and
//! [`RECENT_ANOMALIES`] anomalies; [`EVENT_RING`] journal events; the readings of [`WATCHED`]
//! sensors; per client of `/api/stream` a queue of [`STREAM_QUEUE`] messages.

mod metrics;
mod model;
mod outputs;
mod server;

pub use outputs::OutputCounts;

use actix::{Actor, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, MessageResult, WrapFuture};
use actix_web::web::Bytes;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::config::{Config, HttpConfig};
use crate::streams::{Anomalies, Delivery, Journal, RoundSummary, RunSummary};
use crate::{Collector, Control};
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

/// The live view's queues, in messages, per stream. The journal's queue is the longest: a
/// state is only as right as the journal it was built from.
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
    /// The run's control, for the sensors' statuses (set by [`LiveView::attach`]).
    control: Control,
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
            control: Control::default(),
        }
    }

    /// Subscribes `live` to the streams of `collector` it follows (all but the readings),
    /// bounded and lossy (named `live-view/<stream>` in the summary's `subscribers`), and gives
    /// it the collector's [`Control`] for the sensors' statuses.
    pub fn attach(live: &Addr<LiveView>, collector: Collector) -> Collector {
        live.do_send(UseControl(collector.control()));
        let bounded = |n: usize, stream: &str| Delivery::bounded(n).named(format!("live-view/{stream}"));
        collector
            .subscribe_with(live.clone().recipient::<Anomalies>(), bounded(OTHER_QUEUE, "anomalies"))
            .subscribe_with(live.clone().recipient::<Journal>(), bounded(JOURNAL_QUEUE, "journal"))
            .subscribe_with(live.clone().recipient::<RoundSummary>(), bounded(OTHER_QUEUE, "rounds"))
            .subscribe_with(live.clone().recipient::<RunSummary>(), bounded(OTHER_QUEUE, "end"))
    }

    /// Asks the run for the status of each watched sensor not being asked already; each answer
    /// adds the sensor's newest reading to its history.
    fn poll_watches(&mut self, ctx: &mut Context<Self>) {
        for id in self.model.poll_watches() {
            let control = self.control.clone();
            let asked = async move {
                let status = control.status(REQUESTER, &id).await.ok();
                (id, status)
            };
            ctx.spawn(asked.into_actor(self).map(|(id, status), live, _| {
                live.model.polled(&id, status.as_ref());
            }));
        }
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

/// Gives the live view the run's [`Control`] ([`LiveView::attach`]).
#[derive(Message)]
#[rtype(result = "()")]
struct UseControl(Control);

impl Handler<UseControl> for LiveView {
    type Result = ();

    fn handle(&mut self, msg: UseControl, _ctx: &mut Context<Self>) {
        self.control = msg.0;
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

    fn handle(&mut self, s: RoundSummary, ctx: &mut Context<Self>) {
        let view = self.model.round(&s);
        self.metrics.round(&s);
        self.broadcast("round", &view);
        self.poll_watches(ctx);
    }
}

impl Handler<RunSummary> for LiveView {
    type Result = ();

    fn handle(&mut self, end: RunSummary, _ctx: &mut Context<Self>) {
        self.model.finish(&end.summary);
        // The per-sensor series as the run ended.
        for (k, id) in self.metrics.series_sensors().iter().enumerate() {
            if let Some(s) = self.model.final_sensor(id) {
                self.metrics.sensor_figures(k, s.count, s.last);
            }
        }
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
    type Result = actix::ResponseActFuture<Self, String>;

    /// With per-sensor series, their sensors' statuses are asked for first (while the run goes
    /// on): the scrape shows them as they are now.
    fn handle(&mut self, _: RenderMetrics, _ctx: &mut Context<Self>) -> Self::Result {
        let ids = if self.model.run.finished {
            Vec::new()
        } else {
            self.metrics.series_sensors()
        };
        let control = self.control.clone();
        let asked = async move {
            let asks = ids.iter().map(|id| control.status(REQUESTER, id));
            futures::future::join_all(asks).await
        };
        Box::pin(asked.into_actor(self).map(|statuses, live, _| {
            for (k, status) in statuses.iter().enumerate() {
                if let Ok(status) = status {
                    live.metrics.sensor_status(k, status);
                }
            }
            live.metrics.render(&live.model)
        }))
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
    type Result = actix::ResponseActFuture<Self, Option<SensorView>>;

    /// Its statistics and newest reading are asked of the run (while it goes on), and it is
    /// watched from now on.
    fn handle(&mut self, q: DescribeSensor, _ctx: &mut Context<Self>) -> Self::Result {
        let known = self.model.watch(&q.id);
        let control = self.control.clone();
        let running = known && !self.model.run.finished;
        let asked = async move {
            let status = match running {
                true => control.status(REQUESTER, &q.id).await.ok(),
                false => None,
            };
            (q.id, status)
        };
        Box::pin(
            asked
                .into_actor(self)
                .map(|(id, status), live, _| live.model.sensor(&id, status.as_ref())),
        )
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
