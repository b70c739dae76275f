//! The message tree: segments → fields → repetitions → components → subcomponents, all kept in
//! their escaped wire form so that encoding gives back the exact input.

use std::borrow::Cow;

use super::{FieldPath, charset, escape};
use crate::Hl7Error;

/// The separators declared in MSH-1 and MSH-2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delimiters {
    pub field: char,
    pub component: char,
    pub repetition: char,
    pub escape: char,
    pub subcomponent: char,
}

impl Default for Delimiters {
    fn default() -> Self {
        Self { field: '|', component: '^', repetition: '~', escape: '\\', subcomponent: '&' }
    }
}

impl Delimiters {
    /// MSH-2 as written: component, repetition, escape, subcomponent.
    pub fn encoding_characters(&self) -> String {
        [self.component, self.repetition, self.escape, self.subcomponent].iter().collect()
    }
}

/// A leaf value in wire form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value(pub String);

impl Value {
    /// The value as written, escape sequences included.
    pub fn raw(&self) -> &str {
        &self.0
    }

    /// The value with escape sequences resolved.
    pub fn text<'a>(&'a self, d: &Delimiters) -> Cow<'a, str> {
        escape::unescape(&self.0, d)
    }
}

/// One component: its subcomponents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component(pub Vec<Value>);

/// One repetition of a field: its components.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repetition(pub Vec<Component>);

/// One field: its repetitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field(pub Vec<Repetition>);

impl Field {
    fn parse(raw: &str, d: &Delimiters) -> Self {
        Field(
            raw.split(d.repetition)
                .map(|rep| {
                    Repetition(
                        rep.split(d.component)
                            .map(|c| {
                                Component(c.split(d.subcomponent).map(|s| Value(s.to_owned())).collect())
                            })
                            .collect(),
                    )
                })
                .collect(),
        )
    }

    /// A field holding one value that is not split (MSH-1, MSH-2).
    fn opaque(raw: &str) -> Self {
        Field(vec![Repetition(vec![Component(vec![Value(raw.to_owned())])])])
    }

    fn write(&self, d: &Delimiters, out: &mut String) {
        for (ri, rep) in self.0.iter().enumerate() {
            if ri > 0 {
                out.push(d.repetition);
            }
            for (ci, comp) in rep.0.iter().enumerate() {
                if ci > 0 {
                    out.push(d.component);
                }
                for (si, sub) in comp.0.iter().enumerate() {
                    if si > 0 {
                        out.push(d.subcomponent);
                    }
                    out.push_str(&sub.0);
                }
            }
        }
    }

    /// True when the field holds no data at all (every leaf empty).
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|r| r.0.iter().all(|c| c.0.iter().all(|v| v.0.is_empty())))
    }

    /// The field in wire form.
    pub fn raw(&self, d: &Delimiters) -> String {
        let mut s = String::new();
        self.write(d, &mut s);
        s
    }
}

/// One segment. `fields[0]` is the segment ID; for MSH, `fields[1]` is MSH-1 (the field separator)
/// and `fields[2]` is MSH-2, so `fields[n]` is always field `n` in HL7's numbering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub fields: Vec<Field>,
    /// What ended this segment in the input: `"\r"` normally, `"\r\n"`, `"\n"` or `""` at the end.
    pub terminator: &'static str,
}

impl Segment {
    /// The three-letter segment ID.
    pub fn id(&self) -> &str {
        self.fields
            .first()
            .and_then(|f| f.0.first())
            .and_then(|r| r.0.first())
            .and_then(|c| c.0.first())
            .map_or("", |v| &v.0)
    }

    /// Field `n` in HL7 numbering (1-based); `None` when the segment is shorter.
    pub fn field(&self, n: usize) -> Option<&Field> {
        if n == 0 { None } else { self.fields.get(n) }
    }

    /// The number of the last field present.
    pub fn field_count(&self) -> usize {
        self.fields.len().saturating_sub(1)
    }

    fn write(&self, d: &Delimiters, out: &mut String) {
        let is_msh = self.is_header() && self.fields.len() > 1;
        for (i, f) in self.fields.iter().enumerate() {
            match (is_msh, i) {
                (true, 1) => out.push(d.field),
                (true, 2) => out.push_str(&f.0[0].0[0].0[0].0),
                (_, 0) => f.write(d, out),
                _ => {
                    out.push(d.field);
                    f.write(d, out);
                }
            }
        }
        out.push_str(self.terminator);
    }

    fn is_header(&self) -> bool {
        matches!(self.id(), "MSH" | "BHS" | "FHS")
    }
}

/// A decoded HL7 v2 message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub delimiters: Delimiters,
    pub segments: Vec<Segment>,
    /// Whatever followed the last segment terminator (a stray 0x1C in many real files).
    pub trailer: String,
}

impl Message {
    /// Decodes ISO-2022-JP bytes and parses them.
    pub fn decode(bytes: &[u8]) -> Result<Self, Hl7Error> {
        Self::parse(&charset::decode_iso2022jp(bytes)?)
    }

    /// Parses already-decoded text.
    pub fn parse(text: &str) -> Result<Self, Hl7Error> {
        let (d, enc_raw) = read_header(text)?;

        let mut segments = Vec::new();
        let mut rest = text;
        let trailer;
        loop {
            let Some(pos) = rest.find(['\r', '\n']) else {
                if is_trailer(rest) {
                    trailer = rest.to_owned();
                } else {
                    segments.push(parse_segment(rest, "", &d, enc_raw));
                    trailer = String::new();
                }
                break;
            };
            let term = if rest[pos..].starts_with("\r\n") {
                "\r\n"
            } else if rest.as_bytes()[pos] == b'\r' {
                "\r"
            } else {
                "\n"
            };
            segments.push(parse_segment(&rest[..pos], term, &d, enc_raw));
            rest = &rest[pos + term.len()..];
            if rest.is_empty() {
                trailer = String::new();
                break;
            }
        }
        Ok(Self { delimiters: d, segments, trailer })
    }

    /// The message as text, exactly as it was parsed (or built).
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for s in &self.segments {
            s.write(&self.delimiters, &mut out);
        }
        out.push_str(&self.trailer);
        out
    }

    /// The message as ISO-2022-JP bytes.
    pub fn encode(&self) -> Result<Vec<u8>, Hl7Error> {
        charset::encode_iso2022jp(&self.to_text())
    }

    /// The first segment with this ID.
    pub fn segment(&self, id: &str) -> Option<&Segment> {
        self.segments.iter().find(|s| s.id() == id)
    }

    /// Every segment with this ID, in order.
    pub fn segments_named<'a>(&'a self, id: &'a str) -> impl Iterator<Item = &'a Segment> + 'a {
        self.segments.iter().filter(move |s| s.id() == id)
    }

    /// The unescaped value at a path such as `PID-3`, `MSH-9.2` or `PID-5[2].1`; `None` when absent.
    /// A field path without a component gives the first component's first subcomponent.
    pub fn get<'a>(&'a self, path: &FieldPath) -> Option<Cow<'a, str>> {
        let seg =
            self.segments.iter().filter(|s| s.id() == path.segment).nth(path.occurrence.saturating_sub(1))?;
        if seg.is_header() && path.field <= 2 {
            return match path.field {
                1 => Some(Cow::Owned(self.delimiters.field.to_string())),
                2 => Some(Cow::Owned(self.delimiters.encoding_characters())),
                _ => None,
            };
        }
        let field = seg.field(path.field)?;
        let rep = field.0.get(path.repetition.saturating_sub(1))?;
        let comp = rep.0.get(path.component.unwrap_or(1).saturating_sub(1))?;
        let value = comp.0.get(path.subcomponent.unwrap_or(1).saturating_sub(1))?;
        Some(value.text(&self.delimiters))
    }

    /// Like [`Message::get`] with a path written as text; `None` for an invalid path too.
    pub fn value(&self, path: &str) -> Option<Cow<'_, str>> {
        self.get(&path.parse().ok()?)
    }

    /// MSH-9.1 and MSH-9.2, the message type.
    pub fn message_type(&self) -> Option<crate::MessageType> {
        let code = self.value("MSH-9.1")?.into_owned();
        let trigger = self.value("MSH-9.2")?.into_owned();
        Some(crate::MessageType { code, trigger })
    }
}

/// The delimiters that MSH-1 and MSH-2 declare, and MSH-2 as written (it may hold more than the
/// four characters); the error of a text that is no HL7 message.
pub(super) fn read_header(text: &str) -> Result<(Delimiters, &str), Hl7Error> {
    if text.trim_matches(|c: char| c.is_whitespace() || c == '\u{1c}').is_empty() {
        return Err(Hl7Error::Empty);
    }
    if !text.starts_with("MSH") {
        return Err(Hl7Error::NoMsh);
    }
    let mut chars = text[3..].chars();
    let field = chars.next().ok_or(Hl7Error::ShortMsh)?;
    let rest = &text[3 + field.len_utf8()..];
    let enc_raw = &rest[..rest.find(field).unwrap_or(rest.len())];
    let enc: Vec<char> = enc_raw.chars().collect();
    if enc.len() < 4 || enc.contains(&'\r') || enc.contains(&'\n') {
        return Err(Hl7Error::ShortMsh);
    }
    let d = Delimiters { field, component: enc[0], repetition: enc[1], escape: enc[2], subcomponent: enc[3] };
    Ok((d, enc_raw))
}

/// A leftover after the last terminator that is not a segment: control characters and blanks.
fn is_trailer(rest: &str) -> bool {
    rest.chars().all(|c| c == '\u{1c}' || c.is_whitespace())
}

fn parse_segment(line: &str, terminator: &'static str, d: &Delimiters, enc_raw: &str) -> Segment {
    let mut raw_fields = line.split(d.field);
    let id = raw_fields.next().unwrap_or("");
    let mut fields = vec![Field::opaque(id)];
    if matches!(id, "MSH" | "BHS" | "FHS") && line.len() > id.len() {
        fields.push(Field::opaque(&d.field.to_string()));
        // MSH-2 is taken verbatim; it holds the very characters the other fields split on.
        let second = raw_fields.next().unwrap_or("");
        fields.push(Field::opaque(if second == enc_raw { enc_raw } else { second }));
    }
    fields.extend(raw_fields.map(|f| Field::parse(f, d)));
    Segment { fields, terminator }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "MSH|^~\\&|HIS|SEND|GW|RCV|20110701113813.225||RDE^O11^RDE_O11|1|P|2.5||||||~ISO IR87||ISO 2022-1994|SS-MIX2_1.20^SS-MIX2^1.2.392.200250.2.1.100.1.2.120^ISO\rPID|0001||9999013^^^^PI||患者^太郎^^^^^L^I~カンジャ^タロウ^^^^^L^P||19650415|M\r\u{1c}";

    #[test]
    fn parse_then_text_is_identity() {
        let m = Message::parse(SAMPLE).unwrap();
        assert_eq!(m.to_text(), SAMPLE);
        assert_eq!(m.trailer, "\u{1c}");
        assert_eq!(m.segments.len(), 2);
    }

    #[test]
    fn paths_reach_components_and_repetitions() {
        let m = Message::parse(SAMPLE).unwrap();
        assert_eq!(m.value("MSH-1").unwrap(), "|");
        assert_eq!(m.value("MSH-2").unwrap(), "^~\\&");
        assert_eq!(m.value("MSH-9").unwrap(), "RDE");
        assert_eq!(m.value("MSH-9.2").unwrap(), "O11");
        assert_eq!(m.value("MSH-18").unwrap(), "");
        assert_eq!(m.value("MSH-18[2]").unwrap(), "ISO IR87");
        assert_eq!(m.value("PID-3").unwrap(), "9999013");
        assert_eq!(m.value("PID-5[2].2").unwrap(), "タロウ");
        assert_eq!(m.value("PID-8").unwrap(), "M");
        assert!(m.value("PID-30").is_none());
        assert_eq!(m.message_type().unwrap().key(), "RDE^O11");
    }

    #[test]
    fn refuses_non_hl7() {
        assert_eq!(Message::parse("hello"), Err(Hl7Error::NoMsh));
        assert_eq!(Message::parse("\u{1c}"), Err(Hl7Error::Empty));
        assert_eq!(Message::parse("MSH|^~"), Err(Hl7Error::ShortMsh));
    }
}
