//! Sensor drivers: where a sensor's readings come from.
//!
//! A [`Driver`] makes one read at a time for one sensor; the sensor actor
//! that owns it turns the outcome into a reply. Driver kinds are registered by name in a
//! [`DriverRegistry`]: `driver = "<name>"` in a `[[sensors]]` entry hands the entry's own keys
//! ([`DriverKeys`]) to that name's [`DriverFactory`], which validates them into a
//! [`DriverSpec`]; the supervisor builds each sensor's driver from its spec ([`DriverSpec::build`],
//! which may fail and may be asynchronous: [`DriverBuild`]) on first start and every restart.
//! The built-in drivers (`simulated`, `replay`, `system`) are registered the same way as the ones
//! from outside the crate: a new one is one file in this folder plus one line in
//! [`DriverRegistry::builtin`].
//!
//! What every driver must do is specified in `docs/drivers.md` and checked by
//! [`testing::driver`](crate::testing::driver): return errors, never panic on purpose (a panic is
//! caught and treated as a failure of that sensor only), take all randomness from the seed it is
//! built with, and leave deadlines to the round.

pub mod mqtt;
pub mod registry;
pub mod replay;
pub mod simulated;
pub mod system;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

pub use crate::data::{ReadError, Sample};
pub use registry::{DriverKeys, DriverRegistry};

use crate::data::RestartType;
use crate::parse::ConfigError;

/// One read, as a driver starts it: either already done ([`ReadFuture::ready`], as for a file,
/// `/proc` or a zero-latency simulation: no allocation, answered inside the sensor's handler),
/// done but taking a known time to arrive ([`ReadFuture::after`], a simulation's latency), or a
/// future to wait on ([`ReadFuture::new`]). It runs on the sensor's arbiter, so it need not be
/// `Send`.
pub struct ReadFuture(ReadState);

enum ReadState {
    /// The result, until taken.
    Ready(Option<Result<Sample, ReadError>>),
    /// The latency after which the result arrives, in nanoseconds (which keeps a read as small
    /// as a ready one), and the result; `Ready(None)` once taken.
    After(u64, Result<Sample, ReadError>),
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

    /// A read whose result is known when it starts and arrives `latency` later, as a
    /// simulation's does; with no latency, [`ReadFuture::ready`]. No timer is set for it: the
    /// sensor answers at once with the instant its answer is due, and its group keeps the answer
    /// and settles it as of that instant (as a sleep of `latency` would have ended: on tokio's
    /// millisecond ticks), so simulated latencies cost no timer, no task and no wake-up each,
    /// on the wall clock as on a virtual one. Where the group cannot keep answers (a group with
    /// `max_in_flight`), and polled as a future, it is a sleep of `latency` (as
    /// [`ReadFuture::new`] over a sleep would be).
    pub fn after(latency: Duration, result: Result<Sample, ReadError>) -> Self {
        if latency.is_zero() {
            ReadFuture::ready(result)
        } else {
            // 64 bits of nanoseconds hold 584 years (a configured latency is at most ten).
            let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
            ReadFuture(ReadState::After(nanos, result))
        }
    }

    /// A future that answers `result` after sleeping for `latency`, whatever the clock (for a
    /// read made with [`ReadFuture::after`] that must be waited for where it is: one that ends
    /// the sensor).
    pub(crate) fn sleeping(latency: Duration, result: Result<Sample, ReadError>) -> Self {
        ReadFuture::new(async move {
            actix_rt::time::sleep(latency).await;
            result
        })
    }

    /// Takes the result of a read made with [`ReadFuture::ready`] (once); `None` for a future.
    pub fn take_ready(&mut self) -> Option<Result<Sample, ReadError>> {
        match &mut self.0 {
            ReadState::Ready(result) => result.take(),
            ReadState::After(..) | ReadState::Waiting(_) => None,
        }
    }

    /// The read as a boxed future: a future's own box (no allocation), or one made for a read
    /// that is done or known in advance.
    pub(crate) fn into_boxed(self) -> Pin<Box<dyn Future<Output = Result<Sample, ReadError>>>> {
        match self.0 {
            ReadState::Waiting(future) => future,
            state => Box::pin(ReadFuture(state)),
        }
    }

    /// Takes the latency and result of a read made with [`ReadFuture::after`] (once); `None` for
    /// any other read.
    pub(crate) fn take_after(&mut self) -> Option<(Duration, Result<Sample, ReadError>)> {
        if !matches!(self.0, ReadState::After(..)) {
            return None;
        }
        match std::mem::replace(&mut self.0, ReadState::Ready(None)) {
            ReadState::After(nanos, result) => Some((Duration::from_nanos(nanos), result)),
            _ => None,
        }
    }
}

impl Future for ReadFuture {
    type Output = Result<Sample, ReadError>;

    /// Polls the driver's future; a ready read answers at once, and a read made with
    /// [`ReadFuture::after`] becomes a sleep of its latency at its first poll.
    /// Polling again after the result was taken is a bug of the caller and panics, as for any
    /// finished future.
    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        if let Some((latency, result)) = self.take_after() {
            *self = ReadFuture::sleeping(latency, result);
        }
        match &mut self.0 {
            ReadState::Ready(result) => std::task::Poll::Ready(result.take().expect("a ready read is taken once")),
            ReadState::After(..) => unreachable!("a delayed read became a sleep above"),
            ReadState::Waiting(future) => future.as_mut().poll(cx),
        }
    }
}

impl fmt::Debug for ReadFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            ReadState::Ready(result) => f.debug_tuple("Ready").field(result).finish(),
            ReadState::After(nanos, result) => f
                .debug_tuple("After")
                .field(&Duration::from_nanos(*nanos))
                .field(result)
                .finish(),
            ReadState::Waiting(_) => f.write_str("Waiting"),
        }
    }
}

/// Makes reads for one sensor: a read that is done at once is [`ReadFuture::ready`], one that
/// waits is [`ReadFuture::new`] over a future (on the sensor's arbiter: it need not be `Send`).
///
/// ```
/// use sensor_actors::driver::{Driver, ReadError, ReadFuture, Sample};
///
/// /// A gauge that always reads the same, and fails every tenth round.
/// struct Constant(f64);
///
/// impl Driver for Constant {
///     fn read(&mut self, round: u64) -> ReadFuture {
///         if round % 10 == 0 {
///             return ReadFuture::ready(Err(ReadError::Failed("bus busy".into())));
///         }
///         ReadFuture::ready(Ok(Sample::value(self.0)))
///     }
/// }
/// ```
pub trait Driver: 'static {
    /// Starts the read of `round`. Slow reads are fine: the round enforces the deadline and
    /// discards late results.
    fn read(&mut self, round: u64) -> ReadFuture;
}

/// What a driver is built from besides its settings. Made by the supervisor (and by
/// [`testing::driver::context`](crate::testing::driver::context) in tests).
#[derive(Debug, Clone)]
#[non_exhaustive]
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

/// A driver kind, registered by name: `driver = "<name>"` in a `[[sensors]]` entry hands the
/// entry's own keys to its factory, which validates them into a [`DriverSpec`].
///
/// Register one with [`Collector::driver`](crate::Collector::driver); the built-in `simulated`,
/// `replay` and `system` drivers are registered the same way.
///
/// ```
/// use std::sync::Arc;
/// use sensor_actors::driver::{Driver, DriverBuild, DriverContext, DriverFactory, DriverKeys, DriverSpec};
/// use sensor_actors::driver::{ReadFuture, Sample};
/// use sensor_actors::{Collector, ConfigError};
///
/// /// `driver = "constant"`, with one key of its own: `value`.
/// struct ConstantFactory;
///
/// #[derive(Debug, serde::Deserialize)]
/// #[serde(deny_unknown_fields)]
/// struct Constant {
///     value: f64,
/// }
///
/// impl DriverFactory for ConstantFactory {
///     fn parse(&self, keys: &DriverKeys<'_>) -> Result<Arc<dyn DriverSpec>, ConfigError> {
///         Ok(Arc::new(keys.deserialize::<Constant>()?))
///     }
/// }
///
/// impl DriverSpec for Constant {
///     fn build(&self, _ctx: &DriverContext) -> DriverBuild {
///         DriverBuild::driver(ConstantDriver(self.value))
///     }
/// }
///
/// struct ConstantDriver(f64);
///
/// impl Driver for ConstantDriver {
///     fn read(&mut self, _round: u64) -> ReadFuture {
///         ReadFuture::ready(Ok(Sample::value(self.0)))
///     }
/// }
///
/// let collector = Collector::new().driver("constant", ConstantFactory);
/// let config = collector
///     .parse("[[sensors]]\ndriver = \"constant\"\nvalue = 4.5\ncount = 3\n", "demo.toml")
///     .unwrap();
/// assert_eq!(config.sensors.len(), 3);
/// assert_eq!(&*config.sensors[0].kind, "constant"); // the driver's name, as no kind is given
/// let error = collector.parse("[[sensors]]\ndriver = \"constant\"\n", "demo.toml").unwrap_err();
/// assert_eq!(error.to_string(), "demo.toml: sensors[0]: missing field `value`");
/// ```
pub trait DriverFactory: Send + Sync + 'static {
    /// Validates the keys of one `[[sensors]]` entry (those not common to every entry) into the
    /// spec its sensors are built from. Errors are one line, made by [`DriverKeys::deserialize`]
    /// or [`DriverKeys::error`]. Parsing runs once per entry, when the configuration is loaded
    /// (and by `check`): open files, resolve paths and reject bad settings here, not in `build`.
    fn parse(&self, keys: &DriverKeys<'_>) -> Result<Arc<dyn DriverSpec>, ConfigError>;

    /// The restart type of this driver's sensors when neither the entry nor `[supervision]`
    /// names one: `None` (the default) leaves it to `[supervision]`. A replay returns
    /// `transient`: a file that runs out is a normal end, not a failure to restart.
    fn default_restart(&self) -> Option<RestartType> {
        None
    }

    /// Called once when a run of a [`Collector`](crate::Collector) this factory is registered
    /// on starts, before its sensors start, with the run's [`Control`](crate::Control) and
    /// shard: a driver that discovers its devices while running (`mqtt` with `{id}` in its
    /// topic) starts listening here and adds each device it finds through the control. The
    /// default does nothing.
    fn run_started(&self, _run: &RunStart) {}

    /// Called once when that run has ended (after its summary went out): a driver that keeps
    /// connections of its own beyond its sensors' (the `mqtt` hubs) closes them here, so a next
    /// run with the same client ids does not compete with them. The default does nothing.
    fn run_ended(&self) {}

    /// Counts of this driver's own over the run, by name, for the summary's `drivers`
    /// (`mqtt`: `received`, `superseded`): asked once after the last round, as the run's
    /// summary is made (before [`run_ended`](DriverFactory::run_ended)). The default counts
    /// nothing, and the driver is left out of `drivers`.
    fn counts(&self) -> Vec<(String, u64)> {
        Vec::new()
    }
}

/// What a factory is told when a run starts ([`DriverFactory::run_started`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RunStart {
    /// Adds and removes the run's sensors.
    pub control: crate::Control,
    /// The run's share of the sensors (`run --shard I/N`), if it has one: a discovering driver
    /// adds only the ids in it.
    pub shard: Option<crate::Shard>,
}

/// The validated settings of one `[[sensors]]` entry (made by its [`DriverFactory`]), from which
/// each of its sensors' drivers is built, on first start and on every restart.
///
/// The sensors of an entry share one spec (behind an `Arc`); a spec is never changed after
/// parsing, and a restart builds from it afresh, never from the failed driver's state.
pub trait DriverSpec: sealed::AsAny + Send + Sync + fmt::Debug {
    /// Builds a fresh driver for the sensor of `ctx`, at once ([`DriverBuild::ready`],
    /// [`DriverBuild::driver`]) or asynchronously ([`DriverBuild::new`]: connecting, say). A
    /// failed build (or a panic in it) is that sensor's failure, restarted under its policy
    /// and journaled `failed` with cause `build: <message>` (`panic: <message>`); its reads are
    /// `unavailable` until a build succeeds. While a build is pending, its reads wait (and time
    /// out at the round's deadline).
    fn build(&self, ctx: &DriverContext) -> DriverBuild;

    /// The kind of this entry's sensors when it names none; `None` (the default) makes it the
    /// driver's registered name.
    fn default_kind(&self) -> Option<&str> {
        None
    }

    /// The unit of the values when the entry names none; `None` (the default) leaves it to the
    /// kind (`C` for `temperature`, `%` for `humidity`, `hPa` for `pressure`, else empty).
    fn default_unit(&self) -> Option<&str> {
        None
    }

    /// For an entry that makes one sensor per key found in its source (a replay with
    /// `id_column`): each key with the spec of its sensor. `None` (the default) for an entry
    /// whose sensors come from `id` or `count`.
    fn sensor_keys(&self) -> Option<Vec<(String, Arc<dyn DriverSpec>)>> {
        None
    }

    /// Whether the readings come from the real world (this machine, a device, a broker), whose
    /// time cannot be simulated: such a driver refuses a run on a virtual clock
    /// ([`Clock::Virtual`](crate::Clock::Virtual)). `false` (the default) for drivers whose
    /// readings depend only on their settings, the seed and the round.
    fn real_world(&self) -> bool {
        false
    }
}

mod sealed {
    use std::any::Any;

    /// Lets the crate recognise its own specs (`--sensors` and the `faults` id check apply to
    /// simulated entries only) on Rust 1.85, before trait upcasting. Implemented for every type.
    pub trait AsAny: Any {
        /// `self`, as `Any`.
        fn as_any(&self) -> &dyn Any;
    }

    impl<T: Any> AsAny for T {
        fn as_any(&self) -> &dyn Any {
            self
        }
    }
}

/// Whether `a` and `b` are the same spec instance (not equal copies): sensors sharing one are
/// stored as one entry of the sensor table.
pub(crate) fn same_spec(a: &Arc<dyn DriverSpec>, b: &Arc<dyn DriverSpec>) -> bool {
    std::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(b))
}

/// `spec` as a `T`, when it is one.
pub(crate) fn downcast<T: 'static>(spec: &dyn DriverSpec) -> Option<&T> {
    spec.as_any().downcast_ref::<T>()
}

/// Why a driver could not be built (a device that cannot be reached, a refused login...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BuildError {
    message: String,
}

impl BuildError {
    /// A failed build; `message` is journaled as the cause `build: <message>`.
    pub fn new(message: impl Into<String>) -> Self {
        BuildError {
            message: message.into(),
        }
    }

    /// What went wrong.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// What a build gives: a driver, or why there is none.
pub type BuildResult = Result<Box<dyn Driver>, BuildError>;

/// A driver being built, as [`DriverSpec::build`] returns it: either already done
/// ([`DriverBuild::ready`], [`DriverBuild::driver`]: no allocation beyond the driver's box) or a
/// future to wait on ([`DriverBuild::new`]), run in the sensor's actor, on its arbiter (so it
/// need not be `Send`), before the actor handles any read.
pub struct DriverBuild(BuildState);

enum BuildState {
    /// The result, until taken.
    Ready(Option<BuildResult>),
    Waiting(Pin<Box<dyn Future<Output = BuildResult>>>),
}

impl DriverBuild {
    /// A build that is already done.
    pub fn ready(result: BuildResult) -> Self {
        DriverBuild(BuildState::Ready(Some(result)))
    }

    /// A build that succeeded at once with `driver`.
    pub fn driver(driver: impl Driver) -> Self {
        DriverBuild::ready(Ok(Box::new(driver)))
    }

    /// A build that failed at once.
    pub fn failed(error: BuildError) -> Self {
        DriverBuild::ready(Err(error))
    }

    /// A build that completes when `future` does.
    pub fn new(future: impl Future<Output = BuildResult> + 'static) -> Self {
        DriverBuild(BuildState::Waiting(Box::pin(future)))
    }

    /// Takes the result of a build made with [`DriverBuild::ready`] (once); `None` for a future.
    pub fn take_ready(&mut self) -> Option<BuildResult> {
        match &mut self.0 {
            BuildState::Ready(result) => result.take(),
            BuildState::Waiting(_) => None,
        }
    }
}

impl Future for DriverBuild {
    type Output = BuildResult;

    /// Polls the build's future; a ready build answers at once. Polling again after the result
    /// was taken is a bug of the caller and panics, as for any finished future.
    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<BuildResult> {
        match &mut self.0 {
            BuildState::Ready(result) => std::task::Poll::Ready(result.take().expect("a ready build is taken once")),
            BuildState::Waiting(future) => future.as_mut().poll(cx),
        }
    }
}

impl fmt::Debug for DriverBuild {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            BuildState::Ready(Some(Ok(_))) => f.write_str("Ready(Ok(..))"),
            BuildState::Ready(Some(Err(e))) => f.debug_tuple("Ready").field(&Err::<(), _>(e)).finish(),
            BuildState::Ready(None) => f.write_str("Taken"),
            BuildState::Waiting(_) => f.write_str("Waiting"),
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
