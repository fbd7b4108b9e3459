//! A sensor driver written outside the crate, run under sensor-actors' supervision.
//!
//! Run it with `cargo run --example custom_sensor`.
//!
//! `Pressure` implements the public `Driver` trait: a barometer that answers in 20-80 ms and, like
//! a real device with a firmware bug, wedges (a fatal error) after a number of reads that depends
//! on its seed. `PressureFactory` implements `DriverFactory`, which the supervisor calls to build
//! a fresh driver on every start and restart. Nothing here uses private API: this is how a new
//! kind of sensor plugs in without touching the crate.
//!
//! Look for: the `failed` / `restart_scheduled` / `restarted` lines in the log, readings that go
//! on after each restart, and the summary table with the restarts per sensor.

use std::future::pending;
use std::sync::Arc;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use sensor_actors::config::SensorSpec;
use sensor_actors::driver::{Driver, DriverContext, DriverFactory, DriverSpec, ReadError, ReadFuture, Sample};
use sensor_actors::{run, Config, RunOptions};

/// A simulated barometer (hPa) that wedges after a while.
struct Pressure {
    rng: Pcg64Mcg,
    value: f64,
    reads_left: u32,
}

impl Driver for Pressure {
    fn read(&mut self, _round: u64) -> ReadFuture {
        let latency = Duration::from_millis(self.rng.random_range(20..=80));
        let result = if self.reads_left == 0 {
            Err(ReadError::Fatal("firmware wedged; needs a reset".into()))
        } else {
            self.reads_left -= 1;
            self.value += self.rng.random_range(-0.3..=0.3);
            Ok(Sample::value(self.value))
        };
        ReadFuture::new(async move {
            actix_rt::time::sleep(latency).await;
            result
        })
    }
}

/// Builds a fresh `Pressure` driver from the seed the supervisor derives for each start.
#[derive(Debug)]
struct PressureFactory;

impl DriverFactory for PressureFactory {
    fn name(&self) -> &str {
        "pressure"
    }

    fn build(&self, ctx: &DriverContext) -> Box<dyn Driver> {
        let mut rng = Pcg64Mcg::seed_from_u64(ctx.seed);
        let value = rng.random_range(1005.0..=1020.0);
        let reads_left = rng.random_range(3..=8);
        Box::new(Pressure { rng, value, reads_left })
    }
}

fn main() -> anyhow::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let driver = DriverSpec::Custom(Arc::new(PressureFactory));
    let mut sensors: Vec<SensorSpec> = (1..=3)
        .map(|i| SensorSpec::new(&format!("barometer-{i}"), "pressure", driver.clone()))
        .collect();
    for sensor in &mut sensors {
        sensor.policy.backoff_min = Duration::from_millis(100);
        sensor.policy.max_restarts = 10;
    }
    let mut config = Config::with_sensors(sensors);
    config.collection.interval = Duration::from_millis(200);
    config.collection.read_timeout = Duration::from_millis(150);
    config.collection.rounds = Some(25);
    config.collection.seed = Some(7);
    let summary = actix_rt::System::new().block_on(run(config, RunOptions::default(), pending()))?;
    print!("{}", summary.render_table());
    Ok(())
}
