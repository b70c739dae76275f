//! The durable outbox: valid files wait here, one flat directory named by SS-MIX2 file name, until the
//! store has acknowledged them. A file is in the export folder or the outbox (briefly both, after a
//! cross-device copy), so a crash loses nothing; a restart re-reads the directory.
//!
//! Uploads in flight at once each [`Outbox::claim`] their batch: a claimed file is not handed out
//! again until its claim is dropped (the upload failed) or it is completed or taken out.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest, Sha256};
use ssmix2::{FileName, StoragePath};

use crate::durable;

/// One file waiting for upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: StoragePath,
    pub size: u64,
}

impl Entry {
    pub fn name(&self) -> String {
        self.path.name.to_string()
    }
}

/// What became of a file offered to the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Moved in; it will be uploaded.
    Queued,
    /// The same bytes under the same name were already waiting; the export copy was removed (after
    /// an fsync of the outbox folder, so the waiting file is durable) — unless the offered file is
    /// the waiting file itself, which stays.
    AlreadyQueued,
    /// Other bytes under the same name are still waiting; the file stays in the export folder until
    /// they are gone (then the store decides).
    Busy,
}

/// A checked file offered to the outbox.
#[derive(Debug, Clone)]
pub struct Offer {
    pub src: PathBuf,
    pub path: StoragePath,
    pub size: u64,
    pub sha256: [u8; 32],
}

/// Upload order: by the message's creation timestamp from the file name, then by name.
type Key = (String, String);

fn key_of(name: &FileName) -> Key {
    (name.timestamp.to_string(), name.to_string())
}

/// True unless `a` and `b` are known to be different files (device and inode): a source that may be
/// the outbox's own file is left alone.
fn may_be_same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => true,
    }
}

/// A waiting file and the claim (upload in flight) holding it, if any.
#[derive(Debug)]
struct Slot {
    entry: Entry,
    claim: Option<u64>,
}

/// The in-memory index: waiting files in upload order, and the number for the next claim.
#[derive(Debug, Default)]
struct Queue {
    files: BTreeMap<Key, Slot>,
    next_claim: u64,
}

impl Queue {
    fn insert(&mut self, entry: Entry) {
        self.files.insert(key_of(&entry.path.name), Slot { entry, claim: None });
    }
}

/// The outbox directory and an in-memory index of its files.
pub struct Outbox {
    dir: PathBuf,
    queue: Mutex<Queue>,
}

/// Files handed to one upload. Dropping it hands back those not completed or taken out since.
pub struct Claim<'a> {
    outbox: &'a Outbox,
    id: u64,
    entries: Vec<Entry>,
}

impl Claim<'_> {
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        let mut queue = self.outbox.lock();
        for e in &self.entries {
            // Only this claim's: a file completed since and admitted again under the same name
            // may belong to a later claim.
            if let Some(slot) = queue.files.get_mut(&key_of(&e.path.name))
                && slot.claim == Some(self.id)
            {
                slot.claim = None;
            }
        }
    }
}

impl Outbox {
    /// Opens (creating if needed) the outbox, removes temp files left by a crash and indexes what waits.
    /// Files whose names do not parse are returned so the caller can quarantine them.
    pub fn open(dir: &Path) -> io::Result<(Self, Vec<PathBuf>)> {
        durable::create_dir_all_synced(dir)?;
        durable::remove_temp_files(dir)?;
        // A crash may have left entries whose rename was never fsynced: make them durable now, since
        // an offer of the same file is answered `AlreadyQueued` and its source removed.
        durable::sync_dir(dir)?;
        let mut queue = Queue::default();
        let mut strays = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let meta = entry.metadata()?;
            let parsed = entry.file_name().to_str().and_then(|n| FileName::parse(n).ok());
            match parsed {
                Some(name) if meta.is_file() => {
                    queue.insert(Entry { path: StoragePath::of(name), size: meta.len() });
                }
                _ => strays.push(entry.path()),
            }
        }
        Ok((Self { dir: dir.to_owned(), queue: Mutex::new(queue) }, strays))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Files waiting, claimed or not.
    pub fn len(&self) -> usize {
        self.lock().files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().files.is_empty()
    }

    /// Fsyncs the outbox folder (a unit test can make this fail).
    fn sync_outbox(&self) -> io::Result<()> {
        #[cfg(test)]
        if tests::FAIL_SYNC.get() {
            return Err(io::Error::other("injected fsync failure"));
        }
        durable::sync_dir(&self.dir)
    }

    /// Where the outbox keeps `entry`.
    pub fn file_of(&self, entry: &Entry) -> PathBuf {
        self.dir.join(entry.name())
    }

    /// Moves `src` (already checked, content digest `sha256`) into the outbox durably.
    pub fn admit(
        &self,
        src: &Path,
        path: StoragePath,
        size: u64,
        sha256: &[u8; 32],
    ) -> io::Result<Admission> {
        let mut out = self.admit_many(vec![Offer { src: src.to_owned(), path, size, sha256: *sha256 }]);
        out.pop().expect("one answer per offer")
    }

    /// Moves a group of checked files into the outbox, sharing the directory fsync: every file is
    /// renamed (or copied and fsynced) into place without replacing anything, the outbox directory
    /// is fsynced once, and only then are copied sources and those of `AlreadyQueued` answers
    /// unlinked. One answer per offer, in order.
    ///
    /// The export folders are not fsynced after their files leave: if a crash undoes a removal
    /// there, the file is offered again and answered `AlreadyQueued` (still waiting) or, once
    /// uploaded, `duplicate` by the store, so nothing is lost or doubled. Their fsyncs cost one per
    /// source folder, which in an SS-MIX2 tree is about one per file.
    pub fn admit_many(&self, offers: Vec<Offer>) -> Vec<io::Result<Admission>> {
        // The index lock is held across checks and moves so that `complete` cannot remove a
        // same-named file in between.
        let mut queue = self.lock();
        let mut answers: Vec<io::Result<Admission>> = Vec::with_capacity(offers.len());
        let mut copied: Vec<(usize, PathBuf)> = Vec::new();
        // Sources of `AlreadyQueued` answers: the waiting file may have been placed earlier in this
        // group (or by a call whose fsync failed), so they too wait for the fsync below.
        let mut already: Vec<(usize, PathBuf)> = Vec::new();
        let mut placed: Vec<(usize, Entry)> = Vec::new();
        // After one "disk full", the rest of the group is not tried.
        let mut full: Option<io::ErrorKind> = None;
        for (i, offer) in offers.into_iter().enumerate() {
            if let Some(kind) = full {
                answers.push(Err(io::Error::new(kind, "no space left in the outbox")));
                continue;
            }
            let dest = self.dir.join(offer.path.name.to_string());
            // The index knows every file in the outbox, so a new name is moved in without a look.
            let placed_now = if queue.files.contains_key(&key_of(&offer.path.name)) {
                Err(io::Error::from(io::ErrorKind::AlreadyExists))
            } else {
                durable::place_file(&offer.src, &dest)
            };
            let answer = match placed_now {
                Ok(how) => {
                    if how == durable::Placed::Copied {
                        copied.push((i, offer.src.clone()));
                    }
                    placed.push((i, Entry { path: offer.path, size: offer.size }));
                    Ok(Admission::Queued)
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match fs::read(&dest) {
                    Ok(existing) if <[u8; 32]>::from(Sha256::digest(&existing)) == offer.sha256 => {
                        // The offer may be the waiting file itself, reached by another path (an
                        // export folder that holds the state folder): that source is never removed.
                        if !may_be_same_file(&offer.src, &dest) {
                            already.push((i, offer.src.clone()));
                        }
                        Ok(Admission::AlreadyQueued)
                    }
                    Ok(_) => Ok(Admission::Busy),
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            };
            if let Err(e) = &answer
                && crate::error::is_disk_full(e)
            {
                full = Some(e.kind());
            }
            answers.push(answer);
        }
        if !(placed.is_empty() && already.is_empty())
            && let Err(e) = self.sync_outbox()
        {
            // The files are in the outbox but not known durable: keep the sources (a copy may then
            // exist twice, which the store's deduplication absorbs) and index what is there.
            let failed = || Err(io::Error::new(e.kind(), format!("fsync of the outbox: {e}")));
            for (i, entry) in placed {
                queue.insert(entry);
                answers[i] = failed();
            }
            for (i, _) in already {
                answers[i] = failed();
            }
            return answers;
        }
        for (i, src) in copied.into_iter().chain(already) {
            if let Err(e) = fs::remove_file(&src) {
                answers[i] = Err(e);
            }
        }
        for (_, entry) in placed {
            queue.insert(entry);
        }
        answers
    }

    /// Claims the next unclaimed files to upload, oldest first, within the batch limits (one file
    /// always fits). Empty when every waiting file is claimed.
    pub fn claim(&self, max_files: usize, max_bytes: u64) -> Claim<'_> {
        let mut queue = self.lock();
        let id = queue.next_claim;
        queue.next_claim += 1;
        let mut entries = Vec::new();
        let mut bytes = 0u64;
        for slot in queue.files.values_mut().filter(|s| s.claim.is_none()) {
            if entries.len() >= max_files || (!entries.is_empty() && bytes + slot.entry.size > max_bytes) {
                break;
            }
            bytes += slot.entry.size;
            slot.claim = Some(id);
            entries.push(slot.entry.clone());
        }
        Claim { outbox: self, id, entries }
    }

    /// True when some waiting file is not claimed by an upload (the tests' view of the claims).
    #[cfg(test)]
    pub fn has_unclaimed(&self) -> bool {
        self.lock().files.values().any(|s| s.claim.is_none())
    }

    /// Hands `entry`'s file to `move_out` (which must move it elsewhere), then forgets the entry.
    pub fn take_out(&self, entry: &Entry, move_out: impl FnOnce(&Path) -> io::Result<()>) -> io::Result<()> {
        let mut queue = self.lock();
        match move_out(&self.file_of(entry)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        queue.files.remove(&key_of(&entry.path.name));
        Ok(())
    }

    /// Deletes acknowledged files. The removals are not fsynced: a crash that undoes one leaves a
    /// file that is sent again and answered `duplicate`, so an fsync of the folder (a disk cache
    /// flush per batch) would buy nothing.
    pub fn complete(&self, entries: &[Entry]) -> io::Result<()> {
        let mut queue = self.lock();
        for e in entries {
            match fs::remove_file(self.file_of(e)) {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(err) => return Err(err),
            }
            queue.files.remove(&key_of(&e.path.name));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    thread_local! {
        /// Makes [`Outbox::sync_outbox`] fail on this thread.
        pub(super) static FAIL_SYNC: Cell<bool> = const { Cell::new(false) };
    }

    /// A source answered `AlreadyQueued` is removed only after a successful fsync of the outbox
    /// folder in the same call, as a copied source is: the waiting entry may have been placed
    /// earlier in the same group, or by a call whose fsync failed, and a crash could then undo it.
    /// (That `open` fsyncs the folder, so entries found at start are durable, cannot be observed
    /// without a crash; it is one line there.)
    #[test]
    fn already_queued_sources_are_removed_only_after_the_outbox_fsync() {
        let d = tempfile::tempdir().unwrap();
        let export = d.path().join("export");
        fs::create_dir(&export).unwrap();
        let (outbox, _) = Outbox::open(&d.path().join("outbox")).unwrap();
        let offer = |file: &str, ts: &str, body: &[u8]| {
            let src = export.join(file);
            fs::write(&src, body).unwrap();
            Offer { src, path: name(ts), size: body.len() as u64, sha256: Sha256::digest(body).into() }
        };
        let a = offer("a", "20111220224447338", b"a");
        assert_eq!(outbox.admit_many(vec![a]).pop().unwrap().unwrap(), Admission::Queued);

        FAIL_SYNC.set(true);
        // The same bytes again, and one name offered twice in one group.
        let again = offer("a-again", "20111220224447338", b"a");
        let b1 = offer("b1", "20111220224447339", b"b");
        let b2 = offer("b2", "20111220224447339", b"b");
        let answers = outbox.admit_many(vec![again.clone(), b1, b2.clone()]);
        FAIL_SYNC.set(false);
        assert!(answers.iter().all(|a| a.is_err()), "{answers:?}");
        assert!(again.src.exists() && b2.src.exists(), "a source was removed before the outbox fsync");

        let answers = outbox.admit_many(vec![again.clone(), b2.clone()]);
        assert!(answers.iter().all(|a| matches!(a, Ok(Admission::AlreadyQueued))), "{answers:?}");
        assert!(!again.src.exists() && !b2.src.exists());
        assert_eq!(outbox.len(), 2);
    }

    /// The reviewer's data loss at the outbox: with the state folder inside the export folder, a
    /// rescan offered the outbox's own file, the answer was `AlreadyQueued` and the "source" (the
    /// waiting file itself) was deleted. Offered by its own path or through a symbolic link to the
    /// outbox, a waiting file stays and stays queued.
    #[test]
    fn a_waiting_file_offered_as_its_own_source_is_never_deleted() {
        let d = tempfile::tempdir().unwrap();
        let export = d.path().join("export");
        fs::create_dir(&export).unwrap();
        let (outbox, _) = Outbox::open(&export.join("st/outbox")).unwrap();
        std::os::unix::fs::symlink(outbox.dir(), d.path().join("via-link")).unwrap();
        let body = b"waiting";
        let sha: [u8; 32] = Sha256::digest(body).into();
        let src = export.join("in");
        fs::write(&src, body).unwrap();
        let ts = "20111220224447338";
        assert_eq!(outbox.admit(&src, name(ts), 7, &sha).unwrap(), Admission::Queued);
        let waiting = outbox.file_of(&outbox.claim(1, 1).entries()[0]);
        for src in [waiting.clone(), d.path().join("via-link").join(waiting.file_name().unwrap())] {
            let answers = outbox.admit_many(vec![Offer { src, path: name(ts), size: 7, sha256: sha }]);
            assert!(matches!(answers[..], [Ok(Admission::AlreadyQueued)]), "{answers:?}");
            assert!(waiting.exists(), "the queued file was deleted");
            assert_eq!(fs::read(&waiting).unwrap(), body);
            assert_eq!(outbox.len(), 1);
        }
        // A separate copy of the same bytes is still removed from the export folder.
        fs::write(&src, body).unwrap();
        assert_eq!(outbox.admit(&src, name(ts), 7, &sha).unwrap(), Admission::AlreadyQueued);
        assert!(!src.exists() && waiting.exists());
    }

    /// Two uploads in flight never get the same file; a failed upload's files (its claim dropped)
    /// are handed out again, and completed ones never are.
    #[test]
    fn claims_are_disjoint_and_a_dropped_claim_hands_its_files_back() {
        let d = tempfile::tempdir().unwrap();
        let export = d.path().join("export");
        fs::create_dir(&export).unwrap();
        let (outbox, _) = Outbox::open(&d.path().join("outbox")).unwrap();
        for i in 0..5 {
            let src = export.join(i.to_string());
            fs::write(&src, [i]).unwrap();
            let sha: [u8; 32] = Sha256::digest([i]).into();
            let ts = format!("2011122022444733{i}");
            assert_eq!(outbox.admit(&src, name(&ts), 1, &sha).unwrap(), Admission::Queued);
        }
        let names = |c: &Claim| c.entries().iter().map(|e| e.name()).collect::<Vec<_>>();
        let a = outbox.claim(2, 100);
        let b = outbox.claim(2, 100);
        let c = outbox.claim(2, 100);
        assert_eq!((a.entries().len(), b.entries().len(), c.entries().len()), (2, 2, 1));
        let mut all: Vec<String> = [&a, &b, &c].iter().flat_map(|c| names(c)).collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 5, "a file was handed to two uploads");
        assert!(outbox.claim(2, 100).is_empty() && !outbox.has_unclaimed());
        assert_eq!(outbox.len(), 5, "claimed files still count as waiting");

        // `a` acknowledged, `b` failed.
        outbox.complete(a.entries()).unwrap();
        let (a_names, b_names) = (names(&a), names(&b));
        drop(a);
        drop(b);
        assert!(outbox.has_unclaimed());
        let again = outbox.claim(10, 100);
        assert_eq!(names(&again), b_names, "only the failed upload's files come back, oldest first");
        assert!(again.entries().iter().all(|e| !a_names.contains(&e.name())));
        drop(c);
        assert_eq!(outbox.len(), 3);
    }

    /// A claim dropped late leaves alone a file of the same name that was completed and admitted
    /// again meanwhile and now belongs to another upload.
    #[test]
    fn a_late_drop_does_not_release_another_claims_file() {
        let d = tempfile::tempdir().unwrap();
        let export = d.path().join("export");
        fs::create_dir(&export).unwrap();
        let (outbox, _) = Outbox::open(&d.path().join("outbox")).unwrap();
        let admit = || {
            let src = export.join("f");
            fs::write(&src, b"x").unwrap();
            let sha: [u8; 32] = Sha256::digest(b"x").into();
            assert_eq!(outbox.admit(&src, name("20111220224447338"), 1, &sha).unwrap(), Admission::Queued);
        };
        admit();
        let first = outbox.claim(10, 100);
        outbox.complete(first.entries()).unwrap();
        admit();
        let second = outbox.claim(10, 100);
        assert_eq!(second.entries().len(), 1);
        drop(first);
        assert!(outbox.claim(10, 100).is_empty(), "the first claim's drop released the second's file");
        drop(second);
        assert_eq!(outbox.claim(10, 100).entries().len(), 1);
    }

    fn name(ts: &str) -> StoragePath {
        StoragePath::of(FileName::parse(&format!("9999013_-_ADT-00_999999999999999_{ts}_-_1")).unwrap())
    }

    #[test]
    fn admits_orders_dedups_and_survives_reopen() {
        let d = tempfile::tempdir().unwrap();
        let export = d.path().join("export");
        fs::create_dir(&export).unwrap();
        let (outbox, strays) = Outbox::open(&d.path().join("outbox")).unwrap();
        assert!(strays.is_empty());
        let put = |ts: &str, body: &[u8]| {
            let src = export.join(ts);
            fs::write(&src, body).unwrap();
            let sha: [u8; 32] = Sha256::digest(body).into();
            (outbox.admit(&src, name(ts), body.len() as u64, &sha).unwrap(), src.exists())
        };
        assert_eq!(put("20111220224447339", b"b"), (Admission::Queued, false));
        assert_eq!(put("20111220224447338", b"a"), (Admission::Queued, false));
        assert_eq!(put("20111220224447338", b"a"), (Admission::AlreadyQueued, false));
        assert_eq!(put("20111220224447338", b"other"), (Admission::Busy, true));
        let batch = outbox.claim(10, 1);
        assert_eq!(batch.entries().len(), 1, "the byte limit stops after the first file");
        assert!(batch.entries()[0].name().contains("20111220224447338"));
        drop(batch);
        drop(outbox);
        let (outbox, _) = Outbox::open(&d.path().join("outbox")).unwrap();
        assert_eq!(outbox.len(), 2);
        let all = outbox.claim(10, 100);
        outbox.complete(all.entries()).unwrap();
        drop(all);
        assert!(outbox.is_empty());
        assert_eq!(fs::read_dir(outbox.dir()).unwrap().count(), 0);
    }
}
