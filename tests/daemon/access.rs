//! Who may control the daemon: the socket's mode and group under any umask, callers of other
//! uids refused or given their role, TCP with tokens, TLS and mutual TLS, and the limits that
//! hold under abuse (request size, names, idle connections).

use std::{
    os::unix::{
        fs::{MetadataExt, PermissionsExt},
        process::CommandExt,
    },
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use taskmaster::proto::{self, State};
use tonic::{Code, Status, transport::Channel};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::support::*;

/// A temporary directory every user may enter (a daemon's socket in it can be reached by
/// another uid, as far as the socket's own mode allows).
fn open_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// What a `taskctl` run printed and how it ended.
struct Run {
    /// It exited with status 0.
    success: bool,
    /// What it printed on stdout.
    stdout: String,
    /// What it printed on stderr.
    stderr: String,
}

/// Runs `taskctl -s SOCKET ARGS` as `uid`, `gid` and supplementary `groups` (dropped to in the
/// child before exec; needs root), and waits for it with a deadline.
fn taskctl_as(daemon: &Daemon, uid: u32, gid: u32, groups: &[u32], args: &[&str]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_taskctl"));
    command
        .arg("-s")
        .arg(&daemon.socket)
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let groups: Vec<nix::unistd::Gid> = groups
        .iter()
        .map(|gid| nix::unistd::Gid::from_raw(*gid))
        .collect();
    // SAFETY: setgroups, setgid and setuid are async-signal-safe; nothing is allocated (the
    // group list is made before the fork).
    unsafe {
        command.pre_exec(move || {
            nix::unistd::setgroups(&groups)?;
            nix::unistd::setgid(nix::unistd::Gid::from_raw(gid))?;
            nix::unistd::setuid(nix::unistd::Uid::from_raw(uid))?;
            Ok(())
        });
    }
    let mut guard = Guard::spawn(&mut command);
    let status = guard.wait_exit().expect("taskctl to finish");
    let output = |pipe: Option<&mut dyn std::io::Read>| {
        let mut text = String::new();
        if let Some(pipe) = pipe {
            pipe.read_to_string(&mut text).unwrap();
        }
        text
    };
    let child = guard.child();
    let stdout = output(child.stdout.as_mut().map(|p| p as &mut dyn std::io::Read));
    let stderr = output(child.stderr.as_mut().map(|p| p as &mut dyn std::io::Read));
    Run {
        success: status.success(),
        stdout,
        stderr,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_socket_has_its_mode_and_group_under_umask_000() {
    let daemon = Daemon::launch(Program::sleeper("sleeper"))
        .umask(0)
        .start()
        .await;
    let metadata = std::fs::metadata(&daemon.socket).unwrap();
    assert_eq!(
        metadata.mode() & 0o7777,
        0o600,
        "the default under umask 000"
    );
    // The daemon really runs under umask 000: its own files show it.
    let proc_status = read(Path::new(&format!("/proc/{}/status", daemon.pid())));
    assert!(proc_status.contains("Umask:\t0000"), "{proc_status}");
    drop(daemon);

    // A group that may connect: nobody's as root (any group), else our own group.
    let (group, gid) = if nix::unistd::geteuid().is_root() {
        let (_, group) = nobody();
        (group.name, group.gid.as_raw())
    } else {
        let gid = nix::unistd::getegid().as_raw();
        (gid.to_string(), gid)
    };
    let config = Config::from(Program::sleeper("sleeper"))
        .daemon(&format!("socket_mode: 0660\nsocket_group: {group}\n"));
    let daemon = Daemon::launch(config).umask(0).start().await;
    let metadata = std::fs::metadata(&daemon.socket).unwrap();
    assert_eq!(metadata.mode() & 0o7777, 0o660);
    assert_eq!(metadata.gid(), gid);
    let mut client = daemon.client().await;
    assert_eq!(status(&mut client).await.len(), 1);

    // A narrower mode than the default is kept too, under a umask that would widen nothing.
    let config = Config::from(Program::sleeper("sleeper")).daemon("socket_mode: \"0400\"\n");
    let daemon = Daemon::launch(config).umask(0o077).start().await;
    let metadata = std::fs::metadata(&daemon.socket).unwrap();
    assert_eq!(metadata.mode() & 0o7777, 0o400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_uid_is_refused_until_it_has_a_role() {
    let Some((user, group)) = nobody_as_root(
        "another_uid_is_refused_until_it_has_a_role",
        "to run taskctl as nobody",
    ) else {
        return;
    };
    let (uid, gid) = (user.uid.as_raw(), group.gid.as_raw());
    // Nobody's role is none: the socket's mode lets it connect, the daemon says no.
    let daemon =
        Daemon::launch(Config::from(Program::sleeper("sleeper")).daemon("socket_mode: 0666\n"))
            .in_dir(open_dir())
            .start()
            .await;
    daemon.wait_running(&["sleeper"]).await;
    for args in [&["status"][..], &["stop", "sleeper"], &["shutdown", "-y"]] {
        let run = taskctl_as(&daemon, uid, gid, &[], args);
        assert!(!run.success, "{args:?}: {}", run.stdout);
        assert!(
            run.stderr
                .contains(&format!("uid {uid} (nobody) may not use this daemon"))
                && run
                    .stderr
                    .contains("not in daemon.operators or daemon.viewers"),
            "{args:?}: {}",
            run.stderr
        );
    }
    let mut client = daemon.client().await;
    assert_eq!(
        instance(&mut client, "sleeper").await.state(),
        State::Running
    );
    drop(daemon);

    // A viewer may look, not act; a supplementary group makes the same uid an operator.
    let config = Config::from(Program::sleeper("sleeper"))
        .daemon("socket_mode: 0666\nviewers: {users: [nobody]}\noperators: {groups: [4242]}\n");
    let daemon = Daemon::launch(config).in_dir(open_dir()).start().await;
    daemon.wait_running(&["sleeper"]).await;
    let run = taskctl_as(&daemon, uid, gid, &[], &["status"]);
    assert!(run.success, "{}", run.stderr);
    assert!(
        run.stdout.contains("sleeper") && run.stdout.contains("RUNNING"),
        "{}",
        run.stdout
    );
    let run = taskctl_as(&daemon, uid, gid, &[], &["stop", "sleeper"]);
    assert!(!run.success, "{}", run.stdout);
    assert!(
        run.stderr.contains(&format!(
            "uid {uid} (nobody) is a viewer: it may call Status, WatchEvents, Tail and MainTail \
             only, not Stop"
        )),
        "{}",
        run.stderr
    );
    let mut client = daemon.client().await;
    assert_eq!(
        instance(&mut client, "sleeper").await.state(),
        State::Running
    );
    let run = taskctl_as(&daemon, uid, gid, &[4242], &["stop", "sleeper"]);
    assert!(run.success, "{}", run.stderr);
    assert!(run.stdout.contains("sleeper: stopped"), "{}", run.stdout);
    assert_eq!(
        instance(&mut client, "sleeper").await.state(),
        State::Stopped
    );
    drop(daemon);

    // In operators by name: allowed; the socket's group lets another uid connect, and that uid,
    // without a role, is refused.
    let config = Config::from(Program::sleeper("sleeper")).daemon(&format!(
        "socket_mode: 0660\nsocket_group: {}\noperators: {{users: [nobody]}}\n",
        group.name
    ));
    let daemon = Daemon::launch(config).in_dir(open_dir()).start().await;
    daemon.wait_running(&["sleeper"]).await;
    let run = taskctl_as(&daemon, uid, gid, &[], &["stop", "sleeper"]);
    assert!(run.success, "{}", run.stderr);
    assert!(run.stdout.contains("sleeper: stopped"), "{}", run.stdout);
    let run = taskctl_as(&daemon, 65533, gid, &[], &["status"]);
    assert!(!run.success);
    assert!(
        run.stderr.contains("uid 65533 may not use this daemon"),
        "{}",
        run.stderr
    );
    // Not in the socket's group: the file mode refuses it before the daemon is asked.
    let run = taskctl_as(&daemon, 65533, 65533, &[], &["status"]);
    assert!(!run.success);
    assert!(run.stderr.contains("permission denied"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_beyond_loopback_needs_authentication() {
    let port = free_port();
    for address in [format!("0.0.0.0:{port}"), format!("[::]:{port}")] {
        let launch = Daemon::launch(Program::sleeper("sleeper")).listen(&address);
        let (status, stderr) = launch.refused().await;
        assert!(!status.success());
        assert!(
            stderr.contains(&format!(
                "refusing to listen on {address} without authentication"
            )) && stderr.contains("add daemon.tokens")
                && stderr.contains("or listen on loopback"),
            "{stderr}"
        );
    }
    // The same address in the config, with a token: it starts.
    let dir = tempfile::tempdir().unwrap();
    token_file(dir.path(), "deploy.token", "deploy-0123456789-abcdef");
    let config = Config::from(Program::sleeper("sleeper")).daemon(&format!(
        "listen: 0.0.0.0:{port}\ntokens: [{{name: deploy, role: operator, file: deploy.token}}]\n"
    ));
    let daemon = Daemon::launch(config).in_dir(dir).start().await;
    let mut client = with_token(tcp_channel(port).await, Some("deploy-0123456789-abcdef"));
    let answer = client
        .status(proto::StatusRequest::default())
        .await
        .unwrap();
    assert_eq!(answer.into_inner().instances.len(), 1);
    drop(daemon);
}

/// Every call of the API and of reflection, each once with arguments that act on nothing
/// (names no program has), by a client sending `token`; each call's outcome. Shutdown is not
/// here: see the tests.
async fn every_call(channel: &Channel, token: Option<&str>) -> Vec<(&'static str, Status)> {
    let mut client = with_token(channel.clone(), token);
    fn outcome<T>(result: Result<T, Status>) -> Status {
        result.err().unwrap_or_else(|| Status::ok(""))
    }
    let nobody = || vec!["no-such-program".to_string()];
    let mut outcomes = vec![
        (
            "Status",
            outcome(client.status(proto::StatusRequest::default()).await),
        ),
        (
            "Start",
            outcome(
                client
                    .start(proto::StartRequest {
                        names: nobody(),
                        no_wait: false,
                    })
                    .await,
            ),
        ),
        (
            "Stop",
            outcome(
                client
                    .stop(proto::StopRequest {
                        names: nobody(),
                        no_wait: false,
                    })
                    .await,
            ),
        ),
        (
            "Restart",
            outcome(
                client
                    .restart(proto::RestartRequest {
                        names: nobody(),
                        no_wait: false,
                    })
                    .await,
            ),
        ),
        (
            "Reload",
            outcome(client.reload(proto::ReloadRequest {}).await),
        ),
        (
            "WatchEvents",
            outcome(
                client
                    .watch_events(proto::WatchEventsRequest::default())
                    .await,
            ),
        ),
        (
            "Tail",
            outcome(
                client
                    .tail(proto::TailRequest {
                        name: "no-such-program".into(),
                        ..Default::default()
                    })
                    .await,
            ),
        ),
        (
            "MainTail",
            outcome(client.main_tail(proto::MainTailRequest::default()).await),
        ),
        (
            "Reopen",
            outcome(client.reopen(proto::ReopenRequest {}).await),
        ),
        (
            "Clear",
            outcome(client.clear(proto::ClearRequest { names: nobody() }).await),
        ),
        (
            "Attach",
            outcome(
                client
                    .attach(tokio_stream::iter([proto::AttachRequest {
                        message: Some(proto::attach_request::Message::Open(proto::AttachOpen {
                            name: "no-such-program".into(),
                            ..Default::default()
                        })),
                    }]))
                    .await,
            ),
        ),
    ];
    {
        use tonic_reflection::pb::v1::{
            ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
            server_reflection_request::MessageRequest,
        };
        let mut reflection =
            ServerReflectionClient::with_interceptor(channel.clone(), Bearer::new(token));
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let answer = reflection
            .server_reflection_info(tokio_stream::iter([request]))
            .await;
        outcomes.push(("reflection v1", outcome(answer)));
    }
    {
        use tonic_reflection::pb::v1alpha::{
            ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
            server_reflection_request::MessageRequest,
        };
        let mut reflection =
            ServerReflectionClient::with_interceptor(channel.clone(), Bearer::new(token));
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let answer = reflection
            .server_reflection_info(tokio_stream::iter([request]))
            .await;
        outcomes.push(("reflection v1alpha", outcome(answer)));
    }
    outcomes
}

/// What an operator gets from [`every_call`]: each call reaches its service.
const OPERATOR: &[(&str, Code)] = &[
    ("Status", Code::Ok),
    ("Start", Code::NotFound),
    ("Stop", Code::NotFound),
    ("Restart", Code::NotFound),
    ("Reload", Code::Ok),
    ("WatchEvents", Code::Ok),
    ("Tail", Code::NotFound),
    ("MainTail", Code::Ok),
    ("Reopen", Code::Ok),
    ("Clear", Code::NotFound),
    ("Attach", Code::NotFound),
    ("reflection v1", Code::Ok),
    ("reflection v1alpha", Code::Ok),
];

/// What a viewer gets from [`every_call`]: the calls that change something are refused.
const VIEWER: &[(&str, Code)] = &[
    ("Status", Code::Ok),
    ("Start", Code::PermissionDenied),
    ("Stop", Code::PermissionDenied),
    ("Restart", Code::PermissionDenied),
    ("Reload", Code::PermissionDenied),
    ("WatchEvents", Code::Ok),
    ("Tail", Code::NotFound),
    ("MainTail", Code::Ok),
    ("Reopen", Code::PermissionDenied),
    ("Clear", Code::PermissionDenied),
    ("Attach", Code::PermissionDenied),
    ("reflection v1", Code::Ok),
    ("reflection v1alpha", Code::Ok),
];

/// Checks `outcomes` against `expected`, and each refusal's message against `refusal`.
fn assert_outcomes(
    who: &str,
    outcomes: &[(&'static str, Status)],
    expected: &[(&str, Code)],
    refusal: &str,
) {
    let codes: Vec<(&str, Code)> = outcomes.iter().map(|(call, s)| (*call, s.code())).collect();
    assert_eq!(codes, expected, "{who}: {outcomes:?}");
    for (call, status) in outcomes {
        if matches!(
            status.code(),
            Code::Unauthenticated | Code::PermissionDenied
        ) {
            let message = refusal.replace("{call}", call);
            assert!(
                status.message().contains(&message),
                "{who} {call}: {status:?}, expected {message:?}"
            );
        }
    }
}

/// Whether the health service says the Taskmaster service is serving, asked without
/// credentials.
async fn serving(channel: &Channel) -> bool {
    let answer = HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: "taskmaster.v1.Taskmaster".into(),
        })
        .await;
    answer.is_ok_and(|answer| {
        answer.into_inner().status()
            == tonic_health::pb::health_check_response::ServingStatus::Serving
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_on_tcp_needs_a_valid_token_and_the_role_for_it() {
    const DEPLOY: &str = "deploy-0123456789-abcdef";
    const MONITOR: &str = "monitor-0123456789-abcdef";
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    token_file(dir.path(), "deploy.token", DEPLOY);
    let config = Config::from(
        Program::new(
            "envdump",
            "/bin/sh -c 'env > {dir}/child.env; exec sleep 1000'",
        )
        .starttime(0.2)
        .stoptime(1.0),
    )
    .daemon(&format!(
        "
         listen: 0.0.0.0:{port}
         tokens:
           - {{name: deploy, role: operator, file: deploy.token}}
           - {{name: monitor, role: viewer, env: TASKMASTER_TEST_MONITOR}}
        "
    ));
    let mut daemon = Daemon::launch(config)
        .in_dir(dir)
        .env("TASKMASTER_TEST_MONITOR", MONITOR)
        .start()
        .await;
    daemon.wait_running(&["envdump"]).await;
    // The token's variable is not passed on to the programs.
    let child_env = expect("the program's environment", || async {
        let text = read(&daemon.path("child.env"));
        text.contains("PATH=").then_some(text)
    })
    .await;
    assert!(
        !child_env.contains("TASKMASTER_TEST_MONITOR"),
        "{child_env}"
    );
    assert!(!child_env.contains(MONITOR), "{child_env}");

    let channel = tcp_channel(port).await;
    let unauthenticated: Vec<(&str, Code)> = (OPERATOR.iter())
        .map(|(call, _)| (*call, Code::Unauthenticated))
        .collect();
    let outcomes = every_call(&channel, None).await;
    assert_outcomes(
        "no token",
        &outcomes,
        &unauthenticated,
        "no credentials: this daemon takes calls on TCP with the metadata `authorization: \
         Bearer TOKEN`",
    );
    let outcomes = every_call(&channel, Some("deploy-0123456789-abcdeX")).await;
    assert_outcomes(
        "a wrong token",
        &outcomes,
        &unauthenticated,
        "the bearer token is not valid",
    );
    let outcomes = every_call(&channel, Some(MONITOR)).await;
    assert_outcomes(
        "the viewer token",
        &outcomes,
        VIEWER,
        "token monitor is a viewer: it may call Status, WatchEvents, Tail and MainTail only, \
         not {call}",
    );
    // The reload re-read the config: the token variable taken out of the environment is
    // still found.
    let outcomes = every_call(&channel, Some(DEPLOY)).await;
    assert_outcomes("the operator token", &outcomes, OPERATOR, "");
    let log = daemon.log();
    assert!(!log.contains("config rejected"), "{log}");
    // Health answers anyone.
    assert!(serving(&channel).await);
    // Not a bearer token at all.
    let mut basic = taskmaster::proto::taskmaster_client::TaskmasterClient::with_interceptor(
        channel.clone(),
        |mut request: tonic::Request<()>| {
            let value = "Basic ZGVwbG95OnNlY3JldA==".parse().unwrap();
            request.metadata_mut().insert("authorization", value);
            Ok(request)
        },
    );
    let status = basic
        .status(proto::StatusRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(
        status.message().contains("not a bearer token"),
        "{status:?}"
    );

    // Shutdown: refused without a token and to the viewer, done for the operator.
    let shutdown = |token| {
        let mut client = with_token(channel.clone(), token);
        async move { client.shutdown(proto::ShutdownRequest {}).await }
    };
    assert_eq!(
        shutdown(None).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    let status = shutdown(Some(MONITOR)).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(status.message().contains("not Shutdown"), "{status:?}");
    assert!(daemon.try_exit().is_none());
    shutdown(Some(DEPLOY)).await.unwrap();
    assert!(daemon.wait_exit().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_token_and_mutual_tls() {
    const DEPLOY: &str = "deploy-0123456789-abcdef";
    let certificates = Certificates::new();
    // TLS and a token, on loopback.
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    certificates.write_server_files(dir.path());
    token_file(dir.path(), "deploy.token", DEPLOY);
    let config = Config::from(Program::sleeper("sleeper")).daemon(&format!(
        "
         listen: {port}
         tls: {{cert: server.pem, key: server.key}}
         tokens: [{{name: deploy, role: operator, file: deploy.token}}]
        "
    ));
    let daemon = Daemon::launch(config).in_dir(dir).start().await;
    let channel = tls_channel(port, &certificates.ca, None).await.unwrap();
    let mut client = with_token(channel.clone(), Some(DEPLOY));
    let answer = client
        .status(proto::StatusRequest::default())
        .await
        .unwrap();
    assert_eq!(answer.into_inner().instances.len(), 1);
    let status = with_token(channel.clone(), None)
        .status(proto::StatusRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(serving(&channel).await);
    // Plain text to a TLS listener gets no answer.
    let plain = tcp_channel(port).await;
    let answer = with_token(plain, Some(DEPLOY))
        .status(proto::StatusRequest::default())
        .await;
    assert!(answer.is_err(), "plain text was answered: {answer:?}");
    drop(daemon);

    // Mutual TLS: the client certificate is the identity, so no token is needed, even beyond
    // loopback.
    let port = free_port();
    let address = format!("0.0.0.0:{port}");
    let daemon = certificates.mutual_tls_daemon(&address).await;
    let channel = certificates.client_channel(port).await;
    let outcomes = every_call(&channel, None).await;
    assert_outcomes("a client certificate", &outcomes, OPERATOR, "");
    // A token, when sent, must still be valid.
    let status = with_token(channel.clone(), Some("not-a-token-of-this-daemon"))
        .status(proto::StatusRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    // Without a certificate, the handshake succeeds: health answers (for load balancers), every
    // other call is refused and the refusal says what the daemon takes.
    let anonymous = tls_channel(port, &certificates.ca, None)
        .await
        .expect("a TLS handshake without a client certificate");
    assert!(serving(&anonymous).await);
    let refused: Vec<(&str, Code)> = (OPERATOR.iter())
        .map(|(call, _)| (*call, Code::Unauthenticated))
        .collect();
    let outcomes = every_call(&anonymous, None).await;
    assert_outcomes(
        "no certificate",
        &outcomes,
        &refused,
        "no credentials: this daemon takes calls on TCP with a client certificate that \
         daemon.tls.client_ca signed",
    );
    let status = with_token(anonymous.clone(), None)
        .status(proto::StatusRequest::default())
        .await
        .unwrap_err();
    let takes = status.metadata().get("taskmaster-credentials");
    assert_eq!(
        takes.and_then(|value| value.to_str().ok()),
        Some("certificate")
    );
    // A certificate of another CA still fails the handshake.
    let stranger = Certificates::new();
    let identity = (stranger.client_cert.as_str(), stranger.client_key.as_str());
    let refused = match tls_channel(port, &certificates.ca, Some(identity)).await {
        Err(_) => true,
        Ok(channel) => !serving(&channel).await,
    };
    assert!(refused, "a certificate of another CA was accepted");
    drop(daemon);
}

/// The daemon's resident memory, in KiB (VmRSS of /proc/PID/status).
fn rss_kib(pid: u32) -> u64 {
    let status = read(Path::new(&format!("/proc/{pid}/status")));
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in {status}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_requests_bad_names_and_too_many_names_are_refused() {
    let daemon = Daemon::start(Program::sleeper("sleeper")).await;
    let pids = daemon.wait_running(&["sleeper"]).await;
    let mut client = daemon.client().await;
    status(&mut client).await;
    let before = rss_kib(daemon.pid());
    for _ in 0..3 {
        let huge = proto::StatusRequest {
            names: vec!["x".repeat(64 << 20)],
        };
        let status = client.status(huge).await.unwrap_err();
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        assert!(
            status.message().contains("at most 1048576 bytes"),
            "{status:?}"
        );
    }
    let after = rss_kib(daemon.pid());
    eprintln!("daemon RSS before three 64 MiB requests: {before} KiB, after: {after} KiB");
    assert!(
        after < before + 8 * 1024,
        "three 64 MiB requests grew the daemon from {before} KiB to {after} KiB"
    );

    // Bad names, in every call that takes names.
    let mut client = daemon.client().await;
    for bad in ["", "..", "../etc/passwd", "a/b", "web\n", "x\u{1b}[2J"] {
        let names = || vec![bad.to_string()];
        let calls = [
            (
                "Status",
                client
                    .status(proto::StatusRequest { names: names() })
                    .await
                    .err(),
            ),
            (
                "Start",
                client
                    .start(proto::StartRequest {
                        names: names(),
                        no_wait: true,
                    })
                    .await
                    .err(),
            ),
            (
                "Stop",
                client
                    .stop(proto::StopRequest {
                        names: names(),
                        no_wait: true,
                    })
                    .await
                    .err(),
            ),
            (
                "Restart",
                client
                    .restart(proto::RestartRequest {
                        names: names(),
                        no_wait: true,
                    })
                    .await
                    .err(),
            ),
            (
                "Clear",
                client
                    .clear(proto::ClearRequest { names: names() })
                    .await
                    .err(),
            ),
            (
                "WatchEvents",
                client
                    .watch_events(proto::WatchEventsRequest {
                        names: names(),
                        since: None,
                        run: None,
                    })
                    .await
                    .err(),
            ),
            (
                "Tail",
                client
                    .tail(proto::TailRequest {
                        name: bad.to_string(),
                        ..Default::default()
                    })
                    .await
                    .err(),
            ),
        ];
        for (call, status) in calls {
            let status = status.unwrap_or_else(|| panic!("{call} took {bad:?}"));
            assert_eq!(
                status.code(),
                Code::InvalidArgument,
                "{call} {bad:?}: {status:?}"
            );
            assert!(status.message().starts_with("invalid name"), "{status:?}");
        }
    }
    // Too many names.
    let many = vec!["sleeper".to_string(); 10_001];
    let status = client
        .stop(proto::StopRequest {
            names: many.clone(),
            no_wait: true,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status
            .message()
            .contains("10001 names in one request; at most 10000"),
        "{status:?}"
    );
    // Ten thousand are fine.
    let answer = client
        .status(proto::StatusRequest {
            names: many[..10_000].to_vec(),
        })
        .await
        .unwrap();
    assert!(!answer.into_inner().instances.is_empty());
    // Nothing was stopped.
    let now = instance(&mut client, "sleeper").await;
    assert_eq!((now.state(), now.pid), (State::Running, pids["sleeper"]));
}

/// Raises this process's soft limit of open files to its hard limit (the test opens a
/// thousand connections).
fn raise_open_files() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    hard
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_idle_connections_cost_little_and_stop_nothing() {
    const CONNECTIONS: usize = 1000;
    let limit = raise_open_files();
    if limit < CONNECTIONS as u64 + 100 {
        eprintln!(
            "skipping: the open files limit is {limit}, too low for {CONNECTIONS} connections"
        );
        return;
    }
    let daemon = Daemon::start(Program::sleeper("sleeper")).await;
    let pids = daemon.wait_running(&["sleeper"]).await;
    let mut client = daemon.client().await;
    status(&mut client).await;
    let before = rss_kib(daemon.pid());
    let mut idle = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        // Each connection is made (the HTTP/2 handshake done) and answers one call, then idles.
        let mut client = daemon.client().await;
        client
            .status(proto::StatusRequest {
                names: vec!["sleeper".into()],
            })
            .await
            .unwrap();
        idle.push(client);
    }
    let open = std::fs::read_dir(format!("/proc/{}/fd", daemon.pid()))
        .unwrap()
        .count();
    assert!(open >= CONNECTIONS, "the daemon holds {open} descriptors");
    let after = rss_kib(daemon.pid());
    let per_connection = (after.saturating_sub(before)) * 1024 / CONNECTIONS as u64;
    eprintln!(
        "daemon RSS with {CONNECTIONS} idle connections: {before} KiB before, {after} KiB \
         after, about {per_connection} bytes each"
    );
    assert!(
        per_connection < 64 * 1024,
        "each idle connection costs {per_connection} bytes"
    );
    // A new caller is answered at once.
    let started = Instant::now();
    let mut fresh = daemon.client().await;
    let answer = status(&mut fresh).await;
    let took = started.elapsed();
    eprintln!("Status on a new connection beside them: {took:?}");
    assert!(took < Duration::from_secs(2), "Status took {took:?}");
    // The programs were not disturbed, and the idle connections still work.
    assert_eq!(answer[0].pid, pids["sleeper"]);
    assert_eq!(answer[0].state(), State::Running);
    status(&mut idle[0]).await;
    status(idle.last_mut().unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loopback_listener_without_tokens_stays_open_and_says_so() {
    let port = free_port();
    let daemon = Daemon::launch(Program::sleeper("sleeper"))
        .listen(port)
        .start()
        .await;
    let channel = tcp_channel(port).await;
    let outcomes = every_call(&channel, None).await;
    assert_outcomes("a loopback caller", &outcomes, OPERATOR, "");
    let log = daemon.log();
    assert!(
        log.contains(&format!(
            "the TCP listener on 127.0.0.1:{port} has no authentication: every user of this \
             machine can control the daemon through it; add daemon.tokens"
        )),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_carries_at_most_64_calls_at_once() {
    let daemon = Daemon::start(Program::sleeper("sleeper")).await;
    let mut client = daemon.client().await;
    let mut streams = Vec::new();
    for _ in 0..64 {
        let watch = client
            .watch_events(proto::WatchEventsRequest::default())
            .await
            .unwrap();
        streams.push(watch.into_inner());
    }
    // A 65th call on the same connection waits for a free stream (the daemon told the client
    // its limit) ...
    let mut waiting = client.clone();
    let mut call = Box::pin(async move { status(&mut waiting).await });
    let early = tokio::time::timeout(Duration::from_millis(500), &mut call).await;
    assert!(early.is_err(), "a 65th call ran beside 64 open ones");
    // ... while another connection is answered at once ...
    let mut other = daemon.client().await;
    assert_eq!(status(&mut other).await.len(), 1);
    // ... and it runs as soon as one of them ends.
    drop(streams.pop());
    let answer = tokio::time::timeout(DEADLINE, call)
        .await
        .expect("the 65th call");
    assert_eq!(answer.len(), 1);
}

/// CPU time the process has used, user and system, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = read(Path::new(&format!("/proc/{pid}/stat")));
    let (_, rest) = stat.rsplit_once(')').expect("a stat line");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_out_of_descriptors_pauses_accepting_and_stops_nothing() {
    const LIMIT: u32 = 64;
    let daemon = Daemon::launch(Program::sleeper("sleeper"))
        .open_files(LIMIT)
        .start()
        .await;
    let pids = daemon.wait_running(&["sleeper"]).await;
    let mut first = daemon.client().await;
    status(&mut first).await;
    // More connections than the daemon has descriptors for: the kernel queues them, the
    // daemon accepts until it has none left.
    let mut crowd = Vec::new();
    for _ in 0..2 * LIMIT {
        crowd.push(
            taskmaster::endpoint::connect(&daemon.target())
                .await
                .unwrap(),
        );
    }
    let warning = "accepting a connection: Too many open files";
    expect("the daemon to run out of descriptors", || async {
        daemon.log().contains(warning).then_some(())
    })
    .await;
    // It does not spin while it waits, and what it holds keeps working.
    let before = cpu_ticks(daemon.pid());
    let started = Instant::now();
    for _ in 0..20 {
        let now = instance(&mut first, "sleeper").await;
        assert_eq!((now.state(), now.pid), (State::Running, pids["sleeper"]));
    }
    tokio::time::sleep(Duration::from_millis(500).saturating_sub(started.elapsed())).await;
    let used = cpu_ticks(daemon.pid()) - before;
    let ticks_per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .unwrap()
        .unwrap() as u64;
    assert!(
        used * 4 < ticks_per_second,
        "the daemon used {used} ticks in half a second while out of descriptors"
    );
    assert_eq!(daemon.log().matches(warning).count(), 1, "{}", daemon.log());
    // Once the crowd leaves, new callers are answered again.
    drop(crowd);
    expect("a new caller to be answered", || async {
        let channel = taskmaster::endpoint::connect(&daemon.target()).await.ok()?;
        let mut client = proto::taskmaster_client::TaskmasterClient::new(channel);
        let answer = tokio::time::timeout(
            Duration::from_secs(1),
            client.status(proto::StatusRequest::default()),
        )
        .await;
        matches!(answer, Ok(Ok(_))).then_some(())
    })
    .await;
    let log = daemon.log();
    assert!(log.contains("accepting connections again"), "{log}");
}

/// Waits on `watch` for the next "config reloaded" event.
async fn next_reload(watch: &mut tonic::Streaming<proto::Event>) {
    let reloaded = async {
        while let Some(event) = watch.message().await.expect("the event stream") {
            if event.kind() == proto::EventKind::ConfigReloaded {
                return;
            }
        }
        panic!("the event stream ended before a reload");
    };
    tokio::time::timeout(DEADLINE, reloaded)
        .await
        .expect("a reload within the deadline");
}

/// What `token` (if any) gets for a Status over `channel`: its code.
async fn status_with(channel: &Channel, token: Option<&str>) -> Code {
    let answer = with_token(channel.clone(), token)
        .status(proto::StatusRequest::default())
        .await;
    answer.map_or_else(|status| status.code(), |_| Code::Ok)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_taken_out_of_the_config_is_refused_after_a_reload() {
    const DEPLOY: &str = "deploy-0123456789-abcdef";
    const MONITOR: &str = "monitor-0123456789-abcdef";
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    token_file(dir.path(), "deploy.token", DEPLOY);
    token_file(dir.path(), "monitor.token", MONITOR);
    let file = |name: &str| format!("{{name: {name}, role: operator, file: {name}.token}}");
    let config = |tokens: &[String], more: &str| {
        Config::from(Program::sleeper("sleeper")).daemon(&format!(
            "listen: {port}\ntokens: [{}]\n{more}",
            tokens.join(", ")
        ))
    };
    let daemon = Daemon::launch(config(&[file("deploy"), file("monitor")], ""))
        .in_dir(dir)
        .env("TASKMASTER_TEST_LATE", "late-0123456789-abcdef")
        .start()
        .await;
    // One connection for every call below: the policy is the one in force at each call, not
    // the one the connection was opened under.
    let channel = tcp_channel(port).await;
    assert_eq!(status_with(&channel, Some(DEPLOY)).await, Code::Ok);
    assert_eq!(status_with(&channel, Some(MONITOR)).await, Code::Ok);
    let mut watch = with_token(channel.clone(), Some(DEPLOY))
        .watch_events(proto::WatchEventsRequest::default())
        .await
        .unwrap()
        .into_inner();

    // SIGHUP: deploy is taken out.
    daemon.write_config(config(&[file("monitor")], ""));
    send(daemon.pid(), nix::sys::signal::Signal::SIGHUP);
    // A stream opened with it goes on (it was allowed when it began) and tells of the reload.
    next_reload(&mut watch).await;
    let status = with_token(channel.clone(), Some(DEPLOY))
        .status(proto::StatusRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(
        status.message().contains("the bearer token is not valid"),
        "{status:?}"
    );
    assert_eq!(status_with(&channel, Some(MONITOR)).await, Code::Ok);

    // The Reload RPC: deploy is back, monitor is out, and a key only a restart applies says so.
    daemon.write_config(config(&[file("deploy")], "tcp_idle_timeout: 30\n"));
    let mut client = daemon.client().await;
    let answer = client.reload(proto::ReloadRequest {}).await.unwrap();
    let warnings = answer.into_inner().warnings;
    assert!(
        warnings.iter().any(|warning| warning.ends_with(
            "daemon.tcp_idle_timeout changed since the daemon started: only a restart applies \
             it (operators, viewers and tokens are in force now)"
        )),
        "{warnings:?}"
    );
    assert_eq!(
        status_with(&channel, Some(MONITOR)).await,
        Code::Unauthenticated
    );
    assert_eq!(status_with(&channel, Some(DEPLOY)).await, Code::Ok);
    let log = daemon.log();
    assert!(log.contains("daemon.tcp_idle_timeout changed"), "{log}");

    // A token variable the daemon did not take out of its environment at start is refused: its
    // programs have inherited it.
    let late = "{name: late, role: viewer, env: TASKMASTER_TEST_LATE}".to_string();
    daemon.write_config(config(&[file("deploy"), late], ""));
    let status = client.reload(proto::ReloadRequest {}).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains(
            "daemon.tokens.1.env: the environment variable TASKMASTER_TEST_LATE is set, but it \
             was not a token variable when the daemon started"
        ),
        "{status:?}"
    );
    assert_eq!(status_with(&channel, Some(DEPLOY)).await, Code::Ok);
}

/// A Unix connection to `socket` whose peer is `uid` and `gid` without supplementary groups,
/// for as long as it lasts: made by a thread that takes those as its own effective ids with
/// the raw system calls (Linux keeps credentials per thread; libc's wrappers would change
/// every thread's). Needs root.
fn connect_as(socket: &Path, uid: u32, gid: u32) -> std::os::unix::net::UnixStream {
    use nix::libc::{SYS_setgroups, SYS_setresgid, SYS_setresuid, c_long, syscall};
    let socket = socket.to_path_buf();
    std::thread::spawn(move || {
        let keep = -1 as c_long;
        // SAFETY: these change the calling thread's credentials only; the thread ends here.
        unsafe {
            assert_eq!(
                syscall(SYS_setgroups, 0 as c_long, std::ptr::null::<u32>()),
                0
            );
            assert_eq!(syscall(SYS_setresgid, keep, gid as c_long, keep), 0);
            assert_eq!(syscall(SYS_setresuid, keep, uid as c_long, keep), 0);
        }
        std::os::unix::net::UnixStream::connect(socket).expect("connect as another uid")
    })
    .join()
    .unwrap()
}

/// A channel on `stream` and on nothing else: once it is gone, calls fail rather than
/// connect again (so every call that works went over this very connection).
async fn channel_on(stream: std::os::unix::net::UnixStream) -> Channel {
    stream.set_nonblocking(true).unwrap();
    let stream = tokio::net::UnixStream::from_std(stream).unwrap();
    let once = std::sync::Arc::new(std::sync::Mutex::new(Some(stream)));
    tonic::transport::Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
            let stream = once.lock().unwrap().take();
            async move {
                (stream.map(hyper_util::rt::TokioIo::new))
                    .ok_or_else(|| std::io::Error::other("this channel had its one connection"))
            }
        }))
        .await
        .expect("a channel on the connection")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_taken_out_of_the_config_is_refused_on_a_connection_already_open() {
    if !root_or_skip(
        "an_operator_taken_out_of_the_config_is_refused_on_a_connection_already_open",
        "to connect as nobody",
    ) {
        return;
    }
    let Ok(Some(nobody)) = nix::unistd::User::from_name("nobody") else {
        eprintln!("skipping: no user nobody");
        return;
    };
    let (uid, gid) = (nobody.uid.as_raw(), nobody.gid.as_raw());
    let config = |roles: &str| {
        Config::from(Program::sleeper("sleeper")).daemon(&format!("socket_mode: 0666\n{roles}"))
    };
    let daemon = Daemon::launch(config("operators: {users: [nobody]}\n"))
        .in_dir(open_dir())
        .start()
        .await;
    daemon.wait_running(&["sleeper"]).await;
    let mut theirs = proto::taskmaster_client::TaskmasterClient::new(
        channel_on(connect_as(&daemon.socket, uid, gid)).await,
    );
    let mut ours = daemon.client().await;
    let mut watch = ours
        .watch_events(proto::WatchEventsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let restart = proto::RestartRequest {
        names: vec!["sleeper".into()],
        no_wait: false,
    };
    theirs
        .restart(restart.clone())
        .await
        .expect("an operator restarts");

    // The Reload RPC: nobody is a viewer now, on the connection it already has.
    daemon.write_config(config("viewers: {users: [nobody]}\n"));
    ours.reload(proto::ReloadRequest {}).await.unwrap();
    theirs
        .status(proto::StatusRequest::default())
        .await
        .expect("a viewer looks");
    let status = theirs.restart(restart.clone()).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(
        status.message().contains(&format!(
            "uid {uid} (nobody) is a viewer: it may call Status, WatchEvents, Tail and MainTail \
             only, not Restart"
        )),
        "{status:?}"
    );

    // SIGHUP: no role at all (the stream told of the RPC's reload first).
    next_reload(&mut watch).await;
    daemon.write_config(config(""));
    send(daemon.pid(), nix::sys::signal::Signal::SIGHUP);
    next_reload(&mut watch).await;
    let status = theirs
        .status(proto::StatusRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(
        status
            .message()
            .contains(&format!("uid {uid} (nobody) may not use this daemon")),
        "{status:?}"
    );
}

/// Reads from `stream` until the daemon closes it (end of file or reset); how long that took.
/// Whatever the daemon sends first (HTTP/2 settings, pings) is read and dropped.
async fn until_closed(stream: &mut tokio::net::TcpStream) -> Duration {
    use tokio::io::AsyncReadExt;
    let started = Instant::now();
    let closed = async {
        let mut buffer = [0u8; 1024];
        while let Ok(read) = stream.read(&mut buffer).await
            && read > 0
        {}
    };
    tokio::time::timeout(DEADLINE, closed)
        .await
        .expect("the daemon to close the connection");
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_connections_beyond_the_cap_are_closed_and_the_daemon_keeps_serving() {
    const CAP: usize = 4;
    let port = free_port();
    let config = Config::from(Program::sleeper("sleeper"))
        .daemon(&format!("listen: {port}\ntcp_max_connections: {CAP}\n"));
    let daemon = Daemon::start(config).await;
    let mut held = Vec::new();
    for _ in 0..CAP {
        let channel = tcp_channel(port).await;
        assert!(serving(&channel).await);
        held.push(channel);
    }
    // Beyond the cap: each is closed as soon as it is accepted.
    for _ in 0..3 {
        let mut extra = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let took = until_closed(&mut extra).await;
        assert!(took < Duration::from_secs(2), "closed after {took:?}");
    }
    // What is open keeps working, and so does the Unix socket.
    for channel in &held {
        assert_eq!(status_with(channel, None).await, Code::Ok);
    }
    let mut client = daemon.client().await;
    assert_eq!(status(&mut client).await.len(), 1);
    // Said once, not once per connection.
    let log = daemon.log();
    let refusal = format!("closed at once: {CAP} are open already (daemon.tcp_max_connections)");
    assert_eq!(log.matches(&refusal).count(), 1, "{log}");
    // A connection that ends gives its place to the next.
    held.pop();
    expect("a new TCP connection to be served", || async {
        let channel = tcp_channel(port).await;
        let answer = tokio::time::timeout(Duration::from_secs(1), serving(&channel)).await;
        answer.unwrap_or(false).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_tcp_peer_is_dropped_after_the_idle_timeout_and_a_live_one_is_not() {
    let port = free_port();
    // Two places: a live client and one silent peer at a time.
    let config = Config::from(Program::sleeper("sleeper")).daemon(&format!(
        "listen: {port}\ntcp_idle_timeout: 1\ntcp_max_connections: 2\n"
    ));
    let daemon = Daemon::start(config).await;
    daemon.wait_running(&["sleeper"]).await;
    // A live client with a stream open and nothing to say: it only answers the daemon's pings.
    let live = tcp_channel(port).await;
    let mut watch = with_token(live.clone(), None)
        .watch_events(proto::WatchEventsRequest {
            names: vec!["sleeper".into()],
            since: None,
            run: None,
        })
        .await
        .unwrap()
        .into_inner();
    // A peer that never says anything, then one that starts HTTP/2 and falls silent (a dead
    // client): each is closed after the idle timeout, and its place is free again for the next
    // (beyond the cap it would be closed at once).
    let mut silent = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let took = until_closed(&mut silent).await;
    assert!(took >= Duration::from_millis(900), "closed after {took:?}");
    let mut dead = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    {
        use tokio::io::AsyncWriteExt;
        // The client preface and an empty SETTINGS frame.
        dead.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
            .await
            .unwrap();
    }
    let took = until_closed(&mut dead).await;
    assert!(took >= Duration::from_millis(900), "closed after {took:?}");
    // Two idle timeouts later, the live client's stream still carries events.
    let mut client = daemon.client().await;
    client
        .stop(proto::StopRequest {
            names: vec!["sleeper".into()],
            no_wait: false,
        })
        .await
        .unwrap();
    let stopped = async {
        while let Some(event) = watch.message().await.expect("the live stream") {
            if event.kind() == proto::EventKind::Stopped {
                return;
            }
        }
        panic!("the live stream ended");
    };
    tokio::time::timeout(DEADLINE, stopped)
        .await
        .expect("the stop on the live stream");
    assert_eq!(status_with(&live, None).await, Code::Ok);
}
