//! What the supervisor answers with: views of instances, the result of an action on each
//! instance, and what a reload did. Domain types only; the gRPC layer converts them.

use std::{sync::Arc, time::Duration, time::SystemTime};

use super::{console::Console, process::ExitInfo, state::State};
use crate::output::{Screen, StreamKind};

/// One instance as `status` shows it. Owned strings: the gRPC layer moves them into its
/// message, so a Status of thousands of instances copies each name once.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceView {
    /// "web" when its program has one instance, else "web:0", "web:1", ...
    pub name: String,
    pub program: String,
    pub state: State,
    /// 0 when no process is alive.
    pub pid: u32,
    /// How long the live process has run; `None` without one.
    pub uptime: Option<Duration>,
    /// When the instance entered its current state.
    pub since: SystemTime,
    /// How the last process ended.
    pub exit: Option<ExitInfo>,
    /// Restarts by policy or on request since the daemon started.
    pub restarts: u32,
    /// supervisorctl's description column: "pid 123, uptime 0:00:05", "Exited too quickly".
    pub description: String,
    /// The reason of the last failed spawn, if that is why it is not running; else empty.
    pub spawn_error: String,
    /// The last lines of stderr at the last unexpected exit or failed start; else empty.
    pub last_stderr: String,
    /// Output bytes that could not be written to their files.
    pub output_dropped: u64,
}

/// What a client that attaches to an instance gets.
pub struct Attached {
    /// "web" or "web:1".
    pub instance: Arc<str>,
    /// Its live process.
    pub pid: u32,
    /// Where the client's input goes, the window size, and the process's end.
    pub console: Arc<Console>,
    /// What the client is shown: a terminal's recent screen and what follows (one stream,
    /// stdout); else what follows on each captured stream (what they kept is not shown).
    pub feeds: Vec<(StreamKind, Screen)>,
}

/// What a Start, Stop or Restart did to one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceResult {
    pub name: Arc<str>,
    /// Whether the instance reached what was asked (or, without waiting, accepted it).
    pub ok: bool,
    /// "started", "already running", "stopped before it was running", ...
    pub message: String,
    /// The state when the answer was given.
    pub state: State,
}

impl InstanceResult {
    pub fn new(name: &Arc<str>, ok: bool, message: impl Into<String>, state: State) -> Self {
        InstanceResult {
            name: name.clone(),
            ok,
            message: message.into(),
            state,
        }
    }
}

/// Whether an action's answer waits for the instances to reach what was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Answer once each instance is RUNNING (or failed), or STOPPED.
    ForOutcome,
    /// Answer as soon as the request is accepted.
    No,
}

/// Where a Signal request sends its signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalTo {
    /// The process group of the instance's leader: the leader and what it forked there.
    Group,
    /// The leader alone.
    Leader,
}

/// What a reload changed, by program name; each list in config order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadSummary {
    pub added: Vec<String>,
    /// Restarted with their new config, or only resized.
    pub changed: Vec<String>,
    pub removed: Vec<String>,
    pub unchanged: Vec<String>,
    /// The config's warnings, one line each with file, line, column and key.
    pub warnings: Vec<String>,
}
