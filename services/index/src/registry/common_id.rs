//! The common health ID (健康共通 ID): `KZ` and twelve digits, the last a Luhn check digit, so that a
//! mistyped ID is refused instead of opening another patient. Issued at random, so an ID says nothing
//! about when or where its patient enrolled.

use std::fmt;

use rand::Rng;

use crate::IndexError;

/// A well-formed common health ID.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct CommonId(String);

/// Luhn check digit of `digits`.
fn luhn(digits: &[u8]) -> u8 {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(*d);
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

impl CommonId {
    /// A fresh random ID.
    pub fn random() -> Self {
        let mut rng = rand::rng();
        let mut digits: Vec<u8> = (0..11).map(|_| rng.random_range(0..10u8)).collect();
        digits[0] = rng.random_range(1..10u8);
        digits.push(luhn(&digits));
        Self(format!("KZ{}", digits.iter().map(|d| char::from(b'0' + d)).collect::<String>()))
    }

    /// Parses an ID, checking its shape and check digit.
    pub fn parse(s: &str) -> Result<Self, IndexError> {
        let bad = |reason| IndexError::Invalid { what: "common health ID", value: s.to_owned(), reason };
        let digits = s.strip_prefix("KZ").ok_or_else(|| bad("does not start with KZ"))?;
        if digits.len() != 12 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("must be KZ and 12 digits"));
        }
        let d: Vec<u8> = digits.bytes().map(|b| b - b'0').collect();
        if luhn(&d[..11]) != d[11] {
            return Err(bad("has a wrong check digit"));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CommonId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_ids_parse_and_typos_are_refused() {
        for _ in 0..200 {
            let id = CommonId::random();
            assert_eq!(CommonId::parse(id.as_str()).unwrap(), id);
            // Any single changed digit breaks the check digit.
            let s = id.as_str();
            let pos = 2 + (s.len() - 3) / 2;
            let c = s.as_bytes()[pos];
            let other = if c == b'9' { b'0' } else { c + 1 };
            let mut typo = s.as_bytes().to_vec();
            typo[pos] = other;
            assert!(CommonId::parse(std::str::from_utf8(&typo).unwrap()).is_err());
        }
        assert!(CommonId::parse("KZ12345").is_err());
        assert!(CommonId::parse("XX123456789012").is_err());
    }
}
