//! Faults a supervisor is known to meet, each reproduced with real processes: the daemon's own
//! start-up and end, and what it leaves behind.

use std::{os::unix::process::ExitStatusExt, time::Instant};

use nix::sys::signal::Signal;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_the_moment_the_socket_appears_is_a_clean_exit() {
    // The socket is the first thing a client (or a script that waits for it) sees: from then on
    // SIGTERM must be a shutdown, not the signal's default action, which would leave the
    // socket and the pidfile behind.
    for round in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("taskmaster.sock");
        let pidfile = dir.path().join("taskmaster.pid");
        let config = Config::from(Program::sleeper("sleeper"));
        let text = config.file(dir.path(), &socket, &dir.path().join("log"), &pidfile);
        let config_path = dir.path().join("taskmaster.yaml");
        std::fs::write(&config_path, text).unwrap();
        let mut daemon = Guard::spawn(&mut foreground(&config_path));
        // As soon as the socket exists: a tight wait, so that the window is hit if it is there.
        let began = Instant::now();
        while !socket.exists() {
            assert!(began.elapsed() < DEADLINE, "round {round}: no socket");
            assert!(
                daemon.try_exit().is_none(),
                "round {round}: the daemon died"
            );
            std::hint::spin_loop();
        }
        send(daemon.pid(), Signal::SIGTERM);
        let status = tokio::task::spawn_blocking(move || daemon.wait_exit())
            .await
            .unwrap()
            .expect("the daemon exits after SIGTERM");
        assert_eq!(
            (status.code(), status.signal()),
            (Some(0), None),
            "round {round}: killed by the signal rather than shut down"
        );
        assert!(
            !socket.exists(),
            "round {round}: the socket was left behind"
        );
        assert!(
            !pidfile.exists(),
            "round {round}: the pidfile was left behind"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_the_daemon_creates_have_their_own_modes_under_any_umask() {
    use std::os::unix::fs::PermissionsExt;
    let daemon = Daemon::launch(Program::new(
        "talker",
        "/bin/sh -c 'echo hi; echo oops >&2; exec sleep 1000'",
    ))
    .umask(0o000)
    .start()
    .await;
    daemon.wait_running(&["talker"]).await;
    let mode = |path: &std::path::Path| {
        std::fs::metadata(path)
            .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
            .permissions()
            .mode()
            & 0o7777
    };
    let logs = daemon.path("logs");
    expect("the output files", || async {
        let both = logs.join("talker.out.log").exists() && logs.join("talker.err.log").exists();
        both.then_some(())
    })
    .await;
    for (file, wanted) in [
        (daemon.path("taskmaster.log"), 0o640),
        (daemon.path("taskmaster.pid"), 0o644),
        (logs.join("talker.out.log"), 0o640),
        (logs.join("talker.err.log"), 0o640),
        (logs.clone(), 0o755),
        (daemon.socket.clone(), 0o600),
    ] {
        assert_eq!(mode(&file), wanted, "{} under umask 000", file.display());
    }
}
