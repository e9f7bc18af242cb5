//! `watch`: prints the daemon's events as they come until Ctrl-C, the daemon stops, or the
//! reader of stdout goes away.

use std::io;

use taskmaster::proto::{self, EventKind};
use tokio::io::{Interest, unix::AsyncFd};

use super::Output;
use crate::{
    connection::Connection,
    exit::{CtlError, Outcome},
    render,
};

/// Prints events until the stream ends. Ending after the daemon said it was stopping is
/// success; any other end is a lost connection.
pub async fn watch(
    connection: &mut Connection,
    output: &mut Output<'_>,
    names: &[String],
    json: bool,
    since: Option<u64>,
) -> Result<Outcome, CtlError> {
    let mut client = connection.client().await?;
    let request = proto::WatchEventsRequest {
        names: names.to_vec(),
        since,
    };
    let mut events = connection.answer(client.watch_events(request)).await?;
    let mut daemon_stopping = false;
    let reader_gone = reader_gone();
    tokio::pin!(reader_gone);
    loop {
        let message = tokio::select! {
            message = events.message() => message,
            () = &mut reader_gone => {
                return Err(CtlError::Output(io::ErrorKind::BrokenPipe.into()));
            }
        };
        match message {
            Ok(Some(event)) => {
                daemon_stopping |= event.kind() == EventKind::DaemonStopping;
                let line = if json {
                    render::event_json(&event)
                } else {
                    render::event_line(&event, &chrono::Local, output.palette)
                };
                output.write(&(line + "\n"))?;
            }
            Ok(None) if daemon_stopping => return Ok(Outcome::Success),
            Ok(None) => {
                return Err(CtlError::Lost {
                    target: connection.target().clone(),
                    reason: "the event stream ended".into(),
                });
            }
            Err(status) => return Err(connection.failure(status).await),
        }
    }
}

/// Resolves when the reader of stdout has gone (`taskctl watch | head -3`), so `watch` ends
/// then rather than at the next event. Never resolves where that cannot be known (a file).
async fn reader_gone() {
    use std::os::fd::AsFd;
    let Ok(stdout) = io::stdout().as_fd().try_clone_to_owned() else {
        return std::future::pending().await;
    };
    // SAFETY: the AsyncFd owns this duplicate of stdout, so it stays open, and names the
    // same open file, for as long as the AsyncFd lives.
    match unsafe { AsyncFd::register_with_interest(stdout, Interest::ERROR) } {
        Ok(stdout) => {
            let _ = stdout.ready(Interest::ERROR).await;
        }
        Err(_) => std::future::pending().await,
    }
}
