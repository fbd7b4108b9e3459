//! Readings per second through the MQTT output into a local mosquitto, and the latency from a
//! reading's timestamp to a subscriber, side by side with the floor: the same payloads to the
//! same topics published by a bare `rumqttc` client in a loop (what `mosquitto_pub` does, without
//! a process per message), at the same QoS.
//!
//! ```sh
//! cargo bench --bench mqtt_throughput -- 10000,100000 3
//! ```
//!
//! Arguments: sensor counts (default 10000,100000) and rounds per run (default 3). It starts its
//! own mosquitto (Debian's package; `$MOSQUITTO` names another) on a free loopback port. Each line:
//! QoS, sensors, readings, seconds from the first round to the last acknowledgement, readings/s,
//! and latency percentiles read -> subscriber (ms); then the floor's figures.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::Actor;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use sensor_actors::sinks::{Finish, MqttOutput};
use sensor_actors::Collector;

/// Latencies (µs) and count of readings seen by the subscriber.
#[derive(Default)]
struct Seen {
    count: u64,
    latencies_us: Vec<u64>,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let counts: Vec<usize> = args
        .first()
        .map(|l| l.split(',').map(|n| n.parse().expect("a sensor count")).collect())
        .unwrap_or_else(|| vec![10_000, 100_000]);
    let rounds: u64 = args.get(1).map(|r| r.parse().expect("rounds")).unwrap_or(3);
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let conf = dir.path().join("m.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\nmax_inflight_messages 0\n"),
    )
    .unwrap();
    let program = std::env::var("MOSQUITTO").unwrap_or_else(|_| "/usr/sbin/mosquitto".into());
    let mut broker = Command::new(program)
        .args(["-c", conf.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto (apt-get install mosquitto)");
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < Duration::from_secs(10), "mosquitto did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    println!("qos  sensors  readings  seconds  readings/s  p50_ms  p99_ms  max_ms   | floor: seconds  msgs/s");
    for qos in [0u8, 1] {
        for &n in &counts {
            let system = actix_rt::System::new();
            let line = system.block_on(measure(port, qos, n, rounds));
            println!("{line}");
        }
    }
    let _ = broker.kill();
    let _ = broker.wait();
}

async fn subscriber(port: u16, id: &str, seen: Arc<Mutex<Seen>>) {
    let mut options = MqttOptions::new(id, "127.0.0.1", port);
    options.set_max_packet_size(1 << 26, 1 << 26);
    let (client, mut eventloop) = AsyncClient::new(options, 100);
    let (tx, rx) = tokio::sync::oneshot::channel();
    let mut tx = Some(tx);
    actix_rt::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    client.subscribe("bench/#", QoS::AtMostOnce).await.unwrap();
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(());
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let now = chrono::Utc::now();
                    let mut s = seen.lock().unwrap();
                    s.count += 1;
                    // Readings carry their timestamp; the floor's payloads carry their send time.
                    if let Some(t) = timestamp(&p.payload) {
                        s.latencies_us
                            .push((now - t).num_microseconds().unwrap_or(0).max(0) as u64);
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    let _ = rx.await;
}

fn timestamp(payload: &[u8]) -> Option<chrono::DateTime<chrono::Utc>> {
    let v: serde_json::Value = serde_json::from_slice(payload).ok()?;
    chrono::DateTime::parse_from_rfc3339(v["timestamp"].as_str()?)
        .ok()
        .map(|t| t.to_utc())
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

async fn measure(port: u16, qos: u8, sensors: usize, rounds: u64) -> String {
    // The collector: zero-latency simulated sensors, rounds back to back, readings only.
    let seen = Arc::new(Mutex::new(Seen::default()));
    subscriber(port, &format!("bench-sub-{qos}-{sensors}"), seen.clone()).await;
    let text = format!(
        "[collection]\ninterval = \"0s\"\nrounds = {rounds}\nseed = 1\n\
         [[sensors]]\ncount = {sensors}\nlatency = [\"0ms\", \"0ms\"]\nerror_rate = 0.0\n\
         [outputs.mqtt]\nbrokers = [\"127.0.0.1:{port}\"]\nclient_id = \"bench-{qos}-{sensors}\"\nqos = {qos}\nbuffer = 10000000\n\
         [outputs.mqtt.topics]\nreadings = \"bench/{{id}}/reading\"\nanomalies = \"\"\nevents = \"\"\nrounds = \"\"\nsummary = \"\"\n"
    );
    let collector = Collector::new();
    let config = collector.parse(&text, "bench.toml").unwrap();
    let output = MqttOutput::new(config.outputs.mqtt.clone().unwrap()).start();
    let collector = MqttOutput::attach(&output, collector);
    let start = Instant::now();
    let summary = collector.run(config, std::future::pending()).await.unwrap();
    let stats = output.send(Finish).await.unwrap();
    let seconds = start.elapsed().as_secs_f64();
    let readings = stats.readings().published;
    assert_eq!(readings, summary.reads.ok);
    let expected = readings;
    let waited = Instant::now();
    while seen.lock().unwrap().count < expected && waited.elapsed() < Duration::from_secs(60) {
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
    let mut lat = std::mem::take(&mut seen.lock().unwrap().latencies_us);
    lat.sort_unstable();
    let received = seen.lock().unwrap().count;
    // The floor: the same number of payloads of the same size to the same topics, from a bare
    // client, at the same QoS.
    let payload = serde_json::json!({
        "round": 1, "sensor": "temperature-000001", "kind": "temperature", "value": 24.318_345_345_3,
        "unit": "C", "timestamp": "2026-01-01T00:00:00.000Z", "latency_ms": 0.0
    })
    .to_string();
    let floor = floor(port, qos, sensors, rounds, &payload).await;
    format!(
        "{qos:>3}  {sensors:>7}  {readings:>8}  {seconds:>7.2}  {:>10.0}  {:>6.1}  {:>6.1}  {:>6.1}   | {:>6.2}  {:>9.0}{}",
        readings as f64 / seconds,
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        percentile(&lat, 1.0),
        floor,
        (sensors as u64 * rounds) as f64 / floor,
        if received == expected {
            String::new()
        } else {
            format!("  (subscriber got {received})")
        }
    )
}

/// Seconds to publish `sensors x rounds` messages and have them acknowledged (QoS 1) or written
/// (QoS 0) by a bare rumqttc client.
async fn floor(port: u16, qos: u8, sensors: usize, rounds: u64, payload: &str) -> f64 {
    let mut options = MqttOptions::new(format!("floor-{qos}-{sensors}"), "127.0.0.1", port);
    options.set_inflight(1000);
    let (client, mut eventloop) = AsyncClient::new(options, 1000);
    let total = sensors as u64 * rounds;
    let q = if qos == 0 { QoS::AtMostOnce } else { QoS::AtLeastOnce };
    let topics: Vec<String> = (1..=sensors)
        .map(|i| format!("floor/temperature-{i:06}/reading"))
        .collect();
    let payload = payload.as_bytes().to_vec();
    let start = Instant::now();
    let feeder = actix_rt::spawn(async move {
        for _ in 0..rounds {
            for t in &topics {
                client.publish(t.clone(), q, false, payload.clone()).await.unwrap();
            }
        }
        client
    });
    let mut done = 0u64;
    while done < total {
        match eventloop.poll().await.unwrap() {
            Event::Outgoing(rumqttc::Outgoing::Publish(_)) if qos == 0 => done += 1,
            Event::Incoming(Packet::PubAck(_)) => done += 1,
            _ => {}
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let _client = feeder.await.unwrap();
    seconds
}
