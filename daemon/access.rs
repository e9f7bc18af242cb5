//! Who calls the API: the identity a connection or a request proves ([`Caller`]), the
//! [`Role`] it holds, what each call needs ([`needs`], one table), and the daemon's [`Policy`]
//! that gives a Unix peer, a token or a certificate its role. The authorization layer
//! (`server::authorize`) puts a `Caller` in the extensions of every request it lets through;
//! the service reads it to record who did what.

use std::fmt;

use crate::config::{DaemonSettings, Principals, TokenConfig};

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Every call: root, the daemon's own user, `daemon.operators`, an operator token.
    Operator,
    /// Only the calls that change nothing: Status, WatchEvents, Tail, MainTail.
    Viewer,
}

impl Role {
    /// Whether this role may make a call that needs `needed`.
    pub fn allows(self, needed: Role) -> bool {
        match self {
            Role::Operator => true,
            Role::Viewer => needed == Role::Viewer,
        }
    }

    /// "operator" or "viewer".
    pub fn word(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Viewer => "viewer",
        }
    }
}

/// The proven identity of the caller of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// How the caller is named in events and the event log: "uid 1000 (alice)" on the Unix
    /// socket, "token deploy" or "cert CN=ops" on TCP ("tcp 127.0.0.1:40112" on a loopback
    /// listener without authentication).
    pub name: String,
    pub role: Role,
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// What a call needs from its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Nothing: anyone may ask (the health service, for load balancers).
    Nothing,
    /// A caller with a role that allows this one.
    Role(Role),
}

/// Every call by its gRPC path, with what it needs. A path that is not here needs an operator,
/// so that a call added later is closed until it is given its place.
const CALLS: &[(&str, Needs)] = &[
    (
        "/taskmaster.v1.Taskmaster/Status",
        Needs::Role(Role::Viewer),
    ),
    (
        "/taskmaster.v1.Taskmaster/WatchEvents",
        Needs::Role(Role::Viewer),
    ),
    ("/taskmaster.v1.Taskmaster/Tail", Needs::Role(Role::Viewer)),
    (
        "/taskmaster.v1.Taskmaster/MainTail",
        Needs::Role(Role::Viewer),
    ),
    (
        "/taskmaster.v1.Taskmaster/Start",
        Needs::Role(Role::Operator),
    ),
    (
        "/taskmaster.v1.Taskmaster/Stop",
        Needs::Role(Role::Operator),
    ),
    (
        "/taskmaster.v1.Taskmaster/Restart",
        Needs::Role(Role::Operator),
    ),
    (
        "/taskmaster.v1.Taskmaster/Reload",
        Needs::Role(Role::Operator),
    ),
    (
        "/taskmaster.v1.Taskmaster/Shutdown",
        Needs::Role(Role::Operator),
    ),
    (
        "/taskmaster.v1.Taskmaster/Reopen",
        Needs::Role(Role::Operator),
    ),
    (
        "/taskmaster.v1.Taskmaster/Clear",
        Needs::Role(Role::Operator),
    ),
    ("/grpc.health.v1.Health/Check", Needs::Nothing),
    ("/grpc.health.v1.Health/Watch", Needs::Nothing),
    (
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        Needs::Role(Role::Viewer),
    ),
    (
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        Needs::Role(Role::Viewer),
    ),
];

/// What the call at gRPC `path` (`/taskmaster.v1.Taskmaster/Stop`) needs.
pub fn needs(path: &str) -> Needs {
    CALLS
        .iter()
        .find(|(call, _)| *call == path)
        .map_or(Needs::Role(Role::Operator), |(_, needs)| *needs)
}

/// The short name of a call: `Stop` for `/taskmaster.v1.Taskmaster/Stop`.
pub fn call_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The Taskmaster calls a viewer may make, for messages: "Status, WatchEvents, Tail and
/// MainTail".
pub fn viewer_calls() -> String {
    let names: Vec<&str> = (CALLS.iter())
        .filter(|(path, needs)| {
            path.starts_with("/taskmaster.") && *needs == Needs::Role(Role::Viewer)
        })
        .map(|(path, _)| call_name(path))
        .collect();
    match names.split_last() {
        Some((last, [])) => last.to_string(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// Who may do what, from the config's `daemon:` section: the daemon's own user and root are
/// operators on the Unix socket, then `operators` and `viewers`; on TCP, the tokens, client
/// certificates, and nothing else unless nothing is configured (an open loopback listener).
#[derive(Debug)]
pub struct Policy {
    /// The daemon's effective uid: its user may do everything.
    own_uid: u32,
    operators: Principals,
    viewers: Principals,
    /// The accepted bearer tokens.
    tokens: Vec<TokenConfig>,
    /// No token and no client CA: a TCP caller need not prove anything (the listener is on
    /// loopback: a listener elsewhere refuses to start without authentication).
    tcp_open: bool,
}

impl Policy {
    pub fn new(daemon: &DaemonSettings) -> Policy {
        Policy {
            own_uid: nix::unistd::geteuid().as_raw(),
            operators: daemon.operators.clone(),
            viewers: daemon.viewers.clone(),
            tokens: daemon.tokens.clone(),
            tcp_open: !daemon.authenticates_tcp(),
        }
    }

    /// The role of a Unix peer with `uid`, primary `gid` and supplementary `groups`; `None`
    /// when it may not use the daemon at all.
    pub fn unix_role(&self, uid: u32, gid: u32, groups: &[u32]) -> Option<Role> {
        if uid == 0 || uid == self.own_uid || self.operators.admit(uid, gid, groups) {
            Some(Role::Operator)
        } else if self.viewers.admit(uid, gid, groups) {
            Some(Role::Viewer)
        } else {
            None
        }
    }

    /// The holder of bearer token `presented`, if it is one of the tokens. Every token is
    /// compared, each in constant time, so the time taken does not tell which one matched.
    pub fn token(&self, presented: &[u8]) -> Option<Caller> {
        let mut found = None;
        for token in &self.tokens {
            if token.secret.matches(presented) && found.is_none() {
                found = Some(token);
            }
        }
        found.map(|token| Caller {
            name: format!("token {}", token.name),
            role: token.role,
        })
    }

    /// Whether a TCP caller may go without credentials (see [`Policy::tcp_open`]).
    pub fn tcp_open(&self) -> bool {
        self.tcp_open
    }

    /// The daemon's effective uid.
    pub fn own_uid(&self) -> u32 {
        self.own_uid
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{Principal, TokenSource};

    #[test]
    fn every_rpc_of_the_service_has_its_place_in_the_table() {
        use prost::Message;
        let set = prost_types::FileDescriptorSet::decode(crate::proto::FILE_DESCRIPTOR_SET)
            .expect("the descriptor set decodes");
        let mut paths = Vec::new();
        for file in &set.file {
            for service in &file.service {
                for method in &service.method {
                    paths.push(format!(
                        "/{}.{}/{}",
                        file.package(),
                        service.name(),
                        method.name()
                    ));
                }
            }
        }
        assert!(paths.len() >= 11, "{paths:?}");
        for path in &paths {
            assert!(
                CALLS.iter().any(|(call, _)| call == path),
                "{path} is not in the table of calls: decide what it needs"
            );
        }
        assert_eq!(viewer_calls(), "Status, WatchEvents, Tail and MainTail");
        assert_eq!(
            needs("/taskmaster.v1.Taskmaster/Stop"),
            Needs::Role(Role::Operator)
        );
        assert_eq!(needs("/grpc.health.v1.Health/Check"), Needs::Nothing);
        // Unknown calls are closed.
        assert_eq!(needs("/x.Y/Z"), Needs::Role(Role::Operator));
        assert_eq!(needs(""), Needs::Role(Role::Operator));
        assert_eq!(call_name("/taskmaster.v1.Taskmaster/Stop"), "Stop");
    }

    #[test]
    fn roles() {
        assert!(Role::Operator.allows(Role::Operator));
        assert!(Role::Operator.allows(Role::Viewer));
        assert!(Role::Viewer.allows(Role::Viewer));
        assert!(!Role::Viewer.allows(Role::Operator));
    }

    fn token(name: &str, role: Role, secret: &str) -> TokenConfig {
        let text = format!(
            "daemon:\n  tokens: [{{name: {name}, role: {}, file: {{path}}}}]\nprograms: {{}}\n",
            role.word()
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        std::fs::write(&path, secret).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let text = text.replace("{path}", &path.display().to_string());
        let config = crate::config::parse(&text, Path::new("/x/t.yaml")).unwrap();
        let mut tokens = config.daemon.tokens;
        assert!(matches!(tokens[0].source, TokenSource::File(_)));
        tokens.remove(0)
    }

    #[test]
    fn policy() {
        let principal = |id| Principal {
            id,
            name: id.to_string(),
        };
        let daemon = DaemonSettings {
            operators: Principals {
                users: vec![principal(1001)],
                groups: vec![principal(50)],
            },
            viewers: Principals {
                users: vec![principal(1002)],
                groups: vec![principal(60)],
            },
            tokens: vec![
                token("deploy", Role::Operator, "deploy-deploy-deploy"),
                token("monitor", Role::Viewer, "monitor-monitor-monitor"),
            ],
            ..DaemonSettings::default()
        };
        let policy = Policy::new(&daemon);
        let own = policy.own_uid();
        assert_eq!(policy.unix_role(0, 0, &[]), Some(Role::Operator));
        assert_eq!(policy.unix_role(own, 7, &[]), Some(Role::Operator));
        assert_eq!(policy.unix_role(1001, 7, &[]), Some(Role::Operator));
        // By primary or supplementary group.
        assert_eq!(policy.unix_role(2000, 50, &[]), Some(Role::Operator));
        assert_eq!(policy.unix_role(2000, 7, &[8, 50]), Some(Role::Operator));
        assert_eq!(policy.unix_role(1002, 7, &[]), Some(Role::Viewer));
        assert_eq!(policy.unix_role(2000, 7, &[60]), Some(Role::Viewer));
        // Operator wins over viewer.
        assert_eq!(policy.unix_role(1002, 50, &[]), Some(Role::Operator));
        if own != 2000 {
            assert_eq!(policy.unix_role(2000, 7, &[8]), None);
        }
        let caller = policy.token(b"deploy-deploy-deploy").unwrap();
        assert_eq!(
            (caller.name.as_str(), caller.role),
            ("token deploy", Role::Operator)
        );
        assert_eq!(
            policy.token(b"monitor-monitor-monitor").unwrap().role,
            Role::Viewer
        );
        assert_eq!(policy.token(b"deploy-deploy-deplo"), None);
        assert_eq!(policy.token(b"deploy-deploy-deployx"), None);
        assert_eq!(policy.token(b""), None);
        assert!(!policy.tcp_open());
        assert!(Policy::new(&DaemonSettings::default()).tcp_open());
    }
}
