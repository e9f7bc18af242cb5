//! What a valid config is: its types, the defaults of every setting and the ranges allowed.
//! The keys a file may use and how each is read are the checker's (`check.rs`): a new program
//! key is a field here (with its default) and a line in the checker's table of program keys.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;

use super::ConfigIssue;
use super::output::Output;
use crate::access::Role;

/// Largest accepted `numprocs`.
pub(super) const MAX_NUMPROCS: u32 = 100_000;
/// Largest accepted `startretries`.
pub(super) const MAX_STARTRETRIES: u32 = 1000;
/// Largest accepted `starttime` / `stoptime`, in seconds (one day).
pub(super) const MAX_SECONDS: u64 = 86_400;
/// Largest accepted exit code.
pub(super) const MAX_EXIT_CODE: i32 = 255;
/// Largest accepted `umask`.
pub(super) const MAX_UMASK: u32 = 0o777;
/// Longest socket path `bind(2)` accepts (`sun_path` minus its terminating NUL).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(super) const MAX_SOCKET_PATH: usize = 107;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(super) const MAX_SOCKET_PATH: usize = 103;

/// A validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Absolute path of the file it was read from.
    pub path: PathBuf,
    /// The `daemon:` section.
    pub daemon: DaemonSettings,
    /// Programs by name (sorted).
    pub programs: BTreeMap<String, ProgramConfig>,
    /// The `alerts:` section: what raises an alert and where it goes.
    pub alerts: super::alerts::AlertSettings,
    /// What looks wrong but does not reject the file (an executable not found yet, a missing
    /// `workingdir`), in file order: the daemon logs each when it loads the file.
    pub warnings: Vec<ConfigIssue>,
}

impl Config {
    /// Each warning as one line: `{file}:{line}:{column}: {key}: {message}`.
    pub fn warning_lines(&self) -> Vec<String> {
        (self.warnings.iter())
            .map(|warning| format!("{}:{warning}", self.path.display()))
            .collect()
    }
}

/// The `daemon:` section. `None` means "not set": the daemon picks its own default. Paths are
/// absolute.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DaemonSettings {
    /// Path of the Unix socket; fits in a `sockaddr_un`.
    pub socket: Option<PathBuf>,
    /// TCP listener address as `ip:port` (it parses as a `SocketAddr`); a bare port `P` is stored
    /// as `127.0.0.1:P`.
    pub listen: Option<String>,
    /// The event log.
    pub logfile: Option<PathBuf>,
    /// The file the daemon writes its pid to.
    pub pidfile: Option<PathBuf>,
    /// The folder of captured output files; default: `logs/` beside the event log.
    pub logdir: Option<PathBuf>,
    /// `false`: no cgroup per instance even where cgroup v2 could be used (process groups
    /// and the child subreaper only); `None`: use them when they can be.
    pub cgroups: Option<bool>,
    /// The Unix socket's permission bits, at most 0o777; `None`: 0o600.
    pub socket_mode: Option<u32>,
    /// The group the Unix socket is given (the group that may connect, with `socket_mode`
    /// 0o660); `None`: the daemon's.
    pub socket_group: Option<Principal>,
    /// Who may make every call besides root and the daemon's own user.
    pub operators: Principals,
    /// Who may make the calls that change nothing (Status, WatchEvents, Tail, MainTail).
    pub viewers: Principals,
    /// The bearer tokens accepted on TCP; names are unique, and so are the secrets.
    pub tokens: Vec<TokenConfig>,
    /// TLS for the TCP listener.
    pub tls: Option<TlsSettings>,
    /// The most TCP connections open at once; `None`: 256. One more is closed as it comes.
    pub tcp_max_connections: Option<u32>,
    /// A TCP connection whose peer sends nothing for this long is closed; `None`: 60 s. At least
    /// a second.
    pub tcp_idle_timeout: Option<Duration>,
}

impl DaemonSettings {
    /// Whether a TCP caller must prove who it is: a token or a client certificate can.
    pub fn authenticates_tcp(&self) -> bool {
        !self.tokens.is_empty() || self.tls.as_ref().is_some_and(|tls| tls.client_ca.is_some())
    }
}

/// A user or group, by id, and how it is named in messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The uid or gid.
    pub id: u32,
    /// The name as written, or the id's digits when written as a number.
    pub name: String,
}

/// Users and groups given a role (`daemon.operators`, `daemon.viewers`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Principals {
    /// Matched against the caller's uid.
    pub users: Vec<Principal>,
    /// Matched against the caller's gid and supplementary groups.
    pub groups: Vec<Principal>,
}

impl Principals {
    /// Whether a caller with `uid`, primary `gid` and supplementary `groups` is one of these.
    pub fn admit(&self, uid: u32, gid: u32, groups: &[u32]) -> bool {
        self.users.iter().any(|user| user.id == uid)
            || (self.groups.iter()).any(|group| group.id == gid || groups.contains(&group.id))
    }
}

/// One entry of `daemon.tokens`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenConfig {
    /// How the token's holder is named in events: "token NAME".
    pub name: String,
    /// What its holder may do.
    pub role: Role,
    /// The token itself, read from its file or environment variable when the config is read.
    pub secret: Secret,
    /// Where the secret was read from, for messages: `file /etc/x.token`, `env DEPLOY_TOKEN`.
    pub source: TokenSource,
}

/// Where a token is kept: never in the config itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// The whole file, blanks at either end removed.
    File(PathBuf),
    /// The environment variable of this name, taken out of the daemon's environment at start
    /// so that no program inherits it (see [`super::take_token_variables`]).
    Env(String),
}

/// A token, kept only as its SHA-256 digest: printable ASCII without blanks, at least
/// [`MIN_TOKEN_LEN`] characters when it was read. Never shown (`Debug` prints nothing of it),
/// compared in constant time. Digests are compared rather than the tokens themselves so that
/// the comparison takes the same time whatever the lengths (comparing slices of unequal
/// lengths returns at once, which would tell a caller how long the token is).
#[derive(Clone, Eq)]
pub struct Secret([u8; SECRET_DIGEST_LEN]);

/// The length of a SHA-256 digest.
const SECRET_DIGEST_LEN: usize = 32;

impl Secret {
    /// The secret whose token is `bytes` (any bytes: a token a caller presents is made a
    /// `Secret` to be compared).
    pub fn new(bytes: &[u8]) -> Secret {
        let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
        let mut kept = [0; SECRET_DIGEST_LEN];
        kept.copy_from_slice(digest.as_ref());
        Secret(kept)
    }

    /// Whether `presented` is this token, in constant time (see [`Secret`]).
    pub fn matches(&self, presented: &[u8]) -> bool {
        *self == Secret::new(presented)
    }
}

/// In constant time.
impl PartialEq for Secret {
    fn eq(&self, other: &Secret) -> bool {
        use subtle::ConstantTimeEq;
        bool::from(self.0.ct_eq(&other.0))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// `daemon.tls`: the TCP listener speaks TLS with this identity; with `client_ca`, every
/// client must show a certificate that CA signed (mutual TLS), and its subject names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// The server's certificate chain (PEM), readable when the config was read.
    pub cert: PathBuf,
    /// The server's private key (PEM), readable when the config was read.
    pub key: PathBuf,
    /// The CA certificates (PEM) that client certificates must chain to.
    pub client_ca: Option<PathBuf>,
}

/// When an exited process is started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoRestart {
    /// After every exit.
    Always,
    /// Never.
    Never,
    /// When the exit code is not one of `exitcodes` (or the process was killed by a signal).
    Unexpected,
}

/// What a program's stdin is (`stdin:`), when it has no terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stdin {
    /// /dev/null: reads see the end at once.
    Null,
    /// A pipe the daemon keeps the write end of: what an attached client types (`taskctl
    /// attach`) arrives there, line by line; nothing else is ever written, nor is it closed
    /// while the process lives.
    Pipe,
}

/// One program of the `programs:` section. Every value is in the range the schema allows and
/// every path is absolute.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgramConfig {
    /// `cmd` split into words as a shell would; never empty. Two spellings of the same words
    /// are the same command.
    pub argv: Vec<String>,
    /// How many instances run: 1..=100000.
    pub numprocs: u32,
    /// Started when the daemon starts or the program is added.
    pub autostart: bool,
    pub autorestart: AutoRestart,
    /// The expected exit codes: sorted, without duplicates, each 0..=255.
    pub exitcodes: Vec<i32>,
    /// How long an instance must stay up to count as started; at most one day.
    pub starttime: Duration,
    /// Retries after a failed start before giving up; 0..=1000.
    pub startretries: u32,
    /// Sent to stop an instance.
    pub stopsignal: Signal,
    /// How long a stopping instance gets before SIGKILL; at most one day.
    pub stoptime: Duration,
    /// Where the instances' stdout goes; captured under the log folder by default.
    pub stdout: Output,
    /// Where the instances' stderr goes; unused with `redirect_stderr`.
    pub stderr: Output,
    /// stderr goes where stdout goes, through the same pipe.
    pub redirect_stderr: bool,
    /// When an instance's leader ends (or is stopped), whatever it left running (children,
    /// daemonized workers, processes in other sessions) is killed; `false` leaves them.
    pub kill_leftovers: bool,
    /// Keys are non-empty, without `=` or NUL; values without NUL.
    pub env: BTreeMap<String, String>,
    /// The directory the program starts in; `None`: the daemon's.
    pub workingdir: Option<PathBuf>,
    /// At most 0o777; `None`: the daemon's.
    pub umask: Option<u32>,
    /// Who the processes run as (`user:`, `group:`), resolved at load; `None`: the daemon's
    /// own identity, untouched.
    pub identity: Option<Identity>,
    /// `tty: true`: each process runs on a pseudo-terminal of its own (stdin, stdout and
    /// stderr), as the leader of a new session with it as its controlling terminal; the
    /// terminal's output is the stdout capture. Then `stderr`, `redirect_stderr` and `stdin`
    /// are not set, and stdout is captured (never discarded).
    pub tty: bool,
    /// Without a terminal: stdin on /dev/null or on a pipe attached clients write to.
    pub stdin: Stdin,
}

/// Who a program's processes run as: `user:` and `group:` resolved in the user and group
/// databases when the config was loaded, as `initgroups(3)` would resolve them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user's name in the user database (`USER`, `LOGNAME`, messages).
    pub user: String,
    /// The user's uid.
    pub uid: u32,
    /// The group's name, or its number when it has none (messages).
    pub group: String,
    /// `group:`, or else the user's primary group.
    pub gid: u32,
    /// `Some`: the supplementary groups the process gets before its gid and uid (every group
    /// that lists the user, and `gid`; sorted, without duplicates): the daemon is root and sets
    /// all three. `None`: the daemon is not root and already is this user and group (the only
    /// identity it may give): the process keeps the daemon's credentials.
    pub groups: Option<Vec<u32>>,
    /// The user's home directory (`HOME`).
    pub home: PathBuf,
}

impl ProgramConfig {
    /// The defaults of every setting, for the given command.
    pub(super) fn with_command(argv: Vec<String>) -> ProgramConfig {
        ProgramConfig {
            argv,
            numprocs: 1,
            autostart: true,
            autorestart: AutoRestart::Unexpected,
            exitcodes: vec![0],
            starttime: Duration::from_secs(1),
            startretries: 3,
            stopsignal: Signal::SIGTERM,
            stoptime: Duration::from_secs(10),
            stdout: Output::default(),
            stderr: Output::default(),
            redirect_stderr: false,
            kill_leftovers: true,
            env: BTreeMap::new(),
            workingdir: None,
            umask: None,
            identity: None,
            tty: false,
            stdin: Stdin::Null,
        }
    }

    /// Whether stderr goes where stdout goes: `redirect_stderr`, or a terminal carrying both.
    pub fn stderr_in_stdout(&self) -> bool {
        self.redirect_stderr || self.tty
    }

    /// True when the two differ at most in `numprocs`.
    pub fn same_except_numprocs(&self, other: &ProgramConfig) -> bool {
        // Destructured so that a new field cannot be forgotten here.
        let ProgramConfig {
            argv,
            numprocs: _,
            autostart,
            autorestart,
            exitcodes,
            starttime,
            startretries,
            stopsignal,
            stoptime,
            stdout,
            stderr,
            redirect_stderr,
            kill_leftovers,
            env,
            workingdir,
            umask,
            identity,
            tty,
            stdin,
        } = self;
        *argv == other.argv
            && *autostart == other.autostart
            && *autorestart == other.autorestart
            && *exitcodes == other.exitcodes
            && *starttime == other.starttime
            && *startretries == other.startretries
            && *stopsignal == other.stopsignal
            && *stoptime == other.stoptime
            && *stdout == other.stdout
            && *stderr == other.stderr
            && *redirect_stderr == other.redirect_stderr
            && *kill_leftovers == other.kill_leftovers
            && *env == other.env
            && *workingdir == other.workingdir
            && *umask == other.umask
            && *identity == other.identity
            && *tty == other.tty
            && *stdin == other.stdin
    }
}

#[cfg(test)]
mod tests {
    use crate::config::testing::{web, web_as_root};

    #[test]
    fn same_except_numprocs() {
        let a = web("numprocs: 1");
        let b = web("numprocs: 5");
        let c = web("env: {A: b}");
        let d = web_as_root("user: root");
        assert!(a.same_except_numprocs(&b));
        assert!(!a.same_except_numprocs(&d));
        assert!(b.same_except_numprocs(&a));
        assert!(a.same_except_numprocs(&a));
        assert!(!a.same_except_numprocs(&c));
        assert_ne!(a, b);
    }
}
