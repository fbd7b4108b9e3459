//! The detectors a configuration can name: the built-in ones and those registered from
//! outside the crate.

/// Detectors by name.
#[derive(Debug, Clone, Default)]
pub struct DetectorRegistry {}

impl DetectorRegistry {
    /// The built-in detectors.
    pub fn builtin() -> Self {
        DetectorRegistry {}
    }
}
