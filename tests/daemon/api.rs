//! The API surface: WatchEvents, Shutdown, the caller each action is recorded as (on the Unix
//! socket and over TCP), the socket rules, TCP, reflection and health, and
//! the daemon's start-up modes.

use std::{os::unix::fs::PermissionsExt, path::Path};

use nix::sys::signal::Signal;
use taskmaster::{
    endpoint::{self, Target},
    proto::{self, EventKind, State},
};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_events_reports_a_kill_9_and_resumes_from_a_sequence_number() {
    let daemon = Daemon::start(Program::sleeper("sleeper")).await;
    let mut client = daemon.client().await;
    let first = wait_state(&mut client, "sleeper", State::Running).await;
    let mut watch = client
        .watch_events(proto::WatchEventsRequest {
            names: vec!["sleeper".into()],
            since: None,
            run: None,
        })
        .await
        .unwrap()
        .into_inner();
    send(first.pid, Signal::SIGKILL);
    let mut seen = Vec::new();
    while seen.last().map(|e: &proto::Event| e.kind()) != Some(EventKind::Started) {
        seen.push(watch.message().await.unwrap().expect("an event"));
    }
    let kinds: Vec<EventKind> = seen.iter().map(|e| e.kind()).collect();
    assert_eq!(
        kinds,
        vec![EventKind::Exited, EventKind::Spawned, EventKind::Started]
    );
    let exited = &seen[0];
    assert_eq!(
        (exited.instance.as_str(), exited.program.as_str()),
        ("sleeper", "sleeper")
    );
    assert_eq!(exited.pid, first.pid);
    assert_eq!(exited.signal, Some(9));
    assert!(!exited.expected);
    assert_eq!(
        (exited.old_state(), exited.new_state()),
        (State::Running, State::Exited)
    );
    assert_ne!(seen[1].pid, first.pid);
    // Sequence numbers are consecutive.
    assert_eq!(seen[1].seq, exited.seq + 1);
    assert_eq!(seen[2].seq, exited.seq + 2);

    // A second watcher resumes right after the exit: it gets the rest again, same numbers.
    let mut resumed = client
        .watch_events(proto::WatchEventsRequest {
            names: vec![],
            since: Some(exited.seq),
            run: None,
        })
        .await
        .unwrap()
        .into_inner();
    for expected in &seen[1..] {
        let event = resumed.message().await.unwrap().expect("a replayed event");
        assert_eq!(&event, expected);
    }
    let log = daemon.log();
    assert!(
        log.contains(&format!(
            "sleeper: exited pid={} signal=9 expected=false",
            first.pid
        )),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_everything_and_exits_0() {
    let mut daemon = Daemon::start(
        Config::new()
            .program(Program::sleeper("pool").numprocs(3))
            .program(
                Program::new(
                    "stubborn",
                    r#"/bin/sh -c 'trap "" TERM; sleep 1000 & wait'"#,
                )
                .starttime(0.2)
                .stoptime(1.0),
            ),
    )
    .await;
    let mut client = daemon.client().await;
    daemon
        .wait_running(&["pool:0", "pool:1", "pool:2", "stubborn"])
        .await;
    let mut pids: Vec<u32> = daemon.children();
    for child in pids.clone() {
        pids.extend(children_of(child));
    }
    assert_eq!(pids.len(), 5, "{pids:?}");
    let mut watch = client
        .watch_events(proto::WatchEventsRequest::default())
        .await
        .unwrap()
        .into_inner();
    client.shutdown(proto::ShutdownRequest {}).await.unwrap();
    // The stream carries the daemon's stopping event, then ends.
    let mut kinds = Vec::new();
    while let Ok(Some(event)) = watch.message().await {
        kinds.push(event.kind());
    }
    assert!(kinds.contains(&EventKind::DaemonStopping), "{kinds:?}");
    drop(client);
    let status = daemon.wait_exit().await;
    assert!(status.success(), "{status:?}");
    for pid in pids {
        assert!(!alive(pid), "{pid} survived the shutdown");
    }
    assert!(!daemon.socket.exists());
    assert!(!daemon.path("taskmaster.pid").exists());
    let log = daemon.log();
    assert!(log.contains("taskmasterd: daemon stopping"), "{log}");
    assert!(log.contains("stubborn: killed"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_socket_is_private_and_one_daemon_owns_it() {
    let daemon = Daemon::start(Program::sleeper("sleeper")).await;
    let mode = std::fs::metadata(&daemon.socket)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let pidfile = daemon.path("taskmaster.pid");
    let pid: u32 = expect("the pidfile", || async {
        read(&pidfile).trim().parse().ok()
    })
    .await;
    assert_eq!(pid, daemon.pid());
    // A second daemon on the same socket refuses to start.
    let second = foreground(&daemon.config_path).output().unwrap();
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("already running"), "{stderr}");
    // The first one is unharmed.
    let mut client = daemon.client().await;
    assert_eq!(status(&mut client).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_socket_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    // A socket file nobody listens on any more, where the daemon's socket goes.
    let stale = dir.path().join("taskmaster.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    assert!(stale.exists());
    let daemon = Daemon::launch(Program::sleeper("sleeper"))
        .in_dir(dir)
        .start()
        .await;
    assert_eq!(daemon.socket, stale);
    let mut client = daemon.client().await;
    assert_eq!(status(&mut client).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_reflection_and_health() {
    let port = free_port();
    let daemon = Daemon::launch(Program::sleeper("sleeper"))
        .listen(port)
        .start()
        .await;
    let channel = endpoint::connect(&Target::Tcp(format!("http://127.0.0.1:{port}")))
        .await
        .unwrap();
    let mut client = proto::taskmaster_client::TaskmasterClient::new(channel.clone());
    assert_eq!(status(&mut client).await[0].name, "sleeper");

    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let serving = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "taskmaster.v1.Taskmaster".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        serving.status(),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );

    use tonic_reflection::pb::v1alpha::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("unexpected reflection answer {answer:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"taskmaster.v1.Taskmaster".to_string()),
        "{names:?}"
    );
    drop(daemon);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_config_at_start_names_file_line_column_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.yaml");
    std::fs::write(
        &config,
        "programs:\n  web:\n    cmd: sleep 1\n    autorestart: sometimes\n",
    )
    .unwrap();
    let output = foreground(&config).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "{}:4:18: programs.web.autorestart",
            config.display()
        )),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_foreground_it_detaches_once_listening() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("bg.sock");
    let config = dir.path().join("taskmaster.yaml");
    // Relative log and pid files.
    let text = Config::from(Program::new("sleeper", "sleep 1000").stoptime(1.0)).file(
        dir.path(),
        &socket,
        Path::new("bg.log"),
        Path::new("bg.pid"),
    );
    std::fs::write(&config, text).unwrap();
    // No --foreground: it detaches, so it is not our child; the guard adopts it.
    let output = taskmasterd().arg("-c").arg(&config).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout} {output:?}");
    let pid: u32 = stdout
        .strip_prefix("taskmasterd started: pid ")
        .and_then(|rest| rest.split(',').next())
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("unexpected output {stdout:?}"));
    let guard = Guard::adopt(pid);
    assert!(
        stdout.contains(&format!("socket {}", socket.display())),
        "{stdout}"
    );
    assert!(alive(pid));
    // Relative paths are relative to the config file.
    assert_eq!(read(&dir.path().join("bg.pid")).trim(), pid.to_string());
    // It answers at once.
    let channel = endpoint::connect(&Target::Unix(socket)).await.unwrap();
    let mut client = proto::taskmaster_client::TaskmasterClient::new(channel);
    assert_eq!(status(&mut client).await.len(), 1);
    client.shutdown(proto::ShutdownRequest {}).await.unwrap();
    wait_gone("the daemon to exit", pid).await;
    assert!(!dir.path().join("bg.pid").exists());
    assert!(read(&dir.path().join("bg.log")).contains("daemon stopping"));
    drop(guard);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_control_action_records_who_did_it() {
    let mut daemon = Daemon::start(Program::sleeper("sleeper").autorestart("always")).await;
    let mut client = daemon.client().await;
    let first = wait_state(&mut client, "sleeper", State::Running).await;
    let mut watch = all_events(&daemon).await;
    // Autostart is policy; the start that held is nobody's doing.
    let spawned = next_of(&mut watch, EventKind::Spawned, "sleeper").await;
    assert_eq!(spawned.actor, "policy");
    let started = next_of(&mut watch, EventKind::Started, "sleeper").await;
    assert_eq!(started.actor, "");
    // A client on the Unix socket is named by its uid.
    let me = format!("uid {}", nix::unistd::getuid());
    client
        .restart(proto::RestartRequest {
            names: vec!["sleeper".into()],
            no_wait: false,
        })
        .await
        .unwrap();
    for kind in [
        EventKind::Restarting,
        EventKind::Stopping,
        EventKind::Spawned,
    ] {
        let event = next_of(&mut watch, kind, "sleeper").await;
        assert!(
            event.actor.starts_with(&me),
            "{kind:?} by {:?}",
            event.actor
        );
    }
    // An exit is the process's own, the autorestart after it policy's.
    let second = wait_state(&mut client, "sleeper", State::Running).await;
    assert_ne!(second.pid, first.pid);
    send(second.pid, Signal::SIGKILL);
    assert_eq!(
        next_of(&mut watch, EventKind::Exited, "sleeper")
            .await
            .actor,
        ""
    );
    assert_eq!(
        next_of(&mut watch, EventKind::Spawned, "sleeper")
            .await
            .actor,
        "policy"
    );
    // Signals to the daemon are recorded as such.
    send(daemon.pid(), Signal::SIGHUP);
    let reloaded = next_of(&mut watch, EventKind::ConfigReloaded, "").await;
    assert_eq!(reloaded.actor, "signal SIGHUP");
    send(daemon.pid(), Signal::SIGUSR1);
    let reopened = next_of(&mut watch, EventKind::OutputReopened, "").await;
    assert_eq!(reopened.actor, "signal SIGUSR1");
    client
        .clear(proto::ClearRequest {
            names: vec!["sleeper".into()],
        })
        .await
        .unwrap();
    let cleared = next_of(&mut watch, EventKind::OutputCleared, "sleeper").await;
    assert!(cleared.actor.starts_with(&me), "{:?}", cleared.actor);
    send(daemon.pid(), Signal::SIGTERM);
    let stopping = next_of(&mut watch, EventKind::DaemonStopping, "").await;
    assert_eq!(stopping.actor, "signal SIGTERM");
    drop(client);
    assert!(daemon.wait_exit().await.success());
    // The event log says the same.
    let log = daemon.log();
    for line in [
        "sleeper: restarting",
        "taskmasterd: config reloaded",
        "taskmasterd: daemon stopping",
    ] {
        let found = log
            .lines()
            .find(|text| text.contains(line))
            .unwrap_or_else(|| panic!("no {line:?} in {log}"));
        assert!(found.contains(" by=\""), "{found}");
    }
    assert!(log.contains("by=\"signal SIGTERM\""), "{log}");
    assert!(log.contains(&format!("by=\"{me}")), "{log}");
}

/// Every event of `daemon` from its first, watched on its Unix socket.
async fn all_events(daemon: &Daemon) -> tonic::Streaming<proto::Event> {
    daemon
        .client()
        .await
        .watch_events(proto::WatchEventsRequest {
            names: Vec::new(),
            since: Some(0),
            run: None,
        })
        .await
        .unwrap()
        .into_inner()
}

/// How the daemon names this test's process on its Unix socket: `uid 0 (root)` in CI.
fn this_caller() -> String {
    let uid = nix::unistd::getuid();
    let user = nix::unistd::User::from_uid(uid).unwrap().expect("our user");
    format!("uid {uid} ({})", user.name)
}

/// Sends Stop, Start and Reload through `client` (on any transport), checking that the events
/// they cause name `caller`.
async fn act_as<T>(
    client: &mut proto::taskmaster_client::TaskmasterClient<T>,
    watch: &mut tonic::Streaming<proto::Event>,
    caller: &str,
) where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<tonic::codegen::StdError>,
    T::ResponseBody: tonic::transport::Body<Data = tonic::codegen::Bytes> + Send + 'static,
    <T::ResponseBody as tonic::transport::Body>::Error: Into<tonic::codegen::StdError> + Send,
{
    let names = || vec!["sleeper".to_string()];
    (client.stop(proto::StopRequest {
        names: names(),
        no_wait: false,
    }))
    .await
    .unwrap();
    let stopping = next_of(watch, EventKind::Stopping, "sleeper").await;
    assert_eq!(stopping.actor, caller, "Stop");
    (client.start(proto::StartRequest {
        names: names(),
        no_wait: false,
    }))
    .await
    .unwrap();
    let spawned = next_of(watch, EventKind::Spawned, "sleeper").await;
    assert_eq!(spawned.actor, caller, "Start");
    client.reload(proto::ReloadRequest {}).await.unwrap();
    let reloaded = next_of(watch, EventKind::ConfigReloaded, "").await;
    assert_eq!(reloaded.actor, caller, "Reload");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_stop_reload_and_shutdown_on_the_unix_socket_name_the_callers_uid() {
    let mut daemon = Daemon::start(Program::sleeper("sleeper")).await;
    let mut watch = all_events(&daemon).await;
    next_of(&mut watch, EventKind::Started, "sleeper").await;
    let me = this_caller();
    let mut client = daemon.client().await;
    act_as(&mut client, &mut watch, &me).await;
    client.shutdown(proto::ShutdownRequest {}).await.unwrap();
    let stopping = next_of(&mut watch, EventKind::DaemonStopping, "").await;
    assert_eq!(stopping.actor, me, "Shutdown");
    drop(client);
    assert!(daemon.wait_exit().await.success());
    // The event log says the same, action by action.
    let log = daemon.log();
    for action in [
        "sleeper: stopping",
        "sleeper: spawned",
        "taskmasterd: config reloaded",
        "taskmasterd: daemon stopping",
    ] {
        let line = (log.lines().rev())
            .find(|line| line.contains(action))
            .unwrap_or_else(|| panic!("no {action:?} in {log}"));
        assert!(line.contains(&format!("by=\"{me}\"")), "{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tcp_the_actor_is_the_tokens_name_or_the_certificates_subject() {
    const DEPLOY: &str = "deploy-0123456789-abcdef";
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    token_file(dir.path(), "deploy.token", DEPLOY);
    let config = Config::from(Program::sleeper("sleeper")).daemon(&format!(
        "listen: {port}\ntokens: [{{name: deploy, role: operator, file: deploy.token}}]\n"
    ));
    let daemon = Daemon::launch(config).in_dir(dir).start().await;
    let mut watch = all_events(&daemon).await;
    next_of(&mut watch, EventKind::Started, "sleeper").await;
    let mut client = with_token(tcp_channel(port).await, Some(DEPLOY));
    act_as(&mut client, &mut watch, "token deploy").await;
    drop(daemon);

    // Mutual TLS: the client certificate's subject.
    let certificates = Certificates::new();
    let port = free_port();
    let daemon = certificates.mutual_tls_daemon(&port.to_string()).await;
    let mut watch = all_events(&daemon).await;
    next_of(&mut watch, EventKind::Started, "sleeper").await;
    let channel = certificates.client_channel(port).await;
    let mut client = proto::taskmaster_client::TaskmasterClient::new(channel);
    act_as(&mut client, &mut watch, "cert CN=ops,O=Taskmaster tests").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_from_another_daemon_run_is_told_the_history_restarted() {
    let mut daemon = Daemon::start(Program::sleeper("sleeper")).await;
    let mut client = daemon.client().await;
    wait_state(&mut client, "sleeper", State::Running).await;
    let first_run = daemon_info(&mut client).await.run;
    let mut watch = all_events(&daemon).await;
    let started = next_of(&mut watch, EventKind::Started, "sleeper").await;
    assert_eq!(started.run, first_run);
    // The same run resumes where it was.
    let mut same = client
        .watch_events(proto::WatchEventsRequest {
            names: Vec::new(),
            since: Some(started.seq - 1),
            run: Some(first_run),
        })
        .await
        .unwrap()
        .into_inner();
    let resumed = same.message().await.unwrap().unwrap();
    assert_eq!(
        (resumed.seq, resumed.kind()),
        (started.seq, EventKind::Started)
    );
    drop((watch, same));
    client.shutdown(proto::ShutdownRequest {}).await.unwrap();
    drop(client);
    assert!(daemon.wait_exit().await.success());
    // A new daemon on the same socket numbers its events from 1 again.
    let _again = daemon.spawn_again();
    let mut client = expect("the second daemon to answer", || async {
        let channel = endpoint::connect(&daemon.target()).await.ok()?;
        Some(taskmaster::proto::taskmaster_client::TaskmasterClient::new(
            channel,
        ))
    })
    .await;
    wait_state(&mut client, "sleeper", State::Running).await;
    let second_run = daemon_info(&mut client).await.run;
    assert_ne!(second_run, first_run);
    let mut resumed = client
        .watch_events(proto::WatchEventsRequest {
            names: Vec::new(),
            since: Some(started.seq),
            run: Some(first_run),
        })
        .await
        .unwrap()
        .into_inner();
    let notice = resumed.message().await.unwrap().unwrap();
    assert_eq!(notice.kind(), EventKind::HistoryRestarted, "{notice:?}");
    assert_eq!(notice.run, second_run);
    assert!(
        notice.message.contains(&first_run.to_string()),
        "{notice:?}"
    );
    // Then everything this run kept, from its first event.
    let first = resumed.message().await.unwrap().unwrap();
    assert_eq!((first.seq, first.kind()), (1, EventKind::DaemonStarted));
    assert_eq!(first.run, second_run);
    client.shutdown(proto::ShutdownRequest {}).await.unwrap();
}
