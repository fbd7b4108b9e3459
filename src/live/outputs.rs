//! [`OutputCounts`]: what an output that delivers on its own (the MQTT output) tells the live
//! view, shown in `/metrics` as `sensor_actors_output_messages_total{output, stream, outcome}`.

use actix::{Context, Handler, Message};

use super::LiveView;

/// An output's totals so far, per stream and outcome (`produced`, `published`, `dropped`,
/// `too_large`, `unsent` for the MQTT output); each is a running total, sent as often as the
/// output likes (the MQTT output: after every round and at its end).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
#[non_exhaustive]
pub struct OutputCounts {
    /// The output's name (`mqtt`).
    pub output: String,
    /// (stream, outcome, total) triples.
    pub totals: Vec<(String, String, u64)>,
}

impl OutputCounts {
    /// The totals of `output`.
    pub fn new(output: impl Into<String>, totals: Vec<(String, String, u64)>) -> Self {
        OutputCounts {
            output: output.into(),
            totals,
        }
    }
}

impl Handler<OutputCounts> for LiveView {
    type Result = ();

    fn handle(&mut self, counts: OutputCounts, _ctx: &mut Context<Self>) {
        self.metrics.output_totals(&counts.output, &counts.totals);
    }
}
