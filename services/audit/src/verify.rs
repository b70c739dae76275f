//! `kizuna audit verify`: recompute every leaf from the database, compare with the disk mirror and
//! every signed, time-stamped checkpoint, prove consistency between checkpoints and inclusion of the
//! events, and name each event that was modified, deleted or reordered.

use crate::checkpoint::Checkpoint;
use crate::db::{Db, IndexedColumns, STORED_COLUMNS};
use crate::error::Result;
use crate::event::AuditEvent;
use crate::log::{read_db_checkpoints, read_disk_checkpoints, read_disk_leaves};
use crate::merkle::{Hash, MerkleTree, leaf_hash, verify_consistency, verify_inclusion};
use crate::tsa::{self, TsaTrust};
use ed25519_dalek::VerifyingKey;
use futures::TryStreamExt;
use sqlx::Row;
use std::collections::HashMap;
use std::path::PathBuf;

/// What to check against.
pub struct VerifyOptions {
    pub database_url: String,
    pub data_dir: PathBuf,
    pub public_key: VerifyingKey,
    /// Trusted TSA certificate(s). `None`: a centre without a TSA; its unstamped checkpoints are
    /// counted (`unstamped`), and a checkpoint that carries a token is a finding (it cannot be
    /// checked). With a TSA trusted, a checkpoint without a token is a finding.
    pub tsa_trust: Option<TsaTrust>,
    /// Check explicit RFC 9162 inclusion proofs for at most this many events (spread evenly);
    /// root recomputation covers all events regardless.
    pub max_inclusion_proofs: u64,
}

/// One problem found, naming the event or checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// The row's body no longer hashes to the leaf recorded on disk and matches no other leaf.
    EventModified {
        seq: u64,
        event_id: String,
        detail: String,
    },
    /// A search column no longer matches the signed body (e.g. patient_id rewritten).
    ColumnsTampered {
        seq: u64,
        event_id: String,
        columns: Vec<String>,
    },
    /// The event recorded at `seq` is missing from the database.
    EventDeleted {
        seq: u64,
    },
    /// The event at `seq` was recorded at `original_seq`.
    EventReordered {
        seq: u64,
        event_id: String,
        original_seq: u64,
    },
    /// The disk mirror's leaf for `seq` was changed (the database still reproduces the checkpoint).
    DiskLeafModified {
        seq: u64,
        event_id: String,
    },
    /// The disk mirror lacks the leaf for `seq` (truncated).
    DiskLeafMissing {
        seq: u64,
        event_id: String,
    },
    /// The database and the disk mirror agree but not with the signed checkpoint: both were edited.
    CheckpointRootMismatch {
        tree_size: u64,
        which: &'static str,
        first_suspect_seq: u64,
    },
    CheckpointSignatureInvalid {
        tree_size: u64,
    },
    TimeStampInvalid {
        tree_size: u64,
        reason: String,
    },
    TimeStampMissing {
        tree_size: u64,
    },
    /// A checkpoint exists in one place only, or differs between the database and disk.
    CheckpointCopiesDiffer {
        tree_size: u64,
        detail: String,
    },
    CheckpointBeyondLog {
        tree_size: u64,
        log_size: u64,
    },
    ConsistencyFailed {
        from: u64,
        to: u64,
    },
    InclusionFailed {
        seq: u64,
        event_id: String,
        tree_size: u64,
    },
    /// The pseudonym table disagrees with the registrations logged by the audit service.
    Pseudonym(crate::pseudonym::check::Mismatch),
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Finding::EventModified { seq, event_id, detail } => {
                write!(f, "event seq {seq} (id {event_id}) was modified: {detail}")
            }
            Finding::ColumnsTampered { seq, event_id, columns } => {
                write!(
                    f,
                    "event seq {seq} (id {event_id}) was modified: column(s) {} differ from the signed event",
                    columns.join(", ")
                )
            }
            Finding::EventDeleted { seq } => write!(f, "event seq {seq} was deleted from the database"),
            Finding::EventReordered { seq, event_id, original_seq } => {
                write!(
                    f,
                    "event seq {seq} (id {event_id}) was reordered: it was recorded at seq {original_seq}"
                )
            }
            Finding::DiskLeafModified { seq, event_id } => {
                write!(f, "event seq {seq} (id {event_id}): its leaf in the disk mirror was modified")
            }
            Finding::DiskLeafMissing { seq, event_id } => {
                write!(f, "event seq {seq} (id {event_id}) has no leaf in the disk mirror (truncated)")
            }
            Finding::CheckpointRootMismatch { tree_size, which, first_suspect_seq } => write!(
                f,
                "checkpoint {tree_size}: the {which} does not reproduce the signed root; an event in seq {first_suspect_seq}..{} was changed",
                tree_size.saturating_sub(1)
            ),
            Finding::CheckpointSignatureInvalid { tree_size } => {
                write!(f, "checkpoint {tree_size}: ed25519 signature invalid")
            }
            Finding::TimeStampInvalid { tree_size, reason } => {
                write!(f, "checkpoint {tree_size}: RFC 3161 time stamp invalid: {reason}")
            }
            Finding::TimeStampMissing { tree_size } => {
                write!(f, "checkpoint {tree_size}: no RFC 3161 time stamp")
            }
            Finding::CheckpointCopiesDiffer { tree_size, detail } => {
                write!(f, "checkpoint {tree_size}: {detail}")
            }
            Finding::CheckpointBeyondLog { tree_size, log_size } => {
                write!(
                    f,
                    "checkpoint {tree_size} covers more events than the log holds ({log_size}): events seq {log_size}..{} were deleted",
                    tree_size - 1
                )
            }
            Finding::ConsistencyFailed { from, to } => {
                write!(f, "checkpoints {from} -> {to}: consistency proof fails (history rewritten)")
            }
            Finding::InclusionFailed { seq, event_id, tree_size } => {
                write!(f, "event seq {seq} (id {event_id}): inclusion proof in checkpoint {tree_size} fails")
            }
            Finding::Pseudonym(m) => write!(f, "{m}"),
        }
    }
}

/// The outcome of a verification.
#[derive(Debug, Default)]
pub struct VerifyReport {
    pub events: u64,
    pub disk_leaves: u64,
    pub checkpoints: u64,
    pub consistency_proofs: u64,
    pub inclusion_proofs: u64,
    pub timestamps_verified: u64,
    /// Checkpoints without a time stamp while no TSA is trusted (not findings).
    pub unstamped: u64,
    /// Events after the newest checkpoint: not yet covered by a signature.
    pub uncovered_events: u64,
    pub findings: Vec<Finding>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.findings.is_empty()
    }
}

/// Run every check; errors only for I/O problems, never for tampering (that is a finding).
pub async fn verify(opts: &VerifyOptions) -> Result<VerifyReport> {
    let mut rep = VerifyReport::default();
    let disk = read_disk_leaves(&opts.data_dir)?;
    rep.disk_leaves = disk.len() as u64;
    let mut mismatches: Vec<(u64, String, Hash)> = Vec::new();

    let db = Db::open(&opts.database_url).await?;
    let sql = format!("SELECT {STORED_COLUMNS} FROM audit_event ORDER BY seq");
    let mut rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch(&db.pool);
    let mut db_tree = MerkleTree::new();
    let mut ids: Vec<String> = Vec::new();
    let mut expected: u64 = 0;
    let mut pseudonyms = crate::pseudonym::check::LoggedState::default();
    while let Some(r) = rows.try_next().await? {
        let seq: i64 = r.try_get("seq")?;
        let seq = seq as u64;
        let body: Vec<u8> = r.try_get("body")?;
        let stored = IndexedColumns::from_row(&r)?;
        let event_id = stored.event_id.clone();
        while expected < seq {
            rep.findings.push(Finding::EventDeleted { seq: expected });
            expected += 1;
        }
        expected = seq + 1;
        let leaf = leaf_hash(&body);
        match AuditEvent::from_json(&body) {
            Ok(ev) => {
                pseudonyms.add(&ev);
                let derived = IndexedColumns::of(&ev);
                let diff = derived.differences(&stored);
                if !diff.is_empty() {
                    rep.findings.push(Finding::ColumnsTampered {
                        seq,
                        event_id: event_id.clone(),
                        columns: diff.iter().map(|s| s.to_string()).collect(),
                    });
                }
            }
            Err(e) => rep.findings.push(Finding::EventModified {
                seq,
                event_id: event_id.clone(),
                detail: format!("body is no longer a valid event: {e}"),
            }),
        }
        match disk.get(seq as usize) {
            Some(d) if *d == leaf => {}
            Some(_) => mismatches.push((seq, event_id.clone(), leaf)),
            None => rep.findings.push(Finding::DiskLeafMissing { seq, event_id: event_id.clone() }),
        }
        db_tree.push(leaf);
        ids.push(event_id);
        rep.events += 1;
    }
    drop(rows);
    while expected < disk.len() as u64 {
        rep.findings.push(Finding::EventDeleted { seq: expected });
        expected += 1;
    }
    let mut disk_tree = MerkleTree::new();
    for h in &disk {
        disk_tree.push(*h);
    }

    // Checkpoints: both copies must agree; each must be signed, stamped and reproduced by the data.
    let db_cps = read_db_checkpoints(&db).await?;
    let disk_cps = read_disk_checkpoints(&opts.data_dir)?;
    let mut all: std::collections::BTreeMap<u64, Checkpoint> = std::collections::BTreeMap::new();
    for cp in &db_cps {
        match disk_cps.iter().find(|d| d.tree_size == cp.tree_size) {
            None => rep.findings.push(Finding::CheckpointCopiesDiffer {
                tree_size: cp.tree_size,
                detail: "missing from the disk copy".into(),
            }),
            Some(d) if !same_checkpoint(d, cp) => rep.findings.push(Finding::CheckpointCopiesDiffer {
                tree_size: cp.tree_size,
                detail: "database and disk copies differ".into(),
            }),
            _ => {}
        }
        all.insert(cp.tree_size, cp.clone());
    }
    for d in &disk_cps {
        if let std::collections::btree_map::Entry::Vacant(slot) = all.entry(d.tree_size) {
            rep.findings.push(Finding::CheckpointCopiesDiffer {
                tree_size: d.tree_size,
                detail: "missing from the database (deleted?)".into(),
            });
            slot.insert(d.clone());
        }
    }
    rep.checkpoints = all.len() as u64;
    let mut prev: Option<&Checkpoint> = None;
    let mut last_good: Option<&Checkpoint> = None;
    for cp in all.values() {
        let n = cp.tree_size;
        if !cp.verify_signature(&opts.public_key) {
            rep.findings.push(Finding::CheckpointSignatureInvalid { tree_size: n });
            continue;
        }
        match (&cp.tst, &opts.tsa_trust) {
            (None, None) => rep.unstamped += 1,
            (None, Some(_)) => rep.findings.push(Finding::TimeStampMissing { tree_size: n }),
            (Some(_), None) => rep.findings.push(Finding::TimeStampInvalid {
                tree_size: n,
                reason: "no trusted TSA certificate configured".into(),
            }),
            (Some(t), Some(trust)) => match tsa::verify_token(t, &cp.stamped_bytes(), trust) {
                Ok(_) => rep.timestamps_verified += 1,
                Err(reason) => rep.findings.push(Finding::TimeStampInvalid { tree_size: n, reason }),
            },
        }
        let suspect = prev.map_or(0, |p| p.tree_size);
        for (which, tree) in [("database", &db_tree), ("disk mirror", &disk_tree)] {
            match tree.root_at(n) {
                None => {
                    if which == "database" {
                        rep.findings
                            .push(Finding::CheckpointBeyondLog { tree_size: n, log_size: tree.size() })
                    }
                }
                Some(root) if root != cp.root => rep.findings.push(Finding::CheckpointRootMismatch {
                    tree_size: n,
                    which,
                    first_suspect_seq: suspect,
                }),
                Some(_) => {}
            }
        }
        // Consistency with the previous checkpoint, proved from the disk mirror's tree.
        if let Some(p) = prev
            && n <= disk_tree.size()
        {
            let proof = disk_tree.consistency_proof(p.tree_size, n).expect("sizes within tree");
            rep.consistency_proofs += 1;
            if !verify_consistency(p.tree_size, n, &p.root, &cp.root, &proof) {
                rep.findings.push(Finding::ConsistencyFailed { from: p.tree_size, to: n });
            }
        }
        prev = Some(cp);
        if db_tree.root_at(n) == Some(cp.root) {
            last_good = Some(cp);
        }
    }
    // Database and disk disagree on a leaf: which side changed? The one that no longer reproduces
    // the first checkpoint covering it; a leaf found elsewhere on disk means the rows were reordered.
    if !mismatches.is_empty() {
        let idx: HashMap<Hash, u64> = disk.iter().enumerate().map(|(i, h)| (*h, i as u64)).collect();
        for (seq, event_id, leaf) in mismatches {
            let covering = all.values().find(|c| c.tree_size > seq);
            let disk_side = covering.is_some_and(|c| {
                db_tree.root_at(c.tree_size) == Some(c.root) && disk_tree.root_at(c.tree_size) != Some(c.root)
            });
            if disk_side {
                rep.findings.push(Finding::DiskLeafModified { seq, event_id });
            } else if let Some(orig) = idx.get(&leaf).filter(|o| **o != seq) {
                rep.findings.push(Finding::EventReordered { seq, event_id, original_seq: *orig });
            } else {
                rep.findings.push(Finding::EventModified {
                    seq,
                    event_id,
                    detail: "its content no longer matches the leaf hash recorded when it was logged".into(),
                });
            }
        }
    }
    // Explicit inclusion proofs of the stored events in the newest checkpoint they reproduce.
    if let Some(cp) = last_good {
        let n = cp.tree_size;
        let step = (n / opts.max_inclusion_proofs.max(1)).max(1);
        let mut i = 0;
        while i < n {
            let proof = db_tree.inclusion_proof(i, n).expect("index within tree");
            rep.inclusion_proofs += 1;
            if !verify_inclusion(i, n, db_tree.leaf(i).expect("leaf"), &proof, &cp.root) {
                rep.findings.push(Finding::InclusionFailed {
                    seq: i,
                    event_id: ids[i as usize].clone(),
                    tree_size: n,
                });
            }
            i += step;
        }
    }
    // The pseudonym table against the registrations in the (now verified) log.
    for m in crate::pseudonym::check::compare(&db, &pseudonyms).await? {
        rep.findings.push(Finding::Pseudonym(m));
    }
    rep.uncovered_events = rep.events.saturating_sub(all.keys().next_back().copied().unwrap_or(0));
    db.pool.close().await;
    Ok(rep)
}

/// Two copies of a checkpoint agree; a time stamp obtained later may be on one copy only.
fn same_checkpoint(a: &Checkpoint, b: &Checkpoint) -> bool {
    let strip = |c: &Checkpoint| Checkpoint { tst: None, ..c.clone() };
    strip(a) == strip(b) && (a.tst.is_none() || b.tst.is_none() || a.tst == b.tst)
}
