//! Where the groups go: the plan of the groups a run starts (configured groups, then one shard
//! of the ungrouped sensors per arbiter) and how the shards are sized.

use std::sync::Arc;

use super::group::GroupKind;
use crate::config::{GroupSpec, SensorTable};

/// Share of the last arbiter's shard relative to the others' when the readings are published:
/// the last arbiter is the calling thread, where subscribers started with `start()` run, the
/// JSONL files among them, formatting a line for every reading. Without readings subscribers
/// the shards are even.
pub(crate) const WRITER_ARBITER_SHARE: f64 = 0.6;

/// Where each of `arbiters` contiguous shards of `sensors` ends: even shares, except that the
/// last arbiter (the calling thread's, when there are two or more) gets `last_share` of one.
fn shard_ends(sensors: usize, arbiters: usize, last_share: f64) -> Vec<usize> {
    let weight = |k: usize| {
        if arbiters > 1 && k == arbiters - 1 {
            last_share
        } else {
            1.0
        }
    };
    let total: f64 = (0..arbiters).map(weight).sum();
    let mut cumulative = 0.0;
    (0..arbiters)
        .map(|k| {
            cumulative += weight(k);
            if k == arbiters - 1 {
                sensors
            } else {
                ((sensors as f64 * cumulative / total).round() as usize).min(sensors)
            }
        })
        .collect()
}

/// The groups to start, each with the arbiter it goes to (an index into the root's arbiters):
/// configured groups in order, spread round robin, then the ungrouped sensors split into one
/// contiguous shard per arbiter (the last one weighted by [`WRITER_ARBITER_SHARE`] when the
/// readings are published).
pub(super) fn plan(
    sensors: &SensorTable,
    groups: &[GroupSpec],
    arbiters: usize,
    keep_outcomes: bool,
) -> Vec<(Arc<str>, GroupKind, Vec<usize>, usize)> {
    let arbiters = arbiters.max(1);
    // Members by group in one pass over the sensors (not one pass per group).
    let index: std::collections::HashMap<&str, usize> =
        groups.iter().enumerate().map(|(k, g)| (g.name.as_str(), k)).collect();
    let mut members_of: Vec<Vec<usize>> = vec![Vec::new(); groups.len()];
    for i in 0..sensors.len() {
        if let Some(&k) = sensors.entry(i).group.as_deref().and_then(|g| index.get(g)) {
            members_of[k].push(i);
        }
    }
    let mut plan: Vec<(Arc<str>, GroupKind, Vec<usize>, usize)> = groups
        .iter()
        .zip(members_of)
        .map(|(g, members)| {
            let kind = GroupKind::Configured {
                strategy: g.strategy,
                max_restarts: g.max_restarts,
                within: g.within,
            };
            (Arc::from(g.name.as_str()), kind, members)
        })
        .filter(|(_, _, members): &(_, _, Vec<usize>)| !members.is_empty())
        .enumerate()
        .map(|(k, (name, kind, members))| (name, kind, members, k % arbiters))
        .collect();
    let ungrouped: Vec<usize> = (0..sensors.len())
        .filter(|&i| sensors.entry(i).group.is_none())
        .collect();
    let mut from = 0;
    let last_share = if keep_outcomes { WRITER_ARBITER_SHARE } else { 1.0 };
    for (k, end) in shard_ends(ungrouped.len(), arbiters, last_share)
        .into_iter()
        .enumerate()
    {
        if end > from {
            let members = ungrouped[from..end].to_vec();
            plan.push((format!("shard-{}", k + 1).into(), GroupKind::Shard, members, k));
        }
        from = end;
    }
    plan
}

/// The supervision tree a run of `config` starts, as text: the root with the `[supervision]`
/// intensity it applies to its group actors, each group (configured groups with their strategy
/// and intensity, then the shards of the ungrouped sensors) with its arbiter, and each group's
/// sensors with their restart type, intensity, backoff and `hung_after`; at most `per_group`
/// sensors of a group are listed, then how many more. As if the readings were published
/// (`--out`), which sizes the shards.
pub(crate) fn describe(config: &crate::Config, per_group: usize) -> String {
    use std::fmt::Write as _;
    let duration = |d: std::time::Duration| humantime::format_duration(d).to_string();
    let threads = config.runtime.threads(config.sensors.len()).max(1);
    let table = SensorTable::new(config.sensors.clone());
    let plan = plan(&table, &config.groups, threads, true);
    let root = &config.supervision;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "root: restarts a group actor that stops, at most {} within {} (backoff {}..{}); {} thread(s)",
        root.max_restarts,
        duration(root.within),
        duration(root.backoff_min),
        duration(root.backoff_max),
        threads
    );
    for (k, (name, kind, members, arbiter)) in plan.iter().enumerate() {
        let last_group = k + 1 == plan.len();
        let (branch, indent) = if last_group {
            ("└── ", "    ")
        } else {
            ("├── ", "│   ")
        };
        let what = match kind {
            GroupKind::Configured {
                strategy,
                max_restarts,
                within,
            } => format!(
                "group {name}: {}, at most {max_restarts} restarts within {}, then escalates",
                strategy.as_str(),
                duration(*within)
            ),
            GroupKind::Shard => format!("{name}: ungrouped sensors, one_for_one, each its own intensity"),
        };
        let _ = writeln!(out, "{branch}{what} [thread {}]", arbiter + 1);
        let shown = members.len().min(per_group);
        for (j, &i) in members.iter().take(shown).enumerate() {
            let more = members.len() > shown;
            let twig = if j + 1 == shown && !more {
                "└── "
            } else {
                "├── "
            };
            let s = &config.sensors[i];
            let p = &s.policy;
            let intensity = match kind {
                GroupKind::Shard => format!(", at most {} restarts within {}", p.max_restarts, duration(p.within)),
                GroupKind::Configured { .. } => String::new(),
            };
            let _ = writeln!(
                out,
                "{indent}{twig}{} ({}): {}{intensity}, backoff {}..{}, hung after {} timeouts",
                s.id,
                s.kind,
                p.restart,
                duration(p.backoff_min),
                duration(p.backoff_max),
                p.hung_after
            );
        }
        if members.len() > shown {
            let _ = writeln!(out, "{indent}└── ... {} more", members.len() - shown);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_writing_arbiter_gets_the_smaller_shard() {
        assert_eq!(shard_ends(100, 1, 0.6), [100]);
        assert_eq!(shard_ends(100_000, 2, 0.6), [62_500, 100_000]);
        assert_eq!(shard_ends(100_000, 2, 1.0), [50_000, 100_000]);
        assert_eq!(shard_ends(10, 3, 0.6), [4, 8, 10]);
        assert_eq!(shard_ends(10, 3, 1.0), [3, 7, 10]);
        assert_eq!(shard_ends(1, 2, 0.6), [1, 1]);
        assert_eq!(shard_ends(0, 2, 0.6), [0, 0]);
    }
}
