//! What to do with a newly enrolled patient, given the enrolled patients that share a blocking key
//! with them: pure, so the rule is tested without a database.

use std::collections::BTreeMap;

use super::common_id::CommonId;
use crate::RecordKey;
use crate::matcher::{Decision, FieldWeight, Matcher, Prepared};

/// An enrolled patient found by blocking.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub key: RecordKey,
    pub common_id: CommonId,
    pub prepared: Prepared,
}

/// The best-scoring patient of one common health ID.
#[derive(Debug, Clone)]
pub struct Suggestion {
    pub common_id: CommonId,
    pub via: RecordKey,
    pub match_weight: f64,
    pub explanation: Vec<FieldWeight>,
    /// The matcher's decision for this ID's best patient.
    pub decision: Decision,
}

/// The matcher's choice for a new patient.
#[derive(Debug, Clone)]
pub struct Choice {
    /// Link to this common health ID without asking.
    pub link: Option<Suggestion>,
    /// Candidates an admin should look at (best first); empty when `link` is set, unless a second
    /// common ID also scored in the review band.
    pub review: Vec<Suggestion>,
}

/// Most review items raised by one enrollment.
const MAX_REVIEW: usize = 3;

impl Choice {
    /// Sends the chosen link to review instead, first (the registry found another patient of the
    /// same facility on that ID, one blocking did not bring in).
    pub fn link_to_review(&mut self) {
        if let Some(s) = self.link.take() {
            self.review.insert(0, s);
            self.review.truncate(MAX_REVIEW);
        }
    }
}

/// Scores `new` against every candidate and groups by common health ID (an ID's score is its best
/// patient's). The best ID is linked when the matcher decides [`Decision::Link`] (see
/// [`Matcher::decision`]), unless it already holds
/// another patient of the same facility — a facility gives one person one local ID, so that
/// case goes to review. IDs in the band between the thresholds go to review. Only `candidates`
/// are seen here: the registry checks the chosen ID's other patients before linking
/// ([`Choice::link_to_review`]).
pub fn choose(matcher: &Matcher, new_key: &RecordKey, new: &Prepared, candidates: &[Candidate]) -> Choice {
    let mut best: BTreeMap<CommonId, Suggestion> = BTreeMap::new();
    let mut facility_taken: BTreeMap<CommonId, bool> = BTreeMap::new();
    for c in candidates {
        if c.key == *new_key {
            continue;
        }
        if c.key.facility == new_key.facility {
            facility_taken.insert(c.common_id.clone(), true);
        }
        let score = matcher.model.score(new, &c.prepared);
        let better = best.get(&c.common_id).is_none_or(|s| score.match_weight > s.match_weight);
        if better {
            best.insert(
                c.common_id.clone(),
                Suggestion {
                    common_id: c.common_id.clone(),
                    via: c.key.clone(),
                    match_weight: score.match_weight,
                    explanation: matcher.model.explain(&score.vector),
                    decision: matcher.decision(new, &c.prepared, &score),
                },
            );
        }
    }
    let mut ranked: Vec<Suggestion> = best.into_values().collect();
    ranked.sort_by(|a, b| b.match_weight.total_cmp(&a.match_weight));
    let mut link = None;
    let mut review = Vec::new();
    // Two IDs that both qualify for a link make the choice ambiguous (a record with the reading
    // only, ダイキ, against twins 大輝 and 大樹 on two IDs): neither is linked without review.
    let ambiguous = ranked.iter().filter(|s| s.decision == Decision::Link).count() > 1;
    for (i, s) in ranked.into_iter().enumerate() {
        let taken = facility_taken.get(&s.common_id).copied().unwrap_or(false);
        match s.decision {
            Decision::Link if i == 0 && !taken && !ambiguous => link = Some(s),
            Decision::Link | Decision::Review => review.push(s),
            Decision::Distinct => {}
        }
    }
    review.truncate(MAX_REVIEW);
    Choice { link, review }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matcher::{Field, Model, Thresholds};
    use crate::{Demographics, Sex};

    fn matcher() -> Matcher {
        let row = |levels: usize, top: f64| {
            let mut r = vec![(1.0 - top) / (levels - 1) as f64; levels];
            r[levels - 1] = top;
            r
        };
        Matcher {
            model: Model {
                m: Field::ALL.iter().map(|f| row(f.levels(), 0.95)).collect(),
                u: Field::ALL.iter().map(|f| row(f.levels(), 0.02)).collect(),
                prior_log2_odds: -12.0,
            },
            thresholds: Thresholds { auto_link: 8.0, review: -2.0 },
        }
    }

    fn taro(dob: &str) -> Prepared {
        Prepared::new(&Demographics {
            family_kanji: "佐藤".into(),
            given_kanji: "太郎".into(),
            family_kana: "サトウ".into(),
            given_kana: "タロウ".into(),
            birth_date: Some(dob.into()),
            sex: Some(Sex::Male),
            address: "仙台市青葉区一番町1-2-3".into(),
            phone: String::new(),
        })
    }

    fn key(f: &str, p: &str) -> RecordKey {
        RecordKey::new(f, p).unwrap()
    }

    #[test]
    fn a_strong_match_links_and_a_weak_one_goes_to_review() {
        let m = matcher();
        let id = CommonId::random();
        let c = vec![Candidate { key: key("F1", "1"), common_id: id.clone(), prepared: taro("19800101") }];
        let choice = choose(&m, &key("F2", "9"), &taro("19800101"), &c);
        assert_eq!(choice.link.map(|s| s.common_id), Some(id.clone()));
        let other = taro("19551212");
        let choice = choose(&m, &key("F2", "9"), &other, &c);
        assert!(choice.link.is_none());
        assert_eq!(choice.review.len(), 1, "{choice:?}");
    }

    #[test]
    fn an_id_holding_another_patient_of_the_same_facility_is_not_auto_linked() {
        let m = matcher();
        let id = CommonId::random();
        let c = vec![Candidate { key: key("F1", "1"), common_id: id.clone(), prepared: taro("19800101") }];
        let choice = choose(&m, &key("F1", "2"), &taro("19800101"), &c);
        assert!(choice.link.is_none());
        assert_eq!(choice.review[0].common_id, id);
    }

    #[test]
    fn twins_go_to_review_however_much_else_agrees() {
        let m = Matcher { thresholds: Thresholds { auto_link: 4.0, review: -2.0 }, ..matcher() };
        let id = CommonId::random();
        let mut sister = taro("19800101");
        sister.given_kanji = "花子".into();
        sister.given_kana = "ハナコ".into();
        sister.given_kana_key = crate::normalize::voiceless_key("ハナコ");
        let c = vec![Candidate { key: key("F1", "1"), common_id: id.clone(), prepared: taro("19800101") }];
        let choice = choose(&m, &key("F2", "1"), &sister, &c);
        assert!(m.model.score(&sister, &c[0].prepared).match_weight >= m.thresholds.auto_link);
        assert!(choice.link.is_none(), "{choice:?}");
        assert_eq!(choice.review.len(), 1);
    }

    /// A record that qualifies for a link to two common IDs (the reading only, against twins with
    /// one reading on two IDs) is linked to neither without review.
    #[test]
    fn a_record_matching_two_ids_goes_to_review() {
        let m = matcher();
        let (x, y) = (CommonId::random(), CommonId::random());
        let mut kana_only = taro("19800101");
        kana_only.given_kanji.clear();
        let mut twin = taro("19800101");
        twin.given_kanji = "太朗".into();
        let c = vec![
            Candidate { key: key("F1", "1"), common_id: x.clone(), prepared: taro("19800101") },
            Candidate { key: key("F1", "2"), common_id: y.clone(), prepared: twin },
        ];
        let choice = choose(&m, &key("F2", "9"), &kana_only, &c);
        assert!(choice.link.is_none(), "{choice:?}");
        assert_eq!(choice.review.len(), 2);
    }
}
