//! Streaming statistics of one sensor's values: count, min, max, mean and standard deviation
//! (Welford's numerically stable update), a bounded rolling window with robust location and scale
//! (median, MAD), and an exponentially weighted moving average. Memory is fixed per sensor,
//! whatever the run length.

/// Count, min, max, mean and variance over every value seen (Welford).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RunningStats {
    count: u64,
    mean: f64,
    m2: f64,
    min: f64,
    max: f64,
}

impl RunningStats {
    /// Adds one value.
    pub fn push(&mut self, x: f64) {
        self.count += 1;
        if self.count == 1 {
            self.min = x;
            self.max = x;
        } else {
            self.min = self.min.min(x);
            self.max = self.max.max(x);
        }
        let delta = x - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (x - self.mean);
    }

    /// Number of values.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Smallest value, if any.
    pub fn min(&self) -> Option<f64> {
        (self.count > 0).then_some(self.min)
    }

    /// Largest value, if any.
    pub fn max(&self) -> Option<f64> {
        (self.count > 0).then_some(self.max)
    }

    /// Mean, if any value.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then_some(self.mean)
    }

    /// Sample standard deviation (n - 1 in the denominator); needs two values.
    pub fn stddev(&self) -> Option<f64> {
        (self.count > 1).then(|| (self.m2 / (self.count - 1) as f64).sqrt())
    }
}

/// The last `capacity` values, oldest first, also kept in sorted order so that the robust
/// location and scale ([`RollingWindow::robust`]) cost a few dozen operations, not a sort.
///
/// Values are kept as `f32` (7 significant digits, ample for judging anomalies) to halve the
/// window's memory, the largest part of the per-sensor analysis state; the running statistics
/// ([`RunningStats`]) stay in `f64`. The values and their arrival order share one allocation.
#[derive(Clone)]
pub struct RollingWindow {
    /// The values held, ascending (the first `len` of the first `capacity` slots), then the
    /// arrival order packed in the slots after them: position `k` is where in the sorted values
    /// the k-th slot of a ring lies, whose oldest entry is at `head` once full. Positions, not
    /// values: one byte each while they fit ([`Self::narrow`]), else two.
    slots: Box<[f32]>,
    capacity: u16,
    /// Index of the oldest value once full; the next write position.
    head: u16,
    len: u16,
}

impl std::fmt::Debug for RollingWindow {
    /// Its capacity and values, oldest first (the slots hold positions too, as bytes).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RollingWindow")
            .field("capacity", &self.capacity)
            .field("values", &self.iter().collect::<Vec<_>>())
            .finish()
    }
}

/// The largest rolling window (positions in it are kept as `u16`).
pub const MAX_WINDOW: usize = u16::MAX as usize;

/// The largest window whose positions, and the end of a range of them, fit in one byte.
const NARROW_WINDOW: usize = u8::MAX as usize;

/// A position in a window's sorted values: `u8` or `u16` ([`RollingWindow::narrow`]).
trait Position: Copy {
    fn get(self) -> usize;
    fn of(at: usize) -> Self;
    /// Moves every position in `lo..hi` one step up, or down: a loop without branches, which
    /// the compiler runs several positions at a time.
    fn shift(order: &mut [Self], lo: usize, hi: usize, up: bool);
    /// Moves every position at or after `from` one step up.
    fn open(order: &mut [Self], from: usize);
}

macro_rules! position {
    ($t:ty) => {
        impl Position for $t {
            fn get(self) -> usize {
                usize::from(self)
            }

            fn of(at: usize) -> Self {
                at as $t
            }

            fn shift(order: &mut [Self], lo: usize, hi: usize, up: bool) {
                let (lo, hi) = (lo as $t, hi as $t);
                // A wrapping add of 1 or of -1 to each position in the range.
                let step: $t = if up { 1 } else { <$t>::MAX };
                for position in order.iter_mut() {
                    let moved = <$t>::from((*position >= lo) & (*position < hi));
                    *position = position.wrapping_add(step & moved.wrapping_neg());
                }
            }

            fn open(order: &mut [Self], from: usize) {
                for position in order.iter_mut() {
                    *position += <$t>::from(usize::from(*position) >= from);
                }
            }
        }
    };
}

position!(u8);
position!(u16);

/// Adds `x` to the sorted values `sorted` (`len` of them held) and to the ring `order` at `head`,
/// dropping the oldest value when full; where in `sorted` it went.
fn place<P: Position>(sorted: &mut [f32], order: &mut [P], head: usize, len: usize, x: f32) -> usize {
    let above = sorted[..len].partition_point(|v| v.total_cmp(&x).is_le());
    let at = if len == order.len() {
        // Full: the oldest leaves and `x` enters in one move of the values between them, and
        // one pass shifts the positions of those values.
        let oldest = order[head].get();
        if above > oldest {
            sorted.copy_within(oldest + 1..above, oldest);
            P::shift(order, oldest + 1, above, false);
            above - 1
        } else {
            sorted.copy_within(above..oldest, above + 1);
            P::shift(order, above, oldest, true);
            above
        }
    } else {
        sorted.copy_within(above..len, above + 1);
        P::open(&mut order[..len], above);
        above
    };
    sorted[at] = x;
    order[head] = P::of(at);
    at
}

/// The first `n` two-byte positions of `bytes`, the bytes of a window's `f32` slots.
fn as_wide(bytes: &mut [u8], n: usize) -> &mut [u16] {
    let bytes = &mut bytes[..2 * n];
    assert_eq!(
        bytes.as_ptr().align_offset(align_of::<u16>()),
        0,
        "f32 slots are aligned for u16"
    );
    // SAFETY: in bounds (checked just above), aligned (asserted), and any two bytes are a `u16`.
    unsafe { std::slice::from_raw_parts_mut(bytes.as_mut_ptr().cast::<u16>(), n) }
}

impl RollingWindow {
    /// An empty window holding at most `capacity` values (1 to [`MAX_WINDOW`]; clamped).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.clamp(1, MAX_WINDOW);
        let width = if capacity <= NARROW_WINDOW { 1 } else { 2 };
        let order_slots = (capacity * width).div_ceil(size_of::<f32>());
        RollingWindow {
            slots: vec![0.0; capacity + order_slots].into_boxed_slice(),
            capacity: capacity as u16,
            head: 0,
            len: 0,
        }
    }

    fn capacity(&self) -> usize {
        usize::from(self.capacity)
    }

    /// Whether positions take one byte.
    fn narrow(&self) -> bool {
        self.capacity() <= NARROW_WINDOW
    }

    /// The sorted values' slots, and the slots after them as bytes.
    fn split(&self) -> (&[f32], &[u8]) {
        let (sorted, rest) = self.slots.split_at(self.capacity());
        // SAFETY: the bytes of the `f32` slots, read as bytes: within the same allocation,
        // alignment 1 and every byte initialized.
        let bytes = unsafe { std::slice::from_raw_parts(rest.as_ptr().cast::<u8>(), size_of_val(rest)) };
        (sorted, bytes)
    }

    /// [`Self::split`], to write.
    fn split_mut(&mut self) -> (&mut [f32], &mut [u8]) {
        let capacity = self.capacity();
        let (sorted, rest) = self.slots.split_at_mut(capacity);
        // SAFETY: as in `split`; any bytes written make valid `f32` slots.
        let bytes = unsafe { std::slice::from_raw_parts_mut(rest.as_mut_ptr().cast::<u8>(), size_of_val(rest)) };
        (sorted, bytes)
    }

    /// Adds a value, dropping the oldest when full.
    pub fn push(&mut self, x: f64) {
        let x = x as f32;
        let (capacity, head, len, narrow) = (
            self.capacity(),
            usize::from(self.head),
            usize::from(self.len),
            self.narrow(),
        );
        let (sorted, bytes) = self.split_mut();
        if narrow {
            place(sorted, &mut bytes[..capacity], head, len, x);
        } else {
            place(sorted, as_wide(bytes, capacity), head, len, x);
        }
        if len < capacity {
            self.len += 1;
        }
        self.head = ((head + 1) % capacity) as u16;
    }

    /// The value in ring slot `k`.
    fn at(&self, k: usize) -> f64 {
        let (sorted, bytes) = self.split();
        let position = if self.narrow() {
            usize::from(bytes[k])
        } else {
            usize::from(u16::from_ne_bytes([bytes[2 * k], bytes[2 * k + 1]]))
        };
        f64::from(sorted[position])
    }

    /// The values ascending.
    fn sorted(&self) -> &[f32] {
        &self.split().0[..usize::from(self.len)]
    }

    /// Number of values held.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether no value is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The most recent value.
    pub fn last(&self) -> Option<f64> {
        self.nth_newest(0)
    }

    /// The value `n` reads before the most recent one (`0` is the most recent), if held.
    pub fn nth_newest(&self, n: usize) -> Option<f64> {
        let capacity = self.capacity();
        (n < self.len as usize).then(|| self.at((self.head as usize + capacity - 1 - n) % capacity))
    }

    /// The values held, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = f64> + '_ {
        let capacity = self.capacity();
        let len = self.len as usize;
        let start = if len == capacity { self.head as usize } else { 0 };
        (0..len).map(move |i| self.at((start + i) % capacity))
    }

    /// The median of the values (`None` when empty).
    pub fn median(&self) -> Option<f64> {
        let sorted = self.sorted();
        let n = sorted.len();
        let s = |i: usize| f64::from(sorted[i]);
        match n {
            0 => None,
            _ if n % 2 == 1 => Some(s(n / 2)),
            _ => Some((s(n / 2 - 1) + s(n / 2)) / 2.0),
        }
    }

    /// Whether the MAD about `median` (the window's median) is certainly at least `t` (> 0):
    /// true when no more than `(n - 1) / 2` values lie strictly within `t` of the median, so the
    /// middle deviation is `t` or more. A cheap test (two binary searches) that lets a caller skip
    /// [`RollingWindow::robust`] when only a large enough MAD matters; false means "maybe not".
    pub fn mad_at_least(&self, median: f64, t: f64) -> bool {
        let sorted = self.sorted();
        // On each side of the median the deviation shrinks towards it, so "within t" is one
        // contiguous run around the median, found by binary search from both sides.
        let from = sorted.partition_point(|&v| median - f64::from(v) >= t);
        let to = sorted.partition_point(|&v| f64::from(v) - median < t);
        to.saturating_sub(from) <= (sorted.len().saturating_sub(1)) / 2
    }
}

impl RollingWindow {
    /// The window's median and robust scale, as [`robust_location_scale`] computes them, from the
    /// sorted values: the median directly, the MAD by merging the deviations below and above it
    /// (both already in order). `None` when empty.
    pub fn robust(&self) -> Option<(f64, f64)> {
        let sorted = self.sorted();
        let s = |i: usize| f64::from(sorted[i]);
        let n = sorted.len();
        if n == 0 {
            return None;
        }
        let median = if n % 2 == 1 {
            s(n / 2)
        } else {
            (s(n / 2 - 1) + s(n / 2)) / 2.0
        };
        // Deviations below the median are taken from `left` downwards, those above from `right`.
        let mut left = sorted.partition_point(|&v| f64::from(v) < median);
        let mut right = left;
        let (mut previous, mut current) = (0.0, 0.0);
        for _ in 0..=n / 2 {
            let take_left = left > 0 && (right == n || median - s(left - 1) <= s(right) - median);
            previous = current;
            current = if take_left {
                left -= 1;
                median - s(left)
            } else {
                right += 1;
                s(right - 1) - median
            };
        }
        let mad = if n % 2 == 1 {
            current
        } else {
            (previous + current) / 2.0
        };
        let scale = if mad > 0.0 {
            MAD_TO_SD * mad
        } else {
            MEAN_AD_TO_SD * (0..n).map(|i| (s(i) - median).abs()).sum::<f64>() / n as f64
        };
        Some((median, scale))
    }
}

/// Consistency constant: 1.4826 * MAD estimates the standard deviation of normal data.
pub const MAD_TO_SD: f64 = 1.4826;
/// Consistency constant for the mean absolute deviation of normal data (sqrt(pi / 2)).
pub const MEAN_AD_TO_SD: f64 = 1.2533;

/// Robust location and scale of `values` (reordered and overwritten): the median, and
/// `1.4826 * MAD`, or `1.2533 * mean absolute deviation` when the MAD is zero (more than half
/// the values identical). `None` for no values.
pub fn robust_location_scale(values: &mut [f64]) -> Option<(f64, f64)> {
    if values.is_empty() {
        return None;
    }
    let median = median_in_place(values);
    for v in values.iter_mut() {
        *v = (*v - median).abs();
    }
    let mean_ad = values.iter().sum::<f64>() / values.len() as f64;
    let mad = median_in_place(values);
    let scale = if mad > 0.0 {
        MAD_TO_SD * mad
    } else {
        MEAN_AD_TO_SD * mean_ad
    };
    Some((median, scale))
}

/// Median of `values` (reorders them); `values` must not be empty.
pub fn median_in_place(values: &mut [f64]) -> f64 {
    let n = values.len();
    let mid = n / 2;
    let (_, upper, _) = values.select_nth_unstable_by(mid, f64::total_cmp);
    let upper = *upper;
    if n % 2 == 1 {
        upper
    } else {
        let lower = values[..mid].iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (lower + upper) / 2.0
    }
}

/// Exponentially weighted moving average.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Ewma {
    value: Option<f64>,
}

impl Ewma {
    /// Adds a value with weight `alpha` (0 < alpha <= 1); the first value starts the average.
    pub fn push(&mut self, x: f64, alpha: f64) {
        self.value = Some(Self::next(self.value, x, alpha));
    }

    /// The average after `x`, from the one before (`None` before the first value).
    pub(crate) fn next(previous: Option<f64>, x: f64, alpha: f64) -> f64 {
        match previous {
            Some(v) => v + alpha * (x - v),
            None => x,
        }
    }

    /// The current average.
    pub fn value(&self) -> Option<f64> {
        self.value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_mean_std(xs: &[f64]) -> (f64, f64) {
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
        (mean, var.sqrt())
    }

    #[test]
    fn welford_matches_two_pass() {
        let mut state = 12345u64;
        let xs: Vec<f64> = (0..10_000)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                1e6 + (state >> 33) as f64 / 1e6
            })
            .collect();
        let mut s = RunningStats::default();
        xs.iter().for_each(|&x| s.push(x));
        let (mean, std) = naive_mean_std(&xs);
        assert_eq!(s.count(), 10_000);
        assert!((s.mean().unwrap() - mean).abs() < 1e-7);
        assert!((s.stddev().unwrap() - std).abs() / std < 1e-9);
        assert_eq!(s.min().unwrap(), xs.iter().copied().fold(f64::INFINITY, f64::min));
        assert_eq!(s.max().unwrap(), xs.iter().copied().fold(f64::NEG_INFINITY, f64::max));
    }

    #[test]
    fn empty_and_single() {
        let mut s = RunningStats::default();
        assert_eq!((s.mean(), s.stddev(), s.min()), (None, None, None));
        s.push(3.0);
        assert_eq!((s.mean(), s.stddev(), s.max()), (Some(3.0), None, Some(3.0)));
    }

    #[test]
    fn window_keeps_the_last_values() {
        let mut w = RollingWindow::new(3);
        for x in [1.0, 2.0, 3.0, 4.0, 5.0] {
            w.push(x);
        }
        let mut v: Vec<f64> = w.iter().collect();
        v.sort_by(f64::total_cmp);
        assert_eq!(v, [3.0, 4.0, 5.0]);
        assert_eq!(w.last(), Some(5.0));
        assert_eq!(w.iter().collect::<Vec<_>>(), [3.0, 4.0, 5.0]);
        let newest: Vec<_> = (0..4).map(|n| w.nth_newest(n)).collect();
        assert_eq!(newest, [Some(5.0), Some(4.0), Some(3.0), None]);
        let mut young = RollingWindow::new(3);
        young.push(1.0);
        assert_eq!((young.nth_newest(0), young.nth_newest(1)), (Some(1.0), None));
        let mut v: Vec<f64> = w.iter().collect();
        assert_eq!(robust_location_scale(&mut v), Some((4.0, MAD_TO_SD)));
        assert_eq!(
            robust_location_scale(&mut [2.0, 2.0, 2.0, 6.0]),
            Some((2.0, MEAN_AD_TO_SD))
        );
    }

    #[test]
    fn sorted_window_matches_the_naive_robust_scale() {
        let mut state = 99u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            // Coarse values so that ties, and zero MADs, happen too.
            ((state >> 40) % 7) as f64 * 0.5
        };
        // Positions in one byte up to 255, in two from 256 on.
        for capacity in [1, 2, 3, 4, 7, 30, 254, 255, 256, 300] {
            let mut w = RollingWindow::new(capacity);
            let mut naive_ring = std::collections::VecDeque::new();
            for _ in 0..700 {
                let x = next();
                w.push(x);
                naive_ring.push_back(x);
                if naive_ring.len() > capacity {
                    naive_ring.pop_front();
                }
                assert_eq!(
                    w.iter().collect::<Vec<_>>(),
                    Vec::from(naive_ring.clone()),
                    "capacity {capacity}"
                );
                let newest: Vec<_> = (0..naive_ring.len()).map(|n| w.nth_newest(n).unwrap()).collect();
                assert_eq!(newest, naive_ring.iter().rev().copied().collect::<Vec<_>>());
                let mut naive = w.iter().collect::<Vec<_>>();
                let ((m1, s1), (m2, s2)) = (w.robust().unwrap(), robust_location_scale(&mut naive).unwrap());
                assert_eq!(m1, m2, "capacity {capacity}");
                assert!((s1 - s2).abs() <= 1e-12 * s2.abs(), "capacity {capacity}: {s1} vs {s2}");
                let mut sorted = w.iter().map(|v| v as f32).collect::<Vec<_>>();
                sorted.sort_by(f32::total_cmp);
                assert_eq!(w.sorted(), &sorted[..]);
            }
        }
    }

    #[test]
    fn median_of_even_count() {
        assert_eq!(median_in_place(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median_in_place(&mut [7.0]), 7.0);
    }

    #[test]
    fn ewma_follows() {
        let mut e = Ewma::default();
        e.push(10.0, 0.5);
        e.push(20.0, 0.5);
        assert_eq!(e.value(), Some(15.0));
    }
}
