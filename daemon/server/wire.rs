//! The one place where the supervisor's domain types become wire types of `proto/` (and the
//! wire's enums become domain ones).

use std::time::SystemTime;

use crate::{
    proto,
    supervisor::{
        InstanceResult, InstanceView, ReloadSummary,
        event::{Delivery, EventKind, Record},
        process::ExitInfo,
        state::State,
    },
};

pub fn state(state: State) -> proto::State {
    match state {
        State::Stopped => proto::State::Stopped,
        State::Starting => proto::State::Starting,
        State::Running => proto::State::Running,
        State::Backoff => proto::State::Backoff,
        State::Stopping => proto::State::Stopping,
        State::Exited => proto::State::Exited,
        State::Fatal => proto::State::Fatal,
    }
}

fn optional_state(value: Option<State>) -> proto::State {
    value.map_or(proto::State::Unspecified, state)
}

pub fn event_kind(kind: EventKind) -> proto::EventKind {
    match kind {
        EventKind::Spawned => proto::EventKind::Spawned,
        EventKind::Started => proto::EventKind::Started,
        EventKind::Exited => proto::EventKind::Exited,
        EventKind::Backoff => proto::EventKind::Backoff,
        EventKind::GaveUp => proto::EventKind::GaveUp,
        EventKind::Stopping => proto::EventKind::Stopping,
        EventKind::Stopped => proto::EventKind::Stopped,
        EventKind::Killed => proto::EventKind::Killed,
        EventKind::Restarting => proto::EventKind::Restarting,
        EventKind::ConfigReloaded => proto::EventKind::ConfigReloaded,
        EventKind::ConfigRejected => proto::EventKind::ConfigRejected,
        EventKind::DaemonStarted => proto::EventKind::DaemonStarted,
        EventKind::DaemonStopping => proto::EventKind::DaemonStopping,
        EventKind::Lagged => proto::EventKind::Lagged,
        EventKind::OutputDropped => proto::EventKind::OutputDropped,
        EventKind::HistoryRestarted => proto::EventKind::HistoryRestarted,
        EventKind::OutputReopened => proto::EventKind::OutputReopened,
        EventKind::OutputCleared => proto::EventKind::OutputCleared,
        EventKind::Signalled => proto::EventKind::Signalled,
    }
}

/// The domain kind of a wire kind; `None` for UNSPECIFIED.
pub fn event_kind_of(kind: proto::EventKind) -> Option<EventKind> {
    EventKind::ALL
        .into_iter()
        .find(|domain| event_kind(*domain) == kind)
}

pub fn instance_status(view: InstanceView) -> proto::InstanceStatus {
    proto::InstanceStatus {
        name: view.name,
        program: view.program,
        state: state(view.state).into(),
        pid: view.pid,
        uptime_secs: view.uptime.map(|uptime| uptime.as_secs()),
        since: Some(view.since.into()),
        exit_code: view.exit.and_then(ExitInfo::code),
        signal: view.exit.and_then(ExitInfo::signal),
        restarts: view.restarts,
        description: view.description,
        spawn_error: view.spawn_error,
        last_stderr: view.last_stderr,
        output_dropped_bytes: view.output_dropped,
    }
}

pub fn action_response(results: Vec<InstanceResult>) -> proto::ActionResponse {
    proto::ActionResponse {
        results: results
            .into_iter()
            .map(|result| proto::InstanceResult {
                name: result.name.to_string(),
                ok: result.ok,
                message: result.message,
                state: state(result.state).into(),
            })
            .collect(),
    }
}

pub fn reload_response(summary: ReloadSummary) -> proto::ReloadResponse {
    let ReloadSummary {
        added,
        changed,
        removed,
        unchanged,
        warnings,
    } = summary;
    proto::ReloadResponse {
        added,
        changed,
        removed,
        unchanged,
        warnings,
    }
}

pub fn alerts_test_response(report: crate::alerts::TestReport) -> proto::AlertsTestResponse {
    proto::AlertsTestResponse {
        sinks: (report.sinks.into_iter())
            .map(|sink| proto::SinkOutcome {
                name: sink.name,
                ok: sink.outcome.is_ok(),
                message: sink
                    .outcome
                    .err()
                    .unwrap_or_else(|| "delivered".to_string()),
                failures: sink.failures,
                dropped: sink.dropped,
            })
            .collect(),
        missed_events: report.missed_events,
    }
}

/// The wire form of `record`, an event of daemon run `run`.
pub fn event(record: &Record, run: u64) -> proto::Event {
    proto::Event {
        run,
        seq: record.seq,
        time: record.time.map(prost_types::Timestamp::from),
        kind: event_kind(record.kind).into(),
        instance: record.instance.to_string(),
        program: record.program().to_string(),
        old_state: optional_state(record.old_state).into(),
        new_state: optional_state(record.new_state).into(),
        pid: record.pid,
        exit_code: record.exit.and_then(ExitInfo::code),
        signal: record.exit.and_then(ExitInfo::signal),
        expected: record.expected,
        message: record.message.to_string(),
        missed: 0,
        last_stderr: record.last_stderr.as_deref().unwrap_or("").to_string(),
        actor: record
            .actor
            .as_ref()
            .map_or_else(String::new, ToString::to_string),
    }
}

/// What a watcher of daemon run `run` is sent for one delivery.
pub fn delivery(delivery: Delivery, run: u64) -> proto::Event {
    match delivery {
        Delivery::Event(record) => event(&record, run),
        Delivery::Missed(missed) => proto::Event {
            run,
            ..lagged(missed)
        },
        Delivery::Restarted { earlier } => proto::Event {
            kind: proto::EventKind::HistoryRestarted.into(),
            time: Some(SystemTime::now().into()),
            run,
            message: format!(
                "the daemon restarted since run {earlier}: this is run {run}, its events are \
                 numbered from 1 again and all it kept follows"
            ),
            ..Default::default()
        },
    }
}

/// The notice a watcher gets in place of `missed` events it could not keep up with.
fn lagged(missed: u64) -> proto::Event {
    proto::Event {
        kind: proto::EventKind::Lagged.into(),
        time: Some(SystemTime::now().into()),
        missed,
        message: format!("{missed} events were dropped because this watcher fell behind"),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_kind_has_its_own_wire_kind_and_back() {
        for kind in EventKind::ALL {
            assert_eq!(event_kind_of(event_kind(kind)), Some(kind), "{kind:?}");
        }
        assert_eq!(event_kind_of(proto::EventKind::Unspecified), None);
    }
}
