//! Fuzz target `replay`: the input is a CSV file for the replay driver (`fuzz/src/checks.rs`,
//! [`replay`]). `cargo fuzz run --sanitizer none replay` (docs/reliability.md).

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sensor_actors_fuzz::checks;
use sensor_actors_fuzz::limit::Limited;

#[global_allocator]
static ALLOCATOR: Limited = Limited;

/// The folder the input is written into (as `fuzz.csv`), made once per process in the temp
/// folder; libFuzzer exits without dropping anything, so it stays there (`fuzz/run` points
/// `TMPDIR` at a folder of its own, which it removes).
static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let dir = DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("sensor-actors-fuzz-replay-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("the fuzz folder can be made");
        dir
    });
    checks::replay(data, dir);
});
