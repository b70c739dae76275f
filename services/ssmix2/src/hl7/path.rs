//! Field paths in the usual HL7 notation: `SEG[occ]-field[rep].component.subcomponent`.

use std::fmt;
use std::str::FromStr;

/// A place in a message, such as `PID-5[2].1` (second repetition of PID-5, first component).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldPath {
    pub segment: String,
    /// Which occurrence of the segment, from 1.
    pub occurrence: usize,
    pub field: usize,
    /// Which repetition, from 1.
    pub repetition: usize,
    pub component: Option<usize>,
    pub subcomponent: Option<usize>,
}

impl FieldPath {
    /// `SEG-field` for the first occurrence and repetition.
    pub fn new(segment: &str, field: usize) -> Self {
        Self {
            segment: segment.to_owned(),
            occurrence: 1,
            field,
            repetition: 1,
            component: None,
            subcomponent: None,
        }
    }

    pub fn occurrence(mut self, n: usize) -> Self {
        self.occurrence = n;
        self
    }

    pub fn repetition(mut self, n: usize) -> Self {
        self.repetition = n;
        self
    }

    pub fn component(mut self, n: usize) -> Self {
        self.component = Some(n);
        self
    }
}

/// Why a field path could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid field path {0:?} (expected e.g. PID-5[2].1)")]
pub struct BadFieldPath(pub String);

fn bracketed(s: &str) -> Result<(&str, usize), ()> {
    match s.find('[') {
        None => Ok((s, 1)),
        Some(i) if s.ends_with(']') => {
            let n: usize = s[i + 1..s.len() - 1].parse().map_err(|_| ())?;
            if n == 0 { Err(()) } else { Ok((&s[..i], n)) }
        }
        Some(_) => Err(()),
    }
}

impl FromStr for FieldPath {
    type Err = BadFieldPath;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadFieldPath(s.to_owned());
        let (seg, rest) = s.split_once('-').ok_or_else(bad)?;
        let (segment, occurrence) = bracketed(seg).map_err(|_| bad())?;
        if segment.len() != 3 || !segment.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(bad());
        }
        let mut parts = rest.split('.');
        let (field, repetition) = bracketed(parts.next().ok_or_else(bad)?).map_err(|_| bad())?;
        let field: usize = field.parse().map_err(|_| bad())?;
        let num = |p: Option<&str>| -> Result<Option<usize>, BadFieldPath> {
            p.map(|x| x.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(bad)).transpose()
        };
        let component = num(parts.next())?;
        let subcomponent = num(parts.next())?;
        if parts.next().is_some() || field == 0 {
            return Err(bad());
        }
        Ok(Self { segment: segment.to_owned(), occurrence, field, repetition, component, subcomponent })
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.segment)?;
        if self.occurrence > 1 {
            write!(f, "[{}]", self.occurrence)?;
        }
        write!(f, "-{}", self.field)?;
        if self.repetition > 1 {
            write!(f, "[{}]", self.repetition)?;
        }
        if let Some(c) = self.component {
            write!(f, ".{c}")?;
        }
        if let Some(s) = self.subcomponent {
            write!(f, ".{s}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_and_print() {
        for p in ["PID-3", "PID-5[2].1", "OBX[3]-5", "MSH-21.4", "ORC-21.1.2"] {
            assert_eq!(p.parse::<FieldPath>().unwrap().to_string(), p);
        }
        for bad in ["PID", "PID-0", "PI-3", "PID-3.0", "PID-3[0]", "PID-x"] {
            assert!(bad.parse::<FieldPath>().is_err(), "{bad}");
        }
    }
}
