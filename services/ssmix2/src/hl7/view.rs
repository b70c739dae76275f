//! A borrowed, read-only view of decoded message text: segments and fields are found by splitting
//! on demand, and nothing is copied unless a value holds escape sequences.
//!
//! [`Message`](super::Message) builds the whole tree (a `String` per leaf) so that it can encode
//! back byte for byte; readers that only pick a few values out of each file, such as the store's
//! index extraction, use this view instead, at a fraction of the cost. Both read the same values:
//! [`SegmentView::component`] equals `Message`'s first repetition, component `c`, first subcomponent,
//! unescaped (the tests check this over the NHO sample files).

use std::borrow::Cow;

use super::escape;
use super::message::{Delimiters, read_header};
use crate::Hl7Error;

/// Decoded message text with its delimiters.
#[derive(Debug, Clone, Copy)]
pub struct MessageView<'a> {
    text: &'a str,
    pub delimiters: Delimiters,
}

/// One segment's line (without its terminator).
#[derive(Debug, Clone, Copy)]
pub struct SegmentView<'a> {
    line: &'a str,
    d: Delimiters,
}

impl<'a> MessageView<'a> {
    /// Checks the MSH header as [`Message::parse`](super::Message::parse) does and reads the
    /// delimiters; the segments are split only when asked for.
    pub fn parse(text: &'a str) -> Result<Self, Hl7Error> {
        Ok(Self { text, delimiters: read_header(text)?.0 })
    }

    /// The segments in order (CR, LF or CRLF terminated; a trailer of 0x1C and blanks is skipped).
    pub fn segments(&self) -> impl Iterator<Item = SegmentView<'a>> + 'a {
        let d = self.delimiters;
        self.text
            .split(['\r', '\n'])
            .filter(|line| !line.is_empty() && !line.chars().all(|c| c == '\u{1c}' || c.is_whitespace()))
            .map(move |line| SegmentView { line, d })
    }

    /// The first segment with this ID.
    pub fn segment(&self, id: &str) -> Option<SegmentView<'a>> {
        self.segments().find(|s| s.id() == id)
    }
}

impl<'a> SegmentView<'a> {
    /// The three-letter segment ID.
    pub fn id(&self) -> &'a str {
        self.line.split(self.d.field).next().unwrap_or("")
    }

    /// Field `n` (HL7 numbering, 1-based) in wire form; `None` when the segment is shorter. For
    /// MSH, field 1 is the field separator itself and field 2 the encoding characters.
    pub fn field(&self, n: usize) -> Option<&'a str> {
        if n == 0 {
            return None;
        }
        let header = matches!(self.id(), "MSH" | "BHS" | "FHS");
        if header && n == 1 {
            return self.line.get(3..3 + self.d.field.len_utf8());
        }
        // In a header the separator after the ID is MSH-1 itself, so MSH-n is split part n-1.
        let part = if header { n - 1 } else { n };
        self.line.split(self.d.field).nth(part)
    }

    /// Component `c` (1-based) of the field's first repetition, its first subcomponent, with
    /// escape sequences resolved; empty when absent.
    pub fn component(&self, n: usize, c: usize) -> Cow<'a, str> {
        let Some(field) = self.field(n) else { return Cow::Borrowed("") };
        let rep = field.split(self.d.repetition).next().unwrap_or("");
        let Some(comp) = rep.split(self.d.component).nth(c.saturating_sub(1)) else {
            return Cow::Borrowed("");
        };
        escape::unescape(comp.split(self.d.subcomponent).next().unwrap_or(""), &self.d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hl7::Message;

    /// Every (segment, field, component) of `text` reads the same through the view as through the
    /// tree, for the first repetition's first subcomponent.
    fn assert_agrees(text: &str) {
        let tree = Message::parse(text).unwrap();
        let view = MessageView::parse(text).unwrap();
        let segs: Vec<SegmentView> = view.segments().collect();
        // The tree keeps an empty segment for a blank line; the view skips it.
        let tree_segs: Vec<_> = tree.segments.iter().filter(|s| !s.id().is_empty()).collect();
        assert_eq!(segs.len(), tree_segs.len());
        for (v, t) in segs.iter().zip(tree_segs) {
            assert_eq!(v.id(), t.id());
            if matches!(t.id(), "MSH" | "BHS" | "FHS") {
                continue; // MSH-1/2 are opaque in the tree; the header values are checked below.
            }
            for n in 1..=t.field_count() + 1 {
                let width = t.field(n).and_then(|f| f.0.first()).map_or(0, |r| r.0.len());
                for c in 1..=width + 1 {
                    let from_tree = t
                        .field(n)
                        .and_then(|f| f.0.first())
                        .and_then(|r| r.0.get(c - 1))
                        .and_then(|k| k.0.first())
                        .map(|v| v.text(&tree.delimiters).into_owned())
                        .unwrap_or_default();
                    assert_eq!(v.component(n, c), from_tree, "{}-{n}.{c}", t.id());
                }
            }
        }
        let msh = view.segment("MSH").unwrap();
        for path in ["MSH-3", "MSH-7", "MSH-9.1", "MSH-9.2", "MSH-12"] {
            let (n, c) = path[4..].split_once('.').unwrap_or((&path[4..], "1"));
            assert_eq!(
                msh.component(n.parse().unwrap(), c.parse().unwrap()),
                tree.value(path).unwrap_or_default(),
                "{path}"
            );
        }
    }

    #[test]
    fn the_view_reads_what_the_tree_reads_in_every_nho_sample() {
        let root = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/external/nhoHQ-SSMIX2DataTestingTool/sampleData"
        );
        let mut n = 0;
        let mut stack = vec![std::path::PathBuf::from(root)];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if let Ok(text) = std::fs::read(&p)
                    .map_err(drop)
                    .and_then(|b| crate::hl7::decode_iso2022jp(&b).map_err(drop))
                    && Message::parse(&text).is_ok()
                {
                    assert_agrees(&text);
                    n += 1;
                }
            }
        }
        assert!(n > 20, "only {n} sample files found under {root}");
    }

    #[test]
    fn escapes_short_fields_and_line_endings() {
        assert_agrees("MSH|^~\\&|A|B\rOBX|1|ST|X^a\\T\\b^L||v\\F\\w~r2|\r\n\rPV1\nNTE|||\u{1c}");
        let v = MessageView::parse("MSH|^~\\&|A|B|C|D|20240101||ADT^A01\rPV1|1|I|32^^^W").unwrap();
        let pv1 = v.segment("PV1").unwrap();
        assert_eq!(
            (pv1.component(2, 1), pv1.component(3, 1), pv1.component(3, 4)),
            ("I".into(), "32".into(), "W".into())
        );
        assert_eq!(pv1.component(9, 1), "");
        assert_eq!(v.segment("MSH").unwrap().component(9, 2), "A01");
        assert_eq!(v.segment("MSH").unwrap().field(1), Some("|"));
        assert!(matches!(MessageView::parse("PID|1"), Err(Hl7Error::NoMsh)));
        assert!(matches!(MessageView::parse("MSH|^~"), Err(Hl7Error::ShortMsh)));
        assert!(matches!(MessageView::parse(" \u{1c}"), Err(Hl7Error::Empty)));
    }
}
