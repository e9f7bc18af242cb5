//! Where a program's stdout and stderr go: discarded, or captured by the daemon into a file per
//! instance (a path template), rotated at `maxbytes` with `backups` old files kept.
//!
//! A path as written in a config is read by [`PathTemplate::parse`]: `{name}`, `{program}` and
//! `{index}`, and supervisord's `%(program_name)s`, `%(group_name)s`, `%(process_num)02d` and
//! `%(here)s`, so that imported configs work; `{{`, `}}` and `%%` are literal.

use std::path::{Path, PathBuf};

use super::find::clean;

/// Default `maxbytes`: 10 MiB.
pub const DEFAULT_MAXBYTES: u64 = 10 * 1024 * 1024;
/// Default `backups`.
pub const DEFAULT_BACKUPS: u32 = 5;
/// Largest accepted `backups`.
pub const MAX_BACKUPS: u32 = 1000;
/// Widest accepted index padding (`%(process_num)020d`): an index has at most 10 digits.
pub const MAX_INDEX_WIDTH: usize = 20;

/// The placeholders a path may use, for messages.
const PLACEHOLDERS: &str = "{name}, {program}, {index}, %(program_name)s, %(group_name)s, \
%(process_num)d (with a width like 02d) or %(here)s";

/// Why a path template cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("the path is empty")]
    Empty,
    #[error("the path contains a NUL character")]
    Nul,
    /// A placeholder that is not one of ours, as written (`{nmae}`, `%(foo)s`).
    #[error("unknown placeholder `{0}`; a path may use {PLACEHOLDERS}")]
    Unknown(String),
    /// A known placeholder with a format it cannot take (`%(program_name)d`, `%(process_num)-3d`).
    #[error("unsupported format `{0}`; a path may use {PLACEHOLDERS}")]
    Format(String),
    /// A `{` without its `}` (`{name`) or a `%(` without its `)`, as written.
    #[error("unclosed `{0}`; write `{{{{` for a literal `{{`, `%%` for a literal `%`")]
    Unclosed(String),
    #[error("a lone `}}`; write `}}}}` for a literal `}}`")]
    LoneBrace,
    /// A `%` that does not start `%(` or `%%`.
    #[error("a lone `%`; write `%%` for a literal `%`")]
    LonePercent,
}

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
    /// Reads a path as written in a config: relative to `dir` (absolute), cleaned of `.`
    /// components as other paths are. `%(here)s` is `dir`.
    pub fn parse(text: &str, dir: &Path) -> Result<PathTemplate, TemplateError> {
        if text.is_empty() {
            return Err(TemplateError::Empty);
        }
        if text.contains('\0') {
            return Err(TemplateError::Nul);
        }
        // The text with a NUL for each placeholder, cleaned as a path, then cut at the NULs.
        let mut skeleton = String::with_capacity(text.len());
        let mut placeholders = Vec::new();
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            let (len, part) = match c {
                '{' | '}' | '%' if rest[1..].starts_with(c) => (2, TemplatePart::Text(c.into())),
                '{' => brace(rest)?,
                '}' => return Err(TemplateError::LoneBrace),
                '%' => percent(rest, dir)?,
                _ => {
                    skeleton.push(c);
                    rest = &rest[c.len_utf8()..];
                    continue;
                }
            };
            match part {
                TemplatePart::Text(literal) => skeleton.push_str(&literal),
                placeholder => {
                    skeleton.push('\0');
                    placeholders.push(placeholder);
                }
            }
            rest = &rest[len..];
        }
        let cleaned = clean(&dir.join(skeleton));
        let cleaned = cleaned.to_string_lossy();
        let mut parts = Vec::with_capacity(2 * placeholders.len() + 1);
        let mut placeholders = placeholders.into_iter();
        for (i, piece) in cleaned.split('\0').enumerate() {
            if i > 0 {
                parts.extend(placeholders.next());
            }
            if !piece.is_empty() {
                parts.push(TemplatePart::Text(piece.to_string()));
            }
        }
        Ok(PathTemplate { parts })
    }

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

/// The `{...}` placeholder at the start of `text`: its length and its part.
fn brace(text: &str) -> Result<(usize, TemplatePart), TemplateError> {
    let end = text[1..].find(['{', '}']).map_or(text.len(), |at| at + 1);
    if !text[end..].starts_with('}') {
        return Err(TemplateError::Unclosed(text[..end].to_string()));
    }
    let part = match &text[..=end] {
        "{name}" => TemplatePart::Name,
        "{program}" => TemplatePart::Program,
        "{index}" => TemplatePart::Index {
            width: 0,
            zero: false,
        },
        written => return Err(TemplateError::Unknown(written.to_string())),
    };
    Ok((end + 1, part))
}

/// The supervisord `%(key)format` at the start of `text` (not `%%`): its length and its part;
/// `%(here)s` is the text of `dir`.
fn percent(text: &str, dir: &Path) -> Result<(usize, TemplatePart), TemplateError> {
    let Some(rest) = text.strip_prefix("%(") else {
        return Err(TemplateError::LonePercent);
    };
    let Some(key_end) = rest.find(')') else {
        return Err(TemplateError::Unclosed(text.to_string()));
    };
    let key = &rest[..key_end];
    let format = &rest[key_end + 1..];
    // printf: flags, a width and a precision, then the conversion letter.
    let spec_len = format
        .find(|c: char| !matches!(c, '-' | '+' | ' ' | '#' | '.' | '0'..='9'))
        .unwrap_or(format.len());
    let spec = &format[..spec_len];
    let conversion = format[spec_len..]
        .chars()
        .next()
        .filter(char::is_ascii_alphabetic);
    let len = 3 + key_end + spec_len + usize::from(conversion.is_some());
    let written = || text[..len].to_string();
    let part = match (key, spec, conversion) {
        ("program_name" | "group_name", "", Some('s')) => TemplatePart::Program,
        ("here", "", Some('s')) => TemplatePart::Text(dir.to_string_lossy().into_owned()),
        ("process_num", "", Some('s')) => TemplatePart::Index {
            width: 0,
            zero: false,
        },
        ("process_num", _, Some('d' | 'i')) => {
            index_format(spec).ok_or_else(|| TemplateError::Format(written()))?
        }
        ("program_name" | "group_name" | "here" | "process_num", _, _) => {
            return Err(TemplateError::Format(written()));
        }
        _ => return Err(TemplateError::Unknown(written())),
    };
    Ok((len, part))
}

/// The index part of printf flags and width `spec`: `02` pads with zeros, `3` with spaces.
fn index_format(spec: &str) -> Option<TemplatePart> {
    let (zero, digits) = match spec.strip_prefix('0') {
        Some(digits) => (true, digits),
        None => (false, spec),
    };
    if digits.is_empty() {
        return Some(TemplatePart::Index { width: 0, zero });
    }
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let width = digits.parse().ok().filter(|&w| w <= MAX_INDEX_WIDTH)?;
    Some(TemplatePart::Index { width, zero })
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

    #[test]
    fn templates_parse_into_parts() {
        use TemplatePart::{Name, Program, Text};
        let text = |t: &str| Text(t.to_string());
        let index = |width, zero| TemplatePart::Index { width, zero };
        let dir = Path::new("/srv/taskmaster");
        let cases = [
            ("/var/log/web.log", vec![text("/var/log/web.log")]),
            ("web.log", vec![text("/srv/taskmaster/web.log")]),
            ("./logs/./x.log", vec![text("/srv/taskmaster/logs/x.log")]),
            ("../x.log", vec![text("/srv/taskmaster/../x.log")]),
            ("/l/{name}.log", vec![text("/l/"), Name, text(".log")]),
            (
                "{program}-{index}",
                vec![
                    text("/srv/taskmaster/"),
                    Program,
                    text("-"),
                    index(0, false),
                ],
            ),
            ("/l/{name}{index}", vec![text("/l/"), Name, index(0, false)]),
            (
                "/l/%(program_name)s.log",
                vec![text("/l/"), Program, text(".log")],
            ),
            ("/l/%(group_name)s", vec![text("/l/"), Program]),
            ("/l/%(process_num)02d", vec![text("/l/"), index(2, true)]),
            ("/l/%(process_num)3d", vec![text("/l/"), index(3, false)]),
            ("/l/%(process_num)d", vec![text("/l/"), index(0, false)]),
            ("/l/%(process_num)s", vec![text("/l/"), index(0, false)]),
            ("%(here)s/x.log", vec![text("/srv/taskmaster/x.log")]),
            ("%(here)s/{name}", vec![text("/srv/taskmaster/"), Name]),
            ("/l/100%%-{{x}}.log", vec![text("/l/100%-{x}.log")]),
            ("/l/é{name}ü", vec![text("/l/é"), Name, text("ü")]),
        ];
        for (written, parts) in cases {
            let parsed = PathTemplate::parse(written, dir);
            assert_eq!(parsed, Ok(PathTemplate { parts }), "{written}");
        }
        assert_eq!(
            PathTemplate::parse("/tmp/all.log", dir),
            Ok(PathTemplate::literal(Path::new("/tmp/all.log")))
        );
    }

    #[test]
    fn bad_templates_say_why() {
        let dir = Path::new("/srv/taskmaster");
        let cases = [
            ("", "the path is empty"),
            ("a\0b", "NUL character"),
            (
                "/l/{nmae}.log",
                "unknown placeholder `{nmae}`; a path may use {name}, {program}",
            ),
            ("/l/{}", "unknown placeholder `{}`"),
            ("/l/%(foo)s", "unknown placeholder `%(foo)s`"),
            (
                "/l/%(host_node_name)s",
                "unknown placeholder `%(host_node_name)s`",
            ),
            ("/l/{name", "unclosed `{name`"),
            ("/l/{na{me}", "unclosed `{na`"),
            ("/l/%(program_name", "unclosed `%(program_name`"),
            ("/l/x}", "a lone `}`; write `}}`"),
            ("/l/50%.log", "a lone `%`; write `%%`"),
            (
                "/l/%(program_name)d",
                "unsupported format `%(program_name)d`",
            ),
            ("/l/%(program_name)", "unsupported format `%(program_name)`"),
            (
                "/l/%(process_num)-3d",
                "unsupported format `%(process_num)-3d`",
            ),
            (
                "/l/%(process_num)99d",
                "unsupported format `%(process_num)99d`",
            ),
            ("/l/%(here)5s", "unsupported format `%(here)5s`"),
        ];
        for (written, message) in cases {
            match PathTemplate::parse(written, dir) {
                Err(err) => assert!(err.to_string().contains(message), "{written}: {err}"),
                Ok(template) => panic!("{written}: accepted as {template:?}"),
            }
        }
    }
}
