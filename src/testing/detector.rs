//! Helpers to exercise an anomaly detector on a series of values.
