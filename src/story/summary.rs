//! Reading what `summary.json` says about one sensor without holding the file: the sensors
//! array (a million entries at a million sensors) is deserialized one entry at a time and only
//! the entry asked for is kept, with its group's entry and the number of rounds. When the
//! sensor is not there, a second pass collects the ids closest to the one asked for.

use std::fmt;
use std::io::Read;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::report::{GroupSummary, SensorSummary};

/// How many close ids an unknown sensor's error suggests, at most.
pub(super) const SUGGESTIONS: usize = 3;

/// What the summary says about one sensor.
#[derive(Debug, Default)]
pub(super) struct SummaryFacts {
    /// Rounds run.
    pub(super) rounds: u64,
    /// The sensor's entry, if the summary lists it.
    pub(super) sensor: Option<SensorSummary>,
    /// Its group's entry: its `[[groups]]` entry, or the shard that held it.
    pub(super) group: Option<GroupSummary>,
    /// The groups its group is nested in (`parent`), innermost first.
    pub(super) ancestors: Vec<String>,
    /// Sensors the summary lists.
    pub(super) sensors: u64,
    /// With `suggest`: the ids closest to the one asked for, closest first.
    pub(super) close: Vec<String>,
}

/// Reads `summary.json` from `reader`, keeping only what concerns sensor `id` (and, with
/// `suggest`, the ids closest to it).
pub(super) fn read(reader: impl Read, id: &str, suggest: bool) -> serde_json::Result<SummaryFacts> {
    let mut de = serde_json::Deserializer::from_reader(reader);
    let facts = de::Deserializer::deserialize_map(&mut de, SummaryVisitor { id, suggest })?;
    de.end()?;
    Ok(facts)
}

/// The top-level object: `rounds`, `sensors` and `groups` are read, the rest skipped.
struct SummaryVisitor<'a> {
    id: &'a str,
    suggest: bool,
}

impl<'de> Visitor<'de> for SummaryVisitor<'_> {
    type Value = SummaryFacts;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the summary object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SummaryFacts, A::Error> {
        let mut facts = SummaryFacts::default();
        let mut rounds = None;
        let mut groups = (None, Vec::new());
        let mut ungrouped_before = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "rounds" => rounds = Some(map.next_value()?),
                "sensors" => {
                    let found = map.next_value_seed(SensorsSeed {
                        id: self.id,
                        suggest: self.suggest,
                    })?;
                    (facts.sensor, facts.sensors, facts.close, ungrouped_before) = found;
                }
                // Written after `sensors`, so the sensor's group is known by then; each entry
                // is read and dropped unless it is that group.
                "groups" => {
                    let target = match (&facts.sensor, ungrouped_before) {
                        (Some(SensorSummary { group: Some(name), .. }), _) => Some(GroupTarget::Named(name)),
                        (Some(_), Some(position)) => Some(GroupTarget::Shard(position)),
                        _ => None,
                    };
                    groups = map.next_value_seed(GroupSeed { target })?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        facts.rounds = rounds.ok_or_else(|| de::Error::missing_field("rounds"))?;
        let (group, parents) = groups;
        facts.ancestors = ancestors(group.as_ref().and_then(|g| g.parent.as_deref()), &parents);
        facts.group = group;
        Ok(facts)
    }
}

/// The `sensors` array: the entry of `id`, how many entries, (with `suggest`) the closest ids,
/// and for an ungrouped sensor how many ungrouped sensors come before it (which places it in a
/// shard).
struct SensorsSeed<'a> {
    id: &'a str,
    suggest: bool,
}

type SensorsFound = (Option<SensorSummary>, u64, Vec<String>, Option<u64>);

impl<'de> DeserializeSeed<'de> for SensorsSeed<'_> {
    type Value = SensorsFound;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for SensorsSeed<'_> {
    type Value = SensorsFound;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of sensors")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        let mut count = 0u64;
        let (mut ungrouped, mut ungrouped_before) = (0u64, None);
        // (closeness, position, id), best first.
        let mut close: Vec<(usize, u64, String)> = Vec::new();
        while let Some(entry) = seq.next_element::<SensorSummary>()? {
            let entry_ungrouped = entry.group.is_none();
            // The last sensor with the id: a removed sensor's id added again names the newer.
            if entry.id == self.id {
                ungrouped_before = entry.group.is_none().then_some(ungrouped);
                found = Some(entry);
            } else if self.suggest {
                if let Some(score) = closeness(self.id, &entry.id) {
                    close.push((score, count, entry.id));
                    close.sort();
                    close.truncate(SUGGESTIONS);
                }
            }
            count += 1;
            ungrouped += u64::from(entry_ungrouped);
        }
        let close = close.into_iter().map(|(_, _, id)| id).collect();
        Ok((found, count, close, ungrouped_before))
    }
}

/// Which entry of `groups` to keep.
enum GroupTarget<'a> {
    /// The `[[groups]]` entry of this name.
    Named(&'a str),
    /// The shard that holds the ungrouped sensor with this many ungrouped sensors before it:
    /// shards split the ungrouped sensors, in configuration order, into contiguous slices of
    /// their `sensors` counts.
    Shard(u64),
}

/// The `groups` array: the entry of `target`, if any, and each configured group's parent.
struct GroupSeed<'a> {
    target: Option<GroupTarget<'a>>,
}

/// The entry of the target group, and (name, parent) of every configured group.
type GroupsFound = (Option<GroupSummary>, Vec<(String, Option<String>)>);

impl<'de> DeserializeSeed<'de> for GroupSeed<'_> {
    type Value = GroupsFound;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for GroupSeed<'_> {
    type Value = GroupsFound;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of groups")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let (mut found, mut parents) = (None, Vec::new());
        let mut shards_before = 0u64;
        while let Some(group) = seq.next_element::<GroupSummary>()? {
            let wanted = match self.target {
                Some(GroupTarget::Named(name)) => !group.shard && group.name == name,
                Some(GroupTarget::Shard(position)) => {
                    let holds = group.shard && (shards_before..shards_before + group.sensors).contains(&position);
                    shards_before += if group.shard { group.sensors } else { 0 };
                    holds
                }
                None => false,
            };
            if !group.shard {
                parents.push((group.name.clone(), group.parent.clone()));
            }
            if wanted && found.is_none() {
                found = Some(group);
            }
        }
        Ok((found, parents))
    }
}

/// The chain of groups from `parent` up to a top-level group, by the `parents` of each group;
/// a cycle (not written by a run) ends it.
fn ancestors(parent: Option<&str>, parents: &[(String, Option<String>)]) -> Vec<String> {
    let mut chain: Vec<String> = Vec::new();
    let mut next = parent;
    while let Some(name) = next.filter(|n| !chain.iter().any(|c| c == n)) {
        chain.push(name.to_string());
        next = parents.iter().find(|(n, _)| n == name).and_then(|(_, p)| p.as_deref());
    }
    chain
}

/// How close `id` is to `wanted` (smaller is closer), or `None` when it is not close: ids that
/// differ by a few edits (a third of the length of `wanted`, at least 1), ignoring case and the
/// zeros that pad numbers (`temperature-5` is `temperature-005`), or that contain the other
/// (for 3 characters or more).
pub(super) fn closeness(wanted: &str, id: &str) -> Option<usize> {
    let (wanted, id) = (unpadded(&wanted.to_lowercase()), unpadded(&id.to_lowercase()));
    let (a, b): (Vec<char>, Vec<char>) = (wanted.chars().collect(), id.chars().collect());
    let limit = (a.len() / 3).max(1);
    if a.len().abs_diff(b.len()) <= limit {
        let distance = edit_distance(&a, &b);
        if distance <= limit {
            return Some(distance);
        }
    }
    let contained = (a.len() >= 3 && id.contains(&wanted)) || (b.len() >= 3 && wanted.contains(&id));
    contained.then(|| a.len().abs_diff(b.len()))
}

/// `text` without the leading zeros of its numbers (`bus-007` is `bus-7`, `0` stays).
fn unpadded(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut in_number = false;
    while let Some(c) = chars.next() {
        let starts_number = c.is_ascii_digit() && !in_number;
        in_number = c.is_ascii_digit();
        if starts_number && c == '0' && chars.peek().is_some_and(char::is_ascii_digit) {
            in_number = false; // the next digit may still be a leading zero
            continue;
        }
        out.push(c);
    }
    out
}

/// Levenshtein distance: insertions, deletions and substitutions of characters.
fn edit_distance(a: &[char], b: &[char]) -> usize {
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUMMARY: &str = r#"{
  "rounds": 7,
  "reads": { "requested": 21 },
  "sensors": [
    { "id": "temperature-1", "kind": "temperature", "unit": "C", "state": "running", "restarts": 0,
      "count": 7, "min": 1.0, "max": 2.0, "mean": 1.5, "stddev": 0.5, "ewma": 1.5, "last": 2.0, "anomalies": 0 },
    { "id": "bus-1", "group": "bus-a", "kind": "pressure", "unit": "hPa", "state": "given_up", "restarts": 3,
      "count": 4, "min": null, "max": null, "mean": null, "stddev": null, "ewma": null, "last": null, "anomalies": 1 },
    { "id": "Temperature-2", "kind": "temperature", "unit": "C", "state": "running", "restarts": 0,
      "count": 7, "min": 1.0, "max": 2.0, "mean": 1.5, "stddev": 0.5, "ewma": 1.5, "last": 2.0, "anomalies": 0 }
  ],
  "groups": [
    { "name": "bus-a", "strategy": "one_for_all", "shard": false, "parent": "line", "state": "escalated", "restarts": 0, "sensors": 1 },
    { "name": "site", "strategy": "one_for_one", "shard": false, "state": "running", "restarts": 0, "sensors": 0 },
    { "name": "line", "strategy": "one_for_one", "shard": false, "parent": "site", "state": "running", "restarts": 0, "sensors": 0 },
    { "name": "shard-1", "strategy": "one_for_one", "shard": true, "state": "running", "restarts": 0, "sensors": 1 },
    { "name": "shard-2", "strategy": "one_for_one", "shard": true, "state": "restarting", "restarts": 1, "sensors": 1 }
  ],
  "process": {}
}"#;

    /// The sensor's entry and its group's are kept, the rounds read, the rest skipped.
    #[test]
    fn keeps_the_sensor_and_its_group() {
        let facts = read(SUMMARY.as_bytes(), "bus-1", false).unwrap();
        assert_eq!(facts.rounds, 7);
        assert_eq!(facts.sensors, 3);
        let sensor = facts.sensor.unwrap();
        assert_eq!(
            (sensor.state.as_str(), sensor.restarts, sensor.count),
            ("given_up", 3, 4)
        );
        let group = facts.group.unwrap();
        assert_eq!((group.name.as_str(), group.state.as_str()), ("bus-a", "escalated"));
        assert_eq!(facts.ancestors, ["line", "site"]);
        // Ungrouped sensors are placed in the shards by their order among the ungrouped.
        let first = read(SUMMARY.as_bytes(), "temperature-1", false).unwrap();
        assert_eq!(first.group.unwrap().name, "shard-1");
        assert!(first.ancestors.is_empty());
        let second = read(SUMMARY.as_bytes(), "Temperature-2", false).unwrap();
        assert_eq!(second.group.unwrap().name, "shard-2");
    }

    /// The chain of parents ends at a top-level group, or where it would loop.
    #[test]
    fn ancestors_follow_the_parents() {
        let parents = |pairs: &[(&str, Option<&str>)]| -> Vec<(String, Option<String>)> {
            pairs
                .iter()
                .map(|(n, p)| (n.to_string(), p.map(str::to_string)))
                .collect()
        };
        let tree = parents(&[("a", Some("b")), ("b", Some("c")), ("c", None)]);
        assert_eq!(ancestors(Some("b"), &tree), ["b", "c"]);
        assert!(ancestors(None, &tree).is_empty());
        let looped = parents(&[("a", Some("b")), ("b", Some("a"))]);
        assert_eq!(ancestors(Some("a"), &looped), ["a", "b"]);
    }

    /// An unknown id: no entry; asked, the close ids, closest first.
    #[test]
    fn suggests_close_ids() {
        let facts = read(SUMMARY.as_bytes(), "temperature-3", true).unwrap();
        assert!(facts.sensor.is_none());
        assert_eq!(facts.close, ["temperature-1", "Temperature-2"]);
        let facts = read(SUMMARY.as_bytes(), "bus", true).unwrap();
        assert_eq!(facts.close, ["bus-1"]);
        assert!(read(SUMMARY.as_bytes(), "xyz", true).unwrap().close.is_empty());
    }

    /// A summary without rounds, or cut short, is an error with its position.
    #[test]
    fn a_broken_summary_is_an_error() {
        let e = read(&b"{\"sensors\": []}"[..], "a", false).unwrap_err();
        assert_eq!(e.to_string(), "missing field `rounds` at line 1 column 15");
        let e = read(&SUMMARY.as_bytes()[..200], "a", false).unwrap_err();
        assert!(e.is_eof(), "{e}");
    }

    #[test]
    fn closeness_ranks_edits_and_containment() {
        assert_eq!(closeness("temperature-3", "temperature-3"), Some(0));
        assert_eq!(closeness("temperature-3", "temperature-03"), Some(0));
        assert_eq!(closeness("temperature-3", "temperature-13"), Some(1));
        assert_eq!(closeness("temperature-3", "TEMPERATURE-3"), Some(0));
        assert_eq!(closeness("temperature-5", "temperature-000005"), Some(0));
        assert_eq!(closeness("temperature-5", "temperature-000050"), Some(1));
        assert_eq!(unpadded("a-007-0-100-00"), "a-7-0-100-0");
        assert_eq!(closeness("temp", "temperature-3"), Some(9));
        assert_eq!(closeness("temperature-3", "pressure-3"), None);
        assert_eq!(closeness("a", "b"), Some(1));
        assert_eq!(closeness("ab", "xy"), None);
    }
}
