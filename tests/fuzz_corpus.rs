//! The fuzz corpus as regression tests: every committed input of `fuzz/corpus/` (seeds, and the
//! inputs that once crashed, hung or gave a bad error) through the checks the fuzz targets run
//! (`fuzz/src/checks.rs`), without any fuzzing tool. docs/reliability.md says how to fuzz.

#[path = "../fuzz/src/checks.rs"]
mod checks;

use std::path::{Path, PathBuf};

/// The files of `fuzz/corpus/<target>`, sorted.
fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    files
}

/// Runs `check` on every file of the corpus of `target`, naming the file that fails.
fn replay_corpus(target: &str, check: impl Fn(&[u8])) -> usize {
    let files = corpus(target);
    for file in &files {
        let data = std::fs::read(file).unwrap();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&data)));
        if let Err(panic) = outcome {
            let reason = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("{}: {reason}", file.display());
        }
    }
    files.len()
}

/// Every configuration of the corpus parses, or fails with a one-line error naming the file;
/// what a valid one holds is printable.
#[test]
fn config_corpus_parses_or_fails_in_one_line() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/fixtures");
    let checked = replay_corpus("config", |data| checks::config(data, &fixtures));
    assert!(checked >= 10, "only {checked} configuration inputs");
}

/// Every CSV file of the corpus replays to its end through the entries made from its header,
/// with one-line errors and finite values only.
#[test]
fn replay_corpus_reads_to_the_end_or_fails_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let checked = replay_corpus("replay", |data| checks::replay(data, dir.path()));
    assert!(checked >= 10, "only {checked} CSV inputs");
}

/// The checks themselves catch what they are for: a multi-line, a raw-control or an overlong
/// message.
#[test]
#[should_panic(expected = "a line break or a control character")]
fn a_two_line_message_is_caught() {
    checks::assert_one_line("test", "first\nsecond");
}

/// See [`a_two_line_message_is_caught`].
#[test]
#[should_panic(expected = "characters (at most 512 expected)")]
fn an_overlong_message_is_caught() {
    checks::assert_one_line("test", &"x".repeat(checks::MESSAGE_MAX + 1));
}
