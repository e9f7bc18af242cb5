//! The hosts file, `$XDG_CONFIG_HOME/taskmaster/hosts.yaml` (else `~/.config/...`): daemons by
//! name, each with its address and credentials, so that `taskctl -H prod` works. Every problem
//! in the file is reported at once, each with file, line, column and key.
//!
//! ```yaml
//! prod:
//!   address: https://prod.example.com:7300
//!   token_file: prod.token    # relative to this file's folder
//!   ca: prod-ca.pem           # https:// only, as cert and key
//! local:
//!   address: unix:/run/taskmaster.sock
//! ```

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    path::{Path, PathBuf},
};

use saphyr_parser::{Event, Parser};
use serde::Deserialize;
use taskmaster::endpoint::Target;

use super::{Address, parse_address};

/// One daemon of the hosts file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Where it listens.
    pub target: Target,
    /// The file that holds its token.
    pub token_file: Option<PathBuf>,
    /// The certificates of the CAs its certificate may come from.
    pub ca: Option<PathBuf>,
    /// The client certificate and key for mutual TLS.
    pub identity: Option<(PathBuf, PathBuf)>,
}

/// A hosts file that was read and found good.
#[derive(Debug)]
pub struct HostsFile {
    /// Its entries by name.
    pub entries: BTreeMap<String, Entry>,
}

/// A hosts file that cannot be used: each problem on a line of its own.
#[derive(Debug, thiserror::Error)]
pub enum HostsFileError {
    #[error("cannot read the hosts file {}: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("the hosts file has errors:\n{}", join(problems))]
    Invalid {
        /// `FILE:LINE:COLUMN: KEY: message`, in the order of the file.
        problems: Vec<String>,
    },
}

fn join(problems: &[String]) -> String {
    problems.join("\n")
}

/// `$XDG_CONFIG_HOME/taskmaster/hosts.yaml`, else `$HOME/.config/taskmaster/hosts.yaml`; `None`
/// when neither is set. A relative `XDG_CONFIG_HOME` is ignored, as the XDG spec says.
pub fn default_path() -> Option<PathBuf> {
    let config_home = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|dir| dir.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|home| !home.is_empty())
                .map(|home| PathBuf::from(home).join(".config"))
        })?;
    Some(config_home.join("taskmaster").join("hosts.yaml"))
}

/// Reads the hosts file at `path`; `None` when there is none.
pub fn load(path: &Path) -> Result<Option<HostsFile>, HostsFileError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(HostsFileError::Read {
                path: path.into(),
                error,
            });
        }
    };
    parse(&text, path).map(Some)
}

/// The keys of an entry, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    address: String,
    token_file: Option<PathBuf>,
    ca: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

/// Parses the text of the hosts file at `path` (relative paths in it are relative to its
/// folder).
pub fn parse(text: &str, path: &Path) -> Result<HostsFile, HostsFileError> {
    let at = |pos: Pos, key: &str, message: &str| {
        let key = if key.is_empty() {
            String::new()
        } else {
            format!("{key}: ")
        };
        format!(
            "{}:{}:{}: {key}{message}",
            path.display(),
            pos.line,
            pos.column
        )
    };
    let index = Index::build(text);
    let mut problems: Vec<(Pos, String)> = index
        .duplicates
        .iter()
        .map(|(pos, name, first)| {
            let message = format!("host `{name}` is defined twice (first at line {first})");
            (*pos, at(*pos, name, &message))
        })
        .collect();
    let raw: BTreeMap<String, RawEntry> = match serde_yaml::from_str::<Option<_>>(text) {
        Ok(raw) => raw.unwrap_or_default(),
        Err(error) => {
            // serde_yaml's message starts with the key path and ends with the place.
            let pos = error.location().map_or(Pos::START, |location| Pos {
                line: location.line(),
                column: location.column(),
            });
            let message = error.to_string();
            let suffix = format!(" at line {} column {}", pos.line, pos.column);
            let message = message.strip_suffix(&suffix).unwrap_or(&message);
            problems.push((pos, at(pos, "", message)));
            return Err(invalid(problems));
        }
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut entries = BTreeMap::new();
    for (name, raw) in raw {
        let mut problem = |key: &str, on_value: bool, message: String| {
            let pos = index.place(&name, key, on_value);
            let key = if key.is_empty() {
                name.clone()
            } else {
                format!("{name}.{key}")
            };
            problems.push((pos, at(pos, &key, &message)));
        };
        if !is_name(&name) {
            problem(
                "",
                false,
                "a host name is letters, digits, `.`, `_` and `-` only".into(),
            );
        }
        let target = match parse_address(&raw.address) {
            Ok(Address::Target(target)) => Some(target),
            Ok(Address::Named(_)) => {
                problem(
                    "address",
                    true,
                    format!(
                        "expected a URL (http:// or https://), HOST:PORT or unix:PATH, found `{}`",
                        raw.address
                    ),
                );
                None
            }
            Err(reason) => {
                problem("address", true, reason);
                None
            }
        };
        if let Some(target) = &target
            && !target.is_tls()
        {
            for (key, given) in [
                ("ca", raw.ca.is_some()),
                ("cert", raw.cert.is_some()),
                ("key", raw.key.is_some()),
            ] {
                if given {
                    problem(key, false, "is for https:// addresses only".into());
                }
            }
        }
        let identity = match (raw.cert, raw.key) {
            (Some(cert), Some(key)) => Some((dir.join(cert), dir.join(key))),
            (Some(_), None) => {
                problem("cert", false, "needs `key` beside it".into());
                None
            }
            (None, Some(_)) => {
                problem("key", false, "needs `cert` beside it".into());
                None
            }
            (None, None) => None,
        };
        if let Some(target) = target {
            let entry = Entry {
                target,
                token_file: raw.token_file.map(|file| dir.join(file)),
                ca: raw.ca.map(|file| dir.join(file)),
                identity,
            };
            entries.insert(name, entry);
        }
    }
    if problems.is_empty() {
        Ok(HostsFile { entries })
    } else {
        Err(invalid(problems))
    }
}

fn invalid(mut problems: Vec<(Pos, String)>) -> HostsFileError {
    problems.sort();
    HostsFileError::Invalid {
        problems: problems.into_iter().map(|(_, problem)| problem).collect(),
    }
}

/// Whether `name` can be a host's name: never mistaken for an address (no `:` or `/`), and
/// never split by `TASKMASTER_HOSTS` (no `,`).
pub fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// A place in the text; both 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Pos {
    line: usize,
    column: usize,
}

impl Pos {
    const START: Pos = Pos { line: 1, column: 1 };
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// Where the names and their keys are written, read from `saphyr-parser`'s events (serde_yaml
/// forgets them): the two levels this file has.
#[derive(Default)]
struct Index {
    /// Each name's place.
    names: HashMap<String, Pos>,
    /// The place of each key of an entry and of its value, by name and key.
    keys: HashMap<(String, String), (Pos, Pos)>,
    /// A name written again: where, the name, and the line it was first written on.
    duplicates: Vec<(Pos, String, usize)>,
}

impl Index {
    /// Reads as much of `text` as the parser can; a syntax error just ends the index there
    /// (serde_yaml reports it).
    fn build(text: &str) -> Index {
        let mut index = Index::default();
        // Open collections: 1 is the top mapping, 2 an entry.
        let mut depth = 0usize;
        // Whether the next scalar in the top mapping, or in the entry, is a key.
        let mut name: Option<String> = None;
        let mut expecting_key = [true, true];
        let mut key: Option<(String, Pos)> = None;
        for (event, span) in Parser::new_from_str(text).map_while(Result::ok) {
            let pos = Pos {
                line: span.start.line().max(1),
                column: span.start.col() + 1,
            };
            let opens = matches!(event, Event::MappingStart(..) | Event::SequenceStart(..));
            match event {
                Event::MappingEnd | Event::SequenceEnd => {
                    depth = depth.saturating_sub(1);
                    if depth == 1 {
                        expecting_key[0] = true;
                        name = None;
                    }
                    continue;
                }
                Event::Scalar(..)
                | Event::Alias(_)
                | Event::MappingStart(..)
                | Event::SequenceStart(..) => {}
                _ => continue,
            }
            match depth {
                1 if expecting_key[0] => {
                    if let Event::Scalar(text, ..) = &event {
                        let text = text.to_string();
                        match index.names.get(&text) {
                            Some(first) => index.duplicates.push((pos, text.clone(), first.line)),
                            None => {
                                index.names.insert(text.clone(), pos);
                            }
                        }
                        name = Some(text);
                    }
                    expecting_key[0] = false;
                    expecting_key[1] = true;
                }
                1 => expecting_key[0] = true,
                2 if expecting_key[1] => {
                    if let Event::Scalar(text, ..) = &event {
                        key = Some((text.to_string(), pos));
                    }
                    expecting_key[1] = false;
                }
                2 => {
                    if let (Some(name), Some((key, key_pos))) = (&name, key.take()) {
                        index
                            .keys
                            .entry((name.clone(), key))
                            .or_insert((key_pos, pos));
                    }
                    expecting_key[1] = true;
                }
                _ => {}
            }
            if opens {
                depth += 1;
            }
        }
        index
    }

    /// Where to report a problem of `key` of entry `name`: at its value or its key, else at the
    /// name.
    fn place(&self, name: &str, key: &str, on_value: bool) -> Pos {
        match self.keys.get(&(name.to_string(), key.to_string())) {
            Some((key, value)) => {
                if on_value {
                    *value
                } else {
                    *key
                }
            }
            None => self.names.get(name).copied().unwrap_or(Pos::START),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        match parse(text, Path::new("/home/me/hosts.yaml")) {
            Err(HostsFileError::Invalid { problems }) => problems,
            other => panic!("expected problems, got {other:?}"),
        }
    }

    #[test]
    fn entries_with_paths_beside_the_file() {
        let text = "\
prod:
  address: https://prod.example.com:7300
  token_file: prod.token
  ca: /etc/ca.pem
  cert: me.pem
  key: me.key
local:
  address: unix:/run/taskmaster.sock
lab: {address: '10.0.0.5:7300', token_file: lab.token}
";
        let file = parse(text, Path::new("/home/me/hosts.yaml")).unwrap();
        assert_eq!(
            file.entries["prod"],
            Entry {
                target: Target::Tcp("https://prod.example.com:7300".into()),
                token_file: Some("/home/me/prod.token".into()),
                ca: Some("/etc/ca.pem".into()),
                identity: Some(("/home/me/me.pem".into(), "/home/me/me.key".into())),
            }
        );
        assert_eq!(
            file.entries["local"].target,
            Target::Unix("/run/taskmaster.sock".into())
        );
        assert_eq!(
            file.entries["lab"].target,
            Target::Tcp("http://10.0.0.5:7300".into())
        );
        assert!(
            parse("# nothing yet\n", Path::new("h.yaml"))
                .unwrap()
                .entries
                .is_empty()
        );
        assert!(parse("", Path::new("h.yaml")).unwrap().entries.is_empty());
    }

    #[test]
    fn every_problem_names_file_line_column_and_key() {
        let text = "\
prod:
  address: prod.example.com
  ca: ca.pem
lab:
  address: http://10.0.0.5:7300
  cert: me.pem
bad/name:
  address: ftp://x
";
        assert_eq!(
            problems(text),
            [
                "/home/me/hosts.yaml:2:12: prod.address: expected a URL (http:// or https://), \
                 HOST:PORT or unix:PATH, found `prod.example.com`",
                "/home/me/hosts.yaml:6:3: lab.cert: is for https:// addresses only",
                "/home/me/hosts.yaml:6:3: lab.cert: needs `key` beside it",
                "/home/me/hosts.yaml:7:1: bad/name: a host name is letters, digits, `.`, `_` \
                 and `-` only",
                "/home/me/hosts.yaml:8:12: bad/name.address: unsupported scheme `ftp`: use \
                 http://, https:// or unix:PATH",
            ]
        );
    }

    #[test]
    fn serde_problems_keep_their_place_and_key() {
        assert_eq!(
            problems("prod:\n  address: x:1\n  adress: y\n"),
            [
                "/home/me/hosts.yaml:3:3: prod: unknown field `adress`, expected one of \
              `address`, `token_file`, `ca`, `cert`, `key`"
            ]
        );
        assert_eq!(
            problems("prod:\n  token_file: t\n"),
            ["/home/me/hosts.yaml:2:3: prod: missing field `address`"]
        );
        assert_eq!(
            problems("- prod\n"),
            ["/home/me/hosts.yaml:1:1: invalid type: sequence, expected a map"]
        );
    }

    #[test]
    fn a_name_defined_twice_is_a_problem() {
        assert_eq!(
            problems("a:\n  address: x:1\nb: {address: y:1}\na:\n  address: z:1\n"),
            ["/home/me/hosts.yaml:4:1: a: host `a` is defined twice (first at line 1)"]
        );
    }
}
