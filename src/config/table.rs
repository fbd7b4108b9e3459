//! The sensors of a run in the compact layout the actors keep for the whole run:
//! [`SensorTable`], each sensor's id and the [`SensorEntry`] of settings it shares with the other
//! sensors of its configuration entry. Built once from a [`Config`](super::Config)'s sensors by
//! the run's setup; the supervisors (to build and restart sensors), the aggregators and the
//! output streams look ids and settings up in it by sensor index.

use std::collections::HashMap;
use std::sync::Arc;

use super::{RestartPolicy, SensorSpec};
use crate::driver::{self, DriverSpec};

/// What the sensors of one configuration entry share: everything of a [`SensorSpec`] but its id.
#[derive(Debug, Clone)]
pub(crate) struct SensorEntry {
    /// What they measure.
    pub kind: Arc<str>,
    /// Unit of their values.
    pub unit: Arc<str>,
    /// How their reads are made.
    pub driver: Arc<dyn DriverSpec>,
    /// Resolved restart policy.
    pub policy: RestartPolicy,
    /// Group they sit behind, if any.
    pub group: Option<Arc<str>>,
    /// Valid value range; overrides the per-kind bounds.
    pub range: Option<(f64, f64)>,
}

impl SensorEntry {
    /// Whether `spec` has exactly these settings (the same driver instance included).
    fn holds(&self, spec: &SensorSpec) -> bool {
        self.kind == spec.kind
            && self.unit == spec.unit
            && driver::same_spec(&self.driver, &spec.driver)
            && self.policy == spec.policy
            && self.group == spec.group
            && self.range == spec.range
    }
}

/// The sensors of a run as the actors keep them for the whole run: each sensor's id and the
/// entry of settings it shares with its neighbours. A `count` entry of 100,000 sensors keeps one
/// copy of its settings instead of 100,000 (about 25 bytes per sensor instead of 180), and its
/// `<name>-<i>` ids as one numbered run, made when asked for (about 60 bytes per sensor less than
/// a string each).
///
/// Sensors added while a run goes on get the next indices, never a removed sensor's: a table
/// only grows, and an index names one sensor for the whole run. A grown table
/// ([`SensorTable::grown`]) shares the configuration's part with the table it grew from (never
/// copied) and holds the added sensors in a part of their own.
#[derive(Debug)]
pub(crate) struct SensorTable {
    /// The configuration's sensors, from index 0.
    base: Arc<Part>,
    /// The sensors added while the run goes on, from index `base.len()`; `None` until one is.
    added: Option<Part>,
}

/// Consecutive sensors of a table, from index `offset` on.
#[derive(Debug, Clone, Default)]
struct Part {
    /// Index of its first sensor in the table.
    offset: usize,
    /// The ids, as runs of consecutive sensors, in sensor order (their starts are table indices).
    ids: Vec<IdRun>,
    /// Each sensor's index into `entries`, from `offset` on.
    entry_of: Vec<u32>,
    entries: Vec<SensorEntry>,
}

/// The ids of consecutive sensors from `start` on.
#[derive(Debug, Clone)]
enum IdRun {
    /// Sensor `start + k` is `<prefix>-<first + k>`, the number zero-padded to `width` digits.
    Numbered {
        start: usize,
        prefix: Arc<str>,
        first: u64,
        width: usize,
    },
    /// Sensor `start` has an id of its own.
    Own { start: usize, id: Arc<str> },
}

impl IdRun {
    fn start(&self) -> usize {
        match self {
            IdRun::Numbered { start, .. } | IdRun::Own { start, .. } => *start,
        }
    }
}

/// `(prefix, number, width)` of an id that reads `<prefix>-<digits>`: the number zero-padded to
/// `width` digits gives the id back (as a `count` entry makes them; "t-07", not "t-+7").
fn numbered(id: &str) -> Option<(&str, u64, usize)> {
    let (prefix, digits) = id.rsplit_once('-')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((prefix, digits.parse().ok()?, digits.len()))
}

impl Part {
    fn len(&self) -> usize {
        self.entry_of.len()
    }

    /// Appends `specs`; consecutive specs with the same settings share an entry.
    fn extend(&mut self, specs: Vec<SensorSpec>) {
        self.entry_of.reserve(specs.len());
        for spec in specs {
            let index = self.offset + self.entry_of.len();
            if !self.entries.last().is_some_and(|e| e.holds(&spec)) {
                self.entries.push(SensorEntry {
                    kind: spec.kind,
                    unit: spec.unit,
                    driver: spec.driver,
                    policy: spec.policy,
                    group: spec.group,
                    range: spec.range,
                });
            }
            self.entry_of.push((self.entries.len() - 1) as u32);
            let parts = numbered(&spec.id);
            let next_in_run = match (self.ids.last(), parts) {
                (
                    Some(IdRun::Numbered {
                        start,
                        prefix,
                        first,
                        width,
                    }),
                    Some((p, number, w)),
                ) => **prefix == *p && *width == w && number == first + (index - start) as u64,
                _ => false,
            };
            if !next_in_run {
                self.ids.push(match parts {
                    Some((prefix, first, width)) => IdRun::Numbered {
                        start: index,
                        prefix: prefix.into(),
                        first,
                        width,
                    },
                    None => IdRun::Own {
                        start: index,
                        id: spec.id,
                    },
                });
            }
        }
    }

    /// Writes the id of sensor `index` (a table index within this part) at the end of `out`.
    fn write_id(&self, index: usize, out: &mut impl IdOut) {
        match &self.ids[self.ids.partition_point(|r| r.start() <= index) - 1] {
            IdRun::Numbered {
                start,
                prefix,
                first,
                width,
            } => {
                out.push_str(prefix);
                out.push_ascii(b"-");
                let mut number = first + (index - start) as u64;
                let mut digits = [b'0'; 20];
                let mut at = digits.len();
                loop {
                    at -= 1;
                    digits[at] = b'0' + (number % 10) as u8;
                    number /= 10;
                    if number == 0 {
                        break;
                    }
                }
                let at = at.min(digits.len().saturating_sub(*width));
                for _ in digits.len() - at..*width {
                    out.push_ascii(b"0");
                }
                out.push_ascii(&digits[at..]);
            }
            IdRun::Own { id, .. } => out.push_str(id),
        }
    }

    /// The id of sensor `index` (a table index within this part).
    fn id(&self, index: usize) -> Arc<str> {
        match &self.ids[self.ids.partition_point(|r| r.start() <= index) - 1] {
            IdRun::Own { id, .. } => id.clone(),
            IdRun::Numbered { .. } => {
                let mut id = String::new();
                self.write_id(index, &mut id);
                id.into()
            }
        }
    }
}

impl SensorTable {
    /// The table of `specs`, in order; consecutive specs with the same settings share an entry.
    pub(crate) fn new(specs: Vec<SensorSpec>) -> Self {
        let mut base = Part::default();
        base.extend(specs);
        SensorTable {
            base: Arc::new(base),
            added: None,
        }
    }

    /// This table with `specs` appended, at the next indices: the configuration's part is
    /// shared, the part of the sensors added earlier copied (the actors still holding this
    /// table keep it as it is).
    pub(crate) fn grown(&self, specs: Vec<SensorSpec>) -> Self {
        let mut added = self.added.clone().unwrap_or_else(|| Part {
            offset: self.base.len(),
            ..Part::default()
        });
        added.extend(specs);
        SensorTable {
            base: self.base.clone(),
            added: Some(added),
        }
    }

    /// Number of sensors (a run has at least one: configurations without are refused).
    #[allow(clippy::len_without_is_empty)]
    pub(crate) fn len(&self) -> usize {
        self.base.len() + self.added.as_ref().map_or(0, Part::len)
    }

    /// The part holding sensor `index`.
    fn part(&self, index: usize) -> &Part {
        match &self.added {
            Some(added) if index >= added.offset => added,
            _ => &self.base,
        }
    }

    /// The id of sensor `index` (made anew for a numbered id: logs, journal events and output
    /// lines ask for it, not the read path).
    pub(crate) fn id(&self, index: usize) -> Arc<str> {
        self.part(index).id(index)
    }

    /// Writes the id of sensor `index` at the end of `out`: [`SensorTable::id`] without an
    /// allocation (the output files write one per reading).
    pub(crate) fn write_id(&self, index: usize, out: &mut String) {
        self.part(index).write_id(index, out);
    }

    /// [`write_id`](Self::write_id) as the bytes of a line being formatted.
    pub(crate) fn write_id_bytes(&self, index: usize, out: &mut Vec<u8>) {
        self.part(index).write_id(index, out);
    }

    /// The settings of sensor `index`.
    pub(crate) fn entry(&self, index: usize) -> &SensorEntry {
        let part = self.part(index);
        &part.entries[part.entry_of[index - part.offset] as usize]
    }

    /// The position of sensor `index`'s entry in [`SensorTable::entries`].
    pub(crate) fn entry_index(&self, index: usize) -> usize {
        if index < self.base.len() {
            return self.base.entry_of[index] as usize;
        }
        let added = self.part(index);
        self.base.entries.len() + added.entry_of[index - added.offset] as usize
    }

    /// The distinct entries, in order (the configuration's, then those of added sensors).
    pub(crate) fn entries(&self) -> impl Iterator<Item = &SensorEntry> {
        let added = self.added.iter().flat_map(|part| &part.entries);
        self.base.entries.iter().chain(added)
    }

    /// An index of this table's ids, for finding a sensor by id (made when sensors are first
    /// added or removed while running: a run that changes none keeps no such index).
    pub(crate) fn id_index(&self) -> IdIndex {
        let mut index = IdIndex::default();
        let base = &self.base;
        for (k, run) in base.ids.iter().enumerate() {
            let end = base.ids.get(k + 1).map_or(base.len(), IdRun::start);
            match run {
                IdRun::Own { start, id } => {
                    index.own.insert(id.clone(), *start);
                }
                IdRun::Numbered {
                    start,
                    prefix,
                    first,
                    width,
                } => index.numbered.entry(prefix.clone()).or_default().push(NumberedRun {
                    width: *width,
                    first: *first,
                    start: *start,
                    len: end - start,
                }),
            }
        }
        index.len = base.len();
        index.extend(self);
        index
    }
}

/// A table's ids, to find a sensor by id: the configuration's numbered runs as runs, every other
/// id (and every id of an added sensor) one by one.
#[derive(Debug, Default)]
pub(crate) struct IdIndex {
    /// Ids that are not part of a numbered run of the configuration, to the latest index with
    /// that id (a removed sensor's id may be added again, at a later index).
    own: HashMap<Arc<str>, usize>,
    /// The configuration's numbered runs, by prefix.
    numbered: HashMap<Arc<str>, Vec<NumberedRun>>,
    /// The sensors indexed: the table's first `len`.
    len: usize,
}

/// A numbered run of ids: `<prefix>-<first + k>` (zero-padded to `width` digits) is sensor
/// `start + k`, for `k < len`.
#[derive(Debug)]
struct NumberedRun {
    width: usize,
    first: u64,
    start: usize,
    len: usize,
}

impl IdIndex {
    /// Indexes the sensors `table` holds beyond those indexed already (the ones added since).
    pub(crate) fn extend(&mut self, table: &SensorTable) {
        for index in self.len..table.len() {
            self.own.insert(table.id(index), index);
        }
        self.len = self.len.max(table.len());
    }

    /// The latest sensor with id `id`: of the sensors that had it, the only one that can still
    /// be in the run (ids are unique among the sensors not removed).
    pub(crate) fn latest(&self, id: &str) -> Option<usize> {
        if let Some(&index) = self.own.get(id) {
            return Some(index);
        }
        let (prefix, number, width) = numbered(id)?;
        self.numbered.get(prefix)?.iter().find_map(|run| {
            let k = number.checked_sub(run.first)?;
            (run.width == width && k < run.len as u64).then(|| run.start + k as usize)
        })
    }
}

/// Where an id is written: a `String`, or the bytes of a line being formatted.
pub(crate) trait IdOut {
    fn push_str(&mut self, text: &str);
    /// ASCII bytes: digits and a dash.
    fn push_ascii(&mut self, bytes: &[u8]);
}

impl IdOut for String {
    fn push_str(&mut self, text: &str) {
        String::push_str(self, text);
    }

    fn push_ascii(&mut self, bytes: &[u8]) {
        String::push_str(self, std::str::from_utf8(bytes).unwrap_or_default());
    }
}

impl IdOut for Vec<u8> {
    fn push_str(&mut self, text: &str) {
        self.extend_from_slice(text.as_bytes());
    }

    fn push_ascii(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::driver::simulated;

    #[test]
    fn sensor_table_shares_the_settings_of_an_entry() {
        let config = Config::from_toml_str(
            "[[sensors]]\nkind = \"temperature\"\ncount = 3\n\
             [[sensors]]\nkind = \"humidity\"\ncount = 2\nmax_restarts = 9\n\
             [[sensors]]\nid = \"solo\"\nkind = \"humidity\"\n",
            "c.toml",
        )
        .unwrap();
        let specs = config.sensors.clone();
        let table = SensorTable::new(config.sensors);
        assert_eq!(table.len(), 6);
        assert_eq!(table.entries().count(), 3);
        assert_eq!(table.base.entry_of, [0, 0, 0, 1, 1, 2]);
        for (i, spec) in specs.iter().enumerate() {
            let entry = table.entry(i);
            assert_eq!(table.id(i), spec.id);
            assert!(entry.holds(spec), "sensor {i}");
            assert_eq!(
                (&entry.kind, entry.policy.max_restarts),
                (&spec.kind, spec.policy.max_restarts)
            );
        }
        // Equal settings but separate driver instances are separate entries.
        let driver = |_| -> Arc<dyn DriverSpec> { Arc::new(simulated::Spec::new(simulated::Settings::default())) };
        let table = SensorTable::new(vec![
            SensorSpec::new("a", "t", driver(0)),
            SensorSpec::new("b", "t", driver(1)),
        ]);
        assert_eq!(table.base.entry_of, [0, 1]);
    }

    /// The table gives back every id the configuration made, numbered runs and ids of their own
    /// alike, including ids that only look numbered and numbered runs that break off.
    #[test]
    fn the_table_gives_back_every_id() {
        let text = "[[sensors]]\nname = \"t\"\ncount = 120\n\
            [[sensors]]\nid = \"solo\"\n\
            [[sensors]]\nid = \"t-121\"\n\
            [[sensors]]\nid = \"t-0123\"\n\
            [[sensors]]\nid = \"bus-7\"\n\
            [[sensors]]\nid = \"bus-8\"\nkind = \"humidity\"\n\
            [[sensors]]\nid = \"bus-10\"\n\
            [[sensors]]\nid = \"x-+1\"\n\
            [[sensors]]\nid = \"x-\"\n\
            [[sensors]]\nid = \"-5\"\n\
            [[sensors]]\nname = \"t\"\ncount = 3\nkind = \"pressure\"\n";
        let c = Config::from_toml_str(text, "c.toml").unwrap();
        let expected: Vec<String> = c.sensors.iter().map(|s| s.id.to_string()).collect();
        assert_eq!(expected.len(), 132);
        let table = SensorTable::new(c.sensors);
        let got: Vec<String> = (0..table.len()).map(|i| table.id(i).to_string()).collect();
        assert_eq!(got, expected);
        // Written at the end of a buffer, without an allocation of its own: the same text.
        let mut out = String::from(">");
        for (i, id) in expected.iter().enumerate() {
            out.truncate(1);
            table.write_id(i, &mut out);
            assert_eq!(out[1..], *id, "sensor {i}");
        }
        assert_eq!(table.entry(121).kind.as_ref(), "temperature");
        assert_eq!(table.entry(124).kind.as_ref(), "humidity");
        assert_eq!(table.entry(131).kind.as_ref(), "pressure");
    }

    /// A numbered id is written as `format!` pads it, for numbers shorter, as long as and
    /// longer than the width, and widths past the 20 digits of a `u64`.
    #[test]
    fn numbered_ids_are_written_as_format_pads_them() {
        for (first, width) in [
            (0, 0),
            (7, 1),
            (7, 3),
            (999, 3),
            (1000, 3),
            (42, 20),
            (42, 25),
            (u64::MAX - 1, 4),
        ] {
            let part = Part {
                ids: vec![IdRun::Numbered {
                    start: 0,
                    prefix: "p".into(),
                    first,
                    width,
                }],
                ..Part::default()
            };
            for index in 0..2 {
                let mut out = String::new();
                part.write_id(index, &mut out);
                assert_eq!(
                    out,
                    format!("p-{:0width$}", first + index as u64),
                    "{first} width {width}"
                );
                assert_eq!(out, &*part.id(index));
            }
        }
    }

    /// A grown table keeps every index and id of the table it grew from, shares its
    /// configuration's part, and gives the added sensors the next indices, with their entries
    /// after the configuration's (`entry_index` counts on from there).
    #[test]
    fn a_grown_table_appends_and_shares_the_configuration() {
        let c = Config::from_toml_str(
            "[[sensors]]\nname = \"t\"\ncount = 12\n[[sensors]]\nid = \"solo\"\nkind = \"humidity\"\n",
            "c.toml",
        )
        .unwrap();
        let table = SensorTable::new(c.sensors);
        let more = Config::from_toml_str(
            "[[sensors]]\nname = \"x\"\ncount = 3\nkind = \"pressure\"\n[[sensors]]\nid = \"t-05\"\n",
            "m.toml",
        )
        .unwrap();
        let (first, second) = more.sensors.split_at(3);
        let grown = table.grown(first.to_vec());
        let grown = grown.grown(second.to_vec());
        assert!(Arc::ptr_eq(&table.base, &grown.base));
        assert_eq!((table.len(), grown.len()), (13, 17));
        let ids: Vec<String> = (0..grown.len()).map(|i| grown.id(i).to_string()).collect();
        assert_eq!(ids[..13], (0..13).map(|i| table.id(i).to_string()).collect::<Vec<_>>());
        assert_eq!(ids[13..], ["x-1", "x-2", "x-3", "t-05"]);
        assert_eq!(grown.entry(12).kind.as_ref(), "humidity");
        assert_eq!(grown.entry(14).kind.as_ref(), "pressure");
        assert_eq!(grown.entry(16).kind.as_ref(), "temperature");
        let entries: Vec<&str> = grown.entries().map(|e| e.kind.as_ref()).collect();
        assert_eq!(entries, ["temperature", "humidity", "pressure", "temperature"]);
        assert_eq!(
            (0..17).map(|i| grown.entry_index(i)).collect::<Vec<_>>(),
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 2, 2, 3]
        );
        // Each index finds its id; an id given again (a removed sensor's, added anew) finds
        // the latest sensor that had it; others find none.
        let index = grown.id_index();
        for (i, id) in ids.iter().enumerate().filter(|(i, _)| *i != 4) {
            assert_eq!(index.latest(id), Some(i), "{id}");
        }
        assert_eq!(index.latest("t-05"), Some(16));
        for absent in [
            "t-13",
            "t-00",
            "t-5",
            "t-005",
            "x-4",
            "x-0",
            "sol",
            "t",
            "t-",
            "t-99999999999999999999999",
        ] {
            assert_eq!(index.latest(absent), None, "{absent}");
        }
        let mut index = table.id_index();
        assert_eq!(index.latest("x-2"), None);
        index.extend(&grown);
        assert_eq!((index.latest("x-2"), index.latest("t-05")), (Some(14), Some(16)));
    }
}
