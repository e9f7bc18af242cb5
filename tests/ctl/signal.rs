//! `taskctl signal`: to a program that traps it, to a whole process group (a child of the
//! leader gets it) or the leader alone, and what it says of a stopped instance, an unknown
//! signal and an unknown name.

use crate::{harness::ctl, support::*};

/// Traps USR1, writing `NAME got USR1` to `got`; `NAME ready` once it does.
const TRAP: &str = r#"name=$1
trap 'echo "$name got USR1" >> got' USR1
echo "$name ready" >> got
while :; do sleep 1000 & wait $!; done
"#;

/// A leader that traps USR1 and starts a child (trap.sh, in its process group) that does too.
const LEADER: &str = r#"trap 'echo "leader got USR1" >> got' USR1
sh ./trap.sh child &
echo "leader ready" >> got
while :; do sleep 1000 & wait $!; done
"#;

/// How many lines of `got` are `line`.
fn count(dir: &std::path::Path, line: &str) -> usize {
    read(&dir.join("got"))
        .lines()
        .filter(|got| *got == line)
        .count()
}

/// Waits until `got` has `times` lines `line`.
async fn wait_got(dir: &std::path::Path, line: &str, times: usize) {
    let what = format!("{times} times `{line}`");
    expect(&what, || async move {
        (count(dir, line) >= times).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signal_reaches_a_trapping_program_its_group_or_its_leader_alone() {
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "trap.sh", TRAP, 0o644);
    write_file(dir.path(), "leader.sh", LEADER, 0o644);
    let config = Config::new()
        .program(
            Program::new("solo", "sh ./trap.sh solo")
                .workingdir("{dir}")
                .starttime(0.2),
        )
        .program(
            Program::new("group", "sh ./leader.sh")
                .workingdir("{dir}")
                .starttime(0.2),
        )
        .program(Program::sleeper("idle").autostart(false));
    let daemon = Daemon::launch(config).in_dir(dir).start().await;
    let dir = daemon.dir.path();
    let pids = daemon.wait_running(&["solo", "group"]).await;
    for ready in ["solo ready", "leader ready", "child ready"] {
        wait_got(dir, ready, 1).await;
    }

    let run = ctl(&daemon.socket, &["signal", "USR1", "solo"]);
    assert_eq!(
        (run.code, run.stdout.as_str(), run.stderr.as_str()),
        (0, "solo: SIGUSR1 sent\n", "")
    );
    wait_got(dir, "solo got USR1", 1).await;
    // It trapped the signal: it runs on, as it was.
    let mut client = daemon.client().await;
    let solo = instance(&mut client, "solo").await;
    assert_eq!(
        (solo.state(), solo.pid),
        (taskmaster::proto::State::Running, pids["solo"])
    );

    // The leader alone, by its full name.
    let run = ctl(&daemon.socket, &["signal", "--leader", "SIGUSR1", "group"]);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "group: SIGUSR1 sent\n")
    );
    wait_got(dir, "leader got USR1", 1).await;
    // The whole group, by number: the leader and its child.
    let run = ctl(&daemon.socket, &["signal", "10", "group"]);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "group: SIGUSR1 sent\n")
    );
    wait_got(dir, "leader got USR1", 2).await;
    wait_got(dir, "child got USR1", 1).await;
    assert_eq!(
        count(dir, "child got USR1"),
        1,
        "the child got the leader's own signal"
    );

    // A stopped instance is not running; the others are signalled all the same.
    let run = ctl(&daemon.socket, &["signal", "usr1", "solo", "idle"]);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (1, "solo: SIGUSR1 sent\nidle: ERROR (not running)\n")
    );
    wait_got(dir, "solo got USR1", 2).await;

    // An unknown signal, an unknown name: nothing is sent at all.
    let run = ctl(&daemon.socket, &["signal", "NOPE", "solo"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.is_empty(), "{run:?}");
    assert!(run.stderr.contains("unknown signal `NOPE`"), "{run:?}");
    let run = ctl(&daemon.socket, &["signal", "USR1", "solo", "ghost"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("no such program or instance: ghost"),
        "{run:?}"
    );
    let run = ctl(&daemon.socket, &["signal", "USR1", "solo"]);
    assert_eq!(run.code, 0, "{run:?}");
    wait_got(dir, "solo got USR1", 3).await;
    assert_eq!(
        count(dir, "solo got USR1"),
        3,
        "the refused ones sent nothing"
    );
    // Without a name: a usage error.
    let run = ctl(&daemon.socket, &["signal", "USR1"]);
    assert_eq!(run.code, 2, "{run:?}");

    // Each signal is an event, with who sent it.
    let log = expect("the signal in the event log", || async {
        let log = daemon.log();
        log.contains("group: signalled").then_some(log)
    })
    .await;
    let line = (log.lines())
        .find(|line| line.contains("solo: signalled pid="))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        line.contains("reason=\"SIGUSR1 sent to its process group\""),
        "{line}"
    );
    assert!(line.contains("by=\"uid "), "{line}");
    assert!(
        log.contains("reason=\"SIGUSR1 sent to its leader\""),
        "{log}"
    );
}
