//! The one way taskctl reaches the daemon: [`Connection`] connects on first use, turns a failed
//! RPC into a [`CtlError`], and after a lost connection connects again. One-shot commands,
//! `watch`, the shell and the shell's event feed each hold one.

use taskmaster::{
    endpoint::{self, EndpointError, Target},
    proto::taskmaster_client::TaskmasterClient,
};
use tonic::{Code, transport::Channel};

use crate::exit::CtlError;

pub type Client = TaskmasterClient<Channel>;

/// The way to one daemon. Invariant: `client`, when set, is a client of `target`.
pub struct Connection {
    /// Where the daemon listens.
    target: Target,
    /// The connected client; `None` before the first use and after a lost connection.
    client: Option<Client>,
}

impl Connection {
    pub fn new(target: Target) -> Self {
        Connection {
            target,
            client: None,
        }
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// A client; connects if there is none.
    pub async fn client(&mut self) -> Result<Client, EndpointError> {
        if let Some(client) = &self.client {
            return Ok(client.clone());
        }
        let channel = endpoint::connect(&self.target).await?;
        let client = endpoint::client(channel);
        self.client = Some(client.clone());
        Ok(client)
    }

    /// The client of the current connection, if there is one; never connects.
    pub fn cached_client(&self) -> Option<Client> {
        self.client.clone()
    }

    /// Drops the current connection: the next [`Connection::client`] connects afresh.
    pub fn forget(&mut self) {
        self.client = None;
    }

    /// Awaits an RPC and unwraps its answer; a failure becomes a [`CtlError`].
    pub async fn answer<T>(
        &mut self,
        call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, CtlError> {
        match call.await {
            Ok(response) => Ok(response.into_inner()),
            Err(status) => Err(self.failure(status).await),
        }
    }

    /// Turns an RPC failure into a [`CtlError`]. When the connection broke, says whether the
    /// daemon is gone (it cannot be reached now) or the call was cut; the next command
    /// connects again.
    pub async fn failure(&mut self, status: tonic::Status) -> CtlError {
        if !is_lost(&status) {
            return CtlError::Refused(status);
        }
        self.forget();
        if let Err(unreachable) = endpoint::connect(&self.target).await {
            return CtlError::Unreachable(unreachable);
        }
        CtlError::Lost {
            target: self.target.clone(),
            reason: status.message().to_string(),
        }
    }
}

/// Whether an RPC failed because the connection did, rather than because the daemon said no.
pub fn is_lost(status: &tonic::Status) -> bool {
    match status.code() {
        Code::Unavailable | Code::Cancelled => true,
        // A connection reset mid-call (by the transport, hyper or h2) comes as Unknown. Tonic
        // gives a status a source only when it made the status from such a local error; an
        // Unknown the daemon sent comes off the wire without one.
        Code::Unknown => std::error::Error::source(status).is_some(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;

    #[test]
    fn lost_is_told_by_code_and_source() {
        assert!(is_lost(&tonic::Status::unavailable("connection refused")));
        assert!(is_lost(&tonic::Status::cancelled("operation was canceled")));
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        let from_transport = tonic::Status::from_error(Box::new(reset));
        assert_eq!(from_transport.code(), Code::Unknown);
        assert!(is_lost(&from_transport));
        assert!(!is_lost(&tonic::Status::unknown("the daemon said so")));
        assert!(!is_lost(&tonic::Status::not_found("no such program")));
        assert!(!is_lost(&tonic::Status::invalid_argument("bad config")));
    }
}
