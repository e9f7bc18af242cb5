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
            output.warn(&render::missed_notice(chunk.missed_bytes));
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
        output.warn(error);
    }
    Ok(Outcome::Failed)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use taskmaster::{
        endpoint::Target,
        proto::{
            OutputChunk,
            taskmaster_server::{Taskmaster, TaskmasterServer},
        },
    };
    use tokio_stream::wrappers::UnixListenerStream;
    use tonic::{Code, Request, Response, Status};

    use super::*;
    use crate::{exit::Exit, hosts::Host, render::Palette};

    type Chunks = tokio_stream::Iter<std::vec::IntoIter<Result<OutputChunk, Status>>>;

    /// Answers the output RPCs as the daemon will, and keeps what was asked.
    #[derive(Default)]
    struct Fake {
        tails: Mutex<Vec<proto::TailRequest>>,
        main_tails: Mutex<Vec<proto::MainTailRequest>>,
        /// What Reopen answers.
        reopen_errors: Vec<String>,
    }

    fn chunks(chunks: Vec<OutputChunk>) -> Response<Chunks> {
        Response::new(tokio_stream::iter(
            chunks.into_iter().map(Ok).collect::<Vec<_>>(),
        ))
    }

    fn unknown(name: &str) -> Status {
        Status::not_found(format!("no such program or instance: {name}"))
    }

    #[tonic::async_trait]
    impl Taskmaster for Fake {
        async fn status(
            &self,
            _: Request<proto::StatusRequest>,
        ) -> Result<Response<proto::StatusResponse>, Status> {
            Err(Status::unimplemented("fake"))
        }
        async fn start(
            &self,
            _: Request<proto::StartRequest>,
        ) -> Result<Response<proto::ActionResponse>, Status> {
            Err(Status::unimplemented("fake"))
        }
        async fn stop(
            &self,
            _: Request<proto::StopRequest>,
        ) -> Result<Response<proto::ActionResponse>, Status> {
            Err(Status::unimplemented("fake"))
        }
        async fn restart(
            &self,
            _: Request<proto::RestartRequest>,
        ) -> Result<Response<proto::ActionResponse>, Status> {
            Err(Status::unimplemented("fake"))
        }
        async fn reload(
            &self,
            _: Request<proto::ReloadRequest>,
        ) -> Result<Response<proto::ReloadResponse>, Status> {
            Err(Status::unimplemented("fake"))
        }
        async fn shutdown(
            &self,
            _: Request<proto::ShutdownRequest>,
        ) -> Result<Response<proto::ShutdownResponse>, Status> {
            Err(Status::unimplemented("fake"))
        }
        type WatchEventsStream = tokio_stream::Empty<Result<proto::Event, Status>>;
        async fn watch_events(
            &self,
            _: Request<proto::WatchEventsRequest>,
        ) -> Result<Response<Self::WatchEventsStream>, Status> {
            Err(Status::unimplemented("fake"))
        }
        type AttachStream = tokio_stream::Empty<Result<proto::AttachResponse, Status>>;
        async fn attach(
            &self,
            _: Request<tonic::Streaming<proto::AttachRequest>>,
        ) -> Result<Response<Self::AttachStream>, Status> {
            Err(Status::unimplemented("fake"))
        }
        type TailStream = Chunks;
        /// `web` has output, with a gap before the second chunk; the stdout of `quiet` is
        /// discarded.
        async fn tail(
            &self,
            request: Request<proto::TailRequest>,
        ) -> Result<Response<Chunks>, Status> {
            let request = request.into_inner();
            self.tails.lock().unwrap().push(request.clone());
            match request.name.as_str() {
                "web" => Ok(chunks(vec![
                    OutputChunk {
                        data: b"one\n".to_vec(),
                        missed_bytes: 0,
                    },
                    OutputChunk {
                        data: b"\xff\xfe raw\n".to_vec(),
                        missed_bytes: 4096,
                    },
                ])),
                "quiet" => Err(Status::failed_precondition(
                    "the stdout of quiet is discarded",
                )),
                name => Err(unknown(name)),
            }
        }
        type MainTailStream = Chunks;
        async fn main_tail(
            &self,
            request: Request<proto::MainTailRequest>,
        ) -> Result<Response<Chunks>, Status> {
            self.main_tails.lock().unwrap().push(request.into_inner());
            Ok(chunks(vec![OutputChunk {
                data: b"daemon started\n".to_vec(),
                missed_bytes: 0,
            }]))
        }
        async fn reopen(
            &self,
            _: Request<proto::ReopenRequest>,
        ) -> Result<Response<proto::ReopenResponse>, Status> {
            Ok(Response::new(proto::ReopenResponse {
                errors: self.reopen_errors.clone(),
            }))
        }
        async fn clear(
            &self,
            request: Request<proto::ClearRequest>,
        ) -> Result<Response<proto::ClearResponse>, Status> {
            let names = request.into_inner().names;
            match names.iter().find(|name| !name.starts_with("web")) {
                Some(name) => Err(unknown(name)),
                None => Ok(Response::new(proto::ClearResponse { cleared: names })),
            }
        }
        async fn signal(
            &self,
            _: Request<proto::SignalRequest>,
        ) -> Result<Response<proto::ActionResponse>, Status> {
            Err(Status::unimplemented("fake"))
        }
        async fn alerts_test(
            &self,
            _: Request<proto::AlertsTestRequest>,
        ) -> Result<Response<proto::AlertsTestResponse>, Status> {
            Err(Status::unimplemented("fake"))
        }
    }

    /// `fake` served on a socket of `dir`, and a connection to it.
    fn serve(fake: Arc<Fake>, dir: &tempfile::TempDir) -> Connection {
        let socket = dir.path().join("fake.sock");
        let listener = tokio::net::UnixListener::bind(&socket).unwrap();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TaskmasterServer::from_arc(fake))
                .serve_with_incoming(UnixListenerStream::new(listener)),
        );
        Connection::new(Host::plain(Target::Unix(socket)))
    }

    /// Runs `line`: what it wrote, and how it ended.
    async fn outcome_of(
        connection: &mut Connection,
        line: &str,
    ) -> (Vec<u8>, Result<Outcome, CtlError>) {
        let command = crate::command::parse(&shell_words::split(line).unwrap()).unwrap();
        let mut written = Vec::new();
        let mut output = Output {
            out: &mut written,
            palette: Palette::PLAIN,
            host: None,
        };
        let outcome = crate::command::run(&command, connection, &mut output).await;
        (written, outcome)
    }

    /// Runs `line`: what it wrote, and its exit status.
    async fn run_on(connection: &mut Connection, line: &str) -> (Vec<u8>, Exit) {
        let (written, outcome) = outcome_of(connection, line).await;
        (
            written,
            outcome.map_or_else(|error| error.exit(), Outcome::exit),
        )
    }

    #[tokio::test]
    async fn tail_writes_the_raw_bytes_and_asks_what_was_said() {
        let dir = tempfile::tempdir().unwrap();
        let fake = Arc::new(Fake::default());
        let mut connection = serve(fake.clone(), &dir);
        let (written, exit) = run_on(&mut connection, "tail -f -n 5 web stderr").await;
        // Not re-encoded: the invalid UTF-8 stays as it was.
        assert_eq!(
            (written, exit),
            (b"one\n\xff\xfe raw\n".to_vec(), Exit::Success)
        );
        run_on(&mut connection, "tail --bytes 100 web").await;
        run_on(&mut connection, "tail -n 0 web").await;
        let tails = fake.tails.lock().unwrap().clone();
        let asked: Vec<_> = tails
            .iter()
            .map(|tail| {
                (
                    tail.name.as_str(),
                    tail.stream(),
                    tail.lines,
                    tail.bytes,
                    tail.follow,
                )
            })
            .collect();
        assert_eq!(
            asked,
            [
                ("web", proto::Stream::Stderr, 5, None, true),
                ("web", proto::Stream::Stdout, 20, Some(100), false),
                ("web", proto::Stream::Stdout, 0, Some(0), false),
            ]
        );
    }

    #[tokio::test]
    async fn tail_refusals_fail_the_command() {
        let dir = tempfile::tempdir().unwrap();
        let mut connection = serve(Arc::default(), &dir);
        for (line, code) in [
            ("tail nope", Code::NotFound),
            ("tail quiet", Code::FailedPrecondition),
        ] {
            let (written, outcome) = outcome_of(&mut connection, line).await;
            match outcome {
                Err(CtlError::Refused(status)) => assert_eq!(status.code(), code, "{line}"),
                other => panic!("{line}: {other:?}"),
            }
            assert!(written.is_empty());
        }
    }

    #[tokio::test]
    async fn maintail_clear_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let fake = Arc::new(Fake::default());
        let mut connection = serve(fake.clone(), &dir);
        assert_eq!(
            run_on(&mut connection, "maintail -f --bytes 9").await,
            (b"daemon started\n".to_vec(), Exit::Success)
        );
        let main_tail = fake.main_tails.lock().unwrap()[0];
        assert_eq!(
            (main_tail.lines, main_tail.bytes, main_tail.follow),
            (20, Some(9), true)
        );
        assert_eq!(
            run_on(&mut connection, "clear web:0 web:1").await,
            (b"web:0: cleared\nweb:1: cleared\n".to_vec(), Exit::Success)
        );
        assert_eq!(
            run_on(&mut connection, "clear web nope").await,
            (Vec::new(), Exit::Failed)
        );
        assert_eq!(
            run_on(&mut connection, "reopen").await,
            (b"reopened\n".to_vec(), Exit::Success)
        );
        let dir = tempfile::tempdir().unwrap();
        let failing = Arc::new(Fake {
            reopen_errors: vec!["/var/log/web.log: permission denied".into()],
            ..Fake::default()
        });
        let mut connection = serve(failing, &dir);
        assert_eq!(
            run_on(&mut connection, "reopen").await,
            (Vec::new(), Exit::Failed)
        );
    }
}
