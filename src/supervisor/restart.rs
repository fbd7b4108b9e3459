//! The restart rules as plain values: whether a child that exited is restarted, after which
//! delay, and if not, why not.
//!
//! The supervisors ([`GroupSupervisor`](super::GroupSupervisor) for its sensors, the root
//! [`SensorSupervisor`](super::SensorSupervisor) for its group actors) tell these types what
//! happened and when, and act on the answer: a [`ControlFlow`] that either continues with a
//! restart (and its backoff delay) or breaks with a [`NoRestart`] reason, whose `Display` is the
//! journal's cause. Nothing here sends a message, reads a clock or touches an actor, so every
//! decision is unit-tested below with instants made up by the test.
//!
//! The rules are those of `docs/supervision.md`:
//! - the restart type ([`on_exit`]): a temporary child is never restarted, a transient one only
//!   after a failure, a permanent one always;
//! - the intensity ([`Window`]): more than `max_restarts` restarts within `within` gives up
//!   (a shard's sensor, counted per sensor), escalates (a configured group, counted per group)
//!   or loses the group (the root, counting a group actor's stops);
//! - the backoff ([`RestartTracker`], [`backoff_delay`], [`jitter`]): doubling from
//!   `backoff_min` up to `backoff_max`, with up to [`BACKOFF_JITTER`] of jitter drawn from the
//!   seed, starting over once a sensor ran `within` without failing;
//! - the strategy ([`restart_set`]): which members of a group restart with a failed one.

use std::collections::VecDeque;
use std::fmt;
use std::ops::ControlFlow;
use std::time::Duration;

use actix_rt::time::Instant;

use crate::config::{GroupStrategy, RestartPolicy};
use crate::data::{Backoff, RestartType};
use crate::driver::driver_seed;

/// Largest extra fraction of a backoff delay added as random jitter (as Akka's `randomFactor`).
pub(crate) const BACKOFF_JITTER: f64 = 0.2;

/// A restart intensity: more than `max_restarts` restarts within `within` is too many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Intensity {
    /// Restarts allowed within `within`.
    pub(crate) max_restarts: u32,
    /// The sliding window.
    pub(crate) within: Duration,
}

impl Intensity {
    /// The intensity of a restart policy (a sensor's, or the `[supervision]` defaults).
    pub(crate) fn of(policy: &RestartPolicy) -> Self {
        Intensity {
            max_restarts: policy.max_restarts,
            within: policy.within,
        }
    }
}

/// Why a child is not restarted. `Display` gives the journal's cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoRestart {
    /// A temporary child is never restarted.
    Temporary,
    /// A transient child exited normally.
    NormalExit,
    /// A sensor (or a configured group, counting its restarts) restarted more often than its
    /// intensity allows.
    IntensityExceeded(Intensity),
    /// A group actor stopped more often than the root's intensity allows.
    StoppedTooOften(Intensity),
}

impl fmt::Display for NoRestart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoRestart::Temporary => f.write_str("temporary: not restarted"),
            NoRestart::NormalExit => f.write_str("transient: not restarted after a normal exit"),
            NoRestart::IntensityExceeded(Intensity { max_restarts, within }) => write!(
                f,
                "more than {max_restarts} restarts within {}",
                humantime::format_duration(*within)
            ),
            NoRestart::StoppedTooOften(Intensity { max_restarts, within }) => write!(
                f,
                "stopped more than {max_restarts} times within {}",
                humantime::format_duration(*within)
            ),
        }
    }
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// A failure: fatal error, panic, hang, stopped actor, failed build.
    Failure,
    /// A normal exit (a source with no more data).
    Normal,
}

/// Whether a child of restart type `restart` that ended by `exit` is to be restarted (the
/// intensity and the backoff come after).
pub(crate) fn on_exit(restart: RestartType, exit: Exit) -> ControlFlow<NoRestart> {
    match (restart, exit) {
        (RestartType::Temporary, _) => ControlFlow::Break(NoRestart::Temporary),
        (RestartType::Transient, Exit::Normal) => ControlFlow::Break(NoRestart::NormalExit),
        (RestartType::Permanent, _) | (RestartType::Transient, Exit::Failure) => ControlFlow::Continue(()),
    }
}

/// The instants of the restarts inside an intensity window, oldest first. Empty until the first
/// restart, and boxed then, so a child that never restarts keeps 8 bytes for it, not 32.
#[derive(Debug, Default)]
pub(crate) struct Window(
    #[allow(clippy::box_collection)] // The box is the point: 8 bytes per member instead of 32.
    Option<Box<VecDeque<Instant>>>,
);

impl Window {
    /// Records a restart at `now` if `limit` allows one more; gives the number of restarts that
    /// were inside the window before it, or the limit exceeded (nothing recorded then).
    pub(crate) fn admit(&mut self, now: Instant, limit: Intensity) -> ControlFlow<Intensity, u32> {
        let recent = self.0.get_or_insert_with(Default::default);
        prune(recent, now, limit.within);
        if recent.len() >= limit.max_restarts as usize {
            return ControlFlow::Break(limit);
        }
        recent.push_back(now);
        ControlFlow::Continue(recent.len() as u32 - 1)
    }
}

/// Drops the instants older than `within` from the front of `recent`: a restart exactly
/// `within` ago is out of the window.
pub(crate) fn prune(recent: &mut VecDeque<Instant>, now: Instant, within: Duration) {
    while recent.front().is_some_and(|t| now.duration_since(*t) >= within) {
        recent.pop_front();
    }
}

/// The restart memory of one sensor: its own intensity window (used in a shard), its backoff
/// step, its jitter draws, and since when its current actor runs.
#[derive(Debug)]
pub(crate) struct RestartTracker {
    /// The sensor's own restarts within its window; unused (empty) in a configured group, whose
    /// window counts for all its members.
    window: Window,
    /// Exponent of the next backoff delay.
    backoff_step: u32,
    /// Backoff delays drawn so far: feeds the jitter, so every delay has its own draw.
    backoffs: u32,
    /// When the current actor started; the backoff resets once it ran `within` without failing.
    running_since: Since,
}

/// An instant in eight bytes instead of sixteen: nanoseconds from the first instant one was made
/// of in this process (±292 years around it), so that a million sensors' records take 8 MB
/// less. Not a clock reading: the base is an instant a caller gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Since(i64);

impl Since {
    fn of(at: Instant) -> Since {
        static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        let base = *BASE.get_or_init(|| at);
        let nanos = |d: Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
        match at.checked_duration_since(base) {
            Some(after) => Since(nanos(after)),
            None => Since(-nanos(base - at)),
        }
    }

    /// The time from this instant to `now` (zero if `now` is before it).
    fn until(self, now: Instant) -> Duration {
        Duration::from_nanos(u64::try_from(Since::of(now).0.saturating_sub(self.0)).unwrap_or(0))
    }
}

impl RestartTracker {
    /// A tracker for a sensor whose first actor starts at `now`.
    pub(crate) fn new(now: Instant) -> Self {
        RestartTracker {
            window: Window::default(),
            backoff_step: 0,
            backoffs: 0,
            running_since: Since::of(now),
        }
    }

    /// An actor of the sensor started at `now`.
    pub(crate) fn started(&mut self, now: Instant) {
        self.running_since = Since::of(now);
    }

    /// A restart of a shard's sensor at `now`: its own intensity (`policy`'s), then its backoff
    /// (`policy`'s, jitter from `seed` and the sensor's `index`).
    pub(crate) fn record_restart(
        &mut self,
        now: Instant,
        policy: &RestartPolicy,
        seed: u64,
        index: usize,
    ) -> ControlFlow<NoRestart, (Duration, Backoff)> {
        let limit = Intensity::of(policy);
        match self.window.admit(now, limit) {
            ControlFlow::Break(limit) => ControlFlow::Break(NoRestart::IntensityExceeded(limit)),
            ControlFlow::Continue(before) => {
                ControlFlow::Continue(self.next_delay(now, policy, seed, index, before + 1, limit))
            }
        }
    }

    /// A restart of a configured group's member at `now`: the `group`'s window counts it against
    /// the group's `limit`, then the member's backoff applies (as in
    /// [`record_restart`](Self::record_restart)).
    pub(crate) fn record_restart_in(
        &mut self,
        group: &mut Window,
        limit: Intensity,
        now: Instant,
        policy: &RestartPolicy,
        seed: u64,
        index: usize,
    ) -> ControlFlow<NoRestart, (Duration, Backoff)> {
        match group.admit(now, limit) {
            ControlFlow::Break(limit) => ControlFlow::Break(NoRestart::IntensityExceeded(limit)),
            ControlFlow::Continue(before) => {
                ControlFlow::Continue(self.next_delay(now, policy, seed, index, before + 1, limit))
            }
        }
    }

    /// The delay before the restart about to be scheduled at `now` (the `window`-th within
    /// `limit`), how it was chosen, and the step after it. The backoff starts over when the
    /// actor ran `limit.within` without failing: the sensor's own window, or in a group the
    /// group's (a member's own `max_restarts` and `within` are not used there).
    fn next_delay(
        &mut self,
        now: Instant,
        policy: &RestartPolicy,
        seed: u64,
        index: usize,
        window: u32,
        limit: Intensity,
    ) -> (Duration, Backoff) {
        // A sensor that stayed healthy for the intensity window starts over from backoff_min.
        let reset = self.backoff_step > 0 && self.running_since.until(now) >= limit.within;
        if reset {
            self.backoff_step = 0;
        }
        let draw = jitter(seed, index, self.backoffs);
        let delay = backoff_delay(policy.backoff_min, policy.backoff_max, self.backoff_step, draw);
        let backoff = Backoff {
            attempt: self.backoff_step.saturating_add(1),
            reset,
            window,
            max_restarts: limit.max_restarts,
        };
        self.backoff_step = self.backoff_step.saturating_add(1);
        self.backoffs = self.backoffs.wrapping_add(1);
        (delay, backoff)
    }
}

/// The root's restart memory of one group actor: its stops within the `[supervision]` window,
/// and its jitter draws. Unlike a sensor's, its backoff step is the number of stops still in
/// the window: it falls back as they age out, with no reset after a healthy stretch.
#[derive(Debug, Default)]
pub(crate) struct GroupRestarts {
    /// The group actor's restarts within the window.
    window: Window,
    /// Backoff delays drawn so far.
    backoffs: u32,
}

impl GroupRestarts {
    /// The group actor stopped at `now`: restart it after the returned delay, or give it up.
    /// `index` keys its jitter (the root draws groups' jitter after the sensors', `n + k`).
    pub(crate) fn record_stop(
        &mut self,
        now: Instant,
        policy: &RestartPolicy,
        seed: u64,
        index: usize,
    ) -> ControlFlow<NoRestart, (Duration, Backoff)> {
        let before = match self.window.admit(now, Intensity::of(policy)) {
            ControlFlow::Continue(before) => before,
            ControlFlow::Break(limit) => return ControlFlow::Break(NoRestart::StoppedTooOften(limit)),
        };
        let draw = jitter(seed, index, self.backoffs);
        self.backoffs = self.backoffs.wrapping_add(1);
        let backoff = Backoff {
            attempt: before + 1,
            reset: false,
            window: before + 1,
            max_restarts: policy.max_restarts,
        };
        ControlFlow::Continue((
            backoff_delay(policy.backoff_min, policy.backoff_max, before, draw),
            backoff,
        ))
    }
}

/// The members of a group of `members` that restart when member `failed` fails, by `strategy`:
/// `failed` itself and, for `one_for_all` every other running member, for `rest_for_one` the
/// running members after it. Members that are not `running` (already restarting, stopped,
/// given up) are left as they are.
pub(crate) fn restart_set(
    strategy: GroupStrategy,
    failed: usize,
    members: usize,
    running: impl Fn(usize) -> bool,
) -> Vec<usize> {
    let from = match strategy {
        GroupStrategy::OneForOne => return vec![failed],
        GroupStrategy::OneForAll => 0,
        GroupStrategy::RestForOne => failed,
    };
    (from..members).filter(|&s| s == failed || running(s)).collect()
}

/// The cause journaled for a member that `strategy` stops because member `failed` failed.
pub(crate) struct StoppedWith<'a> {
    /// The group's strategy.
    pub(crate) strategy: GroupStrategy,
    /// The id of the member that failed.
    pub(crate) failed: &'a str,
}

impl fmt::Display for StoppedWith<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: restarting with {}", self.strategy.as_str(), self.failed)
    }
}

impl StoppedWith<'_> {
    /// The cause of a temporary sibling's stop, which is not restarted:
    /// `one_for_all: stopped with bus-2`.
    pub(crate) fn stopping(&self) -> String {
        format!("{}: stopped with {}", self.strategy.as_str(), self.failed)
    }
}

/// The backoff before restart number `step` (0-based): `min * 2^step`, capped at `max`, plus up
/// to [`BACKOFF_JITTER`] of itself scaled by `jitter` (in `0..1`), still capped at `max`.
pub(crate) fn backoff_delay(min: Duration, max: Duration, step: u32, jitter: f64) -> Duration {
    let base = min.saturating_mul(2u32.saturating_pow(step.min(31))).min(max);
    base.mul_f64(1.0 + BACKOFF_JITTER * jitter.clamp(0.0, 1.0)).min(max)
}

/// A uniform draw in `0..1` for the `attempt`-th backoff of sensor `index`, derived from the
/// run's seed: the same for every layout of actors, so the journal is reproducible.
pub(crate) fn jitter(seed: u64, index: usize, attempt: u32) -> f64 {
    let bits = driver_seed(seed ^ 0x6a09_e667_f3bc_c909, index, attempt);
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::SensorState::{self, *};

    const MS: Duration = Duration::from_millis(1);

    /// A compact instant measures the same durations as the instants it was made of, on either
    /// side of the process's base, and none backwards; it is half an instant's size.
    #[test]
    fn a_compact_instant_measures_what_instants_do() {
        let t0 = Instant::now();
        let base = Since::of(t0 + Duration::from_secs(3600));
        let early = t0 + Duration::from_millis(1500);
        for (from, to) in [(early, t0 + Duration::from_secs(7200)), (t0, early), (early, early)] {
            assert_eq!(Since::of(from).until(to), to.duration_since(from));
        }
        assert_eq!(Since::of(early).until(t0), Duration::ZERO);
        assert_eq!(
            base.until(t0 + Duration::from_secs(3600) + Duration::from_nanos(1)),
            Duration::from_nanos(1)
        );
        assert_eq!(size_of::<Since>(), 8);
        assert_eq!(size_of::<RestartTracker>(), 24);
    }

    /// The delay of a decision, without how it was chosen.
    fn delay_of(decision: ControlFlow<NoRestart, (Duration, Backoff)>) -> ControlFlow<NoRestart, Duration> {
        match decision {
            ControlFlow::Continue((delay, _)) => ControlFlow::Continue(delay),
            ControlFlow::Break(reason) => ControlFlow::Break(reason),
        }
    }
    const SEC: Duration = Duration::from_secs(1);

    /// A policy of `max_restarts` within `within`, backoff 100 ms to 1 s.
    fn policy(max_restarts: u32, within: Duration) -> RestartPolicy {
        RestartPolicy {
            max_restarts,
            within,
            backoff_min: 100 * MS,
            backoff_max: SEC,
            ..RestartPolicy::default()
        }
    }

    /// The delay that `backoff_delay` gives for `step` with the tracker's `attempt`-th draw.
    fn expected(policy: &RestartPolicy, step: u32, attempt: u32) -> Duration {
        backoff_delay(policy.backoff_min, policy.backoff_max, step, jitter(1, 7, attempt))
    }

    #[test]
    fn backoff_doubles_within_bounds() {
        let (min, max) = (100 * MS, 5000 * MS);
        let delays: Vec<_> = (0..10).map(|k| backoff_delay(min, max, k, 0.0)).collect();
        assert_eq!(&delays[..4], [100 * MS, 200 * MS, 400 * MS, 800 * MS]);
        assert_eq!(delays[9], max);
        for k in 0..40 {
            for j in [0.0, 0.5, 0.999] {
                let d = backoff_delay(min, max, k, j);
                assert!(d >= min.min(max) && d <= max, "{d:?}");
            }
        }
        assert_eq!(backoff_delay(min, max, 1, 1.0), 240 * MS);
    }

    #[test]
    fn jitter_is_uniform_in_unit_interval_and_reproducible() {
        let draws: Vec<f64> = (0..1000).map(|k| jitter(42, 3, k)).collect();
        assert!(draws.iter().all(|d| (0.0..1.0).contains(d)));
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        assert!((mean - 0.5).abs() < 0.05, "{mean}");
        assert_eq!(jitter(42, 3, 5), draws[5]);
        assert_ne!(jitter(42, 3, 5), jitter(42, 4, 5));
        assert_ne!(jitter(42, 3, 5), jitter(43, 3, 5));
    }

    #[test]
    fn restart_types_on_failure_and_on_normal_exit() {
        use RestartType::*;
        let cases = [
            (Permanent, Exit::Failure, ControlFlow::Continue(())),
            (Permanent, Exit::Normal, ControlFlow::Continue(())),
            (Transient, Exit::Failure, ControlFlow::Continue(())),
            (Transient, Exit::Normal, ControlFlow::Break(NoRestart::NormalExit)),
            (Temporary, Exit::Failure, ControlFlow::Break(NoRestart::Temporary)),
            (Temporary, Exit::Normal, ControlFlow::Break(NoRestart::Temporary)),
        ];
        for (restart, exit, decision) in cases {
            assert_eq!(on_exit(restart, exit), decision, "{restart} {exit:?}");
        }
    }

    #[test]
    fn reasons_read_as_the_journal_causes() {
        let limit = |max_restarts, within| Intensity { max_restarts, within };
        assert_eq!(NoRestart::Temporary.to_string(), "temporary: not restarted");
        assert_eq!(
            NoRestart::IntensityExceeded(limit(5, 10 * SEC)).to_string(),
            "more than 5 restarts within 10s"
        );
        assert_eq!(
            NoRestart::IntensityExceeded(limit(2, 60 * SEC)).to_string(),
            "more than 2 restarts within 1m"
        );
        assert_eq!(
            NoRestart::StoppedTooOften(limit(1, 10 * SEC)).to_string(),
            "stopped more than 1 times within 10s"
        );
        let stopped = StoppedWith {
            strategy: GroupStrategy::OneForAll,
            failed: "bus-1",
        };
        assert_eq!(stopped.to_string(), "one_for_all: restarting with bus-1");
    }

    /// `max_restarts` restarts inside the window are allowed, the next one is refused (and not
    /// recorded: the one after is refused as well).
    #[test]
    fn intensity_allows_exactly_max_restarts() {
        let t0 = Instant::now();
        let limit = Intensity {
            max_restarts: 3,
            within: 10 * SEC,
        };
        let mut window = Window::default();
        for k in 0..3 {
            assert_eq!(window.admit(t0 + k * SEC, limit), ControlFlow::Continue(k));
        }
        assert_eq!(window.admit(t0 + 3 * SEC, limit), ControlFlow::Break(limit));
        assert_eq!(window.admit(t0 + 4 * SEC, limit), ControlFlow::Break(limit));
        let none = Intensity {
            max_restarts: 0,
            within: 10 * SEC,
        };
        assert_eq!(Window::default().admit(t0, none), ControlFlow::Break(none));
    }

    /// A member that never restarts keeps one pointer for its window.
    #[test]
    fn an_unused_window_is_one_pointer() {
        assert_eq!(std::mem::size_of::<Window>(), std::mem::size_of::<usize>());
    }

    /// A restart exactly `within` after an old one no longer counts it; just under, it does.
    #[test]
    fn the_window_slides() {
        let t0 = Instant::now();
        let limit = Intensity {
            max_restarts: 2,
            within: 10 * SEC,
        };
        let mut window = Window::default();
        assert_eq!(window.admit(t0, limit), ControlFlow::Continue(0));
        assert_eq!(window.admit(t0 + 4 * SEC, limit), ControlFlow::Continue(1));
        assert_eq!(window.admit(t0 + 10 * SEC - MS, limit), ControlFlow::Break(limit));
        // t0 is out of the window at t0 + 10 s; t0 + 4 s is still in.
        assert_eq!(window.admit(t0 + 10 * SEC, limit), ControlFlow::Continue(1));
        assert_eq!(window.admit(t0 + 13 * SEC, limit), ControlFlow::Break(limit));
        // Both t0 + 4 s and t0 + 10 s are out at t0 + 20 s.
        assert_eq!(window.admit(t0 + 20 * SEC, limit), ControlFlow::Continue(0));
    }

    #[test]
    fn prune_drops_exactly_the_instants_at_or_beyond_within() {
        let t0 = Instant::now();
        let mut recent: VecDeque<Instant> = [t0, t0 + SEC, t0 + 2 * SEC].into();
        prune(&mut recent, t0 + 11 * SEC - MS, 10 * SEC);
        assert_eq!(recent.len(), 2);
        prune(&mut recent, t0 + 11 * SEC, 10 * SEC);
        assert_eq!(recent, [t0 + 2 * SEC]);
    }

    /// A shard's sensor: its own intensity, then a backoff doubling up to the cap, one jitter
    /// draw per delay.
    #[test]
    fn a_sensors_backoff_doubles_and_caps() {
        let t0 = Instant::now();
        let policy = policy(100, 10 * SEC);
        let mut tracker = RestartTracker::new(t0);
        let mut delays = Vec::new();
        for k in 0..6u32 {
            let now = t0 + k * MS;
            tracker.started(now);
            match tracker.record_restart(now + MS, &policy, 1, 7) {
                ControlFlow::Continue((delay, _)) => delays.push(delay),
                ControlFlow::Break(reason) => panic!("{reason}"),
            }
        }
        let want: Vec<_> = (0..6).map(|k| expected(&policy, k, k)).collect();
        assert_eq!(delays, want);
        let base = [100, 200, 400, 800, 1000, 1000];
        for (delay, base) in delays.iter().zip(base) {
            assert!(
                *delay >= base * MS && *delay <= (base * 6 / 5).min(1000) * MS,
                "{delays:?}"
            );
        }
        assert_eq!(delays[5], SEC);
    }

    /// The backoff starts over when the sensor ran exactly `within` before failing, not when
    /// it ran just under; the jitter draw keeps counting either way.
    #[test]
    fn a_healthy_stretch_resets_the_backoff() {
        let t0 = Instant::now();
        let policy = policy(100, 10 * SEC);
        for (ran, step) in [(10 * SEC - MS, 2), (10 * SEC, 0), (30 * SEC, 0)] {
            let mut tracker = RestartTracker::new(t0);
            assert_eq!(
                tracker.record_restart(t0, &policy, 1, 7),
                ControlFlow::Continue((
                    expected(&policy, 0, 0),
                    Backoff {
                        attempt: 1,
                        reset: false,
                        window: 1,
                        max_restarts: 100
                    }
                ))
            );
            tracker.started(t0 + SEC);
            assert_eq!(
                tracker.record_restart(t0 + SEC, &policy, 1, 7),
                ControlFlow::Continue((
                    expected(&policy, 1, 1),
                    Backoff {
                        attempt: 2,
                        reset: false,
                        window: 2,
                        max_restarts: 100
                    }
                ))
            );
            tracker.started(t0 + 2 * SEC);
            let decision = tracker.record_restart(t0 + 2 * SEC + ran, &policy, 1, 7);
            // The journal says which delay this is and whether it started over.
            assert_eq!(
                delay_of(decision),
                ControlFlow::Continue(expected(&policy, step, 2)),
                "ran {ran:?}"
            );
            let (_, got) = decision.continue_value().unwrap();
            assert_eq!((got.attempt, got.reset), (step + 1, step == 0), "ran {ran:?}");
        }
    }

    /// A shard's sensor gives up at the restart after `max_restarts` within `within`.
    #[test]
    fn a_sensor_gives_up_past_its_intensity() {
        let t0 = Instant::now();
        let policy = policy(2, 60 * SEC);
        let mut tracker = RestartTracker::new(t0);
        assert!(tracker.record_restart(t0, &policy, 1, 7).is_continue());
        assert!(tracker.record_restart(t0 + SEC, &policy, 1, 7).is_continue());
        let refused = tracker.record_restart(t0 + 2 * SEC, &policy, 1, 7);
        assert_eq!(
            refused,
            ControlFlow::Break(NoRestart::IntensityExceeded(Intensity::of(&policy)))
        );
        assert_eq!(
            refused.break_value().unwrap().to_string(),
            "more than 2 restarts within 1m"
        );
    }

    /// In a configured group the group's window counts (shared by its members) and the members'
    /// own intensity is not used; each member keeps its own backoff.
    #[test]
    fn a_group_counts_its_members_restarts_together() {
        let t0 = Instant::now();
        let member = policy(0, 10 * SEC); // would refuse at once if it counted
        let limit = Intensity {
            max_restarts: 2,
            within: 10 * SEC,
        };
        let mut group = Window::default();
        let (mut a, mut b) = (RestartTracker::new(t0), RestartTracker::new(t0));
        let first = a.record_restart_in(&mut group, limit, t0, &member, 1, 7);
        assert_eq!(delay_of(first), ControlFlow::Continue(expected(&member, 0, 0)));
        // The window is the group's: its fill and limit are the group's.
        let (_, filled) = first.continue_value().unwrap();
        assert_eq!((filled.window, filled.max_restarts), (1, 2));
        let second = b.record_restart_in(&mut group, limit, t0 + SEC, &member, 1, 8);
        let b0 = backoff_delay(member.backoff_min, member.backoff_max, 0, jitter(1, 8, 0));
        assert_eq!(delay_of(second), ControlFlow::Continue(b0));
        assert_eq!(second.continue_value().unwrap().1.window, 2);
        let third = a.record_restart_in(&mut group, limit, t0 + 2 * SEC, &member, 1, 7);
        assert_eq!(delay_of(third), ControlFlow::Break(NoRestart::IntensityExceeded(limit)));
        // A refused restart draws no backoff: the next admitted one is a's second step (a ran
        // 5 s since, under the group's `within`, so no reset).
        a.started(t0 + 5 * SEC);
        let later = a.record_restart_in(&mut group, limit, t0 + 10 * SEC, &member, 1, 7);
        assert_eq!(delay_of(later), ControlFlow::Continue(expected(&member, 1, 1)));
        // The group's `within` resets the backoff, not the member's: b ran 3 s, past its own
        // 2 s but under the group's 10 s, so its backoff goes on to the second step.
        let short = policy(0, 2 * SEC);
        let mut group = Window::default();
        let mut b = RestartTracker::new(t0);
        assert!(b.record_restart_in(&mut group, limit, t0, &short, 1, 8).is_continue());
        b.started(t0 + SEC);
        let next = b.record_restart_in(&mut group, limit, t0 + 4 * SEC, &short, 1, 8);
        let (_, backoff) = next.continue_value().unwrap();
        assert_eq!((backoff.attempt, backoff.reset), (2, false));
    }

    /// The root's count of a group actor's stops: its step is the number of stops still in the
    /// window, its jitter keyed by the group's index, and past the limit it gives up.
    #[test]
    fn a_group_actor_is_restarted_then_lost() {
        let t0 = Instant::now();
        let policy = policy(2, 10 * SEC);
        let mut group = GroupRestarts::default();
        let delay = |step, attempt| backoff_delay(policy.backoff_min, policy.backoff_max, step, jitter(1, 7, attempt));
        assert_eq!(
            delay_of(group.record_stop(t0, &policy, 1, 7)),
            ControlFlow::Continue(delay(0, 0))
        );
        let second = group.record_stop(t0 + 5 * SEC, &policy, 1, 7);
        assert_eq!(delay_of(second), ControlFlow::Continue(delay(1, 1)));
        let (_, backoff) = second.continue_value().unwrap();
        assert_eq!((backoff.attempt, backoff.window, backoff.max_restarts), (2, 2, 2));
        // t0 aged out: one stop left in the window, so step 1 again.
        assert_eq!(
            delay_of(group.record_stop(t0 + 10 * SEC, &policy, 1, 7)),
            ControlFlow::Continue(delay(1, 2))
        );
        let lost = group.record_stop(t0 + 11 * SEC, &policy, 1, 7);
        assert_eq!(
            lost,
            ControlFlow::Break(NoRestart::StoppedTooOften(Intensity::of(&policy)))
        );
    }

    /// The members a strategy restarts, with siblings running, already restarting, stopped and
    /// given up: only running ones join the failed member.
    #[test]
    fn strategy_sets_leave_members_that_are_not_running() {
        let states: [SensorState; 6] = [Running, Restarting, Stopped, Running, GivenUp, Running];
        let set = |strategy, failed| restart_set(strategy, failed, states.len(), |s| states[s] == Running);
        use GroupStrategy::*;
        assert_eq!(set(OneForOne, 3), [3]);
        assert_eq!(set(OneForAll, 3), [0, 3, 5]);
        assert_eq!(set(RestForOne, 3), [3, 5]);
        // The failed member is in its set whatever state it is in by now.
        assert_eq!(set(OneForAll, 1), [0, 1, 3, 5]);
        assert_eq!(set(RestForOne, 0), [0, 3, 5]);
        assert_eq!(set(RestForOne, 5), [5]);
        assert_eq!(set(RestForOne, 4), [4, 5]);
        let alone = restart_set(OneForAll, 0, 1, |_| true);
        assert_eq!(alone, [0]);
    }
}
