//! The Attach RPC with real processes: a program on a pseudo-terminal of its own (`tty: true`)
//! gets typed input, its window size and SIGWINCH, and a re-attach replays its recent screen;
//! several clients at once; how the process ended, also when the daemon stops it; programs
//! without a terminal, with and without `stdin: pipe`; refusals; a client that does not read
//! slows nobody; what a terminal costs in descriptors.

use std::time::{Duration, Instant};

use taskmaster::proto::{self, State, attach_request, attach_response};
use tokio::sync::mpsc;
use tokio_stream::{StreamExt, wrappers::ReceiverStream};
use tonic::Code;

use crate::support::*;

/// A shell that says it is ready, then `winch ROWS COLUMNS` each time its window changes.
const WINDOWED: &str = r#"sh -c 'trap "echo winch \$(stty size)" WINCH; echo ready; while :; do sleep 1 & wait $!; done'"#;

/// A shell that says it is ready, then answers each line: `size` with its window size (from
/// `stty size`), `tty` with its terminal's name, `exit N` by exiting, anything else with
/// `got:LINE` on stdout and `err:LINE` on stderr. On a terminal, a line is typed keys ending
/// in `\r`, as a terminal sends them.
const ANSWERING: &str = r#"sh -c 'echo ready; while read line; do case "$line" in exit*) exit ${line#exit };; size) stty size 2>&1;; tty) tty;; *) echo "got:$line"; echo "err:$line" >&2;; esac; done'"#;

fn terminal_program(name: &str) -> Program {
    Program::new(name, ANSWERING)
        .set("tty", true)
        .starttime(0.2)
        .stoptime(1.0)
}

/// One attached client: what it sends, what it was answered.
struct Session {
    requests: mpsc::Sender<proto::AttachRequest>,
    answers: tonic::Streaming<proto::AttachResponse>,
    ready: proto::AttachReady,
    /// The output so far, by stream.
    stdout: String,
    stderr: String,
    /// Bytes this client was told it missed.
    missed: u64,
    /// The last answer, once it came.
    ended: Option<proto::AttachEnded>,
}

fn open(name: &str, read_only: bool, size: Option<(u32, u32)>) -> proto::AttachRequest {
    proto::AttachRequest {
        message: Some(attach_request::Message::Open(proto::AttachOpen {
            name: name.to_string(),
            read_only,
            size: size.map(|(rows, columns)| proto::WindowSize { rows, columns }),
        })),
    }
}

/// Attaches to `name` with the first request `first`; the refusal if there is one.
async fn try_attach(
    client: &mut Client,
    first: proto::AttachRequest,
) -> Result<Session, tonic::Status> {
    let (requests, receiver) = mpsc::channel(16);
    requests.send(first).await.unwrap();
    let mut answers = client
        .attach(ReceiverStream::new(receiver))
        .await?
        .into_inner();
    let first = tokio::time::timeout(DEADLINE, answers.next())
        .await
        .expect("a first answer in time")
        .expect("a first answer")?;
    let Some(attach_response::Message::Ready(ready)) = first.message else {
        panic!("the first answer is not `ready`: {first:?}");
    };
    Ok(Session {
        requests,
        answers,
        ready,
        stdout: String::new(),
        stderr: String::new(),
        missed: 0,
        ended: None,
    })
}

async fn attach(client: &mut Client, name: &str) -> Session {
    try_attach(client, open(name, false, None))
        .await
        .unwrap_or_else(|status| panic!("attach {name}: {status:?}"))
}

impl Session {
    async fn send(&self, message: attach_request::Message) {
        let request = proto::AttachRequest {
            message: Some(message),
        };
        self.requests
            .send(request)
            .await
            .expect("the session is open");
    }

    /// Types `keys`.
    async fn type_keys(&self, keys: &str) {
        self.send(attach_request::Message::Input(keys.as_bytes().to_vec()))
            .await;
    }

    async fn resize(&self, rows: u32, columns: u32) {
        self.send(attach_request::Message::Resize(proto::WindowSize {
            rows,
            columns,
        }))
        .await;
    }

    /// Takes the next answer; `false` once the stream is over.
    async fn next(&mut self) -> bool {
        let answer = tokio::time::timeout(DEADLINE, self.answers.next())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no answer in time; stdout so far {:?}, stderr {:?}",
                    self.stdout, self.stderr
                )
            });
        let Some(answer) = answer else {
            return false;
        };
        let answer = answer.expect("an answer, not an error");
        match answer.message {
            Some(attach_response::Message::Output(output)) => {
                self.missed += output.missed_bytes;
                let text = String::from_utf8_lossy(&output.data);
                match output.stream() {
                    proto::Stream::Stdout => self.stdout.push_str(&text),
                    proto::Stream::Stderr => self.stderr.push_str(&text),
                }
            }
            Some(attach_response::Message::Ended(ended)) => self.ended = Some(ended),
            other => panic!("unexpected answer {other:?}"),
        }
        true
    }

    /// Reads until stdout holds `wanted`.
    async fn until(&mut self, wanted: &str) -> &str {
        while !self.stdout.contains(wanted) {
            assert!(
                self.next().await && self.ended.is_none(),
                "ended before {wanted:?}: {:?}; stdout {:?}",
                self.ended,
                self.stdout
            );
        }
        &self.stdout
    }

    /// Reads to the end of the stream; how the process ended.
    async fn end(&mut self) -> proto::AttachEnded {
        while self.next().await {}
        self.ended
            .clone()
            .unwrap_or_else(|| panic!("the stream ended without `ended`: {:?}", self.stdout))
    }
}

/// Fields of `/proc/PID/stat` after the command: (state, ppid, pgrp, session, tty_nr, tpgid).
fn stat(pid: u32) -> Vec<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let (_, fields) = stat.rsplit_once(") ").unwrap();
    fields
        .split(' ')
        .skip(1)
        .take(5)
        .map(|field| field.parse().unwrap())
        .collect()
}

/// Where each of `pid`'s descriptors points.
fn descriptors(pid: u32) -> Vec<String> {
    let mut links: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|entries| {
            entries
                .filter_map(|entry| {
                    let link = std::fs::read_link(entry.ok()?.path()).ok()?;
                    Some(link.display().to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    links.sort();
    links
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_on_its_own_terminal_gets_typed_input_and_answers() {
    let daemon = Daemon::start(terminal_program("term")).await;
    let pid = daemon.wait_running(&["term"]).await["term"];
    let mut client = daemon.client().await;
    let mut session = attach(&mut client, "term").await;
    assert!(
        session.ready.tty && session.ready.input,
        "{:?}",
        session.ready
    );
    assert_eq!(
        (session.ready.instance.as_str(), session.ready.pid),
        ("term", pid)
    );
    // The replay shows where it is.
    session.until("ready").await;
    session.type_keys("hello\r").await;
    // The terminal echoes what is typed, as terminals do, then the program answers.
    let text = session.until("got:hello").await.to_string();
    assert!(text.contains("hello\r\n"), "{text:?}");
    session.type_keys("tty\r").await;
    let text = session.until("/dev/pts/").await.to_string();
    let terminal = text
        .lines()
        .find(|line| line.starts_with("/dev/pts/"))
        .unwrap()
        .trim()
        .to_string();
    // Its stdin, stdout and stderr are that terminal, and nothing else is open.
    assert_eq!(descriptors(pid), vec![terminal.clone(); 3]);
    // It leads a session of its own (its group too) with the terminal as its controlling
    // one, in the foreground.
    let fields = stat(pid);
    let (pgrp, session_id, tty, foreground) = (fields[1], fields[2], fields[3], fields[4]);
    assert_eq!(
        (pgrp, session_id, foreground),
        (pid as i64, pid as i64, pid as i64)
    );
    assert_ne!(tty, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_window_size_is_set_at_attach_and_on_each_resize_with_sigwinch() {
    let daemon = Daemon::start(
        Program::new("term", WINDOWED)
            .set("tty", true)
            .starttime(0.2)
            .stoptime(1.0),
    )
    .await;
    daemon.wait_running(&["term"]).await;
    let mut client = daemon.client().await;
    // A read-only client's window does not count.
    let mut watcher = try_attach(&mut client, open("term", true, Some((5, 5))))
        .await
        .unwrap();
    assert!(!watcher.ready.input);
    watcher.until("ready").await;
    let mut session = try_attach(&mut client, open("term", false, Some((31, 97))))
        .await
        .unwrap();
    // The size given at attach changed the window: the program was told.
    session.until("winch 31 97").await;
    session.resize(12, 45).await;
    session.until("winch 12 45").await;
    watcher.resize(6, 6).await;
    session.resize(40, 120).await;
    session.until("winch 40 120").await;
    watcher.until("winch 40 120").await;
    assert!(!session.stdout.contains("winch 5 5") && !session.stdout.contains("winch 6 6"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stty_size_reports_the_clients_window() {
    let daemon = Daemon::start(terminal_program("term")).await;
    daemon.wait_running(&["term"]).await;
    let mut client = daemon.client().await;
    let mut session = attach(&mut client, "term").await;
    session.until("ready").await;
    // Until a client says otherwise, 80x24.
    session.type_keys("size\r").await;
    session.until("24 80").await;
    session.resize(33, 101).await;
    session.type_keys("size\r").await;
    session.until("33 101").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reattach_replays_the_recent_screen_and_a_restart_brings_a_new_terminal() {
    let daemon = Daemon::start(terminal_program("term")).await;
    let pid = daemon.wait_running(&["term"]).await["term"];
    let mut client = daemon.client().await;
    let mut first = attach(&mut client, "term").await;
    first.until("ready").await;
    first.type_keys("one\r").await;
    first.until("got:one").await;
    drop(first);
    // Detached: the program goes on, and a new client sees what it showed.
    let mut second = attach(&mut client, "term").await;
    assert_eq!(second.ready.pid, pid);
    second.next().await;
    assert!(
        second.stdout.contains("ready") && second.stdout.contains("got:one"),
        "the replay: {:?}",
        second.stdout
    );
    second.type_keys("two\r").await;
    second.until("got:two").await;
    drop(second);
    assert_eq!(instance(&mut client, "term").await.state(), State::Running);
    // A restart: a new process on a new terminal, whose screen starts empty.
    client
        .restart(proto::RestartRequest {
            names: vec!["term".into()],
            no_wait: false,
        })
        .await
        .unwrap();
    let mut third = attach(&mut client, "term").await;
    assert_ne!(third.ready.pid, pid);
    third.until("ready").await;
    assert!(!third.stdout.contains("got:"), "{:?}", third.stdout);
    third.type_keys("three\r").await;
    third.until("got:three").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_see_all_output_and_each_ones_input_reaches_the_program() {
    let daemon = Daemon::start(terminal_program("term")).await;
    daemon.wait_running(&["term"]).await;
    let mut client = daemon.client().await;
    let mut alice = attach(&mut client, "term").await;
    let mut bob = attach(&mut client, "term").await;
    alice.until("ready").await;
    bob.until("ready").await;
    alice.type_keys("from-alice\r").await;
    alice.until("got:from-alice").await;
    bob.until("got:from-alice").await;
    bob.type_keys("from-bob\r").await;
    alice.until("got:from-bob").await;
    bob.until("got:from-bob").await;
    // A read-only client sees it all, and what it sends goes nowhere.
    let mut carol = try_attach(&mut client, open("term", true, None))
        .await
        .unwrap();
    carol.until("got:from-bob").await;
    carol.type_keys("from-carol\r").await;
    alice.type_keys("again\r").await;
    carol.until("got:again").await;
    assert!(!alice.stdout.contains("from-carol"), "{:?}", alice.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exit_while_attached_is_told_after_the_last_output() {
    let daemon = Daemon::start(terminal_program("term").autorestart("never")).await;
    daemon.wait_running(&["term"]).await;
    let mut client = daemon.client().await;
    let mut session = attach(&mut client, "term").await;
    session.until("ready").await;
    session.type_keys("last words\r").await;
    session.until("got:last words").await;
    session.type_keys("exit 3\r").await;
    let ended = session.end().await;
    assert_eq!(ended.exit_code, Some(3), "{ended:?}");
    assert_eq!(ended.description, "exit status 3");
    assert!(!ended.daemon_stopping);
    // A process killed by a signal.
    client
        .start(proto::StartRequest {
            names: vec!["term".into()],
            no_wait: false,
        })
        .await
        .unwrap();
    let pid = wait_state(&mut client, "term", State::Running).await.pid;
    let mut session = attach(&mut client, "term").await;
    session.until("ready").await;
    send(pid, nix::sys::signal::Signal::SIGKILL);
    let ended = session.end().await;
    assert_eq!(
        (ended.exit_code, ended.signal),
        (None, Some(9)),
        "{ended:?}"
    );
    assert_eq!(ended.description, "killed by SIGKILL");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_ends_every_attached_client_and_waits_for_none() {
    let daemon = Daemon::start(terminal_program("term")).await;
    let mut daemon = daemon;
    daemon.wait_running(&["term"]).await;
    let mut client = daemon.client().await;
    let mut session = attach(&mut client, "term").await;
    session.until("ready").await;
    let mut other = attach(&mut client, "term").await;
    let started = Instant::now();
    client.shutdown(proto::ShutdownRequest {}).await.unwrap();
    let ended = session.end().await;
    assert!(ended.daemon_stopping, "{ended:?}");
    // The shell on a terminal ends on SIGTERM (its stop signal) or the hangup.
    assert!(ended.signal.is_some(), "{ended:?}");
    assert!(other.end().await.daemon_stopping);
    daemon.wait_exit().await;
    // The open streams did not hold the daemon's end (it gives clients a second at most).
    assert!(
        started.elapsed() < Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_terminal_output_is_live_and_lines_go_to_stdin_only_with_a_pipe() {
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
                    "sh -c 'n=0; while :; do n=$((n+1)); echo tick $n; echo tock $n >&2; sleep 0.05; done'",
                )
                .starttime(0.2)
                .stoptime(1.0),
            ),
    )
    .await;
    daemon.wait_running(&["piped", "ticker"]).await;
    let mut client = daemon.client().await;
    let mut piped = attach(&mut client, "piped").await;
    assert!(!piped.ready.tty && piped.ready.input, "{:?}", piped.ready);
    piped.type_keys("hi there\n").await;
    // Both streams, each as itself; no terminal echoes the line.
    piped.until("got:hi there").await;
    while !piped.stderr.contains("err:hi there") {
        assert!(piped.next().await);
    }
    assert!(
        !piped.stdout.contains("ready"),
        "no replay without a terminal"
    );
    piped.type_keys("size\n").await;
    piped.until("stty: ").await;
    // A program without a stdin pipe shows its output and takes nothing.
    let mut ticker = attach(&mut client, "ticker").await;
    assert!(
        !ticker.ready.tty && !ticker.ready.input,
        "{:?}",
        ticker.ready
    );
    ticker.type_keys("ignored\n").await;
    ticker.until("tick").await;
    while !ticker.stderr.contains("tock") {
        assert!(ticker.next().await);
    }
    // Its stdin is /dev/null still; the piped one's is a pipe, and nothing else is open.
    let pids = daemon.wait_running(&["piped", "ticker"]).await;
    let fds = descriptors(pids["ticker"]);
    assert_eq!(fds[0], "/dev/null", "{fds:?}");
    let fds = descriptors(pids["piped"]);
    assert_eq!(fds.len(), 3, "{fds:?}");
    assert!(fds.iter().all(|fd| fd.starts_with("pipe:")), "{fds:?}");
    piped.type_keys("exit 4\n").await;
    assert_eq!(piped.end().await.exit_code, Some(4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_is_refused_for_what_has_no_process_or_is_not_one_instance() {
    let daemon = Daemon::start(
        Config::new()
            .program(Program::sleeper("idle").autostart(false))
            .program(Program::sleeper("web").numprocs(2))
            .program(terminal_program("term")),
    )
    .await;
    daemon.wait_running(&["web:0", "web:1", "term"]).await;
    let mut client = daemon.client().await;
    let refused = |result: Result<Session, tonic::Status>| match result {
        Ok(session) => panic!("attached: {:?}", session.ready),
        Err(status) => status,
    };
    let status = refused(try_attach(&mut client, open("idle", false, None)).await);
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(
        status.message().contains("idle is not running (STOPPED)"),
        "{status:?}"
    );
    let status = refused(try_attach(&mut client, open("nothing", false, None)).await);
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let status = refused(try_attach(&mut client, open("web", false, None)).await);
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let input = proto::AttachRequest {
        message: Some(attach_request::Message::Input(b"x".to_vec())),
    };
    let status = refused(try_attach(&mut client, input).await);
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    // One instance of several is fine.
    let session = attach(&mut client, "web:1").await;
    assert!(!session.ready.input);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_read_slows_nobody_and_is_told_what_it_missed() {
    let log = "{dir}/term.log";
    let daemon = Daemon::start(
        Program::new(
            "term",
            "sh -c 'echo ready; read go; yes x | head -c 10000000; echo done; sleep 1000'",
        )
        .set("tty", true)
        .set("stdout", format!("{{path: {log:?}, maxbytes: 0}}"))
        .starttime(0.2)
        .stoptime(1.0),
    )
    .await;
    daemon.wait_running(&["term"]).await;
    let mut client = daemon.client().await;
    let mut session = attach(&mut client, "term").await;
    session.until("ready").await;
    session.type_keys("go\r").await;
    // It is not read meanwhile: the program writes all of it all the same (10 MB of `x\n`,
    // which the terminal makes `x\r\n`).
    let path = daemon.path("term.log");
    expect("the program to write 15 MB and done", || async {
        let length = std::fs::metadata(&path).ok()?.len();
        (length > 15_000_000 && read(&path).ends_with("done\r\n")).then_some(())
    })
    .await;
    let mut client = daemon.client().await;
    let status = instance(&mut client, "term").await;
    assert_eq!(status.state(), State::Running);
    session.until("done").await;
    assert!(
        session.missed > 0,
        "a client that did not read missed nothing?"
    );
    // What it got and what it missed add up to what was written after its attach.
    let got = session.stdout.len() as u64;
    assert!(
        got + session.missed > 15_000_000,
        "{got} + {}",
        session.missed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_costs_the_daemon_one_descriptor_and_restarts_leave_none_behind() {
    let daemon = Daemon::start(terminal_program("term")).await;
    let pid = daemon.wait_running(&["term"]).await["term"];
    let terminals = || {
        (descriptors(daemon.pid()).iter())
            .filter(|fd| *fd == "/dev/ptmx")
            .count()
    };
    let pipes = || {
        (descriptors(daemon.pid()).iter())
            .filter(|fd| fd.starts_with("pipe:"))
            .count()
    };
    assert_eq!(terminals(), 1);
    let pipes_before = pipes();
    let mut client = daemon.client().await;
    let mut old = pid;
    for _ in 0..10 {
        let mut session = attach(&mut client, "term").await;
        session.until("ready").await;
        client
            .restart(proto::RestartRequest {
                names: vec!["term".into()],
                no_wait: false,
            })
            .await
            .unwrap();
        assert!(session.end().await.signal.is_some());
        old = wait_new_pid(&mut client, "term", old).await.pid;
    }
    let settled = wait_until("the old terminals to be closed", || async {
        (terminals() == 1).then_some(())
    })
    .await;
    assert!(settled.is_some(), "{:?}", descriptors(daemon.pid()));
    assert_eq!(pipes(), pipes_before);
}
