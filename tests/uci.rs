//! Missing values and staleness on real dropouts: the UCI Air Quality recording (tests/data),
//! whose `-200` cells are device outages and a gas channel that died for good.

use std::collections::BTreeMap;
use std::future::pending;

use sensor_actors::{run, Config, RunOptions};

const DATA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/uci_airquality/AirQualityUCI.csv"
);

/// The naive reference: for one column, the number of rows, of missing (`-200`) cells, and the
/// 1-based rows at which a run of missing cells reaches `stale_after` (where `stale` must fire).
fn reference(column: &str, stale_after: usize) -> (usize, usize, Vec<u64>) {
    let mut reader = csv::Reader::from_path(DATA).unwrap();
    let at = reader.headers().unwrap().iter().position(|h| h == column).unwrap();
    let (mut rows, mut missing, mut run, mut stale) = (0, 0, 0, Vec::new());
    for record in reader.records() {
        rows += 1;
        if record.unwrap()[at].trim() == "-200" {
            missing += 1;
            run += 1;
            if run == stale_after {
                stale.push(rows as u64);
            }
        } else {
            run = 0;
        }
    }
    (rows, missing, stale)
}

/// Replaying `CO(GT)` and `NMHC(GT)` with `-200` as the missing marker: every missing cell is a
/// failed read (not a number), every other cell a reading; `stale` fires exactly once per run
/// of 5 or more missing rows, in the round (= row) that completes it, for both the outages and
/// the dead `NMHC(GT)` channel; and the run ends by itself when the file is exhausted.
#[actix_rt::test]
async fn missing_values_are_failed_reads_and_long_outages_are_stale() {
    tokio::time::pause();
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        r#"
[collection]
interval = "0s"
read_timeout = "1s"
[[sensors]]
driver = "replay"
path = "{DATA}"
value_column = "CO(GT)"
id = "co"
missing = ["-200"]
[[sensors]]
driver = "replay"
path = "{DATA}"
value_column = "NMHC(GT)"
id = "nmhc"
missing = ["-200"]
[analysis]
stale = {{ rounds = 5 }}
"#
    );
    let config = Config::from_toml_str(&toml, "uci.toml").unwrap();
    let summary = run(
        config,
        RunOptions {
            out: Some(dir.path().to_path_buf()),
        },
        pending(),
    )
    .await
    .unwrap();

    let (rows, co_missing, co_stale) = reference("CO(GT)", 5);
    let (_, nmhc_missing, nmhc_stale) = reference("NMHC(GT)", 5);
    assert_eq!(rows, 9357);
    // The recording's shape: many outages on CO(GT); NMHC(GT) dead from row 1,232 to the end,
    // which is one stale episode, reported once (its last).
    assert_eq!(
        (co_stale.len(), nmhc_stale.len()),
        (28, 5),
        "{co_stale:?} {nmhc_stale:?}"
    );
    assert_eq!(nmhc_stale.last(), Some(&1236));
    assert_eq!(
        summary.rounds,
        rows as u64 + 1,
        "one more round finds both sources exhausted"
    );
    assert_eq!(summary.reads.failed, (co_missing + nmhc_missing) as u64);
    let count = |id: &str| summary.sensors.iter().find(|s| s.id == id).unwrap().count as usize;
    assert_eq!(count("co"), rows - co_missing);
    assert_eq!(count("nmhc"), rows - nmhc_missing);
    assert!(summary.sensors.iter().all(|s| s.state == "stopped"));

    let mut stale: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for line in std::fs::read_to_string(dir.path().join("anomalies.jsonl"))
        .unwrap()
        .lines()
    {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["detector"] == "stale" {
            stale
                .entry(v["sensor"].as_str().unwrap().to_string())
                .or_default()
                .push(v["round"].as_u64().unwrap());
        }
    }
    assert_eq!(stale["co"], co_stale);
    assert_eq!(stale["nmhc"], nmhc_stale);
}
