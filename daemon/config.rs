//! The taskmasterd configuration file: its YAML schema and defaults, validation that reports every
//! problem of a file at once (each with line, column and dotted key), and where the file is found.
//!
//! `serde_yaml` parses the text into a [`Value`] (YAML 1.2 scalars: `yes` is a string, `022` the
//! string "022"; merge keys `<<` applied), which is then checked setting by setting so that every
//! problem is reported. A `Value` does not know where it was written, so `saphyr-parser`'s event
//! stream is read once beside it into an `Index` of where each key and value is, which also keeps
//! plain scalars as written: env values keep their spelling (`1.10`) and `umask: 0o22` is octal.

use std::cell::OnceCell;
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use nix::sys::signal::Signal;
use saphyr_parser::{Event, Marker, Parser, ScalarStyle};
use serde_yaml::{Mapping, Value};
/// The name of the config file looked for by [`find`].
pub const DEFAULT_FILE_NAME: &str = "taskmaster.yaml";

/// Largest accepted `numprocs`.
const MAX_NUMPROCS: u32 = 100_000;
/// Largest accepted `startretries`.
const MAX_STARTRETRIES: u32 = 1000;
/// Largest accepted `starttime` / `stoptime`, in seconds (one day).
const MAX_SECONDS: u64 = 86_400;
/// Largest accepted exit code.
const MAX_EXIT_CODE: i32 = 255;
/// Largest accepted `umask`.
const MAX_UMASK: u32 = 0o777;
/// Longest key path recorded in the position index: the schema's deepest is
/// `programs.NAME.env.VAR` (or `programs.NAME.exitcodes.N`).
const INDEXED_DEPTH: usize = 4;
/// Longest socket path `bind(2)` accepts (`sun_path` minus its terminating NUL).
#[cfg(any(target_os = "linux", target_os = "android"))]
const MAX_SOCKET_PATH: usize = 107;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const MAX_SOCKET_PATH: usize = 103;

/// Keys allowed at the top level.
const TOP_KEYS: &[&str] = &["daemon", "programs"];
/// Keys allowed under `daemon`.
const DAEMON_KEYS: &[&str] = &["socket", "listen", "logfile", "pidfile"];
/// Keys allowed in a program.
const PROGRAM_KEYS: &[&str] = &[
    "cmd",
    "numprocs",
    "autostart",
    "autorestart",
    "exitcodes",
    "starttime",
    "startretries",
    "stopsignal",
    "stoptime",
    "stdout",
    "stderr",
    "env",
    "workingdir",
    "umask",
];

/// A validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Absolute path of the file it was read from.
    pub path: PathBuf,
    pub daemon: DaemonSettings,
    /// Programs by name (sorted).
    pub programs: BTreeMap<String, ProgramConfig>,
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
    pub pidfile: Option<PathBuf>,
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

/// One program of the `programs:` section. Every value is in the range the schema allows and
/// every path is absolute.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgramConfig {
    /// `cmd` split into words as a shell would; never empty. Two spellings of the same words
    /// are the same command.
    pub argv: Vec<String>,
    /// 1..=100000.
    pub numprocs: u32,
    pub autostart: bool,
    pub autorestart: AutoRestart,
    /// Sorted, without duplicates, each 0..=255.
    pub exitcodes: Vec<i32>,
    /// At most one day.
    pub starttime: Duration,
    /// 0..=1000.
    pub startretries: u32,
    pub stopsignal: Signal,
    /// At most one day.
    pub stoptime: Duration,
    /// `None`: discard.
    pub stdout: Option<PathBuf>,
    /// `None`: discard.
    pub stderr: Option<PathBuf>,
    /// Keys are non-empty, without `=` or NUL; values without NUL.
    pub env: BTreeMap<String, String>,
    pub workingdir: Option<PathBuf>,
    /// At most 0o777.
    pub umask: Option<u32>,
}

impl ProgramConfig {
    /// The defaults of every setting, for the given command.
    fn with_command(argv: Vec<String>) -> ProgramConfig {
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
            stdout: None,
            stderr: None,
            env: BTreeMap::new(),
            workingdir: None,
            umask: None,
        }
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
            env,
            workingdir,
            umask,
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
            && *env == other.env
            && *workingdir == other.workingdir
            && *umask == other.umask
    }
}

/// Why a config could not be found, read or accepted.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("no config file found; tried {}", join_paths(tried))]
    NotFound { tried: Vec<PathBuf> },
    /// Every problem found in the file, in file order. Display: one per line.
    #[error("{}", join_issues(path, issues))]
    Invalid {
        path: PathBuf,
        issues: Vec<ConfigIssue>,
    },
}

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    /// Dotted key path: "programs.web.numprocs", "daemon.listen", "programs.web" ... Empty for a
    /// problem outside any key (a syntax error at the top level, a document that is not a mapping).
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigIssue {
    /// `{line}:{column}: {key}: {message}`, or `{line}:{column}: {message}` when `key` is empty.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}:{}: {}", self.line, self.column, self.message)
        } else {
            write!(
                f,
                "{}:{}: {}: {}",
                self.line, self.column, self.key, self.message
            )
        }
    }
}

fn join_paths(paths: &[PathBuf]) -> String {
    let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    shown.join(", ")
}

fn join_issues(path: &Path, issues: &[ConfigIssue]) -> String {
    let lines: Vec<String> = issues
        .iter()
        .map(|issue| format!("{}:{issue}", path.display()))
        .collect();
    lines.join("\n")
}

/// Reads and validates a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let path = absolute(path)?;
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
        path: path.clone(),
        source,
    })?;
    parse(&text, &path)
}

/// Validates config text; `path` is used for messages and to resolve relative paths. A relative
/// `path` is taken from the current directory (`Read` error when there is none).
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let path = absolute(path)?;
    let dir = path.parent().unwrap_or(Path::new("/")).to_path_buf();
    let mut checker = Checker {
        dir: &dir,
        index: LazyIndex {
            text,
            built: OnceCell::new(),
        },
        issues: Vec::new(),
    };
    let settings = match serde_yaml::from_str::<Value>(text) {
        Ok(mut root) => match root.apply_merge() {
            Ok(()) => checker.root(&root),
            Err(err) => {
                checker.merge_error(&err);
                None
            }
        },
        Err(err) => {
            checker.yaml_error(&err);
            None
        }
    };
    match settings {
        Some((daemon, programs)) if checker.issues.is_empty() => Ok(Config {
            path,
            daemon,
            programs,
        }),
        _ => Err(invalid(path, checker.issues)),
    }
}

/// [`ConfigError::Invalid`] with the issues in file order.
fn invalid(path: PathBuf, mut issues: Vec<ConfigIssue>) -> ConfigError {
    // Stable: problems at the same place keep the order they were found in.
    issues.sort_by_key(|issue| (issue.line, issue.column));
    ConfigError::Invalid { path, issues }
}

/// The config file to use: `explicit` if given (it must exist), else ./taskmaster.yaml, else
/// $XDG_CONFIG_HOME/taskmaster/taskmaster.yaml (XDG_CONFIG_HOME defaulting to ~/.config), else
/// /etc/taskmaster/taskmaster.yaml. Error lists the places tried. The path returned is absolute.
pub fn find(explicit: Option<&Path>) -> Result<PathBuf, ConfigError> {
    // Without a current directory the relative candidates stay relative; nothing better exists.
    let cwd = std::env::current_dir().unwrap_or_default();
    let xdg = std::env::var_os("XDG_CONFIG_HOME");
    let home = std::env::var_os("HOME");
    find_in(
        explicit,
        &SearchPlaces {
            cwd: &cwd,
            xdg_config_home: xdg.as_deref(),
            home: home.as_deref(),
            system_dir: Path::new("/etc"),
        },
    )
}

/// What [`find`] reads from the process, passed in so tests need not change the process.
struct SearchPlaces<'a> {
    cwd: &'a Path,
    xdg_config_home: Option<&'a OsStr>,
    home: Option<&'a OsStr>,
    /// `/etc` outside tests.
    system_dir: &'a Path,
}

impl SearchPlaces<'_> {
    /// The places searched, in order.
    fn candidates(&self) -> Vec<PathBuf> {
        let mut places = vec![clean(&self.cwd.join(DEFAULT_FILE_NAME))];
        // As the XDG base directory spec says: an empty or relative value is ignored.
        let config_home = match self.xdg_config_home.map(Path::new) {
            Some(dir) if dir.is_absolute() => Some(dir.to_path_buf()),
            _ => self
                .home
                .filter(|home| !home.is_empty())
                .map(|home| Path::new(home).join(".config")),
        };
        if let Some(dir) = config_home {
            places.push(clean(&dir.join("taskmaster").join(DEFAULT_FILE_NAME)));
        }
        places.push(self.system_dir.join("taskmaster").join(DEFAULT_FILE_NAME));
        places
    }
}

fn find_in(explicit: Option<&Path>, places: &SearchPlaces<'_>) -> Result<PathBuf, ConfigError> {
    if let Some(path) = explicit {
        let path = clean(&places.cwd.join(path));
        return match std::fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => Err(ConfigError::Read {
                path,
                source: io::Error::new(io::ErrorKind::IsADirectory, "is a directory"),
            }),
            Ok(_) => Ok(path),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                Err(ConfigError::NotFound { tried: vec![path] })
            }
            Err(source) => Err(ConfigError::Read { path, source }),
        };
    }
    let tried = places.candidates();
    match tried.iter().find(|path| path.is_file()) {
        Some(path) => Ok(path.clone()),
        None => Err(ConfigError::NotFound { tried }),
    }
}

/// Parses a signal name or number: "TERM", "SIGTERM", "term", "USR1", "15".
pub fn parse_signal(text: &str) -> Result<Signal, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty signal name".to_string());
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<i32>()
            .ok()
            .and_then(|number| Signal::try_from(number).ok())
            .ok_or_else(|| format!("unknown signal number {text}"));
    }
    let upper = text.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    Signal::from_str(&format!("SIG{name}")).map_err(|_| {
        format!("unknown signal `{text}`; use a name like TERM, INT, HUP, USR1 or a number like 15")
    })
}

/// `path` made absolute against the current directory, without `.` components.
fn absolute(path: &Path) -> Result<PathBuf, ConfigError> {
    if path.is_absolute() {
        return Ok(clean(path));
    }
    let cwd = std::env::current_dir().map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(clean(&cwd.join(path)))
}

/// `path` without `.` components. `..` stays: removing it is wrong across symbolic links.
fn clean(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Where things are written.

/// A place in the text; both 1-based, the column counted in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Pos {
    line: usize,
    column: usize,
}

impl Pos {
    const START: Pos = Pos { line: 1, column: 1 };

    fn of(marker: &Marker) -> Pos {
        // saphyr: line is 1-based, column 0-based.
        Pos {
            line: marker.line().max(1),
            column: marker.col().saturating_add(1),
        }
    }
}

/// Where a key and its value are written. For a list item or the whole document both are the
/// value's place; for a key with nothing after it (`numprocs:`) both are the key's.
#[derive(Debug)]
struct Place {
    key: Pos,
    value: Pos,
    /// The value as written, if it is a plain untagged scalar: serde_yaml reads `0o17` and `017`
    /// as different numbers, and `1.10` as 1.1.
    plain: Option<String>,
}

/// The place of what is not found.
static NOWHERE: Place = Place {
    key: Pos::START,
    value: Pos::START,
    plain: None,
};

/// Where each key and value of the first document is written, by key path: the keys from the top
/// down, list items by their number (`["programs", "web", "exitcodes", "1"]`). Aliases are not
/// followed: what is under one is found at the alias.
#[derive(Default)]
struct Index {
    /// Paths of at most `INDEXED_DEPTH` keys.
    places: HashMap<Vec<String>, Place>,
    /// Keys set twice in a mapping. serde_yaml rejects them too, but only at the mapping.
    duplicates: Vec<ConfigIssue>,
    /// Where a second document starts.
    second_document: Option<Pos>,
}

impl Index {
    /// Reads as much of `text` as `saphyr-parser` can; a syntax error just ends the index there.
    fn build(text: &str) -> Index {
        /// An open list (with the number of items so far) or mapping (with its pending key, and
        /// the key's place, between a key and its value).
        enum Frame {
            Seq(usize),
            Map(Option<(String, Pos)>),
        }
        let mut index = Index::default();
        let mut frames: Vec<Frame> = Vec::new();
        // The key of each open collection; "" for the whole document.
        let mut path: Vec<String> = Vec::new();
        let mut documents = 0;
        for (event, span) in Parser::new_from_str(text).map_while(Result::ok) {
            let pos = Pos::of(&span.start);
            let (text, opens) = match &event {
                Event::DocumentStart(_) => {
                    documents += 1;
                    if documents > 1 {
                        index.second_document = Some(pos);
                        break;
                    }
                    continue;
                }
                Event::SequenceEnd | Event::MappingEnd => {
                    frames.pop();
                    path.pop();
                    continue;
                }
                Event::Scalar(text, ..) => (Some(text.as_ref()), false),
                Event::Alias(_) => (None, false),
                Event::SequenceStart(..) | Event::MappingStart(..) => (None, true),
                _ => continue,
            };
            // This node's key (none for the document) and where that key is.
            let (key, key_pos) = match frames.last_mut() {
                None => (None, pos),
                Some(Frame::Seq(count)) => {
                    *count += 1;
                    (Some((*count - 1).to_string()), pos)
                }
                Some(Frame::Map(pending)) => match pending.take() {
                    Some((key, key_pos)) => (Some(key), key_pos),
                    None => {
                        // The node is a key; a list or mapping as a key gets a placeholder name.
                        *pending = Some((text.unwrap_or("?").to_string(), pos));
                        if opens {
                            frames.push(Frame::Map(None));
                            path.push("?".to_string());
                        }
                        continue;
                    }
                },
            };
            let plain = match &event {
                Event::Scalar(text, ScalarStyle::Plain, _, None) => Some(text.to_string()),
                _ => None,
            };
            let value_pos = if plain.as_deref() == Some("") {
                key_pos
            } else {
                pos
            };
            if path.len() <= INDEXED_DEPTH {
                let full: Vec<String> = path.iter().skip(1).cloned().chain(key.clone()).collect();
                match index.places.get(&full) {
                    Some(first) => index.duplicates.push(issue(
                        key_pos,
                        full.join("."),
                        format!(
                            "duplicate key `{}` (first set at line {}, column {})",
                            last(&full),
                            first.key.line,
                            first.key.column
                        ),
                    )),
                    None => {
                        let place = Place {
                            key: key_pos,
                            value: value_pos,
                            plain,
                        };
                        index.places.insert(full, place);
                    }
                }
            }
            if opens {
                let seq = matches!(event, Event::SequenceStart(..));
                frames.push(if seq { Frame::Seq(0) } else { Frame::Map(None) });
                path.push(key.unwrap_or_default());
            }
        }
        index
    }

    /// The place of `path`. A key that is not written there itself (it comes from an alias or a
    /// merge) is reported at the `<<` merge key beside it, else at its nearest written parent.
    fn place(&self, path: &[String]) -> &Place {
        let mut path = path.to_vec();
        loop {
            if let Some(place) = self.places.get(&path) {
                return place;
            }
            if let Some(last) = path.last_mut()
                && last != "<<"
            {
                *last = "<<".to_string();
                if let Some(place) = self.places.get(&path) {
                    return place;
                }
            }
            if path.pop().is_none() {
                return &NOWHERE;
            }
        }
    }

    /// The value at `path` as written, if it is a plain scalar written there.
    fn plain(&self, path: &[String]) -> Option<&str> {
        self.places.get(path)?.plain.as_deref()
    }

    /// The dotted key of the deepest value written at `pos`, or "" if none is.
    fn key_at(&self, pos: Pos) -> String {
        let deepest = self
            .places
            .iter()
            .filter(|(_, place)| place.value == pos)
            .map(|(path, _)| path)
            .max_by_key(|path| path.len());
        deepest.map(|path| path.join(".")).unwrap_or_default()
    }
}

fn issue(pos: Pos, key: impl Into<String>, message: impl Into<String>) -> ConfigIssue {
    ConfigIssue {
        line: pos.line,
        column: pos.column,
        key: key.into(),
        message: message.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Validation.

/// The position index, built on first use: a valid config with nothing that needs the text
/// as written is parsed once, by serde_yaml alone.
struct LazyIndex<'a> {
    text: &'a str,
    built: OnceCell<Index>,
}

impl LazyIndex<'_> {
    fn get(&self) -> &Index {
        self.built.get_or_init(|| Index::build(self.text))
    }
}

/// Walks the document, converting each setting on its own so that every bad one is reported.
struct Checker<'a> {
    /// Directory of the config file; relative paths are resolved against it.
    dir: &'a Path,
    index: LazyIndex<'a>,
    issues: Vec<ConfigIssue>,
}

type Settings = (DaemonSettings, BTreeMap<String, ProgramConfig>);

impl Checker<'_> {
    /// Reports a problem with the value at `path`, or with its key when `at_key`.
    fn report(&mut self, path: &[String], at_key: bool, message: impl Into<String>) {
        let place = self.index.get().place(path);
        let pos = if at_key { place.key } else { place.value };
        self.issues.push(issue(pos, path.join("."), message));
    }

    /// The converted value, or `None` with the problem reported at the value of `path`.
    fn check<T>(&mut self, path: &[String], converted: Result<T, String>) -> Option<T> {
        converted
            .map_err(|message| self.report(path, false, message))
            .ok()
    }

    /// serde_yaml could not read the text: a syntax error, a bad tagged value, an unknown alias,
    /// a limit reached, a second document or a duplicate key.
    fn yaml_error(&mut self, err: &serde_yaml::Error) {
        if !self.index.get().duplicates.is_empty() {
            // Reported where they are, not at their mapping as serde_yaml does.
            self.issues
                .extend(self.index.get().duplicates.iter().cloned());
            return;
        }
        if let (None, Some(pos)) = (err.location(), self.index.get().second_document) {
            let message = "a config file holds one YAML document; a second one starts here";
            self.issues.push(issue(pos, "", message));
            return;
        }
        let pos = err.location().map_or(Pos::START, |at| Pos {
            line: at.line(),
            column: at.column(),
        });
        // The message names the place, and the key of a bad value: say them once.
        let key = self.index.get().key_at(pos);
        let at = format!(" at line {} column {}", pos.line, pos.column);
        let message = err.to_string().replacen(&at, "", 1);
        let message = message
            .strip_prefix(&format!("{key}: "))
            .unwrap_or(&message);
        let message = format!("invalid YAML: {message}");
        self.issues.push(issue(pos, key, message));
    }

    /// A merge key `<<` with a value that cannot be merged; reported at the first one.
    fn merge_error(&mut self, err: &serde_yaml::Error) {
        let first = (self.index.get().places.iter())
            .filter(|(path, _)| last(path) == "<<")
            .min_by_key(|(_, place)| place.key);
        let (key, pos) = first.map_or((String::new(), Pos::START), |(path, place)| {
            (path.join("."), place.value)
        });
        self.issues
            .push(issue(pos, key, format!("merge key `<<`: {err}")));
    }

    /// The entries of a mapping, each with its key path; keys that are not scalars are reported.
    fn entries<'v>(&mut self, path: &[String], map: &'v Mapping) -> Vec<(Vec<String>, &'v Value)> {
        let mut entries = Vec::with_capacity(map.len());
        for (key, value) in map {
            let name = match key {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => {
                    // The index names a list or mapping key "?".
                    let pos = self
                        .index
                        .get()
                        .place(&[path, &["?".to_string()]].concat())
                        .key;
                    let message =
                        format!("a key must be a string or a number, not {}", describe(key));
                    self.issues.push(issue(pos, path.join("."), message));
                    continue;
                }
            };
            let mut key_path = path.to_vec();
            key_path.push(name);
            entries.push((key_path, value));
        }
        entries
    }

    fn unknown_key(&mut self, path: &[String], known: &[&str]) {
        let key = last(path);
        let hint = match typo_of(key, known) {
            Some(k) => format!(" (did you mean `{k}`?)"),
            None => String::new(),
        };
        let message = format!(
            "unknown key `{key}`{hint}; expected one of {}",
            known.join(", ")
        );
        self.report(path, true, message);
    }

    /// The whole document. `None` when something is missing; problems are in `self.issues`.
    fn root(&mut self, root: &Value) -> Option<Settings> {
        let map = match root {
            Value::Mapping(map) => map,
            Value::Null => {
                let message = "missing required key `programs` (the file has no content)";
                self.issues.push(issue(
                    self.index.get().place(&[]).value,
                    "programs",
                    message,
                ));
                return None;
            }
            _ => {
                let what = "a mapping with keys `programs` and `daemon`";
                self.report(&[], false, expected(what, root));
                return None;
            }
        };
        let mut daemon = Some(DaemonSettings::default());
        let mut programs = None;
        let mut has_programs = false;
        for (path, value) in self.entries(&[], map) {
            match last(&path) {
                "daemon" => daemon = self.daemon(&path, value),
                "programs" => {
                    has_programs = true;
                    programs = self.programs(&path, value);
                }
                _ => self.unknown_key(&path, TOP_KEYS),
            }
        }
        if !has_programs {
            let pos = self.index.get().place(&[]).value;
            self.issues
                .push(issue(pos, "programs", "missing required key `programs`"));
        }
        Some((daemon?, programs?))
    }

    fn daemon(&mut self, path: &[String], section: &Value) -> Option<DaemonSettings> {
        let mut settings = DaemonSettings::default();
        let map = match section {
            Value::Null => return Some(settings),
            Value::Mapping(map) => map,
            _ => {
                let what = "a mapping of daemon settings";
                self.report(path, false, expected(what, section));
                return None;
            }
        };
        let before = self.issues.len();
        for (path, value) in self.entries(path, map) {
            match last(&path) {
                "socket" => {
                    let socket = file_path(self.dir, value).and_then(|socket| match socket {
                        Some(p) if p.as_os_str().len() > MAX_SOCKET_PATH => Err(format!(
                            "socket path {} is {} bytes long once made absolute; a Unix socket path takes at most {MAX_SOCKET_PATH}",
                            p.display(),
                            p.as_os_str().len()
                        )),
                        socket => Ok(socket),
                    });
                    settings.socket = self.check(&path, socket).flatten();
                }
                "listen" => settings.listen = self.check(&path, listen(value)).flatten(),
                "logfile" => {
                    settings.logfile = self.check(&path, file_path(self.dir, value)).flatten()
                }
                "pidfile" => {
                    settings.pidfile = self.check(&path, file_path(self.dir, value)).flatten()
                }
                _ => self.unknown_key(&path, DAEMON_KEYS),
            }
        }
        (self.issues.len() == before).then_some(settings)
    }

    fn programs(
        &mut self,
        path: &[String],
        section: &Value,
    ) -> Option<BTreeMap<String, ProgramConfig>> {
        let Value::Mapping(map) = section else {
            let what = "a mapping of programs by name (`{}` for none)";
            self.report(path, false, expected(what, section));
            return None;
        };
        let before = self.issues.len();
        let mut programs = BTreeMap::new();
        for (path, value) in self.entries(path, map) {
            let name = last(&path);
            if name == "all" {
                let message = "`all` cannot name a program: taskctl uses it for every program";
                self.report(&path, true, message);
            } else if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
            {
                let message = format!(
                    "invalid program name {name:?}: use letters, digits, `_`, `.` and `-` only"
                );
                self.report(&path, true, message);
            }
            // Checked even under a bad name, to report its problems too.
            if let Some(program) = self.program(&path, value) {
                programs.insert(name.to_string(), program);
            }
        }
        (self.issues.len() == before).then_some(programs)
    }

    fn program(&mut self, path: &[String], section: &Value) -> Option<ProgramConfig> {
        let Value::Mapping(map) = section else {
            self.report(
                path,
                false,
                expected("a mapping of program settings", section),
            );
            return None;
        };
        let before = self.issues.len();
        // `argv` is filled in at the end; everything else starts at its default.
        let mut p = ProgramConfig::with_command(Vec::new());
        let mut command = None;
        let mut has_cmd = false;
        for (key, value) in self.entries(path, map) {
            let dir = self.dir;
            match last(&key) {
                "cmd" => {
                    has_cmd = true;
                    command = self.check(&key, command_line(value));
                }
                "numprocs" => set(
                    &mut p.numprocs,
                    self.check(&key, count(value, 1, MAX_NUMPROCS)),
                ),
                "autostart" => set(&mut p.autostart, self.check(&key, boolean(value))),
                "autorestart" => set(&mut p.autorestart, self.check(&key, autorestart(value))),
                "exitcodes" => set(&mut p.exitcodes, self.exitcodes(&key, value)),
                "starttime" => set(&mut p.starttime, self.check(&key, duration(value))),
                "startretries" => set(
                    &mut p.startretries,
                    self.check(&key, count(value, 0, MAX_STARTRETRIES)),
                ),
                "stopsignal" => set(&mut p.stopsignal, self.check(&key, signal(value))),
                "stoptime" => set(&mut p.stoptime, self.check(&key, duration(value))),
                "stdout" => p.stdout = self.check(&key, file_path(dir, value)).flatten(),
                "stderr" => p.stderr = self.check(&key, file_path(dir, value)).flatten(),
                "env" => set(&mut p.env, self.env(&key, value)),
                "workingdir" => p.workingdir = self.check(&key, file_path(dir, value)).flatten(),
                "umask" => {
                    let written = self.index.get().plain(&key);
                    p.umask = self.check(&key, umask(value, written)).flatten();
                }
                _ => self.unknown_key(&key, PROGRAM_KEYS),
            }
        }
        if !has_cmd {
            self.report(path, true, "missing required key `cmd`");
        }
        let argv = command?;
        (self.issues.len() == before).then_some(ProgramConfig { argv, ..p })
    }

    /// One exit code or a list of them; sorted and deduplicated. Each bad code is reported where
    /// it is written.
    fn exitcodes(&mut self, path: &[String], value: &Value) -> Option<Vec<i32>> {
        let what = format!("an exit code from 0 to {MAX_EXIT_CODE}");
        let items: Vec<(Vec<String>, &Value)> = match value {
            Value::Sequence(items) => (items.iter().enumerate())
                .map(|(i, item)| ([path, &[i.to_string()]].concat(), item))
                .collect(),
            Value::Number(_) => vec![(path.to_vec(), value)],
            _ => {
                self.report(
                    path,
                    false,
                    expected(&format!("{what} or a list of them"), value),
                );
                return None;
            }
        };
        let mut codes = Vec::with_capacity(items.len());
        let mut ok = true;
        for (item_path, item) in items {
            let code = match item {
                Value::Number(n) if !n.is_f64() => (n.as_u64())
                    .and_then(|code| i32::try_from(code).ok())
                    .filter(|code| *code <= MAX_EXIT_CODE)
                    .ok_or_else(|| format!("exit codes are from 0 to {MAX_EXIT_CODE}, found {n}")),
                _ => Err(expected(&what, item)),
            };
            match code {
                Ok(code) => codes.push(code),
                Err(message) => {
                    ok = false;
                    let pos = self.index.get().place(&item_path).value;
                    self.issues.push(issue(pos, path.join("."), message));
                }
            }
        }
        codes.sort_unstable();
        codes.dedup();
        ok.then_some(codes)
    }

    /// Environment variables; numbers and booleans become their text.
    fn env(&mut self, path: &[String], value: &Value) -> Option<BTreeMap<String, String>> {
        let vars = match value {
            Value::Null => return Some(BTreeMap::new()),
            Value::Mapping(vars) => vars,
            _ => {
                let what = "a mapping of environment variables";
                self.report(path, false, expected(what, value));
                return None;
            }
        };
        let before = self.issues.len();
        let mut env = BTreeMap::new();
        for (path, value) in self.entries(path, vars) {
            let name = last(&path);
            if name.is_empty() || name.contains(['=', '\0']) {
                let message = format!(
                    "invalid variable name {name:?}: it must be non-empty, without `=` or NUL"
                );
                self.report(&path, true, message);
            }
            let written = self.index.get().plain(&path).map(str::to_string);
            let text = match value {
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) => Ok(written.unwrap_or_else(|| n.to_string())),
                Value::Bool(b) => Ok(written.unwrap_or_else(|| b.to_string())),
                Value::Null => Err(
                    "an environment value cannot be null; write \"\" for an empty one".to_string(),
                ),
                _ => Err(expected("a string, number or boolean", value)),
            };
            let text = text.and_then(|text| match text.contains('\0') {
                true => Err("the value contains a NUL character".to_string()),
                false => Ok(text),
            });
            if let Some(text) = self.check(&path, text) {
                env.insert(name.to_string(), text);
            }
        }
        (self.issues.len() == before).then_some(env)
    }
}

/// The last key of a key path.
fn last(path: &[String]) -> &str {
    path.last().map_or("", String::as_str)
}

/// Stores a converted value; `None` (a reported problem) leaves the default.
fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *slot = value;
    }
}

/// "expected {what}, found {value}".
fn expected(what: &str, value: &Value) -> String {
    format!("expected {what}, found {}", describe(value))
}

/// How a value is named in messages: `string "abc"`, `integer 0`, `a list`...
fn describe(value: &Value) -> String {
    match value {
        Value::Null => "nothing (null)".to_string(),
        Value::Bool(b) => format!("boolean `{b}`"),
        Value::Number(n) if n.is_f64() => format!("number `{n}`"),
        Value::Number(n) => format!("integer `{n}`"),
        Value::String(s) if s.chars().count() > 40 => {
            format!(
                "string {:?}",
                s.chars().take(40).chain(['…']).collect::<String>()
            )
        }
        Value::String(s) => format!("string {s:?}"),
        Value::Sequence(_) => "a list".to_string(),
        Value::Mapping(_) => "a mapping".to_string(),
        Value::Tagged(tagged) => format!("a value with the unsupported tag `{}`", tagged.tag),
    }
}

/// The known key that `key` looks like a typo of: the two differ only within two adjacent
/// characters (`cmdd`, `deamon`, `sock` for `socket`).
fn typo_of<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    let same = |a: &mut dyn Iterator<Item = (char, char)>| a.take_while(|(x, y)| x == y).count();
    known.iter().copied().find(|k| {
        let prefix = same(&mut key.chars().zip(k.chars()));
        let suffix = same(&mut key.chars().rev().zip(k.chars().rev()));
        let (a, b) = (key.chars().count(), k.chars().count());
        (prefix + suffix).min(a.min(b)) + 2 >= a.max(b)
    })
}

/// The command line and its words (at least one).
fn command_line(value: &Value) -> Result<Vec<String>, String> {
    let Value::String(text) = value else {
        return Err(expected("a command line (a string)", value));
    };
    if text.contains('\0') {
        return Err("the command contains a NUL character".to_string());
    }
    match shell_words::split(text) {
        Ok(argv) if argv.is_empty() => Err("the command is empty".to_string()),
        Ok(argv) => Ok(argv),
        Err(err) => Err(format!("cannot split the command into words: {err}")),
    }
}

/// An integer in `min..=max`.
fn count(value: &Value, min: u32, max: u32) -> Result<u32, String> {
    match value {
        Value::Number(n) if !n.is_f64() => (n.as_u64())
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| format!("must be from {min} to {max}, found {n}")),
        _ => Err(expected(&format!("an integer from {min} to {max}"), value)),
    }
}

fn boolean(value: &Value) -> Result<bool, String> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::String(s)
            if ["yes", "no", "on", "off", "y", "n"]
                .iter()
                .any(|word| s.eq_ignore_ascii_case(word)) =>
        {
            Err(format!(
                "expected true or false, found string {s:?} (YAML 1.2 reads `{s}` as a string)"
            ))
        }
        _ => Err(expected("true or false", value)),
    }
}

fn autorestart(value: &Value) -> Result<AutoRestart, String> {
    let word = match value {
        Value::Bool(true) => "always",
        Value::Bool(false) => "never",
        Value::String(s) => s,
        _ => "",
    };
    match word.to_ascii_lowercase().as_str() {
        "always" => Ok(AutoRestart::Always),
        "never" => Ok(AutoRestart::Never),
        "unexpected" => Ok(AutoRestart::Unexpected),
        _ => Err(expected("always, never or unexpected", value)),
    }
}

/// Seconds (a number), or a humantime string like "1500ms"; at most a day.
fn duration(value: &Value) -> Result<Duration, String> {
    let duration = match value {
        Value::Number(n) => match n.as_f64() {
            Some(seconds) if seconds < 0.0 => return Err(format!("must not be negative, found {n}")),
            // NaN and too large to hold give `None`, refused below.
            seconds => seconds.and_then(|s| Duration::try_from_secs_f64(s).ok()),
        },
        Value::String(s) => Some(humantime::parse_duration(s).map_err(|err| {
            format!("expected seconds (a number >= 0) or a duration like \"1500ms\", found string {s:?} ({err})")
        })?),
        _ => return Err(expected("seconds (a number >= 0)", value)),
    };
    duration
        .filter(|duration| *duration <= Duration::from_secs(MAX_SECONDS))
        .ok_or_else(|| {
            let found = describe(value);
            format!("must be at most {MAX_SECONDS} seconds (one day), found {found}")
        })
}

fn signal(value: &Value) -> Result<Signal, String> {
    match value {
        Value::String(s) => parse_signal(s),
        Value::Number(n) if !n.is_f64() => parse_signal(&n.to_string()),
        _ => Err(expected(
            "a signal name like TERM or a number like 15",
            value,
        )),
    }
}

/// A path, absolute once resolved against the config's directory `dir`; null means not set.
fn file_path(dir: &Path, value: &Value) -> Result<Option<PathBuf>, String> {
    let text = match value {
        Value::Null => return Ok(None),
        Value::String(s) => s.clone(),
        // A path may well look like a number: `1.0`.
        Value::Number(n) => n.to_string(),
        _ => return Err(expected("a path (null or left out for none)", value)),
    };
    if text.is_empty() {
        Err("the path is empty".to_string())
    } else if text.contains('\0') {
        Err("the path contains a NUL character".to_string())
    } else {
        Ok(Some(clean(&dir.join(text))))
    }
}

/// A TCP address `ip:port`, or a bare port for `127.0.0.1:port`; null means not set. Port 0
/// (any free port) is refused: clients could not know where to connect.
fn listen(value: &Value) -> Result<Option<String>, String> {
    let what = "an address like 127.0.0.1:7300 or [::1]:7300, or a port number";
    let text = match value {
        Value::Null => return Ok(None),
        Value::String(s) => s.clone(),
        Value::Number(n) if !n.is_f64() => n.to_string(),
        _ => return Err(expected(what, value)),
    };
    let address = match text.parse::<u16>() {
        Ok(port) if text.bytes().all(|b| b.is_ascii_digit()) => {
            Some(SocketAddr::from(([127, 0, 0, 1], port)))
        }
        _ => text.parse::<SocketAddr>().ok(),
    };
    match address {
        Some(address) if address.port() != 0 => Ok(Some(address.to_string())),
        Some(_) => {
            Err("port 0 (any free port) cannot be used: clients would not know it".to_string())
        }
        None => Err(expected(&format!("{what} (1 to 65535)"), value)),
    }
}

/// Octal digits, with or without `0o`, as a string or as an integer as `written` (`umask: 22` is
/// 0o22, as is `umask: 0o22`); null means not set.
fn umask(value: &Value, written: Option<&str>) -> Result<Option<u32>, String> {
    let text = match value {
        Value::Null => return Ok(None),
        Value::String(s) => s.clone(),
        Value::Number(n) if !n.is_f64() => written.map_or_else(|| n.to_string(), str::to_string),
        _ => return Err(expected("an octal umask like 022", value)),
    };
    let digits = (text.strip_prefix("0o"))
        .or_else(|| text.strip_prefix("0O"))
        .unwrap_or(&text);
    if digits.is_empty() || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err(format!(
            "expected octal digits 0-7 like 022, found {text:?}"
        ));
    }
    match u32::from_str_radix(digits, 8) {
        Ok(mask) if mask <= MAX_UMASK => Ok(Some(mask)),
        _ => Err(format!("must be at most 0777, found {text}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATH: &str = "/srv/taskmaster/taskmaster.yaml";
    /// A valid program to which one setting line is appended (it becomes line 4).
    const WEB: &str = "programs:\n  web:\n    cmd: /bin/true\n";
    const FIXTURE_TEXT: &str = include_str!("../tests/fixtures/config/taskmaster.yaml");

    fn ok(text: &str) -> Config {
        parse(text, Path::new(PATH)).unwrap_or_else(|err| panic!("{text:?}:\n{err}"))
    }

    #[test]
    fn two_spellings_of_the_same_words_are_the_same_command() {
        let program = |cmd: &str| ok(&format!("programs:\n  web:\n    cmd: {cmd}\n")).programs;
        assert_eq!(program("sleep 1"), program("sleep   '1'"));
        assert_ne!(program("sleep 1"), program("sleep 2"));
    }

    fn issues(text: &str) -> Vec<ConfigIssue> {
        match parse(text, Path::new(PATH)) {
            Err(ConfigError::Invalid { path, issues }) => {
                assert_eq!(path, Path::new(PATH));
                assert!(!issues.is_empty());
                issues
            }
            other => panic!("{text:?}: expected Invalid, got {other:?}"),
        }
    }

    fn web(line: &str) -> ProgramConfig {
        let config = ok(&format!("{WEB}    {line}\n"));
        config.programs["web"].clone()
    }

    fn strings(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn full_config_gives_every_setting_and_defaults() {
        let config = ok(FIXTURE_TEXT);
        let dir = Path::new("/srv/taskmaster");
        assert_eq!(config.path, Path::new(PATH));
        assert_eq!(
            config.daemon,
            DaemonSettings {
                socket: Some(dir.join("run/taskmaster.sock")),
                listen: Some("127.0.0.1:7300".to_string()),
                logfile: Some(dir.join("taskmaster.log")),
                pidfile: Some(PathBuf::from("/tmp/taskmaster.pid")),
            }
        );
        let env = [
            ("STARTED_BY", "taskmaster"),
            ("ANSWER", "42"),
            ("DEBUG", "true"),
            ("RATIO", "1.50"),
        ];
        let worker = ProgramConfig {
            argv: strings(&[
                "/usr/bin/env",
                "python3",
                "worker.py",
                "--queue",
                "jobs high",
            ]),
            numprocs: 2,
            autostart: false,
            autorestart: AutoRestart::Always,
            exitcodes: vec![0, 2],
            starttime: Duration::from_millis(1500),
            startretries: 5,
            stopsignal: Signal::SIGUSR1,
            stoptime: Duration::from_secs(30),
            stdout: Some(PathBuf::from("/tmp/worker.out")),
            stderr: Some(dir.join("logs/worker.err")),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            workingdir: Some(dir.to_path_buf()),
            umask: Some(0o22),
        };
        let minimal = ProgramConfig {
            argv: strings(&["sleep", "60"]),
            numprocs: 1,
            autostart: true,
            autorestart: AutoRestart::Unexpected,
            exitcodes: vec![0],
            starttime: Duration::from_secs(1),
            startretries: 3,
            stopsignal: Signal::SIGTERM,
            stoptime: Duration::from_secs(10),
            stdout: None,
            stderr: None,
            env: BTreeMap::new(),
            workingdir: None,
            umask: None,
        };
        let expected: BTreeMap<String, ProgramConfig> = [
            ("minimal".to_string(), minimal),
            ("worker".to_string(), worker),
        ]
        .into();
        assert_eq!(config.programs, expected);
    }

    #[test]
    fn load_reads_the_fixture_and_resolves_against_its_directory() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config");
        let path = dir.join("taskmaster.yaml");
        let config = load(&path).unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(config.path, path);
        assert_eq!(config.daemon.logfile, Some(dir.join("taskmaster.log")));
        assert_eq!(config.programs["worker"].workingdir, Some(dir.clone()));
        assert_eq!(config, parse(FIXTURE_TEXT, &path).unwrap());
    }

    #[test]
    fn the_shipped_example_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/taskmaster.yaml");
        let config = load(&path).unwrap_or_else(|err| panic!("{err}"));
        assert!(!config.programs.is_empty());
    }

    #[test]
    fn load_reports_unreadable_files() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.yaml");
        let err = load(&missing).unwrap_err();
        assert!(matches!(&err, ConfigError::Read { path, .. } if *path == missing));
        assert!(
            err.to_string()
                .starts_with(&format!("cannot read config {}: ", missing.display()))
        );
        let binary = dir.path().join("binary.yaml");
        std::fs::write(&binary, b"programs: {}\n\xff\xfe").unwrap();
        assert!(matches!(load(&binary), Err(ConfigError::Read { .. })));
    }

    #[test]
    fn empty_programs_and_absent_or_null_daemon_are_fine() {
        for text in [
            "programs: {}\n",
            "daemon:\nprograms: {}\n",
            "daemon: {}\nprograms: {}\n",
        ] {
            let config = ok(text);
            assert_eq!(config.daemon, DaemonSettings::default(), "{text:?}");
            assert!(config.programs.is_empty());
        }
    }

    #[test]
    fn crlf_line_ends_and_byte_order_mark() {
        let config = ok("\u{feff}programs:\r\n  web:\r\n    cmd: sleep 1\r\n");
        assert_eq!(config.programs["web"].argv, ["sleep", "1"]);
        let found = issues("programs:\r\n  web:\r\n    cmd: x\r\n    numprocs: 0\r\n");
        assert_eq!((found[0].line, found[0].column), (4, 15));
    }

    #[test]
    fn bad_values_are_reported_at_their_place() {
        // (text, line, column, key, part of the message)
        let w = |line: &str| format!("{WEB}    {line}\n");
        let cases: Vec<(String, usize, usize, &str, &str)> = vec![
            (
                w("numprocs: 0"),
                4,
                15,
                "programs.web.numprocs",
                "must be from 1 to 100000, found 0",
            ),
            (
                w("numprocs: 100001"),
                4,
                15,
                "programs.web.numprocs",
                "must be from 1 to 100000",
            ),
            (
                w("numprocs: many"),
                4,
                15,
                "programs.web.numprocs",
                "expected an integer from 1 to 100000, found string \"many\"",
            ),
            (
                w("numprocs: 1.5"),
                4,
                15,
                "programs.web.numprocs",
                "found number `1.5`",
            ),
            (
                w("numprocs: \"2\""),
                4,
                15,
                "programs.web.numprocs",
                "found string \"2\"",
            ),
            (
                w("numprocs:"),
                4,
                5,
                "programs.web.numprocs",
                "found nothing (null)",
            ),
            (
                w("startretries: -1"),
                4,
                19,
                "programs.web.startretries",
                "must be from 0 to 1000",
            ),
            (
                w("autostart: yes"),
                4,
                16,
                "programs.web.autostart",
                "YAML 1.2 reads `yes` as a string",
            ),
            (
                w("autostart: 1"),
                4,
                16,
                "programs.web.autostart",
                "expected true or false, found integer `1`",
            ),
            (
                w("autorestart: sometimes"),
                4,
                18,
                "programs.web.autorestart",
                "expected always, never or unexpected",
            ),
            (
                w("exitcodes: 256"),
                4,
                16,
                "programs.web.exitcodes",
                "exit codes are from 0 to 255, found 256",
            ),
            (
                w("exitcodes: [0, 256]"),
                4,
                20,
                "programs.web.exitcodes",
                "found 256",
            ),
            (
                w("exitcodes: [0, x]"),
                4,
                20,
                "programs.web.exitcodes",
                "expected an exit code from 0 to 255, found string \"x\"",
            ),
            (
                w("exitcodes: {a: 1}"),
                4,
                16,
                "programs.web.exitcodes",
                "or a list of them, found a mapping",
            ),
            (
                w("starttime: -1"),
                4,
                16,
                "programs.web.starttime",
                "must not be negative",
            ),
            (
                w("starttime: -0.5"),
                4,
                16,
                "programs.web.starttime",
                "must not be negative",
            ),
            (
                w("starttime: .inf"),
                4,
                16,
                "programs.web.starttime",
                "at most 86400 seconds",
            ),
            (
                w("starttime: .nan"),
                4,
                16,
                "programs.web.starttime",
                "found number `.nan`",
            ),
            (
                w("stoptime: 86401"),
                4,
                15,
                "programs.web.stoptime",
                "at most 86400 seconds",
            ),
            (
                w("stoptime: 2 days"),
                4,
                15,
                "programs.web.stoptime",
                "at most 86400 seconds",
            ),
            (
                w("stoptime: soon"),
                4,
                15,
                "programs.web.stoptime",
                "expected seconds",
            ),
            (
                w("stoptime: true"),
                4,
                15,
                "programs.web.stoptime",
                "expected seconds (a number >= 0), found boolean `true`",
            ),
            (
                w("stopsignal: FOO"),
                4,
                17,
                "programs.web.stopsignal",
                "unknown signal `FOO`",
            ),
            (
                w("stopsignal: 99"),
                4,
                17,
                "programs.web.stopsignal",
                "unknown signal number 99",
            ),
            (
                w("stopsignal: [TERM]"),
                4,
                17,
                "programs.web.stopsignal",
                "found a list",
            ),
            (
                w("umask: 0999"),
                4,
                12,
                "programs.web.umask",
                "expected octal digits 0-7 like 022, found \"0999\"",
            ),
            (
                w("umask: \"8\""),
                4,
                12,
                "programs.web.umask",
                "octal digits",
            ),
            (
                w("umask: 1000"),
                4,
                12,
                "programs.web.umask",
                "at most 0777",
            ),
            (
                w("umask: 0x12"),
                4,
                12,
                "programs.web.umask",
                "octal digits",
            ),
            (
                w("umask: 2.2"),
                4,
                12,
                "programs.web.umask",
                "expected an octal umask",
            ),
            (
                w("env: [A=1]"),
                4,
                10,
                "programs.web.env",
                "expected a mapping of environment variables, found a list",
            ),
            (
                w("env:\n      A:\n        B: 1"),
                6,
                9,
                "programs.web.env.A",
                "expected a string, number or boolean, found a mapping",
            ),
            (
                w("env: {A: [1]}"),
                4,
                14,
                "programs.web.env.A",
                "found a list",
            ),
            (
                w("env: {A: ~}"),
                4,
                14,
                "programs.web.env.A",
                "cannot be null",
            ),
            (
                w("env: {É: x, B: ~}"),
                4,
                20,
                "programs.web.env.B",
                "cannot be null",
            ),
            (
                w("env: {\"A=B\": x}"),
                4,
                11,
                "programs.web.env.A=B",
                "invalid variable name",
            ),
            (
                w("env: {\"\": x}"),
                4,
                11,
                "programs.web.env.",
                "invalid variable name",
            ),
            (
                w("stdout: \"\""),
                4,
                13,
                "programs.web.stdout",
                "the path is empty",
            ),
            (
                w("stdout: false"),
                4,
                13,
                "programs.web.stdout",
                "expected a path",
            ),
            (
                w("workingdir: {}"),
                4,
                17,
                "programs.web.workingdir",
                "expected a path",
            ),
            (
                w("cmdd: x"),
                4,
                5,
                "programs.web.cmdd",
                "unknown key `cmdd` (did you mean `cmd`?); expected one of cmd, numprocs,",
            ),
            (
                w("frobnicate: x"),
                4,
                5,
                "programs.web.frobnicate",
                "unknown key `frobnicate`; expected one of",
            ),
            (
                w("cmd: y"),
                4,
                5,
                "programs.web.cmd",
                "duplicate key `cmd` (first set at line 3, column 5)",
            ),
            (
                w("numprocs: !!int abc"),
                4,
                15,
                "programs.web.numprocs",
                "invalid YAML: invalid value: string \"abc\", expected an integer",
            ),
            (
                w("numprocs: !custom 3"),
                4,
                15,
                "programs.web.numprocs",
                "found a value with the unsupported tag `!custom`",
            ),
            (
                "programs:\n  web:\n    cmd: \"\"\n".into(),
                3,
                10,
                "programs.web.cmd",
                "the command is empty",
            ),
            (
                "programs:\n  web:\n    cmd: '   '\n".into(),
                3,
                10,
                "programs.web.cmd",
                "the command is empty",
            ),
            (
                "programs:\n  web:\n    cmd: \"echo 'oops\"\n".into(),
                3,
                10,
                "programs.web.cmd",
                "cannot split the command into words: missing closing quote",
            ),
            (
                "programs:\n  web:\n    cmd: 42\n".into(),
                3,
                10,
                "programs.web.cmd",
                "expected a command line (a string), found integer `42`",
            ),
            (
                "programs:\n  web:\n    cmd: [ls, -l]\n".into(),
                3,
                10,
                "programs.web.cmd",
                "found a list",
            ),
            (
                "programs:\n  web:\n    numprocs: 2\n".into(),
                2,
                3,
                "programs.web",
                "missing required key `cmd`",
            ),
            (
                "programs:\n  web:\n".into(),
                2,
                3,
                "programs.web",
                "expected a mapping of program settings, found nothing (null)",
            ),
            (
                "programs:\n  web: /bin/true\n".into(),
                2,
                8,
                "programs.web",
                "found string \"/bin/true\"",
            ),
            (
                "programs:\n  my prog:\n    cmd: x\n".into(),
                2,
                3,
                "programs.my prog",
                "invalid program name \"my prog\"",
            ),
            (
                "programs:\n  \"w/b\":\n    cmd: x\n".into(),
                2,
                3,
                "programs.w/b",
                "invalid program name",
            ),
            (
                "programs:\n  all:\n    cmd: x\n".into(),
                2,
                3,
                "programs.all",
                "`all` cannot name a program",
            ),
            (
                "programs: []\n".into(),
                1,
                11,
                "programs",
                "expected a mapping of programs by name (`{}` for none), found a list",
            ),
            (
                "programs:\n".into(),
                1,
                1,
                "programs",
                "found nothing (null)",
            ),
            (
                "programs: {}\ndeamon: {}\n".into(),
                2,
                1,
                "deamon",
                "unknown key `deamon` (did you mean `daemon`?); expected one of daemon, programs",
            ),
            (
                "daemon: 5\nprograms: {}\n".into(),
                1,
                9,
                "daemon",
                "expected a mapping of daemon settings, found integer `5`",
            ),
            (
                "daemon:\n  listen: nowhere\nprograms: {}\n".into(),
                2,
                11,
                "daemon.listen",
                "expected an address like 127.0.0.1:7300",
            ),
            (
                "daemon:\n  listen: 70000\nprograms: {}\n".into(),
                2,
                11,
                "daemon.listen",
                "found integer `70000`",
            ),
            (
                "daemon:\n  listen: localhost:7300\nprograms: {}\n".into(),
                2,
                11,
                "daemon.listen",
                "expected an address",
            ),
            (
                "daemon:\n  listen: 127.0.0.1:0\nprograms: {}\n".into(),
                2,
                11,
                "daemon.listen",
                "port 0",
            ),
            (
                "daemon:\n  socket: [a]\nprograms: {}\n".into(),
                2,
                11,
                "daemon.socket",
                "expected a path",
            ),
            (
                format!("daemon:\n  socket: /{}\nprograms: {{}}\n", "s".repeat(200)),
                2,
                11,
                "daemon.socket",
                "a Unix socket path takes at most",
            ),
            (
                "daemon:\n  sock: /x\nprograms: {}\n".into(),
                2,
                3,
                "daemon.sock",
                "(did you mean `socket`?)",
            ),
            (
                "{}\n".into(),
                1,
                1,
                "programs",
                "missing required key `programs`",
            ),
            (
                "daemon: {}\n".into(),
                1,
                1,
                "programs",
                "missing required key `programs`",
            ),
            (
                "".into(),
                1,
                1,
                "programs",
                "missing required key `programs` (the file has no content)",
            ),
            (
                "# nothing\n".into(),
                1,
                1,
                "programs",
                "the file has no content",
            ),
            (
                "- a\n".into(),
                1,
                1,
                "",
                "expected a mapping with keys `programs` and `daemon`, found a list",
            ),
            ("just text\n".into(), 1, 1, "", "found string \"just text\""),
            (
                "programs: {}\n---\nprograms: {}\n".into(),
                2,
                1,
                "",
                "one YAML document",
            ),
            (
                "programs: {}\n? [a]\n: b\n".into(),
                2,
                3,
                "",
                "a key must be a string or a number, not a list",
            ),
            (
                "programs:\n  web:\n    cmd: \"abc\n    x: 1\n".into(),
                5,
                1,
                "",
                "invalid YAML: found unexpected end of stream, while scanning a quoted scalar at line 3 column 10",
            ),
            (
                "programs:\n  web:\n    cmd: x\n   bad: 1\n".into(),
                4,
                4,
                "",
                "invalid YAML: did not find expected key, while parsing a block mapping at line 2 column 3",
            ),
            (
                "programs: {web: {cmd: x}\n".into(),
                2,
                1,
                "",
                "invalid YAML: did not find expected ',' or '}'",
            ),
            (
                "programs: {web: {cmd: x, numprocs: 99999999999999999999999999}}\n".into(),
                1,
                36,
                "programs.web.numprocs",
                "invalid YAML: invalid type: integer `99999999999999999999999999` as u128",
            ),
            (
                "programs:\n  web:\n    cmd: x\n  web:\n    cmd: y\n".into(),
                4,
                3,
                "programs.web",
                "duplicate key `web` (first set at line 2, column 3)",
            ),
            (
                "programs:\n  <<: 5\n".into(),
                2,
                7,
                "programs.<<",
                "merge key `<<`: expected a mapping or list of mappings for merging, but found scalar",
            ),
        ];
        let mut failures = Vec::new();
        for (text, line, column, key, message) in &cases {
            let found = issues(text);
            let hit = found.iter().any(|i| {
                i.line == *line
                    && i.column == *column
                    && i.key == *key
                    && i.message.contains(message)
            });
            if !hit {
                failures.push(format!(
                    "{text:?}\n  want {line}:{column}: {key}: ...{message}...\n  got  {found:?}"
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn every_problem_of_a_file_is_reported_in_file_order() {
        let text = "\
programs:
  web:
    cmd: \"\"
    numprocs: 0
  db:
    stopsignal: NOPE
    cmd: /bin/db
";
        let found = issues(text);
        let at: Vec<(usize, usize, &str)> = found
            .iter()
            .map(|i| (i.line, i.column, i.key.as_str()))
            .collect();
        assert_eq!(
            at,
            [
                (3, 10, "programs.web.cmd"),
                (4, 15, "programs.web.numprocs"),
                (6, 17, "programs.db.stopsignal"),
            ]
        );
        let err = parse(text, Path::new(PATH)).unwrap_err();
        let shown = err.to_string();
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(
            lines[0],
            "/srv/taskmaster/taskmaster.yaml:3:10: programs.web.cmd: the command is empty"
        );
        assert!(lines[2].starts_with(
            "/srv/taskmaster/taskmaster.yaml:6:17: programs.db.stopsignal: unknown signal `NOPE`"
        ));
    }

    #[test]
    fn problems_in_a_program_with_a_bad_name_are_reported_too() {
        let found = issues("programs:\n  bad name:\n    numprocs: 0\n");
        let keys: Vec<&str> = found.iter().map(|i| i.key.as_str()).collect();
        // Both at 2:3, in the order they were found.
        assert_eq!(
            keys,
            [
                "programs.bad name",
                "programs.bad name",
                "programs.bad name.numprocs"
            ]
        );
    }

    #[test]
    fn issue_display() {
        let with_key = issue(Pos { line: 3, column: 7 }, "daemon.listen", "bad");
        assert_eq!(with_key.to_string(), "3:7: daemon.listen: bad");
        let without_key = issue(Pos { line: 1, column: 1 }, "", "bad");
        assert_eq!(without_key.to_string(), "1:1: bad");
        let err = ConfigError::NotFound {
            tried: vec![PathBuf::from("/a/x.yaml"), PathBuf::from("/b/x.yaml")],
        };
        assert_eq!(
            err.to_string(),
            "no config file found; tried /a/x.yaml, /b/x.yaml"
        );
    }

    #[test]
    fn umask_forms() {
        let cases = [
            ("022", Some(0o22)),
            ("\"022\"", Some(0o22)),
            ("'022'", Some(0o22)),
            ("0o22", Some(0o22)),
            ("\"0o22\"", Some(0o22)),
            ("22", Some(0o22)),
            ("0022", Some(0o22)),
            ("0", Some(0)),
            ("777", Some(0o777)),
            ("0o777", Some(0o777)),
            ("~", None),
            ("", None),
        ];
        for (text, expected) in cases {
            assert_eq!(
                web(&format!("umask: {text}")).umask,
                expected,
                "umask: {text}"
            );
        }
    }

    #[test]
    fn exitcodes_forms() {
        let cases: [(&str, &[i32]); 5] = [
            ("1", &[1]),
            ("[3, 1, 3]", &[1, 3]),
            ("[255, 0]", &[0, 255]),
            ("[]", &[]),
            ("\n      - 2\n      - 1", &[1, 2]),
        ];
        for (text, expected) in cases {
            assert_eq!(
                web(&format!("exitcodes: {text}")).exitcodes,
                expected,
                "{text}"
            );
        }
    }

    #[test]
    fn env_scalars_become_their_text() {
        let program = web(
            "env: {S: str, I: 42, B: true, F: 1.5, V: 1.10, H: 0x1F, E: '', Q: \"a b\", Z: 022}",
        );
        let expected = [
            ("S", "str"),
            ("I", "42"),
            ("B", "true"),
            ("F", "1.5"),
            ("V", "1.10"),
            ("H", "0x1F"),
            ("Z", "022"),
            ("E", ""),
            ("Q", "a b"),
        ];
        let expected: BTreeMap<String, String> = expected
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(program.env, expected);
        assert!(web("env:").env.is_empty());
    }

    #[test]
    fn durations_autorestart_and_signals() {
        let cases = [
            ("0", Duration::ZERO),
            ("2.5", Duration::from_millis(2500)),
            ("86400", Duration::from_secs(86_400)),
            ("1500ms", Duration::from_millis(1500)),
            ("\"1m 30s\"", Duration::from_secs(90)),
        ];
        for (text, expected) in cases {
            assert_eq!(
                web(&format!("starttime: {text}")).starttime,
                expected,
                "{text}"
            );
            assert_eq!(
                web(&format!("stoptime: {text}")).stoptime,
                expected,
                "{text}"
            );
        }
        let cases = [
            ("true", AutoRestart::Always),
            ("false", AutoRestart::Never),
            ("always", AutoRestart::Always),
            ("never", AutoRestart::Never),
            ("Unexpected", AutoRestart::Unexpected),
        ];
        for (text, expected) in cases {
            assert_eq!(web(&format!("autorestart: {text}")).autorestart, expected);
        }
        assert_eq!(web("stopsignal: 9").stopsignal, Signal::SIGKILL);
        assert_eq!(web("stopsignal: int").stopsignal, Signal::SIGINT);
        assert_eq!(web("stopsignal: SIGHUP").stopsignal, Signal::SIGHUP);
    }

    #[test]
    fn parse_signal_names_and_numbers() {
        for (text, expected) in [
            ("TERM", Signal::SIGTERM),
            ("SIGTERM", Signal::SIGTERM),
            ("term", Signal::SIGTERM),
            ("sigterm", Signal::SIGTERM),
            (" USR1 ", Signal::SIGUSR1),
            ("15", Signal::SIGTERM),
            ("9", Signal::SIGKILL),
            ("KILL", Signal::SIGKILL),
        ] {
            assert_eq!(parse_signal(text), Ok(expected), "{text:?}");
        }
        for text in [
            "",
            "SIG",
            "FOO",
            "0",
            "999",
            "-1",
            "SIGSIGTERM",
            "1.5",
            "99999999999",
        ] {
            assert!(parse_signal(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn listen_forms() {
        for (text, expected) in [
            ("7300", "127.0.0.1:7300"),
            ("\"7300\"", "127.0.0.1:7300"),
            ("127.0.0.1:7300", "127.0.0.1:7300"),
            ("0.0.0.0:80", "0.0.0.0:80"),
            ("\"[::1]:7300\"", "[::1]:7300"),
        ] {
            let config = ok(&format!("daemon:\n  listen: {text}\nprograms: {{}}\n"));
            assert_eq!(config.daemon.listen.as_deref(), Some(expected), "{text}");
        }
    }

    #[test]
    fn relative_paths_resolve_against_the_config_directory() {
        let program = web("stdout: out/web.log");
        assert_eq!(
            program.stdout,
            Some(PathBuf::from("/srv/taskmaster/out/web.log"))
        );
        let program = web("workingdir: ../shared");
        assert_eq!(
            program.workingdir,
            Some(PathBuf::from("/srv/taskmaster/../shared"))
        );
        // A relative config path is taken from the current directory first.
        let text = format!("{WEB}    stderr: ./err.log\n");
        let config = parse(&text, Path::new("conf/./tm.yaml")).unwrap();
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(config.path, cwd.join("conf/tm.yaml"));
        assert_eq!(
            config.programs["web"].stderr,
            Some(cwd.join("conf/err.log"))
        );
    }

    #[test]
    fn anchors_and_merge_keys() {
        let text = "\
programs:
  web: &base
    cmd: /bin/web
    numprocs: 2
    env: &env {A: \"1\"}
  api:
    <<: *base
    cmd: /bin/api
  cron:
    <<: [{cmd: /bin/first, autostart: false}, *base]
    env: *env
";
        let config = ok(text);
        let api = &config.programs["api"];
        assert_eq!(api.argv, ["/bin/api"]);
        assert_eq!(api.numprocs, 2);
        assert_eq!(api.env["A"], "1");
        let cron = &config.programs["cron"];
        assert_eq!(cron.argv, ["/bin/first"]);
        assert!(!cron.autostart);
        assert_eq!(cron.numprocs, 2);
        assert_eq!(cron.env["A"], "1");
        // What comes from an alias is reported at the alias, what comes from a merge at its `<<`.
        let at = |text: &str| -> Vec<(usize, usize, String)> {
            let found = issues(text);
            found
                .into_iter()
                .map(|i| (i.line, i.column, i.key))
                .collect()
        };
        assert_eq!(
            at(
                "programs:\n  a:\n    cmd: x\n    env: &e {A: [1]}\n  b:\n    cmd: y\n    env: *e\n"
            ),
            [
                (4, 17, "programs.a.env.A".to_string()),
                (7, 10, "programs.b.env.A".to_string())
            ]
        );
        assert_eq!(
            at(
                "programs:\n  a: &a\n    cmd: x\n    colour: red\n  b:\n    <<: *a\n    numprocs: 2\n"
            ),
            [
                (4, 5, "programs.a.colour".to_string()),
                (6, 5, "programs.b.colour".to_string())
            ]
        );
    }

    #[test]
    fn same_except_numprocs() {
        let a = web("numprocs: 1");
        let b = web("numprocs: 5");
        let c = web("env: {A: b}");
        assert!(a.same_except_numprocs(&b));
        assert!(b.same_except_numprocs(&a));
        assert!(a.same_except_numprocs(&a));
        assert!(!a.same_except_numprocs(&c));
        assert_ne!(a, b);
    }

    /// A temporary layout for `find`: a cwd, an XDG dir, a home and a system dir.
    struct Layout {
        _root: tempfile::TempDir,
        cwd: PathBuf,
        xdg: PathBuf,
        home: PathBuf,
        system: PathBuf,
    }

    impl Layout {
        fn new() -> Layout {
            let root = tempfile::tempdir().unwrap();
            let dir = |name: &str| {
                let path = root.path().join(name);
                std::fs::create_dir_all(&path).unwrap();
                path
            };
            let (cwd, xdg, home, system) = (dir("cwd"), dir("xdg"), dir("home"), dir("etc"));
            Layout {
                _root: root,
                cwd,
                xdg,
                home,
                system,
            }
        }

        fn places<'a>(&'a self, xdg: Option<&'a OsStr>) -> SearchPlaces<'a> {
            SearchPlaces {
                cwd: &self.cwd,
                xdg_config_home: xdg,
                home: Some(self.home.as_os_str()),
                system_dir: &self.system,
            }
        }
    }

    fn put(path: &Path) -> PathBuf {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "programs: {}\n").unwrap();
        path.to_path_buf()
    }

    #[test]
    fn find_searches_in_order() {
        let l = Layout::new();
        let xdg = Some(l.xdg.as_os_str());
        let in_cwd = l.cwd.join(DEFAULT_FILE_NAME);
        let in_xdg = l.xdg.join("taskmaster").join(DEFAULT_FILE_NAME);
        let in_home = l.home.join(".config/taskmaster").join(DEFAULT_FILE_NAME);
        let in_system = l.system.join("taskmaster").join(DEFAULT_FILE_NAME);

        match find_in(None, &l.places(xdg)) {
            Err(ConfigError::NotFound { tried }) => {
                assert_eq!(tried, [in_cwd.clone(), in_xdg.clone(), in_system.clone()]);
            }
            other => panic!("{other:?}"),
        }
        match find_in(None, &l.places(None)) {
            Err(ConfigError::NotFound { tried }) => {
                assert_eq!(tried, [in_cwd.clone(), in_home.clone(), in_system.clone()]);
            }
            other => panic!("{other:?}"),
        }
        put(&in_system);
        assert_eq!(find_in(None, &l.places(xdg)).unwrap(), in_system);
        put(&in_home);
        assert_eq!(find_in(None, &l.places(xdg)).unwrap(), in_system);
        assert_eq!(find_in(None, &l.places(None)).unwrap(), in_home);
        // An empty or relative XDG_CONFIG_HOME is ignored.
        assert_eq!(
            find_in(None, &l.places(Some(OsStr::new("")))).unwrap(),
            in_home
        );
        assert_eq!(
            find_in(None, &l.places(Some(OsStr::new("rel")))).unwrap(),
            in_home
        );
        put(&in_xdg);
        assert_eq!(find_in(None, &l.places(xdg)).unwrap(), in_xdg);
        // A directory named like the file is not a config file.
        std::fs::create_dir(&in_cwd).unwrap();
        assert_eq!(find_in(None, &l.places(xdg)).unwrap(), in_xdg);
        std::fs::remove_dir(&in_cwd).unwrap();
        put(&in_cwd);
        assert_eq!(find_in(None, &l.places(xdg)).unwrap(), in_cwd);
    }

    #[test]
    fn find_takes_an_explicit_path_that_must_exist() {
        let l = Layout::new();
        let places = l.places(None);
        put(&l.cwd.join(DEFAULT_FILE_NAME));
        let other = put(&l.cwd.join("sub/other.yaml"));
        assert_eq!(
            find_in(Some(Path::new("sub/./other.yaml")), &places).unwrap(),
            other
        );
        assert_eq!(find_in(Some(&other), &places).unwrap(), other);
        match find_in(Some(Path::new("missing.yaml")), &places) {
            Err(ConfigError::NotFound { tried }) => assert_eq!(tried, [l.cwd.join("missing.yaml")]),
            other => panic!("{other:?}"),
        }
        let err = find_in(Some(Path::new("sub")), &places).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }), "{err:?}");
    }

    #[test]
    fn no_panic_on_hostile_input() {
        let deep_flow = "[".repeat(100_000);
        let deep_block: String = (0..200)
            .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
            .collect();
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for (name, prev) in [
            ("b", "a"),
            ("c", "b"),
            ("d", "c"),
            ("e", "d"),
            ("f", "e"),
            ("g", "f"),
        ] {
            let refs = vec![format!("*{prev}"); 10].join(", ");
            bomb.push_str(&format!("{name}: &{name} [{refs}]\n"));
        }
        let inputs = [
            deep_flow.as_str(),
            &deep_block,
            &bomb,
            "\u{feff}programs: {}\n",
            "programs:\n\tweb: x\n",
            "\0",
            "*unknown\n",
            "&a [*a]\n",
            "programs: !!map []\n",
            "programs: {? {a: b}: c}\n",
            "%YAML 1.2\n---\nprograms: {}\n...\n",
            "programs: {web: {cmd: x, numprocs: 99999999999999999999999999}}\n",
            "programs: {web: {cmd: x, umask: 077777777777777777777777}}\n",
            "programs: {web: {cmd: x, starttime: 1e400}}\n",
            "programs: {web: {cmd: x, stoptime: 9999999999999999999999 days}}\n",
            "programs: {web: {cmd: \"a\\0b\", env: {\"A\\0\": \"\\0\"}, stdout: \"\\0\"}}\n",
            "programs: {web: {cmd: x, stopsignal: \"\u{0130}\"}}\n",
        ];
        for text in inputs {
            let _ = parse(text, Path::new(PATH));
        }
        // serde_yaml's own limits are in force.
        let message = |text: &str| issues(text)[0].message.clone();
        assert!(message(&deep_flow).contains("recursion limit exceeded"));
        assert!(message(&deep_block).contains("recursion limit exceeded"));
        assert!(message("&a [*a]\n").contains("recursion limit exceeded"));
        assert!(message(&bomb).contains("repetition limit exceeded"));
        // Every one-character deletion or replacement of a valid file.
        let chars: Vec<char> = FIXTURE_TEXT.chars().collect();
        for i in 0..chars.len() {
            for replacement in [None, Some('"'), Some(':'), Some('['), Some(' '), Some('-')] {
                let mut mutated = chars.clone();
                match replacement {
                    None => {
                        mutated.remove(i);
                    }
                    Some(c) => mutated[i] = c,
                }
                let text: String = mutated.into_iter().collect();
                if let Err(ConfigError::Invalid { issues, .. }) = parse(&text, Path::new(PATH)) {
                    assert!(issues.iter().all(|i| i.line >= 1 && i.column >= 1));
                }
            }
        }
    }
}
