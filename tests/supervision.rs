//! Supervision end to end: restarts, hangs, intensity, backoff, restart types, group strategies,
//! escalation and the journal, each run through `sensor_actors::run` under tokio's paused clock.

mod common;

use std::future::pending;
use std::sync::Arc;

use sensor_actors::config::{RestartType, SensorSpec};
use sensor_actors::driver::{Driver, DriverBuild, DriverContext, DriverSpec, ReadError, ReadFuture, Sample};
use sensor_actors::{run, Config, RunOptions, Summary};
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize)]
struct Event {
    /// Absent for a group's own events, which name the group.
    sensor: Option<String>,
    group: Option<String>,
    round: u64,
    attempt: Option<u32>,
    window: Option<u32>,
    max_restarts: Option<u32>,
    event: String,
    cause: Option<String>,
    delay_ms: Option<u64>,
    restarts: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct ReadingLine {
    round: u64,
    sensor: String,
}

struct Outcome {
    summary: Summary,
    events: Vec<Event>,
    readings: Vec<ReadingLine>,
}

impl Outcome {
    /// The journal without the initial `started` events, one compact line per event.
    fn journal(&self) -> Vec<String> {
        self.events
            .iter()
            .filter(|e| e.event != "started")
            .map(|e| {
                let who = e.sensor.as_ref().or(e.group.as_ref()).unwrap();
                let mut line = format!("{who} {}", e.event);
                if let Some(cause) = &e.cause {
                    line += &format!(" ({cause})");
                }
                if let Some(delay) = e.delay_ms {
                    line += &format!(" in {delay}ms");
                }
                if let Some(restarts) = e.restarts {
                    line += &format!(" #{restarts}");
                }
                line
            })
            .collect()
    }

    fn read_in(&self, round: u64) -> Vec<&str> {
        self.readings
            .iter()
            .filter(|r| r.round == round)
            .map(|r| r.sensor.as_str())
            .collect()
    }

    fn sensor(&self, id: &str) -> sensor_actors::report::SensorSummary {
        self.summary.sensors.iter().find(|s| s.id == id).unwrap()
    }
}

/// Runs `config` to the end; the calling test pauses tokio's clock first.
async fn run_config(config: Config) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let options = RunOptions {
        out: Some(dir.path().to_path_buf()),
    };
    let summary = run(config, options, pending()).await.unwrap();
    let r = &summary.reads;
    assert_eq!(r.requested, r.ok + r.failed + r.timed_out + r.unavailable);
    let readings: Vec<ReadingLine> = common::read_lines(&dir.path().join("readings.jsonl"));
    assert_eq!(readings.len() as u64, r.ok);
    Outcome {
        events: common::read_lines(&dir.path().join("events.jsonl")),
        readings,
        summary,
    }
}

async fn run_toml(toml: &str) -> Outcome {
    run_config(Config::from_toml_str(toml, "test.toml").unwrap()).await
}

/// Collection and supervision settings shared by the scenarios: 1 s rounds, 100 ms reads,
/// fixed 200 ms backoff (min = max, so jitter cannot change it).
const BASE: &str = r#"
[collection]
interval = "1s"
read_timeout = "300ms"
seed = 11
[supervision]
backoff_min = "200ms"
backoff_max = "200ms"
"#;

fn sensors(extra: &str) -> String {
    format!("{BASE}\n[[sensors]]\ncount = 3\nlatency = [\"100ms\", \"100ms\"]\nerror_rate = 0.0\n{extra}\n")
}

/// A sensor whose read panics in round 2 is restarted after its backoff; the other sensors
/// answer in that same round and the panicking sensor answers again from round 3.
#[actix_rt::test]
async fn panicking_sensor_is_restarted_while_others_answer() {
    tokio::time::pause();
    let toml = sensors("faults = [{ round = 2, fault = \"panic\", sensor = \"temperature-2\" }]")
        .replace("seed = 11", "seed = 11\nrounds = 4");
    let out = run_toml(&toml).await;
    assert_eq!(
        out.journal(),
        [
            "temperature-2 failed (panic: injected panic in round 2)",
            "temperature-2 restart_scheduled in 200ms #0",
            "temperature-2 restarted #1",
        ]
    );
    assert_eq!(out.read_in(2), ["temperature-1", "temperature-3"]);
    assert_eq!(out.read_in(3), ["temperature-1", "temperature-2", "temperature-3"]);
    assert_eq!((out.summary.reads.ok, out.summary.reads.failed), (11, 1));
    assert_eq!(
        (
            out.sensor("temperature-2").state.as_str(),
            out.sensor("temperature-2").restarts
        ),
        ("running", 1)
    );
}

/// A sensor that hangs from round 2 times out in rounds 2, 3 and 4; with `hung_after = 3` it is
/// failed after exactly the third timeout, restarted, and read normally in round 5.
#[actix_rt::test]
async fn hung_sensor_is_restarted_after_exactly_hung_after_timeouts() {
    tokio::time::pause();
    let toml = sensors("faults = [{ round = 2, fault = \"hang\", sensor = \"temperature-1\" }]")
        .replace("seed = 11", "seed = 11\nrounds = 6")
        .replace("[supervision]", "[supervision]\nhung_after = 3");
    let out = run_toml(&toml).await;
    assert_eq!(
        out.journal(),
        [
            "temperature-1 failed (hung: 3 consecutive read timeouts)",
            "temperature-1 restart_scheduled in 200ms #0",
            "temperature-1 restarted #1",
        ]
    );
    for round in 2..=4 {
        assert!(!out.read_in(round).contains(&"temperature-1"), "round {round}");
    }
    assert!(out.read_in(5).contains(&"temperature-1"));
    assert_eq!(out.summary.reads.timed_out, 3);
}

/// The same hang with `journal = "verbose"`: each timeout that counts toward the hang is
/// journaled in its round before the failure it leads to.
#[actix_rt::test]
async fn a_verbose_journal_shows_the_timeouts_leading_to_a_hang() {
    tokio::time::pause();
    let toml = sensors("faults = [{ round = 2, fault = \"hang\", sensor = \"temperature-1\" }]")
        .replace("seed = 11", "seed = 11\nrounds = 6\njournal = \"verbose\"")
        .replace("[supervision]", "[supervision]\nhung_after = 3");
    let out = run_toml(&toml).await;
    assert_eq!(
        out.journal(),
        [
            "temperature-1 timed_out (1 of 3 consecutive read timeouts make a hang)",
            "temperature-1 timed_out (2 of 3 consecutive read timeouts make a hang)",
            "temperature-1 timed_out (3 of 3 consecutive read timeouts make a hang)",
            "temperature-1 failed (hung: 3 consecutive read timeouts)",
            "temperature-1 restart_scheduled in 200ms #0",
            "temperature-1 restarted #1",
        ]
    );
    let rounds: Vec<u64> = out
        .events
        .iter()
        .filter(|e| e.event == "timed_out")
        .map(|e| e.round)
        .collect();
    assert_eq!(rounds, [2, 3, 4]);
    assert_eq!(out.summary.events["timed_out"], 3);
}

/// A sensor failing fatally on every read is restarted `max_restarts` times, then given up at
/// the next failure with the reason in the journal, and counted unavailable afterwards while a
/// healthy sensor keeps the run going.
#[actix_rt::test]
async fn intensity_exceeded_gives_up_at_the_right_restart() {
    tokio::time::pause();
    let toml = format!(
        "{BASE}\n[[sensors]]\nid = \"good\"\nlatency = [\"100ms\", \"100ms\"]\nerror_rate = 0.0\n[[sensors]]\nid = \"bad\"\nlatency = [\"100ms\", \"100ms\"]\nerror_rate = 0.0\nfatal_rate = 1.0\nmax_restarts = 2\nwithin = \"1m\"\n"
    )
    .replace("seed = 11", "seed = 11\nrounds = 6");
    let out = run_toml(&toml).await;
    assert_eq!(
        out.journal(),
        [
            "bad failed (fatal: injected fatal error in round 1)",
            "bad restart_scheduled in 200ms #0",
            "bad restarted #1",
            "bad failed (fatal: injected fatal error in round 2)",
            "bad restart_scheduled in 200ms #1",
            "bad restarted #2",
            "bad failed (fatal: injected fatal error in round 3)",
            "bad gave_up (more than 2 restarts within 1m) #2",
        ]
    );
    let r = &out.summary.reads;
    assert_eq!(
        (r.failed, r.unavailable, r.ok),
        (3, 3, 6),
        "the good sensor keeps the run going"
    );
    assert_eq!(
        (out.sensor("bad").state.as_str(), out.sensor("bad").restarts),
        ("given_up", 2)
    );
}

/// Backoff delays double from `backoff_min`, carry at most 20 % jitter, never exceed
/// `backoff_max`, and start again from `backoff_min` once the sensor has run `within` healthy.
#[actix_rt::test]
async fn backoff_grows_within_bounds_and_resets_after_a_healthy_stretch() {
    tokio::time::pause();
    let toml = format!(
        r#"
[collection]
interval = "1s"
read_timeout = "300ms"
seed = 3
rounds = 40
[supervision]
backoff_min = "100ms"
backoff_max = "1s"
max_restarts = 100
within = "8s"
[[sensors]]
id = "flaky"
latency = ["10ms", "10ms"]
error_rate = 0.0
faults = [{fault_list}]
"#,
        fault_list = (1..=6)
            .map(|r| format!("{{ round = {r}, fault = \"fatal\" }}"))
            .chain(std::iter::once("{ round = 30, fault = \"fatal\" }".to_string()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let out = run_toml(&toml).await;
    let delays: Vec<u64> = out
        .events
        .iter()
        .filter(|e| e.event == "restart_scheduled")
        .map(|e| e.delay_ms.unwrap())
        .collect();
    // Round 6's fault finds the sensor still waiting for its 1 s restart: 5 failures, then round 30.
    assert_eq!(delays.len(), 6, "{:?}", out.journal());
    for (k, &d) in delays[..5].iter().enumerate() {
        let base = (100u64 << k).min(1000);
        assert!(
            d >= base && d <= (base * 12 / 10).min(1000),
            "restart {k}: {d} ms, base {base} ms"
        );
    }
    assert_eq!(delays[4], 1000, "capped at backoff_max");
    assert!(
        (100..=120).contains(&delays[5]),
        "reset after a healthy stretch: {} ms",
        delays[5]
    );
}

/// A driver that answers `exhausted` after `reads` readings (a source with no more data).
#[derive(Debug)]
struct Finite {
    reads: u32,
}

struct FiniteDriver {
    left: u32,
}

impl Driver for FiniteDriver {
    fn read(&mut self, round: u64) -> ReadFuture {
        let result = if self.left == 0 {
            Err(ReadError::Exhausted)
        } else {
            self.left -= 1;
            Ok(Sample::value(round as f64))
        };
        ReadFuture::ready(result)
    }
}

impl DriverSpec for Finite {
    fn build(&self, _ctx: &DriverContext) -> DriverBuild {
        DriverBuild::driver(FiniteDriver { left: self.reads })
    }
}

fn with_finite(restart: RestartType) -> Config {
    let mut config = Config::from_toml_str(
        &format!("{BASE}\n[[sensors]]\nid = \"steady\"\nlatency = [\"10ms\", \"10ms\"]\nerror_rate = 0.0\n")
            .replace("seed = 11", "seed = 11\nrounds = 6"),
        "test.toml",
    )
    .unwrap();
    let mut spec: SensorSpec = config.sensors[0].clone();
    spec.id = "finite".into();
    spec.driver = Arc::new(Finite { reads: 2 });
    spec.policy.restart = restart;
    config.sensors.push(spec);
    config
}

/// OTP restart types on a normal exit (a source exhausted after 2 reads, in round 3): a
/// permanent sensor is restarted (and exhausted again in round 6, as the run ends), a transient
/// or temporary one only stops.
#[actix_rt::test]
async fn normal_exit_restarts_only_permanent_sensors() {
    tokio::time::pause();
    let permanent = run_config(with_finite(RestartType::Permanent)).await;
    assert_eq!(
        permanent.journal(),
        [
            "finite stopped (exhausted)",
            "finite restart_scheduled in 200ms #0",
            "finite restarted #1",
            "finite stopped (exhausted)",
            "finite restart_scheduled in 200ms #1",
        ]
    );
    for restart in [RestartType::Transient, RestartType::Temporary] {
        let out = run_config(with_finite(restart)).await;
        assert_eq!(out.journal(), ["finite stopped (exhausted)"], "{restart}");
        assert_eq!(out.sensor("finite").state, "stopped");
        assert_eq!(out.sensor("finite").count, 2);
        assert_eq!(out.summary.rounds, 6, "the other sensor keeps the run going");
    }
}

/// OTP restart types on a failure: transient restarts like permanent; temporary never restarts.
#[actix_rt::test]
async fn failure_restarts_transient_but_not_temporary() {
    tokio::time::pause();
    let toml = |restart: &str| {
        sensors(&format!(
            "restart = \"{restart}\"\nfaults = [{{ round = 2, fault = \"fatal\", sensor = \"temperature-3\" }}]"
        ))
        .replace("seed = 11", "seed = 11\nrounds = 4")
    };
    let transient = run_toml(&toml("transient")).await;
    assert_eq!(transient.sensor("temperature-3").restarts, 1);
    assert_eq!(transient.sensor("temperature-3").state, "running");
    let temporary = run_toml(&toml("temporary")).await;
    assert_eq!(
        temporary.journal(),
        [
            "temperature-3 failed (fatal: injected fatal error in round 2)",
            "temperature-3 stopped (temporary: not restarted)",
        ]
    );
    assert_eq!(temporary.sensor("temperature-3").state, "stopped");
    assert_eq!(temporary.summary.reads.unavailable, 2);
}

fn group(strategy: &str, max_restarts: u32, faults: &str) -> String {
    format!(
        r#"{BASE}
[[sensors]]
id = "outside"
latency = ["100ms", "100ms"]
error_rate = 0.0
[[sensors]]
name = "bus"
count = 3
group = "bus-a"
latency = ["100ms", "100ms"]
error_rate = 0.0
faults = [{faults}]
[[groups]]
name = "bus-a"
strategy = "{strategy}"
max_restarts = {max_restarts}
within = "1m"
"#
    )
    .replace("seed = 11", "seed = 11\nrounds = 5")
}

/// one_for_all: the failure of bus-2 stops and restarts all three members of its group, and
/// leaves the sensor outside the group alone.
#[actix_rt::test]
async fn one_for_all_restarts_the_siblings() {
    tokio::time::pause();
    let out = run_toml(&group(
        "one_for_all",
        3,
        "{ round = 2, fault = \"fatal\", sensor = \"bus-2\" }",
    ))
    .await;
    assert_eq!(
        out.journal(),
        [
            "bus-2 failed (fatal: injected fatal error in round 2)",
            "bus-1 stopped (one_for_all: restarting with bus-2)",
            "bus-3 stopped (one_for_all: restarting with bus-2)",
            "bus-1 restart_scheduled in 200ms #0",
            "bus-2 restart_scheduled in 200ms #0",
            "bus-3 restart_scheduled in 200ms #0",
            "bus-1 restarted #1",
            "bus-2 restarted #1",
            "bus-3 restarted #1",
        ]
    );
    let restarts: Vec<u32> = out.summary.sensors.iter().map(|s| s.restarts).collect();
    assert_eq!(restarts, [0, 1, 1, 1]);
    assert_eq!(out.read_in(3), ["outside", "bus-1", "bus-2", "bus-3"]);
    // The journal opens with the first starts, group by group: the configured group, then the
    // shard of the ungrouped sensor.
    let started: Vec<&str> = out
        .events
        .iter()
        .take(4)
        .map(|e| e.sensor.as_deref().unwrap())
        .collect();
    assert!(out.events[..4].iter().all(|e| e.event == "started"), "{:?}", out.events);
    assert_eq!(started, ["bus-1", "bus-2", "bus-3", "outside"]);
}

/// OTP's rule for temporary children: a temporary sibling of one_for_all's restart is stopped
/// and not restarted; the others restart together. The journal says which window and attempt.
#[actix_rt::test]
async fn one_for_all_stops_a_temporary_sibling_for_good() {
    tokio::time::pause();
    let mut text = group("one_for_all", 3, "{ round = 2, fault = \"fatal\", sensor = \"bus-2\" }");
    text += r#"
[[sensors]]
id = "scratch"
group = "bus-a"
restart = "temporary"
latency = ["100ms", "100ms"]
error_rate = 0.0
"#;
    let out = run_toml(&text).await;
    assert_eq!(
        out.journal(),
        [
            "bus-2 failed (fatal: injected fatal error in round 2)",
            "bus-1 stopped (one_for_all: restarting with bus-2)",
            "bus-3 stopped (one_for_all: restarting with bus-2)",
            "scratch stopped (one_for_all: stopped with bus-2; temporary: not restarted)",
            "bus-1 restart_scheduled in 200ms #0",
            "bus-2 restart_scheduled in 200ms #0",
            "bus-3 restart_scheduled in 200ms #0",
            "bus-1 restarted #1",
            "bus-2 restarted #1",
            "bus-3 restarted #1",
        ]
    );
    assert_eq!(out.sensor("scratch").state, "stopped");
    assert_eq!(out.read_in(3), ["outside", "bus-1", "bus-2", "bus-3"]);
    // Every event of the group's members names the group, and the restart says the group's
    // window: the first of the 3 it allows.
    let scheduled: Vec<_> = out.events.iter().filter(|e| e.event == "restart_scheduled").collect();
    assert!(scheduled
        .iter()
        .all(|e| e.group.as_deref() == Some("bus-a") && e.round == 2));
    assert!(scheduled
        .iter()
        .all(|e| (e.attempt, e.window, e.max_restarts) == (Some(1), Some(1), Some(3))));
}

/// rest_for_one: the failure of bus-2 restarts bus-2 and the later bus-3, not the earlier bus-1.
#[actix_rt::test]
async fn rest_for_one_restarts_only_the_later_siblings() {
    tokio::time::pause();
    let out = run_toml(&group(
        "rest_for_one",
        3,
        "{ round = 2, fault = \"fatal\", sensor = \"bus-2\" }",
    ))
    .await;
    assert_eq!(
        out.journal(),
        [
            "bus-2 failed (fatal: injected fatal error in round 2)",
            "bus-3 stopped (rest_for_one: restarting with bus-2)",
            "bus-2 restart_scheduled in 200ms #0",
            "bus-3 restart_scheduled in 200ms #0",
            "bus-2 restarted #1",
            "bus-3 restarted #1",
        ]
    );
    let restarts: Vec<u32> = out.summary.sensors.iter().map(|s| s.restarts).collect();
    assert_eq!(restarts, [0, 0, 1, 1]);
}

/// Two members of a one_for_all group fail in the same round (bus-1 and bus-2, round 2): both
/// failures are journaled first, then the one restart of the whole group: bus-2 is not also
/// `stopped` by bus-1's restart (its actor is already gone), and its `failed` does not come after
/// the `restart_scheduled` of the restart it is part of. One restart, counted once.
#[actix_rt::test]
async fn failures_of_one_round_are_journaled_before_the_restart_they_cause() {
    tokio::time::pause();
    let faults =
        "{ round = 2, fault = \"fatal\", sensor = \"bus-1\" }, { round = 2, fault = \"fatal\", sensor = \"bus-2\" }";
    let out = run_toml(&group("one_for_all", 3, faults)).await;
    assert_eq!(
        out.journal(),
        [
            "bus-1 failed (fatal: injected fatal error in round 2)",
            "bus-2 failed (fatal: injected fatal error in round 2)",
            "bus-3 stopped (one_for_all: restarting with bus-1)",
            "bus-1 restart_scheduled in 200ms #0",
            "bus-2 restart_scheduled in 200ms #0",
            "bus-3 restart_scheduled in 200ms #0",
            "bus-1 restarted #1",
            "bus-2 restarted #1",
            "bus-3 restarted #1",
        ]
    );
    let restarts: Vec<u32> = out.summary.sensors.iter().map(|s| s.restarts).collect();
    assert_eq!(restarts, [0, 1, 1, 1]);
}

/// A temporary member that fails in the same round as a sibling of a one_for_all group stays
/// stopped, as its restart type says: it is settled before the sibling's restart, which takes
/// in only the members still running.
#[actix_rt::test]
async fn a_temporary_member_failing_with_a_sibling_stays_stopped() {
    tokio::time::pause();
    let toml = format!(
        r#"{BASE}
[[sensors]]
name = "bus"
count = 2
group = "bus-a"
latency = ["100ms", "100ms"]
error_rate = 0.0
faults = [{{ round = 2, fault = "fatal", sensor = "bus-1" }}]
[[sensors]]
id = "tmp"
group = "bus-a"
restart = "temporary"
latency = ["100ms", "100ms"]
error_rate = 0.0
faults = [{{ round = 2, fault = "fatal" }}]
[[groups]]
name = "bus-a"
strategy = "one_for_all"
"#
    )
    .replace("seed = 11", "seed = 11\nrounds = 4");
    let out = run_toml(&toml).await;
    assert_eq!(
        out.journal(),
        [
            "bus-1 failed (fatal: injected fatal error in round 2)",
            "tmp failed (fatal: injected fatal error in round 2)",
            "tmp stopped (temporary: not restarted)",
            "bus-2 stopped (one_for_all: restarting with bus-1)",
            "bus-1 restart_scheduled in 200ms #0",
            "bus-2 restart_scheduled in 200ms #0",
            "bus-1 restarted #1",
            "bus-2 restarted #1",
        ]
    );
    let states: Vec<String> = out.summary.sensors.to_vec().iter().map(|s| s.state.clone()).collect();
    assert_eq!(states, ["running", "running", "stopped"]);
}

/// Two members of a group fail in the round that makes the group escalate (bus-1 and bus-3,
/// round 2, rest_for_one, no restart allowed): both failures are journaled first; the restart
/// they call for is past the group's intensity, so no sibling is told it restarts: every member
/// is given up with the group, then the group escalates. Nothing of a member comes after.
#[actix_rt::test]
async fn no_member_event_follows_its_groups_escalation() {
    tokio::time::pause();
    let faults =
        "{ round = 2, fault = \"fatal\", sensor = \"bus-1\" }, { round = 2, fault = \"fatal\", sensor = \"bus-3\" }";
    let out = run_toml(&group("rest_for_one", 0, faults)).await;
    assert_eq!(
        out.journal(),
        [
            "bus-1 failed (fatal: injected fatal error in round 2)",
            "bus-3 failed (fatal: injected fatal error in round 2)",
            "bus-1 gave_up (group bus-a escalated: more than 0 restarts within 1m) #0",
            "bus-2 gave_up (group bus-a escalated: more than 0 restarts within 1m) #0",
            "bus-3 gave_up (group bus-a escalated: more than 0 restarts within 1m) #0",
            "bus-a escalated (more than 0 restarts within 1m)",
            "bus-a gave_up (escalated: more than 0 restarts within 1m) #0",
        ]
    );
    let states: Vec<String> = out.summary.sensors.to_vec().iter().map(|s| s.state.clone()).collect();
    assert_eq!(states, ["running", "given_up", "given_up", "given_up"]);
}

/// A group that exceeds its own intensity escalates; the root gives the group up, its sensors
/// are unavailable from then on, and the run goes on with the sensor outside the group.
#[actix_rt::test]
async fn group_escalates_and_is_given_up_while_the_run_goes_on() {
    tokio::time::pause();
    let faults =
        "{ round = 1, fault = \"fatal\", sensor = \"bus-1\" }, { round = 2, fault = \"fatal\", sensor = \"bus-3\" }";
    let out = run_toml(&group("one_for_one", 1, faults)).await;
    assert_eq!(
        out.journal(),
        [
            "bus-1 failed (fatal: injected fatal error in round 1)",
            "bus-1 restart_scheduled in 200ms #0",
            "bus-1 restarted #1",
            "bus-3 failed (fatal: injected fatal error in round 2)",
            "bus-1 gave_up (group bus-a escalated: more than 1 restarts within 1m) #1",
            "bus-2 gave_up (group bus-a escalated: more than 1 restarts within 1m) #0",
            "bus-3 gave_up (group bus-a escalated: more than 1 restarts within 1m) #0",
            "bus-a escalated (more than 1 restarts within 1m)",
            "bus-a gave_up (escalated: more than 1 restarts within 1m) #0",
        ]
    );
    let states: Vec<String> = out.summary.sensors.to_vec().iter().map(|s| s.state.clone()).collect();
    assert_eq!(states, ["running", "given_up", "given_up", "given_up"]);
    // The summary's tree: the group escalated, the shard of the sensor outside runs on, and
    // each sensor names its group.
    let groups: Vec<(&str, &str, bool, &str, u64)> = out
        .summary
        .groups
        .iter()
        .map(|g| {
            (
                g.name.as_str(),
                g.strategy.as_str(),
                g.shard,
                g.state.as_str(),
                g.sensors,
            )
        })
        .collect();
    assert_eq!(
        groups,
        [
            ("bus-a", "one_for_one", false, "escalated", 3),
            ("shard-1", "one_for_one", true, "running", 1)
        ]
    );
    let sensors = out.summary.sensors.to_vec();
    let membership: Vec<Option<&str>> = sensors.iter().map(|s| s.group.as_deref()).collect();
    assert_eq!(membership, [None, Some("bus-a"), Some("bus-a"), Some("bus-a")]);
    assert_eq!(out.summary.rounds, 5);
    for round in 3..=5 {
        assert_eq!(out.read_in(round), ["outside"], "round {round}");
    }
    assert_eq!(out.summary.reads.unavailable, 9);
}

/// The journal of a run with random faults (panics, hangs, fatal and transient errors, groups)
/// is the same, event for event, in two runs with the same seed and config.
#[actix_rt::test]
async fn journal_is_identical_across_two_seeded_runs() {
    tokio::time::pause();
    let toml = r#"
[collection]
interval = "500ms"
read_timeout = "400ms"
seed = 99
rounds = 60
[supervision]
max_restarts = 4
within = "5s"
backoff_min = "100ms"
backoff_max = "2s"
hung_after = 2
[[sensors]]
count = 6
latency = ["50ms", "450ms"]
panic_rate = 0.02
hang_rate = 0.02
fatal_rate = 0.02
[[sensors]]
name = "bus"
count = 3
group = "bus-a"
fatal_rate = 0.01
latency = ["50ms", "300ms"]
[[groups]]
name = "bus-a"
strategy = "rest_for_one"
max_restarts = 5
within = "10s"
"#;
    let first = run_toml(toml).await;
    let second = run_toml(toml).await;
    assert!(first.journal().len() > 20, "{:?}", first.journal());
    assert_eq!(first.journal(), second.journal());
    assert_eq!(first.summary.reads, second.summary.reads);
    assert_eq!(first.summary.sensors, second.summary.sensors);
}

/// The Akka IoT cases in one round: a sensor with no data yet (offline), a sensor whose actor
/// stopped, and a sensor slower than the deadline each get their own outcome, while the fourth
/// gets its reading; the stopped actor is then seen as a failure and restarted.
#[actix_rt::test]
async fn each_sensor_gets_its_own_outcome_in_a_round() {
    tokio::time::pause();
    let toml = format!(
        r#"{BASE}
[[sensors]]
id = "ready"
latency = ["100ms", "100ms"]
error_rate = 0.0
[[sensors]]
id = "no-data-yet"
latency = ["10ms", "10ms"]
offline_rate = 1.0
online_rate = 0.0
error_rate = 0.0
[[sensors]]
id = "stopped"
latency = ["10ms", "10ms"]
error_rate = 0.0
faults = [{{ round = 1, fault = "crash" }}]
[[sensors]]
id = "slow"
latency = ["2s", "2s"]
error_rate = 0.0
"#
    )
    .replace("seed = 11", "seed = 11\nrounds = 1");
    let out = run_toml(&toml).await;
    assert_eq!(out.read_in(1), ["ready"]);
    let r = &out.summary.reads;
    assert_eq!(
        (r.requested, r.ok, r.failed, r.timed_out, r.unavailable),
        (4, 1, 0, 1, 2)
    );
    assert_eq!(out.journal()[0], "stopped failed (stopped: mailbox closed)");
}

/// A normal exit (the simulated driver's scripted `exit`, as a source out of data): a permanent
/// sensor is restarted after it, a transient one stays stopped, and neither is a failure.
#[actix_rt::test]
async fn a_normal_exit_restarts_permanent_but_not_transient() {
    tokio::time::pause();
    let mut text = BASE.replace("seed = 11", "seed = 11\nrounds = 4");
    for restart in ["permanent", "transient"] {
        text += &format!(
            "[[sensors]]\nid = \"{restart}\"\nrestart = \"{restart}\"\nlatency = [\"100ms\", \"100ms\"]\nerror_rate = 0.0\nfaults = [{{ round = 2, fault = \"exit\" }}]\n"
        );
    }
    let out = run_toml(&text).await;
    assert_eq!(
        out.journal(),
        [
            "permanent stopped (exhausted)",
            "transient stopped (exhausted)",
            "permanent restart_scheduled in 200ms #0",
            "permanent restarted #1",
        ]
    );
    assert_eq!(
        (out.sensor("permanent").state.as_str(), out.sensor("permanent").restarts),
        ("running", 1)
    );
    assert_eq!(
        (out.sensor("transient").state.as_str(), out.sensor("transient").restarts),
        ("stopped", 0)
    );
    assert_eq!(out.read_in(3), ["permanent"]);
    assert_eq!(out.summary.reads.failed, 0);
}
