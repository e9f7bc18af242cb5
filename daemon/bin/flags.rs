//! taskmasterd's command line: its flags (parsed with lexopt), the help text, and the settings
//! that result once the flags override the config's `daemon:` section.

use std::path::{Path, PathBuf};

use taskmaster::{config, endpoint};

/// The daemon's flags.
///
/// Parsed with lexopt rather than clap (which taskctl uses): clap's code, about 220 KB, would
/// stay resident for the daemon's whole life to parse seven flags once.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Args {
    /// `-c`: the config file; `None`: search the usual places.
    pub config: Option<PathBuf>,
    /// `-f`: stay attached to the terminal instead of detaching.
    pub foreground: bool,
    pub socket: Option<PathBuf>,
    /// `-l`: a TCP address, parsed when bound.
    pub listen: Option<String>,
    pub logfile: Option<PathBuf>,
    pub pidfile: Option<PathBuf>,
    /// Set by the background launcher: print "ready" on stdout once listening, then detach
    /// stdio. Not in the help.
    pub notify_ready: bool,
}

pub const USAGE: &str = "Usage: taskmasterd [OPTIONS]";

pub const HELP: &str = "\
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
pub enum Invocation {
    Run(Args),
    Help,
    Version,
}

/// Parses the arguments after the program name.
pub fn parse_args(
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

/// The daemon settings after flags override the config's `daemon:` section.
pub struct Settings {
    /// The Unix socket: `-s`, else `daemon.socket`, else the default socket path.
    pub socket: PathBuf,
    /// The TCP listener, if any: `-l`, else `daemon.listen`.
    pub listen: Option<String>,
    /// The event log: `--logfile`, else `daemon.logfile`, else taskmaster.log beside the config.
    pub logfile: PathBuf,
    pub pidfile: Option<PathBuf>,
    /// The folder of captured output: `daemon.logdir`, else `logs/` beside the event log.
    pub logdir: PathBuf,
}

impl Settings {
    pub fn resolve(args: &Args, config: &config::Config) -> Settings {
        let daemon = &config.daemon;
        let config_dir = config.path.parent().unwrap_or(Path::new("/"));
        let logfile = args
            .logfile
            .clone()
            .or_else(|| daemon.logfile.clone())
            .unwrap_or_else(|| config_dir.join("taskmaster.log"));
        let logdir = daemon
            .logdir
            .clone()
            .unwrap_or_else(|| logfile.parent().unwrap_or(Path::new("/")).join("logs"));
        Settings {
            socket: args
                .socket
                .clone()
                .or_else(|| daemon.socket.clone())
                .unwrap_or_else(endpoint::default_socket_path),
            listen: args.listen.clone().or_else(|| daemon.listen.clone()),
            logfile,
            pidfile: args.pidfile.clone().or_else(|| daemon.pidfile.clone()),
            logdir,
        }
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
