//! `DueAnswers`: answers a group keeps until the instant they are due.
//!
//! A sensor whose read is known when it starts (a simulation's, made with
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
    /// `sorted`, then latest first, so the earliest is popped from the end. On a virtual clock
    /// a round's answers all come at once and leave in order, so this is one sort per round and
    /// no ordering work per answer.
    keys: Vec<u128>,
    /// The keys of answers that came once `keys` was sorted (answers still coming while the
    /// first ones leave: a large round on the wall clock, whose reads go out over time), by
    /// millisecond, so that `keys` is never sorted again and each costs next to nothing.
    late: Late,
    /// Whether `keys` is sorted, latest first.
    sorted: bool,
    /// Whether answers were taken since the queue was last empty: `keys` is sorted, and answers
    /// that come go to `late`.
    popped: bool,
    /// Whether `keys` holds answers pushed in ascending member order since the queue was last
    /// empty, and not sorted since: then they can be sorted by counting ([`Self::count_sort`]).
    ascending: bool,
    /// Scratch of the sort by counting: keys, and counts per millisecond.
    spare: Vec<u128>,
    counts: Vec<u32>,
    /// The answers kept, by member.
    answers: Vec<Option<T>>,
    /// The earliest and latest instants kept, in nanoseconds since the origin (as in the
    /// keys: comparing and updating them costs no conversion per answer); `None` when empty.
    bounds: Option<(u64, u64)>,
}

/// The key of `member`'s answer due `nanos` since the origin: ordered by instant, then member.
fn key(nanos: u64, member: u32) -> u128 {
    (u128::from(nanos) << 32) | u128::from(member)
}

/// The member of a key.
fn member(key: u128) -> u32 {
    key as u32
}

/// The instant of a key, in nanoseconds since the origin (`as_nanos` of a duration within a
/// run fits in 64 bits: 584 years).
fn nanos(key: u128) -> u64 {
    (key >> 32) as u64
}

/// An instant answers are taken due by ([`DueAnswers::due_by`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct DueBy(u64);

impl<T> Default for DueAnswers<T> {
    /// An empty queue for answers due from now on.
    fn default() -> Self {
        DueAnswers {
            origin: Instant::now(),
            keys: Vec::new(),
            late: Late::default(),
            sorted: true,
            popped: false,
            ascending: true,
            spare: Vec::new(),
            counts: Vec::new(),
            answers: Vec::new(),
            bounds: None,
        }
    }
}

impl<T> DueAnswers<T> {
    /// Keeps `answer` of `member` until `at`. A member has at most one answer kept.
    pub(crate) fn push(&mut self, at: Instant, member: u32, answer: T) {
        debug_assert!(at >= self.origin, "an answer due before its queue was made");
        let nanos = self.since(at);
        self.bounds = Some(
            self.bounds
                .map_or((nanos, nanos), |(first, last)| (first.min(nanos), last.max(nanos))),
        );
        let key = key(nanos, member);
        if self.popped {
            self.late.push(key);
        } else {
            self.sorted = self.keys.last().is_none_or(|&last| last > key) && self.sorted;
            self.ascending = self.keys.last().is_none_or(|&last| self::member(last) < member) && self.ascending;
            self.keys.push(key);
        }
        let slot = member as usize;
        if slot >= self.answers.len() {
            self.answers.resize_with(slot + 1, || None);
        }
        self.answers[slot] = Some(answer);
    }

    /// `at` in nanoseconds since the origin.
    fn since(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.origin).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Takes the earliest answer due by `now` (at `now` included), if any.
    #[cfg(test)]
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(u32, T)> {
        self.pop_by(self.due_by(now))
            .map(|(member, _, answer)| (member, answer))
    }

    /// What [`Self::pop_by`] takes the answers due by `now` with: converted once for a run of
    /// pops.
    pub(crate) fn due_by(&self, now: Instant) -> DueBy {
        DueBy(self.since(now))
    }

    /// Takes the earliest answer due by `by` (at it included), if any, with its member and the
    /// instant it is due.
    pub(crate) fn pop_by(&mut self, by: DueBy) -> Option<(u32, Instant, T)> {
        if self.bounds?.0 > by.0 {
            return None;
        }
        if !self.sorted {
            if !(self.ascending && self.count_sort()) {
                self.keys.sort_unstable_by(|a, b| b.cmp(a));
            }
            self.sorted = true;
        }
        if !self.popped {
            self.popped = true;
            // Answers that come from now on are due from now on: the first millisecond of late.
            self.late.base = by.0 / Late::BUCKET_NANOS;
        }
        let key = match (self.keys.last().copied(), self.late.peek()) {
            (Some(sorted), Some(late)) if late < sorted => self.late.pop(),
            (Some(_), _) => self.keys.pop(),
            (None, _) => self.late.pop(),
        }?;
        self.bounds = self
            .first()
            .map(|first| (first, self.bounds.map_or(first, |(_, last)| last)));
        if self.bounds.is_none() {
            self.reset();
        }
        let member = member(key);
        let answer = self.answers[member as usize].take()?;
        Some((member, self.at(nanos(key)), answer))
    }

    /// The earliest instant kept, in nanoseconds since the origin (once `keys` is sorted).
    fn first(&mut self) -> Option<u64> {
        let sorted = self.keys.last().copied();
        let late = self.late.peek();
        sorted.into_iter().chain(late).min().map(nanos)
    }

    /// The queue is empty: answers that come are kept in `keys` again.
    fn reset(&mut self) {
        self.sorted = true;
        self.ascending = true;
        self.popped = false;
    }

    /// Drops the answer kept for `member` (its read was settled otherwise); whether there was one.
    /// It goes through every answer kept: for the rare read settled before it is due.
    pub(crate) fn remove(&mut self, member: u32) -> bool {
        let Some(answer) = self.answers.get_mut(member as usize).and_then(Option::take) else {
            return false;
        };
        drop(answer);
        self.keys.retain(|&key| self::member(key) != member);
        self.late.retain(|key| self::member(key) != member);
        let all = || self.keys.iter().chain(self.late.iter());
        let first = all().min().map(|&key| nanos(key));
        let last = all().max().map(|&key| nanos(key));
        self.bounds = first.zip(last);
        if self.bounds.is_none() {
            self.reset();
        }
        true
    }

    /// Sorts `keys` latest first by counting them per millisecond, when their instants are
    /// whole milliseconds apart within a span of a few milliseconds per answer (a round's
    /// answers ahead: their reads started together, and their latencies are whole milliseconds,
    /// as tokio's timer would wake them); whether it did. The answers must have been pushed in
    /// ascending member order ([`Self::ascending`]): each millisecond's then stay in member
    /// order, which gives the order of the keys, instant then member, without comparing them.
    /// About a tenth of the cost of sorting a round's keys.
    fn count_sort(&mut self) -> bool {
        const MS: u64 = 1_000_000;
        let n = self.keys.len();
        let (lo, hi) = self
            .keys
            .iter()
            .fold((u64::MAX, 0), |(lo, hi), &key| (lo.min(nanos(key)), hi.max(nanos(key))));
        if n < 2
            || (hi - lo) / MS > 4 * n as u64 + 64
            || self.keys.iter().any(|&key| !(nanos(key) - lo).is_multiple_of(MS))
        {
            return false;
        }
        let slot = |key: u128| ((nanos(key) - lo) / MS) as usize;
        self.counts.clear();
        self.counts.resize(((hi - lo) / MS) as usize + 1, 0);
        for &key in &self.keys {
            self.counts[slot(key)] += 1;
        }
        // Each millisecond's keys end where the later ones begin, latest first; they are filled
        // from that end, the first pushed (the lowest member) last.
        let mut end = 0;
        for count in self.counts.iter_mut().rev() {
            end += *count;
            *count = end;
        }
        self.spare.clear();
        self.spare.resize(n, 0);
        for &key in &self.keys {
            let end = &mut self.counts[slot(key)];
            *end -= 1;
            self.spare[*end as usize] = key;
        }
        std::mem::swap(&mut self.keys, &mut self.spare);
        true
    }

    /// The instant `nanos` after the origin.
    fn at(&self, nanos: u64) -> Instant {
        self.origin + Duration::from_nanos(nanos)
    }

    /// When the earliest answer kept is due.
    pub(crate) fn earliest(&self) -> Option<Instant> {
        self.bounds.map(|(first, _)| self.at(first))
    }

    /// When the latest answer kept is due.
    pub(crate) fn latest(&self) -> Option<Instant> {
        self.bounds.map(|(_, last)| self.at(last))
    }

    /// How many answers are kept.
    pub(crate) fn len(&self) -> usize {
        self.keys.len() + self.late.len
    }

    /// Whether no answer is kept.
    pub(crate) fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.late.len == 0
    }

    /// Drops every answer kept, keeping the memory.
    pub(crate) fn clear(&mut self) {
        for &key in self.keys.iter().chain(self.late.iter()) {
            self.answers[member(key) as usize] = None;
        }
        self.keys.clear();
        self.late.clear();
        self.reset();
        self.bounds = None;
    }
}

/// Keys by the millisecond they are due in (one bucket each, from `base`), each bucket sorted
/// latest first when it is the earliest one left: a queue that costs a push and, once per
/// bucket, a sort of a millisecond's keys.
#[derive(Debug, Default)]
struct Late {
    buckets: Vec<Vec<u128>>,
    /// The millisecond since the origin of `buckets[0]`: no key is due before (one that is goes
    /// to the first bucket, which is sorted whole, so it still comes first).
    base: u64,
    /// The first bucket that may hold keys.
    first: usize,
    /// Whether `buckets[first]` is sorted, latest first.
    sorted: bool,
    len: usize,
}

impl Late {
    const BUCKET_NANOS: u64 = 1_000_000;

    fn push(&mut self, key: u128) {
        let b = (nanos(key) / Self::BUCKET_NANOS).saturating_sub(self.base) as usize;
        if b >= self.buckets.len() {
            self.buckets.resize_with(b + 1, Vec::new);
        }
        if b <= self.first {
            self.first = b;
            self.sorted = false;
        }
        self.buckets[b].push(key);
        self.len += 1;
    }

    /// The earliest bucket with keys, sorted latest first.
    fn front(&mut self) -> Option<&mut Vec<u128>> {
        if self.len == 0 {
            return None;
        }
        while self.buckets[self.first].is_empty() {
            self.first += 1;
            self.sorted = false;
        }
        let bucket = &mut self.buckets[self.first];
        if !self.sorted {
            bucket.sort_unstable_by(|a, b| b.cmp(a));
            self.sorted = true;
        }
        Some(bucket)
    }

    fn peek(&mut self) -> Option<u128> {
        self.front()?.last().copied()
    }

    fn pop(&mut self) -> Option<u128> {
        let key = self.front()?.pop()?;
        self.len -= 1;
        if self.len == 0 {
            self.first = 0;
        }
        Some(key)
    }

    fn retain(&mut self, mut keep: impl FnMut(u128) -> bool) {
        for bucket in &mut self.buckets {
            bucket.retain(|&key| keep(key));
        }
        self.len = self.buckets.iter().map(Vec::len).sum();
        if self.len == 0 {
            self.first = 0;
        }
    }

    fn iter(&self) -> impl Iterator<Item = &u128> {
        self.buckets.iter().flatten()
    }

    fn clear(&mut self) {
        self.buckets.iter_mut().for_each(Vec::clear);
        (self.first, self.sorted, self.len) = (0, false, 0);
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

#[cfg(test)]
mod count_sort_tests {
    use super::*;

    /// A small deterministic generator for the cases.
    fn next(state: &mut u64) -> u64 {
        *state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *state >> 33
    }

    /// Whatever the instants and the order of the members, answers come out by instant then
    /// member, as a full sort gives them: sorted by counting (whole milliseconds apart, pushed
    /// in member order) or not (a nanosecond off, members out of order, a wide span, answers
    /// pushed after some were taken).
    #[test]
    fn answers_sorted_by_counting_come_out_as_sorted_by_comparing() {
        let mut state = 7;
        for case in 0..64u64 {
            let mut due = DueAnswers::default();
            let t0 = Instant::now();
            let n = 1 + next(&mut state) as usize % 300;
            let mut members: Vec<u32> = (0..n as u32).map(|m| m * 3).collect();
            if case % 4 == 1 {
                members.reverse();
            }
            let spread = if case % 8 == 2 { 100_000 } else { 400 };
            let mut expected = Vec::new();
            for (k, &member) in members.iter().enumerate() {
                let mut at = Duration::from_millis(100 + next(&mut state) % spread);
                if case % 4 == 3 && k == n / 2 {
                    at += Duration::from_nanos(1);
                }
                due.push(t0 + at, member, member);
                expected.push((at, member));
            }
            expected.sort();
            let mut out: Vec<(u32, u32)> = Vec::new();
            if case % 8 == 4 {
                // Take the earliest, then push more: they come after sorted ones.
                out.extend(due.pop_due(t0 + expected[0].0));
                for k in 0..5u32 {
                    let at = Duration::from_millis(100 + next(&mut state) % spread);
                    let member = 1_000_000 - k;
                    due.push(t0 + at, member, member);
                    expected.push((at, member));
                }
                expected[1..].sort();
            }
            out.extend(std::iter::from_fn(|| due.pop_due(t0 + Duration::from_secs(1000))));
            let expected: Vec<(u32, u32)> = expected.iter().map(|&(_, m)| (m, m)).collect();
            assert_eq!(out, expected, "case {case}");
            assert!(due.is_empty());
        }
    }
}

#[cfg(test)]
mod interleaved_tests {
    use super::*;

    /// Answers that keep coming while the first ones leave (a large round on the wall clock:
    /// its reads go out over time, and the group takes what is due as it goes), with some
    /// removed: each pop gives the earliest due by then (instant, then member) of those kept,
    /// as a naive search over everything kept gives it.
    #[test]
    fn answers_coming_while_others_leave_come_out_in_order() {
        let mut state = 11u64;
        let mut next = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            state >> 33
        };
        for case in 0..32u32 {
            let mut due = DueAnswers::default();
            let t0 = Instant::now();
            // The reference: every answer kept, as (nanos, member).
            let mut kept: Vec<(u64, u32)> = Vec::new();
            let mut now = 0u64;
            let mut member = 0u32;
            for _ in 0..400 {
                match next() % 10 {
                    // A read started now answers, due up to 500 ms later (any nanosecond).
                    0..=5 => {
                        let at = now + next() % 500_000_000;
                        due.push(t0 + Duration::from_nanos(at), member, member);
                        kept.push((at, member));
                        member += 1;
                    }
                    // Time passes; what is due by now leaves, in order.
                    6..=8 => {
                        now += next() % 20_000_000;
                        loop {
                            let expected = kept.iter().copied().filter(|&(at, _)| at <= now).min();
                            let got = due.pop_due(t0 + Duration::from_nanos(now));
                            assert_eq!(got.map(|(m, _)| m), expected.map(|(_, m)| m), "case {case}");
                            let Some(expected) = expected else { break };
                            kept.retain(|&k| k != expected);
                        }
                    }
                    // A read settled otherwise.
                    _ => {
                        if let Some(&(_, m)) = kept.get(next() as usize % kept.len().max(1)) {
                            assert!(due.remove(m));
                            kept.retain(|&(_, k)| k != m);
                        }
                    }
                }
                assert_eq!(due.len(), kept.len(), "case {case}");
                let first = kept.iter().map(|&(at, _)| at).min();
                let last = kept.iter().map(|&(at, _)| at).max();
                assert_eq!(
                    due.earliest(),
                    first.map(|at| t0 + Duration::from_nanos(at)),
                    "case {case}"
                );
                assert_eq!(
                    due.latest(),
                    last.map(|at| t0 + Duration::from_nanos(at)),
                    "case {case}"
                );
            }
        }
    }
}
