//! The bounds a config text must keep before the YAML parser reads it: its size and how deep
//! its collections nest. serde_yaml's cost grows with the square of the nesting (100,000
//! levels in 200 KB take minutes), so the nesting is measured first on `saphyr-parser`'s
//! event stream, which costs the same for every level and stops at the first level too deep.

use saphyr_parser::{Event, Parser};

use super::ConfigIssue;

/// The largest config accepted, in bytes. A file of a hundred thousand programs is about
/// 10 MB.
pub const MAX_BYTES: usize = 16 << 20;

/// How deep collections may nest. A config needs five levels (`programs`, a program, a stream's
/// options, ...); YAML written by hand or by a template never needs this many.
pub const MAX_DEPTH: usize = 64;

/// Whether `text` keeps both bounds; else the issue, at the place the bound was passed.
pub fn check(text: &str) -> Result<(), ConfigIssue> {
    if text.len() > MAX_BYTES {
        return Err(ConfigIssue {
            line: 1,
            column: 1,
            key: String::new(),
            message: format!(
                "the file is larger than {} MiB: a config this large is refused before it is read",
                MAX_BYTES >> 20
            ),
        });
    }
    let too_deep = |line: usize, column: usize| ConfigIssue {
        line,
        column,
        key: String::new(),
        message: format!(
            "collections nest more than {MAX_DEPTH} levels deep here; a config needs a handful"
        ),
    };
    let mut parser = Parser::new_from_str(text);
    let mut depth = 0usize;
    while let Some(next) = parser.next_event() {
        let (event, span) = match next {
            Ok(next) => next,
            // The scanner reads flow collections ahead of its events and stops at its own
            // depth limit (above ours) before telling their starts.
            Err(error) if error.info().contains("recursion limit") => {
                return Err(too_deep(error.marker().line(), error.marker().col() + 1));
            }
            // Any other syntax error: the full parse reports it with its place.
            Err(_) => break,
        };
        match event {
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(too_deep(span.start.line(), span.start.col() + 1));
                }
            }
            Event::MappingEnd | Event::SequenceEnd => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_is_refused_past_the_bound_at_its_place() {
        let flow = |depth: usize| format!("programs: {}{}\n", "[".repeat(depth), "]".repeat(depth));
        // `programs` is one level: the root mapping.
        assert!(check(&flow(MAX_DEPTH - 1)).is_ok());
        let issue = check(&flow(MAX_DEPTH)).unwrap_err();
        assert_eq!((issue.line, issue.column), (1, 11 + MAX_DEPTH - 1));
        assert!(issue.message.contains("more than 64 levels"), "{issue:?}");
        // Past the scanner's own limit, the scanner's error is the same refusal.
        let issue = check(&flow(100_000)).unwrap_err();
        assert!(issue.message.contains("more than 64 levels"), "{issue:?}");
        // Block sequences nest as deep with as few bytes.
        let block = format!("programs:\n  {}x\n", "- ".repeat(MAX_DEPTH));
        assert!(check(&block).is_err());
        // Siblings are not depth.
        let wide = format!("programs: [{}]\n", "[x], ".repeat(10_000));
        assert!(check(&wide).is_ok());
    }

    #[test]
    fn a_file_too_large_is_refused_before_parsing() {
        let text = "#".repeat(MAX_BYTES + 1);
        let issue = check(&text).unwrap_err();
        assert!(issue.message.contains("larger than 16 MiB"), "{issue:?}");
        assert!(check(&"#".repeat(MAX_BYTES)).is_ok());
    }
}
