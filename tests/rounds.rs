//! Collection rounds: how long a round lasts, deadlines and late replies, and the round schedule.
//! Every test runs on tokio's paused clock, so latencies are virtual and exact.

mod common;

use std::time::Duration;

use std::sync::{Arc, Mutex};

use actix::prelude::*;
use common::{config, ms, on_time, read_jsonl, readings, run_to_end, Scripted, Step};
use sensor_actors::driver::ReadError;
use sensor_actors::streams::{Delivery, Readings, RoundSummary};
use sensor_actors::Collector;
use tokio::time::Instant;

/// Fixed latency of each sensor in the round tests, in milliseconds.
const LATENCIES_MS: [u64; 5] = [120, 480, 250, 90, 300];

fn fixed_latencies() -> Scripted {
    Scripted::new(|i, round| Step::ok(ms(LATENCIES_MS[i]), round as f64))
}

/// Five sensors of 120, 480, 250, 90 and 300 ms read in one round settle in 480 ms, the slowest
/// latency, not the 1240 ms sum; every sensor is `ok` with its own latency (as the readings
/// stream shows them) and the round's wall time is the largest of them.
#[actix_rt::test]
async fn round_lasts_as_long_as_the_slowest_sensor() {
    tokio::time::pause();
    let script = fixed_latencies();
    let mut config = config(5, "rounds = 1\nread_timeout = \"2s\"\nseed = 1", "");
    script.install(&mut config);
    let (recorder, seen) = Latencies::start();
    let collector = Collector::new()
        .subscribe_with(recorder.clone().recipient::<Readings>(), Delivery::lossless())
        .subscribe_with(recorder.recipient::<RoundSummary>(), Delivery::lossless());
    let summary = collector.run(config, std::future::pending()).await.unwrap();
    assert_eq!(summary.reads.ok, 5);
    let (latencies, walls) = seen.lock().unwrap().clone();
    assert_eq!(latencies.len(), LATENCIES_MS.len());
    for (latency, expected) in latencies.iter().zip(LATENCIES_MS) {
        assert!(on_time(*latency, ms(expected)), "{latency:?} for {expected} ms");
    }
    assert_eq!(walls, [*latencies.iter().max().unwrap()]);
    assert!(on_time(walls[0], ms(480)), "{walls:?}");
}

/// The latency of every reading, in configuration order, and every round's wall time.
type Seen = Arc<Mutex<(Vec<Duration>, Vec<Duration>)>>;

/// Records them.
struct Latencies(Seen);

impl Latencies {
    fn start() -> (Addr<Latencies>, Seen) {
        let seen = Arc::new(Mutex::new((Vec::new(), Vec::new())));
        (Latencies(seen.clone()).start(), seen)
    }
}

impl Actor for Latencies {
    type Context = Context<Self>;
}

impl Handler<Readings> for Latencies {
    type Result = ();
    fn handle(&mut self, round: Readings, _: &mut Context<Self>) {
        self.0.lock().unwrap().0.extend(round.iter().map(|r| r.reading.latency));
    }
}

impl Handler<RoundSummary> for Latencies {
    type Result = ();
    fn handle(&mut self, round: RoundSummary, _: &mut Context<Self>) {
        self.0.lock().unwrap().1.push(round.wall);
    }
}

/// The same five sensors over 4 rounds of a full run: every round takes as long as the 480 ms
/// sensor, so the summary's `round_ms.max` is the largest read latency (480 ms, up to the timer's
/// 1 ms tick), far below the 1240 ms sum, and nothing is skipped.
#[actix_rt::test]
async fn summary_round_max_is_the_slowest_sensor() {
    tokio::time::pause();
    let script = fixed_latencies();
    let mut config = config(5, "rounds = 4\ninterval = \"1s\"\nread_timeout = \"2s\"\nseed = 1", "");
    script.install(&mut config);
    let summary = run_to_end(config, None).await;
    assert_eq!(summary.rounds, 4);
    assert_eq!(summary.skipped_rounds, 0);
    assert_eq!(summary.reads.ok, 20);
    assert_eq!(summary.round_ms.max, summary.read_latency_ms.max);
    assert!(
        on_time(Duration::from_secs_f64(summary.round_ms.max / 1000.0), ms(480)),
        "{summary:?}"
    );
}

/// Three sensors, interval 1 s, read timeout 500 ms. In round 1 sensor 2 takes 2.005 s and would
/// answer 999; from round 2 on it answers in 10 ms. Round 1 counts it `timed_out`; its late reply
/// arrives while round 3 is in flight and is dropped: no reading of 999 anywhere, round 3 gets the
/// fresh value, and the sensor is read normally in rounds 2 to 4.
#[actix_rt::test]
async fn slow_sensor_times_out_and_its_late_reply_is_ignored() {
    tokio::time::pause();
    let script = Scripted::new(|i, round| {
        if i == 2 && round == 1 {
            Step::ok(ms(2005), 999.0)
        } else {
            Step::ok(ms(10), round as f64 + i as f64 / 10.0)
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(
        3,
        "rounds = 4\ninterval = \"1s\"\nread_timeout = \"500ms\"\nseed = 1",
        "",
    );
    script.install(&mut config);
    let t0 = Instant::now();
    let summary = run_to_end(config, Some(dir.path())).await;
    assert_eq!(summary.reads.requested, 12);
    assert_eq!(summary.reads.timed_out, 1);
    assert_eq!(summary.reads.ok, 11);
    assert_eq!(summary.reads.failed + summary.reads.unavailable, 0);
    assert_eq!(summary.restarts, 0);
    // Rounds start on the 1 s grid; round 3 (2 s to 2.01 s) is in flight when the late reply lands.
    let starts = script.start_offsets(2, t0);
    assert_eq!(starts.iter().map(|(r, _)| *r).collect::<Vec<_>>(), [1, 2, 3, 4]);
    for (round, at) in &starts {
        assert!(on_time(*at, ms(1000 * (round - 1))), "round {round} started at {at:?}");
    }
    assert!(starts[2].1 < ms(2005) && ms(2005) < starts[2].1 + ms(10));
    let lines = readings(dir.path());
    assert_eq!(lines.len() as u64, summary.reads.ok);
    let slow: Vec<(u64, f64)> = lines
        .iter()
        .filter(|(_, s, _)| s == "temperature-3")
        .map(|(r, _, v)| (*r, *v))
        .collect();
    assert_eq!(slow, [(2, 2.2), (3, 3.2), (4, 4.2)]);
    assert!(lines.iter().all(|(_, _, v)| *v != 999.0));
    let sensor = &summary.sensors.get(2).unwrap();
    assert_eq!((sensor.count, sensor.min, sensor.max), (3, Some(2.2), Some(4.2)));
}

/// Interval 1 s, one sensor taking 2.5 s (read timeout 3 s), `duration = 10s`: rounds start at
/// 0, 3, 6 and 9 s, the ticks at 1, 2, 4, 5, 7 and 8 s are skipped (6), never run late in a burst.
#[actix_rt::test]
async fn overrunning_rounds_skip_ticks_instead_of_queueing() {
    tokio::time::pause();
    let script = Scripted::new(|_, round| Step::ok(ms(2500), round as f64));
    let mut config = config(
        1,
        "duration = \"10s\"\ninterval = \"1s\"\nread_timeout = \"3s\"\nseed = 1",
        "",
    );
    script.install(&mut config);
    let t0 = Instant::now();
    let summary = run_to_end(config, None).await;
    let starts = script.start_offsets(0, t0);
    assert_eq!(starts.iter().map(|(r, _)| *r).collect::<Vec<_>>(), [1, 2, 3, 4]);
    for ((round, at), expected) in starts.iter().zip([0, 3, 6, 9]) {
        assert!(
            on_time(*at, Duration::from_secs(expected)),
            "round {round} started at {at:?}"
        );
    }
    assert_eq!(summary.rounds, 4);
    assert_eq!(summary.skipped_rounds, 6);
    assert_eq!(summary.reads.ok, 4);
    assert_eq!(summary.reads.timed_out, 0);
}

/// `interval = 0s`: each round starts the moment the previous one ends. Two sensors of 100 and
/// 40 ms over 5 rounds: reads start every 100 ms (plus the timer's tick for the sleep itself,
/// no timer wait between rounds), both sensors at the same instants, and nothing is skipped.
#[actix_rt::test]
async fn zero_interval_runs_rounds_back_to_back() {
    tokio::time::pause();
    let script = Scripted::new(|i, round| Step::ok(ms(if i == 0 { 100 } else { 40 }), round as f64));
    let mut config = config(2, "rounds = 5\ninterval = \"0s\"\nseed = 1", "");
    script.install(&mut config);
    let t0 = Instant::now();
    let summary = run_to_end(config, None).await;
    let starts = script.start_offsets(0, t0);
    assert_eq!(starts.iter().map(|(r, _)| *r).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    assert_eq!(starts[0].1, Duration::ZERO);
    for pair in starts.windows(2) {
        assert!(on_time(pair[1].1 - pair[0].1, ms(100)), "{starts:?}");
    }
    assert_eq!(script.start_offsets(1, t0), starts);
    assert!(on_time(t0.elapsed() - starts[4].1, ms(100)));
    assert_eq!(summary.rounds, 5);
    assert_eq!(summary.skipped_rounds, 0);
    assert_eq!(summary.reads.ok, 10);
}

/// A sensor that answers `offline` is `unavailable`, not `failed`, and the journal has exactly
/// one `started` event per sensor and nothing else when nothing fails fatally.
#[actix_rt::test]
async fn offline_answers_are_unavailable() {
    tokio::time::pause();
    let script = Scripted::new(|i, round| {
        if i == 1 {
            Step::err(ms(5), ReadError::Offline)
        } else {
            Step::ok(ms(5), round as f64)
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(2, "rounds = 3\ninterval = \"0s\"\nseed = 1", "");
    script.install(&mut config);
    let summary = run_to_end(config, Some(dir.path())).await;
    assert_eq!(
        (summary.reads.ok, summary.reads.unavailable, summary.reads.failed),
        (3, 3, 0)
    );
    let events: Vec<(String, String)> = read_jsonl(&dir.path().join("events.jsonl"))
        .iter()
        .map(|e| {
            (
                e["sensor"].as_str().unwrap().into(),
                e["event"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        events,
        [
            ("temperature-1".to_string(), "started".to_string()),
            ("temperature-2".to_string(), "started".to_string())
        ]
    );
}

/// `max_in_flight = 2` over six sensors of 100 ms (the last one 300 ms) with a 250 ms deadline:
/// reads go out two at a time as earlier ones settle (at 0, 100 and 200 ms), and each read's
/// deadline runs from its own send, so the fifth read (sent at 200 ms, done at 300 ms) is `ok`
/// although the round is past 250 ms, and the sixth times out at 450 ms, when the round ends.
#[actix_rt::test]
async fn max_in_flight_caps_concurrent_reads_with_per_read_deadlines() {
    tokio::time::pause();
    let script = Scripted::new(|i, round| Step::ok(ms(if i == 5 { 300 } else { 100 }), round as f64));
    let mut config = config(
        6,
        "rounds = 1\ninterval = \"1s\"\nread_timeout = \"250ms\"\nmax_in_flight = 2\nseed = 1",
        "",
    );
    script.install(&mut config);
    let t0 = Instant::now();
    let summary = run_to_end(config, None).await;
    let starts: Vec<Duration> = (0..6).map(|i| script.start_offsets(i, t0)[0].1).collect();
    for (i, expected) in [0, 0, 100, 100, 200, 200].into_iter().enumerate() {
        // Each wave waits for the previous one's answers, which the paused clock may deliver up
        // to a timer tick late, and the lateness adds up over the waves.
        let tolerance = ms(expected / 100 + 1);
        assert!(
            starts[i] >= ms(expected) && starts[i] <= ms(expected) + tolerance,
            "sensor {i} started at {:?}, expected {expected} ms",
            starts[i]
        );
    }
    assert_eq!((summary.reads.ok, summary.reads.timed_out), (5, 1));
    let wall = Duration::from_secs_f64(summary.round_ms.max / 1000.0);
    assert!(wall >= ms(450) && wall <= ms(453), "round took {wall:?}");
}

/// 2,500 sensors in one shard go out in three fan-out slices (the group yields to its sensors
/// between slices of 1,024): over 3 rounds every sensor is read exactly once per round, in member
/// order, every read starts at its round's start (yielding takes no time), and the one slow
/// sensor, in the last slice, times out alone, once per round.
#[actix_rt::test]
async fn a_round_larger_than_a_fan_out_slice_reads_every_sensor_once() {
    tokio::time::pause();
    const SENSORS: usize = 2500;
    const SLOW: usize = 2400;
    let script = Scripted::new(|i, round| Step::ok(ms(if i == SLOW { 900 } else { 10 }), round as f64));
    // One arbiter, so one shard holds them all (and the paused clock drives every read).
    let mut config = config(
        SENSORS,
        "rounds = 3\ninterval = \"1s\"\nread_timeout = \"500ms\"\nseed = 1",
        "[runtime]\narbiters = 1\n",
    );
    script.install(&mut config);
    let t0 = Instant::now();
    let summary = run_to_end(config, None).await;
    assert_eq!(summary.reads.requested, 3 * SENSORS as u64);
    assert_eq!(
        (summary.reads.ok, summary.reads.timed_out),
        (3 * (SENSORS as u64 - 1), 3)
    );
    let starts = script.starts.lock().unwrap().clone();
    assert_eq!(starts.len(), 3 * SENSORS);
    for (k, start) in starts.iter().enumerate() {
        let round = k / SENSORS + 1;
        let first = starts[(round - 1) * SENSORS].at;
        assert_eq!((start.round, start.index), (round as u64, k % SENSORS), "read {k}");
        assert_eq!(start.at, first, "read {k}");
        assert!(on_time(first - t0, ms(1000 * (round as u64 - 1))), "round {round}");
    }
    for (i, sensor) in summary.sensors.iter().enumerate() {
        let expected = if i == SLOW { 0 } else { 3 };
        assert_eq!(sensor.count, expected, "sensor {i}");
    }
}

/// On the wall clock, a reading's timestamp is its own read's end: the read's start plus its
/// latency. The simulated sensors answer ahead and their group keeps the answers until due;
/// the clock converts instants from an anchor it reads again every second, and an instant
/// converted after a later one must not take the later one's time (before a fix, most of a
/// round shared one timestamp once the anchor was read again during the round's fan-out). This
/// test runs on the real clock, the one users run on (about 1.5 s): the paused clock with the
/// wall clock's anchors would map virtual instants to real times. The reads of a round start
/// within its fan-out, so a round's timestamps minus latencies lie within a few milliseconds;
/// 50 ms leaves room for a busy machine, while the fault put them up to 200 ms apart.
#[actix_rt::test]
async fn wall_clock_timestamps_are_each_reads_own_end() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::new()
        .clock(sensor_actors::Clock::Wall)
        .out(dir.path())
        .unwrap();
    let rounds = 6u64;
    let config = collector
        .parse(
            &format!(
                "[collection]\ninterval = \"0s\"\nread_timeout = \"2s\"\nrounds = {rounds}\nseed = 5\n\n\
                 [[sensors]]\nkind = \"temperature\"\ncount = 300\nlatency = [\"100ms\", \"300ms\"]\nerror_rate = 0.0\n"
            ),
            "test.toml",
        )
        .unwrap();
    let summary = collector.run(config, std::future::pending()).await.unwrap();
    assert_eq!(summary.reads.ok, 300 * rounds);
    let readings = read_jsonl(&dir.path().join("readings.jsonl"));
    for round in 1..=rounds {
        let mut latencies = Vec::new();
        let starts: Vec<f64> = readings
            .iter()
            .filter(|r| r["round"] == round)
            .map(|r| {
                let time = chrono::DateTime::parse_from_rfc3339(r["timestamp"].as_str().unwrap()).unwrap();
                let latency = r["latency_ms"].as_f64().unwrap();
                latencies.push(latency);
                time.timestamp_millis() as f64 - latency
            })
            .collect();
        assert_eq!(starts.len(), 300);
        let first = starts.iter().copied().fold(f64::INFINITY, f64::min);
        let last = starts.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        assert!(last - first <= 50.0, "round {round}: reads started {first}..{last} ms");
        // Latencies over the range: readings sharing a timestamp would show.
        let spread =
            latencies.iter().copied().fold(0.0, f64::max) - latencies.iter().copied().fold(f64::INFINITY, f64::min);
        assert!(spread > 150.0, "round {round}: latencies within {spread} ms");
    }
}
