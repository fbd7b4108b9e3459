//! Dynamic children: sensors added and removed while a run goes on, through a `Control` taken
//! from the `Collector`. Each scenario runs on tokio's paused clock and positions its requests in
//! virtual time (rounds start every second, reads take 10 ms unless said otherwise), then checks
//! the exact per-round accounting, the files and the journal.

mod common;

use std::future::{pending, Future};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use sensor_actors::report::ReadCounts;
use sensor_actors::story::{GapReason, Story};
use sensor_actors::streams::{Delivery, RoundSummary};
use sensor_actors::{Clock, Collector, Control, ControlError, Summary};
use serde::Deserialize;
use tokio::time::Instant;

/// Collection and supervision shared by the scenarios: 1 s rounds, 10 ms reads that never fail,
/// a fixed 200 ms backoff.
const BASE: &str = r#"
[collection]
interval = "1s"
read_timeout = "500ms"
rounds = 5
seed = 3
[supervision]
backoff_min = "200ms"
backoff_max = "200ms"
"#;

/// Three ungrouped sensors, `temperature-1` to `temperature-3`.
const THREE: &str = "[[sensors]]\ncount = 3\nlatency = [\"10ms\", \"10ms\"]\nerror_rate = 0.0\n";

/// The body of an entry of simulated sensors that never fail, with `extra` keys.
fn entry(extra: &str) -> String {
    format!("latency = [\"10ms\", \"10ms\"]\nerror_rate = 0.0\n{extra}")
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
struct Event {
    round: u64,
    sensor: Option<String>,
    group: Option<String>,
    event: String,
    cause: Option<String>,
    delay_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct Line {
    round: u64,
    sensor: String,
}

/// What a run left: its summary, its files, and each round's read counts as published.
struct Run {
    /// The `--out` folder, kept for the stories.
    dir: tempfile::TempDir,
    summary: Summary,
    events: Vec<Event>,
    readings: Vec<Line>,
    anomalies: Vec<Line>,
    rounds: Vec<ReadCounts>,
}

impl Run {
    /// Reads requested in each round, from round 1.
    fn requested(&self) -> Vec<u64> {
        self.rounds.iter().map(|r| r.requested).collect()
    }

    /// The rounds in which `sensor` gave a reading.
    fn read_rounds(&self, sensor: &str) -> Vec<u64> {
        self.readings
            .iter()
            .filter(|l| l.sensor == sensor)
            .map(|l| l.round)
            .collect()
    }

    /// The journal without the first `started` lines, one compact line per event:
    /// `round who event (cause)`.
    fn journal(&self) -> Vec<String> {
        self.events
            .iter()
            .filter(|e| e.event != "started")
            .map(|e| {
                let who = e.sensor.as_ref().or(e.group.as_ref()).unwrap();
                match &e.cause {
                    Some(cause) => format!("{} {who} {} ({cause})", e.round, e.event),
                    None => format!("{} {who} {}", e.round, e.event),
                }
            })
            .collect()
    }

    /// `(id, state, count)` of every sensor of the summary, in order.
    fn states(&self) -> Vec<(String, String, u64)> {
        let sensors = self.summary.sensors.iter();
        sensors.map(|s| (s.id.clone(), s.state.clone(), s.count)).collect()
    }
}

/// Records every round's read counts.
struct Rounds(Arc<Mutex<Vec<ReadCounts>>>);

impl Actor for Rounds {
    type Context = Context<Self>;
}

impl Handler<RoundSummary> for Rounds {
    type Result = ();
    fn handle(&mut self, round: RoundSummary, _: &mut Context<Self>) {
        let mut rounds = self.0.lock().unwrap();
        assert_eq!(round.round as usize, rounds.len() + 1, "rounds in order");
        rounds.push(round.reads);
    }
}

/// Runs `toml` on `clock` with the files and a round recorder attached, while `script` runs
/// beside it with the run's `Control` and the instant the run started; checks the accounting
/// invariants of every run, and returns what the run left and what the script returned.
async fn run_on<F, Fut, T>(clock: Clock, toml: &str, script: F) -> (Run, T)
where
    F: FnOnce(Control, Instant) -> Fut,
    Fut: Future<Output = T>,
{
    let dir = tempfile::tempdir().unwrap();
    let rounds = Arc::new(Mutex::new(Vec::new()));
    let recorder = Rounds(rounds.clone()).start().recipient();
    let collector = Collector::new()
        .clock(clock)
        .out(dir.path())
        .unwrap()
        .subscribe_with(recorder, Delivery::lossless());
    let control = collector.control();
    let config = collector.parse(toml, "test.toml").unwrap();
    let (summary, out) = futures::join!(
        collector.run(config, pending()),
        script(control.clone(), Instant::now())
    );
    let summary = summary.unwrap();
    let rounds = rounds.lock().unwrap().clone();
    // Every read accounted for, round by round and over the run; the files agree.
    for r in rounds.iter().chain([&summary.reads]) {
        assert_eq!(r.requested, r.ok + r.failed + r.timed_out + r.unavailable, "{r:?}");
    }
    assert_eq!(summary.reads.requested, rounds.iter().map(|r| r.requested).sum::<u64>());
    assert_eq!(summary.reads.ok, rounds.iter().map(|r| r.ok).sum::<u64>());
    let run = Run {
        events: common::read_lines(&dir.path().join("events.jsonl")),
        readings: common::read_lines(&dir.path().join("readings.jsonl")),
        anomalies: common::read_lines(&dir.path().join("anomalies.jsonl")),
        dir,
        rounds,
        summary,
    };
    assert_eq!(run.readings.len() as u64, run.summary.reads.ok);
    assert_eq!(
        run.summary.sensors.iter().map(|s| s.count).sum::<u64>(),
        run.summary.reads.ok
    );
    for (kind, count) in &run.summary.events {
        let journaled = run.events.iter().filter(|e| e.event == *kind).count() as u64;
        assert_eq!(journaled, *count, "{kind}");
    }
    (run, out)
}

/// [`run_on`] on the wall clock (paused by the calling test).
async fn run_with<F, Fut, T>(toml: &str, script: F) -> (Run, T)
where
    F: FnOnce(Control, Instant) -> Fut,
    Fut: Future<Output = T>,
{
    run_on(Clock::Wall, toml, script).await
}

/// `ms` milliseconds after `t0`, in virtual time.
async fn at(t0: Instant, ms: u64) {
    tokio::time::sleep_until(t0 + Duration::from_millis(ms)).await;
}

/// Two sensors added at 1.5 s (between rounds 2 and 3) are read from round 3 on: rounds 1-2
/// request 3 reads, rounds 3-5 request 5; their readings are in readings.jsonl from round 3,
/// their anomalies (a range they can never meet) in anomalies.jsonl, and the summary lists them
/// after the configured sensors with their counts. The journal says `added` for each, in round
/// 2, naming who asked, and no `started`.
#[actix_rt::test]
async fn sensors_added_mid_run_are_read_from_the_next_round() {
    tokio::time::pause();
    let toml = format!("{BASE}{THREE}");
    let (run, added) = run_with(&toml, |control, t0| async move {
        at(t0, 1500).await;
        let extra = entry("name = \"extra\"\ncount = 2\nrange = [0.0, 1.0]");
        control.add_toml("test", &extra).await
    })
    .await;
    let added = added.unwrap();
    assert_eq!(added.sensors, [Arc::from("extra-1"), Arc::from("extra-2")]);
    assert_eq!(added.first_round, 3);
    assert_eq!(run.requested(), [3, 3, 5, 5, 5]);
    assert_eq!(run.summary.reads.requested, 21);
    assert_eq!((run.summary.reads.ok, run.summary.reads.unavailable), (21, 0));
    assert_eq!(run.read_rounds("extra-1"), [3, 4, 5]);
    assert_eq!(run.read_rounds("extra-2"), [3, 4, 5]);
    assert_eq!(run.read_rounds("temperature-2"), [1, 2, 3, 4, 5]);
    let out_of_range: Vec<(u64, &str)> = run
        .anomalies
        .iter()
        .filter(|a| a.sensor.starts_with("extra"))
        .map(|a| (a.round, a.sensor.as_str()))
        .collect();
    assert_eq!(
        out_of_range,
        [
            (3, "extra-1"),
            (3, "extra-2"),
            (4, "extra-1"),
            (4, "extra-2"),
            (5, "extra-1"),
            (5, "extra-2")
        ]
    );
    let running = |id: &str, count| (id.to_string(), "running".to_string(), count);
    assert_eq!(
        run.states(),
        [
            running("temperature-1", 5),
            running("temperature-2", 5),
            running("temperature-3", 5),
            running("extra-1", 3),
            running("extra-2", 3)
        ]
    );
    assert_eq!(run.summary.sensors.get(3).unwrap().anomalies, 3);
    assert_eq!(
        run.journal(),
        [
            "2 extra-1 added (requested by test)",
            "2 extra-2 added (requested by test)"
        ]
    );
    assert_eq!(run.summary.events["started"], 3);
    assert_eq!(run.summary.events["added"], 2);
    assert_eq!(run.summary.groups.iter().map(|g| g.sensors).sum::<u64>(), 5);
    // Its story: not started before it was added, read from then on.
    let story = Story::read(run.dir.path(), "extra-1").unwrap();
    assert_eq!(
        story.end.text,
        "running when the run ended (round 5), since it was added in round 2; last reading in round 5"
    );
    assert_eq!(
        story.counts.without_reading.into_iter().collect::<Vec<_>>(),
        [(GapReason::NotStarted, 2)]
    );
}

/// An added sensor is supervised like the others: its panic in round 4 is journaled `failed`,
/// it is restarted after its 200 ms backoff, and read again from round 5; round 4 counts it
/// failed.
#[actix_rt::test]
async fn an_added_sensor_that_fails_is_restarted() {
    tokio::time::pause();
    let toml = format!("{BASE}{THREE}").replace("rounds = 5", "rounds = 6");
    let (run, added) = run_with(&toml, |control, t0| async move {
        at(t0, 1500).await;
        let late = entry("id = \"late\"\nfaults = [{ round = 4, fault = \"panic\" }]");
        control.add_toml("test", &late).await
    })
    .await;
    assert_eq!(added.unwrap().first_round, 3);
    assert_eq!(run.requested(), [3, 3, 4, 4, 4, 4]);
    assert_eq!(run.rounds[3].failed, 1);
    assert_eq!(run.read_rounds("late"), [3, 5, 6]);
    assert_eq!(
        run.journal(),
        [
            "2 late added (requested by test)",
            "4 late failed (panic: injected panic in round 4)",
            "4 late restart_scheduled",
            "4 late restarted",
        ]
    );
    let late = &run.summary.sensors.get(3).unwrap();
    assert_eq!(
        (late.id.as_str(), late.state.as_str(), late.restarts),
        ("late", "running", 1)
    );
}

/// A sensor removed at 2.5 s (after round 3) is not requested from round 4 on; the summary keeps
/// its three readings with the state `removed`; the journal says `removed` in round 3, naming
/// who asked, and nothing more about it.
#[actix_rt::test]
async fn a_removed_sensor_is_no_longer_requested_and_keeps_its_counts() {
    tokio::time::pause();
    let toml = format!("{BASE}{THREE}");
    let (run, removed) = run_with(&toml, |control, t0| async move {
        at(t0, 2500).await;
        control.remove("live view", "temperature-2").await
    })
    .await;
    let removed = removed.unwrap();
    assert_eq!((&*removed.sensor, removed.last_round), ("temperature-2", 3));
    assert_eq!(run.requested(), [3, 3, 3, 2, 2]);
    assert_eq!(run.summary.reads.unavailable, 0);
    assert_eq!(run.read_rounds("temperature-2"), [1, 2, 3]);
    assert_eq!(run.states()[1], ("temperature-2".to_string(), "removed".to_string(), 3));
    assert_eq!(run.journal(), ["3 temperature-2 removed (requested by live view)"]);
    assert_eq!(run.summary.events["removed"], 1);
    let story = Story::read(run.dir.path(), "temperature-2").unwrap();
    assert_eq!(
        story.end.text,
        "removed in round 3: requested by live view; last reading in round 3"
    );
    assert_eq!(
        story.counts.without_reading.into_iter().collect::<Vec<_>>(),
        [(GapReason::Removed, 2)]
    );
}

/// A sensor removed as the run starts, before its group has started it: its journal is
/// `started` then `removed` (the group journals the removal after the member's start, whoever
/// asked first), never a `removed` followed by a `started`; it is never read.
#[actix_rt::test]
async fn a_sensor_removed_before_its_group_started_it_is_journaled_started_then_removed() {
    tokio::time::pause();
    let toml = format!("{BASE}{THREE}");
    let (run, removed) = run_with(&toml, |control, _| async move {
        control.remove("test", "temperature-2").await
    })
    .await;
    assert_eq!(removed.unwrap().last_round, 0);
    let own: Vec<(u64, &str)> = run
        .events
        .iter()
        .filter(|e| e.sensor.as_deref() == Some("temperature-2"))
        .map(|e| (e.round, e.event.as_str()))
        .collect();
    assert_eq!(own, [(0, "started"), (0, "removed")]);
    assert_eq!(run.requested(), [2, 2, 2, 2, 2]);
    assert!(run.read_rounds("temperature-2").is_empty());
    assert_eq!(run.states()[1], ("temperature-2".to_string(), "removed".to_string(), 0));
}

/// A sensor added to a group that escalated and whose restart the root has scheduled is
/// journaled `restart_scheduled` after `added`, as its other members were, and starts with them
/// when the restart is due. bus (intensity 0) escalates on bus-1's fatal error in round 2; the root
/// restarts it after 600 ms; bus-3 is added at 1.2 s. A slow ungrouped sensor keeps round 2 in
/// flight until 1.4 s: a run of 2 rounds ends before the restart, with bus-3 `restarting`, as
/// its journal ends.
#[actix_rt::test]
async fn a_sensor_added_to_a_group_waiting_for_its_restart_is_journaled_restart_scheduled() {
    tokio::time::pause();
    let toml = |rounds: u32| {
        format!(
            "{}[root]\nmax_restarts = 1\nbackoff_min = \"600ms\"\nbackoff_max = \"600ms\"\n\
             [[groups]]\nname = \"bus\"\nmax_restarts = 0\n\
             [[sensors]]\nname = \"bus\"\ncount = 2\ngroup = \"bus\"\n{}\n\
             [[sensors]]\nid = \"slow\"\nlatency = [\"400ms\", \"400ms\"]\nerror_rate = 0.0\n",
            BASE.replace("rounds = 5", &format!("rounds = {rounds}")),
            entry("faults = [{ round = 2, fault = \"fatal\", sensor = \"bus-1\" }]")
        )
    };
    let add = |control: Control, t0| async move {
        at(t0, 1200).await;
        control
            .add_toml("test", &entry("id = \"bus-3\"\ngroup = \"bus\""))
            .await
    };
    let bus_3 = |run: &Run| -> Vec<String> {
        let journal = run.journal().into_iter();
        journal.filter(|l| l.contains(" bus-3 ")).collect()
    };
    let (run, added) = run_with(&toml(5), add).await;
    assert_eq!(added.unwrap().first_round, 3);
    assert_eq!(
        bus_3(&run),
        [
            "2 bus-3 added (requested by test)",
            "2 bus-3 restart_scheduled",
            "2 bus-3 restarted"
        ]
    );
    let scheduled = run.events.iter().filter(|e| e.event == "restart_scheduled");
    let delays: Vec<(String, Option<u64>)> = scheduled
        .map(|e| (e.sensor.clone().unwrap_or_default(), e.delay_ms))
        .collect();
    // The group and its members as bus-1's 10 ms read ends (at 1.011 s: a timer fires on the
    // millisecond after its deadline), bus-3 at 1.2 s: the 411 ms left of the 600.
    assert_eq!(
        delays,
        [
            (String::new(), Some(600)),
            ("bus-1".into(), Some(600)),
            ("bus-2".into(), Some(600)),
            ("bus-3".into(), Some(411))
        ]
    );
    assert_eq!(run.read_rounds("bus-3"), [3, 4, 5]);

    let (run, _) = run_with(&toml(2), add).await;
    assert_eq!(
        bus_3(&run),
        ["2 bus-3 added (requested by test)", "2 bus-3 restart_scheduled"]
    );
    assert_eq!(run.states()[3], ("bus-3".to_string(), "restarting".to_string(), 0));
}

/// Reads take 800 ms; the sensor is removed at 2.3 s, while its read of round 3 (2.0-2.8 s) is
/// in flight: that read is counted once, `unavailable` (its answer, due at 2.8 s, is never
/// counted), and round 4 does not request it.
#[actix_rt::test]
async fn removing_a_sensor_whose_read_is_in_flight_counts_that_read_once() {
    tokio::time::pause();
    let toml = format!("{BASE}{THREE}")
        .replace("\"10ms\", \"10ms\"", "\"800ms\", \"800ms\"")
        .replace("read_timeout = \"500ms\"", "read_timeout = \"900ms\"");
    let (run, removed) = run_with(&toml, |control, t0| async move {
        at(t0, 2300).await;
        control.remove("test", "temperature-2").await
    })
    .await;
    assert_eq!(removed.unwrap().last_round, 3);
    assert_eq!(run.requested(), [3, 3, 3, 2, 2]);
    let round3 = run.rounds[2];
    assert_eq!((round3.ok, round3.unavailable, round3.timed_out), (2, 1, 0));
    assert_eq!(run.summary.reads.unavailable, 1);
    assert_eq!(run.read_rounds("temperature-2"), [1, 2]);
    assert_eq!(run.journal(), ["3 temperature-2 removed (requested by test)"]);
}

/// The same removal on the virtual clock, where the group keeps a simulated answer until it is
/// due instead of waiting on a timer: the kept answer of the removed sensor (due at 2.8 s) is
/// dropped with it, so its read of round 3 is counted once, `unavailable`, and never `ok`.
#[actix_rt::test]
async fn removing_a_sensor_whose_answer_is_kept_until_due_counts_that_read_once() {
    tokio::time::pause();
    let toml = format!("{BASE}{THREE}")
        .replace("\"10ms\", \"10ms\"", "\"800ms\", \"800ms\"")
        .replace("read_timeout = \"500ms\"", "read_timeout = \"900ms\"");
    let (run, removed) = run_on(Clock::virtual_from_default(), &toml, |control, t0| async move {
        at(t0, 2300).await;
        control.remove("test", "temperature-2").await
    })
    .await;
    assert_eq!(removed.unwrap().last_round, 3);
    assert_eq!(run.requested(), [3, 3, 3, 2, 2]);
    let round3 = run.rounds[2];
    assert_eq!((round3.ok, round3.unavailable, round3.timed_out), (2, 1, 0));
    assert_eq!(run.summary.reads.requested, run.summary.reads.ok + 1);
    assert_eq!(run.read_rounds("temperature-2"), [1, 2]);
}

/// Refused requests change nothing and say why in one line that starts with the requester:
/// before the run, a duplicate id (one of the run's, or one an entry makes twice over a
/// configured sensor), a group that is not configured, a bad value, an unknown key or driver,
/// bad TOML, an unknown id, an id already removed, and after the run.
#[actix_rt::test]
async fn refused_requests_say_why_and_change_nothing() {
    tokio::time::pause();
    let toml = format!("{BASE}{THREE}");
    let collector = Collector::new();
    let early = collector.control();
    let refused = early.add_toml("http", "id = \"x\"").await.unwrap_err();
    assert_eq!(refused.to_string(), "http: run: not started yet");
    assert!(matches!(refused, ControlError::NotStarted { .. }));
    let (run, errors) = run_with(&toml, |control, t0| async move {
        at(t0, 1500).await;
        let mut errors = Vec::new();
        for text in [
            "id = \"temperature-1\"",
            "count = 3",
            "id = \"x\"\ngroup = \"nope\"",
            "id = \"x\"\nlatency = [\"500ms\", \"100ms\"]",
            "id = \"x\"\ndriver = \"laser\"",
            "id = \"x\"\nlatncy = 1",
            "id = ",
        ] {
            errors.push(control.add_toml("http", text).await.unwrap_err());
        }
        errors.push(control.remove("http", "nope").await.unwrap_err());
        control.remove("http", "temperature-3").await.unwrap();
        errors.push(control.remove("http", "temperature-3").await.unwrap_err());
        (control, errors)
    })
    .await;
    let (control, errors) = errors;
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(lines[0], "http: sensor.id: duplicate sensor id \"temperature-1\"");
    assert_eq!(lines[1], "http: sensor.id: duplicate sensor id \"temperature-1\"");
    assert_eq!(lines[2], "http: sensor.group: no [[groups]] entry is named \"nope\"");
    assert_eq!(lines[3], "http: sensor.latency: min 500ms is greater than max 100ms");
    assert_eq!(
        lines[4],
        "http: sensor.driver: expected one of simulated, replay, system, mqtt, got \"laser\""
    );
    assert!(
        lines[5].starts_with("http: sensor.latncy: unknown field `latncy`, expected one of"),
        "{}",
        lines[5]
    );
    assert!(
        lines[6].starts_with("http: sensor: ") && lines[6].ends_with("(line 1)"),
        "{}",
        lines[6]
    );
    assert_eq!(lines[7], "http: id: no sensor \"nope\" in the run");
    assert_eq!(lines[8], "http: id: sensor \"temperature-3\" was removed in round 2");
    assert!(matches!(&errors[0], ControlError::Duplicate { id, .. } if id == "temperature-1"));
    assert!(matches!(&errors[2], ControlError::Invalid(_)));
    assert!(matches!(
        &errors[8],
        ControlError::UnknownSensor {
            removed_in: Some(2),
            ..
        }
    ));
    // Nothing was added: only the removal shows.
    assert_eq!(run.requested(), [3, 3, 2, 2, 2]);
    assert_eq!(run.journal(), ["2 temperature-3 removed (requested by http)"]);
    let ended = control.add_toml("http", "id = \"x\"").await.unwrap_err();
    assert_eq!(
        ended.to_string(),
        "http: run: ended; sensors can no longer be added or removed"
    );
    let ended = control.remove("http", "temperature-1").await.unwrap_err();
    assert!(matches!(ended, ControlError::Ended { .. }));
}

/// On a virtual clock, an entry whose driver reads the real world (`system`) is refused, as a
/// configuration with one is.
#[actix_rt::test]
async fn a_real_world_driver_is_refused_on_a_virtual_clock() {
    tokio::time::pause();
    let toml = format!("{BASE}{THREE}");
    let clock = Clock::virtual_from_default();
    let (run, refused) = run_on(clock, &toml, |control, t0| async move {
        at(t0, 1500).await;
        let text = "id = \"cpu\"\ndriver = \"system\"\nmetric = \"cpu_pressure\"";
        control.add_toml("mqtt", text).await
    })
    .await;
    assert_eq!(
        refused.unwrap_err().to_string(),
        "mqtt: sensor.driver: sensor \"cpu\" (kind \"cpu_pressure\") reads the real world, which a virtual clock cannot simulate"
    );
    assert_eq!(run.requested(), [3, 3, 3, 3, 3]);
}

/// A sensor added to a `one_for_all` group is one of its members: when `bus-1` fails in round
/// 4, the new `bus-3` is stopped and restarted with `bus-1` and `bus-2`, after the same delay.
#[actix_rt::test]
async fn a_member_added_to_a_one_for_all_group_restarts_with_the_others() {
    tokio::time::pause();
    let toml = format!(
        "{BASE}[[groups]]\nname = \"bus\"\nstrategy = \"one_for_all\"\nmax_restarts = 3\nwithin = \"1m\"\n\
         [[sensors]]\nname = \"bus\"\ncount = 2\ngroup = \"bus\"\n{}\n",
        entry("faults = [{ round = 4, fault = \"fatal\", sensor = \"bus-1\" }]")
    );
    let (run, added) = run_with(&toml, |control, t0| async move {
        at(t0, 1500).await;
        control
            .add_toml("test", &entry("id = \"bus-3\"\ngroup = \"bus\""))
            .await
    })
    .await;
    assert_eq!(added.unwrap().first_round, 3);
    assert_eq!(run.requested(), [2, 2, 3, 3, 3]);
    assert_eq!(
        run.journal(),
        [
            "2 bus-3 added (requested by test)",
            "4 bus-1 failed (fatal: injected fatal error in round 4)",
            "4 bus-2 stopped (one_for_all: restarting with bus-1)",
            "4 bus-3 stopped (one_for_all: restarting with bus-1)",
            "4 bus-1 restart_scheduled",
            "4 bus-2 restart_scheduled",
            "4 bus-3 restart_scheduled",
            "4 bus-1 restarted",
            "4 bus-2 restarted",
            "4 bus-3 restarted",
        ]
    );
    assert!(run
        .events
        .iter()
        .filter(|e| e.sensor.as_deref() == Some("bus-3"))
        .all(|e| e.group.as_deref() == Some("bus")));
    let bus3 = &run.summary.sensors.get(2).unwrap();
    assert_eq!(
        (bus3.id.as_str(), bus3.group.as_deref(), bus3.restarts),
        ("bus-3", Some("bus"), 1)
    );
    assert_eq!(run.read_rounds("bus-3"), [3, 4, 5]);
}

/// A removed sensor's id can be added again: it is a new sensor, which starts fresh (its own
/// statistics, a row of its own in the summary after the removed one's), read from the round
/// after it was added.
#[actix_rt::test]
async fn a_removed_id_added_again_starts_fresh() {
    tokio::time::pause();
    let toml = format!("{BASE}{THREE}");
    let (run, (removed, added)) = run_with(&toml, |control, t0| async move {
        at(t0, 1500).await;
        let removed = control.remove("test", "temperature-2").await.unwrap();
        at(t0, 2500).await;
        let added = control
            .add_toml("test", &entry("id = \"temperature-2\""))
            .await
            .unwrap();
        (removed, added)
    })
    .await;
    assert_eq!((removed.last_round, added.first_round), (2, 4));
    assert_eq!(run.requested(), [3, 3, 2, 3, 3]);
    assert_eq!(run.read_rounds("temperature-2"), [1, 2, 4, 5]);
    let states = run.states();
    assert_eq!(states[1], ("temperature-2".into(), "removed".into(), 2));
    assert_eq!(states[3], ("temperature-2".into(), "running".into(), 2));
    assert_eq!(
        run.journal(),
        [
            "2 temperature-2 removed (requested by test)",
            "3 temperature-2 added (requested by test)"
        ]
    );
}

/// A `[[groups]]` entry that no configured sensor names has no supervisor until a sensor is
/// added to it; then it is started (and listed in the summary's groups); likewise the shard of a
/// run whose configured sensors are all grouped.
#[actix_rt::test]
async fn adding_to_a_group_without_members_starts_it() {
    tokio::time::pause();
    let toml = format!(
        "{BASE}[[groups]]\nname = \"bus\"\n[[groups]]\nname = \"later\"\nstrategy = \"rest_for_one\"\n\
         [[sensors]]\nname = \"bus\"\ncount = 2\ngroup = \"bus\"\n{}\n",
        entry("")
    );
    let (run, ()) = run_with(&toml, |control, t0| async move {
        at(t0, 1500).await;
        let added = control
            .add_toml("test", &entry("id = \"g-1\"\ngroup = \"later\""))
            .await;
        assert_eq!(added.unwrap().first_round, 3);
        let added = control.add_toml("test", &entry("id = \"loose\"")).await;
        assert_eq!(added.unwrap().first_round, 3);
    })
    .await;
    assert_eq!(run.requested(), [2, 2, 4, 4, 4]);
    assert_eq!(run.read_rounds("g-1"), [3, 4, 5]);
    assert_eq!(run.read_rounds("loose"), [3, 4, 5]);
    let groups: Vec<(&str, &str, bool, u64)> = run
        .summary
        .groups
        .iter()
        .map(|g| (g.name.as_str(), g.strategy.as_str(), g.shard, g.sensors))
        .collect();
    assert_eq!(
        groups,
        [
            ("bus", "one_for_one", false, 2),
            ("later", "rest_for_one", false, 1),
            ("shard-1", "one_for_one", true, 1)
        ]
    );
    assert_eq!(run.journal()[0], "2 g-1 added (requested by test)");
    assert_eq!(
        run.events.iter().find(|e| e.event == "added").unwrap().group.as_deref(),
        Some("later")
    );
}

/// On the virtual clock, the same changes at the same virtual times (with random failures and
/// restarts) give the same summary and the same journal, event for event.
#[actix_rt::test]
async fn a_run_with_changes_is_reproducible_on_the_virtual_clock() {
    tokio::time::pause();
    let toml = format!("{BASE}{THREE}").replace("error_rate = 0.0", "error_rate = 0.3\nfatal_rate = 0.1");
    let mut runs = Vec::new();
    for _ in 0..2 {
        let (run, ()) = run_on(Clock::virtual_from_default(), &toml, |control, t0| async move {
            at(t0, 1500).await;
            let extra = "name = \"extra\"\ncount = 4\nerror_rate = 0.3\nfatal_rate = 0.1";
            control.add_toml("test", extra).await.unwrap();
            at(t0, 3500).await;
            control.remove("test", "extra-2").await.unwrap();
        })
        .await;
        runs.push(run);
    }
    assert_eq!(runs[0].summary, runs[1].summary);
    assert_eq!(runs[0].events, runs[1].events);
    assert_eq!(runs[0].requested(), [3, 3, 7, 7, 6]);
    assert!(runs[0].summary.reads.failed > 0);
}

/// Wakes `notify` when round `at` is reported.
struct OnRound {
    at: u64,
    notify: Arc<tokio::sync::Notify>,
}

impl Actor for OnRound {
    type Context = Context<Self>;
}

impl Handler<RoundSummary> for OnRound {
    type Result = ();
    fn handle(&mut self, round: RoundSummary, _: &mut Context<Self>) {
        if round.round == self.at {
            self.notify.notify_one();
        }
    }
}

/// On three arbiters (real time: the other arbiters keep their own clocks), with 30 ungrouped
/// sensors spread over three shards and a group of 6: five ungrouped sensors and two group
/// members added, one of each removed, while rounds go on back to back. Every round requests
/// exactly the sensors in the run at its start (the changes land between rounds or in one, as
/// the returned rounds say), every added sensor is read from its first round to the last, and
/// the summary's counts agree.
#[actix_rt::test]
async fn changes_on_several_arbiters_are_accounted_exactly() {
    let toml = r#"
[collection]
interval = "2ms"
read_timeout = "5s"
rounds = 150
seed = 9
[runtime]
arbiters = 3
[[groups]]
name = "bus"
strategy = "one_for_all"
[[sensors]]
count = 30
latency = ["0ms", "0ms"]
error_rate = 0.0
[[sensors]]
name = "bus"
count = 6
group = "bus"
latency = ["0ms", "0ms"]
error_rate = 0.0
"#;
    let notify = Arc::new(tokio::sync::Notify::new());
    let trigger = OnRound {
        at: 20,
        notify: notify.clone(),
    }
    .start();
    let dir = tempfile::tempdir().unwrap();
    let rounds = Arc::new(Mutex::new(Vec::new()));
    let collector = Collector::new()
        .out(dir.path())
        .unwrap()
        .subscribe_with(Rounds(rounds.clone()).start().recipient(), Delivery::lossless())
        .subscribe(trigger.recipient());
    let control = collector.control();
    let config = collector.parse(toml, "arbiters.toml").unwrap();
    let script = async {
        notify.notified().await;
        let zero = "latency = [\"0ms\", \"0ms\"]\nerror_rate = 0.0\n";
        let loose = control
            .add_toml("test", &format!("{zero}name = \"loose\"\ncount = 5"))
            .await
            .unwrap();
        let bus = control
            .add_toml("test", &format!("{zero}name = \"more\"\ncount = 2\ngroup = \"bus\""))
            .await
            .unwrap();
        let gone = control.remove("test", "temperature-17").await.unwrap();
        let gone_bus = control.remove("test", "bus-3").await.unwrap();
        (loose.first_round, bus.first_round, gone.last_round, gone_bus.last_round)
    };
    let (summary, (loose, bus, gone, gone_bus)) = futures::join!(collector.run(config, pending()), script);
    let summary = summary.unwrap();
    let rounds = rounds.lock().unwrap().clone();
    assert_eq!(rounds.len(), 150);
    assert!(loose > 20 && gone_bus < 150, "{loose} {gone_bus}");
    for (r, counts) in (1..).zip(&rounds) {
        let expected =
            36 + 5 * u64::from(r >= loose) + 2 * u64::from(r >= bus) - u64::from(r > gone) - u64::from(r > gone_bus);
        assert_eq!(counts.requested, expected, "round {r}");
        // A removed sensor's read still awaited when it was removed is counted unavailable.
        let in_flight = u64::from(r == gone) + u64::from(r == gone_bus);
        assert!(counts.unavailable <= in_flight, "round {r}: {counts:?}");
        assert_eq!(counts.ok + counts.unavailable, expected, "round {r}");
    }
    let count = |id: &str| summary.sensors.iter().find(|s| s.id == id).unwrap().count;
    assert_eq!(count("loose-1"), 150 - loose + 1);
    assert_eq!(count("more-2"), 150 - bus + 1);
    assert!((gone - 1..=gone).contains(&count("temperature-17")));
    assert!((gone_bus - 1..=gone_bus).contains(&count("bus-3")));
    assert_eq!(summary.sensors.len(), 43);
    let readings: Vec<Line> = common::read_lines(&dir.path().join("readings.jsonl"));
    assert_eq!(readings.len() as u64, summary.reads.ok);
    let of = |id: &str| {
        readings
            .iter()
            .filter(|l| l.sensor == id)
            .map(|l| l.round)
            .collect::<Vec<_>>()
    };
    assert_eq!(of("loose-5"), (loose..=150).collect::<Vec<_>>());
    assert_eq!(of("bus-3")[..gone_bus as usize - 1], (1..gone_bus).collect::<Vec<_>>());
    assert!(of("bus-3").last() <= Some(&gone_bus));
}

/// A sensor added to a nested `[[groups]]` entry that had no supervisor (no configured sensor
/// in it) starts that group inside its parent, which adopts it as a child group: when the
/// parent's own member fails in round 4, its `one_for_all` strategy restarts the new child
/// group with it, and the added sensor with its group.
#[actix_rt::test]
async fn a_group_started_for_an_added_sensor_is_adopted_by_its_parent() {
    tokio::time::pause();
    let toml = format!(
        "{BASE}[[groups]]\nname = \"plant\"\nstrategy = \"one_for_all\"\nmax_restarts = 3\nwithin = \"1m\"\n\
         [[groups]]\nname = \"bus\"\nparent = \"plant\"\n\
         [[sensors]]\nid = \"gateway\"\ngroup = \"plant\"\n{}\n",
        entry("faults = [{ round = 4, fault = \"fatal\" }]")
    );
    let (run, added) = run_with(&toml, |control, t0| async move {
        at(t0, 1500).await;
        control
            .add_toml("test", &entry("id = \"bus-1\"\ngroup = \"bus\""))
            .await
    })
    .await;
    assert_eq!(added.unwrap().first_round, 3);
    assert_eq!(run.requested(), [1, 1, 2, 2, 2]);
    assert_eq!(
        run.journal(),
        [
            "2 bus-1 added (requested by test)",
            "4 gateway failed (fatal: injected fatal error in round 4)",
            "4 gateway restart_scheduled",
            "4 bus stopped (one_for_all: restarting with gateway)",
            "4 bus restart_scheduled",
            "4 bus-1 stopped (one_for_all: restarting with gateway)",
            "4 bus-1 restart_scheduled",
            "4 gateway restarted",
            "4 bus restarted",
            "4 bus-1 restarted",
        ]
    );
    let groups: Vec<(&str, Option<&str>, u64, u32)> = run
        .summary
        .groups
        .iter()
        .map(|g| (g.name.as_str(), g.parent.as_deref(), g.sensors, g.restarts))
        .collect();
    assert_eq!(groups, [("plant", None, 1, 0), ("bus", Some("plant"), 1, 1)]);
    assert_eq!(run.read_rounds("bus-1"), [3, 4, 5]);
}

/// A removed member is out of its group's strategy: when `bus-1` fails in round 4, the
/// `one_for_all` restart takes `bus-3` with it, not the removed `bus-2`, which stays removed.
#[actix_rt::test]
async fn a_removed_member_is_left_out_of_its_groups_restarts() {
    tokio::time::pause();
    let toml = format!(
        "{BASE}[[groups]]\nname = \"bus\"\nstrategy = \"one_for_all\"\nmax_restarts = 3\nwithin = \"1m\"\n\
         [[sensors]]\nname = \"bus\"\ncount = 3\ngroup = \"bus\"\n{}\n",
        entry("faults = [{ round = 4, fault = \"fatal\", sensor = \"bus-1\" }]")
    );
    let (run, removed) = run_with(&toml, |control, t0| async move {
        at(t0, 1500).await;
        control.remove("test", "bus-2").await
    })
    .await;
    assert_eq!(removed.unwrap().last_round, 2);
    assert_eq!(run.requested(), [3, 3, 2, 2, 2]);
    assert_eq!(
        run.journal(),
        [
            "2 bus-2 removed (requested by test)",
            "4 bus-1 failed (fatal: injected fatal error in round 4)",
            "4 bus-3 stopped (one_for_all: restarting with bus-1)",
            "4 bus-1 restart_scheduled",
            "4 bus-3 restart_scheduled",
            "4 bus-1 restarted",
            "4 bus-3 restarted",
        ]
    );
    let states: Vec<(String, String, u64)> = run.states();
    assert_eq!(states[1], ("bus-2".into(), "removed".into(), 2));
    assert_eq!(run.summary.sensors.get(1).unwrap().restarts, 0);
}

/// `Control::stop` at 1.5 s stops `temperature-2` for good (it is `permanent`): rounds 3 and 4
/// count it `unavailable`, a second stop is refused, and `Control::restart` at 3.5 s starts it
/// at once (no backoff), read again from round 5; both journaled with who asked, the restart
/// counted.
#[actix_rt::test]
async fn a_stopped_sensor_stays_stopped_until_restarted() {
    tokio::time::pause();
    let toml = format!("{BASE}{THREE}").replace("rounds = 5", "rounds = 6");
    let (run, again) = run_with(&toml, |control, t0| async move {
        at(t0, 1500).await;
        control.stop("test", "temperature-2").await.unwrap();
        let again = control.stop("test", "temperature-2").await;
        at(t0, 3500).await;
        control.restart("test", "temperature-2").await.unwrap();
        again
    })
    .await;
    assert_eq!(
        again.unwrap_err().to_string(),
        "test: id: sensor \"temperature-2\" is not running: it is stopped already"
    );
    assert_eq!(run.read_rounds("temperature-2"), [1, 2, 5, 6]);
    assert_eq!(run.requested(), [3; 6]);
    let unavailable: Vec<u64> = run.rounds.iter().map(|r| r.unavailable).collect();
    assert_eq!(unavailable, [0, 0, 1, 1, 0, 0]);
    assert_eq!(
        run.journal(),
        [
            "2 temperature-2 stopped (requested by test)",
            "4 temperature-2 restarted (requested by test)"
        ]
    );
    assert_eq!(run.summary.restarts, 1);
    assert_eq!(run.summary.sensors.get(1).unwrap().restarts, 1);
    assert_eq!(run.summary.sensors.get(1).unwrap().state, "running");
}

/// A restart while the sensor's read is in flight (1.005 s: round 2's 10 ms reads went out at
/// 1 s) counts that read once, `unavailable`; the new actor is read from round 3.
#[actix_rt::test]
async fn a_restart_during_a_read_counts_the_read_once() {
    tokio::time::pause();
    let toml = format!("{BASE}{THREE}");
    let (run, ()) = run_with(&toml, |control, t0| async move {
        at(t0, 1005).await;
        control.restart("test", "temperature-1").await.unwrap();
    })
    .await;
    assert_eq!(run.read_rounds("temperature-1"), [1, 3, 4, 5]);
    let round_2 = &run.rounds[1];
    assert_eq!((round_2.requested, round_2.ok, round_2.unavailable), (3, 2, 1));
    assert_eq!(run.journal(), ["2 temperature-1 restarted (requested by test)"]);
    assert_eq!(run.summary.sensors.get(0).unwrap().state, "running");
}

/// A member stopped by request is not taken into its group's strategy: when `g-2` panics in
/// round 4, `one_for_all` stops and restarts `g-3` with it, not the stopped `g-1`, which stays
/// stopped to the end; restarting a removed sensor is refused.
#[actix_rt::test]
async fn a_stopped_member_is_left_out_of_its_groups_strategy() {
    tokio::time::pause();
    let toml = format!(
        "{BASE}[[groups]]\nname = \"g\"\nstrategy = \"one_for_all\"\n\
         [[sensors]]\nname = \"g\"\ncount = 3\ngroup = \"g\"\n{}",
        entry("faults = [ { round = 4, fault = \"panic\", sensor = \"g-2\" } ]")
    )
    .replace("rounds = 5", "rounds = 6");
    let (run, refused) = run_with(&toml, |control, t0| async move {
        at(t0, 1500).await;
        control.stop("test", "g-1").await.unwrap();
        control.remove("test", "g-3").await.unwrap();
        control.restart("test", "g-3").await
    })
    .await;
    assert_eq!(
        refused.unwrap_err().to_string(),
        "test: id: sensor \"g-3\" was removed in round 2"
    );
    assert_eq!(run.read_rounds("g-1"), [1, 2]);
    assert_eq!(
        run.journal(),
        [
            "2 g-1 stopped (requested by test)",
            "2 g-3 removed (requested by test)",
            "4 g-2 failed (panic: injected panic in round 4)",
            "4 g-2 restart_scheduled",
            "4 g-2 restarted"
        ]
    );
    let states: Vec<(String, String)> = run.states().into_iter().map(|(id, state, _)| (id, state)).collect();
    let state = |id: &str, s: &str| (id.to_string(), s.to_string());
    assert_eq!(
        states,
        [
            state("g-1", "stopped"),
            state("g-2", "running"),
            state("g-3", "removed")
        ]
    );
}

#[derive(Debug, Deserialize)]
struct ValueLine {
    round: u64,
    sensor: String,
    value: f64,
    timestamp: String,
    latency_ms: f64,
}

/// `Control::status` mid-run: a sensor's statistics are those of its readings so far (against
/// a naive computation over readings.jsonl up to the round of the newest reading it reports),
/// its newest reading is that round's line, its state and restarts are the journal's; an
/// unknown or removed id is refused as `stop` refuses it; before the run and after it, the
/// run is not there to ask.
#[actix_rt::test]
async fn a_sensors_status_is_its_readings_so_far() {
    tokio::time::pause();
    let toml = format!(
        "{BASE}[[sensors]]\ncount = 3\nlatency = [\"10ms\", \"30ms\"]\nerror_rate = 0.3\n\
         faults = [ {{ round = 2, fault = \"panic\", sensor = \"temperature-2\" }} ]\n"
    )
    .replace("rounds = 5", "rounds = 8");
    let early = Collector::new().control();
    assert!(matches!(
        early.status("test", "temperature-1").await,
        Err(ControlError::NotStarted { .. })
    ));
    let (run, (statuses, unknown, removed, control)) = run_with(&toml, |control, t0| async move {
        let mut statuses = Vec::new();
        // Between rounds (5.5 s), and while round 7's reads are in flight (6.015 s).
        for ms in [5500, 6015] {
            at(t0, ms).await;
            for id in ["temperature-1", "temperature-2"] {
                statuses.push(control.status("test", id).await.unwrap());
            }
        }
        let unknown = control.status("test", "nope").await;
        control.remove("test", "temperature-3").await.unwrap();
        let removed = control.status("test", "temperature-3").await;
        (statuses, unknown, removed, control)
    })
    .await;
    assert_eq!(
        unknown.unwrap_err().to_string(),
        "test: id: no sensor \"nope\" in the run"
    );
    assert_eq!(
        removed.unwrap_err().to_string(),
        "test: id: sensor \"temperature-3\" was removed in round 7"
    );
    assert!(matches!(
        control.status("test", "temperature-1").await,
        Err(ControlError::Ended { .. })
    ));
    let lines: Vec<ValueLine> = common::read_lines(&run.dir.path().join("readings.jsonl"));
    for (k, status) in statuses.iter().enumerate() {
        let id = &*status.id;
        let a = &status.analysis;
        let last = a.last.expect("read at least once");
        let values: Vec<&ValueLine> = lines
            .iter()
            .filter(|l| l.sensor == id && l.round <= last.round)
            .collect();
        let newest = values.last().unwrap();
        assert_eq!(newest.round, last.round, "{id}");
        assert_eq!((newest.value, last.value), (newest.value, newest.value));
        assert_eq!(newest.timestamp, sensor_actors::sinks::rfc3339(&last.timestamp));
        assert_eq!(newest.latency_ms, last.latency.as_secs_f64() * 1000.0);
        let n = values.len() as f64;
        let mean = values.iter().map(|l| l.value).sum::<f64>() / n;
        let var = values.iter().map(|l| (l.value - mean).powi(2)).sum::<f64>() / (n - 1.0);
        assert_eq!(a.count, values.len() as u64, "{id}");
        assert_eq!(a.min, values.iter().map(|l| l.value).reduce(f64::min));
        assert_eq!(a.max, values.iter().map(|l| l.value).reduce(f64::max));
        assert!((a.mean.unwrap() - mean).abs() <= 1e-12 * mean.abs(), "{id}");
        assert!((a.stddev.unwrap() - var.sqrt()).abs() <= 1e-9 * var.sqrt(), "{id}");
        // Asked at 5.5 s, round 6 was the last read; at 6.015 s round 7's 10-30 ms reads
        // are under way, and some may have settled.
        if k < 2 {
            assert_eq!(
                last.round,
                run.read_rounds(id).into_iter().filter(|&r| r <= 6).max().unwrap()
            );
        } else {
            assert!(last.round >= statuses[k - 2].analysis.last.unwrap().round);
        }
        assert_eq!(
            (status.kind.as_ref(), status.unit.as_ref(), status.group.as_deref()),
            ("temperature", "C", None)
        );
        assert_eq!(status.state, "running");
        let restarts = run
            .events
            .iter()
            .filter(|e| e.sensor.as_deref() == Some(id) && e.event == "restarted")
            .count();
        assert_eq!(status.restarts as usize, restarts, "{id}");
    }
    assert_eq!(statuses[1].restarts, 1, "the panic of round 2");
    assert_eq!(statuses[0].index, 0);
    assert_eq!(statuses[1].index, 1);
}
