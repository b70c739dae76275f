//! Verification: the primary's manifest against a replica's, by the Merkle tree of per-directory
//! digests. The root's summaries are compared first; only children whose digests differ are asked
//! for, level by level, so an unchanged pair costs one request and one streaming pass on each side,
//! and memory holds one directory's children at a time (plus the differing directories still to
//! visit). `repair` sends the primary's files where the replica differs and removes what only the
//! replica has.

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::BackupError;
use crate::batch::{Builder, Put, Remove};
use crate::client::{ReplicaClient, Sent};
use crate::merkle::{Difference, compare};
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
    /// Files written to and removed from the replica by the repair.
    pub repaired_files: u64,
    pub removed: u64,
    /// Files the primary could not supply (its own copy no longer matches its record).
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
}

impl Default for Options {
    fn default() -> Self {
        Self { check: Check::Stat, repair: false, max_findings: 1000, repair_batch: 500 }
    }
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() { name.to_owned() } else { format!("{prefix}/{name}") }
}

/// Compares the primary with one replica (and repairs when asked).
pub async fn verify(
    primary: &Arc<Primary>,
    client: &ReplicaClient,
    opts: Options,
) -> Result<Report, BackupError> {
    let started = Instant::now();
    let primary_seq = primary.catch_up().await?;
    let replica_seq = client.state().await?.applied_seq;
    let mut report = Report { replica: client.name.clone(), primary_seq, replica_seq, ..Report::default() };
    let mut repair = Repair { builder: Builder::default(), files: 0 };
    let mut stack = vec![String::new()];
    while let Some(prefix) = stack.pop() {
        let (local, remote) = tokio::join!(
            summarise(&primary.manifest, None, &prefix, Check::Recorded),
            client.digests(&prefix, opts.check)
        );
        let (local, remote) = (local?, remote?);
        report.requests += 1;
        if prefix.is_empty() {
            report.files = local.files;
        }
        if local.digest == remote.digest {
            continue;
        }
        for d in compare(&local.children, &remote.children) {
            match d {
                Difference::Dir { name, primary: true, replica: true } => stack.push(join(&prefix, &name)),
                Difference::Dir { name, primary: p, replica: r } => {
                    let path = join(&prefix, &name);
                    note(
                        &mut report,
                        &opts,
                        Finding {
                            path: path.clone(),
                            dir: true,
                            primary: p.then(|| "present".into()),
                            replica: r.then(|| "present".into()),
                        },
                    );
                    if opts.repair {
                        if p {
                            // Everything below is missing on the replica.
                            let mut files = Vec::new();
                            primary
                                .manifest
                                .walk(&dkey_of_dir(&path), |dkey, rows| {
                                    files.extend(
                                        rows.into_iter()
                                            .map(|r| (TreePath::from_key(dkey, &r.name), r.sha256, r.size)),
                                    );
                                    Ok(())
                                })
                                .await?;
                            for (p, sha, size) in files {
                                repair.put(primary, client, &mut report, &opts, p, sha, size).await?;
                            }
                        } else {
                            repair.builder.header.removes.push(Remove { path, tree: true });
                            report.removed += 1;
                        }
                    }
                }
                Difference::File { name, primary: p, replica: r } => {
                    let path = join(&prefix, &name);
                    note(
                        &mut report,
                        &opts,
                        Finding { path: path.clone(), dir: false, primary: p.clone(), replica: r },
                    );
                    if opts.repair {
                        match p {
                            Some(sha) => {
                                let tp = TreePath::parse(&path)?;
                                let size = primary.manifest.get(&tp).await?.map(|r| r.size).unwrap_or(0);
                                repair.put(primary, client, &mut report, &opts, tp, sha, size).await?;
                            }
                            None => {
                                repair.builder.header.removes.push(Remove { path, tree: false });
                                report.removed += 1;
                            }
                        }
                    }
                }
            }
        }
        if repair.files >= opts.repair_batch || repair.builder.header.removes.len() >= opts.repair_batch {
            repair.flush(client).await?;
        }
    }
    repair.flush(client).await?;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

fn note(report: &mut Report, opts: &Options, f: Finding) {
    report.differences += 1;
    if report.findings.len() < opts.max_findings {
        report.findings.push(f);
    }
}

struct Repair {
    builder: Builder,
    files: usize,
}

impl Repair {
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
        match client.send(b.encode()).await? {
            Sent::Acked(_) => Ok(()),
            Sent::Gap(_) => Err(BackupError::replica(&client.name, "repair batch refused as a gap")),
        }
    }
}
