//! What a valid `alerts:` section is: rules that match events, the sinks they send to, and
//! the defaults of each setting. The keys a file may use and how each is read are the
//! checker's (`check/alerts.rs`); sending is [`crate::alerts`]'.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::schema::TokenSource;

/// The `alerts:` section: none of either when it is absent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AlertSettings {
    /// Where alerts go, by name (sorted).
    pub sinks: BTreeMap<String, SinkConfig>,
    /// What raises an alert, by name (sorted); each names sinks of `sinks`.
    pub rules: BTreeMap<String, RuleConfig>,
}

impl AlertSettings {
    /// The environment variables its secrets are read from (`token_env`, `password_env` and
    /// headers `{env: NAME}`), which the daemon takes out of its environment at start as it
    /// does token variables.
    pub fn secret_variables(&self) -> impl Iterator<Item = &str> {
        self.sinks
            .values()
            .flat_map(|sink| sink.secrets())
            .filter_map(|source| match source {
                TokenSource::Env(name) => Some(name.as_str()),
                TokenSource::File(_) => None,
            })
    }
}

/// One rule of `alerts.rules`: the events it matches and the sinks their alerts go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleConfig {
    /// The kinds of events it matches: sorted, without duplicates, never empty.
    pub events: Vec<AlertEvent>,
    /// The programs whose events it matches; empty: every program. Daemon events (config
    /// rejected, daemon start and stop) are of no program and always pass.
    pub programs: Vec<String>,
    /// The least severity an event must have to raise an alert.
    pub severity: Severity,
    /// Names of `alerts.sinks`, in the order written; never empty.
    pub sinks: Vec<String>,
    /// How many alerts it sends at most, and per how long; what is more is folded into a digest.
    pub rate_limit: RateLimit,
}

/// At most `max` alerts per `per`; the events beyond are counted and sent as one digest when the
/// period ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// 1..=10000.
    pub max: u32,
    /// From a second to a day.
    pub per: Duration,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            max: 10,
            per: Duration::from_secs(60),
        }
    }
}

/// What a rule can match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AlertEvent {
    /// An instance exited from RUNNING with a code not in `exitcodes` (or by a signal).
    UnexpectedExit,
    /// A start failed and another try is scheduled.
    Backoff,
    /// Every try failed: FATAL.
    Fatal,
    /// A reload was refused: the config has errors.
    ConfigRejected,
    DaemonStart,
    DaemonStop,
}

impl AlertEvent {
    pub const ALL: [AlertEvent; 6] = [
        AlertEvent::UnexpectedExit,
        AlertEvent::Backoff,
        AlertEvent::Fatal,
        AlertEvent::ConfigRejected,
        AlertEvent::DaemonStart,
        AlertEvent::DaemonStop,
    ];

    /// Its name in the config and in alerts: `unexpected_exit`, `fatal`, ...
    pub fn name(self) -> &'static str {
        match self {
            AlertEvent::UnexpectedExit => "unexpected_exit",
            AlertEvent::Backoff => "backoff",
            AlertEvent::Fatal => "fatal",
            AlertEvent::ConfigRejected => "config_rejected",
            AlertEvent::DaemonStart => "daemon_start",
            AlertEvent::DaemonStop => "daemon_stop",
        }
    }

    /// How grave it is.
    pub fn severity(self) -> Severity {
        match self {
            AlertEvent::UnexpectedExit | AlertEvent::ConfigRejected => Severity::Error,
            AlertEvent::Backoff => Severity::Warning,
            AlertEvent::Fatal => Severity::Critical,
            AlertEvent::DaemonStart | AlertEvent::DaemonStop => Severity::Notice,
        }
    }
}

/// How grave an alert is, from the least; syslog's severities of the same names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Info,
    Notice,
    Warning,
    Error,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 5] = [
        Severity::Info,
        Severity::Notice,
        Severity::Warning,
        Severity::Error,
        Severity::Critical,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Notice => "notice",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Critical => "critical",
        }
    }

    /// Its number in syslog (RFC 5424, 6.2.1): crit 2, err 3, warning 4, notice 5, info 6.
    pub fn syslog_code(self) -> u8 {
        match self {
            Severity::Critical => 2,
            Severity::Error => 3,
            Severity::Warning => 4,
            Severity::Notice => 5,
            Severity::Info => 6,
        }
    }
}

/// One sink of `alerts.sinks`: where alerts go, and how hard delivery is tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkConfig {
    pub kind: SinkKind,
    /// How long one attempt may take; at least 100 ms.
    pub timeout: Duration,
    /// Attempts after the first that failed, 0..=10.
    pub retries: u32,
    /// The pause before the first retry; each next one doubles it (at most a minute).
    pub backoff: Duration,
}

impl SinkConfig {
    /// The defaults for a sink of `kind`: 5 s per attempt, 3 retries 1 s, 2 s, 4 s apart.
    pub(super) fn of(kind: SinkKind) -> SinkConfig {
        SinkConfig {
            kind,
            timeout: Duration::from_secs(5),
            retries: 3,
            backoff: Duration::from_secs(1),
        }
    }

    /// Where its secrets come from.
    fn secrets(&self) -> Vec<&TokenSource> {
        match &self.kind {
            SinkKind::Syslog(_) => Vec::new(),
            SinkKind::Webhook(webhook) => (webhook.headers.iter())
                .filter_map(|header| match &header.value {
                    HeaderValue::Secret { source, .. } => Some(source),
                    HeaderValue::Plain(_) => None,
                })
                .collect(),
            SinkKind::Email(email) => email.password.iter().map(|(_, source)| source).collect(),
        }
    }

    /// `syslog`, `webhook` or `email`.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            SinkKind::Syslog(_) => "syslog",
            SinkKind::Webhook(_) => "webhook",
            SinkKind::Email(_) => "email",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkKind {
    Syslog(SyslogConfig),
    Webhook(WebhookConfig),
    Email(EmailConfig),
}

/// A local syslog daemon's datagram socket, spoken to in RFC 5424.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogConfig {
    /// Default `/dev/log`.
    pub path: PathBuf,
    /// 0..=23: kern 0, user 1, mail 2, daemon 3 (the default), ..., local0 16 ... local7 23.
    pub facility: u8,
}

/// The syslog facilities by name, with their numbers.
pub const FACILITIES: [(&str, u8); 20] = [
    ("kern", 0),
    ("user", 1),
    ("mail", 2),
    ("daemon", 3),
    ("auth", 4),
    ("syslog", 5),
    ("lpr", 6),
    ("news", 7),
    ("uucp", 8),
    ("cron", 9),
    ("authpriv", 10),
    ("ftp", 11),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

/// An HTTP or HTTPS endpoint that is POSTed a JSON body per alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    /// The URL as written (for messages).
    pub url: String,
    /// `https`.
    pub tls: bool,
    /// The host name or address (an IPv6 address without its brackets).
    pub host: String,
    pub port: u16,
    /// The path and query, at least `/`.
    pub path: String,
    /// Sent with every request, in the order written; `token_file`/`token_env` make an
    /// `Authorization: Bearer` header here.
    pub headers: Vec<Header>,
    /// For `https`: trust the CA certificates of this PEM file instead of the system's.
    pub ca: Option<PathBuf>,
}

/// A header of a webhook's requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// A valid header name, as written.
    pub name: String,
    pub value: HeaderValue,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderValue {
    /// Written in the config.
    Plain(String),
    /// Read from a file or an environment variable when the config was read; `prefix`
    /// (`Bearer `) comes before it.
    Secret {
        prefix: &'static str,
        secret: Credential,
        source: TokenSource,
    },
}

impl HeaderValue {
    /// The value as sent.
    pub fn text(&self) -> String {
        match self {
            HeaderValue::Plain(text) => text.clone(),
            HeaderValue::Secret { prefix, secret, .. } => format!("{prefix}{}", secret.expose()),
        }
    }
}

/// How an SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// TLS from the first byte (port 465).
    Tls,
    /// Plain text, then STARTTLS, which the server must offer (port 587).
    StartTls,
    /// Plain text throughout (port 25); no password may be sent.
    None,
}

/// An SMTP server that is sent a mail per alert, or a digest of them per interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailConfig {
    /// Its host name or address.
    pub server: String,
    /// Default 465 for `tls`, 587 for `starttls`, 25 for `none`.
    pub port: u16,
    /// Default `starttls`.
    pub security: SmtpSecurity,
    /// Who logs in, with `password`; both or neither.
    pub username: Option<String>,
    pub password: Option<(Credential, TokenSource)>,
    /// A mailbox (`Taskmaster <tm@example.com>` or `tm@example.com`), checked when read.
    pub from: String,
    /// At least one mailbox.
    pub to: Vec<String>,
    /// `None`: a mail per alert; else one mail per this interval with every alert of it.
    pub digest: Option<Duration>,
    /// Trust the CA certificates of this PEM file instead of the system's.
    pub ca: Option<PathBuf>,
}

/// A secret a sink sends (a webhook token, an SMTP password), read from a file or an
/// environment variable when the config was read; never printed (`Debug` shows nothing of it).
#[derive(Clone, PartialEq, Eq)]
pub struct Credential(Arc<str>);

impl Credential {
    pub(super) fn new(text: &str) -> Credential {
        Credential(Arc::from(text))
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credential(..)")
    }
}
