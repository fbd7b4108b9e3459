//! One collection round: fan `Read` out to every sensor, gather one [`Outcome`] per sensor.
//!
//! Modelled on Akka's IoT `DeviceGroupQuery`: the round works on a snapshot of the sensors'
//! addresses, every read has its own deadline (`read_timeout`, fixed when its `Read` is sent),
//! and every sensor ends the round with exactly one outcome. A round therefore lasts as long as
//! its slowest sensor, bounded by the deadline, never the sum of the latencies.
//!
//! Without a cap, every `Read` is sent first and the replies are then awaited in send order.
//! This avoids a large `FuturesUnordered` (which degrades quadratically past ~10k entries once
//! tokio's cooperative budget is spent) and keeps each deadline exact. With `max_in_flight = k`
//! at most `k` reads are outstanding; the rest wait, still within the round, and each read's
//! deadline starts when it is sent.
//!
//! A reply whose round number differs from the round's is discarded and the sensor counted
//! `timed_out`; with request/reply a timed-out read's reply channel is dropped, so a late reply
//! can never be counted in any round.

use std::future::Future;
use std::task::Poll;
use std::time::Duration;

use actix::{Addr, MailboxError, Response};
use futures::StreamExt;

use crate::driver::ReadError;
use crate::messages::{Absence, Outcome, Read, ReadReply, Reading};
use crate::sensor::SensorActor;

/// Reads every sensor of `targets` once for round `round` and returns their outcomes in the
/// same order. `None` targets (sensors that are down, restarting or given up) are `Unavailable`.
pub async fn collect(
    targets: Vec<Option<Addr<SensorActor>>>,
    round: u64,
    read_timeout: Duration,
    max_in_flight: usize,
) -> Vec<Outcome> {
    let mut outcomes = vec![Outcome::Unavailable(Absence::Down); targets.len()];
    if max_in_flight == 0 || max_in_flight >= targets.len() {
        let requests: Vec<_> = targets
            .into_iter()
            .enumerate()
            .filter_map(|(i, addr)| addr.map(|a| (i, a.send(Read { round }).timeout(read_timeout))))
            .collect();
        for (i, request) in requests {
            outcomes[i] = outcome(round, request.await);
        }
    } else {
        let reads = targets.into_iter().enumerate().filter_map(|(i, addr)| {
            addr.map(|a| async move { (i, a.send(Read { round }).timeout(read_timeout).await) })
        });
        let mut replies = futures::stream::iter(reads).buffer_unordered(max_in_flight);
        while let Some((i, reply)) = replies.next().await {
            outcomes[i] = outcome(round, reply);
        }
    }
    outcomes
}

/// A handler's reply that is sent at once when `reply` is ready on its first poll, as it is for
/// any driver that answers without waiting; otherwise it runs to completion as a task of its own.
///
/// actix's `ResponseFuture` spawns a task for every message, ready or not; on the read path that
/// spawn (an aligned allocation, a scheduling round trip, a deallocation) costs more than the
/// rest of a zero-latency read.
pub fn respond<T: 'static>(reply: impl Future<Output = T> + 'static) -> Response<T> {
    let mut reply = Box::pin(reply);
    let mut cx = std::task::Context::from_waker(futures::task::noop_waker_ref());
    match reply.as_mut().poll(&mut cx) {
        Poll::Ready(value) => Response::reply(value),
        // Futures re-register their waker on every poll, so the spawned task's waker replaces
        // the no-op one on its first poll.
        Poll::Pending => Response::fut(reply),
    }
}

/// Classifies one reply.
pub fn outcome(round: u64, reply: Result<ReadReply, MailboxError>) -> Outcome {
    match reply {
        Ok(reply) if reply.round != round => {
            log::debug!("discarded a reply of round {} in round {round}", reply.round);
            Outcome::TimedOut
        }
        Ok(ReadReply {
            result: Ok(sample),
            timestamp,
            latency,
            ..
        }) => Outcome::Ok(Reading::new(sample, timestamp, latency)),
        Ok(ReadReply { result: Err(error), .. }) => match error {
            ReadError::Failed(cause) => Outcome::Failed { cause, fatal: false },
            ReadError::Offline => Outcome::Unavailable(Absence::Offline),
            ReadError::Exhausted => Outcome::Unavailable(Absence::Exhausted),
            fatal @ (ReadError::Fatal(_) | ReadError::Panic(_)) => Outcome::Failed {
                cause: fatal.to_string(),
                fatal: true,
            },
        },
        Err(MailboxError::Timeout) => Outcome::TimedOut,
        Err(MailboxError::Closed) => Outcome::Unavailable(Absence::Closed),
    }
}
