//! `taskmasterd`: reads flags and the config, detaches into the background unless told to
//! stay in the foreground, sets up the event log and signals, and runs the daemon.

use std::{
    io::{BufRead, BufReader, Write},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Command, ExitCode, Stdio},
};

use anyhow::{Context, bail};
use taskmaster::{Listeners, config, endpoint};
use tokio::signal::unix::{SignalKind, signal};
use tokio_stream::wrappers::SignalStream;

/// The daemon's flags.
///
/// Parsed with lexopt rather than clap (which taskctl uses): clap's code, about 220 KB, would
/// stay resident for the daemon's whole life to parse seven flags once.
#[derive(Debug, Default, PartialEq, Eq)]
struct Args {
    config: Option<PathBuf>,
    foreground: bool,
    socket: Option<PathBuf>,
    listen: Option<String>,
    logfile: Option<PathBuf>,
    pidfile: Option<PathBuf>,
    /// Set by the background launcher: print "ready" on stdout once listening, then detach
    /// stdio. Not in the help.
    notify_ready: bool,
}

const USAGE: &str = "Usage: taskmasterd [OPTIONS]";

const HELP: &str = "\
The process supervisor daemon.

Usage: taskmasterd [OPTIONS]

Options:
  -c, --config <FILE>   Config file [default: ./taskmaster.yaml, then
                        $XDG_CONFIG_HOME/taskmaster/taskmaster.yaml, then
                        /etc/taskmaster/taskmaster.yaml]
  -f, --foreground      Stay attached to the terminal (for systemd, containers and tests);
                        log to stderr too
  -s, --socket <PATH>   Unix socket path (overrides daemon.socket)
  -l, --listen <ADDR>   Also serve on TCP, HOST:PORT or PORT for loopback (overrides
                        daemon.listen)
      --logfile <FILE>  Event log file (overrides daemon.logfile)
      --pidfile <FILE>  Pid file (overrides daemon.pidfile)
  -h, --help            Print help
  -V, --version         Print version
";

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
enum Invocation {
    Run(Args),
    Help,
    Version,
}

/// Parses the arguments after the program name.
fn parse_args(
    argv: impl IntoIterator<Item = std::ffi::OsString>,
) -> Result<Invocation, lexopt::Error> {
    use lexopt::prelude::*;
    let mut args = Args::default();
    let mut parser = lexopt::Parser::from_args(argv);
    while let Some(arg) = parser.next()? {
        match arg {
            Short('c') | Long("config") => args.config = Some(parser.value()?.into()),
            Short('f') | Long("foreground") => args.foreground = true,
            Short('s') | Long("socket") => args.socket = Some(parser.value()?.into()),
            Short('l') | Long("listen") => args.listen = Some(parser.value()?.string()?),
            Long("logfile") => args.logfile = Some(parser.value()?.into()),
            Long("pidfile") => args.pidfile = Some(parser.value()?.into()),
            Long("notify-ready") => args.notify_ready = true,
            Short('h') | Long("help") => return Ok(Invocation::Help),
            Short('V') | Long("version") => return Ok(Invocation::Version),
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(Invocation::Run(args))
}

/// Event log lines that may wait for the disk. A larger burst (a restart of a thousand programs
/// writes two thousand lines at once) makes the daemon wait the few milliseconds the writer
/// needs, rather than lose lines.
const EVENT_LOG_QUEUE: usize = 1024;

/// The daemon settings after flags override the config's `daemon:` section.
struct Settings {
    socket: PathBuf,
    listen: Option<String>,
    logfile: PathBuf,
    pidfile: Option<PathBuf>,
}

impl Settings {
    fn resolve(args: &Args, config: &config::Config) -> Settings {
        let daemon = &config.daemon;
        let config_dir = config.path.parent().unwrap_or(Path::new("/"));
        Settings {
            socket: args
                .socket
                .clone()
                .or_else(|| daemon.socket.clone())
                .unwrap_or_else(endpoint::default_socket_path),
            listen: args.listen.clone().or_else(|| daemon.listen.clone()),
            logfile: args
                .logfile
                .clone()
                .or_else(|| daemon.logfile.clone())
                .unwrap_or_else(|| config_dir.join("taskmaster.log")),
            pidfile: args.pidfile.clone().or_else(|| daemon.pidfile.clone()),
        }
    }
}

fn main() -> ExitCode {
    return_freed_memory();
    let args = match parse_args(std::env::args_os().skip(1)) {
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
        return launch_in_background(&args, &config.path, &settings);
    }
    raise_open_files_limit();
    close_inherited_fds_on_exec();
    restore_default_signal_dispositions();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(serve(&args, config, &settings))?;
    Ok(ExitCode::SUCCESS)
}

/// Starts this program again in the foreground, in its own session, and returns once it
/// listens (or has failed, with its error on our stderr).
fn launch_in_background(
    args: &Args,
    config_path: &Path,
    settings: &Settings,
) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe().context("finding the taskmasterd executable")?;
    let mut command = Command::new(exe);
    command
        .arg("--foreground")
        .arg("--notify-ready")
        .arg("--config")
        .arg(config_path)
        .arg("--socket")
        .arg(&settings.socket)
        .arg("--logfile")
        .arg(&settings.logfile)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(listen) = &settings.listen {
        command.arg("--listen").arg(listen);
    }
    if let Some(pidfile) = &args.pidfile {
        command.arg("--pidfile").arg(pidfile);
    }
    // SAFETY: setsid(2) is async-signal-safe and the closure neither allocates nor locks.
    unsafe {
        command.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let mut child = command.spawn().context("starting taskmasterd")?;
    let stdout = child
        .stdout
        .take()
        .context("reading taskmasterd's readiness")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    if line.trim() == "ready" {
        println!(
            "taskmasterd started: pid {}, socket {}",
            child.id(),
            settings.socket.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let status = child.wait()?;
    match status.code() {
        Some(code) => Ok(ExitCode::from(u8::try_from(code).unwrap_or(1).max(1))),
        None => bail!("taskmasterd died during start-up: {status}"),
    }
}

async fn serve(args: &Args, config: config::Config, settings: &Settings) -> anyhow::Result<()> {
    let (unix, _socket_file) = endpoint::bind_unix(&settings.socket)?;
    let tcp = match &settings.listen {
        Some(address) => Some(endpoint::bind_tcp(address).await?),
        None => None,
    };
    let _log_guard = start_event_log(&settings.logfile, args.foreground && !args.notify_ready)?;
    let _pidfile = match &settings.pidfile {
        Some(path) => Some(PidFile::write(path)?),
        None => None,
    };
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let hangup = SignalStream::new(signal(SignalKind::hangup())?);
    let shutdown = async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
    };
    if args.notify_ready {
        detach_stdio()?;
    }
    taskmaster::run(Listeners { unix, tcp }, config, shutdown, hangup).await?;
    Ok(())
}

/// The pid file, removed when dropped unless another daemon has written its own since.
struct PidFile {
    path: PathBuf,
    contents: String,
}

impl PidFile {
    fn write(path: &Path) -> anyhow::Result<PidFile> {
        let contents = format!("{}\n", std::process::id());
        std::fs::write(path, &contents)
            .with_context(|| format!("writing pidfile {}", path.display()))?;
        Ok(PidFile {
            path: path.into(),
            contents,
        })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        if std::fs::read_to_string(&self.path).is_ok_and(|now| now == self.contents) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Sends tracing output to the event log file (and stderr when asked). The guard flushes the
/// logs when dropped.
fn start_event_log(
    logfile: &Path,
    also_stderr: bool,
) -> anyhow::Result<tracing_appender::non_blocking::WorkerGuard> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(logfile)
        .with_context(|| format!("opening event log {}", logfile.display()))?;
    let sink: Box<dyn std::io::Write + Send> = if also_stderr {
        Box::new(AlsoStderr(file))
    } else {
        Box::new(file)
    };
    // One writer thread keeps the daemon's own work off the disk and the terminal. Its queue
    // is allocated up front (the default of 128k lines costs 4 MB); when the writer falls this
    // far behind, the daemon waits rather than lose an event line.
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(EVENT_LOG_QUEUE)
        .lossy(false)
        .thread_name("event-log")
        .finish(sink);
    tracing_subscriber::fmt()
        .with_ansi(false)
        .with_target(false)
        .with_max_level(tracing::Level::INFO)
        .with_writer(writer)
        .init();
    Ok(guard)
}

/// The event log file, with each line copied to stderr (the foreground daemon's terminal).
/// The file decides success: a closed terminal must not stop the log.
struct AlsoStderr(std::fs::File);

impl Write for AlsoStderr {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        self.0.write_all(line)?;
        let _ = std::io::stderr().write_all(line);
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Tells the launcher we are listening, then points stdin, stdout and stderr at /dev/null.
fn detach_stdio() -> anyhow::Result<()> {
    let mut stdout = std::io::stdout();
    stdout.write_all(b"ready\n")?;
    stdout.flush()?;
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    nix::unistd::dup2_stdin(&null)?;
    nix::unistd::dup2_stdout(&null)?;
    nix::unistd::dup2_stderr(&null)?;
    Ok(())
}

/// glibc raises its mmap threshold to the size of each large block freed, up to 32 MB, and its
/// trim threshold to twice that: after the config parse (a few large buffers) a long-lived
/// daemon would keep every later transient buffer (a big Status reply, a reload) in its heap for
/// good. Fixed thresholds keep large blocks in their own mappings and give freed heap back.
fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const THRESHOLD: nix::libc::c_int = 128 * 1024;
        // SAFETY: mallopt only sets allocator parameters; called before any other thread.
        unsafe {
            nix::libc::mallopt(nix::libc::M_MMAP_THRESHOLD, THRESHOLD);
            nix::libc::mallopt(nix::libc::M_TRIM_THRESHOLD, THRESHOLD);
        }
    }
}

/// Whatever descriptors we inherited beyond 0-2 (a shell's, a test runner's jobserver) must
/// not reach the children: mark them close-on-exec, once, before any thread exists.
fn close_inherited_fds_on_exec() {
    // SAFETY: close_range(2) with CLOSE_RANGE_CLOEXEC only sets flags; no memory is touched.
    let done = unsafe {
        nix::libc::syscall(
            nix::libc::SYS_close_range,
            3u32,
            u32::MAX,
            nix::libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if done != 0 {
        // Kernels before 5.11: walk our descriptors instead.
        if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
            let fds: Vec<i32> = entries
                .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
                .filter(|fd| *fd > 2)
                .collect();
            for fd in fds {
                // SAFETY: setting FD_CLOEXEC on a descriptor number has no memory effects;
                // one that closed meanwhile just fails with EBADF.
                unsafe {
                    nix::libc::fcntl(fd, nix::libc::F_SETFD, nix::libc::FD_CLOEXEC);
                }
            }
        }
    }
}

/// Ignored signals survive exec: a daemon started from `nohup` or a shell's background job
/// would hand SIGHUP, SIGINT or SIGQUIT to its children ignored. Reset every ignored signal
/// but SIGPIPE (which std resets in each child) to its default, once, before any thread exists.
fn restore_default_signal_dispositions() {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for signal in Signal::iterator().filter(|signal| *signal != Signal::SIGPIPE) {
        // SAFETY: installing SIG_DFL cannot break memory safety; we only replace SIG_IGN, so
        // no handler of ours or of a library is removed.
        unsafe {
            if let Ok(old) = sigaction(signal, &default)
                && !matches!(old.handler(), SigHandler::SigIgn)
            {
                let _ = sigaction(signal, &old);
            }
        }
    }
}

/// Every client connection holds a descriptor: a daemon watched by many clients needs more
/// than the usual 1024 files.
fn raise_open_files_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(argv: &[&str]) -> Result<Invocation, String> {
        parse_args(argv.iter().map(Into::into)).map_err(|error| error.to_string())
    }

    #[test]
    fn flags_in_short_long_and_attached_forms() {
        let cases: &[(&[&str], Args)] = &[
            (&[], Args::default()),
            (
                &["-f", "-c", "a.yaml", "-s", "/tmp/s.sock", "-l", "7300"],
                Args {
                    config: Some("a.yaml".into()),
                    foreground: true,
                    socket: Some("/tmp/s.sock".into()),
                    listen: Some("7300".into()),
                    ..Args::default()
                },
            ),
            (
                &[
                    "--foreground",
                    "--config=b.yaml",
                    "--logfile",
                    "t.log",
                    "--pidfile=t.pid",
                    "--notify-ready",
                    "--listen=127.0.0.1:1",
                ],
                Args {
                    config: Some("b.yaml".into()),
                    foreground: true,
                    listen: Some("127.0.0.1:1".into()),
                    logfile: Some("t.log".into()),
                    pidfile: Some("t.pid".into()),
                    notify_ready: true,
                    ..Args::default()
                },
            ),
            (
                &["-fcc.yaml"],
                Args {
                    config: Some("c.yaml".into()),
                    foreground: true,
                    ..Args::default()
                },
            ),
        ];
        for (argv, expected) in cases {
            let Ok(Invocation::Run(args)) = parse(argv) else {
                panic!("{argv:?} did not parse");
            };
            assert_eq!(&args, expected, "{argv:?}");
        }
    }

    #[test]
    fn help_and_version() {
        assert_eq!(parse(&["-h"]), Ok(Invocation::Help));
        assert_eq!(parse(&["-f", "--help"]), Ok(Invocation::Help));
        assert_eq!(parse(&["-V"]), Ok(Invocation::Version));
        assert_eq!(parse(&["--version"]), Ok(Invocation::Version));
    }

    #[test]
    fn bad_arguments_name_the_culprit() {
        let cases: &[(&[&str], &str)] = &[
            (&["-x"], "'-x'"),
            (&["--colour"], "'--colour'"),
            (&["--config"], "'--config'"),
            (&["extra.yaml"], "extra.yaml"),
            (&["--foreground=yes"], "--foreground"),
        ];
        for (argv, culprit) in cases {
            let error = parse(argv).expect_err("must fail");
            assert!(error.contains(culprit), "{argv:?}: {error}");
        }
    }
}
