//! `DueAnswers`: answers a group keeps until the instant they are due.
//!
//! On a virtual clock a sensor whose read is known when it starts (a simulation's, made with
//! [`ReadFuture::after`](crate::driver::ReadFuture::after)) answers at once, with the instant the
//! read completes ([`Answer::Ahead`](crate::sensor::Answer::Ahead)). Its group keeps the answer
//! here and settles it as of that instant, the next time it acts at or after it. This is plain
//! bookkeeping with no timer of its own: the group arms its one timer from [`DueAnswers::earliest`]
//! and [`DueAnswers::latest`] (see `GroupSupervisor::arm`), and pops what is due with
//! [`DueAnswers::pop_due`], in the order of the instants, and in member order among answers due
//! at the same instant.

use std::time::Duration;

use actix_rt::time::Instant;

/// Answers by the instant they are due, each `T` kept for one member.
#[derive(Debug)]
pub(crate) struct DueAnswers<T> {
    /// When the queue was made: no answer it keeps is due before (a read is answered after its
    /// group started), so instants are kept as nanoseconds since.
    origin: Instant,
    /// `(at, member)` of each answer kept, as one number ([`key`]): in the order they came until
    /// `sorted`, then latest first, so the earliest is popped from the end. Answers usually all
    /// come at once (a round's reads start together) and leave in order, so this is one sort per
    /// round and no ordering work per answer.
    keys: Vec<u128>,
    /// Whether `keys` is sorted, latest first.
    sorted: bool,
    /// The answers kept, by member.
    answers: Vec<Option<T>>,
    /// The earliest and latest instants kept; `None` when empty.
    bounds: Option<(Instant, Instant)>,
}

/// The key of `member`'s answer due `since` the origin: ordered by instant, then member.
fn key(since: Duration, member: u32) -> u128 {
    (since.as_nanos() << 32) | u128::from(member)
}

/// The member of a key.
fn member(key: u128) -> u32 {
    key as u32
}

impl<T> Default for DueAnswers<T> {
    /// An empty queue for answers due from now on.
    fn default() -> Self {
        DueAnswers {
            origin: Instant::now(),
            keys: Vec::new(),
            sorted: true,
            answers: Vec::new(),
            bounds: None,
        }
    }
}

impl<T> DueAnswers<T> {
    /// Keeps `answer` of `member` until `at`. A member has at most one answer kept.
    pub(crate) fn push(&mut self, at: Instant, member: u32, answer: T) {
        debug_assert!(at >= self.origin, "an answer due before its queue was made");
        self.bounds = Some(
            self.bounds
                .map_or((at, at), |(first, last)| (first.min(at), last.max(at))),
        );
        let key = key(at.saturating_duration_since(self.origin), member);
        self.sorted = self.keys.last().is_none_or(|&last| last > key) && self.sorted;
        self.keys.push(key);
        let slot = member as usize;
        if slot >= self.answers.len() {
            self.answers.resize_with(slot + 1, || None);
        }
        self.answers[slot] = Some(answer);
    }

    /// Takes the earliest answer due by `now` (at `now` included), if any.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(u32, T)> {
        if self.bounds?.0 > now {
            return None;
        }
        if !self.sorted {
            self.keys.sort_unstable_by(|a, b| b.cmp(a));
            self.sorted = true;
        }
        let member = member(self.keys.pop()?);
        self.bounds = match self.keys.last() {
            Some(&first) => self.bounds.map(|(_, last)| (self.at(first), last)),
            None => None,
        };
        let answer = self.answers[member as usize].take()?;
        Some((member, answer))
    }

    /// Drops the answer kept for `member` (its read was settled otherwise); whether there was one.
    /// It goes through every answer kept: for the rare read settled before it is due.
    pub(crate) fn remove(&mut self, member: u32) -> bool {
        let Some(answer) = self.answers.get_mut(member as usize).and_then(Option::take) else {
            return false;
        };
        drop(answer);
        self.keys.retain(|&key| self::member(key) != member);
        let first = self.keys.iter().min().map(|&key| self.at(key));
        let last = self.keys.iter().max().map(|&key| self.at(key));
        self.bounds = first.zip(last);
        true
    }

    /// The instant of a key.
    fn at(&self, key: u128) -> Instant {
        // No division of the 128-bit key: its instant is nanoseconds since the origin, and
        // `as_nanos` of a duration within a run fits in 64 bits (584 years).
        self.origin + Duration::from_nanos((key >> 32) as u64)
    }

    /// When the earliest answer kept is due.
    pub(crate) fn earliest(&self) -> Option<Instant> {
        self.bounds.map(|(first, _)| first)
    }

    /// When the latest answer kept is due.
    pub(crate) fn latest(&self) -> Option<Instant> {
        self.bounds.map(|(_, last)| last)
    }

    /// How many answers are kept.
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no answer is kept.
    pub(crate) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Drops every answer kept, keeping the memory.
    pub(crate) fn clear(&mut self) {
        for &key in &self.keys {
            self.answers[member(key) as usize] = None;
        }
        self.keys.clear();
        self.sorted = true;
        self.bounds = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Answers come out in the order of their instants, whatever the order they went in; two
    /// due at the same instant come out in member order.
    #[test]
    fn answers_come_out_by_instant_then_member() {
        let mut due = DueAnswers::default();
        let t0 = Instant::now();
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
        let mut due = DueAnswers::default();
        let t0 = Instant::now();
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
        let mut due = DueAnswers::default();
        let t0 = Instant::now();
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
