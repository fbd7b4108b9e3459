//! Parsing helpers at the bottom of the crate: [`ConfigError`], the one-line
//! `origin: field: expectation` error, and the checks that the configuration, the drivers and the
//! detectors share (durations, duration ranges, number ranges, probabilities, a TOML table into
//! a serde struct). It imports nothing of the crate's: `config` validates a whole file with it,
//! and each driver and detector validates its own keys with it, without importing `config`.

use std::time::Duration;

use serde::de::DeserializeOwned;

/// A configuration error: where, which field, what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: {field}: {message}")]
pub struct ConfigError {
    /// The file name, or `command line` for flags.
    pub origin: String,
    /// The field path, such as `sensors[2].latency`.
    pub field: String,
    /// What was wrong and what was expected.
    pub message: String,
}

impl ConfigError {
    /// Builds an error for `field` of `origin`.
    pub fn new(origin: &str, field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            origin: origin.to_string(),
            field: bounded(field.into(), FIELD_MAX),
            message: bounded(message.into(), MESSAGE_MAX),
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
            format!("expected a duration like \"250ms\" or \"1s\", got \"{text}\""),
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
        return Err(format!("expected at most 10 years, got \"{}\"", text.trim()));
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

/// `text` as an error message quotes it: control characters escaped, and cut to [`QUOTE_MAX`]
/// characters with the length of the whole, so a binary file or a huge value makes a short line.
pub(crate) fn quoted(text: &str) -> String {
    let chars = text.chars().count();
    let shown: String = text.chars().take(QUOTE_MAX).flat_map(char::escape_debug).collect();
    if chars > QUOTE_MAX {
        format!("\"{shown}\"... ({chars} characters)")
    } else {
        format!("\"{shown}\"")
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
/// unit, which may be), at most `max` bytes, no control characters, no bidirectional overrides,
/// zero-width characters or byte order marks (which would let a name spoof a log line).
pub(crate) fn check_label(text: &str, what: &str, max: usize) -> Result<(), String> {
    if text.trim().is_empty() && what != "unit" {
        return Err(format!("expected a non-empty {what}"));
    }
    if text.len() > max || text.chars().any(|c| c.is_control() || invisible(c)) {
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

/// Longest field path and message of a [`ConfigError`], in characters: a key of the input
/// (which may be anything) is shown escaped and cut to this.
const FIELD_MAX: usize = 128;
const MESSAGE_MAX: usize = 600;

/// `text` escaped (control characters as `\n`, `\u{7}`...) and cut to `max` characters.
fn bounded(text: String, max: usize) -> String {
    if text.len() <= max && !text.chars().any(|c| c.is_control() || invisible(c)) {
        return text;
    }
    let chars = text.chars().count();
    let mut shown: String = text
        .chars()
        .take(max)
        .flat_map(|c| {
            let escape = c.is_control() || invisible(c);
            let escaped: Vec<char> = if escape { c.escape_debug().collect() } else { vec![c] };
            escaped
        })
        .collect();
    if chars > max {
        shown += &format!("... ({chars} characters)");
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A field or message built from the input is escaped and cut, whatever the input holds.
    #[test]
    fn error_fields_and_messages_are_bounded_and_escaped() {
        let key = "k".repeat(100_000);
        let e = ConfigError::new("c.toml", format!("collection.{key}"), format!("unknown field `{key}`"));
        assert!(e.field.starts_with("collection.kkk"));
        assert!(e.field.ends_with("... (100011 characters)"), "{}", e.field);
        assert!(e.to_string().len() < FIELD_MAX + MESSAGE_MAX + 100);
        let e = ConfigError::new("c.toml", "a\nb", "x\u{202E}y");
        assert_eq!(e.to_string(), "c.toml: a\\nb: x\\u{202e}y");
        let exact = "f".repeat(FIELD_MAX);
        assert_eq!(ConfigError::new("c.toml", exact.clone(), "m").field, exact);
    }

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
        assert_eq!(check_id("µg-m³-01"), Ok(()));
        assert_eq!(check_label("", "unit", 8), Ok(()));
        assert!(check_label("123456789", "unit", 8).is_err());
    }
}
