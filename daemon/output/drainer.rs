//! The drainer: one thread that waits on every captured pipe (epoll) and reads each as fast as
//! its process writes, so that no child ever blocks on its output. Files are written from
//! here, never from the supervisor's task (but for the last words of an exiting process).

use std::{
    collections::HashMap,
    os::fd::AsFd,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};

use super::{
    capture::{Drained, Pipe},
    lock,
};

/// One read: a busy pipe's worth.
const READ_SIZE: usize = 1024 * 1024;
/// Reads of one pipe per wake-up before the others get their turn.
const TURNS: usize = 16;

/// The pipes being drained; shared by the thread and whoever adds pipes.
pub struct Drainer {
    epoll: Epoll,
    /// Pipes by their epoll token.
    pipes: Mutex<HashMap<u64, Arc<Pipe>>>,
    next_token: AtomicU64,
}

impl Drainer {
    /// Starts the drainer thread.
    pub fn start() -> std::io::Result<Arc<Drainer>> {
        let drainer = Arc::new(Drainer {
            epoll: Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?,
            pipes: Mutex::new(HashMap::new()),
            next_token: AtomicU64::new(0),
        });
        let running = drainer.clone();
        std::thread::Builder::new()
            .name("output".to_string())
            .spawn(move || running.run())?;
        Ok(drainer)
    }

    fn pipes(&self) -> MutexGuard<'_, HashMap<u64, Arc<Pipe>>> {
        lock(&self.pipes)
    }

    /// Drains `pipe` from now on, until every writer has closed it.
    pub fn add(&self, pipe: Arc<Pipe>) -> std::io::Result<()> {
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        self.pipes().insert(token, pipe.clone());
        let event = EpollEvent::new(EpollFlags::EPOLLIN, token);
        if let Err(error) = self.epoll.add(pipe.fd.as_fd(), event) {
            self.pipes().remove(&token);
            return Err(error.into());
        }
        Ok(())
    }

    fn run(&self) {
        let mut buffer = vec![0u8; READ_SIZE];
        let mut events = vec![EpollEvent::empty(); 256];
        loop {
            let ready = match self.epoll.wait(&mut events, EpollTimeout::NONE) {
                Ok(ready) => ready,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(error) => {
                    tracing::error!("the output drainer stopped: {error}");
                    return;
                }
            };
            for event in &events[..ready] {
                let token = event.data();
                let Some(pipe) = self.pipes().get(&token).cloned() else {
                    continue;
                };
                // Level-triggered: a pipe with more left is reported again.
                if pipe.drain(&mut buffer, TURNS) == Drained::Closed {
                    let _ = self.epoll.delete(pipe.fd.as_fd());
                    // Its last reference may be here: the read end closes with it.
                    self.pipes().remove(&token);
                }
            }
        }
    }
}
