//! Tab completion from the command table: command names first, then each command's flags and
//! operands as its [`Spec`] describes them.

use super::{Operands, Verb};

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
            Some(_) if before.last() == Some(&"--since") => Vec::new(),
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
                Operands::Command => verb_names(),
                Operands::OnOff => vec!["on".to_string(), "off".to_string()],
            },
        },
    };
    candidates.retain(|candidate| candidate.starts_with(word));
    candidates.sort();
    candidates.dedup();
    (start, candidates)
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
        assert_eq!(complete("help re", &names).1, vec!["reload", "restart"]);
        assert_eq!(complete("reload ", &names).1, Vec::<String>::new());
        assert_eq!(complete("nope x", &names).1, Vec::<String>::new());
    }
}
