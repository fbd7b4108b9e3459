//! The MQTT output's connection: a task that owns one `rumqttc` client at a time, takes messages
//! from the output's bounded [`Outbox`] while a broker is connected, and counts each message
//! once: published (written to the socket at QoS 0, acknowledged by the broker at QoS 1),
//! dropped (the outbox was full), or unsent (still held when the run's end gave up waiting).
//!
//! A connection is built fresh for every attempt (a new client and event loop, the broker next
//! in the failover list after a failure), so nothing of a dead connection's state is trusted:
//! every message handed to a client and not yet confirmed goes back to the front of the outbox
//! when that connection fails, and is sent again on the next one (QoS 1 is at least once: the
//! broker may see such a message twice, the counts never do). Between attempts the task waits
//! the output's backoff. Every attempt, success and loss is a [`LinkEvent`] in the output's
//! journal and a log line. The output actor (`sinks::mqtt`) supervises the task: if it ever
//! panics, it is started again after the backoff and the restart journaled.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{AsyncClient, ConnectionError, Event, EventLoop, LastWill, MqttOptions, Outgoing, Packet};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::time::Instant;

use super::{Backoff, Broker, MqttOutputConfig, MqttTls, MAX_MESSAGE, WINDOW};

/// The output's streams, in the order of [`MqttStats::streams`](crate::sinks::MqttStats).
pub(crate) const STREAMS: [&str; 5] = ["readings", "anomalies", "events", "rounds", "summary"];

/// Events kept in the output's journal (the oldest are dropped from the journal, not from the
/// log, past this).
pub(crate) const JOURNAL_RING: usize = 1_024;

/// How long a clean disconnection may take before the connection is dropped anyway.
const DISCONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// One message to publish.
#[derive(Debug, Clone)]
pub(crate) struct OutMessage {
    /// Index in [`STREAMS`]; `None` for the collector's status (not counted with the streams).
    pub(crate) stream: Option<usize>,
    pub(crate) topic: String,
    pub(crate) payload: Vec<u8>,
    pub(crate) qos: rumqttc::QoS,
    pub(crate) retain: bool,
}

/// What became of one stream's messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct StreamCounts {
    /// Messages the output was given (one per reading, anomaly, event, round, summary).
    pub produced: u64,
    /// Delivered to a broker: written at QoS 0, acknowledged at QoS 1.
    pub published: u64,
    /// Dropped because the buffer was full while no broker took them.
    pub dropped: u64,
    /// Dropped because the message was larger than [`MAX_MESSAGE`](crate::mqtt::MAX_MESSAGE).
    pub too_large: u64,
    /// Still held when the run ended and the flush timeout passed.
    pub unsent: u64,
}

/// One event of the output's connection.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct LinkEvent {
    /// RFC 3339 time.
    pub timestamp: String,
    /// `connected`, `connection_failed`, `disconnected`, `reconnect_scheduled`,
    /// `link_restarted`, `closed`.
    pub event: &'static str,
    /// The broker concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker: Option<String>,
    /// Why, for failures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// The wait before the next attempt, for `reconnect_scheduled`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
}

/// What the output and its connection task share.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    /// Woken when a message is queued or the run's end asks for a flush.
    pub(crate) wake: Notify,
    /// Woken (all waiters) when a message is confirmed and when the task has closed: the
    /// output's [`Settle`](crate::streams::Settle) waits on it for its buffer to drain.
    pub(crate) progress: Notify,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    /// Messages waiting for a connection, oldest first.
    pub(crate) queue: VecDeque<OutMessage>,
    /// The bound of `queue` plus the messages handed to a client and not yet confirmed.
    pub(crate) bound: usize,
    /// Handed to a client and not yet confirmed (counted against `bound`).
    pub(crate) in_flight: usize,
    pub(crate) counts: [StreamCounts; 5],
    pub(crate) journal: VecDeque<LinkEvent>,
    pub(crate) connected: bool,
    pub(crate) connections: u64,
    pub(crate) failures: u64,
    /// Set by the run's end: deliver what is held until then, then close.
    pub(crate) closing: Option<Instant>,
    /// Told when the task has closed (everything delivered or counted unsent).
    pub(crate) closed: Vec<oneshot::Sender<()>>,
    pub(crate) finished: bool,
    /// The run's control, through which the connection's events reach the run's journal.
    pub(crate) control: Option<crate::Control>,
}

impl State {
    /// Queues `message`, or drops and counts it when the buffer is full.
    pub(crate) fn push(&mut self, message: OutMessage) -> bool {
        let stream = message.stream;
        if let Some(s) = stream {
            self.counts[s].produced += 1;
            if message.payload.len() + message.topic.len() > MAX_MESSAGE {
                let size = format!("a message of {} bytes", message.payload.len());
                self.too_large(s, &size, &message.topic);
                return false;
            }
        }
        if self.queue.len() + self.in_flight >= self.bound || self.finished {
            match stream {
                Some(s) if self.finished => self.counts[s].unsent += 1,
                Some(s) => self.counts[s].dropped += 1,
                None => {}
            }
            return false;
        }
        self.queue.push_back(message);
        true
    }

    /// Counts a message of `stream` to `topic` dropped for being over [`MAX_MESSAGE`] (it was
    /// counted produced), and says so: `what` names it and its size.
    pub(crate) fn too_large(&mut self, stream: usize, what: &str, topic: &str) {
        self.counts[stream].too_large += 1;
        log::warn!("mqtt output: {what} to {topic} is over the limit of {MAX_MESSAGE} bytes; dropped");
    }

    pub(crate) fn journal(&mut self, event: LinkEvent) {
        match event.event {
            "connected" | "closed" => log::info!("mqtt output: {}", describe(&event)),
            _ => log::warn!("mqtt output: {}", describe(&event)),
        }
        // Its failures and recoveries in the run's journal too, in its words: failed, retried
        // after a delay, restarted (connected again). Not the first connection, made as the
        // output starts (before the run or not, by chance), nor the close after the run's
        // summary: the log above has them. Refused before the run starts and after its summary.
        if let Some(control) = &self.control {
            use crate::data::EventKind;
            let kind = match event.event {
                "connected" if self.connections > 1 => Some(EventKind::Restarted),
                "connection_failed" | "disconnected" => Some(EventKind::Failed),
                "reconnect_scheduled" | "link_restarted" => Some(EventKind::RestartScheduled),
                _ => None,
            };
            let cause = match (&event.broker, &event.cause) {
                (Some(broker), Some(cause)) => Some(format!("{broker}: {cause}")),
                (Some(broker), None) => Some(format!("next broker {broker}")),
                (None, cause) => cause.clone(),
            };
            let delay = event.delay_ms.map(Duration::from_millis);
            if let Some(kind) = kind {
                let _ = control.journal(super::OUTPUT_NAME, kind, cause, delay);
            }
        }
        if self.journal.len() == JOURNAL_RING {
            self.journal.pop_front();
        }
        self.journal.push_back(event);
    }
}

fn describe(e: &LinkEvent) -> String {
    let mut text = e.event.replace('_', " ");
    if let Some(b) = &e.broker {
        text += &format!(" {b}");
    }
    if let Some(c) = &e.cause {
        text += &format!(": {c}");
    }
    if let Some(d) = e.delay_ms {
        text += &format!(" in {d} ms");
    }
    text
}

pub(crate) fn event(
    event: &'static str,
    broker: Option<&Broker>,
    cause: Option<String>,
    delay: Option<Duration>,
) -> LinkEvent {
    LinkEvent {
        timestamp: crate::sinks::rfc3339(&chrono::Utc::now()),
        event,
        broker: broker.map(ToString::to_string),
        cause,
        delay_ms: delay.map(|d| d.as_millis() as u64),
    }
}

/// The status payloads.
pub(crate) fn status(client_id: &str, status: &str) -> Vec<u8> {
    serde_json::json!({ "status": status, "client_id": client_id, "timestamp": crate::sinks::rfc3339(&chrono::Utc::now()) })
        .to_string()
        .into_bytes()
}

fn options(config: &MqttOutputConfig, broker: &Broker, tls: Option<&MqttTls>) -> MqttOptions {
    let mut o = MqttOptions::new(config.client_id.clone(), broker.host.clone(), broker.port);
    if let Some(tls) = tls {
        o.set_transport(tls.transport());
    }
    o.set_keep_alive(config.keep_alive);
    // The output keeps what is unconfirmed itself (and sends it again on the next connection).
    o.set_clean_session(true);
    o.set_inflight(WINDOW);
    o.set_request_channel_capacity(WINDOW as usize + 2);
    o.set_max_packet_size(MAX_MESSAGE + 1024, MAX_MESSAGE + 1024);
    let topic = status_topic(config);
    o.set_last_will(LastWill::new(
        topic,
        status(&config.client_id, "lost"),
        rumqttc::QoS::AtLeastOnce,
        true,
    ));
    o
}

pub(crate) fn status_topic(config: &MqttOutputConfig) -> String {
    let id = config.client_id.clone();
    config.topics.status.render(|_| Some(id.clone()))
}

/// A message handed to the client: its place in the send order, to requeue in order.
struct Sent {
    seq: u64,
    message: OutMessage,
}

/// Runs the connection until the run's end has been flushed (or given up).
pub(crate) async fn run(config: Arc<MqttOutputConfig>, shared: Arc<Shared>) {
    let mut backoff = Backoff::new(config.backoff_min, config.backoff_max);
    let mut next = 0usize;
    loop {
        if closing_done(&shared) {
            break;
        }
        let broker = config.brokers[next % config.brokers.len()].clone();
        let result = connection(&config, &shared, &broker, &mut backoff).await;
        let cause = match result {
            Ok(()) => break,
            Err(cause) => cause,
        };
        if closing_done(&shared) {
            break;
        }
        // The next broker of the list, after the backoff (or until the end's deadline).
        next += 1;
        let mut delay = backoff.next_delay();
        {
            let mut s = shared.state.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(deadline) = s.closing {
                delay = delay.min(deadline.saturating_duration_since(Instant::now()));
            }
            let following = &config.brokers[next % config.brokers.len()];
            s.journal(event("reconnect_scheduled", Some(following), None, Some(delay)));
        }
        // Messages queued meanwhile wait: only time ends the backoff, or the run's end, whose
        // deadline bounds it (set before: above; set meanwhile: here, as it wakes the task).
        let mut until = Instant::now() + delay;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => break,
                _ = shared.wake.notified() => {
                    let s = shared.state.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(deadline) = s.closing {
                        until = until.min(deadline);
                    }
                }
            }
        }
        log::debug!(
            "mqtt output: after {cause}, trying {}",
            config.brokers[next % config.brokers.len()]
        );
    }
    finish(&shared);
}

/// Whether the run's end has passed its deadline.
fn closing_done(shared: &Shared) -> bool {
    let s = shared.state.lock().unwrap_or_else(|e| e.into_inner());
    s.closing.is_some_and(|deadline| Instant::now() >= deadline)
}

/// Counts what is left as unsent and tells the waiters.
fn finish(shared: &Shared) {
    let mut s = shared.state.lock().unwrap_or_else(|e| e.into_inner());
    let left: Vec<Option<usize>> = s.queue.drain(..).map(|m| m.stream).collect();
    for stream in left.into_iter().flatten() {
        s.counts[stream].unsent += 1;
    }
    s.in_flight = 0;
    s.connected = false;
    s.finished = true;
    let unsent: u64 = s.counts.iter().map(|c| c.unsent).sum();
    s.journal(event(
        "closed",
        None,
        (unsent > 0).then(|| format!("{unsent} messages unsent")),
        None,
    ));
    for tx in s.closed.drain(..) {
        let _ = tx.send(());
    }
    shared.progress.notify_waiters();
}

/// One connection to `broker`: `Ok` once the run's end is flushed and the status set offline,
/// `Err(cause)` when it could not connect or was lost (what it held is back in the queue).
async fn connection(
    config: &MqttOutputConfig,
    shared: &Arc<Shared>,
    broker: &Broker,
    backoff: &mut Backoff,
) -> Result<(), String> {
    let tls = match (broker.tls, &config.tls) {
        (false, _) => None,
        (true, Some(tls)) => Some(tls),
        // Made without the configuration's checks (`MqttOutputConfig` by hand).
        (true, None) => {
            let cause = "no TLS settings (tls_ca) for an mqtts:// broker".to_string();
            let mut s = shared.state.lock().unwrap_or_else(|e| e.into_inner());
            s.failures += 1;
            s.journal(event("connection_failed", Some(broker), Some(cause.clone()), None));
            return Err(cause);
        }
    };
    let (client, eventloop) = AsyncClient::new(options(config, broker, tls), WINDOW as usize + 2);
    // The event loop runs in a task of its own that forwards its events: receiving from a
    // channel can be cancelled safely, polling the event loop mid-write cannot. It stops at
    // the first error (polling again would reconnect behind our back).
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let poller = actix_rt::spawn(poll(eventloop, events_tx));
    let _stop_poller = AbortOnDrop(poller);
    let closing = |s: &Shared| s.state.lock().unwrap_or_else(|e| e.into_inner()).closing;
    // Connect.
    let first = tokio::select! {
        e = events.recv() => e,
        _ = sleep_until(closing(shared)) => return Err("the run ended while connecting".into()),
    };
    match first {
        Some(Ok(Event::Incoming(Packet::ConnAck(_)))) => {}
        Some(Ok(other)) => return Err(format!("expected a CONNACK, got {other:?}")),
        Some(Err(e)) => {
            let cause = cause(&e);
            let mut s = shared.state.lock().unwrap_or_else(|e| e.into_inner());
            s.failures += 1;
            s.journal(event("connection_failed", Some(broker), Some(cause.clone()), None));
            return Err(cause);
        }
        None => return Err("the connection task ended".into()),
    }
    backoff.reset();
    {
        let mut s = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        s.connected = true;
        s.connections += 1;
        s.journal(event("connected", Some(broker), None, None));
    }
    let mut seq = 0u64;
    // Handed to the client, no `Outgoing::Publish` seen yet (in order), and written at QoS 1
    // waiting for the broker's PUBACK, by packet id.
    let mut unwritten: VecDeque<Sent> = VecDeque::new();
    let mut unacked: HashMap<u16, Sent> = HashMap::new();
    // The one message the client holds back for a packet id still in use (`AwaitAck`).
    let mut collided: Option<(u16, Sent)> = None;
    // The birth message goes first on every connection.
    let birth = OutMessage {
        stream: None,
        topic: status_topic(config),
        payload: status(&config.client_id, "online"),
        qos: rumqttc::QoS::AtLeastOnce,
        retain: true,
    };
    let mut pending_birth = Some(birth);
    let mut offline_sent = false;
    let result = loop {
        // Hand the client what fits in the window.
        let mut closing = None;
        {
            let mut s = shared.state.lock().unwrap_or_else(|e| e.into_inner());
            while unwritten.len() + unacked.len() + usize::from(collided.is_some()) < WINDOW as usize {
                let message = match pending_birth.take() {
                    Some(b) => b,
                    None => match s.queue.pop_front() {
                        Some(m) => m,
                        None => break,
                    },
                };
                match client.try_publish(
                    message.topic.clone(),
                    message.qos,
                    message.retain,
                    message.payload.clone(),
                ) {
                    Ok(()) => {
                        s.in_flight += usize::from(message.stream.is_some());
                        seq += 1;
                        unwritten.push_back(Sent { seq, message });
                    }
                    Err(_) => {
                        s.queue.push_front(message);
                        break;
                    }
                }
            }
            if let Some(deadline) = s.closing {
                closing = Some(deadline);
                let flushed = s.queue.is_empty() && unwritten.is_empty() && unacked.is_empty() && collided.is_none();
                if flushed && !offline_sent {
                    // Everything is delivered: the status says so, then the client leaves.
                    offline_sent = true;
                    let offline = status(&config.client_id, "offline");
                    if client
                        .try_publish(status_topic(config), rumqttc::QoS::AtLeastOnce, true, offline.clone())
                        .is_ok()
                    {
                        seq += 1;
                        unwritten.push_back(Sent {
                            seq,
                            message: OutMessage {
                                stream: None,
                                topic: status_topic(config),
                                payload: offline,
                                qos: rumqttc::QoS::AtLeastOnce,
                                retain: true,
                            },
                        });
                    }
                } else if flushed && offline_sent {
                    break Ok(());
                }
            }
        }
        let wake = shared.wake.notified();
        let room = unwritten.len() + unacked.len() + usize::from(collided.is_some()) < WINDOW as usize;
        tokio::select! {
            e = events.recv() => match e {
                // A packet id still awaiting its PUBACK (the broker acknowledged out of order):
                // the client holds the message until that PUBACK, then writes it.
                Some(Ok(Event::Outgoing(Outgoing::AwaitAck(pkid)))) => {
                    if let Some(sent) = unwritten.pop_front() {
                        collided = Some((pkid, sent));
                    }
                }
                Some(Ok(Event::Outgoing(Outgoing::Publish(pkid)))) => {
                    let sent = match collided.take() {
                        Some((held, sent)) if held == pkid && !unacked.contains_key(&pkid) => sent,
                        other => {
                            collided = other;
                            let Some(sent) = unwritten.pop_front() else { continue };
                            sent
                        }
                    };
                    if sent.message.qos == rumqttc::QoS::AtMostOnce {
                        let mut s = shared.state.lock().unwrap_or_else(|e| e.into_inner());
                        confirm(&mut s, &sent.message);
                        shared.progress.notify_waiters();
                    } else {
                        unacked.insert(pkid, sent);
                    }
                }
                Some(Ok(Event::Incoming(Packet::PubAck(ack)))) => {
                    if let Some(sent) = unacked.remove(&ack.pkid) {
                        let mut s = shared.state.lock().unwrap_or_else(|e| e.into_inner());
                        confirm(&mut s, &sent.message);
                        shared.progress.notify_waiters();
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => break Err(cause(&e)),
                None => break Err("the connection task ended".into()),
            },
            _ = wake, if room => {}
            _ = sleep_until(closing) => {
                if offline_sent || closing_done(shared) {
                    break Err("the run's end gave up waiting for the broker".into());
                }
            }
        }
    };
    if result.is_ok() {
        // A clean goodbye: the broker must see DISCONNECT, or it publishes the last will.
        if client.try_disconnect().is_ok() {
            let goodbye = async {
                while let Some(Ok(e)) = events.recv().await {
                    if e == Event::Outgoing(Outgoing::Disconnect) {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(DISCONNECT_TIMEOUT, goodbye).await;
        }
    }
    // Whatever was not confirmed goes back to the front of the queue, in send order.
    let mut back: Vec<Sent> = unwritten
        .into_iter()
        .chain(unacked.into_values())
        .chain(collided.map(|(_, sent)| sent))
        .collect();
    back.sort_by_key(|s| s.seq);
    let mut s = shared.state.lock().unwrap_or_else(|e| e.into_inner());
    for sent in back.into_iter().rev() {
        if sent.message.stream.is_some() {
            s.in_flight -= 1;
            s.queue.push_front(sent.message);
        }
    }
    s.connected = false;
    if let Err(cause) = &result {
        s.journal(event("disconnected", Some(broker), Some(cause.clone()), None));
    }
    result
}

/// Counts one confirmed message.
fn confirm(s: &mut State, message: &OutMessage) {
    if let Some(stream) = message.stream {
        s.in_flight -= 1;
        s.counts[stream].published += 1;
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

async fn poll(mut eventloop: EventLoop, events: mpsc::UnboundedSender<Result<Event, ConnectionError>>) {
    loop {
        let event = eventloop.poll().await;
        let failed = event.is_err();
        if events.send(event).is_err() || failed {
            return;
        }
    }
}

/// A connection error in one line.
pub(crate) fn cause(e: &ConnectionError) -> String {
    match e {
        ConnectionError::Io(io) => format!("I/O: {io}"),
        other => other.to_string(),
    }
}

/// Aborts a task when dropped (the event loop of a connection that is over).
#[derive(Debug)]
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
