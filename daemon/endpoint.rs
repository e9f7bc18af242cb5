//! Where taskmasterd listens and how clients reach it: the default socket path, binding the Unix
//! socket (its mode and group, one live daemon per socket) and the TCP listener (with TLS, never
//! open beyond loopback without authentication), and connecting a gRPC channel.

use std::{
    io,
    net::SocketAddr,
    os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
};

use hyper_util::rt::TokioIo;

use crate::proto::taskmaster_client::TaskmasterClient;
use tokio::net::{TcpListener, UnixListener, UnixStream};
use tonic::transport::{Channel, Uri};

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
/// certificates must chain to (then every client must show one). The files are read and checked
/// now, so that a bad one stops the start.
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
        config = config.client_ca_root(Certificate::from_pem(read(client_ca)?));
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

/// Opens a gRPC channel to a daemon. The connection is made now, so an absent daemon is
/// reported here.
pub async fn connect(target: &Target) -> Result<Channel, EndpointError> {
    let unreachable = |reason: String| EndpointError::Unreachable {
        target: target.to_string(),
        reason,
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
                .map_err(|error| unreachable(describe_transport_error(&error)))
        }
        Target::Tcp(url) => {
            let endpoint =
                tonic::transport::Endpoint::from_shared(url.clone()).map_err(|error| {
                    EndpointError::Address {
                        address: url.clone(),
                        reason: error.to_string(),
                    }
                })?;
            endpoint
                .connect()
                .await
                .map_err(|error| unreachable(describe_transport_error(&error)))
        }
    }
}

/// A Taskmaster client on `channel`. Status of a hundred thousand instances is more than
/// tonic's default 4 MB message limit, so the limit is raised for what the daemon sends.
pub fn client(channel: Channel) -> TaskmasterClient<Channel> {
    TaskmasterClient::new(channel).max_decoding_message_size(MAX_RESPONSE)
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
