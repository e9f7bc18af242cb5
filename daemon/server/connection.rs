//! The connections the server accepts: on the Unix socket, who the peer is (its uid, gid and
//! groups as the kernel recorded them when it connected, `SO_PEERCRED` and `SO_PEERGROUPS`),
//! kept with the connection so that each request is judged under the policy in force, and
//! the peer's name ([`UserNames`], looked up on a blocking thread, never on the accepting
//! path); on TCP, the stream with Nagle off, one of at most `daemon.tcp_max_connections`,
//! closed when its peer stays silent for `daemon.tcp_idle_timeout`. Running out of descriptors
//! pauses accepting for a moment instead of spinning.

use std::{
    collections::HashMap,
    io,
    os::fd::{AsFd, AsRawFd},
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream, UnixListener, UnixStream},
    sync::{OwnedSemaphorePermit, Semaphore, watch},
    time::{Instant, Sleep},
};
use tokio_stream::Stream;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// How long accepting pauses when the process is out of descriptors or memory.
const EXHAUSTED_PAUSE: Duration = Duration::from_millis(100);

/// Who is at the other end of a Unix connection. In the extensions of each of its requests.
#[derive(Debug, Clone)]
pub enum UnixPeer {
    /// What the kernel recorded when the peer connected.
    Known(PeerCredentials),
    /// The credentials could not be read (why, for messages): the peer may do nothing.
    Unknown(Arc<str>),
}

/// A Unix peer's credentials, as the kernel recorded them when it connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCredentials {
    /// The peer's effective uid.
    pub uid: u32,
    /// Its effective gid.
    pub gid: u32,
    /// Its supplementary groups.
    pub groups: Arc<[u32]>,
}

/// An accepted Unix connection and its peer.
pub struct UnixConnection {
    /// The connection itself.
    stream: UnixStream,
    /// Handed to tonic for each request's extensions.
    peer: UnixPeer,
}

impl UnixConnection {
    /// Reads the peer's credentials from `stream` (two system calls, no lookup).
    fn new(stream: UnixStream) -> UnixConnection {
        let peer = match stream.peer_cred() {
            Ok(credentials) => UnixPeer::Known(PeerCredentials {
                uid: credentials.uid(),
                gid: credentials.gid(),
                groups: peer_groups(&stream).unwrap_or_default().into(),
            }),
            Err(error) => UnixPeer::Unknown(format!("an unknown peer ({error})").into()),
        };
        UnixConnection { stream, peer }
    }
}

/// "uid 1000 (alice)", or "uid 1000" for a uid without a name. Asks the user database (NSS:
/// files, perhaps LDAP), which may block: call it on a blocking thread.
pub fn unix_name(uid: u32) -> String {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(user)) => format!("uid {uid} ({})", user.name),
        _ => format!("uid {uid}"),
    }
}

/// How long a name stays known before it is looked up again (a user renamed is seen then).
const NAME_LIFETIME: Duration = Duration::from_secs(300);

/// How long a request waits for its caller's name; then it is named by uid alone.
const NAME_WAIT: Duration = Duration::from_secs(2);

/// The most names kept: beyond, the expired ones go, and if none has, every one.
const MAX_NAMES: usize = 1024;

/// The names of Unix peers by uid ("uid 1000 (alice)"), each looked up once on a blocking
/// thread however many connections or requests want it at the same time, and kept for
/// [`NAME_LIFETIME`]. The lock is held for a map operation only, never across a lookup or an
/// await.
#[derive(Debug, Default)]
pub struct UserNames {
    /// By uid: the name once looked up (`None` while the lookup runs), and when it started.
    entries: Mutex<HashMap<u32, (LookedUp, Instant)>>,
}

/// A name being looked up: `None` until it is found.
type LookedUp = watch::Receiver<Option<Arc<str>>>;

impl UserNames {
    /// The name of `uid` if it is known now.
    pub fn known(&self, uid: u32) -> Option<Arc<str>> {
        let entries = self
            .entries
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let (name, since) = entries.get(&uid)?;
        let name = name.borrow().clone()?;
        (since.elapsed() < NAME_LIFETIME).then_some(name)
    }

    /// The name of `uid`: known, or looked up (on a blocking thread) and waited for, at most
    /// [`NAME_WAIT`]; then "uid N" for this once (the lookup goes on, for the next request).
    pub async fn name(&self, uid: u32) -> Arc<str> {
        let mut looked_up = self.lookup(uid);
        let found = tokio::time::timeout(NAME_WAIT, looked_up.wait_for(Option::is_some)).await;
        match found {
            Ok(Ok(name)) => name.clone().unwrap_or_else(|| by_uid(uid)),
            // Too slow, or the lookup could not run.
            _ => by_uid(uid),
        }
    }

    /// The entry of `uid`, with a lookup started if there is none, or it is too old, or the
    /// last one could not finish.
    fn lookup(&self, uid: u32) -> LookedUp {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Some((name, since)) = entries.get(&uid) {
            let usable = since.elapsed() < NAME_LIFETIME
                && (name.borrow().is_some() || name.has_changed().is_ok());
            if usable {
                return name.clone();
            }
        }
        if entries.len() >= MAX_NAMES {
            entries.retain(|_, (_, since)| since.elapsed() < NAME_LIFETIME);
            if entries.len() >= MAX_NAMES {
                entries.clear();
            }
        }
        let (found, name) = watch::channel(None);
        tokio::task::spawn_blocking(move || {
            let _ = found.send(Some(unix_name(uid).into()));
        });
        entries.insert(uid, (name.clone(), Instant::now()));
        name
    }
}

/// "uid 1000": a peer named by its uid alone.
fn by_uid(uid: u32) -> Arc<str> {
    format!("uid {uid}").into()
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

/// Writes go straight to the connection's stream: the same for both kinds of connection.
macro_rules! write_through_stream {
    ($connection:ty) => {
        impl AsyncWrite for $connection {
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

            fn poll_shutdown(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
            ) -> Poll<io::Result<()>> {
                Pin::new(&mut self.stream).poll_shutdown(cx)
            }
        }
    };
}

write_through_stream!(UnixConnection);

/// The connections to `listener`, each with its peer's credentials.
pub fn unix(
    listener: UnixListener,
) -> impl Stream<Item = io::Result<UnixConnection>> + Send + 'static {
    let state = (listener, Exhaustion::default());
    futures_util::stream::unfold(state, |(listener, mut exhaustion)| async move {
        let accepted = exhaustion.accept(|| listener.accept()).await;
        let connection = accepted.map(|(stream, _)| UnixConnection::new(stream));
        Some((connection, (listener, exhaustion)))
    })
}

/// The limits of the TCP listener.
#[derive(Debug, Clone, Copy)]
pub struct TcpLimits {
    /// The most connections open at once; one more is closed as soon as it is accepted.
    pub max_connections: usize,
    /// A connection whose peer sends nothing for this long is closed (a live client answers
    /// the daemon's HTTP/2 pings, sent every quarter of it, so only a dead or silent one is).
    pub idle_timeout: Duration,
}

/// How often a refused TCP connection is logged at most: the first of a burst is, then one
/// line per this long that counts the others.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// An accepted TCP connection: it holds its place among the open ones until dropped, and
/// fails its reads once its peer has sent nothing for the idle timeout.
pub struct TcpConnection {
    /// The connection itself.
    stream: TcpStream,
    /// Its place among [`TcpLimits::max_connections`].
    _permit: OwnedSemaphorePermit,
    /// How long the peer may stay silent.
    idle_timeout: Duration,
    /// When the peer last sent something.
    last_read: Instant,
    /// Fires at the earliest moment the connection may be idle for too long; pushed back
    /// lazily (when it fires early) rather than at every read.
    idle: Pin<Box<Sleep>>,
}

impl Connected for TcpConnection {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for TcpConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    self.last_read = Instant::now();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => loop {
                if self.idle.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                let deadline = self.last_read + self.idle_timeout;
                if deadline <= Instant::now() {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("the peer sent nothing for {:?}", self.idle_timeout),
                    )));
                }
                self.idle.as_mut().reset(deadline);
            },
        }
    }
}

write_through_stream!(TcpConnection);

/// Refused TCP connections, logged at a bounded rate.
#[derive(Default)]
struct Refusals {
    /// When the last line was logged.
    logged: Option<Instant>,
    /// Refused since then, not yet told.
    untold: u64,
}

impl Refusals {
    /// Counts one refused connection from `peer` and logs it, or the ones since the last line,
    /// at most once per [`REFUSAL_LOG_INTERVAL`].
    fn refused(&mut self, peer: Option<std::net::SocketAddr>, max: usize) {
        self.untold += 1;
        if self
            .logged
            .is_some_and(|at| at.elapsed() < REFUSAL_LOG_INTERVAL)
        {
            return;
        }
        let peer = peer.map_or_else(|| "unknown".to_string(), |peer| peer.to_string());
        let others = match self.untold - 1 {
            0 => String::new(),
            more => format!(" ({more} more since the last such line)"),
        };
        tracing::warn!(
            "TCP connection from {peer} closed at once: {max} are open already \
             (daemon.tcp_max_connections){others}"
        );
        self.logged = Some(Instant::now());
        self.untold = 0;
    }
}

/// The connections to `listener` within `limits`, with Nagle's algorithm off (a gRPC reply is
/// small and must not wait for the client's delayed ACK). A connection beyond
/// [`TcpLimits::max_connections`] is closed as soon as it is accepted, and logged at a bounded
/// rate; the connections already open go on.
pub fn tcp(
    listener: TcpListener,
    limits: TcpLimits,
) -> impl Stream<Item = io::Result<TcpConnection>> + Send + 'static {
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let state = (listener, Exhaustion::default(), Refusals::default());
    futures_util::stream::unfold(state, move |(listener, mut exhaustion, mut refusals)| {
        let open = open.clone();
        async move {
            let connection = loop {
                let accepted = exhaustion.accept(|| listener.accept()).await;
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => break Err(error),
                };
                let Ok(permit) = open.clone().try_acquire_owned() else {
                    drop(stream);
                    refusals.refused(Some(peer), limits.max_connections);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let now = Instant::now();
                break Ok(TcpConnection {
                    stream,
                    _permit: permit,
                    idle_timeout: limits.idle_timeout,
                    last_read: now,
                    idle: Box::pin(tokio::time::sleep_until(now + limits.idle_timeout)),
                });
            };
            Some((connection, (listener, exhaustion, refusals)))
        }
    })
}

/// Whether a listener is out of descriptors or memory, so that it says so once per episode.
#[derive(Default)]
struct Exhaustion {
    /// Accepting is paused; the warning was given.
    paused: bool,
}

impl Exhaustion {
    /// The next accepted connection, or an error for tonic to log and skip. When the process
    /// is out of descriptors (or the kernel of memory), the connection waiting in the backlog
    /// would fail again at once: accepting pauses for [`EXHAUSTED_PAUSE`] instead, and the
    /// daemon says so once until a connection is accepted again.
    async fn accept<T, F>(&mut self, mut once: impl FnMut() -> F) -> io::Result<T>
    where
        F: Future<Output = io::Result<T>>,
    {
        loop {
            match once().await {
                Err(error) if exhausted(&error) => {
                    if !self.paused {
                        self.paused = true;
                        tracing::warn!(
                            "accepting a connection: {error}; accepting again every \
                             {EXHAUSTED_PAUSE:?} until it works"
                        );
                    }
                    tokio::time::sleep(EXHAUSTED_PAUSE).await;
                }
                other => {
                    if other.is_ok() && self.paused {
                        self.paused = false;
                        tracing::info!("accepting connections again");
                    }
                    return other;
                }
            }
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

    #[tokio::test]
    async fn a_unix_peer_is_known_by_its_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let mut incoming = Box::pin(unix(listener));
        let _client = UnixStream::connect(&path).await.unwrap();
        let connection = tokio_stream::StreamExt::next(&mut incoming)
            .await
            .unwrap()
            .unwrap();
        let UnixPeer::Known(peer) = connection.connect_info() else {
            panic!("no credentials");
        };
        assert_eq!(peer.uid, nix::unistd::geteuid().as_raw());
        assert_eq!(peer.gid, nix::unistd::getegid().as_raw());
        // The kernel's list is this process's.
        let mut ours: Vec<u32> = nix::unistd::getgroups()
            .unwrap()
            .iter()
            .map(|gid| gid.as_raw())
            .collect();
        let mut theirs = peer.groups.to_vec();
        theirs.sort_unstable();
        ours.sort_unstable();
        assert_eq!(theirs, ours);
    }

    #[tokio::test]
    async fn names_are_looked_up_once_and_kept() {
        let names = UserNames::default();
        let uid = nix::unistd::geteuid().as_raw();
        assert_eq!(names.known(uid), None);
        // Many at once: one lookup, one name.
        let (a, b) = tokio::join!(names.name(uid), names.name(uid));
        assert_eq!(&*a, unix_name(uid));
        assert!(Arc::ptr_eq(&a, &b));
        assert!(a.starts_with(&format!("uid {uid}")), "{a}");
        assert!(Arc::ptr_eq(&names.known(uid).unwrap(), &a));
        // A uid without a user.
        assert_eq!(&*names.name(4_000_000_000).await, "uid 4000000000");
    }
}
