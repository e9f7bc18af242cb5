//! Bulk work done a slice at a time: the instances an action or a reload has still to act on,
//! and the requests that came in behind that work. A `restart all` of a thousand programs or a
//! reload that adds a thousand would otherwise keep every client waiting for the whole of it.
//!
//! Invariants: steps run in the order they were queued, one [`Slice`] per turn of the
//! supervisor's loop, with requests, exits and deadlines served between turns. A request that
//! changes something waits here while steps are pending, so that it acts after the work that
//! came before it (a `stop` sent after a `start all` stops what the start started); requests
//! that only read are answered at once, between slices.

use std::{collections::VecDeque, sync::Arc};

use super::{
    event::Actor, handle::Request, registry::InstanceId, state::Input, view::Wait,
    waiters::WaiterId,
};

/// How much one turn of the supervisor's loop takes on: at most this many steps (or exits
/// reaped), and no more once this long has passed. A spawn returns only once its child has
/// exec'd, so on a machine busy with a thousand starting children one spawn can wait
/// milliseconds for the child to be scheduled: the time bound keeps a turn short whatever the
/// load.
const SLICE_STEPS: usize = 64;
const SLICE_TIME: std::time::Duration = std::time::Duration::from_millis(2);

/// One turn's budget: see [`SLICE_STEPS`] and [`SLICE_TIME`].
pub struct Slice {
    began: std::time::Instant,
    taken: usize,
}

impl Slice {
    pub fn begin() -> Slice {
        Slice {
            began: std::time::Instant::now(),
            taken: 0,
        }
    }

    /// Whether one more step fits (and counts it).
    pub fn take(&mut self) -> bool {
        if self.taken == SLICE_STEPS || (self.taken > 0 && self.began.elapsed() >= SLICE_TIME) {
            return false;
        }
        self.taken += 1;
        true
    }
}

/// What an action does to each of its instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Start,
    Stop,
    Restart,
}

/// One thing to do to one instance.
pub enum Step {
    /// An action's part for one instance: feed it the verb's input, then answer its slot.
    Act {
        verb: Verb,
        id: InstanceId,
        /// Its name, to answer with should the instance be gone by then.
        name: Arc<str>,
        waiter: WaiterId,
        slot: usize,
        wait: Wait,
        by: Option<Actor>,
    },
    /// A reload's (or the start-up's) part for one instance.
    Apply {
        id: InstanceId,
        input: Input,
        by: Option<Actor>,
    },
}

/// The work pending and the requests held behind it.
#[derive(Default)]
pub struct Backlog {
    /// Steps of the work in progress, in order.
    steps: VecDeque<Step>,
    /// Requests that change something, held until the steps before them are done, in order.
    held: VecDeque<Request>,
}

impl Backlog {
    /// Whether anything waits: steps to take or requests to handle.
    pub fn has_work(&self) -> bool {
        !self.steps.is_empty() || !self.held.is_empty()
    }

    pub fn push(&mut self, step: Step) {
        self.steps.push_back(step);
    }

    pub fn hold(&mut self, request: Request) {
        self.held.push_back(request);
    }

    /// The next step, if any.
    pub fn next_step(&mut self) -> Option<Step> {
        self.steps.pop_front()
    }

    /// The next held request, once no step is left before it.
    pub fn next_request(&mut self) -> Option<Request> {
        if self.steps.is_empty() {
            self.held.pop_front()
        } else {
            None
        }
    }

    /// Drops every pending step and held request (a shutdown stops everything anyway). A held
    /// request's caller is told the daemon is shutting down (its reply is dropped); an
    /// action's slots that were never acted on are answered the same way when the supervisor
    /// ends.
    pub fn clear(&mut self) {
        self.steps.clear();
        self.held.clear();
    }
}

impl Verb {
    /// The answer of a request that does not wait for the outcome.
    pub fn accepted(self) -> &'static str {
        match self {
            Verb::Start => "starting",
            Verb::Stop => "stopping",
            Verb::Restart => "restarting",
        }
    }
}

/// Whether a request only reads (and so may be answered between slices of other work).
pub fn only_reads(request: &Request) -> bool {
    matches!(
        request,
        Request::Status { .. }
            | Request::WatchEvents { .. }
            | Request::Tail { .. }
            | Request::Attach { .. }
    )
}
