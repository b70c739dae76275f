//! What counts as an HL7 NM value.

/// True when `s` is an HL7 v2.5 NM value: an optional leading `+` or `-`, ASCII digits and at most
/// one decimal point, with at least one digit (`12`, `-0.5`, `.5`, `5.`). The HL7 null `""` counts
/// as a value too.
///
/// The NHO validator uses the Python regex `^(\-|\+)?\.?\d+\.?\d*\Z`, which also accepts full-width
/// and other Unicode digits and two decimal points (`.5.5`); HL7 allows neither.
pub fn is_numeric(s: &str) -> bool {
    if s == "\"\"" {
        return true;
    }
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let mut digits = 0;
    let mut points = 0;
    for b in body.bytes() {
        match b {
            b'0'..=b'9' => digits += 1,
            b'.' => points += 1,
            _ => return false,
        }
    }
    digits > 0 && points <= 1
}

#[cfg(test)]
mod tests {
    use super::is_numeric;

    #[test]
    fn hl7_numbers_are_numeric() {
        for s in ["0", "12", "-14", "+3", "2.505", ".5", "5.", "-.5", "\"\""] {
            assert!(is_numeric(s), "{s}");
        }
    }

    #[test]
    fn everything_else_is_not() {
        for s in
            ["", "-", ".", "+.", "ccc", "1e5", "1,000", ".5.5", "1.2.3", "５", "12 ", " 12", "番号", "1-2"]
        {
            assert!(!is_numeric(s), "{s:?}");
        }
    }
}
