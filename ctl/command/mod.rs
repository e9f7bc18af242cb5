//! The commands of taskctl. [`Verb`] is the table: each command is one variant with its
//! [`Spec`] (name, arguments, help), and every use of a command (parsing for one-shot use and
//! the shell alike, completion, `help`, running it) reaches it through an exhaustive `match`.
//! [`Command`] is a parsed command line; [`run`] sends it to its one handler. One name per
//! command end to end: rpc `Stop` = [`Verb::Stop`] = [`Command::Stop`] = `taskctl stop` =
//! [`instances::stop`]; rpc `AlertsTest` = [`Verb::Alerts`] = [`Command::AlertsTest`] =
//! `taskctl alerts test` = [`alerts::test`].

mod alerts;
pub mod attach;
mod complete;
pub mod daemon;
mod help;
pub mod instances;
mod output;
mod parse;
mod stream;
mod watch;

use std::io::Write;

pub use complete::complete;
pub use help::overview;
pub use parse::{UsageError, parse};

use taskmaster::proto;

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
    /// One program or instance name.
    Name,
    /// One program or instance name, then `stdout` or `stderr`.
    NameThenStream,
    /// A command name.
    Command,
    /// `on` or `off`.
    OnOff,
    /// A signal (`USR1`), then program or instance names, or `all`.
    SignalThenNames,
    /// One of these words (what to do), then an argument completion cannot know.
    Action(&'static [&'static str]),
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
    Tail,
    MainTail,
    Clear,
    Reopen,
    Signal,
    Alerts,
    Attach,
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
    pub const ALL: [Verb; 20] = [
        Verb::Status,
        Verb::Start,
        Verb::Stop,
        Verb::Restart,
        Verb::Reload,
        Verb::Shutdown,
        Verb::Watch,
        Verb::Pid,
        Verb::Tail,
        Verb::MainTail,
        Verb::Clear,
        Verb::Reopen,
        Verb::Signal,
        Verb::Alerts,
        Verb::Attach,
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
                details: "One line per instance: name, state, description (which tells of \
                          output that could not be written, if any). Of one instance named, \
                          also the last lines of its stderr after an unexpected exit or a \
                          failed start. --json prints one JSON array of objects with the \
                          fields name, program, state, pid, uptime_secs, since, exit_code, \
                          signal, restarts, description and spawn_error, and last_stderr and \
                          output_dropped_bytes where they are not empty or 0.",
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
                args: "[-y] [--no-wait]",
                summary: "Stop every program, then the daemon.",
                details: "Returns once the daemon has exited (every program stopped, its socket \
                          and pidfile gone), so that a new daemon can start at once; --no-wait \
                          returns as soon as the daemon has the request. The shell asks first \
                          unless -y is given.",
                operands: Operands::None,
                flags: &["-y", "--no-wait"],
                shell_only: false,
            },
            Verb::Watch => &Spec {
                name: "watch",
                args: "[--json] [--since [RUN:]N] [NAME...]",
                summary: "Follow events until Ctrl-C.",
                details: "One line per event; --json prints one JSON object per line (with \
                          its run and seq). --since N first replays the events the daemon kept \
                          after sequence number N; --since RUN:N says which daemon run N \
                          counts in, and a daemon started since says its history restarted \
                          and replays all it kept.",
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
            Verb::Tail => &Spec {
                name: "tail",
                args: "[-f] [-n LINES] [--bytes N] NAME [stdout|stderr]",
                summary: "Print the last output of an instance.",
                details: "The last LINES lines (20 unless -n is given; -n 0 prints none) of \
                          its stdout, or of its stderr; --bytes N prints the last N bytes \
                          instead. -f then prints new output as it comes, across restarts, \
                          until Ctrl-C. A stream that is discarded cannot be tailed.",
                operands: Operands::NameThenStream,
                flags: &["-f", "-n", "--bytes"],
                shell_only: false,
            },
            Verb::MainTail => &Spec {
                name: "maintail",
                args: "[-f] [-n LINES] [--bytes N]",
                summary: "Print the end of the daemon's event log.",
                details: "As tail does for an instance: the last LINES lines (20 unless -n is \
                          given; -n 0 prints none) or the last N bytes; -f then follows the \
                          log until Ctrl-C.",
                operands: Operands::None,
                flags: &["-f", "-n", "--bytes"],
                shell_only: false,
            },
            Verb::Clear => &Spec {
                name: "clear",
                args: "NAME...|all",
                summary: "Empty the output files of instances.",
                details: "Empties the stdout and stderr files of each instance, and the output \
                          the daemon keeps for tail; one line per instance.",
                operands: Operands::NamesOrAll,
                flags: &[],
                shell_only: false,
            },
            Verb::Reopen => &Spec {
                name: "reopen",
                args: "",
                summary: "Reopen every output file (after logrotate).",
                details: "As SIGUSR1 to the daemon does. Each file that could not be reopened \
                          is reported, and fails the command.",
                operands: Operands::None,
                flags: &[],
                shell_only: false,
            },
            Verb::Signal => &Spec {
                name: "signal",
                args: "[--leader] SIGNAL NAME...|all",
                summary: "Send a signal to programs or instances.",
                details: "SIGNAL is a name or a number (USR1, SIGUSR1, 10). It goes to the \
                          process group of each running instance (the process the daemon \
                          started and what it forked there), or with --leader to that process \
                          only. One line per instance; one that is not running fails the \
                          command, and the others are signalled all the same.",
                operands: Operands::SignalThenNames,
                flags: &["--leader"],
                shell_only: false,
            },
            Verb::Alerts => &Spec {
                name: "alerts",
                args: "test RULE",
                summary: "Send a test alert through a rule's sinks.",
                details: "Each sink of the rule (alerts.rules in the config) is sent one test \
                          alert at once, beside what waits in its queue; one line per sink \
                          says whether it took it, and how many alerts it could not deliver \
                          or dropped so far. Fails when a sink did not take it.",
                operands: Operands::Action(&["test"]),
                flags: &[],
                shell_only: false,
            },
            Verb::Attach => &Spec {
                name: "attach",
                args: "[--read-only] [--detach-keys KEYS] NAME",
                summary: "Connect the terminal to a running instance.",
                details: "For a program with tty: true: its recent screen, then every key \
                          goes to it (Ctrl-C too) and its window follows this one's; Ctrl-] \
                          (or the --detach-keys, as docker spells them: ctrl-p,ctrl-q) \
                          detaches and the program goes on running. Without a terminal: its \
                          output as it comes, and each line typed goes to its stdin if it has \
                          stdin: pipe; Ctrl-D or Ctrl-C detaches. --read-only only watches. \
                          When the process ends, how it ended is printed.",
                operands: Operands::Name,
                flags: &["--read-only", "--detach-keys"],
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
        /// `--no-wait`: return once the daemon has the request, not once it has exited.
        no_wait: bool,
    },
    Watch {
        /// Programs or instances to follow; none means all.
        names: Vec<String>,
        json: bool,
        /// `--since [RUN:]N`: first replay the events kept after sequence number N (of run
        /// RUN).
        since: Option<Since>,
    },
    Pid {
        /// A program or instance; `None` asks for the daemon's pid.
        name: Option<String>,
    },
    Tail {
        /// One program or instance.
        name: String,
        stream: proto::Stream,
        tail: TailOptions,
    },
    MainTail {
        tail: TailOptions,
    },
    Clear {
        /// Programs or instances, or `all`; at least one.
        names: Vec<String>,
    },
    Reopen,
    Signal {
        /// As written: a name or a number; the daemon reads it.
        signal: String,
        /// Programs or instances, or `all`; at least one.
        names: Vec<String>,
        /// `--leader`: to the process the daemon started only, not its process group.
        leader: bool,
    },
    /// `alerts test RULE`.
    AlertsTest {
        rule: String,
    },
    /// `attach NAME`.
    Attach {
        /// One instance.
        name: String,
        /// `--read-only`: watch without sending input.
        read_only: bool,
        /// `--detach-keys KEYS`, else Ctrl-].
        detach_keys: attach::DetachKeys,
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
            Command::Tail { .. } => Verb::Tail,
            Command::MainTail { .. } => Verb::MainTail,
            Command::Clear { .. } => Verb::Clear,
            Command::Reopen => Verb::Reopen,
            Command::Signal { .. } => Verb::Signal,
            Command::AlertsTest { .. } => Verb::Alerts,
            Command::Attach { .. } => Verb::Attach,
            Command::Version => Verb::Version,
            Command::Events { .. } => Verb::Events,
            Command::Help { .. } => Verb::Help,
            Command::Exit => Verb::Exit,
        }
    }

    pub fn spec(&self) -> &'static Spec {
        self.verb().spec()
    }

    /// Whether it prints things as they happen (events, output), so that the shell's feed
    /// keeps its event lines back meanwhile rather than mix them in.
    pub fn streams(&self) -> bool {
        matches!(
            self,
            Command::Watch { .. }
                | Command::Tail { .. }
                | Command::MainTail { .. }
                | Command::Attach { .. }
        )
    }
}

/// How much output `tail` and `maintail` print first, and whether they follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TailOptions {
    /// `-n LINES`: the last lines.
    pub lines: u32,
    /// `--bytes N`: the last bytes instead.
    pub bytes: Option<u64>,
    /// `-f`: then new output until Ctrl-C.
    pub follow: bool,
}

impl TailOptions {
    /// Lines when none are asked for.
    pub const DEFAULT_LINES: u32 = 20;

    /// `lines` and `bytes` as the RPCs take them: there `lines: 0` means the default, so no
    /// lines at all is asked as no bytes.
    fn request(self) -> (u32, Option<u64>) {
        match self.bytes {
            None if self.lines == 0 => (0, Some(0)),
            bytes => (self.lines, bytes),
        }
    }
}

/// The flags that take a value (the next word), for completion.
/// Where `watch --since` resumes: after sequence number `seq` of daemon run `run` (the
/// daemon's own run when `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Since {
    pub run: Option<u64>,
    pub seq: u64,
}

impl std::str::FromStr for Since {
    type Err = std::num::ParseIntError;

    /// `SEQ` or `RUN:SEQ`.
    fn from_str(text: &str) -> Result<Since, Self::Err> {
        match text.split_once(':') {
            Some((run, seq)) => Ok(Since {
                run: Some(run.parse()?),
                seq: seq.parse()?,
            }),
            None => Ok(Since {
                run: None,
                seq: text.parse()?,
            }),
        }
    }
}

pub const VALUE_FLAGS: [&str; 5] = ["--since", "-n", "--lines", "--bytes", "--detach-keys"];

/// Where a command writes and how.
pub struct Output<'a> {
    /// Stdout, or a buffer (of one host among several, or in tests).
    pub out: &'a mut dyn Write,
    /// Whether states are coloured.
    pub palette: Palette,
    /// With several hosts, the one this output is of: each line is tagged with it. `None`
    /// with one host, whose output is as it always was.
    pub host: Option<&'a HostTag>,
}

/// The host a command's output is of, when it runs on several.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostTag {
    /// The host's name.
    pub name: String,
    /// How each of its lines starts: the name padded to the widest of the hosts, two spaces.
    prefix: String,
}

impl HostTag {
    /// The tags of `names`, aligned with each other.
    pub fn all(names: &[&str]) -> Vec<HostTag> {
        let width = names.iter().map(|name| name.chars().count()).max();
        let width = width.unwrap_or(0);
        names
            .iter()
            .map(|name| HostTag {
                name: name.to_string(),
                prefix: format!("{name:<width$}  "),
            })
            .collect()
    }

    /// `text` with each line started by the tag.
    pub fn tag(&self, text: &str) -> String {
        let mut tagged = String::with_capacity(text.len() + self.prefix.len());
        for line in text.split_inclusive('\n') {
            tagged.push_str(&self.prefix);
            tagged.push_str(line);
        }
        tagged
    }
}

impl Output<'_> {
    /// Writes `text` (whole lines), each line tagged with the host if there is one, and
    /// flushes, so that each line shows as soon as it is known.
    fn write(&mut self, text: &str) -> Result<(), CtlError> {
        match self.host {
            Some(host) => {
                let tagged = host.tag(text);
                self.write_bytes(tagged.as_bytes())
            }
            None => self.write_bytes(text.as_bytes()),
        }
    }

    /// Writes `bytes` as they are (program output, JSON that names its host) and flushes.
    fn write_bytes(&mut self, bytes: &[u8]) -> Result<(), CtlError> {
        self.out
            .write_all(bytes)
            .and_then(|()| self.out.flush())
            .map_err(CtlError::Output)
    }

    /// Tells `text` on stderr (a notice, or what failed without failing the command), as
    /// `HOST: text` with several hosts.
    fn warn(&self, text: &str) {
        match self.host {
            Some(host) => eprintln!("{}: {text}", host.name),
            None => eprintln!("{text}"),
        }
    }

    /// The host's name, for JSON; `None` with one host.
    fn host_name(&self) -> Option<&str> {
        self.host.map(|host| host.name.as_str())
    }
}

/// Runs `command` against the daemon of `connection`. Shell-only commands are refused: the
/// shell handles them itself.
pub async fn run(
    command: &Command,
    connection: &mut Connection,
    output: &mut Output<'_>,
) -> Result<Outcome, CtlError> {
    let outcome = match command {
        Command::Status { names, json } => {
            instances::status(connection, output, names, *json).await
        }
        Command::Start { names } => instances::start(connection, output, names).await,
        Command::Stop { names } => instances::stop(connection, output, names).await,
        Command::Restart { names } => instances::restart(connection, output, names).await,
        Command::Reload => daemon::reload(connection, output).await,
        Command::Shutdown { no_wait, .. } => daemon::shutdown(connection, output, *no_wait).await,
        Command::Watch { names, json, since } => {
            watch::watch(connection, output, names, *json, *since).await
        }
        Command::Pid { name } => instances::pid(connection, output, name.as_deref()).await,
        Command::Tail { name, stream, tail } => {
            output::tail(connection, output, name, *stream, *tail).await
        }
        Command::MainTail { tail } => output::main_tail(connection, output, *tail).await,
        Command::Clear { names } => output::clear(connection, output, names).await,
        Command::Reopen => output::reopen(connection, output).await,
        Command::Signal {
            signal,
            names,
            leader,
        } => instances::signal(connection, output, signal, names, *leader).await,
        Command::AlertsTest { rule } => alerts::test(connection, output, rule).await,
        Command::Attach {
            name,
            read_only,
            detach_keys,
        } => attach::attach(connection, output, name, *read_only, detach_keys).await,
        Command::Version => daemon::version(connection, output).await,
        Command::Help { topic } => help::help(output, topic.as_deref()),
        Command::Events { .. } => shell_only(Verb::Events),
        Command::Exit => shell_only(Verb::Exit),
    };
    outcome.map_err(|error| error.in_command(command.spec().name))
}

/// What a shell-only command does outside the shell: it is refused as a usage error.
fn shell_only(verb: Verb) -> Result<Outcome, CtlError> {
    let spec = verb.spec();
    Err(CtlError::Usage(UsageError {
        message: spec.only_in_the_shell(),
        spec: Some(spec),
    }))
}
