//! Shipping the linkage database to the replicas (`follow.linkage`): every `interval_s` the
//! follower asks SQLite whether the database changed since its last snapshot (`PRAGMA
//! data_version` on a connection it keeps open, and the file's inode, in case it was replaced);
//! if so it takes a consistent snapshot (`VACUUM INTO`, readers and the writer carry on),
//! compresses it and sends it to every replica that does not hold that snapshot yet. A replica's
//! holding is asked (`GET /api/v1/linkage`) at start and after any failure, so a restarted
//! follower or replica neither resends what is there nor skips what is not.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::ConnectOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use tokio::sync::watch as signal;

use super::metrics::Metrics;
use crate::BackupError;
use crate::client::ReplicaClient;

/// The compressed snapshot the follower last took.
#[derive(Debug, Clone)]
struct Snapshot {
    file: PathBuf,
    sha256: String,
    taken_at: jiff::Timestamp,
}

/// The open linkage database and what was last seen of it.
struct Source {
    conn: SqliteConnection,
    inode: u64,
    data_version: i64,
}

pub struct LinkageShipper {
    pub database: PathBuf,
    pub state_dir: PathBuf,
    pub interval: Duration,
    pub replicas: Vec<ReplicaClient>,
    pub metrics: Arc<Metrics>,
}

impl LinkageShipper {
    /// Runs until `stop` turns true. Errors are logged, counted and retried at the next interval.
    pub async fn run(self, mut stop: signal::Receiver<bool>) -> Result<(), BackupError> {
        let mut source: Option<Source> = None;
        let mut snapshot: Option<Snapshot> = None;
        // What each replica holds (sha256); absent = unknown, ask first.
        let mut held: BTreeMap<String, Option<String>> = BTreeMap::new();
        loop {
            match self.pass(&mut source, &mut snapshot, &mut held).await {
                Ok(()) => {}
                Err(e) => {
                    tracing::warn!(error = %e, database = %self.database.display(), "linkage snapshot failed")
                }
            }
            tokio::select! { _ = tokio::time::sleep(self.interval) => {}, _ = stop.changed() => {} }
            if *stop.borrow() {
                return Ok(());
            }
        }
    }

    /// One check: a new snapshot if the database changed, then every replica brought up to it.
    async fn pass(
        &self,
        source: &mut Option<Source>,
        snapshot: &mut Option<Snapshot>,
        held: &mut BTreeMap<String, Option<String>>,
    ) -> Result<(), BackupError> {
        let inode = match std::fs::metadata(&self.database) {
            Ok(m) => m.ino(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::debug!(database = %self.database.display(), "no linkage database yet");
                *source = None;
                return Ok(());
            }
            Err(e) => return Err(BackupError::io(&self.database, e)),
        };
        if source.as_ref().is_some_and(|s| s.inode != inode) {
            *source = None;
        }
        let fresh = source.is_none();
        if fresh {
            let conn = SqliteConnectOptions::new()
                .filename(&self.database)
                .read_only(true)
                .create_if_missing(false)
                .busy_timeout(Duration::from_secs(30))
                .connect()
                .await?;
            *source = Some(Source { conn, inode, data_version: 0 });
        }
        let src = source.as_mut().expect("opened above");
        // Read before the snapshot: a commit during it shows as a change at the next check.
        let version: i64 = sqlx::query_scalar("PRAGMA data_version").fetch_one(&mut src.conn).await?;
        if fresh || snapshot.is_none() || version != src.data_version {
            *snapshot = Some(self.take(&mut src.conn).await?);
            src.data_version = version;
            self.metrics.linkage_snapshots.inc();
        }
        let snap = snapshot.as_ref().expect("taken above");
        for r in &self.replicas {
            let label = Metrics::label(&r.name);
            let known = match held.get(&r.name) {
                Some(h) => h.clone(),
                None => match r.linkage_state().await {
                    Ok(s) => {
                        held.insert(r.name.clone(), s.sha256.clone());
                        s.sha256
                    }
                    Err(e) => {
                        self.metrics.linkage_errors.get_or_create(&label).inc();
                        tracing::warn!(replica = %r.name, error = %e, "asking for the replica's linkage snapshot failed");
                        continue;
                    }
                },
            };
            if known.as_deref() == Some(snap.sha256.as_str()) {
                continue;
            }
            match r.put_linkage(&snap.file, &snap.sha256, &snap.taken_at.to_string()).await {
                Ok(s) => {
                    held.insert(r.name.clone(), s.sha256);
                    self.metrics.linkage_timestamp.get_or_create(&label).set(snap.taken_at.as_second());
                    tracing::info!(replica = %r.name, sha256 = %snap.sha256, bytes = s.bytes, "linkage snapshot shipped");
                }
                Err(e) => {
                    held.remove(&r.name);
                    self.metrics.linkage_errors.get_or_create(&label).inc();
                    tracing::warn!(replica = %r.name, error = %e, "shipping the linkage snapshot failed");
                }
            }
        }
        Ok(())
    }

    /// `VACUUM INTO` a temp file in the state folder, then zstd with its sha256 computed on the way.
    async fn take(&self, conn: &mut SqliteConnection) -> Result<Snapshot, BackupError> {
        let raw = self.state_dir.join("linkage-snapshot.sqlite");
        let _ = std::fs::remove_file(&raw);
        let taken_at = jiff::Timestamp::now();
        sqlx::query("VACUUM INTO ?1").bind(raw.to_string_lossy().into_owned()).execute(&mut *conn).await?;
        let file = self.state_dir.join("linkage-snapshot.zst");
        let (r, f) = (raw.clone(), file.clone());
        let sha256 = tokio::task::spawn_blocking(move || compress(&r, &f))
            .await
            .map_err(|e| BackupError::Config(format!("linkage snapshot task failed: {e}")))??;
        let _ = std::fs::remove_file(&raw);
        Ok(Snapshot { file, sha256, taken_at })
    }
}

/// Compresses `src` into `dst` (through a temp file renamed over it); returns `src`'s sha256.
fn compress(src: &Path, dst: &Path) -> Result<String, BackupError> {
    let tmp = dst.with_extension("zst-tmp");
    let mut input = std::fs::File::open(src).map_err(|e| BackupError::io(src, e))?;
    let out = std::fs::File::create(&tmp).map_err(|e| BackupError::io(&tmp, e))?;
    let mut enc = zstd::Encoder::new(out, 3).map_err(|e| BackupError::io(&tmp, e))?;
    let (mut hash, mut buf) = (Sha256::new(), vec![0u8; 1 << 16]);
    loop {
        let n = input.read(&mut buf).map_err(|e| BackupError::io(src, e))?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        enc.write_all(&buf[..n]).map_err(|e| BackupError::io(&tmp, e))?;
    }
    enc.finish().map_err(|e| BackupError::io(&tmp, e))?;
    std::fs::rename(&tmp, dst).map_err(|e| BackupError::io(dst, e))?;
    Ok(hex::encode(hash.finalize()))
}
