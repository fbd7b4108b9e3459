//! Replays a real recorded series with known anomalies and prints what the default detectors
//! caught against the labels.
//!
//! ```text
//! cargo run --release --example replay_nab
//! ```
//!
//! The series is the Numenta Anomaly Benchmark's machine temperature (22,695 readings, one per
//! 5 minutes, `tests/data/nab/`), replayed by `examples/replay_nab.toml` as one sensor with rounds
//! back to back. Look for: each of NAB's four labelled windows with at least one anomaly inside
//! (the first one says which detector fired and why), and the anomalies outside the windows per
//! 1,000 readings. `readings.jsonl` and `anomalies.jsonl` are left in `target/replay_nab/`.

#[path = "common/labels.rs"]
mod labels;

use std::path::Path;

fn main() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = sensor_actors::Config::load(&root.join("examples/replay_nab.toml"))?;
    let out = root.join("target/replay_nab");
    let options = sensor_actors::RunOptions { out: Some(out.clone()) };
    let summary = actix_rt::System::new().block_on(sensor_actors::run(config, options, std::future::pending()))?;
    let data = root.join("tests/data/nab");
    let events = labels::nab_events(
        &data.join("machine_temperature_system_failure.csv"),
        &data.join("anomaly_windows.json"),
        "machine-1",
    );
    let anomalies = labels::read_anomalies(&out.join("anomalies.jsonl"));
    let score = labels::score(&events, &anomalies, summary.reads.ok);
    print!("{}", score.render());
    for a in &score.outside {
        println!(
            "  outside: row {} {}: {}",
            a.source_row.unwrap_or(0),
            a.detector,
            a.detail
        );
    }
    Ok(())
}
