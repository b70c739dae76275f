//! The append-only audit log: events in the database (one row per Merkle leaf), leaf hashes mirrored
//! on disk (`leaves.bin`, 32 bytes per leaf, append-only), and signed, time-stamped checkpoints in both
//! places (`audit_checkpoint` table and `checkpoints/<size>.json`).
//!
//! Write order: database commit, then disk append + fsync. So after a crash the disk can only lag
//! the database; [`AuditLog::open`] appends the missing leaves. A disk mirror *longer* than the
//! database means rows were deleted: open refuses, and `kizuna audit verify` names them.

use crate::checkpoint::{Checkpoint, key_id};
use crate::data_lock::DataDirLock;
use crate::db::{Backend, Db, IndexedColumns};
use crate::db_lock::DbWriterLock;
use crate::durable;
use crate::error::{AuditError, Result};
use crate::event::AuditEvent;
use crate::merkle::{Hash, MerkleTree, leaf_hash};
use crate::tsa;
use ed25519_dalek::SigningKey;
use sqlx::Row;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Where the log keeps things and how it signs.
#[derive(Clone)]
pub struct LogSettings {
    pub database_url: String,
    /// Holds `leaves.bin` and `checkpoints/`.
    pub data_dir: PathBuf,
    pub signing_key: SigningKey,
    /// RFC 3161 TSA URL; `None` leaves checkpoints unstamped (verify reports them).
    pub tsa_url: Option<String>,
}

/// What happened to one submitted event.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Appended {
    pub event_id: String,
    pub seq: u64,
    /// True when the id was already in the log (a retry): nothing new was written.
    pub duplicate: bool,
}

/// The open log. One writer per database; [`AuditLog::open`] enforces one per data folder
/// (`<data_dir>/audit.lock`), which also keeps two writers off the default SQLite database (it lives there).
pub struct AuditLog {
    pub db: Db,
    settings: LogSettings,
    tree: MerkleTree,
    /// Leaves durably in the disk mirror: those of the tree beyond it (an append whose mirror
    /// write failed after the database commit) are written by the next append, at their place.
    disk_leaves: u64,
    last_checkpoint: u64,
    /// SQLite: the WAL checkpointer (see [`WalCheckpointer`]).
    wal: Option<WalCheckpointer>,
    /// `<data_dir>/audit.lock`, held for the log's lifetime: one writer per data folder.
    _lock: DataDirLock,
    /// The database's writer lock, held likewise: one writer per database.
    _db_lock: DbWriterLock,
}

/// Copies SQLite's write-ahead log back into the database file on a connection of its own, after
/// each append, so that the appender's commit never does it. SQLite's default (auto-checkpoint at
/// commit once the WAL passes 1000 pages) ran inside the appender's commit and took 14% of append
/// time in a profile; connections are opened with `wal_autocheckpoint = 0` (see `db.rs`). PASSIVE
/// never blocks the writer or readers.
struct WalCheckpointer {
    wake: std::sync::Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl WalCheckpointer {
    fn spawn(pool: sqlx::AnyPool) -> Self {
        let wake = std::sync::Arc::new(tokio::sync::Notify::new());
        let w = wake.clone();
        let task = tokio::spawn(async move {
            loop {
                w.notified().await;
                if pool.is_closed() {
                    break;
                }
                if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").fetch_all(&pool).await {
                    tracing::warn!(error = %e, "WAL checkpoint failed; retried after the next append");
                }
            }
        });
        WalCheckpointer { wake, task }
    }
}

impl Drop for WalCheckpointer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Path of the disk mirror of leaf hashes.
pub fn leaves_path(data_dir: &Path) -> PathBuf {
    data_dir.join("leaves.bin")
}
/// Directory of the disk copies of checkpoints.
pub fn checkpoints_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("checkpoints")
}

/// Read the disk mirror of leaf hashes.
pub fn read_disk_leaves(data_dir: &Path) -> Result<Vec<Hash>> {
    let p = leaves_path(data_dir);
    let mut bytes = Vec::new();
    match std::fs::File::open(&p) {
        Ok(mut f) => {
            f.read_to_end(&mut bytes).map_err(|e| AuditError::io(&p, e))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(AuditError::io(&p, e)),
    }
    if bytes.len() % 32 != 0 {
        return Err(AuditError::io(
            &p,
            std::io::Error::other(format!("length {} is not a multiple of 32 (torn or edited)", bytes.len())),
        ));
    }
    Ok(bytes.chunks_exact(32).map(|c| c.try_into().expect("32 bytes")).collect())
}

/// A mirror whose length is no multiple of 32 while the database holds more events than its
/// whole leaves: an append torn by a crash or a full disk after the database commit. The partial
/// leaf is cut (open then catches the mirror up from the database); any other odd length stays
/// for `read_disk_leaves` to refuse.
fn cut_torn_leaf(data_dir: &Path, db_count: u64) -> Result<()> {
    let p = leaves_path(data_dir);
    let len = match std::fs::metadata(&p) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(AuditError::io(&p, e)),
    };
    if len % 32 != 0 && len / 32 < db_count {
        tracing::warn!(path = %p.display(), len, "cutting a torn leaf from the disk mirror");
        let f = std::fs::OpenOptions::new().write(true).open(&p).map_err(|e| AuditError::io(&p, e))?;
        f.set_len(len / 32 * 32).and_then(|()| f.sync_data()).map_err(|e| AuditError::io(&p, e))?;
    }
    Ok(())
}

/// Read the disk copies of checkpoints, by tree size.
pub fn read_disk_checkpoints(data_dir: &Path) -> Result<Vec<Checkpoint>> {
    let dir = checkpoints_dir(data_dir);
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(AuditError::io(&dir, e)),
    };
    for ent in rd {
        let ent = ent.map_err(|e| AuditError::io(&dir, e))?;
        let p = ent.path();
        if p.extension().is_some_and(|x| x == "json") {
            let bytes = std::fs::read(&p).map_err(|e| AuditError::io(&p, e))?;
            let cp: Checkpoint = serde_json::from_slice(&bytes)
                .map_err(|e| AuditError::Config { path: p.clone(), reason: e.to_string() })?;
            out.push(cp);
        }
    }
    out.sort_by_key(|c| c.tree_size);
    Ok(out)
}

/// Read all checkpoints from the database, by tree size.
pub async fn read_db_checkpoints(db: &Db) -> Result<Vec<Checkpoint>> {
    db_checkpoints(db, None).await
}

/// Checkpoints from the database, by tree size: all, or the one of tree size `only`.
async fn db_checkpoints(db: &Db, only: Option<u64>) -> Result<Vec<Checkpoint>> {
    let rows = match only {
        None => sqlx::query(
            "SELECT tree_size, root_hash, created_at, key_id, signature, tst FROM audit_checkpoint ORDER BY tree_size",
        )
        .fetch_all(&db.pool)
        .await?,
        Some(size) => sqlx::query(
            "SELECT tree_size, root_hash, created_at, key_id, signature, tst FROM audit_checkpoint WHERE tree_size = $1",
        )
        .bind(size as i64)
        .fetch_all(&db.pool)
        .await?,
    };
    rows.iter()
        .map(|r| {
            let size: i64 = r.try_get("tree_size")?;
            let root: Vec<u8> = r.try_get("root_hash")?;
            let created: i64 = r.try_get("created_at")?;
            Ok(Checkpoint {
                tree_size: size as u64,
                root: root
                    .try_into()
                    .map_err(|_| AuditError::invalid("audit_checkpoint.root_hash", "not 32 bytes"))?,
                created_at: jiff::Timestamp::from_microsecond(created)
                    .map_err(|e| AuditError::invalid("audit_checkpoint.created_at", e.to_string()))?,
                key_id: r.try_get("key_id")?,
                signature: r.try_get("signature")?,
                tst: r.try_get("tst")?,
            })
        })
        .collect()
}

/// Columns per inserted row (see the INSERT below).
const INSERT_COLS: usize = 15;
/// Rows per INSERT statement. SQLite placeholders are anonymous `?`: sqlx-sqlite resolves a *named*
/// placeholder (`$n`) with `sqlite3_bind_parameter_name`, a linear scan, so binding cost grew with
/// the square of the parameters and 500-row statements once spent 77% of append time there; with
/// `?` each bind is O(1) and one statement can carry many rows.
const INSERT_CHUNK: usize = 100;
/// Ids per duplicate-check SELECT.
const LOOKUP_CHUNK: usize = 500;

/// `n` placeholders numbered from `first` (1-based) in the backend's syntax, comma-separated.
fn placeholders(backend: Backend, first: usize, n: usize) -> String {
    let mut s = String::with_capacity(n * 5);
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        match backend {
            Backend::Sqlite => s.push('?'),
            Backend::Postgres => {
                s.push('$');
                s.push_str(&(first + i).to_string());
            }
        }
    }
    s
}

/// The multi-row INSERT of `rows` events.
fn insert_sql(backend: Backend, rows: usize) -> String {
    let values: Vec<String> =
        (0..rows).map(|r| format!("({})", placeholders(backend, r * INSERT_COLS + 1, INSERT_COLS))).collect();
    format!(
        "INSERT INTO audit_event (seq, event_id, day, event_time, received_at, event_code, event_type, action, \
         outcome, user_id, patient_id, facility, source_id, break_glass, body) VALUES {}",
        values.join(",")
    )
}

/// Whether `e` is a unique-constraint violation (an event id already in the log).
fn is_unique_violation(e: &AuditError) -> bool {
    matches!(e, AuditError::Database(sqlx::Error::Database(d)) if d.is_unique_violation())
}

impl AuditLog {
    /// Open (creating) the log; rebuild the tree from the disk mirror, catching it up to the database.
    ///
    /// Takes `<data_dir>/audit.lock` first: a second writer on the data folder (another
    /// `kizuna audit serve`, in this process or another) fails here with
    /// [`AuditError::DataDirInUse`], before it writes anything.
    pub async fn open(settings: LogSettings) -> Result<Self> {
        let lock = DataDirLock::acquire(&settings.data_dir)?;
        durable::create_dir_all(&checkpoints_dir(&settings.data_dir))?;
        let db = Db::open(&settings.database_url).await?;
        let db_lock = DbWriterLock::acquire(&settings.database_url).await?;
        let db_count: i64 =
            sqlx::query("SELECT COUNT(*) AS n FROM audit_event").fetch_one(&db.pool).await?.try_get("n")?;
        let db_count = db_count as u64;
        cut_torn_leaf(&settings.data_dir, db_count)?;
        let mut disk = read_disk_leaves(&settings.data_dir)?;
        if (disk.len() as u64) > db_count {
            return Err(AuditError::Config {
                path: leaves_path(&settings.data_dir),
                reason: format!(
                    "the disk mirror holds {} leaves but the database only {db_count} events: events were deleted \
                     from the database; run `kizuna audit verify`",
                    disk.len()
                ),
            });
        }
        if (disk.len() as u64) < db_count {
            // Crash between database commit and disk append: catch the mirror up.
            let rows = sqlx::query("SELECT seq, body FROM audit_event WHERE seq >= $1 ORDER BY seq")
                .bind(disk.len() as i64)
                .fetch_all(&db.pool)
                .await?;
            let mut add = Vec::new();
            for r in rows {
                let body: Vec<u8> = r.try_get("body")?;
                let h = leaf_hash(&body);
                add.extend_from_slice(&h);
                disk.push(h);
            }
            durable::append_synced(&leaves_path(&settings.data_dir), &add)?;
            tracing::warn!(added = add.len() / 32, "caught the disk leaf mirror up with the database");
        }
        let mut tree = MerkleTree::new();
        for h in disk {
            tree.push(h);
        }
        let last: Option<i64> = sqlx::query("SELECT MAX(tree_size) AS m FROM audit_checkpoint")
            .fetch_one(&db.pool)
            .await?
            .try_get("m")?;
        restore_disk_checkpoints(&db, &settings.data_dir).await?;
        finish_restamp(&db, &settings.data_dir, true).await?;
        let wal = (db.backend == Backend::Sqlite).then(|| WalCheckpointer::spawn(db.pool.clone()));
        let disk_leaves = tree.size();
        Ok(AuditLog {
            db,
            settings,
            tree,
            disk_leaves,
            last_checkpoint: last.unwrap_or(0) as u64,
            wal,
            _lock: lock,
            _db_lock: db_lock,
        })
    }

    /// Writes the tree's leaves the disk mirror lacks, at their place (see `disk_leaves`).
    fn write_mirror(&mut self) -> Result<()> {
        let size = self.tree.size();
        let mut bytes = Vec::with_capacity(((size - self.disk_leaves) * 32) as usize);
        for i in self.disk_leaves..size {
            bytes.extend_from_slice(self.tree.leaf(i).expect("a leaf below the tree's size"));
        }
        durable::write_at_synced(&leaves_path(&self.settings.data_dir), self.disk_leaves * 32, &bytes)?;
        self.disk_leaves = size;
        Ok(())
    }

    pub fn size(&self) -> u64 {
        self.tree.size()
    }
    pub fn tree(&self) -> &MerkleTree {
        &self.tree
    }
    pub fn last_checkpoint_size(&self) -> u64 {
        self.last_checkpoint
    }
    pub fn data_dir(&self) -> &Path {
        &self.settings.data_dir
    }
    pub fn public_key(&self) -> ed25519_dalek::VerifyingKey {
        self.settings.signing_key.verifying_key()
    }

    /// Append events in order, skipping ids already logged (idempotent retries). One transaction.
    ///
    /// Retries are rare, so the batch is first inserted without looking its ids up: the UNIQUE
    /// index on event_id refuses a repeated id, and only then is the transaction rolled back and the
    /// batch appended again with every id checked first.
    pub async fn append(&mut self, events: &[AuditEvent]) -> Result<Vec<Appended>> {
        match self.append_checked(events, false).await {
            Err(e) if is_unique_violation(&e) => self.append_checked(events, true).await,
            other => other,
        }
    }

    async fn append_checked(&mut self, events: &[AuditEvent], look_up: bool) -> Result<Vec<Appended>> {
        // Which ids are already stored (retries) or repeated within this batch?
        let mut known = std::collections::HashMap::<String, u64>::new();
        if look_up {
            for chunk in events.chunks(LOOKUP_CHUNK) {
                let sql = format!(
                    "SELECT event_id, seq FROM audit_event WHERE event_id IN ({})",
                    placeholders(self.db.backend, 1, chunk.len())
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for e in chunk {
                    q = q.bind(e.id.as_str());
                }
                for r in q.fetch_all(&self.db.pool).await? {
                    let seq: i64 = r.try_get("seq")?;
                    known.insert(r.try_get("event_id")?, seq as u64);
                }
            }
        }
        let received = jiff::Timestamp::now().as_microsecond();
        let mut out = Vec::with_capacity(events.len());
        let mut fresh: Vec<(u64, &AuditEvent)> = Vec::with_capacity(events.len());
        let mut next = self.tree.size();
        for e in events {
            if let Some(seq) = known.get(e.id.as_str()) {
                out.push(Appended { event_id: e.id.to_string(), seq: *seq, duplicate: true });
                continue;
            }
            e.validate()?;
            known.insert(e.id.to_string(), next);
            fresh.push((next, e));
            out.push(Appended { event_id: e.id.to_string(), seq: next, duplicate: false });
            next += 1;
        }
        if fresh.is_empty() {
            return Ok(out);
        }
        // Leaf hashes are computed while the rows are built, so each body is encoded once and then
        // moved into its statement.
        let mut leaves = Vec::with_capacity(fresh.len());
        let mut tx = self.db.begin_write().await?;
        let full_sql = insert_sql(self.db.backend, INSERT_CHUNK);
        for chunk in fresh.chunks(INSERT_CHUNK) {
            let sql = if chunk.len() == INSERT_CHUNK {
                full_sql.clone()
            } else {
                insert_sql(self.db.backend, chunk.len())
            };
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (seq, e) in chunk {
                let body = e.canonical_bytes();
                leaves.push(leaf_hash(&body));
                let c = IndexedColumns::of(e);
                q = q
                    .bind(*seq as i64)
                    .bind(c.event_id)
                    .bind(c.day)
                    .bind(c.event_time)
                    .bind(received)
                    .bind(c.event_code)
                    .bind(c.event_type)
                    .bind(c.action)
                    .bind(c.outcome)
                    .bind(c.user_id)
                    .bind(c.patient_id)
                    .bind(c.facility)
                    .bind(c.source_id)
                    .bind(c.break_glass)
                    .bind(body);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        if let Some(w) = &self.wal {
            w.wake.notify_one();
        }
        for h in leaves {
            self.tree.push(h);
        }
        self.write_mirror()?;
        Ok(out)
    }

    /// Sign the current tree head, time-stamp it, and store it in the database and on disk.
    /// Also retries time stamps for earlier checkpoints that could not get one.
    pub async fn checkpoint(&mut self) -> Result<Checkpoint> {
        // A checkpoint covers only leaves that are on disk too.
        if self.disk_leaves < self.tree.size() {
            self.write_mirror()?;
        }
        let size = self.tree.size();
        // No events since the checkpoint of this size: it stands (signing again would leave the
        // disk copy different from the database's, which keeps the first).
        if let Some(stored) = db_checkpoints(&self.db, Some(size)).await?.into_iter().next() {
            self.last_checkpoint = size;
            self.restamp().await?;
            return Ok(db_checkpoints(&self.db, Some(size)).await?.into_iter().next().unwrap_or(stored));
        }
        let now =
            jiff::Timestamp::now().round(jiff::Unit::Microsecond).unwrap_or_else(|_| jiff::Timestamp::now());
        let mut cp = Checkpoint::sign(&self.settings.signing_key, size, self.tree.root(), now);
        if let Some(url) = &self.settings.tsa_url {
            match stamp(url, &cp).await {
                Ok(t) => cp.tst = Some(t),
                Err(e) => {
                    tracing::warn!(error = %e, tree_size = size, "checkpoint left without a time stamp; will retry")
                }
            }
        }
        sqlx::query(
            "INSERT INTO audit_checkpoint (tree_size, root_hash, created_at, key_id, signature, tst) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (tree_size) DO NOTHING",
        )
        .bind(size as i64)
        .bind(cp.root.to_vec())
        .bind(cp.created_at.as_microsecond())
        .bind(cp.key_id.clone())
        .bind(cp.signature.clone())
        .bind(cp.tst.clone())
        .execute(&self.db.pool)
        .await?;
        write_disk_checkpoint(&self.settings.data_dir, &cp)?;
        self.last_checkpoint = size;
        self.restamp().await?;
        Ok(cp)
    }

    /// Get time stamps for checkpoints stored without one (the TSA was down).
    ///
    /// Each stamp goes to the database, then to the disk copy. The restamp journal, written first,
    /// names the checkpoint, so a stamp that reached the database but not the disk (a crash, a
    /// failed write) is copied to disk by the next restamp or at open ([`finish_restamp`]).
    async fn restamp(&mut self) -> Result<()> {
        let data_dir = self.settings.data_dir.clone();
        finish_restamp(&self.db, &data_dir, true).await?;
        let Some(url) = self.settings.tsa_url.clone() else { return Ok(()) };
        for cp in read_db_checkpoints(&self.db).await?.into_iter().filter(|c| c.tst.is_none()) {
            if cp.key_id != key_id(&self.settings.signing_key.verifying_key()) {
                continue;
            }
            if let Ok(t) = stamp(&url, &cp).await {
                durable::write_atomic(
                    &restamp_journal_path(&data_dir),
                    format!("{}\n", cp.tree_size).as_bytes(),
                )?;
                sqlx::query("UPDATE audit_checkpoint SET tst = $1 WHERE tree_size = $2 AND tst IS NULL")
                    .bind(t)
                    .bind(cp.tree_size as i64)
                    .execute(&self.db.pool)
                    .await?;
                finish_restamp(&self.db, &data_dir, false).await?;
            }
        }
        Ok(())
    }
}

/// The restamp journal: the tree size of the checkpoint whose new time stamp is being written to
/// the database and then to its disk copy (see `restamp`). Not a `.json`, so no checkpoint copy.
fn restamp_journal_path(data_dir: &Path) -> PathBuf {
    checkpoints_dir(data_dir).join("restamp.pending")
}

/// Finish the restamp the journal names, if any: the database is the source of truth, so when the
/// disk copy lacks the time stamp the database copy carries and is otherwise the same (the state a
/// restamp cut after its database update leaves), or is missing, the database copy is written to
/// disk. A disk copy that differs in anything else is left as it is, for verify to report. Then
/// the journal goes. Without this, verify passed (a stamp may be on one copy only) but the disk
/// copy never got the stamp: restamp only looks for checkpoints unstamped in the database.
/// `cut`: the journal was left by an earlier restamp (logged as a warning), not by this one.
async fn finish_restamp(db: &Db, data_dir: &Path, cut: bool) -> Result<()> {
    let journal = restamp_journal_path(data_dir);
    let text = match std::fs::read_to_string(&journal) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(AuditError::io(&journal, e)),
    };
    match text.trim().parse::<u64>() {
        Ok(size) => {
            for cp in db_checkpoints(db, Some(size)).await?.into_iter().filter(|c| c.tst.is_some()) {
                let p = disk_checkpoint_path(data_dir, size);
                let repair = match std::fs::read(&p) {
                    Ok(bytes) => serde_json::from_slice::<Checkpoint>(&bytes)
                        .is_ok_and(|d| d.tst.is_none() && d == Checkpoint { tst: None, ..cp.clone() }),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
                    Err(e) => return Err(AuditError::io(&p, e)),
                };
                if repair {
                    if cut {
                        tracing::warn!(
                            tree_size = size,
                            "time stamp missing on the disk copy (restamp cut after its database update); copied from the database"
                        );
                    }
                    write_disk_checkpoint(data_dir, &cp)?;
                }
            }
        }
        Err(_) => tracing::warn!(path = %journal.display(), "restamp journal unreadable; removed"),
    }
    std::fs::remove_file(&journal).map_err(|e| AuditError::io(&journal, e))?;
    durable::sync_dir(&checkpoints_dir(data_dir))
}

/// A crash between a checkpoint's database insert and its disk copy (see `checkpoint`) leaves it in
/// the database only, which verify would report as tampering. Checkpoints are signed, so the missing
/// disk copies are written from the database (existing copies are never touched).
async fn restore_disk_checkpoints(db: &Db, data_dir: &Path) -> Result<()> {
    let sizes = sqlx::query("SELECT tree_size FROM audit_checkpoint").fetch_all(&db.pool).await?;
    for r in sizes {
        let size = r.try_get::<i64, _>("tree_size")? as u64;
        if disk_checkpoint_path(data_dir, size).exists() {
            continue;
        }
        for cp in db_checkpoints(db, Some(size)).await? {
            tracing::warn!(
                tree_size = size,
                "checkpoint missing on disk (crash after its database insert); copied from the database"
            );
            write_disk_checkpoint(data_dir, &cp)?;
        }
    }
    Ok(())
}

async fn stamp(url: &str, cp: &Checkpoint) -> Result<Vec<u8>> {
    let url = url.to_string();
    let msg = cp.stamped_bytes();
    tokio::task::spawn_blocking(move || tsa::request_token(&url, &msg))
        .await
        .map_err(|e| AuditError::TimeStamp { url: "?".into(), reason: e.to_string() })?
}

fn disk_checkpoint_path(data_dir: &Path, tree_size: u64) -> PathBuf {
    checkpoints_dir(data_dir).join(format!("{tree_size:020}.json"))
}

fn write_disk_checkpoint(data_dir: &Path, cp: &Checkpoint) -> Result<()> {
    let p = disk_checkpoint_path(data_dir, cp.tree_size);
    let mut bytes = serde_json::to_vec_pretty(cp).expect("checkpoint serializes");
    bytes.push(b'\n');
    durable::write_atomic(&p, &bytes)
}
