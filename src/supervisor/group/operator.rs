//! A person's actions on one member (`Control::stop` and `Control::restart`, through the root),
//! as Erlang/OTP's `supervisor:terminate_child` and `restart_child`.
//!
//! A stopped member stays stopped, whatever its restart type, until it is restarted by request
//! (its group's strategy takes only running members into a restart, so it is not started with
//! them either); it is not read, and its rounds are counted `unavailable`. A restart starts a
//! fresh actor at once, without backoff, whatever the member's state (running, waiting for a
//! restart, stopped, given up): a running member's read in flight is settled `unavailable`, a
//! read not yet sent goes to the new actor. A member stopped or given up starts with a fresh
//! intensity window, as a child started anew. Both are journaled (`stopped`, `restarted`) with
//! the requester in the cause; a restart counts in the member's restarts.

use actix::prelude::*;
use actix_rt::time::Instant;

use super::{kind_of, settle, Action, GroupSupervisor};
use crate::data::{Absence, EventKind, Outcome, SensorState};
use crate::supervisor::restart::RestartTracker;

/// What is asked of a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    Stop,
    Restart,
}

/// Stops or restarts member `member`; answers why not, in words, when nothing was done.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), String>")]
pub(crate) struct OperateMember {
    /// Its position in the group.
    pub(crate) member: usize,
    pub(crate) operation: Operation,
    /// The journal's cause: who asked.
    pub(crate) cause: String,
}

impl GroupSupervisor {
    /// Member `local`'s read in the round in flight, if it awaits one, is settled now,
    /// `unavailable` (its actor was stopped): once, whatever it still answers.
    pub(super) fn withdraw_read(&mut self, local: usize, ctx: &mut Context<Self>) {
        // Kept answers due by now completed before this (on a virtual clock): settled first, as
        // every message to the group does.
        self.settle_due();
        let Some(cur) = self.current.as_mut() else { return };
        if !cur.books.awaiting.get(local).is_some_and(|&awaited| awaited) {
            return;
        }
        if !cur.books.due.is_empty() {
            cur.books.due.remove(local as u32);
        }
        cur.books.awaiting[local] = false;
        cur.in_flight -= 1;
        cur.left -= 1;
        let down = Outcome::Unavailable(Absence::Down);
        settle(cur, &mut self.children, &self.setup, local, down);
        if cur.sent < cur.books.order.len() && !cur.resuming {
            self.pump(ctx);
        }
        self.complete_if_settled(ctx);
        // What the timer waits for may have changed (the withdrawn read was the next one due).
        self.arm(ctx);
    }
}

impl Handler<OperateMember> for GroupSupervisor {
    type Result = Result<(), String>;

    fn handle(&mut self, msg: OperateMember, ctx: &mut Context<Self>) -> Self::Result {
        let local = msg.member;
        let Some(child) = self.children.get(local) else {
            return Err("is not a member of its group".to_string());
        };
        let state = child.state;
        if self.ending {
            return Err("cannot be changed: the run is ending".to_string());
        }
        if self.given_up || self.escalated || self.pending {
            return Err(format!(
                "cannot be changed: its group {} is down, waiting for its supervisor or given up",
                self.setup.name
            ));
        }
        match (msg.operation, state) {
            (_, SensorState::Removed) => Err("was removed".to_string()),
            (Operation::Stop, SensorState::Stopped | SensorState::GivenUp) => {
                Err(format!("is not running: it is {} already", state.as_str()))
            }
            (Operation::Stop, _) => {
                // Stopped first: a restart still due, and whatever its actor still answers, is
                // then ignored.
                self.children[local].state = SensorState::Stopped;
                self.stop_actor(local);
                self.journal(local, EventKind::Stopped, Some(msg.cause), None);
                self.withdraw_read(local, ctx);
                Ok(())
            }
            (Operation::Restart, _) => {
                if state == SensorState::Running && self.stop_actor(local) {
                    // Not `Running` while its read is withdrawn: no failure is noted for it.
                    self.children[local].state = SensorState::Restarting;
                    self.withdraw_read(local, ctx);
                }
                let now = Instant::now();
                let child = &mut self.children[local];
                if matches!(state, SensorState::Stopped | SensorState::GivenUp) {
                    child.tracker = RestartTracker::new(now);
                }
                child.incarnation += 1;
                child.restarts += 1;
                let (incarnation, restarts) = (child.incarnation, child.restarts);
                let failed = self.spawn(local);
                self.journal(local, EventKind::Restarted, Some(msg.cause), Some(restarts));
                // A read of the round in flight not sent yet goes to the new actor.
                if let Some(cur) = self.current.as_mut() {
                    let unsent = cur.books.order[cur.sent..].binary_search(&(local as u32)).is_ok();
                    if unsent {
                        cur.books.incarnations[local] = incarnation;
                    }
                }
                if let Some(cause) = failed {
                    let kind = kind_of(&cause);
                    self.end_members(vec![(local, Action::Fail(cause, kind))], ctx);
                }
                Ok(())
            }
        }
    }
}

/// Asks for member `member`'s supervision state and restarts (for
/// [`Control::status`](crate::Control::status)); `None` for no such member.
#[derive(Debug, Message)]
#[rtype(result = "Option<(SensorState, u32)>")]
pub(crate) struct InspectMember {
    /// Its position in the group.
    pub(crate) member: usize,
}

impl Handler<InspectMember> for GroupSupervisor {
    type Result = Option<(SensorState, u32)>;

    fn handle(&mut self, msg: InspectMember, _ctx: &mut Context<Self>) -> Self::Result {
        let child = self.children.get(msg.member)?;
        Some((child.state, child.restarts))
    }
}
