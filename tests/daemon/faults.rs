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
