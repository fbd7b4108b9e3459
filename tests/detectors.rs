//! Anomaly detectors end to end: scripted sensors replay crafted series through the sensor
//! actors, the rounds and the aggregator, and `anomalies.jsonl` is compared line by line; the
//! built-in detectors, and detectors registered by name on a `Collector` and set up in TOML.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use actix::{Actor, Context, Handler};

use common::{config, ms, read_jsonl, read_summary, run_to_end, Scripted, Step};
use sensor_actors::analysis::{Detector, DetectorFactory, Observation, SettingsTable};
use sensor_actors::driver::ReadError;
use sensor_actors::streams::{Anomalies, Delivery};
use sensor_actors::{Collector, Config, ConfigError};

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

// ---- detectors registered by name ---------------------------------------------------------------

/// `climb`, a detector from outside the crate: fires once a sensor's reading has risen `reads`
/// times in a row (rounds without a reading are skipped), then again only after a fall or a
/// level reading ends the climb.
#[derive(Debug, Default)]
struct Climb {
    /// Consecutive rises so far.
    rises: u32,
    /// The previous reading.
    last: Option<f64>,
}

/// `[analysis.climb]`.
#[derive(Debug, Clone, PartialEq)]
struct ClimbSettings {
    /// Rises in a row that make an anomaly.
    reads: u32,
}

impl Detector for Climb {
    type Settings = ClimbSettings;

    fn observe(&mut self, settings: &ClimbSettings, obs: &mut Observation<'_>) -> Option<String> {
        let value = obs.value?;
        let rose = self.last.is_some_and(|last| value > last);
        self.last = Some(value);
        self.rises = if rose { self.rises + 1 } else { 0 };
        (self.rises == settings.reads).then(|| format!("rose {} reads in a row to {value}", self.rises))
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClimb {
    reads: Option<u32>,
}

/// Registers `climb` (default: 5 rises).
struct ClimbFactory;

impl DetectorFactory for ClimbFactory {
    type Detector = Climb;

    fn defaults(&self) -> ClimbSettings {
        ClimbSettings { reads: 5 }
    }

    fn settings(&self, table: SettingsTable<'_>) -> Result<ClimbSettings, ConfigError> {
        let field = table.field("reads");
        let reads = table.parse::<RawClimb>()?.reads.unwrap_or(self.defaults().reads);
        if reads == 0 {
            return Err(field.error("expected at least 1 read, got 0"));
        }
        Ok(ClimbSettings { reads })
    }
}

/// Fires on every reading: to see the order of one observation's findings.
#[derive(Debug, Default)]
struct Always;

impl Detector for Always {
    type Settings = ();

    fn observe(&mut self, _: &(), obs: &mut Observation<'_>) -> Option<String> {
        obs.value.map(|v| format!("saw {v}"))
    }
}

struct AlwaysFactory;

impl DetectorFactory for AlwaysFactory {
    type Detector = Always;

    fn defaults(&self) {}

    fn settings(&self, table: SettingsTable<'_>) -> Result<(), ConfigError> {
        table.parse::<std::collections::BTreeMap<String, ()>>().map(|_| ())
    }
}

/// The built-in detectors, all switched off.
const BUILTINS_OFF: &str = "[analysis.out_of_range]\nenabled = false\n[analysis.spike]\nenabled = false\n[analysis.rate]\nenabled = false\n[analysis.stuck]\nenabled = false\n[analysis.stale]\nenabled = false\n";

/// A configuration of `count` temperature sensors over `rounds` rounds with `analysis` (more
/// TOML), parsed by `collector`.
fn parse_with(collector: &Collector, count: usize, rounds: usize, analysis: &str) -> Result<Config, ConfigError> {
    let text = format!(
        "[collection]\nrounds = {rounds}\ninterval = \"1s\"\nseed = 1\n{analysis}\n[[sensors]]\nkind = \"temperature\"\ncount = {count}\n"
    );
    collector.parse(&text, "test.toml")
}

/// Walks of whole steps (-2 to +2, half of them rises) from 25, with level readings and gaps
/// (about one round in eleven), one per sensor.
fn climbing_series(sensors: usize, rounds: usize) -> Vec<Vec<Option<f64>>> {
    let mut state = 11u64;
    (0..sensors)
        .map(|_| {
            let mut level = 25.0;
            (0..rounds)
                .map(|_| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let r = state >> 33;
                    level += [-2.0, -1.0, 0.0, 1.0, 1.0, 2.0][(r % 6) as usize];
                    (!(r >> 8).is_multiple_of(11)).then_some(level)
                })
                .collect()
        })
        .collect()
}

/// The naive reference of `climb`: the 1-based rounds where `series` completes its `reads`-th
/// rise in a row among its readings.
fn climbs(series: &[Option<f64>], reads: usize) -> Vec<u64> {
    let readings: Vec<(u64, f64)> = series
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.map(|v| (i as u64 + 1, v)))
        .collect();
    let mut fired = Vec::new();
    for k in reads..readings.len() {
        let rising = |j: usize| readings[j].1 > readings[j - 1].1;
        let run_ends_here = (k + 1 - reads..=k).all(rising);
        let longer = k > reads && rising(k - reads);
        if run_ends_here && !longer {
            fired.push(readings[k].0);
        }
    }
    fired
}

/// Sensors reading `series` (sensor i reads `series[i][round - 1]` after 10 + 7 i ms; `None`
/// is a failed read).
fn scripted(series: Vec<Vec<Option<f64>>>) -> Scripted {
    Scripted::new(move |i, round| match series[i][round as usize - 1] {
        Some(v) => Step::ok(ms(10 + 7 * i as u64), v),
        None => Step::err(ms(5), ReadError::Failed("scripted gap".into())),
    })
}

/// Runs `config` over `series` (see [`scripted`]), writing to a fresh folder; returns it.
async fn run_series(mut config: Config, series: Vec<Vec<Option<f64>>>) -> tempfile::TempDir {
    scripted(series).install(&mut config);
    let dir = tempfile::tempdir().unwrap();
    run_to_end(config, Some(dir.path())).await;
    dir
}

/// One anomaly: `(round, sensor, detector, value)`.
type Line = (u64, String, String, Option<f64>);

/// Every line of `anomalies.jsonl` in `dir`.
fn anomaly_lines(dir: &std::path::Path) -> Vec<Line> {
    read_jsonl(&dir.join("anomalies.jsonl"))
        .iter()
        .map(|l| {
            (
                l["round"].as_u64().unwrap(),
                l["sensor"].as_str().unwrap().to_string(),
                l["detector"].as_str().unwrap().to_string(),
                l["value"].as_f64(),
            )
        })
        .collect()
}

/// Records every anomaly it is sent, as [`anomaly_lines`] reads them from the file.
struct AnomalyRecorder(Arc<Mutex<Vec<Line>>>);

impl Actor for AnomalyRecorder {
    type Context = Context<Self>;
}

impl Handler<Anomalies> for AnomalyRecorder {
    type Result = ();

    fn handle(&mut self, msg: Anomalies, _ctx: &mut Context<Self>) {
        let mut seen = self.0.lock().unwrap();
        for a in msg.list.iter() {
            seen.push((a.round, a.sensor.to_string(), a.detector.to_string(), a.value));
        }
    }
}

/// Four sensors over 120 rounds of walks in whole steps with gaps, the built-in detectors off
/// and `climb` registered on the collector and set to `reads = 3` in `[analysis.climb]`, run
/// through the collector with `out` and a lossless anomaly subscriber: `anomalies.jsonl` and the
/// subscriber hold exactly the rounds the naive reference finds for each sensor, with the
/// reading's value and `detector = "climb"`, in configuration order; the summary counts them
/// under `climb` and per sensor.
#[actix_rt::test]
async fn a_registered_detector_fires_where_the_reference_says_and_is_counted() {
    tokio::time::pause();
    let (sensors, rounds, reads) = (4, 120, 3);
    let series = climbing_series(sensors, rounds);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorder = AnomalyRecorder(seen.clone()).start();
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::new()
        .detector("climb", ClimbFactory)
        .subscribe_with(recorder.recipient::<Anomalies>(), Delivery::lossless())
        .out(dir.path())
        .unwrap();
    let analysis = format!("{BUILTINS_OFF}[analysis.climb]\nreads = {reads}\n");
    let mut config = parse_with(&collector, sensors, rounds, &analysis).unwrap();
    assert_eq!(config.analysis.detectors().collect::<Vec<_>>(), ["climb"]);
    scripted(series.clone()).install(&mut config);
    let summary = collector.run(config, std::future::pending()).await.unwrap();

    let id = |i: usize| format!("temperature-{}", i + 1);
    let mut expected = Vec::new();
    for round in 1..=rounds as u64 {
        for (i, s) in series.iter().enumerate() {
            if climbs(s, reads).contains(&round) {
                expected.push((round, id(i), "climb".to_string(), s[round as usize - 1]));
            }
        }
    }
    let per_sensor: Vec<u64> = series.iter().map(|s| climbs(s, reads).len() as u64).collect();
    assert!(
        per_sensor.iter().all(|n| *n >= 2),
        "the series must climb: {per_sensor:?}"
    );
    assert_eq!(anomaly_lines(dir.path()), expected);
    assert_eq!(*seen.lock().unwrap(), expected);

    assert_eq!(summary.anomalies.len(), 1);
    assert_eq!(summary.anomalies["climb"], expected.len() as u64);
    let counts: Vec<u64> = summary.sensors.iter().map(|s| s.anomalies).collect();
    assert_eq!(counts, per_sensor);
    assert_eq!(read_summary(dir.path()).anomalies, summary.anomalies);
}

/// Two sensors reading 200 C (out of range) for 3 rounds, with `zeta` then `alpha` registered
/// (both fire on every reading) and `stale`, `spike`, `rate` and `stuck` left on: each reading's
/// findings come in registration order, built-ins first (`out_of_range`, `zeta`, `alpha`), not
/// by name; the summary counts each detector by its name.
#[actix_rt::test]
async fn one_observation_s_findings_come_in_registration_order() {
    tokio::time::pause();
    let collector = Collector::new()
        .detector("zeta", AlwaysFactory)
        .detector("alpha", AlwaysFactory);
    let config = parse_with(&collector, 2, 3, "").unwrap();
    let dir = run_series(config, vec![vec![Some(200.0); 3], vec![Some(201.0); 3]]).await;
    let mut expected = Vec::new();
    for round in 1..=3 {
        for (i, value) in [200.0, 201.0].into_iter().enumerate() {
            for detector in ["out_of_range", "zeta", "alpha"] {
                expected.push((
                    round,
                    format!("temperature-{}", i + 1),
                    detector.to_string(),
                    Some(value),
                ));
            }
        }
    }
    assert_eq!(anomaly_lines(dir.path()), expected);
    let summary = read_summary(dir.path());
    let counts: Vec<(&str, u64)> = summary.anomalies.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(counts, [("alpha", 6), ("out_of_range", 6), ("zeta", 6)]);
    assert!(summary.sensors.iter().all(|s| s.anomalies == 9));
}

/// A registered detector runs with its defaults when `[analysis]` does not mention it (`climb`:
/// 5 rises in a row), and `enabled = false` in its table silences it, on the same series.
#[actix_rt::test]
async fn a_registered_detector_runs_by_default_and_enabled_false_silences_it() {
    tokio::time::pause();
    let series = vec![(1..=20).map(|r| Some(20.0 + (r % 8) as f64 * 0.5)).collect::<Vec<_>>()];
    let collector = Collector::new().detector("climb", ClimbFactory);

    let config = parse_with(&collector, 1, 20, BUILTINS_OFF).unwrap();
    let dir = run_series(config, series.clone()).await;
    let rounds: Vec<u64> = anomaly_lines(dir.path()).iter().map(|l| l.0).collect();
    assert_eq!(rounds, climbs(&series[0], 5));
    assert_eq!(rounds, [6, 13]);

    let off = format!("{BUILTINS_OFF}[analysis.climb]\nenabled = false\nreads = 2\n");
    let config = parse_with(&collector, 1, 20, &off).unwrap();
    assert_eq!(config.analysis.detectors().count(), 0);
    let dir = run_series(config, series).await;
    assert!(anomaly_lines(dir.path()).is_empty());
    let summary = read_summary(dir.path());
    assert!(summary.anomalies.is_empty());
    assert_eq!(summary.sensors.get(0).unwrap().anomalies, 0);
}

/// A registered detector's configuration errors are one line naming file, field and
/// expectation: its own validation, an unknown key (with the `enabled` every detector has), a
/// mistyped `enabled`, a wrong type; an unknown `[analysis.<name>]` lists every registered
/// name; and a collector without `climb` rejects its table.
#[test]
fn a_registered_detector_s_config_errors_are_one_line() {
    let collector = Collector::new().detector("climb", ClimbFactory);
    let error = |analysis: &str| parse_with(&collector, 1, 1, analysis).unwrap_err().to_string();
    assert_eq!(
        error("[analysis.climb]\nreads = 0"),
        "test.toml: analysis.climb.reads: expected at least 1 read, got 0"
    );
    assert_eq!(
        error("[analysis.climb]\nread = 3"),
        "test.toml: analysis.climb.read: unknown field `read`, expected `reads`, or `enabled`"
    );
    assert_eq!(
        error("[analysis.climb]\nenabled = \"no\""),
        "test.toml: analysis.climb.enabled: expected true or false, got \"no\""
    );
    assert_eq!(
        error("[analysis.climb]\nreads = -1"),
        "test.toml: analysis.climb.reads: invalid value: integer `-1`, expected u32"
    );
    assert_eq!(
        error("[analysis.clmb]\nreads = 3"),
        "test.toml: analysis.clmb: unknown detector, expected one of out_of_range, spike, rate, stuck, stale, climb"
    );
    assert_eq!(
        parse_with(&Collector::new(), 1, 1, "[analysis.climb]\nreads = 3")
            .unwrap_err()
            .to_string(),
        "test.toml: analysis.climb: unknown detector, expected one of out_of_range, spike, rate, stuck, stale"
    );
    let settings = sensor_actors::testing::detector::settings("climb", ClimbFactory, "climb = { reads = 4 }");
    assert_eq!(settings.unwrap(), Some(ClimbSettings { reads: 4 }));
}

/// Panics on a reading of 666 (a bug in a registered detector).
#[derive(Debug, Default)]
struct Fragile;

impl Detector for Fragile {
    type Settings = ();

    fn observe(&mut self, _: &(), obs: &mut Observation<'_>) -> Option<String> {
        if obs.value == Some(666.0) {
            panic!("cannot handle 666");
        }
        None
    }
}

struct FragileFactory;

impl DetectorFactory for FragileFactory {
    type Detector = Fragile;

    fn defaults(&self) {}

    fn settings(&self, table: SettingsTable<'_>) -> Result<(), ConfigError> {
        table.parse::<toml::Table>().map(|_| ())
    }
}

/// A registered detector that panics on one reading (`fragile`, registered between
/// `out_of_range` and `zeta`) costs its own verdict on that reading and nothing else: the
/// detectors after it still run on it (`zeta` fires), the reading is counted in the sensor's
/// statistics, every read is accounted for and the run ends normally.
#[actix_rt::test]
async fn a_panicking_detector_costs_its_verdict_and_nothing_else() {
    tokio::time::pause();
    let collector = Collector::new()
        .detector("fragile", FragileFactory)
        .detector("zeta", AlwaysFactory);
    let config = parse_with(&collector, 2, 3, "").unwrap();
    let dir = run_series(
        config,
        vec![vec![Some(20.0), Some(666.0), Some(21.0)], vec![Some(22.0); 3]],
    )
    .await;
    let summary = read_summary(dir.path());
    assert_eq!((summary.reads.requested, summary.reads.ok), (6, 6));
    assert_eq!(summary.sensors.get(0).unwrap().count, 3);
    assert_eq!(summary.sensors.get(0).unwrap().max, Some(666.0));
    let zeta = anomaly_lines(dir.path())
        .into_iter()
        .filter(|l| l.2 == "zeta")
        .map(|l| (l.0, l.1))
        .collect::<Vec<_>>();
    assert_eq!(zeta.len(), 6, "{zeta:?}");
    assert!(zeta.contains(&(2, "temperature-1".to_string())));
}
