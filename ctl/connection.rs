//! The one way taskctl reaches a daemon: [`Connection`] connects on first use with the host's
//! credentials (its token goes on every call), turns a failed RPC into a [`CtlError`] that says
//! what is missing, and after a lost connection connects again. One-shot commands (one per
//! host), `watch`, the shell and the shell's event feed each hold one.

use taskmaster::access;
use taskmaster::endpoint::{self, AuthorizedClient, EndpointError, Target, TlsProblem};
use tonic::Code;

use crate::{exit::CtlError, hosts::Host};

pub type Client = AuthorizedClient;

/// The way to one daemon. Invariant: `client`, when set, is a client of `host`.
pub struct Connection {
    /// The daemon, and the credentials it is shown.
    host: Host,
    /// The connected client; `None` before the first use and after a lost connection.
    client: Option<Client>,
}

impl Connection {
    pub fn new(host: Host) -> Self {
        Connection { host, client: None }
    }

    pub fn target(&self) -> &Target {
        &self.host.target
    }

    pub fn host(&self) -> &Host {
        &self.host
    }

    /// A client; connects if there is none.
    pub async fn client(&mut self) -> Result<Client, EndpointError> {
        if let Some(client) = &self.client {
            return Ok(client.clone());
        }
        let channel = endpoint::connect_with(&self.host.target, &self.host.options).await?;
        let client = endpoint::authorized_client(channel, &self.host.options);
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

    /// Turns an RPC failure into a [`CtlError`]: a refused token or role says so. When the
    /// connection broke, says whether TLS refused it (TLS 1.3 tells of a refused client
    /// certificate only after the handshake, which a cut call does not always carry: it is
    /// asked again), whether the daemon is gone (it cannot be reached now) or whether the call
    /// was cut; the next command connects again.
    pub async fn failure(&mut self, status: tonic::Status) -> CtlError {
        let target = self.host.target.clone();
        if let Some(problem) = endpoint::tls_problem(&status) {
            self.forget();
            return CtlError::Unreachable(EndpointError::TlsHandshake {
                target: target.to_string(),
                problem,
            });
        }
        match status.code() {
            Code::Unauthenticated => {
                let takes = (status.metadata().get(access::CREDENTIALS_METADATA))
                    .and_then(|words| words.to_str().ok())
                    .map(access::Credentials::from_words);
                return CtlError::Unauthenticated {
                    target,
                    token_from: self.host.token_from.clone(),
                    takes,
                };
            }
            Code::PermissionDenied => {
                return CtlError::Forbidden {
                    target,
                    command: None,
                    reason: status.message().to_string(),
                };
            }
            _ => {}
        }
        // An error of this side (the daemon's own come without a source) on a plain TCP
        // connection: a daemon that speaks TLS answers a plain call with bytes h2 cannot read.
        let local = std::error::Error::source(&status).is_some();
        if local
            && matches!(target, Target::Tcp(_))
            && !target.is_tls()
            && endpoint::speaks_tls(&target).await
        {
            self.forget();
            return CtlError::Unreachable(EndpointError::TlsHandshake {
                target: target.to_string(),
                problem: TlsProblem::TlsOnly,
            });
        }
        if !is_lost(&status) {
            return CtlError::Refused(status);
        }
        self.forget();
        if target.is_tls()
            && let Some(problem) = endpoint::tls_verdict(&target, &self.host.options).await
        {
            return CtlError::Unreachable(EndpointError::TlsHandshake {
                target: target.to_string(),
                problem,
            });
        }
        if let Err(unreachable) = endpoint::connect_with(&target, &self.host.options).await {
            return CtlError::Unreachable(unreachable);
        }
        CtlError::Lost {
            target,
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
