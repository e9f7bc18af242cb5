//! Tail and MainTail: the end of a stream's output, read from its file off the async runtime
//! and outside the capture's locks (which the drainer needs for every byte), in pieces as the
//! client takes them, then what follows, live, with nothing missed or repeated in between.
//!
//! File reads are bounded: at most [`CONCURRENT_READS`] run at once, each of at most
//! [`PIECE`] bytes; a tail beyond the bound waits for its turn (piece by piece, so one large
//! tail does not starve the others), and a client that reads slowly holds no turn, no thread
//! and at most one piece while it is behind.

use std::{future::Future, pin::Pin, sync::Arc};

use tokio::sync::Semaphore;
use tokio_stream::{
    Stream, StreamExt,
    wrappers::{BroadcastStream, errors::BroadcastStreamRecvError},
};
use tonic::Status;

use crate::{
    output::{Capture, ReadBack, Snapshot, last_lines},
    proto,
};

pub type OutputStream = Pin<Box<dyn Stream<Item = Result<proto::OutputChunk, Status>> + Send>>;

/// Where a tail begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// The last this many lines.
    Lines(usize),
    /// The last this many bytes.
    Bytes(u64),
}

/// Lines shown when none are asked for, as supervisorctl's tail.
const DEFAULT_LINES: usize = 20;
/// The most a tail sends before following.
const LONGEST_TAIL: u64 = 64 * 1024 * 1024;
/// How far back a tail of lines looks for them (read in one piece).
const LINES_LOOK_BACK: u64 = 256 * 1024;
/// The most one read of a tail takes from the file, and sends in one chunk.
const PIECE: u64 = 1024 * 1024;
/// File reads of tails at once (each on a blocking thread); more wait their turn.
const CONCURRENT_READS: usize = 4;

impl Start {
    pub fn of(lines: u32, bytes: Option<u64>) -> Start {
        match (bytes, lines) {
            (Some(bytes), _) => Start::Bytes(bytes.min(LONGEST_TAIL)),
            (None, 0) => Start::Lines(DEFAULT_LINES),
            (None, lines) => Start::Lines(lines as usize),
        }
    }
}

/// The tails of one daemon: their turns to read files.
#[derive(Clone)]
pub struct Tails {
    /// A permit per file read in progress (the snapshot's open counts as one).
    reads: Arc<Semaphore>,
}

impl Default for Tails {
    fn default() -> Tails {
        Tails {
            reads: Arc::new(Semaphore::new(CONCURRENT_READS)),
        }
    }
}

/// A blocking piece of work that failed, as the client sees it.
fn failed(capture: &Capture, error: impl std::fmt::Display) -> Status {
    Status::internal(format!("reading {}: {error}", capture.label))
}

/// A chunk of output as the wire has it.
fn chunk(data: Vec<u8>, missed_bytes: u64) -> proto::OutputChunk {
    proto::OutputChunk { data, missed_bytes }
}

impl Tails {
    /// Runs `work` on a blocking thread in its turn.
    async fn read<T: Send + 'static>(
        &self,
        capture: &Capture,
        work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
    ) -> Result<T, Status> {
        // The semaphore is never closed.
        let _turn = self
            .reads
            .acquire()
            .await
            .map_err(|error| failed(capture, error))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|error| failed(capture, error))?
            .map_err(|error| failed(capture, error))
    }

    /// The start of `capture`'s output as `start` says, then (with `follow`) what comes, until
    /// the client hangs up or `ended` completes. The feed is subscribed before this returns.
    pub async fn stream(
        &self,
        capture: Arc<Capture>,
        start: Start,
        follow: bool,
        ended: impl Future<Output = ()> + Send + 'static,
    ) -> Result<OutputStream, Status> {
        let taken = capture.clone();
        let (head, live, next_offset): (OutputStream, _, _) = match start {
            Start::Lines(lines) => {
                let (data, snapshot) = self
                    .read(&capture, move || {
                        let snapshot = taken.snapshot()?;
                        let data = last_lines_of(&taken, &snapshot, lines)?;
                        Ok((data, snapshot))
                    })
                    .await?;
                let head = tokio_stream::iter([Ok(chunk(data, 0))]);
                (Box::pin(head), snapshot.live, snapshot.next_offset)
            }
            Start::Bytes(bytes) => {
                let snapshot = self.read(&capture, move || taken.snapshot()).await?;
                let length = snapshot.file.as_ref().map_or(0, |file| file.length);
                let skip = (length + snapshot.partial.len() as u64).saturating_sub(bytes);
                let head = Head {
                    tails: self.clone(),
                    capture: capture.clone(),
                    file: snapshot.file.map(Arc::new),
                    position: skip.min(length),
                    partial: snapshot.partial[skip.saturating_sub(length) as usize..].to_vec(),
                    first: true,
                    done: false,
                };
                (
                    Box::pin(head.into_stream()),
                    snapshot.live,
                    snapshot.next_offset,
                )
            }
        };
        if !follow {
            return Ok(head);
        }
        let mut expected = next_offset;
        let live = BroadcastStream::new(live).filter_map(move |item| match item {
            Ok(piece) => {
                let missed = piece.offset.saturating_sub(expected);
                expected = piece.offset + piece.data.len() as u64;
                Some(Ok(chunk(piece.data.to_vec(), missed)))
            }
            // The next chunk's offset tells how much was missed.
            Err(BroadcastStreamRecvError::Lagged(_)) => None,
        });
        Ok(Box::pin(futures_util::StreamExt::take_until(
            head.chain(live),
            ended,
        )))
    }
}

/// The last `lines` lines of what `snapshot` saw (looking back [`LINES_LOOK_BACK`] bytes in the
/// file). Blocking.
fn last_lines_of(capture: &Capture, snapshot: &Snapshot, lines: usize) -> std::io::Result<Vec<u8>> {
    let mut data = match &snapshot.file {
        Some(file) => {
            let data = file.read(file.length.saturating_sub(LINES_LOOK_BACK), file.length)?;
            // Emptied meanwhile: those lines are gone, and what was read may be newer ones.
            if capture.emptied_since(file) {
                Vec::new()
            } else {
                data
            }
        }
        None => Vec::new(),
    };
    data.extend_from_slice(&snapshot.partial);
    Ok(last_lines(&data, lines).to_vec())
}

/// The head of a tail of bytes: the file from `position` to its length at the snapshot, a
/// piece at a time as the client takes them, then the partial line.
struct Head {
    /// Whose turns its reads take.
    tails: Tails,
    /// The stream it is of: to tell whether its file was emptied meanwhile.
    capture: Arc<Capture>,
    /// The file as the snapshot saw it; `None` once read (or when there is none).
    file: Option<Arc<ReadBack>>,
    /// The next byte of the file to send.
    position: u64,
    /// The partial line of the snapshot, sent last.
    partial: Vec<u8>,
    /// Nothing was sent yet: the first chunk goes out even when empty.
    first: bool,
    /// Everything was sent (or an error ended it).
    done: bool,
}

impl Head {
    fn into_stream(self) -> impl Stream<Item = Result<proto::OutputChunk, Status>> + Send {
        futures_util::stream::unfold(self, |mut head| async move {
            let item = head.next().await?;
            Some((item, head))
        })
    }

    /// The next chunk; `None` at the end.
    async fn next(&mut self) -> Option<Result<proto::OutputChunk, Status>> {
        if self.done {
            return None;
        }
        let mut missed = 0;
        if let Some(file) = self.file.clone() {
            if self.position < file.length {
                let (start, length) = (self.position, file.length);
                let end = length.min(start + PIECE);
                let capture = self.capture.clone();
                let read = self
                    .tails
                    .read(&self.capture, move || {
                        let data = file.read(start, end)?;
                        Ok((data, capture.emptied_since(&file)))
                    })
                    .await;
                let (data, emptied) = match read {
                    Ok(read) => read,
                    Err(status) => {
                        self.done = true;
                        return Some(Err(status));
                    }
                };
                if !emptied && !data.is_empty() {
                    self.position += data.len() as u64;
                    self.first = false;
                    return Some(Ok(chunk(data, 0)));
                }
                // Emptied meanwhile (or cut short from outside): the rest of the file is gone,
                // and what was read may be newer bytes, which the feed brings anyway.
                missed = length - self.position;
            }
            self.file = None;
        }
        self.done = true;
        if self.partial.is_empty() && missed == 0 && !self.first {
            return None;
        }
        Some(Ok(chunk(std::mem::take(&mut self.partial), missed)))
    }
}
