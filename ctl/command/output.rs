//! The commands about program output: `tail` and `maintail` (streams of output chunks),
//! `clear` and `reopen`, each one RPC of the same name (`maintail` is `MainTail`).

use taskmaster::proto;

use super::{Output, TailOptions, stream};
use crate::{
    connection::Connection,
    exit::{CtlError, Outcome},
    render,
};

/// The last output of one instance's stream, then with `-f` new output until Ctrl-C or the
/// daemon ends the stream. An unknown instance (NOT_FOUND) and a stream that is not captured
/// (FAILED_PRECONDITION) are refusals, as the daemon words them.
pub async fn tail(
    connection: &mut Connection,
    output: &mut Output<'_>,
    name: &str,
    stream: proto::Stream,
    tail: TailOptions,
) -> Result<Outcome, CtlError> {
    let mut client = connection.client().await?;
    let (lines, bytes) = tail.request();
    let request = proto::TailRequest {
        name: name.to_string(),
        stream: stream.into(),
        lines,
        bytes,
        follow: tail.follow,
    };
    let mut chunks = connection.answer(client.tail(request)).await?;
    print_chunks(connection, output, &mut chunks).await
}

/// The same for the daemon's event log.
pub async fn main_tail(
    connection: &mut Connection,
    output: &mut Output<'_>,
    tail: TailOptions,
) -> Result<Outcome, CtlError> {
    let mut client = connection.client().await?;
    let (lines, bytes) = tail.request();
    let request = proto::MainTailRequest {
        lines,
        bytes,
        follow: tail.follow,
    };
    let mut chunks = connection.answer(client.main_tail(request)).await?;
    print_chunks(connection, output, &mut chunks).await
}

/// Writes each chunk's bytes as they are, after a notice on stderr of what this follower
/// missed, if anything.
async fn print_chunks(
    connection: &mut Connection,
    output: &mut Output<'_>,
    chunks: &mut tonic::Streaming<proto::OutputChunk>,
) -> Result<Outcome, CtlError> {
    stream::each_message(connection, chunks, |chunk| {
        if chunk.missed_bytes > 0 {
            eprintln!("{}", render::missed_notice(chunk.missed_bytes));
        }
        output.write_bytes(&chunk.data)
    })
    .await?;
    Ok(Outcome::Success)
}

pub async fn clear(
    connection: &mut Connection,
    output: &mut Output<'_>,
    names: &[String],
) -> Result<Outcome, CtlError> {
    let mut client = connection.client().await?;
    let request = proto::ClearRequest {
        names: names.to_vec(),
    };
    let response = connection.answer(client.clear(request)).await?;
    output.write(&render::cleared(&response))?;
    Ok(Outcome::Success)
}

/// Each file that could not be reopened is reported on stderr and fails the command.
pub async fn reopen(
    connection: &mut Connection,
    output: &mut Output<'_>,
) -> Result<Outcome, CtlError> {
    let mut client = connection.client().await?;
    let response = connection
        .answer(client.reopen(proto::ReopenRequest {}))
        .await?;
    if response.errors.is_empty() {
        output.write("reopened\n")?;
        return Ok(Outcome::Success);
    }
    for error in &response.errors {
        eprintln!("{error}");
    }
    Ok(Outcome::Failed)
}
