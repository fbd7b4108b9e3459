//! The `replay` driver end to end: crafted CSV files replayed through the sensor actors, the
//! rounds, the supervisor and the aggregator, checked against the files' own rows.

use std::path::Path;
use std::process::Command;

use sensor_actors::config::Config;
use sensor_actors::driver::ReadError;
use sensor_actors::report::Summary;
use sensor_actors::testing::driver::read_all;
use sensor_actors::{run, RunOptions};
use serde_json::Value;

/// Writes `files` (name, contents) and `config.toml` into a fresh folder.
fn folder(config: &str, files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    std::fs::write(dir.path().join("config.toml"), config).unwrap();
    dir
}

/// Runs the folder's `config.toml` (paths relative to it) under the paused clock, writing to `out/`.
async fn replay(dir: &Path) -> Summary {
    tokio::time::pause();
    let config = Config::load(&dir.join("config.toml")).unwrap();
    let options = RunOptions {
        out: Some(dir.join("out")),
    };
    run(config, options, std::future::pending()).await.unwrap()
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// (sensor, value, source_row, source_time) of every line of readings.jsonl.
fn readings(dir: &Path) -> Vec<(String, f64, u64, Option<String>)> {
    lines(&dir.join("out/readings.jsonl"))
        .iter()
        .map(|l| {
            (
                l["sensor"].as_str().unwrap().to_string(),
                l["value"].as_f64().unwrap(),
                l["source_row"].as_u64().unwrap(),
                l["source_time"].as_str().map(str::to_string),
            )
        })
        .collect()
}

const SERIES: &str = "time,temp\n\
    2024-05-01 10:00,21.5\n\
    2024-05-01 10:05,21.75\n\
    2024-05-01 10:10,-3\n\
    2024-05-01 10:15,1e2\n\
    2024-05-01 10:20,22\n";

/// One sensor replays a five-row file: every value in file order with its 1-based row and its
/// recorded time, then the sensor is exhausted, stops without a restart, and the run ends by
/// itself with a complete summary (six rounds: five readings and the one that found the end).
#[actix_rt::test]
async fn replays_a_file_in_order_and_ends_when_it_is_exhausted() {
    let dir = folder(
        "[collection]\ninterval = \"1s\"\n[[sensors]]\ndriver = \"replay\"\nid = \"t1\"\npath = \"s.csv\"\n\
         value_column = \"temp\"\ntimestamp_column = \"time\"\n",
        &[("s.csv", SERIES)],
    );
    let summary = replay(dir.path()).await;
    let got = readings(dir.path());
    let expected: Vec<(String, f64, u64, Option<String>)> = [21.5, 21.75, -3.0, 100.0, 22.0]
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let time = format!("2024-05-01 10:{:02}", i * 5);
            ("t1".to_string(), *v, i as u64 + 1, Some(time))
        })
        .collect();
    assert_eq!(got, expected);
    assert_eq!(summary.rounds, 6);
    let r = summary.reads;
    assert_eq!(
        (r.requested, r.ok, r.failed, r.timed_out, r.unavailable),
        (6, 5, 0, 0, 1)
    );
    assert_eq!(summary.restarts, 0);
    let sensor = &summary.sensors.get(0).unwrap();
    assert_eq!(
        (sensor.id.as_str(), sensor.state.as_str(), sensor.count),
        ("t1", "stopped", 5)
    );
    assert_eq!(sensor.kind, "temp");
    assert_eq!((sensor.min, sensor.max), (Some(-3.0), Some(100.0)));
    let written: Summary =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("out/summary.json")).unwrap()).unwrap();
    assert_eq!(written.reads, summary.reads);
    let events: Vec<(String, Option<String>)> = lines(&dir.path().join("out/events.jsonl"))
        .iter()
        .map(|e| {
            (
                e["event"].as_str().unwrap().to_string(),
                e["cause"].as_str().map(str::to_string),
            )
        })
        .collect();
    assert_eq!(
        events,
        [("started".into(), None), ("stopped".into(), Some("exhausted".into()))]
    );
}

/// `id_column` makes one sensor per distinct id (named `<name>-<id>`, in order of first
/// appearance); each replays only its own rows, in order, and keeps the file's row numbers.
/// The sensor with fewer rows stops first; the run goes on until the last one is exhausted.
#[actix_rt::test]
async fn id_column_makes_one_sensor_per_id() {
    let csv = "mote,t\nb,1\na,10\nb,2\na,11\nb,3\n";
    let dir = folder(
        "[[sensors]]\ndriver = \"replay\"\nname = \"mote\"\npath = \"m.csv\"\nvalue_column = \"t\"\nid_column = \"mote\"\n",
        &[("m.csv", csv)],
    );
    let summary = replay(dir.path()).await;
    let ids: Vec<String> = summary.sensors.iter().map(|s| s.id).collect();
    assert_eq!(ids, ["mote-b", "mote-a"]);
    let mut got: Vec<(String, f64, u64)> = readings(dir.path()).into_iter().map(|(s, v, r, _)| (s, v, r)).collect();
    got.sort_by_key(|r| r.2);
    let expected = [
        ("mote-b", 1.0, 1),
        ("mote-a", 10.0, 2),
        ("mote-b", 2.0, 3),
        ("mote-a", 11.0, 4),
        ("mote-b", 3.0, 5),
    ];
    assert_eq!(got, expected.map(|(s, v, r)| (s.to_string(), v, r)));
    assert_eq!(summary.rounds, 4);
    let r = summary.reads;
    assert_eq!((r.requested, r.ok, r.unavailable), (8, 5, 3));
    assert!(summary.sensors.iter().all(|s| s.state == "stopped"));
}

/// Missing-value markers and malformed rows are failed reads whose cause names file, row and
/// column; the replay goes on with the next row: first the driver's own answers, then a whole run.
#[actix_rt::test]
async fn bad_rows_are_failed_reads_with_their_cause_and_the_replay_continues() {
    let csv = "t,v\na,1.5\nb,-200\nc,\nd,12x\ne,1,9\nf,2.5\n";
    let dir = folder(
        "[[sensors]]\ndriver = \"replay\"\nid = \"r\"\npath = \"bad.csv\"\nvalue_column = \"v\"\nmissing = [\"-200\", \"\"]\n",
        &[("bad.csv", csv)],
    );
    // The driver's own answers, read by the public conformance harness's reader.
    let config = Config::load(&dir.path().join("config.toml")).unwrap();
    let answers = read_all(&*config.sensors[0].driver, 1, 7).await.unwrap();
    let file = dir.path().join("bad.csv").display().to_string();
    let failed = |cause: String| ReadError::Failed(cause);
    let summary: Vec<Result<(f64, Option<u64>), ReadError>> = answers
        .into_iter()
        .map(|a| a.map(|sample| (sample.value, sample.source_row)))
        .collect();
    assert_eq!(
        summary,
        [
            Ok((1.5, Some(1))),
            Err(failed(format!(
                "{file}: row 2 (line 3), column v: missing value \"-200\""
            ))),
            Err(failed(format!("{file}: row 3 (line 4), column v: missing value \"\""))),
            Err(failed(format!(
                "{file}: row 4 (line 5), column v: expected a number, got \"12x\""
            ))),
            Err(failed(format!("{file}: row 5 (line 6): expected 2 columns, got 3"))),
            Ok((2.5, Some(6))),
            Err(ReadError::Exhausted),
        ]
    );

    let summary = replay(dir.path()).await;
    let r = summary.reads;
    assert_eq!((r.requested, r.ok, r.failed, r.unavailable), (7, 2, 4, 1));
    assert_eq!(summary.restarts, 0);
    assert_eq!(readings(dir.path()).iter().map(|r| r.2).collect::<Vec<_>>(), [1, 6]);
}

/// A column absent from the file's header, or an absent file, is a configuration error: the
/// binary exits 2 with one line naming the file, the field and the columns it has.
#[test]
fn missing_column_or_file_exits_2_naming_it() {
    let dir = folder(
        "[[sensors]]\ndriver = \"replay\"\nid = \"r\"\npath = \"s.csv\"\nvalue_column = \"temperature\"\n",
        &[("s.csv", SERIES)],
    );
    let config = dir.path().join("config.toml");
    for args in [vec!["check"], vec!["run", "--config"]] {
        let out = Command::new(env!("CARGO_BIN_EXE_sensor-actors"))
            .args(&args)
            .arg(&config)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        let expected = format!(
            "sensor-actors: {}: sensors[0].value_column: {} has no column \"temperature\" (columns: \"time\", \"temp\")\n",
            config.display(),
            dir.path().join("s.csv").display()
        );
        assert_eq!(stderr, expected, "{args:?}");
    }
    std::fs::remove_file(dir.path().join("s.csv")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sensor-actors"))
        .arg("check")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.ends_with(&format!(
            "sensors[0].path: cannot read {}: no such file\n",
            dir.path().join("s.csv").display()
        )),
        "{stderr}"
    );
}

/// A file of 2,000 ids replays under a limit of 64 open files (a tenth of a desktop's default):
/// its sensors share one descriptor, so every row is read once, in order per id, and the
/// summary is written.
#[cfg(unix)]
#[test]
fn thousands_of_ids_share_one_file_descriptor() {
    use std::os::unix::process::CommandExt;
    let ids = 2000;
    let rounds = 3;
    let mut csv = String::from("round,mote,value\n");
    for round in 1..=rounds {
        for id in 0..ids {
            csv += &format!("{round},m{id},{}.5\n", round * 10_000 + id);
        }
    }
    let dir = folder(
        "[collection]\ninterval = \"0s\"\n[[sensors]]\ndriver = \"replay\"\npath = \"motes.csv\"\nvalue_column = \"value\"\nid_column = \"mote\"\n",
        &[("motes.csv", &csv)],
    );
    let mut command = Command::new(env!("CARGO_BIN_EXE_sensor-actors"));
    command
        .args(["run", "--config"])
        .arg(dir.path().join("config.toml"))
        .arg("--out")
        .arg(dir.path().join("out"));
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 64,
                rlim_max: 64,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let output = command.output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("out/summary.json")).unwrap()).unwrap();
    assert_eq!(summary["reads"]["ok"], ids * rounds);
    assert_eq!(summary["reads"]["failed"], 0);
    let readings = readings(dir.path());
    assert_eq!(readings.len(), (ids * rounds) as usize);
    // Round r reads row r of every id: value r * 10000 + id, at its row of the file.
    for (sensor, value, row, _) in &readings {
        let id: u64 = sensor[1..].parse().unwrap();
        let round = (*value as u64 - id) / 10_000;
        assert_eq!(*value, (round * 10_000 + id) as f64 + 0.5);
        assert_eq!(*row, (round - 1) * ids + id + 1, "{sensor}");
    }
}
