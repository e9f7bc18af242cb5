//! A cgroup v2 per instance, when the system offers one the daemon may write: every process an
//! instance starts, its whole tree, including members that left the process group or the
//! session, is in it, so that `cgroup.kill` ends them all; and processes a killed daemon left
//! behind are found there by its successor (on the same socket) and killed before anything is
//! started again.
//!
//! Layout: `<cgroup2 mount>/taskmaster/<socket path, %-escaped>/<instance name>`. The key is
//! the socket because one daemon owns a socket at a time: a successor on the same socket is the
//! one daemon that may treat what it finds there as its own leftovers.
//!
//! Invariants: nothing here keeps a descriptor open (each would be copied into every later
//! spawn); an instance's folder is made on its first spawn and kept across its restarts; a
//! failure to use a cgroup is logged and never fails a spawn (the process group still holds).

use std::{
    io::{self, Write},
    path::{Path, PathBuf},
};

/// The cgroup tree of one daemon.
pub struct Cgroups {
    /// `<mount>/taskmaster/<escaped socket>`: made by this daemon (or its predecessor).
    base: PathBuf,
    /// The daemon's own cgroup, which it returns to after each spawn.
    home: PathBuf,
}

impl Cgroups {
    /// The tree for the daemon of `socket`, when cgroup v2 is mounted and the daemon may make
    /// folders in it (root may; others only in a subtree delegated to them). Processes that a
    /// predecessor on the same socket left in it are killed first; what was found is returned
    /// for the event log. `Err` says why there are no cgroups.
    pub fn open(socket: &Path) -> Result<(Cgroups, Vec<String>), String> {
        let mount = cgroup2_mount().ok_or("cgroup v2 is not mounted")?;
        let base = mount
            .join("taskmaster")
            .join(escape(&socket.to_string_lossy()));
        std::fs::create_dir_all(&base)
            .map_err(|error| format!("cannot make {}: {error}", base.display()))?;
        // `cgroup.kill` came with Linux 5.14; without it nothing could end a tree.
        let probe = base.join("cgroup.kill");
        if !probe.exists() {
            return Err(format!(
                "{} is missing (Linux 5.14 or later)",
                probe.display()
            ));
        }
        let home = own_cgroup(&mount).ok_or("the daemon's own cgroup is unknown")?;
        let cgroups = Cgroups { base, home };
        let found = cgroups.kill_leftovers();
        Ok((cgroups, found))
    }

    /// Where the tree is.
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// Kills what a predecessor left in each instance's folder and removes the folders;
    /// returns one line per folder that held processes.
    fn kill_leftovers(&self) -> Vec<String> {
        let mut found = Vec::new();
        let Ok(entries) = std::fs::read_dir(&self.base) else {
            return found;
        };
        for entry in entries.flatten() {
            let folder = entry.path();
            if !folder.is_dir() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let pids = std::fs::read_to_string(folder.join("cgroup.procs")).unwrap_or_default();
            let count = pids.lines().count();
            if count > 0 {
                let outcome = match write(&folder.join("cgroup.kill"), b"1") {
                    Ok(()) => "killed".to_string(),
                    Err(error) => format!("could not be killed: {error}"),
                };
                let list: Vec<&str> = pids.lines().collect();
                found.push(format!(
                    "{count} processes of {name} left by an earlier taskmasterd (pids {}) {outcome}",
                    list.join(" ")
                ));
            }
            // Removed once empty (at once when it was, soon after the kill otherwise); a
            // folder still there is reused.
            let _ = std::fs::remove_dir(&folder);
        }
        found
    }

    /// The folder of `instance`, made when missing.
    fn folder(&self, instance: &str) -> io::Result<PathBuf> {
        let folder = self.base.join(instance);
        match std::fs::create_dir(&folder) {
            Ok(()) => Ok(folder),
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Ok(folder),
            Err(error) => Err(error),
        }
    }

    /// Moves the daemon itself into `instance`'s folder, so that the process it spawns next is
    /// born there: `posix_spawn` cannot be told a cgroup, and a child moved after its spawn
    /// may have forked already (a shell does within a fraction of a millisecond). Call
    /// [`Cgroups::leave`] right after the spawn.
    pub fn enter(&self, instance: &str) -> io::Result<()> {
        let folder = self.folder(instance)?;
        write(&folder.join("cgroup.procs"), b"0")
    }

    /// Moves the daemon back to its own cgroup.
    pub fn leave(&self) -> io::Result<()> {
        write(&self.home.join("cgroup.procs"), b"0")
    }

    /// Kills every process in `instance`'s folder.
    pub fn kill(&self, instance: &str) -> io::Result<()> {
        let folder = self.base.join(instance);
        if !folder.exists() {
            return Ok(());
        }
        write(&folder.join("cgroup.kill"), b"1")
    }

    /// Removes `instance`'s folder (once its processes are gone); a folder that is not empty
    /// yet stays, and is reused or cleaned by the next daemon.
    pub fn release(&self, instance: &str) {
        let _ = std::fs::remove_dir(self.base.join(instance));
    }
}

impl Drop for Cgroups {
    /// The daemon ends with every program stopped: the tree goes with it. The last processes
    /// killed may take a moment to be gone; each folder is waited for (its `cgroup.events`
    /// says when it empties), for at most [`EMPTY_WAIT`] in all; what is not empty by then
    /// stays for the successor to clean.
    fn drop(&mut self) {
        let deadline = std::time::Instant::now() + EMPTY_WAIT;
        if let Ok(entries) = std::fs::read_dir(&self.base) {
            for entry in entries.flatten() {
                let folder = entry.path();
                if folder.is_dir() {
                    wait_empty(&folder, deadline);
                    let _ = std::fs::remove_dir(&folder);
                }
            }
        }
        let _ = std::fs::remove_dir(&self.base);
    }
}

/// How long an ending daemon waits for its cgroups to empty.
const EMPTY_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Returns once `folder` holds no process, or at `deadline`: the kernel signals a change of
/// `cgroup.events` (`populated 0`) as an exceptional condition on it, so this sleeps in
/// `poll` rather than looking again and again.
fn wait_empty(folder: &Path, deadline: std::time::Instant) {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::{
        io::{Read, Seek},
        os::fd::AsFd,
    };
    let Ok(mut events) = std::fs::File::open(folder.join("cgroup.events")) else {
        return;
    };
    loop {
        let mut text = String::new();
        if events.rewind().is_err() || events.read_to_string(&mut text).is_err() {
            return;
        }
        if text.lines().any(|line| line == "populated 0") {
            return;
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let Ok(timeout) = PollTimeout::try_from(left) else {
            return;
        };
        if left.is_zero() {
            return;
        }
        let mut fds = [PollFd::new(events.as_fd(), PollFlags::POLLPRI)];
        if poll(&mut fds, timeout).is_err() {
            return;
        }
    }
}

/// Writes `data` to a cgroup control file in one `write`.
fn write(path: &Path, data: &[u8]) -> io::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)?
        .write_all(data)
}

/// Where cgroup v2 is mounted, from `/proc/self/mountinfo` (its place varies: `/sys/fs/cgroup`
/// on a unified system, `/sys/fs/cgroup/unified` in hybrid mode).
fn cgroup2_mount() -> Option<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    mountinfo.lines().find_map(|line| {
        // `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS... - FSTYPE SOURCE SUPEROPTIONS`
        let (before, after) = line.split_once(" - ")?;
        let fstype = after.split(' ').next()?;
        let mountpoint = before.split(' ').nth(4)?;
        (fstype == "cgroup2").then(|| PathBuf::from(unescape_mountinfo(mountpoint)))
    })
}

/// The daemon's own cgroup v2 folder: `0::PATH` in `/proc/self/cgroup`, under `mount`.
fn own_cgroup(mount: &Path) -> Option<PathBuf> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = cgroups.lines().find_map(|line| line.strip_prefix("0::"))?;
    Some(mount.join(path.trim_start_matches('/')))
}

/// mountinfo writes a space, tab, newline and backslash in a path as `\040`, `\011`, `\012`
/// and `\134`.
fn unescape_mountinfo(text: &str) -> String {
    text.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// A socket path as one folder name: letters, digits, `.`, `_` and `-` as they are, every other
/// byte as `%XX`, so that two paths never share a name.
fn escape(path: &str) -> String {
    let mut name = String::with_capacity(path.len());
    for byte in path.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-') {
            name.push(byte as char);
        } else {
            name.push_str(&format!("%{byte:02X}"));
        }
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_paths_become_distinct_folder_names() {
        assert_eq!(
            escape("/tmp/taskmaster-0.sock"),
            "%2Ftmp%2Ftaskmaster-0.sock"
        );
        assert_ne!(escape("/tmp/a/b"), escape("/tmp/a%2Fb"));
        assert_eq!(escape("/a b"), "%2Fa%20b");
    }

    #[test]
    fn mountinfo_paths_are_unescaped() {
        assert_eq!(
            unescape_mountinfo("/sys/fs/cgroup\\040x"),
            "/sys/fs/cgroup x"
        );
    }
}
