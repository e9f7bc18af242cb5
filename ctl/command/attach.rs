//! `attach`: the user's terminal connected to the console of an instance's live process, over
//! the Attach RPC. For a program on a terminal (`tty: true`): raw mode, every key forwarded
//! (Ctrl-C goes to the program), the window size sent at attach and on every SIGWINCH, the
//! recent screen shown first, and the detach keys (Ctrl-] unless `--detach-keys` says
//! otherwise) to leave it running. Without a terminal: its output live, and each line typed
//! sent to its stdin if it has `stdin: pipe`; Ctrl-D or Ctrl-C leaves. The terminal is put
//! back exactly as it was whatever ends the session: the detach keys, the process's end, the
//! daemon stopping, a lost connection, a signal to taskctl.

use std::{
    fmt,
    io::{self, IsTerminal, Write},
    os::fd::{AsFd, AsRawFd, OwnedFd},
    str::FromStr,
    thread::JoinHandle,
};

use nix::{
    poll::{PollFd, PollFlags, PollTimeout, poll},
    sys::termios::{self, SetArg, Termios},
};
use taskmaster::proto::{self, attach_request, attach_response};
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::mpsc,
};
use tokio_stream::wrappers::ReceiverStream;

use super::Output;
use crate::{
    connection::Connection,
    exit::{CtlError, Outcome},
};

/// The keys that detach, as docker spells them: `ctrl-]` (the default), `ctrl-p,ctrl-q`, ...
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetachKeys {
    /// What the terminal sends for them, in order.
    bytes: Vec<u8>,
    /// As written, for messages.
    text: String,
}

impl Default for DetachKeys {
    fn default() -> DetachKeys {
        "ctrl-]".parse().expect("the default detach keys parse")
    }
}

impl fmt::Display for DetachKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for DetachKeys {
    type Err = String;

    /// Keys separated by commas, each a character or `ctrl-` and one of `a`-`z`, `@`, `[`,
    /// `\`, `]`, `^`, `_`.
    fn from_str(text: &str) -> Result<DetachKeys, String> {
        let key = |word: &str| -> Result<u8, String> {
            let lower = word.to_ascii_lowercase();
            if let Some(name) = lower.strip_prefix("ctrl-") {
                return match name.as_bytes() {
                    [letter @ b'a'..=b'z'] => Ok(letter - b'a' + 1),
                    [b'@'] => Ok(0),
                    [symbol @ (b'[' | b'\\' | b']' | b'^' | b'_')] => Ok(symbol - b'@'),
                    _ => Err(format!(
                        "`{word}` is not a key: ctrl- goes with a letter or one of @ [ \\ ] ^ _"
                    )),
                };
            }
            match word.as_bytes() {
                [character] if character.is_ascii_graphic() => Ok(*character),
                _ => Err(format!(
                    "`{word}` is not a key: write a character or ctrl-X (ctrl-p,ctrl-q)"
                )),
            }
        };
        let bytes = (text.split(','))
            .map(|word| key(word.trim()))
            .collect::<Result<Vec<u8>, String>>()?;
        Ok(DetachKeys {
            bytes,
            text: text.to_string(),
        })
    }
}

/// Finds the detach keys in what is typed: the keys of a sequence begun are held back until
/// it is complete (a detach) or broken (then they are sent after all).
struct Detector<'a> {
    keys: &'a [u8],
    /// How many of `keys` the last bytes typed were.
    matched: usize,
}

impl Detector<'_> {
    /// What of `typed` goes to the program, and whether the detach keys were typed (what
    /// followed them is dropped).
    fn feed(&mut self, typed: &[u8]) -> (Vec<u8>, bool) {
        let mut forward = Vec::with_capacity(typed.len());
        for &byte in typed {
            if byte == self.keys[self.matched] {
                self.matched += 1;
            } else {
                forward.extend_from_slice(&self.keys[..self.matched]);
                self.matched = usize::from(byte == self.keys[0]);
                if self.matched == 0 {
                    forward.push(byte);
                }
            }
            if self.matched == self.keys.len() {
                return (forward, true);
            }
        }
        (forward, false)
    }
}

/// How a session ended, for the line that says so.
enum End {
    /// The detach keys, the end of input, or a signal to taskctl.
    Detached,
    /// The process ended (or the daemon stopped it).
    Ended(proto::AttachEnded),
}

/// Attaches to `name` until the detach keys (or the end of the process, or of the daemon).
pub async fn attach(
    connection: &mut Connection,
    output: &mut Output<'_>,
    name: &str,
    read_only: bool,
    detach_keys: &DetachKeys,
) -> Result<Outcome, CtlError> {
    let keyboard = io::stdin().is_terminal();
    let (requests, outgoing) = mpsc::channel(64);
    let open = proto::AttachOpen {
        name: name.to_string(),
        read_only,
        size: keyboard.then(window_size).flatten(),
    };
    let _ = requests.try_send(request(attach_request::Message::Open(open)));
    let mut client = connection.client().await?;
    let mut answers = connection
        .answer(client.attach(ReceiverStream::new(outgoing)))
        .await?;
    let ready = match answers.message().await {
        Ok(Some(proto::AttachResponse {
            message: Some(attach_response::Message::Ready(ready)),
        })) => ready,
        Ok(_) => {
            return Err(lost(
                connection,
                "the daemon did not say what it attached to",
            ));
        }
        Err(status) => return Err(connection.failure(status).await),
    };
    // Keys are read raw for a terminal (for the detach keys, even when they go nowhere), as
    // lines when they are lines for a stdin pipe, and not at all otherwise.
    let raw = ready.tty && keyboard;
    let lines = !ready.tty && ready.input;
    output.warn(&greeting(&ready, detach_keys, keyboard));
    let mut window_changed = signal(SignalKind::window_change()).map_err(CtlError::Output)?;
    let mut leave = Leave::new().map_err(CtlError::Output)?;
    let _raw_mode = match raw {
        true => Some(RawMode::enter().map_err(CtlError::Output)?),
        false => None,
    };
    let mut keys = match raw || lines {
        true => Some(Keyboard::start().map_err(CtlError::Output)?),
        false => None,
    };
    let mut detector = Detector {
        keys: &detach_keys.bytes,
        matched: 0,
    };
    // In raw mode a line ends with a carriage return of its own.
    let newline = if raw { "\r\n" } else { "\n" };
    let mut ended = None;
    let end = loop {
        tokio::select! {
            answer = answers.message() => match answer {
                Ok(Some(proto::AttachResponse { message: Some(message) })) => match message {
                    attach_response::Message::Output(chunk) => show(output, &chunk, newline)?,
                    attach_response::Message::Ended(how) => ended = Some(how),
                    attach_response::Message::Ready(_) => {}
                },
                Ok(Some(_)) => {}
                Ok(None) => match ended.take() {
                    Some(how) => break End::Ended(how),
                    None => return Err(lost(connection, "the daemon ended the session")),
                },
                Err(status) => return Err(connection.failure(status).await),
            },
            typed = next_keys(&mut keys) => match typed {
                Some(typed) if raw => {
                    let (forward, detach) = detector.feed(&typed);
                    if ready.input && !forward.is_empty() {
                        let _ = requests.send(request(attach_request::Message::Input(forward))).await;
                    }
                    if detach {
                        break End::Detached;
                    }
                }
                Some(line) => {
                    let _ = requests.send(request(attach_request::Message::Input(line))).await;
                }
                // The end of what is typed: Ctrl-D on a terminal leaves; the end of a file or
                // pipe only ends the input.
                None if keyboard => break End::Detached,
                None => keys = None,
            },
            _ = window_changed.recv(), if raw && ready.input => {
                if let Some(size) = window_size() {
                    let _ = requests.send(request(attach_request::Message::Resize(size))).await;
                }
            }
            () = leave.recv() => break End::Detached,
        }
    };
    // The keyboard's reader stops and the terminal is as it was before anything is said.
    drop(keys);
    drop(_raw_mode);
    output.warn(&farewell(&ready.instance, &end));
    Ok(Outcome::Success)
}

fn request(message: attach_request::Message) -> proto::AttachRequest {
    proto::AttachRequest {
        message: Some(message),
    }
}

fn lost(connection: &mut Connection, reason: &str) -> CtlError {
    connection.forget();
    CtlError::Lost {
        target: connection.target().clone(),
        reason: reason.to_string(),
    }
}

/// The line that says what the session is and how to leave it.
fn greeting(ready: &proto::AttachReady, detach_keys: &DetachKeys, keyboard: bool) -> String {
    let what = format!("{} (pid {})", ready.instance, ready.pid);
    match (ready.tty, ready.input, keyboard) {
        (true, true, true) => format!("attached to {what}: {detach_keys} detaches"),
        (true, false, true) => format!("watching {what}, read-only: {detach_keys} detaches"),
        (true, _, false) => {
            format!(
                "watching {what}: stdin is not a terminal, so no keys go to it; Ctrl-C detaches"
            )
        }
        (false, true, true) => format!(
            "attached to {what}, no terminal: each line typed goes to its stdin; Ctrl-D or \
             Ctrl-C detaches"
        ),
        (false, true, false) => {
            format!("attached to {what}, no terminal: the lines read go to its stdin")
        }
        (false, false, _) => format!(
            "watching {what}: no terminal, and no input possible (no `stdin: pipe`); Ctrl-C \
             detaches"
        ),
    }
}

/// The line that says how the session ended.
fn farewell(instance: &str, end: &End) -> String {
    match end {
        End::Detached => format!("detached from {instance}; it goes on running"),
        End::Ended(how) if how.daemon_stopping => format!(
            "{instance} ended: {} (taskmasterd is shutting down)",
            how.description
        ),
        End::Ended(how) => format!("{instance} ended: {}", how.description),
    }
}

/// Shows a chunk of output: stdout's on stdout, stderr's on stderr, after a notice of what was
/// skipped (this client fell behind).
fn show(
    output: &mut Output<'_>,
    chunk: &proto::AttachOutput,
    newline: &str,
) -> Result<(), CtlError> {
    if chunk.missed_bytes > 0 {
        let notice = crate::render::missed_notice(chunk.missed_bytes);
        let _ = write!(io::stderr(), "{}{newline}", notice.trim_end());
    }
    if chunk.stream() == proto::Stream::Stderr {
        let mut stderr = io::stderr();
        return (stderr.write_all(&chunk.data))
            .and_then(|()| stderr.flush())
            .map_err(CtlError::Output);
    }
    output.write_bytes(&chunk.data)
}

/// The window size of the terminal on stdin, if it has one.
fn window_size() -> Option<proto::WindowSize> {
    // SAFETY: winsize is plain old data; all zeroes is a valid value.
    let mut size: nix::libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes one winsize through the pointer, valid for the call.
    let result = unsafe {
        nix::libc::ioctl(
            io::stdin().as_raw_fd(),
            nix::libc::TIOCGWINSZ,
            &mut size as *mut nix::libc::winsize,
        )
    };
    (result == 0 && size.ws_row > 0 && size.ws_col > 0).then(|| proto::WindowSize {
        rows: size.ws_row.into(),
        columns: size.ws_col.into(),
    })
}

/// The next bytes typed; `None` at the end of input. Never ready without a keyboard.
async fn next_keys(keys: &mut Option<Keyboard>) -> Option<Vec<u8>> {
    match keys {
        Some(keyboard) => keyboard.typed.recv().await,
        None => std::future::pending().await,
    }
}

/// SIGINT, SIGTERM and SIGHUP, each of which detaches (so that the terminal is put back).
struct Leave([tokio::signal::unix::Signal; 3]);

impl Leave {
    fn new() -> io::Result<Leave> {
        Ok(Leave([
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
            signal(SignalKind::hangup())?,
        ]))
    }

    async fn recv(&mut self) {
        let [interrupt, terminate, hangup] = &mut self.0;
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
            _ = hangup.recv() => {}
        }
    }
}

/// The terminal on stdin in raw mode until dropped, then exactly as it was.
struct RawMode {
    /// The settings before.
    saved: Termios,
}

impl RawMode {
    fn enter() -> io::Result<RawMode> {
        let stdin = io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd())?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw)?;
        Ok(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(io::stdin().as_fd(), SetArg::TCSANOW, &self.saved);
    }
}

/// What is typed (or read from stdin), by a thread of its own that waits for stdin or for a
/// word to stop; it is stopped and joined when dropped, so that no reader of the terminal is
/// left behind (in the shell, it would take the keys of the prompt).
struct Keyboard {
    typed: mpsc::Receiver<Vec<u8>>,
    /// Written to stop the thread.
    stop: OwnedFd,
    thread: Option<JoinHandle<()>>,
}

impl Keyboard {
    fn start() -> io::Result<Keyboard> {
        let (stopped, stop) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let (sender, typed) = mpsc::channel(16);
        let thread = std::thread::Builder::new()
            .name("keyboard".to_string())
            .spawn(move || read_keys(&stopped, &sender))?;
        Ok(Keyboard {
            typed,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Keyboard {
    fn drop(&mut self) {
        // A sender waiting for room gives up once the channel is closed.
        self.typed.close();
        let _ = nix::unistd::write(&self.stop, &[1]);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads stdin as it becomes readable (a read then returns what is there: keys in raw mode, a
/// line in cooked mode) and sends it, until `stopped` is readable, stdin ends, or nobody
/// takes what is read.
fn read_keys(stopped: &OwnedFd, typed: &mpsc::Sender<Vec<u8>>) {
    let stdin = io::stdin();
    let mut buffer = [0u8; 4096];
    loop {
        let mut fds = [
            PollFd::new(stdin.as_fd(), PollFlags::POLLIN),
            PollFd::new(stopped.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return,
        }
        if fds[1].any().unwrap_or(true) {
            return;
        }
        if !fds[0].any().unwrap_or(false) {
            continue;
        }
        match nix::unistd::read(stdin.as_fd(), &mut buffer) {
            // The end of input, or a terminal hung up.
            Ok(0) => return,
            Ok(count) => {
                if typed.blocking_send(buffer[..count].to_vec()).is_err() {
                    return;
                }
            }
            Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => {}
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_are_spelled_as_docker_spells_them() {
        let bytes = |text: &str| text.parse::<DetachKeys>().map(|keys| keys.bytes);
        assert_eq!(bytes("ctrl-]"), Ok(vec![0x1d]));
        assert_eq!(bytes("ctrl-p,ctrl-q"), Ok(vec![0x10, 0x11]));
        assert_eq!(
            bytes("ctrl-@,ctrl-[,ctrl-\\,ctrl-^,ctrl-_"),
            Ok(vec![0, 27, 28, 30, 31])
        );
        assert_eq!(bytes("CTRL-A, x"), Ok(vec![1, b'x']));
        assert_eq!(DetachKeys::default().bytes, vec![0x1d]);
        assert!(
            bytes("ctrl-1")
                .unwrap_err()
                .contains("`ctrl-1` is not a key")
        );
        assert!(bytes("").unwrap_err().contains("is not a key"));
        assert!(bytes("ab").unwrap_err().contains("`ab` is not a key"));
    }

    #[test]
    fn a_sequence_begun_is_held_back_until_it_completes_or_breaks() {
        let keys: DetachKeys = "ctrl-p,ctrl-q".parse().unwrap();
        let mut detector = Detector {
            keys: &keys.bytes,
            matched: 0,
        };
        assert_eq!(detector.feed(b"ab"), (b"ab".to_vec(), false));
        // Ctrl-P alone is held back, then sent with what broke the sequence.
        assert_eq!(detector.feed(b"\x10"), (vec![], false));
        assert_eq!(detector.feed(b"c"), (b"\x10c".to_vec(), false));
        // Ctrl-P Ctrl-P Ctrl-Q: the first is sent, the other two detach.
        assert_eq!(
            detector.feed(b"x\x10\x10\x11rest"),
            (b"x\x10".to_vec(), true)
        );
        let default = DetachKeys::default();
        let mut detector = Detector {
            keys: &default.bytes,
            matched: 0,
        };
        assert_eq!(detector.feed(b"ls\r\x03"), (b"ls\r\x03".to_vec(), false));
        assert_eq!(detector.feed(b"q\x1d"), (b"q".to_vec(), true));
    }
}
