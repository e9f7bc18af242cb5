//! Child processes at the system level: spawning one process of a program, signalling its
//! process group, and finding and reaping exited children; [`System`] offers them to the
//! supervisor as its [`Os`]. The supervisor is the only caller, and it both signals and reaps,
//! so a signal can never reach a pid that was already reaped.

use std::{
    fs::{File, OpenOptions},
    os::unix::process::{CommandExt, ExitStatusExt},
    path::Path,
    process::{Command, ExitStatus, Stdio},
    task::{Context, Poll},
};

use nix::{
    errno::Errno,
    libc,
    sys::signal::{Signal, killpg},
    unistd::Pid,
};

use tokio::signal::unix::{SignalKind, signal};

use super::os::{ChildStdio, Os};
use crate::config::ProgramConfig;

/// The real operating system: processes spawned with `posix_spawn`, exits noticed on SIGCHLD.
pub struct System {
    /// SIGCHLD, installed before the first spawn so that no exit goes unnoticed.
    child_exits: tokio::signal::unix::Signal,
}

impl System {
    /// Installs the SIGCHLD handler; fails only if signals cannot be watched.
    pub fn new() -> std::io::Result<System> {
        Ok(System {
            child_exits: signal(SignalKind::child())?,
        })
    }
}

impl Os for System {
    fn spawn(&mut self, config: &ProgramConfig, stdio: ChildStdio) -> Result<u32, SpawnError> {
        spawn(config, stdio)
    }

    fn signal_group(&mut self, pid: u32, signal: Signal) {
        signal_group(pid, signal)
    }

    fn exited_child(&mut self) -> Option<u32> {
        exited_child()
    }

    fn reap(&mut self, pid: u32) -> Option<ExitInfo> {
        reap(pid)
    }

    fn poll_exits(&mut self, cx: &mut Context<'_>) -> Poll<Option<()>> {
        self.child_exits.poll_recv(cx)
    }
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitInfo {
    /// It exited with this status.
    Code(i32),
    /// A signal killed it.
    Signal(i32),
    /// The wait status said neither.
    Unknown,
}

impl ExitInfo {
    pub fn from_status(status: ExitStatus) -> Self {
        match (status.code(), status.signal()) {
            (Some(code), _) => ExitInfo::Code(code),
            (None, Some(signal)) => ExitInfo::Signal(signal),
            (None, None) => ExitInfo::Unknown,
        }
    }

    pub fn code(self) -> Option<i32> {
        match self {
            ExitInfo::Code(code) => Some(code),
            _ => None,
        }
    }

    pub fn signal(self) -> Option<i32> {
        match self {
            ExitInfo::Signal(signal) => Some(signal),
            _ => None,
        }
    }

    /// "exit status 1" or "killed by SIGKILL".
    pub fn describe(self) -> String {
        match self {
            ExitInfo::Code(code) => format!("exit status {code}"),
            ExitInfo::Signal(signal) => match Signal::try_from(signal) {
                Ok(known) => format!("killed by {}", known.as_str()),
                Err(_) => format!("killed by signal {signal}"),
            },
            ExitInfo::Unknown => "ended".to_string(),
        }
    }
}

/// Why a spawn failed, in `strerror` words ("No such file or directory").
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SpawnError(pub String);

impl SpawnError {
    fn from_io(context: Option<&Path>, error: &std::io::Error) -> Self {
        let reason = match error.raw_os_error() {
            Some(code) => nix::errno::Errno::from_raw(code).desc().to_string(),
            None => error.to_string(),
        };
        SpawnError(match context {
            Some(path) => format!("{}: {reason}", path.display()),
            None => reason,
        })
    }
}

/// Spawns one process of `config` in its own process group, with stdin on /dev/null, stdout
/// and stderr as `stdio` says, only fds 0-2 open, an empty signal mask and default signal
/// dispositions, and returns its pid (also its process group id). The caller owns the pid: it
/// alone may signal it, until it reaps it after [`exited_child`] has reported it.
fn spawn(config: &ProgramConfig, stdio: ChildStdio) -> Result<u32, SpawnError> {
    let output = |fd: Option<std::os::fd::OwnedFd>| match fd {
        Some(fd) => Ok(Stdio::from(fd)),
        None => null(),
    };
    let mut command = Command::new(&config.argv[0]);
    command
        .args(&config.argv[1..])
        .envs(&config.env)
        .stdin(null()?)
        .stdout(output(stdio.stdout)?)
        .stderr(output(stdio.stderr)?)
        // Keeps std's posix_spawn fast path; the group lets a stop reach grandchildren.
        .process_group(0);
    if let Some(dir) = &config.workingdir {
        command.current_dir(dir);
    }
    if let Some(mask) = config.umask {
        let mask = nix::sys::stat::Mode::from_bits_truncate(mask as libc::mode_t);
        // SAFETY: umask(2) is async-signal-safe; the closure neither allocates nor locks.
        // A pre_exec hook forces std's slower fork path, so only programs with a umask pay it.
        unsafe {
            command.pre_exec(move || {
                nix::sys::stat::umask(mask);
                Ok(())
            });
        }
    }
    // Dropping std's `Child` neither waits for nor kills the process: the pid is all that is
    // kept, and no descriptor per child (every later spawn would copy it). The command, and
    // with it the daemon's copy of each pipe's write end, is dropped on return.
    command
        .spawn()
        .map(|child| child.id())
        .map_err(|error| SpawnError::from_io(None, &error))
}

/// /dev/null for a child's stdio: opened once, then duplicated (cheaper than a path lookup
/// for each of three streams of every spawn).
fn null() -> Result<Stdio, SpawnError> {
    static DEV_NULL: std::sync::OnceLock<File> = std::sync::OnceLock::new();
    let dev_null = Path::new("/dev/null");
    let duplicate = match DEV_NULL.get() {
        Some(file) => file.try_clone(),
        // Not cached until it opens: a failure (out of descriptors) is retried next time.
        None => OpenOptions::new()
            .read(true)
            .write(true)
            .open(dev_null)
            .and_then(|file| DEV_NULL.get_or_init(|| file).try_clone()),
    };
    duplicate
        .map(Stdio::from)
        .map_err(|error| SpawnError::from_io(Some(dev_null), &error))
}

/// The pid of a child that has exited and is not yet reaped, if any. It stays a zombie until
/// [`reap`] is called for it, so until then neither its pid nor its process group id can be
/// reused and signalling them is safe.
///
/// Only peeks (WNOWAIT): nothing is reaped here, and [`reap`] reaps by pid alone.
fn exited_child() -> Option<u32> {
    loop {
        // SAFETY: siginfo_t is plain old data; all zeroes is a valid value.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
        // SAFETY: `info` is a valid, exclusively borrowed siginfo_t.
        if unsafe { libc::waitid(libc::P_ALL, 0, &mut info, flags) } == 0 {
            // SAFETY: waitid filled `info` for a child, or left si_pid 0 when none has exited.
            let pid = unsafe { info.si_pid() };
            return u32::try_from(pid).ok().filter(|pid| *pid > 0);
        }
        match Errno::last() {
            Errno::EINTR => continue,
            // ECHILD: there are no children at all.
            _ => return None,
        }
    }
}

/// Reaps `pid`, which [`exited_child`] reported, and says how it ended; `None` if it could not
/// be reaped (it was not an exited child of ours).
fn reap(pid: u32) -> Option<ExitInfo> {
    // Never 0 or -1: those would reap any child.
    let raw = libc::pid_t::try_from(pid).ok().filter(|raw| *raw > 0)?;
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid, exclusively borrowed int.
        let reaped = unsafe { libc::waitpid(raw, &mut status, libc::WNOHANG) };
        if reaped == raw {
            return Some(ExitInfo::from_status(ExitStatus::from_raw(status)));
        }
        if reaped == -1 && Errno::last() == Errno::EINTR {
            continue;
        }
        return None;
    }
}

/// Signals the whole process group led by `pid`. Errors (the group is already gone) are
/// expected and ignored.
fn signal_group(pid: u32, signal: Signal) {
    // kill(-pid) with pid <= 0 would reach every process we may signal.
    if let Ok(raw) = i32::try_from(pid)
        && raw > 0
    {
        let _ = killpg(Pid::from_raw(raw), signal);
    }
}
