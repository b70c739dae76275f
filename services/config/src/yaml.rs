//! YAML config files with duplicate keys refused by line.
//!
//! [`from_str`] is `serde_norway::from_str` plus one check serde cannot make with a position: a
//! key given twice in one mapping. serde_norway refuses it for a struct field (`duplicate field
//! `listen``, without a line) and keeps the last value silently for a map; an operator who
//! pasted a second `listen:` below the first should be told both lines. The document is read
//! once more with saphyr-parser's event stream (the parser serde_norway's own fork descends
//! from), which carries positions; netd's policy reader does the same for its richer errors.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser};

/// A key given twice in one mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateKey {
    /// The dotted path of the mapping's key (`oidc.issuer`).
    pub path: String,
    /// 1-based line of the second occurrence, and of the first.
    pub line: usize,
    pub first_line: usize,
}

impl std::fmt::Display for DuplicateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: duplicate key `{}` (first at line {})", self.line, self.path, self.first_line)
    }
}

/// One open mapping or sequence while walking the events.
enum Frame {
    Map { path: String, pending_key: Option<String>, keys: HashMap<String, usize> },
    Seq { path: String, next: usize },
}

/// The path of the node the next event starts, inside the innermost frame.
fn next_path(stack: &mut [Frame]) -> String {
    match stack.last_mut() {
        None => String::new(),
        Some(Frame::Map { path, pending_key, .. }) => {
            let k = pending_key.take().unwrap_or_default();
            if path.is_empty() { k } else { format!("{path}.{k}") }
        }
        Some(Frame::Seq { path, next }) => {
            *next += 1;
            format!("{path}[{}]", *next - 1)
        }
    }
}

/// Every key given twice in one mapping of `text`, in document order. A text that does not
/// parse yields what was found before the error (serde_norway reports the syntax error).
pub fn duplicate_keys(text: &str) -> Vec<DuplicateKey> {
    let mut out = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut parser = Parser::new_from_str(text);
    while let Some(Ok((event, span))) = parser.next_event() {
        let line = span.start.line();
        match event {
            Event::Scalar(value, ..) => match stack.last_mut() {
                Some(Frame::Map { path, pending_key: pending @ None, keys }) => {
                    let full = if path.is_empty() { value.to_string() } else { format!("{path}.{value}") };
                    match keys.get(value.as_ref()) {
                        Some(&first_line) => out.push(DuplicateKey { path: full, line, first_line }),
                        None => {
                            keys.insert(value.to_string(), line);
                        }
                    }
                    *pending = Some(value.to_string());
                }
                _ => {
                    next_path(&mut stack);
                }
            },
            Event::Alias(_) => {
                next_path(&mut stack);
            }
            Event::MappingStart(..) => {
                let path = next_path(&mut stack);
                stack.push(Frame::Map { path, pending_key: None, keys: HashMap::new() });
            }
            Event::SequenceStart(..) => {
                let path = next_path(&mut stack);
                stack.push(Frame::Seq { path, next: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                stack.pop();
            }
            _ => {}
        }
    }
    out
}

/// `Err` naming the first key given twice in one mapping of `text`, for callers that format
/// serde_norway's errors themselves.
pub fn check_duplicates(text: &str) -> Result<(), String> {
    match duplicate_keys(text).first() {
        Some(d) => Err(d.to_string()),
        None => Ok(()),
    }
}

/// `serde_norway::from_str`, refusing duplicate keys first. The error is one line of text for
/// the caller to prefix with the file: `line 7: duplicate key `listen` (first at line 2)`, or
/// serde_norway's own message (which names the line and column).
pub fn from_str<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    check_duplicates(text)?;
    serde_norway::from_str(text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Config {
        listen: String,
        oidc: Option<std::collections::BTreeMap<String, String>>,
        rules: Option<Vec<std::collections::BTreeMap<String, String>>>,
    }

    #[test]
    fn a_key_given_twice_is_refused_with_both_lines_at_any_depth() {
        let e = from_str::<Config>("listen: a\noidc:\n  issuer: x\nlisten: b\n").unwrap_err();
        assert_eq!(e, "line 4: duplicate key `listen` (first at line 1)");
        // In a map, where serde would keep the last value silently.
        let e =
            from_str::<Config>("listen: a\noidc:\n  issuer: x\n  client_id: y\n  issuer: z\n").unwrap_err();
        assert_eq!(e, "line 5: duplicate key `oidc.issuer` (first at line 3)");
        // In a mapping inside a sequence.
        let e = from_str::<Config>("listen: a\nrules:\n  - to: a\n  - to: b\n    to: c\n").unwrap_err();
        assert_eq!(e, "line 5: duplicate key `rules[1].to` (first at line 4)");
    }

    #[test]
    fn the_same_key_in_different_mappings_is_fine_and_values_are_read() {
        let c: Config = from_str("listen: a\noidc:\n  listen: x\nrules:\n  - to: a\n  - to: b\n").unwrap();
        assert_eq!(c.listen, "a");
        assert_eq!(c.rules.unwrap().len(), 2);
    }

    #[test]
    fn other_errors_are_serde_norways_with_their_position() {
        let e = from_str::<Config>("listen: [a\n").unwrap_err();
        assert!(e.contains("line"), "{e}");
        let e = from_str::<Config>("oidc: {}\n").unwrap_err();
        assert!(e.contains("missing field `listen`"), "{e}");
    }
}
