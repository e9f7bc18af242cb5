//! What the API accepts from a client, so that no request can cost the daemon much: the size
//! of a request message (checked as its length prefix arrives, before any of it is buffered),
//! how many names one request may hold, and what a name may be. Streams per connection and
//! HTTP/2 pings are set where the servers are built (`run`), the TCP connections open at once
//! and their idle timeout where they are accepted ([`super::connection::tcp`]).

use std::{
    pin::Pin,
    task::{Context, Poll, ready},
};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use tonic::Status;

/// The largest request message: a Stop of ten thousand long names fits.
pub const MAX_REQUEST: usize = 1 << 20;
/// The largest request message for a call that needs no credentials (health checks): anyone
/// may send those.
pub const MAX_ANONYMOUS_REQUEST: usize = 4 << 10;
/// The most names one request may hold.
pub const MAX_NAMES: usize = 10_000;
/// The longest name, in bytes.
pub const MAX_NAME: usize = 255;
/// The most streams (calls in progress) on one connection.
pub const MAX_STREAMS_PER_CONNECTION: u32 = 64;
/// The most TCP connections open at once unless `daemon.tcp_max_connections` says otherwise:
/// well below the open-files limit, so that descriptors remain for the programs' pipes and
/// files whatever reaches the port.
pub const DEFAULT_TCP_MAX_CONNECTIONS: u32 = 256;
/// How long a TCP peer may send nothing unless `daemon.tcp_idle_timeout` says otherwise.
pub const DEFAULT_TCP_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Length of the prefix of each gRPC message: a compression flag and a 4-byte big-endian length.
const PREFIX: usize = 5;

/// A request body whose messages may not be longer than `limit`: a longer one ends the body with
/// RESOURCE_EXHAUSTED as soon as its length prefix arrives, so tonic never buffers it.
pub struct Limited<B> {
    /// The request's body.
    inner: B,
    /// The largest message allowed, in bytes.
    limit: usize,
    /// The prefix of the next message, as far as it has arrived.
    prefix: [u8; PREFIX],
    /// How many bytes of `prefix` have arrived.
    prefix_len: usize,
    /// Bytes of the current message still to come before the next prefix.
    remaining: u64,
    /// Set once a message was refused: the body is over.
    refused: bool,
}

impl<B> Limited<B> {
    pub fn new(inner: B, limit: usize) -> Limited<B> {
        Limited {
            inner,
            limit,
            prefix: [0; PREFIX],
            prefix_len: 0,
            remaining: 0,
            refused: false,
        }
    }

    /// Follows the messages through `data`; the status if one is too long.
    fn scan(&mut self, mut data: &[u8]) -> Result<(), Status> {
        while !data.is_empty() {
            if self.remaining > 0 {
                let skipped = (self.remaining.min(data.len() as u64)) as usize;
                self.remaining -= skipped as u64;
                data.advance(skipped);
                continue;
            }
            let taken = (PREFIX - self.prefix_len).min(data.len());
            self.prefix[self.prefix_len..self.prefix_len + taken].copy_from_slice(&data[..taken]);
            self.prefix_len += taken;
            data.advance(taken);
            if self.prefix_len == PREFIX {
                self.prefix_len = 0;
                let length = u32::from_be_bytes([
                    self.prefix[1],
                    self.prefix[2],
                    self.prefix[3],
                    self.prefix[4],
                ]);
                if length as usize > self.limit {
                    return Err(Status::resource_exhausted(format!(
                        "the request is {length} bytes long; the daemon takes at most {} bytes",
                        self.limit
                    )));
                }
                self.remaining = length.into();
            }
        }
        Ok(())
    }
}

impl<B> Body for Limited<B>
where
    B: Body<Data = Bytes, Error = Status> + Unpin,
{
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        if self.refused {
            return Poll::Ready(None);
        }
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        if let Some(Ok(frame)) = &frame
            && let Some(data) = frame.data_ref()
            && let Err(status) = self.scan(data)
        {
            self.refused = true;
            return Poll::Ready(Some(Err(status)));
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.refused || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The names of one request, refused as a whole with INVALID_ARGUMENT when there are more than
/// [`MAX_NAMES`] or any one is not a name (see [`check_name`]).
pub fn check_names(names: &[String]) -> Result<(), Status> {
    if names.len() > MAX_NAMES {
        return Err(Status::invalid_argument(format!(
            "{} names in one request; at most {MAX_NAMES}",
            names.len()
        )));
    }
    names.iter().try_for_each(|name| check_name(name))
}

/// The signal a Signal request names: a name or a number, as a config's `stopsignal` (an
/// unknown one is INVALID_ARGUMENT, shown cut to 32 characters).
pub fn signal(text: &str) -> Result<nix::sys::signal::Signal, Status> {
    let shown: String = text.chars().take(32).collect();
    crate::config::parse_signal(&shown)
        .ok()
        .filter(|_| shown.len() == text.len())
        .ok_or_else(|| {
            let problem = crate::config::parse_signal(&shown).err();
            Status::invalid_argument(
                problem.unwrap_or_else(|| format!("unknown signal `{shown}…`")),
            )
        })
}

/// A program or instance name as a client may send it: not empty, at most [`MAX_NAME`] bytes,
/// no `/` and no control character, and neither `.` nor `..` (alone or before `:`). What is
/// left is checked against the programs there are (an unknown name is NOT_FOUND).
pub fn check_name(name: &str) -> Result<(), Status> {
    let problem = if name.is_empty() {
        Some("a name is empty")
    } else if name.len() > MAX_NAME {
        Some("a name is longer than 255 bytes")
    } else if name.contains('/') {
        Some("a name holds `/`")
    } else if name.chars().any(char::is_control) {
        Some("a name holds a control character")
    } else if matches!(name.split(':').next(), Some("." | "..")) {
        Some("a name is `.` or `..`")
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(problem) => {
            let shown: String = name.chars().take(64).collect();
            Err(Status::invalid_argument(format!(
                "invalid name {shown:?}: {problem}"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    /// One gRPC message of `length` bytes, prefix included, all zeros.
    fn message(length: usize) -> Vec<u8> {
        let mut bytes = vec![0u8];
        bytes.extend((length as u32).to_be_bytes());
        bytes.resize(PREFIX + length, 0);
        bytes
    }

    #[test]
    fn messages_are_followed_across_chunks() {
        let mut limited = Limited::new((), 100);
        // Two messages within the limit, cut anywhere.
        let mut stream = message(100);
        stream.extend(message(0));
        stream.extend(message(7));
        for cut in [1, 2, 3, 5, 6, 64] {
            for chunk in stream.chunks(cut) {
                limited.scan(chunk).unwrap();
            }
            assert_eq!((limited.prefix_len, limited.remaining), (0, 0), "{cut}");
        }
        // Too long: refused as soon as the prefix is whole, whatever comes after.
        let long = message(101);
        let mut limited = Limited::new((), 100);
        limited.scan(&long[..3]).unwrap();
        let status = limited.scan(&long[3..6]).unwrap_err();
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert!(status.message().contains("101 bytes"), "{status:?}");
        // A 64 MiB prefix is refused with only the prefix read.
        let mut limited = Limited::new((), MAX_REQUEST);
        let mut huge = vec![0u8];
        huge.extend((64u32 << 20).to_be_bytes());
        let status = limited.scan(&huge).unwrap_err();
        assert_eq!(status.code(), Code::ResourceExhausted);
    }

    #[test]
    fn names() {
        for good in ["web", "web:1", "all", "a..b", "my-prog_2.x", "é"] {
            check_name(good).unwrap_or_else(|status| panic!("{good}: {status:?}"));
        }
        for (bad, problem) in [
            ("", "empty"),
            ("..", "`..`"),
            (".", "`.`"),
            ("..:1", "`..`"),
            ("a/b", "`/`"),
            ("../etc", "`/`"),
            ("a\nb", "control"),
            ("a\0b", "control"),
            ("a\u{7f}", "control"),
            (&"x".repeat(256), "longer than 255"),
        ] {
            let status = check_name(bad).unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument, "{bad:?}");
            assert!(status.message().contains(problem), "{bad:?}: {status:?}");
        }
        check_name(&"x".repeat(255)).unwrap();
        let many = vec!["web".to_string(); MAX_NAMES + 1];
        let status = check_names(&many).unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("10001 names"), "{status:?}");
        check_names(&many[..MAX_NAMES]).unwrap();
        let status = check_names(&["web".into(), "a/b".into()]).unwrap_err();
        assert!(status.message().contains("\"a/b\""), "{status:?}");
    }
}
