//! The Start, Stop and Restart requests that wait for their instances: which instance each
//! waits on, when an instance's state answers it, and the reply once every instance has.

use std::collections::HashMap;

use tokio::time::Instant;

use super::{
    handle::Reply,
    registry::{Instance, InstanceId},
    state::{State, Then},
    view::InstanceResult,
};

/// The state an action request waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goal {
    Running,
    Stopped,
}

/// Names one waiting request.
pub type WaiterId = u64;

/// One request waiting for its instances.
struct Waiter {
    goal: Goal,
    /// One slot per instance of the request, in request order.
    results: Vec<Option<InstanceResult>>,
    /// Slots still empty; the reply goes out when it reaches 0.
    pending: usize,
    reply: Reply<Vec<InstanceResult>>,
}

/// Every waiting request.
#[derive(Default)]
pub struct Waiters {
    waiters: HashMap<WaiterId, Waiter>,
    /// The waiters each instance has, as (waiter, result slot); only instances with some.
    waiting_on: HashMap<InstanceId, Vec<(WaiterId, usize)>>,
    next: WaiterId,
}

impl Waiters {
    /// Registers a request for `count` instances; `None` when there are none, in which case
    /// it has been answered already.
    pub fn add(
        &mut self,
        goal: Goal,
        count: usize,
        reply: Reply<Vec<InstanceResult>>,
    ) -> Option<WaiterId> {
        if count == 0 {
            let _ = reply.send(Ok(Vec::new()));
            return None;
        }
        let id = self.next;
        self.next += 1;
        let waiter = Waiter {
            goal,
            results: vec![None; count],
            pending: count,
            reply,
        };
        self.waiters.insert(id, waiter);
        Some(id)
    }

    pub fn goal(&self, waiter: WaiterId) -> Option<Goal> {
        self.waiters.get(&waiter).map(|entry| entry.goal)
    }

    /// Fills `slot` of `waiter`; replies once every slot is filled.
    pub fn answer(&mut self, waiter: WaiterId, slot: usize, outcome: InstanceResult) {
        let Some(entry) = self.waiters.get_mut(&waiter) else {
            return;
        };
        if entry.results[slot].is_none() {
            entry.results[slot] = Some(outcome);
            entry.pending -= 1;
        }
        if entry.pending == 0
            && let Some(entry) = self.waiters.remove(&waiter)
        {
            let results = entry.results.into_iter().flatten().collect();
            let _ = entry.reply.send(Ok(results));
        }
    }

    /// `slot` of `waiter` is answered by a later state of instance `id`.
    pub fn wait_on(&mut self, id: InstanceId, waiter: WaiterId, slot: usize) {
        self.waiting_on.entry(id).or_default().push((waiter, slot));
    }

    /// Answers whatever the current state of `instance` (instance `id`) answers.
    pub fn settle(&mut self, id: InstanceId, instance: &Instance) {
        let Some(waiting) = self.waiting_on.remove(&id) else {
            return;
        };
        let mut still = Vec::with_capacity(waiting.len());
        for (waiter, slot) in waiting {
            match self.goal(waiter).and_then(|goal| outcome(goal, instance)) {
                Some(outcome) => self.answer(waiter, slot, outcome),
                None if self.waiters.contains_key(&waiter) => still.push((waiter, slot)),
                None => {}
            }
        }
        if !still.is_empty() {
            self.waiting_on.insert(id, still);
        }
    }

    /// Instance `id` was forgotten: whoever waited on it gets that answer.
    pub fn forget(&mut self, id: InstanceId, instance: &Instance) {
        for (waiter, slot) in self.waiting_on.remove(&id).unwrap_or_default() {
            let outcome = InstanceResult::new(
                &instance.name,
                false,
                "removed by a config reload",
                State::Stopped,
            );
            self.answer(waiter, slot, outcome);
        }
    }
}

/// Whether `instance` in its current state answers a request waiting for `goal`, and how.
pub fn outcome(goal: Goal, instance: &Instance) -> Option<InstanceResult> {
    let state = instance.life.state;
    let name = &instance.name;
    match (goal, state) {
        (Goal::Running, State::Running) => Some(InstanceResult::new(name, true, "started", state)),
        (Goal::Running, State::Fatal) => Some(InstanceResult::new(
            name,
            false,
            instance.description(Instant::now()),
            state,
        )),
        (Goal::Running, State::Stopped | State::Exited) if instance.life.then != Then::Start => {
            Some(InstanceResult::new(
                name,
                false,
                "stopped before it was running",
                state,
            ))
        }
        (Goal::Stopped, State::Stopped | State::Exited | State::Fatal) => {
            Some(InstanceResult::new(name, true, "stopped", state))
        }
        _ => None,
    }
}
