//! The `--out` files under hostile conditions, on the real binary and the real file system: a
//! file size limit that fills "the disk" mid-run, a second writer, symbolic links and a FIFO
//! where the files go, and a standard output that cannot be written.
#![cfg(unix)]

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sensor-actors"));
    command.env_remove("RUST_LOG");
    command
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Every line of `path` is a whole JSON object ending in a newline; returns how many.
fn whole_lines(path: &Path) -> usize {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "{} ends mid-line: {:?}",
        path.display(),
        &text[text.len().saturating_sub(80)..]
    );
    for line in text.lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("{}: {e}: {line:?}", path.display()));
    }
    text.lines().count()
}

/// A configuration of `count` simulated sensors that answer at once and never fail.
fn quick_sensors(dir: &Path, count: usize) -> String {
    let path = dir.join(format!("quick-{count}.toml"));
    std::fs::write(
        &path,
        format!("[[sensors]]\ncount = {count}\nlatency = [\"0ms\", \"1ms\"]\nerror_rate = 0.0\n"),
    )
    .unwrap();
    path.to_str().unwrap().to_string()
}

/// A run whose files may grow to `limit` bytes each (RLIMIT_FSIZE: writes past it fail with
/// EFBIG, as on a full disk, part-way through a write).
fn run_with_file_limit(args: &[&str], limit: u64) -> Output {
    let mut command = binary();
    command.args(args);
    unsafe {
        command.pre_exec(move || {
            let rlimit = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &rlimit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command.output().unwrap()
}

#[test]
fn a_full_disk_leaves_whole_lines_a_whole_summary_and_exit_code_1() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let config = quick_sensors(dir.path(), 50);
    let all = [
        "run",
        "--config",
        &config,
        "--rounds",
        "60",
        "--interval",
        "0s",
        "--seed",
        "4",
        "--out",
        out.to_str().unwrap(),
    ];
    // 60 rounds of 50 sensors make about 3,000 readings (over 400 KB): the limit is hit
    // part-way, while summary.json (a few KB) still fits.
    let output = run_with_file_limit(&all, 200_000);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(!text.contains("panicked"), "{text}");
    assert!(text.contains("readings.jsonl"), "{text}");
    assert!(text.contains("lines were not written"), "{text}");
    let written = whole_lines(&out.join("readings.jsonl"));
    assert!(written > 0);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let ok = summary["reads"]["ok"].as_u64().unwrap();
    assert!((written as u64) < ok, "{written} lines of {ok} readings");
    // The message says how many lines are missing, all files together; only readings.jsonl
    // reached the limit here.
    let lost = ok - written as u64;
    assert!(
        text.contains(&format!("({lost} lines were not written)")),
        "{lost}: {text}"
    );
    assert!(!out.join("summary.json.tmp").exists());
}

#[test]
fn a_summary_that_cannot_be_written_is_absent_not_empty() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    // A summary of an earlier run must not pass for this run's.
    std::fs::write(out.join("summary.json"), "{\"earlier\": true}\n").unwrap();
    // 2,000 sensors: the summary (per-sensor statistics) is far over 20 KB, one round of
    // readings is too.
    let config = quick_sensors(dir.path(), 2000);
    let output = run_with_file_limit(
        &[
            "run",
            "--config",
            &config,
            "--rounds",
            "1",
            "--interval",
            "0s",
            "--out",
            out.to_str().unwrap(),
        ],
        20_000,
    );
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(!text.contains("panicked"), "{text}");
    assert!(!out.join("summary.json").exists(), "{text}");
    assert!(!out.join("summary.json.tmp").exists());
    whole_lines(&out.join("readings.jsonl"));
    whole_lines(&out.join("events.jsonl"));
    // The table on stdout still reports the whole run.
    assert!(String::from_utf8_lossy(&output.stdout).contains("2000"));
}

#[test]
fn a_second_writer_of_a_folder_is_refused_before_touching_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("readings.jsonl"), "{\"being\":\"written\"}\n").unwrap();
    // Another process holds the folder's lock, as a running sensor-actors does.
    let mut holder = Command::new("flock")
        .args(["--exclusive", "--nonblock"])
        .arg(out.join(".sensor-actors.lock"))
        .args(["cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("flock(1) from util-linux");
    // `cat` echoes a line once the lock is held.
    {
        use std::io::{BufRead, Write};
        let mut stdin = holder.stdin.take().unwrap();
        writeln!(stdin, "locked").unwrap();
        let mut line = String::new();
        std::io::BufReader::new(holder.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line, "locked\n");
        let output = binary()
            .args(["run", "--rounds", "1", "--out"])
            .arg(&out)
            .output()
            .unwrap();
        let text = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{text}");
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.starts_with("sensor-actors: command line: --out: "), "{text}");
        assert!(text.contains("another run is writing this folder"), "{text}");
        assert_eq!(
            std::fs::read_to_string(out.join("readings.jsonl")).unwrap(),
            "{\"being\":\"written\"}\n"
        );
        drop(stdin);
    }
    holder.wait().unwrap();
    // Once the other writer is gone, the folder is free.
    let output = binary()
        .args(["run", "--rounds", "1", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(out.join("summary.json").exists());
}

#[test]
fn a_symbolic_link_or_a_fifo_in_the_folder_is_refused_and_its_target_kept() {
    let dir = tempfile::tempdir().unwrap();
    let precious = dir.path().join("precious.txt");
    std::fs::write(&precious, "keep me\n").unwrap();
    for (name, make) in [
        ("events.jsonl", "symlink"),
        ("summary.json", "symlink"),
        ("readings.jsonl", "fifo"),
    ] {
        let out = dir.path().join(format!("out-{name}"));
        std::fs::create_dir(&out).unwrap();
        let path = out.join(name);
        if make == "symlink" {
            std::os::unix::fs::symlink(&precious, &path).unwrap();
        } else {
            let status = Command::new("mkfifo").arg(&path).status().unwrap();
            assert!(status.success());
        }
        let output = binary()
            .args(["run", "--rounds", "2", "--interval", "0s", "--out"])
            .arg(&out)
            .output()
            .unwrap();
        let text = stderr(&output);
        assert_eq!(std::fs::read_to_string(&precious).unwrap(), "keep me\n", "{name}");
        if name == "summary.json" {
            // An earlier summary is removed at the start (the link itself, not its target),
            // and the new one is written in its place.
            assert_eq!(output.status.code(), Some(0), "{text}");
            assert!(!std::fs::symlink_metadata(&path).unwrap().file_type().is_symlink());
            continue;
        }
        assert_eq!(output.status.code(), Some(2), "{name}: {text}");
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains(name), "{text}");
        let expected = if make == "symlink" {
            "symbolic link"
        } else {
            "not a regular file"
        };
        assert!(text.contains(expected), "{text}");
    }
}

#[test]
fn standard_output_that_cannot_be_written_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    // /dev/full: every write fails with ENOSPC.
    let output = binary()
        .args([
            "run",
            "--config",
            &quick_sensors(dir.path(), 5),
            "--rounds",
            "2",
            "--interval",
            "0s",
            "--out",
        ])
        .arg(&out)
        .stdout(File::create("/dev/full").unwrap())
        .output()
        .unwrap();
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(!text.contains("panicked"), "{text}");
    assert!(text.contains("cannot write to standard output"), "{text}");
    // The files do not depend on standard output.
    assert_eq!(whole_lines(&out.join("readings.jsonl")), 10);
    assert!(out.join("summary.json").exists());

    // A closed pipe (the reader went away): EPIPE, not a panic nor a silent success.
    let config = dir.path().join("one.toml");
    std::fs::write(&config, "[[sensors]]\ncount = 1\n").unwrap();
    let mut child = binary()
        .arg("check")
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(!text.contains("panicked"), "{text}");
    assert!(text.contains("cannot write to standard output"), "{text}");
}
