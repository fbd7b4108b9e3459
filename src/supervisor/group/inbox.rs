//! `Inbox`: the answer channel of a group and its sensors, which all live on the group's
//! arbiter (a group starts its sensors on its own thread).
//!
//! Its sensors push their answers ([`Inbox::send`]: a push onto a queue, and a wake-up of the
//! group only when it waits for one); the group drains them ([`Doorbells`], a stream that yields
//! a doorbell while answers are queued, and [`Inbox::take`]). It replaces a tokio unbounded
//! channel, whose atomic operations, semaphore and per-item polling through the group's stream
//! were about a tenth of the CPU of a simulated day: nothing here crosses threads.
//!
//! The group takes at most [`BURST`] answers per doorbell and then yields to the other tasks of
//! its arbiter (its sensors, its timer) before the next, as actix's stream handling yields after
//! 16 items: answers are handled in the same order and with the same interleaving as they were
//! one item at a time.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use crate::sensor::SensorAnswer;

/// Answers handled per doorbell before the group yields: actix's stream handler yields after
/// 16 items.
pub(crate) const BURST: usize = 16;

/// Answers per block of the queue.
const BLOCK: usize = 32;

/// Emptied blocks kept for reuse.
const SPARE_BLOCKS: usize = 4;

/// A queue of answers in blocks of [`BLOCK`], as tokio's channel keeps them: its memory follows
/// the answers queued (a large group's whole round may be queued at once, when its sensors
/// answer as fast as it sends), where one contiguous buffer would keep up to twice its peak, and
/// three times while it grows.
#[derive(Debug, Default)]
struct Queue {
    blocks: VecDeque<VecDeque<SensorAnswer>>,
    spare: Vec<VecDeque<SensorAnswer>>,
}

impl Queue {
    fn push_back(&mut self, answer: SensorAnswer) {
        match self.blocks.back_mut() {
            Some(block) if block.len() < BLOCK => block.push_back(answer),
            _ => {
                let mut block = self.spare.pop().unwrap_or_else(|| VecDeque::with_capacity(BLOCK));
                block.push_back(answer);
                self.blocks.push_back(block);
            }
        }
    }

    fn pop_front(&mut self) -> Option<SensorAnswer> {
        let block = self.blocks.front_mut()?;
        let answer = block.pop_front();
        if block.is_empty() {
            let block = self.blocks.pop_front()?;
            if self.spare.len() < SPARE_BLOCKS {
                self.spare.push(block);
            }
        }
        answer
    }

    fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }
}

#[derive(Debug, Default)]
struct Shared {
    queue: Queue,
    /// The group's task, when it waits for an answer.
    waker: Option<Waker>,
    /// The last doorbell's burst was full: yield before the next.
    yield_next: bool,
    /// The group is gone: answers are dropped (nobody waits for them).
    closed: bool,
}

/// One group's answer channel; cloned into each of its sensors' links (a reference count, no
/// allocation).
#[derive(Debug, Clone, Default)]
pub(crate) struct Inbox(Rc<RefCell<Shared>>);

impl Inbox {
    /// Queues `answer` for the group and wakes it if it waits; dropped if the group is gone.
    pub(crate) fn send(&self, answer: SensorAnswer) {
        let mut shared = self.0.borrow_mut();
        if shared.closed {
            return;
        }
        shared.queue.push_back(answer);
        let waker = shared.waker.take();
        drop(shared);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// The next answer of the doorbell being handled, the `handled`-th (from 0): none once the
    /// queue is empty, or after [`BURST`] (then the group yields before its next doorbell, as
    /// actix does after 16 items of a stream, whether any is left or not).
    pub(crate) fn take(&self, handled: usize) -> Option<SensorAnswer> {
        let mut shared = self.0.borrow_mut();
        if handled == BURST {
            shared.yield_next = true;
            return None;
        }
        shared.queue.pop_front()
    }

    /// The group's stream of doorbells on this inbox; dropping it closes the inbox.
    pub(crate) fn doorbells(&self) -> Doorbells {
        Doorbells(self.clone())
    }
}

/// A doorbell: answers are queued ([`Inbox::take`] them).
#[derive(Debug)]
pub(crate) struct Doorbell;

/// The group's stream of doorbells: one while answers are queued, after a yield to the other
/// tasks when the last burst was full. It never ends by itself.
#[derive(Debug)]
pub(crate) struct Doorbells(Inbox);

impl futures::Stream for Doorbells {
    type Item = Doorbell;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Doorbell>> {
        let mut shared = self.0 .0.borrow_mut();
        if std::mem::take(&mut shared.yield_next) {
            drop(shared);
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        if shared.queue.is_empty() {
            match &mut shared.waker {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                waker => *waker = Some(cx.waker().clone()),
            }
            return Poll::Pending;
        }
        Poll::Ready(Some(Doorbell))
    }
}

impl Drop for Doorbells {
    fn drop(&mut self) {
        // Taken out before they are dropped: nothing borrows the inbox while they go.
        let queue = {
            let mut shared = self.0 .0.borrow_mut();
            shared.closed = true;
            shared.waker = None;
            std::mem::take(&mut shared.queue)
        };
        drop(queue);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use futures::task::{waker, ArcWake};
    use futures::Stream;

    use super::*;
    use crate::sensor::Answer;

    #[derive(Default)]
    struct Wakes(AtomicUsize);

    impl ArcWake for Wakes {
        fn wake_by_ref(arc_self: &Arc<Self>) {
            arc_self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn answer(member: u32) -> SensorAnswer {
        SensorAnswer {
            member,
            incarnation: 0,
            answer: Answer::Stopped,
        }
    }

    /// Answers come out in the order they were sent, at most a burst per doorbell, with a yield
    /// (a wake-up of the group by itself) after a full burst; the group is woken when it waits
    /// and an answer comes, once.
    #[test]
    fn answers_come_in_order_a_burst_at_a_time() {
        let inbox = Inbox::default();
        let mut bells = inbox.doorbells();
        let wakes = Arc::new(Wakes::default());
        let waker = waker(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        let mut poll = |bells: &mut Doorbells| Pin::new(bells).poll_next(&mut cx).is_ready();
        assert!(!poll(&mut bells));
        for member in 0..20 {
            inbox.send(answer(member));
        }
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1, "woken by the first answer only");
        assert!(poll(&mut bells));
        let burst: Vec<u32> = (0..).map_while(|k| inbox.take(k)).map(|a| a.member).collect();
        assert_eq!(burst, (0..16).collect::<Vec<_>>());
        assert!(!poll(&mut bells), "a full burst yields first");
        assert_eq!(wakes.0.load(Ordering::SeqCst), 2, "and wakes the group again");
        assert!(poll(&mut bells));
        let rest: Vec<u32> = (0..).map_while(|k| inbox.take(k)).map(|a| a.member).collect();
        assert_eq!(rest, [16, 17, 18, 19]);
        assert!(!poll(&mut bells));
        inbox.send(answer(20));
        assert_eq!(wakes.0.load(Ordering::SeqCst), 3);
        drop(bells);
        assert!(inbox.0.borrow().queue.is_empty(), "dropped with the group's stream");
        inbox.send(answer(21));
        assert!(inbox.0.borrow().queue.is_empty(), "nobody waits for it");
    }

    /// The queue keeps answers in order across its blocks, and keeps only a few emptied ones.
    #[test]
    fn the_queue_keeps_order_across_blocks() {
        let mut queue = Queue::default();
        for round in 0..3u32 {
            for member in 0..(100 + 37 * round) {
                queue.push_back(answer(member));
            }
            assert_eq!(queue.blocks.len(), (100 + 37 * round as usize).div_ceil(BLOCK));
            let out: Vec<u32> = std::iter::from_fn(|| queue.pop_front()).map(|a| a.member).collect();
            assert_eq!(out, (0..(100 + 37 * round)).collect::<Vec<_>>());
            assert!(queue.is_empty() && queue.spare.len() <= SPARE_BLOCKS);
        }
    }
}
