//! What the two floors (`tokio_floor.rs`, `actix_floor.rs`) share: their command line, what one
//! pass measured, and the JSON figures they print for `benches/compare.py`, in the names that
//! `sensor-actors bench` uses.

use std::time::Duration;

use sensor_actors::report::ProcessStats;

/// The slowest read of the overhead pass (sensor 0 always takes it).
pub const SLOWEST: Duration = Duration::from_millis(500);
/// The fastest read of the overhead pass.
pub const FASTEST: Duration = Duration::from_millis(100);

/// What one pass measured.
pub struct Pass {
    pub spawn_seconds: f64,
    pub idle_rss_bytes: u64,
    pub round_walls: Vec<Duration>,
    pub reads: u64,
    pub seconds: f64,
    pub cpu_seconds: f64,
}

/// The command line: `--sensors N [--rounds R] [--latency-rounds L] [--threads T]`.
pub struct Args {
    pub sensors: usize,
    pub rounds: u64,
    pub latency_rounds: u64,
    pub threads: usize,
}

impl Args {
    /// Parses the process's arguments; a value that is not a number ends the process with exit
    /// code 2 and a one-line message naming the flag.
    pub fn parse(program: &str) -> Args {
        let args: Vec<String> = std::env::args().collect();
        let arg = |name: &str, default: u64| match args.iter().position(|a| a == name) {
            Some(i) => match args.get(i + 1).and_then(|v| v.parse().ok()) {
                Some(v) => v,
                None => {
                    eprintln!("{program}: {name}: expected a number");
                    std::process::exit(2);
                }
            },
            None => default,
        };
        Args {
            sensors: arg("--sensors", 1000).max(1) as usize,
            rounds: arg("--rounds", 10).max(1),
            latency_rounds: arg("--latency-rounds", 4).max(1),
            threads: arg("--threads", 1).max(1) as usize,
        }
    }
}

/// Prints the figures of a throughput pass (`fast`) and an overhead pass (`slow`) as one JSON
/// object; `baseline` is the RSS before either started.
pub fn print_figures(args: &Args, baseline: u64, fast: &Pass, slow: &Pass) {
    let mut overheads: Vec<f64> = slow
        .round_walls
        .iter()
        .map(|w| (w.as_secs_f64() - SLOWEST.as_secs_f64()) * 1000.0)
        .collect();
    overheads.sort_by(f64::total_cmp);
    let peak = ProcessStats::measure().peak_rss_bytes;
    let per_sensor = |rss: u64| rss.saturating_sub(baseline) as f64 / args.sensors as f64;
    let figures = serde_json::json!({
        "sensors": args.sensors,
        "threads": args.threads,
        "rounds": args.rounds,
        "latency_rounds": args.latency_rounds,
        "spawn_seconds": fast.spawn_seconds,
        "reads": fast.reads,
        "reads_per_second": fast.reads as f64 / fast.seconds,
        "reads_per_cpu_second": fast.reads as f64 / fast.cpu_seconds.max(1e-9),
        "overhead_ms_p50": overheads[overheads.len() / 2],
        "overhead_ms_max": overheads[overheads.len() - 1],
        "baseline_rss_bytes": baseline,
        "idle_rss_bytes": fast.idle_rss_bytes,
        "peak_rss_bytes": peak,
        "idle_bytes_per_sensor": per_sensor(fast.idle_rss_bytes),
        "peak_bytes_per_sensor": per_sensor(peak),
    });
    println!("{figures}");
}
