//! The supervisor: the one owner of every program, instance and child process. It runs as a
//! single task that takes requests (each with a oneshot reply) from [`Handle`]s, child exits
//! (SIGCHLD) and its own deadlines, applies the pure transitions of [`state`], carries out their
//! effects and publishes every event through the [`event::Journal`].

pub mod event;
pub mod process;
pub mod state;

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    path::PathBuf,
    sync::Arc,
    time::{Duration, SystemTime},
};

use nix::sys::signal::Signal;
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::{mpsc, oneshot},
    task::JoinHandle,
    time::Instant,
};
use tokio_util::time::{DelayQueue, delay_queue};

use crate::{
    config::{self, Config, ConfigError, ProgramConfig},
    proto::{self, EventKind},
};
use event::{Journal, Record, Subscription};
use process::ExitInfo;
use state::{Effect, Input, Lifecycle, Policy, State};

/// Identifies an instance for its whole life; never reused.
pub type InstanceId = u64;

/// What a request can fail with. The gRPC layer maps each to a status code in one place.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error("no such program or instance: {}", names.join(", "))]
    UnknownNames { names: Vec<String> },
    #[error("{0}")]
    ConfigRejected(ConfigError),
    #[error("taskmasterd is shutting down")]
    ShuttingDown,
}

type Reply<T> = oneshot::Sender<Result<T, SupervisorError>>;

/// A request to the supervisor. Each has exactly one handler in [`Supervisor::on_request`].
enum Request {
    Status {
        names: Vec<String>,
        reply: Reply<Vec<proto::InstanceStatus>>,
    },
    Start {
        names: Vec<String>,
        wait: bool,
        reply: Reply<proto::ActionResponse>,
    },
    Stop {
        names: Vec<String>,
        wait: bool,
        reply: Reply<proto::ActionResponse>,
    },
    Restart {
        names: Vec<String>,
        wait: bool,
        reply: Reply<proto::ActionResponse>,
    },
    Reload {
        reply: Reply<proto::ReloadResponse>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
    WatchEvents {
        names: Vec<String>,
        since: Option<u64>,
        reply: Reply<Watch>,
    },
}

/// A deadline of one instance. `token` names the process (or the wait) it belongs to; a
/// deadline whose token is no longer the instance's is stale.
#[derive(Debug, Clone, Copy)]
struct Due {
    id: InstanceId,
    token: u64,
    deadline: Deadline,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Deadline {
    /// The process has stayed up for `starttime`.
    StartTime,
    /// `stoptime` has passed since the stop signal: SIGKILL the group.
    Kill,
    /// The backoff delay is over.
    Retry,
    /// A delayed autorestart is due (see [`RESTART_SPACING`]).
    Restart,
}

/// The least time between two spawns of an instance by autorestart.
pub const RESTART_SPACING: Duration = Duration::from_millis(100);

/// A watcher's start: the replay and live feed, and which events it asked for.
pub struct Watch {
    pub subscription: Subscription,
    pub filter: EventFilter,
}

/// The programs and instances a watcher asked for; empty sets mean everything.
#[derive(Debug, Default, Clone)]
pub struct EventFilter {
    programs: HashSet<String>,
    instances: HashSet<String>,
}

impl EventFilter {
    /// A filter for these program names and instance names.
    pub fn for_names(
        programs: impl IntoIterator<Item = String>,
        instances: impl IntoIterator<Item = String>,
    ) -> Self {
        EventFilter {
            programs: programs.into_iter().collect(),
            instances: instances.into_iter().collect(),
        }
    }

    /// Daemon-level events always pass.
    pub fn admits(&self, event: &Record) -> bool {
        (self.programs.is_empty() && self.instances.is_empty())
            || event.instance.is_empty()
            || self.programs.contains(event.program())
            || self.instances.contains(&*event.instance)
    }
}

/// A cheap, cloneable way to talk to the supervisor.
#[derive(Clone)]
pub struct Handle {
    requests: mpsc::Sender<Request>,
    /// The file `reload` reads again.
    config_path: Arc<PathBuf>,
}

impl Handle {
    pub async fn status(
        &self,
        names: Vec<String>,
    ) -> Result<Vec<proto::InstanceStatus>, SupervisorError> {
        self.ask(|reply| Request::Status { names, reply }).await
    }

    pub async fn start(
        &self,
        names: Vec<String>,
        wait: bool,
    ) -> Result<proto::ActionResponse, SupervisorError> {
        self.ask(|reply| Request::Start { names, wait, reply })
            .await
    }

    pub async fn stop(
        &self,
        names: Vec<String>,
        wait: bool,
    ) -> Result<proto::ActionResponse, SupervisorError> {
        self.ask(|reply| Request::Stop { names, wait, reply }).await
    }

    pub async fn restart(
        &self,
        names: Vec<String>,
        wait: bool,
    ) -> Result<proto::ActionResponse, SupervisorError> {
        self.ask(|reply| Request::Restart { names, wait, reply })
            .await
    }

    /// Reads the config file again and applies the difference, or rejects it whole.
    pub async fn reload(&self) -> Result<proto::ReloadResponse, SupervisorError> {
        self.ask(|reply| Request::Reload { reply }).await
    }

    /// Stops every program; returns once all processes are reaped.
    pub async fn shutdown(&self) {
        let (reply, done) = oneshot::channel();
        if self
            .requests
            .send(Request::Shutdown { reply })
            .await
            .is_ok()
        {
            let _ = done.await;
        }
    }

    pub async fn watch_events(
        &self,
        names: Vec<String>,
        since: Option<u64>,
    ) -> Result<Watch, SupervisorError> {
        self.ask(|reply| Request::WatchEvents {
            names,
            since,
            reply,
        })
        .await
    }

    pub fn config_path(&self) -> &std::path::Path {
        &self.config_path
    }

    async fn ask<T>(
        &self,
        request: impl FnOnce(Reply<T>) -> Request,
    ) -> Result<T, SupervisorError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(request(reply))
            .await
            .map_err(|_| SupervisorError::ShuttingDown)?;
        answer.await.map_err(|_| SupervisorError::ShuttingDown)?
    }
}

/// Starts the supervisor task on `config` (autostart programs are started) and returns its
/// handle. The task ends after a shutdown has stopped everything. Fails only if child exits
/// cannot be watched (no SIGCHLD handler).
pub fn start(config: Config) -> std::io::Result<(Handle, JoinHandle<()>)> {
    let (requests, requests_rx) = mpsc::channel(256);
    // Installed before the first spawn: no exit can go unnoticed.
    let exits = signal(SignalKind::child())?;
    let handle = Handle {
        requests,
        config_path: Arc::new(config.path.clone()),
    };
    let mut supervisor = Supervisor {
        config_path: config.path.clone(),
        programs: BTreeMap::new(),
        instances: HashMap::new(),
        next_id: 0,
        next_token: 0,
        timers: DelayQueue::new(),
        by_pid: HashMap::new(),
        journal: Journal::default(),
        waiters: HashMap::new(),
        waiting_on: HashMap::new(),
        next_waiter: 0,
        shutdown: None,
    };
    let task = tokio::spawn(async move {
        supervisor.journal.publish(Record::daemon(
            EventKind::DaemonStarted,
            format!(
                "pid {}, config {}",
                std::process::id(),
                config.path.display()
            ),
        ));
        supervisor.apply_config(config);
        supervisor.run(requests_rx, exits).await;
    });
    Ok((handle, task))
}

/// What happens to an instance once it has no process left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    Nothing,
    /// Start it (a restart, or a config change).
    Start,
    /// Forget it (its program was removed or shrunk).
    Remove,
}

/// The state an action request waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Goal {
    Running,
    Stopped,
}

/// A Start/Stop/Restart request waiting for its instances.
struct Waiter {
    goal: Goal,
    results: Vec<Option<proto::InstanceResult>>,
    pending: usize,
    reply: Reply<proto::ActionResponse>,
}

struct Program {
    /// The current config; new processes are spawned with it.
    config: Arc<ProgramConfig>,
    /// Instances in index order.
    instances: Vec<InstanceId>,
    /// Removed from the config; forgotten once its instances are stopped.
    removed: bool,
}

struct Instance {
    /// Shared with its events.
    program: Arc<str>,
    index: u32,
    /// "web" for a single instance, else "web:0", ...; shared with its events.
    name: Arc<str>,
    /// The config the current (or last) process was spawned with: its stop signal and
    /// exit codes apply to that process even after a reload.
    config: Arc<ProgramConfig>,
    life: Lifecycle,
    /// Names the current process or wait; deadlines with another token are stale.
    token: u64,
    /// The live process, 0 when none.
    pid: u32,
    /// The pid of the last process, for exit events.
    last_pid: u32,
    /// The pending deadline, if any; every key in the supervisor's timers is the `timer` of
    /// exactly one instance.
    timer: Option<delay_queue::Key>,
    spawned_at: Option<Instant>,
    /// How long the last process lived.
    ran_for: Duration,
    /// When the current state was entered.
    since: SystemTime,
    last_exit: Option<ExitInfo>,
    /// Why the last start failed; cleared by a successful spawn.
    failure: Option<Failure>,
    restarts: u32,
    then: After,
    /// Whether it has ever been started.
    ever_started: bool,
}

impl Instance {
    fn event(&self, kind: EventKind, old: State, message: String) -> Record {
        Record {
            kind,
            instance: self.name.clone(),
            old_state: old.into(),
            new_state: self.life.state.into(),
            pid: if self.pid != 0 {
                self.pid
            } else {
                self.last_pid
            },
            message: message.into(),
            ..Default::default()
        }
    }

    fn with_exit(&self, mut event: Record) -> Record {
        if let Some(exit) = self.last_exit {
            event.exit = Some(exit);
        }
        event
    }

    /// supervisorctl's description column; `now` is the time of the request.
    fn description(&self, now: Instant) -> String {
        use std::fmt::Write;
        let at = || humantime::format_rfc3339_seconds(self.since).to_string();
        match self.life.state {
            State::Stopped if !self.ever_started => "Not started".to_string(),
            State::Stopped => format!("Stopped at {}", at()),
            State::Starting => format!("pid {}, starting", self.pid),
            State::Running => {
                let mut text = String::with_capacity(32);
                let _ = write!(text, "pid {}, uptime ", self.pid);
                write_clock(&mut text, self.uptime(now));
                text
            }
            State::Stopping => format!("pid {}, stopping", self.pid),
            State::Backoff | State::Fatal => self
                .failure
                .as_ref()
                .map_or_else(|| "Exited too quickly".to_string(), Failure::to_string),
            State::Exited => {
                let exit = self
                    .last_exit
                    .map_or("exited".to_string(), ExitInfo::describe);
                let expected = if self.expected() {
                    "expected"
                } else {
                    "unexpected"
                };
                format!("{exit} ({expected}) at {}", at())
            }
        }
    }

    /// How long the live process has run, as of `now`.
    fn uptime(&self, now: Instant) -> Duration {
        self.spawned_at.map_or(Duration::ZERO, |spawned| {
            now.saturating_duration_since(spawned)
        })
    }

    fn expected(&self) -> bool {
        self.last_exit
            .and_then(ExitInfo::code)
            .is_some_and(|code| self.config.exitcodes.contains(&code))
    }

    fn status(&self, now: Instant) -> proto::InstanceStatus {
        let exit = self.last_exit;
        proto::InstanceStatus {
            name: self.name.to_string(),
            program: self.program.to_string(),
            state: proto::State::from(self.life.state).into(),
            pid: self.pid,
            uptime_secs: (self.pid != 0 && self.spawned_at.is_some())
                .then(|| self.uptime(now).as_secs()),
            since: Some(self.since.into()),
            exit_code: exit.and_then(ExitInfo::code),
            signal: exit.and_then(ExitInfo::signal),
            restarts: self.restarts,
            description: self.description(now),
            spawn_error: match &self.failure {
                Some(Failure::Spawn(reason)) => reason.to_string(),
                _ => String::new(),
            },
        }
    }
}

/// Why the last start of an instance failed.
#[derive(Debug, Clone)]
enum Failure {
    /// The spawn itself failed, for this reason ("No such file or directory").
    Spawn(Box<str>),
    /// The process exited before `starttime` had passed.
    TooQuick(ExitInfo),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Spawn(reason) => write!(f, "spawn error: {reason}"),
            Failure::TooQuick(exit) => write!(f, "Exited too quickly ({})", exit.describe()),
        }
    }
}

/// Appends H:MM:SS.
fn write_clock(text: &mut String, elapsed: Duration) {
    use std::fmt::Write;
    let secs = elapsed.as_secs();
    let _ = write!(
        text,
        "{}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
}

/// A single instance shares its program's name.
fn instance_name(program: &Arc<str>, numprocs: u32, index: u32) -> Arc<str> {
    if numprocs == 1 && index == 0 {
        program.clone()
    } else {
        format!("{program}:{index}").into()
    }
}

fn result(name: &str, ok: bool, message: impl Into<String>, state: State) -> proto::InstanceResult {
    proto::InstanceResult {
        name: name.to_string(),
        ok,
        message: message.into(),
        state: proto::State::from(state).into(),
    }
}

struct Supervisor {
    /// The file a reload reads.
    config_path: PathBuf,
    /// Programs by name; iteration order is the status order.
    programs: BTreeMap<String, Program>,
    /// Boxed: the table's spare capacity then costs a pointer, not a whole instance.
    instances: HashMap<InstanceId, Box<Instance>>,
    next_id: InstanceId,
    next_token: u64,
    /// Every pending deadline, at most one per instance.
    timers: DelayQueue<Due>,
    /// Processes spawned and not yet reaped, by pid.
    by_pid: HashMap<u32, InstanceId>,
    journal: Journal,
    waiters: HashMap<u64, Waiter>,
    /// The waiters each instance has, as (waiter, result slot); only instances with some.
    waiting_on: HashMap<InstanceId, Vec<(u64, usize)>>,
    next_waiter: u64,
    /// Set once a shutdown began: who waits for its end.
    shutdown: Option<Vec<oneshot::Sender<()>>>,
}

impl Supervisor {
    async fn run(
        &mut self,
        mut requests: mpsc::Receiver<Request>,
        mut exits: tokio::signal::unix::Signal,
    ) {
        // Fair between the branches: a crash-looping program must not starve clients (or the
        // shutdown request) of the supervisor's attention.
        let mut requests_open = true;
        loop {
            tokio::select! {
                // One signal may stand for many exits: each wake-up reaps all of them.
                Some(()) = exits.recv() => self.reap_exited(),
                Some(due) = std::future::poll_fn(|cx| self.timers.poll_expired(cx)) => {
                    self.on_due(due.key(), due.into_inner());
                }
                request = requests.recv(), if requests_open => match request {
                    Some(request) => self.on_request(request),
                    // Every handle is gone: nobody can ask for anything any more.
                    None => {
                        requests_open = false;
                        self.begin_shutdown(None);
                    }
                },
            }
            if self.shutdown.is_some() && self.by_pid.is_empty() {
                for done in self.shutdown.take().unwrap_or_default() {
                    let _ = done.send(());
                }
                return;
            }
        }
    }

    fn on_request(&mut self, request: Request) {
        match request {
            Request::Status { names, reply } => {
                let now = Instant::now();
                let answer = self.resolve(&names).map(|ids| {
                    ids.iter()
                        .map(|id| self.instances[id].status(now))
                        .collect::<Vec<_>>()
                });
                let _ = reply.send(answer);
            }
            Request::Start { names, wait, reply } => self.act(Verb::Start, &names, wait, reply),
            Request::Stop { names, wait, reply } => self.act(Verb::Stop, &names, wait, reply),
            Request::Restart { names, wait, reply } => self.act(Verb::Restart, &names, wait, reply),
            Request::Reload { reply } => {
                // Read here, in request order, so that overlapping reloads cannot apply an
                // older read last. The file is small and local.
                let config = config::load(&self.config_path);
                let _ = reply.send(self.reload(config));
            }
            Request::Shutdown { reply } => self.begin_shutdown(Some(reply)),
            Request::WatchEvents {
                names,
                since,
                reply,
            } => {
                let _ = reply.send(self.watch_events(&names, since));
            }
        }
    }

    /// Reaps every child that has exited and applies each exit to its instance.
    fn reap_exited(&mut self) {
        let mut unreapable = None;
        while let Some(pid) = process::exited_child() {
            let id = self.by_pid.get(&pid).copied();
            let stopped = id
                .and_then(|id| self.instances.get(&id))
                .is_some_and(|instance| instance.life.state == State::Stopping);
            if stopped {
                // Nothing of a stopped program survives its leader. Not yet reaped, the leader
                // keeps its pid, and so the group id, from being reused.
                process::signal_group(pid, Signal::SIGKILL);
            }
            let Some(exit) = process::reap(pid) else {
                // Reaped elsewhere in between (then the next peek moves on), or, never seen,
                // still reported: stop rather than spin on it.
                if unreapable == Some(pid) {
                    tracing::error!(pid, "an exited child could not be reaped");
                    return;
                }
                unreapable = Some(pid);
                continue;
            };
            self.by_pid.remove(&pid);
            match id {
                Some(id) => self.on_exit(id, exit),
                // Only the supervisor creates children. Others were inherited across exec or
                // adopted as orphans (taskmasterd as PID 1): reaped so no zombie lingers.
                None => tracing::debug!(
                    pid,
                    "reaped a process that was not ours: {}",
                    exit.describe()
                ),
            }
        }
    }

    /// The process of instance `id` ended with `exit`.
    fn on_exit(&mut self, id: InstanceId, exit: ExitInfo) {
        // Its start or kill deadline ends with the state change the exit makes (see `apply`).
        let Some(instance) = self.instances.get_mut(&id) else {
            return;
        };
        instance.last_pid = instance.pid;
        instance.pid = 0;
        instance.ran_for = instance
            .spawned_at
            .take()
            .map_or(Duration::ZERO, |spawned| spawned.elapsed());
        instance.last_exit = Some(exit);
        if instance.life.state == State::Starting {
            instance.failure = Some(Failure::TooQuick(exit));
        }
        let expected = instance.expected();
        self.apply(id, Input::Exited { expected });
    }

    /// A deadline has passed: `key` is no longer in the timers.
    fn on_due(&mut self, key: delay_queue::Key, due: Due) {
        let Due {
            id,
            token,
            deadline,
        } = due;
        if let Some(instance) = self.instances.get_mut(&id)
            && instance.timer == Some(key)
        {
            instance.timer = None;
        }
        let Some(instance) = self.current(id, token) else {
            return;
        };
        match deadline {
            Deadline::StartTime => self.apply(id, Input::StartTimeElapsed),
            Deadline::Retry => self.apply(id, Input::RetryDue),
            Deadline::Restart => {
                if instance.life.state == State::Exited && self.shutdown.is_none() {
                    self.restart(id);
                }
            }
            Deadline::Kill => {
                // An exit that came with this deadline, not yet seen: it ends the stop (and
                // cancels the kill) rather than be reported as still alive.
                self.reap_exited();
                let Some(instance) = self.current(id, token) else {
                    return;
                };
                if instance.life.state != State::Stopping {
                    return;
                }
                // Not reaped yet, so the pid is still ours.
                process::signal_group(instance.pid, Signal::SIGKILL);
                let message = format!(
                    "still alive {}s after the stop signal: SIGKILL sent",
                    instance.config.stoptime.as_secs_f64()
                );
                let event = instance.event(EventKind::Killed, instance.life.state, message);
                self.journal.publish(event);
            }
        }
    }

    /// Sets the one pending deadline of instance `id`, replacing any other.
    fn set_timer(&mut self, id: InstanceId, deadline: Deadline, delay: Duration) {
        self.cancel_timer(id);
        let Some(instance) = self.instances.get_mut(&id) else {
            return;
        };
        let due = Due {
            id,
            token: instance.token,
            deadline,
        };
        instance.timer = Some(self.timers.insert(due, delay));
    }

    /// Drops the pending deadline of instance `id`, if any.
    fn cancel_timer(&mut self, id: InstanceId) {
        if let Some(key) = self
            .instances
            .get_mut(&id)
            .and_then(|instance| instance.timer.take())
        {
            self.timers.try_remove(&key);
        }
    }

    /// The instance `id` if `token` is still its current process or timer.
    fn current(&mut self, id: InstanceId, token: u64) -> Option<&mut Instance> {
        self.instances
            .get_mut(&id)
            .map(|instance| &mut **instance)
            .filter(|instance| instance.token == token)
    }

    /// Feeds `input` to instance `id`, carries out the effect, publishes the event, and
    /// settles whatever waited on the instance.
    fn apply(&mut self, id: InstanceId, input: Input) {
        let Some(instance) = self.instances.get_mut(&id) else {
            return;
        };
        let policy = Policy {
            autorestart: instance.config.autorestart,
            startretries: instance.config.startretries,
        };
        let old = instance.life.state;
        let (next, effect) = match state::transition(instance.life, input, policy) {
            Ok(next) => next,
            Err(illegal) => {
                tracing::debug!(instance = %instance.name, "ignored: {illegal}");
                return;
            }
        };
        instance.life = next;
        if next.state != old {
            instance.since = SystemTime::now();
            // Each deadline belongs to one state; the effect below sets the new state's.
            self.cancel_timer(id);
        }
        match effect {
            Effect::Spawn => {
                self.spawn(id, old);
                return;
            }
            Effect::None | Effect::ScheduleRetry(_) | Effect::Restart | Effect::SignalStop => {}
        }
        if next.state != old {
            let event = self.transition_event(id, old, input, effect);
            self.journal.publish(event);
        }
        match effect {
            Effect::SignalStop => {
                let instance = &self.instances[&id];
                // The process is not reaped yet: only the supervisor reaps, and not before
                // this transition is done.
                process::signal_group(instance.pid, instance.config.stopsignal);
                let stoptime = instance.config.stoptime;
                self.set_timer(id, Deadline::Kill, stoptime);
            }
            Effect::ScheduleRetry(delay) => {
                let token = self.fresh_token();
                self.instances.get_mut(&id).expect("instance exists").token = token;
                self.set_timer(id, Deadline::Retry, delay);
            }
            // Nothing starts once a shutdown began. A process that ran only briefly is
            // respawned no sooner than RESTART_SPACING after its own spawn, so a program that
            // dies at once cannot spin the daemon.
            Effect::Restart if self.shutdown.is_none() => {
                let ran_for = self.instances[&id].ran_for;
                if ran_for >= RESTART_SPACING {
                    self.restart(id);
                    return;
                }
                let token = self.fresh_token();
                self.instances.get_mut(&id).expect("instance exists").token = token;
                self.set_timer(id, Deadline::Restart, RESTART_SPACING - ran_for);
            }
            Effect::Restart => {}
            Effect::None | Effect::Spawn => {}
        }
        self.settle(id);
    }

    /// The event for a transition that did not spawn.
    fn transition_event(&self, id: InstanceId, old: State, input: Input, effect: Effect) -> Record {
        let instance = &self.instances[&id];
        let exited = matches!(input, Input::Exited { .. });
        let exit_text = || instance.last_exit.map_or(String::new(), ExitInfo::describe);
        let failure = || {
            instance
                .failure
                .as_ref()
                .map_or_else(String::new, Failure::to_string)
        };
        let event = match (instance.life.state, effect) {
            (State::Running, _) => instance.event(EventKind::Started, old, String::new()),
            (State::Backoff, Effect::ScheduleRetry(delay)) => instance.event(
                EventKind::Backoff,
                old,
                format!("{}; retry in {}s", failure(), delay.as_secs()),
            ),
            (State::Fatal, _) => instance.event(
                EventKind::GaveUp,
                old,
                match instance.life.failed_starts {
                    1 => format!("{}; gave up after 1 try", failure()),
                    tries => format!("{}; gave up after {tries} tries", failure()),
                },
            ),
            (State::Exited, _) => {
                let expected = instance.expected();
                let mut event = instance.event(
                    EventKind::Exited,
                    old,
                    format!(
                        "{} ({})",
                        exit_text(),
                        if expected { "expected" } else { "unexpected" }
                    ),
                );
                event.expected = expected;
                event
            }
            (State::Stopping, _) => instance.event(
                EventKind::Stopping,
                old,
                format!("{} sent", instance.config.stopsignal.as_str()),
            ),
            (State::Stopped, _) if exited => instance.event(EventKind::Stopped, old, exit_text()),
            (State::Stopped, _) => {
                instance.event(EventKind::Stopped, old, "retry cancelled".to_string())
            }
            (state, _) => instance.event(EventKind::Unspecified, old, state.name().to_string()),
        };
        if exited {
            instance.with_exit(event)
        } else {
            event
        }
    }

    /// Spawns a process for instance `id`, which has just entered STARTING from `old`.
    fn spawn(&mut self, id: InstanceId, old: State) {
        let token = self.fresh_token();
        let instance = self.instances.get_mut(&id).expect("instance exists");
        if let Some(program) = self.programs.get(&*instance.program) {
            instance.config = program.config.clone();
        }
        instance.token = token;
        instance.ever_started = true;
        match process::spawn(&instance.config) {
            Ok(pid) => {
                self.by_pid.insert(pid, id);
                instance.pid = pid;
                instance.spawned_at = Some(Instant::now());
                instance.failure = None;
                let message = match instance.life.failed_starts {
                    0 => String::new(),
                    retry => format!("retry {retry} of {}", instance.config.startretries),
                };
                let event = instance.event(EventKind::Spawned, old, message);
                let starttime = instance.config.starttime;
                self.journal.publish(event);
                if starttime.is_zero() {
                    self.apply(id, Input::StartTimeElapsed);
                } else {
                    self.set_timer(id, Deadline::StartTime, starttime);
                    self.settle(id);
                }
            }
            Err(error) => {
                instance.last_pid = 0;
                instance.failure = Some(Failure::Spawn(error.to_string().into()));
                self.apply(id, Input::SpawnFailed);
            }
        }
    }

    fn fresh_token(&mut self) -> u64 {
        self.next_token += 1;
        self.next_token
    }

    /// An autorestart: counts it and starts the instance again.
    fn restart(&mut self, id: InstanceId) {
        if let Some(instance) = self.instances.get_mut(&id) {
            instance.restarts += 1;
            self.apply(id, Input::Start);
        }
    }

    /// After a change of instance `id`: answers its waiters, then does what was planned for
    /// it once it has no process.
    fn settle(&mut self, id: InstanceId) {
        let Some(instance) = self.instances.get_mut(&id) else {
            return;
        };
        let state = instance.life.state;
        if state == State::Running {
            instance.failure = None;
        }
        if let Some(waiting) = self.waiting_on.remove(&id) {
            let mut still = Vec::with_capacity(waiting.len());
            for (waiter, slot) in waiting {
                match self.outcome(id, waiter) {
                    Some(outcome) => self.answer(waiter, slot, outcome),
                    None => still.push((waiter, slot)),
                }
            }
            if !still.is_empty() {
                self.waiting_on.insert(id, still);
            }
        }
        let instance = self.instances.get_mut(&id).expect("instance exists");
        if instance.life.state.has_process() || instance.life.state == State::Backoff {
            return;
        }
        match std::mem::replace(&mut instance.then, After::Nothing) {
            After::Nothing => {}
            After::Start if self.shutdown.is_none() => self.apply(id, Input::Start),
            After::Start => {}
            After::Remove => self.remove(id),
        }
    }

    /// Whether waiter `waiter` is answered for instance `id`, and how.
    fn outcome(&self, id: InstanceId, waiter: u64) -> Option<proto::InstanceResult> {
        let instance = &self.instances[&id];
        let goal = self.waiters.get(&waiter)?.goal;
        let state = instance.life.state;
        let name = &instance.name;
        match (goal, state) {
            (Goal::Running, State::Running) => Some(result(name, true, "started", state)),
            (Goal::Running, State::Fatal) => Some(result(
                name,
                false,
                instance.description(Instant::now()),
                state,
            )),
            (Goal::Running, State::Stopped | State::Exited) if instance.then != After::Start => {
                Some(result(name, false, "stopped before it was running", state))
            }
            (Goal::Stopped, State::Stopped | State::Exited | State::Fatal) => {
                Some(result(name, true, "stopped", state))
            }
            _ => None,
        }
    }

    fn answer(&mut self, waiter: u64, slot: usize, outcome: proto::InstanceResult) {
        let Some(entry) = self.waiters.get_mut(&waiter) else {
            return;
        };
        if entry.results[slot].is_none() {
            entry.results[slot] = Some(outcome);
            entry.pending -= 1;
        }
        if entry.pending == 0 {
            let entry = self.waiters.remove(&waiter).expect("waiter exists");
            let results = entry.results.into_iter().flatten().collect();
            let _ = entry.reply.send(Ok(proto::ActionResponse { results }));
        }
    }

    /// Forgets instance `id` (it has no process) and its program once that is removed and
    /// empty.
    fn remove(&mut self, id: InstanceId) {
        self.cancel_timer(id);
        let Some(instance) = self.instances.remove(&id) else {
            return;
        };
        for (waiter, slot) in self.waiting_on.remove(&id).unwrap_or_default() {
            let outcome = result(
                &instance.name,
                false,
                "removed by a config reload",
                State::Stopped,
            );
            self.answer(waiter, slot, outcome);
        }
        if let Some(program) = self.programs.get_mut(&*instance.program) {
            if let Some(position) = program.instances.iter().rposition(|other| *other == id) {
                program.instances.remove(position);
            }
            if program.removed && program.instances.is_empty() {
                self.programs.remove(&*instance.program);
            }
        }
    }

    /// The instances `names` designate, in order, without repeats: program names, instance
    /// names or "all"; none means all. Any unknown name fails the whole request.
    fn resolve(&self, names: &[String]) -> Result<Vec<InstanceId>, SupervisorError> {
        let all = || {
            self.programs
                .values()
                .flat_map(|p| p.instances.iter().copied())
        };
        if names.is_empty() {
            return Ok(all().collect());
        }
        let mut ids = Vec::new();
        let mut unknown = Vec::new();
        for name in names {
            if name == "all" {
                ids.extend(all());
            } else if let Some(program) = self.programs.get(name) {
                ids.extend(program.instances.iter().copied());
            } else if let Some(id) = self.find_instance(name) {
                ids.push(id);
            } else {
                unknown.push(name.clone());
            }
        }
        if !unknown.is_empty() {
            return Err(SupervisorError::UnknownNames { names: unknown });
        }
        let mut seen = HashSet::with_capacity(ids.len());
        ids.retain(|id| seen.insert(*id));
        Ok(ids)
    }

    fn find_instance(&self, name: &str) -> Option<InstanceId> {
        let (program, _) = name.rsplit_once(':')?;
        self.programs
            .get(program)?
            .instances
            .iter()
            .copied()
            .find(|id| &*self.instances[id].name == name)
    }

    fn act(
        &mut self,
        verb: Verb,
        names: &[String],
        wait: bool,
        reply: Reply<proto::ActionResponse>,
    ) {
        if self.shutdown.is_some() {
            let _ = reply.send(Err(SupervisorError::ShuttingDown));
            return;
        }
        let ids = match self.resolve(names) {
            Ok(ids) => ids,
            Err(error) => {
                let _ = reply.send(Err(error));
                return;
            }
        };
        let goal = match verb {
            Verb::Start | Verb::Restart => Goal::Running,
            Verb::Stop => Goal::Stopped,
        };
        let waiter = self.next_waiter;
        self.next_waiter += 1;
        self.waiters.insert(
            waiter,
            Waiter {
                goal,
                results: vec![None; ids.len()],
                pending: ids.len(),
                reply,
            },
        );
        for (slot, id) in ids.iter().copied().enumerate() {
            let instance = self
                .instances
                .get_mut(&id)
                .expect("resolved instance exists");
            let before = instance.life.state;
            if instance.then == After::Remove {
                let outcome = result(
                    &instance.name,
                    false,
                    "being removed by a config reload",
                    before,
                );
                self.answer(waiter, slot, outcome);
                continue;
            }
            match verb {
                Verb::Start if before == State::Stopping => instance.then = After::Start,
                Verb::Start => self.apply(id, Input::Start),
                Verb::Stop => {
                    instance.then = After::Nothing;
                    if before == State::Exited {
                        // A pending delayed autorestart is called off.
                        self.cancel_timer(id);
                    }
                    self.apply(id, Input::Stop);
                }
                Verb::Restart => {
                    instance.restarts += 1;
                    let event =
                        instance.event(EventKind::Restarting, before, "restart requested".into());
                    self.journal.publish(event);
                    let instance = self.instances.get_mut(&id).expect("instance exists");
                    if before.has_process() || before == State::Backoff {
                        instance.then = After::Start;
                        self.apply(id, Input::Stop);
                    } else {
                        self.apply(id, Input::Start);
                    }
                }
            }
            let Some(instance) = self.instances.get(&id) else {
                continue;
            };
            let outcome = if wait {
                self.outcome(id, waiter).map(|mut outcome| {
                    if outcome.ok && before == instance.life.state {
                        outcome.message = match goal {
                            Goal::Running => "already running".into(),
                            Goal::Stopped => "not running".into(),
                        };
                    }
                    outcome
                })
            } else {
                let message = match verb {
                    Verb::Start => "starting",
                    Verb::Stop => "stopping",
                    Verb::Restart => "restarting",
                };
                Some(result(&instance.name, true, message, instance.life.state))
            };
            match outcome {
                Some(outcome) => self.answer(waiter, slot, outcome),
                None => self.waiting_on.entry(id).or_default().push((waiter, slot)),
            }
        }
        if ids.is_empty() {
            self.answer_empty(waiter);
        }
    }

    fn answer_empty(&mut self, waiter: u64) {
        if let Some(entry) = self.waiters.remove(&waiter) {
            let _ = entry.reply.send(Ok(proto::ActionResponse::default()));
        }
    }

    fn watch_events(&self, names: &[String], since: Option<u64>) -> Result<Watch, SupervisorError> {
        // Every name is checked, "all" or not: an unknown one is an error here as everywhere.
        self.resolve(names)?;
        let filter = if names.iter().any(|name| name == "all") {
            EventFilter::default()
        } else {
            let (programs, instances): (Vec<String>, Vec<String>) = names
                .iter()
                .cloned()
                .partition(|name| self.programs.contains_key(name));
            EventFilter::for_names(programs, instances)
        };
        Ok(Watch {
            subscription: self.journal.subscribe(since),
            filter,
        })
    }

    fn begin_shutdown(&mut self, reply: Option<oneshot::Sender<()>>) {
        if self.shutdown.is_none() {
            self.shutdown = Some(Vec::new());
            self.journal.publish(Record::daemon(
                EventKind::DaemonStopping,
                format!("stopping {} processes", self.by_pid.len()),
            ));
            let ids: Vec<InstanceId> = self.instances.keys().copied().collect();
            for id in ids {
                if let Some(instance) = self.instances.get_mut(&id) {
                    instance.then = After::Nothing;
                }
                self.apply(id, Input::Stop);
            }
        }
        if let (Some(waiting), Some(reply)) = (self.shutdown.as_mut(), reply) {
            waiting.push(reply);
        }
    }

    fn reload(
        &mut self,
        config: Result<Config, ConfigError>,
    ) -> Result<proto::ReloadResponse, SupervisorError> {
        if self.shutdown.is_some() {
            return Err(SupervisorError::ShuttingDown);
        }
        let config = match config {
            Ok(config) => config,
            Err(error) => {
                self.journal
                    .publish(Record::daemon(EventKind::ConfigRejected, error.to_string()));
                return Err(SupervisorError::ConfigRejected(error));
            }
        };
        let summary = self.apply_config(config);
        let list = |names: &[String]| {
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(" ")
            }
        };
        self.journal.publish(Record::daemon(
            EventKind::ConfigReloaded,
            format!(
                "added: {}; changed: {}; removed: {}; unchanged: {}",
                list(&summary.added),
                list(&summary.changed),
                list(&summary.removed),
                summary.unchanged.len()
            ),
        ));
        Ok(summary)
    }

    /// Makes the programs those of `config`: unchanged ones are not touched, changed ones are
    /// restarted with their new config (a change of `numprocs` alone only adds or removes
    /// instances), removed ones are stopped and forgotten, added ones start if autostart.
    fn apply_config(&mut self, config: Config) -> proto::ReloadResponse {
        let mut summary = proto::ReloadResponse::default();
        let mut removed: Vec<String> = self
            .programs
            .iter()
            .filter(|(name, program)| !program.removed && !config.programs.contains_key(*name))
            .map(|(name, _)| name.clone())
            .collect();
        for (name, new) in config.programs {
            let new = Arc::new(new);
            let (restart, new_ids) = match self.programs.get_mut(&name) {
                None => {
                    self.programs.insert(
                        name.clone(),
                        Program {
                            config: new.clone(),
                            instances: Vec::new(),
                            removed: false,
                        },
                    );
                    summary.added.push(name.clone());
                    (false, self.resize(&name))
                }
                Some(program) if !program.removed && *program.config == *new => {
                    summary.unchanged.push(name);
                    continue;
                }
                Some(program) => {
                    let restart = program.removed || !program.config.same_except_numprocs(&new);
                    program.removed = false;
                    program.config = new.clone();
                    summary.changed.push(name.clone());
                    (restart, self.resize(&name))
                }
            };
            let ids = self.programs[&name].instances.clone();
            for id in ids {
                let is_new = new_ids.contains(&id);
                let instance = self.instances.get_mut(&id).expect("instance exists");
                if instance.then == After::Remove {
                    continue;
                }
                let active = instance.life.state.is_active();
                if is_new {
                    if new.autostart {
                        self.apply(id, Input::Start);
                    }
                } else if restart {
                    if active {
                        instance.then = After::Start;
                        self.apply(id, Input::Stop);
                    } else if instance.life.state == State::Stopping {
                        // Being stopped: a pending restart stays; otherwise the new config
                        // decides, as for a stopped instance.
                        if new.autostart {
                            instance.then = After::Start;
                        }
                    } else if new.autostart {
                        self.apply(id, Input::Start);
                    }
                }
            }
        }
        for name in &removed {
            let Some(program) = self.programs.get_mut(name) else {
                continue;
            };
            program.removed = true;
            for id in program.instances.clone().into_iter().rev() {
                self.stop_and_remove(id);
            }
        }
        removed.sort();
        summary.removed = removed;
        summary
    }

    /// Creates or marks for removal the instances of `name` so that they match its
    /// `numprocs`, renames them, and returns the ids created.
    fn resize(&mut self, name: &str) -> Vec<InstanceId> {
        let program_name: Arc<str> = name.into();
        let program = self.programs.get_mut(name).expect("program exists");
        let numprocs = program.config.numprocs;
        let mut created = Vec::new();
        let by_index: HashMap<u32, InstanceId> = program
            .instances
            .iter()
            .map(|id| (self.instances[id].index, *id))
            .collect();
        for index in 0..numprocs {
            match by_index.get(&index).copied() {
                Some(id) => {
                    let instance = self.instances.get_mut(&id).expect("instance exists");
                    if instance.then == After::Remove {
                        instance.then = if program.config.autostart {
                            After::Start
                        } else {
                            After::Nothing
                        };
                    }
                }
                None => {
                    let id = self.next_id;
                    self.next_id += 1;
                    self.instances.insert(
                        id,
                        Box::new(Instance {
                            program: program_name.clone(),
                            index,
                            name: Arc::from(""),
                            config: program.config.clone(),
                            life: Lifecycle::INITIAL,
                            token: 0,
                            pid: 0,
                            last_pid: 0,
                            timer: None,
                            spawned_at: None,
                            ran_for: Duration::ZERO,
                            since: SystemTime::now(),
                            last_exit: None,
                            failure: None,
                            restarts: 0,
                            then: After::Nothing,
                            ever_started: false,
                        }),
                    );
                    program.instances.push(id);
                    created.push(id);
                }
            }
        }
        let instances = &self.instances;
        program.instances.sort_by_key(|id| instances[id].index);
        let extra: Vec<InstanceId> = program
            .instances
            .iter()
            .copied()
            .filter(|id| self.instances[id].index >= numprocs)
            .collect();
        for id in program.instances.clone() {
            let instance = self.instances.get_mut(&id).expect("instance exists");
            instance.name = instance_name(&program_name, numprocs, instance.index);
        }
        // Highest index first: each removal is then at the end of the program's list.
        for id in extra.into_iter().rev() {
            self.stop_and_remove(id);
        }
        created
    }

    fn stop_and_remove(&mut self, id: InstanceId) {
        if let Some(instance) = self.instances.get_mut(&id) {
            instance.then = After::Remove;
        }
        // A stop that changes nothing still settles the instance, which removes it once it
        // has no process.
        self.apply(id, Input::Stop);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Start,
    Stop,
    Restart,
}
