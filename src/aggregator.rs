//! `Aggregator`: the actor that analyses every round and writes the outputs.
//!
//! It receives one [`RoundReport`] per round (every sensor's outcome, readings included) and every
//! [`SupervisionEvent`] from the supervisor, in the order they happened. Per sensor it keeps
//! streaming statistics, a bounded rolling window, an EWMA and its detectors' state: memory is
//! fixed per sensor whatever the run length. It counts every read into exactly one outcome,
//! records round and read latencies in fixed-size histograms, logs one line per round and, on
//! [`Finish`], returns the [`Summary`] and writes `summary.json`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Context, Handler, MessageResult};
use chrono::Utc;
use hdrhistogram::Histogram;

use crate::analysis::{AnalysisConfig, DetectorKind, Detectors, Observation};
use crate::config::SensorTable;
use crate::messages::{EventKind, Finish, Outcome, Reading, RoundReport, SensorsStarted, SupervisionEvent};
use crate::report::{
    rfc3339, AnomalyLine, EventLine, Finished, Outputs, Percentiles, ProcessStats, ReadCounts, ReadingLine,
    SensorSummary, Summary,
};
use crate::stats::{Ewma, RollingWindow, RunningStats};

/// Latencies above this (one hour) are recorded as this in the histograms.
const HISTOGRAM_MAX_US: u64 = 3_600_000_000;

/// What the aggregator keeps per sensor: a few hundred bytes, its window included (the id,
/// kind and unit are looked up in the run's [`SensorTable`], the detectors' settings are kept
/// once in the [`AnalysisConfig`]).
struct Track {
    stats: RunningStats,
    window: RollingWindow,
    ewma: Ewma,
    last: Option<f64>,
    detectors: Detectors,
    anomalies: u64,
}

/// The analysis and output actor.
pub struct Aggregator {
    /// Every sensor's id, kind and unit, shared with the supervisors.
    sensors: Arc<SensorTable>,
    /// The valid range of the sensors of each entry of `sensors`.
    ranges: Vec<Option<(f64, f64)>>,
    tracks: Vec<Track>,
    analysis: AnalysisConfig,
    rounds: u64,
    reads: ReadCounts,
    round_us: Histogram<u64>,
    read_us: Histogram<u64>,
    /// Exact largest round and read times: the histograms keep 3 significant digits, so their
    /// own maximum is the top of a bucket, slightly above any value recorded.
    round_max: Duration,
    read_max: Duration,
    anomalies: BTreeMap<DetectorKind, u64>,
    events: BTreeMap<EventKind, u64>,
    /// Where the lines go; `None` without `--out`. Dropped (and so closed) with the actor.
    outputs: Option<Outputs>,
    /// Wall-clock start of the run, for `process.wall_seconds`.
    started: std::time::Instant,
    /// CPU time used before the run started (by a launcher that exec'd this process, or by
    /// earlier runs in the same process), subtracted from `process.cpu_seconds`.
    cpu_before: f64,
    /// Reused buffer for the detectors' order statistics.
    scratch: Vec<f64>,
}

impl Aggregator {
    /// An aggregator for `sensors`, writing to `outputs` when given.
    pub fn new(sensors: Arc<SensorTable>, analysis: AnalysisConfig, outputs: Option<Outputs>) -> Self {
        let ranges = sensors
            .entries()
            .iter()
            .map(|e| analysis.range_for(&e.kind, e.range))
            .collect();
        let tracks = (0..sensors.len())
            .map(|_| Track {
                stats: RunningStats::default(),
                window: RollingWindow::new(analysis.window),
                ewma: Ewma::default(),
                last: None,
                detectors: Detectors::default(),
                anomalies: 0,
            })
            .collect();
        let histogram =
            || Histogram::new_with_bounds(1, HISTOGRAM_MAX_US, 3).expect("static histogram bounds are valid");
        Aggregator {
            sensors,
            ranges,
            tracks,
            analysis,
            rounds: 0,
            reads: ReadCounts::default(),
            round_us: histogram(),
            read_us: histogram(),
            round_max: Duration::ZERO,
            read_max: Duration::ZERO,
            anomalies: BTreeMap::new(),
            events: BTreeMap::new(),
            outputs,
            started: std::time::Instant::now(),
            cpu_before: ProcessStats::measure().cpu_seconds,
            scratch: Vec::new(),
        }
    }

    fn process(&mut self) -> ProcessStats {
        let now = ProcessStats::measure();
        ProcessStats {
            wall_seconds: self.started.elapsed().as_secs_f64(),
            cpu_seconds: (now.cpu_seconds - self.cpu_before).max(0.0),
            ..now
        }
    }

    fn record(histogram: &mut Histogram<u64>, d: Duration) {
        let us = (d.as_micros() as u64).clamp(1, HISTOGRAM_MAX_US);
        histogram.saturating_record(us);
    }

    /// Percentiles from `histogram` (3 significant digits, never above `max`) and the exact `max`.
    fn percentiles(histogram: &Histogram<u64>, max: Duration) -> Percentiles {
        if histogram.is_empty() {
            return Percentiles::default();
        }
        let max = max.as_micros() as f64 / 1000.0;
        let ms = |q: f64| (histogram.value_at_quantile(q) as f64 / 1000.0).min(max);
        Percentiles {
            p50: ms(0.5),
            p95: ms(0.95),
            p99: ms(0.99),
            max,
        }
    }
}

impl Actor for Aggregator {
    type Context = Context<Self>;
}

impl Handler<RoundReport> for Aggregator {
    type Result = ();

    fn handle(&mut self, mut report: RoundReport, _ctx: &mut Context<Self>) {
        self.rounds += 1;
        Self::record(&mut self.round_us, report.wall);
        self.round_max = self.round_max.max(report.wall);
        let round = report.round;
        let mut counts = ReadCounts::default();
        let mut found = 0u64;
        let round_time = Utc::now();
        let outputs = &mut self.outputs;
        let (sensors, analysis, anomalies) = (&*self.sensors, &self.analysis, &mut self.anomalies);
        let outcomes = report.outcomes.iter().flatten();
        for (index, (track, outcome)) in self.tracks.iter_mut().zip(outcomes).enumerate() {
            counts.requested += 1;
            let reading = match outcome {
                Outcome::Ok(r) => {
                    counts.ok += 1;
                    Self::record(&mut self.read_us, r.latency);
                    self.read_max = self.read_max.max(r.latency);
                    Some(r)
                }
                Outcome::Failed { .. } => {
                    counts.failed += 1;
                    None
                }
                Outcome::TimedOut => {
                    counts.timed_out += 1;
                    None
                }
                Outcome::Unavailable(_) => {
                    counts.unavailable += 1;
                    None
                }
            };
            let value = reading.map(|r| r.value);
            // Formatted only for a line that is written: most reads write none.
            let timestamp = || reading.map_or_else(|| rfc3339(&round_time), |r| rfc3339(&r.timestamp));
            if let (Some(r), Some(out)) = (reading, outputs.as_mut()) {
                let entry = sensors.entry(index);
                let line = ReadingLine {
                    round,
                    sensor: sensors.id(index),
                    kind: &entry.kind,
                    value: r.value,
                    unit: &entry.unit,
                    timestamp: timestamp(),
                    latency_ms: r.latency.as_micros() as f64 / 1000.0,
                    source_row: r.source_row(),
                    source_time: r.source_time(),
                };
                out.reading(&line);
            }
            let mut obs = Observation {
                round,
                value,
                window: &track.window,
                range: self.ranges[sensors.entry_index(index)],
                scratch: &mut self.scratch,
            };
            analysis.observe(&mut track.detectors, &mut obs, |kind, detail| {
                found += 1;
                track.anomalies += 1;
                *anomalies.entry(kind).or_default() += 1;
                let id = sensors.id(index);
                log::debug!("round {round}: {id} {}: {detail}", kind.as_str());
                if let Some(out) = outputs.as_mut() {
                    let line = AnomalyLine {
                        round,
                        sensor: id,
                        timestamp: timestamp(),
                        value,
                        detector: kind.as_str(),
                        detail,
                        source_row: reading.and_then(Reading::source_row),
                    };
                    out.anomaly(&line);
                }
            });
            if let Some(v) = value {
                track.stats.push(v);
                track.window.push(v);
                track.ewma.push(v, self.analysis.ewma_alpha);
                track.last = Some(v);
            }
        }
        if let Some(out) = self.outputs.as_mut() {
            out.flush();
        }
        if let Some(processed) = report.processed.take() {
            let mut batches = std::mem::take(&mut report.outcomes);
            batches.iter_mut().for_each(Vec::clear);
            let _ = processed.send(batches);
        }
        self.reads.requested += counts.requested;
        self.reads.ok += counts.ok;
        self.reads.failed += counts.failed;
        self.reads.timed_out += counts.timed_out;
        self.reads.unavailable += counts.unavailable;
        let process = self.process();
        log::info!(
            "round {round}: {} ok, {} failed, {} timed out, {} unavailable in {:.1} ms{}; {found} anomalies; rss {:.1} MiB, cpu {:.2} s",
            counts.ok,
            counts.failed,
            counts.timed_out,
            counts.unavailable,
            report.wall.as_secs_f64() * 1000.0,
            if report.skipped_before > 0 { format!(" ({} ticks skipped before)", report.skipped_before) } else { String::new() },
            process.peak_rss_bytes as f64 / (1024.0 * 1024.0),
            process.cpu_seconds,
        );
    }
}

impl Handler<SupervisionEvent> for Aggregator {
    type Result = ();

    fn handle(&mut self, event: SupervisionEvent, _ctx: &mut Context<Self>) {
        *self.events.entry(event.event).or_default() += 1;
        let line = EventLine {
            timestamp: rfc3339(&event.timestamp),
            sensor: &event.sensor,
            event: event.event.as_str(),
            cause: event.cause.as_deref(),
            delay_ms: event.delay.map(|d| d.as_millis() as u64),
            restarts: event.restarts,
        };
        if let Some(outputs) = self.outputs.as_mut() {
            outputs.event(&line);
        }
    }
}

impl Handler<SensorsStarted> for Aggregator {
    type Result = ();

    /// One `started` event per sensor, all with the group's time.
    fn handle(&mut self, started: SensorsStarted, _ctx: &mut Context<Self>) {
        *self.events.entry(EventKind::Started).or_default() += started.sensors.len() as u64;
        let Some(outputs) = self.outputs.as_mut() else { return };
        let timestamp = rfc3339(&started.timestamp);
        for &index in started.sensors.iter() {
            outputs.event(&EventLine {
                timestamp: timestamp.clone(),
                sensor: self.sensors.id(index),
                event: EventKind::Started.as_str(),
                cause: None,
                delay_ms: None,
                restarts: None,
            });
        }
    }
}

impl Handler<Finish> for Aggregator {
    type Result = MessageResult<Finish>;

    fn handle(&mut self, finish: Finish, _ctx: &mut Context<Self>) -> Self::Result {
        let sensors = self
            .tracks
            .iter()
            .zip(&finish.sensors)
            .enumerate()
            .map(|(index, (t, (state, restarts)))| SensorSummary {
                id: self.sensors.id(index).to_string(),
                kind: self.sensors.entry(index).kind.to_string(),
                unit: self.sensors.entry(index).unit.to_string(),
                state: state.as_str().to_string(),
                restarts: *restarts,
                count: t.stats.count(),
                min: t.stats.min(),
                max: t.stats.max(),
                mean: t.stats.mean(),
                stddev: t.stats.stddev(),
                ewma: t.ewma.value(),
                last: t.last,
                anomalies: t.anomalies,
            })
            .collect();
        let summary = Summary {
            rounds: self.rounds,
            skipped_rounds: finish.skipped_rounds,
            reads: self.reads,
            restarts: finish.sensors.iter().map(|(_, r)| u64::from(*r)).sum(),
            round_ms: Self::percentiles(&self.round_us, self.round_max),
            read_latency_ms: Self::percentiles(&self.read_us, self.read_max),
            anomalies: self
                .anomalies
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), *v))
                .collect(),
            events: self.events.iter().map(|(k, v)| (k.as_str().to_string(), *v)).collect(),
            seed: finish.seed,
            sensors,
            process: self.process(),
        };
        let output_error = self.outputs.as_mut().and_then(|outputs| outputs.finish(&summary).err());
        MessageResult(Finished { summary, output_error })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SensorSpec;
    use crate::driver::DriverSpec;
    use crate::messages::Absence;
    use crate::supervisor::SensorState;

    fn reading(value: f64) -> Outcome {
        Outcome::Ok(Reading {
            value,
            timestamp: Utc::now(),
            latency: Duration::from_millis(3),
            source: None,
        })
    }

    /// The report's batches come back emptied, their capacity kept, once every outcome in them
    /// is counted; the next report fills them again and is counted as exactly.
    #[actix_rt::test]
    async fn processed_reports_hand_back_their_emptied_batches() {
        let driver = DriverSpec::Simulated(Default::default());
        let specs = (1..=3)
            .map(|i| SensorSpec::new(&format!("t-{i}"), "temperature", driver.clone()))
            .collect();
        let aggregator = Aggregator::new(Arc::new(SensorTable::new(specs)), AnalysisConfig::default(), None).start();
        let mut first = Vec::with_capacity(16);
        first.extend([
            reading(21.0),
            Outcome::Failed {
                cause: "boom".into(),
                fatal: false,
            },
        ]);
        let mut batches = vec![first, vec![Outcome::TimedOut]];
        for round in 1..=2 {
            let (processed, emptied) = tokio::sync::oneshot::channel();
            aggregator.do_send(RoundReport {
                round,
                wall: Duration::from_millis(5),
                skipped_before: 0,
                outcomes: batches,
                processed: Some(processed),
            });
            batches = emptied.await.expect("the aggregator answers a processed report");
            assert_eq!(batches.len(), 2);
            assert!(batches.iter().all(Vec::is_empty));
            assert!(batches[0].capacity() >= 16, "{}", batches[0].capacity());
            batches[0].extend([reading(22.0), Outcome::Unavailable(Absence::Offline)]);
            batches[1].push(reading(23.0));
        }
        let finished = aggregator
            .send(Finish {
                seed: 1,
                skipped_rounds: 0,
                sensors: vec![(SensorState::Running, 0); 3],
            })
            .await
            .expect("the aggregator answers Finish");
        let reads = finished.summary.reads;
        assert_eq!(
            (
                reads.requested,
                reads.ok,
                reads.failed,
                reads.timed_out,
                reads.unavailable
            ),
            (6, 3, 1, 1, 1)
        );
        let counts: Vec<u64> = finished.summary.sensors.iter().map(|s| s.count).collect();
        assert_eq!(counts, [2, 0, 1]);
    }
}
