//! The live view (`run --http ADDR`): a real server on an ephemeral loopback port, scraped and
//! queried after a seeded run on the virtual clock (tokio's clock paused during the run,
//! resumed for the HTTP requests: a paused clock would fire the client's timeouts at once).
//! Every figure is compared with the run's own summary, exactly.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::{Arc, Mutex};

use actix::{Actor, Addr};
use chrono::{TimeZone, Utc};
use sensor_actors::config::HttpConfig;
use sensor_actors::live::{Follow, LiveServer, LiveView, STREAM_QUEUE};
use sensor_actors::streams::{Delivery, Readings};
use sensor_actors::{Clock, Collector, Summary};

/// Sensors failing in every way, a nested group of each kind, anomalies on a tight range.
const CHAOS: &str = r#"
[collection]
interval = "200ms"
read_timeout = "150ms"
rounds = 40
seed = 11

[supervision]
max_restarts = 6
within = "10s"
backoff_min = "50ms"
backoff_max = "2s"
hung_after = 2

[[groups]]
name = "line-a"
strategy = "one_for_all"
max_restarts = 3

[[groups]]
name = "line-b"
strategy = "rest_for_one"
max_restarts = 20
parent = "line-a"

[[sensors]]
count = 30
latency = ["20ms", "160ms"]
error_rate = 0.05
fatal_rate = 0.03
panic_rate = 0.01
hang_rate = 0.01
range = [20.0, 26.0]

[[sensors]]
name = "a"
count = 5
group = "line-a"
latency = ["5ms", "50ms"]
fatal_rate = 0.04

[[sensors]]
name = "b"
count = 5
group = "line-b"
latency = ["5ms", "50ms"]
panic_rate = 0.02
"#;

/// A small run for the event stream.
const SMALL: &str = r#"
[collection]
interval = "100ms"
read_timeout = "50ms"
rounds = 8
seed = 3

[[sensors]]
count = 4
latency = ["5ms", "20ms"]
faults = [ { round = 3, fault = "panic", sensor = "temperature-2" } ]
"#;

/// A run of `text` on the virtual clock with a live view on `127.0.0.1:0` (per-sensor series
/// for the first `series` sensors, when some); returns the summary, the server and the actor.
/// `before` runs once the server listens, before the run (and the paused clock) starts.
async fn run_live<F, Fut>(text: &str, series: usize, before: F) -> (Summary, LiveServer, Addr<LiveView>)
where
    F: FnOnce(std::net::SocketAddr, Addr<LiveView>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    run_live_with(text, series, before, |c| c).await
}

/// [`run_live`], with `extend` adding to the collector (a subscriber of the test's own).
async fn run_live_with<F, Fut>(
    text: &str,
    series: usize,
    before: F,
    extend: impl FnOnce(Collector) -> Collector,
) -> (Summary, LiveServer, Addr<LiveView>)
where
    F: FnOnce(std::net::SocketAddr, Addr<LiveView>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let config = Collector::new().parse(text, "live.toml").unwrap();
    let mut http = HttpConfig::new("127.0.0.1:0".parse().unwrap());
    http.sensor_series = series > 0;
    http.max_sensor_series = series.max(1);
    let live = LiveView::new(&config, &http).start();
    let server = LiveServer::bind(http.address, live.clone()).unwrap();
    assert_ne!(server.local_addr().port(), 0);
    before(server.local_addr(), live.clone()).await;
    tokio::time::pause();
    let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let collector = LiveView::attach(&live, extend(Collector::new().clock(Clock::Virtual { start })));
    let summary = collector.run(config, std::future::pending()).await.unwrap();
    tokio::time::resume();
    (summary, server, live)
}

async fn get(address: std::net::SocketAddr, path: &str) -> (u16, String, String) {
    let mut response = awc::Client::default()
        .get(format!("http://{address}{path}"))
        .send()
        .await
        .unwrap();
    let body = response.body().limit(64 << 20).await.unwrap();
    let kind = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (
        response.status().as_u16(),
        kind,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

async fn get_json(address: std::net::SocketAddr, path: &str) -> serde_json::Value {
    let (status, _, body) = get(address, path).await;
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// Waits until the live view has handled the run's summary (the last message of a run).
async fn until_finished(address: std::net::SocketAddr) {
    while get_json(address, "/api/summary").await["finished"] != true {
        tokio::task::yield_now().await;
    }
}

/// A scrape's samples by name and sorted labels.
type Samples = BTreeMap<(String, Vec<(String, String)>), f64>;

/// Every sample of a scrape, parsed by a Prometheus text-format parser.
fn scrape(text: &str) -> Samples {
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).unwrap();
    scrape
        .samples
        .into_iter()
        .map(|s| {
            let mut labels: Vec<(String, String)> =
                s.labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            labels.sort();
            match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => ((s.metric, labels), v),
                // A histogram's observations: its `+Inf` bucket, as `<name>_count`.
                prometheus_parse::Value::Histogram(buckets) => {
                    let inf = buckets
                        .iter()
                        .find(|b| b.less_than.is_infinite())
                        .map_or(0.0, |b| b.count);
                    ((format!("{}_count", s.metric), labels), inf)
                }
                other => panic!("{}: unexpected {other:?}", s.metric),
            }
        })
        .collect()
}

fn sample(samples: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    let labels: Vec<(String, String)> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    *samples
        .get(&(name.to_string(), labels.clone()))
        .unwrap_or_else(|| panic!("no sample {name} {labels:?}"))
}

/// After a run with failures, restarts, give-ups, escalations and anomalies, every figure of
/// `/metrics` (parsed by a Prometheus text parser) equals the run's summary: reads by outcome,
/// rounds, restarts, events by kind, anomalies by detector, sensors by state, readings by
/// group and per sensor (capped), latency and round histograms' counts, subscriber drops.
#[actix_rt::test]
async fn metrics_equal_the_runs_summary() {
    let (summary, server, _live) = run_live(CHAOS, 3, |_, _| async {}).await;
    let address = server.local_addr();
    until_finished(address).await;
    let (status, kind, text) = get(address, "/metrics").await;
    assert_eq!(status, 200);
    assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
    assert!(text.ends_with("# EOF\n"));
    let m = scrape(&text);
    let r = &summary.reads;
    for (outcome, n) in [
        ("ok", r.ok),
        ("failed", r.failed),
        ("timed_out", r.timed_out),
        ("unavailable", r.unavailable),
    ] {
        assert_eq!(
            sample(&m, "sensor_actors_reads_total", &[("outcome", outcome)]),
            n as f64,
            "{outcome}"
        );
    }
    assert!(r.failed > 0 && r.unavailable > 0, "the scenario fails: {r:?}");
    assert_eq!(sample(&m, "sensor_actors_rounds_total", &[]), summary.rounds as f64);
    assert_eq!(
        sample(&m, "sensor_actors_skipped_rounds_total", &[]),
        summary.skipped_rounds as f64
    );
    assert!(summary.restarts > 0);
    assert_eq!(sample(&m, "sensor_actors_restarts_total", &[]), summary.restarts as f64);
    for (event, &n) in &summary.events {
        assert_eq!(
            sample(&m, "sensor_actors_supervision_events_total", &[("event", event)]),
            n as f64,
            "{event}"
        );
    }
    assert!(summary.events.contains_key("gave_up"), "{:?}", summary.events);
    let found: u64 = summary.anomalies.values().sum();
    assert!(found > 0, "the range makes anomalies");
    for (detector, &n) in summary.anomalies.iter().filter(|(_, &n)| n > 0) {
        assert_eq!(
            sample(&m, "sensor_actors_anomalies_total", &[("detector", detector)]),
            n as f64,
            "{detector}"
        );
    }
    let mut states: BTreeMap<String, u64> = BTreeMap::new();
    for s in &summary.sensors {
        *states.entry(s.state).or_default() += 1;
    }
    assert!(states.len() > 1, "{states:?}");
    for state in sensor_actors::live::SENSOR_STATES {
        let n = states.get(state).copied().unwrap_or(0);
        assert_eq!(
            sample(&m, "sensor_actors_sensors", &[("state", state)]),
            n as f64,
            "{state}"
        );
    }
    for group in ["line-a", "line-b"] {
        let n: u64 = summary
            .sensors
            .iter()
            .filter(|s| s.group.as_deref() == Some(group))
            .map(|s| s.count)
            .sum();
        assert_eq!(
            sample(&m, "sensor_actors_group_readings_total", &[("group", group)]),
            n as f64,
            "{group}"
        );
    }
    assert_eq!(
        sample(&m, "sensor_actors_round_duration_seconds_count", &[]),
        summary.rounds as f64
    );
    assert_eq!(sample(&m, "sensor_actors_read_latency_seconds_count", &[]), r.ok as f64);
    // Per-sensor series: the first three sensors only.
    for s in summary.sensors.iter().take(3) {
        assert_eq!(
            sample(&m, "sensor_actors_sensor_readings_total", &[("sensor", &s.id)]),
            s.count as f64
        );
        assert_eq!(
            sample(&m, "sensor_actors_sensor_restarts_total", &[("sensor", &s.id)]),
            f64::from(s.restarts)
        );
        assert_eq!(
            sample(&m, "sensor_actors_sensor_value", &[("sensor", &s.id)]),
            s.last.unwrap()
        );
    }
    let series = m
        .keys()
        .filter(|(name, _)| name == "sensor_actors_sensor_readings_total")
        .count();
    assert_eq!(series, 3);
    assert_eq!(
        sample(&m, "sensor_actors_sensor_series_omitted", &[]),
        (summary.sensors.len() - 3) as f64
    );
    let missed: u64 = summary.subscribers.iter().map(|s| s.missed).sum();
    assert_eq!(
        sample(&m, "sensor_actors_subscriber_dropped_messages_total", &[]),
        missed as f64
    );
    assert_eq!(missed, 0, "{:?}", summary.subscribers);
    assert!(sample(&m, "process_cpu_seconds_total", &[]) > 0.0);
    assert!(sample(&m, "process_resident_memory_bytes", &[]) > 0.0);
    server.stop().await;
}

/// `/api/tree` gives every sensor's state and restarts as `summary.json` has them, the
/// configured groups nested by `parent` with their own state and restarts, and the ungrouped
/// sensors; `/api/groups/{name}` pages a group's members; an unknown group or sensor is a 404.
#[actix_rt::test]
async fn the_tree_matches_the_summary() {
    let (summary, server, _live) = run_live(CHAOS, 0, |_, _| async {}).await;
    let address = server.local_addr();
    until_finished(address).await;
    let tree = get_json(address, "/api/tree").await;
    let mut seen = BTreeMap::new();
    fn walk(node: &serde_json::Value, seen: &mut BTreeMap<String, (String, u64)>) {
        for s in node["members"].as_array().unwrap() {
            let (id, state) = (s["id"].as_str().unwrap(), s["state"].as_str().unwrap());
            seen.insert(id.to_string(), (state.to_string(), s["restarts"].as_u64().unwrap()));
        }
        for child in node["children"].as_array().unwrap() {
            walk(child, seen);
        }
    }
    let groups = tree["groups"].as_array().unwrap();
    assert_eq!(
        groups.iter().map(|g| g["name"].as_str().unwrap()).collect::<Vec<_>>(),
        ["line-a", "ungrouped"]
    );
    assert_eq!(groups[0]["children"][0]["name"], "line-b");
    assert_eq!(groups[0]["children"][0]["parent"], "line-a");
    for g in groups {
        walk(g, &mut seen);
    }
    assert_eq!(seen.len(), summary.sensors.len());
    for s in &summary.sensors {
        assert_eq!(seen[&s.id], (s.state.clone(), u64::from(s.restarts)), "{}", s.id);
    }
    for g in summary.groups.iter().filter(|g| !g.shard) {
        let node = if g.name == "line-a" {
            &groups[0]
        } else {
            &groups[0]["children"][0]
        };
        assert_eq!(
            (node["name"].as_str().unwrap(), node["state"].as_str().unwrap()),
            (g.name.as_str(), g.state.as_str())
        );
        assert_eq!(node["restarts"], u64::from(g.restarts), "{}", g.name);
    }
    let shards: Vec<&str> = tree["shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(shards.len(), summary.groups.iter().filter(|g| g.shard).count());
    // A page of a group.
    let page = get_json(address, "/api/groups/ungrouped?offset=28&limit=5").await;
    let ids: Vec<&str> = page["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["temperature-29", "temperature-30"]);
    assert_eq!(page["sensors"], 30);
    let line_a = get_json(address, "/api/groups/line-a").await;
    assert_eq!(line_a["members"].as_array().unwrap().len(), 5);
    assert_eq!(line_a["strategy"], "one_for_all");
    assert_eq!(get(address, "/api/groups/nope").await.0, 404);
    assert_eq!(get(address, "/api/sensors/nope").await.0, 404);
    server.stop().await;
}

/// Every reading of one sensor, by round, as the readings stream has them.
struct Recorder {
    id: &'static str,
    readings: Arc<Mutex<BTreeMap<u64, (f64, String)>>>,
}

impl Actor for Recorder {
    type Context = actix::Context<Self>;
}

impl actix::Handler<Readings> for Recorder {
    type Result = ();

    fn handle(&mut self, readings: Readings, _ctx: &mut Self::Context) {
        let mut kept = self.readings.lock().unwrap();
        for r in readings.iter().filter(|r| &*r.sensor() == self.id) {
            let timestamp = r.reading.timestamp.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            kept.insert(readings.round(), (r.reading.value, timestamp));
        }
    }
}

/// `/api/sensors/{id}`: the sensor's statistics equal the summary's; a watched sensor's history
/// holds its readings as polled once a round (each with its round, value and time as read);
/// `/api/events?since=N` lists the journal after N from a bounded ring; `/api/summary` is the
/// run's accounting.
#[actix_rt::test]
async fn a_sensor_the_events_and_the_summary() {
    let read = Arc::new(Mutex::new(BTreeMap::new()));
    let recorder = Recorder {
        id: "temperature-05",
        readings: read.clone(),
    }
    .start();
    // Asked for before the run: watched from its first reading.
    let (summary, server, _live) = run_live_with(
        CHAOS,
        0,
        |address, _| async move {
            let v = get_json(address, "/api/sensors/temperature-05").await;
            assert_eq!(v["history"], serde_json::json!([]));
            assert_eq!(v["count"], 0);
        },
        |c| c.subscribe_with(recorder.recipient(), Delivery::lossless()),
    )
    .await;
    let address = server.local_addr();
    until_finished(address).await;
    let watched = get_json(address, "/api/sensors/temperature-05").await;
    let s = summary.sensors.iter().find(|s| s.id == "temperature-05").unwrap();
    let read = read.lock().unwrap().clone();
    assert_eq!(read.len() as u64, s.count);
    assert!(s.count > 20, "{}", s.count);
    let history = watched["history"].as_array().unwrap();
    // Polled once a round: on this run's single thread each poll is answered before the next
    // round but one at the latest, so at most every other reading is missed.
    assert!(history.len() * 2 >= read.len(), "{} of {}", history.len(), read.len());
    let rounds: Vec<u64> = history.iter().map(|r| r["round"].as_u64().unwrap()).collect();
    assert!(rounds.windows(2).all(|w| w[0] < w[1]), "{rounds:?}");
    for r in history {
        let (value, timestamp) = &read[&r["round"].as_u64().unwrap()];
        assert_eq!(r["value"].as_f64(), Some(*value), "{r}");
        assert_eq!(r["timestamp"].as_str(), Some(timestamp.as_str()), "{r}");
    }
    let last = watched["last_readings"].as_array().unwrap();
    assert_eq!(last[..], history[history.len() - last.len()..]);
    assert_eq!(last.len(), sensor_actors::live::LAST_READINGS);
    for s in summary.sensors.iter().filter(|s| s.count > 0).take(10) {
        let v = get_json(address, &format!("/api/sensors/{}", s.id)).await;
        assert_eq!(v["count"], s.count, "{}", s.id);
        assert_eq!(v["min"].as_f64(), s.min);
        assert_eq!(v["max"].as_f64(), s.max);
        assert_eq!(v["mean"].as_f64(), s.mean);
        assert_eq!(v["stddev"].as_f64(), s.stddev);
        assert_eq!(v["ewma"].as_f64(), s.ewma);
        assert_eq!(v["anomalies"], s.anomalies);
        assert_eq!(v["state"], s.state.as_str());
        // Asked for after the run: nothing polled, so no readings of its own.
        if s.id != "temperature-05" {
            assert_eq!(v["history"], serde_json::json!([]), "{}", s.id);
            assert_eq!(v["last_readings"], serde_json::json!([]), "{}", s.id);
        }
        let recent = v["recent_anomalies"].as_array().unwrap();
        assert_eq!(
            recent.len() as u64,
            s.anomalies.min(sensor_actors::live::RECENT_ANOMALIES as u64)
        );
    }
    let total: u64 = summary.events.values().sum();
    let all = get_json(address, "/api/events?since=0").await;
    assert_eq!(all["last"], total);
    let events = all["events"].as_array().unwrap();
    assert_eq!(events.len() as u64, total.min(sensor_actors::live::EVENT_RING as u64));
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1));
    let tail = get_json(address, &format!("/api/events?since={}", total - 3)).await;
    assert_eq!(tail["events"].as_array().unwrap().len(), 3);
    let (status, kind, page) = get(address, "/").await;
    assert_eq!((status, kind.as_str()), (200, "text/html; charset=utf-8"));
    assert_eq!(page, sensor_actors::live::DASHBOARD);
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "the dashboard fetches nothing from elsewhere"
    );
    let run = get_json(address, "/api/summary").await;
    assert_eq!(run["rounds"], summary.rounds);
    assert_eq!(run["reads"], serde_json::to_value(summary.reads).unwrap());
    assert_eq!(run["restarts"], summary.restarts);
    assert_eq!(run["seed"], summary.seed);

    // The rounds kept (all of them here): in order, their reads and anomalies adding up to the
    // run's.
    let rounds = get_json(address, "/api/rounds").await;
    let rounds = rounds["rounds"].as_array().unwrap();
    assert_eq!(rounds.len() as u64, summary.rounds);
    let numbers: Vec<u64> = rounds.iter().map(|r| r["round"].as_u64().unwrap()).collect();
    assert_eq!(numbers, (1..=summary.rounds).collect::<Vec<_>>());
    for outcome in ["requested", "ok", "failed", "timed_out", "unavailable"] {
        let sum: u64 = rounds.iter().map(|r| r["reads"][outcome].as_u64().unwrap()).sum();
        assert_eq!(
            serde_json::json!(sum),
            serde_json::to_value(summary.reads).unwrap()[outcome],
            "{outcome}"
        );
    }
    let found: u64 = summary.anomalies.values().sum();
    assert!(
        found > sensor_actors::live::ANOMALY_RING as u64,
        "{found}: too few to fill the ring"
    );
    assert_eq!(
        rounds.iter().map(|r| r["anomalies"].as_u64().unwrap()).sum::<u64>(),
        found
    );
    // The anomalies kept: the newest of the ring's size, oldest first, counted in full.
    let anomalies = get_json(address, "/api/anomalies").await;
    assert_eq!(anomalies["total"], found);
    let kept = anomalies["anomalies"].as_array().unwrap();
    assert_eq!(kept.len(), sensor_actors::live::ANOMALY_RING);
    let order: Vec<u64> = kept.iter().map(|a| a["round"].as_u64().unwrap()).collect();
    assert!(order.windows(2).all(|w| w[0] <= w[1]), "{order:?}");
    assert_eq!(*order.last().unwrap(), summary.rounds);
    server.stop().await;
}

/// `/api/stream`: a client connected before the run gets every round summary in order, every
/// journal event and anomaly as they are published, then `end`, and the stream closes.
#[actix_rt::test]
async fn the_event_stream_follows_the_run() {
    let mut response = None;
    let (summary, server, _live) = run_live(SMALL, 0, |address, _| {
        let response = &mut response;
        async move {
            let r = awc::Client::default()
                .get(format!("http://{address}/api/stream"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 200);
            assert_eq!(r.headers().get("content-type").unwrap(), "text/event-stream");
            *response = Some(r);
        }
    })
    .await;
    // The whole stream, up to its end (the server closes it after `end`).
    let body = response.unwrap().body().limit(16 << 20).await.unwrap();
    let text = String::from_utf8(body.to_vec()).unwrap();
    let frames: Vec<(&str, serde_json::Value)> = text
        .split("\n\n")
        .filter(|f| !f.is_empty())
        .map(|f| {
            let (event, data) = f.split_once('\n').unwrap();
            (
                event.strip_prefix("event: ").unwrap(),
                serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap(),
            )
        })
        .collect();
    let rounds: Vec<u64> = frames
        .iter()
        .filter(|(e, _)| *e == "round")
        .map(|(_, d)| d["round"].as_u64().unwrap())
        .collect();
    assert_eq!(rounds, (1..=summary.rounds).collect::<Vec<_>>());
    let events: Vec<&str> = frames
        .iter()
        .filter(|(e, _)| *e == "supervision")
        .map(|(_, d)| d["event"].as_str().unwrap())
        .collect();
    assert_eq!(events.len() as u64, summary.events.values().sum::<u64>());
    assert!(events.contains(&"restarted"), "{events:?}");
    let anomalies = frames.iter().filter(|(e, _)| *e == "anomaly").count() as u64;
    assert_eq!(anomalies, summary.anomalies.values().sum::<u64>());
    let (last, run) = frames.last().unwrap();
    assert_eq!(*last, "end");
    assert_eq!(run["reads"], serde_json::to_value(summary.reads).unwrap());
    // After the end a new client is told the run is over.
    assert_eq!(get(server.local_addr(), "/api/stream").await.0, 410);
    server.stop().await;
}

/// A client of the event stream that does not read loses what does not fit its queue, and
/// the loss is counted exactly; the run is not held back.
#[actix_rt::test]
async fn a_lagging_stream_client_drops_and_is_counted() {
    let mut queue = None;
    let text = "[collection]\nrounds = 3\ninterval = \"100ms\"\nread_timeout = \"50ms\"\nseed = 1\n\
                [[sensors]]\ncount = 300\nlatency = [\"1ms\", \"5ms\"]\nerror_rate = 0.0\n";
    let (summary, server, _live) = run_live(text, 0, |_, live: Addr<LiveView>| {
        let queue = &mut queue;
        async move {
            *queue = live.send(Follow).await.unwrap();
        }
    })
    .await;
    let address = server.local_addr();
    until_finished(address).await;
    let frames = summary.events.values().sum::<u64>() + summary.anomalies.values().sum::<u64>() + summary.rounds + 1;
    assert!(frames > STREAM_QUEUE as u64);
    let m = scrape(&get(address, "/metrics").await.2);
    assert_eq!(
        sample(&m, "sensor_actors_live_stream_dropped_messages_total", &[]),
        (frames - STREAM_QUEUE as u64) as f64
    );
    let mut queue = queue.unwrap();
    let mut kept = 0;
    while queue.recv().await.is_some() {
        kept += 1;
    }
    assert_eq!(kept, STREAM_QUEUE);
    server.stop().await;
}

fn binary(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sensor-actors"))
        .env_remove("RUST_LOG")
        .args(args)
        .output()
        .unwrap()
}

/// `--http` on a port already taken is one line and exit code 2, before anything is
/// collected (the `--out` folder is not even created); a malformed address is refused by name.
#[test]
fn a_port_in_use_is_a_usage_error_before_the_run() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let output = binary(&[
        "run",
        "--rounds",
        "2",
        "--http",
        &address,
        "--out",
        out.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    let line = format!("sensor-actors: command line: --http: cannot listen on {address}: ");
    assert!(stderr.starts_with(&line) && stderr.lines().count() == 1, "{stderr}");
    assert!(output.stdout.is_empty());
    assert!(!out.exists());
    let output = binary(&["run", "--http", "9184"]);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "sensor-actors: command line: --http: expected an IP address and a port like \"127.0.0.1:9184\", got \"9184\"\n"
    );
}

/// `run --http 127.0.0.1:0` serves while it runs and ends normally with the summary.
#[test]
fn the_binary_serves_and_ends() {
    let output = binary(&["run", "--clock", "virtual", "--rounds", "3", "--http", "127.0.0.1:0"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("live view on http://127.0.0.1:"), "{stderr}");
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("3 rounds"));
}

/// The control endpoints, on: with the token, a sensor is stopped, restarted, added and
/// removed through the run's `Control`, each answered and journaled `requested by live view`;
/// without it (or with another) nothing changes (401); refusals say why (409, 404, 400). A
/// server without controls answers 403 and says how to turn them on.
#[actix_rt::test]
async fn the_controls_act_with_the_token_only() {
    const TOKEN: &str = "0123456789abcdef-token";
    let text = SMALL.replace("rounds = 8", "rounds = 1000000").replace(
        "faults = [ { round = 3, fault = \"panic\", sensor = \"temperature-2\" } ]",
        "",
    );
    assert!(!text.contains("faults"));
    let config = Collector::new().parse(&text, "live.toml").unwrap();
    let http = HttpConfig::new("127.0.0.1:0".parse().unwrap());
    let live = LiveView::new(&config, &http).start();
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::new().out(dir.path()).unwrap();
    let control = collector.control();
    let server = LiveServer::bind_with_controls(http.address, live.clone(), control, TOKEN.to_string()).unwrap();
    let plain = LiveServer::bind(http.address, live.clone()).unwrap();
    let (address, plain_address) = (server.local_addr(), plain.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = LiveView::attach(&live, collector).run(config, async {
        let _ = stopped.await;
    });
    let requests = async move {
        let request = |method: &str, path: &str, token: Option<&str>, body: &str| {
            let client = awc::Client::default();
            let url = format!("http://{address}{path}");
            let mut request = match method {
                "POST" => client.post(url),
                _ => client.delete(url),
            };
            if let Some(token) = token {
                request = request.insert_header(("Authorization", format!("Bearer {token}")));
            }
            let body = body.to_string();
            async move {
                let mut response = request.send_body(body).await.unwrap();
                let answer: serde_json::Value = response.json().await.unwrap();
                (response.status().as_u16(), answer)
            }
        };
        assert_eq!(get_json(address, "/api/controls").await["enabled"], true);
        assert_eq!(get_json(plain_address, "/api/controls").await["enabled"], false);
        let stop_2 = "/api/sensors/temperature-2/stop";
        let (status, _) = request("POST", stop_2, None, "").await;
        assert_eq!(status, 401);
        let (status, _) = request("POST", stop_2, Some("0123456789abcdef-tokeN"), "").await;
        assert_eq!(status, 401);
        let mut answer = awc::Client::default()
            .post(format!("http://{plain_address}{stop_2}"))
            .insert_header(("Authorization", format!("Bearer {TOKEN}")))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), 403);
        let off: serde_json::Value = answer.json().await.unwrap();
        assert_eq!(
            off["error"],
            "the controls are off: start the run with --http-control (or [http] control = true)"
        );

        let done = request("POST", stop_2, Some(TOKEN), "").await;
        assert_eq!(
            done,
            (200, serde_json::json!({ "sensor": "temperature-2", "done": "stopped" }))
        );
        let again = request("POST", stop_2, Some(TOKEN), "").await;
        assert_eq!(
            again,
            (
                409,
                serde_json::json!({ "error": "live view: id: sensor \"temperature-2\" is not running: it is stopped already" })
            )
        );
        let done = request("POST", "/api/sensors/temperature-2/restart", Some(TOKEN), "").await;
        assert_eq!(
            done,
            (
                200,
                serde_json::json!({ "sensor": "temperature-2", "done": "restarted" })
            )
        );
        let (status, added) = request(
            "POST",
            "/api/sensors",
            Some(TOKEN),
            "id = \"boiler-7\"\nlatency = [\"5ms\", \"10ms\"]",
        )
        .await;
        assert_eq!(
            (status, &added["sensors"]),
            (200, &serde_json::json!(["boiler-7"])),
            "{added}"
        );
        let (status, bad) = request("POST", "/api/sensors", Some(TOKEN), "id = \"boiler-8\"\nlatency = 5").await;
        assert_eq!(status, 400, "{bad}");
        assert!(
            bad["error"]
                .as_str()
                .unwrap()
                .starts_with("live view: sensor.latency: "),
            "{bad}"
        );
        let (status, removed) = request("DELETE", "/api/sensors/temperature-3", Some(TOKEN), "").await;
        assert_eq!(
            (status, &removed["done"]),
            (200, &serde_json::json!("removed")),
            "{removed}"
        );
        let (status, _) = request("DELETE", "/api/sensors/temperature-3", Some(TOKEN), "").await;
        assert_eq!(status, 404);
        // The live view follows the added sensor from its first reading.
        let boiler = loop {
            let (status, _, body) = get(address, "/api/sensors/boiler-7").await;
            let boiler: serde_json::Value = serde_json::from_str(&body).unwrap();
            if status == 200 && boiler["count"].as_u64() > Some(0) {
                break boiler;
            }
        };
        assert_eq!(
            (&boiler["kind"], &boiler["unit"], &boiler["state"], &boiler["policy"]),
            (
                &serde_json::json!("temperature"),
                &serde_json::json!("C"),
                &serde_json::json!("running"),
                &serde_json::Value::Null
            ),
            "{boiler}"
        );
        stop.send(()).unwrap();
    };
    let (summary, ()) = futures::join!(run, requests);
    let summary = summary.unwrap();
    until_finished(address).await;
    let run = get_json(address, "/api/summary").await;
    let counted = |state: &str| summary.sensors.iter().filter(|s| s.state == state).count() as u64;
    for state in sensor_actors::live::SENSOR_STATES
        .iter()
        .filter(|&&s| s != "not_started")
    {
        assert_eq!(run["sensors"][state], counted(state), "{state}: {run}");
    }
    assert_eq!(run["sensors"]["removed"], 1);
    let tree = get_json(address, "/api/tree").await;
    let ungrouped = tree["groups"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(ungrouped["sensors"], 5, "{ungrouped}");
    server.stop().await;
    plain.stop().await;
    // Each action journaled once, saying who asked; nothing for the refused ones.
    let events: Vec<serde_json::Value> = common::read_lines(&dir.path().join("events.jsonl"));
    let asked: Vec<(String, String)> = events
        .iter()
        .filter(|e| e["cause"] == "requested by live view")
        .map(|e| {
            (
                e["sensor"].as_str().unwrap().to_string(),
                e["event"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let pair = |s: &str, e: &str| (s.to_string(), e.to_string());
    assert_eq!(
        asked,
        [
            pair("temperature-2", "stopped"),
            pair("temperature-2", "restarted"),
            pair("boiler-7", "added"),
            pair("temperature-3", "removed")
        ]
    );
    let sensors = summary.sensors.to_vec();
    let states: Vec<(&str, &str)> = sensors.iter().map(|s| (s.id.as_str(), s.state.as_str())).collect();
    assert_eq!(
        states,
        [
            ("temperature-1", "running"),
            ("temperature-2", "running"),
            ("temperature-3", "removed"),
            ("temperature-4", "running"),
            ("boiler-7", "running")
        ]
    );
}

/// `--http-control` takes its token from `SENSOR_ACTORS_HTTP_TOKEN`: without it, or with one too
/// short, the run does not start (one line, exit code 2); without `--http` it is a usage error;
/// with a good token the run serves and ends as usual.
#[test]
fn the_controls_need_a_token_from_the_environment() {
    let run = |token: Option<&str>, args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sensor-actors"));
        command.env_remove("RUST_LOG").env_remove("SENSOR_ACTORS_HTTP_TOKEN");
        if let Some(token) = token {
            command.env("SENSOR_ACTORS_HTTP_TOKEN", token);
        }
        command
            .args(["run", "--clock", "virtual", "--rounds", "2"])
            .args(args)
            .output()
            .unwrap()
    };
    let on = ["--http", "127.0.0.1:0", "--http-control"];
    let missing = run(None, &on);
    assert_eq!(missing.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&missing.stderr),
        "sensor-actors: command line: --http-control: set SENSOR_ACTORS_HTTP_TOKEN to the token that control requests must carry (at least 16 characters)\n"
    );
    let short = run(Some("fifteen-chars-x"), &on);
    assert_eq!(short.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&short.stderr),
        "sensor-actors: command line: --http-control: expected SENSOR_ACTORS_HTTP_TOKEN to hold a token of at least 16 characters without spaces\n"
    );
    let alone = run(Some("sixteen-chars-xx"), &["--http-control"]);
    assert_eq!(alone.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&alone.stderr).contains("--http"), "{alone:?}");
    let good = run(Some("sixteen-chars-xx"), &on);
    assert_eq!(good.status.code(), Some(0), "{}", String::from_utf8_lossy(&good.stderr));
    assert!(String::from_utf8_lossy(&good.stdout).starts_with("2 rounds"));
}
