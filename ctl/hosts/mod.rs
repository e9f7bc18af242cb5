//! Which daemons a command goes to, and with what credentials: each address given (`-H`,
//! `TASKMASTER_HOSTS`, `TASKMASTER_HOST`, `-s`, `-c` or the default socket) resolved, through
//! the [hosts file](mod@file) for a name, into a [`Host`] with its token and TLS files read.

pub mod file;

use std::path::{Path, PathBuf};

use taskmaster::config::secret;
use taskmaster::endpoint::{ClientOptions, ClientTls, EndpointError, Target, Token};

use file::{HostsFile, HostsFileError};

/// A daemon to talk to, ready to connect.
#[derive(Debug, Clone)]
pub struct Host {
    /// How output and messages name it: its name in the hosts file, or the address as given.
    pub name: String,
    /// Where it listens.
    pub target: Target,
    /// The token and TLS files, read.
    pub options: ClientOptions,
    /// Where its token came from (`--token-file F`, `TASKMASTER_TOKEN`...), to say which
    /// token the daemon did not accept; `None` when no token is sent.
    pub token_from: Option<String>,
}

impl Host {
    /// The daemon at `target`, named after it, without credentials.
    #[cfg(test)]
    pub fn plain(target: Target) -> Host {
        Host {
            name: target.to_string(),
            target,
            options: ClientOptions::default(),
            token_from: None,
        }
    }
}

/// An address before it is resolved: a daemon's own, or a name in the hosts file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    Target(Target),
    Named(String),
}

/// What `-H`, `TASKMASTER_HOSTS` and the `address` key of the hosts file accept:
/// `http://` or `https://` URLs, `HOST:PORT` (plain http), `unix:PATH` or a path with a `/`
/// (a Unix socket); anything else is a name.
pub fn parse_address(word: &str) -> Result<Address, String> {
    let word = word.trim();
    if word.is_empty() {
        return Err("an empty address".into());
    }
    if let Some(path) = word.strip_prefix("unix:") {
        // `unix:///run/x.sock` as gRPC writes it, or `unix:/run/x.sock`.
        let path = path.strip_prefix("//").unwrap_or(path);
        if path.is_empty() {
            return Err("`unix:` needs a socket path after it".into());
        }
        return Ok(Address::Target(Target::Unix(path.into())));
    }
    if let Some((scheme, _)) = word.split_once("://") {
        return match scheme {
            "http" | "https" => Ok(Address::Target(Target::Tcp(word.to_string()))),
            other => Err(format!(
                "unsupported scheme `{other}`: use http://, https:// or unix:PATH"
            )),
        };
    }
    if word.contains('/') {
        return Ok(Address::Target(Target::Unix(word.into())));
    }
    if word.contains(':') {
        // `127.0.0.1:7300` is taken as `http://127.0.0.1:7300`.
        return Ok(Address::Target(Target::Tcp(format!("http://{word}"))));
    }
    Ok(Address::Named(word.to_string()))
}

/// Why the daemons to talk to are not known.
#[derive(Debug, thiserror::Error)]
pub enum HostsError {
    #[error("bad host `{word}`: {reason}")]
    Bad { word: String, reason: String },
    #[error(
        "unknown host `{name}`: {why}; a host is an http:// or https:// URL, HOST:PORT, \
         unix:PATH or a name in the hosts file"
    )]
    Unknown { name: String, why: String },
    #[error(transparent)]
    File(#[from] HostsFileError),
    /// A credential file that cannot be used, by the rules the daemon keeps too
    /// ([`secret`]).
    #[error("{}", problem.naming(what))]
    Credential {
        /// "token file", "CA certificate"...
        what: &'static str,
        problem: secret::FileProblem,
    },
    #[error("the token of {from} {reason}")]
    Token {
        from: String,
        reason: secret::TokenProblem,
    },
    #[error("{flag} is for https:// hosts, and no host given is one")]
    TlsWithoutHttps { flag: &'static str },
}

/// The credentials of the command line and environment, for every host; a flag wins over the
/// hosts file's entry, which wins over `TASKMASTER_TOKEN`.
#[derive(Debug, Default, Clone)]
pub struct Credentials {
    /// `--token-file`.
    pub token_file: Option<PathBuf>,
    /// `TASKMASTER_TOKEN`: the token itself.
    pub env_token: Option<String>,
    /// `--tls-ca`.
    pub tls_ca: Option<PathBuf>,
    /// `--tls-cert` and `--tls-key`, given together.
    pub tls_identity: Option<(PathBuf, PathBuf)>,
}

/// Resolves `addresses` (each with the words it was given as, its name in messages), reading
/// the hosts file at `hosts_file` if a name needs it. The same name twice is one host.
pub fn resolve(
    addresses: Vec<(String, Address)>,
    credentials: &Credentials,
    hosts_file: Option<&Path>,
) -> Result<Vec<Host>, HostsError> {
    let mut reader = Reader::default();
    let mut file: Option<Option<HostsFile>> = None;
    let mut hosts: Vec<Host> = Vec::new();
    // The flags' files, read once for all hosts.
    let flag_token = match &credentials.token_file {
        Some(path) => Some((
            reader.token(path, format!("--token-file {}", path.display()))?,
            format!("--token-file {}", path.display()),
        )),
        None => None,
    };
    let env_token = match credentials.env_token.as_deref() {
        Some(secret) => Some((
            Token::new(secret).map_err(|error| token_error(error, "TASKMASTER_TOKEN"))?,
            "TASKMASTER_TOKEN".to_string(),
        )),
        None => None,
    };
    for (name, address) in addresses {
        if hosts.iter().any(|host| host.name == name) {
            continue;
        }
        let (target, entry) = match address {
            Address::Target(target) => (target, None),
            Address::Named(wanted) => {
                let Some(path) = hosts_file else {
                    return Err(HostsError::Unknown {
                        name: wanted,
                        why: "there is no hosts file (neither XDG_CONFIG_HOME nor HOME is set)"
                            .into(),
                    });
                };
                let loaded = match &mut file {
                    Some(loaded) => loaded,
                    None => file.insert(file::load(path)?),
                };
                let Some(loaded) = loaded else {
                    return Err(HostsError::Unknown {
                        name: wanted,
                        why: format!("there is no hosts file {}", path.display()),
                    });
                };
                let Some(entry) = loaded.entries.get(&wanted) else {
                    return Err(HostsError::Unknown {
                        name: wanted,
                        why: format!("not in {}", path.display()),
                    });
                };
                (entry.target.clone(), Some(entry.clone()))
            }
        };
        let token = match (
            &flag_token,
            entry.as_ref().and_then(|e| e.token_file.as_ref()),
        ) {
            (Some(flag), _) => Some(flag.clone()),
            (None, Some(path)) => {
                let from = format!("token_file {} of host `{name}`", path.display());
                Some((reader.token(path, from.clone())?, from))
            }
            (None, None) => env_token.clone(),
        };
        let mut tls = ClientTls::default();
        if target.is_tls() {
            let ca = credentials
                .tls_ca
                .as_ref()
                .or(entry.as_ref().and_then(|entry| entry.ca.as_ref()));
            if let Some(ca) = ca {
                tls.ca = Some(reader.certificates("CA certificate", ca)?);
            }
            let identity = credentials
                .tls_identity
                .as_ref()
                .or(entry.as_ref().and_then(|entry| entry.identity.as_ref()));
            if let Some((cert, key)) = identity {
                tls.identity = Some((
                    reader.certificates("client certificate", cert)?,
                    reader.key("client key", key)?,
                ));
            }
        }
        let (token, token_from) = token.unzip();
        hosts.push(Host {
            name,
            target,
            options: ClientOptions { token, tls },
            token_from,
        });
    }
    if !hosts.iter().any(|host| host.target.is_tls()) {
        if credentials.tls_ca.is_some() {
            return Err(HostsError::TlsWithoutHttps { flag: "--tls-ca" });
        }
        if credentials.tls_identity.is_some() {
            return Err(HostsError::TlsWithoutHttps {
                flag: "--tls-cert/--tls-key",
            });
        }
    }
    Ok(hosts)
}

fn token_error(error: EndpointError, from: &str) -> HostsError {
    match error {
        EndpointError::Token { reason } => HostsError::Token {
            from: from.to_string(),
            reason,
        },
        other => HostsError::Bad {
            word: from.to_string(),
            reason: other.to_string(),
        },
    }
}

/// Reads credential files, each once, by the rules of [`secret`].
#[derive(Default)]
struct Reader {
    /// Files read so far, by path and whether as a secret.
    read: Vec<(PathBuf, bool, Vec<u8>)>,
}

/// How a credential file is read (and checked).
type ReadFile = fn(&Path) -> Result<Vec<u8>, secret::FileProblem>;

impl Reader {
    /// The file at `path` (the `what` of messages) read by `read`, or as read before.
    fn read(
        &mut self,
        what: &'static str,
        path: &Path,
        secret: bool,
        read: ReadFile,
    ) -> Result<Vec<u8>, HostsError> {
        let known = (self.read.iter()).find(|(read, kept, _)| read == path && *kept == secret);
        if let Some((_, _, bytes)) = known {
            return Ok(bytes.clone());
        }
        let bytes = read(path).map_err(|problem| HostsError::Credential { what, problem })?;
        self.read.push((path.into(), secret, bytes.clone()));
        Ok(bytes)
    }

    /// A PEM file of certificates: refused when it holds none (tonic would trust nothing).
    fn certificates(&mut self, what: &'static str, path: &Path) -> Result<Vec<u8>, HostsError> {
        self.read(what, path, false, secret::certificates)
    }

    /// A PEM private key, a secret file.
    fn key(&mut self, what: &'static str, path: &Path) -> Result<Vec<u8>, HostsError> {
        self.read(what, path, true, secret::private_key)
    }

    /// The token in a secret file.
    fn token(&mut self, path: &Path, from: String) -> Result<Token, HostsError> {
        let bytes = self.read("token file", path, true, |path| {
            secret::read_file(path, true)
        })?;
        Token::new(bytes).map_err(|error| token_error(error, &from))
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn target(word: &str) -> Target {
        match parse_address(word) {
            Ok(Address::Target(target)) => target,
            other => panic!("{word}: {other:?}"),
        }
    }

    #[test]
    fn addresses_and_names() {
        assert_eq!(
            target("127.0.0.1:7300"),
            Target::Tcp("http://127.0.0.1:7300".into())
        );
        assert_eq!(
            target("http://[::1]:7300"),
            Target::Tcp("http://[::1]:7300".into())
        );
        assert_eq!(
            target("https://h:7300"),
            Target::Tcp("https://h:7300".into())
        );
        assert_eq!(
            target("unix:/run/t.sock"),
            Target::Unix("/run/t.sock".into())
        );
        assert_eq!(
            target("unix:///run/t.sock"),
            Target::Unix("/run/t.sock".into())
        );
        assert_eq!(target("unix:t.sock"), Target::Unix("t.sock".into()));
        assert_eq!(target("./t.sock"), Target::Unix("./t.sock".into()));
        assert_eq!(parse_address(" prod "), Ok(Address::Named("prod".into())));
        assert!(
            parse_address("ftp://x")
                .unwrap_err()
                .contains("unsupported scheme `ftp`")
        );
        assert!(parse_address("").is_err());
        assert!(parse_address("unix:").is_err());
    }

    fn secret_file(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    fn named(name: &str) -> (String, Address) {
        (name.to_string(), parse_address(name).unwrap())
    }

    #[test]
    fn a_flag_beats_the_entry_which_beats_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let flag = secret_file(dir.path(), "flag.token", "from-flag-0123456789\n", 0o600);
        secret_file(dir.path(), "prod.token", "from-entry-0123456789\n", 0o640);
        let hosts = dir.path().join("hosts.yaml");
        std::fs::write(
            &hosts,
            "prod: {address: 'h:1', token_file: prod.token}\nlab: {address: 'l:1'}\n",
        )
        .unwrap();
        let mut credentials = Credentials {
            env_token: Some("from-env-0123456789".into()),
            ..Credentials::default()
        };
        let resolved = resolve(
            vec![named("prod"), named("lab"), named("prod"), named("x:1")],
            &credentials,
            Some(&hosts),
        )
        .unwrap();
        let froms: Vec<_> = resolved
            .iter()
            .map(|host| (host.name.as_str(), host.token_from.clone().unwrap()))
            .collect();
        let entry_from = format!(
            "token_file {} of host `prod`",
            dir.path().join("prod.token").display()
        );
        assert_eq!(
            froms,
            [
                ("prod", entry_from),
                ("lab", "TASKMASTER_TOKEN".into()),
                ("x:1", "TASKMASTER_TOKEN".into()),
            ]
        );
        credentials.token_file = Some(flag.clone());
        let resolved = resolve(vec![named("prod")], &credentials, Some(&hosts)).unwrap();
        assert_eq!(
            resolved[0].token_from.as_deref(),
            Some(format!("--token-file {}", flag.display()).as_str())
        );
    }

    #[test]
    fn token_files_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let wide = secret_file(dir.path(), "wide.token", "secret-0123456789\n", 0o644);
        let with = |path: &Path| Credentials {
            token_file: Some(path.into()),
            ..Credentials::default()
        };
        // The daemon's rules: every user may read it, so it is refused; its group may.
        let error = resolve(vec![named("x:1")], &with(&wide), None).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "the token file {0} can be read or changed by every user (mode 0644); make it \
                 private: chmod o-rwx {0}",
                wide.display()
            )
        );
        std::fs::set_permissions(&wide, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(resolve(vec![named("x:1")], &with(&wide), None).is_ok());
        let short = secret_file(dir.path(), "short.token", "secret\n", 0o600);
        let error = resolve(vec![named("x:1")], &with(&short), None).unwrap_err();
        assert!(
            error.to_string().starts_with(&format!(
                "the token of --token-file {} is 6 characters long; a token takes at least 16",
                short.display()
            )),
            "{error}"
        );
        let empty = secret_file(dir.path(), "empty.token", "\n", 0o600);
        let error = resolve(vec![named("x:1")], &with(&empty), None).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("the token of --token-file {} is empty", empty.display())
        );
        let missing = dir.path().join("missing.token");
        let error = resolve(vec![named("x:1")], &with(&missing), None).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "cannot read the token file {}: No such file or directory (os error 2)",
                missing.display()
            )
        );
        let spaced = Credentials {
            env_token: Some("two words".into()),
            ..Credentials::default()
        };
        let error = resolve(vec![named("x:1")], &spaced, None).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the token of TASKMASTER_TOKEN holds a blank, a control character or non-ASCII: a \
             token is printable ASCII (it travels in an HTTP header)"
        );
    }

    #[test]
    fn unknown_names_and_tls_without_https() {
        let dir = tempfile::tempdir().unwrap();
        let hosts = dir.path().join("hosts.yaml");
        let error = resolve(vec![named("prod")], &Credentials::default(), Some(&hosts))
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with(&format!(
                "unknown host `prod`: there is no hosts file {}",
                hosts.display()
            )),
            "{error}"
        );
        std::fs::write(&hosts, "lab: {address: 'l:1'}\n").unwrap();
        let error = resolve(vec![named("prod")], &Credentials::default(), Some(&hosts))
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with(&format!("unknown host `prod`: not in {}", hosts.display())),
            "{error}"
        );
        let ca = Credentials {
            tls_ca: Some(dir.path().join("ca.pem")),
            ..Credentials::default()
        };
        let error = resolve(vec![named("lab")], &ca, Some(&hosts)).unwrap_err();
        assert_eq!(
            error.to_string(),
            "--tls-ca is for https:// hosts, and no host given is one"
        );
    }
}
