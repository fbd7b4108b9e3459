//! The timeline from the sensor's lines: pure functions, no files. Readings are grouped into
//! runs as they stream in ([`RunBuilder`]); [`build`] then walks the rounds in order, merging
//! the runs, the rounds without a reading (with the reason the journal gives), the anomalies
//! and the events, while following the sensor's supervision phase through its journal.

use crate::report::SensorSummary;

use super::{AnomalyRecord, Counts, End, Entry, Gap, GapReason, JournalEvent, ReadingRun};

/// Groups readings, in round order, into runs of consecutive rounds. A run ends at a round in
/// `breaks` (one with events or anomalies), so what happened in that round follows the run.
pub(super) struct RunBuilder {
    /// Sorted, without duplicates.
    breaks: Vec<u64>,
    runs: Vec<ReadingRun>,
}

impl RunBuilder {
    pub(super) fn new(mut breaks: Vec<u64>) -> RunBuilder {
        breaks.sort_unstable();
        breaks.dedup();
        RunBuilder {
            breaks,
            runs: Vec::new(),
        }
    }

    /// Adds the reading of `round`.
    pub(super) fn push(&mut self, round: u64, value: Option<f64>, timestamp: &str) {
        match self.runs.last_mut() {
            Some(run) if run.last + 1 == round && self.breaks.binary_search(&run.last).is_err() => {
                run.last = round;
                run.readings += 1;
                run.min = widen(run.min, value, f64::min);
                run.max = widen(run.max, value, f64::max);
                run.last_value = value;
                run.last_timestamp.clear();
                run.last_timestamp.push_str(timestamp);
            }
            _ => {
                self.runs.push(ReadingRun {
                    first: round,
                    last: round,
                    readings: 1,
                    min: value,
                    max: value,
                    last_value: value,
                    first_timestamp: timestamp.to_string(),
                    last_timestamp: timestamp.to_string(),
                });
            }
        }
    }

    pub(super) fn finish(self) -> Vec<ReadingRun> {
        self.runs
    }
}

/// `bound` widened to `value` by `pick` (`f64::min` or `f64::max`); a missing value changes
/// nothing.
fn widen(bound: Option<f64>, value: Option<f64>, pick: fn(f64, f64) -> f64) -> Option<f64> {
    match (bound, value) {
        (Some(b), Some(v)) => Some(pick(b, v)),
        (b, v) => b.or(v),
    }
}

/// Where the sensor stands, from its journal (its own events and its group's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    NotStarted,
    Running,
    /// Failed, no decision journaled yet.
    Down,
    Restarting,
    /// Its group's actor stopped; running again once the new actor starts it.
    GroupDown,
    Stopped,
    GivenUp,
    /// Removed while the run went on: not read any more.
    Removed,
}

impl Phase {
    /// The phase after `event`, one of the sensor's or of its `group`'s (an ancestor's own
    /// events leave it as it is: their effect on it comes in its own lines).
    fn after(self, event: &JournalEvent, group: Option<&str>) -> Phase {
        let own = event.sensor.is_some();
        if !own && event.group.as_deref() != group {
            return self;
        }
        match (own, event.event.as_str()) {
            (true, "started" | "restarted" | "resumed" | "added") => Phase::Running,
            (true, "removed") => Phase::Removed,
            (true, "failed") => Phase::Down,
            (true, "restart_scheduled") => Phase::Restarting,
            (true, "stopped") => Phase::Stopped,
            (_, "gave_up") => Phase::GivenUp,
            // The group's actor: its sensors are down until the new actor starts them; one
            // that was stopped, given up or removed before stays so.
            (false, "failed" | "restart_scheduled" | "restarted") => match self {
                Phase::Stopped | Phase::GivenUp | Phase::Removed => self,
                _ => Phase::GroupDown,
            },
            _ => self,
        }
    }

    /// Why a round that began in this phase, with `events`, has no reading. A running sensor's
    /// read that the round's `gave_up` or `stopped` cut short (its group escalated while the
    /// read was in flight) counts with it.
    fn gap_reason(self, events: &[JournalEvent], group: Option<&str>) -> GapReason {
        // Its own events and its group's: an ancestor's tell nothing of this read.
        let moving = |e: &&JournalEvent| e.sensor.is_some() || e.group.as_deref() == group;
        let has = |name: &str| events.iter().filter(moving).any(|e| e.event == name);
        match self {
            Phase::Running if has("failed") => GapReason::Failed,
            Phase::Running if has("timed_out") => GapReason::TimedOut,
            Phase::Running if has("gave_up") => GapReason::GivenUp,
            Phase::Running if has("stopped") => GapReason::Stopped,
            Phase::Running => GapReason::NotJournaled,
            Phase::NotStarted => GapReason::NotStarted,
            Phase::Down => GapReason::Down,
            Phase::Restarting => GapReason::Restarting,
            Phase::GroupDown => GapReason::GroupRestarting,
            Phase::Stopped => GapReason::Stopped,
            Phase::GivenUp => GapReason::GivenUp,
            Phase::Removed => GapReason::Removed,
        }
    }

    /// The state's name, as in `summary.json`.
    fn state(self) -> &'static str {
        match self {
            Phase::NotStarted => "not_started",
            Phase::Running => "running",
            Phase::Down | Phase::Restarting | Phase::GroupDown => "restarting",
            Phase::Stopped => "stopped",
            Phase::GivenUp => "given_up",
            Phase::Removed => "removed",
        }
    }
}

/// The timeline, its counts, and where the journal left the sensor.
#[derive(Debug)]
pub(super) struct Built {
    pub(super) entries: Vec<Entry>,
    pub(super) counts: Counts,
    phase: Phase,
    /// The event that put it in `phase`.
    since: Option<JournalEvent>,
    /// The round of the last reading.
    last_reading: Option<u64>,
}

/// Builds the timeline of `rounds` rounds from the sensor's reading `runs` (in round order),
/// its `journal` lines (with those of its `group` and the groups above) and its `anomalies`:
/// in each round its reading (or why there is none), then its anomalies, then its events.
/// Rounds without a reading for the same reason, with nothing in between, make one [`Gap`].
pub(super) fn build(
    rounds: u64,
    runs: Vec<ReadingRun>,
    mut journal: Vec<JournalEvent>,
    mut anomalies: Vec<AnomalyRecord>,
    group: Option<&str>,
) -> Built {
    // Stable sorts: in file order within a round.
    journal.sort_by_key(|e| e.round);
    anomalies.sort_by_key(|a| a.round);
    let last = [
        rounds,
        runs.last().map_or(0, |r| r.last),
        journal.last().map_or(0, |e| e.round),
        anomalies.last().map_or(0, |a| a.round),
    ]
    .into_iter()
    .max()
    .unwrap_or(0);
    let mut built = Built {
        entries: Vec::new(),
        counts: Counts {
            readings: runs.iter().map(|r| r.readings).sum(),
            anomalies: anomalies.len() as u64,
            events: journal.len() as u64,
            ..Counts::default()
        },
        phase: Phase::NotStarted,
        since: None,
        last_reading: runs.last().map(|r| r.last),
    };
    let mut runs = runs.into_iter().peekable();
    let (mut journal, mut anomalies) = (journal.into_iter().peekable(), anomalies.into_iter().peekable());
    let mut gap: Option<Gap> = None;
    let mut run_until = 0;
    for round in 0..=last {
        let events: Vec<JournalEvent> = std::iter::from_fn(|| journal.next_if(|e| e.round == round)).collect();
        // Step 1: the round's read: a run starts, goes on, or there is no reading.
        if let Some(run) = runs.next_if(|r| r.first == round) {
            close(&mut gap, &mut built.entries);
            run_until = run.last;
            built.entries.push(Entry::Readings(run));
        } else if round >= 1 && round > run_until && round <= rounds {
            let reason = built.phase.gap_reason(&events, group);
            *built.counts.without_reading.entry(reason).or_default() += 1;
            match &mut gap {
                Some(g) if g.reason == reason && g.last + 1 == round => g.last = round,
                _ => {
                    close(&mut gap, &mut built.entries);
                    gap = Some(Gap {
                        first: round,
                        last: round,
                        reason,
                    });
                }
            }
        }
        // Step 2: what was found in it, then what happened.
        while let Some(anomaly) = anomalies.next_if(|a| a.round == round) {
            close(&mut gap, &mut built.entries);
            built.entries.push(Entry::Anomaly(anomaly));
        }
        for event in events {
            close(&mut gap, &mut built.entries);
            let phase = built.phase.after(&event, group);
            if phase != built.phase {
                built.phase = phase;
                built.since = Some(event.clone());
            }
            built.entries.push(Entry::Event(event));
        }
    }
    close(&mut gap, &mut built.entries);
    built
}

fn close(gap: &mut Option<Gap>, entries: &mut Vec<Entry>) {
    if let Some(gap) = gap.take() {
        entries.push(Entry::Gap(gap));
    }
}

/// How the story ends: the summary's final state (the journal's without a summary), the event
/// that led there, the last reading, said in one line.
pub(super) fn end(built: &Built, summary: Option<&SensorSummary>, rounds: u64) -> End {
    let state = summary.map_or(built.phase.state(), |s| s.state.as_str()).to_string();
    let since = built.since.as_ref().filter(|e| e.round > 0 || e.event != "started");
    let round = since.map(|e| e.round);
    let cause = since.and_then(|e| e.cause.clone());
    let at = |what: &str| match since {
        Some(e) => format!(
            "{what} in round {}{}",
            e.round,
            cause.as_ref().map(|c| format!(": {c}")).unwrap_or_default()
        ),
        None => what.to_string(),
    };
    let group_of = |e: &JournalEvent| e.group.clone().filter(|_| e.sensor.is_none());
    let mut text = match state.as_str() {
        "given_up" => match since.and_then(group_of) {
            Some(group) => at(&format!("given up with its group {group}")),
            None => at("given up"),
        },
        "stopped" => at("stopped"),
        "removed" => at("removed"),
        "restarting" => match since {
            Some(e) if e.event == "restart_scheduled" && e.sensor.is_some() => format!(
                "waiting for its restart when the run ended: scheduled in round {}{}",
                e.round,
                e.delay_ms
                    .map(|d| format!(" with a delay of {d} ms"))
                    .unwrap_or_default()
            ),
            Some(e) if e.sensor.is_none() => {
                format!(
                    "waiting for its group's actor to restart when the run ended ({})",
                    at("down")
                )
            }
            _ => at("waiting for its restart when the run ended; down"),
        },
        "running" => {
            let mut text = format!("running when the run ended (round {rounds})");
            let how = since.and_then(|e| match e.event.as_str() {
                "started" => Some(("its start", e.round)),
                "restarted" => Some(("its restart", e.round)),
                "resumed" => Some(("it resumed", e.round)),
                "added" => Some(("it was added", e.round)),
                _ => None,
            });
            if let Some((how, round)) = how {
                text += &format!(", since {how} in round {round}");
            }
            text
        }
        other => format!("{other} when the run ended"),
    };
    match built.last_reading {
        Some(r) => text += &format!("; last reading in round {r}"),
        None => text += "; no reading at all",
    }
    if summary.is_none() {
        text = format!("no summary.json (the run was interrupted); as the journal leaves it: {text}");
    }
    End {
        state,
        round,
        cause,
        last_reading: built.last_reading,
        text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(round: u64, sensor: Option<&str>, name: &str, cause: Option<&str>) -> JournalEvent {
        JournalEvent {
            timestamp: format!("2000-01-01T00:00:{round:02}.500Z"),
            round,
            sensor: sensor.map(str::to_string),
            group: None,
            event: name.to_string(),
            cause: cause.map(str::to_string),
            delay_ms: None,
            restarts: None,
            attempt: None,
            backoff_reset: None,
            window: None,
            max_restarts: None,
        }
    }

    fn own(round: u64, name: &str, cause: Option<&str>) -> JournalEvent {
        event(round, Some("s"), name, cause)
    }

    /// Readings of `rounds`, value = round, broken at `breaks`.
    fn runs(rounds: &[u64], breaks: &[u64]) -> Vec<ReadingRun> {
        let mut builder = RunBuilder::new(breaks.to_vec());
        for &r in rounds {
            builder.push(r, Some(r as f64), &format!("2000-01-01T00:00:{r:02}.100Z"));
        }
        builder.finish()
    }

    /// The timeline as short strings: `R1-3`, `G4-5 restarting`, `E3 failed`, `A7 spike`.
    fn outline(entries: &[Entry]) -> Vec<String> {
        entries
            .iter()
            .map(|e| match e {
                Entry::Readings(r) => format!("R{}-{}", r.first, r.last),
                Entry::Gap(g) => format!("G{}-{} {}", g.first, g.last, g.reason.as_str()),
                Entry::Event(e) => format!(
                    "E{} {}{}",
                    e.round,
                    if e.sensor.is_none() { "group " } else { "" },
                    e.event
                ),
                Entry::Anomaly(a) => format!("A{} {}", a.round, a.detector),
            })
            .collect()
    }

    /// Consecutive readings make one run with their range; a missing round or a break round
    /// ends it.
    #[test]
    fn runs_break_at_missing_rounds_and_at_breaks() {
        let built = runs(&[1, 2, 3, 5, 6, 7, 8], &[6]);
        let spans: Vec<(u64, u64, u64)> = built.iter().map(|r| (r.first, r.last, r.readings)).collect();
        assert_eq!(spans, [(1, 3, 3), (5, 6, 2), (7, 8, 2)]);
        assert_eq!(
            (built[0].min, built[0].max, built[0].last_value),
            (Some(1.0), Some(3.0), Some(3.0))
        );
        assert_eq!(built[0].first_timestamp, "2000-01-01T00:00:01.100Z");
        assert_eq!(built[0].last_timestamp, "2000-01-01T00:00:03.100Z");
        let mut builder = RunBuilder::new(vec![]);
        builder.push(1, None, "t1");
        builder.push(2, Some(4.0), "t2");
        builder.push(3, None, "t3");
        let run = &builder.finish()[0];
        assert_eq!(
            (run.min, run.max, run.last_value, run.readings),
            (Some(4.0), Some(4.0), None, 3)
        );
    }

    /// A failure, a wait for the restart, a recovery, two transient gaps, then a give-up: each
    /// round in order, the gaps with the journal's reason, the anomaly after its round's reading.
    #[test]
    fn merges_readings_gaps_events_and_anomalies_in_round_order() {
        let journal = vec![
            own(0, "started", None),
            own(3, "failed", Some("panic: boom")),
            own(3, "restart_scheduled", None),
            own(5, "restarted", None),
            own(9, "failed", Some("fatal: gone")),
            own(9, "gave_up", Some("more than 1 restarts within 10s")),
        ];
        let anomaly = AnomalyRecord {
            round: 7,
            sensor: "s".into(),
            timestamp: "t".into(),
            value: Some(7.0),
            detector: "spike".into(),
            detail: "d".into(),
            source_row: None,
        };
        let breaks: Vec<u64> = journal.iter().map(|e| e.round).chain([7]).collect();
        let built = build(12, runs(&[1, 2, 6, 7, 8], &breaks), journal, vec![anomaly], None);
        assert_eq!(
            outline(&built.entries),
            [
                "E0 started",
                "R1-2",
                "G3-3 failed",
                "E3 failed",
                "E3 restart_scheduled",
                "G4-5 restarting",
                "E5 restarted",
                "R6-7",
                "A7 spike",
                "R8-8",
                "G9-9 failed",
                "E9 failed",
                "E9 gave_up",
                "G10-12 given_up",
            ]
        );
        let without: Vec<(&str, u64)> = built
            .counts
            .without_reading
            .iter()
            .map(|(r, n)| (r.as_str(), *n))
            .collect();
        assert_eq!(without, [("failed", 2), ("restarting", 2), ("given_up", 3)]);
        assert_eq!(
            (built.counts.readings, built.counts.anomalies, built.counts.events),
            (5, 1, 6)
        );
        let end = end(&built, None, 12);
        assert_eq!(end.state, "given_up");
        assert_eq!((end.round, end.last_reading), (Some(9), Some(8)));
        assert_eq!(
            end.text,
            "no summary.json (the run was interrupted); as the journal leaves it: given up in round 9: more than 1 restarts within 10s; last reading in round 8"
        );
    }

    /// Rounds of a running sensor without a reading: not journaled, or timed out with a
    /// verbose journal; a group actor's failure makes its member's rounds wait for it.
    #[test]
    fn gap_reasons_follow_the_journal() {
        let mut group_failed = event(4, None, "failed", Some("group stopped: boom"));
        group_failed.group = Some("g".into());
        let mut group_restarted = event(5, None, "restarted", None);
        group_restarted.group = Some("g".into());
        let journal = vec![
            own(0, "started", None),
            own(2, "timed_out", Some("1 of 2 consecutive read timeouts make a hang")),
            group_failed,
            group_restarted,
            own(5, "started", None),
        ];
        let built = build(7, runs(&[1, 6, 7], &[0, 2, 4, 5]), journal, vec![], Some("g"));
        assert_eq!(
            outline(&built.entries),
            [
                "E0 started",
                "R1-1",
                "G2-2 timed_out",
                "E2 timed_out",
                "G3-3 not_journaled",
                "G4-4 failed",
                "E4 group failed",
                "G5-5 group_restarting",
                "E5 group restarted",
                "E5 started",
                "R6-7",
            ]
        );
        let end = end(&built, None, 7);
        assert_eq!(end.state, "running");
        assert!(
            end.text
                .ends_with("running when the run ended (round 7), since its start in round 5; last reading in round 7"),
            "{}",
            end.text
        );
    }

    /// A failure whose directive is `resume` leaves the sensor running; the own events of a
    /// group above its group are in the timeline but do not move it.
    #[test]
    fn a_resumed_failure_runs_on_and_an_ancestors_events_only_show() {
        let mut escalated = event(3, None, "escalated", Some("more than 0 restarts within 30s"));
        escalated.group = Some("site".into());
        let journal = vec![
            own(0, "started", None),
            own(2, "failed", Some("panic: boom")),
            own(2, "resumed", Some("resume on panic")),
            escalated,
        ];
        let built = build(4, runs(&[1, 3, 4], &[0, 2, 3]), journal, vec![], Some("line"));
        assert_eq!(
            outline(&built.entries),
            [
                "E0 started",
                "R1-1",
                "G2-2 failed",
                "E2 failed",
                "E2 resumed",
                "R3-3",
                "E3 group escalated",
                "R4-4",
            ]
        );
        let ending = end(&built, None, 4);
        assert_eq!(ending.state, "running");
        assert_eq!(ending.round, Some(2));
        assert!(
            ending.text.ends_with(
                "running when the run ended (round 4), since it resumed in round 2; last reading in round 4"
            ),
            "{}",
            ending.text
        );
    }

    /// The summary's state wins; a pending restart at the end says when it was scheduled.
    #[test]
    fn the_end_says_what_happened_last() {
        let mut scheduled = own(6, "restart_scheduled", None);
        scheduled.delay_ms = Some(1500);
        let journal = vec![own(0, "started", None), own(6, "failed", Some("fatal: x")), scheduled];
        let built = build(6, runs(&[1, 2, 3, 4, 5], &[0, 6]), journal, vec![], None);
        let ending = end(&built, None, 6);
        assert_eq!(ending.state, "restarting");
        assert!(
            ending.text.ends_with("waiting for its restart when the run ended: scheduled in round 6 with a delay of 1500 ms; last reading in round 5"),
            "{}",
            ending.text
        );
        let built = build(3, vec![], vec![own(0, "started", None)], vec![], None);
        let text = end(&built, None, 3).text;
        assert!(
            text.ends_with(": running when the run ended (round 3); no reading at all"),
            "{text}"
        );
    }
}
