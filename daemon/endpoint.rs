//! Where taskmasterd listens and how clients reach it: the default socket path, binding the Unix
//! socket (its mode and group, one live daemon per socket) and the TCP listener (with TLS, never
//! open beyond loopback without authentication), and connecting a gRPC channel with the client's
//! credentials ([`ClientOptions`]: a bearer token on every call, TLS for `https://` targets).

use std::{
    fmt, io,
    net::SocketAddr,
    os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    time::Duration,
};

use hyper_util::rt::TokioIo;

use crate::proto::taskmaster_client::TaskmasterClient;
use tokio::net::{TcpListener, UnixListener, UnixStream};
use tonic::{
    metadata::{Ascii, MetadataValue},
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Certificate, Channel, ClientTlsConfig, Identity, Uri},
};

/// Failures to bind or to reach a daemon.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("another taskmasterd is already running on {}", path.display())]
    InUse { path: PathBuf },
    #[error("{} exists and is not a socket; refusing to replace it", path.display())]
    NotASocket { path: PathBuf },
    #[error("cannot bind {what}: {source}")]
    Bind { what: String, source: io::Error },
    #[error("bad address {address:?}: {reason}")]
    Address { address: String, reason: String },
    #[error("bad address {address:?}: {}", PORT_ZERO)]
    PortZero { address: String },
    #[error(
        "refusing to listen on {address} without authentication: anyone who can reach it could \
         stop every program; add daemon.tokens (each a name, a role and a token `file` or `env`) \
         or daemon.tls with a client_ca, or listen on loopback (127.0.0.1:{})",
        address.port()
    )]
    Unauthenticated { address: SocketAddr },
    #[error("TLS: {reason}")]
    Tls { reason: String },
    #[error("cannot reach taskmasterd at {target}: {reason}; is it running?")]
    Unreachable { target: String, reason: String },
    #[error("no TLS with taskmasterd at {target}: {problem}")]
    TlsHandshake { target: String, problem: TlsProblem },
    #[error("cannot use the TLS certificates for {target}: {reason}")]
    TlsSetup { target: String, reason: String },
    #[error("a token {reason}")]
    Token {
        reason: crate::config::secret::TokenProblem,
    },
}

/// An address a client connects to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A Unix socket path.
    Unix(PathBuf),
    /// A TCP URL such as `http://127.0.0.1:7300`.
    Tcp(String),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Unix(path) => write!(f, "{}", path.display()),
            Target::Tcp(url) => f.write_str(url),
        }
    }
}

/// `$XDG_RUNTIME_DIR/taskmaster.sock`, else `/tmp/taskmaster-<uid>.sock`.
pub fn default_socket_path() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("taskmaster.sock"),
        _ => PathBuf::from(format!("/tmp/taskmaster-{}.sock", nix::unistd::getuid())),
    }
}

/// Who may open the Unix socket: its permission bits and its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketAccess {
    /// The socket's permission bits (at most 0o777).
    pub mode: u32,
    /// The group the socket is given; `None`: the daemon's.
    pub group: Option<u32>,
}

impl SocketAccess {
    /// 0o600 and the daemon's group: its owner only.
    pub const PRIVATE: SocketAccess = SocketAccess {
        mode: 0o600,
        group: None,
    };

    /// What the config's `daemon.socket_mode` and `daemon.socket_group` say.
    pub fn of(daemon: &crate::config::DaemonSettings) -> SocketAccess {
        SocketAccess {
            mode: daemon.socket_mode.unwrap_or(0o600),
            group: daemon.socket_group.as_ref().map(|group| group.id),
        }
    }
}

/// Binds the Unix socket at `path` with `access`'s mode and group, whatever the umask. The
/// socket is never more open than asked, not even for a moment: it is created with the owner's
/// bits of the mode only, given its group, and only then given the group's and others' bits.
///
/// A socket that still answers belongs to a live daemon: refuse. One that refuses connections
/// was left by a dead daemon: replace it. Anything else at `path` is not ours to delete. Must
/// run inside a tokio runtime, before any child is spawned (it changes the process umask for
/// the duration of the bind). The returned [`SocketFile`] removes the socket when dropped.
pub fn bind_unix(
    path: &Path,
    access: SocketAccess,
) -> Result<(UnixListener, SocketFile), EndpointError> {
    let bind_error = |source| EndpointError::Bind {
        what: path.display().to_string(),
        source,
    };
    if let Ok(existing) = std::fs::symlink_metadata(path) {
        if !existing.file_type().is_socket() {
            return Err(EndpointError::NotASocket { path: path.into() });
        }
        match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => return Err(EndpointError::InUse { path: path.into() }),
            Err(error) if error.kind() == io::ErrorKind::ConnectionRefused => {
                std::fs::remove_file(path).map_err(bind_error)?;
            }
            Err(error) => return Err(bind_error(error)),
        }
    }
    let final_mode = access.mode & 0o777;
    // bind(2) creates the socket 0o777 less the umask: the owner's bits of the mode at most.
    let first_mode = final_mode & 0o700;
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(
        !first_mode & 0o777,
    ));
    let bound = UnixListener::bind(path);
    nix::sys::stat::umask(old);
    let listener = bound.map_err(bind_error)?;
    if let Err(error) = open_up(path, access.group, final_mode) {
        let _ = std::fs::remove_file(path);
        return Err(error);
    }
    let identity = std::fs::symlink_metadata(path).map_err(bind_error)?;
    let file = SocketFile {
        path: path.into(),
        identity: FileIdentity::of(&identity),
    };
    Ok((listener, file))
}

/// Gives the socket at `path` its group (the link itself, never what a link points to), then
/// its final `mode`.
fn open_up(path: &Path, group: Option<u32>, mode: u32) -> Result<(), EndpointError> {
    if let Some(gid) = group {
        nix::unistd::fchownat(
            nix::fcntl::AT_FDCWD,
            path,
            None,
            Some(nix::unistd::Gid::from_raw(gid)),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|errno| EndpointError::Bind {
            what: format!("{} (giving it group {gid})", path.display()),
            source: errno.into(),
        })?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|source| {
        EndpointError::Bind {
            what: format!("{} (giving it mode {mode:04o})", path.display()),
            source,
        }
    })
}

/// The socket file a daemon created. Dropping it removes the file, unless another daemon has
/// replaced it since (a successor's socket is not ours to delete).
#[derive(Debug)]
pub struct SocketFile {
    path: PathBuf,
    identity: FileIdentity,
}

/// Tells one file from its replacement: an inode number freed by an unlink is soon reused
/// (tmpfs does so at once), the change time with nanoseconds is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileIdentity {
    device: u64,
    inode: u64,
    changed: (i64, i64),
}

impl FileIdentity {
    fn of(metadata: &std::fs::Metadata) -> Self {
        FileIdentity {
            device: metadata.dev(),
            inode: metadata.ino(),
            changed: (metadata.ctime(), metadata.ctime_nsec()),
        }
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if let Ok(now) = std::fs::symlink_metadata(&self.path)
            && FileIdentity::of(&now) == self.identity
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Why port 0 is refused: the daemon would listen on a port nobody is told.
pub const PORT_ZERO: &str = "port 0 (any free port) cannot be used: clients would not know it";

/// Parses a TCP listen address: `IP:PORT`, or a bare port for loopback (`7300` ->
/// `127.0.0.1:7300`); surrounding blanks are ignored. Port 0 is refused ([`PORT_ZERO`]).
///
/// The one parser of listen addresses: the config's `daemon.listen`, taskmasterd's `-l` and
/// [`bind_tcp`] all use it, so a file and a flag accept the same addresses. It lives here
/// rather than in the config module because the address is the listener's: the config only
/// says where its value is written and how a YAML value becomes the text parsed here.
pub fn listen_address(address: &str) -> Result<SocketAddr, EndpointError> {
    let text = address.trim();
    let parsed = match text.parse::<u16>() {
        // Only digits: `+7300` is not a port.
        Ok(port) if text.bytes().all(|b| b.is_ascii_digit()) => {
            Ok(SocketAddr::from(([127, 0, 0, 1], port)))
        }
        _ => text.parse::<SocketAddr>(),
    };
    match parsed {
        Ok(parsed) if parsed.port() == 0 => Err(EndpointError::PortZero {
            address: address.to_string(),
        }),
        Ok(parsed) => Ok(parsed),
        Err(error) => Err(EndpointError::Address {
            address: address.to_string(),
            reason: format!("{error} (expected HOST:PORT or PORT)"),
        }),
    }
}

/// Binds the TCP listener for `address` (see [`listen_address`]). An address other than
/// loopback is refused unless `daemon` makes callers prove who they are (tokens or client
/// certificates): anyone who reaches it could otherwise control every program.
pub async fn bind_tcp(
    address: &str,
    daemon: &crate::config::DaemonSettings,
) -> Result<TcpListener, EndpointError> {
    let socket_address = listen_address(address)?;
    if !is_loopback(socket_address) && !daemon.authenticates_tcp() {
        return Err(EndpointError::Unauthenticated {
            address: socket_address,
        });
    }
    TcpListener::bind(socket_address)
        .await
        .map_err(|source| EndpointError::Bind {
            what: socket_address.to_string(),
            source,
        })
}

/// Whether only this machine can reach `address`: 127.0.0.0/8, ::1, or ::ffff:127.x.
pub fn is_loopback(address: SocketAddr) -> bool {
    address.ip().to_canonical().is_loopback()
}

/// The TLS set-up of the TCP listener: the server's identity, and the CA that client
/// certificates must chain to. A client may still connect without one (so that health checks
/// answer anyone); a certificate it shows must chain to the CA, and every call but health
/// then needs that certificate or a token (the authorization layer refuses the others). The
/// files are read and checked now, so that a bad one stops the start; they are not read again
/// (a reload does not change TLS).
pub fn server_tls(
    tls: &crate::config::TlsSettings,
) -> Result<tonic::transport::ServerTlsConfig, EndpointError> {
    use tonic::transport::{Certificate, Identity, ServerTlsConfig};
    let read = |path: &Path| {
        std::fs::read(path).map_err(|error| EndpointError::Tls {
            reason: format!("cannot read {}: {error}", path.display()),
        })
    };
    let identity = Identity::from_pem(read(&tls.cert)?, read(&tls.key)?);
    let mut config = ServerTlsConfig::new()
        .identity(identity)
        .timeout(TLS_HANDSHAKE);
    if let Some(client_ca) = &tls.client_ca {
        config = config
            .client_ca_root(Certificate::from_pem(read(client_ca)?))
            .client_auth_optional(true);
    }
    tonic::transport::Server::builder()
        .tls_config(config.clone())
        .map_err(|error| EndpointError::Tls {
            reason: format!(
                "daemon.tls (cert {}, key {}{}): {}",
                tls.cert.display(),
                tls.key.display(),
                (tls.client_ca.as_ref())
                    .map_or_else(String::new, |ca| format!(", client_ca {}", ca.display())),
                describe_transport_error(&error)
            ),
        })?;
    Ok(config)
}

/// How long a client has to finish its TLS handshake.
const TLS_HANDSHAKE: std::time::Duration = std::time::Duration::from_secs(10);

/// Opens a gRPC channel to a daemon, without credentials (see [`connect_with`]).
pub async fn connect(target: &Target) -> Result<Channel, EndpointError> {
    connect_with(target, &ClientOptions::default()).await
}

/// How long a client waits for a TCP connection, and then for the TLS handshake: a host that
/// drops packets is reported rather than waited on for ever.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens a gRPC channel to a daemon. The connection is made now, so an absent daemon (or a
/// TLS handshake that fails) is reported here. An `https://` target gets TLS with the trust and
/// identity of `options.tls`; the token is not the channel's but the client's
/// ([`authorized_client`]).
pub async fn connect_with(
    target: &Target,
    options: &ClientOptions,
) -> Result<Channel, EndpointError> {
    let unreachable = |error: &tonic::transport::Error| match tls_problem(error) {
        Some(problem) => EndpointError::TlsHandshake {
            target: target.to_string(),
            problem,
        },
        None => EndpointError::Unreachable {
            target: target.to_string(),
            reason: describe_transport_error(error),
        },
    };
    match target {
        Target::Unix(path) => {
            let path = path.clone();
            // h2 rejects a path as authority; the URI is only a placeholder.
            let endpoint = tonic::transport::Endpoint::from_static("http://localhost");
            endpoint
                .connect_with_connector(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move { Ok::<_, io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
                }))
                .await
                .map_err(|error| unreachable(&error))
        }
        Target::Tcp(url) => {
            let mut endpoint = tonic::transport::Endpoint::from_shared(url.clone())
                .map_err(|error| EndpointError::Address {
                    address: url.clone(),
                    reason: error.to_string(),
                })?
                .connect_timeout(CONNECT_TIMEOUT);
            if target.is_tls() {
                let setup = |error: tonic::transport::Error| EndpointError::TlsSetup {
                    target: target.to_string(),
                    reason: describe_transport_error(&error),
                };
                endpoint = match endpoint.clone().tls_config(options.tls.config(true)) {
                    Ok(endpoint) => endpoint,
                    // No system roots to be found (a bare container): trust nothing, so that
                    // the handshake says the CA is unknown.
                    Err(_) if options.tls.ca.is_none() => endpoint
                        .tls_config(options.tls.config(false))
                        .map_err(setup)?,
                    Err(error) => return Err(setup(error)),
                };
            }
            endpoint
                .connect()
                .await
                .map_err(|error| unreachable(&error))
        }
    }
}

/// A Taskmaster client on `channel`. Status of a hundred thousand instances is more than
/// tonic's default 4 MB message limit, so the limit is raised for what the daemon sends.
pub fn client(channel: Channel) -> TaskmasterClient<Channel> {
    TaskmasterClient::new(channel).max_decoding_message_size(MAX_RESPONSE)
}

/// A Taskmaster client on `channel` whose every call, streams included, carries the token of
/// `options` (if any), as [`client`] with the same message limit.
pub fn authorized_client(channel: Channel, options: &ClientOptions) -> AuthorizedClient {
    let bearer = Bearer(options.token.clone());
    TaskmasterClient::with_interceptor(channel, bearer).max_decoding_message_size(MAX_RESPONSE)
}

/// The client [`authorized_client`] makes.
pub type AuthorizedClient = TaskmasterClient<InterceptedService<Channel, Bearer>>;

/// What a client shows the daemon and what it trusts: a bearer token, and for `https://`
/// targets the CA and client certificate. The default has no token and trusts the system's
/// roots.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// Sent as `authorization: Bearer TOKEN` on every call.
    pub token: Option<Token>,
    /// For `https://` targets; unused by any other.
    pub tls: ClientTls,
}

/// The TLS side of [`ClientOptions`].
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    /// PEM certificates of the CAs the daemon's certificate must come from; `None` trusts the
    /// system's roots instead.
    pub ca: Option<Vec<u8>>,
    /// PEM certificate (chain) and private key of the client, for mutual TLS.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl ClientTls {
    /// The trust and identity for tonic; without a CA, the system's roots if `system_roots`.
    fn config(&self, system_roots: bool) -> ClientTlsConfig {
        let config = ClientTlsConfig::new().timeout(CONNECT_TIMEOUT);
        let config = match &self.ca {
            Some(ca) => config.ca_certificate(Certificate::from_pem(ca)),
            None if system_roots => config.with_native_roots(),
            None => config,
        };
        match &self.identity {
            Some((cert, key)) => config.identity(Identity::from_pem(cert, key)),
            None => config,
        }
    }
}

impl ClientTls {
    /// The same trust and identity as a rustls config of the client's own, for
    /// [`tls_verdict`]; `None` when the PEM does not parse (tonic has said so already).
    fn rustls(&self) -> Option<rustls::ClientConfig> {
        use rustls::pki_types::{CertificateDer, pem::PemObject};
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca {
            Some(pem) => {
                roots.add_parsable_certificates(
                    CertificateDer::pem_slice_iter(pem).filter_map(Result::ok),
                );
            }
            None => {
                roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            }
        }
        self.rustls_trusting(roots)
    }

    /// A rustls config trusting `roots`, with this identity.
    fn rustls_trusting(&self, roots: rustls::RootCertStore) -> Option<rustls::ClientConfig> {
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .ok()?
            .with_root_certificates(roots);
        let mut config = match &self.identity {
            Some((cert, key)) => {
                let chain = CertificateDer::pem_slice_iter(cert)
                    .collect::<Result<Vec<_>, _>>()
                    .ok()?;
                let key = PrivateKeyDer::from_pem_slice(key).ok()?;
                builder.with_client_auth_cert(chain, key).ok()?
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        Some(config)
    }
}

impl Target {
    /// Whether the connection is TLS: an `https://` URL.
    pub fn is_tls(&self) -> bool {
        matches!(self, Target::Tcp(url) if url.starts_with("https://"))
    }
}

/// A bearer token, kept as the header value it is sent as. Never shown: its `Debug` says only
/// that it is there.
#[derive(Clone)]
pub struct Token(MetadataValue<Ascii>);

impl Token {
    /// The token in `secret`, without surrounding blanks (a file's final newline), as the
    /// daemon accepts tokens ([`crate::config::secret::token`]).
    pub fn new(secret: impl AsRef<[u8]>) -> Result<Token, EndpointError> {
        let token = crate::config::secret::token(secret.as_ref())
            .map_err(|reason| EndpointError::Token { reason })?;
        let mut header = b"Bearer ".to_vec();
        header.extend_from_slice(token);
        // Printable ASCII, checked above: always a valid header value.
        let mut value = MetadataValue::try_from(header).map_err(|_| EndpointError::Token {
            reason: crate::config::secret::TokenProblem::NotPrintable,
        })?;
        value.set_sensitive(true);
        Ok(Token(value))
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(..)")
    }
}

/// Puts `authorization: Bearer TOKEN` on every request. An interceptor runs once per call,
/// before its first message, so streams carry the token as unary calls do.
#[derive(Debug, Clone)]
pub struct Bearer(Option<Token>);

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(Token(value)) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// Why a TLS connection to the daemon failed, as far as the client can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsProblem {
    /// The daemon's certificate comes from a CA the client does not trust.
    UnknownCa,
    /// The daemon's certificate is not for the host name or address connected to.
    WrongName,
    /// The daemon's certificate is refused for another reason (expired, not yet valid...).
    BadCertificate(String),
    /// The daemon wants a client certificate and was given none.
    ClientCertificateRequired,
    /// The daemon refused the client certificate; holds the alert it sent.
    ClientCertificateRefused(String),
    /// What came back is not TLS: the daemon listens without it.
    NotTls,
    /// The daemon speaks TLS, and was spoken to without it (`http://`).
    TlsOnly,
    /// Anything else rustls said.
    Other(String),
}

impl fmt::Display for TlsProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsProblem::UnknownCa => f.write_str("its certificate is signed by an unknown CA"),
            TlsProblem::WrongName => f.write_str("its certificate is not for this host name"),
            TlsProblem::BadCertificate(reason) => write!(f, "its certificate is refused: {reason}"),
            TlsProblem::ClientCertificateRequired => {
                f.write_str("it wants a client certificate, and none was given")
            }
            TlsProblem::ClientCertificateRefused(alert) => {
                write!(f, "it refused the client certificate ({alert})")
            }
            TlsProblem::NotTls => f.write_str("it does not answer in TLS"),
            TlsProblem::TlsOnly => f.write_str("it answers in TLS only"),
            TlsProblem::Other(reason) => f.write_str(reason),
        }
    }
}

/// The TLS problem behind `error`, if rustls is among its causes (it may sit inside an
/// `io::Error`, whose `source` skips it).
pub fn tls_problem(error: &(dyn std::error::Error + 'static)) -> Option<TlsProblem> {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if let Some(tls) = error.downcast_ref::<rustls::Error>() {
            return Some(classify(tls));
        }
        let inner = error
            .downcast_ref::<io::Error>()
            .and_then(io::Error::get_ref)
            .map(|inner| inner as &(dyn std::error::Error + 'static));
        cause = inner.or_else(|| error.source());
    }
    None
}

/// How long [`tls_verdict`] and [`speaks_tls`] wait for the daemon.
const VERDICT_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether TLS is why a call to the `https://` daemon at `target` was cut: a handshake of its
/// own, with the same trust and identity, then a wait for what the daemon sends first. Under
/// TLS 1.3 a daemon refuses a client's certificate (or its absence) only after the handshake,
/// in an alert that the cut call does not always carry (the call may have been queued when the
/// connection died); this read waits for it. `None` when the daemon accepts the handshake or
/// cannot be reached (that is for the caller to find out).
pub async fn tls_verdict(target: &Target, options: &ClientOptions) -> Option<TlsProblem> {
    use tokio::io::AsyncRead;
    let verdict = async {
        let mut tls = match handshake(target, options.tls.rustls()?).await? {
            Ok(tls) => tls,
            Err(error) => return tls_problem(&error),
        };
        let mut first = [0u8; 1];
        let mut first = tokio::io::ReadBuf::new(&mut first);
        let read = std::future::poll_fn(|context| {
            std::pin::Pin::new(&mut tls).poll_read(context, &mut first)
        });
        read.await.err().and_then(|error| tls_problem(&error))
    };
    tokio::time::timeout(VERDICT_TIMEOUT, verdict)
        .await
        .ok()
        .flatten()
}

/// Whether the daemon at the plain `http://` `target` speaks TLS: it answers a handshake with a
/// certificate (left unchecked: nothing is sent but the handshake), so the client should have
/// said `https://`.
pub async fn speaks_tls(target: &Target) -> bool {
    let Some(config) = ClientTls::default().rustls_trusting(rustls::RootCertStore::empty()) else {
        return false;
    };
    let shown_a_certificate = async {
        let Err(error) = handshake(target, config).await? else {
            return Some(true);
        };
        Some(matches!(
            tls_problem(&error),
            Some(TlsProblem::UnknownCa | TlsProblem::WrongName | TlsProblem::BadCertificate(_))
        ))
    };
    let answer = tokio::time::timeout(VERDICT_TIMEOUT, shown_a_certificate).await;
    answer.ok().flatten().unwrap_or(false)
}

/// A TLS handshake with the daemon at the TCP `target` (whatever its scheme says), under
/// `config`; `None` when there is no connection to make.
async fn handshake(
    target: &Target,
    config: rustls::ClientConfig,
) -> Option<io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>> {
    let Target::Tcp(url) = target else {
        return None;
    };
    let uri: Uri = url.parse().ok()?;
    let host = uri.host()?.trim_start_matches('[').trim_end_matches(']');
    let default_port = if target.is_tls() { 443 } else { 80 };
    let port = uri.port_u16().unwrap_or(default_port);
    let name = rustls::pki_types::ServerName::try_from(host.to_string()).ok()?;
    let tcp = tokio::net::TcpStream::connect((host, port)).await.ok()?;
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    Some(connector.connect(name, tcp).await)
}

/// The alerts a server sends about the client's certificate (or its absence).
const CLIENT_CERTIFICATE_ALERTS: [rustls::AlertDescription; 9] = {
    use rustls::AlertDescription as Alert;
    [
        Alert::CertificateRequired,
        Alert::BadCertificate,
        Alert::UnknownCA,
        Alert::CertificateUnknown,
        Alert::CertificateExpired,
        Alert::CertificateRevoked,
        Alert::UnsupportedCertificate,
        Alert::AccessDenied,
        Alert::DecryptError,
    ]
};

fn classify(tls: &rustls::Error) -> TlsProblem {
    use rustls::{AlertDescription as Alert, CertificateError};
    match tls {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => TlsProblem::UnknownCa,
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => TlsProblem::WrongName,
        rustls::Error::InvalidCertificate(reason) => TlsProblem::BadCertificate(reason.to_string()),
        rustls::Error::AlertReceived(Alert::CertificateRequired) => {
            TlsProblem::ClientCertificateRequired
        }
        rustls::Error::AlertReceived(alert) if CLIENT_CERTIFICATE_ALERTS.contains(alert) => {
            TlsProblem::ClientCertificateRefused(format!("{alert:?}"))
        }
        rustls::Error::InvalidMessage(_) => TlsProblem::NotTls,
        other => TlsProblem::Other(other.to_string()),
    }
}

/// The largest response a client accepts from the daemon.
const MAX_RESPONSE: usize = 256 << 20;

/// The innermost cause of a transport error, lower-cased the way `strerror` reads
/// ("connection refused", "no such file or directory").
fn describe_transport_error(error: &(dyn std::error::Error + 'static)) -> String {
    let mut inner: &(dyn std::error::Error + 'static) = error;
    while let Some(source) = inner.source() {
        inner = source;
    }
    if let Some(io_error) = inner.downcast_ref::<io::Error>()
        && let Some(code) = io_error.raw_os_error()
    {
        return nix::errno::Errno::from_raw(code).desc().to_lowercase();
    }
    inner.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_file_that_is_not_a_socket_is_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("precious.txt");
        std::fs::write(&path, "keep me").unwrap();
        let error = bind_unix(&path, SocketAccess::PRIVATE).unwrap_err();
        assert!(matches!(error, EndpointError::NotASocket { .. }), "{error}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "keep me");
    }

    #[tokio::test]
    async fn a_successors_socket_is_not_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("taskmaster.sock");
        let (first_listener, first_file) = bind_unix(&path, SocketAccess::PRIVATE).unwrap();
        drop(first_listener);
        // The first daemon stopped listening; a second one takes the path over.
        let (_second_listener, second_file) = bind_unix(&path, SocketAccess::PRIVATE).unwrap();
        drop(first_file);
        assert!(path.exists(), "the successor's socket was removed");
        drop(second_file);
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn beyond_loopback_only_with_authentication() {
        for (address, loopback) in [
            ("127.0.0.1:1", true),
            ("127.8.9.1:1", true),
            ("[::1]:1", true),
            ("[::ffff:127.0.0.1]:1", true),
            ("0.0.0.0:1", false),
            ("[::]:1", false),
            ("192.168.1.1:1", false),
            ("[::ffff:10.0.0.1]:1", false),
        ] {
            assert_eq!(is_loopback(address.parse().unwrap()), loopback, "{address}");
        }
        let open = crate::config::DaemonSettings::default();
        let error = bind_tcp("0.0.0.0:7300", &open).await.unwrap_err();
        assert!(
            matches!(error, EndpointError::Unauthenticated { .. }),
            "{error}"
        );
        assert!(
            error
                .to_string()
                .contains("listen on loopback (127.0.0.1:7300)"),
            "{error}"
        );
    }

    #[test]
    fn bare_port_binds_loopback() {
        assert_eq!(
            listen_address("7300").unwrap(),
            "127.0.0.1:7300".parse().unwrap()
        );
        assert_eq!(
            listen_address("0.0.0.0:80").unwrap(),
            "0.0.0.0:80".parse().unwrap()
        );
        assert_eq!(
            listen_address(" [::1]:7300 ").unwrap(),
            "[::1]:7300".parse().unwrap()
        );
        // Not any free port: nobody would know which.
        for zero in ["0", "127.0.0.1:0", "[::1]:0"] {
            let error = listen_address(zero).unwrap_err().to_string();
            assert!(error.contains(PORT_ZERO), "{zero:?}: {error}");
        }
        assert!(listen_address("localhost:x").is_err());
        for bad in ["", "+7300", "70000", "localhost:7300", "127.0.0.1"] {
            let error = listen_address(bad).unwrap_err().to_string();
            assert!(
                error.contains("(expected HOST:PORT or PORT)"),
                "{bad:?}: {error}"
            );
        }
    }
}
