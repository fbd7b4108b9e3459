//! The `replay` driver: recorded readings from a CSV file, one row per read.
//!
//! The file has a header row naming its columns. Each read returns the next data row's
//! `value_column` as the sample, with `source_row` (the 1-based data row: the header is not
//! counted, nor are blank lines) and, when `timestamp_column` is set, the recorded time as
//! `source_time`. With `id_column`, the entry makes one sensor per distinct id in that column
//! (see [`Settings::sensor_ids`]) and each sensor reads only the rows of its id, in file order.
//!
//! An entry without `id_column` is one sensor that streams its file: one buffered reader and one
//! reused record, so memory stays flat however long the file is. With `id_column`, the file is
//! read once when the configuration is loaded, to find the ids and where each row of each id
//! starts (24 bytes of memory per data row); the file is then opened once for all the entry's
//! sensors, and each read goes straight to the sensor's next row. So a file of thousands of ids
//! needs one file descriptor, not one per sensor, and a read costs one row, not a scan past the
//! other ids' rows. At the end of its rows a sensor answers
//! [`ReadError::Exhausted`] and stops normally; replay entries default to restart type
//! `transient`, so an exhausted sensor is not restarted, and a run whose every sensor has stopped
//! ends by itself.
//!
//! Bad rows do not stop a replay: a cell equal to one of the `missing` markers (default: an empty
//! cell), a value that is not a finite number, or a row with the wrong number of columns is a
//! [`ReadError::Failed`] whose cause names the file, the row and the column; the next read moves
//! on to the next row. A missing file, an unreadable header or a column absent from the header is
//! a configuration error when the configuration is loaded.
//!
//! What cannot be a CSV file is refused, at load time or at the read that meets it: anything but
//! a regular file, a NUL byte (binary data), and a row longer than [`MAX_ROW_BYTES`] (counted
//! from the end of the previous row, so a quoted cell may span lines but not grow without bound).
//! An `id_column` may hold at most [`MAX_SENSORS`](crate::config::MAX_SENSORS) distinct ids.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use super::{Driver, DriverBuild, DriverContext, DriverFactory, DriverKeys, DriverSpec, ReadError, ReadFuture, Sample};
use crate::data::RestartType;
use crate::parse::{named, quoted, ConfigError};

/// `driver = "replay"`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Factory;

impl DriverFactory for Factory {
    fn parse(&self, keys: &DriverKeys<'_>) -> Result<Arc<dyn DriverSpec>, ConfigError> {
        Ok(Arc::new(Settings::parse(keys)?))
    }

    /// A replay ends when its file does: a normal exit, not restarted.
    fn default_restart(&self) -> Option<RestartType> {
        Some(RestartType::Transient)
    }
}

impl DriverSpec for Settings {
    fn build(&self, ctx: &DriverContext) -> DriverBuild {
        DriverBuild::driver(Replay::new(self.clone(), ctx))
    }

    /// The value column's name.
    fn default_kind(&self) -> Option<&str> {
        Some(&self.value_column)
    }

    fn sensor_keys(&self) -> Option<Vec<(String, Arc<dyn DriverSpec>)>> {
        let keyed = self.sensor_ids()?;
        Some(
            keyed
                .into_iter()
                .map(|(id, settings)| (id, Arc::new(settings) as Arc<dyn DriverSpec>))
                .collect(),
        )
    }
}

/// Validated settings of a replay entry.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The CSV file, resolved against the configuration file's folder.
    pub path: PathBuf,
    /// The path as messages show it: escaped and cut when it would break a line.
    shown: Arc<str>,
    /// The column holding the values (also the sensor kind when the entry names none).
    pub value_column: String,
    /// Position of `value_column` in the header.
    value_index: usize,
    /// Position of `id_column` in the header, when the file holds several sensors.
    id_index: Option<usize>,
    /// Position of `timestamp_column` in the header.
    timestamp_index: Option<usize>,
    /// Cells (compared after trimming spaces) that mark a missing value.
    pub missing: Vec<String>,
    /// Columns of the header; a data row with another count is malformed.
    columns: usize,
    /// With `id_column`: the open file and where the rows of each id are.
    index: Option<Arc<Index>>,
    /// The id whose rows this sensor replays, and where they are (set when the entry is
    /// expanded into sensors).
    only: Option<IdRows>,
}

/// The rows of every id of an `id_column` file, found when the configuration is loaded.
#[derive(Debug)]
struct Index {
    /// Open for every sensor of the entry; read at offsets, never through a shared cursor.
    file: File,
    /// The distinct ids, in order of first appearance, with where their rows start.
    ids: Vec<IdRows>,
}

/// An id and where its rows start.
type IdRows = (Arc<str>, Arc<[csv::Position]>);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    path: String,
    value_column: String,
    id_column: Option<String>,
    timestamp_column: Option<String>,
    missing: Option<Vec<String>>,
}

impl Settings {
    /// Parses the replay keys of an entry, resolving a relative `path` against the
    /// configuration file's folder, and checks the file and its columns.
    pub fn parse(keys: &DriverKeys<'_>) -> Result<Settings, ConfigError> {
        let raw: RawSettings = keys.deserialize()?;
        let (origin, at, base) = (keys.origin(), keys.at(), keys.base());
        let field = |name: &str| format!("{at}.{name}");
        let path = base.join(&raw.path);
        let shown = path.display();
        let mut reader = open(&path).map_err(|e| ConfigError::new(origin, field("path"), e))?;
        let header = reader
            .headers()
            .map_err(|e| ConfigError::new(origin, field("path"), format!("{shown}: cannot read the header: {e}")))?
            .clone();
        if header.is_empty() {
            return Err(ConfigError::new(
                origin,
                field("path"),
                format!("{shown}: expected a header row naming the columns"),
            ));
        }
        let column = |key: &str, name: &str| -> Result<usize, ConfigError> {
            header.iter().position(|h| h.trim() == name.trim()).ok_or_else(|| {
                ConfigError::new(
                    origin,
                    field(key),
                    format!("{shown} has no column {} (columns: {})", quoted(name), columns(&header)),
                )
            })
        };
        let value_index = column("value_column", &raw.value_column)?;
        let id_index = raw.id_column.as_deref().map(|c| column("id_column", c)).transpose()?;
        let timestamp_index = raw
            .timestamp_column
            .as_deref()
            .map(|c| column("timestamp_column", c))
            .transpose()?;
        let index = match id_index {
            Some(index) => {
                let ids = index_ids(&mut reader, index)
                    .map_err(|e| ConfigError::new(origin, field("path"), format!("{shown}: {e}")))?;
                if ids.is_empty() {
                    return Err(ConfigError::new(
                        origin,
                        field("id_column"),
                        format!("{shown} has no data row with an id"),
                    ));
                }
                let file = reader.into_inner().into_inner();
                Some(Arc::new(Index { file, ids }))
            }
            None => None,
        };
        Ok(Settings {
            shown: named(&path.display().to_string()).into(),
            path,
            value_column: raw.value_column,
            value_index,
            id_index,
            timestamp_index,
            missing: raw
                .missing
                .unwrap_or_else(|| vec![String::new()])
                .into_iter()
                .map(|m| m.trim().to_string())
                .collect(),
            columns: header.len(),
            index,
            only: None,
        })
    }

    /// With `id_column`: one `(id, settings)` pair per distinct id, each replaying only the rows
    /// of its id; `None` for an entry that is one sensor.
    pub fn sensor_ids(&self) -> Option<Vec<(String, Settings)>> {
        let index = self.index.as_ref()?;
        Some(
            index
                .ids
                .iter()
                .map(|(id, rows)| {
                    let settings = Settings {
                        only: Some((id.clone(), rows.clone())),
                        ..self.clone()
                    };
                    (id.to_string(), settings)
                })
                .collect(),
        )
    }
}

/// Opens `path` as a CSV reader with a header row; rows may have any number of columns (the
/// driver judges them row by row).
fn open(path: &Path) -> Result<csv::Reader<CsvInput<File>>, String> {
    let file = File::open(path).map_err(|e| {
        let reason = match e.kind() {
            std::io::ErrorKind::NotFound => "no such file".to_string(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
            _ => e.to_string(),
        };
        format!("cannot read {}: {reason}", named(&path.display().to_string()))
    })?;
    // A device, a pipe or a folder is no CSV file (`/dev/zero` would be read forever).
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return Err(format!(
            "cannot read {}: not a regular file (a CSV file was expected)",
            named(&path.display().to_string())
        ));
    }
    Ok(csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(CsvInput::new(file)))
}

/// The header's columns for a message: quoted, at most ten of them.
fn columns(header: &csv::StringRecord) -> String {
    const SHOWN: usize = 10;
    let mut names: Vec<String> = header.iter().take(SHOWN).map(quoted).collect();
    if header.len() > SHOWN {
        names.push(format!("... {} in all", header.len()));
    }
    names.join(", ")
}

/// Longest row of a replayed file, in bytes.
pub const MAX_ROW_BYTES: usize = 1 << 20;

/// The bytes of a CSV file, refused where they cannot be one: a NUL byte, or a row (from the
/// end of the previous row, outside quotes) longer than [`MAX_ROW_BYTES`]. The CSV reader then
/// fails with an I/O error saying so, instead of buffering a row without end.
pub(crate) struct CsvInput<R> {
    inner: R,
    /// Bytes of the current row so far.
    row_bytes: usize,
    /// Inside a quoted cell (`""` toggles twice, so it needs no special case).
    quoted: bool,
    /// Line of the file, 1-based, for the message.
    line: u64,
}

impl<R> CsvInput<R> {
    pub(crate) fn new(inner: R) -> Self {
        CsvInput {
            inner,
            row_bytes: 0,
            quoted: false,
            line: 1,
        }
    }

    /// Counts lines from `line` on (after a seek).
    fn at_line(&mut self, line: u64) {
        self.line = line;
    }

    fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read> Read for CsvInput<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        for &byte in &buf[..n] {
            match byte {
                0 => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("line {}: binary data (a NUL byte): not a CSV file", self.line),
                    ))
                }
                b'"' => self.quoted = !self.quoted,
                b'\n' => {
                    self.line += 1;
                    if !self.quoted {
                        self.row_bytes = 0;
                        continue;
                    }
                }
                _ => {}
            }
            self.row_bytes += 1;
            if self.row_bytes > MAX_ROW_BYTES {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "line {}: a row longer than {} MiB: not a CSV file of readings",
                        self.line,
                        MAX_ROW_BYTES >> 20
                    ),
                ));
            }
        }
        Ok(n)
    }
}

/// The distinct non-empty values of column `index`, in order of first appearance, each with
/// where its rows start.
fn index_ids(reader: &mut csv::Reader<CsvInput<File>>, index: usize) -> Result<Vec<IdRows>, String> {
    let mut rows: HashMap<Arc<str>, Vec<csv::Position>> = HashMap::new();
    let mut ids: Vec<Arc<str>> = Vec::new();
    let mut record = csv::ByteRecord::new();
    while reader.read_byte_record(&mut record).map_err(|e| e.to_string())? {
        let Some(cell) = record.get(index) else { continue };
        let id = String::from_utf8_lossy(cell);
        let id = id.trim();
        if id.is_empty() {
            continue;
        }
        let position = record.position().cloned().unwrap_or_else(csv::Position::new);
        if let Some(positions) = rows.get_mut(id) {
            positions.push(position);
            continue;
        }
        if ids.len() == crate::config::MAX_SENSORS {
            return Err(format!(
                "expected at most {} distinct ids, found more by line {}",
                crate::config::MAX_SENSORS,
                position.line()
            ));
        }
        let id: Arc<str> = Arc::from(id);
        ids.push(id.clone());
        rows.insert(id, vec![position]);
    }
    Ok(ids
        .into_iter()
        .map(|id| {
            let positions = rows.remove(&id).unwrap_or_default();
            (id, positions.into())
        })
        .collect())
}

/// A reader of a shared file from a position of its own (`pread`): the sensors of an
/// `id_column` entry read one file without a cursor between them.
struct At {
    index: Arc<Index>,
    offset: u64,
}

impl Read for At {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        #[cfg(unix)]
        let n = std::os::unix::fs::FileExt::read_at(&self.index.file, buf, self.offset)?;
        #[cfg(windows)]
        let n = std::os::windows::fs::FileExt::seek_read(&self.index.file, buf, self.offset)?;
        self.offset += n as u64;
        Ok(n)
    }
}

impl Seek for At {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.offset = match to {
            SeekFrom::Start(offset) => offset,
            SeekFrom::Current(delta) => self.offset.saturating_add_signed(delta),
            SeekFrom::End(delta) => self.index.file.metadata()?.len().saturating_add_signed(delta),
        };
        Ok(self.offset)
    }
}

impl<R: Seek> Seek for CsvInput<R> {
    /// Seeks to the start of a row (its line is set by [`CsvInput::at_line`]).
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.row_bytes = 0;
        self.quoted = false;
        self.inner.seek(to)
    }
}

/// One replaying sensor: a streaming reader positioned after the last row it returned.
pub struct Replay {
    settings: Settings,
    /// Without `id_column`: opened on the first read, so that building a driver never fails;
    /// dropped with the driver.
    reader: Option<csv::Reader<CsvInput<File>>>,
    /// With `id_column`: the next of this sensor's rows.
    next_row: usize,
    /// The row being read, reused for every row.
    record: csv::ByteRecord,
    /// The data row read last (of every id: its number in the file).
    row: u64,
    /// The end of the file was reached.
    exhausted: bool,
}

impl std::fmt::Debug for Replay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replay")
            .field("path", &self.settings.path)
            .field("only", &self.settings.only.as_ref().map(|o| &o.0))
            .field("row", &self.row)
            .finish()
    }
}

impl Replay {
    /// A replay from the start of the file.
    pub fn new(settings: Settings, _ctx: &DriverContext) -> Self {
        Replay {
            settings,
            reader: None,
            next_row: 0,
            record: csv::ByteRecord::new(),
            row: 0,
            exhausted: false,
        }
    }

    /// Reads the next row of this sensor and turns it into a sample.
    fn next(&mut self) -> Result<Sample, ReadError> {
        if self.exhausted {
            return Err(ReadError::Exhausted);
        }
        if self.settings.only.is_some() {
            return self.next_of_id();
        }
        let s = &self.settings;
        let reader = match &mut self.reader {
            Some(reader) => reader,
            None => {
                let mut reader = open(&s.path).map_err(ReadError::Fatal)?;
                reader
                    .byte_headers()
                    .map_err(|e| ReadError::Fatal(format!("{}: cannot read the header: {e}", s.shown)))?;
                self.reader.insert(reader)
            }
        };
        let more = reader
            .read_byte_record(&mut self.record)
            .map_err(|e| ReadError::Fatal(format!("{}: after row {}: {e}", s.shown, self.row)))?;
        if !more {
            self.exhausted = true;
            return Err(ReadError::Exhausted);
        }
        self.row += 1;
        self.sample()
    }

    /// With `id_column`: reads this sensor's next row where the index found it.
    fn next_of_id(&mut self) -> Result<Sample, ReadError> {
        let s = &self.settings;
        let (Some((id, rows)), Some(index), Some(id_index)) = (&s.only, &s.index, s.id_index) else {
            return Err(ReadError::Exhausted);
        };
        let Some(position) = rows.get(self.next_row) else {
            self.exhausted = true;
            return Err(ReadError::Exhausted);
        };
        self.next_row += 1;
        self.row = position.record();
        let path = &s.shown;
        let changed = || {
            ReadError::Fatal(format!(
                "{path}: row {} (line {}) is not where it was when the configuration was loaded: the file changed",
                position.record(),
                position.line()
            ))
        };
        let input = CsvInput::new(At {
            index: index.clone(),
            offset: 0,
        });
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .has_headers(false)
            .buffer_capacity(1024)
            .from_reader(input);
        reader
            .seek(position.clone())
            .map_err(|e| ReadError::Fatal(format!("{path}: row {}: {e}", self.row)))?;
        reader.get_mut().at_line(position.line());
        let more = reader
            .read_byte_record(&mut self.record)
            .map_err(|e| ReadError::Fatal(format!("{path}: after row {}: {e}", self.row - 1)))?;
        let mine = more
            && self
                .record
                .get(id_index)
                .is_some_and(|cell| String::from_utf8_lossy(cell).trim() == &**id);
        if !mine {
            return Err(changed());
        }
        self.sample()
    }

    /// The sample of the current row, or why it has none.
    fn sample(&self) -> Result<Sample, ReadError> {
        let s = &self.settings;
        let line = self.record.position().map_or(0, |p| p.line());
        let at = |column: &str| format!("{}: row {} (line {line}), column {}", s.shown, self.row, named(column));
        if self.record.len() != s.columns {
            return Err(ReadError::Failed(format!(
                "{}: row {} (line {line}): expected {} columns, got {}",
                s.shown,
                self.row,
                s.columns,
                self.record.len()
            )));
        }
        let cell = self.record.get(s.value_index).unwrap_or_default();
        let text = std::str::from_utf8(cell)
            .map_err(|_| ReadError::Failed(format!("{}: expected UTF-8 text", at(&s.value_column))))?
            .trim();
        if s.missing.iter().any(|m| m == text) {
            return Err(ReadError::Failed(format!(
                "{}: missing value {}",
                at(&s.value_column),
                quoted(text)
            )));
        }
        let value = text.parse::<f64>().ok().filter(|v| v.is_finite()).ok_or_else(|| {
            ReadError::Failed(format!(
                "{}: expected a number, got {}",
                at(&s.value_column),
                quoted(text)
            ))
        })?;
        let source_time = s
            .timestamp_index
            .and_then(|i| self.record.get(i))
            .map(|cell| Arc::from(String::from_utf8_lossy(cell).trim()));
        Ok(Sample {
            value,
            source_row: Some(self.row),
            source_time,
        })
    }
}

impl Driver for Replay {
    fn read(&mut self, _round: u64) -> ReadFuture {
        ReadFuture::ready(self.next())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn settings(csv_text: &str, keys: &str) -> (tempfile::TempDir, Result<Settings, ConfigError>) {
        let dir = tempfile::tempdir().unwrap();
        let mut f = File::create(dir.path().join("d.csv")).unwrap();
        f.write_all(csv_text.as_bytes()).unwrap();
        let table: toml::Table = toml::from_str(&format!("path = \"d.csv\"\n{keys}")).unwrap();
        let s = Settings::parse(&DriverKeys::new(table, "c.toml", "sensors[0]", dir.path()));
        (dir, s)
    }

    fn ctx() -> DriverContext {
        DriverContext {
            id: "x".into(),
            kind: "x".into(),
            index: 0,
            incarnation: 0,
            seed: 0,
        }
    }

    /// Value, source row and source time of one read.
    type Row = (f64, u64, Option<String>);

    fn drain(settings: Settings) -> Vec<Result<Row, ReadError>> {
        let mut driver = Replay::new(settings, &ctx());
        let mut out = Vec::new();
        loop {
            match driver.next() {
                Err(ReadError::Exhausted) => return out,
                // A fatal error ends the driver (the supervisor builds a new one).
                Err(fatal @ ReadError::Fatal(_)) => {
                    out.push(Err(fatal));
                    return out;
                }
                r => out.push(r.map(|s| (s.value, s.source_row.unwrap(), s.source_time.map(|t| t.to_string())))),
            }
        }
    }

    fn fatal(result: &Result<Row, ReadError>) -> &str {
        match result {
            Err(ReadError::Fatal(why)) => why,
            other => panic!("expected a fatal error, got {other:?}"),
        }
    }

    /// A NUL byte in the header, or a header row of one endless line, is no CSV file: a one-line
    /// configuration error, without the bytes.
    #[test]
    fn binary_files_and_endless_lines_are_refused_at_load() {
        let (_d, s) = settings("\u{7f}ELF\u{2}\u{1}\u{1}\0\0\0\0garbage\n", "value_column = \"v\"");
        let e = s.unwrap_err().to_string();
        assert!(e.starts_with("c.toml: sensors[0].path: "), "{e}");
        assert!(e.ends_with("line 1: binary data (a NUL byte): not a CSV file"), "{e}");
        let endless = "v".repeat(MAX_ROW_BYTES + 1);
        let (_d, s) = settings(&endless, "value_column = \"v\"");
        let e = s.unwrap_err().to_string();
        assert!(
            e.ends_with("line 1: a row longer than 1 MiB: not a CSV file of readings"),
            "{e}"
        );
        assert!(e.len() < 200, "{e}");
    }

    /// A row exactly at the limit is read; one byte more ends the replay there, after the rows
    /// before it, naming the line. A quoted cell may span lines: its row is counted as a whole.
    #[test]
    fn rows_are_bounded_at_exactly_the_limit() {
        let at_limit = format!("1,{}", "x".repeat(MAX_ROW_BYTES - 2));
        assert_eq!(at_limit.len(), MAX_ROW_BYTES);
        let over = format!("2,{}", "x".repeat(MAX_ROW_BYTES - 1));
        let text = format!("v,note\n{at_limit}\n3,\"two\nlines\"\n{over}\n4,after\n");
        let (_d, s) = settings(&text, "value_column = \"v\"");
        let rows = drain(s.unwrap());
        assert_eq!(rows.len(), 3, "{rows:?}");
        assert_eq!(rows[0].as_ref().unwrap(), &(1.0, 1, None));
        assert_eq!(rows[1].as_ref().unwrap(), &(3.0, 2, None));
        assert!(
            fatal(&rows[2]).ends_with("after row 2: line 5: a row longer than 1 MiB: not a CSV file of readings"),
            "{:?}",
            rows[2]
        );
        // A quoted cell that never closes is bounded the same way.
        let unclosed = format!("v,note\n1,\"{}\n", "y\n".repeat(MAX_ROW_BYTES));
        let (_d, s) = settings(&unclosed, "value_column = \"v\"");
        let rows = drain(s.unwrap());
        assert!(fatal(&rows[0]).contains("a row longer than 1 MiB"), "{rows:?}");
    }

    #[test]
    fn replays_values_rows_and_times_in_order() {
        let (_d, s) = settings(
            "t,v\n2024-01-01,1.5\n2024-01-02,-2\n\n2024-01-03,3e1\n",
            "value_column = \"v\"\ntimestamp_column = \"t\"",
        );
        let got = drain(s.unwrap());
        assert_eq!(
            got,
            [
                Ok((1.5, 1, Some("2024-01-01".into()))),
                Ok((-2.0, 2, Some("2024-01-02".into()))),
                Ok((30.0, 3, Some("2024-01-03".into()))),
            ]
        );
    }

    #[test]
    fn bad_rows_fail_with_file_row_and_column_and_the_replay_goes_on() {
        let (d, s) = settings(
            "t,v\na,1\nb,-200\nc,\nd,abc\ne,1,2\nf,NaN\ng,7\n",
            "value_column = \"v\"\nmissing = [\"-200\", \"\"]",
        );
        let p = d.path().join("d.csv").display().to_string();
        let got = drain(s.unwrap());
        assert_eq!(
            got,
            [
                Ok((1.0, 1, None)),
                Err(ReadError::Failed(format!(
                    "{p}: row 2 (line 3), column v: missing value \"-200\""
                ))),
                Err(ReadError::Failed(format!(
                    "{p}: row 3 (line 4), column v: missing value \"\""
                ))),
                Err(ReadError::Failed(format!(
                    "{p}: row 4 (line 5), column v: expected a number, got \"abc\""
                ))),
                Err(ReadError::Failed(format!(
                    "{p}: row 5 (line 6): expected 2 columns, got 3"
                ))),
                Err(ReadError::Failed(format!(
                    "{p}: row 6 (line 7), column v: expected a number, got \"NaN\""
                ))),
                Ok((7.0, 7, None)),
            ]
        );
    }

    /// The rows of an id are found when the configuration is loaded; a file rewritten
    /// afterwards is a fatal read naming the row, not another id's values.
    #[test]
    fn a_file_changed_after_loading_is_a_fatal_read() {
        let (d, s) = settings("id,v\na,1\nb,2\na,3\n", "value_column = \"v\"\nid_column = \"id\"");
        let split = s.unwrap().sensor_ids().unwrap();
        std::fs::write(d.path().join("d.csv"), "id,v\nb,9\nb,9\nb,9\n").unwrap();
        let rows = drain(split[0].1.clone());
        let p = d.path().join("d.csv").display().to_string();
        assert_eq!(
            fatal(&rows[0]),
            format!("{p}: row 1 (line 2) is not where it was when the configuration was loaded: the file changed")
        );
    }

    /// A path that would break a line (here a line feed in a folder's name) is shown escaped in
    /// the failed reads that name it, which are journaled and logged.
    #[cfg(unix)]
    #[test]
    fn a_path_with_a_line_break_is_shown_escaped() {
        let dir = tempfile::tempdir().unwrap();
        let odd = dir.path().join("a\nb");
        std::fs::create_dir(&odd).unwrap();
        std::fs::write(odd.join("d.csv"), "v\nx\n").unwrap();
        let table: toml::Table = toml::from_str("path = \"a\\nb/d.csv\"\nvalue_column = \"v\"").unwrap();
        let settings = Settings::parse(&DriverKeys::new(table, "c.toml", "sensors[0]", dir.path())).unwrap();
        let rows = drain(settings);
        let Err(ReadError::Failed(why)) = &rows[0] else {
            panic!("{rows:?}")
        };
        assert!(!why.contains('\n'), "{why}");
        assert!(why.contains("a\\nb"), "{why}");
    }

    #[test]
    fn id_column_splits_rows_by_id() {
        let (_d, s) = settings(
            "id,v\n2,20\n1,10\n2,21\n,99\n1,11\n",
            "value_column = \"v\"\nid_column = \"id\"",
        );
        let split = s.unwrap().sensor_ids().unwrap();
        let ids: Vec<&str> = split.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, ["2", "1"]);
        assert_eq!(drain(split[0].1.clone()), [Ok((20.0, 1, None)), Ok((21.0, 3, None))]);
        assert_eq!(drain(split[1].1.clone()), [Ok((10.0, 2, None)), Ok((11.0, 5, None))]);
    }

    #[test]
    fn missing_file_and_columns_are_config_errors() {
        let (d, s) = settings("t,v\n1,2\n", "value_column = \"value\"");
        let p = d.path().join("d.csv").display().to_string();
        assert_eq!(
            s.unwrap_err().to_string(),
            format!("c.toml: sensors[0].value_column: {p} has no column \"value\" (columns: \"t\", \"v\")")
        );
        let (_d, s) = settings("t,v\n1,2\n", "value_column = \"v\"\nid_column = \"mote\"");
        assert!(s.unwrap_err().to_string().starts_with("c.toml: sensors[0].id_column: "));
        let table: toml::Table = toml::from_str("path = \"nope.csv\"\nvalue_column = \"v\"").unwrap();
        let e = Settings::parse(&DriverKeys::new(
            table,
            "c.toml",
            "sensors[0]",
            Path::new("/nonexistent"),
        ))
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "c.toml: sensors[0].path: cannot read /nonexistent/nope.csv: no such file"
        );
    }
}
