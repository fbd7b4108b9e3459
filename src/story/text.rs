//! The story as text: a header (who, how it ended, the counts, the values), the timeline one
//! entry a line in three columns (rounds, time, what), and the last line. A round without a
//! reading whose read failed or timed out is told by its event line alone.

use std::fmt::Write as _;

use super::{Entry, GapReason, JournalEvent, Story};

/// Writes `story` as text.
pub(super) fn render(story: &Story) -> String {
    let mut out = String::new();
    header(story, &mut out);
    let date = one_date(story);
    if let Some(date) = date {
        let _ = writeln!(out, "times: UTC, {date}");
    }
    let rows: Vec<(String, &str, String)> = story
        .timeline
        .iter()
        .filter_map(|entry| row(story, entry))
        .map(|(rounds, time, what)| (rounds, shown_time(time, date.is_some()), what))
        .collect();
    let rounds_width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max("round".len());
    let time_width = rows.iter().map(|r| r.1.len()).max().unwrap_or(0).max("time".len());
    out.push('\n');
    let mut line = |rounds: &str, time: &str, what: &str| {
        let text = format!("{rounds:<rounds_width$}  {time:<time_width$}  {what}");
        let _ = writeln!(out, "{}", text.trim_end());
    };
    line("round", "time", "what");
    for (rounds, time, what) in &rows {
        line(rounds, time, what);
    }
    let _ = writeln!(out, "\n{}", story.end.text);
    out
}

/// Who the sensor is, how it ended, what the files count, its values.
fn header(story: &Story, out: &mut String) {
    let mut who = format!("sensor {}", story.sensor);
    match (&story.kind, &story.unit) {
        (Some(kind), Some(unit)) if !unit.is_empty() => who += &format!(": {kind} in {unit}"),
        (Some(kind), _) => who += &format!(": {kind}"),
        _ => {}
    }
    match (&story.group, &story.group_summary) {
        (Some(group), Some(g)) => who += &format!(", group {group} ({}, ended {})", g.strategy, g.state),
        (Some(group), None) => who += &format!(", group {group}"),
        (None, Some(g)) => who += &format!(", ungrouped ({})", g.name),
        (None, None) => {}
    }
    if !story.ancestors.is_empty() {
        who += &format!(" within {}", story.ancestors.join(", "));
    }
    let _ = writeln!(out, "{who}");
    let counts = &story.counts;
    let without: u64 = counts.without_reading.values().sum();
    let mut tally = format!("{} ok, {without} without a reading", counts.readings);
    if without > 0 {
        let reasons: Vec<String> = counts
            .without_reading
            .iter()
            .map(|(reason, n)| format!("{n} {}", reason.label()))
            .collect();
        tally += &format!(" ({})", reasons.join(", "));
    }
    let anomalies = plural(counts.anomalies, "anomaly", "anomalies");
    match &story.summary {
        Some(s) => {
            let restarts = plural(u64::from(s.restarts), "restart", "restarts");
            let _ = writeln!(
                out,
                "final state {}, {restarts}; {} rounds: {tally}; {anomalies}",
                s.state, story.rounds
            );
            if let (Some(min), Some(max), Some(mean), Some(last)) = (s.min, s.max, s.mean, s.last) {
                let unit = unit_suffix(story);
                let _ = writeln!(
                    out,
                    "values: min {min:.3}{unit}, max {max:.3}{unit}, mean {mean:.3}{unit}, last {last:.3}{unit}"
                );
            }
        }
        None => {
            let restarts = story.timeline.iter().rev().find_map(|e| match e {
                Entry::Event(e) if e.sensor.is_some() => e.restarts,
                _ => None,
            });
            let _ = writeln!(
                out,
                "no summary.json (the run was interrupted): {} rounds in the files: {tally}; {anomalies}; {} (journal)",
                story.rounds,
                plural(u64::from(restarts.unwrap_or(0)), "restart", "restarts")
            );
        }
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn unit_suffix(story: &Story) -> String {
    match story.unit.as_deref() {
        Some(unit) if !unit.is_empty() => format!(" {unit}"),
        _ => String::new(),
    }
}

/// One timeline line: (rounds, time as written, what); `None` for a gap told by its event.
fn row<'a>(story: &Story, entry: &'a Entry) -> Option<(String, &'a str, String)> {
    Some(match entry {
        Entry::Readings(run) => {
            let unit = unit_suffix(story);
            let mut what = format!("ok ({}", plural(run.readings, "reading", "readings"));
            match (run.min, run.max) {
                (Some(min), Some(max)) if run.readings == 1 || min == max => what += &format!(", {min:.3}{unit}"),
                (Some(min), Some(max)) => what += &format!(", {min:.3}..{max:.3}{unit}"),
                _ => {}
            }
            what.push(')');
            (rounds(run.first, run.last), run.first_timestamp.as_str(), what)
        }
        Entry::Gap(gap) if matches!(gap.reason, GapReason::Failed | GapReason::TimedOut) => return None,
        Entry::Gap(gap) => (
            rounds(gap.first, gap.last),
            "",
            format!("no reading: {}", gap.reason.describe()),
        ),
        Entry::Event(event) => (
            rounds(event.round, event.round),
            event.timestamp.as_str(),
            event_text(event),
        ),
        Entry::Anomaly(a) => (
            rounds(a.round, a.round),
            a.timestamp.as_str(),
            format!("anomaly {}: {}", a.detector, a.detail),
        ),
    })
}

fn rounds(first: u64, last: u64) -> String {
    if first == last {
        format!("round {first}")
    } else {
        format!("rounds {first}-{last}")
    }
}

/// An event for people: its name, then what it carries (`restart_scheduled`: the delay, the
/// backoff attempt and reset, the intensity window's fill, the restarts so far).
fn event_text(e: &JournalEvent) -> String {
    let mut text = match (&e.sensor, &e.group) {
        (None, Some(group)) => format!("group {group} {}", e.event),
        _ => e.event.clone(),
    };
    let mut parts: Vec<String> = Vec::new();
    if let Some(cause) = &e.cause {
        parts.push(cause.clone());
    }
    if let Some(delay) = e.delay_ms {
        parts.push(format!("in {delay} ms"));
    }
    if let Some(attempt) = e.attempt {
        let reset = if e.backoff_reset == Some(true) { ", reset" } else { "" };
        parts.push(format!("backoff attempt {attempt}{reset}"));
    }
    if let (Some(window), Some(max)) = (e.window, e.max_restarts) {
        parts.push(format!("window {window} of {max}"));
    }
    if let Some(restarts) = e.restarts {
        // A group's own events count the group's restarts (of its actor by the root, or of
        // the whole group by its supervisor).
        let of = if e.sensor.is_none() { " of the group" } else { "" };
        let n = plural(u64::from(restarts), "restart", "restarts");
        parts.push(match e.event.as_str() {
            "restart_scheduled" => format!("{n}{of} so far"),
            "restarted" => format!("restart {restarts}{of}"),
            _ => format!("after {n}{of}"),
        });
    }
    if !parts.is_empty() {
        text += ": ";
        text += &parts.join(", ");
    }
    text
}

/// The date of every timestamp of the timeline, when there is one and they all share it.
fn one_date(story: &Story) -> Option<&str> {
    let mut date = None;
    for entry in &story.timeline {
        let stamp = match entry {
            Entry::Readings(run) => [run.first_timestamp.as_str(), run.last_timestamp.as_str()],
            Entry::Event(e) => [e.timestamp.as_str(); 2],
            Entry::Anomaly(a) => [a.timestamp.as_str(); 2],
            Entry::Gap(_) => continue,
        };
        for s in stamp {
            let day = split_time(s)?.0;
            if *date.get_or_insert(day) != day {
                return None;
            }
        }
    }
    date
}

/// `2000-01-01T00:00:12.072Z` as (`2000-01-01`, `00:00:12.072`).
fn split_time(stamp: &str) -> Option<(&str, &str)> {
    let (date, time) = stamp.split_once('T')?;
    Some((date, time.strip_suffix('Z')?))
}

/// The time column: the time of day when the header gives the date, else the timestamp.
fn shown_time(stamp: &str, date_in_header: bool) -> &str {
    match split_time(stamp) {
        Some((_, time)) if date_in_header => time,
        _ => stamp,
    }
}
