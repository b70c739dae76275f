//! Measuring linkage against a ground truth: pairwise precision and recall of the common-ID
//! assignment (two records are "linked" when they share a common ID), and the corpus layout of
//! Kizuna's generator (`manifest.json`, one SS-MIX2 root per facility, `nsips/<pharmacy>/`,
//! `ground-truth.csv`).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use crate::matcher::{Matcher, Prepared, Thresholds, TrainingConfig, TrainingReport, train};
use crate::registry::{Outcome, Registry};
use crate::source::{read_nsips_dir, read_storage_root};
use crate::{CommonId, Demographics, IndexError, RecordKey};

/// Which true person each record belongs to, and the variants the generator put in it.
#[derive(Debug, Clone, Default)]
pub struct GroundTruth {
    pub person: BTreeMap<RecordKey, String>,
    pub variants: BTreeMap<RecordKey, Vec<String>>,
}

/// Reads `ground-truth.csv`: `person_id,facility_id,facility_kind,patient_id,registered_on,variants`.
pub fn read_ground_truth(path: &Path) -> Result<GroundTruth, IndexError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| IndexError::Io { path: path.to_owned(), source })?;
    let mut gt = GroundTruth::default();
    for (n, line) in text.lines().enumerate().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() < 6 {
            return Err(IndexError::BadField {
                source_name: format!("{}:{}", path.display(), n + 1),
                field: "ground truth line",
                value: line.to_owned(),
                reason: "has fewer than 6 fields",
            });
        }
        let key = RecordKey::new(f[1], f[3])?;
        gt.variants
            .insert(key.clone(), f[5].split(';').filter(|s| !s.is_empty()).map(str::to_owned).collect());
        gt.person.insert(key, f[0].to_owned());
    }
    Ok(gt)
}

/// Pairwise quality of an assignment of records to clusters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PairwiseQuality {
    /// Record pairs that are truly the same person.
    pub true_pairs: u64,
    /// Record pairs the assignment put under one ID.
    pub predicted_pairs: u64,
    pub true_positives: u64,
    pub precision: f64,
    pub recall: f64,
}

fn pairs(n: u64) -> u64 {
    n * n.saturating_sub(1) / 2
}

/// Compares `assigned` (record → cluster label) with the truth, over the records both know.
pub fn evaluate<C: Ord + Clone>(assigned: &[(RecordKey, C)], truth: &GroundTruth) -> PairwiseQuality {
    let mut cluster_sizes: BTreeMap<C, u64> = BTreeMap::new();
    let mut person_sizes: BTreeMap<&str, u64> = BTreeMap::new();
    let mut cells: BTreeMap<(C, &str), u64> = BTreeMap::new();
    for (key, c) in assigned {
        let Some(p) = truth.person.get(key) else { continue };
        *cluster_sizes.entry(c.clone()).or_default() += 1;
        *person_sizes.entry(p.as_str()).or_default() += 1;
        *cells.entry((c.clone(), p.as_str())).or_default() += 1;
    }
    let predicted_pairs: u64 = cluster_sizes.values().map(|n| pairs(*n)).sum();
    let true_pairs: u64 = person_sizes.values().map(|n| pairs(*n)).sum();
    let true_positives: u64 = cells.values().map(|n| pairs(*n)).sum();
    let ratio = |a: u64, b: u64| if b == 0 { 1.0 } else { a as f64 / b as f64 };
    PairwiseQuality {
        true_pairs,
        predicted_pairs,
        true_positives,
        precision: ratio(true_positives, predicted_pairs),
        recall: ratio(true_positives, true_pairs),
    }
}

/// A pair of records.
pub type RecordPair = (RecordKey, RecordKey);

/// Record pairs split wrongly: `(false links, missed links)`.
pub fn errors<C: Ord + Clone + std::hash::Hash>(
    assigned: &[(RecordKey, C)],
    truth: &GroundTruth,
) -> (Vec<RecordPair>, Vec<RecordPair>) {
    let mut by_cluster: HashMap<C, Vec<&RecordKey>> = HashMap::new();
    let mut by_person: BTreeMap<&str, Vec<&RecordKey>> = BTreeMap::new();
    let cluster_of: HashMap<&RecordKey, &C> = assigned.iter().map(|(k, c)| (k, c)).collect();
    for (k, c) in assigned {
        by_cluster.entry(c.clone()).or_default().push(k);
        if let Some(p) = truth.person.get(k) {
            by_person.entry(p.as_str()).or_default().push(k);
        }
    }
    let mut false_links = Vec::new();
    for members in by_cluster.values() {
        for (i, a) in members.iter().enumerate() {
            for b in &members[i + 1..] {
                if truth.person.get(*a) != truth.person.get(*b) {
                    false_links.push(((*a).clone(), (*b).clone()));
                }
            }
        }
    }
    let mut missed = Vec::new();
    for members in by_person.values() {
        for (i, a) in members.iter().enumerate() {
            for b in &members[i + 1..] {
                if cluster_of.get(a) != cluster_of.get(b) {
                    missed.push(((*a).clone(), (*b).clone()));
                }
            }
        }
    }
    false_links.sort();
    missed.sort();
    (false_links, missed)
}

/// Every patient of a generated corpus: each facility of `manifest.json` read from its SS-MIX2 root,
/// or, for pharmacies, from `nsips/<id>/`.
pub fn read_corpus(root: &Path) -> Result<Vec<(RecordKey, Demographics)>, IndexError> {
    let manifest_path = root.join("manifest.json");
    let text = std::fs::read_to_string(&manifest_path)
        .map_err(|source| IndexError::Io { path: manifest_path.clone(), source })?;
    let manifest: serde_json::Value = serde_json::from_str(&text)?;
    let facilities = manifest["facilities"].as_array().cloned().unwrap_or_default();
    let mut out = Vec::new();
    for f in facilities {
        let (Some(id), Some(kind)) = (f["id"].as_str(), f["kind"].as_str()) else {
            return Err(IndexError::BadField {
                source_name: manifest_path.display().to_string(),
                field: "facilities[].id/kind",
                value: f.to_string(),
                reason: "is missing",
            });
        };
        if kind == "pharmacy" {
            let dir = root.join("nsips").join(id);
            if dir.is_dir() {
                out.extend(read_nsips_dir(&dir, id)?);
            }
        } else {
            out.extend(read_storage_root(&root.join(id), id)?);
        }
    }
    Ok(out)
}

/// What [`run`] measured.
#[derive(Debug, Clone, Serialize)]
pub struct LinkageRun {
    pub records: usize,
    pub training: TrainingReport,
    pub thresholds: Thresholds,
    pub auto_linked: usize,
    pub new_ids: usize,
    pub review_items: usize,
    /// Quality of the links the matcher made on its own (the auto-link threshold).
    pub at_auto_link: PairwiseQuality,
    /// Quality if an admin accepted every review item (the review threshold).
    pub if_reviews_accepted: PairwiseQuality,
    /// Reading demographics from the SS-MIX2 trees and NSIPS files.
    pub read_seconds: f64,
    pub train_seconds: f64,
    pub enroll_seconds: f64,
}

/// Reads a generated corpus, trains the matcher on it without labels, enrolls every patient into the
/// registry (facility by facility, in local-ID order), and measures the result against
/// `ground-truth.csv`.
pub async fn run(
    root: &Path,
    registry: &Registry,
    thresholds: Thresholds,
    cfg: &TrainingConfig,
) -> Result<(LinkageRun, GroundTruth), IndexError> {
    run_with(root, registry, thresholds, Some(cfg)).await
}

/// [`run`], or with `cfg` `None` the built-in model ([`crate::matcher::builtin`]) instead of one
/// trained on the corpus (its report is the built-in model's).
pub async fn run_with(
    root: &Path,
    registry: &Registry,
    thresholds: Thresholds,
    cfg: Option<&TrainingConfig>,
) -> Result<(LinkageRun, GroundTruth), IndexError> {
    let t = Instant::now();
    let mut records = read_corpus(root)?;
    records.sort_by(|a, b| a.0.cmp(&b.0));
    let read_seconds = t.elapsed().as_secs_f64();
    let truth = read_ground_truth(&root.join("ground-truth.csv"))?;
    let t0 = Instant::now();
    let prepared: Vec<Prepared> = records.iter().map(|(_, d)| Prepared::new(d)).collect();
    let (model, training) = match cfg {
        Some(cfg) => train(&prepared, cfg)?,
        None => {
            let b = crate::matcher::builtin();
            (b.matcher.model.clone(), b.install_report())
        }
    };
    let matcher = Matcher { model, thresholds };
    registry.install_matcher(&matcher, &training).await?;
    let train_seconds = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let (mut auto_linked, mut new_ids, mut review_items) = (0, 0, 0);
    let mut reviews: Vec<(RecordKey, CommonId)> = Vec::new();
    for (key, d) in &records {
        let e = registry.enroll(key, d).await?;
        match e.outcome {
            Outcome::AutoLinked { .. } => auto_linked += 1,
            Outcome::NewId { review } => {
                new_ids += 1;
                review_items += review.len();
            }
            Outcome::Updated => {}
        }
    }
    let enroll_seconds = t1.elapsed().as_secs_f64();
    for item in registry.open_reviews(i64::MAX).await? {
        reviews.push((item.key, item.candidate_common_id));
    }
    let links = registry.all_links().await?;
    let at_auto_link = evaluate(&links, &truth);
    // Accepting every review item merges the patient's ID into the candidate's.
    let mut parent: HashMap<CommonId, CommonId> = HashMap::new();
    fn root_of(parent: &HashMap<CommonId, CommonId>, mut c: CommonId) -> CommonId {
        while let Some(p) = parent.get(&c) {
            c = p.clone();
        }
        c
    }
    let link_of: HashMap<&RecordKey, &CommonId> = links.iter().map(|(k, c)| (k, c)).collect();
    for (key, cand) in &reviews {
        if let Some(own) = link_of.get(key) {
            let (a, b) = (root_of(&parent, (*own).clone()), root_of(&parent, cand.clone()));
            if a != b {
                parent.insert(a, b);
            }
        }
    }
    let merged: Vec<(RecordKey, CommonId)> =
        links.iter().map(|(k, c)| (k.clone(), root_of(&parent, c.clone()))).collect();
    let if_reviews_accepted = evaluate(&merged, &truth);
    let run = LinkageRun {
        records: records.len(),
        training,
        thresholds,
        auto_linked,
        new_ids,
        review_items,
        at_auto_link,
        if_reviews_accepted,
        read_seconds,
        train_seconds,
        enroll_seconds,
    };
    Ok((run, truth))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(f: &str, p: &str) -> RecordKey {
        RecordKey::new(f, p).unwrap()
    }

    #[test]
    fn pairwise_precision_and_recall_count_pairs() {
        let mut gt = GroundTruth::default();
        for (f, p, person) in
            [("A", "1", "P1"), ("B", "1", "P1"), ("C", "1", "P1"), ("A", "2", "P2"), ("B", "2", "P3")]
        {
            gt.person.insert(key(f, p), person.into());
        }
        // P1 split into two clusters, P2 and P3 wrongly merged.
        let assigned = vec![
            (key("A", "1"), 1),
            (key("B", "1"), 1),
            (key("C", "1"), 2),
            (key("A", "2"), 3),
            (key("B", "2"), 3),
        ];
        let q = evaluate(&assigned, &gt);
        assert_eq!((q.true_pairs, q.predicted_pairs, q.true_positives), (3, 2, 1));
        assert!((q.precision - 0.5).abs() < 1e-12);
        assert!((q.recall - 1.0 / 3.0).abs() < 1e-12);
        let (fp, missed) = errors(&assigned, &gt);
        assert_eq!(fp, vec![(key("A", "2"), key("B", "2"))]);
        assert_eq!(missed.len(), 2);
    }
}
