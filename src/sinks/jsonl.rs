//! [`JsonlFiles`]: the `--out DIR` files, a sink attached to the streams like any user's.
//!
//! It writes the readings file (`readings.jsonl`, or `readings.csv` with
//! [`ReadingsFormat::Csv`]), `anomalies.jsonl` and `events.jsonl` line by line, handing them
//! to the files after every message (one per round and stream), so a run that is stopped or
//! fails loses nothing it already collected, and `summary.json` when the run's summary arrives.
//! The folder is locked against a second run, no symbolic link is followed, a failed write never
//! leaves a torn line (the lines it held are counted as lost and writing goes on with the next
//! message), and `summary.json` is replaced atomically. The first error is kept for
//! [`TakeOutputError`]. The schemas and guarantees are in `docs/outputs.md`.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use actix::{Actor, Context, Handler, Message, MessageResult};
use serde::{Deserialize, Serialize};

use super::behind::{DirectFile, LinesBehind};
use super::durable::{self, DirLock, LineWriter};
use crate::config::ReadingsFormat;
use crate::data::SupervisionEvent;
use crate::streams::{Anomalies, Anomaly, Journal, JournalPart, ReadingRecord, Readings, RunSummary};

/// An output file could not be written.
#[derive(Debug, thiserror::Error)]
#[error("{}{}", path.display(), lost_lines(*lost))]
#[non_exhaustive]
pub struct OutputError {
    /// The file or folder.
    pub path: PathBuf,
    /// The I/O error.
    #[source]
    pub source: io::Error,
    /// Lines of the line files that were not written, all files together, as of when the error
    /// was taken with [`TakeOutputError`] (0 for a folder or file that could not be created).
    pub lost: u64,
}

impl OutputError {
    fn new(path: PathBuf, source: io::Error) -> Self {
        OutputError { path, source, lost: 0 }
    }
}

fn lost_lines(lost: u64) -> String {
    match lost {
        0 => String::new(),
        1 => " (1 line was not written)".to_string(),
        n => format!(" ({n} lines were not written)"),
    }
}

/// A line file being written: JSON Lines, or the rows of `readings.csv`.
struct LineFile {
    path: PathBuf,
    lines: Lines,
}

/// Where a line file's lines are written.
enum Lines {
    /// On the caller's thread, through the page cache.
    Here(LineWriter<File>),
    /// By a thread of its own, directly to the disk where the file system allows it.
    Behind(LinesBehind),
}

impl LineFile {
    fn create(path: PathBuf) -> Result<LineFile, OutputError> {
        match durable::create_file(&path) {
            Ok(file) => Ok(LineFile {
                path,
                lines: Lines::Here(LineWriter::new(file)),
            }),
            Err(source) => Err(OutputError::new(path, source)),
        }
    }

    /// A file of many lines (the readings): written by a thread of its own
    /// ([`LinesBehind`]).
    fn create_behind(path: PathBuf) -> Result<LineFile, OutputError> {
        let behind = durable::create_file(&path).and_then(DirectFile::new).and_then(|file| {
            let how = if file.is_direct() {
                "directly"
            } else {
                "through the page cache"
            };
            log::debug!("{}: written {how}", path.display());
            LinesBehind::start(path.clone(), file)
        });
        match behind {
            Ok(behind) => Ok(LineFile {
                path,
                lines: Lines::Behind(behind),
            }),
            Err(source) => Err(OutputError::new(path, source)),
        }
    }

    /// Lines that could not be written.
    fn lost(&self) -> u64 {
        match &self.lines {
            Lines::Here(writer) => writer.lost,
            Lines::Behind(behind) => behind.lost(),
        }
    }

    /// Logs the start and the end of a streak of failed writes of a file written here (one
    /// written behind logs its own).
    fn report(&self, was_failing: bool, result: io::Result<()>) -> Result<(), OutputError> {
        if let Lines::Here(writer) = &self.lines {
            writer.log_streak(&self.path, was_failing, &result);
        }
        result.map_err(|source| OutputError::new(self.path.clone(), source))
    }

    /// Whether the last write of a file written here failed.
    fn failing(&self) -> bool {
        matches!(&self.lines, Lines::Here(writer) if writer.failing)
    }

    /// Adds one JSON line.
    fn write<T: Serialize>(&mut self, line: &T) -> Result<(), OutputError> {
        self.write_with(|buffer| serde_json::to_writer(buffer, line).map_err(io::Error::from))
    }

    /// Adds the one line `format` writes (without its newline).
    fn write_with(&mut self, format: impl FnOnce(&mut Vec<u8>) -> io::Result<()>) -> Result<(), OutputError> {
        let was_failing = self.failing();
        let result = match &mut self.lines {
            Lines::Here(writer) => writer.line(format),
            Lines::Behind(behind) => behind.line(format).inspect_err(|e| {
                log::error!("{}: a line cannot be formatted: {e}", self.path.display());
            }),
        };
        self.report(was_failing, result)
    }

    /// Flushes, and streams a large file on to the disk ([`LineWriter::write_behind`]); a file
    /// written behind is handed to its thread, and an error it met since is returned.
    fn flush(&mut self) -> Result<(), OutputError> {
        let was_failing = self.failing();
        let result = match &mut self.lines {
            Lines::Here(writer) => {
                let result = writer.flush();
                writer.write_behind();
                result
            }
            Lines::Behind(behind) => behind.flush(),
        };
        self.report(was_failing, result)
    }

    /// Flushes and makes the file durable; a file written behind once its thread wrote it all.
    fn sync(&mut self) -> Result<(), OutputError> {
        let was_failing = self.failing();
        let result = match &mut self.lines {
            Lines::Here(writer) => writer.sync(),
            Lines::Behind(behind) => behind.sync(),
        };
        self.report(was_failing, result)
    }
}

/// One line of `readings.jsonl`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ReadingLine<'a> {
    /// Round number.
    pub round: u64,
    /// Sensor id.
    pub sensor: &'a str,
    /// Sensor kind.
    pub kind: &'a str,
    /// The value.
    pub value: f64,
    /// Its unit.
    pub unit: &'a str,
    /// RFC 3339 time of the reading.
    pub timestamp: String,
    /// Read latency in milliseconds.
    pub latency_ms: f64,
    /// Replayed data: 1-based data row of the source file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_row: Option<u64>,
    /// Replayed data: the recorded time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_time: Option<&'a str>,
}

/// One line of `anomalies.jsonl`.
#[derive(Debug, Serialize, Deserialize)]
pub struct AnomalyLine<'a> {
    /// Round number.
    pub round: u64,
    /// Sensor id.
    pub sensor: &'a str,
    /// RFC 3339 time of the reading (or of the round, for `stale`).
    pub timestamp: String,
    /// The value judged (`null` for `stale`).
    pub value: Option<f64>,
    /// Detector name.
    pub detector: &'a str,
    /// What it found.
    pub detail: String,
    /// Replayed data: 1-based data row of the source file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_row: Option<u64>,
}

/// One line of `events.jsonl`.
#[derive(Debug, Serialize, Deserialize)]
pub struct EventLine<'a> {
    /// RFC 3339 time of the event.
    pub timestamp: String,
    /// The round in flight, or the last one started (0 before the first).
    pub round: u64,
    /// Sensor id; absent for an event of a group itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensor: Option<&'a str>,
    /// The `[[groups]]` entry of the sensor, or the group the event is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<&'a str>,
    /// The output the event is about (its connection), for an output's own events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<&'a str>,
    /// Event name.
    pub event: &'a str,
    /// Why, for failures and give-ups.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<&'a str>,
    /// Backoff delay, for `restart_scheduled`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// Restarts so far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restarts: Option<u32>,
    /// For `restart_scheduled`: which delay of the backoff (1 for `backoff_min`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// For `restart_scheduled`: whether the backoff started over (the sensor ran `within`
    /// without failing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_reset: Option<bool>,
    /// For `restart_scheduled`: restarts in the intensity window, this one included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<u32>,
    /// For `restart_scheduled`: restarts the window allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_restarts: Option<u32>,
}

impl<'a> ReadingLine<'a> {
    /// The line of reading `r` of `round`, for sensor `sensor` (`r.sensor()`, made by the
    /// caller, who holds it).
    pub(crate) fn new(round: u64, r: &ReadingRecord<'a>, sensor: &'a str) -> Self {
        let reading = r.reading;
        ReadingLine {
            round,
            sensor,
            kind: r.kind,
            value: reading.value,
            unit: r.unit,
            timestamp: rfc3339(&reading.timestamp),
            latency_ms: reading.latency.as_micros() as f64 / 1000.0,
            source_row: reading.source_row(),
            source_time: reading.source_time(),
        }
    }
}

impl ReadingLine<'_> {
    /// The header line of `readings.csv`: the fields of a JSON line, in the same order, the
    /// optional ones included.
    pub const CSV_HEADER: &'static str = "round,sensor,kind,value,unit,timestamp,latency_ms,source_row,source_time";

    /// Appends this reading as one row of `readings.csv`, without its newline: the fields of
    /// [`CSV_HEADER`](Self::CSV_HEADER), numbers in the very text JSON has them in (the
    /// shortest that reads back to the same `f64`; a value that is not a number, `null` in
    /// JSON, is an empty field), strings as they are, quoted as RFC 4180 says only when they
    /// hold a comma, a quote or a line break, and the fields of replayed data empty when the
    /// reading is not replayed.
    pub fn write_csv(&self, row: &mut Vec<u8>) -> io::Result<()> {
        self.fields().write_csv(row)
    }

    /// The fields, as [`ReadingFormatter`] writes them.
    fn fields(&self) -> Fields<'_> {
        Fields {
            round: self.round,
            sensor: self.sensor,
            kind: self.kind,
            value: self.value,
            unit: self.unit,
            timestamp: self.timestamp.as_bytes(),
            latency: Latency::Millis(self.latency_ms),
            source_row: self.source_row,
            source_time: self.source_time,
        }
    }
}

/// The fields of a reading's line, borrowed.
struct Fields<'a> {
    round: u64,
    sensor: &'a str,
    kind: &'a str,
    value: f64,
    unit: &'a str,
    /// RFC 3339 text (written as it is in JSON: it holds nothing to escape).
    timestamp: &'a [u8],
    latency: Latency,
    source_row: Option<u64>,
    source_time: Option<&'a str>,
}

/// A reading's latency as its line has it, in milliseconds.
#[derive(Debug, Clone, Copy)]
enum Latency {
    /// A whole number of microseconds below 2^32: written as its digits ([`json_micros`]),
    /// without a float.
    Micros(u32),
    /// Any other ([`json_millis`]).
    Millis(f64),
}

impl Latency {
    fn of(latency: std::time::Duration) -> Latency {
        match u32::try_from(latency.as_micros()) {
            Ok(micros) => Latency::Micros(micros),
            Err(_) => Latency::long(latency),
        }
    }

    /// Apart, and never inlined: else the compiler makes the float of every latency (a call
    /// to convert a 128-bit integer, for each line) whether it is used or not.
    #[cold]
    #[inline(never)]
    fn long(latency: std::time::Duration) -> Latency {
        Latency::Millis(latency.as_micros() as f64 / 1000.0)
    }
}

impl Fields<'_> {
    /// The line serde_json makes of the [`ReadingLine`], byte for byte, from its kind on (the
    /// formatter writes the round and the id before it): the keys and the kind's part written
    /// as they are made once per kind (`kind`), the time as it is (it holds nothing to escape),
    /// a string that needs no escaping copied between quotes, latencies of whole microseconds
    /// by [`json_micros`], and every other value through serde_json (floats in their shortest
    /// form, `null` for one that is not finite).
    fn write_json_from_kind(&self, kind: &KindJson, line: &mut Vec<u8>) -> io::Result<()> {
        line.extend_from_slice(&kind.before_value);
        serde_json::to_writer(&mut *line, &self.value)?;
        line.extend_from_slice(&kind.after_value);
        match <&[u8; STAMP]>::try_from(self.timestamp) {
            // The usual length, copied as a whole (no call to copy a few bytes).
            Ok(stamp) => line.extend_from_slice(stamp),
            Err(_) => line.extend_from_slice(self.timestamp),
        }
        line.extend_from_slice(b"\",\"latency_ms\":");
        self.write_latency(line)?;
        if let Some(source_row) = self.source_row {
            line.extend_from_slice(b",\"source_row\":");
            serde_json::to_writer(&mut *line, &source_row)?;
        }
        if let Some(source_time) = self.source_time {
            line.extend_from_slice(b",\"source_time\":");
            json_str(line, source_time)?;
        }
        line.push(b'}');
        Ok(())
    }

    /// The latency in milliseconds, as serde_json writes it.
    fn write_latency(&self, line: &mut Vec<u8>) -> io::Result<()> {
        match self.latency {
            Latency::Micros(micros) => json_micros(line, micros),
            Latency::Millis(ms) => json_millis(line, ms),
        }
    }

    /// The row of `readings.csv` ([`ReadingLine::write_csv`]).
    fn write_csv(&self, row: &mut Vec<u8>) -> io::Result<()> {
        serde_json::to_writer(&mut *row, &self.round)?;
        row.push(b',');
        csv_field(row, self.sensor);
        row.push(b',');
        csv_field(row, self.kind);
        row.push(b',');
        if self.value.is_finite() {
            serde_json::to_writer(&mut *row, &self.value)?;
        }
        row.push(b',');
        csv_field(row, self.unit);
        row.push(b',');
        csv_bytes(row, self.timestamp);
        row.push(b',');
        if !matches!(self.latency, Latency::Millis(ms) if !ms.is_finite()) {
            self.write_latency(row)?;
        }
        row.push(b',');
        if let Some(source_row) = self.source_row {
            serde_json::to_writer(&mut *row, &source_row)?;
        }
        row.push(b',');
        if let Some(source_time) = self.source_time {
            csv_field(row, source_time);
        }
        Ok(())
    }
}

/// Appends `text` as a JSON string, as serde_json writes it: between quotes as it is when it
/// holds no character JSON escapes (a double quote, a backslash, a control character).
fn json_str(line: &mut Vec<u8>, text: &str) -> io::Result<()> {
    if plain_json(text.as_bytes()) {
        line.push(b'"');
        line.extend_from_slice(text.as_bytes());
        line.push(b'"');
        return Ok(());
    }
    serde_json::to_writer(&mut *line, text).map_err(io::Error::from)
}

/// Whether `text` holds no byte JSON escapes (a double quote, a backslash, a control
/// character).
fn plain_json(text: &[u8]) -> bool {
    // Every byte looked at (no early exit): a loop the compiler runs several bytes at a time.
    !text
        .iter()
        .fold(false, |escaped, &b| escaped | (b < 0x20) | (b == b'"') | (b == b'\\'))
}

/// Appends `ms`, a latency in milliseconds, as serde_json writes it. One of a whole number of
/// microseconds below 2^32 (71 minutes; every latency from a `Duration`, made as `micros /
/// 1000.0`) is that decimal: its shortest form, since no other decimal of three places or
/// fewer lies within half a unit of the last place of a double that small. The digits are
/// written directly, with `.0` for a whole number as serde_json does; anything else goes
/// through serde_json.
fn json_millis(line: &mut Vec<u8>, ms: f64) -> io::Result<()> {
    let micros = (ms * 1000.0).round();
    if ms.is_sign_positive() && micros < 4_294_967_296.0 && micros / 1000.0 == ms {
        return json_micros(line, micros as u32);
    }
    serde_json::to_writer(&mut *line, &ms).map_err(io::Error::from)
}

/// Appends `micros / 1000.0`, a latency in milliseconds, as serde_json writes it
/// ([`json_millis`]): the whole milliseconds, a point, and one to three digits.
fn json_micros(line: &mut Vec<u8>, micros: u32) -> io::Result<()> {
    serde_json::to_writer(&mut *line, &(micros / 1000))?;
    line.push(b'.');
    let fraction = micros % 1000;
    let digits = [fraction / 100, fraction / 10 % 10, fraction % 10].map(|d| b'0' + d as u8);
    let kept = match fraction {
        f if f % 100 == 0 => 1,
        f if f % 10 == 0 => 2,
        _ => 3,
    };
    line.extend_from_slice(&digits[..kept]);
    Ok(())
}

/// The part of a reading's JSON line that its kind and unit make, as serde_json writes it:
/// made once for a run of readings of one kind.
#[derive(Debug, Default)]
struct KindJson {
    kind: String,
    unit: String,
    /// `,"kind":KIND,"value":`
    before_value: Vec<u8>,
    /// `,"unit":UNIT,"timestamp":"`
    after_value: Vec<u8>,
}

impl KindJson {
    /// Made again for `kind` and `unit` unless they are those it has.
    fn update(&mut self, kind: &str, unit: &str) -> io::Result<()> {
        if !self.before_value.is_empty() && self.kind == kind && self.unit == unit {
            return Ok(());
        }
        self.kind.clear();
        self.kind.push_str(kind);
        self.unit.clear();
        self.unit.push_str(unit);
        self.before_value.clear();
        self.before_value.extend_from_slice(b",\"kind\":");
        serde_json::to_writer(&mut self.before_value, kind)?;
        self.before_value.extend_from_slice(b",\"value\":");
        self.after_value.clear();
        self.after_value.extend_from_slice(b",\"unit\":");
        serde_json::to_writer(&mut self.after_value, unit)?;
        self.after_value.extend_from_slice(b",\"timestamp\":\"");
        Ok(())
    }
}

/// The length of a time as the lines have it: `YYYY-MM-DDTHH:MM:SS.mmmZ`.
const STAMP: usize = 24;

/// Writes the lines of a round's readings without an allocation per reading: the id into a
/// buffer kept from line to line ([`ReadingRecord::write_sensor`]), the time from the second
/// it falls in, formatted once per second. The bytes are those of [`ReadingLine`] (JSON, as
/// serde_json makes them) and [`ReadingLine::write_csv`].
#[derive(Debug, Default)]
pub(crate) struct ReadingFormatter {
    /// The id, for a CSV row.
    sensor: String,
    /// `YYYY-MM-DDTHH:MM:SS` of `second`, then the line's `.mmmZ`.
    stamp: [u8; STAMP],
    /// The Unix second `stamp` starts with, if it holds one.
    second: Option<i64>,
    /// The time of the line as chrono writes it, when `stamp` has no room for it.
    other_time: String,
    /// The JSON of the kind of the last line.
    kind: KindJson,
    /// `{"round":ROUND,"sensor":"` of the round of `head_round`.
    head: Vec<u8>,
    head_round: Option<u64>,
}

impl ReadingFormatter {
    /// Appends the line of reading `r` of `round` (without its newline).
    pub(crate) fn write(
        &mut self,
        format: ReadingsFormat,
        round: u64,
        r: &ReadingRecord<'_>,
        line: &mut Vec<u8>,
    ) -> io::Result<()> {
        let plain_time = self.format_time(&r.reading.timestamp);
        let reading = r.reading;
        let mut fields = Fields {
            round,
            // Written by the caller of the fields: for a JSON line, straight into the line.
            sensor: "",
            kind: r.kind,
            value: reading.value,
            unit: r.unit,
            timestamp: if plain_time {
                &self.stamp
            } else {
                self.other_time.as_bytes()
            },
            latency: Latency::of(reading.latency),
            source_row: reading.source_row(),
            source_time: reading.source_time(),
        };
        match format {
            ReadingsFormat::Jsonl => {
                self.kind.update(r.kind, r.unit)?;
                if self.head_round != Some(round) {
                    self.head.clear();
                    self.head.extend_from_slice(b"{\"round\":");
                    serde_json::to_writer(&mut self.head, &round)?;
                    self.head.extend_from_slice(b",\"sensor\":\"");
                    self.head_round = Some(round);
                }
                line.extend_from_slice(&self.head);
                let id = line.len();
                r.write_sensor_bytes(line);
                if plain_json(&line[id..]) {
                    line.push(b'"');
                } else {
                    // Escaped as serde_json escapes it, quotes included.
                    let text = String::from_utf8_lossy(&line[id..]).into_owned();
                    line.truncate(id - 1);
                    serde_json::to_writer(&mut *line, &text)?;
                }
                fields.write_json_from_kind(&self.kind, line)
            }
            ReadingsFormat::Csv => {
                self.sensor.clear();
                r.write_sensor(&mut self.sensor);
                fields.sensor = &self.sensor;
                fields.write_csv(line)
            }
        }
    }

    /// Puts [`rfc3339`] of `t` in `self.stamp`, or in `self.other_time` when it does not have
    /// the usual length (false).
    fn format_time(&mut self, t: &chrono::DateTime<chrono::Utc>) -> bool {
        use chrono::{Datelike, Timelike};
        let second = t.timestamp();
        let millis = t.timestamp_subsec_millis();
        if self.second != Some(second) || millis >= 1000 {
            // A leap second (nanoseconds past 10^9) or a year of other than four digits: as
            // chrono writes it.
            let time = t.naive_utc();
            if millis >= 1000 || !(0..=9999).contains(&time.year()) {
                self.other_time = rfc3339(t);
                self.second = None;
                return false;
            }
            // Digit by digit (a round's readings, in configuration order, go back and forth
            // across a second when their latencies do: chrono's formatter each time was 2% of
            // a round's CPU at a million sensors).
            let year = time.year() as u32;
            let fields = [
                year / 100,
                year % 100,
                time.month(),
                time.day(),
                time.hour(),
                time.minute(),
                time.second(),
            ];
            // `YYYY-MM-DDTHH:MM:SS`: where each field's two digits go.
            for (at, value) in [0, 2, 5, 8, 11, 14, 17].into_iter().zip(fields) {
                self.stamp[at] = b'0' + (value / 10) as u8;
                self.stamp[at + 1] = b'0' + (value % 10) as u8;
            }
            for (at, separator) in [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')] {
                self.stamp[at] = separator;
            }
            self.second = Some(second);
        }
        let digits = [millis / 100, millis / 10 % 10, millis % 10].map(|d| b'0' + d as u8);
        self.stamp[19..].copy_from_slice(&[b'.', digits[0], digits[1], digits[2], b'Z']);
        true
    }
}

/// Appends `text` as a CSV field: as it is, or between double quotes (its own doubled) when it
/// holds a comma, a double quote, a carriage return or a line feed (RFC 4180).
pub(crate) fn csv_field(row: &mut Vec<u8>, text: &str) {
    csv_bytes(row, text.as_bytes());
}

/// [`csv_field`] of text as its bytes.
fn csv_bytes(row: &mut Vec<u8>, text: &[u8]) {
    if !text.iter().any(|b| matches!(b, b',' | b'"' | b'\r' | b'\n')) {
        row.extend_from_slice(text);
        return;
    }
    row.push(b'"');
    for part in text.split_inclusive(|&b| b == b'"') {
        row.extend_from_slice(part);
        if part.ends_with(b"\"") {
            row.push(b'"');
        }
    }
    row.push(b'"');
}

impl<'a> AnomalyLine<'a> {
    /// The line of anomaly `a`.
    pub(crate) fn new(a: &'a Anomaly) -> Self {
        AnomalyLine {
            round: a.round,
            sensor: &a.sensor,
            timestamp: rfc3339(&a.timestamp),
            value: a.value,
            detector: &a.detector,
            detail: a.detail.clone(),
            source_row: a.source_row,
        }
    }
}

impl<'a> EventLine<'a> {
    /// The line of journal event `event`.
    pub(crate) fn new(event: &'a SupervisionEvent) -> Self {
        EventLine {
            timestamp: rfc3339(&event.timestamp),
            round: event.round,
            sensor: event.sensor.as_deref(),
            group: event.group.as_deref(),
            output: event.output.as_deref(),
            event: event.event.as_str(),
            cause: event.cause.as_deref(),
            delay_ms: event.delay.map(|d| d.as_millis() as u64),
            restarts: event.restarts,
            attempt: event.backoff.map(|b| b.attempt),
            backoff_reset: event.backoff.map(|b| b.reset),
            window: event.backoff.map(|b| b.window),
            max_restarts: event.backoff.map(|b| b.max_restarts),
        }
    }
}

/// The files of `--out DIR`, as an actor: a lossless subscriber of the readings, the
/// anomalies, the journal and the run's summary (which [`Collector::out`](crate::Collector::out)
/// attaches, or by hand as below).
///
/// ```no_run
/// use actix::Actor;
/// use sensor_actors::sinks::JsonlFiles;
/// use sensor_actors::streams::{Anomalies, Delivery, Journal, Readings, RunSummary};
/// use sensor_actors::Collector;
///
/// # async fn demo(config: sensor_actors::Config) -> anyhow::Result<()> {
/// let files = JsonlFiles::create("out".as_ref())?.start();
/// let lossless = || Delivery::lossless();
/// let collector = Collector::new()
///     .subscribe_with(files.clone().recipient::<Readings>(), lossless())
///     .subscribe_with(files.clone().recipient::<Anomalies>(), lossless())
///     .subscribe_with(files.clone().recipient::<Journal>(), lossless())
///     .subscribe_with(files.clone().recipient::<RunSummary>(), lossless());
/// let summary = collector.run(config, std::future::pending()).await?;
/// if let Some(error) = files.send(sensor_actors::sinks::TakeOutputError).await? {
///     eprintln!("the files are incomplete: {error}");
/// }
/// # Ok(())
/// # }
/// ```
pub struct JsonlFiles {
    dir: PathBuf,
    /// `readings.jsonl`, or `readings.csv` when `format` is CSV.
    readings: LineFile,
    format: ReadingsFormat,
    /// Formats the readings' lines.
    formatter: ReadingFormatter,
    anomalies: LineFile,
    events: LineFile,
    /// The first write error of the run.
    error: Option<OutputError>,
    /// Held while the run writes the folder.
    _lock: DirLock,
}

impl JsonlFiles {
    /// Creates `dir` and locks it against a second writer, removes an earlier `summary.json`
    /// (it appears again only when this run ends), and creates the three line files in it
    /// (truncating earlier ones), the readings as `readings.jsonl`. A symbolic link, a FIFO or
    /// a folder in place of a file is refused, never followed or truncated.
    pub fn create(dir: &Path) -> Result<JsonlFiles, OutputError> {
        JsonlFiles::create_as(dir, ReadingsFormat::Jsonl)
    }

    /// As [`create`](Self::create), with the readings written in `format`: `readings.jsonl`,
    /// or `readings.csv` (its header line written at once). The readings file of the other
    /// format is removed if an earlier run left one, so that a folder holds one readings file,
    /// this run's.
    ///
    /// ```no_run
    /// use sensor_actors::config::ReadingsFormat;
    /// use sensor_actors::sinks::JsonlFiles;
    ///
    /// let files = JsonlFiles::create_as("out".as_ref(), ReadingsFormat::Csv)?;
    /// # Ok::<(), sensor_actors::OutputError>(())
    /// ```
    pub fn create_as(dir: &Path, format: ReadingsFormat) -> Result<JsonlFiles, OutputError> {
        let at = |path: &Path| {
            let path = path.to_path_buf();
            move |source| OutputError::new(path, source)
        };
        std::fs::create_dir_all(dir).map_err(at(dir))?;
        let lock = DirLock::take(dir).map_err(at(dir))?;
        let summary = dir.join("summary.json");
        durable::remove_if_present(&summary).map_err(at(&summary))?;
        for other in ReadingsFormat::ALL.into_iter().filter(|&f| f != format) {
            let path = dir.join(other.file_name());
            durable::remove_if_present(&path).map_err(at(&path))?;
        }
        let mut readings = LineFile::create_behind(dir.join(format.file_name()))?;
        if format == ReadingsFormat::Csv {
            readings.write_with(|row| {
                row.extend_from_slice(ReadingLine::CSV_HEADER.as_bytes());
                Ok(())
            })?;
            readings.flush()?;
        }
        Ok(JsonlFiles {
            dir: dir.to_path_buf(),
            readings,
            format,
            formatter: ReadingFormatter::default(),
            anomalies: LineFile::create(dir.join("anomalies.jsonl"))?,
            events: LineFile::create(dir.join("events.jsonl"))?,
            error: None,
            _lock: lock,
        })
    }

    /// Writes the `started` lines of `sensors` at `at`: the bytes of their [`EventLine`]s,
    /// without an event, an id and a time made for each (a million sensors start at once). The
    /// time needs no escaping (digits, `-`, `:`, `T`, `.`, `Z`).
    fn write_started(
        &mut self,
        at: chrono::DateTime<chrono::Utc>,
        sensors: &[usize],
        table: &crate::config::SensorTable,
    ) {
        let head = format!("{{\"timestamp\":\"{}\",\"round\":0,\"sensor\":", rfc3339(&at));
        let mut id = String::new();
        for &index in sensors {
            id.clear();
            table.write_id(index, &mut id);
            let group = table.entry(index).group.as_deref();
            let result = self.events.write_with(|line| {
                line.extend_from_slice(head.as_bytes());
                serde_json::to_writer(&mut *line, &id)?;
                if let Some(group) = group {
                    line.extend_from_slice(b",\"group\":");
                    serde_json::to_writer(&mut *line, group)?;
                }
                line.extend_from_slice(b",\"event\":\"started\"}");
                Ok(())
            });
            self.note(result);
        }
    }

    /// Keeps the first error of the run; the run goes on collecting and the other files go on.
    fn note(&mut self, result: Result<(), OutputError>) {
        if let Err(e) = result {
            self.error.get_or_insert(e);
        }
    }
}

impl Actor for JsonlFiles {
    type Context = Context<Self>;
}

impl Handler<Readings> for JsonlFiles {
    type Result = ();

    fn handle(&mut self, readings: Readings, _ctx: &mut Context<Self>) {
        let round = readings.round();
        for r in readings.iter() {
            let (format, formatter) = (self.format, &mut self.formatter);
            let result = self
                .readings
                .write_with(|line| formatter.write(format, round, &r, line));
            self.note(result);
        }
        let result = self.readings.flush();
        self.note(result);
    }
}

impl Handler<Anomalies> for JsonlFiles {
    type Result = ();

    fn handle(&mut self, anomalies: Anomalies, _ctx: &mut Context<Self>) {
        for a in anomalies.list.iter() {
            let result = self.anomalies.write(&AnomalyLine::new(a));
            self.note(result);
        }
        let result = self.anomalies.flush();
        self.note(result);
    }
}

impl Handler<Journal> for JsonlFiles {
    type Result = ();

    fn handle(&mut self, journal: Journal, _ctx: &mut Context<Self>) {
        for part in journal.parts() {
            match part {
                JournalPart::Started { at, sensors, table } => self.write_started(at, sensors, table),
                JournalPart::Events(events) => {
                    for event in events {
                        let result = self.events.write(&EventLine::new(&event));
                        self.note(result);
                    }
                }
            }
        }
        let result = self.events.flush();
        self.note(result);
    }
}

impl Handler<RunSummary> for JsonlFiles {
    type Result = ();

    /// Flushes everything, syncs the line files and replaces `summary.json` atomically (so a
    /// `summary.json` is always whole, and the line files it counts are on disk before it).
    fn handle(&mut self, end: RunSummary, _ctx: &mut Context<Self>) {
        for result in [self.readings.sync(), self.anomalies.sync(), self.events.sync()] {
            self.note(result);
        }
        let path = self.dir.join("summary.json");
        // Written as it is encoded: at a million sensors the text is hundreds of megabytes.
        let written = durable::replace_atomically(&path, |file| {
            serde_json::to_writer_pretty(&mut *file, &*end.summary)?;
            file.write_all(b"\n")
        })
        .map_err(|source| OutputError::new(path, source));
        if let Err(e) = &written {
            log::error!("{e}: {}", e.source);
        }
        self.note(written);
    }
}

/// Asks [`JsonlFiles`] for the first write error of the run (taking it), if any.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Option<OutputError>")]
pub struct TakeOutputError;

impl Handler<TakeOutputError> for JsonlFiles {
    type Result = MessageResult<TakeOutputError>;

    fn handle(&mut self, _msg: TakeOutputError, _ctx: &mut Context<Self>) -> Self::Result {
        let lost = [&self.readings, &self.anomalies, &self.events]
            .iter()
            .map(|file| file.lost())
            .sum();
        MessageResult(self.error.take().map(|error| OutputError { lost, ..error }))
    }
}

/// Formats a timestamp as RFC 3339 with milliseconds, in UTC.
pub fn rfc3339(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A first start's lines, written without an event each, are the serde lines of the events
    /// the journal gives: ungrouped and grouped sensors, an id that needs escaping.
    #[test]
    fn started_lines_are_the_serde_lines_of_the_journals_events() {
        use crate::config::{Config, SensorTable};
        use crate::streams::{JournalBatch, JournalEntry};
        use std::sync::Arc;

        let config = Config::from_toml_str(
            "[[groups]]\nname = \"pu\\\"mps\"\n\
             [[sensors]]\nname = \"t\"\nkind = \"temperature\"\ncount = 5\n\
             [[sensors]]\nid = \"p\\\\1\"\nkind = \"pressure\"\ngroup = \"pu\\\"mps\"\n\
             [[sensors]]\nname = \"h\"\nkind = \"humidity\"\ncount = 3\ngroup = \"pu\\\"mps\"\n",
            "c.toml",
        )
        .unwrap();
        let table = Arc::new(SensorTable::new(config.sensors));
        let at = chrono::DateTime::from_timestamp(1_764_670_000, 123_456_789).unwrap();
        let list: Arc<[usize]> = vec![8, 0, 5, 1, 6, 4].into();
        let journal = Journal::new(JournalBatch {
            sensors: table.clone(),
            entries: vec![JournalEntry::Started(at, list.clone())],
            len: list.len() as u64,
        });
        let expected: Vec<String> = journal
            .iter()
            .map(|event| serde_json::to_string(&EventLine::new(&event)).unwrap())
            .collect();
        assert!(expected.iter().any(|l| l.contains("\"group\":\"pu\\\"mps\"")));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let mut files = JsonlFiles::create(dir.path()).unwrap();
        let mut parts = journal.parts();
        let Some(JournalPart::Started { at, sensors, table }) = parts.next() else {
            panic!("a start is one part");
        };
        files.write_started(at, sensors, table);
        assert!(files.error.is_none());
        assert!(parts.next().is_none());
        files.events.flush().unwrap();
        let written = std::fs::read_to_string(&path).unwrap();
        assert_eq!(written.lines().collect::<Vec<_>>(), expected);
    }

    /// The formatter of the files writes, for every reading, the bytes the serde path makes
    /// (JSON) and [`ReadingLine::write_csv`] makes (CSV): values of every sort (not finite,
    /// negative zero, the smallest and largest), times that come back to an earlier second, a
    /// leap second and years of other than four digits (as chrono writes them), replayed
    /// sources, numbered ids and an id that needs escaping and quoting.
    #[test]
    fn the_formatter_writes_the_bytes_of_the_serde_line_and_the_csv_row() {
        use crate::config::{Config, SensorTable};
        use crate::data::{Outcome, Reading, Source};
        use crate::streams::RoundOutcomes;
        use chrono::{DateTime, Utc};
        use rand::{Rng, SeedableRng};
        use std::sync::Arc;
        use std::time::Duration;

        let config = Config::from_toml_str(
            "[[sensors]]\nname = \"t\"\nkind = \"temperature\"\ncount = 2000\n\
             [[sensors]]\nid = \"we\\\"ird, \\u00e9\\\\x\"\nkind = \"humidity\"\n",
            "c.toml",
        )
        .unwrap();
        let n = config.sensors.len();
        let table = Arc::new(SensorTable::new(config.sensors));
        assert_eq!(&*table.id(n - 1), "we\"ird, \u{e9}\\x");
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(7);
        let specials = [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -0.0,
            0.0,
            5e-324,
            f64::MAX,
            1e21,
            1e-7,
            42.0,
        ];
        let base = 1_764_670_000_i64;
        let outcomes: Vec<Outcome> = (0..n)
            .map(|i| {
                let value = match rng.random_range(0..4) {
                    0 => specials[rng.random_range(0..specials.len())],
                    1 => rng.random_range(-1e6..1e6_f64).round(),
                    _ => rng.random_range(-50.0..50.0),
                };
                let timestamp: DateTime<Utc> = match i % 500 {
                    // A leap second, after a line of the same second; years 10000, -1 and 1969.
                    6 => DateTime::from_timestamp(base - base % 60 + 59, 500_000_000).unwrap(),
                    7 => DateTime::from_timestamp(base - base % 60 + 59, 1_500_000_000).unwrap(),
                    8 => DateTime::from_timestamp(253_402_300_800 + 5, 123_000_000).unwrap(),
                    9 => DateTime::from_timestamp(-62_198_755_200, 9_000_000).unwrap(),
                    10 => DateTime::from_timestamp(-1, 999_999_999).unwrap(),
                    // Mostly forward by a few milliseconds, now and then back by a second.
                    _ => DateTime::from_timestamp(
                        base + (i as i64 / 7) - i64::from(i % 31 == 0),
                        rng.random_range(0..1_000_000_000),
                    )
                    .unwrap(),
                };
                // Latencies at the edges of the whole-microsecond path, and past it.
                let edges = [
                    0,
                    1,
                    999,
                    1_000,
                    1_001,
                    10_010,
                    123_400,
                    4_294_967_295,
                    4_294_967_296,
                    10_800_000_000,
                ];
                let latency = match i % 500 {
                    k @ 11..=20 => Duration::from_micros(edges[k - 11]),
                    21 => Duration::from_nanos(1_500),
                    _ => Duration::from_nanos(rng.random_range(0..3_000_000_000)),
                };
                let mut reading = Reading {
                    value,
                    timestamp,
                    latency,
                    source: None,
                };
                if i % 3 == 0 {
                    reading.source = Some(Box::new(Source {
                        row: (i % 2 == 0).then_some(i as u64 + 1),
                        time: (i % 9 != 0).then(|| Arc::from(format!("2019-01-{:02} 10:00, \"{i}\"", i % 28 + 1))),
                    }));
                }
                if i % 11 == 0 {
                    Outcome::TimedOut
                } else {
                    Outcome::Ok(reading)
                }
            })
            .collect();
        let readings = Readings::new(
            37,
            Arc::new(RoundOutcomes {
                sensors: table,
                ok: outcomes.iter().filter(|o| matches!(o, Outcome::Ok(_))).count() as u64,
                batches: vec![outcomes],
            }),
        );
        let mut formatter = ReadingFormatter::default();
        let mut written = 0;
        for r in readings.iter() {
            let sensor = r.sensor();
            let line = ReadingLine::new(37, &r, &sensor);
            let mut json = Vec::new();
            formatter.write(ReadingsFormat::Jsonl, 37, &r, &mut json).unwrap();
            assert_eq!(
                String::from_utf8(json).unwrap(),
                serde_json::to_string(&line).unwrap(),
                "sensor {}",
                r.index
            );
            let mut csv = Vec::new();
            formatter.write(ReadingsFormat::Csv, 37, &r, &mut csv).unwrap();
            assert_eq!(String::from_utf8(csv).unwrap(), row(&line), "sensor {}", r.index);
            written += 1;
        }
        assert_eq!(written, readings.len());
        assert!(written > n * 9 / 10);
    }

    fn line<'a>(sensor: &'a str, value: f64, source: Option<(u64, &'a str)>) -> ReadingLine<'a> {
        ReadingLine {
            round: 12,
            sensor,
            kind: "temperature",
            value,
            unit: "C",
            timestamp: "2026-11-24T14:42:43.037Z".into(),
            latency_ms: 217.931,
            source_row: source.map(|s| s.0),
            source_time: source.map(|s| s.1),
        }
    }

    fn row(line: &ReadingLine<'_>) -> String {
        let mut row = Vec::new();
        line.write_csv(&mut row).unwrap();
        String::from_utf8(row).unwrap()
    }

    /// Fields are quoted exactly where the `csv` crate's writer quotes them (RFC 4180: a comma,
    /// a quote, a line break), and read back as they were.
    #[test]
    fn fields_are_quoted_as_the_csv_crate_quotes_them_and_read_back_whole() {
        let texts = [
            "plain",
            "a,b",
            "say \"hi\"",
            "\"",
            "\"\"",
            ",",
            "line\nbreak",
            "cr\rhere",
            " spaced ",
            "semi;colon",
            "é,ü\"",
            "",
        ];
        for text in texts {
            let mut ours = Vec::new();
            csv_field(&mut ours, text);
            let mut writer = csv::WriterBuilder::new().from_writer(Vec::new());
            writer.write_record([text, "x"]).unwrap();
            let theirs = writer.into_inner().unwrap();
            assert_eq!(
                format!("{},x\n", String::from_utf8_lossy(&ours)),
                String::from_utf8_lossy(&theirs),
                "{text:?}"
            );
            let mut reader = csv::ReaderBuilder::new().has_headers(false).from_reader(&theirs[..]);
            let record = reader.records().next().unwrap().unwrap();
            assert_eq!(&record[0], text);
        }
    }

    /// A row has the header's nine fields: numbers in the JSON line's text, the replay fields
    /// empty when not replayed, and a value that is not a number (`null` in JSON) empty.
    #[test]
    fn a_row_holds_the_json_lines_fields_in_the_headers_order() {
        let plain = line("temperature-01", 24.94243544920275, None);
        assert_eq!(
            row(&plain),
            "12,temperature-01,temperature,24.94243544920275,C,2026-11-24T14:42:43.037Z,217.931,,"
        );
        let json = serde_json::to_string(&plain).unwrap();
        assert!(json.contains("\"value\":24.94243544920275,") && json.contains("\"latency_ms\":217.931}"));
        let replayed = line("m,1", 1e-7, Some((7, "Wed, 1 May 2024")));
        assert_eq!(
            row(&replayed),
            "12,\"m,1\",temperature,1e-7,C,2026-11-24T14:42:43.037Z,217.931,7,\"Wed, 1 May 2024\""
        );
        assert!(serde_json::to_string(&replayed).unwrap().contains("\"value\":1e-7,"));
        assert_eq!(
            row(&line("s", f64::NAN, None)),
            "12,s,temperature,,C,2026-11-24T14:42:43.037Z,217.931,,"
        );
        assert_eq!(
            ReadingLine::CSV_HEADER.split(',').count(),
            row(&plain).split(',').count()
        );
    }
}
