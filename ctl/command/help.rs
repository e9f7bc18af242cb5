//! `help`: the list of commands (also shown by `taskctl --help` and after an unknown command)
//! and the page of one command, both made from the command table.

use super::{Output, Spec, Verb};
use crate::exit::{CtlError, Outcome};

/// What `help` prints: every command with its arguments and help.
pub fn overview() -> String {
    let width = Verb::ALL
        .iter()
        .map(|verb| verb.spec().usage().len())
        .max()
        .unwrap_or(0);
    let mut text = String::from("commands:\n");
    for verb in Verb::ALL {
        let spec = verb.spec();
        text.push_str(&format!("  {:<width$}  {}\n", spec.usage(), spec.summary));
    }
    text
}

/// What `help COMMAND` prints.
fn details(spec: &Spec) -> String {
    let mut text = format!("usage: {}\n  {}\n", spec.usage(), spec.summary);
    if !spec.details.is_empty() {
        text.push_str(&format!("  {}\n", spec.details));
    }
    if spec.shell_only {
        text.push_str("  (in the shell only)\n");
    }
    text
}

/// `help [COMMAND]`. A topic that names no command shows the list (the parser refuses one).
pub fn help(output: &mut Output<'_>, topic: Option<&str>) -> Result<Outcome, CtlError> {
    let text = match topic.and_then(Verb::named) {
        Some(verb) => details(verb.spec()),
        None => overview(),
    };
    output.write(&text)?;
    Ok(Outcome::Success)
}
