//! `Aggregator`: the actor that gathers every round's analysis and writes the outputs.
//!
//! It receives one [`RoundReport`] per round and every [`SupervisionEvent`] from the
//! supervisors, in the order they happened. The analysis itself runs in the groups (each keeps an
//! [`AnalysisShard`](crate::analysis::shard::AnalysisShard) of its members, on its own arbiter):
//! a report carries one [`RoundDigest`](crate::analysis::shard::RoundDigest) per group, with the
//! round's read counts, reading latencies and anomalies, plus the outcomes themselves when
//! readings are written. The aggregator counts every read into exactly one outcome, records round
//! and read latencies in fixed-size histograms, writes the anomalies in configuration order, logs
//! one line per round and, on [`Finish`], returns the [`Summary`] and writes `summary.json`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Context, Handler, MessageResult};
use hdrhistogram::Histogram;

use crate::analysis::shard::{Finding, LATENCY_MAX_US};
use crate::analysis::DetectorKind;
use crate::config::SensorTable;
use crate::messages::{EventKind, Finish, Outcome, RoundReport, SensorsStarted, SupervisionEvent};
use crate::report::{
    rfc3339, AnomalyLine, EventLine, Finished, Outputs, Percentiles, ProcessStats, ReadCounts, ReadingLine,
    SensorSummary, Summary,
};

/// Latencies above this (one hour) are recorded as this in the histograms.
const HISTOGRAM_MAX_US: u64 = LATENCY_MAX_US as u64;

/// The output actor.
pub struct Aggregator {
    /// Every sensor's id, kind and unit, shared with the supervisors.
    sensors: Arc<SensorTable>,
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
}

impl Aggregator {
    /// An aggregator for `sensors`, writing to `outputs` when given.
    pub fn new(sensors: Arc<SensorTable>, outputs: Option<Outputs>) -> Self {
        let histogram =
            || Histogram::new_with_bounds(1, HISTOGRAM_MAX_US, 3).expect("static histogram bounds are valid");
        Aggregator {
            sensors,
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

    /// Writes one round's readings, in configuration order.
    fn write_readings(&mut self, round: u64, outcomes: &[Vec<Outcome>]) {
        let Some(out) = self.outputs.as_mut() else { return };
        let sensors = &*self.sensors;
        for (index, outcome) in outcomes.iter().flatten().enumerate() {
            let Outcome::Ok(r) = outcome else { continue };
            let entry = sensors.entry(index);
            out.reading(&ReadingLine {
                round,
                sensor: &sensors.id(index),
                kind: &entry.kind,
                value: r.value,
                unit: &entry.unit,
                timestamp: rfc3339(&r.timestamp),
                latency_ms: r.latency.as_micros() as f64 / 1000.0,
                source_row: r.source_row(),
                source_time: r.source_time(),
            });
        }
    }

    /// Counts, logs and writes one round's anomalies: in configuration order (the groups find
    /// them in the order their members' answers arrive), and per sensor in the detectors' order.
    fn write_findings(&mut self, round: u64, mut findings: Vec<Finding>) {
        findings.sort_by_key(|f| f.sensor);
        for f in findings {
            *self.anomalies.entry(f.detector).or_default() += 1;
            let id = self.sensors.id(f.sensor);
            log::debug!("round {round}: {id} {}: {}", f.detector.as_str(), f.detail);
            if let Some(out) = self.outputs.as_mut() {
                out.anomaly(&AnomalyLine {
                    round,
                    sensor: &id,
                    timestamp: rfc3339(&f.timestamp),
                    value: f.value,
                    detector: f.detector.as_str(),
                    detail: f.detail,
                    source_row: f.source_row,
                });
            }
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
        let mut findings = Vec::new();
        for digest in &mut report.digests {
            counts.requested += digest.reads.requested;
            counts.ok += digest.reads.ok;
            counts.failed += digest.reads.failed;
            counts.timed_out += digest.reads.timed_out;
            counts.unavailable += digest.reads.unavailable;
            for &us in &digest.latencies_us {
                self.read_us.saturating_record(u64::from(us));
            }
            self.read_max = self.read_max.max(digest.read_max);
            findings.append(&mut digest.findings);
        }
        let found = findings.len();
        self.write_readings(round, &report.outcomes);
        self.write_findings(round, findings);
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
                sensor: &self.sensors.id(index),
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
        let sensors = finish
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
                count: t.count,
                min: t.min,
                max: t.max,
                mean: t.mean,
                stddev: t.stddev,
                ewma: t.ewma,
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
    use crate::analysis::shard::{RoundDigest, TrackSummary};
    use crate::config::SensorSpec;
    use crate::driver::DriverSpec;
    use crate::messages::Reading;
    use crate::supervisor::SensorState;
    use chrono::Utc;

    fn reading(value: f64) -> Outcome {
        Outcome::Ok(Reading {
            value,
            timestamp: Utc::now(),
            latency: Duration::from_millis(3),
            source: None,
        })
    }

    fn digest(ok: u64, failed: u64, latencies_us: &[u32]) -> RoundDigest {
        RoundDigest {
            reads: ReadCounts {
                requested: ok + failed,
                ok,
                failed,
                ..ReadCounts::default()
            },
            latencies_us: latencies_us.to_vec(),
            read_max: Duration::from_micros(latencies_us.iter().copied().max().unwrap_or(0).into()),
            findings: Vec::new(),
        }
    }

    /// The groups' digests add up to the run's accounting and latency percentiles; a report's
    /// outcome batches come back emptied, their capacity kept, for the groups to fill again.
    #[actix_rt::test]
    async fn digests_add_up_and_batches_come_back_emptied() {
        let driver = DriverSpec::Simulated(Default::default());
        let specs = (1..=3)
            .map(|i| SensorSpec::new(&format!("t-{i}"), "temperature", driver.clone()))
            .collect();
        let aggregator = Aggregator::new(Arc::new(SensorTable::new(specs)), None).start();
        let mut first = Vec::with_capacity(16);
        first.extend([reading(21.0), reading(22.0)]);
        let mut batches = vec![first, vec![reading(23.0)]];
        for round in 1..=2 {
            let (processed, emptied) = tokio::sync::oneshot::channel();
            aggregator.do_send(RoundReport {
                round,
                wall: Duration::from_millis(5),
                skipped_before: 0,
                digests: vec![digest(2, 0, &[1_000, 3_000]), digest(0, 1, &[])],
                outcomes: batches,
                processed: Some(processed),
            });
            batches = emptied.await.expect("the aggregator answers a processed report");
            assert_eq!(batches.len(), 2);
            assert!(batches.iter().all(Vec::is_empty));
            assert!(batches[0].capacity() >= 16, "{}", batches[0].capacity());
        }
        let finished = aggregator
            .send(Finish {
                seed: 1,
                skipped_rounds: 0,
                sensors: vec![(SensorState::Running, 0); 3],
                tracks: vec![TrackSummary::default(); 3],
            })
            .await
            .expect("the aggregator answers Finish");
        let summary = finished.summary;
        let reads = summary.reads;
        assert_eq!(
            (
                reads.requested,
                reads.ok,
                reads.failed,
                reads.timed_out,
                reads.unavailable
            ),
            (6, 4, 2, 0, 0)
        );
        assert_eq!(summary.rounds, 2);
        assert_eq!(summary.read_latency_ms.max, 3.0);
        assert_eq!(summary.read_latency_ms.p50, 1.0);
    }
}
