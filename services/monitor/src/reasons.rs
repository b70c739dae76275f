//! Readable reasons for violation codes, grouped the way operators talk about them: file-name
//! violations, condition-flag violations, message content, and transfer problems.

/// The kind of a violation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    /// The name or its folders (`bad-file-name`, `path-mismatch`).
    FileName,
    /// The condition flag or version history (`flag-history`, `content-conflict`).
    ConditionFlag,
    /// The HL7 message inside the file.
    Content,
    /// Size limits and the store's free-text reasons.
    Transfer,
}

impl Category {
    pub fn label(self) -> &'static str {
        match self {
            Category::FileName => "file-name violation",
            Category::ConditionFlag => "condition-flag violation",
            Category::Content => "message content violation",
            Category::Transfer => "transfer problem",
        }
    }
}

/// The category of a code.
pub fn category(code: &str) -> Category {
    match code {
        "bad-file-name" | "path-mismatch" | "wrong-date-folder" => Category::FileName,
        "flag-history" | "content-conflict" => Category::ConditionFlag,
        "too-large" | "store-reason" => Category::Transfer,
        _ => Category::Content,
    }
}

/// One sentence saying what a code means.
pub fn describe(code: &str) -> &'static str {
    match code {
        "content-conflict" => {
            "different content under a version (name without its condition flag) already stored: \
             a new version needs a new timestamp, or the flag transition that replaces it"
        }
        "too-large" => "the file is larger than the store accepts",
        "store-reason" => "the store's own explanation",
        c => ssmix2::validate::Code::parse(c).map(|c| c.describe()).unwrap_or("unknown code"),
    }
}

/// `code (file-name violation): meaning`.
pub fn readable(code: &str) -> String {
    format!("{code} ({}): {}", category(code).label(), describe(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_name_and_condition_flag_violations_are_named_as_such() {
        assert_eq!(category("bad-file-name"), Category::FileName);
        assert!(readable("path-mismatch").contains("file-name violation"));
        assert!(readable("content-conflict").contains("condition-flag violation"));
        assert!(readable("flag-history").contains("condition-flag violation"));
        assert!(readable("not-iso-2022-jp").contains("ISO-2022-JP"));
    }
}
