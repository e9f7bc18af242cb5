//! The `daemon:` keys that say who may control the daemon: the socket's group, operators and
//! viewers (users and groups looked up when the file is read), bearer tokens (read from their
//! file or environment variable, never from the config) and TLS.

use std::path::{Path, PathBuf};

use serde_yaml::Value;

use super::{Checker, Read as ReadKey, set};
use crate::access::Role;
use crate::config::identity::Key as Kind;
use crate::config::positions::last;
use crate::config::schema::{Principal, Principals, Secret, TlsSettings, TokenConfig, TokenSource};
use crate::config::secret;
use crate::config::values::{account, expected, file_path, variable_name};

/// What is written about a token that is never accepted: the token itself.
const INLINE_TOKEN: &str = "a token is never written in the config (whoever can read this file \
                            would hold it): keep it in a file (`file: PATH`, readable by the \
                            daemon's user only) or an environment variable (`env: NAME`)";

/// The keys of `daemon.operators` and `daemon.viewers`.
const PRINCIPAL_KEYS: &[(&str, ReadKey<Principals>)] = &[
    ("users", |c, key, value, p| {
        set(&mut p.users, c.principal_list(key, value, Kind::User));
    }),
    ("groups", |c, key, value, p| {
        set(&mut p.groups, c.principal_list(key, value, Kind::Group));
    }),
];

/// A token entry as read so far; what is missing is reported once the entry is read.
#[derive(Default)]
struct TokenDraft {
    /// `name`.
    name: Option<String>,
    /// `role`.
    role: Option<Role>,
    /// `file` or `env`, with the secret read from it.
    source: Option<(TokenSource, Secret)>,
}

/// The keys of one entry of `daemon.tokens` (`token` is refused on its own, see
/// [`INLINE_TOKEN`]).
const TOKEN_KEYS: &[(&str, ReadKey<TokenDraft>)] = &[
    ("name", |c, key, value, t| {
        t.name = c.check(key, token_name(value));
    }),
    ("role", |c, key, value, t| {
        t.role = c.check(key, role(value));
    }),
    ("file", |c, key, value, t| {
        let read = file_path(c.dir, value)
            .and_then(|path| path.ok_or_else(|| expected("a path", value)))
            .and_then(|path| Ok((token_file(&path)?, path)));
        if let Some((secret, path)) = c.check(key, read) {
            t.source = Some((TokenSource::File(path), secret));
        }
    }),
    ("env", |c, key, value, t| {
        let read = variable(value).and_then(|name| Ok((token_variable(&name)?, name)));
        if let Some((secret, name)) = c.check(key, read) {
            t.source = Some((TokenSource::Env(name), secret));
        }
    }),
];

/// The keys of `daemon.tls`.
const TLS_KEYS: &[(&str, ReadKey<TlsDraft>)] = &[
    ("cert", |c, key, value, t| t.cert = c.pem(key, value, false)),
    ("key", |c, key, value, t| t.key = c.pem(key, value, true)),
    ("client_ca", |c, key, value, t| {
        t.client_ca = c.pem(key, value, false)
    }),
];

/// `daemon.tls` as read so far.
#[derive(Default)]
struct TlsDraft {
    /// `cert`, once read.
    cert: Option<PathBuf>,
    /// `key`, once read.
    key: Option<PathBuf>,
    /// `client_ca`, once read.
    client_ca: Option<PathBuf>,
}

impl Checker<'_> {
    /// `daemon.operators` or `daemon.viewers`: `{users: [...], groups: [...]}`.
    pub(super) fn principals(&mut self, path: &[String], value: &Value) -> Option<Principals> {
        let map = match value {
            Value::Null => return Some(Principals::default()),
            Value::Mapping(map) => map,
            _ => {
                let what = "a mapping of `users` and `groups` (`{users: [alice], groups: [ops]}`)";
                self.report(path, false, expected(what, value));
                return None;
            }
        };
        let before = self.issues.len();
        let mut principals = Principals::default();
        for (key, value) in self.entries(path, map) {
            self.read(&key, value, PRINCIPAL_KEYS, &mut principals);
        }
        (self.issues.len() == before).then_some(principals)
    }

    /// A user or group (`kind`) as a principal, read and looked up as a program's `user:` and
    /// `group:` are ([`account`], [`crate::config::identity::Accounts::principal`]).
    pub(super) fn principal(&mut self, value: &Value, kind: Kind) -> Result<Principal, String> {
        let what = match kind {
            Kind::User => "user",
            Kind::Group => "group",
        };
        match account(value, what)? {
            Some(account) => self.accounts.principal(kind, &account),
            None => Err(expected(&format!("a {what} name or number"), value)),
        }
    }

    /// A list of users or groups (`kind`), or just one, each looked up and reported where it is
    /// written.
    fn principal_list(
        &mut self,
        path: &[String],
        value: &Value,
        kind: Kind,
    ) -> Option<Vec<Principal>> {
        let items: Vec<(Vec<String>, &Value)> = match value {
            Value::Null => return Some(Vec::new()),
            Value::Sequence(items) => (items.iter().enumerate())
                .map(|(i, item)| ([path, &[i.to_string()]].concat(), item))
                .collect(),
            _ => vec![(path.to_vec(), value)],
        };
        let mut found = Vec::with_capacity(items.len());
        let mut ok = true;
        for (item_path, item) in items {
            match self.principal(item, kind) {
                Ok(principal) => found.push(principal),
                Err(message) => {
                    ok = false;
                    let pos = self.index.get().place(&item_path).value;
                    let key = path.join(".");
                    self.issues.push(super::issue(pos, key, message));
                }
            }
        }
        ok.then_some(found)
    }

    /// `daemon.tokens`: a list of `{name, role, file | env}`.
    pub(super) fn tokens(&mut self, path: &[String], value: &Value) -> Option<Vec<TokenConfig>> {
        let items = match value {
            Value::Null => return Some(Vec::new()),
            Value::Sequence(items) => items,
            _ => {
                let what = "a list of tokens, each `{name: NAME, role: operator, file: PATH}`";
                self.report(path, false, expected(what, value));
                return None;
            }
        };
        let before = self.issues.len();
        let mut tokens: Vec<(Vec<String>, TokenConfig)> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let item_path = [path, &[i.to_string()]].concat();
            let Some(token) = self.token(&item_path, item) else {
                continue;
            };
            let key = |name: &str| [&item_path[..], &[name.to_string()]].concat();
            if let Some((_, first)) = tokens.iter().find(|(_, t)| t.name == token.name) {
                let message = format!("a second token named `{}`: names are unique", first.name);
                self.report(&key("name"), false, message);
            } else if let Some((_, first)) = tokens.iter().find(|(_, t)| t.secret == token.secret) {
                let source = match &token.source {
                    TokenSource::File(_) => "file",
                    TokenSource::Env(_) => "env",
                };
                let message = format!(
                    "the same token as `{}`: each token must be different, or its holder \
                     could not be told apart",
                    first.name
                );
                self.report(&key(source), false, message);
            }
            tokens.push((item_path, token));
        }
        (self.issues.len() == before).then(|| tokens.into_iter().map(|(_, t)| t).collect())
    }

    fn token(&mut self, path: &[String], value: &Value) -> Option<TokenConfig> {
        let Value::Mapping(map) = value else {
            let what = "a token: `{name: NAME, role: operator or viewer, file: PATH or env: VAR}`";
            self.report(path, false, expected(what, value));
            return None;
        };
        let before = self.issues.len();
        let mut draft = TokenDraft::default();
        let mut inline = false;
        for (key, value) in self.entries(path, map) {
            if last(&key) == "token" {
                inline = true;
                self.report(&key, true, INLINE_TOKEN);
            } else {
                self.read(&key, value, TOKEN_KEYS, &mut draft);
            }
        }
        let has = |key: &str| map.contains_key(key);
        if !has("name") {
            self.report(
                path,
                true,
                "missing required key `name` (how its holder is named)",
            );
        }
        if !has("role") {
            self.report(
                path,
                true,
                "missing required key `role` (operator or viewer)",
            );
        }
        if !inline && !has("file") && !has("env") {
            let message = "missing `file` or `env`: where the token is kept (never in the config)";
            self.report(path, true, message);
        }
        if has("file") && has("env") {
            let key = [path, &["env".to_string()]].concat();
            self.report(
                &key,
                true,
                "a token is read from `file` or from `env`, not both",
            );
        }
        if self.issues.len() != before {
            return None;
        }
        let (source, secret) = draft.source?;
        Some(TokenConfig {
            name: draft.name?,
            role: draft.role?,
            secret,
            source,
        })
    }

    /// `daemon.tls`: `{cert, key, client_ca}`.
    pub(super) fn tls(&mut self, path: &[String], value: &Value) -> Option<TlsSettings> {
        let map = match value {
            Value::Null => return None,
            Value::Mapping(map) => map,
            _ => {
                let what = "a mapping `{cert: PATH, key: PATH, client_ca: PATH}`";
                self.report(path, false, expected(what, value));
                return None;
            }
        };
        let before = self.issues.len();
        let mut draft = TlsDraft::default();
        for (key, value) in self.entries(path, map) {
            self.read(&key, value, TLS_KEYS, &mut draft);
        }
        for (key, what) in [
            ("cert", "the server's certificate chain"),
            ("key", "the server's private key"),
        ] {
            if !map.contains_key(key) {
                self.report(
                    path,
                    true,
                    format!("missing required key `{key}` ({what}, PEM)"),
                );
            }
        }
        if self.issues.len() != before {
            return None;
        }
        Some(TlsSettings {
            cert: draft.cert?,
            key: draft.key?,
            client_ca: draft.client_ca,
        })
    }

    /// A PEM file the daemon can read; a `private` one must not be readable by every user.
    fn pem(&mut self, key: &[String], value: &Value, private: bool) -> Option<PathBuf> {
        let read = file_path(self.dir, value)
            .and_then(|path| path.ok_or_else(|| expected("a path to a PEM file", value)))
            .and_then(|path| pem_file(&path, private).map(|()| path));
        self.check(key, read)
    }
}

fn token_name(value: &Value) -> Result<String, String> {
    match value {
        Value::String(name)
            if !name.is_empty()
                && (name.bytes()).all(|b| b.is_ascii_alphanumeric() || b"_.-@".contains(&b)) =>
        {
            Ok(name.clone())
        }
        Value::String(name) => Err(format!(
            "invalid token name {name:?}: use letters, digits, `_`, `.`, `-` and `@` only"
        )),
        _ => Err(expected("a token name", value)),
    }
}

fn role(value: &Value) -> Result<Role, String> {
    match value {
        Value::String(word) if word.eq_ignore_ascii_case("operator") => Ok(Role::Operator),
        Value::String(word) if word.eq_ignore_ascii_case("viewer") => Ok(Role::Viewer),
        _ => Err(expected("operator or viewer", value)),
    }
}

/// A token's `env`: the name of a variable, as a program's `env` names one.
fn variable(value: &Value) -> Result<String, String> {
    match value {
        Value::String(name) => variable_name(name).map(|()| name.clone()),
        _ => Err(expected("the name of an environment variable", value)),
    }
}

/// The token in the file at `path`, a secret file (see [`secret`]).
fn token_file(path: &Path) -> Result<Secret, String> {
    let bytes = secret::read_file(path, true).map_err(|problem| problem.to_string())?;
    let shown = path.display();
    token(&bytes).map_err(|problem| format!("the token in {shown} {problem}"))
}

/// The token in environment variable `name` (or taken from it at start, see
/// [`crate::config::take_token_variables`]).
fn token_variable(name: &str) -> Result<Secret, String> {
    let value = crate::config::token_variable(name)?;
    token(value.as_bytes()).map_err(|problem| format!("the token in ${name} {problem}"))
}

/// A token as [`secret::token`] accepts it.
fn token(bytes: &[u8]) -> Result<Secret, secret::TokenProblem> {
    secret::token(bytes).map(Secret::new)
}

/// A PEM file the daemon can read that holds what it is for (see [`secret`]): certificates,
/// or a `private` key. The daemon reads it again when it sets TLS up.
fn pem_file(path: &Path, private: bool) -> Result<(), String> {
    let read = match private {
        true => secret::private_key(path),
        false => secret::certificates(path),
    };
    read.map(drop).map_err(|problem| problem.to_string())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::config::testing::{issues, ok};

    /// A file in `dir` holding `text`, with permission bits `mode`.
    fn file(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    /// A config whose daemon section is `daemon` (indented by two spaces).
    fn with_daemon(daemon: &str) -> String {
        format!("daemon:\n{daemon}programs: {{}}\n")
    }

    const PEM: &str = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    const KEY: &str = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";

    #[test]
    fn every_access_key_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let deploy = file(dir.path(), "deploy.token", "0123456789abcdef0123\n", 0o600);
        let monitor = file(
            dir.path(),
            "monitor.token",
            "  fedcba9876543210fedc  ",
            0o640,
        );
        let cert = file(dir.path(), "cert.pem", PEM, 0o644);
        let key = file(dir.path(), "key.pem", KEY, 0o640);
        let text = with_daemon(&format!(
            "  socket_mode: 0660
  socket_group: nogroup
  operators: {{users: [root, 4321, \"4322\"], groups: [nogroup, 4323]}}
  viewers:
    users: nobody
  tokens:
    - {{name: deploy, role: operator, file: {}}}
    - name: monitor
      role: Viewer
      file: {}
  tls: {{cert: {}, key: {}, client_ca: {}}}
",
            deploy.display(),
            monitor.display(),
            cert.display(),
            key.display(),
            cert.display()
        ));
        let daemon = ok(&text).daemon;
        assert_eq!(daemon.socket_mode, Some(0o660));
        let principal = |id, name: &str| Principal {
            id,
            name: name.to_string(),
        };
        assert_eq!(daemon.socket_group, Some(principal(65534, "nogroup")));
        assert_eq!(
            daemon.operators,
            Principals {
                // A number no entry has is allowed, written as a number or as digits.
                users: vec![
                    principal(0, "root"),
                    principal(4321, "4321"),
                    principal(4322, "4322")
                ],
                groups: vec![principal(65534, "nogroup"), principal(4323, "4323")],
            }
        );
        assert_eq!(daemon.viewers.users, [principal(65534, "nobody")]);
        assert!(daemon.viewers.groups.is_empty());
        let tokens: Vec<(&str, Role)> = (daemon.tokens.iter())
            .map(|t| (t.name.as_str(), t.role))
            .collect();
        assert_eq!(
            tokens,
            [("deploy", Role::Operator), ("monitor", Role::Viewer)]
        );
        // Blanks at either end are not part of the token.
        assert!(daemon.tokens[0].secret.matches(b"0123456789abcdef0123"));
        assert!(daemon.tokens[1].secret.matches(b"fedcba9876543210fedc"));
        assert!(!daemon.tokens[1].secret.matches(b"fedcba9876543210fedd"));
        assert_eq!(daemon.tokens[0].source, TokenSource::File(deploy));
        // Never shown.
        assert!(!format!("{daemon:?}").contains("0123456789abcdef"));
        let tls = daemon.tls.as_ref().unwrap();
        assert_eq!((&tls.cert, &tls.key), (&cert, &key));
        assert_eq!(tls.client_ca.as_ref(), Some(&cert));
        assert!(daemon.authenticates_tcp());
        // Nothing set: nothing but the daemon's user and root, no TCP authentication.
        let plain = ok("programs: {}\n").daemon;
        assert_eq!(plain.socket_mode, None);
        assert_eq!(plain.operators, Principals::default());
        assert!(!plain.authenticates_tcp());
    }

    #[test]
    fn socket_mode_is_octal_as_umask_is() {
        for (written, mode) in [
            ("0660", 0o660),
            ("\"0660\"", 0o660),
            ("660", 0o660),
            ("0o600", 0o600),
            ("'0666'", 0o666),
        ] {
            let daemon = ok(&with_daemon(&format!("  socket_mode: {written}\n"))).daemon;
            assert_eq!(daemon.socket_mode, Some(mode), "{written}");
        }
        for (written, message) in [
            ("0999", "expected octal digits 0-7 like 0660"),
            ("01777", "must be at most 0777"),
            ("rw", "like 0660, found \"rw\""),
            ("[1]", "expected an octal mode like 0660, found a list"),
        ] {
            let found = issues(&with_daemon(&format!("  socket_mode: {written}\n")));
            assert_eq!(
                (found[0].line, found[0].column, found[0].key.as_str()),
                (2, 16, "daemon.socket_mode")
            );
            assert!(found[0].message.contains(message), "{written}: {found:?}");
        }
    }

    #[test]
    fn problems_are_reported_at_their_place() {
        let dir = tempfile::tempdir().unwrap();
        let good = file(dir.path(), "good.token", "0123456789abcdef0123", 0o600);
        let public = file(dir.path(), "public.token", "0123456789abcdef9999", 0o644);
        let short = file(dir.path(), "short.token", "secret\n", 0o600);
        let blank = file(dir.path(), "blank.token", "0123456789 abcdef0123", 0o600);
        let empty = file(dir.path(), "empty.token", "\n", 0o600);
        let cert = file(dir.path(), "cert.pem", PEM, 0o644);
        let key = file(dir.path(), "key.pem", KEY, 0o600);
        let open_key = file(dir.path(), "open-key.pem", KEY, 0o644);
        let not_pem = file(dir.path(), "not.pem", "hello", 0o600);
        let missing = dir.path().join("missing.token");
        let [
            good,
            public,
            short,
            blank,
            empty,
            cert,
            key,
            open_key,
            not_pem,
            missing,
        ] = [
            good, public, short, blank, empty, cert, key, open_key, not_pem, missing,
        ]
        .map(|path| path.display().to_string());
        // (daemon section, where the problem is reported: the line and the text that starts
        // there, key, part of the message)
        let cases: Vec<(String, usize, &str, &str, String)> = vec![
            (
                "  socket_group: no-such-group-x\n".into(),
                2,
                "no-such-group-x",
                "daemon.socket_group",
                "no group named \"no-such-group-x\" in the group database".into(),
            ),
            (
                "  operators: {users: [root, no-such-user-x]}\n".into(),
                2,
                "no-such-user-x",
                "daemon.operators.users",
                "no user named \"no-such-user-x\" in the user database".into(),
            ),
            (
                "  viewers:\n    groups:\n      - nogroup\n      - no-such-group-y\n".into(),
                5,
                "no-such-group-y",
                "daemon.viewers.groups",
                "no group named \"no-such-group-y\" in the group database".into(),
            ),
            (
                "  operators: [alice]\n".into(),
                2,
                "[alice]",
                "daemon.operators",
                "expected a mapping of `users` and `groups`".into(),
            ),
            (
                "  operators: {user: [root]}\n".into(),
                2,
                "user:",
                "daemon.operators.user",
                "unknown key `user` (did you mean `users`?)".into(),
            ),
            (
                "  viewers: {users: [-1]}\n".into(),
                2,
                "-1",
                "daemon.viewers.users",
                "a user id is from 0 to 4294967294, found -1".into(),
            ),
            (
                "  viewers: {users: [4294967295]}\n".into(),
                2,
                "4294967295",
                "daemon.viewers.users",
                "a user id is from 0 to 4294967294, found 4294967295".into(),
            ),
            (
                "  operators: {users: [''], groups: [~]}\n".into(),
                2,
                "''",
                "daemon.operators.users",
                "the user name is empty".into(),
            ),
            (
                "  operators: {users: [''], groups: [~]}\n".into(),
                2,
                "~",
                "daemon.operators.groups",
                "expected a group name or number, found nothing (null)".into(),
            ),
            (
                "  tokens:\n    - {name: a, role: operator, token: s3cr3t-s3cr3t-s3cr3t}\n".into(),
                3,
                "token:",
                "daemon.tokens.0.token",
                "a token is never written in the config".into(),
            ),
            (
                format!("  tokens:\n    - {{role: operator, file: {good}}}\n"),
                3,
                "{role",
                "daemon.tokens.0",
                "missing required key `name`".into(),
            ),
            (
                format!("  tokens:\n    - {{name: a, file: {good}}}\n"),
                3,
                "{name",
                "daemon.tokens.0",
                "missing required key `role` (operator or viewer)".into(),
            ),
            (
                "  tokens:\n    - {name: a, role: operator}\n".into(),
                3,
                "{name",
                "daemon.tokens.0",
                "missing `file` or `env`".into(),
            ),
            (
                format!("  tokens:\n    - {{name: a, role: admin, file: {good}}}\n"),
                3,
                "admin",
                "daemon.tokens.0.role",
                "expected operator or viewer, found string \"admin\"".into(),
            ),
            (
                format!("  tokens:\n    - {{name: a b, role: viewer, file: {good}}}\n"),
                3,
                "a b",
                "daemon.tokens.0.name",
                "invalid token name \"a b\"".into(),
            ),
            (
                format!("  tokens:\n    - {{name: a, role: viewer, file: {public}}}\n"),
                3,
                "/",
                "daemon.tokens.0.file",
                format!(
                    "{public} can be read or changed by every user (mode 0644); make it \
                     private: chmod o-rwx {public}"
                ),
            ),
            (
                format!("  tokens:\n    - {{name: a, role: viewer, file: {short}}}\n"),
                3,
                "/",
                "daemon.tokens.0.file",
                format!("the token in {short} is 6 characters long; a token takes at least 16"),
            ),
            (
                format!("  tokens:\n    - {{name: a, role: viewer, file: {blank}}}\n"),
                3,
                "/",
                "daemon.tokens.0.file",
                "holds a blank".into(),
            ),
            (
                format!("  tokens:\n    - {{name: a, role: viewer, file: {empty}}}\n"),
                3,
                "/",
                "daemon.tokens.0.file",
                format!("the token in {empty} is empty"),
            ),
            (
                format!("  tokens:\n    - {{name: a, role: viewer, file: {missing}}}\n"),
                3,
                "/",
                "daemon.tokens.0.file",
                format!("cannot read {missing}: No such file"),
            ),
            (
                "  tokens:\n    - {name: a, role: viewer, env: TASKMASTER_TEST_UNSET_X}\n".into(),
                3,
                "TASKMASTER_TEST_UNSET_X",
                "daemon.tokens.0.env",
                "the environment variable TASKMASTER_TEST_UNSET_X is not set".into(),
            ),
            (
                "  tokens:\n    - {name: a, role: viewer, env: \"A=B\"}\n".into(),
                3,
                "\"A=B\"",
                "daemon.tokens.0.env",
                "invalid variable name \"A=B\": it must be non-empty, without `=` or NUL".into(),
            ),
            (
                format!("  tokens:\n    - {{name: a, role: viewer, file: {good}, env: PATH}}\n"),
                3,
                "env:",
                "daemon.tokens.0.env",
                "from `file` or from `env`, not both".into(),
            ),
            (
                format!(
                    "  tokens:\n    - {{name: a, role: viewer, file: {good}}}\n    - {{name: a, role: viewer, file: {good}}}\n"
                ),
                4,
                "a,",
                "daemon.tokens.1.name",
                "a second token named `a`".into(),
            ),
            (
                format!(
                    "  tokens:\n    - {{name: a, role: viewer, file: {good}}}\n    - {{name: b, role: operator, file: {good}}}\n"
                ),
                4,
                "/",
                "daemon.tokens.1.file",
                "the same token as `a`".into(),
            ),
            (
                "  tokens: {name: a}\n".into(),
                2,
                "{name",
                "daemon.tokens",
                "expected a list of tokens".into(),
            ),
            (
                format!("  tls: {{cert: {cert}}}\n"),
                2,
                "tls",
                "daemon.tls",
                "missing required key `key` (the server's private key, PEM)".into(),
            ),
            (
                format!("  tls: {{cert: {cert}, key: {open_key}}}\n"),
                2,
                open_key.as_str(),
                "daemon.tls.key",
                "can be read or changed by every user".into(),
            ),
            (
                format!("  tls: {{cert: {not_pem}, key: {key}}}\n"),
                2,
                not_pem.as_str(),
                "daemon.tls.cert",
                format!("{not_pem} holds no certificate in PEM"),
            ),
            (
                format!("  tls: {{cert: {cert}, key: {not_pem}}}\n"),
                2,
                not_pem.as_str(),
                "daemon.tls.key",
                format!("{not_pem} holds no private key in PEM"),
            ),
            (
                format!("  tls: {{cert: {cert}, key: {key}, client_ca: {missing}}}\n"),
                2,
                missing.as_str(),
                "daemon.tls.client_ca",
                "cannot read".into(),
            ),
        ];
        let mut failures = Vec::new();
        for (daemon, line, at, key, message) in &cases {
            let text = with_daemon(daemon);
            let line_text = text.lines().nth(line - 1).unwrap();
            let column = line_text.find(at).expect("the text is on its line") + 1;
            let found = match crate::config::parse(&text, Path::new(crate::config::testing::PATH)) {
                Err(crate::config::ConfigError::Invalid { issues, .. }) => issues,
                other => {
                    failures.push(format!("{text:?}: expected problems, got {other:?}"));
                    continue;
                }
            };
            let hit = found.iter().any(|i| {
                i.line == *line
                    && i.column == column
                    && i.key == *key
                    && i.message.contains(message.as_str())
            });
            if !hit {
                failures.push(format!(
                    "{text:?}\n  want {line}:{column}: {key}: ...{message}...\n  got  {found:?}"
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}
