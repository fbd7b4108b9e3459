//! The supervision tree beyond one level, end to end under tokio's paused clock: groups nested
//! in groups with escalation up the chain, the root's own intensity for escalated groups, a
//! parent's strategy taking in its child groups, and per-failure directives (restart, stop,
//! escalate, resume). Each scenario checks the journal event for event and the accounting.

mod common;

use std::future::pending;

use sensor_actors::{run, Config, RunOptions, Summary};
use serde::Deserialize;

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

struct Outcome {
    summary: Summary,
    events: Vec<Event>,
}

impl Outcome {
    /// The journal without the first `started` events, one compact line per event:
    /// `<sensor or group> <event> (<cause>) in <delay>ms #<restarts>`.
    fn journal(&self) -> Vec<String> {
        self.events
            .iter()
            .filter(|e| e.event != "started")
            .map(|e| {
                let who = e.sensor.as_ref().or(e.group.as_ref()).unwrap();
                let mut line = format!("{who} {}", e.event);
                if let Some(cause) = &e.cause {
                    line += &format!(" ({cause})");
                }
                if let Some(delay) = e.delay_ms {
                    line += &format!(" in {delay}ms");
                }
                if let Some(restarts) = e.restarts {
                    line += &format!(" #{restarts}");
                }
                line
            })
            .collect()
    }

    /// The journal lines about `who` (a sensor, or a group's own events).
    fn of(&self, who: &str) -> Vec<String> {
        self.journal()
            .into_iter()
            .filter(|l| l.split(' ').next() == Some(who))
            .collect()
    }

    /// `(name, parent, state, restarts)` of each group of the summary.
    fn groups(&self) -> Vec<(String, Option<String>, String, u32)> {
        let groups = self.summary.groups.iter();
        groups
            .map(|g| (g.name.clone(), g.parent.clone(), g.state.clone(), g.restarts))
            .collect()
    }

    /// The final state of group `name`.
    fn group_state(&self, name: &str) -> &str {
        &self.summary.groups.iter().find(|g| g.name == name).unwrap().state
    }

    /// `(state, restarts)` of sensor `id`.
    fn sensor(&self, id: &str) -> (String, u32) {
        let s = self.summary.sensors.iter().find(|s| s.id == id).unwrap();
        (s.state.clone(), s.restarts)
    }
}

/// Runs `toml` to the end (the calling test pauses tokio's clock first) and checks that every
/// read is accounted for and that the summary counts the journal's events.
async fn run_toml(toml: &str) -> Outcome {
    let config = Config::from_toml_str(toml, "tree.toml").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let options = RunOptions {
        out: Some(dir.path().to_path_buf()),
    };
    let summary = run(config, options, pending()).await.unwrap();
    let r = &summary.reads;
    assert_eq!(r.requested, r.ok + r.failed + r.timed_out + r.unavailable);
    let events: Vec<Event> = common::read_lines(&dir.path().join("events.jsonl"));
    for (kind, count) in &summary.events {
        let journaled = events.iter().filter(|e| &e.event == kind).count() as u64;
        assert_eq!(journaled, *count, "{kind}");
    }
    Outcome { summary, events }
}

/// 1 s rounds, 100 ms reads, a fixed 200 ms backoff (no jitter), and a sensor outside every
/// group that keeps the run going.
const BASE: &str = r#"
[collection]
interval = "1s"
read_timeout = "300ms"
rounds = 6
seed = 5
[supervision]
backoff_min = "200ms"
backoff_max = "200ms"
[[sensors]]
id = "outside"
latency = ["100ms", "100ms"]
error_rate = 0.0
"#;

/// A member of `group` with `faults` and extra keys.
fn member(id: &str, group: &str, faults: &str, extra: &str) -> String {
    format!(
        "[[sensors]]\nid = \"{id}\"\ngroup = \"{group}\"\nlatency = [\"100ms\", \"100ms\"]\nerror_rate = 0.0\nfaults = [{faults}]\n{extra}\n"
    )
}

/// The root restarts an escalated top-level group once within 1 min, after 300 ms.
const ROOT_RESTARTS_ONCE: &str = r#"
[root]
max_restarts = 1
within = "1m"
backoff_min = "300ms"
backoff_max = "300ms"
"#;

/// A `[[groups]]` entry: `name` under `parent`, `max_restarts` within 1 min.
fn group(name: &str, parent: Option<&str>, max_restarts: u32) -> String {
    let parent = parent.map(|p| format!("parent = \"{p}\"\n")).unwrap_or_default();
    format!("[[groups]]\nname = \"{name}\"\n{parent}max_restarts = {max_restarts}\nwithin = \"1m\"\n")
}

/// A three-level chain, root > site > bus: bus (intensity 0) escalates on its first failure;
/// its parent site counts the restart against its own intensity (1 within 1 min) and restarts
/// bus after the `[supervision]` backoff. bus's second escalation exceeds site's intensity:
/// site escalates to the root, which gives it up with everything nested in it.
#[actix_rt::test]
async fn escalation_climbs_a_chain_of_nested_groups() {
    tokio::time::pause();
    let toml = format!(
        "{BASE}{}{}{}{}{}",
        group("bus", Some("site"), 0),
        group("site", None, 1),
        member("gateway", "site", "", ""),
        member("bus-1", "bus", "{ round = 2, fault = \"fatal\" }", ""),
        member("bus-2", "bus", "{ round = 4, fault = \"fatal\" }", ""),
    );
    let out = run_toml(&toml).await;
    let bus = "group bus escalated: more than 0 restarts within 1m";
    assert_eq!(
        out.journal(),
        [
            "bus-1 failed (fatal: injected fatal error in round 2)".to_string(),
            format!("bus-1 stopped ({bus})"),
            format!("bus-2 stopped ({bus})"),
            "bus escalated (more than 0 restarts within 1m)".into(),
            // site decides: bus is its child, restarted after the backoff.
            "bus restart_scheduled in 200ms #0".into(),
            "bus-1 restart_scheduled in 200ms #0".into(),
            "bus-2 restart_scheduled in 200ms #0".into(),
            "bus restarted #1".into(),
            "bus-1 restarted #1".into(),
            "bus-2 restarted #1".into(),
            "bus-2 failed (fatal: injected fatal error in round 4)".into(),
            format!("bus-1 stopped ({bus})"),
            format!("bus-2 stopped ({bus})"),
            "bus escalated (more than 0 restarts within 1m)".into(),
            // site's second restart within its window is one too many: up to the root.
            "gateway gave_up (group site escalated: more than 1 restarts within 1m) #0".into(),
            "site escalated (more than 1 restarts within 1m)".into(),
            "site gave_up (escalated: more than 1 restarts within 1m) #0".into(),
            "bus gave_up (group site given up) #1".into(),
            "bus-1 gave_up (group bus given up: group site given up) #1".into(),
            "bus-2 gave_up (group bus given up: group site given up) #1".into(),
        ]
    );
    // Each event carries its round: the first escalation in round 2, the last in round 4.
    let rounds: Vec<u64> = out
        .events
        .iter()
        .filter(|e| e.event == "escalated")
        .map(|e| e.round)
        .collect();
    assert_eq!(rounds, [2, 4, 4]);
    assert_eq!(
        out.groups(),
        [
            ("bus".into(), Some("site".into()), "escalated".into(), 1),
            ("site".into(), None, "escalated".into(), 0),
            ("shard-1".into(), None, "running".into(), 0),
        ]
    );
    assert_eq!(out.sensor("bus-1"), ("given_up".into(), 1));
    assert_eq!(out.sensor("gateway"), ("given_up".into(), 0));
    assert_eq!(out.sensor("outside"), ("running".into(), 0));
    // 6 rounds of 4 sensors: two failed reads, and the three of site's subtree are
    // unavailable in rounds 5 and 6 (bus's restart landed within round 2's second).
    let r = &out.summary.reads;
    assert_eq!((r.requested, r.failed, r.unavailable, r.ok), (24, 2, 6, 16));
}

/// The root's own intensity (`[root]`): a top-level group that escalates is restarted by the
/// root after the root's backoff, and given up when it escalates more than `max_restarts` times
/// within `within`.
#[actix_rt::test]
async fn the_root_restarts_an_escalated_group_then_gives_it_up() {
    tokio::time::pause();
    let toml = format!(
        "{BASE}{ROOT_RESTARTS_ONCE}[[groups]]
name = \"bus\"
max_restarts = 0
{}{}",
        member(
            "bus-1",
            "bus",
            "{ round = 2, fault = \"panic\" }, { round = 4, fault = \"panic\" }",
            ""
        ),
        member("bus-2", "bus", "", ""),
    );
    let out = run_toml(&toml).await;
    let stopped = "group bus escalated: more than 0 restarts within 10s";
    let given_up = "escalated: more than 0 restarts within 10s (root: more than 1 restarts within 1m)";
    assert_eq!(
        out.journal(),
        [
            "bus-1 failed (panic: injected panic in round 2)".to_string(),
            format!("bus-1 stopped ({stopped})"),
            format!("bus-2 stopped ({stopped})"),
            "bus escalated (more than 0 restarts within 10s)".into(),
            "bus restart_scheduled in 300ms #0".into(),
            "bus-1 restart_scheduled in 300ms #0".into(),
            "bus-2 restart_scheduled in 300ms #0".into(),
            "bus restarted #1".into(),
            "bus-1 restarted #1".into(),
            "bus-2 restarted #1".into(),
            "bus-1 failed (panic: injected panic in round 4)".into(),
            format!("bus-1 stopped ({stopped})"),
            format!("bus-2 stopped ({stopped})"),
            "bus escalated (more than 0 restarts within 10s)".into(),
            format!("bus gave_up ({given_up}) #1"),
            format!("bus-1 gave_up (group bus given up: {given_up}) #1"),
            format!("bus-2 gave_up (group bus given up: {given_up}) #1"),
        ]
    );
    // The restart's backoff is the root's: attempt 1, window 1 of 1.
    let scheduled = out
        .events
        .iter()
        .find(|e| e.group.as_deref() == Some("bus") && e.event == "restart_scheduled");
    assert_eq!(scheduled.unwrap().round, 2);
    assert_eq!(out.groups()[0], ("bus".into(), None, "escalated".into(), 1));
    // A given-up escalation ends the run normally (the group asked for it).
    assert_eq!(out.summary.rounds, 6);
}

/// Without `[root]`, an escalated top-level group is given up at once, its members journaled
/// `gave_up` before the group's `escalated` (as before nesting existed).
#[actix_rt::test]
async fn without_root_intensity_an_escalated_group_is_given_up_at_once() {
    tokio::time::pause();
    let toml = format!(
        "{BASE}
[[groups]]
name = \"bus\"
max_restarts = 0
{}",
        member("bus-1", "bus", "{ round = 2, fault = \"panic\" }", ""),
    );
    let out = run_toml(&toml).await;
    assert_eq!(
        out.journal(),
        [
            "bus-1 failed (panic: injected panic in round 2)",
            "bus-1 gave_up (group bus escalated: more than 0 restarts within 10s) #0",
            "bus escalated (more than 0 restarts within 10s)",
            "bus gave_up (escalated: more than 0 restarts within 10s) #0",
        ]
    );
}

/// A member waiting for its own restart when an ancestor's escalation stops its group says it
/// stopped: its restart is called off with the group, and the root's restart of the tree
/// schedules it again (one restart, not two). bus-a restarts its member (intensity 1); bus-b
/// escalates to site, site to top (intensity 0 each), and top to the root, in the same round.
/// A run that ends before the root decides leaves the member stopped, as its journal says
/// (`tree_properties`, the saved case of a four-level tree).
#[actix_rt::test]
async fn a_member_waiting_for_its_restart_stops_with_an_escalating_ancestor() {
    tokio::time::pause();
    let toml = format!(
        "{BASE}{ROOT_RESTARTS_ONCE}{}{}{}{}{}{}",
        group("top", None, 0),
        group("site", Some("top"), 0),
        group("bus-a", Some("site"), 1),
        group("bus-b", Some("site"), 0),
        member("a-1", "bus-a", "{ round = 2, fault = \"panic\" }", ""),
        member("b-1", "bus-b", "{ round = 2, fault = \"panic\" }", ""),
    );
    let site = "group site escalated: more than 0 restarts within 1m";
    let out = run_toml(&toml).await;
    assert_eq!(
        out.of("a-1"),
        [
            "a-1 failed (panic: injected panic in round 2)".to_string(),
            "a-1 restart_scheduled in 200ms #0".into(),
            format!("a-1 stopped ({site})"),
            "a-1 restart_scheduled in 300ms #0".into(),
            "a-1 restarted #1".into(),
        ]
    );
    assert_eq!(out.sensor("a-1"), ("running".into(), 1));
}

/// An escalation that climbs to a top-level group as the last round ends: the root gives that
/// group up (without `[root]` restarts the decision is sure), and with it every group nested
/// in it and their members, as it does in the middle of a run. bus hangs in the last round and
/// escalates on it; site and top have intensity 0.
#[actix_rt::test]
async fn a_group_given_up_as_the_run_ends_takes_its_nested_groups_with_it() {
    tokio::time::pause();
    let base = BASE.replace("backoff_max = \"200ms\"\n", "backoff_max = \"200ms\"\nhung_after = 1\n");
    let toml = format!(
        "{base}
{}{}{}{}",
        group("top", None, 0),
        group("site", Some("top"), 0),
        group("bus", Some("site"), 1),
        member(
            "bus-1",
            "bus",
            "{ round = 6, fault = \"hang\" }",
            "directives = { hung = \"escalate\" }"
        ),
    );
    let out = run_toml(&toml).await;
    let hung = "bus-1 failed (hung: 1 consecutive read timeouts): escalate on hung";
    let given_up = "escalated: more than 0 restarts within 1m";
    assert_eq!(
        out.journal(),
        [
            "bus-1 failed (hung: 1 consecutive read timeouts)".to_string(),
            format!("bus-1 stopped (group bus escalated: {hung})"),
            format!("bus escalated ({hung})"),
            "site escalated (more than 0 restarts within 1m)".into(),
            "top escalated (more than 0 restarts within 1m)".into(),
            format!("top gave_up ({given_up}) #0"),
            "site gave_up (group top given up) #0".into(),
            "bus gave_up (group top given up) #0".into(),
            "bus-1 gave_up (group bus given up: group top given up) #0".into(),
        ]
    );
    // The escalations took place in the last round, 6, which the run still ended on.
    assert!(out.events.iter().filter(|e| e.event != "started").all(|e| e.round == 6));
    assert_eq!(out.summary.rounds, 6);
    for name in ["top", "site", "bus"] {
        assert_eq!(out.group_state(name), "escalated", "{name}");
    }
    assert_eq!(out.sensor("bus-1"), ("given_up".into(), 0));
    assert_eq!(out.sensor("outside"), ("running".into(), 0));
}

/// Two escalations that cross: bus escalates to site (intensity 0) while top's own sensor
/// crashes past top's intensity, in the same round. The root gives top up, with site and bus,
/// before site hears of bus: site's own escalation then is moot and not journaled, so site's
/// journal ends on its give-up, as its state does. site's member, stopped by site as it
/// escalated, is given up with it.
#[actix_rt::test]
async fn an_escalation_crossing_the_give_up_of_its_group_is_not_journaled() {
    tokio::time::pause();
    let toml = format!(
        "{BASE}
{}{}{}{}{}{}",
        group("top", None, 1),
        group("site", Some("top"), 0),
        group("bus", Some("site"), 0),
        member("gateway", "top", "{ round = 2, fault = \"crash\" }", ""),
        member("site-1", "site", "{ round = 1, fault = \"panic\" }", ""),
        member("bus-1", "bus", "{ round = 2, fault = \"fatal\" }", ""),
    );
    let out = run_toml(&toml).await;
    let top = "group top escalated: more than 1 restarts within 1m";
    let site = "group site escalated: more than 0 restarts within 1m";
    assert_eq!(
        out.of("site"),
        [
            // Round 1: site-1's panic, site's restart by top (top's one restart).
            "site escalated (more than 0 restarts within 1m)".to_string(),
            "site restart_scheduled in 200ms #0".into(),
            "site restarted #1".into(),
            // Round 2: top gives up, site with it; site's escalation on bus's comes after.
            format!("site stopped ({top})"),
            "site gave_up (group top given up) #1".into(),
        ]
    );
    let site_1 = out.of("site-1");
    assert_eq!(
        site_1[site_1.len() - 2..],
        [
            format!("site-1 stopped ({site})"),
            "site-1 gave_up (group site given up: group top given up) #1".into(),
        ]
    );
    assert_eq!(out.of("bus").last().unwrap(), "bus gave_up (group top given up) #1");
    for name in ["top", "site", "bus"] {
        assert_eq!(out.group_state(name), "escalated", "{name}");
    }
    for id in ["gateway", "site-1", "bus-1"] {
        assert_eq!(out.sensor(id).0, "given_up", "{id}");
    }
}

/// A parent's strategy counts its child groups as children after its sensors: a one_for_all
/// parent whose sensor fails stops and restarts its child group (with the group's members)
/// together with the sensor, after the sensor's backoff.
#[actix_rt::test]
async fn one_for_all_restarts_the_child_groups_with_a_failed_sensor() {
    tokio::time::pause();
    let toml = format!(
        "{BASE}
[[groups]]
name = \"site\"
strategy = \"one_for_all\"
within = \"1m\"
[[groups]]
name = \"bus\"
parent = \"site\"
{}{}",
        member("gateway", "site", "{ round = 2, fault = \"fatal\" }", ""),
        member("bus-1", "bus", "", ""),
    );
    let out = run_toml(&toml).await;
    let with = "one_for_all: restarting with gateway";
    assert_eq!(
        out.of("gateway"),
        [
            "gateway failed (fatal: injected fatal error in round 2)",
            "gateway restart_scheduled in 200ms #0",
            "gateway restarted #1",
        ]
    );
    assert_eq!(
        out.of("bus"),
        [
            format!("bus stopped ({with})"),
            "bus restart_scheduled in 200ms #0".into(),
            "bus restarted #1".into(),
        ]
    );
    assert_eq!(
        out.of("bus-1"),
        [
            format!("bus-1 stopped ({with})"),
            "bus-1 restart_scheduled in 200ms #0".into(),
            "bus-1 restarted #1".into(),
        ]
    );
    // Causal order: the group's decision before its members hear of it.
    let journal = out.journal();
    let at = |line: &str| journal.iter().position(|l| l == line).unwrap();
    assert!(at("gateway restart_scheduled in 200ms #0") < at("bus restart_scheduled in 200ms #0"));
    assert!(at("bus restart_scheduled in 200ms #0") < at("bus-1 restart_scheduled in 200ms #0"));
    assert!(at("bus restarted #1") < at("bus-1 restarted #1"));
    assert_eq!(out.sensor("bus-1"), ("running".into(), 1));
    // Only round 2's failed read is lost: every restart lands within its second.
    let r = &out.summary.reads;
    assert_eq!((r.failed, r.unavailable), (1, 0));
}

/// rest_for_one over child groups: when the first of three child groups escalates, its parent
/// restarts it and the child groups after it, not the parent's own sensor before them.
#[actix_rt::test]
async fn rest_for_one_restarts_the_later_child_groups() {
    tokio::time::pause();
    let toml = format!(
        "{BASE}
[[groups]]
name = \"site\"
strategy = \"rest_for_one\"
within = \"1m\"
[[groups]]
name = \"a\"
parent = \"site\"
max_restarts = 0
[[groups]]
name = \"b\"
parent = \"site\"
[[groups]]
name = \"c\"
parent = \"site\"
{}{}{}{}",
        member("gateway", "site", "", ""),
        member("a-1", "a", "", ""),
        member(
            "b-1",
            "b",
            "{ round = 2, fault = \"fatal\" }",
            "directives = { fatal = \"escalate\" }"
        ),
        member("c-1", "c", "", ""),
    );
    let out = run_toml(&toml).await;
    assert!(out.of("gateway").is_empty(), "{:?}", out.of("gateway"));
    assert!(
        out.of("a").is_empty() && out.of("a-1").is_empty(),
        "{:?}",
        out.journal()
    );
    let b_cause = "b-1 failed (fatal: injected fatal error in round 2): escalate on fatal";
    assert_eq!(
        out.of("b"),
        [
            format!("b escalated ({b_cause})"),
            "b restart_scheduled in 200ms #0".into(),
            "b restarted #1".into(),
        ]
    );
    assert_eq!(
        out.of("c"),
        [
            "c stopped (rest_for_one: restarting with group b)".to_string(),
            "c restart_scheduled in 200ms #0".into(),
            "c restarted #1".into(),
        ]
    );
    assert_eq!(
        out.of("c-1"),
        [
            "c-1 stopped (rest_for_one: restarting with group b)".to_string(),
            "c-1 restart_scheduled in 200ms #0".into(),
            "c-1 restarted #1".into(),
        ]
    );
    assert_eq!(out.sensor("b-1"), ("running".into(), 1));
    assert_eq!(out.sensor("a-1"), ("running".into(), 0));
}

/// Per-failure directives: `resume` keeps the actor (the sensor answers the next round without
/// a restart), `stop` stops the sensor for good without counting a restart, and a group's
/// directives apply to its members unless a member's own entry names the kind.
#[actix_rt::test]
async fn directives_resume_stop_and_inherit() {
    tokio::time::pause();
    let base = BASE.replace(
        "backoff_max = \"200ms\"\n",
        "backoff_max = \"200ms\"\ndirectives = { fatal = \"stop\" }\n",
    );
    let toml = format!(
        "{base}
[[groups]]
name = \"bus\"
directives = {{ panic = \"resume\" }}
{}{}
[[sensors]]
id = \"loner\"
latency = [\"100ms\", \"100ms\"]
error_rate = 0.0
faults = [{{ round = 2, fault = \"fatal\" }}]
",
        member(
            "bus-1",
            "bus",
            "{ round = 2, fault = \"panic\" }, { round = 3, fault = \"fatal\" }",
            ""
        ),
        member(
            "bus-2",
            "bus",
            "{ round = 2, fault = \"panic\" }",
            "directives = { panic = \"restart\" }"
        ),
    );
    let out = run_toml(&toml).await;
    assert_eq!(
        out.of("bus-1"),
        [
            "bus-1 failed (panic: injected panic in round 2)",
            "bus-1 resumed (resume on panic)",
            "bus-1 failed (fatal: injected fatal error in round 3)",
            "bus-1 stopped (stop on fatal)",
        ]
    );
    assert_eq!(
        out.of("bus-2"),
        [
            "bus-2 failed (panic: injected panic in round 2)",
            "bus-2 restart_scheduled in 200ms #0",
            "bus-2 restarted #1",
        ]
    );
    assert_eq!(
        out.of("loner"),
        [
            "loner failed (fatal: injected fatal error in round 2)",
            "loner stopped (stop on fatal)",
        ]
    );
    assert_eq!(out.sensor("bus-1"), ("stopped".into(), 0));
    assert_eq!(out.sensor("loner"), ("stopped".into(), 0));
    // bus-1 resumed: round 3 read it (and failed it) with the same actor; then it was stopped.
    // Unavailable: bus-1 in rounds 4-6, loner in rounds 3-6.
    let r = &out.summary.reads;
    assert_eq!((r.failed, r.unavailable), (4, 7));
    assert_eq!(out.summary.events.get("resumed"), Some(&1));
}

/// `escalate` fails the group at once, whatever its intensity: the member's failure is the
/// group's cause.
#[actix_rt::test]
async fn an_escalate_directive_fails_the_group_at_once() {
    tokio::time::pause();
    let toml = format!(
        "{BASE}
[[groups]]
name = \"bus\"
max_restarts = 10
{}{}",
        member(
            "bus-1",
            "bus",
            "{ round = 3, fault = \"crash\" }",
            "directives = { stopped = \"escalate\" }"
        ),
        member("bus-2", "bus", "", ""),
    );
    let out = run_toml(&toml).await;
    let cause = "bus-1 failed (stopped: mailbox closed): escalate on stopped";
    assert_eq!(
        out.journal(),
        [
            "bus-1 failed (stopped: mailbox closed)".to_string(),
            format!("bus-1 gave_up (group bus escalated: {cause}) #0"),
            format!("bus-2 gave_up (group bus escalated: {cause}) #0"),
            format!("bus escalated ({cause})"),
            format!("bus gave_up (escalated: {cause}) #0"),
        ]
    );
}

/// Nesting and directives are checked when the configuration is read: one line naming the
/// field.
#[test]
fn bad_nesting_and_directives_are_refused_with_their_field() {
    let err = |toml: &str| Config::from_toml_str(toml, "t.toml").unwrap_err().to_string();
    let sensor = "[[sensors]]\ncount = 1\n";
    assert_eq!(
        err(&format!("[[groups]]\nname = \"a\"\nparent = \"nope\"\n{sensor}")),
        "t.toml: groups[0].parent: no [[groups]] entry is named \"nope\""
    );
    assert_eq!(
        err(&format!("[[groups]]\nname = \"a\"\nparent = \"a\"\n{sensor}")),
        "t.toml: groups[0].parent: \"a\" would be its own ancestor"
    );
    assert_eq!(
        err(&format!(
            "[[groups]]\nname = \"a\"\nparent = \"c\"\n[[groups]]\nname = \"b\"\nparent = \"a\"\n[[groups]]\nname = \"c\"\nparent = \"b\"\n{sensor}"
        )),
        "t.toml: groups[0].parent: \"a\" would be its own ancestor"
    );
    assert_eq!(
        err("[[sensors]]\ncount = 1\ndirectives = { hung = \"escalate\" }\n"),
        "t.toml: sensors[0].directives.hung: expected restart, stop or resume: escalate needs a [[groups]] entry to escalate, and this sensor has none"
    );
    assert_eq!(
        err(&format!("[supervision]\ndirectives = {{ panic = \"escalate\" }}\n{sensor}")),
        "t.toml: sensors[0].directives.panic: expected restart, stop or resume: escalate needs a [[groups]] entry to escalate, and this sensor has none"
    );
    assert_eq!(
        err(&format!("[[groups]]\nname = \"a\"\ndirectives = {{ stopped = \"resume\" }}\n{sensor}")),
        "t.toml: groups[0].directives.stopped: expected restart, stop or escalate: an actor that stopped has nothing to resume"
    );
    assert!(err(&format!("[root]\nmax_restarts = 1\nwithin = \"0s\"\n{sensor}")).starts_with("t.toml: root.within: "));
    assert!(err("[[sensors]]\ncount = 1\ndirectives = { panic = \"ignore\" }\n")
        .starts_with("t.toml: sensors[0].directives.panic: unknown variant `ignore`"));
    // A chain of any depth is fine, in any order.
    let deep = "[[groups]]\nname = \"d\"\nparent = \"c\"\n[[groups]]\nname = \"c\"\nparent = \"b\"\n[[groups]]\nname = \"b\"\nparent = \"a\"\n[[groups]]\nname = \"a\"\n[[sensors]]\ncount = 1\ngroup = \"d\"\n";
    let config = Config::from_toml_str(deep, "t.toml").unwrap();
    assert_eq!(config.groups[0].parent.as_deref(), Some("c"));
}
