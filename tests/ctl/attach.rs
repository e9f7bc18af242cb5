//! `taskctl attach`, the real binary in a pseudo-terminal read off an emulated screen: typed
//! keys reach a program on its own terminal and its answers come back, the window size and
//! its changes, detaching (the program goes on), the recent screen replayed at a re-attach, two
//! clients at once, how the process ended, the terminal put back exactly however the session
//! ends (the detach keys, the process's end, the daemon stopping or dying), programs without a
//! terminal, and the shell's `attach`.

use std::path::Path;

use nix::sys::signal::Signal;
use taskmaster::proto::{self, State};

use crate::{
    harness::{Terminal, home},
    support::*,
};

const CTRL_BRACKET: &str = "\x1d";
const CTRL_C: &str = "\x03";
const CTRL_D: &str = "\x04";

/// A shell that says it is ready, then answers each line: `size` with its window size, `exit
/// N` by exiting, anything else with `got:LINE` (and `err:LINE` on stderr).
const ANSWERING: &str = r#"sh -c 'echo ready; while read line; do case "$line" in exit*) exit ${line#exit };; size) stty size 2>&1;; *) echo "got:$line"; echo "err:$line" >&2;; esac; done'"#;

fn terminal_program(name: &str) -> Program {
    Program::new(name, ANSWERING)
        .set("tty", true)
        .starttime(0.2)
        .stoptime(1.0)
}

/// Runs `taskctl -s SOCKET attach ARGS...` in a terminal, from a shell that then says with
/// what status it ended and whether the terminal's settings are what they were before
/// (`stty -g`): `taskctl exited 0, terminal restored`.
fn attach(socket: &Path, home: &Path, args: &[&str]) -> Terminal {
    // The shell outlives a Ctrl-C that reaches the whole foreground group (its trap is not
    // taskctl's: a caught signal is default again after exec).
    let script = r#"trap : INT; before=$(stty -g); "$0" "$@"; code=$?; if [ "$(stty -g)" = "$before" ]; then terminal=restored; else terminal=changed; fi; echo "taskctl exited $code, terminal $terminal""#;
    let mut words = vec!["-s".as_ref(), socket.as_os_str(), "attach".as_ref()];
    words.extend(args.iter().map(|arg| std::ffi::OsStr::new(*arg)));
    Terminal::script(home, script, &words)
}

/// How a session that ended normally ends.
const RESTORED: &str = "taskctl exited 0, terminal restored";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_keys_reach_a_program_on_its_terminal_and_ctrl_bracket_detaches() {
    let daemon = Daemon::start(terminal_program("term")).await;
    let pid = daemon.wait_running(&["term"]).await["term"];
    let home = home();
    let mut terminal = attach(&daemon.socket, home.path(), &["term"]);
    terminal.wait_text(&format!("attached to term (pid {pid}): ctrl-] detaches"));
    // The recent screen first: where the program is.
    terminal.wait_text("ready");
    terminal.send("hello\r");
    terminal.wait_text("got:hello");
    // Its window is this terminal's, and follows it.
    terminal.send("size\r");
    terminal.wait_text("50 120");
    terminal.resize(30, 100);
    // taskctl passes the resize on when its SIGWINCH is handled, which may be after the keys
    // typed next: asked again until the answer is the new size (each answer is waited for).
    for _ in 0..50 {
        let before = terminal.wait_for("the screen", |_| true).count("50 120");
        terminal.send("size\r");
        let view = terminal.wait_for("an answer to size", |view| {
            view.text.contains("30 100") || view.count("50 120") > before
        });
        if view.text.contains("30 100") {
            break;
        }
    }
    terminal.wait_text("30 100");
    terminal.send(CTRL_BRACKET);
    terminal.wait_text("detached from term; it goes on running");
    terminal.wait_text(RESTORED);
    let mut client = daemon.client().await;
    let status = instance(&mut client, "term").await;
    assert_eq!((status.state(), status.pid), (State::Running, pid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_goes_to_the_program_and_its_end_is_told() {
    let daemon = Daemon::start(terminal_program("term").autorestart("never")).await;
    daemon.wait_running(&["term"]).await;
    let home = home();
    let mut terminal = attach(&daemon.socket, home.path(), &["term"]);
    terminal.wait_text("ready");
    // Ctrl-C is the program's: the terminal makes it SIGINT, which ends the shell.
    terminal.send(CTRL_C);
    terminal.wait_text("term ended: killed by SIGINT");
    terminal.wait_text(RESTORED);
    let mut client = daemon.client().await;
    client
        .start(proto::StartRequest {
            names: vec!["term".into()],
            no_wait: false,
        })
        .await
        .unwrap();
    let mut terminal = attach(&daemon.socket, home.path(), &["term"]);
    terminal.wait_text("ready");
    terminal.send("exit 7\r");
    terminal.wait_text("term ended: exit status 7");
    terminal.wait_text(RESTORED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reattach_replays_the_recent_screen() {
    let daemon = Daemon::start(terminal_program("term")).await;
    daemon.wait_running(&["term"]).await;
    let home = home();
    // Attach, type, detach; clear the screen; attach again.
    let script = r#""$0" -s "$1" attach term; printf '\033[2J\033[H'; echo "cleared"; "$0" -s "$1" attach term"#;
    let mut terminal = Terminal::script(home.path(), script, &[daemon.socket.as_os_str()]);
    terminal.wait_text("ready");
    terminal.send("remember me\r");
    terminal.wait_text("got:remember me");
    terminal.send(CTRL_BRACKET);
    terminal.wait_for("the second attach after a clear screen", |view| {
        view.text.contains("cleared") && view.text.contains("attached to term")
    });
    // What the program showed before is on the screen again.
    terminal.wait_for("the replay", |view| {
        view.text.contains("got:remember me") && view.text.contains("ready")
    });
    terminal.send("and more\r");
    terminal.wait_text("got:and more");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_see_the_output_and_each_ones_keys_reach_the_program() {
    let daemon = Daemon::start(terminal_program("term")).await;
    daemon.wait_running(&["term"]).await;
    let (home_a, home_b) = (home(), home());
    let mut alice = attach(&daemon.socket, home_a.path(), &["term"]);
    let mut bob = attach(&daemon.socket, home_b.path(), &["term"]);
    alice.wait_text("ready");
    bob.wait_text("ready");
    alice.send("from alice\r");
    alice.wait_text("got:from alice");
    bob.wait_text("got:from alice");
    bob.send("from bob\r");
    bob.wait_text("got:from bob");
    alice.wait_text("got:from bob");
    // One detaches, the other stays.
    alice.send(CTRL_BRACKET);
    alice.wait_text(RESTORED);
    bob.send("still here\r");
    bob.wait_text("got:still here");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_sends_no_keys_and_other_detach_keys_detach() {
    let daemon = Daemon::start(terminal_program("term")).await;
    daemon.wait_running(&["term"]).await;
    let home = home();
    let mut watcher = attach(
        &daemon.socket,
        home.path(),
        &["--read-only", "--detach-keys", "ctrl-p,ctrl-q", "term"],
    );
    watcher.wait_text("watching term");
    watcher.wait_text("read-only: ctrl-p,ctrl-q detaches");
    watcher.wait_text("ready");
    // Keys go nowhere; a lone Ctrl-P, or Ctrl-] here, does not detach.
    watcher.send("typed by the watcher\r\x10x");
    watcher.send(CTRL_BRACKET);
    let mut client = daemon.client().await;
    let other = crate::harness::home();
    let mut writer = attach(&daemon.socket, other.path(), &["term"]);
    writer.wait_text("ready");
    writer.send("from the writer\r");
    watcher.wait_text("got:from the writer");
    assert_eq!(watcher.wait_text("got:").count("got:typed"), 0);
    watcher.send("\x10\x11");
    watcher.wait_text("detached from term");
    watcher.wait_text(RESTORED);
    assert_eq!(instance(&mut client, "term").await.state(), State::Running);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_terminal_is_restored_when_the_daemon_stops_or_dies_mid_attach() {
    let mut daemon = Daemon::start(terminal_program("term")).await;
    daemon.wait_running(&["term"]).await;
    let home = home();
    let terminal = attach(&daemon.socket, home.path(), &["term"]);
    terminal.wait_text("ready");
    let mut client = daemon.client().await;
    client.shutdown(proto::ShutdownRequest {}).await.unwrap();
    terminal.wait_text("term ended: killed by SIGTERM (taskmasterd is shutting down)");
    terminal.wait_text(RESTORED);
    daemon.wait_exit().await;
    // A daemon killed outright: it cannot be reached (status 3), the terminal is put back.
    let daemon = Daemon::start(terminal_program("term")).await;
    daemon.wait_running(&["term"]).await;
    let terminal = attach(&daemon.socket, home.path(), &["term"]);
    terminal.wait_text("ready");
    send(daemon.pid(), Signal::SIGKILL);
    // Killed mid-stream the connection is lost; killed first, it cannot be reached.
    terminal.wait_for("the daemon's loss reported", |view| {
        view.text.contains("cannot reach taskmasterd")
            || view.text.contains("lost connection to taskmasterd")
    });
    terminal.wait_text("taskctl exited 3, terminal restored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_terminal_lines_go_to_stdin_only_with_a_pipe() {
    let daemon = Daemon::start(
        Config::new()
            .program(
                Program::new("piped", ANSWERING)
                    .set("stdin", "pipe")
                    .starttime(0.2)
                    .stoptime(1.0),
            )
            .program(
                Program::new(
                    "ticker",
                    "sh -c 'n=0; while :; do n=$((n+1)); echo tick $n; sleep 0.1; done'",
                )
                .starttime(0.2)
                .stoptime(1.0),
            ),
    )
    .await;
    daemon.wait_running(&["piped", "ticker"]).await;
    let home = home();
    let mut piped = attach(&daemon.socket, home.path(), &["piped"]);
    piped.wait_text("no terminal: each line typed goes to its stdin; Ctrl-D or Ctrl-C detaches");
    // The terminal edits the line (it is not in raw mode): the program gets it whole.
    piped.send("hellp\x7fo there\r");
    piped.wait_text("got:hello there");
    piped.wait_text("err:hello there");
    piped.send(CTRL_D);
    piped.wait_text("detached from piped; it goes on running");
    piped.wait_text(RESTORED);
    let mut ticker = attach(&daemon.socket, home.path(), &["ticker"]);
    ticker.wait_text("no terminal, and no input possible (no `stdin: pipe`); Ctrl-C detaches");
    ticker.wait_text("tick");
    ticker.send(CTRL_C);
    ticker.wait_text("detached from ticker; it goes on running");
    ticker.wait_text(RESTORED);
    let mut client = daemon.client().await;
    assert_eq!(
        instance(&mut client, "ticker").await.state(),
        State::Running
    );
    assert_eq!(instance(&mut client, "piped").await.state(), State::Running);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_said_in_one_line() {
    let daemon = Daemon::start(
        Config::new()
            .program(Program::sleeper("idle").autostart(false))
            .program(Program::sleeper("pool").numprocs(2)),
    )
    .await;
    let run = crate::harness::ctl(&daemon.socket, &["attach", "idle"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr
            .contains("idle is not running (STOPPED): there is no process to attach to"),
        "{run:?}"
    );
    let run = crate::harness::ctl(&daemon.socket, &["attach", "pool"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("pool has 2 instances"), "{run:?}");
    let run = crate::harness::ctl(
        &daemon.socket,
        &["attach", "--detach-keys", "ctrl-", "pool:0"],
    );
    assert_eq!(run.code, 2, "{run:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shell_attaches_and_detach_returns_to_its_prompt_with_history_and_events() {
    let daemon = Daemon::start(
        Config::new()
            .program(terminal_program("term"))
            .program(Program::sleeper("sleeper")),
    )
    .await;
    daemon.wait_running(&["term", "sleeper"]).await;
    let home = home();
    let mut shell = Terminal::spawn(home.path(), &["-s".as_ref(), daemon.socket.as_os_str()]);
    shell.wait_for("the prompt", |view| view.cursor_line() == "taskmaster>");
    shell.send("attach term\r");
    shell.wait_text("ready");
    shell.send("from the shell\r");
    shell.wait_text("got:from the shell");
    shell.send(CTRL_BRACKET);
    shell.wait_text("detached from term; it goes on running");
    shell.wait_prompt("");
    // The history has it, and events show above the prompt again.
    shell.send("\x1b[A");
    shell.wait_prompt("attach term");
    shell.send("\x15");
    shell.wait_prompt("");
    let mut client = daemon.client().await;
    client
        .stop(proto::StopRequest {
            names: vec!["sleeper".into()],
            no_wait: false,
        })
        .await
        .unwrap();
    shell.wait_text("sleeper  STOPPING -> STOPPED");
    shell.send("status term\r");
    shell.wait_for("term running in the status", |view| {
        view.text
            .lines()
            .any(|line| line.starts_with("term") && line.contains("RUNNING"))
    });
}
