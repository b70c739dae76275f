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
        let d = self.decision(&s);
        (s, d)
    }

    /// The thresholds' decision, except that a pair whose given names disagree outright (kanji and
    /// reading both far apart) is never linked without review, however well the rest agrees: that
    /// is the mark of twins and of siblings sharing a household (same family name, address,
    /// telephone, and for twins the birth date), whose agreeing fields are not independent evidence.
    pub fn decision(&self, s: &Score) -> Decision {
        let d = self.thresholds.decide(s.match_weight);
        if d == Decision::Link && s.vector[Field::GivenName.index()] == Some(0) {
            Decision::Review
        } else {
            d
        }
    }
}
