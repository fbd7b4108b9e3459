//! The sensors of a run in the compact layout the actors keep for the whole run:
//! [`SensorTable`], each sensor's id and the [`SensorEntry`] of settings it shares with the other
//! sensors of its configuration entry. Built once from a [`Config`](super::Config)'s sensors by
//! the run's setup; the supervisors (to build and restart sensors), the aggregators and the
//! output streams look ids and settings up in it by sensor index.

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
#[derive(Debug)]
pub(crate) struct SensorTable {
    /// The ids, as runs of consecutive sensors, in sensor order.
    ids: Vec<IdRun>,
    /// Each sensor's index into `entries`.
    entry_of: Box<[u32]>,
    entries: Vec<SensorEntry>,
}

/// The ids of consecutive sensors from `start` on.
#[derive(Debug)]
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

impl SensorTable {
    /// The table of `specs`, in order; consecutive specs with the same settings share an entry.
    pub(crate) fn new(specs: Vec<SensorSpec>) -> Self {
        let mut ids: Vec<IdRun> = Vec::new();
        let mut entry_of = Vec::with_capacity(specs.len());
        let mut entries: Vec<SensorEntry> = Vec::new();
        for (index, spec) in specs.into_iter().enumerate() {
            if !entries.last().is_some_and(|e| e.holds(&spec)) {
                entries.push(SensorEntry {
                    kind: spec.kind,
                    unit: spec.unit,
                    driver: spec.driver,
                    policy: spec.policy,
                    group: spec.group,
                    range: spec.range,
                });
            }
            entry_of.push((entries.len() - 1) as u32);
            let parts = numbered(&spec.id);
            let next_in_run = match (ids.last(), parts) {
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
                ids.push(match parts {
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
        SensorTable {
            ids,
            entry_of: entry_of.into(),
            entries,
        }
    }

    /// Number of sensors (a run has at least one: configurations without are refused).
    #[allow(clippy::len_without_is_empty)]
    pub(crate) fn len(&self) -> usize {
        self.entry_of.len()
    }

    /// The id of sensor `index` (made anew for a numbered id: logs, journal events and output
    /// lines ask for it, not the read path).
    pub(crate) fn id(&self, index: usize) -> Arc<str> {
        let run = &self.ids[self.ids.partition_point(|r| r.start() <= index) - 1];
        match run {
            IdRun::Numbered {
                start,
                prefix,
                first,
                width,
            } => format!("{prefix}-{:0width$}", first + (index - start) as u64).into(),
            IdRun::Own { id, .. } => id.clone(),
        }
    }

    /// The settings of sensor `index`.
    pub(crate) fn entry(&self, index: usize) -> &SensorEntry {
        &self.entries[self.entry_index(index)]
    }

    /// The position of sensor `index`'s entry in [`SensorTable::entries`].
    pub(crate) fn entry_index(&self, index: usize) -> usize {
        self.entry_of[index] as usize
    }

    /// The distinct entries, in order.
    pub(crate) fn entries(&self) -> &[SensorEntry] {
        &self.entries
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
        assert_eq!(table.entries.len(), 3);
        assert_eq!(&*table.entry_of, [0, 0, 0, 1, 1, 2]);
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
        assert_eq!(&*table.entry_of, [0, 1]);
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
        assert_eq!(table.entry(121).kind.as_ref(), "temperature");
        assert_eq!(table.entry(124).kind.as_ref(), "humidity");
        assert_eq!(table.entry(131).kind.as_ref(), "pressure");
    }
}
