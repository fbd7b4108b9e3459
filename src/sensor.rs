//! `SensorActor`: one actor per sensor, answering [`Read`] with a [`ReadReply`].
//!
//! The actor owns its driver and nothing else. A read runs as a future spawned in the actor's
//! context, so a slow or hung read never blocks the mailbox. A panic inside the driver, whether
//! while starting the read or while its future runs, is caught here and answered as
//! [`ReadError::Panic`]: it never takes down another actor, the arbiter or the system.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use actix::{Actor, ActorContext, Context, Handler, Response};
use futures::FutureExt;

use crate::driver::{Driver, ReadError};
use crate::messages::{Read, ReadReply, StopSensor};
use crate::panic::{self as panics, panic_message};

/// One sensor.
pub struct SensorActor {
    /// The sensor's id, for logs.
    id: Arc<str>,
    /// Makes the reads; replaced only by restarting the actor.
    driver: Box<dyn Driver>,
}

impl SensorActor {
    /// A sensor reading through `driver`.
    pub fn new(id: Arc<str>, driver: Box<dyn Driver>) -> Self {
        SensorActor { id, driver }
    }
}

impl Actor for SensorActor {
    type Context = Context<Self>;
}

impl Handler<Read> for SensorActor {
    type Result = Response<ReadReply>;

    fn handle(&mut self, msg: Read, _ctx: &mut Context<Self>) -> Self::Result {
        let started = actix_rt::time::Instant::now();
        let round = msg.round;
        let driver = &mut self.driver;
        let read = panics::quietly(|| std::panic::catch_unwind(AssertUnwindSafe(|| driver.read(round))));
        let id = self.id.clone();
        crate::round::respond(async move {
            let result = match read {
                Ok(fut) => match panics::Quiet::new(AssertUnwindSafe(fut).catch_unwind()).await {
                    Ok(result) => result,
                    Err(payload) => Err(ReadError::Panic(panic_message(&*payload))),
                },
                Err(payload) => Err(ReadError::Panic(panic_message(&*payload))),
            };
            if let Err(ReadError::Panic(message)) = &result {
                log::debug!("{id}: read {round} panicked: {message}");
            }
            ReadReply {
                round,
                result,
                latency: started.elapsed(),
                timestamp: chrono::Utc::now(),
            }
        })
    }
}

impl Handler<StopSensor> for SensorActor {
    type Result = ();

    fn handle(&mut self, _msg: StopSensor, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
