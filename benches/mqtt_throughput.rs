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
//! own mosquitto (Debian's package; `$MOSQUITTO` names another) on a free loopback port. Per QoS
//! and sensor count, three runs of zero-latency simulated sensors: the run alone without the
//! output (`run_s`: what the collector costs), the run with the output and rounds back to back
//! (`seconds`: from the start to the last acknowledgement, and readings/s), and the run with the
//! output at one round per second (latency from a reading's timestamp to the subscriber, ms:
//! one round's burst drained before the next); then the floor: seconds and messages/s.

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
    println!("qos  sensors  readings  run_s  seconds  readings/s  p50_ms  p99_ms  max_ms   | floor: seconds  msgs/s  p50_ms  p99_ms");
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

/// One run of `sensors` zero-latency sensors for `rounds` rounds at `interval`, with the output
/// at `qos` when `qos` is given: seconds from the start to the last acknowledgement, readings
/// published, and the latencies (µs, sorted) the subscriber saw.
async fn run(port: u16, qos: Option<u8>, sensors: usize, rounds: u64, interval: &str) -> (f64, u64, Vec<u64>, u64) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut text = format!(
        "[collection]\ninterval = \"{interval}\"\nrounds = {rounds}\nseed = 1\n\
         [[sensors]]\ncount = {sensors}\nlatency = [\"0ms\", \"0ms\"]\nerror_rate = 0.0\n"
    );
    if let Some(qos) = qos {
        let id = format!("bench-{qos}-{sensors}-{interval}");
        subscriber(port, &format!("{id}-sub"), seen.clone()).await;
        text += &format!(
            "[outputs.mqtt]\nbrokers = [\"127.0.0.1:{port}\"]\nclient_id = \"{id}\"\nqos = {qos}\nbuffer = 10000000\n\
             [outputs.mqtt.topics]\nreadings = \"bench/{{id}}/reading\"\nanomalies = \"\"\nevents = \"\"\nrounds = \"\"\nsummary = \"\"\n"
        );
    }
    let collector = Collector::new();
    let config = collector.parse(&text, "bench.toml").unwrap();
    let start = Instant::now();
    let Some(settings) = config.outputs.mqtt.clone() else {
        collector.run(config, std::future::pending()).await.unwrap();
        return (start.elapsed().as_secs_f64(), 0, Vec::new(), 0);
    };
    let output = MqttOutput::new(settings).start();
    let collector = MqttOutput::attach(&output, collector);
    let summary = collector.run(config, std::future::pending()).await.unwrap();
    let stats = output.send(Finish).await.unwrap();
    let seconds = start.elapsed().as_secs_f64();
    let readings = stats.readings().published;
    assert_eq!(readings, summary.reads.ok);
    let waited = Instant::now();
    while seen.lock().unwrap().count < readings && waited.elapsed() < Duration::from_secs(60) {
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
    let mut s = seen.lock().unwrap();
    let mut lat = std::mem::take(&mut s.latencies_us);
    lat.sort_unstable();
    (seconds, readings, lat, s.count)
}

async fn measure(port: u16, qos: u8, sensors: usize, rounds: u64) -> String {
    let (run_s, _, _, _) = run(port, None, sensors, rounds, "0s").await;
    let (seconds, readings, _, received) = run(port, Some(qos), sensors, rounds, "0s").await;
    // One round a second up to 10,000 sensors; above, one every 5 s (a round of 100,000 takes
    // longer than a second to publish).
    let interval = if sensors > 10_000 { "5s" } else { "1s" };
    let (_, paced, lat, paced_received) = run(port, Some(qos), sensors, rounds, interval).await;
    // The floor: as many payloads of the same shape to as many topics, from a bare client at
    // the same QoS, each stamped when it is made, to the same subscriber.
    let floor_seen = Arc::new(Mutex::new(Seen::default()));
    subscriber(port, &format!("floor-sub-{qos}-{sensors}"), floor_seen.clone()).await;
    let floor = floor(port, qos, sensors, rounds).await;
    let total = sensors as u64 * rounds;
    let waited = Instant::now();
    while floor_seen.lock().unwrap().count < total && waited.elapsed() < Duration::from_secs(60) {
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
    let mut floor_lat = std::mem::take(&mut floor_seen.lock().unwrap().latencies_us);
    floor_lat.sort_unstable();
    let missing = (readings - received) + (paced - paced_received);
    format!(
        "{qos:>3}  {sensors:>7}  {readings:>8}  {run_s:>5.2}  {seconds:>7.2}  {:>10.0}  {:>6.1}  {:>6.1}  {:>6.1}   | {:>6.2}  {:>9.0}  {:>6.1}  {:>6.1}{}",
        readings as f64 / seconds,
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        percentile(&lat, 1.0),
        floor,
        total as f64 / floor,
        percentile(&floor_lat, 0.5),
        percentile(&floor_lat, 0.99),
        if missing == 0 {
            String::new()
        } else {
            format!("  (the subscriber missed {missing})")
        }
    )
}

/// Seconds to publish `sensors x rounds` messages and have them acknowledged (QoS 1) or written
/// (QoS 0) by a bare rumqttc client, to `bench/floor-<i>`, each stamped when it is made.
async fn floor(port: u16, qos: u8, sensors: usize, rounds: u64) -> f64 {
    let mut options = MqttOptions::new(format!("floor-{qos}-{sensors}"), "127.0.0.1", port);
    options.set_inflight(1000);
    let (client, mut eventloop) = AsyncClient::new(options, 1000);
    let total = sensors as u64 * rounds;
    let q = if qos == 0 { QoS::AtMostOnce } else { QoS::AtLeastOnce };
    let topics: Vec<String> = (1..=sensors).map(|i| format!("bench/floor-{i:06}/reading")).collect();
    let start = Instant::now();
    let feeder = actix_rt::spawn(async move {
        for round in 1..=rounds {
            for (i, t) in topics.iter().enumerate() {
                let payload = serde_json::json!({
                    "round": round, "sensor": format!("temperature-{i:06}"), "kind": "temperature",
                    "value": 24.318_345_345_3, "unit": "C",
                    "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    "latency_ms": 0.0
                })
                .to_string();
                client.publish(t.clone(), q, false, payload).await.unwrap();
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
