//! The detectors a configuration can name: the built-in ones and those registered from outside
//! the crate, each under its name.
//!
//! A [`DetectorFactory`] turns the detector's `[analysis.<name>]` table into its settings; the
//! registry keeps the factories in registration order, the order in which the detectors run on
//! each observation (the built-ins first: `out_of_range`, `spike`, `rate`, `stuck`, `stale`).
//! Validating `[analysis]` gives each enabled detector its settings once for the run (in
//! [`AnalysisConfig`](super::AnalysisConfig)); each group's `Tracks` then keeps one column per
//! enabled detector (`Column<D>` behind the object-safe `DetectorColumn`): the settings
//! (shared) and every member's state in one `Vec`, so a detector costs its state's bytes per
//! sensor (none for a stateless one) and one dynamic call per observation.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::{out_of_range, rate, spike, stale, stuck};
use super::{Detector, Observation};
use crate::parse::{from_table, ConfigError};

/// Makes a detector's settings from its `[analysis.<name>]` table; registered by name on a
/// [`Collector`](crate::Collector) (or, inside the crate, in [`DetectorRegistry::builtin`]).
///
/// The table reaches [`settings`](DetectorFactory::settings) without its `enabled` key, which is
/// handled the same way for every detector; when the table is absent the detector runs with
/// [`defaults`](DetectorFactory::defaults).
///
/// ```
/// use sensor_actors::analysis::{Detector, DetectorFactory, Observation, SettingsTable};
/// use sensor_actors::ConfigError;
///
/// /// Fires on a reading above `limit`.
/// #[derive(Default)]
/// struct Above;
///
/// #[derive(Debug, PartialEq)]
/// struct Limit(f64);
///
/// impl Detector for Above {
///     type Settings = Limit;
///     fn observe(&mut self, limit: &Limit, obs: &mut Observation<'_>) -> Option<String> {
///         let value = obs.value?;
///         (value > limit.0).then(|| format!("value {value} above {}", limit.0))
///     }
/// }
///
/// #[derive(serde::Deserialize)]
/// #[serde(deny_unknown_fields)]
/// struct Raw {
///     limit: Option<f64>,
/// }
///
/// struct AboveFactory;
///
/// impl DetectorFactory for AboveFactory {
///     type Detector = Above;
///     fn defaults(&self) -> Limit {
///         Limit(100.0)
///     }
///     fn settings(&self, table: SettingsTable<'_>) -> Result<Limit, ConfigError> {
///         let limit = table.field("limit");
///         let raw: Raw = table.parse()?;
///         match raw.limit {
///             Some(l) if !l.is_finite() => Err(limit.error(format!("expected a finite number, got {l}"))),
///             Some(l) => Ok(Limit(l)),
///             None => Ok(self.defaults()),
///         }
///     }
/// }
///
/// let collector = sensor_actors::Collector::new().detector("above", AboveFactory);
/// let config = collector.parse("[analysis.above]\nlimit = 50.0\n[[sensors]]\ncount = 2\n", "sensors.toml")?;
/// assert!(config.analysis.detectors().any(|name| name == "above"));
/// # Ok::<(), ConfigError>(())
/// ```
pub trait DetectorFactory: Send + Sync + 'static {
    /// The detector: its per-sensor state, and through it the type of its settings.
    type Detector: Detector;

    /// The settings when the configuration has no `[analysis.<name>]` table.
    fn defaults(&self) -> <Self::Detector as Detector>::Settings;

    /// Validates `[analysis.<name>]` (without `enabled`). Errors name the field and say what
    /// was expected ([`SettingsTable::parse`], [`Field::error`]).
    fn settings(&self, table: SettingsTable<'_>) -> Result<<Self::Detector as Detector>::Settings, ConfigError>;
}

/// A detector's `[analysis.<name>]` table, with what its validation may need: where it comes
/// from and the run's window size.
#[derive(Debug)]
pub struct SettingsTable<'a> {
    table: toml::Table,
    origin: &'a str,
    name: &'a str,
    window: usize,
}

impl<'a> SettingsTable<'a> {
    /// The table's keys (`enabled` taken out).
    pub fn table(&self) -> &toml::Table {
        &self.table
    }

    /// The configuration's name (its file name), as errors start with it.
    pub fn origin(&self) -> &'a str {
        self.origin
    }

    /// The detector's registered name.
    pub fn name(&self) -> &'a str {
        self.name
    }

    /// `[analysis] window`: how many recent values each sensor's window holds
    /// ([`Observation::window`]).
    pub fn window(&self) -> usize {
        self.window
    }

    /// Key `key` of the table, to name it in an error: `analysis.<name>.<key>`.
    pub fn field(&self, key: &str) -> Field {
        Field {
            origin: self.origin.to_string(),
            path: format!("analysis.{}.{key}", self.name),
        }
    }

    /// Deserializes the table into the detector's raw settings `R` (give it
    /// `#[serde(deny_unknown_fields)]`); a wrong type or an unknown key is an error naming it,
    /// `file: analysis.<name>.<key>: ...`.
    pub fn parse<R: DeserializeOwned>(self) -> Result<R, ConfigError> {
        from_table(self.table, self.origin, &format!("analysis.{}", self.name))
    }
}

/// One field of a configuration, to report an error about it.
#[derive(Debug, Clone)]
pub struct Field {
    origin: String,
    path: String,
}

impl Field {
    /// The error `file: analysis.<name>.<key>: <expectation>`, such as `expected a number above
    /// 0, got -1`.
    pub fn error(&self, expectation: impl Into<String>) -> ConfigError {
        ConfigError::new(&self.origin, self.path.clone(), expectation)
    }
}

/// The factory behind the registry's type erasure: settings in, a configured detector out.
trait AnyFactory: Send + Sync {
    fn defaults(&self) -> Arc<dyn Configured>;
    fn settings(&self, table: SettingsTable<'_>) -> Result<Arc<dyn Configured>, ConfigError>;
}

impl<F: DetectorFactory> AnyFactory for F {
    fn defaults(&self) -> Arc<dyn Configured> {
        Arc::new(RunSettings::<F::Detector>(Arc::new(DetectorFactory::defaults(self))))
    }

    fn settings(&self, table: SettingsTable<'_>) -> Result<Arc<dyn Configured>, ConfigError> {
        let settings = DetectorFactory::settings(self, table)?;
        Ok(Arc::new(RunSettings::<F::Detector>(Arc::new(settings))))
    }
}

/// One registered detector.
#[derive(Clone)]
struct Entry {
    name: Arc<str>,
    factory: Arc<dyn AnyFactory>,
}

/// Detectors by name, in registration order (the order they run in).
#[derive(Clone)]
pub struct DetectorRegistry {
    entries: Vec<Entry>,
}

impl fmt::Debug for DetectorRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl Default for DetectorRegistry {
    /// The built-in detectors.
    fn default() -> Self {
        DetectorRegistry::builtin()
    }
}

/// Keys of `[analysis]` itself, which no detector may be named.
pub(crate) const ANALYSIS_KEYS: [&str; 2] = ["window", "ewma_alpha"];

impl DetectorRegistry {
    /// The built-in detectors, one line each, in the order they run.
    pub fn builtin() -> Self {
        let mut registry = DetectorRegistry { entries: Vec::new() };
        registry.register("out_of_range", out_of_range::Factory);
        registry.register("spike", spike::Factory);
        registry.register("rate", rate::Factory);
        registry.register("stuck", stuck::Factory);
        registry.register("stale", stale::Factory);
        registry
    }

    /// Registers `factory` as detector `name`, run after those registered before it.
    ///
    /// # Panics
    ///
    /// When `name` is already registered, is `window` or `ewma_alpha` (keys of `[analysis]`), or
    /// is not a bare TOML key (ASCII letters, digits, `_` and `-`, not empty): a mistake in the
    /// program, not in its input.
    pub fn register(&mut self, name: &str, factory: impl DetectorFactory) {
        let bare = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        assert!(
            bare,
            "detector name {name:?}: expected ASCII letters, digits, `_` or `-`"
        );
        assert!(
            !ANALYSIS_KEYS.contains(&name),
            "detector name {name:?}: `[analysis] {name}` is a setting of the analysis itself"
        );
        assert!(
            self.get(name).is_none(),
            "detector name {name:?}: a detector of that name is already registered"
        );
        self.entries.push(Entry {
            name: name.into(),
            factory: Arc::new(factory),
        });
    }

    /// The registered names, in the order the detectors run.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| &*e.name)
    }

    fn get(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| &*e.name == name)
    }

    /// Every detector's settings from the tables of `[analysis]` (`take(name)` hands over the
    /// value of key `name`, if any), in registration order; disabled ones left out.
    pub(crate) fn configure(
        &self,
        origin: &str,
        window: usize,
        mut take: impl FnMut(&str) -> Option<toml::Value>,
    ) -> Result<Vec<EnabledDetector>, ConfigError> {
        let mut enabled = Vec::with_capacity(self.entries.len());
        for entry in &self.entries {
            let name = &*entry.name;
            let configured = match take(name) {
                None => entry.factory.defaults(),
                Some(toml::Value::Table(mut table)) => {
                    let on = match table.remove("enabled") {
                        None => true,
                        Some(toml::Value::Boolean(on)) => on,
                        Some(other) => {
                            return Err(ConfigError::new(
                                origin,
                                format!("analysis.{name}.enabled"),
                                format!("expected true or false, got {other}"),
                            ))
                        }
                    };
                    let table = SettingsTable {
                        table,
                        origin,
                        name,
                        window,
                    };
                    let configured = entry.factory.settings(table).map_err(|mut e| {
                        if e.message.starts_with("unknown field") {
                            e.message.push_str(", or `enabled`");
                        }
                        e
                    })?;
                    if !on {
                        continue;
                    }
                    configured
                }
                Some(other) => {
                    return Err(ConfigError::new(
                        origin,
                        format!("analysis.{name}"),
                        format!("expected a table of the detector's settings, got {other}"),
                    ))
                }
            };
            enabled.push(EnabledDetector {
                name: entry.name.clone(),
                configured,
            });
        }
        Ok(enabled)
    }

    /// The error for key `key` of `[analysis]` that is neither a setting of the analysis nor a
    /// registered detector.
    pub(crate) fn unknown(&self, origin: &str, key: &str, value: &toml::Value) -> ConfigError {
        let names = self.names().collect::<Vec<_>>().join(", ");
        let message = if value.is_table() {
            format!("unknown detector, expected one of {names}")
        } else {
            format!("unknown field, expected window, ewma_alpha or a detector's table (one of {names})")
        };
        ConfigError::new(origin, format!("analysis.{key}"), message)
    }
}

/// A detector enabled for a run, with its settings.
#[derive(Clone)]
pub(crate) struct EnabledDetector {
    /// Its registered name; findings share it.
    pub(crate) name: Arc<str>,
    pub(crate) configured: Arc<dyn Configured>,
}

impl fmt::Debug for EnabledDetector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {:?}", self.name, self.configured)
    }
}

impl PartialEq for EnabledDetector {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.configured.same(&*other.configured)
    }
}

/// A detector's settings for one run, whatever its type.
pub(crate) trait Configured: Send + Sync + fmt::Debug {
    /// The detector's state for `members` sensors, sharing these settings.
    fn column(&self, members: usize) -> Box<dyn DetectorColumn>;
    /// The settings, to be downcast.
    fn settings(&self) -> &dyn Any;
    /// Whether `other` holds the same detector with equal settings.
    fn same(&self, other: &dyn Configured) -> bool;
}

/// The settings of detector `D`, kept once per run.
struct RunSettings<D: Detector>(Arc<D::Settings>);

impl<D: Detector> fmt::Debug for RunSettings<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<D: Detector> Configured for RunSettings<D> {
    fn column(&self, members: usize) -> Box<dyn DetectorColumn> {
        Box::new(Column::<D> {
            settings: self.0.clone(),
            states: (0..members).map(|_| D::default()).collect(),
        })
    }

    fn settings(&self) -> &dyn Any {
        &*self.0
    }

    fn same(&self, other: &dyn Configured) -> bool {
        other.settings().downcast_ref::<D::Settings>() == Some(&*self.0)
    }
}

/// One detector over the members of a group's `Tracks`.
pub(crate) trait DetectorColumn: Send + fmt::Debug {
    /// Passes member `member`'s observation to its detector; the detail of an anomaly found.
    fn observe(&mut self, member: usize, obs: &mut Observation<'_>) -> Option<String>;
    /// Makes room for `members` members in all, the new ones with a fresh state (sensors added
    /// while the run goes on).
    fn grow(&mut self, members: usize);
}

/// Detector `D` over a group's members: its settings once, every member's state in one `Vec`
/// (no allocation at all for a stateless detector).
struct Column<D: Detector> {
    settings: Arc<D::Settings>,
    states: Vec<D>,
}

impl<D: Detector> fmt::Debug for Column<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Column")
            .field("settings", &self.settings)
            .field("members", &self.states.len())
            .finish()
    }
}

impl<D: Detector> DetectorColumn for Column<D> {
    fn observe(&mut self, member: usize, obs: &mut Observation<'_>) -> Option<String> {
        self.states[member].observe(&self.settings, obs)
    }

    fn grow(&mut self, members: usize) {
        if members > self.states.len() {
            self.states.resize_with(members, D::default);
        }
    }
}
