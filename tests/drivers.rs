//! Drivers by name, end to end: a driver registered on a `Collector` and named in TOML
//! (`tests/common/flaky.rs`), its key validation, and builds that fail, panic or are slow, each
//! run under tokio's paused clock and read back from `events.jsonl`, `readings.jsonl` and the
//! summary.

mod common;

use std::path::Path;

use common::flaky;
use common::{read_jsonl, readings};
use sensor_actors::{Collector, Summary};

/// Rounds every second from t = 0, reads due in 300 ms, a fixed 200 ms backoff (min = max: no
/// jitter), and a sensor `steady` that never fails.
const BASE: &str = r#"
[collection]
interval = "1s"
read_timeout = "300ms"
seed = 5
rounds = 4
[supervision]
backoff_min = "200ms"
backoff_max = "200ms"
[[sensors]]
driver = "flaky"
id = "steady"
value = 100.0
"#;

/// What a run left.
struct Run {
    summary: Summary,
    /// The journal without the `started` events, one line each.
    journal: Vec<String>,
    /// `(round, sensor, value)` of every reading.
    readings: Vec<(u64, String, f64)>,
}

impl Run {
    fn rounds_read(&self, sensor: &str) -> Vec<u64> {
        self.readings
            .iter()
            .filter(|(_, s, _)| s == sensor)
            .map(|(round, _, _)| *round)
            .collect()
    }

    fn state(&self, sensor: &str) -> (String, u32) {
        let s = self.summary.sensors.iter().find(|s| s.id == sensor).unwrap();
        (s.state, s.restarts)
    }
}

/// Parses `BASE` plus `extra` with the flaky driver registered, and runs it to the end with the
/// output files written.
async fn run_flaky(extra: &str) -> Run {
    run_text(&format!("{BASE}\n{extra}")).await
}

/// Parses `text` with the flaky driver registered, and runs it to the end with the output files
/// written.
async fn run_text(text: &str) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let collector: Collector = flaky::collector().out(dir.path()).unwrap();
    let config = collector.parse(text, "test.toml").unwrap();
    let summary = collector.run(config, std::future::pending()).await.unwrap();
    let r = &summary.reads;
    assert_eq!(r.requested, r.ok + r.failed + r.timed_out + r.unavailable);
    Run {
        journal: journal(dir.path()),
        readings: readings(dir.path()),
        summary,
    }
}

/// `events.jsonl` without `started`: `sensor event (cause) in Nms #restarts`.
fn journal(dir: &Path) -> Vec<String> {
    read_jsonl(&dir.join("events.jsonl"))
        .iter()
        .filter(|e| e["event"] != "started")
        .map(|e| {
            // A group's own events have no sensor, only the group.
            let who = e["sensor"].as_str().or(e["group"].as_str()).unwrap();
            let mut line = format!("{who} {}", e["event"].as_str().unwrap());
            if let Some(cause) = e["cause"].as_str() {
                line += &format!(" ({cause})");
            }
            if let Some(delay) = e["delay_ms"].as_u64() {
                line += &format!(" in {delay}ms");
            }
            if let Some(restarts) = e["restarts"].as_u64() {
                line += &format!(" #{restarts}");
            }
            line
        })
        .collect()
}

/// Three sensors of a registered driver named in TOML, read 4 rounds through `Collector::run`:
/// 12 readings, each `value + round` (the driver's own `value` key), nothing else.
#[actix_rt::test]
async fn a_registered_driver_named_in_toml_runs() {
    tokio::time::pause();
    let collector = flaky::collector();
    let text = "[collection]\nrounds = 4\ninterval = \"1s\"\nseed = 1\n\
                [[sensors]]\ndriver = \"flaky\"\nname = \"gauge\"\ncount = 3\nvalue = 10.0\nread_latency = \"50ms\"\n";
    let config = collector.parse(text, "test.toml").unwrap();
    assert_eq!(
        &*config.sensors[0].kind, "flaky",
        "the driver's name is the default kind"
    );
    let summary = collector.run(config, std::future::pending()).await.unwrap();
    assert_eq!(summary.rounds, 4);
    assert_eq!(
        (summary.reads.requested, summary.reads.ok, summary.reads.failed),
        (12, 12, 0)
    );
    assert_eq!((summary.reads.timed_out, summary.reads.unavailable), (0, 0));
    for id in ["gauge-1", "gauge-2", "gauge-3"] {
        let s = summary.sensors.iter().find(|s| s.id == id).unwrap();
        // Values 11, 12, 13, 14.
        assert_eq!(
            (s.count, s.min, s.max, s.mean),
            (4, Some(11.0), Some(14.0), Some(12.5)),
            "{id}"
        );
    }
}

/// An unknown driver name is one line listing every known name, the built-in ones first, then
/// the registered ones in registration order.
#[test]
fn unknown_driver_name_lists_every_known_name() {
    struct Other;
    impl sensor_actors::driver::DriverFactory for Other {
        fn parse(
            &self,
            keys: &sensor_actors::driver::DriverKeys<'_>,
        ) -> Result<std::sync::Arc<dyn sensor_actors::driver::DriverSpec>, sensor_actors::ConfigError> {
            Err(keys.error("x", "never parsed"))
        }
    }
    let collector = flaky::collector().driver("other", Other);
    let error = collector
        .parse("[[sensors]]\ndriver = \"modbus\"\n", "test.toml")
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "test.toml: sensors[0].driver: expected one of simulated, replay, system, mqtt, flaky, other, got \"modbus\""
    );
}

/// A registered factory's key errors are one line naming file, entry, key and expectation, from
/// `parse` and from `load` alike: a value the factory rejects, a value of the wrong type, and an
/// unknown key (with the hint listing the keys common to every entry).
#[test]
fn factory_key_errors_are_one_line() {
    let collector = flaky::collector();
    let err = |entry: &str| {
        collector
            .parse(&format!("[[sensors]]\ndriver = \"flaky\"\n{entry}\n"), "test.toml")
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        err("build_latency = \"soon\""),
        "test.toml: sensors[0].build_latency: expected a duration, got \"soon\""
    );
    assert_eq!(
        err("failing_builds = \"two\""),
        "test.toml: sensors[0].failing_builds: invalid type: string \"two\", expected u32"
    );
    assert_eq!(
        err("vaule = 1.0"),
        "test.toml: sensors[0].vaule: unknown field `vaule`, expected one of `failing_builds`, `panics`, \
         `build_latency`, `read_latency`, `value`, or a key of every sensor: driver, kind, name, id, count, \
         unit, group, range, restart, max_restarts, within, backoff_min, backoff_max, hung_after, directives"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sensors.toml");
    std::fs::write(&path, "[[sensors]]\ndriver = \"flaky\"\nread_latency = \"-1s\"\n").unwrap();
    assert_eq!(
        collector.load(&path).unwrap_err().to_string(),
        format!(
            "{}: sensors[0].read_latency: expected a duration, got \"-1s\"",
            path.display()
        )
    );
}

/// A build that fails once, at the first start: the sensor is journaled `failed (build: ...)`,
/// `restart_scheduled` and `restarted` in that order, is `unavailable` in round 1 (it is down at
/// t = 0) and reads from round 2 on; `steady` reads every round. The same whether the build
/// fails at once or after 50 ms (async: round 1's read waits for it, then settles unavailable).
#[actix_rt::test]
async fn a_build_that_fails_once_is_restarted() {
    tokio::time::pause();
    for build_latency in ["", "build_latency = \"50ms\""] {
        let run = run_flaky(&format!(
            "[[sensors]]\ndriver = \"flaky\"\nid = \"flaky\"\nfailing_builds = 1\n{build_latency}\n"
        ))
        .await;
        assert_eq!(
            run.journal,
            [
                "flaky failed (build: build 0 refused)",
                "flaky restart_scheduled in 200ms #0",
                "flaky restarted #1",
            ],
            "{build_latency}"
        );
        let r = &run.summary.reads;
        assert_eq!((r.requested, r.ok, r.unavailable), (8, 7, 1), "{build_latency}");
        assert_eq!((r.failed, r.timed_out), (0, 0), "{build_latency}");
        assert_eq!(run.rounds_read("flaky"), [2, 3, 4]);
        assert_eq!(run.rounds_read("steady"), [1, 2, 3, 4]);
        assert_eq!(run.state("flaky"), ("running".to_string(), 1));
    }
}

/// A build that always fails, in the shard: restarted `max_restarts` (2) times, then given up;
/// every round counts it `unavailable` while `steady` reads every round.
#[actix_rt::test]
async fn a_build_that_always_fails_is_given_up() {
    tokio::time::pause();
    let run = run_flaky(
        "[[sensors]]\ndriver = \"flaky\"\nid = \"broken\"\nfailing_builds = 1000\nmax_restarts = 2\nwithin = \"1m\"\n",
    )
    .await;
    assert_eq!(
        run.journal,
        [
            "broken failed (build: build 0 refused)",
            "broken restart_scheduled in 200ms #0",
            "broken restarted #1",
            "broken failed (build: build 1 refused)",
            "broken restart_scheduled in 200ms #1",
            "broken restarted #2",
            "broken failed (build: build 2 refused)",
            "broken gave_up (more than 2 restarts within 1m) #2",
        ]
    );
    let r = &run.summary.reads;
    assert_eq!(
        (r.requested, r.ok, r.unavailable, r.failed, r.timed_out),
        (8, 4, 4, 0, 0)
    );
    assert_eq!(run.rounds_read("steady"), [1, 2, 3, 4]);
    assert_eq!(run.state("broken"), ("given_up".to_string(), 2));
}

/// In a configured `one_for_one` group, failed builds count against the group's intensity: two
/// failed builds are restarted while the sibling reads every round; a third within the window
/// exceeds `max_restarts = 2` and escalates, giving the group up.
#[actix_rt::test]
async fn failed_builds_in_a_group_follow_its_strategy_and_intensity() {
    tokio::time::pause();
    let group = "[[groups]]\nname = \"bus\"\nstrategy = \"one_for_one\"\nmax_restarts = 2\nwithin = \"1m\"\n";
    let entry = |failing: u32| {
        format!(
            "{group}[[sensors]]\ndriver = \"flaky\"\nid = \"flaky\"\ngroup = \"bus\"\nfailing_builds = {failing}\n\
             [[sensors]]\ndriver = \"flaky\"\nid = \"sibling\"\ngroup = \"bus\"\n"
        )
    };
    let run = run_flaky(&entry(2)).await;
    assert_eq!(
        run.journal,
        [
            "flaky failed (build: build 0 refused)",
            "flaky restart_scheduled in 200ms #0",
            "flaky restarted #1",
            "flaky failed (build: build 1 refused)",
            "flaky restart_scheduled in 200ms #1",
            "flaky restarted #2",
        ]
    );
    assert_eq!(run.rounds_read("sibling"), [1, 2, 3, 4]);
    assert_eq!(run.rounds_read("flaky"), [2, 3, 4]);

    let run = run_flaky(&entry(3)).await;
    assert_eq!(
        run.journal[6..],
        [
            "flaky failed (build: build 2 refused)",
            "flaky gave_up (group bus escalated: more than 2 restarts within 1m) #2",
            "sibling gave_up (group bus escalated: more than 2 restarts within 1m) #0",
            "bus escalated (more than 2 restarts within 1m)",
            "bus gave_up (escalated: more than 2 restarts within 1m) #0",
        ]
    );
    assert_eq!(run.state("sibling").0, "given_up");
    assert_eq!(run.rounds_read("steady"), [1, 2, 3, 4], "outside the group");
}

/// A build slower than the read timeout: round 1's read waits for the build (500 ms) and times
/// out at its 300 ms deadline; from round 2 the sensor reads. One timeout is not a hang
/// (`hung_after` = 3), so nothing is journaled.
#[actix_rt::test]
async fn a_slow_build_times_out_its_reads_then_reads() {
    tokio::time::pause();
    let run = run_flaky("[[sensors]]\ndriver = \"flaky\"\nid = \"slow\"\nbuild_latency = \"500ms\"\n").await;
    assert!(run.journal.is_empty(), "{:?}", run.journal);
    let r = &run.summary.reads;
    assert_eq!(
        (r.requested, r.ok, r.timed_out, r.unavailable, r.failed),
        (8, 7, 1, 0, 0)
    );
    assert_eq!(run.rounds_read("slow"), [2, 3, 4]);
    assert_eq!(run.state("slow"), ("running".to_string(), 0));
}

/// A sensor fails twice in one round, and is failed once. With `max_in_flight = 1`, `broken`'s
/// read waits for its build (400 ms) and times out at 300 ms, which with `hung_after = 1` is a
/// hang; `late`'s read, sent then, keeps the round open until 500 ms, and at 400 ms the build
/// fails. The round's two failures of `broken` make one `failed`, with the build's cause (the
/// timeout came of the build), one restart, and nothing journaled after its `restart_scheduled`
/// but its `restarted`.
#[actix_rt::test]
async fn two_failures_of_a_sensor_in_one_round_fail_it_once() {
    tokio::time::pause();
    let run = run_text(
        r#"
[collection]
interval = "1s"
read_timeout = "300ms"
seed = 5
rounds = 2
max_in_flight = 1
[supervision]
backoff_min = "200ms"
backoff_max = "200ms"
[[sensors]]
driver = "flaky"
id = "broken"
failing_builds = 1
build_latency = "400ms"
hung_after = 1
[[sensors]]
driver = "flaky"
id = "late"
read_latency = "200ms"
"#,
    )
    .await;
    assert_eq!(
        run.journal,
        [
            "broken failed (build: build 0 refused)",
            "broken restart_scheduled in 200ms #0",
            "broken restarted #1",
        ]
    );
    assert_eq!(run.state("broken"), ("running".to_string(), 1));
    assert_eq!(run.summary.events["failed"], 1);
}
