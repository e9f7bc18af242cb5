//! Taskmaster: a process supervisor. This library is the daemon (`taskmasterd`) and the pieces
//! the control program (`taskctl`) shares with it. The binaries' own code lives beside it:
//! `daemon/bin/` (taskmasterd: flags, detaching, event log, process set-up) and `ctl/`.
//!
//! # Layout
//! - [`access`]: who calls the API ([`access::Caller`]), the role it holds, what each call
//!   needs, and the daemon's policy (from `daemon.operators`, `viewers`, `tokens`), which
//!   follows reloads ([`access::Gate`]).
//! - [`config`]: the YAML file: schema and defaults, finding the file, key positions, the
//!   checker that reports every error at once, value parsers, and the socket a file names.
//! - [`supervisor`]: the actor that owns every program and instance, split by responsibility
//!   (its own `# Layout` lists the parts): the pure lifecycle table in [`supervisor::state`],
//!   the pure reload plan in [`supervisor::plan`], the operating system behind
//!   [`supervisor::os::Os`], events in [`supervisor::event`]. It speaks domain types only.
//! - [`output`]: captured program output: a pipe per stream, one drainer thread, files with
//!   rotation, the end of stderr for crash forensics, followers for Tail; the event log too.
//! - [`server`]: the gRPC service, a thin layer over a [`supervisor::Handle`];
//!   [`server::wire`] is the one place where domain types become `proto` types;
//!   [`server::authorize`] the layer in front of every service that decides who may call what,
//!   on the connections [`server::connection`] accepts, within [`server::limits`].
//! - [`endpoint`]: socket paths, binding and connecting (with a client's token and TLS, and its
//!   TLS failures told apart), the one listen-address parser (shared with `taskctl` and the
//!   config).
//! - [`alerts`]: the `alerts:` rules at work: matching events, rate limits and digests, and
//!   the syslog, webhook and email sinks, on tasks of their own beside the supervisor.
//! - [`run`]: serves the API until shutdown; only `main` exits the process.

pub mod access;
pub mod alerts;
pub mod config;
pub mod endpoint;
pub mod output;
pub mod server;
pub mod supervisor;

/// The generated gRPC types and services of `proto/taskmaster.proto`.
pub mod proto {
    tonic::include_proto!("taskmaster.v1");

    /// The encoded file descriptor set, served by gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/taskmaster_descriptor.bin"));
}

use std::{future::Future, sync::Arc};

use nix::sys::signal::Signal;

use tokio::net::{TcpListener, UnixListener};
use tokio_stream::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;
use tonic::{service::Routes, transport::Server};

use proto::taskmaster_server::TaskmasterServer;

/// How long connections may stay open once the daemon has stopped every program.
const CLIENT_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// Where the daemon serves its API.
pub struct Listeners {
    pub unix: UnixListener,
    pub tcp: Option<TcpListener>,
    /// TLS on the TCP listener ([`endpoint::server_tls`]).
    pub tls: Option<tonic::transport::ServerTlsConfig>,
}

/// Why the daemon could not serve.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("gRPC reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("serving gRPC: {0}")]
    Serve(#[from] tonic::transport::Error),
    #[error("watching for child exits (SIGCHLD) or starting the output drainer: {0}")]
    ChildExits(std::io::Error),
}

/// What the daemon is told by signals, as streams: each item of `reload` reloads the config
/// (SIGHUP), each item of `reopen` reopens every output file (SIGUSR1).
pub struct Signals<R, O> {
    pub reload: R,
    pub reopen: O,
}

/// Supervises the programs of `config` (captured output as `output` says) and serves the API
/// on `listeners` until `shutdown` completes or a client asks for a Shutdown, following
/// `signals`. Returns once every program is stopped and every stream ended.
///
/// The supervisor reaps every child of the process, its own and any other (as PID 1 must): run
/// it in a process whose other children nobody else waits for.
pub async fn run(
    listeners: Listeners,
    config: config::Config,
    output: supervisor::OutputSettings,
    shutdown: impl Future<Output = supervisor::Actor>,
    signals: Signals<impl Stream<Item = ()> + Unpin, impl Stream<Item = ()> + Unpin>,
) -> Result<(), RunError> {
    let Signals {
        mut reload,
        mut reopen,
    } = signals;
    let config_daemon = config.daemon.clone();
    let tcp_address = listeners.tcp.as_ref().and_then(|tcp| tcp.local_addr().ok());
    let listening = access::Listening {
        tcp: tcp_address,
        client_certificates: listeners.tls.is_some()
            && (config_daemon.tls.as_ref()).is_some_and(|tls| tls.client_ca.is_some()),
    };
    // The policy follows every reload the supervisor applies.
    let gate = access::Gate::new(&config_daemon, listening);
    let policy = gate.subscribe();
    // The alert rules follow every reload too.
    let (alerts, alerts_inbox) = alerts::Alerts::new();
    let reload_alerts = alerts.clone();
    let daemon_reload = Box::new(move |config: &config::Config| {
        reload_alerts.reload(&config.alerts);
        gate.reload(&config.daemon)
    });
    let alert_settings = config.alerts.clone();
    // The socket names the daemon's cgroups: one daemon owns a socket at a time.
    let socket = listeners
        .unix
        .local_addr()
        .ok()
        .and_then(|address| address.as_pathname().map(std::path::Path::to_path_buf));
    let (supervisor, supervisor_task) =
        supervisor::start(config, output, socket.as_deref(), daemon_reload)
            .map_err(RunError::ChildExits)?;
    let alerts_task = alerts::start(alerts_inbox, &alert_settings, supervisor.clone());
    let (shutdown_requested, mut shutdown_asked) = tokio::sync::mpsc::channel(1);
    let closing = CancellationToken::new();
    let service = server::TaskmasterService::new(supervisor.clone(), alerts, shutdown_requested);
    let routes = routes(service).await?;
    let names = Arc::new(server::connection::UserNames::default());
    let authorize = server::authorize::Authorize::new(policy, names);
    let mut servers = Vec::new();
    let unix_incoming = server::connection::unix(listeners.unix);
    let unix_server = server_builder()
        .layer(authorize.clone())
        .add_routes(routes.clone())
        .serve_with_incoming_shutdown(unix_incoming, closing.clone().cancelled_owned());
    servers.push(tokio::spawn(unix_server));
    if let Some(tcp) = listeners.tcp {
        if !config_daemon.authenticates_tcp()
            && let Some(address) = tcp_address
        {
            tracing::warn!(
                "the TCP listener on {address} has no authentication: every user of this \
                 machine can control the daemon through it; add daemon.tokens to require a token"
            );
        }
        let limits = server::connection::TcpLimits {
            max_connections: (config_daemon.tcp_max_connections)
                .unwrap_or(server::limits::DEFAULT_TCP_MAX_CONNECTIONS)
                as usize,
            idle_timeout: (config_daemon.tcp_idle_timeout)
                .unwrap_or(server::limits::DEFAULT_TCP_IDLE_TIMEOUT),
        };
        // A live client answers each ping, so its connection is never silent for long (a late
        // answer has three quarters of the timeout to come); a dead one does not, and its
        // connection is closed once it has been silent for the idle timeout.
        let mut builder = server_builder()
            .http2_keepalive_interval(Some(limits.idle_timeout / 4))
            .http2_keepalive_timeout(Some(limits.idle_timeout));
        if let Some(tls) = listeners.tls {
            builder = builder.tls_config(tls)?;
        }
        let tcp_server = builder
            .layer(authorize)
            .add_routes(routes)
            .serve_with_incoming_shutdown(
                server::connection::tcp(tcp, limits),
                closing.clone().cancelled_owned(),
            );
        servers.push(tokio::spawn(tcp_server));
    }
    tokio::pin!(shutdown);
    let by = loop {
        tokio::select! {
            by = &mut shutdown => break by,
            Some(by) = shutdown_asked.recv() => break by,
            Some(()) = reload.next() => {
                // The outcome is published as an event and logged by the supervisor.
                supervisor.reload_soon(supervisor::Actor::Signal(Signal::SIGHUP));
            }
            Some(()) = reopen.next() => {
                let by = supervisor::Actor::Signal(Signal::SIGUSR1);
                for error in supervisor.reopen(by).await.unwrap_or_default() {
                    tracing::warn!("reopening {error}");
                }
            }
        }
    };
    supervisor.shutdown(by).await;
    // The supervisor's end closes every WatchEvents stream once it has delivered what was
    // published; then the servers stop.
    let _ = supervisor_task.await;
    // The last alerts (the daemon's stop) go out while clients hang up, within their own
    // grace: a sink that does not answer may not keep the daemon alive.
    let alerts_sent = tokio::spawn(tokio::time::timeout(alerts::FINAL_GRACE, alerts_task));
    closing.cancel();
    // Graceful shutdown waits for clients to hang up; one that does not may not keep the
    // daemon alive.
    let mut outcome = Ok(());
    let drained = tokio::time::timeout(CLIENT_GRACE, async {
        for server in &mut servers {
            if let Ok(Err(error)) = server.await {
                outcome = Err(RunError::Serve(error));
            }
        }
    })
    .await;
    if drained.is_err() {
        servers.iter().for_each(|server| server.abort());
    }
    if let Ok(Err(_)) = alerts_sent.await {
        tracing::warn!(
            "alerts: some were still being delivered {}s after the last program stopped; \
             they are abandoned",
            alerts::FINAL_GRACE.as_secs()
        );
    }
    outcome
}

/// A server with the limits every listener keeps: streams per connection.
fn server_builder() -> Server {
    Server::builder().max_concurrent_streams(server::limits::MAX_STREAMS_PER_CONNECTION)
}

/// The Taskmaster service with health checking and reflection (v1 and v1alpha).
async fn routes(service: server::TaskmasterService) -> Result<Routes, RunError> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<TaskmasterServer<server::TaskmasterService>>()
        .await;
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;
    Ok(Routes::new(TaskmasterServer::new(service))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha))
}
