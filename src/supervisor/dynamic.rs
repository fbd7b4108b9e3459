//! Dynamic children: sensors added to and removed from a running collection, as Erlang/OTP's
//! `supervisor:start_child` and `terminate_child` + `delete_child`, or Akka's IoT device groups
//! that create a device actor when a device registers. Requests come from a
//! [`Control`](crate::Control) as [`AddSensors`] and [`RemoveSensor`] messages to the root, which
//! answers each with the change made or a one-line error.
//!
//! Sensors are never renumbered. An added sensor gets the next index of the run, past every
//! sensor there ever was in it: the root grows the run's [`SensorTable`] (the configuration's
//! part is shared, never copied) and hands the grown table to every actor that looks the new
//! sensors up before anything about them can reach it, in this order: the root aggregator
//! ([`SensorsAdded`], which also journals `added`), the group's local aggregator
//! ([`GrowTracks`]), then the group ([`StartMembers`]), which starts them. Messages from one
//! actor arrive in the order sent, and each later message about the new sensors is caused by an
//! earlier one, so no actor meets an index it does not know. A removed sensor keeps its index
//! and its position in its group, as a member that is never read, counted or restarted again
//! ([`RemoveMember`]); its statistics stay, and the summary lists it as `removed`. The per-index
//! and per-member vectors of the run therefore only grow, and a run that changes nothing pays
//! for none of this: the index of ids that requests are checked against is made on the first
//! request.
//!
//! An added ungrouped sensor joins the last shard (so that shards keep holding consecutive
//! sensors, and their outcomes need no merging); a group or shard that holds no sensor yet (a
//! `[[groups]]` entry no configured sensor names) is started for it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use actix::prelude::*;
use actix_rt::time::Instant;

use super::group::{
    AdoptSubgroups, GroupKind, GroupSetup, InspectMember, OperateMember, Operation, RemoveMember, StartMembers,
};
use super::restart::{GroupRestarts, RestartTracker};
use super::{log_event, GroupSlot, GroupState, SensorSupervisor};
use crate::aggregator::local::{GrowTracks, InspectTrack};
use crate::aggregator::SensorsAdded;
use crate::config::{validate_entry, IdIndex, SensorSpec, ADDED_ENTRY};
use crate::control::{Added, ControlError, Removed, SensorStatus};
use crate::data::{EventKind, SupervisionEvent};
use crate::driver::DriverRegistry;
use crate::parse::{quoted, ConfigError};

/// Adds the sensors of one `[[sensors]]` entry to the run (from [`Control::add`](crate::Control::add)).
#[derive(Debug, Message)]
#[rtype(result = "Result<Added, ControlError>")]
pub(crate) struct AddSensors {
    /// Who asks: the origin of errors, and the journal's cause.
    pub(crate) requester: String,
    /// The entry, as in a configuration file.
    pub(crate) entry: toml::Table,
}

/// Removes one sensor from the run (from [`Control::remove`](crate::Control::remove)).
#[derive(Debug, Message)]
#[rtype(result = "Result<Removed, ControlError>")]
pub(crate) struct RemoveSensor {
    /// Who asks: the origin of errors, and the journal's cause.
    pub(crate) requester: String,
    /// The sensor's id.
    pub(crate) id: String,
}

/// Stops or restarts one sensor of the run (from [`Control::stop`](crate::Control::stop) and
/// [`Control::restart`](crate::Control::restart)).
#[derive(Debug, Message)]
#[rtype(result = "Result<(), ControlError>")]
pub(crate) struct OperateSensor {
    /// Who asks: the origin of errors, and the journal's cause.
    pub(crate) requester: String,
    /// The sensor's id.
    pub(crate) id: String,
    pub(crate) operation: Operation,
}

/// Finds one sensor's state and analysis (from [`Control::status`](crate::Control::status)).
#[derive(Debug, Message)]
#[rtype(result = "Result<SensorStatus, ControlError>")]
pub(crate) struct InspectSensor {
    /// Who asks: the origin of errors.
    pub(crate) requester: String,
    /// The sensor's id.
    pub(crate) id: String,
}

/// Journals an event of an output (from [`Control::journal`](crate::Control::journal)).
#[derive(Debug, Message)]
#[rtype(result = "Result<(), ControlError>")]
pub(crate) struct JournalOutput {
    /// The output's name (`mqtt`).
    pub(crate) output: String,
    pub(crate) event: EventKind,
    pub(crate) cause: Option<String>,
    pub(crate) delay: Option<std::time::Duration>,
}

/// What the root keeps to add and remove sensors while the run goes on.
pub(super) struct Roster {
    /// The drivers an added entry may name (the collector's registry).
    pub(super) drivers: DriverRegistry,
    /// The run's ids, for finding a sensor by id; made on the first request.
    ids: Option<IdIndex>,
    /// The sensors removed, by index, with the round they were removed in.
    removed: HashMap<usize, u64>,
}

impl Roster {
    pub(super) fn new(drivers: DriverRegistry) -> Self {
        Roster {
            drivers,
            ids: None,
            removed: HashMap::new(),
        }
    }

    /// The indices of the sensors removed so far.
    pub(super) fn removed(&self) -> Vec<usize> {
        self.removed.keys().copied().collect()
    }
}

/// The journal's cause of a change asked by `requester`.
fn requested_by(requester: &str) -> String {
    format!("requested by {requester}")
}

impl SensorSupervisor {
    /// Whether the groups' members, group after group, are the sensors in order (no
    /// `[[groups]]`: the shards), so that their outcome batches are the round's outcomes as
    /// they are. Checked at the start and after sensors are added.
    pub(super) fn members_in_order(&self) -> bool {
        let mut next = 0;
        self.groups.iter().flat_map(|g| g.members.iter()).all(|&index| {
            next += 1;
            index == next - 1
        }) && next == self.sensors.len()
    }

    /// Whether the run takes no more changes: it is ending, or has ended.
    fn closed(&self) -> bool {
        self.stopping || self.done.is_none()
    }

    /// The index of the run's ids, made on first use.
    fn ids(&mut self) -> &mut IdIndex {
        let sensors = &self.sensors;
        self.roster.ids.get_or_insert_with(|| sensors.id_index())
    }

    /// The sensor with id `id` that is in the run (not removed).
    fn present(&mut self, id: &str) -> Option<usize> {
        let index = self.ids().latest(id)?;
        (!self.roster.removed.contains_key(&index)).then_some(index)
    }

    /// Sensor `id` of the run (not removed): its index, its group's slot and its position there.
    fn locate(&mut self, requester: &str, id: &str) -> Result<(usize, usize, usize), ControlError> {
        let unknown = |removed_in| ControlError::UnknownSensor {
            requester: requester.to_string(),
            id: id.to_string(),
            removed_in,
        };
        let Some(index) = self.present(id) else {
            let removed_in = (self.ids().latest(id)).and_then(|index| self.roster.removed.get(&index).copied());
            return Err(unknown(removed_in));
        };
        // Its group: the configured group it names, else the shard whose members hold it
        // (members are in index order).
        let group = &self.sensors.entry(index).group;
        let found = self.groups.iter().enumerate().find_map(|(k, g)| {
            let configured = matches!(g.setup.kind, GroupKind::Configured { .. });
            let ours = match group {
                Some(name) => configured && g.name == *name,
                None => !configured,
            };
            let local = g.members.binary_search(&index).ok().filter(|_| ours)?;
            Some((k, local))
        });
        let Some((k, local)) = found else {
            log::error!("sensor {id} (index {index}) is in no group");
            return Err(unknown(None));
        };
        Ok((index, k, local))
    }

    /// The slot of configured group `name`, if it was started.
    fn configured_slot(&self, name: &str) -> Option<usize> {
        let configured = |g: &GroupSlot| matches!(g.setup.kind, GroupKind::Configured { .. });
        self.groups.iter().position(|g| configured(g) && *g.name == *name)
    }

    /// The `parent` of configured group `name`.
    fn parent_of(&self, name: &str) -> Option<String> {
        let spec = self.groups_config.iter().find(|g| g.name == name)?;
        spec.parent.clone()
    }

    /// The group slot that takes sensors of `group` (`None`: the ungrouped sensors' last shard),
    /// if it has one; an error if it was given up, or if it has none yet and the group it would
    /// be nested in is not running (stopped or restarting by its own supervisor's decision).
    fn slot_for(&self, group: Option<&str>, requester: &str) -> Result<Option<usize>, ControlError> {
        let refuse = |message: String| {
            let field = format!("{ADDED_ENTRY}.group");
            Err(ControlError::Invalid(ConfigError::new(requester, field, message)))
        };
        let k = match group {
            Some(name) => self.configured_slot(name),
            None => self.groups.iter().rposition(|g| g.setup.kind == GroupKind::Shard),
        };
        if let Some(k) = k {
            if matches!(self.groups[k].state, GroupState::Escalated | GroupState::Failed) {
                let what = match group {
                    Some(name) => format!("group {}", quoted(name)),
                    None => format!("the ungrouped sensors' {}", self.groups[k].name),
                };
                return refuse(format!("{what} was given up; it takes no more sensors"));
            }
            return Ok(Some(k));
        }
        // A group to start, nested in the first of its ancestors that runs.
        let mut up = group.and_then(|name| self.parent_of(name));
        while let Some(ancestor) = up {
            if let Some(a) = self.configured_slot(&ancestor) {
                if self.groups[a].state != GroupState::Running {
                    return refuse(format!(
                        "group {} has no supervisor yet, and {} it would be nested in is not running now",
                        quoted(group.unwrap_or_default()),
                        quoted(&ancestor)
                    ));
                }
                break;
            }
            up = self.parent_of(&ancestor);
        }
        Ok(None)
    }

    /// Starts the supervisor of `group` (`None`: a shard), and of the groups it is nested in
    /// that have none yet, outermost first; the slot of `group`'s.
    fn start_groups_for(&mut self, group: Option<&str>) -> usize {
        let Some(name) = group else {
            return self.start_empty_group(None, None);
        };
        // The groups without a supervisor, from `group` up to the first ancestor with one.
        let mut chain = vec![name.to_string()];
        let mut parent = None;
        let mut up = self.parent_of(name);
        while let Some(ancestor) = up {
            if let Some(a) = self.configured_slot(&ancestor) {
                parent = Some(a);
                break;
            }
            up = self.parent_of(&ancestor);
            chain.push(ancestor);
        }
        for name in chain.iter().rev() {
            parent = Some(self.start_empty_group(Some(name), parent));
        }
        parent.unwrap_or_default()
    }

    /// Starts a group that holds no sensor yet (a `[[groups]]` entry that neither a configured
    /// sensor nor a group nested in it named, or the first shard of a run whose sensors were all
    /// grouped), nested in slot `parent`, from the first group's setup; its sensors come with
    /// [`StartMembers`], and its parent adopts it ([`AdoptSubgroups`]).
    fn start_empty_group(&mut self, group: Option<&str>, parent: Option<usize>) -> usize {
        let k = self.groups.len();
        let (name, kind, local) = match group.and_then(|name| self.groups_config.iter().find(|g| g.name == name)) {
            Some(spec) => {
                let kind = GroupKind::Configured {
                    strategy: spec.strategy,
                    max_restarts: spec.max_restarts,
                    within: spec.within,
                };
                (Arc::<str>::from(spec.name.as_str()), kind, k % self.locals.len())
            }
            // The ungrouped sensors go to the last arbiter, as the last shard does.
            None => (Arc::from("shard-1"), GroupKind::Shard, self.locals.len() - 1),
        };
        let setup = GroupSetup {
            slot: k,
            name: name.clone(),
            kind,
            sensors: self.sensors.clone(),
            members: Arc::from([]),
            removed: Arc::from([]),
            analysis: self.locals[local].clone().recipient(),
            subgroups: Arc::from([]),
            final_escalation: parent.is_none() && self.root_policy.max_restarts == 0,
            ..self.groups[0].setup.clone()
        };
        let arbiter = self.arbiters.get(local).cloned();
        let addr = Self::start_group(setup.clone(), arbiter.as_ref());
        log::info!("started group {name} for sensors added while running");
        self.groups.push(GroupSlot {
            name,
            members: Arc::from([]),
            local,
            setup,
            arbiter,
            addr,
            live: true,
            state: GroupState::Running,
            restarts: 0,
            tracker: GroupRestarts::default(),
            parent,
            subgroups: Vec::new(),
            epoch: 0,
            escalations: RestartTracker::new(Instant::now()),
        });
        if let Some(p) = parent {
            let slot = &mut self.groups[p];
            slot.subgroups.push(k);
            let subgroups: Arc<[usize]> = slot.subgroups.as_slice().into();
            slot.setup.subgroups = subgroups.clone();
            slot.addr.do_send(AdoptSubgroups { subgroups });
        }
        k
    }

    /// Checks that `specs` (one entry, validated) can join the run: their ids are new to it,
    /// and they read nothing real on a virtual clock.
    fn check_new(&mut self, specs: &[SensorSpec], requester: &str) -> Result<(), ControlError> {
        if crate::clock::virtual_start().is_some() {
            if let Some(s) = specs.iter().find(|s| s.driver.real_world()) {
                let message = format!(
                    "sensor {} (kind {}) reads the real world, which a virtual clock cannot simulate",
                    quoted(&s.id),
                    quoted(&s.kind)
                );
                let field = format!("{ADDED_ENTRY}.driver");
                return Err(ControlError::Invalid(ConfigError::new(requester, field, message)));
            }
        }
        let mut seen = HashSet::with_capacity(specs.len());
        for s in specs {
            if !seen.insert(&*s.id) || self.present(&s.id).is_some() {
                return Err(ControlError::Duplicate {
                    requester: requester.to_string(),
                    id: s.id.to_string(),
                });
            }
        }
        Ok(())
    }
}

impl Handler<AddSensors> for SensorSupervisor {
    type Result = Result<Added, ControlError>;

    fn handle(&mut self, msg: AddSensors, _ctx: &mut Context<Self>) -> Self::Result {
        let requester = msg.requester;
        if self.closed() {
            return Err(ControlError::Ended { requester });
        }
        // Everything is checked before anything changes: a refused entry leaves no trace.
        let specs = validate_entry(
            msg.entry,
            &requester,
            &self.policy,
            &self.groups_config,
            &self.roster.drivers,
            self.sensors.len(),
        )
        .map_err(ControlError::Invalid)?;
        // A replay's `id_column` over a file without rows makes no sensor.
        let Some(group) = specs.first().map(|s| s.group.clone()) else {
            let message = "expected an entry that makes at least one sensor";
            return Err(ControlError::Invalid(ConfigError::new(
                &requester,
                ADDED_ENTRY,
                message,
            )));
        };
        self.check_new(&specs, &requester)?;
        let slot = self.slot_for(group.as_deref(), &requester)?;
        let ids: Vec<Arc<str>> = specs.iter().map(|s| s.id.clone()).collect();

        // The new sensors take the next indices, in a grown table.
        let first = self.sensors.len();
        self.sensors = Arc::new(self.sensors.grown(specs));
        let table = self.sensors.clone();
        self.ids().extend(&table);
        let indices: Arc<[usize]> = (first..table.len()).collect();
        // The table reaches, in order, the root aggregator (with the journal's `added`), the
        // group's aggregator, then the group (see the module's documentation).
        let cause = requested_by(&requester);
        log::info!(
            "{} sensor(s) added ({cause}), read from round {}: {}",
            ids.len(),
            self.round + 1,
            ids.iter().take(3).map(|id| &**id).collect::<Vec<_>>().join(", ")
                + if ids.len() > 3 { ", ..." } else { "" }
        );
        self.aggregator.do_send(SensorsAdded {
            table: table.clone(),
            timestamp: crate::clock::now(),
            round: self.round,
            sensors: indices.clone(),
            cause: cause.into(),
        });
        let k = match slot {
            Some(k) => k,
            None => self.start_groups_for(group.as_deref()),
        };
        let (round, slot) = (self.round, &mut self.groups[k]);
        let members: Arc<[usize]> = slot.members.iter().copied().chain(indices.iter().copied()).collect();
        slot.members = members.clone();
        slot.setup.members = members.clone();
        slot.setup.sensors = table.clone();
        slot.live = true;
        self.locals[slot.local].do_send(GrowTracks {
            group: k,
            members: members.clone(),
            sensors: table.clone(),
        });
        // A group actor waiting for its restart starts them from its setup.
        slot.addr.do_send(StartMembers {
            members,
            sensors: table,
            round,
        });
        self.in_order = self.members_in_order();
        Ok(Added {
            sensors: ids,
            first_round: self.round + 1,
        })
    }
}

impl Handler<RemoveSensor> for SensorSupervisor {
    type Result = Result<Removed, ControlError>;

    fn handle(&mut self, msg: RemoveSensor, _ctx: &mut Context<Self>) -> Self::Result {
        let RemoveSensor { requester, id } = msg;
        if self.closed() {
            return Err(ControlError::Ended { requester });
        }
        let (index, k, local) = self.locate(&requester, &id)?;
        let group = self.sensors.entry(index).group.clone();
        self.roster.removed.insert(index, self.round);
        let slot = &mut self.groups[k];
        let mut removed = slot.setup.removed.to_vec();
        if let Err(at) = removed.binary_search(&(local as u32)) {
            removed.insert(at, local as u32);
        }
        slot.setup.removed = removed.into();
        let sensor = self.sensors.id(index);
        let event = SupervisionEvent {
            timestamp: crate::clock::now(),
            round: self.round,
            sensor: Some(sensor.clone()),
            group,
            output: None,
            event: EventKind::Removed,
            cause: Some(requested_by(&requester)),
            delay: None,
            restarts: None,
            backoff: None,
        };
        // The group journals it as it removes the member, after the member's earlier events;
        // a group whose actor is gone has nothing more to say of it.
        let group = &self.groups[k].addr;
        if group.connected() {
            group.do_send(RemoveMember { member: local, event });
        } else {
            log_event(log::Level::Info, &event);
            self.aggregator.do_send(event);
        }
        Ok(Removed {
            sensor,
            last_round: self.round,
        })
    }
}

impl Handler<OperateSensor> for SensorSupervisor {
    type Result = ResponseFuture<Result<(), ControlError>>;

    fn handle(&mut self, msg: OperateSensor, _ctx: &mut Context<Self>) -> Self::Result {
        let OperateSensor {
            requester,
            id,
            operation,
        } = msg;
        if self.closed() {
            return Box::pin(std::future::ready(Err(ControlError::Ended { requester })));
        }
        let (k, local) = match self.locate(&requester, &id) {
            Ok((_, k, local)) => (k, local),
            Err(e) => return Box::pin(std::future::ready(Err(e))),
        };
        let request = self.groups[k].addr.send(OperateMember {
            member: local,
            operation,
            cause: requested_by(&requester),
        });
        Box::pin(async move {
            match request.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(why)) => Err(ControlError::Refused { requester, id, why }),
                // The group's actor is gone: it was stopped (the run ends, or its supervisor
                // stops it) between the request and now.
                Err(_) => Err(ControlError::Refused {
                    requester,
                    id,
                    why: "cannot be changed: its group is down".to_string(),
                }),
            }
        })
    }
}

impl Handler<InspectSensor> for SensorSupervisor {
    type Result = ResponseFuture<Result<SensorStatus, ControlError>>;

    fn handle(&mut self, msg: InspectSensor, _ctx: &mut Context<Self>) -> Self::Result {
        let InspectSensor { requester, id } = msg;
        if self.closed() {
            return Box::pin(std::future::ready(Err(ControlError::Ended { requester })));
        }
        let (index, k, local) = match self.locate(&requester, &id) {
            Ok(found) => found,
            Err(e) => return Box::pin(std::future::ready(Err(e))),
        };
        let group = &self.groups[k];
        let member = group.addr.send(InspectMember { member: local });
        let track = self.locals[group.local].send(InspectTrack {
            group: k,
            member: local,
        });
        let entry = self.sensors.entry(index);
        let (kind, unit, configured) = (entry.kind.clone(), entry.unit.clone(), entry.group.clone());
        let id: Arc<str> = self.sensors.id(index);
        Box::pin(async move {
            let down = |requester: String, id: &str| ControlError::Refused {
                requester,
                id: id.to_string(),
                why: "cannot be inspected: its group is down".to_string(),
            };
            let Ok(Some((state, restarts))) = member.await else {
                return Err(down(requester, &id));
            };
            let analysis = track.await.ok().flatten().unwrap_or_default();
            Ok(SensorStatus {
                id,
                index,
                kind,
                unit,
                group: configured,
                state: state.as_str(),
                restarts,
                analysis,
            })
        })
    }
}

impl Handler<JournalOutput> for SensorSupervisor {
    type Result = Result<(), ControlError>;

    fn handle(&mut self, msg: JournalOutput, _ctx: &mut Context<Self>) -> Self::Result {
        // Journaled until the journal's last message: the run's summary (an output's flush at
        // the run's end comes after it, and goes to its log only).
        if self.done.is_none() {
            return Err(ControlError::Ended { requester: msg.output });
        }
        let event = SupervisionEvent {
            timestamp: crate::clock::now(),
            round: self.round,
            sensor: None,
            group: None,
            output: Some(Arc::from(msg.output)),
            event: msg.event,
            cause: msg.cause,
            delay: msg.delay,
            restarts: None,
            backoff: None,
        };
        let level = match event.event {
            EventKind::Failed => log::Level::Warn,
            _ => log::Level::Info,
        };
        log_event(level, &event);
        self.aggregator.do_send(event);
        Ok(())
    }
}
