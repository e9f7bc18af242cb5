//! How taskctl shows things: the status table, JSON, action results, reload summaries, event
//! lines and the notices of output commands. Pure functions from protobuf messages to text, so each is unit-tested.

use std::{borrow::Cow, fmt::Write};

use chrono::{DateTime, TimeZone};
use nu_ansi_term::{Color, Style};
use serde::Serialize;
use taskmaster::proto::{
    self, ActionResponse, ClearResponse, EventKind, InstanceStatus, ReloadResponse, State,
};

/// Whether output is coloured: only on a terminal, and never when `NO_COLOR` is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Palette {
    /// Whether to write ANSI colours.
    pub color: bool,
}

impl Palette {
    #[cfg(test)]
    pub const PLAIN: Palette = Palette { color: false };

    /// Colour when `stream_is_terminal` and `NO_COLOR` is unset or empty, as no-color.org asks.
    pub fn detect(stream_is_terminal: bool) -> Palette {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty());
        Palette {
            color: stream_is_terminal && !no_color,
        }
    }

    /// `text` (a state name, maybe padded) in the colour of `state`.
    fn state(self, state: State, text: &str) -> String {
        let style = match state {
            State::Running => Color::Green.normal(),
            State::Starting | State::Stopping | State::Exited => Color::Yellow.normal(),
            State::Backoff => Color::Red.normal(),
            State::Fatal => Color::Red.bold(),
            State::Stopped | State::Unspecified => Style::new(),
        };
        self.paint(style, text)
    }

    fn paint(self, style: Style, text: &str) -> String {
        if self.color && style != Style::new() {
            style.paint(text).to_string()
        } else {
            text.to_string()
        }
    }
}

/// "RUNNING", "STOPPED", ... as supervisorctl writes them.
pub fn state_name(state: State) -> &'static str {
    let name = state.as_str_name();
    name.strip_prefix("STATE_").unwrap_or(name)
}

/// "EXITED", "CONFIG_RELOADED", ...: the proto name without its prefix, as `watch --json`
/// writes it. The one name of a kind here; [`kind_words`] is its form for event lines.
pub fn kind_name(kind: EventKind) -> &'static str {
    let name = kind.as_str_name();
    name.strip_prefix("EVENT_KIND_").unwrap_or(name)
}

/// "exited", "gave up", "config reloaded", ...: the daemon's own name of the kind, as its
/// event log writes it ("event" for a kind this taskctl does not know).
pub fn kind_words(kind: EventKind) -> &'static str {
    taskmaster::server::wire::event_kind_of(kind).map_or("event", |kind| kind.name())
}

/// The width of the widest state name, so descriptions line up.
const STATE_WIDTH: usize = 8;

/// One line per instance: `NAME  STATE  description`, names padded to the longest.
pub fn status_table(instances: &[InstanceStatus], palette: Palette) -> String {
    let width = name_width(instances.iter());
    let mut text = String::new();
    for instance in instances {
        push_status_line(&mut text, "", instance, width, palette);
    }
    text
}

/// The status of several hosts, one table: `HOST  NAME  STATE  description`, the hosts in the
/// order given and each column aligned across them. With `last_stderr`, a host that answered
/// with one instance has its [`last_stderr`] under its line, as with one host.
pub fn hosts_status_table(
    hosts: &[(&str, &[InstanceStatus])],
    palette: Palette,
    with_last_stderr: bool,
) -> String {
    let host_width = hosts.iter().map(|(host, _)| host.chars().count()).max();
    let host_width = host_width.unwrap_or(0);
    let width = name_width(hosts.iter().flat_map(|(_, instances)| instances.iter()));
    let mut text = String::new();
    for (host, instances) in hosts {
        let start = format!("{host:<host_width$}  ");
        for instance in *instances {
            push_status_line(&mut text, &start, instance, width, palette);
        }
        if let [instance] = instances
            && with_last_stderr
        {
            text.push_str(&last_stderr(instance));
        }
    }
    text
}

/// The width of the longest name among `instances`.
fn name_width<'a>(instances: impl Iterator<Item = &'a InstanceStatus>) -> usize {
    instances
        .map(|instance| instance.name.chars().count())
        .max()
        .unwrap_or(0)
}

/// `start`, then `NAME  STATE  description`, the name padded to `width`; one line.
fn push_status_line(
    text: &mut String,
    start: &str,
    instance: &InstanceStatus,
    width: usize,
    palette: Palette,
) {
    let state = instance.state();
    let padded_state = format!("{:<STATE_WIDTH$}", state_name(state));
    let line = format!(
        "{start}{:<width$}  {}  {}",
        instance.name,
        palette.state(state, &padded_state),
        description(instance)
    );
    text.push_str(line.trim_end());
    text.push('\n');
}

/// The daemon's description of an instance, and how much of its output could not be written.
fn description(instance: &InstanceStatus) -> Cow<'_, str> {
    let dropped = instance.output_dropped_bytes;
    match (dropped, instance.description.as_str()) {
        (0, description) => Cow::Borrowed(description),
        (dropped, "") => Cow::Owned(format!("{dropped} bytes of output dropped")),
        (dropped, description) => {
            Cow::Owned(format!("{description}, {dropped} bytes of output dropped"))
        }
    }
}

/// The last lines of an instance's stderr, to show under its line of the table: each line
/// indented, `  stderr| ...`. Empty when there are none.
pub fn last_stderr(instance: &InstanceStatus) -> String {
    let mut text = String::new();
    for line in instance.last_stderr.lines() {
        let _ = writeln!(text, "  stderr| {line}");
    }
    text
}

/// The fields of one instance in `status --json`. The names are an interface: keep them.
#[derive(Serialize)]
struct StatusJson<'a> {
    name: &'a str,
    program: &'a str,
    state: &'static str,
    /// `null` when no process is alive.
    pid: Option<u32>,
    uptime_secs: Option<u64>,
    /// When the instance entered its state, RFC 3339 in UTC.
    since: Option<String>,
    exit_code: Option<i32>,
    signal: Option<i32>,
    restarts: u32,
    description: &'a str,
    /// `null` unless the last spawn failed.
    spawn_error: Option<&'a str>,
    /// Left out when empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    last_stderr: Option<&'a str>,
    /// Left out when 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    output_dropped_bytes: Option<u64>,
}

/// `status --json`: one JSON array, one object per instance.
pub fn status_json(instances: &[InstanceStatus]) -> String {
    let rows: Vec<StatusJson<'_>> = instances.iter().map(status_row).collect();
    serde_json::to_string_pretty(&rows).expect("status rows serialize") + "\n"
}

/// `status --json` of several hosts: one JSON array of the instances of all, each object with
/// a `host` field first.
pub fn hosts_status_json(hosts: &[(&str, &[InstanceStatus])]) -> String {
    let rows: Vec<WithHost<'_, StatusJson<'_>>> = hosts
        .iter()
        .flat_map(|(host, instances)| {
            instances.iter().map(|instance| WithHost {
                host,
                row: status_row(instance),
            })
        })
        .collect();
    serde_json::to_string_pretty(&rows).expect("status rows serialize") + "\n"
}

/// A JSON object of one host among several: `host`, then the fields of `row`.
#[derive(Serialize)]
struct WithHost<'a, T> {
    host: &'a str,
    #[serde(flatten)]
    row: T,
}

fn status_row(instance: &InstanceStatus) -> StatusJson<'_> {
    StatusJson {
        name: &instance.name,
        program: &instance.program,
        state: state_name(instance.state()),
        pid: nonzero(instance.pid),
        uptime_secs: instance.uptime_secs,
        since: instance.since.as_ref().map(rfc3339),
        exit_code: instance.exit_code,
        signal: instance.signal,
        restarts: instance.restarts,
        description: &instance.description,
        spawn_error: nonempty(&instance.spawn_error),
        last_stderr: nonempty(&instance.last_stderr),
        output_dropped_bytes: Some(instance.output_dropped_bytes).filter(|bytes| *bytes > 0),
    }
}

/// `web:0: started`, or `web:1: ERROR (spawn error: ...)`, one line per instance.
pub fn action_results(response: &ActionResponse) -> String {
    let mut text = String::new();
    for result in &response.results {
        if result.ok {
            let _ = writeln!(text, "{}: {}", result.name, result.message);
        } else {
            let _ = writeln!(text, "{}: ERROR ({})", result.name, result.message);
        }
    }
    text
}

/// `alerts test`: a line per sink, `local: delivered` or `hook: ERROR (why)`, with what the
/// sink failed to deliver or dropped so far when it did; then what the dispatcher missed.
pub fn alerts_test(response: &proto::AlertsTestResponse) -> String {
    let mut text = String::new();
    for sink in &response.sinks {
        if sink.ok {
            let _ = write!(text, "{}: {}", sink.name, sink.message);
        } else {
            let _ = write!(text, "{}: ERROR ({})", sink.name, sink.message);
        }
        if sink.failures > 0 || sink.dropped > 0 {
            let _ = write!(
                text,
                " ({} alerts failed, {} dropped so far)",
                sink.failures, sink.dropped
            );
        }
        text.push('\n');
    }
    if response.missed_events > 0 {
        let _ = writeln!(
            text,
            "the alert dispatcher fell behind and missed {} events so far",
            response.missed_events
        );
    }
    text
}

/// `web:0: cleared`, one line per instance.
pub fn cleared(response: &ClearResponse) -> String {
    let mut text = String::new();
    for name in &response.cleared {
        let _ = writeln!(text, "{name}: cleared");
    }
    text
}

/// What `tail -f` says on stderr when the daemon skipped output this follower was too slow
/// to take.
pub fn missed_notice(missed_bytes: u64) -> String {
    format!("taskctl: skipped {missed_bytes} bytes: this follower fell behind")
}

/// The four lists of a reload, one line each, then a line per warning about the config.
pub fn reload_summary(response: &ReloadResponse) -> String {
    let list = |names: &[String]| {
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    };
    let mut text = format!(
        "added: {}\nchanged: {}\nremoved: {}\nunchanged: {}\n",
        list(&response.added),
        list(&response.changed),
        list(&response.removed),
        list(&response.unchanged),
    );
    for warning in &response.warnings {
        text.push_str(&format!("warning: {warning}\n"));
    }
    text
}

/// One line for an event, without a newline:
/// `2026-11-26 09:10:00.123  web:0  RUNNING -> EXITED  pid 123  exit status 1 (unexpected)`.
/// The time is shown in `zone` (the local time zone outside tests).
pub fn event_line<Tz>(event: &proto::Event, zone: &Tz, palette: Palette) -> String
where
    Tz: TimeZone,
    Tz::Offset: std::fmt::Display,
{
    let time = event
        .time
        .as_ref()
        .and_then(timestamp)
        .map(|time| {
            time.with_timezone(zone)
                .format("%Y-%m-%d %H:%M:%S%.3f")
                .to_string()
        })
        .unwrap_or_else(|| "-".repeat(23));
    let kind = event.kind();
    if kind == EventKind::Lagged {
        return format!("{time}  taskmasterd  missed {} events", event.missed);
    }
    if event.instance.is_empty() {
        let what = kind_words(kind);
        let mut line = format!("{time}  taskmasterd  {what}");
        if !event.message.is_empty() {
            // A rejected config lists one error per line; an event is one line.
            let _ = write!(line, "  {}", event.message.replace('\n', "; "));
        }
        push_actor(&mut line, event);
        return line;
    }
    let (old, new) = (event.old_state(), event.new_state());
    let change = if old != new && old != State::Unspecified {
        format!(
            "{} -> {}",
            state_name(old),
            palette.state(new, state_name(new))
        )
    } else {
        kind_words(kind).to_string()
    };
    let mut line = format!("{time}  {}  {change}", event.instance);
    if event.pid != 0 {
        let _ = write!(line, "  pid {}", event.pid);
    }
    if !event.message.is_empty() {
        let _ = write!(line, "  {}", event.message.replace('\n', "; "));
    }
    push_actor(&mut line, event);
    if let Some(last) = event
        .last_stderr
        .lines()
        .rfind(|line| !line.trim().is_empty())
    {
        let _ = write!(line, " | last stderr: {}", last.trim_end());
    }
    line
}

/// `  (by uid 1000 (alice))` after an event somebody caused.
fn push_actor(line: &mut String, event: &proto::Event) {
    if !event.actor.is_empty() {
        let _ = write!(line, "  (by {})", event.actor);
    }
}

/// The fields of one event in `watch --json`. The names are an interface: keep them.
#[derive(Serialize)]
struct EventJson<'a> {
    /// The daemon run `seq` counts in (`watch --since RUN:SEQ` resumes there).
    run: u64,
    seq: u64,
    /// RFC 3339 in UTC, with milliseconds.
    time: Option<String>,
    kind: &'static str,
    /// `null` for daemon-level events.
    instance: Option<&'a str>,
    program: Option<&'a str>,
    old_state: Option<&'static str>,
    new_state: Option<&'static str>,
    pid: Option<u32>,
    exit_code: Option<i32>,
    signal: Option<i32>,
    expected: bool,
    message: &'a str,
    missed: u64,
    /// Left out when empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    last_stderr: Option<&'a str>,
    /// Who caused it; `null` for what a process did of its own.
    actor: Option<&'a str>,
}

/// `watch --json`: one JSON object, on one line; with several hosts, `host` is its first field.
pub fn event_json(event: &proto::Event, host: Option<&str>) -> String {
    let row = event_row(event);
    match host {
        Some(host) => serde_json::to_string(&WithHost { host, row }),
        None => serde_json::to_string(&row),
    }
    .expect("event serializes")
}

fn event_row(event: &proto::Event) -> EventJson<'_> {
    let state = |state: State| (state != State::Unspecified).then(|| state_name(state));
    EventJson {
        run: event.run,
        seq: event.seq,
        time: event.time.as_ref().map(rfc3339),
        kind: kind_name(event.kind()),
        instance: nonempty(&event.instance),
        program: nonempty(&event.program),
        old_state: state(event.old_state()),
        new_state: state(event.new_state()),
        pid: nonzero(event.pid),
        exit_code: event.exit_code,
        signal: event.signal,
        expected: event.expected,
        message: &event.message,
        missed: event.missed,
        last_stderr: nonempty(&event.last_stderr),
        actor: nonempty(&event.actor),
    }
}

/// A protobuf timestamp as a UTC time; `None` when out of range.
fn timestamp(time: &prost_types::Timestamp) -> Option<DateTime<chrono::Utc>> {
    DateTime::from_timestamp(time.seconds, u32::try_from(time.nanos).ok()?)
}

/// `2026-11-26T09:10:00.123Z`
fn rfc3339(time: &prost_types::Timestamp) -> String {
    timestamp(time).map_or_else(String::new, |time| {
        time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    })
}

fn nonzero(value: u32) -> Option<u32> {
    (value != 0).then_some(value)
}

fn nonempty(text: &str) -> Option<&str> {
    (!text.is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use chrono::FixedOffset;
    use taskmaster::proto::InstanceResult;

    use super::*;

    fn instance(name: &str, state: State, pid: u32, description: &str) -> InstanceStatus {
        InstanceStatus {
            name: name.into(),
            program: name.split(':').next().unwrap().into(),
            state: state.into(),
            pid,
            description: description.into(),
            ..Default::default()
        }
    }

    /// 2026-11-26 09:10:00.123 UTC
    fn at() -> Option<prost_types::Timestamp> {
        Some(prost_types::Timestamp {
            seconds: 1_795_684_200,
            nanos: 123_000_000,
        })
    }

    #[test]
    fn table_aligns_names_and_states() {
        let table = status_table(
            &[
                instance("web:0", State::Running, 12, "pid 12, uptime 0:00:05"),
                instance("database", State::Fatal, 0, "spawn error: No such file"),
                instance("idle", State::Stopped, 0, ""),
            ],
            Palette::PLAIN,
        );
        assert_eq!(
            table,
            "web:0     RUNNING   pid 12, uptime 0:00:05\n\
             database  FATAL     spawn error: No such file\n\
             idle      STOPPED\n"
        );
    }

    #[test]
    fn table_colours_only_the_state() {
        let palette = Palette { color: true };
        let table = status_table(&[instance("web", State::Running, 1, "up")], palette);
        let green = Color::Green.normal().paint("RUNNING ").to_string();
        assert_eq!(table, format!("web  {green}  up\n"));
        assert!(
            !status_table(&[instance("web", State::Running, 1, "up")], Palette::PLAIN)
                .contains('\x1b')
        );
    }

    #[test]
    fn json_has_the_stable_field_names() {
        let mut running = instance("web", State::Running, 42, "pid 42, uptime 0:00:01");
        running.uptime_secs = Some(1);
        running.since = at();
        let mut exited = instance("job", State::Exited, 0, "exit status 3");
        exited.exit_code = Some(3);
        exited.restarts = 2;
        let value: serde_json::Value =
            serde_json::from_str(&status_json(&[running, exited])).unwrap();
        assert_eq!(
            value,
            serde_json::json!([
                {"name": "web", "program": "web", "state": "RUNNING", "pid": 42,
                 "uptime_secs": 1, "since": "2026-11-26T09:10:00.123Z", "exit_code": null,
                 "signal": null, "restarts": 0, "description": "pid 42, uptime 0:00:01",
                 "spawn_error": null},
                {"name": "job", "program": "job", "state": "EXITED", "pid": null,
                 "uptime_secs": null, "since": null, "exit_code": 3, "signal": null,
                 "restarts": 2, "description": "exit status 3", "spawn_error": null},
            ])
        );
        assert_eq!(status_json(&[]), "[]\n");
    }

    #[test]
    fn dropped_output_is_told_in_the_description() {
        let mut web = instance("web", State::Running, 12, "pid 12, uptime 0:00:05");
        web.output_dropped_bytes = 4096;
        let mut idle = instance("idle", State::Stopped, 0, "");
        idle.output_dropped_bytes = 3;
        let job = instance("job", State::Exited, 0, "exit status 3");
        assert_eq!(
            status_table(&[web, idle, job], Palette::PLAIN),
            "web   RUNNING   pid 12, uptime 0:00:05, 4096 bytes of output dropped\n\
             idle  STOPPED   3 bytes of output dropped\n\
             job   EXITED    exit status 3\n"
        );
    }

    #[test]
    fn last_stderr_is_indented_under_the_line() {
        let mut job = instance("job", State::Backoff, 0, "Exited too quickly");
        job.last_stderr = "job: cannot open /etc/job.conf\nusage: job [-v]\n".into();
        assert_eq!(
            last_stderr(&job),
            "  stderr| job: cannot open /etc/job.conf\n  stderr| usage: job [-v]\n"
        );
        // Without a newline at the end, too.
        job.last_stderr = "one\ntwo".into();
        assert_eq!(last_stderr(&job), "  stderr| one\n  stderr| two\n");
        job.last_stderr.clear();
        assert_eq!(last_stderr(&job), "");
    }

    #[test]
    fn json_has_last_stderr_and_dropped_bytes_where_there_are_some() {
        let mut job = instance("job", State::Fatal, 0, "Exited too quickly");
        job.last_stderr = "boom\n".into();
        job.output_dropped_bytes = 12;
        let value: serde_json::Value =
            serde_json::from_str(&status_json(&[job, instance("web", State::Running, 4, "")]))
                .unwrap();
        assert_eq!(value[0]["last_stderr"], "boom\n");
        assert_eq!(value[0]["output_dropped_bytes"], 12);
        let quiet = value[1].as_object().unwrap();
        assert!(!quiet.contains_key("last_stderr") && !quiet.contains_key("output_dropped_bytes"));
    }

    #[test]
    fn cleared_and_missed_lines() {
        let response = ClearResponse {
            cleared: vec!["web:0".into(), "web:1".into()],
        };
        assert_eq!(cleared(&response), "web:0: cleared\nweb:1: cleared\n");
        assert_eq!(cleared(&ClearResponse::default()), "");
        assert_eq!(
            missed_notice(512),
            "taskctl: skipped 512 bytes: this follower fell behind"
        );
    }

    #[test]
    fn action_lines_show_errors_in_supervisorctl_style() {
        let result = |name: &str, ok: bool, message: &str| InstanceResult {
            name: name.into(),
            ok,
            message: message.into(),
            state: 0,
        };
        let response = ActionResponse {
            results: vec![
                result("web:0", true, "started"),
                result("web:1", false, "spawn error: No such file or directory"),
            ],
        };
        assert_eq!(
            action_results(&response),
            "web:0: started\nweb:1: ERROR (spawn error: No such file or directory)\n"
        );
    }

    #[test]
    fn reload_summary_lists_each_kind() {
        let response = ReloadResponse {
            added: vec!["api".into(), "cron".into()],
            changed: vec![],
            removed: vec!["old".into()],
            unchanged: vec!["web".into()],
            warnings: vec![],
        };
        assert_eq!(
            reload_summary(&response),
            "added: api, cron\nchanged: none\nremoved: old\nunchanged: web\n"
        );
        let warned = ReloadResponse {
            warnings: vec!["/etc/tm.yaml:4:10: programs.api.cmd: not found".into()],
            ..response
        };
        assert_eq!(
            reload_summary(&warned),
            "added: api, cron\nchanged: none\nremoved: old\nunchanged: web\n\
             warning: /etc/tm.yaml:4:10: programs.api.cmd: not found\n"
        );
    }

    fn exited_event() -> proto::Event {
        proto::Event {
            seq: 7,
            time: at(),
            kind: EventKind::Exited.into(),
            instance: "web:0".into(),
            program: "web".into(),
            old_state: State::Running.into(),
            new_state: State::Exited.into(),
            pid: 123,
            exit_code: Some(1),
            message: "exit status 1 (unexpected)".into(),
            ..Default::default()
        }
    }

    #[test]
    fn event_line_shows_the_transition() {
        let utc = FixedOffset::east_opt(0).unwrap();
        assert_eq!(
            event_line(&exited_event(), &utc, Palette::PLAIN),
            "2026-11-26 09:10:00.123  web:0  RUNNING -> EXITED  pid 123  exit status 1 (unexpected)"
        );
        let paris = FixedOffset::east_opt(3600).unwrap();
        assert!(
            event_line(&exited_event(), &paris, Palette::PLAIN).starts_with("2026-11-26 10:10")
        );
    }

    #[test]
    fn event_line_ends_with_the_last_line_of_stderr() {
        let utc = FixedOffset::east_opt(0).unwrap();
        let mut exited = exited_event();
        exited.last_stderr = "starting\nfatal: no config\n\n".into();
        assert_eq!(
            event_line(&exited, &utc, Palette::PLAIN),
            "2026-11-26 09:10:00.123  web:0  RUNNING -> EXITED  pid 123  \
             exit status 1 (unexpected) | last stderr: fatal: no config"
        );
        let value: serde_json::Value = serde_json::from_str(&event_json(&exited, None)).unwrap();
        assert_eq!(value["last_stderr"], "starting\nfatal: no config\n\n");
        exited.last_stderr = "\n".into();
        assert!(event_line(&exited, &utc, Palette::PLAIN).ends_with("(unexpected)"));
    }

    #[test]
    fn output_dropped_is_an_instance_event_line() {
        let utc = FixedOffset::east_opt(0).unwrap();
        let dropped = proto::Event {
            time: at(),
            kind: EventKind::OutputDropped.into(),
            instance: "web:0".into(),
            program: "web".into(),
            old_state: State::Running.into(),
            new_state: State::Running.into(),
            pid: 9,
            message: "1024 bytes of stdout dropped".into(),
            ..Default::default()
        };
        let line = event_line(&dropped, &utc, Palette::PLAIN);
        // The kind's words are the daemon's ("event" until it names this kind).
        let words = kind_words(EventKind::OutputDropped);
        assert_eq!(
            line,
            format!("2026-11-26 09:10:00.123  web:0  {words}  pid 9  1024 bytes of stdout dropped")
        );
        let value: serde_json::Value = serde_json::from_str(&event_json(&dropped, None)).unwrap();
        assert_eq!(value["kind"], "OUTPUT_DROPPED");
        assert!(value.get("last_stderr").is_none());
    }

    #[test]
    fn event_without_a_state_change_names_its_kind() {
        let utc = FixedOffset::east_opt(0).unwrap();
        let restarting = proto::Event {
            time: at(),
            kind: EventKind::Restarting.into(),
            instance: "web".into(),
            old_state: State::Running.into(),
            new_state: State::Running.into(),
            pid: 5,
            message: "restart requested".into(),
            actor: "uid 1000 (alice)".into(),
            ..Default::default()
        };
        assert_eq!(
            event_line(&restarting, &utc, Palette::PLAIN),
            "2026-11-26 09:10:00.123  web  restarting  pid 5  restart requested  \
             (by uid 1000 (alice))"
        );
        let value: serde_json::Value =
            serde_json::from_str(&event_json(&restarting, None)).unwrap();
        assert_eq!(value["actor"], "uid 1000 (alice)");
    }

    #[test]
    fn daemon_and_lagged_events() {
        let utc = FixedOffset::east_opt(0).unwrap();
        let reloaded = proto::Event {
            time: at(),
            kind: EventKind::ConfigReloaded.into(),
            message: "added: api; changed: none; removed: none; unchanged: 1".into(),
            actor: "signal SIGHUP".into(),
            ..Default::default()
        };
        assert_eq!(
            event_line(&reloaded, &utc, Palette::PLAIN),
            "2026-11-26 09:10:00.123  taskmasterd  config reloaded  \
             added: api; changed: none; removed: none; unchanged: 1  (by signal SIGHUP)"
        );
        let rejected = proto::Event {
            time: at(),
            kind: EventKind::ConfigRejected.into(),
            message: "a:1:1: bad\na:2:1: worse".into(),
            ..Default::default()
        };
        assert!(event_line(&rejected, &utc, Palette::PLAIN).ends_with("a:1:1: bad; a:2:1: worse"));
        let lagged = proto::Event {
            time: at(),
            kind: EventKind::Lagged.into(),
            missed: 12,
            ..Default::default()
        };
        assert_eq!(
            event_line(&lagged, &utc, Palette::PLAIN),
            "2026-11-26 09:10:00.123  taskmasterd  missed 12 events"
        );
    }

    #[test]
    fn kinds_have_one_name_in_two_forms() {
        assert_eq!(kind_name(EventKind::GaveUp), "GAVE_UP");
        assert_eq!(kind_words(EventKind::GaveUp), "gave up");
        assert_eq!(kind_words(EventKind::ConfigReloaded), "config reloaded");
        assert_eq!(kind_words(EventKind::Unspecified), "event");
    }

    #[test]
    fn event_json_is_one_line_with_stable_names() {
        let line = event_json(&exited_event(), None);
        assert!(!line.contains('\n'));
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "run": 0, "seq": 7, "time": "2026-11-26T09:10:00.123Z", "kind": "EXITED",
                "instance": "web:0", "program": "web", "old_state": "RUNNING",
                "new_state": "EXITED", "pid": 123, "exit_code": 1, "signal": null,
                "expected": false, "message": "exit status 1 (unexpected)", "missed": 0,
                "actor": null
            })
        );
    }

    #[test]
    fn several_hosts_share_one_table_and_name_their_rows() {
        let mut failed = instance("web", State::Backoff, 0, "exit status 1");
        failed.last_stderr = "boom\n".into();
        let a = [
            instance("web:0", State::Running, 12, "pid 12"),
            instance("idle", State::Stopped, 0, ""),
        ];
        let b = [failed];
        let hosts: [(&str, &[InstanceStatus]); 2] = [("prod", &a), ("lab-2", &b)];
        assert_eq!(
            hosts_status_table(&hosts, Palette::PLAIN, false),
            "prod   web:0  RUNNING   pid 12\n\
             prod   idle   STOPPED\n\
             lab-2  web    BACKOFF   exit status 1\n"
        );
        assert!(
            hosts_status_table(&hosts, Palette::PLAIN, true)
                .ends_with("lab-2  web    BACKOFF   exit status 1\n  stderr| boom\n")
        );
        let value: serde_json::Value = serde_json::from_str(&hosts_status_json(&hosts)).unwrap();
        let rows: Vec<(&str, &str)> = value
            .as_array()
            .unwrap()
            .iter()
            .map(|row| (row["host"].as_str().unwrap(), row["name"].as_str().unwrap()))
            .collect();
        assert_eq!(
            rows,
            [("prod", "web:0"), ("prod", "idle"), ("lab-2", "web")]
        );
        let line = event_json(&exited_event(), Some("prod"));
        assert!(
            line.starts_with(r#"{"host":"prod","run":0,"seq":7,"#),
            "{line}"
        );
    }
}
