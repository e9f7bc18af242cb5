//! One sink at work: a bounded queue that the dispatcher offers alerts to without waiting, and
//! the task that delivers them in order, each attempt bounded by the sink's timeout and retried
//! with a doubling pause; what still fails, or finds the queue full, is counted and logged at
//! a bounded rate. An email sink with a digest interval sends what came in each interval as
//! one mail.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{OnceCell, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::alert::{Alert, Origin};
use super::{email, syslog, webhook};
use crate::config::alerts::{SinkConfig, SinkKind};

/// How many alerts wait for a sink at most; more are dropped and counted.
pub const QUEUE: usize = 256;

/// How many alerts one digest mail lists at most; it counts the others.
pub const MAX_BATCH: usize = 200;

/// The most a retry waits.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// A sink's failures are logged at most this often (each time with the count so far).
const LOG_EVERY: Duration = Duration::from_secs(10);

/// What a sink has done since it was made, for `alerts test`.
#[derive(Debug, Default)]
pub struct Counters {
    pub delivered: AtomicU64,
    /// Alerts given up on after every retry.
    pub failures: AtomicU64,
    /// Alerts that found the queue full.
    pub dropped: AtomicU64,
}

/// A sink as the dispatcher holds it.
pub struct Sink {
    pub name: Arc<str>,
    pub config: SinkConfig,
    /// Its queue; dropped to let the task deliver what is in it and end.
    queue: mpsc::Sender<Arc<Alert>>,
    pub counters: Arc<Counters>,
    /// How it delivers, made once on a blocking thread (it may read certificates).
    deliverer: Arc<Lazy>,
    origin: Origin,
    /// Logs its dropped alerts at a bounded rate.
    drops: LogLimit,
}

/// A deliverer, made when first needed; the error says why it cannot be made.
type Lazy = OnceCell<Result<Arc<Deliverer>, String>>;

impl Sink {
    /// Starts the task of sink `name`; its handle ends once the sink is dropped and its queue
    /// is delivered.
    pub fn start(name: &str, config: SinkConfig, origin: &Origin) -> (Sink, JoinHandle<()>) {
        let (queue, alerts) = mpsc::channel(QUEUE);
        let sink = Sink {
            name: Arc::from(name),
            config: config.clone(),
            queue,
            counters: Arc::default(),
            deliverer: Arc::new(OnceCell::new()),
            origin: origin.clone(),
            drops: LogLimit::default(),
        };
        let worker = Worker {
            name: sink.name.clone(),
            config,
            origin: origin.clone(),
            alerts,
            counters: sink.counters.clone(),
            deliverer: sink.deliverer.clone(),
            failures: LogLimit::default(),
        };
        (sink, tokio::spawn(worker.run()))
    }

    /// Queues `alert` without waiting; a full queue drops it (counted, logged at a bounded
    /// rate).
    pub fn offer(&mut self, alert: Arc<Alert>) {
        if self.queue.try_send(alert).is_err() {
            let dropped = self.counters.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            let name = &self.name;
            self.drops.log(|| {
                tracing::warn!(
                    "alerts: sink {name} cannot keep up: {dropped} alerts dropped so far (its \
                     queue holds {QUEUE})"
                )
            });
        }
    }

    /// Delivers `alert` once, beside the queue (a test: what the sink can do now, not after
    /// what waits).
    pub fn test(&self, alert: Arc<Alert>) -> impl Future<Output = Result<(), String>> + use<> {
        let (cell, config) = (self.deliverer.clone(), self.config.clone());
        let origin = self.origin.clone();
        async move {
            let deliverer = deliverer_of(&cell, &config, &origin).await?;
            attempt(&deliverer, &config, &[alert]).await
        }
    }
}

/// The deliverer of `cell`, made on a blocking thread the first time.
async fn deliverer_of(
    cell: &Lazy,
    config: &SinkConfig,
    origin: &Origin,
) -> Result<Arc<Deliverer>, String> {
    cell.get_or_init(|| {
        let (config, origin) = (config.clone(), origin.clone());
        async move {
            tokio::task::spawn_blocking(move || Deliverer::new(&config, &origin).map(Arc::new))
                .await
                .unwrap_or_else(|error| Err(format!("setting up the sink failed: {error}")))
        }
    })
    .await
    .clone()
}

/// One attempt at delivering `batch`, within the sink's timeout.
async fn attempt(
    deliverer: &Deliverer,
    config: &SinkConfig,
    batch: &[Arc<Alert>],
) -> Result<(), String> {
    match tokio::time::timeout(config.timeout, deliverer.deliver(batch)).await {
        Ok(outcome) => outcome,
        Err(_) => Err(format!(
            "no answer within {}",
            humantime::format_duration(config.timeout)
        )),
    }
}

/// The task of one sink.
struct Worker {
    name: Arc<str>,
    config: SinkConfig,
    origin: Origin,
    alerts: mpsc::Receiver<Arc<Alert>>,
    counters: Arc<Counters>,
    deliverer: Arc<Lazy>,
    /// Logs failed deliveries at a bounded rate.
    failures: LogLimit,
}

impl Worker {
    /// Delivers what comes until the queue is closed and empty.
    async fn run(mut self) {
        let digest = match &self.config.kind {
            SinkKind::Email(email) => email.digest,
            _ => None,
        };
        while let Some(first) = self.alerts.recv().await {
            let mut batch = vec![first];
            if let Some(interval) = digest {
                self.collect(&mut batch, Instant::now() + interval).await;
            }
            self.deliver(&batch).await;
        }
    }

    /// Adds to `batch` what comes until `until` (or the queue closes): a digest's alerts, at
    /// most [`MAX_BATCH`] (the others are dropped and counted).
    async fn collect(&mut self, batch: &mut Vec<Arc<Alert>>, until: Instant) {
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(until) => return,
                next = self.alerts.recv() => match next {
                    Some(alert) if batch.len() < MAX_BATCH => batch.push(alert),
                    Some(_) => {
                        let dropped = self.counters.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                        let name = &self.name;
                        self.failures.log(|| tracing::warn!(
                            "alerts: sink {name}: a digest holds {MAX_BATCH} alerts at most; \
                             {dropped} alerts dropped so far"
                        ));
                    }
                    None => return,
                },
            }
        }
    }

    /// Delivers `batch`, retrying as the sink says; what fails every time is counted.
    async fn deliver(&mut self, batch: &[Arc<Alert>]) {
        let deliverer = match deliverer_of(&self.deliverer, &self.config, &self.origin).await {
            Ok(deliverer) => deliverer,
            Err(error) => return self.failed(batch.len(), &error),
        };
        let mut pause = self.config.backoff;
        let mut tries = 0;
        loop {
            tries += 1;
            match attempt(&deliverer, &self.config, batch).await {
                Ok(()) => {
                    let delivered = batch.len() as u64;
                    self.counters
                        .delivered
                        .fetch_add(delivered, Ordering::Relaxed);
                    return;
                }
                Err(error) if tries > self.config.retries => {
                    let error = format!("{error} (tried {tries} times)");
                    return self.failed(batch.len(), &error);
                }
                Err(_) => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    fn failed(&mut self, alerts: usize, error: &str) {
        let failures = self
            .counters
            .failures
            .fetch_add(alerts as u64, Ordering::Relaxed);
        let failures = failures + alerts as u64;
        let name = &self.name;
        self.failures.log(|| {
            tracing::warn!(
                "alerts: sink {name} could not deliver: {error}; {failures} alerts lost so far"
            )
        });
    }
}

/// Lets a message through at most every [`LOG_EVERY`].
#[derive(Default)]
struct LogLimit {
    last: Option<Instant>,
}

impl LogLimit {
    fn log(&mut self, log: impl FnOnce()) {
        let now = Instant::now();
        if self.last.is_none_or(|last| now >= last + LOG_EVERY) {
            self.last = Some(now);
            log();
        }
    }
}

/// How a sink delivers.
pub enum Deliverer {
    Syslog(syslog::Syslog),
    Webhook(webhook::Webhook),
    Email(email::Email),
}

impl Deliverer {
    /// Made on a blocking thread: it may read certificate files.
    fn new(config: &SinkConfig, origin: &Origin) -> Result<Deliverer, String> {
        Ok(match &config.kind {
            SinkKind::Syslog(syslog) => Deliverer::Syslog(syslog::Syslog::new(syslog, origin)),
            SinkKind::Webhook(webhook) => {
                Deliverer::Webhook(webhook::Webhook::new(webhook, origin)?)
            }
            SinkKind::Email(email) => {
                Deliverer::Email(email::Email::new(email, config.timeout, origin)?)
            }
        })
    }

    /// Delivers `batch`: each alert (a mail's digest: all in one).
    async fn deliver(&self, batch: &[Arc<Alert>]) -> Result<(), String> {
        match self {
            Deliverer::Syslog(syslog) => {
                for alert in batch {
                    syslog.send(alert).await?;
                }
                Ok(())
            }
            Deliverer::Webhook(webhook) => {
                for alert in batch {
                    webhook.post(alert).await?;
                }
                Ok(())
            }
            Deliverer::Email(email) => email.send(batch).await,
        }
    }
}
