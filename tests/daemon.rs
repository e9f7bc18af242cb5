//! Integration tests of taskmasterd: each starts a real daemon on a temporary socket and drives
//! it over gRPC, with real child processes.

mod support;

/// Process lifecycle: restarts, retries, starttime, stop signals, SIGKILL after stoptime.
#[path = "daemon/lifecycle.rs"]
mod lifecycle;

/// Every config option has its effect on the real process.
#[path = "daemon/options.rs"]
mod options;

/// Reload by SIGHUP and RPC: only the difference is applied; bad configs change nothing.
#[path = "daemon/reload.rs"]
mod reload;

/// WatchEvents, Shutdown, the socket, TCP, reflection, health and start-up modes.
#[path = "daemon/api.rs"]
mod api;

/// Program output: capture, files, rotation, reopen, failing sinks, Tail, forensics.
#[path = "daemon/output.rs"]
mod output;

/// Who may control the daemon: socket mode and group, other uids, tokens, TLS, abuse limits.
#[path = "daemon/access.rs"]
mod access;
/// Alerts against real receivers: syslog, webhook, SMTP; storms, dead receivers, reloads.
#[path = "daemon/alerts.rs"]
mod alerts;
/// Attach: a program's terminal or stdin and output, for clients that attach and detach.
#[path = "daemon/attach.rs"]
mod attach;
/// Faults a supervisor is known to meet: start-up signals, the daemon's end, what it leaves.
#[path = "daemon/faults.rs"]
mod faults;
/// Programs under their own identity: user, group, groups, environment, output files, spawn
/// errors, config errors and warnings.
#[path = "daemon/identity.rs"]
mod identity;
/// Arbitrary configs and requests: always an answer within a second, never a panic (proptest).
#[path = "daemon/properties.rs"]
mod properties;
