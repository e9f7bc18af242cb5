//! Program output captured by the daemon: a pipe per captured stream of every process, drained
//! by one thread ([`drainer`]) into a [`Capture`] per instance and stream, which writes whole
//! lines to its file ([`sink`], with rotation), keeps the end of stderr for crash forensics
//! and feeds live followers (Tail). The event log is a capture too (MainTail).
//!
//! Descriptors: each captured stream costs the daemon one pipe read end per live process, and
//! one file once output arrives (files are opened on first write; two while bytes are spliced
//! into it, since splice(2) refuses a descriptor opened for appending). A process on a
//! terminal (`tty: true`) costs one: the terminal's master, which stands for its stdout pipe
//! and carries its stderr too.

pub mod capture;
mod drainer;
pub mod sink;
pub mod terminal;

use std::{
    collections::HashMap,
    os::fd::OwnedFd,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard, Weak},
};

use tokio::sync::mpsc;

pub use capture::{
    Capture, Chunk, Drained, Pipe, SCREEN_TAIL, Screen, Snapshot, StreamKind, Tail, last_lines,
};
use drainer::Drainer;
use sink::Sink;
pub use sink::{FileOwner, ReadBack};

use crate::config::{self, Output, OutputPath};

/// What the output side tells the supervisor.
#[derive(Debug)]
pub enum Notice {
    /// Output of `instance` could not be written: `total` bytes so far (reported at most once
    /// in a while per stream).
    Dropped {
        instance: Arc<str>,
        kind: StreamKind,
        total: u64,
        reason: String,
    },
}

/// Where captured output goes, and the thread that drains it.
pub struct Outputs {
    /// The folder of default output files.
    logdir: PathBuf,
    /// Started with the first captured pipe: a daemon that discards all output has no
    /// drainer thread.
    drainer: Option<Arc<Drainer>>,
    /// Every file by path, shared by the captures that write to it (lines stay whole).
    sinks: HashMap<PathBuf, Weak<Mutex<Sink>>>,
    /// Given to every capture, for reports of dropped output.
    notices: mpsc::UnboundedSender<Notice>,
    /// The event log, for Reopen.
    event_log: Option<Arc<Capture>>,
    /// Reused for the last reads of an exiting process; empty until the first.
    scratch: Vec<u8>,
}

/// The instance a capture is for.
#[derive(Debug, Clone, Copy)]
pub struct Whose<'a> {
    pub program: &'a str,
    pub index: u32,
    pub name: &'a Arc<str>,
    /// Its program's `numprocs`: with one instance, a path without placeholders is its own.
    pub numprocs: u32,
    /// Who the files it creates belong to: its program's user, if it has one.
    pub owner: Option<FileOwner>,
}

/// The capture of one stream of an instance, and the config it was made for.
pub struct Kept {
    pub output: Output,
    /// The file it writes.
    pub path: PathBuf,
    pub capture: Arc<Capture>,
}

impl Outputs {
    /// Starts the drainer thread; default files go in `logdir`.
    pub fn new(
        logdir: PathBuf,
        event_log: Option<Arc<Capture>>,
        notices: mpsc::UnboundedSender<Notice>,
    ) -> std::io::Result<Outputs> {
        Ok(Outputs {
            logdir,
            drainer: None,
            sinks: HashMap::new(),
            notices,
            event_log,
            scratch: Vec::new(),
        })
    }

    pub fn event_log(&self) -> Option<&Arc<Capture>> {
        self.event_log.as_ref()
    }

    /// The capture for stream `kind` of instance `whose` under `output`: `kept` when it still
    /// fits, a new one otherwise, none when discarded. `tail`: what it keeps of its end (crash
    /// forensics for stderr or stdout carrying stderr, a terminal's screen).
    pub fn capture(
        &mut self,
        kept: Option<Box<Kept>>,
        output: &Output,
        kind: StreamKind,
        whose: &Whose<'_>,
        tail: Tail,
    ) -> Option<Box<Kept>> {
        let Whose {
            program,
            index,
            name,
            numprocs,
            owner,
        } = *whose;
        let Output::Capture(settings) = output else {
            return None;
        };
        let path = match &settings.path {
            OutputPath::Default => {
                let suffix = match kind {
                    StreamKind::Stdout => "out",
                    StreamKind::Stderr => "err",
                };
                self.logdir.join(format!("{name}.{suffix}.log"))
            }
            OutputPath::Template(template) => template.render(program, index, name),
        };
        if let Some(kept) = kept
            && kept.output == *output
            && kept.path == path
            && kept.capture.kind == kind
            && kept.capture.tail_kept() == tail
        {
            // A reload may have changed the program's user: files created from now on are its.
            lock(&kept.capture.sink).set_owner(owner);
            return Some(kept);
        }
        // Only a file of this instance alone may take spliced bytes: a shared path may get a
        // second writer, and lines must stay whole there. A path without placeholders is the
        // instance's own when its program has one instance and nothing else writes the file
        // (checked again at each splice).
        let exclusive = match &settings.path {
            OutputPath::Default => true,
            OutputPath::Template(template) => {
                template.tells_instances_apart() || (!template.has_placeholders() && numprocs == 1)
            }
        };
        let sink = self.sink(&path, settings, owner);
        let capture = Capture::new(
            name.clone(),
            kind,
            sink,
            settings.timestamps,
            tail,
            self.notices.clone(),
        )
        .exclusive(exclusive);
        Some(Box::new(Kept {
            output: output.clone(),
            path,
            capture: Arc::new(capture),
        }))
    }

    /// The one sink of `path`; the files it creates from now on belong to `owner`.
    fn sink(
        &mut self,
        path: &Path,
        settings: &config::Capture,
        owner: Option<FileOwner>,
    ) -> Arc<Mutex<Sink>> {
        if let Some(sink) = self.sinks.get(path).and_then(Weak::upgrade) {
            let mut shared = lock(&sink);
            shared.set_limits(settings.maxbytes, settings.backups);
            shared.set_owner(owner);
            drop(shared);
            return sink;
        }
        self.sinks.retain(|_, sink| sink.strong_count() > 0);
        let mut sink = Sink::new(path.to_path_buf(), settings.maxbytes, settings.backups);
        sink.set_owner(owner);
        let sink = Arc::new(Mutex::new(sink));
        self.sinks.insert(path.to_path_buf(), Arc::downgrade(&sink));
        sink
    }

    /// A pipe for a new process's stream into `capture`: the write end for the child, and the
    /// read end, to [`Outputs::drain`] once the child is spawned.
    pub fn pipe(&self, capture: &Arc<Capture>) -> std::io::Result<(OwnedFd, Arc<Pipe>)> {
        // Both ends close on exec: the child gets the write end as a new fd 1 or 2 (which
        // does not inherit the flag); no other child ever holds it, or EOF would never come.
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        // Only the daemon's end is non-blocking: the child writes as it always does.
        nix::fcntl::fcntl(
            &read,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        )?;
        Ok((write, Arc::new(Pipe::new(read, capture.clone()))))
    }

    /// A pseudo-terminal for a new process whose output goes into `capture`: its other side
    /// for the child (as stdin, stdout and stderr), and the master, to [`Outputs::drain`] once
    /// the child is spawned (it reads as a pipe does, and ends when no process holds the other
    /// side any more). Both close on exec; only the master is non-blocking. The window is 80x24
    /// until a client that attaches says otherwise.
    pub fn terminal(&self, capture: &Arc<Capture>) -> std::io::Result<(OwnedFd, Arc<Pipe>)> {
        let (master, terminal) = terminal::open()?;
        Ok((terminal, Arc::new(Pipe::new(master, capture.clone()))))
    }

    /// Drains `pipe` until every writer closed it.
    pub fn drain(&mut self, pipe: Arc<Pipe>) -> std::io::Result<()> {
        let drainer = match &self.drainer {
            Some(drainer) => drainer,
            None => self.drainer.insert(Drainer::start()?),
        };
        drainer.add(pipe)
    }

    /// Reads now what `pipe` holds (a process just exited: its last words).
    pub fn drain_now(&mut self, pipe: &Pipe) {
        // Allocated at the first exit of a captured process.
        if self.scratch.is_empty() {
            self.scratch = vec![0; 64 * 1024];
        }
        pipe.drain(&mut self.scratch, 4);
    }

    /// Reopens every file (after an outside logrotate moved them); the errors, by file.
    pub fn reopen(&mut self) -> Vec<String> {
        let mut errors = Vec::new();
        let event_log = self.event_log.as_ref().map(|capture| capture.sink.clone());
        let sinks = self
            .sinks
            .values()
            .filter_map(Weak::upgrade)
            .chain(event_log);
        for sink in sinks {
            let mut sink = lock(&sink);
            if let Err(error) = sink.reopen() {
                errors.push(format!("{}: {error}", sink.path.display()));
            }
        }
        errors
    }
}

/// Locks one of the output side's mutexes. A holder that panicked left whole state behind
/// (every change under these locks is complete or not begun), so a poisoned lock is used as
/// it is: output must go on.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The event log as a capture: `taskmasterd` writes its log lines through it (so that
/// MainTail can follow it and Reopen reopen it). Never rotated by the daemon.
pub fn event_log(path: PathBuf) -> Arc<Capture> {
    let sink = Arc::new(Mutex::new(Sink::new(path, 0, 0)));
    // Nobody listens: a failing event log cannot be reported in itself.
    let (notices, _) = mpsc::unbounded_channel();
    Arc::new(Capture::new(
        Arc::from("taskmasterd"),
        StreamKind::Stdout,
        sink,
        false,
        Tail::None,
        notices,
    ))
}
