//! The commands of taskctl. [`Verb`] is the table: each command is one variant with its
//! [`Spec`] (name, arguments, help), and every use of a command (parsing for one-shot use and
//! the shell alike, completion, `help`, running it) reaches it through an exhaustive `match`.
//! [`Command`] is a parsed command line; [`run`] sends it to its one handler. One name per
//! command end to end: rpc `Stop` = [`Verb::Stop`] = [`Command::Stop`] = `taskctl stop` =
//! [`instances::stop`].

mod complete;
mod daemon;
mod help;
mod instances;
mod parse;
mod stream;
mod watch;

use std::io::Write;

pub use complete::complete;
pub use help::overview;
pub use parse::{UsageError, parse};

use crate::{
    connection::Connection,
    exit::{CtlError, Outcome},
    render::Palette,
};

/// What a command's free words are, for completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operands {
    None,
    /// Program or instance names.
    Names,
    /// Program or instance names, or `all`.
    NamesOrAll,
    /// A command name.
    Command,
    /// `on` or `off`.
    OnOff,
}

/// What `help` and completion know of a command.
#[derive(Debug, PartialEq, Eq)]
pub struct Spec {
    /// The word that calls it; also the name of its handler and, where it has one of its
    /// own, of its RPC.
    pub name: &'static str,
    /// Its arguments as usage shows them.
    pub args: &'static str,
    /// One line for the list of commands.
    pub summary: &'static str,
    /// More for `help COMMAND`; may be empty.
    pub details: &'static str,
    /// What its free words are, for completion.
    pub operands: Operands,
    /// The flags completion offers (parsing may take more spellings, as `--yes`).
    pub flags: &'static [&'static str],
    /// Only meaningful in the interactive shell.
    pub shell_only: bool,
}

impl Spec {
    /// What a shell-only command says outside the shell.
    pub fn only_in_the_shell(&self) -> String {
        format!("`{}` works only in the shell", self.name)
    }

    /// `status [--json] [NAME...]`
    pub fn usage(&self) -> String {
        if self.args.is_empty() {
            self.name.to_string()
        } else {
            format!("{} {}", self.name, self.args)
        }
    }
}

/// A command, before its arguments are known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Status,
    Start,
    Stop,
    Restart,
    Reload,
    Shutdown,
    Watch,
    Pid,
    Version,
    Events,
    Help,
    Exit,
    /// Another name for [`Verb::Exit`]: it parses to [`Command::Exit`].
    Quit,
}

impl Verb {
    /// Every command, in the order `help` lists them. Invariant: each variant exactly once
    /// (completion offers these names and [`Verb::named`] finds a command among them).
    pub const ALL: [Verb; 13] = [
        Verb::Status,
        Verb::Start,
        Verb::Stop,
        Verb::Restart,
        Verb::Reload,
        Verb::Shutdown,
        Verb::Watch,
        Verb::Pid,
        Verb::Version,
        Verb::Events,
        Verb::Help,
        Verb::Exit,
        Verb::Quit,
    ];

    /// The command called `name`.
    pub fn named(name: &str) -> Option<Verb> {
        Verb::ALL.into_iter().find(|verb| verb.spec().name == name)
    }

    /// Its name, arguments and help.
    pub fn spec(self) -> &'static Spec {
        match self {
            Verb::Status => &Spec {
                name: "status",
                args: "[--json] [NAME...]",
                summary: "Show the state of all instances or those named.",
                details: "One line per instance: name, state, description. --json prints one \
                          JSON array of objects with the fields name, program, state, pid, \
                          uptime_secs, since, exit_code, signal, restarts, description and \
                          spawn_error.",
                operands: Operands::NamesOrAll,
                flags: &["--json"],
                shell_only: false,
            },
            Verb::Start => &Spec {
                name: "start",
                args: "NAME...|all",
                summary: "Start programs or instances.",
                details: "Waits until each is running or has failed; one line per instance.",
                operands: Operands::NamesOrAll,
                flags: &[],
                shell_only: false,
            },
            Verb::Stop => &Spec {
                name: "stop",
                args: "NAME...|all",
                summary: "Stop programs or instances.",
                details: "Waits until each has stopped; one line per instance.",
                operands: Operands::NamesOrAll,
                flags: &[],
                shell_only: false,
            },
            Verb::Restart => &Spec {
                name: "restart",
                args: "NAME...|all",
                summary: "Stop, then start programs or instances.",
                details: "Waits until each is running again or has failed; one line per \
                          instance.",
                operands: Operands::NamesOrAll,
                flags: &[],
                shell_only: false,
            },
            Verb::Reload => &Spec {
                name: "reload",
                args: "",
                summary: "Re-read the config file and apply what changed.",
                details: "Prints the programs added, changed, removed and unchanged; a config \
                          with errors is rejected whole and every error is printed.",
                operands: Operands::None,
                flags: &[],
                shell_only: false,
            },
            Verb::Shutdown => &Spec {
                name: "shutdown",
                args: "[-y]",
                summary: "Stop every program, then the daemon.",
                details: "The shell asks first unless -y is given.",
                operands: Operands::None,
                flags: &["-y"],
                shell_only: false,
            },
            Verb::Watch => &Spec {
                name: "watch",
                args: "[--json] [--since N] [NAME...]",
                summary: "Follow events until Ctrl-C.",
                details: "One line per event; --json prints one JSON object per line. \
                          --since N first replays the events the daemon kept after sequence \
                          number N.",
                operands: Operands::Names,
                flags: &["--json", "--since"],
                shell_only: false,
            },
            Verb::Pid => &Spec {
                name: "pid",
                args: "[NAME]",
                summary: "Print the pids of a program, or the daemon's.",
                details: "An instance that is not running is reported on stderr and fails the \
                          command.",
                operands: Operands::Names,
                flags: &[],
                shell_only: false,
            },
            Verb::Version => &Spec {
                name: "version",
                args: "",
                summary: "Print the versions of taskctl and taskmasterd.",
                details: "",
                operands: Operands::None,
                flags: &[],
                shell_only: false,
            },
            Verb::Events => &Spec {
                name: "events",
                args: "on|off",
                summary: "Show or hide live events above the prompt.",
                details: "",
                operands: Operands::OnOff,
                flags: &[],
                shell_only: true,
            },
            Verb::Help => &Spec {
                name: "help",
                args: "[COMMAND]",
                summary: "List the commands, or explain one.",
                details: "",
                operands: Operands::Command,
                flags: &[],
                shell_only: false,
            },
            Verb::Exit => &Spec {
                name: "exit",
                args: "",
                summary: "Leave the shell (also quit, Ctrl-D).",
                details: "",
                operands: Operands::None,
                flags: &[],
                shell_only: true,
            },
            Verb::Quit => &Spec {
                name: "quit",
                args: "",
                summary: "Leave the shell (also exit, Ctrl-D).",
                details: "",
                operands: Operands::None,
                flags: &[],
                shell_only: true,
            },
        }
    }
}

/// A parsed command line: a command with its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Status {
        /// Programs or instances; none means all.
        names: Vec<String>,
        json: bool,
    },
    Start {
        /// Programs or instances, or `all`; at least one.
        names: Vec<String>,
    },
    Stop {
        /// Programs or instances, or `all`; at least one.
        names: Vec<String>,
    },
    Restart {
        /// Programs or instances, or `all`; at least one.
        names: Vec<String>,
    },
    Reload,
    Shutdown {
        /// `-y`: the shell does not ask first.
        yes: bool,
    },
    Watch {
        /// Programs or instances to follow; none means all.
        names: Vec<String>,
        json: bool,
        /// `--since N`: first replay the events kept after sequence number N.
        since: Option<u64>,
    },
    Pid {
        /// A program or instance; `None` asks for the daemon's pid.
        name: Option<String>,
    },
    Version,
    Events {
        on: bool,
    },
    Help {
        /// The command to explain; always a known command's name.
        topic: Option<String>,
    },
    /// `exit` or `quit`.
    Exit,
}

impl Command {
    /// The command this is a call of; `quit` is [`Verb::Exit`].
    pub fn verb(&self) -> Verb {
        match self {
            Command::Status { .. } => Verb::Status,
            Command::Start { .. } => Verb::Start,
            Command::Stop { .. } => Verb::Stop,
            Command::Restart { .. } => Verb::Restart,
            Command::Reload => Verb::Reload,
            Command::Shutdown { .. } => Verb::Shutdown,
            Command::Watch { .. } => Verb::Watch,
            Command::Pid { .. } => Verb::Pid,
            Command::Version => Verb::Version,
            Command::Events { .. } => Verb::Events,
            Command::Help { .. } => Verb::Help,
            Command::Exit => Verb::Exit,
        }
    }

    pub fn spec(&self) -> &'static Spec {
        self.verb().spec()
    }
}

/// Where a command writes and how.
pub struct Output<'a> {
    /// Stdout, or a buffer in tests.
    pub out: &'a mut dyn Write,
    /// Whether states are coloured.
    pub palette: Palette,
}

impl Output<'_> {
    /// Writes `text` and flushes, so that each line shows as soon as it is known.
    fn write(&mut self, text: &str) -> Result<(), CtlError> {
        self.out
            .write_all(text.as_bytes())
            .and_then(|()| self.out.flush())
            .map_err(CtlError::Output)
    }
}

/// Runs `command` against the daemon of `connection`. Shell-only commands are refused: the
/// shell handles them itself.
pub async fn run(
    command: &Command,
    connection: &mut Connection,
    output: &mut Output<'_>,
) -> Result<Outcome, CtlError> {
    match command {
        Command::Status { names, json } => {
            instances::status(connection, output, names, *json).await
        }
        Command::Start { names } => instances::start(connection, output, names).await,
        Command::Stop { names } => instances::stop(connection, output, names).await,
        Command::Restart { names } => instances::restart(connection, output, names).await,
        Command::Reload => daemon::reload(connection, output).await,
        Command::Shutdown { .. } => daemon::shutdown(connection, output).await,
        Command::Watch { names, json, since } => {
            watch::watch(connection, output, names, *json, *since).await
        }
        Command::Pid { name } => instances::pid(connection, output, name.as_deref()).await,
        Command::Version => daemon::version(connection, output).await,
        Command::Help { topic } => help::help(output, topic.as_deref()),
        Command::Events { .. } => shell_only(Verb::Events),
        Command::Exit => shell_only(Verb::Exit),
    }
}

/// What a shell-only command does outside the shell: it is refused as a usage error.
fn shell_only(verb: Verb) -> Result<Outcome, CtlError> {
    let spec = verb.spec();
    Err(CtlError::Usage(UsageError {
        message: spec.only_in_the_shell(),
        spec: Some(spec),
    }))
}
