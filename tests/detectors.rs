//! Anomaly detectors end to end: scripted sensors replay crafted series through the sensor
//! actors, the rounds and the aggregator, and `anomalies.jsonl` is compared line by line.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use common::{config, ms, read_jsonl, run_to_end, Scripted, Step};
use sensor_actors::driver::ReadError;

const ROUNDS: usize = 60;

/// A random walk like the simulated sensor's (steps uniform in +-0.5 from 25), one value per
/// `Some` slot of `shape`; `None` slots stay `None` and do not advance the walk.
fn walk(seed: u64, shape: impl Fn(usize) -> bool) -> Vec<Option<f64>> {
    let mut state = seed;
    let mut v = 25.0;
    (1..=ROUNDS)
        .map(|round| {
            shape(round).then(|| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                v += ((state >> 11) as f64 / (1u64 << 53) as f64) - 0.5;
                v
            })
        })
        .collect()
}

/// The crafted series, one per sensor, indexed by round - 1.
fn series() -> Vec<Vec<Option<f64>>> {
    let clean = walk(1, |_| true);
    // A machine warming up 0.4 per round from 75: crosses the 85 C bound of `temperature`.
    let hot: Vec<Option<f64>> = walk(2, |_| true)
        .iter()
        .enumerate()
        .map(|(i, v)| v.map(|v| v + 50.0 + 0.4 * (i + 1) as f64))
        .collect();
    let mut spike = walk(3, |_| true);
    spike[39] = spike[39].map(|v| v + 15.0);
    let mut stuck = walk(4, |_| true);
    let held = stuck[29];
    for v in &mut stuck[29..45] {
        *v = held;
    }
    let stale = walk(5, |round| !(20..=26).contains(&round));
    vec![clean, hot, spike, stuck, stale]
}

/// Five sensors over 60 rounds with the default detectors: a clean random walk (quiet), a
/// warming machine crossing 85 C (`out_of_range` on exactly the readings above 85), a walk with
/// one +15 jump in round 40 (`spike` in round 40 only, not on the way back), a walk holding one
/// value for rounds 30-45 (`stuck` once, in round 39, the 10th identical read) and a walk whose
/// reads fail in rounds 20-26 (`stale` once, in round 24, the 5th round without a reading).
#[actix_rt::test]
async fn each_detector_fires_on_its_series_and_only_there() {
    tokio::time::pause();
    let series = Arc::new(series());
    let replay = series.clone();
    let scripted = Scripted::new(move |i, round| match replay[i][round as usize - 1] {
        Some(v) => Step::ok(ms(10), v),
        None => Step::err(ms(10), ReadError::Failed("scripted gap".into())),
    });
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(5, &format!("rounds = {ROUNDS}\ninterval = \"1s\"\nseed = 1"), "");
    scripted.install(&mut config);
    let summary = run_to_end(config, Some(dir.path())).await;
    assert_eq!(summary.reads.ok + summary.reads.failed, 5 * ROUNDS as u64);

    let id = |i: usize| format!("temperature-{}", i + 1);
    let hot_rounds: Vec<u64> = (1..=ROUNDS as u64)
        .filter(|r| series[1][*r as usize - 1].unwrap() > 85.0)
        .collect();
    assert!(hot_rounds.len() > 10 && hot_rounds[0] > 10, "{hot_rounds:?}");
    let mut expected: BTreeSet<(u64, String, String)> = hot_rounds
        .iter()
        .map(|r| (*r, id(1), "out_of_range".to_string()))
        .collect();
    expected.insert((40, id(2), "spike".into()));
    expected.insert((39, id(3), "stuck".into()));
    expected.insert((24, id(4), "stale".into()));

    let lines = read_jsonl(&dir.path().join("anomalies.jsonl"));
    let got: BTreeSet<(u64, String, String)> = lines
        .iter()
        .map(|l| {
            (
                l["round"].as_u64().unwrap(),
                l["sensor"].as_str().unwrap().to_string(),
                l["detector"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(lines.len(), got.len(), "no anomaly is written twice");
    assert_eq!(got, expected);

    for line in &lines {
        let round = line["round"].as_u64().unwrap() as usize;
        let sensor: usize = line["sensor"].as_str().unwrap()[12..].parse().unwrap();
        assert_eq!(line["value"].as_f64(), series[sensor - 1][round - 1], "{line}");
        assert!(!line["detail"].as_str().unwrap().is_empty());
    }
    let counts: Vec<u64> = summary.sensors.iter().map(|s| s.anomalies).collect();
    assert_eq!(counts, [0, hot_rounds.len() as u64, 1, 1, 1]);
    assert_eq!(summary.anomalies["out_of_range"], hot_rounds.len() as u64);
}

/// Each group analyses its members' outcomes in the order their answers arrive, here the reverse
/// of the configuration order (sensor i answers after 60 - 10 i ms): six sensors reading 200 C
/// in rounds 1-3, each reading out of range, and a seventh failing every read, stale from round
/// 3 on (`stale.rounds = 3`). `anomalies.jsonl` still lists each round's anomalies in
/// configuration order, and per sensor in the detectors' order, with the reading's own value.
#[actix_rt::test]
async fn anomalies_are_written_in_configuration_order_whatever_the_arrival_order() {
    tokio::time::pause();
    let scripted = Scripted::new(|i, _round| match i {
        6 => Step::err(ms(5), ReadError::Failed("scripted".into())),
        _ => Step::ok(ms(60 - 10 * i as u64), 200.0 + i as f64),
    });
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(
        7,
        "rounds = 3\ninterval = \"1s\"\nseed = 1",
        "[analysis]\nstale = { rounds = 3 }\n",
    );
    scripted.install(&mut config);
    run_to_end(config, Some(dir.path())).await;
    let got: Vec<(u64, String, String, Option<f64>)> = read_jsonl(&dir.path().join("anomalies.jsonl"))
        .iter()
        .map(|l| {
            (
                l["round"].as_u64().unwrap(),
                l["sensor"].as_str().unwrap().to_string(),
                l["detector"].as_str().unwrap().to_string(),
                l["value"].as_f64(),
            )
        })
        .collect();
    let mut expected = Vec::new();
    for round in 1..=3 {
        for i in 0..6 {
            let id = format!("temperature-{}", i + 1);
            expected.push((round, id, "out_of_range".to_string(), Some(200.0 + i as f64)));
        }
        if round == 3 {
            expected.push((3, "temperature-7".into(), "stale".into(), None));
        }
    }
    assert_eq!(got, expected);
}
