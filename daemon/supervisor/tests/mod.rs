//! The supervisor actor driven in-process: a fake operating system ([`fake`]) and tokio's
//! paused clock, so that every timing (backoff, starttime, stoptime, autorestart spacing) is
//! checked exactly and no real process runs. The integration tests in `tests/` check the same
//! behaviour with real processes.

mod fake;

use std::{path::PathBuf, pin::Pin, sync::Arc, time::Duration};

use nix::sys::signal::Signal;
use tokio::{task::JoinHandle, time::Instant};
use tokio_stream::{Stream, StreamExt};

use super::{
    Actor, Handle, InstanceResult, InstanceView, OutputSettings, ReloadSummary, SupervisorError,
    Wait,
    event::{Delivery, EventKind, Record},
    process::ExitInfo,
    start_with,
    state::State,
};
use crate::config;
use fake::Fake;

/// The client every request of these tests comes from.
fn by() -> Actor {
    Actor::Caller("uid 1000 (tester)".into())
}

/// Virtual time any awaited condition may take; paused time makes it cost nothing.
const PATIENCE: Duration = Duration::from_secs(3600);

/// A supervisor on a fake OS, its config file, and a feed of every event it publishes.
struct Rig {
    handle: Handle,
    fake: Fake,
    task: Option<JoinHandle<()>>,
    events: Pin<Box<dyn Stream<Item = Delivery> + Send>>,
    /// Keeps the config file's directory alive.
    _dir: tempfile::TempDir,
    path: PathBuf,
}

/// The `programs:` section of a config, one program per line as `name: {flow mapping}`.
fn config_text(programs: &[&str]) -> String {
    if programs.is_empty() {
        return "programs: {}\n".to_string();
    }
    let mut text = String::from("programs:\n");
    for program in programs {
        text.push_str("  ");
        text.push_str(program);
        text.push('\n');
    }
    text
}

impl Rig {
    async fn start(programs: &[&str]) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("taskmaster.yaml");
        std::fs::write(&path, config_text(programs)).unwrap();
        let config = config::load(&path).unwrap();
        let (os, fake) = fake::new();
        let output = OutputSettings {
            logdir: dir.path().join("logs"),
            event_log: None,
        };
        let (handle, task) = start_with(os, config, output, Box::new(|_| Vec::new())).unwrap();
        let watch = handle
            .watch_events(Vec::new(), Some(0), None)
            .await
            .unwrap();
        Rig {
            handle,
            fake,
            task: Some(task),
            events: Box::pin(watch.into_stream()),
            _dir: dir,
            path,
        }
    }

    /// The next event of `kind` about `instance` ("" for the daemon); earlier ones are skipped.
    async fn event(&mut self, kind: EventKind, instance: &str) -> Arc<Record> {
        let wanted = async {
            while let Some(delivery) = self.events.next().await {
                if let Delivery::Event(event) = delivery
                    && event.kind == kind
                    && &*event.instance == instance
                {
                    return event;
                }
            }
            panic!("the event stream ended before {kind:?} of {instance:?}");
        };
        tokio::time::timeout(PATIENCE, wanted)
            .await
            .unwrap_or_else(|_| panic!("no {kind:?} event of {instance:?}"))
    }

    /// Whether an event of `kind` about `instance` comes within `within` (virtual time).
    async fn sees(&mut self, kind: EventKind, instance: &str, within: Duration) -> bool {
        tokio::time::timeout(within, self.event(kind, instance))
            .await
            .is_ok()
    }

    async fn status(&self, name: &str) -> InstanceView {
        let mut views = within(self.handle.status(vec![name.to_string()], |view| view))
            .await
            .unwrap();
        assert_eq!(views.len(), 1, "{name} names one instance");
        views.remove(0)
    }

    async fn states(&self) -> Vec<(String, State)> {
        let views = within(self.handle.status(Vec::new(), |view| view))
            .await
            .unwrap();
        views
            .into_iter()
            .map(|view| (view.name, view.state))
            .collect()
    }

    async fn reload(&self, programs: &[&str]) -> Result<ReloadSummary, SupervisorError> {
        std::fs::write(&self.path, config_text(programs)).unwrap();
        within(self.handle.reload(by())).await
    }

    /// The pid of the live process of `name`.
    async fn pid(&self, name: &str) -> u32 {
        let pid = self.status(name).await.pid;
        assert_ne!(pid, 0, "{name} has a process");
        pid
    }

    /// Shuts down and waits for the supervisor's end.
    async fn shutdown(mut self) -> Fake {
        within(self.handle.shutdown(by())).await;
        if let Some(task) = self.task.take() {
            tokio::time::timeout(PATIENCE, task)
                .await
                .expect("the supervisor ends after a shutdown")
                .unwrap();
        }
        self.fake.clone()
    }
}

/// `request`'s answer, which must come within [`PATIENCE`]: a request the supervisor never
/// answers fails its test instead of hanging it.
async fn within<T>(request: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, request)
        .await
        .expect("the supervisor answers every request")
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|name| name.to_string()).collect()
}

fn one(mut results: Vec<InstanceResult>) -> InstanceResult {
    assert_eq!(results.len(), 1, "{results:?}");
    results.remove(0)
}

/// Time between consecutive instants.
fn gaps(times: &[Instant]) -> Vec<Duration> {
    times.windows(2).map(|pair| pair[1] - pair[0]).collect()
}

/// `actual` is `wanted`, give or take the queue's millisecond rounding.
fn about(actual: Duration, wanted: Duration) -> bool {
    actual >= wanted && actual <= wanted + Duration::from_millis(5)
}

#[tokio::test(start_paused = true)]
async fn autostart_spawns_every_instance_and_each_runs_after_starttime() {
    let mut rig = Rig::start(&[
        "web: {cmd: serve, numprocs: 3, starttime: 1}",
        "idle: {cmd: serve idle, autostart: false}",
    ])
    .await;
    let began = Instant::now();
    for name in ["web:0", "web:1", "web:2"] {
        rig.event(EventKind::Started, name).await;
    }
    assert!(about(began.elapsed(), Duration::from_secs(1)));
    assert_eq!(rig.fake.spawned("serve").len(), 3);
    assert!(rig.fake.spawned("serve idle").is_empty());
    assert_eq!(
        rig.states().await,
        vec![
            ("idle".to_string(), State::Stopped),
            ("web:0".to_string(), State::Running),
            ("web:1".to_string(), State::Running),
            ("web:2".to_string(), State::Running),
        ]
    );
    assert_eq!(rig.status("idle").await.description, "Not started");
}

#[tokio::test(start_paused = true)]
async fn a_crash_loop_backs_off_one_two_four_seconds_then_gives_up() {
    let mut rig = Rig::start(&["crasher: {cmd: crash, starttime: 1, startretries: 3}"]).await;
    let gave_up = rig.event(EventKind::GaveUp, "crasher").await;
    assert!(
        gave_up.message.contains("gave up after 4 tries"),
        "{gave_up:?}"
    );
    let times: Vec<Instant> = rig
        .fake
        .spawned("crash")
        .iter()
        .map(|process| process.spawned_at)
        .collect();
    assert_eq!(times.len(), 4, "the first try and three retries");
    let expected = [1, 2, 4].map(Duration::from_secs);
    for (gap, wanted) in gaps(&times).into_iter().zip(expected) {
        assert!(about(gap, wanted), "{gap:?} instead of {wanted:?}");
    }
    let view = rig.status("crasher").await;
    assert_eq!(view.state, State::Fatal);
    assert_eq!(view.description, "Exited too quickly (exit status 1)");
    // Nothing more is tried.
    assert!(
        !rig.sees(EventKind::Spawned, "crasher", Duration::from_secs(300))
            .await
    );
}

#[tokio::test(start_paused = true)]
async fn a_spawn_error_backs_off_and_gives_up_with_its_reason() {
    let mut rig = Rig::start(&["ghost: {cmd: missing, startretries: 1}"]).await;
    let backoff = rig.event(EventKind::Backoff, "ghost").await;
    assert_eq!(
        &*backoff.message,
        "spawn error: No such file or directory; retry in 1s"
    );
    rig.event(EventKind::GaveUp, "ghost").await;
    let view = rig.status("ghost").await;
    assert_eq!(view.state, State::Fatal);
    assert_eq!(view.spawn_error, "No such file or directory");
}

#[tokio::test(start_paused = true)]
async fn stop_signals_the_group_and_answers_once_reaped() {
    let mut rig = Rig::start(&["web: {cmd: serve, starttime: 0, stopsignal: USR1}"]).await;
    rig.event(EventKind::Started, "web").await;
    let pid = rig.pid("web").await;
    let result = one(
        within(rig.handle.stop(names(&["web"]), Wait::ForOutcome, by()))
            .await
            .unwrap(),
    );
    assert_eq!(
        (result.ok, result.message.as_str(), result.state),
        (true, "stopped", State::Stopped)
    );
    let process = &rig.fake.spawned("serve")[0];
    assert_eq!(process.pid, pid);
    // The stop signal, then, with the leader gone but not yet reaped, SIGKILL for whatever
    // is left of its group.
    assert_eq!(
        process
            .signals
            .iter()
            .map(|(_, signal)| *signal)
            .collect::<Vec<_>>(),
        vec![Signal::SIGUSR1, Signal::SIGKILL],
    );
    assert_eq!(
        process.signals[0].0, process.signals[1].0,
        "at once, not after stoptime"
    );
    assert_eq!(process.exit, Some(ExitInfo::Signal(Signal::SIGUSR1 as i32)));
    assert!(process.reaped);
    let stopped = rig.event(EventKind::Stopped, "web").await;
    assert_eq!(&*stopped.message, "killed by SIGUSR1");
    // Stopping what is stopped is no error.
    let again = one(
        within(rig.handle.stop(names(&["web"]), Wait::ForOutcome, by()))
            .await
            .unwrap(),
    );
    assert_eq!((again.ok, again.message.as_str()), (true, "not running"));
}

#[tokio::test(start_paused = true)]
async fn a_process_that_ignores_the_stop_signal_is_killed_after_stoptime() {
    let mut rig = Rig::start(&["mule: {cmd: stubborn, starttime: 0, stoptime: 1}"]).await;
    rig.event(EventKind::Started, "mule").await;
    let asked = Instant::now();
    let result = one(
        within(rig.handle.stop(names(&["mule"]), Wait::ForOutcome, by()))
            .await
            .unwrap(),
    );
    assert!(result.ok);
    assert!(
        about(asked.elapsed(), Duration::from_secs(1)),
        "{:?}",
        asked.elapsed()
    );
    let killed = rig.event(EventKind::Killed, "mule").await;
    assert!(killed.message.contains("SIGKILL sent"), "{killed:?}");
    let process = &rig.fake.spawned("stubborn")[0];
    let signals: Vec<Signal> = process.signals.iter().map(|(_, signal)| *signal).collect();
    assert_eq!(signals[..2], [Signal::SIGTERM, Signal::SIGKILL]);
    let kill_after = process.signals[1].0 - process.signals[0].0;
    assert!(about(kill_after, Duration::from_secs(1)), "{kill_after:?}");
    assert_eq!(rig.status("mule").await.state, State::Stopped);
}

#[tokio::test(start_paused = true)]
async fn start_answers_once_the_instance_has_run_for_starttime() {
    let rig = Rig::start(&["web: {cmd: serve, starttime: 2, autostart: false}"]).await;
    let asked = Instant::now();
    let result = one(
        within(rig.handle.start(names(&["web"]), Wait::ForOutcome, by()))
            .await
            .unwrap(),
    );
    assert_eq!(
        (result.ok, result.message.as_str(), result.state),
        (true, "started", State::Running)
    );
    assert!(about(asked.elapsed(), Duration::from_secs(2)));
    let again = one(
        within(rig.handle.start(names(&["web"]), Wait::ForOutcome, by()))
            .await
            .unwrap(),
    );
    assert_eq!(
        (again.ok, again.message.as_str()),
        (true, "already running")
    );
    // Without waiting, the answer comes at once.
    within(rig.handle.stop(names(&["web"]), Wait::ForOutcome, by()))
        .await
        .unwrap();
    let asked = Instant::now();
    let quick = one(within(rig.handle.start(names(&["web"]), Wait::No, by()))
        .await
        .unwrap());
    assert_eq!(
        (quick.ok, quick.message.as_str(), quick.state),
        (true, "starting", State::Starting)
    );
    assert_eq!(asked.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn start_of_a_program_that_cannot_run_answers_with_its_failure() {
    let rig = Rig::start(&["crasher: {cmd: crash, startretries: 2, autostart: false}"]).await;
    let result = one(within(
        rig.handle
            .start(names(&["crasher"]), Wait::ForOutcome, by()),
    )
    .await
    .unwrap());
    assert_eq!((result.ok, result.state), (false, State::Fatal));
    assert_eq!(result.message, "Exited too quickly (exit status 1)");
    assert_eq!(rig.fake.spawned("crash").len(), 3);
}

#[tokio::test(start_paused = true)]
async fn start_while_stopping_starts_again_once_reaped() {
    let mut rig = Rig::start(&["mule: {cmd: stubborn, starttime: 0, stoptime: 1}"]).await;
    rig.event(EventKind::Started, "mule").await;
    let stopping = one(within(rig.handle.stop(names(&["mule"]), Wait::No, by()))
        .await
        .unwrap());
    assert_eq!(stopping.state, State::Stopping);
    let result = one(
        within(rig.handle.start(names(&["mule"]), Wait::ForOutcome, by()))
            .await
            .unwrap(),
    );
    assert_eq!((result.ok, result.state), (true, State::Running));
    let spawned = rig.fake.spawned("stubborn");
    assert_eq!(spawned.len(), 2);
    assert!(spawned[0].reaped, "the first process was killed and reaped");
    assert!(about(
        spawned[1].spawned_at - spawned[0].spawned_at,
        Duration::from_secs(1)
    ));
}

#[tokio::test(start_paused = true)]
async fn restart_stops_then_starts_and_counts() {
    let mut rig = Rig::start(&["web: {cmd: serve, starttime: 0}"]).await;
    rig.event(EventKind::Started, "web").await;
    let first = rig.pid("web").await;
    let result = one(
        within(rig.handle.restart(names(&["web"]), Wait::ForOutcome, by()))
            .await
            .unwrap(),
    );
    assert_eq!(
        (result.ok, result.message.as_str(), result.state),
        (true, "started", State::Running)
    );
    let view = rig.status("web").await;
    assert_ne!(view.pid, first);
    assert_eq!(view.restarts, 1);
    rig.event(EventKind::Restarting, "web").await;
    let stopped = rig.event(EventKind::Stopped, "web").await;
    assert_eq!(stopped.pid, first);
    let spawned = rig.event(EventKind::Spawned, "web").await;
    assert_eq!(spawned.pid, view.pid);
}

#[tokio::test(start_paused = true)]
async fn restart_in_backoff_starts_at_once() {
    let mut rig = Rig::start(&["crasher: {cmd: crash, startretries: 5}"]).await;
    rig.event(EventKind::Backoff, "crasher").await;
    let asked = Instant::now();
    within(rig.handle.restart(names(&["crasher"]), Wait::No, by()))
        .await
        .unwrap();
    let cancelled = rig.event(EventKind::Stopped, "crasher").await;
    assert_eq!(&*cancelled.message, "retry cancelled");
    rig.event(EventKind::Spawned, "crasher").await;
    assert_eq!(
        asked.elapsed(),
        Duration::ZERO,
        "not after the backoff delay"
    );
    assert_eq!(rig.fake.spawned("crash").len(), 2);
}

#[tokio::test(start_paused = true)]
async fn autorestart_of_a_short_lived_process_waits_for_the_spacing() {
    let mut rig = Rig::start(&["blip: {cmd: serve, starttime: 0, autorestart: always}"]).await;
    rig.event(EventKind::Started, "blip").await;
    let pid = rig.pid("blip").await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    rig.fake.exit(pid, 0);
    rig.event(EventKind::Exited, "blip").await;
    rig.event(EventKind::Spawned, "blip").await;
    let spawned = rig.fake.spawned("serve");
    assert_eq!(spawned.len(), 2);
    let gap = spawned[1].spawned_at - spawned[0].spawned_at;
    assert!(about(gap, Duration::from_millis(100)), "{gap:?}");
    assert_eq!(rig.status("blip").await.restarts, 1);
}

#[tokio::test(start_paused = true)]
async fn autorestart_after_a_long_run_is_immediate_and_follows_exitcodes() {
    let mut rig = Rig::start(&[
        "web: {cmd: serve, starttime: 0, autorestart: unexpected, exitcodes: [0, 2]}",
    ])
    .await;
    rig.event(EventKind::Started, "web").await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let exited_at = Instant::now();
    rig.fake.exit(rig.pid("web").await, 1);
    let exited = rig.event(EventKind::Exited, "web").await;
    assert_eq!(&*exited.message, "exit status 1 (unexpected)");
    rig.event(EventKind::Spawned, "web").await;
    assert_eq!(exited_at.elapsed(), Duration::ZERO);
    // An expected exit is not restarted.
    tokio::time::sleep(Duration::from_secs(5)).await;
    rig.fake.exit(rig.pid("web").await, 2);
    let exited = rig.event(EventKind::Exited, "web").await;
    assert!(exited.expected);
    assert!(
        !rig.sees(EventKind::Spawned, "web", Duration::from_secs(60))
            .await
    );
    assert_eq!(rig.status("web").await.state, State::Exited);
}

#[tokio::test(start_paused = true)]
async fn stop_calls_off_a_pending_autorestart() {
    let mut rig = Rig::start(&["blip: {cmd: serve, starttime: 0, autorestart: always}"]).await;
    rig.event(EventKind::Started, "blip").await;
    rig.fake.exit(rig.pid("blip").await, 0);
    rig.event(EventKind::Exited, "blip").await;
    let result = one(
        within(rig.handle.stop(names(&["blip"]), Wait::ForOutcome, by()))
            .await
            .unwrap(),
    );
    assert_eq!((result.ok, result.state), (true, State::Exited));
    assert!(
        !rig.sees(EventKind::Spawned, "blip", Duration::from_secs(60))
            .await
    );
    assert_eq!(rig.fake.spawned("serve").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn reload_while_stopping_restarts_with_the_new_config_once_reaped() {
    let mut rig = Rig::start(&["mule: {cmd: stubborn old, starttime: 0, stoptime: 1}"]).await;
    rig.event(EventKind::Started, "mule").await;
    within(rig.handle.stop(names(&["mule"]), Wait::No, by()))
        .await
        .unwrap();
    assert_eq!(rig.status("mule").await.state, State::Stopping);
    let summary = rig
        .reload(&["mule: {cmd: stubborn new, starttime: 0, stoptime: 1}"])
        .await
        .unwrap();
    assert_eq!(summary.changed, names(&["mule"]));
    let spawned = rig.event(EventKind::Spawned, "mule").await;
    eprintln!("DEBUG {spawned:?} {:?}", rig.fake.processes());
    assert!(rig.fake.spawned("stubborn old")[0].reaped);
    let new = rig.fake.spawned("stubborn new");
    assert_eq!(new.len(), 1);
    assert_eq!(spawned.pid, new[0].pid);
}

#[tokio::test(start_paused = true)]
async fn reload_removing_a_running_program_stops_and_forgets_it() {
    let mut rig = Rig::start(&[
        "web: {cmd: serve, starttime: 0}",
        "db: {cmd: serve db, starttime: 0}",
    ])
    .await;
    rig.event(EventKind::Started, "db").await;
    let summary = rig
        .reload(&["web: {cmd: serve, starttime: 0}"])
        .await
        .unwrap();
    assert_eq!(
        (summary.removed, summary.unchanged),
        (names(&["db"]), names(&["web"]))
    );
    rig.event(EventKind::Stopped, "db").await;
    assert!(matches!(
        within(rig.handle.status(names(&["db"]), |view| view)).await,
        Err(SupervisorError::UnknownNames { .. })
    ));
    assert!(rig.fake.spawned("serve db")[0].reaped);
    assert_eq!(
        rig.states().await,
        vec![("web".to_string(), State::Running)]
    );
}

#[tokio::test(start_paused = true)]
async fn reload_of_numprocs_only_keeps_the_running_processes() {
    let mut rig = Rig::start(&["web: {cmd: serve, starttime: 0, numprocs: 1}"]).await;
    rig.event(EventKind::Started, "web").await;
    let first = rig.pid("web").await;
    let grown = rig
        .reload(&["web: {cmd: serve, starttime: 0, numprocs: 3}"])
        .await
        .unwrap();
    assert_eq!(grown.changed, names(&["web"]));
    rig.event(EventKind::Started, "web:2").await;
    assert_eq!(rig.pid("web:0").await, first, "renamed, not restarted");
    assert_eq!(rig.fake.spawned("serve").len(), 3);
    rig.reload(&["web: {cmd: serve, starttime: 0, numprocs: 1}"])
        .await
        .unwrap();
    rig.event(EventKind::Stopped, "web:2").await;
    rig.event(EventKind::Stopped, "web:1").await;
    assert_eq!(
        rig.states().await,
        vec![("web".to_string(), State::Running)]
    );
    assert_eq!(rig.pid("web").await, first);
}

#[tokio::test(start_paused = true)]
async fn a_program_readded_while_being_removed_starts_again() {
    let mut rig = Rig::start(&["mule: {cmd: stubborn, starttime: 0, stoptime: 1}"]).await;
    rig.event(EventKind::Started, "mule").await;
    let removed = rig.reload(&[]).await.unwrap();
    assert_eq!(removed.removed, names(&["mule"]));
    assert_eq!(rig.status("mule").await.state, State::Stopping);
    // Requests for it are refused while it is being removed.
    let refused = one(
        within(rig.handle.start(names(&["mule"]), Wait::ForOutcome, by()))
            .await
            .unwrap(),
    );
    assert_eq!(
        (refused.ok, refused.message.as_str()),
        (false, "being removed by a config reload")
    );
    let readded = rig
        .reload(&["mule: {cmd: stubborn, starttime: 0, stoptime: 1}"])
        .await
        .unwrap();
    assert_eq!(readded.changed, names(&["mule"]));
    rig.event(EventKind::Killed, "mule").await;
    rig.event(EventKind::Started, "mule").await;
    assert_eq!(rig.fake.spawned("stubborn").len(), 2);
    assert_eq!(rig.status("mule").await.state, State::Running);
}

#[tokio::test(start_paused = true)]
async fn a_waiter_is_answered_when_its_instance_is_removed() {
    let mut rig = Rig::start(&["mule: {cmd: stubborn, starttime: 0, stoptime: 1}"]).await;
    rig.event(EventKind::Started, "mule").await;
    let handle = rig.handle.clone();
    let restart = tokio::spawn(async move {
        within(handle.restart(names(&["mule"]), Wait::ForOutcome, by())).await
    });
    rig.event(EventKind::Stopping, "mule").await;
    rig.reload(&[]).await.unwrap();
    let result = one(restart.await.unwrap().unwrap());
    assert_eq!(
        (result.ok, result.message.as_str()),
        (false, "removed by a config reload")
    );
    assert_eq!(rig.fake.spawned("stubborn").len(), 1, "not started again");
}

#[tokio::test(start_paused = true)]
async fn shutdown_with_instances_in_every_state_ends_once_all_are_reaped() {
    let mut rig = Rig::start(&[
        "running: {cmd: serve running, starttime: 0}",
        "starting: {cmd: serve starting, starttime: 100}",
        "backoff: {cmd: crash, startretries: 9}",
        "stopping: {cmd: stubborn, starttime: 0, stoptime: 2}",
        "exited: {cmd: serve exited, starttime: 0, autorestart: never}",
        "fatal: {cmd: missing, startretries: 0}",
        "stopped: {cmd: serve stopped, autostart: false}",
        "pending: {cmd: serve pending, starttime: 0, autorestart: always}",
    ])
    .await;
    // In the order they happen: at start-up, programs in name order; then the first exit.
    rig.event(EventKind::GaveUp, "fatal").await;
    rig.event(EventKind::Started, "stopping").await;
    rig.event(EventKind::Backoff, "backoff").await;
    rig.fake.exit(rig.pid("exited").await, 0);
    rig.event(EventKind::Exited, "exited").await;
    rig.fake.exit(rig.pid("pending").await, 0);
    rig.event(EventKind::Exited, "pending").await;
    within(rig.handle.stop(names(&["stopping"]), Wait::No, by()))
        .await
        .unwrap();
    let states: Vec<State> = rig
        .states()
        .await
        .into_iter()
        .map(|(_, state)| state)
        .collect();
    for state in State::ALL {
        assert!(states.contains(&state), "{state:?} is among {states:?}");
    }
    let spawned_before = rig.fake.processes().len();
    let began = Instant::now();
    let fake = rig.shutdown().await;
    assert!(fake.unreaped().is_empty(), "{:?}", fake.unreaped());
    assert_eq!(
        fake.processes().len(),
        spawned_before,
        "nothing starts once a shutdown began (not even the pending autorestart)"
    );
    // Only the stubborn one needed its stoptime.
    assert!(
        about(began.elapsed(), Duration::from_secs(2)),
        "{:?}",
        began.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn unknown_names_fail_the_whole_request_and_change_nothing() {
    let mut rig = Rig::start(&["web: {cmd: serve, starttime: 0}"]).await;
    rig.event(EventKind::Started, "web").await;
    let error = within(
        rig.handle
            .stop(names(&["web", "nope", "web:3"]), Wait::ForOutcome, by()),
    )
    .await
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "no such program or instance: nope, web:3"
    );
    assert_eq!(rig.status("web").await.state, State::Running);
    assert!(rig.fake.spawned("serve")[0].signals.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_rejected_reload_changes_nothing() {
    let mut rig = Rig::start(&["web: {cmd: serve, starttime: 0}"]).await;
    rig.event(EventKind::Started, "web").await;
    let pid = rig.pid("web").await;
    let error = rig
        .reload(&["web: {cmd: serve, numprocs: lots}"])
        .await
        .unwrap_err();
    assert!(
        matches!(error, SupervisorError::ConfigRejected(_)),
        "{error}"
    );
    rig.event(EventKind::ConfigRejected, "").await;
    assert_eq!(rig.pid("web").await, pid);
}

#[tokio::test(start_paused = true)]
async fn a_child_the_supervisor_did_not_spawn_is_reaped_and_changes_nothing() {
    let mut rig = Rig::start(&["web: {cmd: serve, starttime: 0}"]).await;
    rig.event(EventKind::Started, "web").await;
    rig.fake.stranger_exits(4242);
    // A request after the notice is served after it (one task, in order).
    let view = rig.status("web").await;
    assert_eq!(rig.fake.strangers_left(), 0);
    assert_eq!(view.state, State::Running);
}

#[tokio::test(start_paused = true)]
async fn every_event_says_who_caused_it() {
    let mut rig = Rig::start(&[
        "web: {cmd: serve, starttime: 0, autorestart: always}",
        "mule: {cmd: stubborn, starttime: 0, stoptime: 1}",
    ])
    .await;
    let policy = Some(Actor::Policy);
    // Autostart is the config's policy; a start that held is nobody's doing.
    assert_eq!(rig.event(EventKind::Spawned, "web").await.actor, policy);
    assert_eq!(rig.event(EventKind::Started, "web").await.actor, None);
    // An exit is the process's own; the autorestart after it is policy.
    let pid = rig.pid("web").await;
    rig.fake.exit(pid, 0);
    assert_eq!(rig.event(EventKind::Exited, "web").await.actor, None);
    assert_eq!(rig.event(EventKind::Spawned, "web").await.actor, policy);
    // A restart: the request, the stop it makes and the spawn after the reap are the caller's.
    within(rig.handle.restart(names(&["web"]), Wait::ForOutcome, by()))
        .await
        .unwrap();
    assert_eq!(
        rig.event(EventKind::Restarting, "web").await.actor,
        Some(by())
    );
    assert_eq!(
        rig.event(EventKind::Stopping, "web").await.actor,
        Some(by())
    );
    assert_eq!(rig.event(EventKind::Stopped, "web").await.actor, None);
    assert_eq!(rig.event(EventKind::Spawned, "web").await.actor, Some(by()));
    // A stop that has to kill: the stop is the caller's, the SIGKILL after stoptime policy's.
    rig.pid("mule").await;
    within(rig.handle.stop(names(&["mule"]), Wait::No, by()))
        .await
        .unwrap();
    assert_eq!(
        rig.event(EventKind::Stopping, "mule").await.actor,
        Some(by())
    );
    assert_eq!(rig.event(EventKind::Killed, "mule").await.actor, policy);
    // Reload, reopen and clear are recorded with their caller.
    let signal = Actor::Signal(Signal::SIGHUP);
    within(rig.handle.reload(signal.clone())).await.unwrap();
    assert_eq!(
        rig.event(EventKind::ConfigReloaded, "").await.actor,
        Some(signal)
    );
    within(rig.handle.reopen(by())).await.unwrap();
    assert_eq!(
        rig.event(EventKind::OutputReopened, "").await.actor,
        Some(by())
    );
    within(rig.handle.clear(names(&["web"]), by()))
        .await
        .unwrap();
    assert_eq!(
        rig.event(EventKind::OutputCleared, "web").await.actor,
        Some(by())
    );
    within(rig.handle.shutdown(Actor::Signal(Signal::SIGTERM))).await;
    assert_eq!(
        rig.event(EventKind::DaemonStopping, "").await.actor,
        Some(Actor::Signal(Signal::SIGTERM))
    );
}

#[tokio::test(start_paused = true)]
async fn what_a_leader_leaves_is_killed_unless_the_program_keeps_it() {
    let mut rig = Rig::start(&[
        "web: {cmd: serve, starttime: 0, autorestart: always}",
        "forker: {cmd: serve forks, starttime: 0, autorestart: never, kill_leftovers: false}",
    ])
    .await;
    rig.event(EventKind::Started, "web").await;
    let pid = rig.pid("web").await;
    rig.fake.exit(pid, 1);
    rig.event(EventKind::Exited, "web").await;
    // Before the replacement starts: its group got SIGKILL, its container was killed.
    let first = &rig.fake.spawned("serve")[0];
    assert_eq!(
        first.signals.last().map(|(_, signal)| *signal),
        Some(Signal::SIGKILL)
    );
    assert_eq!(rig.fake.killed_trees(), vec!["web".to_string()]);
    rig.event(EventKind::Spawned, "web").await;
    // A stop kills the tree too.
    within(rig.handle.stop(names(&["web"]), Wait::ForOutcome, by()))
        .await
        .unwrap();
    assert_eq!(
        rig.fake.killed_trees(),
        vec!["web".to_string(), "web".to_string()]
    );
    // A program that keeps what it leaves: neither its exit nor its stop kill anything.
    let forker = rig.pid("forker").await;
    rig.fake.exit(forker, 0);
    rig.event(EventKind::Exited, "forker").await;
    assert!(rig.fake.spawned("serve forks")[0].signals.is_empty());
    assert_eq!(rig.fake.killed_trees().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_stop_during_a_spawn_stops_the_process_once_its_pid_is_known() {
    let mut rig = Rig::start(&["web: {cmd: serve, starttime: 1, autostart: false}"]).await;
    rig.fake.hold_spawns();
    within(rig.handle.start(names(&["web"]), Wait::No, by()))
        .await
        .unwrap();
    // The process exists, the supervisor does not know its pid yet: it answers meanwhile.
    let view = rig.status("web").await;
    assert_eq!((view.state, view.pid), (State::Starting, 0));
    assert_eq!(view.description, "starting");
    assert_eq!(rig.fake.spawned("serve").len(), 1);
    within(rig.handle.stop(names(&["web"]), Wait::No, by()))
        .await
        .unwrap();
    assert_eq!(rig.status("web").await.state, State::Stopping);
    assert!(rig.fake.spawned("serve")[0].signals.is_empty());
    rig.fake.tell_spawns();
    rig.event(EventKind::Stopped, "web").await;
    let process = rig.fake.spawned("serve").remove(0);
    // The stop signal, then the group's SIGKILL that follows every leader's end.
    let signals: Vec<Signal> = process.signals.iter().map(|(_, signal)| *signal).collect();
    assert_eq!(signals, [Signal::SIGTERM, Signal::SIGKILL]);
    assert!(process.reaped);
    assert_eq!(rig.status("web").await.state, State::Stopped);
}

#[tokio::test(start_paused = true)]
async fn an_exit_before_the_spawn_is_told_is_the_instances() {
    let mut rig = Rig::start(&[
        "web: {cmd: serve, starttime: 0}",
        "crasher: {cmd: crash, starttime: 1, startretries: 0, autostart: false}",
    ])
    .await;
    rig.event(EventKind::Started, "web").await;
    rig.fake.hold_spawns();
    within(rig.handle.start(names(&["crasher"]), Wait::No, by()))
        .await
        .unwrap();
    // The crash is a zombie before its pid is told: not reaped as a stranger's.
    assert_eq!(rig.status("crasher").await.state, State::Starting);
    assert!(!rig.fake.spawned("crash")[0].reaped);
    // Exits of known children go on meanwhile... once the unknown one is settled.
    rig.fake.tell_spawns();
    let gave_up = rig.event(EventKind::GaveUp, "crasher").await;
    assert!(gave_up.message.contains("exit status 1"), "{gave_up:?}");
    assert!(rig.fake.spawned("crash")[0].reaped);
    rig.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_spawn_that_fails_after_a_stop_ends_stopped() {
    let mut rig = Rig::start(&["ghost: {cmd: missing, autostart: false}"]).await;
    rig.fake.hold_spawns();
    within(rig.handle.start(names(&["ghost"]), Wait::No, by()))
        .await
        .unwrap();
    within(rig.handle.stop(names(&["ghost"]), Wait::No, by()))
        .await
        .unwrap();
    rig.fake.tell_spawns();
    rig.event(EventKind::Stopped, "ghost").await;
    assert_eq!(rig.status("ghost").await.state, State::Stopped);
    // No retry follows: it was stopped.
    assert!(
        !rig.sees(EventKind::Backoff, "ghost", Duration::from_secs(300))
            .await
    );
}

#[tokio::test(start_paused = true)]
async fn a_shutdown_waits_for_the_spawns_in_progress() {
    let rig = Rig::start(&["web: {cmd: serve, starttime: 1, autostart: false}"]).await;
    rig.fake.hold_spawns();
    within(rig.handle.start(names(&["web"]), Wait::No, by()))
        .await
        .unwrap();
    let fake = rig.fake.clone();
    let handle = rig.handle.clone();
    let mut shutdown = tokio::spawn(async move { handle.shutdown(by()).await });
    // Not over while a process it has not told of yet may run.
    assert!(
        tokio::time::timeout(Duration::from_secs(60), &mut shutdown)
            .await
            .is_err()
    );
    fake.tell_spawns();
    within(shutdown).await.unwrap();
    let fake = rig.shutdown().await;
    assert!(fake.unreaped().is_empty(), "{:?}", fake.unreaped());
}

#[tokio::test(start_paused = true)]
async fn a_signal_goes_to_each_running_instance_and_says_who_sent_it() {
    use super::SignalTo;
    let mut rig = Rig::start(&[
        "web: {cmd: stubborn serve, numprocs: 2, starttime: 0}",
        "idle: {cmd: serve, autostart: false}",
    ])
    .await;
    rig.event(EventKind::Started, "web:0").await;
    rig.event(EventKind::Started, "web:1").await;
    let results = within(rig.handle.signal(
        names(&["web", "idle"]),
        Signal::SIGUSR1,
        SignalTo::Group,
        by(),
    ))
    .await
    .unwrap();
    let outcome: Vec<(&str, bool, &str)> = (results.iter())
        .map(|result| (&*result.name, result.ok, result.message.as_str()))
        .collect();
    // One not running fails its own result only.
    assert_eq!(
        outcome,
        [
            ("web:0", true, "SIGUSR1 sent"),
            ("web:1", true, "SIGUSR1 sent"),
            ("idle", false, "not running")
        ]
    );
    let signalled = rig.event(EventKind::Signalled, "web:0").await;
    assert_eq!(signalled.actor, Some(by()));
    assert_eq!(&*signalled.message, "SIGUSR1 sent to its process group");
    assert_eq!(signalled.old_state, signalled.new_state);
    rig.event(EventKind::Signalled, "web:1").await;
    for process in rig.fake.spawned("stubborn serve") {
        assert_eq!(
            process
                .signals
                .iter()
                .map(|(_, signal)| *signal)
                .collect::<Vec<_>>(),
            [Signal::SIGUSR1]
        );
        assert!(process.leader_signals.is_empty());
    }
    // To the leader only.
    within(
        rig.handle
            .signal(names(&["web:1"]), Signal::SIGHUP, SignalTo::Leader, by()),
    )
    .await
    .unwrap();
    let leader = rig.event(EventKind::Signalled, "web:1").await;
    assert_eq!(&*leader.message, "SIGHUP sent to its leader");
    let spawned = rig.fake.spawned("stubborn serve");
    assert_eq!(spawned[1].leader_signals, [Signal::SIGHUP]);
    assert_eq!(spawned[1].signals.len(), 1, "not its group");
    // An unknown name: nothing is sent to anyone.
    let unknown = within(rig.handle.signal(
        names(&["web", "ghost"]),
        Signal::SIGUSR2,
        SignalTo::Group,
        by(),
    ))
    .await;
    assert!(matches!(unknown, Err(SupervisorError::UnknownNames { names }) if names == ["ghost"]));
    assert!((rig.fake.spawned("stubborn serve").iter()).all(|process| {
        !process
            .signals
            .iter()
            .any(|(_, signal)| *signal == Signal::SIGUSR2)
    }));
    // The lifecycle is the process's: states are as they were.
    assert_eq!(rig.status("web:0").await.state, State::Running);
}
