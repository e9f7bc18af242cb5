//! The lifecycle of processes: start, restart by policy, retries and FATAL, stop.

use nix::sys::signal::Signal;
use taskmaster::proto::{self, State};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_a_child_restarts_it_with_a_new_pid() {
    let daemon = Daemon::start(Program::sleeper("sleeper")).await;
    let mut client = daemon.client().await;
    let first = wait_state(&mut client, "sleeper", State::Running).await;
    assert!(alive(first.pid));
    send(first.pid, Signal::SIGKILL);
    let second = wait_new_pid(&mut client, "sleeper", first.pid).await;
    assert!(alive(second.pid));
    assert!(!alive(first.pid));
    assert_eq!(second.restarts, 1);
    assert_eq!(second.signal, Some(9));
}

/// A program that can never start: one spawn plus `startretries` retries, then FATAL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_that_always_fails_ends_fatal_after_startretries() {
    let daemon = Daemon::start(
        Program::new("failing", "/bin/sh -c 'echo spawn >> {dir}/spawns; exit 3'")
            .starttime(0.2)
            .startretries(2),
    )
    .await;
    let mut client = daemon.client().await;
    let fatal = wait_state(&mut client, "failing", State::Fatal).await;
    assert_eq!(read(&daemon.path("spawns")).lines().count(), 3);
    assert_eq!(fatal.exit_code, Some(3));
    assert!(
        fatal.description.contains("Exited too quickly"),
        "{}",
        fatal.description
    );
    let log = daemon.log();
    assert_eq!(log.matches("failing: backoff").count(), 2, "{log}");
    assert!(log.contains("failing: gave up"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spawn_error_is_a_failed_start_with_its_reason() {
    let daemon = Daemon::start(
        Config::new()
            .program(Program::new("missing", "/nonexistent/binary --flag").startretries(0))
            .program(
                Program::new("baddir", "sleep 100")
                    .workingdir("/nonexistent/dir")
                    .startretries(0),
            ),
    )
    .await;
    let mut client = daemon.client().await;
    let missing = wait_state(&mut client, "missing", State::Fatal).await;
    let missing_binary = "executable /nonexistent/binary: No such file or directory";
    assert_eq!(missing.spawn_error, missing_binary);
    assert_eq!(
        missing.description,
        format!("spawn error: {missing_binary}")
    );
    let baddir = wait_state(&mut client, "baddir", State::Fatal).await;
    assert_eq!(
        baddir.description,
        "spawn error: workingdir /nonexistent/dir: No such file or directory"
    );
    let answer = client
        .start(proto::StartRequest {
            names: vec!["missing".into()],
            no_wait: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.results.len(), 1);
    assert!(!answer.results[0].ok);
    assert_eq!(
        answer.results[0].message,
        format!("spawn error: {missing_binary}")
    );
}

/// Exits with `code` once started, and logs each run to `{dir}/runs.<name>`.
fn exits_with(name: &str, code: i32, autorestart: &str, exitcodes: &str) -> Program {
    let cmd = format!("/bin/sh -c 'echo run >> {{dir}}/runs.{name}; sleep 0.4; exit {code}'");
    Program::new(name, &cmd)
        .starttime(0.2)
        .autorestart(autorestart)
        .exitcodes(exitcodes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autorestart_follows_policy_and_exitcodes() {
    let programs = Config::new()
        .program(exits_with("always_ok", 0, "always", "0"))
        .program(exits_with("never_bad", 1, "never", "0"))
        .program(exits_with("unexpected_ok", 2, "unexpected", "[0, 2]"))
        .program(exits_with("unexpected_bad", 1, "unexpected", "[0, 2]"));
    let daemon = Daemon::start(programs).await;
    let mut client = daemon.client().await;
    let runs = |name: &str| read(&daemon.path(&format!("runs.{name}"))).lines().count();

    // The restarting ones run again; the others stay EXITED.
    expect("always_ok to run 3 times", || async {
        (runs("always_ok") >= 3).then_some(())
    })
    .await;
    expect("unexpected_bad to run 3 times", || async {
        (runs("unexpected_bad") >= 3).then_some(())
    })
    .await;
    let never_bad = wait_state(&mut client, "never_bad", State::Exited).await;
    assert_eq!(never_bad.exit_code, Some(1));
    assert!(
        never_bad.description.contains("(unexpected)"),
        "{}",
        never_bad.description
    );
    let unexpected_ok = wait_state(&mut client, "unexpected_ok", State::Exited).await;
    assert!(
        unexpected_ok.description.contains("(expected)"),
        "{}",
        unexpected_ok.description
    );
    assert_eq!(runs("never_bad"), 1);
    assert_eq!(runs("unexpected_ok"), 1);
    let log = daemon.log();
    assert!(
        log.contains("never_bad: exited") && log.contains("expected=false"),
        "{log}"
    );
    assert!(
        log.contains("unexpected_ok: exited") && log.contains("expected=true"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttime_decides_between_running_and_a_failed_start() {
    let daemon = Daemon::start(
        Config::new()
            .program(
                Program::new("quick_exit", "/bin/sh -c 'sleep 0.3; exit 0'")
                    .starttime(5.0)
                    .startretries(0),
            )
            .program(Program::new("steady", "sleep 1000").starttime(0.6)),
    )
    .await;
    let mut client = daemon.client().await;
    // Exiting (even with code 0) before starttime is a failed start.
    let quick = wait_state(&mut client, "quick_exit", State::Fatal).await;
    assert_eq!(quick.exit_code, Some(0));
    let running = wait_state(&mut client, "steady", State::Running).await;
    // It was reported RUNNING only once it had been up for starttime.
    let mut watch = client
        .watch_events(proto::WatchEventsRequest {
            names: vec!["steady".into()],
            since: Some(0),
            run: None,
        })
        .await
        .unwrap()
        .into_inner();
    let mut spawned = None;
    let mut started = None;
    while started.is_none() {
        let event = watch.message().await.unwrap().expect("event");
        match event.kind() {
            proto::EventKind::Spawned => spawned = event.time,
            proto::EventKind::Started => started = event.time,
            _ => {}
        }
    }
    let (spawned, started) = (spawned.unwrap(), started.unwrap());
    let up_ms = (started.seconds - spawned.seconds) * 1000
        + i64::from(started.nanos - spawned.nanos) / 1_000_000;
    assert!(up_ms >= 600, "RUNNING after {up_ms} ms");
    assert!(alive(running.pid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_sends_the_programs_own_signal() {
    let trapper = r#"/bin/sh -c 'trap "echo got USR1 > {dir}/trapped; exit 0" USR1; while true; do sleep 0.1; done'"#;
    let daemon = Daemon::start(
        Program::new("trapper", trapper)
            .starttime(0.2)
            .stopsignal("USR1")
            .stoptime(5.0),
    )
    .await;
    let mut client = daemon.client().await;
    wait_state(&mut client, "trapper", State::Running).await;
    let answer = client
        .stop(proto::StopRequest {
            names: vec!["trapper".into()],
            no_wait: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.results[0].message, "stopped");
    assert_eq!(answer.results[0].state(), State::Stopped);
    assert_eq!(read(&daemon.path("trapped")).trim(), "got USR1");
    let stopped = instance(&mut client, "trapper").await;
    assert_eq!(stopped.exit_code, Some(0));
    assert!(!daemon.log().contains("trapper: killed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_that_ignores_its_stop_signal_is_killed_after_stoptime() {
    let stubborn =
        r#"/bin/sh -c 'trap "" TERM; echo $$ > {dir}/pid; sleep 1000 & sleep 1000 & wait'"#;
    let daemon = Daemon::start(
        Program::new("stubborn", stubborn)
            .starttime(0.2)
            .stoptime(1.0),
    )
    .await;
    let mut client = daemon.client().await;
    let running = wait_state(&mut client, "stubborn", State::Running).await;
    // The grandchildren (the two sleeps) are in the program's process group.
    let grandchildren = expect("two grandchildren", || async {
        let found = children_of(running.pid);
        (found.len() == 2).then_some(found)
    })
    .await;
    let answer = client
        .stop(proto::StopRequest {
            names: vec!["stubborn".into()],
            no_wait: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(answer.results[0].ok, "{:?}", answer.results);
    let stopped = instance(&mut client, "stubborn").await;
    assert_eq!(stopped.state(), State::Stopped);
    assert_eq!(stopped.signal, Some(9));
    assert!(!alive(running.pid));
    for pid in grandchildren {
        wait_gone("the grandchild to be gone", pid).await;
    }
    let log = daemon.log();
    assert!(log.contains("stubborn: killed"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grandchild_ignoring_the_stop_signal_does_not_survive_the_stop() {
    let parent = r#"/bin/sh -c '/bin/sh -c "trap \"\" TERM; echo \$\$ > {dir}/grandchild; while true; do sleep 0.1; done" & wait'"#;
    let daemon = Daemon::start(Program::new("parent", parent).starttime(0.2).stoptime(5.0)).await;
    let mut client = daemon.client().await;
    wait_state(&mut client, "parent", State::Running).await;
    let grandchild: u32 = expect("the grandchild's pid", || async {
        read(&daemon.path("grandchild")).trim().parse().ok()
    })
    .await;
    assert!(alive(grandchild));
    client
        .stop(proto::StopRequest {
            names: vec!["parent".into()],
            no_wait: false,
        })
        .await
        .unwrap();
    wait_gone("the grandchild to be gone", grandchild).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_stop_restart_wait_for_their_target_state() {
    let daemon = Daemon::start(Program::sleeper("web").numprocs(2).autostart(false)).await;
    let mut client = daemon.client().await;
    assert!(
        status(&mut client)
            .await
            .iter()
            .all(|i| i.state() == State::Stopped)
    );
    let started = client
        .start(proto::StartRequest {
            names: vec!["web".into()],
            no_wait: false,
        })
        .await
        .unwrap()
        .into_inner();
    let names: Vec<_> = started
        .results
        .iter()
        .map(|r| (r.name.as_str(), r.message.as_str(), r.state()))
        .collect();
    assert_eq!(
        names,
        vec![
            ("web:0", "started", State::Running),
            ("web:1", "started", State::Running)
        ]
    );
    let before = instance(&mut client, "web:1").await;
    let restarted = client
        .restart(proto::RestartRequest {
            names: vec!["web:1".into()],
            no_wait: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(restarted.results.len(), 1);
    assert_eq!(restarted.results[0].state(), State::Running);
    let after = instance(&mut client, "web:1").await;
    assert_ne!(after.pid, before.pid);
    assert!(!alive(before.pid));
    assert_eq!(after.restarts, 1);
    assert!(daemon.log().contains("web:1: restarting"));
    // Starting again what runs is not an error.
    let again = client
        .start(proto::StartRequest {
            names: vec!["web:0".into()],
            no_wait: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.results[0].message, "already running");
    // no_wait replies at once; the instances get there afterwards.
    let stopping = client
        .stop(proto::StopRequest {
            names: vec!["all".into()],
            no_wait: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stopping.results.len(), 2);
    wait_state(&mut client, "web:0", State::Stopped).await;
    wait_state(&mut client, "web:1", State::Stopped).await;
    assert!(!alive(after.pid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_name_is_not_found_and_nothing_is_done() {
    let daemon = Daemon::start(Program::new("idle", "sleep 1000").autostart(false)).await;
    let mut client = daemon.client().await;
    let error = client
        .start(proto::StartRequest {
            names: vec!["idle".into(), "nosuch".into()],
            no_wait: false,
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::NotFound);
    assert!(error.message().contains("nosuch"), "{}", error.message());
    assert_eq!(instance(&mut client, "idle").await.state(), State::Stopped);
    let error = client
        .status(proto::StatusRequest {
            names: vec!["idle:7".into()],
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::NotFound);
}

/// A program that dies at once, restarted by policy, is respawned at most every 100 ms
/// (daemon-side timestamps), and meanwhile the daemon answers and shuts down normally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_loop_is_spaced_and_does_not_starve_the_daemon() {
    let mut daemon = Daemon::start(
        Program::new("crasher", "/bin/false")
            .numprocs(20)
            .starttime(0.0)
            .autorestart("always"),
    )
    .await;
    let mut client = daemon.client().await;
    let mut watch = client
        .watch_events(proto::WatchEventsRequest {
            names: vec!["crasher:0".into()],
            since: Some(0),
            run: None,
        })
        .await
        .unwrap()
        .into_inner();
    let mut spawns = Vec::new();
    while spawns.len() < 4 {
        let event = watch.message().await.unwrap().expect("an event");
        if event.kind() == proto::EventKind::Spawned {
            let time = event.time.unwrap();
            spawns.push(time.seconds as i128 * 1_000_000_000 + time.nanos as i128);
        }
    }
    for pair in spawns.windows(2) {
        let gap_ms = (pair[1] - pair[0]) / 1_000_000;
        assert!(gap_ms >= 100, "respawned after {gap_ms} ms");
    }
    // Requests are still served while twenty instances crash.
    for _ in 0..5 {
        assert_eq!(status(&mut client).await.len(), 20);
    }
    client.shutdown(proto::ShutdownRequest {}).await.unwrap();
    drop(client);
    drop(watch);
    let exit = daemon.wait_exit().await;
    assert!(exit.success(), "{exit:?}");
}

/// Output to a FIFO nobody reads: it cannot be written, so it is dropped and counted; the
/// program runs, and so does the daemon.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_without_reader_as_output_drops_it_and_blocks_nothing() {
    let dir = tempfile::tempdir().unwrap();
    nix::unistd::mkfifo(
        &dir.path().join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    let daemon = Daemon::launch(
        Config::new()
            .program(
                Program::new("piped", "sh -c 'echo hello; sleep 1000'")
                    .stdout("{dir}/fifo")
                    .starttime(0.2)
                    .startretries(0),
            )
            .program(Program::new("other", "sleep 1000").starttime(0.2)),
    )
    .in_dir(dir)
    .start()
    .await;
    let mut client = daemon.client().await;
    wait_state(&mut client, "piped", State::Running).await;
    expect("the output to be counted as dropped", || {
        let mut client = client.clone();
        async move { (instance(&mut client, "piped").await.output_dropped_bytes == 6).then_some(()) }
    })
    .await;
    // Tailing it answers at once (a FIFO keeps nothing to read back, and is not opened for
    // reading: that would wait for a writer).
    let tail = client.tail(proto::TailRequest {
        name: "piped".into(),
        stream: proto::Stream::Stdout.into(),
        lines: 0,
        bytes: None,
        follow: false,
    });
    let mut chunks = tokio::time::timeout(DEADLINE, tail)
        .await
        .expect("Tail answers")
        .unwrap()
        .into_inner();
    let first = tokio::time::timeout(DEADLINE, chunks.message())
        .await
        .unwrap();
    assert_eq!(first.unwrap().unwrap().data, b"");
    expect("the drop in the event log", || async {
        daemon.log().contains("piped: output dropped").then_some(())
    })
    .await;
    wait_state(&mut client, "other", State::Running).await;
}

/// A child the daemon did not start (here inherited across exec; as PID 1, an adopted orphan)
/// is reaped when it exits, not left a zombie.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_it_did_not_start_is_reaped_when_it_exits() {
    let daemon = Daemon::launch(Config::new())
        .with_inherited_child()
        .start()
        .await;
    // No programs: the daemon's only child is the inherited sleep.
    let stranger = expect("the inherited child", || async {
        match daemon.children().as_slice() {
            [pid] => Some(*pid),
            _ => None,
        }
    })
    .await;
    assert!(alive(stranger), "the inherited sleep runs");
    send(stranger, Signal::SIGKILL);
    // A zombie is still listed among the children until it is reaped.
    expect("the inherited child reaped", || async {
        daemon.children().is_empty().then_some(())
    })
    .await;
    let mut client = daemon.client().await;
    assert!(
        status(&mut client).await.is_empty(),
        "the daemon still answers"
    );
}
