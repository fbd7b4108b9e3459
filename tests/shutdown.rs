//! Shutdown is an input: a run stopped from outside settles the round in flight, flushes every
//! output and returns a complete summary.

use std::time::Duration;

use sensor_actors::{run, Config, RunOptions};

/// Rounds every second, each read taking 800 ms, no round limit; the shutdown future completes
/// at 2.3 s, while round 3 (2.0-2.8 s) is in flight. No fourth round starts; round 3 is settled
/// and counted; `readings.jsonl` holds every reading of the three rounds; the summary is complete.
#[actix_rt::test]
async fn shutdown_settles_the_round_in_flight_and_flushes() {
    tokio::time::pause();
    let dir = tempfile::tempdir().unwrap();
    let config = Config::from_toml_str(
        "[collection]\ninterval = \"1s\"\nread_timeout = \"900ms\"\nseed = 1\n[[sensors]]\ncount = 4\nlatency = [\"800ms\", \"800ms\"]\nerror_rate = 0.0\n",
        "shutdown.toml",
    )
    .unwrap();
    let start = tokio::time::Instant::now();
    let shutdown = tokio::time::sleep(Duration::from_millis(2300));
    let options = RunOptions {
        out: Some(dir.path().to_path_buf()),
    };
    let summary = run(config, options, shutdown).await.unwrap();
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_millis(2800) && elapsed < Duration::from_millis(2900),
        "{elapsed:?}"
    );
    assert_eq!(summary.rounds, 3);
    assert_eq!((summary.reads.requested, summary.reads.ok), (12, 12));
    let lines = std::fs::read_to_string(dir.path().join("readings.jsonl")).unwrap();
    let rounds: Vec<u64> = lines
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["round"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(rounds, [1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3]);
    let written: sensor_actors::Summary =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("summary.json")).unwrap()).unwrap();
    assert_eq!(written.reads, summary.reads);
    assert_eq!(written.rounds, 3);
}

/// A symbolic link where an output file goes (here to `/dev/full`) is refused before the run
/// starts, and never written through. (A write that fails mid-run, on a real file, is in
/// tests/durability.rs.)
#[cfg(target_os = "linux")]
#[actix_rt::test]
async fn a_symbolic_link_among_the_outputs_is_refused_at_setup() {
    tokio::time::pause();
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/dev/full", dir.path().join("readings.jsonl")).unwrap();
    let config = Config::from_toml_str(
        "[collection]\nrounds = 3\ninterval = \"1s\"\nseed = 1\n[[sensors]]\ncount = 2\nlatency = [\"10ms\", \"10ms\"]\nerror_rate = 0.0\n",
        "full.toml",
    )
    .unwrap();
    let options = RunOptions {
        out: Some(dir.path().to_path_buf()),
    };
    match run(config, options, std::future::pending()).await {
        Err(sensor_actors::RunError::Setup(e)) => {
            assert!(e.to_string().contains("readings.jsonl"), "{e}");
            assert!(e.source.to_string().contains("symbolic link"), "{}", e.source);
        }
        other => panic!("expected a setup error, got {other:?}"),
    }
    assert!(!dir.path().join("events.jsonl").exists());
}
