//! Test support: a real `taskmasterd` on a temporary socket, stopped (with every process it
//! started) when the guard drops, a gRPC client to it, and waiting for conditions with deadlines.
#![allow(dead_code)]

use std::{
    future::Future,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use taskmaster::{
    endpoint::{self, Target},
    proto::{self, taskmaster_client::TaskmasterClient},
};
use tonic::transport::Channel;

/// How long any awaited condition may take before the test fails; generous for a loaded
/// 2-core machine.
pub const DEADLINE: Duration = Duration::from_secs(20);

pub type Client = TaskmasterClient<Channel>;

/// A running daemon in its own temporary directory.
pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub config_path: PathBuf,
    pub log_path: PathBuf,
    child: Child,
}

impl Daemon {
    /// Starts a daemon whose config has `programs` (YAML, indented as the body of a
    /// `programs:` key; `{dir}` stands for the temporary directory).
    pub async fn start(programs: &str) -> Daemon {
        Daemon::start_with_flags(programs, &[]).await
    }

    /// Like [`Daemon::start`] with extra command-line flags.
    pub async fn start_with_flags(programs: &str, flags: &[&str]) -> Daemon {
        Daemon::start_in(tempfile::tempdir().expect("temp dir"), programs, flags).await
    }

    /// Like [`Daemon::start_with_flags`] in a directory the test prepared.
    pub async fn start_in(dir: tempfile::TempDir, programs: &str, flags: &[&str]) -> Daemon {
        let daemon = Daemon::spawn(dir, programs, flags, false);
        daemon.wait_ready().await;
        daemon
    }

    /// Like [`Daemon::start`], from a shell that starts `sleep 1000` in the background and then
    /// execs the daemon: that sleep is a child the daemon inherits but did not start.
    pub async fn start_with_inherited_child(programs: &str) -> Daemon {
        let daemon = Daemon::spawn(tempfile::tempdir().expect("temp dir"), programs, &[], true);
        daemon.wait_ready().await;
        daemon
    }

    fn spawn(dir: tempfile::TempDir, programs: &str, flags: &[&str], inherit: bool) -> Daemon {
        let socket = dir.path().join("taskmaster.sock");
        let config_path = dir.path().join("taskmaster.yaml");
        let log_path = dir.path().join("taskmaster.log");
        std::fs::write(
            &config_path,
            config_text(dir.path(), &socket, &log_path, programs),
        )
        .expect("write config");
        let stderr = std::fs::File::create(dir.path().join("daemon.stderr")).expect("stderr file");
        let mut command = if inherit {
            let mut shell = Command::new("sh");
            shell
                .arg("-c")
                .arg("sleep 1000 & exec \"$0\" \"$@\"")
                .arg(env!("CARGO_BIN_EXE_taskmasterd"));
            shell
        } else {
            Command::new(env!("CARGO_BIN_EXE_taskmasterd"))
        };
        let child = command
            .arg("--foreground")
            .arg("--config")
            .arg(&config_path)
            .args(flags)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn taskmasterd");
        Daemon {
            dir,
            socket,
            config_path,
            log_path,
            child,
        }
    }

    /// Rewrites the config file with `programs` (for a reload).
    pub fn write_programs(&self, programs: &str) {
        let text = config_text(self.dir.path(), &self.socket, &self.log_path, programs);
        std::fs::write(&self.config_path, text).expect("write config");
    }

    /// Writes the config file as is.
    pub fn write_config_text(&self, text: &str) {
        std::fs::write(&self.config_path, text).expect("write config");
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn target(&self) -> Target {
        Target::Unix(self.socket.clone())
    }

    /// The daemon's exit status if it has exited.
    pub fn try_exit(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().expect("try_wait")
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

    /// The event log's text.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Every live process the daemon started (its direct children).
    pub fn children(&self) -> Vec<u32> {
        children_of(self.child.id())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        if wait_exit(&mut self.child, Duration::from_secs(15)) {
            return;
        }
        // The daemon did not stop: kill everything it started, then the daemon.
        for child in children_of(self.child.id()) {
            if child > 0 {
                let group = nix::unistd::Pid::from_raw(child as i32);
                let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A whole config file: the daemon section points into `dir`.
fn config_text(dir: &Path, socket: &Path, log: &Path, programs: &str) -> String {
    let programs = programs.replace("{dir}", &dir.display().to_string());
    let body = if programs.trim().is_empty() {
        "programs: {}".to_string()
    } else {
        format!("programs:\n{}", indent(&programs))
    };
    format!(
        "daemon:\n  socket: {}\n  logfile: {}\n  pidfile: {}\n{body}\n",
        socket.display(),
        log.display(),
        dir.join("taskmaster.pid").display(),
    )
}

/// Waits for `child` to exit for at most `timeout`; true when it did.
pub fn wait_exit(child: &mut Child, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// The pids of the live children of `pid`, from /proc.
pub fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|word| word.parse().ok())
        .collect()
}

/// Whether `pid` is alive (a zombie counts as dead).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

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
                format!("  {}", &line[margin..])
            } else {
                String::new()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Retries `check` until it gives `Some`, for at most [`DEADLINE`]. Returns `None` on timeout.
pub async fn wait_until<T, F, Fut>(what: &str, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + DEADLINE;
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if Instant::now() >= deadline {
            eprintln!("timed out waiting for {what}");
            return None;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// Like [`wait_until`] but fails the test on timeout.
pub async fn expect<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    match wait_until(what, check).await {
        Some(value) => value,
        None => panic!("timed out after {DEADLINE:?} waiting for {what}"),
    }
}

/// The status of every instance, by name.
pub async fn status(client: &mut Client) -> Vec<proto::InstanceStatus> {
    client
        .status(proto::StatusRequest { names: vec![] })
        .await
        .expect("Status")
        .into_inner()
        .instances
}

/// The status of one instance.
pub async fn instance(client: &mut Client, name: &str) -> proto::InstanceStatus {
    status(client)
        .await
        .into_iter()
        .find(|instance| instance.name == name)
        .unwrap_or_else(|| panic!("no instance {name}"))
}

/// Waits until instance `name` is in `state`; returns its status then.
pub async fn wait_state(
    client: &mut Client,
    name: &str,
    state: proto::State,
) -> proto::InstanceStatus {
    let what = format!("{name} to be {state:?}");
    expect(&what, || {
        let mut client = client.clone();
        async move {
            let found = instance(&mut client, name).await;
            (found.state() == state).then_some(found)
        }
    })
    .await
}

/// Reads a file, empty when missing.
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}
