//! The reload plan: a pure function from the programs the supervisor has and a new config to
//! what changes for each program. The supervisor carries a plan out; nothing here acts.

use std::collections::BTreeMap;

use super::view::ReloadSummary;
use crate::config::ProgramConfig;

/// A program as the supervisor has it when a reload comes.
#[derive(Debug, Clone, Copy)]
pub struct Current<'a> {
    pub name: &'a str,
    pub config: &'a ProgramConfig,
    /// A reload removed it and its instances are still being stopped.
    pub removed: bool,
}

/// What a reload does to one program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// New: its instances are created, and started if autostart.
    Add,
    /// Changed beyond `numprocs`, or re-added while being removed: every instance restarts
    /// with the new config (and the program is resized to its new `numprocs`).
    Restart,
    /// Only `numprocs` grew: instances are added; the others are not touched.
    Grow { from: u32, to: u32 },
    /// Only `numprocs` shrank: the highest instances are stopped and forgotten.
    Shrink { from: u32, to: u32 },
    /// Gone from the config: stopped and forgotten.
    Remove,
    /// The same: its processes are not touched.
    Unchanged,
}

/// What a reload does, program by program: the new config's programs in its order, then the
/// removed ones in name order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub changes: Vec<(String, Change)>,
}

/// The plan that makes `current` into `new`.
pub fn plan<'a>(
    current: impl IntoIterator<Item = Current<'a>>,
    new: &BTreeMap<String, ProgramConfig>,
) -> Plan {
    let current: BTreeMap<&str, Current<'a>> = current
        .into_iter()
        .map(|program| (program.name, program))
        .collect();
    let mut changes: Vec<(String, Change)> = new
        .iter()
        .map(|(name, config)| {
            let change = match current.get(name.as_str()) {
                None => Change::Add,
                Some(old) if old.removed => Change::Restart,
                Some(old) if old.config == config => Change::Unchanged,
                Some(old) if old.config.same_except_numprocs(config) => {
                    let (from, to) = (old.config.numprocs, config.numprocs);
                    if to > from {
                        Change::Grow { from, to }
                    } else {
                        Change::Shrink { from, to }
                    }
                }
                Some(_) => Change::Restart,
            };
            (name.clone(), change)
        })
        .collect();
    changes.extend(
        current
            .values()
            .filter(|old| !old.removed && !new.contains_key(old.name))
            .map(|old| (old.name.to_string(), Change::Remove)),
    );
    Plan { changes }
}

impl Plan {
    /// The names each kind of change concerns, as a reload reports them.
    pub fn summary(&self) -> ReloadSummary {
        let mut summary = ReloadSummary::default();
        for (name, change) in &self.changes {
            let list = match change {
                Change::Add => &mut summary.added,
                Change::Restart | Change::Grow { .. } | Change::Shrink { .. } => {
                    &mut summary.changed
                }
                Change::Remove => &mut summary.removed,
                Change::Unchanged => &mut summary.unchanged,
            };
            list.push(name.clone());
        }
        summary
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    /// The programs of a config whose `programs:` section is `body`.
    fn programs(body: &str) -> BTreeMap<String, ProgramConfig> {
        let text = format!("programs:\n{body}");
        config::parse(&text, std::path::Path::new("/t/taskmaster.yaml"))
            .unwrap()
            .programs
    }

    #[test]
    fn each_kind_of_difference_has_its_change() {
        let web = "  web:\n    cmd: sleep 1\n";
        let web_three = "  web:\n    cmd: sleep 1\n    numprocs: 3\n";
        let web_other = "  web:\n    cmd: sleep 2\n";
        let web_other_three = "  web:\n    cmd: sleep 2\n    numprocs: 3\n";
        let db = "  db:\n    cmd: sleep 1\n";
        let db_renamed = "  database:\n    cmd: sleep 1\n";
        // (case, programs before, removed before, programs after, expected changes)
        type Case<'a> = (
            &'a str,
            String,
            &'a [&'a str],
            String,
            Vec<(&'a str, Change)>,
        );
        let cases: Vec<Case> = vec![
            (
                "unchanged",
                format!("{web}{db}"),
                &[],
                format!("{db}{web}"),
                vec![("db", Change::Unchanged), ("web", Change::Unchanged)],
            ),
            (
                "added",
                web.to_string(),
                &[],
                format!("{web}{db}"),
                vec![("db", Change::Add), ("web", Change::Unchanged)],
            ),
            (
                "removed",
                format!("{web}{db}"),
                &[],
                web.to_string(),
                vec![("web", Change::Unchanged), ("db", Change::Remove)],
            ),
            (
                "numprocs only, up",
                web.to_string(),
                &[],
                web_three.to_string(),
                vec![("web", Change::Grow { from: 1, to: 3 })],
            ),
            (
                "numprocs only, down",
                web_three.to_string(),
                &[],
                web.to_string(),
                vec![("web", Change::Shrink { from: 3, to: 1 })],
            ),
            (
                "command changed",
                web.to_string(),
                &[],
                web_other.to_string(),
                vec![("web", Change::Restart)],
            ),
            (
                "command and numprocs changed",
                web.to_string(),
                &[],
                web_other_three.to_string(),
                vec![("web", Change::Restart)],
            ),
            (
                "re-added while being removed, same config",
                format!("{web}{db}"),
                &["db"],
                format!("{web}{db}"),
                vec![("db", Change::Restart), ("web", Change::Unchanged)],
            ),
            (
                "still removed: not removed twice",
                format!("{web}{db}"),
                &["db"],
                web.to_string(),
                vec![("web", Change::Unchanged)],
            ),
            (
                "renamed: one added, one removed",
                format!("{web}{db}"),
                &[],
                format!("{web}{db_renamed}"),
                vec![
                    ("database", Change::Add),
                    ("web", Change::Unchanged),
                    ("db", Change::Remove),
                ],
            ),
            (
                "everything removed",
                format!("{web}{db}"),
                &[],
                String::new(),
                vec![("db", Change::Remove), ("web", Change::Remove)],
            ),
        ];
        for (case, before, removed, after, expected) in cases {
            let before = programs(&before);
            let after = if after.is_empty() {
                BTreeMap::new()
            } else {
                programs(&after)
            };
            let current = before.iter().map(|(name, config)| Current {
                name,
                config,
                removed: removed.contains(&name.as_str()),
            });
            let got = plan(current, &after);
            let expected: Vec<(String, Change)> = expected
                .into_iter()
                .map(|(name, change)| (name.to_string(), change))
                .collect();
            assert_eq!(got.changes, expected, "{case}");
        }
    }

    #[test]
    fn the_summary_lists_names_by_kind_of_change() {
        let plan = Plan {
            changes: vec![
                ("a".into(), Change::Add),
                ("b".into(), Change::Grow { from: 1, to: 2 }),
                ("c".into(), Change::Restart),
                ("d".into(), Change::Unchanged),
                ("e".into(), Change::Shrink { from: 2, to: 1 }),
                ("f".into(), Change::Remove),
            ],
        };
        assert_eq!(
            plan.summary(),
            ReloadSummary {
                added: vec!["a".into()],
                changed: vec!["b".into(), "c".into(), "e".into()],
                removed: vec!["f".into()],
                unchanged: vec!["d".into()],
                warnings: vec![],
            }
        );
    }
}
