//! A borrowed, allocation-free view of a decoded message for the checks: segments as lines, fields
//! as ranges into the line.
//!
//! The validator does not build [`crate::hl7::Message`]: that tree owns a `String` per value, which
//! is the right shape for editing and exact re-encoding but costs hundreds of allocations per file.
//! The checks only read a few fields, so they scan the text in place, reusing buffers across files.

use super::iso2022jp::Outside;

/// Buffers reused from file to file by one worker, so that validating a file allocates nothing
/// unless it finds a violation.
#[derive(Debug, Default)]
pub struct Scratch {
    pub(crate) text: String,
    pub(crate) fields: Vec<(usize, usize)>,
    pub(crate) order: String,
    pub(crate) occurrences: Vec<(u64, u32)>,
    pub(crate) outside: Vec<Outside>,
}

impl Scratch {
    /// The text of the file [`Validator::check`](super::Validator::check) last decoded, so that a
    /// caller can read the message without decoding it again. Meaningful only after a check that
    /// reported no violations (a file that does not decode leaves part of it here).
    pub fn decoded(&self) -> &str {
        &self.text
    }
}

/// Decodes ISO-2022-JP into `out` (cleared first), listing the characters that are not JIS X 0208
/// in `outside`; on failure, the offset of the first bad byte.
pub(crate) fn decode_into(bytes: &[u8], out: &mut String, outside: &mut Vec<Outside>) -> Result<(), usize> {
    super::iso2022jp::decode_into(bytes, out, outside)
}

/// The separators declared in MSH-1 and MSH-2 (ASCII, as SS-MIX2 requires `|^~\&`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Seps {
    pub field: u8,
    pub component: u8,
    pub repetition: u8,
    pub subcomponent: u8,
}

impl Seps {
    /// Reads the separators from the first line; `None` when it is not a usable MSH.
    pub fn from_msh(line: &str) -> Option<Self> {
        let b = line.as_bytes();
        if !line.starts_with("MSH") || b.len() < 8 {
            return None;
        }
        let (field, component, repetition, subcomponent) = (b[3], b[4], b[5], b[7]);
        let all = [field, component, repetition, b[6], subcomponent];
        if all.iter().any(|c| !c.is_ascii_punctuation()) {
            return None;
        }
        Some(Self { field, component, repetition, subcomponent })
    }

    /// True when a field holds no data: nothing, or only separators (`^^`, `~`).
    pub fn is_empty(&self, value: &str) -> bool {
        value.bytes().all(|b| b == self.component || b == self.repetition || b == self.subcomponent)
    }
}

/// The message's segments: non-empty lines (ended by CR, LF or both), with the trailing 0x1C and
/// blanks removed.
pub(crate) fn lines(text: &str) -> Lines<'_> {
    Lines { rest: text.trim_end_matches(|c: char| c.is_whitespace() || c == '\u{1c}') }
}

/// The iterator of [`lines`].
pub(crate) struct Lines<'a> {
    rest: &'a str,
}

impl<'a> Iterator for Lines<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        while !self.rest.is_empty() {
            let (line, rest) = match memchr::memchr2(b'\r', b'\n', self.rest.as_bytes()) {
                Some(p) => (&self.rest[..p], &self.rest[p + 1..]),
                None => (self.rest, ""),
            };
            self.rest = rest;
            if !line.is_empty() {
                return Some(line);
            }
        }
        None
    }
}

/// One segment split into fields.
pub(crate) struct Segment<'t, 'b> {
    pub line: &'t str,
    pub id: &'t str,
    is_msh: bool,
    ranges: &'b [(usize, usize)],
}

impl<'t, 'b> Segment<'t, 'b> {
    /// Splits `line` on the field separator, keeping the ranges in `buf`.
    pub fn split(line: &'t str, seps: &Seps, buf: &'b mut Vec<(usize, usize)>) -> Self {
        buf.clear();
        let mut start = 0;
        // A plain loop: fields are short, so memchr's per-match setup costs more than it saves.
        for (i, b) in line.bytes().enumerate() {
            if b == seps.field {
                buf.push((start, i));
                start = i + 1;
            }
        }
        buf.push((start, line.len()));
        let (s, e) = buf[0];
        let id = &line[s..e];
        Self { line, id, is_msh: id == "MSH", ranges: buf }
    }

    /// The number of the last field present (0 for a bare segment ID).
    pub fn len(&self) -> usize {
        if self.is_msh && self.ranges.len() > 1 { self.ranges.len() } else { self.ranges.len() - 1 }
    }

    /// Field `n` in HL7 numbering, `""` when absent. For MSH, field 1 is the separator itself and
    /// field 2 the encoding characters.
    pub fn field(&self, n: usize) -> &'t str {
        let idx = if self.is_msh {
            match n {
                0 => 0,
                1 => return if self.ranges.len() > 1 { &self.line[3..4] } else { "" },
                n => n - 1,
            }
        } else {
            n
        };
        self.ranges.get(idx).map_or("", |&(s, e)| &self.line[s..e])
    }
}

/// Splits on one separator byte, always yielding at least one (possibly empty) part.
pub(crate) fn parts(value: &str, sep: u8) -> impl Iterator<Item = &str> {
    value.split(sep as char)
}

/// The `n`th (from 1) part of `value` split on `sep`, `""` when absent.
pub(crate) fn nth_part(value: &str, sep: u8, n: usize) -> &str {
    let mut start = 0;
    let mut k = 1;
    for p in memchr::memchr_iter(sep, value.as_bytes()) {
        if k == n {
            return &value[start..p];
        }
        k += 1;
        start = p + 1;
    }
    if k == n { &value[start..] } else { "" }
}

/// A key for counting segment occurrences without allocating: the ID's bytes packed with its length.
pub(crate) fn id_key(id: &str) -> u64 {
    let mut k = id.len() as u64;
    for b in id.bytes().take(7) {
        k = (k << 8) | u64::from(b);
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msh_fields_are_numbered_as_hl7_does() {
        let seps = Seps::from_msh("MSH|^~\\&|A").unwrap();
        let mut buf = Vec::new();
        let s = Segment::split("MSH|^~\\&|HIS|F|||20110701||RDE^O11", &seps, &mut buf);
        assert_eq!(s.id, "MSH");
        assert_eq!(s.field(1), "|");
        assert_eq!(s.field(2), "^~\\&");
        assert_eq!(s.field(3), "HIS");
        assert_eq!(s.field(7), "20110701");
        assert_eq!(s.field(9), "RDE^O11");
        assert_eq!(s.field(30), "");
        let mut buf = Vec::new();
        let p = Segment::split("PID|1||9999013^^^^PI", &seps, &mut buf);
        assert_eq!(p.field(3), "9999013^^^^PI");
        assert_eq!(nth_part(p.field(3), b'^', 1), "9999013");
        assert_eq!(nth_part(p.field(3), b'^', 5), "PI");
        assert_eq!(nth_part(p.field(3), b'^', 6), "");
    }

    #[test]
    fn bare_segment_has_no_fields() {
        let seps = Seps::from_msh("MSH|^~\\&|A").unwrap();
        let mut buf = Vec::new();
        let s = Segment::split("MSH", &seps, &mut buf);
        assert_eq!((s.field(1), s.field(2), s.field(9)), ("", "", ""));
    }

    #[test]
    fn lines_drop_the_trailing_file_separator() {
        let v: Vec<&str> = lines("MSH|x\rPID|y\r\u{1c}").collect();
        assert_eq!(v, ["MSH|x", "PID|y"]);
    }

    #[test]
    fn decode_reports_the_bad_offset() {
        let mut s = String::new();
        assert_eq!(decode_into(b"MSH|\xfb", &mut s, &mut Vec::new()), Err(4));
        let bytes = crate::hl7::encode_iso2022jp("MSH|患|").unwrap();
        decode_into(&bytes, &mut s, &mut Vec::new()).unwrap();
        assert_eq!(s, "MSH|患|");
    }
}
