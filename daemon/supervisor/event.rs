//! The event journal: numbers every event, writes it to the event log, keeps the last
//! [`KEPT_EVENTS`] for watchers that resume, and broadcasts it to live watchers.

use std::{
    collections::{HashSet, VecDeque},
    sync::Arc,
    time::SystemTime,
};

use tokio::sync::broadcast;
use tokio_stream::{
    Stream, StreamExt,
    wrappers::{BroadcastStream, errors::BroadcastStreamRecvError},
};

use nix::sys::signal::Signal;

use super::{process::ExitInfo, state::State};

/// Who caused an event: recorded on every event a control action or the daemon's own policy
/// brings about, so that the event log and `watch` say who did what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A client of the API, as the authorization layer named it: "uid 1000 (alice)",
    /// "token deploy", "cert CN=ops".
    Caller(Arc<str>),
    /// A signal sent to the daemon (SIGHUP reloads, SIGTERM stops, SIGUSR1 reopens).
    Signal(Signal),
    /// The daemon's own rules: autostart, autorestart, retries, SIGKILL after `stoptime`.
    Policy,
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Actor::Caller(name) => f.write_str(name),
            Actor::Signal(signal) => write!(f, "signal {}", signal.as_str()),
            Actor::Policy => f.write_str("policy"),
        }
    }
}

/// What an event says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A process was spawned (STARTING).
    Spawned,
    /// It stayed up `starttime` (RUNNING).
    Started,
    /// It exited on its own (EXITED).
    Exited,
    /// A start failed; another try is scheduled (BACKOFF).
    Backoff,
    /// Every try failed (FATAL).
    GaveUp,
    /// The stop signal was sent (STOPPING).
    Stopping,
    /// The process is gone after a stop (STOPPED).
    Stopped,
    /// SIGKILL was sent after `stoptime`.
    Killed,
    /// A restart was requested.
    Restarting,
    ConfigReloaded,
    ConfigRejected,
    DaemonStarted,
    DaemonStopping,
    /// A watcher fell behind and missed events (never kept in the journal).
    Lagged,
    /// Output of an instance could not be written to its file (reported at a bounded rate).
    OutputDropped,
    /// A watcher resumed with another run's sequence number (never kept in the journal).
    HistoryRestarted,
    /// Every output file was reopened.
    OutputReopened,
    /// The output files of an instance were emptied.
    OutputCleared,
    /// A signal was sent to an instance on request; its state is unchanged.
    Signalled,
}

impl EventKind {
    pub const ALL: [EventKind; 19] = [
        EventKind::Spawned,
        EventKind::Started,
        EventKind::Exited,
        EventKind::Backoff,
        EventKind::GaveUp,
        EventKind::Stopping,
        EventKind::Stopped,
        EventKind::Killed,
        EventKind::Restarting,
        EventKind::ConfigReloaded,
        EventKind::ConfigRejected,
        EventKind::DaemonStarted,
        EventKind::DaemonStopping,
        EventKind::Lagged,
        EventKind::OutputDropped,
        EventKind::HistoryRestarted,
        EventKind::OutputReopened,
        EventKind::OutputCleared,
        EventKind::Signalled,
    ];

    /// The event-log name of a kind: "spawned", "gave up", "config reloaded", ...
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Spawned => "spawned",
            EventKind::Started => "started",
            EventKind::Exited => "exited",
            EventKind::Backoff => "backoff",
            EventKind::GaveUp => "gave up",
            EventKind::Stopping => "stopping",
            EventKind::Stopped => "stopped",
            EventKind::Killed => "killed",
            EventKind::Restarting => "restarting",
            EventKind::ConfigReloaded => "config reloaded",
            EventKind::ConfigRejected => "config rejected",
            EventKind::DaemonStarted => "daemon started",
            EventKind::DaemonStopping => "daemon stopping",
            EventKind::Lagged => "lagged",
            EventKind::OutputDropped => "output dropped",
            EventKind::HistoryRestarted => "history restarted",
            EventKind::OutputReopened => "output reopened",
            EventKind::OutputCleared => "output cleared",
            EventKind::Signalled => "signalled",
        }
    }
}

/// An event as the journal keeps it. Names are shared with the instance and an empty message
/// allocates nothing, so thousands of kept events stay small; the gRPC layer makes the wire
/// form when a watcher is sent one.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Set by [`Journal::publish`]; consecutive from 1.
    pub seq: u64,
    /// Set by [`Journal::publish`].
    pub time: Option<SystemTime>,
    pub kind: EventKind,
    /// Empty for daemon-level events; "web" or "web:0" (its program is the part before `:`).
    pub instance: Arc<str>,
    /// The state before and after, for instance events.
    pub old_state: Option<State>,
    pub new_state: Option<State>,
    /// The process concerned; 0 when none.
    pub pid: u32,
    pub exit: Option<ExitInfo>,
    /// For EXITED: whether the exit code is one of `exitcodes`.
    pub expected: bool,
    pub message: Box<str>,
    /// For unexpected exits, BACKOFF and GAVE_UP: the last lines of stderr.
    pub last_stderr: Option<Arc<str>>,
    /// Who caused it; `None` for what a process did of its own (an exit, a start that held).
    pub actor: Option<Actor>,
}

impl Record {
    /// An event of `kind` about nothing in particular yet; fill in what it concerns.
    pub fn new(kind: EventKind) -> Record {
        Record {
            seq: 0,
            time: None,
            kind,
            instance: Arc::from(""),
            old_state: None,
            new_state: None,
            pid: 0,
            exit: None,
            expected: false,
            message: Box::from(""),
            last_stderr: None,
            actor: None,
        }
    }

    /// The program of the instance; empty for daemon-level events. Program names never hold
    /// a `:`.
    pub fn program(&self) -> &str {
        self.instance
            .split_once(':')
            .map_or(&*self.instance, |(program, _)| program)
    }

    /// A daemon-level event.
    pub fn daemon(kind: EventKind, message: impl Into<Box<str>>) -> Record {
        Record {
            message: message.into(),
            ..Record::new(kind)
        }
    }
}

/// How many past events are kept for `WatchEvents(since)`.
pub const KEPT_EVENTS: usize = 4096;

/// How far a live watcher may fall behind before it is told it lagged.
const WATCHER_BACKLOG: usize = 4096;

/// Owned by the supervisor; only it publishes.
pub struct Journal {
    /// The newest events, oldest first; sequence numbers are consecutive.
    kept: VecDeque<Arc<Record>>,
    /// The sequence number the next event gets; starts at 1.
    next_seq: u64,
    /// Live watchers; a slow one lags without slowing anybody else.
    live: broadcast::Sender<Arc<Record>>,
    /// Who is acting now: stamped on every event published without an actor of its own,
    /// until it is changed. The supervisor sets it around each request and deadline.
    pub(super) acting: Option<Actor>,
    /// This daemon's run: sequence numbers count within it, and a watcher that resumes with
    /// another run's number is told that the history began again.
    run: u64,
}

/// What a new watcher gets: the kept events it asked to replay, how many it asked for that are
/// no longer kept, and the live feed that continues exactly after the replay.
pub struct Subscription {
    /// The run the watcher's `since` counted in, when it is not this one.
    pub restarted: Option<u64>,
    pub replay: Vec<Arc<Record>>,
    pub missed: u64,
    pub live: broadcast::Receiver<Arc<Record>>,
}

impl Default for Journal {
    fn default() -> Self {
        Journal {
            kept: VecDeque::with_capacity(KEPT_EVENTS),
            next_seq: 1,
            live: broadcast::channel(WATCHER_BACKLOG).0,
            acting: None,
            run: new_run(),
        }
    }
}

impl Journal {
    /// This daemon's run, which every event belongs to.
    pub fn run(&self) -> u64 {
        self.run
    }

    /// Who is acting now, if anyone.
    pub fn acting(&self) -> Option<&Actor> {
        self.acting.as_ref()
    }

    /// Numbers, logs, keeps and broadcasts `event`, by the actor acting now unless it names
    /// its own.
    pub fn publish(&mut self, mut event: Record) {
        if event.actor.is_none() {
            event.actor = self.acting.clone();
        }
        event.seq = self.next_seq;
        self.next_seq += 1;
        event.time = Some(SystemTime::now());
        log(&event);
        let event = Arc::new(event);
        if self.kept.len() == KEPT_EVENTS {
            self.kept.pop_front();
        }
        self.kept.push_back(event.clone());
        // No receiver is not an error: nobody is watching.
        let _ = self.live.send(event);
    }

    /// Subscribes a watcher; with `since`, the kept events after that sequence number are
    /// replayed first. A `since` of another daemon's `run` means nothing here: that watcher is
    /// told so and gets every event kept of this run.
    pub fn subscribe(&self, since: Option<u64>, run: Option<u64>) -> Subscription {
        let live = self.live.subscribe();
        let Some(since) = since else {
            return Subscription {
                restarted: None,
                replay: Vec::new(),
                missed: 0,
                live,
            };
        };
        let restarted = run.filter(|run| *run != self.run);
        let since = if restarted.is_some() { 0 } else { since };
        let oldest = self.kept.front().map_or(self.next_seq, |event| event.seq);
        let first_wanted = since.saturating_add(1).min(self.next_seq);
        let missed = oldest.saturating_sub(first_wanted);
        let skip = first_wanted.saturating_sub(oldest) as usize;
        Subscription {
            restarted,
            replay: self.kept.iter().skip(skip).cloned().collect(),
            missed,
            live,
        }
    }
}

/// A watcher's start: the replay and live feed, and which events it asked for.
pub struct Watch {
    pub subscription: Subscription,
    pub filter: EventFilter,
    /// The run its events belong to.
    pub run: u64,
}

/// What a watcher receives: an event, or how many it missed in its place.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    Event(Arc<Record>),
    /// The watcher resumed with a sequence number of this earlier run: this daemon's
    /// history began again at 1, and what it kept follows.
    Restarted {
        earlier: u64,
    },
    /// This many events were dropped: its resume point was forgotten, or it fell behind.
    Missed(u64),
}

impl Watch {
    /// The gap notice (if its resume point is forgotten), the replay, then the live feed,
    /// filtered, with a [`Delivery::Missed`] wherever the watcher fell behind. It ends once the
    /// journal is gone (after a shutdown stopped everything) and every event published until
    /// then was delivered.
    pub fn into_stream(self) -> impl Stream<Item = Delivery> + Send + 'static {
        let Watch {
            subscription,
            filter,
            run: _,
        } = self;
        let restarted = subscription
            .restarted
            .map(|earlier| Delivery::Restarted { earlier });
        let gap = (subscription.missed > 0).then_some(Delivery::Missed(subscription.missed));
        let replay_filter = filter.clone();
        let replay = tokio_stream::iter(subscription.replay)
            .filter(move |event| replay_filter.admits(event))
            .map(Delivery::Event);
        let live = BroadcastStream::new(subscription.live).filter_map(move |item| match item {
            Ok(event) => filter.admits(&event).then_some(Delivery::Event(event)),
            Err(BroadcastStreamRecvError::Lagged(missed)) => Some(Delivery::Missed(missed)),
        });
        tokio_stream::iter(restarted)
            .chain(tokio_stream::iter(gap))
            .chain(replay)
            .chain(live)
    }
}

/// The programs and instances a watcher asked for; empty sets mean everything.
#[derive(Debug, Default, Clone)]
pub struct EventFilter {
    programs: HashSet<String>,
    instances: HashSet<String>,
}

impl EventFilter {
    /// A filter for these program names and instance names.
    pub fn for_names(
        programs: impl IntoIterator<Item = String>,
        instances: impl IntoIterator<Item = String>,
    ) -> Self {
        EventFilter {
            programs: programs.into_iter().collect(),
            instances: instances.into_iter().collect(),
        }
    }

    /// Daemon-level events always pass.
    pub fn admits(&self, event: &Record) -> bool {
        (self.programs.is_empty() && self.instances.is_empty())
            || event.instance.is_empty()
            || self.programs.contains(event.program())
            || self.instances.contains(&*event.instance)
    }
}

/// A run id unlike any earlier daemon's: the time it started, in nanoseconds since 1970
/// (one daemon per socket, so two runs never start in the same nanosecond).
fn new_run() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos() as u64)
}

/// One line in the event log: instance, event, pid, exit code or signal, reason.
fn log(event: &Record) {
    use std::fmt::Write;
    let mut line = String::with_capacity(96);
    let subject = if event.instance.is_empty() {
        "taskmasterd"
    } else {
        &event.instance
    };
    let _ = write!(line, "{subject}: {}", event.kind.name());
    if event.pid != 0 {
        let _ = write!(line, " pid={}", event.pid);
    }
    match event.exit {
        Some(ExitInfo::Code(code)) => {
            let _ = write!(line, " exit_code={code}");
        }
        Some(ExitInfo::Signal(signal)) => {
            let _ = write!(line, " signal={signal}");
        }
        Some(ExitInfo::Unknown) | None => {}
    }
    if event.kind == EventKind::Exited {
        let _ = write!(line, " expected={}", event.expected);
    }
    if !event.message.is_empty() {
        let _ = write!(line, " reason=\"{}\"", event.message.replace('\n', "; "));
    }
    if let Some(actor) = &event.actor {
        let _ = write!(line, " by=\"{actor}\"");
    }
    tracing::info!(target: "taskmaster::event", seq = event.seq, "{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publish(journal: &mut Journal, count: usize) {
        for _ in 0..count {
            journal.publish(Record::new(EventKind::Spawned));
        }
    }

    fn seqs(events: &[Arc<Record>]) -> Vec<u64> {
        events.iter().map(|event| event.seq).collect()
    }

    #[test]
    fn resume_replays_after_the_given_sequence() {
        let mut journal = Journal::default();
        publish(&mut journal, 5);
        let subscription = journal.subscribe(Some(3), None);
        assert_eq!(seqs(&subscription.replay), vec![4, 5]);
        assert_eq!(subscription.missed, 0);
        assert!(journal.subscribe(None, None).replay.is_empty());
        assert!(journal.subscribe(Some(5), None).replay.is_empty());
        assert_eq!(
            seqs(&journal.subscribe(Some(0), None).replay),
            vec![1, 2, 3, 4, 5]
        );
    }

    #[test]
    fn resume_from_a_forgotten_sequence_reports_the_gap() {
        let mut journal = Journal::default();
        publish(&mut journal, KEPT_EVENTS + 10);
        let subscription = journal.subscribe(Some(4), None);
        // Events 5..=10 are gone; 11 is the oldest kept.
        assert_eq!(subscription.missed, 6);
        assert_eq!(subscription.replay.first().map(|event| event.seq), Some(11));
        assert_eq!(subscription.replay.len(), KEPT_EVENTS);
    }

    #[test]
    fn the_program_is_the_instance_name_before_its_index() {
        let record = |instance: &str| Record {
            instance: instance.into(),
            ..Record::new(EventKind::Spawned)
        };
        assert_eq!(record("web").program(), "web");
        assert_eq!(record("web:12").program(), "web");
        assert_eq!(record("").program(), "");
    }

    #[test]
    fn a_since_of_another_run_is_told_and_replays_this_runs_history() {
        let mut journal = Journal::default();
        publish(&mut journal, 5);
        let run = journal.run();
        let same = journal.subscribe(Some(3), Some(run));
        assert_eq!((same.restarted, seqs(&same.replay)), (None, vec![4, 5]));
        let other = journal.subscribe(Some(3), Some(run - 1));
        assert_eq!(other.restarted, Some(run - 1));
        assert_eq!(seqs(&other.replay), vec![1, 2, 3, 4, 5]);
        // Without a `since` there is nothing to resume, whatever the run.
        assert_eq!(journal.subscribe(None, Some(run - 1)).restarted, None);
    }

    #[tokio::test]
    async fn live_feed_continues_after_the_replay() {
        let mut journal = Journal::default();
        publish(&mut journal, 2);
        let mut subscription = journal.subscribe(Some(1), None);
        publish(&mut journal, 1);
        assert_eq!(seqs(&subscription.replay), vec![2]);
        assert_eq!(subscription.live.recv().await.unwrap().seq, 3);
    }
}
