//! `taskmasterd`: reads flags and the config, detaches into the background unless told to
//! stay in the foreground, sets up the event log and signals, and runs the daemon.
//!
//! # Layout
//! - [`flags`]: the command line, and the settings once flags override the config.
//! - [`detach`]: starting in the background, leaving stdio, the pid file.
//! - [`event_log`]: the event log writer.
//! - [`setup`]: process set-up before any thread exists.

mod detach;
mod event_log;
mod flags;
mod setup;

use std::process::ExitCode;

use anyhow::Context;
use nix::sys::signal::Signal;
use taskmaster::{
    Listeners, Signals, config, endpoint,
    supervisor::{Actor, OutputSettings},
};
use tokio::signal::unix::{SignalKind, signal};
use tokio_stream::wrappers::SignalStream;

use detach::PidFile;
use flags::{Args, HELP, Invocation, Settings, USAGE};

fn main() -> ExitCode {
    setup::return_freed_memory();
    let args = match flags::parse_args(std::env::args_os().skip(1)) {
        Ok(Invocation::Run(args)) => args,
        Ok(Invocation::Help) => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Ok(Invocation::Version) => {
            println!("taskmasterd {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("taskmasterd: {error}\n\n{USAGE}\n\nFor more information, try '--help'.");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("taskmasterd: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<ExitCode> {
    let path = config::find(args.config.as_deref())?;
    let config = match config::load(&path) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("taskmasterd: {error}");
            return Ok(ExitCode::from(2));
        }
    };
    let settings = Settings::resolve(&args, &config);
    if !args.foreground {
        // The daemon logs them too; this terminal sees them before it detaches.
        for warning in config.warning_lines() {
            eprintln!("taskmasterd: warning: {warning}");
        }
        return Ok(detach::launch_in_background(
            &args,
            &config.path,
            &settings,
        )?);
    }
    // SAFETY: no thread exists yet (the runtime and the event log start below).
    unsafe { config::take_token_variables(&config) };
    setup::before_threads();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let served = runtime.block_on(serve(&args, config, &settings));
    // Every program is stopped; a config read that still waits (a FIFO nobody writes) must
    // not keep the daemon from exiting.
    runtime.shutdown_background();
    served?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(args: &Args, config: config::Config, settings: &Settings) -> anyhow::Result<()> {
    // Before anything exists that a signal's default action would leave behind (the socket, the
    // pidfile, children): from here on a SIGTERM is a clean shutdown, whenever it comes.
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let hangup = SignalStream::new(signal(SignalKind::hangup())?);
    let user1 = SignalStream::new(signal(SignalKind::user_defined1())?);
    let daemon = &config.daemon;
    let tls = match (&settings.listen, &daemon.tls) {
        (Some(_), Some(tls)) => Some(endpoint::server_tls(tls)?),
        _ => None,
    };
    // TCP first: a client that finds the Unix socket answering finds every listener bound.
    let tcp = match &settings.listen {
        Some(address) => Some(endpoint::bind_tcp(address, daemon).await?),
        None => None,
    };
    let access = endpoint::SocketAccess::of(daemon);
    let (unix, _socket_file) = endpoint::bind_unix(&settings.socket, access)?;
    let also_stderr = args.foreground && !args.notify_ready;
    let (_log_guard, event_log) = event_log::start_event_log(&settings.logfile, also_stderr)
        .with_context(|| format!("opening event log {}", settings.logfile.display()))?;
    let _pidfile = match &settings.pidfile {
        Some(path) => Some(
            PidFile::write(path).with_context(|| format!("writing pidfile {}", path.display()))?,
        ),
        None => None,
    };
    let shutdown = async move {
        let signal = tokio::select! {
            _ = terminate.recv() => Signal::SIGTERM,
            _ = interrupt.recv() => Signal::SIGINT,
        };
        Actor::Signal(signal)
    };
    if args.notify_ready {
        detach::detach_stdio()?;
    }
    let output = OutputSettings {
        logdir: settings.logdir.clone(),
        event_log: Some(event_log),
    };
    let signals = Signals {
        reload: hangup,
        reopen: user1,
    };
    let listeners = Listeners { unix, tcp, tls };
    taskmaster::run(listeners, config, output, shutdown, signals).await?;
    Ok(())
}
