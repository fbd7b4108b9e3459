//! The pipeline's streams, as any actor receives them: each round's [`Readings`], its
//! [`Anomalies`], the supervision journal ([`Journal`]), one [`RoundSummary`] per round, and the
//! run's final [`RunSummary`].
//!
//! A subscriber is any actix actor that handles the stream's message, attached with
//! [`Collector::subscribe`](crate::Collector::subscribe) as a `Recipient<M>`. A round's data is
//! built once and shared behind an `Arc` by every subscriber: ten subscribers of the readings
//! cost ten messages, not ten copies of the round.
//!
//! Delivery is ordered, one message in flight per subscriber, and bounded by a [`Delivery`]
//! policy: a [`Delivery::bounded`] subscriber (the default) has a queue of at most `capacity`
//! messages, and what arrives while it is full is dropped and counted (the summary's
//! `subscribers` list: messages and items delivered and missed); a [`Delivery::lossless`]
//! subscriber (a sink, such as the JSONL files) misses nothing: the aggregator holds back the
//! report of the next round until it has caught up, which bounds its queue to about one round;
//! one that cannot keep up with the schedule therefore slows the rounds down (the ticks it
//! costs are skipped and counted, the grid stays drift-free), as a slow disk always did. Use a
//! bounded delivery for anything that must never hold collection back.
//! A subscriber whose actor has stopped misses what is left, counted the same way.

use std::sync::Arc;
use std::time::Duration;

use actix::Message;
use chrono::{DateTime, Utc};

use crate::config::SensorTable;
use crate::data::{EventKind, Outcome, Reading, SupervisionEvent};
use crate::report::{ProcessStats, ReadCounts, Summary};

/// Default queue of a bounded subscriber, in messages (a round is at most four messages).
pub const DEFAULT_CAPACITY: usize = 64;

/// How a subscriber's messages are delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Delivery {
    /// The name under which the subscriber's counts appear in the summary; by default the
    /// stream's name and the subscriber's position (`anomalies#1`).
    pub name: Option<String>,
    /// At most this many messages wait for the subscriber; `None` for a lossless sink.
    pub capacity: Option<usize>,
}

impl Delivery {
    /// At most `capacity` messages wait; more are dropped and counted.
    ///
    /// ```
    /// use sensor_actors::streams::Delivery;
    /// let d = Delivery::bounded(16).named("alerts");
    /// assert_eq!(d.capacity, Some(16));
    /// ```
    pub fn bounded(capacity: usize) -> Self {
        Delivery {
            name: None,
            capacity: Some(capacity.max(1)),
        }
    }

    /// Nothing is dropped: the run waits for the subscriber (about one round of backlog at most).
    pub fn lossless() -> Self {
        Delivery {
            name: None,
            capacity: None,
        }
    }

    /// Names the subscriber in the summary.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

impl Default for Delivery {
    /// Bounded, [`DEFAULT_CAPACITY`] messages.
    fn default() -> Self {
        Delivery::bounded(DEFAULT_CAPACITY)
    }
}

/// A stream a subscriber can attach to. Implemented by the five stream messages only.
pub trait Stream: Message<Result = ()> + Clone + Send + Unpin + 'static + sealed::Sealed {
    /// The stream's name, as in the summary (`readings`, `anomalies`, `journal`, `rounds`, `end`).
    const NAME: &'static str;
    /// The items a message carries (readings, anomalies or events; 1 for a round or run summary):
    /// what a subscriber that misses the message misses.
    fn items(&self) -> u64;
}

pub(crate) mod sealed {
    pub trait Sealed {}
}

/// One round's successful readings, in configuration order, shared by every subscriber.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Readings {
    round: u64,
    batch: Arc<RoundOutcomes>,
}

/// The outcomes of one round, as the groups settled them, with the table that names their
/// sensors: the readings are read out of it, never copied.
#[derive(Debug)]
pub(crate) struct RoundOutcomes {
    pub(crate) sensors: Arc<SensorTable>,
    /// One outcome per sensor in configuration order, as consecutive batches.
    pub(crate) batches: Vec<Vec<Outcome>>,
    /// How many are readings.
    pub(crate) ok: u64,
}

/// One reading of a [`Readings`] message.
#[derive(Debug, Clone, Copy)]
pub struct ReadingRecord<'a> {
    /// The sensor's position in the configuration.
    pub index: usize,
    /// The sensor's kind.
    pub kind: &'a str,
    /// The unit of the value.
    pub unit: &'a str,
    /// The reading: value, timestamp, latency and, for replayed data, its source.
    pub reading: &'a Reading,
    sensors: &'a SensorTable,
}

impl ReadingRecord<'_> {
    /// The sensor's id (made on demand: the ids of a `count` entry are not stored).
    pub fn sensor(&self) -> Arc<str> {
        self.sensors.id(self.index)
    }

    /// Writes the sensor's id at the end of `out`: [`sensor`](Self::sensor) without an
    /// allocation, for a subscriber that formats every reading (clear a buffer, write, use).
    pub fn write_sensor(&self, out: &mut String) {
        self.sensors.write_id(self.index, out);
    }

    /// [`write_sensor`](Self::write_sensor) as the bytes of a line being formatted.
    pub(crate) fn write_sensor_bytes(&self, out: &mut Vec<u8>) {
        self.sensors.write_id_bytes(self.index, out);
    }
}

impl Readings {
    pub(crate) fn new(round: u64, batch: Arc<RoundOutcomes>) -> Self {
        Readings { round, batch }
    }

    /// The round, from 1.
    pub fn round(&self) -> u64 {
        self.round
    }

    /// How many readings the round got.
    pub fn len(&self) -> usize {
        self.batch.ok as usize
    }

    /// Whether the round got no reading.
    pub fn is_empty(&self) -> bool {
        self.batch.ok == 0
    }

    /// The readings, in configuration order.
    ///
    /// ```no_run
    /// # fn demo(readings: &sensor_actors::streams::Readings) {
    /// for r in readings.iter() {
    ///     println!("{} {} {}", r.sensor(), r.reading.value, r.unit);
    /// }
    /// # }
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = ReadingRecord<'_>> + '_ {
        let sensors = &*self.batch.sensors;
        self.batch
            .batches
            .iter()
            .flatten()
            .enumerate()
            .filter_map(move |(index, outcome)| match outcome {
                Outcome::Ok(reading) => {
                    let entry = sensors.entry(index);
                    Some(ReadingRecord {
                        index,
                        kind: &entry.kind,
                        unit: &entry.unit,
                        reading,
                        sensors,
                    })
                }
                _ => None,
            })
    }
}

impl sealed::Sealed for Readings {}
impl Stream for Readings {
    const NAME: &'static str = "readings";
    fn items(&self) -> u64 {
        self.batch.ok
    }
}

/// One anomaly a detector found.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Anomaly {
    /// The round.
    pub round: u64,
    /// The sensor's id.
    pub sensor: Arc<str>,
    /// The sensor's position in the configuration.
    pub index: usize,
    /// The detector's name (`out_of_range`, `spike`, ..., or a registered one).
    pub detector: Arc<str>,
    /// What it found.
    pub detail: String,
    /// The value judged; `None` when the round got no reading (`stale`).
    pub value: Option<f64>,
    /// The reading's time, or the observation's when there was no reading.
    pub timestamp: DateTime<Utc>,
    /// Replayed data: the 1-based data row of the source file.
    pub source_row: Option<u64>,
}

/// One round's anomalies, in configuration order (per sensor in the detectors' order), shared
/// by every subscriber. Sent for every round, empty or not.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
#[non_exhaustive]
pub struct Anomalies {
    /// The round.
    pub round: u64,
    /// The anomalies.
    pub list: Arc<[Anomaly]>,
}

impl sealed::Sealed for Anomalies {}
impl Stream for Anomalies {
    const NAME: &'static str = "anomalies";
    fn items(&self) -> u64 {
        self.list.len() as u64
    }
}

/// Supervision events in the order they happened, shared by every subscriber: sent after each
/// round with the events since the previous one, sooner when many are waiting, and at the end
/// of the run; the run's first start is sent as soon as each group reports it, before round 1's
/// readings.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Journal {
    batch: Arc<JournalBatch>,
}

/// The events of one [`Journal`] message: the first starts of whole groups are kept as the
/// group's sensor list and expanded into events only as a subscriber reads them.
#[derive(Debug)]
pub(crate) struct JournalBatch {
    pub(crate) sensors: Arc<SensorTable>,
    pub(crate) entries: Vec<JournalEntry>,
    pub(crate) len: u64,
}

#[derive(Debug)]
pub(crate) enum JournalEntry {
    /// One event.
    Event(SupervisionEvent),
    /// `started` for each of these sensors (configuration indices), at the same time.
    Started(DateTime<Utc>, Arc<[usize]>),
    /// `added` for each of these sensors, added while running at the same time.
    Added {
        at: DateTime<Utc>,
        round: u64,
        /// The journal's cause: who asked.
        cause: Arc<str>,
        sensors: Arc<[usize]>,
    },
}

impl Journal {
    pub(crate) fn new(batch: JournalBatch) -> Self {
        Journal { batch: Arc::new(batch) }
    }

    /// How many events.
    pub fn len(&self) -> usize {
        self.batch.len as usize
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.batch.len == 0
    }

    /// The events, in the order they happened.
    pub fn iter(&self) -> impl Iterator<Item = SupervisionEvent> + '_ {
        let sensors = &*self.batch.sensors;
        self.batch.entries.iter().flat_map(move |entry| entry.events(sensors))
    }

    /// The events in the order they happened, a first start of many sensors as one part (the
    /// files writer writes its lines without making an event for each).
    pub(crate) fn parts(&self) -> impl Iterator<Item = JournalPart<'_>> + '_ {
        let sensors = &*self.batch.sensors;
        self.batch.entries.iter().map(move |entry| match entry {
            JournalEntry::Started(at, list) => JournalPart::Started {
                at: *at,
                sensors: list,
                table: sensors,
            },
            _ => JournalPart::Events(entry.events(sensors)),
        })
    }
}

/// A part of a [`Journal`] ([`Journal::parts`]).
pub(crate) enum JournalPart<'a> {
    /// `started` for each of `sensors`, at `at`, as [`Journal::iter`] has them: round 0, the
    /// sensor's id and its group.
    Started {
        at: DateTime<Utc>,
        sensors: &'a [usize],
        table: &'a SensorTable,
    },
    /// Any other events.
    Events(Box<dyn Iterator<Item = SupervisionEvent> + 'a>),
}

impl JournalEntry {
    /// Its events, with the sensors named by `sensors`.
    fn events<'a>(&'a self, sensors: &'a SensorTable) -> Box<dyn Iterator<Item = SupervisionEvent> + 'a> {
        match self {
            JournalEntry::Event(event) => Box::new(std::iter::once(event.clone())),
            JournalEntry::Started(at, list) => Box::new(list.iter().map(move |&index| SupervisionEvent {
                timestamp: *at,
                round: 0,
                sensor: Some(sensors.id(index)),
                group: sensors.entry(index).group.clone(),
                output: None,
                event: EventKind::Started,
                cause: None,
                delay: None,
                restarts: None,
                backoff: None,
            })),
            JournalEntry::Added {
                at,
                round,
                cause,
                sensors: list,
            } => Box::new(list.iter().map(move |&index| SupervisionEvent {
                timestamp: *at,
                round: *round,
                sensor: Some(sensors.id(index)),
                group: sensors.entry(index).group.clone(),
                output: None,
                event: EventKind::Added,
                cause: Some(cause.to_string()),
                delay: None,
                restarts: None,
                backoff: None,
            })),
        }
    }
}

impl sealed::Sealed for Journal {}
impl Stream for Journal {
    const NAME: &'static str = "journal";
    fn items(&self) -> u64 {
        self.batch.len
    }
}

/// What one round came to: sent once per round, after its readings and anomalies.
#[derive(Debug, Clone, PartialEq, Message)]
#[rtype(result = "()")]
#[non_exhaustive]
pub struct RoundSummary {
    /// The round, from 1.
    pub round: u64,
    /// Wall time of the round, from the first read sent to the last outcome known.
    pub wall: Duration,
    /// Ticks skipped just before this round because a round overran the interval.
    pub skipped_before: u64,
    /// The round's reads by outcome.
    pub reads: ReadCounts,
    /// Anomalies found in the round.
    pub anomalies: u64,
    /// What the process has used so far (on a virtual clock, where rounds take no real time,
    /// as measured up to a second of real time before, with the wall time of now).
    pub process: ProcessStats,
    /// Messages the subscribers have missed so far, all of them together (dropped from a full
    /// queue, or sent to an actor that had stopped); per subscriber in the run's summary
    /// (`subscribers`).
    pub subscribers_missed: u64,
    /// The latencies of the round's successful reads, counted by bucket (empty on a run whose
    /// rounds nobody follows).
    pub read_latency: LatencyCounts,
    /// The round's reads by group actor, in the supervision tree's order: each configured
    /// group (its own members), then the shards of the ungrouped sensors.
    pub groups: Vec<GroupReads>,
}

/// Finite buckets of [`LatencyCounts`]: upper bounds from 100 µs, doubling, to about 13 s.
pub const LATENCY_BUCKETS: usize = 18;

/// Latencies counted by bucket, as a Prometheus histogram has them: one count per bucket of
/// [`LatencyCounts::bound_us`] (not cumulative), the last for those above every bound.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LatencyCounts {
    /// Latencies per bucket; `buckets[LATENCY_BUCKETS]` counts those above the last bound.
    pub buckets: [u64; LATENCY_BUCKETS + 1],
    /// Their sum, in microseconds.
    pub sum_us: u64,
    /// How many.
    pub count: u64,
}

impl LatencyCounts {
    /// The upper bound of bucket `k` (inclusive), in microseconds: `100 << k`; `None` for the
    /// last bucket (above every bound) and past it.
    ///
    /// ```
    /// use sensor_actors::streams::{LatencyCounts, LATENCY_BUCKETS};
    /// assert_eq!(LatencyCounts::bound_us(0), Some(100));
    /// assert_eq!(LatencyCounts::bound_us(3), Some(800));
    /// assert_eq!(LatencyCounts::bound_us(LATENCY_BUCKETS), None);
    /// ```
    pub fn bound_us(k: usize) -> Option<u64> {
        (k < LATENCY_BUCKETS).then(|| 100 << k)
    }

    /// Counts one latency of `us` microseconds: in the first bucket whose bound is at least
    /// `us`.
    ///
    /// ```
    /// use sensor_actors::streams::LatencyCounts;
    /// let mut c = LatencyCounts::default();
    /// for us in [100, 101, 200, 201] {
    ///     c.observe(us);
    /// }
    /// assert_eq!(&c.buckets[..3], &[1, 2, 1]);
    /// assert_eq!((c.sum_us, c.count), (602, 4));
    /// ```
    pub fn observe(&mut self, us: u64) {
        let k = if us <= 100 {
            0
        } else {
            (u64::BITS - ((us - 1) / 100).leading_zeros()) as usize
        };
        self.buckets[k.min(LATENCY_BUCKETS)] += 1;
        self.sum_us = self.sum_us.saturating_add(us);
        self.count += 1;
    }

    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &LatencyCounts) {
        for (a, b) in self.buckets.iter_mut().zip(other.buckets) {
            *a += b;
        }
        self.sum_us = self.sum_us.saturating_add(other.sum_us);
        self.count += other.count;
    }
}

/// One group actor's reads of a round ([`RoundSummary::groups`]).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct GroupReads {
    /// The group: a `[[groups]]` entry's name, or `shard-N`.
    pub group: Arc<str>,
    /// Whether it is a shard of the ungrouped sensors (else a configured group).
    pub shard: bool,
    /// Its members' reads by outcome.
    pub reads: ReadCounts,
}

impl sealed::Sealed for RoundSummary {}
impl Stream for RoundSummary {
    const NAME: &'static str = "rounds";
    fn items(&self) -> u64 {
        1
    }
}

/// The run's final summary: the last message of every run (as returned by
/// [`Collector::run`](crate::Collector::run), without the delivery counts of this message).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
#[non_exhaustive]
pub struct RunSummary {
    /// The summary.
    pub summary: Arc<Summary>,
}

/// Asks an output attached with [`Collector::settle`](crate::Collector::settle) to settle as
/// the run's streams end: to deliver what it holds, within a bound of its own (the MQTT output:
/// its `flush_timeout`), and report its counts for the run's summary (its `outputs`). Sent once,
/// after every reading, anomaly, journal event and round summary was handed to the subscribers;
/// the [`RunSummary`] that holds the report comes after it.
#[derive(Debug, Clone, Copy, Default, Message)]
#[rtype(result = "crate::report::OutputReport")]
pub struct Settle;

impl sealed::Sealed for RunSummary {}
impl Stream for RunSummary {
    const NAME: &'static str = "end";
    fn items(&self) -> u64 {
        1
    }
}
