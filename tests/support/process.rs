//! Processes a test spawns or finds: the one kill-on-drop [`Guard`], which leaves nothing
//! behind even when the test fails, and what /proc says about a process.

use std::{
    process::{Child, Command, ExitStatus},
    time::Duration,
};

use nix::{
    sys::signal::{self, Signal},
    unistd::Pid,
};

use super::wait::{DEADLINE, expect, poll};

/// How long a guarded process has to exit after SIGTERM before everything is killed.
const STOP_GRACE: Duration = Duration::from_secs(15);

/// A process that is stopped when the guard drops, whatever happened in the test: SIGTERM and
/// up to [`STOP_GRACE`] to exit; then SIGKILL for the process group of each of its children
/// and for itself. Last, any descendant it had when the guard dropped that still lives (one it
/// did not start and so does not stop, or one that left its group) is killed too.
pub struct Guard {
    pid: u32,
    /// `None` for a process that is not our child (a daemon that detached).
    child: Option<Child>,
}

impl Guard {
    /// Spawns `command` under a guard.
    pub fn spawn(command: &mut Command) -> Guard {
        let child = command
            .spawn()
            .unwrap_or_else(|error| panic!("spawn {:?}: {error}", command.get_program()));
        Guard::new(child)
    }

    pub fn new(child: Child) -> Guard {
        Guard {
            pid: child.id(),
            child: Some(child),
        }
    }

    /// Guards a process that is not our child: it cannot be reaped, only watched in /proc.
    pub fn adopt(pid: u32) -> Guard {
        Guard { pid, child: None }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The child process (its pipes, say).
    pub fn child(&mut self) -> &mut Child {
        self.child
            .as_mut()
            .expect("an adopted process is not our child")
    }

    /// The exit status if the process has exited (and is reaped).
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        self.child().try_wait().expect("try_wait")
    }

    /// Waits for the process to exit for at most [`DEADLINE`]; its status, `None` on timeout.
    pub fn wait_exit(&mut self) -> Option<ExitStatus> {
        let mut status = None;
        poll(DEADLINE, || {
            status = self.try_exit();
            status.is_some()
        });
        status
    }

    fn gone(&mut self) -> bool {
        match &mut self.child {
            Some(child) => !matches!(child.try_wait(), Ok(None)),
            None => !alive(self.pid),
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.gone() {
            return;
        }
        let mut tree = descendants(self.pid);
        let _ = signal::kill(pid(self.pid), Signal::SIGTERM);
        if !poll(STOP_GRACE, || self.gone()) {
            // It did not stop: kill everything it started (each program has its own process
            // group), then the process.
            tree.extend(descendants(self.pid));
            for child in children_of(self.pid) {
                let _ = signal::killpg(pid(child), Signal::SIGKILL);
            }
            let _ = signal::kill(pid(self.pid), Signal::SIGKILL);
        }
        if let Some(child) = &mut self.child {
            let _ = child.wait();
        }
        for process in tree {
            if process.is_alive() {
                let _ = signal::kill(pid(process.pid), Signal::SIGKILL);
            }
        }
    }
}

/// A process as it was seen: its pid and start time, so that a pid reused since is not taken
/// for it.
#[derive(Clone, Copy)]
struct Seen {
    pid: u32,
    start: u64,
}

impl Seen {
    fn is_alive(self) -> bool {
        alive(self.pid) && start_time(self.pid) == Some(self.start)
    }
}

/// Every live descendant of `pid`, from /proc.
fn descendants(pid: u32) -> Vec<Seen> {
    let mut found = Vec::new();
    let mut queue = children_of(pid);
    while let Some(next) = queue.pop() {
        if let Some(start) = start_time(next) {
            found.push(Seen { pid: next, start });
        }
        queue.extend(children_of(next));
    }
    found
}

fn pid(pid: u32) -> Pid {
    Pid::from_raw(pid as i32)
}

/// Sends `signal` to `pid`; fails the test if it cannot.
pub fn send(target: u32, signal: Signal) {
    signal::kill(pid(target), signal).unwrap_or_else(|error| panic!("kill {target}: {error}"));
}

/// The fields of /proc/PID/stat after the command, from the state (field 3) on.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// When `pid` started, in clock ticks since boot (field 22 of /proc/PID/stat).
fn start_time(pid: u32) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

/// The pids of the live children of `pid` (forked by any of its threads), from /proc.
pub fn children_of(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut children = Vec::new();
    for task in tasks.filter_map(Result::ok) {
        let text = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        children.extend(
            text.split_whitespace()
                .filter_map(|word| word.parse::<u32>().ok()),
        );
    }
    children
}

/// Whether `pid` is alive (a zombie counts as dead).
pub fn alive(pid: u32) -> bool {
    stat_fields(pid).is_some_and(|fields| fields.first().is_some_and(|state| state != "Z"))
}

/// Waits until `pid` is gone; fails the test after [`DEADLINE`].
pub async fn wait_gone(what: &str, pid: u32) {
    expect(what, || async { (!alive(pid)).then_some(()) }).await;
}
