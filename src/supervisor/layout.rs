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

/// One group actor of a run's plan.
pub(super) struct Planned {
    pub(super) name: Arc<str>,
    pub(super) kind: GroupKind,
    /// Its sensors (indices into the table), in configuration order.
    pub(super) members: Vec<usize>,
    /// The arbiter it goes to (an index into the root's arbiters).
    pub(super) arbiter: usize,
    /// The slot (position in the plan) of the group it is nested in; `None`: the root.
    pub(super) parent: Option<usize>,
}

/// The groups to start: configured groups in order, spread round robin over the arbiters, then
/// the ungrouped sensors split into one contiguous shard per arbiter (the last one weighted by
/// [`WRITER_ARBITER_SHARE`] when the readings are published). A configured group with no sensor
/// in it or in any group nested in it is left out.
pub(super) fn plan(sensors: &SensorTable, groups: &[GroupSpec], arbiters: usize, keep_outcomes: bool) -> Vec<Planned> {
    let arbiters = arbiters.max(1);
    // Members by group in one pass over the sensors (not one pass per group).
    let index: std::collections::HashMap<&str, usize> =
        groups.iter().enumerate().map(|(k, g)| (g.name.as_str(), k)).collect();
    let parent_of = |k: usize| groups[k].parent.as_deref().and_then(|p| index.get(p).copied());
    let mut members_of: Vec<Vec<usize>> = vec![Vec::new(); groups.len()];
    for i in 0..sensors.len() {
        if let Some(&k) = sensors.entry(i).group.as_deref().and_then(|g| index.get(g)) {
            members_of[k].push(i);
        }
    }
    // A group is started when it or a group below it has sensors: mark each such group's
    // chain of ancestors (each walk stops at the first group already marked).
    let mut needed = vec![false; groups.len()];
    for k in (0..groups.len()).filter(|&k| !members_of[k].is_empty()) {
        let mut up = Some(k);
        while let Some(g) = up.filter(|&g| !needed[g]) {
            needed[g] = true;
            up = parent_of(g);
        }
    }
    let mut slot_of = vec![usize::MAX; groups.len()];
    let mut plan = Vec::new();
    for (k, (g, members)) in groups.iter().zip(members_of).enumerate() {
        if !needed[k] {
            continue;
        }
        slot_of[k] = plan.len();
        let kind = GroupKind::Configured {
            strategy: g.strategy,
            max_restarts: g.max_restarts,
            within: g.within,
        };
        let arbiter = plan.len() % arbiters;
        plan.push(Planned {
            name: Arc::from(g.name.as_str()),
            kind,
            members,
            arbiter,
            parent: None,
        });
    }
    for k in (0..groups.len()).filter(|&k| needed[k]) {
        plan[slot_of[k]].parent = parent_of(k).map(|p| slot_of[p]);
    }
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
            plan.push(Planned {
                name: format!("shard-{}", k + 1).into(),
                kind: GroupKind::Shard,
                members: ungrouped[from..end].to_vec(),
                arbiter: k,
                parent: None,
            });
        }
        from = end;
    }
    // A run without sensors yet (they are discovered while it runs, or its shard is empty)
    // still gets one empty shard, with its arbiter's aggregator, for the sensors to come.
    if plan.is_empty() {
        plan.push(Planned {
            name: "shard-1".into(),
            kind: GroupKind::Shard,
            members: Vec::new(),
            arbiter: 0,
            parent: None,
        });
    }
    plan
}

/// The supervision tree a run of `config` starts, as text: the root with the `[supervision]`
/// intensity it applies to its group actors and the `[root]` one for escalated groups, each
/// group (configured groups with their strategy and intensity, nested under their parents, then
/// the shards of the ungrouped sensors) with its arbiter, and each group's sensors with their
/// restart type, intensity, backoff, `hung_after` and the directives that are not `restart`; at
/// most `per_group` sensors of a group are listed, then how many more. As if the readings were
/// published (`--out`), which sizes the shards.
pub(crate) fn describe(config: &crate::Config, per_group: usize) -> String {
    use std::fmt::Write as _;
    let threads = config.runtime.threads(config.sensors.len()).max(1);
    let table = SensorTable::new(config.sensors.clone());
    let plan = plan(&table, &config.groups, threads, true);
    let (root, escalated) = (&config.supervision, &config.root);
    let mut out = String::new();
    let on_escalation = if escalated.max_restarts == 0 {
        "gives an escalated group up at once".to_string()
    } else {
        format!(
            "restarts an escalated group at most {} within {} (backoff {}..{})",
            escalated.max_restarts,
            duration(escalated.within),
            duration(escalated.backoff_min),
            duration(escalated.backoff_max)
        )
    };
    let _ = writeln!(
        out,
        "root: restarts a group actor that stops, at most {} within {} (backoff {}..{}); {on_escalation}; {threads} thread(s)",
        root.max_restarts,
        duration(root.within),
        duration(root.backoff_min),
        duration(root.backoff_max),
    );
    let tops: Vec<usize> = (0..plan.len()).filter(|&k| plan[k].parent.is_none()).collect();
    for (j, &k) in tops.iter().enumerate() {
        describe_group(&mut out, config, &plan, k, "", j + 1 == tops.len(), per_group);
    }
    out
}

fn duration(d: std::time::Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// Writes group `k` of `plan` and its children (its sensors, then the groups nested in it)
/// under `prefix`.
fn describe_group(
    out: &mut String,
    config: &crate::Config,
    plan: &[Planned],
    k: usize,
    prefix: &str,
    last: bool,
    per_group: usize,
) {
    use std::fmt::Write as _;
    let g = &plan[k];
    let (branch, indent) = if last {
        ("└── ", "    ")
    } else {
        ("├── ", "│   ")
    };
    let what = match &g.kind {
        GroupKind::Configured {
            strategy,
            max_restarts,
            within,
        } => {
            let up = match g.parent {
                Some(p) => format!("group {}", plan[p].name),
                None => "the root".to_string(),
            };
            format!(
                "group {}: {}, at most {max_restarts} restarts within {}, then escalates to {up}",
                g.name,
                strategy.as_str(),
                duration(*within)
            )
        }
        GroupKind::Shard => format!("{}: ungrouped sensors, one_for_one, each its own intensity", g.name),
    };
    let _ = writeln!(out, "{prefix}{branch}{what} [thread {}]", g.arbiter + 1);
    let prefix = format!("{prefix}{indent}");
    let subgroups: Vec<usize> = (0..plan.len()).filter(|&c| plan[c].parent == Some(k)).collect();
    let shown = g.members.len().min(per_group);
    let more = g.members.len() - shown;
    for (j, &i) in g.members.iter().take(shown).enumerate() {
        let twig = if j + 1 == shown && more == 0 && subgroups.is_empty() {
            "└── "
        } else {
            "├── "
        };
        let s = &config.sensors[i];
        let p = &s.policy;
        let intensity = match g.kind {
            GroupKind::Shard => format!(", at most {} restarts within {}", p.max_restarts, duration(p.within)),
            GroupKind::Configured { .. } => String::new(),
        };
        let directives: String = p
            .directives
            .overrides()
            .iter()
            .map(|(kind, d)| format!(", {} on {}", d.as_str(), kind.as_str()))
            .collect();
        let _ = writeln!(
            out,
            "{prefix}{twig}{} ({}): {}{intensity}, backoff {}..{}, hung after {} timeouts{directives}",
            s.id,
            s.kind,
            p.restart,
            duration(p.backoff_min),
            duration(p.backoff_max),
            p.hung_after
        );
    }
    if more > 0 {
        let twig = if subgroups.is_empty() {
            "└── "
        } else {
            "├── "
        };
        let _ = writeln!(out, "{prefix}{twig}... {more} more");
    }
    for (j, &c) in subgroups.iter().enumerate() {
        describe_group(out, config, plan, c, &prefix, j + 1 == subgroups.len(), per_group);
    }
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
