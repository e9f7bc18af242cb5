//! What the supervisor does for each request, one function per verb: Status, Start, Stop,
//! Restart, Reload (carrying out a [`Plan`]), Shutdown, WatchEvents, Tail, Reopen, Clear and
//! Signal.

use std::{
    collections::{BTreeMap, HashSet},
    sync::Arc,
};

use tokio::{sync::oneshot, time::Instant};

use super::{
    Supervisor,
    backlog::{Step, Verb},
    console::Console,
    event::{EventFilter, EventKind, Record, Watch},
    handle::{Reply, StatusCollector, SupervisorError},
    os::Os,
    plan::{self, Change, Plan},
    registry::{InstanceId, UnknownNames},
    state::{Input, State},
    view::{Attached, InstanceResult, ReloadSummary, SignalTo, Wait},
    waiters::{self, Goal, WaiterId},
};
use crate::{
    config::{Config, ConfigError, ProgramConfig},
    output::{Capture, StreamKind},
};

impl From<UnknownNames> for SupervisorError {
    fn from(UnknownNames(names): UnknownNames) -> Self {
        SupervisorError::UnknownNames { names }
    }
}

/// An instance an action may act on: its result slot, its id, its name.
type Accepted = (usize, InstanceId, Arc<str>);

impl<O: Os> Supervisor<O> {
    pub(super) fn status(&self, names: &[String], collect: StatusCollector) {
        let now = Instant::now();
        match self.registry.resolve(names) {
            Ok(ids) => {
                let mut views = ids
                    .iter()
                    .filter_map(|id| self.registry.get(*id))
                    .map(|instance| instance.view(now));
                collect(Ok(&mut views));
            }
            Err(unknown) => collect(Err(unknown.into())),
        }
    }

    pub(super) fn start(
        &mut self,
        names: &[String],
        wait: Wait,
        reply: Reply<Vec<InstanceResult>>,
    ) {
        let Some((waiter, accepted)) = self.begin_action(Goal::Running, names, reply) else {
            return;
        };
        self.queue_action(Verb::Start, waiter, wait, accepted);
    }

    pub(super) fn stop(&mut self, names: &[String], wait: Wait, reply: Reply<Vec<InstanceResult>>) {
        let Some((waiter, accepted)) = self.begin_action(Goal::Stopped, names, reply) else {
            return;
        };
        self.queue_action(Verb::Stop, waiter, wait, accepted);
    }

    pub(super) fn restart(
        &mut self,
        names: &[String],
        wait: Wait,
        reply: Reply<Vec<InstanceResult>>,
    ) {
        let Some((waiter, accepted)) = self.begin_action(Goal::Running, names, reply) else {
            return;
        };
        self.queue_action(Verb::Restart, waiter, wait, accepted);
    }

    /// Queues the action's part for each instance it accepted, in order, and takes the first
    /// slice of them.
    fn queue_action(&mut self, verb: Verb, waiter: WaiterId, wait: Wait, accepted: Vec<Accepted>) {
        let by = self.journal.acting.clone();
        for (slot, id, name) in accepted {
            self.queue(Step::Act {
                verb,
                id,
                name,
                waiter,
                slot,
                wait,
                by: by.clone(),
            });
        }
        self.take_steps();
    }

    /// An action's part for instance `id` (named `name`): feeds it the verb's input and
    /// answers slot `slot` of `waiter`, now or once its state says how the action ended.
    pub(super) fn act(
        &mut self,
        verb: Verb,
        id: InstanceId,
        name: &Arc<str>,
        waiter: WaiterId,
        slot: usize,
        wait: Wait,
    ) {
        let Some(instance) = self.registry.get(id) else {
            // Forgotten since the action came (its program was removed).
            let outcome = InstanceResult::new(name, false, "removed", State::Stopped);
            self.waiters.answer(waiter, slot, outcome);
            return;
        };
        let before = instance.life.state;
        match verb {
            // While STOPPING, it starts once reaped.
            Verb::Start => self.apply(id, Input::Start),
            // Also calls off a start planned for after a stop, and a pending autorestart.
            Verb::Stop => self.apply(id, Input::Stop),
            Verb::Restart => {
                let event =
                    instance.event(EventKind::Restarting, before, "restart requested".into());
                self.journal.publish(event);
                // Stops first if there is a process or a retry, then starts.
                self.apply(id, Input::Restart);
            }
        }
        self.answer(waiter, slot, id, before, wait, verb.accepted());
    }

    /// Resolves the names of an action and registers its waiter; returns the instances it may
    /// act on, each with its result slot and its state before, or `None` when the request is
    /// answered already (an error, or no instance at all). An instance that a reload is
    /// removing gets its answer here. Acting on one instance never changes whether another
    /// is accepted, so all are checked first.
    fn begin_action(
        &mut self,
        goal: Goal,
        names: &[String],
        reply: Reply<Vec<InstanceResult>>,
    ) -> Option<(WaiterId, Vec<Accepted>)> {
        if self.shutdown.is_some() {
            let _ = reply.send(Err(SupervisorError::ShuttingDown));
            return None;
        }
        let ids = match self.registry.resolve(names) {
            Ok(ids) => ids,
            Err(unknown) => {
                let _ = reply.send(Err(unknown.into()));
                return None;
            }
        };
        let waiter = self.waiters.add(goal, ids.len(), reply)?;
        let mut accepted = Vec::with_capacity(ids.len());
        for (slot, id) in ids.into_iter().enumerate() {
            let Some(instance) = self.registry.get(id) else {
                continue;
            };
            if instance.life.is_being_removed() {
                let outcome = InstanceResult::new(
                    &instance.name,
                    false,
                    "being removed by a config reload",
                    instance.life.state,
                );
                self.waiters.answer(waiter, slot, outcome);
            } else {
                accepted.push((slot, id, instance.name.clone()));
            }
        }
        Some((waiter, accepted))
    }

    /// Answers `slot` of `waiter` for instance `id` (in state `before` when the action came):
    /// now, or once its state says how the action ended.
    fn answer(
        &mut self,
        waiter: WaiterId,
        slot: usize,
        id: InstanceId,
        before: State,
        wait: Wait,
        accepted: &str,
    ) {
        let Some(instance) = self.registry.get(id) else {
            return;
        };
        let outcome = match wait {
            Wait::ForOutcome => {
                let goal = self.waiters.goal(waiter);
                goal.and_then(|goal| waiters::outcome(goal, instance))
                    .map(|mut outcome| {
                        if outcome.ok && before == instance.life.state {
                            outcome.message = match goal {
                                Some(Goal::Running) => "already running".into(),
                                _ => "not running".into(),
                            };
                        }
                        outcome
                    })
            }
            Wait::No => Some(InstanceResult::new(
                &instance.name,
                true,
                accepted,
                instance.life.state,
            )),
        };
        match outcome {
            Some(outcome) => self.waiters.answer(waiter, slot, outcome),
            None => self.waiters.wait_on(id, waiter, slot),
        }
    }

    /// Applies `config` if it was read and is valid; otherwise nothing changes.
    pub(super) fn reload(
        &mut self,
        config: Result<Config, ConfigError>,
    ) -> Result<ReloadSummary, SupervisorError> {
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
        // Before the answer: a caller the new policy refuses is refused from the next call.
        let daemon_warnings: Vec<String> = ((self.daemon_reload)(&config).iter())
            .map(|warning| format!("{}: {warning}", config.path.display()))
            .collect();
        for warning in &daemon_warnings {
            tracing::warn!("config: {warning}");
        }
        let mut summary = self.apply_config(config);
        summary.warnings.extend(daemon_warnings);
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

    /// Makes the programs those of `config` by carrying out the reload plan; its warnings go
    /// to the event log.
    pub(super) fn apply_config(&mut self, config: Config) -> ReloadSummary {
        let warnings = config.warning_lines();
        for warning in &warnings {
            tracing::warn!("config: {warning}");
        }
        let plan = plan::plan(self.registry.current(), &config.programs);
        let mut configs = config.programs;
        self.carry_out(&plan, &mut configs);
        self.take_steps();
        ReloadSummary {
            warnings,
            ..plan.summary()
        }
    }

    fn carry_out(&mut self, plan: &Plan, configs: &mut BTreeMap<String, ProgramConfig>) {
        for (name, change) in &plan.changes {
            let config = configs.remove(name).map(Arc::new);
            match (*change, config) {
                (Change::Unchanged, _) => {}
                (Change::Remove, _) => {
                    for id in self.registry.mark_removed(name) {
                        self.later(id, Input::Remove);
                    }
                }
                (Change::Add | Change::Grow { .. } | Change::Shrink { .. }, Some(config)) => {
                    self.resize(name, config, false);
                }
                (Change::Restart, Some(config)) => self.resize(name, config, true),
                (_, None) => {}
            }
        }
    }

    /// Gives program `name` its new `config` and `numprocs`: new instances start if autostart,
    /// extra ones are removed, and with `restart` every other instance restarts with it.
    fn resize(&mut self, name: &str, config: Arc<ProgramConfig>, restart: bool) {
        let autostart = config.autostart;
        self.registry.set_config(name, config);
        let resized = self.registry.resize(name);
        for id in resized.readded {
            self.later(id, Input::Readded { autostart });
        }
        for id in resized.extra {
            self.later(id, Input::Remove);
        }
        let ids: Vec<InstanceId> = self
            .registry
            .program(name)
            .map(|program| program.instances.clone())
            .unwrap_or_default();
        let created: HashSet<InstanceId> = resized.created.into_iter().collect();
        for id in ids {
            if created.contains(&id) {
                if autostart {
                    self.later(id, Input::Start);
                }
            } else if restart {
                self.later(id, Input::Reconfigured { autostart });
            }
        }
    }

    /// Queues `input` for instance `id`, by whoever acts now.
    fn later(&mut self, id: InstanceId, input: Input) {
        let by = self.journal.acting.clone();
        self.queue(Step::Apply { id, input, by });
    }

    /// Stops everything; `reply` (if any) is answered once every process is reaped.
    pub(super) fn shutdown(&mut self, reply: Option<oneshot::Sender<()>>) {
        if self.shutdown.is_none() {
            self.shutdown = Some(Vec::new());
            // Whatever was still to start or stop, everything stops now.
            self.backlog.clear();
            self.journal.publish(Record::daemon(
                EventKind::DaemonStopping,
                format!("stopping {} processes", self.children.len()),
            ));
            let ids: Vec<InstanceId> = self.registry.all().collect();
            for id in ids {
                self.apply(id, Input::Stop);
            }
        }
        if let (Some(waiting), Some(reply)) = (self.shutdown.as_mut(), reply) {
            waiting.push(reply);
        }
    }

    pub(super) fn watch_events(
        &self,
        names: &[String],
        since: Option<u64>,
        run: Option<u64>,
    ) -> Result<Watch, SupervisorError> {
        // Every name is checked, "all" or not: an unknown one is an error here as everywhere.
        self.registry.resolve(names)?;
        let filter = if names.iter().any(|name| name == "all") {
            EventFilter::default()
        } else {
            let (programs, instances): (Vec<String>, Vec<String>) = names
                .iter()
                .cloned()
                .partition(|name| self.registry.program(name).is_some());
            EventFilter::for_names(programs, instances)
        };
        Ok(Watch {
            subscription: self.journal.subscribe(since, run),
            filter,
            run: self.journal.run(),
        })
    }

    /// The one instance `name` designates.
    fn one_instance(&self, name: &str) -> Result<InstanceId, SupervisorError> {
        let ids = self.registry.resolve(&[name.to_string()])?;
        let [id] = ids[..] else {
            return Err(SupervisorError::NotOneInstance {
                name: name.to_string(),
                count: ids.len(),
            });
        };
        Ok(id)
    }

    /// The capture of stream `stream` of the one instance `name`.
    pub(super) fn tail(
        &self,
        name: &str,
        stream: StreamKind,
    ) -> Result<Arc<Capture>, SupervisorError> {
        let id = self.one_instance(name)?;
        let instance = self
            .registry
            .get(id)
            .ok_or_else(|| UnknownNames(vec![name.into()]))?;
        instance
            .capture(stream)
            .cloned()
            .ok_or_else(|| SupervisorError::NotCaptured {
                name: instance.name.to_string(),
                stream: stream.name(),
            })
    }

    /// The console of the live process of the one instance `name`, and its feeds, taken in
    /// this turn: its end cannot come between them (the supervisor alone ends it).
    pub(super) fn attach(&mut self, name: &str) -> Result<Attached, SupervisorError> {
        let id = self.one_instance(name)?;
        let instance =
            (self.registry.get_mut(id)).ok_or_else(|| UnknownNames(vec![name.into()]))?;
        if instance.pid == 0 {
            return Err(SupervisorError::NotRunning {
                name: instance.name.to_string(),
                state: instance.life.state.name(),
            });
        }
        let console = instance
            .console
            .get_or_insert_with(|| Arc::new(Console::without_input()))
            .clone();
        let feeds = if console.is_terminal() {
            (instance.stdout.as_ref())
                .map(|kept| (StreamKind::Stdout, kept.capture.screen()))
                .into_iter()
                .collect()
        } else {
            (instance.captures())
                .map(|capture| (capture.kind, capture.screen()))
                .collect()
        };
        Ok(Attached {
            instance: instance.name.clone(),
            pid: instance.pid,
            console,
            feeds,
        })
    }

    /// Reopens every output file; the errors.
    pub(super) fn reopen(&mut self) -> Vec<String> {
        let errors = self.outputs.reopen();
        let message = match errors.len() {
            0 => String::new(),
            failed => format!(
                "{failed} files could not be reopened: {}",
                errors.join("; ")
            ),
        };
        self.journal
            .publish(Record::daemon(EventKind::OutputReopened, message));
        errors
    }

    /// Empties the output files of the instances `names` designate; their names.
    pub(super) fn clear(&mut self, names: &[String]) -> Result<Vec<String>, SupervisorError> {
        let ids = self.registry.resolve(names)?;
        let mut cleared = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(instance) = self.registry.get_mut(id) else {
                continue;
            };
            for capture in instance.captures() {
                if let Err(error) = capture.clear() {
                    tracing::warn!("clearing {}: {error}", capture.label);
                }
            }
            instance.last_stderr = None;
            cleared.push(instance.name.to_string());
            let event = Record {
                instance: instance.name.clone(),
                ..Record::new(EventKind::OutputCleared)
            };
            self.journal.publish(event);
        }
        Ok(cleared)
    }

    /// Sends `signal` to each instance `names` designate that has a process: to its process
    /// group, or to its leader alone (`to`). One without a process is "not running", which
    /// fails its result only. The lifecycle does not change here: what the signal makes the
    /// process do (exit, say) comes back as its exit.
    pub(super) fn signal(
        &mut self,
        names: &[String],
        signal: nix::sys::signal::Signal,
        to: SignalTo,
    ) -> Result<Vec<InstanceResult>, SupervisorError> {
        if self.shutdown.is_some() {
            return Err(SupervisorError::ShuttingDown);
        }
        let ids = self.registry.resolve(names)?;
        let mut results = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(instance) = self.registry.get(id) else {
                continue;
            };
            let state = instance.life.state;
            // A pid is set from the spawn until the reap: the process (or its zombie) still
            // holds it and its group id, so neither can be another process's.
            if instance.pid == 0 {
                results.push(InstanceResult::new(
                    &instance.name,
                    false,
                    "not running",
                    state,
                ));
                continue;
            }
            let whom = match to {
                SignalTo::Group => {
                    self.os.signal_group(instance.pid, signal);
                    "its process group"
                }
                SignalTo::Leader => {
                    self.os.signal_process(instance.pid, signal);
                    "its leader"
                }
            };
            let sent = format!("{} sent", signal.as_str());
            let event = instance.event(EventKind::Signalled, state, format!("{sent} to {whom}"));
            self.journal.publish(event);
            results.push(InstanceResult::new(&instance.name, true, sent, state));
        }
        Ok(results)
    }
}
