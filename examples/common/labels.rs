//! Scoring a replay's `anomalies.jsonl` against the labels of a recorded data set: which
//! labelled events got at least one anomaly inside them, and how many anomalies fell outside.
//! Shared by the `replay_nab` and `replay_lwsndr` examples and by `tests/detection.rs`.

#![allow(dead_code)]

use std::ops::RangeInclusive;
use std::path::Path;

/// A labelled event: data rows (1-based, as `source_row`) of one sensor.
#[derive(Debug, Clone)]
pub struct Event {
    /// How the labels name it.
    pub name: String,
    /// The sensor id it belongs to.
    pub sensor: String,
    /// Its data rows.
    pub rows: RangeInclusive<u64>,
}

/// One line of `anomalies.jsonl`, the fields scoring needs.
#[derive(Debug, Clone)]
pub struct Anomaly {
    /// Sensor id.
    pub sensor: String,
    /// Data row of the reading, if the anomaly had one.
    pub source_row: Option<u64>,
    /// Detector name.
    pub detector: String,
    /// Detector's detail.
    pub detail: String,
}

/// The score of one run.
#[derive(Debug)]
pub struct Score {
    /// Per event: the anomalies inside it.
    pub caught: Vec<(Event, Vec<Anomaly>)>,
    /// Anomalies inside no event.
    pub outside: Vec<Anomaly>,
    /// Readings of the run.
    pub readings: u64,
}

impl Score {
    /// Events with at least one anomaly inside.
    pub fn events_caught(&self) -> usize {
        self.caught.iter().filter(|(_, a)| !a.is_empty()).count()
    }

    /// Anomalies outside every event per 1,000 readings.
    pub fn outside_per_1000(&self) -> f64 {
        1000.0 * self.outside.len() as f64 / self.readings.max(1) as f64
    }

    /// A human-readable report.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (event, inside) in &self.caught {
            out += &format!(
                "{} ({} rows {}-{}): {} anomalies inside",
                event.name,
                event.sensor,
                event.rows.start(),
                event.rows.end(),
                inside.len()
            );
            if let Some(first) = inside.first() {
                out += &format!(
                    "; first at row {} by {}: {}",
                    first.source_row.unwrap_or(0),
                    first.detector,
                    first.detail
                );
            }
            out += "\n";
        }
        out += &format!(
            "events caught: {}/{}; anomalies outside events: {} in {} readings = {:.2} per 1,000\n",
            self.events_caught(),
            self.caught.len(),
            self.outside.len(),
            self.readings,
            self.outside_per_1000()
        );
        out
    }
}

/// Reads `anomalies.jsonl`.
pub fn read_anomalies(path: &Path) -> Vec<Anomaly> {
    let text = std::fs::read_to_string(path).expect("anomalies.jsonl is readable");
    text.lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("anomalies.jsonl holds JSON lines");
            Anomaly {
                sensor: v["sensor"].as_str().unwrap_or_default().to_string(),
                source_row: v["source_row"].as_u64(),
                detector: v["detector"].as_str().unwrap_or_default().to_string(),
                detail: v["detail"].as_str().unwrap_or_default().to_string(),
            }
        })
        .collect()
}

/// Scores `anomalies` against `events`.
pub fn score(events: &[Event], anomalies: &[Anomaly], readings: u64) -> Score {
    let inside = |e: &Event, a: &Anomaly| a.sensor == e.sensor && a.source_row.is_some_and(|r| e.rows.contains(&r));
    Score {
        caught: events
            .iter()
            .map(|e| (e.clone(), anomalies.iter().filter(|a| inside(e, a)).cloned().collect()))
            .collect(),
        outside: anomalies
            .iter()
            .filter(|a| !events.iter().any(|e| inside(e, a)))
            .cloned()
            .collect(),
        readings,
    }
}

/// NAB's labelled windows of `series` (a NAB `timestamp,value` file), as data rows of `sensor`.
pub fn nab_events(series: &Path, windows: &Path, sensor: &str) -> Vec<Event> {
    let labels: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(windows).expect("windows file is readable"))
            .expect("windows file holds JSON");
    let name = series.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let (_, windows) = labels
        .as_object()
        .and_then(|o| o.iter().find(|(k, _)| k.ends_with(name)))
        .expect("the windows file labels this series");
    let mut reader = csv::Reader::from_path(series).expect("series is readable");
    let times: Vec<String> = reader
        .records()
        .map(|r| r.expect("series rows are valid")[0].to_string())
        .collect();
    windows
        .as_array()
        .expect("windows are a list")
        .iter()
        .enumerate()
        .map(|(i, w)| {
            // Timestamps are `YYYY-MM-DD HH:MM:SS`; the labels add fractional seconds.
            let start = &w[0].as_str().expect("window start")[..19];
            let end = &w[1].as_str().expect("window end")[..19];
            let first = times
                .iter()
                .position(|t| t.as_str() >= start)
                .expect("window inside the series");
            let last = times
                .iter()
                .rposition(|t| t.as_str() <= end)
                .expect("window inside the series");
            Event {
                name: format!("window {} [{start} .. {end}]", i + 1),
                sensor: sensor.to_string(),
                rows: first as u64 + 1..=last as u64 + 1,
            }
        })
        .collect()
}

/// LWSNDR events: each run of rows labelled 1 of one mote, for sensor `<prefix><mote>`.
pub fn lwsndr_events(path: &Path, prefix: &str) -> Vec<Event> {
    let mut reader = csv::Reader::from_path(path).expect("data set is readable");
    let header = reader.headers().expect("data set has a header").clone();
    let col = |name: &str| header.iter().position(|h| h == name).expect("LWSNDR column");
    let (mote, label) = (col("mote_id"), col("label"));
    let mut events: Vec<Event> = Vec::new();
    let mut open: Option<(String, u64, u64)> = None;
    for (i, record) in reader.records().enumerate() {
        let record = record.expect("data set rows are valid");
        let row = i as u64 + 1;
        let id = record[mote].to_string();
        let heated = &record[label] == "1";
        match (&mut open, heated) {
            (Some((m, _, end)), true) if *m == id && *end + 1 == row => *end = row,
            (_, true) => {
                if let Some((m, start, end)) = open.take() {
                    events.push(Event {
                        name: format!("mote {m} heated"),
                        sensor: format!("{prefix}{m}"),
                        rows: start..=end,
                    });
                }
                open = Some((id, row, row));
            }
            (_, false) => {
                if let Some((m, start, end)) = open.take() {
                    events.push(Event {
                        name: format!("mote {m} heated"),
                        sensor: format!("{prefix}{m}"),
                        rows: start..=end,
                    });
                }
            }
        }
    }
    if let Some((m, start, end)) = open {
        events.push(Event {
            name: format!("mote {m} heated"),
            sensor: format!("{prefix}{m}"),
            rows: start..=end,
        });
    }
    events
}
