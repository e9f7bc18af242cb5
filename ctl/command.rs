//! The commands of taskctl: one table of names, arguments and help ([`COMMANDS`]) that drives
//! parsing for one-shot use and the shell alike, completion and `help`; and one function per
//! command that runs it against the daemon (rpc `Stop` = `taskctl stop` = [`stop`]).

use std::{fmt, io, io::Write};

use taskmaster::{
    endpoint::{self, EndpointError, Target},
    proto::{self, EventKind, taskmaster_client::TaskmasterClient},
};
use tokio::io::{Interest, unix::AsyncFd};
use tonic::{Code, transport::Channel};

use crate::render::{self, Palette};

pub type Client = TaskmasterClient<Channel>;

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

/// One command: its name, its arguments as `help` shows them, and what it does.
#[derive(Debug, PartialEq, Eq)]
pub struct Spec {
    /// The word that calls it; also the name of its RPC and of its function here.
    pub name: &'static str,
    /// Its arguments as usage shows them.
    pub args: &'static str,
    /// One line for the list of commands.
    pub summary: &'static str,
    /// More for `help COMMAND`; may be empty.
    pub details: &'static str,
    /// What its free words are, for completion.
    pub operands: Operands,
    /// The flags it takes.
    pub flags: &'static [&'static str],
    /// Only meaningful in the interactive shell.
    pub shell_only: bool,
}

impl Spec {
    /// `status [--json] [NAME...]`
    pub fn usage(&self) -> String {
        if self.args.is_empty() {
            self.name.to_string()
        } else {
            format!("{} {}", self.name, self.args)
        }
    }
}

/// Every command, in the order `help` lists them.
pub const COMMANDS: &[Spec] = &[
    Spec {
        name: "status",
        args: "[--json] [NAME...]",
        summary: "Show the state of all instances or those named.",
        details: "One line per instance: name, state, description. --json prints one JSON \
                  array of objects with the fields name, program, state, pid, uptime_secs, \
                  since, exit_code, signal, restarts, description and spawn_error.",
        operands: Operands::NamesOrAll,
        flags: &["--json"],
        shell_only: false,
    },
    Spec {
        name: "start",
        args: "NAME...|all",
        summary: "Start programs or instances.",
        details: "Waits until each is running or has failed; one line per instance.",
        operands: Operands::NamesOrAll,
        flags: &[],
        shell_only: false,
    },
    Spec {
        name: "stop",
        args: "NAME...|all",
        summary: "Stop programs or instances.",
        details: "Waits until each has stopped; one line per instance.",
        operands: Operands::NamesOrAll,
        flags: &[],
        shell_only: false,
    },
    Spec {
        name: "restart",
        args: "NAME...|all",
        summary: "Stop, then start programs or instances.",
        details: "Waits until each is running again or has failed; one line per instance.",
        operands: Operands::NamesOrAll,
        flags: &[],
        shell_only: false,
    },
    Spec {
        name: "reload",
        args: "",
        summary: "Re-read the config file and apply what changed.",
        details: "Prints the programs added, changed, removed and unchanged; a config with \
                  errors is rejected whole and every error is printed.",
        operands: Operands::None,
        flags: &[],
        shell_only: false,
    },
    Spec {
        name: "shutdown",
        args: "[-y]",
        summary: "Stop every program, then the daemon.",
        details: "The shell asks first unless -y is given.",
        operands: Operands::None,
        flags: &["-y"],
        shell_only: false,
    },
    Spec {
        name: "watch",
        args: "[--json] [--since N] [NAME...]",
        summary: "Follow events until Ctrl-C.",
        details: "One line per event; --json prints one JSON object per line. --since N first \
                  replays the events the daemon kept after sequence number N.",
        operands: Operands::Names,
        flags: &["--json", "--since"],
        shell_only: false,
    },
    Spec {
        name: "pid",
        args: "[NAME]",
        summary: "Print the pids of a program, or the daemon's.",
        details: "An instance that is not running is reported on stderr and fails the command.",
        operands: Operands::Names,
        flags: &[],
        shell_only: false,
    },
    Spec {
        name: "version",
        args: "",
        summary: "Print the versions of taskctl and taskmasterd.",
        details: "",
        operands: Operands::None,
        flags: &[],
        shell_only: false,
    },
    Spec {
        name: "events",
        args: "on|off",
        summary: "Show or hide live events above the prompt.",
        details: "",
        operands: Operands::OnOff,
        flags: &[],
        shell_only: true,
    },
    Spec {
        name: "help",
        args: "[COMMAND]",
        summary: "List the commands, or explain one.",
        details: "",
        operands: Operands::Command,
        flags: &[],
        shell_only: false,
    },
    Spec {
        name: "exit",
        args: "",
        summary: "Leave the shell (also quit, Ctrl-D).",
        details: "",
        operands: Operands::None,
        flags: &[],
        shell_only: true,
    },
    Spec {
        name: "quit",
        args: "",
        summary: "Leave the shell (also exit, Ctrl-D).",
        details: "",
        operands: Operands::None,
        flags: &[],
        shell_only: true,
    },
];

/// The command named `name`.
pub fn lookup(name: &str) -> Option<&'static Spec> {
    COMMANDS.iter().find(|spec| spec.name == name)
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Status {
        names: Vec<String>,
        json: bool,
    },
    Start {
        names: Vec<String>,
    },
    Stop {
        names: Vec<String>,
    },
    Restart {
        names: Vec<String>,
    },
    Reload,
    Shutdown {
        yes: bool,
    },
    Watch {
        names: Vec<String>,
        json: bool,
        since: Option<u64>,
    },
    Pid {
        name: Option<String>,
    },
    Version,
    Events {
        on: bool,
    },
    Help {
        topic: Option<String>,
    },
    Exit,
}

impl Command {
    pub fn spec(&self) -> &'static Spec {
        let name = match self {
            Command::Status { .. } => "status",
            Command::Start { .. } => "start",
            Command::Stop { .. } => "stop",
            Command::Restart { .. } => "restart",
            Command::Reload => "reload",
            Command::Shutdown { .. } => "shutdown",
            Command::Watch { .. } => "watch",
            Command::Pid { .. } => "pid",
            Command::Version => "version",
            Command::Events { .. } => "events",
            Command::Help { .. } => "help",
            Command::Exit => "exit",
        };
        lookup(name).expect("every command is in the table")
    }
}

/// A command line that does not parse; displays the problem and the usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError {
    /// What is wrong, in one line.
    pub message: String,
    /// The command it is about; `None` for an unknown command.
    pub spec: Option<&'static Spec>,
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.spec {
            Some(spec) => write!(f, "{}\nusage: {}", self.message, spec.usage()),
            None => write!(f, "{}\n{}", self.message, overview().trim_end()),
        }
    }
}

impl std::error::Error for UsageError {}

/// Parses the words of a command line (`["start", "web"]`).
pub fn parse(words: &[String]) -> Result<Command, UsageError> {
    let Some((name, rest)) = words.split_first() else {
        return Err(UsageError {
            message: "no command given".into(),
            spec: None,
        });
    };
    let Some(spec) = lookup(name) else {
        return Err(UsageError {
            message: format!("unknown command `{name}`"),
            spec: None,
        });
    };
    let usage = |message: String| UsageError {
        message,
        spec: Some(spec),
    };
    let mut words = Words::new(rest);
    let mut json = false;
    let mut yes = false;
    let mut since = None;
    while let Some(flag) = words.next_flag() {
        match (spec.name, flag) {
            ("status" | "watch", "--json") => json = true,
            ("shutdown", "-y" | "--yes") => yes = true,
            ("watch", "--since") => {
                let value = words
                    .value()
                    .ok_or_else(|| usage("--since needs a sequence number".into()))?;
                since = Some(value.parse::<u64>().map_err(|_| {
                    usage(format!("--since needs a sequence number, not `{value}`"))
                })?);
            }
            (_, flag) => return Err(usage(format!("unknown option `{flag}`"))),
        }
    }
    let operands = words.operands;
    let none = |command: Command| {
        if operands.is_empty() {
            Ok(command)
        } else {
            Err(usage(format!("unexpected argument `{}`", operands[0])))
        }
    };
    let some = |operands: Vec<String>| {
        if operands.is_empty() {
            Err(usage(format!(
                "{} needs at least one name (or all)",
                spec.name
            )))
        } else {
            Ok(operands)
        }
    };
    let at_most_one = |operands: Vec<String>| match operands.len() {
        0 | 1 => Ok(operands.into_iter().next()),
        _ => Err(usage(format!("unexpected argument `{}`", operands[1]))),
    };
    match spec.name {
        "status" => Ok(Command::Status {
            names: operands,
            json,
        }),
        "start" => Ok(Command::Start {
            names: some(operands)?,
        }),
        "stop" => Ok(Command::Stop {
            names: some(operands)?,
        }),
        "restart" => Ok(Command::Restart {
            names: some(operands)?,
        }),
        "reload" => none(Command::Reload),
        "shutdown" => none(Command::Shutdown { yes }),
        "watch" => Ok(Command::Watch {
            names: operands,
            json,
            since,
        }),
        "pid" => Ok(Command::Pid {
            name: at_most_one(operands)?,
        }),
        "version" => none(Command::Version),
        "events" => match operands.as_slice() {
            [word] if word == "on" => Ok(Command::Events { on: true }),
            [word] if word == "off" => Ok(Command::Events { on: false }),
            _ => Err(usage("say `events on` or `events off`".into())),
        },
        "help" => {
            let topic = at_most_one(operands)?;
            match topic {
                Some(topic) if lookup(&topic).is_none() => Err(UsageError {
                    message: format!("unknown command `{topic}`"),
                    spec: None,
                }),
                topic => Ok(Command::Help { topic }),
            }
        }
        "exit" | "quit" => none(Command::Exit),
        other => unreachable!("command `{other}` has no parser"),
    }
}

/// Splits words into flags (with their values) and operands; `--` ends the flags.
struct Words<'a> {
    /// The words not looked at yet.
    rest: std::slice::Iter<'a, String>,
    /// The words that are not flags, in order.
    operands: Vec<String>,
    /// `--` was met: every word after it is an operand.
    flags_done: bool,
}

impl<'a> Words<'a> {
    fn new(words: &'a [String]) -> Self {
        Words {
            rest: words.iter(),
            operands: Vec::new(),
            flags_done: false,
        }
    }

    /// The next flag; operands met on the way are kept.
    fn next_flag(&mut self) -> Option<&'a str> {
        for word in self.rest.by_ref() {
            if !self.flags_done && word == "--" {
                self.flags_done = true;
            } else if !self.flags_done && word.len() > 1 && word.starts_with('-') {
                return Some(word);
            } else {
                self.operands.push(word.clone());
            }
        }
        None
    }

    /// The value of the flag just returned.
    fn value(&mut self) -> Option<&'a str> {
        self.rest.next().map(String::as_str)
    }
}

/// What `help` prints: every command with its arguments and help.
pub fn overview() -> String {
    let width = COMMANDS
        .iter()
        .map(|spec| spec.usage().len())
        .max()
        .unwrap_or(0);
    let mut text = String::from("commands:\n");
    for spec in COMMANDS {
        text.push_str(&format!("  {:<width$}  {}\n", spec.usage(), spec.summary));
    }
    text
}

/// What `help COMMAND` prints.
fn details(spec: &Spec) -> String {
    let mut text = format!("usage: {}\n  {}\n", spec.usage(), spec.summary);
    if !spec.details.is_empty() {
        text.push_str(&format!("  {}\n", spec.details));
    }
    if spec.shell_only {
        text.push_str("  (in the shell only)\n");
    }
    text
}

/// Completes the word that ends `line` (the text before the cursor). Returns where that word
/// starts and the candidates, sorted. `names` are the known program and instance names.
pub fn complete(line: &str, names: &[String]) -> (usize, Vec<String>) {
    let start = line.rfind(char::is_whitespace).map_or(0, |index| index + 1);
    let word = &line[start..];
    let before: Vec<&str> = line[..start].split_whitespace().collect();
    let mut candidates: Vec<String> = match before.first() {
        None => COMMANDS.iter().map(|spec| spec.name.to_string()).collect(),
        Some(name) => match lookup(name) {
            None => Vec::new(),
            Some(_) if before.last() == Some(&"--since") => Vec::new(),
            Some(spec) if word.starts_with('-') => {
                spec.flags.iter().map(|flag| flag.to_string()).collect()
            }
            Some(spec) => match spec.operands {
                Operands::None => Vec::new(),
                Operands::Names => names.to_vec(),
                Operands::NamesOrAll => {
                    let mut all = names.to_vec();
                    all.push("all".to_string());
                    all
                }
                Operands::Command => COMMANDS.iter().map(|spec| spec.name.to_string()).collect(),
                Operands::OnOff => vec!["on".to_string(), "off".to_string()],
            },
        },
    };
    candidates.retain(|candidate| candidate.starts_with(word));
    candidates.sort();
    candidates.dedup();
    (start, candidates)
}

/// Why a command failed. Each kind has its exit status ([`CtlError::exit_code`]).
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error(transparent)]
    Usage(#[from] UsageError),
    #[error(transparent)]
    Unreachable(#[from] EndpointError),
    #[error("lost connection to taskmasterd at {target}: {reason}")]
    Lost { target: Target, reason: String },
    /// The daemon refused: an unknown name, shutting down...
    #[error("{}", .0.message())]
    Refused(tonic::Status),
    #[error("reload rejected; the config has errors:\n{0}")]
    Rejected(String),
    #[error("cannot write the output: {0}")]
    Output(io::Error),
}

impl CtlError {
    /// 1: a command failed; 2: usage; 3: the daemon is unreachable. A closed output pipe
    /// (`taskctl status | head -1`) is success.
    pub fn exit_code(&self) -> u8 {
        match self {
            CtlError::Usage(_) => 2,
            CtlError::Unreachable(_) | CtlError::Lost { .. } => 3,
            CtlError::Refused(_) | CtlError::Rejected(_) => 1,
            CtlError::Output(error) if error.kind() == io::ErrorKind::BrokenPipe => 0,
            CtlError::Output(_) => 1,
        }
    }

    /// Whether to say anything: a reader that went away needs no message.
    pub fn is_silent(&self) -> bool {
        matches!(self, CtlError::Output(error) if error.kind() == io::ErrorKind::BrokenPipe)
    }
}

/// How a command that ran went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// It ran, but something it was asked to do failed (exit status 1).
    Failed,
}

impl Outcome {
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Success => 0,
            Outcome::Failed => 1,
        }
    }
}

/// Reports a failure on stderr; gives the exit status of a command that ran.
pub fn report(outcome: Result<Outcome, CtlError>) -> u8 {
    match outcome {
        Ok(outcome) => outcome.exit_code(),
        Err(error) => {
            if !error.is_silent() {
                eprintln!("{error}");
            }
            error.exit_code()
        }
    }
}

/// The way to one daemon: connects on first use and again after the connection was lost.
pub struct Connection {
    /// Where the daemon listens.
    target: Target,
    /// The connected client; `None` before the first command and after a lost connection.
    client: Option<Client>,
}

impl Connection {
    pub fn new(target: Target) -> Self {
        Connection {
            target,
            client: None,
        }
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// A client; connects if there is none.
    pub async fn client(&mut self) -> Result<Client, CtlError> {
        if let Some(client) = &self.client {
            return Ok(client.clone());
        }
        let channel = endpoint::connect(&self.target).await?;
        let client = endpoint::client(channel);
        self.client = Some(client.clone());
        Ok(client)
    }

    /// The client of the current connection, if there is one; never connects.
    pub fn cached_client(&self) -> Option<Client> {
        self.client.clone()
    }

    /// Awaits an RPC and unwraps its answer; a failure becomes a [`CtlError`].
    pub async fn answer<T>(
        &mut self,
        call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, CtlError> {
        match call.await {
            Ok(response) => Ok(response.into_inner()),
            Err(status) => Err(self.failure(status).await),
        }
    }

    /// Turns an RPC failure into a [`CtlError`]. When the connection broke, says whether the
    /// daemon is gone (it cannot be reached now) or the call was cut; the next command
    /// connects again.
    pub async fn failure(&mut self, status: tonic::Status) -> CtlError {
        if !is_lost(&status) {
            return CtlError::Refused(status);
        }
        self.client = None;
        if let Err(unreachable) = endpoint::connect(&self.target).await {
            return CtlError::Unreachable(unreachable);
        }
        CtlError::Lost {
            target: self.target.clone(),
            reason: status.message().to_string(),
        }
    }
}

/// Whether an RPC failed because the connection did, rather than because the daemon said no.
pub fn is_lost(status: &tonic::Status) -> bool {
    match status.code() {
        Code::Unavailable | Code::Cancelled => true,
        // h2 reports a connection reset mid-call as an unknown error.
        Code::Unknown => status.message().contains("transport") || status.message().contains("h2"),
        _ => false,
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
        Command::Status { names, json } => status(connection, output, names, *json).await,
        Command::Start { names } => start(connection, output, names).await,
        Command::Stop { names } => stop(connection, output, names).await,
        Command::Restart { names } => restart(connection, output, names).await,
        Command::Reload => reload(connection, output).await,
        Command::Shutdown { .. } => shutdown(connection, output).await,
        Command::Watch { names, json, since } => {
            watch(connection, output, names, *json, *since).await
        }
        Command::Pid { name } => pid(connection, output, name.as_deref()).await,
        Command::Version => version(connection, output).await,
        Command::Help { topic } => help(output, topic.as_deref()),
        Command::Events { .. } | Command::Exit => Err(CtlError::Usage(UsageError {
            message: format!("`{}` works only in the shell", command.spec().name),
            spec: Some(command.spec()),
        })),
    }
}

pub async fn status(
    connection: &mut Connection,
    output: &mut Output<'_>,
    names: &[String],
    json: bool,
) -> Result<Outcome, CtlError> {
    let mut client = connection.client().await?;
    let request = proto::StatusRequest {
        names: names.to_vec(),
    };
    let response = connection.answer(client.status(request)).await?;
    if json {
        output.write(&render::status_json(&response.instances))?;
    } else {
        output.write(&render::status_table(&response.instances, output.palette))?;
    }
    Ok(Outcome::Success)
}

pub async fn start(
    connection: &mut Connection,
    output: &mut Output<'_>,
    names: &[String],
) -> Result<Outcome, CtlError> {
    let mut client = connection.client().await?;
    let request = proto::StartRequest {
        names: names.to_vec(),
        no_wait: false,
    };
    let response = connection.answer(client.start(request)).await?;
    action_done(output, &response)
}

pub async fn stop(
    connection: &mut Connection,
    output: &mut Output<'_>,
    names: &[String],
) -> Result<Outcome, CtlError> {
    let mut client = connection.client().await?;
    let request = proto::StopRequest {
        names: names.to_vec(),
        no_wait: false,
    };
    let response = connection.answer(client.stop(request)).await?;
    action_done(output, &response)
}

pub async fn restart(
    connection: &mut Connection,
    output: &mut Output<'_>,
    names: &[String],
) -> Result<Outcome, CtlError> {
    let mut client = connection.client().await?;
    let request = proto::RestartRequest {
        names: names.to_vec(),
        no_wait: false,
    };
    let response = connection.answer(client.restart(request)).await?;
    action_done(output, &response)
}

/// Prints the per-instance results of start, stop or restart; failed if any instance failed.
fn action_done(
    output: &mut Output<'_>,
    response: &proto::ActionResponse,
) -> Result<Outcome, CtlError> {
    output.write(&render::action_results(response))?;
    if response.results.iter().all(|result| result.ok) {
        Ok(Outcome::Success)
    } else {
        Ok(Outcome::Failed)
    }
}

pub async fn reload(
    connection: &mut Connection,
    output: &mut Output<'_>,
) -> Result<Outcome, CtlError> {
    let mut client = connection.client().await?;
    match client.reload(proto::ReloadRequest {}).await {
        Ok(response) => {
            output.write(&render::reload_summary(&response.into_inner()))?;
            Ok(Outcome::Success)
        }
        Err(status) if status.code() == Code::InvalidArgument => {
            Err(CtlError::Rejected(status.message().to_string()))
        }
        Err(status) => Err(connection.failure(status).await),
    }
}

pub async fn shutdown(
    connection: &mut Connection,
    output: &mut Output<'_>,
) -> Result<Outcome, CtlError> {
    let mut client = connection.client().await?;
    connection
        .answer(client.shutdown(proto::ShutdownRequest {}))
        .await?;
    output.write("taskmasterd is shutting down\n")?;
    Ok(Outcome::Success)
}

/// Prints events until the stream ends. Ending after the daemon said it was stopping is
/// success; any other end is a lost connection.
pub async fn watch(
    connection: &mut Connection,
    output: &mut Output<'_>,
    names: &[String],
    json: bool,
    since: Option<u64>,
) -> Result<Outcome, CtlError> {
    let mut client = connection.client().await?;
    let request = proto::WatchEventsRequest {
        names: names.to_vec(),
        since,
    };
    let mut events = connection.answer(client.watch_events(request)).await?;
    let mut daemon_stopping = false;
    let reader_gone = reader_gone();
    tokio::pin!(reader_gone);
    loop {
        let message = tokio::select! {
            message = events.message() => message,
            () = &mut reader_gone => {
                return Err(CtlError::Output(io::ErrorKind::BrokenPipe.into()));
            }
        };
        match message {
            Ok(Some(event)) => {
                daemon_stopping |= event.kind() == EventKind::DaemonStopping;
                let line = if json {
                    render::event_json(&event)
                } else {
                    render::event_line(&event, &chrono::Local, output.palette)
                };
                output.write(&(line + "\n"))?;
            }
            Ok(None) if daemon_stopping => return Ok(Outcome::Success),
            Ok(None) => {
                return Err(CtlError::Lost {
                    target: connection.target().clone(),
                    reason: "the event stream ended".into(),
                });
            }
            Err(status) => return Err(connection.failure(status).await),
        }
    }
}

/// Resolves when the reader of stdout has gone (`taskctl watch | head -3`), so `watch` ends
/// then rather than at the next event. Never resolves where that cannot be known (a file).
async fn reader_gone() {
    use std::os::fd::AsFd;
    let Ok(stdout) = io::stdout().as_fd().try_clone_to_owned() else {
        return std::future::pending().await;
    };
    // SAFETY: the AsyncFd owns this duplicate of stdout, so it stays open, and names the
    // same open file, for as long as the AsyncFd lives.
    match unsafe { AsyncFd::register_with_interest(stdout, Interest::ERROR) } {
        Ok(stdout) => {
            let _ = stdout.ready(Interest::ERROR).await;
        }
        Err(_) => std::future::pending().await,
    }
}

/// The pids of the instances of `name`, or the daemon's pid. An instance without a process is
/// reported on stderr and fails the command, so `kill $(taskctl pid web)` never sees a 0.
pub async fn pid(
    connection: &mut Connection,
    output: &mut Output<'_>,
    name: Option<&str>,
) -> Result<Outcome, CtlError> {
    let mut client = connection.client().await?;
    let request = proto::StatusRequest {
        names: name.map(str::to_string).into_iter().collect(),
    };
    let response = connection.answer(client.status(request)).await?;
    if name.is_none() {
        let pid = response.daemon.map_or(0, |daemon| daemon.pid);
        output.write(&format!("{pid}\n"))?;
        return Ok(Outcome::Success);
    }
    let mut outcome = Outcome::Success;
    for instance in &response.instances {
        if instance.pid == 0 {
            eprintln!("{}: not running", instance.name);
            outcome = Outcome::Failed;
        } else {
            output.write(&format!("{}\n", instance.pid))?;
        }
    }
    Ok(outcome)
}

pub async fn version(
    connection: &mut Connection,
    output: &mut Output<'_>,
) -> Result<Outcome, CtlError> {
    output.write(&format!("taskctl {}\n", env!("CARGO_PKG_VERSION")))?;
    let mut client = connection.client().await?;
    let request = proto::StatusRequest { names: Vec::new() };
    let response = connection.answer(client.status(request)).await?;
    let daemon_version = response.daemon.map(|daemon| daemon.version);
    output.write(&format!(
        "taskmasterd {}\n",
        daemon_version.as_deref().unwrap_or("(unknown)")
    ))?;
    Ok(Outcome::Success)
}

pub fn help(output: &mut Output<'_>, topic: Option<&str>) -> Result<Outcome, CtlError> {
    let text = match topic.and_then(lookup) {
        Some(spec) => details(spec),
        None => overview(),
    };
    output.write(&text)?;
    Ok(Outcome::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        shell_words::split(line).unwrap()
    }

    fn parsed(line: &str) -> Command {
        parse(&words(line)).unwrap_or_else(|error| panic!("{line}: {error}"))
    }

    fn refused(line: &str) -> String {
        match parse(&words(line)) {
            Ok(command) => panic!("{line} parsed as {command:?}"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn every_command_parses() {
        let names = |list: &[&str]| list.iter().map(|name| name.to_string()).collect();
        assert_eq!(
            parsed("status"),
            Command::Status {
                names: vec![],
                json: false
            }
        );
        assert_eq!(
            parsed("status --json web db"),
            Command::Status {
                names: names(&["web", "db"]),
                json: true
            }
        );
        assert_eq!(
            parsed("start web:0 all"),
            Command::Start {
                names: names(&["web:0", "all"])
            }
        );
        assert_eq!(
            parsed("stop web"),
            Command::Stop {
                names: names(&["web"])
            }
        );
        assert_eq!(
            parsed("restart all"),
            Command::Restart {
                names: names(&["all"])
            }
        );
        assert_eq!(parsed("reload"), Command::Reload);
        assert_eq!(parsed("shutdown"), Command::Shutdown { yes: false });
        assert_eq!(parsed("shutdown -y"), Command::Shutdown { yes: true });
        assert_eq!(
            parsed("watch web --since 12 --json"),
            Command::Watch {
                names: names(&["web"]),
                json: true,
                since: Some(12)
            }
        );
        assert_eq!(parsed("pid"), Command::Pid { name: None });
        assert_eq!(
            parsed("pid web"),
            Command::Pid {
                name: Some("web".into())
            }
        );
        assert_eq!(parsed("version"), Command::Version);
        assert_eq!(parsed("events off"), Command::Events { on: false });
        assert_eq!(
            parsed("help stop"),
            Command::Help {
                topic: Some("stop".into())
            }
        );
        assert_eq!(parsed("quit"), Command::Exit);
        assert_eq!(parsed("exit"), Command::Exit);
    }

    #[test]
    fn every_spec_has_a_command_and_back() {
        for spec in COMMANDS {
            assert!(spec.summary.ends_with('.'), "{}", spec.name);
            assert!(spec.summary.len() <= 50, "{}", spec.name);
            if spec.name != "quit" {
                let mut line = vec![spec.name.to_string()];
                match spec.operands {
                    Operands::NamesOrAll if spec.args.starts_with("NAME") => {
                        line.push("all".into())
                    }
                    Operands::OnOff => line.push("on".into()),
                    _ => {}
                }
                assert_eq!(parse(&line).unwrap().spec().name, spec.name);
            }
        }
    }

    #[test]
    fn bad_lines_give_usage() {
        assert_eq!(
            refused("stop"),
            "stop needs at least one name (or all)\nusage: stop NAME...|all"
        );
        assert_eq!(
            refused("status --jsno"),
            "unknown option `--jsno`\nusage: status [--json] [NAME...]"
        );
        assert!(refused("reload now").starts_with("unexpected argument `now`\nusage: reload"));
        assert!(refused("watch --since").starts_with("--since needs a sequence number\n"));
        assert!(refused("watch --since x").starts_with("--since needs a sequence number, not `x`"));
        assert!(refused("pid a b").starts_with("unexpected argument `b`"));
        assert!(refused("events maybe").starts_with("say `events on` or `events off`"));
        let unknown = refused("frobnicate web");
        assert!(unknown.starts_with("unknown command `frobnicate`\ncommands:\n"));
        assert!(unknown.contains("  status [--json] [NAME...]"));
        assert!(refused("help frobnicate").starts_with("unknown command `frobnicate`"));
    }

    #[test]
    fn double_dash_ends_flags() {
        assert_eq!(
            parsed("status -- --json"),
            Command::Status {
                names: vec!["--json".into()],
                json: false
            }
        );
    }

    #[test]
    fn completes_commands_then_names() {
        let names: Vec<String> = ["sleeper", "web", "web:0", "web:1"]
            .iter()
            .map(|name| name.to_string())
            .collect();
        assert_eq!(
            complete("sta", &names),
            (0, vec!["start".into(), "status".into()])
        );
        assert_eq!(complete("stat", &names), (0, vec!["status".into()]));
        assert_eq!(complete("", &names).1.len(), COMMANDS.len());
        assert_eq!(complete("start sl", &names), (6, vec!["sleeper".into()]));
        assert_eq!(
            complete("stop web", &names),
            (5, vec!["web".into(), "web:0".into(), "web:1".into()])
        );
        assert_eq!(complete("start a", &names), (6, vec!["all".into()]));
        assert_eq!(complete("pid a", &names), (4, Vec::<String>::new()));
        assert_eq!(complete("status --j", &names), (7, vec!["--json".into()]));
        assert_eq!(complete("watch --since ", &names).1, Vec::<String>::new());
        assert_eq!(complete("events o", &names).1, vec!["off", "on"]);
        assert_eq!(complete("help re", &names).1, vec!["reload", "restart"]);
        assert_eq!(complete("reload ", &names).1, Vec::<String>::new());
        assert_eq!(complete("nope x", &names).1, Vec::<String>::new());
    }

    #[test]
    fn exit_codes() {
        let usage = CtlError::Usage(parse(&[]).unwrap_err());
        assert_eq!(usage.exit_code(), 2);
        let refused = CtlError::Refused(tonic::Status::not_found("no such program or instance: x"));
        assert_eq!(refused.exit_code(), 1);
        assert_eq!(refused.to_string(), "no such program or instance: x");
        let pipe = CtlError::Output(io::Error::from(io::ErrorKind::BrokenPipe));
        assert_eq!(pipe.exit_code(), 0);
        assert!(pipe.is_silent());
        let lost = CtlError::Lost {
            target: Target::Unix("/run/t.sock".into()),
            reason: "transport error".into(),
        };
        assert_eq!(lost.exit_code(), 3);
        assert_eq!(
            lost.to_string(),
            "lost connection to taskmasterd at /run/t.sock: transport error"
        );
    }
}
