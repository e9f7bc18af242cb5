//! Every config option has its effect on the real process: checked in /proc/<pid>/.

use taskmaster::proto::{self, State};

use crate::support::*;

fn proc_file(pid: u32, name: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/{name}")).unwrap_or_default()
}

fn status_field(pid: u32, field: &str) -> String {
    proc_file(pid, "status")
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{field}:")))
        .map(|value| value.trim().to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_workingdir_and_umask_reach_the_process() {
    let daemon = Daemon::start(
        Config::new()
            .program(
                Program::new("configured", "sleep 1000")
                    .starttime(0.2)
                    .env("{ STARTED_BY: taskmaster, ANSWER: 42, VERBOSE: true, RATIO: 1.5 }")
                    .workingdir("{dir}")
                    .umask("027"),
            )
            .program(Program::new("plain", "sleep 1000").starttime(0.2)),
    )
    .await;
    let mut client = daemon.client().await;
    let configured = wait_state(&mut client, "configured", State::Running).await;
    let environ = proc_file(configured.pid, "environ");
    let vars: Vec<&str> = environ.split('\0').collect();
    for expected in [
        "STARTED_BY=taskmaster",
        "ANSWER=42",
        "VERBOSE=true",
        "RATIO=1.5",
    ] {
        assert!(vars.contains(&expected), "{expected} missing from {vars:?}");
    }
    // The daemon's own environment is kept.
    assert!(vars.iter().any(|var| var.starts_with("PATH=")), "{vars:?}");
    let cwd = std::fs::read_link(format!("/proc/{}/cwd", configured.pid)).unwrap();
    assert_eq!(cwd, daemon.dir.path().canonicalize().unwrap());
    assert_eq!(status_field(configured.pid, "Umask"), "0027");

    let plain = wait_state(&mut client, "plain", State::Running).await;
    assert!(!proc_file(plain.pid, "environ").contains("STARTED_BY"));
    // Without umask the daemon's own applies (not the 0177 it uses to bind its socket).
    let daemon_umask = status_field(daemon.pid(), "Umask");
    assert_eq!(status_field(plain.pid, "Umask"), daemon_umask);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_child_gets_its_own_group_only_fds_0_to_2_and_clean_signals() {
    let daemon = Daemon::start(
        Config::new()
            .program(
                Program::new("clean", "sleep 1000")
                    .starttime(0.2)
                    .set("stdout", "null")
                    .set("stderr", "null"),
            )
            .program(Program::new("captured", "sleep 1000").starttime(0.2)),
    )
    .await;
    let mut client = daemon.client().await;
    let clean = wait_state(&mut client, "clean", State::Running).await;
    let fds_of = |pid: u32| {
        let mut fds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        fds.sort();
        fds
    };
    assert_eq!(fds_of(clean.pid), vec!["0", "1", "2"]);
    for fd in 0..=2 {
        let target = std::fs::read_link(format!("/proc/{}/fd/{fd}", clean.pid)).unwrap();
        assert_eq!(target, std::path::Path::new("/dev/null"), "fd {fd}");
    }
    // Captured output: stdout and stderr are pipes to the daemon, and still nothing else is
    // open.
    let captured = wait_state(&mut client, "captured", State::Running).await;
    assert_eq!(fds_of(captured.pid), vec!["0", "1", "2"]);
    for fd in 1..=2 {
        let target = std::fs::read_link(format!("/proc/{}/fd/{fd}", captured.pid)).unwrap();
        let target = target.to_string_lossy().into_owned();
        assert!(target.starts_with("pipe:"), "fd {fd} is {target}");
    }
    assert_eq!(status_field(clean.pid, "SigBlk"), "0000000000000000");
    // Signals 32 and 33 are glibc's own; no process can change them, so only a parent that
    // started the daemon with them ignored makes them show up here.
    let ignored = u64::from_str_radix(&status_field(clean.pid, "SigIgn"), 16).unwrap();
    assert_eq!(ignored & !0x1_8000_0000, 0, "ignored signals: {ignored:#x}");
    let stat = proc_file(clean.pid, "stat");
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    // Fields after the command: state, ppid, pgrp, session.
    assert_eq!(fields[2], clean.pid.to_string(), "own process group");
    assert_eq!(fields[1], daemon.pid().to_string(), "child of the daemon");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdout_and_stderr_are_appended_to_their_files() {
    let daemon = Daemon::start(
        Program::new(
            "talker",
            "/bin/sh -c 'echo out-$$; echo err-$$ >&2; exec sleep 1000'",
        )
        .starttime(0.2)
        .stoptime(1.0)
        .stdout("{dir}/talker.out")
        .stderr("{dir}/talker.err"),
    )
    .await;
    let mut client = daemon.client().await;
    let first = wait_state(&mut client, "talker", State::Running).await;
    let out = daemon.path("talker.out");
    let err = daemon.path("talker.err");
    expect("the first lines", || async {
        (read(&out).contains(&format!("out-{}", first.pid))
            && read(&err).contains(&format!("err-{}", first.pid)))
        .then_some(())
    })
    .await;
    client
        .restart(proto::RestartRequest {
            names: vec!["talker".into()],
            no_wait: false,
        })
        .await
        .unwrap();
    let second = instance(&mut client, "talker").await;
    expect("the second run's lines appended", || async {
        let text = read(&out);
        (text.contains(&format!("out-{}", first.pid))
            && text.contains(&format!("out-{}", second.pid)))
        .then_some(())
    })
    .await;
    assert!(!read(&out).contains("err-"), "stderr went to stdout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numprocs_and_autostart() {
    let daemon = Daemon::start(
        Config::new()
            .program(
                Program::new("pool", "sleep 1000")
                    .numprocs(3)
                    .starttime(0.2),
            )
            .program(Program::new("manual", "sleep 1000").autostart(false)),
    )
    .await;
    let mut client = daemon.client().await;
    let mut pids = Vec::new();
    for name in ["pool:0", "pool:1", "pool:2"] {
        let running = wait_state(&mut client, name, State::Running).await;
        assert_eq!(running.program, "pool");
        assert!(alive(running.pid));
        pids.push(running.pid);
    }
    pids.dedup();
    assert_eq!(pids.len(), 3);
    let manual = instance(&mut client, "manual").await;
    assert_eq!((manual.state(), manual.pid), (State::Stopped, 0));
    assert_eq!(manual.description, "Not started");
    // Exactly the configured processes, no more.
    let mut children = daemon.children();
    children.sort();
    pids.sort();
    assert_eq!(children, pids);
}
