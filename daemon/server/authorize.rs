//! The authorization layer in front of every service: it finds who calls (the Unix peer, a
//! bearer token, a client certificate), refuses what that caller may not do (UNAUTHENTICATED,
//! PERMISSION_DENIED) before the call runs or its request is read, puts the [`Caller`] in the
//! request's extensions, and limits the size of the request's messages.
//!
//! The refusals, for clients to explain them:
//! - UNAUTHENTICATED "no credentials: ..." when a TCP call carries no `authorization` metadata
//!   and needs one; "the bearer token is not valid: ..." when it carries a token that is none
//!   of `daemon.tokens`; "the authorization metadata is not a bearer token: ..." when it is not
//!   `Bearer TOKEN`.
//! - PERMISSION_DENIED "NAME may not use this daemon: ..." for a Unix peer with no role;
//!   "NAME is a viewer: ..." for a viewer on a call that changes something.

use std::{
    convert::Infallible,
    sync::Arc,
    task::{Context, Poll},
};

use futures_util::future::{Either, Ready, ready};
use http::{Request, Response};
use tonic::{
    Status,
    body::Body,
    transport::server::{TcpConnectInfo, TlsConnectInfo},
};
use tower::{Layer, Service};

use super::connection::UnixPeer;
use super::limits::{Limited, MAX_ANONYMOUS_REQUEST, MAX_REQUEST};
use crate::access::{self, Caller, Needs, Policy, Role};

/// The metadata that carries a bearer token.
pub const AUTHORIZATION: &str = "authorization";

/// The layer: [`Authorized`] around a service, under one policy.
#[derive(Debug, Clone)]
pub struct Authorize {
    policy: Arc<Policy>,
}

impl Authorize {
    pub fn new(policy: Arc<Policy>) -> Authorize {
        Authorize { policy }
    }
}

impl<S> Layer<S> for Authorize {
    type Service = Authorized<S>;

    fn layer(&self, inner: S) -> Authorized<S> {
        Authorized {
            inner,
            policy: self.policy.clone(),
        }
    }
}

/// A service that only sees the requests their caller may make.
#[derive(Debug, Clone)]
pub struct Authorized<S> {
    inner: S,
    policy: Arc<Policy>,
}

impl<S> Service<Request<Body>> for Authorized<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Either<Ready<Result<Response<Body>, Infallible>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        match authorize(&self.policy, request) {
            Ok(request) => Either::Right(self.inner.call(request)),
            Err(status) => Either::Left(ready(Ok(status.into_http()))),
        }
    }
}

/// `request` with its caller in its extensions and its body limited, or the refusal.
fn authorize(policy: &Policy, mut request: Request<Body>) -> Result<Request<Body>, Status> {
    let path = request.uri().path();
    let limit = match access::needs(path) {
        Needs::Nothing => MAX_ANONYMOUS_REQUEST,
        Needs::Role(needed) => {
            let caller = identify(policy, &request)?;
            if !caller.role.allows(needed) {
                return Err(Status::permission_denied(format!(
                    "{caller} is a viewer: it may call {} only, not {}",
                    access::viewer_calls(),
                    access::call_name(path)
                )));
            }
            request.extensions_mut().insert(caller);
            MAX_REQUEST
        }
    };
    Ok(request.map(|body| Body::new(Limited::new(body, limit))))
}

/// Who makes `request`, with a role; or why it cannot be told.
fn identify(policy: &Policy, request: &Request<Body>) -> Result<Caller, Status> {
    let extensions = request.extensions();
    if let Some(peer) = extensions.get::<UnixPeer>() {
        // On the Unix socket the kernel says who calls; metadata changes nothing.
        return match peer.role {
            Some(role) => Ok(Caller {
                name: peer.name.to_string(),
                role,
            }),
            None => Err(Status::permission_denied(format!(
                "{} may not use this daemon: it is not root, not the daemon's user (uid {}), \
                 and not in daemon.operators or daemon.viewers",
                peer.name,
                policy.own_uid()
            ))),
        };
    }
    let Some(tcp) = extensions.get::<TcpConnectInfo>() else {
        return Err(Status::permission_denied(
            "the connection is neither the Unix socket nor TCP",
        ));
    };
    if let Some(header) = request.headers().get(AUTHORIZATION) {
        let token = bearer(header.as_bytes()).ok_or_else(|| {
            Status::unauthenticated(
                "the authorization metadata is not a bearer token: expected `Bearer TOKEN`",
            )
        })?;
        return policy.token(token).ok_or_else(|| {
            Status::unauthenticated(
                "the bearer token is not valid: it is none of the daemon's tokens \
                 (daemon.tokens)",
            )
        });
    }
    let certificates =
        (extensions.get::<TlsConnectInfo<TcpConnectInfo>>()).and_then(TlsConnectInfo::peer_certs);
    if let Some(certificate) = certificates.as_ref().and_then(|chain| chain.first()) {
        // Only a certificate that daemon.tls.client_ca signed gets this far (rustls checked it).
        return Ok(Caller {
            name: format!("cert {}", subject(certificate)),
            role: Role::Operator,
        });
    }
    if policy.tcp_open() {
        let address = tcp
            .remote_addr()
            .map_or_else(|| "unknown".to_string(), |address| address.to_string());
        return Ok(Caller {
            name: format!("tcp {address}"),
            role: Role::Operator,
        });
    }
    Err(Status::unauthenticated(
        "no credentials: this daemon takes calls on TCP with the metadata \
         `authorization: Bearer TOKEN`, a token of daemon.tokens",
    ))
}

/// The token of an `authorization` value `Bearer TOKEN` (the scheme in any case, RFC 7235).
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, token) = value.split_at_checked(7)?;
    (scheme.eq_ignore_ascii_case(b"bearer ")).then(|| token.trim_ascii())
}

/// The subject of a DER certificate as RFC 4514 writes it (`CN=ops,O=Example`).
fn subject(certificate: &[u8]) -> String {
    use x509_cert::der::Decode;
    match x509_cert::Certificate::from_der(certificate) {
        Ok(certificate) => certificate.tbs_certificate.subject.to_string(),
        Err(_) => "(unreadable subject)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens() {
        assert_eq!(bearer(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"bearer  abc "), Some(&b"abc"[..]));
        assert_eq!(bearer(b"BEARER abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"Basic abc"), None);
        assert_eq!(bearer(b"Bearer"), None);
        assert_eq!(bearer(b"abc"), None);
    }
}
