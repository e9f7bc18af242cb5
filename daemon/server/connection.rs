//! The connections the server accepts: on the Unix socket, who the peer is (its uid, gid and
//! groups as the kernel recorded them when it connected, `SO_PEERCRED` and `SO_PEERGROUPS`)
//! and its role, found once per connection; on TCP, the stream with Nagle off. Running out of
//! descriptors pauses accepting for a moment instead of spinning.

use std::{
    io,
    os::fd::{AsFd, AsRawFd},
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream, UnixListener, UnixStream},
};
use tokio_stream::Stream;
use tonic::transport::server::Connected;

use crate::access::{Policy, Role};

/// How long accepting pauses when the process is out of descriptors or memory.
const EXHAUSTED_PAUSE: Duration = Duration::from_millis(100);

/// Who is at the other end of a Unix connection. In the extensions of each of its requests.
#[derive(Debug, Clone)]
pub struct UnixPeer {
    /// "uid 1000 (alice)"; the name is looked up once, when the peer connects.
    pub name: Arc<str>,
    /// What it may do; `None`: nothing (it is not root, not the daemon's user, and neither an
    /// operator nor a viewer).
    pub role: Option<Role>,
}

/// An accepted Unix connection and its peer.
pub struct UnixConnection {
    stream: UnixStream,
    /// Handed to tonic for each request's extensions.
    peer: UnixPeer,
}

impl UnixConnection {
    /// Reads the peer's credentials from `stream` and gives it its role under `policy`. A peer
    /// whose credentials cannot be read has no role.
    fn new(stream: UnixStream, policy: &Policy) -> UnixConnection {
        let peer = match stream.peer_cred() {
            Ok(credentials) => {
                let (uid, gid) = (credentials.uid(), credentials.gid());
                let groups = peer_groups(&stream).unwrap_or_default();
                UnixPeer {
                    name: unix_name(uid).into(),
                    role: policy.unix_role(uid, gid, &groups),
                }
            }
            Err(error) => UnixPeer {
                name: format!("an unknown peer ({error})").into(),
                role: None,
            },
        };
        UnixConnection { stream, peer }
    }
}

/// "uid 1000 (alice)", or "uid 1000" for a uid without a name.
pub fn unix_name(uid: u32) -> String {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(user)) => format!("uid {uid} ({})", user.name),
        _ => format!("uid {uid}"),
    }
}

/// `SO_PEERGROUPS` (Linux 4.13): not exported by the libc crate.
#[cfg(all(
    target_os = "linux",
    not(any(target_arch = "sparc", target_arch = "sparc64"))
))]
const SO_PEERGROUPS: nix::libc::c_int = 59;
#[cfg(all(
    target_os = "linux",
    any(target_arch = "sparc", target_arch = "sparc64")
))]
const SO_PEERGROUPS: nix::libc::c_int = 0x003d;

/// The supplementary groups the peer had when it connected. Read from the socket rather than
/// from /proc/PID/status (the peer may be gone and its pid reused) or the group database (which
/// says what the user would get at its next login, not what the process holds).
#[cfg(target_os = "linux")]
fn peer_groups(stream: &UnixStream) -> io::Result<Vec<u32>> {
    let mut groups: Vec<nix::libc::gid_t> = vec![0; 64];
    loop {
        let mut size = (groups.len() * size_of::<nix::libc::gid_t>()) as nix::libc::socklen_t;
        // SAFETY: the buffer holds `size` bytes, and the kernel writes at most `size` of them
        // and stores in `size` how many it wrote (or needs, with ERANGE).
        let result = unsafe {
            nix::libc::getsockopt(
                stream.as_fd().as_raw_fd(),
                nix::libc::SOL_SOCKET,
                SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut size,
            )
        };
        let count = size as usize / size_of::<nix::libc::gid_t>();
        if result == 0 {
            groups.truncate(count);
            return Ok(groups);
        }
        let error = io::Error::last_os_error();
        if error.raw_os_error() == Some(nix::libc::ERANGE) && count > groups.len() {
            groups.resize(count, 0);
            continue;
        }
        return Err(error);
    }
}

/// Elsewhere, only the peer's primary group counts.
#[cfg(not(target_os = "linux"))]
fn peer_groups(_stream: &UnixStream) -> io::Result<Vec<u32>> {
    Ok(Vec::new())
}

impl Connected for UnixConnection {
    type ConnectInfo = UnixPeer;

    fn connect_info(&self) -> UnixPeer {
        self.peer.clone()
    }
}

impl AsyncRead for UnixConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for UnixConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The connections to `listener`, each with its peer and role under `policy`.
pub fn unix(
    listener: UnixListener,
    policy: Arc<Policy>,
) -> impl Stream<Item = io::Result<UnixConnection>> + Send + 'static {
    futures_util::stream::unfold(listener, move |listener| {
        let policy = policy.clone();
        async move {
            let accepted = accept(|| listener.accept()).await;
            let connection = accepted.map(|(stream, _)| UnixConnection::new(stream, &policy));
            Some((connection, listener))
        }
    })
}

/// The connections to `listener`, with Nagle's algorithm off (a gRPC reply is small and must
/// not wait for the client's delayed ACK).
pub fn tcp(listener: TcpListener) -> impl Stream<Item = io::Result<TcpStream>> + Send + 'static {
    futures_util::stream::unfold(listener, |listener| async move {
        let accepted = accept(|| listener.accept()).await;
        let connection = accepted.map(|(stream, _)| {
            let _ = stream.set_nodelay(true);
            stream
        });
        Some((connection, listener))
    })
}

/// The next accepted connection, or an error for tonic to log and skip. When the process is out
/// of descriptors (or the kernel of memory), the connection waiting in the backlog would fail
/// again at once: accepting pauses for [`EXHAUSTED_PAUSE`] instead, and the daemon says so.
async fn accept<T, F>(mut once: impl FnMut() -> F) -> io::Result<T>
where
    F: Future<Output = io::Result<T>>,
{
    loop {
        match once().await {
            Err(error) if exhausted(&error) => {
                tracing::warn!("accepting a connection: {error}; pausing for {EXHAUSTED_PAUSE:?}");
                tokio::time::sleep(EXHAUSTED_PAUSE).await;
            }
            other => return other,
        }
    }
}

/// Whether an accept failed for want of descriptors or memory.
fn exhausted(error: &io::Error) -> bool {
    use nix::libc::{EMFILE, ENFILE, ENOBUFS, ENOMEM};
    matches!(
        error.raw_os_error(),
        Some(EMFILE | ENFILE | ENOBUFS | ENOMEM)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DaemonSettings;

    #[tokio::test]
    async fn a_unix_peer_is_known_by_its_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let policy = Arc::new(Policy::new(&DaemonSettings::default()));
        let mut incoming = Box::pin(unix(listener, policy));
        let _client = UnixStream::connect(&path).await.unwrap();
        let connection = tokio_stream::StreamExt::next(&mut incoming)
            .await
            .unwrap()
            .unwrap();
        let peer = connection.connect_info();
        let uid = nix::unistd::geteuid().as_raw();
        // The test is the daemon's own user.
        assert_eq!(peer.role, Some(Role::Operator));
        assert_eq!(&*peer.name, unix_name(uid));
        assert!(
            peer.name.starts_with(&format!("uid {uid}")),
            "{}",
            peer.name
        );
        // The kernel's list is this process's.
        let ours: Vec<u32> = nix::unistd::getgroups()
            .unwrap()
            .iter()
            .map(|gid| gid.as_raw())
            .collect();
        let mut theirs = peer_groups(&connection.stream).unwrap();
        let mut ours = ours;
        theirs.sort_unstable();
        ours.sort_unstable();
        assert_eq!(theirs, ours);
    }
}
