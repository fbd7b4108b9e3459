//! Signals, as a user sends them to the binary: the first settles the round in flight and
//! writes everything; a second one ends the process at once; SIGHUP stops gracefully too. Each
//! test waits for the run's own log line that says where it is before signalling it.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Starts `sensor-actors` with `args`, logging at info level on a piped stderr.
fn start(args: &[&str]) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sensor-actors"))
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, lines)
}

/// Starts a run of the configuration `toml` (written into `dir`) with its files in `dir/out`,
/// which it returns.
fn start_config(dir: &Path, toml: &str) -> (Child, mpsc::Receiver<String>, PathBuf) {
    let config = dir.join("config.toml");
    std::fs::write(&config, toml).unwrap();
    let out = dir.join("out");
    let (child, lines) = start(&[
        "run",
        "--config",
        config.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    (child, lines, out)
}

/// Waits (at most a minute) for a stderr line containing `marker`; returns the lines up to it.
fn wait_for(lines: &mpsc::Receiver<String>, marker: &str) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("no line with {marker:?} ({e}); saw {seen:?}"));
        let done = line.contains(marker);
        seen.push(line);
        if done {
            return seen;
        }
    }
}

fn signal(child: &Child, signal: libc::c_int) {
    // SAFETY: kill only sends a signal to the child process we started.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, signal) }, 0);
}

/// Waits for the child to exit, at most `limit`.
fn exit_within(mut child: Child, limit: Duration) -> ExitStatus {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("still running after {limit:?}"))
        .unwrap()
}

/// SIGINT while the run is starting (right after its first log line, before any round): the run
/// still ends cleanly, exit 0, with `summary.json` written and the accounting exact.
#[test]
fn sigint_while_starting_writes_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let (child, lines) = start(&["run", "--sensors", "2000", "--out", out.to_str().unwrap()]);
    wait_for(&lines, "starting 2000 sensors");
    signal(&child, libc::SIGINT);
    let status = exit_within(child, Duration::from_secs(60));
    assert_eq!(status.code(), Some(0));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let reads = &summary["reads"];
    let sum: u64 = ["ok", "failed", "timed_out", "unavailable"]
        .iter()
        .map(|k| reads[k].as_u64().unwrap())
        .sum();
    assert_eq!(reads["requested"].as_u64().unwrap(), sum);
    assert!(summary["rounds"].as_u64().unwrap() <= 1, "{summary}");
}

/// A second signal while the first is settling a round (reads of 20 s, a read timeout of 30 s)
/// ends the process at once, with exit code 130 and one line saying so; the line files exist,
/// `summary.json` is not written.
#[test]
fn a_second_signal_exits_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (child, lines, out) = start_config(
        dir.path(),
        "[collection]\nread_timeout = \"30s\"\n[[sensors]]\ncount = 3\nlatency = [\"20s\", \"20s\"]\n",
    );
    wait_for(&lines, "started 3 sensor actors");
    signal(&child, libc::SIGINT);
    wait_for(&lines, "SIGINT received");
    signal(&child, libc::SIGTERM);
    let seen = wait_for(&lines, "received again");
    let status = exit_within(child, Duration::from_secs(10));
    assert_eq!(status.code(), Some(130));
    assert!(
        seen.last().unwrap().contains("SIGTERM received again: exiting now"),
        "{seen:?}"
    );
    assert!(out.join("readings.jsonl").exists());
    assert!(!out.join("summary.json").exists());
}

/// A second signal after a round was reported: the readings file, written by a thread of its
/// own, holds every line of that round when the process has exited (exit code 130), in whole
/// lines. Round 1 takes 3 s (one slow sensor), round 2 starts at once and is settling when the
/// second signal comes.
#[test]
fn a_second_signal_leaves_every_reported_round_in_the_readings_file() {
    let dir = tempfile::tempdir().unwrap();
    let (child, lines, out) = start_config(
        dir.path(),
        "[collection]\ninterval = \"0s\"\nread_timeout = \"30s\"\nseed = 3\n\n\
         [[sensors]]\ncount = 500\nlatency = [\"0ms\", \"1ms\"]\nerror_rate = 0.0\n\n\
         [[sensors]]\nkind = \"humidity\"\ncount = 1\nlatency = [\"3s\", \"3s\"]\nerror_rate = 0.0\n",
    );
    wait_for(&lines, "round 1: 501 ok");
    signal(&child, libc::SIGINT);
    wait_for(&lines, "SIGINT received");
    signal(&child, libc::SIGTERM);
    let status = exit_within(child, Duration::from_secs(10));
    assert_eq!(status.code(), Some(130));
    let readings = out.join("readings.jsonl");
    let text = std::fs::read_to_string(&readings).unwrap();
    assert!(text.ends_with('\n'), "ends mid-line");
    let rounds: Vec<u64> = common::read_jsonl(&readings)
        .iter()
        .map(|l| l["round"].as_u64().unwrap())
        .collect();
    assert_eq!(rounds, vec![1; 501]);
    assert!(!out.join("summary.json").exists());
}

/// SIGHUP stops a run gracefully, as SIGTERM does: exit 0, the summary written.
#[test]
fn sighup_stops_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let (child, lines) = start(&[
        "run",
        "--sensors",
        "3",
        "--interval",
        "100ms",
        "--out",
        out.to_str().unwrap(),
    ]);
    wait_for(&lines, "round 1:");
    signal(&child, libc::SIGHUP);
    wait_for(&lines, "SIGHUP received");
    let status = exit_within(child, Duration::from_secs(30));
    assert_eq!(status.code(), Some(0));
    assert!(out.join("summary.json").exists());
}
