//! `DueAnswers`: answers a group holds until the instant they are due.
//!
//! On a virtual clock a sensor whose read is known when it starts (a simulation's, made with
//! [`ReadFuture::after`](crate::driver::ReadFuture::after)) answers at once, with the instant the
//! read completes ([`Answer::Ahead`](crate::sensor::Answer::Ahead)). Its group keeps the answer
//! here and settles it as of that instant, the next time it acts at or after it. This is plain
//! bookkeeping with no timer of its own: the group arms its one timer from [`DueAnswers::earliest`]
//! and [`DueAnswers::latest`] (see `GroupSupervisor::arm`), and pops what is due with
//! [`DueAnswers::pop_due`], in the order of the instants, and in member order among answers due
//! at the same instant.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use actix_rt::time::Instant;

/// Answers by the instant they are due, each `T` held for one member.
#[derive(Debug)]
pub(crate) struct DueAnswers<T> {
    /// `(at, member, slot)` of each answer held, earliest first (a min-heap through
    /// `Reverse`): small keys, so that ordering them moves 24 bytes, not the answers.
    order: BinaryHeap<Reverse<(Instant, u32, u32)>>,
    /// The answers held, by slot, in the order they came; a taken one leaves `None`. Emptied
    /// (its memory kept) whenever nothing is held.
    answers: Vec<Option<T>>,
    /// The latest instant held; `None` when empty.
    latest: Option<Instant>,
}

impl<T> Default for DueAnswers<T> {
    fn default() -> Self {
        DueAnswers {
            order: BinaryHeap::new(),
            answers: Vec::new(),
            latest: None,
        }
    }
}

impl<T> DueAnswers<T> {
    /// Holds `answer` of `member` until `at`. A member has at most one answer held.
    pub(crate) fn push(&mut self, at: Instant, member: u32, answer: T) {
        self.latest = Some(self.latest.map_or(at, |latest| latest.max(at)));
        let slot = self.answers.len() as u32;
        self.answers.push(Some(answer));
        self.order.push(Reverse((at, member, slot)));
    }

    /// Takes the earliest answer due by `now` (at `now` included), if any.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(u32, T)> {
        let &Reverse((at, member, slot)) = self.order.peek()?;
        if at > now {
            return None;
        }
        self.order.pop();
        let answer = self.answers[slot as usize].take();
        if self.order.is_empty() {
            self.clear();
        }
        answer.map(|answer| (member, answer))
    }

    /// Drops the answer held for `member` (its read was settled otherwise); whether there was one.
    /// It goes through every answer held: for the rare read settled before it is due.
    pub(crate) fn remove(&mut self, member: u32) -> bool {
        let Some(&Reverse((_, _, slot))) = self.order.iter().find(|key| key.0 .1 == member) else {
            return false;
        };
        self.order.retain(|key| key.0 .1 != member);
        self.answers[slot as usize] = None;
        self.latest = self.order.iter().map(|key| key.0 .0).max();
        if self.order.is_empty() {
            self.clear();
        }
        true
    }

    /// When the earliest answer held is due.
    pub(crate) fn earliest(&self) -> Option<Instant> {
        self.order.peek().map(|key| key.0 .0)
    }

    /// When the latest answer held is due.
    pub(crate) fn latest(&self) -> Option<Instant> {
        self.latest
    }

    /// How many answers are held.
    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether no answer is held.
    pub(crate) fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Drops every answer held, keeping the memory.
    pub(crate) fn clear(&mut self) {
        self.order.clear();
        self.answers.clear();
        self.latest = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Answers come out in the order of their instants, whatever the order they went in; two
    /// due at the same instant come out in member order.
    #[test]
    fn answers_come_out_by_instant_then_member() {
        let t0 = Instant::now();
        let mut due = DueAnswers::default();
        for (at, member) in [(300, 4), (100, 9), (300, 2), (200, 1), (100, 3)] {
            due.push(t0 + ms(at), member, at);
        }
        assert_eq!(due.len(), 5);
        assert_eq!(due.earliest(), Some(t0 + ms(100)));
        assert_eq!(due.latest(), Some(t0 + ms(300)));
        let out: Vec<(u32, u64)> = std::iter::from_fn(|| due.pop_due(t0 + ms(1000))).collect();
        assert_eq!(out, [(3, 100), (9, 100), (1, 200), (2, 300), (4, 300)]);
        assert!(due.is_empty());
        assert_eq!((due.earliest(), due.latest()), (None, None));
    }

    /// An answer is due at its instant exactly: popped at it, not a nanosecond before.
    #[test]
    fn an_answer_is_due_at_its_instant_exactly() {
        let t0 = Instant::now();
        let mut due = DueAnswers::default();
        due.push(t0 + ms(150), 0, "a");
        due.push(t0 + ms(150), 1, "b");
        due.push(t0 + ms(151), 2, "c");
        assert_eq!(due.pop_due(t0 + ms(150) - Duration::from_nanos(1)), None);
        assert_eq!(due.pop_due(t0 + ms(150)), Some((0, "a")));
        assert_eq!(due.pop_due(t0 + ms(150)), Some((1, "b")));
        assert_eq!(due.pop_due(t0 + ms(150)), None);
        assert_eq!(due.latest(), Some(t0 + ms(151)));
        assert_eq!(due.pop_due(t0 + ms(151)), Some((2, "c")));
        assert_eq!(due.latest(), None);
    }

    /// Removing a member's answer drops only that one, and the latest instant follows.
    #[test]
    fn a_removed_answer_is_gone_and_the_latest_follows() {
        let t0 = Instant::now();
        let mut due = DueAnswers::default();
        due.push(t0 + ms(100), 0, 'x');
        due.push(t0 + ms(400), 1, 'y');
        due.push(t0 + ms(250), 2, 'z');
        assert!(due.remove(1));
        assert!(!due.remove(1));
        assert_eq!(due.latest(), Some(t0 + ms(250)));
        assert_eq!(due.len(), 2);
        assert_eq!(due.pop_due(t0 + ms(400)), Some((0, 'x')));
        assert_eq!(due.pop_due(t0 + ms(400)), Some((2, 'z')));
        due.push(t0 + ms(5), 3, 'w');
        due.clear();
        assert!(due.is_empty());
        assert_eq!(due.latest(), None);
    }
}
