//! The programs and their instances: what each instance knows of its process, finding
//! instances by name, resizing a program to its `numprocs`, and forgetting what a reload
//! removed. Bookkeeping only: lifecycle decisions are [`super::state`]'s.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::Arc,
    time::{Duration, SystemTime},
};

use tokio::time::Instant;

use super::console::Console;
use super::{
    event::{Actor, EventKind, Record},
    plan::Current,
    process::ExitInfo,
    state::{Lifecycle, State},
    view::InstanceView,
};
use crate::{
    config::ProgramConfig,
    output::{Capture, Kept, Pipe, StreamKind},
};

/// Identifies an instance for its whole life; never reused.
pub type InstanceId = u64;

pub struct Program {
    /// The current config; new processes are spawned with it.
    pub config: Arc<ProgramConfig>,
    /// Instances in index order.
    pub instances: Vec<InstanceId>,
    /// Removed from the config; forgotten once its instances are.
    pub removed: bool,
}

pub struct Instance {
    /// Shared with its events.
    pub program: Arc<str>,
    pub index: u32,
    /// "web" for a single instance, else "web:0", ...; shared with its events.
    pub name: Arc<str>,
    /// The config the current (or last) process was spawned with: its stop signal and
    /// exit codes apply to that process even after a reload.
    pub config: Arc<ProgramConfig>,
    pub life: Lifecycle,
    /// The live process, 0 when none.
    pub pid: u32,
    /// The pid of the last process, for exit events.
    pub last_pid: u32,
    /// When the live process was spawned.
    pub spawned_at: Option<Instant>,
    /// When the current state was entered.
    pub since: SystemTime,
    pub last_exit: Option<ExitInfo>,
    /// Why the last start failed; cleared by a successful spawn and by RUNNING.
    pub failure: Option<Failure>,
    /// Whether it has ever been started.
    pub ever_started: bool,
    /// Its captured stdout and stderr, kept across restarts; `None`: discarded (or, for
    /// stderr, carried by stdout). Boxed: a program that discards its output pays a pointer.
    pub stdout: Option<Box<Kept>>,
    pub stderr: Option<Box<Kept>>,
    /// The read ends of the live process's pipes (a terminal's master is one).
    pub pipes: Vec<Arc<Pipe>>,
    /// The live process's console, for clients that attach: made at the spawn for a terminal
    /// or a stdin pipe, else at the first attach; ended and dropped at its reap.
    pub console: Option<Arc<Console>>,
    /// The last lines of stderr at the last unexpected exit or failed start; cleared by an
    /// expected exit.
    pub last_stderr: Option<Arc<str>>,
    /// Who asked for the start still to come (a start while STOPPING, a restart), so that
    /// the spawn after the reap says who caused it; taken by the spawn.
    pub requested_by: Option<Actor>,
    /// A spawn asked for and not told yet (`pid` is 0 meanwhile); boxed: only a few
    /// instances are ever spawning at once.
    pub spawning: Option<Box<Spawning>>,
}

/// A spawn in progress: what its outcome needs.
#[derive(Debug)]
pub struct Spawning {
    /// The spawn's `seq` (see [`crate::supervisor::os::Os::spawn`]).
    pub seq: u64,
    /// The state it left for STARTING, for its event.
    pub from: State,
    /// Who caused it, for its event.
    pub by: Option<Actor>,
    /// The signal to send once the pid is known: the stop signal, or SIGKILL (which
    /// supersedes it), given while the spawn was in progress.
    pub signal: Option<nix::sys::signal::Signal>,
}

/// Why the last start of an instance failed.
#[derive(Debug, Clone)]
pub enum Failure {
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

impl Instance {
    fn new(program: Arc<str>, index: u32, config: Arc<ProgramConfig>) -> Instance {
        Instance {
            program,
            index,
            name: Arc::from(""),
            config,
            life: Lifecycle::INITIAL,
            pid: 0,
            last_pid: 0,
            spawned_at: None,
            since: SystemTime::now(),
            last_exit: None,
            failure: None,
            ever_started: false,
            stdout: None,
            stderr: None,
            pipes: Vec::new(),
            console: None,
            last_stderr: None,
            requested_by: None,
            spawning: None,
        }
    }

    /// Output bytes of this instance that could not be written to their files.
    pub fn output_dropped(&self) -> u64 {
        self.captures().map(|capture| capture.dropped()).sum()
    }

    /// Its captures, each once.
    pub fn captures(&self) -> impl Iterator<Item = &Arc<Capture>> {
        [&self.stdout, &self.stderr]
            .into_iter()
            .flatten()
            .map(|kept| &kept.capture)
    }

    /// The capture that holds stream `kind`, if it is captured: with `redirect_stderr` (or on
    /// a terminal), stderr is in stdout's.
    pub fn capture(&self, kind: StreamKind) -> Option<&Arc<Capture>> {
        match kind {
            StreamKind::Stderr if self.config.stderr_in_stdout() => self.stdout.as_ref(),
            StreamKind::Stderr => self.stderr.as_ref(),
            StreamKind::Stdout => self.stdout.as_ref(),
        }
        .map(|kept| &kept.capture)
    }

    /// An event about this instance, which has just left state `old`.
    pub fn event(&self, kind: EventKind, old: State, message: String) -> Record {
        Record {
            instance: self.name.clone(),
            old_state: Some(old),
            new_state: Some(self.life.state),
            pid: if self.pid != 0 {
                self.pid
            } else {
                self.last_pid
            },
            message: message.into(),
            ..Record::new(kind)
        }
    }

    /// Whether the last exit's code is one of `exitcodes`.
    pub fn expected(&self) -> bool {
        self.last_exit
            .and_then(ExitInfo::code)
            .is_some_and(|code| self.config.exitcodes.contains(&code))
    }

    /// How long the live process has run, as of `now`.
    fn uptime(&self, now: Instant) -> Duration {
        self.spawned_at.map_or(Duration::ZERO, |spawned| {
            now.saturating_duration_since(spawned)
        })
    }

    /// supervisorctl's description column; `now` is the time of the request.
    pub fn description(&self, now: Instant) -> String {
        let at = || humantime::format_rfc3339_seconds(self.since).to_string();
        match self.life.state {
            State::Stopped if !self.ever_started => "Not started".to_string(),
            State::Stopped => format!("Stopped at {}", at()),
            State::Starting if self.pid == 0 => "starting".to_string(),
            State::Starting => format!("pid {}, starting", self.pid),
            // The common case of a large Status: written without the formatting machinery.
            State::Running => {
                let mut text = String::with_capacity(32);
                text.push_str("pid ");
                text.push_str(itoa::Buffer::new().format(self.pid));
                text.push_str(", uptime ");
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

    pub fn view(&self, now: Instant) -> InstanceView {
        InstanceView {
            name: self.name.to_string(),
            program: self.program.to_string(),
            state: self.life.state,
            pid: self.pid,
            uptime: (self.pid != 0 && self.spawned_at.is_some()).then(|| self.uptime(now)),
            since: self.since,
            exit: self.last_exit,
            restarts: self.life.restarts,
            description: self.description(now),
            spawn_error: match &self.failure {
                Some(Failure::Spawn(reason)) => reason.to_string(),
                _ => String::new(),
            },
            last_stderr: self.last_stderr.as_deref().unwrap_or("").to_string(),
            output_dropped: self.output_dropped(),
        }
    }
}

/// Appends H:MM:SS.
fn write_clock(text: &mut String, elapsed: Duration) {
    let secs = elapsed.as_secs();
    text.push_str(itoa::Buffer::new().format(secs / 3600));
    for part in [secs / 60 % 60, secs % 60] {
        text.push(':');
        // Two digits: `part` is below 60.
        text.push(char::from(b'0' + (part / 10) as u8));
        text.push(char::from(b'0' + (part % 10) as u8));
    }
}

/// A single instance shares its program's name.
fn instance_name(program: &Arc<str>, numprocs: u32, index: u32) -> Arc<str> {
    if numprocs == 1 && index == 0 {
        program.clone()
    } else {
        format!("{program}:{index}").into()
    }
}

/// What [`Registry::resize`] changed; each list in index order.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Resized {
    /// Instances it created.
    pub created: Vec<InstanceId>,
    /// Instances below `numprocs` that a reload was removing.
    pub readded: Vec<InstanceId>,
    /// Instances at or above `numprocs`: to be removed.
    pub extra: Vec<InstanceId>,
}

/// An unknown name in a request.
#[derive(Debug, PartialEq, Eq)]
pub struct UnknownNames(pub Vec<String>);

/// Every program and instance.
#[derive(Default)]
pub struct Registry {
    /// Programs by name; iteration order is the status order.
    programs: BTreeMap<String, Program>,
    /// Boxed: the table's spare capacity then costs a pointer, not a whole instance.
    instances: HashMap<InstanceId, Box<Instance>>,
    next_id: InstanceId,
}

impl Registry {
    pub fn get(&self, id: InstanceId) -> Option<&Instance> {
        self.instances.get(&id).map(|instance| &**instance)
    }

    pub fn get_mut(&mut self, id: InstanceId) -> Option<&mut Instance> {
        self.instances.get_mut(&id).map(|instance| &mut **instance)
    }

    pub fn program(&self, name: &str) -> Option<&Program> {
        self.programs.get(name)
    }

    /// Every program as a reload plan sees it.
    pub fn current(&self) -> impl Iterator<Item = Current<'_>> {
        self.programs.iter().map(|(name, program)| Current {
            name,
            config: &program.config,
            removed: program.removed,
        })
    }

    /// Every instance, in status order.
    pub fn all(&self) -> impl Iterator<Item = InstanceId> + '_ {
        self.programs
            .values()
            .flat_map(|program| program.instances.iter().copied())
    }

    /// The instances `names` designate, in order, without repeats: program names, instance
    /// names or "all"; none means all. Any unknown name fails the whole request.
    pub fn resolve(&self, names: &[String]) -> Result<Vec<InstanceId>, UnknownNames> {
        if names.is_empty() {
            return Ok(self.all().collect());
        }
        let mut ids = Vec::new();
        let mut unknown = Vec::new();
        for name in names {
            if name == "all" {
                ids.extend(self.all());
            } else if let Some(program) = self.programs.get(name) {
                ids.extend(program.instances.iter().copied());
            } else if let Some(id) = self.find_instance(name) {
                ids.push(id);
            } else {
                unknown.push(name.clone());
            }
        }
        if !unknown.is_empty() {
            return Err(UnknownNames(unknown));
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

    /// Makes `config` the config of program `name`, adding the program if it is new; a
    /// removed program is no longer removed.
    pub fn set_config(&mut self, name: &str, config: Arc<ProgramConfig>) {
        match self.programs.get_mut(name) {
            Some(program) => {
                program.config = config;
                program.removed = false;
            }
            None => {
                let program = Program {
                    config,
                    instances: Vec::new(),
                    removed: false,
                };
                self.programs.insert(name.to_string(), program);
            }
        }
    }

    /// Marks program `name` removed and returns its instances, highest index first; it is
    /// forgotten with its last instance.
    pub fn mark_removed(&mut self, name: &str) -> Vec<InstanceId> {
        let Some(program) = self.programs.get_mut(name) else {
            return Vec::new();
        };
        program.removed = true;
        program.instances.iter().rev().copied().collect()
    }

    /// Creates the instances program `name` lacks for its `numprocs`, names every instance for
    /// it, and says which instances were created, which a removal no longer concerns, and
    /// which are beyond `numprocs` (highest index first: each removal is then at the end of
    /// the program's list).
    pub fn resize(&mut self, name: &str) -> Resized {
        let mut resized = Resized::default();
        let Some((program_name, program)) = self.programs.get_key_value(name) else {
            return resized;
        };
        let program_name: Arc<str> = program_name.as_str().into();
        let numprocs = program.config.numprocs;
        let config = program.config.clone();
        let existing: HashMap<u32, InstanceId> = program
            .instances
            .iter()
            .map(|id| (self.instances[id].index, *id))
            .collect();
        let mut list = program.instances.clone();
        for index in 0..numprocs {
            match existing.get(&index) {
                Some(id) if self.instances[id].life.is_being_removed() => resized.readded.push(*id),
                Some(_) => {}
                None => {
                    let id = self.next_id;
                    self.next_id += 1;
                    let instance = Instance::new(program_name.clone(), index, config.clone());
                    self.instances.insert(id, Box::new(instance));
                    list.push(id);
                    resized.created.push(id);
                }
            }
        }
        list.sort_by_key(|id| self.instances[id].index);
        for id in &list {
            if let Some(instance) = self.instances.get_mut(id) {
                instance.name = instance_name(&program_name, numprocs, instance.index);
                if instance.index >= numprocs {
                    resized.extra.push(*id);
                }
            }
        }
        resized.extra.reverse();
        if let Some(program) = self.programs.get_mut(name) {
            program.instances = list;
        }
        resized
    }

    /// Forgets instance `id` (it has no process), and its program once that is removed and
    /// empty.
    pub fn forget(&mut self, id: InstanceId) -> Option<Box<Instance>> {
        let instance = self.instances.remove(&id)?;
        if let Some(program) = self.programs.get_mut(&*instance.program) {
            if let Some(position) = program.instances.iter().rposition(|other| *other == id) {
                program.instances.remove(position);
            }
            if program.removed && program.instances.is_empty() {
                self.programs.remove(&*instance.program);
            }
        }
        Some(instance)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    fn program(numprocs: u32) -> Arc<ProgramConfig> {
        let text = format!("programs:\n  web:\n    cmd: sleep 1\n    numprocs: {numprocs}\n");
        let config = config::parse(&text, std::path::Path::new("/t/taskmaster.yaml")).unwrap();
        Arc::new(config.programs["web"].clone())
    }

    fn names(registry: &Registry) -> Vec<String> {
        registry
            .all()
            .map(|id| registry.get(id).unwrap().name.to_string())
            .collect()
    }

    #[test]
    fn the_clock_is_hours_then_two_digit_minutes_and_seconds() {
        let clock = |secs| {
            let mut text = String::new();
            write_clock(&mut text, Duration::from_secs(secs));
            text
        };
        assert_eq!(clock(0), "0:00:00");
        assert_eq!(clock(59), "0:00:59");
        assert_eq!(clock(61), "0:01:01");
        assert_eq!(clock(3600 * 27 + 600 + 9), "27:10:09");
        assert_eq!(clock(3600 * 100_000), "100000:00:00");
    }

    #[test]
    fn resize_creates_names_and_reports_extras_highest_first() {
        let mut registry = Registry::default();
        registry.set_config("web", program(1));
        let first = registry.resize("web");
        assert_eq!(first.created.len(), 1);
        assert_eq!(names(&registry), vec!["web"]);

        registry.set_config("web", program(3));
        let grown = registry.resize("web");
        assert_eq!(grown.created.len(), 2);
        assert!(grown.extra.is_empty());
        assert_eq!(names(&registry), vec!["web:0", "web:1", "web:2"]);
        // The first instance is the same one, renamed.
        assert_eq!(registry.all().next(), first.created.first().copied());

        registry.set_config("web", program(1));
        let shrunk = registry.resize("web");
        assert!(shrunk.created.is_empty());
        assert_eq!(shrunk.extra, vec![grown.created[1], grown.created[0]]);
        assert_eq!(names(&registry), vec!["web", "web:1", "web:2"]);
    }

    #[test]
    fn names_resolve_to_instances_in_order_without_repeats() {
        let mut registry = Registry::default();
        registry.set_config("web", program(2));
        registry.resize("web");
        registry.set_config("db", program(1));
        registry.resize("db");
        let name_of = |ids: Vec<InstanceId>| -> Vec<String> {
            ids.iter()
                .map(|id| registry.get(*id).unwrap().name.to_string())
                .collect()
        };
        let words = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            name_of(registry.resolve(&words(&["web:1", "db", "web"])).unwrap()),
            vec!["web:1", "db", "web:0"]
        );
        assert_eq!(
            name_of(registry.resolve(&[]).unwrap()),
            vec!["db", "web:0", "web:1"]
        );
        assert_eq!(
            registry.resolve(&words(&["all", "nope", "web:7"])),
            Err(UnknownNames(words(&["nope", "web:7"])))
        );
    }

    #[test]
    fn a_removed_program_is_forgotten_with_its_last_instance() {
        let mut registry = Registry::default();
        registry.set_config("web", program(2));
        registry.resize("web");
        let ids = registry.mark_removed("web");
        assert_eq!(ids.len(), 2);
        registry.forget(ids[0]);
        assert!(registry.program("web").is_some());
        registry.forget(ids[1]);
        assert!(registry.program("web").is_none());
    }
}
