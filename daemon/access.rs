//! Who calls the API: the identity a connection or a request proves ([`Caller`]) and the
//! [`Role`] it holds. The authorization layer puts a `Caller` in the extensions of every
//! request it lets through; the service reads it to record who did what.

use std::fmt;

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Every call: root, the daemon's own user, `daemon.operators`, an operator token.
    Operator,
    /// Only the calls that change nothing: Status, WatchEvents, Tail, MainTail.
    Viewer,
}

/// The proven identity of the caller of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// How the caller is named in events and the event log: "uid 1000 (alice)" on the Unix
    /// socket, "token deploy" or "cert CN=ops" on TCP.
    pub name: String,
    pub role: Role,
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}
