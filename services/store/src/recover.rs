//! Start-up recovery: finish every journal entry that a crash left half-applied, in the tree and in
//! the index, then remove staged files that were never committed. Replaying is idempotent, so a
//! crash during recovery is recovered the same way.
//!
//! A file recovery puts in the index is also added to its site's daily counters (`site_daily`,
//! stored and bytes, on the day of its journal entry), in the transaction that inserts its record:
//! an entry whose record is already there (the live path or an earlier run committed it) is not
//! counted again, so every stored file is counted exactly once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use ssmix2::hl7::MessageView;
use ssmix2::{FileName, StoragePath};

use crate::apply::{Mode, apply_to_tree, sync_dirs};
use crate::data_lock::DataDirLock;
use crate::db::Db;
use crate::extract::extract;
use crate::index::{self, StoredFile, Tally, version_key};
use crate::journal::{Change, Entry, JournalReader};
use crate::tree::{Tree, hash_file};
use crate::{FacilityId, StoreError};

/// What recovery did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Journal entries replayed (beyond the index's watermark).
    pub replayed: u64,
    /// Staged files removed (uploads that never reached the journal).
    pub staged_removed: usize,
    /// The watermark after recovery: every entry up to it is in the tree and the index.
    pub applied: u64,
}

/// Replays the journal after the index's watermark into the tree and the index. It writes the
/// data folder, so the caller must hold its lock (`_held`), as [`crate::Store::open`] does.
pub async fn recover(
    _held: &DataDirLock,
    tree: &Arc<Tree>,
    journal_dir: &std::path::Path,
    db: &Db,
    volume_label: &str,
) -> Result<Recovered, StoreError> {
    let mut applied = index::applied(db).await?;
    let mut reader = JournalReader::new(journal_dir, applied + 1);
    let mut replayed = 0u64;
    loop {
        let entries = reader.poll(256)?;
        let Some(last) = entries.last().map(|e| e.seq) else { break };
        let (t, es) = (tree.clone(), entries.clone());
        tokio::task::spawn_blocking(move || -> Result<(), StoreError> {
            let mut dirs = BTreeSet::new();
            for e in &es {
                apply_to_tree(&t, e, Mode::Replay, &mut dirs)?;
            }
            sync_dirs(&dirs)
        })
        .await
        .map_err(|e| StoreError::Recovery(format!("replay task failed: {e}")))??;
        let _w = db.write_guard().await;
        let mut tx = db.begin_write().await?;
        // Files this run puts in the index, per site and day, for the counters the live path
        // would have added (the agent's retry of such a file is answered "duplicate").
        let mut counts: BTreeMap<(String, String), Tally> = BTreeMap::new();
        for e in &entries {
            let stored = stored_file_for(tree, db, e).await?;
            let inserted = index::apply_entry(&mut tx, db.backend, volume_label, e, stored.as_ref()).await?;
            if let (Some(_), Some(s)) = (inserted, &stored) {
                let c = counts.entry((e.site.clone(), entry_day(e)?)).or_default();
                c.stored += 1;
                c.bytes += s.size;
            }
        }
        for ((site, day), tally) in &counts {
            index::add_site_daily(&mut tx, site, day, tally).await?;
        }
        index::set_applied(&mut tx, last).await?;
        db.commit(tx).await?;
        replayed += entries.len() as u64;
        applied = last;
    }
    let t = tree.clone();
    let staged_removed = tokio::task::spawn_blocking(move || t.clean_staging())
        .await
        .map_err(|e| StoreError::Recovery(format!("staging cleanup failed: {e}")))??;
    if replayed > 0 || staged_removed > 0 {
        tracing::warn!(replayed, staged_removed, applied, "recovered after an unclean stop");
    }
    Ok(Recovered { replayed, staged_removed, applied })
}

/// The UTC day an entry was committed: the day its files count as stored.
fn entry_day(e: &Entry) -> Result<String, StoreError> {
    let t: jiff::Timestamp = e
        .time
        .parse()
        .map_err(|err| StoreError::Recovery(format!("entry {}: time {:?}: {err}", e.seq, e.time)))?;
    Ok(index::utc_day(t))
}

/// The index data for an entry's write, read back from the tree; `None` when the index has it.
async fn stored_file_for(tree: &Tree, db: &Db, e: &Entry) -> Result<Option<StoredFile>, StoreError> {
    let Some((path, superseded)) = e.changes.iter().find_map(|c| match c {
        Change::Write { path, .. } => {
            Some((path.clone(), e.changes.iter().any(|c| matches!(c, Change::Rename { .. }))))
        }
        _ => None,
    }) else {
        return Ok(None);
    };
    let fac = FacilityId::new(&e.facility)?;
    let sp = StoragePath::parse(&path)
        .map_err(|err| StoreError::Recovery(format!("entry {}: {path}: {err}", e.seq)))?;
    if index::has_version(db, fac.as_str(), &sp.name).await? {
        return Ok(None);
    }
    // The file may have been renamed since by a later entry: find it by its version.
    let key = version_key(&sp.name);
    let dir = tree.dir_of(&fac, &sp);
    let found: Option<FileName> = tree.list(&dir)?.into_iter().find(|n| version_key(n) == key);
    let Some(found) = found else {
        tracing::error!(seq = e.seq, %path, "journal entry's file is missing from the tree; not indexed");
        return Ok(None);
    };
    let file = tree.path_of(&fac, &StoragePath::of(found));
    let bytes = std::fs::read(&file).map_err(|err| StoreError::io(&file, err))?;
    let (sha256, size) = hash_file(&file)?;
    let text = ssmix2::hl7::decode_iso2022jp(&bytes);
    let extracted = match text.as_deref().map_err(Clone::clone).and_then(MessageView::parse) {
        Ok(m) => extract(&m, &sp.name),
        Err(err) => {
            tracing::error!(file = %file.display(), %err, "stored file no longer parses; indexed without search rows");
            Default::default()
        }
    };
    Ok(Some(StoredFile {
        processing_type: index::processing_type(&sp.name, superseded),
        facility: fac,
        path: sp,
        sha256,
        size,
        site: e.site.clone(),
        extracted,
    }))
}
