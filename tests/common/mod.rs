//! Shared helpers of the integration tests: a scripted driver whose every read (latency and
//! result) is a function of the sensor's index and the round, a log of when each read started in
//! (virtual) time, and readers for the output files.

#![allow(dead_code)]

pub mod flaky;

use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sensor_actors::config::Config;
use sensor_actors::driver::{Driver, DriverBuild, DriverContext, DriverSpec, ReadError, ReadFuture, Sample};
use sensor_actors::{run, RunOptions, Summary};
use tokio::time::Instant;

/// What one scripted read does.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// How long the read takes.
    pub latency: Duration,
    /// What it answers.
    pub result: Result<Sample, ReadError>,
}

impl Step {
    /// A read answering `value` after `latency`.
    pub fn ok(latency: Duration, value: f64) -> Step {
        Step {
            latency,
            result: Ok(Sample::value(value)),
        }
    }

    /// A read answering `error` after `latency`.
    pub fn err(latency: Duration, error: ReadError) -> Step {
        Step {
            latency,
            result: Err(error),
        }
    }
}

/// One read as the driver saw it: which sensor, which round, when it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadStart {
    pub index: usize,
    pub round: u64,
    pub at: Instant,
}

type Script = dyn Fn(usize, u64) -> Step + Send + Sync;

/// A driver spec whose reads follow `script(sensor index, round)`.
#[derive(Clone)]
pub struct Scripted {
    script: Arc<Script>,
    /// Every read started, in order.
    pub starts: Arc<Mutex<Vec<ReadStart>>>,
}

impl fmt::Debug for Scripted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Scripted")
    }
}

impl Scripted {
    pub fn new(script: impl Fn(usize, u64) -> Step + Send + Sync + 'static) -> Scripted {
        Scripted {
            script: Arc::new(script),
            starts: Arc::default(),
        }
    }

    /// The rounds' read starts, as offsets from `t0`, for sensor `index`.
    pub fn start_offsets(&self, index: usize, t0: Instant) -> Vec<(u64, Duration)> {
        self.starts
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.index == index)
            .map(|s| (s.round, s.at - t0))
            .collect()
    }

    /// Replaces the driver of every sensor of `config` with this script.
    pub fn install(&self, config: &mut Config) {
        let driver: Arc<dyn DriverSpec> = Arc::new(self.clone());
        for spec in &mut config.sensors {
            spec.driver = driver.clone();
        }
    }
}

impl DriverSpec for Scripted {
    fn build(&self, ctx: &DriverContext) -> DriverBuild {
        DriverBuild::driver(ScriptedDriver {
            index: ctx.index,
            script: self.script.clone(),
            starts: self.starts.clone(),
        })
    }
}

struct ScriptedDriver {
    index: usize,
    script: Arc<Script>,
    starts: Arc<Mutex<Vec<ReadStart>>>,
}

impl Driver for ScriptedDriver {
    fn read(&mut self, round: u64) -> ReadFuture {
        self.starts.lock().unwrap().push(ReadStart {
            index: self.index,
            round,
            at: Instant::now(),
        });
        let step = (self.script)(self.index, round);
        ReadFuture::new(async move {
            tokio::time::sleep(step.latency).await;
            step.result
        })
    }
}

/// A configuration of `count` sensors under `collection` (the body of a `[collection]` table) and
/// `extra` (more TOML sections).
pub fn config(count: usize, collection: &str, extra: &str) -> Config {
    let text = format!("[collection]\n{collection}\n{extra}\n[[sensors]]\nkind = \"temperature\"\ncount = {count}\n");
    Config::from_toml_str(&text, "test.toml").unwrap()
}

/// Runs `config` to its end (no outside shutdown), writing to `out` when given.
pub async fn run_to_end(config: Config, out: Option<&Path>) -> Summary {
    let options = RunOptions {
        out: out.map(Path::to_path_buf),
    };
    run(config, options, std::future::pending()).await.unwrap()
}

/// The JSON objects of a `.jsonl` file.
pub fn read_jsonl(path: &Path) -> Vec<serde_json::Value> {
    read_lines(path)
}

/// The lines of a `.jsonl` file, each as a `T`.
pub fn read_lines<T: serde::de::DeserializeOwned>(path: &Path) -> Vec<T> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// `summary.json` of `dir`.
pub fn read_summary(dir: &Path) -> Summary {
    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap()
}

/// `(round, sensor, value)` of every line of `readings.jsonl` in `dir`.
pub fn readings(dir: &Path) -> Vec<(u64, String, f64)> {
    read_jsonl(&dir.join("readings.jsonl"))
        .iter()
        .map(|l| {
            (
                l["round"].as_u64().unwrap(),
                l["sensor"].as_str().unwrap().to_string(),
                l["value"].as_f64().unwrap(),
            )
        })
        .collect()
}

/// tokio's timer resolution: on the paused clock a sleep of `d` ends `d` plus at most this late
/// (deadlines are rounded up to the timer's next millisecond tick).
pub const TIMER_TICK: Duration = Duration::from_millis(1);

/// Whether `actual` is `expected`, up to one timer tick late.
pub fn on_time(actual: Duration, expected: Duration) -> bool {
    actual >= expected && actual <= expected + TIMER_TICK
}

/// Milliseconds.
pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
