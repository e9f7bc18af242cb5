//! `taskctl`: controls taskmasterd. With a command it runs it once and exits with its status
//! (0 success, 1 the command failed, 2 usage, 3 daemon unreachable), on several daemons at once
//! when several hosts are given; without one it opens the interactive shell (one daemon).
//!
//! # Layout
//! - [`command`]: the command table ([`command::Verb`]), parsing, completion, `help`, and one
//!   handler per command, reached by one exhaustive `match` ([`command::run`]).
//! - [`hosts`]: which daemons, with what credentials: addresses, the hosts file, token and
//!   TLS files.
//! - [`connection`]: the one way to a daemon, used by every command, the shell and its feed.
//! - [`fleet`]: one command on several daemons at once, its output tagged with each host.
//! - [`exit`]: how a command ends ([`exit::Outcome`], [`exit::CtlError`]) and the one exit
//!   status type, [`exit::Exit`].
//! - [`render`]: tables, JSON and event lines (pure).
//! - [`shell`]: the reedline shell; [`follow`]: its live event feed, which reconnects.

mod command;
mod connection;
mod exit;
mod fleet;
mod follow;
mod hosts;
mod render;
mod shell;

use std::{
    cell::Cell,
    io::{self, IsTerminal},
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::Context;
use clap::{ArgAction, Parser};
use taskmaster::{
    config,
    endpoint::{self, Target},
};

use command::{Command, Output};
use connection::Connection;
use exit::Exit;
use hosts::{Address, Credentials, Host};
use render::Palette;

/// Controls taskmasterd: one command, or an interactive shell when none is given.
#[derive(Parser, Debug)]
#[command(
    name = "taskctl",
    version,
    after_help = after_help(),
    args_override_self = true
)]
struct Args {
    /// Unix socket of the daemon [env: TASKMASTER_SOCKET] [default: the daemon's default]
    #[arg(short, long, value_name = "PATH", group = "address")]
    socket: Option<PathBuf>,
    /// A daemon: http:// or https:// URL, HOST:PORT, unix:PATH, or a name in the hosts file;
    /// repeat it (or separate with commas) to run the command on several at once
    /// [env: TASKMASTER_HOSTS (comma-separated), TASKMASTER_HOST]
    #[arg(
        short = 'H',
        long,
        value_name = "HOST",
        group = "address",
        action = ArgAction::Append,
        value_delimiter = ','
    )]
    host: Vec<String>,
    /// Read the daemon's address from this config file's `daemon:` section
    #[arg(short, long, value_name = "FILE", group = "address")]
    config: Option<PathBuf>,
    /// Send the bearer token in this file on every call
    /// [env: TASKMASTER_TOKEN, which holds the token itself]
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// For https:// hosts: trust the CA certificates (PEM) of this file
    /// [default: the system's roots]
    #[arg(long, value_name = "FILE")]
    tls_ca: Option<PathBuf>,
    /// For https:// hosts: the client certificate (PEM) for mutual TLS; with --tls-key
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// For https:// hosts: the private key (PEM) of --tls-cert
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// The command and its arguments; none opens the shell
    #[arg(
        value_name = "COMMAND",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    command: Vec<String>,
}

fn after_help() -> String {
    format!("{}\n{}", command::overview(), Exit::legend())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut hosts = match resolve_hosts(&args) {
        Ok(hosts) => hosts,
        Err(error) => {
            eprintln!("taskctl: {error:#}");
            return Exit::Usage.into();
        }
    };
    if args.command.is_empty() {
        if hosts.len() > 1 {
            eprintln!(
                "taskctl: the shell talks to one daemon; with several hosts give a command, \
                 e.g. `taskctl -H a -H b status`"
            );
            return Exit::Usage.into();
        }
        return shell::run(hosts.remove(0)).into();
    }
    one_shot(hosts, &args.command).into()
}

/// The daemons to talk to, with their credentials.
fn resolve_hosts(args: &Args) -> anyhow::Result<Vec<Host>> {
    let from_env = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
    let credentials = Credentials {
        token_file: args.token_file.clone(),
        env_token: from_env("TASKMASTER_TOKEN"),
        tls_ca: args.tls_ca.clone(),
        tls_identity: args.tls_cert.clone().zip(args.tls_key.clone()),
    };
    let hosts = hosts::resolve(
        addresses(args)?,
        &credentials,
        hosts::file::default_path().as_deref(),
    )?;
    Ok(hosts)
}

/// Where the daemons are, each with its name: flags, else the environment, else the default
/// socket.
fn addresses(args: &Args) -> anyhow::Result<Vec<(String, Address)>> {
    let from_env = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
    let words = |words: Vec<String>| {
        words
            .into_iter()
            .map(|word| {
                let word = word.trim().to_string();
                match hosts::parse_address(&word) {
                    Ok(address) => Ok((word, address)),
                    Err(reason) => Err(hosts::HostsError::Bad { word, reason }),
                }
            })
            .collect::<Result<Vec<_>, _>>()
    };
    let one = |target: Target| Ok(vec![(target.to_string(), Address::Target(target))]);
    if !args.host.is_empty() {
        return Ok(words(args.host.clone())?);
    }
    if let Some(socket) = &args.socket {
        return one(Target::Unix(socket.clone()));
    }
    if let Some(path) = &args.config {
        return one(config_target(path)?);
    }
    if let Some(list) = from_env("TASKMASTER_HOSTS") {
        let listed: Vec<String> = list
            .split(',')
            .map(str::trim)
            .filter(|word| !word.is_empty())
            .map(str::to_string)
            .collect();
        if !listed.is_empty() {
            return Ok(words(listed)?);
        }
    }
    if let Some(host) = from_env("TASKMASTER_HOST") {
        return Ok(words(vec![host])?);
    }
    if let Some(socket) = from_env("TASKMASTER_SOCKET") {
        return one(Target::Unix(socket.into()));
    }
    one(Target::Unix(endpoint::default_socket_path()))
}

/// The socket a config file gives the daemon. A file the daemon would reject still names its
/// socket, so `taskctl -c FILE reload` can show what is wrong with it.
fn config_target(path: &Path) -> anyhow::Result<Target> {
    let socket = match config::socket_of(path) {
        Ok(socket) => socket,
        Err(error @ config::ConfigError::Invalid { .. }) => return Err(error.into()),
        Err(error) => return Err(error).context("reading the daemon's address"),
    };
    Ok(Target::Unix(
        socket.unwrap_or_else(endpoint::default_socket_path),
    ))
}

/// Runs one command, on every host, and returns the exit status.
fn one_shot(hosts: Vec<Host>, words: &[String]) -> Exit {
    let command = match command::parse(words) {
        Ok(command) => command,
        Err(usage) => {
            eprintln!("{usage}");
            return Exit::Usage;
        }
    };
    if command.spec().shell_only {
        eprintln!("{}", command.spec().only_in_the_shell());
        return Exit::Usage;
    }
    if hosts.len() > 1 && fleet::one_host_only(&command) {
        let names: Vec<&str> = hosts.iter().map(|host| host.name.as_str()).collect();
        eprintln!("{}", fleet::one_host_only_message(&command, &names));
        return Exit::Usage;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("taskctl: cannot start the tokio runtime: {error}");
            return Exit::Failed;
        }
    };
    let mut stdout = io::stdout();
    let palette = Palette::detect(stdout.is_terminal());
    let mut connections: Vec<Connection> = hosts.into_iter().map(Connection::new).collect();
    // The worst status of the hosts done so far, for a `watch` of several that Ctrl-C ends.
    let worst = Cell::new(Exit::Success);
    let outcome = runtime.block_on(async {
        let run = async {
            if let [connection] = connections.as_mut_slice() {
                let mut output = Output {
                    out: &mut stdout,
                    palette,
                    host: None,
                };
                exit::report(command::run(&command, connection, &mut output).await)
            } else {
                fleet::run(&command, &mut connections, palette, &worst).await
            }
        };
        // An attach heeds Ctrl-C itself: it puts the terminal back and says it detached.
        if matches!(command, Command::Attach { .. }) {
            return Some(run.await);
        }
        tokio::select! {
            exit = run => Some(exit),
            _ = tokio::signal::ctrl_c() => None,
        }
    });
    match outcome {
        Some(exit) => exit,
        // Ctrl-C is how `watch` is meant to end.
        None if matches!(command, Command::Watch { .. }) => worst.get(),
        None => Exit::Interrupted,
    }
}
