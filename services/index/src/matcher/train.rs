//! Unsupervised estimation of the model, the way Splink does it:
//! - u from pairs drawn at random (nearly all of them are different people);
//! - m by expectation–maximisation on the candidate pairs of each blocking rule, leaving out the
//!   fields that rule forces to agree, with u held fixed; each field's m is the mean over the rules
//!   that could estimate it;
//! - the prior from the birth-date rule: its estimated share of matches, scaled by how often true
//!   matches agree on birth date, gives the expected number of matching pairs among all pairs.

use std::collections::HashMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::compare::{ComparisonVector, Field, compare};
use super::model::Model;
use super::prepare::{BlockingRule, Prepared};
use crate::IndexError;

/// Knobs of the estimation; the defaults suit registers of thousands to millions of records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainingConfig {
    /// Random pairs drawn to estimate u.
    pub u_sample_pairs: usize,
    /// Seed of the random pair draw (training is deterministic for a seed).
    pub seed: u64,
    pub max_iterations: usize,
    /// Stop when no m moves by more than this.
    pub tolerance: f64,
    /// Blocks larger than this are skipped (a key shared by that many records carries no signal).
    pub max_block: usize,
}

impl Default for TrainingConfig {
    fn default() -> Self {
        Self { u_sample_pairs: 1_000_000, seed: 1, max_iterations: 200, tolerance: 1e-7, max_block: 2_000 }
    }
}

/// What one EM run saw and found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionReport {
    pub rule: BlockingRule,
    pub pairs: usize,
    /// Estimated share of matches among the rule's pairs.
    pub lambda: f64,
    pub iterations: usize,
}

/// How the model was estimated.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainingReport {
    pub records: usize,
    pub u_pairs: usize,
    pub candidate_pairs: usize,
    pub sessions: Vec<SessionReport>,
    /// Expected number of matching pairs among all pairs.
    pub expected_matches: f64,
    /// Set when the model is the built-in one ([`super::builtin`]), not trained on this register:
    /// the corpus and command that produced it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builtin: Option<String>,
}

/// Candidate pairs `(i, j)` with `i < j`, each with the set of rules that found it (bit = rule index).
pub fn candidate_pairs(records: &[Prepared], max_block: usize) -> HashMap<(u32, u32), u8> {
    let mut blocks: HashMap<String, Vec<u32>> = HashMap::new();
    for (i, r) in records.iter().enumerate() {
        for k in r.blocking_keys() {
            blocks.entry(k).or_default().push(i as u32);
        }
    }
    let mut pairs: HashMap<(u32, u32), u8> = HashMap::new();
    for (key, members) in &blocks {
        if members.len() < 2 || members.len() > max_block {
            continue;
        }
        let Some(rule) = BlockingRule::of_key(key) else { continue };
        let bit = 1u8 << BlockingRule::ALL.iter().position(|r| *r == rule).unwrap_or(0);
        for (x, &a) in members.iter().enumerate() {
            for &b in &members[x + 1..] {
                *pairs.entry((a.min(b), a.max(b))).or_default() |= bit;
            }
        }
    }
    pairs
}

/// Level frequencies with add-one smoothing, so no level has probability 0.
fn smoothed(counts: &[f64], pseudo: f64) -> Vec<f64> {
    let total: f64 = counts.iter().sum::<f64>() + pseudo * counts.len() as f64;
    counts.iter().map(|c| (c + pseudo) / total).collect()
}

fn estimate_u(records: &[Prepared], cfg: &TrainingConfig) -> Vec<Vec<f64>> {
    let mut counts: Vec<Vec<f64>> = Field::ALL.iter().map(|f| vec![0.0; f.levels()]).collect();
    let n = records.len();
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let exhaustive = n * (n - 1) / 2 <= cfg.u_sample_pairs;
    let mut add = |v: ComparisonVector| {
        for f in Field::ALL {
            if let Some(l) = v[f.index()] {
                counts[f.index()][l as usize] += 1.0;
            }
        }
    };
    if exhaustive {
        for i in 0..n {
            for j in i + 1..n {
                add(compare(&records[i], &records[j]));
            }
        }
    } else {
        for _ in 0..cfg.u_sample_pairs {
            let i = rng.random_range(0..n);
            let j = rng.random_range(0..n);
            if i != j {
                add(compare(&records[i], &records[j]));
            }
        }
    }
    counts.iter().map(|c| smoothed(c, 1.0)).collect()
}

/// Starting m: most mass on full agreement.
fn initial_m() -> Vec<Vec<f64>> {
    Field::ALL
        .iter()
        .map(|f| {
            let l = f.levels();
            let mut r = vec![0.1 / (l - 1) as f64; l];
            r[l - 1] = 0.9;
            r
        })
        .collect()
}

/// EM over distinct comparison patterns (with their counts), estimating m for `fields` and the
/// share of matches; u fixed.
fn em_session(
    patterns: &[(ComparisonVector, f64)],
    fields: &[Field],
    u: &[Vec<f64>],
    cfg: &TrainingConfig,
) -> (Vec<Vec<f64>>, f64, usize) {
    let mut m = initial_m();
    let mut lambda: f64 = 0.3;
    let mut iterations = 0;
    for it in 0..cfg.max_iterations {
        iterations = it + 1;
        let mut m_counts: Vec<Vec<f64>> = Field::ALL.iter().map(|f| vec![0.0; f.levels()]).collect();
        let (mut matched, mut total) = (0.0, 0.0);
        for (v, count) in patterns {
            let (mut lm, mut lu) = (lambda.ln(), (1.0 - lambda).ln());
            for f in fields {
                if let Some(l) = v[f.index()] {
                    lm += m[f.index()][l as usize].ln();
                    lu += u[f.index()][l as usize].ln();
                }
            }
            let p = 1.0 / (1.0 + (lu - lm).exp());
            matched += p * count;
            total += count;
            for f in fields {
                if let Some(l) = v[f.index()] {
                    m_counts[f.index()][l as usize] += p * count;
                }
            }
        }
        let mut delta: f64 = 0.0;
        for f in fields {
            let new = smoothed(&m_counts[f.index()], 0.01);
            for (old, n) in m[f.index()].iter_mut().zip(new) {
                delta = delta.max((*old - n).abs());
                *old = n;
            }
        }
        lambda = (matched / total).clamp(1e-9, 1.0 - 1e-9);
        if delta < cfg.tolerance {
            break;
        }
    }
    (m, lambda, iterations)
}

/// Estimates a model from unlabelled records (all facilities together).
pub fn train(records: &[Prepared], cfg: &TrainingConfig) -> Result<(Model, TrainingReport), IndexError> {
    if records.len() < 50 {
        return Err(IndexError::Training(format!("{} records are too few to estimate from", records.len())));
    }
    let u = estimate_u(records, cfg);
    let pairs = candidate_pairs(records, cfg.max_block);
    let mut sessions = Vec::new();
    let mut m_sum: Vec<Vec<f64>> = Field::ALL.iter().map(|f| vec![0.0; f.levels()]).collect();
    let mut m_n = [0usize; Field::COUNT];
    let mut dob_session: Option<(f64, usize)> = None;
    for (bit, rule) in BlockingRule::ALL.iter().enumerate() {
        let mut patterns: HashMap<ComparisonVector, f64> = HashMap::new();
        let mut n = 0usize;
        for (&(a, b), &mask) in &pairs {
            if mask & (1 << bit) != 0 {
                *patterns.entry(compare(&records[a as usize], &records[b as usize])).or_default() += 1.0;
                n += 1;
            }
        }
        if n < 20 {
            continue;
        }
        let fields: Vec<Field> = Field::ALL.into_iter().filter(|f| !rule.fixes().contains(f)).collect();
        let patterns: Vec<_> = patterns.into_iter().collect();
        let (m, lambda, iterations) = em_session(&patterns, &fields, &u, cfg);
        for f in &fields {
            for (s, v) in m_sum[f.index()].iter_mut().zip(&m[f.index()]) {
                *s += v;
            }
            m_n[f.index()] += 1;
        }
        if *rule == BlockingRule::BirthDate {
            dob_session = Some((lambda, n));
        }
        sessions.push(SessionReport { rule: *rule, pairs: n, lambda, iterations });
    }
    let mut m = Vec::new();
    for f in Field::ALL {
        if m_n[f.index()] == 0 {
            return Err(IndexError::Training(format!(
                "no blocking rule yielded pairs to estimate m for {}",
                f.name()
            )));
        }
        m.push(m_sum[f.index()].iter().map(|s| s / m_n[f.index()] as f64).collect::<Vec<_>>());
    }
    let (lambda, n_dob) = dob_session.ok_or_else(|| {
        IndexError::Training("too few pairs share a birth date to estimate the prior".into())
    })?;
    let dob_exact = m[Field::BirthDate.index()][3];
    let expected_matches = lambda * n_dob as f64 / dob_exact;
    let n = records.len() as f64;
    let all_pairs = n * (n - 1.0) / 2.0;
    let prior = (expected_matches / all_pairs).clamp(1e-12, 0.5);
    let model = Model { m, u, prior_log2_odds: (prior / (1.0 - prior)).log2() };
    let report = TrainingReport {
        records: records.len(),
        u_pairs: cfg.u_sample_pairs.min(records.len() * (records.len() - 1) / 2),
        candidate_pairs: pairs.len(),
        sessions,
        expected_matches,
        builtin: None,
    };
    Ok((model, report))
}
