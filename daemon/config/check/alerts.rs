//! The `alerts:` section: its sinks (secrets read from a file or an environment variable
//! when the file is read, never from the config itself) and its rules (events, programs,
//! severity, sinks, rate limit), every problem reported at its key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_yaml::{Mapping, Value};

use super::{Checker, set, valid_program_name};
use crate::config::alerts::{
    AlertEvent, AlertSettings, Credential, EmailConfig, FACILITIES, Header, HeaderValue, RateLimit,
    RuleConfig, Severity, SinkConfig, SinkKind, SmtpSecurity, SyslogConfig, WebhookConfig,
};
use crate::config::positions::last;
use crate::config::schema::{ProgramConfig, TokenSource};
use crate::config::secret;
use crate::config::values::{count, describe, duration, expected, file_path, variable_name};

/// The keys of `alerts:`.
const ALERTS_KEYS: &[&str] = &["sinks", "rules"];

/// What is written about a secret that is never accepted in the config.
fn inline_secret(what: &str, file_key: &str, env_key: &str) -> String {
    format!(
        "a {what} is never written in the config (whoever can read this file would hold it): \
         keep it in a file (`{file_key}: PATH`, readable by the daemon's user only) or an \
         environment variable (`{env_key}: NAME`)"
    )
}

/// A sink as read so far; what it lacks is reported once every key is read.
#[derive(Default)]
struct SinkDraft {
    /// `type`.
    kind: Option<&'static str>,
    timeout: Option<Duration>,
    retries: Option<u32>,
    backoff: Option<Duration>,
    /// `path` (syslog).
    path: Option<PathBuf>,
    /// `facility` (syslog).
    facility: Option<u8>,
    /// `url` (webhook).
    url: Option<Url>,
    /// `headers` (webhook).
    headers: Vec<Header>,
    /// `token_file` or `token_env` (webhook).
    token: Option<(Credential, TokenSource)>,
    /// `ca` (webhook, email).
    ca: Option<PathBuf>,
    /// `server` (email).
    server: Option<String>,
    /// `port` (email).
    port: Option<u16>,
    /// `tls` (email).
    security: Option<SmtpSecurity>,
    /// `username` (email).
    username: Option<String>,
    /// `password_file` or `password_env` (email).
    password: Option<(Credential, TokenSource)>,
    /// `from` (email).
    from: Option<String>,
    /// `to` (email).
    to: Option<Vec<String>>,
    /// `digest` (email).
    digest: Option<Duration>,
}

/// The sink types.
const SYSLOG: &str = "syslog";
const WEBHOOK: &str = "webhook";
const EMAIL: &str = "email";
const ALL_TYPES: &[&str] = &[SYSLOG, WEBHOOK, EMAIL];

type ReadSink = fn(&mut Checker<'_>, &[String], &Value, &mut SinkDraft);

/// The keys of a sink: the types each belongs to, and how its value is read.
const SINK_KEYS: &[(&str, &[&str], ReadSink)] = &[
    ("type", ALL_TYPES, |_, _, _, _| {}),
    ("timeout", ALL_TYPES, |c, key, value, s| {
        s.timeout = c.check(key, at_least(value, Duration::from_millis(100)));
    }),
    ("retries", ALL_TYPES, |c, key, value, s| {
        s.retries = c.check(key, count(value, 0, MAX_RETRIES));
    }),
    ("backoff", ALL_TYPES, |c, key, value, s| {
        s.backoff = c.check(key, duration(value));
    }),
    ("path", &[SYSLOG], |c, key, value, s| {
        s.path = c.path(key, value)
    }),
    ("facility", &[SYSLOG], |c, key, value, s| {
        s.facility = c.check(key, facility(value));
    }),
    ("url", &[WEBHOOK], |c, key, value, s| {
        s.url = c.check(key, url(value));
    }),
    ("headers", &[WEBHOOK], |c, key, value, s| {
        set(&mut s.headers, c.headers(key, value));
    }),
    ("token_file", &[WEBHOOK], |c, key, value, s| {
        s.token = c.secret_file(key, value);
    }),
    ("token_env", &[WEBHOOK], |c, key, value, s| {
        s.token = c.check(key, secret_env(value));
    }),
    ("ca", &[WEBHOOK, EMAIL], |c, key, value, s| {
        let read = file_path(c.dir, value)
            .and_then(|path| path.ok_or_else(|| expected("a path to a PEM file", value)))
            .and_then(|path| match secret::certificates(&path) {
                Ok(_) => Ok(path),
                Err(problem) => Err(problem.naming("CA certificate file")),
            });
        s.ca = c.check(key, read);
    }),
    ("server", &[EMAIL], |c, key, value, s| {
        s.server = c.check(key, host(value));
    }),
    ("port", &[EMAIL], |c, key, value, s| {
        s.port = c
            .check(key, count(value, 1, 65_535))
            .map(|port| port as u16);
    }),
    ("tls", &[EMAIL], |c, key, value, s| {
        s.security = c.check(key, security(value));
    }),
    ("username", &[EMAIL], |c, key, value, s| {
        s.username = c.check(key, username(value));
    }),
    ("password_file", &[EMAIL], |c, key, value, s| {
        s.password = c.secret_file(key, value);
    }),
    ("password_env", &[EMAIL], |c, key, value, s| {
        s.password = c.check(key, secret_env(value));
    }),
    ("from", &[EMAIL], |c, key, value, s| {
        s.from = c.check(key, mailbox(value));
    }),
    ("to", &[EMAIL], |c, key, value, s| {
        s.to = c.mailboxes(key, value)
    }),
    ("digest", &[EMAIL], |c, key, value, s| {
        s.digest = c.check(key, at_least(value, Duration::from_secs(1)));
    }),
];

/// The most `retries` a sink may have.
const MAX_RETRIES: u32 = 10;

/// A rule as read so far.
#[derive(Default)]
struct RuleDraft {
    events: Option<Vec<AlertEvent>>,
    /// Each program with where it is written.
    programs: Vec<(Vec<String>, String)>,
    severity: Option<Severity>,
    /// Each sink with where it is written.
    sinks: Option<Vec<(Vec<String>, String)>>,
    rate_limit: Option<RateLimit>,
}

type ReadRule = super::Read<RuleDraft>;

/// The keys of a rule.
const RULE_KEYS: &[(&str, ReadRule)] = &[
    ("events", |c, key, value, r| r.events = c.events(key, value)),
    ("programs", |c, key, value, r| {
        set(&mut r.programs, c.names(key, value, "a program name"));
    }),
    ("severity", |c, key, value, r| {
        r.severity = c.check(key, severity(value));
    }),
    ("sinks", |c, key, value, r| {
        r.sinks = c.names(key, value, "a sink name");
    }),
    ("rate_limit", |c, key, value, r| {
        r.rate_limit = c.rate_limit(key, value)
    }),
];

/// The keys of a rule's `rate_limit`.
const RATE_LIMIT_KEYS: &[(&str, super::Read<RateLimit>)] = &[
    ("max", |c, key, value, l| {
        set(&mut l.max, c.check(key, count(value, 1, 10_000)));
    }),
    ("per", |c, key, value, l| {
        set(
            &mut l.per,
            c.check(key, at_least(value, Duration::from_secs(1))),
        );
    }),
];

impl Checker<'_> {
    /// The `alerts:` section; `programs` are the config's (a rule naming another program is
    /// warned about), `None` when they could not be read.
    pub(super) fn alerts(
        &mut self,
        path: &[String],
        value: &Value,
        programs: Option<&BTreeMap<String, ProgramConfig>>,
    ) -> Option<AlertSettings> {
        let map = match value {
            Value::Null => return Some(AlertSettings::default()),
            Value::Mapping(map) => map,
            _ => {
                let what = "a mapping with keys `sinks` and `rules`";
                self.report(path, false, expected(what, value));
                return None;
            }
        };
        let before = self.issues.len();
        let mut sinks_value = None;
        let mut rules_value = None;
        for (key, value) in self.entries(path, map) {
            match last(&key) {
                "sinks" => sinks_value = Some((key, value)),
                "rules" => rules_value = Some((key, value)),
                _ => self.unknown_key(&key, ALERTS_KEYS),
            }
        }
        // The sinks first: rules name them (as written, even a sink with a problem).
        let sink_names: Vec<String> = match sinks_value {
            Some((_, Value::Mapping(map))) => (map.keys())
                .filter_map(|key| key.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        };
        let sinks = match sinks_value {
            Some((key, value)) => self.sinks(&key, value),
            None => Some(BTreeMap::new()),
        };
        let rules = match rules_value {
            Some((key, value)) => self.rules(&key, value, &sink_names, programs),
            None => Some(BTreeMap::new()),
        };
        if self.issues.len() != before {
            return None;
        }
        Some(AlertSettings {
            sinks: sinks?,
            rules: rules?,
        })
    }

    /// A mapping of named things, each read by `read`; a bad name is reported (`what`: "sink").
    fn named<T>(
        &mut self,
        path: &[String],
        value: &Value,
        what: &str,
        mut read: impl FnMut(&mut Self, &[String], &Value) -> Option<T>,
    ) -> Option<BTreeMap<String, T>> {
        let map = match value {
            Value::Null => return Some(BTreeMap::new()),
            Value::Mapping(map) => map,
            _ => {
                let expectation = format!("a mapping of {what}s by name");
                self.report(path, false, expected(&expectation, value));
                return None;
            }
        };
        let before = self.issues.len();
        let mut found = BTreeMap::new();
        for (key, value) in self.entries(path, map) {
            let name = last(&key).to_string();
            if !valid_program_name(&name) {
                let message = format!(
                    "invalid {what} name {name:?}: a letter or `_` first, then letters, digits, \
                     `_`, `.` and `-`"
                );
                self.report(&key, true, message);
            }
            if let Some(item) = read(self, &key, value) {
                found.insert(name, item);
            }
        }
        (self.issues.len() == before).then_some(found)
    }

    fn sinks(&mut self, path: &[String], value: &Value) -> Option<BTreeMap<String, SinkConfig>> {
        self.named(path, value, "sink", Checker::sink)
    }

    fn sink(&mut self, path: &[String], value: &Value) -> Option<SinkConfig> {
        let Value::Mapping(map) = value else {
            let what = "a sink: a mapping with `type: syslog`, `webhook` or `email` and its keys";
            self.report(path, false, expected(what, value));
            return None;
        };
        let before = self.issues.len();
        let key = |name: &str| [path, &[name.to_string()]].concat();
        let mut draft = SinkDraft::default();
        match map.get("type") {
            None => self.report(
                path,
                true,
                "missing required key `type` (syslog, webhook or email)",
            ),
            Some(Value::String(kind)) if ALL_TYPES.contains(&kind.as_str()) => {
                draft.kind = ALL_TYPES.iter().copied().find(|name| name == kind);
            }
            Some(other) => {
                let message = expected("syslog, webhook or email", other);
                self.report(&key("type"), false, message);
            }
        }
        for (key, value) in self.entries(path, map) {
            let name = last(&key);
            if name == "token" {
                let message = inline_secret("token", "token_file", "token_env");
                self.report(&key, true, message);
                continue;
            }
            if name == "password" {
                let message = inline_secret("password", "password_file", "password_env");
                self.report(&key, true, message);
                continue;
            }
            let Some(kind) = draft.kind else {
                // Its type is unknown: only whether the key exists at all can be told.
                if !SINK_KEYS.iter().any(|(known, _, _)| *known == name) {
                    let known: Vec<&str> = SINK_KEYS.iter().map(|(known, _, _)| *known).collect();
                    self.unknown_key(&key, &known);
                }
                continue;
            };
            match SINK_KEYS.iter().find(|(known, _, _)| *known == name) {
                Some((_, types, read)) if types.contains(&kind) => {
                    read(self, &key, value, &mut draft)
                }
                Some((_, types, _)) => {
                    let message = format!(
                        "`{name}` is a key of {} sinks, not of {kind} ones",
                        types.join(" and ")
                    );
                    self.report(&key, true, message);
                }
                None => {
                    let known: Vec<&str> = (SINK_KEYS.iter())
                        .filter(|(_, types, _)| types.contains(&kind))
                        .map(|(known, _, _)| *known)
                        .collect();
                    self.unknown_key(&key, &known);
                }
            }
        }
        let both = |one: &str, other: &str| map.contains_key(one) && map.contains_key(other);
        if both("token_file", "token_env") {
            let message = "the token is read from `token_file` or from `token_env`, not both";
            self.report(&key("token_env"), true, message);
        }
        if both("password_file", "password_env") {
            let message = "the password is read from `password_file` or `password_env`, not both";
            self.report(&key("password_env"), true, message);
        }
        let kind = match draft.kind {
            Some(SYSLOG) => self.syslog(&mut draft),
            Some(WEBHOOK) => self.webhook(path, map, &mut draft),
            Some(EMAIL) => self.email(path, map, &mut draft),
            _ => None,
        };
        if self.issues.len() != before {
            return None;
        }
        let defaults = SinkConfig::of(kind?);
        Some(SinkConfig {
            timeout: draft.timeout.unwrap_or(defaults.timeout),
            retries: draft.retries.unwrap_or(defaults.retries),
            backoff: draft.backoff.unwrap_or(defaults.backoff),
            ..defaults
        })
    }

    fn syslog(&mut self, draft: &mut SinkDraft) -> Option<SinkKind> {
        Some(SinkKind::Syslog(SyslogConfig {
            path: draft
                .path
                .take()
                .unwrap_or_else(|| PathBuf::from("/dev/log")),
            facility: draft.facility.unwrap_or(3),
        }))
    }

    fn webhook(
        &mut self,
        path: &[String],
        map: &Mapping,
        draft: &mut SinkDraft,
    ) -> Option<SinkKind> {
        if !map.contains_key("url") {
            self.report(
                path,
                true,
                "missing required key `url` (http:// or https://)",
            );
        }
        let url = draft.url.take()?;
        if draft.ca.is_some() && !url.tls {
            let key = [path, &["ca".to_string()]].concat();
            self.report(&key, true, "`ca` is for https:// URLs only");
        }
        let mut headers = std::mem::take(&mut draft.headers);
        if let Some((secret, source)) = draft.token.take() {
            if headers
                .iter()
                .any(|header| header.name.eq_ignore_ascii_case("authorization"))
            {
                let key = [path, &["headers".to_string()]].concat();
                let message = "an `Authorization` header and a token: the token is sent as \
                               `Authorization: Bearer TOKEN`; keep one of them";
                self.report(&key, true, message);
            }
            headers.push(Header {
                name: "Authorization".to_string(),
                value: HeaderValue::Secret {
                    prefix: "Bearer ",
                    secret,
                    source,
                },
            });
        }
        Some(SinkKind::Webhook(WebhookConfig {
            url: url.text,
            tls: url.tls,
            host: url.host,
            port: url.port,
            path: url.path,
            headers,
            ca: draft.ca.take(),
        }))
    }

    fn email(&mut self, path: &[String], map: &Mapping, draft: &mut SinkDraft) -> Option<SinkKind> {
        let key = |name: &str| [path, &[name.to_string()]].concat();
        for (name, what) in [
            ("server", "the SMTP server's host name"),
            ("from", "the mailbox alerts are sent from"),
            ("to", "the mailboxes alerts are sent to"),
        ] {
            if !map.contains_key(name) {
                self.report(
                    path,
                    true,
                    format!("missing required key `{name}` ({what})"),
                );
            }
        }
        let security = draft.security.unwrap_or(SmtpSecurity::StartTls);
        let has_password = map.contains_key("password_file") || map.contains_key("password_env");
        // A password written in the config is reported as such.
        let written = map.contains_key("password");
        match (map.contains_key("username"), has_password || written) {
            (true, false) => self.report(
                &key("username"),
                true,
                "a username without a password: add `password_file` or `password_env`",
            ),
            (false, true) => {
                let at = if map.contains_key("password_file") {
                    "password_file"
                } else {
                    "password_env"
                };
                self.report(&key(at), true, "a password without a `username`");
            }
            _ => {}
        }
        if has_password && security == SmtpSecurity::None {
            let message = "a password is never sent in clear: use `tls: starttls` or `tls: tls`";
            self.report(&key("tls"), false, message);
        }
        if draft.ca.is_some() && security == SmtpSecurity::None {
            self.report(
                &key("ca"),
                true,
                "`ca` is for `tls: starttls` or `tls: tls` only",
            );
        }
        let port = draft.port.unwrap_or(match security {
            SmtpSecurity::Tls => 465,
            SmtpSecurity::StartTls => 587,
            SmtpSecurity::None => 25,
        });
        Some(SinkKind::Email(EmailConfig {
            server: draft.server.take()?,
            port,
            security,
            username: draft.username.take(),
            password: draft.password.take(),
            from: draft.from.take()?,
            to: draft.to.take()?,
            digest: draft.digest,
            ca: draft.ca.take(),
        }))
    }

    /// A secret in the file at `value`, a secret file (see [`secret`]).
    fn secret_file(&mut self, key: &[String], value: &Value) -> Option<(Credential, TokenSource)> {
        let read = file_path(self.dir, value)
            .and_then(|path| path.ok_or_else(|| expected("a path", value)))
            .and_then(|path| Ok((secret_of_file(&path)?, TokenSource::File(path))));
        self.check(key, read)
    }

    /// A webhook's `headers`: names to values, a value written (not a credential) or read
    /// from `{file: PATH}` or `{env: NAME}`.
    fn headers(&mut self, path: &[String], value: &Value) -> Option<Vec<Header>> {
        let map = match value {
            Value::Null => return Some(Vec::new()),
            Value::Mapping(map) => map,
            _ => {
                let what = "a mapping of header names to values";
                self.report(path, false, expected(what, value));
                return None;
            }
        };
        let before = self.issues.len();
        let mut headers = Vec::with_capacity(map.len());
        for (key, value) in self.entries(path, map) {
            let name = last(&key).to_string();
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                self.report(&key, true, format!("invalid header name {name:?}"));
                continue;
            }
            if [
                "host",
                "content-length",
                "content-type",
                "transfer-encoding",
                "connection",
            ]
            .iter()
            .any(|reserved| name.eq_ignore_ascii_case(reserved))
            {
                let message = format!("`{name}` is set by the daemon itself");
                self.report(&key, true, message);
                continue;
            }
            let value = match value {
                Value::Mapping(source) => self.header_secret(&key, source),
                Value::String(_) | Value::Number(_) | Value::Bool(_)
                    if carries_credential(&name) =>
                {
                    let message = format!(
                        "the `{name}` header carries a credential, which is never written in \
                         the config: read it from a file (`{{file: PATH}}`) or an environment \
                         variable (`{{env: NAME}}`), or use `token_file` or `token_env` for a \
                         bearer token"
                    );
                    self.report(&key, false, message);
                    None
                }
                Value::String(text) => self.check(&key, header_text(text).map(HeaderValue::Plain)),
                Value::Number(_) | Value::Bool(_) => {
                    let text = self.index.get().plain(&key).map(str::to_string);
                    let text = text.unwrap_or_else(|| match value {
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => b.to_string(),
                        _ => String::new(),
                    });
                    Some(HeaderValue::Plain(text))
                }
                _ => {
                    let what = "a header value, or `{file: PATH}` or `{env: NAME}`";
                    self.report(&key, false, expected(what, value));
                    None
                }
            };
            if let Some(value) = value {
                headers.push(Header { name, value });
            }
        }
        (self.issues.len() == before).then_some(headers)
    }

    /// A header value read from `{file: PATH}` or `{env: NAME}`.
    fn header_secret(&mut self, path: &[String], source: &Mapping) -> Option<HeaderValue> {
        let entries = self.entries(path, source);
        let [(key, value)] = entries.as_slice() else {
            let message = "expected one of `file: PATH` or `env: NAME`";
            self.report(path, false, message);
            return None;
        };
        let (secret, source) = match last(key) {
            "file" => self.secret_file(key, value)?,
            "env" => self.check(key, secret_env(value))?,
            _ => {
                self.unknown_key(key, &["file", "env"]);
                return None;
            }
        };
        Some(HeaderValue::Secret {
            prefix: "",
            secret,
            source,
        })
    }

    fn rules(
        &mut self,
        path: &[String],
        value: &Value,
        sinks: &[String],
        programs: Option<&BTreeMap<String, ProgramConfig>>,
    ) -> Option<BTreeMap<String, RuleConfig>> {
        self.named(path, value, "rule", |checker, path, value| {
            checker.rule(path, value, sinks, programs)
        })
    }

    fn rule(
        &mut self,
        path: &[String],
        value: &Value,
        sinks: &[String],
        programs: Option<&BTreeMap<String, ProgramConfig>>,
    ) -> Option<RuleConfig> {
        let Value::Mapping(map) = value else {
            let what = "a rule: a mapping with `events` and `sinks`";
            self.report(path, false, expected(what, value));
            return None;
        };
        let before = self.issues.len();
        let mut draft = RuleDraft::default();
        for (key, value) in self.entries(path, map) {
            self.read(&key, value, RULE_KEYS, &mut draft);
        }
        for (name, what) in [
            ("events", "the kinds of events it matches"),
            ("sinks", "where its alerts go"),
        ] {
            if !map.contains_key(name) {
                self.report(
                    path,
                    true,
                    format!("missing required key `{name}` ({what})"),
                );
            }
        }
        for (at, sink) in draft.sinks.iter().flatten() {
            if !sinks.contains(sink) {
                let message = match sinks.is_empty() {
                    true => format!("no sink `{sink}`: `alerts.sinks` defines none"),
                    false => format!("no sink `{sink}`; the sinks are {}", sinks.join(", ")),
                };
                self.report_at(at, path, message);
            }
        }
        for (at, program) in &draft.programs {
            if !valid_program_name(program) {
                self.report_at(at, path, format!("invalid program name {program:?}"));
            } else if let Some(programs) = programs
                && !programs.contains_key(program)
            {
                let message = format!(
                    "no program `{program}` in this config: the rule matches none of its events \
                     until there is one"
                );
                let pos = self.index.get().place(at).value;
                let key = [path, &["programs".to_string()]].concat().join(".");
                self.warnings.push(super::issue(pos, key, message));
            }
        }
        if self.issues.len() != before {
            return None;
        }
        Some(RuleConfig {
            events: draft.events?,
            programs: draft.programs.into_iter().map(|(_, name)| name).collect(),
            severity: draft.severity.unwrap_or(Severity::Info),
            sinks: draft.sinks?.into_iter().map(|(_, name)| name).collect(),
            rate_limit: draft.rate_limit.unwrap_or_default(),
        })
    }

    /// Reports `message` at the value at `at` (a list item), keyed by the list's key under
    /// `rule` (the rule's path).
    fn report_at(&mut self, at: &[String], rule: &[String], message: String) {
        let pos = self.index.get().place(at).value;
        let list = at.get(rule.len()).cloned().unwrap_or_default();
        let key = [rule, &[list]].concat().join(".");
        self.issues.push(super::issue(pos, key, message));
    }

    /// One item or a list of them, each with its path.
    fn items<'v>(&mut self, path: &[String], value: &'v Value) -> Vec<(Vec<String>, &'v Value)> {
        match value {
            Value::Sequence(items) => (items.iter().enumerate())
                .map(|(i, item)| ([path, &[i.to_string()]].concat(), item))
                .collect(),
            _ => vec![(path.to_vec(), value)],
        }
    }

    /// A rule's `events`: names of [`AlertEvent`], one or a list; sorted, without duplicates.
    fn events(&mut self, path: &[String], value: &Value) -> Option<Vec<AlertEvent>> {
        let names: Vec<&str> = AlertEvent::ALL.iter().map(|event| event.name()).collect();
        let what = format!("an event: {}", names.join(", "));
        let mut events = Vec::new();
        let mut ok = true;
        for (at, item) in self.items(path, value) {
            let event = match item {
                Value::String(word) => AlertEvent::ALL
                    .into_iter()
                    .find(|event| event.name() == word.to_ascii_lowercase()),
                _ => None,
            };
            match event {
                Some(event) => events.push(event),
                None => {
                    ok = false;
                    let pos = self.index.get().place(&at).value;
                    let message = expected(&what, item);
                    self.issues.push(super::issue(pos, path.join("."), message));
                }
            }
        }
        if ok && events.is_empty() {
            self.report(
                path,
                false,
                format!("expected at least one event: {}", names.join(", ")),
            );
            return None;
        }
        events.sort_unstable();
        events.dedup();
        ok.then_some(events)
    }

    /// Names (`what`: "a sink name"), one or a list, each with where it is written.
    fn names(
        &mut self,
        path: &[String],
        value: &Value,
        what: &str,
    ) -> Option<Vec<(Vec<String>, String)>> {
        let mut names: Vec<(Vec<String>, String)> = Vec::new();
        let mut ok = true;
        for (at, item) in self.items(path, value) {
            match item {
                Value::String(name) if !name.is_empty() => {
                    if !names.iter().any(|(_, seen)| seen == name) {
                        names.push((at, name.clone()));
                    }
                }
                _ => {
                    ok = false;
                    let pos = self.index.get().place(&at).value;
                    self.issues
                        .push(super::issue(pos, path.join("."), expected(what, item)));
                }
            }
        }
        if ok && names.is_empty() {
            self.report(path, false, format!("expected at least one: {what}"));
            return None;
        }
        ok.then_some(names)
    }

    fn rate_limit(&mut self, path: &[String], value: &Value) -> Option<RateLimit> {
        let Value::Mapping(map) = value else {
            let what = "a mapping `{max: COUNT, per: DURATION}`";
            self.report(path, false, expected(what, value));
            return None;
        };
        let before = self.issues.len();
        let mut limit = RateLimit::default();
        for (key, value) in self.entries(path, map) {
            self.read(&key, value, RATE_LIMIT_KEYS, &mut limit);
        }
        (self.issues.len() == before).then_some(limit)
    }

    /// An email sink's `to`: one mailbox or a list.
    fn mailboxes(&mut self, path: &[String], value: &Value) -> Option<Vec<String>> {
        let mut found = Vec::new();
        let mut ok = true;
        for (at, item) in self.items(path, value) {
            match mailbox(item) {
                Ok(mailbox) => found.push(mailbox),
                Err(message) => {
                    ok = false;
                    let pos = self.index.get().place(&at).value;
                    self.issues.push(super::issue(pos, path.join("."), message));
                }
            }
        }
        if ok && found.is_empty() {
            self.report(path, false, "expected at least one mailbox");
            return None;
        }
        ok.then_some(found)
    }
}

/// Whether a header named `name` carries a credential by its name, and so may not be written
/// in the config.
fn carries_credential(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["authorization", "cookie"].contains(&name.as_str())
        || ["token", "secret", "key", "password", "auth", "signature"]
            .iter()
            .any(|word| name.contains(word))
}

/// A header value written in the config: visible ASCII and spaces.
fn header_text(text: &str) -> Result<String, String> {
    match http::HeaderValue::from_str(text) {
        Ok(_) if !text.bytes().any(|b| b.is_ascii_control()) => Ok(text.to_string()),
        _ => Err(format!(
            "invalid header value {:?}: visible ASCII and spaces only",
            text.chars().take(40).collect::<String>()
        )),
    }
}

/// The secret in the file at `path`, a secret file (see [`secret`]): its text without the
/// blanks at either end.
fn secret_of_file(path: &Path) -> Result<Credential, String> {
    let bytes = secret::read_file(path, true).map_err(|problem| problem.to_string())?;
    let shown = path.display();
    let text = std::str::from_utf8(&bytes).map_err(|_| format!("{shown} is not UTF-8 text"))?;
    secret_text(text).map_err(|problem| format!("the secret in {shown} {problem}"))
}

/// The secret in the environment variable named by `value`.
fn secret_env(value: &Value) -> Result<(Credential, TokenSource), String> {
    let Value::String(name) = value else {
        return Err(expected("the name of an environment variable", value));
    };
    variable_name(name)?;
    let text = crate::config::token_variable(name)?;
    let secret = secret_text(&text).map_err(|problem| format!("the variable {name} {problem}"))?;
    Ok((secret, TokenSource::Env(name.clone())))
}

/// A secret as sent: without blanks at either end, not empty, without control characters (it
/// travels in a header or an SMTP command).
fn secret_text(text: &str) -> Result<Credential, &'static str> {
    let text = text.trim();
    if text.is_empty() {
        return Err("is empty");
    }
    if text.chars().any(char::is_control) {
        return Err("holds a control character");
    }
    if text.len() > secret::MAX_TOKEN_LEN * 8 {
        return Err("is longer than 8 KiB");
    }
    Ok(Credential::new(text))
}

/// A duration of at least `least` (and at most a day).
fn at_least(value: &Value, least: Duration) -> Result<Duration, String> {
    let found = duration(value)?;
    if found < least {
        return Err(format!(
            "must be at least {}, found {}",
            humantime::format_duration(least),
            describe(value)
        ));
    }
    Ok(found)
}

fn facility(value: &Value) -> Result<u8, String> {
    let names: Vec<&str> = FACILITIES.iter().map(|(name, _)| *name).collect();
    match value {
        Value::String(word) => (FACILITIES.iter())
            .find(|(name, _)| word.eq_ignore_ascii_case(name))
            .map(|(_, code)| *code),
        _ => None,
    }
    .ok_or_else(|| expected(&format!("a syslog facility: {}", names.join(", ")), value))
}

fn severity(value: &Value) -> Result<Severity, String> {
    let names: Vec<&str> = Severity::ALL
        .iter()
        .map(|severity| severity.name())
        .collect();
    match value {
        Value::String(word) => {
            (Severity::ALL.into_iter()).find(|severity| word.eq_ignore_ascii_case(severity.name()))
        }
        _ => None,
    }
    .ok_or_else(|| expected(&format!("a severity: {}", names.join(", ")), value))
}

fn security(value: &Value) -> Result<SmtpSecurity, String> {
    match value {
        Value::String(word) if word.eq_ignore_ascii_case("tls") => Ok(SmtpSecurity::Tls),
        Value::String(word) if word.eq_ignore_ascii_case("starttls") => Ok(SmtpSecurity::StartTls),
        Value::String(word) if word.eq_ignore_ascii_case("none") => Ok(SmtpSecurity::None),
        _ => Err(expected("tls, starttls or none", value)),
    }
}

/// A host name or address: no blanks, no `/`.
fn host(value: &Value) -> Result<String, String> {
    match value {
        Value::String(name)
            if !name.is_empty()
                && !name.contains(|c: char| c.is_whitespace() || c.is_control() || c == '/') =>
        {
            Ok(name.clone())
        }
        _ => Err(expected("a host name or address", value)),
    }
}

fn username(value: &Value) -> Result<String, String> {
    match value {
        Value::String(name) if !name.is_empty() && !name.chars().any(char::is_control) => {
            Ok(name.clone())
        }
        _ => Err(expected("a user name", value)),
    }
}

/// A mailbox as lettre reads one: `user@example.com` or `Name <user@example.com>`.
fn mailbox(value: &Value) -> Result<String, String> {
    let Value::String(text) = value else {
        return Err(expected("a mailbox like `ops@example.com`", value));
    };
    text.parse::<lettre::message::Mailbox>()
        .map(|_| text.clone())
        .map_err(|error| format!("invalid mailbox {text:?}: {error}"))
}

/// A webhook's URL, taken apart.
struct Url {
    text: String,
    tls: bool,
    host: String,
    port: u16,
    path: String,
}

fn url(value: &Value) -> Result<Url, String> {
    let Value::String(text) = value else {
        return Err(expected("a URL (http:// or https://)", value));
    };
    let uri: http::Uri = text
        .parse()
        .map_err(|error| format!("invalid URL {text:?}: {error}"))?;
    let tls = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => {
            return Err(format!(
                "expected an http:// or https:// URL, found {text:?}"
            ));
        }
    };
    let authority = uri
        .authority()
        .ok_or_else(|| format!("the URL {text:?} names no host"))?;
    if authority.as_str().contains('@') {
        return Err(
            "a URL with a user or password writes a credential in the config: use `token_file` \
             or `token_env`, or a header read from a file"
                .to_string(),
        );
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("the URL {text:?} names no host"));
    }
    Ok(Url {
        text: text.clone(),
        tls,
        host: host.to_string(),
        port: uri.port_u16().unwrap_or(if tls { 443 } else { 80 }),
        path: uri
            .path_and_query()
            .map_or("/".to_string(), |path| path.as_str().to_string()),
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    use super::*;
    use crate::config::testing::{PATH, issues, ok};
    use crate::config::{ConfigError, parse};

    /// A secret file of `text` with `mode` in `dir`.
    fn secret(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    const PROGRAMS: &str = "programs:\n  web:\n    cmd: /bin/true\n";

    #[test]
    fn every_sink_and_rule_setting_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let token = secret(dir.path(), "hook.token", "s3cr3t-token-value\n", 0o600);
        let password = secret(dir.path(), "smtp.password", " pass word \n", 0o640);
        let text = format!(
            "{PROGRAMS}alerts:
  sinks:
    local:
      type: syslog
    remote:
      type: syslog
      path: /run/other.sock
      facility: local3
      timeout: 2s
      retries: 0
    hook:
      type: webhook
      url: https://hooks.example.com:8443/tm?x=1
      headers: {{X-Team: ops, X-Count: 7}}
      token_file: {}
      backoff: 250ms
    mail:
      type: email
      server: smtp.example.com
      username: tm
      password_file: {}
      from: Taskmaster <tm@example.com>
      to: [ops@example.com, dev@example.com]
      digest: 5m
  rules:
    crashes:
      events: [fatal, unexpected_exit, fatal]
      programs: web
      severity: warning
      sinks: [local, hook]
      rate_limit: {{max: 3, per: 10s}}
    lifecycle:
      events: daemon_stop
      sinks: mail
",
            token.display(),
            password.display()
        );
        let alerts = ok(&text).alerts;
        let local = &alerts.sinks["local"];
        assert_eq!(
            local.kind,
            SinkKind::Syslog(SyslogConfig {
                path: "/dev/log".into(),
                facility: 3
            })
        );
        assert_eq!(
            (local.timeout, local.retries, local.backoff),
            (Duration::from_secs(5), 3, Duration::from_secs(1))
        );
        let remote = &alerts.sinks["remote"];
        assert_eq!(
            remote.kind,
            SinkKind::Syslog(SyslogConfig {
                path: "/run/other.sock".into(),
                facility: 19
            })
        );
        assert_eq!(
            (remote.timeout, remote.retries),
            (Duration::from_secs(2), 0)
        );
        let SinkKind::Webhook(hook) = &alerts.sinks["hook"].kind else {
            panic!("{:?}", alerts.sinks["hook"]);
        };
        assert_eq!(alerts.sinks["hook"].backoff, Duration::from_millis(250));
        assert!(hook.tls);
        assert_eq!((hook.host.as_str(), hook.port), ("hooks.example.com", 8443));
        assert_eq!(hook.path, "/tm?x=1");
        let headers: Vec<(String, String)> = (hook.headers.iter())
            .map(|header| (header.name.clone(), header.value.text()))
            .collect();
        assert_eq!(
            headers,
            [
                ("X-Team".to_string(), "ops".to_string()),
                ("X-Count".to_string(), "7".to_string()),
                (
                    "Authorization".to_string(),
                    "Bearer s3cr3t-token-value".to_string()
                ),
            ]
        );
        // The secret is never shown.
        assert!(!format!("{alerts:?}").contains("s3cr3t"));
        let SinkKind::Email(mail) = &alerts.sinks["mail"].kind else {
            panic!("{:?}", alerts.sinks["mail"]);
        };
        assert_eq!((mail.port, mail.security), (587, SmtpSecurity::StartTls));
        assert_eq!(mail.password.as_ref().unwrap().0.expose(), "pass word");
        assert_eq!(mail.to, ["ops@example.com", "dev@example.com"]);
        assert_eq!(mail.digest, Some(Duration::from_secs(300)));
        let crashes = &alerts.rules["crashes"];
        assert_eq!(
            crashes.events,
            [AlertEvent::UnexpectedExit, AlertEvent::Fatal]
        );
        assert_eq!(crashes.programs, ["web"]);
        assert_eq!(crashes.severity, Severity::Warning);
        assert_eq!(crashes.sinks, ["local", "hook"]);
        assert_eq!(
            crashes.rate_limit,
            RateLimit {
                max: 3,
                per: Duration::from_secs(10)
            }
        );
        let lifecycle = &alerts.rules["lifecycle"];
        assert_eq!(lifecycle.severity, Severity::Info);
        assert_eq!(lifecycle.rate_limit, RateLimit::default());
        // No section: no alerts.
        assert_eq!(ok(PROGRAMS).alerts, AlertSettings::default());
    }

    #[test]
    fn a_secret_written_in_the_config_is_an_error_at_its_key() {
        let text = format!(
            "{PROGRAMS}alerts:
  sinks:
    hook:
      type: webhook
      url: http://127.0.0.1:9000/
      token: abcdefabcdefabcdef
      headers:
        X-Api-Key: abcdef
        Authorization: Bearer abcdef
    mail:
      type: email
      server: localhost
      username: tm
      password: hunter2
      from: tm@example.com
      to: ops@example.com
    leaky:
      type: webhook
      url: http://user:pw@example.com/
"
        );
        let found: Vec<String> = issues(&text).iter().map(ToString::to_string).collect();
        assert_eq!(found.len(), 5, "{found:#?}");
        assert!(
            found[0].starts_with(
                "9:7: alerts.sinks.hook.token: a token is never written in the config"
            ),
            "{found:#?}"
        );
        assert!(found[0].contains("`token_file: PATH`"), "{found:#?}");
        assert!(
            found[1].starts_with("11:20: alerts.sinks.hook.headers.X-Api-Key: the `X-Api-Key` header carries a credential"),
            "{found:#?}"
        );
        assert!(
            found[2].starts_with(
                "12:24: alerts.sinks.hook.headers.Authorization: the `Authorization` header"
            ),
            "{found:#?}"
        );
        assert!(
            found[3].starts_with("17:7: alerts.sinks.mail.password: a password is never written"),
            "{found:#?}"
        );
        assert!(
            found[4].starts_with("22:12: alerts.sinks.leaky.url: a URL with a user or password"),
            "{found:#?}"
        );
    }

    #[test]
    fn secrets_come_from_private_files_or_variables_and_never_go_in_clear() {
        let dir = tempfile::tempdir().unwrap();
        let public = secret(dir.path(), "public.token", "token-of-everyone\n", 0o644);
        let empty = secret(dir.path(), "empty.token", "\n", 0o600);
        let private = secret(dir.path(), "pw", "pw\n", 0o600);
        let text = format!(
            "{PROGRAMS}alerts:
  sinks:
    hook:
      type: webhook
      url: http://127.0.0.1:9000/
      token_file: {}
    other:
      type: webhook
      url: http://127.0.0.1:9000/
      token_file: {}
      headers: {{X-Key: {{env: TASKMASTER_TEST_UNSET_VARIABLE}}}}
    mail:
      type: email
      server: localhost
      tls: none
      username: tm
      password_file: {}
      from: tm@example.com
      to: ops@example.com
",
            public.display(),
            empty.display(),
            private.display()
        );
        let found: Vec<String> = issues(&text).iter().map(ToString::to_string).collect();
        assert_eq!(found.len(), 4, "{found:#?}");
        assert!(
            found[0].contains("can be read or changed by every user (mode 0644)"),
            "{found:#?}"
        );
        assert!(found[1].contains("is empty"), "{found:#?}");
        assert!(
            found[2].starts_with("14:30: alerts.sinks.other.headers.X-Key.env: the environment variable TASKMASTER_TEST_UNSET_VARIABLE is not set"),
            "{found:#?}"
        );
        assert!(
            found[3].starts_with("18:12: alerts.sinks.mail.tls: a password is never sent in clear"),
            "{found:#?}"
        );
    }

    #[test]
    fn every_problem_of_the_section_is_placed_at_its_key() {
        let text = format!(
            "{PROGRAMS}alerts:
  sinks:
    local:
      type: syslog
      url: http://x/
      facility: local9
    odd:
      typ: syslog
    mail:
      type: email
      from: not a mailbox
      to: []
  rules:
    crashes:
      events: [unexpected_exit, explosion]
      sinks: [local, nowhere]
      severity: dire
      rate_limit: {{max: 0, per: 1ms}}
    empty: {{}}
    other:
      events: fatal
      sinks: local
      programs: [ghost]
  colour: red
"
        );
        let config = parse(&text, Path::new(PATH));
        let Err(ConfigError::Invalid { issues, .. }) = config else {
            panic!("{config:?}");
        };
        let found: Vec<String> = issues.iter().map(ToString::to_string).collect();
        let expected = [
            "8:7: alerts.sinks.local.url: `url` is a key of webhook sinks, not of syslog ones",
            "9:17: alerts.sinks.local.facility: expected a syslog facility: kern, user, mail, daemon, auth, syslog, lpr, news, uucp, cron, authpriv, ftp, local0, local1, local2, local3, local4, local5, local6, local7, found string \"local9\"",
            "10:5: alerts.sinks.odd: missing required key `type` (syslog, webhook or email)",
            "11:7: alerts.sinks.odd.typ: unknown key `typ` (did you mean `type`?); expected one of",
            "12:5: alerts.sinks.mail: missing required key `server` (the SMTP server's host name)",
            "14:13: alerts.sinks.mail.from: invalid mailbox \"not a mailbox\"",
            "15:11: alerts.sinks.mail.to: expected at least one mailbox",
            "18:33: alerts.rules.crashes.events: expected an event: unexpected_exit, backoff, fatal, config_rejected, daemon_start, daemon_stop, found string \"explosion\"",
            "19:22: alerts.rules.crashes.sinks: no sink `nowhere`; the sinks are local, odd, mail",
            "20:17: alerts.rules.crashes.severity: expected a severity: info, notice, warning, error, critical, found string \"dire\"",
            "21:25: alerts.rules.crashes.rate_limit.max: must be from 1 to 10000, found 0",
            "21:33: alerts.rules.crashes.rate_limit.per: must be at least 1s, found string \"1ms\"",
            "22:5: alerts.rules.empty: missing required key `events` (the kinds of events it matches)",
            "22:5: alerts.rules.empty: missing required key `sinks` (where its alerts go)",
            "27:3: alerts.colour: unknown key `colour`; expected one of sinks, rules",
        ];
        assert_eq!(found.len(), expected.len(), "{found:#?}");
        for (found, expected) in found.iter().zip(expected) {
            assert!(
                found.starts_with(expected),
                "{found}\n  expected: {expected}"
            );
        }
    }

    #[test]
    fn a_rule_naming_a_program_the_config_lacks_is_a_warning() {
        let text = format!(
            "{PROGRAMS}alerts:
  sinks: {{local: {{type: syslog}}}}
  rules:
    crashes: {{events: fatal, sinks: local, programs: [web, ghost]}}
"
        );
        let config = ok(&text);
        let warnings = config.warning_lines();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with(&format!(
                "{PATH}:7:60: alerts.rules.crashes.programs: no program `ghost`"
            )),
            "{warnings:?}"
        );
        assert_eq!(config.alerts.rules["crashes"].programs, ["web", "ghost"]);
    }
}
