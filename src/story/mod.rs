//! One sensor's story, read back from the `--out` folder of a run: its summary entry, then a
//! timeline in round order that merges its readings (runs of consecutive rounds compressed
//! into one entry), the rounds without a reading and why, its journal events with the own
//! events of its group and of the groups above it, and its anomalies; then what happened last.
//! `sensor-actors story DIR SENSOR` prints it as text ([`Story::render_text`]) or, with
//! `--json`, as one JSON object (the [`Serialize`] form, documented in `docs/supervision.md`).
//!
//! The files can be huge (`readings.jsonl` holds every reading of every sensor): each is read
//! as a stream, in chunks, and only the lines that contain the quoted sensor id (or its groups'
//! names) are parsed (`scan`); `summary.json` is read one sensor entry at a time (`summary`).
//! The readings may be `readings.csv` instead (`run --readings-format csv`): its rows are found
//! the same way, by the sensor's field between commas, and read with the `csv` crate.
//! Memory is one chunk plus this sensor's story. The timeline itself is built by pure
//! functions (`timeline`), the text by `text`.

mod scan;
mod summary;
mod text;
mod timeline;

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::ReadingsFormat;
use crate::report::{GroupSummary, SensorSummary};
use crate::sinks::ReadingLine;
use scan::{ScanEnd, ScanError, CHUNK_BYTES};

/// One sensor's story.
///
/// ```no_run
/// let story = sensor_actors::story::Story::read("out".as_ref(), "temperature-3")?;
/// print!("{}", story.render_text());
/// println!("{}", serde_json::to_string(&story)?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Story {
    /// The sensor id.
    pub sensor: String,
    /// What it measures (from the summary, else from its readings; `None` without either).
    pub kind: Option<String>,
    /// Its unit (as `kind`).
    pub unit: Option<String>,
    /// The `[[groups]]` entry it belongs to; `None` for an ungrouped sensor.
    pub group: Option<String>,
    /// Its entry of `summary.json`; `None` when the folder has no `summary.json` (the run was
    /// interrupted).
    pub summary: Option<SensorSummary>,
    /// The entry of `summary.json`'s `groups` it belongs to: its `[[groups]]` entry, or the
    /// shard of ungrouped sensors that held it.
    pub group_summary: Option<GroupSummary>,
    /// The groups its group is nested in (`parent`), innermost first, from the summary; their
    /// own events are in the timeline too.
    pub ancestors: Vec<String>,
    /// Rounds of the run: the summary's, or without it the last round the line files hold.
    pub rounds: u64,
    /// Counted from the files.
    pub counts: Counts,
    /// What happened, in round order.
    pub timeline: Vec<Entry>,
    /// How it ended.
    pub end: End,
}

/// What the files hold of the sensor, counted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Counts {
    /// Rounds with a reading (lines of `readings.jsonl`, or rows of `readings.csv`).
    pub readings: u64,
    /// Rounds without a reading, by why.
    pub without_reading: BTreeMap<GapReason, u64>,
    /// Lines of `anomalies.jsonl`.
    pub anomalies: u64,
    /// Lines of `events.jsonl`: the sensor's, its group's own and its group's ancestors' own.
    pub events: u64,
}

/// One entry of the timeline (in JSON an object whose `entry` says which).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "entry", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Entry {
    /// Consecutive rounds with a reading.
    Readings(ReadingRun),
    /// Consecutive rounds without a reading, for one reason.
    Gap(Gap),
    /// A line of `events.jsonl` about the sensor, its group or a group its group is nested in.
    Event(JournalEvent),
    /// A line of `anomalies.jsonl` about the sensor.
    Anomaly(AnomalyRecord),
}

/// Consecutive rounds with a reading. A run ends at a round with an event or an anomaly, so
/// that they come in order.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ReadingRun {
    /// First round.
    pub first: u64,
    /// Last round.
    pub last: u64,
    /// Readings (one per round).
    pub readings: u64,
    /// Smallest value (`None` when no value was a number).
    pub min: Option<f64>,
    /// Largest value.
    pub max: Option<f64>,
    /// Value of the last reading.
    pub last_value: Option<f64>,
    /// Time of the first reading.
    pub first_timestamp: String,
    /// Time of the last reading.
    pub last_timestamp: String,
}

/// Consecutive rounds without a reading. `readings.jsonl` holds successful readings only; the
/// reason is what the journal says of those rounds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Gap {
    /// First round.
    pub first: u64,
    /// Last round.
    pub last: u64,
    /// Why.
    pub reason: GapReason,
}

/// Why a round has no reading, from the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum GapReason {
    /// The read failed: the round has the sensor's (or its group actor's) `failed` event.
    Failed,
    /// The read timed out on the way to a hang: the round has a `timed_out` event (a verbose
    /// journal).
    TimedOut,
    /// The sensor was running and nothing was journaled: a transient error, a timeout (without
    /// a verbose journal) or the device offline.
    NotJournaled,
    /// Down after a failure, waiting for its restart.
    Restarting,
    /// Its group's actor stopped and waits for its restart.
    GroupRestarting,
    /// Failed, without a decision journaled yet.
    Down,
    /// Stopped (a normal exit, or a temporary sensor's failure).
    Stopped,
    /// Given up.
    GivenUp,
    /// No `started` (or `added`) event for it before this round.
    NotStarted,
    /// Removed while the run went on: not read any more.
    Removed,
}

impl GapReason {
    /// The reason for people.
    pub fn describe(self) -> &'static str {
        match self {
            GapReason::Failed => "the read failed",
            GapReason::TimedOut => "the read timed out",
            GapReason::NotJournaled => "not journaled (a transient error, a timeout or the device offline)",
            GapReason::Restarting => "down, waiting for its restart",
            GapReason::GroupRestarting => "its group's actor is down, waiting for its restart",
            GapReason::Down => "down after its failure",
            GapReason::Stopped => "stopped",
            GapReason::GivenUp => "given up",
            GapReason::NotStarted => "not started",
            GapReason::Removed => "removed",
        }
    }

    /// The reason as the text form counts it: `3 with a failure`, `2 given up`.
    pub fn label(self) -> &'static str {
        match self {
            GapReason::Failed => "with a failure",
            GapReason::TimedOut => "timed out",
            GapReason::NotJournaled => "not journaled",
            GapReason::Restarting => "waiting for a restart",
            GapReason::GroupRestarting => "waiting for its group",
            GapReason::Down => "down",
            GapReason::Stopped => "stopped",
            GapReason::GivenUp => "given up",
            GapReason::NotStarted => "not started",
            GapReason::Removed => "removed",
        }
    }

    /// The reason's name (as in the JSON form).
    pub fn as_str(self) -> &'static str {
        match self {
            GapReason::Failed => "failed",
            GapReason::TimedOut => "timed_out",
            GapReason::NotJournaled => "not_journaled",
            GapReason::Restarting => "restarting",
            GapReason::GroupRestarting => "group_restarting",
            GapReason::Down => "down",
            GapReason::Stopped => "stopped",
            GapReason::GivenUp => "given_up",
            GapReason::NotStarted => "not_started",
            GapReason::Removed => "removed",
        }
    }
}

/// A line of `events.jsonl` (its fields are described in `docs/outputs.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct JournalEvent {
    /// When.
    pub timestamp: String,
    /// The round in flight, or the last one started (0 before the first).
    pub round: u64,
    /// The sensor; absent for an event of a group itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensor: Option<String>,
    /// The sensor's `[[groups]]` entry, or the group the event is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// `started`, `failed`, `restart_scheduled`, `restarted`, `gave_up`, `escalated`,
    /// `stopped` or `timed_out`.
    pub event: String,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// For `restart_scheduled`: the delay, in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// Restarts so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarts: Option<u32>,
    /// For `restart_scheduled`: which delay of the backoff (1 for `backoff_min`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// For `restart_scheduled`: the backoff started over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_reset: Option<bool>,
    /// For `restart_scheduled`: restarts in the intensity window, this one included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<u32>,
    /// For `restart_scheduled`: the restarts the window allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_restarts: Option<u32>,
}

/// A line of `anomalies.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AnomalyRecord {
    /// Round.
    pub round: u64,
    /// Sensor id.
    pub sensor: String,
    /// Time of the reading (of the round, for `stale`).
    pub timestamp: String,
    /// The value judged (`None` for `stale`).
    pub value: Option<f64>,
    /// Detector name.
    pub detector: String,
    /// What it found.
    pub detail: String,
    /// Replayed data: the 1-based data row of the source file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_row: Option<u64>,
}

/// How the story ends.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct End {
    /// `running`, `restarting`, `stopped`, `given_up` or `removed`: the summary's state, or
    /// without a summary the journal's.
    pub state: String,
    /// The round of the event that put it in that state (`None`: running since its start).
    pub round: Option<u64>,
    /// That event's cause.
    pub cause: Option<String>,
    /// The round of its last reading.
    pub last_reading: Option<u64>,
    /// The last line of the text form, e.g. `given up in round 17: more than 5 restarts
    /// within 10s`.
    pub text: String,
}

/// A story that cannot be told. Each names the folder or file (and the line) at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoryError {
    /// The folder does not exist.
    #[error("{}: no such folder (expected the --out folder of a run)", path.display())]
    NoFolder {
        /// The folder.
        path: PathBuf,
    },
    /// The path is not a folder.
    #[error("{}: not a folder (expected the --out folder of a run)", path.display())]
    NotAFolder {
        /// The path.
        path: PathBuf,
    },
    /// A line file is missing.
    #[error(
        "{}: no such file (expected the --out folder of a run: readings.jsonl or readings.csv, anomalies.jsonl, events.jsonl)",
        path.display()
    )]
    NoFile {
        /// The file.
        path: PathBuf,
    },
    /// A file could not be read.
    #[error("{}: cannot read", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A line (or `summary.json`) is not what the run writes.
    #[error("{}: line {line}: {reason}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The 1-based line.
        line: u64,
        /// What was wrong.
        reason: String,
    },
    /// No such sensor in the run.
    #[error("{}", unknown_sensor(path, sensor, *sensors, close))]
    UnknownSensor {
        /// `summary.json`, or the folder when there is no summary.
        path: PathBuf,
        /// The id asked for.
        sensor: String,
        /// The sensors `summary.json` lists (`None` without a summary).
        sensors: Option<u64>,
        /// The closest ids it lists, closest first.
        close: Vec<String>,
    },
}

fn unknown_sensor(path: &Path, sensor: &str, sensors: Option<u64>, close: &[String]) -> String {
    let id = crate::parse::quoted(sensor);
    let Some(n) = sensors else {
        return format!(
            "{}: no line of events.jsonl, readings.jsonl or anomalies.jsonl names sensor {id} (and there is no summary.json)",
            path.display()
        );
    };
    let mut text = format!(
        "{}: sensors: no sensor {id} among its {n} sensor{}",
        path.display(),
        if n == 1 { "" } else { "s" }
    );
    if !close.is_empty() {
        let close: Vec<String> = close.iter().map(|c| crate::parse::quoted(c)).collect();
        text += &format!("; did you mean {}?", close.join(", "));
    }
    text
}

/// The line files of an `--out` folder (the readings' file is [`readings_file`]'s choice).
const ANOMALIES: &str = "anomalies.jsonl";
const EVENTS: &str = "events.jsonl";
const SUMMARY: &str = "summary.json";

impl Story {
    /// Reads sensor `id`'s story from the `--out` folder `dir`, streaming each file once (the
    /// events twice for a grouped sensor when `summary.json` is missing).
    pub fn read(dir: &Path, id: &str) -> Result<Story, StoryError> {
        check_folder(dir)?;
        let facts = read_summary(dir, id)?;
        // The groups whose own events belong to the story: its group (or shard), its ancestors.
        let groups: Vec<String> = facts.as_ref().map_or_else(Vec::new, |f| {
            f.group
                .iter()
                .map(|g| g.name.clone())
                .chain(f.ancestors.iter().cloned())
                .collect()
        });
        let lines = SensorLines::read(dir, id, groups, facts.is_none())?;
        let (rounds, summary, group_summary, ancestors) = match facts {
            Some(f) => (f.rounds, f.sensor, f.group, f.ancestors),
            None if lines.is_empty() => {
                return Err(StoryError::UnknownSensor {
                    path: dir.into(),
                    sensor: id.into(),
                    sensors: None,
                    close: Vec::new(),
                })
            }
            None => (lines.last_round, None, None, Vec::new()),
        };
        let (kind, unit) = match (&summary, lines.labels) {
            (Some(s), _) => (Some(s.kind.clone()), Some(s.unit.clone())),
            (None, Some((kind, unit))) => (Some(kind), Some(unit)),
            (None, None) => (None, None),
        };
        let group = summary
            .as_ref()
            .map_or(lines.groups.into_iter().next(), |s| s.group.clone());
        // Only its own group's events (or its shard's) move the sensor; an ancestor's concern
        // it through its group's and its own lines.
        let direct = group_summary.as_ref().map(|g| g.name.as_str()).or(group.as_deref());
        let built = timeline::build(rounds, lines.runs, lines.journal, lines.anomalies, direct);
        let end = timeline::end(&built, summary.as_ref(), rounds);
        Ok(Story {
            sensor: id.to_string(),
            kind,
            unit,
            group,
            summary,
            group_summary,
            ancestors,
            rounds,
            counts: built.counts,
            timeline: built.entries,
            end,
        })
    }

    /// The story as text for a terminal: a header, the timeline one entry a line, and what
    /// happened last.
    pub fn render_text(&self) -> String {
        text::render(self)
    }
}

/// Checks that `dir` is a folder holding the three line files.
fn check_folder(dir: &Path) -> Result<(), StoryError> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(StoryError::NotAFolder { path: dir.into() }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(StoryError::NoFolder { path: dir.into() }),
        Err(source) => {
            return Err(StoryError::Read {
                path: dir.into(),
                source,
            })
        }
    }
    readings_file(dir)?;
    for file in [ANOMALIES, EVENTS] {
        open(&dir.join(file))?;
    }
    Ok(())
}

/// The readings file of `dir` and its format: `readings.jsonl` or `readings.csv`, whichever is
/// there. A run removes the other when it starts, so both are there only when a program that
/// does not (an earlier version) wrote the folder since: the more recently modified is the
/// last run's (`readings.jsonl` if they tie).
fn readings_file(dir: &Path) -> Result<(PathBuf, ReadingsFormat), StoryError> {
    let modified = |format: ReadingsFormat| -> Result<Option<std::time::SystemTime>, StoryError> {
        let path = dir.join(format.file_name());
        match std::fs::metadata(&path) {
            Ok(m) => Ok(Some(m.modified().unwrap_or(std::time::UNIX_EPOCH))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoryError::Read { path, source }),
        }
    };
    let format = match (modified(ReadingsFormat::Jsonl)?, modified(ReadingsFormat::Csv)?) {
        (Some(jsonl), Some(csv)) if csv > jsonl => ReadingsFormat::Csv,
        (None, Some(_)) => ReadingsFormat::Csv,
        _ => ReadingsFormat::Jsonl,
    };
    let path = dir.join(format.file_name());
    open(&path)?;
    Ok((path, format))
}

/// What the line files hold of one sensor.
struct SensorLines {
    /// Its journal lines and its groups' own, in file order.
    journal: Vec<JournalEvent>,
    /// Its anomalies.
    anomalies: Vec<AnomalyRecord>,
    /// Its readings, in runs broken at the rounds of `journal` and `anomalies`.
    runs: Vec<ReadingRun>,
    /// `kind` and `unit` of its first reading.
    labels: Option<(String, String)>,
    /// The groups whose own lines are in `journal`, its own first.
    groups: Vec<String>,
    /// Without a summary, the last round of the three files (of every sensor); else 0.
    last_round: u64,
}

impl SensorLines {
    /// Reads sensor `id`'s lines of the three files of `dir`, and the own journal lines of
    /// `groups`. Without a summary, the group is the one its own lines name, and the last
    /// round is read from the files' last lines.
    fn read(dir: &Path, id: &str, groups: Vec<String>, without_summary: bool) -> Result<SensorLines, StoryError> {
        let [anomalies, events] = [ANOMALIES, EVENTS].map(|f| dir.join(f));
        let (readings, format) = readings_file(dir)?;
        let sensor_needle = needle("sensor", id);
        // Step 1: the journal, the sensor's lines and its group's own.
        let (mut journal, events_end) = read_journal(&events, id, &groups)?;
        let mut groups = groups;
        if without_summary {
            groups = journal.iter().find_map(|e| e.group.clone()).into_iter().collect();
            if !groups.is_empty() {
                journal = read_journal(&events, id, &groups)?.0;
            }
        }
        // Step 2: its anomalies.
        let mut found = Vec::new();
        let anomalies_end = scan_file(&anomalies, &[&sensor_needle], |line, text| {
            let record: AnomalyRecord = parse(&anomalies, line, text)?;
            if record.sensor == id {
                found.push(record);
            }
            Ok(())
        })?;
        // Step 3: its readings, as runs broken where events or anomalies come.
        let breaks = journal.iter().map(|e| e.round).chain(found.iter().map(|a| a.round));
        let mut runs = timeline::RunBuilder::new(breaks.collect());
        let mut labels: Option<(String, String)> = None;
        let row_needle = csv_needle(id);
        let readings_needle = match format {
            ReadingsFormat::Csv => {
                check_csv_header(&readings)?;
                &row_needle
            }
            _ => &sensor_needle,
        };
        let readings_end = scan_file(&readings, &[readings_needle], |line, text| {
            let reading: ReadingRecord = match format {
                // The header (its `,sensor,` is the needle of sensor `sensor`), checked above.
                ReadingsFormat::Csv if line == 1 => return Ok(()),
                ReadingsFormat::Csv => parse_row(&readings, line, text)?,
                _ => parse(&readings, line, text)?,
            };
            if reading.sensor == id {
                labels.get_or_insert_with(|| (reading.kind.clone(), reading.unit.clone()));
                runs.push(reading.round, reading.value, &reading.timestamp);
            }
            Ok(())
        })?;
        // Step 4: without a summary, the rounds are what the files hold.
        let last_round = if without_summary {
            match format {
                ReadingsFormat::Csv => last_row_round(&readings, &readings_end)?,
                _ => last_round(&readings, &readings_end)?,
            }
            .max(last_round(&anomalies, &anomalies_end)?)
            .max(last_round(&events, &events_end)?)
        } else {
            0
        };
        Ok(SensorLines {
            journal,
            anomalies: found,
            runs: runs.finish(),
            labels,
            groups,
            last_round,
        })
    }

    /// Whether no file names the sensor.
    fn is_empty(&self) -> bool {
        self.journal.is_empty() && self.anomalies.is_empty() && self.runs.is_empty()
    }
}

/// What a line of `readings.jsonl` (or a row of `readings.csv`) gives the story.
#[derive(Debug, Deserialize)]
struct ReadingRecord {
    round: u64,
    sensor: String,
    kind: String,
    /// `null` if a driver produced a value that is not a number.
    value: Option<f64>,
    unit: String,
    timestamp: String,
}

/// `"field":"value"` as the run writes it (JSON-escaped, no spaces): the needle a line of
/// `value` contains.
fn needle(field: &str, value: &str) -> String {
    let quoted = serde_json::to_string(value).unwrap_or_default();
    format!("\"{field}\":{quoted}")
}

/// `,sensor,` as a row of `readings.csv` holds sensor `id` (CSV-quoted where needed): the
/// round comes before it, its kind after it.
fn csv_needle(id: &str) -> String {
    let mut needle = vec![b','];
    crate::sinks::csv_field(&mut needle, id);
    needle.push(b',');
    String::from_utf8(needle).unwrap_or_default()
}

/// Refuses a `readings.csv` whose first line is not the header a run writes (an empty file, a
/// run stopped before its header, holds no readings).
fn check_csv_header(path: &Path) -> Result<(), StoryError> {
    use io::BufRead as _;
    let mut first = String::new();
    let limit = ReadingLine::CSV_HEADER.len() as u64 + 2;
    io::BufReader::new(io::Read::take(open(path)?, limit))
        .read_line(&mut first)
        .map_err(|source| StoryError::Read {
            path: path.into(),
            source,
        })?;
    if first.is_empty() || first.trim_end_matches(['\n', '\r']) == ReadingLine::CSV_HEADER {
        return Ok(());
    }
    Err(StoryError::Malformed {
        path: path.into(),
        line: 1,
        reason: format!("expected the header {}", ReadingLine::CSV_HEADER),
    })
}

/// Parses row `line` of `readings.csv`: the fields of the header, in its order.
fn parse_row(path: &Path, line: u64, text: &str) -> Result<ReadingRecord, StoryError> {
    let malformed = |reason: String| StoryError::Malformed {
        path: path.into(),
        line,
        reason,
    };
    let header = csv::StringRecord::from(ReadingLine::CSV_HEADER.split(',').collect::<Vec<_>>());
    let mut record = csv::StringRecord::new();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(text.as_bytes());
    match reader.read_record(&mut record) {
        Ok(true) if record.len() == header.len() => {}
        Ok(_) => {
            return Err(malformed(format!(
                "expected a row of {} fields as the header names, got {}",
                header.len(),
                record.len()
            )))
        }
        Err(e) => return Err(malformed(format!("expected a CSV row as the run writes it ({e})"))),
    }
    record
        .deserialize(Some(&header))
        .map_err(|e| malformed(format!("expected a row as the run writes it ({e})")))
}

/// The round of the last whole row of `readings.csv` (0 when it has none).
fn last_row_round(path: &Path, end: &ScanEnd) -> Result<u64, StoryError> {
    match &end.last_line {
        Some(text) if end.lines > 1 => Ok(parse_row(path, end.lines, text)?.round),
        _ => Ok(0),
    }
}

fn open(path: &Path) -> Result<File, StoryError> {
    File::open(path).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => StoryError::NoFile { path: path.into() },
        _ => StoryError::Read {
            path: path.into(),
            source,
        },
    })
}

/// The summary's facts about `id`: `None` when there is no `summary.json`; an error naming
/// close ids when it does not list `id`.
fn read_summary(dir: &Path, id: &str) -> Result<Option<summary::SummaryFacts>, StoryError> {
    let path = dir.join(SUMMARY);
    let read = |suggest: bool| -> Result<summary::SummaryFacts, StoryError> {
        let file = open(&path)?;
        summary::read(io::BufReader::with_capacity(CHUNK_BYTES, file), id, suggest).map_err(|e| json_error(&path, e))
    };
    let facts = match read(false) {
        Ok(facts) => facts,
        Err(StoryError::NoFile { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    if facts.sensor.is_some() {
        return Ok(Some(facts));
    }
    let close = read(true)?.close;
    Err(StoryError::UnknownSensor {
        path,
        sensor: id.into(),
        sensors: Some(facts.sensors),
        close,
    })
}

/// A JSON error of `summary.json` as a story error, with its line and column.
fn json_error(path: &Path, e: serde_json::Error) -> StoryError {
    if e.is_io() {
        return StoryError::Read {
            path: path.into(),
            source: e.into(),
        };
    }
    StoryError::Malformed {
        path: path.into(),
        line: e.line() as u64,
        reason: format!(
            "expected the summary a run writes ({} at column {})",
            json_reason(&e),
            e.column()
        ),
    }
}

/// serde_json's message without its position (the caller names the line).
fn json_reason(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// Parses one line of `path`.
fn parse<'a, T: Deserialize<'a>>(path: &Path, line: u64, text: &'a str) -> Result<T, StoryError> {
    serde_json::from_str(text).map_err(|e| StoryError::Malformed {
        path: path.into(),
        line,
        reason: format!(
            "expected a line as the run writes it ({} at column {})",
            json_reason(&e),
            e.column()
        ),
    })
}

/// Streams `path`, calling `on_line` for the lines that contain one of `needles`.
fn scan_file(
    path: &Path,
    needles: &[&str],
    on_line: impl FnMut(u64, &str) -> Result<(), StoryError>,
) -> Result<ScanEnd, StoryError> {
    scan::scan(open(path)?, needles, CHUNK_BYTES, on_line).map_err(|e| match e {
        ScanError::Io(source) => StoryError::Read {
            path: path.into(),
            source,
        },
        ScanError::NotUtf8 { line } => StoryError::Malformed {
            path: path.into(),
            line,
            reason: "expected UTF-8 text".into(),
        },
        ScanError::Line(e) => e,
    })
}

/// The journal lines of sensor `id` and the own lines of `groups`, in file order.
fn read_journal(path: &Path, id: &str, groups: &[String]) -> Result<(Vec<JournalEvent>, ScanEnd), StoryError> {
    let sensor_needle = needle("sensor", id);
    let group_needles: Vec<String> = groups.iter().map(|g| needle("group", g)).collect();
    let needles: Vec<&str> = std::iter::once(sensor_needle.as_str())
        .chain(group_needles.iter().map(String::as_str))
        .collect();
    let mut journal = Vec::new();
    let end = scan_file(path, &needles, |line, text| {
        // A member's line names its group too: only the group's own lines (no sensor) count.
        if !text.contains(&sensor_needle) && text.contains("\"sensor\":") {
            return Ok(());
        }
        let event: JournalEvent = parse(path, line, text)?;
        let own = event.sensor.as_deref() == Some(id);
        let of_group = event.sensor.is_none() && event.group.as_ref().is_some_and(|g| groups.contains(g));
        if own || of_group {
            journal.push(event);
        }
        Ok(())
    })?;
    Ok((journal, end))
}

/// The round of the last whole line of a line file (0 when it has none).
fn last_round(path: &Path, end: &ScanEnd) -> Result<u64, StoryError> {
    #[derive(Deserialize)]
    struct Round {
        round: u64,
    }
    match &end.last_line {
        Some(text) => Ok(parse::<Round>(path, end.lines, text)?.round),
        None => Ok(0),
    }
}
