//! Parsing a command line (`["start", "web"]`) into a [`Command`], the same for one-shot use
//! and the shell. Every flag is read before the operands are checked, so an unknown flag is
//! reported first wherever it stands.

use std::{fmt, str::FromStr};

use taskmaster::proto;

use super::{Command, Spec, TailOptions, Verb, help::overview};

/// A command line that does not parse; displays the problem and the usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError {
    /// What is wrong, in one line.
    pub message: String,
    /// The command it is about; `None` for an unknown command.
    pub spec: Option<&'static Spec>,
}

impl UsageError {
    fn unknown_command(name: &str) -> Self {
        UsageError {
            message: format!("unknown command `{name}`"),
            spec: None,
        }
    }
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.spec {
            Some(spec) => write!(f, "{}\nusage: {}", self.message, spec.usage()),
            None => write!(f, "{}\n{}", self.message, overview().trim_end()),
        }
    }
}

impl std::error::Error for UsageError {}

/// Parses the words of a command line (`["start", "web"]`).
pub fn parse(words: &[String]) -> Result<Command, UsageError> {
    let Some((name, rest)) = words.split_first() else {
        return Err(UsageError {
            message: "no command given".into(),
            spec: None,
        });
    };
    let verb = Verb::named(name).ok_or_else(|| UsageError::unknown_command(name))?;
    verb.parse(rest)
}

/// The flags of a command line; each is `false` or `None` where the command has no such flag.
#[derive(Default)]
struct Flags {
    /// `--json` (status, watch).
    json: bool,
    /// `-y` or `--yes` (shutdown).
    yes: bool,
    /// `--no-wait` (shutdown).
    no_wait: bool,
    /// `--since [RUN:]N` (watch).
    since: Option<super::Since>,
    /// `-f` or `--follow` (tail, maintail).
    follow: bool,
    /// `-n LINES` or `--lines LINES` (tail, maintail).
    lines: Option<u32>,
    /// `--bytes N` (tail, maintail).
    bytes: Option<u64>,
    /// `--leader` (signal).
    leader: bool,
    /// `--read-only` (attach).
    read_only: bool,
    /// `--detach-keys KEYS` (attach).
    detach_keys: Option<super::attach::DetachKeys>,
}

impl Flags {
    fn tail(&self) -> TailOptions {
        TailOptions {
            lines: self.lines.unwrap_or(TailOptions::DEFAULT_LINES),
            bytes: self.bytes,
            follow: self.follow,
        }
    }
}

impl Verb {
    /// Parses the words after the command's name.
    pub fn parse(self, words: &[String]) -> Result<Command, UsageError> {
        let usage = |message: String| UsageError {
            message,
            spec: Some(self.spec()),
        };
        let mut words = Words::new(words);
        let mut flags = Flags::default();
        while let Some(flag) = words.next_flag() {
            match (self, flag) {
                (Verb::Status | Verb::Watch, "--json") => flags.json = true,
                (Verb::Shutdown, "-y" | "--yes") => flags.yes = true,
                (Verb::Shutdown, "--no-wait") => flags.no_wait = true,
                (Verb::Watch, "--since") => {
                    let what = "a sequence number (N or RUN:N)";
                    flags.since = Some(words.number(flag, what).map_err(usage)?);
                }
                (Verb::Tail | Verb::MainTail, "-f" | "--follow") => flags.follow = true,
                (Verb::Tail | Verb::MainTail, "-n" | "--lines") => {
                    flags.lines = Some(words.number(flag, "a number of lines").map_err(usage)?);
                }
                (Verb::Tail | Verb::MainTail, "--bytes") => {
                    flags.bytes = Some(words.number(flag, "a number of bytes").map_err(usage)?);
                }
                (Verb::Signal, "--leader") => flags.leader = true,
                (Verb::Attach, "--read-only") => flags.read_only = true,
                (Verb::Attach, "--detach-keys") => {
                    let keys = words
                        .value()
                        .ok_or_else(|| usage("--detach-keys needs keys (ctrl-p,ctrl-q)".into()))?;
                    let keys = keys
                        .parse()
                        .map_err(|problem| usage(format!("--detach-keys: {problem}")))?;
                    flags.detach_keys = Some(keys);
                }
                (_, flag) => return Err(usage(format!("unknown option `{flag}`"))),
            }
        }
        let operands = words.operands;
        let none = |command: Command| match operands.first() {
            None => Ok(command),
            Some(extra) => Err(usage(format!("unexpected argument `{extra}`"))),
        };
        let some = |operands: Vec<String>| {
            if operands.is_empty() {
                Err(usage(format!(
                    "{} needs at least one name (or all)",
                    self.spec().name
                )))
            } else {
                Ok(operands)
            }
        };
        let at_most_one = |operands: Vec<String>| match operands.len() {
            0 | 1 => Ok(operands.into_iter().next()),
            _ => Err(usage(format!("unexpected argument `{}`", operands[1]))),
        };
        match self {
            Verb::Status => Ok(Command::Status {
                names: operands,
                json: flags.json,
            }),
            Verb::Start => Ok(Command::Start {
                names: some(operands)?,
            }),
            Verb::Stop => Ok(Command::Stop {
                names: some(operands)?,
            }),
            Verb::Restart => Ok(Command::Restart {
                names: some(operands)?,
            }),
            Verb::Reload => none(Command::Reload),
            Verb::Shutdown => none(Command::Shutdown {
                yes: flags.yes,
                no_wait: flags.no_wait,
            }),
            Verb::Watch => Ok(Command::Watch {
                names: operands,
                json: flags.json,
                since: flags.since,
            }),
            Verb::Pid => Ok(Command::Pid {
                name: at_most_one(operands)?,
            }),
            Verb::Tail => {
                let mut operands = operands.into_iter();
                let name = operands
                    .next()
                    .ok_or_else(|| usage("tail needs the name of an instance".into()))?;
                let stream = match operands.next().as_deref() {
                    None | Some("stdout") => proto::Stream::Stdout,
                    Some("stderr") => proto::Stream::Stderr,
                    Some(other) => {
                        return Err(usage(format!(
                            "the stream is stdout or stderr, not `{other}`"
                        )));
                    }
                };
                match operands.next() {
                    Some(extra) => Err(usage(format!("unexpected argument `{extra}`"))),
                    None => Ok(Command::Tail {
                        name,
                        stream,
                        tail: flags.tail(),
                    }),
                }
            }
            Verb::MainTail => none(Command::MainTail { tail: flags.tail() }),
            Verb::Clear => Ok(Command::Clear {
                names: some(operands)?,
            }),
            Verb::Reopen => none(Command::Reopen),
            Verb::Signal => {
                let mut operands = operands.into_iter();
                let signal = operands
                    .next()
                    .ok_or_else(|| usage("signal needs a signal (USR1, 10, ...)".into()))?;
                Ok(Command::Signal {
                    signal,
                    names: some(operands.collect())?,
                    leader: flags.leader,
                })
            }
            Verb::Alerts => match operands.as_slice() {
                [action, rule] if action == "test" => {
                    Ok(Command::AlertsTest { rule: rule.clone() })
                }
                [action] if action == "test" => Err(usage("alerts test needs a rule".into())),
                [action, _, extra, ..] if action == "test" => {
                    Err(usage(format!("unexpected argument `{extra}`")))
                }
                _ => Err(usage("say `alerts test RULE`".into())),
            },
            Verb::Attach => match <[String; 1]>::try_from(operands) {
                Ok([name]) => Ok(Command::Attach {
                    name,
                    read_only: flags.read_only,
                    detach_keys: flags.detach_keys.unwrap_or_default(),
                }),
                Err(operands) if operands.is_empty() => {
                    Err(usage("attach needs the name of an instance".into()))
                }
                Err(operands) => Err(usage(format!("unexpected argument `{}`", operands[1]))),
            },
            Verb::Version => none(Command::Version),
            Verb::Events => match operands.as_slice() {
                [word] if word == "on" => Ok(Command::Events { on: true }),
                [word] if word == "off" => Ok(Command::Events { on: false }),
                _ => Err(usage("say `events on` or `events off`".into())),
            },
            Verb::Help => match at_most_one(operands)? {
                Some(topic) if Verb::named(&topic).is_none() => {
                    Err(UsageError::unknown_command(&topic))
                }
                topic => Ok(Command::Help { topic }),
            },
            Verb::Exit | Verb::Quit => none(Command::Exit),
        }
    }
}

/// Splits words into flags (with their values) and operands; `--` ends the flags.
struct Words<'a> {
    /// The words not looked at yet.
    rest: std::slice::Iter<'a, String>,
    /// The words that are not flags, in order.
    operands: Vec<String>,
    /// `--` was met: every word after it is an operand.
    flags_done: bool,
}

impl<'a> Words<'a> {
    fn new(words: &'a [String]) -> Self {
        Words {
            rest: words.iter(),
            operands: Vec::new(),
            flags_done: false,
        }
    }

    /// The next flag; operands met on the way are kept.
    fn next_flag(&mut self) -> Option<&'a str> {
        for word in self.rest.by_ref() {
            if !self.flags_done && word == "--" {
                self.flags_done = true;
            } else if !self.flags_done && word.len() > 1 && word.starts_with('-') {
                return Some(word);
            } else {
                self.operands.push(word.clone());
            }
        }
        None
    }

    /// The value of the flag just returned.
    fn value(&mut self) -> Option<&'a str> {
        self.rest.next().map(String::as_str)
    }

    /// The value of `flag`, just returned, as a number; else what is wrong (`--since needs
    /// a sequence number, not `x``), `what` being what it needs.
    fn number<T: FromStr>(&mut self, flag: &str, what: &str) -> Result<T, String> {
        let value = self.value().ok_or_else(|| format!("{flag} needs {what}"))?;
        value
            .parse()
            .map_err(|_| format!("{flag} needs {what}, not `{value}`"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Operands;

    fn words(line: &str) -> Vec<String> {
        shell_words::split(line).unwrap()
    }

    fn parsed(line: &str) -> Command {
        parse(&words(line)).unwrap_or_else(|error| panic!("{line}: {error}"))
    }

    fn refused(line: &str) -> String {
        match parse(&words(line)) {
            Ok(command) => panic!("{line} parsed as {command:?}"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn every_command_parses() {
        let names = |list: &[&str]| list.iter().map(|name| name.to_string()).collect();
        assert_eq!(
            parsed("status"),
            Command::Status {
                names: vec![],
                json: false
            }
        );
        assert_eq!(
            parsed("status --json web db"),
            Command::Status {
                names: names(&["web", "db"]),
                json: true
            }
        );
        assert_eq!(
            parsed("start web:0 all"),
            Command::Start {
                names: names(&["web:0", "all"])
            }
        );
        assert_eq!(
            parsed("stop web"),
            Command::Stop {
                names: names(&["web"])
            }
        );
        assert_eq!(
            parsed("restart all"),
            Command::Restart {
                names: names(&["all"])
            }
        );
        assert_eq!(parsed("reload"), Command::Reload);
        assert_eq!(
            parsed("shutdown"),
            Command::Shutdown {
                yes: false,
                no_wait: false
            }
        );
        assert_eq!(
            parsed("shutdown -y --no-wait"),
            Command::Shutdown {
                yes: true,
                no_wait: true
            }
        );
        assert_eq!(
            parsed("watch web --since 12 --json"),
            Command::Watch {
                names: names(&["web"]),
                json: true,
                since: Some(super::super::Since { run: None, seq: 12 })
            }
        );
        assert_eq!(
            parsed("watch --since 1796181092532895439:7"),
            Command::Watch {
                names: Vec::new(),
                json: false,
                since: Some(super::super::Since {
                    run: Some(1796181092532895439),
                    seq: 7
                })
            }
        );
        assert_eq!(parsed("pid"), Command::Pid { name: None });
        assert_eq!(
            parsed("pid web"),
            Command::Pid {
                name: Some("web".into())
            }
        );
        assert_eq!(parsed("version"), Command::Version);
        assert_eq!(parsed("events off"), Command::Events { on: false });
        assert_eq!(
            parsed("help stop"),
            Command::Help {
                topic: Some("stop".into())
            }
        );
        assert_eq!(parsed("quit"), Command::Exit);
        assert_eq!(parsed("exit"), Command::Exit);
        assert_eq!(
            parsed("attach web:1"),
            Command::Attach {
                name: "web:1".into(),
                read_only: false,
                detach_keys: Default::default(),
            }
        );
        assert_eq!(
            parsed("attach --read-only --detach-keys ctrl-p,ctrl-q web"),
            Command::Attach {
                name: "web".into(),
                read_only: true,
                detach_keys: "ctrl-p,ctrl-q".parse().unwrap(),
            }
        );
    }

    #[test]
    fn attach_takes_one_name_and_detach_keys_as_docker_spells_them() {
        assert!(
            refused("attach").starts_with("attach needs the name of an instance\nusage: attach ")
        );
        assert!(refused("attach a b").starts_with("unexpected argument `b`"));
        assert!(refused("attach --detach-keys").starts_with("--detach-keys needs keys"));
        assert!(
            refused("attach --detach-keys ctrl-9 web")
                .starts_with("--detach-keys: `ctrl-9` is not a key")
        );
        assert!(refused("attach --follow web").starts_with("unknown option `--follow`"));
    }

    #[test]
    fn every_spec_has_a_command_and_back() {
        for verb in Verb::ALL {
            let spec = verb.spec();
            assert!(spec.summary.ends_with('.'), "{}", spec.name);
            assert!(spec.summary.len() <= 50, "{}", spec.name);
            assert_eq!(Verb::named(spec.name), Some(verb));
            if spec.name != "quit" {
                let mut line = vec![spec.name.to_string()];
                match spec.operands {
                    Operands::NamesOrAll if spec.args.starts_with("NAME") => {
                        line.push("all".into())
                    }
                    Operands::OnOff => line.push("on".into()),
                    Operands::NameThenStream | Operands::Name => line.push("web".into()),
                    Operands::SignalThenNames => line.extend(["USR1".into(), "all".into()]),
                    Operands::Action(words) => line.extend([words[0].into(), "x".into()]),
                    _ => {}
                }
                assert_eq!(parse(&line).unwrap().spec().name, spec.name);
            }
        }
    }

    #[test]
    fn bad_lines_give_usage() {
        assert_eq!(
            refused("stop"),
            "stop needs at least one name (or all)\nusage: stop NAME...|all"
        );
        assert_eq!(
            refused("status --jsno"),
            "unknown option `--jsno`\nusage: status [--json] [NAME...]"
        );
        assert!(refused("reload now").starts_with("unexpected argument `now`\nusage: reload"));
        assert!(
            refused("watch --since").starts_with("--since needs a sequence number (N or RUN:N)\n")
        );
        assert!(
            refused("watch --since x")
                .starts_with("--since needs a sequence number (N or RUN:N), not `x`")
        );
        assert!(refused("pid a b").starts_with("unexpected argument `b`"));
        assert!(refused("events maybe").starts_with("say `events on` or `events off`"));
        let unknown = refused("frobnicate web");
        assert!(unknown.starts_with("unknown command `frobnicate`\ncommands:\n"));
        assert!(unknown.contains("  status [--json] [NAME...]"));
        assert!(refused("help frobnicate").starts_with("unknown command `frobnicate`"));
    }

    #[test]
    fn tail_takes_a_name_a_stream_and_how_much() {
        let tail = |lines, bytes, follow| TailOptions {
            lines,
            bytes,
            follow,
        };
        assert_eq!(
            parsed("tail -f -n 5 web stderr"),
            Command::Tail {
                name: "web".into(),
                stream: proto::Stream::Stderr,
                tail: tail(5, None, true)
            }
        );
        assert_eq!(
            parsed("tail --bytes 100 web"),
            Command::Tail {
                name: "web".into(),
                stream: proto::Stream::Stdout,
                tail: tail(20, Some(100), false)
            }
        );
        assert_eq!(
            parsed("tail web:1 stdout --follow --lines 3"),
            Command::Tail {
                name: "web:1".into(),
                stream: proto::Stream::Stdout,
                tail: tail(3, None, true)
            }
        );
        assert_eq!(
            parsed("maintail -f"),
            Command::MainTail {
                tail: tail(20, None, true)
            }
        );
        assert_eq!(
            parsed("maintail -n 5 --bytes 10"),
            Command::MainTail {
                tail: tail(5, Some(10), false)
            }
        );
        assert_eq!(
            parsed("clear web db:0"),
            Command::Clear {
                names: vec!["web".into(), "db:0".into()]
            }
        );
        assert_eq!(parsed("reopen"), Command::Reopen);
    }

    #[test]
    fn signal_takes_a_signal_then_names_and_alerts_test_a_rule() {
        assert_eq!(
            parsed("signal USR1 web db:0"),
            Command::Signal {
                signal: "USR1".into(),
                names: vec!["web".into(), "db:0".into()],
                leader: false
            }
        );
        assert_eq!(
            parsed("signal 10 --leader all"),
            Command::Signal {
                signal: "10".into(),
                names: vec!["all".into()],
                leader: true
            }
        );
        assert!(refused("signal").starts_with("signal needs a signal (USR1, 10, ...)\nusage: "));
        assert!(refused("signal USR1").starts_with("signal needs at least one name (or all)"));
        assert!(refused("signal --leeder USR1 web").starts_with("unknown option `--leeder`"));
        assert_eq!(
            parsed("alerts test crashes"),
            Command::AlertsTest {
                rule: "crashes".into()
            }
        );
        assert!(refused("alerts").starts_with("say `alerts test RULE`\nusage: alerts test RULE"));
        assert!(refused("alerts test").starts_with("alerts test needs a rule"));
        assert!(refused("alerts test a b").starts_with("unexpected argument `b`"));
        assert!(refused("alerts send a").starts_with("say `alerts test RULE`"));
    }

    #[test]
    fn tail_asks_lines_or_bytes_as_the_rpc_takes_them() {
        let request = |line: &str| match parsed(line) {
            Command::Tail { tail, .. } | Command::MainTail { tail } => tail.request(),
            command => panic!("{command:?}"),
        };
        assert_eq!(request("tail web"), (20, None));
        assert_eq!(request("tail -n 5 web"), (5, None));
        assert_eq!(request("tail --bytes 7 web"), (20, Some(7)));
        // `lines: 0` would mean the default: none is no bytes.
        assert_eq!(request("maintail -n 0"), (0, Some(0)));
        assert_eq!(request("tail -n 0 --bytes 9 web"), (0, Some(9)));
    }

    #[test]
    fn bad_tail_lines_give_usage() {
        assert_eq!(
            refused("tail"),
            "tail needs the name of an instance\n\
             usage: tail [-f] [-n LINES] [--bytes N] NAME [stdout|stderr]"
        );
        assert!(
            refused("tail web stdin")
                .starts_with("the stream is stdout or stderr, not `stdin`\nusage: tail ")
        );
        assert!(refused("tail -n x web").starts_with("-n needs a number of lines, not `x`\n"));
        assert!(refused("tail -n -3 web").starts_with("-n needs a number of lines, not `-3`"));
        assert!(refused("tail web -n").starts_with("-n needs a number of lines\n"));
        assert!(refused("tail --bytes 1k web").starts_with("--bytes needs a number of bytes, "));
        assert!(refused("tail web stderr more").starts_with("unexpected argument `more`"));
        assert!(refused("tail --json web").starts_with("unknown option `--json`"));
        assert!(refused("maintail web").starts_with("unexpected argument `web`\nusage: maintail"));
        assert!(refused("maintail --since 3").starts_with("unknown option `--since`"));
        assert!(refused("clear").starts_with("clear needs at least one name (or all)\n"));
        assert!(refused("reopen now").starts_with("unexpected argument `now`"));
        assert!(refused("watch -f").starts_with("unknown option `-f`"));
    }

    #[test]
    fn double_dash_ends_flags() {
        assert_eq!(
            parsed("status -- --json"),
            Command::Status {
                names: vec!["--json".into()],
                json: false
            }
        );
    }
}
