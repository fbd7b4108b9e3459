//! [`MqttOutput`]: readings, anomalies, supervision events, round summaries and the run's
//! summary published as JSON to an MQTT broker, a subscriber attached like any user's
//! ([`MqttOutput::attach`]).
//!
//! Each message's payload is the JSON line the `--out` files hold for it (`readings.jsonl`,
//! `anomalies.jsonl`, `events.jsonl`), a round's counts, or `summary.json`; its topic comes
//! from the stream's template (`sensors/{id}/reading`, ...). The handlers only format and queue:
//! a bounded outbox holds what no broker has taken yet (`buffer` messages), and what does not
//! fit is dropped and counted per stream. A connection task (`mqtt/link.rs`), supervised by
//! this actor, delivers the outbox with backoff and failover over the broker list, the
//! collector's status (retained: birth `online`, last will `lost`, `offline` at a clean end)
//! going first on every connection.
//!
//! The run's end asks it to [`Settle`] before the run's summary is made: it waits up to
//! `flush_timeout` for the outbox to drain and reports its counts for the summary's `outputs`
//! (per stream, `produced = published + dropped + too_large + unsent + held`). [`Finish`] after
//! the run delivers the summary, closes and answers with the final [`MqttStats`]: per stream,
//! `produced = published + dropped + too_large + unsent`. The two wait `flush_timeout` at most
//! in all: after a settle that gave up, [`Finish`] closes at once.

use std::sync::Arc;

use actix::{
    Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, MessageResult, Recipient, ResponseActFuture,
    WrapFuture,
};
use serde::Serialize;
use tokio::sync::oneshot;

use super::jsonl::{AnomalyLine, EventLine, ReadingLine};
use crate::live::OutputCounts;
use crate::mqtt::link::{self, OutMessage, Shared, STREAMS};
use crate::mqtt::{Backoff, MqttOutputConfig, Placeholder, MAX_MESSAGE};
use crate::report::OutputReport;
use crate::streams::{Anomalies, Delivery, Journal, Readings, RoundSummary, RunSummary, Settle};
use crate::Collector;

pub use crate::mqtt::link::{LinkEvent, StreamCounts};

/// The MQTT output, as an actor.
///
/// ```no_run
/// use actix::Actor;
/// use sensor_actors::mqtt::{Broker, MqttOutputConfig};
/// use sensor_actors::sinks::{Finish, MqttOutput};
/// use sensor_actors::Collector;
///
/// # async fn demo(config: sensor_actors::Config) -> anyhow::Result<()> {
/// let broker = Broker::parse("127.0.0.1:1883").map_err(anyhow::Error::msg)?;
/// let output = MqttOutput::new(MqttOutputConfig::new(vec![broker])).start();
/// let collector = MqttOutput::attach(&output, Collector::new());
/// let summary = collector.run(config, std::future::pending()).await?;
/// let stats = output.send(Finish).await?;
/// assert_eq!(stats.readings().produced, summary.reads.ok);
/// # Ok(())
/// # }
/// ```
pub struct MqttOutput {
    config: Arc<MqttOutputConfig>,
    /// The outbox, the counts and the journal, shared with the connection task.
    shared: Arc<Shared>,
    /// Restarts of the connection task after a panic, with backoff.
    backoff: Backoff,
    restarts: u64,
    /// Where the counts go after every round and at the end (the live view's `/metrics`).
    report: Option<Recipient<OutputCounts>>,
    /// Set when [`Settle`] gave up waiting with messages held: its deadline, which
    /// [`Finish`] keeps (the end waits `flush_timeout` at most in all).
    gave_up: Option<tokio::time::Instant>,
}

impl std::fmt::Debug for MqttOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttOutput")
            .field("brokers", &self.config.brokers)
            .field("client_id", &self.config.client_id)
            .finish()
    }
}

/// What the output did over a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct MqttStats {
    /// Per stream, by name (`readings`, `anomalies`, `events`, `rounds`, `summary`).
    pub streams: Vec<(String, StreamCounts)>,
    /// Connections made (the first included).
    pub connections: u64,
    /// Connection attempts that failed.
    pub connection_failures: u64,
    /// Restarts of the connection task after a panic.
    pub link_restarts: u64,
    /// Whether a broker is connected now.
    pub connected: bool,
    /// The connection's journal, oldest first (the last 1,024 events).
    pub journal: Vec<LinkEvent>,
}

impl MqttStats {
    /// The counts of stream `name`.
    pub fn stream(&self, name: &str) -> StreamCounts {
        self.streams
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, c)| *c)
            .unwrap_or_default()
    }

    /// The readings' counts.
    pub fn readings(&self) -> StreamCounts {
        self.stream("readings")
    }

    /// Messages dropped (buffer full, or too large) over every stream.
    pub fn dropped(&self) -> u64 {
        self.streams.iter().map(|(_, c)| c.dropped + c.too_large).sum()
    }

    /// Messages left unsent at the end over every stream.
    pub fn unsent(&self) -> u64 {
        self.streams.iter().map(|(_, c)| c.unsent).sum()
    }

    /// One line for the summary: `mqtt: 2000 published, 0 dropped, 0 unsent; 1 connection, 0 failed`.
    pub fn render_line(&self) -> String {
        let published: u64 = self.streams.iter().map(|(_, c)| c.published).sum();
        format!(
            "mqtt: {published} messages published, {} dropped (buffer full or too large), {} unsent at the end; {} connection{}, {} failed attempt{}\n",
            self.dropped(),
            self.unsent(),
            self.connections,
            if self.connections == 1 { "" } else { "s" },
            self.connection_failures,
            if self.connection_failures == 1 { "" } else { "s" },
        )
    }
}

impl MqttOutput {
    /// An output with `config`; it connects when started.
    pub fn new(config: MqttOutputConfig) -> MqttOutput {
        let shared = Shared::default();
        {
            let mut s = shared.state.lock().unwrap_or_else(|e| e.into_inner());
            s.bound = config.buffer;
        }
        MqttOutput {
            backoff: Backoff::new(config.backoff_min, config.backoff_max),
            config: Arc::new(config),
            shared: Arc::new(shared),
            restarts: 0,
            report: None,
            gave_up: None,
        }
    }

    /// Sends the counts to `recipient` after every round and at the end, as
    /// [`OutputCounts`] named `mqtt` (the live view's `sensor_actors_output_messages_total`).
    pub fn report_to(mut self, recipient: Recipient<OutputCounts>) -> Self {
        self.report = Some(recipient);
        self
    }

    /// Sends the counts so far to the recipient of [`MqttOutput::report_to`], if any.
    fn report(&self) {
        let Some(recipient) = &self.report else {
            return;
        };
        let totals = self
            .stats()
            .streams
            .into_iter()
            .flat_map(|(stream, c)| {
                [
                    ("produced", c.produced),
                    ("published", c.published),
                    ("dropped", c.dropped),
                    ("too_large", c.too_large),
                    ("unsent", c.unsent),
                ]
                .map(|(outcome, n)| (stream.clone(), outcome.to_string(), n))
            })
            .collect();
        recipient.do_send(OutputCounts::new("mqtt", totals));
    }

    /// Subscribes `output` to the streams it publishes, losslessly (its handlers only queue;
    /// what the broker cannot take is counted by the output itself), named `mqtt/<stream>` in
    /// the summary's `subscribers`, and has it settle before the run's summary is made
    /// ([`Collector::settle`]): its counts are in the summary's `outputs`.
    ///
    /// Its connection's events (started, failed, a retry scheduled, restarted, stopped) go to
    /// the run's journal through the collector's [`Control`](crate::Control), with `output`
    /// `mqtt`.
    pub fn attach(output: &actix::Addr<MqttOutput>, collector: Collector) -> Collector {
        output.do_send(JournalTo(collector.control()));
        let lossless = |stream: &str| Delivery::lossless().named(format!("mqtt/{stream}"));
        collector
            .subscribe_with(output.clone().recipient::<Readings>(), lossless("readings"))
            .subscribe_with(output.clone().recipient::<Anomalies>(), lossless("anomalies"))
            .subscribe_with(output.clone().recipient::<Journal>(), lossless("events"))
            .subscribe_with(output.clone().recipient::<RoundSummary>(), lossless("rounds"))
            .subscribe_with(output.clone().recipient::<RunSummary>(), lossless("summary"))
            .settle(output.clone().recipient::<Settle>())
    }

    fn start_link(&mut self, ctx: &mut Context<Self>) {
        let task = actix_rt::spawn(link::run(self.config.clone(), self.shared.clone()));
        // Supervise the task: a panic in it restarts it after the backoff, journaled.
        ctx.spawn(task.into_actor(self).map(|result, act, ctx| {
            if let Err(e) = result {
                let delay = act.backoff.next_delay();
                act.restarts += 1;
                let cause = if e.is_panic() {
                    "panic in the connection task".to_string()
                } else {
                    e.to_string()
                };
                act.lock()
                    .journal(link::event("link_restarted", None, Some(cause), Some(delay)));
                ctx.run_later(delay, |act, ctx| act.start_link(ctx));
            }
        }));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, link::State> {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues messages of `stream` and wakes the connection task.
    fn queue(&self, messages: impl Iterator<Item = OutMessage>) {
        let mut s = self.lock();
        for m in messages {
            s.push(m);
        }
        drop(s);
        self.shared.wake.notify_one();
    }

    fn message(&self, stream: usize, topic: String, payload: Vec<u8>) -> OutMessage {
        OutMessage {
            stream: Some(stream),
            topic,
            payload,
            qos: self.config.qos.to_rumqttc(),
            retain: self.config.retain,
        }
    }

    fn stats(&self) -> MqttStats {
        let s = self.lock();
        MqttStats {
            streams: STREAMS
                .iter()
                .zip(s.counts.iter())
                .map(|(n, c)| (n.to_string(), *c))
                .collect(),
            connections: s.connections,
            connection_failures: s.failures,
            link_restarts: self.restarts,
            connected: s.connected,
            journal: s.journal.iter().cloned().collect(),
        }
    }
}

impl Actor for MqttOutput {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.start_link(ctx);
    }
}

/// The value of `placeholder` for a message, `client_id` included.
fn values<'a>(
    client_id: &'a str,
    own: impl Fn(Placeholder) -> Option<&'a str> + 'a,
) -> impl Fn(Placeholder) -> Option<String> + 'a {
    move |p| match p {
        Placeholder::ClientId => Some(client_id.to_string()),
        other => own(other).map(str::to_string),
    }
}

impl Handler<Readings> for MqttOutput {
    type Result = ();

    fn handle(&mut self, readings: Readings, _ctx: &mut Context<Self>) {
        let Some(template) = &self.config.topics.readings else {
            return;
        };
        let round = readings.round();
        let client_id = self.config.client_id.as_str();
        let messages = readings.iter().map(|r| {
            let sensor = r.sensor();
            let line = ReadingLine::new(round, &r, &sensor);
            let kind = r.kind;
            let topic = template.render(values(client_id, |p| match p {
                Placeholder::Id => Some(&*sensor),
                Placeholder::Kind => Some(kind),
                _ => None,
            }));
            let payload = serde_json::to_vec(&line).unwrap_or_default();
            self.message(0, topic, payload)
        });
        let messages: Vec<OutMessage> = messages.collect();
        self.queue(messages.into_iter());
    }
}

impl Handler<Anomalies> for MqttOutput {
    type Result = ();

    fn handle(&mut self, anomalies: Anomalies, _ctx: &mut Context<Self>) {
        let Some(template) = &self.config.topics.anomalies else {
            return;
        };
        let client_id = self.config.client_id.as_str();
        let messages: Vec<OutMessage> = anomalies
            .list
            .iter()
            .map(|a| {
                let line = AnomalyLine::new(a);
                let topic = template.render(values(client_id, |p| match p {
                    Placeholder::Id => Some(&*a.sensor),
                    Placeholder::Detector => Some(&*a.detector),
                    _ => None,
                }));
                self.message(1, topic, serde_json::to_vec(&line).unwrap_or_default())
            })
            .collect();
        self.queue(messages.into_iter());
    }
}

impl Handler<Journal> for MqttOutput {
    type Result = ();

    fn handle(&mut self, journal: Journal, _ctx: &mut Context<Self>) {
        let Some(template) = &self.config.topics.events else {
            return;
        };
        let client_id = self.config.client_id.as_str();
        let messages: Vec<OutMessage> = journal
            .iter()
            .map(|event| {
                let line = EventLine::new(&event);
                let id = event.sensor.as_deref().or(event.group.as_deref());
                let name = event.event.as_str();
                let topic = template.render(values(client_id, |p| match p {
                    Placeholder::Id => id,
                    Placeholder::Event => Some(name),
                    _ => None,
                }));
                self.message(2, topic, serde_json::to_vec(&line).unwrap_or_default())
            })
            .collect();
        self.queue(messages.into_iter());
    }
}

/// One message of the `rounds` stream.
#[derive(Debug, Serialize)]
struct RoundLine<'a> {
    round: u64,
    wall_ms: f64,
    skipped_before: u64,
    reads: &'a crate::data::ReadCounts,
    anomalies: u64,
    subscribers_missed: u64,
}

impl Handler<RoundSummary> for MqttOutput {
    type Result = ();

    fn handle(&mut self, round: RoundSummary, _ctx: &mut Context<Self>) {
        self.report();
        let Some(template) = &self.config.topics.rounds else {
            return;
        };
        let line = RoundLine {
            round: round.round,
            wall_ms: round.wall.as_micros() as f64 / 1000.0,
            skipped_before: round.skipped_before,
            reads: &round.reads,
            anomalies: round.anomalies,
            subscribers_missed: round.subscribers_missed,
        };
        let topic = template.render(values(&self.config.client_id, |_| None));
        let message = self.message(3, topic, serde_json::to_vec(&line).unwrap_or_default());
        self.queue(std::iter::once(message));
    }
}

impl Handler<RunSummary> for MqttOutput {
    type Result = ();

    fn handle(&mut self, end: RunSummary, _ctx: &mut Context<Self>) {
        let Some(template) = &self.config.topics.summary else {
            return;
        };
        let topic = template.render(values(&self.config.client_id, |_| None));
        // Encoded within the limit: a larger summary (from about 60,000 sensors on) is dropped
        // as soon as its text passes the limit, never held whole.
        match encode_within(&*end.summary, MAX_MESSAGE.saturating_sub(topic.len())) {
            Some(payload) => {
                let message = self.message(SUMMARY, topic, payload);
                self.queue(std::iter::once(message));
            }
            None => {
                let mut s = self.lock();
                s.counts[SUMMARY].produced += 1;
                s.too_large(SUMMARY, "the run's summary", &topic);
            }
        }
    }
}

/// The summary's stream (in [`STREAMS`]).
const SUMMARY: usize = 4;

/// `value` as JSON if its text takes at most `limit` bytes; `None` as soon as it takes more.
fn encode_within(value: &impl Serialize, limit: usize) -> Option<Vec<u8>> {
    /// A buffer that refuses to grow past its limit.
    struct Bounded {
        bytes: Vec<u8>,
        limit: usize,
    }
    impl std::io::Write for Bounded {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.bytes.len() + buf.len() > self.limit {
                return Err(std::io::Error::other("over the limit"));
            }
            self.bytes.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut out = Bounded {
        bytes: Vec::new(),
        limit,
    };
    serde_json::to_writer(&mut out, value).ok()?;
    Some(out.bytes)
}

/// Ends the output after the run: delivers what it holds within `flush_timeout`, sets the
/// status `offline`, disconnects, and answers with the [`MqttStats`] (what could not be
/// delivered counted `unsent`).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "MqttStats")]
pub struct Finish;

impl Handler<Finish> for MqttOutput {
    type Result = ResponseActFuture<Self, MqttStats>;

    fn handle(&mut self, _msg: Finish, _ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        {
            let mut s = self.lock();
            if s.finished {
                let _ = tx.send(());
            } else {
                let deadline = self
                    .gave_up
                    .unwrap_or_else(|| tokio::time::Instant::now() + self.config.flush_timeout);
                s.closing.get_or_insert(deadline);
                s.closed.push(tx);
            }
        }
        self.shared.wake.notify_one();
        Box::pin(
            async move {
                let _ = rx.await;
            }
            .into_actor(self)
            .map(|(), act, _ctx| {
                act.report();
                act.stats()
            }),
        )
    }
}

impl Handler<Settle> for MqttOutput {
    type Result = ResponseActFuture<Self, OutputReport>;

    /// Waits up to `flush_timeout` until the outbox holds nothing (every message of the
    /// streams published, dropped or unsent), and reports the counts of every stream but the
    /// summary's (which cannot count itself).
    fn handle(&mut self, _msg: Settle, _ctx: &mut Context<Self>) -> Self::Result {
        let deadline = tokio::time::Instant::now() + self.config.flush_timeout;
        let shared = self.shared.clone();
        let drained = async move {
            loop {
                // Created before the look, so a confirmation in between is not missed.
                let progress = shared.progress.notified();
                {
                    let s = shared.state.lock().unwrap_or_else(|e| e.into_inner());
                    if s.finished || (s.queue.is_empty() && s.in_flight == 0) {
                        return true;
                    }
                }
                if tokio::time::timeout_at(deadline, progress).await.is_err() {
                    return false;
                }
            }
        };
        Box::pin(drained.into_actor(self).map(move |drained, act, _ctx| {
            if !drained {
                act.gave_up = Some(deadline);
            }
            act.settle_report()
        }))
    }
}

impl MqttOutput {
    /// The counts for the run's summary: per stream but `summary`, each outcome and `held`
    /// (in the outbox or handed to the client, not confirmed yet).
    fn settle_report(&self) -> OutputReport {
        let stats = self.stats();
        let mut report = OutputReport::new(crate::mqtt::OUTPUT_NAME);
        for (stream, c) in stats.streams.iter().filter(|(name, _)| name != "summary") {
            let settled = c.published + c.dropped + c.too_large + c.unsent;
            let held = c.produced.saturating_sub(settled);
            report = report.stream(
                stream,
                [
                    ("produced", c.produced),
                    ("published", c.published),
                    ("dropped", c.dropped),
                    ("too_large", c.too_large),
                    ("unsent", c.unsent),
                    ("held", held),
                ],
            );
        }
        report
            .count("connections", stats.connections)
            .count("connection_failures", stats.connection_failures)
            .count("link_restarts", stats.link_restarts)
    }
}

/// Asks the output for its counts so far (the run goes on).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "MqttStats")]
pub struct Stats;

impl Handler<Stats> for MqttOutput {
    type Result = MessageResult<Stats>;

    fn handle(&mut self, _msg: Stats, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(self.stats())
    }
}

/// Where the connection's events go besides the output's own journal: the run's.
#[derive(Message)]
#[rtype(result = "()")]
struct JournalTo(crate::Control);

impl Handler<JournalTo> for MqttOutput {
    type Result = ();

    fn handle(&mut self, msg: JournalTo, _ctx: &mut Context<Self>) {
        self.lock().control = Some(msg.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text comes whole when it takes exactly the limit, not at all when one byte more.
    #[test]
    fn encoding_within_a_limit_stops_one_byte_past_it() {
        let value = vec!["a\"b"; 100];
        let whole = serde_json::to_vec(&value).unwrap();
        assert_eq!(encode_within(&value, whole.len()), Some(whole.clone()));
        assert_eq!(encode_within(&value, whole.len() + 10), Some(whole.clone()));
        assert_eq!(encode_within(&value, whole.len() - 1), None);
        assert_eq!(encode_within(&value, 0), None);
        assert_eq!(STREAMS[SUMMARY], "summary");
    }
}
