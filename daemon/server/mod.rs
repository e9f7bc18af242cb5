//! The gRPC service: one thin method per RPC that converts between wire and supervisor types
//! (through [`wire`]), and the one place where supervisor errors become `tonic::Status`.

pub mod wire;

use std::{pin::Pin, sync::Arc, time::SystemTime};

use tokio_stream::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::{
    proto::{self, taskmaster_server::Taskmaster},
    supervisor::{Handle, SupervisorError, Wait, Watch},
};

/// Serves the Taskmaster API with a handle to the supervisor.
#[derive(Clone)]
pub struct TaskmasterService {
    supervisor: Handle,
    /// Cancelled by the Shutdown RPC; the daemon's run loop then stops everything.
    shutdown_requested: CancellationToken,
    daemon: Arc<proto::DaemonInfo>,
}

impl TaskmasterService {
    pub fn new(supervisor: Handle, shutdown_requested: CancellationToken) -> Self {
        let daemon = proto::DaemonInfo {
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            config_path: supervisor.config_path().display().to_string(),
            started_at: Some(SystemTime::now().into()),
        };
        TaskmasterService {
            supervisor,
            shutdown_requested,
            daemon: Arc::new(daemon),
        }
    }
}

fn to_status(error: SupervisorError) -> Status {
    match &error {
        SupervisorError::UnknownNames { .. } => Status::not_found(error.to_string()),
        SupervisorError::ConfigRejected(_) => Status::invalid_argument(error.to_string()),
        SupervisorError::ShuttingDown => Status::unavailable(error.to_string()),
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<proto::Event, Status>> + Send>>;
type OutputStream = Pin<Box<dyn Stream<Item = Result<proto::OutputChunk, Status>> + Send>>;

#[tonic::async_trait]
impl Taskmaster for TaskmasterService {
    async fn status(
        &self,
        request: Request<proto::StatusRequest>,
    ) -> Result<Response<proto::StatusResponse>, Status> {
        let instances = self
            .supervisor
            .status(request.into_inner().names, wire::instance_status)
            .await
            .map_err(to_status)?;
        Ok(Response::new(proto::StatusResponse {
            instances,
            daemon: Some((*self.daemon).clone()),
        }))
    }

    async fn start(
        &self,
        request: Request<proto::StartRequest>,
    ) -> Result<Response<proto::ActionResponse>, Status> {
        let request = request.into_inner();
        let answer = self
            .supervisor
            .start(request.names, wait(request.no_wait))
            .await;
        answer
            .map(|results| Response::new(wire::action_response(results)))
            .map_err(to_status)
    }

    async fn stop(
        &self,
        request: Request<proto::StopRequest>,
    ) -> Result<Response<proto::ActionResponse>, Status> {
        let request = request.into_inner();
        let answer = self
            .supervisor
            .stop(request.names, wait(request.no_wait))
            .await;
        answer
            .map(|results| Response::new(wire::action_response(results)))
            .map_err(to_status)
    }

    async fn restart(
        &self,
        request: Request<proto::RestartRequest>,
    ) -> Result<Response<proto::ActionResponse>, Status> {
        let request = request.into_inner();
        let answer = self
            .supervisor
            .restart(request.names, wait(request.no_wait))
            .await;
        answer
            .map(|results| Response::new(wire::action_response(results)))
            .map_err(to_status)
    }

    async fn reload(
        &self,
        _request: Request<proto::ReloadRequest>,
    ) -> Result<Response<proto::ReloadResponse>, Status> {
        let answer = self.supervisor.reload().await;
        answer
            .map(|summary| Response::new(wire::reload_response(summary)))
            .map_err(to_status)
    }

    async fn shutdown(
        &self,
        _request: Request<proto::ShutdownRequest>,
    ) -> Result<Response<proto::ShutdownResponse>, Status> {
        self.shutdown_requested.cancel();
        Ok(Response::new(proto::ShutdownResponse {}))
    }

    type TailStream = OutputStream;

    async fn tail(
        &self,
        _request: Request<proto::TailRequest>,
    ) -> Result<Response<Self::TailStream>, Status> {
        Err(Status::unimplemented("Tail is being built"))
    }

    type MainTailStream = OutputStream;

    async fn main_tail(
        &self,
        _request: Request<proto::MainTailRequest>,
    ) -> Result<Response<Self::MainTailStream>, Status> {
        Err(Status::unimplemented("MainTail is being built"))
    }

    async fn reopen(
        &self,
        _request: Request<proto::ReopenRequest>,
    ) -> Result<Response<proto::ReopenResponse>, Status> {
        Err(Status::unimplemented("Reopen is being built"))
    }

    async fn clear(
        &self,
        _request: Request<proto::ClearRequest>,
    ) -> Result<Response<proto::ClearResponse>, Status> {
        Err(Status::unimplemented("Clear is being built"))
    }

    type WatchEventsStream = EventStream;

    async fn watch_events(
        &self,
        request: Request<proto::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        let request = request.into_inner();
        let watch = self
            .supervisor
            .watch_events(request.names, request.since)
            .await
            .map_err(to_status)?;
        let stream = event_stream(watch);
        Ok(Response::new(Box::pin(stream)))
    }
}

/// The wire's `no_wait` flag as the supervisor's [`Wait`].
fn wait(no_wait: bool) -> Wait {
    if no_wait { Wait::No } else { Wait::ForOutcome }
}

/// A watcher's stream of wire events; it ends with the supervisor (see [`Watch::into_stream`]).
fn event_stream(watch: Watch) -> EventStream {
    Box::pin(
        watch
            .into_stream()
            .map(|delivery| Ok(wire::delivery(delivery))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::EventKind;
    use crate::supervisor::{
        EventFilter,
        event::{self, Journal, Record},
    };

    fn instance_event(instance: &str) -> Record {
        Record {
            instance: instance.into(),
            ..Record::new(event::EventKind::Spawned)
        }
    }

    #[tokio::test]
    async fn a_watcher_that_falls_behind_is_told_how_many_events_it_missed() {
        let mut journal = Journal::default();
        let watch = Watch {
            subscription: journal.subscribe(None),
            filter: EventFilter::default(),
        };
        let mut stream = event_stream(watch);
        // Far more than a watcher may have pending; publishing never waits for it.
        let published = 10_000u64;
        for _ in 0..published {
            journal.publish(instance_event("web"));
        }
        let first = stream.next().await.unwrap().unwrap();
        assert_eq!(first.kind(), EventKind::Lagged);
        let next = stream.next().await.unwrap().unwrap();
        // Nothing is lost silently: what was missed plus what follows is everything.
        assert_eq!(next.seq, first.missed + 1);
        let mut received = 1;
        let mut last = next.seq;
        while last < published {
            let event = stream.next().await.unwrap().unwrap();
            assert_eq!(event.seq, last + 1);
            last = event.seq;
            received += 1;
        }
        assert_eq!(first.missed + received, published);
    }

    #[tokio::test]
    async fn a_watcher_gets_what_its_filter_admits_and_daemon_events_until_the_end() {
        let mut journal = Journal::default();
        journal.publish(instance_event("web"));
        journal.publish(instance_event("db"));
        journal.publish(Record::daemon(event::EventKind::ConfigReloaded, ""));
        let watch = Watch {
            subscription: journal.subscribe(Some(0)),
            filter: EventFilter::for_names(["db".to_string()], []),
        };
        let mut stream = event_stream(watch);
        let kinds: Vec<(String, EventKind)> = vec![
            stream.next().await.unwrap().unwrap(),
            stream.next().await.unwrap().unwrap(),
        ]
        .into_iter()
        .map(|event| (event.instance.clone(), event.kind()))
        .collect();
        assert_eq!(
            kinds,
            vec![
                ("db".to_string(), EventKind::Spawned),
                (String::new(), EventKind::ConfigReloaded)
            ]
        );
        drop(journal);
        assert!(
            stream.next().await.is_none(),
            "the stream ends with the supervisor"
        );
    }
}
