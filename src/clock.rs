//! Time as the run sees it: the wall clock, or a virtual clock for reproducible runs.
//!
//! Every timestamp of a run (readings, the journal, anomalies) comes from [`at`] or [`now`]. On
//! the wall clock that is the thread's anchor plus the monotonic time since (below). On a virtual
//! clock it is the run's start time plus the time since the run began on tokio's clock, which the
//! caller pauses, so that a run is the same, timestamps included, on any machine and as fast as
//! the CPU allows ([`Clock::Virtual`]).

use std::cell::Cell;
use std::time::Duration;

use actix_rt::time::Instant;
use chrono::{DateTime, NaiveDate, NaiveTime, Timelike, Utc};

/// The clock of a run ([`Collector::clock`](crate::Collector::clock)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Clock {
    /// The machine's clock (the default).
    #[default]
    Wall,
    /// Time starts at `start` when the run does and advances with tokio's clock: on a paused
    /// clock (`run --clock virtual`, or `tokio::time::pause()` in a test), simulated latencies,
    /// timeouts, backoffs and intervals take no real time, and the same configuration and seed
    /// give the same files, byte for byte. The run uses one thread; drivers that touch the real
    /// world refuse it.
    Virtual {
        /// The time of the run's first instant.
        start: DateTime<Utc>,
    },
}

impl Clock {
    /// The virtual clock's default start, 2000-01-01T00:00:00Z: a fixed time, so that runs are
    /// the same without `--start`.
    pub fn virtual_from_default() -> Clock {
        Clock::Virtual {
            start: DateTime::from_timestamp(946_684_800, 0).unwrap_or_default(),
        }
    }
}

thread_local! {
    /// The virtual clock of the run on this thread: tokio's instant and the time it stands for.
    static VIRTUAL: Cell<Option<(Instant, DateTime<Utc>)>> = const { Cell::new(None) };
}

/// Puts this thread on `clock` from now on; the guard puts it back on the wall clock.
pub(crate) fn enter(clock: Clock) -> ClockGuard {
    let previous = VIRTUAL.with(Cell::get);
    if let Clock::Virtual { start } = clock {
        VIRTUAL.with(|cell| cell.set(Some((Instant::now(), start))));
        VIRTUAL_ANCHOR.with(|cell| cell.set(None));
    }
    ClockGuard { previous }
}

/// Restores the clock a thread had before [`enter`].
pub(crate) struct ClockGuard {
    previous: Option<(Instant, DateTime<Utc>)>,
}

impl Drop for ClockGuard {
    fn drop(&mut self) {
        VIRTUAL.with(|cell| cell.set(self.previous));
        VIRTUAL_ANCHOR.with(|cell| cell.set(None));
    }
}

/// The start of this thread's virtual clock, if it is on one.
pub(crate) fn virtual_start() -> Option<DateTime<Utc>> {
    VIRTUAL.with(Cell::get).map(|(_, start)| start)
}

/// Whether this thread runs on a virtual clock.
pub(crate) fn is_virtual() -> bool {
    VIRTUAL.with(Cell::get).is_some()
}

/// How long a wait of `latency` takes on tokio's paused clock: up to the next whole
/// millisecond, since its timers fire on millisecond ticks (counted from when the runtime
/// started; on a runtime started paused, as `run --clock virtual`'s is, every instant of the run
/// is a whole number of them, so a sleep of `latency` started at one wakes exactly this much
/// later).
pub(crate) fn paused_wait(latency: Duration) -> Duration {
    // Whole seconds are whole milliseconds: only the fraction rounds up (no 128-bit division).
    const TICK_NANOS: u32 = 1_000_000;
    let ticks =
        (latency.as_secs().saturating_mul(1000)).saturating_add(u64::from(latency.subsec_nanos().div_ceil(TICK_NANOS)));
    Duration::from_millis(ticks)
}

/// The time now.
pub(crate) fn now() -> DateTime<Utc> {
    at(Instant::now())
}

/// The time of `at`, an instant of this thread (converted in any order: one before the
/// thread's anchor is counted back from it).
pub(crate) fn at(at: Instant) -> DateTime<Utc> {
    match VIRTUAL.with(Cell::get) {
        Some((origin, start)) => virtual_clock(at, origin, start),
        None => wall_clock(at),
    }
}

thread_local! {
    /// An anchor of this thread's virtual clock (see [`virtual_clock`]); reset when the thread
    /// enters or leaves one.
    static VIRTUAL_ANCHOR: Cell<Option<Anchor>> = const { Cell::new(None) };
}

/// How far past its anchor an instant of a virtual clock may be to be converted from it.
const VIRTUAL_ANCHOR_SPAN: Duration = Duration::from_secs(86_400);

/// The time of `at` on the virtual clock that started at `start` at `origin`: `start` plus the
/// time since `origin`. Every read's timestamp is made here, so, as on the wall clock, it is
/// added within the day of an anchor (the last instant converted by chrono's date arithmetic),
/// the same time without the date handling; an instant before the anchor or past its midnight
/// is converted by chrono and becomes the anchor.
fn virtual_clock(at: Instant, origin: Instant, start: DateTime<Utc>) -> DateTime<Utc> {
    VIRTUAL_ANCHOR.with(|cell| {
        if let Some(anchor) = cell.get().filter(|anchor| at >= anchor.at) {
            let since = at - anchor.at;
            if let Some(time) = anchor.after(since).filter(|_| since < VIRTUAL_ANCHOR_SPAN) {
                return time;
            }
        }
        let since = at.saturating_duration_since(origin);
        let time = start + chrono::TimeDelta::from_std(since).unwrap_or(chrono::TimeDelta::MAX);
        cell.set(Anchor::new(at, time));
        time
    })
}

/// How long a thread's wall-clock anchor serves before it is read again.
const REANCHOR_AFTER: Duration = Duration::from_secs(1);

/// A moment of a thread in both clocks: the monotonic instant, and the wall-clock time as its
/// date, second of the day and nanosecond (below a second: a leap second is not an anchor).
#[derive(Debug, Clone, Copy)]
struct Anchor {
    at: Instant,
    date: NaiveDate,
    second: u32,
    nano: u32,
}

impl Anchor {
    fn new(at: Instant, wall: DateTime<Utc>) -> Option<Anchor> {
        let time = wall.time();
        (time.nanosecond() < 1_000_000_000).then(|| Anchor {
            at,
            date: wall.date_naive(),
            second: time.num_seconds_from_midnight(),
            nano: time.nanosecond(),
        })
    }

    /// The anchor's wall-clock time.
    fn wall(&self) -> DateTime<Utc> {
        let time = NaiveTime::from_num_seconds_from_midnight_opt(self.second, self.nano).unwrap_or_default();
        self.date.and_time(time).and_utc()
    }

    /// The wall-clock time `since` (under [`REANCHOR_AFTER`]) after the anchor, by adding
    /// nanoseconds within the anchor's day; `None` past its midnight.
    fn after(&self, since: Duration) -> Option<DateTime<Utc>> {
        let nanos = self.nano + since.subsec_nanos();
        let (second, nano) = (
            self.second + since.as_secs() as u32 + nanos / 1_000_000_000,
            nanos % 1_000_000_000,
        );
        let time = NaiveTime::from_num_seconds_from_midnight_opt(second, nano)?;
        Some(self.date.and_time(time).and_utc())
    }
}

thread_local! {
    /// This thread's anchor, if it has one.
    static ANCHOR: Cell<Option<Anchor>> = const { Cell::new(None) };
}

/// The wall-clock time of `at` (a monotonic instant of this thread, past or to come): the
/// thread's anchor plus the monotonic time since (or minus the time until it), the anchor being
/// read again once `at` is [`REANCHOR_AFTER`] past it. A read's timestamp then costs no
/// wall-clock read and no calendar arithmetic beyond the time of day, and a step of the wall
/// clock shows within a second.
fn wall_clock(at: Instant) -> DateTime<Utc> {
    ANCHOR.with(|cell| {
        if let Some(anchor) = cell.get() {
            match at.checked_duration_since(anchor.at) {
                Some(since) if since < REANCHOR_AFTER => {
                    if let Some(wall) = anchor.after(since) {
                        return wall;
                    }
                }
                Some(_) => {}
                // Before the anchor: counted back from it (not the anchor's own time).
                None => return moved(anchor.wall(), anchor.at, at),
            }
        }
        // Read again as of now, not as of `at`: an answer kept until due is converted after its
        // instant, and taking that instant for now would shift every time converted from it.
        let now = Instant::now();
        let wall = Utc::now();
        cell.set(Anchor::new(now, wall));
        moved(wall, now, at)
    })
}

/// `wall`, the wall-clock time of instant `from`, moved to instant `to` (before or after it) by
/// chrono's arithmetic.
fn moved(wall: DateTime<Utc>, from: Instant, to: Instant) -> DateTime<Utc> {
    match to.checked_duration_since(from) {
        Some(ahead) => wall + chrono::TimeDelta::from_std(ahead).unwrap_or(chrono::TimeDelta::MAX),
        None => wall - chrono::TimeDelta::from_std(from - to).unwrap_or(chrono::TimeDelta::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    /// On a virtual clock, time is the start plus tokio's time since the run began, exactly;
    /// the guard puts the thread back on the wall clock.
    #[tokio::test(start_paused = true)]
    async fn a_virtual_clock_is_the_start_plus_the_paused_time() {
        let start = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().to_utc();
        {
            let _virtual = enter(Clock::Virtual { start });
            assert_eq!(virtual_start(), Some(start));
            assert_eq!(now(), start);
            tokio::time::sleep(Duration::from_millis(1500)).await;
            assert_eq!(now(), start + TimeDelta::milliseconds(1500));
            assert_eq!(
                at(Instant::now() + Duration::from_nanos(1)),
                start + TimeDelta::milliseconds(1500) + TimeDelta::nanoseconds(1)
            );
        }
        assert_eq!(virtual_start(), None);
        assert!((Utc::now() - now()).abs() < TimeDelta::seconds(1));
    }

    /// A virtual clock's times from its anchor are chrono's, forwards within a day, backwards,
    /// across midnight and across days; another run on the thread starts afresh.
    #[tokio::test(start_paused = true)]
    async fn virtual_times_from_an_anchor_are_chronos() {
        let start = DateTime::parse_from_rfc3339("2026-02-28T23:59:58.5Z").unwrap().to_utc();
        let _virtual = enter(Clock::Virtual { start });
        let origin = Instant::now();
        let chrono = |since: Duration| start + TimeDelta::from_std(since).unwrap();
        let ms = Duration::from_millis;
        for since in [
            ms(0),
            ms(250),
            ms(1_499),
            ms(100),
            ms(1_500),
            ms(1_501) + Duration::from_nanos(3),
            ms(40 * 86_400_000 + 12),
            ms(40 * 86_400_000 + 13),
            ms(86_400_000 + 7),
            ms(2_000),
        ] {
            assert_eq!(at(origin + since), chrono(since), "{since:?}");
        }
        drop(_virtual);
        let other = DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z").unwrap().to_utc();
        let _again = enter(Clock::Virtual { start: other });
        assert_eq!(at(Instant::now() + ms(2_005)), other + TimeDelta::milliseconds(2_005));
    }

    /// A wait on the paused clock lasts to the next whole millisecond: tokio's timers tick by
    /// the millisecond, so `sleep` wakes exactly then (checked against tokio itself).
    #[tokio::test(start_paused = true)]
    async fn a_paused_wait_ends_on_the_next_millisecond() {
        let ms = Duration::from_millis;
        for (latency, wait) in [
            (Duration::from_nanos(1), ms(1)),
            (ms(1), ms(1)),
            (ms(1) + Duration::from_nanos(1), ms(2)),
            (Duration::from_micros(149_500), ms(150)),
            (ms(150), ms(150)),
            (ms(500) - Duration::from_nanos(1), ms(500)),
        ] {
            assert_eq!(paused_wait(latency), wait, "{latency:?}");
            let started = Instant::now();
            tokio::time::sleep(latency).await;
            assert_eq!(started.elapsed(), wait, "tokio's sleep of {latency:?}");
        }
        assert_eq!(paused_wait(Duration::ZERO), Duration::ZERO);
    }

    /// An anchor adds the time since within its day, carrying nanoseconds into seconds, and
    /// gives up (for a fresh wall-clock read) past its midnight.
    #[test]
    fn an_anchor_adds_within_its_day() {
        let at = Instant::now();
        let wall = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        let anchor = Anchor::new(at, wall("2026-12-01T10:00:00.900000000Z")).unwrap();
        assert_eq!(
            anchor.after(Duration::from_millis(250)),
            Some(wall("2026-12-01T10:00:01.150000000Z"))
        );
        assert_eq!(
            anchor.after(Duration::ZERO),
            Some(wall("2026-12-01T10:00:00.900000000Z"))
        );
        let late = Anchor::new(at, wall("2026-12-01T23:59:59.900000000Z")).unwrap();
        assert_eq!(
            late.after(Duration::from_millis(99)),
            Some(wall("2026-12-01T23:59:59.999000000Z"))
        );
        assert_eq!(late.after(Duration::from_millis(100)), None);
        for ms in [0, 1, 99, 500, 999] {
            let since = Duration::from_millis(ms) + Duration::from_nanos(7);
            let naive = wall("2026-12-01T10:00:00.900000000Z") + TimeDelta::from_std(since).unwrap();
            assert_eq!(anchor.after(since), Some(naive), "{ms} ms");
        }
    }

    /// Timestamps follow the monotonic clock from the thread's anchor, and the anchor is read
    /// again, as of the moment it is read, once an instant is `REANCHOR_AFTER` past it: times
    /// converted from the old anchor and from the new one agree.
    #[test]
    fn wall_clock_follows_the_monotonic_clock_from_an_anchor() {
        let t0 = Instant::now();
        let w0 = wall_clock(t0);
        assert!((Utc::now() - w0).abs() < TimeDelta::seconds(1));
        assert_eq!(
            wall_clock(t0 + Duration::from_millis(250)) - w0,
            TimeDelta::milliseconds(250)
        );
        // The anchor made a second and a half older (the same moment in both clocks), as if
        // the thread had run that long: the next instant is past it, and it is read again.
        let old = Duration::from_millis(1_500);
        let anchor = ANCHOR.with(Cell::get).unwrap();
        let wall = anchor.wall() - TimeDelta::from_std(old).unwrap();
        ANCHOR.with(|cell| cell.set(Anchor::new(anchor.at.checked_sub(old).unwrap(), wall)));
        let before = Instant::now();
        let w1 = wall_clock(t0 + Duration::from_millis(100));
        assert!(ANCHOR.with(Cell::get).unwrap().at >= before, "read again, as of now");
        // Both anchors read the same clock: they agree but for its drift between two reads.
        let drift = (w1 - w0) - TimeDelta::milliseconds(100);
        assert!(drift.abs() < TimeDelta::milliseconds(50), "{drift}");
        assert_eq!(
            wall_clock(t0 + Duration::from_millis(110)) - w1,
            TimeDelta::milliseconds(10)
        );
    }

    /// An instant before the thread's anchor is counted back from it, not given the anchor's
    /// time: a group converts the instants of the answers it kept after they were due, and the
    /// anchor may have been read in between.
    #[test]
    fn wall_clock_counts_back_from_a_later_anchor() {
        let now = Instant::now();
        let at_now = wall_clock(now);
        let anchor = ANCHOR.with(Cell::get).unwrap().at;
        let earlier = anchor.checked_sub(Duration::from_millis(300)).unwrap();
        assert_eq!(wall_clock(anchor) - wall_clock(earlier), TimeDelta::milliseconds(300));
        let just_before = anchor.checked_sub(Duration::from_nanos(1)).unwrap();
        assert_eq!(wall_clock(anchor) - wall_clock(just_before), TimeDelta::nanoseconds(1));
        assert_eq!(wall_clock(now), at_now);
    }

    /// The anchor is read as of now, whatever instant asked for it: one already gone (a kept
    /// answer settled after its instant) gets its own time, not the time of the read.
    #[test]
    fn a_first_anchor_converts_an_instant_already_gone() {
        ANCHOR.with(|cell| cell.set(None));
        let gone = Instant::now().checked_sub(Duration::from_millis(300)).unwrap();
        let w = wall_clock(gone);
        let expected = Utc::now() - TimeDelta::milliseconds(300);
        assert!(
            (w - expected).abs() < TimeDelta::milliseconds(50),
            "{w} against {expected}"
        );
    }
}
