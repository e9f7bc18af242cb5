//! The supervisor: the one owner of every program, instance and child process. It runs as a
//! single task that takes requests (each with a oneshot reply) from [`Handle`]s, child exits
//! and its own deadlines, applies the pure transitions of [`state`], carries out their effects
//! through its [`Os`] and publishes every event through the [`event::Journal`].
//!
//! # Layout
//! - [`handle`]: the [`Handle`] and the requests it sends; [`view`]: what requests answer.
//! - [`state`]: the lifecycle of one instance as a pure transition function and its table.
//! - [`registry`]: programs and instances, names, resizing, forgetting.
//! - [`plan`]: the reload plan, a pure function of the current programs and a new config.
//! - [`waiters`]: Start/Stop/Restart requests waiting for their instances.
//! - `backlog`: bulk work a slice at a time, and the requests held behind it.
//! - [`timers`]: deadlines by instance and purpose; [`children`]: pids and their owners.
//! - `actions`: one function per request ("what happens on Stop" reads top to bottom there).
//! - this file: the run loop, `apply` and the effects, spawning and reaping.
//! - [`os`]: the narrow interface to the operating system; [`process`] implements it.
//! - [`console`]: a live process's console for clients that attach (input, window size, end).
//! - [`event`]: numbered events, the event log, watchers.

mod actions;
mod backlog;
pub mod cgroups;
pub mod children;
pub mod console;
pub mod event;
pub mod handle;
mod ledger;
pub mod os;
pub mod plan;
pub mod process;
pub mod registry;
pub mod state;
pub mod timers;
pub mod view;
pub mod waiters;

#[cfg(test)]
mod tests;

use std::{path::PathBuf, sync::Arc, time::SystemTime};

use nix::sys::signal::Signal;
use tokio::{
    sync::{mpsc, oneshot},
    task::JoinHandle,
    time::Instant,
};

use crate::{
    config::{Config, Stdin},
    output::{Capture, FileOwner, Notice, Outputs, Pipe, StreamKind, Tail, Whose},
};
use backlog::{Backlog, Slice, Step};
use children::{Children, Owner};
use console::{Console, Ending};
pub use event::Actor;
pub use event::{EventFilter, Watch};
use event::{EventKind, Journal, Record};
use handle::Request;
pub use handle::{Handle, SupervisorError};
use os::{ChildStdio, Os, Spawned};
use process::ExitInfo;
use registry::{Failure, Instance, InstanceId, Registry, Spawning};
use state::{Context, Effect, Input, State};
use timers::{Purpose, Timers};
pub use view::{Attached, InstanceResult, InstanceView, ReloadSummary, SignalTo, Wait};
use waiters::Waiters;

/// Where captured output goes: the folder of default output files, and the event log (as a
/// capture, for MainTail and Reopen) when the daemon writes one.
pub struct OutputSettings {
    pub logdir: PathBuf,
    pub event_log: Option<Arc<Capture>>,
}

/// Told of each config a reload applies, before the reload is answered: puts in force what
/// of its `daemon:` and `alerts:` sections a reload changes (who may do what, the alert rules
/// and sinks) and returns, as warnings, what it does not. The supervisor owns the programs;
/// the daemon's own settings are its caller's.
pub type DaemonReload = Box<dyn FnMut(&Config) -> Vec<String> + Send>;

/// Starts the supervisor task on `config` with the real operating system (autostart programs
/// are started) and returns its handle; each reload's `daemon:` section goes to
/// `daemon_reload`. The task ends after a shutdown has stopped everything. Fails only if child
/// exits cannot be watched (no SIGCHLD handler) or the output drainer cannot start.
pub fn start(
    config: Config,
    output: OutputSettings,
    socket: Option<&std::path::Path>,
    daemon_reload: DaemonReload,
) -> std::io::Result<(Handle, JoinHandle<()>)> {
    // Installed before the first spawn: no exit can go unnoticed. The cgroups of the daemon of
    // `socket`, cleaned of what an earlier daemon left, before anything starts.
    let os = process::System::new(socket, config.daemon.cgroups != Some(false))?;
    start_with(os, config, output, daemon_reload)
}

/// [`start`] on any [`Os`].
pub fn start_with<O: Os>(
    os: O,
    config: Config,
    output: OutputSettings,
    daemon_reload: DaemonReload,
) -> std::io::Result<(Handle, JoinHandle<()>)> {
    let (requests, requests_rx) = mpsc::channel(256);
    let (notices, notices_rx) = mpsc::unbounded_channel();
    let outputs = Outputs::new(output.logdir, output.event_log.clone(), notices)?;
    let journal = Journal::default();
    let config_path = Arc::new(config.path.clone());
    let (reloads, reloads_rx) = mpsc::channel(16);
    tokio::spawn(handle::read_configs(
        config_path.clone(),
        reloads_rx,
        requests.downgrade(),
    ));
    let handle = Handle {
        requests,
        config_path,
        event_log: output.event_log,
        run: journal.run(),
        reloads,
        containment: os.containment().into(),
    };
    let mut supervisor = Supervisor {
        os,
        outputs,
        registry: Registry::default(),
        children: Children::default(),
        timers: Timers::default(),
        waiters: Waiters::default(),
        backlog: Backlog::default(),
        // Children that exited before the SIGCHLD handler was installed (inherited ones, at
        // start-up) sent their signal to nobody: looked for at the first turn.
        exits_pending: true,
        spawns_asked: 0,
        spawns_told: 0,
        exits_wait_for: None,
        journal,
        shutdown: None,
        daemon_reload,
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
        // Autostart is the config's policy.
        supervisor.acting_as(Some(Actor::Policy), |supervisor| {
            supervisor.apply_config(config);
        });
        supervisor.run(requests_rx, notices_rx).await;
    });
    Ok((handle, task))
}

/// How much of stderr an unexpected exit or a failed start carries.
const LAST_STDERR_LINES: usize = 10;
const LAST_STDERR_BYTES: usize = 2048;

struct Supervisor<O: Os> {
    /// Spawns, signals and reaps; nothing else touches processes.
    os: O,
    /// Captured output: pipes, files, the drainer thread.
    outputs: Outputs,
    registry: Registry,
    /// Every process spawned and not yet reaped.
    children: Children,
    /// Every pending deadline.
    timers: Timers,
    /// Action requests waiting for their instances.
    waiters: Waiters,
    /// Bulk work still to do, a slice per turn, and the requests held behind it.
    backlog: Backlog,
    /// Exited children are left to reap: a wake-up reaps at most a slice of them.
    exits_pending: bool,
    /// The `seq` of the last spawn asked for, and of the last one whose outcome is told:
    /// spawns are made off this task (see [`Os::spawn`]), in order.
    spawns_asked: u64,
    spawns_told: u64,
    /// Reaping waits for the outcome of this spawn: an exited child nobody knows may be its.
    exits_wait_for: Option<u64>,
    journal: Journal,
    /// Set once a shutdown began: who waits for its end.
    shutdown: Option<Vec<oneshot::Sender<()>>>,
    /// Where the `daemon:` section of a reloaded config goes.
    daemon_reload: DaemonReload,
}

impl<O: Os> Supervisor<O> {
    async fn run(
        &mut self,
        mut requests: mpsc::Receiver<Request>,
        mut notices: mpsc::UnboundedReceiver<Notice>,
    ) {
        // Fair between the branches: a crash-looping program must not starve clients (or the
        // shutdown request) of the supervisor's attention.
        let mut requests_open = true;
        loop {
            tokio::select! {
                // One notice may stand for many exits: each wake-up reaps them, a slice at a
                // time. Outcomes of spawns come first: an exit may be of a spawn's process.
                Some(notice) = std::future::poll_fn(|cx| poll_os(&mut self.os, cx)) => {
                    match notice {
                        OsNotice::Spawned(spawned) => self.on_spawned(spawned),
                        OsNotice::Exits => self.reap_exited(),
                    }
                }
                // Bulk work and exits left over go on between requests, a slice per turn. The
                // yield lets the server's tasks run first: on the daemon's one thread, they
                // are what brings requests in.
                () = tokio::task::yield_now(), if self.backlog.has_work() || self.exits_pending => {
                    if self.exits_pending {
                        self.reap_exited();
                    }
                    self.work_slice();
                }
                Some((id, purpose)) = std::future::poll_fn(|cx| self.timers.poll_expired(cx)) => {
                    self.on_due(id, purpose);
                }
                Some(notice) = notices.recv() => self.on_notice(notice),
                request = requests.recv(), if requests_open => match request {
                    Some(request) => self.on_request(request),
                    // Every handle is gone: nobody can ask for anything any more.
                    None => {
                        requests_open = false;
                        self.shutdown(None);
                    }
                },
            }
            if self.shutdown.is_some()
                && self.children.is_empty()
                && self.spawns_told == self.spawns_asked
            {
                for done in self.shutdown.take().unwrap_or_default() {
                    let _ = done.send(());
                }
                return;
            }
        }
    }

    /// One handler per request. What a request does is by its actor: every event it causes
    /// says so.
    fn on_request(&mut self, request: Request) {
        // A shutdown is never held: it ends whatever work is pending.
        let urgent = matches!(request, Request::Shutdown { .. });
        if self.backlog.has_work() && !urgent && !backlog::only_reads(&request) {
            self.backlog.hold(request);
            return;
        }
        self.acting_as(request.actor(), |supervisor| supervisor.dispatch(request));
    }

    /// Takes up to a slice of pending steps, or the next held request once no step is left
    /// before it.
    fn work_slice(&mut self) {
        let mut slice = Slice::begin();
        while slice.take() {
            if let Some(step) = self.backlog.next_step() {
                self.step(step);
            } else if let Some(request) = self.backlog.next_request() {
                self.acting_as(request.actor(), |supervisor| supervisor.dispatch(request));
                return;
            } else {
                return;
            }
        }
    }

    /// Queues `step` for its turn; the request that queues steps then takes a first slice
    /// with [`Supervisor::take_steps`], so that small work is done within it.
    fn queue(&mut self, step: Step) {
        self.backlog.push(step);
    }

    /// Takes up to a slice of pending steps (never a held request).
    fn take_steps(&mut self) {
        let mut slice = Slice::begin();
        while slice.take() {
            let Some(step) = self.backlog.next_step() else {
                return;
            };
            self.step(step);
        }
    }

    /// Carries out one step, by the actor that asked for it.
    fn step(&mut self, step: Step) {
        match step {
            Step::Apply { id, input, by } => {
                self.acting_as(by, |supervisor| supervisor.apply(id, input));
            }
            Step::Act {
                verb,
                id,
                name,
                waiter,
                slot,
                wait,
                by,
            } => self.acting_as(by, |supervisor| {
                supervisor.act(verb, id, &name, waiter, slot, wait);
            }),
        }
    }

    /// Does `work` with `actor` acting (see [`Journal::act_as`]), then restores who acted.
    fn acting_as(&mut self, actor: Option<Actor>, work: impl FnOnce(&mut Self)) {
        let before = std::mem::replace(&mut self.journal.acting, actor);
        work(self);
        self.journal.acting = before;
    }

    fn dispatch(&mut self, request: Request) {
        match request {
            Request::Status { names, collect } => self.status(&names, collect),
            Request::Start {
                names, wait, reply, ..
            } => self.start(&names, wait, reply),
            Request::Stop {
                names, wait, reply, ..
            } => self.stop(&names, wait, reply),
            Request::Restart {
                names, wait, reply, ..
            } => self.restart(&names, wait, reply),
            Request::Reload { config, reply, .. } => {
                let _ = reply.send(self.reload(*config));
            }
            Request::Shutdown { reply, .. } => self.shutdown(Some(reply)),
            Request::WatchEvents {
                names,
                since,
                run,
                reply,
            } => {
                let _ = reply.send(self.watch_events(&names, since, run));
            }
            Request::Tail {
                name,
                stream,
                reply,
            } => {
                let _ = reply.send(self.tail(&name, stream));
            }
            Request::Attach { name, reply } => {
                let _ = reply.send(self.attach(&name));
            }
            Request::Reopen { reply, .. } => {
                let _ = reply.send(Ok(self.reopen()));
            }
            Request::Clear { names, reply, .. } => {
                let _ = reply.send(self.clear(&names));
            }
            Request::Signal {
                names,
                signal,
                to,
                reply,
                ..
            } => {
                let _ = reply.send(self.signal(&names, signal, to));
            }
        }
    }

    /// What the output side reports.
    fn on_notice(&mut self, notice: Notice) {
        match notice {
            Notice::Dropped {
                instance,
                kind,
                total,
                reason,
            } => {
                let event = Record {
                    instance,
                    message: format!(
                        "{total} bytes of {} could not be written so far: {reason}",
                        kind.name()
                    )
                    .into(),
                    ..Record::new(EventKind::OutputDropped)
                };
                self.journal.publish(event);
            }
        }
    }

    /// Reaps the children that have exited, a slice of them at most (then `exits_pending`
    /// says more may wait), and hands each exit to its owner.
    fn reap_exited(&mut self) {
        let mut unreapable = None;
        let mut slice = Slice::begin();
        self.exits_pending = false;
        while let Some(pid) = self.os.exited_child() {
            if !slice.take() {
                self.exits_pending = true;
                return;
            }
            let owner = self.children.owner(pid);
            if owner.is_none() && self.spawns_told < self.spawns_asked {
                // Perhaps the process of a spawn whose outcome is still on its way: reaped
                // once that is told (within one spawn), as the instance's or as a stranger.
                let begun = self.os.spawns_begun();
                if begun > self.spawns_told {
                    self.exits_wait_for = Some(begun);
                    return;
                }
            }
            let leftovers = match owner {
                Some(Owner::Instance(id)) => self
                    .registry
                    .get(id)
                    .map(|instance| (instance.name.clone(), instance.config.kill_leftovers)),
                None => None,
            };
            if let Some((name, kill)) = leftovers {
                // Nothing of an instance survives its leader, stopped or not: its process
                // group, and (its cgroup, or the orphans it left) what left the group or the
                // session. Not yet reaped, the leader keeps its pid, and so the group id, from
                // being reused.
                if kill {
                    self.os.signal_group(pid, Signal::SIGKILL);
                }
                let children = &self.children;
                self.os
                    .end_leftovers(&name, kill, &|pid| children.owner(pid).is_some());
            }
            let Some(exit) = self.os.reap(pid) else {
                // Reaped elsewhere in between (then the next peek moves on), or, never seen,
                // still reported: stop rather than spin on it.
                if unreapable == Some(pid) {
                    tracing::error!(pid, "an exited child could not be reaped");
                    return;
                }
                unreapable = Some(pid);
                continue;
            };
            self.children.remove(pid);
            match owner {
                Some(Owner::Instance(id)) => self.on_exit(id, exit),
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
        let daemon_stopping = self.shutdown.is_some();
        let Some(instance) = self.registry.get_mut(id) else {
            return;
        };
        instance.last_pid = instance.pid;
        instance.pid = 0;
        let ran_for = instance
            .spawned_at
            .take()
            .map_or(std::time::Duration::ZERO, |spawned| spawned.elapsed());
        instance.last_exit = Some(exit);
        let failed_start = instance.life.state == State::Starting;
        if failed_start {
            instance.failure = Some(Failure::TooQuick(exit));
        }
        let expected = instance.expected();
        // Its last words are in before its exit is told; the drainer has the rest (a
        // grandchild may hold the pipe).
        for pipe in std::mem::take(&mut instance.pipes) {
            self.outputs.drain_now(&pipe);
        }
        // Its attached clients have all it wrote so far: they are told how it ended.
        if let Some(console) = instance.console.take() {
            console.end(Ending {
                exit,
                daemon_stopping,
            });
        }
        if failed_start || (instance.life.state == State::Running && !expected) {
            instance.last_stderr = instance
                .capture(StreamKind::Stderr)
                .map(|capture| capture.last_lines(LAST_STDERR_LINES, LAST_STDERR_BYTES))
                .filter(|lines| !lines.is_empty())
                .map(Arc::from);
        } else if expected {
            instance.last_stderr = None;
        }
        // Its start or kill deadline ends with the state change the exit makes.
        self.apply(id, Input::Exited { expected, ran_for });
    }

    /// The deadline of instance `id` for `purpose` has passed.
    fn on_due(&mut self, id: InstanceId, purpose: Purpose) {
        let policy = match purpose {
            Purpose::StartTime => None,
            Purpose::Retry | Purpose::Autorestart | Purpose::Kill => Some(Actor::Policy),
        };
        self.acting_as(policy, |supervisor| supervisor.fire(id, purpose));
    }

    fn fire(&mut self, id: InstanceId, purpose: Purpose) {
        match purpose {
            Purpose::StartTime => self.apply(id, Input::StartTimeElapsed),
            Purpose::Retry => self.apply(id, Input::RetryDue),
            Purpose::Autorestart => self.apply(id, Input::AutorestartDue),
            Purpose::Kill => {
                // An exit that came with this deadline, not yet seen: it ends the stop rather
                // than be reported as still alive.
                self.reap_exited();
                let Some(instance) = self.registry.get(id) else {
                    return;
                };
                if instance.life.state != State::Stopping {
                    return;
                }
                let message = format!(
                    "still alive {}s after the stop signal: SIGKILL sent",
                    instance.config.stoptime.as_secs_f64()
                );
                let event = instance.event(EventKind::Killed, instance.life.state, message);
                self.signal_instance(id, Signal::SIGKILL);
                self.journal.publish(event);
            }
        }
    }

    /// Sends `signal` to the process group of instance `id`, or, while its spawn is in
    /// progress, once the spawn is told (SIGKILL supersedes the stop signal).
    fn signal_instance(&mut self, id: InstanceId, signal: Signal) {
        let Some(instance) = self.registry.get_mut(id) else {
            return;
        };
        match &mut instance.spawning {
            Some(spawning) => {
                if spawning.signal != Some(Signal::SIGKILL) {
                    spawning.signal = Some(signal);
                }
            }
            // Not reaped yet (only the supervisor reaps, and not before this transition is
            // done), so the pid and its group are still ours.
            None => self.os.signal_group(instance.pid, signal),
        }
    }

    /// Feeds `input` to instance `id`, carries out the effect, publishes the event, and
    /// settles whatever waited on the instance.
    fn apply(&mut self, id: InstanceId, input: Input) {
        let shutting_down = self.shutdown.is_some();
        let Some(instance) = self.registry.get_mut(id) else {
            return;
        };
        let context = Context {
            autorestart: instance.config.autorestart,
            startretries: instance.config.startretries,
            shutting_down,
        };
        let old = instance.life.state;
        let (next, effect) = match state::transition(instance.life, input, context) {
            Ok(next) => next,
            Err(illegal) => {
                tracing::debug!(instance = %instance.name, "ignored: {illegal}");
                return;
            }
        };
        instance.life = next;
        if matches!(
            input,
            Input::Start | Input::Restart | Input::Reconfigured { .. } | Input::Readded { .. }
        ) && let Some(actor) = self.journal.acting()
        {
            instance.requested_by = Some(actor.clone());
        }
        if next.state != old {
            instance.since = SystemTime::now();
            // Each of those deadlines belongs to one state; the effect sets the new state's.
            self.timers.cancel_state(id);
        }
        if effect == Effect::Spawn {
            self.spawn(id, old);
            return;
        }
        let Some(instance) = self.registry.get(id) else {
            return;
        };
        if next.state != old {
            self.journal
                .publish(transition_event(instance, old, input, effect));
        }
        match effect {
            Effect::SignalStop => {
                let (stopsignal, stoptime) = (instance.config.stopsignal, instance.config.stoptime);
                self.signal_instance(id, stopsignal);
                self.timers.set(id, Purpose::Kill, stoptime);
            }
            Effect::ScheduleRetry(delay) => self.timers.set(id, Purpose::Retry, delay),
            Effect::ScheduleAutorestart(delay) if delay.is_zero() => {
                self.acting_as(Some(Actor::Policy), |supervisor| {
                    supervisor.apply(id, Input::AutorestartDue)
                });
                return;
            }
            Effect::ScheduleAutorestart(delay) => self.timers.set(id, Purpose::Autorestart, delay),
            Effect::CancelAutorestart => self.timers.cancel(id, Purpose::Autorestart),
            Effect::StartAgain => {
                // Its waiters are settled by the start.
                self.apply(id, Input::Start);
                return;
            }
            Effect::Forget => {
                self.forget(id);
                return;
            }
            Effect::None | Effect::Spawn => {}
        }
        self.settle(id);
    }

    /// Spawns a process for instance `id`, which has just entered STARTING from `old`.
    fn spawn(&mut self, id: InstanceId, old: State) {
        let Some(current) = self
            .registry
            .get(id)
            .and_then(|instance| self.registry.program(&instance.program))
            .map(|program| program.config.clone())
        else {
            return;
        };
        let Some(instance) = self.registry.get_mut(id) else {
            return;
        };
        instance.config = current;
        instance.ever_started = true;
        let (stdio, pipes, console) = match prepare_output(&mut self.outputs, instance) {
            Ok(prepared) => prepared,
            Err(error) => {
                instance.last_pid = 0;
                instance.failure = Some(Failure::Spawn(error.into()));
                self.apply(id, Input::SpawnFailed);
                return;
            }
        };
        // Drained from before the child writes: an undrained pipe would block it for good.
        for pipe in &pipes {
            if let Err(error) = self.outputs.drain(pipe.clone()) {
                instance.last_pid = 0;
                let reason = format!("cannot drain the output pipe: {error}");
                instance.failure = Some(Failure::Spawn(reason.into()));
                self.apply(id, Input::SpawnFailed);
                return;
            }
        }
        // Who caused it: whoever acts now, or, after a reap nobody acts, who asked for the
        // start before.
        let requested_by = instance.requested_by.take();
        let by = self.journal.acting().cloned().or(requested_by);
        self.spawns_asked += 1;
        let seq = self.spawns_asked;
        instance.pipes = pipes;
        instance.console = console;
        instance.spawning = Some(Box::new(Spawning {
            seq,
            from: old,
            by,
            signal: None,
        }));
        let config = instance.config.clone();
        self.os.spawn(seq, id, &instance.name, config, stdio);
    }

    /// The outcome of a spawn: the process runs (its deadline for `starttime` begins), or the
    /// start failed.
    fn on_spawned(&mut self, Spawned { seq, id, result }: Spawned) {
        self.spawns_told = seq;
        if self.exits_wait_for.is_some_and(|begun| seq >= begun) {
            self.exits_wait_for = None;
            self.exits_pending = true;
        }
        let spawning = self.registry.get_mut(id).and_then(|instance| {
            let ours = instance.spawning.as_ref()?.seq == seq;
            ours.then(|| instance.spawning.take()).flatten()
        });
        let Some(spawning) = spawning else {
            // Nothing waits for it (an instance is only forgotten without a process): it
            // must not run. Reaped as a stranger.
            if let Ok(pid) = result {
                self.os.signal_group(pid, Signal::SIGKILL);
            }
            return;
        };
        let Spawning {
            from, by, signal, ..
        } = *spawning;
        let Some(instance) = self.registry.get_mut(id) else {
            return;
        };
        let pid = match result {
            Ok(pid) => pid,
            Err(error) => {
                instance.last_pid = 0;
                instance.pipes.clear();
                instance.console = None;
                instance.failure = Some(Failure::Spawn(error.to_string().into()));
                // A stop that came meanwhile has nothing to stop: as if the process ended.
                let input = match instance.life.state {
                    State::Starting => Input::SpawnFailed,
                    _ => Input::Exited {
                        expected: true,
                        ran_for: std::time::Duration::ZERO,
                    },
                };
                self.acting_as(by, |supervisor| supervisor.apply(id, input));
                return;
            }
        };
        self.children.insert(pid, Owner::Instance(id));
        instance.pid = pid;
        instance.spawned_at = Some(Instant::now());
        instance.failure = None;
        let message = match instance.life.failed_starts {
            0 => String::new(),
            retry => format!("retry {retry} of {}", instance.config.startretries),
        };
        let mut event = instance.event(EventKind::Spawned, from, message);
        event.actor = by;
        let starting = instance.life.state == State::Starting;
        let starttime = instance.config.starttime;
        self.journal.publish(event);
        if let Some(signal) = signal {
            // Stopped while it was being spawned.
            self.os.signal_group(pid, signal);
        }
        // Stopped while it was being spawned: its stop is under way, no start deadline.
        if !starting {
            return;
        }
        if starttime.is_zero() {
            // Holding is the process's doing, whoever started it.
            self.acting_as(None, |supervisor| {
                supervisor.apply(id, Input::StartTimeElapsed)
            });
        } else {
            self.timers.set(id, Purpose::StartTime, starttime);
            self.settle(id);
        }
    }

    /// After a change of instance `id`: answers the waiters its state answers.
    fn settle(&mut self, id: InstanceId) {
        let Some(instance) = self.registry.get_mut(id) else {
            return;
        };
        if instance.life.state == State::Running {
            instance.failure = None;
        }
        self.waiters.settle(id, instance);
    }

    /// Forgets instance `id`, which has no process: its deadlines end and its waiters are
    /// answered.
    fn forget(&mut self, id: InstanceId) {
        self.timers.cancel_state(id);
        if let Some(instance) = self.registry.forget(id) {
            self.os.release(&instance.name);
            self.waiters.forget(id, &instance);
        }
    }
}

/// What the operating system tells the supervisor.
enum OsNotice {
    Spawned(Spawned),
    /// Children may have exited.
    Exits,
}

/// The next of `os`'s notices: a spawn's outcome before exits.
fn poll_os<O: Os>(
    os: &mut O,
    cx: &mut std::task::Context<'_>,
) -> std::task::Poll<Option<OsNotice>> {
    if let std::task::Poll::Ready(Some(spawned)) = os.poll_spawned(cx) {
        return std::task::Poll::Ready(Some(OsNotice::Spawned(spawned)));
    }
    os.poll_exits(cx)
        .map(|exits| exits.map(|()| OsNotice::Exits))
}

/// The event for a transition that did not spawn.
fn transition_event(instance: &Instance, old: State, input: Input, effect: Effect) -> Record {
    let exited = matches!(input, Input::Exited { .. });
    let exit_text = || instance.last_exit.map_or(String::new(), ExitInfo::describe);
    let failure = || {
        instance
            .failure
            .as_ref()
            .map_or_else(String::new, Failure::to_string)
    };
    let mut event = match instance.life.state {
        State::Running => instance.event(EventKind::Started, old, String::new()),
        State::Backoff => {
            let retry = match effect {
                Effect::ScheduleRetry(delay) => format!("; retry in {}s", delay.as_secs()),
                _ => String::new(),
            };
            instance.event(EventKind::Backoff, old, format!("{}{retry}", failure()))
        }
        State::Fatal => instance.event(
            EventKind::GaveUp,
            old,
            match instance.life.failed_starts {
                1 => format!("{}; gave up after 1 try", failure()),
                tries => format!("{}; gave up after {tries} tries", failure()),
            },
        ),
        State::Exited => {
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
        State::Stopping => instance.event(
            EventKind::Stopping,
            old,
            format!("{} sent", instance.config.stopsignal.as_str()),
        ),
        State::Stopped if exited => instance.event(EventKind::Stopped, old, exit_text()),
        State::Stopped => instance.event(EventKind::Stopped, old, "retry cancelled".to_string()),
        // Entered only by a spawn, which publishes its own event.
        State::Starting => instance.event(EventKind::Spawned, old, String::new()),
    };
    if exited {
        event.exit = instance.last_exit;
    }
    let failed = match instance.life.state {
        State::Backoff | State::Fatal => true,
        State::Exited => !event.expected,
        _ => false,
    };
    if failed {
        event.last_stderr = instance.last_stderr.clone();
    }
    event
}

/// What a process gets before its spawn: its stdio, the read ends to drain once it is spawned,
/// and its console when it has a terminal or a stdin pipe.
type Prepared = (ChildStdio, Vec<Arc<Pipe>>, Option<Arc<Console>>);

/// Makes (or keeps) the captures of `instance`'s streams for its config and the pipes (or the
/// terminal) of its next process: what the child gets, the read ends to drain once it is
/// spawned, and its console when it has a terminal or a stdin pipe. A program without either
/// gets exactly what it always did: no descriptor more, no console.
fn prepare_output(outputs: &mut Outputs, instance: &mut Instance) -> Result<Prepared, String> {
    let config = instance.config.clone();
    let redirect = config.stderr_in_stdout();
    // What stdout keeps of its end: a terminal's screen, or stderr's last lines when it
    // carries them.
    let stdout_tail = match (config.tty, redirect) {
        (true, _) => Tail::Screen,
        (false, true) => Tail::Stderr,
        (false, false) => Tail::None,
    };
    let (program, name) = (instance.program.clone(), instance.name.clone());
    let whose = Whose {
        program: &program,
        index: instance.index,
        name: &name,
        numprocs: config.numprocs,
        owner: (config.identity.as_ref()).map(|identity| FileOwner {
            uid: identity.uid,
            gid: identity.gid,
        }),
    };
    instance.stdout = outputs.capture(
        instance.stdout.take(),
        &config.stdout,
        StreamKind::Stdout,
        &whose,
        stdout_tail,
    );
    instance.stderr = if redirect {
        None
    } else {
        outputs.capture(
            instance.stderr.take(),
            &config.stderr,
            StreamKind::Stderr,
            &whose,
            Tail::Stderr,
        )
    };
    // The kept end of stderr is of this process from now on.
    for capture in instance.captures() {
        capture.new_process();
    }
    let mut stdio = ChildStdio::default();
    let mut pipes = Vec::new();
    let failed = |kind: StreamKind| {
        move |error: std::io::Error| format!("cannot make the {} pipe: {error}", kind.name())
    };
    if config.tty {
        // The config never discards a terminal's output: its master must be read.
        let kept = (instance.stdout.as_ref()).ok_or("a terminal's output must be captured")?;
        let (terminal, master) = outputs
            .terminal(&kept.capture)
            .map_err(|error| format!("cannot open a pseudo-terminal: {error}"))?;
        let copy = |fd: &std::os::fd::OwnedFd| {
            fd.try_clone()
                .map_err(|error| format!("cannot open a pseudo-terminal: {error}"))
        };
        stdio.stdin = Some(copy(&terminal)?);
        stdio.stderr = Some(copy(&terminal)?);
        stdio.stdout = Some(terminal);
        stdio.terminal = true;
        let console = Console::terminal(master.clone());
        pipes.push(master);
        return Ok((stdio, pipes, Some(Arc::new(console))));
    }
    let mut console = None;
    if config.stdin == Stdin::Pipe {
        let (read, write) =
            stdin_pipe().map_err(|error| format!("cannot make the stdin pipe: {error}"))?;
        stdio.stdin = Some(read);
        console = Some(Arc::new(Console::stdin(write)));
    }
    if let Some(kept) = &instance.stdout {
        let (write, pipe) = outputs
            .pipe(&kept.capture)
            .map_err(failed(StreamKind::Stdout))?;
        if redirect {
            stdio.stderr = Some(write.try_clone().map_err(failed(StreamKind::Stderr))?);
        }
        stdio.stdout = Some(write);
        pipes.push(pipe);
    }
    if let Some(kept) = &instance.stderr {
        let (write, pipe) = outputs
            .pipe(&kept.capture)
            .map_err(failed(StreamKind::Stderr))?;
        stdio.stderr = Some(write);
        pipes.push(pipe);
    }
    Ok((stdio, pipes, console))
}

/// A pipe for a process's stdin: the read end for the child, the write end (non-blocking) for
/// its console. Both close on exec, as the output pipes' ends do.
fn stdin_pipe() -> std::io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    nix::fcntl::fcntl(
        &write,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )?;
    Ok((read, write))
}
