//! The virtual clock (`run --clock virtual --start TIME`, `Collector::clock`): simulated time on
//! one thread, the same files byte for byte from the same configuration and seed, timestamps
//! from the start given, and real-world drivers refused.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use std::sync::{Arc, Mutex};

use actix::{Actor, Context, Handler};
use chrono::{DateTime, TimeDelta, Utc};
use sensor_actors::driver::simulated::{Settings, Simulated, Spec};
use sensor_actors::driver::{Driver, DriverBuild, DriverContext, DriverFactory, DriverKeys, DriverSpec, ReadFuture};
use sensor_actors::streams::{Delivery, Journal};
use sensor_actors::{Clock, Collector, ConfigError, RunError};

/// Every journal event as `(event, time since start)`.
struct Times {
    start: DateTime<Utc>,
    seen: Arc<Mutex<Vec<(String, TimeDelta)>>>,
}

impl Actor for Times {
    type Context = Context<Self>;
}

impl Handler<Journal> for Times {
    type Result = ();

    fn handle(&mut self, journal: Journal, _ctx: &mut Context<Self>) {
        let mut seen = self.seen.lock().unwrap();
        for e in journal.iter() {
            seen.push((e.event.as_str().to_string(), e.timestamp - self.start));
        }
    }
}

fn binary(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sensor-actors"))
        .env_remove("RUST_LOG")
        .args(args)
        .output()
        .unwrap()
}

/// Sensors failing every way the simulated driver can, in groups of each strategy, with reads
/// landing around their deadline.
const CHAOS: &str = r#"
[collection]
interval = "200ms"
read_timeout = "150ms"
rounds = 60
seed = 11

[supervision]
max_restarts = 50
within = "10s"
backoff_min = "50ms"
backoff_max = "2s"
hung_after = 2

[[groups]]
name = "line-a"
strategy = "one_for_all"
max_restarts = 20

[[groups]]
name = "line-b"
strategy = "rest_for_one"
max_restarts = 20

[[sensors]]
count = 40
latency = ["20ms", "160ms"]
error_rate = 0.05
fatal_rate = 0.02
panic_rate = 0.01
hang_rate = 0.01

[[sensors]]
name = "a"
count = 5
group = "line-a"
latency = ["5ms", "50ms"]
fatal_rate = 0.02

[[sensors]]
name = "b"
count = 5
group = "line-b"
latency = ["5ms", "50ms"]
panic_rate = 0.02
"#;

const FILES: [&str; 4] = ["readings.jsonl", "anomalies.jsonl", "events.jsonl", "summary.json"];

fn run_virtual(config: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["run", "--clock", "virtual", "--config", config.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--out", out.to_str().unwrap()]);
    let output = binary(&args);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[test]
fn the_same_configuration_and_seed_give_byte_identical_files() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("chaos.toml");
    std::fs::write(&config, CHAOS).unwrap();
    let (first, second) = (dir.path().join("first"), dir.path().join("second"));
    run_virtual(&config, &first, &[]);
    run_virtual(&config, &second, &[]);
    for file in FILES {
        let a = std::fs::read(first.join(file)).unwrap();
        assert!(!a.is_empty(), "{file}");
        assert!(
            a == std::fs::read(second.join(file)).unwrap(),
            "{file} differs between two runs"
        );
    }
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(first.join("summary.json")).unwrap()).unwrap();
    assert!(
        summary["restarts"].as_u64().unwrap() > 0,
        "the scenario restarts sensors"
    );
    assert_eq!(summary["virtual_clock"], "2000-01-01T00:00:00Z");
    assert_eq!(summary["process"]["peak_rss_bytes"], 0);
    // 60 rounds of 200 ms: the last starts at 11.8 s and ends by its 150 ms deadline.
    let wall = summary["process"]["wall_seconds"].as_f64().unwrap();
    assert!((11.8..=11.95).contains(&wall), "{wall}");

    // Another seed gives other files.
    let third = dir.path().join("third");
    run_virtual(&config, &third, &["--seed", "12"]);
    assert!(
        std::fs::read(first.join("readings.jsonl")).unwrap() != std::fs::read(third.join("readings.jsonl")).unwrap()
    );
}

#[test]
fn start_fixes_the_first_timestamp_and_time_is_simulated() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("fixed.toml");
    std::fs::write(
        &config,
        "[collection]\ninterval = \"1h\"\nrounds = 3\n[[sensors]]\ncount = 2\nlatency = [\"250ms\", \"250ms\"]\nerror_rate = 0.0\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    // Three hourly rounds take no real time.
    let started = std::time::Instant::now();
    run_virtual(&config, &out, &["--start", "2026-03-01T12:00:00Z"]);
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    let events = std::fs::read_to_string(out.join("events.jsonl")).unwrap();
    assert!(
        events
            .lines()
            .all(|l| l.contains("\"timestamp\":\"2026-03-01T12:00:00.000Z\"")),
        "{events}"
    );
    let stamps: Vec<String> = std::fs::read_to_string(out.join("readings.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["timestamp"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        stamps,
        [
            "2026-03-01T12:00:00.250Z",
            "2026-03-01T12:00:00.250Z",
            "2026-03-01T13:00:00.250Z",
            "2026-03-01T13:00:00.250Z",
            "2026-03-01T14:00:00.250Z",
            "2026-03-01T14:00:00.250Z",
        ]
    );
}

#[test]
fn real_world_drivers_and_a_start_without_the_virtual_clock_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("system.toml");
    std::fs::write(&config, "[[sensors]]\ndriver = \"system\"\nmetric = \"load1\"\n").unwrap();
    let file = config.to_str().unwrap();
    let output = binary(&["run", "--clock", "virtual", "--config", file, "--rounds", "1"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        format!(
            "sensor-actors: {file}: sensors: sensor \"load1-1\" (kind \"load1\") reads the real world, which a virtual clock cannot simulate; run it with --clock wall"
        )
    );
    let output = binary(&["run", "--start", "2026-01-01T00:00:00Z", "--rounds", "1"]);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr).trim_end(),
        "sensor-actors: command line: --start: expected --clock virtual with it"
    );
    let output = binary(&["run", "--clock", "virtual", "--start", "noon", "--rounds", "1"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--start: expected an RFC 3339 time"));
}

/// Through the library: a virtual clock in a test on tokio's paused clock stamps the journal
/// from its start, and a real-world driver makes the run fail before it starts.
#[actix_rt::test]
async fn the_library_runs_on_a_virtual_clock_from_its_start() {
    tokio::time::pause();
    let start: DateTime<Utc> = "2030-06-01T00:00:00Z".parse().unwrap();
    let config = Collector::new()
        .parse(
            "[collection]\ninterval = \"10s\"\nrounds = 2\nseed = 3\n[[sensors]]\ncount = 1\nlatency = [\"1ms\", \"1ms\"]\nfatal_rate = 1.0\n[supervision]\nbackoff_min = \"2s\"\nbackoff_max = \"2s\"\n",
            "lib.toml",
        )
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let journal = Times {
        start,
        seen: seen.clone(),
    }
    .start()
    .recipient();
    let summary = Collector::new()
        .clock(Clock::Virtual { start })
        .subscribe_with(journal, Delivery::lossless())
        .run(config, std::future::pending())
        .await
        .unwrap();
    assert_eq!(summary.virtual_clock, Some(start));
    let times = seen.lock().unwrap().clone();
    let ms = TimeDelta::milliseconds;
    // Tokio's timers fire on millisecond ticks counted from when its clock started, which in a
    // test is before it was paused: each timer may fire up to 1 ms late.
    let near = |event: &(String, TimeDelta), name: &str, at: i64| {
        assert_eq!(event.0, name, "{times:?}");
        assert!(
            event.1 >= ms(at) && event.1 <= ms(at + 2),
            "{event:?}, expected {name} at {at} ms"
        );
    };
    // Started at the start; failed after its 1 ms read; restarted after the 2 s backoff (plus
    // up to 20% jitter); failed again in round 2, 10 s in.
    assert_eq!(times[0], ("started".to_string(), ms(0)));
    near(&times[1], "failed", 1);
    near(&times[2], "restart_scheduled", 1);
    assert_eq!(times[3].0, "restarted");
    assert!(times[3].1 >= ms(2001) && times[3].1 <= ms(2402), "{:?}", times[3]);
    near(&times[4], "failed", 10_001);

    let system = Collector::new()
        .parse("[[sensors]]\ndriver = \"system\"\nmetric = \"load1\"\n", "sys.toml")
        .unwrap();
    match Collector::new()
        .clock(Clock::Virtual { start })
        .run(system, std::future::pending())
        .await
    {
        Err(RunError::Config(e)) => assert!(e.to_string().contains("reads the real world"), "{e}"),
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

/// `driver = "waiting"`: the simulated driver with each read waited for on a timer of its own,
/// as any driver's future is. On a virtual clock a group keeps the simulated driver's answers
/// until they are due instead; with this driver the same configuration runs the way every
/// simulated read did before that.
struct WaitingFactory;

#[derive(Debug)]
struct WaitingSpec(Spec);

struct WaitingDriver(Simulated);

impl DriverFactory for WaitingFactory {
    fn parse(&self, keys: &DriverKeys<'_>) -> Result<Arc<dyn DriverSpec>, ConfigError> {
        Ok(Arc::new(WaitingSpec(Spec::new(Settings::parse(keys)?))))
    }
}

impl DriverSpec for WaitingSpec {
    fn build(&self, ctx: &DriverContext) -> DriverBuild {
        DriverBuild::driver(WaitingDriver(Simulated::new(self.0.settings().clone(), ctx)))
    }

    fn default_kind(&self) -> Option<&str> {
        Some("temperature")
    }
}

impl Driver for WaitingDriver {
    fn read(&mut self, round: u64) -> ReadFuture {
        // A future over the simulated read: polled, it sleeps for the read's latency.
        ReadFuture::new(self.0.read(round))
    }
}

/// Runs `text` on a virtual clock in a runtime started paused (as `run --clock virtual`'s is),
/// writing the files into `dir`; with `waiting`, every simulated entry uses `driver = "waiting"`.
fn run_in_virtual_time(text: &str, waiting: bool, dir: &Path) -> [Vec<u8>; 4] {
    let text = if waiting {
        text.replace("[[sensors]]\n", "[[sensors]]\ndriver = \"waiting\"\n")
    } else {
        text.to_string()
    };
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap()
    };
    actix_rt::System::with_tokio_rt(runtime).block_on(async {
        let collector = common::flaky::collector().driver("waiting", WaitingFactory);
        let config = collector.parse(&text, "equal.toml").unwrap();
        collector
            .clock(Clock::virtual_from_default())
            .out(dir)
            .unwrap()
            .run(config, std::future::pending())
            .await
            .unwrap();
    });
    FILES.map(|file| std::fs::read(dir.join(file)).unwrap())
}

/// Reads ending around their deadline, at its instant exactly, or in the same millisecond as
/// others (the deadline is 150 ms; tokio's timers, and so the virtual clock's reads, end on
/// whole milliseconds).
const EDGES: &str = r#"
[collection]
interval = "1s"
read_timeout = "150ms"
rounds = 12
seed = 21

[supervision]
hung_after = 100

[[sensors]]
name = "at-deadline"
count = 3
latency = ["150ms", "150ms"]
error_rate = 0.0

[[sensors]]
name = "up-to-deadline"
count = 3
latency = ["149001us", "149001us"]
error_rate = 0.0

[[sensors]]
name = "just-before"
count = 3
latency = ["149ms", "149ms"]
error_rate = 0.0

[[sensors]]
name = "together"
count = 4
latency = ["80100us", "80900us"]
error_rate = 0.0

[[sensors]]
name = "spread"
count = 30
latency = ["1ms", "200ms"]
error_rate = 0.2
offline_rate = 0.05
"#;

/// One group larger than an analysis batch (1,024 outcomes handed over at a time), readings
/// missing often enough that `stale` finds some (stamped when analysed).
const LARGE: &str = r#"
[collection]
interval = "1s"
read_timeout = "250ms"
rounds = 8
seed = 5

[[sensors]]
count = 1500
latency = ["1ms", "300ms"]
error_rate = 0.4
offline_rate = 0.05
online_rate = 0.2
fatal_rate = 0.002
"#;

/// A group capping its reads in flight: reads go out as others settle.
const CAPPED: &str = r#"
[collection]
interval = "300ms"
read_timeout = "150ms"
max_in_flight = 7
rounds = 60
seed = 5

[supervision]
hung_after = 2
backoff_min = "50ms"
backoff_max = "1s"

[[groups]]
name = "g"
strategy = "one_for_all"
max_restarts = 30

[[sensors]]
count = 30
latency = ["1ms", "160ms"]
error_rate = 0.1
fatal_rate = 0.02
hang_rate = 0.01
offline_rate = 0.05

[[sensors]]
name = "x"
count = 10
group = "g"
latency = ["10ms", "200ms"]
panic_rate = 0.02
faults = [{ round = 5, fault = "crash" }, { round = 9, fault = "exit" }]
"#;

/// A group escalating while its members' reads are in flight: the sensor that cannot be built
/// fails again at each restart (between rounds' starts), and the third time the group gives up,
/// stopping the others mid-read. (Its entry's header is spaced so that it keeps its driver.)
const STOPPED: &str = r#"
[collection]
interval = "1s"
read_timeout = "950ms"
rounds = 4
seed = 3

[supervision]
backoff_min = "250ms"
backoff_max = "250ms"

[[groups]]
name = "g"
strategy = "one_for_one"
max_restarts = 2
within = "1m"

[[sensors]]
name = "s"
count = 6
group = "g"
latency = ["300ms", "900ms"]
error_rate = 0.0

[[ sensors ]]
id = "unbuildable"
driver = "flaky"
failing_builds = 100
group = "g"

[[sensors]]
name = "free"
count = 2
latency = ["100ms", "200ms"]
"#;

/// Keeping each simulated answer until it is due changes nothing a run writes: the chaos
/// scenarios (every fault, groups of each strategy, reads landing on their deadline), reads at
/// the edges of the deadline and of the millisecond, a group larger than an analysis batch and
/// a group capping its reads in flight give the same four files, byte for byte, as the same
/// runs with every read waited for on a timer of its own; and so do reads stopped before their
/// answer is due.
#[test]
fn answers_kept_until_due_give_the_files_of_reads_waited_for() {
    let examples = [
        include_str!("../examples/chaos.toml").replace("[collection]\n", "[collection]\nrounds = 40\n"),
        include_str!("../examples/supervision.toml").to_string(),
    ];
    let scenarios = [
        ("chaos", CHAOS),
        ("edges", EDGES),
        ("large", LARGE),
        ("capped", CAPPED),
        ("stopped", STOPPED),
        ("examples/chaos.toml", &examples[0]),
        ("examples/supervision.toml", &examples[1]),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (k, (name, text)) in scenarios.into_iter().enumerate() {
        let kept = run_in_virtual_time(text, false, &dir.path().join(format!("{k}-kept")));
        let waited = run_in_virtual_time(text, true, &dir.path().join(format!("{k}-waited")));
        assert!(!kept[0].is_empty(), "{name}: no readings");
        for (file, (kept, waited)) in FILES.iter().zip(kept.iter().zip(&waited)) {
            assert!(
                kept == waited,
                "{name}: {file} differs from the run with reads waited for"
            );
        }
    }
}

/// On the virtual clock a read lasts its latency rounded up to the millisecond, and one that
/// ends at its deadline's instant is timed out, as one that waited on its own timer is.
#[test]
fn a_read_ending_at_its_deadline_is_timed_out() {
    let dir = tempfile::tempdir().unwrap();
    let [readings, ..] = run_in_virtual_time(EDGES, false, dir.path());
    let mut latencies = std::collections::BTreeMap::<String, Vec<f64>>::new();
    for line in String::from_utf8(readings).unwrap().lines() {
        let r: serde_json::Value = serde_json::from_str(line).unwrap();
        let sensor = r["sensor"].as_str().unwrap();
        let entry = sensor.rsplit_once('-').unwrap().0.to_string();
        latencies
            .entry(entry)
            .or_default()
            .push(r["latency_ms"].as_f64().unwrap());
    }
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("summary.json")).unwrap()).unwrap();
    let count = |entry: &str| latencies.get(entry).map_or(0, Vec::len);
    assert_eq!(count("at-deadline"), 0, "{latencies:?}");
    assert_eq!(count("up-to-deadline"), 0, "{latencies:?}");
    assert_eq!(latencies["just-before"], vec![149.0; 3 * 12]);
    assert_eq!(latencies["together"], vec![81.0; 4 * 12]);
    assert!(latencies["spread"].iter().all(|&ms| ms < 150.0 && ms.fract() == 0.0));
    // The six sensors ending on their deadline, and the spread ones past it, are timed out.
    let timed_out = summary["reads"]["timed_out"].as_u64().unwrap();
    assert!(timed_out > 6 * 12, "{timed_out}");
}
