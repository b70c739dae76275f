//! Segments built by field number, so layouts read like the guideline's tables instead of runs of `|`.

/// A segment under construction: `fields[n]` is HL7 field `n`, in wire form.
#[derive(Debug, Clone)]
pub struct Seg {
    id: &'static str,
    fields: Vec<String>,
}

impl Seg {
    pub fn new(id: &'static str) -> Self {
        Self { id, fields: vec![String::new()] }
    }

    /// Sets field `n` (1-based) to a wire value (components already joined with `^`).
    pub fn f(mut self, n: usize, value: impl Into<String>) -> Self {
        if self.fields.len() <= n {
            self.fields.resize(n + 1, String::new());
        }
        self.fields[n] = value.into();
        self
    }

    pub fn id(&self) -> &'static str {
        self.id
    }

    /// Field `n` as set (empty when never set).
    pub fn get(&self, n: usize) -> &str {
        self.fields.get(n).map_or("", String::as_str)
    }

    /// Appends the segment and its CR terminator. For MSH, fields 1 and 2 are the separators.
    pub fn write(&self, out: &mut String) {
        out.push_str(self.id);
        if self.id == "MSH" {
            out.push_str("|^~\\&");
            for f in self.fields.iter().skip(3) {
                out.push('|');
                out.push_str(f);
            }
        } else {
            for f in self.fields.iter().skip(1) {
                out.push('|');
                out.push_str(f);
            }
        }
        out.push('\r');
    }
}

/// Joins segments into message text.
pub fn text(segs: &[Seg]) -> String {
    let mut out = String::with_capacity(segs.len() * 120);
    for s in segs {
        s.write(&mut out);
    }
    out
}

/// Escapes free text for a wire value (names and addresses never need it, comments might).
pub fn esc(s: &str) -> String {
    ssmix2::hl7::escape(s, &ssmix2::hl7::Delimiters::default()).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_land_at_their_numbers() {
        let msh = Seg::new("MSH").f(3, "HIS").f(9, "ADT^A08^ADT_A01");
        let pid = Seg::new("PID").f(1, "0001").f(3, "123^^^^PI");
        assert_eq!(text(&[msh, pid]), "MSH|^~\\&|HIS||||||ADT^A08^ADT_A01\rPID|0001||123^^^^PI\r");
    }
}
