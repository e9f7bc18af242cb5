//! `taskctl`: controls taskmasterd. With a command it runs it once and exits with its status
//! (0 success, 1 the command failed, 2 usage, 3 daemon unreachable); without one it opens the
//! interactive shell.
//!
//! # Layout
//! - [`command`]: the command table ([`command::Verb`]), parsing, completion, `help`, and one
//!   handler per command, reached by one exhaustive `match` ([`command::run`]).
//! - [`connection`]: the one way to the daemon, used by every command, the shell and its feed.
//! - [`exit`]: how a command ends ([`exit::Outcome`], [`exit::CtlError`]) and the one exit
//!   status type, [`exit::Exit`].
//! - [`render`]: tables, JSON and event lines (pure).
//! - [`shell`]: the reedline shell; [`follow`]: its live event feed, which reconnects.

mod command;
mod connection;
mod exit;
mod follow;
mod render;
mod shell;

use std::{
    io::{self, IsTerminal},
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::Context;
use clap::Parser;
use taskmaster::{
    config,
    endpoint::{self, Target},
};

use command::{Command, Output};
use connection::Connection;
use exit::Exit;
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
    /// Reach the daemon over TCP, e.g. http://127.0.0.1:7300 [env: TASKMASTER_HOST]
    #[arg(short = 'H', long, value_name = "URL", group = "address")]
    host: Option<String>,
    /// Read the daemon's address from this config file's `daemon:` section
    #[arg(short, long, value_name = "FILE", group = "address")]
    config: Option<PathBuf>,
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
    let target = match target(&args) {
        Ok(target) => target,
        Err(error) => {
            eprintln!("taskctl: {error:#}");
            return Exit::Usage.into();
        }
    };
    if args.command.is_empty() {
        return shell::run(target).into();
    }
    one_shot(target, &args.command).into()
}

/// Where the daemon is: a flag, else the environment, else the default socket.
fn target(args: &Args) -> anyhow::Result<Target> {
    let from_env = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
    if let Some(host) = &args.host {
        return Ok(tcp_target(host));
    }
    if let Some(socket) = &args.socket {
        return Ok(Target::Unix(socket.clone()));
    }
    if let Some(path) = &args.config {
        return config_target(path);
    }
    if let Some(host) = from_env("TASKMASTER_HOST") {
        return Ok(tcp_target(&host));
    }
    if let Some(socket) = from_env("TASKMASTER_SOCKET") {
        return Ok(Target::Unix(socket.into()));
    }
    Ok(Target::Unix(endpoint::default_socket_path()))
}

/// `127.0.0.1:7300` is taken as `http://127.0.0.1:7300`.
fn tcp_target(host: &str) -> Target {
    if host.contains("://") {
        Target::Tcp(host.to_string())
    } else {
        Target::Tcp(format!("http://{host}"))
    }
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

/// Runs one command and returns the exit status.
fn one_shot(target: Target, words: &[String]) -> Exit {
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
    let mut output = Output {
        out: &mut stdout,
        palette,
    };
    let mut connection = Connection::new(target);
    let outcome = runtime.block_on(async {
        tokio::select! {
            outcome = command::run(&command, &mut connection, &mut output) => Some(outcome),
            _ = tokio::signal::ctrl_c() => None,
        }
    });
    match outcome {
        Some(outcome) => exit::report(outcome),
        // Ctrl-C is how `watch` is meant to end.
        None if matches!(command, Command::Watch { .. }) => Exit::Success,
        None => Exit::Interrupted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_host_gets_http() {
        assert_eq!(
            tcp_target("127.0.0.1:7300"),
            Target::Tcp("http://127.0.0.1:7300".into())
        );
        assert_eq!(
            tcp_target("http://[::1]:7300"),
            Target::Tcp("http://[::1]:7300".into())
        );
    }
}
