//! The commands about the daemon itself: `reload`, `shutdown` and `version` (which asks
//! `Status` for the daemon's version).

use taskmaster::{endpoint::Target, proto};
use tonic::Code;

use super::Output;
use crate::{
    connection::Connection,
    exit::{CtlError, Outcome},
    render,
};

/// A config with errors is refused with `InvalidArgument`, which carries them all.
pub async fn reload(
    connection: &mut Connection,
    output: &mut Output<'_>,
) -> Result<Outcome, CtlError> {
    let mut client = connection.client().await?;
    match client.reload(proto::ReloadRequest {}).await {
        Ok(response) => {
            output.write(&render::reload_summary(&response.into_inner()))?;
            Ok(Outcome::Success)
        }
        Err(status) if status.code() == Code::InvalidArgument => {
            Err(CtlError::Rejected(status.message().to_string()))
        }
        Err(status) => Err(connection.failure(status).await),
    }
}

/// Asks the daemon to shut down and, unless `no_wait`, waits until it is gone: its event
/// stream ends once every program is stopped, then (for a daemon on this machine's Unix
/// socket) its process exits, after it has removed its socket and pidfile.
pub async fn shutdown(
    connection: &mut Connection,
    output: &mut Output<'_>,
    no_wait: bool,
) -> Result<Outcome, CtlError> {
    let mut client = connection.client().await?;
    let mut end = None;
    if !no_wait {
        // Both taken before the request, so that neither can miss the end.
        let process = match connection.target() {
            Target::Unix(_) => {
                let request = proto::StatusRequest { names: Vec::new() };
                let status = connection.answer(client.status(request)).await?;
                status
                    .daemon
                    .and_then(|daemon| DaemonProcess::open(daemon.pid))
            }
            Target::Tcp(_) => None,
        };
        let request = proto::WatchEventsRequest::default();
        let events = connection.answer(client.watch_events(request)).await?;
        end = Some((events, process));
    }
    connection
        .answer(client.shutdown(proto::ShutdownRequest {}))
        .await?;
    let Some((mut events, process)) = end else {
        output.write("taskmasterd is shutting down\n")?;
        return Ok(Outcome::Success);
    };
    // Every program is stopped when the stream ends (or the connection does).
    while let Ok(Some(_)) = events.message().await {}
    if let Some(process) = process {
        process.exited().await;
    }
    output.write("taskmasterd stopped\n")?;
    Ok(Outcome::Success)
}

/// The daemon's process on this machine, held by a pidfd: it cannot be mistaken for another
/// process that gets the same pid later.
struct DaemonProcess(tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>);

impl DaemonProcess {
    /// The process `pid` when it is a taskmasterd of this machine's pid namespace (a daemon
    /// in a container reports a pid of its own namespace); `None` otherwise or when it is
    /// gone already.
    fn open(pid: u32) -> Option<DaemonProcess> {
        use std::os::fd::FromRawFd;
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        if comm.trim_end() != "taskmasterd" {
            return None;
        }
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
        let fd = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            return None;
        }
        // SAFETY: `fd` was just returned by pidfd_open and is owned by nobody else.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) };
        let interest = tokio::io::Interest::READABLE;
        // SAFETY: the AsyncFd owns `fd`, which stays open until the AsyncFd (and with it the
        // registration) is dropped.
        unsafe { tokio::io::unix::AsyncFd::register_with_interest(fd, interest) }
            .ok()
            .map(DaemonProcess)
    }

    /// Resolves once the process has exited (a pidfd becomes readable then).
    async fn exited(self) {
        let _ = self.0.readable().await;
    }
}

/// Prints taskctl's version before it asks the daemon, so it shows even when that fails.
pub async fn version(
    connection: &mut Connection,
    output: &mut Output<'_>,
) -> Result<Outcome, CtlError> {
    output.write_bytes(taskctl_version().as_bytes())?;
    daemon_version(connection, output).await
}

/// `taskctl VERSION`, one line.
pub fn taskctl_version() -> String {
    format!("taskctl {}\n", env!("CARGO_PKG_VERSION"))
}

/// `taskmasterd VERSION`, as the daemon says it.
pub async fn daemon_version(
    connection: &mut Connection,
    output: &mut Output<'_>,
) -> Result<Outcome, CtlError> {
    let mut client = connection.client().await?;
    let request = proto::StatusRequest { names: Vec::new() };
    let response = connection.answer(client.status(request)).await?;
    let daemon_version = response.daemon.map(|daemon| daemon.version);
    output.write(&format!(
        "taskmasterd {}\n",
        daemon_version.as_deref().unwrap_or("(unknown)")
    ))?;
    Ok(Outcome::Success)
}
