//! Promotion: a replica's data folder becomes a centre's. The replica already holds the tree and
//! the store's journal (with the primary's numbers and times); the store's own start-up recovery
//! then rebuilds the IndexDB from them (every entry above the empty index's watermark is replayed:
//! the tree steps are found done, the index rows are built from the files), exactly as the
//! primary's index was built. The linkage database is already in place: the latest snapshot the
//! primary sent is `linkage.sqlite` in the folder, where `kizuna index link` and the viewer find it
//! (their default for a store on that folder). Afterwards `kizuna serve` with `data_dir` set to
//! the folder runs it. The site registry (sites and their upload-token hashes, in the IndexDB) is
//! not replicated: the promoted centre has no sites until they are added again ([`SITES_NOTICE`]).

use std::path::Path;

use serde::Serialize;
use sqlx::Row;

use crate::BackupError;
use crate::durable::replace_file;
use crate::replica::PROMOTED_FILE;

/// What promotion did.
#[derive(Debug, Clone, Serialize)]
pub struct Promoted {
    /// The last journal entry of the promoted centre.
    pub applied_seq: u64,
    /// Rows in the rebuilt index.
    pub records: u64,
    pub database_url: String,
    /// The linkage database snapshot the folder holds (`linkage.sqlite`: common IDs, consent), as
    /// the primary took it; `None` when none arrived (the centre then links its patients anew).
    pub linkage: Option<crate::linkage::LinkageState>,
    /// Sites in the rebuilt index: 0, since the site registry (upload tokens) is not replicated.
    pub sites: u64,
}

/// What a promoted centre lacks and how to give it back: no site may upload until it is added
/// again (printed by `promote` and logged).
pub const SITES_NOTICE: &str = "site registry: NOT replicated, the promoted centre has no sites, so every \
agent's upload is refused (401) until its site is added again: for each site, `kizuna site add NAME \
--facility ID... [--allow CIDR]... -c STORE_YAML` (STORE_YAML: the promoted centre's, data_dir this \
folder), then put the token it prints once into that site's agent configuration (token_file) and \
restart the agent; `kizuna site list -c STORE_YAML` shows them";

impl Promoted {
    /// The lines to show after a promotion beyond the counts: the site registry's state.
    pub fn notices(&self) -> Vec<String> {
        if self.sites == 0 { vec![SITES_NOTICE.to_owned()] } else { Vec::new() }
    }
}

/// Promotes the replica in `data_dir`; `database_url` empty = SQLite in the folder. Stop
/// `kizuna backup serve` first: from now on the folder refuses batches.
pub async fn promote(data_dir: &Path, database_url: &str) -> Result<Promoted, BackupError> {
    if !data_dir.join(kizuna_store::REPLICA_MANIFEST).exists() {
        return Err(BackupError::Config(format!(
            "{}: not a backup replica (no backup/manifest.sqlite)",
            data_dir.display()
        )));
    }
    // Refused while `kizuna backup serve` holds the folder: a batch applied during the store's
    // recovery would not be in the promoted index.
    let lock = kizuna_store::DataDirLock::acquire(data_dir)?;
    replace_file(&data_dir.join(PROMOTED_FILE), jiff::Timestamp::now().to_string().as_bytes())?;
    // The store takes the lock itself; a replica starting in between finds the folder promoted.
    drop(lock);
    let config = kizuna_store::Config {
        data_dir: data_dir.to_owned(),
        database_url: database_url.to_owned(),
        ..kizuna_store::Config::default()
    };
    let url = config.effective_database_url();
    let store = kizuna_store::Store::open(config).await?;
    store.checkpoint().await?;
    let records: i64 = sqlx::query("SELECT count(*) AS n FROM records")
        .fetch_one(&store.db.pool)
        .await
        .map_err(kizuna_store::StoreError::from)?
        .try_get("n")
        .map_err(kizuna_store::StoreError::from)?;
    let sites: i64 = sqlx::query("SELECT count(*) AS n FROM sites")
        .fetch_one(&store.db.pool)
        .await
        .map_err(kizuna_store::StoreError::from)?
        .try_get("n")
        .map_err(kizuna_store::StoreError::from)?;
    if sites == 0 {
        tracing::warn!("{SITES_NOTICE}");
    }
    let linkage = crate::replica::linkage::state(data_dir)?;
    let linkage =
        (linkage.sha256.is_some() && data_dir.join(crate::linkage::LINKAGE_FILE).exists()).then_some(linkage);
    Ok(Promoted {
        applied_seq: store.applied_watermark(),
        records: records as u64,
        database_url: url,
        linkage,
        sites: sites as u64,
    })
}
