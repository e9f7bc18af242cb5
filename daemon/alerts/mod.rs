//! Alerts: the config's rules (`alerts.rules`) raise an alert for each event they match, and
//! their sinks (`alerts.sinks`) deliver it to syslog, a webhook or a mailbox. Alerts never
//! hold up supervision: one dispatcher task follows the supervisor's events as a watcher does
//! (falling behind is counted, never waited for), matches them, applies each rule's rate
//! limit (what it holds back goes out as one digest with the count), and offers each alert to
//! its sinks' bounded queues without waiting; each sink delivers from its own task.
//!
//! # Layout
//! - this file: [`Alerts`], the handle (reload, test), and the dispatcher.
//! - [`rules`]: matching events and the rate limit with its digest (pure).
//! - [`alert`]: an alert and its forms (summary, mail, JSON, RFC 5424).
//! - `sink`: a sink's queue and task: retries, counting and logging failures.
//! - `syslog`, `webhook`, `email`: one delivery each.

pub mod alert;
mod email;
pub mod rules;
mod sink;
mod syslog;
mod webhook;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_stream::StreamExt;

use crate::config::alerts::AlertSettings;
use crate::supervisor::Handle;
use crate::supervisor::event::{Delivery, Record};
use alert::{Alert, Origin};
use rules::Rule;
use sink::Sink;

/// How long the daemon's last alerts (its stop) may take to go out once every program is
/// stopped.
pub const FINAL_GRACE: Duration = Duration::from_secs(3);

/// Events the dispatcher missed are logged at most this often.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Why an alerts request failed. The gRPC layer maps each to a status code.
#[derive(Debug, thiserror::Error)]
pub enum AlertsError {
    #[error("no alert rule `{rule}`; {}", known_rules(known))]
    UnknownRule { rule: String, known: Vec<String> },
    #[error("taskmasterd is shutting down")]
    ShuttingDown,
}

fn known_rules(known: &[String]) -> String {
    match known.is_empty() {
        true => "the config has none (`alerts.rules`)".to_string(),
        false => format!("the rules are {}", known.join(", ")),
    }
}

/// What `alerts test` found: how each sink of the rule took the test alert.
#[derive(Debug)]
pub struct TestReport {
    pub sinks: Vec<SinkReport>,
    /// Events the dispatcher missed since the daemon started.
    pub missed_events: u64,
}

#[derive(Debug)]
pub struct SinkReport {
    pub name: String,
    /// Delivered, or why not.
    pub outcome: Result<(), String>,
    /// Alerts it gave up on, and alerts dropped for a full queue, since it was made.
    pub failures: u64,
    pub dropped: u64,
}

/// What the handle asks of the dispatcher.
enum Control {
    /// The alerts section of a config a reload applies.
    Reload(Box<AlertSettings>),
    Test {
        rule: String,
        by: String,
        reply: oneshot::Sender<Result<TestReport, AlertsError>>,
    },
}

/// A cheap, cloneable way to talk to the dispatcher.
#[derive(Clone)]
pub struct Alerts {
    control: mpsc::UnboundedSender<Control>,
}

/// The dispatcher's end of [`Alerts`], until [`start`] gives it to the dispatcher.
pub struct Inbox(mpsc::UnboundedReceiver<Control>);

impl Alerts {
    /// A handle, and the inbox [`start`] takes (the handle exists before the supervisor, whose
    /// reloads it is told of).
    pub fn new() -> (Alerts, Inbox) {
        let (control, inbox) = mpsc::unbounded_channel();
        (Alerts { control }, Inbox(inbox))
    }

    /// Puts `settings` in force (a reload): without waiting, and without losing what is queued.
    pub fn reload(&self, settings: &AlertSettings) {
        let _ = self
            .control
            .send(Control::Reload(Box::new(settings.clone())));
    }

    /// Sends a test alert of rule `rule`, asked by `by`, through each of its sinks once.
    pub async fn test(&self, rule: String, by: String) -> Result<TestReport, AlertsError> {
        let (reply, answer) = oneshot::channel();
        (self.control.send(Control::Test { rule, by, reply }))
            .map_err(|_| AlertsError::ShuttingDown)?;
        answer.await.map_err(|_| AlertsError::ShuttingDown)?
    }
}

/// Starts the dispatcher with `settings` on the events of `supervisor`, from the first one
/// kept (the daemon's start). It ends once the supervisor has ended, what its rules held back
/// is sent and every sink has delivered its queue (or given up).
pub fn start(inbox: Inbox, settings: &AlertSettings, supervisor: Handle) -> JoinHandle<()> {
    let origin = Origin {
        host: nix::unistd::gethostname()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "localhost".to_string())
            .into(),
        pid: std::process::id(),
        run: supervisor.run(),
    };
    let mut dispatcher = Dispatcher {
        origin,
        rules: Vec::new(),
        sinks: BTreeMap::new(),
        tasks: Vec::new(),
        missed: 0,
        missed_logged: None,
    };
    dispatcher.reload(settings.clone());
    tokio::spawn(dispatcher.run(supervisor, inbox.0))
}

struct Dispatcher {
    origin: Origin,
    /// The rules in force, by name.
    rules: Vec<Rule>,
    /// The sinks in force, by name.
    sinks: BTreeMap<String, Sink>,
    /// The task of every sink made, still delivering or not.
    tasks: Vec<JoinHandle<()>>,
    /// Events missed for falling behind.
    missed: u64,
    /// When missed events were last logged.
    missed_logged: Option<Instant>,
}

impl Dispatcher {
    async fn run(mut self, supervisor: Handle, mut control: mpsc::UnboundedReceiver<Control>) {
        // From the first event kept: the daemon's start is one. The handle is not kept: the
        // supervisor's end must not wait for it.
        let watch = supervisor.watch_events(Vec::new(), Some(0), None).await;
        drop(supervisor);
        let Ok(watch) = watch else {
            return self.finish().await;
        };
        let events = watch.into_stream();
        tokio::pin!(events);
        loop {
            let due = self.rules.iter().filter_map(Rule::due).min();
            tokio::select! {
                delivery = events.next() => match delivery {
                    Some(Delivery::Event(event)) => self.on_event(&event),
                    Some(Delivery::Missed(count)) => self.on_missed(count),
                    Some(Delivery::Restarted { .. }) => {}
                    // The supervisor has ended.
                    None => break,
                },
                Some(control) = control.recv() => match control {
                    Control::Reload(settings) => self.reload(*settings),
                    Control::Test { rule, by, reply } => self.test(&rule, by, reply),
                },
                () = sleep_until(due), if due.is_some() => self.send_due(Instant::now()),
            }
        }
        self.finish().await;
    }

    fn on_event(&mut self, event: &Arc<Record>) {
        let now = Instant::now();
        self.send_due(now);
        for rule in &mut self.rules {
            if let Some(alert) = rule.raise(event, now) {
                offer(&mut self.sinks, &rule.config.sinks, alert);
            }
        }
    }

    fn on_missed(&mut self, count: u64) {
        self.missed += count;
        let now = Instant::now();
        if self
            .missed_logged
            .is_none_or(|last| now >= last + LOG_EVERY)
        {
            self.missed_logged = Some(now);
            tracing::warn!(
                "alerts: the dispatcher fell behind the events and missed {} of them so far",
                self.missed
            );
        }
    }

    /// Sends the digests due at `now`.
    fn send_due(&mut self, now: Instant) {
        for rule in &mut self.rules {
            if let Some(digest) = rule.digest_due(now) {
                offer(&mut self.sinks, &rule.config.sinks, digest);
            }
        }
    }

    /// Puts `settings` in force. A sink whose config is unchanged is kept, queue and all; one
    /// changed or gone delivers what it holds with its old config, then ends. A rule unchanged
    /// keeps its rate limit; one changed or gone first sends what it held back.
    fn reload(&mut self, settings: AlertSettings) {
        let mut earlier: BTreeMap<Arc<str>, Rule> = (self.rules.drain(..))
            .map(|rule| (rule.name.clone(), rule))
            .collect();
        for (name, rule) in &mut earlier {
            if settings.rules.get(&**name) != Some(&rule.config)
                && let Some(digest) = rule.digest()
            {
                offer(&mut self.sinks, &rule.config.sinks, digest);
            }
        }
        let mut sinks = std::mem::take(&mut self.sinks);
        self.tasks.retain(|task| !task.is_finished());
        for (name, config) in settings.sinks {
            let sink = match sinks.remove(&name) {
                Some(sink) if sink.config == config => sink,
                _ => {
                    let (sink, task) = Sink::start(&name, config, &self.origin);
                    self.tasks.push(task);
                    sink
                }
            };
            self.sinks.insert(name, sink);
        }
        // What is left is gone: its tasks deliver their queues and end.
        drop(sinks);
        for (name, config) in settings.rules {
            let mut rule = Rule::new(&name, config);
            if let Some(before) = earlier.remove(name.as_str())
                && before.config == rule.config
            {
                rule.continue_from(before);
            }
            self.rules.push(rule);
        }
    }

    /// Sends a test alert of rule `name` through each of its sinks, beside their queues, and
    /// answers `reply` once each has taken it or failed.
    fn test(
        &mut self,
        name: &str,
        by: String,
        reply: oneshot::Sender<Result<TestReport, AlertsError>>,
    ) {
        let Some(rule) = self.rules.iter().find(|rule| &*rule.name == name) else {
            let known = self
                .rules
                .iter()
                .map(|rule| rule.name.to_string())
                .collect();
            let _ = reply.send(Err(AlertsError::UnknownRule {
                rule: name.to_string(),
                known,
            }));
            return;
        };
        let alert = Arc::new(rule.test(by));
        let tests: Vec<_> = (rule.config.sinks.iter())
            .filter_map(|name| self.sinks.get(name))
            .map(|sink| {
                let counters = sink.counters.clone();
                let name = sink.name.to_string();
                let delivery = sink.test(alert.clone());
                async move {
                    let outcome = delivery.await;
                    SinkReport {
                        name,
                        outcome,
                        failures: counters.failures.load(Ordering::Relaxed),
                        dropped: counters.dropped.load(Ordering::Relaxed),
                    }
                }
            })
            .collect();
        let missed_events = self.missed;
        tokio::spawn(async move {
            let sinks = futures_util::future::join_all(tests).await;
            let _ = reply.send(Ok(TestReport {
                sinks,
                missed_events,
            }));
        });
    }

    /// The supervisor has ended: what the rules held back goes out now, then each sink
    /// delivers its queue and ends.
    async fn finish(mut self) {
        for rule in &mut self.rules {
            if let Some(digest) = rule.digest() {
                offer(&mut self.sinks, &rule.config.sinks, digest);
            }
        }
        drop(std::mem::take(&mut self.sinks));
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Offers `alert` to each sink of `names` (a name the config checked, so every one is there).
fn offer(sinks: &mut BTreeMap<String, Sink>, names: &[String], alert: Alert) {
    let alert = Arc::new(alert);
    for name in names {
        if let Some(sink) = sinks.get_mut(name) {
            sink.offer(alert.clone());
        }
    }
}

/// Sleeps until `due`; never when there is none (the branch is then disabled).
async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}
