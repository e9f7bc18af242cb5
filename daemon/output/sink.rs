//! One output file: opened when first written, appended to in whole lines, rotated at
//! `maxbytes` (`x.log` -> `x.log.1` ... `x.log.N`) at a line boundary, reopened on request.
//! A write that fails (a full disk, a FIFO nobody drains, a missing folder) drops those bytes
//! and says so; it never blocks: files are opened non-blocking. Files it creates belong to
//! the program's user when the program has one.

use std::{
    fs::{File, OpenOptions},
    io::{self, IoSlice, Write},
    os::fd::{AsRawFd, BorrowedFd},
    os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

/// How far past `maxbytes` a line begun by spliced output (or output written as it came) may
/// run before the file rotates anyway.
const LONGEST_LINE_TAIL: u64 = 64 * 1024;

/// The mode of every output file the daemon creates, whatever its umask.
const FILE_MODE: u32 = 0o640;

/// The mode of a folder the daemon creates for the files of a program with its own user,
/// whatever the daemon's umask: that user can reach its files, not replace them.
const FOLDER_MODE: u32 = 0o755;

/// Who a file is created for: the user (and group) a program runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileOwner {
    /// The program's uid.
    pub uid: u32,
    /// The program's gid.
    pub gid: u32,
}

/// An output file and its rotation settings.
#[derive(Debug)]
pub struct Sink {
    pub path: PathBuf,
    /// Rotate before the file would grow past this; 0: never.
    maxbytes: u64,
    /// Rotated files kept; 0: the file is emptied instead of rotated.
    backups: u32,
    /// Open while writes succeed; `None` until the next write (re)opens it.
    file: Option<File>,
    /// The size of the open file, as this sink has written it.
    size: u64,
    /// Whether the file ends inside a line; `None`: not known (spliced bytes, a file found).
    mid_line: Option<bool>,
    /// Whether the open file is a regular file (only those take spliced bytes).
    regular: bool,
    /// The same file (its inode) opened read-write without O_APPEND: see
    /// [`Sink::positioned`].
    positioned: Option<File>,
    /// Who the files it creates belong to; `None`: the daemon.
    owner: Option<FileOwner>,
    /// How many times the file was emptied in place (rotation without backups, clear): a
    /// reader of an earlier [`Sink::read_back`] knows from it that what it reads now may be
    /// new bytes at old offsets.
    emptied: u64,
}

/// What a splice into the file did.
#[derive(Debug, PartialEq, Eq)]
pub enum Spliced {
    /// Moved this many bytes.
    Moved(usize),
    /// The pipe is empty for now.
    Empty,
    /// Every writer closed the pipe.
    Closed,
    /// The file is at `maxbytes`: read the next bytes instead (a few: they finish the line in
    /// this file, then it rotates).
    AtLimit,
    /// Not now (not a regular file, an error): read the bytes instead.
    No,
}

/// Bytes a write could not put in the file, and why.
#[derive(Debug)]
pub struct Dropped {
    pub bytes: u64,
    pub reason: String,
}

impl Sink {
    pub fn new(path: PathBuf, maxbytes: u64, backups: u32) -> Sink {
        Sink {
            path,
            maxbytes,
            backups,
            file: None,
            size: 0,
            mid_line: None,
            regular: false,
            positioned: None,
            owner: None,
            emptied: 0,
        }
    }

    /// Files created from now on (the first, and each after a rotation) belong to `owner`;
    /// one that exists keeps its owner.
    pub fn set_owner(&mut self, owner: Option<FileOwner>) {
        self.owner = owner;
    }

    /// Moves up to `max` bytes from `pipe` into the file inside the kernel (splice(2): they never
    /// pass through the daemon), as far as `maxbytes`. A file at `maxbytes` takes no more:
    /// [`Spliced::AtLimit`] tells the caller to read the next bytes, which finish the line in
    /// this file before it rotates ([`Sink::write`]), so a rotation never splits a line.
    pub fn splice_from(&mut self, pipe: BorrowedFd<'_>, max: usize) -> Spliced {
        let maxbytes = self.maxbytes;
        if self.open().is_err() || !self.regular {
            return Spliced::No;
        }
        let Ok(file) = self.positioned() else {
            return Spliced::No;
        };
        // The file's real end (an outside truncate, another appender): spliced bytes go
        // exactly there.
        let Ok(size) = file.metadata().map(|metadata| metadata.len()) else {
            return Spliced::No;
        };
        let mut wanted = max;
        if maxbytes != 0 {
            if size >= maxbytes {
                self.size = size;
                return Spliced::AtLimit;
            }
            wanted = wanted.min((maxbytes - size) as usize);
        }
        let mut offset = size as nix::libc::loff_t;
        let flags = nix::fcntl::SpliceFFlags::SPLICE_F_NONBLOCK;
        let moved = nix::fcntl::splice(pipe, None, file, Some(&mut offset), wanted, flags);
        self.size = size;
        match moved {
            Ok(0) => Spliced::Closed,
            Ok(moved) => {
                self.size += moved as u64;
                self.mid_line = None;
                Spliced::Moved(moved)
            }
            // A regular file never would block: the pipe is empty.
            Err(nix::errno::Errno::EAGAIN) => Spliced::Empty,
            Err(nix::errno::Errno::EINTR) => Spliced::Moved(0),
            // A full disk, an I/O error: the bytes are read instead, and their write fails
            // and counts them (and closes the file, to open it again later).
            Err(_) => Spliced::No,
        }
    }

    /// The open file's inode again, read-write and without O_APPEND (which splice(2) refuses):
    /// spliced bytes go at an explicit offset, and its end is read back from the very file
    /// this sink writes, whatever the path names now. Opened at the first need.
    fn positioned(&mut self) -> io::Result<&File> {
        if self.positioned.is_none() {
            let Some(appending) = &self.file else {
                return Err(io::Error::other("not open"));
            };
            let same_inode = format!("/proc/self/fd/{}", appending.as_raw_fd());
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(nix::libc::O_CLOEXEC)
                .open(same_inode)?;
            self.positioned = Some(file);
        }
        self.positioned
            .as_ref()
            .ok_or_else(|| io::Error::other("not open"))
    }

    /// Whether the file ends inside a line (after spliced bytes, by reading its last byte).
    fn ends_mid_line(&mut self) -> bool {
        if let Some(known) = self.mid_line {
            return known;
        }
        let last = self.recent(1).unwrap_or_default();
        let mid_line = last.first().is_some_and(|byte| *byte != b'\n');
        self.mid_line = Some(mid_line);
        mid_line
    }

    /// The last `bytes` bytes written through this sink (fewer if there are fewer), read from
    /// the open file (the page cache: cheap) and, when the file is shorter because it rotated
    /// meanwhile, from the end of the newest rotated file before it.
    pub fn recent(&mut self, bytes: u64) -> io::Result<Vec<u8>> {
        self.open()?;
        if !self.regular {
            return Ok(Vec::new());
        }
        let file = self.positioned()?;
        let length = file.metadata()?.len();
        let mut data = read_at(file, length.saturating_sub(bytes), length)?;
        let short = bytes.saturating_sub(data.len() as u64);
        if short > 0
            && self.backups > 0
            && let Ok(older) = File::open(numbered(&self.path, 1))
        {
            let older_length = older.metadata()?.len();
            let mut before = read_at(&older, older_length.saturating_sub(short), older_length)?;
            before.append(&mut data);
            data = before;
        }
        Ok(data)
    }

    /// Appends `first` then `rest`, which together are whole lines (or a final piece at the end
    /// of a stream), rotating before the line that would cross `maxbytes`.
    pub fn write(&mut self, first: &[u8], rest: &[u8]) -> Result<(), Dropped> {
        let total = (first.len() + rest.len()) as u64;
        if total == 0 {
            return Ok(());
        }
        let file_is_open = self.open().map_err(|error| Dropped {
            bytes: total,
            reason: error.to_string(),
        });
        file_is_open?;
        // A FIFO or a device is never rotated (renaming /dev/stdout would be a disaster).
        if self.maxbytes == 0 || !self.regular || self.size + total <= self.maxbytes {
            return self.append(&[first, rest]);
        }
        // The file ends inside a line (spliced output): that line is finished in this file,
        // unless it has run on far past maxbytes (output without newlines still rotates).
        if self.size < self.maxbytes.saturating_add(LONGEST_LINE_TAIL) && self.ends_mid_line() {
            let joined = [first, rest].concat();
            let end = memchr::memchr(b'\n', &joined).map_or(joined.len(), |newline| newline + 1);
            if let Err(dropped) = self.append(&[&joined[..end]]) {
                return Err(Dropped {
                    bytes: dropped.bytes + (joined.len() - end) as u64,
                    ..dropped
                });
            }
            return self.write(&joined[end..], b"");
        }
        // Crosses maxbytes: write line by line as far as it fits, rotate, go on. A line longer
        // than maxbytes gets a file of its own, whole.
        let joined;
        let data: &[u8] = if first.is_empty() {
            rest
        } else if rest.is_empty() {
            first
        } else {
            joined = [first, rest].concat();
            &joined
        };
        let mut start = 0;
        while start < data.len() {
            let room = self.maxbytes.saturating_sub(self.size) as usize;
            let window = &data[start..data.len().min(start + room)];
            let fits = if start + room >= data.len() {
                Some(data.len() - start)
            } else {
                memchr::memrchr(b'\n', window).map(|newline| newline + 1)
            };
            let piece = match fits {
                Some(length) if length > 0 => length,
                // Nothing fits: rotate first (unless the file is empty, then the long line
                // goes whole into it).
                _ if self.size > 0 => {
                    self.rotate().map_err(|error| Dropped {
                        bytes: (data.len() - start) as u64,
                        reason: error.to_string(),
                    })?;
                    continue;
                }
                _ => memchr::memchr(b'\n', &data[start..]).map_or(data.len() - start, |n| n + 1),
            };
            self.append(&[&data[start..start + piece]])
                .map_err(|dropped| Dropped {
                    bytes: dropped.bytes + (data.len() - start - piece) as u64,
                    ..dropped
                })?;
            start += piece;
        }
        Ok(())
    }

    /// New rotation settings (a reload changed them; the file stays).
    pub fn set_limits(&mut self, maxbytes: u64, backups: u32) {
        self.maxbytes = maxbytes;
        self.backups = backups;
    }

    /// Closes the file; the next write opens `path` again (after an outside `mv`).
    pub fn reopen(&mut self) -> io::Result<()> {
        self.file = None;
        self.positioned = None;
        self.open()
    }

    /// Empties the file and removes the rotated ones.
    pub fn clear(&mut self) -> io::Result<()> {
        for number in 1..=self.backups {
            match std::fs::remove_file(numbered(&self.path, number)) {
                Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
                _ => {}
            }
        }
        self.open()?;
        if let Some(file) = &self.file {
            self.emptied += 1;
            file.set_len(0)?;
        }
        self.size = 0;
        self.mid_line = Some(false);
        Ok(())
    }

    /// The last `bytes` bytes of the current file (fewer if it is shorter).
    pub fn read_end(&self, bytes: u64) -> io::Result<Vec<u8>> {
        let Some(back) = self.read_back()? else {
            return Ok(Vec::new());
        };
        back.read(back.length.saturating_sub(bytes), back.length)
    }

    /// The current file opened for reading and its length now; `None` when there is nothing
    /// to read back (no file yet, a FIFO or a device). Cheap (an open and a stat): made under
    /// the sink's lock, read outside it.
    pub fn read_back(&self) -> io::Result<Option<ReadBack>> {
        // Non-blocking: opening a FIFO for reading would wait for a writer.
        let opened = OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
            .open(&self.path);
        let file = match opened {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(error),
        };
        let metadata = file.metadata()?;
        // A FIFO or a device keeps nothing to read back.
        if !metadata.file_type().is_file() {
            return Ok(None);
        }
        Ok(Some(ReadBack {
            file,
            length: metadata.len(),
            emptied: self.emptied,
        }))
    }

    /// How many times the file was emptied in place so far (see [`ReadBack`]).
    pub fn emptied(&self) -> u64 {
        self.emptied
    }

    fn append(&mut self, parts: &[&[u8]]) -> Result<(), Dropped> {
        let total: usize = parts.iter().map(|part| part.len()).sum();
        let Some(file) = self.file.as_mut() else {
            return Err(Dropped {
                bytes: total as u64,
                reason: "not open".to_string(),
            });
        };
        // At most two parts (a partial line and what completes it): no allocation per write.
        let mut storage = [IoSlice::new(&[]), IoSlice::new(&[])];
        let mut count = 0;
        for part in parts.iter().filter(|part| !part.is_empty()).take(2) {
            storage[count] = IoSlice::new(part);
            count += 1;
        }
        let mut written = 0;
        let mut slices = &mut storage[..count];
        while !slices.is_empty() {
            match file.write_vectored(slices) {
                Ok(0) => break,
                Ok(n) => {
                    written += n;
                    IoSlice::advance_slices(&mut slices, n);
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    self.size += written as u64;
                    // A file that failed is opened again at the next write (the folder may be
                    // back, the disk may have room).
                    if error.kind() != io::ErrorKind::WouldBlock {
                        self.file = None;
                        self.positioned = None;
                    }
                    return Err(Dropped {
                        bytes: (total - written) as u64,
                        reason: error.to_string(),
                    });
                }
            }
        }
        self.size += written as u64;
        if let Some(last) = parts.iter().rev().find(|part| !part.is_empty()) {
            self.mid_line = Some(last.last() != Some(&b'\n'));
        }
        Ok(())
    }

    /// Opens the file if it is not open: creating its folder and the file (mode 0640, owned
    /// by the owner) when missing, for appending, without blocking. In a folder that belongs
    /// to someone else than the daemon (or root), a symbolic link in place of the file is not
    /// followed: its owner could point it at a file only the daemon may write.
    fn open(&mut self) -> io::Result<()> {
        if self.file.is_some() {
            return Ok(());
        }
        let mut flags = nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC;
        if let Some(folder) = self.path.parent() {
            create_folders(folder)?;
            let folder_owner = std::fs::metadata(folder)?.uid();
            if folder_owner != 0 && folder_owner != nix::unistd::geteuid().as_raw() {
                flags |= nix::libc::O_NOFOLLOW;
            }
        }
        let options = |create_new| {
            let mut options = OpenOptions::new();
            options.append(true).mode(FILE_MODE).custom_flags(flags);
            if create_new {
                options.create_new(true);
            }
            options
        };
        let file = match options(true).open(&self.path) {
            Ok(file) => {
                // The umask may have narrowed the mode it was created with.
                file.set_permissions(std::fs::Permissions::from_mode(FILE_MODE))?;
                set_owner(&file, self.owner)?;
                file
            }
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                options(false).open(&self.path)?
            }
            Err(error) => return Err(error),
        };
        let metadata = file.metadata()?;
        self.size = metadata.len();
        self.regular = metadata.file_type().is_file();
        self.mid_line = None;
        self.file = Some(file);
        Ok(())
    }

    /// `x.log` becomes `x.log.1` (and each `x.log.N` becomes `x.log.N+1`, the oldest dropped);
    /// without backups the file is emptied.
    fn rotate(&mut self) -> io::Result<()> {
        if self.backups == 0 {
            if let Some(file) = &self.file {
                self.emptied += 1;
                file.set_len(0)?;
            }
            self.size = 0;
            return Ok(());
        }
        self.file = None;
        self.positioned = None;
        // The oldest goes first: then no rename replaces an existing file, which ext4 answers
        // by writing the renamed file's pages out at once (auto_da_alloc), in this thread.
        let gone = |result: io::Result<()>| match result {
            Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
            _ => Ok(()),
        };
        gone(std::fs::remove_file(numbered(&self.path, self.backups)))?;
        for number in (1..self.backups).rev() {
            gone(std::fs::rename(
                numbered(&self.path, number),
                numbered(&self.path, number + 1),
            ))?;
        }
        // The file may be gone (its folder removed): the next open makes it again.
        gone(std::fs::rename(&self.path, numbered(&self.path, 1)))?;
        self.open()
    }
}

/// A file's first `length` bytes as they were at one moment, to read without the sink's lock.
/// Bytes are only ever appended, and a rotation renames the file (this handle keeps it), so
/// they stay as they were, unless the file is emptied in place: `emptied` is the sink's count
/// at that moment, to compare with [`Sink::emptied`] after a read.
#[derive(Debug)]
pub struct ReadBack {
    file: File,
    /// The file's length at that moment.
    pub length: u64,
    /// [`Sink::emptied`] at that moment.
    pub emptied: u64,
}

impl ReadBack {
    /// Bytes `start..end` (within `length`; fewer if the file was emptied meanwhile). A file
    /// read: call it off the async runtime.
    pub fn read(&self, start: u64, end: u64) -> io::Result<Vec<u8>> {
        read_at(&self.file, start, end.min(self.length))
    }
}

/// Bytes `start..end` of `file` (fewer if it is shorter).
fn read_at(file: &File, start: u64, end: u64) -> io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let start = start.min(end);
    let mut data = vec![0; (end - start) as usize];
    let mut filled = 0;
    while filled < data.len() {
        match file.read_at(&mut data[filled..], start + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    data.truncate(filled);
    Ok(data)
}

/// `x.log` -> `x.log.N`.
fn numbered(path: &Path, number: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{number}"));
    PathBuf::from(name)
}

/// The one place that decides who owns a new output file: the program's user and group
/// when it has them (so that it can read its own output), else the daemon.
fn set_owner(file: &File, owner: Option<FileOwner>) -> io::Result<()> {
    match owner {
        Some(FileOwner { uid, gid }) => {
            let (uid, gid) = (
                nix::unistd::Uid::from_raw(uid),
                nix::unistd::Gid::from_raw(gid),
            );
            nix::unistd::fchown(file, Some(uid), Some(gid)).map_err(io::Error::from)
        }
        None => Ok(()),
    }
}

/// Creates `folder` and its missing parents, each with mode 0755 whatever the daemon's umask
/// (a program with its own user must reach its files; nobody else may write there). They
/// belong to the daemon: a folder of the program's user would let that user swap its files
/// for links the daemon then follows.
fn create_folders(folder: &Path) -> io::Result<()> {
    let missing: Vec<&Path> = (folder.ancestors())
        .take_while(|ancestor| !ancestor.as_os_str().is_empty() && !ancestor.exists())
        .collect();
    for created in missing.into_iter().rev() {
        match std::fs::DirBuilder::new().mode(FOLDER_MODE).create(created) {
            Ok(()) => {
                std::fs::set_permissions(created, std::fs::Permissions::from_mode(FOLDER_MODE))?
            }
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(count: usize, from: usize) -> Vec<u8> {
        (from..from + count)
            .flat_map(|n| format!("line {n:06}\n").into_bytes())
            .collect()
    }

    /// Every line of the file and its rotated copies, oldest first.
    fn all_lines(path: &Path, backups: u32) -> Vec<String> {
        let mut text = String::new();
        for number in (1..=backups).rev() {
            text.push_str(&std::fs::read_to_string(numbered(path, number)).unwrap_or_default());
        }
        text.push_str(&std::fs::read_to_string(path).unwrap_or_default());
        text.lines().map(str::to_string).collect()
    }

    #[test]
    fn rotation_keeps_every_line_whole_and_within_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/web.out.log");
        let mut sink = Sink::new(path.clone(), 1000, 3);
        // 12-byte lines in uneven chunks, one split across two writes.
        let data = lines(1000, 0);
        for chunk in data.chunks(777) {
            let cut = memchr::memrchr(b'\n', chunk).map_or(0, |n| n + 1);
            sink.write(&chunk[..cut], b"").unwrap();
            sink.write(&chunk[cut..], b"").unwrap();
        }
        for number in 0..=3 {
            let file = if number == 0 {
                path.clone()
            } else {
                numbered(&path, number)
            };
            let size = std::fs::metadata(&file).unwrap().len();
            assert!(size <= 1000 + 12, "{} is {size} bytes", file.display());
        }
        assert!(!numbered(&path, 4).exists());
        // The newest lines survive, in order, none split: the last 4 files' worth.
        let kept = all_lines(&path, 3);
        let last: usize = kept.last().unwrap()[5..].parse().unwrap();
        assert_eq!(last, 999);
        for (offset, line) in kept.iter().enumerate() {
            assert_eq!(line.len(), 11, "{line:?}");
            let n: usize = line[5..].parse().unwrap();
            assert_eq!(n, last + 1 + offset - kept.len());
        }
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
    }

    #[test]
    fn a_line_longer_than_maxbytes_is_written_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let mut sink = Sink::new(path.clone(), 10, 2);
        sink.write(b"short\n", b"").unwrap();
        let long = [vec![b'z'; 25], b"\n".to_vec()].concat();
        sink.write(&long, b"").unwrap();
        sink.write(b"after\n", b"").unwrap();
        assert_eq!(std::fs::read(numbered(&path, 2)).unwrap(), b"short\n");
        assert_eq!(std::fs::read(numbered(&path, 1)).unwrap(), long);
        assert_eq!(std::fs::read(&path).unwrap(), b"after\n");
    }

    #[test]
    fn without_backups_the_file_is_emptied_instead() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let mut sink = Sink::new(path.clone(), 12, 0);
        sink.write(b"aaaa\nbbbb\n", b"").unwrap();
        sink.write(b"cccc\n", b"").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"cccc\n");
        assert!(!numbered(&path, 1).exists());
    }

    #[test]
    fn a_fifo_is_never_rotated_nor_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        // A reader, so that the sink can open the FIFO; it never reads.
        let _reader = OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(&fifo)
            .unwrap();
        let mut sink = Sink::new(fifo.clone(), 10, 2);
        for _ in 0..10 {
            sink.write(b"0123456789abcdef\n", b"").unwrap();
        }
        use std::os::unix::fs::FileTypeExt;
        assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
        assert!(!numbered(&fifo, 1).exists(), "the FIFO was rotated");
        // Reading it back must not wait for a writer.
        assert_eq!(sink.read_end(100).unwrap(), b"");
    }

    #[test]
    fn output_without_newlines_still_rotates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let mut sink = Sink::new(path.clone(), 1000, 2);
        let piece = vec![b'.'; 500];
        for _ in 0..400 {
            sink.write(&piece, b"").unwrap();
        }
        let size = std::fs::metadata(&path).unwrap().len();
        assert!(size <= 1000 + LONGEST_LINE_TAIL + 500, "{size} bytes");
        assert!(numbered(&path, 2).exists(), "it never rotated");
    }

    #[test]
    fn a_full_disk_drops_and_says_so() {
        let mut sink = Sink::new(PathBuf::from("/dev/full"), 0, 0);
        let dropped = sink.write(b"hello\n", b"world\n").unwrap_err();
        assert_eq!(dropped.bytes, 12);
        assert!(dropped.reason.contains("No space"), "{}", dropped.reason);
    }

    #[test]
    fn reopen_follows_an_outside_move_and_clear_empties_everything() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let mut sink = Sink::new(path.clone(), 8, 2);
        sink.write(b"one\n", b"").unwrap();
        std::fs::rename(&path, dir.path().join("moved.log")).unwrap();
        sink.write(b"two\n", b"").unwrap();
        sink.reopen().unwrap();
        sink.write(b"three\n", b"").unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("moved.log")).unwrap(),
            b"one\ntwo\n"
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"three\n");
        sink.write(b"four\n", b"").unwrap();
        assert!(numbered(&path, 1).exists());
        sink.clear().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"");
        assert!(!numbered(&path, 1).exists());
        assert_eq!(sink.read_end(100).unwrap(), b"");
    }

    #[test]
    fn a_read_back_is_the_file_as_it_was_through_appends_and_rotations_and_tells_an_emptying() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let mut sink = Sink::new(path.clone(), 12, 1);
        assert!(sink.read_back().unwrap().is_none(), "no file yet");
        sink.write(b"one\ntwo\n", b"").unwrap();
        let back = sink.read_back().unwrap().unwrap();
        assert_eq!(back.length, 8);
        // Appended, then rotated away: the read back still reads what it saw.
        sink.write(b"three\n", b"").unwrap();
        assert!(numbered(&path, 1).exists());
        assert_eq!(back.read(0, u64::MAX).unwrap(), b"one\ntwo\n");
        assert_eq!(back.read(4, 8).unwrap(), b"two\n");
        assert_eq!(back.emptied, sink.emptied());
        // Emptied in place: the count says so.
        let back = sink.read_back().unwrap().unwrap();
        sink.clear().unwrap();
        assert_ne!(back.emptied, sink.emptied());
        assert_eq!(back.read(0, back.length).unwrap(), b"");
    }

    /// `nobody`'s uid and gid, when the test runs as root (it gives files away); else skipped.
    fn nobody_as_root() -> Option<FileOwner> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: only root can give files to another user");
            return None;
        }
        let user = nix::unistd::User::from_name("nobody")
            .unwrap()
            .expect("nobody");
        Some(FileOwner {
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
        })
    }

    #[test]
    fn the_files_of_a_program_with_its_user_are_its_in_folders_that_are_the_daemons() {
        let Some(nobody) = nobody_as_root() else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("made/for/web.log");
        let mut sink = Sink::new(path.clone(), 8, 1);
        sink.set_owner(Some(nobody));
        sink.write(b"first\n", b"").unwrap();
        sink.write(b"second\n", b"").unwrap();
        for file in [path.clone(), numbered(&path, 1)] {
            let metadata = std::fs::metadata(&file).unwrap();
            assert_eq!((metadata.uid(), metadata.gid()), (nobody.uid, nobody.gid));
            assert_eq!(metadata.permissions().mode() & 0o777, 0o640);
        }
        for folder in [dir.path().join("made"), dir.path().join("made/for")] {
            let metadata = std::fs::metadata(&folder).unwrap();
            assert_eq!(metadata.uid(), 0, "{}", folder.display());
            assert_eq!(metadata.permissions().mode() & 0o777, 0o755);
        }
        // A file that is there keeps its owner; the daemon's own files stay the daemon's.
        let mut daemons = Sink::new(dir.path().join("made/daemon.log"), 0, 0);
        daemons.write(b"mine\n", b"").unwrap();
        assert_eq!(
            std::fs::metadata(dir.path().join("made/daemon.log"))
                .unwrap()
                .uid(),
            0
        );
    }

    #[test]
    fn a_link_in_a_folder_of_another_user_is_not_followed() {
        let Some(nobody) = nobody_as_root() else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let precious = dir.path().join("precious");
        std::fs::write(&precious, "only root writes here\n").unwrap();
        let theirs = dir.path().join("theirs");
        std::fs::create_dir(&theirs).unwrap();
        let (uid, gid) = (
            nix::unistd::Uid::from_raw(nobody.uid),
            nix::unistd::Gid::from_raw(nobody.gid),
        );
        nix::unistd::chown(&theirs, Some(uid), Some(gid)).unwrap();
        std::os::unix::fs::symlink(&precious, theirs.join("web.log")).unwrap();
        let mut sink = Sink::new(theirs.join("web.log"), 0, 0);
        sink.set_owner(Some(nobody));
        let dropped = sink.write(b"planted\n", b"").unwrap_err();
        assert!(
            dropped.reason.contains("symbolic links"),
            "{}",
            dropped.reason
        );
        assert_eq!(
            std::fs::read_to_string(&precious).unwrap(),
            "only root writes here\n"
        );
        // In the daemon's own folder a link is followed, as before (`/dev/stdout`).
        std::os::unix::fs::symlink(&precious, dir.path().join("mine.log")).unwrap();
        let mut sink = Sink::new(dir.path().join("mine.log"), 0, 0);
        sink.write(b"appended\n", b"").unwrap();
        assert!(
            std::fs::read_to_string(&precious)
                .unwrap()
                .ends_with("appended\n")
        );
    }
}
