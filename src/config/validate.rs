//! Stage two of reading a configuration: the raw structs of [`raw`](super::raw) into a validated
//! [`Config`]. Durations are parsed, ranges and limits checked, restart policies resolved against
//! `[supervision]`, groups checked, and each `[[sensors]]` entry expanded into its sensors
//! ([`expand_entry`]): the keys every sensor shares are taken out, the rest go to the entry's
//! driver, looked up by name in the run's [`DriverRegistry`]. Every error is one
//! `origin: field: expectation` line. Used by [`Config::parse`] and [`Config::check_collection`].

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::raw::{RawCollection, RawConfig, RawDirectives, RawGroup, RawHttp, RawPolicy, RawRoot, RawSensorCommon};
use super::{
    default_unit, is_sensor_id, sensor_id, CollectionConfig, Config, Directive, GroupSpec, GroupStrategy, HttpConfig,
    RestartPolicy, RootPolicy, RuntimeConfig, SensorSpec, DEFAULT_HTTP_ADDRESS, MAX_ARBITERS, MAX_SENSORS,
    MAX_SENSOR_SERIES,
};
use crate::driver::{self, simulated, DriverRegistry};
use crate::parse::{check_id, check_label, check_range, from_table, parse_duration, quoted, ConfigError, ID_MAX};
use crate::registry::Registry;

impl RawConfig {
    /// Stage two for a whole file: every section validated, every `[[sensors]]` entry expanded
    /// into its sensors through `registry`'s drivers, ids checked for duplicates.
    pub(super) fn validate(self, origin: &str, base: &Path, registry: &Registry) -> Result<Config, ConfigError> {
        let collection = self.collection.validate(origin)?;
        let supervision = self
            .supervision
            .validate(origin, "supervision", &RestartPolicy::default())?;
        let root = self.root.validate(origin, &supervision)?;
        let (groups, group_directives) = validate_groups(self.groups, origin)?;
        let analysis = self.analysis.validate(origin, &registry.detectors)?;
        if self.runtime.arbiters == Some(0) {
            return Err(ConfigError::new(
                origin,
                "runtime.arbiters",
                "expected at least 1 arbiter",
            ));
        }
        if let Some(arbiters) = self.runtime.arbiters.filter(|&a| a > MAX_ARBITERS) {
            return Err(ConfigError::new(
                origin,
                "runtime.arbiters",
                format!("expected at most {MAX_ARBITERS} arbiters (threads), got {arbiters}"),
            ));
        }
        if self.sensors.is_empty() {
            return Err(ConfigError::new(
                origin,
                "sensors",
                "expected at least one [[sensors]] entry",
            ));
        }
        let mut sensors = Vec::new();
        let group_names: HashMap<&str, Option<RawDirectives>> = groups
            .iter()
            .zip(group_directives)
            .map(|(g, d)| (g.name.as_str(), d))
            .collect();
        for (i, table) in self.sensors.into_iter().enumerate() {
            expand_entry(
                table,
                origin,
                base,
                &format!("sensors[{i}]"),
                0,
                &supervision,
                &group_names,
                &registry.drivers,
                &mut sensors,
            )?;
        }
        let mut seen = HashSet::new();
        for s in &sensors {
            if !seen.insert(s.id.clone()) {
                return Err(ConfigError::new(
                    origin,
                    "sensors",
                    format!("duplicate sensor id {}", quoted(&s.id)),
                ));
            }
        }
        Ok(Config {
            collection,
            supervision,
            root,
            sensors,
            groups,
            analysis,
            runtime: RuntimeConfig {
                arbiters: self.runtime.arbiters,
            },
            http: self.http.map(|h| h.validate(origin)).transpose()?,
            outputs: super::Outputs {
                mqtt: self.outputs.mqtt.map(|m| m.validate(origin, base)).transpose()?,
                files: self.outputs.files.map(|f| f.validate()).unwrap_or_default(),
            },
        })
    }
}

/// Validates one `[[sensors]]` entry given while a run goes on (`Control::add`), exactly as an
/// entry of a configuration file is, with the run's `[supervision]` defaults, its `[[groups]]`
/// and its drivers; errors name `origin` (who asked) and `sensor.<field>`. The run holds
/// `before` sensors (for the bound on a run's sensors). Relative file paths resolve against the
/// current directory. Ids are not checked against the run's: the caller knows them.
pub(crate) fn validate_entry(
    table: toml::Table,
    origin: &str,
    defaults: &RestartPolicy,
    groups: &[GroupSpec],
    drivers: &DriverRegistry,
    before: usize,
) -> Result<Vec<SensorSpec>, ConfigError> {
    let names: HashMap<&str, Option<RawDirectives>> = groups.iter().map(|g| (g.name.as_str(), g.directives)).collect();
    let mut sensors = Vec::new();
    let base = Path::new("");
    expand_entry(
        table,
        origin,
        base,
        ADDED_ENTRY,
        before,
        defaults,
        &names,
        drivers,
        &mut sensors,
    )?;
    Ok(sensors)
}

/// The path of an entry given while running, in errors (`mqtt: sensor.latency: ...`).
pub(crate) const ADDED_ENTRY: &str = "sensor";

impl RawHttp {
    fn validate(self, origin: &str) -> Result<HttpConfig, ConfigError> {
        let mut http = HttpConfig::new(DEFAULT_HTTP_ADDRESS);
        if let Some(text) = &self.address {
            http.address = parse_http_address(text).map_err(|e| ConfigError::new(origin, "http.address", e))?;
        }
        http.sensor_series = self.sensor_series.unwrap_or(false);
        http.control = self.control.unwrap_or(false);
        if let Some(max) = self.max_sensor_series {
            if max == 0 || max > MAX_SENSOR_SERIES {
                return Err(ConfigError::new(
                    origin,
                    "http.max_sensor_series",
                    format!("expected 1 to {MAX_SENSOR_SERIES} sensors, got {max}"),
                ));
            }
            http.max_sensor_series = max;
        }
        Ok(http)
    }
}

/// An `[http] address` or `--http ADDR`: an IP address and a port (`127.0.0.1:9184`,
/// `[::1]:9184`, `0.0.0.0:9184`; port 0 picks a free one).
pub fn parse_http_address(text: &str) -> Result<std::net::SocketAddr, String> {
    text.trim().parse().map_err(|_| {
        format!(
            "expected an IP address and a port like \"127.0.0.1:9184\", got {}",
            quoted(text)
        )
    })
}

impl RawCollection {
    fn validate(self, origin: &str) -> Result<CollectionConfig, ConfigError> {
        let dur = |field: &str, v: &Option<String>, default: Duration| match v {
            Some(s) => parse_duration(origin, &format!("collection.{field}"), s),
            None => Ok(default),
        };
        let d = CollectionConfig::default();
        let collection = CollectionConfig {
            interval: dur("interval", &self.interval, d.interval)?,
            read_timeout: dur("read_timeout", &self.read_timeout, d.read_timeout)?,
            rounds: self.rounds,
            duration: match &self.duration {
                Some(s) => Some(parse_duration(origin, "collection.duration", s)?),
                None => None,
            },
            seed: self.seed,
            max_in_flight: self.max_in_flight.unwrap_or(0),
            journal: self.journal.unwrap_or_default(),
        };
        collection.check(origin, |key| format!("collection.{key}"))?;
        Ok(collection)
    }
}

impl RawPolicy {
    fn validate(&self, origin: &str, at: &str, base: &RestartPolicy) -> Result<RestartPolicy, ConfigError> {
        let dur = |field: &str, v: &Option<String>, default: Duration| match v {
            Some(s) => parse_duration(origin, &format!("{at}.{field}"), s),
            None => Ok(default),
        };
        let policy = RestartPolicy {
            restart: self.restart.unwrap_or(base.restart),
            max_restarts: self.max_restarts.unwrap_or(base.max_restarts),
            within: dur("within", &self.within, base.within)?,
            backoff_min: dur("backoff_min", &self.backoff_min, base.backoff_min)?,
            backoff_max: dur("backoff_max", &self.backoff_max, base.backoff_max)?,
            hung_after: self.hung_after.unwrap_or(base.hung_after),
            directives: self.directives.map_or(base.directives, |d| d.over(base.directives)),
        };
        if let Some(d) = &self.directives {
            d.check(origin, at)?;
        }
        if policy.within.is_zero() {
            return Err(ConfigError::new(
                origin,
                format!("{at}.within"),
                "expected a duration above 0s",
            ));
        }
        if policy.backoff_min > policy.backoff_max {
            return Err(ConfigError::new(
                origin,
                format!("{at}.backoff_min"),
                format!(
                    "{} is greater than backoff_max {}",
                    humantime::format_duration(policy.backoff_min),
                    humantime::format_duration(policy.backoff_max)
                ),
            ));
        }
        if policy.hung_after == 0 {
            return Err(ConfigError::new(
                origin,
                format!("{at}.hung_after"),
                "expected at least 1 timeout",
            ));
        }
        Ok(policy)
    }
}

/// Longest unit, in bytes (it is written with every reading).
const UNIT_MAX: usize = 32;

impl RawRoot {
    /// `[root]`, its unset keys taken from the root's default policy, checked as a restart
    /// policy is.
    fn validate(&self, origin: &str, supervision: &RestartPolicy) -> Result<RootPolicy, ConfigError> {
        let default = RootPolicy::from_supervision(supervision);
        let raw = RawPolicy {
            max_restarts: Some(self.max_restarts.unwrap_or(default.max_restarts)),
            within: self.within.clone(),
            backoff_min: self.backoff_min.clone(),
            backoff_max: self.backoff_max.clone(),
            ..RawPolicy::default()
        };
        let policy = raw.validate(origin, "root", supervision)?;
        Ok(RootPolicy {
            max_restarts: policy.max_restarts,
            within: policy.within,
            backoff_min: policy.backoff_min,
            backoff_max: policy.backoff_max,
        })
    }
}

/// The `[[groups]]` entries, checked (names unique, each `parent` an existing group, no group
/// its own ancestor), each with the directives it gives its members.
fn validate_groups(
    raw: Vec<RawGroup>,
    origin: &str,
) -> Result<(Vec<GroupSpec>, Vec<Option<RawDirectives>>), ConfigError> {
    let mut groups: Vec<GroupSpec> = Vec::with_capacity(raw.len());
    let mut directives = Vec::with_capacity(raw.len());
    let mut names = HashSet::with_capacity(raw.len());
    for (i, g) in raw.into_iter().enumerate() {
        let at = format!("groups[{i}]");
        check_label(&g.name, "name", ID_MAX).map_err(|m| ConfigError::new(origin, format!("{at}.name"), m))?;
        if !names.insert(g.name.clone()) {
            return Err(ConfigError::new(
                origin,
                format!("{at}.name"),
                format!("duplicate group {}", quoted(&g.name)),
            ));
        }
        let within = match &g.within {
            Some(s) => parse_duration(origin, &format!("{at}.within"), s)?,
            None => Duration::from_secs(10),
        };
        if within.is_zero() {
            return Err(ConfigError::new(
                origin,
                format!("{at}.within"),
                "expected a duration above 0s",
            ));
        }
        if let Some(d) = &g.directives {
            d.check(origin, &at)?;
        }
        directives.push(g.directives);
        groups.push(GroupSpec {
            name: g.name,
            strategy: g.strategy.unwrap_or(GroupStrategy::OneForOne),
            max_restarts: g.max_restarts.unwrap_or(3),
            within,
            parent: g.parent,
            directives: g.directives,
        });
    }
    let index: HashMap<&str, usize> = groups.iter().enumerate().map(|(k, g)| (g.name.as_str(), k)).collect();
    for (i, g) in groups.iter().enumerate() {
        let Some(parent) = &g.parent else { continue };
        let at = format!("groups[{i}].parent");
        let Some(&p) = index.get(parent.as_str()) else {
            return Err(ConfigError::new(
                origin,
                at,
                format!("no [[groups]] entry is named {}", quoted(parent)),
            ));
        };
        // Walk up from the parent: reaching this group again is a cycle. At most one step per
        // group, so a chain of any depth ends.
        let mut up = Some(p);
        for _ in 0..=groups.len() {
            match up {
                Some(k) if k == i => {
                    return Err(ConfigError::new(
                        origin,
                        at,
                        format!("{} would be its own ancestor", quoted(&g.name)),
                    ))
                }
                Some(k) => up = groups[k].parent.as_deref().and_then(|n| index.get(n).copied()),
                None => break,
            }
        }
    }
    Ok((groups, directives))
}

/// Validates one sensors entry (`at` is its path in errors, such as `sensors[2]`) and appends
/// the sensors it makes to `out`; the run holds `before` sensors besides those of `out`.
#[allow(clippy::too_many_arguments)]
fn expand_entry(
    mut table: toml::Table,
    origin: &str,
    base: &Path,
    at: &str,
    before: usize,
    defaults: &RestartPolicy,
    groups: &HashMap<&str, Option<RawDirectives>>,
    drivers: &DriverRegistry,
    out: &mut Vec<SensorSpec>,
) -> Result<(), ConfigError> {
    let earlier = before + out.len();
    let mut common_table = toml::Table::new();
    for key in RawSensorCommon::KEYS {
        if let Some(v) = table.remove(*key) {
            common_table.insert((*key).to_string(), v);
        }
    }
    let common: RawSensorCommon = from_table(common_table, origin, at)?;
    let driver_name = common.driver.as_deref().unwrap_or("simulated");
    let factory_restart = drivers.get(driver_name).and_then(|f| f.default_restart());
    let driver = drivers.parse(driver_name, table, origin, at, base).map_err(|mut e| {
        if e.message.starts_with("unknown field") {
            e.message = format!(
                "{}, or a key of every sensor: {}",
                e.message,
                RawSensorCommon::KEYS.join(", ")
            );
        }
        e
    })?;
    let mut raw_policy = common.policy();
    raw_policy.restart = raw_policy.restart.or(factory_restart);
    // The group's directives come between `[supervision]`'s and the entry's own.
    let group_defaults;
    let base = match common.group.as_deref().and_then(|g| groups.get(g)).copied().flatten() {
        Some(d) => {
            group_defaults = RestartPolicy {
                directives: d.over(defaults.directives),
                ..defaults.clone()
            };
            &group_defaults
        }
        None => defaults,
    };
    let policy = raw_policy.validate(origin, at, base)?;
    if common.group.is_none() {
        if let Some((kind, _)) = policy
            .directives
            .overrides()
            .into_iter()
            .find(|(_, d)| *d == Directive::Escalate)
        {
            return Err(ConfigError::new(
                origin,
                format!("{at}.directives.{}", kind.as_str()),
                "expected restart, stop or resume: escalate needs a [[groups]] entry to escalate, and this sensor has none",
            ));
        }
    }
    let kind: Arc<str> = common
        .kind
        .clone()
        .unwrap_or_else(|| driver.default_kind().unwrap_or(driver_name).to_string())
        .into();
    check_label(&kind, "kind", ID_MAX).map_err(|m| ConfigError::new(origin, format!("{at}.kind"), m))?;
    let unit: Arc<str> = common
        .unit
        .clone()
        .unwrap_or_else(|| driver.default_unit().unwrap_or(default_unit(&kind)).to_string())
        .into();
    check_label(&unit, "unit", UNIT_MAX).map_err(|m| ConfigError::new(origin, format!("{at}.unit"), m))?;
    let group = match &common.group {
        Some(g) if !groups.contains_key(g.as_str()) => {
            return Err(ConfigError::new(
                origin,
                format!("{at}.group"),
                format!("no [[groups]] entry is named {}", quoted(g)),
            ))
        }
        Some(g) => Some(Arc::<str>::from(g.as_str())),
        None => None,
    };
    let range = match common.range {
        Some(pair) => Some(check_range(origin, &format!("{at}.range"), pair)?),
        None => None,
    };
    if let Some(keyed) = driver.sensor_keys() {
        if common.id.is_some() || common.count.is_some() {
            return Err(ConfigError::new(
                origin,
                format!("{at}.id"),
                "expected no `id` or `count` with `id_column`: ids come from the column",
            ));
        }
        if keyed.len() > MAX_SENSORS.saturating_sub(earlier) {
            return Err(ConfigError::new(
                origin,
                format!("{at}.id_column"),
                format!(
                    "expected at most {MAX_SENSORS} sensors in a run, got {} ids after {} sensors",
                    keyed.len(),
                    earlier
                ),
            ));
        }
        for (key, driver) in keyed {
            let id = match &common.name {
                Some(name) => format!("{name}-{key}"),
                None => key,
            };
            check_id(&id).map_err(|m| ConfigError::new(origin, format!("{at}.id_column"), m))?;
            out.push(SensorSpec {
                id: id.into(),
                kind: kind.clone(),
                unit: unit.clone(),
                driver,
                policy: policy.clone(),
                group: group.clone(),
                range,
            });
        }
        return Ok(());
    }
    // The ids are made one at a time as the specs are pushed: at a million sensors a list of
    // them first would be tens of megabytes of garbage left in the allocator.
    let (single, count, name) = match (&common.id, common.count) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                origin,
                format!("{at}.id"),
                "expected either `id` or `count`, not both",
            ))
        }
        (Some(id), None) if check_id(id).is_err() => {
            let message = check_id(id).err().unwrap_or_default();
            return Err(ConfigError::new(origin, format!("{at}.id"), message));
        }
        (Some(id), None) => (Some(id.clone()), 1, String::new()),
        (None, Some(count)) if count < 1 => {
            return Err(ConfigError::new(
                origin,
                format!("{at}.count"),
                format!("expected at least 1 sensor, got {count}"),
            ))
        }
        (None, count) => {
            let name = common.name.clone().unwrap_or_else(|| kind.to_string());
            (None, count.unwrap_or(1) as usize, name)
        }
    };
    // Bounded before anything is allocated or enumerated for them.
    if count > MAX_SENSORS.saturating_sub(earlier) {
        return Err(ConfigError::new(
            origin,
            format!("{at}.count"),
            match earlier {
                0 => format!("expected at most {MAX_SENSORS} sensors in a run, got {count}"),
                before => format!("expected at most {MAX_SENSORS} sensors in a run, got {count} more after {before}"),
            },
        ));
    }
    let id = |i: usize| match &single {
        Some(id) => id.clone(),
        None => sensor_id(&name, i, count),
    };
    if single.is_none() {
        // The longest id of the entry is its last.
        check_id(&id(count)).map_err(|m| ConfigError::new(origin, format!("{at}.name"), m))?;
    }
    if let Some(simulated) = driver::downcast::<simulated::Spec>(&*driver) {
        // Computed, not enumerated: ten million ids per fault took seconds each.
        let is_id = |s: &str| match &single {
            Some(id) => id == s,
            None => is_sensor_id(s, &name, count),
        };
        simulated.settings().check_fault_sensors(origin, at, is_id)?;
    }
    out.reserve(count);
    for i in 1..=count {
        out.push(SensorSpec {
            id: id(i).into(),
            kind: kind.clone(),
            unit: unit.clone(),
            driver: driver.clone(),
            policy: policy.clone(),
            group: group.clone(),
            range,
        });
    }
    Ok(())
}

impl CollectionConfig {
    /// The rules no single key's parser checks; `field` spells a key the way the input does
    /// (`collection.rounds` in a file, `--rounds` on the command line).
    pub(super) fn check(&self, origin: &str, field: impl Fn(&str) -> String) -> Result<(), ConfigError> {
        if self.read_timeout.is_zero() {
            return Err(ConfigError::new(
                origin,
                field("read_timeout"),
                "expected a duration above 0s",
            ));
        }
        if self.rounds == Some(0) {
            return Err(ConfigError::new(origin, field("rounds"), "expected at least 1 round"));
        }
        if self.duration.is_some_and(|d| d.is_zero()) {
            return Err(ConfigError::new(
                origin,
                field("duration"),
                "expected a duration above 0s",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, RestartType};

    /// Names shown as they are (kinds, units, group names) are bounded and printable, like ids;
    /// a unit may be empty and is at most 32 bytes, exactly 32 being fine.
    #[test]
    fn kinds_units_and_group_names_are_bounded_and_printable() {
        let sensor = "[[sensors]]\ncount = 1\n";
        let e = err(&format!("{sensor}unit = \"{}\"\n", "u".repeat(33)));
        assert!(
            e.starts_with("c.toml: sensors[0].unit: expected a unit of at most 32 bytes"),
            "{e}"
        );
        assert!(Config::from_toml_str(&format!("{sensor}unit = \"{}\"\n", "u".repeat(32)), "c.toml").is_ok());
        assert!(Config::from_toml_str(&format!("{sensor}unit = \"\"\n"), "c.toml").is_ok());
        let e = err(&format!("{sensor}unit = \"a\\u0007\"\n"));
        assert!(e.starts_with("c.toml: sensors[0].unit: "), "{e}");
        let e = err("[[sensors]]\nid = \"x\"\nkind = \"t\\u202Eemp\"\n");
        assert!(
            e.starts_with("c.toml: sensors[0].kind: expected a kind of at most 256 bytes"),
            "{e}"
        );
        let e = err("[[groups]]\nname = \"g\\n1\"\n[[sensors]]\ncount = 1\ngroup = \"g\\n1\"\n");
        assert_eq!(
            e,
            "c.toml: groups[0].name: expected a name of at most 256 bytes without control or invisible characters, got \"g\\n1\""
        );
        let e = err(&format!("[[groups]]\nname = \"{}\"\n{sensor}", "g".repeat(257)));
        assert!(
            e.starts_with("c.toml: groups[0].name: expected a name of at most 256 bytes"),
            "{e}"
        );
        assert!(e.len() < 300, "{e}");
    }

    fn err(text: &str) -> String {
        Config::from_toml_str(text, "c.toml").unwrap_err().to_string()
    }

    /// `[http]` is off unless present; present, it listens on loopback unless an address is
    /// named, and per-sensor series are off unless asked for, capped.
    #[test]
    fn the_http_section() {
        let sensor = "[[sensors]]\ncount = 1\n";
        assert_eq!(Config::from_toml_str(sensor, "c.toml").unwrap().http, None);
        let http = |t: &str| Config::from_toml_str(&format!("[http]\n{t}{sensor}"), "c.toml").map(|c| c.http.unwrap());
        let default = http("").unwrap();
        assert_eq!(default.address, "127.0.0.1:9184".parse().unwrap());
        assert!(!default.sensor_series);
        let named = http("address = \"0.0.0.0:9000\"\nsensor_series = true\nmax_sensor_series = 50\n").unwrap();
        assert_eq!(
            (
                named.address.to_string().as_str(),
                named.sensor_series,
                named.max_sensor_series
            ),
            ("0.0.0.0:9000", true, 50)
        );
        assert_eq!(
            err(&format!("[http]\naddress = \"localhost\"\n{sensor}")),
            "c.toml: http.address: expected an IP address and a port like \"127.0.0.1:9184\", got \"localhost\""
        );
        assert_eq!(
            err(&format!("[http]\nmax_sensor_series = 0\n{sensor}")),
            "c.toml: http.max_sensor_series: expected 1 to 100000 sensors, got 0"
        );
        assert!(err(&format!("[http]\nport = 1\n{sensor}")).starts_with("c.toml: http.port: unknown field"));
    }

    /// Values that pass parsing but no run could hold are refused where they are parsed, with
    /// their limit: counts past MAX_SENSORS (before anything is allocated), durations past ten
    /// years (exactly ten years is fine), more than MAX_ARBITERS arbiters (exactly that is fine).
    #[test]
    fn absurd_values_are_refused_with_their_limit() {
        let parse = |t: &str| {
            Config::from_toml_str(t, "c.toml")
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        assert_eq!(
            parse("[[sensors]]\ncount = 1000000000000\n"),
            Err("c.toml: sensors[0].count: expected at most 10000000 sensors in a run, got 1000000000000".into())
        );
        assert_eq!(
            parse("[[sensors]]\ncount = 9223372036854775807\n"),
            Err("c.toml: sensors[0].count: expected at most 10000000 sensors in a run, got 9223372036854775807".into())
        );
        assert_eq!(
            parse("[[sensors]]\ncount = 3\n[[sensors]]\nname = \"b\"\ncount = 9999998\n"),
            Err(
                "c.toml: sensors[1].count: expected at most 10000000 sensors in a run, got 9999998 more after 3".into()
            )
        );
        let timeout = |t: &str| {
            parse(&format!(
                "[collection]\nread_timeout = \"{t}\"\n[[sensors]]\ncount = 1\n"
            ))
        };
        assert_eq!(timeout("3650days"), Ok(()));
        assert_eq!(
            timeout("3650days 1s"),
            Err("c.toml: collection.read_timeout: expected at most 10 years, got \"3650days 1s\"".into())
        );
        assert!(timeout("300000000000y").is_err());
        let arbiters = |n: usize| parse(&format!("[runtime]\narbiters = {n}\n[[sensors]]\ncount = 1\n"));
        assert_eq!(arbiters(256), Ok(()));
        assert_eq!(
            arbiters(257),
            Err("c.toml: runtime.arbiters: expected at most 256 arbiters (threads), got 257".into())
        );
    }

    #[test]
    fn ids_follow_name_and_width() {
        let c = Config::from_toml_str(
            "[[sensors]]\nname = \"t\"\ncount = 100\n[[sensors]]\nid = \"solo\"\nkind = \"humidity\"\n",
            "c.toml",
        )
        .unwrap();
        assert_eq!(&*c.sensors[0].id, "t-001");
        assert_eq!(&*c.sensors[99].id, "t-100");
        assert_eq!(&*c.sensors[100].id, "solo");
        assert_eq!(&*c.sensors[100].unit, "%");
    }

    #[test]
    fn bad_values_name_field_and_expectation() {
        assert_eq!(
            err("[[sensors]]\ncount = 1\nlatency = [\"500ms\", \"100ms\"]\n"),
            "c.toml: sensors[0].latency: min 500ms is greater than max 100ms"
        );
        assert_eq!(
            err("[[sensors]]\ncount = 1\nerror_rate = 1.5\n"),
            "c.toml: sensors[0].error_rate: expected a probability in 0..=1, got 1.5"
        );
        assert_eq!(
            err("[collection]\n"),
            "c.toml: sensors: expected at least one [[sensors]] entry"
        );
        assert_eq!(
            err("[[sensors]]\ncount = 0\n"),
            "c.toml: sensors[0].count: expected at least 1 sensor, got 0"
        );
        assert_eq!(
            err("[collection]\ninterval = \"-1s\"\n[[sensors]]\ncount = 1\n"),
            "c.toml: collection.interval: expected a duration like \"250ms\" or \"1s\", got \"-1s\""
        );
        assert_eq!(
            err("[collection]\nread_timeout = \"soon\"\n[[sensors]]\ncount = 1\n"),
            "c.toml: collection.read_timeout: expected a duration like \"250ms\" or \"1s\", got \"soon\""
        );
        assert_eq!(
            err("[[sensors]]\nid = \"a\"\n[[sensors]]\nid = \"a\"\n"),
            "c.toml: sensors: duplicate sensor id \"a\""
        );
        assert_eq!(
            err("[[sensors]]\ndriver = \"laser\"\ncount = 1\n"),
            "c.toml: sensors[0].driver: expected one of simulated, replay, system, mqtt, got \"laser\""
        );
        assert!(err("[collection]\ninterval = 5\n[[sensors]]\ncount=1\n")
            .starts_with("c.toml: collection.interval: invalid type: integer `5`, expected a string"));
        assert_eq!(
            err("[[sensors]]\ncount = 2\nfaults = [{ round = 1, fault = \"hang\", sensor = \"temperature-3\" }]\n"),
            "c.toml: sensors[0].faults[0].sensor: expected the id of a sensor of this entry, got \"temperature-3\""
        );
        assert_eq!(
            err("[[sensors]]\ncount = 1\nfaults = [{ round = 1, fault = \"melt\" }]\n"),
            "c.toml: sensors[0].faults[0].fault: unknown variant `melt`, expected one of `panic`, `crash`, `exit`, `hang`, `fatal`, `error`, `flap`, `stuck`, `spike`, `drift`"
        );
        assert_eq!(
            err("[supervision]\nbackoff_min = \"2s\"\nbackoff_max = \"1s\"\n[[sensors]]\ncount = 1\n"),
            "c.toml: supervision.backoff_min: 2s is greater than backoff_max 1s"
        );
    }

    /// Input quoted back in an error is escaped and cut, so the error stays one short line (the
    /// cases the fuzz target `config` found, fuzz/corpus/config/crash-*).
    #[test]
    fn quoted_input_keeps_errors_on_one_line() {
        assert_eq!(
            err("[[sensors]]\ncount = 2\nfaults = [{ round = 1, fault = \"hang\", sensor = \"a\\nb\" }]\n"),
            "c.toml: sensors[0].faults[0].sensor: expected the id of a sensor of this entry, got \"a\\nb\""
        );
        assert_eq!(
            err("[[groups]]\nname = \"bus\"\n[[sensors]]\ngroup = \"b\\nus\"\n"),
            "c.toml: sensors[0].group: no [[groups]] entry is named \"b\\nus\""
        );
        assert_eq!(
            err("[collection]\ninterval = \"1s\\u0007\"\n[[sensors]]\ncount = 1\n"),
            "c.toml: collection.interval: expected a duration like \"250ms\" or \"1s\", got \"1s\\u{7}\""
        );
        assert_eq!(
            err("[[sensors]]\ndriver = \"la\\u001bser\"\n"),
            "c.toml: sensors[0].driver: expected one of simulated, replay, system, mqtt, got \"la\\u{1b}ser\""
        );
        let key = err("[collection]\n\"a\\nb\" = 1\n");
        assert!(key.starts_with("c.toml: collection.a\\nb: unknown field `a"), "{key}");
        assert!(!key.contains('\n'), "{key}");
        let long = err(&format!("[[sensors]]\ndriver = \"{}\"\n", "x".repeat(5000)));
        assert!(
            long.ends_with(&format!("got \"{}\"... (5000 characters)", "x".repeat(64))),
            "{long}"
        );
    }

    /// A fault aimed at a sensor is checked against the entry's ids by their digits
    /// (`is_sensor_id`), not by making every id: on a ten-million-sensor entry each such fault
    /// took seconds, twenty of them minutes.
    #[test]
    fn fault_targets_are_checked_against_large_entries() {
        let faults: Vec<String> = (0..20)
            .map(|i| {
                format!(
                    "{{ round = 1, fault = \"hang\", sensor = \"temperature-{:08}\" }}",
                    9_999_990 - i
                )
            })
            .chain(["{ round = 1, fault = \"hang\", sensor = \"temperature-10000001\" }".to_string()])
            .collect();
        let text = format!("[[sensors]]\ncount = 10000000\nfaults = [{}]\n", faults.join(", "));
        assert_eq!(
            err(&text),
            "c.toml: sensors[0].faults[20].sensor: expected the id of a sensor of this entry, got \"temperature-10000001\""
        );
    }

    /// Kinds, units and group names go into log lines, the table and the files as they are: at
    /// most 256 bytes, no control characters, as ids.
    #[test]
    fn kinds_units_and_group_names_are_printable() {
        assert_eq!(
            err("[[sensors]]\nkind = \"te\\nmp\"\n"),
            "c.toml: sensors[0].kind: expected a kind of at most 256 bytes without control or invisible characters, got \"te\\nmp\""
        );
        assert_eq!(
            err("[[sensors]]\nunit = \"\\u001b[31mC\"\n"),
            "c.toml: sensors[0].unit: expected a unit of at most 32 bytes without control or invisible characters, got \"\\u{1b}[31mC\""
        );
        assert_eq!(
            err("[[groups]]\nname = \"b\\u2028us\"\n[[sensors]]\ngroup = \"b\\u2028us\"\n"),
            "c.toml: groups[0].name: expected a name of at most 256 bytes without control or invisible characters, got \"b\\u{2028}us\""
        );
        assert!(err(&format!("[[sensors]]\nkind = \"{}\"\n", "k".repeat(257)))
            .starts_with("c.toml: sensors[0].kind: expected a kind of at most 256 bytes"));
    }

    #[test]
    fn overrides_per_sensor_policy() {
        let c = Config::from_toml_str(
            "[supervision]\nmax_restarts = 2\n[[sensors]]\ncount = 1\nrestart = \"transient\"\nhung_after = 7\n",
            "c.toml",
        )
        .unwrap();
        let p = &c.sensors[0].policy;
        assert_eq!(p.restart, RestartType::Transient);
        assert_eq!(p.max_restarts, 2);
        assert_eq!(p.hung_after, 7);
    }

    /// An entry given while running is validated as a file's entry, with `sensor` for its path
    /// and the run's sensors counted against the bound on a run's.
    #[test]
    fn an_added_entry_is_validated_as_a_file_entry() {
        use super::validate_entry;
        use crate::config::{Directive, FailureKind, MAX_SENSORS};
        use crate::driver::DriverRegistry;
        // The run's configuration: its `[supervision]` defaults and its groups, one with
        // directives of its own.
        let run = Config::from_toml_str(
            "[supervision]\nmax_restarts = 9\n[[groups]]\nname = \"bus\"\ndirectives = { hung = \"stop\" }\n\
             [[sensors]]\ncount = 1\n",
            "run.toml",
        )
        .unwrap();
        let (defaults, groups) = (run.supervision, run.groups);
        let add = |text: &str, before: usize| {
            let table: toml::Table = text.parse().unwrap();
            validate_entry(table, "mqtt", &defaults, &groups, &DriverRegistry::builtin(), before)
                .map_err(|e| e.to_string())
        };
        let specs = add("name = \"b\"\ncount = 2\ngroup = \"bus\"\nhung_after = 2\n", 10).unwrap();
        let ids: Vec<&str> = specs.iter().map(|s| &*s.id).collect();
        assert_eq!(ids, ["b-1", "b-2"]);
        assert_eq!(specs[0].group.as_deref(), Some("bus"));
        assert_eq!((specs[0].policy.max_restarts, specs[0].policy.hung_after), (9, 2));
        assert_eq!(specs[0].policy.directives.get(FailureKind::Hung), Directive::Stop);
        assert_eq!(specs[0].policy.directives.get(FailureKind::Panic), Directive::Restart);
        assert_eq!(
            add("latency = [\"500ms\", \"100ms\"]\n", 0).unwrap_err(),
            ("mqtt: sensor.latency: min 500ms is greater than max 100ms".to_string())
        );
        assert_eq!(
            add("group = \"nope\"\n", 0).unwrap_err(),
            ("mqtt: sensor.group: no [[groups]] entry is named \"nope\"".to_string())
        );
        assert_eq!(
            add("count = 3\n", MAX_SENSORS - 2).unwrap_err(),
            (format!(
                "mqtt: sensor.count: expected at most {MAX_SENSORS} sensors in a run, got 3 more after {}",
                MAX_SENSORS - 2
            ))
        );
        assert!(add("count = 2\n", MAX_SENSORS - 2).is_ok());
    }
}
