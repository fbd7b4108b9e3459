//! The actor floor: the batched round of sensor-actors done with bare actix actors, nothing else.
//!
//! `cargo bench --bench actix_floor -- --sensors 100000 [--rounds 10] [--latency-rounds 4] [--threads 1]`
//! prints one JSON object with the figures of `sensor-actors bench` and `benches/tokio_floor.rs`
//! (spawn, reads per second, round overhead, memory). `benches/compare.py` runs it next to them.
//!
//! Every sensor is an actix actor owning its random-walk state. Each arbiter has one coordinator
//! that fans a round out to its local sensors with `do_send` (in slices of 1,024, yielding
//! between slices, as a sensor-actors group does), gathers their answers on one shared unbounded
//! channel and keeps running statistics per sensor itself: no supervision, no deadlines, no
//! detectors, no rolling window, no latency histograms, no timestamps, no cross-thread hand-off
//! of the readings. It is what "every sensor is an actor that answers a message" costs at the
//! least with actix 0.13, so `sensor-actors / actix floor` is the price of everything else the
//! collector does, and `actix floor / tokio floor` the price of actix's mailboxes themselves.
//! With `--threads 1` (the default) everything runs on one arbiter; with `--threads N` the
//! sensors are split evenly over N arbiters with a coordinator each. Same allocator as
//! `sensor-actors`.

use std::time::{Duration, Instant};

use actix::prelude::*;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use sensor_actors::report::ProcessStats;
use sensor_actors::stats::RunningStats;
use tokio::sync::{mpsc, oneshot};

mod common;
use common::{Args, Pass, FASTEST, SLOWEST};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Reads a coordinator sends before it yields to its sensors (the group's slice).
const SLICE: usize = 1024;

/// Asks a sensor for its next value.
#[derive(Message)]
#[rtype(result = "()")]
struct StartRead {
    round: u64,
}

/// A sensor's answer, on its coordinator's channel.
struct Answer {
    member: u32,
    round: u64,
    value: f64,
}

/// One sensor: answers after its latency with its next random-walk value.
struct Sensor {
    member: u32,
    rng: Pcg64Mcg,
    value: f64,
    latency: (Duration, Duration),
    answers: mpsc::UnboundedSender<Answer>,
}

impl Actor for Sensor {
    type Context = Context<Self>;
}

impl Sensor {
    fn answer(&mut self, round: u64) {
        self.value += self.rng.random_range(-0.5..=0.5);
        let _ = self.answers.send(Answer {
            member: self.member,
            round,
            value: self.value,
        });
    }
}

impl Handler<StartRead> for Sensor {
    type Result = ();

    fn handle(&mut self, msg: StartRead, ctx: &mut Context<Self>) {
        let wait = if self.latency.0 == self.latency.1 {
            self.latency.0
        } else {
            self.rng.random_range(self.latency.0..=self.latency.1)
        };
        if wait.is_zero() {
            self.answer(msg.round);
        } else {
            ctx.run_later(wait, move |act, _| act.answer(msg.round));
        }
    }
}

/// Reads every local sensor once; answers when all have answered.
#[derive(Message)]
#[rtype(result = "()")]
struct Round {
    round: u64,
}

/// The sensors of one arbiter, their statistics and the round being read.
struct Coordinator {
    /// Seed of the first sensor, and the global index of the first sensor minus one.
    first: u64,
    count: usize,
    latency: (Duration, Duration),
    sensors: Vec<Addr<Sensor>>,
    stats: Vec<RunningStats>,
    round: u64,
    sent: usize,
    left: usize,
    done: Option<oneshot::Sender<()>>,
    /// Set in `started`; handed to each sensor.
    answers: Option<mpsc::UnboundedSender<Answer>>,
    spawned: Option<oneshot::Sender<()>>,
}

impl Actor for Coordinator {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        ctx.add_stream(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)));
        self.sensors = (0..self.count)
            .map(|member| {
                let index = self.first + member as u64;
                let mut rng = Pcg64Mcg::seed_from_u64(index + 1);
                let value = rng.random_range(20.0..30.0);
                let latency = if index == 0 {
                    (self.latency.1, self.latency.1)
                } else {
                    self.latency
                };
                Sensor {
                    member: member as u32,
                    rng,
                    value,
                    latency,
                    answers: tx.clone(),
                }
                .start()
            })
            .collect();
        self.answers = Some(tx);
        if let Some(spawned) = self.spawned.take() {
            let _ = spawned.send(());
        }
    }
}

impl Coordinator {
    fn pump(&mut self, ctx: &mut Context<Self>) {
        let end = (self.sent + SLICE).min(self.sensors.len());
        for sensor in &self.sensors[self.sent..end] {
            sensor.do_send(StartRead { round: self.round });
        }
        self.sent = end;
        if self.sent < self.sensors.len() {
            ctx.spawn(
                tokio::task::yield_now()
                    .into_actor(self)
                    .map(|(), act, ctx| act.pump(ctx)),
            );
        }
    }
}

impl StreamHandler<Answer> for Coordinator {
    fn handle(&mut self, answer: Answer, _ctx: &mut Context<Self>) {
        if answer.round != self.round {
            return;
        }
        self.stats[answer.member as usize].push(answer.value);
        self.left -= 1;
        if self.left == 0 {
            if let Some(done) = self.done.take() {
                let _ = done.send(());
            }
        }
    }
}

impl Handler<Round> for Coordinator {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, msg: Round, ctx: &mut Context<Self>) -> Self::Result {
        let (done, finished) = oneshot::channel();
        self.round = msg.round;
        self.sent = 0;
        self.left = self.sensors.len();
        self.done = Some(done);
        self.pump(ctx);
        Box::pin(finished.into_actor(self).map(|_, _, _| ()))
    }
}

/// Totals of the statistics, asked for at the end of a pass.
#[derive(Message)]
#[rtype(result = "u64")]
struct Reads;

impl Handler<Reads> for Coordinator {
    type Result = u64;

    fn handle(&mut self, _msg: Reads, ctx: &mut Context<Self>) -> u64 {
        ctx.stop();
        self.stats.iter().map(RunningStats::count).sum()
    }
}

/// Spawns `n` sensors over `arbiters` and runs `rounds` rounds; sensor 0 always takes the upper
/// latency bound.
async fn pass(n: usize, rounds: u64, latency: (Duration, Duration), arbiters: &[ArbiterHandle]) -> Pass {
    let spawn_started = Instant::now();
    let share = n.div_ceil(arbiters.len());
    let mut coordinators = Vec::new();
    let mut spawned = Vec::new();
    for (k, arbiter) in arbiters.iter().enumerate() {
        let first = k * share;
        let count = share.min(n.saturating_sub(first));
        let (tx, rx) = oneshot::channel();
        spawned.push(rx);
        coordinators.push(Coordinator::start_in_arbiter(arbiter, move |_| Coordinator {
            first: first as u64,
            count,
            latency,
            sensors: Vec::new(),
            stats: vec![RunningStats::default(); count],
            round: 0,
            sent: 0,
            left: 0,
            done: None,
            answers: None,
            spawned: Some(tx),
        }));
    }
    for rx in spawned {
        rx.await.expect("a coordinator starts its sensors");
    }
    let spawn_seconds = spawn_started.elapsed().as_secs_f64();
    let idle_rss_bytes = ProcessStats::current_rss_bytes();
    let started = Instant::now();
    let cpu_started = ProcessStats::measure().cpu_seconds;
    let mut round_walls = Vec::new();
    for round in 1..=rounds {
        let round_started = Instant::now();
        let pending: Vec<_> = coordinators.iter().map(|c| c.send(Round { round })).collect();
        for request in pending {
            request.await.expect("a coordinator answers its rounds");
        }
        round_walls.push(round_started.elapsed());
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu_seconds = ProcessStats::measure().cpu_seconds - cpu_started;
    let mut reads = 0;
    for c in &coordinators {
        reads += c.send(Reads).await.expect("a coordinator reports its reads");
    }
    Pass {
        spawn_seconds,
        idle_rss_bytes,
        round_walls,
        reads,
        seconds,
        cpu_seconds,
    }
}

fn main() {
    let args = Args::parse("actix_floor");
    let (n, rounds, latency_rounds, threads) = (args.sensors, args.rounds, args.latency_rounds, args.threads);
    let baseline = ProcessStats::current_rss_bytes();
    let system = System::new();
    let (fast, slow) = system.block_on(async move {
        let spawned: Vec<Arbiter> = if threads == 1 {
            Vec::new()
        } else {
            (0..threads).map(|_| Arbiter::new()).collect()
        };
        let handles: Vec<ArbiterHandle> = if threads == 1 {
            vec![Arbiter::current()]
        } else {
            spawned.iter().map(Arbiter::handle).collect()
        };
        let fast = pass(n, rounds, (Duration::ZERO, Duration::ZERO), &handles).await;
        let slow = pass(n, latency_rounds, (FASTEST, SLOWEST), &handles).await;
        for arbiter in spawned {
            arbiter.stop();
        }
        (fast, slow)
    });
    common::print_figures(&args, baseline, &fast, &slow);
}
