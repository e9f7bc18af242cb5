//! The one set of rules for credential files and tokens, used by taskmasterd (reading
//! `daemon.tokens` and `daemon.tls`) and by taskctl (`--token-file`, `TASKMASTER_TOKEN`, the
//! hosts file, `--tls-*`), so that both sides accept and refuse the same things:
//!
//! - A token is printable ASCII without blanks (it travels in an HTTP header), from
//!   [`MIN_TOKEN_LEN`] to [`MAX_TOKEN_LEN`] bytes, blanks at either end (a file's final newline)
//!   not counted.
//! - A secret file (a token file, a private key) is a regular file that not every user may read
//!   or change: a mode with any bit for others (`o+r`, `o+w`) is refused, as ssh refuses such a
//!   key. Its group may read it (the file may be shared with a group of operators, as the
//!   socket is with `daemon.socket_group`).
//! - A PEM file holds what it is for: at least one certificate, or a private key, as rustls
//!   reads them.

use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};

/// The shortest token accepted: 16 characters (a random token of 32 hex digits is 128 bits).
pub const MIN_TOKEN_LEN: usize = 16;

/// The longest token accepted, in bytes (it travels in a header of at most 16 KiB).
pub const MAX_TOKEN_LEN: usize = 1024;

/// The most read of a secret or PEM file: far more than a key or a chain of certificates.
const MAX_FILE_LEN: u64 = 1024 * 1024;

/// What is wrong with a token; its text completes "the token of X ...".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenProblem {
    #[error("is empty")]
    Empty,
    #[error("is longer than {MAX_TOKEN_LEN} bytes")]
    TooLong,
    #[error(
        "holds a blank, a control character or non-ASCII: a token is printable ASCII (it \
         travels in an HTTP header)"
    )]
    NotPrintable,
    #[error(
        "is {0} characters long; a token takes at least {MIN_TOKEN_LEN} (`openssl rand -hex 32` \
         makes a good one)"
    )]
    TooShort(usize),
}

/// The token in `bytes`, without the blanks at either end.
pub fn token(bytes: &[u8]) -> Result<&[u8], TokenProblem> {
    let token = bytes.trim_ascii();
    if token.is_empty() {
        return Err(TokenProblem::Empty);
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenProblem::TooLong);
    }
    if !token.iter().all(u8::is_ascii_graphic) {
        return Err(TokenProblem::NotPrintable);
    }
    if token.len() < MIN_TOKEN_LEN {
        return Err(TokenProblem::TooShort(token.len()));
    }
    Ok(token)
}

/// Why a credential file cannot be used.
#[derive(Debug)]
pub struct FileProblem {
    /// The file.
    pub path: PathBuf,
    pub kind: FileProblemKind,
}

/// What is wrong with a credential file.
#[derive(Debug)]
pub enum FileProblemKind {
    Unreadable(io::Error),
    NotRegular,
    /// Every user may read or change it: its permission bits.
    Public(u32),
    TooLarge,
    /// It holds no such thing: "certificate", "private key".
    NotPem(&'static str),
}

impl FileProblem {
    /// The message, with the file named as `file` (its path, or "the token file PATH").
    fn message(&self, file: &str) -> String {
        let path = self.path.display();
        match &self.kind {
            FileProblemKind::Unreadable(error) => format!("cannot read {file}: {error}"),
            FileProblemKind::NotRegular => format!("{file} is not a regular file"),
            FileProblemKind::Public(mode) => format!(
                "{file} can be read or changed by every user (mode {mode:04o}); make it \
                 private: chmod o-rwx {path}"
            ),
            FileProblemKind::TooLarge => format!("{file} is larger than {MAX_FILE_LEN} bytes"),
            FileProblemKind::NotPem(expected) => format!("{file} holds no {expected} in PEM"),
        }
    }

    /// The message, with the file named as "the {what} PATH" ("the token file /x.token").
    pub fn naming(&self, what: &str) -> String {
        self.message(&format!("the {what} {}", self.path.display()))
    }
}

impl std::fmt::Display for FileProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message(&self.path.display().to_string()))
    }
}

impl std::error::Error for FileProblem {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            FileProblemKind::Unreadable(error) => Some(error),
            _ => None,
        }
    }
}

/// Whether a file of `mode` is open to every user (see the module's rules).
pub fn is_public(mode: u32) -> bool {
    mode & 0o007 != 0
}

/// The bytes of the regular file at `path` (at most [`MAX_FILE_LEN`]); a `secret` one must not
/// be [public](is_public).
pub fn read_file(path: &Path, secret: bool) -> Result<Vec<u8>, FileProblem> {
    let problem = |kind| FileProblem {
        path: path.to_path_buf(),
        kind,
    };
    let unreadable = |error| problem(FileProblemKind::Unreadable(error));
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let metadata = file.metadata().map_err(unreadable)?;
    if !metadata.is_file() {
        return Err(problem(FileProblemKind::NotRegular));
    }
    let mode = metadata.mode() & 0o7777;
    if secret && is_public(mode) {
        return Err(problem(FileProblemKind::Public(mode)));
    }
    let mut bytes = Vec::new();
    (file.take(MAX_FILE_LEN + 1))
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > MAX_FILE_LEN {
        return Err(problem(FileProblemKind::TooLarge));
    }
    Ok(bytes)
}

/// The PEM file of certificates at `path` (a chain, a CA): refused when it holds none.
pub fn certificates(path: &Path) -> Result<Vec<u8>, FileProblem> {
    let bytes = read_file(path, false)?;
    match CertificateDer::pem_slice_iter(&bytes).next() {
        Some(Ok(_)) => Ok(bytes),
        _ => Err(FileProblem {
            path: path.to_path_buf(),
            kind: FileProblemKind::NotPem("certificate"),
        }),
    }
}

/// The PEM private key at `path`, a secret file.
pub fn private_key(path: &Path) -> Result<Vec<u8>, FileProblem> {
    let bytes = read_file(path, true)?;
    match PrivateKeyDer::from_pem_slice(&bytes) {
        Ok(_) => Ok(bytes),
        Err(_) => Err(FileProblem {
            path: path.to_path_buf(),
            kind: FileProblemKind::NotPem("private key"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_token_is_printable_ascii_of_a_bounded_length() {
        assert_eq!(token(b"  0123456789abcdef\n"), Ok(&b"0123456789abcdef"[..]));
        assert_eq!(token(b"\n"), Err(TokenProblem::Empty));
        assert_eq!(token(b"short"), Err(TokenProblem::TooShort(5)));
        assert_eq!(token(b"0123456789 abcdef"), Err(TokenProblem::NotPrintable));
        assert_eq!(
            token("0123456789abcdéf".as_bytes()),
            Err(TokenProblem::NotPrintable)
        );
        assert_eq!(
            token(&[b'x'; MAX_TOKEN_LEN + 1]),
            Err(TokenProblem::TooLong)
        );
        assert!(token(&[b'x'; MAX_TOKEN_LEN]).is_ok());
    }

    #[test]
    fn a_secret_file_others_may_read_or_change_is_refused_its_group_may_read_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "0123456789abcdef\n").unwrap();
        for (mode, refused) in [
            (0o600, false),
            (0o640, false),
            (0o660, false),
            (0o644, true),
            (0o602, true),
            (0o601, true),
        ] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let read = read_file(&path, true);
            let public =
                matches!(&read, Err(problem) if matches!(problem.kind, FileProblemKind::Public(_)));
            assert_eq!(public, refused, "{mode:o}: {read:?}");
            // A file that is not secret may be read whatever its mode.
            assert!(read_file(&path, false).is_ok());
        }
        let message = read_file(&path, true).unwrap_err().to_string();
        assert!(message.contains("(mode 0601)"), "{message}");
        assert_eq!(
            read_file(dir.path(), true).unwrap_err().to_string(),
            format!("{} is not a regular file", dir.path().display())
        );
        assert_eq!(
            certificates(&path).unwrap_err().naming("CA certificate"),
            format!(
                "the CA certificate {} holds no certificate in PEM",
                path.display()
            )
        );
    }
}
