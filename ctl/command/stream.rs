//! Reading a server stream (`watch`, `tail`, `maintail`) until it ends, it fails, or the
//! reader of stdout goes away.

use std::io;

use tokio::io::{Interest, unix::AsyncFd};

use crate::{connection::Connection, exit::CtlError};

/// Hands each message of `stream` to `each` as it comes. Returns when the stream ends;
/// a failed stream is a [`CtlError`] (the connection's), and so is a reader of stdout that
/// went away (`taskctl watch | head -3`: a silent broken pipe).
pub async fn each_message<T>(
    connection: &mut Connection,
    stream: &mut tonic::Streaming<T>,
    mut each: impl FnMut(T) -> Result<(), CtlError>,
) -> Result<(), CtlError> {
    let reader_gone = reader_gone();
    tokio::pin!(reader_gone);
    loop {
        let message = tokio::select! {
            message = stream.message() => message,
            () = &mut reader_gone => {
                return Err(CtlError::Output(io::ErrorKind::BrokenPipe.into()));
            }
        };
        match message {
            Ok(Some(message)) => each(message)?,
            Ok(None) => return Ok(()),
            Err(status) => return Err(connection.failure(status).await),
        }
    }
}

/// Resolves when the reader of stdout has gone, so that a stream ends then rather than at
/// its next message. Never resolves where that cannot be known (a file).
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
