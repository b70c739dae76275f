//! Verification: the primary's manifest against a replica's, by the Merkle tree of per-directory
//! digests. The root's summaries are compared first; only children whose digests differ are asked
//! for, level by level, so an unchanged pair costs one request and one streaming pass on each side,
//! and memory holds one directory's children at a time (plus the differing directories still to
//! visit). `repair` sends the primary's files where the replica differs and removes what only the
//! replica has.
//!
//! **Replication in flight.** Uploads do not stop for a verification: the primary's manifest
//! follows the store's journal while the replica is at some earlier journal entry (and foreign-log
//! position), and both move during the walk. A difference seen is therefore only a *candidate*.
//! After each pass, the store's journal from the replica's applied entry (read before the pass) up
//! to the store's watermark (read after it), and the foreign-file log likewise, are read for the
//! candidates' paths: a candidate no change in that range touched is a real difference (both sides
//! held that path's state of before the range, and the replica says it applied it). A touched one
//! is in flight: once the replica has acknowledged everything up to that watermark it is looked at
//! again (both sides' summaries of its folder asked anew, then the same test). Gone by then, it is
//! counted in [`Report::in_flight`]; still in flight when [`Options::settle`] has passed (the
//! follower did not ship it in time), it is reported, and counted in [`Report::unsettled`] too.
//! Candidates are held in memory up to [`Options::max_pending`]; past that, a difference is
//! reported without the in-flight test (never hidden).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kizuna_store::journal::{Change, JournalReader};
use serde::Serialize;

use crate::BackupError;
use crate::batch::{Ack, Builder, Put, Remove};
use crate::client::{ReplicaClient, Sent};
use crate::merkle::{Difference, Summary, compare};
use crate::paths::{TreePath, dkey_of_dir};
use crate::primary::{Primary, read_content};
use crate::replica::digests::{Check, summarise};

/// What differs at one path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub path: String,
    pub dir: bool,
    /// The primary's digest (None: the primary does not have it).
    pub primary: Option<String>,
    /// The replica's digest or what its check found (`missing`, `changed-on-disk`, `unrecorded`).
    pub replica: Option<String>,
}

/// The outcome of one verification.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub replica: String,
    /// Files on the primary's side (manifest).
    pub files: u64,
    /// Directory summaries asked of the replica.
    pub requests: u64,
    /// Differences (at most `max_findings` kept; `differences` counts them all).
    pub findings: Vec<Finding>,
    pub differences: u64,
    /// Differences seen while the change behind them was not yet on the replica, gone once it had
    /// applied it: replication in flight, not differences.
    pub in_flight: u64,
    /// Of `differences`: still in flight when `settle` ran out (the follower had not shipped
    /// them). Not repaired: shipping them is the follower's work.
    pub unsettled: u64,
    /// Passes that looked at in-flight candidates again.
    pub rechecks: u64,
    /// Files written to and removed from the replica by the repair.
    pub repaired_files: u64,
    pub removed: u64,
    /// Differences the repair could not fix: the primary's own copy no longer matches its record,
    /// or the difference was still in flight when `settle` ran out.
    pub unrepairable: u64,
    pub primary_seq: u64,
    pub replica_seq: u64,
    pub seconds: f64,
}

impl Report {
    pub fn clean(&self) -> bool {
        self.differences == 0
    }
}

/// Options of one verification.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub check: Check,
    pub repair: bool,
    pub max_findings: usize,
    /// Files per repair batch.
    pub repair_batch: usize,
    /// How long, after the first pass, to wait for the replica to apply what was in flight.
    pub settle: Duration,
    /// Candidate differences a pass collects for the in-flight test (memory bound: about 450
    /// bytes each, and a re-check holds the previous pass's too); past it a difference is
    /// reported without the test.
    pub max_pending: usize,
}

/// Default of [`Options::settle`] and of `follow.verify.settle_s`, seconds.
pub const DEFAULT_SETTLE_S: u64 = 120;

impl Default for Options {
    fn default() -> Self {
        Self {
            check: Check::Stat,
            repair: false,
            max_findings: 1000,
            repair_batch: 500,
            settle: Duration::from_secs(DEFAULT_SETTLE_S),
            max_pending: 50_000,
        }
    }
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() { name.to_owned() } else { format!("{prefix}/{name}") }
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map(|(d, _)| d).unwrap_or("")
}

/// A difference seen, not yet known to be real.
#[derive(Debug, Clone)]
struct Candidate {
    path: String,
    dir: bool,
    primary: Option<String>,
    replica: Option<String>,
}

/// Compares the primary with one replica (and repairs when asked).
pub async fn verify(
    primary: &Arc<Primary>,
    client: &ReplicaClient,
    opts: Options,
) -> Result<Report, BackupError> {
    verify_paused(primary, client, opts, None).await
}

/// As [`verify`]; `pause` (the shipper's) is held while a repair batch is sent, so that repairs do
/// not interleave with shipping to the same replica. Shipping goes on during the comparison: the
/// in-flight candidates need it to settle.
pub async fn verify_paused(
    primary: &Arc<Primary>,
    client: &ReplicaClient,
    opts: Options,
    pause: Option<&tokio::sync::Mutex<()>>,
) -> Result<Report, BackupError> {
    let started = Instant::now();
    // The replica's position first, then the manifest brought up to the store's watermark: the
    // manifest is then at or past the replica (which never passes the watermark).
    let ack = client.state().await?;
    let primary_seq = primary.catch_up().await?;
    let mut v = Verifier {
        primary,
        client,
        opts,
        report: Report {
            replica: client.name.clone(),
            primary_seq,
            replica_seq: ack.applied_seq,
            ..Report::default()
        },
        repair: Repair { builder: Builder::default(), files: 0, pause },
    };
    let mut found = Vec::new();
    v.descend(vec![String::new()], &mut found).await?;
    let (mut pending, mut target) = v.settle(found, ack).await?;
    let deadline = Instant::now() + opts.settle;
    while !pending.is_empty() {
        if !wait_for(client, target, deadline).await {
            tracing::warn!(replica = %client.name, pending = pending.len(), target_seq = target.applied_seq,
                "differences still in flight when verify.settle ran out; reported");
            break;
        }
        v.report.rechecks += 1;
        let ack = client.state().await?;
        primary.catch_up().await?;
        let mut found = Vec::new();
        v.recheck(pending, &mut found).await?;
        (pending, target) = v.settle(found, ack).await?;
    }
    for c in pending {
        v.report.unsettled += 1;
        v.report.unrepairable += u64::from(opts.repair);
        note(&mut v.report, &opts, c);
    }
    v.repair.flush(client).await?;
    let mut report = v.report;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Waits until the replica has acknowledged `target` (journal entry and foreign-log position);
/// false if `deadline` came first. A failed request counts as not yet.
async fn wait_for(client: &ReplicaClient, target: Ack, deadline: Instant) -> bool {
    loop {
        if let Ok(a) = client.state().await
            && a.applied_seq >= target.applied_seq
            && a.foreign_applied >= target.foreign_applied
        {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        tokio::time::sleep((deadline - now).min(Duration::from_millis(50))).await;
    }
}

struct Verifier<'a> {
    primary: &'a Arc<Primary>,
    client: &'a ReplicaClient,
    opts: Options,
    report: Report,
    repair: Repair<'a>,
}

impl Verifier<'_> {
    /// Both sides' summaries of the directory `prefix`.
    async fn summaries(&mut self, prefix: &str) -> Result<(Summary, Summary), BackupError> {
        let (local, remote) = tokio::join!(
            summarise(&self.primary.manifest, None, prefix, Check::Recorded),
            self.client.digests(prefix, self.opts.check)
        );
        self.report.requests += 1;
        Ok((local?, remote?))
    }

    /// Walks down from each directory in `stack` (present on both sides) into the children whose
    /// digests differ; the differing files and one-sided directories go to `found`.
    async fn descend(
        &mut self,
        mut stack: Vec<String>,
        found: &mut Vec<Candidate>,
    ) -> Result<(), BackupError> {
        while let Some(prefix) = stack.pop() {
            let (local, remote) = self.summaries(&prefix).await?;
            if prefix.is_empty() {
                self.report.files = local.files;
            }
            if local.digest != remote.digest {
                self.children(&prefix, &local, &remote, &mut stack, found).await?;
            }
        }
        Ok(())
    }

    /// Sorts the differing children of `prefix`: subdirectories on both sides onto `stack`, the rest
    /// to `found` (or, past `max_pending`, reported at once).
    async fn children(
        &mut self,
        prefix: &str,
        local: &Summary,
        remote: &Summary,
        stack: &mut Vec<String>,
        found: &mut Vec<Candidate>,
    ) -> Result<(), BackupError> {
        for d in compare(&local.children, &remote.children) {
            let c = match d {
                Difference::Dir { name, primary: true, replica: true } => {
                    stack.push(join(prefix, &name));
                    continue;
                }
                Difference::Dir { name, primary: p, replica: r } => Candidate {
                    path: join(prefix, &name),
                    dir: true,
                    primary: p.then(|| "present".into()),
                    replica: r.then(|| "present".into()),
                },
                Difference::File { name, primary, replica } => {
                    Candidate { path: join(prefix, &name), dir: false, primary, replica }
                }
            };
            if found.len() < self.opts.max_pending {
                found.push(c);
            } else {
                self.confirm(c).await?;
            }
        }
        Ok(())
    }

    /// Looks at in-flight candidates again: a file in its folder's summaries, a directory in its
    /// own. What now agrees was in flight; what still differs goes to `found`.
    async fn recheck(
        &mut self,
        mut pending: Vec<Candidate>,
        found: &mut Vec<Candidate>,
    ) -> Result<(), BackupError> {
        pending.sort_by(|a, b| (a.dir, parent(&a.path), &a.path).cmp(&(b.dir, parent(&b.path), &b.path)));
        let mut stack = Vec::new();
        let mut i = 0;
        while i < pending.len() {
            let c = &pending[i];
            if c.dir {
                let (local, remote) = self.summaries(&c.path).await?;
                let present = |s: &Summary| s.files > 0 || !s.children.is_empty();
                if local.digest == remote.digest {
                    self.report.in_flight += 1;
                } else if present(&local) && present(&remote) {
                    // Now on both sides: what differs inside is looked at as in the first pass.
                    let path = c.path.clone();
                    self.children(&path, &local, &remote, &mut stack, found).await?;
                } else {
                    found.push(Candidate {
                        path: c.path.clone(),
                        dir: true,
                        primary: present(&local).then(|| "present".into()),
                        replica: present(&remote).then(|| "present".into()),
                    });
                }
                i += 1;
                continue;
            }
            // Files of one folder: one pair of summaries.
            let dir = parent(&c.path).to_owned();
            let end = i + pending[i..].iter().take_while(|c| !c.dir && parent(&c.path) == dir).count();
            let (local, remote) = self.summaries(&dir).await?;
            let digest = |s: &Summary, name: &str| {
                s.children.iter().find(|ch| !ch.dir && ch.name == name).map(|ch| ch.digest.clone())
            };
            for c in &pending[i..end] {
                let name = c.path.rsplit_once('/').map(|(_, n)| n).unwrap_or(&c.path);
                let (p, r) = (digest(&local, name), digest(&remote, name));
                if p == r {
                    self.report.in_flight += 1;
                } else {
                    found.push(Candidate { path: c.path.clone(), dir: false, primary: p, replica: r });
                }
            }
            i = end;
        }
        self.descend(stack, found).await
    }

    /// The in-flight test for what one pass found, `ack` being the replica's position read before
    /// the pass: candidates untouched by the journal and foreign log after it (up to the positions
    /// now) are real and reported; the rest are returned, with the positions the replica must
    /// reach before they are looked at again.
    async fn settle(
        &mut self,
        found: Vec<Candidate>,
        ack: Ack,
    ) -> Result<(Vec<Candidate>, Ack), BackupError> {
        let target =
            Ack { applied_seq: self.primary.applied(), foreign_applied: self.primary.foreign_last().await? };
        if found.is_empty() {
            return Ok((found, target));
        }
        let touched = touched(self.primary, &found, ack, target).await?;
        let mut pending = Vec::new();
        for (c, t) in found.into_iter().zip(touched) {
            if t {
                pending.push(c);
            } else {
                self.confirm(c).await?;
            }
        }
        Ok((pending, target))
    }

    /// Reports a real difference, and repairs it when asked.
    async fn confirm(&mut self, c: Candidate) -> Result<(), BackupError> {
        let (path, dir, on_primary) = (c.path.clone(), c.dir, c.primary.is_some());
        note(&mut self.report, &self.opts, c);
        if !self.opts.repair {
            return Ok(());
        }
        let (primary, client, opts) = (self.primary, self.client, self.opts);
        if dir && on_primary {
            // Everything below is missing on the replica.
            let mut files = Vec::new();
            primary
                .manifest
                .walk(&dkey_of_dir(&path), |dkey, rows| {
                    files.extend(
                        rows.into_iter().map(|r| (TreePath::from_key(dkey, &r.name), r.sha256, r.size)),
                    );
                    Ok(())
                })
                .await?;
            for (p, sha, size) in files {
                self.repair.put(primary, client, &mut self.report, &opts, p, sha, size).await?;
            }
        } else if dir {
            self.repair.builder.header.removes.push(Remove { path, tree: true });
            self.report.removed += 1;
        } else {
            let tp = TreePath::parse(&path)?;
            match primary.manifest.get(&tp).await? {
                Some(r) => {
                    self.repair.put(primary, client, &mut self.report, &opts, tp, r.sha256, r.size).await?
                }
                None => {
                    self.repair.builder.header.removes.push(Remove { path, tree: false });
                    self.report.removed += 1;
                }
            }
        }
        if self.repair.builder.header.removes.len() >= opts.repair_batch {
            self.repair.flush(client).await?;
        }
        Ok(())
    }
}

/// For each candidate: did a journal entry in `(ack.applied_seq, target.applied_seq]` or a
/// foreign change in `(ack.foreign_applied, target.foreign_applied]` touch its path (a
/// directory: anything below it)? The journal and the log are streamed; only the candidates are held.
async fn touched(
    primary: &Primary,
    found: &[Candidate],
    ack: Ack,
    target: Ack,
) -> Result<Vec<bool>, BackupError> {
    let mut at: HashMap<(bool, &str), Vec<usize>> = HashMap::new();
    for (i, c) in found.iter().enumerate() {
        at.entry((c.dir, c.path.as_str())).or_default().push(i);
    }
    let mut marks = vec![false; found.len()];
    let mut mark = |path: &str| {
        if let Some(is) = at.get(&(false, path)) {
            is.iter().for_each(|i| marks[*i] = true);
        }
        let mut p = path;
        while let Some((d, _)) = p.rsplit_once('/') {
            if let Some(is) = at.get(&(true, d)) {
                is.iter().for_each(|i| marks[*i] = true);
            }
            p = d;
        }
    };
    if ack.applied_seq < target.applied_seq {
        let mut reader = JournalReader::new(&primary.journal_dir, ack.applied_seq + 1);
        'entries: loop {
            let entries = reader.poll(2000)?;
            if entries.is_empty() {
                break;
            }
            for e in &entries {
                if e.seq > target.applied_seq {
                    break 'entries;
                }
                for c in &e.changes {
                    let paths: &[&String] = match c {
                        Change::Write { path, .. } | Change::Delete { path, .. } => &[path],
                        Change::Rename { from, to, .. } => &[from, to],
                    };
                    for p in paths {
                        mark(&format!("{}/{p}", e.facility));
                    }
                }
            }
        }
    }
    let mut after = ack.foreign_applied;
    while after < target.foreign_applied {
        let rows = primary.foreign_since(after, 1000).await?;
        let Some(last) = rows.last().map(|r| r.id) else { break };
        for r in rows.iter().filter(|r| r.id <= target.foreign_applied) {
            mark(&r.path);
        }
        after = last;
    }
    Ok(marks)
}

fn note(report: &mut Report, opts: &Options, c: Candidate) {
    report.differences += 1;
    if report.findings.len() < opts.max_findings {
        report.findings.push(Finding { path: c.path, dir: c.dir, primary: c.primary, replica: c.replica });
    }
}

struct Repair<'a> {
    builder: Builder,
    files: usize,
    /// Held while a repair batch is sent.
    pause: Option<&'a tokio::sync::Mutex<()>>,
}

impl Repair<'_> {
    #[allow(clippy::too_many_arguments)]
    async fn put(
        &mut self,
        primary: &Primary,
        client: &ReplicaClient,
        report: &mut Report,
        opts: &Options,
        path: TreePath,
        sha: String,
        size: u64,
    ) -> Result<(), BackupError> {
        let tree = primary.tree.clone();
        let (p, s) = (path.clone(), sha.clone());
        let bytes = tokio::task::spawn_blocking(move || read_content(&tree, &p, &s))
            .await
            .map_err(|e| BackupError::replica(&client.name, e))?;
        match bytes {
            Some(bytes) => {
                self.builder.add_blob(&sha, &bytes);
                self.builder.header.puts.push(Put { path: path.to_string(), sha256: sha, size });
                self.files += 1;
                report.repaired_files += 1;
            }
            None => {
                tracing::error!(path = %path, "the primary's own copy does not match its record; cannot repair from it");
                report.unrepairable += 1;
            }
        }
        if self.files >= opts.repair_batch {
            self.flush(client).await?;
        }
        Ok(())
    }

    async fn flush(&mut self, client: &ReplicaClient) -> Result<(), BackupError> {
        if self.builder.is_empty() {
            return Ok(());
        }
        let b = std::mem::take(&mut self.builder);
        self.files = 0;
        let _paused = match self.pause {
            Some(p) => Some(p.lock().await),
            None => None,
        };
        match client.send(b.encode()).await? {
            Sent::Acked(_) => Ok(()),
            Sent::Gap(_) => Err(BackupError::replica(&client.name, "repair batch refused as a gap")),
        }
    }
}
