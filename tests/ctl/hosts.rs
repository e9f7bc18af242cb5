//! One taskctl, many daemons: `-H a -H b`, `TASKMASTER_HOSTS` and names from the hosts file.
//! Each test runs two real daemons; "stopped" is one that was shut down (its socket is gone).

use std::{collections::BTreeSet, path::Path};

use nix::sys::signal::Signal;
use taskmaster::proto::{ShutdownRequest, State};

use crate::{
    harness::{Run, follow_command, run, taskctl},
    support::*,
};

/// A config home whose `taskmaster/hosts.yaml` names each socket.
fn config_home(hosts: &[(&str, &Path)]) -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for (name, socket) in hosts {
        text.push_str(&format!("{name}:\n  address: unix:{}\n", socket.display()));
    }
    write_hosts_file(home.path(), &text);
    home
}

fn write_hosts_file(home: &Path, text: &str) -> std::path::PathBuf {
    let dir = home.join("taskmaster");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("hosts.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `taskctl` reading its hosts file in `home`.
fn ctl_in(home: &Path, args: &[&str]) -> Run {
    let mut command = taskctl();
    command.env("XDG_CONFIG_HOME", home).args(args);
    run(command)
}

/// `unix:SOCKET`, as `-H` and `TASKMASTER_HOSTS` take it.
fn unix(daemon: &Daemon) -> String {
    format!("unix:{}", daemon.socket.display())
}

/// Shuts `daemon` down and waits until it is gone (and its socket with it).
async fn stop_daemon(daemon: &mut Daemon) {
    let mut client = daemon.client().await;
    client.shutdown(ShutdownRequest {}).await.unwrap();
    daemon.wait_exit().await;
    assert!(!daemon.socket.exists());
}

/// What taskctl says of a daemon that was stopped.
fn unreachable(name: &str, daemon: &Daemon) -> String {
    format!(
        "{name}: cannot reach taskmasterd at {}: no such file or directory; is it running?",
        daemon.socket.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_of_two_hosts_is_one_table_with_a_host_column() {
    let alpha = Daemon::start(
        Config::new()
            .program(Program::sleeper("sleeper"))
            .program(Program::sleeper("web").numprocs(2)),
    )
    .await;
    let b = Daemon::start(Program::sleeper("sleeper")).await;
    let alpha_pids = alpha.wait_running(&["sleeper", "web"]).await;
    let b_pids = b.wait_running(&["sleeper"]).await;
    let home = config_home(&[("alpha", &alpha.socket), ("b", &b.socket)]);

    let run = ctl_in(home.path(), &["-H", "alpha", "-H", "b", "status"]);
    assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{}", run.stdout);
    let lines: Vec<&str> = run.stdout.lines().collect();
    let expected = [
        ("alpha  sleeper  RUNNING   pid ", alpha_pids["sleeper"]),
        ("alpha  web:0    RUNNING   pid ", alpha_pids["web:0"]),
        ("alpha  web:1    RUNNING   pid ", alpha_pids["web:1"]),
        ("b      sleeper  RUNNING   pid ", b_pids["sleeper"]),
    ];
    assert_eq!(lines.len(), expected.len(), "{}", run.stdout);
    for (line, (start, pid)) in lines.iter().zip(expected) {
        assert!(
            line.starts_with(&format!("{start}{pid}, uptime ")),
            "{line:?} should start with {start:?}{pid}"
        );
    }

    // --json: one array, each object with its host.
    let run = ctl_in(home.path(), &["-H", "alpha,b", "status", "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let rows: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    let rows: BTreeSet<(String, String, u64)> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["host"].as_str().unwrap().to_string(),
                row["name"].as_str().unwrap().to_string(),
                row["pid"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected: BTreeSet<(String, String, u64)> = [
        ("alpha", "sleeper", alpha_pids["sleeper"]),
        ("alpha", "web:0", alpha_pids["web:0"]),
        ("alpha", "web:1", alpha_pids["web:1"]),
        ("b", "sleeper", b_pids["sleeper"]),
    ]
    .into_iter()
    .map(|(host, name, pid)| (host.to_string(), name.to_string(), u64::from(pid)))
    .collect();
    assert_eq!(rows, expected);

    // One host, named in the hosts file: the output of one daemon, as ever.
    let run = ctl_in(home.path(), &["-H", "b", "status"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.starts_with(&format!(
            "sleeper  RUNNING   pid {}, uptime ",
            b_pids["sleeper"]
        )),
        "{}",
        run.stdout
    );
    assert_eq!(run.stdout.lines().count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_acts_on_each_host_and_reports_the_one_that_is_stopped() {
    let a = Daemon::start(Program::sleeper("sleeper")).await;
    let mut b = Daemon::start(Program::sleeper("sleeper")).await;
    a.wait_running(&["sleeper"]).await;
    stop_daemon(&mut b).await;
    let hosts = format!("{},{}", unix(&a), unix(&b));

    let mut command = taskctl();
    command
        .env("TASKMASTER_HOSTS", &hosts)
        .args(["stop", "all"]);
    let run = run(command);
    assert_eq!(run.code, 3, "{run:?}");
    let tag = format!("{:<width$}  ", unix(&a), width = unix(&b).len());
    assert_eq!(run.stdout, format!("{tag}sleeper: stopped\n"));
    assert_eq!(run.stderr, format!("{}\n", unreachable(&unix(&b), &b)));
    let mut client = a.client().await;
    assert_eq!(
        instance(&mut client, "sleeper").await.state(),
        State::Stopped
    );

    // Status too: the table of the host that answered, the other one reported.
    let mut command = taskctl();
    command.env("TASKMASTER_HOSTS", &hosts).arg("status");
    let run = crate::harness::run(command);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        run.stdout
            .starts_with(&format!("{tag}sleeper  STOPPED   Stopped at ")),
        "{run:?}"
    );
    assert_eq!(run.stdout.lines().count(), 1);
    assert_eq!(run.stderr, format!("{}\n", unreachable(&unix(&b), &b)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_merges_the_events_of_every_host_each_line_tagged() {
    let a = Daemon::start(Program::sleeper("sleeper")).await;
    let mut b = Daemon::start(Program::sleeper("sleeper")).await;
    let a_pid = a.wait_running(&["sleeper"]).await["sleeper"];
    let b_pid = b.wait_running(&["sleeper"]).await["sleeper"];
    let home = config_home(&[("a", &a.socket), ("b", &b.socket)]);
    let mut command = taskctl();
    command
        .env("XDG_CONFIG_HOME", home.path())
        .args(["-H", "a", "-H", "b", "watch", "--since", "0"]);
    let watch = follow_command(command);
    // Each host's first event, in whatever order they come.
    let mut started = BTreeSet::new();
    while started.len() < 2 {
        let line = watch.line("a daemon started", |line| {
            line.contains("  taskmasterd  daemon started")
        });
        started.insert(line[..3].to_string());
    }
    assert_eq!(
        started,
        BTreeSet::from(["a  ".to_string(), "b  ".to_string()])
    );

    send(b_pid, Signal::SIGKILL);
    let exited = watch.line("b's sleeper exited", |line| {
        line.contains("  sleeper  RUNNING -> EXITED")
    });
    assert!(exited.starts_with("b  "), "{exited}");
    assert!(
        exited.contains(&format!("pid {b_pid}  killed by SIGKILL")),
        "{exited}"
    );

    // One daemon goes away; the other is still followed.
    stop_daemon(&mut b).await;
    watch.line("b stopping", |line| {
        line.starts_with("b  ") && line.contains("  taskmasterd  daemon stopping")
    });
    send(a_pid, Signal::SIGKILL);
    let exited = watch.line("a's sleeper exited", |line| {
        line.contains("  sleeper  RUNNING -> EXITED")
    });
    assert!(exited.starts_with("a  "), "{exited}");
    assert!(
        exited.contains(&format!("pid {a_pid}  killed by SIGKILL")),
        "{exited}"
    );
    // b ended as a daemon that stops ends a watch: no failure.
    assert_eq!(watch.interrupt(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_json_names_the_host_and_a_stopped_host_fails_the_watch() {
    let a = Daemon::start(Program::sleeper("sleeper")).await;
    let mut b = Daemon::start(Program::sleeper("sleeper")).await;
    a.wait_running(&["sleeper"]).await;
    b.wait_running(&["sleeper"]).await;
    let parse = |line: &str| serde_json::from_str::<serde_json::Value>(line).expect("JSON line");
    let hosts = format!("{},{}", unix(&a), unix(&b));
    let mut command = taskctl();
    command
        .env("TASKMASTER_HOSTS", &hosts)
        .args(["watch", "--json", "--since", "0"]);
    let watch = follow_command(command);
    let mut first = BTreeSet::new();
    while first.len() < 2 {
        let event = parse(&watch.line("a first event", |line| line.contains(r#""seq":1,"#)));
        assert_eq!(event["kind"], "DAEMON_STARTED");
        first.insert(event["host"].as_str().unwrap().to_string());
    }
    assert_eq!(first, BTreeSet::from([unix(&a), unix(&b)]));
    assert_eq!(watch.interrupt(), Some(0));

    stop_daemon(&mut b).await;
    let mut command = taskctl();
    command
        .env("TASKMASTER_HOSTS", &hosts)
        .args(["watch", "--since", "0"]);
    let watch = follow_command(command);
    let refused = watch.error_line("b unreachable", |_| true);
    assert_eq!(refused, unreachable(&unix(&b), &b));
    watch.line("a's events still", |line| {
        line.starts_with(&unix(&a)) && line.contains("  taskmasterd  daemon started")
    });
    assert_eq!(watch.interrupt(), Some(3));
}

#[test]
fn a_bad_hosts_file_is_an_error_at_its_line_and_key() {
    let home = tempfile::tempdir().unwrap();
    let path = write_hosts_file(
        home.path(),
        "prod:\n  address: https://prod.example.com:7300\nlab:\n  address: nowhere\n  \
         token: x\n",
    );
    let run = ctl_in(home.path(), &["-H", "prod", "status"]);
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr,
        format!(
            "taskctl: the hosts file has errors:\n{}:5:3: lab: unknown field `token`, expected \
             one of `address`, `token_file`, `ca`, `cert`, `key`\n",
            path.display()
        )
    );
    write_hosts_file(
        home.path(),
        "lab:\n  address: nowhere\nlocal:\n  address: 'h:1'\n  ca: ca.pem\n",
    );
    let run = ctl_in(home.path(), &["-H", "lab", "status"]);
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr,
        format!(
            "taskctl: the hosts file has errors:\n\
             {path}:2:12: lab.address: expected a URL (http:// or https://), HOST:PORT or \
             unix:PATH, found `nowhere`\n\
             {path}:5:3: local.ca: is for https:// addresses only\n",
            path = path.display()
        )
    );
    // A name the file does not have.
    write_hosts_file(home.path(), "lab:\n  address: 127.0.0.1:7300\n");
    let run = ctl_in(home.path(), &["-H", "prod", "status"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.starts_with(&format!(
            "taskctl: unknown host `prod`: not in {}",
            path.display()
        )),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_and_the_shell_want_one_host() {
    let a = Daemon::start(Program::sleeper("sleeper")).await;
    let b = Daemon::start(Program::sleeper("sleeper")).await;
    let (a, b) = (unix(&a), unix(&b));
    for args in [&["tail", "sleeper"][..], &["maintail"]] {
        let mut command = taskctl();
        command.args(["-H", &a, "-H", &b]).args(args);
        let run = run(command);
        assert_eq!((run.code, run.stdout.as_str()), (2, ""), "{args:?}");
        assert_eq!(
            run.stderr,
            format!(
                "`{}` prints one daemon's output as it is: give one host (-H) for it, not \
                 {a}, {b}\n",
                args[0]
            )
        );
    }
    let mut command = taskctl();
    command.args(["-H", &a, "-H", &b]);
    let run = run(command);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .starts_with("taskctl: the shell talks to one daemon"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_and_reload_act_on_each_host_and_report_per_host() {
    let a = Daemon::start(Program::sleeper("sleeper")).await;
    let b = Daemon::start(Program::sleeper("sleeper")).await;
    let a_pid = a.wait_running(&["sleeper"]).await["sleeper"];
    let b_pid = b.wait_running(&["sleeper"]).await["sleeper"];
    let home = config_home(&[("a", &a.socket), ("b", &b.socket)]);

    let run = ctl_in(home.path(), &["-H", "a,b", "restart", "sleeper"]);
    assert_eq!(
        (run.code, run.stdout.as_str(), run.stderr.as_str()),
        (0, "a  sleeper: started\nb  sleeper: started\n", "")
    );
    let mut restarted = Vec::new();
    for (daemon, before) in [(&a, a_pid), (&b, b_pid)] {
        let mut client = daemon.client().await;
        let after = instance(&mut client, "sleeper").await;
        assert_eq!(after.state(), State::Running);
        assert_ne!(after.pid, before, "a host was not restarted");
        restarted.push(after.pid);
    }

    // a's new config adds a program; b's has errors: each host says its own, b's refusal
    // stops neither a's reload nor the report of it.
    a.write_config(
        Config::new()
            .program(Program::sleeper("sleeper"))
            .program(Program::sleeper("api")),
    );
    b.write_config(Config::yaml(
        "
        web:
          cmd: sleep 1000
          numprocs: 0
        ",
    ));
    let run = ctl_in(home.path(), &["-H", "a,b", "reload"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(
        run.stdout,
        "a  added: api\na  changed: none\na  removed: none\na  unchanged: sleeper\n"
    );
    let errors: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(errors.len(), 2, "{}", run.stderr);
    assert_eq!(errors[0], "b: reload rejected; the config has errors:");
    assert!(
        errors[1].starts_with(&format!("b: {}:", b.config_path.display()))
            && errors[1].contains("programs.web.numprocs"),
        "{}",
        errors[1]
    );
    a.wait_running(&["api"]).await;
    // b kept its config and its process.
    let mut client = b.client().await;
    let kept = status(&mut client).await;
    assert_eq!(kept.len(), 1);
    assert_eq!(
        (kept[0].name.as_str(), kept[0].pid),
        ("sleeper", restarted[1])
    );
}
