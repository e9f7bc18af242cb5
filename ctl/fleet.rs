//! One command on several daemons at once (`taskctl -H a -H b ...`). Each host's part runs
//! concurrently; a host that fails is reported (`HOST: why`, on stderr) and the others go on;
//! the exit status is the worst of theirs. Output names its host: a host column in `status`,
//! `HOST  ` before every other line, a `host` field in JSON. A command that ends prints host
//! by host, in the order the hosts were given; `watch` prints each line as it comes.

use std::{
    cell::Cell,
    io::{self, Write},
};

use futures_util::future::join_all;
use taskmaster::proto::InstanceStatus;

use crate::{
    command::{self, Command, HostTag, Output, daemon, instances},
    connection::Connection,
    exit::{self, CtlError, Exit, Outcome},
    render::{self, Palette},
};

/// Whether `command` works on one daemon only: `tail` and `maintail` print output as its bytes
/// are, which lines tagged with a host would change; `attach` connects the terminal to one
/// process.
pub fn one_host_only(command: &Command) -> bool {
    matches!(
        command,
        Command::Tail { .. } | Command::MainTail { .. } | Command::Attach { .. }
    )
}

/// What `command` says when run on several hosts although it works on one only.
pub fn one_host_only_message(command: &Command, hosts: &[&str]) -> String {
    format!(
        "`{}` prints one daemon's output as it is: give one host (-H) for it, not {}",
        command.spec().name,
        hosts.join(", ")
    )
}

/// Runs `command` on every daemon of `connections`; returns the worst exit status. `worst`
/// holds the worst so far of the hosts that are done, for a `watch` that Ctrl-C ends.
pub async fn run(
    command: &Command,
    connections: &mut [Connection],
    palette: Palette,
    worst: &Cell<Exit>,
) -> Exit {
    let names: Vec<String> = connections
        .iter()
        .map(|connection| connection.host().name.clone())
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let tags = HostTag::all(&names);
    match command {
        Command::Status { names, json } => status(connections, &tags, names, *json, palette).await,
        // Not about any daemon.
        Command::Help { .. } => {
            let mut stdout = io::stdout();
            let mut output = Output {
                out: &mut stdout,
                palette,
                host: None,
            };
            exit::report(command::run(command, &mut connections[0], &mut output).await)
        }
        Command::Watch { .. } => live(command, connections, &tags, palette, worst).await,
        Command::Version => {
            if let Err(error) = io::stdout().write_all(daemon::taskctl_version().as_bytes()) {
                return exit::report(Err(CtlError::Output(error)));
            }
            one_after_another(command, connections, &tags, palette).await
        }
        _ => one_after_another(command, connections, &tags, palette).await,
    }
}

/// One host's part of `command`: the command itself, but `version` only asks the daemon's.
async fn part(
    command: &Command,
    connection: &mut Connection,
    output: &mut Output<'_>,
) -> Result<Outcome, CtlError> {
    match command {
        Command::Version => daemon::daemon_version(connection, output)
            .await
            .map_err(|error| error.in_command("version")),
        command => command::run(command, connection, output).await,
    }
}

/// Runs every host's part at once into a buffer of its own; prints them in the hosts' order.
async fn one_after_another(
    command: &Command,
    connections: &mut [Connection],
    tags: &[HostTag],
    palette: Palette,
) -> Exit {
    let parts = connections
        .iter_mut()
        .zip(tags)
        .map(|(connection, tag)| async move {
            let mut buffer = Vec::new();
            let mut output = Output {
                out: &mut buffer,
                palette,
                host: Some(tag),
            };
            let outcome = part(command, connection, &mut output).await;
            (buffer, outcome)
        });
    let mut worst = Exit::Success;
    let mut stdout = io::stdout();
    for ((buffer, outcome), tag) in join_all(parts).await.into_iter().zip(tags) {
        if let Err(error) = stdout.write_all(&buffer).and_then(|()| stdout.flush()) {
            return worst.max(exit::report(Err(CtlError::Output(error))));
        }
        worst = worst.max(report(tag, outcome));
    }
    worst
}

/// Runs every host's part at once, each writing its lines as they come (`watch`).
async fn live(
    command: &Command,
    connections: &mut [Connection],
    tags: &[HostTag],
    palette: Palette,
    worst: &Cell<Exit>,
) -> Exit {
    let parts = connections
        .iter_mut()
        .zip(tags)
        .map(|(connection, tag)| async move {
            let mut stdout = io::stdout();
            let mut output = Output {
                out: &mut stdout,
                palette,
                host: Some(tag),
            };
            let exit = report(tag, part(command, connection, &mut output).await);
            worst.set(worst.get().max(exit));
            exit
        });
    join_all(parts)
        .await
        .into_iter()
        .fold(Exit::Success, Exit::max)
}

/// `status` of every host, in one table (or one JSON array) of the hosts that answered.
async fn status(
    connections: &mut [Connection],
    tags: &[HostTag],
    names: &[String],
    json: bool,
    palette: Palette,
) -> Exit {
    let answers = join_all(
        connections
            .iter_mut()
            .map(|connection| instances::status_of(connection, names)),
    )
    .await;
    let mut worst = Exit::Success;
    let mut answered: Vec<(&str, Vec<InstanceStatus>)> = Vec::new();
    for (tag, answer) in tags.iter().zip(answers) {
        match answer {
            Ok(response) => answered.push((&tag.name, response.instances)),
            Err(error) => worst = worst.max(report(tag, Err(error.in_command("status")))),
        }
    }
    let hosts: Vec<(&str, &[InstanceStatus])> = answered
        .iter()
        .map(|(host, instances)| (*host, instances.as_slice()))
        .collect();
    let text = if json {
        render::hosts_status_json(&hosts)
    } else {
        render::hosts_status_table(&hosts, palette, !names.is_empty())
    };
    let mut stdout = io::stdout();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => worst,
        Err(error) => worst.max(exit::report(Err(CtlError::Output(error)))),
    }
}

/// Reports a host's failure on stderr, each line as `HOST: ...`; gives its exit status.
fn report(tag: &HostTag, outcome: Result<Outcome, CtlError>) -> Exit {
    match outcome {
        Ok(outcome) => outcome.exit(),
        Err(error) => {
            if !error.is_silent() {
                for line in error.to_string().lines() {
                    eprintln!("{}: {line}", tag.name);
                }
            }
            error.exit()
        }
    }
}
