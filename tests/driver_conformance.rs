//! The conformance checks of `sensor_actors::testing::driver` (the contract of `docs/drivers.md`)
//! on every shipped driver and on a driver defined here, outside the crate, registered by name:
//! entries parse and reject unknown keys with one line, builds and reads never let a panic
//! escape, every read completes with a finite sample or a documented error, and results are as
//! repeatable as the driver's source. Add each new driver's entry to `built_in()`.

use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use sensor_actors::driver::{Driver, DriverBuild, DriverContext, DriverFactory, DriverKeys, DriverSpec};
use sensor_actors::driver::{ReadError, ReadFuture, Sample};
use sensor_actors::testing::driver::{check, check_entry, spec, Source};
use sensor_actors::{Collector, ConfigError};

/// One entry per shipped driver, as a user would write it.
fn built_in() -> Vec<(&'static str, Source, String)> {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");
    vec![
        (
            "simulated",
            Source::Seeded,
            "driver = \"simulated\"\nlatency = [\"0ms\", \"5ms\"]\nerror_rate = 0.2".into(),
        ),
        (
            "simulated with faults",
            Source::Seeded,
            concat!(
                "latency = [\"1ms\", \"1ms\"]\noffline_rate = 0.05\nfatal_rate = 0.05\n",
                "faults = [{ round = 7, fault = \"spike\" }, { round = 3, fault = \"flap\", every = 3 }]"
            )
            .into(),
        ),
        (
            "replay",
            Source::Recorded,
            format!(
                "driver = \"replay\"\npath = \"{data}/nab/machine_temperature_system_failure.csv\"\nvalue_column = \"value\"\nid = \"m\""
            ),
        ),
        ("system", Source::Live, "driver = \"system\"\nmetric = \"load1\"\nid = \"load\"".into()),
        // `mqtt` reads what a real broker delivered: it is checked against mosquitto and a NATS
        // cluster in tests/mqtt.rs (the harness's paused clock would time out its connections).
    ]
}

/// Every shipped driver passes the public conformance checks.
#[actix_rt::test]
async fn every_built_in_driver_conforms() {
    tokio::time::pause();
    let collector = Collector::new();
    for (name, source, entry) in built_in() {
        if let Err(violation) = check_entry(&collector, &entry, source).await {
            panic!("{name}: {violation}");
        }
    }
}

/// `driver = "noisy"`: a seeded random value around `level`, failing transiently now and then,
/// built asynchronously (as a driver that connects first would be).
struct NoisyFactory;

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Noisy {
    level: f64,
}

impl DriverFactory for NoisyFactory {
    fn parse(&self, keys: &DriverKeys<'_>) -> Result<Arc<dyn DriverSpec>, ConfigError> {
        let noisy: Noisy = keys.deserialize()?;
        if !noisy.level.is_finite() {
            return Err(keys.error("level", "expected a finite number"));
        }
        Ok(Arc::new(noisy))
    }
}

impl DriverSpec for Noisy {
    fn build(&self, ctx: &DriverContext) -> DriverBuild {
        let (level, seed) = (self.level, ctx.seed);
        DriverBuild::new(async move {
            tokio::time::sleep(std::time::Duration::from_millis(30)).await;
            let driver: Box<dyn Driver> = Box::new(NoisyDriver {
                level,
                rng: Pcg64Mcg::seed_from_u64(seed),
            });
            Ok(driver)
        })
    }
}

struct NoisyDriver {
    level: f64,
    rng: Pcg64Mcg,
}

impl Driver for NoisyDriver {
    fn read(&mut self, _round: u64) -> ReadFuture {
        let result = if self.rng.random_bool(0.1) {
            Err(ReadError::Failed("noise".into()))
        } else {
            Ok(Sample::value(self.level + self.rng.random_range(-1.0..=1.0)))
        };
        ReadFuture::ready(result)
    }
}

/// A driver registered from outside the crate passes the same checks, and its own key
/// validation answers in one line.
#[actix_rt::test]
async fn a_registered_driver_conforms() {
    tokio::time::pause();
    let collector = Collector::new().driver("noisy", NoisyFactory);
    check_entry(&collector, "driver = \"noisy\"\nlevel = 5.0", Source::Seeded)
        .await
        .unwrap();
    assert_eq!(
        spec(&collector, "driver = \"noisy\"\nlevel = nan")
            .unwrap_err()
            .to_string(),
        "the entry does not parse: conformance.toml: sensors[0].level: expected a finite number"
    );
}

/// A driver that breaks the contract is caught: a panicking read, a value that is not finite,
/// an error kind drivers do not return, a seeded driver that ignores its seed.
#[actix_rt::test]
async fn violations_are_reported() {
    tokio::time::pause();

    type Read = fn(&DriverContext, u64) -> Result<Sample, ReadError>;
    #[derive(Debug)]
    struct Bad(Read);
    struct BadDriver(DriverContext, Read);
    impl DriverSpec for Bad {
        fn build(&self, ctx: &DriverContext) -> DriverBuild {
            DriverBuild::driver(BadDriver(ctx.clone(), self.0))
        }
    }
    impl Driver for BadDriver {
        fn read(&mut self, round: u64) -> ReadFuture {
            ReadFuture::ready((self.1)(&self.0, round))
        }
    }

    let cases: [(Read, Source, &str); 4] = [
        (
            |_, round| {
                if round == 3 {
                    panic!("boom")
                } else {
                    Ok(Sample::value(1.0))
                }
            },
            Source::Live,
            "read(3) panicked",
        ),
        (
            |_, round| Ok(Sample::value(if round == 5 { f64::NAN } else { 1.0 })),
            Source::Live,
            "read 5 gave NaN",
        ),
        (
            |ctx, round| match round {
                2 => Err(ReadError::Crash("x".into())),
                _ => Ok(Sample::value(ctx.seed as f64)),
            },
            Source::Seeded,
            "read 2 gave the error Crash(\"x\")",
        ),
        (
            |_, round| Ok(Sample::value(round as f64)),
            Source::Seeded,
            "another seed gave the same results",
        ),
    ];
    for (read, source, expected) in cases {
        let violation = check(&Bad(read), source).await.unwrap_err();
        assert_eq!(violation.to_string(), expected);
    }
}
