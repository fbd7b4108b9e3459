//! Subscribers of the streams: any actor attached through `Collector::subscribe` receives each
//! round's readings, anomalies, journal and summary, and the run's summary last; delivery is
//! ordered, bounded and counted, and the built-in JSONL files (a sink like any other) hold the
//! same data.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use common::{config, ms, read_jsonl, Scripted, Step};
use sensor_actors::driver::ReadError;
use sensor_actors::streams::{Anomalies, Delivery, Journal, Readings, RoundSummary, RunSummary};
use sensor_actors::{Collector, Summary};

/// What a recorder received, message by message.
#[derive(Debug, Default)]
struct Received {
    /// `(round, sensor, value)` of every reading.
    readings: Vec<(u64, String, f64)>,
    /// The round of every `Readings` message.
    reading_rounds: Vec<u64>,
    /// `(round, sensor, detector)` of every anomaly, and the round of every message.
    anomalies: Vec<(u64, String, String)>,
    anomaly_rounds: Vec<u64>,
    /// `(sensor, event, cause)` of every journal event.
    events: Vec<(String, String, Option<String>)>,
    rounds: Vec<RoundSummary>,
    ends: Vec<Summary>,
}

/// Records every stream into a shared `Received`; with `slow`, each `Readings` message takes
/// that long to handle (virtual time); with `stop_after`, it stops when the message after that
/// many readings messages arrives, without answering it.
struct Recorder {
    received: Arc<Mutex<Received>>,
    slow: Option<Duration>,
    stop_after: Option<usize>,
}

impl Recorder {
    fn start(slow: Option<Duration>, stop_after: Option<usize>) -> (Addr<Recorder>, Arc<Mutex<Received>>) {
        let received = Arc::new(Mutex::new(Received::default()));
        let recorder = Recorder {
            received: received.clone(),
            slow,
            stop_after,
        };
        (recorder.start(), received)
    }
}

impl Actor for Recorder {
    type Context = Context<Self>;
}

impl Handler<Readings> for Recorder {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, msg: Readings, ctx: &mut Context<Self>) -> Self::Result {
        let mut received = self.received.lock().unwrap();
        if self.stop_after == Some(received.reading_rounds.len()) {
            // Stopping inside the handler: this message is never answered.
            ctx.stop();
            return Box::pin(actix::fut::ready(()));
        }
        received.reading_rounds.push(msg.round());
        for r in msg.iter() {
            received
                .readings
                .push((msg.round(), r.sensor().to_string(), r.reading.value));
        }
        let slow = self.slow;
        Box::pin(
            async move {
                if let Some(d) = slow {
                    tokio::time::sleep(d).await;
                }
            }
            .into_actor(self),
        )
    }
}

impl Handler<Anomalies> for Recorder {
    type Result = ();

    fn handle(&mut self, msg: Anomalies, _ctx: &mut Context<Self>) {
        let mut received = self.received.lock().unwrap();
        received.anomaly_rounds.push(msg.round);
        for a in msg.list.iter() {
            received
                .anomalies
                .push((a.round, a.sensor.to_string(), a.detector.to_string()));
        }
    }
}

impl Handler<Journal> for Recorder {
    type Result = ();

    fn handle(&mut self, msg: Journal, _ctx: &mut Context<Self>) {
        let mut received = self.received.lock().unwrap();
        for e in msg.iter() {
            received
                .events
                .push((e.subject().to_string(), e.event.as_str().to_string(), e.cause));
        }
    }
}

impl Handler<RoundSummary> for Recorder {
    type Result = ();

    fn handle(&mut self, msg: RoundSummary, _ctx: &mut Context<Self>) {
        self.received.lock().unwrap().rounds.push(msg);
    }
}

impl Handler<RunSummary> for Recorder {
    type Result = ();

    fn handle(&mut self, msg: RunSummary, _ctx: &mut Context<Self>) {
        self.received.lock().unwrap().ends.push((*msg.summary).clone());
    }
}

/// Four scripted sensors: sensor 1 fails fatally in round 3 (restarted 1.5 s later, so it misses round 4), sensor 2
/// reads 500.0 in round 6 (an `out_of_range` and a `spike`), the rest read a slow ramp.
fn script(i: usize, round: u64) -> Step {
    match (i, round) {
        (1, 3) => Step::err(ms(10), ReadError::Fatal("scripted".into())),
        (2, 6) => Step::ok(ms(10), 500.0),
        _ => Step::ok(ms(10), 20.0 + round as f64 * 0.1 + i as f64 * 0.01),
    }
}

const COLLECTION: &str = "interval = \"1s\"\nread_timeout = \"500ms\"\nrounds = 10\nseed = 3";
const SUPERVISION: &str = "[supervision]\nbackoff_min = \"1500ms\"\nbackoff_max = \"1500ms\"";

/// A lossless subscriber of every stream, next to the JSONL files: it receives exactly what
/// the files hold (readings in configuration order per round, anomalies, the journal in
/// order), one round summary per round in order whose counts add up to the run's, and the
/// run's summary once, last, equal to the one `run` returns; the summary counts every
/// subscriber's deliveries, and every reading reached every lossless subscriber.
#[actix_rt::test]
async fn a_lossless_subscriber_receives_what_the_files_hold() {
    tokio::time::pause();
    let scripted = Scripted::new(script);
    let mut config = config(4, COLLECTION, SUPERVISION);
    scripted.install(&mut config);
    let dir = tempfile::tempdir().unwrap();
    let (recorder, received) = Recorder::start(None, None);
    let collector = Collector::new()
        .subscribe_with(recorder.clone().recipient::<Readings>(), Delivery::lossless())
        .subscribe_with(recorder.clone().recipient::<Anomalies>(), Delivery::lossless())
        .subscribe_with(
            recorder.clone().recipient::<Journal>(),
            Delivery::lossless().named("journal-recorder"),
        )
        .subscribe_with(recorder.clone().recipient::<RoundSummary>(), Delivery::lossless())
        .subscribe_with(recorder.clone().recipient::<RunSummary>(), Delivery::lossless())
        .out(dir.path())
        .unwrap();
    let summary = collector.run(config, std::future::pending()).await.unwrap();
    let received = received.lock().unwrap();

    assert_eq!(received.readings, common::readings(dir.path()));
    assert_eq!(received.readings.len() as u64, summary.reads.ok);
    assert_eq!(received.reading_rounds, (1..=10).collect::<Vec<_>>());
    assert_eq!(received.anomaly_rounds, (1..=10).collect::<Vec<_>>());
    let lines = read_jsonl(&dir.path().join("anomalies.jsonl"));
    let from_file: Vec<(u64, String, String)> = lines
        .iter()
        .map(|l| {
            (
                l["round"].as_u64().unwrap(),
                l["sensor"].as_str().unwrap().to_string(),
                l["detector"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(received.anomalies, from_file);
    assert!(received
        .anomalies
        .contains(&(6, "temperature-3".into(), "out_of_range".into())));
    let events: Vec<(String, String, Option<String>)> = read_jsonl(&dir.path().join("events.jsonl"))
        .iter()
        .map(|l| {
            (
                l["sensor"].as_str().unwrap().to_string(),
                l["event"].as_str().unwrap().to_string(),
                l["cause"].as_str().map(str::to_string),
            )
        })
        .collect();
    assert_eq!(received.events, events);
    let restart: Vec<&str> = received
        .events
        .iter()
        .filter(|(sensor, ..)| sensor == "temperature-2")
        .map(|(_, event, _)| event.as_str())
        .collect();
    assert_eq!(restart, ["started", "failed", "restart_scheduled", "restarted"]);

    let rounds: Vec<u64> = received.rounds.iter().map(|r| r.round).collect();
    assert_eq!(rounds, (1..=10).collect::<Vec<_>>());
    let ok: u64 = received.rounds.iter().map(|r| r.reads.ok).sum();
    let requested: u64 = received.rounds.iter().map(|r| r.reads.requested).sum();
    assert_eq!((ok, requested), (summary.reads.ok, summary.reads.requested));
    assert_eq!(
        received.rounds[3].reads.unavailable, 1,
        "sensor 1 restarting in round 4"
    );

    assert_eq!(received.ends.len(), 1);
    assert_eq!(received.ends[0], summary);
    let stats = |name: &str| {
        summary
            .subscribers
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("{name} in {:?}", summary.subscribers))
            .clone()
    };
    for name in ["readings#1", "readings.jsonl"] {
        let s = stats(name);
        assert_eq!(
            (s.delivered, s.delivered_items, s.missed),
            (10, summary.reads.ok, 0),
            "{name}"
        );
    }
    let journal = stats("journal-recorder");
    assert_eq!(journal.delivered_items, received.events.len() as u64);
    assert_eq!(journal.missed, 0);
    assert_eq!(stats("rounds#1").delivered, 10);
}

/// A bounded subscriber (capacity 1) that takes 3.3 s per readings message, on a 1 s
/// schedule of 10 rounds published about 10 ms into each second: round 1 is handled from 0.01
/// to 3.31 s, round 2 waits, rounds 3 and 4 find the queue full; round 2 is handled from 3.31
/// to 6.61 s, round 5 waits, 6 and 7 are dropped; round 5 until 9.91 s, round 8 waits, 9 and
/// 10 are dropped; round 8 is delivered before the run ends. Exactly rounds 1, 2, 5 and 8
/// arrive, the rest are counted missed, received + missed readings = ok, and the collection
/// itself is not slowed (no skipped tick: the bounded subscriber does not hold the reports)
/// while a fast lossless one beside it misses nothing.
#[actix_rt::test]
async fn a_slow_bounded_subscriber_misses_what_its_queue_cannot_hold_and_counts_it() {
    tokio::time::pause();
    let scripted = Scripted::new(|i, round| Step::ok(ms(10), round as f64 + i as f64));
    let mut config = config(5, COLLECTION, "");
    scripted.install(&mut config);
    let (slow, received) = Recorder::start(Some(ms(3300)), None);
    let (fast, all) = Recorder::start(None, None);
    let collector = Collector::new()
        .subscribe_with(slow.recipient::<Readings>(), Delivery::bounded(1).named("slow"))
        .subscribe_with(fast.recipient::<Readings>(), Delivery::lossless().named("all"));
    let summary = collector.run(config, std::future::pending()).await.unwrap();

    assert_eq!(received.lock().unwrap().reading_rounds, [1, 2, 5, 8]);
    assert_eq!(all.lock().unwrap().reading_rounds, (1..=10).collect::<Vec<_>>());
    assert_eq!(summary.skipped_rounds, 0);
    assert_eq!(summary.reads.ok, 50);
    let slow = summary.subscribers.iter().find(|s| s.name == "slow").unwrap();
    assert_eq!((slow.stream.as_str(), slow.delivered, slow.missed), ("readings", 4, 6));
    assert_eq!((slow.delivered_items, slow.missed_items), (20, 30));
    assert_eq!(slow.delivered_items + slow.missed_items, summary.reads.ok);
    let all = summary.subscribers.iter().find(|s| s.name == "all").unwrap();
    assert_eq!((all.delivered_items, all.missed_items), (50, 0));
}

/// A subscriber that stops itself when its fourth readings message arrives: that message is
/// never answered and those of rounds 5 to 10 find its mailbox closed, so rounds 4 to 10 are
/// counted missed; the run goes on to its end with every
/// read accounted for, and the subscriber's received + missed readings = ok.
#[actix_rt::test]
async fn a_subscriber_that_stops_misses_the_rest_and_the_run_goes_on() {
    tokio::time::pause();
    let scripted = Scripted::new(|i, round| Step::ok(ms(10), round as f64 + i as f64));
    let mut config = config(3, COLLECTION, "");
    scripted.install(&mut config);
    let (quitter, received) = Recorder::start(None, Some(3));
    let collector = Collector::new().subscribe_with(quitter.recipient::<Readings>(), Delivery::lossless());
    let summary = collector.run(config, std::future::pending()).await.unwrap();

    assert_eq!(received.lock().unwrap().reading_rounds, [1, 2, 3]);
    assert_eq!(summary.rounds, 10);
    assert_eq!(summary.reads.ok, 30);
    let s = &summary.subscribers[0];
    assert_eq!((s.delivered, s.missed), (3, 7));
    assert_eq!((s.delivered_items, s.missed_items), (9, 21));
}

/// A lossless subscriber slower than the schedule (2.5 s per readings message, rounds every
/// second) misses nothing: it receives all 6 rounds in order. It holds the rounds back instead
/// of letting its queue grow: a round's report waits until the previous one was handled, so
/// rounds overrun their tick and the ticks they cover are skipped and counted; every round still
/// starts on a tick of the 1 s grid (never drifting), and the run ends once the subscriber has
/// caught up.
#[actix_rt::test]
async fn a_slow_lossless_subscriber_misses_nothing_and_holds_the_rounds_back() {
    tokio::time::pause();
    let scripted = Scripted::new(|i, round| Step::ok(ms(10), round as f64 + i as f64));
    let collection = "interval = \"1s\"\nread_timeout = \"500ms\"\nrounds = 6\nseed = 3";
    let mut config = config(4, collection, "");
    scripted.install(&mut config);
    let (slow, received) = Recorder::start(Some(ms(2500)), None);
    let collector = Collector::new().subscribe_with(slow.recipient::<Readings>(), Delivery::lossless().named("slow"));
    let t0 = tokio::time::Instant::now();
    let summary = collector.run(config, std::future::pending()).await.unwrap();

    assert_eq!(received.lock().unwrap().reading_rounds, (1..=6).collect::<Vec<_>>());
    let s = &summary.subscribers[0];
    assert_eq!((s.delivered, s.delivered_items, s.missed), (6, 24, 0));
    assert!(summary.skipped_rounds > 0, "{summary:?}");
    let starts = scripted.start_offsets(0, t0);
    assert_eq!(starts.len(), 6);
    for (round, at) in &starts {
        let off_grid = at.as_nanos() % 1_000_000_000;
        assert!(
            off_grid < 5_000_000,
            "round {round} started at {at:?}, off the 1 s grid"
        );
    }
    let last = starts.last().unwrap().1;
    assert_eq!(last.as_secs(), 5 + summary.skipped_rounds, "{starts:?}");
}

/// The end of a run is one final state. Sensor 1 fails fatally in the last round (3, at 2 s) and
/// its restart is due 4 s later (6.01 s); a slow lossless subscriber (2.5 s per round) makes the
/// run's end wait: the final states are taken at about 5 s and the summary is built once the
/// subscriber has caught up, at about 7.5 s. The restart must not happen in between: the
/// summary's event counts equal the journal's lines, `restarts` equals the `restarted` events
/// (none), and the sensor ends `restarting` with `restart_scheduled` as its last event.
#[actix_rt::test]
async fn the_journal_and_the_summary_agree_at_the_end_of_a_run() {
    tokio::time::pause();
    let scripted = Scripted::new(|i, round| match (i, round) {
        (1, 3) => Step::err(ms(10), ReadError::Fatal("scripted".into())),
        _ => Step::ok(ms(10), round as f64),
    });
    let collection = "interval = \"1s\"\nread_timeout = \"500ms\"\nrounds = 3\nseed = 3";
    let supervision = "[supervision]\nbackoff_min = \"4s\"\nbackoff_max = \"4s\"";
    let mut config = config(3, collection, supervision);
    scripted.install(&mut config);
    let dir = tempfile::tempdir().unwrap();
    let (slow, _) = Recorder::start(Some(ms(2500)), None);
    let collector = Collector::new()
        .subscribe_with(slow.recipient::<Readings>(), Delivery::lossless())
        .out(dir.path())
        .unwrap();
    let summary = collector.run(config, std::future::pending()).await.unwrap();

    let lines = read_jsonl(&dir.path().join("events.jsonl"));
    let count = |event: &str| lines.iter().filter(|l| l["event"] == event).count() as u64;
    for (event, n) in &summary.events {
        assert_eq!(count(event), *n, "{event}: {lines:?}");
    }
    assert_eq!(lines.len() as u64, summary.events.values().sum::<u64>());
    assert_eq!(summary.restarts, count("restarted"));
    assert_eq!(summary.restarts, 0);
    let sensor = &summary.sensors.get(1).unwrap();
    assert_eq!(sensor.state, "restarting");
    let last = lines.iter().rev().find(|l| l["sensor"] == "temperature-2").unwrap();
    assert_eq!(last["event"], "restart_scheduled");
}

/// Counts every anomaly by detector, and checks each has its detail.
struct AnomalyCounter {
    counts: Arc<Mutex<std::collections::BTreeMap<String, u64>>>,
}

impl Actor for AnomalyCounter {
    type Context = Context<Self>;
}

impl Handler<Anomalies> for AnomalyCounter {
    type Result = ();

    fn handle(&mut self, msg: Anomalies, _ctx: &mut Context<Self>) {
        let mut counts = self.counts.lock().unwrap();
        for a in msg.list.iter() {
            assert!(!a.detail.is_empty(), "{a:?}: no detail");
            *counts.entry(a.detector.to_string()).or_default() += 1;
        }
    }
}

/// Fires on every reading above 25, with a detail built whether anyone reads it or not (a
/// detector that ignores `Observation::wants_detail`).
#[derive(Default)]
struct Above25;

impl sensor_actors::analysis::Detector for Above25 {
    type Settings = ();
    fn observe(&mut self, _: &(), obs: &mut sensor_actors::analysis::Observation<'_>) -> Option<String> {
        let value = obs.value?;
        (value > 25.0).then(|| format!("{value} above 25"))
    }
}

struct Above25Factory;

impl sensor_actors::analysis::DetectorFactory for Above25Factory {
    type Detector = Above25;
    fn defaults(&self) {}
    fn settings(&self, _table: sensor_actors::analysis::SettingsTable<'_>) -> Result<(), sensor_actors::ConfigError> {
        Ok(())
    }
}

/// Without an anomaly subscriber (nor their debug log) the analysis only counts anomalies,
/// without listing them or making their details: the same seeded run counts the same anomalies
/// per detector, per sensor and per round as with a subscriber, which receives each of them,
/// with its detail. Every built-in detector fires, and a registered one too.
#[actix_rt::test]
async fn anomalies_nobody_reads_are_counted_as_those_a_subscriber_receives() {
    tokio::time::pause();
    let text = r#"
[collection]
interval = "1s"
read_timeout = "500ms"
rounds = 120
seed = 9

[[sensors]]
count = 30
latency = ["10ms", "100ms"]
base = [20.0, 30.0]
step = 0.5
error_rate = 0.05
offline_rate = 0.02
online_rate = 0.2
faults = [
  { round = 40, fault = "spike", magnitude = 200.0 },
  { round = 60, fault = "stuck", rounds = 12 },
  { round = 90, fault = "drift", rate = 30.0, rounds = 5 },
]
"#;
    let run = |subscribe: bool| async move {
        let collector = Collector::new().detector("above25", Above25Factory);
        let config = collector.parse(text, "anomalies.toml").unwrap();
        let counts = Arc::new(Mutex::new(std::collections::BTreeMap::new()));
        let rounds = Arc::new(Mutex::new(Received::default()));
        let recorder = Recorder {
            received: rounds.clone(),
            slow: None,
            stop_after: None,
        }
        .start();
        let mut collector = collector.subscribe_with(recorder.recipient::<RoundSummary>(), Delivery::lossless());
        if subscribe {
            let counter = AnomalyCounter { counts: counts.clone() }.start();
            collector = collector.subscribe_with(counter.recipient::<Anomalies>(), Delivery::lossless());
        }
        let summary = collector.run(config, std::future::pending()).await.unwrap();
        let per_round: Vec<u64> = rounds.lock().unwrap().rounds.iter().map(|r| r.anomalies).collect();
        let received = counts.lock().unwrap().clone();
        (summary, per_round, received)
    };
    let (listed, listed_rounds, received) = run(true).await;
    let (counted, counted_rounds, nothing) = run(false).await;
    for detector in ["out_of_range", "spike", "rate", "stuck", "stale", "above25"] {
        assert!(
            listed.anomalies.get(detector).copied().unwrap_or(0) > 0,
            "{detector} never fired: {:?}",
            listed.anomalies
        );
    }
    assert_eq!(received, listed.anomalies, "the subscriber received every anomaly");
    assert!(nothing.is_empty());
    assert_eq!(counted.anomalies, listed.anomalies);
    assert_eq!(counted_rounds, listed_rounds);
    assert_eq!(listed_rounds.len(), 120);
    let per_sensor = |s: &Summary| {
        s.sensors
            .iter()
            .map(|s| (s.id.clone(), s.anomalies))
            .collect::<Vec<_>>()
    };
    assert_eq!(per_sensor(&counted), per_sensor(&listed));
    assert_eq!(counted.reads, listed.reads);
}

/// Notes the order in which the journal's and the readings' messages arrive.
struct Order(Arc<Mutex<Vec<String>>>);

impl Actor for Order {
    type Context = Context<Self>;
}

impl Handler<Journal> for Order {
    type Result = ();

    fn handle(&mut self, msg: Journal, _ctx: &mut Context<Self>) {
        let started = msg.iter().filter(|e| e.event.as_str() == "started").count();
        self.0
            .lock()
            .unwrap()
            .push(format!("journal: {} events, {started} started", msg.len()));
    }
}

impl Handler<Readings> for Order {
    type Result = ();

    fn handle(&mut self, msg: Readings, _ctx: &mut Context<Self>) {
        self.0
            .lock()
            .unwrap()
            .push(format!("readings of round {}", msg.round()));
    }
}

/// The run's first start reaches the journal's subscribers as soon as it happens, before round
/// 1's readings (a large tree's `started` lines are written while round 1 is read, not after
/// it), and nothing else comes with it.
#[actix_rt::test]
async fn the_first_start_is_published_before_round_1s_readings() {
    tokio::time::pause();
    let scripted = Scripted::new(|i, round| Step::ok(ms(10), round as f64 + i as f64));
    let collection = "interval = \"1s\"\nread_timeout = \"500ms\"\nrounds = 2\nseed = 3";
    let mut config = config(3, collection, "");
    scripted.install(&mut config);
    let log = Arc::new(Mutex::new(Vec::new()));
    let order = Order(log.clone()).start();
    let summary = Collector::new()
        .subscribe_with(order.clone().recipient::<Journal>(), Delivery::lossless())
        .subscribe_with(order.recipient::<Readings>(), Delivery::lossless())
        .run(config, std::future::pending())
        .await
        .unwrap();
    assert_eq!(summary.events["started"], 3);
    let log = log.lock().unwrap().clone();
    assert_eq!(
        log,
        [
            "journal: 3 events, 3 started",
            "readings of round 1",
            "readings of round 2"
        ],
        "{log:?}"
    );
}
