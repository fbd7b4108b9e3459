//! The seed's demonstration, done with actors: 20 simulated sensors read concurrently in one round.
//!
//! ```text
//! cargo run --example seed_round
//! ```
//!
//! Starts 20 `SensorActor`s with the `simulated` driver (latency uniform in 100-500 ms, in real
//! time), reads them all in one collection round and prints each sensor's latency and value, then
//! the round's wall time against the sum of the latencies. What to look for: the wall time is
//! about the slowest single latency (under 500 ms), while reading the sensors one after another
//! would take the sum (around 6 s). Read failures are switched off so every latency counts.
//! Only the public API is used.

use std::time::{Duration, Instant};

use actix::Actor;
use sensor_actors::driver::{driver_seed, simulated, DriverContext, DriverSpec};
use sensor_actors::messages::Outcome;
use sensor_actors::round;
use sensor_actors::sensor::SensorActor;

/// Sensors in the round, as in the seed.
const SENSORS: usize = 20;
/// Seed of the drivers' random draws.
const SEED: u64 = 2024;
/// Deadline of each read: above the largest latency, so no read times out.
const READ_TIMEOUT: Duration = Duration::from_secs(2);

#[actix_rt::main]
async fn main() {
    let spec = simulated::Spec::new(simulated::Settings {
        error_rate: 0.0,
        ..simulated::Settings::default()
    });
    let ids: Vec<String> = (1..=SENSORS).map(|i| format!("temperature-{i:02}")).collect();
    let sensors = ids
        .iter()
        .enumerate()
        .map(|(index, id)| {
            let ctx = DriverContext {
                id: id.as_str().into(),
                kind: "temperature".into(),
                index,
                incarnation: 0,
                seed: driver_seed(SEED, index, 0),
            };
            let driver = spec.build(&ctx).take_ready().expect("built at once");
            Some(SensorActor::new(ctx.id.clone(), driver.expect("a simulated driver always builds")).start())
        })
        .collect();

    let started = Instant::now();
    let outcomes = round::collect(sensors, 1, READ_TIMEOUT, 0).await;
    let wall = started.elapsed();

    let mut sum = Duration::ZERO;
    let mut slowest = Duration::ZERO;
    for (id, outcome) in ids.iter().zip(&outcomes) {
        match outcome {
            Outcome::Ok(reading) => {
                println!(
                    "{id}: {:6.2} C in {:5.1} ms",
                    reading.value,
                    reading.latency.as_secs_f64() * 1e3
                );
                sum += reading.latency;
                slowest = slowest.max(reading.latency);
            }
            other => println!("{id}: {other:?}"),
        }
    }
    println!();
    println!(
        "round wall time {:7.1} ms (slowest sensor {:.1} ms)",
        wall.as_secs_f64() * 1e3,
        slowest.as_secs_f64() * 1e3
    );
    println!(
        "sum of latencies {:7.1} ms: what reading them one after another would take",
        sum.as_secs_f64() * 1e3
    );
    println!("speed-up {:.1}x", sum.as_secs_f64() / wall.as_secs_f64());
}
