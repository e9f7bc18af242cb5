//! Who calls the API: the identity a connection or a request proves ([`Caller`]), the
//! [`Role`] it holds, what each call needs ([`needs`], one table), and the daemon's [`Policy`]
//! that gives a Unix peer, a token or a certificate its role; the [`Gate`] keeps the policy in
//! force and replaces it at each reload. The authorization layer (`server::authorize`) decides
//! each request under the policy in force then, and puts a `Caller` in the extensions of every
//! request it lets through; the service reads it to record who did what.

use std::{fmt, net::SocketAddr, sync::Arc};

use tokio::sync::watch;

use crate::config::{DaemonSettings, Principals, Secret, TokenConfig};
use crate::endpoint;

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
    /// What the caller may do.
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
    (
        "/taskmaster.v1.Taskmaster/Signal",
        Needs::Role(Role::Operator),
    ),
    (
        "/taskmaster.v1.Taskmaster/AlertsTest",
        Needs::Role(Role::Operator),
    ),
    // Keys typed into a program's terminal can do anything the program can.
    (
        "/taskmaster.v1.Taskmaster/Attach",
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

/// What the listeners were set up with when the daemon started; a reload cannot change it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Listening {
    /// The TCP listener's address, if there is one.
    pub tcp: Option<SocketAddr>,
    /// The TCP listener asks for client certificates and verifies them (`daemon.tls.client_ca`
    /// at start): each one verified makes an operator.
    pub client_certificates: bool,
}

/// Who may do what: the config's `daemon:` section in force (its `operators`, `viewers` and
/// `tokens`) under what the listeners were set up with. The daemon's own user and root are
/// operators on the Unix socket, then `operators` and `viewers`; on TCP, the tokens, client
/// certificates, and nothing else unless nothing is configured on a loopback listener (an open
/// listener). One policy is in force at a time ([`Gate`]); a request is decided under the one
/// in force when it comes.
#[derive(Debug)]
pub struct Policy {
    /// The daemon's effective uid: its user may do everything.
    own_uid: u32,
    /// What the listeners were set up with.
    listening: Listening,
    /// `daemon.operators`: may do everything.
    operators: Principals,
    /// `daemon.viewers`: may call what a viewer may.
    viewers: Principals,
    /// The accepted bearer tokens.
    tokens: Vec<TokenConfig>,
}

impl Policy {
    /// The policy of `daemon` on listeners set up as `listening` says.
    pub fn new(daemon: &DaemonSettings, listening: Listening) -> Policy {
        Policy {
            own_uid: nix::unistd::geteuid().as_raw(),
            listening,
            operators: daemon.operators.clone(),
            viewers: daemon.viewers.clone(),
            tokens: daemon.tokens.clone(),
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
    /// compared, each in constant time and by digest, so the time taken tells neither which
    /// one matched nor how long any is.
    pub fn token(&self, presented: &[u8]) -> Option<Caller> {
        let presented = Secret::new(presented);
        let mut found = None;
        for token in &self.tokens {
            if token.secret == presented && found.is_none() {
                found = Some(token);
            }
        }
        found.map(|token| Caller {
            name: format!("token {}", token.name),
            role: token.role,
        })
    }

    /// Whether a TCP caller may go without credentials: no token and no client certificates,
    /// on a loopback listener. (A listener elsewhere refuses to start without authentication;
    /// when a reload takes every token away from it, it refuses every call instead.)
    pub fn tcp_open(&self) -> bool {
        self.tokens.is_empty()
            && !self.listening.client_certificates
            && self.listening.tcp.is_none_or(endpoint::is_loopback)
    }

    /// What a TCP caller may prove itself with: a token, a client certificate, or both.
    pub fn tcp_credentials(&self) -> Credentials {
        Credentials {
            token: !self.tokens.is_empty(),
            certificate: self.listening.client_certificates,
        }
    }

    /// The daemon's effective uid.
    pub fn own_uid(&self) -> u32 {
        self.own_uid
    }
}

/// What a TCP caller may prove itself with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credentials {
    /// A bearer token of `daemon.tokens`.
    pub token: bool,
    /// A client certificate that `daemon.tls.client_ca` signed.
    pub certificate: bool,
}

impl Credentials {
    /// "token", "certificate" or "token, certificate": what a refusal tells the client it may
    /// send ([`CREDENTIALS_METADATA`]).
    pub fn words(self) -> &'static str {
        match (self.token, self.certificate) {
            (true, true) => "token, certificate",
            (false, true) => "certificate",
            _ => "token",
        }
    }

    /// The inverse of [`Credentials::words`]; unknown words are ignored.
    pub fn from_words(words: &str) -> Credentials {
        let has = |word| words.split(',').any(|part| part.trim() == word);
        Credentials {
            token: has("token"),
            certificate: has("certificate"),
        }
    }
}

/// The metadata of an UNAUTHENTICATED refusal on TCP that says what the daemon takes
/// ([`Credentials::words`]), so that a client can say what is missing.
pub const CREDENTIALS_METADATA: &str = "taskmaster-credentials";

/// The policy in force, which a successful reload replaces: whoever decides a request takes
/// the current one ([`Gate::subscribe`]), so a token or an operator taken out of the config
/// is refused from the next request on, on connections already open too.
#[derive(Debug)]
pub struct Gate {
    /// The policy in force, for every subscriber.
    in_force: watch::Sender<Arc<Policy>>,
    /// What the listeners were set up with.
    listening: Listening,
    /// The `daemon:` section the daemon started with: the keys that take effect at start only
    /// are compared with it.
    at_start: DaemonSettings,
}

impl Gate {
    /// Puts the policy of `daemon` (the config the daemon starts with) in force.
    pub fn new(daemon: &DaemonSettings, listening: Listening) -> Gate {
        let policy = Arc::new(Policy::new(daemon, listening));
        Gate {
            in_force: watch::Sender::new(policy),
            listening,
            at_start: daemon.clone(),
        }
    }

    /// The policy in force, now and after every reload.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Policy>> {
        self.in_force.subscribe()
    }

    /// Puts the policy of `daemon` (the section of a config a reload applies) in force, and
    /// says what of it does not take effect: the keys only a restart applies, and a TCP
    /// listener left without authentication.
    pub fn reload(&self, daemon: &DaemonSettings) -> Vec<String> {
        let policy = Policy::new(daemon, self.listening);
        let mut warnings = Vec::new();
        let changed = restart_only_changes(&self.at_start, daemon);
        if !changed.is_empty() {
            warnings.push(format!(
                "{} changed since the daemon started: only a restart applies {} (operators, \
                 viewers and tokens are in force now)",
                changed.join(", "),
                if changed.len() == 1 { "it" } else { "them" }
            ));
        }
        if let Some(address) = self.listening.tcp
            && policy.tokens.is_empty()
            && !self.listening.client_certificates
            && !self.at_start.tokens.is_empty()
        {
            warnings.push(if endpoint::is_loopback(address) {
                format!(
                    "daemon.tokens is empty now: the TCP listener on {address} lets every \
                     caller control the daemon (every user of this machine can reach it)"
                )
            } else {
                format!(
                    "daemon.tokens is empty now: the TCP listener on {address} refuses every \
                     call (it is not on loopback) until tokens are added again"
                )
            });
        }
        self.in_force.send_replace(Arc::new(policy));
        warnings
    }
}

/// The keys of the `daemon:` section that take effect at start only and differ between
/// `before` and `after`, as `daemon.KEY`.
fn restart_only_changes(before: &DaemonSettings, after: &DaemonSettings) -> Vec<String> {
    // Spelled out field by field, so that a new key of the section must be placed here.
    let DaemonSettings {
        socket,
        listen,
        logfile,
        pidfile,
        logdir,
        socket_mode,
        socket_group,
        operators: _,
        viewers: _,
        tokens: _,
        tls,
        tcp_max_connections,
        tcp_idle_timeout,
        cgroups,
    } = after;
    let mut changed = Vec::new();
    let mut compare = |key: &str, differs: bool| {
        if differs {
            changed.push(format!("daemon.{key}"));
        }
    };
    compare("socket", *socket != before.socket);
    compare("listen", *listen != before.listen);
    compare("logfile", *logfile != before.logfile);
    compare("pidfile", *pidfile != before.pidfile);
    compare("logdir", *logdir != before.logdir);
    compare("socket_mode", *socket_mode != before.socket_mode);
    compare("socket_group", *socket_group != before.socket_group);
    compare("tls", *tls != before.tls);
    compare(
        "tcp_max_connections",
        *tcp_max_connections != before.tcp_max_connections,
    );
    compare(
        "tcp_idle_timeout",
        *tcp_idle_timeout != before.tcp_idle_timeout,
    );
    compare("cgroups", *cgroups != before.cgroups);
    changed
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
        let policy = Policy::new(&daemon, Listening::default());
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
        assert!(Policy::new(&DaemonSettings::default(), Listening::default()).tcp_open());
    }

    #[test]
    fn a_reload_puts_its_policy_in_force_and_says_what_takes_a_restart() {
        let with_token = DaemonSettings {
            tokens: vec![token("deploy", Role::Operator, "deploy-deploy-deploy")],
            listen: Some("0.0.0.0:7300".into()),
            ..DaemonSettings::default()
        };
        let listening = Listening {
            tcp: Some("0.0.0.0:7300".parse().unwrap()),
            client_certificates: false,
        };
        let gate = Gate::new(&with_token, listening);
        let policy = gate.subscribe();
        assert!(policy.borrow().token(b"deploy-deploy-deploy").is_some());
        assert_eq!(gate.reload(&with_token), Vec::<String>::new());
        // The token is gone: refused at once, and the listener beyond loopback is closed, not
        // open.
        let moved = DaemonSettings {
            listen: Some("0.0.0.0:7400".into()),
            tcp_idle_timeout: Some(std::time::Duration::from_secs(5)),
            ..DaemonSettings::default()
        };
        let warnings = gate.reload(&moved);
        assert!(policy.borrow().token(b"deploy-deploy-deploy").is_none());
        assert!(!policy.borrow().tcp_open());
        assert_eq!(
            warnings,
            [
                "daemon.listen, daemon.tcp_idle_timeout changed since the daemon started: only a \
                 restart applies them (operators, viewers and tokens are in force now)",
                "daemon.tokens is empty now: the TCP listener on 0.0.0.0:7300 refuses every call \
                 (it is not on loopback) until tokens are added again"
            ]
        );
        assert_eq!(policy.borrow().tcp_credentials().words(), "token");
        // On loopback, no token means open, as at start.
        let loopback = Listening {
            tcp: Some("127.0.0.1:7300".parse().unwrap()),
            client_certificates: false,
        };
        let gate = Gate::new(&with_token, loopback);
        let warnings = gate.reload(&DaemonSettings {
            listen: with_token.listen.clone(),
            ..DaemonSettings::default()
        });
        assert!(gate.subscribe().borrow().tcp_open());
        assert!(
            warnings[0].contains("lets every caller control the daemon"),
            "{warnings:?}"
        );
        // Client certificates stay as the listener was set up.
        let mutual = Listening {
            tcp: Some("0.0.0.0:7300".parse().unwrap()),
            client_certificates: true,
        };
        let gate = Gate::new(&DaemonSettings::default(), mutual);
        assert!(!gate.subscribe().borrow().tcp_open());
        assert_eq!(
            gate.subscribe().borrow().tcp_credentials().words(),
            "certificate"
        );
    }

    #[test]
    fn credentials_in_words() {
        for words in ["token", "certificate", "token, certificate"] {
            assert_eq!(Credentials::from_words(words).words(), words);
        }
        let none = Credentials::from_words("password");
        assert_eq!((none.token, none.certificate), (false, false));
    }
}
