//! The one narrow interface between the supervisor and the operating system: spawning a
//! program's process (off the supervisor's thread: the outcome comes later), signalling its
//! group, learning that children exited, finding and reaping them. [`super::process::System`] implements it with real processes; the actor's unit tests
//! implement it with a fake, so that they run in-process with paused time.

use std::{
    os::fd::OwnedFd,
    sync::Arc,
    task::{Context, Poll},
};

use nix::sys::signal::Signal;

use super::{
    process::{ExitInfo, SpawnError},
    registry::InstanceId,
};
use crate::config::ProgramConfig;

/// What the supervisor asks of the operating system. Every method returns at once.
pub trait Os: Send + 'static {
    /// Asks for one process of `config` for instance `id` (named `instance`), in a process
    /// group of its own, with `stdio` as its stdin, stdout
    /// and stderr. Returns at once: the spawn is
    /// made elsewhere, in the order asked, and its outcome (the pid, also the group's id, or
    /// why it failed) comes from [`Os::poll_spawned`] with `seq`, which grows by one with each
    /// ask. The caller owns the pid until it reaps it.
    /// The process is born in `instance`'s container when the system offers containers.
    fn spawn(
        &mut self,
        seq: u64,
        id: InstanceId,
        instance: &str,
        config: Arc<ProgramConfig>,
        stdio: ChildStdio,
    );

    /// Ready with the outcome of each spawn asked for, in the order asked; `None` once no
    /// outcome can come any more.
    fn poll_spawned(&mut self, cx: &mut Context<'_>) -> Poll<Option<Spawned>>;

    /// The `seq` of the last spawn that has begun. A child that exited and that the caller
    /// does not know may be the process of a spawn up to this one whose outcome is not told
    /// yet; it cannot be of a later one.
    fn spawns_begun(&self) -> u64;

    /// Signals the process group led by `pid`; a group that is already gone is no error.
    fn signal_group(&mut self, pid: u32, signal: Signal);

    /// Signals the process `pid` alone (a leader the caller has not reaped yet); one that is
    /// already gone is no error.
    fn signal_process(&mut self, pid: u32, signal: Signal);

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

/// The outcome of the spawn asked for with `seq` for instance `id`.
#[derive(Debug)]
pub struct Spawned {
    pub seq: u64,
    pub id: InstanceId,
    pub result: Result<u32, SpawnError>,
}
