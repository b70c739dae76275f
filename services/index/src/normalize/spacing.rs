//! Spaces: registers separate family and given names with a half-width space, a full-width space
//! (U+3000), several of either, or none at all.

/// True for the spaces registers put between name parts: ASCII and ideographic spaces, tabs and the
/// other Unicode white space.
pub fn is_space(c: char) -> bool {
    c.is_whitespace() || c == '\u{3000}'
}

/// `s` without any spaces.
pub fn strip_spaces(s: &str) -> String {
    s.chars().filter(|c| !is_space(*c)).collect()
}

/// `s` with every run of spaces made one ASCII space, and none at the ends.
pub fn collapse_spaces(s: &str) -> String {
    s.split(is_space).filter(|p| !p.is_empty()).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_widths_of_space_are_spaces() {
        assert_eq!(strip_spaces("佐藤　太郎"), "佐藤太郎");
        assert_eq!(strip_spaces(" 佐藤 \t太郎 "), "佐藤太郎");
        assert_eq!(collapse_spaces("　佐藤　 　太郎 "), "佐藤 太郎");
    }
}
