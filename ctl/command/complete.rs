//! Tab completion from the command table: command names first, then each command's flags and
//! operands as its [`Spec`] describes them.

use super::{Operands, VALUE_FLAGS, Verb};

/// Completes the word that ends `line` (the text before the cursor). Returns where that word
/// starts and the candidates, sorted. `names` are the known program and instance names.
pub fn complete(line: &str, names: &[String]) -> (usize, Vec<String>) {
    let start = line.rfind(char::is_whitespace).map_or(0, |index| index + 1);
    let word = &line[start..];
    let before: Vec<&str> = line[..start].split_whitespace().collect();
    let mut candidates: Vec<String> = match before.first() {
        None => verb_names(),
        Some(name) => match Verb::named(name).map(Verb::spec) {
            None => Vec::new(),
            Some(_) if before.last().is_some_and(|last| VALUE_FLAGS.contains(last)) => Vec::new(),
            Some(spec) if word.starts_with('-') => {
                spec.flags.iter().map(|flag| flag.to_string()).collect()
            }
            Some(spec) => match spec.operands {
                Operands::None => Vec::new(),
                Operands::Names => names.to_vec(),
                Operands::NamesOrAll => {
                    let mut all = names.to_vec();
                    all.push("all".to_string());
                    all
                }
                Operands::Name => match operands_before(&before[1..]) {
                    0 => names.to_vec(),
                    _ => Vec::new(),
                },
                Operands::NameThenStream => match operands_before(&before[1..]) {
                    0 => names.to_vec(),
                    1 => vec!["stdout".to_string(), "stderr".to_string()],
                    _ => Vec::new(),
                },
                Operands::Command => verb_names(),
                Operands::OnOff => vec!["on".to_string(), "off".to_string()],
                Operands::SignalThenNames => match operands_before(&before[1..]) {
                    0 => SIGNALS.iter().map(|signal| signal.to_string()).collect(),
                    _ => {
                        let mut all = names.to_vec();
                        all.push("all".to_string());
                        all
                    }
                },
                Operands::Action(words) => match operands_before(&before[1..]) {
                    0 => words.iter().map(|word| word.to_string()).collect(),
                    _ => Vec::new(),
                },
            },
        },
    };
    candidates.retain(|candidate| candidate.starts_with(word));
    candidates.sort();
    candidates.dedup();
    (start, candidates)
}

/// The signals completion offers for `signal`; any other name or number works too.
const SIGNALS: [&str; 12] = [
    "HUP", "INT", "QUIT", "KILL", "USR1", "USR2", "TERM", "CONT", "STOP", "TSTP", "WINCH", "ALRM",
];

/// How many of `words` (those after the command's name) are operands: neither flags nor
/// the values of flags.
fn operands_before(words: &[&str]) -> usize {
    let mut count = 0;
    let mut words = words.iter();
    while let Some(word) = words.next() {
        if VALUE_FLAGS.contains(word) {
            words.next();
        } else if !word.starts_with('-') {
            count += 1;
        }
    }
    count
}

/// The name of every command.
fn verb_names() -> Vec<String> {
    Verb::ALL
        .iter()
        .map(|verb| verb.spec().name.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completes_commands_then_names() {
        let names: Vec<String> = ["sleeper", "web", "web:0", "web:1"]
            .iter()
            .map(|name| name.to_string())
            .collect();
        assert_eq!(
            complete("sta", &names),
            (0, vec!["start".into(), "status".into()])
        );
        assert_eq!(complete("stat", &names), (0, vec!["status".into()]));
        assert_eq!(complete("", &names).1.len(), Verb::ALL.len());
        assert_eq!(complete("start sl", &names), (6, vec!["sleeper".into()]));
        assert_eq!(
            complete("stop web", &names),
            (5, vec!["web".into(), "web:0".into(), "web:1".into()])
        );
        assert_eq!(complete("start a", &names), (6, vec!["all".into()]));
        assert_eq!(complete("pid a", &names), (4, Vec::<String>::new()));
        assert_eq!(complete("status --j", &names), (7, vec!["--json".into()]));
        assert_eq!(complete("watch --since ", &names).1, Vec::<String>::new());
        assert_eq!(complete("events o", &names).1, vec!["off", "on"]);
        assert_eq!(
            complete("help re", &names).1,
            vec!["reload", "reopen", "restart"]
        );
        assert_eq!(complete("reload ", &names).1, Vec::<String>::new());
        assert_eq!(complete("nope x", &names).1, Vec::<String>::new());
    }

    #[test]
    fn completes_signal_a_signal_then_names_and_alerts_its_action() {
        let names: Vec<String> = ["web", "web:0"].iter().map(|n| n.to_string()).collect();
        assert_eq!(complete("signal US", &names).1, vec!["USR1", "USR2"]);
        assert_eq!(
            complete("signal --leader T", &names).1,
            vec!["TERM", "TSTP"]
        );
        assert_eq!(complete("signal USR1 w", &names).1, vec!["web", "web:0"]);
        assert_eq!(complete("signal USR1 web a", &names).1, vec!["all"]);
        assert_eq!(complete("signal --l", &names).1, vec!["--leader"]);
        assert_eq!(complete("alerts ", &names).1, vec!["test"]);
        assert_eq!(complete("alerts test ", &names).1, Vec::<String>::new());
    }

    #[test]
    fn completes_tail_a_name_then_a_stream() {
        let names: Vec<String> = ["web", "web:0", "db"]
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(complete("tail w", &names).1, vec!["web", "web:0"]);
        // One instance: no `all`.
        assert_eq!(complete("tail a", &names).1, Vec::<String>::new());
        assert_eq!(complete("tail web ", &names).1, vec!["stderr", "stdout"]);
        assert_eq!(
            complete("tail web std", &names),
            (9, vec!["stderr".into(), "stdout".into()])
        );
        assert_eq!(complete("tail -f -n 5 web stde", &names).1, vec!["stderr"]);
        assert_eq!(complete("tail --bytes 9 d", &names).1, vec!["db"]);
        assert_eq!(complete("tail -n ", &names).1, Vec::<String>::new());
        assert_eq!(complete("tail --bytes ", &names).1, Vec::<String>::new());
        assert_eq!(complete("tail web stderr ", &names).1, Vec::<String>::new());
        assert_eq!(complete("tail -", &names).1, vec!["--bytes", "-f", "-n"]);
        assert_eq!(
            complete("maintail -", &names).1,
            vec!["--bytes", "-f", "-n"]
        );
        assert_eq!(complete("maintail ", &names).1, Vec::<String>::new());
        assert_eq!(complete("clear w", &names).1, vec!["web", "web:0"]);
        assert_eq!(complete("clear a", &names).1, vec!["all"]);
        assert_eq!(complete("reopen ", &names).1, Vec::<String>::new());
        assert_eq!(complete("ma", &names).1, vec!["maintail"]);
    }
}
