//! `taskctl tail`, `maintail`, `clear` and `reopen`: program output and the event log, one-shot
//! and in the shell. Programs capture their output by default, so none sets `stdout`.
//!
//! Every test needs the daemon's side of output capture (issue 9); until it lands the daemon
//! answers these RPCs with UNIMPLEMENTED, so they are ignored.

use std::time::Duration;

use nix::sys::signal::Signal;

use crate::{
    harness::{Run, Terminal, ctl, follow, home},
    support::*,
};

const CTRL_C: &str = "\x03";

/// `name`, which prints 1 to 10, one a line, then sleeps.
fn counter(name: &str) -> Program {
    Program::new(name, "sh -c 'seq 1 10; sleep 1000'")
        .starttime(0.2)
        .stoptime(1.0)
}

/// Runs `taskctl ARGS...` until `check` holds for what it did (output reaches the daemon's
/// files a moment after the program wrote it); returns that run.
async fn ctl_until(daemon: &Daemon, args: &[&str], check: impl Fn(&Run) -> bool) -> Run {
    let what = format!("taskctl {}", args.join(" "));
    let mut last = None;
    let found = wait_until(&what, || {
        let run = ctl(&daemon.socket, args);
        let found = if check(&run) {
            Some(run)
        } else {
            last = Some(run);
            None
        };
        async move { found }
    })
    .await;
    found.unwrap_or_else(|| panic!("{what} never did as expected; the last run: {last:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_n_prints_exactly_the_last_lines() {
    let daemon = Daemon::start(counter("counter")).await;
    daemon.wait_running(&["counter"]).await;
    let run = ctl_until(&daemon, &["tail", "-n", "3", "counter"], |run| {
        run.stdout.ends_with("10\n")
    })
    .await;
    assert_eq!(
        (run.code, run.stdout.as_str(), run.stderr.as_str()),
        (0, "8\n9\n10\n", "")
    );
    // 20 by default: all ten.
    let run = ctl(&daemon.socket, &["tail", "counter"]);
    let expected: String = (1..=10).map(|number| format!("{number}\n")).collect();
    assert_eq!((run.code, run.stdout), (0, expected));
    let run = ctl(&daemon.socket, &["tail", "--bytes", "3", "counter"]);
    assert_eq!((run.code, run.stdout.as_str()), (0, "10\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_stderr_is_the_other_stream() {
    let daemon = Daemon::start(
        Program::new("both", "sh -c 'echo out; echo err >&2; sleep 1000'").starttime(0.2),
    )
    .await;
    daemon.wait_running(&["both"]).await;
    let run = ctl_until(&daemon, &["tail", "both", "stderr"], |run| {
        !run.stdout.is_empty()
    })
    .await;
    assert_eq!((run.code, run.stdout.as_str()), (0, "err\n"));
    let run = ctl_until(&daemon, &["tail", "both", "stdout"], |run| {
        !run.stdout.is_empty()
    })
    .await;
    assert_eq!((run.code, run.stdout.as_str()), (0, "out\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_f_shows_what_is_written_after_it_started() {
    let daemon = Daemon::start(
        // `two` waits for the test: it is written only once tail follows.
        Program::new(
            "talker",
            "sh -c 'echo one; while [ ! -e {dir}/go ]; do sleep 0.05; done; echo two; sleep 1000'",
        )
        .starttime(0.2),
    )
    .await;
    daemon.wait_running(&["talker"]).await;
    let tail = follow(&daemon.socket, &["tail", "-f", "talker"]);
    tail.line("the line written before", |line| line == "one");
    std::fs::write(daemon.path("go"), "").unwrap();
    tail.line("the line written after", |line| line == "two");
    // Ctrl-C ends it, as any command it interrupts.
    assert_eq!(tail.interrupt(), Some(130));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_of_a_discarded_stream_or_an_unknown_name_fails() {
    let daemon = Daemon::start(
        Config::new()
            .program(Program::sleeper("quiet").set("stdout", "null"))
            .program(Program::sleeper("web")),
    )
    .await;
    daemon.wait_running(&["quiet", "web"]).await;
    let run = ctl(&daemon.socket, &["tail", "quiet"]);
    assert_eq!((run.code, run.stdout.as_str()), (1, ""));
    assert!(!run.stderr.is_empty(), "a reason is given");
    // Its stderr is still captured.
    let run = ctl(&daemon.socket, &["tail", "quiet", "stderr"]);
    assert_eq!((run.code, run.stderr.as_str()), (0, ""));
    for args in [&["tail", "nope"][..], &["clear", "web", "nope"]] {
        let run = ctl(&daemon.socket, args);
        assert_eq!(
            (run.code, run.stdout.as_str(), run.stderr.as_str()),
            (1, "", "no such program or instance: nope\n"),
            "{args:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_then_tail_prints_nothing() {
    let daemon = Daemon::start(counter("counter")).await;
    daemon.wait_running(&["counter"]).await;
    ctl_until(&daemon, &["tail", "counter"], |run| {
        run.stdout.ends_with("10\n")
    })
    .await;
    let run = ctl(&daemon.socket, &["clear", "counter"]);
    assert_eq!(
        (run.code, run.stdout.as_str(), run.stderr.as_str()),
        (0, "counter: cleared\n", "")
    );
    let run = ctl(&daemon.socket, &["tail", "counter"]);
    assert_eq!((run.code, run.stdout.as_str()), (0, ""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintail_shows_the_end_of_the_event_log() {
    let daemon = Daemon::start(Program::sleeper("sleeper")).await;
    daemon.wait_running(&["sleeper"]).await;
    let run = ctl(&daemon.socket, &["maintail", "-n", "5"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let log = daemon.log();
    let lines: Vec<&str> = log.lines().collect();
    let last: String = lines[lines.len().saturating_sub(5)..]
        .iter()
        .map(|line| format!("{line}\n"))
        .collect();
    assert_eq!(run.stdout, last);
    assert!(run.stdout.contains("daemon started"), "{}", run.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_says_so() {
    let daemon = Daemon::start(Program::sleeper("sleeper")).await;
    daemon.wait_running(&["sleeper"]).await;
    let run = ctl(&daemon.socket, &["reopen"]);
    assert_eq!(
        (run.code, run.stdout.as_str(), run.stderr.as_str()),
        (0, "reopened\n", "")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_f_in_the_shell_ends_with_ctrl_c_and_keeps_events_back() {
    let daemon = Daemon::start(
        Config::new()
            .program(counter("counter"))
            .program(Program::sleeper("sleeper")),
    )
    .await;
    daemon.wait_running(&["counter", "sleeper"]).await;
    let mut client = daemon.client().await;
    let home = home();
    let mut terminal = Terminal::spawn(home.path(), &["-s".as_ref(), daemon.socket.as_os_str()]);
    terminal.wait_for("the opening status and the prompt", |view| {
        view.text.contains("sleeper  RUNNING") && view.cursor_line() == "taskmaster>"
    });
    ctl_until(&daemon, &["tail", "counter"], |run| {
        run.stdout.ends_with("10\n")
    })
    .await;
    terminal.send("tail -f -n 2 counter\r");
    terminal.wait_for("the last two lines", |view| view.text.contains("\n9\n10\n"));
    // An event while tail runs is not mixed into its output.
    let first = instance(&mut client, "sleeper").await;
    send(first.pid, Signal::SIGKILL);
    wait_new_pid(&mut client, "sleeper", first.pid).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    terminal.send(CTRL_C);
    terminal.wait_prompt("");
    terminal.send("pid\r");
    let view = terminal.wait_text(&format!("\n{}\n", daemon.pid()));
    assert!(
        !view.text.contains("sleeper  RUNNING -> EXITED"),
        "{}",
        view.text
    );
}
