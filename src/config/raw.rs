//! Stage one of reading a configuration: the TOML text into raw serde structs that mirror the
//! file and reject unknown keys (`deny_unknown_fields`), with the field path and line of any
//! error. Nothing here checks a value; [`validate`](super::validate) turns these structs into a
//! [`Config`](super::Config). `[[sensors]]` entries stay TOML tables here: their keys are split
//! between [`RawSensorCommon`] and the entry's driver during validation.

use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::{Directive, Directives, GroupStrategy};
use crate::analysis::RawAnalysis;
use crate::data::RestartType;
use crate::parse::ConfigError;

/// Deserializes TOML text, naming the field path and the line of any error.
pub(super) fn parse_toml<T: DeserializeOwned>(text: &str, origin: &str) -> Result<T, ConfigError> {
    let de = toml::Deserializer::new(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        // toml's messages for syntax errors span lines: one line, its parts joined.
        let mut message = inner
            .message()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(": ");
        if message == "number too large to fit in target type" {
            message = format!("expected an integer of at most {} (TOML's largest)", i64::MAX);
        }
        let mut field = if path == "." { "toml".to_string() } else { path };
        if let Some(span) = inner.span() {
            let start = span.start.min(text.len());
            let line = text[..start].matches('\n').count() + 1;
            message = format!("{message} (line {line})");
            if field == "toml" {
                field = key_at(text, start).unwrap_or(field);
            }
        }
        ConfigError::new(origin, field, message)
    })
}

/// The key a syntax error at byte `offset` is in, as a field path (`supervision.hung_after`,
/// `sensors[2].count`), read from the text: the `key = ...` of its line under the last table
/// header before it. `None` when the line assigns nothing.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("");
    let (key, _) = line.split_once('=')?;
    let key = key.trim().trim_matches(['"', '\'']);
    if key.is_empty() || key.starts_with(['[', '#']) {
        return None;
    }
    let mut section = String::new();
    let mut arrays: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for header in text[..line_start].lines().map(str::trim) {
        if let Some(name) = header.strip_prefix("[[").and_then(|h| h.split("]]").next()) {
            let name = name.trim();
            let index = arrays.entry(name).and_modify(|i| *i += 1).or_insert(0);
            section = format!("{name}[{index}]");
        } else if let Some(name) = header.strip_prefix('[').and_then(|h| h.split(']').next()) {
            section = name.trim().to_string();
        }
    }
    Some(if section.is_empty() {
        key.to_string()
    } else {
        format!("{section}.{key}")
    })
}

/// The whole file, section by section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub(super) collection: RawCollection,
    #[serde(default)]
    pub(super) supervision: RawPolicy,
    #[serde(default)]
    pub(super) root: RawRoot,
    #[serde(default)]
    pub(super) sensors: Vec<toml::Table>,
    #[serde(default)]
    pub(super) groups: Vec<RawGroup>,
    #[serde(default)]
    pub(super) analysis: RawAnalysis,
    #[serde(default)]
    pub(super) runtime: RawRuntime,
    pub(super) http: Option<RawHttp>,
    #[serde(default)]
    pub(super) outputs: crate::mqtt::RawOutputs,
}

/// `[collection]`, durations still as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCollection {
    pub(super) interval: Option<String>,
    pub(super) read_timeout: Option<String>,
    pub(super) rounds: Option<u64>,
    pub(super) duration: Option<String>,
    pub(super) seed: Option<u64>,
    pub(super) max_in_flight: Option<usize>,
    pub(super) journal: Option<super::JournalDetail>,
}

/// `[supervision]`, or the restart keys of one `[[sensors]]` entry.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicy {
    pub(super) restart: Option<RestartType>,
    pub(super) max_restarts: Option<u32>,
    pub(super) within: Option<String>,
    pub(super) backoff_min: Option<String>,
    pub(super) backoff_max: Option<String>,
    pub(super) hung_after: Option<u32>,
    pub(super) directives: Option<RawDirectives>,
}

/// A `directives = { ... }` table: the directive per kind of failure, where given.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDirectives {
    pub(super) panic: Option<Directive>,
    pub(super) fatal: Option<Directive>,
    pub(super) hung: Option<Directive>,
    pub(super) stopped: Option<Directive>,
}

impl RawDirectives {
    /// Refuses what no level may say: `resume` for a stopped actor. `at` is the table holding
    /// the `directives` key.
    pub(super) fn check(&self, origin: &str, at: &str) -> Result<(), ConfigError> {
        if self.stopped == Some(Directive::Resume) {
            return Err(ConfigError::new(
                origin,
                format!("{at}.directives.stopped"),
                "expected restart, stop or escalate: an actor that stopped has nothing to resume",
            ));
        }
        Ok(())
    }

    /// `base` with the directives given here in place of its own.
    pub(super) fn over(&self, base: Directives) -> Directives {
        let mut d = base;
        d.panic = self.panic.unwrap_or(d.panic);
        d.fatal = self.fatal.unwrap_or(d.fatal);
        d.hung = self.hung.unwrap_or(d.hung);
        d.stopped = self.stopped.unwrap_or(d.stopped);
        d
    }
}

/// `[root]`, durations still as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoot {
    pub(super) max_restarts: Option<u32>,
    pub(super) within: Option<String>,
    pub(super) backoff_min: Option<String>,
    pub(super) backoff_max: Option<String>,
}

/// One `[[groups]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGroup {
    pub(super) name: String,
    pub(super) strategy: Option<GroupStrategy>,
    pub(super) max_restarts: Option<u32>,
    pub(super) within: Option<String>,
    pub(super) parent: Option<String>,
    pub(super) directives: Option<RawDirectives>,
}

/// `[runtime]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRuntime {
    pub(super) arbiters: Option<usize>,
}

/// `[http]`, the address still as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttp {
    pub(super) address: Option<String>,
    pub(super) sensor_series: Option<bool>,
    pub(super) max_sensor_series: Option<usize>,
    pub(super) control: Option<bool>,
}

/// The keys of a `[[sensors]]` entry that every driver shares; the rest go to the driver.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSensorCommon {
    pub(super) driver: Option<String>,
    pub(super) kind: Option<String>,
    pub(super) name: Option<String>,
    pub(super) id: Option<String>,
    pub(super) count: Option<i64>,
    pub(super) unit: Option<String>,
    pub(super) group: Option<String>,
    pub(super) range: Option<[f64; 2]>,
    pub(super) restart: Option<RestartType>,
    pub(super) max_restarts: Option<u32>,
    pub(super) within: Option<String>,
    pub(super) backoff_min: Option<String>,
    pub(super) backoff_max: Option<String>,
    pub(super) hung_after: Option<u32>,
    pub(super) directives: Option<RawDirectives>,
}

impl RawSensorCommon {
    pub(super) const KEYS: &'static [&'static str] = &[
        "driver",
        "kind",
        "name",
        "id",
        "count",
        "unit",
        "group",
        "range",
        "restart",
        "max_restarts",
        "within",
        "backoff_min",
        "backoff_max",
        "hung_after",
        "directives",
    ];

    pub(super) fn policy(&self) -> RawPolicy {
        RawPolicy {
            restart: self.restart,
            max_restarts: self.max_restarts,
            within: self.within.clone(),
            backoff_min: self.backoff_min.clone(),
            backoff_max: self.backoff_max.clone(),
            hung_after: self.hung_after,
            directives: self.directives,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn err(text: &str) -> String {
        Config::from_toml_str(text, "c.toml").unwrap_err().to_string()
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_path() {
        let e = err("[collection]\nintervall = \"1s\"\n[[sensors]]\ncount=1\n");
        assert!(
            e.starts_with("c.toml: collection.intervall: unknown field `intervall`, expected one of `interval`"),
            "{e}"
        );
        assert!(e.ends_with("(line 2)"), "{e}");
        let e = err("[[sensors]]\ncount = 1\nlatncy = [\"1ms\", \"2ms\"]\n");
        assert!(
            e.starts_with("c.toml: sensors[0].latncy: unknown field `latncy`, expected one of `latency`"),
            "{e}"
        );
        assert!(e.ends_with("or a key of every sensor: driver, kind, name, id, count, unit, group, range, restart, max_restarts, within, backoff_min, backoff_max, hung_after, directives"), "{e}");
        assert!(err("[bogus]\n[[sensors]]\ncount=1\n").starts_with("c.toml: bogus: unknown field `bogus`"));
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let e = err("[[sensors]]\ncount = = 1\n");
        assert!(e.starts_with("c.toml: sensors[0].count: "), "{e}");
        assert!(e.ends_with("(line 2)"), "{e}");
        // A line that assigns nothing has no key to name.
        let e = err("[[sensors]\ncount = 1\n");
        assert!(e.starts_with("c.toml: toml: "), "{e}");
    }

    /// An integer past TOML's range names its key, under the right table and array entry.
    #[test]
    fn integers_too_large_name_their_key() {
        let e = err("[supervision]\nhung_after = 18446744073709551615\n[[sensors]]\ncount=1\n");
        assert_eq!(
            e,
            "c.toml: supervision.hung_after: expected an integer of at most 9223372036854775807 (TOML's largest) (line 2)"
        );
        let e = err("[[sensors]]\ncount=1\n[[groups]]\nname=\"g\"\n[[sensors]]\n\"count\" = 99999999999999999999\n");
        assert!(e.starts_with("c.toml: sensors[1].count: expected an integer"), "{e}");
    }
}
