//! Program output: captured by default into a file per instance and stream, placeholders,
//! rotation that loses and splits nothing, reopen after an outside move, sinks that fail or
//! stall without blocking anyone, Tail and MainTail, clear, and stderr carried by failures.

use std::{
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::Path,
    time::{Duration, Instant},
};

use taskmaster::proto::{self, EventKind, State};
use tokio_stream::StreamExt;

use crate::support::*;

/// The files of `dir` whose names start with `prefix`, sorted.
fn files(dir: &Path, prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
                .filter(|name| name.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Waits until `path` holds `wanted` (or more, ending with it).
async fn wait_content(path: &Path, wanted: &str) {
    expect(
        &format!("{} to hold {wanted:?}", path.display()),
        || async {
            std::fs::read_to_string(path)
                .ok()
                .filter(|text| text.contains(wanted))
                .map(|_| ())
        },
    )
    .await;
}

async fn tail(
    client: &mut Client,
    name: &str,
    stream: proto::Stream,
    lines: u32,
    follow: bool,
) -> tonic::Streaming<proto::OutputChunk> {
    client
        .tail(proto::TailRequest {
            name: name.to_string(),
            stream: stream.into(),
            lines,
            bytes: None,
            follow,
        })
        .await
        .expect("Tail answers")
        .into_inner()
}

/// The next chunk of a tail, within the deadline.
async fn next_chunk(stream: &mut tonic::Streaming<proto::OutputChunk>) -> proto::OutputChunk {
    tokio::time::timeout(DEADLINE, stream.next())
        .await
        .expect("a chunk within the deadline")
        .expect("the stream goes on")
        .expect("a chunk, not an error")
}

/// Reads a followed tail until its text holds `wanted`; what it read.
async fn read_until(stream: &mut tonic::Streaming<proto::OutputChunk>, wanted: &str) -> String {
    let mut text = String::new();
    while !text.contains(wanted) {
        let chunk = next_chunk(stream).await;
        text.push_str(&String::from_utf8_lossy(&chunk.data));
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_is_captured_by_default_per_instance_and_stream_and_kept_across_restarts() {
    let daemon = Daemon::start(
        Program::new("talker", "sh -c 'echo out-$$; echo err-$$ >&2; sleep 1000'")
            .numprocs(2)
            .starttime(0.2),
    )
    .await;
    let pids = daemon.wait_running(&["talker:0", "talker:1"]).await;
    let logs = daemon.path("logs");
    for (name, pid) in &pids {
        wait_content(
            &logs.join(format!("{name}.out.log")),
            &format!("out-{pid}\n"),
        )
        .await;
        wait_content(
            &logs.join(format!("{name}.err.log")),
            &format!("err-{pid}\n"),
        )
        .await;
    }
    let out = read(&logs.join("talker:0.out.log"));
    assert!(!out.contains("err-"), "stderr went to stdout: {out}");
    let mode = std::fs::metadata(logs.join("talker:0.out.log"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o640);
    let mut client = daemon.client().await;
    client
        .restart(proto::RestartRequest {
            names: vec!["talker:0".into()],
            no_wait: false,
        })
        .await
        .unwrap();
    let after = instance(&mut client, "talker:0").await;
    let path = logs.join("talker:0.out.log");
    wait_content(&path, &format!("out-{}\n", after.pid)).await;
    assert!(
        read(&path).starts_with(&format!("out-{}\n", pids["talker:0"])),
        "the file is appended to across restarts"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placeholders_and_supervisord_spellings_name_each_instance_file() {
    let daemon = Daemon::start(
        Config::new()
            .program(
                Program::new("web", "sh -c 'echo web-$$; echo oops-$$ >&2; sleep 1000'")
                    .numprocs(2)
                    .starttime(0.2)
                    .stdout("{dir}/%(program_name)s-%(process_num)02d.log")
                    .stderr("{dir}/{name}.errors"),
            )
            .program(
                Program::new("auto", "sh -c 'echo auto-$$; sleep 1000'")
                    .starttime(0.2)
                    .stdout("AUTO"),
            )
            .program(
                Program::new("shared", "sh -c 'echo shared-$$; sleep 1000'")
                    .numprocs(3)
                    .starttime(0.2)
                    .stdout("{dir}/shared.log"),
            ),
    )
    .await;
    let pids = daemon
        .wait_running(&["web:0", "web:1", "auto", "shared:0", "shared:1", "shared:2"])
        .await;
    wait_content(
        &daemon.path("web-00.log"),
        &format!("web-{}", pids["web:0"]),
    )
    .await;
    wait_content(
        &daemon.path("web-01.log"),
        &format!("web-{}", pids["web:1"]),
    )
    .await;
    wait_content(
        &daemon.path("logs/auto.out.log"),
        &format!("auto-{}", pids["auto"]),
    )
    .await;
    wait_content(
        &daemon.path("web:0.errors"),
        &format!("oops-{}", pids["web:0"]),
    )
    .await;
    // A path without placeholders is shared on purpose: every line whole.
    for index in 0..3 {
        let pid = pids[&format!("shared:{index}")];
        wait_content(&daemon.path("shared.log"), &format!("shared-{pid}\n")).await;
    }
    for line in read(&daemon.path("shared.log")).lines() {
        assert!(
            line.starts_with("shared-") && line[7..].parse::<u32>().is_ok(),
            "{line:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_keeps_disk_use_bounded_and_loses_or_splits_no_line() {
    // About 50 MB of numbered lines through maxbytes 1 MB, 3 backups.
    let daemon = Daemon::start(
        Program::new("flood", "sh -c 'seq 1 6000000; sleep 1000'")
            .starttime(0.2)
            .set(
                "stdout",
                "{path: '{dir}/flood.log', maxbytes: 1MB, backups: 3}",
            ),
    )
    .await;
    daemon.wait_running(&["flood"]).await;
    wait_content(&daemon.path("flood.log"), "6000000\n").await;
    let dir = daemon.path("");
    assert_eq!(
        files(&dir, "flood.log"),
        vec!["flood.log", "flood.log.1", "flood.log.2", "flood.log.3"]
    );
    let mut kept = Vec::new();
    for name in ["flood.log.3", "flood.log.2", "flood.log.1", "flood.log"] {
        let text = read(&dir.join(name));
        assert!(
            text.len() as u64 <= 1024 * 1024 + 8,
            "{name} is {} bytes",
            text.len()
        );
        assert!(text.ends_with('\n'), "{name} ends inside a line");
        kept.extend(text.lines().map(|line| line.parse::<u64>().expect(line)));
    }
    // The newest lines, consecutive to the last one: nothing lost or split in between.
    assert_eq!(kept.last(), Some(&6_000_000));
    for pair in kept.windows(2) {
        assert_eq!(pair[1], pair[0] + 1, "a gap or a split line");
    }
    assert!(kept.len() > 400_000, "only {} lines kept", kept.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigusr1_reopens_the_files_after_an_outside_move() {
    let daemon =
        Daemon::start(Program::new("ticker", "sh -c 'echo first; sleep 1000'").starttime(0.2))
            .await;
    daemon.wait_running(&["ticker"]).await;
    let path = daemon.path("logs/ticker.out.log");
    wait_content(&path, "first\n").await;
    let moved = daemon.path("logs/ticker.out.log.old");
    std::fs::rename(&path, &moved).unwrap();
    send(daemon.pid(), nix::sys::signal::Signal::SIGUSR1);
    expect("the file to be made again", || async {
        path.exists().then_some(())
    })
    .await;
    // Reopen by RPC too, and new output goes to the new file.
    let mut client = daemon.client().await;
    let reply = client
        .reopen(proto::ReopenRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(reply.errors.is_empty(), "{:?}", reply.errors);
    client
        .restart(proto::RestartRequest {
            names: vec!["ticker".into()],
            no_wait: false,
        })
        .await
        .unwrap();
    wait_content(&path, "first\n").await;
    assert_eq!(read(&moved), "first\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_or_a_stalled_fifo_blocks_neither_the_child_nor_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    // A reader that never reads: the FIFO fills after 64 KB.
    let _stalled = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    let daemon = Daemon::launch(
        Config::new()
            .program(
                Program::new(
                    "full",
                    "sh -c 'yes | head -c 20000000; echo done >&2; sleep 1000'",
                )
                .starttime(0.2)
                .stdout("/dev/full"),
            )
            .program(
                Program::new(
                    "stalled",
                    "sh -c 'yes | head -c 20000000; echo done >&2; sleep 1000'",
                )
                .starttime(0.2)
                .stdout("{dir}/fifo"),
            ),
    )
    .in_dir(dir)
    .start()
    .await;
    daemon.wait_running(&["full", "stalled"]).await;
    let mut client = daemon.client().await;
    for name in ["full", "stalled"] {
        // The child wrote everything and went on.
        wait_content(&daemon.path(&format!("logs/{name}.err.log")), "done\n").await;
        let started = Instant::now();
        let status = instance(&mut client, name).await;
        assert!(
            started.elapsed() < Duration::from_millis(100),
            "status took {:?}",
            started.elapsed()
        );
        assert!(
            status.output_dropped_bytes >= 19_000_000,
            "{name}: {} bytes dropped",
            status.output_dropped_bytes
        );
    }
    // Reported, at a bounded rate: one line per stream here, not one per write.
    let log = daemon.log();
    for name in ["full", "stalled"] {
        let reports = log.matches(&format!("{name}: output dropped")).count();
        assert!((1..=3).contains(&reports), "{name}: {reports} reports");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_shows_the_last_lines_then_follows_across_a_restart_and_a_rotation() {
    let daemon = Daemon::start(
        Program::new("counter", "sh -c 'seq 1 10; echo oops >&2; sleep 1000'")
            .starttime(0.2)
            .set(
                "stdout",
                "{path: '{dir}/counter.log', maxbytes: 50, backups: 2}",
            ),
    )
    .await;
    daemon.wait_running(&["counter"]).await;
    wait_content(&daemon.path("counter.log"), "10\n").await;
    let mut client = daemon.client().await;
    let mut last = tail(&mut client, "counter", proto::Stream::Stdout, 3, false).await;
    assert_eq!(next_chunk(&mut last).await.data, b"8\n9\n10\n");
    assert!(
        tokio::time::timeout(DEADLINE, last.next())
            .await
            .unwrap()
            .is_none(),
        "without follow the stream ends"
    );
    let mut errors = tail(&mut client, "counter", proto::Stream::Stderr, 0, false).await;
    assert_eq!(next_chunk(&mut errors).await.data, b"oops\n");
    // Two followers; each restart brings new output to both; the 50-byte limit rotates.
    let mut first = tail(&mut client, "counter", proto::Stream::Stdout, 1, true).await;
    let mut second = tail(&mut client, "counter", proto::Stream::Stdout, 1, true).await;
    assert_eq!(next_chunk(&mut first).await.data, b"10\n");
    assert_eq!(next_chunk(&mut second).await.data, b"10\n");
    for _ in 0..3 {
        client
            .restart(proto::RestartRequest {
                names: vec!["counter".into()],
                no_wait: false,
            })
            .await
            .unwrap();
    }
    for follower in [&mut first, &mut second] {
        let text = read_until(follower, "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n").await;
        assert!(text.starts_with("1\n"), "{text:?}");
    }
    assert!(
        daemon.path("counter.log.1").exists(),
        "it rotated meanwhile"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_that_does_not_read_is_told_what_it_missed_and_slows_nobody() {
    let daemon =
        Daemon::start(Program::new("chatty", "sh -c 'echo ready; sleep 1000'").starttime(0.2))
            .await;
    daemon.wait_running(&["chatty"]).await;
    let mut client = daemon.client().await;
    let mut stalled = tail(&mut client, "chatty", proto::Stream::Stdout, 1, true).await;
    assert_eq!(next_chunk(&mut stalled).await.data, b"ready\n");
    // The program becomes a flood (its output settings stay, so does its capture).
    daemon.write_config(
        Program::new(
            "chatty",
            "sh -c 'yes | head -c 100000000; echo end; sleep 1000'",
        )
        .starttime(0.2),
    );
    client.reload(proto::ReloadRequest {}).await.unwrap();
    // The flood finishes while this follower reads nothing.
    wait_content(&daemon.path("logs/chatty.out.log"), "end\n").await;
    let mut missed = 0;
    let mut text = Vec::new();
    while !text.ends_with(b"end\n") {
        let chunk = next_chunk(&mut stalled).await;
        missed += chunk.missed_bytes;
        text.extend_from_slice(&chunk.data);
        if text.len() > 1_000_000 {
            text.drain(..text.len() - 16);
        }
    }
    assert!(missed > 0, "the follower was not told it missed anything");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unexpected_exits_backoff_and_gave_up_carry_the_last_stderr_lines() {
    let daemon = Daemon::start(
        Config::new()
            .program(
                Program::new(
                    "broken",
                    "sh -c 'seq 1 30 >&2; echo cannot open database >&2; exit 3'",
                )
                .starttime(0.5)
                .startretries(1),
            )
            .program(
                Program::new("dies", "sh -c 'sleep 0.3; echo lost my mind >&2; exit 7'")
                    .starttime(0.1)
                    .autorestart("never"),
            ),
    )
    .await;
    let mut client = daemon.client().await;
    let fatal = wait_state(&mut client, "broken", State::Fatal).await;
    let lines: Vec<&str> = fatal.last_stderr.lines().collect();
    assert_eq!(lines.len(), 10, "{:?}", fatal.last_stderr);
    assert_eq!(lines.last(), Some(&"cannot open database"));
    assert_eq!(lines.first(), Some(&"22"));
    let exited = wait_state(&mut client, "dies", State::Exited).await;
    assert_eq!(exited.last_stderr, "lost my mind");
    let mut events = client
        .watch_events(proto::WatchEventsRequest {
            names: Vec::new(),
            since: Some(0),
            run: None,
        })
        .await
        .unwrap()
        .into_inner();
    let mut carried = Vec::new();
    while carried.len() < 3 {
        let event = tokio::time::timeout(DEADLINE, events.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if !event.last_stderr.is_empty() {
            carried.push((
                event.instance.clone(),
                event.kind(),
                event.last_stderr.clone(),
            ));
        }
    }
    let kinds: Vec<(String, EventKind)> = carried
        .iter()
        .map(|(instance, kind, _)| (instance.clone(), *kind))
        .collect();
    assert!(
        kinds.contains(&("broken".into(), EventKind::Backoff)),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&("broken".into(), EventKind::GaveUp)),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&("dies".into(), EventKind::Exited)),
        "{kinds:?}"
    );
    for (_, _, text) in &carried {
        assert!(text.len() <= 2048);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_stderr_clear_and_maintail() {
    let daemon = Daemon::start(
        Program::new("both", "sh -c 'echo to-out; echo to-err >&2; sleep 1000'")
            .starttime(0.2)
            .set("redirect_stderr", "true"),
    )
    .await;
    daemon.wait_running(&["both"]).await;
    let out = daemon.path("logs/both.out.log");
    wait_content(&out, "to-err\n").await;
    assert!(read(&out).contains("to-out\n"));
    assert!(!daemon.path("logs/both.err.log").exists());
    let mut client = daemon.client().await;
    // stderr is in stdout.
    let mut errors = tail(&mut client, "both", proto::Stream::Stderr, 0, false).await;
    assert!(String::from_utf8_lossy(&next_chunk(&mut errors).await.data).contains("to-err"));
    let cleared = client
        .clear(proto::ClearRequest {
            names: vec!["both".into()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cleared.cleared, vec!["both".to_string()]);
    assert_eq!(read(&out), "");
    let mut main = client
        .main_tail(proto::MainTailRequest {
            lines: 50,
            bytes: None,
            follow: true,
        })
        .await
        .unwrap()
        .into_inner();
    let first = String::from_utf8_lossy(&next_chunk(&mut main).await.data).into_owned();
    assert!(first.contains("both: started"), "{first}");
    client
        .stop(proto::StopRequest {
            names: vec!["both".into()],
            no_wait: false,
        })
        .await
        .unwrap();
    let mut text = String::new();
    while !text.contains("both: stopped") {
        text.push_str(&String::from_utf8_lossy(&next_chunk(&mut main).await.data));
    }
    // A discarded stream cannot be tailed.
    daemon.write_config(
        Program::new("both", "sleep 1000")
            .starttime(0.2)
            .set("stdout", "null"),
    );
    client.reload(proto::ReloadRequest {}).await.unwrap();
    client
        .start(proto::StartRequest {
            names: vec!["both".into()],
            no_wait: false,
        })
        .await
        .unwrap();
    let error = client
        .tail(proto::TailRequest {
            name: "both".into(),
            stream: proto::Stream::Stdout.into(),
            lines: 0,
            bytes: None,
            follow: false,
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::FailedPrecondition, "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_output_option_rejects_the_reload_with_file_line_and_key() {
    let daemon = Daemon::start(Program::sleeper("web")).await;
    let pids = daemon.wait_running(&["web"]).await;
    daemon.write_config(Config::yaml(
        "
        web:
          cmd: sleep 1000
          stdout:
            maxbytes: lots
        ",
    ));
    let mut client = daemon.client().await;
    let error = client.reload(proto::ReloadRequest {}).await.unwrap_err();
    assert_eq!(error.code(), tonic::Code::InvalidArgument);
    let message = error.message();
    assert!(
        message.contains("taskmaster.yaml:9:") && message.contains("programs.web.stdout.maxbytes"),
        "{message}"
    );
    assert_eq!(instance(&mut client, "web").await.pid, pids["web"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamps_prefix_each_line_with_its_rfc3339_time() {
    let daemon = Daemon::start(
        Program::new("stamped", "sh -c 'echo one; echo two; sleep 1000'")
            .starttime(0.2)
            .set("stdout", "{timestamps: true}"),
    )
    .await;
    daemon.wait_running(&["stamped"]).await;
    let path = daemon.path("logs/stamped.out.log");
    wait_content(&path, " two\n").await;
    let before = std::time::SystemTime::now();
    let text = read(&path);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text:?}");
    for (line, word) in lines.iter().zip(["one", "two"]) {
        let (time, rest) = line.split_once(' ').unwrap();
        assert_eq!(rest, word);
        let stamp = humantime::parse_rfc3339(time).unwrap_or_else(|_| panic!("{time:?}"));
        let age = before.duration_since(stamp).unwrap_or_default();
        assert!(age < Duration::from_secs(60), "{time} is {age:?} old");
    }
}

/// The number of the last `tick-N` line of `path` (its last 4 KiB), 0 before the first.
fn last_tick(path: &Path) -> u64 {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(path) else {
        return 0;
    };
    let length = file.metadata().map_or(0, |metadata| metadata.len());
    let _ = file.seek(SeekFrom::Start(length.saturating_sub(4096)));
    let mut end = String::new();
    let _ = file.read_to_string(&mut end);
    end.lines()
        .rev()
        .find_map(|line| line.strip_prefix("tick-")?.parse().ok())
        .unwrap_or(0)
}

/// Reads a tail to its end (a tail without follow); the bytes it brought.
async fn drain_tail(mut stream: tonic::Streaming<proto::OutputChunk>) -> u64 {
    let mut total = 0;
    while let Some(chunk) = tokio::time::timeout(DEADLINE, stream.next())
        .await
        .expect("a chunk within the deadline")
    {
        let chunk = chunk.expect("a chunk, not an error");
        assert_eq!(chunk.missed_bytes, 0);
        total += chunk.data.len() as u64;
    }
    total
}

/// Checks followed output line by line: 64-byte filler lines, then `tick-N` lines numbered
/// one after the other (no tick missed or repeated) unless the daemon said it skipped bytes.
struct Ticks {
    /// The end of the last chunk that was not a whole line yet.
    carry: Vec<u8>,
    /// The last tick seen.
    last: Option<u64>,
    /// Bytes the daemon said were skipped.
    missed: u64,
    /// Lines seen (the first, maybe cut at the start of the tail, is not checked).
    lines: u64,
}

/// The filler line the big writer writes: 63 characters and a newline.
const FILLER: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde";

impl Ticks {
    fn take(&mut self, chunk: &proto::OutputChunk) {
        self.missed += chunk.missed_bytes;
        self.carry.extend_from_slice(&chunk.data);
        let Some(end) = self.carry.iter().rposition(|byte| *byte == b'\n') else {
            return;
        };
        let whole: Vec<u8> = self.carry.drain(..=end).collect();
        for line in whole[..whole.len() - 1].split(|byte| *byte == b'\n') {
            self.lines += 1;
            if self.lines == 1 || line == FILLER.as_bytes() {
                continue;
            }
            let line = String::from_utf8_lossy(line);
            let tick: u64 = line
                .strip_prefix("tick-")
                .and_then(|number| number.parse().ok())
                .unwrap_or_else(|| panic!("a line neither filler nor tick: {line:?}"));
            if let Some(last) = self.last {
                if self.missed == 0 {
                    assert_eq!(tick, last + 1, "a tick missed or repeated");
                } else {
                    assert!(tick > last, "tick {tick} after {last}");
                }
            }
            self.last = Some(tick);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tail_of_64_mib_slows_neither_the_writer_nor_the_daemon_and_misses_nothing() {
    // 64 MiB of 64-byte lines, then a numbered line every 50 ms, for as long as it runs.
    let daemon = Daemon::start(
        Program::new(
            "big",
            &format!(
                "sh -c 'yes {FILLER} | head -c 67108864; i=0; \
                 while i=$((i+1)); do echo tick-$i; sleep 0.05; done'"
            ),
        )
        .starttime(0.2)
        .stoptime(1.0)
        .set("stdout", "{path: '{dir}/big.log', maxbytes: 0}"),
    )
    .await;
    daemon.wait_running(&["big"]).await;
    let path = daemon.path("big.log");
    expect("the 64 MiB and the first ticks in the file", || async {
        (last_tick(&path) >= 2).then_some(())
    })
    .await;
    let mut client = daemon.client().await;
    let bytes = |bytes: u64, follow: bool| proto::TailRequest {
        name: "big".into(),
        stream: proto::Stream::Stdout.into(),
        lines: 0,
        bytes: Some(bytes),
        follow,
    };
    // A follower of the last 64 MiB (asked for more: LONGEST_TAIL bounds it) reads one chunk,
    // then nothing for a while: its head is half sent.
    let mut big = client
        .tail(bytes(u64::MAX, true))
        .await
        .expect("Tail answers")
        .into_inner();
    let mut ticks = Ticks {
        carry: Vec::new(),
        last: None,
        missed: 0,
        lines: 0,
    };
    let first = next_chunk(&mut big).await;
    assert!(
        first.data.len() <= 4 * 1024 * 1024,
        "the head comes in pieces a client takes"
    );
    let mut received = first.data.len() as u64;
    ticks.take(&first);
    // More tails than may read at once, each to its end, meanwhile.
    let mut others = Vec::new();
    for asked in [u64::MAX, 16 << 20, 16 << 20, 16 << 20, 16 << 20] {
        let stream = client
            .tail(bytes(asked, false))
            .await
            .expect("Tail answers")
            .into_inner();
        others.push((asked.min(64 << 20), tokio::spawn(drain_tail(stream))));
    }
    // The writer goes on (its lines reach the file), and the daemon answers.
    let during = last_tick(&path);
    expect("ticks written while the tails read", || async {
        (last_tick(&path) >= during + 5).then_some(())
    })
    .await;
    let answered = tokio::time::timeout(DEADLINE, status(&mut client)).await;
    assert_eq!(answered.expect("Status answers during the tails").len(), 1);
    // The follower reads on: all 64 MiB, then ticks as they come, none missed or repeated at
    // the seam between the file and the live feed.
    while received < 64 << 20 {
        let chunk = next_chunk(&mut big).await;
        received += chunk.data.len() as u64;
        ticks.take(&chunk);
    }
    let target = last_tick(&path) + 3;
    while ticks.last.is_none_or(|last| last < target) {
        ticks.take(&next_chunk(&mut big).await);
    }
    assert!(ticks.lines > 1_000_000, "{} lines", ticks.lines);
    assert_eq!(ticks.missed, 0, "this follower never fell that far behind");
    for (asked, reading) in others {
        assert_eq!(
            reading.await.unwrap(),
            asked,
            "the head of a tail of {asked} bytes"
        );
    }
}
