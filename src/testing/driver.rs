//! Conformance checks for sensor drivers: what `docs/drivers.md` asks of every driver, as
//! functions a test calls with a driver's spec or with a [`Collector`] that registers it. The
//! built-in drivers pass them in `tests/driver_conformance.rs`; a driver written outside the
//! crate is checked the same way.
//!
//! - [`check_entry`] parses a `[[sensors]]` entry with the collector's drivers, checks that an
//!   unknown key is a one-line configuration error naming it, then runs [`check`] on the spec;
//! - [`check`] builds fresh drivers from a spec and reads them for [`ROUNDS`] rounds: no panic
//!   escapes a build or a read, every read completes, errors are of the documented kinds
//!   (`Failed`, `Fatal`, `Offline`, `Exhausted`; an exhausted driver stays exhausted), values
//!   are finite, some reads succeed, and the results are as deterministic as the driver's
//!   [`Source`] says.
//!
//! Run them with tokio's clock paused (`tokio::time::pause()` in `#[actix_rt::test]`), so a
//! driver's latencies take no real time.
//!
//! ```
//! use sensor_actors::testing::driver::{check_entry, Source};
//! use sensor_actors::Collector;
//!
//! # actix_rt::System::new().block_on(async {
//! tokio::time::pause(); // in an `#[actix_rt::test]`
//! let entry = "driver = \"simulated\"\nlatency = [\"0ms\", \"5ms\"]\nerror_rate = 0.2";
//! check_entry(&Collector::new(), entry, Source::Seeded).await.unwrap();
//! # });
//! ```

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;

use crate::driver::{DriverContext, DriverSpec, ReadError, Sample};
use crate::Collector;

/// Reads made from each driver a check builds.
pub const ROUNDS: u64 = 200;

/// How long one read may take before the check calls it hung (virtual time, with the clock
/// paused): far above any real latency, so only a read that never completes trips it.
pub const READ_LIMIT: Duration = Duration::from_secs(3600);

/// The key [`check_entry`] adds to an entry to see it rejected.
pub const UNKNOWN_KEY: &str = "conformance_unknown_key";

/// Where a driver's values come from, which decides what its determinism means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Source {
    /// Drawn from the seed: the same seed repeats them, another seed changes them.
    Seeded,
    /// Read from a file or another fixed source: the same whatever the seed.
    Recorded,
    /// Read from the live machine or a device: no repeatability to check.
    Live,
}

/// What a driver did against the contract, in one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Violation(String);

impl Violation {
    fn new(message: impl Into<String>) -> Self {
        Violation(message.into())
    }
}

/// The context [`check`] builds its drivers with: sensor `conformance-1` of kind `test`, index
/// 0, first start, `seed`.
pub fn context(seed: u64) -> DriverContext {
    DriverContext {
        id: "conformance-1".into(),
        kind: "test".into(),
        index: 0,
        incarnation: 0,
        seed,
    }
}

/// Parses `entry` (the body of one `[[sensors]]` table, `driver = "..."` included) with the
/// drivers of `collector` and gives the spec of its first sensor.
pub fn spec(collector: &Collector, entry: &str) -> Result<Arc<dyn DriverSpec>, Violation> {
    let text = format!("[[sensors]]\n{entry}\n");
    let config = collector
        .parse(&text, "conformance.toml")
        .map_err(|e| Violation::new(format!("the entry does not parse: {e}")))?;
    Ok(config.sensors[0].driver.clone())
}

/// Checks the driver of `entry` (the body of one `[[sensors]]` table naming a driver of
/// `collector`): the entry parses; the same entry with an unknown key is a one-line error
/// naming that key; and its spec passes [`check`].
pub async fn check_entry(collector: &Collector, entry: &str, source: Source) -> Result<(), Violation> {
    let spec = spec(collector, entry)?;
    let text = format!("[[sensors]]\n{entry}\n{UNKNOWN_KEY} = 1\n");
    match collector.parse(&text, "conformance.toml") {
        Ok(_) => return Err(Violation::new(format!("an unknown key `{UNKNOWN_KEY}` is accepted"))),
        Err(e) => {
            let line = e.to_string();
            let named = format!("conformance.toml: sensors[0].{UNKNOWN_KEY}: unknown field `{UNKNOWN_KEY}`");
            if !line.starts_with(&named) || line.contains('\n') {
                return Err(Violation::new(format!(
                    "an unknown key gives \"{line}\", expected one line starting \"{named}\""
                )));
            }
        }
    }
    check(&*spec, source).await
}

/// Builds drivers from `spec` and reads each for [`ROUNDS`] rounds (seeds 42, 42 again and 43):
/// no panic escapes a build or a read, every build succeeds and every read completes within
/// [`READ_LIMIT`], errors are `Failed`, `Fatal`, `Offline` or `Exhausted` (and `Exhausted`
/// stays), values are finite, some reads succeed, and the results repeat as `source` says.
pub async fn check(spec: &dyn DriverSpec, source: Source) -> Result<(), Violation> {
    let first = read_all(spec, 42, ROUNDS).await?;
    let again = read_all(spec, 42, ROUNDS).await?;
    let other = read_all(spec, 43, ROUNDS).await?;
    match source {
        Source::Seeded if first != again => return Err(Violation::new("the same seed gave other results")),
        Source::Seeded if first == other => return Err(Violation::new("another seed gave the same results")),
        Source::Recorded if first != other => {
            return Err(Violation::new("another seed gave other results from a recorded source"))
        }
        _ => {}
    }
    if !first.iter().any(Result::is_ok) {
        return Err(Violation::new(format!("none of {ROUNDS} reads succeeded")));
    }
    let mut exhausted = false;
    for (round, result) in (1..).zip(&first) {
        match result {
            Ok(sample) if !sample.value.is_finite() => {
                return Err(Violation::new(format!("read {round} gave {}", sample.value)))
            }
            _ if exhausted && !matches!(result, Err(ReadError::Exhausted)) => {
                return Err(Violation::new(format!("read {round} answered after `exhausted`")))
            }
            Ok(_) | Err(ReadError::Failed(_) | ReadError::Fatal(_) | ReadError::Offline) => {}
            Err(ReadError::Exhausted) => exhausted = true,
            Err(other) => return Err(Violation::new(format!("read {round} gave the error {other:?}"))),
        }
    }
    Ok(())
}

/// Builds a fresh driver from `spec` with [`context`]`(seed)` and makes `rounds` reads of it,
/// one after the other; a panic, a failed build or a read that does not complete within
/// [`READ_LIMIT`] is a violation.
pub async fn read_all(
    spec: &dyn DriverSpec,
    seed: u64,
    rounds: u64,
) -> Result<Vec<Result<Sample, ReadError>>, Violation> {
    let ctx = context(seed);
    let build = std::panic::catch_unwind(AssertUnwindSafe(|| spec.build(&ctx)))
        .map_err(|_| Violation::new("build() panicked"))?;
    let mut driver = AssertUnwindSafe(build)
        .catch_unwind()
        .await
        .map_err(|_| Violation::new("the build's future panicked"))?
        .map_err(|e| Violation::new(format!("the build failed: {e}")))?;
    let mut results = Vec::with_capacity(rounds as usize);
    for round in 1..=rounds {
        let read = std::panic::catch_unwind(AssertUnwindSafe(|| driver.read(round)))
            .map_err(|_| Violation::new(format!("read({round}) panicked")))?;
        let result = tokio::time::timeout(READ_LIMIT, AssertUnwindSafe(read).catch_unwind())
            .await
            .map_err(|_| Violation::new(format!("read {round} did not complete")))?
            .map_err(|_| Violation::new(format!("the future of read {round} panicked")))?;
        results.push(result);
    }
    Ok(results)
}
