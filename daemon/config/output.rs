//! Where a program's stdout and stderr go: discarded, or captured by the daemon into a file per
//! instance (a path template), rotated at `maxbytes` with `backups` old files kept.

use std::path::{Path, PathBuf};

/// Default `maxbytes`: 10 MiB.
pub const DEFAULT_MAXBYTES: u64 = 10 * 1024 * 1024;
/// Default `backups`.
pub const DEFAULT_BACKUPS: u32 = 5;

/// Where one output stream of a program goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Thrown away: `null` or `discard`.
    Discard,
    /// Read by the daemon and written to a file of each instance.
    Capture(Capture),
}

impl Default for Output {
    /// Without a key: captured under the daemon's log folder.
    fn default() -> Self {
        Output::Capture(Capture::default())
    }
}

/// How a captured stream is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capture {
    pub path: OutputPath,
    /// Rotate once the file would grow past this many bytes; 0: never.
    pub maxbytes: u64,
    /// Rotated files kept (`x.log.1` ... `x.log.N`); 0: no rotation, the file is emptied instead.
    pub backups: u32,
    /// Prefix each line with its RFC 3339 time of arrival.
    pub timestamps: bool,
}

impl Default for Capture {
    fn default() -> Self {
        Capture {
            path: OutputPath::Default,
            maxbytes: DEFAULT_MAXBYTES,
            backups: DEFAULT_BACKUPS,
            timestamps: false,
        }
    }
}

/// The file a captured stream goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputPath {
    /// In the daemon's log folder: `{name}.out.log` or `{name}.err.log` (supervisord's `AUTO`).
    Default,
    /// A path the user wrote, with placeholders.
    Template(PathTemplate),
}

/// A path with placeholders for the instance: `{name}`, `{program}`, `{index}` (supervisord's
/// `%(program_name)s`, `%(process_num)02d`, ... are read into the same parts). Absolute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    pub parts: Vec<TemplatePart>,
}

/// One piece of a [`PathTemplate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplatePart {
    Text(String),
    /// The instance name: "web" or "web:1".
    Name,
    /// The program name.
    Program,
    /// The instance index, padded to `width` with zeros (`zero`) or spaces.
    Index {
        width: usize,
        zero: bool,
    },
}

impl PathTemplate {
    /// A path without placeholders.
    pub fn literal(path: &Path) -> PathTemplate {
        PathTemplate {
            parts: vec![TemplatePart::Text(path.to_string_lossy().into_owned())],
        }
    }

    /// Whether it has any placeholder. Without one, every instance writes the one file on
    /// purpose (lines stay whole).
    pub fn has_placeholders(&self) -> bool {
        self.parts
            .iter()
            .any(|part| !matches!(part, TemplatePart::Text(_)))
    }

    /// Whether two instances of one program always get different files.
    pub fn tells_instances_apart(&self) -> bool {
        self.parts
            .iter()
            .any(|part| matches!(part, TemplatePart::Name | TemplatePart::Index { .. }))
    }

    /// The file of instance `name` (`index` of `program`).
    pub fn render(&self, program: &str, index: u32, name: &str) -> PathBuf {
        let mut text = String::new();
        for part in &self.parts {
            match part {
                TemplatePart::Text(literal) => text.push_str(literal),
                TemplatePart::Name => text.push_str(name),
                TemplatePart::Program => text.push_str(program),
                TemplatePart::Index { width, zero: true } => {
                    text.push_str(&format!("{index:0width$}"))
                }
                TemplatePart::Index { width, zero: false } => {
                    text.push_str(&format!("{index:width$}"))
                }
            }
        }
        PathBuf::from(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_render_per_instance() {
        let template = PathTemplate {
            parts: vec![
                TemplatePart::Text("/var/log/".into()),
                TemplatePart::Program,
                TemplatePart::Text("-".into()),
                TemplatePart::Index {
                    width: 2,
                    zero: true,
                },
                TemplatePart::Text("-".into()),
                TemplatePart::Name,
                TemplatePart::Text(".log".into()),
            ],
        };
        assert_eq!(
            template.render("web", 3, "web:3"),
            PathBuf::from("/var/log/web-03-web:3.log")
        );
        assert!(template.has_placeholders() && template.tells_instances_apart());
        let literal = PathTemplate::literal(Path::new("/tmp/all.log"));
        assert!(!literal.has_placeholders());
        assert_eq!(
            literal.render("web", 1, "web:1"),
            PathBuf::from("/tmp/all.log")
        );
    }
}
