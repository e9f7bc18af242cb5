//! Daemon configs: [`Program`] and [`Config`] build the YAML where the text is not the point
//! of the test; [`Config::yaml`] keeps literal YAML where it is, and [`Config::daemon`] adds to
//! the daemon section. `{dir}` in any stands for the daemon's temporary directory.

use std::{fmt::Display, path::Path};

/// One entry of `programs:`, rendered as YAML.
#[derive(Clone, Debug)]
pub struct Program {
    name: String,
    /// `key: value` lines, each value already YAML.
    settings: Vec<(&'static str, String)>,
}

impl Program {
    /// A program running `cmd`; every other setting at the daemon's default.
    pub fn new(name: &str, cmd: &str) -> Program {
        Program {
            name: name.to_string(),
            settings: Vec::new(),
        }
        .set("cmd", quoted(cmd))
    }

    /// `sleep 1000` with the short timings of the tests: starttime 0.2 s, stoptime 1 s.
    pub fn sleeper(name: &str) -> Program {
        Program::new(name, "sleep 1000")
            .starttime(0.2)
            .stoptime(1.0)
    }

    /// Sets `key` to `value`, written into the YAML as it is (so `027`, `[0, 2]` or
    /// `{ A: 1 }` keep their YAML meaning).
    pub fn set(mut self, key: &'static str, value: impl Display) -> Program {
        self.settings.push((key, value.to_string()));
        self
    }

    pub fn numprocs(self, count: u32) -> Program {
        self.set("numprocs", count)
    }

    pub fn autostart(self, autostart: bool) -> Program {
        self.set("autostart", autostart)
    }

    /// `always`, `never` or `unexpected`.
    pub fn autorestart(self, policy: &str) -> Program {
        self.set("autorestart", policy)
    }

    /// A YAML code or list: `0`, `[0, 2]`.
    pub fn exitcodes(self, codes: &str) -> Program {
        self.set("exitcodes", codes)
    }

    pub fn starttime(self, seconds: f64) -> Program {
        self.set("starttime", seconds)
    }

    pub fn startretries(self, retries: u32) -> Program {
        self.set("startretries", retries)
    }

    pub fn stopsignal(self, signal: &str) -> Program {
        self.set("stopsignal", signal)
    }

    pub fn stoptime(self, seconds: f64) -> Program {
        self.set("stoptime", seconds)
    }

    pub fn stdout(self, path: &str) -> Program {
        self.set("stdout", quoted(path))
    }

    pub fn stderr(self, path: &str) -> Program {
        self.set("stderr", quoted(path))
    }

    pub fn workingdir(self, path: &str) -> Program {
        self.set("workingdir", quoted(path))
    }

    /// Octal digits as written in the config: `027`.
    pub fn umask(self, umask: &str) -> Program {
        self.set("umask", umask)
    }

    /// A YAML flow mapping: `{ A: x, B: 42 }`.
    pub fn env(self, mapping: &str) -> Program {
        self.set("env", mapping)
    }

    /// `name:` and its settings, indented as the body of `programs:`.
    fn yaml(&self) -> String {
        let mut text = format!("  {}:\n", self.name);
        for (key, value) in &self.settings {
            text.push_str(&format!("    {key}: {value}\n"));
        }
        text
    }
}

/// A YAML double-quoted scalar for `text` (a JSON string is one).
fn quoted(text: &str) -> String {
    serde_json::to_string(text).expect("a string is JSON")
}

/// The `programs:` of a config file; the daemon section is added when the file is written.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// The body of `programs:`, indented by two spaces; empty for none.
    programs: String,
    /// More of the `daemon:` section than its paths, indented by two spaces.
    daemon: String,
    /// The body of `alerts:`, indented by two spaces; empty for none.
    alerts: String,
}

impl Config {
    /// No programs.
    pub fn new() -> Config {
        Config::default()
    }

    pub fn program(mut self, program: Program) -> Config {
        self.programs.push_str(&program.yaml());
        self
    }

    /// More keys of the `daemon:` section (besides the socket, log and pid files the test's
    /// directory gives), as literal YAML (any common indentation is removed).
    pub fn daemon(mut self, yaml: &str) -> Config {
        self.daemon.push_str(&indent(yaml));
        self
    }

    /// The `alerts:` section's body, as literal YAML (any common indentation is removed).
    pub fn alerts(mut self, yaml: &str) -> Config {
        self.alerts.push_str(&indent(yaml));
        self
    }

    /// Literal YAML, as the body of a `programs:` key (any common indentation is removed), for
    /// tests whose point is the text: its errors, their lines and columns.
    pub fn yaml(programs: &str) -> Config {
        Config {
            programs: indent(programs),
            daemon: String::new(),
            alerts: String::new(),
        }
    }

    /// The whole file: a daemon section with these paths, then the programs, `{dir}` replaced
    /// by `dir`.
    pub fn file(&self, dir: &Path, socket: &Path, logfile: &Path, pidfile: &Path) -> String {
        let programs = self.programs.replace("{dir}", &dir.display().to_string());
        let body = if programs.trim().is_empty() {
            "programs: {}\n".to_string()
        } else {
            format!("programs:\n{programs}")
        };
        let daemon = self.daemon.replace("{dir}", &dir.display().to_string());
        let alerts = match self.alerts.is_empty() {
            true => String::new(),
            false => format!(
                "alerts:\n{}",
                self.alerts.replace("{dir}", &dir.display().to_string())
            ),
        };
        format!(
            "daemon:\n  socket: {}\n  logfile: {}\n  pidfile: {}\n{daemon}{body}{alerts}",
            socket.display(),
            logfile.display(),
            pidfile.display(),
        )
    }
}

impl From<Program> for Config {
    fn from(program: Program) -> Config {
        Config::new().program(program)
    }
}

/// `text` with its common indentation replaced by two spaces, each line ending in a newline.
fn indent(text: &str) -> String {
    let trimmed = text.trim_matches('\n');
    let margin = trimmed
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| line.len() - line.trim_start().len())
        .min()
        .unwrap_or(0);
    trimmed
        .lines()
        .map(|line| {
            if line.len() >= margin {
                format!("  {}\n", &line[margin..])
            } else {
                "\n".to_string()
            }
        })
        .collect()
}
