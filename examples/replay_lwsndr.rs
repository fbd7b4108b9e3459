//! Replays the LWSNDR multi-hop motes (real TelosB recordings, two of them deliberately heated)
//! and prints what the default detectors caught against the labels.
//!
//! ```text
//! cargo run --release --example replay_lwsndr
//! ```
//!
//! `examples/replay_lwsndr.toml` makes one sensor per mote through `id_column` and replays the
//! temperature column with rounds back to back. Look for: both heated motes (1 and 3) flagged
//! inside their labelled rows, and the anomalies elsewhere per 1,000 readings. The outputs are
//! left in `target/replay_lwsndr/`.

#[path = "common/labels.rs"]
mod labels;

use std::path::Path;

fn main() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = sensor_actors::Config::load(&root.join("examples/replay_lwsndr.toml"))?;
    let out = root.join("target/replay_lwsndr");
    let options = sensor_actors::RunOptions { out: Some(out.clone()) };
    let summary = actix_rt::System::new().block_on(sensor_actors::run(config, options, std::future::pending()))?;
    let events = labels::lwsndr_events(&root.join("tests/data/lwsndr/multi_hop.csv"), "mote-");
    let anomalies = labels::read_anomalies(&out.join("anomalies.jsonl"));
    let score = labels::score(&events, &anomalies, summary.reads.ok);
    print!("{}", score.render());
    for a in &score.outside {
        println!(
            "  outside: {} row {} {}: {}",
            a.sensor,
            a.source_row.unwrap_or(0),
            a.detector,
            a.detail
        );
    }
    Ok(())
}
