//! The gRPC service: one thin method per RPC that converts between wire and supervisor types
//! (through [`wire`]), and the one place where supervisor errors become `tonic::Status`. In
//! front of it, [`authorize`] decides who may call what, on the connections [`connection`]
//! accepts, within the [`limits`] a request must keep.

mod attach;
pub mod authorize;
pub mod connection;
pub mod limits;
mod tail;
pub mod wire;

use std::{pin::Pin, sync::Arc, time::SystemTime};

use tokio::sync::mpsc;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use crate::{
    access::Caller,
    alerts::{Alerts, AlertsError},
    output::{Capture, StreamKind},
    proto::{self, taskmaster_server::Taskmaster},
    supervisor::{Actor, Handle, SignalTo, SupervisorError, Wait, Watch},
};

/// Serves the Taskmaster API with a handle to the supervisor.
#[derive(Clone)]
pub struct TaskmasterService {
    supervisor: Handle,
    /// The alert dispatcher, for AlertsTest.
    alerts: Alerts,
    /// Told by the Shutdown RPC who asked; the daemon's run loop then stops everything.
    shutdown_requested: mpsc::Sender<Actor>,
    daemon: Arc<proto::DaemonInfo>,
    /// Tail and MainTail: their turns to read files.
    tails: tail::Tails,
}

impl TaskmasterService {
    pub fn new(
        supervisor: Handle,
        alerts: Alerts,
        shutdown_requested: mpsc::Sender<Actor>,
    ) -> Self {
        let daemon = proto::DaemonInfo {
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            config_path: supervisor.config_path().display().to_string(),
            started_at: Some(SystemTime::now().into()),
            run: supervisor.run(),
            containment: supervisor.containment().to_string(),
        };
        TaskmasterService {
            supervisor,
            alerts,
            shutdown_requested,
            daemon: Arc::new(daemon),
            tails: tail::Tails::default(),
        }
    }
}

fn to_status(error: SupervisorError) -> Status {
    let message = match &error {
        SupervisorError::UnknownNames { names } => unknown_names(names),
        _ => bounded(error.to_string()),
    };
    match &error {
        SupervisorError::UnknownNames { .. } => Status::not_found(message),
        SupervisorError::ConfigRejected(_) => Status::invalid_argument(message),
        SupervisorError::ShuttingDown => Status::unavailable(message),
        SupervisorError::NotCaptured { .. } => Status::failed_precondition(message),
        SupervisorError::NotOneInstance { .. } => Status::invalid_argument(message),
        SupervisorError::NotRunning { .. } => Status::failed_precondition(message),
    }
}

fn alerts_status(error: AlertsError) -> Status {
    let message = bounded(error.to_string());
    match error {
        AlertsError::UnknownRule { .. } => Status::not_found(message),
        AlertsError::ShuttingDown => Status::unavailable(message),
    }
}

/// The most a status message may take on the wire, percent-encoded. It travels in a trailer,
/// and an HTTP/2 client drops its whole connection for a header list larger than it accepts
/// (16 KiB for hyper's clients): an error that listed every name of a large request, or every
/// problem of a large config, would break the call and every other call on that connection.
const MAX_MESSAGE: usize = 8 << 10;

/// How many bytes `text` takes in a `grpc-message` trailer: tonic percent-encodes controls,
/// non-ASCII bytes, space and `"#%<>`?{}`.
fn wire_len(text: &str) -> usize {
    text.bytes()
        .map(|byte| match byte {
            b' ' | b'"' | b'#' | b'%' | b'<' | b'>' | b'`' | b'?' | b'{' | b'}' => 3,
            byte if byte.is_ascii_graphic() => 1,
            _ => 3,
        })
        .sum()
}

/// "no such program or instance: ..." with as many of `names` as fit in [`MAX_MESSAGE`], and
/// how many more there are.
fn unknown_names(names: &[String]) -> String {
    let mut message = String::from("no such program or instance: ");
    // Room for ", and 10000 more".
    let budget = MAX_MESSAGE - 64;
    let mut used = wire_len(&message);
    for (shown, name) in names.iter().enumerate() {
        let separator = if shown == 0 { "" } else { ", " };
        let cost = wire_len(separator) + wire_len(name);
        if used + cost > budget {
            message.push_str(&format!(", and {} more", names.len() - shown));
            return message;
        }
        used += cost;
        message.push_str(separator);
        message.push_str(name);
    }
    message
}

/// `message` as it is when it fits in [`MAX_MESSAGE`]; else its first lines (the first cut
/// short if it alone is too long) and how many lines are left out.
fn bounded(message: String) -> String {
    if wire_len(&message) <= MAX_MESSAGE {
        return message;
    }
    let budget = MAX_MESSAGE - 64;
    let lines: Vec<&str> = message.lines().collect();
    let mut kept = String::new();
    let mut used = 0;
    for (index, line) in lines.iter().enumerate() {
        let cost = wire_len(line) + 3;
        if used + cost > budget {
            if index == 0 {
                for character in line.chars() {
                    let mut buffer = [0; 4];
                    used += wire_len(character.encode_utf8(&mut buffer));
                    if used > budget {
                        break;
                    }
                    kept.push(character);
                }
                kept.push('…');
                return kept;
            }
            kept.push_str(&format!("... and {} more lines", lines.len() - index));
            return kept;
        }
        used += cost;
        kept.push_str(line);
        kept.push('\n');
    }
    kept
}

/// Who makes `request`: the caller the authorization layer proved (it names every caller it
/// lets through).
fn actor<T>(request: &Request<T>) -> Actor {
    let caller = request.extensions().get::<Caller>();
    Actor::Caller(
        caller
            .map_or("unknown client", |caller| caller.name.as_str())
            .into(),
    )
}

type EventStream = Pin<Box<dyn Stream<Item = Result<proto::Event, Status>> + Send>>;
use tail::{OutputStream, Start};

#[tonic::async_trait]
impl Taskmaster for TaskmasterService {
    async fn status(
        &self,
        request: Request<proto::StatusRequest>,
    ) -> Result<Response<proto::StatusResponse>, Status> {
        let names = request.into_inner().names;
        limits::check_names(&names)?;
        let instances = self
            .supervisor
            .status(names, wire::instance_status)
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
        let by = actor(&request);
        let request = request.into_inner();
        limits::check_names(&request.names)?;
        let answer = self
            .supervisor
            .start(request.names, wait(request.no_wait), by)
            .await;
        answer
            .map(|results| Response::new(wire::action_response(results)))
            .map_err(to_status)
    }

    async fn stop(
        &self,
        request: Request<proto::StopRequest>,
    ) -> Result<Response<proto::ActionResponse>, Status> {
        let by = actor(&request);
        let request = request.into_inner();
        limits::check_names(&request.names)?;
        let answer = self
            .supervisor
            .stop(request.names, wait(request.no_wait), by)
            .await;
        answer
            .map(|results| Response::new(wire::action_response(results)))
            .map_err(to_status)
    }

    async fn restart(
        &self,
        request: Request<proto::RestartRequest>,
    ) -> Result<Response<proto::ActionResponse>, Status> {
        let by = actor(&request);
        let request = request.into_inner();
        limits::check_names(&request.names)?;
        let answer = self
            .supervisor
            .restart(request.names, wait(request.no_wait), by)
            .await;
        answer
            .map(|results| Response::new(wire::action_response(results)))
            .map_err(to_status)
    }

    async fn reload(
        &self,
        request: Request<proto::ReloadRequest>,
    ) -> Result<Response<proto::ReloadResponse>, Status> {
        let answer = self.supervisor.reload(actor(&request)).await;
        answer
            .map(|summary| Response::new(wire::reload_response(summary)))
            .map_err(to_status)
    }

    async fn shutdown(
        &self,
        request: Request<proto::ShutdownRequest>,
    ) -> Result<Response<proto::ShutdownResponse>, Status> {
        // One shutdown is enough: a second one while it is pending changes nothing.
        let _ = self.shutdown_requested.try_send(actor(&request));
        Ok(Response::new(proto::ShutdownResponse {}))
    }

    type TailStream = OutputStream;

    async fn tail(
        &self,
        request: Request<proto::TailRequest>,
    ) -> Result<Response<Self::TailStream>, Status> {
        let request = request.into_inner();
        limits::check_name(&request.name)?;
        let stream = match request.stream() {
            proto::Stream::Stdout => StreamKind::Stdout,
            proto::Stream::Stderr => StreamKind::Stderr,
        };
        let capture = self
            .supervisor
            .tail(request.name, stream)
            .await
            .map_err(to_status)?;
        let start = Start::of(request.lines, request.bytes);
        let stream = self.output_stream(capture, start, request.follow).await?;
        Ok(Response::new(stream))
    }

    type MainTailStream = OutputStream;

    async fn main_tail(
        &self,
        request: Request<proto::MainTailRequest>,
    ) -> Result<Response<Self::MainTailStream>, Status> {
        let request = request.into_inner();
        let capture = self
            .supervisor
            .event_log()
            .ok_or_else(|| Status::failed_precondition("this daemon writes no event log"))?;
        let start = Start::of(request.lines, request.bytes);
        let stream = self.output_stream(capture, start, request.follow).await?;
        Ok(Response::new(stream))
    }

    async fn reopen(
        &self,
        request: Request<proto::ReopenRequest>,
    ) -> Result<Response<proto::ReopenResponse>, Status> {
        let errors = self
            .supervisor
            .reopen(actor(&request))
            .await
            .map_err(to_status)?;
        Ok(Response::new(proto::ReopenResponse { errors }))
    }

    async fn clear(
        &self,
        request: Request<proto::ClearRequest>,
    ) -> Result<Response<proto::ClearResponse>, Status> {
        let by = actor(&request);
        let names = request.into_inner().names;
        limits::check_names(&names)?;
        let cleared = self.supervisor.clear(names, by).await.map_err(to_status)?;
        Ok(Response::new(proto::ClearResponse { cleared }))
    }

    async fn signal(
        &self,
        request: Request<proto::SignalRequest>,
    ) -> Result<Response<proto::ActionResponse>, Status> {
        let by = actor(&request);
        let request = request.into_inner();
        limits::check_names(&request.names)?;
        if request.names.is_empty() {
            let message = "name the programs or instances to signal (or all)";
            return Err(Status::invalid_argument(message));
        }
        let signal = limits::signal(&request.signal)?;
        let to = if request.leader {
            SignalTo::Leader
        } else {
            SignalTo::Group
        };
        let answer = self.supervisor.signal(request.names, signal, to, by).await;
        answer
            .map(|results| Response::new(wire::action_response(results)))
            .map_err(to_status)
    }

    async fn alerts_test(
        &self,
        request: Request<proto::AlertsTestRequest>,
    ) -> Result<Response<proto::AlertsTestResponse>, Status> {
        let by = actor(&request).to_string();
        let rule = request.into_inner().rule;
        limits::check_name(&rule)?;
        let report = self.alerts.test(rule, by).await.map_err(alerts_status)?;
        Ok(Response::new(wire::alerts_test_response(report)))
    }

    type AttachStream = attach::AttachStream;

    async fn attach(
        &self,
        request: Request<Streaming<proto::AttachRequest>>,
    ) -> Result<Response<Self::AttachStream>, Status> {
        let stream = attach::attach(&self.supervisor, request.into_inner()).await?;
        Ok(Response::new(stream))
    }

    type WatchEventsStream = EventStream;

    async fn watch_events(
        &self,
        request: Request<proto::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        let request = request.into_inner();
        limits::check_names(&request.names)?;
        let watch = self
            .supervisor
            .watch_events(request.names, request.since, request.run)
            .await
            .map_err(to_status)?;
        let stream = event_stream(watch);
        Ok(Response::new(Box::pin(stream)))
    }
}

impl TaskmasterService {
    /// The start of `capture`'s output as `start` says, then (with `follow`) what comes, until
    /// the client hangs up or the supervisor ends.
    async fn output_stream(
        &self,
        capture: Arc<Capture>,
        start: Start,
        follow: bool,
    ) -> Result<OutputStream, Status> {
        let supervisor = self.supervisor.clone();
        let ended = async move { supervisor.closed().await };
        self.tails.stream(capture, start, follow, ended).await
    }
}

/// The wire's `no_wait` flag as the supervisor's [`Wait`].
fn wait(no_wait: bool) -> Wait {
    if no_wait { Wait::No } else { Wait::ForOutcome }
}

/// A watcher's stream of wire events; it ends with the supervisor (see [`Watch::into_stream`]).
fn event_stream(watch: Watch) -> EventStream {
    let run = watch.run;
    Box::pin(
        watch
            .into_stream()
            .map(move |delivery| Ok(wire::delivery(delivery, run))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_message_fits_in_a_trailer_whatever_it_lists() {
        let names: Vec<String> = (0..4000).map(|n| format!("{n:0>255}")).collect();
        let message = unknown_names(&names);
        assert!(wire_len(&message) <= MAX_MESSAGE, "{}", message.len());
        // One separator after each name shown, the last before "and".
        let shown = message.matches(", ").count();
        assert!(
            message.ends_with(&format!(", and {} more", 4000 - shown)),
            "{message}"
        );
        // A few names are all named.
        let few = unknown_names(&["web".into(), "db:7".into()]);
        assert_eq!(few, "no such program or instance: web, db:7");
        // Many lines (a config's problems): whole lines, then how many are left out.
        let problems: Vec<String> = (0..1000)
            .map(|n| format!("taskmaster.yaml:{n}:5: programs.p{n}.numprocs: not a number"))
            .collect();
        let message = bounded(problems.join("\n"));
        assert!(wire_len(&message) <= MAX_MESSAGE);
        assert!(message.starts_with(&problems[0]), "{message}");
        assert!(message.ends_with(" more lines"), "{message}");
        // One line too long, of characters encoded thrice: cut at a character.
        let message = bounded("é".repeat(10_000));
        assert!(wire_len(&message) <= MAX_MESSAGE && message.ends_with('…'));
        // A short message is as it was.
        assert_eq!(
            bounded("taskmasterd is shutting down".into()),
            "taskmasterd is shutting down"
        );
    }
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
            subscription: journal.subscribe(None, None),
            filter: EventFilter::default(),
            run: journal.run(),
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
            subscription: journal.subscribe(Some(0), None),
            filter: EventFilter::for_names(["db".to_string()], []),
            run: journal.run(),
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
