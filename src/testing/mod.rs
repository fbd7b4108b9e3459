//! Test helpers for code written outside the crate: the conformance checks every sensor driver
//! must pass ([`driver`]) and helpers to exercise a detector ([`detector`]), the same ones the
//! built-in drivers and detectors are tested with.

pub mod detector;
pub mod driver;
