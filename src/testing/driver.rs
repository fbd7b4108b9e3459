//! Conformance checks for sensor drivers.
