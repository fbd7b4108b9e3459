//! Sensor drivers: where a sensor's readings come from.
//!
//! A [`Driver`] makes one read at a time for one sensor; the [`SensorActor`](crate::sensor::SensorActor)
//! that owns it turns the outcome into a reply. Which drivers exist is the closed enum
//! [`DriverSpec`], parsed from a `[[sensors]]` entry by [`DriverSpec::parse`] and turned into a
//! driver by [`DriverSpec::build`]. Adding a driver is one new file in this folder plus one line in
//! each `match` below (the compiler lists them). Drivers written outside the crate plug in through
//! [`DriverSpec::Custom`] and a [`DriverFactory`].
//!
//! What every driver must do is specified in `docs/extending.md`: return errors, never panic on
//! purpose (a panic is caught and treated as a fatal failure of that sensor only), take all
//! randomness from the seed it is built with, and leave deadlines to the round.

pub mod registry;
pub mod replay;
pub mod simulated;
pub mod system;

use std::fmt;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

pub use registry::DriverRegistry;

use crate::config::{ConfigError, RestartType};

/// One read, as a driver starts it: either already done ([`ReadFuture::ready`], as for a file,
/// `/proc` or a zero-latency simulation: no allocation, answered inside the sensor's handler) or
/// a future to wait on ([`ReadFuture::new`]). It runs on the sensor's arbiter, so it need not be
/// `Send`.
pub struct ReadFuture(ReadState);

enum ReadState {
    /// The result, until taken.
    Ready(Option<Result<Sample, ReadError>>),
    Waiting(Pin<Box<dyn Future<Output = Result<Sample, ReadError>>>>),
}

impl ReadFuture {
    /// A read that is already done.
    pub fn ready(result: Result<Sample, ReadError>) -> Self {
        ReadFuture(ReadState::Ready(Some(result)))
    }

    /// A read that completes when `future` does.
    pub fn new(future: impl Future<Output = Result<Sample, ReadError>> + 'static) -> Self {
        ReadFuture(ReadState::Waiting(Box::pin(future)))
    }

    /// Takes the result of a read made with [`ReadFuture::ready`] (once); `None` for a future.
    pub fn take_ready(&mut self) -> Option<Result<Sample, ReadError>> {
        match &mut self.0 {
            ReadState::Ready(result) => result.take(),
            ReadState::Waiting(_) => None,
        }
    }
}

impl Future for ReadFuture {
    type Output = Result<Sample, ReadError>;

    /// Polls the driver's future; a ready read answers at once. Polling again after the result
    /// was taken is a bug of the caller and panics, as for any finished future.
    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        match &mut self.0 {
            ReadState::Ready(result) => std::task::Poll::Ready(result.take().expect("a ready read is taken once")),
            ReadState::Waiting(future) => future.as_mut().poll(cx),
        }
    }
}

impl fmt::Debug for ReadFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            ReadState::Ready(result) => f.debug_tuple("Ready").field(result).finish(),
            ReadState::Waiting(_) => f.write_str("Waiting"),
        }
    }
}

/// Makes reads for one sensor.
pub trait Driver: 'static {
    /// Starts the read of `round`. Slow reads are fine: the round enforces the deadline and
    /// discards late results.
    fn read(&mut self, round: u64) -> ReadFuture;
}

/// A value read from a source.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The measured value.
    pub value: f64,
    /// For replayed data: the 1-based data row of the source file.
    pub source_row: Option<u64>,
    /// For replayed data: the time recorded with the value, as written in the source.
    pub source_time: Option<Arc<str>>,
}

impl Sample {
    /// A sample with a value only.
    pub fn value(value: f64) -> Self {
        Sample {
            value,
            source_row: None,
            source_time: None,
        }
    }
}

/// Why a read gave no value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReadError {
    /// A transient failure: counted `failed`, the sensor keeps running.
    #[error("{0}")]
    Failed(String),
    /// A failure the sensor cannot recover from by itself: it must be restarted.
    #[error("fatal: {0}")]
    Fatal(String),
    /// The device reports itself offline: counted `unavailable`.
    #[error("offline")]
    Offline,
    /// The source has no more data: the sensor stops normally.
    #[error("exhausted")]
    Exhausted,
    /// The driver panicked; the panic was caught at the sensor.
    #[error("panic: {0}")]
    Panic(String),
    /// The sensor's actor must stop without answering, as an actor that dies outside its driver
    /// would (its mailbox closes; the supervisor sees a stopped actor).
    #[error("crash: {0}")]
    Crash(String),
}

/// What a driver is built from besides its settings.
#[derive(Debug, Clone)]
pub struct DriverContext {
    /// The sensor's id.
    pub id: Arc<str>,
    /// The sensor's kind.
    pub kind: Arc<str>,
    /// The sensor's index in the configuration.
    pub index: usize,
    /// How many times this sensor was started before (0 for the first start).
    pub incarnation: u32,
    /// Seed of this driver's random draws, derived from the run's seed, the index and the
    /// incarnation, so every sensor has its own reproducible stream.
    pub seed: u64,
}

/// Builds drivers of a kind defined outside this crate.
pub trait DriverFactory: Send + Sync + fmt::Debug + 'static {
    /// The name shown in logs and docs.
    fn name(&self) -> &str;
    /// Builds a fresh driver (on first start and on every restart).
    fn build(&self, ctx: &DriverContext) -> Box<dyn Driver>;
}

/// The closed list of driver kinds, with their validated settings (behind an `Arc`, so a spec
/// stays small and the sensors of an entry share one copy).
#[derive(Debug, Clone)]
pub enum DriverSpec {
    /// Random-walk values with random latency and faults (`driver = "simulated"`); the
    /// settings are shared by every sensor of the entry.
    Simulated(Arc<simulated::Settings>),
    /// Recorded readings from a CSV file (`driver = "replay"`).
    Replay(Arc<replay::Settings>),
    /// Metrics of this machine from `/proc` (`driver = "system"`).
    System(Arc<system::Settings>),
    /// A driver from outside the crate (not reachable from a config file).
    Custom(Arc<dyn DriverFactory>),
}

/// The names accepted by `driver = "..."`.
pub const DRIVER_NAMES: &[&str] = &["simulated", "replay", "system"];

impl DriverSpec {
    /// Whether both are the same settings (the same shared instance, not equal copies).
    pub fn same(&self, other: &DriverSpec) -> bool {
        match (self, other) {
            (DriverSpec::Simulated(a), DriverSpec::Simulated(b)) => Arc::ptr_eq(a, b),
            (DriverSpec::Replay(a), DriverSpec::Replay(b)) => Arc::ptr_eq(a, b),
            (DriverSpec::System(a), DriverSpec::System(b)) => Arc::ptr_eq(a, b),
            (DriverSpec::Custom(a), DriverSpec::Custom(b)) => std::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(b)),
            _ => false,
        }
    }

    /// Parses the driver-specific keys of a `[[sensors]]` entry (`at` is its path); relative
    /// file paths resolve against `base`, the configuration file's folder.
    pub fn parse(
        name: &str,
        table: toml::Table,
        origin: &str,
        at: &str,
        base: &Path,
    ) -> Result<DriverSpec, ConfigError> {
        match name {
            "simulated" => Ok(DriverSpec::Simulated(Arc::new(simulated::Settings::parse(
                table, origin, at,
            )?))),
            "replay" => Ok(DriverSpec::Replay(Arc::new(replay::Settings::parse(
                table, origin, at, base,
            )?))),
            "system" => Ok(DriverSpec::System(Arc::new(system::Settings::parse(
                table, origin, at,
            )?))),
            other => Err(ConfigError::new(
                origin,
                format!("{at}.driver"),
                format!("expected one of {}, got \"{other}\"", DRIVER_NAMES.join(", ")),
            )),
        }
    }

    /// The kind of sensor the driver makes when the entry names none.
    pub fn default_kind(&self) -> &str {
        match self {
            DriverSpec::Simulated(_) => "temperature",
            DriverSpec::Replay(s) => &s.value_column,
            DriverSpec::System(s) => s.metric.as_str(),
            DriverSpec::Custom(f) => f.name(),
        }
    }

    /// The unit of the values when the entry names none; `None` leaves it to the kind.
    pub fn default_unit(&self) -> Option<&str> {
        match self {
            DriverSpec::System(s) => Some(s.metric.unit()),
            DriverSpec::Simulated(_) | DriverSpec::Replay(_) | DriverSpec::Custom(_) => None,
        }
    }

    /// The restart type when neither the entry nor anything more specific names one; `None`
    /// leaves it to `[supervision]`. A replay ends when its file does: `transient`, so an
    /// exhausted sensor is not restarted.
    pub fn default_restart(&self) -> Option<RestartType> {
        match self {
            DriverSpec::Replay(_) => Some(RestartType::Transient),
            DriverSpec::Simulated(_) | DriverSpec::System(_) | DriverSpec::Custom(_) => None,
        }
    }

    /// For an entry that makes one sensor per key found in its source (a replay with
    /// `id_column`): each key with the driver of its sensor. `None` for an entry whose sensors
    /// come from `id` or `count`.
    pub fn sensor_keys(&self) -> Option<Vec<(String, DriverSpec)>> {
        match self {
            DriverSpec::Replay(s) => Some(
                s.sensor_ids()?
                    .into_iter()
                    .map(|(id, s)| (id, DriverSpec::Replay(Arc::new(s))))
                    .collect(),
            ),
            DriverSpec::Simulated(_) | DriverSpec::System(_) | DriverSpec::Custom(_) => None,
        }
    }

    /// Builds a fresh driver.
    pub fn build(&self, ctx: &DriverContext) -> Box<dyn Driver> {
        match self {
            DriverSpec::Simulated(settings) => Box::new(simulated::Simulated::new(settings.clone(), ctx)),
            DriverSpec::Replay(settings) => Box::new(replay::Replay::new((**settings).clone(), ctx)),
            DriverSpec::System(settings) => Box::new(system::System::new((**settings).clone(), ctx)),
            DriverSpec::Custom(factory) => factory.build(ctx),
        }
    }
}

/// Derives the seed of one driver from the run's seed (splitmix64 steps, so neighbouring
/// indices get unrelated streams).
pub fn driver_seed(run_seed: u64, index: usize, incarnation: u32) -> u64 {
    let mut x = splitmix64(run_seed ^ splitmix64(index as u64));
    x ^= splitmix64(u64::from(incarnation).wrapping_add(0x5851_f42d_4c95_7f2d));
    splitmix64(x)
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_seeds_differ_by_index_and_incarnation() {
        let a = driver_seed(42, 0, 0);
        assert_eq!(a, driver_seed(42, 0, 0));
        assert_ne!(a, driver_seed(42, 1, 0));
        assert_ne!(a, driver_seed(42, 0, 1));
        assert_ne!(a, driver_seed(43, 0, 0));
    }
}
