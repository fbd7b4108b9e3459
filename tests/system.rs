//! The `system` driver on the machine running the tests: real `/proc` values through the whole
//! pipeline (Linux only).
#![cfg(target_os = "linux")]

use std::path::Path;

use sensor_actors::{run, Config, RunOptions};

/// A sensor per available metric, three rounds: every read succeeds, the values are plausible
/// for their metric (load averages and pressures non-negative, pressures at most 100 %, memory
/// available between 1 MiB and the machine's total) and carry the metric's unit.
#[actix_rt::test]
async fn reads_real_metrics() {
    tokio::time::pause();
    let mut metrics = vec!["load1", "load5", "load15", "memory_available"];
    if Path::new("/proc/pressure/cpu").exists() {
        metrics.extend(["cpu_pressure", "memory_pressure", "io_pressure"]);
    }
    let mut text = String::from("[collection]\nrounds = 3\ninterval = \"1s\"\n");
    for m in &metrics {
        text += &format!("[[sensors]]\ndriver = \"system\"\nid = \"{m}\"\nmetric = \"{m}\"\n");
    }
    let config = Config::from_toml_str(&text, "system.toml").unwrap();
    let summary = run(config, RunOptions::default(), std::future::pending())
        .await
        .unwrap();
    assert_eq!(summary.reads.ok, 3 * metrics.len() as u64, "{:?}", summary.reads);
    let total_mib = std::fs::read_to_string("/proc/meminfo")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap()
        / 1024.0;
    for s in &summary.sensors {
        let (min, max) = (s.min.unwrap(), s.max.unwrap());
        match s.id.as_str() {
            "memory_available" => {
                assert!(min >= 1.0 && max <= total_mib, "{s:?}");
                assert_eq!(s.unit, "MiB");
            }
            id if id.ends_with("_pressure") => {
                assert!(min >= 0.0 && max <= 100.0, "{s:?}");
                assert_eq!(s.unit, "%");
            }
            _ => assert!(min >= 0.0, "{s:?}"),
        }
        assert_eq!(s.kind, s.id);
    }
}
