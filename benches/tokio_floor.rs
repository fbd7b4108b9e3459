//! The floor: the collection round done with plain tokio tasks and channels, no actors.
//!
//! `cargo bench --bench tokio_floor -- --sensors 100000 [--rounds 10] [--latency-rounds 4] [--threads 1]`
//! prints one JSON object with the figures of `sensor-actors bench` (spawn, reads per second,
//! round overhead, memory). `benches/compare.py` runs it next to `sensor-actors bench` and the
//! Python asyncio design at the same N.
//!
//! Every sensor is a task owning its random-walk state and an unbounded channel of requests; a
//! round sends every sensor a request carrying a oneshot reply channel, then awaits the replies
//! in send order against the round's deadline (the same gather as `src/round.rs`), and forwards
//! each reading over a channel to a processor task that keeps running statistics per sensor.
//! With `--threads 1` (the default) everything runs on one thread (a current-thread runtime), like
//! one actix arbiter; with `--threads N` on tokio's multi-thread runtime with N workers, as
//! `#[tokio::main]` would run it on an N-core machine. The binary
//! uses the same allocator as `sensor-actors`, so the comparison is of designs, not allocators.

use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use sensor_actors::bench::current_rss_bytes;
use sensor_actors::report::ProcessStats;
use sensor_actors::stats::RunningStats;
use tokio::sync::{mpsc, oneshot};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Deadline of each round's reads: long enough that none times out.
const READ_TIMEOUT: Duration = Duration::from_secs(120);

struct Request {
    round: u64,
    reply: oneshot::Sender<Reply>,
}

struct Reply {
    round: u64,
    value: f64,
}

/// One sensor: answers requests after its latency with its next random-walk value.
async fn sensor(mut requests: mpsc::UnboundedReceiver<Request>, seed: u64, latency: (Duration, Duration)) {
    let mut rng = Pcg64Mcg::seed_from_u64(seed);
    let mut value: f64 = rng.random_range(20.0..30.0);
    while let Some(request) = requests.recv().await {
        let wait = if latency.0 == latency.1 {
            latency.0
        } else {
            rng.random_range(latency.0..=latency.1)
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        value += rng.random_range(-0.5..=0.5);
        let _ = request.reply.send(Reply {
            round: request.round,
            value,
        });
    }
}

/// Keeps running statistics of every sensor's readings.
async fn processor(mut readings: mpsc::UnboundedReceiver<(u32, f64)>, sensors: usize) -> Vec<RunningStats> {
    let mut stats = vec![RunningStats::default(); sensors];
    while let Some((index, value)) = readings.recv().await {
        stats[index as usize].push(value);
    }
    stats
}

struct Pass {
    spawn_seconds: f64,
    idle_rss_bytes: u64,
    round_walls: Vec<Duration>,
    reads: u64,
    seconds: f64,
    cpu_seconds: f64,
}

/// Spawns `n` sensors and runs `rounds` rounds; sensor 0 always takes the upper latency bound.
async fn pass(n: usize, rounds: u64, latency: (Duration, Duration)) -> Pass {
    let spawn_started = Instant::now();
    let senders: Vec<_> = (0..n)
        .map(|i| {
            let (tx, rx) = mpsc::unbounded_channel();
            let own = if i == 0 { (latency.1, latency.1) } else { latency };
            tokio::spawn(sensor(rx, i as u64 + 1, own));
            tx
        })
        .collect();
    let spawn_seconds = spawn_started.elapsed().as_secs_f64();
    let idle_rss_bytes = current_rss_bytes();
    let (readings_tx, readings_rx) = mpsc::unbounded_channel();
    let processing = tokio::spawn(processor(readings_rx, n));
    let started = Instant::now();
    let cpu_started = ProcessStats::measure().cpu_seconds;
    let mut round_walls = Vec::new();
    for round in 1..=rounds {
        let round_started = Instant::now();
        let replies: Vec<_> = senders
            .iter()
            .map(|sensor| {
                let (reply, rx) = oneshot::channel();
                let _ = sensor.send(Request { round, reply });
                rx
            })
            .collect();
        let deadline = tokio::time::Instant::now() + READ_TIMEOUT;
        for (index, rx) in replies.into_iter().enumerate() {
            if let Ok(Ok(reply)) = tokio::time::timeout_at(deadline, rx).await {
                if reply.round == round {
                    let _ = readings_tx.send((index as u32, reply.value));
                }
            }
        }
        round_walls.push(round_started.elapsed());
    }
    drop(readings_tx);
    let stats = processing.await.expect("the processor does not panic");
    let reads = stats.iter().map(RunningStats::count).sum();
    Pass {
        spawn_seconds,
        idle_rss_bytes,
        round_walls,
        reads,
        seconds: started.elapsed().as_secs_f64(),
        cpu_seconds: ProcessStats::measure().cpu_seconds - cpu_started,
    }
}

fn arg(args: &[String], name: &str, default: u64) -> u64 {
    match args.iter().position(|a| a == name) {
        Some(i) => match args.get(i + 1).and_then(|v| v.parse().ok()) {
            Some(v) => v,
            None => {
                eprintln!("tokio_floor: {name}: expected a number");
                std::process::exit(2);
            }
        },
        None => default,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n = arg(&args, "--sensors", 1000) as usize;
    let rounds = arg(&args, "--rounds", 10).max(1);
    let latency_rounds = arg(&args, "--latency-rounds", 4).max(1);
    let baseline = current_rss_bytes();
    let threads = arg(&args, "--threads", 1).max(1) as usize;
    let runtime = if threads == 1 {
        tokio::runtime::Builder::new_current_thread().enable_time().build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_time()
            .build()
    }
    .expect("the runtime starts");
    let fast = runtime.block_on(pass(n, rounds, (Duration::ZERO, Duration::ZERO)));
    let slowest = Duration::from_millis(500);
    let slow = runtime.block_on(pass(n, latency_rounds, (Duration::from_millis(100), slowest)));
    let mut overheads: Vec<f64> = slow
        .round_walls
        .iter()
        .map(|w| (w.as_secs_f64() - slowest.as_secs_f64()) * 1000.0)
        .collect();
    overheads.sort_by(f64::total_cmp);
    let peak = ProcessStats::measure().peak_rss_bytes;
    let per_sensor = |rss: u64| rss.saturating_sub(baseline) as f64 / n as f64;
    let figures = serde_json::json!({
        "sensors": n,
        "threads": threads,
        "rounds": rounds,
        "latency_rounds": latency_rounds,
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
