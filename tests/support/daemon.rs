//! A real taskmasterd: the one place that spawns it, on a temporary socket in a temporary
//! directory, under a [`Guard`]; waiting until it answers and until given instances run.

use std::{
    collections::HashMap,
    ffi::OsString,
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Stdio},
};

use taskmaster::{
    endpoint::{self, Target},
    proto::{State, taskmaster_client::TaskmasterClient},
};

use super::{
    config::Config,
    process::{Guard, children_of},
    read,
    rpc::{Client, status},
    wait::{expect, wait_until},
};

/// `taskmasterd` with nothing on its stdin.
pub fn taskmasterd() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_taskmasterd"));
    command.stdin(Stdio::null());
    command
}

/// `taskmasterd --foreground --config CONFIG`.
pub fn foreground(config: &Path) -> Command {
    let mut command = taskmasterd();
    command.arg("--foreground").arg("--config").arg(config);
    command
}

/// A running daemon in its own temporary directory.
pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub config_path: PathBuf,
    pub log_path: PathBuf,
    process: Guard,
}

/// How to start a daemon, beyond its config: see [`Daemon::launch`].
pub struct Launch {
    config: Config,
    dir: Option<tempfile::TempDir>,
    flags: Vec<OsString>,
    inherited_child: bool,
    /// A command that runs the daemon: its words, then the daemon's command line.
    wrapper: Vec<OsString>,
    /// Shell commands run before the daemon is exec'd in their process (`umask 000`).
    before_exec: Vec<String>,
    /// Variables added to the daemon's environment.
    env: Vec<(OsString, OsString)>,
}

impl Launch {
    /// An extra command-line argument.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Launch {
        self.flags.push(arg.into());
        self
    }

    /// Also listening on TCP at `address` (`--listen`: a port of loopback, or HOST:PORT).
    pub fn listen(self, address: impl std::fmt::Display) -> Launch {
        self.arg("--listen").arg(address.to_string())
    }

    /// In a directory the test prepared, instead of a new one.
    pub fn in_dir(mut self, dir: tempfile::TempDir) -> Launch {
        self.dir = Some(dir);
        self
    }

    /// From a shell that starts `sleep 1000` in the background and then execs the daemon: that
    /// sleep is a child the daemon inherits but did not start.
    pub fn with_inherited_child(mut self) -> Launch {
        self.inherited_child = true;
        self
    }

    /// Through `wrapper`, a command that ends by exec'ing the words after its own (`setpriv
    /// --reuid=65534 ... --`): the daemon keeps its pid.
    pub fn wrapped(mut self, wrapper: &[&str]) -> Launch {
        self.wrapper = wrapper.iter().map(OsString::from).collect();
        self
    }

    /// With `line` run by the shell that then execs the daemon (`true & :`: a child that the
    /// daemon inherits, already exited).
    pub fn before_exec(mut self, line: &str) -> Launch {
        self.before_exec.push(line.to_string());
        self
    }

    /// Under umask `mask` (set by a shell that then execs the daemon).
    pub fn umask(mut self, mask: u32) -> Launch {
        self.before_exec.push(format!("umask {mask:03o}"));
        self
    }

    /// With at most `count` open files, soft and hard limit (set by a shell that then execs
    /// the daemon).
    pub fn open_files(mut self, count: u32) -> Launch {
        self.before_exec.push(format!("ulimit -n {count}"));
        self
    }

    /// With `key=value` in its environment.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Launch {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Starts the daemon and waits until it answers.
    pub async fn start(self) -> Daemon {
        let daemon = self.spawn_in_dir();
        daemon.wait_ready().await;
        daemon
    }

    /// Starts the daemon and waits until it exits, for a daemon that must refuse to start: its
    /// exit status and stderr.
    pub async fn refused(self) -> (ExitStatus, String) {
        let mut daemon = self.spawn_in_dir();
        let status = daemon.wait_exit().await;
        (status, read(&daemon.path("daemon.stderr")))
    }

    /// Spawns the daemon as the settings say, without waiting for it.
    fn spawn_in_dir(self) -> Daemon {
        let dir = match self.dir {
            Some(dir) => dir,
            None => tempfile::tempdir().expect("temp dir"),
        };
        let config_path = write_config(dir.path(), self.config);
        let mut command = foreground(&config_path);
        command.args(&self.flags);
        if self.inherited_child || !self.before_exec.is_empty() {
            let mut script = String::new();
            for line in &self.before_exec {
                script.push_str(&format!("{line}; "));
            }
            if self.inherited_child {
                script.push_str("sleep 1000 & ");
            }
            script.push_str("exec \"$0\" \"$@\"");
            let mut shell = Command::new("sh");
            shell
                .arg("-c")
                .arg(script)
                .arg(command.get_program())
                .args(command.get_args())
                .stdin(Stdio::null());
            command = shell;
        }
        if let Some((program, words)) = self.wrapper.split_first() {
            let mut wrapper = Command::new(program);
            wrapper
                .args(words)
                .arg(command.get_program())
                .args(command.get_args())
                .stdin(Stdio::null());
            command = wrapper;
        }
        command.envs(self.env);
        let process = spawn_logged(command, &dir.path().join("daemon.stderr"));
        Daemon {
            socket: dir.path().join(SOCKET),
            log_path: dir.path().join(LOGFILE),
            config_path,
            dir,
            process,
        }
    }
}

/// The daemon's files, in its directory.
const CONFIG: &str = "taskmaster.yaml";
const SOCKET: &str = "taskmaster.sock";
const LOGFILE: &str = "taskmaster.log";
const PIDFILE: &str = "taskmaster.pid";

/// Writes `config` as the config file in `dir`, its daemon section pointing into `dir`;
/// returns the file's path.
fn write_config(dir: &Path, config: Config) -> PathBuf {
    let text = config.file(
        dir,
        &dir.join(SOCKET),
        &dir.join(LOGFILE),
        &dir.join(PIDFILE),
    );
    let path = dir.join(CONFIG);
    std::fs::write(&path, text).expect("write config");
    path
}

/// Spawns a daemon under a guard, its stderr kept in `stderr` for failure messages.
fn spawn_logged(mut command: Command, stderr: &Path) -> Guard {
    let stderr = std::fs::File::create(stderr).expect("stderr file");
    Guard::spawn(command.stdout(Stdio::null()).stderr(stderr))
}

impl Daemon {
    /// Starts a daemon on `config` and waits until it answers.
    pub async fn start(config: impl Into<Config>) -> Daemon {
        Daemon::launch(config).start().await
    }

    /// Like [`Daemon::start`], with more to say about how: [`Launch`].
    pub fn launch(config: impl Into<Config>) -> Launch {
        Launch {
            config: config.into(),
            dir: None,
            flags: Vec::new(),
            inherited_child: false,
            wrapper: Vec::new(),
            before_exec: Vec::new(),
            env: Vec::new(),
        }
    }

    /// Rewrites the config file with `config` (for a reload); same daemon section.
    pub fn write_config(&self, config: impl Into<Config>) {
        write_config(self.dir.path(), config.into());
    }

    /// Starts another taskmasterd on this daemon's config (and so its socket), once this one
    /// has stopped; it does not wait for it to answer.
    pub fn spawn_again(&self) -> Guard {
        spawn_logged(
            foreground(&self.config_path),
            &self.path("daemon-again.stderr"),
        )
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    pub fn target(&self) -> Target {
        Target::Unix(self.socket.clone())
    }

    /// The daemon's exit status if it has exited.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        self.process.try_exit()
    }

    /// Waits for the daemon to exit; fails the test after the deadline.
    pub async fn wait_exit(&mut self) -> ExitStatus {
        expect("the daemon to exit", || {
            let exited = self.try_exit();
            async move { exited }
        })
        .await
    }

    async fn wait_ready(&self) {
        let target = self.target();
        let stderr_path = self.path("daemon.stderr");
        wait_until("the daemon to answer", || async {
            endpoint::connect(&target).await.ok().map(|_| ())
        })
        .await
        .unwrap_or_else(|| {
            panic!(
                "taskmasterd did not answer; its stderr:\n{}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            )
        });
    }

    pub async fn client(&self) -> Client {
        let channel = endpoint::connect(&self.target())
            .await
            .expect("connect to taskmasterd");
        TaskmasterClient::new(channel)
    }

    /// Waits until every instance `names` gives is RUNNING: an instance name (`web:0`), or a
    /// program name for all its instances (`web`). Returns the pid of every RUNNING instance
    /// then.
    pub async fn wait_running(&self, names: &[&str]) -> HashMap<String, u32> {
        let client = self.client().await;
        let what = format!("{} to be RUNNING", names.join(", "));
        expect(&what, || {
            let mut client = client.clone();
            async move {
                let now = status(&mut client).await;
                let all_run = names.iter().all(|name| {
                    let mut named = now
                        .iter()
                        .filter(|i| i.name == *name || i.program == *name)
                        .peekable();
                    named.peek().is_some() && named.all(|i| i.state() == State::Running)
                });
                all_run.then(|| {
                    now.iter()
                        .filter(|i| i.state() == State::Running)
                        .map(|i| (i.name.clone(), i.pid))
                        .collect()
                })
            }
        })
        .await
    }

    /// The event log's text.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Every live process the daemon started (its direct children).
    pub fn children(&self) -> Vec<u32> {
        children_of(self.pid())
    }
}
