//! The taskmasterd configuration file: its YAML schema and defaults, validation that reports every
//! problem of a file at once (each with line, column and dotted key), and where the file is found.
//!
//! The text is read with `saphyr-parser`'s event parser into a small tree in which every node
//! knows where it starts in the file, so each problem can be reported at the exact place it was
//! written. Scalars are resolved with the YAML 1.2 core schema (`yes`/`no` are strings, `022` is
//! the integer 22), and the text of a scalar as written is kept, so environment values keep their
//! spelling (`1.10` stays "1.10") and `umask: 022` can be read as octal.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;
use std::str::FromStr;
use std::time::Duration;

use nix::sys::signal::Signal;
use saphyr_parser::{Event, Marker, Parser, ScalarStyle, Tag};

/// The name of the config file looked for by [`find`].
pub const DEFAULT_FILE_NAME: &str = "taskmaster.yaml";

/// Largest accepted `numprocs`.
const MAX_NUMPROCS: i64 = 100_000;
/// Largest accepted `startretries`.
const MAX_STARTRETRIES: i64 = 1000;
/// Largest accepted `starttime` / `stoptime`, in seconds (one day).
const MAX_SECONDS: u64 = 86_400;
/// Largest accepted exit code.
const MAX_EXIT_CODE: i64 = 255;
/// Largest accepted `umask`.
const MAX_UMASK: u32 = 0o777;
/// Deepest accepted nesting of lists and mappings. Keeps the tree's recursive drop and walk shallow
/// whatever the input; the schema itself needs 4 levels.
const MAX_DEPTH: usize = 64;
/// Most nodes a document may have once aliases are expanded. Bounds the work and memory an
/// "alias bomb" can cause; a real config has a few hundred.
const MAX_NODES: usize = 1_000_000;
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
    /// The command line as written.
    pub cmd: String,
    /// `cmd` split into words; never empty.
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
    fn with_command(cmd: String, argv: Vec<String>) -> ProgramConfig {
        ProgramConfig {
            cmd,
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
            cmd,
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
        *cmd == other.cmd
            && *argv == other.argv
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
    let tree = match build_tree(text) {
        Ok(tree) => tree,
        Err(issues) => return Err(invalid(path, issues)),
    };
    let mut checker = Checker {
        dir: &dir,
        issues: tree.issues,
    };
    let settings = checker.root(tree.root.as_deref());
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
// The YAML tree.

/// A place in the text; both 1-based, the column counted in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// A resolved scalar (YAML 1.2 core schema).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Scalar {
    Null,
    Bool(bool),
    /// Saturated at the bounds of `i64`; every range checked here is far inside.
    Int(i64),
    Float(f64),
    Str,
}

/// A YAML value and where it starts.
#[derive(Debug)]
struct Node {
    pos: Pos,
    /// 0 for a scalar, else 1 + the largest height of the children; at most `MAX_DEPTH`.
    height: usize,
    /// Number of nodes with aliases expanded (saturating); at most `MAX_NODES`.
    size: usize,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    /// `text` is the scalar as written (unquoted and unescaped), `value` what it means.
    Scalar {
        text: String,
        value: Scalar,
    },
    Seq(Vec<Rc<Node>>),
    /// Keys are unique; merge keys (`<<`) are already applied.
    Map(Vec<Entry>),
}

#[derive(Debug, Clone)]
struct Entry {
    /// The text of the key (keys are always scalars).
    key: String,
    key_pos: Pos,
    value: Rc<Node>,
}

/// The parsed document and the non-fatal problems found while building it.
struct Tree {
    /// `None` for a file without a document (empty, or only comments).
    root: Option<Rc<Node>>,
    issues: Vec<ConfigIssue>,
}

/// What a mapping under construction expects next.
enum Pending {
    Key,
    Value {
        key: String,
        pos: Pos,
        /// The key is `<<`: the value is merged into the mapping.
        merge: bool,
    },
    /// The value of a rejected key; it is dropped.
    Skip,
}

/// A list or mapping whose end has not been reached yet.
enum Frame {
    Seq {
        pos: Pos,
        anchor: usize,
        items: Vec<Rc<Node>>,
    },
    Map {
        pos: Pos,
        anchor: usize,
        entries: Vec<Entry>,
        /// Values of `<<` keys, in order.
        merges: Vec<Rc<Node>>,
        pending: Pending,
    },
}

/// The dotted key path of the node being built inside `frames` (list indexes are left out).
fn frames_key(frames: &[Frame]) -> String {
    let keys: Vec<&str> = frames
        .iter()
        .filter_map(|frame| match frame {
            Frame::Map {
                pending: Pending::Value { key, .. },
                ..
            } => Some(key.as_str()),
            _ => None,
        })
        .collect();
    keys.join(".")
}

fn child_key(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
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

/// Parses `text` into a tree. `Err` holds the problems found up to a fatal one (a syntax error,
/// too deep or too large a document), which is last.
fn build_tree(text: &str) -> Result<Tree, Vec<ConfigIssue>> {
    let mut parser = Parser::new_from_str(text);
    let mut issues = Vec::new();
    let mut frames: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<usize, Rc<Node>> = HashMap::new();
    let mut root = None;
    let mut documents = 0;
    while let Some(next) = parser.next_event() {
        let (event, span) = match next {
            Ok(event) => event,
            Err(err) => {
                let message = format!("invalid YAML: {}", err.info());
                issues.push(issue(Pos::of(err.marker()), frames_key(&frames), message));
                return Err(issues);
            }
        };
        let pos = Pos::of(&span.start);
        let (node, anchor, merge_key) = match event {
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => continue,
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    issues.push(issue(
                        pos,
                        "",
                        "a config file holds one YAML document; a second one starts here",
                    ));
                    break;
                }
                continue;
            }
            Event::Alias(id) => match anchors.get(&id) {
                Some(node) => (Rc::clone(node), 0, false),
                None => {
                    issues.push(issue(pos, frames_key(&frames), "unknown alias"));
                    return Err(issues);
                }
            },
            Event::Scalar(text, style, anchor, tag) => {
                let key = frames_key(&frames);
                // Only a plain, untagged `<<` is a merge key.
                let merge_key = style == ScalarStyle::Plain && tag.is_none() && text == "<<";
                let node = scalar_node(text, style, tag.as_deref(), pos, &key, &mut issues);
                (Rc::new(node), anchor, merge_key)
            }
            Event::SequenceStart(anchor, tag) => {
                open_collection(&mut frames, &mut issues, pos, anchor, tag.as_deref(), false)?;
                continue;
            }
            Event::MappingStart(anchor, tag) => {
                open_collection(&mut frames, &mut issues, pos, anchor, tag.as_deref(), true)?;
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(frame) = frames.pop() else {
                    issues.push(issue(pos, "", "invalid YAML: unbalanced end of collection"));
                    return Err(issues);
                };
                let key = frames_key(&frames);
                let (pos, anchor, kind) = match frame {
                    Frame::Seq { pos, anchor, items } => (pos, anchor, Kind::Seq(items)),
                    Frame::Map {
                        pos,
                        anchor,
                        entries,
                        merges,
                        pending: _,
                    } => {
                        let entries = finish_map(entries, merges, &key, &mut issues);
                        (pos, anchor, Kind::Map(entries))
                    }
                };
                let node = collection_node(pos, kind);
                if node.height > MAX_DEPTH {
                    let message = format!("lists and mappings nest deeper than {MAX_DEPTH} levels");
                    issues.push(issue(pos, key, message));
                    return Err(issues);
                }
                if node.size > MAX_NODES {
                    let message = format!(
                        "the document has more than {MAX_NODES} values once aliases are expanded"
                    );
                    issues.push(issue(pos, key, message));
                    return Err(issues);
                }
                (Rc::new(node), anchor, false)
            }
        };
        if anchor != 0 {
            anchors.insert(anchor, Rc::clone(&node));
        }
        attach(&mut frames, &mut root, node, merge_key, &mut issues);
    }
    Ok(Tree { root, issues })
}

/// Starts a list or mapping. `Err` when nested too deep (the problem is the last issue).
fn open_collection(
    frames: &mut Vec<Frame>,
    issues: &mut Vec<ConfigIssue>,
    pos: Pos,
    anchor: usize,
    tag: Option<&Tag>,
    is_map: bool,
) -> Result<(), Vec<ConfigIssue>> {
    if frames.len() >= MAX_DEPTH {
        let message = format!("lists and mappings nest deeper than {MAX_DEPTH} levels");
        issues.push(issue(pos, frames_key(frames), message));
        return Err(std::mem::take(issues));
    }
    let expected = if is_map { "map" } else { "seq" };
    if let Some(tag) = tag
        && core_tag(tag) != Some(expected)
    {
        let message = format!("unsupported tag `{}`", show_tag(tag));
        issues.push(issue(pos, frames_key(frames), message));
    }
    frames.push(if is_map {
        Frame::Map {
            pos,
            anchor,
            entries: Vec::new(),
            merges: Vec::new(),
            pending: Pending::Key,
        }
    } else {
        Frame::Seq {
            pos,
            anchor,
            items: Vec::new(),
        }
    });
    Ok(())
}

/// Puts a finished node into the collection being built, or makes it the root. `merge_key`: the
/// node is a plain `<<`, which as a key merges its value into the mapping.
fn attach(
    frames: &mut [Frame],
    root: &mut Option<Rc<Node>>,
    node: Rc<Node>,
    merge_key: bool,
    issues: &mut Vec<ConfigIssue>,
) {
    let parent_key = frames_key(frames);
    match frames.last_mut() {
        None => *root = Some(node),
        Some(Frame::Seq { items, .. }) => items.push(node),
        Some(Frame::Map {
            entries,
            merges,
            pending,
            ..
        }) => {
            *pending = match std::mem::replace(pending, Pending::Key) {
                Pending::Key => match &node.kind {
                    Kind::Scalar { text, .. } => Pending::Value {
                        key: text.clone(),
                        pos: node.pos,
                        merge: merge_key,
                    },
                    _ => {
                        let message =
                            format!("a key must be a plain value, not {}", describe(&node));
                        issues.push(issue(node.pos, parent_key, message));
                        Pending::Skip
                    }
                },
                Pending::Value { merge: true, .. } => {
                    merges.push(node);
                    Pending::Key
                }
                Pending::Value { key, pos, .. } => {
                    entries.push(Entry {
                        key,
                        key_pos: pos,
                        value: node,
                    });
                    Pending::Key
                }
                Pending::Skip => Pending::Key,
            };
        }
    }
}

/// The entries of a mapping: duplicates reported and dropped (the first one stays), then the
/// entries of merged mappings added where the mapping does not set the key itself (earlier merge
/// sources win over later ones).
fn finish_map(
    entries: Vec<Entry>,
    merges: Vec<Rc<Node>>,
    key: &str,
    issues: &mut Vec<ConfigIssue>,
) -> Vec<Entry> {
    let mut seen: HashMap<String, Pos> = HashMap::new();
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        if let Some(first) = seen.get(&entry.key) {
            let message = format!(
                "duplicate key `{}` (first set at line {}, column {})",
                entry.key, first.line, first.column
            );
            issues.push(issue(entry.key_pos, child_key(key, &entry.key), message));
        } else {
            seen.insert(entry.key.clone(), entry.key_pos);
            out.push(entry);
        }
    }
    let mut sources = Vec::new();
    for merge in &merges {
        match &merge.kind {
            Kind::Map(entries) => sources.push(entries),
            Kind::Seq(items) => {
                for item in items {
                    match &item.kind {
                        Kind::Map(entries) => sources.push(entries),
                        _ => issues.push(merge_issue(item, key)),
                    }
                }
            }
            Kind::Scalar { .. } => issues.push(merge_issue(merge, key)),
        }
    }
    for entry in sources.into_iter().flatten() {
        if !seen.contains_key(&entry.key) {
            seen.insert(entry.key.clone(), entry.key_pos);
            out.push(entry.clone());
        }
    }
    out
}

fn merge_issue(node: &Node, key: &str) -> ConfigIssue {
    let message = format!(
        "a merge key `<<` takes a mapping or a list of mappings, not {}",
        describe(node)
    );
    issue(node.pos, child_key(key, "<<"), message)
}

fn collection_node(pos: Pos, kind: Kind) -> Node {
    let children: Vec<&Rc<Node>> = match &kind {
        Kind::Seq(items) => items.iter().collect(),
        Kind::Map(entries) => entries.iter().map(|e| &e.value).collect(),
        Kind::Scalar { .. } => Vec::new(),
    };
    let height = 1 + children.iter().map(|c| c.height).max().unwrap_or(0);
    let keys = match &kind {
        Kind::Map(entries) => entries.len(),
        _ => 0,
    };
    let size = children.iter().fold(1usize.saturating_add(keys), |sum, c| {
        sum.saturating_add(c.size)
    });
    Node {
        pos,
        height,
        size,
        kind,
    }
}

/// The suffix of a tag of the YAML core schema (`!!str` gives "str").
fn core_tag(tag: &Tag) -> Option<&str> {
    tag.is_yaml_core_schema().then_some(tag.suffix.as_str())
}

fn show_tag(tag: &Tag) -> String {
    match core_tag(tag) {
        Some(suffix) => format!("!!{suffix}"),
        None => format!("{}{}", tag.handle, tag.suffix),
    }
}

fn scalar_node(
    text: Cow<'_, str>,
    style: ScalarStyle,
    tag: Option<&Tag>,
    pos: Pos,
    key: &str,
    issues: &mut Vec<ConfigIssue>,
) -> Node {
    let plain = style == ScalarStyle::Plain;
    let value = match tag {
        None if plain => resolve_plain(&text),
        None => Scalar::Str,
        Some(tag) => match core_tag(tag) {
            Some("str") => Scalar::Str,
            Some(kind @ ("null" | "bool" | "int" | "float")) => {
                match (kind, resolve_plain(&text)) {
                    ("null", v @ Scalar::Null)
                    | ("bool", v @ Scalar::Bool(_))
                    | ("int", v @ Scalar::Int(_))
                    | ("float", v @ Scalar::Float(_)) => v,
                    ("float", Scalar::Int(i)) => Scalar::Float(i as f64),
                    _ => {
                        issues.push(issue(pos, key, format!("`{text}` is not a valid !!{kind}")));
                        Scalar::Str
                    }
                }
            }
            _ => {
                let message = format!("unsupported tag `{}`", show_tag(tag));
                issues.push(issue(pos, key, message));
                if plain {
                    resolve_plain(&text)
                } else {
                    Scalar::Str
                }
            }
        },
    };
    Node {
        pos,
        height: 0,
        size: 1,
        kind: Kind::Scalar {
            text: text.into_owned(),
            value,
        },
    }
}

/// What an untagged plain scalar means in the YAML 1.2 core schema.
fn resolve_plain(text: &str) -> Scalar {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => Scalar::Null,
        "true" | "True" | "TRUE" => Scalar::Bool(true),
        "false" | "False" | "FALSE" => Scalar::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => Scalar::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => Scalar::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => Scalar::Float(f64::NAN),
        _ => {
            if let Some(int) = parse_int(text) {
                Scalar::Int(int)
            } else if is_float(text) {
                text.parse().map_or(Scalar::Str, Scalar::Float)
            } else {
                Scalar::Str
            }
        }
    }
}

/// A core-schema integer: `[-+]?[0-9]+`, `0o[0-7]+` or `0x[0-9a-fA-F]+`, saturated to `i64`.
fn parse_int(text: &str) -> Option<i64> {
    let radix_int = |digits: &str, radix: u32| {
        (!digits.is_empty() && digits.chars().all(|c| c.is_digit(radix)))
            .then(|| i64::from_str_radix(digits, radix).unwrap_or(i64::MAX))
    };
    if let Some(digits) = text.strip_prefix("0o") {
        return radix_int(digits, 8);
    }
    if let Some(digits) = text.strip_prefix("0x") {
        return radix_int(digits, 16);
    }
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(
        text.parse()
            .unwrap_or(if negative { i64::MIN } else { i64::MAX }),
    )
}

/// A core-schema float: `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`.
fn is_float(text: &str) -> bool {
    fn digits(s: &str) -> (usize, &str) {
        let n = s.bytes().take_while(u8::is_ascii_digit).count();
        (n, &s[n..])
    }
    let s = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (int_digits, s) = digits(s);
    let (frac_digits, s) = match s.strip_prefix('.') {
        Some(rest) => digits(rest),
        None => (0, s),
    };
    if int_digits + frac_digits == 0 {
        return false;
    }
    match s.strip_prefix(['e', 'E']) {
        None => s.is_empty(),
        Some(exponent) => {
            let (n, rest) = digits(exponent.strip_prefix(['-', '+']).unwrap_or(exponent));
            n > 0 && rest.is_empty()
        }
    }
}

/// How a value is named in messages: `string "abc"`, `integer 0`, `a list`...
fn describe(node: &Node) -> String {
    match &node.kind {
        Kind::Scalar { text, value } => {
            let shown: String = if text.chars().count() > 40 {
                text.chars().take(40).chain("…".chars()).collect()
            } else {
                text.clone()
            };
            match value {
                Scalar::Null if text.is_empty() => "nothing (null)".to_string(),
                Scalar::Null => format!("null `{shown}`"),
                Scalar::Bool(_) => format!("boolean `{shown}`"),
                Scalar::Int(_) => format!("integer `{shown}`"),
                Scalar::Float(_) => format!("number `{shown}`"),
                Scalar::Str => format!("string {shown:?}"),
            }
        }
        Kind::Seq(_) => "a list".to_string(),
        Kind::Map(_) => "a mapping".to_string(),
    }
}

/// The scalar's text and value, if the node is a scalar.
fn scalar(node: &Node) -> Option<(&str, Scalar)> {
    match &node.kind {
        Kind::Scalar { text, value } => Some((text, *value)),
        _ => None,
    }
}

/// True for a null value; `null` means "not set" where a setting is optional.
fn is_null(node: &Node) -> bool {
    matches!(scalar(node), Some((_, Scalar::Null)))
}

/// Where to report a bad value: at the value, or at its key when nothing was written after it.
fn value_pos(entry: &Entry) -> Pos {
    match scalar(&entry.value) {
        Some(("", Scalar::Null)) => entry.key_pos,
        _ => entry.value.pos,
    }
}

/// Number of single-character edits between `a` and `b`.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (diagonal + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

// ---------------------------------------------------------------------------------------------
// Validation.

/// Walks the tree, converting each setting on its own so that every bad one is reported.
struct Checker<'a> {
    /// Directory of the config file; relative paths are resolved against it.
    dir: &'a Path,
    issues: Vec<ConfigIssue>,
}

type Settings = (DaemonSettings, BTreeMap<String, ProgramConfig>);

impl Checker<'_> {
    fn report(&mut self, pos: Pos, key: &str, message: impl Into<String>) {
        self.issues.push(issue(pos, key, message));
    }

    /// Reports "expected {what}, found ..." at the entry's value.
    fn expected(&mut self, entry: &Entry, key: &str, what: &str) {
        let message = format!("expected {what}, found {}", describe(&entry.value));
        self.report(value_pos(entry), key, message);
    }

    fn unknown_key(&mut self, entry: &Entry, key: &str, known: &[&str]) {
        let closest = known
            .iter()
            .map(|k| (edit_distance(&entry.key, k), *k))
            .min()
            .filter(|(distance, _)| *distance <= 2);
        let hint = match closest {
            Some((_, k)) => format!(" (did you mean `{k}`?)"),
            None => String::new(),
        };
        let message = format!(
            "unknown key `{}`{hint}; expected one of {}",
            entry.key,
            known.join(", ")
        );
        self.report(entry.key_pos, key, message);
    }

    /// The whole document. `None` when something is missing; problems are in `self.issues`.
    fn root(&mut self, root: Option<&Node>) -> Option<Settings> {
        let Some(root) = root else {
            let message = "missing required key `programs` (the file has no content)";
            self.report(Pos::START, "programs", message);
            return None;
        };
        let Kind::Map(entries) = &root.kind else {
            let message = format!(
                "expected a mapping with keys `programs` and `daemon`, found {}",
                describe(root)
            );
            self.report(root.pos, "", message);
            return None;
        };
        let mut daemon = Some(DaemonSettings::default());
        let mut programs = None;
        let mut has_programs = false;
        for entry in entries {
            let key = entry.key.as_str();
            match key {
                "daemon" => daemon = self.daemon(entry),
                "programs" => {
                    has_programs = true;
                    programs = self.programs(entry);
                }
                _ => self.unknown_key(entry, key, TOP_KEYS),
            }
        }
        if !has_programs {
            self.report(root.pos, "programs", "missing required key `programs`");
        }
        Some((daemon?, programs?))
    }

    fn daemon(&mut self, section: &Entry) -> Option<DaemonSettings> {
        let mut settings = DaemonSettings::default();
        if is_null(&section.value) {
            return Some(settings);
        }
        let Kind::Map(entries) = &section.value.kind else {
            self.expected(section, "daemon", "a mapping of daemon settings");
            return None;
        };
        let before = self.issues.len();
        for entry in entries {
            let key = format!("daemon.{}", entry.key);
            match entry.key.as_str() {
                "socket" => {
                    settings.socket = self.path(entry, &key);
                    if let Some(path) = &settings.socket
                        && path.as_os_str().len() > MAX_SOCKET_PATH
                    {
                        let message = format!(
                            "socket path {} is {} bytes long once made absolute; a Unix socket path takes at most {MAX_SOCKET_PATH}",
                            path.display(),
                            path.as_os_str().len()
                        );
                        self.report(value_pos(entry), &key, message);
                    }
                }
                "listen" => settings.listen = self.listen(entry, &key),
                "logfile" => settings.logfile = self.path(entry, &key),
                "pidfile" => settings.pidfile = self.path(entry, &key),
                _ => self.unknown_key(entry, &key, DAEMON_KEYS),
            }
        }
        (self.issues.len() == before).then_some(settings)
    }

    fn programs(&mut self, section: &Entry) -> Option<BTreeMap<String, ProgramConfig>> {
        let Kind::Map(entries) = &section.value.kind else {
            let what = "a mapping of programs by name (`{}` for none)";
            self.expected(section, "programs", what);
            return None;
        };
        let before = self.issues.len();
        let mut programs = BTreeMap::new();
        for entry in entries {
            let name = entry.key.as_str();
            let key = format!("programs.{name}");
            if name == "all" {
                let message = "`all` cannot name a program: taskctl uses it for every program";
                self.report(entry.key_pos, &key, message);
            } else if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
            {
                let message = format!(
                    "invalid program name {name:?}: use letters, digits, `_`, `.` and `-` only"
                );
                self.report(entry.key_pos, &key, message);
            }
            // Checked even under a bad name, to report its problems too.
            if let Some(program) = self.program(entry, &key) {
                programs.insert(name.to_string(), program);
            }
        }
        (self.issues.len() == before).then_some(programs)
    }

    fn program(&mut self, section: &Entry, prefix: &str) -> Option<ProgramConfig> {
        let Kind::Map(entries) = &section.value.kind else {
            self.expected(section, prefix, "a mapping of program settings");
            return None;
        };
        let before = self.issues.len();
        // `cmd` and `argv` are filled in at the end; everything else starts at its default.
        let mut program = ProgramConfig::with_command(String::new(), Vec::new());
        let mut command = None;
        let mut has_cmd = false;
        for entry in entries {
            let key = format!("{prefix}.{}", entry.key);
            let key = key.as_str();
            let p = &mut program;
            match entry.key.as_str() {
                "cmd" => {
                    has_cmd = true;
                    command = self.command(entry, key);
                }
                "numprocs" => set(&mut p.numprocs, self.count(entry, key, 1, MAX_NUMPROCS)),
                "autostart" => set(&mut p.autostart, self.boolean(entry, key)),
                "autorestart" => set(&mut p.autorestart, self.autorestart(entry, key)),
                "exitcodes" => set(&mut p.exitcodes, self.exitcodes(entry, key)),
                "starttime" => set(&mut p.starttime, self.duration(entry, key)),
                "startretries" => {
                    set(
                        &mut p.startretries,
                        self.count(entry, key, 0, MAX_STARTRETRIES),
                    );
                }
                "stopsignal" => set(&mut p.stopsignal, self.signal(entry, key)),
                "stoptime" => set(&mut p.stoptime, self.duration(entry, key)),
                "stdout" => p.stdout = self.path(entry, key),
                "stderr" => p.stderr = self.path(entry, key),
                "env" => set(&mut p.env, self.env(entry, key)),
                "workingdir" => p.workingdir = self.path(entry, key),
                "umask" => p.umask = self.umask(entry, key),
                _ => self.unknown_key(entry, key, PROGRAM_KEYS),
            }
        }
        if !has_cmd {
            self.report(section.key_pos, prefix, "missing required key `cmd`");
        }
        let (cmd, argv) = command?;
        if self.issues.len() > before {
            return None;
        }
        program.cmd = cmd;
        program.argv = argv;
        Some(program)
    }

    /// The command line and its words (at least one).
    fn command(&mut self, entry: &Entry, key: &str) -> Option<(String, Vec<String>)> {
        let Some((text, Scalar::Str)) = scalar(&entry.value) else {
            self.expected(entry, key, "a command line (a string)");
            return None;
        };
        if text.contains('\0') {
            self.report(
                value_pos(entry),
                key,
                "the command contains a NUL character",
            );
            return None;
        }
        match shell_words::split(text) {
            Ok(argv) if argv.is_empty() => {
                self.report(value_pos(entry), key, "the command is empty");
                None
            }
            Ok(argv) => Some((text.to_string(), argv)),
            Err(err) => {
                let message = format!("cannot split the command into words: {err}");
                self.report(value_pos(entry), key, message);
                None
            }
        }
    }

    /// An integer in `min..=max`.
    fn count(&mut self, entry: &Entry, key: &str, min: i64, max: i64) -> Option<u32> {
        match scalar(&entry.value) {
            Some((_, Scalar::Int(n))) if (min..=max).contains(&n) => u32::try_from(n).ok(),
            Some((text, Scalar::Int(_))) => {
                let message = format!("must be from {min} to {max}, found {text}");
                self.report(value_pos(entry), key, message);
                None
            }
            _ => {
                self.expected(entry, key, &format!("an integer from {min} to {max}"));
                None
            }
        }
    }

    fn boolean(&mut self, entry: &Entry, key: &str) -> Option<bool> {
        match scalar(&entry.value) {
            Some((_, Scalar::Bool(b))) => Some(b),
            Some((text, Scalar::Str))
                if ["yes", "no", "on", "off", "y", "n"]
                    .iter()
                    .any(|word| text.eq_ignore_ascii_case(word)) =>
            {
                let message = format!(
                    "expected true or false, found string {text:?} (YAML 1.2 reads `{text}` as a string)"
                );
                self.report(value_pos(entry), key, message);
                None
            }
            _ => {
                self.expected(entry, key, "true or false");
                None
            }
        }
    }

    fn autorestart(&mut self, entry: &Entry, key: &str) -> Option<AutoRestart> {
        match scalar(&entry.value) {
            Some((_, Scalar::Bool(true))) => Some(AutoRestart::Always),
            Some((_, Scalar::Bool(false))) => Some(AutoRestart::Never),
            Some((text, Scalar::Str)) if text.eq_ignore_ascii_case("always") => {
                Some(AutoRestart::Always)
            }
            Some((text, Scalar::Str)) if text.eq_ignore_ascii_case("never") => {
                Some(AutoRestart::Never)
            }
            Some((text, Scalar::Str)) if text.eq_ignore_ascii_case("unexpected") => {
                Some(AutoRestart::Unexpected)
            }
            _ => {
                self.expected(entry, key, "always, never or unexpected");
                None
            }
        }
    }

    /// One exit code or a list of them; sorted and deduplicated.
    fn exitcodes(&mut self, entry: &Entry, key: &str) -> Option<Vec<i32>> {
        let what = format!("an exit code from 0 to {MAX_EXIT_CODE}");
        let items: Vec<&Node> = match &entry.value.kind {
            Kind::Seq(items) => items.iter().map(|item| item.as_ref()).collect(),
            Kind::Scalar {
                value: Scalar::Int(_),
                ..
            } => vec![entry.value.as_ref()],
            _ => {
                self.expected(entry, key, &format!("{what} or a list of them"));
                return None;
            }
        };
        let mut codes = Vec::with_capacity(items.len());
        let mut ok = true;
        for item in items {
            match scalar(item) {
                Some((_, Scalar::Int(code))) if (0..=MAX_EXIT_CODE).contains(&code) => {
                    codes.extend(i32::try_from(code).ok());
                }
                Some((text, Scalar::Int(_))) => {
                    ok = false;
                    let message = format!("exit codes are from 0 to {MAX_EXIT_CODE}, found {text}");
                    self.report(item.pos, key, message);
                }
                _ => {
                    ok = false;
                    let message = format!("expected {what}, found {}", describe(item));
                    self.report(item.pos, key, message);
                }
            }
        }
        codes.sort_unstable();
        codes.dedup();
        ok.then_some(codes)
    }

    /// Seconds (an integer or a decimal number), or a humantime string like "1500ms"; at most a
    /// day.
    fn duration(&mut self, entry: &Entry, key: &str) -> Option<Duration> {
        let max = Duration::from_secs(MAX_SECONDS);
        let (text, value) = scalar(&entry.value).unwrap_or(("", Scalar::Null));
        let result = match value {
            Scalar::Int(n) if n < 0 => Err(format!("must not be negative, found {text}")),
            Scalar::Int(n) => Ok(u64::try_from(n).map_or(Duration::MAX, Duration::from_secs)),
            Scalar::Float(f) if f.is_nan() => Err("must be a number, found NaN".to_string()),
            Scalar::Float(f) if f < 0.0 => Err(format!("must not be negative, found {text}")),
            Scalar::Float(f) => Ok(Duration::try_from_secs_f64(f).unwrap_or(Duration::MAX)),
            Scalar::Str => humantime::parse_duration(text).map_err(|err| {
                format!(
                    "expected seconds (a number >= 0) or a duration like \"1500ms\", found string {text:?} ({err})"
                )
            }),
            Scalar::Null | Scalar::Bool(_) => {
                self.expected(entry, key, "seconds (a number >= 0)");
                return None;
            }
        };
        let result = result.and_then(|duration| {
            if duration > max {
                Err(format!(
                    "must be at most {MAX_SECONDS} seconds (one day), found {text}"
                ))
            } else {
                Ok(duration)
            }
        });
        result
            .map_err(|message| self.report(value_pos(entry), key, message))
            .ok()
    }

    fn signal(&mut self, entry: &Entry, key: &str) -> Option<Signal> {
        match scalar(&entry.value) {
            Some((text, Scalar::Str | Scalar::Int(_))) => parse_signal(text)
                .map_err(|message| self.report(value_pos(entry), key, message))
                .ok(),
            _ => {
                self.expected(entry, key, "a signal name like TERM or a number like 15");
                None
            }
        }
    }

    /// A path, absolute once resolved against the config's directory; null means not set.
    fn path(&mut self, entry: &Entry, key: &str) -> Option<PathBuf> {
        match scalar(&entry.value) {
            Some((_, Scalar::Null)) => None,
            // A path may well look like a number ("2024.log" does not, "1.0" does).
            Some((text, Scalar::Str | Scalar::Int(_) | Scalar::Float(_))) => {
                if text.is_empty() {
                    self.report(value_pos(entry), key, "the path is empty");
                    None
                } else if text.contains('\0') {
                    self.report(value_pos(entry), key, "the path contains a NUL character");
                    None
                } else {
                    Some(clean(&self.dir.join(text)))
                }
            }
            _ => {
                self.expected(entry, key, "a path (null or left out for none)");
                None
            }
        }
    }

    /// A TCP address `ip:port`, or a bare port for `127.0.0.1:port`; null means not set. Port 0
    /// (any free port) is refused: clients could not know where to connect.
    fn listen(&mut self, entry: &Entry, key: &str) -> Option<String> {
        let what = "an address like 127.0.0.1:7300 or [::1]:7300, or a port number";
        let text = match scalar(&entry.value) {
            Some((_, Scalar::Null)) => return None,
            Some((text, Scalar::Str | Scalar::Int(_))) => text,
            _ => {
                self.expected(entry, key, what);
                return None;
            }
        };
        let all_digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
        let address = if all_digits {
            text.parse::<u16>()
                .map(|port| SocketAddr::from(([127, 0, 0, 1], port)))
                .map_err(|_| ())
        } else {
            text.parse::<SocketAddr>().map_err(|_| ())
        };
        match address {
            Ok(address) if address.port() != 0 => Some(address.to_string()),
            Ok(_) => {
                let message = "port 0 (any free port) cannot be used: clients would not know it";
                self.report(value_pos(entry), key, message);
                None
            }
            Err(()) => {
                let message = format!(
                    "expected {what} (1 to 65535), found {}",
                    describe(&entry.value)
                );
                self.report(value_pos(entry), key, message);
                None
            }
        }
    }

    /// Environment variables; scalar values become their text as written.
    fn env(&mut self, entry: &Entry, key: &str) -> Option<BTreeMap<String, String>> {
        if is_null(&entry.value) {
            return Some(BTreeMap::new());
        }
        let Kind::Map(vars) = &entry.value.kind else {
            self.expected(entry, key, "a mapping of environment variables");
            return None;
        };
        let mut env = BTreeMap::new();
        let mut ok = true;
        for var in vars {
            let var_key = format!("{key}.{}", var.key);
            let name = var.key.as_str();
            if name.is_empty() || name.contains(['=', '\0']) {
                ok = false;
                let message = format!(
                    "invalid variable name {name:?}: it must be non-empty, without `=` or NUL"
                );
                self.report(var.key_pos, &var_key, message);
            }
            match scalar(&var.value) {
                Some((_, Scalar::Null)) => {
                    ok = false;
                    let message =
                        "an environment value cannot be null; write \"\" for an empty one";
                    self.report(value_pos(var), &var_key, message);
                }
                Some((text, _)) if text.contains('\0') => {
                    ok = false;
                    self.report(
                        value_pos(var),
                        &var_key,
                        "the value contains a NUL character",
                    );
                }
                Some((text, _)) => {
                    env.insert(name.to_string(), text.to_string());
                }
                None => {
                    ok = false;
                    self.expected(var, &var_key, "a string, number or boolean");
                }
            }
        }
        ok.then_some(env)
    }

    /// Octal digits, as text ("022", "0o22") or as a number whose decimal digits are read as
    /// octal (`umask: 022` is the integer 22 in YAML 1.2); null means not set.
    fn umask(&mut self, entry: &Entry, key: &str) -> Option<u32> {
        let text = match scalar(&entry.value) {
            Some((_, Scalar::Null)) => return None,
            Some((text, Scalar::Str | Scalar::Int(_))) => text,
            _ => {
                self.expected(entry, key, "an octal umask like 022");
                return None;
            }
        };
        let digits = text
            .strip_prefix("0o")
            .or_else(|| text.strip_prefix("0O"))
            .unwrap_or(text);
        if digits.is_empty() || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            let message = format!("expected octal digits 0-7 like 022, found {text:?}");
            self.report(value_pos(entry), key, message);
            return None;
        }
        match u32::from_str_radix(digits, 8) {
            Ok(mask) if mask <= MAX_UMASK => Some(mask),
            _ => {
                let message = format!("must be at most 0777, found {text}");
                self.report(value_pos(entry), key, message);
                None
            }
        }
    }
}

/// Stores a converted value; `None` (a reported problem) leaves the default.
fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *slot = value;
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
            cmd: "/usr/bin/env python3 worker.py --queue 'jobs high'".to_string(),
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
            cmd: "sleep 60".to_string(),
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
            (w("starttime: .nan"), 4, 16, "programs.web.starttime", "NaN"),
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
                "`abc` is not a valid !!int",
            ),
            (
                w("numprocs: !custom 3"),
                4,
                15,
                "programs.web.numprocs",
                "unsupported tag `!custom`",
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
                "a key must be a plain value, not a list",
            ),
            (
                "programs:\n  web:\n    cmd: \"abc\n    x: 1\n".into(),
                3,
                10,
                "programs.web.cmd",
                "invalid YAML",
            ),
            (
                "programs:\n  web:\n    cmd: x\n   bad: 1\n".into(),
                4,
                4,
                "programs",
                "invalid YAML",
            ),
            (
                "programs: {web: {cmd: x}\n".into(),
                2,
                1,
                "programs",
                "invalid YAML",
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
                "a merge key `<<` takes a mapping or a list of mappings, not integer `5`",
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
        let program =
            web("env: {S: str, I: 42, B: true, F: 1.5, V: 1.10, H: 0x1F, E: '', Q: \"a b\"}");
        let expected = [
            ("S", "str"),
            ("I", "42"),
            ("B", "true"),
            ("F", "1.5"),
            ("V", "1.10"),
            ("H", "0x1F"),
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
        assert_eq!(cron.cmd, "/bin/first");
        assert!(!cron.autostart);
        assert_eq!(cron.numprocs, 2);
        assert_eq!(cron.env["A"], "1");
        // A quoted "<<" is an ordinary key.
        let found = issues("programs:\n  web:\n    cmd: x\n    \"<<\": {}\n");
        assert_eq!(found[0].key, "programs.web.<<");
        assert!(found[0].message.starts_with("unknown key `<<`"));
        // A problem in an aliased value is reported where it is written, under each user's key.
        let found = issues(
            "programs:\n  a:\n    cmd: x\n    env: &e {A: [1]}\n  b:\n    cmd: y\n    env: *e\n",
        );
        let at: Vec<(usize, usize, &str)> = found
            .iter()
            .map(|i| (i.line, i.column, i.key.as_str()))
            .collect();
        assert_eq!(
            at,
            [(4, 17, "programs.a.env.A"), (4, 17, "programs.b.env.A")]
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
        // saphyr-parser stops at its own limit first here.
        assert!(issues(&deep_flow)[0].message.contains("recursion limit"));
        let deep: String = (0..100)
            .map(|i| format!("{}- ", " ".repeat(2 * i)))
            .collect();
        let found = issues(&(deep + "x\n"));
        assert!(
            found[0].message.contains("nest deeper than 64 levels"),
            "{found:?}"
        );
        assert!(
            issues(&bomb)
                .iter()
                .any(|i| i.message.contains("once aliases are expanded"))
        );
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
