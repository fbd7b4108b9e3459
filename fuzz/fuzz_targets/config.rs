//! Fuzz target `config`: the input is a configuration file (`fuzz/src/checks.rs`, [`config`]).
//! `cargo fuzz run --sanitizer none config` (docs/reliability.md).

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use sensor_actors_fuzz::checks;
use sensor_actors_fuzz::limit::Limited;

#[global_allocator]
static ALLOCATOR: Limited = Limited;

fuzz_target!(|data: &[u8]| {
    checks::config(data, &Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures"));
});
