//! `SensorActor`: one actor per sensor. It owns its driver and its link to its group, nothing
//! else.
//!
//! Its group asks it to read with [`StartRead`]; the sensor reports its [`SensorAnswer`] on the
//! group's answer channel, so a round costs no reply channel and no timer per read. A read that
//! completes at once (zero latency, a file, `/proc`) is answered inline; a slower one runs as a
//! future spawned in the actor's context. On a virtual clock, a read whose result is known when
//! it starts ([`ReadFuture::after`], a simulation) is answered inline too, as
//! [`Answer::Ahead`]: with its latency, after which its group settles it.
//!
//! A slow or hung read never blocks the mailbox, and stopping the actor drops a read
//! that never finishes, so a hung sensor's restart leaks nothing. A panic inside the driver,
//! whether while starting the read or while its future runs, is caught here and answered as
//! [`ReadError::Panic`]: it never takes down another actor, the arbiter or the system. A driver
//! that answers [`ReadError::Crash`] makes the actor stop without answering. When an actor linked
//! to a group ends for any reason (stopped, crashed, or unwound by a panic in its own code), its
//! [`GroupLink`] tells the group, as an Erlang monitor or an Akka watch would.
//!
//! A supervised sensor's driver is built by `build` (a panic in the spec's `build` is caught
//! the same way). A build that completes at once starts the actor with its driver; one that is
//! still in progress starts the actor without it, and the actor handles no read until the build
//! completes (actix's `wait`); a build that fails there, or panics, is reported to the group as
//! [`Answer::BuildFailed`] and the actor waits to be stopped.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use actix::{Actor, ActorContext, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, WrapFuture};
use actix_rt::time::Instant;
use chrono::{DateTime, Utc};
use futures::FutureExt;

use crate::clock;
use crate::data::{ReadError, Sample};
use crate::driver::{BuildResult, Driver, DriverBuild, DriverContext, DriverSpec, ReadFuture};
use crate::panic::{self as panics, panic_message};
use crate::supervisor::group::inbox::Inbox;

/// Asks a sensor to read for round `round` and report on its group's answer channel.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub(crate) struct StartRead {
    /// The round asking; echoed in the answer, so an answer is never counted in another round.
    pub(crate) round: u64,
    /// Whether a read known when it starts may be answered then, as [`Answer::Ahead`], for the
    /// group to keep until it is due; else it is waited for.
    pub(crate) ahead: bool,
}

/// Asks a sensor actor to stop; its group sends it before dropping the actor's address.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub(crate) struct StopSensor;

/// What a sensor reports to its group, on the group's answer channel.
#[derive(Debug)]
pub(crate) struct SensorAnswer {
    /// The sensor's position in its group.
    pub(crate) member: u32,
    /// Which start of the sensor answered; answers of a replaced actor are ignored.
    pub(crate) incarnation: u32,
    /// The answer.
    pub(crate) answer: Answer,
}

/// The content of a [`SensorAnswer`].
#[derive(Debug)]
pub(crate) enum Answer {
    /// A finished read.
    Read {
        /// The round of the [`StartRead`] this answers.
        round: u64,
        /// The sample, or why there is none.
        result: ReadResult,
        /// Time from receiving `StartRead` to the result.
        latency: Latency,
        /// Wall-clock time of the result.
        timestamp: DateTime<Utc>,
    },
    /// A read whose result was known when it started ([`ReadFuture::after`]), answered then:
    /// it completes `latency` after `started`, and counts as of then (its group keeps it until
    /// it is due).
    Ahead {
        /// The round of the [`StartRead`] this answers.
        round: u64,
        /// The sample, or why there is none.
        result: ReadResult,
        /// When the sensor started the read (took its `StartRead`).
        started: Instant,
        /// How long the read takes: its driver's latency, up to the millisecond tokio's timers
        /// wake on.
        latency: Latency,
    },
    /// The actor ended (stopped, crashed or unwound): any read it had is lost.
    Stopped,
    /// The sensor's driver could not be built (its actor waits to be stopped; its reads never
    /// answer).
    BuildFailed {
        /// `build: <message>`, or `panic: <message>` for a build that panicked.
        cause: String,
    },
}

/// A read's result as an answer carries it: a plain value (a simulated or live sensor's) in the
/// answer itself, anything else (a failure, a replayed value with its source) boxed. A round's
/// answers can all wait in the group's inbox at once: with this and [`Latency`], an answer
/// takes 64 bytes there instead of 96.
#[derive(Debug)]
pub(crate) enum ReadResult {
    /// A sample with a value only.
    Value(f64),
    /// Any other result.
    Other(Box<Result<Sample, ReadError>>),
}

impl ReadResult {
    /// Carries `result`.
    pub(crate) fn new(result: Result<Sample, ReadError>) -> Self {
        match result {
            Ok(Sample {
                value,
                source_row: None,
                source_time: None,
            }) => ReadResult::Value(value),
            other => ReadResult::Other(Box::new(other)),
        }
    }

    /// The result.
    pub(crate) fn into_result(self) -> Result<Sample, ReadError> {
        match self {
            ReadResult::Value(value) => Ok(Sample::value(value)),
            ReadResult::Other(result) => *result,
        }
    }

    /// Whether it is [`ReadError::Crash`].
    fn is_crash(&self) -> bool {
        matches!(self, ReadResult::Other(result) if matches!(**result, Err(ReadError::Crash(_))))
    }
}

/// Where a sensor reports, and who it is there.
#[derive(Debug)]
pub(crate) struct GroupLink {
    /// The group's answer channel (cloning it costs a reference count, no allocation).
    pub(crate) answers: Inbox,
    /// The sensor's position in its group.
    pub(crate) member: u32,
    /// Which start of the sensor this actor is.
    pub(crate) incarnation: u32,
}

impl GroupLink {
    fn send(&self, answer: Answer) {
        // The group may have stopped (end of the run): then nobody is waiting for the answer.
        self.answers.send(SensorAnswer {
            member: self.member,
            incarnation: self.incarnation,
            answer,
        });
    }
}

impl Drop for GroupLink {
    /// Runs when the actor is dropped, whatever ended it, including a panic unwinding its task.
    fn drop(&mut self) {
        self.send(Answer::Stopped);
    }
}

/// One sensor. Its group journals (and logs) its failures under its id, so it keeps none.
pub(crate) struct SensorActor {
    /// Makes the reads; replaced only by restarting the actor (or set once a pending build
    /// completes).
    driver: Box<dyn Driver>,
    /// The group this sensor answers to; dropped with the actor, which tells the group.
    link: GroupLink,
}

/// A read in progress: the driver's future, polled with its panics caught and kept quiet. A
/// panic ends the read with [`ReadError::Panic`]. It holds the future's box, not the
/// [`ReadFuture`] around it: a read that waits keeps 16 bytes here, not 40.
struct GuardedRead(Pin<Box<dyn Future<Output = Result<Sample, ReadError>>>>);

impl Future for GuardedRead {
    type Output = Result<Sample, ReadError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let read = &mut self.0;
        panics::quietly(|| std::panic::catch_unwind(AssertUnwindSafe(|| read.as_mut().poll(cx))))
            .unwrap_or_else(|payload| Poll::Ready(Err(ReadError::Panic(panic_message(&*payload)))))
    }
}

/// A driver build in progress: the spec's future, polled with its panics caught and kept quiet.
/// It ends with the driver, or the cause of the failure: `build: <message>` or `panic: <message>`.
struct GuardedBuild(DriverBuild);

impl Future for GuardedBuild {
    type Output = Result<Box<dyn Driver>, String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let build = &mut self.0;
        match panics::quietly(|| std::panic::catch_unwind(AssertUnwindSafe(|| Pin::new(&mut *build).poll(cx)))) {
            Ok(poll) => poll.map(build_outcome),
            Err(payload) => Poll::Ready(Err(panic_cause(&*payload))),
        }
    }
}

fn panic_cause(payload: &(dyn std::any::Any + Send)) -> String {
    format!("panic: {}", panic_message(payload))
}

fn build_outcome(result: BuildResult) -> Result<Box<dyn Driver>, String> {
    result.map_err(|error| format!("build: {error}"))
}

/// A driver as its build left it.
pub(crate) enum Built {
    /// Built at once.
    Ready(Box<dyn Driver>),
    /// Still in progress.
    Pending(DriverBuild),
}

/// Builds the driver of the sensor of `ctx` from `spec`, catching a panic in the spec's `build`;
/// an error is the cause of the failure (`build: <message>` or `panic: <message>`).
pub(crate) fn build(spec: &dyn DriverSpec, ctx: &DriverContext) -> Result<Built, String> {
    let mut build = panics::quietly(|| std::panic::catch_unwind(AssertUnwindSafe(|| spec.build(ctx))))
        .map_err(|payload| panic_cause(&*payload))?;
    match build.take_ready() {
        Some(result) => build_outcome(result).map(Built::Ready),
        None => Ok(Built::Pending(build)),
    }
}

/// Stands in for a driver while it is being built, or after its build failed: reads never
/// answer (none is made while the build is pending; the group settles any read of a sensor
/// whose build failed). A unit struct: boxing it allocates nothing.
struct Unbuilt;

impl Driver for Unbuilt {
    fn read(&mut self, _round: u64) -> ReadFuture {
        ReadFuture::new(std::future::pending())
    }
}

impl SensorActor {
    /// Starts a sensor linked to its group with the driver `built`. A build still in progress
    /// runs in the actor before it handles any read; if it fails, the group is told
    /// ([`Answer::BuildFailed`]) and the actor answers no read until the group stops it.
    pub(crate) fn start_linked(built: Built, link: GroupLink) -> Addr<SensorActor> {
        let build = match built {
            Built::Ready(driver) => return SensorActor { driver, link }.start(),
            Built::Pending(build) => build,
        };
        SensorActor::create(move |ctx| {
            let build = actix::fut::wrap_future::<_, SensorActor>(GuardedBuild(build));
            ctx.wait(build.map(|result, act, _ctx| match result {
                Ok(driver) => act.driver = driver,
                Err(cause) => act.link.send(Answer::BuildFailed { cause }),
            }));
            SensorActor {
                driver: Box::new(Unbuilt),
                link,
            }
        })
    }

    /// Starts the driver's read of `round`, catching a panic while starting it or while it runs.
    fn start(&mut self, round: u64) -> Result<ReadFuture, ReadError> {
        let driver = &mut self.driver;
        panics::quietly(|| std::panic::catch_unwind(AssertUnwindSafe(|| driver.read(round))))
            .map_err(|payload| ReadError::Panic(panic_message(&*payload)))
    }
}

/// A read's latency as an answer carries it: nanoseconds (up to 584 years), 8 bytes where a
/// `Duration` takes 16.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Latency(u64);

impl Latency {
    fn new(latency: Duration) -> Self {
        Latency(u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX))
    }

    pub(crate) fn get(self) -> Duration {
        Duration::from_nanos(self.0)
    }
}

/// The answer of a read of `round` started at `started` and finished now.
fn answer(round: u64, started: Instant, result: Result<Sample, ReadError>) -> Answer {
    let finished = Instant::now();
    Answer::Read {
        round,
        result: ReadResult::new(result),
        latency: Latency::new(finished - started),
        timestamp: clock::at(finished),
    }
}

/// The answer of a read of `round`, started at `started`, whose `result` is known at once and
/// arrives `latency` later ([`ReadFuture::after`]): it completes when a sleep of `latency` would
/// have woken.
fn ahead(round: u64, started: Instant, latency: Duration, result: Result<Sample, ReadError>) -> Answer {
    Answer::Ahead {
        round,
        result: ReadResult::new(result),
        started,
        latency: Latency::new(clock::paused_wait(latency)),
    }
}

impl Actor for SensorActor {
    type Context = Context<Self>;
}

impl SensorActor {
    /// Reports a finished read to the group, or stops without answering on a crash (the group
    /// then sees a stopped actor, as for an actor that died).
    fn finish(&mut self, answer: Answer, ctx: &mut Context<Self>) {
        if let Answer::Read { result, .. } = &answer {
            if result.is_crash() {
                ctx.stop();
                return;
            }
        }
        self.link.send(answer);
    }
}

impl Handler<StartRead> for SensorActor {
    type Result = ();

    fn handle(&mut self, msg: StartRead, ctx: &mut Context<Self>) {
        let started = Instant::now();
        let round = msg.round;
        let mut read = match self.start(round) {
            Ok(read) => read,
            Err(error) => return self.finish(answer(round, started, Err(error)), ctx),
        };
        // A read made ready by its driver (a file, /proc, zero latency) is answered inline,
        // with nothing spawned.
        if let Some(result) = read.take_ready() {
            return self.finish(answer(round, started, result), ctx);
        }
        // So is a read known in advance, with its latency, if the group takes it; a crash,
        // which stops the actor when the read completes, is waited for.
        if let Some((latency, result)) = read.take_after() {
            if msg.ahead && !matches!(result, Err(ReadError::Crash(_))) {
                return self.link.send(ahead(round, started, latency, result));
            }
            read = ReadFuture::sleeping(latency, result);
        }
        // A read done at its first poll is answered inline too.
        let mut read = GuardedRead(read.into_boxed());
        if let Some(result) = (&mut read).now_or_never() {
            return self.finish(answer(round, started, result), ctx);
        }
        ctx.spawn(
            read.into_actor(self)
                .map(move |result, act, ctx| act.finish(answer(round, started, result), ctx)),
        );
    }
}

impl Handler<StopSensor> for SensorActor {
    type Result = ();

    fn handle(&mut self, _msg: StopSensor, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::{Latency, ReadResult};
    use crate::data::{ReadError, Sample};

    /// A plain value stays in the answer; a value with its source, and every error, is boxed;
    /// each comes back as it went in.
    #[test]
    fn a_read_result_keeps_only_a_plain_value_inline() {
        let plain = ReadResult::new(Ok(Sample::value(-0.5)));
        assert!(matches!(plain, ReadResult::Value(v) if v == -0.5));
        assert_eq!(plain.into_result(), Ok(Sample::value(-0.5)));
        let sourced = Sample {
            value: 3.0,
            source_row: Some(7),
            source_time: Some(Arc::from("2019-01-01 10:00")),
        };
        let only_row = Sample {
            source_time: None,
            ..sourced.clone()
        };
        for result in [
            Ok(sourced),
            Ok(only_row),
            Err(ReadError::Failed("x".into())),
            Err(ReadError::Offline),
            Err(ReadError::Crash("gone".into())),
        ] {
            let carried = ReadResult::new(result.clone());
            assert!(matches!(carried, ReadResult::Other(_)), "{result:?}");
            assert_eq!(carried.is_crash(), matches!(result, Err(ReadError::Crash(_))));
            assert_eq!(carried.into_result(), result);
        }
        assert!(!ReadResult::new(Ok(Sample::value(1.0))).is_crash());
    }

    /// A latency keeps its nanoseconds, up to 584 years (then the most it can hold).
    #[test]
    fn a_latency_keeps_its_nanoseconds() {
        for d in [
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::new(3_600, 999_999_999),
        ] {
            assert_eq!(Latency::new(d).get(), d);
        }
        assert_eq!(Latency::new(Duration::MAX).get(), Duration::from_nanos(u64::MAX));
        assert!(
            size_of::<super::SensorAnswer>() <= 64,
            "an answer, as a round's wait in the inbox"
        );
    }
}
