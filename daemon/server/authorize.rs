//! The authorization layer in front of every service: it finds who calls (the Unix peer, a
//! bearer token, a client certificate), refuses what that caller may not do (UNAUTHENTICATED,
//! PERMISSION_DENIED) before the call runs or its request is read, puts the [`Caller`] in the
//! request's extensions, and limits the size of the request's messages. Each request is
//! decided under the policy in force when it comes (a reload replaces it); a call already
//! running, a stream included, goes on under the policy it began with.
//!
//! The refusals, for clients to explain them:
//! - UNAUTHENTICATED "no credentials: ..." when a TCP call carries no `authorization` metadata
//!   nor a client certificate and needs one; "the bearer token is not valid: ..." when it
//!   carries a token that is none of `daemon.tokens`; "the authorization metadata is not a
//!   bearer token: ..." when it is not `Bearer TOKEN`. Each carries the metadata
//!   `taskmaster-credentials` ([`CREDENTIALS_METADATA`]): what the daemon takes.
//! - PERMISSION_DENIED "NAME may not use this daemon: ..." for a Unix peer with no role;
//!   "NAME is a viewer: ..." for a viewer on a call that changes something.

use std::{
    convert::Infallible,
    sync::Arc,
    task::{Context, Poll},
};

use futures_util::future::{BoxFuture, Either, Ready, ready};
use http::{Request, Response};
use tokio::sync::watch;
use tonic::{
    Status,
    body::Body,
    metadata::MetadataValue,
    transport::server::{TcpConnectInfo, TlsConnectInfo},
};
use tower::{Layer, Service};

use super::connection::{UnixPeer, UserNames};
use super::limits::{Limited, MAX_ANONYMOUS_REQUEST, MAX_REQUEST};
use crate::access::{self, CREDENTIALS_METADATA, Caller, Needs, Policy, Role};

/// The metadata that carries a bearer token.
pub const AUTHORIZATION: &str = "authorization";

/// The layer: [`Authorized`] around a service, under the policy in force.
#[derive(Debug, Clone)]
pub struct Authorize {
    /// Who may do what; a reload replaces it.
    policy: watch::Receiver<Arc<Policy>>,
    /// The names of Unix peers.
    names: Arc<UserNames>,
}

impl Authorize {
    pub fn new(policy: watch::Receiver<Arc<Policy>>, names: Arc<UserNames>) -> Authorize {
        Authorize { policy, names }
    }
}

impl<S> Layer<S> for Authorize {
    type Service = Authorized<S>;

    fn layer(&self, inner: S) -> Authorized<S> {
        Authorized {
            inner,
            policy: self.policy.clone(),
            names: self.names.clone(),
        }
    }
}

/// A service that only sees the requests their caller may make.
#[derive(Debug, Clone)]
pub struct Authorized<S> {
    /// The services behind the layer.
    inner: S,
    /// Who may do what; a reload replaces it.
    policy: watch::Receiver<Arc<Policy>>,
    /// The names of Unix peers.
    names: Arc<UserNames>,
}

/// What [`Authorized`] answers with: a refusal at once, the call, or the call once the Unix
/// caller's name is known.
type AuthorizedFuture<F> = Either<
    Ready<Result<Response<Body>, Infallible>>,
    Either<F, BoxFuture<'static, Result<Response<Body>, Infallible>>>,
>;

impl<S> Service<Request<Body>> for Authorized<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = AuthorizedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        // The policy in force now: a reload since the connection opened counts.
        let policy = self.policy.borrow().clone();
        let unix_uid = match request.extensions().get::<UnixPeer>() {
            Some(UnixPeer::Known(peer))
                if access::needs(request.uri().path()) != Needs::Nothing =>
            {
                Some(peer.uid)
            }
            _ => None,
        };
        let name = match unix_uid {
            None => None,
            Some(uid) => match self.names.known(uid) {
                Some(name) => Some(name),
                None => {
                    // The name is looked up off this thread; the call waits for it, nothing
                    // else does. The service that was made ready goes with the call.
                    let ready = self.inner.clone();
                    let mut inner = std::mem::replace(&mut self.inner, ready);
                    let names = self.names.clone();
                    return Either::Right(Either::Right(Box::pin(async move {
                        let name = names.name(uid).await;
                        match authorize(&policy, request, Some(name)) {
                            Ok(request) => inner.call(request).await,
                            Err(status) => Ok(status.into_http()),
                        }
                    })));
                }
            },
        };
        match authorize(&policy, request, name) {
            Ok(request) => Either::Right(Either::Left(self.inner.call(request))),
            Err(status) => Either::Left(ready(Ok(status.into_http()))),
        }
    }
}

/// `request` with its caller in its extensions and its body limited, or the refusal.
/// `unix_name` is the name of the Unix peer, when the request comes from one and needs a role.
fn authorize(
    policy: &Policy,
    mut request: Request<Body>,
    unix_name: Option<Arc<str>>,
) -> Result<Request<Body>, Status> {
    let path = request.uri().path();
    let limit = match access::needs(path) {
        Needs::Nothing => MAX_ANONYMOUS_REQUEST,
        Needs::Role(needed) => {
            let caller = identify(policy, &request, unix_name)?;
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
fn identify(
    policy: &Policy,
    request: &Request<Body>,
    unix_name: Option<Arc<str>>,
) -> Result<Caller, Status> {
    let extensions = request.extensions();
    if let Some(peer) = extensions.get::<UnixPeer>() {
        // On the Unix socket the kernel says who calls; metadata changes nothing.
        let (name, role) = match peer {
            UnixPeer::Known(peer) => {
                let name =
                    unix_name.map_or_else(|| format!("uid {}", peer.uid), |name| name.to_string());
                (name, policy.unix_role(peer.uid, peer.gid, &peer.groups))
            }
            UnixPeer::Unknown(name) => (name.to_string(), None),
        };
        return match role {
            Some(role) => Ok(Caller { name, role }),
            None => Err(Status::permission_denied(format!(
                "{name} may not use this daemon: it is not root, not the daemon's user (uid {}), \
                 and not in daemon.operators or daemon.viewers",
                policy.own_uid()
            ))),
        };
    }
    // Under TLS too (tonic inserts both).
    let Some(tcp) = extensions.get::<TcpConnectInfo>() else {
        return Err(Status::permission_denied(
            "the connection is neither the Unix socket nor TCP",
        ));
    };
    if let Some(header) = request.headers().get(AUTHORIZATION) {
        let token = bearer(header.as_bytes()).ok_or_else(|| {
            unauthenticated(
                policy,
                "the authorization metadata is not a bearer token: expected `Bearer TOKEN`",
            )
        })?;
        return policy.token(token).ok_or_else(|| {
            unauthenticated(
                policy,
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
    let takes = policy.tcp_credentials();
    let message = match (takes.token, takes.certificate) {
        (true, true) => {
            "no credentials: this daemon takes calls on TCP with a client certificate that \
             daemon.tls.client_ca signed, or with the metadata `authorization: Bearer TOKEN`, \
             a token of daemon.tokens"
        }
        (false, true) => {
            "no credentials: this daemon takes calls on TCP with a client certificate that \
             daemon.tls.client_ca signed"
        }
        (true, false) => {
            "no credentials: this daemon takes calls on TCP with the metadata \
             `authorization: Bearer TOKEN`, a token of daemon.tokens"
        }
        (false, false) => {
            "no credentials: this daemon takes calls on TCP with the metadata \
             `authorization: Bearer TOKEN`, and daemon.tokens is empty: it refuses every TCP \
             call until tokens are added"
        }
    };
    Err(unauthenticated(policy, message))
}

/// UNAUTHENTICATED with `message`, and metadata that says what the daemon takes on TCP
/// ([`CREDENTIALS_METADATA`]), for clients to say what is missing.
fn unauthenticated(policy: &Policy, message: &str) -> Status {
    let mut status = Status::unauthenticated(message);
    let takes = MetadataValue::from_static(policy.tcp_credentials().words());
    status.metadata_mut().insert(CREDENTIALS_METADATA, takes);
    status
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

    #[test]
    fn a_certificate_is_named_by_its_subject() {
        use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = DistinguishedName::new();
        // Encoded from the most significant part down, as CAs do; RFC 4514 writes it backwards.
        (params.distinguished_name).push(DnType::OrganizationName, "Example");
        params.distinguished_name.push(DnType::CommonName, "ops");
        let certificate = params.self_signed(&KeyPair::generate().unwrap()).unwrap();
        assert_eq!(subject(certificate.der()), "CN=ops,O=Example");
        assert_eq!(subject(b"not a certificate"), "(unreadable subject)");
    }
}
