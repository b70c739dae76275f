//! The Fellegi–Sunter model: per field and level, m = P(level | same person) and
//! u = P(level | different people); a pair's match weight is the prior log-odds plus the sum of
//! log2(m/u) over the fields both records have.

use serde::{Deserialize, Serialize};

use super::compare::{ComparisonVector, Field, compare};
use super::prepare::Prepared;

/// Trained m and u probabilities and the prior. Serialized as JSON into the IndexDB, so a link can
/// always be traced to the model that scored it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// `m[field][level]`, each row summing to 1.
    pub m: Vec<Vec<f64>>,
    /// `u[field][level]`, each row summing to 1.
    pub u: Vec<Vec<f64>>,
    /// log2 of the prior odds that two records picked at random are the same person.
    pub prior_log2_odds: f64,
}

/// One field's part of a score, for the review screen and for reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldWeight {
    pub field: Field,
    pub level: Option<u8>,
    /// log2(m/u); 0 when the field is missing on either side.
    pub weight: f64,
}

/// A scored pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Score {
    pub vector: ComparisonVector,
    /// Prior log2-odds plus the field weights: log2 of the posterior odds of a match.
    pub match_weight: f64,
}

impl Score {
    /// The posterior probability of a match.
    pub fn probability(&self) -> f64 {
        probability_of(self.match_weight)
    }
}

/// Probability from log2-odds.
pub fn probability_of(log2_odds: f64) -> f64 {
    let odds = log2_odds.exp2();
    if odds.is_infinite() { 1.0 } else { odds / (1.0 + odds) }
}

impl Model {
    /// log2(m/u) of one field at one level.
    pub fn field_weight(&self, field: Field, level: u8) -> f64 {
        let (f, l) = (field.index(), level as usize);
        (self.m[f][l] / self.u[f][l]).log2()
    }

    /// The field weights of a comparison vector.
    pub fn explain(&self, v: &ComparisonVector) -> Vec<FieldWeight> {
        Field::ALL
            .iter()
            .map(|&field| {
                let level = v[field.index()];
                FieldWeight { field, level, weight: level.map_or(0.0, |l| self.field_weight(field, l)) }
            })
            .collect()
    }

    /// Match weight of a comparison vector.
    pub fn weigh(&self, v: &ComparisonVector) -> f64 {
        self.prior_log2_odds + self.explain(v).iter().map(|w| w.weight).sum::<f64>()
    }

    /// Compares and weighs two records.
    pub fn score(&self, a: &Prepared, b: &Prepared) -> Score {
        let vector = compare(a, b);
        Score { match_weight: self.weigh(&vector), vector }
    }

    /// True when every row is a probability distribution of the right length.
    pub fn is_well_formed(&self) -> bool {
        let rows_ok = |rows: &Vec<Vec<f64>>| {
            rows.len() == Field::COUNT
                && Field::ALL.iter().all(|f| {
                    let r = &rows[f.index()];
                    r.len() == f.levels()
                        && r.iter().all(|p| p.is_finite() && *p > 0.0)
                        && (r.iter().sum::<f64>() - 1.0).abs() < 1e-6
                })
        };
        rows_ok(&self.m) && rows_ok(&self.u) && self.prior_log2_odds.is_finite()
    }
}

/// What to do with a candidate, from its match weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Decision {
    /// At or above the upper threshold: link without asking.
    Link,
    /// Between the thresholds: an admin decides.
    Review,
    /// Below the lower threshold: a different person.
    Distinct,
}

/// The two thresholds on the match weight (log2 posterior odds).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    pub auto_link: f64,
    pub review: f64,
}

impl Default for Thresholds {
    /// Auto-link at posterior odds of 2^14 (probability 0.99994), review from odds 2^-4 (about 0.06).
    /// The measured precision and recall at these values are in the crate README.
    fn default() -> Self {
        Self { auto_link: 14.0, review: -4.0 }
    }
}

impl Thresholds {
    pub fn decide(&self, match_weight: f64) -> Decision {
        if match_weight >= self.auto_link {
            Decision::Link
        } else if match_weight >= self.review {
            Decision::Review
        } else {
            Decision::Distinct
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> Model {
        let row = |levels: usize, top: f64| {
            let mut r = vec![(1.0 - top) / (levels - 1) as f64; levels];
            r[levels - 1] = top;
            r
        };
        Model {
            m: Field::ALL.iter().map(|f| row(f.levels(), 0.9)).collect(),
            u: Field::ALL.iter().map(|f| row(f.levels(), 0.01)).collect(),
            prior_log2_odds: -10.0,
        }
    }

    #[test]
    fn agreement_raises_and_disagreement_lowers_the_weight() {
        let m = model();
        assert!(m.is_well_formed());
        let all = [Some(3), Some(3), Some(3), Some(1), Some(3), Some(1)];
        let none = [Some(0); Field::COUNT];
        let missing = [None; Field::COUNT];
        assert!(m.weigh(&all) > 20.0);
        assert!(m.weigh(&none) < m.prior_log2_odds);
        assert_eq!(m.weigh(&missing), m.prior_log2_odds);
        assert!((probability_of(0.0) - 0.5).abs() < 1e-12);
        assert_eq!(probability_of(5000.0), 1.0);
    }

    #[test]
    fn thresholds_split_three_ways() {
        let t = Thresholds { auto_link: 10.0, review: 0.0 };
        assert_eq!(t.decide(10.0), Decision::Link);
        assert_eq!(t.decide(3.0), Decision::Review);
        assert_eq!(t.decide(-0.1), Decision::Distinct);
    }
}
