//! What can be known about starting a program before it starts: whether its executable is
//! found, on which PATH, and whether its `workingdir` is there. A config reports what is wrong
//! as warnings (a binary may appear later); a failed spawn asks the same questions to say what
//! failed.

use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::schema::ProgramConfig;

/// The PATH that `execvp(3)` searches when glibc finds none in the environment.
const DEFAULT_PATH: &str = "/bin:/usr/bin";

/// The PATH a program's executable is searched on: the child's own, which is the one of its
/// `env` if that sets one, else the daemon's.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SearchPath {
    /// Directories separated by `:`; an empty one is the current directory.
    pub value: String,
    /// Where it comes from.
    pub source: PathSource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PathSource {
    /// `env: {PATH: ...}` of the program.
    Env,
    /// The daemon's environment.
    Daemon,
    /// Nobody set one: the C library's default.
    Default,
}

impl SearchPath {
    /// The PATH the child of `config` searches.
    pub fn of(config: &ProgramConfig) -> SearchPath {
        if let Some(path) = config.env.get("PATH") {
            return SearchPath {
                value: path.clone(),
                source: PathSource::Env,
            };
        }
        match std::env::var_os("PATH") {
            Some(path) => SearchPath {
                value: path.to_string_lossy().into_owned(),
                source: PathSource::Daemon,
            },
            None => SearchPath {
                value: DEFAULT_PATH.to_string(),
                source: PathSource::Default,
            },
        }
    }
}

impl fmt::Display for SearchPath {
    /// `PATH /usr/bin:/bin (the daemon's)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match self.source {
            PathSource::Env => "from the program's env",
            PathSource::Daemon => "the daemon's",
            PathSource::Default => "the default: the daemon has no PATH",
        };
        write!(f, "PATH {} ({source})", self.value)
    }
}

/// Why a program's executable cannot be run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecutableProblem {
    /// A bare name that no directory of the search path holds (as an executable file).
    NotOnPath {
        /// The name as the command gives it.
        name: String,
        /// Where it was searched.
        path: SearchPath,
        /// The first directory of it that could not be searched (as `execvp(3)`, a spawn
        /// then fails with "Permission denied").
        denied: Option<PathBuf>,
    },
    /// A path (with a `/`, resolved against `workingdir`) that does not exist or cannot be
    /// looked at.
    Missing {
        /// The path looked at.
        path: PathBuf,
        /// Why it is not there, in `strerror` words.
        reason: String,
    },
    /// It exists but is not something to execute.
    NotExecutable {
        /// The file found.
        path: PathBuf,
        /// Why it cannot be executed.
        reason: String,
    },
}

impl fmt::Display for ExecutableProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExecutableProblem::NotOnPath { name, path, denied } => {
                write!(f, "executable `{name}` not found on {path}")?;
                match denied {
                    Some(dir) => write!(f, "; {}: Permission denied", dir.display()),
                    None => Ok(()),
                }
            }
            ExecutableProblem::Missing { path, reason }
            | ExecutableProblem::NotExecutable { path, reason } => {
                write!(f, "executable {}: {reason}", path.display())
            }
        }
    }
}

/// Where the executable of `config` is (a bare name searched on its [`SearchPath`]), or why
/// it cannot be run, as far as the daemon can see: the file exists, is a regular file, and has
/// an execute bit.
pub fn executable(config: &ProgramConfig) -> Result<PathBuf, ExecutableProblem> {
    let program = &config.argv[0];
    if program.contains('/') {
        let path = match &config.workingdir {
            // The child resolves it after changing to its directory.
            Some(dir) => dir.join(program),
            None => PathBuf::from(program),
        };
        return runnable(&path).map(|()| path);
    }
    let search = SearchPath::of(config);
    let mut not_executable = None;
    let mut denied = None;
    for dir in search.value.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = Path::new(dir).join(program);
        let metadata = match std::fs::metadata(&candidate) {
            Ok(metadata) => metadata,
            Err(error) if error.kind() == std::io::ErrorKind::PermissionDenied => {
                denied.get_or_insert_with(|| PathBuf::from(dir));
                continue;
            }
            Err(_) => continue,
        };
        match executable_file(&candidate, &metadata) {
            Ok(()) => return Ok(candidate),
            Err(problem) => {
                not_executable.get_or_insert(problem);
            }
        }
    }
    // As execvp(3): a file found that cannot be executed says more than "not found".
    Err(not_executable.unwrap_or(ExecutableProblem::NotOnPath {
        name: program.clone(),
        path: search,
        denied,
    }))
}

/// Whether `path` is a regular file with an execute bit.
fn runnable(path: &Path) -> Result<(), ExecutableProblem> {
    let metadata = std::fs::metadata(path).map_err(|error| ExecutableProblem::Missing {
        path: path.to_path_buf(),
        reason: io_reason(&error),
    })?;
    executable_file(path, &metadata)
}

/// Whether the file at `path` with `metadata` is a regular file with an execute bit.
fn executable_file(path: &Path, metadata: &std::fs::Metadata) -> Result<(), ExecutableProblem> {
    let not_executable = |reason: String| ExecutableProblem::NotExecutable {
        path: path.to_path_buf(),
        reason,
    };
    if metadata.is_dir() {
        return Err(not_executable("Is a directory".to_string()));
    }
    if !metadata.is_file() {
        return Err(not_executable("not a regular file".to_string()));
    }
    let mode = metadata.permissions().mode() & 0o7777;
    if mode & 0o111 == 0 {
        return Err(not_executable(format!(
            "Permission denied (mode {mode:04o}: no execute bit)"
        )));
    }
    Ok(())
}

/// Why `dir` cannot be a working directory, as far as the daemon can see: it is missing, not a
/// directory, or (for the daemon's own user) cannot be entered.
pub fn workingdir(dir: &Path) -> Result<(), String> {
    let metadata = std::fs::metadata(dir).map_err(|error| io_reason(&error))?;
    if !metadata.is_dir() {
        return Err(nix::errno::Errno::ENOTDIR.desc().to_string());
    }
    nix::unistd::access(dir, nix::unistd::AccessFlags::X_OK)
        .map_err(|errno| errno.desc().to_string())
}

/// An I/O error in `strerror` words.
pub fn io_reason(error: &std::io::Error) -> String {
    match error.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_string(),
        None => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    use crate::config::testing::{PATH, WEB, ok};

    /// (line, column, key, message) of each warning of `text`, which is valid.
    fn warnings(text: &str) -> Vec<(usize, usize, String, String)> {
        (ok(text).warnings.into_iter())
            .map(|issue| (issue.line, issue.column, issue.key, issue.message))
            .collect()
    }

    fn program(lines: &[&str]) -> String {
        let lines: String = lines.iter().map(|line| format!("    {line}\n")).collect();
        format!("programs:\n  web:\n{lines}")
    }

    #[test]
    fn what_will_fail_to_start_is_a_warning_at_its_key() {
        let daemon_path = std::env::var("PATH").unwrap();
        // A directory of it this test may not search (a run as non-root with /root/... on
        // PATH) is named; as root there is none.
        let denied = (daemon_path.split(':'))
            .find(|dir| {
                let looked = std::fs::metadata(Path::new(dir).join("no-such-program-here"));
                looked.is_err_and(|error| error.kind() == std::io::ErrorKind::PermissionDenied)
            })
            .map_or_else(String::new, |dir| format!("; {dir}: Permission denied"));
        let later = "; starting the program fails until that changes";
        let cases = [
            (
                program(&["cmd: no-such-program-here --flag"]),
                (3, 10, "programs.web.cmd"),
                format!(
                    "executable `no-such-program-here` not found on PATH {daemon_path} \
                     (the daemon's){denied}{later}"
                ),
            ),
            (
                program(&["cmd: sleep 1", "env: {PATH: /nonexistent/bin}"]),
                (3, 10, "programs.web.cmd"),
                format!(
                    "executable `sleep` not found on PATH /nonexistent/bin (from the program's \
                     env){later}"
                ),
            ),
            (
                program(&["cmd: /nonexistent/binary"]),
                (3, 10, "programs.web.cmd"),
                format!("executable /nonexistent/binary: No such file or directory{later}"),
            ),
            (
                program(&["cmd: /tmp"]),
                (3, 10, "programs.web.cmd"),
                format!("executable /tmp: Is a directory{later}"),
            ),
        ];
        for (text, (line, column, key), message) in cases {
            assert_eq!(
                warnings(&text),
                [(line, column, key.to_string(), message)],
                "{text}"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("script.sh");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&script, PermissionsExt::from_mode(0o644)).unwrap();
        let found = warnings(&program(&[&format!("cmd: {}", script.display())]));
        assert_eq!(
            found[0].3,
            format!(
                "executable {}: Permission denied (mode 0644: no execute bit){later}",
                script.display()
            )
        );
        // Relative to the workingdir, which is missing too: both said, in file order.
        let found = warnings(&program(&["workingdir: /nonexistent/dir", "cmd: ./run"]));
        assert_eq!(
            found,
            [
                (
                    3,
                    17,
                    "programs.web.workingdir".to_string(),
                    format!("workingdir /nonexistent/dir: No such file or directory{later}")
                ),
                (
                    4,
                    10,
                    "programs.web.cmd".to_string(),
                    format!("executable /nonexistent/dir/./run: No such file or directory{later}")
                ),
            ]
        );
        let found = warnings(&program(&["cmd: /bin/true", "workingdir: /etc/passwd"]));
        assert_eq!(
            found[0].3,
            format!("workingdir /etc/passwd: Not a directory{later}")
        );
        // Found: no warning, and the lines name the file.
        assert_eq!(warnings(&format!("{WEB}    workingdir: /tmp\n")), []);
        let config = ok(&program(&["cmd: no-such-program-here"]));
        assert_eq!(
            config.warning_lines(),
            [format!(
                "{PATH}:3:10: programs.web.cmd: executable `no-such-program-here` not found on \
                 PATH {daemon_path} (the daemon's){denied}{later}"
            )]
        );
    }
}
