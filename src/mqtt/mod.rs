//! MQTT: what the output ([`sinks::MqttOutput`](crate::sinks::MqttOutput)) and the `mqtt`
//! driver ([`driver::mqtt`](crate::driver::mqtt)) share: broker addresses and their failover
//! list, TLS for `mqtts://` brokers ([`MqttTls`], `tls.rs`), QoS levels, topic templates, the
//! backoff between connection attempts, and the `[outputs.mqtt]` section of the configuration
//! (raw serde struct and its validation).
//!
//! Nothing here opens a connection: the output's connection task (`link.rs`) and the driver's
//! subscription (in the driver) do, with the `rumqttc` client (docs/deployment.md, "Choices").
//! Every check here is a one-line [`ConfigError`] naming the file and the field.

pub(crate) mod link;
mod tls;

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::parse::{parse_duration, quoted, ConfigError};

pub use tls::{MqttTls, TlsError, TlsFile};

/// The port of a broker address without one (MQTT's registered port).
pub const DEFAULT_PORT: u16 = 1883;

/// The port of an `mqtts://` broker address without one (MQTT over TLS's registered port).
pub const DEFAULT_TLS_PORT: u16 = 8883;

/// The output's name in the run's journal (`output` of its connection's events) and in its
/// stream names.
pub const OUTPUT_NAME: &str = "mqtt";

/// Messages the output holds while no broker takes them (`buffer`).
pub const DEFAULT_BUFFER: usize = 100_000;

/// The largest `buffer` accepted: about 30 MB of readings.
pub const MAX_BUFFER: usize = 10_000_000;

/// Messages handed to the client and not yet confirmed, at most: for QoS 1 the broker's
/// acknowledgements come back while more go out (`rumqttc`'s in-flight window).
pub const WINDOW: u16 = 1_000;

/// The largest message (topic and payload) published or received, in bytes: 16 MiB (a run's
/// summary of about 60,000 sensors). A larger one is dropped and counted (`too_large`).
pub const MAX_MESSAGE: usize = 16 << 20;

/// The MQTT keep-alive unless `keep_alive` says otherwise.
pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(10);

/// First delay before another connection attempt.
pub const DEFAULT_BACKOFF_MIN: Duration = Duration::from_millis(100);

/// Longest delay between connection attempts.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// How long the output keeps trying to deliver what it holds when the run ends.
pub const DEFAULT_FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// The client id of the output unless `client_id` says otherwise.
pub const DEFAULT_CLIENT_ID: &str = "sensor-actors";

/// Default topic templates of `[outputs.mqtt.topics]`.
pub mod topics {
    /// One message per reading.
    pub const READINGS: &str = "sensors/{id}/reading";
    /// One message per anomaly.
    pub const ANOMALIES: &str = "sensors/{id}/anomaly";
    /// One message per supervision event (`{id}`: the sensor, or the group of a group's event).
    pub const EVENTS: &str = "sensors/{id}/event";
    /// One message per round: the round's counts.
    pub const ROUNDS: &str = "sensor-actors/{client_id}/round";
    /// The run's summary, once at the end.
    pub const SUMMARY: &str = "sensor-actors/{client_id}/summary";
    /// The collector's status: birth (`online`), last will (`lost`) and `offline` at the end;
    /// always retained.
    pub const STATUS: &str = "sensor-actors/{client_id}/status";
}

/// A broker's address: host and port, and whether the connection is TLS (`mqtts://`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broker {
    /// Host name or IP address (the name the broker's certificate must carry, with TLS).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// TLS (`mqtts://`), with the [`MqttTls`] settings of the output or driver.
    pub tls: bool,
}

impl std::fmt::Display for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.tls {
            f.write_str("mqtts://")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl Broker {
    /// `host:port`, `host` (port 1883), or either behind `mqtt://` or `tcp://`; with TLS
    /// behind `mqtts://` or `ssl://` (port 8883 unless given); an IPv6 address in brackets
    /// (`[::1]:1883`).
    pub fn parse(text: &str) -> Result<Broker, String> {
        let expected = || {
            format!(
                "expected a broker address like \"127.0.0.1:1883\", \"mqtt://broker.local:1883\" or \"mqtts://broker.local:8883\", got {}",
                quoted(text)
            )
        };
        let t = text.trim();
        let (rest, tls) = match t.split_once("://") {
            Some(("mqtt" | "tcp", rest)) => (rest, false),
            Some(("mqtts" | "ssl", rest)) => (rest, true),
            Some((scheme, _)) => {
                return Err(format!(
                    "expected the scheme mqtt://, tcp://, mqtts:// or ssl://, got {}",
                    quoted(&format!("{scheme}://"))
                ))
            }
            None => (t, false),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(expected)?;
            match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None if after.is_empty() => (host, None),
                None => return Err(expected()),
            }
        } else {
            match rest.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (rest, None),
            }
        };
        let valid_host = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
        if !valid_host {
            return Err(expected());
        }
        let port = match port {
            Some(p) => match p.parse::<u16>() {
                Ok(port) if port > 0 => port,
                _ => return Err(expected()),
            },
            None if tls => DEFAULT_TLS_PORT,
            None => DEFAULT_PORT,
        };
        Ok(Broker {
            host: host.to_string(),
            port,
            tls,
        })
    }
}

/// Parses a list of broker addresses (`brokers`), at least one, for `field` of `origin`.
pub(crate) fn parse_brokers(origin: &str, field: &str, list: &[String]) -> Result<Vec<Broker>, ConfigError> {
    if list.is_empty() {
        return Err(ConfigError::new(
            origin,
            field,
            "expected at least one broker address, like [\"127.0.0.1:1883\"]",
        ));
    }
    list.iter()
        .enumerate()
        .map(|(i, text)| Broker::parse(text).map_err(|e| ConfigError::new(origin, format!("{field}[{i}]"), e)))
        .collect()
}

/// The TLS settings of `field` (the output's section or a `[[sensors]]` entry) of `origin`:
/// `tls_ca` (relative to `base`) is required with `mqtts://` brokers and refused without;
/// `tls_cert` and `tls_key` go together. Each file is read and checked here.
pub(crate) fn parse_tls(
    origin: &str,
    field: &str,
    base: &Path,
    brokers: &[Broker],
    ca: Option<&str>,
    client: (Option<&str>, Option<&str>),
) -> Result<Option<MqttTls>, ConfigError> {
    let err = |key: &str, message: String| ConfigError::new(origin, format!("{field}.{key}"), message);
    let tls = brokers.iter().any(|b| b.tls);
    let ca = match (ca, tls) {
        (None, false) => {
            return match client {
                (None, None) => Ok(None),
                (Some(_), _) => Err(err(
                    "tls_cert",
                    "expected mqtts:// brokers with it (only TLS uses it)".into(),
                )),
                (None, Some(_)) => Err(err(
                    "tls_key",
                    "expected mqtts:// brokers with it (only TLS uses it)".into(),
                )),
            }
        }
        (None, true) => {
            return Err(err(
                "tls_ca",
                "expected the CA certificates (a PEM file) for the mqtts:// brokers, like tls_ca = \"ca.pem\" \
                 (the system's: \"/etc/ssl/certs/ca-certificates.crt\")"
                    .into(),
            ))
        }
        (Some(_), false) => {
            return Err(err(
                "tls_ca",
                "expected mqtts:// brokers with it (only TLS uses it)".into(),
            ))
        }
        (Some(ca), true) => base.join(ca),
    };
    let client = match client {
        (Some(cert), Some(key)) => Some((base.join(cert), base.join(key))),
        (None, None) => None,
        (Some(_), None) => {
            return Err(err(
                "tls_key",
                "expected the client's private key (a PEM file) with tls_cert".into(),
            ))
        }
        (None, Some(_)) => {
            return Err(err(
                "tls_cert",
                "expected the client's certificate (a PEM file) with tls_key".into(),
            ))
        }
    };
    let client = client.as_ref().map(|(c, k)| (c.as_path(), k.as_path()));
    MqttTls::from_pem_files(&ca, client)
        .map(Some)
        .map_err(|e| err(e.file.field(), e.message))
}

/// An MQTT quality of service this crate publishes and subscribes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Qos {
    /// QoS 0: at most once; nothing is confirmed.
    AtMostOnce,
    /// QoS 1: at least once; the broker acknowledges each message.
    #[default]
    AtLeastOnce,
}

impl Qos {
    /// `0` or `1` (QoS 2 is not supported).
    pub fn from_level(level: i64) -> Result<Qos, String> {
        match level {
            0 => Ok(Qos::AtMostOnce),
            1 => Ok(Qos::AtLeastOnce),
            _ => Err(format!("expected 0 or 1 (QoS 2 is not supported), got {level}")),
        }
    }

    /// The level, 0 or 1.
    pub fn level(self) -> u8 {
        match self {
            Qos::AtMostOnce => 0,
            Qos::AtLeastOnce => 1,
        }
    }

    pub(crate) fn to_rumqttc(self) -> rumqttc::QoS {
        match self {
            Qos::AtMostOnce => rumqttc::QoS::AtMostOnce,
            Qos::AtLeastOnce => rumqttc::QoS::AtLeastOnce,
        }
    }
}

/// A placeholder of a topic template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Placeholder {
    /// `{id}`: the sensor's id (for a group's own event, the group's name).
    Id,
    /// `{kind}`: the sensor's kind.
    Kind,
    /// `{detector}`: the detector that found an anomaly.
    Detector,
    /// `{event}`: the supervision event's name.
    Event,
    /// `{client_id}`: the output's MQTT client id.
    ClientId,
}

impl Placeholder {
    const ALL: [Placeholder; 5] = [
        Placeholder::Id,
        Placeholder::Kind,
        Placeholder::Detector,
        Placeholder::Event,
        Placeholder::ClientId,
    ];

    /// Its name between braces.
    pub fn name(self) -> &'static str {
        match self {
            Placeholder::Id => "id",
            Placeholder::Kind => "kind",
            Placeholder::Detector => "detector",
            Placeholder::Event => "event",
            Placeholder::ClientId => "client_id",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Slot(Placeholder),
}

/// A topic with placeholders (`sensors/{id}/reading`), checked when the configuration is read:
/// known placeholders only, each allowed for its stream, no wildcard (`+`, `#`), no NUL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicTemplate {
    text: String,
    parts: Vec<Part>,
}

impl std::fmt::Display for TopicTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl TopicTemplate {
    /// Parses `text`, allowing the placeholders in `allowed`.
    pub fn parse(text: &str, allowed: &[Placeholder]) -> Result<TopicTemplate, String> {
        let names = || {
            allowed
                .iter()
                .map(|p| format!("{{{}}}", p.name()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if text.is_empty() {
            return Err("expected a topic like \"sensors/{id}/reading\", got \"\"".into());
        }
        if text.contains(['+', '#', '\0']) {
            return Err(format!(
                "expected a topic to publish to, without the wildcards + and # (or NUL), got {}",
                quoted(text)
            ));
        }
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .ok_or_else(|| format!("expected a closing }} in {}", quoted(text)))?;
            let name = &after[..close];
            let slot = Placeholder::ALL
                .into_iter()
                .find(|p| p.name() == name && allowed.contains(p))
                .ok_or_else(|| format!("expected only the placeholders {} here, got {{{name}}}", names()))?;
            parts.push(Part::Slot(slot));
            rest = &after[close + 1..];
        }
        if rest.contains('}') {
            return Err(format!("expected an opening {{ before }} in {}", quoted(text)));
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(TopicTemplate {
            text: text.to_string(),
            parts,
        })
    }

    /// The topic for these values (a placeholder without a value becomes `_`). Values are
    /// used as they are, but a `/`, `+` or `#` in one becomes `_`, so a value never adds a level
    /// or a wildcard.
    pub fn render(&self, value: impl Fn(Placeholder) -> Option<String>) -> String {
        let mut topic = String::with_capacity(self.text.len() + 16);
        for part in &self.parts {
            match part {
                Part::Text(t) => topic.push_str(t),
                Part::Slot(p) => match value(*p) {
                    Some(v) => topic.extend(v.chars().map(|c| if matches!(c, '/' | '+' | '#') { '_' } else { c })),
                    None => topic.push('_'),
                },
            }
        }
        topic
    }

    /// Whether it uses `placeholder`.
    pub fn uses(&self, placeholder: Placeholder) -> bool {
        self.parts.contains(&Part::Slot(placeholder))
    }
}

/// Exponential backoff between connection attempts, `min` doubling up to `max`, with up to 25%
/// jitter; [`Backoff::reset`] after a successful connection.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Backoff {
        Backoff { min, max, attempt: 0 }
    }

    /// The next delay (without jitter for the first attempt, so tests see `min`).
    pub(crate) fn next_delay(&mut self) -> Duration {
        let factor = 2u32.saturating_pow(self.attempt.min(20));
        self.attempt += 1;
        let base = self.min.saturating_mul(factor).min(self.max);
        if self.attempt == 1 {
            return base;
        }
        let jitter = base.mul_f64(rand::random::<f64>() * 0.25);
        (base + jitter).min(self.max)
    }

    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// Settings of the MQTT output: the `[outputs.mqtt]` section.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct MqttOutputConfig {
    /// Brokers in failover order: the output connects to the first, and after a failed
    /// connection or a lost one tries the next (wrapping around).
    pub brokers: Vec<Broker>,
    /// Fixed client id (a random one would lose the broker's session on every restart).
    pub client_id: String,
    /// QoS of every message but the status (always QoS 1).
    pub qos: Qos,
    /// Whether readings, anomalies, events, rounds and summary are retained.
    pub retain: bool,
    /// Messages held while no broker takes them; more are dropped and counted.
    pub buffer: usize,
    /// MQTT keep-alive.
    pub keep_alive: Duration,
    /// First delay between connection attempts.
    pub backoff_min: Duration,
    /// Longest delay between connection attempts.
    pub backoff_max: Duration,
    /// How long the end of a run waits for what is held to be delivered.
    pub flush_timeout: Duration,
    /// TLS for the `mqtts://` brokers (`tls_ca`, `tls_cert`, `tls_key`).
    pub tls: Option<MqttTls>,
    /// Where each stream goes (`None`: not published).
    pub topics: MqttTopics,
}

/// Topic templates of the output, per stream; `None` for a stream switched off with `""`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct MqttTopics {
    /// Readings (`{id}`, `{kind}`, `{client_id}`).
    pub readings: Option<TopicTemplate>,
    /// Anomalies (`{id}`, `{detector}`, `{client_id}`).
    pub anomalies: Option<TopicTemplate>,
    /// Supervision events (`{id}`, `{event}`, `{client_id}`).
    pub events: Option<TopicTemplate>,
    /// Round summaries (`{client_id}`).
    pub rounds: Option<TopicTemplate>,
    /// The run's summary (`{client_id}`).
    pub summary: Option<TopicTemplate>,
    /// The collector's status: birth, last will, end (`{client_id}`).
    pub status: TopicTemplate,
}

impl MqttOutputConfig {
    /// The output to `brokers` with every other setting at its default.
    pub fn new(brokers: Vec<Broker>) -> MqttOutputConfig {
        use Placeholder::*;
        let t = |text: &str, allowed: &[Placeholder]| {
            TopicTemplate::parse(text, allowed).expect("the default topics are valid")
        };
        MqttOutputConfig {
            brokers,
            client_id: DEFAULT_CLIENT_ID.to_string(),
            qos: Qos::AtLeastOnce,
            retain: false,
            buffer: DEFAULT_BUFFER,
            keep_alive: DEFAULT_KEEP_ALIVE,
            backoff_min: DEFAULT_BACKOFF_MIN,
            backoff_max: DEFAULT_BACKOFF_MAX,
            flush_timeout: DEFAULT_FLUSH_TIMEOUT,
            tls: None,
            topics: MqttTopics {
                readings: Some(t(topics::READINGS, &[Id, Kind, ClientId])),
                anomalies: Some(t(topics::ANOMALIES, &[Id, Detector, ClientId])),
                events: Some(t(topics::EVENTS, &[Id, Event, ClientId])),
                rounds: Some(t(topics::ROUNDS, &[ClientId])),
                summary: Some(t(topics::SUMMARY, &[ClientId])),
                status: t(topics::STATUS, &[ClientId]),
            },
        }
    }
}

/// `[outputs]`: outputs configured in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOutputs {
    pub(crate) mqtt: Option<RawMqttOutput>,
    pub(crate) files: Option<crate::config::RawFilesOutput>,
}

/// `[outputs.mqtt]`, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMqttOutput {
    brokers: Option<Vec<String>>,
    client_id: Option<String>,
    qos: Option<i64>,
    retain: Option<bool>,
    buffer: Option<i64>,
    keep_alive: Option<String>,
    backoff_min: Option<String>,
    backoff_max: Option<String>,
    flush_timeout: Option<String>,
    tls_ca: Option<String>,
    tls_cert: Option<String>,
    tls_key: Option<String>,
    topics: Option<RawTopics>,
}

/// `[outputs.mqtt.topics]`, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTopics {
    readings: Option<String>,
    anomalies: Option<String>,
    events: Option<String>,
    rounds: Option<String>,
    summary: Option<String>,
    status: Option<String>,
}

/// Checks an MQTT client id: 1 to 64 visible ASCII characters without `+`, `#` or `/` (it is
/// used in topics).
pub(crate) fn check_client_id(text: &str) -> Result<(), String> {
    let ok = !text.is_empty()
        && text.len() <= 64
        && text
            .chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '+' | '#' | '/'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "expected 1 to 64 visible ASCII characters without +, # or /, got {}",
            quoted(text)
        ))
    }
}

impl RawMqttOutput {
    /// Validates the section (TLS files relative to `base`); errors name
    /// `outputs.mqtt.<field>`.
    pub(crate) fn validate(self, origin: &str, base: &Path) -> Result<MqttOutputConfig, ConfigError> {
        const AT: &str = "outputs.mqtt";
        let err = |field: &str, message: String| ConfigError::new(origin, format!("{AT}.{field}"), message);
        let brokers = match &self.brokers {
            Some(list) => parse_brokers(origin, &format!("{AT}.brokers"), list)?,
            None => {
                return Err(err(
                    "brokers",
                    "expected a list of broker addresses, like brokers = [\"127.0.0.1:1883\"]".into(),
                ))
            }
        };
        let mut c = MqttOutputConfig::new(brokers);
        if let Some(id) = self.client_id {
            check_client_id(&id).map_err(|e| err("client_id", e))?;
            c.client_id = id;
        }
        if let Some(level) = self.qos {
            c.qos = Qos::from_level(level).map_err(|e| err("qos", e))?;
        }
        c.retain = self.retain.unwrap_or(false);
        if let Some(n) = self.buffer {
            if !(1..=MAX_BUFFER as i64).contains(&n) {
                return Err(err("buffer", format!("expected 1 to {MAX_BUFFER} messages, got {n}")));
            }
            c.buffer = n as usize;
        }
        let duration = |field: &str, text: &Option<String>, default: Duration| match text {
            Some(t) => parse_duration(origin, &format!("{AT}.{field}"), t),
            None => Ok(default),
        };
        c.keep_alive = duration("keep_alive", &self.keep_alive, c.keep_alive)?;
        if c.keep_alive < Duration::from_secs(1) || c.keep_alive > Duration::from_secs(65_535) {
            return Err(err(
                "keep_alive",
                format!(
                    "expected 1s to 65535s, got {}",
                    humantime::format_duration(c.keep_alive)
                ),
            ));
        }
        c.backoff_min = duration("backoff_min", &self.backoff_min, c.backoff_min)?;
        c.backoff_max = duration("backoff_max", &self.backoff_max, c.backoff_max)?;
        if c.backoff_min.is_zero() || c.backoff_min > c.backoff_max {
            return Err(err(
                "backoff_min",
                format!(
                    "expected more than 0 and at most backoff_max ({}), got {}",
                    humantime::format_duration(c.backoff_max),
                    humantime::format_duration(c.backoff_min)
                ),
            ));
        }
        c.flush_timeout = duration("flush_timeout", &self.flush_timeout, c.flush_timeout)?;
        c.tls = parse_tls(
            origin,
            AT,
            base,
            &c.brokers,
            self.tls_ca.as_deref(),
            (self.tls_cert.as_deref(), self.tls_key.as_deref()),
        )?;
        if let Some(raw) = self.topics {
            use Placeholder::*;
            let topic =
                |field: &str, text: Option<String>, current: Option<TopicTemplate>, allowed: &[Placeholder]| match text
                {
                    Some(t) if t.is_empty() && field != "status" => Ok(None),
                    Some(t) => TopicTemplate::parse(&t, allowed)
                        .map(Some)
                        .map_err(|e| err(&format!("topics.{field}"), e)),
                    None => Ok(current),
                };
            let t = &mut c.topics;
            t.readings = topic("readings", raw.readings, t.readings.take(), &[Id, Kind, ClientId])?;
            t.anomalies = topic(
                "anomalies",
                raw.anomalies,
                t.anomalies.take(),
                &[Id, Detector, ClientId],
            )?;
            t.events = topic("events", raw.events, t.events.take(), &[Id, Event, ClientId])?;
            t.rounds = topic("rounds", raw.rounds, t.rounds.take(), &[ClientId])?;
            t.summary = topic("summary", raw.summary, t.summary.take(), &[ClientId])?;
            if let Some(status) = topic("status", raw.status, None, &[ClientId])? {
                t.status = status;
            }
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_addresses() {
        let b = |t: &str| Broker::parse(t).map(|b| b.to_string());
        assert_eq!(b("127.0.0.1:1884").unwrap(), "127.0.0.1:1884");
        assert_eq!(b("mqtt://broker.local").unwrap(), "broker.local:1883");
        assert_eq!(b("tcp://[::1]:2000/").unwrap(), "[::1]:2000");
        assert_eq!(b("mqtts://x").unwrap(), "mqtts://x:8883");
        assert!(Broker::parse("ssl://[::1]:1").unwrap().tls);
        assert!(!Broker::parse("x").unwrap().tls);
        assert!(b("ws://x:1").unwrap_err().starts_with("expected the scheme"));
        assert!(b("host:0").unwrap_err().starts_with("expected a broker address"));
        assert!(b("host:99999").is_err());
        assert!(b("").is_err());
        assert!(b("a b:1").is_err());
    }

    #[test]
    fn templates_render_and_refuse_what_cannot_be_published() {
        use Placeholder::*;
        let t = TopicTemplate::parse("sensors/{id}/{kind}", &[Id, Kind]).unwrap();
        let topic = t.render(|p| match p {
            Id => Some("a/b+c".into()),
            _ => None,
        });
        assert_eq!(topic, "sensors/a_b_c/_");
        assert_eq!(
            TopicTemplate::parse("s/{detector}", &[Id]).unwrap_err(),
            "expected only the placeholders {id} here, got {detector}"
        );
        assert!(TopicTemplate::parse("s/#", &[Id]).unwrap_err().contains("wildcards"));
        assert!(TopicTemplate::parse("s/{id", &[Id]).unwrap_err().contains("closing"));
        assert!(TopicTemplate::parse("s/id}", &[Id]).unwrap_err().contains("opening"));
    }

    fn section(text: &str) -> Result<MqttOutputConfig, String> {
        let raw: RawMqttOutput = toml::from_str(text).map_err(|e| e.to_string())?;
        raw.validate("c.toml", Path::new("")).map_err(|e| e.to_string())
    }

    #[test]
    fn the_section_is_validated_field_by_field() {
        let c = section("brokers = [\"127.0.0.1:1\", \"mqtt://b:2\"]\nqos = 0\n[topics]\nrounds = \"\"\n").unwrap();
        assert_eq!(c.brokers.len(), 2);
        assert_eq!(c.qos, Qos::AtMostOnce);
        assert_eq!(c.topics.rounds, None);
        assert_eq!(c.topics.readings.unwrap().to_string(), topics::READINGS);
        let e = |t: &str| section(t).unwrap_err();
        assert_eq!(
            e("qos = 1\n"),
            "c.toml: outputs.mqtt.brokers: expected a list of broker addresses, like brokers = [\"127.0.0.1:1883\"]"
        );
        assert_eq!(
            e("brokers = [\"a:1\", \"x:y\"]\n"),
            "c.toml: outputs.mqtt.brokers[1]: expected a broker address like \"127.0.0.1:1883\", \"mqtt://broker.local:1883\" or \"mqtts://broker.local:8883\", got \"x:y\""
        );
        assert_eq!(
            e("brokers = [\"a\"]\nqos = 2\n"),
            "c.toml: outputs.mqtt.qos: expected 0 or 1 (QoS 2 is not supported), got 2"
        );
        assert_eq!(
            e("brokers = [\"a\"]\nbuffer = 0\n"),
            "c.toml: outputs.mqtt.buffer: expected 1 to 10000000 messages, got 0"
        );
        assert_eq!(
            e("brokers = [\"a\"]\nclient_id = \"a/b\"\n"),
            "c.toml: outputs.mqtt.client_id: expected 1 to 64 visible ASCII characters without +, # or /, got \"a/b\""
        );
        assert_eq!(
            e("brokers = [\"a\"]\n[topics]\nreadings = \"x/{detector}\"\n"),
            "c.toml: outputs.mqtt.topics.readings: expected only the placeholders {id}, {kind}, {client_id} here, got {detector}"
        );
        assert!(e("brokers = [\"a\"]\n[topics]\nstatus = \"\"\n")
            .starts_with("c.toml: outputs.mqtt.topics.status: expected a topic"));
        assert!(
            e("brokers = [\"mqtts://a\"]\n").starts_with("c.toml: outputs.mqtt.tls_ca: expected the CA certificates")
        );
        assert_eq!(
            e("brokers = [\"a\"]\ntls_ca = \"ca.pem\"\n"),
            "c.toml: outputs.mqtt.tls_ca: expected mqtts:// brokers with it (only TLS uses it)"
        );
        assert_eq!(
            e("brokers = [\"mqtts://a\"]\ntls_ca = \"ca.pem\"\ntls_cert = \"c.pem\"\n"),
            "c.toml: outputs.mqtt.tls_key: expected the client's private key (a PEM file) with tls_cert"
        );
        assert!(e("brokers = [\"mqtts://a\"]\ntls_ca = \"/nonexistent/ca.pem\"\n")
            .starts_with("c.toml: outputs.mqtt.tls_ca: cannot read /nonexistent/ca.pem: "));
    }

    #[test]
    fn backoff_doubles_up_to_its_max() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(500));
        assert_eq!(b.next_delay(), Duration::from_millis(100));
        let second = b.next_delay();
        assert!(second >= Duration::from_millis(200) && second <= Duration::from_millis(250));
        for _ in 0..10 {
            assert!(b.next_delay() <= Duration::from_millis(500));
        }
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
    }
}
