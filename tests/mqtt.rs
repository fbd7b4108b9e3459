//! MQTT in and out against real brokers, started here on loopback ports picked at run time:
//! Debian's `mosquitto` for the single-broker cases, a three-node `nats-server` cluster (MQTT
//! listeners, JetStream, cluster routes) for failover. Without the programs the tests fail with a
//! line saying how to install them (`scripts/test` does).
//!
//! Every wait is on a condition with a deadline (a message seen, a port open, a count reached);
//! the only fixed delays are a broker client's retry pause after a failed connection.

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::Actor;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use sensor_actors::report::OutputReport;
use sensor_actors::sinks::{Finish, MqttOutput, MqttStats, Stats};
use sensor_actors::streams::{Delivery, Readings};
use sensor_actors::{Collector, Config, Shard, Summary};
use serde_json::Value;

/// How long any one thing may take to happen.
const PATIENCE: Duration = Duration::from_secs(30);

/// A free loopback port: bound, read, released.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `program`, from `$VAR` or the PATH or /usr/sbin; panics with how to install it.
fn program(name: &str, var: &str, package: &str) -> PathBuf {
    let candidates: Vec<PathBuf> = match std::env::var(var) {
        Ok(p) => vec![p.into()],
        Err(_) => vec![
            name.into(),
            Path::new("/usr/sbin").join(name),
            Path::new("/usr/bin").join(name),
        ],
    };
    for c in candidates {
        let ran = Command::new(&c)
            .arg(if name == "mosquitto" { "-h" } else { "--version" })
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if ran.is_ok() {
            return c;
        }
    }
    panic!(
        "the MQTT tests need a real `{name}` broker and none ran: install Debian's `{package}` package \
         (`apt-get install {package}`), run `scripts/test` (which installs it), or name the program in ${var}"
    );
}

/// Waits until `ready` holds, polling every 10 ms, or panics naming `what`.
async fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(
            start.elapsed() < PATIENCE,
            "timed out after {PATIENCE:?} waiting for {what}"
        );
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until something listens on `port`.
async fn wait_for_port(port: u16) {
    wait_until(&format!("a broker on port {port}"), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    })
    .await;
}

/// A broker process, killed when dropped.
struct Process {
    child: Option<Child>,
    name: String,
}

impl Process {
    fn spawn(name: &str, program: &Path, args: &[&str], log: &Path) -> Process {
        let log = std::fs::File::create(log).unwrap();
        let child = Command::new(program)
            .args(args)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        Process {
            child: Some(child),
            name: name.to_string(),
        }
    }

    /// Stops it: SIGTERM (a clean shutdown, mosquitto saves its sessions), then waits.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            unsafe {
                libc::kill(child.id() as i32, libc::SIGTERM);
            }
            let start = Instant::now();
            while child.try_wait().unwrap().is_none() {
                if start.elapsed() > PATIENCE {
                    let _ = child.kill();
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    /// Kills it at once (SIGKILL): a node that dies.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.child.is_some() {
            eprintln!("stopping {}", self.name);
        }
        self.kill();
    }
}

/// A mosquitto on its own port and configuration file, with persistence in its folder (so a
/// stopped and restarted broker keeps the sessions of persistent clients).
struct Mosquitto {
    port: u16,
    dir: tempfile::TempDir,
    process: Process,
    /// More of its configuration (more listeners).
    extra: String,
}

impl Mosquitto {
    async fn start() -> Mosquitto {
        Mosquitto::start_with(String::new()).await
    }

    /// With `extra` lines of configuration after the plain listener's.
    async fn start_with(extra: String) -> Mosquitto {
        let dir = tempfile::tempdir().unwrap();
        // Started as root, mosquitto runs as the user `mosquitto`, which must be able to write
        // its persistence file here.
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let port = free_port();
        let process = Mosquitto::spawn(dir.path(), port, &extra);
        wait_for_port(port).await;
        Mosquitto {
            port,
            dir,
            process,
            extra,
        }
    }

    fn spawn(dir: &Path, port: u16, extra: &str) -> Process {
        let program = program("mosquitto", "MOSQUITTO", "mosquitto");
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\n\
                 max_queued_messages 0\nmax_inflight_messages 0\n{extra}",
                dir.display()
            ),
        )
        .unwrap();
        Process::spawn(
            "mosquitto",
            &program,
            &["-c", conf.to_str().unwrap()],
            &dir.join("mosquitto.log"),
        )
    }

    async fn restart(&mut self) {
        self.process = Mosquitto::spawn(self.dir.path(), self.port, &self.extra);
        wait_for_port(self.port).await;
    }
}

/// A message a test client received.
#[derive(Debug, Clone)]
struct Received {
    topic: String,
    payload: Vec<u8>,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.payload).unwrap_or_else(|e| panic!("{}: {e}", self.topic))
    }
}

/// A test client subscribed to `filters` at QoS 1, with a failover list of ports, collecting
/// every message; it subscribes again on every connection.
struct Subscriber {
    messages: Arc<Mutex<Vec<Received>>>,
    subscribed: Arc<Mutex<u64>>,
    _task: tokio::task::JoinHandle<()>,
}

impl Subscriber {
    async fn start(ports: &[u16], client_id: &str, clean: bool, filters: &[&str]) -> Subscriber {
        let messages = Arc::new(Mutex::new(Vec::new()));
        let subscribed = Arc::new(Mutex::new(0));
        let (ports, id) = (ports.to_vec(), client_id.to_string());
        let filters: Vec<String> = filters.iter().map(|f| f.to_string()).collect();
        let (m, s) = (messages.clone(), subscribed.clone());
        let task = actix_rt::spawn(async move {
            for attempt in 0.. {
                let port = ports[attempt % ports.len()];
                let mut options = MqttOptions::new(id.clone(), "127.0.0.1", port);
                options.set_clean_session(clean);
                options.set_keep_alive(Duration::from_secs(5));
                // A run's summary is larger than rumqttc's default limit of 10 KiB.
                options.set_max_packet_size(1 << 24, 1 << 24);
                let (client, mut eventloop) = AsyncClient::new(options, 100);
                loop {
                    match eventloop.poll().await {
                        Ok(Event::Incoming(Packet::ConnAck(_))) => {
                            for f in &filters {
                                client.subscribe(f.clone(), QoS::AtLeastOnce).await.unwrap();
                            }
                        }
                        Ok(Event::Incoming(Packet::SubAck(_))) => *s.lock().unwrap() += 1,
                        Ok(Event::Incoming(Packet::Publish(p))) => m.lock().unwrap().push(Received {
                            topic: p.topic.clone(),
                            payload: p.payload.to_vec(),
                        }),
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
                // The broker is away: try again shortly (the next port of the list).
                actix_rt::time::sleep(Duration::from_millis(50)).await;
            }
        });
        let subscriber = Subscriber {
            messages,
            subscribed,
            _task: task,
        };
        subscriber.wait_subscribed(1).await;
        subscriber
    }

    /// Waits for `times` SUBACKs in all.
    async fn wait_subscribed(&self, times: u64) {
        let s = self.subscribed.clone();
        wait_until("the test client's subscription", || *s.lock().unwrap() >= times).await;
    }

    fn received(&self) -> Vec<Received> {
        self.messages.lock().unwrap().clone()
    }

    fn on(&self, prefix: &str, suffix: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|m| m.topic.starts_with(prefix) && m.topic.ends_with(suffix))
            .collect()
    }

    /// Waits until at least `n` messages on topics from `prefix` to `suffix` have arrived.
    async fn wait_count(&self, prefix: &str, suffix: &str, n: usize) {
        let m = self.messages.clone();
        wait_until(&format!("{n} messages on {prefix}...{suffix}"), || {
            m.lock()
                .unwrap()
                .iter()
                .filter(|r| r.topic.starts_with(prefix) && r.topic.ends_with(suffix))
                .count()
                >= n
        })
        .await;
    }

    /// Waits until a message on `topic` has `"status": status`.
    async fn wait_status(&self, topic: &str, status: &str) {
        let start = Instant::now();
        loop {
            let statuses = self.on(topic, "");
            if statuses.iter().any(|r| r.json()["status"] == status) {
                return;
            }
            let seen: Vec<String> = statuses.iter().map(|r| r.json()["status"].to_string()).collect();
            assert!(
                start.elapsed() < PATIENCE,
                "timed out waiting for status {status} on {topic}; seen {seen:?}"
            );
            actix_rt::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Publishes `(topic, payload)` pairs at QoS 1 and waits for every PUBACK.
async fn publish(port: u16, client_id: &str, messages: &[(String, String)]) {
    let mut options = MqttOptions::new(client_id, "127.0.0.1", port);
    options.set_clean_session(true);
    let (client, mut eventloop) = AsyncClient::new(options, messages.len() + 10);
    for (topic, payload) in messages {
        client
            .publish(topic.clone(), QoS::AtLeastOnce, false, payload.clone())
            .await
            .unwrap();
    }
    let mut acked = 0;
    let start = Instant::now();
    while acked < messages.len() {
        assert!(
            start.elapsed() < PATIENCE,
            "publishing: {acked} of {} acknowledged",
            messages.len()
        );
        if let Event::Incoming(Packet::PubAck(_)) = eventloop.poll().await.unwrap() {
            acked += 1;
        }
    }
    client.disconnect().await.unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(1), eventloop.poll()).await;
}

/// Readings as (sensor, round) pairs, from their JSON payloads.
fn pairs(messages: &[Received]) -> Vec<(String, u64)> {
    messages
        .iter()
        .map(|m| {
            let v = m.json();
            (v["sensor"].as_str().unwrap().to_string(), v["round"].as_u64().unwrap())
        })
        .collect()
}

/// Runs `collector` with an MQTT output of `config` attached, until `shutdown`; returns the
/// summary and the output's counts after its flush.
async fn run_with_output(
    collector: Collector,
    config: Config,
    shutdown: impl std::future::Future<Output = ()>,
) -> (Summary, MqttStats, actix::Addr<MqttOutput>) {
    let settings = config.outputs.mqtt.clone().expect("an [outputs.mqtt] section");
    let output = MqttOutput::new(settings).start();
    let collector = MqttOutput::attach(&output, collector);
    let summary = collector.run(config, shutdown).await.unwrap();
    let stats = output.send(Finish).await.unwrap();
    (summary, stats, output)
}

fn simulated(sensors: usize, rounds: u64, interval: &str, output: &str) -> String {
    format!(
        "[collection]\ninterval = \"{interval}\"\nrounds = {rounds}\nseed = 7\n\
         [[sensors]]\ncount = {sensors}\nlatency = [\"1ms\", \"3ms\"]\nerror_rate = 0.0\n\
         [outputs.mqtt]\n{output}"
    )
}

/// A summary over the message limit (80,000 sensors' entries, about 20 MB as JSON) is counted
/// produced and too large, and never reaches the broker, while the run's status still goes out
/// after it and `summary.json` has the summary whole.
#[actix_rt::test]
async fn a_summary_over_the_message_limit_is_counted_too_large() {
    let broker = Mosquitto::start().await;
    let port = broker.port;
    let watcher = Subscriber::start(&[port], "watcher-large", true, &["sensor-actors/#"]).await;
    let text = simulated(
        80_000,
        1,
        "0s",
        &format!(
            "brokers = [\"127.0.0.1:{port}\"]\nclient_id = \"large\"\n\
             [outputs.mqtt.topics]\nreadings = \"\"\nrounds = \"\"\nevents = \"\"\nanomalies = \"\"\n"
        ),
    );
    let config = Collector::new().parse(&text, "mqtt.toml").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::new().out(dir.path()).unwrap();
    let (summary, stats, _output) = run_with_output(collector, config, std::future::pending()).await;
    let encoded = serde_json::to_vec(&summary).unwrap().len();
    assert!(encoded > sensor_actors::mqtt::MAX_MESSAGE, "{encoded} bytes");
    let counts = stats.stream("summary");
    assert_eq!(
        (
            counts.produced,
            counts.too_large,
            counts.published,
            counts.dropped,
            counts.unsent
        ),
        (1, 1, 0, 0, 0)
    );
    watcher.wait_status("sensor-actors/large/status", "offline").await;
    assert!(watcher.on("sensor-actors/large/summary", "").is_empty());
    let file = summary_file(dir.path());
    assert_eq!(file["sensors"].as_array().unwrap().len(), 80_000);
    assert_eq!(file["reads"]["ok"], 80_000);
}

/// 30 sensors, 10 rounds at QoS 1 into mosquitto: a test client subscribed to `sensors/+/reading`
/// receives exactly one message per reading (300, each (sensor, round) once, the values those
/// of the run), one per round on the rounds topic, the summary, and the status `online` then
/// `offline`; the output counts 300 readings produced and published, none dropped or unsent,
/// and so does `summary.json`'s `outputs` (the output settled before the summary was made),
/// as the summary `run` returns and the one published on the summary topic.
#[actix_rt::test]
async fn every_reading_reaches_a_subscriber_exactly_once() {
    let broker = Mosquitto::start().await;
    let port = broker.port;
    let watcher = Subscriber::start(&[port], "watcher-1", true, &["sensors/#", "sensor-actors/#"]).await;
    let text = simulated(
        30,
        10,
        "20ms",
        &format!("brokers = [\"127.0.0.1:{port}\"]\nclient_id = \"exactly-once\"\nqos = 1\n"),
    );
    let config = Collector::new().parse(&text, "mqtt.toml").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::new().out(dir.path()).unwrap();
    let (summary, stats, _output) = run_with_output(collector, config, std::future::pending()).await;
    assert_eq!(summary.reads.ok, 300);
    let counts = stats.readings();
    assert_eq!(
        (counts.produced, counts.published, counts.dropped, counts.unsent),
        (300, 300, 0, 0)
    );
    assert_eq!(stats.stream("rounds").published, 10);
    assert_eq!(stats.stream("summary").published, 1);
    // summary.json has the output's counts of every stream but the summary's own.
    let summary_json = summary_file(dir.path());
    let outputs = summary_json["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), 1);
    let mqtt = &outputs[0];
    assert_eq!(mqtt["name"], "mqtt");
    let outcomes = |stream: &str| -> Vec<u64> {
        ["produced", "published", "dropped", "too_large", "unsent", "held"]
            .iter()
            .map(|o| mqtt["streams"][stream][o].as_u64().unwrap())
            .collect()
    };
    assert_eq!(outcomes("readings"), [300, 300, 0, 0, 0, 0]);
    assert_eq!(outcomes("rounds"), [10, 10, 0, 0, 0, 0]);
    let events: u64 = summary.events.values().sum();
    assert_eq!(outcomes("events"), [events, events, 0, 0, 0, 0]);
    assert_eq!(events, 30);
    let anomalies: u64 = summary.anomalies.values().sum();
    assert_eq!(outcomes("anomalies"), [anomalies, anomalies, 0, 0, 0, 0]);
    assert_eq!(mqtt["streams"].as_object().unwrap().len(), 4, "{mqtt}");
    assert_eq!(mqtt["counts"]["connections"], 1);
    assert_eq!(mqtt["counts"]["connection_failures"], 0);
    let returned: Vec<OutputReport> = serde_json::from_value(summary_json["outputs"].clone()).unwrap();
    assert_eq!(summary.outputs, returned);
    // The offline status goes out after everything else was acknowledged.
    watcher
        .wait_status("sensor-actors/exactly-once/status", "offline")
        .await;
    watcher.wait_count("sensors/", "/reading", 300).await;
    let readings = watcher.on("sensors/", "/reading");
    assert_eq!(readings.len(), 300);
    let unique: BTreeSet<(String, u64)> = pairs(&readings).into_iter().collect();
    assert_eq!(unique.len(), 300);
    // The same readings as the JSON Lines file, value for value.
    let file = std::fs::read_to_string(dir.path().join("readings.jsonl")).unwrap();
    let from_file: BTreeMap<(String, u64), f64> = file
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                (v["sensor"].as_str().unwrap().to_string(), v["round"].as_u64().unwrap()),
                v["value"].as_f64().unwrap(),
            )
        })
        .collect();
    let from_broker: BTreeMap<(String, u64), f64> = readings
        .iter()
        .map(|m| {
            let v = m.json();
            (
                (v["sensor"].as_str().unwrap().to_string(), v["round"].as_u64().unwrap()),
                v["value"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(from_broker, from_file);
    // Each reading on its sensor's topic.
    assert!(readings
        .iter()
        .all(|m| m.topic == format!("sensors/{}/reading", m.json()["sensor"].as_str().unwrap())));
    assert_eq!(watcher.on("sensor-actors/exactly-once/round", "").len(), 10);
    let summaries = watcher.on("sensor-actors/exactly-once/summary", "");
    assert_eq!(summaries.len(), 1);
    assert_eq!(summaries[0].json()["reads"]["ok"], 300);
    assert_eq!(summaries[0].json()["outputs"], summary_json["outputs"]);
    let statuses: Vec<String> = watcher
        .on("sensor-actors/exactly-once/status", "")
        .iter()
        .map(|m| m.json()["status"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(statuses, ["online", "offline"]);
    assert_eq!(stats.connections, 1);
}

/// The broker stops mid-run and comes back: the output holds up to `buffer` = 150 messages
/// meanwhile and drops (and counts) the rest; after the restart the held ones are delivered.
/// Exactly the published ones reach the subscriber (whose persistent session the broker kept
/// across its restart): published + dropped = produced = the run's readings, none unsent, and
/// the journal has the disconnection, failed attempts and the reconnection; the live view's
/// `/metrics` has the same counts.
#[actix_rt::test]
async fn a_broker_restart_loses_nothing_within_the_buffer_and_counts_the_rest() {
    let mut broker = Mosquitto::start().await;
    let port = broker.port;
    let watcher = Subscriber::start(&[port], "watcher-2", false, &["sensors/+/reading"]).await;
    let text = simulated(
        20,
        40,
        "25ms",
        &format!(
            "brokers = [\"127.0.0.1:{port}\"]\nclient_id = \"restarts\"\nbuffer = 150\nbackoff_min = \"20ms\"\nbackoff_max = \"100ms\"\n\
             [outputs.mqtt.topics]\nrounds = \"\"\nevents = \"\"\nanomalies = \"\"\nsummary = \"\"\n"
        ),
    );
    let config = Collector::new().parse(&text, "mqtt.toml").unwrap();
    let settings = config.outputs.mqtt.clone().unwrap();
    // The live view gets the output's counts too.
    let http = sensor_actors::config::HttpConfig::new("127.0.0.1:0".parse().unwrap());
    let live = sensor_actors::live::LiveView::new(&config, &http).start();
    let output = MqttOutput::new(settings).report_to(live.clone().recipient()).start();
    let dir = tempfile::tempdir().unwrap();
    let collector = MqttOutput::attach(&output, Collector::new().out(dir.path()).unwrap());
    let run = actix_rt::spawn(collector.run(config, std::future::pending()));
    // A few rounds through, stop the broker; wait until the output has dropped some.
    let w = watcher.messages.clone();
    wait_until("40 readings before the stop", || w.lock().unwrap().len() >= 40).await;
    broker.process.stop();
    let mut dropped = 0;
    let start = Instant::now();
    while dropped < 50 {
        assert!(start.elapsed() < PATIENCE, "the output never dropped anything");
        let stats = output.send(Stats).await.unwrap();
        assert!(stats.readings().unsent == 0);
        dropped = stats.readings().dropped;
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
    broker.restart().await;
    let summary = run.await.unwrap().unwrap();
    let stats = output.send(Finish).await.unwrap();
    let counts = stats.readings();
    assert_eq!(counts.produced, summary.reads.ok);
    assert_eq!(summary.reads.ok, 800);
    assert_eq!(counts.unsent, 0);
    assert!(counts.dropped >= 50, "{counts:?}");
    assert_eq!(counts.published + counts.dropped, counts.produced);
    let metrics = live.send(sensor_actors::live::RenderMetrics).await.unwrap();
    for (outcome, n) in [
        ("produced", 800),
        ("published", counts.published),
        ("dropped", counts.dropped),
    ] {
        let line = format!(
            "sensor_actors_output_messages_total{{output=\"mqtt\",stream=\"readings\",outcome=\"{outcome}\"}} {n}"
        );
        assert!(metrics.lines().any(|l| l == line), "no {line} in\n{metrics}");
    }
    // Everything published arrives (QoS 1 may repeat a message sent again after the loss).
    let w = watcher.messages.clone();
    let published = counts.published as usize;
    let start = Instant::now();
    while pairs(&w.lock().unwrap()).into_iter().collect::<BTreeSet<_>>().len() < published {
        if start.elapsed() > PATIENCE {
            let got: BTreeSet<(String, u64)> = pairs(&watcher.received()).into_iter().collect();
            let rounds: BTreeMap<u64, usize> = got.iter().fold(BTreeMap::new(), |mut m, (_, r)| {
                *m.entry(*r).or_default() += 1;
                m
            });
            panic!(
                "{} of {published} published readings arrived, by round {rounds:?}; {stats:?}",
                got.len()
            );
        }
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
    let unique: BTreeSet<(String, u64)> = pairs(&watcher.received()).into_iter().collect();
    assert_eq!(unique.len(), published);
    let events: Vec<&str> = stats.journal.iter().map(|e| e.event).collect();
    assert_eq!(events.first(), Some(&"connected"));
    assert!(events.contains(&"disconnected"), "{events:?}");
    assert!(events.contains(&"connection_failed"), "{events:?}");
    assert!(events.contains(&"reconnect_scheduled"), "{events:?}");
    assert_eq!(
        events.iter().filter(|e| **e == "connected").count() as u64,
        stats.connections
    );
    assert!(stats.connections >= 2);
    assert_eq!(events.last(), Some(&"closed"));
    // The run's journal has the connection's failures and recoveries of the run (its
    // reconnection may come after the run's summary), in the run's words, with `output`.
    let text = std::fs::read_to_string(dir.path().join("events.jsonl")).unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let journaled: Vec<(&str, &str)> = lines
        .iter()
        .filter(|e| e.get("output").is_some())
        .map(|e| (e["event"].as_str().unwrap(), e["cause"].as_str().unwrap_or_default()))
        .collect();
    assert!(lines
        .iter()
        .filter(|e| e.get("output").is_some())
        .all(|e| e["output"] == "mqtt" && e.get("sensor").is_none() && e.get("group").is_none()));
    let lost = format!("127.0.0.1:{port}: ");
    assert!(
        journaled
            .iter()
            .any(|(e, cause)| *e == "failed" && cause.starts_with(&lost)),
        "{journaled:?}"
    );
    let kinds: BTreeSet<&str> = journaled.iter().map(|(e, _)| *e).collect();
    assert!(
        kinds.is_subset(&BTreeSet::from([
            "started",
            "failed",
            "restart_scheduled",
            "restarted",
            "stopped"
        ])),
        "{kinds:?}"
    );
    // Counted in the summary as every journal event is.
    let failed = lines.iter().filter(|e| e["event"] == "failed").count() as u64;
    assert_eq!(summary.events.get("failed").copied().unwrap_or(0), failed);
}

/// Devices publish to `plant/<id>/temperature`. A collector with the `mqtt` driver (fixed client
/// id, persistent session) discovers the three devices as they appear and reads them; it stops.
/// While it is down each device publishes one more value at QoS 1. The collector starts again
/// with the same configuration: the broker hands its session's queued messages over, the devices
/// are discovered again from them, and each is read with exactly the value published while the
/// collector was down; the driver's counts (`received`, `superseded`) account for every value.
#[actix_rt::test]
async fn a_restarted_collector_gets_what_was_published_while_it_was_down() {
    let broker = Mosquitto::start().await;
    let port = broker.port;
    let text = format!(
        "[collection]\ninterval = \"50ms\"\n\
         [[sensors]]\ndriver = \"mqtt\"\nbrokers = [\"127.0.0.1:{port}\"]\ntopic = \"plant/{{id}}/temperature\"\n\
         client_id = \"plant-collector\"\nmax_age = \"1h\"\ndiscovered = {{ kind = \"temperature\" }}\n"
    );
    let devices = ["boiler-1", "boiler-2", "pump-7"];
    // First run: until every device has been read once.
    let (seen, shutdown) = readings_until(devices.len());
    let collector = Collector::new().subscribe_with(seen.clone().start().recipient::<Readings>(), Delivery::lossless());
    let config = collector.parse(&text, "plant.toml").unwrap();
    let control = collector.control();
    let first = actix_rt::spawn(collector.run(config, shutdown));
    // The devices publish until the collector has read each (it subscribes when it starts).
    let start = Instant::now();
    loop {
        let values: Vec<(String, String)> = devices
            .iter()
            .enumerate()
            .map(|(i, d)| (format!("plant/{d}/temperature"), format!("{}", 20 + i)))
            .collect();
        publish(port, "devices", &values).await;
        if first.is_finished() {
            break;
        }
        assert!(start.elapsed() < PATIENCE, "the first run never read every device");
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    let summary = first.await.unwrap().unwrap();
    drop(control);
    let ids: BTreeSet<String> = summary.sensors.iter().map(|s| s.id).collect();
    assert_eq!(ids, devices.iter().map(|d| d.to_string()).collect());
    assert!(summary.sensors.iter().all(|s| s.kind == "temperature"));
    // Each device was added once, through the run's Control.
    assert_eq!(summary.events.get("added"), Some(&3));
    // Down: one value per device at QoS 1, kept by the broker for the collector's session.
    let down: Vec<(String, String)> = devices
        .iter()
        .enumerate()
        .map(|(i, d)| (format!("plant/{d}/temperature"), format!("{}.5", 100 + i)))
        .collect();
    publish(port, "devices", &down).await;
    // Second run: the same configuration and client id.
    let (seen, shutdown) = readings_until(devices.len());
    let recorder = seen.clone().start();
    let collector = Collector::new().subscribe_with(recorder.recipient::<Readings>(), Delivery::lossless());
    let config = collector.parse(&text, "plant.toml").unwrap();
    let summary = collector.run(config, shutdown).await.unwrap();
    let read: BTreeMap<String, Vec<f64>> = seen.values();
    let expected: BTreeMap<String, Vec<f64>> = devices
        .iter()
        .enumerate()
        .map(|(i, d)| (d.to_string(), vec![100.5 + i as f64]))
        .collect();
    assert_eq!(read, expected);
    // Every value that arrived was read or superseded (by the one published while down, if
    // the first run's last publications came after it left), the one that announced each
    // device included.
    let mqtt = &summary.drivers["mqtt"];
    assert_eq!(summary.reads.ok, 3);
    assert_eq!(mqtt["received"], summary.reads.ok + mqtt["superseded"], "{mqtt:?}");
}

/// Records readings per sensor; the shutdown it hands out completes once `sensors` sensors have
/// a reading.
#[derive(Clone)]
struct Recorder {
    values: Arc<Mutex<BTreeMap<String, Vec<f64>>>>,
    sensors: usize,
    done: Arc<Mutex<Option<tokio::sync::oneshot::Sender<()>>>>,
}

impl Recorder {
    fn values(&self) -> BTreeMap<String, Vec<f64>> {
        self.values.lock().unwrap().clone()
    }
}

fn readings_until(sensors: usize) -> (Recorder, impl std::future::Future<Output = ()>) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let recorder = Recorder {
        values: Arc::default(),
        sensors,
        done: Arc::new(Mutex::new(Some(tx))),
    };
    (recorder, async move {
        let _ = rx.await;
    })
}

impl actix::Actor for Recorder {
    type Context = actix::Context<Self>;
}

impl actix::Handler<Readings> for Recorder {
    type Result = ();

    fn handle(&mut self, readings: Readings, _ctx: &mut actix::Context<Self>) {
        let mut values = self.values.lock().unwrap();
        for r in readings.iter() {
            values.entry(r.sensor().to_string()).or_default().push(r.reading.value);
        }
        if values.len() >= self.sensors {
            if let Some(tx) = self.done.lock().unwrap().take() {
                let _ = tx.send(());
            }
        }
    }
}

/// One configuration of 40 sensors, run twice into one broker as shards 1/2 and 2/2 (their
/// client ids apart), and once whole: the shards' sensors are disjoint, their union is the
/// configuration, and the readings the subscriber receives from the two shards are the same
/// (sensor, round) pairs as those of the whole run, none twice.
#[actix_rt::test]
async fn two_shards_publish_what_one_collector_does_no_sensor_twice() {
    let broker = Mosquitto::start().await;
    let port = broker.port;
    let watcher = Subscriber::start(&[port], "watcher-3", true, &["shards/#", "whole/#", "sensor-actors/#"]).await;
    let run = |prefix: &'static str, id: String, shard: Option<Shard>| {
        let text = simulated(
            40,
            5,
            "20ms",
            &format!(
                "brokers = [\"127.0.0.1:{port}\"]\nclient_id = \"{id}\"\n[outputs.mqtt.topics]\nreadings = \"{prefix}/{{id}}/reading\"\n"
            ),
        );
        async move {
            let mut collector = Collector::new();
            if let Some(s) = shard {
                collector = collector.shard(s);
            }
            let config = collector.parse(&text, "shards.toml").unwrap();
            let (summary, stats, _) = run_with_output(collector, config, std::future::pending()).await;
            assert_eq!(stats.readings().published, summary.reads.ok);
            summary
        }
    };
    let (one, two) = futures::join!(
        run("shards", "collector-1-of-2".into(), Shard::new(1, 2)),
        run("shards", "collector-2-of-2".into(), Shard::new(2, 2))
    );
    let whole = run("whole", "collector".into(), None).await;
    for id in ["collector-1-of-2", "collector-2-of-2", "collector"] {
        watcher
            .wait_status(&format!("sensor-actors/{id}/status"), "offline")
            .await;
    }
    watcher.wait_count("shards/", "/reading", 200).await;
    watcher.wait_count("whole/", "/reading", 200).await;
    let ids = |s: &Summary| s.sensors.iter().map(|x| x.id.clone()).collect::<BTreeSet<String>>();
    assert!(ids(&one).is_disjoint(&ids(&two)));
    assert!(!ids(&one).is_empty() && !ids(&two).is_empty());
    let union: BTreeSet<String> = ids(&one).union(&ids(&two)).cloned().collect();
    assert_eq!(union, ids(&whole));
    assert_eq!(union.len(), 40);
    let sharded = pairs(&watcher.on("shards/", "/reading"));
    let alone = pairs(&watcher.on("whole/", "/reading"));
    assert_eq!(sharded.len(), 200);
    let sharded_set: BTreeSet<(String, u64)> = sharded.iter().cloned().collect();
    assert_eq!(sharded_set.len(), 200, "a reading arrived twice");
    assert_eq!(sharded_set, alone.into_iter().collect::<BTreeSet<_>>());
}

/// A three-node NATS cluster with JetStream and an MQTT listener on every node. The MQTT
/// streams are created with three replicas (`stream_replicas: 3`): left to the default, they may
/// be created with fewer while the cluster forms, and then lose their quorum with one node. A
/// QoS 1 message out for delivery when a node dies is delivered again after `ack_wait`: 2 s, not
/// the default 30 s, the whole of the tests' patience.
struct NatsCluster {
    nodes: Vec<Process>,
    mqtt_ports: Vec<u16>,
    _dir: tempfile::TempDir,
}

impl NatsCluster {
    async fn start() -> NatsCluster {
        let program = program("nats-server", "NATS_SERVER", "nats-server");
        let dir = tempfile::tempdir().unwrap();
        let client: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let cluster: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let mqtt: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let mut nodes = Vec::new();
        for i in 0..3 {
            let routes: Vec<String> = (0..3)
                .filter(|&j| j != i)
                .map(|j| format!("\"nats-route://127.0.0.1:{}\"", cluster[j]))
                .collect();
            let store = dir.path().join(format!("n{i}"));
            let conf = dir.path().join(format!("n{i}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "server_name: n{i}\nlisten: 127.0.0.1:{}\n\
                     jetstream {{ store_dir: \"{}\" }}\n\
                     mqtt {{ listen: 127.0.0.1:{}, stream_replicas: 3, ack_wait: \"2s\" }}\n\
                     cluster {{ name: sensors, listen: 127.0.0.1:{}, routes: [{}] }}\n",
                    client[i],
                    store.display(),
                    mqtt[i],
                    cluster[i],
                    routes.join(", ")
                ),
            )
            .unwrap();
            nodes.push(Process::spawn(
                &format!("nats n{i}"),
                &program,
                &["-c", conf.to_str().unwrap()],
                &dir.path().join(format!("n{i}.log")),
            ));
        }
        for &port in &mqtt {
            wait_for_port(port).await;
        }
        NatsCluster {
            nodes,
            mqtt_ports: mqtt,
            _dir: dir,
        }
    }

    /// Waits until an MQTT client can connect to every node and get a QoS 1 message through
    /// (JetStream has elected its leaders and the MQTT streams exist).
    async fn wait_ready(&self) {
        for (i, &port) in self.mqtt_ports.iter().enumerate() {
            let start = Instant::now();
            loop {
                assert!(
                    start.elapsed() < PATIENCE * 2,
                    "NATS node n{i} never accepted MQTT at QoS 1"
                );
                let probe = tokio::time::timeout(Duration::from_secs(5), async {
                    let sub = Subscriber::start(&[port], &format!("probe-{i}"), true, &["probe"]).await;
                    publish(port, &format!("probe-pub-{i}"), &[("probe".into(), "1".into())]).await;
                    let m = sub.messages.clone();
                    wait_until("the probe", || !m.lock().unwrap().is_empty()).await;
                })
                .await;
                if probe.is_ok() {
                    break;
                }
            }
        }
    }
}

/// Two collectors publish into a three-node NATS cluster through its MQTT listeners, the first
/// connected to node 1 and the second to node 2 (each with the list of all three nodes). Node 1
/// is killed mid-run: the first collector fails over to the next node of its list, and the
/// accounting holds: for each collector produced = published (its buffer is big enough), and a
/// subscriber on node 3 receives every published reading of both, each (collector's sensor,
/// round) at least once and no other.
#[actix_rt::test]
async fn collectors_fail_over_across_a_nats_cluster() {
    let mut cluster = NatsCluster::start().await;
    cluster.wait_ready().await;
    let p = cluster.mqtt_ports.clone();
    let watcher = Subscriber::start(&[p[2]], "watcher-nats", true, &["a/+/reading", "b/+/reading"]).await;
    let collector = |prefix: &'static str, order: [u16; 3]| {
        let brokers: Vec<String> = order.iter().map(|p| format!("\"127.0.0.1:{p}\"")).collect();
        let text = simulated(
            20,
            60,
            "25ms",
            &format!(
                "brokers = [{}]\nclient_id = \"{prefix}\"\nbackoff_min = \"20ms\"\nbackoff_max = \"200ms\"\nflush_timeout = \"30s\"\n\
                 [outputs.mqtt.topics]\nreadings = \"{prefix}/{{id}}/reading\"\nrounds = \"\"\nevents = \"\"\nanomalies = \"\"\nsummary = \"\"\n",
                brokers.join(", ")
            ),
        );
        let collector = Collector::new();
        let config = collector.parse(&text, "nats.toml").unwrap();
        let output = MqttOutput::new(config.outputs.mqtt.clone().unwrap()).start();
        let collector = MqttOutput::attach(&output, collector);
        (output, actix_rt::spawn(collector.run(config, std::future::pending())))
    };
    let (out_a, run_a) = collector("a", [p[0], p[1], p[2]]);
    let (out_b, run_b) = collector("b", [p[1], p[2], p[0]]);
    // Mid-run (both have published some), node 1 dies.
    let w = watcher.messages.clone();
    wait_until("readings of both collectors", || {
        let m = w.lock().unwrap();
        m.iter().filter(|r| r.topic.starts_with("a/")).count() >= 100
            && m.iter().filter(|r| r.topic.starts_with("b/")).count() >= 100
    })
    .await;
    cluster.nodes[0].kill();
    let (sa, sb) = (run_a.await.unwrap().unwrap(), run_b.await.unwrap().unwrap());
    let (a, b) = (out_a.send(Finish).await.unwrap(), out_b.send(Finish).await.unwrap());
    for (name, summary, stats) in [("a", &sa, &a), ("b", &sb, &b)] {
        let c = stats.readings();
        assert_eq!(c.produced, summary.reads.ok, "{name}");
        assert_eq!(summary.reads.ok, 1200, "{name}");
        assert_eq!(
            (c.published, c.dropped, c.unsent),
            (c.produced, 0, 0),
            "{name}: {c:?} {:?}",
            stats.journal
        );
    }
    // The first collector lost node 1 and went on on another node of its list (node 2, or
    // node 3 if node 2 was still electing its JetStream leaders when it tried).
    let node1 = format!("127.0.0.1:{}", p[0]);
    let lost = a.journal.iter().position(|e| e.event == "disconnected");
    assert_eq!(
        lost.map(|i| a.journal[i].broker.as_deref()),
        Some(Some(node1.as_str())),
        "{:?}",
        a.journal
    );
    assert!(
        a.journal[lost.unwrap()..]
            .iter()
            .any(|e| e.event == "connected" && e.broker.as_deref() != Some(&node1)),
        "{:?}",
        a.journal
    );
    let w = watcher.messages.clone();
    wait_until("every reading of both collectors at node 3", || {
        pairs_by_prefix(&w.lock().unwrap()).len() >= 2400
    })
    .await;
    let got = pairs_by_prefix(&watcher.received());
    assert_eq!(got.len(), 2400);
    let expected: BTreeSet<(String, String, u64)> = ["a", "b"]
        .iter()
        .flat_map(|p| {
            (1..=20).flat_map(move |i| (1..=60).map(move |r| (p.to_string(), format!("temperature-{i:02}"), r)))
        })
        .collect();
    assert_eq!(got, expected);
}

fn pairs_by_prefix(messages: &[Received]) -> BTreeSet<(String, String, u64)> {
    messages
        .iter()
        .map(|m| {
            let v = m.json();
            (
                m.topic.split('/').next().unwrap().to_string(),
                v["sensor"].as_str().unwrap().to_string(),
                v["round"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// `--shard` takes I/N with 1 <= I <= N; anything else is one line and exit code 2.
#[test]
fn bad_shards_are_usage_errors() {
    let exe = env!("CARGO_BIN_EXE_sensor-actors");
    for bad in ["0/2", "3/2", "2", "x/y", "1/0"] {
        let out = Command::new(exe)
            .args(["run", "--rounds", "1", "--shard", bad])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            format!("sensor-actors: command line: --shard: expected I/N with 1 <= I <= N, got \"{bad}\"\n")
        );
    }
}

/// Three sensors on fixed topics with JSON payloads (`field = "value"`): the first gets a
/// number, the second a payload without the field, the third nothing. After the values have
/// arrived, one round reads the first (its value), fails the second (a `failed` read naming the
/// topic) and finds the third `unavailable`; the next round, with nothing new, finds all three
/// without a reading (the first `unavailable`: a value is read once).
#[actix_rt::test]
async fn fixed_topics_read_the_newest_value_once() {
    let broker = Mosquitto::start().await;
    let port = broker.port;
    let entry = |id: &str| {
        format!(
            "[[sensors]]\ndriver = \"mqtt\"\nbrokers = [\"127.0.0.1:{port}\"]\ntopic = \"dev/{id}/state\"\nid = \"{id}\"\n\
             client_id = \"fixed-topics\"\nfield = \"value\"\nkind = \"pressure\"\n"
        )
    };
    let text = format!(
        "[collection]\ninterval = \"1h\"\n{}{}{}",
        entry("a"),
        entry("b"),
        entry("c")
    );
    let collector = Collector::new();
    let config = collector.parse(&text, "fixed.toml").unwrap();
    // A first run, until it has read a warm-up value of `a`: the session and its subscriptions
    // are then on the broker, which keeps what is published next for the second run.
    let (warmed, shutdown) = readings_until(1);
    let collector = collector.subscribe_with(warmed.start().recipient::<Readings>(), Delivery::lossless());
    let mut warm = config.clone();
    warm.collection.interval = Duration::from_millis(20);
    let first = actix_rt::spawn(collector.run(warm, shutdown));
    let start = Instant::now();
    while !first.is_finished() {
        assert!(start.elapsed() < PATIENCE, "the first run never read the warm-up value");
        publish(
            port,
            "devices-fixed",
            &[("dev/a/state".into(), "{\"value\": 0}".into())],
        )
        .await;
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    first.await.unwrap().unwrap();
    publish(
        port,
        "devices-fixed",
        &[
            ("dev/a/state".into(), "{\"value\": 2.5, \"unit\": \"bar\"}".into()),
            ("dev/b/state".into(), "{\"v\": 1}".into()),
        ],
    )
    .await;
    let (seen, _) = readings_until(usize::MAX);
    let mut config = Collector::new().parse(&text, "fixed.toml").unwrap();
    config.collection.rounds = Some(2);
    config.collection.interval = Duration::from_millis(300);
    let collector = Collector::new().subscribe_with(seen.clone().start().recipient::<Readings>(), Delivery::lossless());
    let summary = collector.run(config, std::future::pending()).await.unwrap();
    assert_eq!(seen.values(), BTreeMap::from([("a".to_string(), vec![2.5])]));
    assert_eq!(
        (
            summary.reads.requested,
            summary.reads.ok,
            summary.reads.failed,
            summary.reads.unavailable
        ),
        (6, 1, 1, 4)
    );
}

/// The binary: `[outputs.mqtt]` in the file and `--shard 1/2` on the command line. Its client id
/// takes `-1-of-2` (the status topic says so), it publishes the readings of its shard only, and
/// its summary table ends with the output's line of counts.
#[actix_rt::test]
async fn the_binary_publishes_its_shard_and_reports_the_counts() {
    let broker = Mosquitto::start().await;
    let port = broker.port;
    let watcher = Subscriber::start(&[port], "watcher-cli", true, &["cli/#", "sensor-actors/#"]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cli.toml");
    std::fs::write(
        &config,
        simulated(
            10,
            3,
            "10ms",
            &format!(
                "brokers = [\"127.0.0.1:{port}\"]\nclient_id = \"cli\"\n[outputs.mqtt.topics]\nreadings = \"cli/{{id}}\"\n"
            ),
        ),
    )
    .unwrap();
    let exe = env!("CARGO_BIN_EXE_sensor-actors");
    let args = [
        "run".to_string(),
        "--config".into(),
        config.display().to_string(),
        "--shard".into(),
        "1/2".into(),
    ];
    let out = actix_rt::task::spawn_blocking(move || Command::new(exe).args(args).env("RUST_LOG", "warn").output())
        .await
        .unwrap()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let ours: Vec<String> = (1..=10)
        .map(|i| format!("temperature-{i:02}"))
        .filter(|id| Shard::new(1, 2).unwrap().contains(id))
        .collect();
    let readings = 3 * ours.len();
    // Readings, events (one `started` per sensor), 3 rounds and the summary.
    let published = readings + ours.len() + 3 + 1;
    assert!(
        stdout.ends_with(&format!(
            "mqtt: {published} messages published, 0 dropped (buffer full or too large), 0 unsent at the end; 1 connection, 0 failed attempts\n"
        )),
        "{stdout}"
    );
    watcher.wait_status("sensor-actors/cli-1-of-2/status", "offline").await;
    watcher.wait_count("cli/", "", readings).await;
    let sensors: BTreeSet<String> = watcher
        .on("cli/", "")
        .iter()
        .map(|m| m.topic[4..].to_string())
        .collect();
    assert_eq!(sensors, ours.into_iter().collect());
}

/// Bad MQTT settings are one line naming the file, the field and what was expected, exit 2.
#[test]
fn bad_mqtt_settings_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[[sensors]]\ncount = 1\n[outputs.mqtt]\nbrokers = [\"ws://b:8883\"]\n",
            "outputs.mqtt.brokers[0]: expected the scheme mqtt://, tcp://, mqtts:// or ssl://, got \"ws://\"",
        ),
        (
            "[[sensors]]\ncount = 1\n[outputs.mqtt]\nbrokers = [\"b\"]\n[outputs.mqtt.topics]\nreadings = \"s/+/r\"\n",
            "outputs.mqtt.topics.readings: expected a topic to publish to, without the wildcards + and # (or NUL), got \"s/+/r\"",
        ),
        (
            "[[sensors]]\ncount = 1\n[outputs.mqtt]\nbrokers = [\"b\"]\nretries = 3\n",
            "outputs.mqtt.retries: unknown field `retries`",
        ),
        (
            "[[sensors]]\ndriver = \"mqtt\"\nbrokers = [\"b\"]\ntopic = \"plant/#\"\n",
            "sensors[0].topic: expected a topic without wildcards (write {id} for the level that names the device), got \"plant/#\"",
        ),
        (
            "[[sensors]]\ndriver = \"mqtt\"\ntopic = \"plant/a\"\nid = \"a\"\n",
            "sensors[0].brokers: expected a list of broker addresses, like brokers = [\"127.0.0.1:1883\"]",
        ),
        (
            "[[sensors]]\ndriver = \"mqtt\"\nbrokers = [\"b\"]\ntopic = \"p/a\"\nid = \"a\"\nmax_age = \"0s\"\n",
            "sensors[0].max_age: expected more than 0s",
        ),
    ];
    let exe = env!("CARGO_BIN_EXE_sensor-actors");
    // Neither the output nor the driver runs on a virtual clock.
    let file = dir.path().join("virtual.toml");
    for (text, expected) in [
        (
            "[[sensors]]\ncount = 1\n[outputs.mqtt]\nbrokers = [\"b\"]\n",
            "outputs.mqtt: expected no MQTT output with --clock virtual (a broker's time cannot be simulated)",
        ),
        (
            "[[sensors]]\ndriver = \"mqtt\"\nbrokers = [\"b\"]\ntopic = \"p/a\"\nid = \"a\"\n",
            "sensors",
        ),
    ] {
        std::fs::write(&file, text).unwrap();
        let out = Command::new(exe)
            .args([
                "run",
                "--clock",
                "virtual",
                "--rounds",
                "1",
                "--config",
                file.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{text}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with(&format!("sensor-actors: {}: {expected}", file.display())),
            "{stderr}"
        );
    }
    for (i, (text, expected)) in cases.iter().enumerate() {
        let file = dir.path().join(format!("bad{i}.toml"));
        std::fs::write(&file, text).unwrap();
        let out = Command::new(exe).arg("check").arg(&file).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{text}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with(&format!("sensor-actors: {}: {expected}", file.display())),
            "{stderr}"
        );
    }
}

/// The `[outputs.mqtt]` text of a run that publishes only the readings.
fn readings_only(brokers: &str, client_id: &str, more: &str) -> String {
    format!(
        "brokers = [{brokers}]\nclient_id = \"{client_id}\"\n{more}\
         [outputs.mqtt.topics]\nrounds = \"\"\nevents = \"\"\nanomalies = \"\"\nsummary = \"\"\n"
    )
}

/// The outcomes of `stream` in `summary.json`'s report of the MQTT output, in the order
/// produced, published, dropped, too_large, unsent, held.
fn settled(file: &Value, stream: &str) -> Vec<u64> {
    let mqtt = &file["outputs"][0];
    assert_eq!(mqtt["name"], "mqtt");
    ["produced", "published", "dropped", "too_large", "unsent", "held"]
        .iter()
        .map(|o| mqtt["streams"][stream][o].as_u64().unwrap())
        .collect()
}

fn summary_file(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap()
}

/// No broker for the whole run (nothing listens on its port) and `buffer` = 10: of the 20
/// readings the output holds the first 10 and drops the other 10. The run's end waits
/// `flush_timeout` for a broker, then the summary is made: `summary.json` counts exactly 20
/// produced, 0 published, 10 dropped, 10 held, and the failed connection attempts. `Finish`
/// then closes at once (the end waits `flush_timeout` in all): the 10 held are unsent.
#[actix_rt::test]
async fn with_no_broker_summary_json_counts_the_drops_exactly() {
    let port = free_port();
    let text = simulated(
        5,
        4,
        "10ms",
        &readings_only(
            &format!("\"127.0.0.1:{port}\""),
            "nobody-listens",
            "buffer = 10\nflush_timeout = \"300ms\"\nbackoff_min = \"20ms\"\nbackoff_max = \"50ms\"\n",
        ),
    );
    let config = Collector::new().parse(&text, "down.toml").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::new().out(dir.path()).unwrap();
    let (summary, stats, _) = run_with_output(collector, config, std::future::pending()).await;
    assert_eq!(summary.reads.ok, 20);
    let file = summary_file(dir.path());
    assert_eq!(settled(&file, "readings"), [20, 0, 10, 0, 0, 10]);
    let counts = &file["outputs"][0]["counts"];
    assert_eq!(counts["connections"], 0);
    assert!(counts["connection_failures"].as_u64().unwrap() >= 1, "{counts}");
    let c = stats.readings();
    assert_eq!((c.produced, c.published, c.dropped, c.unsent), (20, 0, 10, 10));
    assert_eq!(stats.connections, 0);
}

/// Records the readings of every round and the last round seen.
#[derive(Clone, Default)]
struct RoundBook {
    values: Arc<Mutex<Vec<(u64, f64)>>>,
    last_round: Arc<Mutex<u64>>,
}

impl RoundBook {
    fn last_round(&self) -> u64 {
        *self.last_round.lock().unwrap()
    }

    fn values(&self) -> Vec<f64> {
        self.values.lock().unwrap().iter().map(|(_, v)| *v).collect()
    }

    /// Waits until round `round` has ended.
    async fn wait_round(&self, round: u64) {
        let last = self.last_round.clone();
        wait_until(&format!("round {round}"), || *last.lock().unwrap() >= round).await;
    }
}

impl actix::Actor for RoundBook {
    type Context = actix::Context<Self>;
}

impl actix::Handler<Readings> for RoundBook {
    type Result = ();

    fn handle(&mut self, readings: Readings, _ctx: &mut actix::Context<Self>) {
        let round = readings.round();
        let mut values = self.values.lock().unwrap();
        values.extend(readings.iter().map(|r| (round, r.reading.value)));
    }
}

impl actix::Handler<sensor_actors::streams::RoundSummary> for RoundBook {
    type Result = ();

    fn handle(&mut self, round: sensor_actors::streams::RoundSummary, _ctx: &mut actix::Context<Self>) {
        *self.last_round.lock().unwrap() = round.round;
    }
}

/// A sensor of the `mqtt` driver, read every 500 ms. Once it has read a first value, a device
/// publishes k = 5 values right after a round: the next round reads the newest (5), and the
/// four it replaced before any read took them are counted `superseded` in `summary.json`'s
/// `drivers.mqtt` (and in the summary `run` returns), beside `received` (every value on the
/// sensor's topic: read or superseded).
#[actix_rt::test]
async fn values_replaced_before_a_read_are_counted_superseded() {
    let broker = Mosquitto::start().await;
    let port = broker.port;
    let text = format!(
        "[collection]\ninterval = \"500ms\"\n\
         [[sensors]]\ndriver = \"mqtt\"\nbrokers = [\"127.0.0.1:{port}\"]\ntopic = \"dev/s/value\"\nid = \"s\"\n\
         client_id = \"superseded\"\nmax_age = \"1h\"\n"
    );
    let book = RoundBook::default();
    let recorder = book.clone().start();
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::new()
        .out(dir.path())
        .unwrap()
        .subscribe_with(recorder.clone().recipient::<Readings>(), Delivery::lossless())
        .subscribe_with(
            recorder.recipient::<sensor_actors::streams::RoundSummary>(),
            Delivery::lossless(),
        );
    let config = collector.parse(&text, "superseded.toml").unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = actix_rt::spawn(collector.run(config, async move {
        let _ = stopped.await;
    }));
    // One value per round until one is read (the sensor subscribes as it starts).
    let start = Instant::now();
    while book.values().is_empty() {
        assert!(start.elapsed() < PATIENCE, "the sensor never read a value");
        let round = book.last_round();
        publish(port, "device", &[("dev/s/value".into(), "0".into())]).await;
        book.wait_round(round + 1).await;
    }
    assert_eq!(book.values(), [0.0]);
    // Right after a round, k values: all arrive before the next round, 500 ms later.
    let round = book.last_round();
    let k = 5;
    let values: Vec<(String, String)> = (1..=k).map(|v| ("dev/s/value".into(), v.to_string())).collect();
    publish(port, "device", &values).await;
    book.wait_round(round + 1).await;
    assert_eq!(book.values(), [0.0, 5.0]);
    let _ = stop.send(());
    let summary = run.await.unwrap().unwrap();
    let mqtt = &summary.drivers["mqtt"];
    assert_eq!(mqtt["superseded"], k - 1);
    assert_eq!(mqtt["received"], summary.reads.ok + mqtt["superseded"]);
    let file = summary_file(dir.path());
    assert_eq!(file["drivers"]["mqtt"]["superseded"], k - 1);
    assert_eq!(file["drivers"]["mqtt"]["received"], mqtt["received"]);
}

/// A certificate authority, the broker's certificate (for 127.0.0.1 and localhost), a
/// client's certificate, and another CA that signed neither, as PEM files in a folder the
/// broker (running as the user `mosquitto`) can read.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn make() -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
        let dir = tempfile::tempdir().unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let write = |name: &str, text: String| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        };
        let ca = |name: &str| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.distinguished_name.push(DnType::CommonName, name);
            let cert = params.self_signed(&key).unwrap();
            (cert.pem(), Issuer::new(params, key))
        };
        let (ca_pem, issuer) = ca("sensor-actors test CA");
        write("ca.pem", ca_pem);
        write("other-ca.pem", ca("another CA").0);
        let leaf = |names: Vec<String>, usage: ExtendedKeyUsagePurpose, cn: &str| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(names).unwrap();
            params.distinguished_name.push(DnType::CommonName, cn);
            params.extended_key_usages = vec![usage];
            let cert = params.signed_by(&key, &issuer).unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let (server, server_key) = leaf(
            vec!["127.0.0.1".into(), "localhost".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
            "broker",
        );
        write("server.pem", server);
        write("server.key", server_key);
        let (client, client_key) = leaf(Vec::new(), ExtendedKeyUsagePurpose::ClientAuth, "collector");
        write("client.pem", client);
        write("client.key", client_key);
        Pki { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// A mosquitto with, besides its plain listener, a TLS listener and one that also requires
    /// a client certificate; their ports.
    async fn broker(&self) -> (Mosquitto, u16, u16) {
        let (tls, mutual) = (free_port(), free_port());
        let files = format!(
            "cafile {}\ncertfile {}\nkeyfile {}\n",
            self.path("ca.pem"),
            self.path("server.pem"),
            self.path("server.key")
        );
        let broker = Mosquitto::start_with(format!(
            "listener {tls} 127.0.0.1\n{files}listener {mutual} 127.0.0.1\n{files}require_certificate true\n"
        ))
        .await;
        wait_for_port(tls).await;
        wait_for_port(mutual).await;
        (broker, tls, mutual)
    }
}

/// mosquitto with a TLS listener and a mutual-TLS one, certificates made here. The output
/// publishes over TLS (`mqtts://`, `tls_ca`): a subscriber on the plain listener receives every
/// reading, exactly once. A sensor of the `mqtt` driver reads over mutual TLS (`tls_ca`,
/// `tls_cert`, `tls_key`) the value a device publishes on the plain listener.
#[actix_rt::test]
async fn readings_arrive_over_tls() {
    let pki = Pki::make();
    let (broker, tls, mutual) = pki.broker().await;
    let port = broker.port;
    let watcher = Subscriber::start(&[port], "watcher-tls", true, &["sensors/+/reading"]).await;
    // Out over TLS.
    let text = simulated(
        10,
        3,
        "20ms",
        &readings_only(
            &format!("\"mqtts://127.0.0.1:{tls}\""),
            "over-tls",
            &format!("tls_ca = \"{}\"\n", pki.path("ca.pem")),
        ),
    );
    let config = Collector::new().parse(&text, "tls.toml").unwrap();
    let (summary, stats, _) = run_with_output(Collector::new(), config, std::future::pending()).await;
    assert_eq!(summary.reads.ok, 30);
    let c = stats.readings();
    assert_eq!((c.produced, c.published, c.dropped, c.unsent), (30, 30, 0, 0));
    assert_eq!((stats.connections, stats.connection_failures), (1, 0));
    watcher.wait_count("sensors/", "/reading", 30).await;
    let unique: BTreeSet<(String, u64)> = pairs(&watcher.on("sensors/", "/reading")).into_iter().collect();
    assert_eq!(unique.len(), 30);
    // In over mutual TLS.
    let text = format!(
        "[collection]\ninterval = \"50ms\"\n\
         [[sensors]]\ndriver = \"mqtt\"\nbrokers = [\"mqtts://127.0.0.1:{mutual}\"]\ntopic = \"dev/t/value\"\nid = \"t\"\n\
         client_id = \"in-over-tls\"\ntls_ca = \"{}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
        pki.path("ca.pem"),
        pki.path("client.pem"),
        pki.path("client.key")
    );
    let (seen, shutdown) = readings_until(1);
    let collector = Collector::new().subscribe_with(seen.clone().start().recipient::<Readings>(), Delivery::lossless());
    let config = collector.parse(&text, "tls-in.toml").unwrap();
    let run = actix_rt::spawn(collector.run(config, shutdown));
    let start = Instant::now();
    while !run.is_finished() {
        assert!(start.elapsed() < PATIENCE, "the sensor never read over TLS");
        publish(port, "device-tls", &[("dev/t/value".into(), "42.5".into())]).await;
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    run.await.unwrap().unwrap();
    let read = &seen.values()["t"];
    assert!(!read.is_empty() && read.iter().all(|v| *v == 42.5), "{read:?}");
}

/// The output trusts another CA than the one that signed the broker's certificate: every
/// connection attempt fails the TLS handshake, and nothing panics. Each failure is counted
/// (`connection_failures`, in `summary.json` too) and journaled: `connection_failed` naming the
/// certificate in the output's journal, `failed` with `"output": "mqtt"` in `events.jsonl`. The
/// readings are held up to `buffer` and the rest dropped, all counted.
#[actix_rt::test]
async fn a_wrong_ca_is_a_counted_connection_failure() {
    let pki = Pki::make();
    let (_broker, tls, _) = pki.broker().await;
    let text = simulated(
        5,
        4,
        "20ms",
        &readings_only(
            &format!("\"mqtts://127.0.0.1:{tls}\""),
            "wrong-ca",
            &format!(
                "tls_ca = \"{}\"\nbuffer = 10\nflush_timeout = \"300ms\"\nbackoff_min = \"20ms\"\nbackoff_max = \"50ms\"\n",
                pki.path("other-ca.pem")
            ),
        ),
    );
    let config = Collector::new().parse(&text, "wrong-ca.toml").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::new().out(dir.path()).unwrap();
    let (summary, stats, _) = run_with_output(collector, config, std::future::pending()).await;
    assert_eq!(summary.reads.ok, 20);
    assert_eq!(stats.connections, 0);
    assert!(stats.connection_failures >= 1);
    let failed: Vec<&str> = stats
        .journal
        .iter()
        .filter(|e| e.event == "connection_failed")
        .map(|e| e.cause.as_deref().unwrap())
        .collect();
    assert_eq!(failed.len() as u64, stats.connection_failures);
    assert!(failed.iter().all(|c| c.contains("certificate")), "{failed:?}");
    let file = summary_file(dir.path());
    assert_eq!(settled(&file, "readings"), [20, 0, 10, 0, 0, 10]);
    assert!(file["outputs"][0]["counts"]["connection_failures"].as_u64().unwrap() >= 1);
    let events = std::fs::read_to_string(dir.path().join("events.jsonl")).unwrap();
    let journaled: Vec<Value> = events
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["output"] == "mqtt" && e["event"] == "failed")
        .collect();
    assert!(!journaled.is_empty());
    let prefix = format!("mqtts://127.0.0.1:{tls}: ");
    assert!(
        journaled.iter().all(|e| {
            let cause = e["cause"].as_str().unwrap();
            cause.starts_with(&prefix) && cause.contains("certificate")
        }),
        "{journaled:?}"
    );
}

/// Bad TLS settings are one line naming the file, the field and what was expected, exit 2, for
/// `check` and `run` alike: an mqtts:// broker without `tls_ca`, a CA file that is not there or
/// holds no certificate, a certificate without its key.
#[test]
fn bad_tls_settings_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    let missing = dir.path().join("missing.pem");
    let output = |more: &str| format!("[[sensors]]\ncount = 1\n[outputs.mqtt]\nbrokers = [\"mqtts://b\"]\n{more}");
    let driver = |more: &str| {
        format!("[[sensors]]\ndriver = \"mqtt\"\nbrokers = [\"mqtts://b:8883\"]\ntopic = \"p/a\"\nid = \"a\"\n{more}")
    };
    let cases = [
        (
            output(""),
            "outputs.mqtt.tls_ca: expected the CA certificates (a PEM file) for the mqtts:// brokers, like tls_ca = \"ca.pem\" (the system's: \"/etc/ssl/certs/ca-certificates.crt\")".to_string(),
        ),
        (
            output("tls_ca = \"missing.pem\"\n"),
            format!(
                "outputs.mqtt.tls_ca: cannot read {}: No such file or directory (os error 2)",
                missing.display()
            ),
        ),
        (
            driver("tls_ca = \"junk.pem\"\n"),
            format!(
                "sensors[0].tls_ca: expected PEM certificates (\"-----BEGIN CERTIFICATE-----\") in {}, found none",
                junk.display()
            ),
        ),
        (
            driver("tls_ca = \"junk.pem\"\ntls_key = \"k.pem\"\n"),
            "sensors[0].tls_cert: expected the client's certificate (a PEM file) with tls_key".to_string(),
        ),
    ];
    let exe = env!("CARGO_BIN_EXE_sensor-actors");
    for (i, (text, expected)) in cases.iter().enumerate() {
        let file = dir.path().join(format!("tls{i}.toml"));
        std::fs::write(&file, text).unwrap();
        for args in [vec!["check"], vec!["run", "--rounds", "1", "--config"]] {
            let out = Command::new(exe).args(&args).arg(&file).output().unwrap();
            assert_eq!(out.status.code(), Some(2), "{args:?} {text}");
            let stderr = String::from_utf8(out.stderr).unwrap();
            assert_eq!(
                stderr,
                format!("sensor-actors: {}: {expected}\n", file.display()),
                "{args:?}"
            );
        }
    }
}
