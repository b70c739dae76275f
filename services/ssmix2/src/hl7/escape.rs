//! HL7 escape sequences (`\F\ \S\ \T\ \R\ \E\ \Xhh..\ \.br\`).

use std::borrow::Cow;

use super::Delimiters;

/// Resolves escape sequences in a wire value. Unknown sequences are kept verbatim, so no text is lost.
pub fn unescape<'a>(raw: &'a str, d: &Delimiters) -> Cow<'a, str> {
    if !raw.contains(d.escape) {
        return Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(start) = rest.find(d.escape) {
        out.push_str(&rest[..start]);
        let after = &rest[start + d.escape.len_utf8()..];
        let Some(end) = after.find(d.escape) else {
            // A lone escape character: keep it.
            out.push_str(&rest[start..]);
            return Cow::Owned(out);
        };
        let seq = &after[..end];
        match seq {
            "F" => out.push(d.field),
            "S" => out.push(d.component),
            "T" => out.push(d.subcomponent),
            "R" => out.push(d.repetition),
            "E" => out.push(d.escape),
            ".br" => out.push('\n'),
            _ if seq.len() > 1 && seq.starts_with('X') && seq.len() % 2 == 1 => {
                match hex::decode(&seq[1..]) {
                    Ok(bytes) => out.extend(bytes.into_iter().map(char::from)),
                    Err(_) => out.push_str(&rest[start..start + 2 * d.escape.len_utf8() + end]),
                }
            }
            _ => out.push_str(&rest[start..start + 2 * d.escape.len_utf8() + end]),
        }
        rest = &after[end + d.escape.len_utf8()..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Escapes text so that it can stand as one wire value. Line breaks become `\.br\`.
pub fn escape<'a>(text: &'a str, d: &Delimiters) -> Cow<'a, str> {
    let special = |c: char| {
        c == d.field
            || c == d.component
            || c == d.subcomponent
            || c == d.repetition
            || c == d.escape
            || c == '\n'
            || c == '\r'
    };
    if !text.chars().any(special) {
        return Cow::Borrowed(text);
    }
    let e = d.escape;
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            c if c == d.field => out.extend([e, 'F', e]),
            c if c == d.component => out.extend([e, 'S', e]),
            c if c == d.subcomponent => out.extend([e, 'T', e]),
            c if c == d.repetition => out.extend([e, 'R', e]),
            c if c == d.escape => out.extend([e, 'E', e]),
            '\n' => out.extend([e, '.', 'b', 'r', e]),
            '\r' => out.extend([e, 'X', '0', 'D', e]),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separators_round_trip_through_escaping() {
        let d = Delimiters::default();
        let text = "a|b^c&d~e\\f\nline";
        let wire = escape(text, &d);
        assert_eq!(wire, "a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f\\.br\\line");
        assert_eq!(unescape(&wire, &d), text);
    }

    #[test]
    fn hex_and_unknown_sequences() {
        let d = Delimiters::default();
        assert_eq!(unescape("\\X41\\B", &d), "AB");
        assert_eq!(unescape("\\H\\bold\\N\\", &d), "\\H\\bold\\N\\");
        assert_eq!(unescape("trailing\\", &d), "trailing\\");
    }
}
