//! Where each node of a policy document sits in its file.
//!
//! serde_norway reports line/column for syntax and type errors, but the semantic checks
//! (overlapping CIDRs, duplicate numbers, ...) run on the typed policy after deserialising,
//! when positions are gone. This index re-reads the same text with saphyr-parser's event
//! stream (which carries markers) and maps each node path (`sites[3].number`) to its
//! position, so every validation error can still name file:line:column.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser};

/// One step of a path into the document.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathStep {
    Key(String),
    Index(usize),
}

/// A path such as `sites[3].keys.reference`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct NodePath(pub Vec<PathStep>);

impl NodePath {
    pub fn root() -> Self {
        Self(Vec::new())
    }
    pub fn key(&self, k: &str) -> Self {
        let mut v = self.0.clone();
        v.push(PathStep::Key(k.to_string()));
        Self(v)
    }
    pub fn index(&self, i: usize) -> Self {
        let mut v = self.0.clone();
        v.push(PathStep::Index(i));
        Self(v)
    }
}

impl std::fmt::Display for NodePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        for step in &self.0 {
            match step {
                PathStep::Key(k) => {
                    if !first {
                        f.write_str(".")?;
                    }
                    f.write_str(k)?;
                }
                PathStep::Index(i) => write!(f, "[{i}]")?,
            }
            first = false;
        }
        Ok(())
    }
}

/// 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// Node path -> position of the node's value.
#[derive(Debug, Default)]
pub struct SourceIndex {
    positions: HashMap<NodePath, Position>,
    duplicates: Vec<DuplicateKey>,
    /// Every scalar, key or value, in document order: its enclosing mapping or sequence, its
    /// text and where it starts (to find a bad value serde reports at its container's start).
    scalars: Vec<(NodePath, String, Position)>,
}

/// A key given twice in one mapping. serde keeps the last value of a map key silently (the
/// policy's maps are `BTreeMap`s), so the index finds them for `parse` to refuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateKey {
    pub key: String,
    /// Path of the repeated entry (`segments.upload`).
    pub path: NodePath,
    /// Position of the second key.
    pub at: Position,
    /// Line of the first.
    pub first_line: usize,
}

enum Frame {
    /// `keys`: each key seen in this mapping and its line.
    Map {
        path: NodePath,
        pending_key: Option<String>,
        keys: HashMap<String, usize>,
    },
    Seq {
        path: NodePath,
        next: usize,
    },
}

impl SourceIndex {
    /// Index `text`. A text that does not parse yields an empty index (serde_norway reports the
    /// syntax error itself).
    pub fn build(text: &str) -> Self {
        let mut positions = HashMap::new();
        let mut duplicates = Vec::new();
        let mut scalars = Vec::new();
        let mut stack: Vec<Frame> = Vec::new();
        let mut parser = Parser::new_from_str(text);
        // Path of the node the next event starts, given the enclosing frame.
        fn next_path(stack: &mut [Frame]) -> Option<NodePath> {
            match stack.last_mut() {
                None => Some(NodePath::root()),
                Some(Frame::Map { path, pending_key, .. }) => pending_key.take().map(|k| path.key(&k)),
                Some(Frame::Seq { path, next }) => {
                    let p = path.index(*next);
                    *next += 1;
                    Some(p)
                }
            }
        }
        while let Some(Ok((event, span))) = parser.next_event() {
            let pos = Position { line: span.start.line(), column: span.start.col() + 1 };
            match event {
                Event::Scalar(value, ..) => {
                    let container = match stack.last() {
                        Some(Frame::Map { path, .. } | Frame::Seq { path, .. }) => path.clone(),
                        None => NodePath::root(),
                    };
                    scalars.push((container, value.to_string(), pos));
                    let is_key = matches!(stack.last(), Some(Frame::Map { pending_key: None, .. }));
                    if is_key {
                        if let Some(Frame::Map { path, pending_key, keys }) = stack.last_mut() {
                            if let Some(&first_line) = keys.get(value.as_ref()) {
                                duplicates.push(DuplicateKey {
                                    key: value.to_string(),
                                    path: path.key(&value),
                                    at: pos,
                                    first_line,
                                });
                            } else {
                                keys.insert(value.to_string(), pos.line);
                            }
                            *pending_key = Some(value.to_string());
                        }
                    } else if let Some(p) = next_path(&mut stack) {
                        positions.insert(p, pos);
                    }
                }
                Event::Alias(_) => {
                    let _ = next_path(&mut stack);
                }
                Event::MappingStart(..) => {
                    let path = next_path(&mut stack).unwrap_or_default();
                    positions.insert(path.clone(), pos);
                    stack.push(Frame::Map { path, pending_key: None, keys: HashMap::new() });
                }
                Event::SequenceStart(..) => {
                    let path = next_path(&mut stack).unwrap_or_default();
                    positions.insert(path.clone(), pos);
                    stack.push(Frame::Seq { path, next: 0 });
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                }
                _ => {}
            }
        }
        Self { positions, duplicates, scalars }
    }

    /// Keys given twice in one mapping, in document order.
    pub fn duplicates(&self) -> &[DuplicateKey] {
        &self.duplicates
    }

    /// The first scalar (a key or a value) reading `value` inside the node `under` (its dotted
    /// path as serde prints it; empty: anywhere), preferring one at or after `from`.
    pub fn find_scalar(&self, under: &str, value: &str, from: Position) -> Option<Position> {
        let inside = |p: &NodePath| {
            let p = p.to_string();
            under.is_empty()
                || p == under
                || p.strip_prefix(under).is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
        };
        let mut found = self.scalars.iter().filter(|(p, v, _)| v == value && inside(p)).map(|(_, _, at)| *at);
        let first = found.clone().next();
        found.find(|at| (at.line, at.column) >= (from.line, from.column)).or(first)
    }

    /// Position of `path`, or of its nearest indexed ancestor.
    pub fn locate(&self, path: &NodePath) -> Position {
        let mut steps = path.0.clone();
        loop {
            if let Some(p) = self.positions.get(&NodePath(steps.clone())) {
                return *p;
            }
            if steps.pop().is_none() {
                return Position { line: 1, column: 1 };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_nested_values() {
        let text =
            "mesh: m\nsites:\n  - number: 1\n    name: a\n  - number: 2\n    keys:\n      reference: abc\n";
        let idx = SourceIndex::build(text);
        let p = idx.locate(&NodePath::root().key("sites").index(1).key("number"));
        assert_eq!(p, Position { line: 5, column: 13 });
        let p = idx.locate(&NodePath::root().key("sites").index(1).key("keys").key("reference"));
        assert_eq!(p, Position { line: 7, column: 18 });
        let p = idx.locate(&NodePath::root().key("mesh"));
        assert_eq!(p, Position { line: 1, column: 7 });
    }
}
