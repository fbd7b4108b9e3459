//! The per-sensor part of a run's [`Summary`](super::Summary): [`SensorList`], the list of
//! [`SensorSummary`] entries that `summary.json`'s `sensors` holds.
//!
//! A run's list is not kept as a million records. It holds the run's sensor table (the ids,
//! kinds, units and groups the run was configured with, shared, not copied) and one fixed-size
//! row of figures per sensor (72 bytes); an entry is made when it is asked for, and
//! `summary.json` is written from the rows as it is encoded, a sensor at a time, without a
//! string per sensor. A list read back from `summary.json` (or made from entries) holds its
//! entries as they are. Both kinds give the same entries, compare equal when their entries do,
//! and encode to the same JSON.

use std::fmt;
use std::sync::Arc;

use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::analysis::tracks::TrackSummary;
use crate::config::SensorTable;
use crate::data::SensorState;

/// One sensor's statistics, an entry of `summary.json`'s `sensors`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct SensorSummary {
    /// Sensor id.
    pub id: String,
    /// The `[[groups]]` entry it belongs to; absent for an ungrouped sensor.
    #[serde(default)]
    pub group: Option<String>,
    /// Sensor kind.
    pub kind: String,
    /// Unit of the values.
    pub unit: String,
    /// Final supervision state: `running`, `restarting`, `stopped`, `given_up` or `removed`.
    pub state: String,
    /// Restarts of this sensor.
    pub restarts: u32,
    /// Successful readings.
    pub count: u64,
    /// Smallest value.
    pub min: Option<f64>,
    /// Largest value.
    pub max: Option<f64>,
    /// Mean value.
    pub mean: Option<f64>,
    /// Sample standard deviation.
    pub stddev: Option<f64>,
    /// Exponentially weighted moving average.
    pub ewma: Option<f64>,
    /// Last value read.
    pub last: Option<f64>,
    /// Anomalies detected on this sensor.
    pub anomalies: u64,
}

impl Serialize for SensorSummary {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Fields {
            id: self.id.as_str(),
            group: self.group.as_deref(),
            kind: &self.kind,
            unit: &self.unit,
            state: &self.state,
            restarts: self.restarts,
            count: self.count,
            min: self.min,
            max: self.max,
            mean: self.mean,
            stddev: self.stddev,
            ewma: self.ewma,
            last: self.last,
            anomalies: self.anomalies,
        }
        .serialize(serializer)
    }
}

/// An entry as `summary.json` has it, its strings borrowed from wherever they are kept: the
/// one encoding of both kinds of list.
#[derive(Serialize)]
struct Fields<'a> {
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<&'a str>,
    kind: &'a str,
    unit: &'a str,
    state: &'a str,
    restarts: u32,
    count: u64,
    min: Option<f64>,
    max: Option<f64>,
    mean: Option<f64>,
    stddev: Option<f64>,
    ewma: Option<f64>,
    last: Option<f64>,
    anomalies: u64,
}

impl Fields<'_> {
    /// The entry, its strings owned.
    fn to_summary(&self) -> SensorSummary {
        SensorSummary {
            id: self.id.to_string(),
            group: self.group.map(str::to_string),
            kind: self.kind.to_string(),
            unit: self.unit.to_string(),
            state: self.state.to_string(),
            restarts: self.restarts,
            count: self.count,
            min: self.min,
            max: self.max,
            mean: self.mean,
            stddev: self.stddev,
            ewma: self.ewma,
            last: self.last,
            anomalies: self.anomalies,
        }
    }
}

/// One sensor's figures at the end of a run, as a run's list keeps them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct SensorRow {
    /// Its analysis results.
    pub(crate) track: TrackSummary,
    /// Its supervision state as the run ended.
    pub(crate) state: SensorState,
    /// Its restarts.
    pub(crate) restarts: u32,
}

impl Default for SensorRow {
    /// A sensor no group reported on: given up, nothing read.
    fn default() -> Self {
        SensorRow {
            track: TrackSummary::default(),
            state: SensorState::GivenUp,
            restarts: 0,
        }
    }
}

/// The per-sensor statistics of a run ([`Summary::sensors`](super::Summary::sensors)): in
/// configuration order, then the sensors added while running in the order they were added.
///
/// Indexed and iterated like a list of [`SensorSummary`], but each entry is made when it is
/// asked for (so [`SensorList::get`] and the iterator give entries, not references): a run's
/// list keeps its figures in rows of a fixed size next to the run's sensor table, and
/// `summary.json` is encoded from them directly.
#[derive(Clone)]
pub struct SensorList(Kept);

/// How a list keeps its entries.
#[derive(Clone)]
enum Kept {
    /// As entries (read from `summary.json`, or made by a caller).
    Entries(Arc<Vec<SensorSummary>>),
    /// A run's: its sensor table (names and settings) and a row of figures per sensor, at the
    /// sensor's index. Shared: cloning a summary copies neither.
    Run {
        table: Arc<SensorTable>,
        rows: Arc<Vec<SensorRow>>,
    },
}

impl SensorList {
    /// A run's list: sensor `i` of `table` with the figures of `rows[i]`.
    pub(crate) fn of_run(table: Arc<SensorTable>, rows: Vec<SensorRow>) -> Self {
        debug_assert!(rows.len() <= table.len(), "a row for a sensor not in the table");
        SensorList(Kept::Run {
            table,
            rows: Arc::new(rows),
        })
    }

    /// The number of sensors.
    pub fn len(&self) -> usize {
        match &self.0 {
            Kept::Entries(entries) => entries.len(),
            Kept::Run { rows, .. } => rows.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entry of the sensor at `index`, if there is one.
    pub fn get(&self, index: usize) -> Option<SensorSummary> {
        match &self.0 {
            Kept::Entries(entries) => entries.get(index).cloned(),
            Kept::Run { table, rows } => {
                let row = rows.get(index)?;
                let mut id = String::new();
                table.write_id(index, &mut id);
                Some(Self::entry(table, index, row, &id).to_summary())
            }
        }
    }

    /// The entries, in order.
    pub fn iter(&self) -> SensorEntries<'_> {
        SensorEntries {
            list: self,
            range: 0..self.len(),
        }
    }

    /// Every entry, made at once, for code that borrows from the entries (about 300 bytes a
    /// sensor, where a run's list keeps 72).
    pub fn to_vec(&self) -> Vec<SensorSummary> {
        self.iter().collect()
    }

    /// The entry of sensor `index` of a run, its id given.
    fn entry<'a>(table: &'a SensorTable, index: usize, row: &SensorRow, id: &'a str) -> Fields<'a> {
        let settings = table.entry(index);
        let t = &row.track;
        Fields {
            id,
            group: settings.group.as_deref(),
            kind: &settings.kind,
            unit: &settings.unit,
            state: row.state.as_str(),
            restarts: row.restarts,
            count: t.count,
            min: t.figure(t.min, 1),
            max: t.figure(t.max, 1),
            mean: t.figure(t.mean, 1),
            stddev: t.figure(t.stddev, 2),
            ewma: t.figure(t.ewma, 1),
            last: t.figure(t.last, 1),
            anomalies: t.anomalies,
        }
    }
}

/// The entries of a [`SensorList`], in order ([`SensorList::iter`]).
#[derive(Debug, Clone)]
pub struct SensorEntries<'a> {
    list: &'a SensorList,
    range: std::ops::Range<usize>,
}

impl Iterator for SensorEntries<'_> {
    type Item = SensorSummary;

    fn next(&mut self) -> Option<SensorSummary> {
        self.range.next().and_then(|i| self.list.get(i))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.range.size_hint()
    }

    fn nth(&mut self, n: usize) -> Option<SensorSummary> {
        self.range.nth(n).and_then(|i| self.list.get(i))
    }
}

impl DoubleEndedIterator for SensorEntries<'_> {
    fn next_back(&mut self) -> Option<SensorSummary> {
        self.range.next_back().and_then(|i| self.list.get(i))
    }
}

impl ExactSizeIterator for SensorEntries<'_> {}
impl std::iter::FusedIterator for SensorEntries<'_> {}

impl<'a> IntoIterator for &'a SensorList {
    type Item = SensorSummary;
    type IntoIter = SensorEntries<'a>;

    fn into_iter(self) -> SensorEntries<'a> {
        self.iter()
    }
}

impl From<Vec<SensorSummary>> for SensorList {
    fn from(entries: Vec<SensorSummary>) -> Self {
        SensorList(Kept::Entries(Arc::new(entries)))
    }
}

impl FromIterator<SensorSummary> for SensorList {
    fn from_iter<I: IntoIterator<Item = SensorSummary>>(entries: I) -> Self {
        SensorList(Kept::Entries(Arc::new(entries.into_iter().collect())))
    }
}

impl Default for SensorList {
    fn default() -> Self {
        SensorList(Kept::Entries(Arc::default()))
    }
}

impl PartialEq for SensorList {
    /// Lists are equal when their entries are, however they are kept.
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl fmt::Debug for SensorList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Serialize for SensorList {
    /// A JSON array of the entries; a run's are encoded from its rows as they go, each id
    /// written into one reused buffer.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Kept::Entries(entries) => serializer.collect_seq(entries.iter()),
            Kept::Run { table, rows } => {
                let mut seq = serializer.serialize_seq(Some(rows.len()))?;
                let mut id = String::new();
                for (index, row) in rows.iter().enumerate() {
                    id.clear();
                    table.write_id(index, &mut id);
                    seq.serialize_element(&Self::entry(table, index, row, &id))?;
                }
                seq.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for SensorList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<SensorSummary>::deserialize(deserializer).map(SensorList::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    /// A run of five sensors: numbered ungrouped ones, one with its own id (to be escaped) in a
    /// group, and a sensor added while running (a grown table).
    fn run_table() -> Arc<SensorTable> {
        let config = Config::from_toml_str(
            "[[groups]]\nname = \"pu\\\"mps\"\n\
             [[sensors]]\nname = \"t\"\nkind = \"temperature\"\ncount = 3\n\
             [[sensors]]\nid = \"p\\\\1\"\nkind = \"pressure\"\ngroup = \"pu\\\"mps\"\n",
            "c.toml",
        )
        .unwrap();
        let added = Config::from_toml_str("[[sensors]]\nid = \"late\"\nkind = \"humidity\"\n", "a.toml").unwrap();
        Arc::new(SensorTable::new(config.sensors).grown(added.sensors))
    }

    /// Rows with 0, 1, 2 and 5 readings (the figures' boundaries: one reading for most, two for
    /// the deviation) and every kind of end.
    fn rows() -> Vec<SensorRow> {
        let track = |count, anomalies| TrackSummary {
            count,
            anomalies,
            min: -1.5,
            max: 3.25,
            mean: 0.5,
            stddev: 0.75,
            ewma: 0.625,
            last: 3.25,
        };
        let row = |track, state, restarts| SensorRow { track, state, restarts };
        vec![
            row(track(0, 0), SensorState::GivenUp, 5),
            row(track(1, 0), SensorState::Running, 0),
            row(track(2, 1), SensorState::Restarting, 1),
            row(track(5, 3), SensorState::Removed, 2),
            row(track(1, 0), SensorState::Stopped, 0),
        ]
    }

    /// What each entry must be, written out.
    fn expected() -> Vec<SensorSummary> {
        let entry = |id: &str, group: Option<&str>, kind: &str, unit: &str, state: &str, restarts, count, anomalies| {
            let some = |v: f64, needs: u64| (count >= needs).then_some(v);
            SensorSummary {
                id: id.into(),
                group: group.map(str::to_string),
                kind: kind.into(),
                unit: unit.into(),
                state: state.into(),
                restarts,
                count,
                min: some(-1.5, 1),
                max: some(3.25, 1),
                mean: some(0.5, 1),
                stddev: some(0.75, 2),
                ewma: some(0.625, 1),
                last: some(3.25, 1),
                anomalies,
            }
        };
        vec![
            entry("t-1", None, "temperature", "C", "given_up", 5, 0, 0),
            entry("t-2", None, "temperature", "C", "running", 0, 1, 0),
            entry("t-3", None, "temperature", "C", "restarting", 1, 2, 1),
            entry("p\\1", Some("pu\"mps"), "pressure", "hPa", "removed", 2, 5, 3),
            entry("late", None, "humidity", "%", "stopped", 0, 1, 0),
        ]
    }

    /// A run's list gives the entries its table and rows make, forwards, backwards and by
    /// index, and nothing past its end.
    #[test]
    fn a_runs_list_makes_each_entry_from_its_table_and_row() {
        let list = SensorList::of_run(run_table(), rows());
        let expected = expected();
        assert_eq!((list.len(), list.is_empty()), (5, false));
        assert_eq!(list.to_vec(), expected);
        let backwards: Vec<SensorSummary> = list.iter().rev().collect();
        assert!(backwards.iter().eq(expected.iter().rev()));
        assert_eq!(list.get(3).as_ref(), Some(&expected[3]));
        assert_eq!(list.get(5), None);
        assert_eq!(list.iter().nth(4).as_ref(), Some(&expected[4]));
        assert_eq!(list.iter().len(), 5);
        assert!(SensorList::default().is_empty());
        assert_eq!(std::mem::size_of::<SensorRow>(), 72, "the row size the docs give");
    }

    /// A run's list and a list of the same entries encode to the same JSON, and compare
    /// equal; the JSON read back is equal to both; a list that differs in one figure is not.
    #[test]
    fn both_kinds_encode_alike_and_compare_by_their_entries() {
        let run = SensorList::of_run(run_table(), rows());
        let listed = SensorList::from(expected());
        let json = serde_json::to_string_pretty(&run).unwrap();
        assert_eq!(json, serde_json::to_string_pretty(&listed).unwrap());
        assert_eq!(json, serde_json::to_string_pretty(&expected()).unwrap());
        assert!(json.contains("\"id\": \"p\\\\1\"") && json.contains("\"group\": \"pu\\\"mps\""));
        assert_eq!(
            json.matches("\"group\"").count(),
            1,
            "only a grouped sensor has a group"
        );
        assert_eq!(run, listed);
        let read: SensorList = serde_json::from_str(&json).unwrap();
        assert_eq!(read, run);
        let mut other = rows();
        other[2].track.stddev = 0.5;
        assert_ne!(SensorList::of_run(run_table(), other), listed);
        let mut fewer = expected();
        fewer.pop();
        assert_ne!(run, SensorList::from(fewer));
    }
}
