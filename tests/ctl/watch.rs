//! `taskctl watch`: one timestamped line (or JSON object) per event, until Ctrl-C.

use nix::sys::signal::Signal;
use taskmaster::proto::State;

use crate::{
    harness::{Following, ctl, follow},
    support::*,
};

/// A running `taskctl watch ARGS...`.
fn watch(socket: &std::path::Path, args: &[&str]) -> Following {
    let mut words = vec!["watch"];
    words.extend_from_slice(args);
    follow(socket, &words)
}

/// `2026-11-26 09:10:00.123`
fn is_timestamp(text: &str) -> bool {
    let shape = text
        .chars()
        .map(|c| if c.is_ascii_digit() { '9' } else { c })
        .collect::<String>();
    shape == "9999-99-99 99:99:99.999"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_prints_a_kill_9_and_the_restart() {
    let daemon = Daemon::start(Program::sleeper("sleeper")).await;
    let mut client = daemon.client().await;
    let first = wait_state(&mut client, "sleeper", State::Running).await;
    // From the first event on, so nothing can happen before watch listens.
    let watch = watch(&daemon.socket, &["--since", "0", "sleeper"]);
    watch.line("sleeper running", |line| {
        line.ends_with(&format!(
            "  sleeper  STARTING -> RUNNING  pid {}",
            first.pid
        ))
    });
    send(first.pid, Signal::SIGKILL);
    let exited = watch.line("sleeper exited", |line| {
        line.contains("  sleeper  RUNNING -> EXITED")
    });
    assert!(is_timestamp(&exited[..23]), "{exited}");
    assert!(
        exited.ends_with(&format!(
            "  pid {}  killed by SIGKILL (unexpected)",
            first.pid
        )),
        "{exited}"
    );
    let spawned = watch.line("sleeper spawned", |line| {
        line.contains("  sleeper  EXITED -> STARTING  pid ")
    });
    let second = wait_state(&mut client, "sleeper", State::Running).await;
    // The autorestart is the daemon's policy, and watch says so.
    assert!(
        spawned.ends_with(&format!("pid {}  (by policy)", second.pid)),
        "{spawned}"
    );
    watch.line("sleeper running again", |line| {
        line.ends_with(&format!(
            "  sleeper  STARTING -> RUNNING  pid {}",
            second.pid
        ))
    });
    assert_eq!(watch.interrupt(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_json_is_one_object_per_line_and_since_resumes() {
    let daemon = Daemon::start(Program::sleeper("sleeper")).await;
    let mut client = daemon.client().await;
    wait_state(&mut client, "sleeper", State::Running).await;
    let parse = |line: &str| serde_json::from_str::<serde_json::Value>(line).expect("JSON line");
    let all = watch(&daemon.socket, &["--json", "--since", "0"]);
    let first = parse(&all.line("the first event", |_| true));
    assert_eq!(first["seq"], 1);
    assert_eq!(first["kind"], "DAEMON_STARTED");
    assert_eq!(first["instance"], serde_json::Value::Null);
    let mut seq = 1;
    let started = loop {
        let event = parse(&all.line("an event", |_| true));
        seq += 1;
        assert_eq!(event["seq"], seq);
        if event["kind"] == "STARTED" {
            break event;
        }
    };
    assert_eq!(started["instance"], "sleeper");
    assert_eq!(started["program"], "sleeper");
    assert_eq!(started["old_state"], "STARTING");
    assert_eq!(started["new_state"], "RUNNING");
    assert_eq!(all.interrupt(), Some(0));

    let resumed = watch(&daemon.socket, &["--json", "--since", "2"]);
    let first = parse(&resumed.line("the first event after 2", |_| true));
    assert_eq!(first["seq"], 3);
    assert_eq!(resumed.interrupt(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_ends_with_the_daemon() {
    let daemon = Daemon::start(Program::sleeper("sleeper")).await;
    let mut client = daemon.client().await;
    let mut watch = watch(&daemon.socket, &["--since", "0"]);
    watch.line("the daemon start", |line| {
        line.contains("  taskmasterd  daemon started")
    });
    client
        .shutdown(taskmaster::proto::ShutdownRequest {})
        .await
        .unwrap();
    watch.line("the daemon stopping", |line| {
        line.contains("  taskmasterd  daemon stopping")
    });
    assert_eq!(watch.exit_code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_of_an_unknown_name_fails() {
    let daemon = Daemon::start(Program::sleeper("sleeper")).await;
    let run = ctl(&daemon.socket, &["watch", "nope"]);
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (1, "no such program or instance: nope\n")
    );
}
