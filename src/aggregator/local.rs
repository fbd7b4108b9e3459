//! `LocalAggregator`: the analysis of the groups of one arbiter, beside them on that arbiter.
//!
//! Supervisors read and supervise; aggregators analyse. Each arbiter that runs groups runs one
//! local aggregator, which keeps the [`Tracks`] of each of its groups (every member's statistics,
//! rolling window, EWMA and detectors' state). When a group has read a round it hands the
//! round's outcomes over ([`Analyse`]); the local aggregator passes each member's outcome to its
//! track, in member order, and answers with the round's [`RoundDigest`] (read counts, reading
//! latencies, anomalies) and the outcome vector itself, which the group passes on (when someone
//! subscribed to the readings) or keeps for its next round. Both actors share the arbiter's
//! thread, so the hand-over costs a message, not a copy, and no lock.
//!
//! The tracks belong to the group's slot, not to the group's actor: when the root restarts a
//! group actor that stopped, its members' statistics and detectors carry on. At the end of the
//! run the root asks each local aggregator for its groups' per-sensor results ([`ReportTracks`]).
//!
//! A detector that panics (a bug in a registered detector) is caught here: the round's outcomes
//! are still counted, the panic is logged, and the analysis goes on with the next outcome.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use actix::{Actor, Context, Handler, Message, MessageResult};

use crate::analysis::tracks::{RoundDigest, TrackSummary, Tracks};
use crate::analysis::AnalysisConfig;
use crate::config::SensorTable;
use crate::data::Outcome;
use crate::panic::{panic_message, quietly};

/// Asks for the analysis of one group's round.
#[derive(Debug, Message)]
#[rtype(result = "Analysed")]
pub(crate) struct Analyse {
    /// The group's slot among the root's groups.
    pub(crate) group: usize,
    /// The round.
    pub(crate) round: u64,
    /// One outcome per member, in member order.
    pub(crate) outcomes: Vec<Outcome>,
}

/// The answer to [`Analyse`].
#[derive(Debug, actix::MessageResponse)]
pub(crate) struct Analysed {
    /// What the analysis of the round found.
    pub(crate) digest: RoundDigest,
    /// The outcomes, handed back.
    pub(crate) outcomes: Vec<Outcome>,
}

/// Asks for the per-sensor results of one group, in member order.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Vec<TrackSummary>")]
pub(crate) struct ReportTracks {
    /// The group's slot.
    pub(crate) group: usize,
}

/// What a local aggregator keeps of one group.
struct GroupTracks {
    /// The members, as indices into the run's sensors, in member order.
    members: Arc<[usize]>,
    tracks: Tracks,
}

/// The aggregator of one arbiter's groups.
pub(crate) struct LocalAggregator {
    sensors: Arc<SensorTable>,
    /// The valid range of each configuration entry's sensors (for `out_of_range`).
    ranges: Arc<[Option<(f64, f64)>]>,
    /// By group slot.
    groups: HashMap<usize, GroupTracks>,
}

impl LocalAggregator {
    /// The aggregator of `groups` (each its slot and members), with nothing observed yet.
    pub(crate) fn new(
        sensors: Arc<SensorTable>,
        analysis: Arc<AnalysisConfig>,
        groups: Vec<(usize, Arc<[usize]>)>,
    ) -> Self {
        let ranges = sensors
            .entries()
            .iter()
            .map(|e| analysis.range_for(&e.kind, e.range))
            .collect();
        let groups = groups
            .into_iter()
            .map(|(slot, members)| {
                let tracks = Tracks::new(analysis.clone(), members.len());
                (slot, GroupTracks { members, tracks })
            })
            .collect();
        LocalAggregator {
            sensors,
            ranges,
            groups,
        }
    }
}

impl Actor for LocalAggregator {
    type Context = Context<Self>;
}

impl Handler<Analyse> for LocalAggregator {
    type Result = Analysed;

    fn handle(&mut self, msg: Analyse, _ctx: &mut Context<Self>) -> Analysed {
        let mut digest = RoundDigest {
            latencies_us: Vec::with_capacity(msg.outcomes.len()),
            ..RoundDigest::default()
        };
        let Some(group) = self.groups.get_mut(&msg.group) else {
            log::error!("no analysis for group {}", msg.group);
            return Analysed {
                digest,
                outcomes: msg.outcomes,
            };
        };
        let (sensors, ranges) = (&*self.sensors, &*self.ranges);
        // One quiet section for the round, one unwind guard per outcome.
        quietly(|| {
            for (local, outcome) in msg.outcomes.iter().enumerate() {
                let index = group.members[local];
                let range = ranges[sensors.entry_index(index)];
                let observed = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    group
                        .tracks
                        .observe(local, index, range, msg.round, outcome, &mut digest)
                }));
                if let Err(payload) = observed {
                    log::error!(
                        "round {}: the analysis of {} panicked: {}",
                        msg.round,
                        sensors.id(index),
                        panic_message(&*payload)
                    );
                }
            }
        });
        Analysed {
            digest,
            outcomes: msg.outcomes,
        }
    }
}

impl Handler<ReportTracks> for LocalAggregator {
    type Result = MessageResult<ReportTracks>;

    fn handle(&mut self, msg: ReportTracks, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(
            self.groups
                .get(&msg.group)
                .map(|g| g.tracks.summaries())
                .unwrap_or_default(),
        )
    }
}
