//! taskctl's credentials against a real daemon that asks for them: bearer tokens (from
//! `--token-file`, `TASKMASTER_TOKEN` or the hosts file) on every call, streams included; TLS
//! with the test's CA; mutual TLS. Each refusal says what is missing.

use std::os::unix::fs::PermissionsExt;

use taskmaster::{
    endpoint::{self, ClientOptions, Target, TlsProblem},
    proto::State,
};

use crate::{
    harness::{Run, follow_command, run, taskctl},
    support::*,
};

const OPERATOR: &str = "deploy-0123456789-abcdef";
const VIEWER: &str = "monitor-0123456789-abcdef";

/// A daemon on a TCP port of loopback with an operator and a viewer token, its `daemon:` keys
/// besides those being `more`; the files of `certificates` are in its directory.
async fn daemon_with(port: u16, certificates: &Certificates, more: &str) -> Daemon {
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "deploy.token", &format!("{OPERATOR}\n"), 0o600);
    write_file(dir.path(), "monitor.token", &format!("{VIEWER}\n"), 0o600);
    certificates.write_server_files(dir.path());
    let config = Config::from(Program::sleeper("sleeper")).daemon(&format!(
        "listen: {port}\n{more}tokens: [{{name: deploy, role: operator, file: deploy.token}}, \
         {{name: monitor, role: viewer, file: monitor.token}}]\n"
    ));
    Daemon::launch(config).in_dir(dir).start().await
}

/// `taskctl ARGS...`.
fn ctl(args: &[&str]) -> Run {
    let mut command = taskctl();
    command.args(args);
    run(command)
}

/// The client's own files (token copies, the CA, its certificate) in a directory of its own.
struct ClientFiles {
    dir: tempfile::TempDir,
}

impl ClientFiles {
    fn new(certificates: &Certificates) -> ClientFiles {
        let dir = tempfile::tempdir().unwrap();
        write_file(dir.path(), "deploy.token", &format!("{OPERATOR}\n"), 0o600);
        write_file(dir.path(), "monitor.token", &format!("{VIEWER}\n"), 0o600);
        write_file(
            dir.path(),
            "wrong.token",
            "not-the-token-0123456789\n",
            0o600,
        );
        write_file(dir.path(), "ca.pem", &certificates.ca, 0o644);
        write_file(dir.path(), "client.pem", &certificates.client_cert, 0o644);
        write_file(dir.path(), "client.key", &certificates.client_key, 0o600);
        ClientFiles { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_go_on_every_call_and_refusals_say_what_is_missing() {
    let port = free_port();
    let certificates = Certificates::new();
    let daemon = daemon_with(port, &certificates, "").await;
    daemon.wait_running(&["sleeper"]).await;
    let files = ClientFiles::new(&certificates);
    let host = format!("127.0.0.1:{port}");
    let url = format!("http://{host}");

    let run = ctl(&["-H", &host, "status"]);
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (
            1,
            format!(
                "taskmasterd at {url} wants a token: pass --token-file or set TASKMASTER_TOKEN\n"
            )
            .as_str()
        )
    );
    let wrong = files.path("wrong.token");
    let run = ctl(&["-H", &host, "--token-file", &wrong, "status"]);
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stderr,
        format!("taskmasterd at {url} did not accept the token of --token-file {wrong}\n")
    );
    let mut command = taskctl();
    command
        .env("TASKMASTER_TOKEN", "not-the-token-0123456789")
        .args(["-H", &host, "pid"]);
    let run = crate::harness::run(command);
    assert_eq!(
        (run.code, run.stderr),
        (
            1,
            format!("taskmasterd at {url} did not accept the token of TASKMASTER_TOKEN\n")
        )
    );

    // The viewer sees, the operator acts.
    let viewer = files.path("monitor.token");
    let run = ctl(&["-H", &host, "--token-file", &viewer, "status"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.starts_with("sleeper  RUNNING   pid "),
        "{}",
        run.stdout
    );
    let run = ctl(&["-H", &host, "--token-file", &viewer, "stop", "sleeper"]);
    assert_eq!((run.code, run.stdout.as_str()), (1, ""));
    assert!(
        run.stderr.starts_with(&format!(
            "taskmasterd at {url} does not let this caller's role run `stop`: token monitor is \
             a viewer"
        )),
        "{}",
        run.stderr
    );
    let mut client = daemon.client().await;
    assert_eq!(
        instance(&mut client, "sleeper").await.state(),
        State::Running
    );
    let mut command = taskctl();
    command
        .env("TASKMASTER_TOKEN", OPERATOR)
        .args(["-H", &host, "stop", "sleeper"]);
    let run = crate::harness::run(command);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "sleeper: stopped\n"),
        "{run:?}"
    );
    assert_eq!(
        instance(&mut client, "sleeper").await.state(),
        State::Stopped
    );

    // A stream carries the token too.
    let mut command = taskctl();
    command.args([
        "-H",
        &host,
        "--token-file",
        &viewer,
        "watch",
        "--since",
        "0",
    ]);
    let watch = follow_command(command);
    watch.line("the daemon start", |line| {
        line.contains("  taskmasterd  daemon started")
    });
    assert_eq!(watch.interrupt(), Some(0));
    let run = ctl(&["-H", &host, "watch"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("wants a token"), "{}", run.stderr);

    // A token file every user may read is refused, as the daemon refuses its own; one its
    // group may read works.
    std::fs::set_permissions(&viewer, std::fs::Permissions::from_mode(0o644)).unwrap();
    let run = ctl(&["-H", &host, "--token-file", &viewer, "pid"]);
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr,
        format!(
            "taskctl: the token file {viewer} can be read or changed by every user (mode 0644); \
             make it private: chmod o-rwx {viewer}\n"
        )
    );
    std::fs::set_permissions(&viewer, std::fs::Permissions::from_mode(0o640)).unwrap();
    let run = ctl(&["-H", &host, "--token-file", &viewer, "pid"]);
    assert_eq!(
        (run.code, run.stdout, run.stderr.as_str()),
        (0, format!("{}\n", daemon.pid()), "")
    );
    // One that cannot be read stops taskctl before it calls.
    let missing = files.path("missing.token");
    let run = ctl(&["-H", &host, "--token-file", &missing, "pid"]);
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr,
        format!(
            "taskctl: cannot read the token file {missing}: No such file or directory (os error \
             2)\n"
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_wants_its_ca_and_mutual_tls_a_client_certificate() {
    let certificates = Certificates::new();
    let files = ClientFiles::new(&certificates);
    let deploy = files.path("deploy.token");
    let ca = files.path("ca.pem");

    let port = free_port();
    let tls = "tls: {cert: server.pem, key: server.key}\n";
    let daemon = daemon_with(port, &certificates, tls).await;
    daemon.wait_running(&["sleeper"]).await;
    let url = format!("https://localhost:{port}");
    let run = ctl(&["-H", &url, "--token-file", &deploy, "status"]);
    assert_eq!(run.code, 3);
    assert_eq!(
        run.stderr,
        format!(
            "no TLS with taskmasterd at {url}: its certificate is signed by an unknown CA; pass \
             the CA that signed it with --tls-ca (or `ca:` in the hosts file)\n"
        )
    );
    let run = ctl(&[
        "-H",
        &url,
        "--tls-ca",
        &ca,
        "--token-file",
        &deploy,
        "status",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.starts_with("sleeper  RUNNING   pid "),
        "{}",
        run.stdout
    );
    // Plain text to it.
    let plain = format!("127.0.0.1:{port}");
    let run = ctl(&["-H", &plain, "--token-file", &deploy, "status"]);
    assert_eq!(run.code, 3);
    assert_eq!(
        run.stderr,
        format!(
            "no TLS with taskmasterd at http://{plain}: it answers in TLS only; use https://\n"
        )
    );
    // A CA file that is none.
    let run = ctl(&["-H", &url, "--tls-ca", &deploy, "status"]);
    assert_eq!(
        (run.code, run.stderr),
        (
            2,
            format!("taskctl: the CA certificate {deploy} holds no certificate in PEM\n")
        )
    );
    // The token is still asked for under TLS.
    let run = ctl(&["-H", &url, "--tls-ca", &ca, "status"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("wants a token"), "{}", run.stderr);
    // TLS flags need an https:// host.
    let run = ctl(&[
        "-H",
        &format!("127.0.0.1:{port}"),
        "--tls-ca",
        &ca,
        "status",
    ]);
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (
            2,
            "taskctl: --tls-ca is for https:// hosts, and no host given is one\n"
        )
    );
    drop(daemon);

    // https:// to a daemon without TLS.
    let port = free_port();
    let daemon = daemon_with(port, &certificates, "").await;
    let url = format!("https://localhost:{port}");
    let run = ctl(&[
        "-H",
        &url,
        "--tls-ca",
        &ca,
        "--token-file",
        &deploy,
        "status",
    ]);
    assert_eq!(run.code, 3);
    assert_eq!(
        run.stderr,
        format!(
            "no TLS with taskmasterd at {url}: it does not answer in TLS; for a daemon without \
             TLS use http://\n"
        )
    );
    drop(daemon);

    // Mutual TLS.
    let port = free_port();
    let mutual = "tls: {cert: server.pem, key: server.key, client_ca: ca.pem}\n";
    let daemon = daemon_with(port, &certificates, mutual).await;
    daemon.wait_running(&["sleeper"]).await;
    let url = format!("https://localhost:{port}");
    // Without a certificate the handshake succeeds (health answers anyone) and the call is
    // refused: the daemon says it takes certificates (and its tokens).
    let run = ctl(&["-H", &url, "--tls-ca", &ca, "status"]);
    assert_eq!(
        (run.code, run.stderr),
        (
            1,
            format!(
                "taskmasterd at {url} wants a token or a client certificate: pass --token-file \
                 or set TASKMASTER_TOKEN, or pass --tls-cert and --tls-key\n"
            )
        )
    );
    let (cert, key) = (files.path("client.pem"), files.path("client.key"));
    let with_certificate = [
        "-H",
        &url,
        "--tls-ca",
        &ca,
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
    ];
    let run = ctl(&[&with_certificate[..], &["stop", "sleeper"]].concat());
    assert_eq!(
        (run.code, run.stdout.as_str(), run.stderr.as_str()),
        (0, "sleeper: stopped\n", "")
    );
    // What taskctl asks when a call over TLS is cut: the daemon's verdict on the certificate.
    // None given is no verdict (the daemon takes the handshake); one of another CA is refused.
    let target = Target::Tcp(url.clone());
    let mut options = ClientOptions::default();
    options.tls.ca = Some(certificates.ca.clone().into_bytes());
    assert_eq!(endpoint::tls_verdict(&target, &options).await, None);
    let stranger = Certificates::new();
    options.tls.identity = Some((
        stranger.client_cert.clone().into_bytes(),
        stranger.client_key.clone().into_bytes(),
    ));
    assert!(
        matches!(
            endpoint::tls_verdict(&target, &options).await,
            Some(TlsProblem::ClientCertificateRefused(_))
        ),
        "a certificate of another CA"
    );
    options.tls.identity = Some((
        certificates.client_cert.clone().into_bytes(),
        certificates.client_key.clone().into_bytes(),
    ));
    let started = std::time::Instant::now();
    assert_eq!(endpoint::tls_verdict(&target, &options).await, None);
    // Told by the daemon's first bytes, not by the verdict's 2 s timeout.
    assert!(started.elapsed() < std::time::Duration::from_millis(1500));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_host_brings_its_credentials_beside_a_local_one() {
    let certificates = Certificates::new();
    let files = ClientFiles::new(&certificates);
    let port = free_port();
    let remote = daemon_with(
        port,
        &certificates,
        "tls: {cert: server.pem, key: server.key}\n",
    )
    .await;
    let local = Daemon::start(Program::sleeper("sleeper")).await;
    let remote_pid = remote.wait_running(&["sleeper"]).await["sleeper"];
    let local_pid = local.wait_running(&["sleeper"]).await["sleeper"];
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join("taskmaster")).unwrap();
    // Paths relative to the hosts file's folder, and absolute ones.
    std::fs::copy(
        files.path("deploy.token"),
        home.path().join("taskmaster/prod.token"),
    )
    .unwrap();
    std::fs::write(
        home.path().join("taskmaster/hosts.yaml"),
        format!(
            "prod:\n  address: https://localhost:{port}\n  token_file: prod.token\n  ca: {}\n\
             here:\n  address: unix:{}\n",
            files.path("ca.pem"),
            local.socket.display()
        ),
    )
    .unwrap();
    let mut command = taskctl();
    command
        .env("XDG_CONFIG_HOME", home.path())
        .args(["-H", "prod,here", "status"]);
    let run = run(command);
    assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{}", run.stdout);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", run.stdout);
    assert!(
        lines[0].starts_with(&format!("prod  sleeper  RUNNING   pid {remote_pid}, ")),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].starts_with(&format!("here  sleeper  RUNNING   pid {local_pid}, ")),
        "{}",
        lines[1]
    );
}
