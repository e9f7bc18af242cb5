//! One captured stream of one instance, across its restarts: the pipes of its processes feed
//! it; it writes their bytes to its [`Sink`] (moved pipe -> file inside the kernel when nothing
//! needs to see them, whole lines where a line could be cut: a shared file, timestamps),
//! keeps the last bytes of stderr for crash forensics, and hands every byte to live followers.

use std::{
    collections::VecDeque,
    io,
    os::fd::{AsFd, AsRawFd, OwnedFd},
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::sync::{broadcast, mpsc};

use super::{
    Notice, lock,
    sink::{Dropped, ReadBack, Sink, Spliced},
};

/// Which stream of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamKind {
    Stdout,
    Stderr,
}

impl StreamKind {
    pub fn name(self) -> &'static str {
        match self {
            StreamKind::Stdout => "stdout",
            StreamKind::Stderr => "stderr",
        }
    }
}

/// A partial line is written anyway once it is this long (a program that never ends a line).
const LONGEST_PARTIAL: usize = 64 * 1024;
/// The most one splice moves (a pipe holds 64 KiB unless made larger).
const SPLICE_MAX: usize = 1024 * 1024;
/// What is read, instead of spliced, from a pipe whose file is at `maxbytes`: enough to end
/// the line in that file before it rotates (usually), little enough to copy.
const AT_LIMIT_READ: usize = 4096;
/// What a pipe holds by default, and what a busy one is made to hold.
const DEFAULT_PIPE: usize = 64 * 1024;
const BUSY_PIPE: nix::libc::c_int = 1024 * 1024;
/// How much of stderr is kept for crash forensics.
const KEPT_TAIL: usize = 4096;
/// How much of a terminal's recent output is kept, to replay to a client that attaches.
pub const SCREEN_TAIL: usize = 64 * 1024;
/// Chunks a follower may fall behind before it is told what it missed; with chunks of at
/// most [`FOLLOWER_CHUNK`], a stalled follower holds at most 16 MiB.
const FOLLOWER_BACKLOG: usize = 256;
const FOLLOWER_CHUNK: usize = 64 * 1024;
/// At most one report of dropped output per stream in this time.
const DROP_REPORT_EVERY: Duration = Duration::from_secs(10);

/// What a capture keeps of the end of its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tail {
    /// Nothing.
    None,
    /// The last [`KEPT_TAIL`] bytes, for crash forensics (stderr, or stdout carrying it).
    Stderr,
    /// A terminal's recent output, the last [`SCREEN_TAIL`] bytes (stderr is in it too):
    /// replayed to each client that attaches; its last lines are the crash forensics.
    Screen,
}

impl Tail {
    /// The bytes kept.
    fn bytes(self) -> usize {
        match self {
            Tail::None => 0,
            Tail::Stderr => KEPT_TAIL,
            Tail::Screen => SCREEN_TAIL,
        }
    }
}

/// Output as followers get it: `offset` is the count of bytes of this stream before `data`
/// (since the daemon started), so a follower that lagged knows how many it missed.
#[derive(Debug, Clone)]
pub struct Chunk {
    pub offset: u64,
    pub data: Arc<[u8]>,
}

/// One stream of one instance.
pub struct Capture {
    /// "web:1 stdout", for messages and reports.
    pub label: String,
    /// The instance name, for events.
    pub instance: Arc<str>,
    pub kind: StreamKind,
    /// The file; shared with the other captures that write to the same path.
    pub sink: Arc<Mutex<Sink>>,
    /// Prefix each line with its time of arrival.
    timestamps: bool,
    /// What it keeps of the end of its stream (crash forensics, a terminal's screen).
    tail_kept: Tail,
    /// Its file is its own (a path that names the instance): bytes may go to it as they come,
    /// spliced when nothing needs to see them.
    exclusive: bool,
    /// Bytes that could not be written, since the daemon started.
    dropped: AtomicU64,
    state: Mutex<State>,
    /// Where reports of dropped output go (to the supervisor, which publishes them).
    notices: mpsc::UnboundedSender<Notice>,
}

/// What changes as output arrives; behind the capture's lock.
struct State {
    /// The end of the last read that was not a whole line yet.
    partial: Vec<u8>,
    /// The last bytes (stderr only), for crash forensics.
    tail: VecDeque<u8>,
    /// Bytes spliced into the file since `tail` was brought up to date (at most
    /// [`KEPT_TAIL`]): read back from the file's end when the tail is needed.
    unseen: u64,
    /// Bytes received so far.
    received: u64,
    /// When dropped output was last reported; `None`: never.
    reported_at: Option<Instant>,
    /// Live followers (Tail with follow); made for the first (its buffer is not small).
    followers: Option<broadcast::Sender<Chunk>>,
}

impl Capture {
    pub fn new(
        instance: Arc<str>,
        kind: StreamKind,
        sink: Arc<Mutex<Sink>>,
        timestamps: bool,
        tail_kept: Tail,
        notices: mpsc::UnboundedSender<Notice>,
    ) -> Capture {
        Capture {
            label: format!("{instance} {}", kind.name()),
            instance,
            kind,
            sink,
            timestamps,
            tail_kept,
            exclusive: false,
            dropped: AtomicU64::new(0),
            state: Mutex::new(State {
                partial: Vec::new(),
                tail: VecDeque::new(),
                unseen: 0,
                received: 0,
                reported_at: None,
                followers: None,
            }),
            notices,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    fn sink(&self) -> MutexGuard<'_, Sink> {
        lock(&self.sink)
    }

    /// Opens its file again (a later write would too): an error now is an error to report.
    pub fn reopen(&self) -> io::Result<()> {
        self.sink().reopen()
    }

    /// Marks its file as its own (see [`Capture::exclusive`]'s field).
    pub fn exclusive(mut self, exclusive: bool) -> Capture {
        self.exclusive = exclusive;
        self
    }

    pub fn tail_kept(&self) -> Tail {
        self.tail_kept
    }

    /// A new process begins: the kept tail is of the last one, and is forgotten.
    pub fn new_process(&self) {
        let mut state = self.state();
        state.tail.clear();
        state.unseen = 0;
    }

    /// Whether its file is its own now: no other capture writes it (checked at each write: a
    /// reload may have given the path to a second capture for a while).
    fn own_file(&self) -> bool {
        self.exclusive && Arc::strong_count(&self.sink) == 1
    }

    /// Whether lines must be kept whole on their way to the file: each is stamped, or another
    /// writer's lines could land inside one.
    fn whole_lines(&self) -> bool {
        self.timestamps || !self.own_file()
    }

    /// Brings the kept tail up to date with the bytes spliced since, read back from the end of
    /// the file, which has them last (it is this capture's own).
    fn see_spliced(&self, state: &mut State) {
        if state.unseen == 0 {
            return;
        }
        let unseen = std::mem::take(&mut state.unseen);
        // Forensics are best effort: a file that cannot be read back leaves the tail as it is.
        if let Ok(spliced) = self.sink().recent(unseen) {
            keep_end(&mut state.tail, &spliced, KEPT_TAIL);
        }
    }

    /// Bytes that could not be written to the file so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Takes `data` read from a pipe: followers get it, and the file (as it comes to a file of
    /// its own; else whole lines, the rest waiting for its end of line).
    pub fn take(&self, data: &[u8]) {
        let mut state = self.state();
        // Bytes spliced before these come before them in the kept tail.
        self.see_spliced(&mut state);
        let offset = state.received;
        state.received += data.len() as u64;
        if let Some(followers) = &state.followers
            && followers.receiver_count() > 0
        {
            let mut piece_offset = offset;
            for piece in data.chunks(FOLLOWER_CHUNK) {
                let _ = followers.send(Chunk {
                    offset: piece_offset,
                    data: Arc::from(piece),
                });
                piece_offset += piece.len() as u64;
            }
        }
        let kept = self.tail_kept.bytes();
        if kept > 0 {
            keep_end(&mut state.tail, data, kept);
        }
        if !self.whole_lines() {
            // Nothing is scanned for: a rotation finishes a line begun in the file before it
            // renames the file. A partial line may wait from a time the file was shared.
            let partial = std::mem::take(&mut state.partial);
            self.write(&mut state, &partial, data);
            return;
        }
        let whole = match memchr::memrchr(b'\n', data) {
            Some(newline) => newline + 1,
            None => {
                state.partial.extend_from_slice(data);
                if state.partial.len() >= LONGEST_PARTIAL {
                    let partial = std::mem::take(&mut state.partial);
                    self.write(&mut state, &partial, b"");
                }
                return;
            }
        };
        let partial = std::mem::take(&mut state.partial);
        self.write(&mut state, &partial, &data[..whole]);
        state.partial.extend_from_slice(&data[whole..]);
    }

    /// Moves output from `pipe` straight into the file (inside the kernel) when nothing needs
    /// to see it: its own file, no timestamps, no follower. The kept tail, if any, is read back
    /// from the file when it is needed. [`Spliced::No`]: it must be read instead.
    fn splice_from(&self, pipe: std::os::fd::BorrowedFd<'_>, max: usize) -> Spliced {
        // A terminal's screen is kept in memory for attach: it is read.
        if self.whole_lines() || self.tail_kept == Tail::Screen {
            return Spliced::No;
        }
        let mut state = self.state();
        let followed = state
            .followers
            .as_ref()
            .is_some_and(|followers| followers.receiver_count() > 0);
        // A waiting partial line goes first, with the next read.
        if followed || !state.partial.is_empty() {
            return Spliced::No;
        }
        let spliced = self.sink().splice_from(pipe, max);
        if let Spliced::Moved(moved) = spliced {
            state.received += moved as u64;
            if self.tail_kept == Tail::Stderr {
                state.unseen = (state.unseen + moved as u64).min(KEPT_TAIL as u64);
            }
        }
        spliced
    }

    /// The stream ended (every writer closed the pipe): what is left of a line is written.
    pub fn flush(&self) {
        let mut state = self.state();
        let partial = std::mem::take(&mut state.partial);
        self.write(&mut state, &partial, b"");
    }

    fn write(&self, state: &mut State, first: &[u8], rest: &[u8]) {
        let outcome = if self.timestamps {
            write_stamped(&mut self.sink(), first, rest)
        } else {
            self.sink().write(first, rest)
        };
        if let Err(dropped) = outcome {
            let total = self.dropped.fetch_add(dropped.bytes, Ordering::Relaxed) + dropped.bytes;
            let due = state
                .reported_at
                .is_none_or(|at| at.elapsed() >= DROP_REPORT_EVERY);
            if due {
                state.reported_at = Some(Instant::now());
                let _ = self.notices.send(Notice::Dropped {
                    instance: self.instance.clone(),
                    kind: self.kind,
                    total,
                    reason: dropped.reason,
                });
            }
        }
    }

    /// The last `lines` lines (at most `bytes` bytes) of kept stderr, oldest first.
    pub fn last_lines(&self, lines: usize, bytes: usize) -> String {
        let mut state = self.state();
        self.see_spliced(&mut state);
        let kept: Vec<u8> = state.tail.iter().copied().collect();
        let end = kept
            .iter()
            .rposition(|byte| *byte != b'\n')
            .map_or(0, |last| last + 1);
        let text = String::from_utf8_lossy(last_lines(&kept[..end], lines));
        let mut chosen = &*text;
        if chosen.len() > bytes {
            let mut cut = chosen.len() - bytes;
            while !chosen.is_char_boundary(cut) {
                cut += 1;
            }
            chosen = &chosen[cut..];
        }
        chosen.to_string()
    }

    /// The output so far (the file as it is now, opened to be read later, and the waiting
    /// partial line), and a feed of what comes after it: taken together under the capture's
    /// lock, so nothing is missed or repeated between them. Cheap (an open and a stat under the
    /// locks); the file is read outside them, with [`Capture::emptied_since`] telling whether
    /// what was read is still what the snapshot saw.
    pub fn snapshot(&self) -> io::Result<Snapshot> {
        let mut state = self.state();
        let file = self.sink().read_back()?;
        let live = state
            .followers
            .get_or_insert_with(|| broadcast::channel(FOLLOWER_BACKLOG).0)
            .subscribe();
        Ok(Snapshot {
            file,
            partial: state.partial.clone(),
            next_offset: state.received,
            live,
        })
    }

    /// A terminal's recent output (what [`Tail::Screen`] kept of the current process, from its
    /// first whole line once some was forgotten) and a feed of what comes after it, taken
    /// together under the capture's lock: a client that attaches sees where the program is,
    /// then everything that follows, nothing missed or repeated between them.
    pub fn screen(&self) -> Screen {
        let mut state = self.state();
        let mut kept: Vec<u8> = state.tail.iter().copied().collect();
        if kept.len() >= self.tail_kept.bytes()
            && let Some(newline) = memchr::memchr(b'\n', &kept)
        {
            // The start was cut off mid-line (mid escape sequence, maybe): from the next line.
            kept.drain(..=newline);
        }
        let live = state
            .followers
            .get_or_insert_with(|| broadcast::channel(FOLLOWER_BACKLOG).0)
            .subscribe();
        Screen {
            kept,
            next_offset: state.received,
            live,
        }
    }

    /// Whether the file of `back` was emptied in place since it was taken (rotation without
    /// backups, clear): bytes read from it since may be new ones.
    pub fn emptied_since(&self, back: &ReadBack) -> bool {
        self.sink().emptied() != back.emptied
    }

    /// Empties the files and the kept output.
    pub fn clear(&self) -> io::Result<()> {
        let mut state = self.state();
        state.tail.clear();
        state.unseen = 0;
        state.partial.clear();
        self.sink().clear()
    }
}

/// Appends `data` to the kept `tail`, of which the last `limit` bytes stay.
fn keep_end(tail: &mut VecDeque<u8>, data: &[u8], limit: usize) {
    tail.extend(&data[data.len().saturating_sub(limit)..]);
    let excess = tail.len().saturating_sub(limit);
    tail.drain(..excess);
}

/// The last `lines` lines of `data` (a final line without its newline counts as one).
pub fn last_lines(data: &[u8], lines: usize) -> &[u8] {
    if lines == 0 {
        return &data[data.len()..];
    }
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    let start = memchr::memrchr_iter(b'\n', body)
        .nth(lines - 1)
        .map_or(0, |newline| newline + 1);
    &data[start..]
}

/// A stream's output up to one moment and the feed of what follows.
pub struct Snapshot {
    /// Its file as it was then; `None`: nothing to read back (no file yet, a FIFO).
    pub file: Option<ReadBack>,
    /// The partial line that waited then: it comes after the file's bytes.
    pub partial: Vec<u8>,
    /// The offset of the first byte the feed will bring.
    pub next_offset: u64,
    pub live: broadcast::Receiver<Chunk>,
}

/// What [`Capture::screen`] gives: the recent output, the offset of the first byte the feed
/// will bring, and the feed.
pub struct Screen {
    pub kept: Vec<u8>,
    pub next_offset: u64,
    pub live: broadcast::Receiver<Chunk>,
}

/// Stamped output is written in pieces of about this size (whole lines), so the buffer it is
/// made in stays small whatever a read brought.
const STAMPED_PIECE: usize = 256 * 1024;

thread_local! {
    /// Where lines are stamped: one buffer per thread that writes output (the drainer, and the
    /// supervisor's for last words), reused for every write.
    static STAMPED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Writes each line of `first` + `rest` (`first` may be the start of a line that `rest`
/// ends) to `sink`, prefixed with the RFC 3339 time of now.
fn write_stamped(sink: &mut Sink, first: &[u8], rest: &[u8]) -> Result<(), Dropped> {
    let now = humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string();
    let mut prefix = now.into_bytes();
    prefix.push(b' ');
    // The usual length, known to the compiler: each stamp is a fixed-size copy.
    match <[u8; 28]>::try_from(prefix.as_slice()) {
        Ok(fixed) => stamp_lines(sink, &fixed, first, rest),
        Err(_) => stamp_lines(sink, prefix.as_slice(), first, rest),
    }
}

fn stamp_lines<P: AsRef<[u8]> + ?Sized>(
    sink: &mut Sink,
    prefix: &P,
    first: &[u8],
    rest: &[u8],
) -> Result<(), Dropped> {
    STAMPED.with_borrow_mut(|stamped| {
        stamped.clear();
        stamped.reserve(STAMPED_PIECE + STAMPED_PIECE / 2);
        let mut failed: Option<Dropped> = None;
        let mut put = |stamped: &mut Vec<u8>| {
            if let Err(dropped) = sink.write(stamped, b"") {
                let earlier = failed.take().map_or(0, |earlier| earlier.bytes);
                failed = Some(Dropped {
                    bytes: earlier + dropped.bytes,
                    ..dropped
                });
            }
            stamped.clear();
        };
        let mut line_begins = true;
        for part in [first, rest] {
            let mut start = 0;
            for newline in memchr::memchr_iter(b'\n', part) {
                if line_begins {
                    stamped.extend_from_slice(prefix.as_ref());
                }
                stamped.extend_from_slice(&part[start..=newline]);
                start = newline + 1;
                line_begins = true;
                if stamped.len() >= STAMPED_PIECE {
                    put(stamped);
                }
            }
            if start < part.len() {
                if line_begins {
                    stamped.extend_from_slice(prefix.as_ref());
                }
                stamped.extend_from_slice(&part[start..]);
                line_begins = false;
            }
        }
        if !stamped.is_empty() {
            put(stamped);
        }
        // A long line left a large buffer: it is not kept.
        if stamped.capacity() > 4 * STAMPED_PIECE {
            *stamped = Vec::new();
        }
        failed.map_or(Ok(()), Err)
    })
}

/// The read end of one process's stream (a pipe's, or a terminal's master): drained by the drainer thread, and by the supervisor
/// at the process's exit (so that its last words are in before the exit is reported).
pub struct Pipe {
    pub fd: OwnedFd,
    pub capture: Arc<Capture>,
    /// Serializes reads between the two threads that drain; holds whether the pipe was
    /// made larger already.
    reading: Mutex<bool>,
}

/// How a drain ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Drained {
    /// Nothing more for now.
    Empty,
    /// Every writer closed it.
    Closed,
    /// Read as much as one turn may; more may be waiting.
    More,
}

impl Pipe {
    pub fn new(fd: OwnedFd, capture: Arc<Capture>) -> Pipe {
        Pipe {
            fd,
            capture,
            reading: Mutex::new(false),
        }
    }

    /// Reads what the pipe holds, at most `turns` reads of `buffer`'s size.
    pub fn drain(&self, buffer: &mut [u8], turns: usize) -> Drained {
        let mut enlarged = lock(&self.reading);
        for _ in 0..turns {
            let wanted = match self.capture.splice_from(self.fd.as_fd(), SPLICE_MAX) {
                Spliced::Moved(moved) => {
                    self.enlarge_when_full(&mut enlarged, moved);
                    continue;
                }
                Spliced::Empty => return Drained::Empty,
                Spliced::Closed => {
                    self.capture.flush();
                    return Drained::Closed;
                }
                Spliced::AtLimit => AT_LIMIT_READ.min(buffer.len()),
                Spliced::No => buffer.len(),
            };
            match nix::unistd::read(self.fd.as_fd(), &mut buffer[..wanted]) {
                Ok(0) => {
                    self.capture.flush();
                    return Drained::Closed;
                }
                Ok(n) => {
                    self.capture.take(&buffer[..n]);
                    self.enlarge_when_full(&mut enlarged, n);
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(nix::errno::Errno::EAGAIN) => return Drained::Empty,
                // A terminal's master once no process holds its other side any more (a pipe
                // says 0 instead).
                Err(nix::errno::Errno::EIO) => {
                    self.capture.flush();
                    return Drained::Closed;
                }
                Err(error) => {
                    tracing::warn!(
                        fd = self.fd.as_raw_fd(),
                        "reading {}: {error}",
                        self.capture.label
                    );
                    self.capture.flush();
                    return Drained::Closed;
                }
            }
        }
        Drained::More
    }

    /// A pipe found full is made larger once (fewer wake-ups for a busy writer); idle pipes
    /// keep the kernel's small default, so thousands of them cost little kernel memory.
    fn enlarge_when_full(&self, enlarged: &mut bool, moved: usize) {
        if !*enlarged && moved >= DEFAULT_PIPE {
            *enlarged = true;
            let _ = nix::fcntl::fcntl(&self.fd, nix::fcntl::FcntlArg::F_SETPIPE_SZ(BUSY_PIPE));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_lines_counts_a_final_line_without_newline() {
        assert_eq!(last_lines(b"a\nb\nc\n", 2), b"b\nc\n");
        assert_eq!(last_lines(b"a\nb\nc", 2), b"b\nc");
        assert_eq!(last_lines(b"a\nb\n", 5), b"a\nb\n");
        assert_eq!(last_lines(b"", 3), b"");
        assert_eq!(last_lines(b"a\nb\n", 0), b"");
    }
}
