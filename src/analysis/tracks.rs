//! `Tracks`: the analysis state of a set of sensors (one group's members), kept by the
//! aggregator of the group's arbiter (`LocalAggregator`).
//!
//! Once a group has read a round, its aggregator passes each member's outcome to the group's
//! `Tracks`, which updates the member's streaming statistics, rolling window and EWMA, runs the
//! detectors and adds the outcome to the round's [`RoundDigest`]: read counts, reading latencies
//! and anomalies. The root aggregator then gets one digest per group and round instead of one
//! outcome per sensor, and the analysis runs on every arbiter beside the reads. Per-sensor
//! results go to the root once, at the end of the run ([`Tracks::summaries`]).
//!
//! A sensor's analysis depends only on its own sequence of outcomes, so the order in which a
//! round's outcomes settled (the order answers arrived) changes nothing: the same seeded run
//! gives the same statistics and anomalies on any layout.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::registry::DetectorColumn;
use super::{AnalysisConfig, Observation};
use crate::data::Outcome;
use crate::data::ReadCounts;
use crate::stats::{Ewma, RollingWindow, RunningStats};

/// Latencies are kept in whole microseconds, from 1 to this (one hour).
pub(crate) const LATENCY_MAX_US: u32 = 3_600_000_000;

/// What the analysis keeps per sensor: a few hundred bytes, its window included (its detectors'
/// states are kept by detector, in [`Tracks`]'s columns). The EWMA and the newest reading are
/// set with the first reading (the statistics' count above zero), so they need no `Option` of
/// their own: 16 bytes less per sensor.
/// The newest reading's fields are the track's own, not a struct of theirs, so that its
/// latency and the anomaly count share eight bytes: 104 bytes, 8 MB less at a million sensors.
#[derive(Debug)]
struct Track {
    stats: RunningStats,
    window: RollingWindow,
    ewma: f64,
    /// The newest reading (for [`Tracks::status`]): its round, value, time in microseconds
    /// since the Unix epoch, and latency in microseconds.
    last_round: u64,
    last_value: f64,
    last_timestamp_us: i64,
    last_latency_us: u32,
    /// Anomalies found (saturating: at one reading a round, more than detectors × 2^32 / 5
    /// rounds away).
    anomalies: u32,
}

impl Track {
    /// Whether a reading was analysed.
    fn read(&self) -> bool {
        self.stats.count() > 0
    }

    /// Its results so far, with its newest reading.
    fn analysis(&self) -> crate::control::SensorAnalysis {
        crate::control::SensorAnalysis {
            count: self.stats.count(),
            min: self.stats.min(),
            max: self.stats.max(),
            mean: self.stats.mean(),
            stddev: self.stats.stddev(),
            ewma: self.read().then_some(self.ewma),
            anomalies: u64::from(self.anomalies),
            last: self.read().then(|| crate::control::LastReading {
                round: self.last_round,
                value: self.last_value,
                timestamp: DateTime::from_timestamp_micros(self.last_timestamp_us).unwrap_or_default(),
                latency: Duration::from_micros(u64::from(self.last_latency_us)),
            }),
        }
    }

    fn new(window: usize) -> Self {
        Track {
            stats: RunningStats::default(),
            window: RollingWindow::new(window),
            ewma: 0.0,
            last_round: 0,
            last_value: 0.0,
            last_timestamp_us: 0,
            last_latency_us: 0,
            anomalies: 0,
        }
    }
}

/// An anomaly a detector found.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Finding {
    /// The sensor, as its index in the run's sensors.
    pub sensor: usize,
    /// The name of the detector that found it, as registered (`out_of_range`, `spike`, ...);
    /// shared by all its findings, not allocated per finding.
    pub detector: Arc<str>,
    /// What it found.
    pub detail: String,
    /// The value judged; `None` for an observation without a reading (`stale`).
    pub value: Option<f64>,
    /// The reading's time, or the time of the observation when there was no reading.
    pub timestamp: DateTime<Utc>,
    /// Replayed data: the 1-based data row of the source file.
    pub source_row: Option<u64>,
}

/// What a group's analysis of one round found.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RoundDigest {
    /// The members' outcomes, counted.
    pub reads: ReadCounts,
    /// The latency of each reading, in microseconds (1 to [`LATENCY_MAX_US`]).
    pub latencies_us: Vec<u32>,
    /// The largest latency, exactly.
    pub read_max: Duration,
    /// The anomalies found, in the order the outcomes settled, when they are listed (someone
    /// subscribed to the anomalies, or their debug log is on).
    pub findings: Vec<Finding>,
    /// When they are not: how many each detector found, by name (those that found any).
    pub counted: Vec<(Arc<str>, u64)>,
}

/// One sensor's results over the run, as kept for the summary: its figures without their
/// `Option`s, which follow from the count (`min`, `max`, `mean`, `ewma` and `last` need a reading,
/// `stddev` two), so that a million sensors' results take 64 bytes each.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct TrackSummary {
    /// Successful readings.
    pub count: u64,
    /// Anomalies found.
    pub anomalies: u64,
    /// Smallest value (0 without readings).
    pub min: f64,
    /// Largest value (0 without readings).
    pub max: f64,
    /// Mean value (0 without readings).
    pub mean: f64,
    /// Sample standard deviation (0 with fewer than two readings).
    pub stddev: f64,
    /// Exponentially weighted moving average (0 without readings).
    pub ewma: f64,
    /// Last value read (0 without readings).
    pub last: f64,
}

impl TrackSummary {
    /// The results of `track` (a figure it does not have yet is 0: `ewma` and `last` start so).
    fn of(track: &Track) -> Self {
        let stats = &track.stats;
        TrackSummary {
            count: stats.count(),
            anomalies: u64::from(track.anomalies),
            min: stats.min().unwrap_or_default(),
            max: stats.max().unwrap_or_default(),
            mean: stats.mean().unwrap_or_default(),
            stddev: stats.stddev().unwrap_or_default(),
            ewma: track.ewma,
            last: track.last_value,
        }
    }

    /// A figure that needs `needs` readings: `value` when there were as many.
    pub(crate) fn figure(&self, value: f64, needs: u64) -> Option<f64> {
        (self.count >= needs).then_some(value)
    }
}

/// The analysis of a set of sensors (a group's members, by their position in the group).
#[derive(Debug)]
pub(crate) struct Tracks {
    analysis: Arc<AnalysisConfig>,
    tracks: Vec<Track>,
    /// One column per enabled detector, in the order they run: its settings and every
    /// member's state.
    detectors: Vec<Box<dyn DetectorColumn>>,
    /// Reused buffer for the detectors' order statistics.
    scratch: Vec<f64>,
    /// Detector panics caught so far.
    panics: u64,
}

impl Tracks {
    /// The analysis of `members` sensors, with nothing observed yet.
    pub(crate) fn new(analysis: Arc<AnalysisConfig>, members: usize) -> Self {
        let tracks = (0..members).map(|_| Track::new(analysis.window)).collect();
        Tracks {
            detectors: analysis.columns(members),
            analysis,
            tracks,
            scratch: Vec::new(),
            panics: 0,
        }
    }

    /// Makes room for `members` members in all (sensors added to the group while the run goes
    /// on), the new ones with nothing observed yet.
    pub(crate) fn grow(&mut self, members: usize) {
        // A group's first members exactly (its tracks are most of its analysis' memory); the
        // ones added to a running group as any vector grows, so that adding one at a time stays
        // cheap.
        if self.tracks.is_empty() {
            self.tracks.reserve_exact(members);
        }
        while self.tracks.len() < members {
            self.tracks.push(Track::new(self.analysis.window));
        }
        for column in &mut self.detectors {
            column.grow(members);
        }
    }

    /// Observes member `local`'s outcome of `round` (the member is sensor `sensor` of the run,
    /// with valid range `range`), and adds it to `digest`: each anomaly found as a [`Finding`]
    /// when `list`, else only counted by detector (nobody reads the findings, so no detail is
    /// made: see [`Observation::wants_detail`]).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn observe(
        &mut self,
        local: usize,
        sensor: usize,
        range: Option<(f64, f64)>,
        round: u64,
        outcome: &Outcome,
        list: bool,
        digest: &mut RoundDigest,
    ) {
        let track = &mut self.tracks[local];
        digest.reads.requested += 1;
        let reading = match outcome {
            Outcome::Ok(reading) => {
                digest.reads.ok += 1;
                let us = reading.latency.as_micros().clamp(1, u128::from(LATENCY_MAX_US)) as u32;
                digest.latencies_us.push(us);
                digest.read_max = digest.read_max.max(reading.latency);
                Some(reading)
            }
            Outcome::Failed { .. } => {
                digest.reads.failed += 1;
                None
            }
            Outcome::TimedOut => {
                digest.reads.timed_out += 1;
                None
            }
            Outcome::Unavailable(_) => {
                digest.reads.unavailable += 1;
                None
            }
        };
        let value = reading.map(|r| r.value);
        let mut obs = Observation {
            round,
            value,
            window: &track.window,
            range,
            scratch: &mut self.scratch,
            detail: list,
        };
        let (findings, counted) = (&mut digest.findings, &mut digest.counted);
        let panics = &mut self.panics;
        self.analysis.observe(
            &mut self.detectors,
            local,
            &mut obs,
            |detector, detail| {
                track.anomalies = track.anomalies.saturating_add(1);
                if !list {
                    match counted.iter_mut().find(|(name, _)| Arc::ptr_eq(name, detector)) {
                        Some((_, count)) => *count += 1,
                        None => counted.push((detector.clone(), 1)),
                    }
                    return;
                }
                findings.push(Finding {
                    sensor,
                    detector: detector.clone(),
                    detail,
                    value,
                    timestamp: reading.map_or_else(crate::clock::now, |r| r.timestamp),
                    source_row: reading.and_then(|r| r.source_row()),
                });
            },
            |detector, message| {
                // The first panic of a group's run is an error in the log; the rest are
                // counted at debug level, so a detector that always panics does not flood it.
                *panics += 1;
                let level = if *panics == 1 {
                    log::Level::Error
                } else {
                    log::Level::Debug
                };
                log::log!(
                    level,
                    "round {round}: detector {detector} panicked ({message}); panics so far in this group: {panics}"
                );
            },
        );
        if let Some(reading) = reading {
            let v = reading.value;
            track.ewma = Ewma::next(track.read().then_some(track.ewma), v, self.analysis.ewma_alpha);
            track.stats.push(v);
            track.window.push(v);
            track.last_round = round;
            track.last_value = v;
            track.last_timestamp_us = reading.timestamp.timestamp_micros();
            track.last_latency_us = reading.latency.as_micros().min(u128::from(u32::MAX)) as u32;
        }
    }

    /// Every member's results so far, in member order.
    pub(crate) fn summaries(&self) -> Vec<TrackSummary> {
        self.tracks.iter().map(TrackSummary::of).collect()
    }

    /// Member `local`'s results so far, with its newest reading (`None` for no such member).
    pub(crate) fn status(&self, local: usize) -> Option<crate::control::SensorAnalysis> {
        self.tracks.get(local).map(Track::analysis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a sensor's analysis costs at a million sensors (docs/performance.md).
    #[test]
    fn a_track_is_104_bytes() {
        assert_eq!(std::mem::size_of::<Track>(), 104);
    }
}
