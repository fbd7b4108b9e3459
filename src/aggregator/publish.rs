//! The subscribers of the streams and the delivery of their messages: one ordered queue per
//! subscriber, one message in flight, bounded or lossless (see [`crate::streams`]).
//!
//! The queues live in the root [`Aggregator`](super::Aggregator), which publishes every stream;
//! this module is the plain bookkeeping (what waits, what was delivered or missed), the actor
//! does the sending.

use std::any::Any;
use std::collections::VecDeque;

use actix::Recipient;

use crate::report::SubscriberStats;
use crate::streams::{Anomalies, Delivery, Journal, Readings, RoundSummary, RunSummary, Settle, Stream};

/// One subscriber of stream `M`.
pub(crate) struct Outlet<M: Stream> {
    recipient: Recipient<M>,
    /// Messages that may wait; `None`: lossless.
    capacity: Option<usize>,
    /// Messages waiting for the one in flight to be handled.
    queue: VecDeque<M>,
    /// Whether a message is in flight (sent, its handler not finished).
    pub(crate) busy: bool,
    /// Set once a send found the actor stopped: everything after is missed at once.
    closed: bool,
    pub(crate) stats: SubscriberStats,
}

/// What to do with a message offered to an outlet.
pub(crate) enum Offer<M> {
    /// Send it now.
    Send(M),
    /// Queued, or dropped and counted: nothing to do.
    Done,
}

impl<M: Stream> Outlet<M> {
    pub(crate) fn new(recipient: Recipient<M>, delivery: Delivery, position: usize) -> Self {
        Outlet {
            recipient,
            capacity: delivery.capacity,
            queue: VecDeque::new(),
            busy: false,
            closed: false,
            stats: SubscriberStats {
                name: delivery.name.unwrap_or_else(|| format!("{}#{}", M::NAME, position + 1)),
                stream: M::NAME.to_string(),
                ..SubscriberStats::default()
            },
        }
    }

    pub(crate) fn lossless(&self) -> bool {
        self.capacity.is_none()
    }

    pub(crate) fn recipient(&self) -> &Recipient<M> {
        &self.recipient
    }

    /// Offers a message: sent at once when nothing is in flight, else queued while the queue
    /// has room, else dropped and counted.
    pub(crate) fn offer(&mut self, message: M) -> Offer<M> {
        if self.closed {
            self.miss(&message);
            return Offer::Done;
        }
        if !self.busy {
            self.busy = true;
            return Offer::Send(message);
        }
        match self.capacity {
            Some(capacity) if self.queue.len() >= capacity => self.miss(&message),
            _ => self.queue.push_back(message),
        }
        Offer::Done
    }

    /// The message in flight was handled (`handled`), or the actor had stopped; returns the next
    /// message to send, if any.
    pub(crate) fn settled(&mut self, items: u64, handled: bool) -> Option<M> {
        self.busy = false;
        if handled {
            self.stats.delivered += 1;
            self.stats.delivered_items += items;
        } else {
            self.stats.missed += 1;
            self.stats.missed_items += items;
            self.closed = true;
            for message in std::mem::take(&mut self.queue) {
                self.miss(&message);
            }
        }
        let next = self.queue.pop_front()?;
        self.busy = true;
        Some(next)
    }

    fn miss(&mut self, message: &M) {
        self.stats.missed += 1;
        self.stats.missed_items += message.items();
    }
}

/// Every subscriber, by stream.
#[derive(Default)]
pub(crate) struct Outlets {
    pub(crate) readings: Vec<Outlet<Readings>>,
    pub(crate) anomalies: Vec<Outlet<Anomalies>>,
    pub(crate) journal: Vec<Outlet<Journal>>,
    pub(crate) rounds: Vec<Outlet<RoundSummary>>,
    pub(crate) end: Vec<Outlet<RunSummary>>,
    /// The outputs asked to settle before the summary is made ([`Settle`]).
    pub(crate) settle: Vec<Recipient<Settle>>,
}

/// Which of an [`Outlets`]' lists a stream's subscribers are in.
pub(crate) trait Listed: Stream {
    fn list(outlets: &mut Outlets) -> &mut Vec<Outlet<Self>>;
}

macro_rules! listed {
    ($stream:ty, $field:ident) => {
        impl Listed for $stream {
            fn list(outlets: &mut Outlets) -> &mut Vec<Outlet<Self>> {
                &mut outlets.$field
            }
        }
    };
}

listed!(Readings, readings);
listed!(Anomalies, anomalies);
listed!(Journal, journal);
listed!(RoundSummary, rounds);
listed!(RunSummary, end);

impl Outlets {
    /// Adds a subscriber of `M` (one of the five streams: [`Stream`] is sealed).
    pub(crate) fn add<M: Stream>(&mut self, recipient: Recipient<M>, delivery: Delivery) {
        fn push<S: Listed>(
            outlets: &mut Outlets,
            recipient: Box<dyn Any>,
            delivery: Delivery,
        ) -> Result<(), Box<dyn Any>> {
            let recipient = recipient.downcast::<Recipient<S>>()?;
            let list = S::list(outlets);
            let position = list.len();
            list.push(Outlet::new(*recipient, delivery, position));
            Ok(())
        }
        let recipient: Box<dyn Any> = Box::new(recipient);
        let pushed = push::<Readings>(self, recipient, delivery.clone())
            .or_else(|r| push::<Anomalies>(self, r, delivery.clone()))
            .or_else(|r| push::<Journal>(self, r, delivery.clone()))
            .or_else(|r| push::<RoundSummary>(self, r, delivery.clone()))
            .or_else(|r| push::<RunSummary>(self, r, delivery));
        debug_assert!(pushed.is_ok(), "every stream has a list");
    }

    /// Whether every lossless subscriber (or every subscriber, with `all`) has nothing in flight.
    pub(crate) fn idle(&self, all: bool) -> bool {
        fn idle<M: Stream>(list: &[Outlet<M>], all: bool) -> bool {
            list.iter().all(|o| !o.busy || !(all || o.lossless()))
        }
        idle(&self.readings, all)
            && idle(&self.anomalies, all)
            && idle(&self.journal, all)
            && idle(&self.rounds, all)
            && idle(&self.end, all)
    }

    /// Messages missed so far, every subscriber together (the live figure of the summary's
    /// `subscribers[].missed`, published in each [`RoundSummary`]).
    pub(crate) fn missed(&self) -> u64 {
        fn missed<M: Stream>(list: &[Outlet<M>]) -> u64 {
            list.iter().map(|o| o.stats.missed).sum()
        }
        missed(&self.readings)
            + missed(&self.anomalies)
            + missed(&self.journal)
            + missed(&self.rounds)
            + missed(&self.end)
    }

    /// Every subscriber's counts, stream by stream in the order above.
    pub(crate) fn stats(&self) -> Vec<SubscriberStats> {
        let mut all = Vec::new();
        all.extend(self.readings.iter().map(|o| o.stats.clone()));
        all.extend(self.anomalies.iter().map(|o| o.stats.clone()));
        all.extend(self.journal.iter().map(|o| o.stats.clone()));
        all.extend(self.rounds.iter().map(|o| o.stats.clone()));
        all.extend(self.end.iter().map(|o| o.stats.clone()));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix::{Actor, Context, Handler};

    struct Sink;
    impl Actor for Sink {
        type Context = Context<Self>;
    }
    impl Handler<RoundSummary> for Sink {
        type Result = ();
        fn handle(&mut self, _: RoundSummary, _: &mut Context<Self>) {}
    }

    fn summary(round: u64) -> RoundSummary {
        RoundSummary {
            round,
            wall: std::time::Duration::ZERO,
            skipped_before: 0,
            reads: Default::default(),
            anomalies: 0,
            process: Default::default(),
            subscribers_missed: 0,
            read_latency: Default::default(),
            groups: Vec::new(),
        }
    }

    fn round_of(offer: Offer<RoundSummary>) -> Option<u64> {
        match offer {
            Offer::Send(m) => Some(m.round),
            Offer::Done => None,
        }
    }

    /// A bounded outlet sends the first message, queues up to its capacity, drops and counts
    /// the rest, then sends the queued ones in order as each is handled.
    #[actix_rt::test]
    async fn a_bounded_outlet_queues_in_order_and_counts_what_it_drops() {
        let mut outlet = Outlet::new(Sink.start().recipient(), Delivery::bounded(2), 0);
        assert_eq!(round_of(outlet.offer(summary(1))), Some(1));
        for round in 2..=5 {
            assert_eq!(round_of(outlet.offer(summary(round))), None);
        }
        assert_eq!((outlet.stats.missed, outlet.stats.missed_items), (2, 2));
        assert_eq!(outlet.settled(1, true).map(|m| m.round), Some(2));
        assert_eq!(outlet.settled(1, true).map(|m| m.round), Some(3));
        assert!(outlet.settled(1, true).is_none());
        assert!(!outlet.busy);
        assert_eq!(outlet.stats.delivered, 3);
        assert_eq!(outlet.stats.name, "rounds#1");
    }

    /// Exactly at capacity the message is queued; one more is dropped.
    #[actix_rt::test]
    async fn the_capacity_is_the_number_of_waiting_messages() {
        let mut outlet = Outlet::new(Sink.start().recipient(), Delivery::bounded(1).named("x"), 0);
        let _ = outlet.offer(summary(1));
        let _ = outlet.offer(summary(2));
        assert_eq!(outlet.stats.missed, 0);
        let _ = outlet.offer(summary(3));
        assert_eq!(outlet.stats.missed, 1);
        assert_eq!(outlet.stats.name, "x");
    }

    /// A lossless outlet never drops; a stopped subscriber misses what is queued and what follows.
    #[actix_rt::test]
    async fn a_lossless_outlet_keeps_all_and_a_closed_one_counts_the_rest() {
        let mut outlet = Outlet::new(Sink.start().recipient(), Delivery::lossless(), 0);
        let _ = outlet.offer(summary(1));
        for round in 2..=200 {
            let _ = outlet.offer(summary(round));
        }
        assert_eq!(outlet.stats.missed, 0);
        assert!(outlet.settled(1, false).is_none());
        assert_eq!(outlet.stats.missed, 200);
        assert!(round_of(outlet.offer(summary(201))).is_none());
        assert_eq!((outlet.stats.missed, outlet.stats.delivered), (201, 0));
    }
}
