//! The mesh policy: types, loading with positions, and validation.

pub mod document;
pub mod names;
pub mod source;
pub mod validate;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

pub use document::{Policy, Proto, SiteKind};
pub use names::{LanInterface, PublicKey, SegmentName, SiteName};
use source::SourceIndex;
pub use validate::SegmentView;

/// One reason a policy file is rejected, with its place in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyIssue {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    /// Dotted path of the node (`sites[3].number`); empty for syntax errors.
    pub field: String,
    pub reason: String,
}

impl std::fmt::Display for PolicyIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}: ", self.file.display(), self.line, self.column)?;
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.reason)
    }
}

/// A policy that passed every check, with its derived memberships.
#[derive(Debug, Clone)]
pub struct ValidPolicy {
    policy: Policy,
    members: BTreeMap<SegmentName, BTreeSet<SiteName>>,
}

impl ValidPolicy {
    pub fn policy(&self) -> &Policy {
        &self.policy
    }
    /// Member sites of a segment or closed group.
    pub fn members(&self, segment: &SegmentName) -> Option<&BTreeSet<SiteName>> {
        self.members.get(segment)
    }
    pub fn segments(&self) -> Vec<SegmentView> {
        SegmentView::all(&self.policy)
    }
    pub fn site(&self, name: &SiteName) -> Option<&document::Site> {
        self.policy.sites.iter().find(|s| &s.name == name)
    }
    /// Validate an in-memory policy (problems carry paths but no file positions).
    pub fn new(policy: Policy) -> Result<Self, Vec<validate::Problem>> {
        let problems = validate::check(&policy);
        if !problems.is_empty() {
            return Err(problems);
        }
        let members = validate::memberships(&policy);
        Ok(Self { policy, members })
    }
}

/// Parse and validate policy text; `file` only labels the issues.
pub fn parse(text: &str, file: &Path) -> Result<ValidPolicy, Vec<PolicyIssue>> {
    parse_with(text, file, |_| Vec::new())
}

/// Like [`parse`], but `prepare` may adjust the parsed document before validation and report
/// problems of its own (the centre registry fills in enrolled keys this way). All problems
/// get file positions the same way.
pub fn parse_with(
    text: &str,
    file: &Path,
    prepare: impl FnOnce(&mut Policy) -> Vec<validate::Problem>,
) -> Result<ValidPolicy, Vec<PolicyIssue>> {
    let index = SourceIndex::build(text);
    let mut policy: Policy = serde_norway::from_str(text).map_err(|e| {
        let (line, column) = e.location().map(|l| (l.line(), l.column())).unwrap_or((1, 1));
        let reason = strip_location(&e.to_string());
        let at = relocate(&index, &reason, source::Position { line, column });
        vec![PolicyIssue {
            file: file.to_path_buf(),
            line: at.line,
            column: at.column,
            field: String::new(),
            reason,
        }]
    })?;
    // serde keeps the last of two equal map keys (a segment pasted twice, `lan: {reference: a,
    // reference: b}`): refuse them instead of losing the first definition.
    if !index.duplicates().is_empty() {
        return Err(index
            .duplicates()
            .iter()
            .map(|d| PolicyIssue {
                file: file.to_path_buf(),
                line: d.at.line,
                column: d.at.column,
                field: d.path.to_string(),
                reason: format!("duplicate key {:?} (first at line {})", d.key, d.first_line),
            })
            .collect());
    }
    let extra = prepare(&mut policy);
    let checked = if extra.is_empty() {
        ValidPolicy::new(policy)
    } else {
        let mut all = extra;
        all.extend(validate::check(&policy));
        Err(all)
    };
    checked.map_err(|problems| {
        problems
            .into_iter()
            .map(|p| {
                let mut pos = index.locate(&p.path);
                let mut path = p.path;
                if let Some(other) = p.other {
                    let o = index.locate(&other);
                    if (o.line, o.column) > (pos.line, pos.column) {
                        pos = o;
                        path = other;
                    }
                }
                PolicyIssue {
                    file: file.to_path_buf(),
                    line: pos.line,
                    column: pos.column,
                    field: path.to_string(),
                    reason: p.reason,
                }
            })
            .collect()
    })
}

/// Where the value a serde error quotes sits. A value checked by its type's constructor (a
/// name, a key, a CIDR, a map key) fails with the position of its enclosing mapping or
/// sequence; its message names that node's path and the bad value in quotes
/// (`sites[3].keys: invalid WireGuard public key "notakey": ...`), so find that value there.
fn relocate(index: &SourceIndex, reason: &str, reported: source::Position) -> source::Position {
    let is_path =
        |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.[]".contains(&b));
    let (under, rest) = match reason.split_once(": ") {
        Some((p, rest)) if is_path(p) => (p, rest),
        _ => ("", reason),
    };
    quoted(rest).and_then(|bad| index.find_scalar(under, &bad, reported)).unwrap_or(reported)
}

/// The first string in Rust's debug quoting (`"a\"b"`) in `text`, unescaped.
fn quoted(text: &str) -> Option<String> {
    let mut chars = text[text.find('"')? + 1..].chars();
    let mut out = String::new();
    loop {
        match chars.next()? {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                '0' => out.push('\0'),
                'u' => {
                    let hex: String = chars.by_ref().skip(1).take_while(|&c| c != '}').collect();
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                }
                c => out.push(c),
            },
            c => out.push(c),
        }
    }
}

/// serde_norway appends " at line L column C"; we print the position first instead.
fn strip_location(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// A policy file's bytes as text; bytes that are not UTF-8 (a Latin-1 comment) are an issue
/// at the first bad byte.
pub fn decode(bytes: Vec<u8>, file: &Path) -> Result<String, PolicyIssue> {
    String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let good = &e.as_bytes()[..valid];
        let line_start = good.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        PolicyIssue {
            file: file.to_path_buf(),
            line: good.iter().filter(|&&b| b == b'\n').count() + 1,
            // Valid up to here, so the line's start decodes.
            column: std::str::from_utf8(&good[line_start..]).map_or(1, |s| s.chars().count() + 1),
            field: String::new(),
            reason: format!("byte 0x{:02x} is not UTF-8; save the policy as UTF-8", e.as_bytes()[valid]),
        }
    })
}

/// Read, parse and validate a policy file.
pub fn load(path: &Path) -> Result<ValidPolicy, crate::error::Error> {
    let bytes =
        std::fs::read(path).map_err(|source| crate::error::Error::Io { path: path.to_path_buf(), source })?;
    let text = decode(bytes, path).map_err(|i| crate::error::Error::Policy(vec![i]))?;
    parse(&text, path).map_err(crate::error::Error::Policy)
}
