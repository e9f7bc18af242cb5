//! Running the real `taskctl`: one-shot with captured output, or the shell in a pseudo-terminal
//! whose screen is kept by a terminal emulator (vt100), so tests read what a person would see.

use std::{
    io::{BufRead, BufReader, Read, Write},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{Arc, Condvar, Mutex, mpsc},
    thread::JoinHandle,
    time::Instant,
};

use expectrl::process::unix::{Signal, WaitStatus};

use crate::support::{DEADLINE, Guard, send};

/// Rows and columns of the emulated terminal.
const ROWS: u16 = 50;
const COLUMNS: u16 = 120;

/// `taskctl` with a clean environment: no address from the caller's shell, no colour setting.
pub fn taskctl() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_taskctl"));
    command
        .env_remove("TASKMASTER_SOCKET")
        .env_remove("TASKMASTER_HOST")
        .env_remove("TASKMASTER_HOSTS")
        .env_remove("TASKMASTER_TOKEN")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null());
    command
}

/// What a finished one-shot `taskctl` did.
#[derive(Debug)]
pub struct Run {
    /// The exit status; -1 when killed by a signal.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `taskctl -s SOCKET ARGS...` to the end.
pub fn ctl(socket: &Path, args: &[&str]) -> Run {
    let mut command = taskctl();
    command.arg("-s").arg(socket).args(args);
    run(command)
}

/// Runs `command` to the end and captures its output.
pub fn run(mut command: Command) -> Run {
    let output = command.output().expect("run taskctl");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A one-shot `taskctl` that goes on printing (`watch`, `tail -f`), and the lines it
/// printed so far.
pub struct Following {
    /// Its stdout, line by line, from a reader thread.
    lines: mpsc::Receiver<String>,
    /// Its stderr, line by line, from another.
    errors: mpsc::Receiver<String>,
    child: Guard,
}

/// Starts `taskctl -s SOCKET ARGS...`, its stdout read as it comes.
pub fn follow(socket: &Path, args: &[&str]) -> Following {
    let mut command = taskctl();
    command.arg("-s").arg(socket).args(args);
    follow_command(command)
}

/// Starts `command` (a [`taskctl`]), its stdout and stderr read as they come.
pub fn follow_command(mut command: Command) -> Following {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = Guard::spawn(&mut command);
    let lines = read_lines(child.child().stdout.take().unwrap());
    let errors = read_lines(child.child().stderr.take().unwrap());
    Following {
        lines,
        errors,
        child,
    }
}

/// The lines of `stream`, read by a thread of their own.
fn read_lines(stream: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (sender, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    lines
}

/// Skips lines of `lines` until one satisfies `check`; returns it. Fails the test after
/// [`DEADLINE`].
fn next_line(lines: &mpsc::Receiver<String>, what: &str, check: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + DEADLINE;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if check(&line) => return line,
            Ok(line) => seen.push(line),
            Err(_) => panic!("no line with {what}; got:\n{}", seen.join("\n")),
        }
    }
}

impl Following {
    /// Skips lines until one satisfies `check`; returns it.
    pub fn line(&self, what: &str, check: impl Fn(&str) -> bool) -> String {
        next_line(&self.lines, what, check)
    }

    /// Skips lines of stderr until one satisfies `check`; returns it.
    pub fn error_line(&self, what: &str, check: impl Fn(&str) -> bool) -> String {
        next_line(&self.errors, what, check)
    }

    /// Ctrl-C, then the exit status.
    pub fn interrupt(mut self) -> Option<i32> {
        send(self.child.pid(), nix::sys::signal::Signal::SIGINT);
        self.exit_code()
    }

    pub fn exit_code(&mut self) -> Option<i32> {
        self.child.wait_exit().expect("taskctl did not exit").code()
    }
}

/// The shell in a pseudo-terminal.
pub struct Terminal {
    /// The process and the pty's master side, where keys are typed.
    session: expectrl::session::OsSession,
    /// Fed by the reader thread; the condvar tells of every change.
    screen: Arc<(Mutex<Screen>, Condvar)>,
    /// Reads the pty until taskctl closes it.
    reader: Option<JoinHandle<()>>,
}

/// What the emulator has seen.
struct Screen {
    /// The emulated terminal.
    parser: vt100::Parser<Answers>,
    /// Everything the program wrote, for failure messages.
    transcript: Vec<u8>,
    /// The program closed the terminal.
    closed: bool,
}

/// Answers the terminal queries the program sends, as a real terminal does: crossterm asks
/// where the cursor is (`ESC [ 6 n`) and waits for the answer.
#[derive(Default)]
struct Answers(Vec<u8>);

impl vt100::Callbacks for Answers {
    fn unhandled_csi(
        &mut self,
        screen: &mut vt100::Screen,
        _i1: Option<u8>,
        _i2: Option<u8>,
        params: &[&[u16]],
        c: char,
    ) {
        if c == 'n' && params == [&[6][..]] {
            let (row, column) = screen.cursor_position();
            self.0
                .extend_from_slice(format!("\x1b[{};{}R", row + 1, column + 1).as_bytes());
        }
    }
}

impl Terminal {
    /// Starts `taskctl ARGS...` in a terminal of [`ROWS`] x [`COLUMNS`], with `home` as its
    /// home and state directory (where the history is kept).
    pub fn spawn(home: &Path, args: &[&std::ffi::OsStr]) -> Terminal {
        Terminal::run(home, "exec \"$0\" \"$@\"", args)
    }

    /// Runs the shell commands `script` in a terminal as [`Terminal::spawn`] runs taskctl,
    /// with `$0` the path of taskctl and `args` as `$1`...
    pub fn script(home: &Path, script: &str, args: &[&std::ffi::OsStr]) -> Terminal {
        Terminal::run(home, script, args)
    }

    fn run(home: &Path, script: &str, args: &[&std::ffi::OsStr]) -> Terminal {
        // The size is set from inside, before taskctl starts, so it never sees another one.
        let mut command = Command::new("/bin/sh");
        command
            .arg("-c")
            .arg(format!("stty rows {ROWS} cols {COLUMNS} && {script}"))
            .arg(env!("CARGO_BIN_EXE_taskctl"))
            .args(args)
            .env("HOME", home)
            .env("XDG_STATE_HOME", home.join("state"))
            .env("TERM", "xterm")
            .env_remove("TASKMASTER_SOCKET")
            .env_remove("TASKMASTER_HOST")
            .env_remove("TASKMASTER_HOSTS")
            .env_remove("TASKMASTER_TOKEN")
            .env_remove("NO_COLOR");
        let session = expectrl::Session::spawn(command).expect("spawn taskctl in a pty");
        let mut output = session.get_process().get_raw_handle().expect("pty handle");
        let mut answers = session.get_process().get_raw_handle().expect("pty handle");
        let screen = Arc::new((
            Mutex::new(Screen {
                parser: vt100::Parser::new_with_callbacks(
                    ROWS.try_into().unwrap(),
                    COLUMNS.try_into().unwrap(),
                    0,
                    Answers::default(),
                ),
                transcript: Vec::new(),
                closed: false,
            }),
            Condvar::new(),
        ));
        let shared = screen.clone();
        let reader = std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            loop {
                let count = output.read(&mut buffer).unwrap_or(0);
                let (lock, changed) = &*shared;
                let mut screen = lock.lock().unwrap();
                if count == 0 {
                    screen.closed = true;
                    changed.notify_all();
                    return;
                }
                screen.parser.process(&buffer[..count]);
                screen.transcript.extend_from_slice(&buffer[..count]);
                let reply = std::mem::take(&mut screen.parser.callbacks_mut().0);
                drop(screen);
                if !reply.is_empty() {
                    let _ = answers.write_all(&reply);
                }
                changed.notify_all();
            }
        });
        Terminal {
            session,
            screen,
            reader: Some(reader),
        }
    }

    /// Makes the window `rows` x `columns`, as a person resizing it does: the programs on the
    /// terminal get SIGWINCH.
    pub fn resize(&mut self, rows: u16, columns: u16) {
        let (lock, _) = &*self.screen;
        let nonzero = |count: u16| count.try_into().expect("a size of at least one");
        (lock.lock().unwrap().parser).set_size(nonzero(rows), nonzero(columns));
        (self.session.get_process_mut())
            .set_window_size(columns, rows)
            .expect("resize the terminal");
    }

    /// Types `keys`.
    pub fn send(&mut self, keys: &str) {
        self.session.write_all(keys.as_bytes()).expect("type");
        self.session.flush().expect("type");
    }

    /// Waits until `check` holds for what the screen shows; returns that. Fails the test
    /// after [`DEADLINE`].
    pub fn wait_for(&self, what: &str, check: impl Fn(&View) -> bool) -> View {
        let deadline = Instant::now() + DEADLINE;
        let (lock, changed) = &*self.screen;
        let mut screen = lock.lock().unwrap();
        loop {
            let view = View::of(&screen.parser);
            if check(&view) {
                return view;
            }
            let now = Instant::now();
            if now >= deadline || screen.closed {
                let message = format!(
                    "{} waiting for {what}; the screen:\n{}\n-- everything written:\n{:?}",
                    if screen.closed {
                        "taskctl closed the terminal"
                    } else {
                        "timed out"
                    },
                    view.text,
                    String::from_utf8_lossy(&screen.transcript)
                );
                // Not while holding the lock: the reader thread must not see it poisoned.
                drop(screen);
                panic!("{message}");
            }
            screen = changed.wait_timeout(screen, deadline - now).unwrap().0;
        }
    }

    /// Waits until the screen shows `text`.
    pub fn wait_text(&self, text: &str) -> View {
        self.wait_for(&format!("{text:?} on the screen"), |view| {
            view.text.contains(text)
        })
    }

    /// Waits until the line of the cursor reads `taskmaster> LINE`, the cursor at its end.
    pub fn wait_prompt(&self, line: &str) -> View {
        let expected = format!("taskmaster> {line}");
        let what = format!("the prompt line to read {expected:?}");
        self.wait_for(&what, |view| {
            view.cursor_line() == expected.trim_end()
                && usize::from(view.cursor.1) == expected.chars().count()
        })
    }

    /// Waits for taskctl to exit; returns its exit status.
    pub fn wait_exit(&mut self) -> i32 {
        let (lock, changed) = &*self.screen;
        let deadline = Instant::now() + DEADLINE;
        let mut screen = lock.lock().unwrap();
        while !screen.closed {
            let now = Instant::now();
            assert!(now < deadline, "taskctl did not exit");
            screen = changed.wait_timeout(screen, deadline - now).unwrap().0;
        }
        drop(screen);
        match self.session.get_process().wait() {
            Ok(WaitStatus::Exited(_, code)) => code,
            other => panic!("taskctl ended with {other:?}"),
        }
    }
}

/// The screen as text, and where the cursor is.
pub struct View {
    /// One line per row, trailing blanks removed.
    pub text: String,
    /// (row, column), from 0.
    pub cursor: (u16, u16),
    /// The text shown in reverse video: the selected item of a menu.
    pub highlighted: String,
}

impl View {
    fn of(parser: &vt100::Parser<Answers>) -> View {
        let text = parser
            .screen()
            .rows(0, COLUMNS)
            .map(|row| row.trim_end().to_string())
            .collect::<Vec<_>>()
            .join("\n");
        let (rows, columns) = parser.screen().size();
        let mut highlighted = String::new();
        for row in 0..rows.get() {
            for column in 0..columns.get() {
                if let Some(cell) = parser.screen().cell(row, column)
                    && cell.inverse()
                {
                    highlighted.push_str(cell.contents());
                }
            }
        }
        View {
            text,
            cursor: parser.screen().cursor_position(),
            highlighted,
        }
    }

    /// The row the cursor is on.
    pub fn cursor_line(&self) -> &str {
        self.text
            .lines()
            .nth(usize::from(self.cursor.0))
            .unwrap_or("")
    }

    /// How many rows contain `text`.
    pub fn count(&self, text: &str) -> usize {
        self.text.lines().filter(|line| line.contains(text)).count()
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.session.get_process_mut().kill(Signal::SIGKILL);
        let _ = self.session.get_process().wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

/// A temporary home for a shell: history and state go there.
pub fn home() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp home")
}

/// The history file of a shell whose home is `home`.
pub fn history_file(home: &Path) -> PathBuf {
    home.join("state").join("taskmaster").join("history")
}
