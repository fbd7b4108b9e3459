//! Members that join or leave a group while the run goes on (`Control::add` and
//! `Control::remove`, through the root: `src/supervisor/dynamic.rs`).
//!
//! A member is never renumbered: one that joins gets the next position (and the run's next
//! sensor index), one that leaves keeps its position as a *removed* member, which is never read,
//! counted, restarted or taken into a strategy's restart again. So the per-member vectors of the
//! group and of its aggregator's tracks only grow, and a round in flight is never disturbed: a
//! new member is read from the next round on, and a removed member's read that the round still
//! awaits is settled at once, counted `unavailable`, its late answer discarded.

use std::sync::Arc;

use actix::prelude::*;
use actix_rt::time::Instant;

use super::{kind_of, Action, Child, GroupSupervisor};
use crate::config::SensorTable;
use crate::data::{EventKind, SensorState, SupervisionEvent};
use crate::supervisor::restart::RestartTracker;

/// Starts the members added to the group while the run goes on. The root sends it once the
/// group's aggregator has their tracks ([`GrowTracks`](crate::aggregator::local::GrowTracks)).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct StartMembers {
    /// All the group's members now, the new ones last.
    pub(crate) members: Arc<[usize]>,
    /// The run's sensors, the new ones included.
    pub(crate) sensors: Arc<SensorTable>,
    /// The root's round: the journal's round for a group that has read none yet.
    pub(crate) round: u64,
}

/// The group's child groups after one was started for sensors added while the run goes on (a
/// `[[groups]]` entry nested in this one that had no supervisor yet): it comes after the
/// others, among the children the group's strategy restarts.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct AdoptSubgroups {
    /// The root's slots of all its child groups now, the new one last.
    pub(crate) subgroups: Arc<[usize]>,
}

/// Stops a member for good: it was removed while the run goes on.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub(crate) struct RemoveMember {
    /// Its position in the group.
    pub(crate) member: usize,
    /// Its `removed` event, made by the root: the group journals it as it removes the member,
    /// after whatever it journaled of the member before (its `started` too).
    pub(crate) event: SupervisionEvent,
}

impl GroupSupervisor {
    /// Members not removed.
    pub(super) fn active(&self) -> usize {
        self.children.iter().filter(|c| c.state != SensorState::Removed).count()
    }

    /// The sensors of the members not removed, as indices into the run's sensors (the group's
    /// member list itself when none was).
    pub(super) fn active_members(&self) -> Arc<[usize]> {
        if self.setup.removed.is_empty() {
            return self.setup.members.clone();
        }
        let members = self.setup.members.iter().zip(&self.children);
        members
            .filter(|(_, c)| c.state != SensorState::Removed)
            .map(|(&index, _)| index)
            .collect()
    }
}

impl Handler<StartMembers> for GroupSupervisor {
    type Result = ();

    fn handle(&mut self, msg: StartMembers, ctx: &mut Context<Self>) {
        self.round = self.round.max(msg.round);
        self.setup.sensors = msg.sensors;
        self.setup.members = msg.members;
        let now = Instant::now();
        let first = self.children.len();
        let added = first..self.setup.members.len();
        self.children.extend(added.clone().map(|_| Child {
            addr: None,
            state: SensorState::Stopped,
            incarnation: 0,
            restarts: 0,
            tracker: RestartTracker::new(now),
            timeouts: 0,
            held: false,
        }));
        // A group that is down as a whole takes them as its other members are: given up with
        // it (it was given up while the root added them), held until its supervisor decides, or
        // started with the others when its supervisor restarts it.
        if self.given_up || self.ending {
            for local in added {
                self.children[local].state = SensorState::GivenUp;
                if !self.ending {
                    let cause = format!("group {} was given up", self.setup.name);
                    self.journal(local, EventKind::GaveUp, Some(cause), Some(0));
                }
            }
            return;
        }
        // Journaled as its other members were when the group went down, so that its journal
        // ends on its state: `stopped` while held, `restart_scheduled` (the time left of the
        // group's restart) once that restart is decided.
        if self.escalated {
            let (cause, due) = self.down.clone().unwrap_or_default();
            for local in added {
                let child = &mut self.children[local];
                match due.filter(|_| !self.pending) {
                    Some((at, backoff)) => {
                        child.state = SensorState::Restarting;
                        self.journal_scheduled(local, at.saturating_duration_since(now), backoff);
                    }
                    None => {
                        child.held = true;
                        self.journal(local, EventKind::Stopped, Some(cause.clone()), None);
                    }
                }
            }
            return;
        }
        // As at the group's start: builds that failed at once fail their members once all are
        // started.
        let failed: Vec<(usize, Action)> = added
            .filter_map(|local| {
                let cause = self.spawn(local)?;
                let kind = kind_of(&cause);
                Some((local, Action::Fail(cause, kind)))
            })
            .collect();
        self.end_members(failed, ctx);
    }
}

impl Handler<AdoptSubgroups> for GroupSupervisor {
    type Result = ();

    fn handle(&mut self, msg: AdoptSubgroups, _ctx: &mut Context<Self>) {
        let now = Instant::now();
        while self.subgroup_trackers.len() < msg.subgroups.len() {
            self.subgroup_trackers.push(RestartTracker::new(now));
        }
        self.setup.subgroups = msg.subgroups;
    }
}

impl Handler<RemoveMember> for GroupSupervisor {
    type Result = ();

    fn handle(&mut self, msg: RemoveMember, ctx: &mut Context<Self>) {
        let local = msg.member;
        self.send(msg.event);
        if self.children.get(local).is_none_or(|c| c.state == SensorState::Removed) {
            return;
        }
        // Removed first: whatever its actor still answers, and a restart still due, is then
        // ignored (supervision acts on running or restarting members only).
        self.children[local].state = SensorState::Removed;
        self.stop_actor(local);
        let mut removed = self.setup.removed.to_vec();
        if let Err(at) = removed.binary_search(&(local as u32)) {
            removed.insert(at, local as u32);
        }
        self.setup.removed = removed.into();
        // A read of it that the round in flight still awaits is settled now, once: an answer of
        // it kept until due is dropped, so that it is not counted a second time.
        self.withdraw_read(local, ctx);
    }
}
