//! `sensor-actors story DIR SENSOR` on a real `--out` folder: a seeded run of a small
//! configuration with scripted faults on the virtual clock (so its files are the same at every
//! run), then the stories of a sensor that failed, restarted and was given up, of a group
//! member, and of a steady sensor, as text and as JSON checked against the files; an
//! interrupted run's folder; and the errors.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{read_jsonl, read_summary};
use serde_json::Value;

/// `flaky` panics in round 3, waits 1.5 s (more than a round) for its restart, hangs in round
/// 6 (a verbose journal shows each timeout), is restarted again, and a fatal error in round 12
/// is its third restart within 10 s: given up. `steady` reads every round, with an
/// out-of-range spike in round 10. The `bus-a` group restarts both members when `bus-1` fails
/// in round 4, and escalates when `bus-2` fails in round 8.
const CONFIG: &str = r#"
[collection]
interval = "1s"
read_timeout = "500ms"
rounds = 14
seed = 3
journal = "verbose"

[supervision]
max_restarts = 2
within = "10s"
backoff_min = "1500ms"
backoff_max = "4s"
hung_after = 2

[[sensors]]
id = "flaky"
latency = ["10ms", "50ms"]
error_rate = 0.0
faults = [
  { round = 3, fault = "panic" },
  { round = 6, fault = "hang" },
  { round = 12, fault = "fatal" },
]

[[sensors]]
id = "steady"
latency = ["10ms", "50ms"]
error_rate = 0.0
faults = [{ round = 10, fault = "spike", magnitude = 100 }]

[[sensors]]
name = "bus"
count = 2
kind = "pressure"
base = [1005.0, 1020.0]
latency = ["10ms", "20ms"]
error_rate = 0.0
group = "bus-a"
faults = [{ round = 4, fault = "fatal", sensor = "bus-1" }, { round = 8, fault = "fatal", sensor = "bus-2" }]

[[groups]]
name = "bus-a"
strategy = "one_for_all"
max_restarts = 1
within = "30s"
"#;

const SENSORS: [&str; 4] = ["flaky", "steady", "bus-1", "bus-2"];

fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sensor-actors"));
    command.env_remove("RUST_LOG");
    command
}

/// A folder holding `out/`, written by a run of [`CONFIG`] on the virtual clock.
fn run_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("story.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let out = dir.path().join("out");
    let output = binary()
        .env("RUST_LOG", "warn")
        .args(["run", "--clock", "virtual", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    dir
}

fn story(dir: &Path, args: &[&str]) -> Output {
    binary().arg("story").arg(dir).args(args).output().unwrap()
}

/// The story's stdout, after checking it succeeded quietly.
fn story_text(dir: &Path, sensor: &str) -> String {
    let output = story(dir, &[sensor]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    String::from_utf8(output.stdout).unwrap()
}

/// A sensor that failed (a panic), waited a round for its restart, hung (its two timeouts
/// journaled), restarted, and was given up on its third failure within 10 s: the header says
/// its final state, restarts and counts; the timeline compresses its runs of readings, shows
/// the rounds it was down and why, each event with its round, time, cause, delay, backoff
/// attempt and window, its stale anomaly; the last line says how it ended.
#[test]
fn story_of_a_sensor_that_failed_restarted_and_was_given_up() {
    let dir = run_folder();
    let text = story_text(&dir.path().join("out"), "flaky");
    let expected = "\
sensor flaky: temperature in C, ungrouped (shard-1)
final state given_up, 2 restarts; 14 rounds: 4 ok, 10 without a reading (3 with a failure, 1 timed out, 4 waiting for a restart, 2 given up); 1 anomaly
values: min 23.146 C, max 29.086 C, mean 25.327 C, last 29.086 C
times: UTC, 2000-01-01

round         time          what
round 0       00:00:00.000  started
rounds 1-2    00:00:00.031  ok (2 readings, 23.146..23.548 C)
round 3       00:00:02.025  failed: panic: injected panic in round 3
round 3       00:00:02.025  restart_scheduled: in 1547 ms, backoff attempt 1, window 1 of 2, 0 restarts so far
round 4                     no reading: down, waiting for its restart
round 4       00:00:03.573  restarted: restart 1
round 5       00:00:04.021  ok (1 reading, 25.530 C)
round 6       00:00:05.500  timed_out: 1 of 2 consecutive read timeouts make a hang
round 7       00:00:06.500  timed_out: 2 of 2 consecutive read timeouts make a hang
round 7       00:00:06.500  failed: hung: 2 consecutive read timeouts
round 7       00:00:06.500  restart_scheduled: in 3026 ms, backoff attempt 2, window 2 of 2, 1 restart so far
rounds 8-10                 no reading: down, waiting for its restart
round 10      00:00:09.013  anomaly stale: no reading for 5 rounds
round 10      00:00:09.527  restarted: restart 2
round 11      00:00:10.020  ok (1 reading, 29.086 C)
round 12      00:00:11.044  failed: fatal: injected fatal error in round 12
round 12      00:00:11.044  gave_up: more than 2 restarts within 10s, after 2 restarts
rounds 13-14                no reading: given up

given up in round 12: more than 2 restarts within 10s; last reading in round 11
";
    assert_eq!(text, expected);
}

/// A member of a `one_for_all` group: stopped with its sibling's failure, restarted, then
/// given up when the group escalates; the group's own `escalated` and `gave_up` are in its
/// story. A sensor that never failed: one run of readings, broken only by its anomaly.
#[test]
fn story_of_a_group_member_and_of_a_steady_sensor() {
    let dir = run_folder();
    let out = dir.path().join("out");
    let text = story_text(&out, "bus-2");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "sensor bus-2: pressure in hPa, group bus-a (one_for_all, ended escalated)"
    );
    assert_eq!(
        lines[1],
        "final state given_up, 1 restart; 14 rounds: 6 ok, 8 without a reading (1 with a failure, 1 waiting for a restart, 6 given up); 1 anomaly"
    );
    let timeline: Vec<&str> = lines[6..].iter().map(|l| l.trim_end()).collect();
    assert_eq!(
        timeline,
        [
            "round 0       00:00:00.000  started",
            "rounds 1-4    00:00:00.011  ok (4 readings, 1007.087..1007.444 hPa)",
            "round 4       00:00:03.019  stopped: one_for_all: restarting with bus-1",
            "round 4       00:00:03.019  restart_scheduled: in 1521 ms, backoff attempt 1, window 1 of 1, 0 restarts so far",
            "round 5                     no reading: down, waiting for its restart",
            "round 5       00:00:04.541  restarted: restart 1",
            "rounds 6-7    00:00:05.018  ok (2 readings, 1005.668..1005.994 hPa)",
            "round 8       00:00:07.018  failed: fatal: injected fatal error in round 8",
            "round 8       00:00:07.018  gave_up: group bus-a escalated: more than 1 restarts within 30s, after 1 restart",
            "round 8       00:00:07.018  group bus-a escalated: more than 1 restarts within 30s",
            "round 8       00:00:07.018  group bus-a gave_up: escalated: more than 1 restarts within 30s, after 0 restarts of the group",
            "rounds 9-12                 no reading: given up",
            "round 12      00:00:11.000  anomaly stale: no reading for 5 rounds",
            "rounds 13-14                no reading: given up",
            "",
            "given up in round 8: group bus-a escalated: more than 1 restarts within 30s; last reading in round 7",
        ]
    );

    let text = story_text(&out, "steady");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[1],
        "final state running, 0 restarts; 14 rounds: 14 ok, 0 without a reading; 1 anomaly"
    );
    assert_eq!(
        lines[6..],
        [
            "round 0       00:00:00.000  started",
            "rounds 1-10   00:00:00.018  ok (10 readings, 29.858..130.148 C)",
            "round 10      00:00:09.013  anomaly out_of_range: value 130.1479153723047 outside the valid range [-40, 85]",
            "rounds 11-14  00:00:10.046  ok (4 readings, 29.052..29.762 C)",
            "",
            "running when the run ended (round 14); last reading in round 14",
        ]
    );
}

/// `--json` is one JSON object on one line whose timeline holds, for every sensor of the run,
/// exactly its lines of the files ([`assert_json_is_the_lines_of_the_files`]); the counts of
/// rounds without a reading by reason, and the end, of the sensor that was given up.
#[test]
fn story_json_is_the_sensors_lines_of_the_files() {
    let dir = run_folder();
    let out = dir.path().join("out");
    assert_json_is_the_lines_of_the_files(&out, &SENSORS);
    let flaky: Value = serde_json::from_slice(&story(&out, &["flaky", "--json"]).stdout).unwrap();
    assert_eq!(
        flaky["counts"]["without_reading"],
        serde_json::json!({ "failed": 3, "timed_out": 1, "restarting": 4, "given_up": 2 })
    );
    assert_eq!(
        flaky["end"],
        serde_json::json!({
            "state": "given_up",
            "round": 12,
            "cause": "more than 2 restarts within 10s",
            "last_reading": 11,
            "text": "given up in round 12: more than 2 restarts within 10s; last reading in round 11"
        })
    );
}

/// A run interrupted before its summary (no `summary.json`, last lines cut in the middle of a
/// write): the story tells what the line files hold, says the summary is missing, ignores the
/// incomplete lines, and still finds the group's events from the sensor's own lines.
#[test]
fn story_of_an_interrupted_run_tells_the_line_files() {
    let dir = run_folder();
    let out = dir.path().join("out");
    let full = story_text(&out, "bus-2");
    std::fs::remove_file(out.join("summary.json")).unwrap();
    for (file, cut) in [
        ("readings.jsonl", r#"{"round":15,"sensor":"bus-2","kind":"pres"#),
        (
            "events.jsonl",
            r#"{"timestamp":"2000-01-01T00:00:14.000Z","round":15,"sensor":"bus-2","#,
        ),
    ] {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new().append(true).open(out.join(file)).unwrap();
        f.write_all(cut.as_bytes()).unwrap();
    }
    let text = story_text(&out, "bus-2");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "sensor bus-2: pressure in hPa, group bus-a");
    assert_eq!(
        lines[1],
        "no summary.json (the run was interrupted): 14 rounds in the files: 6 ok, 8 without a reading (1 with a failure, 1 waiting for a restart, 6 given up); 1 anomaly; 1 restart (journal)"
    );
    // The same timeline as with the summary (the values line aside).
    let timeline = |text: &str| -> Vec<String> {
        let start = text.lines().position(|l| l.starts_with("round ")).unwrap();
        text.lines().skip(start).map(str::to_string).collect()
    };
    let (now, before) = (timeline(&text), timeline(&full));
    assert_eq!(now[..now.len() - 1], before[..before.len() - 1]);
    assert_eq!(
        now.last().unwrap(),
        "no summary.json (the run was interrupted); as the journal leaves it: given up in round 8: group bus-a escalated: more than 1 restarts within 30s; last reading in round 7"
    );
}

/// Asserts a refusal: exit code 2, nothing on stdout, one line on stderr, no panic.
fn assert_refused(output: &Output, expected: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(output.stdout.is_empty(), "{}", String::from_utf8_lossy(&output.stdout));
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(stderr, format!("sensor-actors: {expected}\n"));
}

/// Each error is one line naming the folder or file (and the line), with exit code 2: a
/// missing folder, a file given as the folder, a missing line file, an unknown sensor (with
/// the close ids the summary lists, or without them), a malformed line, a broken summary.
#[test]
fn story_errors_are_one_line_and_exit_2() {
    let dir = run_folder();
    let out = dir.path().join("out");
    let shown = |p: &Path| p.display().to_string();

    let missing = dir.path().join("nowhere");
    assert_refused(
        &story(&missing, &["flaky"]),
        &format!(
            "{}: no such folder (expected the --out folder of a run)",
            shown(&missing)
        ),
    );
    let file = out.join("summary.json");
    assert_refused(
        &story(&file, &["flaky"]),
        &format!("{}: not a folder (expected the --out folder of a run)", shown(&file)),
    );
    assert_refused(
        &story(&out, &["flaky-1"]),
        &format!(
            "{}: sensors: no sensor \"flaky-1\" among its 4 sensors; did you mean \"flaky\"?",
            shown(&file)
        ),
    );
    assert_refused(
        &story(&out, &["bus-3"]),
        &format!(
            "{}: sensors: no sensor \"bus-3\" among its 4 sensors; did you mean \"bus-1\", \"bus-2\"?",
            shown(&file)
        ),
    );
    assert_refused(
        &story(&out, &["nothing-like-it"]),
        &format!(
            "{}: sensors: no sensor \"nothing-like-it\" among its 4 sensors",
            shown(&file)
        ),
    );

    // A malformed line of the sensor's: named by file and line.
    let readings = out.join("readings.jsonl");
    let text = std::fs::read_to_string(&readings).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[4] = r#"{"round":2,"sensor":"flaky","value":}"#;
    std::fs::write(&readings, lines.join("\n") + "\n").unwrap();
    assert_refused(
        &story(&out, &["flaky"]),
        &format!(
            "{}: line 5: expected a line as the run writes it (expected value at column 37)",
            shown(&readings)
        ),
    );
    std::fs::write(&file, "{\"rounds\": 14, \"sensors\": [\n  {\"id\": \"flaky\",, }\n]}\n").unwrap();
    assert_refused(
        &story(&out, &["flaky"]),
        &format!(
            "{}: line 2: expected the summary a run writes (key must be a string at column 18)",
            shown(&file)
        ),
    );
    std::fs::remove_file(&file).unwrap();
    assert_refused(
        &story(&out, &["nobody"]),
        &format!(
            "{}: no line of events.jsonl, readings.jsonl or anomalies.jsonl names sensor \"nobody\" (and there is no summary.json)",
            shown(&out)
        ),
    );
    let events = out.join("events.jsonl");
    std::fs::remove_file(&events).unwrap();
    assert_refused(
        &story(&out, &["flaky"]),
        &format!(
            "{}: no such file (expected the --out folder of a run: readings.jsonl or readings.csv, anomalies.jsonl, events.jsonl)",
            shown(&events)
        ),
    );
}

/// `valve` sits in group `line`, nested in `site`; neither allows a restart. A fatal error in
/// round 4 makes `line` escalate to `site`, which escalates to the root and is given up with
/// everything in it. `meter`, a member of `site` itself, resumes after a panic (its directive).
const NESTED: &str = r#"
[collection]
interval = "1s"
read_timeout = "500ms"
rounds = 6
seed = 5

[[groups]]
name = "site"
strategy = "one_for_one"
max_restarts = 0
within = "30s"

[[groups]]
name = "line"
parent = "site"
strategy = "one_for_all"
max_restarts = 0
within = "30s"

[[sensors]]
id = "valve"
group = "line"
latency = ["10ms", "20ms"]
error_rate = 0.0
faults = [{ round = 4, fault = "fatal" }]

[[sensors]]
id = "meter"
group = "site"
latency = ["10ms", "20ms"]
error_rate = 0.0
directives = { panic = "resume" }
faults = [{ round = 2, fault = "panic" }]
"#;

/// The story of a member of a nested group holds the own events of its group and of the group
/// above it, in the journal's order, and ends with its give-up; a sensor whose failure was
/// resumed goes on running, and its read cut short by its group's escalation counts as given up.
#[test]
fn story_of_nested_groups_and_a_resumed_failure() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("nested.toml");
    std::fs::write(&config, NESTED).unwrap();
    let out = dir.path().join("out");
    let output = binary()
        .env("RUST_LOG", "error")
        .args(["run", "--clock", "virtual", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let text = story_text(&out, "valve");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "sensor valve: temperature in C, group line (one_for_all, ended escalated) within site"
    );
    assert_eq!(
        lines[5..],
        [
            "round       time          what",
            "round 0     00:00:00.000  started",
            "rounds 1-3  00:00:00.011  ok (3 readings, 27.192..27.588 C)",
            "round 4     00:00:03.013  failed: fatal: injected fatal error in round 4",
            "round 4     00:00:03.013  stopped: group line escalated: more than 0 restarts within 30s",
            "round 4     00:00:03.013  group line escalated: more than 0 restarts within 30s",
            "round 4     00:00:03.013  group site escalated: more than 0 restarts within 30s",
            "round 4     00:00:03.013  group site gave_up: escalated: more than 0 restarts within 30s, after 0 restarts of the group",
            "round 4     00:00:03.013  group line gave_up: group site given up, after 0 restarts of the group",
            "round 4     00:00:03.013  gave_up: group line given up: group site given up, after 0 restarts",
            "",
            "given up with its group line in round 4: group site given up; last reading in round 3",
        ]
    );
    let json: Value = serde_json::from_slice(&story(&out, &["valve", "--json"]).stdout).unwrap();
    assert_eq!(json["ancestors"], serde_json::json!(["site"]));
    assert_json_is_the_lines_of_the_files(&out, &["valve", "meter"]);

    let text = story_text(&out, "meter");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[1],
        "final state given_up, 0 restarts; 4 rounds: 2 ok, 2 without a reading (1 with a failure, 1 given up); 0 anomalies"
    );
    assert_eq!(
        lines[6..11],
        [
            "round 0  00:00:00.000  started",
            "round 1  00:00:00.019  ok (1 reading, 23.095 C)",
            "round 2  00:00:01.000  failed: panic: injected panic in round 2",
            "round 2  00:00:01.000  resumed: resume on panic",
            "round 3  00:00:02.011  ok (1 reading, 22.705 C)",
        ]
    );
}

/// Checks the `--json` story of each of `ids` against the files of `out`: the journal lines of
/// the sensor and the own lines of its group and the groups above (in file order, field for
/// field), its anomalies, runs of readings that cover exactly its rounds of `readings.jsonl`
/// with their range, gaps that cover every other round, and counts and state as the summary's.
fn assert_json_is_the_lines_of_the_files(out: &Path, ids: &[&str]) {
    let summary = read_summary(out);
    let journal = read_jsonl(&out.join("events.jsonl"));
    let anomalies = read_jsonl(&out.join("anomalies.jsonl"));
    let readings = read_jsonl(&out.join("readings.jsonl"));
    for &id in ids {
        let output = story(out, &[id, "--json"]);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let text = String::from_utf8(output.stdout).unwrap();
        assert_eq!(text.lines().count(), 1, "one line: {text}");
        let story: Value = serde_json::from_str(&text).unwrap();
        let entry = summary.sensors.iter().find(|s| s.id == id).unwrap();
        // Its group, then the groups above it.
        let mut groups: Vec<&str> = entry.group.as_deref().into_iter().collect();
        while let Some(parent) = summary
            .groups
            .iter()
            .find(|g| Some(g.name.as_str()) == groups.last().copied())
            .and_then(|g| g.parent.as_deref())
        {
            groups.push(parent);
        }
        let of = |kind: &str| -> Vec<Value> {
            let items = story["timeline"].as_array().unwrap().iter();
            items
                .filter(|e| e["entry"] == kind)
                .map(|e| {
                    let mut e = e.clone();
                    e.as_object_mut().unwrap().remove("entry");
                    e
                })
                .collect()
        };

        // The journal: its own lines and its groups' own, in order, as written.
        let expected: Vec<Value> = journal
            .iter()
            .filter(|l| l["sensor"] == id || (l.get("sensor").is_none() && groups.iter().any(|g| l["group"] == *g)))
            .cloned()
            .collect();
        assert_eq!(of("event"), expected, "{id}");
        let expected: Vec<Value> = anomalies.iter().filter(|l| l["sensor"] == id).cloned().collect();
        assert_eq!(of("anomaly"), expected, "{id}");

        // The readings: runs of consecutive rounds, exactly the sensor's, with their range.
        let mine: Vec<(u64, f64)> = readings
            .iter()
            .filter(|l| l["sensor"] == id)
            .map(|l| (l["round"].as_u64().unwrap(), l["value"].as_f64().unwrap()))
            .collect();
        let mut covered = Vec::new();
        for run in of("readings") {
            let (first, last) = (run["first"].as_u64().unwrap(), run["last"].as_u64().unwrap());
            let values: Vec<f64> = mine
                .iter()
                .filter(|(r, _)| (first..=last).contains(r))
                .map(|m| m.1)
                .collect();
            assert_eq!(values.len() as u64, last - first + 1, "{id}: {run}");
            assert_eq!(run["readings"], values.len() as u64);
            assert_eq!(
                run["min"].as_f64().unwrap(),
                values.iter().copied().fold(f64::INFINITY, f64::min)
            );
            assert_eq!(
                run["max"].as_f64().unwrap(),
                values.iter().copied().fold(f64::NEG_INFINITY, f64::max)
            );
            covered.extend(first..=last);
        }
        assert_eq!(covered, mine.iter().map(|m| m.0).collect::<Vec<_>>(), "{id}");
        let mut gaps = Vec::new();
        for gap in of("gap") {
            gaps.extend(gap["first"].as_u64().unwrap()..=gap["last"].as_u64().unwrap());
        }
        let mut all: Vec<u64> = covered.iter().chain(&gaps).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (1..=summary.rounds).collect::<Vec<_>>(), "{id}: every round once");

        // The counts and the end, as the summary says.
        assert_eq!(story["rounds"], summary.rounds);
        assert_eq!(story["counts"]["readings"], entry.count);
        let without: u64 = story["counts"]["without_reading"]
            .as_object()
            .unwrap()
            .values()
            .map(|n| n.as_u64().unwrap())
            .sum();
        assert_eq!(without, gaps.len() as u64);
        assert_eq!(story["summary"]["restarts"], entry.restarts);
        assert_eq!(story["end"]["state"], entry.state.as_str());
    }
}
