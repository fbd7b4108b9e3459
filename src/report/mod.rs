//! What a run reports: the final [`Summary`] (written as `summary.json` by the JSONL sink,
//! printed as a table by the binary) and the process figures in it. The schemas are in
//! `docs/outputs.md`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

pub use crate::data::ReadCounts;
pub(crate) use sensors::SensorRow;
pub use sensors::{SensorEntries, SensorList, SensorSummary};

mod sensors;

/// What the aggregator hands back at the end of a run.
#[derive(Debug)]
pub(crate) struct Finished {
    /// The complete summary.
    pub(crate) summary: Summary,
    /// Why the run could not go on as configured (groups given up after their actor stopped
    /// too often), if it could not.
    pub(crate) failure: Option<String>,
}

/// The final report of a run, written as `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Summary {
    /// Rounds run.
    pub rounds: u64,
    /// Ticks skipped because a round overran the interval.
    pub skipped_rounds: u64,
    /// Read accounting: `requested = ok + failed + timed_out + unavailable`.
    pub reads: ReadCounts,
    /// Restarts over every sensor.
    pub restarts: u64,
    /// Round wall time percentiles, in milliseconds.
    pub round_ms: Percentiles,
    /// Latency percentiles of successful reads, in milliseconds.
    pub read_latency_ms: Percentiles,
    /// Anomalies per detector.
    pub anomalies: BTreeMap<String, u64>,
    /// Supervision events per kind.
    pub events: BTreeMap<String, u64>,
    /// The seed of the run (pass it with `--seed` to reproduce the run).
    pub seed: u64,
    /// Per-sensor statistics, in configuration order, then the sensors added while running in
    /// the order they were added (kept compact: see [`SensorList`]).
    pub sensors: SensorList,
    /// The supervision tree's groups as the run ended: the configured groups, then the shards of
    /// ungrouped sensors.
    #[serde(default)]
    pub groups: Vec<GroupSummary>,
    /// What each subscriber of the streams received and missed.
    #[serde(default)]
    pub subscribers: Vec<SubscriberStats>,
    /// Counts of the drivers' own, per driver that keeps any
    /// ([`DriverFactory::counts`](crate::driver::DriverFactory::counts)): `mqtt` has `received`
    /// and `superseded`.
    #[serde(default)]
    pub drivers: BTreeMap<String, BTreeMap<String, u64>>,
    /// What each output attached with [`Collector::settle`](crate::Collector::settle) reported
    /// when the run's streams had ended, before this summary was made (the MQTT output: its
    /// messages per stream and outcome).
    #[serde(default)]
    pub outputs: Vec<OutputReport>,
    /// What the process cost.
    pub process: ProcessStats,
    /// On a virtual clock ([`Clock::Virtual`](crate::Clock::Virtual)): its start. `process`
    /// then holds only the simulated `wall_seconds` (the machine's figures vary from run to run,
    /// and the files of two runs compare byte for byte).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_clock: Option<chrono::DateTime<chrono::Utc>>,
}

/// What one subscriber received and missed over a run, as in `summary.json`'s `subscribers`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SubscriberStats {
    /// The subscriber's name ([`Delivery::named`](crate::streams::Delivery::named), else `<stream>#<k>`).
    pub name: String,
    /// The stream (`readings`, `anomalies`, `journal`, `rounds`, `end`).
    pub stream: String,
    /// Messages handled by the subscriber.
    pub delivered: u64,
    /// Items (readings, anomalies, events, summaries) in the messages handled.
    pub delivered_items: u64,
    /// Messages dropped: its queue was full, or its actor had stopped.
    pub missed: u64,
    /// Items in the messages dropped.
    pub missed_items: u64,
}

/// An output's counts when the run's streams had ended, as in `summary.json`'s `outputs`: the
/// answer to [`Settle`](crate::streams::Settle).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct OutputReport {
    /// The output's name (`mqtt`).
    pub name: String,
    /// Per stream (`readings`, ...), messages per outcome (`produced`, `published`, `dropped`,
    /// ...).
    pub streams: BTreeMap<String, BTreeMap<String, u64>>,
    /// The output's other counts (`connections`, `connection_failures`, ...).
    #[serde(default)]
    pub counts: BTreeMap<String, u64>,
}

impl OutputReport {
    /// A report of output `name`, with no counts yet.
    pub fn new(name: impl Into<String>) -> Self {
        OutputReport {
            name: name.into(),
            ..OutputReport::default()
        }
    }

    /// Adds stream `stream` with its messages per outcome.
    pub fn stream<'a>(mut self, stream: &str, outcomes: impl IntoIterator<Item = (&'a str, u64)>) -> Self {
        let counts = outcomes.into_iter().map(|(o, n)| (o.to_string(), n)).collect();
        self.streams.insert(stream.to_string(), counts);
        self
    }

    /// Adds count `name`.
    pub fn count(mut self, name: &str, n: u64) -> Self {
        self.counts.insert(name.to_string(), n);
        self
    }

    /// Messages of `stream` with `outcome` (0 when not reported).
    pub fn get(&self, stream: &str, outcome: &str) -> u64 {
        self.streams
            .get(stream)
            .and_then(|s| s.get(outcome))
            .copied()
            .unwrap_or(0)
    }
}

/// Latency percentiles in milliseconds (0 when nothing was measured).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest value.
    pub max: f64,
}

/// A group of the supervision tree at the end of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct GroupSummary {
    /// The `[[groups]]` entry's name, or `shard-N` for a shard of ungrouped sensors.
    pub name: String,
    /// `one_for_one`, `one_for_all` or `rest_for_one` (a shard: `one_for_one`).
    pub strategy: String,
    /// `true` for a shard of ungrouped sensors (each with its own intensity).
    pub shard: bool,
    /// The group it is nested in (`parent`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// `running`, `restarting` (waiting for its backoff: its actor stopped, or its supervisor
    /// restarts it), `stopped` (it or an ancestor escalated and no decision was made before the
    /// run ended), `escalated` (given up after it or an ancestor escalated) or `given_up` (its
    /// actor stopped too often).
    pub state: String,
    /// Restarts of the group's actor by the root, and of the group as a whole by its supervisor.
    pub restarts: u32,
    /// Its sensors.
    pub sensors: u64,
}

/// The memory a run on this machine may use, read before it allocates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MachineMemory {
    /// The most the process can hold: `MemTotal` of `/proc/meminfo`, or the cgroup's
    /// `memory.max` when that is lower (a container).
    pub limit_bytes: u64,
    /// What is free for it now: `MemAvailable` (at most `limit_bytes`).
    pub available_bytes: u64,
}

impl MachineMemory {
    /// A limit and an availability (for tests and for callers that know better).
    pub fn new(limit_bytes: u64, available_bytes: u64) -> Self {
        MachineMemory {
            limit_bytes,
            available_bytes: available_bytes.min(limit_bytes),
        }
    }

    /// This machine's, from `/proc/meminfo` and `/sys/fs/cgroup/memory.max`; `None` where
    /// there is no `/proc/meminfo`.
    pub fn read() -> Option<MachineMemory> {
        let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
        let field = |name: &str| -> Option<u64> {
            let line = meminfo.lines().find(|l| l.starts_with(name))?;
            let kib: u64 = line[name.len()..]
                .trim_start_matches(':')
                .split_whitespace()
                .next()?
                .parse()
                .ok()?;
            Some(kib * 1024)
        };
        let total = field("MemTotal")?;
        let available = field("MemAvailable").unwrap_or(total);
        let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
            .ok()
            .and_then(|text| text.trim().parse::<u64>().ok());
        Some(MachineMemory::new(cgroup.map_or(total, |c| c.min(total)), available))
    }
}

/// CPU, memory and time used by the process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ProcessStats {
    /// Peak resident set size.
    pub peak_rss_bytes: u64,
    /// User plus system CPU time.
    pub cpu_seconds: f64,
    /// Wall time since the run started.
    pub wall_seconds: f64,
}

impl ProcessStats {
    /// The resident set size now, from `/proc/self/statm` (0 where there is none).
    pub fn current_rss_bytes() -> u64 {
        let Ok(statm) = std::fs::read_to_string("/proc/self/statm") else {
            return 0;
        };
        let pages: u64 = statm
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        // SAFETY: sysconf only reads a system constant.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        pages * page.max(0) as u64
    }

    /// Measures the process now; `wall_seconds` is left for the caller.
    pub fn measure() -> ProcessStats {
        // SAFETY: getrusage writes into the zeroed struct we pass and reads nothing else.
        let usage = unsafe {
            let mut usage: libc::rusage = std::mem::zeroed();
            if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
                return ProcessStats::default();
            }
            usage
        };
        let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        // Linux reports ru_maxrss in KiB, macOS in bytes.
        let rss_unit = if cfg!(target_os = "macos") { 1 } else { 1024 };
        ProcessStats {
            peak_rss_bytes: peak_rss_from_proc().unwrap_or((usage.ru_maxrss.max(0) as u64) * rss_unit),
            cpu_seconds: seconds(usage.ru_utime) + seconds(usage.ru_stime),
            wall_seconds: 0.0,
        }
    }
}

/// The peak resident set size of this program image (`VmHWM` in `/proc/self/status`), which,
/// unlike `ru_maxrss`, starts afresh when a launcher such as `cargo run` execs the binary.
fn peak_rss_from_proc() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

impl Summary {
    /// Writes the summary as an aligned text table, as printed at the end of a run: every sensor
    /// up to [`TABLE_ROWS`], else only the notable ones.
    pub fn render_table(&self) -> String {
        let mut out = String::new();
        let r = &self.reads;
        let _ = writeln!(
            out,
            "{} rounds ({} skipped), seed {}: {} reads requested, {} ok, {} failed, {} timed out, {} unavailable; {} restarts",
            self.rounds, self.skipped_rounds, self.seed, r.requested, r.ok, r.failed, r.timed_out, r.unavailable, self.restarts
        );
        let p = &self.round_ms;
        let _ = writeln!(
            out,
            "round ms: p50 {:.1}, p95 {:.1}, p99 {:.1}, max {:.1}; anomalies: {}",
            p.p50,
            p.p95,
            p.p99,
            p.max,
            if self.anomalies.is_empty() {
                "none".to_string()
            } else {
                self.anomalies
                    .iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
        let _ = match self.virtual_clock {
            Some(start) => writeln!(
                out,
                "virtual clock from {}: {:.3} s of simulated time",
                crate::sinks::rfc3339(&start),
                self.process.wall_seconds
            ),
            None => writeln!(
                out,
                "process: peak rss {:.1} MiB, cpu {:.2} s, wall {:.2} s",
                self.process.peak_rss_bytes as f64 / (1024.0 * 1024.0),
                self.process.cpu_seconds,
                self.process.wall_seconds
            ),
        };
        // Subscribers that missed something (a bounded queue overflowed, or the actor stopped).
        let missed: Vec<String> = self
            .subscribers
            .iter()
            .filter(|s| s.missed > 0)
            .map(|s| {
                let total = s.delivered_items + s.missed_items;
                let items = match s.stream.as_str() {
                    "journal" => "events",
                    "rounds" => "round summaries",
                    "end" => "run summaries",
                    stream => stream,
                };
                format!("{} missed {} of {total} {items}", s.name, s.missed_items)
            })
            .collect();
        if !missed.is_empty() {
            let _ = writeln!(out, "subscribers: {}", missed.join("; "));
        }
        // The drivers' own counts (the mqtt driver's values received and superseded).
        for (driver, counts) in &self.drivers {
            let counts: Vec<String> = counts.iter().map(|(name, n)| format!("{name} {n}")).collect();
            let _ = writeln!(out, "driver {driver}: {}", counts.join(", "));
        }
        // A large run lists only the sensors worth a look (not running, restarted, or with
        // anomalies), up to a screenful; summary.json always has every sensor.
        // One pass over the entries (a run's are made as they are asked for).
        let notable = |s: &SensorSummary| s.state != "running" || s.restarts > 0 || s.anomalies > 0;
        let (mut shown, mut notables) = (Vec::new(), 0);
        if self.sensors.len() <= TABLE_ROWS {
            shown = self.sensors.to_vec();
        } else {
            for s in self.sensors.iter().filter(notable) {
                notables += 1;
                if shown.len() < TABLE_ROWS {
                    shown.push(s);
                }
            }
        }
        let width = shown.iter().map(|s| s.id.len()).max().unwrap_or(2).max(6);
        let _ = writeln!(
            out,
            "{:<width$}  {:<11} {:>8} {:>8} {:>10} {:>10} {:>10} {:>9} {:>9}",
            "sensor", "state", "restarts", "count", "min", "max", "mean", "stddev", "anomalies"
        );
        let num = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.3}"));
        for s in &shown {
            let _ = writeln!(
                out,
                "{:<width$}  {:<11} {:>8} {:>8} {:>10} {:>10} {:>10} {:>9} {:>9}",
                s.id,
                s.state,
                s.restarts,
                s.count,
                num(s.min),
                num(s.max),
                num(s.mean),
                num(s.stddev),
                s.anomalies
            );
        }
        if shown.len() < self.sensors.len() {
            let quiet = self.sensors.len() - notables;
            let _ = writeln!(
                out,
                "({} of {} sensors listed: those not running, restarted or with anomalies; {quiet} ran quietly; summary.json has them all)",
                shown.len(),
                self.sensors.len()
            );
        }
        out
    }
}

/// Sensors the summary table lists in full; above this it lists only the notable ones.
pub const TABLE_ROWS: usize = 50;

#[cfg(test)]
mod tests {
    use super::*;

    fn sensor(i: usize, state: &str, restarts: u32) -> SensorSummary {
        SensorSummary {
            id: format!("t-{i}"),
            group: None,
            kind: "temperature".into(),
            unit: "C".into(),
            state: state.into(),
            restarts,
            count: 3,
            min: Some(1.0),
            max: Some(2.0),
            mean: Some(1.5),
            stddev: Some(0.5),
            ewma: Some(1.5),
            last: Some(2.0),
            anomalies: 0,
        }
    }

    fn summary(sensors: Vec<SensorSummary>) -> Summary {
        Summary {
            rounds: 3,
            skipped_rounds: 0,
            reads: ReadCounts::default(),
            restarts: 0,
            round_ms: Percentiles::default(),
            read_latency_ms: Percentiles::default(),
            anomalies: BTreeMap::new(),
            events: BTreeMap::new(),
            seed: 1,
            sensors: sensors.into(),
            subscribers: Vec::new(),
            drivers: BTreeMap::new(),
            outputs: Vec::new(),
            process: ProcessStats::default(),
            virtual_clock: None,
            groups: Vec::new(),
        }
    }

    /// A subscriber that missed items gets a line; one that missed nothing does not.
    #[test]
    fn table_names_the_subscribers_that_missed_something() {
        let mut s = summary(vec![sensor(0, "running", 0)]);
        assert!(!s.render_table().contains("subscribers:"));
        let stats = |name: &str, delivered_items, missed, missed_items| SubscriberStats {
            name: name.into(),
            stream: "readings".into(),
            delivered: 1,
            delivered_items,
            missed,
            missed_items,
        };
        s.subscribers = vec![stats("files", 50, 0, 0), stats("alerts", 20, 6, 30)];
        let table = s.render_table();
        let line = table.lines().find(|l| l.starts_with("subscribers:")).unwrap();
        assert_eq!(line, "subscribers: alerts missed 30 of 50 readings");
    }

    /// A driver's own counts are one line; a run without them has none.
    #[test]
    fn table_has_the_drivers_counts() {
        let mut s = summary(vec![sensor(0, "running", 0)]);
        assert!(!s.render_table().contains("driver "));
        s.drivers.insert(
            "mqtt".into(),
            BTreeMap::from([("received".to_string(), 9), ("superseded".to_string(), 4)]),
        );
        let table = s.render_table();
        assert!(
            table.lines().any(|l| l == "driver mqtt: received 9, superseded 4"),
            "{table}"
        );
    }

    #[test]
    fn table_lists_every_sensor_of_a_small_run() {
        let table = summary((0..TABLE_ROWS).map(|i| sensor(i, "running", 0)).collect()).render_table();
        assert_eq!(table.lines().filter(|l| l.starts_with("t-")).count(), TABLE_ROWS);
    }

    #[test]
    fn table_of_a_large_run_lists_the_notable_sensors() {
        let mut sensors: Vec<SensorSummary> = (0..500).map(|i| sensor(i, "running", 0)).collect();
        sensors[7] = sensor(7, "given_up", 5);
        sensors[300] = sensor(300, "running", 1);
        let table = summary(sensors).render_table();
        let listed: Vec<&str> = table.lines().filter(|l| l.starts_with("t-")).collect();
        assert_eq!(listed.len(), 2);
        assert!(
            listed[0].starts_with("t-7 ") && listed[1].starts_with("t-300 "),
            "{table}"
        );
        assert!(table.ends_with("(2 of 500 sensors listed: those not running, restarted or with anomalies; 498 ran quietly; summary.json has them all)\n"));
    }

    /// Two sensors more than a screenful, one quiet: one notable sensor more than are listed.
    /// The first screenful of notable ones is listed, and only the quiet one is counted quiet.
    #[test]
    fn table_counts_the_notable_sensors_it_does_not_list() {
        let n = TABLE_ROWS + 2;
        let sensors: Vec<SensorSummary> = (0..n)
            .map(|i| {
                if i == 3 {
                    sensor(i, "running", 0)
                } else {
                    sensor(i, "stopped", 0)
                }
            })
            .collect();
        let table = summary(sensors).render_table();
        let listed: Vec<&str> = table.lines().filter(|l| l.starts_with("t-")).collect();
        assert_eq!(listed.len(), TABLE_ROWS);
        assert!(listed.iter().all(|l| !l.starts_with("t-3 ")), "{table}");
        assert!(listed[TABLE_ROWS - 1].starts_with(&format!("t-{} ", n - 2)), "{table}");
        let last = format!("({TABLE_ROWS} of {n} sensors listed: those not running, restarted or with anomalies; 1 ran quietly; summary.json has them all)\n");
        assert!(table.ends_with(&last), "{table}");
    }
}
