//! An output written outside the crate: every reading appended to a CSV file, through the
//! public API.
//!
//! Run it with `cargo run --example custom_sink` (about 2 seconds); it writes
//! `target/custom_sink/readings.csv`.
//!
//! `CsvReadings` is an actix actor that handles [`Readings`] (each round's successful readings,
//! shared with every other subscriber, never copied for it) and writes them with the `csv`
//! crate; [`RunSummary`] tells it the run is over, so it flushes. It is attached as a lossless
//! sink, the way the built-in JSONL files are: it misses nothing, and if it falls behind the
//! collector holds back the next round's report (and so the rounds) rather than queueing without
//! bound.
//!
//! Look for: the line count printed at the end, equal to the summary's `ok` readings.

use std::fs::File;

use actix::prelude::*;
use sensor_actors::streams::{Delivery, Readings, RunSummary};
use sensor_actors::Collector;

const CONFIG: &str = r#"
[collection]
interval = "200ms"
read_timeout = "150ms"
rounds = 10
seed = 5

[[sensors]]
kind = "humidity"
count = 8
latency = ["5ms", "100ms"]
error_rate = 0.1
"#;

/// Appends readings to a CSV file.
struct CsvReadings {
    writer: csv::Writer<File>,
    rows: u64,
}

impl Actor for CsvReadings {
    type Context = Context<Self>;
}

impl Handler<Readings> for CsvReadings {
    type Result = ();

    fn handle(&mut self, round: Readings, _ctx: &mut Context<Self>) {
        for r in round.iter() {
            let row = [
                round.round().to_string(),
                r.sensor().to_string(),
                r.reading.value.to_string(),
                r.unit.to_string(),
                r.reading.timestamp.to_rfc3339(),
            ];
            match self.writer.write_record(&row) {
                Ok(()) => self.rows += 1,
                Err(e) => log::error!("readings.csv: {e}"),
            }
        }
    }
}

impl Handler<RunSummary> for CsvReadings {
    type Result = ();

    fn handle(&mut self, _end: RunSummary, _ctx: &mut Context<Self>) {
        if let Err(e) = self.writer.flush() {
            log::error!("readings.csv: {e}");
        }
    }
}

/// How many rows were written.
#[derive(Message)]
#[rtype(result = "u64")]
struct Rows;

impl Handler<Rows> for CsvReadings {
    type Result = u64;

    fn handle(&mut self, _msg: Rows, _ctx: &mut Context<Self>) -> u64 {
        self.rows
    }
}

#[actix_rt::main]
async fn main() -> anyhow::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/custom_sink");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("readings.csv");
    let mut writer = csv::Writer::from_path(&path)?;
    writer.write_record(["round", "sensor", "value", "unit", "timestamp"])?;
    let sink = CsvReadings { writer, rows: 0 }.start();
    let collector = Collector::new()
        .subscribe_with(
            sink.clone().recipient::<Readings>(),
            Delivery::lossless().named("readings.csv"),
        )
        .subscribe_with(
            sink.clone().recipient::<RunSummary>(),
            Delivery::lossless().named("readings.csv"),
        );
    let config = collector.parse(CONFIG, "custom_sink.toml")?;
    let summary = collector.run(config, std::future::pending()).await?;
    let rows = sink.send(Rows).await?;
    println!(
        "{}: {rows} readings written; the run had {} ok of {} requested",
        path.display(),
        summary.reads.ok,
        summary.reads.requested
    );
    anyhow::ensure!(rows == summary.reads.ok, "every reading is written");
    Ok(())
}
