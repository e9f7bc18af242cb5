//! How a command ends: its [`Outcome`] when it ran, its [`CtlError`] when it did not, and the
//! one [`Exit`] status that main, the shell and every command give for either.

use std::{io, process::ExitCode};

use taskmaster::access::Credentials;
use taskmaster::endpoint::{EndpointError, Target, TlsProblem};

use crate::command::UsageError;

/// The exit status of taskctl, of a command and of a shell script. Declared from best to
/// worst, so that the worst of several is their maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Exit {
    Success = 0,
    /// A command ran but failed, or something it was asked to do failed.
    Failed = 1,
    /// A command line that does not parse, or a command that does not work there.
    Usage = 2,
    /// The daemon cannot be reached, or the connection to it was lost.
    Unreachable = 3,
    /// Ctrl-C ended a command, as a shell reports SIGINT.
    Interrupted = 130,
}

impl Exit {
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The line of `taskctl --help` that explains the statuses.
    pub fn legend() -> String {
        format!(
            "Exit status: {} success, {} a command failed, {} usage error, {} daemon unreachable.",
            Exit::Success.code(),
            Exit::Failed.code(),
            Exit::Usage.code(),
            Exit::Unreachable.code(),
        )
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit.code())
    }
}

/// How a command that ran went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// It ran, but something it was asked to do failed.
    Failed,
}

impl Outcome {
    pub fn exit(self) -> Exit {
        match self {
            Outcome::Success => Exit::Success,
            Outcome::Failed => Exit::Failed,
        }
    }
}

/// Why a command failed. Each kind has its exit status ([`CtlError::exit`]).
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error(transparent)]
    Usage(#[from] UsageError),
    /// No connection: the daemon is not there, or TLS with it failed.
    #[error("{}", unreachable(.0))]
    Unreachable(#[from] EndpointError),
    /// The daemon wants a token (or another one) or a client certificate.
    #[error("{}", unauthenticated(target, token_from.as_deref(), *takes))]
    Unauthenticated {
        /// The daemon that refused.
        target: Target,
        /// Where the token sent came from; `None` when none was sent.
        token_from: Option<String>,
        /// What the daemon said it takes; `None`: it did not say (a token, then).
        takes: Option<Credentials>,
    },
    /// The caller's role may not run this command.
    #[error(
        "taskmasterd at {target} does not let this caller's role run {}: {reason}",
        command.map_or_else(|| "it".to_string(), |name| format!("`{name}`"))
    )]
    Forbidden {
        /// The daemon that refused.
        target: Target,
        /// The command refused, once known ([`CtlError::in_command`]).
        command: Option<&'static str>,
        /// What the daemon said.
        reason: String,
    },
    #[error("lost connection to taskmasterd at {target}: {reason}")]
    Lost {
        /// The daemon the connection was to.
        target: Target,
        /// What broke it, as tonic or the stream said.
        reason: String,
    },
    /// The daemon refused: an unknown name, shutting down...
    #[error("{}", .0.message())]
    Refused(tonic::Status),
    /// `reload` of a config with errors; holds them, one per line.
    #[error("reload rejected; the config has errors:\n{0}")]
    Rejected(String),
    #[error("cannot write the output: {0}")]
    Output(io::Error),
}

impl CtlError {
    /// A closed output pipe (`taskctl status | head -1`) is success.
    pub fn exit(&self) -> Exit {
        match self {
            CtlError::Usage(_) => Exit::Usage,
            CtlError::Unreachable(_) | CtlError::Lost { .. } => Exit::Unreachable,
            CtlError::Refused(_)
            | CtlError::Rejected(_)
            | CtlError::Unauthenticated { .. }
            | CtlError::Forbidden { .. } => Exit::Failed,
            CtlError::Output(_) if self.is_silent() => Exit::Success,
            CtlError::Output(_) => Exit::Failed,
        }
    }

    /// The same error, knowing the command it ended (a refusal says which was refused).
    pub fn in_command(self, name: &'static str) -> CtlError {
        match self {
            CtlError::Forbidden { target, reason, .. } => CtlError::Forbidden {
                target,
                command: Some(name),
                reason,
            },
            other => other,
        }
    }

    /// Whether to say anything: a reader that went away needs no message.
    pub fn is_silent(&self) -> bool {
        matches!(self, CtlError::Output(error) if error.kind() == io::ErrorKind::BrokenPipe)
    }
}

/// What an endpoint error says, with the flag that helps where a TLS failure has one.
fn unreachable(error: &EndpointError) -> String {
    let hint = match error {
        EndpointError::TlsHandshake { problem, .. } => match problem {
            TlsProblem::UnknownCa => {
                "; pass the CA that signed it with --tls-ca (or `ca:` in the hosts file)"
            }
            TlsProblem::ClientCertificateRequired => "; pass --tls-cert and --tls-key",
            TlsProblem::ClientCertificateRefused(_) => {
                "; check --tls-cert and --tls-key (a certificate of the daemon's client CA)"
            }
            TlsProblem::WrongName => "; connect by a name or address the certificate lists",
            TlsProblem::NotTls => "; for a daemon without TLS use http://",
            TlsProblem::TlsOnly => "; use https://",
            TlsProblem::BadCertificate(_) | TlsProblem::Other(_) => "",
        },
        _ => "",
    };
    format!("{error}{hint}")
}

fn unauthenticated(
    target: &Target,
    token_from: Option<&str>,
    takes: Option<Credentials>,
) -> String {
    let certificate = takes.is_some_and(|takes| takes.certificate);
    let token = takes.is_none_or(|takes| takes.token);
    match token_from {
        None if certificate && token => format!(
            "taskmasterd at {target} wants a token or a client certificate: pass --token-file \
             or set TASKMASTER_TOKEN, or pass --tls-cert and --tls-key"
        ),
        None if certificate => format!(
            "taskmasterd at {target} wants a client certificate: pass --tls-cert and --tls-key"
        ),
        None => format!(
            "taskmasterd at {target} wants a token: pass --token-file or set TASKMASTER_TOKEN"
        ),
        Some(from) => format!("taskmasterd at {target} did not accept the token of {from}"),
    }
}

/// Reports a failure on stderr; gives the exit status of a command that ran.
pub fn report(outcome: Result<Outcome, CtlError>) -> Exit {
    match outcome {
        Ok(outcome) => outcome.exit(),
        Err(error) => {
            if !error.is_silent() {
                eprintln!("{error}");
            }
            error.exit()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command;

    #[test]
    fn statuses_keep_their_numbers() {
        let codes = [
            Exit::Success,
            Exit::Failed,
            Exit::Usage,
            Exit::Unreachable,
            Exit::Interrupted,
        ]
        .map(Exit::code);
        assert_eq!(codes, [0, 1, 2, 3, 130]);
        assert_eq!(Exit::Failed.max(Exit::Usage), Exit::Usage);
        assert_eq!(
            Exit::legend(),
            "Exit status: 0 success, 1 a command failed, 2 usage error, 3 daemon unreachable."
        );
    }

    #[test]
    fn exit_codes() {
        let usage = CtlError::Usage(command::parse(&[]).unwrap_err());
        assert_eq!(usage.exit().code(), 2);
        let refused = CtlError::Refused(tonic::Status::not_found("no such program or instance: x"));
        assert_eq!(refused.exit().code(), 1);
        assert_eq!(refused.to_string(), "no such program or instance: x");
        let pipe = CtlError::Output(io::Error::from(io::ErrorKind::BrokenPipe));
        assert_eq!(pipe.exit().code(), 0);
        assert!(pipe.is_silent());
        let lost = CtlError::Lost {
            target: Target::Unix("/run/t.sock".into()),
            reason: "transport error".into(),
        };
        assert_eq!(lost.exit().code(), 3);
        assert_eq!(
            lost.to_string(),
            "lost connection to taskmasterd at /run/t.sock: transport error"
        );
    }

    #[test]
    fn refusals_say_what_is_missing() {
        let target = Target::Tcp("https://prod:7300".into());
        let no_token = CtlError::Unauthenticated {
            target: target.clone(),
            token_from: None,
            takes: None,
        };
        assert_eq!(
            no_token.to_string(),
            "taskmasterd at https://prod:7300 wants a token: pass --token-file or set \
             TASKMASTER_TOKEN"
        );
        assert_eq!(no_token.exit(), Exit::Failed);
        let wrong = CtlError::Unauthenticated {
            target: target.clone(),
            token_from: Some("TASKMASTER_TOKEN".into()),
            takes: Some(Credentials::from_words("token")),
        };
        assert_eq!(
            wrong.to_string(),
            "taskmasterd at https://prod:7300 did not accept the token of TASKMASTER_TOKEN"
        );
        let no_certificate = |takes| CtlError::Unauthenticated {
            target: target.clone(),
            token_from: None,
            takes: Some(Credentials::from_words(takes)),
        };
        assert_eq!(
            no_certificate("certificate").to_string(),
            "taskmasterd at https://prod:7300 wants a client certificate: pass --tls-cert and \
             --tls-key"
        );
        assert_eq!(
            no_certificate("token, certificate").to_string(),
            "taskmasterd at https://prod:7300 wants a token or a client certificate: pass \
             --token-file or set TASKMASTER_TOKEN, or pass --tls-cert and --tls-key"
        );
        let forbidden = CtlError::Forbidden {
            target: target.clone(),
            command: None,
            reason: "viewer may not call Stop".into(),
        }
        .in_command("stop");
        assert_eq!(
            forbidden.to_string(),
            "taskmasterd at https://prod:7300 does not let this caller's role run `stop`: \
             viewer may not call Stop"
        );
        assert_eq!(forbidden.exit(), Exit::Failed);
        let tls = |problem| {
            CtlError::Unreachable(EndpointError::TlsHandshake {
                target: target.to_string(),
                problem,
            })
        };
        let unknown_ca = tls(TlsProblem::UnknownCa);
        assert_eq!(
            unknown_ca.to_string(),
            "no TLS with taskmasterd at https://prod:7300: its certificate is signed by an \
             unknown CA; pass the CA that signed it with --tls-ca (or `ca:` in the hosts file)"
        );
        assert_eq!(unknown_ca.exit(), Exit::Unreachable);
        assert_eq!(
            tls(TlsProblem::ClientCertificateRequired).to_string(),
            "no TLS with taskmasterd at https://prod:7300: it wants a client certificate, and \
             none was given; pass --tls-cert and --tls-key"
        );
    }
}
