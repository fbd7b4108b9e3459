//! Read accounting over a whole run: every read is counted exactly once, as ok, failed,
//! timed_out or unavailable, and every ok read is one line of `readings.jsonl`.

mod common;

use std::collections::BTreeSet;

use common::{config, ms, read_jsonl, readings, run_to_end, Scripted, Step};
use sensor_actors::driver::ReadError;

const ROUNDS: u64 = 20;
const SENSORS: usize = 6;

/// What each read of the scripted run below does.
fn script(i: usize, round: u64) -> Step {
    let fast = ms(50);
    match i {
        3 if round == 10 => Step::err(fast, ReadError::Fatal("scripted".into())),
        0..=3 if round.is_multiple_of(i as u64 + 2) => Step::err(fast, ReadError::Failed("scripted".into())),
        4 if (3..=6).contains(&round) => Step::err(fast, ReadError::Offline),
        5 if round.is_multiple_of(3) => Step::ok(ms(800), -1.0),
        _ => Step::ok(fast, round as f64 * 10.0 + i as f64),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Ok,
    Failed,
    TimedOut,
    Unavailable,
}

/// The outcome each read must have, worked out by hand from the script and the schedule:
/// sensor 3's fatal error in round 10 restarts it after exactly 1.5 s (backoff_min = backoff_max),
/// so it misses round 11 (unavailable) and is back for round 12; sensor 5's 800 ms reads overrun
/// the 500 ms deadline; sensor 4 is offline in rounds 3 to 6.
fn expected(i: usize, round: u64) -> Expect {
    match i {
        3 if round == 11 => Expect::Unavailable,
        0..=3 if round.is_multiple_of(i as u64 + 2) => Expect::Failed,
        4 if (3..=6).contains(&round) => Expect::Unavailable,
        5 if round.is_multiple_of(3) => Expect::TimedOut,
        _ => Expect::Ok,
    }
}

/// Six scripted sensors over 20 rounds (interval 1 s, read timeout 500 ms): sensors 0-3 fail
/// every 2nd/3rd/4th/5th round, sensor 3 fails fatally in round 10 and is restarted 1.5 s later,
/// sensor 4 is offline in rounds 3-6, sensor 5 is slower than the deadline every 3rd round.
/// The summary's counts equal the hand-worked expectation exactly, `requested = ok + failed +
/// timed_out + unavailable`, `readings.jsonl` holds exactly the expected (round, sensor) pairs,
/// per-sensor counts match, and the journal shows the one restart.
#[actix_rt::test]
async fn every_read_is_counted_exactly_once() {
    tokio::time::pause();
    let scripted = Scripted::new(script);
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(
        SENSORS,
        &format!("rounds = {ROUNDS}\ninterval = \"1s\"\nread_timeout = \"500ms\"\nseed = 3"),
        "[supervision]\nbackoff_min = \"1500ms\"\nbackoff_max = \"1500ms\"",
    );
    scripted.install(&mut config);
    let summary = run_to_end(config, Some(dir.path())).await;

    let all: Vec<(usize, u64, Expect)> = (1..=ROUNDS)
        .flat_map(|r| (0..SENSORS).map(move |i| (i, r, expected(i, r))))
        .collect();
    let count = |e: Expect| all.iter().filter(|(_, _, x)| *x == e).count() as u64;
    let reads = summary.reads;
    assert_eq!(summary.rounds, ROUNDS);
    assert_eq!(summary.skipped_rounds, 0);
    assert_eq!(reads.requested, ROUNDS * SENSORS as u64);
    assert_eq!(reads.ok, count(Expect::Ok));
    assert_eq!(reads.failed, count(Expect::Failed));
    assert_eq!(reads.timed_out, count(Expect::TimedOut));
    assert_eq!(reads.unavailable, count(Expect::Unavailable));
    // failed: 10 + 6 + 5 + 4 (sensors 0-3); timed_out: rounds 3, 6, ..., 18; unavailable: 4
    // offline rounds + 1 restarting round; ok: the other 120 - 36.
    assert_eq!(
        (reads.ok, reads.failed, reads.timed_out, reads.unavailable),
        (84, 25, 6, 5)
    );
    assert_eq!(
        reads.requested,
        reads.ok + reads.failed + reads.timed_out + reads.unavailable
    );
    assert_eq!(summary.restarts, 1);

    let lines = readings(dir.path());
    assert_eq!(lines.len() as u64, reads.ok);
    let got: BTreeSet<(u64, String)> = lines.iter().map(|(r, s, _)| (*r, s.clone())).collect();
    let want: BTreeSet<(u64, String)> = all
        .iter()
        .filter(|(_, _, e)| *e == Expect::Ok)
        .map(|(i, r, _)| (*r, format!("temperature-{}", i + 1)))
        .collect();
    assert_eq!(got, want);
    for (r, s, v) in &lines {
        let i: usize = s.trim_start_matches("temperature-").parse::<usize>().unwrap() - 1;
        assert_eq!(*v, *r as f64 * 10.0 + i as f64, "{s} round {r}");
    }
    for (i, sensor) in summary.sensors.iter().enumerate() {
        let ok = all.iter().filter(|(j, _, e)| *j == i && *e == Expect::Ok).count() as u64;
        assert_eq!(sensor.count, ok, "{}", sensor.id);
        assert_eq!(sensor.state, "running");
    }
    assert_eq!(summary.sensors.get(3).unwrap().restarts, 1);

    let events: Vec<(String, String)> = read_jsonl(&dir.path().join("events.jsonl"))
        .iter()
        .map(|e| {
            (
                e["sensor"].as_str().unwrap().into(),
                e["event"].as_str().unwrap().into(),
            )
        })
        .filter(|(_, e)| e != "started")
        .collect();
    let s4 = "temperature-4".to_string();
    assert_eq!(
        events,
        [
            (s4.clone(), "failed".to_string()),
            (s4.clone(), "restart_scheduled".to_string()),
            (s4, "restarted".to_string()),
        ]
    );
    let journal = read_jsonl(&dir.path().join("events.jsonl"));
    assert_eq!(journal.iter().filter(|e| e["event"] == "started").count(), SENSORS);
    let scheduled = journal.iter().find(|e| e["event"] == "restart_scheduled").unwrap();
    assert_eq!(scheduled["delay_ms"], 1500);
}
