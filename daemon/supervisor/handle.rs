//! How the rest of the daemon talks to the supervisor: the cheap, cloneable [`Handle`], the
//! [`Request`]s it sends (each with a oneshot reply), and the errors a request can fail with.

use std::{path::PathBuf, sync::Arc};

use tokio::sync::{mpsc, oneshot};

use super::{
    event::{Actor, Watch},
    view::{Attached, InstanceResult, InstanceView, ReloadSummary, SignalTo, Wait},
};
use crate::{
    config::{Config, ConfigError},
    output::{Capture, StreamKind},
};

/// What a request can fail with. The gRPC layer maps each to a status code in one place.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error("no such program or instance: {}", names.join(", "))]
    UnknownNames { names: Vec<String> },
    #[error(transparent)]
    ConfigRejected(#[from] ConfigError),
    #[error("taskmasterd is shutting down")]
    ShuttingDown,
    #[error("the {stream} of {name} is not captured (it is discarded)")]
    NotCaptured { name: String, stream: &'static str },
    #[error("{name} has {count} instances: name one ({name}:0, ...)")]
    NotOneInstance { name: String, count: usize },
    #[error("{name} is not running ({state}): there is no process to attach to")]
    NotRunning { name: String, state: &'static str },
}

pub(super) type Reply<T> = oneshot::Sender<Result<T, SupervisorError>>;

/// The views a Status request answers with, in status order, as the supervisor's task makes
/// them.
pub(super) type Views<'a> = &'a mut dyn Iterator<Item = InstanceView>;

/// Takes the answer of a Status request on the supervisor's task: the caller's conversion is
/// applied to each view as it is made, so that a Status of thousands of instances is built in
/// one pass, with no list of views in between.
pub(super) type StatusCollector = Box<dyn FnOnce(Result<Views<'_>, SupervisorError>) + Send>;

/// A request to the supervisor. Each has exactly one handler, reached from the flat `match` in
/// the supervisor's run loop.
pub(super) enum Request {
    Status {
        names: Vec<String>,
        collect: StatusCollector,
    },
    Start {
        names: Vec<String>,
        wait: Wait,
        by: Actor,
        reply: Reply<Vec<InstanceResult>>,
    },
    Stop {
        names: Vec<String>,
        wait: Wait,
        by: Actor,
        reply: Reply<Vec<InstanceResult>>,
    },
    Restart {
        names: Vec<String>,
        wait: Wait,
        by: Actor,
        reply: Reply<Vec<InstanceResult>>,
    },
    /// A config read and checked off the supervisor's task (by [`read_configs`]), to apply.
    Reload {
        /// Boxed: a config is large beside every other request.
        config: Box<Result<Config, ConfigError>>,
        by: Actor,
        reply: Reply<ReloadSummary>,
    },
    Shutdown {
        by: Actor,
        reply: oneshot::Sender<()>,
    },
    WatchEvents {
        names: Vec<String>,
        since: Option<u64>,
        run: Option<u64>,
        reply: Reply<Watch>,
    },
    Tail {
        name: String,
        stream: StreamKind,
        reply: Reply<Arc<Capture>>,
    },
    Reopen {
        by: Actor,
        reply: Reply<Vec<String>>,
    },
    /// A client attaches to the console of one instance's live process.
    Attach {
        name: String,
        reply: Reply<Attached>,
    },
    Clear {
        names: Vec<String>,
        by: Actor,
        reply: Reply<Vec<String>>,
    },
    Signal {
        names: Vec<String>,
        signal: nix::sys::signal::Signal,
        to: SignalTo,
        by: Actor,
        reply: Reply<Vec<InstanceResult>>,
    },
}

impl Request {
    /// Who asks, for the requests that change something.
    pub(super) fn actor(&self) -> Option<Actor> {
        match self {
            Request::Start { by, .. }
            | Request::Stop { by, .. }
            | Request::Restart { by, .. }
            | Request::Reload { by, .. }
            | Request::Shutdown { by, .. }
            | Request::Reopen { by, .. }
            | Request::Clear { by, .. }
            | Request::Signal { by, .. } => Some(by.clone()),
            Request::Status { .. }
            | Request::WatchEvents { .. }
            | Request::Tail { .. }
            | Request::Attach { .. } => None,
        }
    }
}

/// A cheap, cloneable way to talk to the supervisor.
#[derive(Clone)]
pub struct Handle {
    /// The supervisor's inbox; closed once it has ended.
    pub(super) requests: mpsc::Sender<Request>,
    /// The file `reload` reads again.
    pub(super) config_path: Arc<PathBuf>,
    /// The event log, for MainTail.
    pub(super) event_log: Option<Arc<Capture>>,
    /// The journal's run.
    pub(super) run: u64,
    /// Reloads asked for, to [`read_configs`].
    pub(super) reloads: mpsc::Sender<ReloadAsk>,
    /// How processes are kept track of ([`super::os::Os::containment`]).
    pub(super) containment: Arc<str>,
}

/// A reload asked for: who asks, and where the answer goes.
pub(super) struct ReloadAsk {
    by: Actor,
    reply: Reply<ReloadSummary>,
}

/// Reads and checks the config at `path` for each reload asked on `asks`, on a blocking
/// thread, and hands each outcome to the supervisor in the order asked: an older read is
/// never applied after a newer one, and a huge or hostile file delays nobody but the reloads
/// behind it. Holds only a weak sender, so that the supervisor still ends once every handle is
/// gone; ends with the handles.
pub(super) async fn read_configs(
    path: Arc<PathBuf>,
    mut asks: mpsc::Receiver<ReloadAsk>,
    supervisor: mpsc::WeakSender<Request>,
) {
    while let Some(ReloadAsk { by, reply }) = asks.recv().await {
        let path = path.clone();
        let config = match tokio::task::spawn_blocking(move || crate::config::load(&path)).await {
            Ok(config) => config,
            // The reader panicked: nothing was read, and nothing may change.
            Err(error) => {
                tracing::error!("reading the config failed: {error}");
                let _ = reply.send(Err(SupervisorError::ShuttingDown));
                continue;
            }
        };
        let Some(supervisor) = supervisor.upgrade() else {
            let _ = reply.send(Err(SupervisorError::ShuttingDown));
            return;
        };
        let request = Request::Reload {
            config: Box::new(config),
            by,
            reply,
        };
        if let Err(mpsc::error::SendError(Request::Reload { reply, .. })) =
            supervisor.send(request).await
        {
            let _ = reply.send(Err(SupervisorError::ShuttingDown));
        }
    }
}

impl Handle {
    /// The instances `names` designate (all for none), each as `convert` makes it of its view.
    pub async fn status<T: Send + 'static>(
        &self,
        names: Vec<String>,
        convert: fn(InstanceView) -> T,
    ) -> Result<Vec<T>, SupervisorError> {
        self.ask(|reply| Request::Status {
            names,
            collect: Box::new(move |views: Result<Views<'_>, SupervisorError>| {
                let _ = reply.send(views.map(|views| {
                    // One allocation: the views are as many as the names resolved to.
                    let mut converted = Vec::with_capacity(views.size_hint().1.unwrap_or(0));
                    converted.extend(views.map(convert));
                    converted
                }));
            }),
        })
        .await
    }

    /// Starts the instances `names` designate, on behalf of `by`.
    pub async fn start(
        &self,
        names: Vec<String>,
        wait: Wait,
        by: Actor,
    ) -> Result<Vec<InstanceResult>, SupervisorError> {
        self.ask(|reply| Request::Start {
            names,
            wait,
            by,
            reply,
        })
        .await
    }

    /// Stops the instances `names` designate, on behalf of `by`.
    pub async fn stop(
        &self,
        names: Vec<String>,
        wait: Wait,
        by: Actor,
    ) -> Result<Vec<InstanceResult>, SupervisorError> {
        self.ask(|reply| Request::Stop {
            names,
            wait,
            by,
            reply,
        })
        .await
    }

    /// Restarts the instances `names` designate, on behalf of `by`.
    pub async fn restart(
        &self,
        names: Vec<String>,
        wait: Wait,
        by: Actor,
    ) -> Result<Vec<InstanceResult>, SupervisorError> {
        self.ask(|reply| Request::Restart {
            names,
            wait,
            by,
            reply,
        })
        .await
    }

    /// Reads the config file again and applies the difference, or rejects it whole. The file
    /// is read and checked by [`read_configs`], never on the supervisor's task.
    pub async fn reload(&self, by: Actor) -> Result<ReloadSummary, SupervisorError> {
        let (reply, answer) = oneshot::channel();
        self.reloads
            .send(ReloadAsk { by, reply })
            .await
            .map_err(|_| SupervisorError::ShuttingDown)?;
        answer.await.map_err(|_| SupervisorError::ShuttingDown)?
    }

    /// Asks for a reload without waiting for it (for SIGHUP: the signal loop must stay free
    /// for SIGTERM). When the queue of reloads is full, this one is not needed: a reload still
    /// to come reads the file after now.
    pub fn reload_soon(&self, by: Actor) {
        let (reply, _) = oneshot::channel();
        let _ = self.reloads.try_send(ReloadAsk { by, reply });
    }

    /// Stops every program on behalf of `by`; returns once all processes are reaped.
    pub async fn shutdown(&self, by: Actor) {
        let (reply, done) = oneshot::channel();
        if self
            .requests
            .send(Request::Shutdown { by, reply })
            .await
            .is_ok()
        {
            let _ = done.await;
        }
    }

    /// Events about `names` (all for none): with `since`, the kept ones after that sequence
    /// number of run `run` (this daemon's when `None`) first.
    pub async fn watch_events(
        &self,
        names: Vec<String>,
        since: Option<u64>,
        run: Option<u64>,
    ) -> Result<Watch, SupervisorError> {
        self.ask(|reply| Request::WatchEvents {
            names,
            since,
            run,
            reply,
        })
        .await
    }

    /// How the daemon keeps track of each instance's processes: "cgroup v2 at ...", or why by
    /// process group only.
    pub fn containment(&self) -> &str {
        &self.containment
    }

    /// This daemon's run: the id every event it publishes carries.
    pub fn run(&self) -> u64 {
        self.run
    }

    pub fn config_path(&self) -> &std::path::Path {
        &self.config_path
    }

    /// The capture of stream `stream` of the one instance `name`.
    pub async fn tail(
        &self,
        name: String,
        stream: StreamKind,
    ) -> Result<Arc<Capture>, SupervisorError> {
        self.ask(|reply| Request::Tail {
            name,
            stream,
            reply,
        })
        .await
    }

    /// The console of the live process of the one instance `name`, and what a client that
    /// attaches to it is shown.
    pub async fn attach(&self, name: String) -> Result<Attached, SupervisorError> {
        self.ask(|reply| Request::Attach { name, reply }).await
    }

    /// The event log, when the daemon writes one.
    pub fn event_log(&self) -> Option<Arc<Capture>> {
        self.event_log.clone()
    }

    /// Reopens every output file on behalf of `by`; the errors.
    pub async fn reopen(&self, by: Actor) -> Result<Vec<String>, SupervisorError> {
        self.ask(|reply| Request::Reopen { by, reply }).await
    }

    /// Empties the output of the instances `names` designate on behalf of `by`; their names.
    pub async fn clear(
        &self,
        names: Vec<String>,
        by: Actor,
    ) -> Result<Vec<String>, SupervisorError> {
        self.ask(|reply| Request::Clear { names, by, reply }).await
    }

    /// Sends `signal` to each running instance `names` designate (to its process group, or
    /// its leader alone), on behalf of `by`: a result per instance.
    pub async fn signal(
        &self,
        names: Vec<String>,
        signal: nix::sys::signal::Signal,
        to: SignalTo,
        by: Actor,
    ) -> Result<Vec<InstanceResult>, SupervisorError> {
        self.ask(|reply| Request::Signal {
            names,
            signal,
            to,
            by,
            reply,
        })
        .await
    }

    /// Resolves once the supervisor has ended (after a shutdown).
    pub async fn closed(&self) {
        self.requests.closed().await
    }

    async fn ask<T>(
        &self,
        request: impl FnOnce(Reply<T>) -> Request,
    ) -> Result<T, SupervisorError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(request(reply))
            .await
            .map_err(|_| SupervisorError::ShuttingDown)?;
        answer.await.map_err(|_| SupervisorError::ShuttingDown)?
    }
}
