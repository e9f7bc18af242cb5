//! The lifecycle of one instance: its states, what is meant to happen once its process is gone,
//! the inputs that move it, and the pure transition function the supervisor applies. Nothing
//! here does I/O; the supervisor carries out the returned [`Effect`].
//!
//! Allowed state changes ("A <- B, C" means A is entered only from B or C):
//! - STARTING <- STOPPED, EXITED, FATAL, BACKOFF (a start, a restart, a due retry or autorestart)
//! - RUNNING  <- STARTING (it stayed up `starttime`)
//! - BACKOFF  <- STARTING (a failed start with retries left)
//! - FATAL    <- STARTING (a failed start with no retries left)
//! - EXITED   <- RUNNING (it exited on its own)
//! - STOPPING <- STARTING, RUNNING (a stop, a restart, a removal or a changed config)
//! - STOPPED  <- STOPPING (reaped), BACKOFF (a stop request cancels the retry)
//!
//! Beside the state, [`Then`] says what a STOPPING instance does once reaped (stay stopped,
//! start again, be forgotten) and whether an EXITED one has an autorestart pending. It is
//! [`Then::Stay`] in every other state.

use std::time::Duration;

use crate::config::AutoRestart;

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

/// What is meant to happen to an instance once it has no process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Then {
    /// Nothing: it stays as it is.
    Stay,
    /// Start it: a requested restart, a start asked for while STOPPING, a changed config; in
    /// EXITED, an autorestart that is due after [`RESTART_SPACING`].
    Start,
    /// Forget it: its program was removed or shrunk by a reload.
    Remove,
}

/// What happened to an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// A start was requested: by a client, autostart or a reload.
    Start,
    /// A stop was requested.
    Stop,
    /// A client asked for a restart: stop if up, then start.
    Restart,
    /// A reload removed its program, or shrank it below this instance.
    Remove,
    /// A reload called off its removal; `autostart` of the new config.
    Readded { autostart: bool },
    /// A reload changed its program beyond `numprocs`; `autostart` of the new config.
    Reconfigured { autostart: bool },
    /// The process has stayed up for `starttime`.
    StartTimeElapsed,
    /// The spawn itself failed (missing binary, bad working directory, ...).
    SpawnFailed,
    /// The process was reaped after `ran_for`; `expected` when its exit code is one of
    /// `exitcodes`.
    Exited { expected: bool, ran_for: Duration },
    /// The backoff delay is over.
    RetryDue,
    /// The autorestart spacing is over.
    AutorestartDue,
}

/// The per-instance facts a transition reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifecycle {
    pub state: State,
    /// Failed starts in the current start sequence; reset by a start request and by RUNNING.
    pub failed_starts: u32,
    /// What happens once the process is gone; [`Then::Stay`] outside STOPPING and EXITED.
    pub then: Then,
    /// Restarts, by policy or on request, since the instance was created.
    pub restarts: u32,
}

impl Lifecycle {
    pub const INITIAL: Lifecycle = Lifecycle {
        state: State::Stopped,
        failed_starts: 0,
        then: Then::Stay,
        restarts: 0,
    };

    /// Whether a reload is removing it: requests for it are refused.
    pub fn is_being_removed(self) -> bool {
        self.then == Then::Remove
    }
}

/// What transitions depend on besides the instance: its program's settings and the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context {
    pub autorestart: AutoRestart,
    pub startretries: u32,
    /// Once a shutdown began nothing starts again.
    pub shutting_down: bool,
}

/// What the supervisor must do after a transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    None,
    /// Spawn a new process.
    Spawn,
    /// Send the stop signal (SIGKILL follows after `stoptime`).
    SignalStop,
    /// Feed [`Input::RetryDue`] after this delay.
    ScheduleRetry(Duration),
    /// Feed [`Input::AutorestartDue`] after this delay; at once when it is zero.
    ScheduleAutorestart(Duration),
    /// Call off the pending autorestart.
    CancelAutorestart,
    /// The process is gone and a start waited for that: feed [`Input::Start`].
    StartAgain,
    /// Forget the instance.
    Forget,
}

/// An input the current state does not accept; the supervisor logs and ignores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not accepted in state {} (then {then:?})", state.name())]
pub struct Illegal {
    pub state: State,
    pub then: Then,
    pub input: Input,
}

/// The least time between two spawns of an instance by autorestart: a program that dies at
/// once cannot spin the daemon.
pub const RESTART_SPACING: Duration = Duration::from_millis(100);

/// The delay before retry number `failed_starts`: 1 s, 2 s, 4 s ... capped at 60 s.
pub fn backoff_delay(failed_starts: u32) -> Duration {
    let exponent = failed_starts.saturating_sub(1).min(6);
    Duration::from_secs(1u64 << exponent).min(Duration::from_secs(60))
}

/// The next lifecycle and the effect to carry out, or [`Illegal`].
pub fn transition(
    now: Lifecycle,
    input: Input,
    context: Context,
) -> Result<(Lifecycle, Effect), Illegal> {
    use State::*;
    use Then::{Remove, Start, Stay};
    let at = |state, then| Lifecycle { state, then, ..now };
    let fresh = |state| Lifecycle {
        state,
        failed_starts: 0,
        then: Stay,
        ..now
    };
    let counted = |next: Lifecycle| Lifecycle {
        restarts: now.restarts + 1,
        ..next
    };
    let failed_start = || {
        let failed = now.failed_starts + 1;
        let next = Lifecycle {
            failed_starts: failed,
            ..at(Backoff, Stay)
        };
        if failed <= context.startretries {
            (next, Effect::ScheduleRetry(backoff_delay(failed)))
        } else {
            (
                Lifecycle {
                    state: Fatal,
                    ..next
                },
                Effect::None,
            )
        }
    };
    let next = match (now.state, now.then, input) {
        // Requests.
        (Stopped | Exited | Fatal | Backoff, _, Input::Start) => (fresh(Starting), Effect::Spawn),
        (Starting | Running, Stay, Input::Start) => (now, Effect::None),
        (Stopping, Stay | Start, Input::Start) => (at(Stopping, Start), Effect::None),
        (Starting | Running, Stay, Input::Stop) => (at(Stopping, Stay), Effect::SignalStop),
        (Backoff, Stay, Input::Stop) => (at(Stopped, Stay), Effect::None),
        (Stopping, Stay | Start, Input::Stop) => (at(Stopping, Stay), Effect::None),
        (Exited, Start, Input::Stop) => (at(Exited, Stay), Effect::CancelAutorestart),
        (Stopped | Exited | Fatal, Stay, Input::Stop) => (now, Effect::None),
        (Starting | Running, Stay, Input::Restart) => {
            (counted(at(Stopping, Start)), Effect::SignalStop)
        }
        (Backoff, Stay, Input::Restart) => (counted(at(Stopped, Stay)), Effect::StartAgain),
        (Stopping, Stay | Start, Input::Restart) => (counted(at(Stopping, Start)), Effect::None),
        (Stopped | Exited | Fatal, _, Input::Restart) => (counted(fresh(Starting)), Effect::Spawn),
        // Nothing is asked of an instance that is being removed; the actions refuse it.
        (Stopping, Remove, Input::Start | Input::Stop | Input::Restart) => (now, Effect::None),
        // Reloads.
        (Starting | Running, Stay, Input::Remove) => (at(Stopping, Remove), Effect::SignalStop),
        (Stopping, _, Input::Remove) => (at(Stopping, Remove), Effect::None),
        (Backoff, Stay, Input::Remove) => (at(Stopped, Stay), Effect::Forget),
        (Stopped | Exited | Fatal, _, Input::Remove) => (now, Effect::Forget),
        (Stopping, Remove, Input::Readded { autostart }) => {
            let then = if autostart { Start } else { Stay };
            (at(Stopping, then), Effect::None)
        }
        (Starting | Running, Stay, Input::Reconfigured { .. }) => {
            (at(Stopping, Start), Effect::SignalStop)
        }
        (Backoff, Stay, Input::Reconfigured { .. }) => (at(Stopped, Stay), Effect::StartAgain),
        // Being stopped: a pending start stays; otherwise the new config decides, as for a
        // stopped instance. One being removed is not restarted.
        (Stopping, Stay, Input::Reconfigured { autostart: true }) => {
            (at(Stopping, Start), Effect::None)
        }
        (Stopping, _, Input::Reconfigured { .. }) => (now, Effect::None),
        (Stopped | Exited | Fatal, _, Input::Reconfigured { autostart: true }) => {
            (fresh(Starting), Effect::Spawn)
        }
        (Stopped | Exited | Fatal, _, Input::Reconfigured { autostart: false }) => {
            (now, Effect::None)
        }
        // The process.
        (Starting, Stay, Input::StartTimeElapsed) => (fresh(Running), Effect::None),
        (Starting, Stay, Input::SpawnFailed | Input::Exited { .. }) => failed_start(),
        (Running, Stay, Input::Exited { expected, ran_for }) => {
            let wanted = match context.autorestart {
                AutoRestart::Always => true,
                AutoRestart::Never => false,
                AutoRestart::Unexpected => !expected,
            };
            if wanted && !context.shutting_down {
                // A process that ran only briefly is respawned no sooner than
                // RESTART_SPACING after its own spawn.
                let delay = RESTART_SPACING.saturating_sub(ran_for);
                (
                    fresh(Exited).with_then(Start),
                    Effect::ScheduleAutorestart(delay),
                )
            } else {
                (fresh(Exited), Effect::None)
            }
        }
        (Stopping, Stay, Input::Exited { .. }) => (at(Stopped, Stay), Effect::None),
        (Stopping, Start, Input::Exited { .. }) if context.shutting_down => {
            (at(Stopped, Stay), Effect::None)
        }
        (Stopping, Start, Input::Exited { .. }) => (at(Stopped, Stay), Effect::StartAgain),
        (Stopping, Remove, Input::Exited { .. }) => (at(Stopped, Stay), Effect::Forget),
        // Deadlines.
        (Backoff, Stay, Input::RetryDue) => (at(Starting, Stay), Effect::Spawn),
        (Exited, Start, Input::AutorestartDue) if context.shutting_down => {
            (at(Exited, Stay), Effect::None)
        }
        (Exited, Start, Input::AutorestartDue) => (counted(fresh(Starting)), Effect::Spawn),
        (state, then, input) => return Err(Illegal { state, then, input }),
    };
    Ok(next)
}

impl Lifecycle {
    fn with_then(self, then: Then) -> Lifecycle {
        Lifecycle { then, ..self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use State::*;
    use Then::{Remove, Start, Stay};

    const CONTEXT: Context = Context {
        autorestart: AutoRestart::Unexpected,
        startretries: 2,
        shutting_down: false,
    };
    const SHUTTING_DOWN: Context = Context {
        shutting_down: true,
        ..CONTEXT
    };

    /// Every (state, then) pair the transitions can produce.
    const REACHABLE: [(State, Then); 10] = [
        (Stopped, Stay),
        (Starting, Stay),
        (Running, Stay),
        (Backoff, Stay),
        (Stopping, Stay),
        (Stopping, Start),
        (Stopping, Remove),
        (Exited, Stay),
        (Exited, Start),
        (Fatal, Stay),
    ];

    const SHORT: Duration = Duration::from_millis(30);
    const LONG: Duration = Duration::from_secs(5);

    fn inputs() -> Vec<Input> {
        vec![
            Input::Start,
            Input::Stop,
            Input::Restart,
            Input::Remove,
            Input::Readded { autostart: true },
            Input::Readded { autostart: false },
            Input::Reconfigured { autostart: true },
            Input::Reconfigured { autostart: false },
            Input::StartTimeElapsed,
            Input::SpawnFailed,
            Input::Exited {
                expected: false,
                ran_for: LONG,
            },
            Input::Exited {
                expected: true,
                ran_for: LONG,
            },
            Input::Exited {
                expected: false,
                ran_for: SHORT,
            },
            Input::RetryDue,
            Input::AutorestartDue,
        ]
    }

    /// A lifecycle with `failed_starts` failed starts and 5 restarts so far.
    fn at(state: State, then: Then, failed_starts: u32) -> Lifecycle {
        Lifecycle {
            state,
            failed_starts,
            then,
            restarts: 5,
        }
    }

    fn restarted(mut life: Lifecycle) -> Lifecycle {
        life.restarts += 1;
        life
    }

    type Row = (Lifecycle, Input, Lifecycle, Effect);

    /// Every legal (lifecycle, input) pair in [`CONTEXT`], with its outcome. Any pair of
    /// [`REACHABLE`] and [`inputs`] not listed must be illegal.
    fn table() -> Vec<Row> {
        let died = Input::Exited {
            expected: false,
            ran_for: LONG,
        };
        let done = Input::Exited {
            expected: true,
            ran_for: LONG,
        };
        let died_at_once = Input::Exited {
            expected: false,
            ran_for: SHORT,
        };
        let readd = |autostart| Input::Readded { autostart };
        let reconfigure = |autostart| Input::Reconfigured { autostart };
        let mut rows: Vec<Row> = vec![
            // Start: from rest, a new start sequence; while stopping, start once reaped.
            (
                at(Stopped, Stay, 0),
                Input::Start,
                at(Starting, Stay, 0),
                Effect::Spawn,
            ),
            (
                at(Exited, Stay, 0),
                Input::Start,
                at(Starting, Stay, 0),
                Effect::Spawn,
            ),
            (
                at(Exited, Start, 0),
                Input::Start,
                at(Starting, Stay, 0),
                Effect::Spawn,
            ),
            (
                at(Fatal, Stay, 3),
                Input::Start,
                at(Starting, Stay, 0),
                Effect::Spawn,
            ),
            (
                at(Backoff, Stay, 1),
                Input::Start,
                at(Starting, Stay, 0),
                Effect::Spawn,
            ),
            (
                at(Starting, Stay, 1),
                Input::Start,
                at(Starting, Stay, 1),
                Effect::None,
            ),
            (
                at(Running, Stay, 0),
                Input::Start,
                at(Running, Stay, 0),
                Effect::None,
            ),
            (
                at(Stopping, Stay, 0),
                Input::Start,
                at(Stopping, Start, 0),
                Effect::None,
            ),
            (
                at(Stopping, Start, 0),
                Input::Start,
                at(Stopping, Start, 0),
                Effect::None,
            ),
            (
                at(Stopping, Remove, 0),
                Input::Start,
                at(Stopping, Remove, 0),
                Effect::None,
            ),
            // Stop: a stop also calls off a start planned for after it, and a pending
            // autorestart.
            (
                at(Starting, Stay, 1),
                Input::Stop,
                at(Stopping, Stay, 1),
                Effect::SignalStop,
            ),
            (
                at(Running, Stay, 0),
                Input::Stop,
                at(Stopping, Stay, 0),
                Effect::SignalStop,
            ),
            (
                at(Backoff, Stay, 1),
                Input::Stop,
                at(Stopped, Stay, 1),
                Effect::None,
            ),
            (
                at(Stopping, Stay, 0),
                Input::Stop,
                at(Stopping, Stay, 0),
                Effect::None,
            ),
            (
                at(Stopping, Start, 0),
                Input::Stop,
                at(Stopping, Stay, 0),
                Effect::None,
            ),
            (
                at(Stopping, Remove, 0),
                Input::Stop,
                at(Stopping, Remove, 0),
                Effect::None,
            ),
            (
                at(Exited, Start, 0),
                Input::Stop,
                at(Exited, Stay, 0),
                Effect::CancelAutorestart,
            ),
            (
                at(Stopped, Stay, 0),
                Input::Stop,
                at(Stopped, Stay, 0),
                Effect::None,
            ),
            (
                at(Exited, Stay, 0),
                Input::Stop,
                at(Exited, Stay, 0),
                Effect::None,
            ),
            (
                at(Fatal, Stay, 3),
                Input::Stop,
                at(Fatal, Stay, 3),
                Effect::None,
            ),
            // Restart on request: counted; stop first if there is a process or a retry.
            (
                at(Starting, Stay, 1),
                Input::Restart,
                restarted(at(Stopping, Start, 1)),
                Effect::SignalStop,
            ),
            (
                at(Running, Stay, 0),
                Input::Restart,
                restarted(at(Stopping, Start, 0)),
                Effect::SignalStop,
            ),
            (
                at(Backoff, Stay, 1),
                Input::Restart,
                restarted(at(Stopped, Stay, 1)),
                Effect::StartAgain,
            ),
            (
                at(Stopping, Stay, 0),
                Input::Restart,
                restarted(at(Stopping, Start, 0)),
                Effect::None,
            ),
            (
                at(Stopping, Start, 0),
                Input::Restart,
                restarted(at(Stopping, Start, 0)),
                Effect::None,
            ),
            (
                at(Stopping, Remove, 0),
                Input::Restart,
                at(Stopping, Remove, 0),
                Effect::None,
            ),
            (
                at(Stopped, Stay, 0),
                Input::Restart,
                restarted(at(Starting, Stay, 0)),
                Effect::Spawn,
            ),
            (
                at(Exited, Stay, 0),
                Input::Restart,
                restarted(at(Starting, Stay, 0)),
                Effect::Spawn,
            ),
            (
                at(Exited, Start, 0),
                Input::Restart,
                restarted(at(Starting, Stay, 0)),
                Effect::Spawn,
            ),
            (
                at(Fatal, Stay, 3),
                Input::Restart,
                restarted(at(Starting, Stay, 0)),
                Effect::Spawn,
            ),
            // Removal by a reload: stop first, forget once no process is left.
            (
                at(Starting, Stay, 0),
                Input::Remove,
                at(Stopping, Remove, 0),
                Effect::SignalStop,
            ),
            (
                at(Running, Stay, 0),
                Input::Remove,
                at(Stopping, Remove, 0),
                Effect::SignalStop,
            ),
            (
                at(Stopping, Stay, 0),
                Input::Remove,
                at(Stopping, Remove, 0),
                Effect::None,
            ),
            (
                at(Stopping, Start, 0),
                Input::Remove,
                at(Stopping, Remove, 0),
                Effect::None,
            ),
            (
                at(Stopping, Remove, 0),
                Input::Remove,
                at(Stopping, Remove, 0),
                Effect::None,
            ),
            (
                at(Backoff, Stay, 1),
                Input::Remove,
                at(Stopped, Stay, 1),
                Effect::Forget,
            ),
            (
                at(Stopped, Stay, 0),
                Input::Remove,
                at(Stopped, Stay, 0),
                Effect::Forget,
            ),
            (
                at(Exited, Stay, 0),
                Input::Remove,
                at(Exited, Stay, 0),
                Effect::Forget,
            ),
            (
                at(Exited, Start, 0),
                Input::Remove,
                at(Exited, Start, 0),
                Effect::Forget,
            ),
            (
                at(Fatal, Stay, 3),
                Input::Remove,
                at(Fatal, Stay, 3),
                Effect::Forget,
            ),
            // Re-added while being removed: the new config's autostart decides.
            (
                at(Stopping, Remove, 0),
                readd(true),
                at(Stopping, Start, 0),
                Effect::None,
            ),
            (
                at(Stopping, Remove, 0),
                readd(false),
                at(Stopping, Stay, 0),
                Effect::None,
            ),
            // A changed config: up instances restart with it, others follow autostart.
            (
                at(Starting, Stay, 1),
                reconfigure(true),
                at(Stopping, Start, 1),
                Effect::SignalStop,
            ),
            (
                at(Running, Stay, 0),
                reconfigure(false),
                at(Stopping, Start, 0),
                Effect::SignalStop,
            ),
            (
                at(Starting, Stay, 1),
                reconfigure(false),
                at(Stopping, Start, 1),
                Effect::SignalStop,
            ),
            (
                at(Running, Stay, 0),
                reconfigure(true),
                at(Stopping, Start, 0),
                Effect::SignalStop,
            ),
            (
                at(Backoff, Stay, 1),
                reconfigure(false),
                at(Stopped, Stay, 1),
                Effect::StartAgain,
            ),
            (
                at(Backoff, Stay, 1),
                reconfigure(true),
                at(Stopped, Stay, 1),
                Effect::StartAgain,
            ),
            (
                at(Stopping, Stay, 0),
                reconfigure(true),
                at(Stopping, Start, 0),
                Effect::None,
            ),
            (
                at(Stopping, Stay, 0),
                reconfigure(false),
                at(Stopping, Stay, 0),
                Effect::None,
            ),
            (
                at(Stopping, Start, 0),
                reconfigure(false),
                at(Stopping, Start, 0),
                Effect::None,
            ),
            (
                at(Stopping, Remove, 0),
                reconfigure(true),
                at(Stopping, Remove, 0),
                Effect::None,
            ),
            (
                at(Stopped, Stay, 0),
                reconfigure(true),
                at(Starting, Stay, 0),
                Effect::Spawn,
            ),
            (
                at(Stopped, Stay, 0),
                reconfigure(false),
                at(Stopped, Stay, 0),
                Effect::None,
            ),
            (
                at(Exited, Start, 0),
                reconfigure(true),
                at(Starting, Stay, 0),
                Effect::Spawn,
            ),
            (
                at(Exited, Start, 0),
                reconfigure(false),
                at(Exited, Start, 0),
                Effect::None,
            ),
            (
                at(Fatal, Stay, 3),
                reconfigure(true),
                at(Starting, Stay, 0),
                Effect::Spawn,
            ),
            // The process.
            (
                at(Starting, Stay, 2),
                Input::StartTimeElapsed,
                at(Running, Stay, 0),
                Effect::None,
            ),
            (
                at(Starting, Stay, 1),
                Input::SpawnFailed,
                at(Backoff, Stay, 2),
                Effect::ScheduleRetry(Duration::from_secs(2)),
            ),
            (
                at(Starting, Stay, 2),
                Input::SpawnFailed,
                at(Fatal, Stay, 3),
                Effect::None,
            ),
            (
                at(Running, Stay, 0),
                died,
                at(Exited, Start, 0),
                Effect::ScheduleAutorestart(Duration::ZERO),
            ),
            (
                at(Running, Stay, 0),
                died_at_once,
                at(Exited, Start, 0),
                Effect::ScheduleAutorestart(RESTART_SPACING - SHORT),
            ),
            (
                at(Running, Stay, 0),
                done,
                at(Exited, Stay, 0),
                Effect::None,
            ),
            // Deadlines.
            (
                at(Backoff, Stay, 1),
                Input::RetryDue,
                at(Starting, Stay, 1),
                Effect::Spawn,
            ),
            (
                at(Exited, Start, 0),
                Input::AutorestartDue,
                restarted(at(Starting, Stay, 0)),
                Effect::Spawn,
            ),
        ];
        // Whatever the exit, a failed start or the end of a stop.
        for exit in [died, done, died_at_once] {
            rows.extend([
                (
                    at(Starting, Stay, 0),
                    exit,
                    at(Backoff, Stay, 1),
                    Effect::ScheduleRetry(Duration::from_secs(1)),
                ),
                (
                    at(Starting, Stay, 2),
                    exit,
                    at(Fatal, Stay, 3),
                    Effect::None,
                ),
                (
                    at(Stopping, Stay, 0),
                    exit,
                    at(Stopped, Stay, 0),
                    Effect::None,
                ),
                (
                    at(Stopping, Start, 0),
                    exit,
                    at(Stopped, Stay, 0),
                    Effect::StartAgain,
                ),
                (
                    at(Stopping, Remove, 0),
                    exit,
                    at(Stopped, Stay, 0),
                    Effect::Forget,
                ),
            ]);
        }
        rows.extend([
            (
                at(Exited, Stay, 0),
                reconfigure(true),
                at(Starting, Stay, 0),
                Effect::Spawn,
            ),
            (
                at(Exited, Stay, 0),
                reconfigure(false),
                at(Exited, Stay, 0),
                Effect::None,
            ),
            (
                at(Fatal, Stay, 3),
                reconfigure(false),
                at(Fatal, Stay, 3),
                Effect::None,
            ),
            (
                at(Stopping, Start, 0),
                reconfigure(true),
                at(Stopping, Start, 0),
                Effect::None,
            ),
            (
                at(Stopping, Remove, 0),
                reconfigure(false),
                at(Stopping, Remove, 0),
                Effect::None,
            ),
        ]);
        rows
    }

    #[test]
    fn legal_transitions_follow_the_table() {
        for (from, input, to, effect) in table() {
            assert_eq!(
                transition(from, input, CONTEXT),
                Ok((to, effect)),
                "{from:?} + {input:?}"
            );
        }
    }

    #[test]
    fn every_pair_outside_the_table_is_illegal() {
        let listed: Vec<(State, Then, Input)> = table()
            .iter()
            .map(|(from, input, _, _)| (from.state, from.then, *input))
            .collect();
        let mut illegal = 0;
        for (state, then) in REACHABLE {
            for input in inputs() {
                if listed.contains(&(state, then, input)) {
                    continue;
                }
                illegal += 1;
                assert_eq!(
                    transition(at(state, then, 0), input, CONTEXT),
                    Err(Illegal { state, then, input }),
                    "{state:?}/{then:?} + {input:?} should be illegal"
                );
            }
        }
        assert!(
            illegal > 40,
            "only {illegal} illegal pairs: the table lists too much"
        );
    }

    #[test]
    fn every_outcome_is_reachable() {
        for (_, _, to, _) in table() {
            assert!(
                REACHABLE.contains(&(to.state, to.then)),
                "{to:?} is not a reachable lifecycle"
            );
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
            found.sort_by_key(|state| State::ALL.iter().position(|s| s == state));
            found.dedup();
            found
        };
        assert_eq!(sources(Starting), vec![Stopped, Backoff, Exited, Fatal]);
        assert_eq!(sources(Running), vec![Starting]);
        assert_eq!(sources(Backoff), vec![Starting]);
        assert_eq!(sources(Fatal), vec![Starting]);
        assert_eq!(sources(Exited), vec![Running]);
        assert_eq!(sources(Stopping), vec![Starting, Running]);
        assert_eq!(sources(Stopped), vec![Backoff, Stopping]);
    }

    #[test]
    fn nothing_starts_again_once_a_shutdown_began() {
        let died = Input::Exited {
            expected: false,
            ran_for: LONG,
        };
        let cases = [
            (
                at(Running, Stay, 0),
                died,
                at(Exited, Stay, 0),
                Effect::None,
            ),
            (
                at(Stopping, Start, 0),
                died,
                at(Stopped, Stay, 0),
                Effect::None,
            ),
            (
                at(Exited, Start, 0),
                Input::AutorestartDue,
                at(Exited, Stay, 0),
                Effect::None,
            ),
        ];
        for (from, input, to, effect) in cases {
            assert_eq!(
                transition(from, input, SHUTTING_DOWN),
                Ok((to, effect)),
                "{from:?} + {input:?}"
            );
        }
    }

    #[test]
    fn autorestart_policies() {
        let cases = [
            (AutoRestart::Always, true, Then::Start),
            (AutoRestart::Always, false, Then::Start),
            (AutoRestart::Never, true, Then::Stay),
            (AutoRestart::Never, false, Then::Stay),
            (AutoRestart::Unexpected, true, Then::Stay),
            (AutoRestart::Unexpected, false, Then::Start),
        ];
        for (autorestart, expected, then) in cases {
            let context = Context {
                autorestart,
                ..CONTEXT
            };
            let input = Input::Exited {
                expected,
                ran_for: LONG,
            };
            let (next, effect) = transition(at(Running, Stay, 0), input, context).unwrap();
            let wanted = match then {
                Then::Start => Effect::ScheduleAutorestart(Duration::ZERO),
                _ => Effect::None,
            };
            assert_eq!(
                (next.state, next.then, effect),
                (Exited, then, wanted),
                "{autorestart:?} {expected}"
            );
        }
    }

    #[test]
    fn startretries_three_means_four_spawns() {
        let context = Context {
            autorestart: AutoRestart::Never,
            startretries: 3,
            shutting_down: false,
        };
        let (mut now, mut effect) = transition(Lifecycle::INITIAL, Input::Start, context).unwrap();
        let mut spawns = 0;
        while effect != Effect::None {
            match effect {
                Effect::Spawn => {
                    spawns += 1;
                    (now, effect) = transition(now, Input::SpawnFailed, context).unwrap();
                }
                Effect::ScheduleRetry(_) => {
                    (now, effect) = transition(now, Input::RetryDue, context).unwrap();
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
