//! Where each key and value of a config file is written: an index of line and column by key
//! path, read from `saphyr-parser`'s event stream beside serde_yaml's `Value`, which forgets them.

use std::cell::OnceCell;
use std::collections::HashMap;

use saphyr_parser::{Event, Marker, Parser, ScalarStyle};

use super::ConfigIssue;

/// Longest key path recorded in the position index: the schema's deepest is
/// `alerts.sinks.NAME.headers.HEADER.file` (a program's are four deep:
/// `programs.NAME.env.VAR`, `programs.NAME.exitcodes.N`, `programs.NAME.stdout.maxbytes`).
const INDEXED_DEPTH: usize = 6;

/// A place in the text; both 1-based, the column counted in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Pos {
    pub(super) line: usize,
    pub(super) column: usize,
}

impl Pos {
    pub(super) const START: Pos = Pos { line: 1, column: 1 };

    fn of(marker: &Marker) -> Pos {
        // saphyr: line is 1-based, column 0-based.
        Pos {
            line: marker.line().max(1),
            column: marker.col().saturating_add(1),
        }
    }
}

/// Where a key and its value are written. For a list item or the whole document both are the
/// value's place; for a key with nothing after it (`numprocs:`) both are the key's.
#[derive(Debug)]
pub(super) struct Place {
    /// Where the key starts.
    pub(super) key: Pos,
    /// Where the value starts.
    pub(super) value: Pos,
    /// The value as written, if it is a plain untagged scalar: serde_yaml reads `0o17` and `017`
    /// as different numbers, and `1.10` as 1.1.
    plain: Option<String>,
}

/// The place of what is not found.
static NOWHERE: Place = Place {
    key: Pos::START,
    value: Pos::START,
    plain: None,
};

/// Where each key and value of the first document is written, by key path: the keys from the top
/// down, list items by their number (`["programs", "web", "exitcodes", "1"]`). Aliases are not
/// followed: what is under one is found at the alias.
#[derive(Default)]
pub(super) struct Index {
    /// Paths of at most `INDEXED_DEPTH` keys.
    pub(super) places: HashMap<Vec<String>, Place>,
    /// Keys set twice in a mapping. serde_yaml rejects them too, but only at the mapping.
    pub(super) duplicates: Vec<ConfigIssue>,
    /// Where a second document starts.
    pub(super) second_document: Option<Pos>,
}

impl Index {
    /// Reads as much of `text` as `saphyr-parser` can; a syntax error just ends the index there.
    fn build(text: &str) -> Index {
        /// An open list (with the number of items so far) or mapping (with its pending key, and
        /// the key's place, between a key and its value).
        enum Frame {
            Seq(usize),
            Map(Option<(String, Pos)>),
        }
        let mut index = Index::default();
        let mut frames: Vec<Frame> = Vec::new();
        // The key of each open collection; "" for the whole document.
        let mut path: Vec<String> = Vec::new();
        let mut documents = 0;
        for (event, span) in Parser::new_from_str(text).map_while(Result::ok) {
            let pos = Pos::of(&span.start);
            let (text, opens) = match &event {
                Event::DocumentStart(_) => {
                    documents += 1;
                    if documents > 1 {
                        index.second_document = Some(pos);
                        break;
                    }
                    continue;
                }
                Event::SequenceEnd | Event::MappingEnd => {
                    frames.pop();
                    path.pop();
                    continue;
                }
                Event::Scalar(text, ..) => (Some(text.as_ref()), false),
                Event::Alias(_) => (None, false),
                Event::SequenceStart(..) | Event::MappingStart(..) => (None, true),
                _ => continue,
            };
            // This node's key (none for the document) and where that key is.
            let (key, key_pos) = match frames.last_mut() {
                None => (None, pos),
                Some(Frame::Seq(count)) => {
                    *count += 1;
                    (Some((*count - 1).to_string()), pos)
                }
                Some(Frame::Map(pending)) => match pending.take() {
                    Some((key, key_pos)) => (Some(key), key_pos),
                    None => {
                        // The node is a key; a list or mapping as a key gets a placeholder name.
                        *pending = Some((text.unwrap_or("?").to_string(), pos));
                        if opens {
                            frames.push(Frame::Map(None));
                            path.push("?".to_string());
                        }
                        continue;
                    }
                },
            };
            let plain = match &event {
                Event::Scalar(text, ScalarStyle::Plain, _, None) => Some(text.to_string()),
                _ => None,
            };
            let value_pos = if plain.as_deref() == Some("") {
                key_pos
            } else {
                pos
            };
            if path.len() <= INDEXED_DEPTH {
                let full: Vec<String> = path.iter().skip(1).cloned().chain(key.clone()).collect();
                match index.places.get(&full) {
                    Some(first) => index.duplicates.push(issue(
                        key_pos,
                        full.join("."),
                        format!(
                            "duplicate key `{}` (first set at line {}, column {})",
                            last(&full),
                            first.key.line,
                            first.key.column
                        ),
                    )),
                    None => {
                        let place = Place {
                            key: key_pos,
                            value: value_pos,
                            plain,
                        };
                        index.places.insert(full, place);
                    }
                }
            }
            if opens {
                let seq = matches!(event, Event::SequenceStart(..));
                frames.push(if seq { Frame::Seq(0) } else { Frame::Map(None) });
                path.push(key.unwrap_or_default());
            }
        }
        index
    }

    /// The place of `path`. A key that is not written there itself (it comes from an alias or a
    /// merge) is reported at the `<<` merge key beside it, else at its nearest written parent.
    pub(super) fn place(&self, path: &[String]) -> &Place {
        let mut path = path.to_vec();
        loop {
            if let Some(place) = self.places.get(&path) {
                return place;
            }
            if let Some(last) = path.last_mut()
                && last != "<<"
            {
                *last = "<<".to_string();
                if let Some(place) = self.places.get(&path) {
                    return place;
                }
            }
            if path.pop().is_none() {
                return &NOWHERE;
            }
        }
    }

    /// The value at `path` as written, if it is a plain scalar written there.
    pub(super) fn plain(&self, path: &[String]) -> Option<&str> {
        self.places.get(path)?.plain.as_deref()
    }

    /// The dotted key of the deepest value written at `pos`, or "" if none is.
    pub(super) fn key_at(&self, pos: Pos) -> String {
        let deepest = self
            .places
            .iter()
            .filter(|(_, place)| place.value == pos)
            .map(|(path, _)| path)
            .max_by_key(|path| path.len());
        deepest.map(|path| path.join(".")).unwrap_or_default()
    }
}

/// A problem at `pos`.
pub(super) fn issue(pos: Pos, key: impl Into<String>, message: impl Into<String>) -> ConfigIssue {
    ConfigIssue {
        line: pos.line,
        column: pos.column,
        key: key.into(),
        message: message.into(),
    }
}

/// The position index, built on first use: a valid config with nothing that needs the text
/// as written is parsed once, by serde_yaml alone.
pub(super) struct LazyIndex<'a> {
    /// The config text.
    text: &'a str,
    /// The index once something asked for it.
    built: OnceCell<Index>,
}

impl<'a> LazyIndex<'a> {
    /// The index of `text`, not built yet.
    pub(super) fn new(text: &'a str) -> LazyIndex<'a> {
        LazyIndex {
            text,
            built: OnceCell::new(),
        }
    }

    pub(super) fn get(&self) -> &Index {
        self.built.get_or_init(|| Index::build(self.text))
    }
}

/// The last key of a key path.
pub(super) fn last(path: &[String]) -> &str {
    path.last().map_or("", String::as_str)
}

#[cfg(test)]
mod tests {
    use crate::config::testing::{issues, ok};

    #[test]
    fn crlf_line_ends_and_byte_order_mark() {
        let config = ok("\u{feff}programs:\r\n  web:\r\n    cmd: sleep 1\r\n");
        assert_eq!(config.programs["web"].argv, ["sleep", "1"]);
        let found = issues("programs:\r\n  web:\r\n    cmd: x\r\n    numprocs: 0\r\n");
        assert_eq!((found[0].line, found[0].column), (4, 15));
    }

    #[test]
    fn anchors_and_merge_keys() {
        let text = "\
programs:
  web: &base
    cmd: /bin/web
    numprocs: 2
    env: &env {A: \"1\"}
  api:
    <<: *base
    cmd: /bin/api
  cron:
    <<: [{cmd: /bin/first, autostart: false}, *base]
    env: *env
";
        let config = ok(text);
        let api = &config.programs["api"];
        assert_eq!(api.argv, ["/bin/api"]);
        assert_eq!(api.numprocs, 2);
        assert_eq!(api.env["A"], "1");
        let cron = &config.programs["cron"];
        assert_eq!(cron.argv, ["/bin/first"]);
        assert!(!cron.autostart);
        assert_eq!(cron.numprocs, 2);
        assert_eq!(cron.env["A"], "1");
        // What comes from an alias is reported at the alias, what comes from a merge at its `<<`.
        let at = |text: &str| -> Vec<(usize, usize, String)> {
            let found = issues(text);
            found
                .into_iter()
                .map(|i| (i.line, i.column, i.key))
                .collect()
        };
        assert_eq!(
            at(
                "programs:\n  a:\n    cmd: x\n    env: &e {A: [1]}\n  b:\n    cmd: y\n    env: *e\n"
            ),
            [
                (4, 17, "programs.a.env.A".to_string()),
                (7, 10, "programs.b.env.A".to_string())
            ]
        );
        assert_eq!(
            at(
                "programs:\n  a: &a\n    cmd: x\n    colour: red\n  b:\n    <<: *a\n    numprocs: 2\n"
            ),
            [
                (4, 5, "programs.a.colour".to_string()),
                (6, 5, "programs.b.colour".to_string())
            ]
        );
    }
}
