//! The one narrow interface between the supervisor and the operating system: spawning a
//! program's process, signalling its group, learning that children exited, finding and reaping
//! them. [`super::process::System`] implements it with real processes; the actor's unit tests
//! implement it with a fake, so that they run in-process with paused time.

use std::{
    os::fd::OwnedFd,
    task::{Context, Poll},
};

use nix::sys::signal::Signal;

use super::process::{ExitInfo, SpawnError};
use crate::config::ProgramConfig;

/// What the supervisor asks of the operating system. Every method returns at once.
pub trait Os: Send + 'static {
    /// Spawns one process of `config` in a process group of its own, with `stdio` as its
    /// stdin, stdout and stderr, and returns its pid (also the group's id). The caller owns the pid
    /// until it reaps it.
    /// The process is born in `instance`'s container when the system offers containers.
    fn spawn(
        &mut self,
        instance: &str,
        config: &ProgramConfig,
        stdio: ChildStdio,
    ) -> Result<u32, SpawnError>;

    /// Signals the process group led by `pid`; a group that is already gone is no error.
    fn signal_group(&mut self, pid: u32, signal: Signal);

    /// A child that has exited and is not reaped yet, if any. It stays a zombie (its pid and
    /// group id cannot be reused) until [`Os::reap`] is called for it.
    fn exited_child(&mut self) -> Option<u32>;

    /// Reaps `pid`, which [`Os::exited_child`] reported, and says how it ended; `None` if it
    /// was not an exited child.
    fn reap(&mut self, pid: u32) -> Option<ExitInfo>;

    /// Ready with `Some` whenever children may have exited since the last notice (SIGCHLD);
    /// one notice may stand for many exits. `None` once no notice can come any more.
    fn poll_exits(&mut self, cx: &mut Context<'_>) -> Poll<Option<()>>;

    /// Ends what the leader of `instance` left behind when it ended, wherever in the session
    /// or process groups it went: every process in its container, or, without containers, the
    /// orphans it left to the daemon (a child subreaper) that `ours` does not know. With
    /// `kill` false they are kept, and never taken for another instance's leftovers.
    fn end_leftovers(&mut self, instance: &str, kill: bool, ours: &dyn Fn(u32) -> bool);

    /// Forgets the container of `instance`, which is gone (removed by a reload).
    fn release(&mut self, instance: &str);

    /// How processes are kept track of, for `status`: "cgroup v2 at ...", or why only by
    /// process group.
    fn containment(&self) -> String;
}

/// Where a new process's stdin, stdout and stderr go: the read end of its stdin pipe, the
/// write end of a capture pipe, or `None` for /dev/null. The same pipe may serve both outputs
/// (`redirect_stderr`).
#[derive(Debug, Default)]
pub struct ChildStdio {
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
    /// The three are one terminal (`tty: true`): the process leads a session of its own with
    /// it as its controlling terminal, rather than a process group of its own in the daemon's
    /// session (its group id is its pid all the same).
    pub terminal: bool,
}
