//! Reload by SIGHUP and by RPC applies only the difference; a broken config changes nothing.

use std::collections::HashMap;

use taskmaster::proto::{self, State};

use crate::support::*;

const BEFORE: &str = "
    same:
      cmd: sleep 1000
      starttime: 0.2
      stoptime: 1
    changed:
      cmd: sleep 1000
      starttime: 0.2
      stoptime: 1
    removed:
      cmd: sleep 1000
      starttime: 0.2
      stoptime: 1
    grown:
      cmd: sleep 1000
      numprocs: 2
      starttime: 0.2
      stoptime: 1
    shrunk:
      cmd: sleep 1000
      numprocs: 3
      starttime: 0.2
      stoptime: 1
    ";

const AFTER: &str = "
    same:
      cmd: sleep 1000
      starttime: 0.2
      stoptime: 1
    changed:
      cmd: sleep 1001
      starttime: 0.2
      stoptime: 1
    grown:
      cmd: sleep 1000
      numprocs: 3
      starttime: 0.2
      stoptime: 1
    shrunk:
      cmd: sleep 1000
      numprocs: 1
      starttime: 0.2
      stoptime: 1
    added:
      cmd: sleep 1000
      starttime: 0.2
      stoptime: 1
    ";

async fn running_pids(client: &mut Client) -> HashMap<String, u32> {
    status(client)
        .await
        .into_iter()
        .filter(|instance| instance.state() == State::Running)
        .map(|instance| (instance.name, instance.pid))
        .collect()
}

async fn all_running(client: &mut Client, names: &[&str]) -> HashMap<String, u32> {
    expect("every instance RUNNING", || {
        let mut client = client.clone();
        async move {
            let pids = running_pids(&mut client).await;
            names
                .iter()
                .all(|name| pids.contains_key(*name))
                .then_some(pids)
        }
    })
    .await
}

const BEFORE_NAMES: [&str; 8] = [
    "same", "changed", "removed", "grown:0", "grown:1", "shrunk:0", "shrunk:1", "shrunk:2",
];
/// In status order: by program name, then index.
const AFTER_NAMES: [&str; 7] = [
    "added", "changed", "grown:0", "grown:1", "grown:2", "same", "shrunk",
];

/// Checks the state after the AFTER config is applied, against the pids from before.
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
    let daemon = Daemon::start(BEFORE).await;
    let mut client = daemon.client().await;
    let before = all_running(&mut client, &BEFORE_NAMES).await;
    daemon.write_programs(AFTER);
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
    let daemon = Daemon::start(BEFORE).await;
    let mut client = daemon.client().await;
    let before = all_running(&mut client, &BEFORE_NAMES).await;
    daemon.write_programs(AFTER);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.pid() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    check_applied(&daemon, &mut client, &before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_config_changes_nothing_and_the_daemon_keeps_running() {
    let mut daemon = Daemon::start(BEFORE).await;
    let mut client = daemon.client().await;
    let before = all_running(&mut client, &BEFORE_NAMES).await;
    daemon.write_programs(
        "
        same:
          cmd: sleep 1000
          numprocs: lots
        added:
          cmd: sleep 1000
          colour: blue
        ",
    );
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
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.pid() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    expect("the second rejection in the log", || async {
        (daemon.log().matches("config rejected").count() == 2).then_some(())
    })
    .await;
    assert!(daemon.try_exit().is_none(), "the daemon died");
    let now = running_pids(&mut client).await;
    assert_eq!(now, before);
}
