//! An anomaly detector written outside the crate, registered by name and set up in TOML.
//!
//! Run it with `cargo run --example custom_detector` (about 3 seconds).
//!
//! `Drift` implements the public `Detector` trait: per sensor it learns a baseline (the mean of
//! its first `baseline` readings) and fires once when a reading strays more than `limit` from
//! it, re-arming when the sensor comes back within half the limit. `DriftFactory` implements
//! `DetectorFactory`: it validates `[analysis.drift]` with the same one-line errors as the
//! built-in detectors. `Collector::detector("drift", DriftFactory)` makes the name known to
//! the configuration, which then runs it on every sensor after the built-in detectors. Six
//! simulated sensors run 60 rounds; `temperature-3` gets the simulated driver's scripted
//! `drift` fault (+0.4 per read from round 20). Nothing here uses private API.
//!
//! Look for: the `drift` lines printed at the end (one, on `temperature-3`, some rounds after
//! 20, far from its baseline), `drift` in the summary's anomaly counts (`anomalies: drift 1`,
//! beside any built-in detector's), and the sensor's anomaly count in the table. Set `limit = -1` in `CONFIG` to
//! see a configuration error.

use std::future::pending;

use sensor_actors::analysis::{Detector, DetectorFactory, Observation, SettingsTable};
use sensor_actors::{Collector, ConfigError};

/// The run: fast simulated sensors, one of them drifting, and the detector's own table.
const CONFIG: &str = r#"
[collection]
interval = "50ms"
read_timeout = "40ms"
rounds = 60
seed = 3

[analysis.drift]
baseline = 10   # readings that set each sensor's baseline
limit = 5.0     # distance from the baseline that makes an anomaly (degrees)

[[sensors]]
kind = "temperature"
count = 6
latency = ["5ms", "30ms"]
error_rate = 0.0
faults = [{ round = 20, fault = "drift", rate = 0.4, sensor = "temperature-3" }]
"#;

/// The detector's per-sensor state: 24 bytes.
#[derive(Debug, Default)]
struct Drift {
    /// Sum of the baseline readings so far.
    sum: f64,
    /// Baseline readings so far.
    seen: u32,
    /// Whether the sensor is drifting (fired and not yet back).
    drifting: bool,
}

/// `[analysis.drift]`, validated.
#[derive(Debug, Clone, PartialEq)]
struct DriftSettings {
    /// Readings that set the baseline.
    baseline: u32,
    /// Distance from the baseline that fires.
    limit: f64,
}

impl Detector for Drift {
    type Settings = DriftSettings;

    fn observe(&mut self, s: &DriftSettings, obs: &mut Observation<'_>) -> Option<String> {
        let value = obs.value?;
        if self.seen < s.baseline {
            self.sum += value;
            self.seen += 1;
            return None;
        }
        let baseline = self.sum / f64::from(self.seen);
        let distance = (value - baseline).abs();
        if !self.drifting && distance > s.limit {
            self.drifting = true;
            return Some(format!(
                "value {value:.2} drifted {distance:.2} from its baseline {baseline:.2}"
            ));
        }
        if self.drifting && distance < s.limit / 2.0 {
            self.drifting = false;
        }
        None
    }
}

/// `[analysis.drift]` as written.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDrift {
    baseline: Option<u32>,
    limit: Option<f64>,
}

/// Registers `drift`.
struct DriftFactory;

impl DetectorFactory for DriftFactory {
    type Detector = Drift;

    fn defaults(&self) -> DriftSettings {
        DriftSettings {
            baseline: 20,
            limit: 10.0,
        }
    }

    fn settings(&self, table: SettingsTable<'_>) -> Result<DriftSettings, ConfigError> {
        let (baseline_field, limit_field) = (table.field("baseline"), table.field("limit"));
        let raw: RawDrift = table.parse()?;
        let d = self.defaults();
        let settings = DriftSettings {
            baseline: raw.baseline.unwrap_or(d.baseline),
            limit: raw.limit.unwrap_or(d.limit),
        };
        if settings.baseline == 0 {
            return Err(baseline_field.error("expected at least 1 reading, got 0"));
        }
        if !(settings.limit.is_finite() && settings.limit > 0.0) {
            return Err(limit_field.error(format!("expected a number above 0, got {}", settings.limit)));
        }
        Ok(settings)
    }
}

#[actix_rt::main]
async fn main() -> anyhow::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let collector = Collector::new().detector("drift", DriftFactory);
    let config = match collector.parse(CONFIG, "custom_detector.toml") {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let out = tempfile::tempdir()?;
    let summary = collector.out(out.path())?.run(config, pending()).await?;

    println!("anomalies found by `drift` (from anomalies.jsonl):");
    let lines = std::fs::read_to_string(out.path().join("anomalies.jsonl"))?;
    for line in lines.lines() {
        let anomaly: serde_json::Value = serde_json::from_str(line)?;
        if anomaly["detector"] == "drift" {
            let text = |key: &str| anomaly[key].as_str().unwrap_or_default().to_string();
            println!("  round {}: {}: {}", anomaly["round"], text("sensor"), text("detail"));
        }
    }
    println!("anomalies by detector: {:?}", summary.anomalies);
    print!("{}", summary.render_table());
    Ok(())
}
