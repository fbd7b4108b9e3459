//! The `mqtt` driver: sensors that publish their values to an MQTT broker.
//!
//! ```toml
//! [[sensors]]
//! driver = "mqtt"
//! brokers = ["127.0.0.1:1883"]          # failover order
//! topic = "plant/boiler-1/temperature"  # one sensor (its `id` as for any entry) ...
//! # topic = "plant/{id}/temperature"    # ... or one per device seen: the id from the topic
//! id = "boiler-1"
//! client_id = "sensor-actors-in"        # fixed: the broker keeps the session across restarts
//! # tls_ca = "ca.pem"                   # with mqtts:// brokers; tls_cert and tls_key: mutual TLS
//! qos = 1
//! field = "value"                       # JSON payloads: the number under this key
//! max_age = "10s"                       # older values are not read
//! ```
//!
//! A read answers with the newest value received on the sensor's topic since the previous
//! read, if it is at most `max_age` old; otherwise the sensor is `unavailable` for that round
//! (`offline`: nothing fresh). A value that a newer one replaced before any read took it is
//! counted (`superseded`) — the round samples the device: the summary's `drivers.mqtt` has
//! `received` (messages on the topics of the run's sensors) and `superseded`, over every
//! connection, and the log has one line per connection when the run ends.
//! A payload that is no number (or a JSON object without the number at `field`) is a
//! `failed` read naming the topic.
//!
//! Every entry with the same brokers and client id shares one connection (one `hub`): one
//! `rumqttc` client with a fixed client id and a persistent session (`clean_session = false`),
//! so messages published at QoS 1 while the collector is down are kept by the broker and
//! delivered when it connects again; it subscribes to every topic of its entries again on
//! every connection (a broker that lost the session loses nothing it still gets). A failed or
//! lost connection is retried with backoff on the next broker of the list.
//!
//! With `{id}` in `topic`, the entry has no sensor at the start: the hub subscribes to the
//! filter (`plant/+/temperature`), and each new id seen is added to the run through the
//! run's [`Control`](crate::Control) (journaled `added`, `requested by mqtt`), with the entry's
//! keys and `discovered = { kind = "...", unit = "...", group = "..." }` as its common keys,
//! and read from the next round on. With `run --shard I/N`, only the ids of this shard are
//! added. The driver refuses the virtual clock ([`DriverSpec::real_world`]).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet};
use serde::Deserialize;

use super::{
    Driver, DriverBuild, DriverContext, DriverFactory, DriverKeys, DriverSpec, ReadError, ReadFuture, RunStart, Sample,
};
use crate::mqtt::link::{cause, AbortOnDrop};
use crate::mqtt::{check_client_id, parse_brokers, parse_tls, Backoff, Broker, MqttTls, Qos};
use crate::parse::{parse_duration, quoted, ConfigError};
use crate::Shard;

/// The client id of the driver's connection unless `client_id` says otherwise.
pub const DEFAULT_CLIENT_ID: &str = "sensor-actors-in";

/// How old a value may be when it is read, unless `max_age` says otherwise.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(10);

/// The requester named in the journal for sensors added by discovery.
pub const REQUESTER: &str = "mqtt";

/// Devices discovered by one entry, at most (a topic filter on a busy broker must not grow a
/// run without bound); more are ignored and counted.
pub const MAX_DISCOVERED: usize = 100_000;

/// `driver = "mqtt"`: parses entries, and keeps the hubs (one connection per brokers and
/// client id) and the discovery entries it parsed, started when a run starts.
#[derive(Debug, Default)]
pub struct Factory {
    /// Every hub of the entries parsed, while an entry holds it.
    hubs: Mutex<Vec<Weak<Hub>>>,
    /// Discovery entries parsed and not started yet.
    discoveries: Mutex<Vec<Arc<Settings>>>,
    /// The hubs of started discoveries, kept for the run (the factory lives as long as the
    /// run's registry).
    running: Mutex<Vec<Arc<Hub>>>,
    /// The run's shard, whose suffix each hub's client id takes (`-I-of-N`).
    shard: Arc<Mutex<Option<Shard>>>,
}

impl Factory {
    /// The hubs some entry still holds.
    fn live_hubs(&self) -> Vec<Arc<Hub>> {
        let hubs = self.hubs.lock().unwrap_or_else(|e| e.into_inner());
        hubs.iter().filter_map(Weak::upgrade).collect()
    }
}

impl DriverFactory for Factory {
    fn parse(&self, keys: &DriverKeys<'_>) -> Result<Arc<dyn DriverSpec>, ConfigError> {
        let raw: RawSettings = keys.deserialize()?;
        let mut table = keys_table(&raw);
        let mut settings = Settings::parse(raw, keys)?;
        // The files as resolved: a discovered sensor's entry is parsed without this base.
        if let Some(tls) = &settings.tls {
            let path = |p: &std::path::Path| toml::Value::from(p.display().to_string());
            table.insert("tls_ca".into(), path(tls.ca()));
            if let Some((cert, key)) = tls.client() {
                table.insert("tls_cert".into(), path(cert));
                table.insert("tls_key".into(), path(key));
            }
        }
        settings.hub = self.hub(&settings.brokers, &settings.client_id, settings.qos, &settings.tls);
        settings.entry = table;
        let settings = Arc::new(settings);
        if settings.template.is_some() {
            self.discoveries
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(settings.clone());
        }
        Ok(settings)
    }

    /// Closes every hub's connection (a next run connects again).
    fn run_ended(&self) {
        self.running.lock().unwrap_or_else(|e| e.into_inner()).clear();
        let hubs = self.live_hubs();
        for hub in hubs {
            hub.stop();
        }
    }

    /// Messages received on the topics of the run's sensors, and those replaced by a newer
    /// one before a read took them, over every hub.
    fn counts(&self) -> Vec<(String, u64)> {
        let hubs = self.live_hubs();
        if hubs.is_empty() {
            return Vec::new();
        }
        let (mut received, mut superseded) = (0, 0);
        for hub in hubs {
            let inner = hub.inner();
            received += inner.received;
            superseded += inner.superseded;
        }
        vec![("received".into(), received), ("superseded".into(), superseded)]
    }

    /// Starts the discovery of every entry with `{id}` in its topic.
    fn run_started(&self, run: &RunStart) {
        *self.shard.lock().unwrap_or_else(|e| e.into_inner()) = run.shard;
        let entries: Vec<Arc<Settings>> =
            std::mem::take(&mut *self.discoveries.lock().unwrap_or_else(|e| e.into_inner()));
        for settings in entries {
            settings.hub.discover(&settings, run.clone());
            self.running
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(settings.hub.clone());
        }
    }
}

impl Factory {
    /// The hub of `brokers` and `client_id`, shared with earlier entries (with the QoS and TLS
    /// settings of the first).
    fn hub(&self, brokers: &[Broker], client_id: &str, qos: Qos, tls: &Option<MqttTls>) -> Arc<Hub> {
        let mut hubs = self.hubs.lock().unwrap_or_else(|e| e.into_inner());
        hubs.retain(|w| w.strong_count() > 0);
        if let Some(hub) = hubs
            .iter()
            .filter_map(Weak::upgrade)
            .find(|h| h.brokers == brokers && h.client_id == client_id)
        {
            return hub;
        }
        let hub = Arc::new(Hub {
            brokers: brokers.to_vec(),
            client_id: client_id.to_string(),
            qos,
            tls: tls.clone(),
            shard: self.shard.clone(),
            state: Arc::new(HubState::default()),
            task: Mutex::new(None),
        });
        hubs.push(Arc::downgrade(&hub));
        hub
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    brokers: Option<Vec<String>>,
    topic: Option<String>,
    client_id: Option<String>,
    qos: Option<i64>,
    field: Option<String>,
    max_age: Option<String>,
    tls_ca: Option<String>,
    tls_cert: Option<String>,
    tls_key: Option<String>,
    discovered: Option<RawDiscovered>,
}

/// The common keys given to each discovered sensor.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct RawDiscovered {
    kind: Option<String>,
    unit: Option<String>,
    group: Option<String>,
    range: Option<[f64; 2]>,
}

/// The driver keys again, as a table for the entries that discovery adds.
fn keys_table(raw: &RawSettings) -> toml::Table {
    let mut t = toml::Table::new();
    t.insert("driver".into(), "mqtt".into());
    if let Some(b) = &raw.brokers {
        t.insert(
            "brokers".into(),
            toml::Value::Array(b.iter().map(|s| s.clone().into()).collect()),
        );
    }
    if let Some(c) = &raw.client_id {
        t.insert("client_id".into(), c.clone().into());
    }
    if let Some(q) = raw.qos {
        t.insert("qos".into(), q.into());
    }
    if let Some(f) = &raw.field {
        t.insert("field".into(), f.clone().into());
    }
    if let Some(a) = &raw.max_age {
        t.insert("max_age".into(), a.clone().into());
    }
    if let Some(d) = &raw.discovered {
        if let Ok(toml::Value::Table(common)) = toml::Value::try_from(d) {
            t.extend(common);
        }
    }
    t
}

/// Validated settings of an mqtt entry.
#[derive(Debug)]
pub struct Settings {
    brokers: Vec<Broker>,
    /// The topic of a single sensor, or the filter (`+` for `{id}`) of a discovery entry.
    topic: String,
    /// Discovery: the topic's levels before and after `{id}`.
    template: Option<(String, String)>,
    client_id: String,
    qos: Qos,
    field: Option<String>,
    max_age: Duration,
    tls: Option<MqttTls>,
    hub: Arc<Hub>,
    /// The entry's keys, for the sensors discovery adds.
    entry: toml::Table,
}

impl Settings {
    fn parse(raw: RawSettings, keys: &DriverKeys<'_>) -> Result<Settings, ConfigError> {
        let (origin, at) = (keys.origin(), keys.at());
        let brokers = match &raw.brokers {
            Some(list) => parse_brokers(origin, &format!("{at}.brokers"), list)?,
            None => {
                return Err(keys.error(
                    "brokers",
                    "expected a list of broker addresses, like brokers = [\"127.0.0.1:1883\"]",
                ))
            }
        };
        let Some(topic) = raw.topic else {
            return Err(keys.error(
                "topic",
                "expected the topic the sensor publishes to, like \"plant/boiler-1/temperature\" (or \"plant/{id}/temperature\" to discover devices)",
            ));
        };
        let (topic, template) = parse_topic(&topic).map_err(|e| keys.error("topic", e))?;
        let client_id = raw.client_id.unwrap_or_else(|| DEFAULT_CLIENT_ID.to_string());
        check_client_id(&client_id).map_err(|e| keys.error("client_id", e))?;
        let qos = match raw.qos {
            Some(level) => Qos::from_level(level).map_err(|e| keys.error("qos", e))?,
            None => Qos::AtLeastOnce,
        };
        if let Some(f) = &raw.field {
            if f.is_empty() {
                return Err(keys.error("field", "expected the JSON key holding the value, got \"\""));
            }
        }
        let max_age = match &raw.max_age {
            Some(t) => parse_duration(origin, &format!("{at}.max_age"), t)?,
            None => DEFAULT_MAX_AGE,
        };
        if max_age.is_zero() {
            return Err(keys.error("max_age", "expected more than 0s"));
        }
        let tls = parse_tls(
            origin,
            at,
            keys.base(),
            &brokers,
            raw.tls_ca.as_deref(),
            (raw.tls_cert.as_deref(), raw.tls_key.as_deref()),
        )?;
        if raw.discovered.is_some() && template.is_none() {
            return Err(keys.error(
                "discovered",
                "expected {id} in `topic` with it: only discovered sensors take these keys",
            ));
        }
        Ok(Settings {
            brokers,
            topic,
            template,
            client_id,
            qos,
            field: raw.field,
            max_age,
            tls,
            hub: Arc::new(Hub::detached()),
            entry: toml::Table::new(),
        })
    }
}

/// `topic` as a topic to subscribe to, and with `{id}` the levels around it.
fn parse_topic(text: &str) -> Result<(String, Option<(String, String)>), String> {
    if text.is_empty() || text.contains(['+', '#', '\0']) {
        return Err(format!(
            "expected a topic without wildcards (write {{id}} for the level that names the device), got {}",
            quoted(text)
        ));
    }
    match text.split_once("{id}") {
        None if text.contains(['{', '}']) => {
            Err(format!("expected {{id}} as the only placeholder, got {}", quoted(text)))
        }
        None => Ok((text.to_string(), None)),
        Some((before, after)) => {
            let whole_level =
                (before.is_empty() || before.ends_with('/')) && (after.is_empty() || after.starts_with('/'));
            if !whole_level || after.contains(['{', '}']) || before.contains(['{', '}']) {
                return Err(format!(
                    "expected {{id}} once, as a whole level of the topic (\"plant/{{id}}/temperature\"), got {}",
                    quoted(text)
                ));
            }
            Ok((
                format!("{before}+{after}"),
                Some((before.to_string(), after.to_string())),
            ))
        }
    }
}

impl DriverSpec for Settings {
    fn build(&self, ctx: &DriverContext) -> DriverBuild {
        // A discovered sensor's entry names its own topic; a discovery entry has no sensor.
        self.hub.subscribe(&self.topic);
        DriverBuild::driver(MqttSensor {
            hub: self.hub.clone(),
            topic: self.topic.clone(),
            field: self.field.clone(),
            max_age: self.max_age,
            _id: ctx.id.clone(),
        })
    }

    fn real_world(&self) -> bool {
        true
    }

    fn default_kind(&self) -> Option<&str> {
        Some("mqtt")
    }

    /// A discovery entry starts with no sensor.
    fn sensor_keys(&self) -> Option<Vec<(String, Arc<dyn DriverSpec>)>> {
        self.template.as_ref().map(|_| Vec::new())
    }
}

/// One sensor's reads.
struct MqttSensor {
    hub: Arc<Hub>,
    topic: String,
    field: Option<String>,
    max_age: Duration,
    _id: Arc<str>,
}

impl Driver for MqttSensor {
    fn read(&mut self, _round: u64) -> ReadFuture {
        let result = match self.hub.take(&self.topic, self.max_age) {
            Some(payload) => parse_value(&payload, self.field.as_deref())
                .map(Sample::value)
                .map_err(|e| ReadError::Failed(format!("{}: {e}", self.topic))),
            None => Err(ReadError::Offline),
        };
        ReadFuture::ready(result)
    }
}

/// The number in a payload: plain text (`21.5`), a JSON number, or the number at `field` of a
/// JSON object.
pub fn parse_value(payload: &[u8], field: Option<&str>) -> Result<f64, String> {
    let text = std::str::from_utf8(payload).map_err(|_| "expected UTF-8 text, got binary data".to_string())?;
    let number = |v: f64| {
        if v.is_finite() {
            Ok(v)
        } else {
            Err(format!("expected a finite number, got {}", quoted(text)))
        }
    };
    match field {
        None => match text.trim().parse::<f64>() {
            Ok(v) => number(v),
            Err(_) => Err(format!("expected a number, got {}", quoted(text))),
        },
        Some(field) => {
            let json: serde_json::Value =
                serde_json::from_str(text).map_err(|_| format!("expected a JSON object, got {}", quoted(text)))?;
            match json.get(field).and_then(serde_json::Value::as_f64) {
                Some(v) => number(v),
                None => Err(format!("expected a number at \"{field}\", got {}", quoted(text))),
            }
        }
    }
}

/// One connection to a broker list under one client id, shared by the entries that name them.
#[derive(Debug)]
struct Hub {
    brokers: Vec<Broker>,
    client_id: String,
    qos: Qos,
    /// TLS for the `mqtts://` brokers.
    tls: Option<MqttTls>,
    /// The run's shard (set when the run starts, before any connection).
    shard: Arc<Mutex<Option<Shard>>>,
    state: Arc<HubState>,
    /// The connection task, started by the first subscription; aborted when the last entry
    /// using the hub is dropped (the run's configuration and its sensors).
    task: Mutex<Option<AbortOnDrop>>,
}

#[derive(Debug, Default)]
struct HubState {
    inner: Mutex<HubInner>,
}

#[derive(Debug, Default)]
struct HubInner {
    /// Every topic or filter subscribed to, again on every connection.
    topics: Vec<String>,
    /// The current connection's client, while connected: new subscriptions go through it.
    client: Option<AsyncClient>,
    /// The newest payload per topic, when it arrived, and whether a read took it.
    latest: HashMap<String, Latest>,
    /// The topics a sensor of the run reads (built on this hub): only their messages are
    /// counted (a discovery filter also brings the devices of other shards, or beyond the
    /// limit).
    read: HashSet<String>,
    /// Messages received on the topics in `read` (the one waiting when a topic joined it
    /// included).
    received: u64,
    /// Of those, values replaced before a read took them.
    superseded: u64,
    /// Discovery entries: for each, the ids already added.
    discoveries: Vec<Discovery>,
}

#[derive(Debug)]
struct Latest {
    payload: Vec<u8>,
    received: Instant,
    taken: bool,
}

#[derive(Debug)]
struct Discovery {
    /// The topic's levels before and after the id.
    template: (String, String),
    /// The entry's keys, for each sensor added.
    entry: toml::Table,
    run: RunStart,
    seen: HashSet<String>,
    ignored: u64,
}

impl Hub {
    fn detached() -> Hub {
        Hub {
            brokers: Vec::new(),
            client_id: String::new(),
            qos: Qos::AtLeastOnce,
            tls: None,
            shard: Arc::default(),
            state: Arc::new(HubState::default()),
            task: Mutex::new(None),
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, HubInner> {
        self.state.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Subscribes to `topic` (once), starting the connection if needed.
    fn subscribe(&self, topic: &str) {
        {
            let mut inner = self.inner();
            // A value that arrived before the sensor was built (the one that announced a
            // discovered device) is its first: read or superseded from here on.
            if !topic.contains('+')
                && inner.read.insert(topic.to_string())
                && inner.latest.get(topic).is_some_and(|l| !l.taken)
            {
                inner.received += 1;
            }
            // A discovered sensor's topic is covered by its entry's filter already.
            if !inner.topics.iter().any(|t| covers(t, topic)) {
                inner.topics.push(topic.to_string());
                if let Some(client) = &inner.client {
                    // Connected: subscribe now (a connection lost meanwhile subscribes again).
                    let _ = client.try_subscribe(topic, self.qos.to_rumqttc());
                }
            }
        }
        self.start();
    }

    fn start(&self) {
        let mut task = self.task.lock().unwrap_or_else(|e| e.into_inner());
        if task.is_none() {
            let state = self.state.clone();
            let shard = *self.shard.lock().unwrap_or_else(|e| e.into_inner());
            let client_id = self.client_id.clone() + &shard.map(Shard::suffix).unwrap_or_default();
            let (brokers, qos, tls) = (self.brokers.clone(), self.qos, self.tls.clone());
            *task = Some(AbortOnDrop(actix_rt::spawn(connect(
                brokers, client_id, qos, tls, state,
            ))));
        }
    }

    /// Stops the connection (its task is aborted; the broker keeps the session).
    fn stop(&self) {
        self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        let mut inner = self.inner();
        inner.client = None;
        inner.discoveries.clear();
        let received = std::mem::take(&mut inner.received);
        let superseded = std::mem::take(&mut inner.superseded);
        if received > 0 {
            log::info!(
                "mqtt driver ({}): {received} values received, {superseded} of them replaced by a newer one before a read took them (superseded)",
                self.client_id
            );
        }
    }

    /// Adds the sensors of a discovery entry as their ids appear.
    fn discover(&self, settings: &Settings, run: RunStart) {
        let Some(template) = settings.template.clone() else {
            return;
        };
        let filter = settings.topic.clone();
        self.inner().discoveries.push(Discovery {
            template,
            entry: settings.entry.clone(),
            run,
            seen: HashSet::new(),
            ignored: 0,
        });
        self.subscribe(&filter);
    }

    /// The newest payload of `topic` not yet read, if at most `max_age` old.
    fn take(&self, topic: &str, max_age: Duration) -> Option<Vec<u8>> {
        let mut inner = self.inner();
        let latest = inner.latest.get_mut(topic)?;
        if latest.taken || latest.received.elapsed() > max_age {
            return None;
        }
        latest.taken = true;
        Some(latest.payload.clone())
    }
}

impl HubInner {
    /// Keeps a message; returns the entries to add for a newly seen id.
    fn receive(&mut self, topic: &str, payload: &[u8]) -> Vec<(RunStart, toml::Table)> {
        let mut adds = Vec::new();
        for d in &mut self.discoveries {
            let (before, after) = &d.template;
            let Some(id) = topic
                .strip_prefix(before.as_str())
                .and_then(|t| t.strip_suffix(after.as_str()))
            else {
                continue;
            };
            if id.is_empty() || id.contains('/') || d.seen.contains(id) {
                continue;
            }
            if d.run.shard.is_some_and(|s| !s.contains(id)) {
                continue;
            }
            if d.seen.len() >= MAX_DISCOVERED {
                d.ignored += 1;
                continue;
            }
            d.seen.insert(id.to_string());
            let mut entry = d.entry.clone();
            entry.insert("id".into(), id.into());
            entry.insert("topic".into(), topic.into());
            adds.push((d.run.clone(), entry));
        }
        let replaced = self.latest.insert(
            topic.to_string(),
            Latest {
                payload: payload.to_vec(),
                received: Instant::now(),
                taken: false,
            },
        );
        if self.read.contains(topic) {
            self.received += 1;
            if replaced.is_some_and(|l| !l.taken) {
                self.superseded += 1;
            }
        }
        adds
    }
}

/// The hub's connection: connect (failover, backoff), subscribe to every topic, keep what
/// arrives; forever (aborted with the hub).
async fn connect(brokers: Vec<Broker>, client_id: String, qos: Qos, tls: Option<MqttTls>, state: Arc<HubState>) {
    let mut backoff = Backoff::new(crate::mqtt::DEFAULT_BACKOFF_MIN, crate::mqtt::DEFAULT_BACKOFF_MAX);
    let mut next = 0usize;
    loop {
        let broker = &brokers[next % brokers.len()];
        let mut options = MqttOptions::new(client_id.clone(), broker.host.clone(), broker.port);
        // The configuration gives every entry with an mqtts:// broker its TLS settings.
        if let (true, Some(tls)) = (broker.tls, &tls) {
            options.set_transport(tls.transport());
        }
        options.set_keep_alive(crate::mqtt::DEFAULT_KEEP_ALIVE);
        // The broker keeps the session (subscriptions and QoS 1 messages) while we are away.
        options.set_clean_session(false);
        options.set_max_packet_size(crate::mqtt::MAX_MESSAGE, crate::mqtt::MAX_MESSAGE);
        let (client, mut eventloop) = AsyncClient::new(options, REQUESTS);
        let mut connected = false;
        let failure = loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    connected = true;
                    backoff.reset();
                    log::info!(
                        "mqtt driver: connected to {broker} as {client_id} (session {})",
                        if ack.session_present { "resumed" } else { "new" }
                    );
                    // Subscribe again on every connection, whatever the broker kept.
                    let mut inner = state.inner.lock().unwrap_or_else(|e| e.into_inner());
                    for chunk in inner.topics.chunks(SUBSCRIBE_BATCH) {
                        let filters = chunk
                            .iter()
                            .map(|t| rumqttc::SubscribeFilter::new(t.clone(), qos.to_rumqttc()));
                        let _ = client.try_subscribe_many(filters);
                    }
                    inner.client = Some(client.clone());
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let adds = state
                        .inner
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .receive(&p.topic, &p.payload);
                    for (run, entry) in adds {
                        add(run, entry);
                    }
                }
                Ok(_) => {}
                Err(e) => break cause(&e),
            }
        };
        state.inner.lock().unwrap_or_else(|e| e.into_inner()).client = None;
        let superseded = state.inner.lock().unwrap_or_else(|e| e.into_inner()).superseded;
        next += 1;
        let delay = backoff.next_delay();
        log::warn!(
            "mqtt driver: {} {broker}: {failure}; trying {} in {} ms ({superseded} values superseded before a read so far)",
            if connected { "lost" } else { "cannot connect to" },
            brokers[next % brokers.len()],
            delay.as_millis()
        );
        tokio::time::sleep(delay).await;
    }
}

/// Topics per SUBSCRIBE packet when subscribing again after a connection.
const SUBSCRIBE_BATCH: usize = 1_000;

/// Requests (subscriptions) the client queues for its connection.
const REQUESTS: usize = 1_024;

/// Whether subscription `filter` (a topic, or one with `+` levels) covers `topic`.
fn covers(filter: &str, topic: &str) -> bool {
    let (mut f, mut t) = (filter.split('/'), topic.split('/'));
    loop {
        match (f.next(), t.next()) {
            (None, None) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            _ => return false,
        }
    }
}

/// Adds a discovered sensor through the run's `Control`.
fn add(run: RunStart, entry: toml::Table) {
    actix_rt::spawn(async move {
        let id = entry
            .get("id")
            .and_then(toml::Value::as_str)
            .unwrap_or_default()
            .to_string();
        match run.control.add(REQUESTER, entry).await {
            Ok(added) => log::info!("mqtt driver: discovered {id}, read from round {}", added.first_round),
            Err(e) => log::warn!("mqtt driver: discovered {id} but cannot add it: {e}"),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads() {
        assert_eq!(parse_value(b" 21.5\n", None), Ok(21.5));
        assert_eq!(parse_value(b"{\"value\": 3}", Some("value")), Ok(3.0));
        assert_eq!(
            parse_value(b"{\"v\": 3}", Some("value")),
            Err("expected a number at \"value\", got \"{\\\"v\\\": 3}\"".into())
        );
        assert!(parse_value(b"NaN", None).is_err());
        assert!(parse_value(&[0xff], None).is_err());
    }

    #[test]
    fn topics() {
        assert_eq!(parse_topic("a/b"), Ok(("a/b".into(), None)));
        assert_eq!(
            parse_topic("plant/{id}/t"),
            Ok(("plant/+/t".into(), Some(("plant/".into(), "/t".into()))))
        );
        assert!(parse_topic("plant/x{id}/t").is_err());
        assert!(parse_topic("plant/+/t").is_err());
        assert!(parse_topic("plant/{id}/{id}").is_err());
        assert!(covers("plant/+/t", "plant/b-1/t"));
        assert!(!covers("plant/+/t", "plant/b-1/t/x"));
        assert!(covers("a/b", "a/b"));
    }
}
