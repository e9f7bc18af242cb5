//! A fake operating system for the actor's unit tests: processes are entries in a table, exits
//! happen when a test (or a signal) says so, and time is tokio's paused clock.
//!
//! How a fake process behaves is read from its command's words:
//! - `missing ...`: the spawn fails ("No such file or directory");
//! - `crash ...`: it exits with status 1 as soon as it is spawned;
//! - `stubborn ...`: it ignores every signal but SIGKILL;
//! - anything else runs until a test ends it or a signal kills it.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, MutexGuard},
    task::{Context, Poll},
};

use nix::sys::signal::Signal;
use tokio::{sync::mpsc, time::Instant};

use crate::{
    config::ProgramConfig,
    supervisor::{
        os::{ChildStdio, Os, Spawned},
        process::{ExitInfo, SpawnError},
        registry::InstanceId,
    },
};

/// One fake process.
#[derive(Debug, Clone)]
pub struct Process {
    pub pid: u32,
    /// Its command, words joined by spaces.
    pub command: String,
    pub spawned_at: Instant,
    /// How it ended, once it has.
    pub exit: Option<ExitInfo>,
    pub reaped: bool,
    /// Every signal sent to its group, with when.
    pub signals: Vec<(Instant, Signal)>,
    /// Every signal sent to it alone (not its group).
    pub leader_signals: Vec<Signal>,
}

/// Everything the fake knows; shared between the supervisor's [`FakeOs`] and the test's
/// [`Fake`].
#[derive(Debug, Default)]
struct World {
    processes: Vec<Process>,
    /// Exited and not yet reaped, oldest first: the zombies.
    zombies: VecDeque<u32>,
    /// Exit statuses of children the supervisor never spawned.
    strangers: Vec<(u32, ExitInfo)>,
    /// Pids handed out so far; the first is 1000.
    next_pid: u32,
    /// Instances whose container was killed, in order.
    killed_trees: Vec<String>,
    /// While a test holds them: outcomes of spawns made and not told yet.
    held: Option<Vec<Spawned>>,
}

impl World {
    fn process(&mut self, pid: u32) -> Option<&mut Process> {
        self.processes.iter_mut().find(|process| process.pid == pid)
    }

    /// Ends `pid` with `exit` if it is still alive; true if it was.
    fn end(&mut self, pid: u32, exit: ExitInfo) -> bool {
        let Some(process) = self.process(pid) else {
            return false;
        };
        if process.exit.is_some() {
            return false;
        }
        process.exit = Some(exit);
        self.zombies.push_back(pid);
        true
    }

    fn new_pid(&mut self) -> u32 {
        self.next_pid = self.next_pid.max(999) + 1;
        self.next_pid
    }
}

/// The supervisor's side.
pub struct FakeOs {
    world: Arc<Mutex<World>>,
    /// SIGCHLD, as the fake sends it.
    notices: mpsc::UnboundedReceiver<()>,
    /// To notify itself when a process it spawned or signalled exits at once.
    notify: mpsc::UnboundedSender<()>,
    /// Outcomes of spawns, told on the supervisor's next turn (as the real spawner thread
    /// tells them later).
    told: mpsc::UnboundedSender<Spawned>,
    outcomes: mpsc::UnboundedReceiver<Spawned>,
    begun: u64,
}

/// The test's side: ends processes and reads what the supervisor did.
#[derive(Clone)]
pub struct Fake {
    world: Arc<Mutex<World>>,
    notify: mpsc::UnboundedSender<()>,
    told: mpsc::UnboundedSender<Spawned>,
}

pub fn new() -> (FakeOs, Fake) {
    let world = Arc::new(Mutex::new(World::default()));
    let (notify, notices) = mpsc::unbounded_channel();
    let (told, outcomes) = mpsc::unbounded_channel();
    let os = FakeOs {
        world: world.clone(),
        notices,
        notify: notify.clone(),
        told: told.clone(),
        outcomes,
        begun: 0,
    };
    (
        os,
        Fake {
            world,
            notify,
            told,
        },
    )
}

fn lock(world: &Mutex<World>) -> MutexGuard<'_, World> {
    world
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Os for FakeOs {
    fn spawn(
        &mut self,
        seq: u64,
        id: InstanceId,
        _instance: &str,
        config: Arc<ProgramConfig>,
        _stdio: ChildStdio,
    ) {
        self.begun = seq;
        let result = fake_spawn(&self.world, &self.notify, &config);
        let outcome = Spawned { seq, id, result };
        match &mut lock(&self.world).held {
            Some(held) => held.push(outcome),
            None => {
                let _ = self.told.send(outcome);
            }
        }
    }

    fn poll_spawned(&mut self, cx: &mut Context<'_>) -> Poll<Option<Spawned>> {
        self.outcomes.poll_recv(cx)
    }

    fn spawns_begun(&self) -> u64 {
        self.begun
    }

    fn signal_group(&mut self, pid: u32, signal: Signal) {
        let mut world = lock(&self.world);
        let Some(process) = world.process(pid) else {
            return;
        };
        process.signals.push((Instant::now(), signal));
        let stubborn = process.command.starts_with("stubborn");
        if (signal == Signal::SIGKILL || !stubborn)
            && world.end(pid, ExitInfo::Signal(signal as i32))
        {
            let _ = self.notify.send(());
        }
    }

    fn signal_process(&mut self, pid: u32, signal: Signal) {
        let mut world = lock(&self.world);
        if let Some(process) = world.process(pid) {
            process.leader_signals.push(signal);
        }
    }

    fn exited_child(&mut self) -> Option<u32> {
        let world = lock(&self.world);
        world
            .zombies
            .front()
            .copied()
            .or_else(|| world.strangers.first().map(|(pid, _)| *pid))
    }

    fn reap(&mut self, pid: u32) -> Option<ExitInfo> {
        let mut world = lock(&self.world);
        if let Some(position) = world.strangers.iter().position(|(other, _)| *other == pid) {
            return Some(world.strangers.remove(position).1);
        }
        let position = world.zombies.iter().position(|zombie| *zombie == pid)?;
        world.zombies.remove(position);
        let process = world.process(pid)?;
        process.reaped = true;
        process.exit
    }

    fn poll_exits(&mut self, cx: &mut Context<'_>) -> Poll<Option<()>> {
        self.notices.poll_recv(cx)
    }

    fn end_leftovers(&mut self, instance: &str, kill: bool, _ours: &dyn Fn(u32) -> bool) {
        if kill {
            lock(&self.world).killed_trees.push(instance.to_string());
        }
    }

    fn release(&mut self, _instance: &str) {}

    fn containment(&self) -> String {
        "the fake's".to_string()
    }
}

/// A fake process of `config`, as its command's first word says.
fn fake_spawn(
    world: &Mutex<World>,
    notify: &mpsc::UnboundedSender<()>,
    config: &ProgramConfig,
) -> Result<u32, SpawnError> {
    let command = config.argv.join(" ");
    if config.argv[0] == "missing" {
        return Err(SpawnError("No such file or directory".to_string()));
    }
    let mut world = lock(world);
    let pid = world.new_pid();
    world.processes.push(Process {
        pid,
        command,
        spawned_at: Instant::now(),
        exit: None,
        reaped: false,
        signals: Vec::new(),
        leader_signals: Vec::new(),
    });
    if config.argv[0] == "crash" {
        world.end(pid, ExitInfo::Code(1));
        let _ = notify.send(());
    }
    Ok(pid)
}

impl Fake {
    /// From now on, the outcomes of spawns are held back (the processes exist) until
    /// [`Fake::tell_spawns`]: the supervisor goes on as while a real spawn is in progress.
    pub fn hold_spawns(&self) {
        lock(&self.world).held.get_or_insert_with(Vec::new);
    }

    /// Tells the outcomes held back, in order, and holds no more.
    pub fn tell_spawns(&self) {
        for outcome in lock(&self.world).held.take().unwrap_or_default() {
            let _ = self.told.send(outcome);
        }
    }

    /// The instances whose container was killed so far, in order.
    pub fn killed_trees(&self) -> Vec<String> {
        lock(&self.world).killed_trees.clone()
    }

    /// Ends process `pid` with exit status `code`, as if it exited on its own.
    pub fn exit(&self, pid: u32, code: i32) {
        if lock(&self.world).end(pid, ExitInfo::Code(code)) {
            let _ = self.notify.send(());
        }
    }

    /// A child the supervisor did not spawn exits (one inherited across exec, an orphan).
    pub fn stranger_exits(&self, pid: u32) {
        lock(&self.world).strangers.push((pid, ExitInfo::Code(0)));
        let _ = self.notify.send(());
    }

    /// Every process spawned so far, oldest first.
    pub fn processes(&self) -> Vec<Process> {
        lock(&self.world).processes.clone()
    }

    /// The processes whose command is `command`, oldest first.
    pub fn spawned(&self, command: &str) -> Vec<Process> {
        self.processes()
            .into_iter()
            .filter(|process| process.command == command)
            .collect()
    }

    /// Processes spawned and not yet reaped.
    pub fn unreaped(&self) -> Vec<Process> {
        self.processes()
            .into_iter()
            .filter(|process| !process.reaped)
            .collect()
    }

    /// Whether a stranger is still unreaped.
    pub fn strangers_left(&self) -> usize {
        lock(&self.world).strangers.len()
    }
}
