//! The taskmasterd configuration file: loading, validating and finding it, and its public API.
//!
//! The YAML schema and defaults are in `schema`, validation that reports every problem of a
//! file at once (each with line, column and dotted key) in `check` (with the value parsers in
//! `values`, the user and group lookups in `identity`, the key positions in `positions`, and
//! the executable and `workingdir` checks that give warnings in `preflight`), and where the
//! file is found in `find`. The rules for tokens and credential files, which taskctl keeps
//! too, are in [`secret`].
//!
//! `serde_yaml` parses the text into a [`serde_yaml::Value`] (YAML 1.2 scalars: `yes` is a
//! string, `022` the string "022"; merge keys `<<` applied), which is then checked setting by
//! setting so that every problem is reported. A `Value` does not know where it was written, so `saphyr-parser`'s event
//! stream is read once beside it into an `Index` of where each key and value is, which also keeps
//! plain scalars as written: env values keep their spelling (`1.10`) and `umask: 0o22` is octal.

pub mod alerts;
mod bounds;
mod check;
mod find;
mod identity;
pub mod output;
mod positions;
pub mod preflight;
mod schema;
pub mod secret;
#[cfg(test)]
mod testing;
mod values;

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

pub use find::{DEFAULT_FILE_NAME, find};
pub use identity::Credentials;
pub use output::{Capture, Output, OutputPath, PathTemplate, TemplatePart};
pub use schema::Stdin;
pub use schema::{
    AutoRestart, Config, DaemonSettings, Identity, Principal, Principals, ProgramConfig, Secret,
    TlsSettings, TokenConfig, TokenSource,
};
pub use secret::MIN_TOKEN_LEN;
pub use values::parse_signal;

use find::{absolute, clean};

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

/// The token variables (`daemon.tokens[].env`) taken out of the environment by
/// [`take_token_variables`], by name; `None` until then. Once taken, token variables are
/// found here only: a reload finds the ones the daemon started with, and no other.
static TAKEN_VARIABLES: std::sync::Mutex<Option<BTreeMap<String, String>>> =
    std::sync::Mutex::new(None);

/// The value of the token variable `name`: from the environment, or once the daemon has taken
/// its token variables ([`take_token_variables`]), from those it took. A variable a reload
/// names for the first time is refused then: it was never taken out of the environment (the
/// environment of a process with threads cannot safely be changed), so every program started
/// since has inherited it, and will.
pub(crate) fn token_variable(name: &str) -> Result<String, String> {
    let taken = TAKEN_VARIABLES
        .lock()
        .unwrap_or_else(|poison| poison.into_inner());
    let Some(taken) = &*taken else {
        return std::env::var(name)
            .map_err(|_| format!("the environment variable {name} is not set"));
    };
    taken.get(name).cloned().ok_or_else(|| {
        let set = match std::env::var_os(name) {
            Some(_) => "is set, but",
            None => "is not set, and",
        };
        format!(
            "the environment variable {name} {set} it was not a token variable when the daemon \
             started: the daemon reads token variables at start only (and takes them out of its \
             environment, so that no program inherits them); restart the daemon to use it, or \
             keep the token in a `file`"
        )
    })
}

/// Takes every environment variable that holds a token of `config` out of the process's
/// environment, so that no program the daemon starts inherits it; the config reader still finds
/// them (a reload reads the file again), and no other ([`token_variable`]).
///
/// # Safety
/// No other thread may exist: it changes the process's environment (`std::env::remove_var`).
pub unsafe fn take_token_variables(config: &Config) {
    let mut taken = TAKEN_VARIABLES
        .lock()
        .unwrap_or_else(|poison| poison.into_inner());
    let taken = taken.get_or_insert_default();
    let tokens = (config.daemon.tokens.iter()).filter_map(|token| match &token.source {
        TokenSource::Env(name) => Some(name.as_str()),
        TokenSource::File(_) => None,
    });
    // The secrets of alert sinks are kept as tokens are.
    for name in tokens.chain(config.alerts.secret_variables()) {
        if let Ok(value) = std::env::var(name) {
            taken.insert(name.to_string(), value);
            // SAFETY: the caller promises that no other thread exists.
            unsafe { std::env::remove_var(name) };
        }
    }
}

/// Reads and validates a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let path = absolute(path)?;
    let text = read(&path)?;
    parse(&text, &path)
}

/// The text of the config file at `path`; a file larger than [`bounds::MAX_BYTES`] is not
/// read past that bound.
fn read(path: &Path) -> Result<String, ConfigError> {
    use std::io::Read;
    let read_error = |source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let mut bytes = Vec::new();
    file.take(bounds::MAX_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    String::from_utf8(bytes)
        .map_err(|error| read_error(io::Error::new(io::ErrorKind::InvalidData, error)))
}

/// The Unix socket a config file gives the daemon (`daemon.socket`; `None`: not set), for a
/// client looking for that daemon. A file the daemon would reject still names its socket, so
/// that the client can reach the daemon and be told what is wrong: `daemon.socket` is then read
/// from the YAML without validation, resolved against the file's directory. When even that
/// cannot be read (the text is not YAML), the error is the file's problems.
pub fn socket_of(path: &Path) -> Result<Option<PathBuf>, ConfigError> {
    let path = absolute(path)?;
    let text = read(&path)?;
    match parse(&text, &path) {
        Ok(config) => Ok(config.daemon.socket),
        Err(error @ ConfigError::Invalid { .. }) => {
            let dir = path.parent().unwrap_or(Path::new("/"));
            unvalidated_socket(&text, dir).ok_or(error)
        }
        Err(error) => Err(error),
    }
}

/// The string at `daemon.socket` in YAML `text`, whatever else the text holds, resolved against
/// `dir`; `None` when `text` is not YAML.
fn unvalidated_socket(text: &str, dir: &Path) -> Option<Option<PathBuf>> {
    bounds::check(text).ok()?;
    let document: serde_yaml::Value = serde_yaml::from_str(text).ok()?;
    let socket = (document.get("daemon"))
        .and_then(|daemon| daemon.get("socket"))
        .and_then(serde_yaml::Value::as_str);
    Some(socket.map(|socket| clean(&dir.join(socket))))
}

/// Validates config text for programs run by this process; `path` is used for messages and to
/// resolve relative paths. A relative `path` is taken from the current directory (`Read` error
/// when there is none).
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    parse_for(text, path, Credentials::current())
}

/// [`parse`] for programs that a daemon with `daemon`'s credentials runs (only root may give
/// them another identity).
pub fn parse_for(text: &str, path: &Path, daemon: Credentials) -> Result<Config, ConfigError> {
    let path = absolute(path)?;
    let dir = path.parent().unwrap_or(Path::new("/"));
    // The parser's cost grows with the square of the nesting: bounded before it runs.
    if let Err(issue) = bounds::check(text) {
        return Err(invalid(path, vec![issue]));
    }
    match check::settings(text, dir, daemon) {
        Ok(((daemon, programs, alerts), mut warnings)) => {
            warnings.sort_by_key(|warning| (warning.line, warning.column));
            Ok(Config {
                path,
                daemon,
                programs,
                alerts,
                warnings,
            })
        }
        Err(issues) => Err(invalid(path, issues)),
    }
}

/// [`ConfigError::Invalid`] with the issues in file order.
fn invalid(path: PathBuf, mut issues: Vec<ConfigIssue>) -> ConfigError {
    // Stable: problems at the same place keep the order they were found in.
    issues.sort_by_key(|issue| (issue.line, issue.column));
    ConfigError::Invalid { path, issues }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::positions::{Pos, issue};
    use crate::config::testing::{FIXTURE_TEXT, PATH, WEB, captured, issues, web};

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
        // It shows the output options.
        let ticker = &config.programs["ticker"];
        let Output::Capture(stdout) = &ticker.stdout else {
            panic!("{:?}", ticker.stdout);
        };
        assert!(stdout.timestamps && stdout.maxbytes == 1024 * 1024 && stdout.backups == 3);
        assert!(config.programs["worker"].redirect_stderr);
        assert_eq!(config.programs["sleeper"].stdout, Output::Discard);
    }

    #[test]
    fn a_config_nested_a_hundred_thousand_deep_is_rejected_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deep.yaml");
        let depth = 100_000;
        for text in [
            format!("programs: {}{}\n", "[".repeat(depth), "]".repeat(depth)),
            format!("programs:\n  {}x\n", "- ".repeat(depth)),
        ] {
            std::fs::write(&path, &text).unwrap();
            let began = std::time::Instant::now();
            let error = load(&path).unwrap_err().to_string();
            // Without the bound the parser spins for minutes; with it this is a millisecond.
            assert!(began.elapsed() < std::time::Duration::from_secs(1));
            assert!(
                error.starts_with(&format!("{}:", path.display()))
                    && error.contains("nest more than 64 levels"),
                "{error}"
            );
        }
    }

    #[test]
    fn a_config_larger_than_the_bound_is_not_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("huge.yaml");
        let file = std::fs::File::create(&path).unwrap();
        // Sparse: 1 GiB on the disk's say-so, nothing written.
        file.set_len(1 << 30).unwrap();
        let error = load(&path).unwrap_err().to_string();
        assert!(error.contains("larger than 16 MiB"), "{error}");
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
    fn relative_paths_resolve_against_the_config_directory() {
        let program = web("stdout: out/web.log");
        assert_eq!(program.stdout, captured("/srv/taskmaster/out/web.log"));
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
            captured(&cwd.join("conf/err.log").to_string_lossy())
        );
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
        // The nesting bound is met first; serde_yaml's own limits are in force behind it.
        let message = |text: &str| issues(text)[0].message.clone();
        assert!(message(&deep_flow).contains("nest more than 64 levels"));
        assert!(message(&deep_block).contains("nest more than 64 levels"));
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

    #[test]
    fn an_invalid_config_still_names_its_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("taskmaster.yaml");
        std::fs::write(
            &path,
            "daemon:\n  socket: run/t.sock\nprograms:\n  web:\n    numprocs: lots\n",
        )
        .unwrap();
        assert_eq!(
            socket_of(&path).unwrap(),
            Some(dir.path().join("run/t.sock"))
        );
        std::fs::write(&path, "daemon: [unclosed\n").unwrap();
        assert!(socket_of(&path).is_err());
    }

    #[test]
    fn socket_of_a_valid_config_is_its_validated_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("taskmaster.yaml");
        std::fs::write(&path, "daemon:\n  socket: ./t.sock\nprograms: {}\n").unwrap();
        assert_eq!(socket_of(&path).unwrap(), Some(dir.path().join("t.sock")));
        std::fs::write(&path, "programs: {}\n").unwrap();
        assert_eq!(socket_of(&path).unwrap(), None);
        // Without a socket to fall back on, an invalid file is still an error.
        std::fs::write(&path, "daemon: [unclosed\n").unwrap();
        assert!(matches!(socket_of(&path), Err(ConfigError::Invalid { .. })));
        let missing = dir.path().join("missing.yaml");
        assert!(matches!(socket_of(&missing), Err(ConfigError::Read { .. })));
    }
}
