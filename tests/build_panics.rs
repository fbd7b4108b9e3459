//! A panicking build, alone in its test binary: the test installs a panic hook that records
//! (and prints) every panic reaching it, before anything of the crate runs.

mod common;

use std::sync::Mutex;

use common::{flaky, read_jsonl};

/// Panics that reached the process's hook: what was printed to stderr.
static PRINTED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// A build that panics once, at once or inside its async future, is a failed build like any
/// other: journaled `failed (panic: <message>)`, restarted after its backoff, unavailable in
/// round 1 and read from round 2, while `steady` reads every round; no panic is printed.
#[actix_rt::test]
async fn a_panicking_build_is_a_failed_build_and_prints_nothing() {
    std::panic::set_hook(Box::new(|info| {
        eprintln!("{info}");
        PRINTED.lock().unwrap().push(info.to_string());
    }));
    tokio::time::pause();
    for build_latency in ["", "build_latency = \"50ms\""] {
        let text = format!(
            "[collection]\ninterval = \"1s\"\nread_timeout = \"300ms\"\nrounds = 3\nseed = 2\n\
             [supervision]\nbackoff_min = \"200ms\"\nbackoff_max = \"200ms\"\n\
             [[sensors]]\ndriver = \"flaky\"\nid = \"steady\"\n\
             [[sensors]]\ndriver = \"flaky\"\nid = \"flaky\"\nfailing_builds = 1\npanics = true\n{build_latency}\n"
        );
        let dir = tempfile::tempdir().unwrap();
        let collector = flaky::collector().out(dir.path()).unwrap();
        let config = collector.parse(&text, "test.toml").unwrap();
        let summary = collector.run(config, std::future::pending()).await.unwrap();
        let events: Vec<String> = read_jsonl(&dir.path().join("events.jsonl"))
            .iter()
            .filter(|e| e["event"] != "started")
            .map(|e| format!("{} {} {}", e["sensor"], e["event"], e["cause"]))
            .collect();
        assert_eq!(
            events,
            [
                "\"flaky\" \"failed\" \"panic: build 0 panicked\"",
                "\"flaky\" \"restart_scheduled\" null",
                "\"flaky\" \"restarted\" null",
            ],
            "{build_latency}"
        );
        let r = &summary.reads;
        assert_eq!(
            (r.requested, r.ok, r.unavailable, r.failed, r.timed_out),
            (6, 5, 1, 0, 0)
        );
    }
    // Taken out first: a failed assertion panics, and the hook locks the list.
    let printed = std::mem::take(&mut *PRINTED.lock().unwrap());
    assert_eq!(printed, Vec::<String>::new());
}
