//! Child processes at the system level: spawning one process of a program (as its own user
//! when it has one), saying what failed when a spawn fails, signalling its process group, and
//! finding and reaping exited children; [`System`] offers them to the supervisor as its
//! [`Os`]. The supervisor is the only caller, and it both signals and reaps, so a signal can
//! never reach a pid that was already reaped.

use std::{
    ffi::CString,
    fs::{File, OpenOptions},
    os::{
        fd::OwnedFd,
        unix::{
            ffi::OsStrExt,
            process::{CommandExt, ExitStatusExt},
        },
    },
    path::Path,
    process::{Command, ExitStatus, Stdio},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
};

use nix::{
    errno::Errno,
    libc,
    sys::{
        signal::{Signal, killpg},
        stat::Mode,
    },
    unistd::{Gid, Pid, Uid},
};

use tokio::signal::unix::{SignalKind, signal};

use super::{
    cgroups::Cgroups,
    ledger::Ledger,
    os::{ChildStdio, Os, Spawned},
    registry::InstanceId,
};
use crate::config::{
    Identity, ProgramConfig,
    preflight::{self, ExecutableProblem},
};

/// The real operating system: processes spawned with `posix_spawn`, exits noticed on SIGCHLD,
/// each instance's tree in a cgroup when the system offers one.
pub struct System {
    /// SIGCHLD, installed before the first spawn so that no exit goes unnoticed.
    child_exits: tokio::signal::unix::Signal,
    /// Makes the spawns on a thread of its own. Declared before `cgroups`: it is joined
    /// before they are dropped.
    spawner: Spawner,
    /// The daemon's cgroups (shared with the spawner, which steps into them), or why there
    /// are none.
    cgroups: Result<Arc<Cgroups>, String>,
    /// Without cgroups: orphans a program with `kill_leftovers: false` left to the daemon, by
    /// pid with their start time (a pid reused since is not one of them).
    kept: std::collections::HashMap<u32, u64>,
    /// Without cgroups: the file of live children a successor reads after a SIGKILL.
    ledger: Option<Ledger>,
}

impl System {
    /// Installs the SIGCHLD handler, makes the daemon a child subreaper, and opens the cgroup
    /// tree of the daemon of socket `cgroups_of` (killing what an earlier daemon on that socket
    /// left there, and logging it); `Err` says why there are no cgroups. Fails only if signals
    /// cannot be watched.
    pub fn new(socket: Option<&Path>, cgroups_wanted: bool) -> std::io::Result<System> {
        let cgroups_of = match (socket, cgroups_wanted) {
            (_, false) => Err("turned off by daemon.cgroups: false"),
            (None, _) => Err("no socket to name the daemon's cgroups by"),
            (Some(socket), true) => Ok(socket),
        };
        let child_exits = signal(SignalKind::child())?;
        // What a program's leader leaves behind when it ends is the daemon's child then, not
        // init's: found, and reaped, here.
        // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes an integer and changes nothing else.
        if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
            tracing::warn!(
                "cannot become a child subreaper: {}",
                std::io::Error::last_os_error()
            );
        }
        let cgroups = match cgroups_of {
            Ok(socket) => Cgroups::open(socket).map(|(cgroups, found)| {
                for line in found {
                    tracing::warn!("{line}");
                }
                Arc::new(cgroups)
            }),
            Err(reason) => Err(reason.to_string()),
        };
        let mut ledger = None;
        if let Err(reason) = &cgroups {
            tracing::info!("instances are tracked by process group only: {reason}");
            // What an earlier daemon on this socket left running is ended by pid.
            match socket.map(Ledger::open) {
                Some(Ok((opened, found))) => {
                    for line in found {
                        tracing::warn!("{line}");
                    }
                    ledger = Some(opened);
                }
                Some(Err(error)) => tracing::warn!("no ledger of children: {error}"),
                None => {}
            }
        }
        Ok(System {
            child_exits,
            spawner: Spawner::start(cgroups.as_ref().ok().cloned())?,
            cgroups,
            kept: std::collections::HashMap::new(),
            ledger,
        })
    }
}

/// A spawn to make: what [`Os::spawn`] was given.
struct Job {
    seq: u64,
    id: InstanceId,
    instance: Box<str>,
    config: Arc<ProgramConfig>,
    stdio: ChildStdio,
}

/// The thread that makes every spawn, one at a time in the order asked. A spawn returns only
/// once its child has exec'd, and on a machine busy with a thousand starting children that can
/// take many milliseconds: made here, it keeps no request waiting.
///
/// Invariant: `begun` is set to a job's `seq` before its child can exist, and its outcome is
/// sent after; outcomes are sent in `seq` order.
struct Spawner {
    /// The jobs; `None` once the spawner is told to end.
    jobs: Option<std::sync::mpsc::Sender<Job>>,
    outcomes: tokio::sync::mpsc::UnboundedReceiver<Spawned>,
    begun: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Spawner {
    fn start(cgroups: Option<Arc<Cgroups>>) -> std::io::Result<Spawner> {
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let (told, outcomes) = tokio::sync::mpsc::unbounded_channel();
        let begun = Arc::new(AtomicU64::new(0));
        let mark = begun.clone();
        let thread = std::thread::Builder::new()
            .name("spawner".into())
            .spawn(move || {
                for job in queue {
                    mark.store(job.seq, Ordering::SeqCst);
                    let (seq, id) = (job.seq, job.id);
                    // The daemon's copies of the pipes' write ends are closed once it returns.
                    let result = spawn_in(cgroups.as_deref(), job);
                    let outcome = Spawned { seq, id, result };
                    if told.send(outcome).is_err() {
                        return;
                    }
                }
            })?;
        Ok(Spawner {
            jobs: Some(jobs),
            outcomes,
            begun,
            thread: Some(thread),
        })
    }
}

impl Drop for Spawner {
    /// Ends the thread once the jobs asked for are made.
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Spawns `job`, in its instance's cgroup when there are cgroups: the daemon steps in for the
/// spawn, so that the process is born there with all it will fork.
fn spawn_in(cgroups: Option<&Cgroups>, job: Job) -> Result<u32, SpawnError> {
    let Some(cgroups) = cgroups else {
        return spawn(&job.config, job.stdio);
    };
    let entered = cgroups.enter(&job.instance);
    let spawned = spawn(&job.config, job.stdio);
    match entered {
        Ok(()) => {
            if let Err(error) = cgroups.leave() {
                tracing::error!("cannot return to the daemon's own cgroup: {error}");
            }
        }
        Err(error) => tracing::warn!("{}: spawned outside its cgroup: {error}", job.instance),
    }
    spawned
}

impl Os for System {
    fn spawn(
        &mut self,
        seq: u64,
        id: InstanceId,
        instance: &str,
        config: Arc<ProgramConfig>,
        stdio: ChildStdio,
    ) {
        let job = Job {
            seq,
            id,
            instance: instance.into(),
            config,
            stdio,
        };
        if let Some(jobs) = &self.spawner.jobs {
            // The thread ends only when told to, or if it panicked: then nothing can spawn.
            if let Err(std::sync::mpsc::SendError(job)) = jobs.send(job) {
                tracing::error!("the spawner thread is gone: {} not spawned", job.instance);
            }
        }
    }

    fn poll_spawned(&mut self, cx: &mut Context<'_>) -> Poll<Option<Spawned>> {
        let polled = self.spawner.outcomes.poll_recv(cx);
        if let (
            Poll::Ready(Some(Spawned {
                result: Ok(pid), ..
            })),
            Some(ledger),
        ) = (&polled, &mut self.ledger)
        {
            ledger.spawned(*pid);
        }
        polled
    }

    fn spawns_begun(&self) -> u64 {
        self.spawner.begun.load(Ordering::SeqCst)
    }

    fn signal_group(&mut self, pid: u32, signal: Signal) {
        signal_group(pid, signal)
    }

    fn signal_process(&mut self, pid: u32, signal: Signal) {
        // kill(pid) with pid <= 0 would reach a group, or every process we may signal.
        if let Ok(raw) = i32::try_from(pid)
            && raw > 0
        {
            let _ = nix::sys::signal::kill(Pid::from_raw(raw), signal);
        }
    }

    fn exited_child(&mut self) -> Option<u32> {
        exited_child()
    }

    fn reap(&mut self, pid: u32) -> Option<ExitInfo> {
        let exit = reap(pid);
        if exit.is_some()
            && let Some(ledger) = &mut self.ledger
        {
            ledger.reaped(pid);
        }
        exit
    }

    fn poll_exits(&mut self, cx: &mut Context<'_>) -> Poll<Option<()>> {
        self.child_exits.poll_recv(cx)
    }

    fn end_leftovers(&mut self, instance: &str, kill: bool, ours: &dyn Fn(u32) -> bool) {
        if let Ok(cgroups) = &self.cgroups {
            if kill && let Err(error) = cgroups.kill(instance) {
                tracing::warn!("{instance}: its cgroup could not be killed: {error}");
            }
            return;
        }
        // Its orphans are the daemon's children now; the ones it knows are its own.
        self.kept
            .retain(|pid, start| start_time(*pid) == Some(*start));
        for pid in children("self") {
            if ours(pid) || self.kept.contains_key(&pid) {
                continue;
            }
            let Some(start) = start_time(pid) else {
                continue;
            };
            if kill {
                let what = command_line(pid);
                kill_tree(pid);
                tracing::warn!("{instance}: killed pid {pid} ({what}) that it left behind");
            } else {
                self.kept.insert(pid, start);
            }
        }
    }

    fn release(&mut self, instance: &str) {
        if let Ok(cgroups) = &self.cgroups {
            cgroups.release(instance);
        }
    }

    fn containment(&self) -> String {
        match &self.cgroups {
            Ok(cgroups) => format!("cgroup v2 at {}", cgroups.base().display()),
            Err(reason) => format!("process groups only ({reason})"),
        }
    }
}

/// The children of process `of` (a pid, or `self`), from `/proc/OF/task/*/children`: every
/// thread's, since an orphan is given to one of them.
fn children(of: &str) -> Vec<u32> {
    let mut children = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{of}/task")) else {
        return children;
    };
    for task in tasks.flatten() {
        let list = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        children.extend(
            list.split_whitespace()
                .filter_map(|pid| pid.parse::<u32>().ok()),
        );
    }
    children
}

/// When `pid` started (field 22 of its stat, in clock ticks since boot); `None` once it is gone.
pub(super) fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command may hold spaces and parentheses: the fields follow its last `)`.
    let (_, fields) = stat.rsplit_once(") ")?;
    fields.split(' ').nth(19)?.parse().ok()
}

/// `pid`'s command line, words joined by spaces, for the event log.
pub(super) fn command_line(pid: u32) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let words: Vec<String> = raw
        .split(|byte| *byte == 0)
        .filter(|word| !word.is_empty())
        .map(|word| String::from_utf8_lossy(word).into_owned())
        .collect();
    words.join(" ")
}

/// SIGKILLs `pid` and everything below it. Children first are found, then all are killed, so
/// that none is orphaned to elsewhere in between; `pid` is the daemon's child and not reaped,
/// so it cannot be another process by then.
fn kill_tree(pid: u32) {
    let mut tree = vec![pid];
    let mut next = 0;
    while next < tree.len() {
        let parent = tree[next];
        next += 1;
        tree.extend(children(&parent.to_string()));
    }
    for member in tree {
        let _ = nix::sys::signal::kill(Pid::from_raw(member as i32), Signal::SIGKILL);
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

/// Why a spawn failed: the step that failed and what it was about ("executable `foo` not
/// found on PATH ...", "workingdir /srv/app: Permission denied (as user www-data)"), in
/// `strerror` words.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SpawnError(pub String);

impl SpawnError {
    fn from_io(context: Option<&Path>, error: &std::io::Error) -> Self {
        let reason = preflight::io_reason(error);
        SpawnError(match context {
            Some(path) => format!("{}: {reason}", path.display()),
            None => reason,
        })
    }
}

/// Spawns one process of `config` in its own process group, with stdin, stdout and stderr as
/// `stdio` says (/dev/null where it gives none), only fds 0-2 open, an empty signal mask and
/// default signal dispositions, as its own user when it has one (with `HOME`, `USER` and `LOGNAME` of that
/// user unless its `env` sets them), and returns its pid (also its process group id). The
/// caller owns the pid: it alone may signal it, until it reaps it after [`exited_child`] has
/// reported it. On a terminal (`stdio.terminal`) it leads a new session instead, with the
/// terminal as its controlling one.
fn spawn(config: &ProgramConfig, stdio: ChildStdio) -> Result<u32, SpawnError> {
    let output = |fd: Option<std::os::fd::OwnedFd>| match fd {
        Some(fd) => Ok(Stdio::from(fd)),
        None => null(),
    };
    let terminal = stdio.terminal;
    let mut command = Command::new(&config.argv[0]);
    command.args(&config.argv[1..]);
    if let Some(identity) = &config.identity {
        // Before `env`, which may set them otherwise.
        command
            .env("HOME", &identity.home)
            .env("USER", &identity.user)
            .env("LOGNAME", &identity.user);
    }
    command
        .envs(&config.env)
        .stdin(output(stdio.stdin)?)
        .stdout(output(stdio.stdout)?)
        .stderr(output(stdio.stderr)?);
    if terminal {
        // SAFETY: setsid(2) and ioctl(2) are async-signal-safe system calls on no data of the
        // parent's; the closure neither allocates nor locks. std has made the terminal fd 0
        // before it runs. Only programs on a terminal pay the fork path this hook forces.
        unsafe {
            command.pre_exec(lead_a_session_on_stdin);
        }
    } else {
        // Keeps std's posix_spawn fast path; the group lets a stop reach grandchildren.
        command.process_group(0);
    }
    let switch =
        (config.identity.as_ref()).and_then(|identity| Some((identity, identity.groups.as_ref()?)));
    let report = match switch {
        Some((identity, groups)) => Some(become_user(&mut command, config, identity, groups)?),
        None => {
            if let Some(dir) = &config.workingdir {
                command.current_dir(dir);
            }
            if let Some(mask) = config.umask {
                let mask = Mode::from_bits_truncate(mask as libc::mode_t);
                // SAFETY: umask(2) is async-signal-safe; the closure neither allocates nor
                // locks. A pre_exec hook forces std's slower fork path, so only programs with
                // a umask pay it.
                unsafe {
                    command.pre_exec(move || {
                        nix::sys::stat::umask(mask);
                        Ok(())
                    });
                }
            }
            None
        }
    };
    let spawned = command.spawn();
    // Dropping std's `Child` neither waits for nor kills the process: the pid is all that is
    // kept, and no descriptor per child (every later spawn would copy it). The command, and
    // with it the daemon's copy of each pipe's write end (the report pipe's too), is dropped
    // here.
    drop(command);
    match spawned {
        Ok(child) => Ok(child.id()),
        Err(error) => {
            // std has reaped the child: whatever it reported is in the pipe, then EOF.
            let step = report.as_ref().and_then(failed_step);
            Err(explain(config, &error, step))
        }
    }
}

/// In the child of a program on a terminal, after fork: a new session (its process group
/// id, like its session id, is its pid, so a stop reaches the group as for any program), with
/// the terminal on fd 0 as its controlling terminal, so that job control, Ctrl-C and SIGWINCH
/// behave as in any terminal. A process group of its own would forbid setsid(2): std's
/// `process_group` is not used for it.
fn lead_a_session_on_stdin() -> std::io::Result<()> {
    nix::unistd::setsid()?;
    // SAFETY: TIOCSCTTY takes an integer (0: do not steal a terminal that is another
    // session's); fd 0 is the terminal, open in this process.
    if unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) } == -1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// What the child of a program with its own user does between fork and exec, in this order:
/// the supplementary groups, the gid, the uid (each only possible while still root), a check
/// that every real, effective and saved id is the one asked for, then `workingdir` (entered as
/// the user, so that a folder the user may not enter fails the spawn) and `umask`. A failure
/// of any step ends the child before exec: it never runs with more privilege than asked.
/// Everything is prepared by the daemon: the child only makes system calls, and neither
/// allocates nor locks.
struct BecomeUser {
    /// The supplementary groups, as the config resolved them.
    groups: Vec<Gid>,
    /// The group, set after the groups (setting them needs root).
    gid: Gid,
    /// The user, set last: after it, nothing else can be changed.
    uid: Uid,
    /// Entered once the identity is the user's.
    workingdir: Option<CString>,
    /// The program's `umask`, if it has one.
    umask: Option<Mode>,
    /// Where the child writes the [`Step`] that failed before it exits (close-on-exec: the
    /// daemon reads EOF when the exec succeeds).
    report: OwnedFd,
}

/// A step of [`BecomeUser`] that can fail, as the child reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Step {
    Groups = 1,
    Gid = 2,
    Uid = 3,
    Workingdir = 4,
}

impl Step {
    fn from_byte(byte: u8) -> Option<Step> {
        [Step::Groups, Step::Gid, Step::Uid, Step::Workingdir]
            .into_iter()
            .find(|step| *step as u8 == byte)
    }
}

impl BecomeUser {
    /// In the child, after fork. The C library's wrappers are the ones std itself calls after
    /// fork for `CommandExt::uid`; in the single-threaded child they are the system calls.
    fn apply(&self) -> std::io::Result<()> {
        use nix::unistd::{chdir, getresgid, getresuid, setgid, setgroups, setuid};
        self.step(Step::Groups, setgroups(&self.groups))?;
        self.step(Step::Gid, setgid(self.gid))?;
        self.step(Step::Uid, setuid(self.uid))?;
        let uids = getresuid().map_err(|errno| self.failed(Step::Uid, errno))?;
        let gids = getresgid().map_err(|errno| self.failed(Step::Gid, errno))?;
        if [uids.real, uids.effective, uids.saved] != [self.uid; 3] {
            return Err(self.failed(Step::Uid, Errno::EPERM));
        }
        if [gids.real, gids.effective, gids.saved] != [self.gid; 3] {
            return Err(self.failed(Step::Gid, Errno::EPERM));
        }
        if let Some(dir) = &self.workingdir {
            self.step(Step::Workingdir, chdir(dir.as_c_str()))?;
        }
        if let Some(mask) = self.umask {
            nix::sys::stat::umask(mask);
        }
        Ok(())
    }

    fn step(&self, step: Step, result: nix::Result<()>) -> std::io::Result<()> {
        result.map_err(|errno| self.failed(step, errno))
    }

    /// Tells the daemon which step failed; the error (its errno) reaches it through std.
    fn failed(&self, step: Step, errno: Errno) -> std::io::Error {
        let _ = nix::unistd::write(&self.report, &[step as u8]);
        std::io::Error::from(errno)
    }
}

/// Makes `command` become `identity` (with `groups`) in the child, enter `workingdir` and set
/// `umask` of `config` there; returns the read end of the pipe that says which step failed.
fn become_user(
    command: &mut Command,
    config: &ProgramConfig,
    identity: &Identity,
    groups: &[u32],
) -> Result<OwnedFd, SpawnError> {
    let workingdir = match &config.workingdir {
        Some(dir) => Some(CString::new(dir.as_os_str().as_bytes()).map_err(|_| {
            SpawnError(format!("workingdir {}: contains a NUL byte", dir.display()))
        })?),
        None => None,
    };
    let (report, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|errno| SpawnError(format!("cannot make a pipe: {}", errno.desc())))?;
    let become_user = BecomeUser {
        groups: groups.iter().map(|gid| Gid::from_raw(*gid)).collect(),
        gid: Gid::from_raw(identity.gid),
        uid: Uid::from_raw(identity.uid),
        workingdir,
        umask: config
            .umask
            .map(|mask| Mode::from_bits_truncate(mask as libc::mode_t)),
        report: write,
    };
    // SAFETY: `apply` makes only async-signal-safe system calls on data prepared here; it
    // neither allocates nor locks. std's own chdir is not used: it would enter `workingdir`
    // as root, before the identity changes.
    unsafe {
        command.pre_exec(move || become_user.apply());
    }
    Ok(report)
}

/// The step the child reported on `report` before it failed, if any (none: exec failed).
fn failed_step(report: &OwnedFd) -> Option<Step> {
    let mut byte = [0u8];
    loop {
        match nix::unistd::read(report, &mut byte) {
            Ok(1) => return Step::from_byte(byte[0]),
            Err(Errno::EINTR) => continue,
            _ => return None,
        }
    }
}

/// What failed in a spawn of `config` that ended with `error`, at `step` of [`BecomeUser`]
/// (`None`: not there). A program without its own user has no steps reported: its
/// `workingdir` is looked at here (the child would have seen the same), else exec failed.
fn explain(config: &ProgramConfig, error: &std::io::Error, step: Option<Step>) -> SpawnError {
    let reason = preflight::io_reason(error);
    let identity = config.identity.as_ref();
    let user = identity.map_or("", |identity| &identity.user);
    let as_user = match identity.and_then(|identity| identity.groups.as_ref()) {
        Some(_) => format!(" (as user {user})"),
        None => String::new(),
    };
    let workingdir = || {
        config
            .workingdir
            .as_deref()
            .map_or_else(String::new, |dir| dir.display().to_string())
    };
    let message = match (step, identity) {
        (Some(Step::Groups), Some(identity)) => {
            let groups = identity.groups.as_deref().unwrap_or_default();
            let groups: Vec<String> = groups.iter().map(u32::to_string).collect();
            format!(
                "setgroups to the groups of user {user} ({}): {reason}",
                groups.join(", ")
            )
        }
        (Some(Step::Gid), Some(identity)) => {
            format!(
                "setgid to group {} ({}): {reason}",
                identity.group, identity.gid
            )
        }
        (Some(Step::Uid), Some(identity)) => {
            format!("setuid to user {user} ({}): {reason}", identity.uid)
        }
        (Some(Step::Workingdir), _) => format!("workingdir {}: {reason}{as_user}", workingdir()),
        (Some(_), None) => reason,
        (None, _) => match config.workingdir.as_deref() {
            Some(dir)
                if as_user.is_empty()
                    && let Err(problem) = preflight::workingdir(dir) =>
            {
                format!("workingdir {}: {problem}", dir.display())
            }
            _ => exec_failure(config, error, &reason, &as_user),
        },
    };
    SpawnError(message)
}

/// What `execvp(3)` of `config`'s executable failing with `error` means.
fn exec_failure(
    config: &ProgramConfig,
    error: &std::io::Error,
    reason: &str,
    as_user: &str,
) -> String {
    let found = preflight::executable(config);
    if error.raw_os_error() == Some(libc::ENOENT) {
        return match found {
            // The file is there, yet exec says it is not: what it needs to run is missing.
            Ok(path) => format!(
                "executable {}: {reason} (is the interpreter of its #! line, or its ELF \
                 loader, missing?)",
                path.display()
            ),
            Err(problem) => problem.to_string(),
        };
    }
    let path = match found {
        Ok(path)
        | Err(ExecutableProblem::Missing { path, .. })
        | Err(ExecutableProblem::NotExecutable { path, .. }) => path,
        // Found nowhere, yet not ENOENT: a directory of the PATH could not be searched.
        Err(
            problem @ ExecutableProblem::NotOnPath {
                denied: Some(_), ..
            },
        ) => {
            return problem.to_string();
        }
        Err(problem @ ExecutableProblem::NotOnPath { denied: None, .. }) => {
            return format!("{problem}; a directory of it: {reason}{as_user}");
        }
    };
    format!("executable {}: {reason}{as_user}", path.display())
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
