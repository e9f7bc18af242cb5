//! The interactive shell: a reedline prompt with emacs keys, persistent history, Ctrl-R search,
//! Tab completion of commands and names, and live events printed above the prompt. Reedline
//! blocks this thread while it reads a line; gRPC runs on a tokio runtime beside it.

use std::{
    borrow::Cow,
    io::{self, BufRead, IsTerminal, Write},
    path::PathBuf,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use futures_util::FutureExt;
use reedline::{
    ColumnarMenu, Completer, CompletionResult, Emacs, ExternalPrinter, FileBackedHistory,
    Highlighter, KeyCode, KeyModifiers, MenuBuilder, Prompt, PromptEditMode, PromptHistorySearch,
    PromptHistorySearchStatus, Reedline, ReedlineEvent, ReedlineMenu, Signal, Span, StyledText,
    Suggestion, default_emacs_keybindings,
};
use tokio::signal::unix::{SignalKind, signal};

use crate::{
    command::{self, Command, Output},
    connection::Connection,
    exit::{self, Exit},
    follow::{self, Shared},
    hosts::Host,
    render::Palette,
};

/// How many event lines may wait for the prompt (while a command runs, say).
const PRINTER_CAPACITY: usize = 1024;
/// How many commands the history keeps.
const HISTORY_SIZE: usize = 10_000;
/// How often reedline looks for event lines while it waits for keys.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
const COMPLETION_MENU: &str = "completion";
/// How long the shell waits for its event feed to listen before it shows the prompt anyway.
const FEED_READY: Duration = Duration::from_secs(2);

/// Runs the shell until `exit`, `quit` or Ctrl-D; returns the exit status. When stdin is not a
/// terminal, runs the commands it reads instead, without prompt or events.
pub fn run(host: Host) -> Exit {
    let runtime = match Background::start() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("taskctl: cannot start the tokio runtime: {error}");
            return Exit::Failed;
        }
    };
    let interrupt = {
        let _context = runtime.handle.enter();
        match signal(SignalKind::interrupt()) {
            Ok(interrupt) => interrupt,
            Err(error) => {
                eprintln!("taskctl: cannot handle Ctrl-C: {error}");
                return Exit::Failed;
            }
        }
    };
    let shared = Arc::new(Shared::default());
    let mut shell = Shell {
        palette: Palette::detect(io::stdout().is_terminal()),
        connection: Connection::new(host.clone()),
        shared: shared.clone(),
        interrupt,
        runtime,
    };
    if !io::stdin().is_terminal() {
        return shell.script();
    }
    let printer = ExternalPrinter::new(PRINTER_CAPACITY);
    let (ready, subscribed) = tokio::sync::oneshot::channel();
    let feed = follow::follow(host, printer.sender(), shared, shell.palette, ready);
    shell.runtime.handle.spawn(feed);
    // Events from the opening status on reach the screen: the feed listens before it is
    // shown (a daemon slow to answer delays the prompt by FEED_READY at most).
    let _ = shell
        .runtime
        .handle
        .block_on(async { tokio::time::timeout(FEED_READY, subscribed).await });
    let mut editor = shell.editor(printer);
    // As supervisorctl does.
    shell.execute(&Command::Status {
        names: Vec::new(),
        json: false,
    });
    loop {
        match editor.read_line(&ShellPrompt) {
            Ok(Signal::Success(line)) => {
                if let Err(error) = editor.sync_history() {
                    eprintln!("taskctl: cannot save the history: {error}");
                }
                if shell.line(&line) == Flow::Exit {
                    return Exit::Success;
                }
            }
            // Reedline has cleared the line.
            Ok(Signal::CtrlC) => {}
            Ok(Signal::CtrlD) => {
                println!();
                return Exit::Success;
            }
            Ok(_) => {}
            Err(error) => {
                eprintln!("taskctl: terminal error: {error}");
                return Exit::Failed;
            }
        }
    }
}

/// Whether the shell reads another line after this one.
#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Exit,
}

/// A current-thread tokio runtime driven by a thread of its own, so that the event feed and
/// timers go on while reedline blocks the main thread. Commands run on the main thread through
/// its handle (the driving thread serves their I/O and timers).
struct Background {
    /// Where commands and the feed are run from any thread.
    handle: tokio::runtime::Handle,
    /// Sending on it ends the driving thread; `None` once sent.
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// The driving thread; `None` once joined.
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Background {
    fn start() -> io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("tokio".to_string())
            .spawn(move || {
                runtime.block_on(async {
                    let _ = stopped.await;
                });
            })?;
        Ok(Background {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Background {
    /// Ends the driving thread; its tasks (the feed) are dropped with the runtime.
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The state of the shell between lines.
struct Shell {
    /// Runs every RPC, and the event feed.
    runtime: Background,
    /// Used by the commands typed; the feed has its own.
    connection: Connection,
    /// Names for completion and the event switches, shared with the feed.
    shared: Arc<Shared>,
    /// Whether output is coloured.
    palette: Palette,
    /// Ctrl-C while a command runs (outside reedline, the terminal sends SIGINT) ends it.
    interrupt: tokio::signal::unix::Signal,
}

impl Shell {
    fn editor(&self, printer: ExternalPrinter<String>) -> Reedline {
        let mut keybindings = default_emacs_keybindings();
        keybindings.add_binding(
            KeyModifiers::NONE,
            KeyCode::Tab,
            ReedlineEvent::UntilFound(vec![
                ReedlineEvent::Menu(COMPLETION_MENU.to_string()),
                ReedlineEvent::MenuNext,
            ]),
        );
        keybindings.add_binding(
            KeyModifiers::SHIFT,
            KeyCode::BackTab,
            ReedlineEvent::MenuPrevious,
        );
        let menu = ColumnarMenu::default()
            .with_name(COMPLETION_MENU)
            .with_marker("> ");
        let editor = Reedline::create()
            .with_edit_mode(Box::new(Emacs::new(keybindings)))
            .with_completer(Box::new(NameCompleter {
                shared: self.shared.clone(),
            }))
            .with_menu(ReedlineMenu::EngineCompleter(Box::new(menu)))
            .with_quick_completions(true)
            .with_partial_completions(true)
            .with_highlighter(Box::new(PlainHighlighter))
            .with_ansi_colors(self.palette.color)
            .with_external_printer(printer)
            .with_poll_interval(POLL_INTERVAL);
        let history = history_path().and_then(|path| {
            FileBackedHistory::with_file(HISTORY_SIZE, path.clone())
                .map_err(|error| format!("{}: {error}", path.display()))
        });
        match history {
            Ok(history) => editor.with_history(Box::new(history)),
            Err(problem) => {
                eprintln!("taskctl: the history will not be kept: {problem}");
                editor
            }
        }
    }

    /// Runs one typed line.
    fn line(&mut self, line: &str) -> Flow {
        let words = match shell_words::split(line) {
            Ok(words) => words,
            Err(error) => {
                eprintln!("{error}");
                return Flow::Continue;
            }
        };
        if words.is_empty() {
            return Flow::Continue;
        }
        let command = match command::parse(&words) {
            Ok(command) => command,
            Err(usage) => {
                eprintln!("{usage}");
                return Flow::Continue;
            }
        };
        match command {
            Command::Exit => return Flow::Exit,
            Command::Events { on } => {
                self.shared.events_on.store(on, Ordering::Relaxed);
                println!("events are {}", if on { "on" } else { "off" });
            }
            Command::Shutdown { yes: false, .. }
                if !confirm(&format!(
                    "Really shut down taskmasterd at {}?",
                    self.connection.target()
                )) => {}
            command => {
                self.execute(&command);
            }
        }
        Flow::Continue
    }

    /// Runs `command` until it ends or Ctrl-C; returns its exit status.
    fn execute(&mut self, command: &Command) -> Exit {
        let Shell {
            runtime,
            connection,
            shared,
            palette,
            interrupt,
        } = self;
        let _context = runtime.handle.enter();
        // A Ctrl-C that reached us between commands must not end this one.
        while let Some(Some(())) = interrupt.recv().now_or_never() {}
        shared.watching.store(command.streams(), Ordering::Relaxed);
        let mut stdout = io::stdout();
        let mut output = Output {
            out: &mut stdout,
            palette: *palette,
            host: None,
        };
        let outcome = runtime.handle.block_on(async {
            tokio::select! {
                outcome = command::run(command, connection, &mut output) => Some(outcome),
                _ = interrupt.recv() => None,
            }
        });
        shared.watching.store(false, Ordering::Relaxed);
        let exit = match outcome {
            Some(outcome) => exit::report(outcome),
            None => {
                println!();
                Exit::Interrupted
            }
        };
        if let Some(client) = connection.cached_client() {
            let shared = shared.clone();
            runtime
                .handle
                .spawn(async move { follow::refresh_names(client, &shared).await });
        }
        exit
    }

    /// Runs the commands read from stdin; the exit status is the worst of theirs.
    fn script(&mut self) -> Exit {
        let mut worst = Exit::Success;
        for line in io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            let words = match shell_words::split(&line) {
                Ok(words) => words,
                Err(error) => {
                    eprintln!("{error}");
                    worst = worst.max(Exit::Usage);
                    continue;
                }
            };
            if words.is_empty() {
                continue;
            }
            match command::parse(&words) {
                Ok(Command::Exit) => break,
                Ok(Command::Events { .. }) => {}
                Ok(command) => worst = worst.max(self.execute(&command)),
                Err(usage) => {
                    eprintln!("{usage}");
                    worst = worst.max(Exit::Usage);
                }
            }
        }
        worst
    }
}

/// Asks a yes/no question on the terminal; anything but yes is no.
fn confirm(question: &str) -> bool {
    print!("{question} [y/N] ");
    let _ = io::stdout().flush();
    let mut answer = String::new();
    if io::stdin().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim().to_lowercase().as_str(), "y" | "yes")
}

/// `$XDG_STATE_HOME/taskmaster/history`, else `~/.local/state/taskmaster/history`.
fn history_path() -> Result<PathBuf, String> {
    let state_home = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        // As the XDG base directory spec says: a relative value is ignored.
        .filter(|dir| dir.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|home| !home.is_empty())
                .map(|home| PathBuf::from(home).join(".local").join("state"))
        })
        .ok_or("neither XDG_STATE_HOME nor HOME is set")?;
    Ok(state_home.join("taskmaster").join("history"))
}

/// `taskmaster> `
struct ShellPrompt;

impl Prompt for ShellPrompt {
    fn render_prompt_left(&self) -> Cow<'_, str> {
        Cow::Borrowed("taskmaster")
    }

    fn render_prompt_right(&self) -> Cow<'_, str> {
        Cow::Borrowed("")
    }

    fn render_prompt_indicator(&self, _mode: PromptEditMode) -> Cow<'_, str> {
        Cow::Borrowed("> ")
    }

    fn render_prompt_multiline_indicator(&self) -> Cow<'_, str> {
        Cow::Borrowed("::: ")
    }

    fn render_prompt_history_search_indicator(&self, search: PromptHistorySearch) -> Cow<'_, str> {
        let failing = match search.status {
            PromptHistorySearchStatus::Passing => "",
            PromptHistorySearchStatus::Failing => "failing ",
        };
        Cow::Owned(format!(" ({failing}reverse-i-search: {}) ", search.term))
    }
}

/// Completes from the command table and the names the feed keeps fresh; never waits.
struct NameCompleter {
    /// Where the feed keeps the names.
    shared: Arc<Shared>,
}

impl Completer for NameCompleter {
    fn complete(&mut self, line: &str, pos: usize) -> CompletionResult {
        let before = line.get(..pos).unwrap_or(line);
        let (start, candidates) = command::complete(before, &self.shared.names());
        let suggestions: Vec<Suggestion> = candidates
            .into_iter()
            .map(|value| Suggestion {
                value,
                span: Span::new(start, before.len()),
                append_whitespace: true,
                ..Suggestion::default()
            })
            .collect();
        CompletionResult::fresh(suggestions)
    }
}

/// Shows what is typed as it is.
struct PlainHighlighter;

impl Highlighter for PlainHighlighter {
    fn highlight(&self, line: &str, _cursor: usize) -> StyledText {
        let mut text = StyledText::new();
        text.push((nu_ansi_term::Style::new(), line.to_string()));
        text
    }
}
