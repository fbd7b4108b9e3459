//! A guided tour of sensor-actors' supervision, one policy at a time.
//!
//! Run it with `cargo run --example supervision`. Each scenario's journal is checked against the
//! one written here, so the tour fails (and CI with it) if the behaviour drifts from what it
//! says.
//!
//! Each scenario runs a few simulated sensors with scripted faults (a panic, a hang, fatal errors)
//! and prints the supervision journal as the collector wrote it to `events.jsonl`: who failed and
//! why, which restart was scheduled after what backoff, what was restarted, given up or escalated.
//! The runs use tokio's paused clock, so a minute of rounds and backoffs plays in milliseconds and
//! the journal is the same on every run (the seed fixes every random draw).
//!
//! Look for: a panic restarted while the other sensors keep answering; a hang detected after
//! exactly `hung_after` timeouts; the intensity limit giving a sensor up; `transient` and
//! `temporary` differing from `permanent` (after a failure and after a normal exit); the
//! backoff doubling, capped, and starting over after a healthy stretch; `one_for_all` and
//! `rest_for_one` restarting siblings; a group's intensity counting instead of its members'; a
//! group escalating to the root, which gives it up while the run goes on; groups nested in
//! groups, escalation climbing the chain; the root's own intensity; a parent's strategy
//! restarting its child groups; directives (resume, stop, escalate) per kind of failure.

use std::future::pending;

use sensor_actors::{run, Config, RunOptions};
use serde::Deserialize;

#[derive(Deserialize)]
struct Event {
    round: u64,
    sensor: Option<String>,
    group: Option<String>,
    event: String,
    cause: Option<String>,
    delay_ms: Option<u64>,
    restarts: Option<u32>,
    attempt: Option<u32>,
    backoff_reset: Option<bool>,
    window: Option<u32>,
    max_restarts: Option<u32>,
}

/// Collection and supervision settings shared by the scenarios.
const BASE: &str = r#"
[collection]
interval = "1s"
read_timeout = "300ms"
rounds = 8
seed = 2024
[supervision]
backoff_min = "200ms"
backoff_max = "2s"
"#;

/// Each scenario: what it shows, its sensors, and the journal it must produce (`who event`,
/// without the first `started` lines): the example checks it, so it cannot drift from what it
/// says.
const SCENARIOS: &[(&str, &str, &[&str])] = &[
    (
        "permanent sensor, one panic: restarted after its backoff; the others keep answering",
        r#"[[sensors]]
count = 3
latency = ["50ms", "150ms"]
error_rate = 0.0
faults = [{ round = 2, fault = "panic", sensor = "temperature-2" }]"#,
        &[
            "temperature-2 failed",
            "temperature-2 restart_scheduled",
            "temperature-2 restarted",
        ],
    ),
    (
        "a hang: three timeouts in a row (hung_after = 3) count as one failure",
        r#"[[sensors]]
count = 2
latency = ["50ms", "150ms"]
error_rate = 0.0
hung_after = 3
faults = [{ round = 2, fault = "hang", sensor = "temperature-1" }]"#,
        &[
            "temperature-1 failed",
            "temperature-1 restart_scheduled",
            "temperature-1 restarted",
        ],
    ),
    (
        "intensity: more than max_restarts = 2 restarts within 1m gives the sensor up; backoff doubles",
        r#"[[sensors]]
id = "broken"
latency = ["50ms", "50ms"]
error_rate = 0.0
fatal_rate = 1.0
max_restarts = 2
within = "1m"
[[sensors]]
id = "healthy"
latency = ["50ms", "50ms"]
error_rate = 0.0"#,
        &[
            "broken failed",
            "broken restart_scheduled",
            "broken restarted",
            "broken failed",
            "broken restart_scheduled",
            "broken restarted",
            "broken failed",
            "broken gave_up",
        ],
    ),
    (
        "restart types: a failure in round 2 restarts permanent and transient, not temporary; a normal exit in round 5 restarts only permanent",
        r#"[[sensors]]
id = "permanent"
restart = "permanent"
latency = ["50ms", "50ms"]
error_rate = 0.0
faults = [{ round = 2, fault = "fatal" }, { round = 5, fault = "exit" }]
[[sensors]]
id = "transient"
restart = "transient"
latency = ["50ms", "50ms"]
error_rate = 0.0
faults = [{ round = 2, fault = "fatal" }, { round = 5, fault = "exit" }]
[[sensors]]
id = "temporary"
restart = "temporary"
latency = ["50ms", "50ms"]
error_rate = 0.0
faults = [{ round = 2, fault = "fatal" }]"#,
        &[
            "permanent failed",
            "transient failed",
            "temporary failed",
            "temporary stopped",
            "permanent restart_scheduled",
            "transient restart_scheduled",
            "transient restarted",
            "permanent restarted",
            "permanent stopped",
            "transient stopped",
            "permanent restart_scheduled",
            "permanent restarted",
        ],
    ),
    (
        "group one_for_all: one member fails, every member restarts",
        r#"[[sensors]]
name = "bus"
count = 3
group = "bus-a"
latency = ["50ms", "50ms"]
error_rate = 0.0
faults = [{ round = 2, fault = "fatal", sensor = "bus-2" }]
[[groups]]
name = "bus-a"
strategy = "one_for_all"
max_restarts = 3
within = "1m""#,
        &[
            "bus-2 failed",
            "bus-1 stopped",
            "bus-3 stopped",
            "bus-1 restart_scheduled",
            "bus-2 restart_scheduled",
            "bus-3 restart_scheduled",
            "bus-1 restarted",
            "bus-2 restarted",
            "bus-3 restarted",
        ],
    ),
    (
        "group rest_for_one: the failed member and the ones after it restart",
        r#"[[sensors]]
name = "bus"
count = 3
group = "bus-a"
latency = ["50ms", "50ms"]
error_rate = 0.0
faults = [{ round = 2, fault = "fatal", sensor = "bus-2" }]
[[groups]]
name = "bus-a"
strategy = "rest_for_one"
max_restarts = 3
within = "1m""#,
        &[
            "bus-2 failed",
            "bus-3 stopped",
            "bus-2 restart_scheduled",
            "bus-3 restart_scheduled",
            "bus-2 restarted",
            "bus-3 restarted",
        ],
    ),
    (
        "escalation: the group exceeds its own intensity, the root gives it up, the run goes on",
        r#"[[sensors]]
id = "outside"
latency = ["50ms", "50ms"]
error_rate = 0.0
[[sensors]]
name = "bus"
count = 2
group = "bus-a"
latency = ["50ms", "50ms"]
error_rate = 0.0
faults = [{ round = 2, fault = "fatal", sensor = "bus-1" }, { round = 4, fault = "crash", sensor = "bus-2" }]
[[groups]]
name = "bus-a"
strategy = "one_for_one"
max_restarts = 1
within = "1m""#,
        &[
            "bus-1 failed",
            "bus-1 restart_scheduled",
            "bus-1 restarted",
            "bus-2 failed",
            "bus-1 gave_up",
            "bus-2 gave_up",
            "group bus-a escalated",
            "group bus-a gave_up",
        ],
    ),
    (
        "backoff: doubling from backoff_min (200ms), capped at backoff_max (500ms), starting over after a healthy `within` (2s)",
        r#"[[sensors]]
id = "flaky"
latency = ["50ms", "50ms"]
error_rate = 0.0
within = "2s"
backoff_max = "500ms"
faults = [{ round = 2, fault = "fatal" }, { round = 3, fault = "fatal" }, { round = 4, fault = "fatal" }, { round = 7, fault = "fatal" }]"#,
        &[
            "flaky failed",
            "flaky restart_scheduled",
            "flaky restarted",
            "flaky failed",
            "flaky restart_scheduled",
            "flaky restarted",
            "flaky failed",
            "flaky restart_scheduled",
            "flaky restarted",
            "flaky failed",
            "flaky restart_scheduled (backoff reset)",
            "flaky restarted",
        ],
    ),
    (
        "group rest_for_one, the first member fails: every member after it restarts too",
        r#"[[sensors]]
name = "bus"
count = 3
group = "bus-a"
latency = ["50ms", "50ms"]
error_rate = 0.0
faults = [{ round = 2, fault = "fatal", sensor = "bus-1" }]
[[groups]]
name = "bus-a"
strategy = "rest_for_one"
max_restarts = 3
within = "1m""#,
        &[
            "bus-1 failed",
            "bus-2 stopped",
            "bus-3 stopped",
            "bus-1 restart_scheduled",
            "bus-2 restart_scheduled",
            "bus-3 restart_scheduled",
            "bus-1 restarted",
            "bus-2 restarted",
            "bus-3 restarted",
        ],
    ),
    (
        "group versus member intensity: in a group the group's window counts (max_restarts = 1), not the member's own (10)",
        r#"[[sensors]]
id = "outside"
latency = ["50ms", "50ms"]
error_rate = 0.0
[[sensors]]
id = "bus-1"
group = "bus-a"
max_restarts = 10
latency = ["50ms", "50ms"]
error_rate = 0.0
faults = [{ round = 2, fault = "fatal" }, { round = 4, fault = "fatal" }]
[[groups]]
name = "bus-a"
max_restarts = 1
within = "1m""#,
        &[
            "bus-1 failed",
            "bus-1 restart_scheduled",
            "bus-1 restarted",
            "bus-1 failed",
            "bus-1 gave_up",
            "group bus-a escalated",
            "group bus-a gave_up",
        ],
    ),
    (
        "nested groups: bus (parent = site) escalates to site, which restarts it; its second escalation exceeds site's intensity and climbs to the root",
        r#"[[sensors]]
id = "outside"
latency = ["50ms", "50ms"]
error_rate = 0.0
[[sensors]]
id = "gateway"
group = "site"
latency = ["50ms", "50ms"]
error_rate = 0.0
[[sensors]]
id = "bus-1"
group = "bus"
latency = ["50ms", "50ms"]
error_rate = 0.0
faults = [{ round = 2, fault = "panic" }, { round = 5, fault = "panic" }]
[[groups]]
name = "site"
max_restarts = 1
within = "1m"
[[groups]]
name = "bus"
parent = "site"
max_restarts = 0"#,
        &[
            "bus-1 failed",
            "bus-1 stopped",
            "group bus escalated",
            "group bus restart_scheduled",
            "bus-1 restart_scheduled",
            "group bus restarted",
            "bus-1 restarted",
            "bus-1 failed",
            "bus-1 stopped",
            "group bus escalated",
            "gateway gave_up",
            "group site escalated",
            "group site gave_up",
            "group bus gave_up",
            "bus-1 gave_up",
        ],
    ),
    (
        "the root's own intensity: [root] max_restarts = 1 restarts an escalated group once, then gives it up",
        r#"[root]
max_restarts = 1
within = "1m"
[[sensors]]
id = "outside"
latency = ["50ms", "50ms"]
error_rate = 0.0
[[sensors]]
name = "bus"
count = 2
group = "bus-a"
latency = ["50ms", "50ms"]
error_rate = 0.0
faults = [{ round = 2, fault = "fatal", sensor = "bus-1" }, { round = 5, fault = "fatal", sensor = "bus-2" }]
[[groups]]
name = "bus-a"
max_restarts = 0"#,
        &[
            "bus-1 failed",
            "bus-1 stopped",
            "bus-2 stopped",
            "group bus-a escalated",
            "group bus-a restart_scheduled",
            "bus-1 restart_scheduled",
            "bus-2 restart_scheduled",
            "group bus-a restarted",
            "bus-1 restarted",
            "bus-2 restarted",
            "bus-2 failed",
            "bus-1 stopped",
            "bus-2 stopped",
            "group bus-a escalated",
            "group bus-a gave_up",
            "bus-1 gave_up",
            "bus-2 gave_up",
        ],
    ),
    (
        "a parent's strategy reaches its child groups: site's one_for_all restarts the group bus with its failed sensor",
        r#"[[sensors]]
id = "gateway"
group = "site"
latency = ["50ms", "50ms"]
error_rate = 0.0
faults = [{ round = 2, fault = "fatal" }]
[[sensors]]
id = "bus-1"
group = "bus"
latency = ["50ms", "50ms"]
error_rate = 0.0
[[groups]]
name = "site"
strategy = "one_for_all"
within = "1m"
[[groups]]
name = "bus"
parent = "site""#,
        &[
            "gateway failed",
            "gateway restart_scheduled",
            "group bus stopped",
            "group bus restart_scheduled",
            "bus-1 stopped",
            "bus-1 restart_scheduled",
            "gateway restarted",
            "group bus restarted",
            "bus-1 restarted",
        ],
    ),
    (
        "directives: resume on panic keeps the actor, stop on fatal ends it, escalate on hung fails the whole group at once",
        r#"[[sensors]]
id = "resumer"
latency = ["50ms", "50ms"]
error_rate = 0.0
directives = { panic = "resume" }
faults = [{ round = 2, fault = "panic" }]
[[sensors]]
id = "stopper"
latency = ["50ms", "50ms"]
error_rate = 0.0
directives = { fatal = "stop" }
faults = [{ round = 2, fault = "fatal" }]
[[sensors]]
name = "bus"
count = 2
group = "bus-a"
latency = ["50ms", "50ms"]
error_rate = 0.0
hung_after = 2
faults = [{ round = 3, fault = "hang", sensor = "bus-1" }]
[[groups]]
name = "bus-a"
max_restarts = 10
directives = { hung = "escalate" }"#,
        &[
            "resumer failed",
            "resumer resumed",
            "stopper failed",
            "stopper stopped",
            "bus-1 failed",
            "bus-1 gave_up",
            "bus-2 gave_up",
            "group bus-a escalated",
            "group bus-a gave_up",
        ],
    ),
];

#[actix_rt::main]
async fn main() -> anyhow::Result<()> {
    tokio::time::pause();
    let dir = tempfile::tempdir()?;
    let mut drifted = Vec::new();
    for (n, (title, sensors, expected)) in SCENARIOS.iter().enumerate() {
        let config = Config::from_toml_str(&format!("{BASE}\n{sensors}\n"), "scenario")?;
        let out = dir.path().join(format!("scenario-{}", n + 1));
        let summary = run(config, RunOptions { out: Some(out.clone()) }, pending()).await?;
        println!("== {}. {title}", n + 1);
        let mut journal = Vec::new();
        for line in std::fs::read_to_string(out.join("events.jsonl"))?.lines() {
            let e: Event = serde_json::from_str(line)?;
            if e.event == "started" {
                continue;
            }
            // A group's own events name the group.
            let who = match (&e.sensor, &e.group) {
                (Some(sensor), _) => sensor.clone(),
                (None, Some(group)) => format!("group {group}"),
                (None, None) => String::new(),
            };
            let reset = if e.backoff_reset == Some(true) {
                " (backoff reset)"
            } else {
                ""
            };
            journal.push(format!("{who} {}{reset}", e.event));
            let mut text = format!("   round {:>2}  {who:<14} {:<18}", e.round, e.event);
            if let Some(cause) = e.cause {
                text += &format!(" {cause}");
            }
            if let Some(delay) = e.delay_ms {
                text += &format!(" after {delay} ms");
            }
            if let (Some(attempt), Some(reset), Some(window), Some(max)) =
                (e.attempt, e.backoff_reset, e.window, e.max_restarts)
            {
                let reset = if reset { ", backoff reset" } else { "" };
                text += &format!(" [attempt {attempt}{reset}; restart {window} of {max} in the window]");
            }
            if let Some(restarts) = e.restarts {
                text += &format!(" (restarts so far: {restarts})");
            }
            println!("{text}");
        }
        let states: Vec<String> = summary
            .sensors
            .iter()
            .map(|s| format!("{} {} ({} restarts)", s.id, s.state, s.restarts))
            .collect();
        let r = &summary.reads;
        println!(
            "   -> after {} rounds: {}; reads ok {}, failed {}, timed out {}, unavailable {}\n",
            summary.rounds,
            states.join(", "),
            r.ok,
            r.failed,
            r.timed_out,
            r.unavailable
        );
        if journal != *expected {
            drifted.push(format!("scenario {}: expected {expected:?}, got {journal:?}", n + 1));
        }
    }
    // The journals are what the scenarios say they show, or the example fails (CI runs it).
    if !drifted.is_empty() {
        anyhow::bail!(
            "the journal differs from what the example explains:\n{}",
            drifted.join("\n")
        );
    }
    Ok(())
}
