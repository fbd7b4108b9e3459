//! A sensor driver written outside the crate, named in a TOML configuration and run under
//! sensor-actors' supervision.
//!
//! ```text
//! cargo run --example custom_sensor
//! ```
//!
//! `driver = "barometer"` is registered on a `Collector` (`Collector::driver`), then named in the
//! configuration text below like a built-in driver, with keys of its own (`gateway`, `level`)
//! that its factory validates. Building a barometer driver "connects" to its gateway, an async
//! build taking 20 ms; the gateway refuses the first connection of `barometer-2`, so that build
//! fails. A failed build is that sensor's failure: the supervisor journals it, backs off and
//! builds again, while the other barometers are read every round. Only the public API is used.
//!
//! Look for, in the log: `barometer-2: failed (build: gateway 10.0.0.7 refused the connection)`,
//! then `restart_scheduled in ... ms` and `restarted`; in the summary table, barometer-2 with one
//! restart and fewer readings than its siblings (it was unavailable while restarting). The run
//! ends by itself after 8 rounds of 100 ms.

use std::sync::Arc;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use sensor_actors::driver::{BuildError, Driver, DriverBuild, DriverContext, DriverFactory, DriverKeys, DriverSpec};
use sensor_actors::driver::{ReadFuture, Sample};
use sensor_actors::{Collector, ConfigError};

/// The configuration: three barometers behind one gateway, restarted 50 ms after a failure.
const CONFIG: &str = r#"
[collection]
interval = "100ms"
read_timeout = "80ms"
rounds = 8
seed = 7

[supervision]
backoff_min = "50ms"
backoff_max = "200ms"

[[sensors]]
driver = "barometer"
name = "barometer"
count = 3
gateway = "10.0.0.7"
level = 1013.0
"#;

/// `driver = "barometer"`: parses an entry's `gateway` and `level`.
struct BarometerFactory;

/// The keys of a barometer entry, validated.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Barometer {
    /// Where the barometers are reached.
    gateway: String,
    /// Sea-level pressure the readings wander around, in hPa.
    level: f64,
}

impl DriverFactory for BarometerFactory {
    fn parse(&self, keys: &DriverKeys<'_>) -> Result<Arc<dyn DriverSpec>, ConfigError> {
        let barometer: Barometer = keys.deserialize()?;
        if !(800.0..=1100.0).contains(&barometer.level) {
            return Err(keys.error("level", format!("expected hPa in 800..=1100, got {}", barometer.level)));
        }
        Ok(Arc::new(barometer))
    }
}

impl DriverSpec for Barometer {
    /// Connects to the gateway (20 ms); its first connection for `barometer-2` is refused.
    fn build(&self, ctx: &DriverContext) -> DriverBuild {
        let refused = &*ctx.id == "barometer-2" && ctx.incarnation == 0;
        let gateway = self.gateway.clone();
        let mut rng = Pcg64Mcg::seed_from_u64(ctx.seed);
        let value = self.level + rng.random_range(-5.0..=5.0);
        DriverBuild::new(async move {
            actix_rt::time::sleep(Duration::from_millis(20)).await;
            if refused {
                return Err(BuildError::new(format!("gateway {gateway} refused the connection")));
            }
            let driver: Box<dyn Driver> = Box::new(BarometerDriver { rng, value });
            Ok(driver)
        })
    }

    fn default_kind(&self) -> Option<&str> {
        Some("pressure")
    }
}

/// A connected barometer: answers in 10-40 ms with a random walk.
struct BarometerDriver {
    rng: Pcg64Mcg,
    value: f64,
}

impl Driver for BarometerDriver {
    fn read(&mut self, _round: u64) -> ReadFuture {
        let latency = Duration::from_millis(self.rng.random_range(10..=40));
        self.value += self.rng.random_range(-0.3..=0.3);
        let value = self.value;
        ReadFuture::new(async move {
            actix_rt::time::sleep(latency).await;
            Ok(Sample::value(value))
        })
    }
}

fn main() -> anyhow::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let collector = Collector::new().driver("barometer", BarometerFactory);
    let config = collector.parse(CONFIG, "custom_sensor.toml")?;
    let summary = actix_rt::System::new().block_on(collector.run(config, std::future::pending()))?;
    print!("{}", summary.render_table());
    for sensor in summary.sensors.iter().filter(|s| s.restarts > 0) {
        println!(
            "{} was restarted {} time(s) and read in {} of {} rounds",
            sensor.id, sensor.restarts, sensor.count, summary.rounds
        );
    }
    Ok(())
}
