//! `run --readings-format csv`: `readings.csv` holds, row for row, the readings a JSON Lines run
//! of the same configuration and seed writes (the virtual clock makes both runs the same),
//! with every field, values bit for bit, ids with commas and quotes quoted; `story` tells the
//! same story from either folder; a folder holds one readings file; bad values are one line.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::read_jsonl;
use serde_json::Value;

/// The header of `readings.csv`.
const HEADER: &str = "round,sensor,kind,value,unit,timestamp,latency_ms,source_row,source_time";

/// A sensor whose id holds a comma and quotes, simulated sensors of which some fail and some
/// time out, and a replayed sensor (its id with a comma, its recorded times with one in some).
const CONFIG: &str = r#"
[collection]
interval = "1s"
read_timeout = "400ms"
rounds = 8
seed = 11

[[sensors]]
id = 'pump 3, "north"'
kind = "pressure"
latency = ["10ms", "300ms"]
error_rate = 0.2

[[sensors]]
name = "t"
count = 3
latency = ["10ms", "500ms"]
error_rate = 0.1
faults = [{ round = 5, fault = "spike", magnitude = 50, sensor = "t-2" }]

[[sensors]]
driver = "replay"
id = "machine,1"
path = "series.csv"
value_column = "value"
timestamp_column = "time"
"#;

/// The replayed file: six rows, recorded times with and without a comma.
const SERIES: &str = "time,value\n\
    2024-05-01 10:00,21.5\n\
    \"Wed, 1 May 2024 10:05\",0.1\n\
    2024-05-01 10:10,-3\n\
    2024-05-01 10:15,1e2\n\
    \"Wed, 1 May 2024 10:20\",22.000000000000004\n\
    2024-05-01 10:25,1e-7\n";

fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sensor-actors"));
    command.env_remove("RUST_LOG");
    command
}

fn run_in(dir: &Path, args: &[&str]) -> Output {
    let output = binary().current_dir(dir).args(args).output().unwrap();
    output
}

/// Runs the configuration on the virtual clock into `dir/<out>` with `format`.
fn run_format(dir: &Path, out: &str, format: &str) {
    let output = run_in(
        dir,
        &[
            "run",
            "--config",
            "c.toml",
            "--clock",
            "virtual",
            "--out",
            out,
            "--readings-format",
            format,
        ],
    );
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

/// A folder with the configuration and the replayed file.
fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.toml"), CONFIG).unwrap();
    std::fs::write(dir.path().join("series.csv"), SERIES).unwrap();
    dir
}

/// The rows of `readings.csv` after its header, read by the `csv` crate; asserts the header.
fn csv_rows(path: &Path) -> Vec<csv::StringRecord> {
    let text = std::fs::read_to_string(path).unwrap();
    assert_eq!(text.lines().next(), Some(HEADER), "the header line");
    let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(text.as_bytes());
    assert_eq!(reader.headers().unwrap().iter().collect::<Vec<_>>().join(","), HEADER);
    reader.records().map(Result::unwrap).collect()
}

/// A float field of a row, parsed exactly (`None` for an empty field).
fn float(field: &str) -> Option<f64> {
    (!field.is_empty()).then(|| field.parse::<f64>().unwrap())
}

/// Every row of a csv run equals the JSON line of the same reading of a jsonl run: the same
/// readings in the same order, every field by name and position, values and latencies bit for
/// bit, strings the same text, the replay fields empty exactly when the JSON line lacks them;
/// an id with a comma and quotes, and a recorded time with a comma, read back whole. The other
/// files are byte for byte the same, and the accounting holds: `reads.ok` is the number of rows.
#[test]
fn a_csv_run_holds_the_readings_of_a_jsonl_run_bit_for_bit() {
    let dir = setup();
    run_format(dir.path(), "j", "jsonl");
    run_format(dir.path(), "c", "csv");
    let (j, c) = (dir.path().join("j"), dir.path().join("c"));
    assert!(!j.join("readings.csv").exists() && !c.join("readings.jsonl").exists());

    let lines = read_jsonl(&j.join("readings.jsonl"));
    let texts = std::fs::read_to_string(j.join("readings.jsonl")).unwrap();
    let rows = csv_rows(&c.join("readings.csv"));
    assert_eq!(rows.len(), lines.len());
    let names: Vec<&str> = HEADER.split(',').collect();
    let mut replayed = 0;
    let mut quoted_id = 0;
    for ((row, line), text) in rows.iter().zip(&lines).zip(texts.lines()) {
        assert_eq!(row.len(), names.len());
        let object = line.as_object().unwrap();
        // The JSON line's fields are the header's, in its order (the optional ones when present).
        let mut keys: Vec<(usize, &str)> = names
            .iter()
            .filter_map(|name| text.find(&format!("\"{name}\":")).map(|at| (at, *name)))
            .collect();
        keys.sort();
        let keys: Vec<&str> = keys.into_iter().map(|(_, name)| name).collect();
        assert_eq!(keys, names[..object.len()], "{text}");
        for (name, field) in names.iter().zip(row.iter()) {
            match (*name, object.get(*name)) {
                ("value" | "latency_ms", Some(v)) => {
                    assert_eq!(
                        float(field).map(f64::to_bits),
                        v.as_f64().map(f64::to_bits),
                        "{name} of {line}"
                    )
                }
                ("round" | "source_row", Some(v)) => assert_eq!(field.parse::<u64>().ok(), v.as_u64(), "{line}"),
                (_, Some(Value::String(s))) => assert_eq!(field, s, "{name} of {line}"),
                (_, None) => assert_eq!(field, "", "{name} of {line}"),
                (_, Some(other)) => panic!("{name}: unexpected {other}"),
            }
        }
        replayed += usize::from(object.contains_key("source_row"));
        quoted_id += usize::from(&row[1] == "pump 3, \"north\"");
    }
    assert_eq!(replayed, 6, "every row of the replayed file");
    assert!(quoted_id > 0, "the quoted id has readings");

    // As written: quoted only where needed, the recorded time with its comma too.
    let text = std::fs::read_to_string(c.join("readings.csv")).unwrap();
    assert!(text.contains(",\"pump 3, \"\"north\"\"\",pressure,"), "{text}");
    assert!(text.contains(",\"machine,1\",value,"), "{text}");
    assert!(text.contains(",2,\"Wed, 1 May 2024 10:05\"\n"), "{text}");
    assert!(text.contains(",t-1,temperature,"), "{text}");
    assert!(text.contains(",1,2024-05-01 10:00\n"), "{text}");

    // The other files are the same; the summary counts the rows.
    for file in ["events.jsonl", "anomalies.jsonl"] {
        assert_eq!(
            std::fs::read(j.join(file)).unwrap(),
            std::fs::read(c.join(file)).unwrap(),
            "{file}"
        );
    }
    assert!(!read_jsonl(&c.join("anomalies.jsonl")).is_empty(), "the spike is found");
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(c.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["reads"]["ok"].as_u64(), Some(rows.len() as u64));
    let failed = summary["reads"]["failed"].as_u64().unwrap() + summary["reads"]["timed_out"].as_u64().unwrap();
    assert!(failed > 0, "some reads fail or time out: {summary}");
    let names: Vec<&str> = summary["subscribers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert!(names.contains(&"readings.csv"), "{names:?}");
}

/// `story` tells the same story, as text and as JSON, from a csv folder and a jsonl folder,
/// for the id with a comma and quotes, a sensor with an anomaly, and the replayed sensor; and
/// again without `summary.json` (the rounds then read from the files' last lines).
#[test]
fn story_is_the_same_from_a_csv_folder() {
    let dir = setup();
    run_format(dir.path(), "j", "jsonl");
    run_format(dir.path(), "c", "csv");
    let story = |out: &str, id: &str, json: bool| {
        let mut args = vec!["story", out, id];
        if json {
            args.push("--json");
        }
        let output = run_in(dir.path(), &args);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    };
    let ids = ["pump 3, \"north\"", "t-2", "machine,1", "t-3"];
    for id in ids {
        for json in [false, true] {
            assert_eq!(story("c", id, json), story("j", id, json), "{id}");
        }
    }
    assert!(story("c", "t-2", false).contains("anomal"));
    for out in ["j", "c"] {
        std::fs::remove_file(dir.path().join(out).join("summary.json")).unwrap();
    }
    for id in ids {
        assert_eq!(story("c", id, true), story("j", id, true), "{id}, without a summary");
    }
}

/// A folder written in one format and then the other holds only the last run's readings file,
/// and `scripts/check-outputs.py` (where Python is there) agrees with either folder.
#[test]
fn a_run_removes_the_other_formats_readings_file() {
    let dir = setup();
    run_format(dir.path(), "o", "csv");
    run_format(dir.path(), "o", "jsonl");
    let o = dir.path().join("o");
    assert!(o.join("readings.jsonl").exists() && !o.join("readings.csv").exists());
    run_format(dir.path(), "o", "csv");
    assert!(o.join("readings.csv").exists() && !o.join("readings.jsonl").exists());

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/check-outputs.py");
    if let Ok(output) = Command::new("python3").arg(&script).arg(&o).output() {
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(!stdout.contains("differs"), "{stdout}");
    }
}

/// The format from the configuration file, and the flag over it.
#[test]
fn the_format_comes_from_the_file_and_the_flag_overrides_it() {
    let dir = setup();
    let config = format!("[outputs.files]\nreadings_format = \"csv\"\n{CONFIG}");
    std::fs::write(dir.path().join("c.toml"), config).unwrap();
    let output = run_in(
        dir.path(),
        &["run", "--config", "c.toml", "--clock", "virtual", "--out", "f"],
    );
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(dir.path().join("f/readings.csv").exists());
    run_format(dir.path(), "g", "jsonl");
    assert!(dir.path().join("g/readings.jsonl").exists() && !dir.path().join("g/readings.csv").exists());
}

/// Asserts exit code 2, nothing on stdout, and the one stderr line `expected`.
fn assert_one_line(output: &Output, expected: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(output.stdout.is_empty());
    assert_eq!(stderr, format!("sensor-actors: {expected}\n"));
}

/// A bad `--readings-format`, a bad `readings_format` and an unknown key of `[outputs.files]`
/// are each one line naming the flag or the file and field, with what was expected, exit 2.
#[test]
fn bad_formats_are_one_line_and_exit_2() {
    let dir = setup();
    assert_one_line(
        &run_in(dir.path(), &["run", "--readings-format", "xml", "--out", "o"]),
        "command line: --readings-format: expected jsonl or csv, got \"xml\"",
    );
    assert!(!dir.path().join("o").exists(), "nothing written");
    std::fs::write(
        dir.path().join("bad.toml"),
        "[outputs.files]\nreadings_format = \"CSV\"\n[[sensors]]\ncount = 1\n",
    )
    .unwrap();
    let expected = "bad.toml: outputs.files.readings_format: unknown variant `CSV`, expected `jsonl` or `csv` (line 2)";
    assert_one_line(&run_in(dir.path(), &["check", "bad.toml"]), expected);
    assert_one_line(&run_in(dir.path(), &["run", "--config", "bad.toml"]), expected);
    std::fs::write(
        dir.path().join("key.toml"),
        "[outputs.files]\nformat = \"csv\"\n[[sensors]]\ncount = 1\n",
    )
    .unwrap();
    assert_one_line(
        &run_in(dir.path(), &["check", "key.toml"]),
        "key.toml: outputs.files.format: unknown field `format`, expected `readings_format` (line 2)",
    );
}

/// `story` on a `readings.csv` that is not what a run writes: a wrong header is one line naming
/// the file and line 1; a torn last row (a run killed in a write) is dropped, as in JSON Lines.
#[test]
fn story_checks_the_header_and_drops_a_torn_last_row() {
    let dir = setup();
    run_format(dir.path(), "c", "csv");
    let path = dir.path().join("c/readings.csv");
    let text = std::fs::read_to_string(&path).unwrap();
    let whole = run_in(dir.path(), &["story", "c", "t-1", "--json"]);
    std::fs::write(&path, format!("{text}9,t-1,temperature,2")).unwrap();
    let torn = run_in(dir.path(), &["story", "c", "t-1", "--json"]);
    assert!(torn.status.success(), "{}", String::from_utf8_lossy(&torn.stderr));
    assert_eq!(torn.stdout, whole.stdout);
    std::fs::write(&path, text.replacen("round,sensor,kind", "round,kind,sensor", 1)).unwrap();
    let path = Path::new("c").join("readings.csv");
    assert_one_line(
        &run_in(dir.path(), &["story", "c", "t-1"]),
        &format!("{}: line 1: expected the header {HEADER}", path.display()),
    );
}
