//! What an alert is (an event a rule matched, a digest of those its rate limit held back, or
//! a test) and its forms: one summary line, a mail, a webhook's JSON body, an RFC 5424
//! syslog message.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;
use std::time::SystemTime;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;

use crate::config::alerts::{AlertEvent, Severity};
use crate::supervisor::event::Record;

/// Who sends the alerts: the same for every alert of a daemon.
#[derive(Debug, Clone)]
pub struct Origin {
    /// The machine's host name.
    pub host: Arc<str>,
    /// The daemon's pid.
    pub pid: u32,
    /// The daemon's run (as its events carry it).
    pub run: u64,
}

/// One alert, as each sink is given it.
#[derive(Debug, Clone)]
pub struct Alert {
    /// The rule that raised it.
    pub rule: Arc<str>,
    pub severity: Severity,
    /// When it was raised.
    pub time: SystemTime,
    pub body: Body,
}

#[derive(Debug, Clone)]
pub enum Body {
    /// An event the rule matched, as what it matched.
    Event {
        matched: AlertEvent,
        event: Arc<Record>,
    },
    /// The events the rule's rate limit held back in one period.
    Digest(Digest),
    /// `taskctl alerts test RULE`, asked by this caller.
    Test { by: String },
}

/// How many instances a digest names; the others are counted together.
const NAMED_INSTANCES: usize = 20;

/// Events held back by a rate limit: how many, when, of what kind and of which instances.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Digest {
    pub count: u64,
    /// The first and the last held back.
    pub first: Option<SystemTime>,
    pub last: Option<SystemTime>,
    /// How many of each kind.
    pub by_event: BTreeMap<AlertEvent, u64>,
    /// How many of each instance ("" for the daemon's own), at most [`NAMED_INSTANCES`].
    pub instances: BTreeMap<String, u64>,
    /// How many were of instances beyond those named.
    pub others: u64,
    /// The gravest severity held back.
    pub severity: Option<Severity>,
}

impl Digest {
    /// Counts `event`, matched as `matched` with `severity`.
    pub fn add(&mut self, matched: AlertEvent, severity: Severity, event: &Record) {
        let time = event.time.unwrap_or_else(SystemTime::now);
        self.count += 1;
        self.first.get_or_insert(time);
        self.last = Some(time);
        *self.by_event.entry(matched).or_default() += 1;
        let subject = subject(event);
        let room = self.instances.len() < NAMED_INSTANCES;
        match self.instances.get_mut(subject) {
            Some(count) => *count += 1,
            None if room => {
                self.instances.insert(subject.to_string(), 1);
            }
            None => self.others += 1,
        }
        self.severity = self.severity.max(Some(severity));
    }
}

/// Who an event is about: its instance, or `taskmasterd` for the daemon's own.
fn subject(event: &Record) -> &str {
    if event.instance.is_empty() {
        "taskmasterd"
    } else {
        &event.instance
    }
}

/// RFC 3339 in UTC with microseconds, as syslog and JSON carry times.
fn rfc3339(time: SystemTime) -> String {
    DateTime::<Utc>::from(time).to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// What happened, in words: "exited unexpectedly", "gave up (FATAL)".
fn what(matched: AlertEvent) -> &'static str {
    match matched {
        AlertEvent::UnexpectedExit => "exited unexpectedly",
        AlertEvent::Backoff => "failed to start (BACKOFF)",
        AlertEvent::Fatal => "gave up (FATAL)",
        AlertEvent::ConfigRejected => "config rejected",
        AlertEvent::DaemonStart => "daemon started",
        AlertEvent::DaemonStop => "daemon stopping",
    }
}

/// The most of a message one line carries.
const MAX_LINE: usize = 1000;

/// `text` on one line (its lines joined by "; "), cut to [`MAX_LINE`] bytes at a character.
fn one_line(text: &str) -> String {
    let mut line = text.trim_end().replace('\n', "; ");
    if line.len() > MAX_LINE {
        let mut cut = MAX_LINE;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
        line.push('…');
    }
    line
}

impl Alert {
    /// What raised it: the event's name in the config (`unexpected_exit`), `digest` or `test`.
    pub fn kind(&self) -> &'static str {
        match &self.body {
            Body::Event { matched, .. } => matched.name(),
            Body::Digest(_) => "digest",
            Body::Test { .. } => "test",
        }
    }

    /// How many events it stands for: 1, or a digest's count.
    pub fn count(&self) -> u64 {
        match &self.body {
            Body::Digest(digest) => digest.count,
            _ => 1,
        }
    }

    /// One line: "web:0 exited unexpectedly: exit status 1 (unexpected) | last stderr: boom".
    pub fn summary(&self) -> String {
        match &self.body {
            Body::Event { matched, event } => {
                let mut line = format!("{} {}", subject(event), what(*matched));
                if !event.message.is_empty() {
                    let _ = write!(line, ": {}", one_line(&event.message));
                }
                if let Some(last) = (event.last_stderr.as_deref())
                    .and_then(|lines| lines.lines().rfind(|line| !line.trim().is_empty()))
                {
                    let _ = write!(line, " | last stderr: {}", one_line(last));
                }
                line
            }
            Body::Digest(digest) => {
                let kinds: Vec<String> = (digest.by_event.iter())
                    .map(|(event, count)| format!("{count} {}", event.name()))
                    .collect();
                let mut instances: Vec<String> = (digest.instances.iter())
                    .map(|(name, count)| format!("{name} ({count})"))
                    .collect();
                if digest.others > 0 {
                    instances.push(format!("{} more", digest.others));
                }
                format!(
                    "{} more alerts of rule {} held back by its rate limit: {}; of {}",
                    digest.count,
                    self.rule,
                    kinds.join(", "),
                    instances.join(", ")
                )
            }
            Body::Test { by } => {
                format!("test alert of rule {}, asked by {by}", self.rule)
            }
        }
    }

    /// A mail's subject.
    pub fn subject(&self, origin: &Origin) -> String {
        let what = match &self.body {
            Body::Event { matched, event } => format!("{} {}", subject(event), what(*matched)),
            Body::Digest(digest) => format!("{} more alerts held back", digest.count),
            Body::Test { .. } => "test alert".to_string(),
        };
        format!("[taskmaster {}] {what} (rule {})", origin.host, self.rule)
    }

    /// A mail's text: the summary, then each field on a line of its own.
    pub fn text(&self, origin: &Origin) -> String {
        let mut text = format!("{}\n\n", self.summary());
        let mut field = |name: &str, value: &dyn std::fmt::Display| {
            let _ = writeln!(text, "{name:<12} {value}");
        };
        field("host", &origin.host);
        field("rule", &self.rule);
        field("severity", &self.severity.name());
        field("alert", &self.kind());
        field("time", &rfc3339(self.time));
        match &self.body {
            Body::Event { event, .. } => {
                field("event", &event.kind.name());
                field("seq", &event.seq);
                if let Some(time) = event.time {
                    field("event time", &rfc3339(time));
                }
                if !event.instance.is_empty() {
                    field("instance", &event.instance);
                    field("program", &event.program());
                }
                if event.pid != 0 {
                    field("pid", &event.pid);
                }
                if let Some(exit) = event.exit {
                    field("exit", &exit.describe());
                }
                if let Some(actor) = &event.actor {
                    field("by", actor);
                }
                if !event.message.is_empty() {
                    let _ = write!(text, "\nmessage:\n{}\n", event.message.trim_end());
                }
                if let Some(lines) = &event.last_stderr {
                    let _ = write!(text, "\nlast stderr:\n{}\n", lines.trim_end());
                }
            }
            Body::Digest(digest) => {
                field("count", &digest.count);
                if let (Some(first), Some(last)) = (digest.first, digest.last) {
                    field(
                        "between",
                        &format!("{} and {}", rfc3339(first), rfc3339(last)),
                    );
                }
            }
            Body::Test { by } => field("by", by),
        }
        let _ = write!(
            text,
            "\ntaskmasterd pid {}, run {}\n",
            origin.pid, origin.run
        );
        text
    }

    /// A webhook's body: the alert, the host, and the event's fields as `watch --json` has
    /// them (or the digest's).
    pub fn json(&self, origin: &Origin) -> serde_json::Value {
        let mut body = json!({
            "host": &*origin.host,
            "rule": &*self.rule,
            "severity": self.severity.name(),
            "alert": self.kind(),
            "count": self.count(),
            "time": rfc3339(self.time),
            "summary": self.summary(),
            "daemon_pid": origin.pid,
            "run": origin.run,
        });
        match &self.body {
            Body::Event { event, .. } => {
                body["event"] = event_json(event, origin.run);
            }
            Body::Digest(digest) => {
                let by_event: serde_json::Map<String, serde_json::Value> = (digest.by_event.iter())
                    .map(|(event, count)| (event.name().to_string(), json!(count)))
                    .collect();
                body["digest"] = json!({
                    "first": digest.first.map(rfc3339),
                    "last": digest.last.map(rfc3339),
                    "by_event": by_event,
                    "instances": digest.instances,
                    "other_instances": digest.others,
                });
            }
            Body::Test { by } => body["by"] = json!(by),
        }
        body
    }

    /// An RFC 5424 message with `facility`: `<PRI>1 TIME HOST taskmasterd PID MSGID [SD] MSG`,
    /// the structured data naming the alert and the event's fields (SD-ID
    /// `taskmaster@32473`, the enterprise number RFC 5612 reserves for examples).
    pub fn syslog(&self, origin: &Origin, facility: u8) -> Vec<u8> {
        let priority = u32::from(facility) * 8 + u32::from(self.severity.syslog_code());
        let msgid = match &self.body {
            Body::Event { event, .. } => event.kind.name().to_ascii_uppercase().replace(' ', "_"),
            Body::Digest(_) => "DIGEST".to_string(),
            Body::Test { .. } => "TEST".to_string(),
        };
        let mut data = String::from("[taskmaster@32473");
        let mut param = |name: &str, value: &dyn std::fmt::Display| {
            let value = value.to_string();
            let _ = write!(data, " {name}=\"{}\"", sd_escape(&value));
        };
        param("rule", &self.rule);
        param("alert", &self.kind());
        param("severity", &self.severity.name());
        param("count", &self.count());
        param("run", &origin.run);
        if let Body::Event { event, .. } = &self.body {
            param("seq", &event.seq);
            if !event.instance.is_empty() {
                param("instance", &event.instance);
                param("program", &event.program());
            }
            if event.pid != 0 {
                param("pid", &event.pid);
            }
            if let Some(code) = event.exit.and_then(|exit| exit.code()) {
                param("exit_code", &code);
            }
            if let Some(signal) = event.exit.and_then(|exit| exit.signal()) {
                param("signal", &signal);
            }
            if let Some(actor) = &event.actor {
                param("actor", actor);
            }
        }
        data.push(']');
        let mut message = format!(
            "<{priority}>1 {} {} taskmasterd {} {msgid} {data} {}",
            rfc3339(self.time),
            syslog_field(&origin.host, 255),
            origin.pid,
            self.summary()
        );
        // RFC 5424 asks receivers for 2048 bytes at least, and local sockets take far more.
        let mut cut = MAX_SYSLOG.min(message.len());
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.into_bytes()
    }
}

/// The most a syslog message takes.
const MAX_SYSLOG: usize = 8192;

/// A header field of a syslog message: printable ASCII without blanks, at most `max`; `-`
/// when there is nothing of that.
fn syslog_field(text: &str, max: usize) -> String {
    let field: String = text
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if field.is_empty() {
        "-".to_string()
    } else {
        field
    }
}

/// A structured-data parameter value: `"`, `\` and `]` escaped (RFC 5424, 6.3.3).
fn sd_escape(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for character in value.chars() {
        if matches!(character, '"' | '\\' | ']') {
            escaped.push('\\');
        }
        escaped.push(character);
    }
    escaped
}

/// An event as `watch --json` writes one (kind names as the API's).
fn event_json(event: &Record, run: u64) -> serde_json::Value {
    json!({
        "seq": event.seq,
        "run": run,
        "time": event.time.map(rfc3339),
        "kind": event.kind.name().to_ascii_uppercase().replace(' ', "_"),
        "instance": (!event.instance.is_empty()).then(|| event.instance.to_string()),
        "program": (!event.instance.is_empty()).then(|| event.program().to_string()),
        "old_state": event.old_state.map(|state| state.name()),
        "new_state": event.new_state.map(|state| state.name()),
        "pid": (event.pid != 0).then_some(event.pid),
        "exit_code": event.exit.and_then(|exit| exit.code()),
        "signal": event.exit.and_then(|exit| exit.signal()),
        "expected": event.expected,
        "message": &*event.message,
        "last_stderr": event.last_stderr.as_deref(),
        "actor": event.actor.as_ref().map(ToString::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::event::EventKind;
    use crate::supervisor::process::ExitInfo;
    use crate::supervisor::state::State;

    fn origin() -> Origin {
        Origin {
            host: "box".into(),
            pid: 42,
            run: 7,
        }
    }

    fn exit_alert() -> Alert {
        let event = Record {
            seq: 12,
            time: Some(SystemTime::UNIX_EPOCH),
            instance: "web:0".into(),
            old_state: Some(State::Running),
            new_state: Some(State::Exited),
            pid: 99,
            exit: Some(ExitInfo::Code(3)),
            message: "exit status 3 (unexpected)".into(),
            last_stderr: Some("first\nboom \"x\" ]\n".into()),
            ..Record::new(EventKind::Exited)
        };
        Alert {
            rule: "crashes".into(),
            severity: Severity::Error,
            time: SystemTime::UNIX_EPOCH,
            body: Body::Event {
                matched: AlertEvent::UnexpectedExit,
                event: Arc::new(event),
            },
        }
    }

    #[test]
    fn a_syslog_message_is_rfc_5424_with_the_events_fields() {
        let message = String::from_utf8(exit_alert().syslog(&origin(), 16)).unwrap();
        // local0 (16) * 8 + err (3).
        assert_eq!(
            message,
            "<131>1 1970-01-01T00:00:00.000000Z box taskmasterd 42 EXITED [taskmaster@32473 \
             rule=\"crashes\" alert=\"unexpected_exit\" severity=\"error\" count=\"1\" run=\"7\" \
             seq=\"12\" instance=\"web:0\" program=\"web\" pid=\"99\" exit_code=\"3\"] web:0 \
             exited unexpectedly: exit status 3 (unexpected) | last stderr: boom \"x\" ]"
        );
        assert_eq!(sd_escape("a\"b\\c]"), "a\\\"b\\\\c\\]");
    }

    #[test]
    fn the_json_body_has_the_host_the_rule_and_the_events_fields() {
        let body = exit_alert().json(&origin());
        assert_eq!(body["host"], "box");
        assert_eq!(body["alert"], "unexpected_exit");
        assert_eq!(body["event"]["kind"], "EXITED");
        assert_eq!(body["event"]["instance"], "web:0");
        assert_eq!(body["event"]["exit_code"], 3);
        assert_eq!(body["event"]["new_state"], "EXITED");
        assert_eq!(body["event"]["actor"], serde_json::Value::Null);
    }

    #[test]
    fn the_event_kind_names_are_the_apis() {
        for kind in EventKind::ALL {
            let wire = crate::server::wire::event_kind(kind);
            assert_eq!(
                format!(
                    "EVENT_KIND_{}",
                    kind.name().to_ascii_uppercase().replace(' ', "_")
                ),
                wire.as_str_name()
            );
        }
    }

    #[test]
    fn a_digest_counts_every_event_and_names_a_bounded_number_of_instances() {
        let mut digest = Digest::default();
        for index in 0..1000 {
            let event = Record {
                instance: format!("web:{}", index % 50).into(),
                ..Record::new(EventKind::Exited)
            };
            digest.add(AlertEvent::UnexpectedExit, Severity::Error, &event);
        }
        assert_eq!(digest.count, 1000);
        assert_eq!(digest.instances.len(), NAMED_INSTANCES);
        let named: u64 = digest.instances.values().sum();
        assert_eq!(named + digest.others, 1000);
        let alert = Alert {
            rule: "r".into(),
            severity: Severity::Error,
            time: SystemTime::now(),
            body: Body::Digest(digest),
        };
        assert!(
            alert
                .summary()
                .starts_with("1000 more alerts of rule r held back")
        );
        assert_eq!(alert.count(), 1000);
    }
}
