//! Per-sensor statistics against a naive reference, and reproducibility from the seed.
//! Simulated sensors on the paused clock.

mod common;

use std::collections::BTreeMap;

use common::{config, read_summary, readings, run_to_end};

/// Eight simulated sensors (10% failures), 300 back-to-back rounds, seed 11: for every sensor,
/// `summary.json`'s count, min and max equal those of its values in `readings.jsonl`, and mean and
/// sample standard deviation equal a naive two-pass computation over the same values.
#[actix_rt::test]
async fn statistics_equal_a_two_pass_computation() {
    tokio::time::pause();
    let dir = tempfile::tempdir().unwrap();
    let config = config(8, "rounds = 300\ninterval = \"0s\"\nseed = 11", "");
    let summary = run_to_end(config, Some(dir.path())).await;
    assert!(summary.reads.failed > 0, "the run should include failures");
    assert_against_readings(&summary, dir.path(), 8);
}

/// The same with restarts: eight sensors whose reads panic 3% of the time (each panic restarts
/// the sensor in a fresh actor after its backoff), 1 s rounds, 300 rounds. A sensor's statistics
/// run on over its restarts: they still equal the naive computation over all its readings.
#[actix_rt::test]
async fn statistics_continue_over_restarts() {
    tokio::time::pause();
    let dir = tempfile::tempdir().unwrap();
    let toml = "[collection]\nrounds = 300\ninterval = \"1s\"\nread_timeout = \"800ms\"\nseed = 12\n\
        [supervision]\nmax_restarts = 1000\nbackoff_min = \"100ms\"\nbackoff_max = \"200ms\"\n\
        [[sensors]]\ncount = 8\nlatency = [\"10ms\", \"50ms\"]\npanic_rate = 0.03\n";
    let config = sensor_actors::Config::from_toml_str(toml, "restarts.toml").unwrap();
    let summary = run_to_end(config, Some(dir.path())).await;
    assert!(summary.restarts >= 40, "{} restarts", summary.restarts);
    assert!(summary.sensors.iter().all(|s| s.restarts > 0 && s.state == "running"));
    assert_against_readings(&summary, dir.path(), 8);
}

/// Every sensor's count, min, max, mean, sample standard deviation and last value in `summary`
/// equal a naive two-pass computation over its values in `readings.jsonl` of `dir`.
fn assert_against_readings(summary: &sensor_actors::Summary, dir: &std::path::Path, sensors: usize) {
    let mut values: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for (_, sensor, value) in readings(dir) {
        values.entry(sensor).or_default().push(value);
    }
    assert_eq!(read_summary(dir).sensors, summary.sensors);
    assert_eq!(summary.sensors.len(), sensors);
    assert_eq!(summary.reads.ok, values.values().map(|v| v.len() as u64).sum::<u64>());
    for s in &summary.sensors {
        let v = &values[&s.id];
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let variance = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
        assert_eq!(s.count, v.len() as u64, "{}", s.id);
        assert_eq!(s.min, v.iter().copied().reduce(f64::min), "{}", s.id);
        assert_eq!(s.max, v.iter().copied().reduce(f64::max), "{}", s.id);
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs().max(1.0);
        assert!(close(s.mean.unwrap(), mean), "{}: {:?} vs {mean}", s.id, s.mean);
        assert!(
            close(s.stddev.unwrap(), variance.sqrt()),
            "{}: {:?} vs {}",
            s.id,
            s.stddev,
            variance.sqrt()
        );
        assert_eq!(s.last, v.last().copied(), "{}", s.id);
    }
}

/// Two runs of the same seed (5 simulated sensors, 50 rounds) write identical readings: the same
/// rounds, sensors and values in the same order, and the same accounting. A third run with
/// another seed differs.
#[actix_rt::test]
async fn same_seed_same_readings() {
    tokio::time::pause();
    let run = |seed: u64| async move {
        let dir = tempfile::tempdir().unwrap();
        let config = config(5, &format!("rounds = 50\ninterval = \"1s\"\nseed = {seed}"), "");
        let summary = run_to_end(config, Some(dir.path())).await;
        (readings(dir.path()), summary.reads)
    };
    let (first, first_reads) = run(7).await;
    let (second, second_reads) = run(7).await;
    assert!(first.len() > 200);
    assert_eq!(first, second);
    assert_eq!(first_reads, second_reads);
    let (other, _) = run(8).await;
    assert_ne!(first, other);
}
