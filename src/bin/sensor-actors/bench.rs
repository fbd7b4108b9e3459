//! `sensor-actors bench`: what a run costs, per number of sensors.
//!
//! For each N the binary starts a fresh child process of itself (`bench --child`), so that every
//! N gets its own baseline and peak RSS. The child runs two passes through [`run`],
//! the same code path as `sensor-actors run`, with statistics and every detector on and no file
//! outputs:
//!
//! 1. **throughput**: simulated sensors with zero latency and no failures, rounds back to back.
//!    Reads per second are `N * (R - 1)` over the time from the first read of round 1 to the first
//!    read of round R: on one thread the aggregator's analysis of round k runs before round k + 1
//!    can finish, so this counts the whole pipeline, end to end, without the spawn and the
//!    teardown. The end-to-end figure including the teardown (summary of N sensors, stopping N
//!    actors) is reported as well.
//! 2. **overhead**: latencies uniform in 100-500 ms, except one sensor fixed at 500 ms, so the
//!    slowest read of every round is exactly 500 ms; round overhead = round wall time - 500 ms.
//!
//! Spawn time runs from the call of `run` to the moment the N-th driver is built (aggregator
//! state, supervisor bookkeeping and N actors). Memory: RSS before anything is built (baseline),
//! RSS once every sensor is spawned (idle), and the process's peak RSS; bytes per sensor are the
//! increase over the baseline divided by N. The probe that takes these timestamps wraps the
//! simulated driver and adds one atomic load per read.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use sensor_actors::driver::simulated::{Settings, Simulated};
use sensor_actors::driver::{Driver, DriverBuild, DriverContext, DriverSpec, ReadFuture};
use sensor_actors::report::ProcessStats;
use sensor_actors::{run, Config, RunOptions};

/// The sensor counts measured when `--sensors` is not given.
pub const DEFAULT_SENSOR_COUNTS: [usize; 5] = [20, 1_000, 10_000, 100_000, 1_000_000];
/// Zero-latency rounds of the throughput pass.
pub const DEFAULT_ROUNDS: u64 = 10;
/// Rounds of the overhead pass (100-500 ms latencies).
pub const DEFAULT_LATENCY_ROUNDS: u64 = 4;
/// Latency of the slowest sensor in the overhead pass; the others draw from 100 ms to this.
pub const SLOWEST_LATENCY: Duration = Duration::from_millis(500);
/// Shortest latency of the overhead pass.
pub const FASTEST_LATENCY: Duration = Duration::from_millis(100);
/// Read deadline in both passes: long enough that no read times out, so only overhead is measured.
const BENCH_READ_TIMEOUT: &str = "120s";

/// Parses a list of sensor counts such as `20,1000,10k,1M` (suffixes `k` and `M` multiply by
/// 1,000 and 1,000,000; `_` separators are allowed).
pub fn parse_sensor_counts(text: &str) -> Result<Vec<usize>, String> {
    let counts = text
        .split(',')
        .map(|item| {
            let item = item.trim().replace('_', "");
            let (digits, factor) = match item.strip_suffix(['k', 'K']) {
                Some(d) => (d, 1_000),
                None => match item.strip_suffix(['m', 'M']) {
                    Some(d) => (d, 1_000_000),
                    None => (item.as_str(), 1),
                },
            };
            digits
                .parse::<usize>()
                .ok()
                .and_then(|n| n.checked_mul(factor))
                .filter(|&n| n > 0)
                .ok_or_else(|| {
                    format!("expected a list of sensor counts above 0 like \"20,1000,10k,1M\", got \"{text}\"")
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(counts)
}

/// The figures of one N, as printed by a child and written to the JSON file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// Sensors.
    pub sensors: usize,
    /// Zero-latency rounds of the throughput pass.
    pub rounds: u64,
    /// Rounds of the overhead pass.
    pub latency_rounds: u64,
    /// Validating the configuration of N sensors (not part of the spawn).
    pub config_seconds: f64,
    /// From the call of `run` to the N-th sensor built.
    pub spawn_seconds: f64,
    /// Successful reads through the aggregator in the throughput pass (must be `N * rounds`).
    pub reads: u64,
    /// Steady-state reads per second, first read of round 1 to first read of the last round.
    pub reads_per_second: f64,
    /// The same reads over the CPU time the process spent meanwhile: steadier than wall time on
    /// a machine shared with other work.
    pub reads_per_cpu_second: f64,
    /// `N * rounds` over the time from the first read to the summary, teardown included.
    pub end_to_end_reads_per_second: f64,
    /// Median zero-latency round, in milliseconds.
    pub round_ms_p50: f64,
    /// Median round wall time minus the slowest latency, in milliseconds.
    pub overhead_ms_p50: f64,
    /// Largest round wall time minus the slowest latency, in milliseconds.
    pub overhead_ms_max: f64,
    /// RSS before the configuration is built.
    pub baseline_rss_bytes: u64,
    /// RSS once every sensor of the throughput pass is spawned, before the first round.
    pub idle_rss_bytes: u64,
    /// The higher of the two child processes' peak RSS (each pass runs in a process of its own),
    /// their summaries included.
    pub peak_rss_bytes: u64,
    /// Peak RSS of zero-latency collection: when the last round of the throughput pass
    /// starts (before the final summary, a record per sensor, is built).
    #[serde(default)]
    pub rounds_peak_rss_bytes: u64,
    /// `(idle - baseline) / N`.
    pub idle_bytes_per_sensor: f64,
    /// `(peak - that process's baseline) / N`.
    pub peak_bytes_per_sensor: f64,
    /// `(rounds peak - baseline) / N`.
    #[serde(default)]
    pub rounds_peak_bytes_per_sensor: f64,
    /// Peak RSS of rounds in which every read waits at once (the overhead pass's latencies): the
    /// high-water mark of the overhead pass's process when its last round starts, before its
    /// summary is built. 0 when not measured (one latency round).
    #[serde(default)]
    pub waiting_peak_rss_bytes: u64,
    /// `(waiting peak - that process's baseline) / N`; 0 when not measured.
    #[serde(default)]
    pub waiting_peak_bytes_per_sensor: f64,
    /// What each sensor beyond the previous N measured adds to the idle RSS: the slope of idle
    /// memory against N, free of the fixed costs (runtime, allocator, thread stacks) that
    /// `idle_bytes_per_sensor` spreads over N. Set by the parent from consecutive Ns; `None` for
    /// the first.
    #[serde(default)]
    pub marginal_idle_bytes_per_sensor: Option<f64>,
    /// CPU time of the two child processes.
    pub cpu_seconds: f64,
}

/// Timestamps taken by the drivers of one pass.
#[derive(Debug)]
struct Probe {
    sensors: usize,
    built: AtomicUsize,
    /// When the N-th driver was built, and the RSS then.
    spawned: OnceLock<(Instant, u64)>,
    /// Highest round a read was started for.
    round: AtomicU64,
    /// First-read time of each round, with the process's CPU seconds then, in order.
    round_starts: Mutex<Vec<(Instant, ProcessStats)>>,
}

/// Builds simulated drivers wrapped in the probe.
#[derive(Debug)]
struct ProbeSpec {
    settings: Arc<Settings>,
    /// Settings of sensor 0 (the slowest in the overhead pass).
    first: Arc<Settings>,
    probe: Arc<Probe>,
}

impl DriverSpec for ProbeSpec {
    fn build(&self, ctx: &DriverContext) -> DriverBuild {
        let settings = if ctx.index == 0 { &self.first } else { &self.settings };
        let driver = Probed {
            inner: Simulated::new(settings.clone(), ctx),
            probe: self.probe.clone(),
        };
        if self.probe.built.fetch_add(1, Ordering::Relaxed) + 1 == self.probe.sensors {
            let _ = self
                .probe
                .spawned
                .set((Instant::now(), ProcessStats::current_rss_bytes()));
        }
        DriverBuild::driver(driver)
    }
}

/// A simulated driver that notes the first read of every round.
struct Probed {
    inner: Simulated,
    probe: Arc<Probe>,
}

impl Driver for Probed {
    fn read(&mut self, round: u64) -> ReadFuture {
        if round > self.probe.round.load(Ordering::Relaxed) {
            self.probe.round.store(round, Ordering::Relaxed);
            if let Ok(mut starts) = self.probe.round_starts.lock() {
                starts.push((Instant::now(), ProcessStats::measure()));
            }
        }
        self.inner.read(round)
    }
}

/// What one pass measured.
struct Pass {
    config_seconds: f64,
    spawn_seconds: f64,
    idle_rss_bytes: u64,
    round_starts: Vec<(Instant, ProcessStats)>,
    finished: Instant,
    summary: sensor_actors::Summary,
}

/// Runs `rounds` rounds of `sensors` simulated sensors, every read taking `latency` (sensor 0
/// taking the upper bound), inside a fresh actix system.
fn pass(sensors: usize, rounds: u64, latency: (Duration, Duration)) -> Result<Pass, String> {
    let started = Instant::now();
    let text = format!(
        "[collection]\ninterval = \"0s\"\nread_timeout = \"{BENCH_READ_TIMEOUT}\"\nrounds = {rounds}\nseed = 1\n\n\
         [[sensors]]\ndriver = \"simulated\"\nkind = \"temperature\"\ncount = {sensors}\nerror_rate = 0.0\n\
         latency = [\"{}ms\", \"{}ms\"]\n",
        latency.0.as_millis(),
        latency.1.as_millis()
    );
    let mut config = Config::from_toml_str(&text, "bench configuration").map_err(|e| e.to_string())?;
    let settings = Arc::new(Settings {
        latency,
        error_rate: 0.0,
        ..Settings::default()
    });
    let probe = Arc::new(Probe {
        sensors,
        built: AtomicUsize::new(0),
        spawned: OnceLock::new(),
        round: AtomicU64::new(0),
        round_starts: Mutex::new(Vec::with_capacity(rounds as usize)),
    });
    let factory: Arc<dyn DriverSpec> = Arc::new(ProbeSpec {
        first: Arc::new(Settings {
            latency: (latency.1, latency.1),
            ..(*settings).clone()
        }),
        settings,
        probe: probe.clone(),
    });
    for spec in &mut config.sensors {
        spec.driver = factory.clone();
    }
    drop(factory);
    let config_seconds = started.elapsed().as_secs_f64();
    let run_started = Instant::now();
    let summary = actix_rt::System::new()
        .block_on(run(config, RunOptions::default(), std::future::pending()))
        .map_err(|e| e.to_string())?;
    let finished = Instant::now();
    let (spawned_at, idle_rss_bytes) = *probe.spawned.get().ok_or("not every sensor was built")?;
    let round_starts = std::mem::take(&mut *probe.round_starts.lock().map_err(|e| e.to_string())?);
    Ok(Pass {
        config_seconds,
        spawn_seconds: spawned_at.duration_since(run_started).as_secs_f64(),
        idle_rss_bytes,
        round_starts,
        finished,
        summary,
    })
}

/// Measures one N's throughput pass in this process; the overhead figures are left at 0, for
/// [`measure_overhead`] (in a process of its own) to fill in.
pub fn measure(sensors: usize, rounds: u64) -> Result<Figures, String> {
    if sensors == 0 || rounds < 2 {
        return Err("expected at least 1 sensor and 2 rounds".into());
    }
    let baseline_rss_bytes = ProcessStats::current_rss_bytes();
    let fast = pass(sensors, rounds, (Duration::ZERO, Duration::ZERO))?;
    let reads = fast.summary.reads.ok;
    let (first, first_stats) = fast.round_starts.first().copied().ok_or("no round started")?;
    let (last, last_stats) = fast.round_starts.last().copied().ok_or("no round started")?;
    let (first_cpu, last_cpu) = (first_stats.cpu_seconds, last_stats.cpu_seconds);
    let steady = last.duration_since(first).as_secs_f64();
    let steady_cpu = last_cpu - first_cpu;
    let steady_reads = (sensors as u64 * (fast.round_starts.len() as u64 - 1)) as f64;
    // The peak of collection itself: at the start of the last round, rounds 1 to R-1 are done
    // and the summary (a record per sensor) is not built yet.
    let rounds_peak_rss_bytes = last_stats.peak_rss_bytes;
    let process = ProcessStats::measure();
    let per_sensor = |rss: u64| rss.saturating_sub(baseline_rss_bytes) as f64 / sensors as f64;
    Ok(Figures {
        sensors,
        rounds,
        latency_rounds: 0,
        config_seconds: fast.config_seconds,
        spawn_seconds: fast.spawn_seconds,
        reads,
        reads_per_second: if steady > 0.0 { steady_reads / steady } else { 0.0 },
        reads_per_cpu_second: if steady_cpu > 0.0 {
            steady_reads / steady_cpu
        } else {
            0.0
        },
        end_to_end_reads_per_second: reads as f64 / fast.finished.duration_since(first).as_secs_f64(),
        round_ms_p50: fast.summary.round_ms.p50,
        overhead_ms_p50: 0.0,
        overhead_ms_max: 0.0,
        baseline_rss_bytes,
        idle_rss_bytes: fast.idle_rss_bytes,
        peak_rss_bytes: process.peak_rss_bytes,
        rounds_peak_rss_bytes,
        idle_bytes_per_sensor: per_sensor(fast.idle_rss_bytes),
        peak_bytes_per_sensor: per_sensor(process.peak_rss_bytes),
        rounds_peak_bytes_per_sensor: per_sensor(rounds_peak_rss_bytes),
        waiting_peak_rss_bytes: 0,
        waiting_peak_bytes_per_sensor: 0.0,
        marginal_idle_bytes_per_sensor: None,
        cpu_seconds: process.cpu_seconds,
    })
}

/// The machine the figures come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// Logical CPUs available.
    pub cpus: usize,
    /// `model name` from `/proc/cpuinfo`.
    pub cpu_model: String,
    /// `MemTotal` from `/proc/meminfo`, in bytes.
    pub memory_bytes: u64,
}

impl Machine {
    /// Describes this machine (empty fields where `/proc` has nothing).
    pub fn describe() -> Machine {
        let field = |file: &str, key: &str| {
            std::fs::read_to_string(file).ok().and_then(|text| {
                text.lines()
                    .find(|l| l.starts_with(key))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
        };
        let memory_kib: u64 = field("/proc/meminfo", "MemTotal")
            .and_then(|v| v.trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0);
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model: field("/proc/cpuinfo", "model name").unwrap_or_default(),
            memory_bytes: memory_kib * 1024,
        }
    }
}

/// What `--json FILE` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// Where it ran.
    pub machine: Machine,
    /// One entry per N that completed.
    pub results: Vec<Figures>,
    /// N that could not be measured, with the reason.
    pub failures: Vec<(usize, String)>,
}

/// Measures every N of `counts`, each pass in a fresh child process (`<exe> bench --child` for
/// the throughput pass, `--overhead-child` for the overhead pass), smallest first; after a failure (such as running out of memory) larger N are not tried. `progress`
/// sees each result as it arrives.
pub fn measure_in_children(
    exe: &std::path::Path,
    counts: &[usize],
    rounds: u64,
    latency_rounds: u64,
    mut progress: impl FnMut(&Figures),
) -> Report {
    let mut report = Report {
        machine: Machine::describe(),
        results: Vec::new(),
        failures: Vec::new(),
    };
    let mut counts = counts.to_vec();
    counts.sort_unstable();
    counts.dedup();
    for n in counts {
        let figures = child::<Figures>(exe, "--child", n, &["--rounds".into(), rounds.to_string()]).and_then(|f| {
            let overhead = child::<OverheadPass>(
                exe,
                "--overhead-child",
                n,
                &["--latency-rounds".into(), latency_rounds.to_string()],
            )?;
            Ok(f.with_overhead(latency_rounds, &overhead))
        });
        match figures {
            Ok(mut f) => {
                if let Some(p) = report.results.last() {
                    let idle = |f: &Figures| f.idle_rss_bytes as f64 - f.baseline_rss_bytes as f64;
                    f.marginal_idle_bytes_per_sensor = Some((idle(&f) - idle(p)) / (f.sensors - p.sensors) as f64);
                }
                progress(&f);
                report.results.push(f);
            }
            Err(e) => {
                report.failures.push((n, e));
                break;
            }
        }
    }
    report
}

/// What the overhead pass measures, in a process that ran nothing before (the throughput
/// pass's pages, still held by the allocator, would count otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OverheadPass {
    /// Median round wall time minus the slowest latency, in milliseconds.
    pub overhead_ms_p50: f64,
    /// Largest round wall time minus the slowest latency, in milliseconds.
    pub overhead_ms_max: f64,
    /// RSS before the configuration is built.
    pub baseline_rss_bytes: u64,
    /// The high-water mark when the last round starts, every read of the rounds before it having
    /// waited at once; 0 with fewer than 2 rounds.
    pub waiting_peak_rss_bytes: u64,
    /// The process's peak RSS, its summary included.
    pub peak_rss_bytes: u64,
    /// CPU time of the process.
    pub cpu_seconds: f64,
}

/// Runs only the overhead pass (latencies 100-500 ms) of one N in this process.
pub fn measure_overhead(sensors: usize, latency_rounds: u64) -> Result<OverheadPass, String> {
    if sensors == 0 || latency_rounds == 0 {
        return Err("expected at least 1 sensor and 1 latency round".into());
    }
    let baseline_rss_bytes = ProcessStats::current_rss_bytes();
    let slow = pass(sensors, latency_rounds, (FASTEST_LATENCY, SLOWEST_LATENCY))?;
    let slowest_ms = SLOWEST_LATENCY.as_secs_f64() * 1000.0;
    let waiting_peak_rss_bytes = match slow.round_starts.last() {
        Some((_, stats)) if slow.round_starts.len() >= 2 => stats.peak_rss_bytes,
        _ => 0,
    };
    let process = ProcessStats::measure();
    Ok(OverheadPass {
        overhead_ms_p50: slow.summary.round_ms.p50 - slowest_ms,
        overhead_ms_max: slow.summary.round_ms.max - slowest_ms,
        baseline_rss_bytes,
        waiting_peak_rss_bytes,
        peak_rss_bytes: process.peak_rss_bytes,
        cpu_seconds: process.cpu_seconds,
    })
}

impl Figures {
    /// Adds the overhead pass of the same N (`latency_rounds` rounds) to the throughput pass's
    /// figures.
    fn with_overhead(mut self, latency_rounds: u64, o: &OverheadPass) -> Figures {
        let per_sensor = |rss: u64, base: u64| rss.saturating_sub(base) as f64 / self.sensors as f64;
        self.latency_rounds = latency_rounds;
        self.overhead_ms_p50 = o.overhead_ms_p50;
        self.overhead_ms_max = o.overhead_ms_max;
        if o.waiting_peak_rss_bytes > 0 {
            self.waiting_peak_rss_bytes = o.waiting_peak_rss_bytes;
            self.waiting_peak_bytes_per_sensor = per_sensor(o.waiting_peak_rss_bytes, o.baseline_rss_bytes);
        }
        self.peak_rss_bytes = self.peak_rss_bytes.max(o.peak_rss_bytes);
        self.peak_bytes_per_sensor = self
            .peak_bytes_per_sensor
            .max(per_sensor(o.peak_rss_bytes, o.baseline_rss_bytes));
        self.cpu_seconds += o.cpu_seconds;
        self
    }
}

/// Runs `<exe> bench <mode> --sensors n <args>` and parses the JSON it prints.
fn child<T: serde::de::DeserializeOwned>(
    exe: &std::path::Path,
    mode: &str,
    n: usize,
    args: &[String],
) -> Result<T, String> {
    let out = std::process::Command::new(exe)
        .args(["bench", mode, "--sensors", &n.to_string()])
        .args(args)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
    if !out.status.success() {
        return Err(format!("the child process ended with {}", out.status));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
}

/// Renders the figures as an aligned table.
pub fn render_table(results: &[Figures]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>9} {:>9} {:>12} {:>12} {:>12} {:>9} {:>10} {:>10} {:>10} {:>9} {:>10} {:>10} {:>9} {:>9}",
        "sensors",
        "spawn ms",
        "reads/s",
        "reads/cpu-s",
        "e2e reads/s",
        "round ms",
        "ovh p50 ms",
        "ovh max ms",
        "peak MiB",
        "B/sensor",
        "rounds B/s",
        "waiting B/s",
        "idle B/s",
        "marginal"
    );
    for f in results {
        let _ = writeln!(
            out,
            "{:>9} {:>9.1} {:>12.0} {:>12.0} {:>12.0} {:>9.1} {:>10.1} {:>10.1} {:>10.1} {:>9.0} {:>10.0} {:>10} {:>9.0} {:>9}",
            f.sensors,
            f.spawn_seconds * 1000.0,
            f.reads_per_second,
            f.reads_per_cpu_second,
            f.end_to_end_reads_per_second,
            f.round_ms_p50,
            f.overhead_ms_p50,
            f.overhead_ms_max,
            f.peak_rss_bytes as f64 / (1024.0 * 1024.0),
            f.peak_bytes_per_sensor,
            f.rounds_peak_bytes_per_sensor,
            if f.waiting_peak_rss_bytes > 0 {
                format!("{:.0}", f.waiting_peak_bytes_per_sensor)
            } else {
                "-".to_string()
            },
            f.idle_bytes_per_sensor,
            f.marginal_idle_bytes_per_sensor
                .map_or_else(|| "-".to_string(), |b| format!("{b:.0}"))
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensor_counts_parse_with_suffixes() {
        assert_eq!(
            parse_sensor_counts("20,1000, 10k,100_000,1M").unwrap(),
            [20, 1_000, 10_000, 100_000, 1_000_000]
        );
        assert_eq!(parse_sensor_counts("7").unwrap(), [7]);
    }

    #[test]
    fn bad_sensor_counts_are_rejected() {
        for bad in ["", "0", "20,", "ten", "1.5k", "-3", "99999999999999999999"] {
            assert!(parse_sensor_counts(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
