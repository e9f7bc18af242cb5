//! Reload by SIGHUP and by RPC applies only the difference; a broken config changes nothing.

use std::collections::HashMap;

use nix::sys::signal::Signal;
use taskmaster::proto::{self, State};

use crate::support::*;

fn before() -> Config {
    Config::new()
        .program(Program::sleeper("same"))
        .program(Program::sleeper("changed"))
        .program(Program::sleeper("removed"))
        .program(Program::sleeper("grown").numprocs(2))
        .program(Program::sleeper("shrunk").numprocs(3))
}

/// `same` as it was, `changed` with another command, `removed` gone, `grown` and `shrunk`
/// with other numprocs, and `added`.
fn after() -> Config {
    Config::new()
        .program(Program::sleeper("same"))
        .program(
            Program::new("changed", "sleep 1001")
                .starttime(0.2)
                .stoptime(1.0),
        )
        .program(Program::sleeper("grown").numprocs(3))
        .program(Program::sleeper("shrunk").numprocs(1))
        .program(Program::sleeper("added"))
}

async fn running_pids(client: &mut Client) -> HashMap<String, u32> {
    status(client)
        .await
        .into_iter()
        .filter(|instance| instance.state() == State::Running)
        .map(|instance| (instance.name, instance.pid))
        .collect()
}

const BEFORE_NAMES: [&str; 8] = [
    "same", "changed", "removed", "grown:0", "grown:1", "shrunk:0", "shrunk:1", "shrunk:2",
];
/// In status order: by program name, then index.
const AFTER_NAMES: [&str; 7] = [
    "added", "changed", "grown:0", "grown:1", "grown:2", "same", "shrunk",
];

/// Checks the state after the [`after`] config is applied, against the pids from before.
async fn check_applied(daemon: &Daemon, client: &mut Client, before: &HashMap<String, u32>) {
    let after = expect("the reload to be applied", || {
        let mut client = client.clone();
        async move {
            let now = status(&mut client).await;
            let names: Vec<&str> = now.iter().map(|i| i.name.as_str()).collect();
            let settled = names == AFTER_NAMES && now.iter().all(|i| i.state() == State::Running);
            settled.then(|| {
                now.into_iter()
                    .map(|i| (i.name, i.pid))
                    .collect::<HashMap<_, _>>()
            })
        }
    })
    .await;
    // Unchanged program and the instances kept by a numprocs change: same processes.
    assert_eq!(after["same"], before["same"]);
    assert_eq!(after["grown:0"], before["grown:0"]);
    assert_eq!(after["grown:1"], before["grown:1"]);
    assert_eq!(after["shrunk"], before["shrunk:0"]);
    // Changed program: restarted with the new command.
    assert_ne!(after["changed"], before["changed"]);
    assert!(!alive(before["changed"]));
    let cmdline = std::fs::read_to_string(format!("/proc/{}/cmdline", after["changed"])).unwrap();
    assert_eq!(cmdline, "sleep\u{0}1001\u{0}");
    // Removed program and extra instances: stopped.
    for gone in ["removed", "shrunk:1", "shrunk:2"] {
        assert!(!alive(before[gone]), "{gone} still alive");
    }
    let log = daemon.log();
    assert!(log.contains("config reloaded"), "{log}");
    assert!(
        log.contains("added: added; changed: changed grown shrunk; removed: removed"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_by_rpc_applies_only_the_difference() {
    let daemon = Daemon::start(before()).await;
    let mut client = daemon.client().await;
    let before = daemon.wait_running(&BEFORE_NAMES).await;
    daemon.write_config(after());
    let summary = client
        .reload(proto::ReloadRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(summary.added, vec!["added"]);
    assert_eq!(summary.changed, vec!["changed", "grown", "shrunk"]);
    assert_eq!(summary.removed, vec!["removed"]);
    assert_eq!(summary.unchanged, vec!["same"]);
    check_applied(&daemon, &mut client, &before).await;
    let error = client
        .status(proto::StatusRequest {
            names: vec!["removed".into()],
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_by_sighup_applies_only_the_difference() {
    let daemon = Daemon::start(before()).await;
    let mut client = daemon.client().await;
    let before = daemon.wait_running(&BEFORE_NAMES).await;
    daemon.write_config(after());
    send(daemon.pid(), Signal::SIGHUP);
    check_applied(&daemon, &mut client, &before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_config_changes_nothing_and_the_daemon_keeps_running() {
    let mut daemon = Daemon::start(before()).await;
    let mut client = daemon.client().await;
    let before = daemon.wait_running(&BEFORE_NAMES).await;
    // Literal: the errors' lines and columns are checked.
    daemon.write_config(Config::yaml(
        "
        same:
          cmd: sleep 1000
          numprocs: lots
        added:
          cmd: sleep 1000
          colour: blue
        ",
    ));
    let error = client.reload(proto::ReloadRequest {}).await.unwrap_err();
    assert_eq!(error.code(), tonic::Code::InvalidArgument);
    let message = error.message();
    let config = daemon.config_path.display().to_string();
    // Every error, each with file, line, column and key.
    assert!(
        message.contains(&format!("{config}:8:15: programs.same.numprocs")),
        "{message}"
    );
    assert!(
        message.contains(&format!("{config}:11:5: programs.added.colour")),
        "{message}"
    );
    // SIGHUP takes the same path: rejected too.
    send(daemon.pid(), Signal::SIGHUP);
    expect("the second rejection in the log", || async {
        (daemon.log().matches("config rejected").count() == 2).then_some(())
    })
    .await;
    assert!(daemon.try_exit().is_none(), "the daemon died");
    let now = running_pids(&mut client).await;
    assert_eq!(now, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_that_cannot_be_read_yet_stalls_nothing_but_its_reload() {
    let daemon = Daemon::start(Program::sleeper("sleeper")).await;
    let mut client = daemon.client().await;
    wait_state(&mut client, "sleeper", State::Running).await;
    // The config becomes a FIFO nobody writes: reading it blocks until somebody does.
    let text = std::fs::read_to_string(&daemon.config_path).unwrap();
    std::fs::remove_file(&daemon.config_path).unwrap();
    nix::unistd::mkfifo(&daemon.config_path, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let mut reloader = daemon.client().await;
    let reload = tokio::spawn(async move { reloader.reload(proto::ReloadRequest {}).await });
    // Still served, and still acting, while the read waits: a stop goes through.
    let stopped = tokio::time::timeout(
        DEADLINE,
        client.stop(proto::StopRequest {
            names: vec!["sleeper".into()],
            no_wait: false,
        }),
    )
    .await
    .expect("Stop answered while a reload waits for its file")
    .unwrap()
    .into_inner();
    assert!(stopped.results[0].ok, "{stopped:?}");
    assert!(
        !reload.is_finished(),
        "the reload cannot be done: nobody wrote the file"
    );
    // Once written, the reload reads it and applies it.
    let path = daemon.config_path.clone();
    tokio::task::spawn_blocking(move || std::fs::write(path, text))
        .await
        .unwrap()
        .unwrap();
    let summary = tokio::time::timeout(DEADLINE, reload)
        .await
        .expect("the reload ends once its file is read")
        .unwrap()
        .unwrap()
        .into_inner();
    assert_eq!(
        summary.unchanged,
        vec!["sleeper".to_string()],
        "{summary:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_the_daemon_while_a_sighup_reload_waits_for_its_file() {
    let mut daemon = Daemon::start(Program::sleeper("sleeper")).await;
    let pids = daemon.wait_running(&["sleeper"]).await;
    std::fs::remove_file(&daemon.config_path).unwrap();
    nix::unistd::mkfifo(&daemon.config_path, nix::sys::stat::Mode::S_IRWXU).unwrap();
    send(daemon.pid(), Signal::SIGHUP);
    let mut client = daemon.client().await;
    // The reload is asked for and waits on the file; the daemon goes on answering.
    assert_eq!(status(&mut client).await.len(), 1);
    send(daemon.pid(), Signal::SIGTERM);
    let status = daemon.wait_exit().await;
    assert!(status.success(), "{status:?}");
    for pid in pids.values() {
        assert!(!alive(*pid), "{pid} outlived the daemon");
    }
}
