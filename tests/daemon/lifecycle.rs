//! The lifecycle of processes: start, restart by policy, retries and FATAL, stop.

use taskmaster::proto::State;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_a_child_restarts_it_with_a_new_pid() {
    let daemon = Daemon::start(
        "
        sleeper:
          cmd: sleep 1000
          starttime: 0.2
          stoptime: 1
        ",
    )
    .await;
    let mut client = daemon.client().await;
    let first = wait_state(&mut client, "sleeper", State::Running).await;
    assert!(alive(first.pid));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first.pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let second = expect("a new pid for sleeper", || {
        let mut client = client.clone();
        async move {
            let now = instance(&mut client, "sleeper").await;
            (now.state() == State::Running && now.pid != first.pid).then_some(now)
        }
    })
    .await;
    assert!(alive(second.pid));
    assert!(!alive(first.pid));
    assert_eq!(second.restarts, 1);
    assert_eq!(second.signal, Some(9));
}
