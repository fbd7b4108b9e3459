//! What the fuzz targets check, one function per target: bad input gets a one-line error naming
//! the file, the field and what was expected, never a panic, a hang or unbounded memory.
//!
//! The targets (`fuzz/fuzz_targets/`) call these with each input libFuzzer makes;
//! `tests/fuzz_corpus.rs` replays the committed corpus (`fuzz/corpus/`) through the same
//! functions under `cargo test`, so a fixed crash stays fixed without any fuzzing tool. A broken
//! rule is a panic, which libFuzzer reports as a crash and saves the input.
//!
//! - [`config`]: the bytes are a configuration file, parsed and validated the way the binary's
//!   `check` and `run` do ([`Config::parse`] with the collector's registry, which is what
//!   `Collector::load` calls after reading the file).
//! - [`replay`]: the bytes are a CSV file, loaded by `driver = "replay"` entries made from its
//!   own header, then every sensor of each entry is read until its file is exhausted.

use std::path::Path;

use sensor_actors::driver::ReadError;
use sensor_actors::testing::driver::context;
use sensor_actors::{Collector, Config};

/// Longest error message allowed, in characters: one line of a log or a terminal, with room for
/// a file path.
pub const MESSAGE_MAX: usize = 512;

/// Sensors the targets build from one input: a configuration may hold up to `MAX_SENSORS`
/// (10,000,000, seconds and gigabytes to expand, as documented), which a fuzzer cannot afford on
/// every input. Inputs asking for more are skipped; the limit itself is unit-tested.
pub const SENSORS_MAX: i64 = 10_000;

/// Sensors of one replay entry that are read to the end (each rereads the file for its id).
pub const READ_SENSORS_MAX: usize = 4;

/// Panics unless `message` (what `what` produced) is one line of printable text of at most
/// [`MESSAGE_MAX`] characters.
pub fn assert_one_line(what: &str, message: &str) {
    let chars = message.chars().count();
    assert!(
        chars <= MESSAGE_MAX,
        "{what}: a message of {chars} characters (at most {MESSAGE_MAX} expected): {message:?}"
    );
    assert!(
        !message.chars().any(breaks_line),
        "{what}: a message with a line break or a control character: {message:?}"
    );
    assert!(!message.trim().is_empty(), "{what}: an empty message");
}

/// Panics unless `name` (an id, a kind, a unit) is printable and at most 256 bytes.
fn assert_name(what: &str, name: &str) {
    assert!(
        name.len() <= 256 && !name.chars().any(breaks_line),
        "{what}: {name:?} is not a printable name of at most 256 bytes"
    );
}

/// Whether `c` breaks a line: a control character or a Unicode line or paragraph separator.
fn breaks_line(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')
}

/// The config target: `data` as the text of a configuration file whose relative paths resolve
/// against `base` (the fixtures folder, with a small `data.csv`). It parses, or its error is one
/// line naming the origin.
pub fn config(data: &[u8], base: &Path) {
    // The binary reads the file as UTF-8 first (other bytes are a one-line `cannot read` error).
    let Ok(text) = std::str::from_utf8(data) else { return };
    if sensors_asked(text) > SENSORS_MAX {
        return;
    }
    let collector = Collector::new();
    match Config::parse(text, "fuzz.toml", base, collector.registry()) {
        Ok(config) => {
            // What goes into log lines, the table and the files as it is.
            for sensor in &config.sensors {
                assert_name("sensor id", &sensor.id);
                assert_name("sensor kind", &sensor.kind);
                assert_name("sensor unit", &sensor.unit);
            }
            for group in &config.groups {
                assert_name("group name", &group.name);
            }
        }
        Err(e) => {
            let line = e.to_string();
            assert_one_line("config error", &line);
            assert!(
                line.starts_with("fuzz.toml: "),
                "config error without its origin: {line:?}"
            );
        }
    }
}

/// The `count`s of the `[[sensors]]` entries of `text`, added up (0 if it is no TOML): what
/// validation would expand.
fn sensors_asked(text: &str) -> i64 {
    let Ok(table) = text.parse::<toml::Table>() else {
        return 0;
    };
    let Some(toml::Value::Array(entries)) = table.get("sensors") else {
        return 0;
    };
    entries
        .iter()
        .filter_map(|entry| entry.get("count")?.as_integer())
        .fold(0i64, |sum, count| sum.saturating_add(count.max(0)))
}

/// The replay target: `data` as a CSV file, `dir/fuzz.csv`, replayed by the entries
/// [`replay_entries`] makes from its header. Each entry parses (or fails in one line); each of
/// its first [`READ_SENSORS_MAX`] sensors is built and read until `Exhausted` (or a fatal error)
/// within one read per line of the file and one more, every error one line, every value finite.
pub fn replay(data: &[u8], dir: &Path) {
    let path = dir.join("fuzz.csv");
    std::fs::write(&path, data).expect("the fuzz CSV file can be written");
    let collector = Collector::new();
    // Rows are at most the line breaks plus one; blank lines are no rows.
    let reads_max = data.iter().filter(|&&b| b == b'\n' || b == b'\r').count() as u64 + 2;
    for entry in replay_entries(data) {
        let text = format!("[[sensors]]\ndriver = \"replay\"\npath = \"fuzz.csv\"\n{entry}");
        let config = match Config::parse(&text, "fuzz.toml", dir, collector.registry()) {
            Ok(config) => config,
            Err(e) => {
                let line = e.to_string();
                assert_one_line("replay config error", &line);
                assert!(
                    line.starts_with("fuzz.toml: sensors[0]"),
                    "replay config error: {line:?}"
                );
                continue;
            }
        };
        for sensor in config.sensors.iter().take(READ_SENSORS_MAX) {
            assert_name("sensor id", &sensor.id);
            read_to_end(&*sensor.driver, reads_max);
        }
    }
}

/// Builds the driver of `spec` and reads it until it is exhausted or fails fatally.
fn read_to_end(spec: &dyn sensor_actors::driver::DriverSpec, reads_max: u64) {
    let mut build = spec.build(&context(0));
    let mut driver = match build.take_ready().expect("a replay driver is built at once") {
        Ok(driver) => driver,
        Err(e) => return assert_one_line("replay build error", e.message()),
    };
    for round in 1..=reads_max {
        let result = driver
            .read(round)
            .take_ready()
            .expect("a replay read is answered at once");
        match result {
            Ok(sample) => assert!(sample.value.is_finite(), "read {round} gave {}", sample.value),
            Err(ReadError::Failed(message)) => assert_one_line("replay read error", &message),
            Err(ReadError::Fatal(message)) => return assert_one_line("replay fatal read error", &message),
            Err(ReadError::Exhausted) => {
                let again = driver.read(round + 1).take_ready();
                assert!(
                    matches!(again, Some(Err(ReadError::Exhausted))),
                    "an exhausted replay answered {again:?}"
                );
                return;
            }
            Err(other) => panic!("read {round} gave {other:?}, not a replay's error"),
        }
    }
    panic!("a replay still answering after {reads_max} reads, more than the file has rows");
}

/// The `[[sensors]]` keys (after `driver` and `path`) of the entries that replay a file with
/// this header: `value_column = "value"`; its last column as values with its first as times; and
/// its last column as values with its first as ids. Names are taken from the header as it reads
/// (bytes that are no UTF-8 replaced), so most entries find their columns.
pub fn replay_entries(data: &[u8]) -> Vec<String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(data);
    let mut header = csv::ByteRecord::new();
    let columns: Vec<String> = match reader.read_byte_record(&mut header) {
        Ok(true) => header.iter().map(|c| String::from_utf8_lossy(c).into_owned()).collect(),
        _ => Vec::new(),
    };
    let quote = |name: &str| toml::Value::String(name.to_string()).to_string();
    let mut entries = vec!["value_column = \"value\"\n".to_string()];
    if let (Some(first), Some(last)) = (columns.first(), columns.last()) {
        let (first, last) = (quote(first), quote(last));
        if columns.len() == 1 {
            entries.push(format!("value_column = {last}\n"));
        } else {
            entries.push(format!("value_column = {last}\ntimestamp_column = {first}\n"));
            entries.push(format!("value_column = {last}\nid_column = {first}\n"));
        }
    }
    entries
}
