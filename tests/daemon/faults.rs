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
    // The event log is written by its own thread: the line may come a moment later.
    expect("what the successor found, in the event log", || async {
        daemon.log().contains(said).then_some(())
    })
    .await;
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
    // The event log is written by its own thread: the line comes soon after.
    let said = format!("escaper: killed pid {escaped} (sleep 75005)");
    expect("the kill in the event log", || async {
        daemon.log().contains(&said).then_some(())
    })
    .await;
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

// ---- Faults that already hold (issue 11): failure modes real supervisors are known to meet,
// each reproduced with real processes. Programs run `sleep` with numbers of their own, so that
// counting them in /proc sees no other test's processes.

/// When `pid` started (field 22 of /proc/PID/stat, clock ticks since boot); `None` once it is
/// gone from /proc. A zombie keeps its start time: it is not gone until it is reaped.
fn started_at(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(") ")?;
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// The pids in the file at `path`, one a line, once it holds `count` of them.
async fn pids_in(path: &std::path::Path, count: usize) -> Vec<u32> {
    expect(&format!("{count} pids in {}", path.display()), || async {
        let text = read(path);
        let pids: Vec<u32> = text.lines().filter_map(|line| line.parse().ok()).collect();
        (pids.len() == count && text.ends_with('\n')).then_some(pids)
    })
    .await
}

/// Waits until each of `seen` (pid, start time) is reaped: gone from /proc, neither alive nor
/// a zombie (a pid reused since is another process).
async fn wait_reaped(what: &str, seen: &[(u32, u64)]) {
    expect(what, || async {
        let left: Vec<u32> = seen
            .iter()
            .filter(|(pid, start)| started_at(*pid) == Some(*start))
            .map(|(pid, _)| *pid)
            .collect();
        left.is_empty().then_some(())
    })
    .await;
}

/// The live processes running `words` that lead their process group: the processes the daemon
/// started (a shell's forks keep its command line for a moment, in its group).
fn leaders_running(words: &[&str]) -> Vec<u32> {
    processes_running(words)
        .into_iter()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                let group = stat
                    .rsplit_once(") ")
                    .and_then(|(_, rest)| rest.split_whitespace().nth(2).map(str::to_string));
                group == Some(pid.to_string())
            })
        })
        .collect()
}

/// `base` made this test process's own: `sleep` takes `85001.4242` as it takes `85001`, and a
/// test that counts the processes running it sees none of another copy of the suite.
fn own(base: u32) -> String {
    format!("{base}.{}", std::process::id())
}

fn stop_request(name: &str) -> taskmaster::proto::StopRequest {
    taskmaster::proto::StopRequest {
        names: vec![name.into()],
        no_wait: false,
    }
}

fn start_request(name: &str) -> taskmaster::proto::StartRequest {
    taskmaster::proto::StartRequest {
        names: vec![name.into()],
        no_wait: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_background_children_are_all_reaped_after_a_stop() {
    let spawner = "/bin/sh -c 'i=0; while [ $i -lt 100 ]; do sleep 81001 & echo $! >> \
                   {dir}/children; i=$((i+1)); done; wait'";
    let daemon = Daemon::start(
        Program::new("spawner", spawner)
            .starttime(0.2)
            .stoptime(1.0),
    )
    .await;
    let leader = daemon.wait_running(&["spawner"]).await["spawner"];
    let children = pids_in(&daemon.path("children"), 100).await;
    let _guards: Vec<Guard> = children.iter().map(|pid| Guard::adopt(*pid)).collect();
    let mut seen: Vec<(u32, u64)> = children
        .iter()
        .map(|pid| (*pid, started_at(*pid).expect("a child runs")))
        .collect();
    seen.push((leader, started_at(leader).expect("the leader runs")));
    let mut client = daemon.client().await;
    let stopped = client
        .stop(stop_request("spawner"))
        .await
        .unwrap()
        .into_inner();
    assert!(stopped.results[0].ok, "{stopped:?}");
    // Killed with their group, and reaped: none is left a zombie. Orphaned when their leader
    // died, they are reaped by whoever adopted them: init, or the daemon when it is a subreaper.
    let stopped_at = Instant::now();
    wait_reaped("the 100 children and their leader to be reaped", &seen).await;
    eprintln!("all reaped {:?} after the stop", stopped_at.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_stops_raced_by_exits_are_each_answered_stopped() {
    // Each process exits 5 to 50 ms after its stop signal, and is SIGKILLed 25 ms after it:
    // the exit races the kill, and each stop must still end STOPPED, answered, with nothing
    // mistaken for an unexpected exit.
    let number = own(82001);
    let racer = format!(
        r#"/bin/sh -c 'trap "sleep $(printf 0.%03d $((5 + $$ % 46))); exit 0" TERM; sleep {number} & wait'"#
    );
    let daemon = Daemon::start(
        Program::new("race", &racer)
            .numprocs(50)
            .autostart(false)
            .starttime(0.1)
            .stoptime(0.025),
    )
    .await;
    let mut client = daemon.client().await;
    for round in 0..10 {
        let started = client
            .start(start_request("race"))
            .await
            .unwrap()
            .into_inner();
        assert!(
            started.results.iter().all(|r| r.ok),
            "round {round}: {started:?}"
        );
        let stopped = tokio::time::timeout(DEADLINE, client.stop(stop_request("race")))
            .await
            .unwrap_or_else(|_| panic!("round {round}: the stop hangs"))
            .unwrap()
            .into_inner();
        assert_eq!(stopped.results.len(), 50);
        for result in &stopped.results {
            assert!(
                result.ok && result.state() == taskmaster::proto::State::Stopped,
                "round {round}: {result:?}"
            );
        }
    }
    for instance in status(&mut client).await {
        assert_eq!(
            instance.state(),
            taskmaster::proto::State::Stopped,
            "{instance:?}"
        );
    }
    // 500 stops, each recorded once; no exit taken for an unexpected one.
    let log = expect("500 stops in the event log", || async {
        let log = daemon.log();
        (log.matches(": stopped").count() == 500).then_some(log)
    })
    .await;
    assert_eq!(log.matches(": exited").count(), 0, "{log}");
    assert_eq!(log.matches(": backoff").count(), 0, "{log}");
    // Both sides of the race were run: some exited in time, some were killed.
    let killed = log.matches(": killed").count();
    assert!((1..500).contains(&killed), "{killed} of 500 killed");
    assert!(processes_running(&["sleep", &number]).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grandchild_holding_stdout_does_not_hide_the_leaders_exit() {
    // The leader exits while the sleep it started keeps its stdout open: the pipe sees no end
    // of file, and the exit must be seen all the same (kill_leftovers: false keeps the sleep
    // where the daemon would end it). Two such runs, then a third that stays.
    let holder = "/bin/sh -c 'sleep 83001 & echo $! >> {dir}/holders; echo run; \
                  [ $(wc -l < {dir}/holders) -ge 3 ] && exec sleep 83002; sleep 0.3; exit 3'";
    let daemon = Daemon::start(
        Program::new("holder", holder)
            .starttime(0.1)
            .stoptime(1.0)
            .autorestart("unexpected")
            .set("kill_leftovers", "false"),
    )
    .await;
    let mut client = daemon.client().await;
    // Two exits seen and restarted, each run's output captured.
    expect("two restarts", || {
        let mut client = client.clone();
        async move {
            let now = instance(&mut client, "holder").await;
            (now.restarts == 2 && now.state() == taskmaster::proto::State::Running).then_some(())
        }
    })
    .await;
    let holders = pids_in(&daemon.path("holders"), 3).await;
    let _guards: Vec<Guard> = holders.iter().map(|pid| Guard::adopt(*pid)).collect();
    // Every grandchild still holds its stdout: the exits were seen without an end of file.
    let dead: Vec<&u32> = holders.iter().filter(|pid| !alive(**pid)).collect();
    assert!(dead.is_empty(), "of {holders:?}, {dead:?} are gone");
    let output = daemon.path("logs/holder.out.log");
    expect("each run's output", || async {
        (read(&output) == "run\nrun\nrun\n").then_some(())
    })
    .await;
    // Written by the event log's own thread: waited for, then counted.
    let log = expect("both exits in the event log", || async {
        let log = daemon.log();
        (log.matches("holder: exited").count() >= 2).then_some(log)
    })
    .await;
    assert_eq!(log.matches("holder: exited").count(), 2, "{log}");
    let stopped = client
        .stop(stop_request("holder"))
        .await
        .unwrap()
        .into_inner();
    assert!(stopped.results[0].ok, "{stopped:?}");
}

/// The names of the open descriptors of `pid`, sorted.
fn descriptors(pid: u32) -> Vec<String> {
    let mut fds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    fds.sort_by_key(|fd| fd.parse::<u32>().unwrap_or(u32::MAX));
    fds
}

/// Where each descriptor of `pid` leads, for a failure message.
fn descriptor_targets(pid: u32) -> Vec<String> {
    descriptors(pid)
        .into_iter()
        .map(|fd| {
            let target = std::fs::read_link(format!("/proc/{pid}/fd/{fd}"));
            format!(
                "{fd} -> {}",
                target.map_or("?".into(), |t| t.display().to_string())
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemons_descriptors_stay_as_many_over_200_start_stop_reload_cycles() {
    let cycled = Program::new("cycled", "sleep 84001")
        .autostart(false)
        .starttime(0.0)
        .stoptime(1.0);
    let alone = Config::from(cycled.clone());
    // A reload in two that adds a program (spawned, its output captured) and one that removes
    // it.
    let with_extra =
        Config::from(cycled).program(Program::new("extra", "sleep 84002").starttime(0.0));
    let daemon = Daemon::start(alone.clone()).await;
    let mut client = daemon.client().await;
    let mut baseline = None;
    for cycle in 0..200 {
        daemon.write_config(if cycle % 2 == 0 {
            with_extra.clone()
        } else {
            alone.clone()
        });
        client
            .reload(taskmaster::proto::ReloadRequest {})
            .await
            .unwrap();
        let started = client
            .start(start_request("cycled"))
            .await
            .unwrap()
            .into_inner();
        assert!(started.results[0].ok, "cycle {cycle}: {started:?}");
        let stopped = client
            .stop(stop_request("cycled"))
            .await
            .unwrap()
            .into_inner();
        assert!(stopped.results[0].ok, "cycle {cycle}: {stopped:?}");
        if cycle == 1 {
            // Every kind of work done once, back to the first config.
            baseline = Some(descriptors(daemon.pid()).len());
        }
    }
    let baseline = baseline.unwrap();
    let pid = daemon.pid();
    // No more than after the first cycles (a descriptor still closing then counted too): a
    // leak would add one or more every cycle.
    let settled = wait_until("the daemon's descriptors back to their count", || async {
        (descriptors(pid).len() <= baseline).then_some(())
    })
    .await;
    assert!(
        settled.is_some(),
        "{baseline} descriptors after 2 cycles, {:?} after 200",
        descriptor_targets(pid)
    );
    // And a child still gets fds 0-2 only (once `sleep` itself is done reading its locale
    // files: what it inherited it never closes).
    let started = client
        .start(start_request("cycled"))
        .await
        .unwrap()
        .into_inner();
    assert!(started.results[0].ok, "{started:?}");
    let child = instance(&mut client, "cycled").await.pid;
    let only_stdio = wait_until("the child to hold fds 0-2 only", || async {
        (descriptors(child) == ["0", "1", "2"]).then_some(())
    })
    .await;
    assert!(only_stdio.is_some(), "{:?}", descriptor_targets(child));
}

/// The size of `seq 1 last`'s output.
fn seq_bytes(last: u64) -> u64 {
    let mut total = 0;
    let (mut low, mut digits) = (1, 1);
    while low <= last {
        let high = (low * 10 - 1).min(last);
        total += (high - low + 1) * (digits + 1);
        low *= 10;
        digits += 1;
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mb_burst_loses_no_line_of_its_file_and_stalls_nobody() {
    // 12.5 million numbered lines, 102 MB, as fast as `seq` writes them: to a file that is
    // never rotated, and to nowhere.
    const LAST: u64 = 12_500_000;
    let burst = format!("/bin/sh -c 'seq 1 {LAST}; echo done >&2'");
    let daemon = Daemon::start(
        Config::new()
            .program(
                Program::new("to_file", &burst)
                    .starttime(0.0)
                    .autorestart("never")
                    .set("stdout", "{path: '{dir}/burst.log', maxbytes: 0}"),
            )
            .program(
                Program::new("to_discard", &burst)
                    .starttime(0.0)
                    .autorestart("never")
                    .set("stdout", "null"),
            ),
    )
    .await;
    let mut client = daemon.client().await;
    // Meanwhile every status is answered quickly.
    let mut slowest = std::time::Duration::ZERO;
    let mut answers = 0;
    loop {
        let asked = Instant::now();
        let now = status(&mut client).await;
        slowest = slowest.max(asked.elapsed());
        answers += 1;
        if now
            .iter()
            .all(|i| i.state() == taskmaster::proto::State::Exited)
        {
            break;
        }
        assert!(answers < 100_000, "the bursts never ended: {now:?}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(
        slowest < std::time::Duration::from_secs(1),
        "a status took {slowest:?} during the burst ({answers} asked)"
    );
    for name in ["to_file", "to_discard"] {
        let done = instance(&mut client, name).await;
        assert_eq!(done.exit_code, Some(0), "{done:?}");
        assert_eq!(done.output_dropped_bytes, 0, "{done:?}");
    }
    // Every line is in the file, in order, once: it is exactly seq's output.
    let file = daemon.path("burst.log");
    let size = seq_bytes(LAST);
    expect("the whole burst in the file", || async {
        (std::fs::metadata(&file).map_or(0, |m| m.len()) >= size).then_some(())
    })
    .await;
    let compared = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("seq 1 {LAST} | cmp - '{}'", file.display()))
        .status()
        .unwrap();
    assert!(compared.success(), "the file is not seq's output");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_loop_spawns_exactly_one_plus_startretries_times_at_growing_gaps() {
    // The cap (60 s) is the pure table's: supervisor::state backoff_grows_and_is_capped.
    let daemon = Daemon::start(
        Program::new("crasher", "/bin/sh -c 'echo spawn >> {dir}/spawns; exit 1'")
            .starttime(0.5)
            .startretries(2),
    )
    .await;
    let mut client = daemon.client().await;
    wait_state(&mut client, "crasher", taskmaster::proto::State::Fatal).await;
    let mut events = client
        .watch_events(taskmaster::proto::WatchEventsRequest {
            names: vec!["crasher".into()],
            since: Some(0),
            run: None,
        })
        .await
        .unwrap()
        .into_inner();
    let mut spawns = Vec::new();
    loop {
        let event = tokio::time::timeout(DEADLINE, events.message())
            .await
            .expect("the crash loop's events")
            .unwrap()
            .expect("an event");
        match event.kind() {
            taskmaster::proto::EventKind::Spawned => {
                let time = event.time.unwrap();
                spawns.push(std::time::Duration::new(
                    time.seconds as u64,
                    time.nanos as u32,
                ));
            }
            taskmaster::proto::EventKind::GaveUp => break,
            _ => {}
        }
    }
    assert_eq!(spawns.len(), 3, "the first try and two retries");
    assert_eq!(read(&daemon.path("spawns")).lines().count(), 3);
    let gaps: Vec<f64> = spawns
        .windows(2)
        .map(|pair| (pair[1] - pair[0]).as_secs_f64())
        .collect();
    // 1 s, then 2 s, after each failure is seen.
    assert!(gaps[0] >= 1.0 && gaps[1] >= 2.0, "{gaps:?}");
    assert!(gaps[1] > gaps[0] * 1.5, "the gaps do not grow: {gaps:?}");
    assert!(gaps[1] < 2.0 + 3.0, "{gaps:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_sighups_in_100_ms_end_with_the_last_config_applied_once() {
    let before = Config::from(
        Program::new("pool", &format!("sleep {}", own(85001)))
            .numprocs(2)
            .starttime(0.2)
            .stoptime(1.0),
    );
    let after = Config::new()
        .program(
            Program::new("pool", &format!("sleep {}", own(85002)))
                .numprocs(3)
                .starttime(0.2)
                .stoptime(1.0),
        )
        .program(
            Program::new("added", &format!("sleep {}", own(85003)))
                .starttime(0.2)
                .stoptime(1.0),
        );
    let mut daemon = Daemon::start(before.clone()).await;
    daemon.wait_running(&["pool"]).await;
    // The storm: the file rewritten between signals (so some reloads read it half written),
    // ending with `after`, written whole before the last signal. The pauses pace the storm;
    // nothing waits on them.
    let pid = daemon.pid();
    let config_path = daemon.config_path.clone();
    let texts = [before, after].map(|config| {
        daemon.write_config(config);
        std::fs::read_to_string(&config_path).unwrap()
    });
    tokio::task::spawn_blocking(move || {
        let storm = Instant::now();
        for signal in 0..30u32 {
            // The last (29th) is `after`.
            std::fs::write(&config_path, &texts[signal as usize % 2]).unwrap();
            send(pid, Signal::SIGHUP);
            let next = storm + std::time::Duration::from_millis(100) * (signal + 1) / 30;
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
    })
    .await
    .unwrap();
    assert!(daemon.try_exit().is_none(), "the daemon died in the storm");
    // Once it is over: `after`, with exactly its processes.
    let mut client = daemon.client().await;
    let applied = wait_until("the last config applied", || {
        let mut client = client.clone();
        async move {
            let now = status(&mut client).await;
            let names: Vec<&str> = now.iter().map(|i| i.name.as_str()).collect();
            let applied = names == ["added", "pool:0", "pool:1", "pool:2"]
                && now
                    .iter()
                    .all(|i| i.state() == taskmaster::proto::State::Running);
            applied.then_some(())
        }
    })
    .await;
    if applied.is_none() {
        let now: Vec<(String, i32)> = status(&mut client)
            .await
            .into_iter()
            .map(|i| (i.name, i.state))
            .collect();
        panic!(
            "the last config is not applied: {now:?}; the file:\n{}\nthe event log:\n{}",
            read(&daemon.config_path),
            daemon.log()
        );
    }
    let count = |number: u32| processes_running(&["sleep", &own(number)]).len();
    expect("the old processes gone", || async {
        (count(85001) == 0).then_some(())
    })
    .await;
    assert_eq!((count(85002), count(85003)), (3, 1));
    assert_eq!(daemon.children().len(), 4, "{:?}", daemon.children());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_then_sighup_at_once_is_a_clean_exit_that_leaves_nothing() {
    for round in 0..5 {
        let mut daemon = Daemon::start(
            Program::new("pool", &format!("sleep {}", own(86001)))
                .numprocs(3)
                .starttime(0.2)
                .stoptime(1.0),
        )
        .await;
        daemon.wait_running(&["pool"]).await;
        let pids: Vec<u32> = daemon.children();
        send(daemon.pid(), Signal::SIGTERM);
        send(daemon.pid(), Signal::SIGHUP);
        let status = daemon.wait_exit().await;
        assert_eq!(
            (status.code(), status.signal()),
            (Some(0), None),
            "round {round}: {}",
            read(&daemon.path("daemon.stderr"))
        );
        assert!(
            pids.iter().all(|pid| !alive(*pid)),
            "round {round}: {pids:?}"
        );
        // The reload asked for on the way out started nothing.
        let left = processes_running(&["sleep", &own(86001)]);
        assert!(
            left.is_empty(),
            "round {round}: {left:?} outlived the daemon (it had {pids:?}): {:?}; the log:\n{}",
            left.iter()
                .map(|pid| read(std::path::Path::new(&format!("/proc/{pid}/stat"))))
                .collect::<Vec<_>>(),
            daemon.log()
        );
        assert!(!daemon.socket.exists(), "round {round}: the socket is left");
        assert!(
            !daemon.path("taskmaster.pid").exists(),
            "round {round}: the pidfile is left"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_racing_clients_never_make_more_than_numprocs_processes() {
    use std::sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    };
    // Each process takes 30 ms to end after its stop signal: a replacement started before
    // it is gone would be seen beside it.
    let script = format!(
        r#"trap "sleep 0.03; exit 0" TERM; sleep {} & wait"#,
        own(87001)
    );
    let daemon = Daemon::start(
        Program::new("pool", &format!("/bin/sh -c '{script}'"))
            .numprocs(2)
            .autostart(false)
            .starttime(0.05)
            .stoptime(1.0),
    )
    .await;
    // Counts the live processes (the shells) in /proc for as long as the clients race: the
    // most seen at once.
    let racing = Arc::new(AtomicBool::new(true));
    let counter = {
        let racing = racing.clone();
        let script = script.clone();
        tokio::task::spawn_blocking(move || {
            let mut most = 0;
            let mut samples = 0;
            while racing.load(Ordering::Relaxed) {
                most = most.max(leaders_running(&["/bin/sh", "-c", &script]).len());
                samples += 1;
            }
            (most, samples)
        })
    };
    let mut clients = Vec::new();
    for client_index in 0..50usize {
        let mut client = daemon.client().await;
        clients.push(tokio::spawn(async move {
            let names = ["pool", "pool:0", "pool:1", "all"];
            for step in 0..8usize {
                let names = vec![names[(client_index + step) % names.len()].to_string()];
                let no_wait = (client_index * 7 + step) % 5 == 0;
                let call = match (client_index * 3 + step) % 3 {
                    0 => client
                        .start(taskmaster::proto::StartRequest { names, no_wait })
                        .await
                        .map(|_| ()),
                    1 => client
                        .stop(taskmaster::proto::StopRequest { names, no_wait })
                        .await
                        .map(|_| ()),
                    _ => client
                        .restart(taskmaster::proto::RestartRequest { names, no_wait })
                        .await
                        .map(|_| ()),
                };
                call.unwrap_or_else(|error| panic!("client {client_index}: {error}"));
            }
        }));
    }
    for client in clients {
        tokio::time::timeout(DEADLINE, client)
            .await
            .expect("a client's calls hang")
            .unwrap();
    }
    racing.store(false, Ordering::Relaxed);
    let (most, samples) = counter.await.unwrap();
    assert!(most <= 2, "{most} processes of a program of numprocs 2");
    assert!(
        most >= 1 && samples > 10,
        "{most} at most in {samples} samples"
    );
    let mut client = daemon.client().await;
    client.stop(stop_request("all")).await.unwrap();
    assert!(leaders_running(&["/bin/sh", "-c", &script]).is_empty());
}

/// A channel to the daemon on a connection of its own whose HTTP/2 windows are small (8 KiB),
/// so that a stream it does not read stops the daemon's sending soon.
async fn narrow_channel(daemon: &Daemon) -> tonic::transport::Channel {
    let socket = daemon.socket.clone();
    tonic::transport::Endpoint::from_static("http://localhost")
        .initial_stream_window_size(8 << 10)
        .initial_connection_window_size(8 << 10)
        .connect_with_connector(tower::service_fn(move |_: http::Uri| {
            let socket = socket.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(socket).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        }))
        .await
        .expect("connect to taskmasterd")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_that_never_reads_slows_nobody_and_is_told_what_it_missed() {
    use taskmaster::proto::{self, EventKind};
    use tokio_stream::StreamExt;
    // 500 instances that never run: each Clear of them all is 500 events, with no process.
    let daemon = Daemon::start(
        Program::new("quiet", "sleep 88001")
            .numprocs(500)
            .autostart(false)
            .set("stdout", "null")
            .set("stderr", "null"),
    )
    .await;
    let mut client = daemon.client().await;
    let watch = |mut client: Client| async move {
        client
            .watch_events(proto::WatchEventsRequest {
                names: vec![],
                since: None,
                run: None,
            })
            .await
            .unwrap()
            .into_inner()
    };
    let mut stalled = watch(taskmaster::proto::taskmaster_client::TaskmasterClient::new(
        narrow_channel(&daemon).await,
    ))
    .await;
    let mut reader = watch(daemon.client().await).await;
    // 60 rounds of 500 events, far more than the stalled watcher's backlog and windows hold.
    // The reader gets each round whole before the next; status answers meanwhile.
    let mut last_seq = 0;
    let mut slowest = std::time::Duration::ZERO;
    for round in 0..60 {
        let cleared = client
            .clear(proto::ClearRequest {
                names: vec!["quiet".into()],
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(cleared.cleared.len(), 500);
        let mut got = 0;
        while got < 500 {
            let event = tokio::time::timeout(DEADLINE, reader.next())
                .await
                .unwrap_or_else(|_| panic!("round {round}: the reader is held up"))
                .expect("the reader's stream goes on")
                .unwrap();
            assert_eq!(event.kind(), EventKind::OutputCleared, "{event:?}");
            assert!(
                last_seq == 0 || event.seq == last_seq + 1,
                "{event:?} after {last_seq}"
            );
            last_seq = event.seq;
            got += 1;
        }
        let asked = Instant::now();
        status(&mut client).await;
        slowest = slowest.max(asked.elapsed());
    }
    assert!(
        slowest < std::time::Duration::from_secs(1),
        "a status took {slowest:?}"
    );
    // Now the stalled one reads: what was sent before it stalled, a LAGGED notice, and the
    // newest events; every event is either received or counted missed, up to the last.
    let mut missed = 0;
    let mut previous: Option<u64> = None;
    let mut pending_gap = 0;
    while previous != Some(last_seq) {
        let event = tokio::time::timeout(DEADLINE, stalled.next())
            .await
            .expect("the stalled watcher's stream goes on")
            .expect("it is not ended")
            .unwrap();
        if event.kind() == EventKind::Lagged {
            assert!(event.missed > 0, "{event:?}");
            missed += event.missed;
            pending_gap += event.missed;
            continue;
        }
        if let Some(previous) = previous {
            assert_eq!(
                event.seq,
                previous + 1 + pending_gap,
                "after a gap of {pending_gap}"
            );
        }
        pending_gap = 0;
        previous = Some(event.seq);
    }
    assert!(
        missed > 0,
        "the stalled watcher missed nothing: the test did not stall it"
    );
}
