//! An alerting actor written outside the crate, subscribed to the anomalies and the supervision
//! journal through the public API.
//!
//! Run it with `cargo run --example custom_actor` (about 4 seconds).
//!
//! `Alerts` is a plain actix actor. It handles two of the pipeline's streams: [`Anomalies`]
//! (each round's anomalies) and [`Journal`] (supervision events). It raises an alert when one
//! sensor has `K` anomalies within a window of `W` rounds, and another when a sensor is given
//! up. The collector delivers both streams to it whether or not output files are written,
//! without copying a round's data for it, and counts what it would miss if it fell behind.
//!
//! Look for: the `ALERT` lines (sensor `line-2`, out of range by scripted faults in rounds 4 to 8,
//! and `line-4`, which panics until it is given up), the per-round log lines, and the
//! `subscribers` counts at the end (every anomaly and event delivered, none missed).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use actix::prelude::*;
use sensor_actors::data::EventKind;
use sensor_actors::streams::{Anomalies, Delivery, Journal};
use sensor_actors::Collector;

/// Anomalies of one sensor that raise an alert...
const K: usize = 3;
/// ...within this many rounds.
const W: u64 = 5;

/// Six fast simulated sensors, 12 rounds of 250 ms: `line-2` reads values 80 above or below its
/// own in rounds 4, 5, 7 and 8 (outside the -40..85 C range of a temperature), `line-4` panics on every read from round 3 and is given up
/// after 2 restarts.
const CONFIG: &str = r#"
[collection]
interval = "250ms"
read_timeout = "200ms"
rounds = 12
seed = 11

[supervision]
max_restarts = 2
within = "10s"
backoff_min = "50ms"
backoff_max = "50ms"

[[sensors]]
name = "line"
kind = "temperature"
count = 6
latency = ["10ms", "40ms"]
error_rate = 0.0
faults = [
  { round = 4, fault = "spike", sensor = "line-2", magnitude = 80.0 },
  { round = 5, fault = "spike", sensor = "line-2", magnitude = -80.0 },
  { round = 7, fault = "spike", sensor = "line-2", magnitude = 80.0 },
  { round = 8, fault = "spike", sensor = "line-2", magnitude = -80.0 },
  { round = 3, fault = "panic", sensor = "line-4" },
  { round = 4, fault = "panic", sensor = "line-4" },
  { round = 5, fault = "panic", sensor = "line-4" },
  { round = 6, fault = "panic", sensor = "line-4" },
]
"#;

/// Raises alerts from anomalies and supervision events.
#[derive(Default)]
struct Alerts {
    /// Per sensor, the rounds of its recent anomalies (within `W` rounds of the newest).
    recent: HashMap<Arc<str>, VecDeque<u64>>,
    raised: u32,
}

impl Alerts {
    fn raise(&mut self, what: String) {
        self.raised += 1;
        println!("ALERT {}: {what}", self.raised);
    }
}

impl Actor for Alerts {
    type Context = Context<Self>;
}

impl Handler<Anomalies> for Alerts {
    type Result = ();

    fn handle(&mut self, round: Anomalies, _ctx: &mut Context<Self>) {
        for anomaly in round.list.iter() {
            let rounds = self.recent.entry(anomaly.sensor.clone()).or_default();
            rounds.push_back(anomaly.round);
            while rounds.front().is_some_and(|&r| r + W <= anomaly.round) {
                rounds.pop_front();
            }
            if rounds.len() >= K {
                rounds.clear();
                let what = format!(
                    "{}: {K} anomalies within {W} rounds (last: {} in round {}, {})",
                    anomaly.sensor, anomaly.detector, anomaly.round, anomaly.detail
                );
                self.raise(what);
            }
        }
    }
}

impl Handler<Journal> for Alerts {
    type Result = ();

    fn handle(&mut self, journal: Journal, _ctx: &mut Context<Self>) {
        for event in journal.iter() {
            if event.event == EventKind::GaveUp {
                let cause = event.cause.clone().unwrap_or_default();
                self.raise(format!("{} was given up ({cause})", event.subject()));
            }
        }
    }
}

/// How many alerts were raised.
#[derive(Message)]
#[rtype(result = "u32")]
struct Raised;

impl Handler<Raised> for Alerts {
    type Result = u32;

    fn handle(&mut self, _msg: Raised, _ctx: &mut Context<Self>) -> u32 {
        self.raised
    }
}

#[actix_rt::main]
async fn main() -> anyhow::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let alerts = Alerts::default().start();
    let collector = Collector::new()
        .log_rounds()
        .subscribe_with(
            alerts.clone().recipient::<Anomalies>(),
            Delivery::bounded(16).named("alerts"),
        )
        .subscribe_with(
            alerts.clone().recipient::<Journal>(),
            Delivery::bounded(16).named("alerts"),
        );
    let config = collector.parse(CONFIG, "custom_actor.toml")?;
    let summary = collector.run(config, std::future::pending()).await?;
    print!("{}", summary.render_table());
    for s in &summary.subscribers {
        println!(
            "subscriber {} ({}): {} delivered, {} missed",
            s.name, s.stream, s.delivered_items, s.missed_items
        );
    }
    let raised = alerts.send(Raised).await?;
    println!("{raised} alerts raised");
    anyhow::ensure!(
        raised == 2,
        "expected one alert for line-2 and one for line-4, got {raised}"
    );
    Ok(())
}
