//! The console of a live process, for the clients that attach to it: where their input goes
//! (its terminal with `tty: true`, its stdin pipe with `stdin: pipe`, else nowhere), its window
//! size, and its end as the supervisor saw it. A process with a terminal or a stdin pipe gets
//! its console at the spawn; any other gets one at the first attach. The supervisor ends it
//! when it reaps the process, after the process's last output is in: a client is told how the
//! process ended once it has been sent everything it wrote.
//!
//! The console holds no descriptor of its own: a terminal's master is the output side's (the
//! drainer reads it as the process's stdout); a stdin pipe's write end is the only one, kept
//! while the process lives. Each attached client writes through a duplicate of its own, which
//! closes when it detaches.

use std::{
    io,
    os::fd::{AsFd, BorrowedFd, OwnedFd},
    sync::Arc,
};

use tokio::{io::unix::AsyncFd, sync::watch};

use super::process::ExitInfo;
use crate::output::{
    Pipe,
    terminal::{self, WindowSize},
};

/// How the process of a console ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ending {
    pub exit: ExitInfo,
    /// The daemon was shutting down: it stopped the process.
    pub daemon_stopping: bool,
}

/// The console of one process.
pub struct Console {
    /// Where input goes; `None`: the process takes none.
    input: Option<Input>,
    /// Its end once the supervisor reaped it; `None` until then.
    ended: watch::Sender<Option<Ending>>,
}

/// Where a console's input goes.
enum Input {
    /// The terminal's master, which the drainer reads as the process's stdout: input is
    /// written to it, and the window size set on it.
    Terminal(Arc<Pipe>),
    /// The daemon's end of the stdin pipe (non-blocking; the child has the other end).
    Stdin(OwnedFd),
}

impl Console {
    /// The console of a process on the terminal whose master `master` is.
    pub(super) fn terminal(master: Arc<Pipe>) -> Console {
        Console::with(Some(Input::Terminal(master)))
    }

    /// The console of a process whose stdin is the pipe `write` is the write end of.
    pub(super) fn stdin(write: OwnedFd) -> Console {
        Console::with(Some(Input::Stdin(write)))
    }

    /// The console of a process that takes no input.
    pub(super) fn without_input() -> Console {
        Console::with(None)
    }

    fn with(input: Option<Input>) -> Console {
        Console {
            input,
            ended: watch::channel(None).0,
        }
    }

    /// The process ended so; every client is told.
    pub(super) fn end(&self, ending: Ending) {
        self.ended.send_replace(Some(ending));
    }

    /// Whether the process runs on a terminal.
    pub fn is_terminal(&self) -> bool {
        matches!(self.input, Some(Input::Terminal(_)))
    }

    /// Whether input can reach the process.
    pub fn takes_input(&self) -> bool {
        self.input.is_some()
    }

    /// Sets the terminal's window size (the process gets SIGWINCH); nothing without one.
    pub fn resize(&self, size: WindowSize) -> io::Result<()> {
        match &self.input {
            Some(Input::Terminal(master)) => terminal::resize(master.fd.as_fd(), size),
            _ => Ok(()),
        }
    }

    /// A writer of input for one client; `None` when the process takes none.
    pub fn writer(&self) -> io::Result<Option<Writer>> {
        let fd: BorrowedFd<'_> = match &self.input {
            Some(Input::Terminal(master)) => master.fd.as_fd(),
            Some(Input::Stdin(write)) => write.as_fd(),
            None => return Ok(None),
        };
        // A duplicate of its own: a descriptor is registered once with the runtime, and
        // several clients may write at once. It shares the original's non-blocking flag.
        let duplicate = fd.try_clone_to_owned()?;
        // SAFETY: the AsyncFd owns this duplicate, so it stays open, and names the same open
        // file, for as long as the AsyncFd lives.
        let registered =
            unsafe { AsyncFd::register_with_interest(duplicate, tokio::io::Interest::WRITABLE)? };
        Ok(Some(Writer(registered)))
    }

    /// How the process ended, once it has; `None` if its supervisor ended without saying
    /// (it only does when it is gone).
    pub async fn ended(&self) -> Option<Ending> {
        let mut ended = self.ended.subscribe();
        *ended.wait_for(Option::is_some).await.ok()?
    }

    /// How the process ended, if it has.
    pub fn ending(&self) -> Option<Ending> {
        *self.ended.borrow()
    }
}

/// One client's way to write input to a console.
pub struct Writer(AsyncFd<OwnedFd>);

impl Writer {
    /// Writes all of `bytes`, waiting while the terminal's or the pipe's buffer is full (the
    /// process does not read); only this client waits.
    pub async fn write_all(&self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let mut ready = self.0.writable().await?;
            match ready
                .try_io(|fd| nix::unistd::write(fd.get_ref(), bytes).map_err(io::Error::from))
            {
                Ok(Ok(written)) => bytes = &bytes[written..],
                Ok(Err(error)) if error.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(error)) => return Err(error),
                // Not writable after all: wait again.
                Err(_would_block) => {}
            }
        }
        Ok(())
    }
}
