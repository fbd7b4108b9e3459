//! What a row of `readings.csv` costs to format, by hand and with the `csv` crate, beside the
//! JSON line of the same reading.
//!
//! `cargo bench --bench csv_rows [-- ROWS]` (default 1,000,000 rows) formats the same readings
//! into one buffer three ways, as the files writer does (each row appended to the buffer of
//! whole lines that `LineWriter` hands to the file), and prints nanoseconds per row and bytes
//! per row for each, best of five passes:
//!
//! - `write_csv`: `ReadingLine::write_csv`, fields appended straight to the buffer (what the
//!   files writer uses);
//! - `csv crate`: a `csv::Writer` kept for the run, each row written with `write_record` (the
//!   numbers formatted as JSON has them first) and copied from its buffer into the line buffer,
//!   so that the line buffer still holds whole rows only;
//! - `json`: `serde_json::to_writer` of the `ReadingLine`, the `readings.jsonl` line.

use std::hint::black_box;
use std::time::Instant;

use sensor_actors::sinks::ReadingLine;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Rows gathered before the buffer is emptied (as a `LineWriter` chunk is handed to the file).
const CHUNK: usize = 1 << 16;

/// What the `csv` writer writes to: a buffer the row is taken from once it is flushed.
#[derive(Clone, Default)]
struct Shared(std::rc::Rc<std::cell::RefCell<Vec<u8>>>);

impl std::io::Write for Shared {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn main() {
    let rows: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let ids: Vec<String> = (1..=1000).map(|i| format!("temperature-{i:07}")).collect();
    let timestamp = "2026-11-24T14:42:43.037Z".to_string();
    let line = |i: usize| ReadingLine {
        round: 1 + (i / 1000) as u64,
        sensor: &ids[i % 1000],
        kind: "temperature",
        value: 20.0 + (i as f64).sqrt().fract() * 10.0,
        unit: "C",
        timestamp: timestamp.clone(),
        latency_ms: (100_000 + (i * 7919) % 400_000) as f64 / 1000.0,
        source_row: None,
        source_time: None,
    };

    let mut buffer: Vec<u8> = Vec::with_capacity(CHUNK * 2);
    let mut pass = |name: &str, format: &mut dyn FnMut(&ReadingLine<'_>, &mut Vec<u8>)| {
        let mut best = f64::MAX;
        let mut bytes = 0;
        for _ in 0..5 {
            bytes = 0;
            let start = Instant::now();
            for i in 0..rows {
                format(&line(i), &mut buffer);
                buffer.push(b'\n');
                if buffer.len() >= CHUNK {
                    bytes += buffer.len();
                    black_box(&buffer);
                    buffer.clear();
                }
            }
            bytes += buffer.len();
            buffer.clear();
            best = best.min(start.elapsed().as_secs_f64());
        }
        println!(
            "{name:>10}: {:6.1} ns/row, {:5.1} bytes/row",
            best * 1e9 / rows as f64,
            bytes as f64 / rows as f64
        );
    };

    pass("write_csv", &mut |line, buffer| line.write_csv(buffer).unwrap());

    let written = Shared::default();
    let mut writer = csv::WriterBuilder::new().from_writer(written.clone());
    let mut numbers: Vec<u8> = Vec::with_capacity(64);
    pass("csv crate", &mut |line, buffer| {
        // The numbers in JSON's text (ryu's shortest form, as serde_json writes them).
        numbers.clear();
        serde_json::to_writer(&mut numbers, &line.round).unwrap();
        let round = numbers.len();
        serde_json::to_writer(&mut numbers, &line.value).unwrap();
        let value = numbers.len();
        serde_json::to_writer(&mut numbers, &line.latency_ms).unwrap();
        let record: [&[u8]; 9] = [
            &numbers[..round],
            line.sensor.as_bytes(),
            line.kind.as_bytes(),
            &numbers[round..value],
            line.unit.as_bytes(),
            line.timestamp.as_bytes(),
            &numbers[value..],
            b"",
            b"",
        ];
        writer.write_record(record).unwrap();
        writer.flush().unwrap();
        // Its terminator left out; the caller adds the line's own.
        let mut row = written.0.borrow_mut();
        buffer.extend_from_slice(&row[..row.len() - 1]);
        row.clear();
    });

    pass("json", &mut |line, buffer| serde_json::to_writer(buffer, line).unwrap());
}
