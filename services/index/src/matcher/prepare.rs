//! Demographics normalized once, so that comparing two records does no text work beyond distances.

use serde::{Deserialize, Serialize};

use crate::Demographics;
use crate::Sex;
use crate::normalize::{NormalizedAddress, fold_kana, fold_kanji_name, normalize_address, voiceless_key};

/// A record ready for comparison: every text field folded by [`crate::normalize`]. Empty strings
/// mean "not recorded".
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Prepared {
    pub family_kanji: String,
    pub given_kanji: String,
    pub family_kana: String,
    pub given_kana: String,
    pub birth_date: Option<String>,
    pub sex: Option<Sex>,
    pub address: NormalizedAddress,
    /// Digits only.
    pub phone: String,
    /// [`voiceless_key`] of the readings and the address's canonical form, computed once.
    pub family_kana_key: String,
    pub given_kana_key: String,
    pub address_canonical: String,
}

impl Prepared {
    pub fn new(d: &Demographics) -> Self {
        let address = normalize_address(&d.address);
        Self {
            family_kanji: fold_kanji_name(&d.family_kanji),
            given_kanji: fold_kanji_name(&d.given_kanji),
            family_kana: fold_kana(&d.family_kana),
            given_kana: fold_kana(&d.given_kana),
            birth_date: d.birth_date.clone(),
            sex: d.sex,
            address_canonical: address.canonical(),
            address,
            phone: crate::demographics::phone_digits(&d.phone),
            family_kana_key: voiceless_key(&d.family_kana),
            given_kana_key: voiceless_key(&d.given_kana),
        }
    }

    /// Blocking keys: records that share any key are compared. Each key is tagged with its rule so
    /// keys of different rules never collide.
    pub fn blocking_keys(&self) -> Vec<String> {
        let mut keys = Vec::new();
        if let Some(b) = &self.birth_date {
            keys.push(format!("{}:{b}", BlockingRule::BirthDate.tag()));
        }
        if !self.family_kana.is_empty() && !self.given_kana.is_empty() {
            keys.push(format!(
                "{}:{}|{}",
                BlockingRule::KanaName.tag(),
                self.family_kana_key,
                self.given_kana_key
            ));
        }
        if !self.family_kanji.is_empty() && !self.given_kanji.is_empty() {
            keys.push(format!(
                "{}:{}|{}",
                BlockingRule::KanjiName.tag(),
                self.family_kanji,
                self.given_kanji
            ));
        }
        if !self.address.numbers.is_empty() && !self.given_kana.is_empty() {
            keys.push(format!(
                "{}:{}|{}",
                BlockingRule::AddressGiven.tag(),
                self.address_canonical,
                self.given_kana_key
            ));
        }
        keys
    }
}

/// The ways candidate pairs are found. Each rule fixes some comparisons to agreement, so EM cannot
/// learn their m probabilities from its pairs; [`BlockingRule::fixes`] says which.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BlockingRule {
    /// Same birth date.
    BirthDate,
    /// Same family and given reading, voicing marks ignored.
    KanaName,
    /// Same family and given kanji name (old forms folded).
    KanjiName,
    /// Same address (locality and numbers) and given reading: catches a birth-date typo together with
    /// a changed family name.
    AddressGiven,
}

impl BlockingRule {
    pub const ALL: [BlockingRule; 4] = [Self::BirthDate, Self::KanaName, Self::KanjiName, Self::AddressGiven];

    pub fn tag(self) -> &'static str {
        match self {
            Self::BirthDate => "dob",
            Self::KanaName => "kana",
            Self::KanjiName => "kanji",
            Self::AddressGiven => "addr",
        }
    }

    /// The rule a key was made by.
    pub fn of_key(key: &str) -> Option<Self> {
        let tag = key.split(':').next()?;
        Self::ALL.into_iter().find(|r| r.tag() == tag)
    }

    /// The comparisons this rule's pairs (nearly) always agree on, for matches and non-matches alike.
    pub fn fixes(self) -> &'static [super::Field] {
        use super::Field;
        match self {
            Self::BirthDate => &[Field::BirthDate],
            // Given names are gendered, so pairs sharing one mostly share sex too.
            Self::KanaName | Self::KanjiName => &[Field::FamilyName, Field::GivenName, Field::Sex],
            Self::AddressGiven => &[Field::Address, Field::GivenName, Field::Sex],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spelling_variants_share_blocking_keys() {
        let a = Demographics {
            family_kanji: "髙橋".into(),
            given_kanji: "翔太".into(),
            family_kana: "タカハシ".into(),
            given_kana: "ショウタ".into(),
            birth_date: Some("19900101".into()),
            sex: Some(Sex::Male),
            address: "宮城県仙台市青葉区一番町一丁目２番３号".into(),
            phone: String::new(),
        };
        let b = Demographics {
            family_kanji: "高橋".into(),
            given_kanji: "翔太".into(),
            family_kana: "ﾀｶﾊｼ".into(),
            given_kana: "しようた".into(),
            birth_date: Some("19900110".into()),
            sex: Some(Sex::Male),
            address: "仙台市青葉区一番町1-2-3".into(),
            phone: String::new(),
        };
        let (ka, kb) = (Prepared::new(&a).blocking_keys(), Prepared::new(&b).blocking_keys());
        let shared: Vec<_> = ka.iter().filter(|k| kb.contains(k)).collect();
        assert_eq!(shared.len(), 3, "{ka:?} {kb:?}");
        assert!(ka.iter().all(|k| BlockingRule::of_key(k).is_some()));
    }
}
