//! A rule at work: which events it matches, and its rate limit, which lets at most `max`
//! alerts through per period and folds the rest into one digest sent when the period ends.
//! Pure: time is given, never read, so the limits are tested without waiting.

use std::sync::Arc;
use std::time::SystemTime;

use tokio::time::Instant;

use super::alert::{Alert, Body, Digest};
use crate::config::alerts::{AlertEvent, RuleConfig, Severity};
use crate::supervisor::event::{EventKind, Record};

/// What of `event` rules can match: its kind as an alert event, if it is one.
pub fn alert_event(event: &Record) -> Option<AlertEvent> {
    match event.kind {
        EventKind::Exited if !event.expected => Some(AlertEvent::UnexpectedExit),
        EventKind::Backoff => Some(AlertEvent::Backoff),
        EventKind::GaveUp => Some(AlertEvent::Fatal),
        EventKind::ConfigRejected => Some(AlertEvent::ConfigRejected),
        EventKind::DaemonStarted => Some(AlertEvent::DaemonStart),
        EventKind::DaemonStopping => Some(AlertEvent::DaemonStop),
        _ => None,
    }
}

/// A rule of the config, with the state of its rate limit.
#[derive(Debug)]
pub struct Rule {
    pub name: Arc<str>,
    pub config: RuleConfig,
    /// The period in progress: when it began and how many alerts it let through.
    period: Option<(Instant, u32)>,
    /// What the period held back.
    held: Digest,
}

impl Rule {
    pub fn new(name: &str, config: RuleConfig) -> Rule {
        Rule {
            name: Arc::from(name),
            config,
            period: None,
            held: Digest::default(),
        }
    }

    /// What `event` is to this rule: its alert event and severity, if the rule matches it.
    pub fn matches(&self, event: &Record) -> Option<(AlertEvent, Severity)> {
        let matched = alert_event(event)?;
        let severity = matched.severity();
        let program = event.program();
        let of_program = self.config.programs.is_empty()
            || program.is_empty()
            || self.config.programs.iter().any(|name| name == program);
        (self.config.events.binary_search(&matched).is_ok()
            && of_program
            && severity >= self.config.severity)
            .then_some((matched, severity))
    }

    /// The alert for `event` at `now`, if the rule matches it and its limit lets it through;
    /// an event it matches beyond the limit is counted for the digest instead. The caller
    /// sends a due digest ([`Rule::digest_due`]) first.
    pub fn raise(&mut self, event: &Arc<Record>, now: Instant) -> Option<Alert> {
        let (matched, severity) = self.matches(event)?;
        let limit = self.config.rate_limit;
        let sent = match &mut self.period {
            Some((began, sent)) if now < *began + limit.per => sent,
            _ => &mut self.period.insert((now, 0)).1,
        };
        if *sent >= limit.max {
            self.held.add(matched, severity, event);
            return None;
        }
        *sent += 1;
        Some(Alert {
            rule: self.name.clone(),
            severity,
            time: SystemTime::now(),
            body: Body::Event {
                matched,
                event: event.clone(),
            },
        })
    }

    /// When the digest of what was held back is due: the end of the period, if anything was.
    pub fn due(&self) -> Option<Instant> {
        match self.period {
            Some((began, _)) if self.held.count > 0 => Some(began + self.config.rate_limit.per),
            _ => None,
        }
    }

    /// The digest of what was held back, if it is due at `now`; the next period begins with
    /// the next event.
    pub fn digest_due(&mut self, now: Instant) -> Option<Alert> {
        if self.due().is_some_and(|due| due <= now) {
            self.period = None;
            return self.digest();
        }
        None
    }

    /// The digest of what was held back so far, due or not (the rule is going away, or the
    /// daemon is).
    pub fn digest(&mut self) -> Option<Alert> {
        if self.held.count == 0 {
            return None;
        }
        let held = std::mem::take(&mut self.held);
        Some(Alert {
            rule: self.name.clone(),
            severity: held.severity.unwrap_or(Severity::Notice),
            time: SystemTime::now(),
            body: Body::Digest(held),
        })
    }

    /// A test alert of this rule, asked by `by`.
    pub fn test(&self, by: String) -> Alert {
        Alert {
            rule: self.name.clone(),
            severity: Severity::Notice,
            time: SystemTime::now(),
            body: Body::Test { by },
        }
    }

    /// Takes over the state of the rate limit of `earlier`, a rule of the same name and config.
    pub fn continue_from(&mut self, earlier: Rule) {
        self.period = earlier.period;
        self.held = earlier.held;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::alerts::RateLimit;

    fn rule(events: &[AlertEvent], programs: &[&str], severity: Severity, max: u32) -> Rule {
        Rule::new(
            "r",
            RuleConfig {
                events: events.to_vec(),
                programs: programs.iter().map(|name| name.to_string()).collect(),
                severity,
                sinks: vec!["s".into()],
                rate_limit: RateLimit {
                    max,
                    per: Duration::from_secs(10),
                },
            },
        )
    }

    fn event(kind: EventKind, instance: &str, expected: bool) -> Arc<Record> {
        Arc::new(Record {
            instance: instance.into(),
            expected,
            ..Record::new(kind)
        })
    }

    #[test]
    fn a_rule_matches_its_kinds_of_its_programs_from_its_severity() {
        use AlertEvent::*;
        let crashes = rule(&[UnexpectedExit, Fatal], &["web"], Severity::Info, 10);
        let exit = |instance, expected| event(EventKind::Exited, instance, expected);
        assert_eq!(
            crashes.matches(&exit("web:1", false)),
            Some((UnexpectedExit, Severity::Error))
        );
        // An expected exit, another program, another kind: no.
        assert_eq!(crashes.matches(&exit("web:1", true)), None);
        assert_eq!(crashes.matches(&exit("db", false)), None);
        assert_eq!(
            crashes.matches(&event(EventKind::Backoff, "web", false)),
            None
        );
        assert_eq!(
            crashes.matches(&event(EventKind::Spawned, "web", false)),
            None
        );
        // Daemon events are of no program: they pass the program filter.
        let daemon = rule(&[DaemonStop], &["web"], Severity::Info, 10);
        assert!(
            daemon
                .matches(&event(EventKind::DaemonStopping, "", false))
                .is_some()
        );
        // Severity: FATAL is critical, BACKOFF a warning.
        let grave = rule(&[Backoff, Fatal], &[], Severity::Error, 10);
        assert!(
            grave
                .matches(&event(EventKind::GaveUp, "db", false))
                .is_some()
        );
        assert_eq!(grave.matches(&event(EventKind::Backoff, "db", false)), None);
    }

    #[test]
    fn a_storm_lets_max_alerts_through_per_period_and_folds_the_rest_into_one_digest() {
        let mut rule = rule(&[AlertEvent::UnexpectedExit], &[], Severity::Info, 3);
        let start = Instant::now();
        let exit = event(EventKind::Exited, "web:0", false);
        let mut sent = 0;
        let mut digests = Vec::new();
        // 1000 exits over 30 s: one every 30 ms.
        for index in 0..1000u64 {
            let now = start + Duration::from_millis(index * 30);
            if let Some(digest) = rule.digest_due(now) {
                digests.push(digest.count());
            }
            sent += u64::from(rule.raise(&exit, now).is_some());
        }
        digests.extend(rule.digest().map(|digest| digest.count()));
        // Three periods of 10 s (each begun by the first event after the last ended): 3
        // alerts each, and a digest after each.
        assert_eq!(sent, 9);
        assert_eq!(digests.len(), 3);
        assert_eq!(
            sent + digests.iter().sum::<u64>(),
            1000,
            "nothing lost uncounted"
        );
        // Nothing held: nothing due, no digest.
        assert_eq!(rule.due(), None);
        assert!(rule.digest().is_none());
    }

    #[test]
    fn a_digest_is_due_at_the_end_of_the_period_that_held_something() {
        let mut rule = rule(&[AlertEvent::Backoff], &[], Severity::Info, 1);
        let start = Instant::now();
        let backoff = event(EventKind::Backoff, "web", false);
        assert!(rule.raise(&backoff, start).is_some());
        assert_eq!(rule.due(), None);
        assert!(
            rule.raise(&backoff, start + Duration::from_secs(1))
                .is_none()
        );
        let due = start + Duration::from_secs(10);
        assert_eq!(rule.due(), Some(due));
        assert!(rule.digest_due(due - Duration::from_millis(1)).is_none());
        let digest = rule.digest_due(due).expect("due");
        assert_eq!(digest.count(), 1);
        assert_eq!(digest.severity, Severity::Warning);
        // The next event begins a new period.
        assert!(rule.raise(&backoff, due + Duration::from_secs(1)).is_some());
    }
}
