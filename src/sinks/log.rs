//! [`RoundLog`]: the per-round log line, a sink of the round summaries like any user's.

use actix::{Actor, Context, Handler};

use crate::streams::RoundSummary;

/// Logs one line per round at info level:
/// `round 2: 18 ok, 2 failed, 0 timed out, 0 unavailable in 479.9 ms; 0 anomalies; rss 10.3 MiB, cpu 0.01 s`.
///
/// ```no_run
/// use actix::Actor;
/// use sensor_actors::sinks::RoundLog;
/// use sensor_actors::streams::{Delivery, RoundSummary};
/// use sensor_actors::Collector;
///
/// # fn demo() {
/// let log = RoundLog.start();
/// let collector = Collector::new().subscribe_with(log.recipient::<RoundSummary>(), Delivery::lossless().named("log"));
/// # }
/// ```
#[derive(Debug, Default)]
pub struct RoundLog;

impl Actor for RoundLog {
    type Context = Context<Self>;
}

impl Handler<RoundSummary> for RoundLog {
    type Result = ();

    fn handle(&mut self, s: RoundSummary, _ctx: &mut Context<Self>) {
        let r = &s.reads;
        let skipped = if s.skipped_before > 0 {
            format!(" ({} ticks skipped before)", s.skipped_before)
        } else {
            String::new()
        };
        log::info!(
            "round {}: {} ok, {} failed, {} timed out, {} unavailable in {:.1} ms{skipped}; {} anomalies; rss {:.1} MiB, cpu {:.2} s",
            s.round,
            r.ok,
            r.failed,
            r.timed_out,
            r.unavailable,
            s.wall.as_secs_f64() * 1000.0,
            s.anomalies,
            s.process.peak_rss_bytes as f64 / (1024.0 * 1024.0),
            s.process.cpu_seconds,
        );
    }
}
