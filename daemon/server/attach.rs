//! Attach: one client's session on the console of an instance's live process. The client's
//! first request says what it attaches to; then a task of the session sends it a terminal's
//! recent output, everything the process writes after it, and last how the process ended,
//! through a bounded channel, while another forwards its input and window sizes to the
//! console. Neither can slow the program or the daemon: output reaches the session through
//! the captures' feeds, which a session that falls behind (its client reads slowly) skips
//! ahead in, telling the client how many bytes it missed; input that the program does not
//! read holds up that client's input only.
//!
//! The session ends when the process ends (the supervisor ends its console once its last
//! output is in the feeds), when the client hangs up, or when the supervisor is gone; on a
//! shutdown, every process is stopped, so every session ends with it and no stream holds the
//! daemon's graceful end.

use std::{pin::Pin, time::Duration};

use futures_util::{FutureExt, StreamExt, stream::select_all};
use tokio::sync::mpsc;
use tokio_stream::{
    Stream,
    wrappers::{BroadcastStream, ReceiverStream, errors::BroadcastStreamRecvError},
};
use tonic::{Status, Streaming};

use super::{limits, to_status};
use crate::{
    output::{StreamKind, terminal::WindowSize},
    proto::{self, attach_request, attach_response},
    supervisor::{
        Attached, Handle,
        console::{Console, Ending, Writer},
        process::ExitInfo,
    },
};

pub type AttachStream = Pin<Box<dyn Stream<Item = Result<proto::AttachResponse, Status>> + Send>>;

/// How long a client has to send its first request (`open`).
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// Messages a session may have waiting for its client; once they are, it waits, and the
/// feeds skip ahead for it meanwhile.
const OUTBOX: usize = 16;

/// Opens the session that `incoming`'s first request asks for, on the supervisor of
/// `supervisor`; its answers.
pub async fn attach(
    supervisor: &Handle,
    mut incoming: Streaming<proto::AttachRequest>,
) -> Result<AttachStream, Status> {
    let open = opening(&mut incoming).await?;
    limits::check_name(&open.name)?;
    let attached = supervisor.attach(open.name).await.map_err(to_status)?;
    let console = attached.console.clone();
    let writes = !open.read_only;
    if writes && let Some(size) = open.size.and_then(window_size) {
        // A terminal that is gone (the process just ended) has no size to set.
        let _ = console.resize(size);
    }
    let writer = match writes {
        true => console.writer().map_err(|error| {
            Status::internal(format!("the console of {}: {error}", attached.instance))
        })?,
        false => None,
    };
    let (outbox, answers) = mpsc::channel(OUTBOX);
    let ready = proto::AttachReady {
        instance: attached.instance.to_string(),
        pid: attached.pid,
        tty: console.is_terminal(),
        input: writer.is_some(),
    };
    // The channel is new: there is room.
    let _ = outbox.try_send(Ok(answer(attach_response::Message::Ready(ready))));
    let input = Input {
        console: console.clone(),
        writer,
        writes,
    };
    tokio::spawn(session(
        attached,
        outbox,
        incoming,
        input,
        supervisor.clone(),
    ));
    Ok(Box::pin(ReceiverStream::new(answers)))
}

/// The first request, which must be `open`.
async fn opening(
    incoming: &mut Streaming<proto::AttachRequest>,
) -> Result<proto::AttachOpen, Status> {
    let first = tokio::time::timeout(OPEN_TIMEOUT, incoming.message())
        .await
        .map_err(|_| Status::deadline_exceeded("no `open` request came in time"))??;
    match first.and_then(|request| request.message) {
        Some(attach_request::Message::Open(open)) => Ok(open),
        _ => Err(Status::invalid_argument(
            "the first request of Attach must be `open`",
        )),
    }
}

/// A window size from the wire; `None` for one without rows or columns.
fn window_size(size: proto::WindowSize) -> Option<WindowSize> {
    let cells = |count: u32| u16::try_from(count).unwrap_or(u16::MAX);
    (size.rows > 0 && size.columns > 0).then(|| WindowSize {
        rows: cells(size.rows),
        columns: cells(size.columns),
    })
}

fn answer(message: attach_response::Message) -> proto::AttachResponse {
    proto::AttachResponse {
        message: Some(message),
    }
}

fn output(kind: StreamKind, data: Vec<u8>, missed_bytes: u64) -> proto::AttachResponse {
    let stream = match kind {
        StreamKind::Stdout => proto::Stream::Stdout,
        StreamKind::Stderr => proto::Stream::Stderr,
    };
    answer(attach_response::Message::Output(proto::AttachOutput {
        data,
        stream: stream.into(),
        missed_bytes,
    }))
}

/// The last answer: how the process ended (`None`: the supervisor is gone without saying).
fn ended(ending: Option<Ending>) -> proto::AttachResponse {
    let message = match ending {
        Some(ending) => proto::AttachEnded {
            exit_code: ending.exit.code(),
            signal: ending.exit.signal(),
            description: ending.exit.describe(),
            daemon_stopping: ending.daemon_stopping,
        },
        None => proto::AttachEnded {
            exit_code: None,
            signal: None,
            description: ExitInfo::Unknown.describe(),
            daemon_stopping: true,
        },
    };
    answer(attach_response::Message::Ended(message))
}

/// What a client may do to the console.
struct Input {
    console: std::sync::Arc<Console>,
    /// Where its input goes; `None`: it is read-only, or the program takes no input.
    writer: Option<Writer>,
    /// Not read-only: its window sizes count.
    writes: bool,
}

/// One piece of a feed: its stream and the chunk, or how many pieces it skipped.
type Piece = (
    StreamKind,
    Result<crate::output::Chunk, BroadcastStreamRecvError>,
);

/// Sends a terminal's replay, then every feed's output as it comes, then how the process
/// ended; meanwhile a task of its own forwards the client's input.
async fn session(
    attached: Attached,
    outbox: mpsc::Sender<Result<proto::AttachResponse, Status>>,
    incoming: Streaming<proto::AttachRequest>,
    input: Input,
    supervisor: Handle,
) {
    let Attached { console, feeds, .. } = attached;
    let terminal = console.is_terminal();
    // Where each stream's feed stands: the offset of the next byte it should bring.
    let mut expected = Vec::new();
    let mut live = Vec::new();
    for (kind, screen) in feeds {
        if terminal && outbox.send(Ok(output(kind, screen.kept, 0))).await.is_err() {
            return;
        }
        expected.push((kind, screen.next_offset));
        live.push(
            BroadcastStream::new(screen.live)
                .map(move |piece| (kind, piece))
                .boxed(),
        );
    }
    let mut live = select_all(live);
    let forwarding = tokio::spawn(forward(incoming, input));
    let ending = console.ended();
    tokio::pin!(ending);
    let closed = supervisor.closed();
    tokio::pin!(closed);
    let last = loop {
        let piece = tokio::select! {
            piece = live.next() => piece,
            ending = &mut ending => {
                // Its last output is in the feeds already: it goes first.
                while let Some(Some(piece)) = live.next().now_or_never() {
                    if !send_piece(&outbox, &mut expected, piece).await {
                        break;
                    }
                }
                break ended(ending);
            }
            () = &mut closed => break ended(console.ending()),
            () = outbox.closed() => break ended(None),
        };
        let Some(piece) = piece else {
            // Every feed is gone (their captures with them): only the end is left to wait for.
            break ended((&mut ending).await);
        };
        if !send_piece(&outbox, &mut expected, piece).await {
            break ended(None);
        }
    };
    let _ = outbox.send(Ok(last)).await;
    forwarding.abort();
}

/// Sends one piece of output, with what this client missed before it; `false` once the client
/// is gone.
async fn send_piece(
    outbox: &mpsc::Sender<Result<proto::AttachResponse, Status>>,
    expected: &mut [(StreamKind, u64)],
    (kind, piece): Piece,
) -> bool {
    // A lag is told by the next chunk's offset.
    let Ok(chunk) = piece else {
        return true;
    };
    let Some((_, next)) = expected.iter_mut().find(|(stream, _)| *stream == kind) else {
        return true;
    };
    let missed = chunk.offset.saturating_sub(*next);
    *next = chunk.offset + chunk.data.len() as u64;
    outbox
        .send(Ok(output(kind, chunk.data.to_vec(), missed)))
        .await
        .is_ok()
}

/// Forwards the client's input and window sizes to the console until the client stops
/// sending (or the session ends and aborts it).
async fn forward(mut incoming: Streaming<proto::AttachRequest>, input: Input) {
    let Input {
        console,
        mut writer,
        writes,
    } = input;
    while let Ok(Some(request)) = incoming.message().await {
        match request.message {
            Some(attach_request::Message::Input(bytes)) => {
                // The program closed its stdin, or its terminal is gone: no more input.
                if let Some(open) = &writer
                    && open.write_all(&bytes).await.is_err()
                {
                    writer = None;
                }
            }
            Some(attach_request::Message::Resize(size)) if writes => {
                if let Some(size) = window_size(size) {
                    let _ = console.resize(size);
                }
            }
            // A second `open`, a resize of a read-only client, an empty message: nothing.
            _ => {}
        }
    }
}
