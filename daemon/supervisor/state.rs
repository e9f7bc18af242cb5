//! The lifecycle of one instance: its states, the inputs that move it, and the pure transition
//! function the supervisor applies. Nothing here does I/O; the supervisor carries out the
//! returned [`Effect`].
//!
//! Allowed transitions ("A <- B, C" means A is entered only from B or C):
//! - STARTING <- STOPPED, EXITED, FATAL, BACKOFF (a start request or a due retry)
//! - RUNNING  <- STARTING (it stayed up `starttime`)
//! - BACKOFF  <- STARTING (a failed start with retries left)
//! - FATAL    <- STARTING (a failed start with no retries left)
//! - EXITED   <- RUNNING (it exited on its own)
//! - STOPPING <- STARTING, RUNNING (a stop request)
//! - STOPPED  <- STOPPING (reaped), BACKOFF (a stop request cancels the retry)

use std::time::Duration;

use crate::config::AutoRestart;
use crate::proto;

/// supervisord's process states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Stopped,
    Starting,
    Running,
    Backoff,
    Stopping,
    Exited,
    Fatal,
}

impl State {
    pub const ALL: [State; 7] = [
        State::Stopped,
        State::Starting,
        State::Running,
        State::Backoff,
        State::Stopping,
        State::Exited,
        State::Fatal,
    ];

    /// Whether a process exists (spawned and not yet reaped) in this state.
    pub fn has_process(self) -> bool {
        matches!(self, State::Starting | State::Running | State::Stopping)
    }

    /// Whether the instance is meant to be up (a process, or a retry pending).
    pub fn is_active(self) -> bool {
        matches!(self, State::Starting | State::Running | State::Backoff)
    }

    pub fn name(self) -> &'static str {
        match self {
            State::Stopped => "STOPPED",
            State::Starting => "STARTING",
            State::Running => "RUNNING",
            State::Backoff => "BACKOFF",
            State::Stopping => "STOPPING",
            State::Exited => "EXITED",
            State::Fatal => "FATAL",
        }
    }
}

impl From<State> for proto::State {
    fn from(state: State) -> Self {
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
}

/// What happened to an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// A start was requested: by a client, autostart, autorestart or a reload.
    Start,
    /// A stop was requested.
    Stop,
    /// The process has stayed up for `starttime`.
    StartTimeElapsed,
    /// The spawn itself failed (missing binary, bad working directory, ...).
    SpawnFailed,
    /// The process was reaped; `expected` when its exit code is one of `exitcodes`.
    Exited { expected: bool },
    /// The backoff delay is over.
    RetryDue,
}

/// The per-instance facts a transition reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifecycle {
    pub state: State,
    /// Failed starts in the current start sequence; reset by a start request and by RUNNING.
    pub failed_starts: u32,
}

impl Lifecycle {
    pub const INITIAL: Lifecycle = Lifecycle {
        state: State::Stopped,
        failed_starts: 0,
    };
}

/// The program settings transitions depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub autorestart: AutoRestart,
    pub startretries: u32,
}

/// What the supervisor must do after a transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    None,
    /// Spawn a new process.
    Spawn,
    /// Send the stop signal (SIGKILL follows after `stoptime`).
    SignalStop,
    /// Schedule [`Input::RetryDue`] after this delay.
    ScheduleRetry(Duration),
    /// The process exited and autorestart wants it back: feed [`Input::Start`].
    Restart,
}

/// An input the current state does not accept; the supervisor logs and ignores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not accepted in state {}", state.name())]
pub struct Illegal {
    pub state: State,
    pub input: Input,
}

/// The delay before retry number `failed_starts`: 1 s, 2 s, 4 s ... capped at 60 s.
pub fn backoff_delay(failed_starts: u32) -> Duration {
    let exponent = failed_starts.saturating_sub(1).min(6);
    Duration::from_secs(1u64 << exponent).min(Duration::from_secs(60))
}

/// The next lifecycle and the effect to carry out, or [`Illegal`].
pub fn transition(
    now: Lifecycle,
    input: Input,
    policy: Policy,
) -> Result<(Lifecycle, Effect), Illegal> {
    use State::*;
    let to = |state, failed_starts| Lifecycle {
        state,
        failed_starts,
    };
    let failed = now.failed_starts;
    let next = match (now.state, input) {
        (Stopped | Exited | Fatal | Backoff, Input::Start) => (to(Starting, 0), Effect::Spawn),
        (Starting | Running, Input::Start) => (now, Effect::None),
        (Backoff, Input::RetryDue) => (to(Starting, failed), Effect::Spawn),
        (Starting, Input::StartTimeElapsed) => (to(Running, 0), Effect::None),
        (Starting, Input::SpawnFailed | Input::Exited { .. }) => {
            let failed = failed + 1;
            if failed <= policy.startretries {
                (
                    to(Backoff, failed),
                    Effect::ScheduleRetry(backoff_delay(failed)),
                )
            } else {
                (to(Fatal, failed), Effect::None)
            }
        }
        (Running, Input::Exited { expected }) => {
            let restart = match policy.autorestart {
                AutoRestart::Always => true,
                AutoRestart::Never => false,
                AutoRestart::Unexpected => !expected,
            };
            let effect = if restart {
                Effect::Restart
            } else {
                Effect::None
            };
            (to(Exited, 0), effect)
        }
        (Starting | Running, Input::Stop) => (to(Stopping, failed), Effect::SignalStop),
        (Backoff, Input::Stop) => (to(Stopped, failed), Effect::None),
        (Stopping | Stopped | Exited | Fatal, Input::Stop) => (now, Effect::None),
        (Stopping, Input::Exited { .. }) => (to(Stopped, failed), Effect::None),
        (state, input) => return Err(Illegal { state, input }),
    };
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use State::*;

    const POLICY: Policy = Policy {
        autorestart: AutoRestart::Unexpected,
        startretries: 2,
    };

    fn at(state: State, failed_starts: u32) -> Lifecycle {
        Lifecycle {
            state,
            failed_starts,
        }
    }

    /// Every legal (state, input) pair, with its outcome. Any pair not listed must be illegal.
    fn table() -> Vec<(Lifecycle, Input, Lifecycle, Effect)> {
        let exited_no = Input::Exited { expected: false };
        let exited_yes = Input::Exited { expected: true };
        vec![
            (at(Stopped, 0), Input::Start, at(Starting, 0), Effect::Spawn),
            (at(Exited, 0), Input::Start, at(Starting, 0), Effect::Spawn),
            (at(Fatal, 3), Input::Start, at(Starting, 0), Effect::Spawn),
            (at(Backoff, 1), Input::Start, at(Starting, 0), Effect::Spawn),
            (at(Starting, 1), Input::Start, at(Starting, 1), Effect::None),
            (at(Running, 0), Input::Start, at(Running, 0), Effect::None),
            (
                at(Backoff, 1),
                Input::RetryDue,
                at(Starting, 1),
                Effect::Spawn,
            ),
            (
                at(Starting, 2),
                Input::StartTimeElapsed,
                at(Running, 0),
                Effect::None,
            ),
            (
                at(Starting, 0),
                exited_yes,
                at(Backoff, 1),
                Effect::ScheduleRetry(Duration::from_secs(1)),
            ),
            (
                at(Starting, 1),
                Input::SpawnFailed,
                at(Backoff, 2),
                Effect::ScheduleRetry(Duration::from_secs(2)),
            ),
            (at(Starting, 2), exited_no, at(Fatal, 3), Effect::None),
            (
                at(Starting, 2),
                Input::SpawnFailed,
                at(Fatal, 3),
                Effect::None,
            ),
            (at(Running, 0), exited_no, at(Exited, 0), Effect::Restart),
            (at(Running, 0), exited_yes, at(Exited, 0), Effect::None),
            (
                at(Starting, 1),
                Input::Stop,
                at(Stopping, 1),
                Effect::SignalStop,
            ),
            (
                at(Running, 0),
                Input::Stop,
                at(Stopping, 0),
                Effect::SignalStop,
            ),
            (at(Backoff, 1), Input::Stop, at(Stopped, 1), Effect::None),
            (at(Stopping, 0), Input::Stop, at(Stopping, 0), Effect::None),
            (at(Stopped, 0), Input::Stop, at(Stopped, 0), Effect::None),
            (at(Exited, 0), Input::Stop, at(Exited, 0), Effect::None),
            (at(Fatal, 3), Input::Stop, at(Fatal, 3), Effect::None),
            (at(Stopping, 0), exited_no, at(Stopped, 0), Effect::None),
            (at(Stopping, 0), exited_yes, at(Stopped, 0), Effect::None),
        ]
    }

    #[test]
    fn legal_transitions_follow_the_table() {
        for (from, input, to, effect) in table() {
            assert_eq!(
                transition(from, input, POLICY),
                Ok((to, effect)),
                "{from:?} + {input:?}"
            );
        }
    }

    #[test]
    fn every_pair_outside_the_table_is_illegal() {
        let inputs = [
            Input::Start,
            Input::Stop,
            Input::StartTimeElapsed,
            Input::SpawnFailed,
            Input::Exited { expected: false },
            Input::Exited { expected: true },
            Input::RetryDue,
        ];
        let listed: Vec<(State, Input)> = table()
            .iter()
            .map(|(from, input, _, _)| (from.state, *input))
            .collect();
        for state in State::ALL {
            for input in inputs {
                if listed.contains(&(state, input)) {
                    continue;
                }
                assert_eq!(
                    transition(at(state, 0), input, POLICY),
                    Err(Illegal { state, input }),
                    "{state:?} + {input:?} should be illegal"
                );
            }
        }
    }

    #[test]
    fn entered_states_match_the_documented_sources() {
        // The module doc's "A <- B" list, checked against the table.
        let sources = |target: State| -> Vec<State> {
            let mut found: Vec<State> = table()
                .iter()
                .filter(|(from, _, to, _)| to.state == target && from.state != target)
                .map(|(from, _, _, _)| from.state)
                .collect();
            found.dedup();
            found
        };
        assert_eq!(sources(Running), vec![Starting]);
        assert_eq!(sources(Backoff), vec![Starting]);
        assert_eq!(sources(Fatal), vec![Starting]);
        assert_eq!(sources(Exited), vec![Running]);
        assert_eq!(sources(Stopping), vec![Starting, Running]);
        assert_eq!(sources(Stopped), vec![Backoff, Stopping]);
    }

    #[test]
    fn autorestart_policies() {
        let cases = [
            (AutoRestart::Always, true, Effect::Restart),
            (AutoRestart::Always, false, Effect::Restart),
            (AutoRestart::Never, true, Effect::None),
            (AutoRestart::Never, false, Effect::None),
            (AutoRestart::Unexpected, true, Effect::None),
            (AutoRestart::Unexpected, false, Effect::Restart),
        ];
        for (autorestart, expected, effect) in cases {
            let policy = Policy {
                autorestart,
                startretries: 3,
            };
            let (next, got) =
                transition(at(Running, 0), Input::Exited { expected }, policy).unwrap();
            assert_eq!(
                (next.state, got),
                (Exited, effect),
                "{autorestart:?} {expected}"
            );
        }
    }

    #[test]
    fn startretries_three_means_four_spawns() {
        let policy = Policy {
            autorestart: AutoRestart::Never,
            startretries: 3,
        };
        let (mut now, mut effect) = transition(Lifecycle::INITIAL, Input::Start, policy).unwrap();
        let mut spawns = 0;
        while effect != Effect::None {
            match effect {
                Effect::Spawn => {
                    spawns += 1;
                    (now, effect) = transition(now, Input::SpawnFailed, policy).unwrap();
                }
                Effect::ScheduleRetry(_) => {
                    (now, effect) = transition(now, Input::RetryDue, policy).unwrap();
                }
                other => panic!("unexpected effect {other:?}"),
            }
        }
        assert_eq!((spawns, now.state), (4, Fatal));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let delays: Vec<u64> = (1..=9).map(|n| backoff_delay(n).as_secs()).collect();
        assert_eq!(delays, vec![1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }
}
