//! The value parsers: each turns one YAML value into a setting (a signal, a duration, a umask, a
//! boolean, a count, a command line, a path, a listen address, an output stream, a byte size,
//! a user or group) or says what is wrong with it.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_yaml::Value;

use super::find::clean;
use super::identity::Account;
use super::output::{Capture, Output, OutputPath, PathTemplate};
use super::schema::{AutoRestart, MAX_SECONDS, MAX_SOCKET_PATH, MAX_UMASK, Stdin};
use crate::endpoint;

/// Parses a signal name or number: "TERM", "SIGTERM", "term", "USR1", "15".
pub fn parse_signal(text: &str) -> Result<Signal, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty signal name".to_string());
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<i32>()
            .ok()
            .and_then(|number| Signal::try_from(number).ok())
            .ok_or_else(|| format!("unknown signal number {text}"));
    }
    let upper = text.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    Signal::from_str(&format!("SIG{name}")).map_err(|_| {
        format!("unknown signal `{text}`; use a name like TERM, INT, HUP, USR1 or a number like 15")
    })
}

/// "expected {what}, found {value}".
pub(super) fn expected(what: &str, value: &Value) -> String {
    format!("expected {what}, found {}", describe(value))
}

/// How a value is named in messages: `string "abc"`, `integer 0`, `a list`...
pub(super) fn describe(value: &Value) -> String {
    match value {
        Value::Null => "nothing (null)".to_string(),
        Value::Bool(b) => format!("boolean `{b}`"),
        Value::Number(n) if n.is_f64() => format!("number `{n}`"),
        Value::Number(n) => format!("integer `{n}`"),
        Value::String(s) if s.chars().count() > 40 => {
            format!(
                "string {:?}",
                s.chars().take(40).chain(['…']).collect::<String>()
            )
        }
        Value::String(s) => format!("string {s:?}"),
        Value::Sequence(_) => "a list".to_string(),
        Value::Mapping(_) => "a mapping".to_string(),
        Value::Tagged(tagged) => format!("a value with the unsupported tag `{}`", tagged.tag),
    }
}

/// The command line and its words (at least one).
pub(super) fn command_line(value: &Value) -> Result<Vec<String>, String> {
    let Value::String(text) = value else {
        return Err(expected("a command line (a string)", value));
    };
    if text.contains('\0') {
        return Err("the command contains a NUL character".to_string());
    }
    match shell_words::split(text) {
        Ok(argv) if argv.is_empty() => Err("the command is empty".to_string()),
        // `''` is one word, and no program has an empty name.
        Ok(argv) if argv[0].is_empty() => {
            Err("the command's first word (the program to run) is empty".to_string())
        }
        Ok(argv) => Ok(argv),
        Err(err) => Err(format!("cannot split the command into words: {err}")),
    }
}

/// An integer in `min..=max`.
pub(super) fn count(value: &Value, min: u32, max: u32) -> Result<u32, String> {
    match value {
        Value::Number(n) if !n.is_f64() => (n.as_u64())
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| format!("must be from {min} to {max}, found {n}")),
        _ => Err(expected(&format!("an integer from {min} to {max}"), value)),
    }
}

pub(super) fn boolean(value: &Value) -> Result<bool, String> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::String(s)
            if ["yes", "no", "on", "off", "y", "n"]
                .iter()
                .any(|word| s.eq_ignore_ascii_case(word)) =>
        {
            Err(format!(
                "expected true or false, found string {s:?} (YAML 1.2 reads `{s}` as a string)"
            ))
        }
        _ => Err(expected("true or false", value)),
    }
}

pub(super) fn autorestart(value: &Value) -> Result<AutoRestart, String> {
    let word = match value {
        Value::Bool(true) => "always",
        Value::Bool(false) => "never",
        Value::String(s) => s,
        _ => "",
    };
    match word.to_ascii_lowercase().as_str() {
        "always" => Ok(AutoRestart::Always),
        "never" => Ok(AutoRestart::Never),
        "unexpected" => Ok(AutoRestart::Unexpected),
        _ => Err(expected("always, never or unexpected", value)),
    }
}

/// `stdin:`: `null` (or a YAML null) for /dev/null, `pipe` for a pipe attached clients write
/// to.
pub(super) fn stdin(value: &Value) -> Result<Stdin, String> {
    match value {
        Value::Null => Ok(Stdin::Null),
        Value::String(word) if word.eq_ignore_ascii_case("null") => Ok(Stdin::Null),
        Value::String(word) if word.eq_ignore_ascii_case("pipe") => Ok(Stdin::Pipe),
        _ => Err(expected("null or pipe", value)),
    }
}

/// Seconds (a number), or a humantime string like "1500ms"; at most a day.
pub(super) fn duration(value: &Value) -> Result<Duration, String> {
    let duration = match value {
        Value::Number(n) => match n.as_f64() {
            Some(seconds) if seconds < 0.0 => return Err(format!("must not be negative, found {n}")),
            // NaN and too large to hold give `None`, refused below.
            seconds => seconds.and_then(|s| Duration::try_from_secs_f64(s).ok()),
        },
        Value::String(s) => Some(humantime::parse_duration(s).map_err(|err| {
            format!("expected seconds (a number >= 0) or a duration like \"1500ms\", found string {s:?} ({err})")
        })?),
        _ => return Err(expected("seconds (a number >= 0)", value)),
    };
    duration
        .filter(|duration| *duration <= Duration::from_secs(MAX_SECONDS))
        .ok_or_else(|| {
            let found = describe(value);
            format!("must be at most {MAX_SECONDS} seconds (one day), found {found}")
        })
}

pub(super) fn signal(value: &Value) -> Result<Signal, String> {
    match value {
        Value::String(s) => parse_signal(s),
        Value::Number(n) if !n.is_f64() => parse_signal(&n.to_string()),
        _ => Err(expected(
            "a signal name like TERM or a number like 15",
            value,
        )),
    }
}

/// A path, absolute once resolved against the config's directory `dir`; null means not set.
pub(super) fn file_path(dir: &Path, value: &Value) -> Result<Option<PathBuf>, String> {
    let text = match value {
        Value::Null => return Ok(None),
        _ => {
            path_text(value).ok_or_else(|| expected("a path (null or left out for none)", value))?
        }
    };
    if text.is_empty() {
        Err("the path is empty".to_string())
    } else if text.contains('\0') {
        Err("the path contains a NUL character".to_string())
    } else {
        Ok(Some(clean(&dir.join(text))))
    }
}

/// The text of a path: a string, or a number (a path may well look like one: `1.0`).
fn path_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// What an output stream is written as without options: null, `discard` or `none`
/// (supervisord) to discard it, `auto` (supervisord) for the default file, else a path
/// template resolved against the config's directory `dir`. Any case.
pub(super) fn output(dir: &Path, value: &Value) -> Result<Output, String> {
    let text = match value {
        Value::Null => return Ok(Output::Discard),
        _ => path_text(value).ok_or_else(|| {
            let what =
                "a path, `discard` or a mapping of options (path, maxbytes, backups, timestamps)";
            expected(what, value)
        })?,
    };
    if discards(&text) {
        return Ok(Output::Discard);
    }
    let path = output_path(dir, value)?;
    Ok(Output::Capture(Capture {
        path,
        ..Capture::default()
    }))
}

/// Whether a stream written as `text` is thrown away: `discard`, or supervisord's `NONE`.
fn discards(text: &str) -> bool {
    ["discard", "none"]
        .iter()
        .any(|word| text.eq_ignore_ascii_case(word))
}

/// The `path` of an output stream's options: null or `auto` for the default file, else a
/// path template resolved against `dir`.
pub(super) fn output_path(dir: &Path, value: &Value) -> Result<OutputPath, String> {
    let text = match value {
        Value::Null => return Ok(OutputPath::Default),
        _ => path_text(value)
            .ok_or_else(|| expected("a path (null or `auto` for the default)", value))?,
    };
    if text.eq_ignore_ascii_case("auto") {
        return Ok(OutputPath::Default);
    }
    if ["discard", "none"]
        .iter()
        .any(|w| text.eq_ignore_ascii_case(w))
    {
        return Err(format!(
            "`{text}` as a path: to discard the stream, write `{text}` as its value, without options"
        ));
    }
    match PathTemplate::parse(&text, dir) {
        Ok(template) => Ok(OutputPath::Template(template)),
        Err(err) => Err(err.to_string()),
    }
}

/// A number of bytes: an integer, or a string with a unit `KB`, `MB` or `GB` (multiples of
/// 1024; `KiB`, `MiB`, `GiB` too, any case, a space allowed before the unit).
pub(super) fn byte_size(value: &Value) -> Result<u64, String> {
    let what = "a number of bytes or a size like 10MB (KB, MB, GB: multiples of 1024)";
    let text = match value {
        Value::Number(n) if n.as_i64().is_some_and(|n| n < 0) => {
            return Err(format!("must not be negative, found {n}"));
        }
        Value::Number(n) => return n.as_u64().ok_or_else(|| expected(what, value)),
        Value::String(s) => s.trim(),
        _ => return Err(expected(what, value)),
    };
    if text.starts_with('-') {
        return Err(format!("must not be negative, found {text:?}"));
    }
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let unit = text[digits..].trim_start().to_ascii_lowercase();
    let shift = match unit.as_str() {
        "" | "b" => 0,
        "kb" | "kib" => 10,
        "mb" | "mib" => 20,
        "gb" | "gib" => 30,
        _ => return Err(expected(what, value)),
    };
    let number: u64 = text[..digits].parse().map_err(|_| expected(what, value))?;
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("must be at most {} bytes, found {text:?}", u64::MAX))
}

/// The path of the Unix socket: a path (see [`file_path`]) that fits in a `sockaddr_un`.
pub(super) fn socket_path(dir: &Path, value: &Value) -> Result<Option<PathBuf>, String> {
    match file_path(dir, value)? {
        Some(path) if path.as_os_str().len() > MAX_SOCKET_PATH => Err(format!(
            "socket path {} is {} bytes long once made absolute; a Unix socket path takes at most {MAX_SOCKET_PATH}",
            path.display(),
            path.as_os_str().len()
        )),
        socket => Ok(socket),
    }
}

/// A TCP address `ip:port`, or a bare port for `127.0.0.1:port`, as
/// [`endpoint::listen_address`] reads it (port 0 is refused); null means not set. Stored in
/// the form `SocketAddr` displays.
pub(super) fn listen(value: &Value) -> Result<Option<String>, String> {
    let what = "an address like 127.0.0.1:7300 or [::1]:7300, or a port number";
    let number;
    let text = match value {
        Value::Null => return Ok(None),
        Value::String(s) => s.as_str(),
        Value::Number(n) if !n.is_f64() => {
            number = n.to_string();
            &number
        }
        _ => return Err(expected(what, value)),
    };
    match endpoint::listen_address(text) {
        Ok(address) => Ok(Some(address.to_string())),
        Err(endpoint::EndpointError::PortZero { .. }) => Err(endpoint::PORT_ZERO.to_string()),
        Err(_) => Err(expected(&format!("{what} (1 to 65535)"), value)),
    }
}

/// Octal digits, with or without `0o`, as a string or as an integer as `written` (`umask: 22` is
/// 0o22, as is `umask: 0o22`); null means not set.
pub(super) fn umask(value: &Value, written: Option<&str>) -> Result<Option<u32>, String> {
    octal_bits(value, written, "an octal umask like 022", "022")
}

/// Permission bits (`daemon.socket_mode: 0660`), written as [`umask`] is; null means not set.
pub(super) fn file_mode(value: &Value, written: Option<&str>) -> Result<Option<u32>, String> {
    octal_bits(value, written, "an octal mode like 0660", "0660")
}

/// At most 0o777 in octal digits, as [`umask`] reads them; `what` and `example` for messages.
fn octal_bits(
    value: &Value,
    written: Option<&str>,
    what: &str,
    example: &str,
) -> Result<Option<u32>, String> {
    let text = match value {
        Value::Null => return Ok(None),
        Value::String(s) => s.clone(),
        Value::Number(n) if !n.is_f64() => written.map_or_else(|| n.to_string(), str::to_string),
        _ => return Err(expected(what, value)),
    };
    let digits = (text.strip_prefix("0o"))
        .or_else(|| text.strip_prefix("0O"))
        .unwrap_or(&text);
    if digits.is_empty() || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err(format!(
            "expected octal digits 0-7 like {example}, found {text:?}"
        ));
    }
    match u32::from_str_radix(digits, 8) {
        Ok(mask) if mask <= MAX_UMASK => Ok(Some(mask)),
        _ => Err(format!("must be at most 0777, found {text}")),
    }
}

/// The name of an environment variable (a program's `env` key, a token's `env`): non-empty,
/// without `=` or NUL, which no environment can hold in a name.
pub(super) fn variable_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.contains(['=', '\0']) {
        return Err(format!(
            "invalid variable name {name:?}: it must be non-empty, without `=` or NUL"
        ));
    }
    Ok(())
}

/// A user or group (`what`): a name, or a number (a uid or gid); null means not set.
pub(super) fn account(value: &Value, what: &str) -> Result<Option<Account>, String> {
    match value {
        Value::Null => Ok(None),
        Value::String(name) if name.is_empty() => Err(format!("the {what} name is empty")),
        Value::String(name) if name.contains('\0') => {
            Err(format!("the {what} name contains a NUL character"))
        }
        Value::String(name) => Ok(Some(Account::Name(name.clone()))),
        // u32::MAX is "no id" to setuid(2), chown(2) and friends.
        Value::Number(n) if !n.is_f64() => (n.as_u64())
            .and_then(|id| u32::try_from(id).ok())
            .filter(|id| *id != u32::MAX)
            .map(|id| Some(Account::Id(id)))
            .ok_or_else(|| format!("a {what} id is from 0 to {}, found {n}", u32::MAX - 1)),
        _ => Err(expected(&format!("a {what} name or number"), value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AutoRestart;
    use crate::config::testing::{ok, web};

    #[test]
    fn two_spellings_of_the_same_words_are_the_same_command() {
        let program = |cmd: &str| ok(&format!("programs:\n  web:\n    cmd: {cmd}\n")).programs;
        assert_eq!(program("sleep 1"), program("sleep   '1'"));
        assert_ne!(program("sleep 1"), program("sleep 2"));
    }

    #[test]
    fn umask_forms() {
        let cases = [
            ("022", Some(0o22)),
            ("\"022\"", Some(0o22)),
            ("'022'", Some(0o22)),
            ("0o22", Some(0o22)),
            ("\"0o22\"", Some(0o22)),
            ("22", Some(0o22)),
            ("0022", Some(0o22)),
            ("0", Some(0)),
            ("777", Some(0o777)),
            ("0o777", Some(0o777)),
            ("~", None),
            ("", None),
        ];
        for (text, expected) in cases {
            assert_eq!(
                web(&format!("umask: {text}")).umask,
                expected,
                "umask: {text}"
            );
        }
    }

    #[test]
    fn durations_autorestart_and_signals() {
        let cases = [
            ("0", Duration::ZERO),
            ("2.5", Duration::from_millis(2500)),
            ("86400", Duration::from_secs(86_400)),
            ("1500ms", Duration::from_millis(1500)),
            ("\"1m 30s\"", Duration::from_secs(90)),
        ];
        for (text, expected) in cases {
            assert_eq!(
                web(&format!("starttime: {text}")).starttime,
                expected,
                "{text}"
            );
            assert_eq!(
                web(&format!("stoptime: {text}")).stoptime,
                expected,
                "{text}"
            );
        }
        let cases = [
            ("true", AutoRestart::Always),
            ("false", AutoRestart::Never),
            ("always", AutoRestart::Always),
            ("never", AutoRestart::Never),
            ("Unexpected", AutoRestart::Unexpected),
        ];
        for (text, expected) in cases {
            assert_eq!(web(&format!("autorestart: {text}")).autorestart, expected);
        }
        assert_eq!(web("stopsignal: 9").stopsignal, Signal::SIGKILL);
        assert_eq!(web("stopsignal: int").stopsignal, Signal::SIGINT);
        assert_eq!(web("stopsignal: SIGHUP").stopsignal, Signal::SIGHUP);
    }

    #[test]
    fn parse_signal_names_and_numbers() {
        for (text, expected) in [
            ("TERM", Signal::SIGTERM),
            ("SIGTERM", Signal::SIGTERM),
            ("term", Signal::SIGTERM),
            ("sigterm", Signal::SIGTERM),
            (" USR1 ", Signal::SIGUSR1),
            ("15", Signal::SIGTERM),
            ("9", Signal::SIGKILL),
            ("KILL", Signal::SIGKILL),
        ] {
            assert_eq!(parse_signal(text), Ok(expected), "{text:?}");
        }
        for text in [
            "",
            "SIG",
            "FOO",
            "0",
            "999",
            "-1",
            "SIGSIGTERM",
            "1.5",
            "99999999999",
        ] {
            assert!(parse_signal(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn listen_forms() {
        for (text, expected) in [
            ("7300", "127.0.0.1:7300"),
            ("\"7300\"", "127.0.0.1:7300"),
            ("127.0.0.1:7300", "127.0.0.1:7300"),
            ("0.0.0.0:80", "0.0.0.0:80"),
            ("\"[::1]:7300\"", "[::1]:7300"),
        ] {
            let config = ok(&format!("daemon:\n  listen: {text}\nprograms: {{}}\n"));
            assert_eq!(config.daemon.listen.as_deref(), Some(expected), "{text}");
        }
    }

    #[test]
    fn byte_sizes() {
        let mib = 1024 * 1024;
        let cases = [
            ("1024", Ok(1024)),
            ("0", Ok(0)),
            ("\"512\"", Ok(512)),
            ("1KB", Ok(1024)),
            ("1kb", Ok(1024)),
            ("2 MiB", Ok(2 * mib)),
            ("10 mb", Ok(10 * mib)),
            ("1GB", Ok(1024 * mib)),
            ("3gib", Ok(3 * 1024 * mib)),
            ("7 B", Ok(7)),
            ("lots", Err("found string \"lots\"")),
            ("MB", Err("found string \"MB\"")),
            ("1.5MB", Err("found string \"1.5MB\"")),
            ("1TB", Err("found string \"1TB\"")),
            ("-1", Err("must not be negative, found -1")),
            ("-1MB", Err("must not be negative")),
            ("1.5", Err("found number `1.5`")),
            ("true", Err("found boolean `true`")),
            ("99999999999GB", Err("must be at most")),
        ];
        for (text, expected) in cases {
            let value: Value = serde_yaml::from_str(text).unwrap();
            match (byte_size(&value), expected) {
                (Ok(bytes), Ok(want)) => assert_eq!(bytes, want, "{text}"),
                (Err(message), Err(want)) => assert!(message.contains(want), "{text}: {message}"),
                (got, want) => panic!("{text}: got {got:?}, want {want:?}"),
            }
        }
    }
}
