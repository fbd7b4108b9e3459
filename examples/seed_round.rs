//! The seed's demonstration, done with actors: 20 simulated sensors read concurrently in one round.
//!
//! ```text
//! cargo run --example seed_round
//! ```
//!
//! Runs one collection round of 20 sensor actors with the `simulated` driver (latency uniform in
//! 100-500 ms, in real time) through a `Collector`, with a small actor subscribed to the round's
//! readings and summary, and prints each sensor's latency and value, then the round's wall time
//! against the sum of the latencies. What to look for: the wall time is about the slowest single
//! latency (under 500 ms), while reading the sensors one after another would take the sum
//! (around 6 s). Read failures are switched off so every latency counts. Only the public API is
//! used.

use std::time::Duration;

use actix::prelude::*;
use sensor_actors::streams::{Delivery, Readings, RoundSummary};
use sensor_actors::Collector;

/// The seed's scenario, one round, no failures; the deadline is above the largest latency.
const CONFIG: &str = r#"
[collection]
rounds = 1
read_timeout = "2s"
seed = 2024

[[sensors]]
kind = "temperature"
count = 20
latency = ["100ms", "500ms"]
error_rate = 0.0
"#;

/// Prints the round's readings and compares its wall time with the sum of their latencies.
#[derive(Default)]
struct Report {
    sum: Duration,
    slowest: Duration,
}

impl Actor for Report {
    type Context = Context<Self>;
}

impl Handler<Readings> for Report {
    type Result = ();

    fn handle(&mut self, round: Readings, _ctx: &mut Context<Self>) {
        for r in round.iter() {
            let latency = r.reading.latency;
            println!(
                "{}: {:6.2} {} in {:5.1} ms",
                r.sensor(),
                r.reading.value,
                r.unit,
                latency.as_secs_f64() * 1e3
            );
            self.sum += latency;
            self.slowest = self.slowest.max(latency);
        }
    }
}

impl Handler<RoundSummary> for Report {
    type Result = ();

    fn handle(&mut self, round: RoundSummary, _ctx: &mut Context<Self>) {
        println!();
        println!(
            "round wall time {:7.1} ms (slowest sensor {:.1} ms)",
            round.wall.as_secs_f64() * 1e3,
            self.slowest.as_secs_f64() * 1e3
        );
        println!(
            "sum of latencies {:7.1} ms: what reading them one after another would take",
            self.sum.as_secs_f64() * 1e3
        );
        println!("speed-up {:.1}x", self.sum.as_secs_f64() / round.wall.as_secs_f64());
    }
}

#[actix_rt::main]
async fn main() -> anyhow::Result<()> {
    let report = Report::default().start();
    let collector = Collector::new()
        .subscribe_with(report.clone().recipient::<Readings>(), Delivery::lossless())
        .subscribe_with(report.recipient::<RoundSummary>(), Delivery::lossless());
    let config = collector.parse(CONFIG, "seed_round.toml")?;
    collector.run(config, std::future::pending()).await?;
    Ok(())
}
