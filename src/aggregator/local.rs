//! `LocalAggregator`: the analysis of the groups of one arbiter, beside them on that arbiter.
//!
//! Supervisors read and supervise; aggregators analyse. Each arbiter that runs groups runs one
//! local aggregator, which keeps the [`Tracks`] of each of its groups (every member's statistics,
//! rolling window, EWMA and detectors' state). As a group's reads settle it hands their outcomes
//! over in batches ([`Analyse`]); the local aggregator passes each to the member's track as it
//! comes, so a round is analysed while its slower reads are still awaited, and answers the
//! round's last batch with the round's [`RoundDigest`] (read counts, reading latencies,
//! anomalies) and, when someone subscribed to the readings, the round's outcomes in member
//! order, which the group passes on to the root. Both actors share the arbiter's thread, so a
//! hand-over costs a message, not a copy, and no lock.
//!
//! The tracks belong to the group's slot, not to the group's actor: when the root restarts a
//! group actor that stopped, its members' statistics and detectors carry on. At the end of the
//! run the root asks each local aggregator for its groups' per-sensor results ([`ReportTracks`]).
//!
//! A detector that panics (a bug in a registered detector) costs its verdict on that reading
//! only: the panic is caught where the detector is called, logged (quietly: not the default
//! hook's stderr text), and the reading is counted and analysed by the others.

use std::collections::HashMap;
use std::sync::Arc;

use actix::{Actor, Context, Handler, Message, MessageResult};

use crate::aggregator::ANOMALY_LOG;
use crate::analysis::tracks::{RoundDigest, TrackSummary, Tracks};
use crate::analysis::AnalysisConfig;
use crate::config::SensorTable;
use crate::control::SensorAnalysis;
use crate::data::{Absence, Outcome};
use crate::panic::quietly;

/// Hands a batch of one group's settled outcomes over for analysis.
#[derive(Debug, Message)]
#[rtype(result = "Analysed")]
pub(crate) struct Analyse {
    /// The group's slot among the root's groups.
    pub(crate) group: usize,
    /// The round.
    pub(crate) round: u64,
    /// Settled outcomes, as `(member, outcome)`: each member once per round, over the batches.
    pub(crate) outcomes: Vec<(u32, Outcome)>,
    /// An outcome vector of an earlier round, to overwrite with this round's outcomes (when they
    /// go on to the root), or an empty one.
    pub(crate) reuse: Option<Vec<Outcome>>,
    /// Whether this is the round's last batch: it is answered with the round's results.
    pub(crate) last: bool,
}

/// The answer to [`Analyse`]: the round's results for its last batch, empty before.
#[derive(Debug, Default, actix::MessageResponse)]
pub(crate) struct Analysed {
    /// What the analysis of the round found.
    pub(crate) digest: RoundDigest,
    /// The round's outcomes in member order, when they go on to the root; else empty.
    pub(crate) outcomes: Vec<Outcome>,
}

/// Asks for the per-sensor results of one group, in member order, as the run ends: the group's
/// analysis state goes with the answer (its memory is free before the summary is made).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Vec<TrackSummary>")]
pub(crate) struct ReportTracks {
    /// The group's slot.
    pub(crate) group: usize,
}

/// Hands over the members of a group as they are after sensors were added to it while the run
/// goes on (sent by the root before the group hears of them, so that no outcome of a new member
/// arrives first), with the grown table that names them. A group slot the aggregator does not
/// know yet (a group that started with no member) is taken on.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct GrowTracks {
    /// The group's slot.
    pub(crate) group: usize,
    /// All its members now, the new ones last.
    pub(crate) members: Arc<[usize]>,
    /// The run's sensors, the new ones included.
    pub(crate) sensors: Arc<SensorTable>,
}

/// What a local aggregator keeps of one group.
struct GroupTracks {
    /// The members, as indices into the run's sensors, in member order.
    members: Arc<[usize]>,
    tracks: Tracks,
    /// The round being analysed (its batches so far).
    round: u64,
    digest: RoundDigest,
    /// The round's outcomes in member order, when they go on to the root: a vector back from
    /// an earlier round keeps that round's outcomes until this one's overwrite them.
    outcomes: Vec<Outcome>,
    /// The members whose outcome the round has written into `outcomes` so far.
    written: Written,
}

/// Which members' outcomes a round has written into its outcome vector. A vector comes back
/// from the root with an earlier round's outcomes, which are overwritten in place (emptying a
/// million outcomes and filling them again each round was two passes over 48 MB); a member
/// whose outcome the round did not hand over (removed, or added after the round began) is set
/// `unavailable` when the round ends, as the filled vector had it.
#[derive(Debug, Default)]
struct Written {
    /// One bit per member.
    words: Vec<u64>,
    /// The bits set.
    count: usize,
}

impl Written {
    /// Nothing written, for a round of `members`.
    fn reset(&mut self, members: usize) {
        self.words.clear();
        self.words.resize(members.div_ceil(64), 0);
        self.count = 0;
    }

    fn mark(&mut self, local: usize) {
        let bit = 1u64 << (local % 64);
        if let Some(word) = self.words.get_mut(local / 64) {
            if *word & bit == 0 {
                *word |= bit;
                self.count += 1;
            }
        }
    }

    fn has(&self, local: usize) -> bool {
        self.words
            .get(local / 64)
            .is_some_and(|word| word & (1u64 << (local % 64)) != 0)
    }

    /// Sets every outcome the round did not write to `unavailable`.
    fn fill_rest(&self, outcomes: &mut [Outcome]) {
        if self.count == outcomes.len() {
            return;
        }
        for (local, slot) in outcomes.iter_mut().enumerate() {
            if !self.has(local) {
                *slot = Outcome::Unavailable(Absence::Down);
            }
        }
    }
}

/// The aggregator of one arbiter's groups.
pub(crate) struct LocalAggregator {
    sensors: Arc<SensorTable>,
    /// The detectors' settings, for the tracks of members added while the run goes on.
    analysis: Arc<AnalysisConfig>,
    /// Whether the rounds' outcomes go on to the root (someone subscribed to the readings).
    keep_outcomes: bool,
    /// Whether the anomalies found go on to the root as findings (someone subscribed to them);
    /// else they are counted only, unless their debug log is on.
    list_anomalies: bool,
    /// The valid range of each configuration entry's sensors (for `out_of_range`).
    ranges: Arc<[Option<(f64, f64)>]>,
    /// By group slot.
    groups: HashMap<usize, GroupTracks>,
    /// Scratch of [`member_order`]: by member, its position in the batch plus one (zero: none).
    positions: Vec<u32>,
    /// Scratch of [`member_order`]: the positions of a batch's outcomes in member order.
    order: Vec<u32>,
}

/// Puts into `order` the positions of `outcomes` (a batch of a group of `members`) in member
/// order, when the batch holds at least a quarter of the members; whether it did. A sensor's
/// analysis depends only on its own outcomes, which come once per round, and the root lists a
/// round's anomalies by sensor: the order changes no result. But going through the members'
/// tracks in order lets the processor fetch them ahead, where the order the reads settled in
/// (by their latencies) is a cache miss or two per outcome. Going through every member costs
/// too much for a small batch of a large group; those keep their order.
fn member_order(positions: &mut Vec<u32>, order: &mut Vec<u32>, outcomes: &[(u32, Outcome)], members: usize) -> bool {
    order.clear();
    if outcomes.len() < 2 || outcomes.len().saturating_mul(4) < members {
        return false;
    }
    positions.clear();
    positions.resize(members, 0);
    for (k, (local, _)) in outcomes.iter().enumerate() {
        // Each member comes once per round; should one not, the batch keeps its order.
        match positions.get_mut(*local as usize) {
            Some(slot) if *slot == 0 => *slot = k as u32 + 1,
            _ => return false,
        }
    }
    order.extend(positions.iter().filter(|&&p| p != 0).map(|&p| p - 1));
    true
}

impl LocalAggregator {
    /// The aggregator of `groups` (each its slot and members), with nothing observed yet.
    pub(crate) fn new(
        sensors: Arc<SensorTable>,
        analysis: Arc<AnalysisConfig>,
        keep_outcomes: bool,
        list_anomalies: bool,
        groups: Vec<(usize, Arc<[usize]>)>,
    ) -> Self {
        let ranges = Self::ranges(&sensors, &analysis);
        let groups = groups
            .into_iter()
            .map(|(slot, members)| {
                let tracks = Tracks::new(analysis.clone(), members.len());
                let group = GroupTracks {
                    members,
                    tracks,
                    round: 0,
                    digest: RoundDigest::default(),
                    outcomes: Vec::new(),
                    written: Written::default(),
                };
                (slot, group)
            })
            .collect();
        LocalAggregator {
            sensors,
            analysis,
            keep_outcomes,
            list_anomalies,
            ranges,
            groups,
            positions: Vec::new(),
            order: Vec::new(),
        }
    }
}

impl LocalAggregator {
    /// The valid range of each entry of `sensors`.
    fn ranges(sensors: &SensorTable, analysis: &AnalysisConfig) -> Arc<[Option<(f64, f64)>]> {
        sensors
            .entries()
            .map(|e| analysis.range_for(&e.kind, e.range))
            .collect()
    }
}

impl Actor for LocalAggregator {
    type Context = Context<Self>;
}

impl Handler<Analyse> for LocalAggregator {
    type Result = Analysed;

    fn handle(&mut self, msg: Analyse, _ctx: &mut Context<Self>) -> Analysed {
        let Some(group) = self.groups.get_mut(&msg.group) else {
            log::error!("no analysis for group {}", msg.group);
            return Analysed::default();
        };
        // The first batch of a round starts its digest (a round that a restarted group left
        // unfinished is dropped: the root counted its members unavailable).
        if msg.round != group.round {
            group.round = msg.round;
            group.digest = RoundDigest {
                latencies_us: Vec::with_capacity(group.members.len()),
                ..RoundDigest::default()
            };
            group.written.reset(group.members.len());
        }
        if let Some(reuse) = msg.reuse {
            group.outcomes = reuse;
        }
        // A vector of this group's size is overwritten as it is; another (an empty one, which
        // a subscriber kept; one of before sensors were added) is made that size first.
        if self.keep_outcomes && group.outcomes.len() != group.members.len() {
            group
                .outcomes
                .resize(group.members.len(), Outcome::Unavailable(Absence::Down));
        }
        let (sensors, ranges) = (&*self.sensors, &*self.ranges);
        // Findings (with their details) only when someone reads them: a subscriber, or the
        // root's debug log of each anomaly. Else each is counted by detector.
        let list = self.list_anomalies || log::log_enabled!(target: ANOMALY_LOG, log::Level::Debug);
        // One quiet section per batch: a detector's panic is caught where it is called
        // (`AnalysisConfig::observe`) and must not reach stderr.
        let mut outcomes = msg.outcomes;
        let in_order = member_order(&mut self.positions, &mut self.order, &outcomes, group.members.len());
        let order: &[u32] = if in_order { &self.order } else { &[] };
        quietly(|| {
            for i in 0..outcomes.len() {
                let k = order.get(i).map_or(i, |&k| k as usize);
                let (local, outcome) = &mut outcomes[k];
                let local = *local as usize;
                let index = group.members[local];
                let range = ranges[sensors.entry_index(index)];
                group
                    .tracks
                    .observe(local, index, range, msg.round, outcome, list, &mut group.digest);
                if let Some(slot) = group.outcomes.get_mut(local) {
                    *slot = std::mem::replace(outcome, Outcome::Unavailable(Absence::Down));
                    group.written.mark(local);
                }
            }
        });
        if !msg.last {
            return Analysed::default();
        }
        group.written.fill_rest(&mut group.outcomes);
        Analysed {
            digest: std::mem::take(&mut group.digest),
            outcomes: std::mem::take(&mut group.outcomes),
        }
    }
}

impl Handler<GrowTracks> for LocalAggregator {
    type Result = ();

    fn handle(&mut self, msg: GrowTracks, _ctx: &mut Context<Self>) {
        if msg.sensors.entries().count() != self.ranges.len() {
            self.ranges = Self::ranges(&msg.sensors, &self.analysis);
        }
        self.sensors = msg.sensors;
        let analysis = &self.analysis;
        let group = self.groups.entry(msg.group).or_insert_with(|| GroupTracks {
            members: msg.members.clone(),
            tracks: Tracks::new(analysis.clone(), 0),
            round: 0,
            digest: RoundDigest::default(),
            outcomes: Vec::new(),
            written: Written::default(),
        });
        group.tracks.grow(msg.members.len());
        group.members = msg.members;
    }
}

impl Handler<ReportTracks> for LocalAggregator {
    type Result = MessageResult<ReportTracks>;

    fn handle(&mut self, msg: ReportTracks, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(
            self.groups
                .remove(&msg.group)
                .map(|g| g.tracks.summaries())
                .unwrap_or_default(),
        )
    }
}

/// Asks for one member's analysis so far ([`Control::status`](crate::Control::status)).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Option<SensorAnalysis>")]
pub(crate) struct InspectTrack {
    /// The group's slot.
    pub(crate) group: usize,
    /// The member's position in the group.
    pub(crate) member: usize,
}

impl Handler<InspectTrack> for LocalAggregator {
    type Result = Option<SensorAnalysis>;

    fn handle(&mut self, msg: InspectTrack, _ctx: &mut Context<Self>) -> Self::Result {
        self.groups.get(&msg.group)?.tracks.status(msg.member)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(members: &[u32]) -> Vec<(u32, Outcome)> {
        members.iter().map(|&m| (m, Outcome::TimedOut)).collect()
    }

    /// A round's outcomes overwrite the vector an earlier round left: every member handed over
    /// gets its outcome, one that was not (removed, or out of the round) is `unavailable`, not
    /// the earlier round's reading; a vector of another length is made the group's first.
    #[actix_rt::test]
    async fn outcomes_overwrite_an_earlier_rounds_and_the_rest_are_unavailable() {
        use crate::aggregator::tests::{reading, table};
        let members: Arc<[usize]> = Arc::from([0, 1, 2, 3]);
        let aggregator = LocalAggregator::new(
            table(4),
            Arc::new(AnalysisConfig::default()),
            true,
            false,
            vec![(0, members)],
        )
        .start();
        // A round's last batch (with the vector to overwrite when it is the first too).
        let round = |round: u64, outcomes: Vec<(u32, Outcome)>, reuse: Option<Vec<Outcome>>| {
            aggregator.send(Analyse {
                group: 0,
                round,
                outcomes,
                reuse,
                last: true,
            })
        };
        let all = (0..4).map(|m| (m, reading(f64::from(m)))).collect();
        let first = round(1, all, Some(Vec::new())).await.unwrap().outcomes;
        assert_eq!(first, (0..4).map(|m| reading(f64::from(m))).collect::<Vec<_>>());
        // Members 1 and 3 are not in round 2 (over two batches, in another order).
        let part = aggregator
            .send(Analyse {
                group: 0,
                round: 2,
                outcomes: vec![(2, Outcome::TimedOut)],
                reuse: Some(first),
                last: false,
            })
            .await
            .unwrap();
        assert!(
            part.outcomes.is_empty(),
            "only the last batch answers with the outcomes"
        );
        let second = round(2, vec![(0, reading(10.0))], None).await.unwrap().outcomes;
        let down = Outcome::Unavailable(Absence::Down);
        assert_eq!(second, [reading(10.0), down.clone(), Outcome::TimedOut, down.clone()]);
        // A shorter vector (and then a longer one) is made four outcomes long.
        let third = round(3, vec![(3, reading(13.0))], Some(vec![reading(99.0)]))
            .await
            .unwrap()
            .outcomes;
        assert_eq!(third, [down.clone(), down.clone(), down.clone(), reading(13.0)]);
        let longer = vec![reading(99.0); 6];
        let fourth = round(4, vec![(1, reading(11.0))], Some(longer)).await.unwrap().outcomes;
        assert_eq!(fourth, [down.clone(), reading(11.0), down.clone(), down]);
    }

    /// A batch with a good part of the group is gone through in member order; a sparse one,
    /// or one naming a member twice, keeps its order.
    #[test]
    fn dense_batches_are_analysed_in_member_order() {
        let (mut positions, mut order) = (Vec::new(), Vec::new());
        assert!(member_order(&mut positions, &mut order, &batch(&[5, 0, 7, 2, 6]), 8));
        assert_eq!(order, [1, 3, 0, 4, 2]);
        assert!(member_order(&mut positions, &mut order, &batch(&[1, 0]), 8));
        assert_eq!(order, [1, 0], "the positions of the last batch are forgotten");
        assert!(!member_order(&mut positions, &mut order, &batch(&[3, 1]), 9));
        assert!(order.is_empty());
        assert!(!member_order(&mut positions, &mut order, &batch(&[3, 1, 3]), 4));
        assert!(!member_order(&mut positions, &mut order, &batch(&[3, 1, 4]), 4));
    }
}
