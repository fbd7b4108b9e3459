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
use sensor_actors::report::ProcessStats;
use sensor_actors::stats::RunningStats;
use tokio::sync::{mpsc, oneshot};

mod common;
use common::{Args, Pass, FASTEST, SLOWEST};

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
    let idle_rss_bytes = ProcessStats::current_rss_bytes();
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

fn main() {
    let args = Args::parse("tokio_floor");
    let (n, rounds, latency_rounds, threads) = (args.sensors, args.rounds, args.latency_rounds, args.threads);
    let baseline = ProcessStats::current_rss_bytes();
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
    let slow = runtime.block_on(pass(n, latency_rounds, (FASTEST, SLOWEST)));
    common::print_figures(&args, baseline, &fast, &slow);
}
