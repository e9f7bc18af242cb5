//! Integration tests of taskmasterd: each starts a real daemon on a temporary socket and drives
//! it over gRPC, with real child processes.

mod support;

/// Process lifecycle: restarts, retries, starttime, stop signals, SIGKILL after stoptime.
#[path = "daemon/lifecycle.rs"]
mod lifecycle;
