//! The Checker: walks the parsed document key by key, converts each setting with the value
//! parsers and collects every problem, each at the place the index gives it. The keys of who
//! may control the daemon are read in [`access`], the `alerts:` section in [`alerts`].

mod access;
mod alerts;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde_yaml::{Mapping, Value};

use super::ConfigIssue;
use super::identity::{Account, Accounts, Credentials, GroupEntry, Key, UserEntry};
use super::output::{Capture, MAX_BACKUPS, Output, OutputPath};
use super::positions::{LazyIndex, Pos, issue, last};
use super::preflight::{self, ExecutableProblem, SearchPath};
use super::schema::{DaemonSettings, MAX_EXIT_CODE, MAX_NUMPROCS, MAX_STARTRETRIES, ProgramConfig};
use super::values::{
    account, autorestart, boolean, byte_size, command_line, count, describe, duration, expected,
    file_mode, file_path, listen, output, output_path, signal, socket_path, stdin, umask,
    variable_name,
};

/// Keys allowed at the top level.
const TOP_KEYS: &[&str] = &["daemon", "programs", "alerts"];

/// Reads the value of one key (at the key path given) into the settings `T`; a bad value is
/// reported and leaves the setting as it was.
type Read<T> = fn(&mut Checker<'_>, &[String], &Value, &mut T);

/// The keys allowed under `daemon`, each with how its value is read.
const DAEMON_KEYS: &[(&str, Read<DaemonSettings>)] = &[
    ("socket", |c, key, value, d| {
        d.socket = c.check(key, socket_path(c.dir, value)).flatten();
    }),
    ("listen", |c, key, value, d| {
        d.listen = c.check(key, listen(value)).flatten();
    }),
    ("logfile", |c, key, value, d| d.logfile = c.path(key, value)),
    ("pidfile", |c, key, value, d| d.pidfile = c.path(key, value)),
    ("logdir", |c, key, value, d| d.logdir = c.path(key, value)),
    ("cgroups", |c, key, value, d| {
        d.cgroups = c.check(key, boolean(value));
    }),
    ("socket_mode", |c, key, value, d| {
        let written = c.index.get().plain(key);
        d.socket_mode = c.check(key, file_mode(value, written)).flatten();
    }),
    ("socket_group", |c, key, value, d| {
        d.socket_group = match value {
            Value::Null => None,
            _ => {
                let group = c.principal(value, Key::Group);
                c.check(key, group)
            }
        };
    }),
    ("operators", |c, key, value, d| {
        set(&mut d.operators, c.principals(key, value));
    }),
    ("viewers", |c, key, value, d| {
        set(&mut d.viewers, c.principals(key, value));
    }),
    ("tokens", |c, key, value, d| {
        set(&mut d.tokens, c.tokens(key, value))
    }),
    ("tls", |c, key, value, d| d.tls = c.tls(key, value)),
    ("tcp_max_connections", |c, key, value, d| {
        let connections = count(value, 1, MAX_TCP_CONNECTIONS);
        d.tcp_max_connections = c.check(key, connections);
    }),
    ("tcp_idle_timeout", |c, key, value, d| {
        d.tcp_idle_timeout = c.check(key, idle_timeout(value));
    }),
];

/// The most `daemon.tcp_max_connections` may be.
const MAX_TCP_CONNECTIONS: u32 = 65_536;

/// `daemon.tcp_idle_timeout`: a duration of at least a second (the daemon pings every quarter
/// of it; more often would be traffic for nothing).
fn idle_timeout(value: &Value) -> Result<std::time::Duration, String> {
    let timeout = duration(value)?;
    if timeout < std::time::Duration::from_secs(1) {
        return Err(format!(
            "must be at least 1 second, found {}",
            describe(value)
        ));
    }
    Ok(timeout)
}

/// The keys allowed in a program, each with how its value is read into the program's settings
/// (which start at the defaults of [`ProgramConfig::with_command`]). A new program key is a
/// line here and a field of [`ProgramConfig`].
const PROGRAM_KEYS: &[(&str, Read<ProgramConfig>)] = &[
    ("cmd", |c, key, value, p| {
        set(&mut p.argv, c.check(key, command_line(value)));
    }),
    ("numprocs", |c, key, value, p| {
        set(&mut p.numprocs, c.check(key, count(value, 1, MAX_NUMPROCS)));
    }),
    ("autostart", |c, key, value, p| {
        set(&mut p.autostart, c.check(key, boolean(value)));
    }),
    ("autorestart", |c, key, value, p| {
        set(&mut p.autorestart, c.check(key, autorestart(value)));
    }),
    ("exitcodes", |c, key, value, p| {
        set(&mut p.exitcodes, c.exitcodes(key, value));
    }),
    ("starttime", |c, key, value, p| {
        set(&mut p.starttime, c.check(key, duration(value)));
    }),
    ("startretries", |c, key, value, p| {
        let retries = count(value, 0, MAX_STARTRETRIES);
        set(&mut p.startretries, c.check(key, retries));
    }),
    ("stopsignal", |c, key, value, p| {
        set(&mut p.stopsignal, c.check(key, signal(value)));
    }),
    ("stoptime", |c, key, value, p| {
        set(&mut p.stoptime, c.check(key, duration(value)));
    }),
    ("stdout", |c, key, value, p| {
        set(&mut p.stdout, c.output(key, value))
    }),
    ("stderr", |c, key, value, p| {
        set(&mut p.stderr, c.output(key, value))
    }),
    ("redirect_stderr", |c, key, value, p| {
        set(&mut p.redirect_stderr, c.check(key, boolean(value)));
    }),
    ("kill_leftovers", |c, key, value, p| {
        set(&mut p.kill_leftovers, c.check(key, boolean(value)));
    }),
    ("env", |c, key, value, p| set(&mut p.env, c.env(key, value))),
    ("workingdir", |c, key, value, p| {
        p.workingdir = c.path(key, value)
    }),
    ("umask", |c, key, value, p| {
        let written = c.index.get().plain(key);
        p.umask = c.check(key, umask(value, written)).flatten();
    }),
    // Looked up now; the identity is made of both once every key is read.
    ("user", |c, key, value, _| {
        c.pending.user = c.account(key, value, "user", Accounts::user);
    }),
    ("group", |c, key, value, _| {
        c.pending.group = c.account(key, value, "group", Accounts::group);
    }),
    // A console to attach to: a terminal, or a stdin pipe (see `tty_consistency`).
    ("tty", |c, key, value, p| {
        set(&mut p.tty, c.check(key, boolean(value)));
    }),
    ("stdin", |c, key, value, p| {
        set(&mut p.stdin, c.check(key, stdin(value)));
    }),
];

/// The keys of an output stream written as a mapping (`stdout: {path: x, maxbytes: 1MB}`),
/// each with how its value is read into the stream's options (which start at the defaults).
const OUTPUT_KEYS: &[(&str, Read<Capture>)] = &[
    ("path", |c, key, value, o| {
        set(&mut o.path, c.check(key, output_path(c.dir, value)));
    }),
    ("maxbytes", |c, key, value, o| {
        set(&mut o.maxbytes, c.check(key, byte_size(value)));
    }),
    ("backups", |c, key, value, o| {
        set(&mut o.backups, c.check(key, count(value, 0, MAX_BACKUPS)));
    }),
    ("timestamps", |c, key, value, o| {
        set(&mut o.timestamps, c.check(key, boolean(value)));
    }),
];

/// The `daemon:` section and the programs of config `text` with the warnings about them, or
/// every problem found in it (each in the order found). Relative paths are resolved against
/// `dir`; `daemon` is who will run the programs (only root may give them another identity).
pub(super) fn settings(
    text: &str,
    dir: &Path,
    daemon: Credentials,
) -> Result<(Settings, Vec<ConfigIssue>), Vec<ConfigIssue>> {
    let mut checker = Checker {
        dir,
        index: LazyIndex::new(text),
        issues: Vec::new(),
        warnings: Vec::new(),
        accounts: Accounts::new(daemon),
        pending: PendingIdentity::default(),
        executables: HashMap::new(),
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
        Some(settings) if checker.issues.is_empty() => Ok((settings, checker.warnings)),
        _ => Err(checker.issues),
    }
}

/// Walks the document, converting each setting on its own so that every bad one is reported.
struct Checker<'a> {
    /// Directory of the config file; relative paths are resolved against it.
    dir: &'a Path,
    /// Where each key and value is written, for the place of each problem.
    index: LazyIndex<'a>,
    /// Every problem found so far, in the order found.
    issues: Vec<ConfigIssue>,
    /// What looks wrong but does not reject the file, in the order found.
    warnings: Vec<ConfigIssue>,
    /// The user and group databases, each account looked up once.
    accounts: Accounts,
    /// The `user:` and `group:` of the program being read.
    pending: PendingIdentity,
    /// Where each executable was found (or why not), by name, search path and `workingdir`:
    /// 5000 programs running `sleep` search the PATH once.
    executables: HashMap<(String, SearchPath, Option<PathBuf>), Result<PathBuf, ExecutableProblem>>,
}

/// The `user:` and `group:` of one program, kept until every key of it is read: each `None`
/// when not set (or null), `Some(None)` when it was bad (and reported).
#[derive(Default)]
struct PendingIdentity {
    /// `user:`'s entry.
    user: Option<Option<UserEntry>>,
    /// `group:`'s entry.
    group: Option<Option<GroupEntry>>,
}

pub(super) type Settings = (
    DaemonSettings,
    BTreeMap<String, ProgramConfig>,
    super::alerts::AlertSettings,
);

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

    /// Reads `value` with the reader of its key in `keys`, or reports the key unknown.
    fn read<T>(&mut self, key: &[String], value: &Value, keys: &[(&str, Read<T>)], into: &mut T) {
        match keys.iter().find(|(name, _)| *name == last(key)) {
            Some((_, read)) => read(self, key, value, into),
            None => {
                let known: Vec<&str> = keys.iter().map(|(name, _)| *name).collect();
                self.unknown_key(key, &known);
            }
        }
    }

    /// A `user:` or `group:` (`what`) looked up with `look_up`: `None` when not set (or null),
    /// `Some(None)` when bad (and reported).
    fn account<T>(
        &mut self,
        key: &[String],
        value: &Value,
        what: &str,
        look_up: fn(&mut Accounts, &Account) -> Result<T, String>,
    ) -> Option<Option<T>> {
        match self.check(key, account(value, what)) {
            None => Some(None),
            Some(None) => None,
            Some(Some(account)) => {
                let entry = look_up(&mut self.accounts, &account);
                Some(self.check(key, entry))
            }
        }
    }

    /// A path setting resolved against the config's directory; `None` when not set or bad.
    fn path(&mut self, key: &[String], value: &Value) -> Option<PathBuf> {
        self.check(key, file_path(self.dir, value)).flatten()
    }

    /// An output stream: a path or a word (see [`output`]), or a mapping of options.
    fn output(&mut self, path: &[String], value: &Value) -> Option<Output> {
        let Value::Mapping(map) = value else {
            return self.check(path, output(self.dir, value));
        };
        let before = self.issues.len();
        let mut capture = Capture::default();
        for (key, value) in self.entries(path, map) {
            self.read(&key, value, OUTPUT_KEYS, &mut capture);
        }
        (self.issues.len() == before).then_some(Output::Capture(capture))
    }

    /// What a terminal leaves no room for, in the program read from `map` at `path`: its
    /// stderr and stdin are the terminal, and its output must be read (or the program would
    /// block once the terminal's buffer is full, and nobody could attach to see it).
    fn tty_consistency(&mut self, path: &[String], map: &Mapping, program: &ProgramConfig) {
        if !program.tty {
            return;
        }
        let key = |name: &str| [path, &[name.to_string()]].concat();
        for (name, what) in [
            ("stderr", "stderr"),
            ("redirect_stderr", "stderr"),
            ("stdin", "stdin"),
        ] {
            if map.contains_key(name) {
                let message = format!(
                    "with tty: true the program's {what} is its terminal; remove `{name}` (or \
                     tty)"
                );
                self.report(&key(name), true, message);
            }
        }
        if program.stdout == Output::Discard {
            let message = "with tty: true the terminal's output is captured (attach shows it, \
                           and an unread terminal would block the program); stdout may not be \
                           discarded";
            self.report(&key("stdout"), false, message);
        }
    }

    /// What is wrong between the settings of a program read from `map` at `path`: `stderr`
    /// beside `redirect_stderr`, an output file that several instances would share.
    fn program_consistency(&mut self, path: &[String], map: &Mapping, program: &ProgramConfig) {
        let key = |stream: &str| [path, &[stream.to_string()]].concat();
        if program.redirect_stderr && map.contains_key("stderr") {
            let message = "stderr is ignored with redirect_stderr: true (stderr goes where \
                           stdout goes); remove one of them";
            self.report(&key("stderr"), true, message);
        }
        let mut streams = vec![("stdout", &program.stdout)];
        if !program.redirect_stderr {
            streams.push(("stderr", &program.stderr));
        }
        for (stream, output) in streams {
            let Output::Capture(Capture {
                path: OutputPath::Template(template),
                ..
            }) = output
            else {
                continue;
            };
            // Without placeholders the file is shared on purpose.
            if program.numprocs > 1
                && template.has_placeholders()
                && !template.tells_instances_apart()
            {
                let mut key = key(stream);
                if map.get(stream).is_some_and(Value::is_mapping) {
                    key.push("path".to_string());
                }
                let name = last(path);
                let file = template.render(name, 0, &format!("{name}:0"));
                let message = format!(
                    "instances {name}:0 and {name}:1 would share {}; add {{name}} or {{index}} \
                     to the path (or write a path without placeholders to share it on purpose)",
                    file.display()
                );
                self.report(&key, false, message);
            }
        }
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
        let mut alerts_section = None;
        for (path, value) in self.entries(&[], map) {
            match last(&path) {
                "daemon" => daemon = self.daemon(&path, value),
                "programs" => {
                    has_programs = true;
                    programs = self.programs(&path, value);
                }
                // Once the programs are known: its rules name them.
                "alerts" => alerts_section = Some((path, value)),
                _ => self.unknown_key(&path, TOP_KEYS),
            }
        }
        if !has_programs {
            let pos = self.index.get().place(&[]).value;
            self.issues
                .push(issue(pos, "programs", "missing required key `programs`"));
        }
        let alerts = match alerts_section {
            Some((path, value)) => self.alerts(&path, value, programs.as_ref()),
            None => Some(super::alerts::AlertSettings::default()),
        };
        Some((daemon?, programs?, alerts?))
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
            self.read(&path, value, DAEMON_KEYS, &mut settings);
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
            } else if !valid_program_name(name) {
                let message = format!(
                    "invalid program name {name:?}: a letter or `_` first, then letters, \
                     digits, `_`, `.` and `-`, at most {MAX_NAME} characters"
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
        self.pending = PendingIdentity::default();
        let mut program = ProgramConfig::with_command(Vec::new());
        let mut has_cmd = false;
        for (key, value) in self.entries(path, map) {
            has_cmd |= last(&key) == "cmd";
            self.read(&key, value, PROGRAM_KEYS, &mut program);
        }
        if !has_cmd {
            self.report(path, true, "missing required key `cmd`");
        }
        self.program_consistency(path, map, &program);
        self.tty_consistency(path, map, &program);
        self.program_identity(path, map, &mut program);
        // A bad or missing `cmd` was reported: the empty `argv` is never returned.
        let valid = self.issues.len() == before;
        if valid {
            self.program_warnings(path, &program);
        }
        valid.then_some(program)
    }

    /// The identity of the program at `path` (read from `map`) from its `user:` and `group:`;
    /// a problem is reported at the key at fault.
    fn program_identity(&mut self, path: &[String], map: &Mapping, program: &mut ProgramConfig) {
        let pending = std::mem::take(&mut self.pending);
        let (user, group) = match (pending.user, pending.group) {
            (None, None) => return,
            // Reported already.
            (Some(None), _) | (_, Some(None)) => return,
            (user, group) => (user.flatten(), group.flatten()),
        };
        match self.accounts.identity(user.as_ref(), group.as_ref()) {
            Ok(identity) => program.identity = Some(identity),
            Err((key, message)) => {
                let (name, other) = match key {
                    Key::User => ("user", "group"),
                    Key::Group => ("group", "user"),
                };
                let name = if map.contains_key(name) { name } else { other };
                self.report(&[path, &[name.to_string()]].concat(), false, message);
            }
        }
    }

    /// Warns about what will fail when the program at `path` starts, as far as can be seen
    /// now: an executable not found, a `workingdir` missing. Neither rejects the file: either
    /// may be there by then.
    fn program_warnings(&mut self, path: &[String], program: &ProgramConfig) {
        let key = |name: &str| [path, &[name.to_string()]].concat();
        let later = "; starting the program fails until that changes";
        if let Some(dir) = &program.workingdir
            && let Err(reason) = preflight::workingdir(dir)
        {
            let message = format!("workingdir {}: {reason}{later}", dir.display());
            self.warn(&key("workingdir"), message);
        }
        let search = (
            program.argv[0].clone(),
            SearchPath::of(program),
            program.workingdir.clone(),
        );
        let found = (self.executables.entry(search))
            .or_insert_with(|| preflight::executable(program))
            .clone();
        if let Err(problem) = found {
            self.warn(&key("cmd"), format!("{problem}{later}"));
        }
    }

    /// Records a warning about the value at `path`.
    fn warn(&mut self, path: &[String], message: String) {
        let pos = self.index.get().place(path).value;
        self.warnings.push(issue(pos, path.join("."), message));
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
            if let Err(message) = variable_name(name) {
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

/// Stores a converted value; `None` (a reported problem) leaves the default.
fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *slot = value;
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

/// The longest program name.
const MAX_NAME: usize = 64;

/// The grammar of program names: `[A-Za-z_][A-Za-z0-9_.-]*`, at most [`MAX_NAME`] bytes. A
/// name never looks like a number (a pid or an index), an option (`-x`) or a path, and never
/// holds the `:` of instance names.
pub(super) fn valid_program_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
    first_ok
        && name.len() <= MAX_NAME
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use nix::sys::signal::Signal;

    use super::*;
    use crate::config::output::{DEFAULT_BACKUPS, DEFAULT_MAXBYTES, PathTemplate, TemplatePart};
    use crate::config::testing::{FIXTURE_TEXT, PATH, WEB, captured, issues, ok, strings, web};
    use crate::config::{AutoRestart, Stdin};

    #[test]
    fn tcp_limits_are_read_and_checked() {
        let daemon =
            ok("daemon:\n  tcp_max_connections: 8\n  tcp_idle_timeout: 90s\nprograms: {}\n").daemon;
        assert_eq!(daemon.tcp_max_connections, Some(8));
        assert_eq!(daemon.tcp_idle_timeout, Some(Duration::from_secs(90)));
        let defaults = ok("programs: {}\n").daemon;
        assert_eq!(
            (defaults.tcp_max_connections, defaults.tcp_idle_timeout),
            (None, None)
        );
        let found =
            issues("daemon:\n  tcp_max_connections: 0\n  tcp_idle_timeout: 0.5\nprograms: {}\n");
        let found: Vec<String> = found.iter().map(ToString::to_string).collect();
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found[0].starts_with("2:24: daemon.tcp_max_connections: "),
            "{found:?}"
        );
        assert_eq!(
            found[1],
            "3:21: daemon.tcp_idle_timeout: must be at least 1 second, found number `0.5`"
        );
    }

    #[test]
    fn program_names_follow_one_grammar() {
        for good in [
            "web",
            "Web2",
            "_private",
            "api.v2",
            "worker-1",
            &"a".repeat(64),
        ] {
            assert!(valid_program_name(good), "{good:?}");
        }
        for bad in [
            "",
            "-",
            "123",
            "1web",
            "-rf",
            ".hidden",
            "..",
            "web:0",
            "a/b",
            "my prog",
            "wéb",
            &"a".repeat(65),
        ] {
            assert!(!valid_program_name(bad), "{bad:?}");
        }
        let issues = crate::config::testing::issues("programs:\n  '123':\n    cmd: x\n");
        assert!(
            issues[0].message.contains("a letter or `_` first"),
            "{issues:?}"
        );
    }

    #[test]
    fn a_command_whose_program_is_empty_is_refused() {
        for cmd in ["\"''\"", "\"'' x\"", "'\"\" x'"] {
            let issues =
                crate::config::testing::issues(&format!("programs:\n  web:\n    cmd: {cmd}\n"));
            assert_eq!(issues.len(), 1, "{cmd}: {issues:?}");
            assert!(
                issues[0].message.contains("first word"),
                "{cmd}: {issues:?}"
            );
            assert_eq!(issues[0].key, "programs.web.cmd");
        }
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
                logdir: None,
                ..DaemonSettings::default()
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
            stdout: captured("/tmp/worker.out"),
            stderr: captured("/srv/taskmaster/logs/worker.err"),
            redirect_stderr: false,
            kill_leftovers: true,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            workingdir: Some(dir.to_path_buf()),
            umask: Some(0o22),
            identity: None,
            tty: false,
            stdin: Stdin::Null,
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
        };
        let expected: BTreeMap<String, ProgramConfig> = [
            ("minimal".to_string(), minimal),
            ("worker".to_string(), worker),
        ]
        .into();
        assert_eq!(config.programs, expected);
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
                w("stdout: {maxbytes: lots}"),
                4,
                24,
                "programs.web.stdout.maxbytes",
                "expected a number of bytes or a size like 10MB (KB, MB, GB: multiples of 1024), found string \"lots\"",
            ),
            (
                w("stdout:\n      maxbytes: lots"),
                5,
                17,
                "programs.web.stdout.maxbytes",
                "found string \"lots\"",
            ),
            (
                w("stdout: {maxbytes: -1}"),
                4,
                24,
                "programs.web.stdout.maxbytes",
                "must not be negative, found -1",
            ),
            (
                w("stderr: {maxbytes: \"-1MB\"}"),
                4,
                24,
                "programs.web.stderr.maxbytes",
                "must not be negative",
            ),
            (
                w("stdout: {maxbytes: 1.5}"),
                4,
                24,
                "programs.web.stdout.maxbytes",
                "found number `1.5`",
            ),
            (
                w("stdout: {maxbytes: 1TB}"),
                4,
                24,
                "programs.web.stdout.maxbytes",
                "found string \"1TB\"",
            ),
            (
                w("stdout: {maxbytes: 99999999999GB}"),
                4,
                24,
                "programs.web.stdout.maxbytes",
                "must be at most 18446744073709551615 bytes",
            ),
            (
                w("stdout: {backups: 5000}"),
                4,
                23,
                "programs.web.stdout.backups",
                "must be from 0 to 1000, found 5000",
            ),
            (
                w("stdout: {timestamps: maybe}"),
                4,
                26,
                "programs.web.stdout.timestamps",
                "expected true or false, found string \"maybe\"",
            ),
            (
                w("stdout: {maxbyte: 1}"),
                4,
                14,
                "programs.web.stdout.maxbyte",
                "unknown key `maxbyte` (did you mean `maxbytes`?); expected one of path, maxbytes, backups, timestamps",
            ),
            (
                w("stdout: {path: discard}"),
                4,
                20,
                "programs.web.stdout.path",
                "to discard the stream, write `discard` as its value, without options",
            ),
            (
                w("stdout: {path: [a]}"),
                4,
                20,
                "programs.web.stdout.path",
                "expected a path (null or `auto` for the default), found a list",
            ),
            (
                w("stdout: {path: \"{nmae}\"}"),
                4,
                20,
                "programs.web.stdout.path",
                "unknown placeholder `{nmae}`",
            ),
            (
                w("stdout: \"/l/%(foo)s.log\""),
                4,
                13,
                "programs.web.stdout",
                "unknown placeholder `%(foo)s`; a path may use {name}, {program}, {index}",
            ),
            (
                w("stderr: \"{nmae}.log\""),
                4,
                13,
                "programs.web.stderr",
                "unknown placeholder `{nmae}`",
            ),
            (
                w("stdout: /l/50%.log"),
                4,
                13,
                "programs.web.stdout",
                "a lone `%`; write `%%` for a literal `%`",
            ),
            (
                w("stdout: [a]"),
                4,
                13,
                "programs.web.stdout",
                "expected a path, `discard` or a mapping of options (path, maxbytes, backups, timestamps), found a list",
            ),
            (
                w("numprocs: 2\n    stdout: /l/{program}.log"),
                5,
                13,
                "programs.web.stdout",
                "instances web:0 and web:1 would share /l/web.log; add {name} or {index} to the path",
            ),
            (
                w("stdout: \"%(program_name)s.log\"\n    numprocs: 3"),
                4,
                13,
                "programs.web.stdout",
                "instances web:0 and web:1 would share /srv/taskmaster/web.log",
            ),
            (
                w("numprocs: 2\n    stderr: {path: \"/l/{program}.log\"}"),
                5,
                20,
                "programs.web.stderr.path",
                "would share /l/web.log",
            ),
            (
                w("redirect_stderr: true\n    stderr: /l/x.log"),
                5,
                5,
                "programs.web.stderr",
                "stderr is ignored with redirect_stderr: true",
            ),
            (
                w("stderr: ~\n    redirect_stderr: true"),
                4,
                5,
                "programs.web.stderr",
                "stderr is ignored with redirect_stderr",
            ),
            (
                w("redirect_stderr: yes"),
                4,
                22,
                "programs.web.redirect_stderr",
                "expected true or false, found string \"yes\"",
            ),
            (
                w("redirect_stder: true"),
                4,
                5,
                "programs.web.redirect_stder",
                "unknown key `redirect_stder` (did you mean `redirect_stderr`?)",
            ),
            (
                "daemon:\n  logdir: [a]\nprograms: {}\n".into(),
                2,
                11,
                "daemon.logdir",
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
                "programs:\n  \"..\":\n    cmd: x\n".into(),
                2,
                3,
                "programs...",
                "invalid program name \"..\"",
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
    fn output_forms() {
        let template = |text: &str| match PathTemplate::parse(text, Path::new("/srv/taskmaster")) {
            Ok(template) => OutputPath::Template(template),
            Err(err) => panic!("{text}: {err}"),
        };
        let capture = |path, maxbytes, backups, timestamps| {
            Output::Capture(Capture {
                path,
                maxbytes,
                backups,
                timestamps,
            })
        };
        let (mib, backups) = (1024 * 1024, DEFAULT_BACKUPS);
        let cases = [
            ("numprocs: 1", Output::default()),
            ("stdout: ~", Output::Discard),
            ("stdout: null", Output::Discard),
            ("stdout: discard", Output::Discard),
            ("stdout: NONE", Output::Discard),
            ("stdout: AUTO", Output::default()),
            ("stdout: {}", Output::default()),
            ("stdout: /l/x.log", captured("/l/x.log")),
            ("stdout: ./none", captured("/srv/taskmaster/none")),
            (
                "stdout: out/{name}.log",
                capture(template("out/{name}.log"), DEFAULT_MAXBYTES, backups, false),
            ),
            (
                "stdout: \"%(here)s/%(program_name)s-%(process_num)02d.log\"",
                capture(
                    OutputPath::Template(PathTemplate {
                        parts: vec![
                            TemplatePart::Text("/srv/taskmaster/".into()),
                            TemplatePart::Program,
                            TemplatePart::Text("-".into()),
                            TemplatePart::Index {
                                width: 2,
                                zero: true,
                            },
                            TemplatePart::Text(".log".into()),
                        ],
                    }),
                    DEFAULT_MAXBYTES,
                    backups,
                    false,
                ),
            ),
            (
                "stdout: {path: /l/x.log, maxbytes: 10MB, backups: 5, timestamps: true}",
                capture(template("/l/x.log"), 10 * mib, 5, true),
            ),
            (
                "stdout:\n      path: \"{program}/{index}\"\n      backups: 0",
                capture(template("{program}/{index}"), DEFAULT_MAXBYTES, 0, false),
            ),
            (
                "stdout: {maxbytes: 0}",
                capture(OutputPath::Default, 0, backups, false),
            ),
            ("stdout: {path: auto, timestamps: false}", Output::default()),
            (
                "stdout: {path: ~, backups: 1000}",
                capture(OutputPath::Default, DEFAULT_MAXBYTES, 1000, false),
            ),
        ];
        for (line, expected) in cases {
            let program = web(line);
            assert_eq!(program.stdout, expected, "{line}");
            assert_eq!(program.stderr, Output::default(), "{line}");
            let stderr = web(&line.replace("stdout", "stderr"));
            assert_eq!(stderr.stderr, expected, "{line}");
        }
    }

    #[test]
    fn a_terminal_or_a_stdin_pipe_and_what_a_terminal_leaves_no_room_for() {
        let program = web("tty: true");
        assert!(program.tty && program.stderr_in_stdout());
        assert_eq!(program.stdin, Stdin::Null);
        assert!(!web("tty: false").tty);
        assert_eq!(web("stdin: pipe").stdin, Stdin::Pipe);
        assert_eq!(web("stdin: null").stdin, Stdin::Null);
        assert_eq!(web("stdin: ~").stdin, Stdin::Null);
        assert!(!web("stdin: pipe").stderr_in_stdout());
        // A terminal with its output in a file of its own is fine.
        assert!(web("tty: true\n    stdout: /l/web.log").tty);
        let w = |lines: &str| format!("{WEB}    {lines}\n");
        let cases = [
            (
                w("tty: yes"),
                4,
                10,
                "programs.web.tty",
                "expected true or false",
            ),
            (
                w("stdin: file"),
                4,
                12,
                "programs.web.stdin",
                "expected null or pipe, found string \"file\"",
            ),
            (
                w("tty: true\n    stdin: pipe"),
                5,
                5,
                "programs.web.stdin",
                "with tty: true the program's stdin is its terminal; remove `stdin` (or tty)",
            ),
            (
                w("tty: true\n    stderr: /l/x.log"),
                5,
                5,
                "programs.web.stderr",
                "the program's stderr is its terminal; remove `stderr`",
            ),
            (
                w("redirect_stderr: true\n    tty: true"),
                4,
                5,
                "programs.web.redirect_stderr",
                "remove `redirect_stderr` (or tty)",
            ),
            (
                w("tty: true\n    stdout: discard"),
                5,
                13,
                "programs.web.stdout",
                "stdout may not be discarded",
            ),
        ];
        for (text, line, column, key, message) in cases {
            let found = issues(&text);
            assert_eq!(found.len(), 1, "{text}: {found:?}");
            let issue = &found[0];
            assert_eq!(
                (issue.line, issue.column, issue.key.as_str()),
                (line, column, key),
                "{text}: {issue}"
            );
            assert!(issue.message.contains(message), "{text}: {issue}");
        }
    }

    #[test]
    fn shared_files_and_redirect_stderr() {
        let text = |lines: &[&str]| {
            let lines: String = lines.iter().map(|l| format!("    {l}\n")).collect();
            format!("{WEB}{lines}")
        };
        // Accepted: a file per instance, one instance, a path without placeholders on purpose.
        for lines in [
            &["numprocs: 2", "stdout: \"/l/{name}.log\""][..],
            &["numprocs: 2", "stdout: \"/l/{program}-{index}.log\""],
            &["numprocs: 2", "stdout: \"/l/%(process_num)d\""],
            &["numprocs: 1", "stdout: \"/l/{program}.log\""],
            &[
                "numprocs: 3",
                "stdout: /l/shared.log",
                "stderr: /l/shared.log",
            ],
            &["numprocs: 2", "stdout: {path: /l/shared.log}"],
            &["numprocs: 2", "redirect_stderr: true"],
            &["numprocs: 2", "stderr: discard", "stdout: discard"],
        ] {
            ok(&text(lines));
        }
        let program = web("redirect_stderr: true");
        assert!(program.redirect_stderr);
        assert!(!web("redirect_stderr: false").redirect_stderr);
        // Every problem at once: in the options, and both streams shared.
        let found = issues(&text(&[
            "numprocs: 2",
            "stdout: {maxbytes: lots, backups: 5000, timestamps: maybe}",
            "stderr: \"/l/{program}.err\"",
        ]));
        let keys: Vec<&str> = found.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "programs.web.stdout.maxbytes",
                "programs.web.stdout.backups",
                "programs.web.stdout.timestamps",
                "programs.web.stderr",
            ]
        );
    }
}
