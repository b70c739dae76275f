//! The built-in matcher: used by [`crate::tree_linkage::link_tree`] while a register is too small
//! (or has too few shared birth dates) for [`train`](super::train) to estimate its own model.
//!
//! `builtin_model.json` is NOT hand-written: it is the ordinary unsupervised training run on a
//! generated corpus (synth seed 11: 3 000 persons at 3 hospitals/clinics and 1 pharmacy, one year of
//! care, about 7 000 records), produced and regenerated with
//!
//! ```text
//! cargo run --release -p kizuna-index --example builtin_model -- 3000 3 1 11 \
//!     > services/index/src/matcher/builtin_model.json
//! ```
//!
//! The file says which command and corpus produced it (`produced_by`, `corpus`) and holds that
//! run's [`TrainingReport`]. The thresholds are [`Thresholds::default`].
//!
//! The prior: u (how often different people agree on a field) hardly depends on the register's size,
//! but the prior odds that two records are the same person do: about (registrations per person − 1)
//! / records, so the trained prior (log2-odds about −12 for 7 000 records) is *lower* than a small
//! register's true prior (about −5 for 30 records). It is kept as trained on purpose: on a small
//! register it understates the chance of a match, so the built-in model links less readily than a
//! model trained on that register would, never more (a pair needs about 26 bits of agreeing evidence
//! to be auto-linked), and pairs it is unsure of go to the review queue.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::{Matcher, TrainingReport};

/// The stored built-in model and where it came from.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuiltinModel {
    /// The command that produced the file.
    pub produced_by: String,
    /// The corpus it was trained on.
    pub corpus: String,
    pub matcher: Matcher,
    /// The training run's report.
    pub report: TrainingReport,
}

const JSON: &str = include_str!("builtin_model.json");

/// The built-in model (parsed once).
pub fn builtin() -> &'static BuiltinModel {
    static MODEL: OnceLock<BuiltinModel> = OnceLock::new();
    MODEL.get_or_init(|| {
        // The file is part of the crate and checked by the tests: a bad one is a build defect.
        serde_json::from_str(JSON).expect("src/matcher/builtin_model.json is a valid BuiltinModel")
    })
}

impl BuiltinModel {
    /// The report stored with the model when it is installed: the training run's, marked as the
    /// built-in model (so links it made can be told from links a trained model made).
    pub fn install_report(&self) -> TrainingReport {
        TrainingReport {
            builtin: Some(format!("{} ({})", self.corpus, self.produced_by)),
            ..self.report.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matcher::Field;

    #[test]
    fn the_builtin_model_is_a_valid_trained_model() {
        let b = builtin();
        let model = &b.matcher.model;
        for rows in [&model.m, &model.u] {
            assert_eq!(rows.len(), Field::COUNT);
            for f in Field::ALL {
                let r = &rows[f.index()];
                assert_eq!(r.len(), f.levels(), "{}", f.name());
                assert!(r.iter().all(|p| p.is_finite() && *p > 0.0), "{}: {r:?}", f.name());
                assert!((r.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{}: {r:?}", f.name());
            }
        }
        assert!(model.is_well_formed());
        assert_eq!(b.matcher.thresholds, crate::matcher::Thresholds::default());
        assert!(b.report.builtin.is_none(), "the stored report is the training run's own");
        assert!(b.report.records >= 5_000, "trained on a large corpus: {:?}", b.report);
        // The prior of a large register: a pair needs well over the auto-link threshold of
        // agreeing evidence, so a small register is not linked wholesale.
        assert!(model.prior_log2_odds < -8.0, "{}", model.prior_log2_odds);
        // Full agreement on every field links; agreeing on birth date and sex alone does not.
        let all = [Some(3), Some(3), Some(3), Some(1), Some(3), Some(1)];
        assert!(model.weigh(&all) >= b.matcher.thresholds.auto_link, "{}", model.weigh(&all));
        let dob_sex = [Some(0), Some(0), Some(3), Some(1), Some(0), None];
        assert!(model.weigh(&dob_sex) < b.matcher.thresholds.review, "{}", model.weigh(&dob_sex));
        assert!(b.install_report().builtin.is_some_and(|s| s.contains("seed")));
    }
}
