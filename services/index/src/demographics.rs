//! The demographics linkage compares, as SS-MIX2 messages carry them in PID:
//! PID-5 (kanji name with type `L^I`, kana reading with `L^P`), PID-7 birth date, PID-8 sex,
//! PID-11 address.

use serde::{Deserialize, Serialize};
use ssmix2::hl7::Message;

use crate::IndexError;
use crate::normalize::spacing::{collapse_spaces, is_space};

/// A patient as one facility knows them: the facility and its local patient ID.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RecordKey {
    pub facility: String,
    pub local_id: String,
}

impl RecordKey {
    /// A key whose parts are non-empty and free of control characters.
    pub fn new(facility: &str, local_id: &str) -> Result<Self, IndexError> {
        for (what, v) in [("facility", facility), ("local patient ID", local_id)] {
            if v.trim().is_empty() {
                return Err(IndexError::Invalid { what, value: v.to_owned(), reason: "is empty" });
            }
            if v.chars().any(char::is_control) {
                return Err(IndexError::Invalid {
                    what,
                    value: v.to_owned(),
                    reason: "contains a control character",
                });
            }
        }
        Ok(Self { facility: facility.to_owned(), local_id: local_id.to_owned() })
    }
}

impl std::fmt::Display for RecordKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.facility, self.local_id)
    }
}

/// Administrative sex (HL7 table 0001).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Sex {
    Male,
    Female,
    Other,
}

impl Sex {
    /// `M`, `F`, `O`; `U`, `A`, `N` and empty give `None` (unknown takes no part in matching).
    pub fn from_hl7(code: &str) -> Option<Self> {
        match code.trim() {
            "M" => Some(Self::Male),
            "F" => Some(Self::Female),
            "O" => Some(Self::Other),
            _ => None,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Self::Male => "M",
            Self::Female => "F",
            Self::Other => "O",
        }
    }
}

/// The demographics of one patient record, as written (normalization happens in the matcher).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Demographics {
    pub family_kanji: String,
    pub given_kanji: String,
    pub family_kana: String,
    pub given_kana: String,
    /// `YYYYMMDD`, digits only (not checked against the calendar: typos give impossible dates too).
    pub birth_date: Option<String>,
    pub sex: Option<Sex>,
    pub address: String,
    /// Telephone number, digits only.
    pub phone: String,
}

/// The digits of a telephone number (`090-1234-5678` → `09012345678`).
pub fn phone_digits(s: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    s.nfkc().filter(char::is_ascii_digit).collect()
}

/// `(family, given)` from the first two components, splitting a whole name written into the family
/// component (`佐藤　太郎^`) at its first space.
fn name_parts(family: &str, given: &str) -> (String, String) {
    let (family, given) = (collapse_spaces(family), collapse_spaces(given));
    if given.is_empty()
        && let Some((f, g)) = family.split_once(is_space)
    {
        return (f.to_owned(), g.to_owned());
    }
    (family, given)
}

/// `YYYYMMDD` from a PID-7 value (`YYYYMMDD`, optionally followed by a time, or `YYYY/MM/DD`,
/// `YYYY-MM-DD`, `YYYY.MM.DD` as some vendors write it). `None` for anything else, including
/// HL7's coarser `YYYY` and `YYYYMM`: the comparison and blocking work on whole dates only.
pub fn parse_birth_date(value: &str) -> Option<String> {
    let value = value.trim();
    let digits: String = value.chars().take(8).collect();
    if digits.len() == 8 && digits.bytes().all(|b| b.is_ascii_digit()) {
        return Some(digits);
    }
    let b = value.as_bytes();
    let sep = *b.get(4)?;
    let separated = b.len() == 10
        && matches!(sep, b'/' | b'-' | b'.')
        && b[7] == sep
        && [0..4, 5..7, 8..10].into_iter().all(|r| b[r].iter().all(u8::is_ascii_digit));
    separated.then(|| [&value[..4], &value[5..7], &value[8..]].concat())
}

impl Demographics {
    /// Reads PID-5, PID-7, PID-8 and PID-11 from a message; `source_name` (a file name) goes into
    /// errors. A kanji name is the PID-5 repetition with representation `I`, the reading the one
    /// with `P`; a first repetition with no representation code counts as kanji (never an `A` one).
    /// A PID-7 that [`parse_birth_date`] cannot read gives no birth date.
    pub fn from_message(msg: &Message, source_name: &str) -> Result<Self, IndexError> {
        let pid =
            msg.segment("PID").ok_or_else(|| IndexError::NoPid { source_name: source_name.to_owned() })?;
        let reps = pid.field(5).map_or(0, |f| f.0.len());
        let mut d = Demographics::default();
        let text = |path: String| msg.value(&path).map(|v| v.into_owned()).unwrap_or_default();
        for n in 1..=reps {
            let (family, given) = name_parts(&text(format!("PID-5[{n}].1")), &text(format!("PID-5[{n}].2")));
            if family.is_empty() && given.is_empty() {
                continue;
            }
            let repr = text(format!("PID-5[{n}].8"));
            // Only a first repetition with no code at all stands in for the kanji name: an `A`
            // (alphabetic, romaji) one first would hide the `I` repetition that follows.
            let slot = match repr.trim() {
                "P" => (&mut d.family_kana, &mut d.given_kana),
                "I" => (&mut d.family_kanji, &mut d.given_kanji),
                "" if n == 1 => (&mut d.family_kanji, &mut d.given_kanji),
                _ => continue,
            };
            if slot.0.is_empty() && slot.1.is_empty() {
                *slot.0 = family;
                *slot.1 = given;
            }
        }
        // A PID-7 that is no whole date counts as not recorded: one odd value must not keep the
        // patient (and the pass reading them) from linkage.
        let birth = text("PID-7".into());
        d.birth_date = parse_birth_date(&birth);
        if d.birth_date.is_none() && !birth.trim().is_empty() {
            tracing::debug!(source = source_name, pid7 = %birth, "PID-7 is not a whole date: birth date left out");
        }
        d.sex = Sex::from_hl7(&text("PID-8".into()));
        // PID-11: street (1), other designation (2), city (3), state (4), zip (5). Japanese systems
        // put the whole address in one of 1 or 3; join what is there, prefecture first, so none is
        // lost. The postcode is left out: the address comparison works on the written address.
        // Kizuna's generator and several vendors put the whole address in XAD-8 instead.
        let addr: Vec<String> = [4, 3, 1, 2]
            .iter()
            .map(|c| text(format!("PID-11.{c}")))
            .filter(|s| !s.trim().is_empty())
            .collect();
        d.address = if addr.is_empty() { text("PID-11.8".into()).trim().to_owned() } else { addr.join(" ") };
        // PID-13: XTN-12 is the unformatted number, XTN-1 the formatted one.
        let mut phone = text("PID-13.12".into());
        if phone.trim().is_empty() {
            phone = text("PID-13.1".into());
        }
        d.phone = phone_digits(&phone);
        Ok(d)
    }

    /// Decodes ISO-2022-JP bytes and reads them as [`Demographics::from_message`] does.
    pub fn from_bytes(bytes: &[u8], source_name: &str) -> Result<Self, IndexError> {
        let msg = Message::decode(bytes)
            .map_err(|source| IndexError::Hl7 { source_name: source_name.to_owned(), source })?;
        Self::from_message(&msg, source_name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADT: &str = "MSH|^~\\&|HIS|F001|KIZUNA|CENTRE|20240401120000||ADT^A08|1|P|2.5||||||~ISO IR87||ISO 2022-1994\r\
        PID|||0000012345^^^^PI||佐藤^太郎^^^^^L^I~サトウ^タロウ^^^^^L^P||19800131|M|||^^仙台市青葉区一番町1-2-3^^980-0811^JPN^H\r";

    #[test]
    fn pid_fields_are_read_by_representation() {
        let msg = Message::parse(ADT).unwrap();
        let d = Demographics::from_message(&msg, "adt.hl7").unwrap();
        assert_eq!((d.family_kanji.as_str(), d.given_kanji.as_str()), ("佐藤", "太郎"));
        assert_eq!((d.family_kana.as_str(), d.given_kana.as_str()), ("サトウ", "タロウ"));
        assert_eq!(d.birth_date.as_deref(), Some("19800131"));
        assert_eq!(d.sex, Some(Sex::Male));
        assert_eq!(d.address, "仙台市青葉区一番町1-2-3");
        assert_eq!(d.phone, "");
    }

    #[test]
    fn address_in_xad8_and_phone_in_xtn12_are_read() {
        let text = ADT.replace(
            "|||^^仙台市青葉区一番町1-2-3^^980-0811^JPN^H\r",
            "|||^^^^980-0811^JPN^H^仙台市青葉区一番町1-2-3||^PRN^PH^^^^^^^^^090-1234-5678\r",
        );
        let d = Demographics::from_message(&Message::parse(&text).unwrap(), "x").unwrap();
        assert_eq!(d.address, "仙台市青葉区一番町1-2-3");
        assert_eq!(d.phone, "09012345678");
    }

    #[test]
    fn reading_first_and_whole_name_in_one_component() {
        let text = ADT.replace(
            "佐藤^太郎^^^^^L^I~サトウ^タロウ^^^^^L^P",
            "サトウ　タロウ^^^^^^L^P~佐藤　太郎^^^^^^L^I",
        );
        let d = Demographics::from_message(&Message::parse(&text).unwrap(), "x").unwrap();
        assert_eq!((d.family_kanji.as_str(), d.given_kanji.as_str()), ("佐藤", "太郎"));
        assert_eq!((d.family_kana.as_str(), d.given_kana.as_str()), ("サトウ", "タロウ"));
    }

    #[test]
    fn an_odd_birth_date_is_missing_or_read_with_its_separators() {
        for (pid7, want) in [
            ("19800131120000", Some("19800131")),
            ("1980/01/31", Some("19800131")),
            ("1980-01-31", Some("19800131")),
            ("1980", None),
            ("198001", None),
            ("1980-01", None),
            ("S55.1.31", None),
            ("1980/1/31", None),
        ] {
            let text = ADT.replace("19800131", pid7);
            let d = Demographics::from_message(&Message::parse(&text).unwrap(), "adt.hl7").unwrap();
            assert_eq!(d.birth_date.as_deref(), want, "{pid7}");
            assert_eq!(d.family_kanji, "佐藤", "{pid7}: the rest is still read");
        }
    }

    #[test]
    fn a_romaji_repetition_never_takes_the_kanji_slot() {
        let text = ADT.replace(
            "佐藤^太郎^^^^^L^I~サトウ^タロウ^^^^^L^P",
            "SATO^TARO^^^^^L^A~佐藤^太郎^^^^^L^I~サトウ^タロウ^^^^^L^P",
        );
        let d = Demographics::from_message(&Message::parse(&text).unwrap(), "x").unwrap();
        assert_eq!((d.family_kanji.as_str(), d.given_kanji.as_str()), ("佐藤", "太郎"));
        assert_eq!((d.family_kana.as_str(), d.given_kana.as_str()), ("サトウ", "タロウ"));
        let text =
            ADT.replace("佐藤^太郎^^^^^L^I~サトウ^タロウ^^^^^L^P", "SATO^TARO^^^^^L^A~サトウ^タロウ^^^^^L^P");
        let d = Demographics::from_message(&Message::parse(&text).unwrap(), "x").unwrap();
        assert_eq!((d.family_kanji.as_str(), d.given_kanji.as_str()), ("", ""));
        // A first repetition without a representation code is still the kanji name.
        let text = ADT.replace("佐藤^太郎^^^^^L^I~サトウ^タロウ^^^^^L^P", "佐藤^太郎~サトウ^タロウ^^^^^L^P");
        let d = Demographics::from_message(&Message::parse(&text).unwrap(), "x").unwrap();
        assert_eq!((d.family_kanji.as_str(), d.given_kanji.as_str()), ("佐藤", "太郎"));
    }

    #[test]
    fn unknown_sex_is_none() {
        let text = ADT.replace("|M|", "|U|");
        let d = Demographics::from_message(&Message::parse(&text).unwrap(), "x").unwrap();
        assert_eq!(d.sex, None);
    }

    #[test]
    fn record_keys_refuse_empty_parts() {
        assert!(RecordKey::new("F001", "").is_err());
        assert!(RecordKey::new("", "1").is_err());
        assert!(RecordKey::new("F001", "12\n3").is_err());
        assert_eq!(RecordKey::new("F001", "123").unwrap().to_string(), "F001/123");
    }
}
