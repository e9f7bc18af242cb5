//! Integration tests of taskctl: each runs the real `taskctl` binary against a real daemon on a
//! temporary socket, with real child processes.

mod support;

/// Running taskctl: captured one-shot runs, and the shell in an emulated terminal.
#[path = "ctl/harness.rs"]
mod harness;

/// One-shot commands: their output and exit status, and how the daemon is found.
#[path = "ctl/oneshot.rs"]
mod oneshot;

/// `taskctl watch`: following events.
#[path = "ctl/watch.rs"]
mod watch;

/// The interactive shell, through a pseudo-terminal.
#[path = "ctl/shell.rs"]
mod shell;

/// `taskctl tail`, `maintail`, `clear` and `reopen`: program output and the event log.
#[path = "ctl/tail.rs"]
mod tail;

/// One taskctl, many daemons: several hosts, `TASKMASTER_HOSTS`, the hosts file.
#[path = "ctl/hosts.rs"]
mod hosts;

/// Tokens and TLS: the credentials taskctl shows, and what each refusal says.
#[path = "ctl/credentials.rs"]
mod credentials;

/// `taskctl signal`: trapped, to a group or its leader, and its refusals.
#[path = "ctl/signal.rs"]
mod signal;

/// `taskctl alerts test`.
#[path = "ctl/alerts.rs"]
mod alerts;

/// `taskctl attach`: a program's terminal in this one, detaching, and the terminal put back.
#[path = "ctl/attach.rs"]
mod attach;
