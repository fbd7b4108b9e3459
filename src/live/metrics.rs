//! `/metrics`: the live view's figures as Prometheus metrics, through `prometheus-client`
//! (OpenMetrics text). Every figure comes from the public API: the round summaries (reads by
//! outcome and by configured group, rounds, skipped ticks, round durations, read latencies,
//! subscriber drops), the anomalies and the journal (events, restarts, states), and for the
//! per-sensor series when asked for, each sensor's status ([`Control::status`](crate::Control::status))
//! taken at the scrape; process memory and CPU are measured at each scrape. docs/live-view.md
//! lists them.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::{Registry, Unit};

use super::model::{Model, SENSOR_STATES};
use crate::report::ProcessStats;
use crate::streams::{LatencyCounts, RoundSummary, LATENCY_BUCKETS};
use crate::SensorStatus;

/// The content type of `/metrics`.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Round durations: 1 ms to about 65 s, doubling.
fn round_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.001, 2.0, 17)
}

/// The read latency histogram, filled a round at a time from the round summaries' counts
/// (prometheus-client's `Histogram` takes its lock for every observation).
#[derive(Debug, Default, Clone)]
pub(super) struct Latencies(Arc<Mutex<LatencyCounts>>);

impl Latencies {
    fn add(&self, round: &LatencyCounts) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).add(round);
    }
}

impl TypedMetric for Latencies {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Latencies {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let all = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let buckets: Vec<(f64, u64)> = (0..=LATENCY_BUCKETS)
            .map(|k| {
                let bound = LatencyCounts::bound_us(k).map_or(f64::INFINITY, |us| us as f64 / 1e6);
                (bound, all.buckets[k])
            })
            .collect();
        encoder.encode_histogram::<NoLabelSet>(all.sum_us as f64 / 1e6, all.count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupLabel {
    group: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabel {
    event: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DetectorLabel {
    detector: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutputLabel {
    output: String,
    stream: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SensorLabel {
    sensor: String,
}

/// The registry and handles to its metrics. Counters only go up: figures that arrive as
/// totals (subscriber drops, CPU time) are added as the difference from the last total.
pub(super) struct Metrics {
    registry: Registry,
    rounds: Counter,
    skipped: Counter,
    reads: Family<OutcomeLabel, Counter>,
    group_readings: Family<GroupLabel, Counter>,
    round_duration: Histogram,
    read_latency: Latencies,
    restarts: Counter,
    events: Family<EventLabel, Counter>,
    anomalies: Family<DetectorLabel, Counter>,
    sensors: Family<StateLabel, Gauge>,
    groups: Family<StateLabel, Gauge>,
    subscriber_dropped: Counter,
    stream_dropped: Counter,
    /// Messages of outputs that deliver on their own (the MQTT output), by outcome.
    output_messages: Family<OutputLabel, Counter>,
    sensor_readings: Family<SensorLabel, Counter>,
    sensor_value: Family<SensorLabel, Gauge<f64, AtomicU64>>,
    sensor_restarts: Family<SensorLabel, Counter>,
    rss: Gauge,
    peak_rss: Gauge,
    cpu: Counter<f64, AtomicU64>,
    /// Each configured group's counter of `group_readings`, by name.
    group_counters: HashMap<String, Counter>,
    /// The series of the first sensors in configuration order (none unless asked for).
    sensor_series: Vec<SensorSeries>,
}

/// One sensor's own series.
struct SensorSeries {
    id: Arc<str>,
    readings: Counter,
    value: Gauge<f64, AtomicU64>,
    restarts: Counter,
}

impl Metrics {
    /// The metrics of a run of `model`'s configuration; the first `per_sensor` sensors get
    /// their own series.
    pub(super) fn new(model: &Model, per_sensor: usize) -> Metrics {
        let mut registry = Registry::default();
        let m = Metrics {
            registry: Registry::default(),
            rounds: Counter::default(),
            skipped: Counter::default(),
            reads: Family::default(),
            group_readings: Family::default(),
            round_duration: Histogram::new(round_buckets()),
            read_latency: Latencies::default(),
            restarts: Counter::default(),
            events: Family::default(),
            anomalies: Family::default(),
            sensors: Family::default(),
            groups: Family::default(),
            subscriber_dropped: Counter::default(),
            stream_dropped: Counter::default(),
            output_messages: Family::default(),
            sensor_readings: Family::default(),
            sensor_value: Family::default(),
            sensor_restarts: Family::default(),
            rss: Gauge::default(),
            peak_rss: Gauge::default(),
            cpu: Counter::default(),
            group_counters: HashMap::new(),
            sensor_series: Vec::new(),
        };
        // Every series that is known in advance exists from the first scrape, at 0.
        for outcome in ["ok", "failed", "timed_out", "unavailable"] {
            let _ = m.reads.get_or_create(&OutcomeLabel { outcome });
        }
        let group_counters = model
            .group_names()
            .map(|group| {
                let label = GroupLabel {
                    group: group.to_string(),
                };
                (group.to_string(), m.group_readings.get_or_create(&label).clone())
            })
            .collect();
        let sensor_series = model
            .sensor_ids()
            .take(per_sensor)
            .map(|id| {
                let label = SensorLabel { sensor: id.to_string() };
                SensorSeries {
                    id: id.clone(),
                    readings: m.sensor_readings.get_or_create(&label).clone(),
                    value: m.sensor_value.get_or_create(&label).clone(),
                    restarts: m.sensor_restarts.get_or_create(&label).clone(),
                }
            })
            .collect();
        let r = registry.sub_registry_with_prefix("sensor_actors");
        r.register("rounds", "Collection rounds reported", m.rounds.clone());
        r.register(
            "skipped_rounds",
            "Ticks skipped because a round overran the interval",
            m.skipped.clone(),
        );
        r.register("reads", "Reads by outcome", m.reads.clone());
        r.register(
            "group_readings",
            "Successful reads of the sensors of each configured group",
            m.group_readings.clone(),
        );
        r.register_with_unit(
            "round_duration",
            "Wall time of a round, its first read sent to its last outcome",
            Unit::Seconds,
            m.round_duration.clone(),
        );
        r.register_with_unit(
            "read_latency",
            "Latency of the successful reads",
            Unit::Seconds,
            m.read_latency.clone(),
        );
        r.register("restarts", "Sensor restarts", m.restarts.clone());
        r.register(
            "supervision_events",
            "Supervision journal events by kind",
            m.events.clone(),
        );
        r.register("anomalies", "Anomalies by detector", m.anomalies.clone());
        r.register("sensors", "Sensors by supervision state", m.sensors.clone());
        r.register("groups", "Configured groups by supervision state", m.groups.clone());
        r.register(
            "subscriber_dropped_messages",
            "Stream messages the run's subscribers missed (full queue or stopped actor)",
            m.subscriber_dropped.clone(),
        );
        r.register(
            "live_stream_dropped_messages",
            "Server-sent events dropped because a client of /api/stream lagged",
            m.stream_dropped.clone(),
        );
        r.register(
            "output_messages",
            "Messages of an output that delivers on its own (the MQTT output) by stream and outcome: produced, published, dropped, too_large, unsent",
            m.output_messages.clone(),
        );
        if per_sensor > 0 {
            r.register(
                "sensor_readings",
                "Successful reads of one sensor",
                m.sensor_readings.clone(),
            );
            r.register("sensor_value", "A sensor's last value", m.sensor_value.clone());
            r.register("sensor_restarts", "Restarts of one sensor", m.sensor_restarts.clone());
            let omitted = Gauge::<i64, std::sync::atomic::AtomicI64>::default();
            omitted.set(model.sensor_ids().count().saturating_sub(per_sensor) as i64);
            r.register(
                "sensor_series_omitted",
                "Sensors without their own series (beyond [http] max_sensor_series)",
                omitted,
            );
        }
        registry.register_with_unit(
            "process_resident_memory",
            "Resident memory of the process",
            Unit::Bytes,
            m.rss.clone(),
        );
        registry.register_with_unit(
            "process_peak_resident_memory",
            "Peak resident memory of the process",
            Unit::Bytes,
            m.peak_rss.clone(),
        );
        registry.register_with_unit(
            "process_cpu",
            "User and system CPU time of the process",
            Unit::Seconds,
            m.cpu.clone(),
        );
        Metrics {
            registry,
            group_counters,
            sensor_series,
            ..m
        }
    }

    /// A round's summary.
    pub(super) fn round(&self, s: &RoundSummary) {
        self.rounds.inc();
        self.skipped.inc_by(s.skipped_before);
        for (outcome, n) in [
            ("ok", s.reads.ok),
            ("failed", s.reads.failed),
            ("timed_out", s.reads.timed_out),
            ("unavailable", s.reads.unavailable),
        ] {
            self.reads.get_or_create(&OutcomeLabel { outcome }).inc_by(n);
        }
        self.round_duration.observe(s.wall.as_secs_f64());
        self.dropped_so_far(s.subscribers_missed);
        self.read_latency.add(&s.read_latency);
        for g in s.groups.iter().filter(|g| !g.shard && g.reads.ok > 0) {
            if let Some(counter) = self.group_counters.get(&*g.group) {
                counter.inc_by(g.reads.ok);
            }
        }
    }

    /// The run's subscribers have missed `total` messages so far.
    pub(super) fn dropped_so_far(&self, total: u64) {
        let known = self.subscriber_dropped.get();
        self.subscriber_dropped.inc_by(total.saturating_sub(known));
    }

    /// The sensors with series of their own, in configuration order (none unless asked for).
    pub(super) fn series_sensors(&self) -> Vec<Arc<str>> {
        self.sensor_series.iter().map(|s| s.id.clone()).collect()
    }

    /// The status of the sensor with series `k` (as [`Metrics::series_sensors`] lists them):
    /// its readings so far and newest value.
    pub(super) fn sensor_status(&self, k: usize, status: &SensorStatus) {
        let a = &status.analysis;
        self.sensor_figures(k, a.count, a.last.as_ref().map(|r| r.value));
    }

    /// The readings so far and newest value of the sensor with series `k`.
    pub(super) fn sensor_figures(&self, k: usize, count: u64, last: Option<f64>) {
        if let Some(series) = self.sensor_series.get(k) {
            series.readings.inc_by(count.saturating_sub(series.readings.get()));
            if let Some(value) = last {
                series.value.set(value);
            }
        }
    }

    /// An anomaly by `detector`.
    pub(super) fn anomaly(&self, detector: &str) {
        self.anomalies
            .get_or_create(&DetectorLabel {
                detector: detector.to_string(),
            })
            .inc();
    }

    /// A journal event; `restarted_sensor` is the index of a sensor it restarted.
    pub(super) fn event(&self, event: &'static str, restarted_sensor: Option<usize>) {
        self.events.get_or_create(&EventLabel { event }).inc();
        if let Some(index) = restarted_sensor {
            self.restarts.inc();
            if let Some(series) = self.sensor_series.get(index) {
                series.restarts.inc();
            }
        }
    }

    /// An output's totals so far: each counter catches up with its total.
    pub(super) fn output_totals(&self, output: &str, totals: &[(String, String, u64)]) {
        for (stream, outcome, total) in totals {
            let label = OutputLabel {
                output: output.to_string(),
                stream: stream.clone(),
                outcome: outcome.clone(),
            };
            let counter = self.output_messages.get_or_create(&label);
            counter.inc_by(total.saturating_sub(counter.get()));
        }
    }

    /// Server-sent events dropped for lagging clients.
    pub(super) fn stream_dropped(&self, n: u64) {
        self.stream_dropped.inc_by(n);
    }

    /// The text of a scrape: the states from `model`, the process measured now.
    pub(super) fn render(&self, model: &Model) -> String {
        for state in SENSOR_STATES {
            let n = model.run.sensors.get(state).copied().unwrap_or(0);
            self.sensors.get_or_create(&StateLabel { state }).set(n as i64);
        }
        for state in ["running", "restarting", "stopped", "escalated", "given_up"] {
            let n = model.run.groups.get(state).copied().unwrap_or(0);
            self.groups.get_or_create(&StateLabel { state }).set(n as i64);
        }
        let process = ProcessStats::measure();
        self.rss.set(ProcessStats::current_rss_bytes() as i64);
        self.peak_rss.set(process.peak_rss_bytes as i64);
        let cpu = self.cpu.get();
        if process.cpu_seconds > cpu {
            self.cpu.inc_by(process.cpu_seconds - cpu);
        }
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A latency lands in the first bucket whose bound is at least it (bounds are inclusive,
    /// as Prometheus' `le`); past the last bound, in +Inf.
    #[test]
    fn latencies_land_in_their_bucket() {
        let mut counts = LatencyCounts::default();
        for us in [
            0,
            100,
            101,
            200,
            201,
            400,
            LatencyCounts::bound_us(LATENCY_BUCKETS - 1).unwrap(),
            u64::MAX / 2,
        ] {
            counts.observe(us);
        }
        let mut expected = [0; LATENCY_BUCKETS + 1];
        expected[0] = 2;
        expected[1] = 2;
        expected[2] = 2;
        expected[LATENCY_BUCKETS - 1] = 1;
        expected[LATENCY_BUCKETS] = 1;
        assert_eq!(counts.buckets, expected);
        assert_eq!(counts.count, 8);
    }
}
