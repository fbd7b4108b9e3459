//! The default detectors on real recordings with labelled anomalies: the shipped example
//! configurations (`examples/replay_*.toml`, default `[analysis]`) replayed under the paused
//! clock, scored against the data sets' own labels.

#[path = "../examples/common/labels.rs"]
mod labels;

use std::path::{Path, PathBuf};

use sensor_actors::{run, Config, RunOptions};

/// Anomalies outside labelled events per 1,000 readings that count as "few".
const FEW_PER_1000: f64 = 2.0;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Replays the example configuration `name` and returns the output folder and the readings.
async fn replay(name: &str) -> (tempfile::TempDir, PathBuf, u64) {
    tokio::time::pause();
    let config = Config::load(&root().join("examples").join(name)).unwrap();
    assert!(
        config.analysis == Default::default(),
        "the examples use the default detectors"
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let options = RunOptions { out: Some(out.clone()) };
    let summary = run(config, options, std::future::pending()).await.unwrap();
    assert_eq!(summary.reads.failed + summary.reads.timed_out, 0);
    (dir, out, summary.reads.ok)
}

/// NAB machine temperature (22,695 readings): every one of NAB's four labelled windows (planned
/// shutdown, the hard-to-see precursor, the catastrophic failure and the fourth) gets at least
/// one anomaly inside, and fewer than 2 anomalies per 1,000 readings fall outside them.
#[actix_rt::test]
async fn nab_machine_temperature_every_window_caught() {
    let (_dir, out, readings) = replay("replay_nab.toml").await;
    assert_eq!(readings, 22_695);
    let data = root().join("tests/data/nab");
    let events = labels::nab_events(
        &data.join("machine_temperature_system_failure.csv"),
        &data.join("anomaly_windows.json"),
        "machine-1",
    );
    assert_eq!(events.len(), 4);
    let score = labels::score(&events, &labels::read_anomalies(&out.join("anomalies.jsonl")), readings);
    assert_eq!(score.events_caught(), 4, "{}", score.render());
    assert!(score.outside_per_1000() < FEW_PER_1000, "{}", score.render());
}

/// LWSNDR multi-hop (4 motes x 4,690 readings, one sensor per mote through `id_column`): both
/// heated motes are flagged inside their labelled rows, and fewer than 2 anomalies per 1,000
/// readings fall outside (the unheated motes 2 and 4 included).
#[actix_rt::test]
async fn lwsndr_heated_motes_caught() {
    let (_dir, out, readings) = replay("replay_lwsndr.toml").await;
    assert_eq!(readings, 18_760);
    let events = labels::lwsndr_events(&root().join("tests/data/lwsndr/multi_hop.csv"), "mote-");
    let sensors: Vec<&str> = events.iter().map(|e| e.sensor.as_str()).collect();
    assert_eq!(sensors, ["mote-1", "mote-3"]);
    let score = labels::score(&events, &labels::read_anomalies(&out.join("anomalies.jsonl")), readings);
    assert_eq!(score.events_caught(), 2, "{}", score.render());
    assert!(score.outside_per_1000() < FEW_PER_1000, "{}", score.render());
}
