//! Where taskmasterd listens and how clients reach it: the default socket path, binding the Unix
//! socket (mode 0600, one live daemon per socket) and TCP listener, and connecting a gRPC channel.

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

/// Binds the Unix socket at `path` with mode 0600 whatever the umask.
///
/// A socket that still answers belongs to a live daemon: refuse. One that refuses connections
/// was left by a dead daemon: replace it. Anything else at `path` is not ours to delete. Must
/// run inside a tokio runtime, before any child is spawned (it changes the process umask for
/// the duration of the bind). The returned [`SocketFile`] removes the socket when dropped.
pub fn bind_unix(path: &Path) -> Result<(UnixListener, SocketFile), EndpointError> {
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
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let bound = UnixListener::bind(path);
    nix::sys::stat::umask(old);
    let listener = bound.map_err(bind_error)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(bind_error)?;
    let identity = std::fs::symlink_metadata(path).map_err(bind_error)?;
    let file = SocketFile {
        path: path.into(),
        identity: FileIdentity::of(&identity),
    };
    Ok((listener, file))
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

/// Binds the TCP listener for `address` (see [`listen_address`]).
pub async fn bind_tcp(address: &str) -> Result<TcpListener, EndpointError> {
    let socket_address = listen_address(address)?;
    TcpListener::bind(socket_address)
        .await
        .map_err(|source| EndpointError::Bind {
            what: socket_address.to_string(),
            source,
        })
}

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
        let error = bind_unix(&path).unwrap_err();
        assert!(matches!(error, EndpointError::NotASocket { .. }), "{error}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "keep me");
    }

    #[tokio::test]
    async fn a_successors_socket_is_not_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("taskmaster.sock");
        let (first_listener, first_file) = bind_unix(&path).unwrap();
        drop(first_listener);
        // The first daemon stopped listening; a second one takes the path over.
        let (_second_listener, second_file) = bind_unix(&path).unwrap();
        drop(first_file);
        assert!(path.exists(), "the successor's socket was removed");
        drop(second_file);
        assert!(!path.exists());
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
