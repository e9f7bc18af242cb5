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

/// Whether the daemon can give each instance a cgroup here (root, cgroup v2 mounted); the
/// tests that need it say so and return otherwise (CI runs as root).
fn cgroups_or_skip(test: &str) -> bool {
    let mounted = std::fs::read_to_string("/proc/self/mountinfo")
        .is_ok_and(|mountinfo| mountinfo.contains(" - cgroup2 "));
    let root = nix::unistd::geteuid().is_root();
    if !(mounted && root) {
        eprintln!("{test}: skipped: needs root and cgroup v2 (root {root}, cgroup v2 {mounted})");
    }
    mounted && root
}

/// The live processes whose command line is `words`, from /proc.
fn processes_running(words: &[&str]) -> Vec<u32> {
    let wanted: Vec<u8> = words
        .iter()
        .flat_map(|word| [word.as_bytes(), b"\0"].concat())
        .collect();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let is_zombie = std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            stat.rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z'))
        });
        if !is_zombie && std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == wanted) {
            found.push(pid);
        }
    }
    found
}

/// The one process running `words`, once there is one; guarded so that it never outlives the
/// test.
async fn the_process(words: &[&str]) -> (u32, Guard) {
    let pid = expect(&format!("a process running {words:?}"), || async {
        match processes_running(words)[..] {
            [pid] => Some(pid),
            _ => None,
        }
    })
    .await;
    (pid, Guard::adopt(pid))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_ends_what_left_the_process_group_and_the_session() {
    if !cgroups_or_skip("a_stop_ends_what_left_the_process_group_and_the_session") {
        return;
    }
    let daemon = Daemon::start(
        Program::new(
            "escaper",
            "/bin/sh -c 'setsid sleep 71005 & exec sleep 71006'",
        )
        .starttime(0.2)
        .stoptime(1.0),
    )
    .await;
    let mut client = daemon.client().await;
    let info = daemon_info(&mut client).await;
    assert!(info.containment.starts_with("cgroup v2 at "), "{info:?}");
    daemon.wait_running(&["escaper"]).await;
    let (escaped, _guard) = the_process(&["sleep", "71005"]).await;
    let stopping = Instant::now();
    let stopped = client
        .stop(taskmaster::proto::StopRequest {
            names: vec!["escaper".into()],
            no_wait: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(stopped.results[0].ok, "{stopped:?}");
    wait_gone("the process that left the session", escaped).await;
    // Within stoptime and a second.
    assert!(stopping.elapsed() < std::time::Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_killed_takes_its_tree_with_it_before_the_replacement_starts() {
    if !cgroups_or_skip("a_leader_killed_takes_its_tree_with_it_before_the_replacement_starts") {
        return;
    }
    let daemon = Daemon::start(
        Program::new(
            "escaper",
            "/bin/sh -c 'sleep 72004 & setsid sleep 72005 & exec sleep 72006'",
        )
        .starttime(0.2)
        .stoptime(1.0)
        .autorestart("always"),
    )
    .await;
    let first = daemon.wait_running(&["escaper"]).await["escaper"];
    let (in_group, _guard) = the_process(&["sleep", "72004"]).await;
    let (escaped, _guard) = the_process(&["sleep", "72005"]).await;
    send(first, Signal::SIGKILL);
    wait_gone("the leader's child in its group", in_group).await;
    wait_gone("the leader's child in another session", escaped).await;
    // The replacement runs alone: one of each, not two.
    let mut client = daemon.client().await;
    wait_new_pid(&mut client, "escaper", first).await;
    let (_, _guard) = the_process(&["sleep", "72004"]).await;
    let (_, _guard) = the_process(&["sleep", "72005"]).await;
}

/// A daemon on `program` (five instances of `sleep SECONDS`) killed with SIGKILL: its
/// successor on the same config ends what it left running before starting its own, and says
/// so in the event log with `said`.
async fn no_duplicates_after_sigkill(config: Config, seconds: &str, said: &str) {
    let words = ["sleep", seconds];
    let mut daemon = Daemon::start(config).await;
    daemon.wait_running(&["pool"]).await;
    let orphans: Vec<u32> = processes_running(&words);
    assert_eq!(orphans.len(), 5, "{orphans:?}");
    let _guards: Vec<Guard> = orphans.iter().map(|pid| Guard::adopt(*pid)).collect();
    send(daemon.pid(), Signal::SIGKILL);
    daemon.wait_exit().await;
    // Its programs run on, unsupervised.
    assert!(orphans.iter().all(|pid| alive(*pid)));
    // The successor on the same config ends them before it starts its own: five, not ten.
    let _again = daemon.spawn_again();
    let target = daemon.target();
    let mut client = expect("the successor to answer", || async {
        let channel = taskmaster::endpoint::connect(&target).await.ok()?;
        Some(taskmaster::proto::taskmaster_client::TaskmasterClient::new(
            channel,
        ))
    })
    .await;
    for orphan in &orphans {
        wait_gone("a process of the killed daemon", *orphan).await;
    }
    for index in 0..5 {
        let name = format!("pool:{index}");
        wait_state(&mut client, &name, taskmaster::proto::State::Running).await;
    }
    assert_eq!(processes_running(&words).len(), 5);
    let log = daemon.log();
    assert!(log.contains(said), "{log}");
}

fn pool(seconds: &str) -> Program {
    Program::new("pool", &format!("sleep {seconds}"))
        .numprocs(5)
        .starttime(0.2)
        .stoptime(1.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_killed_with_sigkill_leaves_no_duplicates_to_its_successor() {
    if !cgroups_or_skip("a_daemon_killed_with_sigkill_leaves_no_duplicates_to_its_successor") {
        return;
    }
    let config = Config::from(pool("73001"));
    no_duplicates_after_sigkill(config, "73001", "left by an earlier taskmasterd (pids").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_cgroups_a_daemon_killed_with_sigkill_leaves_no_duplicates_either() {
    // The ledger of children beside the socket does it, by pid and start time.
    let config = Config::new()
        .daemon("cgroups: false")
        .program(pool("73002"));
    let said = "(sleep 73002) left by an earlier taskmasterd on this socket: killed";
    no_duplicates_after_sigkill(config, "73002", said).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_may_keep_what_it_leaves() {
    if !cgroups_or_skip("a_program_may_keep_what_it_leaves") {
        return;
    }
    let daemon = Daemon::start(
        Program::new(
            "forker",
            "/bin/sh -c 'setsid sleep 74005 & exec sleep 74006'",
        )
        .starttime(0.2)
        .stoptime(1.0)
        .set("kill_leftovers", "false"),
    )
    .await;
    daemon.wait_running(&["forker"]).await;
    let (worker, _guard) = the_process(&["sleep", "74005"]).await;
    let mut client = daemon.client().await;
    client
        .stop(taskmaster::proto::StopRequest {
            names: vec!["forker".into()],
            no_wait: false,
        })
        .await
        .unwrap();
    assert!(
        alive(worker),
        "the worker it leaves behind on purpose was killed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_cgroups_the_orphans_a_leader_leaves_are_killed_by_pid() {
    // `daemon.cgroups: false` stands for a system without usable cgroups: the daemon is a
    // child subreaper, so what a leader leaves becomes its child, and it kills those it does
    // not know when the leader ends.
    let mut daemon = Daemon::start(
        Config::new()
            .daemon("cgroups: false")
            .program(
                Program::new(
                    "escaper",
                    "/bin/sh -c 'setsid sleep 75005 & exec sleep 75006'",
                )
                .starttime(0.2)
                .stoptime(1.0),
            )
            .program(
                Program::new(
                    "keeper",
                    "/bin/sh -c 'setsid sleep 75007 & exec sleep 75008'",
                )
                .starttime(0.2)
                .stoptime(1.0)
                .set("kill_leftovers", "false"),
            ),
    )
    .await;
    let mut client = daemon.client().await;
    let info = daemon_info(&mut client).await;
    assert!(
        info.containment.starts_with("process groups only"),
        "{info:?}"
    );
    daemon.wait_running(&["escaper", "keeper"]).await;
    let (escaped, _guard) = the_process(&["sleep", "75005"]).await;
    let (kept, _kept_guard) = the_process(&["sleep", "75007"]).await;
    // The kept one goes first: its orphan must not be taken for the other's.
    for name in ["keeper", "escaper"] {
        client
            .stop(taskmaster::proto::StopRequest {
                names: vec![name.into()],
                no_wait: false,
            })
            .await
            .unwrap();
    }
    wait_gone("the process that left the session", escaped).await;
    assert!(alive(kept), "a leftover kept on purpose was killed");
    let log = daemon.log();
    assert!(
        log.contains(&format!("escaper: killed pid {escaped} (sleep 75005)")),
        "{log}"
    );
    // Kept leftovers are the daemon's children now: it reaps them when they end.
    send(kept, Signal::SIGKILL);
    wait_gone("the kept leftover", kept).await;
    assert!(daemon.try_exit().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_that_exited_before_the_daemon_watched_for_exits_is_reaped() {
    // `true &` has exited (a zombie the daemon inherits across exec) before the daemon
    // installed its SIGCHLD handler: its signal went to nobody, and no other will come.
    let daemon = Daemon::launch(Config::new())
        .before_exec("true & :")
        .start()
        .await;
    expect("the inherited zombie reaped", || async {
        daemon.children().is_empty().then_some(())
    })
    .await;
}
