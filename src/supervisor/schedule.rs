//! The drift-free round grid the root schedules rounds on (`docs/architecture.md`, "Scheduling
//! rules"): ticks at `t0 + k * interval`; a round that overruns makes the ticks it covered skip.

use std::time::Duration;

/// The drift-free round grid: tick `k` is at `t0 + k * interval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Schedule {
    interval: Duration,
}

impl Schedule {
    /// A grid of `interval`; zero runs rounds back to back.
    pub(crate) fn new(interval: Duration) -> Self {
        Schedule { interval }
    }

    /// Offset of tick `k` from `t0`.
    pub(crate) fn offset(&self, k: u64) -> Duration {
        Duration::from_nanos((self.interval.as_nanos() as u64).saturating_mul(k))
    }

    /// After the round of tick `k` ended `elapsed` after `t0`: the tick of the next round and
    /// how many ticks were skipped because the round overran them.
    pub(crate) fn next_after(&self, k: u64, elapsed: Duration) -> (u64, u64) {
        if self.interval.is_zero() {
            return (k + 1, 0);
        }
        let interval = self.interval.as_nanos();
        let first_not_past = elapsed.as_nanos().div_ceil(interval) as u64;
        let next = first_not_past.max(k + 1);
        (next, next - (k + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn schedule_skips_overrun_ticks() {
        let s = Schedule::new(Duration::from_secs(1));
        assert_eq!(s.next_after(0, 500 * MS), (1, 0));
        assert_eq!(s.next_after(0, 1000 * MS), (1, 0));
        assert_eq!(s.next_after(0, 1500 * MS), (2, 1));
        assert_eq!(s.next_after(3, 6200 * MS), (7, 3));
        assert_eq!(s.offset(7), Duration::from_secs(7));
    }

    #[test]
    fn zero_interval_runs_back_to_back() {
        let s = Schedule::new(Duration::ZERO);
        assert_eq!(s.next_after(4, Duration::from_secs(9)), (5, 0));
        assert_eq!(s.offset(5), Duration::ZERO);
    }
}
