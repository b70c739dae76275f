//! The scored matcher: prepare (normalize) → compare (levels per field) → weigh (Fellegi–Sunter)
//! → decide (two thresholds). [`train`] estimates the weights without labels.

pub mod builtin;
pub mod compare;
pub mod model;
pub mod prepare;
pub mod train;

pub use builtin::{BuiltinModel, builtin};
pub use compare::{ComparisonVector, Field, compare};
pub use model::{Decision, FieldWeight, Model, Score, Thresholds, probability_of};
pub use prepare::{BlockingRule, Prepared};
pub use train::{TrainingConfig, TrainingReport, candidate_pairs, train};

/// A trained model with its thresholds: everything needed to decide about a pair.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Matcher {
    pub model: Model,
    pub thresholds: Thresholds,
}

impl Matcher {
    /// Scores a pair and decides what to do with it.
    pub fn decide(&self, a: &Prepared, b: &Prepared) -> (Score, Decision) {
        let s = self.model.score(a, b);
        let d = self.decision(a, b, &s);
        (s, d)
    }

    /// The thresholds' decision about the scored pair `a`, `b`, with two hard rules on top for
    /// twins and siblings sharing a household (same family name, address, telephone, and for twins
    /// the birth date), whose agreeing fields are not independent evidence:
    /// - a pair whose given names disagree outright (kanji and reading both far apart) is never
    ///   linked without review, however well the rest agrees;
    /// - when family name and birth date both agree exactly (the twin signature), the pair is
    ///   auto-linked only if the given name agrees exactly (kanji and reading, level 3), or its
    ///   kanji are the same on both sides and only the reading is one character off (a reading
    ///   typo: twins are never given the same written name). Twins get related names — one kanji
    ///   shared (健太/健二) or one reading in other kanji (大輝/大樹) — which score "one character
    ///   off"; a real person whose given-name kanji has a typo looks the same and goes to review.
    pub fn decision(&self, a: &Prepared, b: &Prepared, s: &Score) -> Decision {
        let d = self.thresholds.decide(s.match_weight);
        if d != Decision::Link {
            return d;
        }
        let level = |f: Field| s.vector[f.index()];
        let given = level(Field::GivenName);
        let twin_signature = level(Field::FamilyName) == Some(3) && level(Field::BirthDate) == Some(3);
        let same_written_name = !a.given_kanji.is_empty() && a.given_kanji == b.given_kanji;
        let given_ok = given == Some(3) || (given == Some(2) && same_written_name);
        if given == Some(0) || (twin_signature && !given_ok) { Decision::Review } else { d }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Demographics, Sex};

    fn child(given_kanji: &str, given_kana: &str) -> Prepared {
        Prepared::new(&Demographics {
            family_kanji: "佐藤".into(),
            given_kanji: given_kanji.into(),
            family_kana: "サトウ".into(),
            given_kana: given_kana.into(),
            birth_date: Some("20100505".into()),
            sex: Some(Sex::Male),
            address: "仙台市青葉区一番町1-2-3".into(),
            phone: "022-222-3333".into(),
        })
    }

    /// Twins get related names: one kanji shared (健太/健二, 拓也/拓海) or one reading written with
    /// other kanji (大輝/大樹). With family name, birth date, sex, address and phone all equal the
    /// weight is far above the threshold; the pair must still go to review, never be auto-linked.
    #[test]
    fn twins_with_related_given_names_are_never_auto_linked() {
        let m = &builtin().matcher;
        for ((ak, ar), (bk, br)) in [
            (("健太", "ケンタ"), ("健二", "ケンジ")),
            (("大輝", "ダイキ"), ("大樹", "ダイキ")),
            (("拓也", "タクヤ"), ("拓海", "タクミ")),
            (("美咲", "ミサキ"), ("美咲", "ミサ")),
        ] {
            let (s, d) = m.decide(&child(ak, ar), &child(bk, br));
            assert!(s.match_weight >= m.thresholds.auto_link, "{ak}/{bk}: {}", s.match_weight);
            assert_eq!(d, Decision::Review, "{ak}/{bk} at {:.1}", s.match_weight);
        }
    }

    /// The same record twice is still linked, and a given-name slip is linked when the birth date
    /// (or family name) does not agree exactly, i.e. when the pair is not a twin's signature.
    #[test]
    fn the_twin_rule_leaves_exact_names_and_non_twin_pairs_alone() {
        let m = &builtin().matcher;
        assert_eq!(m.decide(&child("健太", "ケンタ"), &child("健太", "ケンタ")).1, Decision::Link);
        // A reading typo under the same kanji is not a twin: twins never share a written name.
        assert_eq!(m.decide(&child("健太", "ケンタ"), &child("健太", "ケソタ")).1, Decision::Link);
        // A kanji typo under the same reading looks like 大輝/大樹: review.
        assert_eq!(m.decide(&child("健太", "ケンタ"), &child("建太", "ケンタ")).1, Decision::Review);
    }
}
