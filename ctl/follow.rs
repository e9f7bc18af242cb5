//! The shell's live feed: a task that follows WatchEvents and prints each event above the prompt
//! (through reedline's external printer), keeps the names for completion fresh, and when the
//! daemon goes away says so once, reconnects with a backoff and resumes after the last event
//! it saw.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
        mpsc::{SyncSender, TrySendError},
    },
    time::{Duration, Instant},
};

use taskmaster::{
    endpoint::EndpointError,
    proto::{self, EventKind},
};

use crate::{
    connection::{Client, Connection},
    hosts::Host,
    render::{self, Palette},
};

/// The first pause before connecting again; it doubles up to [`LONGEST_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(100);
const LONGEST_PAUSE: Duration = Duration::from_secs(2);
/// A feed that lasted this long was a good connection: the pauses start again from the first.
const STEADY: Duration = Duration::from_secs(5);

/// What the shell and its feed share.
pub struct Shared {
    /// Program and instance names for completion, sorted. A std mutex: nothing awaits while
    /// holding it, and the completer must never wait on the network.
    names: Mutex<Vec<String>>,
    /// `events on|off`.
    pub events_on: AtomicBool,
    /// Set while `watch` runs in the shell (it prints the events itself), or `tail` or
    /// `maintail` (event lines would break into their output).
    pub watching: AtomicBool,
}

impl Default for Shared {
    fn default() -> Self {
        Shared {
            names: Mutex::new(Vec::new()),
            events_on: AtomicBool::new(true),
            watching: AtomicBool::new(false),
        }
    }
}

impl Shared {
    /// Replaces the names with those of `instances`: each program and each instance.
    pub fn set_names(&self, instances: &[proto::InstanceStatus]) {
        let mut names: Vec<String> = instances
            .iter()
            .flat_map(|instance| [instance.program.clone(), instance.name.clone()])
            .collect();
        names.sort();
        names.dedup();
        *self.names.lock().expect("names lock") = names;
    }

    pub fn names(&self) -> Vec<String> {
        self.names.lock().expect("names lock").clone()
    }

    fn knows(&self, name: &str) -> bool {
        self.names
            .lock()
            .expect("names lock")
            .binary_search_by(|known| known.as_str().cmp(name))
            .is_ok()
    }

    /// Whether events go above the prompt now.
    fn shows_events(&self) -> bool {
        self.events_on.load(Ordering::Relaxed) && !self.watching.load(Ordering::Relaxed)
    }
}

/// Asks the daemon for its instances and updates the names; silent on failure (the feed
/// reports connection problems).
pub async fn refresh_names(mut client: Client, shared: &Shared) {
    if let Ok(response) = client
        .status(proto::StatusRequest { names: Vec::new() })
        .await
    {
        shared.set_names(&response.into_inner().instances);
    }
}

/// Lines for the external printer. It holds a bounded queue that reedline empties while it
/// waits for keys; when the queue is full, lines are counted and the count is shown instead.
struct Lines {
    /// The external printer's end.
    sender: SyncSender<String>,
    /// Lines dropped since the last one that got through.
    dropped: u64,
}

impl Lines {
    fn print(&mut self, line: String) {
        if self.dropped > 0 {
            let notice = format!("({} lines not shown: too many at once)", self.dropped);
            match self.sender.try_send(notice) {
                Ok(()) => self.dropped = 0,
                Err(_) => {
                    self.dropped += 1;
                    return;
                }
            }
        }
        if let Err(TrySendError::Full(_)) = self.sender.try_send(line) {
            self.dropped += 1;
        }
    }
}

/// Where the feed stands with the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    /// The first try has not been made.
    Opening,
    /// Never reached; the shell's opening `status` said why.
    Unreached,
    /// Lost after being up; that was said.
    Down,
}

/// Identifies one run of a daemon: its sequence numbers mean nothing to another.
#[derive(Debug, Clone, PartialEq)]
struct DaemonRun {
    /// The daemon's pid.
    pid: u32,
    /// When it started: tells apart two daemons that had the same pid.
    started_at: Option<prost_types::Timestamp>,
}

/// Follows the events of the daemon `host` until the shell exits. `ready` is told once
/// the first try is over (subscribed, or the daemon not reached), so that the shell can show
/// its prompt knowing that nothing from then on is missed.
pub async fn follow(
    host: Host,
    sender: SyncSender<String>,
    shared: Arc<Shared>,
    palette: Palette,
    ready: tokio::sync::oneshot::Sender<()>,
) {
    let mut ready = Some(ready);
    let mut first_try_over = || {
        if let Some(ready) = ready.take() {
            let _ = ready.send(());
        }
    };
    let mut lines = Lines { sender, dropped: 0 };
    let target = host.target.clone();
    let mut connection = Connection::new(host);
    let mut link = Link::Opening;
    let mut last_seq: Option<u64> = None;
    let mut last_run: Option<DaemonRun> = None;
    let mut pause = FIRST_PAUSE;
    loop {
        let (mut client, status) = match connect(&mut connection).await {
            Ok(connected) => connected,
            // Whatever the reason, the shell's opening `status` or the loss was said.
            Err(_unreached) => {
                if link == Link::Opening {
                    link = Link::Unreached;
                }
                first_try_over();
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(LONGEST_PAUSE);
                continue;
            }
        };
        shared.set_names(&status.instances);
        let run = status.daemon.map(|daemon| DaemonRun {
            pid: daemon.pid,
            started_at: daemon.started_at,
        });
        let since = match link {
            // Opened on a running daemon: only what happens from now on.
            Link::Opening => None,
            // The same daemon: resume after the last event seen.
            Link::Down if run == last_run => last_seq,
            // A daemon that started while we were away: all it has kept is news.
            _ => Some(0),
        };
        if run != last_run {
            last_seq = None;
        }
        // The daemon's run is told apart above, by its pid and start time.
        let request = proto::WatchEventsRequest {
            names: Vec::new(),
            since,
            run: None,
        };
        let watched = client.watch_events(request).await;
        first_try_over();
        let mut events = match watched {
            Ok(response) => response.into_inner(),
            Err(_) => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(LONGEST_PAUSE);
                continue;
            }
        };
        match link {
            Link::Unreached => lines.print(format!("connected to taskmasterd at {target}")),
            Link::Down => lines.print(format!("reconnected to taskmasterd at {target}")),
            Link::Opening => {}
        }
        last_run = run;
        let subscribed_at = Instant::now();
        let mut daemon_stopping = false;
        let reason = loop {
            match events.message().await {
                Ok(Some(event)) => {
                    last_seq = Some(event.seq).filter(|seq| *seq != 0).or(last_seq);
                    daemon_stopping |= event.kind() == EventKind::DaemonStopping;
                    let unknown = !event.instance.is_empty() && !shared.knows(&event.instance);
                    if unknown || event.kind() == EventKind::ConfigReloaded {
                        refresh_names(client.clone(), &shared).await;
                    }
                    if shared.shows_events() {
                        lines.print(render::event_line(&event, &chrono::Local, palette));
                    }
                }
                Ok(None) if daemon_stopping => break "taskmasterd stopped".to_string(),
                Ok(None) => break "the connection was closed".to_string(),
                Err(status) => break status.message().to_string(),
            }
        };
        lines.print(format!(
            "lost connection to taskmasterd at {target}: {reason}; reconnecting when it is back"
        ));
        link = Link::Down;
        if subscribed_at.elapsed() >= STEADY {
            pause = FIRST_PAUSE;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(LONGEST_PAUSE);
    }
}

/// Why the feed could not (re)connect; it waits and tries again.
#[derive(Debug, thiserror::Error)]
enum Unreached {
    /// No connection to the daemon.
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    /// Connected, but the daemon's status could not be had.
    #[error("{}", .0.message())]
    Status(#[from] tonic::Status),
}

/// A fresh connection, and the daemon's status through it.
async fn connect(
    connection: &mut Connection,
) -> Result<(Client, proto::StatusResponse), Unreached> {
    // The last connection failed or is failing: never reuse it.
    connection.forget();
    let mut client = connection.client().await?;
    let status = client
        .status(proto::StatusRequest { names: Vec::new() })
        .await?;
    Ok((client, status.into_inner()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(name: &str, program: &str) -> proto::InstanceStatus {
        proto::InstanceStatus {
            name: name.into(),
            program: program.into(),
            ..Default::default()
        }
    }

    #[test]
    fn names_hold_programs_and_instances_once() {
        let shared = Shared::default();
        shared.set_names(&[
            instance("web:1", "web"),
            instance("web:0", "web"),
            instance("db", "db"),
        ]);
        assert_eq!(shared.names(), vec!["db", "web", "web:0", "web:1"]);
        assert!(shared.knows("web:1"));
        assert!(!shared.knows("api"));
    }

    #[test]
    fn a_full_printer_counts_what_it_dropped() {
        let (sender, receiver) = std::sync::mpsc::sync_channel(2);
        let mut lines = Lines { sender, dropped: 0 };
        for number in 0..5 {
            lines.print(format!("event {number}"));
        }
        assert_eq!(receiver.try_recv().unwrap(), "event 0");
        assert_eq!(receiver.try_recv().unwrap(), "event 1");
        lines.print("event 5".into());
        assert_eq!(
            receiver.try_recv().unwrap(),
            "(3 lines not shown: too many at once)"
        );
        assert_eq!(receiver.try_recv().unwrap(), "event 5");
    }
}
