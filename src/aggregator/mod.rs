//! `Aggregator`: the actor that gathers every round's analysis and publishes the streams.
//!
//! It receives one [`RoundReport`] per round and every [`SupervisionEvent`] from the
//! supervisors, in the order they happened. The analysis itself runs in the arbiters' aggregators
//! ([`local`]: each keeps the tracks of its groups' members, on their arbiter): a report carries
//! one digest per group, with the
//! round's read counts, reading latencies and anomalies, plus the outcomes themselves when
//! someone subscribed to the readings. The aggregator counts every read into exactly one
//! outcome, records round and read latencies in fixed-size histograms, and publishes each
//! round to the subscribers (`publish.rs`): its readings, its anomalies in configuration order,
//! the journal since the last round and the round's summary. On [`Finish`] it delivers what
//! is left, builds the [`Summary`], publishes it as the last message and returns it.

pub(crate) mod local;
pub(crate) mod publish;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, ActorFutureExt, AsyncContext, Context, Handler, ResponseActFuture, WrapFuture};
use hdrhistogram::Histogram;
use tokio::sync::oneshot;

use crate::analysis::tracks::{Finding, RoundDigest, LATENCY_MAX_US};
use crate::clock;
use crate::config::SensorTable;
use crate::data::{EventKind, Outcome, SupervisionEvent};
use actix::Message;
use chrono::{DateTime, Utc};

use crate::report::{Finished, Percentiles, ProcessStats, ReadCounts, SensorList, SensorRow, Summary};
use crate::streams::{
    Anomalies, Anomaly, GroupReads, Journal, JournalBatch, JournalEntry, LatencyCounts, Readings, RoundOutcomes,
    RoundSummary, RunSummary, Settle,
};
use publish::{Listed, Offer, Outlets};

/// One finished round, sent by the supervisor to the aggregator.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct RoundReport {
    /// The round number, from 1.
    pub(crate) round: u64,
    /// Wall time of the round, from the first `Read` sent to the last outcome known.
    pub(crate) wall: Duration,
    /// Ticks skipped since the previous round because a round overran the interval.
    pub(crate) skipped_before: u64,
    /// What each group's analysis of the round found (counts, latencies, anomalies), in the
    /// root's group order.
    pub(crate) digests: Vec<RoundDigest>,
    /// Each digest's group: its name, and whether it is a shard of the ungrouped sensors.
    pub(crate) groups: Vec<(Arc<str>, bool)>,
    /// Only when readings are written (`readings.jsonl`), else empty: one outcome per sensor in
    /// configuration order, as consecutive batches: one per group when the groups hold
    /// consecutive sensors in order (the shards of the ungrouped sensors), so that no round's
    /// outcomes are copied into one vector; else a single batch.
    pub(crate) outcomes: Vec<Vec<Outcome>>,
    /// Answered once the aggregator has processed the report, with `outcomes` as they are (the
    /// groups overwrite them in place), or dropped. The supervisor waits for it before sending
    /// the next report, so at most one report waits in the aggregator's mailbox however far
    /// analysis falls behind collection, and hands the batches back to the groups for a later
    /// round: a run allocates its outcome vectors in its first two rounds only.
    pub(crate) processed: Option<tokio::sync::oneshot::Sender<Vec<Vec<Outcome>>>>,
}

/// A group's sensors all started (the journal's `started` events, one per sensor, sent as one
/// message: at start-up a group of N sensors would otherwise queue N events).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub(crate) struct SensorsStarted {
    /// Wall-clock time the group started them.
    pub(crate) timestamp: DateTime<Utc>,
    /// The sensors, as indices into the configuration's sensors.
    pub(crate) sensors: Arc<[usize]>,
}

/// Sensors were added while the run goes on: the grown table that names them, and their
/// journal entry (one `added` event each, with the round and who asked). Sent by the root
/// before anything about the new sensors can reach the aggregator.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct SensorsAdded {
    /// The run's sensors, the new ones included.
    pub(crate) table: Arc<SensorTable>,
    /// When they were added (the run's clock).
    pub(crate) timestamp: DateTime<Utc>,
    /// The round in flight, or the last one started.
    pub(crate) round: u64,
    /// The new sensors, as indices into `table`.
    pub(crate) sensors: Arc<[usize]>,
    /// Who asked, as the journal says it (`requested by <who>`).
    pub(crate) cause: Arc<str>,
}

/// Asks the aggregator for the final summary and to flush every output.
#[derive(Debug, Clone, Message)]
#[rtype(result = "crate::report::Finished")]
pub(crate) struct Finish {
    /// The run's seed.
    pub(crate) seed: u64,
    /// Ticks skipped over the run.
    pub(crate) skipped_rounds: u64,
    /// Per sensor, at its index: its final supervision state, restart count and analysis
    /// results (from its group).
    pub(crate) sensors: Vec<SensorRow>,
    /// The groups as the run ended.
    pub(crate) groups: Vec<crate::report::GroupSummary>,
    /// The drivers' own counts ([`DriverRegistry::counts`](crate::driver::DriverRegistry)).
    pub(crate) drivers: BTreeMap<String, BTreeMap<String, u64>>,
}

/// Latencies above this (one hour) are recorded as this in the histograms.
const HISTOGRAM_MAX_US: u64 = LATENCY_MAX_US as u64;

/// Journal entries kept before they are published without waiting for the round's end (a
/// burst of restarts between two rounds).
const JOURNAL_BATCH: usize = 4096;

/// On a virtual clock, how long (in real time) a measurement of the process serves the round
/// summaries: thousands of rounds pass in a second there, and measuring (`getrusage` and
/// `/proc/self/status`) was a twentieth of such a run's CPU time.
/// The log target of the anomalies' debug lines (one per anomaly, with its detail): while it
/// is on, the analysis lists every anomaly found even with no subscriber to them.
pub(crate) const ANOMALY_LOG: &str = "sensor_actors::aggregator";

const VIRTUAL_MEASURE_EVERY: Duration = Duration::from_secs(1);

/// The supervisor's wait for a report to be processed, and the report's outcomes (when they
/// were published).
type Processed = (oneshot::Sender<Vec<Vec<Outcome>>>, Batches);

/// A report's outcome vectors, to hand back to the groups once nobody reads them.
enum Batches {
    /// Not published: the aggregator holds them.
    Owned(Vec<Vec<Outcome>>),
    /// Published: back only if no subscriber still holds them.
    Shared(Arc<RoundOutcomes>),
}

/// The root aggregator actor.
pub(crate) struct Aggregator {
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
    anomalies: BTreeMap<String, u64>,
    events: BTreeMap<EventKind, u64>,
    /// The subscribers and their queues.
    outlets: Outlets,
    /// Journal entries since the last publication, and how many events they hold.
    journal: Vec<JournalEntry>,
    journal_len: u64,
    /// The supervisor's wait for the last report: answered (with the report's outcome vectors
    /// when no subscriber holds them any more) once every lossless subscriber has caught up.
    processed: Option<Processed>,
    /// Waiting for every subscriber to be idle (the end of the run).
    drained: Vec<oneshot::Sender<()>>,
    /// Wall-clock start of the run, for `process.wall_seconds`.
    started: std::time::Instant,
    /// CPU time used before the run started (by a launcher that exec'd this process, or by
    /// earlier runs in the same process), subtracted from `process.cpu_seconds`.
    cpu_before: f64,
    /// On a virtual clock, the last measurement of the process and when it was made (see
    /// [`VIRTUAL_MEASURE_EVERY`]).
    measured: Option<(std::time::Instant, ProcessStats)>,
}

impl Aggregator {
    /// An aggregator for `sensors`, publishing to `outlets`.
    pub(crate) fn new(sensors: Arc<SensorTable>, outlets: Outlets) -> Self {
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
            outlets,
            journal: Vec::new(),
            journal_len: 0,
            processed: None,
            drained: Vec::new(),
            started: std::time::Instant::now(),
            cpu_before: ProcessStats::measure().cpu_seconds,
            measured: None,
        }
    }

    /// The process figures of a round summary: measured now, or on a virtual clock as measured
    /// at most [`VIRTUAL_MEASURE_EVERY`] ago (with the wall time of now).
    fn round_process(&mut self) -> ProcessStats {
        if !clock::is_virtual() {
            return self.process();
        }
        let now = std::time::Instant::now();
        let fresh = |&(at, _): &(std::time::Instant, ProcessStats)| now.duration_since(at) < VIRTUAL_MEASURE_EVERY;
        let stats = match self.measured.filter(fresh) {
            Some((_, stats)) => stats,
            None => self.measured.insert((now, self.process())).1,
        };
        ProcessStats {
            wall_seconds: self.started.elapsed().as_secs_f64(),
            ..stats
        }
    }

    fn process(&self) -> ProcessStats {
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

    /// Adds `count` anomalies found by `detector` to the run's counts.
    fn count_anomalies(&mut self, detector: &str, count: u64) {
        match self.anomalies.get_mut(detector) {
            Some(total) => *total += count,
            None => drop(self.anomalies.insert(detector.to_string(), count)),
        }
    }

    /// Counts one round's anomalies and, when someone subscribed to them, turns them into the
    /// published list: in configuration order (the groups find them in the order their members'
    /// answers arrive), and per sensor in the detectors' order.
    fn anomalies(&mut self, round: u64, mut findings: Vec<Finding>) -> Option<Arc<[Anomaly]>> {
        for f in &findings {
            self.count_anomalies(&f.detector, 1);
        }
        let listed = !self.outlets.anomalies.is_empty();
        if !listed && !log::log_enabled!(target: ANOMALY_LOG, log::Level::Debug) {
            return None;
        }
        findings.sort_by_key(|f| f.sensor);
        let list = findings
            .into_iter()
            .map(|f| {
                let (sensor, detector) = (self.sensors.id(f.sensor), f.detector);
                log::debug!(target: ANOMALY_LOG, "round {round}: {sensor} {detector}: {}", f.detail);
                Anomaly {
                    round,
                    sensor,
                    index: f.sensor,
                    detector,
                    detail: f.detail,
                    value: f.value,
                    timestamp: f.timestamp,
                    source_row: f.source_row,
                }
            })
            .collect();
        listed.then_some(list)
    }

    /// Offers `message` to every subscriber of its stream.
    fn publish<M: Listed>(&mut self, message: M, ctx: &mut Context<Self>) {
        let count = M::list(&mut self.outlets).len();
        for k in 0..count {
            let offer = M::list(&mut self.outlets)[k].offer(message.clone());
            if let Offer::Send(message) = offer {
                self.send(k, message, ctx);
            }
        }
    }

    /// Sends `message` to subscriber `k` of its stream and, once handled, the next one queued.
    fn send<M: Listed>(&mut self, k: usize, message: M, ctx: &mut Context<Self>) {
        let items = message.items();
        let request = M::list(&mut self.outlets)[k].recipient().send(message);
        ctx.spawn(request.into_actor(self).map(move |result, act, ctx| {
            let next = M::list(&mut act.outlets)[k].settled(items, result.is_ok());
            match next {
                Some(message) => act.send(k, message, ctx),
                None => act.caught_up(),
            }
        }));
    }

    /// A subscriber went idle: answer whoever waits for the lossless ones, or for all.
    fn caught_up(&mut self) {
        if self.processed.is_some() && self.outlets.idle(false) {
            if let Some((processed, outcomes)) = self.processed.take() {
                // The vectors come back to the groups unless a subscriber still holds them.
                let batches = match outcomes {
                    Batches::Owned(batches) => batches,
                    Batches::Shared(shared) => Arc::try_unwrap(shared).map(|o| o.batches).unwrap_or_default(),
                };
                // As they are: the groups overwrite them in place.
                let _ = processed.send(batches);
            }
        }
        if !self.drained.is_empty() && self.outlets.idle(true) {
            for waiter in self.drained.drain(..) {
                let _ = waiter.send(());
            }
        }
    }

    /// Publishes the journal entries kept so far, if any.
    fn publish_journal(&mut self, ctx: &mut Context<Self>) {
        if self.journal.is_empty() {
            return;
        }
        let batch = JournalBatch {
            sensors: self.sensors.clone(),
            entries: std::mem::take(&mut self.journal),
            len: std::mem::take(&mut self.journal_len),
        };
        if !self.outlets.journal.is_empty() {
            self.publish(Journal::new(batch), ctx);
        }
    }

    fn journal(&mut self, entry: JournalEntry, events: u64, ctx: &mut Context<Self>) {
        if self.outlets.journal.is_empty() {
            return;
        }
        self.journal.push(entry);
        self.journal_len += events;
        if self.journal.len() >= JOURNAL_BATCH {
            self.publish_journal(ctx);
        }
    }

    /// Resolves once every subscriber is idle.
    fn until_drained(&mut self) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        self.drained.push(tx);
        self.caught_up();
        rx
    }
}

impl Actor for Aggregator {
    type Context = Context<Self>;
}

impl Handler<RoundReport> for Aggregator {
    type Result = ();

    fn handle(&mut self, mut report: RoundReport, ctx: &mut Context<Self>) {
        self.rounds += 1;
        Self::record(&mut self.round_us, report.wall);
        self.round_max = self.round_max.max(report.wall);
        let round = report.round;
        let mut counts = ReadCounts::default();
        let mut findings = Vec::new();
        // Anomalies counted by the analysis, not listed (nobody reads them).
        let mut unlisted = 0;
        // The round's latencies by bucket, for its summary's followers.
        let follow = !self.outlets.rounds.is_empty();
        let mut latency = LatencyCounts::default();
        for digest in &mut report.digests {
            counts.add(&digest.reads);
            for &us in &digest.latencies_us {
                self.read_us.saturating_record(u64::from(us));
            }
            if follow {
                for &us in &digest.latencies_us {
                    latency.observe(u64::from(us));
                }
            }
            self.read_max = self.read_max.max(digest.read_max);
            findings.append(&mut digest.findings);
            for (detector, count) in digest.counted.drain(..) {
                self.count_anomalies(&detector, count);
                unlisted += count;
            }
        }
        self.reads.add(&counts);
        let found = findings.len() as u64 + unlisted;
        let anomalies = self.anomalies(round, findings);
        // The round's streams, in order: readings, anomalies, the journal, the summary.
        let outcomes = (!self.outlets.readings.is_empty()).then(|| {
            Arc::new(RoundOutcomes {
                sensors: self.sensors.clone(),
                batches: std::mem::take(&mut report.outcomes),
                ok: counts.ok,
            })
        });
        if let Some(outcomes) = &outcomes {
            self.publish(Readings::new(round, outcomes.clone()), ctx);
        }
        if let Some(list) = anomalies {
            self.publish(Anomalies { round, list }, ctx);
        }
        self.publish_journal(ctx);
        if !self.outlets.rounds.is_empty() {
            let summary = RoundSummary {
                round,
                wall: report.wall,
                skipped_before: report.skipped_before,
                reads: counts,
                anomalies: found,
                process: self.round_process(),
                subscribers_missed: self.outlets.missed(),
                read_latency: latency,
                groups: (report.digests.iter().zip(&report.groups))
                    .map(|(digest, (group, shard))| GroupReads {
                        group: group.clone(),
                        shard: *shard,
                        reads: digest.reads,
                    })
                    .collect(),
            };
            self.publish(summary, ctx);
        }
        if let Some(processed) = report.processed.take() {
            let batches = match outcomes {
                Some(shared) => Batches::Shared(shared),
                None => Batches::Owned(std::mem::take(&mut report.outcomes)),
            };
            self.processed = Some((processed, batches));
            self.caught_up();
        }
    }
}

impl Handler<SupervisionEvent> for Aggregator {
    type Result = ();

    fn handle(&mut self, event: SupervisionEvent, ctx: &mut Context<Self>) {
        *self.events.entry(event.event).or_default() += 1;
        self.journal(JournalEntry::Event(event), 1, ctx);
    }
}

impl Handler<SensorsStarted> for Aggregator {
    type Result = ();

    /// One `started` event per sensor, all with the group's time.
    fn handle(&mut self, started: SensorsStarted, ctx: &mut Context<Self>) {
        let n = started.sensors.len() as u64;
        // A group that starts with no member (one created for sensors added while running).
        if n == 0 {
            return;
        }
        *self.events.entry(EventKind::Started).or_default() += n;
        self.journal(JournalEntry::Started(started.timestamp, started.sensors), n, ctx);
        // The run's first start goes out at once: its subscribers take a large tree's lines
        // while the other groups start and round 1 is read, not after round 1, while round 2
        // is (a million `started` lines held up round 2 by a tenth of a second).
        if self.rounds == 0 {
            self.publish_journal(ctx);
        }
    }
}

impl Handler<SensorsAdded> for Aggregator {
    type Result = ();

    fn handle(&mut self, added: SensorsAdded, ctx: &mut Context<Self>) {
        self.sensors = added.table;
        let n = added.sensors.len() as u64;
        *self.events.entry(EventKind::Added).or_default() += n;
        let entry = JournalEntry::Added {
            at: added.timestamp,
            round: added.round,
            cause: added.cause,
            sensors: added.sensors,
        };
        self.journal(entry, n, ctx);
    }
}

impl Handler<Finish> for Aggregator {
    type Result = ResponseActFuture<Self, Finished>;

    /// Delivers what is left, then the summary as the last message of every subscriber.
    fn handle(&mut self, finish: Finish, ctx: &mut Context<Self>) -> Self::Result {
        self.publish_journal(ctx);
        let delivered = self.until_drained();
        Box::pin(
            async move {
                let _ = delivered.await;
            }
            .into_actor(self)
            .then(|(), act, ctx| {
                // Whatever was journaled while the subscribers caught up reaches them before
                // the outputs settle.
                act.publish_journal(ctx);
                let delivered = act.until_drained();
                let outputs = act.outlets.settle.clone();
                async move {
                    let _ = delivered.await;
                    // The outputs settle (each within its own bound) and report, together.
                    let reports = futures::future::join_all(outputs.iter().map(|o| o.send(Settle))).await;
                    reports.into_iter().filter_map(Result::ok).collect::<Vec<_>>()
                }
                .into_actor(act)
            })
            .then(move |outputs, act, ctx| {
                // Whatever was journaled meanwhile goes out before the summary that counts it.
                act.publish_journal(ctx);
                let mut summary = act.summary(finish);
                summary.outputs = outputs;
                let summary = Arc::new(summary);
                act.publish(
                    RunSummary {
                        summary: summary.clone(),
                    },
                    ctx,
                );
                let delivered = act.until_drained();
                async move {
                    let _ = delivered.await;
                    Finished {
                        summary: Arc::unwrap_or_clone(summary),
                        failure: None,
                    }
                }
                .into_actor(act)
            }),
        )
    }
}

impl Aggregator {
    /// The run's summary.
    fn summary(&self, finish: Finish) -> Summary {
        let virtual_clock = clock::virtual_start();
        Summary {
            rounds: self.rounds,
            skipped_rounds: finish.skipped_rounds,
            reads: self.reads,
            restarts: finish.sensors.iter().map(|row| u64::from(row.restarts)).sum(),
            round_ms: Self::percentiles(&self.round_us, self.round_max),
            read_latency_ms: Self::percentiles(&self.read_us, self.read_max),
            anomalies: self.anomalies.clone(),
            events: self.events.iter().map(|(k, v)| (k.as_str().to_string(), *v)).collect(),
            seed: finish.seed,
            sensors: SensorList::of_run(self.sensors.clone(), finish.sensors),
            groups: finish.groups,
            subscribers: self.outlets.stats(),
            drivers: finish.drivers,
            outputs: Vec::new(),
            process: match virtual_clock {
                Some(start) => ProcessStats {
                    wall_seconds: (clock::now() - start).as_seconds_f64(),
                    ..ProcessStats::default()
                },
                None => self.process(),
            },
            virtual_clock,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::tracks::RoundDigest;
    use crate::config::SensorSpec;
    use crate::data::Reading;
    use crate::data::SensorState;
    use crate::driver::{simulated, DriverSpec};
    use crate::report::SensorRow;

    /// A reading of `value` (at a fixed time: two of one value are equal).
    pub(super) fn reading(value: f64) -> Outcome {
        Outcome::Ok(Reading {
            value,
            timestamp: chrono::DateTime::from_timestamp(1_764_670_000, 0).unwrap(),
            latency: Duration::from_millis(3),
            source: None,
        })
    }

    /// The table of `n` simulated temperature sensors, `t-1` to `t-n`.
    pub(super) fn table(n: usize) -> Arc<SensorTable> {
        let driver: Arc<dyn DriverSpec> = Arc::new(simulated::Spec::new(Default::default()));
        let specs = (1..=n)
            .map(|i| SensorSpec::new(&format!("t-{i}"), "temperature", driver.clone()))
            .collect();
        Arc::new(SensorTable::new(specs))
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
            counted: Vec::new(),
        }
    }

    /// The groups' digests add up to the run's accounting and latency percentiles; a report's
    /// outcome batches come back as they were, for the groups to overwrite.
    #[actix_rt::test]
    async fn digests_add_up_and_batches_come_back() {
        let aggregator = Aggregator::new(table(3), Outlets::default()).start();
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
                groups: vec![("shard-1".into(), true), ("shard-2".into(), true)],
                outcomes: batches,
                processed: Some(processed),
            });
            batches = emptied.await.expect("the aggregator answers a processed report");
            assert_eq!(batches.len(), 2);
            let values = |batch: &[Outcome]| -> Vec<f64> {
                batch
                    .iter()
                    .map(|o| match o {
                        Outcome::Ok(r) => r.value,
                        _ => f64::NAN,
                    })
                    .collect()
            };
            assert_eq!(values(&batches[0]), [21.0, 22.0]);
            assert_eq!(values(&batches[1]), [23.0]);
            assert!(batches[0].capacity() >= 16, "{}", batches[0].capacity());
        }
        let finished = aggregator
            .send(Finish {
                seed: 1,
                skipped_rounds: 0,
                sensors: vec![
                    SensorRow {
                        state: SensorState::Running,
                        ..SensorRow::default()
                    };
                    3
                ],
                groups: Vec::new(),
                drivers: BTreeMap::new(),
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
