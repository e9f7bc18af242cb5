//! Every deadline of the supervisor, in one queue: keyed by instance and purpose, so that an
//! instance can have one deadline of each purpose at a time and a state change cancels exactly
//! the deadlines that belonged to the state it left.

use std::{
    collections::HashMap,
    task::{Context, Poll},
    time::Duration,
};

use tokio_util::time::{DelayQueue, delay_queue};

use super::registry::InstanceId;

/// What a deadline is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// The process has stayed up for `starttime` (STARTING).
    StartTime,
    /// `stoptime` has passed since the stop signal: SIGKILL the group (STOPPING).
    Kill,
    /// The backoff delay is over (BACKOFF).
    Retry,
    /// The autorestart spacing is over (EXITED).
    Autorestart,
}

impl Purpose {
    /// The deadlines that belong to an instance's current state: a state change ends them.
    pub const OF_STATE: [Purpose; 4] = [
        Purpose::StartTime,
        Purpose::Kill,
        Purpose::Retry,
        Purpose::Autorestart,
    ];
}

/// The pending deadlines.
#[derive(Default)]
pub struct Timers {
    queue: DelayQueue<(InstanceId, Purpose)>,
    /// The queue key of each pending deadline. Invariant: exactly the entries of `queue`.
    keys: HashMap<(InstanceId, Purpose), delay_queue::Key>,
}

impl Timers {
    /// Sets the deadline of `id` for `purpose` to `delay` from now, replacing any earlier one.
    pub fn set(&mut self, id: InstanceId, purpose: Purpose, delay: Duration) {
        self.cancel(id, purpose);
        let key = self.queue.insert((id, purpose), delay);
        self.keys.insert((id, purpose), key);
    }

    /// Drops the deadline of `id` for `purpose`, if any.
    pub fn cancel(&mut self, id: InstanceId, purpose: Purpose) {
        if let Some(key) = self.keys.remove(&(id, purpose)) {
            self.queue.try_remove(&key);
        }
    }

    /// Drops every deadline of `id` that belongs to its state.
    pub fn cancel_state(&mut self, id: InstanceId) {
        for purpose in Purpose::OF_STATE {
            self.cancel(id, purpose);
        }
    }

    /// The next deadline that has passed; pending while none has. A cancelled deadline never
    /// comes out.
    pub fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<Option<(InstanceId, Purpose)>> {
        self.queue.poll_expired(cx).map(|expired| {
            expired.map(|expired| {
                let due = expired.into_inner();
                self.keys.remove(&due);
                due
            })
        })
    }
}
