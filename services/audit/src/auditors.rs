//! Auditor credentials: one shared token (`auditor_token_file`, the auditor is then named
//! `auditor`) and/or one token per auditor (`auditor_tokens_file`, lines `name token`), so that the
//! events recording auditors' searches name the person whose token was used.

use crate::config::{read_private, read_token};
use crate::error::{AuditError, Result};
use std::path::Path;

/// The name under which the single `auditor_token_file` token (or no token) searches.
pub const SHARED_NAME: &str = "auditor";

/// Known auditor tokens and whose they are.
#[derive(Clone)]
pub struct AuditorTokens {
    /// (name, token).
    entries: Vec<(String, String)>,
}

impl std::fmt::Debug for AuditorTokens {
    // Never print the tokens.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.entries.iter().map(|(n, _)| n)).finish()
    }
}

fn valid_name(n: &str) -> bool {
    n.len() <= 64 && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b))
}

impl AuditorTokens {
    /// Read the configured files (mode 0600); `None` when neither is set (no check, loopback only).
    pub fn load(single: Option<&Path>, per_auditor: Option<&Path>) -> Result<Option<Self>> {
        if single.is_none() && per_auditor.is_none() {
            return Ok(None);
        }
        let mut entries = Vec::new();
        if let Some(p) = single {
            entries.push((SHARED_NAME.to_string(), read_token(p)?));
        }
        if let Some(p) = per_auditor {
            for (name, token) in Self::parse(&read_private("auditor tokens file", p)?, p)? {
                if entries.iter().any(|(_, t)| *t == token) {
                    return Err(bad(
                        p,
                        format!("auditor {name}'s token is also the auditor_token_file token"),
                    ));
                }
                entries.push((name, token));
            }
        }
        Ok(Some(AuditorTokens { entries }))
    }

    /// Parse `name token` lines (`#` comments and blank lines skipped); errors name file and line.
    pub fn parse(text: &str, path: &Path) -> Result<Vec<(String, String)>> {
        let mut out: Vec<(String, String)> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = |reason: String| bad(path, format!("line {}: {reason}", i + 1));
            let mut parts = line.split_whitespace();
            let (Some(name), Some(token), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(at("expected `name token` (two fields)".into()));
            };
            if !valid_name(name) {
                return Err(at(format!("auditor name {name:?} is not 1..=64 of [A-Za-z0-9._@-]")));
            }
            if name == SHARED_NAME {
                return Err(at(format!("{SHARED_NAME:?} is the name of the auditor_token_file token")));
            }
            if out.iter().any(|(n, _)| n == name) {
                return Err(at(format!("auditor {name} is listed twice")));
            }
            if out.iter().any(|(_, t)| t == token) {
                return Err(at(format!("auditor {name}'s token is another auditor's token")));
            }
            out.push((name.to_string(), token.to_string()));
        }
        if out.is_empty() {
            return Err(bad(path, "no `name token` line".into()));
        }
        Ok(out)
    }

    /// The auditor whose token `presented` is; compares against every token in constant time.
    pub fn name_of(&self, presented: &str) -> Option<&str> {
        let mut found = None;
        for (name, token) in &self.entries {
            if same(presented, token) {
                found = Some(name.as_str());
            }
        }
        found
    }
}

fn bad(path: &Path, reason: String) -> AuditError {
    AuditError::Config { path: path.into(), reason }
}

/// Constant-time comparison of tokens (length aside).
pub(crate) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_name_auditors_and_errors_name_file_and_line() {
        let p = Path::new("auditors");
        let t = AuditorTokens::parse("# who\n\ntanaka  tok-1\nsuzuki tok-2\n", p).unwrap();
        assert_eq!(t, vec![("tanaka".into(), "tok-1".into()), ("suzuki".into(), "tok-2".into())]);
        for (text, want) in [
            ("tanaka\n", "line 1: expected `name token`"),
            ("a t1\nb t2 x\n", "line 2: expected"),
            ("a t1\na t2\n", "line 2: auditor a is listed twice"),
            ("a t1\nb t1\n", "line 2: auditor b's token is another"),
            ("auditor t1\n", "line 1: \"auditor\" is the name"),
            ("a/b t1\n", "line 1: auditor name"),
            ("# none\n", "no `name token` line"),
        ] {
            let e = AuditorTokens::parse(text, p).unwrap_err().to_string();
            assert!(e.contains("auditors") && e.contains(want), "{text:?}: {e}");
        }
        let tokens = AuditorTokens { entries: t };
        assert_eq!(tokens.name_of("tok-2"), Some("suzuki"));
        assert_eq!(tokens.name_of("tok-3"), None);
    }
}
