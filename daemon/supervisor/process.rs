//! Spawning one process of a program and the task that owns it: the only code that signals or
//! reaps a child, so a signal can never reach a pid that was already reaped and reused.

use std::{
    fs::{File, OpenOptions},
    os::unix::{fs::OpenOptionsExt, process::ExitStatusExt},
    path::Path,
    pin::Pin,
    process::{ExitStatus, Stdio},
    time::Duration,
};

use nix::{
    sys::signal::{Signal, killpg},
    unistd::Pid,
};
use tokio::{
    process::{Child, Command},
    sync::{mpsc, oneshot},
    time::Sleep,
};

use super::{InstanceId, Notice};
use crate::config::ProgramConfig;

/// How to stop a process: its own signal to the group, then SIGKILL after `timeout`.
#[derive(Debug, Clone, Copy)]
pub struct StopOrder {
    pub signal: Signal,
    pub timeout: Duration,
}

/// A freshly spawned process: its pid (also its process group id) and the way to stop it.
pub struct Spawned {
    pub pid: u32,
    pub stop: oneshot::Sender<StopOrder>,
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitInfo {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

impl ExitInfo {
    pub fn from_status(status: ExitStatus) -> Self {
        ExitInfo {
            code: status.code(),
            signal: status.signal(),
        }
    }

    /// "exit status 1" or "killed by SIGKILL".
    pub fn describe(self) -> String {
        match (self.code, self.signal) {
            (Some(code), _) => format!("exit status {code}"),
            (None, Some(signal)) => match Signal::try_from(signal) {
                Ok(known) => format!("killed by {}", known.as_str()),
                Err(_) => format!("killed by signal {signal}"),
            },
            (None, None) => "ended".to_string(),
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

/// Spawns one process of `config` in its own process group, with stdin on /dev/null, only fds
/// 0-2 open, an empty signal mask and default signal dispositions, and starts the task that
/// owns it. That task sends [`Notice`]s tagged with `token`.
pub fn spawn(
    config: &ProgramConfig,
    id: InstanceId,
    token: u64,
    notices: &mpsc::UnboundedSender<Notice>,
) -> Result<Spawned, SpawnError> {
    let mut command = Command::new(&config.argv[0]);
    command
        .args(&config.argv[1..])
        .envs(&config.env)
        .stdin(null()?)
        .stdout(output(config.stdout.as_deref())?)
        .stderr(output(config.stderr.as_deref())?)
        // Keeps std's posix_spawn fast path; the group lets a stop reach grandchildren.
        .process_group(0);
    if let Some(dir) = &config.workingdir {
        command.current_dir(dir);
    }
    if let Some(mask) = config.umask {
        let mask = nix::sys::stat::Mode::from_bits_truncate(mask as nix::libc::mode_t);
        // SAFETY: umask(2) is async-signal-safe; the closure neither allocates nor locks.
        // A pre_exec hook forces std's slower fork path, so only programs with a umask pay it.
        unsafe {
            command.pre_exec(move || {
                nix::sys::stat::umask(mask);
                Ok(())
            });
        }
    }
    let child = command
        .spawn()
        .map_err(|error| SpawnError::from_io(None, &error))?;
    let pid = child
        .id()
        .ok_or_else(|| SpawnError("the process vanished at spawn".to_string()))?;
    let (stop, stop_orders) = oneshot::channel();
    tokio::spawn(own_child(
        child,
        pid,
        Watch {
            id,
            token,
            starttime: config.starttime,
            notices: notices.clone(),
        },
        stop_orders,
    ));
    Ok(Spawned { pid, stop })
}

/// Where a child's output goes: appended to `path` (created if missing), or discarded.
fn output(path: Option<&Path>) -> Result<Stdio, SpawnError> {
    let Some(path) = path else {
        return null();
    };
    // O_NONBLOCK: opening a FIFO nobody reads must fail (ENXIO) rather than block the
    // supervisor. The child gets a blocking descriptor, as it expects.
    let file: File = OpenOptions::new()
        .append(true)
        .create(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)
        .map_err(|error| SpawnError::from_io(Some(path), &error))?;
    nix::fcntl::fcntl(
        &file,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_APPEND),
    )
    .map_err(|errno| SpawnError::from_io(Some(path), &std::io::Error::from(errno)))?;
    Ok(Stdio::from(file))
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

/// What the owning task reports to, and about whom.
struct Watch {
    id: InstanceId,
    token: u64,
    starttime: Duration,
    notices: mpsc::UnboundedSender<Notice>,
}

impl Watch {
    fn send(&self, notice: impl FnOnce(InstanceId, u64) -> Notice) {
        // The supervisor holds the receiver for its whole life; a failed send means it is gone
        // and nobody is left to tell.
        let _ = self.notices.send(notice(self.id, self.token));
    }
}

/// Owns `child` until it is reaped: reports when `starttime` has passed, carries out a stop
/// order (signal to the group, SIGKILL after the timeout), and reports the exit.
///
/// One timer serves both deadlines: the start deadline until a stop order arrives, then the
/// kill deadline (a stop makes the start deadline moot). This future lives as long as the
/// process, once per child, so it is kept small.
async fn own_child(
    mut child: Child,
    pid: u32,
    watch: Watch,
    mut stop_orders: oneshot::Receiver<StopOrder>,
) {
    let group = Pid::from_raw(pid as i32);
    // Allocated only while a deadline is set: most children never have one after start-up.
    let mut timer: Option<(Timer, Pin<Box<Sleep>>)> = None;
    if !watch.starttime.is_zero() {
        timer = Some((Timer::Start, Box::pin(tokio::time::sleep(watch.starttime))));
    }
    let mut stop_pending = true;
    let mut stop_ordered = false;
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            purpose = elapsed(&mut timer) => {
                timer = None;
                if purpose == Timer::Start {
                    watch.send(|id, token| Notice::StartTimeElapsed { id, token });
                } else {
                    signal_group(group, Signal::SIGKILL);
                    watch.send(|id, token| Notice::Killed { id, token });
                }
            }
            order = &mut stop_orders, if stop_pending => {
                stop_pending = false;
                // A dropped sender is not a stop order: keep waiting for the exit.
                if let Ok(order) = order {
                    stop_ordered = true;
                    signal_group(group, order.signal);
                    timer = Some((Timer::Kill, Box::pin(tokio::time::sleep(order.timeout))));
                }
            }
        }
    };
    if stop_ordered {
        // The leader is gone but its group may not be: nothing of a stopped program survives.
        // The group id cannot be reused while any member is alive.
        signal_group(group, Signal::SIGKILL);
    }
    let exit = match status {
        Ok(status) => ExitInfo::from_status(status),
        Err(_) => ExitInfo {
            code: None,
            signal: None,
        },
    };
    watch.send(|id, token| Notice::Exited { id, token, exit });
}

/// Waits for `timer` and says what it was for; never completes without one.
async fn elapsed(timer: &mut Option<(Timer, Pin<Box<Sleep>>)>) -> Timer {
    match timer {
        Some((purpose, sleep)) => {
            sleep.as_mut().await;
            *purpose
        }
        None => std::future::pending().await,
    }
}

/// What the one timer of [`own_child`] is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    /// Report [`Notice::StartTimeElapsed`].
    Start,
    /// SIGKILL the group: the stop timeout is over.
    Kill,
}

/// Signals the whole process group led by `group`. Errors (the group is already gone) are
/// expected and ignored.
fn signal_group(group: Pid, signal: Signal) {
    // kill(-pid) with pid <= 0 would reach every process we may signal.
    if group.as_raw() > 0 {
        let _ = killpg(group, signal);
    }
}
