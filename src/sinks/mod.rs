//! The built-in sinks: subscribers of the streams like any user's actor, attached through
//! [`Collector::subscribe_with`](crate::Collector::subscribe_with).
//!
//! - [`JsonlFiles`]: `readings.jsonl` (or `readings.csv`, [`ReadingsFormat`]),
//!   `anomalies.jsonl`, `events.jsonl` and `summary.json` under `--out DIR`;
//! - [`RoundLog`]: the per-round log line;
//! - [`MqttOutput`]: every stream as JSON messages to an MQTT broker (`[outputs.mqtt]`).
//!
//! The summary table is printed by the binary from the [`Summary`](crate::Summary) the run returns.

mod behind;
mod durable;
mod jsonl;
mod log;
mod mqtt;

pub use self::log::RoundLog;
pub use crate::config::ReadingsFormat;
pub use behind::wait_for_written;
pub(crate) use jsonl::csv_field;
pub use jsonl::{rfc3339, AnomalyLine, EventLine, JsonlFiles, OutputError, ReadingLine, TakeOutputError};
pub use mqtt::{Finish, LinkEvent, MqttOutput, MqttStats, Stats, StreamCounts};
