//! Running in the background: the launcher that starts taskmasterd again detached and waits
//! until it listens, the detached side's goodbye to its stdio, and the pid file.

use std::{
    io::{self, BufRead, BufReader, Write},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Command, ExitCode, ExitStatus, Stdio},
};

use crate::flags::{Args, Settings};

/// Why the daemon could not be started in the background.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("finding the taskmasterd executable")]
    Executable(#[source] io::Error),
    #[error("starting taskmasterd")]
    Start(#[source] io::Error),
    #[error("reading taskmasterd's readiness")]
    NoReadiness,
    /// Reading the readiness line or waiting for the daemon failed.
    #[error(transparent)]
    Wait(#[from] io::Error),
    #[error("taskmasterd died during start-up: {0}")]
    Died(ExitStatus),
}

/// Starts this program again in the foreground, in its own session, and returns once it
/// listens (or has failed, with its error on our stderr).
pub fn launch_in_background(
    args: &Args,
    config_path: &Path,
    settings: &Settings,
) -> Result<ExitCode, LaunchError> {
    let exe = std::env::current_exe().map_err(LaunchError::Executable)?;
    let mut command = Command::new(exe);
    command
        .arg("--foreground")
        .arg("--notify-ready")
        .arg("--config")
        .arg(config_path)
        .arg("--socket")
        .arg(&settings.socket)
        .arg("--logfile")
        .arg(&settings.logfile)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(listen) = &settings.listen {
        command.arg("--listen").arg(listen);
    }
    if let Some(pidfile) = &args.pidfile {
        command.arg("--pidfile").arg(pidfile);
    }
    // SAFETY: setsid(2) is async-signal-safe and the closure neither allocates nor locks.
    unsafe {
        command.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let mut child = command.spawn().map_err(LaunchError::Start)?;
    let stdout = child.stdout.take().ok_or(LaunchError::NoReadiness)?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    if line.trim() == "ready" {
        println!(
            "taskmasterd started: pid {}, socket {}",
            child.id(),
            settings.socket.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let status = child.wait()?;
    match status.code() {
        Some(code) => Ok(ExitCode::from(u8::try_from(code).unwrap_or(1).max(1))),
        None => Err(LaunchError::Died(status)),
    }
}

/// Tells the launcher we are listening, then points stdin, stdout and stderr at /dev/null.
pub fn detach_stdio() -> io::Result<()> {
    let mut stdout = std::io::stdout();
    stdout.write_all(b"ready\n")?;
    stdout.flush()?;
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    nix::unistd::dup2_stdin(&null)?;
    nix::unistd::dup2_stdout(&null)?;
    nix::unistd::dup2_stderr(&null)?;
    Ok(())
}

/// The pid file, removed when dropped unless another daemon has written its own since.
pub struct PidFile {
    path: PathBuf,
    /// What we wrote: another daemon's pid file is not ours to remove.
    contents: String,
}

/// The pidfile's mode.
const PIDFILE_MODE: u32 = 0o644;

impl PidFile {
    /// Writes our pid to `path`, a file of mode 0644 whatever the umask (readable by all, as
    /// pidfiles are; writable by the daemon only).
    pub fn write(path: &Path) -> io::Result<PidFile> {
        use std::{io::Write, os::unix::fs::PermissionsExt};
        let contents = format!("{}\n", std::process::id());
        let mut file = std::fs::File::create(path)?;
        // The mode of an existing file, or of one the umask widened, is set here.
        file.set_permissions(std::fs::Permissions::from_mode(PIDFILE_MODE))?;
        file.write_all(contents.as_bytes())?;
        Ok(PidFile {
            path: path.into(),
            contents,
        })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        if std::fs::read_to_string(&self.path).is_ok_and(|now| now == self.contents) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
