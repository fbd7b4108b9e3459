//! Property tests of deep supervision trees, on tokio's paused clock: random chains of nested
//! groups (any strategy and intensity), the root's own intensity, per-failure directives at
//! every level, and scripted faults of every kind (panic, crash, hang, fatal, normal exit) at
//! random rounds. Whatever the mix:
//!
//! - every round counts each sensor's read exactly once, and the summary counts the journal's
//!   events kind by kind and each sensor's `restarted` events as its restarts;
//! - each sensor's final state is the one its last journal event says (`started`, `restarted`,
//!   `resumed`, `timed_out`: running; `restart_scheduled`: restarting; `stopped`: stopped;
//!   `gave_up`: given up), and no sensor's journal ends on an undecided `failed`;
//! - a sensor is given up only with its group (the group or an ancestor given up), and every
//!   member of a given-up group ends given up, or stopped for good before it;
//! - each group's final state is the one its own events say, and a nested group is given up
//!   whenever its parent is;
//! - two runs with the same configuration write the same journal, event for event.
//!
//! A second property makes up to six changes through the run's `Control` at random instants
//! (multiples of 50 ms: on answers, deadlines and round starts), whatever the state of the
//! sensor or its group: sensors added (to any group, or none), removed, stopped and restarted.
//! The same must hold (`added`: running; `removed`: removed; a removed member may end a given-up
//! group), and two runs give the same journal and the same answers to the changes.
//!
//! 48 cases each (or `PROPTEST_CASES`); failures are saved in
//! `proptest-regressions/<test>.txt` and replayed first.

mod common;

use std::collections::HashMap;
use std::future::pending;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use sensor_actors::{run, Collector, Config, Control, RunOptions, Summary};
use serde::Deserialize;
use tokio::time::Instant;

#[derive(Debug, Clone, PartialEq, Deserialize)]
struct Event {
    sensor: Option<String>,
    group: Option<String>,
    round: u64,
    event: String,
    cause: Option<String>,
    delay_ms: Option<u64>,
    restarts: Option<u32>,
}

const STRATEGIES: [&str; 3] = ["one_for_one", "one_for_all", "rest_for_one"];
const FAULTS: [&str; 5] = ["panic", "crash", "hang", "fatal", "exit"];
const KINDS: [&str; 4] = ["panic", "fatal", "hung", "stopped"];
const DIRECTIVES: [&str; 4] = ["restart", "stop", "escalate", "resume"];

/// One group of a case: strategy, intensity, parent (an earlier group), directives, members.
#[derive(Debug, Clone)]
struct GroupCase {
    strategy: usize,
    max_restarts: u32,
    parent: Option<usize>,
    directives: Vec<(usize, usize)>,
    members: Vec<MemberCase>,
}

/// One sensor: its restart type, its directives, its scripted faults `(round, fault)`.
#[derive(Debug, Clone)]
struct MemberCase {
    restart: usize,
    directives: Vec<(usize, usize)>,
    faults: Vec<(u64, usize)>,
}

#[derive(Debug, Clone)]
struct Case {
    rounds: u64,
    root_max_restarts: u32,
    hung_after: u32,
    groups: Vec<GroupCase>,
    loner: MemberCase,
}

/// `directives = { ... }` of `pairs` (kind, directive), leaving out what a level may not say:
/// `resume` for a stopped actor, `escalate` where there is no group.
fn directives(pairs: &[(usize, usize)], grouped: bool) -> String {
    let mut seen = Vec::new();
    let items: Vec<String> = pairs
        .iter()
        .filter(|&&(k, d)| !(KINDS[k] == "stopped" && DIRECTIVES[d] == "resume"))
        .filter(|&&(_, d)| grouped || DIRECTIVES[d] != "escalate")
        .filter(|&&(k, _)| {
            let fresh = !seen.contains(&k);
            seen.push(k);
            fresh
        })
        .map(|&(k, d)| format!("{} = \"{}\"", KINDS[k], DIRECTIVES[d]))
        .collect();
    if items.is_empty() {
        String::new()
    } else {
        format!("directives = {{ {} }}\n", items.join(", "))
    }
}

fn member_toml(id: &str, group: Option<&str>, m: &MemberCase) -> String {
    let faults: Vec<String> = m
        .faults
        .iter()
        .map(|&(round, f)| format!("{{ round = {round}, fault = \"{}\" }}", FAULTS[f]))
        .collect();
    let restart = ["permanent", "transient", "temporary"][m.restart];
    let group_line = group.map(|g| format!("group = \"{g}\"\n")).unwrap_or_default();
    format!(
        "[[sensors]]\nid = \"{id}\"\n{group_line}restart = \"{restart}\"\nlatency = [\"50ms\", \"50ms\"]\nerror_rate = 0.0\nfaults = [{}]\n{}",
        faults.join(", "),
        directives(&m.directives, group.is_some())
    )
}

impl Case {
    fn toml(&self) -> String {
        let mut text = format!(
            "[collection]\ninterval = \"1s\"\nread_timeout = \"300ms\"\nrounds = {}\nseed = 3\n\
             [supervision]\nbackoff_min = \"100ms\"\nbackoff_max = \"400ms\"\nwithin = \"5s\"\nhung_after = {}\n\
             [root]\nmax_restarts = {}\nwithin = \"1m\"\n",
            self.rounds, self.hung_after, self.root_max_restarts
        );
        for (k, g) in self.groups.iter().enumerate() {
            text += &format!(
                "[[groups]]\nname = \"g{k}\"\nstrategy = \"{}\"\nmax_restarts = {}\nwithin = \"1m\"\n{}{}",
                STRATEGIES[g.strategy],
                g.max_restarts,
                g.parent.map(|p| format!("parent = \"g{p}\"\n")).unwrap_or_default(),
                directives(&g.directives, true)
            );
        }
        for (k, g) in self.groups.iter().enumerate() {
            for (j, m) in g.members.iter().enumerate() {
                text += &member_toml(&format!("g{k}-s{j}"), Some(&format!("g{k}")), m);
            }
        }
        text += &member_toml("loner", None, &self.loner);
        text
    }
}

fn member(rounds: u64) -> impl Strategy<Value = MemberCase> {
    (
        0usize..3,
        prop::collection::vec((0usize..4, 0usize..4), 0..3),
        prop::collection::vec((1..=rounds, 0usize..5), 0..3),
    )
        .prop_map(|(restart, directives, faults)| MemberCase {
            restart,
            directives,
            faults,
        })
}

fn case() -> impl Strategy<Value = Case> {
    (3u64..=9, 0u32..=2, 1u32..=2, 1usize..=4).prop_flat_map(|(rounds, root, hung_after, groups)| {
        let group = |k: usize| {
            (
                0usize..3,
                0u32..=2,
                prop::option::weighted(0.7, 0..k.max(1)),
                prop::collection::vec((0usize..4, 0usize..4), 0..2),
                prop::collection::vec(member(rounds), 0..=3),
            )
                .prop_map(move |(strategy, max_restarts, parent, directives, members)| GroupCase {
                    strategy,
                    max_restarts,
                    parent: parent.filter(|_| k > 0),
                    directives,
                    members,
                })
        };
        let groups: Vec<_> = (0..groups).map(group).collect();
        (groups, member(rounds)).prop_map(move |(groups, loner)| Case {
            rounds,
            root_max_restarts: root,
            hung_after,
            groups,
            loner,
        })
    })
}

/// A fresh system whose clock is paused from the runtime's start, as `run --clock virtual`
/// does: timers due in the same millisecond then fire in the same order on every run.
fn paused_system() -> actix::SystemRunner {
    actix::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap()
    })
}

/// Runs `toml` on a fresh system with the paused clock: its summary and journal.
fn run_once(toml: &str) -> Result<(Summary, Vec<Event>), String> {
    let config = Config::from_toml_str(toml, "prop.toml").map_err(|e| e.to_string())?;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_path_buf();
    let system = paused_system();
    let summary = system.block_on(run(config, RunOptions { out: Some(out) }, pending()));
    let summary = summary.map_err(|e| e.to_string())?;
    Ok((summary, common::read_lines(&dir.path().join("events.jsonl"))))
}

/// A change made through the run's [`Control`] while it goes on.
#[derive(Debug, Clone)]
enum Change {
    /// Adds sensor `x<n>` (the n-th added) to group `g<k>` (`None`: ungrouped; `k` taken
    /// modulo the groups).
    Add(Option<usize>, MemberCase),
    /// Removes, stops or restarts target `t` (modulo the targets: the configured sensors, then
    /// the added ones, whether they were added yet or not).
    Remove(usize),
    Stop(usize),
    Restart(usize),
}

/// Every sensor id a change may name, for `case` and its `changes`.
fn targets(case: &Case, changes: &[(u64, Change)]) -> Vec<String> {
    let mut ids: Vec<String> = case
        .groups
        .iter()
        .enumerate()
        .flat_map(|(k, g)| (0..g.members.len()).map(move |j| format!("g{k}-s{j}")))
        .collect();
    ids.push("loner".into());
    let added = changes.iter().filter(|(_, c)| matches!(c, Change::Add(..))).count();
    ids.extend((0..added).map(|n| format!("x{n}")));
    ids
}

/// Makes `changes` at their virtual instants (milliseconds from `t0`, in order) and says what
/// each did, one line each.
async fn make(control: Control, t0: Instant, case: &Case, changes: &[(u64, Change)]) -> Vec<String> {
    let ids = targets(case, changes);
    let mut added = 0;
    let mut said = Vec::new();
    for (ms, change) in changes {
        tokio::time::sleep_until(t0 + Duration::from_millis(*ms)).await;
        let id = |t: usize| ids[t % ids.len()].clone();
        let result = match change {
            Change::Add(group, member) => {
                let group = group
                    .filter(|_| !case.groups.is_empty())
                    .map(|k| format!("g{}", k % case.groups.len()));
                let entry = member_toml(&format!("x{added}"), group.as_deref(), member);
                added += 1;
                // The entry's body, without its `[[sensors]]` line.
                let body = entry.split_once('\n').unwrap().1;
                let added = control.add_toml("prop", body).await;
                added.map(|a| format!("added {:?} from round {}", a.sensors, a.first_round))
            }
            Change::Remove(t) => {
                let removed = control.remove("prop", &id(*t)).await;
                removed.map(|r| format!("removed {} after round {}", r.sensor, r.last_round))
            }
            Change::Stop(t) => control
                .stop("prop", &id(*t))
                .await
                .map(|()| format!("stopped {}", id(*t))),
            Change::Restart(t) => control
                .restart("prop", &id(*t))
                .await
                .map(|()| format!("restarted {}", id(*t))),
        };
        said.push(format!("{ms} ms: {}", result.unwrap_or_else(|e| e.to_string())));
    }
    said
}

/// Runs `toml` with `changes` made while it goes on, on a fresh system with the paused clock:
/// its summary, its journal and what each change did.
fn run_changing(
    toml: &str,
    case: &Case,
    changes: &[(u64, Change)],
) -> Result<(Summary, Vec<Event>, Vec<String>), String> {
    let dir = tempfile::tempdir().unwrap();
    let system = paused_system();
    let (summary, said) = system.block_on(async {
        let collector = Collector::new().out(dir.path()).map_err(|e| e.to_string())?;
        let control = collector.control();
        let config = collector.parse(toml, "prop.toml").map_err(|e| e.to_string())?;
        let (summary, said) = futures::join!(
            collector.run(config, pending()),
            make(control, Instant::now(), case, changes)
        );
        Ok::<_, String>((summary.map_err(|e| e.to_string())?, said))
    })?;
    Ok((summary, common::read_lines(&dir.path().join("events.jsonl")), said))
}

/// Changes at multiples of 50 ms over the run (reads take 50 ms: many fall on an answer, a
/// deadline or a round's start), each adding, removing, stopping or restarting a sensor.
fn changes(rounds: u64) -> impl Strategy<Value = Vec<(u64, Change)>> {
    let change = prop_oneof![
        (prop::option::weighted(0.8, 0usize..4), member(rounds)).prop_map(|(g, m)| Change::Add(g, m)),
        (0usize..16).prop_map(Change::Remove),
        (0usize..16).prop_map(Change::Stop),
        (0usize..16).prop_map(Change::Restart),
    ];
    prop::collection::vec((0..rounds * 20).prop_map(|k| k * 50), 1..=6)
        .prop_flat_map(move |mut at| {
            at.sort_unstable();
            let n = at.len();
            (Just(at), prop::collection::vec(change.clone(), n))
        })
        .prop_map(|(at, changes)| at.into_iter().zip(changes).collect())
}

/// The state a journal ending in `event` leaves a sensor in.
fn state_after(event: &str) -> Option<&'static str> {
    Some(match event {
        "started" | "added" | "restarted" | "resumed" | "timed_out" => "running",
        "restart_scheduled" => "restarting",
        "stopped" => "stopped",
        "gave_up" => "given_up",
        "removed" => "removed",
        _ => return None,
    })
}

/// Checks a run of `case`; `changed`: sensors were added or removed while it went on, so a
/// round's reads are not the configuration's count.
fn check(case: &Case, changed: bool, summary: &Summary, events: &[Event]) -> Result<(), String> {
    let sensors: usize = case.groups.iter().map(|g| g.members.len()).sum::<usize>() + 1;
    let r = &summary.reads;
    let per_round = changed || r.requested == summary.rounds * sensors as u64;
    if !per_round || r.requested != r.ok + r.failed + r.timed_out + r.unavailable {
        return Err(format!(
            "reads {r:?} for {} rounds of {sensors} sensors",
            summary.rounds
        ));
    }
    let mut kinds: HashMap<&str, u64> = HashMap::new();
    for e in events {
        *kinds.entry(e.event.as_str()).or_default() += 1;
    }
    for (kind, count) in &summary.events {
        if kinds.get(kind.as_str()).copied().unwrap_or(0) != *count {
            return Err(format!(
                "summary counts {count} {kind}, the journal {:?}",
                kinds.get(kind.as_str())
            ));
        }
    }
    if kinds.len() != summary.events.len() {
        return Err(format!("journal kinds {kinds:?}, summary {:?}", summary.events));
    }
    for s in &summary.sensors {
        let own: Vec<&Event> = events.iter().filter(|e| e.sensor.as_deref() == Some(&*s.id)).collect();
        let last = own.last().ok_or_else(|| format!("{}: no event", s.id))?;
        if state_after(&last.event) != Some(s.state.as_str()) {
            return Err(format!("{}: state {}, last event {last:?}", s.id, s.state));
        }
        let restarted = own.iter().filter(|e| e.event == "restarted").count() as u32;
        if restarted != s.restarts {
            return Err(format!(
                "{}: {} restarts, {restarted} restarted events",
                s.id, s.restarts
            ));
        }
        // Rounds never go back in a sensor's journal.
        if own.windows(2).any(|w| w[1].round < w[0].round) {
            return Err(format!("{}: rounds go back in {own:?}", s.id));
        }
    }
    let group_state: HashMap<&str, &str> = summary
        .groups
        .iter()
        .map(|g| (g.name.as_str(), g.state.as_str()))
        .collect();
    for (k, g) in case.groups.iter().enumerate() {
        let name = format!("g{k}");
        // A group with no sensor in it or below it is not started.
        let Some(&state) = group_state.get(name.as_str()) else {
            continue;
        };
        let own: Vec<&Event> = events
            .iter()
            .filter(|e| e.sensor.is_none() && e.group.as_deref() == Some(&*name))
            .collect();
        let expected = match own.last().map(|e| e.event.as_str()) {
            None | Some("restarted") => "running",
            Some("restart_scheduled") => "restarting",
            Some("escalated" | "stopped") => "stopped",
            Some("gave_up") => "escalated",
            Some(other) => return Err(format!("group {name} ends on {other}: {own:?}")),
        };
        if state != expected {
            return Err(format!("group {name}: state {state}, its events {own:?}"));
        }
        if let Some(parent) = g.parent {
            if group_state.get(format!("g{parent}").as_str()) == Some(&"escalated") && state != "escalated" {
                return Err(format!("group {name} is {state} under a given-up parent g{parent}"));
            }
        }
        // Its members, added ones included.
        for member in summary.sensors.iter().filter(|s| s.group.as_deref() == Some(&*name)) {
            let id = &member.id;
            let last = events
                .iter()
                .rev()
                .find(|e| e.sensor.as_deref() == Some(&**id))
                .unwrap();
            let with_group = last.cause.as_deref().is_some_and(|c| c.starts_with("group "));
            match (state, member.state.as_str()) {
                ("escalated", "given_up" | "removed") => {}
                // Stopped for good before (a normal exit, a temporary one, a stop directive),
                // not held for a decision that never came.
                ("escalated", "stopped") if !with_group => {}
                ("escalated", other) => return Err(format!("{id} is {other} in given-up group {name}")),
                (_, "given_up") => return Err(format!("{id} is given up in group {name}, which is {state}")),
                _ => {}
            }
        }
    }
    let loner = summary.sensors.iter().find(|s| &*s.id == "loner").unwrap();
    if loner.state == "given_up" && !summary.events.contains_key("gave_up") {
        return Err("loner given up without a gave_up".into());
    }
    Ok(())
}

/// 48 cases (or `PROPTEST_CASES`); failures are saved in `file` and replayed first.
fn config(file: &'static str) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48);
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(file))),
        ..ProptestConfig::default()
    }
}

/// The regressions file of test `name`, beside `Cargo.toml`.
macro_rules! regressions {
    ($name:literal) => {
        concat!(env!("CARGO_MANIFEST_DIR"), "/proptest-regressions/", $name, ".txt")
    };
}

proptest! {
    #![proptest_config(config(regressions!("tree_holds_under_changes")))]

    /// The same trees, with sensors added, removed, stopped and restarted through the run's
    /// `Control` at random instants (to groups that are down or given up too, and sensors in
    /// any state): the same agreement, and the same journal and answers from the same
    /// configuration and changes.
    #[test]
    fn tree_holds_under_changes((case, changes) in case().prop_flat_map(|c| {
        let rounds = c.rounds;
        (Just(c), changes(rounds))
    })) {
        let toml = case.toml();
        let fail = |e: String| TestCaseError::fail(format!("{e}\n--- changes ---\n{changes:#?}\n--- prop.toml ---\n{toml}"));
        let (summary, events, said) = run_changing(&toml, &case, &changes).map_err(fail)?;
        check(&case, true, &summary, &events).map_err(|e| fail(format!("{e}\n--- changes did ---\n{}", said.join("\n"))))?;
        let (_, again, said_again) = run_changing(&toml, &case, &changes).map_err(fail)?;
        prop_assert_eq!(said, said_again);
        prop_assert_eq!(events, again, "the journal differs between two runs");
    }
}

proptest! {
    #![proptest_config(config(regressions!("tree_holds_under_nested_faults")))]

    /// Deep trees with faults at every level keep the accounting, the journal and the final
    /// states in agreement, and replay the same journal from the same configuration.
    #[test]
    fn tree_holds_under_nested_faults(case in case()) {
        let toml = case.toml();
        let (summary, events) = run_once(&toml).map_err(|e| TestCaseError::fail(format!("{e}\n--- prop.toml ---\n{toml}")))?;
        check(&case, false, &summary, &events).map_err(|e| TestCaseError::fail(format!("{e}\n--- prop.toml ---\n{toml}")))?;
        let (_, again) = run_once(&toml).map_err(TestCaseError::fail)?;
        // Timestamps are not read: the paused clock starts from the wall clock.
        prop_assert_eq!(events, again, "the journal differs between two runs\n--- prop.toml ---\n{}", toml);
    }
}
