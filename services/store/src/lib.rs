//! The centre's store (`kizuna-store`): receives SS-MIX2 uploads from the sites' agents, checks
//! every file again, applies the condition-flag semantics, writes the SS-MIX2 tree crash-safely,
//! records each file in the IndexDB (SQLite or PostgreSQL) and in the change journal that the
//! backup follows. See README.md for the API, the configuration keys and the journal format.
//!
//! - [`config`]: the YAML configuration.
//! - [`sites`]: site registry and per-request authentication (token, source address, facility).
//! - [`ingest`]: one batch end to end; [`apply`] carries committed entries out on the tree.
//! - [`journal`]: the change journal (commit record, backup feed); [`recover`]: start-up replay.
//! - [`index`] and [`extract`]: the IndexDB rows and the viewer's search rows; [`search`]: the
//!   search rows' own writer behind the answer, and their watermark.
//! - [`api`]: the HTTP endpoints.

pub mod agent_reports;
pub mod api;
pub mod apply;
pub mod config;
pub mod data_lock;
pub mod db;
mod durable;
mod error;
pub mod extract;
mod facility;
pub mod index;
mod index_rows;
pub mod ingest;
pub mod journal;
mod locks;
pub mod metrics;
mod records_commit;
pub mod recover;
pub mod refusals;
pub mod rerequests;
pub mod search;
pub mod sites;
pub mod tree;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

pub use config::Config;
pub use data_lock::DataDirLock;
pub use db::Db;
pub use error::StoreError;
pub use facility::FacilityId;
use ssmix2::validate::Validator;

/// The running store: everything a request handler needs.
pub struct Store {
    pub config: Config,
    pub db: Db,
    pub tree: Arc<tree::Tree>,
    pub journal: journal::Journal,
    pub validator: Validator,
    pub metrics: metrics::Metrics,
    /// Audit events (see the `audit:` config key).
    pub audit: kizuna_audit::emitter::AuditEmitter,
    /// Refused site requests: which are audited in full, which summarised ([`refusals`]).
    pub refusals: Arc<refusals::RefusalAudit>,
    locks: Arc<locks::FolderLocks>,
    applied: Mutex<Applied>,
    degraded: Mutex<Option<String>>,
    search: search::SearchWriter,
    records: records_commit::RecordsWriter,
    /// The data folder's lock, held as long as the store (declared last: released last).
    _data_lock: DataDirLock,
}

/// The applied watermark: every journal entry up to `watermark` is in the tree and the index.
/// Batches finish out of order; `done` holds finished entries above the watermark.
struct Applied {
    watermark: u64,
    done: BTreeSet<u64>,
}

impl Store {
    /// Opens the data folder and the IndexDB, runs recovery, and returns a store ready to serve.
    ///
    /// What can be checked without writing comes first (the database URL, the validator tables,
    /// and a PostgreSQL IndexDB: connected and migrated), so a start refused for those leaves
    /// `data_dir` as it was. Then the data folder is locked ([`DataDirLock`]: a second store on it
    /// fails here at once) and only then are its folders, journal and SQLite IndexDB created.
    pub async fn open(config: Config) -> Result<Arc<Self>, StoreError> {
        refuse_unpromoted_replica(&config.data_dir)?;
        let url = config.effective_database_url();
        let backend = kizuna_db::check_url(&url)?;
        let validator = if config.nho_tables.is_empty() {
            Validator::from_default_tables()?
        } else {
            Validator::from_nho_tables(std::path::Path::new(&config.nho_tables))?
        };
        // PostgreSQL lives outside the data folder: open it before creating anything there. A
        // SQLite IndexDB is (by default) a file in the data folder: opened under the lock.
        let pg = match backend {
            db::Backend::Postgres => Some(Db::open(&url).await?),
            db::Backend::Sqlite => None,
        };
        let data_lock = DataDirLock::acquire(&config.data_dir)?;
        let tree = Arc::new(tree::Tree::open(&config.tree_dir(), &config.staging_dir())?);
        let (journal, last_seq) = journal::Journal::open(
            &data_lock,
            &config.journal_dir(),
            config.commit.journal_segment_bytes,
            config.group_window(),
        )?;
        let db = match pg {
            Some(db) => db,
            None => Db::open(&url).await?,
        };
        let rec =
            recover::recover(&data_lock, &tree, &config.journal_dir(), &db, &config.volume_label).await?;
        if rec.applied < last_seq {
            return Err(StoreError::Recovery(format!(
                "journal ends at {last_seq} but replay stopped at {}: a segment is damaged",
                rec.applied
            )));
        }
        let caught_up = search::catch_up(&db, &tree, rec.applied).await?;
        if caught_up.rebuilt > 0 {
            tracing::warn!(
                rebuilt = caught_up.rebuilt,
                search_seq = caught_up.watermark,
                "search rows rebuilt after an unclean stop"
            );
        }
        let search_seq = caught_up.watermark;
        let audit = kizuna_audit::emitter::AuditEmitter::from_config(&config.audit)
            .map_err(|e| StoreError::Config(format!("audit: {e}")))?;
        let refusals = refusals::RefusalAudit::start(
            audit.clone(),
            api::AUDIT_SOURCE,
            std::time::Duration::from_secs(config.limits.refusal_audit_secs),
        );
        let metrics = metrics::Metrics::default();
        metrics.journal_seq.set(last_seq as i64);
        metrics.applied_seq.set(rec.applied as i64);
        metrics.search_seq.set(search_seq as i64);
        let gauge = metrics.search_seq.clone();
        let search = search::SearchWriter::start(db.clone(), search_seq, move |w| {
            gauge.set(w as i64);
        });
        let records =
            records_commit::RecordsWriter::start(db.clone(), config.volume_label.clone(), search.clone());
        let store = Arc::new(Self {
            config,
            db,
            tree,
            journal,
            validator,
            metrics,
            audit,
            refusals,
            locks: Arc::default(),
            applied: Mutex::new(Applied { watermark: rec.applied, done: BTreeSet::new() }),
            degraded: Mutex::new(None),
            records,
            search,
            _data_lock: data_lock,
        });
        store.write_applied_file(rec.applied);
        Ok(store)
    }

    /// The current applied watermark.
    pub fn applied_watermark(&self) -> u64 {
        self.applied.lock().expect("applied").watermark
    }

    /// The search watermark: every record written by a journal entry up to it has its search rows
    /// (see [`search`]).
    pub fn search_watermark(&self) -> u64 {
        self.search.watermark()
    }

    /// Waits until every entry journalled so far (so every upload answered before the call) has
    /// its search rows committed. Search rows are written behind the answer; a reader that must
    /// see them for a batch it just uploaded waits here. Does not return while a journalled entry
    /// is unfinished in this process (a batch whose index write failed answers an error; the next
    /// start finishes its entries).
    pub async fn search_caught_up(&self) {
        self.search.wait_for(self.journal.last_seq()).await;
    }

    /// Notes entries as applied to tree and index and advances the watermark over finished runs.
    fn mark_applied(&self, seqs: impl IntoIterator<Item = u64>) {
        let mut a = self.applied.lock().expect("applied");
        a.done.extend(seqs);
        let before = a.watermark;
        loop {
            let next = a.watermark + 1;
            if !a.done.remove(&next) {
                break;
            }
            a.watermark = next;
        }
        if a.watermark != before {
            self.metrics.applied_seq.set(a.watermark as i64);
            // Written under the lock so that concurrent batches never race on the temp file.
            self.write_applied_file(a.watermark);
        }
    }

    /// The journal's `applied` file, for readers such as the backup. Not fsynced: after a crash,
    /// recovery rewrites it.
    fn write_applied_file(&self, seq: u64) {
        let path = self.config.journal_dir().join(journal::APPLIED_FILE);
        if let Err(e) = durable::replace_file(&path, format!("{seq}\n").as_bytes(), false) {
            tracing::warn!(%e, "could not update the applied watermark file");
        }
    }

    /// Marks the store unhealthy (shown on /healthz) after a failure it cannot fix while running.
    fn set_degraded(&self, why: String) {
        tracing::error!("{why}");
        *self.degraded.lock().expect("degraded") = Some(why);
    }

    /// Why the store is unhealthy, if it is.
    pub fn degraded(&self) -> Option<String> {
        self.degraded.lock().expect("degraded").clone()
    }

    /// Persists the watermark (on shutdown, so the next start replays nothing), after giving the
    /// search writer up to a minute to write the rows of every applied entry (what it leaves is
    /// rebuilt at the next start). While the database's writes fail (a full disk) it does not
    /// wait for the search writer, and a failed checkpoint is only logged: the next start
    /// replays the journal from the last persisted watermark, so nothing is lost.
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        let w = self.applied_watermark();
        let failing = async {
            while self.db.write_failure().is_none() {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        };
        let caught_up = tokio::select! {
            r = tokio::time::timeout(std::time::Duration::from_secs(60), self.search.wait_for(w)) => r.is_ok(),
            () = failing => false,
        };
        if !caught_up {
            tracing::warn!(
                applied = w,
                search_seq = self.search_watermark(),
                "search rows behind at shutdown; rebuilt at the next start"
            );
        }
        let known_failure = self.db.write_failure().or_else(|| self.degraded());
        let written = async {
            let _g = self.db.write_guard().await;
            let mut tx = self.db.begin_write().await?;
            index::set_applied(&mut tx, w).await?;
            self.db.commit(tx).await?;
            Ok::<_, StoreError>(())
        }
        .await;
        match (written, known_failure) {
            (Err(e), Some(why)) => {
                tracing::warn!(
                    %e,
                    %why,
                    "applied watermark not persisted at shutdown; the next start replays the journal"
                );
                Ok(())
            }
            (written, _) => written,
        }
    }
}

/// Serves the store on `listener` until `shutdown` resolves, then checkpoints.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    store: Arc<Store>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), StoreError> {
    let addr = listener.local_addr().map_err(|e| StoreError::io(std::path::Path::new("listener"), e))?;
    tracing::info!(%addr, data_dir = %store.config.data_dir.display(), "store listening");
    let app = api::router(store.clone()).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| StoreError::io(std::path::Path::new("listener"), e))?;
    store.refusals.flush().await; // what the refusal limiter held back is audited, not lost
    store.checkpoint().await
}

/// Opens the store and serves it on the configured address until Ctrl-C or SIGTERM.
///
/// The address is bound first: a port in use refuses the start before the data folder is touched
/// (connections made during recovery wait in the listen backlog until the store serves).
pub async fn serve(config: Config) -> Result<(), StoreError> {
    let listener = listen(&config)?;
    if let Some(warning) = config.plaintext_exposure() {
        tracing::warn!("{warning}");
    }
    let store = Store::open(config).await?;
    serve_on(listener, store, shutdown_signal()).await
}

/// A backup replica's manifest, relative to its data folder (`kizuna backup serve` creates it).
pub const REPLICA_MANIFEST: &str = "backup/manifest.sqlite";
/// The marker `kizuna backup promote` writes into a replica's data folder before opening a store
/// on it; from then on the folder is a store's and takes no more batches.
pub const PROMOTED_MARKER: &str = "PROMOTED";

/// A store opened on a replica that was never promoted would index and serve the copy (and write
/// its own journal into it) while the primary still sends batches: refused, naming the way out.
fn refuse_unpromoted_replica(data_dir: &std::path::Path) -> Result<(), StoreError> {
    if data_dir.join(REPLICA_MANIFEST).exists() && !data_dir.join(PROMOTED_MARKER).exists() {
        return Err(StoreError::Config(format!(
            "data_dir {} holds a backup replica ({REPLICA_MANIFEST}) that was not promoted: a store \
             there would serve the copy while the primary still replicates into it; run \
             `kizuna backup promote` to make it the centre, or give the store another data_dir",
            data_dir.display()
        )));
    }
    Ok(())
}

/// Rebuilds every record's search rows (drugs, labs, diagnoses, encounters) from its file in the
/// tree, for rows an older extractor derived (`kizuna reindex`). It opens the store as a start does,
/// so it refuses while a store runs on the data folder and recovery comes first; then it lowers the
/// search watermark to 0 and catches up. Interrupted, it loses nothing: the next start (or
/// reindex) carries on from the watermark.
pub async fn reindex(config: Config) -> Result<search::CaughtUp, StoreError> {
    // A mistyped data_dir would otherwise become a new, empty store.
    if !config.data_dir.join(data_lock::LOCK_FILE).is_file() {
        return Err(StoreError::Config(format!(
            "data_dir {}: no store has run here (no {}); check data_dir in the configuration",
            config.data_dir.display(),
            data_lock::LOCK_FILE
        )));
    }
    let store = Store::open(config).await?;
    search::reset_search_seq(&store.db).await?;
    let done = search::catch_up(&store.db, &store.tree, store.applied_watermark()).await?;
    store.checkpoint().await?;
    Ok(done)
}

/// The listening socket of `listen`, bound to `bind_interface` first when one is set.
fn listen(config: &Config) -> Result<tokio::net::TcpListener, StoreError> {
    kizuna_listen::listen(config.listen, &config.bind_interface)
        .map_err(|e| StoreError::io(std::path::Path::new(&e.what), e.source))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
