//! Reading the parts of a field that [`SegmentView::component`] leaves out: every repetition,
//! and the subcomponents of a component. Wire text is split here and each piece unescaped.

use ssmix2::hl7::{Delimiters, SegmentView, unescape};

/// The repetitions of field `n` in wire form (none when the field is absent or empty).
pub fn reps<'a>(seg: &SegmentView<'a>, n: usize, d: &Delimiters) -> Vec<&'a str> {
    match seg.field(n) {
        Some(f) if !f.is_empty() => f.split(d.repetition).collect(),
        _ => Vec::new(),
    }
}

/// Component `c` (1-based) of one repetition, in wire form.
fn raw_comp<'a>(rep: &'a str, d: &Delimiters, c: usize) -> &'a str {
    rep.split(d.component).nth(c.saturating_sub(1)).unwrap_or("")
}

/// Subcomponent `s` of component `c` of one repetition, unescaped.
pub fn sub(rep: &str, d: &Delimiters, c: usize, s: usize) -> String {
    let comp = raw_comp(rep, d, c);
    unescape(comp.split(d.subcomponent).nth(s.saturating_sub(1)).unwrap_or(""), d).into_owned()
}

/// Component `c` of one repetition with all its subcomponents, each unescaped, joined by `&`
/// (`58368&7`, `R 振幅&V5`): a code or name whose qualifier sits in a subcomponent stays whole.
pub fn whole(rep: &str, d: &Delimiters, c: usize) -> String {
    let comp = raw_comp(rep, d, c);
    if !comp.contains(d.subcomponent) {
        return unescape(comp, d).into_owned();
    }
    comp.split(d.subcomponent).map(|p| unescape(p, d)).collect::<Vec<_>>().join("&")
}

/// [`whole`] of the first repetition of field `n`.
pub fn whole_first(seg: &SegmentView, n: usize, d: &Delimiters, c: usize) -> String {
    seg.field(n).and_then(|f| f.split(d.repetition).next()).map(|r| whole(r, d, c)).unwrap_or_default()
}

/// A unit: the code (component 1), or the text (component 2) when a sender gives only that; for a
/// CE held in subcomponents (`MG&ミリグラム&MR9P`, RXE-19.2) the same from its subcomponents.
pub fn unit(seg: &SegmentView, n: usize, c: usize, d: &Delimiters) -> String {
    let Some(rep) = seg.field(n).and_then(|f| f.split(d.repetition).next()) else { return String::new() };
    if c == 1 {
        let code = sub(rep, d, 1, 1);
        if code.is_empty() { sub(rep, d, 2, 1) } else { code }
    } else {
        let code = sub(rep, d, c, 1);
        if code.is_empty() { sub(rep, d, c, 2) } else { code }
    }
}
