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
//! `temporary` differing from `permanent`; `one_for_all` and `rest_for_one` restarting siblings;
//! a group escalating to the root, which gives it up while the run goes on.

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
            journal.push(format!("{who} {}", e.event));
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
