//! The `sensor-actors` binary as users run it: bad input gives one line and exit code 2, a good
//! run writes the four output files consistently.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::read_jsonl;

fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sensor-actors"));
    command.env_remove("RUST_LOG");
    command
}

fn run(args: &[&str]) -> Output {
    binary().args(args).output().unwrap()
}

/// Asserts a usage failure: exit code 2, nothing on stdout, one stderr line that is exactly
/// `sensor-actors: <origin>: <field>: <message>`, without a panic.
fn assert_bad(output: &Output, origin: &str, field: &str, message: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "stderr: {stderr}");
    assert!(
        output.stdout.is_empty(),
        "stdout: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let expected = format!("sensor-actors: {origin}: {field}: ");
    assert!(
        stderr.starts_with(&expected),
        "{stderr:?} does not start with {expected:?}"
    );
    assert!(
        stderr.trim_end().ends_with(message) || stderr.contains(message),
        "{stderr:?} lacks {message:?}"
    );
}

/// Every bad configuration file is refused by `check` and by `run --config` alike: exit 2, one
/// line naming the file, the field and what was expected. Covers an unknown key (in a section and
/// in a sensor entry), min latency above max, error_rate outside 0..=1 on both sides, zero sensors
/// (count 0 and no entry), and negative and unparsable durations.
#[test]
fn bad_config_files_exit_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str, &str)] = &[
        (
            "[collection]\nintervall = \"1s\"\n[[sensors]]\ncount = 1\n",
            "collection.intervall",
            "unknown field `intervall`, expected one of",
        ),
        (
            "[[sensors]]\ncount = 1\nlatncy = [\"1ms\", \"2ms\"]\n",
            "sensors[0].latncy",
            "unknown field `latncy`",
        ),
        (
            "[[sensors]]\ncount = 2\nlatency = [\"500ms\", \"100ms\"]\n",
            "sensors[0].latency",
            "min 500ms is greater than max 100ms",
        ),
        (
            "[[sensors]]\ncount = 2\nerror_rate = 1.5\n",
            "sensors[0].error_rate",
            "expected a probability in 0..=1, got 1.5",
        ),
        (
            "[[sensors]]\ncount = 2\nerror_rate = -0.1\n",
            "sensors[0].error_rate",
            "expected a probability in 0..=1, got -0.1",
        ),
        (
            "[[sensors]]\ncount = 0\n",
            "sensors[0].count",
            "expected at least 1 sensor, got 0",
        ),
        (
            "[collection]\ninterval = \"1s\"\n",
            "sensors",
            "expected at least one [[sensors]] entry",
        ),
        (
            "[collection]\ninterval = \"-1s\"\n[[sensors]]\ncount = 1\n",
            "collection.interval",
            "expected a duration like \"250ms\" or \"1s\", got \"-1s\"",
        ),
        (
            "[collection]\nread_timeout = \"soon\"\n[[sensors]]\ncount = 1\n",
            "collection.read_timeout",
            "expected a duration like \"250ms\" or \"1s\", got \"soon\"",
        ),
        (
            "[supervision]\nbackoff_max = \"-5s\"\n[[sensors]]\ncount = 1\n",
            "supervision.backoff_max",
            "got \"-5s\"",
        ),
        (
            "[collection\ninterval = \"1s\"\n",
            "toml",
            "invalid table header: expected `.`, `]` (line 1)",
        ),
        (
            "[[sensors]]\nid = \"a\\nb\"\n",
            "sensors[0].id",
            "expected an id of at most 256 bytes without control or invisible characters, got \"a\\nb\"",
        ),
        (
            "[[sensors]]\ndriver = \"replay\"\nid = \"z\"\npath = \"/dev/zero\"\nvalue_column = \"v\"\n",
            "sensors[0].path",
            "cannot read /dev/zero: not a regular file (a CSV file was expected)",
        ),
    ];
    for (i, (text, field, message)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("bad{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let file = path.to_str().unwrap();
        assert_bad(&run(&["check", file]), file, field, message);
        assert_bad(&run(&["run", "--config", file, "--rounds", "1"]), file, field, message);
    }
}

/// Bad flags: negative and unparsable durations (as `--flag value` and `--flag=value`), zero
/// sensors, zero rounds, a zero read timeout and negative counts exit 2 with one line naming the
/// flag.
#[test]
fn bad_flags_exit_2_with_one_line() {
    let duration = |v: &str| format!("expected a duration like \"250ms\" or \"1s\", got \"{v}\"");
    let cases: Vec<(Vec<&str>, &str, String)> = vec![
        (vec!["--interval", "-1s"], "--interval", duration("-1s")),
        (vec!["--interval=-1s"], "--interval", duration("-1s")),
        (vec!["--read-timeout", "soon"], "--read-timeout", duration("soon")),
        (vec!["--duration", "-5s"], "--duration", duration("-5s")),
        (vec!["--sensors", "0"], "--sensors", "expected at least 1 sensor".into()),
        (vec!["--rounds", "0"], "--rounds", "expected at least 1 round".into()),
        (
            vec!["--read-timeout", "0s"],
            "--read-timeout",
            "expected a duration above 0s".into(),
        ),
        (vec!["--seed", "x"], "--seed", "got \"x\"".into()),
        (
            vec!["--rounds", "-1"],
            "--rounds",
            "expected a whole number, got \"-1\"".into(),
        ),
        (
            vec!["--sensors", "-5"],
            "--sensors",
            "expected a whole number, got \"-5\"".into(),
        ),
        (
            vec!["--seed=-3"],
            "--seed",
            "expected a whole number, got \"-3\"".into(),
        ),
        (
            vec!["--read-timeout", "300000000000y"],
            "--read-timeout",
            "expected at most 10 years, got \"300000000000y\"".into(),
        ),
        (
            vec!["--sensors", "100000000"],
            "--sensors",
            "expected at most 10000000 sensors, got 100000000".into(),
        ),
    ];
    for (flags, field, message) in cases {
        let mut args = vec!["run"];
        args.extend(flags);
        assert_bad(&run(&args), "command line", field, &message);
    }
}

/// A missing file is one line for `check` and for `run --config`; a good file passes `check`
/// with exit 0 and the number of sensors.
#[test]
fn missing_file_and_good_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml");
    let missing = missing.to_str().unwrap();
    assert_bad(&run(&["check", missing]), missing, "file", "cannot read: no such file");
    assert_bad(
        &run(&["run", "--config", missing]),
        missing,
        "file",
        "cannot read: no such file",
    );

    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "[collection]\ninterval = \"250ms\"\n[[sensors]]\ncount = 3\nlatency = [\"1ms\", \"2ms\"]\n",
    )
    .unwrap();
    let output = run(&["check", good.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("{}: ok, 3 sensors\n", good.display())
    );
    assert!(output.stderr.is_empty());
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).unwrap().lines().count()
}

/// `run --config small.toml --rounds 3 --interval 0s --seed 1 --out DIR` with four fast simulated
/// sensors (20% failures): exit 0; DIR holds the four files; `summary.json` parses, has 3 rounds
/// and 12 reads that add up; `readings.jsonl` has exactly `ok` lines, all of rounds 1-3 and known
/// sensors; `events.jsonl` starts with one `started` per sensor; stdout ends with the summary
/// table and the log has one line per round.
#[test]
fn binary_run_writes_the_four_files_consistently() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("small.toml");
    std::fs::write(
        &config,
        "[[sensors]]\ncount = 4\nlatency = [\"1ms\", \"5ms\"]\nerror_rate = 0.2\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let output = binary()
        .env("RUST_LOG", "info")
        .args(["run", "--config", config.to_str().unwrap()])
        .args([
            "--rounds",
            "3",
            "--interval",
            "0s",
            "--seed",
            "1",
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");

    for file in ["readings.jsonl", "anomalies.jsonl", "events.jsonl", "summary.json"] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    let summary = common::read_summary(&out);
    let r = summary.reads;
    assert_eq!(summary.rounds, 3);
    assert_eq!(summary.seed, 1);
    assert_eq!(r.requested, 12);
    assert_eq!(r.requested, r.ok + r.failed + r.timed_out + r.unavailable);
    assert_eq!(lines(&out.join("readings.jsonl")) as u64, r.ok);
    let ids: Vec<String> = (1..=4).map(|i| format!("temperature-{i}")).collect();
    let readings = read_jsonl(&out.join("readings.jsonl"));
    for line in &readings {
        assert!((1..=3).contains(&line["round"].as_u64().unwrap()), "{line}");
        assert!(ids.iter().any(|id| line["sensor"] == id.as_str()), "{line}");
        assert_eq!(line["kind"], "temperature");
        assert_eq!(line["unit"], "C");
        assert!(line["value"].is_f64() && line["latency_ms"].is_f64() && line["timestamp"].is_string());
    }
    let per_sensor: Vec<u64> = summary.sensors.iter().map(|s| s.count).collect();
    let from_lines: Vec<u64> = ids
        .iter()
        .map(|id| readings.iter().filter(|l| l["sensor"] == id.as_str()).count() as u64)
        .collect();
    assert_eq!(per_sensor, from_lines);
    let events = read_jsonl(&out.join("events.jsonl"));
    let started: Vec<&str> = events
        .iter()
        .take(4)
        .map(|e| {
            assert_eq!(e["event"], "started");
            e["sensor"].as_str().unwrap()
        })
        .collect();
    assert_eq!(started, ids);
    assert_eq!(
        summary.anomalies.values().sum::<u64>() as usize,
        lines(&out.join("anomalies.jsonl"))
    );

    assert!(stdout.starts_with(&format!(
        "3 rounds (0 skipped), seed 1: 12 reads requested, {} ok",
        r.ok
    )));
    for id in &ids {
        assert!(stdout.lines().any(|l| l.starts_with(id.as_str())), "{stdout}");
    }
    for round in 1..=3 {
        let marker = format!("round {round}: ");
        assert_eq!(stderr.lines().filter(|l| l.contains(&marker)).count(), 1, "{stderr}");
    }
}

/// `--out` naming a file (not a directory) is bad usage: exit 2, one line naming the flag and
/// saying a directory was expected; nothing runs.
#[test]
fn out_naming_a_file_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("taken");
    std::fs::write(&file, "not a directory").unwrap();
    let file = file.to_str().unwrap();
    let expected = format!("expected a directory, got the file {file}");
    assert_bad(
        &run(&["run", "--rounds", "1", "--out", file]),
        "command line",
        "--out",
        &expected,
    );
    assert_eq!(std::fs::read_to_string(file).unwrap(), "not a directory");
}

/// A configuration that passes every value check but cannot fit in this machine's memory (a
/// 300,000 sensors with the largest window: about 119 GB) is refused by `check` and `run`
/// before anything is allocated, with the estimate.
#[cfg(target_os = "linux")]
#[test]
fn a_run_larger_than_the_machine_is_refused_with_the_estimate() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.toml");
    std::fs::write(&path, "[analysis]\nwindow = 65535\n[[sensors]]\ncount = 300000\n").unwrap();
    let file = path.to_str().unwrap();
    for args in [vec!["check", file], vec!["run", "--config", file, "--rounds", "1"]] {
        let output = run(&args);
        assert_bad(&output, file, "analysis.window", "more than the");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("300000 sensors with a 65535-value window need about 118.6 GB"),
            "{stderr}"
        );
    }
}

/// A configuration "file" that never ends (`/dev/zero`), one over the size limit, and one that
/// is not text: each is one line and exit code 2, read no further than the limit.
#[cfg(unix)]
#[test]
fn endless_oversized_and_binary_config_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let oversized = dir.path().join("oversized.toml");
    let line = "# a comment line that makes the file long\n";
    let limit = sensor_actors::config::MAX_CONFIG_BYTES as usize;
    std::fs::write(&oversized, line.repeat(limit / line.len() + 1)).unwrap();
    let binary_file = dir.path().join("binary.toml");
    std::fs::write(&binary_file, b"[collection]\n\xff\xfe\x00\x01").unwrap();
    let at_limit = dir.path().join("at-limit.toml");
    let body = "[[sensors]]\ncount = 1\n";
    let mut text = body.to_string();
    text += &"#".repeat(limit - body.len() - 1);
    text.push('\n');
    assert_eq!(text.len(), limit);
    std::fs::write(&at_limit, &text).unwrap();
    for (path, message) in [
        (Path::new("/dev/zero"), "expected a file of at most 16 MiB"),
        (oversized.as_path(), "expected a file of at most 16 MiB"),
        (
            binary_file.as_path(),
            "expected UTF-8 text (an invalid byte at offset 13)",
        ),
    ] {
        let file = path.to_str().unwrap();
        assert_bad(&run(&["check", file]), file, "file", message);
    }
    let output = run(&["check", at_limit.to_str().unwrap()]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `tree` prints the supervision tree a run starts: the root with both its intensities, the
/// configured groups nested under their parents with strategy and intensity, the shard of
/// ungrouped sensors, and each sensor's policy and directives; past the limit per group it says
/// how many more (`--all` lists them).
#[test]
fn tree_prints_the_supervision_tree() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tree.toml");
    std::fs::write(
        &path,
        r#"[supervision]
max_restarts = 4
within = "20s"
[root]
max_restarts = 2
within = "1m"
[runtime]
arbiters = 1
[[groups]]
name = "bus"
strategy = "rest_for_one"
max_restarts = 2
within = "1m"
parent = "site"
directives = { hung = "stop" }
[[groups]]
name = "site"
strategy = "one_for_all"
[[sensors]]
name = "b"
count = 2
group = "bus"
restart = "transient"
directives = { panic = "escalate" }
[[sensors]]
id = "gateway"
group = "site"
[[sensors]]
count = 12
hung_after = 5
"#,
    )
    .unwrap();
    let output = run(&["tree", path.to_str().unwrap()]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[..7],
        [
            "root: restarts a group actor that stops, at most 4 within 20s (backoff 100ms..5s); restarts an escalated group at most 2 within 1m (backoff 100ms..5s); 1 thread(s)",
            "├── group site: one_for_all, at most 3 restarts within 10s, then escalates to the root [thread 1]",
            "│   ├── gateway (temperature): permanent, backoff 100ms..5s, hung after 3 timeouts",
            "│   └── group bus: rest_for_one, at most 2 restarts within 1m, then escalates to group site [thread 1]",
            "│       ├── b-1 (temperature): transient, backoff 100ms..5s, hung after 3 timeouts, escalate on panic, stop on hung",
            "│       └── b-2 (temperature): transient, backoff 100ms..5s, hung after 3 timeouts, escalate on panic, stop on hung",
            "└── shard-1: ungrouped sensors, one_for_one, each its own intensity [thread 1]",
        ]
    );
    assert_eq!(
        lines[7],
        "    ├── temperature-01 (temperature): permanent, at most 4 restarts within 20s, backoff 100ms..5s, hung after 5 timeouts"
    );
    assert_eq!(lines.len(), 18);
    assert_eq!(lines[17], "    └── ... 2 more");
    let all = run(&["tree", path.to_str().unwrap(), "--all"]);
    let text = String::from_utf8(all.stdout).unwrap();
    assert_eq!(text.lines().count(), 19);
    assert!(
        text.lines().last().unwrap().starts_with("    └── temperature-12 "),
        "{text}"
    );
}
