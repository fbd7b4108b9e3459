//! Parsing helpers at the bottom of the crate: [`ConfigError`], the one-line
//! `origin: field: expectation` error, and the checks that the configuration, the drivers and the
//! detectors share (durations, duration ranges, number ranges, probabilities, a TOML table into
//! a serde struct). It imports nothing of the crate's: `config` validates a whole file with it,
//! and each driver and detector validates its own keys with it, without importing `config`.

use std::time::Duration;

use serde::de::DeserializeOwned;

/// A configuration error: where, which field, what was expected.
///
/// It displays as one line, `origin: field: message`, whatever its parts hold: control
/// characters and line separators are escaped (`\n`, `\u{1b}`), then a part longer than its
/// limit (96 characters of the origin, 80 of the field, 320 of the message) is cut with `...` (an
/// origin keeps its end, the file name). The fields keep the text as it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file name, or `command line` for flags.
    pub origin: String,
    /// The field path, such as `sensors[2].latency`.
    pub field: String,
    /// What was wrong and what was expected.
    pub message: String,
}

/// Longest origin a [`ConfigError`] displays, in characters (the end of a longer one is shown).
pub(crate) const ORIGIN_MAX: usize = 96;
/// Longest field path a [`ConfigError`] displays, in characters.
pub(crate) const FIELD_MAX: usize = 80;
/// Longest message a [`ConfigError`] displays, in characters.
pub(crate) const MESSAGE_MAX: usize = 320;

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let origin = one_line(&self.origin);
        let origin_chars = origin.chars().count();
        if origin_chars > ORIGIN_MAX {
            let end: String = origin.chars().skip(origin_chars - ORIGIN_MAX).collect();
            write!(f, "...{end}: ")?;
        } else {
            write!(f, "{origin}: ")?;
        }
        write_cut(f, &one_line(&self.field), FIELD_MAX)?;
        f.write_str(": ")?;
        write_cut(f, &one_line(&self.message), MESSAGE_MAX)
    }
}

impl std::error::Error for ConfigError {}

/// Writes the first `max` characters of `text`, with `...` when it is longer.
fn write_cut(f: &mut std::fmt::Formatter<'_>, text: &str, max: usize) -> std::fmt::Result {
    match text.char_indices().nth(max) {
        Some((end, _)) => write!(f, "{}...", &text[..end]),
        None => f.write_str(text),
    }
}

/// `text` with every character that would break the line escaped (`\n`, `\u{1b}`).
fn one_line(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(breaks_line) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut line = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if breaks_line(c) {
            line.extend(c.escape_default());
        } else {
            line.push(c);
        }
    }
    std::borrow::Cow::Owned(line)
}

/// Whether `c` would break a one-line message: a control character (line feed, carriage
/// return, tab, escape, NUL...) or a Unicode line or paragraph separator.
pub(crate) fn breaks_line(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')
}

impl ConfigError {
    /// Builds an error for `field` of `origin`.
    pub fn new(origin: &str, field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            origin: origin.to_string(),
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Deserializes one already-parsed TOML table (a `[[sensors]]` entry's driver settings).
pub(crate) fn from_table<T: DeserializeOwned>(table: toml::Table, origin: &str, at: &str) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            at.to_string()
        } else {
            format!("{at}.{path}")
        };
        ConfigError::new(origin, field, e.into_inner().message().to_string())
    })
}

/// Parses a duration string such as `"250ms"` or `"1s"`.
pub(crate) fn parse_duration(origin: &str, field: &str, text: &str) -> Result<Duration, ConfigError> {
    let duration = humantime::parse_duration(text.trim()).map_err(|_| {
        ConfigError::new(
            origin,
            field,
            format!("expected a duration like \"250ms\" or \"1s\", got {}", quoted(text)),
        )
    })?;
    check_duration(duration, text).map_err(|message| ConfigError::new(origin, field, message))
}

/// The longest duration any setting takes: ten years. Deadlines and ticks are instants of the
/// monotonic clock plus a duration; past this a sum could leave what an instant holds.
pub const MAX_DURATION: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Checks a duration parsed from `text` against [`MAX_DURATION`]; the error is the message.
pub fn check_duration(duration: Duration, text: &str) -> Result<Duration, String> {
    if duration > MAX_DURATION {
        return Err(format!("expected at most 10 years, got {}", quoted(text.trim())));
    }
    Ok(duration)
}

/// Checks that `value` is a probability.
pub(crate) fn check_probability(origin: &str, field: &str, value: f64) -> Result<f64, ConfigError> {
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(ConfigError::new(
            origin,
            field,
            format!("expected a probability in 0..=1, got {value}"),
        ))
    }
}

/// Parses a `["min", "max"]` duration pair with min <= max.
pub(crate) fn parse_duration_range(
    origin: &str,
    field: &str,
    pair: &[String; 2],
) -> Result<(Duration, Duration), ConfigError> {
    let min = parse_duration(origin, field, &pair[0])?;
    let max = parse_duration(origin, field, &pair[1])?;
    if min > max {
        return Err(ConfigError::new(
            origin,
            field,
            format!("min {} is greater than max {}", pair[0].trim(), pair[1].trim()),
        ));
    }
    Ok((min, max))
}

/// Checks a `[min, max]` number pair: both finite, min <= max.
pub(crate) fn check_range(origin: &str, field: &str, pair: [f64; 2]) -> Result<(f64, f64), ConfigError> {
    let [min, max] = pair;
    if !min.is_finite() || !max.is_finite() {
        return Err(ConfigError::new(origin, field, "expected finite numbers"));
    }
    if min > max {
        return Err(ConfigError::new(
            origin,
            field,
            format!("min {min} is greater than max {max}"),
        ));
    }
    Ok((min, max))
}

/// Longest piece of input an error message quotes, in characters.
pub(crate) const QUOTE_MAX: usize = 64;

/// `text` as an error message quotes it: control characters escaped, then cut to [`QUOTE_MAX`]
/// characters (never inside an escape) with the length of the whole, so a binary file or a huge
/// value makes a short line.
pub(crate) fn quoted(text: &str) -> String {
    let mut shown = String::new();
    let mut shown_chars = 0;
    let mut cut = false;
    for c in text.chars() {
        let escaped = c.escape_debug();
        let len = escaped.len();
        if shown_chars + len > QUOTE_MAX {
            cut = true;
            break;
        }
        shown.extend(escaped);
        shown_chars += len;
    }
    if cut {
        format!("\"{shown}\"... ({} characters)", text.chars().count())
    } else {
        format!("\"{shown}\"")
    }
}

/// `name` (a column, a key...) as a message names it: as it is when it is a short printable
/// name, else [`quoted`] (escaped, cut to [`QUOTE_MAX`] characters).
pub(crate) fn named(name: &str) -> std::borrow::Cow<'_, str> {
    if name.chars().count() <= QUOTE_MAX && !name.chars().any(breaks_line) {
        std::borrow::Cow::Borrowed(name)
    } else {
        std::borrow::Cow::Owned(quoted(name))
    }
}

/// Longest sensor id, in bytes.
pub(crate) const ID_MAX: usize = 256;

/// Checks a sensor id: not empty, at most [`ID_MAX`] bytes, no control characters nor the
/// invisible characters that reorder or hide text (an id goes into log lines, the summary table
/// and every output file as it is).
pub(crate) fn check_id(id: &str) -> Result<(), String> {
    check_label(id, "id", ID_MAX)
}

/// Checks a name shown as it is (an id, a kind, a unit, a group's name): not empty (but for a
/// unit, which may be), at most `max` bytes, nothing that breaks a line, no bidirectional
/// overrides, zero-width characters or byte order marks (which would let a name spoof a log
/// line).
pub(crate) fn check_label(text: &str, what: &str, max: usize) -> Result<(), String> {
    if text.trim().is_empty() && what != "unit" {
        return Err(format!("expected a non-empty {what}"));
    }
    if text.len() > max || text.chars().any(|c| breaks_line(c) || invisible(c)) {
        return Err(format!(
            "expected a{} {what} of at most {max} bytes without control or invisible characters, got {}",
            if what == "id" { "n" } else { "" },
            quoted(text)
        ));
    }
    Ok(())
}

/// Bidirectional embeddings, overrides and isolates, zero-width characters, word joiner and
/// byte order mark: format characters that change how the text around them shows.
fn invisible(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Quoting escapes control characters and cuts long text, saying how long it was.
    #[test]
    fn quoting_is_short_and_escaped() {
        assert_eq!(quoted("12x"), "\"12x\"");
        assert_eq!(quoted("a\nb\u{1}"), "\"a\\nb\\u{1}\"");
        let long = "z".repeat(QUOTE_MAX + 1);
        assert_eq!(
            quoted(&long),
            format!("\"{}\"... (65 characters)", "z".repeat(QUOTE_MAX))
        );
        assert_eq!(quoted(&"z".repeat(QUOTE_MAX)), format!("\"{}\"", "z".repeat(QUOTE_MAX)));
        // Escapes count, and are never cut: 64 control characters show as 10 escapes of six.
        assert_eq!(
            quoted(&"\u{16}".repeat(QUOTE_MAX)),
            format!("\"{}\"... (64 characters)", "\\u{16}".repeat(10))
        );
    }

    /// Whatever its parts hold, an error displays as one bounded line: line breaks, control
    /// characters and line separators escaped, long parts cut, an origin keeping its end.
    #[test]
    fn errors_display_as_one_bounded_line() {
        let e = ConfigError::new("c.toml", "collection.a\nb", "unknown field `a\tb\u{1b}[31m\u{2028}`");
        assert_eq!(
            e.to_string(),
            "c.toml: collection.a\\nb: unknown field `a\\tb\\u{1b}[31m\\u{2028}`"
        );
        let long = ConfigError::new(
            &format!("/{}/c.toml", "d".repeat(200)),
            "f".repeat(FIELD_MAX + 1),
            "m".repeat(MESSAGE_MAX + 1),
        );
        let line = long.to_string();
        let origin = format!("...{}/c.toml", "d".repeat(ORIGIN_MAX - "/c.toml".len()));
        let field = format!("{}...", "f".repeat(FIELD_MAX));
        let message = format!("{}...", "m".repeat(MESSAGE_MAX));
        assert_eq!(line, format!("{origin}: {field}: {message}"));
        assert!(line.chars().count() <= 512);
        // Escapes count: a message of NUL bytes is cut once escaped.
        let nuls = ConfigError::new("c.toml", "f", "\0".repeat(MESSAGE_MAX)).to_string();
        assert_eq!(nuls, format!("c.toml: f: {}...", "\\u{0}".repeat(MESSAGE_MAX / 5)));
        // The fields keep the text as it was.
        assert_eq!(long.message.len(), MESSAGE_MAX + 1);
    }

    /// A printable short name is shown as it is; any other is quoted, escaped and cut.
    #[test]
    fn names_are_shown_as_they_are_unless_they_would_break_the_line() {
        assert_eq!(named("temperature"), "temperature");
        assert_eq!(named("te\nmp"), "\"te\\nmp\"");
        assert_eq!(named(&"c".repeat(QUOTE_MAX + 1)), quoted(&"c".repeat(QUOTE_MAX + 1)));
    }

    /// Ids: exactly ID_MAX bytes is fine, one more or a control character is not.
    #[test]
    fn ids_are_bounded_and_printable() {
        assert_eq!(check_id(&"i".repeat(ID_MAX)), Ok(()));
        assert!(check_id(&"i".repeat(ID_MAX + 1)).is_err());
        assert_eq!(
            check_id("a\nb"),
            Err("expected an id of at most 256 bytes without control or invisible characters, got \"a\\nb\"".into())
        );
        assert_eq!(check_id(" "), Err("expected a non-empty id".into()));
        assert!(check_id("\u{202E}evil").is_err(), "a bidirectional override");
        assert!(check_id("a\u{200B}b").is_err(), "a zero-width space");
        assert!(check_id("a\u{2028}b").is_err(), "a line separator");
        assert_eq!(check_id("µg-m³-01"), Ok(()));
        assert_eq!(check_label("", "unit", 8), Ok(()));
        assert!(check_label("123456789", "unit", 8).is_err());
    }
}
