//! The conformance test every driver passes (the contract of `docs/extending.md`): reads
//! complete with a sample or an error (no panic escapes), the same seed gives the same sequence
//! of results, errors are the documented kinds, and the driver keeps answering after an error.
//! Add each new driver's spec to `drivers()`.

use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use sensor_actors::config::Config;
use sensor_actors::driver::{DriverContext, DriverSpec, ReadError, Sample};

/// Where a driver's values come from, which decides what its determinism means.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Source {
    /// Drawn from the seed: the same seed repeats them, another seed changes them.
    Seeded,
    /// Read from a file: the same whatever the seed.
    Recorded,
    /// Read from the live machine: no repeatability to check.
    Live,
}

/// One spec per shipped driver, parsed from the TOML a user would write.
fn drivers() -> Vec<(&'static str, Source, DriverSpec)> {
    let parse = |toml: &str| {
        Config::from_toml_str(toml, "conformance.toml").unwrap().sensors[0]
            .driver
            .clone()
    };
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");
    vec![
        (
            "simulated",
            Source::Seeded,
            parse("[[sensors]]\ndriver = \"simulated\"\nlatency = [\"0ms\", \"5ms\"]\nerror_rate = 0.2\n"),
        ),
        (
            "simulated with faults",
            Source::Seeded,
            parse(concat!(
                "[[sensors]]\nlatency = [\"1ms\", \"1ms\"]\noffline_rate = 0.05\nfatal_rate = 0.05\n",
                "faults = [{ round = 7, fault = \"spike\" }, { round = 3, fault = \"flap\", every = 3 }]\n"
            )),
        ),
        (
            "replay",
            Source::Recorded,
            parse(&format!(
                "[[sensors]]\ndriver = \"replay\"\npath = \"{data}/nab/machine_temperature_system_failure.csv\"\nvalue_column = \"value\"\nid = \"m\"\n"
            )),
        ),
        ("system", Source::Live, parse("[[sensors]]\ndriver = \"system\"\nmetric = \"load1\"\nid = \"load\"\n")),
    ]
}

fn context(seed: u64) -> DriverContext {
    DriverContext {
        id: "conformance-1".into(),
        kind: "temperature".into(),
        index: 0,
        incarnation: 0,
        seed,
    }
}

/// Reads `rounds` rounds from a fresh driver, catching any panic as a test failure.
async fn read_all(spec: &DriverSpec, seed: u64, rounds: u64) -> Vec<Result<Sample, ReadError>> {
    let mut driver = spec.build(&context(seed));
    let mut results = Vec::new();
    for round in 1..=rounds {
        let read = std::panic::catch_unwind(AssertUnwindSafe(|| driver.read(round))).expect("read() panicked");
        let result = AssertUnwindSafe(read)
            .catch_unwind()
            .await
            .expect("the read future panicked");
        results.push(result);
    }
    results
}

/// Every shipped driver answers 200 reads without a panic and only reports transient, fatal,
/// offline or exhausted errors; a seeded driver reproduces its sequence from the same seed and
/// changes it under another; a recorded one gives the same sequence whatever the seed.
#[actix_rt::test]
async fn every_driver_conforms() {
    tokio::time::pause();
    for (name, source, spec) in drivers() {
        let first = read_all(&spec, 42, 200).await;
        let again = read_all(&spec, 42, 200).await;
        let other = read_all(&spec, 43, 200).await;
        match source {
            Source::Seeded => {
                assert_eq!(first, again, "{name}: same seed, same results");
                assert_ne!(first, other, "{name}: another seed, other results");
            }
            Source::Recorded => assert_eq!(first, other, "{name}: the file decides, not the seed"),
            Source::Live => {}
        }
        assert!(first.iter().any(Result::is_ok), "{name}: some reads succeed");
        for result in &first {
            match result {
                Ok(sample) => assert!(sample.value.is_finite(), "{name}: finite values"),
                Err(ReadError::Failed(_) | ReadError::Fatal(_) | ReadError::Offline | ReadError::Exhausted) => {}
                Err(other) => panic!("{name}: unexpected error {other:?}"),
            }
        }
    }
}
