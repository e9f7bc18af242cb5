//! One-shot commands (`taskctl CMD ...`): what each prints, its exit status (0 success, 1 the
//! command failed, 2 usage, 3 daemon unreachable), and how taskctl finds the daemon.

use std::{collections::BTreeSet, io::Read, process::Stdio};

use taskmaster::proto::State;

use crate::{
    harness::{ctl, run, taskctl},
    support::*,
};

/// Two programs, one with two instances, and one that is not started.
fn programs() -> Config {
    Config::new()
        .program(Program::sleeper("sleeper"))
        .program(Program::sleeper("web").numprocs(2))
        .program(Program::sleeper("idle").autostart(false))
}

/// The autostart instances of [`programs`].
const AUTOSTART: [&str; 2] = ["sleeper", "web"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_is_a_table_aligned_on_the_longest_name() {
    let daemon = Daemon::start(programs()).await;
    daemon.wait_running(&AUTOSTART).await;
    let mut client = daemon.client().await;
    let run = ctl(&daemon.socket, &["status"]);
    assert_eq!((run.code, run.stderr.as_str()), (0, ""));
    let lines: Vec<&str> = run.stdout.lines().collect();
    let pid = instance(&mut client, "web:1").await.pid;
    assert_eq!(lines.len(), 4, "{}", run.stdout);
    assert_eq!(lines[0], "idle     STOPPED   Not started");
    assert!(
        lines[1].starts_with("sleeper  RUNNING   pid "),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].starts_with("web:0    RUNNING   pid "),
        "{}",
        lines[2]
    );
    assert!(
        lines[3].starts_with(&format!("web:1    RUNNING   pid {pid}, uptime 0:00:")),
        "{}",
        lines[3]
    );
    // Piped: no colour.
    assert!(!run.stdout.contains('\x1b'));

    let run = ctl(&daemon.socket, &["status", "web"]);
    assert_eq!(run.code, 0);
    let names: Vec<&str> = run
        .stdout
        .lines()
        .map(|line| line.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(names, ["web:0", "web:1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_json_is_one_array_with_the_status_fields() {
    let daemon = Daemon::start(programs()).await;
    daemon.wait_running(&AUTOSTART).await;
    let mut client = daemon.client().await;
    let run = ctl(&daemon.socket, &["status", "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let value: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    let rows = value.as_array().expect("an array");
    assert_eq!(rows.len(), 4);
    let fields: BTreeSet<&str> = rows[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let expected: BTreeSet<&str> = [
        "name",
        "program",
        "state",
        "pid",
        "uptime_secs",
        "since",
        "exit_code",
        "signal",
        "restarts",
        "description",
        "spawn_error",
    ]
    .into();
    assert_eq!(fields, expected);
    let web1 = rows.iter().find(|row| row["name"] == "web:1").unwrap();
    assert_eq!(web1["program"], "web");
    assert_eq!(web1["state"], "RUNNING");
    assert_eq!(web1["pid"], instance(&mut client, "web:1").await.pid);
    assert_eq!(web1["restarts"], 0);
    let idle = rows.iter().find(|row| row["name"] == "idle").unwrap();
    assert_eq!(idle["state"], "STOPPED");
    assert_eq!(idle["pid"], serde_json::Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_name_fails_with_status_1() {
    let daemon = Daemon::start(programs()).await;
    for command in [
        &["status", "nope"][..],
        &["stop", "web", "nope"],
        &["pid", "nope"],
    ] {
        let run = ctl(&daemon.socket, command);
        assert_eq!(run.code, 1, "{command:?}");
        assert_eq!(run.stdout, "");
        assert_eq!(run.stderr, "no such program or instance: nope\n");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_stop_and_restart_print_one_line_per_instance() {
    let daemon = Daemon::start(programs()).await;
    daemon.wait_running(&AUTOSTART).await;
    let mut client = daemon.client().await;
    let socket = &daemon.socket;
    let run = ctl(socket, &["stop", "web"]);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "web:0: stopped\nweb:1: stopped\n")
    );
    assert_eq!(instance(&mut client, "web:0").await.state(), State::Stopped);
    let run = ctl(socket, &["stop", "web"]);
    assert_eq!(run.stdout, "web:0: not running\nweb:1: not running\n");
    let run = ctl(socket, &["start", "web:1"]);
    assert_eq!((run.code, run.stdout.as_str()), (0, "web:1: started\n"));
    let run = ctl(socket, &["start", "web"]);
    assert_eq!(run.stdout, "web:0: started\nweb:1: already running\n");
    let before = instance(&mut client, "sleeper").await.pid;
    let run = ctl(socket, &["restart", "sleeper", "web:0"]);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "sleeper: started\nweb:0: started\n")
    );
    let after = instance(&mut client, "sleeper").await;
    assert_eq!(after.state(), State::Running);
    assert_ne!(after.pid, before);
    let run = ctl(socket, &["stop", "all"]);
    assert_eq!(
        run.stdout,
        "idle: not running\nsleeper: stopped\nweb:0: stopped\nweb:1: stopped\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spawn_error_is_an_error_line_and_status_1() {
    let daemon = Daemon::start(
        Program::new("broken", "/nonexistent/program")
            .autostart(false)
            .startretries(0)
            .starttime(0.2),
    )
    .await;
    let run = ctl(&daemon.socket, &["start", "broken"]);
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stdout,
        "broken: ERROR (spawn error: executable /nonexistent/program: No such file or directory)\n"
    );
    let run = ctl(&daemon.socket, &["status"]);
    assert_eq!(
        run.stdout,
        "broken  FATAL     spawn error: executable /nonexistent/program: No such file or directory\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_prints_what_changed() {
    let daemon = Daemon::start(programs()).await;
    daemon.wait_running(&AUTOSTART).await;
    daemon.write_config(
        Config::new()
            .program(Program::sleeper("web").numprocs(3))
            .program(Program::sleeper("idle").autostart(false))
            .program(Program::sleeper("api")),
    );
    let run = ctl(&daemon.socket, &["reload"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout,
        "added: api\nchanged: web\nremoved: sleeper\nunchanged: idle\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_of_a_bad_config_prints_every_error() {
    let daemon = Daemon::start(programs()).await;
    // Literal: the errors are the point.
    daemon.write_config(Config::yaml(
        "
        web:
          cmd: sleep 1000
          numprocs: 0
          starttime: soon
        ",
    ));
    let run = ctl(&daemon.socket, &["reload"]);
    assert_eq!(run.code, 1);
    assert_eq!(run.stdout, "");
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines[0], "reload rejected; the config has errors:");
    assert_eq!(lines.len(), 3, "{}", run.stderr);
    let config = daemon.config_path.display().to_string();
    assert!(lines[1].starts_with(&config) && lines[1].contains("programs.web.numprocs"));
    assert!(lines[2].starts_with(&config) && lines[2].contains("programs.web.starttime"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pid_gives_the_daemon_or_the_instances() {
    let daemon = Daemon::start(programs()).await;
    daemon.wait_running(&AUTOSTART).await;
    let mut client = daemon.client().await;
    let run = ctl(&daemon.socket, &["pid"]);
    assert_eq!(
        (run.code, run.stdout.clone()),
        (0, format!("{}\n", daemon.pid()))
    );
    let run = ctl(&daemon.socket, &["pid", "web"]);
    let web0 = instance(&mut client, "web:0").await.pid;
    let web1 = instance(&mut client, "web:1").await.pid;
    assert_eq!((run.code, run.stdout), (0, format!("{web0}\n{web1}\n")));
    // Never a 0 that `kill $(taskctl pid idle)` would take for the process group.
    let run = ctl(&daemon.socket, &["pid", "idle"]);
    assert_eq!(
        (run.code, run.stdout.as_str(), run.stderr.as_str()),
        (1, "", "idle: not running\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_gives_both_versions() {
    let daemon = Daemon::start(Config::new()).await;
    let run = ctl(&daemon.socket, &["version"]);
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        (run.code, run.stdout),
        (0, format!("taskctl {version}\ntaskmasterd {version}\n"))
    );
}

#[test]
fn help_lists_every_command_without_a_daemon() {
    let nowhere = tempfile::tempdir().unwrap();
    let socket = nowhere.path().join("none.sock");
    let run = ctl(&socket, &["help"]);
    assert_eq!(run.code, 0);
    for command in [
        "status [--json] [NAME...]",
        "start NAME...|all",
        "stop NAME...|all",
        "restart NAME...|all",
        "reload",
        "shutdown [-y] [--no-wait]",
        "watch [--json] [--since [RUN:]N] [NAME...]",
        "pid [NAME]",
        "version",
        "events on|off",
        "help [COMMAND]",
        "exit",
        "quit",
    ] {
        assert!(run.stdout.contains(&format!("  {command}  ")), "{command}");
    }
    let run = ctl(&socket, &["help", "stop"]);
    assert_eq!(run.code, 0);
    assert!(run.stdout.starts_with("usage: stop NAME...|all\n"));
}

#[test]
fn usage_errors_print_usage_and_exit_2() {
    let nowhere = tempfile::tempdir().unwrap();
    let socket = nowhere.path().join("none.sock");
    let cases: &[(&[&str], &str)] = &[
        (&["frobnicate"], "unknown command `frobnicate`\ncommands:\n"),
        (
            &["stop"],
            "stop needs at least one name (or all)\nusage: stop NAME...|all\n",
        ),
        (
            &["status", "--jsno"],
            "unknown option `--jsno`\nusage: status",
        ),
        (
            &["watch", "--since", "x"],
            "--since needs a sequence number (N or RUN:N), not `x`\n",
        ),
        (
            &["reload", "now"],
            "unexpected argument `now`\nusage: reload\n",
        ),
        (&["events", "on"], "`events` works only in the shell\n"),
    ];
    for (args, start) in cases {
        let run = ctl(&socket, args);
        assert_eq!(run.code, 2, "{args:?}");
        assert!(run.stderr.starts_with(start), "{args:?}: {}", run.stderr);
        assert_eq!(run.stdout, "");
    }
    let mut command = taskctl();
    command.arg("--bogus");
    assert_eq!(run(command).code, 2);
}

#[test]
fn an_absent_daemon_is_one_line_and_status_3() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.sock");
    let run = ctl(&missing, &["status"]);
    assert_eq!(run.code, 3);
    assert_eq!(
        run.stderr,
        format!(
            "cannot reach taskmasterd at {}: no such file or directory; is it running?\n",
            missing.display()
        )
    );
    // A socket left by a daemon that died.
    let stale = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let run = ctl(&stale, &["stop", "all"]);
    assert_eq!(run.code, 3);
    assert_eq!(
        run.stderr,
        format!(
            "cannot reach taskmasterd at {}: connection refused; is it running?\n",
            stale.display()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_address_comes_from_the_environment_or_a_config_file() {
    let daemon = Daemon::start(programs()).await;
    let mut command = taskctl();
    command.env("TASKMASTER_SOCKET", &daemon.socket).arg("pid");
    let run = run(command);
    assert_eq!((run.code, run.stdout), (0, format!("{}\n", daemon.pid())));

    let mut command = taskctl();
    command.arg("-c").arg(&daemon.config_path).arg("pid");
    let run = crate::harness::run(command);
    assert_eq!((run.code, run.stdout), (0, format!("{}\n", daemon.pid())));

    // A config the daemon would reject still names the socket: reload can show the errors.
    daemon.write_config(Config::yaml("web:\n  numprocs: 2\n"));
    let mut command = taskctl();
    command.arg("-c").arg(&daemon.config_path).arg("reload");
    let run = crate::harness::run(command);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("missing required key `cmd`"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_with_host_or_its_environment_variable() {
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let daemon = Daemon::launch(Config::new()).listen(&address).start().await;
    let mut command = taskctl();
    command.args(["-H", &address, "pid"]);
    let run = run(command);
    assert_eq!((run.code, run.stdout), (0, format!("{}\n", daemon.pid())));

    let mut command = taskctl();
    command
        .env("TASKMASTER_HOST", format!("http://{address}"))
        .arg("version");
    let run = crate::harness::run(command);
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_output_pipe_is_success() {
    let daemon = Daemon::start(programs()).await;
    for args in [&["status"][..], &["watch"]] {
        let mut command = taskctl();
        command
            .arg("-s")
            .arg(&daemon.socket)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = Guard::spawn(&mut command);
        // Like `taskctl status | head -0`: the reader is gone before anything is written.
        drop(child.child().stdout.take());
        let status = child
            .wait_exit()
            .unwrap_or_else(|| panic!("{args:?} did not exit"));
        let mut stderr = String::new();
        child
            .child()
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        assert_eq!((status.code(), stderr.as_str()), (Some(0), ""), "{args:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_returns_once_the_daemon_has_exited_so_another_can_start() {
    let mut daemon = Daemon::start(
        Config::new().program(
            // Takes its time to stop: the wait must cover it.
            Program::new(
                "slow",
                r#"/bin/sh -c 'trap "sleep 0.3; exit 0" TERM; sleep 1000 & wait'"#,
            )
            .starttime(0.2)
            .stoptime(2.0),
        ),
    )
    .await;
    let pids = daemon.wait_running(&["slow"]).await;
    let run = tokio::task::spawn_blocking({
        let socket = daemon.socket.clone();
        move || ctl(&socket, &["shutdown"])
    })
    .await
    .unwrap();
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "taskmasterd stopped\n"),
        "{run:?}"
    );
    // Gone when taskctl returned, not later.
    assert!(
        daemon.try_exit().is_some(),
        "taskctl returned before the daemon exited"
    );
    assert!(!daemon.socket.exists() && !daemon.path("taskmaster.pid").exists());
    assert!(!alive(pids["slow"]));
    // `shutdown && taskmasterd` works: a new daemon takes the socket at once.
    let mut again = daemon.spawn_again();
    let target = daemon.target();
    expect("the new daemon to answer", || async {
        taskmaster::endpoint::connect(&target)
            .await
            .ok()
            .map(|_| ())
    })
    .await;
    assert!(again.try_exit().is_none(), "the new daemon could not start");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_no_wait_returns_at_once() {
    let mut daemon = Daemon::start(programs()).await;
    let run = ctl(&daemon.socket, &["shutdown", "--no-wait"]);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "taskmasterd is shutting down\n")
    );
    daemon.wait_exit().await;
}
