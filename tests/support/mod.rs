//! Test support shared by tests/daemon.rs and tests/ctl.rs: a real `taskmasterd` on a
//! temporary socket, stopped (with every process it started) when its guard drops, configs
//! built or literal, a gRPC client to it (with a token or TLS when asked), and waiting for
//! conditions with deadlines; what the tests need of the machine (root, `nobody`, a free
//! port, files with a given mode); and receivers of alerts (syslog, webhook, SMTP).
#![allow(dead_code, unused_imports)]

mod config;
mod daemon;
mod process;
mod receivers;
mod rpc;
mod secure;
mod system;
mod wait;

pub use config::{Config, Program};
pub use daemon::{Daemon, Launch, foreground, taskmasterd};
pub use process::{Guard, alive, children_of, send, wait_gone};
pub use receivers::{DeadSyslog, Mail, Request, Silent, Smtp, SmtpSecurity, Syslog, Webhook};
pub use rpc::{Client, daemon_info, instance, next_of, status, wait_new_pid, wait_state};
pub use secure::{Bearer, Certificates, TokenClient, tcp_channel, tls_channel, with_token};
pub use system::{free_port, nobody, nobody_as_root, root_or_skip, token_file, write_file};
pub use wait::{DEADLINE, expect, poll, wait_until};

/// Reads a file, empty when missing.
pub fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}
