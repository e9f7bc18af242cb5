//! `tmbench`: the measurements of taskmasterd that go through its gRPC API, for `bench/driver.py`.
//!
//! Each subcommand connects first (not timed), does one measurement, and prints one JSON object
//! on stdout. Times shared with the driver are CLOCK_MONOTONIC nanoseconds, the clock Python's
//! `time.monotonic_ns()` reads, so the driver can subtract them from its own.

use std::{
    collections::{HashMap, HashSet},
    io::Write,
    path::PathBuf,
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use serde_json::json;
use taskmaster::{
    endpoint::{self, Target},
    proto::{self, EventKind, taskmaster_client::TaskmasterClient},
};
use tonic::{Streaming, transport::Channel};

type Client = TaskmasterClient<Channel>;

/// The benchmark's client of taskmasterd.
#[derive(Parser)]
struct Args {
    /// The daemon's Unix socket.
    #[arg(short, long)]
    socket: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Prints "waiting", then waits for the daemon to answer and for `n` instances to be
    /// RUNNING; prints the monotonic time it saw that.
    WaitRunning {
        #[arg(long)]
        n: usize,
        #[arg(long, default_value_t = 600)]
        timeout_secs: u64,
    },
    /// Times `count` Status calls for every instance on one connection, after one warm-up call.
    StatusRpc {
        #[arg(long, default_value_t = 20)]
        count: usize,
    },
    /// `count` times: SIGKILL one instance's process and time until its replacement is RUNNING
    /// and has exec'd `sleep`. Before each kill the machine is left quiet: the last replacement
    /// has finished starting (it sleeps) and `settle_ms` have passed.
    Restart {
        #[arg(long, default_value_t = 50)]
        count: usize,
        #[arg(long, default_value_t = 10)]
        settle_ms: u64,
    },
    /// Opens `watchers` WatchEvents streams, then does `restarts` kill -9 restarts in sequence
    /// (each waits for the replacement); reports what every watcher received, and how late.
    Events {
        #[arg(long, default_value_t = 100)]
        watchers: usize,
        #[arg(long, default_value_t = 1000)]
        restarts: usize,
    },
    /// Restarts every instance (`restart all`, waiting for the outcome) on one connection
    /// while another calls Status for every instance back to back; reports each Status
    /// latency until the restart has answered, and how long the restart took.
    StatusDuringRestart,
    /// Asks the daemon to shut down; prints the monotonic time just before the request.
    Shutdown,
    /// Prints every instance's name, state and pid.
    Pids,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let target = Target::Unix(args.socket);
    let report = runtime.block_on(async {
        match args.command {
            Command::WaitRunning { n, timeout_secs } => {
                wait_running(&target, n, Duration::from_secs(timeout_secs)).await
            }
            Command::StatusRpc { count } => status_rpc(&target, count).await,
            Command::Restart { count, settle_ms } => {
                restart(&target, count, Duration::from_millis(settle_ms)).await
            }
            Command::Events { watchers, restarts } => events(&target, watchers, restarts).await,
            Command::StatusDuringRestart => status_during_restart(&target).await,
            Command::Shutdown => shutdown(&target).await,
            Command::Pids => pids(&target).await,
        }
    })?;
    println!("{report}");
    Ok(())
}

/// CLOCK_MONOTONIC in nanoseconds.
fn monotonic_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec to write to; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

async fn connect(target: &Target) -> anyhow::Result<Client> {
    let channel = endpoint::connect(target).await?;
    Ok(TaskmasterClient::new(channel).max_decoding_message_size(usize::MAX))
}

async fn status(client: &mut Client) -> anyhow::Result<Vec<proto::InstanceStatus>> {
    let response = client.status(proto::StatusRequest::default()).await?;
    Ok(response.into_inner().instances)
}

async fn watch(client: &mut Client) -> anyhow::Result<Streaming<proto::Event>> {
    let request = proto::WatchEventsRequest::default();
    Ok(client.watch_events(request).await?.into_inner())
}

async fn next_event(events: &mut Streaming<proto::Event>) -> anyhow::Result<proto::Event> {
    events.message().await?.context("the event stream ended")
}

async fn wait_running(target: &Target, n: usize, timeout: Duration) -> anyhow::Result<String> {
    println!("waiting");
    std::io::stdout().flush()?;
    let deadline = Instant::now() + timeout;
    let mut client = loop {
        match connect(target).await {
            Ok(client) => break client,
            Err(error) if Instant::now() > deadline => return Err(error),
            Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
        }
    };
    // Subscribe before the snapshot: every change after the snapshot arrives as an event.
    let mut events = watch(&mut client).await?;
    let mut running: HashSet<String> = status(&mut client)
        .await?
        .into_iter()
        .filter(|instance| instance.state() == proto::State::Running)
        .map(|instance| instance.name)
        .collect();
    let outcome = tokio::time::timeout_at(deadline.into(), async {
        while running.len() < n {
            let event = next_event(&mut events).await?;
            if event.new_state() == proto::State::Running {
                running.insert(event.instance);
            } else if !event.instance.is_empty() {
                running.remove(&event.instance);
            }
        }
        anyhow::Ok(())
    })
    .await;
    let seen = monotonic_ns();
    match outcome {
        Ok(result) => result?,
        Err(_) => bail!(
            "only {} of {n} instances RUNNING after {timeout:?}",
            running.len()
        ),
    }
    Ok(json!({ "t_ns": seen, "running": running.len() }).to_string())
}

async fn status_rpc(target: &Target, count: usize) -> anyhow::Result<String> {
    let mut client = connect(target).await?;
    let warm_up = status(&mut client).await?;
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let start = Instant::now();
        let instances = status(&mut client).await?;
        samples.push(millis(start.elapsed()));
        if instances.len() != warm_up.len() {
            bail!(
                "Status answered {} then {} instances",
                warm_up.len(),
                instances.len()
            );
        }
    }
    let encoded = prost::Message::encoded_len(&proto::StatusResponse {
        instances: warm_up.clone(),
        daemon: None,
    });
    Ok(json!({
        "samples_ms": samples,
        "instances": warm_up.len(),
        "response_bytes": encoded,
    })
    .to_string())
}

async fn status_during_restart(target: &Target) -> anyhow::Result<String> {
    let mut client = connect(target).await?;
    let mut restarter = connect(target).await?;
    let instances = status(&mut client).await?.len();
    let began = Instant::now();
    let restart = tokio::spawn(async move {
        let request = proto::RestartRequest {
            names: vec!["all".into()],
            no_wait: false,
        };
        let results = restarter.restart(request).await?.into_inner().results;
        anyhow::Ok((began.elapsed(), results))
    });
    let mut samples = Vec::new();
    while !restart.is_finished() {
        let start = Instant::now();
        status(&mut client).await?;
        samples.push(millis(start.elapsed()));
    }
    let (took, results) = restart.await??;
    let failed = results.iter().filter(|result| !result.ok).count();
    if results.len() != instances || failed > 0 {
        bail!(
            "restart all answered {} results ({failed} failed) for {instances} instances",
            results.len()
        );
    }
    Ok(json!({
        "samples_ms": samples,
        "instances": instances,
        "restart_ms": millis(took),
    })
    .to_string())
}

/// The live pids of RUNNING instances, by name.
async fn running_pids(client: &mut Client) -> anyhow::Result<Vec<(String, u32)>> {
    Ok(status(client)
        .await?
        .into_iter()
        .filter(|instance| instance.state() == proto::State::Running && instance.pid != 0)
        .map(|instance| (instance.name, instance.pid))
        .collect())
}

/// The replacement of a killed process, and where its events sit in the journal.
struct Replacement {
    pid: u32,
    /// When the daemon published its STARTED event (its own clock, after the spawn returned).
    started_at: SystemTime,
    /// The sequence number of the first event received after the kill.
    first_seq: u64,
    /// The sequence number of the replacement's STARTED event.
    started_seq: u64,
}

/// Kills `pid` with SIGKILL and waits for the STARTED event of `name` with another pid, then
/// for that process to be `sleep` (exec'd).
async fn kill_and_await_replacement(
    events: &mut Streaming<proto::Event>,
    name: &str,
    pid: u32,
) -> anyhow::Result<Replacement> {
    let victim = nix::unistd::Pid::from_raw(pid as i32);
    nix::sys::signal::kill(victim, nix::sys::signal::Signal::SIGKILL)
        .with_context(|| format!("kill -9 {pid}"))?;
    let mut first_seq = None;
    let replacement = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let event = next_event(events).await?;
            first_seq.get_or_insert(event.seq);
            if event.kind() == EventKind::Started && event.instance == name && event.pid != pid {
                return anyhow::Ok(Replacement {
                    pid: event.pid,
                    started_at: event
                        .time
                        .and_then(|time| SystemTime::try_from(time).ok())
                        .unwrap_or(SystemTime::UNIX_EPOCH),
                    first_seq: first_seq.unwrap_or(event.seq),
                    started_seq: event.seq,
                });
            }
        }
    })
    .await
    .with_context(|| format!("{name} was not replaced within 10 s of kill -9 {pid}"))??;
    wait_exec(replacement.pid).await?;
    Ok(replacement)
}

/// Waits until `pid` runs `sleep` (a spawn returns after the exec, so this is normally at once).
async fn wait_exec(pid: u32) -> anyhow::Result<()> {
    let path = format!("/proc/{pid}/cmdline");
    for _ in 0..100_000 {
        let cmdline = std::fs::read(&path).unwrap_or_default();
        if cmdline.starts_with(b"sleep\0") || cmdline.windows(7).any(|w| w == b"/sleep\0") {
            return Ok(());
        }
        tokio::task::yield_now().await;
    }
    bail!("process {pid} never exec'd sleep")
}

async fn restart(target: &Target, count: usize, settle: Duration) -> anyhow::Result<String> {
    let mut client = connect(target).await?;
    let mut events = watch(&mut client).await?;
    let instances = running_pids(&mut client).await?;
    if instances.is_empty() {
        bail!("no instance is RUNNING");
    }
    // Spread the victims over the instances.
    let stride = (instances.len() / count.max(1)).max(1);
    let mut pids: HashMap<String, u32> = instances.iter().cloned().collect();
    let mut samples = Vec::with_capacity(count);
    let mut stamped = Vec::with_capacity(count);
    for round in 0..count {
        let name = &instances[(round * stride) % instances.len()].0;
        let killed_at = SystemTime::now();
        let start = Instant::now();
        let replacement = kill_and_await_replacement(&mut events, name, pids[name]).await?;
        samples.push(millis(start.elapsed()));
        let reaction = replacement.started_at.duration_since(killed_at);
        stamped.push(millis(reaction.unwrap_or_default()));
        pids.insert(name.clone(), replacement.pid);
        wait_asleep(replacement.pid).await;
        tokio::time::sleep(settle).await;
    }
    Ok(json!({ "samples_ms": samples, "stamped_ms": stamped }).to_string())
}

/// Waits (at most a second) until `pid` sleeps: a new `sleep` spends about a millisecond of CPU
/// loading itself, which would compete with the next measurement on a small machine.
async fn wait_asleep(pid: u32) {
    let path = format!("/proc/{pid}/stat");
    for _ in 0..1000 {
        let stat = std::fs::read_to_string(&path).unwrap_or_default();
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next());
        if state == Some("S") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// What one watcher saw during the events run.
#[derive(Default)]
struct WatcherReport {
    /// Distinct sequence numbers received.
    received: HashSet<u64>,
    /// LAGGED notices, and the events they said were dropped.
    lagged: u64,
    missed: u64,
    /// Receive time minus the event's `time`, in microseconds.
    latencies_us: Vec<u64>,
    /// Why the stream ended before the last event, if it did.
    broken: Option<String>,
}

async fn events(target: &Target, watchers: usize, restarts: usize) -> anyhow::Result<String> {
    let mut controller = connect(target).await?;
    let mut control_events = watch(&mut controller).await?;
    let instances = running_pids(&mut controller).await?;
    if instances.is_empty() {
        bail!("no instance is RUNNING");
    }
    // The last sequence number of the run, once known; every watcher reads up to it.
    let (last_seq_tx, last_seq_rx) = tokio::sync::watch::channel(None::<u64>);
    let mut streams = Vec::with_capacity(watchers);
    for _ in 0..watchers {
        // One connection each, as separate watcher processes would have. The stream is
        // subscribed once the call has answered.
        let mut client = connect(target).await?;
        let stream = watch(&mut client).await?;
        streams.push((client, stream));
    }
    let tasks: Vec<_> = streams
        .into_iter()
        .map(|(client, stream)| tokio::spawn(watcher(client, stream, last_seq_rx.clone())))
        .collect();

    // Nothing happens between the subscriptions and the first kill, so the run's events are
    // exactly those from the first kill's first event to the last replacement's STARTED.
    let started = Instant::now();
    let mut pids: HashMap<String, u32> = instances.iter().cloned().collect();
    let mut first_seq = None;
    let mut last_seq = 0;
    for round in 0..restarts {
        let name = &instances[round % instances.len()].0;
        let replacement = kill_and_await_replacement(&mut control_events, name, pids[name]).await?;
        pids.insert(name.clone(), replacement.pid);
        first_seq.get_or_insert(replacement.first_seq);
        last_seq = replacement.started_seq;
    }
    let elapsed = started.elapsed();
    last_seq_tx.send_replace(Some(last_seq));
    let collect = async {
        let mut reports = Vec::with_capacity(tasks.len());
        for task in tasks {
            reports.push(task.await?);
        }
        anyhow::Ok(reports)
    };
    let reports = tokio::time::timeout(Duration::from_secs(60), collect)
        .await
        .context("the watchers did not all reach the last event within 60 s")??;
    let first_seq = first_seq.unwrap_or(last_seq);
    Ok(summarize(&reports, first_seq, last_seq, restarts, elapsed).to_string())
}

/// Losses per watcher and the latency distribution over every delivery.
fn summarize(
    reports: &[WatcherReport],
    first_seq: u64,
    last_seq: u64,
    restarts: usize,
    elapsed: Duration,
) -> serde_json::Value {
    let emitted = last_seq + 1 - first_seq;
    let lost: Vec<u64> = reports
        .iter()
        .map(|report| {
            let received = report
                .received
                .iter()
                .filter(|seq| (first_seq..=last_seq).contains(*seq))
                .count() as u64;
            emitted - received
        })
        .collect();
    let mut latencies: Vec<u64> = reports
        .iter()
        .flat_map(|report| report.latencies_us.iter().copied())
        .collect();
    latencies.sort_unstable();
    let percentile = |p: f64| -> f64 {
        if latencies.is_empty() {
            return f64::NAN;
        }
        let rank = ((p * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len());
        latencies[rank - 1] as f64 / 1e3
    };
    json!({
        "watchers": reports.len(),
        "restarts": restarts,
        "emitted": emitted,
        "first_seq": first_seq,
        "last_seq": last_seq,
        "run_ms": millis(elapsed),
        "lost_total": lost.iter().sum::<u64>(),
        "watchers_with_loss": lost.iter().filter(|lost| **lost > 0).count(),
        "lagged_notices": reports.iter().map(|report| report.lagged).sum::<u64>(),
        "lagged_missed": reports.iter().map(|report| report.missed).sum::<u64>(),
        "broken_streams": reports.iter().filter_map(|report| report.broken.clone()).collect::<Vec<_>>(),
        "deliveries": latencies.len(),
        "latency_p50_ms": percentile(0.50),
        "latency_p99_ms": percentile(0.99),
        "latency_max_ms": percentile(1.0),
    })
}

/// Receives events until the run's last one; holds its own connection (`_client`) meanwhile.
async fn watcher(
    _client: Client,
    mut stream: Streaming<proto::Event>,
    mut last_seq: tokio::sync::watch::Receiver<Option<u64>>,
) -> WatcherReport {
    let mut report = WatcherReport::default();
    let mut newest = 0;
    loop {
        if let Some(last) = *last_seq.borrow()
            && newest >= last
        {
            return report;
        }
        tokio::select! {
            message = stream.message() => match message {
                Ok(Some(event)) => {
                    let now = SystemTime::now();
                    if event.kind() == EventKind::Lagged {
                        report.lagged += 1;
                        report.missed += event.missed;
                        continue;
                    }
                    newest = newest.max(event.seq);
                    report.received.insert(event.seq);
                    if let Some(sent) = event.time.and_then(|time| SystemTime::try_from(time).ok()) {
                        let late = now.duration_since(sent).unwrap_or_default();
                        report.latencies_us.push(late.as_micros() as u64);
                    }
                }
                Ok(None) => {
                    report.broken = Some("the stream ended".into());
                    return report;
                }
                Err(status) => {
                    report.broken = Some(status.to_string());
                    return report;
                }
            },
            changed = last_seq.changed() => {
                if changed.is_err() {
                    return report;
                }
            }
        }
    }
}

async fn shutdown(target: &Target) -> anyhow::Result<String> {
    let mut client = connect(target).await?;
    let sent = monotonic_ns();
    client.shutdown(proto::ShutdownRequest {}).await?;
    let replied = monotonic_ns();
    Ok(json!({ "t_ns": sent, "reply_ns": replied }).to_string())
}

async fn pids(target: &Target) -> anyhow::Result<String> {
    let mut client = connect(target).await?;
    let instances: Vec<_> = status(&mut client)
        .await?
        .into_iter()
        .map(|instance| {
            json!({
                "name": instance.name,
                "state": instance.state().as_str_name(),
                "pid": instance.pid,
            })
        })
        .collect();
    Ok(json!({ "instances": instances }).to_string())
}
