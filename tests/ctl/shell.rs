//! The interactive shell, driven through a pseudo-terminal and read off an emulated screen:
//! completion, history, live events above a half-typed line, reconnection, confirmation,
//! Ctrl-C and Ctrl-D.

use std::path::Path;

use nix::sys::signal::Signal;
use taskmaster::proto;

use crate::{
    harness::{Terminal, history_file, home},
    support::*,
};

/// Two programs, one with two instances.
fn programs() -> Config {
    Config::new()
        .program(Program::sleeper("sleeper"))
        .program(Program::sleeper("web").numprocs(2))
}

/// Every instance of [`programs`].
const ALL: [&str; 2] = ["sleeper", "web"];

const UP: &str = "\x1b[A";
const CTRL_C: &str = "\x03";
const CTRL_D: &str = "\x04";
const CTRL_R: &str = "\x12";

/// A table row of a running instance (an event line has `RUNNING ->` instead).
fn running_row(name: &str) -> String {
    format!("{name:<7}  RUNNING   pid ")
}

/// Opens the shell on `socket` and waits for its opening status table and prompt.
fn open(socket: &Path, home: &Path) -> Terminal {
    let terminal = Terminal::spawn(home, &["-s".as_ref(), socket.as_os_str()]);
    terminal.wait_for("the opening status and the prompt", |view| {
        view.text.contains(&running_row("sleeper")) && view.cursor_line() == "taskmaster>"
    });
    terminal
}

async fn shut_down(daemon: &mut Daemon, client: &mut Client) {
    client.shutdown(proto::ShutdownRequest {}).await.unwrap();
    daemon.wait_exit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tab_completes_commands_and_program_names() {
    let daemon = Daemon::start(programs()).await;
    daemon.wait_running(&ALL).await;
    let home = home();
    let mut terminal = open(&daemon.socket, home.path());
    terminal.send("sta");
    terminal.wait_prompt("sta");
    terminal.send("\t");
    terminal.wait_for("a menu of start and status, start selected", |view| {
        view.text
            .lines()
            .any(|line| line.contains("start") && line.contains("status"))
            && view.highlighted.trim() == "start"
    });
    // The second Tab moves to `status`, Enter takes it.
    terminal.send("\t");
    terminal.wait_for("status selected", |view| {
        view.highlighted.trim() == "status"
    });
    terminal.send("\r");
    terminal.wait_prompt("status ");
    terminal.send("\r");
    terminal.wait_for("a second status table", |view| {
        view.count(&running_row("sleeper")) == 2
    });
    // A lone match is taken at once.
    terminal.send("stat");
    terminal.wait_prompt("stat");
    terminal.send("\t");
    terminal.wait_prompt("status ");
    terminal.send(&"\x7f".repeat(7));
    terminal.wait_prompt("");
    // Names come from the daemon.
    terminal.send("stop sl");
    terminal.wait_prompt("stop sl");
    terminal.send("\t");
    terminal.wait_prompt("stop sleeper ");
    terminal.send("\r");
    terminal.wait_text("sleeper: stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_is_recalled_searched_and_kept_across_restarts() {
    let daemon = Daemon::start(programs()).await;
    daemon.wait_running(&ALL).await;
    let home = home();
    let version = format!("taskmasterd {}", env!("CARGO_PKG_VERSION"));
    {
        let mut terminal = open(&daemon.socket, home.path());
        terminal.send("version\r");
        terminal.wait_for("the versions", |view| view.count(&version) == 1);
        terminal.wait_prompt("");
        terminal.send(UP);
        terminal.wait_prompt("version");
        terminal.send("\r");
        terminal.wait_for("the versions again", |view| view.count(&version) == 2);
        terminal.wait_prompt("");
        terminal.send("exit\r");
        assert_eq!(terminal.wait_exit(), 0);
    }
    let history = read(&history_file(home.path()));
    assert!(history.lines().any(|line| line == "version"), "{history}");
    assert_eq!(history.lines().last(), Some("exit"));

    let mut terminal = open(&daemon.socket, home.path());
    terminal.send(UP);
    terminal.wait_prompt("exit");
    terminal.send(UP);
    terminal.wait_prompt("version");
    terminal.send(CTRL_C);
    terminal.wait_prompt("");
    // Ctrl-R finds it too.
    terminal.send(CTRL_R);
    terminal.send("vers");
    terminal.wait_text("(reverse-i-search: vers) version");
    terminal.send("\r");
    terminal.wait_prompt("version");
    terminal.send("\r");
    terminal.wait_for("the versions", |view| view.count(&version) == 1);
    // Back at the prompt first: a Ctrl-D typed while the command runs can be lost.
    terminal.wait_prompt("");
    terminal.send(CTRL_D);
    assert_eq!(terminal.wait_exit(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_appears_above_a_half_typed_line_that_stays_intact() {
    let daemon = Daemon::start(programs()).await;
    daemon.wait_running(&ALL).await;
    let mut client = daemon.client().await;
    let home = home();
    let mut terminal = open(&daemon.socket, home.path());
    terminal.send("stat");
    terminal.wait_prompt("stat");
    // From outside: kill -9 of a program, which the daemon restarts.
    let first = instance(&mut client, "sleeper").await;
    send(first.pid, Signal::SIGKILL);
    let second = wait_new_pid(&mut client, "sleeper", first.pid).await;
    let restarted = format!("  sleeper  STARTING -> RUNNING  pid {}", second.pid);
    let view = terminal.wait_for("the restart above the prompt", |view| {
        view.text.contains(&restarted) && view.cursor_line() == "taskmaster> stat"
    });
    assert_eq!(view.cursor.1, 16, "{}", view.text);
    let exited = format!(
        "  sleeper  RUNNING -> EXITED  pid {}  killed by SIGKILL (unexpected)",
        first.pid
    );
    let rows: Vec<&str> = view.text.lines().collect();
    let exited_row = rows.iter().position(|row| row.ends_with(&exited));
    assert!(
        exited_row.is_some_and(|row| row < usize::from(view.cursor.0)),
        "{}",
        view.text
    );
    // What was typed is still there, whole.
    terminal.send("us\r");
    terminal.wait_for("a second status table", |view| {
        view.count(&running_row("sleeper")) == 2
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_in_the_shell_ends_with_ctrl_c() {
    let daemon = Daemon::start(programs()).await;
    daemon.wait_running(&ALL).await;
    let mut client = daemon.client().await;
    let home = home();
    let mut terminal = open(&daemon.socket, home.path());
    let first = instance(&mut client, "sleeper").await;
    terminal.send("watch --since 0 sleeper\r");
    terminal.wait_text(&format!(
        "  sleeper  STARTING -> RUNNING  pid {}",
        first.pid
    ));
    send(first.pid, Signal::SIGKILL);
    terminal.wait_text(&format!("  sleeper  RUNNING -> EXITED  pid {}", first.pid));
    terminal.send(CTRL_C);
    terminal.wait_prompt("");
    terminal.send("pid\r");
    terminal.wait_text(&format!("\n{}\n", daemon.pid()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shell_reconnects_when_the_daemon_comes_back() {
    let mut daemon = Daemon::start(programs()).await;
    daemon.wait_running(&ALL).await;
    let mut client = daemon.client().await;
    let home = home();
    let mut terminal = open(&daemon.socket, home.path());
    shut_down(&mut daemon, &mut client).await;
    let socket = daemon.socket.display();
    terminal.wait_text(&format!(
        "lost connection to taskmasterd at {socket}: taskmasterd stopped"
    ));
    terminal.send("status\r");
    terminal.wait_text(&format!(
        "cannot reach taskmasterd at {socket}: no such file or directory; is it running?"
    ));
    let again = daemon.spawn_again();
    terminal.wait_text(&format!("reconnected to taskmasterd at {socket}"));
    // The new daemon's events, from its start.
    terminal.wait_text("  taskmasterd  daemon started");
    terminal.wait_text("  sleeper  STARTING -> RUNNING");
    terminal.send("pid\r");
    terminal.wait_text(&format!("\n{}\n", again.pid()));
    assert_eq!(
        daemon.log().matches("daemon started").count(),
        2,
        "{}",
        daemon.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shell_opens_without_a_daemon_and_connects_when_it_starts() {
    let mut daemon = Daemon::start(programs()).await;
    daemon.wait_running(&ALL).await;
    let mut client = daemon.client().await;
    shut_down(&mut daemon, &mut client).await;
    let home = home();
    let socket = daemon.socket.display();
    let terminal = Terminal::spawn(home.path(), &["-s".as_ref(), daemon.socket.as_os_str()]);
    terminal.wait_text(&format!(
        "cannot reach taskmasterd at {socket}: no such file or directory; is it running?"
    ));
    terminal.wait_prompt("");
    let _again = daemon.spawn_again();
    terminal.wait_text(&format!("connected to taskmasterd at {socket}"));
    terminal.wait_text("  sleeper  STARTING -> RUNNING");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_asks_first() {
    let mut daemon = Daemon::start(programs()).await;
    daemon.wait_running(&ALL).await;
    let home = home();
    let mut terminal = open(&daemon.socket, home.path());
    let question = format!(
        "Really shut down taskmasterd at {}? [y/N]",
        daemon.socket.display()
    );
    terminal.send("shutdown\r");
    terminal.wait_text(&question);
    terminal.send("n\r");
    terminal.wait_prompt("");
    assert!(daemon.try_exit().is_none());
    terminal.send("shutdown\r");
    terminal.wait_for("the question again", |view| view.count(&question) == 2);
    terminal.send("y\r");
    // Said once the daemon has exited.
    terminal.wait_text("taskmasterd stopped");
    assert!(daemon.try_exit().is_some());
    terminal.wait_text("lost connection to taskmasterd");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mistakes_are_explained_and_ctrl_c_clears_and_ctrl_d_leaves() {
    let daemon = Daemon::start(programs()).await;
    daemon.wait_running(&ALL).await;
    let home = home();
    let mut terminal = open(&daemon.socket, home.path());
    terminal.send("frobnicate\r");
    terminal.wait_text("unknown command `frobnicate`");
    terminal.wait_prompt("");
    terminal.send("stop\r");
    terminal.wait_text("usage: stop NAME...|all");
    terminal.wait_prompt("");
    terminal.send("events off\r");
    terminal.wait_text("events are off");
    terminal.send("stat");
    terminal.wait_prompt("stat");
    terminal.send(CTRL_C);
    terminal.wait_prompt("");
    terminal.send(CTRL_D);
    assert_eq!(terminal.wait_exit(), 0);
}
