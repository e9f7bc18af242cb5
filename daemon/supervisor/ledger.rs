//! Where no cgroup holds an instance's processes: a file of the daemon's live children, each
//! with its start time, beside its socket (`<socket>.pids`), so that a successor on the same
//! socket finds what a daemon killed with SIGKILL left running and ends it before it starts
//! anything. A pid is only ever touched when its start time is still the one written: a pid
//! reused since belongs to somebody else.
//!
//! Invariants: one line per spawn (`+PID START`) and per reap (`-PID`), appended with one
//! `write` each, so that a daemon killed at any moment leaves a file that says which of its
//! children may still live; the file is rewritten with the live ones only when it has grown
//! to many times their number, and removed when the daemon ends with none.

use std::{
    collections::HashMap,
    fs::File,
    io::{self, Write},
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

/// The ledger of one daemon.
pub struct Ledger {
    path: PathBuf,
    /// Open for appending.
    file: File,
    /// The live children written, by pid, with their start time.
    live: HashMap<u32, u64>,
    /// Lines in the file now.
    lines: usize,
}

/// How many lines the file may hold per live child before it is rewritten.
const GROWTH: usize = 4;

impl Ledger {
    /// Opens the ledger of the daemon of `socket`, after ending every process a predecessor
    /// wrote there that still runs (by pid and start time, with its process group); returns
    /// what was found for the event log.
    pub fn open(socket: &Path) -> io::Result<(Ledger, Vec<String>)> {
        let mut name = socket.as_os_str().to_owned();
        name.push(".pids");
        let path = PathBuf::from(name);
        let found = end_leftovers(&path);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)?;
        let ledger = Ledger {
            path,
            file,
            live: HashMap::new(),
            lines: 0,
        };
        Ok((ledger, found))
    }

    /// Writes that `pid` was spawned.
    pub fn spawned(&mut self, pid: u32) {
        let Some(start) = super::process::start_time(pid) else {
            return;
        };
        self.live.insert(pid, start);
        self.append(&format!("+{pid} {start}\n"));
    }

    /// Writes that `pid` was reaped.
    pub fn reaped(&mut self, pid: u32) {
        if self.live.remove(&pid).is_some() {
            self.append(&format!("-{pid}\n"));
        }
    }

    fn append(&mut self, line: &str) {
        self.lines += 1;
        if self.lines > GROWTH * (self.live.len() + 16) {
            self.rewrite();
            return;
        }
        if let Err(error) = self.file.write_all(line.as_bytes()) {
            tracing::warn!("writing {}: {error}", self.path.display());
        }
    }

    /// Replaces the file with the live children only (through a new file renamed over it, so
    /// that a daemon killed meanwhile leaves one file or the other, whole).
    fn rewrite(&mut self) {
        let mut text = String::new();
        for (pid, start) in &self.live {
            text.push_str(&format!("+{pid} {start}\n"));
        }
        let mut next = self.path.clone().into_os_string();
        next.push(".new");
        let next = PathBuf::from(next);
        let written = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&next)
            .and_then(|mut file| file.write_all(text.as_bytes()).map(|()| file))
            .and_then(|file| std::fs::rename(&next, &self.path).map(|()| file));
        match written {
            Ok(file) => {
                self.file = file;
                self.lines = self.live.len();
            }
            Err(error) => tracing::warn!("rewriting {}: {error}", self.path.display()),
        }
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        if self.live.is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Ends every process the ledger at `path` says may live, when its start time is still the
/// one written; returns one line per process ended.
fn end_leftovers(path: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let mut live: HashMap<u32, u64> = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix('+') {
            let mut words = rest.split(' ');
            if let (Some(Ok(pid)), Some(Ok(start))) = (
                words.next().map(str::parse::<u32>),
                words.next().map(str::parse::<u64>),
            ) {
                live.insert(pid, start);
            }
        } else if let Some(Ok(pid)) = line.strip_prefix('-').map(str::parse::<u32>) {
            live.remove(&pid);
        }
    }
    let mut found = Vec::new();
    for (pid, start) in live {
        if super::process::start_time(pid) != Some(start) {
            continue;
        }
        let what = super::process::command_line(pid);
        // Its group (each program leads one) first: what it started goes too.
        let group = nix::unistd::Pid::from_raw(pid as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
        found.push(format!(
            "pid {pid} ({what}) left by an earlier taskmasterd on this socket: killed"
        ));
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_says_who_lives_and_stays_small() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("taskmaster.sock");
        let (mut ledger, found) = Ledger::open(&socket).unwrap();
        assert!(found.is_empty());
        // This test's own process stands for a child (it is never signalled here).
        let me = std::process::id();
        for _ in 0..1000 {
            ledger.spawned(me);
            ledger.reaped(me);
        }
        ledger.spawned(me);
        let text = std::fs::read_to_string(dir.path().join("taskmaster.sock.pids")).unwrap();
        assert!(
            text.lines().count() <= GROWTH * 17 + 1,
            "{} lines",
            text.lines().count()
        );
        let start = super::super::process::start_time(me).unwrap();
        assert!(text.ends_with(&format!("+{me} {start}\n")), "{text}");
        ledger.reaped(me);
        drop(ledger);
        assert!(!dir.path().join("taskmaster.sock.pids").exists());
    }
}
