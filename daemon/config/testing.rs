//! Helpers shared by the config module's tests: a config path, a valid program to extend, the
//! fixture, and parsing that expects success or failure.

use std::path::Path;

use super::output::{Capture, Output, OutputPath, PathTemplate};
use super::{Config, ConfigError, ConfigIssue, Credentials, ProgramConfig, parse, parse_for};

/// Where the configs of the tests claim to be.
pub(super) const PATH: &str = "/srv/taskmaster/taskmaster.yaml";
/// A valid program to which one setting line is appended (it becomes line 4).
pub(super) const WEB: &str = "programs:\n  web:\n    cmd: /bin/true\n";
/// A config using every setting.
pub(super) const FIXTURE_TEXT: &str = include_str!("../../tests/fixtures/config/taskmaster.yaml");

/// The config of `text`, which must be valid.
pub(super) fn ok(text: &str) -> Config {
    parse(text, Path::new(PATH)).unwrap_or_else(|err| panic!("{text:?}:\n{err}"))
}

/// The problems of `text`, which must be invalid.
pub(super) fn issues(text: &str) -> Vec<ConfigIssue> {
    match parse(text, Path::new(PATH)) {
        Err(ConfigError::Invalid { path, issues }) => {
            assert_eq!(path, Path::new(PATH));
            assert!(!issues.is_empty());
            issues
        }
        other => panic!("{text:?}: expected Invalid, got {other:?}"),
    }
}

/// The problems of `text` for a daemon with credentials `daemon`; empty when it is valid.
pub(super) fn issues_for(text: &str, daemon: Credentials) -> Vec<ConfigIssue> {
    match parse_for(text, Path::new(PATH), daemon) {
        Err(ConfigError::Invalid { issues, .. }) => issues,
        Ok(_) => Vec::new(),
        Err(other) => panic!("{text:?}: {other}"),
    }
}

/// [`web`] as a daemon running as root reads it (whoever runs the test): the users and groups
/// are looked up, any identity may be given.
pub(super) fn web_as_root(line: &str) -> ProgramConfig {
    let text = format!("{WEB}    {line}\n");
    let root = Credentials { uid: 0, gid: 0 };
    let config = parse_for(&text, Path::new(PATH), root).unwrap_or_else(|err| panic!("{err}"));
    config.programs["web"].clone()
}

/// The program `web` of [`WEB`] with `line` added to its settings.
pub(super) fn web(line: &str) -> ProgramConfig {
    let config = ok(&format!("{WEB}    {line}\n"));
    config.programs["web"].clone()
}

pub(super) fn strings(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

/// A stream captured, with the default options, into the file at `path` (no placeholders).
pub(super) fn captured(path: &str) -> Output {
    Output::Capture(Capture {
        path: OutputPath::Template(PathTemplate::literal(Path::new(path))),
        ..Capture::default()
    })
}
