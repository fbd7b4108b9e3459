//! The `replay` driver: recorded readings from a CSV file, one row per read.
//!
//! The file has a header row naming its columns. Each read returns the next data row's
//! `value_column` as the sample, with `source_row` (the 1-based data row: the header is not
//! counted, nor are blank lines) and, when `timestamp_column` is set, the recorded time as
//! `source_time`. With `id_column`, the entry makes one sensor per distinct id in that column
//! (see [`Settings::sensor_ids`]) and each sensor reads only the rows of its id, in file order.
//!
//! The file is streamed: each sensor holds one buffered reader and one reused record, so memory
//! stays flat however long the file is. At the end of its rows a sensor answers
//! [`ReadError::Exhausted`] and stops normally; replay entries default to restart type
//! `transient`, so an exhausted sensor is not restarted, and a run whose every sensor has stopped
//! ends by itself.
//!
//! Bad rows do not stop a replay: a cell equal to one of the `missing` markers (default: an empty
//! cell), a value that is not a finite number, or a row with the wrong number of columns is a
//! [`ReadError::Failed`] whose cause names the file, the row and the column; the next read moves
//! on to the next row. A missing file, an unreadable header or a column absent from the header is
//! a configuration error when the configuration is loaded.

use std::collections::HashSet;
use std::fs::File;
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
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The CSV file, resolved against the configuration file's folder.
    pub path: PathBuf,
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
    /// The distinct ids of `id_column`, in order of first appearance.
    ids: Arc<[Arc<str>]>,
    /// The id whose rows this sensor replays (set when the entry is expanded into sensors).
    only: Option<Arc<str>>,
}

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
                let names: Vec<&str> = header.iter().collect();
                ConfigError::new(
                    origin,
                    field(key),
                    format!("{shown} has no column \"{name}\" (columns: {})", names.join(", ")),
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
        let ids: Arc<[Arc<str>]> = match id_index {
            Some(index) => {
                let ids = distinct_ids(&mut reader, index)
                    .map_err(|e| ConfigError::new(origin, field("path"), format!("{shown}: {e}")))?;
                if ids.is_empty() {
                    return Err(ConfigError::new(
                        origin,
                        field("id_column"),
                        format!("{shown} has no data row with an id"),
                    ));
                }
                ids.into()
            }
            None => Arc::new([]),
        };
        Ok(Settings {
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
            ids,
            only: None,
        })
    }

    /// With `id_column`: one `(id, settings)` pair per distinct id, each replaying only the rows
    /// of its id; `None` for an entry that is one sensor.
    pub fn sensor_ids(&self) -> Option<Vec<(String, Settings)>> {
        self.id_index?;
        Some(
            self.ids
                .iter()
                .map(|id| {
                    let settings = Settings {
                        only: Some(id.clone()),
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
fn open(path: &Path) -> Result<csv::Reader<File>, String> {
    let file = File::open(path).map_err(|e| {
        let reason = match e.kind() {
            std::io::ErrorKind::NotFound => "no such file".to_string(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
            _ => e.to_string(),
        };
        format!("cannot read {}: {reason}", path.display())
    })?;
    // A device, a pipe or a folder is no CSV file (`/dev/zero` would be read forever).
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return Err(format!(
            "cannot read {}: not a regular file (a CSV file was expected)",
            path.display()
        ));
    }
    Ok(csv::ReaderBuilder::new().flexible(true).from_reader(file))
}

/// The distinct non-empty values of column `index`, in order of first appearance.
fn distinct_ids(reader: &mut csv::Reader<File>, index: usize) -> Result<Vec<Arc<str>>, csv::Error> {
    let mut seen = HashSet::new();
    let mut ids = Vec::new();
    let mut record = csv::ByteRecord::new();
    while reader.read_byte_record(&mut record)? {
        let Some(cell) = record.get(index) else { continue };
        let id = String::from_utf8_lossy(cell);
        let id = id.trim();
        if !id.is_empty() && !seen.contains(id) {
            seen.insert(id.to_string());
            ids.push(Arc::from(id));
        }
    }
    Ok(ids)
}

/// One replaying sensor: a streaming reader positioned after the last row it returned.
pub struct Replay {
    settings: Settings,
    /// Opened on the first read, so that building a driver never fails; dropped with the driver.
    reader: Option<csv::Reader<File>>,
    /// The row being read, reused for every row.
    record: csv::ByteRecord,
    /// Data rows read so far (of every id).
    row: u64,
    /// The end of the file was reached.
    exhausted: bool,
}

impl std::fmt::Debug for Replay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replay")
            .field("path", &self.settings.path)
            .field("only", &self.settings.only)
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
            record: csv::ByteRecord::new(),
            row: 0,
            exhausted: false,
        }
    }

    /// Reads up to the next row of this sensor and turns it into a sample.
    fn next(&mut self) -> Result<Sample, ReadError> {
        if self.exhausted {
            return Err(ReadError::Exhausted);
        }
        let s = &self.settings;
        let reader = match &mut self.reader {
            Some(reader) => reader,
            None => {
                let mut reader = open(&s.path).map_err(ReadError::Fatal)?;
                reader
                    .byte_headers()
                    .map_err(|e| ReadError::Fatal(format!("{}: cannot read the header: {e}", s.path.display())))?;
                self.reader.insert(reader)
            }
        };
        loop {
            let more = reader
                .read_byte_record(&mut self.record)
                .map_err(|e| ReadError::Fatal(format!("{}: after row {}: {e}", s.path.display(), self.row)))?;
            if !more {
                self.exhausted = true;
                return Err(ReadError::Exhausted);
            }
            self.row += 1;
            if let (Some(only), Some(index)) = (&s.only, s.id_index) {
                let mine = self
                    .record
                    .get(index)
                    .is_some_and(|cell| String::from_utf8_lossy(cell).trim() == &**only);
                if !mine {
                    continue;
                }
            }
            return self.sample();
        }
    }

    /// The sample of the current row, or why it has none.
    fn sample(&self) -> Result<Sample, ReadError> {
        let s = &self.settings;
        let line = self.record.position().map_or(0, |p| p.line());
        let at = |column: &str| {
            format!(
                "{}: row {} (line {line}), column {}",
                s.path.display(),
                self.row,
                named(column)
            )
        };
        if self.record.len() != s.columns {
            return Err(ReadError::Failed(format!(
                "{}: row {} (line {line}): expected {} columns, got {}",
                s.path.display(),
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
                r => out.push(r.map(|s| (s.value, s.source_row.unwrap(), s.source_time.map(|t| t.to_string())))),
            }
        }
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
            format!("c.toml: sensors[0].value_column: {p} has no column \"value\" (columns: t, v)")
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
